//! `kafka` in Firehose's terms: none (Firehose delivers to no Kafka topic). Describe shows it as the
//! sluice extension `KafkaDestinationDescription`; CreateDeliveryStream cannot ask for it. A
//! config-layer module.

use serde_json::{json, Value};

use super::config::KafkaDestinationSpec;
use crate::config::kit::{DeliveryMetric, DescribeContext};

/// Its delivery metrics (`sluice_delivery_to_kafka_*`).
pub const METRIC: DeliveryMetric = DeliveryMetric {
    name: "kafka",
    firehose: "(sluice: Firehose has no Kafka destination)",
    delivered: "records acknowledged by the brokers (in a committed transaction with exactly_once)",
};

pub fn describe(k: &KafkaDestinationSpec, ctx: &DescribeContext) -> (&'static str, Value) {
    let description = json!({
        "BootstrapServers": k.connection.brokers.join(","),
        "TopicName": k.topic,
        "ExactlyOnce": k.exactly_once,
        "RetryOptions": { "DurationInSeconds": k.retry_duration.as_secs() },
        "S3DestinationDescription": ctx.backup,
        "ProcessingConfiguration": ctx.processing,
        "BufferingHints": ctx.buffering,
    });
    ("KafkaDestinationDescription", description)
}
