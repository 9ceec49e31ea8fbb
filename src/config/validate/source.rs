//! Sources other than Direct PUT: where a pipeline reads.

use super::*;
use crate::config::ByteSize;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    DirectPut,
    Kinesis(KinesisSourceSpec),
    /// Records arrive through Firehose's HTTP endpoint protocol and are kept in the WAL, as Direct
    /// PUT's are; senders must present one of `access_keys` (any key when empty).
    FirehoseHttpEndpoint {
        access_keys: Vec<Secret>,
    },
    /// Lines on standard input, kept in the WAL; the daemon exits once they are delivered.
    Stdin {
        max_line_bytes: usize,
    },
    /// Plain HTTP posts on the API port, kept in the WAL.
    Http(HttpSourceSpec),
    /// Tailed files: their own durable log, checkpointed after delivery.
    File(FileSourceSpec),
    /// The systemd journal, its cursor checkpointed after delivery.
    Journald(JournaldSpec),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournaldSpec {
    pub units: Vec<String>,
    pub matches: Vec<String>,
    pub since_now: bool,
    pub directory: Option<String>,
    pub journalctl: String,
}

impl SourceSpec {
    /// Whether records arrive into the WAL (and Direct PUT calls are taken too), as opposed to a
    /// source with its own log.
    pub fn uses_wal(&self) -> bool {
        !matches!(self, SourceSpec::Kinesis(_) | SourceSpec::File(_) | SourceSpec::Journald(_))
    }
}

/// Where a KinesisStreamAsSource pipeline reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KinesisSourceSpec {
    pub stream_name: String,
    pub stream_arn: String,
    pub region: String,
    pub endpoint: Option<String>,
    pub starting_position: StartingPosition,
    /// Shards shared with other daemons through a lease table; `None`: this daemon reads them all.
    pub leases: Option<LeaseSpec>,
}

/// A DynamoDB lease table in the KCL's style (source/kinesis/leases.rs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseSpec {
    pub table: String,
    pub endpoint: Option<String>,
    pub region: String,
    /// Unique per daemon; a restarted daemon with the same name takes its leases back at once.
    pub owner: String,
    pub lease_duration: std::time::Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartingPosition {
    Latest,
    TrimHorizon,
    /// Milliseconds since the epoch.
    AtTimestamp(i64),
}

/// `source: kinesis:`: the stream by ARN, or by name and region.
pub(super) fn kinesis_source(c: &mut Checker, k: &crate::config::RawKinesis, field: &str) -> Option<KinesisSourceSpec> {
    let field = format!("{field}.source.kinesis");
    let before = c.errors.len();
    let (stream_name, stream_arn, region) = match (&k.stream_arn, &k.stream_name) {
        (Some(arn), _) => {
            // arn:aws:kinesis:<region>:<account>:stream/<name>
            let parts: Vec<&str> = arn.value.splitn(6, ':').collect();
            match parts.as_slice() {
                ["arn", _, "kinesis", region, _, resource] if resource.starts_with("stream/") && resource.len() > 7 => {
                    (resource[7..].to_string(), arn.value.clone(), region.to_string())
                }
                _ => {
                    c.at(
                        arn,
                        &format!("{field}.stream_arn"),
                        "must be a stream ARN such as arn:aws:kinesis:us-east-1:123456789012:stream/name",
                    );
                    return None;
                }
            }
        }
        (None, Some(name)) => {
            let region = k.region.as_ref().map_or_else(|| c.identity.region.clone(), |r| r.value.clone());
            let arn = format!("arn:aws:kinesis:{region}:{}:stream/{}", c.identity.account_id, name.value);
            (name.value.clone(), arn, region)
        }
        (None, None) => {
            c.errors
                .push(ConfigError::plain(c.origin, format!("{field}: needs stream_arn, or stream_name (and region)")));
            return None;
        }
    };
    let region = k.region.as_ref().map_or(region, |r| r.value.clone());
    if let Some(e) = &k.endpoint {
        if !(e.value.starts_with("http://") || e.value.starts_with("https://")) {
            c.at(e, &format!("{field}.endpoint"), "must be an http:// or https:// URL");
        }
    }
    let position = k.starting_position.as_ref().map_or("LATEST", |p| p.value.as_str());
    let starting_position = match position {
        "LATEST" => StartingPosition::Latest,
        "TRIM_HORIZON" => StartingPosition::TrimHorizon,
        "AT_TIMESTAMP" => match &k.starting_timestamp {
            Some(t) => match chrono::DateTime::parse_from_rfc3339(&t.value) {
                Ok(at) => StartingPosition::AtTimestamp(at.timestamp_millis()),
                Err(e) => {
                    c.at(
                        t,
                        &format!("{field}.starting_timestamp"),
                        format!("is not an RFC 3339 time such as 2026-12-01T00:00:00Z: {e}"),
                    );
                    StartingPosition::Latest
                }
            },
            None => {
                c.errors.push(ConfigError::plain(
                    c.origin,
                    format!("{field}.starting_timestamp is required with AT_TIMESTAMP"),
                ));
                StartingPosition::Latest
            }
        },
        other => {
            if let Some(p) = &k.starting_position {
                let hint = crate::config::teach::hint(other, ["LATEST", "TRIM_HORIZON", "AT_TIMESTAMP"]);
                c.at(
                    p,
                    &format!("{field}.starting_position"),
                    format!("`{other}` is not LATEST, TRIM_HORIZON or AT_TIMESTAMP{hint}"),
                );
            }
            StartingPosition::Latest
        }
    };
    let leases = k.leases.as_ref().map(|l| lease_spec(c, l, &field, &region));
    (c.errors.len() == before).then(|| KinesisSourceSpec {
        stream_name,
        stream_arn,
        region,
        endpoint: k.endpoint.as_ref().map(|e| e.value.clone()),
        starting_position,
        leases,
    })
}

/// `leases:`: the DynamoDB table shards are shared through.
fn lease_spec(c: &mut Checker, l: &crate::config::RawLeases, field: &str, region: &str) -> LeaseSpec {
    let table = &l.dynamodb.table;
    // DynamoDB's own rule for table names.
    let valid = (3..=255).contains(&table.value.len())
        && table.value.chars().all(|ch| ch.is_ascii_alphanumeric() || "_-.".contains(ch));
    if !valid {
        c.at(table, &format!("{field}.leases.dynamodb.table"), "must be 3 to 255 letters, digits, `_`, `-` or `.`");
    }
    if let Some(e) = &l.dynamodb.endpoint {
        if !(e.value.starts_with("http://") || e.value.starts_with("https://")) {
            c.at(e, &format!("{field}.leases.dynamodb.endpoint"), "must be an http:// or https:// URL");
        }
    }
    let seconds = l.lease_duration_seconds.as_ref().map_or(10, |d| d.value);
    if let Some(d) = &l.lease_duration_seconds {
        if !(1..=3600).contains(&d.value) {
            c.at(d, &format!("{field}.leases.lease_duration_seconds"), "must be between 1 and 3600");
        }
    }
    let owner = match &l.owner {
        Some(o) if o.value.trim().is_empty() => {
            c.at(o, &format!("{field}.leases.owner"), "must not be empty");
            String::new()
        }
        Some(o) => o.value.clone(),
        None => default_lease_owner(),
    };
    LeaseSpec {
        table: table.value.clone(),
        endpoint: l.dynamodb.endpoint.as_ref().map(|e| e.value.clone()),
        region: l.dynamodb.region.as_ref().map_or_else(|| region.to_string(), |r| r.value.clone()),
        owner,
        lease_duration: std::time::Duration::from_secs(seconds),
    }
}

/// The host's name and a random suffix: unique per daemon run (the same for every pipeline of
/// it, so validating a config twice gives the same spec), and readable in the table.
fn default_lease_owner() -> String {
    static OWNER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    OWNER.get_or_init(host_and_suffix).clone()
}

fn host_and_suffix() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sluice".to_string());
    format!("{host}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Where a `source: http:` pipeline is posted to and what its bodies hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpSourceSpec {
    pub path: String,
    pub format: HttpFormat,
    pub bearer_token: Option<Secret>,
    pub max_body_bytes: usize,
    pub max_line_bytes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpFormat {
    /// One JSON value per line, each checked.
    Ndjson,
    /// One record per line, any bytes.
    Lines,
    /// The whole body is one record.
    Raw,
}

/// What a `source: file:` pipeline tails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSourceSpec {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// Files seen for the first time are read from their start (else from their end).
    pub start_at_beginning: bool,
    pub multiline: Option<MultilineSpec>,
    pub max_line_bytes: usize,
    /// Non-empty: each line becomes `{"message": line, "file": path, ..fields}`.
    pub fields: std::collections::BTreeMap<String, String>,
    pub skip_header_lines: u64,
    pub truncated_line_terminator: Option<String>,
    pub glob_interval: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultilineSpec {
    pub start_pattern: String,
    pub timeout: Duration,
}

/// Paths the API itself answers on.
const RESERVED_PATHS: [&str; 5] = ["/", "/health", "/ready", "/metrics", "/http-endpoint"];
const DEFAULT_MAX_LINE: usize = 1 << 20;

pub(super) fn max_line_bytes(c: &mut Checker, v: Option<&Spanned<ByteSize>>, field: &str) -> usize {
    match v {
        Some(b) if !(1..=64 << 20).contains(&b.value.0) => {
            c.at(b, &format!("{field}.max_line_bytes"), "must be between 1 byte and 64MiB");
            DEFAULT_MAX_LINE
        }
        Some(b) => b.value.0 as usize,
        None => DEFAULT_MAX_LINE,
    }
}

pub(super) fn http_source(
    c: &mut Checker,
    h: &crate::config::RawHttpSource,
    name: &str,
    field: &str,
) -> HttpSourceSpec {
    let field = format!("{field}.source.http");
    let path = h.path.as_ref().map_or_else(|| format!("/ingest/{name}"), |p| p.value.clone());
    if let Some(p) = &h.path {
        let reserved =
            RESERVED_PATHS.iter().any(|r| p.value == *r || (*r != "/" && p.value.starts_with(&format!("{r}/"))));
        if !p.value.starts_with('/') || p.value.contains(['?', '#', ' ']) {
            c.at(p, &format!("{field}.path"), "must be a URL path such as /ingest/app-logs");
        } else if reserved {
            c.at(p, &format!("{field}.path"), format!("`{}` is one of the API's own paths", p.value));
        }
    }
    let format = match h.format.as_ref().map(|f| f.value.as_str()) {
        None | Some("ndjson") => HttpFormat::Ndjson,
        Some("lines") => HttpFormat::Lines,
        Some("raw") => HttpFormat::Raw,
        Some(other) => {
            if let Some(f) = &h.format {
                let hint = crate::config::teach::hint(other, ["ndjson", "lines", "raw"]);
                c.at(f, &format!("{field}.format"), format!("`{other}` is not ndjson, lines or raw{hint}"));
            }
            HttpFormat::Ndjson
        }
    };
    let max_body_bytes = match &h.max_body_bytes {
        Some(b) if !(1024..=1 << 30).contains(&b.value.0) => {
            c.at(b, &format!("{field}.max_body_bytes"), "must be between 1KiB and 1GiB");
            10 << 20
        }
        Some(b) => b.value.0 as usize,
        None => 10 << 20,
    };
    if let Some(t) = &h.bearer_token {
        if t.value.trim().is_empty() {
            c.at(t, &format!("{field}.bearer_token"), "must not be empty");
        }
    }
    HttpSourceSpec {
        path,
        format,
        bearer_token: h.bearer_token.as_ref().map(|t| Secret::new(t.value.clone())),
        max_body_bytes,
        max_line_bytes: max_line_bytes(c, h.max_line_bytes.as_ref(), &field),
    }
}

pub(super) fn file_source(c: &mut Checker, f: &crate::config::RawFileSource, field: &str) -> FileSourceSpec {
    let field = format!("{field}.source.file");
    if f.include.value.is_empty() {
        c.at(&f.include, &format!("{field}.include"), "needs at least one path or glob such as /var/log/app/*.log");
    }
    for (i, pattern) in f.include.value.iter().chain(&f.exclude).enumerate() {
        if let Err(e) = glob::Pattern::new(pattern) {
            c.at(&f.include, &format!("{field}.include/exclude[{i}]"), format!("`{pattern}` is not a glob: {e}"));
        }
    }
    let start_at_beginning = match f.start_at.as_ref().map(|s| s.value.as_str()) {
        None | Some("end") => false,
        Some("beginning") => true,
        Some(other) => {
            if let Some(s) = &f.start_at {
                c.at(s, &format!("{field}.start_at"), format!("`{other}` is not beginning or end"));
            }
            false
        }
    };
    let multiline = f.multiline.as_ref().map(|m| {
        if let Err(e) = regex::Regex::new(&m.start_pattern.value) {
            c.at(
                &m.start_pattern,
                &format!("{field}.multiline.start_pattern"),
                format!("is not a regular expression: {e}"),
            );
        }
        MultilineSpec {
            start_pattern: m.start_pattern.value.clone(),
            timeout: Duration::from_millis(m.timeout_ms.as_ref().map_or(1000, |t| t.value)),
        }
    });
    let glob_interval = Duration::from_millis(f.glob_interval_ms.as_ref().map_or(1000, |t| t.value.max(10)));
    FileSourceSpec {
        include: f.include.value.clone(),
        exclude: f.exclude.clone(),
        start_at_beginning,
        multiline,
        max_line_bytes: max_line_bytes(c, f.max_line_bytes.as_ref(), &field),
        fields: with_host(f.fields.as_ref().map(|m| m.value.clone()).unwrap_or_default()),
        skip_header_lines: f.skip_header_lines.as_ref().map_or(0, |s| s.value),
        truncated_line_terminator: f.truncated_line_terminator.as_ref().map(|t| t.value.clone()),
        glob_interval,
    }
}

/// Lines wrapped as JSON (`fields:`) say which host read them, as log shippers' records do: `host`
/// is the machine's host name unless the config sets it (e.g. to a Kubernetes node name).
fn with_host(mut fields: std::collections::BTreeMap<String, String>) -> std::collections::BTreeMap<String, String> {
    if !fields.is_empty() && !fields.contains_key("host") {
        fields.insert("host".into(), crate::host::hostname().unwrap_or("localhost").to_string());
    }
    fields
}

/// Rules across pipelines: one standard input, one pipeline per HTTP path.
pub(super) fn check_sources_together(c: &mut Checker, pipelines: &[PipelineSpec]) {
    let stdin: Vec<&str> =
        pipelines.iter().filter(|p| matches!(p.source, SourceSpec::Stdin { .. })).map(|p| p.name.as_str()).collect();
    if stdin.len() > 1 {
        c.errors.push(ConfigError::plain(
            c.origin,
            format!("pipelines {} all read stdin: there is only one standard input", stdin.join(", ")),
        ));
    }
    let mut paths: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for p in pipelines {
        if let SourceSpec::Http(h) = &p.source {
            if let Some(other) = paths.insert(&h.path, &p.name) {
                c.errors.push(ConfigError::plain(
                    c.origin,
                    format!("pipelines {other} and {} both take HTTP posts at {}", p.name, h.path),
                ));
            }
        }
    }
}

pub(super) fn journald_source(c: &mut Checker, j: &crate::config::RawJournald, field: &str) -> JournaldSpec {
    let field = format!("{field}.source.journald");
    for (i, m) in j.matches.iter().enumerate() {
        let valid = m.value.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_')
        });
        if !valid {
            c.at(
                m,
                &format!("{field}.matches[{i}]"),
                format!("`{}` is not a journal match such as PRIORITY=3 or _TRANSPORT=kernel", m.value),
            );
        }
    }
    for (i, u) in j.units.iter().enumerate() {
        if u.value.trim().is_empty() || u.value.starts_with('-') {
            c.at(u, &format!("{field}.units[{i}]"), "must be a unit name such as nginx.service");
        }
    }
    JournaldSpec {
        units: j.units.iter().map(|u| u.value.clone()).collect(),
        matches: j.matches.iter().map(|m| m.value.clone()).collect(),
        since_now: j.since_now.unwrap_or(false),
        directory: j.directory.as_ref().map(|d| d.value.clone()),
        journalctl: j.journalctl.as_ref().map_or_else(|| "journalctl".to_string(), |p| p.value.clone()),
    }
}
