//! The delivered watermark, persisted in place so that freeing space never needs new space.
//!
//! ```text
//! checkpoint.slots = slot slot            (each SLOT_BYTES, preallocated with real zeros)
//! slot             = "SLCK" generation:u64le delivered_below:u64le crc32c(previous 20 bytes):u32le
//! ```
//! Each write goes to the slot the previous one did not use, then `fdatasync`. A write torn by a
//! crash damages at most that slot, whose checksum then fails, and the other slot still holds the
//! previous watermark. Reading takes the valid slot with the highest generation.
//!
//! Why not write-a-temp-file-and-rename: on a full disk the temp file cannot be created, so a WAL
//! that needs a checkpoint to delete its delivered segments could never free space again (issue
//! #9 measured exactly that). Overwriting blocks that were allocated at creation needs no new
//! space on ext4/xfs; copy-on-write filesystems (btrfs, ZFS) may still need a little.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::frame::crc32c;
use super::{io_err, sync_dir, WalError};
use crate::record::Seq;

const FILE: &str = "checkpoint.slots";
/// The text file earlier versions wrote (`delivered_below=N`); read once and replaced.
const LEGACY_FILE: &str = "checkpoint";
const SLOT_BYTES: u64 = 512;
const MAGIC: &[u8; 4] = b"SLCK";
const SLOT_LEN: usize = 24;

pub struct Checkpoint {
    file: File,
    path: PathBuf,
    generation: u64,
}

impl Checkpoint {
    /// Opens (creating and preallocating if needed) the checkpoint of the WAL in `dir`, and
    /// returns it with the persisted watermark.
    pub fn open(dir: &Path) -> Result<(Self, Seq), WalError> {
        let path = dir.join(FILE);
        if !path.exists() {
            let legacy = read_legacy(dir)?;
            create(dir, &path, legacy.unwrap_or(0))?;
            if legacy.is_some() {
                let old = dir.join(LEGACY_FILE);
                fs::remove_file(&old).map_err(io_err(&old))?;
                sync_dir(dir)?;
            }
        }
        let file = OpenOptions::new().read(true).write(true).open(&path).map_err(io_err(&path))?;
        let mut bytes = Vec::with_capacity(2 * SLOT_BYTES as usize);
        (&file).take(2 * SLOT_BYTES).read_to_end(&mut bytes).map_err(io_err(&path))?;
        let best = [0, 1].iter().filter_map(|&i| decode_slot(bytes.get(i * SLOT_BYTES as usize..)?)).max();
        let Some((generation, delivered_below)) = best else {
            return Err(WalError::Corrupt { path, offset: 0, reason: "neither checkpoint slot is valid".into() });
        };
        Ok((Self { file, path, generation }, delivered_below))
    }

    /// Persists `delivered_below`; returns once it is on disk.
    pub fn write(&mut self, delivered_below: Seq) -> Result<(), WalError> {
        let generation = self.generation + 1;
        let slot = encode_slot(generation, delivered_below);
        let offset = (generation % 2) * SLOT_BYTES;
        self.file.write_all_at(&slot, offset).map_err(io_err(&self.path))?;
        self.file.sync_data().map_err(io_err(&self.path))?;
        self.generation = generation;
        Ok(())
    }
}

fn create(dir: &Path, path: &Path, delivered_below: Seq) -> Result<(), WalError> {
    let tmp = dir.join("checkpoint.slots.tmp");
    let mut image = vec![0u8; 2 * SLOT_BYTES as usize];
    image[..SLOT_LEN].copy_from_slice(&encode_slot(0, delivered_below));
    fs::write(&tmp, &image).map_err(io_err(&tmp))?;
    File::open(&tmp).and_then(|f| f.sync_all()).map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_dir(dir)
}

fn encode_slot(generation: u64, delivered_below: Seq) -> [u8; SLOT_LEN] {
    let mut slot = [0u8; SLOT_LEN];
    slot[..4].copy_from_slice(MAGIC);
    slot[4..12].copy_from_slice(&generation.to_le_bytes());
    slot[12..20].copy_from_slice(&delivered_below.to_le_bytes());
    let crc = crc32c(&slot[..20]);
    slot[20..24].copy_from_slice(&crc.to_le_bytes());
    slot
}

/// `(generation, delivered_below)` of a valid slot.
fn decode_slot(bytes: &[u8]) -> Option<(u64, Seq)> {
    let slot = bytes.get(..SLOT_LEN)?;
    if &slot[..4] != MAGIC || crc32c(&slot[..20]).to_le_bytes() != slot[20..24] {
        return None;
    }
    let generation = u64::from_le_bytes(slot[4..12].try_into().ok()?);
    let delivered_below = u64::from_le_bytes(slot[12..20].try_into().ok()?);
    Some((generation, delivered_below))
}

fn read_legacy(dir: &Path) -> Result<Option<Seq>, WalError> {
    let path = dir.join(LEGACY_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            text.trim().strip_prefix("delivered_below=").and_then(|v| v.parse().ok()).map(Some).ok_or_else(|| {
                WalError::Corrupt { path, offset: 0, reason: format!("unreadable checkpoint `{}`", text.trim()) }
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(WalError::Io { path, source: e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen_and_alternates_slots() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, start) = Checkpoint::open(dir.path()).unwrap();
        assert_eq!(start, 0);
        for w in [5, 9, 12] {
            c.write(w).unwrap();
        }
        let len = fs::metadata(dir.path().join(FILE)).unwrap().len();
        assert_eq!(len, 2 * SLOT_BYTES, "written in place: the file never grows");
        assert_eq!(Checkpoint::open(dir.path()).unwrap().1, 12);
    }

    #[test]
    fn a_torn_slot_falls_back_to_the_previous_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, _) = Checkpoint::open(dir.path()).unwrap();
        c.write(7).unwrap(); // generation 1, slot 1
        c.write(8).unwrap(); // generation 2, slot 0
        let path = dir.path().join(FILE);
        let mut bytes = fs::read(&path).unwrap();
        bytes[14] ^= 0xff; // damage slot 0's watermark
        fs::write(&path, &bytes).unwrap();
        assert_eq!(Checkpoint::open(dir.path()).unwrap().1, 7);
    }

    #[test]
    fn the_legacy_text_checkpoint_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LEGACY_FILE), "delivered_below=42\n").unwrap();
        assert_eq!(Checkpoint::open(dir.path()).unwrap().1, 42);
        assert!(!dir.path().join(LEGACY_FILE).exists());
        assert_eq!(Checkpoint::open(dir.path()).unwrap().1, 42);
    }
}
