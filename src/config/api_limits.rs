//! `api:` limits that protect the listener from abusive or broken clients (see `api::server`).

use std::time::Duration;

use serde_saphyr::Spanned;

use super::validate::ConfigError;
use super::RawApi;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    /// How long after records were given up to the error prefix `/ready` says so (0: never).
    pub give_up_window: Duration,
}

impl Default for ApiLimits {
    /// Sized so that a 2-core box keeps serving its producers while a thousand idle or slow
    /// connections are open: those are cut off after 20 s, or refused past 4,096.
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_timeout: Duration::from_secs(20),
            body_timeout: Duration::from_secs(30),
            give_up_window: Duration::from_secs(300),
        }
    }
}

pub(super) fn validate(raw: &RawApi, errors: &mut Vec<ConfigError>, origin: &str) -> ApiLimits {
    let defaults = ApiLimits::default();
    let mut check =
        |value: &Option<Spanned<u64>>, field: &str, range: std::ops::RangeInclusive<u64>, default: Duration| {
            let Some(v) = value else { return default };
            if !range.contains(&v.value) {
                errors.push(ConfigError::at(
                    origin,
                    v,
                    field,
                    format!("must be between {} and {} seconds", range.start(), range.end()),
                ));
            }
            Duration::from_secs(v.value)
        };
    let header_timeout =
        check(&raw.header_timeout_seconds, "api.header_timeout_seconds", 1..=3600, defaults.header_timeout);
    let body_timeout = check(&raw.body_timeout_seconds, "api.body_timeout_seconds", 1..=3600, defaults.body_timeout);
    let give_up_window = check(
        &raw.not_ready_after_give_up_seconds,
        "api.not_ready_after_give_up_seconds",
        0..=86_400,
        defaults.give_up_window,
    );
    let max_connections = match &raw.max_connections {
        Some(m) if !(1..=1_000_000).contains(&m.value) => {
            errors.push(ConfigError::at(origin, m, "api.max_connections", "must be between 1 and 1000000".into()));
            m.value
        }
        Some(m) => m.value,
        None => defaults.max_connections,
    };
    ApiLimits { max_connections, header_timeout, body_timeout, give_up_window }
}
