//! Every name derived from a batch, built in this one place: the uuid and random strings of object
//! keys, HTTP endpoint request ids, OpenSearch document ids (a request id and a position), and the
//! PostgreSQL/Redshift ledger's batch id (the first request id).
//!
//! # The rule
//! A name is a function of *(scope, pipeline, what it names, partition, `Batch::identity`)*:
//!
//! * **Stable within a state directory.** A replay after `kill -9` re-cuts exactly the recorded
//!   batches (`buffer::intent`), so each gets the name it had: an object is overwritten, a request is
//!   recognised by its id, a ledger row says "already loaded".
//! * **Unique across state directories.** WAL sequence numbers start at 0 in every state directory,
//!   so a batch named from them folds in the stream's *seed*: random when the stream's directory is
//!   made and kept in `stream-id`. Without it, gateway replicas sharing a bucket name their first
//!   batches alike and overwrite each other's objects (issue #23: 9% lost), and a PostgreSQL ledger
//!   skips another replica's batch as "already loaded".
//! * **Global positions name globally.** A batch named from stream positions (Kinesis shard and
//!   sequence numbers: `Batch::named_by_stream_positions`) is the same batch whichever daemon cuts
//!   it, so its names leave the seed out: a lease taken over by another daemon overwrites the same
//!   object instead of writing a second copy.
//! * **Upgrades keep names.** Before sluice seeded object keys, they were named without the seed.
//!   `names-scoped-from` records the first WAL sequence named with it; a batch starting below it
//!   was cut by an older version and keeps its old key, so replaying an upgraded WAL overwrites
//!   what the old version may already have written. (Request ids were seeded first, so they do not
//!   need the threshold.)

use std::path::Path;

use thiserror::Error;

use super::Batch;
use crate::hash::{fnv1a, splitmix64};
use crate::record::Seq;

/// Files in the stream's directory (`<storage>/pipelines/<stream>/`).
const SEED_FILE: &str = "stream-id";
const SCOPED_FROM_FILE: &str = "names-scoped-from";

#[derive(Debug, Error)]
#[error("cannot keep the stream's naming seed in {path}: {source}; names of batches replayed after a restart would change, so the stream does not start")]
pub struct NamesError {
    path: String,
    source: std::io::Error,
}

/// What makes a stream's names its own: loaded once per pipeline when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameScope {
    /// Random per state directory (RecordIds carry it too).
    pub seed: u64,
    /// Batches whose first sequence is below this were named by a version without seeded object
    /// keys (see the module doc).
    pub scoped_from: Seq,
    /// A fan-out pipeline's destination after the first: its route's name, hashed. Folded into
    /// every name (also those that leave the seed out), so two destinations writing one bucket or
    /// endpoint never name two batches alike. 0 for the first destination: names as before fan-out.
    pub route: u64,
}

impl NameScope {
    /// A scope for tests and tools that name nothing durable.
    pub const fn fixed(seed: u64) -> Self {
        Self { seed, scoped_from: 0, route: 0 }
    }

    /// The scope of a fan-out pipeline's destination `index`, named `route` in its config.
    pub fn for_route(self, index: usize, route: &str) -> Self {
        Self { route: if index == 0 { 0 } else { fnv1a(&[b"route", route.as_bytes()]) }, ..self }
    }

    /// Loads the stream's scope from `dir`, creating it on first use. `next_seq` is where the
    /// stream's WAL continues and `wal_has_records` whether it holds anything to replay: a WAL from
    /// before seeds were stored keeps the name-derived seed its RecordIds used, and a WAL from before
    /// object keys were seeded keeps its keys below `next_seq`.
    pub fn load_or_create(dir: &Path, name: &str, next_seq: Seq, wal_has_records: bool) -> Result<Self, NamesError> {
        let seed = match read_hex(&dir.join(SEED_FILE)) {
            Some(seed) => seed,
            None => {
                let (high, low) = uuid::Uuid::new_v4().as_u64_pair();
                let seed = if wal_has_records { fnv1a(&[name.as_bytes()]) } else { high ^ low };
                write_durably(dir, SEED_FILE, &format!("{seed:016x}\n"))?;
                seed
            }
        };
        let scoped_from = match read_hex(&dir.join(SCOPED_FROM_FILE)) {
            Some(from) => from,
            None => {
                write_durably(dir, SCOPED_FROM_FILE, &format!("{next_seq:016x}\n"))?;
                next_seq
            }
        };
        Ok(Self { seed, scoped_from, route: 0 })
    }

    /// The names of one object written from `batch`; `kind` separates the key spaces of data,
    /// error batches and a converted batch's failed records.
    pub fn object(&self, pipeline: &str, kind: &str, batch: &Batch) -> BatchNames {
        let legacy = batch.first_seq() < self.scoped_from;
        let scope = if batch.named_by_stream_positions() || legacy { 0 } else { self.seed };
        BatchNames {
            space: fnv1a(&[pipeline.as_bytes(), kind.as_bytes(), batch.partition.as_bytes()]) ^ scope ^ self.route,
            identity: batch.identity(),
        }
    }

    /// The names of the requests a batch is sent in (HTTP endpoint, OpenSearch, the ledgers).
    pub fn requests(&self, pipeline: &str, batch: &Batch) -> BatchNames {
        let scope = if batch.named_by_stream_positions() { 0 } else { self.seed };
        BatchNames {
            space: fnv1a(&[pipeline.as_bytes(), b"http-endpoint", batch.partition.as_bytes()]) ^ scope ^ self.route,
            identity: batch.identity(),
        }
    }
}

/// The names of one object or one batch's requests: cheap to copy, computed once per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchNames {
    /// Pipeline, purpose, partition and scope.
    space: u64,
    /// `Batch::identity`.
    identity: u64,
}

impl BatchNames {
    /// The uuid at the end of an object's name: the name space in its first half, the batch's
    /// identity in its second.
    pub fn object_uuid(&self) -> uuid::Uuid {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.space.to_be_bytes());
        bytes[8..].copy_from_slice(&self.identity.to_be_bytes());
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }

    /// Seeds `!{firehose:random-string}` in the object's prefix.
    pub fn random_seed(&self) -> u64 {
        self.space ^ splitmix64(self.identity)
    }

    /// The id of the batch's `part`-th request (part 0 also names the batch in a ledger).
    pub fn request_id(&self, part: usize) -> String {
        let seq = splitmix64(self.identity ^ (part as u64).rotate_left(48));
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.space.to_be_bytes());
        bytes[8..].copy_from_slice(&seq.to_be_bytes());
        uuid::Uuid::new_v8(bytes).to_string()
    }
}

fn read_hex(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok().and_then(|t| u64::from_str_radix(t.trim(), 16).ok())
}

/// Written whole or not at all (`durable_file::replace`): after a crash the file is either
/// absent, and made again from the same inputs, or complete.
fn write_durably(dir: &Path, file: &str, text: &str) -> Result<(), NamesError> {
    let path = dir.join(file);
    crate::durable_file::replace(&path, text.as_bytes())
        .map_err(|source| NamesError { path: path.display().to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;
    use std::time::Instant;

    fn batch(first_seq: Seq) -> Batch {
        let mut b = Batch::new("p=1".into(), None, Instant::now());
        for seq in first_seq..first_seq + 3 {
            b.push(Record::new(seq, 0, bytes::Bytes::from_static(b"x")), 1);
        }
        b
    }

    #[test]
    fn names_are_stable_within_a_scope_and_differ_across_scopes() {
        let a = NameScope::fixed(1);
        let b = NameScope::fixed(2);
        assert_eq!(a.object("s", "data", &batch(0)), a.object("s", "data", &batch(0)));
        assert_ne!(a.object("s", "data", &batch(0)).object_uuid(), b.object("s", "data", &batch(0)).object_uuid());
        assert_ne!(a.requests("s", &batch(0)).request_id(0), b.requests("s", &batch(0)).request_id(0));
        assert_ne!(a.object("s", "data", &batch(0)), a.object("s", "errors", &batch(0)));
        assert_ne!(a.requests("s", &batch(0)).request_id(0), a.requests("s", &batch(0)).request_id(1));
    }

    #[test]
    fn each_destination_of_a_fan_out_names_its_own_batches() {
        let scope = NameScope::fixed(1);
        let (first, second) = (scope.for_route(0, "archive"), scope.for_route(1, "search"));
        assert_eq!(first, scope, "the first destination names as a pipeline with one destination");
        assert_ne!(first.object("s", "data", &batch(0)), second.object("s", "data", &batch(0)));
        assert_ne!(first.requests("s", &batch(0)).request_id(0), second.requests("s", &batch(0)).request_id(0));
        assert_eq!(second.object("s", "data", &batch(0)), scope.for_route(1, "search").object("s", "data", &batch(0)));
    }

    #[test]
    fn batches_from_before_the_upgrade_keep_their_unscoped_object_names() {
        let upgraded = NameScope { seed: 9, scoped_from: 100, route: 0 };
        let legacy = NameScope { seed: 0, scoped_from: 0, route: 0 };
        assert_eq!(upgraded.object("s", "data", &batch(97)), legacy.object("s", "data", &batch(97)));
        assert_ne!(upgraded.object("s", "data", &batch(100)), legacy.object("s", "data", &batch(100)));
    }

    #[test]
    fn the_scope_is_created_once_and_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = NameScope::load_or_create(dir.path(), "s", 0, false).unwrap();
        assert_eq!(first.scoped_from, 0);
        let again = NameScope::load_or_create(dir.path(), "s", 500, true).unwrap();
        assert_eq!(first, again);
        let other = NameScope::load_or_create(&dir.path().join("other"), "s", 0, false).unwrap();
        assert_ne!(first.seed, other.seed);
    }

    #[test]
    fn an_upgraded_wal_keeps_its_seed_and_names_its_old_batches_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let scope = NameScope::load_or_create(dir.path(), "s", 42, true).unwrap();
        assert_eq!(scope, NameScope { seed: fnv1a(&[b"s"]), scoped_from: 42, route: 0 });
    }
}
