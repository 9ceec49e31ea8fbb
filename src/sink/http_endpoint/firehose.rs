//! The HTTP endpoint in Firehose's API: `HttpEndpointDestinationConfiguration` (CreateDeliveryStream)
//! → an `http_endpoint:` block, and an `HttpEndpointSpec` → `HttpEndpointDestinationDescription`.
//! A config-layer module.

use serde_json::{json, Map, Value};

use super::config::HttpEndpointSpec;
use crate::config::control_plane::ControlPlane;
use crate::config::kit::firehose::{endpoint_common, Members, Result, TranslateError, Translated};
use crate::config::kit::{DeliveryMetric, DescribeContext};

/// Its delivery metrics (`sluice_delivery_to_http_endpoint_*`).
pub const METRIC: DeliveryMetric = DeliveryMetric {
    name: "http_endpoint",
    firehose: "DeliveryToHttpEndpoint",
    delivered: "records the HTTP endpoint accepted (a 200 echoing the request id)",
};

pub const MEMBER: &str = "HttpEndpointDestinationConfiguration";

/// A stored `MEMBER` made ready to describe: the endpoint's access key is never echoed.
pub fn describe_stored(d: &mut Map<String, Value>) {
    if let Some(Value::Object(endpoint)) = d.get_mut("EndpointConfiguration") {
        endpoint.remove("AccessKey");
    }
}

const MEMBERS: &[&str] = &[
    "EndpointConfiguration",
    "BufferingHints",
    "CloudWatchLoggingOptions",
    "RequestConfiguration",
    "ProcessingConfiguration",
    "RoleARN",
    "RetryOptions",
    "S3BackupMode",
    "S3Configuration",
];

pub fn translate<'a>(config: &'a Value, control: &ControlPlane) -> Result<Translated<'a>> {
    let m = Members::of(config, MEMBER, MEMBERS)?;
    let endpoint = m
        .get("EndpointConfiguration")
        .ok_or_else(|| TranslateError(format!("{} is required", m.child("EndpointConfiguration"))))?;
    let e = Members::of(endpoint, &m.child("EndpointConfiguration"), &["Url", "Name", "AccessKey"])?;
    let mut d = Map::new();
    d.insert("url".into(), e.required_str("Url")?.into());
    if let Some(n) = e.str("Name")? {
        d.insert("name".into(), n.into());
    }
    if let Some(k) = e.str("AccessKey")? {
        d.insert("access_key".into(), k.into());
    }
    if let Some(rc) = m.get("RequestConfiguration") {
        let rc = Members::of(rc, &m.child("RequestConfiguration"), &["ContentEncoding", "CommonAttributes"])?;
        if let Some(enc) = rc.str("ContentEncoding")? {
            d.insert("content_encoding".into(), enc.into());
        }
        if let Some(attrs) = rc.get("CommonAttributes").and_then(Value::as_array) {
            let mut map = Map::new();
            for (i, a) in attrs.iter().enumerate() {
                let a = Members::of(
                    a,
                    &format!("{}.CommonAttributes[{i}]", rc.path),
                    &["AttributeName", "AttributeValue"],
                )?;
                map.insert(a.required_str("AttributeName")?.into(), a.required_str("AttributeValue")?.into());
            }
            d.insert("common_attributes".into(), map.into());
        }
    }
    endpoint_common(&m, &mut d, control, "FailedDataOnly")?;
    Ok(m.translated(json!({ "http_endpoint": d })))
}

/// Firehose's `HttpEndpointDestinationDescription`. The access key is never described (Firehose
/// omits it too).
pub fn describe(h: &HttpEndpointSpec, ctx: &DescribeContext) -> (&'static str, Value) {
    let attributes: Vec<Value> =
        h.common_attributes.iter().map(|(k, v)| json!({ "AttributeName": k, "AttributeValue": v })).collect();
    let mut endpoint = json!({ "Url": h.url });
    if let (Some(name), Some(obj)) = (&h.name, endpoint.as_object_mut()) {
        obj.insert("Name".into(), name.clone().into());
    }
    let description = json!({
        "EndpointConfiguration": endpoint,
        "BufferingHints": ctx.buffering,
        "CloudWatchLoggingOptions": { "Enabled": false },
        "RequestConfiguration": {
            "ContentEncoding": if h.gzip { "GZIP" } else { "NONE" },
            "CommonAttributes": attributes,
        },
        "ProcessingConfiguration": ctx.processing,
        "RoleARN": ctx.role_arn,
        "RetryOptions": { "DurationInSeconds": h.retry_duration.as_secs() },
        "S3BackupMode": if h.backup_all { "AllData" } else { "FailedDataOnly" },
        "S3DestinationDescription": ctx.backup,
    });
    ("HttpEndpointDestinationDescription", description)
}
