//! `source: journald`: the systemd journal as a pipeline's source, one JSON record per entry.
//!
//! The journal is a durable log of its own, so entries are not copied into the WAL. A thread runs
//! `journalctl -o json --follow` (filtered by `units` and `matches`, on the host's journal or on
//! a `directory` of journal files) and hands each entry to this source with its `__CURSOR`; when
//! delivery passes an entry its cursor becomes the checkpoint (`journald-checkpoint.json`,
//! written at most once a second and at shutdown), and a restart continues with
//! `--after-cursor`. If journalctl exits it is started again after the last entry read, and
//! `/ready` says why until it runs again. Reading journalctl's output rather than linking
//! libsystemd keeps the binary free of a C dependency; journalctl's JSON is the journal's own
//! export of every field.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::positions::{Moved, Positions};
use super::{CheckpointPacer, Source, SourceError};
use config::JournaldSpec;

pub mod config;
use crate::record::{Record, Seq};

/// Entries handed over per message, at most.
const ENTRIES_PER_READ: usize = 2_000;
const READS_IN_FLIGHT: usize = 8;
/// The one part of this source's positions: the journal is one ordered log.
const JOURNAL: &str = "journal";

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct JournalCheckpoint {
    /// The pipeline's watermark when written.
    delivered_below: Seq,
    /// Every entry up to and including this cursor is delivered.
    cursor: Option<String>,
}

/// Entries read, each with its cursor.
type Entries = Vec<(String, Bytes)>;

pub struct JournaldSource {
    closer: Box<dyn Source>,
    rx: mpsc::Receiver<Entries>,
    checkpoint: JournalCheckpoint,
    path: PathBuf,
    positions: Positions<String>,
    delivered_below: Seq,
    pacer: CheckpointPacer,
    /// The running journalctl, killed when the source goes away.
    child: Arc<Mutex<Option<Child>>>,
    pipeline: String,
}

impl JournaldSource {
    pub fn open(
        spec: &JournaldSpec,
        dir: &Path,
        pipeline: &str,
        closer: Box<dyn Source>,
        status: Arc<crate::status::PipelineStatus>,
    ) -> Result<Self, String> {
        let path = dir.join("journald-checkpoint.json");
        let (checkpoint, first_run) = match std::fs::read(&path) {
            Ok(bytes) => (
                serde_json::from_slice::<JournalCheckpoint>(&bytes)
                    .map_err(|e| format!("{} is not a journald checkpoint: {e}", path.display()))?,
                false,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (JournalCheckpoint::default(), true),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let (tx, rx) = mpsc::channel(READS_IN_FLIGHT);
        let child = Arc::new(Mutex::new(None));
        let reader = Reader {
            spec: spec.clone(),
            after: checkpoint.cursor.clone(),
            from_end: first_run && spec.since_now,
            tx,
            child: child.clone(),
            status,
            pipeline: pipeline.to_string(),
        };
        std::thread::Builder::new()
            .name(format!("journal-{pipeline}"))
            .spawn(move || reader.run())
            .map_err(|e| format!("cannot start the journal reader thread: {e}"))?;
        Ok(Self {
            closer,
            rx,
            delivered_below: checkpoint.delivered_below,
            positions: Positions::new(checkpoint.delivered_below),
            checkpoint,
            path,
            pacer: CheckpointPacer::default(),
            child,
            pipeline: pipeline.to_string(),
        })
    }

    fn stop_journalctl(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for JournaldSource {
    fn drop(&mut self) {
        self.rx.close();
        self.stop_journalctl();
    }
}

#[async_trait]
impl Source for JournaldSource {
    fn delivered_below(&self) -> Seq {
        self.delivered_below
    }

    async fn next_batch(&mut self, max_bytes: usize) -> Result<Option<Vec<Record>>, SourceError> {
        loop {
            tokio::select! {
                entries = self.rx.recv() => {
                    let Some(entries) = entries else { return Ok(None) };
                    let arrival_ms = crate::clock::now_ms();
                    let mut out = Vec::with_capacity(entries.len());
                    self.positions.number(Arc::from(JOURNAL), 0, entries, |seq, data| {
                        out.push(Record::new(seq, arrival_ms, data))
                    });
                    return Ok(Some(out));
                }
                end = self.closer.next_batch(max_bytes) => {
                    // Shutdown: entries read but not handed over are read again after the cursor.
                    if end?.is_none() {
                        self.rx.close();
                        self.stop_journalctl();
                        return Ok(None);
                    }
                }
            }
        }
    }

    async fn commit(&mut self, delivered_below: Seq, force: bool) -> Result<(), SourceError> {
        self.delivered_below = delivered_below;
        let checkpoint = &mut self.checkpoint;
        let mut changed = false;
        self.positions.advance(delivered_below, |moved| {
            if let Moved::Position { position, .. } = moved {
                checkpoint.cursor = Some(position);
                changed = true;
            }
        });
        if delivered_below > checkpoint.delivered_below {
            checkpoint.delivered_below = delivered_below;
            changed = true;
        }
        let (path, checkpoint) = (&self.path, &self.checkpoint);
        self.pacer.persist(changed, force, &self.pipeline, "journal entries", || {
            crate::durable_file::replace_json(path, checkpoint)
        });
        self.closer.commit(0, force).await
    }
}

/// Runs journalctl and hands its entries over, starting it again when it exits.
struct Reader {
    spec: JournaldSpec,
    /// The last entry read: journalctl continues after it.
    after: Option<String>,
    from_end: bool,
    tx: mpsc::Sender<Entries>,
    child: Arc<Mutex<Option<Child>>>,
    status: Arc<crate::status::PipelineStatus>,
    pipeline: String,
}

#[derive(Deserialize)]
struct Cursor<'a> {
    #[serde(rename = "__CURSOR", borrow)]
    cursor: std::borrow::Cow<'a, str>,
}

impl Reader {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.spec.journalctl);
        cmd.args(["--output=json", "--follow", "--no-pager", "--quiet"]);
        // `--follow` implies `--lines=10`: without `--no-tail` only 10 entries after the cursor
        // would be shown before following.
        match &self.after {
            Some(cursor) => {
                cmd.arg(format!("--after-cursor={cursor}"));
                cmd.arg("--no-tail");
            }
            None if self.from_end => {
                cmd.arg("--lines=0");
            }
            None => {
                cmd.arg("--no-tail");
            }
        }
        if let Some(dir) = &self.spec.directory {
            cmd.arg(format!("--directory={dir}"));
        }
        for unit in &self.spec.units {
            cmd.arg(format!("--unit={unit}"));
        }
        cmd.args(&self.spec.matches);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }

    fn run(mut self) {
        let mut backoff = Duration::from_millis(500);
        while !self.tx.is_closed() {
            let started = Instant::now();
            let outcome = self.follow();
            if self.tx.is_closed() {
                return;
            }
            let problem = match outcome {
                Ok(why) => why,
                Err(e) => format!("cannot run {}: {e}", self.spec.journalctl),
            };
            self.status.set_source_problem(Some(problem.clone()));
            tracing::warn!(pipeline = %self.pipeline, problem = %problem, "journalctl stopped; starting it again after the last entry read");
            if started.elapsed() > Duration::from_secs(30) {
                backoff = Duration::from_millis(500);
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    /// Runs journalctl once, until it exits; `Ok(why it stopped)`.
    fn follow(&mut self) -> std::io::Result<String> {
        let mut child = self.command().spawn()?;
        let (Some(stdout), stderr) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            return Ok("journalctl gave no output pipe".into());
        };
        *self.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        self.status.set_source_problem(None);
        let mut out = BufReader::with_capacity(1 << 20, stdout);
        let mut entries: Entries = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = out.read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            match serde_json::from_slice::<Cursor>(&line) {
                Ok(c) => {
                    let cursor = c.cursor.into_owned();
                    if !line.ends_with(b"\n") {
                        line.push(b'\n');
                    }
                    entries.push((cursor, Bytes::copy_from_slice(&line)));
                }
                Err(e) => {
                    tracing::warn!(pipeline = %self.pipeline, error = %e, "journalctl printed a line that is not a journal entry; skipped");
                }
            }
            // Hand over when a read would wait (nothing more buffered) or the batch is full.
            if !entries.is_empty() && (out.buffer().is_empty() || entries.len() >= ENTRIES_PER_READ) {
                self.after = entries.last().map(|(c, _)| c.clone());
                if self.tx.blocking_send(std::mem::take(&mut entries)).is_err() {
                    break;
                }
            }
        }
        let mut err = String::new();
        if let Some(stderr) = stderr {
            let _ = stderr.take(4096).read_to_string(&mut err);
        }
        let status = self.child.lock().unwrap_or_else(|p| p.into_inner()).take().map(|mut c| c.wait());
        let code = match status {
            Some(Ok(s)) => s.to_string(),
            _ => "stopped".into(),
        };
        Ok(format!("journalctl exited ({code}): {}", err.trim()))
    }
}
