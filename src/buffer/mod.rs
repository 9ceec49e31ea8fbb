//! Everything between "acknowledged" and "delivered": the write-ahead log, the per-partition
//! size/interval buffers, and the tracker that turns out-of-order deliveries into a watermark.

pub mod batcher;
pub mod intent;
pub mod names;
pub mod partition;
pub mod replay;
pub mod tracker;
pub mod wal;

pub use batcher::{Batch, Batcher, PartitionKey};
pub use tracker::DeliveryTracker;
