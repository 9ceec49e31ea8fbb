//! DescribeDeliveryStream for an API-created stream: its stored configuration in the
//! `…Description` shapes of the Firehose model, with the defaults AWS fills in made explicit.
//! Secrets the request carried are never echoed: each destination kind takes its own out
//! (`config::destinations::describe_stored`).

use serde_json::{json, Map, Value};

use super::translate::S3_MEMBERS;
use super::StoredStream;

/// Firehose's defaults for what a configuration may leave out.
fn fill_s3_defaults(d: &mut Map<String, Value>) {
    d.entry("BufferingHints").or_insert_with(|| json!({ "SizeInMBs": 5, "IntervalInSeconds": 300 }));
    d.entry("CompressionFormat").or_insert_with(|| "UNCOMPRESSED".into());
    d.entry("EncryptionConfiguration").or_insert_with(|| json!({ "NoEncryptionConfig": "NoEncryption" }));
    d.entry("CloudWatchLoggingOptions").or_insert_with(|| json!({ "Enabled": false }));
    d.entry("Prefix").or_insert_with(|| "".into());
}

fn s3_description(config: &Value) -> Value {
    let mut d: Map<String, Value> = config
        .as_object()
        .map(|o| {
            o.iter().filter(|(k, _)| S3_MEMBERS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
        })
        .unwrap_or_default();
    fill_s3_defaults(&mut d);
    Value::Object(d)
}

/// `Destinations[0]` for a stored stream.
pub fn destination(stream: &StoredStream) -> Value {
    let config = stream.destination.as_object().cloned().unwrap_or_default();
    let mut out = Map::new();
    out.insert("DestinationId".into(), "destinationId-000000000001".into());
    match stream.destination_key.as_str() {
        "S3DestinationConfiguration" | "ExtendedS3DestinationConfiguration" => {
            // AWS runs a plain S3 destination as an Extended S3 one and describes both.
            let mut extended = config.clone();
            fill_s3_defaults(&mut extended);
            extended.entry("S3BackupMode").or_insert_with(|| "Disabled".into());
            extended.entry("ProcessingConfiguration").or_insert_with(|| json!({ "Enabled": false, "Processors": [] }));
            extended.entry("DataFormatConversionConfiguration").or_insert_with(|| json!({ "Enabled": false }));
            extended.entry("DynamicPartitioningConfiguration").or_insert_with(|| json!({ "Enabled": false }));
            out.insert("ExtendedS3DestinationDescription".into(), Value::Object(extended));
            out.insert("S3DestinationDescription".into(), s3_description(&stream.destination));
        }
        key => {
            let mut d = config;
            if let Some(s3) = d.remove("S3Configuration") {
                d.insert("S3DestinationDescription".into(), s3_description(&s3));
            }
            d.entry("BufferingHints").or_insert_with(|| json!({ "SizeInMBs": 5, "IntervalInSeconds": 300 }));
            // Secrets out, the kind's own defaults in.
            crate::config::destinations::describe_stored(key, &mut d);
            d.entry("CloudWatchLoggingOptions").or_insert_with(|| json!({ "Enabled": false }));
            d.entry("ProcessingConfiguration").or_insert_with(|| json!({ "Enabled": false, "Processors": [] }));
            let name = key.replace("DestinationConfiguration", "DestinationDescription");
            out.insert(name, Value::Object(d));
        }
    }
    Value::Object(out)
}

/// `DeliveryStreamEncryptionConfiguration`.
pub fn encryption(stream: &StoredStream) -> Value {
    match &stream.encryption {
        Some(e) => {
            let mut d = json!({ "KeyType": e.key_type, "Status": if e.enabled { "ENABLED" } else { "DISABLED" } });
            if let (Some(arn), Some(o)) = (&e.key_arn, d.as_object_mut()) {
                o.insert("KeyARN".into(), arn.clone().into());
            }
            d
        }
        None => json!({ "Status": "DISABLED" }),
    }
}
