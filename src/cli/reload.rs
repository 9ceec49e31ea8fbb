//! Reloading the config on SIGHUP, and with `--watch-config` when a config file or a WASM module
//! changes (checked every two seconds; polling works on every filesystem, NFS and container
//! mounts included). The daemon applies it (`daemon::reload`); this side reads the files and
//! reports: an invalid config is refused whole, with a log line per problem (its file, line,
//! column, field and message as fields, so a JSON log carries them), a summary line,
//! `sluice_config_reloads_total{result="refused"}` and `sluice_config_reload_failed` 1.

use std::sync::Arc;
use std::time::Duration;

use sluice::daemon::Daemon;

use super::config_source::{ConfigSource, Overrides};

const WATCH_EVERY: Duration = Duration::from_secs(2);

pub fn spawn(daemon: Arc<Daemon>, source: ConfigSource, overrides: Overrides, watch: bool) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            // Without a handler SIGHUP's default action would end the daemon.
            tracing::error!(error = %e, "cannot handle SIGHUP: reload with a restart instead");
            return;
        }
    };
    metrics::gauge!("sluice_config_reload_failed").set(0.0);
    tokio::spawn(async move {
        let mut seen = source.fingerprint();
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    tracing::info!("SIGHUP received: reloading the config");
                }
                _ = tick.tick(), if watch => {
                    let now = source.fingerprint();
                    if now == seen && !daemon.modules_changed() {
                        continue;
                    }
                    tracing::info!("the config or a plugin module changed: reloading");
                }
            }
            seen = source.fingerprint();
            reload(&daemon, &source, &overrides).await;
        }
    });
}

async fn reload(daemon: &Arc<Daemon>, source: &ConfigSource, overrides: &Overrides) {
    let loaded = {
        let source = source.clone();
        tokio::task::spawn_blocking(move || source.load_checked()).await
    };
    let result = match loaded {
        Ok(Ok(cfg)) => daemon.reload(overrides.apply(cfg)).await.map_err(|e| e.to_string()),
        Ok(Err(errors)) => {
            for e in &errors.0 {
                tracing::error!(file = %e.origin, line = e.line, column = e.column, field = %e.field, problem = %e.message, "config problem");
            }
            let n = errors.0.len();
            let list: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
            Err(format!("the config is invalid ({n} problem{}): {}", if n == 1 { "" } else { "s" }, list.join("; ")))
        }
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(report) => {
            metrics::counter!("sluice_config_reloads_total", "result" => "applied").increment(1);
            metrics::gauge!("sluice_config_reload_failed").set(0.0);
            tracing::info!(added = ?report.added, removed = ?report.removed, changed = ?report.changed, "config reloaded");
        }
        Err(why) => {
            metrics::counter!("sluice_config_reloads_total", "result" => "refused").increment(1);
            metrics::gauge!("sluice_config_reload_failed").set(1.0);
            tracing::error!(reason = %why, "config reload refused; the running config stays in effect");
        }
    }
}
