//! Delivery to a sending [`Destination`] (HTTP endpoint, OpenSearch, Splunk, PostgreSQL): each
//! request retried with the shared [`RetryPolicy`] until delivered or past the retry duration, and
//! only the records that failed are sent again; what could not be delivered goes to the backup
//! store's error prefix as Firehose error records; with `AllData` the batch is also written to the
//! backup store. The batch's WAL space is freed only after all of that.

use std::sync::{Arc, Mutex};

use super::delivery::Delivery;
use super::now_ms;
use crate::buffer::Batch;
use crate::format::error_record;
use crate::process::Failed;
use crate::record::Record;
use crate::sink::destination::{Destination, Outcome, SendError};
use crate::sink::retry::{Retried, RetryPolicy};

/// A request's records still to deliver, and those given up on, across attempts.
struct Pending {
    indexes: Vec<usize>,
    rejected: Vec<(usize, SendError, u32)>,
}

impl Delivery {
    pub(super) async fn send_batch(&self, batch: &Batch, endpoint: &dyn Destination, backup_all: bool) {
        let policy = RetryPolicy {
            initial: self.spec.delivery.retry_initial,
            max: self.spec.delivery.retry_max,
            jitter: 0.15,
            duration: self.sending_retry_duration(),
        };
        let kind = endpoint.error_output_type();
        let mut failed: Vec<Failed> = Vec::new();
        let request_id_of = self.request_ids(batch);
        for (part, range) in endpoint.requests(&batch.records).into_iter().enumerate() {
            let records = &batch.records[range];
            let request_id = request_id_of(part);
            let pending = Mutex::new(Pending { indexes: (0..records.len()).collect(), rejected: Vec::new() });
            let outcome = policy
                .run(
                    |attempt| self.attempt(endpoint, &request_id, records, batch.keys.as_deref(), &pending, attempt),
                    |e: &SendError| e.permanent,
                    |e, attempts| {
                        self.metrics.sending_failures.increment(1);
                        self.status.delivery_failed(&format!("{}: {}", e.code, e.message));
                        tracing::warn!(pipeline = %self.spec.name, destination = %endpoint.name(), request_id, attempts, code = e.code, error = %e.message, "delivery failed");
                    },
                )
                .await;
            let pending = pending.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut given_up: Vec<(usize, SendError, u32)> = pending.rejected;
            match outcome {
                Retried::Succeeded { .. } => self.status.delivery_succeeded(),
                Retried::GaveUp { error, attempts } => {
                    tracing::error!(pipeline = %self.spec.name, destination = %endpoint.name(), request_id, attempts, records = pending.indexes.len(), "giving up on these records; they go to the error prefix");
                    given_up.extend(pending.indexes.into_iter().map(|i| (i, error.clone(), attempts)));
                }
            }
            failed.extend(given_up.into_iter().map(|(i, e, attempts)| Failed {
                attempts,
                detail: if e.detail.is_empty() { endpoint.record_detail(&request_id, records, i) } else { e.detail },
                ..Failed::new(records[i].clone(), kind, e.code, e.message)
            }));
        }
        if !failed.is_empty() {
            self.metrics.error_records(kind).increment(failed.len() as u64);
            let ending = now_ms();
            let what = format!(
                "{} records were given up to the error prefix ({}: {})",
                failed.len(),
                kind.as_str(),
                failed[0].code
            );
            self.status.gave_up(ending, what);
            for f in &failed {
                self.status.note_error(ending, kind.as_str(), &f.code, &f.message, &f.record.data);
            }
            let records: Vec<Record> =
                failed.iter().map(|f| Record { data: error_record::render(f, ending), ..f.record.clone() }).collect();
            let key = self.object_key(batch, Some(kind), "endpoint-failed", &self.error_format.extension);
            self.write_records(&key, batch, false, Arc::new(records), self.error_format.clone()).await;
        }
        if backup_all {
            let key = self.object_key(batch, None, "data", &self.format.extension);
            self.write_records(&key, batch, false, Arc::new(batch.records.clone()), self.format.clone()).await;
            self.metrics.backup_records.increment(batch.records.len() as u64);
            self.metrics.backup_bytes.increment(batch.bytes as u64);
        }
    }

    /// One attempt: sends the records still pending, and keeps the ones that must go again.
    async fn attempt(
        &self,
        endpoint: &dyn Destination,
        request_id: &str,
        records: &[Record],
        keys: Option<&crate::process::PartitionKeys>,
        pending: &Mutex<Pending>,
        attempt: u32,
    ) -> Result<(), SendError> {
        let indexes = pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).indexes.clone();
        let outcome = endpoint.send_keyed(request_id, records, &indexes, keys).await;
        let mut p = pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (delivered, result) = match outcome {
            Outcome::Delivered => (std::mem::take(&mut p.indexes), Ok(())),
            Outcome::Failed(e) => (Vec::new(), Err(e)),
            Outcome::Partial { retry, rejected, cause } => {
                let retry: Vec<usize> = retry.into_iter().filter_map(|k| indexes.get(k).copied()).collect();
                p.rejected.extend(rejected.into_iter().filter_map(|(k, e)| indexes.get(k).map(|&i| (i, e, attempt))));
                let gone: std::collections::HashSet<usize> =
                    retry.iter().copied().chain(p.rejected.iter().map(|r| r.0)).collect();
                let delivered = indexes.iter().copied().filter(|i| !gone.contains(i)).collect();
                p.indexes = retry;
                (delivered, if p.indexes.is_empty() { Ok(()) } else { Err(cause) })
            }
        };
        drop(p);
        if !delivered.is_empty() {
            let bytes: usize = delivered.iter().map(|&i| records[i].data.len()).sum();
            self.metrics.endpoint_records.increment(delivered.len() as u64);
            self.metrics.endpoint_bytes.increment(bytes as u64);
            if let Some(oldest) = delivered.iter().map(|&i| records[i].arrival_ms).min() {
                self.metrics.delivery_latency.record((now_ms() - oldest).max(0) as f64 / 1000.0);
            }
        }
        result
    }

    fn sending_retry_duration(&self) -> std::time::Duration {
        self.spec.sending.as_deref().map_or(std::time::Duration::ZERO, |e| e.retry_duration())
    }

    /// The request ids of a batch's parts, by part number (`buffer::names`, computed once here):
    /// a retry, and a replay after a crash, sends the same id; another daemon never does.
    pub(super) fn request_ids(&self, batch: &Batch) -> impl Fn(usize) -> String {
        let names = self.names.requests(&self.spec.name, batch);
        move |part| names.request_id(part)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{ObjectFormat, RawEncoder};
    use async_trait::async_trait;
    use bytes::Bytes;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Takes `ok*` records, rejects `bad*` for good, and asks for `slow*` to be sent again once.
    struct Picky {
        calls: AtomicU32,
        seen: Mutex<Vec<Vec<String>>>,
    }

    #[async_trait]
    impl Destination for Picky {
        fn name(&self) -> &str {
            "picky"
        }
        fn error_output_type(&self) -> crate::process::ErrorOutputType {
            crate::process::ErrorOutputType::DeliveryFailed("picky-failed")
        }
        fn requests(&self, records: &[Record]) -> Vec<std::ops::Range<usize>> {
            std::iter::once(0..records.len()).collect()
        }
        async fn send(&self, _id: &str, records: &[Record], indexes: &[usize]) -> Outcome {
            let first = self.calls.fetch_add(1, Ordering::SeqCst) == 0;
            let names: Vec<String> =
                indexes.iter().map(|&i| String::from_utf8_lossy(&records[i].data).into_owned()).collect();
            self.seen.lock().unwrap().push(names.clone());
            let retry =
                names.iter().enumerate().filter(|(_, n)| first && n.starts_with("slow")).map(|(i, _)| i).collect();
            let rejected = names
                .iter()
                .enumerate()
                .filter(|(_, n)| n.starts_with("bad"))
                .map(|(i, _)| (i, SendError::permanent("Test.Rejected", "no thanks")))
                .collect();
            Outcome::Partial { retry, rejected, cause: SendError::retry("Test.Busy", "later") }
        }
    }

    #[tokio::test]
    async fn only_failed_records_are_retried_and_rejected_ones_become_error_records() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "pipelines:\n  - name: p\n    delivery: {{ retry_initial_ms: 1, retry_max_ms: 2 }}\n    destination:\n      http_endpoint:\n        url: http://127.0.0.1:9/\n        retry_duration_seconds: 60\n        backup: {{ local: {{ path: {}, error_output_prefix: \"e/!{{firehose:error-output-type}}/\" }} }}\n",
            dir.path().display()
        );
        let spec = crate::config::load_str(&yaml, "t.yaml", Default::default()).unwrap().pipelines.remove(0);
        let format = |delimit| {
            Arc::new(ObjectFormat {
                encoder: RawEncoder { append_delimiter: delimit },
                compression: Default::default(),
                compression_level: None,
                extension: String::new(),
            })
        };
        let delivery = Delivery {
            sink: crate::sink::ObjectSink::new(&spec.store.store, None).unwrap(),
            spec,
            inference: None,
            format: format(false),
            error_format: format(true),
            metrics: crate::metrics::PipelineMetrics::new(
                "p",
                crate::metrics::MetricsShape {
                    store: "local",
                    sending: Some("picky"),
                    conversion: false,
                    part: crate::metrics::MetricsPart::Whole,
                },
            ),
            status: Default::default(),
            sending: None,
            names: crate::buffer::names::NameScope::fixed(7),
            loader: None,
        };
        let mut batch = Batch::new("".into(), None, std::time::Instant::now());
        for (seq, name) in ["ok1", "bad1", "slow1", "ok2"].iter().enumerate() {
            batch.push(Record::new(seq as u64, 1, Bytes::from(*name)), 3);
        }
        let picky = Picky { calls: AtomicU32::new(0), seen: Mutex::new(Vec::new()) };
        delivery.send_batch(&batch, &picky, false).await;
        let seen = picky.seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            vec![vec!["ok1", "bad1", "slow1", "ok2"], vec!["slow1"]],
            "only the record asked for goes again"
        );
        let errors: Vec<String> =
            walk(dir.path()).iter().flat_map(|b| b.lines().map(str::to_string).collect::<Vec<_>>()).collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        let e: serde_json::Value = serde_json::from_str(&errors[0]).unwrap();
        assert_eq!(e["errorCode"], "Test.Rejected");
        assert_eq!(e["rawData"], "YmFkMQ==", "bad1");
    }

    fn walk(dir: &std::path::Path) -> Vec<String> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(std::fs::read_to_string(path).unwrap());
            }
        }
        out
    }
}
