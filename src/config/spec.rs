//! What a validated config says: the typed specs the daemon runs from. Nothing here parses or
//! checks (that is `validate.rs`); each connector's own spec lives in its folder.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{ApiLimits, SendingSpec, SourceSpec};
use crate::format::compression::Compression;
use crate::format::convert::ConversionSpec;
use crate::format::object_key::KeyTemplate;
use crate::process::deaggregate::SubRecordType;

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub limits: ApiLimits,
    pub identity: super::security::Identity,
    pub security: super::security::ApiSecurity,
    /// `None`: CreateDeliveryStream is refused (no bucket mapping was configured).
    pub control_plane: Option<super::control_plane::ControlPlane>,
    pub storage: StorageSettings,
    pub pipelines: Vec<PipelineSpec>,
    pub auto_create: Option<AutoCreate>,
}

#[derive(Clone, Debug)]
pub struct StorageSettings {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub segment_bytes: u64,
    /// `storage.max_memory`: the request-memory budget (`None`: bounded per connection only).
    pub max_memory: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PipelineSpec {
    pub name: String,
    pub source: SourceSpec,
    pub buffering: Buffering,
    /// The object store: where records go for `s3:`/`local:`, the backup (and error output) of a
    /// sending destination, or Redshift's staging bucket.
    pub store: ObjectDestination,
    /// The destination batches are sent to when it is not an object store (HTTP endpoint,
    /// OpenSearch, Splunk, PostgreSQL, Redshift): `config::destinations` lists them.
    pub sending: Option<Arc<SendingSpec>>,
    pub max_wal_bytes: Option<u64>,
    /// Undelivered records older than this are dropped (logged and counted), as Firehose does.
    pub retention: Duration,
    pub delivery: DeliverySettings,
    pub processors: Vec<ProcessorSpec>,
    pub dynamic_partitioning: Option<DynamicPartitioning>,
    /// Firehose's VersionId: 1, raised by each UpdateDestination; it appears in object names.
    pub version: u32,
    pub quotas: Quotas,
    /// Where the pipeline was declared: a config file's name, or "the Firehose API".
    pub origin: String,
    /// `destinations:` (YAML only): every destination of a pipeline that fans out, the first
    /// included; `store`, `sending`, `buffering` and `delivery` above are then the first's.
    pub fanout: Option<Arc<Vec<RouteSpec>>>,
}

/// One destination of a fan-out pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteSpec {
    /// Unique in the pipeline: the `destination` metric label, `/ready`'s key, part of batch names.
    pub name: String,
    /// A jq predicate: records go here only when it yields `true`.
    pub when: Option<String>,
    pub store: ObjectDestination,
    pub sending: Option<Arc<SendingSpec>>,
    pub buffering: Buffering,
    pub delivery: DeliverySettings,
}

/// One destination's view of a pipeline: the spec its delivery runs from, and its route.
pub struct Branch {
    /// The pipeline's spec with this destination's store, sending, buffering and delivery.
    pub spec: PipelineSpec,
    /// `None` for a pipeline with one destination.
    pub route: Option<RouteSpec>,
}

impl PipelineSpec {
    /// One [`Branch`] per destination, in the order written.
    pub fn branches(&self) -> Vec<Branch> {
        match &self.fanout {
            None => vec![Branch { spec: self.clone(), route: None }],
            Some(routes) => routes
                .iter()
                .map(|r| Branch {
                    spec: PipelineSpec {
                        store: r.store.clone(),
                        sending: r.sending.clone(),
                        buffering: r.buffering,
                        delivery: r.delivery,
                        ..self.clone()
                    },
                    route: Some(r.clone()),
                })
                .collect(),
        }
    }
}

/// Direct PUT throughput quotas per stream; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quotas {
    pub records_per_second: Option<std::num::NonZeroU32>,
    pub bytes_per_second: Option<std::num::NonZeroU32>,
    pub requests_per_second: Option<std::num::NonZeroU32>,
}

impl Quotas {
    pub fn is_unlimited(&self) -> bool {
        *self == Quotas::default()
    }
}

/// S3 server-side encryption for the objects written (Firehose's KMSEncryptionConfig, or the
/// stream's own encryption switched on with StartDeliveryStreamEncryption).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerSideEncryption {
    /// SSE-S3 (`AES256`).
    S3Managed,
    /// SSE-KMS with this key.
    Kms { key_id: String },
}

/// A validated built-in processor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessorSpec {
    GzipDecompression,
    CloudWatchLogProcessing,
    Deaggregation(SubRecordType),
    /// The jq query (it compiled during validation).
    MetadataExtraction(String),
    /// The jq transform (sluice's own): the query, and whether strings are written as text.
    Jq {
        query: String,
        raw_output: bool,
    },
    AppendDelimiter,
    Wasm(crate::process::wasm::WasmSettings),
    /// A line parsed into fields (sluice's own).
    Parse(crate::process::parse::ParseSpec),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DynamicPartitioning {
    /// Partitions holding buffered or undelivered data at once (Firehose default 500, up to 5,000).
    pub max_active_partitions: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffering {
    /// Flush when this many bytes (before compression) are buffered.
    pub size_bytes: usize,
    /// Flush when the oldest buffered record has waited this long; zero means at once.
    pub interval: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeliverySettings {
    pub concurrency: usize,
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObjectDestination {
    pub store: StoreSpec,
    /// The prefixes as configured (DescribeDeliveryStream echoes these).
    pub configured_prefix: Option<String>,
    pub configured_error_prefix: Option<String>,
    /// Effective prefix, with Firehose's default time path already applied.
    pub prefix: KeyTemplate,
    /// Effective error prefix, with Firehose's defaults already applied.
    pub error_prefix: KeyTemplate,
    pub compression: Compression,
    /// The codec's level when not its default (GZIP 1–9, ZSTD 1–19).
    pub compression_level: Option<u32>,
    pub file_extension: String,
    pub append_delimiter: bool,
    /// JSON → Parquet/ORC; when set, `compression` is `Uncompressed` (the file compresses itself).
    pub format_conversion: Option<Arc<ConversionSpec>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSpec {
    S3 {
        bucket: String,
        endpoint: Option<String>,
        region: Option<String>,
        force_path_style: bool,
        encryption: Option<ServerSideEncryption>,
    },
    Local {
        path: PathBuf,
    },
}

impl StoreSpec {
    /// `s3` or `local`: how its metrics (`sluice_delivery_to_<kind>_*`) and the console name it.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreSpec::S3 { .. } => "s3",
            StoreSpec::Local { .. } => "local",
        }
    }
}

/// Streams created on first put (a sluice extension; Firehose needs CreateDeliveryStream first).
#[derive(Clone, Debug, PartialEq)]
pub struct AutoCreate {
    pub(crate) template: PipelineSpec,
    /// Streams the template may create, in all.
    pub max_streams: usize,
    /// An idle, fully delivered auto-created stream is closed after this long.
    pub idle_close: Duration,
}

/// Replaced by the stream name in an auto-create template's `path`, `prefix` and `error_output_prefix`.
pub const STREAM_PLACEHOLDER: &str = "{stream}";

impl AutoCreate {
    /// The spec for a stream created on first put. The name has already been checked by
    /// [`valid_stream_name`], so it contains no `/`, `!{` or `..` and cannot escape the path.
    pub fn instantiate(&self, name: &str) -> PipelineSpec {
        let mut spec = self.template.clone();
        spec.name = name.to_string();
        let d = &mut spec.store;
        if let StoreSpec::Local { path } = &mut d.store {
            *path = PathBuf::from(path.to_string_lossy().replace(STREAM_PLACEHOLDER, name));
        }
        for template in [&mut d.prefix, &mut d.error_prefix] {
            if let Ok(t) = KeyTemplate::parse(&template.raw().replace(STREAM_PLACEHOLDER, name)) {
                *template = t;
            }
        }
        spec
    }
}

/// Firehose's DeliveryStreamName rule (`[a-zA-Z0-9_.-]{1,64}`), minus `.` and `..`, which are
/// valid Firehose names but would be path components here.
pub fn valid_stream_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name != "."
        && name != ".."
}
