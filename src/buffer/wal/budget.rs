//! Bounded storage: bytes a WAL may hold, per pipeline and across all pipelines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug)]
pub struct StorageBudget {
    used: AtomicU64,
    limit: u64,
    parent: Option<Arc<StorageBudget>>,
}

impl StorageBudget {
    pub fn new(limit: u64, parent: Option<Arc<StorageBudget>>) -> Arc<Self> {
        Arc::new(Self { used: AtomicU64::new(0), limit, parent })
    }

    /// Reserves `n` bytes here and in every parent, or nothing at all.
    pub fn try_reserve(&self, n: u64) -> bool {
        let reserved = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| u.checked_add(n).filter(|&t| t <= self.limit))
            .is_ok();
        if !reserved {
            return false;
        }
        if let Some(parent) = &self.parent {
            if !parent.try_reserve(n) {
                self.used.fetch_sub(n, Ordering::AcqRel);
                return false;
            }
        }
        true
    }

    /// Bytes that could be reserved right now (the tightest of this budget and its parents).
    pub fn available(&self) -> u64 {
        let here = self.limit.saturating_sub(self.used.load(Ordering::Acquire));
        self.parent.as_ref().map_or(here, |p| here.min(p.available()))
    }

    /// Counts bytes found on disk at start-up; may exceed the limit (then puts fail until delivery catches up).
    pub fn force_reserve(&self, n: u64) {
        self.used.fetch_add(n, Ordering::AcqRel);
        if let Some(parent) = &self.parent {
            parent.force_reserve(n);
        }
    }

    pub fn release(&self, n: u64) {
        let _ = self.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| Some(u.saturating_sub(n)));
        if let Some(parent) = &self.parent {
            parent.release(n);
        }
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_and_parent_limits_both_apply() {
        let global = StorageBudget::new(100, None);
        let a = StorageBudget::new(60, Some(global.clone()));
        let b = StorageBudget::new(60, Some(global.clone()));
        assert!(a.try_reserve(60));
        assert!(!a.try_reserve(1), "child limit");
        assert!(!b.try_reserve(41), "parent limit");
        assert_eq!(a.used(), 60);
        assert_eq!(b.used(), 0, "a failed reservation leaves nothing behind");
        assert_eq!(b.available(), 40);
        a.release(60);
        assert!(b.try_reserve(60));
        assert_eq!(global.used(), 60);
    }
}
