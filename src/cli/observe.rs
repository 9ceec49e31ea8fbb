//! `sluice tap` and `sluice top`: watching a running daemon.
//!
//! `tap` prints live records of one pipeline stage (`GET /tap/<pipeline>`, NDJSON, signed with
//! the usual credentials for daemons with `api.auth`). `top` redraws a table of every pipeline's
//! rates, buffer fill, WAL bytes, data freshness and delivery latency every `--interval` seconds,
//! read from `/metrics`.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;

use sluice::aws::request::signed_get_headers;
use sluice::metrics::{scrape, sum, Scrape};

#[derive(clap::Args)]
pub struct TapArgs {
    /// The pipeline (delivery stream) to watch.
    pipeline: String,
    /// incoming | processed | delivered | failed
    #[arg(long, default_value = "processed")]
    stage: String,
    /// Stop after this many records.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Fraction of records shown (0 to 1).
    #[arg(long, default_value_t = 1.0)]
    sample: f64,
    /// Records per second at most (the daemon caps it at 10,000).
    #[arg(long, default_value_t = 100)]
    rate: u32,
    #[command(flatten)]
    daemon: super::daemon_address::DaemonArgs,
}

pub async fn tap(args: TapArgs) -> anyhow::Result<()> {
    let daemon = args.daemon.resolve()?;
    let url = format!(
        "{}/tap/{}?stage={}&limit={}&sample={}&rate={}",
        daemon.endpoint, args.pipeline, args.stage, args.limit, args.sample, args.rate
    );
    let mut request = daemon.http.get(&url);
    for (k, v) in signed_get_headers(&daemon.keys, "us-east-1", "firehose", &url).map_err(anyhow::Error::msg)? {
        request = request.header(k, v);
    }
    let response = request.send().await.with_context(|| format!("cannot reach {}", daemon.endpoint))?;
    if !response.status().is_success() {
        let status = response.status();
        bail!("{status}: {}", response.text().await.unwrap_or_default().trim());
    }
    let mut body = response.bytes_stream();
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = body.next().await {
        out.write_all(&chunk?)?;
        out.flush()?;
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct TopArgs {
    #[command(flatten)]
    daemon: super::daemon_address::DaemonArgs,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 2.0)]
    interval: f64,
    /// Print this many tables, then exit (default: until interrupted).
    #[arg(long)]
    iterations: Option<usize>,
}

/// `sluice_delivery_to_<destination>_<suffix>` for every destination kind.
fn delivery_series(suffix: &str) -> Vec<String> {
    sluice::config::destinations::delivery_metric_names().map(|d| format!("sluice_delivery_to_{d}_{suffix}")).collect()
}

pub async fn top(args: TopArgs) -> anyhow::Result<()> {
    let daemon = args.daemon.resolve()?;
    let url = format!("{}/metrics", daemon.endpoint);
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut previous: Option<(Instant, Scrape)> = None;
    let mut shown = 0;
    let (delivered, freshness) = (delivery_series("records_total"), delivery_series("data_freshness_seconds"));
    let delivered: Vec<&str> = delivered.iter().map(String::as_str).collect();
    let freshness: Vec<&str> = freshness.iter().map(String::as_str).collect();
    loop {
        let request = daemon.http.get(&url).timeout(Duration::from_secs(5));
        let text = request.send().await.with_context(|| format!("cannot reach {url}"))?.text().await?;
        let now = Instant::now();
        let m = scrape(&text);
        let streams: std::collections::BTreeSet<&String> = m.keys().map(|(_, s)| s).collect();
        // Clear the screen only on a terminal: piped into a file or `cat`, tables follow each other.
        let mut table = String::from(if terminal { "\x1b[2J\x1b[H" } else { "" });
        table += &format!(
            "{:<28} {:>11} {:>11} {:>9} {:>7} {:>12} {:>11} {:>11}\n",
            "PIPELINE", "IN/s", "DELIVERED/s", "FAILED/s", "BUFFER", "WAL BYTES", "OLDEST s", "LATENCY s"
        );
        for stream in streams {
            let rate = |names: &[&str]| match &previous {
                Some((at, before)) => {
                    let secs = now.duration_since(*at).as_secs_f64().max(0.001);
                    (sum(&m, stream, names) - sum(before, stream, names)).max(0.0) / secs
                }
                None => 0.0,
            };
            let latency = {
                let total = sum(&m, stream, &["sluice_delivery_latency_seconds_sum"]);
                let count = sum(&m, stream, &["sluice_delivery_latency_seconds_count"]);
                if count > 0.0 {
                    total / count
                } else {
                    0.0
                }
            };
            let limit = sum(&m, stream, &["sluice_buffer_limit_bytes"]);
            let fill = if limit > 0.0 { sum(&m, stream, &["sluice_buffered_bytes"]) / limit * 100.0 } else { 0.0 };
            table += &format!(
                "{:<28} {:>11.0} {:>11.0} {:>9.0} {:>6.0}% {:>12.0} {:>11.1} {:>11.2}\n",
                stream,
                rate(&["sluice_incoming_records_total", "sluice_data_read_from_kinesis_stream_records_total"]),
                rate(&delivered),
                rate(&["sluice_error_output_records_total"]),
                fill,
                sum(&m, stream, &["sluice_wal_bytes"]),
                sum(&m, stream, &freshness),
                latency,
            );
        }
        print!("{table}");
        std::io::stdout().flush()?;
        previous = Some((now, m));
        shown += 1;
        if args.iterations.is_some_and(|n| shown >= n) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs_f64(args.interval.max(0.2))).await;
    }
}
