//! The retry loop every sending destination shares: exponential backoff with ±15% jitter, up to a
//! retry duration measured from the first failure (Firehose's `RetryOptions.DurationInSeconds`).
//! Object writes keep their own loop (they retry until retention, as Firehose does for S3).

use std::future::Future;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
    /// Each wait is the backoff times a factor in `1 ± jitter`.
    pub jitter: f64,
    /// After the first failure, attempts continue this long (0: one attempt only).
    pub duration: Duration,
}

/// How a retried operation ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Retried<E> {
    Succeeded {
        attempts: u32,
    },
    /// The last error, and the attempts made.
    GaveUp {
        error: E,
        attempts: u32,
    },
}

impl RetryPolicy {
    /// Runs `attempt` until it succeeds, `permanent` says an error will not go away, or the retry
    /// duration has passed since the first failure. `failed` hears of every failure (for logs,
    /// metrics and `/ready`).
    pub async fn run<E, F, Fut>(
        &self,
        mut attempt: F,
        permanent: impl Fn(&E) -> bool,
        mut failed: impl FnMut(&E, u32),
    ) -> Retried<E>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let mut first_failure: Option<Instant> = None;
        let mut backoff = self.initial;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let error = match attempt(attempts).await {
                Ok(()) => return Retried::Succeeded { attempts },
                Err(e) => e,
            };
            failed(&error, attempts);
            let since = *first_failure.get_or_insert_with(Instant::now);
            if permanent(&error) || since.elapsed() >= self.duration {
                return Retried::GaveUp { error, attempts };
            }
            let wait = jittered(backoff, self.jitter).min(self.duration.saturating_sub(since.elapsed()));
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(self.max);
        }
    }
}

fn jittered(base: Duration, jitter: f64) -> Duration {
    // A uniform number in [0, 1) from the v4 UUID generator sluice already carries.
    let unit = (uuid::Uuid::new_v4().as_u128() as u64 >> 11) as f64 / (1u64 << 53) as f64;
    base.mul_f64((1.0 + jitter * (2.0 * unit - 1.0)).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(duration_ms: u64) -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(40),
            jitter: 0.15,
            duration: Duration::from_millis(duration_ms),
        }
    }

    #[tokio::test]
    async fn retries_until_success() {
        let outcome = policy(5_000)
            .run(
                |n| async move {
                    if n < 3 {
                        Err("no")
                    } else {
                        Ok(())
                    }
                },
                |_| false,
                |_, _| {},
            )
            .await;
        assert_eq!(outcome, Retried::Succeeded { attempts: 3 });
    }

    #[tokio::test]
    async fn gives_up_after_the_duration_and_at_once_when_permanent() {
        let started = Instant::now();
        let outcome = policy(200).run(|_| async { Err::<(), _>("down") }, |_| false, |_, _| {}).await;
        assert!(matches!(outcome, Retried::GaveUp { error: "down", attempts } if attempts > 3));
        assert!(started.elapsed() < Duration::from_millis(400), "the duration bounds the waiting");
        let outcome = policy(5_000).run(|_| async { Err::<(), _>("413") }, |e| *e == "413", |_, _| {}).await;
        assert_eq!(outcome, Retried::GaveUp { error: "413", attempts: 1 });
        let outcome = policy(0).run(|_| async { Err::<(), _>("x") }, |_| false, |_, _| {}).await;
        assert_eq!(outcome, Retried::GaveUp { error: "x", attempts: 1 }, "a zero duration means one attempt");
    }

    #[test]
    fn jitter_stays_within_fifteen_percent() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(1), 0.15);
            assert!((850..=1150).contains(&(d.as_millis() as u64)), "{d:?}");
        }
    }
}
