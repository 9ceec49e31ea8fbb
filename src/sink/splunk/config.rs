//! `destination: splunk:` as written (Firehose's SplunkDestinationConfiguration in the config's
//! snake case), its validated form, and the rules between them. A config-layer module: it imports
//! only the config kit, so `config` can list it without importing the sink.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::kit::{ca_file, choose, http_url, retry_duration, Checker, RawDestination, RawTls, Secret, Spanned};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSplunk {
    pub hec_endpoint: Spanned<String>,
    /// Event | Raw
    pub hec_endpoint_type: Option<Spanned<String>>,
    pub hec_token: Spanned<String>,
    /// 180-600
    pub hec_acknowledgment_timeout_seconds: Option<Spanned<u64>>,
    pub retry_duration_seconds: Option<Spanned<u64>>,
    pub tls: Option<Spanned<RawTls>>,
    /// FailedEventsOnly | AllEvents
    pub s3_backup_mode: Option<Spanned<String>>,
    pub backup: Spanned<RawDestination>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SplunkSpec {
    pub endpoint: String,
    /// `Raw` (records concatenated) rather than `Event`.
    pub raw: bool,
    pub token: Secret,
    pub ack_timeout: Duration,
    pub retry_duration: Duration,
    pub ca_file: Option<PathBuf>,
    pub backup_all: bool,
}

pub fn validate(c: &mut Checker, s: &RawSplunk, field: &str) -> Option<SplunkSpec> {
    let before = c.error_count();
    http_url(c, &s.hec_endpoint, &format!("{field}.hec_endpoint"));
    let mut raw = false;
    let types = [("Event", false), ("Raw", true)];
    choose(c, &s.hec_endpoint_type, &format!("{field}.hec_endpoint_type"), &types, &mut raw);
    if s.hec_token.value.is_empty() {
        c.at(&s.hec_token, &format!("{field}.hec_token"), "must not be empty");
    }
    let ack = s.hec_acknowledgment_timeout_seconds.as_ref().map_or(180, |a| a.value);
    if let Some(a) = &s.hec_acknowledgment_timeout_seconds {
        if !(180..=600).contains(&a.value) {
            c.at(
                a,
                &format!("{field}.hec_acknowledgment_timeout_seconds"),
                "must be between 180 and 600 (Firehose's range)",
            );
        }
    }
    let retry = retry_duration(c, &s.retry_duration_seconds, field);
    let mut backup_all = false;
    let modes = [("FailedEventsOnly", false), ("AllEvents", true)];
    choose(c, &s.s3_backup_mode, &format!("{field}.s3_backup_mode"), &modes, &mut backup_all);
    let ca_file = ca_file(c, &s.tls, field);
    (c.error_count() == before).then(|| SplunkSpec {
        endpoint: s.hec_endpoint.value.clone(),
        raw,
        token: Secret::new(s.hec_token.value.clone()),
        ack_timeout: Duration::from_secs(ack),
        retry_duration: retry,
        ca_file,
        backup_all,
    })
}
