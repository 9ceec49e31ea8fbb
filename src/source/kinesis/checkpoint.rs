//! The Kinesis source's checkpoint: per shard, the last sequence number below which everything is
//! delivered (or in the error output), and which shards are finished. One JSON file, replaced
//! atomically (temporary file, fsync, rename, directory fsync).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::record::Seq;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ShardCheckpoint {
    /// Everything up to and including this sequence number is delivered.
    pub sequence: Option<String>,
    /// Read to its end and delivered: never read again; its children may start.
    #[serde(default)]
    pub finished: bool,
    /// With leases: which holding of the lease `sequence` belongs to. Positions reported for an
    /// earlier holding (a lease lost and taken again) are ignored.
    #[serde(skip)]
    pub generation: u64,
    /// With leases: changed since it was last written to the lease table.
    #[serde(skip)]
    pub dirty: bool,
    /// With leases: reading stopped because another daemon asked for the shard, and everything
    /// read from it is delivered; the lease may be handed over.
    #[serde(skip)]
    pub handed_back: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    #[serde(skip)]
    path: PathBuf,
    /// The pipeline's watermark when this was written: new records are numbered from here, so
    /// object names after a restart never reuse those of records already delivered.
    pub delivered_below: Seq,
    /// When this pipeline first started: `LATEST` means "from here", also after a restart that
    /// finds a shard without a checkpoint (Firehose's DeliveryStartTimestamp).
    pub delivery_start_ms: i64,
    pub shards: BTreeMap<String, ShardCheckpoint>,
}

impl Checkpoint {
    /// Reads the checkpoint, or starts one (and writes it, so the start time survives a crash).
    pub fn load(path: &Path) -> std::io::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let mut c: Checkpoint = serde_json::from_slice(&bytes).map_err(|e| {
                    std::io::Error::other(format!("{} is not a Kinesis checkpoint: {e}", path.display()))
                })?;
                c.path = path.to_path_buf();
                Ok(c)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let c = Checkpoint {
                    path: path.to_path_buf(),
                    delivered_below: 0,
                    delivery_start_ms: crate::clock::now_ms(),
                    shards: BTreeMap::new(),
                };
                c.save()?;
                Ok(c)
            }
            Err(e) => Err(e),
        }
    }

    pub fn save(&self) -> std::io::Result<()> {
        crate::durable_file::replace_json(&self.path, self)
    }

    pub fn position(&self, shard: &str) -> Option<String> {
        self.shards.get(shard).and_then(|s| s.sequence.clone())
    }

    /// Everything up to `sequence` is delivered (ignored when it belongs to an earlier holding).
    pub fn set_position(&mut self, shard: &str, generation: u64, sequence: String) {
        let entry = self.shards.entry(shard.to_string()).or_default();
        if entry.generation == generation {
            entry.sequence = Some(sequence);
            entry.dirty = true;
        }
    }

    /// Read to its end and delivered.
    pub fn finish(&mut self, shard: &str, generation: u64) {
        let entry = self.shards.entry(shard.to_string()).or_default();
        if entry.generation == generation {
            entry.finished = true;
            entry.dirty = true;
        }
    }

    /// Stopped on request and delivered: ready to hand over.
    pub fn hand_back(&mut self, shard: &str, generation: u64) {
        let entry = self.shards.entry(shard.to_string()).or_default();
        if entry.generation == generation {
            entry.handed_back = true;
        }
    }

    /// A lease taken: positions now come from this holding, starting at the table's checkpoint.
    pub fn hold(&mut self, shard: &str, generation: u64, sequence: Option<String>) {
        self.shards.insert(
            shard.to_string(),
            ShardCheckpoint { sequence, finished: false, generation, dirty: false, handed_back: false },
        );
    }

    pub fn finished_shards(&self) -> HashSet<String> {
        self.shards.iter().filter(|(_, s)| s.finished).map(|(id, _)| id.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_from_an_earlier_holding_of_a_lease_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Checkpoint::load(&dir.path().join("c.json")).unwrap();
        c.hold("shard-1", 1, Some("TRIM_HORIZON".into()));
        c.set_position("shard-1", 1, "100".into());
        c.hold("shard-1", 2, Some("150".into())); // lost, then taken again from the table
        c.set_position("shard-1", 1, "120".into()); // late delivery of the first holding's records
        c.finish("shard-1", 1);
        assert_eq!(c.position("shard-1").as_deref(), Some("150"));
        assert!(c.finished_shards().is_empty());
        c.set_position("shard-1", 2, "200".into());
        assert_eq!(c.position("shard-1").as_deref(), Some("200"));
    }
}
