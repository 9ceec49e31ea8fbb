//! Prometheus metrics, named after Firehose's CloudWatch metrics (spec §10) and labelled with
//! `delivery_stream_name` as Firehose's dimension is. Object-store destinations report under
//! `delivery_to_s3_*` whether the store is S3 or a local directory.

use metrics::{counter, describe_counter, describe_gauge, gauge, Counter, Gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Installs the global recorder once and returns the handle `/metrics` renders.
pub fn install() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(
        "sluice_incoming_records_total",
        "IncomingRecords: records acknowledged to PutRecord/PutRecordBatch"
    );
    describe_counter!(
        "sluice_incoming_bytes_total",
        "IncomingBytes: bytes of acknowledged records"
    );
    describe_counter!(
        "sluice_incoming_put_requests_total",
        "IncomingPutRequests: PutRecord and PutRecordBatch requests accepted"
    );
    describe_counter!(
        "sluice_throttled_records_total",
        "ThrottledRecords: records refused with ServiceUnavailableException (storage full)"
    );
    describe_counter!(
        "sluice_delivery_to_s3_records_total",
        "DeliveryToS3.Records: records written to the object store"
    );
    describe_counter!(
        "sluice_delivery_to_s3_bytes_total",
        "DeliveryToS3.Bytes: record bytes (before compression) written to the object store"
    );
    describe_counter!(
        "sluice_delivery_to_s3_object_count_total",
        "DeliveryToS3.ObjectCount: objects written"
    );
    describe_counter!(
        "sluice_delivery_to_s3_failures_total",
        "Failed object writes (each is retried)"
    );
    describe_counter!(
        "sluice_records_expired_total",
        "Undelivered records dropped after the retention period"
    );
    describe_gauge!(
        "sluice_delivery_to_s3_data_freshness_seconds",
        "DeliveryToS3.DataFreshness: age of the oldest undelivered record"
    );
    describe_gauge!("sluice_wal_bytes", "Bytes held in the pipeline's write-ahead log");
}

/// Handles for one pipeline, looked up once so the hot path does no registry lookups.
#[derive(Clone)]
pub struct PipelineMetrics {
    pub incoming_records: Counter,
    pub incoming_bytes: Counter,
    pub incoming_put_requests: Counter,
    pub throttled_records: Counter,
    pub delivered_records: Counter,
    pub delivered_bytes: Counter,
    pub delivered_objects: Counter,
    pub delivery_failures: Counter,
    pub expired_records: Counter,
    pub data_freshness_seconds: Gauge,
    pub wal_bytes: Gauge,
}

impl PipelineMetrics {
    pub fn new(stream: &str) -> Self {
        let s = stream.to_string();
        Self {
            incoming_records: counter!("sluice_incoming_records_total", "delivery_stream_name" => s.clone()),
            incoming_bytes: counter!("sluice_incoming_bytes_total", "delivery_stream_name" => s.clone()),
            incoming_put_requests: counter!("sluice_incoming_put_requests_total", "delivery_stream_name" => s.clone()),
            throttled_records: counter!("sluice_throttled_records_total", "delivery_stream_name" => s.clone()),
            delivered_records: counter!("sluice_delivery_to_s3_records_total", "delivery_stream_name" => s.clone()),
            delivered_bytes: counter!("sluice_delivery_to_s3_bytes_total", "delivery_stream_name" => s.clone()),
            delivered_objects: counter!("sluice_delivery_to_s3_object_count_total", "delivery_stream_name" => s.clone()),
            delivery_failures: counter!("sluice_delivery_to_s3_failures_total", "delivery_stream_name" => s.clone()),
            expired_records: counter!("sluice_records_expired_total", "delivery_stream_name" => s.clone()),
            data_freshness_seconds: gauge!("sluice_delivery_to_s3_data_freshness_seconds", "delivery_stream_name" => s.clone()),
            wal_bytes: gauge!("sluice_wal_bytes", "delivery_stream_name" => s),
        }
    }
}
