//! Validation of `http_endpoint:` (Firehose's HttpEndpointDestinationConfiguration, spec §7).

use std::collections::BTreeMap;

use super::*;
use crate::config::RawHttpEndpoint;

/// A non-object destination a pipeline sends its batches to; its object store (the `backup:`)
/// receives failed records and, with `AllData`, a copy of everything.
#[derive(Clone, Debug, PartialEq)]
pub enum EndpointSpec {
    Http(HttpEndpointSpec),
    Search(SearchSpec),
    Splunk(crate::sink::splunk::config::SplunkSpec),
    Postgres(PostgresSpec),
    Redshift(super::redshift::RedshiftSpec),
}

#[derive(Clone, Debug, PartialEq)]
pub struct PostgresSpec {
    pub url: Secret,
    pub table: String,
    /// Empty with `jsonb_column`.
    pub columns: Vec<String>,
    pub jsonb_column: Option<String>,
    pub retry_duration: Duration,
    pub backup_all: bool,
}

impl EndpointSpec {
    /// Where HTTP requests go (the startup check connects to it). `None` for the databases: they
    /// are not HTTP, and their URL holds the password.
    pub fn url(&self) -> Option<&str> {
        match self {
            EndpointSpec::Http(h) => Some(&h.url),
            EndpointSpec::Search(s) => Some(&s.endpoint),
            EndpointSpec::Splunk(s) => Some(&s.endpoint),
            EndpointSpec::Postgres(_) | EndpointSpec::Redshift(_) => None,
        }
    }

    pub fn retry_duration(&self) -> Duration {
        match self {
            EndpointSpec::Http(h) => h.retry_duration,
            EndpointSpec::Search(s) => s.retry_duration,
            EndpointSpec::Splunk(s) => s.retry_duration,
            EndpointSpec::Postgres(p) => p.retry_duration,
            EndpointSpec::Redshift(r) => r.retry_duration,
        }
    }

    /// Whether every record is also written to the backup store.
    pub fn backup_all(&self) -> bool {
        match self {
            EndpointSpec::Http(h) => h.backup_all,
            EndpointSpec::Search(s) => s.backup_all,
            EndpointSpec::Splunk(s) => s.backup_all,
            EndpointSpec::Postgres(p) => p.backup_all,
            // The staged objects are the copy of everything Firehose keeps.
            EndpointSpec::Redshift(_) => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SearchSpec {
    pub endpoint: String,
    pub index: String,
    pub rotation: crate::sink::opensearch::index::Rotation,
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

/// A value that must never be printed: Debug shows only that it is set.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Firehose's limits on the endpoint's configuration.
const MAX_URL: usize = 1_000;
const MAX_ACCESS_KEY: usize = 4_096;
const MAX_ATTRIBUTES: usize = 50;

pub(super) fn http_endpoint(c: &mut Checker, h: &RawHttpEndpoint, field: &str) -> Option<HttpEndpointSpec> {
    let before = c.errors.len();
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
    super::conversion::choose(c, &h.content_encoding, &format!("{field}.content_encoding"), &encodings, &mut gzip);
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
    super::conversion::choose(c, &h.s3_backup_mode, &format!("{field}.s3_backup_mode"), &modes, &mut backup_all);
    let ca_file = ca_file(c, &h.tls, field);
    (c.errors.len() == before).then(|| HttpEndpointSpec {
        url: url.clone(),
        name: h.name.as_ref().map(|n| n.value.clone()),
        access_key: h.access_key.as_ref().map(|k| Secret(k.value.clone())),
        gzip,
        common_attributes,
        retry_duration: retry,
        request_timeout: Duration::from_secs(timeout),
        ca_file,
        backup_all,
    })
}

pub(super) fn search(
    c: &mut Checker,
    s: &crate::config::RawSearch,
    field: &str,
    elasticsearch: bool,
) -> Option<SearchSpec> {
    use crate::sink::opensearch::index::Rotation;
    let before = c.errors.len();
    match reqwest::Url::parse(&s.endpoint.value) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => {}
        _ => c.at(&s.endpoint, &format!("{field}.endpoint"), "must be an https:// (or http://) URL with a host"),
    }
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
    super::conversion::choose(
        c,
        &s.index_rotation,
        &format!("{field}.index_rotation"),
        &Rotation::NAMES,
        &mut rotation,
    );
    let mut document_ids = true;
    let ids = [("FIREHOSE_DEFAULT", true), ("NO_DOCUMENT_ID", false)];
    super::conversion::choose(c, &s.document_id, &format!("{field}.document_id"), &ids, &mut document_ids);
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
    super::conversion::choose(c, &s.s3_backup_mode, &format!("{field}.s3_backup_mode"), &modes, &mut backup_all);
    let ca_file = ca_file(c, &s.tls, field);
    let auth = s.auth.as_ref().map(|a| match &a.value {
        crate::config::RawSearchAuth::Basic { username, password } => {
            SearchAuth::Basic { username: username.clone(), password: Secret(password.clone()) }
        }
        crate::config::RawSearchAuth::ApiKey(key) => SearchAuth::ApiKey(Secret(key.clone())),
        crate::config::RawSearchAuth::AwsSigv4 { service, region } => {
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
    (c.errors.len() == before).then(|| SearchSpec {
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

pub(super) fn postgres(c: &mut Checker, p: &crate::config::RawPostgres, field: &str) -> Option<PostgresSpec> {
    let before = c.errors.len();
    if !(p.url.value.starts_with("postgres://") || p.url.value.starts_with("postgresql://")) {
        c.at(&p.url, &format!("{field}.url"), "must be a postgres:// URL");
    } else if let Err(e) = p.url.value.parse::<tokio_postgres::Config>() {
        // tokio-postgres' message never repeats the URL, so no password reaches the error.
        c.at(&p.url, &format!("{field}.url"), format!("is not a PostgreSQL URL: {e}"));
    }
    if p.table.value.is_empty() || p.table.value.split('.').count() > 2 {
        c.at(&p.table, &format!("{field}.table"), "must name a table (`events` or `schema.events`)");
    }
    let columns = p.columns.as_ref().map(|c| c.value.clone()).unwrap_or_default();
    match (&p.columns, &p.jsonb_column) {
        (Some(cols), None) if cols.value.is_empty() || cols.value.iter().any(String::is_empty) => {
            c.at(cols, &format!("{field}.columns"), "must list at least one column, none empty")
        }
        (Some(_), None) | (None, Some(_)) => {}
        (Some(cols), Some(_)) => c.at(cols, &format!("{field}.columns"), "give `columns` or `jsonb_column`, not both"),
        (None, None) => c.at(&p.table, field, "needs `columns: [..]` or `jsonb_column: <column>`"),
    }
    let retry = retry_duration(c, &p.retry_duration_seconds, field);
    let mut backup_all = false;
    let modes = [("FailedDataOnly", false), ("AllData", true)];
    super::conversion::choose(c, &p.s3_backup_mode, &format!("{field}.s3_backup_mode"), &modes, &mut backup_all);
    (c.errors.len() == before).then(|| PostgresSpec {
        url: Secret(p.url.value.clone()),
        table: p.table.value.clone(),
        columns,
        jsonb_column: p.jsonb_column.as_ref().map(|j| j.value.clone()),
        retry_duration: retry,
        backup_all,
    })
}

/// An `https://` (or `http://`) URL with a host, as every HTTP-speaking destination needs.
pub(crate) fn http_url(c: &mut Checker, url: &Spanned<String>, field: &str) {
    match reqwest::Url::parse(&url.value) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => {}
        _ => c.at(url, field, "must be an https:// (or http://) URL with a host"),
    }
}

/// `retry_duration_seconds` (Firehose: 0-7200, default 300), shared by every sending destination.
pub(crate) fn retry_duration(c: &mut Checker, value: &Option<Spanned<u64>>, field: &str) -> Duration {
    if let Some(r) = value {
        if r.value > 7200 {
            c.at(r, &format!("{field}.retry_duration_seconds"), "must be between 0 and 7200");
        }
    }
    Duration::from_secs(value.as_ref().map_or(300, |r| r.value))
}

/// `tls: { ca_file }`, which must be readable.
pub(crate) fn ca_file(c: &mut Checker, tls: &Option<Spanned<crate::config::RawTls>>, field: &str) -> Option<PathBuf> {
    let f = tls.as_ref()?.value.ca_file.as_ref()?;
    if let Err(e) = std::fs::read(&f.value) {
        c.at(f, &format!("{field}.tls.ca_file"), format!("cannot read `{}`: {e}", f.value));
    }
    Some(PathBuf::from(&f.value))
}
