//! Redshift in Firehose's API: `RedshiftDestinationConfiguration` (CreateDeliveryStream) → a
//! `redshift:` block, and a `RedshiftSpec` → `RedshiftDestinationDescription`. A config-layer module.

use serde_json::{json, Map, Value};

use super::config::RedshiftSpec;
use crate::config::control_plane::ControlPlane;
use crate::config::kit::firehose::{refuse, s3_members, Members, Result, TranslateError, Translated};
use crate::config::kit::{DeliveryMetric, DescribeContext};

/// Its delivery metrics (`sluice_delivery_to_redshift_*`).
pub const METRIC: DeliveryMetric = DeliveryMetric {
    name: "redshift",
    firehose: "DeliveryToRedshift",
    delivered: "records of batches Redshift's COPY loaded (each batch once)",
};

pub const MEMBER: &str = "RedshiftDestinationConfiguration";

/// A stored `MEMBER` made ready to describe: the password is never echoed, and Redshift buffers as
/// its intermediate S3 configuration says (it has no hints of its own).
pub fn describe_stored(d: &mut Map<String, Value>) {
    d.remove("Password");
    d.remove("BufferingHints");
    d.entry("S3BackupMode").or_insert_with(|| "Disabled".into());
}

const MEMBERS: &[&str] = &[
    "RoleARN",
    "ClusterJDBCURL",
    "CopyCommand",
    "Username",
    "Password",
    "RetryOptions",
    "S3Configuration",
    "ProcessingConfiguration",
    "S3BackupMode",
    "CloudWatchLoggingOptions",
];

pub fn translate<'a>(config: &'a Value, control: &ControlPlane) -> Result<Translated<'a>> {
    let m = Members::of(config, MEMBER, MEMBERS)?;
    let mut d = Map::new();
    d.insert("cluster_jdbc_url".into(), m.required_str("ClusterJDBCURL")?.into());
    d.insert("username".into(), m.required_str("Username")?.into());
    d.insert("password".into(), m.required_str("Password")?.into());
    d.insert("role_arn".into(), m.required_str("RoleARN")?.into());
    let copy = m.get("CopyCommand").ok_or_else(|| TranslateError(format!("{} is required", m.child("CopyCommand"))))?;
    let copy = Members::of(copy, &m.child("CopyCommand"), &["DataTableName", "DataTableColumns", "CopyOptions"])?;
    let mut c = Map::new();
    c.insert("data_table_name".into(), copy.required_str("DataTableName")?.into());
    if let Some(columns) = copy.str("DataTableColumns")? {
        c.insert("data_table_columns".into(), columns.into());
    }
    if let Some(options) = copy.str("CopyOptions")? {
        c.insert("copy_options".into(), options.into());
    }
    d.insert("copy_command".into(), c.into());
    if let Some(r) = m.get("RetryOptions") {
        let r = Members::of(r, &m.child("RetryOptions"), &["DurationInSeconds"])?;
        if let Some(s) = r.number("DurationInSeconds")? {
            d.insert("retry_duration_seconds".into(), (s as u64).into());
        }
    }
    if let Some(mode) = m.str("S3BackupMode")?.filter(|mode| *mode != "Disabled") {
        return refuse(format!(
            "{} {mode} is not supported by sluice: the staged objects stay in the intermediate bucket",
            m.child("S3BackupMode")
        ));
    }
    if let Some(cw) = m.get("CloudWatchLoggingOptions") {
        Members::of(cw, &m.child("CloudWatchLoggingOptions"), &["Enabled", "LogGroupName", "LogStreamName"])?;
    }
    let (block, bucket, s3) = s3_members(&m, control)?;
    let Some(inner) = block.get("s3").cloned() else {
        return refuse(format!("{} maps bucket `{bucket}` to a local directory; Redshift's COPY reads from S3, so it must map to an S3 store", m.child("S3Configuration")));
    };
    d.insert("s3".into(), inner);
    // Buffering hints are the staging bucket's, as in Firehose's model.
    let mut translated = m.translated(json!({ "redshift": d }));
    translated.buffering = s3.get("BufferingHints");
    Ok(translated)
}

/// The password is not described (Firehose does not either).
pub fn describe(r: &RedshiftSpec, ctx: &DescribeContext) -> (&'static str, Value) {
    let mut copy = json!({ "DataTableName": r.copy.table });
    if let Some(columns) = &r.copy.columns {
        copy["DataTableColumns"] = columns.clone().into();
    }
    if let Some(options) = &r.copy.options {
        copy["CopyOptions"] = options.clone().into();
    }
    let description = json!({
        "RoleARN": r.role_arn,
        "ClusterJDBCURL": r.cluster_jdbc_url,
        "CopyCommand": copy,
        "Username": r.username,
        "RetryOptions": { "DurationInSeconds": r.retry_duration.as_secs() },
        "S3DestinationDescription": ctx.backup,
        "ProcessingConfiguration": ctx.processing,
        "S3BackupMode": "Disabled",
        "CloudWatchLoggingOptions": { "Enabled": false },
    });
    ("RedshiftDestinationDescription", description)
}
