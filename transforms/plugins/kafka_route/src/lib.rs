//! Routes records by where they were read in a Kafka topic: sets the partition keys `topic`,
//! `partition`, `key` (the record key as text, `none` without one) and, for each header, `h_<name>`
//! from the record's Kafka metadata (ABI version 3), for prefixes such as
//! `!{partitionKeyFromLambda:topic}/p=!{partitionKeyFromLambda:partition}/`. The data passes
//! unchanged. A record that was not read from Kafka is `ProcessingFailed`: this plugin belongs on
//! a Kafka-sourced pipeline.

use sluice_plugin::{transform, Output, Record};

#[transform]
fn kafka_route(record: Record<'_>) -> Output<'_> {
    let Some(kafka) = record.kafka.clone() else { return Output::failed() };
    let mut out = Output::ok(record.data)
        .with_key("topic", kafka.topic)
        .with_key("partition", &kafka.partition.to_string())
        .with_key("offset", &kafka.offset.to_string())
        .with_key("key", kafka.key.map_or("none", |k| std::str::from_utf8(k).unwrap_or("binary")));
    for (name, value) in &kafka.headers {
        out = out.with_key(&format!("h_{name}"), std::str::from_utf8(value).unwrap_or("binary"));
    }
    out
}
