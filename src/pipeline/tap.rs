//! Live records at a pipeline's stages, for `sluice tap` (`GET /tap/<pipeline>`).
//!
//! A tap must never slow the pipeline down: with no tap open a stage pays one relaxed atomic load
//! per read; with one open, records are sampled, capped by a token bucket per tap (governor) and
//! handed over with `try_send`, so a slow reader loses records, never the pipeline's time.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::mpsc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// As read from the source, before the processors.
    Incoming = 0,
    /// After the processors, with its partition.
    Processed = 1,
    /// In an object (or request) the destination took.
    Delivered = 2,
    /// On its way to the error output, with its error code.
    Failed = 3,
}

impl Stage {
    pub fn parse(s: &str) -> Option<Stage> {
        Some(match s {
            "incoming" => Stage::Incoming,
            "processed" => Stage::Processed,
            "delivered" => Stage::Delivered,
            "failed" => Stage::Failed,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Incoming => "incoming",
            Stage::Processed => "processed",
            Stage::Delivered => "delivered",
            Stage::Failed => "failed",
        }
    }
}

/// One record seen at a stage.
pub struct TapEvent {
    pub stage: Stage,
    pub seq: u64,
    pub arrival_ms: i64,
    /// The partition (processed, delivered) or the error code (failed).
    pub detail: Option<String>,
    pub data: Bytes,
}

struct Subscriber {
    stage: Stage,
    tx: mpsc::Sender<TapEvent>,
    /// Fraction of records offered (1.0: all).
    sample: f64,
    limiter: DefaultDirectRateLimiter,
}

/// A pipeline's open taps.
#[derive(Default)]
pub struct Taps {
    active: [AtomicUsize; 4],
    subscribers: Mutex<Vec<Subscriber>>,
}

/// Closes its tap when dropped (the HTTP response ended or the client went away).
pub struct TapGuard {
    taps: Arc<Taps>,
    stage: Stage,
}

impl Drop for TapGuard {
    fn drop(&mut self) {
        self.taps.active[self.stage as usize].fetch_sub(1, Ordering::Relaxed);
        self.taps.subscribers.lock().unwrap_or_else(|p| p.into_inner()).retain(|s| !s.tx.is_closed());
    }
}

impl Taps {
    /// Opens a tap: at most `per_second` records a second, each offered with probability `sample`.
    pub fn open(self: &Arc<Self>, stage: Stage, sample: f64, per_second: u32) -> (mpsc::Receiver<TapEvent>, TapGuard) {
        let (tx, rx) = mpsc::channel(1024);
        let quota = Quota::per_second(NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN));
        let subscriber = Subscriber { stage, tx, sample: sample.clamp(0.0, 1.0), limiter: RateLimiter::direct(quota) };
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner()).push(subscriber);
        self.active[stage as usize].fetch_add(1, Ordering::Relaxed);
        (rx, TapGuard { taps: self.clone(), stage })
    }

    /// Whether any tap listens at `stage` (cheap: call before building events).
    pub fn wants(&self, stage: Stage) -> bool {
        self.active[stage as usize].load(Ordering::Relaxed) > 0
    }

    /// Offers records seen at `stage`; `event` builds one only for records a tap takes.
    pub fn offer<T>(&self, stage: Stage, records: &[T], event: impl Fn(&T) -> TapEvent) {
        let subscribers = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        for s in subscribers.iter().filter(|s| s.stage == stage && !s.tx.is_closed()) {
            for r in records {
                let e = event(r);
                // Sampled by a hash of the record's sequence: no random source needed, and the
                // same records are picked at every stage.
                let draw = crate::hash::splitmix64(e.seq) as f64 / u64::MAX as f64;
                if s.sample < 1.0 && draw >= s.sample {
                    continue;
                }
                if s.limiter.check().is_err() {
                    break; // over this tap's rate: the rest of this read is skipped
                }
                if s.tx.try_send(e).is_err() {
                    break; // the reader is behind: drop rather than wait
                }
            }
        }
    }
}

/// A record's partition as people read it: `customer_id=c1,year=2026`.
pub(super) fn partition_text(keys: Option<&crate::process::PartitionKeys>) -> Option<String> {
    let keys = keys?;
    let pairs: Vec<String> = keys.query.iter().chain(&keys.lambda).map(|(k, v)| format!("{k}={v}")).collect();
    (!pairs.is_empty()).then(|| pairs.join(","))
}

pub(super) fn tap_event(stage: Stage, record: &crate::record::Record, detail: Option<String>) -> TapEvent {
    TapEvent { stage, seq: record.seq, arrival_ms: record.arrival_ms, detail, data: record.data.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: &u64) -> TapEvent {
        TapEvent { stage: Stage::Processed, seq: *seq, arrival_ms: 0, detail: None, data: Bytes::new() }
    }

    #[tokio::test]
    async fn a_tap_is_capped_and_closes_with_its_guard() {
        let taps = Arc::new(Taps::default());
        assert!(!taps.wants(Stage::Processed));
        let (mut rx, guard) = taps.open(Stage::Processed, 1.0, 10);
        assert!(taps.wants(Stage::Processed) && !taps.wants(Stage::Failed));
        let records: Vec<u64> = (0..1000).collect();
        taps.offer(Stage::Processed, &records, event);
        taps.offer(Stage::Failed, &records, event);
        let mut got = 0;
        while rx.try_recv().is_ok() {
            got += 1;
        }
        assert!(got <= 10, "the rate cap held: {got}");
        drop(rx);
        drop(guard);
        assert!(!taps.wants(Stage::Processed));
        assert!(taps.subscribers.lock().unwrap().is_empty());
    }
}
