//! `destination: http_endpoint:` as written (Firehose's HttpEndpointDestinationConfiguration, spec
//! §7, in the config's snake case), its validated form, and the rules between them. A config-layer
//! module: it imports only the config kit, so `config` can list it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::kit::{ca_file, choose, retry_duration, Checker, RawDestination, RawTls, Secret, Spanned};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpEndpoint {
    pub url: Spanned<String>,
    /// Shown in metrics, logs and DescribeDeliveryStream (Firehose's EndpointConfiguration.Name).
    pub name: Option<Spanned<String>>,
    /// Sent as X-Amz-Firehose-Access-Key; never logged or described.
    pub access_key: Option<Spanned<String>>,
    /// NONE | GZIP
    pub content_encoding: Option<Spanned<String>>,
    pub common_attributes: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    pub retry_duration_seconds: Option<Spanned<u64>>,
    pub request_timeout_seconds: Option<Spanned<u64>>,
    pub tls: Option<Spanned<RawTls>>,
    /// FailedDataOnly | AllData
    pub s3_backup_mode: Option<Spanned<String>>,
    /// Where failed (or, with AllData, all) records go: an `s3:` or `local:` destination.
    pub backup: Spanned<RawDestination>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpEndpointSpec {
    pub url: String,
    pub name: Option<String>,
    pub access_key: Option<Secret>,
    pub gzip: bool,
    pub common_attributes: BTreeMap<String, String>,
    /// How long a failing batch is retried, from its first failure (Firehose: 0-7200 s, default 300).
    pub retry_duration: Duration,
    pub request_timeout: Duration,
    pub ca_file: Option<PathBuf>,
    /// `AllData`: every record is also written to the backup store.
    pub backup_all: bool,
}

/// Firehose's limits on the endpoint's configuration.
const MAX_URL: usize = 1_000;
const MAX_ACCESS_KEY: usize = 4_096;
const MAX_ATTRIBUTES: usize = 50;

pub fn validate(c: &mut Checker, h: &RawHttpEndpoint, field: &str) -> Option<HttpEndpointSpec> {
    let before = c.error_count();
    let url = &h.url.value;
    if url.is_empty() || url.len() > MAX_URL {
        c.at(&h.url, &format!("{field}.url"), format!("must be 1-{MAX_URL} characters"));
    } else {
        match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => {}
            Ok(_) => {
                c.at(&h.url, &format!("{field}.url"), "must be an https:// (or, in sluice, http://) URL with a host")
            }
            Err(e) => c.at(&h.url, &format!("{field}.url"), format!("is not a URL: {e}")),
        }
    }
    if let Some(k) = &h.access_key {
        if k.value.len() > MAX_ACCESS_KEY {
            c.at(k, &format!("{field}.access_key"), format!("must be at most {MAX_ACCESS_KEY} bytes"));
        }
    }
    let mut gzip = false;
    let encodings = [("NONE", false), ("GZIP", true)];
    choose(c, &h.content_encoding, &format!("{field}.content_encoding"), &encodings, &mut gzip);
    let common_attributes = h.common_attributes.as_ref().map(|a| a.value.clone()).unwrap_or_default();
    if let Some(a) = &h.common_attributes {
        let bad = a.value.iter().any(|(k, v)| k.is_empty() || k.chars().count() > 256 || v.chars().count() > 1024);
        if a.value.len() > MAX_ATTRIBUTES || bad {
            c.at(
                a,
                &format!("{field}.common_attributes"),
                "takes at most 50 entries, names of 1-256 and values of 0-1024 characters",
            );
        }
    }
    let retry = retry_duration(c, &h.retry_duration_seconds, field);
    let timeout = h.request_timeout_seconds.as_ref().map_or(180, |t| t.value);
    if let Some(t) = &h.request_timeout_seconds {
        if !(1..=900).contains(&t.value) {
            c.at(t, &format!("{field}.request_timeout_seconds"), "must be between 1 and 900");
        }
    }
    let mut backup_all = false;
    let modes = [("FailedDataOnly", false), ("AllData", true)];
    choose(c, &h.s3_backup_mode, &format!("{field}.s3_backup_mode"), &modes, &mut backup_all);
    let ca_file = ca_file(c, &h.tls, field);
    (c.error_count() == before).then(|| HttpEndpointSpec {
        url: url.clone(),
        name: h.name.as_ref().map(|n| n.value.clone()),
        access_key: h.access_key.as_ref().map(|k| Secret::new(k.value.clone())),
        gzip,
        common_attributes,
        retry_duration: retry,
        request_timeout: Duration::from_secs(timeout),
        ca_file,
        backup_all,
    })
}
