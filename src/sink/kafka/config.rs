//! `destination: kafka:` as written, its validated form, and the rules between them. A
//! config-layer module: it imports the config kit (and the ground floor's Kafka connection).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::config::kit::kafka::{connection, valid_topic, RawKafkaTls, RawSasl};
use crate::config::kit::{retry_duration, Checker, RawDestination, Spanned};
use crate::kafka::Connection;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafkaDestination {
    pub bootstrap_servers: Spanned<String>,
    pub topic: Spanned<String>,
    /// A jq expression giving each record's key (its first output: a string as is, anything else
    /// as JSON; no output, `null` or an error: no key). Without it records have no key.
    pub key: Option<Spanned<String>>,
    /// Default true: each batch is one Kafka transaction (all of it visible to `read_committed`
    /// consumers, or none). false: the idempotent producer alone.
    pub exactly_once: Option<Spanned<bool>>,
    /// none | gzip | snappy | lz4 | zstd (default none)
    pub compression: Option<Spanned<String>>,
    pub retry_duration_seconds: Option<Spanned<u64>>,
    pub tls: Option<RawKafkaTls>,
    pub sasl: Option<RawSasl>,
    /// Any other librdkafka producer property (`linger.ms`, `batch.size`, ...).
    pub librdkafka_options: Option<BTreeMap<String, Spanned<serde_json::Value>>>,
    /// Where records Kafka refuses (too large, invalid) go: an `s3:` or `local:` destination.
    pub backup: Spanned<RawDestination>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaDestinationSpec {
    pub connection: Connection,
    pub topic: String,
    pub key: Option<String>,
    pub exactly_once: bool,
    pub compression: String,
    pub retry_duration: Duration,
}

pub fn validate(c: &mut Checker, k: &RawKafkaDestination, field: &str) -> Option<KafkaDestinationSpec> {
    let before = c.error_count();
    let connection =
        connection(c, &k.bootstrap_servers, k.tls.as_ref(), k.sasl.as_ref(), k.librdkafka_options.as_ref(), field);
    if !valid_topic(&k.topic.value) {
        c.at(&k.topic, &format!("{field}.topic"), "is not a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)");
    }
    if let Some(key) = &k.key {
        if let Err(e) = crate::process::jq::JqProgram::compile(&key.value) {
            c.at(key, &format!("{field}.key"), format!("is not a jq expression: {e}"));
        }
    }
    let compression = k.compression.as_ref().map_or("none", |c| c.value.as_str());
    if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&compression) {
        if let Some(v) = &k.compression {
            c.at(v, &format!("{field}.compression"), "must be none, gzip, snappy, lz4 or zstd");
        }
    }
    let retry_duration = retry_duration(c, &k.retry_duration_seconds, field);
    (c.error_count() == before).then(|| KafkaDestinationSpec {
        connection,
        topic: k.topic.value.clone(),
        key: k.key.as_ref().map(|k| k.value.clone()),
        exactly_once: k.exactly_once.as_ref().is_none_or(|e| e.value),
        compression: compression.to_string(),
        retry_duration,
    })
}
