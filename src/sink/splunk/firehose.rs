//! Splunk in Firehose's API: `SplunkDestinationConfiguration` (CreateDeliveryStream) → a
//! `splunk:` block, and a `SplunkSpec` → `SplunkDestinationDescription`. A config-layer module.

use serde_json::{json, Map, Value};

use super::config::SplunkSpec;
use crate::config::control_plane::ControlPlane;
use crate::config::kit::firehose::{endpoint_common, Members, Result, Translated};
use crate::config::kit::{DeliveryMetric, DescribeContext};

/// Its delivery metrics (`sluice_delivery_to_splunk_*`).
pub const METRIC: DeliveryMetric = DeliveryMetric {
    name: "splunk",
    firehose: "DeliveryToSplunk",
    delivered: "events Splunk HEC acknowledged as indexed",
};

pub const MEMBER: &str = "SplunkDestinationConfiguration";

/// A stored `MEMBER` made ready to describe: the HEC token is never echoed.
pub fn describe_stored(d: &mut Map<String, Value>) {
    d.remove("HECToken");
}

const MEMBERS: &[&str] = &[
    "HECEndpoint",
    "HECEndpointType",
    "HECToken",
    "HECAcknowledgmentTimeoutInSeconds",
    "RetryOptions",
    "S3BackupMode",
    "S3Configuration",
    "ProcessingConfiguration",
    "CloudWatchLoggingOptions",
    "BufferingHints",
];

pub fn translate<'a>(config: &'a Value, control: &ControlPlane) -> Result<Translated<'a>> {
    let m = Members::of(config, MEMBER, MEMBERS)?;
    let mut d = Map::new();
    d.insert("hec_endpoint".into(), m.required_str("HECEndpoint")?.into());
    d.insert("hec_token".into(), m.required_str("HECToken")?.into());
    if let Some(t) = m.str("HECEndpointType")? {
        d.insert("hec_endpoint_type".into(), t.into());
    }
    if let Some(t) = m.number("HECAcknowledgmentTimeoutInSeconds")? {
        d.insert("hec_acknowledgment_timeout_seconds".into(), (t as u64).into());
    }
    endpoint_common(&m, &mut d, control, "FailedEventsOnly")?;
    Ok(m.translated(json!({ "splunk": d })))
}

/// The token is never described (Firehose omits it too).
pub fn describe(s: &SplunkSpec, ctx: &DescribeContext) -> (&'static str, Value) {
    let description = json!({
        "HECEndpoint": s.endpoint,
        "HECEndpointType": if s.raw { "Raw" } else { "Event" },
        "HECAcknowledgmentTimeoutInSeconds": s.ack_timeout.as_secs(),
        "RetryOptions": { "DurationInSeconds": s.retry_duration.as_secs() },
        "S3BackupMode": if s.backup_all { "AllEvents" } else { "FailedEventsOnly" },
        "S3DestinationDescription": ctx.backup,
        "ProcessingConfiguration": ctx.processing,
        "CloudWatchLoggingOptions": { "Enabled": false },
        "BufferingHints": ctx.buffering,
    });
    ("SplunkDestinationDescription", description)
}
