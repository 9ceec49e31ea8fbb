//! Delivery to a sending destination (the HTTP endpoint): each request retried with the shared
//! [`RetryPolicy`] until delivered or past the retry duration; what could not be delivered goes
//! to the backup store's error prefix as Firehose error records; with `AllData` the batch is
//! also written to the backup store. The batch's WAL space is freed only after all of that.

use std::sync::Arc;

use super::delivery::Delivery;
use super::now_ms;
use crate::buffer::Batch;
use crate::format::error_record;
use crate::process::{ErrorOutputType, Failed};
use crate::record::Record;
use crate::sink::http_endpoint::{self, HttpEndpoint, SendError};
use crate::sink::object_key::{fnv1a, splitmix64};
use crate::sink::retry::{Retried, RetryPolicy};

impl Delivery {
    pub(super) async fn deliver_to_endpoint(&self, batch: &Batch, endpoint: &HttpEndpoint, backup_all: bool) {
        let policy = RetryPolicy {
            initial: self.spec.delivery.retry_initial,
            max: self.spec.delivery.retry_max,
            jitter: 0.15,
            duration: self.endpoint_retry_duration(),
        };
        let mut failed: Vec<Failed> = Vec::new();
        for (part, range) in http_endpoint::split(&batch.records).into_iter().enumerate() {
            let records = &batch.records[range];
            let request_id = self.request_id(batch, part);
            let bytes: usize = records.iter().map(|r| r.data.len()).sum();
            let outcome = policy
                .run(
                    |_| endpoint.send(&request_id, records),
                    |e: &SendError| e.permanent,
                    |e, attempts| {
                        self.metrics.delivery_failures.increment(1);
                        self.status.delivery_failed(&format!("{}: {}", e.code, e.message));
                        tracing::warn!(pipeline = %self.spec.name, endpoint = %endpoint.name, request_id, attempts, code = e.code, error = %e.message, "HTTP endpoint delivery failed");
                    },
                )
                .await;
            match outcome {
                Retried::Succeeded { .. } => {
                    self.status.delivery_succeeded();
                    self.metrics.endpoint_records.increment(records.len() as u64);
                    self.metrics.endpoint_bytes.increment(bytes as u64);
                    let age_ms = (now_ms() - batch.oldest_arrival_ms).max(0);
                    self.metrics.delivery_latency.record(age_ms as f64 / 1000.0);
                }
                Retried::GaveUp { error, attempts } => {
                    tracing::error!(pipeline = %self.spec.name, endpoint = %endpoint.name, request_id, attempts, records = records.len(), "giving up on the HTTP endpoint for these records; they go to the error prefix as http-endpoint-failed");
                    failed.extend(records.iter().map(|r| Failed {
                        attempts,
                        ..Failed::new(r.clone(), ErrorOutputType::HttpEndpointFailed, error.code, error.message.clone())
                    }));
                }
            }
        }
        if !failed.is_empty() {
            let kind = ErrorOutputType::HttpEndpointFailed;
            self.metrics.error_records(kind).increment(failed.len() as u64);
            let ending = now_ms();
            let records: Vec<Record> =
                failed.iter().map(|f| Record { data: error_record::render(f, ending), ..f.record.clone() }).collect();
            let key = self.object_key(batch, Some(kind), "endpoint-failed", &self.error_format.extension);
            self.write_records(&key, batch, false, Arc::new(records), self.error_format.clone()).await;
        }
        if backup_all {
            let key = self.object_key(batch, None, "data", &self.format.extension);
            self.write_records(&key, batch, false, Arc::new(batch.records.clone()), self.format.clone()).await;
        }
    }

    fn endpoint_retry_duration(&self) -> std::time::Duration {
        match self.spec.endpoint.as_deref() {
            Some(crate::config::EndpointSpec::Http(h)) => h.retry_duration,
            None => std::time::Duration::ZERO,
        }
    }

    /// The request id of part `part` of a batch: derived from what identifies the batch (its
    /// pipeline, partition and first sequence), so a retry, and a replay after a crash, sends the
    /// same id.
    fn request_id(&self, batch: &Batch, part: usize) -> String {
        let stream = fnv1a(&[self.spec.name.as_bytes(), b"http-endpoint", batch.partition.as_bytes()]);
        let seq = splitmix64(batch.first_seq() ^ (part as u64).rotate_left(48));
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&stream.to_be_bytes());
        bytes[8..].copy_from_slice(&seq.to_be_bytes());
        uuid::Uuid::new_v8(bytes).to_string()
    }
}
