//! Reading a Firehose request's JSON (CreateDeliveryStream, UpdateDestination) into a sluice
//! `destination:` block: every member either maps onto something sluice runs or is refused with
//! InvalidArgumentException naming it, so nothing is accepted and then ignored. Each destination's
//! `firehose.rs` translates its own member with these; `stored::translate` does the rest.

use serde_json::{Map, Value};
use thiserror::Error;

use crate::config::control_plane::ControlPlane;

/// Why a request's configuration cannot run: the message names the Firehose member.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct TranslateError(pub String);

pub type Result<T> = std::result::Result<T, TranslateError>;

pub fn refuse<T>(message: impl Into<String>) -> Result<T> {
    Err(TranslateError(message.into()))
}

/// Object members, refusing any the translation does not know (so none is silently dropped).
pub struct Members<'a> {
    pub path: String,
    pub object: &'a Map<String, Value>,
}

impl<'a> Members<'a> {
    pub fn of(value: &'a Value, path: &str, known: &[&str]) -> Result<Self> {
        let Some(object) = value.as_object() else { return refuse(format!("{path} must be an object")) };
        if let Some(unknown) = object.keys().find(|k| !known.contains(&k.as_str())) {
            return refuse(format!("{path}.{unknown} is not supported by sluice"));
        }
        Ok(Self { path: path.to_string(), object })
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.object.get(key).filter(|v| !v.is_null())
    }

    pub fn str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => refuse(format!("{}.{key} must be a string", self.path)),
        }
    }

    pub fn required_str(&self, key: &str) -> Result<&'a str> {
        self.str(key)?.ok_or_else(|| TranslateError(format!("{}.{key} is required", self.path)))
    }

    pub fn number(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => {
                v.as_f64().map(Some).ok_or_else(|| TranslateError(format!("{}.{key} must be a number", self.path)))
            }
        }
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => refuse(format!("{}.{key} must be true or false", self.path)),
        }
    }

    pub fn child(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }
}

/// A destination member translated: the sluice `destination:` block, and the member's buffering
/// hints and processing configuration (with its path, for errors).
pub struct Translated<'a> {
    pub destination: Value,
    pub buffering: Option<&'a Value>,
    pub processing: Option<(&'a Value, String)>,
}

impl<'a> Members<'a> {
    /// `destination`, with this member's own BufferingHints and ProcessingConfiguration.
    pub fn translated(&self, destination: Value) -> Translated<'a> {
        Translated {
            destination,
            buffering: self.get("BufferingHints"),
            processing: self.get("ProcessingConfiguration").map(|p| (p, self.child("ProcessingConfiguration"))),
        }
    }
}

/// The members of an S3 configuration (and of the S3 part of an Extended S3 one).
pub const S3_MEMBERS: &[&str] = &[
    "RoleARN",
    "BucketARN",
    "Prefix",
    "ErrorOutputPrefix",
    "BufferingHints",
    "CompressionFormat",
    "EncryptionConfiguration",
    "CloudWatchLoggingOptions",
];
/// The bucket name in a BucketARN (`arn:aws:s3:::name`; a malformed ARN's last `:` part).
pub fn bucket_name(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

/// An S3 configuration → a sluice object-store block (s3: or local:), through the bucket mapping.
/// Returns the block and the bucket name.
pub fn object_store(m: &Members<'_>, control: &ControlPlane) -> Result<(Value, String)> {
    let arn = m.required_str("BucketARN")?;
    let bucket = bucket_name(arn);
    if bucket.is_empty() {
        return refuse(format!("{} `{arn}` names no bucket", m.child("BucketARN")));
    }
    let Some(target) = control.bucket(bucket) else {
        return refuse(format!(
            "{} names bucket `{bucket}`, which control_plane.buckets does not map (add it, or \"*\")",
            m.child("BucketARN")
        ));
    };
    let mut block = target.to_destination(bucket);
    let Some(inner) = block.as_object_mut().and_then(|o| o.values_mut().next()).and_then(Value::as_object_mut) else {
        return refuse("internal: a bucket mapping is not an object");
    };
    if let Some(p) = m.str("Prefix")? {
        inner.insert("prefix".into(), p.into());
    }
    if let Some(p) = m.str("ErrorOutputPrefix")? {
        inner.insert("error_output_prefix".into(), p.into());
    }
    if let Some(c) = m.str("CompressionFormat")? {
        inner.insert("compression".into(), c.into());
    }
    if let Some(e) = m.get("EncryptionConfiguration") {
        let e = Members::of(e, &m.child("EncryptionConfiguration"), &["NoEncryptionConfig", "KMSEncryptionConfig"])?;
        if let Some(kms) = e.get("KMSEncryptionConfig") {
            Members::of(kms, &e.child("KMSEncryptionConfig"), &["AWSKMSKeyARN"])?.required_str("AWSKMSKeyARN")?;
        }
    }
    if let Some(cw) = m.get("CloudWatchLoggingOptions") {
        Members::of(cw, &m.child("CloudWatchLoggingOptions"), &["Enabled", "LogGroupName", "LogStreamName"])?;
    }
    Ok((block, bucket.to_string()))
}

/// The required `S3Configuration` member (a backup or staging bucket) as an object-store block,
/// with the member itself (for its BufferingHints) and the bucket's name.
pub fn s3_configuration<'a>(m: &Members<'a>, control: &ControlPlane) -> Result<(Value, String)> {
    s3_members(m, control).map(|(block, bucket, _)| (block, bucket))
}

/// [`s3_configuration`], also returning the member.
pub fn s3_members<'a>(m: &Members<'a>, control: &ControlPlane) -> Result<(Value, String, Members<'a>)> {
    let s3 = m
        .get("S3Configuration")
        .ok_or_else(|| TranslateError(format!("{} is required", m.child("S3Configuration"))))?;
    let s3 = Members::of(s3, &m.child("S3Configuration"), S3_MEMBERS)?;
    let (block, bucket) = object_store(&s3, control)?;
    Ok((block, bucket, s3))
}

/// What the HTTP endpoint, search and Splunk destinations share: retry duration, backup mode and
/// the backup bucket.
pub fn endpoint_common(
    m: &Members<'_>,
    d: &mut Map<String, Value>,
    control: &ControlPlane,
    default_mode: &str,
) -> Result<()> {
    if let Some(r) = m.get("RetryOptions") {
        let r = Members::of(r, &m.child("RetryOptions"), &["DurationInSeconds"])?;
        if let Some(s) = r.number("DurationInSeconds")? {
            d.insert("retry_duration_seconds".into(), (s as u64).into());
        }
    }
    d.insert("s3_backup_mode".into(), m.str("S3BackupMode")?.unwrap_or(default_mode).into());
    if let Some(cw) = m.get("CloudWatchLoggingOptions") {
        Members::of(cw, &m.child("CloudWatchLoggingOptions"), &["Enabled", "LogGroupName", "LogStreamName"])?;
    }
    let (backup, _) = s3_configuration(m, control)?;
    d.insert("backup".into(), backup);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_come_from_the_arn() {
        assert_eq!(bucket_name("arn:aws:s3:::data-lake-raw"), "data-lake-raw");
        assert_eq!(bucket_name("arn:aws:s3::firehosetestbucket"), "firehosetestbucket");
    }
}
