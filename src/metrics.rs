//! Prometheus metrics, named after Firehose's CloudWatch metrics (spec §10) and labelled with
//! `delivery_stream_name` as Firehose's dimension is. Object-store destinations report under
//! `delivery_to_s3_*` whether the store is S3 or a local directory.

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
    }
    describe_counter!("sluice_api_responses_total", "Firehose API responses by operation and HTTP status");
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
    describe_counter!(
        "sluice_delivery_to_s3_records_total",
        "DeliveryToS3.Records: records written to the object store"
    );
    describe_counter!(
        "sluice_delivery_to_s3_bytes_total",
        "DeliveryToS3.Bytes: record bytes (before compression) written to the object store"
    );
    describe_counter!("sluice_delivery_to_s3_object_count_total", "DeliveryToS3.ObjectCount: objects written");
    describe_counter!("sluice_delivery_to_s3_failures_total", "Failed object writes (each is retried)");
    describe_counter!("sluice_records_expired_total", "Undelivered records dropped after the retention period");
    describe_gauge!(
        "sluice_delivery_to_s3_data_freshness_seconds",
        "DeliveryToS3.DataFreshness: age of the oldest undelivered record"
    );
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
    pub delivery_failures: Counter,
    pub expired_records: Counter,
    pub data_freshness_seconds: Gauge,
    pub wal_bytes: Gauge,
    pub partition_count: Gauge,
    pub partition_count_exceeded: Gauge,
    pub buffered_bytes: Gauge,
    pub buffer_limit_bytes: Gauge,
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
}

impl PipelineMetrics {
    pub fn new(stream: &str) -> Self {
        let s = stream.to_string();
        Self {
            incoming_records: counter!("sluice_incoming_records_total", "delivery_stream_name" => s.clone()),
            incoming_bytes: counter!("sluice_incoming_bytes_total", "delivery_stream_name" => s.clone()),
            incoming_put_requests: counter!("sluice_incoming_put_requests_total", "delivery_stream_name" => s.clone()),
            lines_truncated: counter!("sluice_lines_truncated_total", "delivery_stream_name" => s.clone()),
            throttled_records: counter!("sluice_throttled_records_total", "delivery_stream_name" => s.clone()),
            delivered_records: counter!("sluice_delivery_to_s3_records_total", "delivery_stream_name" => s.clone()),
            delivered_bytes: counter!("sluice_delivery_to_s3_bytes_total", "delivery_stream_name" => s.clone()),
            delivered_objects: counter!("sluice_delivery_to_s3_object_count_total", "delivery_stream_name" => s.clone()),
            delivery_failures: counter!("sluice_delivery_to_s3_failures_total", "delivery_stream_name" => s.clone()),
            expired_records: counter!("sluice_records_expired_total", "delivery_stream_name" => s.clone()),
            data_freshness_seconds: gauge!("sluice_delivery_to_s3_data_freshness_seconds", "delivery_stream_name" => s.clone()),
            wal_bytes: gauge!("sluice_wal_bytes", "delivery_stream_name" => s.clone()),
            partition_count: gauge!("sluice_partition_count", "delivery_stream_name" => s.clone()),
            partition_count_exceeded: gauge!("sluice_partition_count_exceeded", "delivery_stream_name" => s.clone()),
            buffered_bytes: gauge!("sluice_buffered_bytes", "delivery_stream_name" => s.clone()),
            buffer_limit_bytes: gauge!("sluice_buffer_limit_bytes", "delivery_stream_name" => s.clone()),
            succeed_conversion_records: counter!("sluice_succeed_conversion_records_total", "delivery_stream_name" => s.clone()),
            succeed_conversion_bytes: counter!("sluice_succeed_conversion_bytes_total", "delivery_stream_name" => s.clone()),
            failed_conversion_records: counter!("sluice_failed_conversion_records_total", "delivery_stream_name" => s.clone()),
            failed_conversion_bytes: counter!("sluice_failed_conversion_bytes_total", "delivery_stream_name" => s.clone()),
            put_record_latency: histogram!("sluice_put_latency_seconds", "delivery_stream_name" => s.clone(), "operation" => "PutRecord"),
            put_record_batch_latency: histogram!("sluice_put_latency_seconds", "delivery_stream_name" => s.clone(), "operation" => "PutRecordBatch"),
            processing_duration: histogram!("sluice_execute_processing_duration_seconds", "delivery_stream_name" => s.clone()),
            jq_duration: histogram!("sluice_jq_processing_duration_seconds", "delivery_stream_name" => s.clone()),
            delivery_latency: histogram!("sluice_delivery_latency_seconds", "delivery_stream_name" => s.clone()),
            endpoint_records: counter!("sluice_delivery_to_http_endpoint_records_total", "delivery_stream_name" => s.clone()),
            endpoint_bytes: counter!("sluice_delivery_to_http_endpoint_bytes_total", "delivery_stream_name" => s.clone()),
            backup_records: counter!("sluice_backup_to_s3_records_total", "delivery_stream_name" => s.clone()),
            backup_bytes: counter!("sluice_backup_to_s3_bytes_total", "delivery_stream_name" => s.clone()),
            stream: s,
        }
    }

    /// Counts records a sending destination took under its own Firehose names
    /// (`DeliveryToAmazonOpenSearchService.*`, `DeliveryToSplunk.*`) rather than the HTTP endpoint's.
    pub fn for_destination(mut self, destination: &str) -> Self {
        let s = self.stream.clone();
        self.endpoint_records =
            counter!(format!("sluice_delivery_to_{destination}_records_total"), "delivery_stream_name" => s.clone());
        self.endpoint_bytes =
            counter!(format!("sluice_delivery_to_{destination}_bytes_total"), "delivery_stream_name" => s.clone());
        // DataFreshness is the destination's, not the backup store's.
        self.data_freshness_seconds =
            gauge!(format!("sluice_delivery_to_{destination}_data_freshness_seconds"), "delivery_stream_name" => s);
        self
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
        counter!("sluice_error_output_records_total", "delivery_stream_name" => self.stream.clone(), "error_output_type" => kind.as_str())
    }
}
