//! The running daemon: the set of pipelines, auto-creation, and orderly shutdown.
//! `control.rs` adds, changes and removes pipelines for the control-plane API.

mod control;
pub mod reload;

pub use control::ControlError;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use thiserror::Error;
use tokio::task::JoinHandle;

use crate::buffer::wal::StorageBudget;
use crate::config::{valid_stream_name, Config};
use crate::pipeline::{self, PipelineError, PipelineHandle};

#[derive(Debug, Error)]
pub enum LookupError {
    #[error("Firehose {name} under account {account} not found.")]
    NotFound { name: String, account: String },
    #[error("Firehose {name} under account {account} not found. sluice creates streams on first use only up to auto_create.max_streams ({max}), and has reached it.")]
    AutoCreateLimit { name: String, account: String, max: usize },
    /// The stream's pipeline is being replaced (UpdateDestination) or closed after idling; a
    /// retry finds it again.
    #[error("delivery stream {0} is being reconfigured or reopened; retry")]
    Closing(String),
    #[error("{0}")]
    Failed(String),
}

pub use crate::shutdown::{request_shutdown, shutdown_requested};

pub struct Daemon {
    pub config: Config,
    global_budget: Arc<StorageBudget>,
    pipelines: RwLock<BTreeMap<String, Arc<PipelineHandle>>>,
    /// Each pipeline's task, by stream name.
    tasks: Mutex<BTreeMap<String, JoinHandle<()>>>,
    /// Auto-created streams being closed: their WAL must not be reopened until the task ends.
    closing: Mutex<BTreeSet<String>>,
    /// Streams created over the API (`None` without a `control_plane:` section).
    control: Option<control::ControlState>,
    /// The pipelines declared in the config as now running (a reload changes them), with the
    /// modification times of their plugin modules when they started.
    declared: RwLock<Vec<reload::Declared>>,
}

impl Daemon {
    /// Who this daemon is in ARNs and messages (`api.account_id`, `api.region`).
    pub fn identity(&self) -> &crate::identity::Identity {
        &self.config.identity
    }

    /// Firehose's ResourceNotFound for a stream of this account.
    pub fn not_found(&self, name: &str) -> LookupError {
        LookupError::NotFound { name: name.to_string(), account: self.config.identity.account_id.clone() }
    }

    /// Starts every configured pipeline, and every auto-created one that left a WAL behind, so
    /// undelivered records are replayed even if nobody puts to that stream again.
    pub fn start(config: Config) -> Result<Arc<Self>, PipelineError> {
        let global_budget = StorageBudget::new(config.storage.max_bytes, None);
        let control = control::ControlState::open(&config).map_err(|e| PipelineError::Processor {
            name: "control_plane".into(),
            message: format!("cannot open the stored delivery streams: {e}"),
        })?;
        let daemon = Arc::new(Self {
            config,
            global_budget,
            pipelines: RwLock::new(BTreeMap::new()),
            tasks: Mutex::new(BTreeMap::new()),
            closing: Mutex::new(BTreeSet::new()),
            control,
            declared: RwLock::new(Vec::new()),
        });
        for spec in daemon.config.pipelines.clone() {
            daemon.launch(spec.clone())?;
            daemon.declared.write().unwrap_or_else(|p| p.into_inner()).push(reload::Declared::new(spec));
        }
        daemon.start_stored_streams();
        let dir = daemon.config.storage.dir.join("pipelines");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if daemon.get(&name).is_some() || !valid_stream_name(&name) {
                    continue;
                }
                if !has_records(&entry.path().join("wal")) {
                    continue; // an auto-created stream that delivered everything: opened on its next put
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
        let (handle, task) =
            pipeline::start(spec, &self.config.storage, self.global_budget.clone(), &self.config.identity)?;
        self.pipelines.write().unwrap_or_else(|p| p.into_inner()).insert(name.clone(), handle.clone());
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).insert(name, task);
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
        // Being swapped (UpdateDestination, encryption) or closed: a retry finds it again.
        if self.closing.lock().unwrap_or_else(|p| p.into_inner()).contains(name) {
            return Err(LookupError::Closing(name.to_string()));
        }
        let Some(auto) = &self.config.auto_create else {
            return Err(self.not_found(name));
        };
        if !valid_stream_name(name) {
            return Err(self.not_found(name));
        }
        // Serialise creation so two first puts do not open the same WAL twice.
        let mut pipelines = self.pipelines.write().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = pipelines.get(name) {
            return Ok(p.clone());
        }
        if self.closing.lock().unwrap_or_else(|p| p.into_inner()).contains(name) {
            return Err(LookupError::Closing(name.to_string()));
        }
        let auto_created = pipelines.len().saturating_sub(self.declared_names().len() + self.api_stream_count());
        if auto_created >= auto.max_streams {
            metrics::counter!("sluice_auto_create_refused_total").increment(1);
            return Err(LookupError::AutoCreateLimit {
                name: name.to_string(),
                account: self.config.identity.account_id.clone(),
                max: auto.max_streams,
            });
        }
        let (handle, task) = pipeline::start(
            auto.instantiate(name),
            &self.config.storage,
            self.global_budget.clone(),
            &self.config.identity,
        )
        .map_err(|e| LookupError::Failed(e.to_string()))?;
        tracing::info!(stream = %name, "created delivery stream from the auto_create template");
        pipelines.insert(name.to_string(), handle.clone());
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), task);
        Ok(handle)
    }

    /// Names of the pipelines declared in the config (as last loaded).
    pub fn declared_names(&self) -> BTreeSet<String> {
        self.declared.read().unwrap_or_else(|p| p.into_inner()).iter().map(|d| d.spec.name.clone()).collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.pipelines.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }

    pub fn all(&self) -> Vec<Arc<PipelineHandle>> {
        self.pipelines.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Closes auto-created streams that have delivered everything and had no put for
    /// `auto_create.idle_close`: their thread, descriptors and memory are given back. A later put
    /// (or a restart) opens the stream again from its WAL directory.
    pub async fn close_idle_streams(&self) {
        let Some(auto) = &self.config.auto_create else { return };
        let idle_since = crate::clock::now_ms() - auto.idle_close.as_millis() as i64;
        let declared = self.declared_names();
        let idle: Vec<Arc<PipelineHandle>> = {
            let mut pipelines = self.pipelines.write().unwrap_or_else(|p| p.into_inner());
            let names: Vec<String> = pipelines
                .iter()
                .filter(|(name, p)| {
                    !declared.contains(name.as_str())
                        && self.stored_stream(name).is_none()
                        && p.status.drained()
                        && p.status.last_put_ms().max(to_ms(p.created_at)) < idle_since
                })
                .map(|(name, _)| name.clone())
                .collect();
            let mut closing = self.closing.lock().unwrap_or_else(|p| p.into_inner());
            names
                .into_iter()
                .filter_map(|name| {
                    closing.insert(name.clone());
                    pipelines.remove(&name)
                })
                .collect()
        };
        for p in idle {
            let name = p.spec.name.clone();
            p.ingest.close().await;
            let task = self.tasks.lock().unwrap_or_else(|p| p.into_inner()).remove(&name);
            if let Some(task) = task {
                let _ = task.await;
            }
            self.closing.lock().unwrap_or_else(|p| p.into_inner()).remove(&name);
            tracing::info!(stream = %name, "closed an idle auto-created delivery stream");
        }
    }

    /// Checks every pipeline's destination at once (reachable, credentials, writable where that
    /// can be tested without side effects), records the outcome for `/ready` and returns the
    /// failures. `only_failing` re-checks just the pipelines whose last check failed.
    pub async fn check_destinations(&self, only_failing: bool) -> Vec<(String, String)> {
        let pipelines = self.all();
        let checks = pipelines.iter().flat_map(|p| {
            p.destinations.iter().filter(move |d| !only_failing || d.status.check_error().is_some()).map(
                move |d| async move {
                    let outcome = d.probe.check().await;
                    d.status.set_check(outcome.clone());
                    let label = match &d.name {
                        Some(route) => format!("{} (destination {route})", p.spec.name),
                        None => p.spec.name.clone(),
                    };
                    (label, outcome)
                },
            )
        });
        futures::future::join_all(checks)
            .await
            .into_iter()
            .filter_map(|(name, outcome)| outcome.err().map(|e| (name, e)))
            .collect()
    }

    /// Stops intake, then lets every pipeline flush its buffers and finish its uploads. Returns
    /// false if `timeout` passed first; whatever was not delivered stays in the WAL for next start.
    pub async fn shutdown(&self, timeout: Duration) -> bool {
        for p in self.all() {
            p.ingest.close().await;
        }
        let tasks: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner())).into_values().collect();
        let all = futures::future::join_all(tasks);
        tokio::time::timeout(timeout, all).await.is_ok()
    }
}

fn to_ms(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Whether a WAL directory may hold records: a segment longer than its 8-byte header. Cheap (no
/// reads), so a restart does not reopen every stream ever auto-created.
pub(crate) fn has_records(wal: &std::path::Path) -> bool {
    let Ok(entries) = std::fs::read_dir(wal) else { return false };
    entries
        .flatten()
        .any(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".wal")) && e.metadata().is_ok_and(|m| m.len() > 8))
}
