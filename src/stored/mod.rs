//! Stored streams: delivery streams created, updated and deleted over the Firehose API (the control
//! plane: `api/control.rs` answers the operations, `daemon/control.rs` applies them).
//!
//! A stream created with CreateDeliveryStream is kept as the request said it, in
//! `<storage dir>/streams/<name>.json` (written to a temporary file, fsynced, renamed over, and the
//! directory fsynced, so a crash leaves either the old or the new record). At start every stored
//! stream is translated again (`translate.rs`) and started with its WAL, so an API-created stream
//! survives restarts like a declared one. `describe.rs` answers DescribeDeliveryStream from the
//! stored request.

pub mod describe;
pub mod translate;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::control_plane::ControlPlane;
use crate::config::{PipelineSpec, ServerSideEncryption, StoreSpec};

pub use crate::config::kit::firehose::TranslateError;

/// What DescribeDeliveryStream reports for an API-created stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamStatus {
    #[default]
    Active,
    /// DeleteDeliveryStream was called: the stream drains (or, forced, is discarded) and then goes.
    Deleting,
}

impl StreamStatus {
    pub fn name(self) -> &'static str {
        match self {
            StreamStatus::Active => "ACTIVE",
            StreamStatus::Deleting => "DELETING",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value", default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// The stream's server-side encryption (Start/StopDeliveryStreamEncryption).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// AWS_OWNED_CMK | CUSTOMER_MANAGED_CMK
    pub key_type: String,
    pub key_arn: Option<String>,
    pub enabled: bool,
}

/// An API-created stream as stored: the request's configuration plus what the API changed since.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredStream {
    pub name: String,
    pub stream_type: String,
    #[serde(default)]
    pub status: StreamStatus,
    #[serde(default)]
    pub force_delete: bool,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub version: u32,
    /// The request member that configured the destination, e.g. `ExtendedS3DestinationConfiguration`.
    pub destination_key: String,
    pub destination: Value,
    /// The source member: `KinesisStreamSourceConfiguration` or `MSKSourceConfiguration`.
    #[serde(default)]
    pub source: Option<Value>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub encryption: Option<Encryption>,
}

/// The pipeline a stored stream runs.
pub fn build_spec(stream: &StoredStream, control: &ControlPlane) -> Result<PipelineSpec, TranslateError> {
    let json = translate::pipeline(stream, control)?;
    let origin = format!("DeliveryStream {}", stream.name);
    let mut spec = crate::config::pipeline_from_text(&json.to_string(), &stream.name, &origin).map_err(|errors| {
        let messages: Vec<String> = errors.0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
        TranslateError(format!("the configuration cannot run: {}", messages.join("; ")))
    })?;
    spec.version = stream.version;
    // Each Lambda processor became a WASM one, in order: error records name the ARN, as Firehose's do.
    let mut arns = lambda_arns(stream).into_iter();
    for p in &mut spec.processors {
        if let crate::config::ProcessorSpec::Wasm(settings) = p {
            settings.lambda_arn = arns.next();
        }
    }
    spec.origin = "the Firehose API".into();
    let encryption = destination_kms_key(stream).map(|key_id| ServerSideEncryption::Kms { key_id }).or_else(|| {
        stream.encryption.as_ref().filter(|e| e.enabled).map(|e| match &e.key_arn {
            Some(key) if e.key_type == "CUSTOMER_MANAGED_CMK" => ServerSideEncryption::Kms { key_id: key.clone() },
            _ => ServerSideEncryption::S3Managed,
        })
    });
    if let StoreSpec::S3 { encryption: sse, .. } = &mut spec.store.store {
        *sse = encryption;
    }
    Ok(spec)
}

/// The LambdaArn of each Lambda processor of the request, in order.
fn lambda_arns(stream: &StoredStream) -> Vec<String> {
    let processors = stream
        .destination
        .pointer("/ProcessingConfiguration/Processors")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    processors
        .iter()
        .filter(|p| p.get("Type").and_then(Value::as_str) == Some("Lambda"))
        .filter_map(|p| {
            p.get("Parameters")?
                .as_array()?
                .iter()
                .find(|param| param.get("ParameterName").and_then(Value::as_str) == Some("LambdaArn"))?
                .get("ParameterValue")?
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

/// The destination's own `EncryptionConfiguration.KMSEncryptionConfig.AWSKMSKeyARN`.
fn destination_kms_key(stream: &StoredStream) -> Option<String> {
    let config = if stream.destination_key.contains("S3Destination") {
        &stream.destination
    } else {
        stream.destination.get("S3Configuration")?
    };
    config.pointer("/EncryptionConfiguration/KMSEncryptionConfig/AWSKMSKeyARN")?.as_str().map(str::to_string)
}

/// Where stored streams live: one JSON file per stream.
pub struct StreamStore {
    dir: PathBuf,
}

impl StreamStore {
    pub fn open(storage_dir: &Path) -> std::io::Result<Self> {
        let dir = storage_dir.join("streams");
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// Every stored stream; an unreadable file is logged and skipped (it stays for a person to see).
    pub fn load_all(&self) -> Vec<StoredStream> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut streams = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<StoredStream>(&b).map_err(|e| e.to_string()))
            {
                Ok(s) => streams.push(s),
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "cannot read a stored delivery stream; it is not started")
                }
            }
        }
        streams.sort_by(|a, b| a.name.cmp(&b.name));
        streams
    }

    /// Stores the stream atomically and durably.
    pub fn save(&self, stream: &StoredStream) -> std::io::Result<()> {
        crate::durable_file::replace_json(&self.dir.join(format!("{}.json", stream.name)), stream)
    }

    pub fn remove(&self, name: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.dir.join(format!("{name}.json"))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::fs::File::open(&self.dir)?.sync_all()
    }
}

/// Recursive merge for UpdateDestination: objects merge member by member, anything else replaces.
pub fn merge(into: &mut Value, update: &Value) {
    match (into, update) {
        (Value::Object(base), Value::Object(changes)) => {
            for (k, v) in changes {
                match base.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        base.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::control_plane::BucketTarget;

    fn control() -> ControlPlane {
        let mut c = ControlPlane { max_streams: 10, ..Default::default() };
        c.buckets.insert("*".into(), BucketTarget::Local { path: "/tmp/sluice-test/{bucket}".into() });
        c
    }

    fn stream(key: &str, destination: Value) -> StoredStream {
        StoredStream {
            name: "s".into(),
            stream_type: "DirectPut".into(),
            status: StreamStatus::Active,
            force_delete: false,
            created_ms: 0,
            updated_ms: 0,
            version: 3,
            destination_key: key.into(),
            destination,
            source: None,
            tags: vec![],
            encryption: None,
        }
    }

    #[test]
    fn an_extended_s3_request_becomes_a_local_pipeline_with_its_settings() {
        let s = stream(
            "ExtendedS3DestinationConfiguration",
            serde_json::json!({
                "RoleARN": "arn:aws:iam::1:role/r", "BucketARN": "arn:aws:s3:::lake",
                "Prefix": "p/!{timestamp:yyyy}/", "ErrorOutputPrefix": "errors/",
                "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 60}, "CompressionFormat": "GZIP",
            }),
        );
        let spec = build_spec(&s, &control()).unwrap();
        assert_eq!(spec.version, 3);
        assert_eq!(spec.buffering.size_bytes, 64 << 20);
        assert_eq!(spec.store.store, StoreSpec::Local { path: "/tmp/sluice-test/lake".into() });
        assert_eq!(spec.store.configured_prefix.as_deref(), Some("p/!{timestamp:yyyy}/"));
    }

    #[test]
    fn members_sluice_cannot_run_are_refused_by_name() {
        let s = stream(
            "ExtendedS3DestinationConfiguration",
            serde_json::json!({ "BucketARN": "arn:aws:s3:::lake", "S3BackupMode": "Enabled" }),
        );
        assert!(build_spec(&s, &control()).unwrap_err().0.contains("S3BackupMode"));
        let s = stream("SnowflakeDestinationConfiguration", serde_json::json!({}));
        assert!(build_spec(&s, &control())
            .unwrap_err()
            .0
            .contains("SnowflakeDestinationConfiguration is not supported"));
        let s = stream(
            "ExtendedS3DestinationConfiguration",
            serde_json::json!({ "BucketARN": "arn:aws:s3:::lake", "VpcConfiguration": {} }),
        );
        assert!(build_spec(&s, &control()).unwrap_err().0.contains("VpcConfiguration is not supported"));
    }

    #[test]
    fn a_lambda_without_a_functions_dir_is_refused() {
        let s = stream(
            "ExtendedS3DestinationConfiguration",
            serde_json::json!({ "BucketARN": "arn:aws:s3:::lake", "ProcessingConfiguration": {"Enabled": true, "Processors": [
                {"Type": "Lambda", "Parameters": [{"ParameterName": "LambdaArn", "ParameterValue": "arn:aws:lambda:us-east-1:1:function:redact"}]}]}}),
        );
        assert!(build_spec(&s, &control()).unwrap_err().0.contains("functions.dir"));
    }

    #[test]
    fn merge_keeps_what_the_update_does_not_name() {
        let mut base = serde_json::json!({ "A": 1, "B": { "X": 1, "Y": 2 } });
        merge(&mut base, &serde_json::json!({ "B": { "Y": 3 }, "C": [1] }));
        assert_eq!(base, serde_json::json!({ "A": 1, "B": { "X": 1, "Y": 3 }, "C": [1] }));
    }
}
