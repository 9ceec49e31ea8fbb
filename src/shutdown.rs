//! A process-wide request to shut down as on SIGTERM, for a source that has ended (stdin at end of
//! input): the daemon delivers everything first, then exits 0.
//!
//! A signal, like SIGTERM itself, rather than a context value: whoever ends the input cannot know
//! which daemon loop is waiting, and there is one per process. Ground floor: imports nothing of ours.

use std::sync::OnceLock;

use tokio::sync::Notify;

static SHUTDOWN: OnceLock<Notify> = OnceLock::new();

/// Asks the daemon to shut down. `notify_one` keeps a permit when nobody waits yet, so an early end
/// is not missed.
pub fn request_shutdown() {
    SHUTDOWN.get_or_init(Notify::new).notify_one();
}

/// Resolves once a shutdown was requested.
pub async fn shutdown_requested() {
    SHUTDOWN.get_or_init(Notify::new).notified().await;
}
