//! What a running pipeline reports about itself, for `/ready` and for closing idle streams.
//! Written by the pipeline task, its uploads and the API; read by anyone, lock-free but for the
//! last error's text.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct PipelineStatus {
    last_put_ms: AtomicI64,
    /// Nothing buffered, uploading or waiting in the WAL.
    drained: AtomicBool,
    /// Arrival time of the oldest record not yet delivered (0: none).
    oldest_undelivered_ms: AtomicI64,
    failures_in_row: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Why the destination check failed, until a check or a delivery succeeds.
    check_error: Mutex<Option<String>>,
    /// A stream source's DeliveryStartTimestamp (0: not a stream source).
    source_start_ms: AtomicI64,
    /// Why the source cannot read (files it cannot open, a stream it cannot list), until it can.
    source_problem: Mutex<Option<String>>,
    /// When records were last given up to the error prefix (0: never), and why.
    last_give_up_ms: AtomicI64,
    last_give_up: Mutex<Option<String>>,
    /// Records that went to the error output: counts by (type, code) and the latest few (the
    /// console shows them). Failures are not the hot path.
    errors: Mutex<ErrorLog>,
}

/// How many of the latest error records a pipeline keeps for the console.
const LATEST_ERRORS: usize = 20;
/// How much of a failed record's data they keep.
const ERROR_DATA_PREVIEW: usize = 300;

/// One record that went to the error output, as the console shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ErrorSample {
    pub at_ms: i64,
    pub error_output_type: String,
    pub code: String,
    pub message: String,
    /// The start of the record's data, lossily as text.
    pub data: String,
}

#[derive(Debug, Default)]
struct ErrorLog {
    by_code: std::collections::BTreeMap<(String, String), u64>,
    latest: std::collections::VecDeque<ErrorSample>,
}

impl PipelineStatus {
    pub fn put_accepted(&self, now_ms: i64) {
        self.last_put_ms.store(now_ms, Ordering::Relaxed);
        self.drained.store(false, Ordering::Relaxed);
    }

    pub fn set_source_start_ms(&self, ms: i64) {
        self.source_start_ms.store(ms, Ordering::Relaxed);
    }

    /// The source says what keeps it from reading (`None`: nothing); logged when it changes.
    pub fn set_source_problem(&self, problem: Option<String>) {
        let mut current = self.source_problem.lock().unwrap_or_else(|p| p.into_inner());
        if *current != problem {
            match &problem {
                Some(why) => tracing::warn!(problem = %why, "the source cannot read; /ready says so"),
                None => tracing::info!("the source reads again"),
            }
            *current = problem;
        }
    }

    pub fn source_problem(&self) -> Option<String> {
        self.source_problem.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn source_start_ms(&self) -> Option<i64> {
        Some(self.source_start_ms.load(Ordering::Relaxed)).filter(|ms| *ms > 0)
    }

    pub fn last_put_ms(&self) -> i64 {
        self.last_put_ms.load(Ordering::Relaxed)
    }

    pub(super) fn set_progress(&self, drained: bool, oldest_undelivered_ms: Option<i64>) {
        self.drained.store(drained, Ordering::Relaxed);
        self.oldest_undelivered_ms.store(oldest_undelivered_ms.unwrap_or(0), Ordering::Relaxed);
    }

    pub fn drained(&self) -> bool {
        self.drained.load(Ordering::Relaxed)
    }

    pub fn oldest_undelivered_ms(&self) -> Option<i64> {
        Some(self.oldest_undelivered_ms.load(Ordering::Relaxed)).filter(|&t| t > 0)
    }

    pub(super) fn delivery_succeeded(&self) {
        self.failures_in_row.store(0, Ordering::Relaxed);
        if self.check_error.lock().unwrap_or_else(|p| p.into_inner()).take().is_some() {
            tracing::info!("a delivery succeeded: the destination check's failure is cleared");
        }
    }

    /// Records the outcome of a destination check.
    pub fn set_check(&self, outcome: Result<(), String>) {
        *self.check_error.lock().unwrap_or_else(|p| p.into_inner()) = outcome.err();
    }

    /// Why the last destination check failed, if it did.
    pub fn check_error(&self) -> Option<String> {
        self.check_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(super) fn delivery_failed(&self, error: &str) {
        self.failures_in_row.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_string());
    }

    /// Records given up to the error prefix (a destination refused them or the retry duration
    /// passed) or dropped past the retention period: `/ready` says so for a while.
    pub fn gave_up(&self, now_ms: i64, what: String) {
        *self.last_give_up.lock().unwrap_or_else(|p| p.into_inner()) = Some(what);
        self.last_give_up_ms.store(now_ms, Ordering::Relaxed);
    }

    /// A record went to the error output (`error_output_type`, its error code and message).
    pub fn note_error(&self, at_ms: i64, error_output_type: &str, code: &str, message: &str, data: &[u8]) {
        let mut log = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        *log.by_code.entry((error_output_type.to_string(), code.to_string())).or_default() += 1;
        if log.latest.len() == LATEST_ERRORS {
            log.latest.pop_front();
        }
        let preview = &data[..data.len().min(ERROR_DATA_PREVIEW)];
        log.latest.push_back(ErrorSample {
            at_ms,
            error_output_type: error_output_type.to_string(),
            code: code.to_string(),
            message: message.to_string(),
            data: String::from_utf8_lossy(preview).into_owned(),
        });
    }

    /// Error records so far by (error output type, code), and the latest ones, newest last.
    pub fn errors(&self) -> (Vec<(String, String, u64)>, Vec<ErrorSample>) {
        let log = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        let counts = log.by_code.iter().map(|((t, c), n)| (t.clone(), c.clone(), *n)).collect();
        (counts, log.latest.iter().cloned().collect())
    }

    /// The last give-up since `since_ms`: when, and what was given up.
    pub fn given_up_since(&self, since_ms: i64) -> Option<(i64, String)> {
        let at = self.last_give_up_ms.load(Ordering::Relaxed);
        if at == 0 || at < since_ms {
            return None;
        }
        self.last_give_up.lock().unwrap_or_else(|p| p.into_inner()).clone().map(|what| (at, what))
    }

    /// Failed deliveries since the last success, and the last failure's message.
    pub fn failures(&self) -> (u64, Option<String>) {
        let n = self.failures_in_row.load(Ordering::Relaxed);
        let last = if n > 0 { self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone() } else { None };
        (n, last)
    }
}
