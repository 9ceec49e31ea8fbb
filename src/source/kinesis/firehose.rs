//! The Kinesis source in Firehose's API: a `KinesisStreamAsSource` stream's
//! `KinesisStreamSourceConfiguration` (CreateDeliveryStream) → a `kinesis:` source block, and a
//! `KinesisSourceSpec` → `KinesisStreamSourceDescription`. A config-layer module.

use serde_json::{json, Map, Value};

use super::config::KinesisSourceSpec;
use crate::config::control_plane::ControlPlane;
use crate::config::kit::firehose::{Members, Result, TranslateError};

/// Firehose's DeliveryStreamType for this source.
pub const STREAM_TYPE: &str = "KinesisStreamAsSource";
pub const MEMBER: &str = "KinesisStreamSourceConfiguration";

/// The `kinesis:` source block; `control_plane.kinesis` gives the endpoint.
pub fn translate(config: Option<&Value>, control: &ControlPlane) -> Result<Value> {
    let config = config.ok_or_else(|| TranslateError(format!("{MEMBER} is required for a {STREAM_TYPE} stream")))?;
    let m = Members::of(config, MEMBER, &["KinesisStreamARN", "RoleARN"])?;
    let mut kinesis = Map::new();
    kinesis.insert("stream_arn".into(), m.required_str("KinesisStreamARN")?.into());
    if let Some(endpoint) = &control.kinesis_endpoint {
        kinesis.insert("endpoint".into(), endpoint.clone().into());
    }
    // Firehose reads a source stream from the moment the delivery stream is created.
    kinesis.insert("starting_position".into(), "LATEST".into());
    Ok(json!({ "kinesis": kinesis }))
}

/// `start_seconds`: when reading started (LATEST means from the pipeline's first start).
pub fn describe(k: &KinesisSourceSpec, role_arn: &str, start_seconds: f64) -> Value {
    json!({ "KinesisStreamSourceDescription": {
        "KinesisStreamARN": k.stream_arn,
        "RoleARN": role_arn,
        "DeliveryStartTimestamp": start_seconds,
    } })
}
