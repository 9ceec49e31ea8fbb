//! Object delivery: one batch → one object (two when some records of a converted batch fail),
//! written with retries until delivered or past retention.
//!
//! This is the object-store-shaped delivery the pipeline has today; the HTTP, search and HEC
//! destinations will sit beside it behind one `Destination` trait (issue #11).

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use super::{now_ms, Done, PipelineStatus};
use crate::buffer::names::NameScope;
use crate::buffer::parts::EncodedPart;
use crate::buffer::Batch;
use crate::config::PipelineSpec;
use crate::format::convert::infer::SchemaInference;
use crate::format::convert::{ConversionFailure, ConversionSpec, FailKind, SchemaSpec};
use crate::format::object_key::{object_name, KeyTemplate, PartitionSource, RenderContext, DEFAULT_TIME_PATH};
use crate::format::{error_record, ObjectFormat};
use crate::metrics::PipelineMetrics;
use crate::process::{ErrorOutputType, Failed};
use crate::record::{Record, SeqRanges};
use crate::sink::ObjectSink;

/// Everything needed to turn a batch into an object, shared by the pipeline's upload tasks.
pub(super) struct Delivery {
    pub(super) spec: PipelineSpec,
    /// The learned schema of a `schema: infer` pipeline, shared by its upload tasks.
    pub(super) inference: Option<Arc<std::sync::Mutex<SchemaInference>>>,
    pub(super) sink: ObjectSink,
    pub(super) format: Arc<ObjectFormat>,
    pub(super) error_format: Arc<ObjectFormat>,
    pub(super) metrics: PipelineMetrics,
    /// Shared with `/ready`: failures in a row.
    pub(super) status: Arc<PipelineStatus>,
    /// A sending destination; `sink` is then its backup store.
    pub(super) sending: Option<Arc<dyn crate::sink::destination::Destination>>,
    /// What makes every name derived from a batch unique to this state directory and stable
    /// within it (`buffer::names`): object keys, request ids, document ids, ledger ids.
    pub(super) names: NameScope,
    /// A warehouse (Redshift): each data batch, once staged in `sink`, is loaded (`staged.rs`).
    pub(super) loader: Option<Arc<dyn crate::sink::loader::Loader>>,
}

impl Delivery {
    /// `<prefix><stream>-<version>-<time>-<uuid><ext>`, all derived from the batch's names
    /// (`buffer::names`) and oldest arrival, so a re-delivery overwrites the same key and another
    /// daemon's batch never does.
    /// Error batches use the error prefix with their `!{firehose:error-output-type}`; `kind`
    /// separates the key spaces of data, error batches and a converted batch's failed records.
    pub(super) fn object_key(
        &self,
        batch: &Batch,
        error_type: Option<ErrorOutputType>,
        kind: &str,
        ext: &str,
    ) -> String {
        let names = self.names.object(&self.spec.name, kind, batch);
        let keys = batch.keys.clone();
        let lookup = move |source: &PartitionSource, key: &str| {
            let keys = keys.as_deref()?;
            let map = match source {
                PartitionSource::Query => &keys.query,
                PartitionSource::Lambda => &keys.lambda,
            };
            map.get(key).cloned()
        };
        let ctx = RenderContext {
            oldest_arrival_ms: batch.oldest_arrival_ms,
            error_output_type: error_type.map(ErrorOutputType::as_str),
            partition_key: &lookup,
            seed: names.random_seed(),
        };
        let d = &self.spec.store;
        let template = if error_type.is_some() { &d.error_prefix } else { &d.prefix };
        let prefix = template.render(&ctx).unwrap_or_else(|e| {
            // Partition values were checked before batching and validation renders every prefix
            // once, so this is a safety net: deliver under the default time path, never drop.
            tracing::warn!(pipeline = %self.spec.name, error = %e, "prefix could not be evaluated; using the default time path");
            KeyTemplate::parse(DEFAULT_TIME_PATH).map(|t| t.render(&ctx).unwrap_or_default()).unwrap_or_default()
        });
        let name = object_name(&self.spec.name, self.spec.version, batch.oldest_arrival_ms, names.object_uuid(), ext);
        format!("{prefix}{name}")
    }

    /// Delivers a batch: converted to Parquet/ORC when the destination asks for it, otherwise
    /// encoded as records. Returns once everything in it is written (or expired).
    pub(super) async fn deliver(&self, mut batch: Batch, error_type: Option<ErrorOutputType>) -> Done {
        if let (Some(endpoint), None) = (&self.sending, error_type) {
            let backup_all = self.spec.sending.as_deref().is_some_and(|e| e.backup_all());
            self.send_batch(&batch, endpoint.as_ref(), backup_all).await;
            return Done { seqs: batch.seqs, bytes: batch.bytes, partition: Some(batch.partition), branch: 0 };
        }
        if let (Some(loader), None) = (&self.loader, error_type) {
            self.deliver_staged(&batch, loader.as_ref()).await;
            return Done { seqs: batch.seqs, bytes: batch.bytes, partition: Some(batch.partition), branch: 0 };
        }
        match (&self.spec.store.format_conversion, error_type) {
            (Some(conversion), None) => self.deliver_converted(&batch, conversion.clone()).await,
            _ => {
                let kind = if error_type.is_some() { "errors" } else { "data" };
                let format = if error_type.is_some() { &self.error_format } else { &self.format };
                let key = self.object_key(&batch, error_type, kind, &format.extension);
                // Named first. Then the records move into the upload rather than being copied (a
                // copy per upload was 5 MiB of the heap's peak under issue #29's load); the batch
                // keeps its sizes and positions.
                let count = batch.len() as u64;
                let records = Arc::new(std::mem::take(&mut batch.records));
                if batch.parts.is_empty() {
                    self.write_records(&key, &batch, error_type.is_none(), records, format.clone()).await;
                } else {
                    let parts = std::mem::take(&mut batch.parts);
                    let Some(parts) = self.finish_parts(parts, records, batch.pending_bytes()).await else {
                        return self.undeliverable(batch);
                    };
                    self.retry_object(&key, &batch, true, count, || self.sink.write_parts(&key, parts.clone())).await;
                }
            }
        }
        Done {
            seqs: batch.seqs,
            bytes: batch.bytes,
            partition: error_type.is_none().then_some(batch.partition),
            branch: 0,
        }
    }

    /// A batch encoded in parts (`buffer::parts`): encodes its last records (`tail_bytes` before
    /// compression, as the batch counted them) as the final part and waits for every part. `None`
    /// if a part could not be encoded, which only a bug makes happen (encoding into memory has no
    /// I/O to fail).
    async fn finish_parts(
        &self,
        mut parts: Vec<EncodedPart>,
        tail: Arc<Vec<Record>>,
        tail_bytes: usize,
    ) -> Option<Vec<bytes::Bytes>> {
        if !tail.is_empty() {
            let format = self.format.clone();
            parts.push(tokio::task::spawn_blocking(move || {
                format.encode_part(&tail, tail_bytes).map(bytes::Bytes::from).map_err(|e| e.to_string())
            }));
        }
        let mut encoded = Vec::with_capacity(parts.len());
        for part in parts {
            match part.await {
                Ok(Ok(bytes)) => encoded.push(bytes),
                Ok(Err(e)) => return self.encode_failed(&e),
                Err(e) => return self.encode_failed(&e.to_string()),
            }
        }
        Some(encoded)
    }

    fn encode_failed<T>(&self, error: &str) -> Option<T> {
        tracing::error!(pipeline = %self.spec.name, error, "a buffered part could not be encoded; its records stay in the WAL and are delivered after a restart");
        self.status.delivery_failed(&format!("encoding a buffered part failed: {error}"));
        None
    }

    /// A batch that cannot be delivered by this process (its encoded parts are lost to a bug):
    /// reported done to free its memory, but with no sequences, so the WAL, the file offset or
    /// the stream checkpoint keeps its records for the next start.
    fn undeliverable(&self, batch: Batch) -> Done {
        Done { seqs: SeqRanges::default(), bytes: batch.bytes, partition: Some(batch.partition), branch: 0 }
    }

    /// Format conversion (spec §5): the rows that convert become one Parquet/ORC object, and each
    /// record that does not goes to the error prefix as `format-conversion-failed`, in an object
    /// keyed from the same batch so a re-delivery after a crash overwrites both.
    async fn deliver_converted(&self, batch: &Batch, conversion: Arc<ConversionSpec>) {
        let records = Arc::new(batch.records.clone());
        let (file, failures) = {
            let (records, inference) = (records.clone(), self.inference.clone());
            tokio::task::spawn_blocking(move || convert_batch(&conversion, inference.as_deref(), &records)).await
        }
        .unwrap_or_else(|e| (None, all_failed(records.len(), &e.to_string())));
        let converted_count = (records.len() - failures.len()) as u64;
        let failed_bytes: usize = failures.iter().map(|(i, _)| records[*i].data.len()).sum();
        self.metrics.succeed_conversion_records.increment(converted_count);
        self.metrics.succeed_conversion_bytes.increment((batch.bytes.saturating_sub(failed_bytes)) as u64);
        self.metrics.failed_conversion_records.increment(failures.len() as u64);
        self.metrics.failed_conversion_bytes.increment(failed_bytes as u64);
        if let Some(file) = file {
            let key = self.object_key(batch, None, "data", &self.spec.store.file_extension);
            self.write_retrying(&key, batch, true, converted_count, || {
                let file = file.clone();
                move |out: &mut (dyn std::io::Write + Send)| out.write_all(&file)
            })
            .await;
        }
        if failures.is_empty() {
            return;
        }
        let kind = ErrorOutputType::FormatConversionFailed;
        self.metrics.error_records(kind).increment(failures.len() as u64);
        let now = now_ms();
        let error_records: Vec<Record> = failures
            .into_iter()
            .map(|(i, f)| {
                let record = records[i].clone();
                let failed = Failed::new(record.clone(), kind, f.kind.code(), f.message);
                self.status.note_error(now, kind.as_str(), &failed.code, &failed.message, &record.data);
                Record { data: error_record::render(&failed, now), ..record }
            })
            .collect();
        let key = self.object_key(batch, Some(kind), "conversion-errors", &self.error_format.extension);
        self.write_records(&key, batch, false, Arc::new(error_records), self.error_format.clone()).await;
    }

    /// Writes `records` encoded as `format` to `key`, with [`Self::write_retrying`].
    pub(super) async fn write_records(
        &self,
        key: &str,
        batch: &Batch,
        is_data: bool,
        records: Arc<Vec<Record>>,
        format: Arc<ObjectFormat>,
    ) -> bool {
        let entry = format.entry_name(key);
        self.write_retrying(key, batch, is_data, records.len() as u64, || {
            let (records, format, entry) = (records.clone(), format.clone(), entry.clone());
            move |out: &mut (dyn std::io::Write + Send)| format.write_object(&records, &entry, out)
        })
        .await
    }

    /// Writes one object with [`Self::retry_object`]; `encoder` makes a fresh encoding closure for
    /// each attempt.
    pub(super) async fn write_retrying<E, F>(
        &self,
        key: &str,
        batch: &Batch,
        is_data: bool,
        count: u64,
        encoder: E,
    ) -> bool
    where
        E: Fn() -> F,
        F: FnOnce(&mut (dyn std::io::Write + Send)) -> std::io::Result<()> + Send + 'static,
    {
        self.retry_object(key, batch, is_data, count, || self.sink.write_with(key, batch.bytes, encoder())).await
    }

    /// Writes one object, retrying `attempt` with exponential backoff and jitter until it succeeds
    /// or the batch's oldest record passes the retention period (then it is dropped, logged and
    /// counted, and `false` returned).
    async fn retry_object<A, W>(&self, key: &str, batch: &Batch, is_data: bool, count: u64, attempt: A) -> bool
    where
        A: Fn() -> W,
        W: std::future::Future<Output = Result<(), crate::sink::object_store::SinkError>>,
    {
        let d = &self.spec.delivery;
        let mut backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(d.retry_initial)
            .with_max_delay(d.retry_max)
            .without_max_times()
            .build();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match attempt().await {
                Ok(()) => {
                    self.status.delivery_succeeded();
                    if is_data {
                        self.metrics.delivered_records.increment(count);
                        self.metrics.delivered_bytes.increment(batch.bytes as u64);
                        let age_ms = (now_ms() - batch.oldest_arrival_ms).max(0);
                        self.metrics.delivery_latency.record(age_ms as f64 / 1000.0);
                    }
                    self.metrics.delivered_objects.increment(1);
                    tracing::debug!(pipeline = %self.spec.name, key, records = count, bytes = batch.bytes, "delivered");
                    return true;
                }
                Err(e) => {
                    self.metrics.delivery_failures.increment(1);
                    self.status.delivery_failed(&e.to_string());
                    let age = Duration::from_millis((now_ms() - batch.oldest_arrival_ms).max(0) as u64);
                    if age > self.spec.retention {
                        tracing::error!(pipeline = %self.spec.name, key, records = count, attempts, error = %e, "dropping records older than the retention period after failed deliveries");
                        self.metrics.expired_records.increment(count);
                        let what = format!("{count} records older than the retention period were dropped");
                        self.status.gave_up(now_ms(), what);
                        return false;
                    }
                    let wait = backoff.next().unwrap_or(d.retry_max);
                    tracing::warn!(pipeline = %self.spec.name, destination = self.sink.describe(), key, attempts, error = %e, retry_in_ms = wait.as_millis() as u64, "delivery failed; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// Converts a batch and encodes its file, once (retried uploads send the same bytes). Returns the
/// file, if any row converted, and the records that did not. Never fails as a whole: an internal
/// error (never a record's fault) sends every record to the error prefix rather than losing it or
/// retrying a batch that can never encode.
fn convert_batch(
    conversion: &ConversionSpec,
    inference: Option<&std::sync::Mutex<SchemaInference>>,
    records: &[Record],
) -> (Option<bytes::Bytes>, Vec<(usize, ConversionFailure)>) {
    let columns = match (&conversion.schema, inference) {
        (SchemaSpec::Declared(columns), _) => columns.clone(),
        (SchemaSpec::Infer, Some(inference)) => {
            let mut inference = inference.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            inference.evolve(records).unwrap_or_else(|e| {
                // The schema could not be saved: it still applies, and is learned again from the
                // records after a restart.
                tracing::warn!(error = %e, "cannot save the inferred schema");
                inference.columns()
            })
        }
        (SchemaSpec::Infer, None) => Vec::new(),
    };
    let converted = match conversion.convert(&columns, records) {
        Ok(c) => c,
        Err(e) => return (None, all_failed(records.len(), &e.to_string())),
    };
    if converted.table.num_rows() == 0 {
        return (None, converted.failures);
    }
    let mut file = Vec::new();
    match conversion.write(&columns, &converted.table, &mut file) {
        Ok(()) => (Some(bytes::Bytes::from(file)), converted.failures),
        Err(e) => (None, all_failed(records.len(), &format!("writing the file failed: {e}"))),
    }
}

fn all_failed(records: usize, message: &str) -> Vec<(usize, ConversionFailure)> {
    let failure = ConversionFailure {
        kind: FailKind::Malformed,
        message: format!("Internal error while converting the batch (the record is kept here): {message}"),
    };
    (0..records).map(|i| (i, failure.clone())).collect()
}
