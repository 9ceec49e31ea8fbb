//! The example transform plugins in transforms/plugins, run through sluice's WASM host.
//!
//! They need the plugins built for wasm32-wasip1 (`scripts/test.sh` does it first):
//!     cd transforms && cargo build --release

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use sluice::process::wasm::{WasmProcessor, WasmSettings};
use sluice::process::{Failed, Item, Processor};
use sluice::record::Record;

fn plugin(name: &str, config: serde_json::Value) -> WasmProcessor {
    let module =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("transforms/target/wasm32-wasip1/release/{name}.wasm"));
    assert!(
        module.exists(),
        "{} is missing: build the plugins with `cd transforms && cargo build --release`",
        module.display()
    );
    WasmProcessor::load(WasmSettings {
        module,
        config_json: config.to_string(),
        max_invocation_bytes: 1 << 20,
        retries: 0,
        timeout: Duration::from_secs(5),
        memory_limit_bytes: 64 << 20,
        lambda_arn: None,
    })
    .unwrap()
}

fn run(p: &WasmProcessor, records: &[&str]) -> (Vec<Item>, Vec<Failed>) {
    // 2026-07-13T14:05:09Z, a Monday
    let items = records
        .iter()
        .enumerate()
        .map(|(i, d)| Item::new(Record::new(i as u64, 1_783_951_509_000, Bytes::copy_from_slice(d.as_bytes()))))
        .collect();
    let mut failed = Vec::new();
    let out = p.process(items, &mut failed);
    (out, failed)
}

fn json(item: &Item) -> serde_json::Value {
    serde_json::from_slice(&item.record.data).unwrap()
}

#[test]
fn redact_is_the_classic_firehose_lambda() {
    let p = plugin("redact", serde_json::json!({ "fields": ["password", "ssn", "credit_card"] }));
    let (out, failed) = run(
        &p,
        &[
            r#"{"user":"ann","password":"hunter2","event_type":"LOGIN","profile":{"ssn":"123-45-6789","city":"Oslo"}}"#,
            r#"{"credit_card":"4111","event_type":"Purchase"}"#,
            "not json",
        ],
    );
    assert_eq!(out.len(), 2);
    let first = json(&out[0]);
    assert_eq!(first["password"], "[REDACTED]");
    assert_eq!(first["profile"]["ssn"], "[REDACTED]", "at any depth");
    assert_eq!(first["profile"]["city"], "Oslo");
    assert_eq!(first["event_type"], "login");
    assert_eq!(first["hour_of_day"], 14);
    assert_eq!(first["day_of_week"], "Mon");
    let ts = first["processed_timestamp"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
    assert_eq!(json(&out[1])["credit_card"], "[REDACTED]");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].code, "Lambda.ProcessingFailedStatus");
    assert_eq!(&failed[0].record.data[..], b"not json");
}

#[test]
fn filter_drops_by_field_value() {
    let p = plugin("filter", serde_json::json!({ "field": "level", "drop": ["debug", "trace"] }));
    let (out, failed) =
        run(&p, &[r#"{"level":"debug"}"#, r#"{"level":"error","n":1}"#, r#"{"n":2}"#, r#"{"level":"trace"}"#]);
    let kept: Vec<_> = out.iter().map(|i| String::from_utf8_lossy(&i.record.data).into_owned()).collect();
    assert_eq!(kept, [r#"{"level":"error","n":1}"#, r#"{"n":2}"#]);
    assert_eq!(out.iter().map(|i| i.record.seq).collect::<Vec<_>>(), [1, 2], "outputs keep their source records");
    assert!(failed.is_empty());
}

#[test]
fn route_sets_partition_keys() {
    let p = plugin("route", serde_json::json!({ "keys": ["customer_id", "region"] }));
    let (out, failed) = run(&p, &[r#"{"customer_id":42,"region":"eu"}"#, r#"{"customer_id":"c7"}"#]);
    assert_eq!(out.len(), 1);
    let keys = &out[0].keys.as_ref().unwrap().lambda;
    assert_eq!(keys.get("customer_id").map(String::as_str), Some("42"));
    assert_eq!(keys.get("region").map(String::as_str), Some("eu"));
    assert_eq!(failed.len(), 1, "a record without a key fails");
}

#[test]
fn passthrough_returns_records_unchanged() {
    let p = plugin("passthrough", serde_json::json!({}));
    let records: Vec<String> = (0..2000).map(|i| format!("record {i}")).collect();
    let refs: Vec<&str> = records.iter().map(String::as_str).collect();
    let (out, failed) = run(&p, &refs);
    assert!(failed.is_empty());
    assert_eq!(out.iter().map(|i| String::from_utf8_lossy(&i.record.data).into_owned()).collect::<Vec<_>>(), records);
}

#[test]
fn kinesis_route_reads_the_kinesis_metadata() {
    let p = plugin("kinesis_route", serde_json::json!({}));
    let kinesis = sluice::record::KinesisMetadata {
        shard_id: std::sync::Arc::from("shardId-000000000003"),
        sequence_number: "49590338271490256608559692538361571095921575989136588898".into(),
        subsequence_number: 2,
        partition_key: "device-17".into(),
    };
    let from_stream = Record {
        origin: Some(std::sync::Arc::new(sluice::record::Origin::Kinesis(kinesis))),
        ..Record::new(0, 1, Bytes::from("a"))
    };
    let items = vec![Item::new(from_stream), Item::new(Record::new(1, 1, Bytes::from("b")))];
    let mut failed = Vec::new();
    let out = p.process(items, &mut failed);
    assert_eq!(out.len(), 1);
    let keys = &out[0].keys.as_ref().unwrap().lambda;
    assert_eq!(keys["shard_id"], "shardId-000000000003");
    assert_eq!(keys["partition_key"], "device-17");
    assert_eq!(failed.len(), 1, "a record without Kinesis metadata is ProcessingFailed");
    assert_eq!(failed[0].record.data, "b");
}

#[test]
fn kafka_route_reads_the_kafka_metadata_of_abi_version_3() {
    let p = plugin("kafka_route", serde_json::json!({}));
    let kafka = sluice::record::KafkaMetadata {
        topic: std::sync::Arc::from("orders"),
        partition: 5,
        offset: 1234,
        timestamp_ms: Some(1_700_000_000_000),
        key: Some(Bytes::from("customer-9")),
        headers: vec![("region".into(), Bytes::from("eu")), ("empty".into(), Bytes::new())],
    };
    let from_topic = Record {
        origin: Some(std::sync::Arc::new(sluice::record::Origin::Kafka(kafka))),
        ..Record::new(0, 1, Bytes::from("a"))
    };
    let items = vec![Item::new(from_topic), Item::new(Record::new(1, 1, Bytes::from("b")))];
    let mut failed = Vec::new();
    let out = p.process(items, &mut failed);
    assert_eq!(out.len(), 1);
    let keys = &out[0].keys.as_ref().unwrap().lambda;
    assert_eq!(keys["topic"], "orders");
    assert_eq!(keys["partition"], "5");
    assert_eq!(keys["offset"], "1234");
    assert_eq!(keys["key"], "customer-9");
    assert_eq!(keys["h_region"], "eu");
    assert_eq!(keys["h_empty"], "");
    assert_eq!(failed.len(), 1, "a record without Kafka metadata is ProcessingFailed");
}
