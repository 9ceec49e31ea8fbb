//! systemd integration for `Type=notify` units (deploy/systemd/sluice.service): READY once the API
//! listens and every pipeline has started, STOPPING when shutdown begins, and WATCHDOG pings at half
//! the unit's `WatchdogSec` while the runtime is alive. Every call is a no-op without NOTIFY_SOCKET.

use std::time::Duration;

use sd_notify::NotifyState;

pub fn ready(status: &str) {
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)]) {
        tracing::warn!(error = %e, "cannot tell systemd the service is ready");
    }
}

pub fn stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping, NotifyState::Status("flushing buffers")]);
}

/// Pings the watchdog at half its interval, if the unit has one.
pub fn spawn_watchdog() {
    let Some(interval) = sd_notify::watchdog_enabled() else { return };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval((interval / 2).max(Duration::from_millis(100)));
        loop {
            tick.tick().await;
            let _ = sd_notify::notify(&[NotifyState::Watchdog]);
        }
    });
}
