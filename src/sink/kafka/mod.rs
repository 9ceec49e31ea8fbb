//! `destination: kafka`: records (after processors) produced to a topic, each batch in one Kafka
//! transaction, keyed by a jq expression.
//!
//! The producer is always idempotent (`enable.idempotence`): a retry inside librdkafka never
//! writes a record twice. With `exactly_once` (the default) each batch is one transaction under a
//! transactional id that is stable across restarts and unique to this state directory and
//! destination (`sluice-<pipeline>-<instance>`), so:
//! - a batch is visible to `read_committed` consumers whole or not at all; a crash mid-batch
//!   leaves an open transaction that the restarted daemon's `init_transactions` aborts, and the
//!   replay (the same batch, `buffer::replay`) sends it again;
//! - the one window left is a crash after the transaction commits and before the pipeline
//!   records the batch as delivered: the batch is then sent again in a new transaction. Every
//!   record carries headers `sluice-batch-id` (the batch's request id, the same on every resend)
//!   and `sluice-record-index`, so a consumer can drop such a repeat. At most the batches in
//!   flight at the crash (the destination's concurrency) can repeat.
//!
//! A transactional producer has one transaction open at a time, so batches go one after another
//! (each is large: the buffer size). Without `exactly_once`, batches go concurrently and a record
//! the brokers refuse for good (too large, invalid) goes to the error prefix alone while the rest
//! are delivered.

pub mod config;
pub mod firehose;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::Mutex;

use super::destination::{Destination, Outcome, SendError};
use super::SinkError;
use crate::process::jq::JqProgram;
use crate::process::ErrorOutputType;
use crate::record::Record;
use config::KafkaDestinationSpec;

/// How long transaction calls (init, commit, abort) may take before the batch is retried.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Records per request: a transaction per batch, whatever its size (Kafka splits it in requests).
const MAX_RECORDS_PER_REQUEST: usize = 100_000;

pub struct Kafka {
    spec: KafkaDestinationSpec,
    transactional_id: String,
    key: Option<JqProgram>,
    /// The producer, made (and, with transactions, initialised) on first use and again after a
    /// fatal error; the lock also keeps one transaction open at a time.
    producer: Mutex<Option<Arc<FutureProducer>>>,
    /// Without transactions: made once, shared by concurrent sends. Also made when the brokers
    /// turn out not to support transactions (then set once, never unset).
    shared: std::sync::OnceLock<Arc<FutureProducer>>,
}

impl Kafka {
    /// `instance` is unique to the state directory and the destination, and stable across
    /// restarts (the transactional id is made from it).
    pub fn new(spec: &KafkaDestinationSpec, pipeline: &str, instance: &str) -> Result<Self, SinkError> {
        let key = match &spec.key {
            Some(q) => {
                Some(JqProgram::compile(q).map_err(|e| SinkError::Setup(format!("key: {e}")))?.without_fast_plan())
            }
            None => None,
        };
        let this = Self {
            spec: spec.clone(),
            transactional_id: format!("sluice-{pipeline}-{instance}"),
            key,
            producer: Mutex::new(None),
            shared: std::sync::OnceLock::new(),
        };
        if !spec.exactly_once {
            let _ = this.shared.set(Arc::new(this.make_producer(false)?));
        }
        Ok(this)
    }

    fn make_producer(&self, transactional: bool) -> Result<FutureProducer, SinkError> {
        let mut c = self.spec.connection.client_config();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.codec", &self.spec.compression)
            .set("message.timeout.ms", "60000")
            .set("linger.ms", "5");
        if transactional {
            c.set("transactional.id", &self.transactional_id)
                .set("transaction.timeout.ms", (TRANSACTION_TIMEOUT.as_millis() * 2).to_string());
        }
        self.spec.connection.apply_options(&mut c);
        c.create().map_err(|e| SinkError::Setup(format!("cannot create the Kafka producer: {e}")))
    }

    /// The record's key: the jq expression's first output (a string as is, other values as JSON).
    fn key_of(&self, data: &[u8]) -> Option<Vec<u8>> {
        let out = self.key.as_ref()?.run_jaq(data).ok()?;
        match out.first()? {
            jaq_json::Val::Null => None,
            jaq_json::Val::TStr(s) | jaq_json::Val::BStr(s) => Some(s.to_vec()),
            other => {
                let mut json = Vec::new();
                crate::process::jq::write_json(&mut json, other).ok()?;
                Some(json)
            }
        }
    }

    /// Produces `records[i]` for each `i` in `indexes` and waits for every acknowledgement. The
    /// outcome's indexes are positions in `indexes`.
    async fn produce(
        &self,
        producer: &FutureProducer,
        request_id: &str,
        records: &[Record],
        indexes: &[usize],
    ) -> Outcome {
        let mut pending = Vec::with_capacity(indexes.len());
        let mut retry = Vec::new();
        let mut rejected = Vec::new();
        let mut cause = None;
        for (position, &i) in indexes.iter().enumerate() {
            let key = self.key_of(&records[i].data);
            let index = i.to_string();
            let headers = OwnedHeaders::new_with_capacity(2)
                .insert(Header { key: "sluice-batch-id", value: Some(request_id) })
                .insert(Header { key: "sluice-record-index", value: Some(index.as_str()) });
            let mut record = FutureRecord::to(&self.spec.topic).payload(&records[i].data[..]).headers(headers);
            if let Some(k) = &key {
                record = record.key(&k[..]);
            }
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push((position, delivery));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    // Refused before it left (too large for the producer, say): this record only.
                    Err((e, _)) => {
                        let error = classify(&e);
                        if error.permanent {
                            rejected.push((position, error));
                        } else {
                            cause.get_or_insert(error);
                            retry.push(position);
                        }
                        break;
                    }
                }
            }
        }
        for (position, delivery) in pending {
            let error = match delivery.await {
                Ok(Ok(_)) => continue,
                Ok(Err((e, _))) => classify(&e),
                Err(_) => SendError::retry(
                    "Kafka.ProduceFailed",
                    "the producer was closed before the record was acknowledged",
                ),
            };
            if error.permanent {
                rejected.push((position, error));
            } else {
                cause.get_or_insert(error);
                retry.push(position);
            }
        }
        retry.sort_unstable();
        match (retry.is_empty(), rejected.is_empty()) {
            (true, true) => Outcome::Delivered,
            _ if retry.len() == indexes.len() => Outcome::Failed(
                cause.unwrap_or_else(|| SendError::retry("Kafka.ProduceFailed", "records were not acknowledged")),
            ),
            _ => {
                // No retryable failure: the first refusal stands for the request.
                let cause = cause
                    .or_else(|| rejected.first().map(|(_, e)| e.clone()))
                    .unwrap_or_else(|| SendError::retry("Kafka.ProduceFailed", "records were not acknowledged"));
                Outcome::Partial { cause, retry, rejected }
            }
        }
    }

    /// One batch as one transaction. A record refused for good aborts the transaction; it goes to
    /// the error prefix and the rest are sent again (in a new transaction).
    async fn transact(&self, request_id: &str, records: &[Record], indexes: &[usize]) -> Outcome {
        let mut slot = self.producer.lock().await;
        let producer = match slot.clone() {
            Some(p) => p,
            None => match self.make_producer(true) {
                Ok(p) => {
                    let p = Arc::new(p);
                    if let Err(e) = blocking(&p, |p| p.init_transactions(TRANSACTION_TIMEOUT)).await {
                        if transactions_unsupported(&e) {
                            return self.without_transactions(&e);
                        }
                        return Outcome::Failed(SendError::retry(
                            "Kafka.TransactionFailed",
                            format!("cannot initialise transactions: {e}"),
                        ));
                    }
                    *slot = Some(p.clone());
                    p
                }
                Err(e) => return Outcome::Failed(SendError::retry("Kafka.ProduceFailed", e.to_string())),
            },
        };
        if let Err(e) = producer.begin_transaction() {
            *slot = None; // a producer that cannot begin is made again
            return Outcome::Failed(SendError::retry(
                "Kafka.TransactionFailed",
                format!("cannot begin a transaction: {e}"),
            ));
        }
        let outcome = self.produce(&producer, request_id, records, indexes).await;
        let outcome = match outcome {
            Outcome::Delivered => match blocking(&producer, |p| p.commit_transaction(TRANSACTION_TIMEOUT)).await {
                Ok(()) => return Outcome::Delivered,
                Err(e) if transactions_unsupported(&e) => {
                    *slot = None;
                    return self.without_transactions(&e);
                }
                Err(e) => Outcome::Failed(SendError::retry(
                    "Kafka.TransactionFailed",
                    format!("the transaction did not commit: {e}"),
                )),
            },
            // Nothing of an aborted transaction is taken: what was not refused is retried.
            Outcome::Partial { rejected, cause, .. } => {
                let refused: Vec<usize> = rejected.iter().map(|(p, _)| *p).collect();
                let retry = (0..indexes.len()).filter(|p| !refused.contains(p)).collect();
                Outcome::Partial { retry, rejected, cause }
            }
            failed => failed,
        };
        if blocking(&producer, |p| p.abort_transaction(TRANSACTION_TIMEOUT)).await.is_err() {
            // Fenced or otherwise unusable: start over with a new producer (its init aborts
            // whatever this one left open).
            *slot = None;
        }
        outcome
    }
}

impl Kafka {
    /// Falls back to the idempotent producer for good; the batch is retried with it.
    fn without_transactions(&self, e: &KafkaError) -> Outcome {
        match self.make_producer(false) {
            Ok(p) => {
                if self.shared.set(Arc::new(p)).is_ok() {
                    tracing::warn!(destination = %self.spec.topic, error = %e, "the Kafka brokers do not support transactions: falling back to the idempotent producer (at least once: a crash can repeat the batches in flight; records carry sluice-batch-id headers to drop repeats by)");
                }
                Outcome::Failed(SendError::retry(
                    "Kafka.TransactionsUnsupported",
                    format!("the brokers do not support transactions ({e}); retrying without"),
                ))
            }
            Err(e) => Outcome::Failed(SendError::retry("Kafka.ProduceFailed", e.to_string())),
        }
    }
}

/// Runs a blocking librdkafka call (transactions wait for the brokers) off the async workers.
async fn blocking(
    producer: &Arc<FutureProducer>,
    call: impl FnOnce(&FutureProducer) -> rdkafka::error::KafkaResult<()> + Send + 'static,
) -> rdkafka::error::KafkaResult<()> {
    let p = producer.clone();
    tokio::task::spawn_blocking(move || call(&p)).await.unwrap_or(Err(KafkaError::Canceled))
}

/// The brokers do not do transactions (Kafka before 0.11, or a Kafka-compatible server without
/// them): librdkafka says so by this code before sending the request.
fn transactions_unsupported(e: &KafkaError) -> bool {
    matches!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::UnsupportedFeature | RDKafkaErrorCode::UnsupportedVersion))
}

/// A produce error as Firehose-style code: records the brokers refuse for good go to the error
/// prefix, anything else is retried.
fn classify(e: &KafkaError) -> SendError {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize) => {
            SendError::permanent("Kafka.RecordTooLarge", format!("the brokers refuse a record this large: {e}"))
        }
        Some(RDKafkaErrorCode::InvalidRecord | RDKafkaErrorCode::InvalidMessage) => {
            SendError::permanent("Kafka.InvalidRecord", format!("the brokers refuse the record: {e}"))
        }
        _ => SendError::retry("Kafka.ProduceFailed", format!("cannot produce to Kafka: {e}")),
    }
}

#[async_trait]
impl Destination for Kafka {
    fn name(&self) -> &str {
        "kafka"
    }

    fn error_output_type(&self) -> ErrorOutputType {
        ErrorOutputType::DeliveryFailed("kafka-failed")
    }

    fn requests(&self, records: &[Record]) -> Vec<std::ops::Range<usize>> {
        (0..records.len())
            .step_by(MAX_RECORDS_PER_REQUEST)
            .map(|start| start..(start + MAX_RECORDS_PER_REQUEST).min(records.len()))
            .collect()
    }

    async fn send(&self, request_id: &str, records: &[Record], indexes: &[usize]) -> Outcome {
        match self.shared.get() {
            Some(producer) => self.produce(producer, request_id, records, indexes).await,
            None => self.transact(request_id, records, indexes).await,
        }
    }
}
