//! `source: file`: tailed files as a pipeline's source, in the Kinesis Agent's and Vector's role.
//!
//! A file is its own durable log, so lines are not copied into the WAL: `tailer.rs` reads them on
//! a thread of its own, this source numbers them in the pipeline's sequence space
//! (`positions.rs`) and, as delivery passes them, moves each file's offset in the checkpoint
//! (`checkpoint.rs`), written at most once a second and at shutdown. A restart or a `kill -9`
//! resumes at the last written offsets: nothing is lost, and what is read twice is at most what
//! was read but not yet checkpointed (the README gives the bound).
//!
//! As for the Kinesis source, the pipeline's (empty) WAL only carries the shutdown signal.

mod checkpoint;
pub mod config;
mod tailer;

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::positions::{Moved, Positions};
use super::{CheckpointPacer, Source, SourceError};
use crate::record::{Record, Seq};
use checkpoint::FileCheckpoint;
use config::FileSourceSpec;
use tailer::{TailMsg, Tailer};

/// Reads handed over but not yet taken by the pipeline (each at most a megabyte of lines).
const READS_IN_FLIGHT: usize = 16;

pub struct FileSource {
    closer: Box<dyn Source>,
    rx: mpsc::Receiver<TailMsg>,
    checkpoint: Arc<Mutex<FileCheckpoint>>,
    positions: Positions<u64>,
    delivered_below: Seq,
    pacer: CheckpointPacer,
    pipeline: String,
}

impl FileSource {
    pub fn open(
        spec: &FileSourceSpec,
        dir: &Path,
        pipeline: &str,
        closer: Box<dyn Source>,
        status: Arc<crate::status::PipelineStatus>,
    ) -> Result<Self, String> {
        let checkpoint = FileCheckpoint::load(&dir.join("file-checkpoint.json")).map_err(|e| e.to_string())?;
        let delivered_below = checkpoint.delivered_below;
        let checkpoint = Arc::new(Mutex::new(checkpoint));
        let (tx, rx) = mpsc::channel(READS_IN_FLIGHT);
        let tailer = Tailer::new(spec.clone(), checkpoint.clone(), tx, pipeline, status)?;
        std::thread::Builder::new()
            .name(format!("tail-{pipeline}"))
            .spawn(move || tailer.run())
            .map_err(|e| format!("cannot start the file reader thread: {e}"))?;
        Ok(Self {
            closer,
            rx,
            checkpoint,
            positions: Positions::new(delivered_below),
            delivered_below,
            pacer: CheckpointPacer::default(),
            pipeline: pipeline.to_string(),
        })
    }

    fn advance(&mut self, delivered_below: Seq) -> bool {
        let mut changed = false;
        let mut checkpoint = self.checkpoint.lock().unwrap_or_else(|p| p.into_inner());
        self.positions.advance(delivered_below, |moved| {
            changed = true;
            match moved {
                Moved::Position { part, generation, position } => checkpoint.delivered(part, generation, position),
                Moved::Ended { part, generation, .. } => checkpoint.forget(part, generation),
            }
        });
        if delivered_below > checkpoint.delivered_below {
            checkpoint.delivered_below = delivered_below;
            changed = true;
        }
        changed
    }
}

#[async_trait]
impl Source for FileSource {
    fn delivered_below(&self) -> Seq {
        self.delivered_below
    }

    async fn next_batch(&mut self, max_bytes: usize) -> Result<Option<Vec<Record>>, SourceError> {
        loop {
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(TailMsg::Lines(lines)) => {
                        let arrival_ms = crate::clock::now_ms();
                        let mut out = Vec::with_capacity(lines.records.len());
                        self.positions.number(lines.key, lines.generation, lines.records, |seq, data| {
                            out.push(Record::new(seq, arrival_ms, data))
                        });
                        if !out.is_empty() {
                            return Ok(Some(out));
                        }
                    }
                    Some(TailMsg::Released { key, generation }) => {
                        self.positions.end(key, generation, false);
                        self.advance(self.delivered_below);
                    }
                    // The reader stopped (it only does when this source is dropped).
                    None => return Ok(None),
                },
                end = self.closer.next_batch(max_bytes) => {
                    // Shutdown: lines read but not handed over are read again from the checkpoint.
                    if end?.is_none() {
                        self.rx.close();
                        return Ok(None);
                    }
                }
            }
        }
    }

    async fn commit(&mut self, delivered_below: Seq, force: bool) -> Result<(), SourceError> {
        self.delivered_below = delivered_below;
        let changed = self.advance(delivered_below);
        let checkpoint = &self.checkpoint;
        self.pacer.persist(changed, force, &self.pipeline, "lines", || {
            checkpoint.lock().unwrap_or_else(|p| p.into_inner()).clone().save()
        });
        self.closer.commit(0, force).await
    }
}
