//! Routes records by where they were read in a Kinesis Data Stream: sets the partition keys
//! `shard_id` and `partition_key` from the record's Kinesis metadata (Firehose's
//! `kinesisRecordMetadata`), for prefixes such as `shards/!{partitionKeyFromLambda:shard_id}/`.
//! The data passes unchanged. A record that was not read from a Kinesis stream is
//! `ProcessingFailed`: this plugin belongs on a Kinesis-sourced pipeline.

use sluice_plugin::{transform, Output, Record};

#[transform]
fn kinesis_route(record: Record<'_>) -> Output<'_> {
    match record.kinesis {
        Some(kinesis) => Output::ok(record.data)
            .with_key("shard_id", kinesis.shard_id)
            .with_key("partition_key", kinesis.partition_key),
        None => Output::failed(),
    }
}
