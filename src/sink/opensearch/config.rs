//! `destination: opensearch:` (or `elasticsearch:`) as written, its validated form, and the rules
//! between them. A config-layer module: it imports only the config kit, so `config` can list it.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::kit::{
    ca_file, choose, http_url, retry_duration, ByteSize, Checker, RawDestination, RawTls, Secret, Spanned,
};

/// Firehose's IndexRotationPeriod: the index a document goes to is named from its arrival time
/// (`index.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    NoRotation,
    OneHour,
    OneDay,
    OneWeek,
    OneMonth,
}

impl Rotation {
    pub const NAMES: [(&'static str, Rotation); 5] = [
        ("NoRotation", Rotation::NoRotation),
        ("OneHour", Rotation::OneHour),
        ("OneDay", Rotation::OneDay),
        ("OneWeek", Rotation::OneWeek),
        ("OneMonth", Rotation::OneMonth),
    ];

    pub fn name(self) -> &'static str {
        Self::NAMES.iter().find(|(_, r)| *r == self).map_or("OneDay", |(n, _)| n)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSearch {
    pub endpoint: Spanned<String>,
    pub index: Spanned<String>,
    /// NoRotation | OneHour | OneDay | OneWeek | OneMonth
    pub index_rotation: Option<Spanned<String>>,
    /// Only for Elasticsearch 6.x.
    pub type_name: Option<Spanned<String>>,
    /// FIREHOSE_DEFAULT | NO_DOCUMENT_ID
    pub document_id: Option<Spanned<String>>,
    pub auth: Option<Spanned<RawSearchAuth>>,
    pub retry_duration_seconds: Option<Spanned<u64>>,
    pub request_timeout_seconds: Option<Spanned<u64>>,
    /// `_bulk` requests are cut at this size (default 10MiB).
    pub bulk_max_bytes: Option<Spanned<ByteSize>>,
    pub tls: Option<Spanned<RawTls>>,
    /// FailedDocumentsOnly | AllDocuments
    pub s3_backup_mode: Option<Spanned<String>>,
    pub backup: Spanned<RawDestination>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum RawSearchAuth {
    Basic {
        username: String,
        password: String,
    },
    ApiKey(String),
    /// Amazon OpenSearch Service (`es`) or Serverless (`aoss`), with the standard AWS credentials.
    AwsSigv4 {
        service: Option<String>,
        region: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct SearchSpec {
    pub endpoint: String,
    pub index: String,
    pub rotation: Rotation,
    pub type_name: Option<String>,
    /// FIREHOSE_DEFAULT: stable `_id`s; NO_DOCUMENT_ID: the cluster assigns them.
    pub document_ids: bool,
    pub auth: Option<SearchAuth>,
    pub retry_duration: Duration,
    pub request_timeout: Duration,
    pub bulk_max_bytes: usize,
    pub ca_file: Option<PathBuf>,
    pub backup_all: bool,
    /// Configured as `elasticsearch:` (DescribeDeliveryStream names it so).
    pub elasticsearch: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SearchAuth {
    Basic { username: String, password: Secret },
    ApiKey(Secret),
    AwsSigv4 { service: String, region: String },
}

pub fn validate(c: &mut Checker, s: &RawSearch, field: &str, elasticsearch: bool) -> Option<SearchSpec> {
    let before = c.error_count();
    http_url(c, &s.endpoint, &format!("{field}.endpoint"));
    let index = &s.index.value;
    let index_ok = (1..=80).contains(&index.len())
        && index.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "-_.+".contains(ch))
        && !index.starts_with(['-', '_', '+']);
    if !index_ok {
        c.at(
            &s.index,
            &format!("{field}.index"),
            "must be 1-80 characters: lowercase letters, digits, - _ . +, not starting with - _ +",
        );
    }
    let mut rotation = Rotation::OneDay;
    choose(c, &s.index_rotation, &format!("{field}.index_rotation"), &Rotation::NAMES, &mut rotation);
    let mut document_ids = true;
    let ids = [("FIREHOSE_DEFAULT", true), ("NO_DOCUMENT_ID", false)];
    choose(c, &s.document_id, &format!("{field}.document_id"), &ids, &mut document_ids);
    if let Some(t) = &s.type_name {
        if t.value.len() > 100 {
            c.at(t, &format!("{field}.type_name"), "must be at most 100 characters");
        }
    }
    let retry = retry_duration(c, &s.retry_duration_seconds, field);
    let timeout = s.request_timeout_seconds.as_ref().map_or(120, |t| t.value);
    if let Some(t) = &s.request_timeout_seconds {
        if !(1..=900).contains(&t.value) {
            c.at(t, &format!("{field}.request_timeout_seconds"), "must be between 1 and 900");
        }
    }
    let bulk_max_bytes = s.bulk_max_bytes.as_ref().map_or(10 << 20, |b| b.value.0 as usize);
    if let Some(b) = &s.bulk_max_bytes {
        if !(64 << 10..=100 << 20).contains(&(b.value.0 as usize)) {
            c.at(b, &format!("{field}.bulk_max_bytes"), "must be between 64KiB and 100MiB");
        }
    }
    let mut backup_all = false;
    let modes = [("FailedDocumentsOnly", false), ("AllDocuments", true)];
    choose(c, &s.s3_backup_mode, &format!("{field}.s3_backup_mode"), &modes, &mut backup_all);
    let ca_file = ca_file(c, &s.tls, field);
    let auth = s.auth.as_ref().map(|a| match &a.value {
        RawSearchAuth::Basic { username, password } => {
            SearchAuth::Basic { username: username.clone(), password: Secret::new(password.clone()) }
        }
        RawSearchAuth::ApiKey(key) => SearchAuth::ApiKey(Secret::new(key.clone())),
        RawSearchAuth::AwsSigv4 { service, region } => {
            let service = service.clone().unwrap_or_else(|| "es".into());
            if service != "es" && service != "aoss" {
                c.at(
                    a,
                    &format!("{field}.auth.aws_sigv4.service"),
                    "must be `es` (OpenSearch Service) or `aoss` (Serverless)",
                );
            }
            let region = region
                .clone()
                .or_else(|| std::env::var("AWS_REGION").ok())
                .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
                .unwrap_or_else(|| "us-east-1".into());
            SearchAuth::AwsSigv4 { service, region }
        }
    });
    (c.error_count() == before).then(|| SearchSpec {
        endpoint: s.endpoint.value.clone(),
        index: index.clone(),
        rotation,
        type_name: s.type_name.as_ref().map(|t| t.value.clone()).filter(|t| !t.is_empty()),
        document_ids,
        auth,
        retry_duration: retry,
        request_timeout: Duration::from_secs(timeout),
        bulk_max_bytes,
        ca_file,
        backup_all,
        elasticsearch,
    })
}
