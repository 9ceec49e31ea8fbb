//! The Kafka source in Firehose's API: an `MSKAsSource` stream's `MSKSourceConfiguration`
//! (CreateDeliveryStream) → a `kafka:` source block, and a `KafkaSourceSpec` →
//! `MSKSourceDescription`. A config-layer module.
//!
//! The cluster ARN is mapped to brokers through `control_plane.kafka` (the ARN itself, or `"*"`),
//! which gives what a `kafka:` source takes besides its topics: `bootstrap_servers`, `tls`,
//! `sasl`, `librdkafka_options`. The consumer group is `sluice-<stream name>`.

use serde_json::{json, Map, Value};

use super::config::{valid_topic, KafkaSourceSpec, Starting, Topics};
use crate::config::control_plane::ControlPlane;
use crate::config::kit::firehose::{refuse, Members, Result, TranslateError};

/// Firehose's DeliveryStreamType for this source.
pub const STREAM_TYPE: &str = "MSKAsSource";
pub const MEMBER: &str = "MSKSourceConfiguration";

/// The `kafka:` source block.
pub fn translate(config: Option<&Value>, control: &ControlPlane) -> Result<Value> {
    let config = config.ok_or_else(|| TranslateError(format!("{MEMBER} is required for a {STREAM_TYPE} stream")))?;
    let m = Members::of(
        config,
        MEMBER,
        &["MSKClusterARN", "TopicName", "AuthenticationConfiguration", "ReadFromTimestamp"],
    )?;
    let arn = m.required_str("MSKClusterARN")?;
    if !arn.starts_with("arn:") || !arn.contains(":kafka:") {
        return refuse(format!("{MEMBER}.MSKClusterARN must be an MSK cluster ARN (arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid>)"));
    }
    let topic = m.required_str("TopicName")?;
    // Firehose allows 255 characters of `[a-zA-Z0-9._-]`; Kafka itself 249, what a topic can be called.
    if !valid_topic(topic) {
        return refuse(format!("{MEMBER}.TopicName must be 1 to 249 characters of a-z, A-Z, 0-9, '.', '_' and '-'"));
    }
    let auth = m
        .get("AuthenticationConfiguration")
        .ok_or_else(|| TranslateError(format!("{MEMBER}.AuthenticationConfiguration is required")))?;
    let auth = Members::of(auth, &m.child("AuthenticationConfiguration"), &["RoleARN", "Connectivity"])?;
    let role = auth.required_str("RoleARN")?;
    let connectivity = auth.required_str("Connectivity")?;
    if !matches!(connectivity, "PUBLIC" | "PRIVATE") {
        return refuse(format!("{}.Connectivity must be PUBLIC or PRIVATE", auth.path));
    }
    let cluster = control.kafka_clusters.get(arn).or_else(|| control.kafka_clusters.get("*")).ok_or_else(|| {
        TranslateError(format!(
            "MSK cluster {arn} is not mapped to brokers here: add control_plane.kafka: {{ \"{arn}\": {{ bootstrap_servers: host:9092 }} }} (or \"*\")"
        ))
    })?;
    let mut kafka: Map<String, Value> = cluster.as_object().cloned().unwrap_or_default();
    kafka.insert("topics".into(), json!([topic]));
    // Firehose: ReadFromTimestamp defaults to when the stream became active (the API fills it in
    // when the stream is created); epoch 0 means the earliest record.
    match m.number("ReadFromTimestamp")? {
        Some(seconds) if seconds <= 0.0 => {
            kafka.insert("starting_position".into(), "EARLIEST".into());
        }
        Some(seconds) => {
            let at = chrono::DateTime::from_timestamp_millis((seconds * 1000.0) as i64)
                .ok_or_else(|| TranslateError(format!("{MEMBER}.ReadFromTimestamp is out of range")))?;
            kafka.insert("starting_position".into(), "AT_TIMESTAMP".into());
            kafka.insert("starting_timestamp".into(), at.to_rfc3339().into());
        }
        None => {
            kafka.insert("starting_position".into(), "LATEST".into());
        }
    }
    kafka.insert("msk_cluster_arn".into(), arn.into());
    kafka.insert("msk_role_arn".into(), role.into());
    kafka.insert("msk_connectivity".into(), connectivity.into());
    Ok(json!({ "kafka": kafka }))
}

/// `start_seconds`: when this pipeline first started.
pub fn describe(k: &KafkaSourceSpec, role_arn: &str, start_seconds: f64) -> Value {
    let mut d = Map::new();
    if let Some(msk) = &k.msk {
        d.insert("MSKClusterARN".into(), msk.cluster_arn.clone().into());
        d.insert(
            "AuthenticationConfiguration".into(),
            json!({ "RoleARN": msk.role_arn, "Connectivity": msk.connectivity }),
        );
    } else {
        d.insert("AuthenticationConfiguration".into(), json!({ "RoleARN": role_arn, "Connectivity": "PUBLIC" }));
    }
    let topic = match &k.topics {
        Topics::Names(names) => names.join(","),
        Topics::Pattern(p) => p.clone(),
    };
    d.insert("TopicName".into(), topic.into());
    d.insert("DeliveryStartTimestamp".into(), start_seconds.into());
    let read_from = match k.starting {
        Starting::Earliest => Some(0.0),
        Starting::AtTimestamp(ms) => Some(ms as f64 / 1000.0),
        Starting::Latest => None,
    };
    if let Some(at) = read_from {
        d.insert("ReadFromTimestamp".into(), at.into());
    }
    json!({ "MSKSourceDescription": d })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control() -> ControlPlane {
        ControlPlane {
            kafka_clusters: [("*".to_string(), json!({ "bootstrap_servers": "127.0.0.1:9092" }))].into(),
            ..ControlPlane::default()
        }
    }

    #[test]
    fn msk_configuration_becomes_a_kafka_block() {
        let config = json!({
            "MSKClusterARN": "arn:aws:kafka:us-east-1:123456789012:cluster/logs/abc",
            "TopicName": "events",
            "AuthenticationConfiguration": { "RoleARN": "arn:aws:iam::123456789012:role/r", "Connectivity": "PRIVATE" },
            "ReadFromTimestamp": 1_700_000_000.0,
        });
        let block = translate(Some(&config), &control()).unwrap();
        let k = &block["kafka"];
        assert_eq!(k["bootstrap_servers"], "127.0.0.1:9092");
        assert_eq!(k["topics"], json!(["events"]));
        assert_eq!(k["starting_position"], "AT_TIMESTAMP");
        assert_eq!(k["msk_connectivity"], "PRIVATE");
    }

    #[test]
    fn bad_topic_unmapped_cluster_and_unknown_members_are_refused() {
        let base = json!({
            "MSKClusterARN": "arn:aws:kafka:us-east-1:123456789012:cluster/logs/abc",
            "TopicName": "bad topic",
            "AuthenticationConfiguration": { "RoleARN": "r", "Connectivity": "PUBLIC" },
        });
        assert!(translate(Some(&base), &control()).unwrap_err().0.contains("TopicName"));
        let mut ok = base.clone();
        ok["TopicName"] = "t".into();
        assert!(translate(Some(&ok), &ControlPlane::default()).unwrap_err().0.contains("control_plane.kafka"));
        ok["Extra"] = 1.into();
        assert!(translate(Some(&ok), &control()).unwrap_err().0.contains("Extra"));
    }
}
