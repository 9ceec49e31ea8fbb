//! The console's charts: every pipeline's rates and fill, sampled every [`EVERY`] for the last
//! [`KEPT`] samples (15 minutes), in memory. No external database: a restarted daemon starts its
//! charts afresh, which is what a console for one daemon needs (long-term history is Prometheus's
//! job, from `/metrics`).
//!
//! Samples are read back from the rendered metrics page, the same numbers `/metrics` and
//! `sluice top` show, so the three never disagree.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;

use crate::clock::now_ms;
use crate::daemon::Daemon;
use crate::metrics::{scrape, sum, Scrape};

/// How often a sample is taken.
pub const EVERY: Duration = Duration::from_secs(5);
/// Samples kept per pipeline: 15 minutes.
const KEPT: usize = 180;

/// One pipeline at one moment; rates are per second since the sample before.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Sample {
    pub at_ms: i64,
    pub in_per_s: f64,
    pub delivered_per_s: f64,
    pub failed_per_s: f64,
    pub buffered_bytes: f64,
    pub buffer_limit_bytes: f64,
    pub wal_bytes: f64,
    pub oldest_undelivered_s: f64,
}

#[derive(Default)]
pub struct History {
    series: Mutex<HashMap<String, VecDeque<Sample>>>,
    previous: Mutex<Option<(i64, Scrape)>>,
}

impl History {
    /// Starts sampling; the task ends with the runtime.
    pub fn spawn(daemon: Arc<Daemon>, metrics: PrometheusHandle) -> Arc<Self> {
        let history = Arc::new(History::default());
        let sampler = history.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                sampler.sample(&daemon, &metrics);
            }
        });
        history
    }

    fn sample(&self, daemon: &Daemon, metrics: &PrometheusHandle) {
        let pipelines = daemon.all();
        super::super::health::refresh_wal_gauges(&pipelines);
        let now = now_ms();
        let page = scrape(&metrics.render());
        let mut previous = self.previous.lock().unwrap_or_else(|p| p.into_inner());
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series.retain(|name, _| pipelines.iter().any(|p| &p.spec.name == name));
        for p in pipelines {
            let name = p.spec.name.as_str();
            let delivered = delivered_series(&p.spec);
            let rate = |names: &[&str]| match &*previous {
                Some((at, before)) => {
                    let seconds = ((now - at) as f64 / 1000.0).max(0.001);
                    (sum(&page, name, names) - sum(before, name, names)).max(0.0) / seconds
                }
                None => 0.0,
            };
            let sample = Sample {
                at_ms: now,
                in_per_s: rate(&["sluice_incoming_records_total"]),
                delivered_per_s: rate(&[delivered.as_str()]),
                failed_per_s: rate(&["sluice_error_output_records_total"]),
                buffered_bytes: sum(&page, name, &["sluice_buffered_bytes"]),
                buffer_limit_bytes: sum(&page, name, &["sluice_buffer_limit_bytes"]),
                wal_bytes: sum(&page, name, &["sluice_wal_bytes"]),
                oldest_undelivered_s: p
                    .status
                    .oldest_undelivered_ms()
                    .map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0),
            };
            let kept = series.entry(name.to_string()).or_default();
            if kept.len() == KEPT {
                kept.pop_front();
            }
            kept.push_back(sample);
        }
        *previous = Some((now, page));
    }

    /// A pipeline's samples, oldest first.
    pub fn of(&self, pipeline: &str) -> Vec<Sample> {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series.get(pipeline).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }
}

/// The counter of records its destination took: the sending destination's, else the store's.
fn delivered_series(spec: &crate::config::PipelineSpec) -> String {
    let destination = spec.sending.as_deref().map_or(spec.store.store.kind(), |s| s.metric_name());
    format!("sluice_delivery_to_{destination}_records_total")
}
