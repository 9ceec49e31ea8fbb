//! Keeps one bad plugin from hurting anything else.
//!
//! * **Circuit breaker.** After [`TRIP_AFTER`] invocations in a row that timed out (every retry
//!   included), the plugin is *open*: its records go straight to the error output, without being
//!   run, for a cool-down that starts at 30 s and doubles (to 5 min) each time a probe after the
//!   cool-down times out again. One success closes it. A timeout is what the breaker counts: it
//!   is the failure that burns a core for the whole timeout; a trap fails in microseconds.
//! * **A bounded share of the cores.** At most `cores - 1` invocations of one plugin run at once
//!   (at least one), so a plugin spinning until its timeout can take every core but one, and the
//!   other pipelines keep a core. Measured in BENCHMARKS.md ("a hostile plugin's neighbour").

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Invocations timing out in a row before the breaker opens.
pub const TRIP_AFTER: u32 = 2;
const FIRST_COOL_DOWN: Duration = Duration::from_secs(30);
const MAX_COOL_DOWN: Duration = Duration::from_secs(300);

#[derive(Debug)]
enum State {
    Closed {
        timeouts_in_row: u32,
    },
    Open {
        until: Instant,
        cool_down: Duration,
    },
    /// The cool-down passed; one invocation is probing.
    Probing {
        cool_down: Duration,
    },
}

/// What the breaker says about running an invocation now.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    Run,
    /// Fail the records at once; the breaker reopens to normal at this time.
    ShortCircuit {
        retry_in: Duration,
    },
}

#[derive(Debug)]
pub struct Breaker {
    state: Mutex<State>,
}

impl Default for Breaker {
    fn default() -> Self {
        Self { state: Mutex::new(State::Closed { timeouts_in_row: 0 }) }
    }
}

impl Breaker {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn admit(&self, now: Instant) -> Admission {
        let mut state = self.state();
        match *state {
            State::Closed { .. } => Admission::Run,
            State::Open { until, cool_down } if now >= until => {
                *state = State::Probing { cool_down };
                Admission::Run
            }
            State::Open { until, .. } => Admission::ShortCircuit { retry_in: until - now },
            // While one probe runs, the rest wait out the probe's verdict in the error output.
            State::Probing { .. } => Admission::ShortCircuit { retry_in: Duration::ZERO },
        }
    }

    /// Reports an invocation's outcome. Returns `Some(cool_down)` when this opened the breaker.
    pub fn report(&self, timed_out: bool, now: Instant) -> Option<Duration> {
        let mut state = self.state();
        let (next, opened) = match (&*state, timed_out) {
            (_, false) => (State::Closed { timeouts_in_row: 0 }, None),
            (State::Closed { timeouts_in_row }, true) if timeouts_in_row + 1 >= TRIP_AFTER => {
                (State::Open { until: now + FIRST_COOL_DOWN, cool_down: FIRST_COOL_DOWN }, Some(FIRST_COOL_DOWN))
            }
            (State::Closed { timeouts_in_row }, true) => (State::Closed { timeouts_in_row: timeouts_in_row + 1 }, None),
            (State::Probing { cool_down } | State::Open { cool_down, .. }, true) => {
                let longer = (*cool_down * 2).min(MAX_COOL_DOWN);
                (State::Open { until: now + longer, cool_down: longer }, Some(longer))
            }
        };
        *state = next;
        opened
    }

    pub fn is_open(&self) -> bool {
        !matches!(*self.state(), State::Closed { .. })
    }
}

/// A counting semaphore for blocking threads (plugin invocations run on the blocking pool).
#[derive(Debug)]
pub struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

pub struct Slot<'a>(&'a Slots);

impl Slots {
    pub fn new(n: usize) -> Self {
        Self { free: Mutex::new(n.max(1)), freed: Condvar::new() }
    }

    /// Invocations of one plugin at once: every core but one, at least one.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(cores.saturating_sub(1))
    }

    pub fn acquire(&self) -> Slot<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_timeouts_in_a_row_probes_after_the_cool_down_and_backs_off() {
        let b = Breaker::default();
        let t0 = Instant::now();
        assert_eq!(b.report(true, t0), None);
        assert_eq!(b.admit(t0), Admission::Run);
        assert_eq!(b.report(true, t0), Some(FIRST_COOL_DOWN));
        assert!(matches!(b.admit(t0), Admission::ShortCircuit { .. }));
        let later = t0 + FIRST_COOL_DOWN;
        assert_eq!(b.admit(later), Admission::Run, "one probe");
        assert!(matches!(b.admit(later), Admission::ShortCircuit { .. }), "only one");
        assert_eq!(b.report(true, later), Some(FIRST_COOL_DOWN * 2), "a failed probe doubles the cool-down");
        let much_later = later + FIRST_COOL_DOWN * 2;
        assert_eq!(b.admit(much_later), Admission::Run);
        assert_eq!(b.report(false, much_later), None);
        assert!(!b.is_open(), "a success closes it");
    }

    #[test]
    fn a_success_between_timeouts_resets_the_count() {
        let b = Breaker::default();
        let t = Instant::now();
        b.report(true, t);
        b.report(false, t);
        assert_eq!(b.report(true, t), None);
    }

    #[test]
    fn slots_bound_concurrency() {
        let slots = std::sync::Arc::new(Slots::new(1));
        let a = slots.acquire();
        let s2 = slots.clone();
        let waiter = std::thread::spawn(move || {
            let _b = s2.acquire();
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished());
        drop(a);
        waiter.join().unwrap();
    }
}
