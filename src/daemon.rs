//! The running daemon: the set of pipelines, auto-creation, and orderly shutdown.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use thiserror::Error;
use tokio::task::JoinHandle;

use crate::buffer::wal::StorageBudget;
use crate::config::{valid_stream_name, Config};
use crate::pipeline::{self, PipelineError, PipelineHandle};

#[derive(Debug, Error)]
pub enum LookupError {
    #[error("Firehose {0} under account {ACCOUNT_ID} not found.")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
}

/// Firehose ARNs need an account; sluice has none, so it uses the placeholder AWS emulators use.
pub const ACCOUNT_ID: &str = "000000000000";

pub struct Daemon {
    pub config: Config,
    global_budget: Arc<StorageBudget>,
    pipelines: RwLock<BTreeMap<String, Arc<PipelineHandle>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Daemon {
    /// Starts every configured pipeline, and every auto-created one that left a WAL behind, so
    /// undelivered records are replayed even if nobody puts to that stream again.
    pub fn start(config: Config) -> Result<Arc<Self>, PipelineError> {
        let global_budget = StorageBudget::new(config.storage.max_bytes, None);
        let daemon = Arc::new(Self {
            config,
            global_budget,
            pipelines: RwLock::new(BTreeMap::new()),
            tasks: Mutex::new(Vec::new()),
        });
        for spec in daemon.config.pipelines.clone() {
            daemon.launch(spec)?;
        }
        let dir = daemon.config.storage.dir.join("pipelines");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if daemon.get(&name).is_some() || !valid_stream_name(&name) {
                    continue;
                }
                match &daemon.config.auto_create {
                    Some(auto) => {
                        daemon.launch(auto.instantiate(&name))?;
                    }
                    None => {
                        tracing::warn!(stream = %name, dir = %entry.path().display(), "a WAL exists for a stream that is no longer configured; its records are kept but not delivered")
                    }
                }
            }
        }
        Ok(daemon)
    }

    fn launch(&self, spec: crate::config::PipelineSpec) -> Result<Arc<PipelineHandle>, PipelineError> {
        let name = spec.name.clone();
        let (handle, task) = pipeline::start(spec, &self.config.storage, self.global_budget.clone())?;
        self.pipelines.write().unwrap_or_else(|p| p.into_inner()).insert(name, handle.clone());
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).push(task);
        Ok(handle)
    }

    pub fn get(&self, name: &str) -> Option<Arc<PipelineHandle>> {
        self.pipelines.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// The pipeline for a stream name, created from the auto-create template if needed.
    pub fn lookup(&self, name: &str) -> Result<Arc<PipelineHandle>, LookupError> {
        if let Some(p) = self.get(name) {
            return Ok(p);
        }
        let Some(auto) = &self.config.auto_create else {
            return Err(LookupError::NotFound(name.to_string()));
        };
        if !valid_stream_name(name) {
            return Err(LookupError::NotFound(name.to_string()));
        }
        // Serialise creation so two first puts do not open the same WAL twice.
        let mut pipelines = self.pipelines.write().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = pipelines.get(name) {
            return Ok(p.clone());
        }
        let (handle, task) = pipeline::start(auto.instantiate(name), &self.config.storage, self.global_budget.clone())
            .map_err(|e| LookupError::Failed(e.to_string()))?;
        tracing::info!(stream = %name, "created delivery stream from the auto_create template");
        pipelines.insert(name.to_string(), handle.clone());
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).push(task);
        Ok(handle)
    }

    pub fn names(&self) -> Vec<String> {
        self.pipelines.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }

    pub fn all(&self) -> Vec<Arc<PipelineHandle>> {
        self.pipelines.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Stops intake, then lets every pipeline flush its buffers and finish its uploads. Returns
    /// false if `timeout` passed first; whatever was not delivered stays in the WAL for next start.
    pub async fn shutdown(&self, timeout: Duration) -> bool {
        for p in self.all() {
            p.ingest.close().await;
        }
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        let all = futures::future::join_all(tasks);
        tokio::time::timeout(timeout, all).await.is_ok()
    }
}
