//! The registry of sources: every way records reach a pipeline, listed once.
//!
//! A source with options is one folder, `src/source/<kind>/`, which owns them in `config.rs` (its
//! options as written, its validated spec, its rules) beside its runtime. Adding one is that folder
//! plus one line in each `match` of this file and one arm in `source::open`. Direct PUT and stdin
//! have at most a field, kept here.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::kit::{max_line_bytes, Checker, Secret};
use super::{ByteSize, PipelineSpec};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum RawSource {
    DirectPut(RawDirectPut),
    /// A Kinesis Data Stream (Firehose's KinesisStreamAsSource).
    Kinesis(Box<crate::source::kinesis::config::RawKinesis>),
    /// Firehose's own HTTP endpoint delivery (protocol 1.0), so an AWS Firehose stream, or
    /// another sluice, can deliver here: `POST /http-endpoint/<name>` on the API port.
    FirehoseHttpEndpoint(crate::source::firehose_http::config::RawFirehoseHttpEndpoint),
    /// Lines on standard input: `tail -F app.log | sluice run --config pipe.yaml`.
    Stdin(RawStdin),
    /// Plain HTTP: `POST` an NDJSON, text or raw body to `path` on the API port.
    Http(Box<crate::source::http::config::RawHttpSource>),
    /// Tailed files (source/file/).
    File(Box<crate::source::file::config::RawFileSource>),
    /// The systemd journal, through `journalctl -o json --follow`.
    Journald(crate::source::journald::config::RawJournald),
    /// Syslog (RFC 5424, RFC 3164) over UDP, TCP or TLS.
    Syslog(Box<crate::source::syslog::config::RawSyslog>),
    /// Kafka (or Amazon MSK) topics read in a consumer group (Firehose's MSKAsSource).
    Kafka(Box<crate::source::kafka::config::RawKafkaSource>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStdin {
    /// Longer lines are cut to this many bytes (counted; default 1 MiB).
    pub max_line_bytes: Option<Spanned<ByteSize>>,
}

impl Default for RawSource {
    fn default() -> Self {
        RawSource::DirectPut(RawDirectPut {})
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDirectPut {}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    DirectPut,
    Kinesis(crate::source::kinesis::config::KinesisSourceSpec),
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
    Http(crate::source::http::config::HttpSourceSpec),
    /// Tailed files: their own durable log, checkpointed after delivery.
    File(crate::source::file::config::FileSourceSpec),
    /// The systemd journal, its cursor checkpointed after delivery.
    Journald(crate::source::journald::config::JournaldSpec),
    /// Syslog messages received on a port, kept in the WAL.
    Syslog(crate::source::syslog::config::SyslogSpec),
    /// Kafka topics: their own durable log, offsets committed to the group after delivery.
    Kafka(Box<crate::source::kafka::config::KafkaSourceSpec>),
}

impl SourceSpec {
    /// The kind as written in YAML (`source: { <kind>: ... }`).
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSpec::DirectPut => "direct_put",
            SourceSpec::Kinesis(_) => "kinesis",
            SourceSpec::FirehoseHttpEndpoint { .. } => "firehose_http_endpoint",
            SourceSpec::Stdin { .. } => "stdin",
            SourceSpec::Http(_) => "http",
            SourceSpec::File(_) => "file",
            SourceSpec::Journald(_) => "journald",
            SourceSpec::Syslog(_) => "syslog",
            SourceSpec::Kafka(_) => "kafka",
        }
    }

    /// Whether records arrive into the WAL (and Direct PUT calls are taken too), as opposed to a
    /// source with its own log.
    pub fn uses_wal(&self) -> bool {
        !matches!(self, SourceSpec::Kinesis(_) | SourceSpec::File(_) | SourceSpec::Journald(_) | SourceSpec::Kafka(_))
    }
}

/// Firehose's DeliveryStreamType for a pipeline's source.
pub fn stream_type(spec: &SourceSpec) -> &'static str {
    match spec {
        SourceSpec::Kinesis(_) => crate::source::kinesis::firehose::STREAM_TYPE,
        SourceSpec::Kafka(_) => crate::source::kafka::firehose::STREAM_TYPE,
        // Records arrive over HTTP or from the host (stdin, files), not from a stream Firehose
        // reads: Direct PUT in Firehose's terms.
        _ => "DirectPut",
    }
}

/// The `source:` block for a Firehose DeliveryStreamType and its source member (`None` for Direct
/// PUT, which is a pipeline's default).
pub fn translate(
    stream_type: &str,
    config: Option<&serde_json::Value>,
    control: &super::control_plane::ControlPlane,
) -> super::kit::firehose::Result<Option<serde_json::Value>> {
    match stream_type {
        "DirectPut" => Ok(None),
        crate::source::kinesis::firehose::STREAM_TYPE => {
            crate::source::kinesis::firehose::translate(config, control).map(Some)
        }
        crate::source::kafka::firehose::STREAM_TYPE => crate::source::kafka::firehose::translate(config, control).map(Some),
        other => super::kit::firehose::refuse(format!(
            "DeliveryStreamType {other} is not supported by sluice: it reads Direct PUT, Kinesis Data Streams and MSK (Kafka)"
        )),
    }
}

/// `Source` of a DescribeDeliveryStream (`None` for Direct PUT, which Firehose describes without).
pub fn describe(spec: &SourceSpec, role_arn: &str, start_seconds: f64) -> Option<serde_json::Value> {
    match spec {
        SourceSpec::Kinesis(k) => Some(crate::source::kinesis::firehose::describe(k, role_arn, start_seconds)),
        SourceSpec::Kafka(k) => Some(crate::source::kafka::firehose::describe(k, role_arn, start_seconds)),
        _ => None,
    }
}

/// `source:` checked by its kind's own rules. `None`: its problems are reported.
pub(crate) fn validate(c: &mut Checker, raw: &RawSource, name: &str, field: &str) -> Option<SourceSpec> {
    Some(match raw {
        RawSource::DirectPut(_) => SourceSpec::DirectPut,
        RawSource::FirehoseHttpEndpoint(h) => {
            SourceSpec::FirehoseHttpEndpoint { access_keys: crate::source::firehose_http::config::access_keys(h) }
        }
        RawSource::Stdin(s) => SourceSpec::Stdin {
            max_line_bytes: max_line_bytes(c, s.max_line_bytes.as_ref(), &format!("{field}.source.stdin")),
        },
        RawSource::Http(h) => SourceSpec::Http(crate::source::http::config::validate(c, h, name, field)),
        RawSource::File(f) => SourceSpec::File(crate::source::file::config::validate(c, f, field)),
        RawSource::Journald(j) => SourceSpec::Journald(crate::source::journald::config::validate(c, j, field)),
        RawSource::Kinesis(k) => SourceSpec::Kinesis(crate::source::kinesis::config::validate(c, k, field)?),
        RawSource::Syslog(s) => SourceSpec::Syslog(crate::source::syslog::config::validate(c, s, field)?),
        RawSource::Kafka(k) => SourceSpec::Kafka(Box::new(crate::source::kafka::config::validate(c, k, name, field)?)),
    })
}

/// Rules across pipelines: one standard input, one pipeline per HTTP path.
pub(crate) fn check_together(c: &mut Checker, pipelines: &[PipelineSpec]) {
    let stdin: Vec<&str> =
        pipelines.iter().filter(|p| matches!(p.source, SourceSpec::Stdin { .. })).map(|p| p.name.as_str()).collect();
    if stdin.len() > 1 {
        c.plain(format!("pipelines {} all read stdin: there is only one standard input", stdin.join(", ")));
    }
    let mut paths: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for p in pipelines {
        if let SourceSpec::Http(h) = &p.source {
            if let Some(other) = paths.insert(&h.path, &p.name) {
                c.plain(format!("pipelines {other} and {} both take HTTP posts at {}", p.name, h.path));
            }
        }
    }
    // One socket per address and protocol (UDP and TCP may share a port number).
    let mut listeners: std::collections::HashMap<(std::net::SocketAddr, bool), &str> = std::collections::HashMap::new();
    for p in pipelines {
        if let SourceSpec::Syslog(s) = &p.source {
            let udp = s.mode == crate::source::syslog::config::Mode::Udp;
            if let Some(other) = listeners.insert((s.listen, udp), &p.name) {
                c.plain(format!("pipelines {other} and {} both listen for syslog on {}", p.name, s.listen));
            }
        }
    }
}
