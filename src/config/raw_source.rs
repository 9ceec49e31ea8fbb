//! `source:` in the config file, as written (validated into `SourceSpec` by `validate/source.rs`).

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::ByteSize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum RawSource {
    DirectPut(RawDirectPut),
    /// A Kinesis Data Stream (Firehose's KinesisStreamAsSource).
    Kinesis(Box<RawKinesis>),
    /// Firehose's own HTTP endpoint delivery (protocol 1.0), so an AWS Firehose stream, or
    /// another sluice, can deliver here: `POST /http-endpoint/<name>` on the API port.
    FirehoseHttpEndpoint(RawFirehoseHttpEndpoint),
    /// Lines on standard input: `tail -F app.log | sluice run --config pipe.yaml`.
    Stdin(RawStdin),
    /// Plain HTTP: `POST` an NDJSON, text or raw body to `path` on the API port.
    Http(Box<RawHttpSource>),
    /// Tailed files (source/file/).
    File(Box<RawFileSource>),
    /// The systemd journal, through `journalctl -o json --follow`.
    Journald(RawJournald),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJournald {
    /// Only these units (`journalctl -u`); default: every entry.
    #[serde(default)]
    pub units: Vec<Spanned<String>>,
    /// journalctl matches such as `_TRANSPORT=kernel` or `PRIORITY=3`.
    #[serde(default)]
    pub matches: Vec<Spanned<String>>,
    /// First run only: start at the journal's end instead of its beginning.
    pub since_now: Option<bool>,
    /// Read the journal files of this directory (`journalctl --directory`; a mounted host journal).
    pub directory: Option<Spanned<String>>,
    /// The journalctl to run (default: `journalctl` on the PATH).
    pub journalctl: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStdin {
    /// Longer lines are cut to this many bytes (counted; default 1 MiB).
    pub max_line_bytes: Option<Spanned<ByteSize>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpSource {
    /// Default `/ingest/<pipeline>`.
    pub path: Option<Spanned<String>>,
    /// `ndjson` (default: one JSON record per line, checked), `lines` (one record per line, any
    /// text) or `raw` (the whole body is one record).
    pub format: Option<Spanned<String>>,
    /// Clients must send `Authorization: Bearer <token>`; required unless the API listens on
    /// loopback only.
    pub bearer_token: Option<Spanned<String>>,
    /// Largest body taken, after decompression (default 10 MiB).
    pub max_body_bytes: Option<Spanned<ByteSize>>,
    /// Largest record (default 1 MiB, as Firehose's 1,000 KiB record limit rounds up).
    pub max_line_bytes: Option<Spanned<ByteSize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFileSource {
    pub include: Spanned<Vec<String>>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// `beginning` or `end` (default): where a file seen for the first time is read from.
    pub start_at: Option<Spanned<String>>,
    pub multiline: Option<RawMultiline>,
    pub max_line_bytes: Option<Spanned<ByteSize>>,
    /// Wrap each line as JSON: `{"message": .., "file": .., <fields>}`.
    pub fields: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    /// Lines skipped at the start of every file (Kinesis Agent's skipHeaderLines).
    pub skip_header_lines: Option<Spanned<u64>>,
    /// Appended to a line that was cut (Kinesis Agent's truncatedRecordTerminator).
    pub truncated_line_terminator: Option<Spanned<String>>,
    /// How often the globs are scanned again (default 1000).
    pub glob_interval_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMultiline {
    /// A line matching this starts a new record; others are joined to the one before.
    pub start_pattern: Spanned<String>,
    /// A record is let go this long after its last line (default 1000).
    pub timeout_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFirehoseHttpEndpoint {
    /// The AccessKey the sender is configured with (`X-Amz-Firehose-Access-Key`).
    pub access_key: Option<Spanned<String>>,
    /// Several accepted keys (a rotation: old and new), in addition to `access_key`.
    #[serde(default)]
    pub access_keys: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKinesis {
    pub stream_arn: Option<Spanned<String>>,
    pub stream_name: Option<Spanned<String>>,
    pub region: Option<Spanned<String>>,
    /// kinesalite, LocalStack, a VPC endpoint.
    pub endpoint: Option<Spanned<String>>,
    /// LATEST (Firehose's default) | TRIM_HORIZON | AT_TIMESTAMP
    pub starting_position: Option<Spanned<String>>,
    pub starting_timestamp: Option<Spanned<String>>,
    /// Shards shared by several daemons through a DynamoDB lease table.
    pub leases: Option<RawLeases>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLeases {
    pub dynamodb: RawLeaseTable,
    /// This daemon's name in the table (default: host name and a random suffix).
    pub owner: Option<Spanned<String>>,
    /// How long a lease lasts without renewal before another daemon may take it (KCL's
    /// failover time; default 10).
    pub lease_duration_seconds: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLeaseTable {
    pub table: Spanned<String>,
    pub endpoint: Option<Spanned<String>>,
    /// Default: the stream's region.
    pub region: Option<Spanned<String>>,
}

impl Default for RawSource {
    fn default() -> Self {
        RawSource::DirectPut(RawDirectPut {})
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDirectPut {}
