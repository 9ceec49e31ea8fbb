//! One shard's reader: GetShardIterator, then GetRecords in a loop, at most 5 calls a second
//! (Kinesis's per-shard limit) while behind and once a second when caught up, as Firehose polls.
//! Throttling backs off, an expired iterator is renewed from the last record read, and any other
//! error is logged and retried forever (Firehose retries these indefinitely too).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::client::{IteratorStart, KinesisClient, KinesisError, KinesisRecord};
use super::KinesisMetrics;
use crate::config::StartingPosition;

pub enum ReaderMsg {
    Records {
        shard: Arc<str>,
        records: Vec<KinesisRecord>,
        millis_behind: u64,
    },
    /// The shard is closed (after a reshard) and every record of it has been sent.
    Ended {
        shard: Arc<str>,
    },
}

/// Per GetRecords call (Kinesis allows 10,000); smaller pages keep what a crash can repeat small.
const RECORDS_PER_CALL: usize = 2_000;
const BEHIND_POLL: Duration = Duration::from_millis(200);
const IDLE_POLL: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

pub struct ShardReader {
    pub client: Arc<KinesisClient>,
    pub stream: String,
    pub shard: Arc<str>,
    /// The checkpoint: read after this sequence number.
    pub after: Option<String>,
    pub start: StartingPosition,
    pub delivery_start_ms: i64,
    pub tx: mpsc::Sender<ReaderMsg>,
    pub metrics: KinesisMetrics,
    pub pipeline: String,
}

impl ShardReader {
    fn start(&self) -> IteratorStart<'_> {
        match (&self.after, self.start) {
            (Some(seq), _) => IteratorStart::AfterSequence(seq),
            (None, StartingPosition::TrimHorizon) => IteratorStart::TrimHorizon,
            (None, StartingPosition::AtTimestamp(ms)) => IteratorStart::AtTimestamp(ms),
            // LATEST is "from when the pipeline first started", so a restart before the first
            // checkpoint does not skip what arrived in between.
            (None, StartingPosition::Latest) => IteratorStart::AtTimestamp(self.delivery_start_ms),
        }
    }

    async fn iterator(&self) -> Option<String> {
        let mut backoff = Duration::from_millis(200);
        loop {
            if self.tx.is_closed() {
                return None;
            }
            match self.client.shard_iterator(&self.stream, &self.shard, self.start()).await {
                Ok(it) => return Some(it),
                Err(e) => {
                    if matches!(e, KinesisError::Throttled(_)) {
                        self.metrics.throttled_get_shard_iterator.increment(1);
                    }
                    tracing::warn!(pipeline = %self.pipeline, shard = %self.shard, error = %e, "cannot get a shard iterator; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    pub async fn run(mut self) {
        let Some(mut iterator) = self.iterator().await else { return };
        let mut backoff = Duration::from_millis(200);
        loop {
            if self.tx.is_closed() {
                return;
            }
            match self.client.get_records(&iterator, RECORDS_PER_CALL).await {
                Ok(page) => {
                    backoff = Duration::from_millis(200);
                    // Behind: a full page, or Kinesis says so (emulators may always say 0).
                    let caught_up = page.records.len() < RECORDS_PER_CALL && page.millis_behind_latest == 0;
                    if let Some(last) = page.records.last() {
                        self.after = Some(last.sequence_number.clone());
                    }
                    if !page.records.is_empty() {
                        let msg = ReaderMsg::Records {
                            shard: self.shard.clone(),
                            records: page.records,
                            millis_behind: page.millis_behind_latest,
                        };
                        if self.tx.send(msg).await.is_err() {
                            return;
                        }
                    }
                    match page.next_iterator {
                        Some(next) => iterator = next,
                        None => {
                            let _ = self.tx.send(ReaderMsg::Ended { shard: self.shard.clone() }).await;
                            return;
                        }
                    }
                    tokio::time::sleep(if caught_up { IDLE_POLL } else { BEHIND_POLL }).await;
                }
                Err(KinesisError::ExpiredIterator(_)) => match self.iterator().await {
                    Some(it) => iterator = it,
                    None => return,
                },
                Err(e) => {
                    if matches!(e, KinesisError::Throttled(_)) {
                        self.metrics.throttled_get_records.increment(1);
                    } else {
                        tracing::warn!(pipeline = %self.pipeline, shard = %self.shard, error = %e, "GetRecords failed; retrying");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}
