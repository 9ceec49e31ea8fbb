//! Prometheus metrics, named after Firehose's CloudWatch metrics (spec §10) and labelled with
//! `delivery_stream_name` as Firehose's dimension is. A pipeline exports the series of what it
//! has: its object store's (`delivery_to_s3_*`, or `delivery_to_local_*` for a local directory),
//! its sending destination's (`delivery_to_splunk_*`, ...) and backups only with one, conversion
//! only with format conversion. Every family has a HELP line (the table in [`describe`]); a removed
//! pipeline's series leave `/metrics` with it (`api::health` keeps only current pipelines').

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter, Gauge, Histogram, Unit,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Histogram buckets in seconds: from half a millisecond (a put's group commit) to ten minutes (a
/// delivery that waited out a long buffering interval or an outage).
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    600.0,
];

/// Installs the global recorder once and returns the handle `/metrics` renders.
pub fn install() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            // Buckets make histograms aggregatable across daemons (summaries are not).
            let builder = match builder.set_buckets(SECONDS_BUCKETS) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "histogram buckets refused; latencies are exported as summaries");
                    PrometheusBuilder::new()
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            describe();
            gauge!("sluice_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

fn describe() {
    describe_gauge!("sluice_build_info", "1, labelled with the running sluice's version");
    describe_histogram!(
        "sluice_put_latency_seconds",
        Unit::Seconds,
        "PutRecord.Latency / PutRecordBatch.Latency: from the request's body read to its acknowledgement (on disk)"
    );
    describe_histogram!(
        "sluice_execute_processing_duration_seconds",
        Unit::Seconds,
        "ExecuteProcessing.Duration: the processor chain's time per batch of records read from the WAL"
    );
    describe_histogram!(
        "sluice_jq_processing_duration_seconds",
        Unit::Seconds,
        "JQProcessing.Duration: time in jq (metadata extraction and the jq transform) per batch"
    );
    describe_histogram!(
        "sluice_delivery_latency_seconds",
        Unit::Seconds,
        "From the arrival of an object's oldest record to the object being written (put → object)"
    );
    describe_counter!("sluice_backup_to_s3_records_total", "BackupToS3.Records: records copied to the backup store");
    describe_counter!(
        "sluice_backup_to_s3_bytes_total",
        "BackupToS3.Bytes: bytes of records copied to the backup store"
    );
    for m in crate::config::destinations::DELIVERY_METRICS {
        let (name, firehose, delivered) = (m.name, m.firehose, m.delivered);
        describe_counter!(
            format!("sluice_delivery_to_{name}_records_total"),
            format!("{firehose}.Records: {delivered}")
        );
        describe_counter!(
            format!("sluice_delivery_to_{name}_bytes_total"),
            format!("{firehose}.Bytes: bytes of those records")
        );
        describe_gauge!(
            format!("sluice_delivery_to_{name}_data_freshness_seconds"),
            format!("{firehose}.DataFreshness: age of the oldest record not yet delivered to it")
        );
        describe_counter!(
            format!("sluice_delivery_to_{name}_failures_total"),
            "failed sends (each retried until the retry duration)"
        );
    }
    describe_counter!("sluice_api_responses_total", "Firehose API responses by operation and HTTP status");
    describe_gauge!(
        "sluice_request_memory_bytes",
        "storage.max_memory: memory reserved by requests in progress (3 x each one's length)"
    );
    describe_counter!(
        "sluice_request_memory_refusals_total",
        "storage.max_memory: requests answered 503 because the budget was taken"
    );
    describe_counter!(
        "sluice_incoming_records_total",
        "IncomingRecords: records acknowledged to PutRecord/PutRecordBatch"
    );
    describe_counter!("sluice_incoming_bytes_total", "IncomingBytes: bytes of acknowledged records");
    describe_counter!(
        "sluice_incoming_put_requests_total",
        "IncomingPutRequests: PutRecord and PutRecordBatch requests accepted"
    );
    describe_counter!(
        "sluice_lines_truncated_total",
        "lines longer than the source's max_line_bytes, cut to it (file, stdin and http sources)"
    );
    describe_counter!(
        "sluice_throttled_records_total",
        "ThrottledRecords: records refused with ServiceUnavailableException (storage full or over the stream's quota)"
    );
    describe_gauge!("sluice_records_per_second_limit", "RecordsPerSecondLimit: the stream's records/s quota");
    describe_gauge!("sluice_bytes_per_second_limit", "BytesPerSecondLimit: the stream's bytes/s quota");
    describe_gauge!("sluice_put_requests_per_second_limit", "PutRequestsPerSecondLimit: the stream's requests/s quota");
    for (store, what) in [("s3", "DeliveryToS3"), ("local", "delivery to a local directory (like DeliveryToS3)")] {
        describe_counter!(
            format!("sluice_delivery_to_{store}_records_total"),
            format!("{what}.Records: records written to the object store")
        );
        describe_counter!(
            format!("sluice_delivery_to_{store}_bytes_total"),
            format!("{what}.Bytes: record bytes (before compression) written to the object store")
        );
        describe_counter!(
            format!("sluice_delivery_to_{store}_object_count_total"),
            format!("{what}.ObjectCount: objects written")
        );
        describe_counter!(
            format!("sluice_delivery_to_{store}_failures_total"),
            "failed object writes (each is retried)"
        );
        describe_gauge!(
            format!("sluice_delivery_to_{store}_data_freshness_seconds"),
            format!("{what}.DataFreshness: age of the oldest undelivered record")
        );
    }
    describe_counter!("sluice_records_expired_total", "Undelivered records dropped after the retention period");
    describe_gauge!("sluice_wal_bytes", "Bytes held in the pipeline's write-ahead log");
    describe_gauge!("sluice_partition_count", "PartitionCount: active dynamic partitions (buffered or uploading)");
    describe_gauge!(
        "sluice_buffered_bytes",
        "bytes of records held in memory: in buffers not yet cut, and in batches being uploaded"
    );
    describe_gauge!("sluice_buffer_limit_bytes", "the in-memory limit those bytes are held under");
    describe_gauge!(
        "sluice_partition_count_exceeded",
        "PartitionCountExceeded: 1 if records were refused for exceeding max_active_partitions"
    );
    describe_counter!("sluice_error_output_records_total", "Records written to the error output, by error-output-type");
    describe_counter!(
        "sluice_succeed_conversion_records_total",
        "SucceedConversion.Records: records converted to Parquet/ORC"
    );
    describe_counter!("sluice_succeed_conversion_bytes_total", "SucceedConversion.Bytes: bytes of records converted");
    describe_counter!(
        "sluice_failed_conversion_records_total",
        "FailedConversion.Records: records that failed conversion"
    );
    describe_counter!(
        "sluice_failed_conversion_bytes_total",
        "FailedConversion.Bytes: bytes of records that failed conversion"
    );
    describe_counter!(
        "sluice_dropped_records_total",
        "records a processor dropped on purpose (a jq `select` that yields nothing), by processor"
    );
    for (name, help) in OTHER_COUNTERS {
        describe_counter!(*name, *help);
    }
    for (name, help) in OTHER_GAUGES {
        describe_gauge!(*name, *help);
    }
}

/// Families set outside this module (the API server, reload, sources, plugins): their HELP text.
const OTHER_COUNTERS: &[(&str, &str)] = &[
    ("sluice_api_connections_refused_total", "connections refused past api.max_connections"),
    ("sluice_config_reloads_total", "config reloads, by result (applied or refused)"),
    ("sluice_auto_create_refused_total", "puts to unknown streams auto_create refused (over its stream limit)"),
    ("sluice_file_truncations_total", "tailed files that shrank (copytruncate): read again from the start"),
    ("sluice_data_read_from_kinesis_stream_records_total", "DataReadFromKinesisStream.Records"),
    ("sluice_data_read_from_kinesis_stream_bytes_total", "DataReadFromKinesisStream.Bytes"),
    ("sluice_throttled_get_records_total", "ThrottledGetRecords: GetRecords calls the stream throttled"),
    ("sluice_throttled_get_shard_iterator_total", "ThrottledGetShardIterator"),
    ("sluice_throttled_describe_stream_total", "ThrottledDescribeStream: shard listings the stream throttled"),
    (
        "sluice_unrouted_records_total",
        "records no destination's `when:` condition took (not delivered anywhere, by design)",
    ),
    ("sluice_plugin_short_circuited_records_total", "records failed without calling a plugin whose circuit is open"),
];

const OTHER_GAUGES: &[(&str, &str)] = &[
    ("sluice_api_connections", "connections open to the API"),
    ("sluice_config_reload_failed", "1 when the last reload was refused (the running config stays)"),
    ("sluice_files_tracked", "files the file source is tailing"),
    ("sluice_kinesis_millis_behind_latest", "KinesisMillisBehindLatest: how far the slowest shard read lags"),
    ("sluice_kinesis_shards_reading", "shards this daemon reads"),
    ("sluice_kinesis_leases_held", "shard leases this daemon holds"),
    ("sluice_plugin_circuit_open", "1 while a plugin's circuit breaker is open"),
    (
        "sluice_spill_bytes",
        "a fan-out destination's backlog: records read for the others that it reads back from disk as it catches up",
    ),
];

/// What a pipeline has, which decides the series it exports.
#[derive(Clone, Copy, Debug)]
pub struct MetricsShape<'a> {
    /// `s3` or `local`: the object store.
    pub store: &'a str,
    /// The sending destination's metric name (`http_endpoint`, `splunk`, ...), if any.
    pub sending: Option<&'a str>,
    pub conversion: bool,
    pub part: MetricsPart<'a>,
}

/// Which of a pipeline's series one set of handles exports. A pipeline with one destination has
/// one set with everything; a pipeline that fans out has one for its intake and processors and one
/// per destination, whose series carry a `destination` label (the route's name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsPart<'a> {
    Whole,
    Intake,
    Destination(&'a str),
}

/// Handles for one pipeline, looked up once so the hot path does no registry lookups.
#[derive(Clone)]
pub struct PipelineMetrics {
    pub incoming_records: Counter,
    pub incoming_bytes: Counter,
    pub incoming_put_requests: Counter,
    /// Lines longer than the source's `max_line_bytes`, cut (file, stdin).
    pub lines_truncated: Counter,
    pub throttled_records: Counter,
    pub delivered_records: Counter,
    pub delivered_bytes: Counter,
    pub delivered_objects: Counter,
    /// Failed object writes.
    pub delivery_failures: Counter,
    /// Failed sends to the sending destination (its requests, or a load).
    pub sending_failures: Counter,
    /// Records a jq `select` dropped.
    pub dropped_by_jq: Counter,
    /// Records no destination's `when:` took (fan-out).
    pub unrouted_records: Counter,
    pub expired_records: Counter,
    pub data_freshness_seconds: Gauge,
    pub wal_bytes: Gauge,
    pub partition_count: Gauge,
    pub partition_count_exceeded: Gauge,
    pub buffered_bytes: Gauge,
    pub buffer_limit_bytes: Gauge,
    /// A fan-out destination's backlog on disk while it is behind the others.
    pub spill_bytes: Gauge,
    pub succeed_conversion_records: Counter,
    pub succeed_conversion_bytes: Counter,
    pub failed_conversion_records: Counter,
    pub failed_conversion_bytes: Counter,
    pub put_record_latency: Histogram,
    pub put_record_batch_latency: Histogram,
    pub processing_duration: Histogram,
    pub jq_duration: Histogram,
    pub delivery_latency: Histogram,
    pub endpoint_records: Counter,
    pub endpoint_bytes: Counter,
    /// BackupToS3.*: records a sending destination's backup store received (`AllData` copies).
    pub backup_records: Counter,
    pub backup_bytes: Counter,
    stream: String,
    /// The `destination` label of a fan-out pipeline's destination set.
    destination: Option<String>,
}

/// The series of a pipeline's intake and processors: one per pipeline, never per destination.
const INTAKE_SERIES: &[&str] = &[
    "sluice_incoming_records_total",
    "sluice_incoming_bytes_total",
    "sluice_incoming_put_requests_total",
    "sluice_lines_truncated_total",
    "sluice_throttled_records_total",
    "sluice_dropped_records_total",
    "sluice_unrouted_records_total",
    "sluice_wal_bytes",
    "sluice_put_latency_seconds",
    "sluice_execute_processing_duration_seconds",
    "sluice_jq_processing_duration_seconds",
];

impl PipelineMetrics {
    /// The pipeline's handles; series for what it does not have are no-ops that never show.
    pub fn new(stream: &str, shape: MetricsShape<'_>) -> Self {
        let s = stream.to_string();
        let store = shape.store;
        let (intake, destination) = match shape.part {
            MetricsPart::Whole => (true, None),
            MetricsPart::Intake => (true, Some(None)),
            MetricsPart::Destination(name) => (false, Some(Some(name.to_string()))),
        };
        // Intake series (`in_`) belong to the intake set; the others to each destination's, labelled.
        let labels = |name: &str| -> Option<Vec<metrics::Label>> {
            let intake_series = INTAKE_SERIES.contains(&name);
            let mut labels = vec![metrics::Label::new("delivery_stream_name", s.clone())];
            match &destination {
                None => {}
                Some(_) if intake_series != intake => return None,
                Some(Some(d)) => labels.push(metrics::Label::new("destination", d.clone())),
                Some(None) => {}
            }
            Some(labels)
        };
        let count = |name: String| labels(&name).map_or_else(Counter::noop, |l| counter!(name, l));
        let measure = |name: String| labels(&name).map_or_else(Gauge::noop, |l| gauge!(name, l));
        let timing = |name: &'static str, extra: Option<(&'static str, &'static str)>| {
            labels(name).map_or_else(Histogram::noop, |mut l| {
                if let Some((k, v)) = extra {
                    l.push(metrics::Label::new(k, v));
                }
                histogram!(name, l)
            })
        };
        let converting = |name: &str| if shape.conversion { count(name.to_string()) } else { Counter::noop() };
        let sending = |suffix: &str| {
            shape.sending.map_or_else(Counter::noop, |d| count(format!("sluice_delivery_to_{d}_{suffix}")))
        };
        let backup = |name: &str| if shape.sending.is_some() { count(name.to_string()) } else { Counter::noop() };
        // DataFreshness is the destination's: the sending one's when there is one, else the store's.
        let freshness = match shape.sending {
            Some(d) => format!("sluice_delivery_to_{d}_data_freshness_seconds"),
            None => format!("sluice_delivery_to_{store}_data_freshness_seconds"),
        };
        Self {
            incoming_records: count("sluice_incoming_records_total".into()),
            incoming_bytes: count("sluice_incoming_bytes_total".into()),
            incoming_put_requests: count("sluice_incoming_put_requests_total".into()),
            lines_truncated: count("sluice_lines_truncated_total".into()),
            throttled_records: count("sluice_throttled_records_total".into()),
            delivered_records: count(format!("sluice_delivery_to_{store}_records_total")),
            delivered_bytes: count(format!("sluice_delivery_to_{store}_bytes_total")),
            delivered_objects: count(format!("sluice_delivery_to_{store}_object_count_total")),
            delivery_failures: count(format!("sluice_delivery_to_{store}_failures_total")),
            sending_failures: sending("failures_total"),
            dropped_by_jq: labels("sluice_dropped_records_total").map_or_else(Counter::noop, |mut l| {
                l.push(metrics::Label::new("processor", "jq"));
                counter!("sluice_dropped_records_total", l)
            }),
            unrouted_records: match shape.part {
                MetricsPart::Intake => count("sluice_unrouted_records_total".into()),
                _ => Counter::noop(),
            },
            expired_records: count("sluice_records_expired_total".into()),
            data_freshness_seconds: measure(freshness),
            wal_bytes: measure("sluice_wal_bytes".into()),
            partition_count: measure("sluice_partition_count".into()),
            partition_count_exceeded: measure("sluice_partition_count_exceeded".into()),
            buffered_bytes: measure("sluice_buffered_bytes".into()),
            buffer_limit_bytes: measure("sluice_buffer_limit_bytes".into()),
            spill_bytes: match shape.part {
                MetricsPart::Destination(_) => measure("sluice_spill_bytes".into()),
                _ => Gauge::noop(),
            },
            succeed_conversion_records: converting("sluice_succeed_conversion_records_total"),
            succeed_conversion_bytes: converting("sluice_succeed_conversion_bytes_total"),
            failed_conversion_records: converting("sluice_failed_conversion_records_total"),
            failed_conversion_bytes: converting("sluice_failed_conversion_bytes_total"),
            put_record_latency: timing("sluice_put_latency_seconds", Some(("operation", "PutRecord"))),
            put_record_batch_latency: timing("sluice_put_latency_seconds", Some(("operation", "PutRecordBatch"))),
            processing_duration: timing("sluice_execute_processing_duration_seconds", None),
            jq_duration: timing("sluice_jq_processing_duration_seconds", None),
            delivery_latency: timing("sluice_delivery_latency_seconds", None),
            endpoint_records: sending("records_total"),
            endpoint_bytes: sending("bytes_total"),
            backup_records: backup("sluice_backup_to_s3_records_total"),
            backup_bytes: backup("sluice_backup_to_s3_bytes_total"),
            destination: destination.flatten(),
            stream: s.clone(),
        }
    }

    /// Firehose's `*PerSecondLimit` metrics: the stream's quotas (absent when unlimited).
    pub fn set_quota_limits(&self, q: &crate::config::Quotas) {
        let s = self.stream.clone();
        for (name, value) in [
            ("sluice_records_per_second_limit", q.records_per_second),
            ("sluice_bytes_per_second_limit", q.bytes_per_second),
            ("sluice_put_requests_per_second_limit", q.requests_per_second),
        ] {
            if let Some(v) = value {
                gauge!(name, "delivery_stream_name" => s.clone()).set(f64::from(v.get()));
            }
        }
    }

    /// Error-output records of one type (looked up per failure; failures are not the hot path).
    pub fn error_records(&self, kind: crate::process::ErrorOutputType) -> Counter {
        match &self.destination {
            None => {
                counter!("sluice_error_output_records_total", "delivery_stream_name" => self.stream.clone(), "error_output_type" => kind.as_str())
            }
            Some(d) => {
                counter!("sluice_error_output_records_total", "delivery_stream_name" => self.stream.clone(), "destination" => d.clone(), "error_output_type" => kind.as_str())
            }
        }
    }
}

/// Values by (metric name, stream) read back from a rendered page (`sluice top` and the console's
/// history), summed over other labels; histogram buckets and quantiles are left out.
pub type Scrape = std::collections::BTreeMap<(String, String), f64>;

/// `name{labels} value` lines of a Prometheus text page, by metric and stream.
pub fn scrape(text: &str) -> Scrape {
    let mut out = Scrape::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let Some((key, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        let (name, labels) = key.split_once('{').unwrap_or((key, ""));
        let Some(stream) = labels.split("delivery_stream_name=\"").nth(1).and_then(|r| r.split('"').next()) else {
            continue;
        };
        if labels.contains("quantile=") || name.ends_with("_bucket") {
            continue;
        }
        *out.entry((name.to_string(), stream.to_string())).or_default() += value;
    }
    out
}

/// The sum of `names` for `stream` in a scrape.
pub fn sum(m: &Scrape, stream: &str, names: &[&str]) -> f64 {
    names.iter().map(|n| m.get(&(n.to_string(), stream.to_string())).copied().unwrap_or(0.0)).sum()
}
