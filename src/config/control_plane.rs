//! `control_plane:`: where delivery streams created over the API deliver.
//!
//! A CreateDeliveryStream request names AWS resources by ARN: a bucket, a Lambda function, a Glue
//! table. sluice has none of them, so this section says what each stands for here:
//!
//! ```yaml
//! control_plane:
//!   max_streams: 50
//!   buckets:                              # BucketARN arn:aws:s3:::<name> → a real place
//!     data-lake-raw: { s3: { endpoint: http://127.0.0.1:9000, bucket: raw, force_path_style: true } }
//!     "*": { local: { path: "./data/{bucket}" } }     # every other bucket
//!   functions: { dir: ./plugins }         # …:function:redact → ./plugins/redact.wasm
//!   tables:                               # Glue DatabaseName.TableName → a schema file
//!     analytics.events: ./schemas/events.yaml
//!   kinesis: { endpoint: http://127.0.0.1:4567 }   # where KinesisStreamARNs are (default: AWS)
//!   kafka:                                # MSKClusterARN → brokers (what `source: kafka:` takes)
//!     "*": { bootstrap_servers: "127.0.0.1:9092" }
//!   iceberg_catalogs:                     # CatalogARN → what an iceberg: destination's catalog: takes
//!     "*": { type: glue, uri: http://127.0.0.1:5000, warehouse: s3://lake/warehouse }
//! ```
//!
//! Without this section CreateDeliveryStream is refused, saying how to turn it on.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::validate::ConfigError;

/// Replaced by the bucket name from the ARN in a mapping's `path` or `bucket`.
pub const BUCKET_PLACEHOLDER: &str = "{bucket}";
/// The key of the mapping used for every bucket not named.
pub const ANY_BUCKET: &str = "*";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawControlPlane {
    /// Streams created over the API at most (Firehose's LimitExceededException past it).
    pub max_streams: Option<Spanned<usize>>,
    #[serde(default)]
    pub buckets: BTreeMap<String, Spanned<RawBucket>>,
    pub functions: Option<RawFunctions>,
    #[serde(default)]
    pub tables: BTreeMap<String, Spanned<String>>,
    /// Where the Kinesis streams that KinesisStreamSourceConfiguration names are (default: AWS's
    /// endpoint for the ARN's region).
    pub kinesis: Option<RawKinesisEndpoint>,
    /// MSK cluster ARN (or `"*"`) → the connection options of a `kafka:` source (checked when a
    /// stream uses it: they are validated as that source's).
    #[serde(default)]
    pub kafka: BTreeMap<String, serde_json::Value>,
    /// Glue catalog ARN (or `"*"`) → an `iceberg:` destination's `catalog:` block (checked when a
    /// stream uses it).
    #[serde(default)]
    pub iceberg_catalogs: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKinesisEndpoint {
    pub endpoint: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum RawBucket {
    S3(RawS3Bucket),
    Local(RawLocalBucket),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawS3Bucket {
    /// The real bucket (default: the ARN's name); may contain `{bucket}`.
    pub bucket: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub force_path_style: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocalBucket {
    pub path: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFunctions {
    pub dir: Spanned<String>,
}

/// Where a bucket named in an ARN really is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BucketTarget {
    S3 { bucket: Option<String>, endpoint: Option<String>, region: Option<String>, force_path_style: Option<bool> },
    Local { path: String },
}

impl BucketTarget {
    /// This target as a sluice `destination:` object-store block, for the bucket `name`.
    pub fn to_destination(&self, name: &str) -> serde_json::Value {
        let fill = |s: &str| s.replace(BUCKET_PLACEHOLDER, name);
        match self {
            BucketTarget::S3 { bucket, endpoint, region, force_path_style } => {
                let mut o = serde_json::Map::new();
                o.insert("bucket".into(), fill(bucket.as_deref().unwrap_or(name)).into());
                if let Some(e) = endpoint {
                    o.insert("endpoint".into(), e.clone().into());
                }
                if let Some(r) = region {
                    o.insert("region".into(), r.clone().into());
                }
                if let Some(f) = force_path_style {
                    o.insert("force_path_style".into(), (*f).into());
                }
                serde_json::json!({ "s3": o })
            }
            BucketTarget::Local { path } => serde_json::json!({ "local": { "path": fill(path) } }),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ControlPlane {
    pub max_streams: usize,
    pub buckets: BTreeMap<String, BucketTarget>,
    pub functions_dir: Option<PathBuf>,
    /// `database.table` → schema file.
    pub tables: BTreeMap<String, PathBuf>,
    pub kinesis_endpoint: Option<String>,
    /// MSK cluster ARN (or `"*"`) → `bootstrap_servers`, `tls`, `sasl`, `librdkafka_options`.
    pub kafka_clusters: BTreeMap<String, serde_json::Value>,
    /// Glue CatalogARN (or `"*"`) → an Iceberg `catalog:` block.
    pub iceberg_catalogs: BTreeMap<String, serde_json::Value>,
}

impl ControlPlane {
    pub fn bucket(&self, name: &str) -> Option<&BucketTarget> {
        self.buckets.get(name).or_else(|| self.buckets.get(ANY_BUCKET))
    }
}

/// Firehose's default quota of delivery streams per region in its 2023 guide; the API reference
/// now says 5,000, but each stream here costs a thread and descriptors.
pub const DEFAULT_MAX_STREAMS: usize = 50;

pub(super) fn validate(
    raw: &Spanned<RawControlPlane>,
    errors: &mut Vec<ConfigError>,
    origin: &str,
    base: &std::path::Path,
) -> ControlPlane {
    let r = &raw.value;
    let max_streams = r.max_streams.as_ref().map_or(DEFAULT_MAX_STREAMS, |m| {
        if !(1..=5000).contains(&m.value) {
            errors.push(ConfigError::at(origin, m, "control_plane.max_streams", "must be between 1 and 5000".into()));
        }
        m.value
    });
    let mut buckets = BTreeMap::new();
    for (name, b) in &r.buckets {
        let field = format!("control_plane.buckets.{name}");
        let target = match &b.value {
            RawBucket::S3(s) => BucketTarget::S3 {
                bucket: s.bucket.clone(),
                endpoint: s.endpoint.clone(),
                region: s.region.clone(),
                force_path_style: s.force_path_style,
            },
            RawBucket::Local(l) => {
                if name == ANY_BUCKET && !l.path.value.contains(BUCKET_PLACEHOLDER) {
                    errors.push(ConfigError::at(
                        origin,
                        &l.path,
                        &format!("{field}.local.path"),
                        format!("must contain {BUCKET_PLACEHOLDER} so that buckets do not share a directory"),
                    ));
                }
                BucketTarget::Local { path: l.path.value.clone() }
            }
        };
        buckets.insert(name.clone(), target);
    }
    if buckets.is_empty() {
        errors.push(ConfigError::at(
            origin,
            raw,
            "control_plane.buckets",
            "must map at least one bucket (or \"*\" for all) to an s3: or local: place".into(),
        ));
    }
    let tables = r.tables.iter().map(|(k, v)| (k.clone(), super::errors::relative_to(base, &v.value))).collect();
    ControlPlane {
        max_streams,
        buckets,
        functions_dir: r.functions.as_ref().map(|f| super::errors::relative_to(base, &f.dir.value)),
        tables,
        kinesis_endpoint: r.kinesis.as_ref().map(|k| k.endpoint.value.clone()),
        kafka_clusters: r.kafka.clone(),
        iceberg_catalogs: r.iceberg_catalogs.clone(),
    }
}
