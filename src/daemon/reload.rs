//! Hot reload: a new config (SIGHUP, or `--watch-config` seeing a file change) applied to the
//! running daemon without a restart.
//!
//! Only `pipelines:` are applied; the new config is validated whole first, and an invalid one is
//! refused whole (the old one keeps running; the log has `sluice validate`'s messages and
//! `sluice_config_reload_failed` is 1). Then, per declared pipeline:
//! - **added**: started (if an auto-created stream of that name runs, it is swapped for it);
//! - **removed**: intake closes and it **drains**: everything buffered or in its WAL is
//!   delivered before it stops (a shutdown timeout does not apply; the WAL directory stays);
//! - **changed** (any setting, or a WASM module file modified since it started): swapped, exactly
//!   as UpdateDestination does: intake answers 503 (retryable) for the moment it takes, the old
//!   pipeline delivers what it buffered under the old settings, the new one continues from the
//!   same WAL, so nothing is lost and nothing is sent twice.
//!
//! Changes to other sections (listen address, storage, security, auto_create, control_plane) need
//! a restart: the reload says so in the log and applies the pipelines anyway.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use super::Daemon;
use crate::config::{Config, PipelineSpec, ProcessorSpec};

/// A pipeline declared in the config, as started.
pub struct Declared {
    pub spec: PipelineSpec,
    /// Plugin module files and their modification times when the pipeline started.
    modules: Vec<(PathBuf, Option<SystemTime>)>,
}

impl Declared {
    pub fn new(spec: PipelineSpec) -> Self {
        let modules = module_paths(&spec).into_iter().map(|p| (p.clone(), modified(&p))).collect();
        Self { spec, modules }
    }

    fn modules_changed(&self) -> bool {
        self.modules.iter().any(|(path, at)| modified(path) != *at)
    }
}

fn module_paths(spec: &PipelineSpec) -> Vec<PathBuf> {
    spec.processors
        .iter()
        .filter_map(|p| match p {
            ProcessorSpec::Wasm(w) => Some(w.module.clone()),
            _ => None,
        })
        .collect()
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// What a reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadReport {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    /// Sections that differ but need a restart.
    pub needs_restart: Vec<&'static str>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Conflict(String),
    #[error("pipeline {name} cannot start with the new config: {message}")]
    Start { name: String, message: String },
}

impl Daemon {
    /// Whether any declared pipeline's plugin module changed on disk since it started.
    pub fn modules_changed(&self) -> bool {
        self.declared.read().unwrap_or_else(|p| p.into_inner()).iter().any(Declared::modules_changed)
    }

    /// Applies `new`'s pipelines to the running daemon (see the module's doc).
    pub async fn reload(self: &Arc<Self>, new: Config) -> Result<ReloadReport, ReloadError> {
        let mut report =
            ReloadReport { needs_restart: sections_needing_restart(&self.config, &new), ..Default::default() };
        for spec in &new.pipelines {
            if self.stored_stream(&spec.name).is_some() {
                return Err(ReloadError::Conflict(format!(
                    "pipeline {} is declared in the new config but a delivery stream of that name was created over the API; delete it first or rename the pipeline",
                    spec.name
                )));
            }
        }
        let old: BTreeMap<String, (PipelineSpec, bool)> = self
            .declared
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|d| (d.spec.name.clone(), (d.spec.clone(), d.modules_changed())))
            .collect();
        let wanted: BTreeMap<String, PipelineSpec> =
            new.pipelines.iter().map(|p| (p.name.clone(), p.clone())).collect();
        for name in old.keys().filter(|n| !wanted.contains_key(*n)) {
            tracing::info!(pipeline = %name, "removed from the config: draining it (everything it holds is delivered), then stopping");
            self.stop_pipeline(name, false).await;
            self.closing.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
            report.removed.push(name.clone());
        }
        for (name, spec) in &wanted {
            match old.get(name) {
                Some((before, modules_changed)) if before == spec && !modules_changed => continue,
                Some(_) => {
                    tracing::info!(pipeline = %name, "changed in the config (or its plugin module changed): delivering what it holds under the old settings, then continuing with the new ones");
                    report.changed.push(name.clone());
                }
                None => {
                    tracing::info!(pipeline = %name, "added to the config: starting it");
                    report.added.push(name.clone());
                }
            }
            let running = self.get(name).is_some();
            let started = if running {
                self.swap_pipeline(spec.clone()).await.map_err(|e| e.to_string())
            } else {
                self.launch(spec.clone()).map(|_| ()).map_err(|e| e.to_string())
            };
            started.map_err(|message| ReloadError::Start { name: name.clone(), message })?;
        }
        *self.declared.write().unwrap_or_else(|p| p.into_inner()) =
            new.pipelines.iter().cloned().map(Declared::new).collect();
        for section in &report.needs_restart {
            tracing::warn!(section, "this section of the config changed; it takes effect only after a restart");
        }
        Ok(report)
    }
}

fn sections_needing_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.listen != new.listen {
        out.push("api.listen");
    }
    if format!("{:?}", old.limits) != format!("{:?}", new.limits) {
        out.push("api.limits");
    }
    if format!("{:?}{:?}", old.security, old.identity) != format!("{:?}{:?}", new.security, new.identity) {
        out.push("api (auth, tls, account)");
    }
    if format!("{:?}", old.storage) != format!("{:?}", new.storage) {
        out.push("storage");
    }
    if format!("{:?}", old.auto_create) != format!("{:?}", new.auto_create) {
        out.push("auto_create");
    }
    if format!("{:?}", old.control_plane) != format!("{:?}", new.control_plane) {
        out.push("control_plane");
    }
    out
}
