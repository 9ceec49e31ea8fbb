//! Raw config → validated specs (`spec.rs`), every problem reported with its file, line, column
//! and field (`errors.rs`). The top level and pipelines are checked here; `validate/destination.rs`
//! checks object stores and prefixes, `validate/processors.rs` and `validate/conversion.rs` the two
//! largest option trees, and each source and destination its own options in its folder (listed by
//! `sources.rs` and `destinations.rs`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_saphyr::Spanned;

pub use super::api_limits::ApiLimits;
use super::{
    RawColumn, RawConfig, RawDestination, RawFormatConversion, RawInput, RawObjectStore, RawOrc, RawOutput, RawParquet,
    RawPipeline, RawProcessor, RawSchema, RawSchemaChoice, RawSchemaFile,
};
use crate::format::compression::Compression;
use crate::format::convert::orc::{OrcCompression, OrcOptions};
use crate::format::convert::parquet::{ParquetCompression, ParquetOptions};
use crate::format::convert::timestamp::HiveTimestampFormat;
use crate::format::convert::{hive_type, ConversionSpec, HiveType, InputRules, OutputFormat, SchemaSpec};
use crate::format::object_key::{KeyTemplate, DEFAULT_TIME_PATH};
use crate::process::deaggregate::SubRecordType;

mod conversion;
mod destination;
mod processors;
pub use super::destinations::SendingSpec;
pub use super::errors::{Checker, ConfigError, ConfigErrors};
pub use super::kit::Secret;
pub use super::sources::SourceSpec;
pub use super::spec::*;
pub(crate) use conversion::choose;
use conversion::format_conversion;
pub use conversion::{load_schema_file, LoadSchemaError};
use destination::destination;
pub(crate) use destination::store_destination;
use processors::processors;

pub const DEFAULT_STORAGE_DIR: &str = "./var/sluice";
/// Auto-created streams at most, unless `auto_create.max_streams` says otherwise. Firehose's own
/// default quota is 50 delivery streams per region; a local daemon can afford more, but each
/// stream costs a thread, two descriptors and a metrics label set.
pub const DEFAULT_MAX_AUTO_STREAMS: usize = 100;
pub const DEFAULT_IDLE_CLOSE_SECONDS: u64 = 600;
const MIB: f64 = 1024.0 * 1024.0;

fn quotas(c: &mut Checker, q: &super::RawQuotas, field: &str) -> Quotas {
    use std::num::NonZeroU32;
    let mut check = |value: Option<(u64, serde_saphyr::Location)>, key: &str| {
        let (n, at) = value?;
        let n = u32::try_from(n).ok().and_then(NonZeroU32::new);
        if n.is_none() {
            c.errors.push(ConfigError {
                origin: c.origin.to_string(),
                line: at.line(),
                column: at.column(),
                field: format!("{field}.quotas.{key}"),
                message: "must be between 1 and 4294967295 (leave it out for no quota)".into(),
            });
        }
        n
    };
    Quotas {
        records_per_second: check(
            q.records_per_second.as_ref().map(|s| (u64::from(s.value), s.referenced)),
            "records_per_second",
        ),
        bytes_per_second: check(q.bytes_per_second.as_ref().map(|s| (s.value.0, s.referenced)), "bytes_per_second"),
        requests_per_second: check(
            q.requests_per_second.as_ref().map(|s| (u64::from(s.value), s.referenced)),
            "requests_per_second",
        ),
    }
}

/// What prefix validation needs to know about the pipeline's processors.
pub struct PartitionContext {
    pub(crate) enabled: bool,
    has_query: bool,
    has_plugin: bool,
}

/// One pipeline on its own (the control plane's translated requests).
pub(super) fn single_pipeline(raw: &RawPipeline, name: &str, origin: &str) -> Result<PipelineSpec, ConfigErrors> {
    let mut c = Checker { origin, base: std::path::Path::new(""), errors: Vec::new(), identity: Default::default() };
    match pipeline(&mut c, raw, name.to_string(), "pipeline") {
        Some(spec) if c.errors.is_empty() => Ok(spec),
        _ => Err(ConfigErrors(c.errors)),
    }
}

pub(super) fn validate(raw: RawConfig, origin: &str, base: &std::path::Path) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let (identity, security) = super::security::validate(&raw.api, &mut errors, origin, base);
    let mut c = Checker { origin, base, errors, identity: identity.clone() };

    let listen = match &raw.api.listen {
        Some(l) => resolve_listen(&l.value).unwrap_or_else(|e| {
            c.at(l, "api.listen", e);
            fallback_listen()
        }),
        None => fallback_listen(),
    };

    let storage = StorageSettings {
        // A default is no path the file names: it stays relative to the working directory.
        dir: raw.storage.dir.as_ref().map_or_else(|| DEFAULT_STORAGE_DIR.into(), |d| c.path(&d.value)),
        max_bytes: raw.storage.max_bytes.as_ref().map_or(8 << 30, |b| b.value.0),
        segment_bytes: raw.storage.segment_bytes.as_ref().map_or(64 << 20, |b| b.value.0),
        max_memory: raw.storage.max_memory.as_ref().map(|m| m.value.0),
    };
    if let Some(m) = &raw.storage.max_memory {
        // One largest request (an 8 MiB body, its records and its WAL frame) must fit.
        if m.value.0 < crate::config::MIN_MAX_MEMORY {
            c.at(m, "storage.max_memory", "must be at least 32MiB: one largest request (an 8 MiB body) must fit");
        }
    }
    if let Some(seg) = &raw.storage.segment_bytes {
        if !(64 << 10..=1 << 30).contains(&seg.value.0) {
            c.at(seg, "storage.segment_bytes", "must be between 64KiB and 1GiB");
        }
    }
    if let Some(max) = &raw.storage.max_bytes {
        if max.value.0 < storage.segment_bytes {
            c.at(max, "storage.max_bytes", format!("must be at least one segment ({} bytes)", storage.segment_bytes));
        }
    }

    let mut names = HashSet::new();
    let mut pipelines = Vec::new();
    for (i, p) in raw.pipelines.iter().enumerate() {
        let field = format!("pipelines[{i}]");
        let name = match &p.value.name {
            Some(n) => {
                if !valid_stream_name(&n.value) {
                    c.at(n, &format!("{field}.name"), format!("`{}` is not a valid DeliveryStreamName: 1-64 characters of [a-zA-Z0-9_.-], not `.` or `..`", n.value));
                } else if !names.insert(n.value.clone()) {
                    c.at(n, &format!("{field}.name"), format!("`{}` is declared twice", n.value));
                }
                n.value.clone()
            }
            None => {
                c.at(p, &format!("{field}.name"), "is required: it is the DeliveryStreamName clients put to");
                String::new()
            }
        };
        if let Some(spec) = pipeline(&mut c, &p.value, name, &field) {
            pipelines.push(spec);
        }
    }

    super::sources::check_together(&mut c, &pipelines);

    let auto_create = raw.auto_create.as_ref().and_then(|t| {
        if let Some(n) = &t.value.name {
            c.at(
                n,
                "auto_create.name",
                "a template has no name: each stream created from it takes the name clients put to",
            );
        }
        let max_streams = t.value.max_streams.as_ref().map_or(DEFAULT_MAX_AUTO_STREAMS, |m| {
            if !(1..=10_000).contains(&m.value) {
                c.at(m, "auto_create.max_streams", "must be between 1 and 10000");
            }
            m.value
        });
        let idle_close =
            Duration::from_secs(t.value.idle_close_seconds.as_ref().map_or(DEFAULT_IDLE_CLOSE_SECONDS, |s| s.value));
        pipeline(&mut c, &t.value, "template".into(), "auto_create").map(|template| AutoCreate {
            template,
            max_streams,
            idle_close,
        })
    });
    for (i, p) in raw.pipelines.iter().enumerate() {
        for (value, key) in [
            (p.value.max_streams.as_ref().map(|m| m.referenced), "max_streams"),
            (p.value.idle_close_seconds.as_ref().map(|m| m.referenced), "idle_close_seconds"),
        ] {
            if let Some(at) = value {
                c.errors.push(ConfigError {
                    origin: origin.to_string(),
                    line: at.line(),
                    column: at.column(),
                    field: format!("pipelines[{i}].{key}"),
                    message: "only applies to the auto_create template".into(),
                });
            }
        }
    }
    let limits = super::api_limits::validate(&raw.api, &mut c.errors, origin);
    let control_plane =
        raw.control_plane.as_ref().map(|cp| super::control_plane::validate(cp, &mut c.errors, origin, base));

    if c.errors.is_empty() {
        Ok(Config { listen, limits, identity, security, control_plane, storage, pipelines, auto_create })
    } else {
        Err(ConfigErrors(c.errors))
    }
}

/// `127.0.0.1:4573`, `[::1]:4573`, or a host name with a port (`localhost:4573`, resolved now;
/// IPv4 first, as `curl localhost` tries it first too).
pub fn resolve_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let bad = |why: String| {
        format!("`{text}` is not an address to listen on such as 127.0.0.1:4573 or localhost:4573 ({why})")
    };
    let addrs: Vec<SocketAddr> =
        std::net::ToSocketAddrs::to_socket_addrs(text).map_err(|e| bad(e.to_string()))?.collect();
    addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).copied().ok_or_else(|| bad("it resolves to no address".into()))
}

fn fallback_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 4573))
}

fn pipeline(c: &mut Checker, p: &RawPipeline, name: String, field: &str) -> Option<PipelineSpec> {
    let errors_before = c.errors.len();
    // A Kinesis source with problems reads nothing; they are reported.
    let source = super::sources::validate(c, &p.source, &name, field).unwrap_or(SourceSpec::DirectPut);

    let buffering = buffering(c, &p.buffering, &format!("{field}.buffering"), None);

    let retention_hours = p.retention_hours.as_ref().map_or(24.0, |r| r.value);
    if let Some(r) = &p.retention_hours {
        if !(r.value > 0.0 && r.value <= 24.0 * 366.0) {
            c.at(r, &format!("{field}.retention_hours"), "must be more than 0 and at most a year");
        }
    }

    let delivery = delivery_settings(c, &p.delivery, &format!("{field}.delivery"), None);

    let dynamic_partitioning = p.dynamic_partitioning.as_ref().filter(|d| d.value.enabled).map(|d| {
        let max = d.value.max_active_partitions.as_ref().map_or(500, |m| m.value);
        if let Some(m) = &d.value.max_active_partitions {
            if !(1..=5000).contains(&m.value) {
                c.at(m, &format!("{field}.dynamic_partitioning.max_active_partitions"), "must be between 1 and 5000");
            }
        }
        DynamicPartitioning { max_active_partitions: max }
    });
    let processors = processors(c, p, field, dynamic_partitioning.is_some());
    let partitions = PartitionContext {
        enabled: dynamic_partitioning.is_some(),
        has_query: processors.iter().any(|p| matches!(p, ProcessorSpec::MetadataExtraction(_))),
        has_plugin: processors.iter().any(|p| matches!(p, ProcessorSpec::Wasm(_))),
    };
    let one = |c: &mut Checker, d: &Spanned<RawDestination>, at: &str, size: Option<&Spanned<f64>>, size_at: &str| {
        let checked = destination(c, d, at, &partitions);
        check_destination(c, p, (d, at, field), checked.as_ref(), &processors, (size, size_at));
        checked
    };
    let (first, fanout) = match (&p.destination, &p.destinations) {
        (Some(d), None) => {
            let size_at = format!("{field}.buffering.size_mb");
            (one(c, d, &format!("{field}.destination"), p.buffering.size_mb.as_ref(), &size_at), None)
        }
        (None, Some(list)) => {
            let routes = super::fanout::validate(c, list, &format!("{field}.destinations"), (buffering, delivery), one);
            let first = routes.first().map(|r| (r.store.clone(), r.sending.clone()));
            (first, Some(Arc::new(routes)))
        }
        (Some(d), Some(_)) => {
            c.at(
                d,
                &format!("{field}.destination"),
                "give either `destination:` or `destinations:` (a list), not both",
            );
            (None, None)
        }
        (None, None) => {
            let message = "is required: where records go (`destination:`, or `destinations:` for several)";
            match &p.name {
                Some(n) => c.at(n, &format!("{field}.destination"), message),
                None => c.plain(format!("`{field}.destination` {message}")),
            }
            (None, None)
        }
    };
    let (destination, endpoint) = match first {
        Some((d, e)) => (Some(d), e),
        None => (None, None),
    };
    if c.errors.len() > errors_before {
        return None;
    }
    Some(PipelineSpec {
        name,
        source,
        buffering,
        store: destination?,
        sending: endpoint,
        max_wal_bytes: p.max_wal_bytes.as_ref().map(|b| b.value.0),
        retention: Duration::from_secs_f64(retention_hours * 3600.0),
        delivery,
        processors,
        version: 1,
        quotas: quotas(c, &p.quotas, field),
        origin: c.origin.to_string(),
        dynamic_partitioning,
        fanout,
    })
}

/// `buffering:`, each value defaulting to `base`'s (a destination's over its pipeline's) or to
/// Firehose's defaults.
pub(super) fn buffering(c: &mut Checker, raw: &super::RawBuffering, field: &str, base: Option<Buffering>) -> Buffering {
    let base = base.unwrap_or(Buffering { size_bytes: 5 << 20, interval: Duration::from_secs(300) });
    if let Some(s) = &raw.size_mb {
        if !(1.0..=128.0).contains(&s.value) {
            c.at(s, &format!("{field}.size_mb"), "must be between 1 and 128 (Firehose's S3 range)");
        }
    }
    if let Some(s) = &raw.interval_seconds {
        if s.value > 900 {
            c.at(s, &format!("{field}.interval_seconds"), "must be between 0 and 900 (0 delivers at once)");
        }
    }
    Buffering {
        size_bytes: raw.size_mb.as_ref().map_or(base.size_bytes, |s| (s.value * MIB) as usize),
        interval: raw.interval_seconds.as_ref().map_or(base.interval, |s| Duration::from_secs(s.value)),
    }
}

/// `delivery:`, each value defaulting to `base`'s or to sluice's defaults.
pub(super) fn delivery_settings(
    c: &mut Checker,
    raw: &super::RawDelivery,
    field: &str,
    base: Option<DeliverySettings>,
) -> DeliverySettings {
    let base = base.unwrap_or(DeliverySettings {
        concurrency: 4,
        retry_initial: Duration::from_millis(1_000),
        retry_max: Duration::from_millis(60_000),
    });
    if let Some(v) = &raw.concurrency {
        if !(1..=64).contains(&v.value) {
            c.at(v, &format!("{field}.concurrency"), "must be between 1 and 64");
        }
    }
    DeliverySettings {
        concurrency: raw.concurrency.as_ref().map_or(base.concurrency, |v| v.value),
        retry_initial: raw.retry_initial_ms.map_or(base.retry_initial, |ms| Duration::from_millis(ms.max(1))),
        retry_max: raw.retry_max_ms.map_or(base.retry_max, |ms| Duration::from_millis(ms.max(1))),
    }
}

/// The rules between a destination and the rest of its pipeline: an HTTP endpoint's buffer size,
/// the error prefix dynamic partitioning needs, and `append_delimiter` said once.
fn check_destination(
    c: &mut Checker,
    p: &RawPipeline,
    (raw, at, pipeline): (&Spanned<RawDestination>, &str, &str),
    checked: Option<&(ObjectDestination, Option<Arc<SendingSpec>>)>,
    processors: &[ProcessorSpec],
    (size, size_at): (Option<&Spanned<f64>>, &str),
) {
    let Some((d, endpoint)) = checked else { return };
    if let (Some(_), Some(size)) = (endpoint, size) {
        if size.value > 64.0 {
            c.at(size, size_at, "must be between 1 and 64 for an HTTP endpoint (Firehose's range)");
        }
    }
    if let Some(dp) = &p.dynamic_partitioning {
        if dp.value.enabled && d.configured_error_prefix.is_none() {
            c.at(
                dp,
                &format!("{at}.error_output_prefix"),
                "is required when dynamic partitioning is enabled (Firehose rule)",
            );
        }
    }
    if d.append_delimiter && processors.contains(&ProcessorSpec::AppendDelimiter) {
        c.at(
            raw,
            &format!("{pipeline}.processors"),
            "append_delimiter is set both as a processor and on the destination; keep one",
        );
    }
    if d.format_conversion.is_some() && processors.contains(&ProcessorSpec::AppendDelimiter) {
        c.at(
            raw,
            &format!("{pipeline}.processors"),
            "append_delimiter has no meaning with format_conversion (records become rows); remove it",
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;

    fn load(yaml: &str) -> Result<crate::config::Config, String> {
        load_str(yaml, "test.yaml", Default::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn the_issue_example_validates() {
        let cfg = load(
            r#"
api:
  listen: 127.0.0.1:4573
storage:
  dir: ./var/sluice
pipelines:
  - name: clicks
    source: { direct_put: {} }
    buffering: { size_mb: 5, interval_seconds: 300 }
    destination:
      s3:
        bucket: data-lake
        endpoint: http://127.0.0.1:9000
        region: us-east-1
        force_path_style: true
        prefix: "clicks/!{timestamp:yyyy/MM/dd}/"
        error_output_prefix: "errors/!{firehose:error-output-type}/"
        compression: GZIP
        file_extension: ".json.gz"
        append_delimiter: true
"#,
        )
        .unwrap();
        let p = &cfg.pipelines[0];
        assert_eq!(p.name, "clicks");
        assert_eq!(p.buffering.size_bytes, 5 << 20);
        assert_eq!(p.store.file_extension, ".json.gz");
        assert_eq!(p.store.prefix.raw(), "clicks/!{timestamp:yyyy/MM/dd}/");
    }

    #[test]
    fn unknown_fields_name_file_line_and_field() {
        let err =
            load("pipelines:\n  - name: a\n    destination:\n      local: { path: ./d, colour: blue }\n").unwrap_err();
        assert!(err.starts_with("test.yaml:4:"), "{err}");
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn semantic_errors_point_at_the_value() {
        let err = load(
            "pipelines:\n  - name: a\n    buffering: { size_mb: 500 }\n    destination: { local: { path: ./d } }\n",
        )
        .unwrap_err();
        assert!(err.starts_with("test.yaml:3:"), "{err}");
        assert!(err.contains("`pipelines[0].buffering.size_mb`"), "{err}");
    }

    #[test]
    fn firehose_prefix_rules_are_enforced() {
        let cases = [
            ("prefix: \"a/!{timestamp:yyyy}/\"", "is required when prefix uses expressions"),
            ("prefix: \"!{firehose:error-output-type}/\"\n        error_output_prefix: \"e/!{firehose:error-output-type}\"", "may only appear in error_output_prefix"),
            ("error_output_prefix: \"e/!{timestamp:yyyy}/\"", "must include `!{firehose:error-output-type}`"),
            ("prefix: \"a/!{bogus}/\"", "unknown expression"),
            ("file_extension: \"gz\"", "must be empty or match"),
        ];
        for (fields, expected) in cases {
            let yaml = format!(
                "pipelines:\n  - name: a\n    destination:\n      local:\n        path: ./d\n        {fields}\n"
            );
            let err = load(&yaml).unwrap_err();
            assert!(err.contains(expected), "{fields}: {err}");
        }
    }

    #[test]
    fn compression_levels_are_checked_against_the_codec() {
        let yaml =
            |extra: &str| format!("pipelines:\n  - name: a\n    destination: {{ local: {{ path: ./d, {extra} }} }}\n");
        let cfg = load(&yaml("compression: GZIP, compression_level: 4")).unwrap();
        assert_eq!(
            (cfg.pipelines[0].store.compression, cfg.pipelines[0].store.compression_level),
            (crate::format::Compression::Gzip, Some(4))
        );
        let cases = [
            ("compression: GZIP, compression_level: 10", "must be between 1 and 9 for GZIP"),
            ("compression: ZSTD, compression_level: 0", "must be between 1 and 19 for ZSTD"),
            ("compression_level: 5", "applies to GZIP (1–9) and ZSTD (1–19), not UNCOMPRESSED"),
        ];
        for (extra, expected) in cases {
            let err = load(&yaml(extra)).unwrap_err();
            assert!(err.contains(expected) && err.contains("compression_level"), "{extra}: {err}");
        }
    }

    #[test]
    fn default_prefixes_follow_firehose() {
        let cfg = load("pipelines:\n  - name: a\n    destination: { local: { path: ./d, prefix: logs } }\n").unwrap();
        let d = &cfg.pipelines[0].store;
        assert_eq!(d.prefix.raw(), "logs!{timestamp:yyyy/MM/dd/HH}/");
        assert_eq!(d.error_prefix.raw(), "logs!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/");
        let cfg = load("pipelines:\n  - name: a\n    destination: { local: { path: ./d } }\n").unwrap();
        assert_eq!(cfg.pipelines[0].store.prefix.raw(), "!{timestamp:yyyy/MM/dd/HH}/");
    }

    #[test]
    fn wrong_kind_fields_are_rejected() {
        let err = load("pipelines:\n  - name: a\n    destination: { local: { path: ./d, bucket: b } }\n").unwrap_err();
        assert!(err.contains("`pipelines[0].destination.local.bucket`"), "{err}");
        let err = load("pipelines:\n  - name: a\n    destination: { s3: { region: x } }\n").unwrap_err();
        assert!(err.contains("`pipelines[0].destination.s3.bucket`: is required"), "{err}");
    }

    #[test]
    fn destinations_fan_out_with_their_own_settings() {
        let cfg = load(
            "pipelines:\n  - name: a\n    buffering: { size_mb: 8, interval_seconds: 60 }\n    destinations:\n      - local: { path: ./all }\n      - when: '.level == \"error\"'\n        buffering: { interval_seconds: 1 }\n        delivery: { concurrency: 2 }\n        local: { path: ./errors }\n      - name: screen\n        stdout: {}\n",
        )
        .unwrap();
        let p = &cfg.pipelines[0];
        let routes = p.fanout.as_deref().unwrap();
        let names: Vec<&str> = routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["local", "local-2", "screen"]);
        assert_eq!(routes[1].when.as_deref(), Some(".level == \"error\""));
        assert_eq!(routes[1].buffering.size_bytes, 8 << 20, "unset values are the pipeline's");
        assert_eq!(routes[1].buffering.interval.as_secs(), 1);
        assert_eq!(routes[1].delivery.concurrency, 2);
        assert_eq!(routes[0].delivery.concurrency, 4);
        assert!(routes[2].sending.is_some());
        // The flat fields are the first destination's (Describe shows it).
        assert_eq!(p.store, routes[0].store);
        let branches = p.branches();
        assert_eq!(branches.len(), 3);
        assert_eq!(branches[1].spec.store, routes[1].store);
        assert_eq!(branches[1].spec.buffering.interval.as_secs(), 1);
    }

    #[test]
    fn destinations_problems_are_reported_with_their_fields() {
        let cases = [
            ("destinations: []", "lists no destination"),
            ("destination: { local: { path: ./a } }\n    destinations: [ { local: { path: ./b } } ]", "not both"),
            (
                "destinations:\n      - { name: x, local: { path: ./a } }\n      - { name: x, local: { path: ./b } }",
                "`x` names two destinations",
            ),
            (
                "destinations:\n      - { local: { path: ./a }, when: '.a ==' }",
                "`pipelines[0].destinations[0].when`: is not a jq expression",
            ),
            (
                "destinations:\n      - { local: { path: ./a }, buffering: { size_mb: 500 } }",
                "`pipelines[0].destinations[0].buffering.size_mb`",
            ),
            (
                "destinations:\n      - { local: { path: ./a, prefix: \"x/!{timestamp:yyyy}/\" } }",
                "`pipelines[0].destinations[0].local.error_output_prefix`",
            ),
            ("destinations:\n      - { name: Bad Name, local: { path: ./a } }", "is not a destination name"),
        ];
        for (yaml, expected) in cases {
            let err = load(&format!("pipelines:\n  - name: a\n    {yaml}\n")).unwrap_err();
            assert!(err.contains(expected), "{yaml}: {err}");
        }
        let err = load("pipelines:\n  - name: a\n").unwrap_err();
        assert!(err.contains("is required: where records go"), "{err}");
    }

    #[test]
    fn stream_names_follow_firehose_and_cannot_traverse() {
        use super::valid_stream_name;
        assert!(valid_stream_name("clicks.v2_a-b"));
        assert!(!valid_stream_name(".."));
        assert!(!valid_stream_name("a/b"));
        assert!(!valid_stream_name(&"x".repeat(65)));
        assert!(!valid_stream_name(""));
    }

    #[test]
    fn embedded_default_is_valid_and_instantiates_per_stream() {
        let cfg = load(crate::config::EMBEDDED_DEFAULT).unwrap();
        let spec = cfg.auto_create.unwrap().instantiate("orders");
        assert_eq!(spec.name, "orders");
        assert_eq!(spec.store.store, super::StoreSpec::Local { path: "./data/orders".into() });
    }
}
