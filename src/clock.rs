//! Wall-clock time as Firehose states it: milliseconds since the Unix epoch.
//!
//! Ground floor: imports nothing of ours.

use std::time::SystemTime;

/// Now, in epoch milliseconds (0 for a clock set before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
