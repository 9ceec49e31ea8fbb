//! The file source's checkpoint: per file, the offset below which every line is delivered (or in
//! the error output), written atomically to `<state>/pipelines/<name>/file-checkpoint.json`.
//!
//! A file is keyed by device, inode and a fingerprint of its first line (at most 256 bytes), so
//! a renamed file keeps its place, an inode reused by a new file is not mistaken for the old one,
//! and a file truncated and rewritten is read again from its start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::record::Seq;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FileEntry {
    /// Where the file was last seen (for people reading the checkpoint; lookups use the key).
    pub path: String,
    /// Every line ending at or before this offset is delivered.
    pub offset: u64,
    /// Which reading of the file offsets belong to: bumped when it is truncated under us, so
    /// deliveries of lines read before do not move the new reading's offset.
    #[serde(skip)]
    pub generation: u64,
    /// Read to its end after it left the globs (rotated away or deleted): forgotten once delivered.
    #[serde(default)]
    pub released: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileCheckpoint {
    #[serde(skip)]
    path: PathBuf,
    /// Absent before the first run: `start_at` only applies then.
    #[serde(skip)]
    pub first_run: bool,
    /// The pipeline's watermark when written: records are numbered on from here after a restart.
    pub delivered_below: Seq,
    pub files: BTreeMap<String, FileEntry>,
}

impl FileCheckpoint {
    pub fn load(path: &Path) -> std::io::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let mut c: FileCheckpoint = serde_json::from_slice(&bytes).map_err(|e| {
                    std::io::Error::other(format!("{} is not a file source checkpoint: {e}", path.display()))
                })?;
                c.path = path.to_path_buf();
                Ok(c)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileCheckpoint {
                path: path.to_path_buf(),
                first_run: true,
                delivered_below: 0,
                files: BTreeMap::new(),
            }),
            Err(e) => Err(e),
        }
    }

    pub fn save(&self) -> std::io::Result<()> {
        crate::durable_file::replace_json(&self.path, self)
    }

    /// Lines up to `offset` are delivered (ignored for an earlier generation).
    pub fn delivered(&mut self, key: &str, generation: u64, offset: u64) {
        if let Some(entry) = self.files.get_mut(key) {
            if entry.generation == generation && offset > entry.offset {
                entry.offset = offset;
            }
        }
    }

    /// Drops files read to their end, gone from the globs, and delivered.
    pub fn forget(&mut self, key: &str, generation: u64) {
        if self.files.get(key).is_some_and(|e| e.generation == generation && e.released) {
            self.files.remove(key);
        }
    }
}
