//! Everything between "acknowledged" and "delivered": the write-ahead log (`wal/`), the partitioner
//! and the per-partition size/interval buffers (`partition.rs`, `batcher.rs`), batch intents and
//! their replay after a crash (`intent.rs`, `replay.rs`), every name derived from a batch
//! (`names.rs`), parts of a buffer encoded while it fills (`parts.rs`), the tracker that turns
//! out-of-order deliveries into a watermark, and a fan-out destination's backlog while it is behind
//! (`spill.rs`).

pub mod batcher;
pub mod cut_marks;
pub mod intent;
pub mod names;
mod origin_codec;
pub mod partition;
pub mod parts;
pub mod replay;
pub mod spill;
pub mod tracker;
pub mod wal;

pub use batcher::{Batch, Batcher, PartitionKey};
pub use tracker::DeliveryTracker;
