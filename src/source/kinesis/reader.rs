//! One shard's reader: GetShardIterator, then GetRecords in a loop, at most 5 calls a second
//! (Kinesis's per-shard limit) while behind and once a second when caught up, as Firehose polls.
//! Throttling backs off, an expired iterator is renewed from the last record read, and any other
//! error is logged and retried forever (Firehose retries these indefinitely too).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::client::{IteratorStart, KinesisClient, KinesisError, KinesisRecord};
use super::config::StartingPosition;
use super::KinesisMetrics;

pub enum ReaderMsg {
    Records {
        shard: Arc<str>,
        generation: u64,
        records: Vec<KinesisRecord>,
        millis_behind: u64,
    },
    /// The shard is closed (after a reshard) and every record of it has been sent.
    Ended {
        shard: Arc<str>,
        generation: u64,
    },
    /// Reading stopped because the lease is to be handed to another daemon; nothing more follows.
    Stopped {
        shard: Arc<str>,
        generation: u64,
    },
}

/// What the lease coordinator tells one reader: until when its lease is surely held, and whether
/// to stop. Without leases a reader's permit never runs out.
pub struct ReadPermit {
    stop: AtomicBool,
    valid_until: Mutex<Option<Instant>>,
}

impl ReadPermit {
    pub fn unlimited() -> Arc<Self> {
        Arc::new(Self { stop: AtomicBool::new(false), valid_until: Mutex::new(None) })
    }

    pub fn until(deadline: Instant) -> Arc<Self> {
        Arc::new(Self { stop: AtomicBool::new(false), valid_until: Mutex::new(Some(deadline)) })
    }

    /// The lease was renewed: reading may go on until `deadline`.
    pub fn extend(&self, deadline: Instant) {
        let mut v = self.valid_until.lock().unwrap_or_else(|p| p.into_inner());
        if v.is_some_and(|old| old < deadline) {
            *v = Some(deadline);
        }
    }

    /// Stop after the page being read; the reader then says `Stopped`.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn valid(&self) -> bool {
        self.valid_until.lock().unwrap_or_else(|p| p.into_inner()).is_none_or(|until| Instant::now() < until)
    }
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
    pub generation: u64,
    pub permit: Arc<ReadPermit>,
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
        // A lease nobody has read yet holds where to begin instead of a sequence number.
        let at_timestamp = self.after.as_deref().and_then(|a| a.strip_prefix("AT_TIMESTAMP:")?.parse().ok());
        match (self.after.as_deref(), self.start) {
            (Some("TRIM_HORIZON"), _) => IteratorStart::TrimHorizon,
            (Some(_), _) if at_timestamp.is_some() => IteratorStart::AtTimestamp(at_timestamp.unwrap_or_default()),
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

    /// Waits while the lease is not surely held (a late renewal). `false`: stop reading.
    async fn may_read(&self) -> bool {
        loop {
            if self.permit.stopped() {
                let msg = ReaderMsg::Stopped { shard: self.shard.clone(), generation: self.generation };
                let _ = self.tx.send(msg).await;
                return false;
            }
            if self.tx.is_closed() {
                return false;
            }
            if self.permit.valid() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn run(mut self) {
        let Some(mut iterator) = self.iterator().await else { return };
        let mut backoff = Duration::from_millis(200);
        loop {
            if !self.may_read().await {
                return;
            }
            match self.client.get_records(&iterator, RECORDS_PER_CALL).await {
                // The lease may have run out during the call: the page is not handed over (the
                // next holder reads it), and the same iterator is used again if it comes back.
                Ok(_) if !self.permit.valid() => {}
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
                            generation: self.generation,
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
                            let msg = ReaderMsg::Ended { shard: self.shard.clone(), generation: self.generation };
                            let _ = self.tx.send(msg).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permit_runs_out_unless_renewed_and_never_shrinks() {
        let now = Instant::now();
        let permit = ReadPermit::until(now + Duration::from_millis(50));
        assert!(permit.valid());
        permit.extend(now + Duration::from_millis(10)); // an older renewal answered late
        std::thread::sleep(Duration::from_millis(60));
        assert!(!permit.valid(), "a lease not renewed in time stops reading");
        permit.extend(Instant::now() + Duration::from_secs(5));
        assert!(permit.valid());
        assert!(ReadPermit::unlimited().valid());
    }
}
