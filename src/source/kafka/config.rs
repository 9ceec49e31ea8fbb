//! `source: kafka:` as written, its validated form, and the rules between them. A config-layer
//! module: it imports only the config kit (and the ground floor's Kafka connection).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

pub use crate::config::kit::kafka::valid_topic;
use crate::config::kit::kafka::{connection, RawKafkaTls, RawSasl};
use crate::config::kit::{Checker, Spanned};
use crate::kafka::Connection;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafkaSource {
    /// `host:port[,host:port...]`
    pub bootstrap_servers: Spanned<String>,
    /// Topics to read; or `topic_pattern`.
    pub topics: Option<Spanned<Vec<String>>>,
    /// A regular expression: every topic whose whole name matches, including topics created later.
    pub topic_pattern: Option<Spanned<String>>,
    /// The consumer group (default `sluice-<pipeline>`): daemons in one group share the partitions.
    pub group_id: Option<Spanned<String>>,
    /// Where a partition without a committed offset starts: LATEST (default) | EARLIEST | AT_TIMESTAMP
    pub starting_position: Option<Spanned<String>>,
    /// With AT_TIMESTAMP: RFC 3339 (Firehose's ReadFromTimestamp).
    pub starting_timestamp: Option<Spanned<String>>,
    /// How long the group waits for a silent member before giving its partitions to others
    /// (default 10; Kafka's session.timeout.ms).
    pub session_timeout_seconds: Option<Spanned<u64>>,
    /// On a rebalance, how long to wait for the records read from a partition being taken away
    /// to be delivered (so their offsets are committed and nothing is read twice) before letting
    /// it go uncommitted (default 10).
    pub revoke_grace_seconds: Option<Spanned<u64>>,
    pub tls: Option<RawKafkaTls>,
    pub sasl: Option<RawSasl>,
    /// Any other librdkafka consumer property (`fetch.max.bytes`, `client.rack`, ...).
    pub librdkafka_options: Option<BTreeMap<String, Spanned<serde_json::Value>>>,
    /// Set by CreateDeliveryStream (MSKAsSource): what Describe reports.
    pub msk_cluster_arn: Option<Spanned<String>>,
    pub msk_role_arn: Option<Spanned<String>>,
    pub msk_connectivity: Option<Spanned<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Topics {
    Names(Vec<String>),
    /// librdkafka's subscription form: `^` then the expression, anchored at both ends.
    Pattern(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Starting {
    Latest,
    Earliest,
    /// Epoch milliseconds: records older than this are skipped in partitions the group has no
    /// offset for yet.
    AtTimestamp(i64),
}

/// Where a Kafka pipeline reads, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaSourceSpec {
    pub connection: Connection,
    pub topics: Topics,
    pub group_id: String,
    pub starting: Starting,
    pub session_timeout: Duration,
    pub revoke_grace: Duration,
    /// For DescribeDeliveryStream of a stream created as MSKAsSource.
    pub msk: Option<MskDescription>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MskDescription {
    pub cluster_arn: String,
    pub role_arn: String,
    pub connectivity: String,
}

pub fn validate(c: &mut Checker, k: &RawKafkaSource, pipeline: &str, field: &str) -> Option<KafkaSourceSpec> {
    let field = format!("{field}.source.kafka");
    let before = c.error_count();
    let connection =
        connection(c, &k.bootstrap_servers, k.tls.as_ref(), k.sasl.as_ref(), k.librdkafka_options.as_ref(), &field);
    let topics = match (&k.topics, &k.topic_pattern) {
        (Some(t), None) => {
            if t.value.is_empty() {
                c.at(t, &format!("{field}.topics"), "must name at least one topic");
            }
            for name in &t.value {
                if !valid_topic(name) {
                    c.at(
                        t,
                        &format!("{field}.topics"),
                        format!("`{name}` is not a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)"),
                    );
                }
            }
            Topics::Names(t.value.clone())
        }
        (None, Some(p)) => {
            if let Err(e) = regex::Regex::new(&p.value) {
                c.at(p, &format!("{field}.topic_pattern"), format!("is not a regular expression: {e}"));
            }
            Topics::Pattern(format!("^(?:{})$", p.value))
        }
        (Some(t), Some(_)) => {
            c.at(t, &format!("{field}.topics"), "give topics or topic_pattern, not both");
            Topics::Names(Vec::new())
        }
        (None, None) => {
            c.plain(format!("{field}: needs topics (a list) or topic_pattern (a regular expression)"));
            Topics::Names(Vec::new())
        }
    };
    let group_id = match &k.group_id {
        Some(g) if g.value.trim().is_empty() => {
            c.at(g, &format!("{field}.group_id"), "must not be empty");
            String::new()
        }
        Some(g) => g.value.clone(),
        None => format!("sluice-{pipeline}"),
    };
    let starting = match k.starting_position.as_ref().map_or("LATEST", |p| p.value.as_str()) {
        "LATEST" => Starting::Latest,
        "EARLIEST" | "TRIM_HORIZON" => Starting::Earliest,
        "AT_TIMESTAMP" => match crate::config::kit::starting_timestamp(c, &k.starting_timestamp, &field) {
            Some(ms) if ms <= 0 => Starting::Earliest,
            Some(ms) => Starting::AtTimestamp(ms),
            None => Starting::Latest,
        },
        other => {
            if let Some(p) = &k.starting_position {
                let hint = crate::config::teach::hint(other, ["LATEST", "EARLIEST", "AT_TIMESTAMP"]);
                c.at(
                    p,
                    &format!("{field}.starting_position"),
                    format!("`{other}` is not LATEST, EARLIEST or AT_TIMESTAMP{hint}"),
                );
            }
            Starting::Latest
        }
    };
    let seconds = |c: &mut Checker, v: &Option<Spanned<u64>>, name: &str, default: u64, range: (u64, u64)| {
        let Some(v) = v else { return Duration::from_secs(default) };
        if !(range.0..=range.1).contains(&v.value) {
            c.at(v, &format!("{field}.{name}"), format!("must be between {} and {}", range.0, range.1));
        }
        Duration::from_secs(v.value)
    };
    let session_timeout = seconds(c, &k.session_timeout_seconds, "session_timeout_seconds", 10, (1, 3600));
    let revoke_grace = seconds(c, &k.revoke_grace_seconds, "revoke_grace_seconds", 10, (0, 300));
    let msk = k.msk_cluster_arn.as_ref().map(|arn| MskDescription {
        cluster_arn: arn.value.clone(),
        role_arn: k.msk_role_arn.as_ref().map(|r| r.value.clone()).unwrap_or_default(),
        connectivity: k.msk_connectivity.as_ref().map_or_else(|| "PUBLIC".to_string(), |r| r.value.clone()),
    });
    (c.error_count() == before).then_some(KafkaSourceSpec {
        connection,
        topics,
        group_id,
        starting,
        session_timeout,
        revoke_grace,
        msk,
    })
}
