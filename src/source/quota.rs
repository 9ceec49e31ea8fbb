//! Direct PUT throughput quotas per stream (Firehose's records/s, bytes/s and requests/s), with
//! governor's GCRA limiters: a burst of one second's worth, then the steady rate.
//!
//! PutRecord and PutRecordBatch share the quotas, as in Firehose. A request over the request rate
//! is refused whole; within a batch, records are admitted in order until one would exceed the
//! record or byte rate, and the rest get a per-record ServiceUnavailableException ("Slow down."),
//! so the client resends exactly those.

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::config::Quotas;

pub struct Throttle {
    records: Option<DefaultDirectRateLimiter>,
    bytes: Option<DefaultDirectRateLimiter>,
    requests: Option<DefaultDirectRateLimiter>,
    pub limits: Quotas,
}

/// Firehose's message for a throttled call or record.
pub const SLOW_DOWN: &str = "Slow down.";

impl Throttle {
    /// `None` when the stream has no quota (the default): the put path then does no work for it.
    pub fn new(quotas: &Quotas) -> Option<Self> {
        if quotas.is_unlimited() {
            return None;
        }
        let limiter = |rate: Option<NonZeroU32>| rate.map(|r| RateLimiter::direct(Quota::per_second(r)));
        Some(Self {
            records: limiter(quotas.records_per_second),
            bytes: limiter(quotas.bytes_per_second),
            requests: limiter(quotas.requests_per_second),
            limits: *quotas,
        })
    }

    /// Takes one request from the request quota; false when the call must be refused.
    pub fn admit_request(&self) -> bool {
        self.requests.as_ref().is_none_or(|l| l.check().is_ok())
    }

    /// How many of these records (their sizes, in order) fit the record and byte quotas now.
    pub fn admit_records(&self, sizes: impl IntoIterator<Item = usize>) -> usize {
        let mut admitted = 0;
        for size in sizes {
            if let Some(records) = &self.records {
                if records.check().is_err() {
                    break;
                }
            }
            if let Some(bytes) = &self.bytes {
                // A record larger than one second's quota can never fit: it is throttled too.
                let fits = NonZeroU32::new(u32::try_from(size).unwrap_or(u32::MAX))
                    .is_none_or(|n| matches!(bytes.check_n(n), Ok(Ok(()))));
                if !fits {
                    break;
                }
            }
            admitted += 1;
        }
        admitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_past_the_quota_are_refused_in_order() {
        let q = Quotas { records_per_second: NonZeroU32::new(3), ..Default::default() };
        let t = Throttle::new(&q).unwrap();
        assert_eq!(t.admit_records([10, 10]), 2);
        assert_eq!(t.admit_records([10, 10, 10]), 1);
        assert_eq!(t.admit_records([10]), 0);
    }

    #[test]
    fn bytes_and_requests_have_their_own_quotas() {
        let q = Quotas {
            bytes_per_second: NonZeroU32::new(100),
            requests_per_second: NonZeroU32::new(1),
            ..Default::default()
        };
        let t = Throttle::new(&q).unwrap();
        assert!(t.admit_request());
        assert!(!t.admit_request());
        assert_eq!(t.admit_records([60, 30, 20]), 2);
        assert!(Throttle::new(&Quotas::default()).is_none());
    }
}
