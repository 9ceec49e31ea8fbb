//! Pipeline configuration: the YAML shape (plain serde structs) and its validation.
//!
//! Parsing uses serde-saphyr, the maintained, panic-free successor to the archived `serde_yaml`.
//! Raw structs mirror the YAML exactly (`deny_unknown_fields` everywhere, externally tagged enums
//! for `source:` and `destination:`); [`validate`] turns them into the typed specs the daemon runs,
//! or into errors that name the file, line and field.

mod api_limits;
pub mod control_plane;
pub mod destinations;
mod errors;
pub mod fanout;
mod files;
mod interpolate;
pub mod kit;
pub mod security;
pub mod sources;
mod spec;
pub(crate) mod teach;
mod validate;
mod yaml_path;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::format::compression::Compression;

pub use destinations::RawDestination;
pub use files::{load_dir, sniff, yaml_files, FileKind};
pub use interpolate::{interpolate, interpolate_tracked, InterpolateError, Interpolated, Redactor};
pub use sources::RawSource;
pub use teach::{code_frame, did_you_mean};
pub use validate::{load_schema_file, LoadSchemaError};
pub use validate::{
    resolve_listen, valid_stream_name, ApiLimits, AutoCreate, Buffering, Config, ConfigError, ConfigErrors,
    DeliverySettings, DynamicPartitioning, ObjectDestination, PipelineSpec, ProcessorSpec, Quotas,
    ServerSideEncryption, SourceSpec, StorageSettings, StoreSpec, STREAM_PLACEHOLDER,
};
pub use validate::{Branch, RouteSpec, Secret, SendingSpec};

/// The config `sluice run` uses when no `--config` is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.yaml");
/// The smallest `storage.max_memory`: one largest request must fit (`api::memory`).
pub const MIN_MAX_MEMORY: u64 = 32 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub api: RawApi,
    #[serde(default)]
    pub storage: RawStorage,
    #[serde(default)]
    pub pipelines: Vec<Spanned<RawPipeline>>,
    /// A sluice extension: streams nobody declared are created on first put from this template.
    #[serde(default)]
    pub auto_create: Option<Spanned<RawPipeline>>,
    /// Where streams created over the API (CreateDeliveryStream) deliver.
    pub control_plane: Option<Spanned<control_plane::RawControlPlane>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub listen: Option<Spanned<String>>,
    /// Connections open at once; more get a 503 and are closed (capped by the descriptor limit).
    pub max_connections: Option<Spanned<usize>>,
    /// From a connection opening or going idle until a complete request head has arrived.
    pub header_timeout_seconds: Option<Spanned<u64>>,
    /// For the whole request body to arrive once its head has.
    pub body_timeout_seconds: Option<Spanned<u64>>,
    /// `/ready` is false this long after a pipeline gave records up to its error prefix
    /// (default 300; 0: give-ups do not affect readiness).
    pub not_ready_after_give_up_seconds: Option<Spanned<u64>>,
    /// In ARNs and messages (default 000000000000 and us-east-1).
    pub account_id: Option<Spanned<String>>,
    pub region: Option<Spanned<String>>,
    /// SigV4 access keys; without this section requests are not authenticated.
    pub auth: Option<Spanned<security::RawAuth>>,
    pub tls: Option<Spanned<security::RawTlsServer>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    pub dir: Option<Spanned<String>>,
    /// Upper bound on WAL bytes across all pipelines; puts get ServiceUnavailableException past it.
    pub max_bytes: Option<Spanned<ByteSize>>,
    /// WAL segment file size.
    pub segment_bytes: Option<Spanned<ByteSize>>,
    /// Upper bound on the memory request bodies take while they are read, decoded and written to
    /// the WAL, across all connections; a request past it gets ServiceUnavailableException (503)
    /// before its body is read, and SDKs retry.
    pub max_memory: Option<Spanned<ByteSize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    /// The DeliveryStreamName clients put to.
    pub name: Option<Spanned<String>>,
    #[serde(default)]
    pub source: RawSource,
    #[serde(default)]
    pub buffering: RawBuffering,
    /// The one destination; or `destinations:`, a list (fan-out: `fanout.rs`).
    pub destination: Option<Spanned<RawDestination>>,
    pub destinations: Option<Spanned<Vec<fanout::RawRoute>>>,
    /// Per-pipeline WAL bound, within the global `storage.max_bytes`.
    pub max_wal_bytes: Option<Spanned<ByteSize>>,
    /// How long undelivered records are retried before they are dropped (Firehose: 24 h).
    pub retention_hours: Option<Spanned<f64>>,
    #[serde(default)]
    pub delivery: RawDelivery,
    /// Built-in processors, in Firehose's order.
    #[serde(default)]
    pub processors: Vec<Spanned<RawProcessor>>,
    pub dynamic_partitioning: Option<Spanned<RawDynamicPartitioning>>,
    /// Direct PUT throughput quotas (Firehose's per-stream limits); unlimited by default.
    #[serde(default)]
    pub quotas: RawQuotas,
    /// `auto_create` only: how many streams the template may create (streams left from earlier
    /// runs count too).
    pub max_streams: Option<Spanned<usize>>,
    /// `auto_create` only: an auto-created stream with nothing to deliver and no put for this long
    /// is closed (its WAL directory stays; a put or a restart reopens it).
    pub idle_close_seconds: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuotas {
    pub records_per_second: Option<Spanned<u32>>,
    pub bytes_per_second: Option<Spanned<ByteSize>>,
    pub requests_per_second: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum RawProcessor {
    Decompression(RawDecompression),
    CloudwatchLogProcessing(RawCloudWatchLogs),
    RecordDeaggregation(RawDeaggregation),
    MetadataExtraction(RawMetadataExtraction),
    AppendDelimiter(RawAppendDelimiter),
    /// A WASM transform plugin, where Firehose would call Lambda.
    Wasm(Box<RawWasm>),
    /// A jq expression that maps, drops or fans out each record (a sluice extension).
    Jq(RawJq),
    /// A log line parsed into fields: regex, logfmt, syslog, cri, docker_json, json, csv.
    Parse(Box<RawParse>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawParse {
    /// regex | logfmt | syslog | cri | docker_json | json | csv
    pub format: Spanned<String>,
    /// `regex`: the pattern, with named captures (`(?P<name>...)`).
    pub pattern: Option<Spanned<String>>,
    /// `csv`: the column names, in order.
    pub columns: Option<Spanned<Vec<String>>>,
    /// `csv`: one character (default `,`).
    pub delimiter: Option<Spanned<String>>,
    /// Parse this string field of a JSON object record (default: the whole record).
    pub field: Option<Spanned<String>>,
    /// Put the fields under this key (default: merged into the record).
    pub target: Option<Spanned<String>>,
    /// `error` (default: to the error output) | `keep` (pass unchanged).
    pub on_failure: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJq {
    pub query: Spanned<String>,
    /// Write string results as their text (`jq -r`) rather than as JSON strings.
    #[serde(default)]
    pub raw_output: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWasm {
    pub module: Spanned<String>,
    /// Handed to the plugin's `sluice_init` as JSON.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// Firehose's processor buffering: records per invocation are cut at this size (0.2-3 MB).
    pub buffer_size_mb: Option<Spanned<f64>>,
    /// Accepted for Firehose parity (0-900); records are never held back waiting for it.
    pub buffer_interval_seconds: Option<Spanned<u64>>,
    pub number_of_retries: Option<Spanned<u32>>,
    pub timeout_ms: Option<Spanned<u64>>,
    pub memory_limit_mb: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDecompression {
    pub format: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCloudWatchLogs {
    pub data_message_extraction: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeaggregation {
    pub sub_record_type: Spanned<String>,
    /// Base64, as Firehose takes it (`IyMjIw==` is `####`).
    pub delimiter: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetadataExtraction {
    pub query: Spanned<String>,
    pub json_parsing_engine: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAppendDelimiter {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDynamicPartitioning {
    pub enabled: bool,
    pub max_active_partitions: Option<Spanned<usize>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBuffering {
    pub size_mb: Option<Spanned<f64>>,
    pub interval_seconds: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery {
    /// Objects uploaded at once per pipeline.
    pub concurrency: Option<Spanned<usize>>,
    /// First retry delay after a failed upload; doubles (with jitter) up to `retry_max_ms`.
    pub retry_initial_ms: Option<u64>,
    pub retry_max_ms: Option<u64>,
}

/// `tls:` of the destinations that speak HTTPS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM file of CA certificates trusted in addition to the system roots.
    pub ca_file: Option<Spanned<String>>,
}

/// Options of the object-store destinations. `s3` and `local` share one shape (and one code path
/// through object_store); validation rejects the fields that do not apply to the chosen kind.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawObjectStore {
    // s3 only
    pub bucket: Option<Spanned<String>>,
    pub endpoint: Option<Spanned<String>>,
    pub region: Option<Spanned<String>>,
    pub force_path_style: Option<Spanned<bool>>,
    // local only
    pub path: Option<Spanned<String>>,
    // both
    pub prefix: Option<Spanned<String>>,
    pub error_output_prefix: Option<Spanned<String>>,
    pub compression: Option<Spanned<Compression>>,
    /// GZIP 1–9 (default 6), ZSTD 1–19 (default 3): speed against size.
    pub compression_level: Option<Spanned<u32>>,
    pub file_extension: Option<Spanned<String>>,
    #[serde(default)]
    pub append_delimiter: bool,
    /// JSON → Parquet/ORC (Firehose's DataFormatConversionConfiguration).
    pub format_conversion: Option<Spanned<RawFormatConversion>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFormatConversion {
    /// Firehose's `Enabled` (default true): lets a config keep the block while switching it off.
    pub enabled: Option<bool>,
    pub schema: Spanned<RawSchemaChoice>,
    pub input: Option<Spanned<RawInput>>,
    pub output: Spanned<RawOutput>,
}

/// `schema: infer`, or a table schema.
#[derive(Debug)]
pub enum RawSchemaChoice {
    Keyword(String),
    Table(RawSchema),
}

// By hand rather than `#[serde(untagged)]`: untagged buffers the value and loses the line and
// column information that `Spanned` fields inside the table need.
impl<'de> Deserialize<'de> for RawSchemaChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawSchemaChoice;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`infer`, or a mapping with `columns` or `file`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawSchemaChoice, E> {
                Ok(RawSchemaChoice::Keyword(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawSchemaChoice, A::Error> {
                RawSchema::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(RawSchemaChoice::Table)
            }
        }
        d.deserialize_any(V)
    }
}

/// The table schema: inline `columns`, or a `file` holding `columns:` in the same shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchema {
    pub columns: Option<Vec<Spanned<RawColumn>>>,
    pub file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchemaFile {
    pub columns: Vec<Spanned<RawColumn>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawColumn {
    pub name: Spanned<String>,
    #[serde(rename = "type")]
    pub ty: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawInput {
    OpenxJson(RawOpenX),
    HiveJson(RawHiveJson),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOpenX {
    pub case_insensitive: Option<bool>,
    pub convert_dots_in_json_keys_to_underscores: Option<bool>,
    pub column_to_json_key_mappings: Option<Spanned<std::collections::BTreeMap<String, String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHiveJson {
    pub timestamp_formats: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawOutput {
    Parquet(Box<RawParquet>),
    Orc(Box<RawOrc>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawParquet {
    pub compression: Option<Spanned<String>>,
    pub page_size_bytes: Option<Spanned<ByteSize>>,
    pub block_size_bytes: Option<Spanned<ByteSize>>,
    pub enable_dictionary_compression: Option<bool>,
    pub max_padding_bytes: Option<Spanned<ByteSize>>,
    pub writer_version: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrc {
    pub compression: Option<Spanned<String>>,
    pub stripe_size_bytes: Option<Spanned<ByteSize>>,
    pub block_size_bytes: Option<Spanned<ByteSize>>,
    pub row_index_stride: Option<Spanned<u64>>,
    pub enable_padding: Option<Spanned<bool>>,
    pub padding_tolerance: Option<Spanned<f64>>,
    pub bloom_filter_columns: Option<Spanned<Vec<String>>>,
    pub bloom_filter_false_positive_probability: Option<Spanned<f64>>,
    pub dictionary_key_threshold: Option<Spanned<f64>>,
    pub format_version: Option<Spanned<String>>,
}

/// A byte count written as an integer or with a unit: `1048576`, `512MiB`, `10GB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte count such as 1048576, 512MiB or 10GB")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| E::custom("a byte count cannot be negative"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                parse_byte_size(v)
                    .map(ByteSize)
                    .ok_or_else(|| E::custom(format!("`{v}` is not a byte count such as 512MiB")))
            }
        }
        d.deserialize_any(V)
    }
}

fn parse_byte_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number.parse().ok()?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        "TB" => 1_000_000_000_000,
        "TiB" => 1 << 40,
        _ => return None,
    };
    (number >= 0.0).then_some((number * multiplier as f64) as u64)
}

/// Reads, interpolates, parses and validates a config file.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors::single(ConfigError::plain(&name, format!("cannot read the file: {e}"))))?;
    load_str(&text, &name, path.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// A `${NAME}` in a config: the environment's value; `HOSTNAME`, which shells do not export and
/// systemd does not set, falls back to the machine's host name so a fleet's hosts are told apart.
fn lookup_variable(name: &str) -> Option<String> {
    std::env::var(name).ok().or_else(|| (name == "HOSTNAME").then(crate::host::hostname).flatten().map(str::to_string))
}

/// Parses config text. `origin` names it in errors; relative paths in it are relative to `base`,
/// the directory of its file (empty: the working directory, for text that is not a file).
pub fn load_str(text: &str, origin: &str, base: PathBuf) -> Result<Config, ConfigErrors> {
    let Interpolated { text, redactor, errors } = interpolate_tracked(text, lookup_variable);
    let mut problems: Vec<ConfigError> = errors
        .iter()
        .map(|e| {
            let column = match e {
                InterpolateError::Unset { column, .. } => *column as u64,
                _ => 1,
            };
            let message = e.to_string();
            // "line N: " is already in the location.
            let message = message.split_once(": ").map_or(message.as_str(), |(_, m)| m).to_string();
            ConfigError { line: e.line() as u64, column, ..ConfigError::plain(origin, message) }
        })
        .collect();
    // The rest of the file is checked too (a missing variable left empty), but problems on a line
    // with a missing variable are its consequence, not news.
    let unfilled: std::collections::HashSet<u64> = problems.iter().map(|e| e.line).collect();
    match parse_and_validate(&text, origin, &base) {
        Ok(config) if problems.is_empty() => Ok(config),
        Ok(_) => Err(ConfigErrors(problems)),
        Err(ConfigErrors(found)) => {
            // No message may show what an environment variable held: it is where secrets live.
            problems.extend(found.into_iter().filter(|e| !unfilled.contains(&e.line)).map(|e| ConfigError {
                message: redactor.redact(&e.message),
                field: redactor.redact(&e.field),
                ..e
            }));
            Err(ConfigErrors(problems))
        }
    }
}

/// Every error of the file: parse errors as far as the parser can recover, then every semantic
/// error of what parsed.
/// One pipeline from its YAML (or JSON) text, as the control plane builds it from a
/// CreateDeliveryStream request: the same checks as a config file's pipelines.
pub fn pipeline_from_text(text: &str, name: &str, origin: &str) -> Result<PipelineSpec, ConfigErrors> {
    let raw: RawPipeline = serde_saphyr::from_str(text)
        .map_err(|e| ConfigErrors::single(ConfigError::plain(origin, teach::plain_yaml_error(&e))))?;
    validate::single_pipeline(&raw, name, origin)
}

fn parse_and_validate(text: &str, origin: &str, base: &Path) -> Result<Config, ConfigErrors> {
    let (raw, mut errors) = teach::parse_recovering(text, origin);
    let Some(raw) = raw else { return Err(ConfigErrors(errors)) };
    match validate::validate(raw, origin, base) {
        Ok(config) if errors.is_empty() => Ok(config),
        Ok(_) => Err(ConfigErrors(errors)),
        Err(ConfigErrors(semantic)) => {
            errors.extend(semantic);
            Err(ConfigErrors(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_accept_units() {
        assert_eq!(parse_byte_size("1048576"), Some(1 << 20));
        assert_eq!(parse_byte_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_byte_size("1.5 GiB"), Some(3 << 29));
        assert_eq!(parse_byte_size("10GB"), Some(10_000_000_000));
        assert_eq!(parse_byte_size("10 parsecs"), None);
    }
}
