//! Pipelines added, changed and removed while the daemon runs: the control plane's side of the
//! daemon. Every change is stored first (`stored::StreamStore`) and then applied, so a crash in
//! between is finished by the next start.
//!
//! * **Create** stores the stream, then starts its pipeline.
//! * **Update** (UpdateDestination, tags aside, Start/StopDeliveryStreamEncryption) stores the new
//!   version, then swaps pipelines: intake pauses (puts get ServiceUnavailableException, which SDKs
//!   retry), the old pipeline delivers what it buffered under the old version, and the new one
//!   opens the same WAL. Nothing acknowledged is lost or sent twice.
//! * **Delete** stores the DELETING status and answers at once, as Firehose does. Then intake stops
//!   and the pipeline delivers everything it holds (however long its destination takes); with
//!   `AllowForceDelete` the undelivered records are discarded instead. Only then are the WAL and the
//!   stored stream removed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use thiserror::Error;

use super::Daemon;
use crate::config::control_plane::ControlPlane;
use crate::config::{Config, PipelineSpec};
use crate::stored::{build_spec, StoredStream, StreamStatus, StreamStore};

#[derive(Debug, Error)]
pub enum ControlError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InUse(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Limit(String),
    #[error("{0}")]
    ConcurrentModification(String),
    #[error("{0}")]
    Internal(String),
}

pub(super) struct ControlState {
    plane: ControlPlane,
    store: StreamStore,
    streams: Mutex<BTreeMap<String, StoredStream>>,
    /// One change at a time: a swap awaits the old pipeline, so this is an async lock.
    changes: tokio::sync::Mutex<()>,
}

impl ControlState {
    pub(super) fn open(config: &Config) -> std::io::Result<Option<Self>> {
        let Some(plane) = config.control_plane.clone() else { return Ok(None) };
        let store = StreamStore::open(&config.storage.dir)?;
        Ok(Some(Self { plane, store, streams: Mutex::new(BTreeMap::new()), changes: tokio::sync::Mutex::new(()) }))
    }
}

impl Daemon {
    fn control(&self) -> Result<&ControlState, ControlError> {
        self.control.as_ref().ok_or_else(|| {
            ControlError::Invalid(
                "this sluice has no control_plane section in its config, so delivery streams cannot be created or changed over the API: add `control_plane: { buckets: { \"*\": { local: { path: \"./data/{bucket}\" } } } }` (see docs/control-plane.md)".into(),
            )
        })
    }

    /// Starts every stored stream (at daemon start, after the declared pipelines).
    pub(super) fn start_stored_streams(self: &Arc<Self>) {
        let Some(control) = &self.control else { return };
        for stream in control.store.load_all() {
            if self.get(&stream.name).is_some() {
                tracing::warn!(stream = %stream.name, "a stream created over the API has the name of a declared pipeline; the declared one runs");
                continue;
            }
            match build_spec(&stream, &control.plane)
                .map_err(|e| e.to_string())
                .and_then(|spec| self.launch(spec).map_err(|e| e.to_string()))
            {
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(stream = %stream.name, error = %e, "cannot start a stream created over the API; its records stay in its WAL");
                    continue;
                }
            }
            let deleting = stream.status == StreamStatus::Deleting;
            let (name, force) = (stream.name.clone(), stream.force_delete);
            control.streams.lock().unwrap_or_else(|p| p.into_inner()).insert(stream.name.clone(), stream);
            if deleting {
                let daemon = self.clone();
                tokio::spawn(async move { daemon.finish_delete(&name, force).await });
            }
        }
    }

    /// The stored form of an API-created stream.
    pub fn stored_stream(&self, name: &str) -> Option<StoredStream> {
        self.control.as_ref()?.streams.lock().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    pub fn stored_stream_names(&self) -> Vec<String> {
        self.control
            .as_ref()
            .map_or_else(Vec::new, |c| c.streams.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect())
    }

    /// Whether the stream's encryption is on (the `Encrypted` member of put responses).
    pub fn encrypted(&self, name: &str) -> bool {
        self.control.as_ref().is_some_and(|c| {
            c.streams
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(name)
                .is_some_and(|s| s.encryption.as_ref().is_some_and(|e| e.enabled))
        })
    }

    pub(super) fn api_stream_count(&self) -> usize {
        self.control.as_ref().map_or(0, |c| c.streams.lock().unwrap_or_else(|p| p.into_inner()).len())
    }

    /// Why a stream cannot be changed over the API, if it was not created there.
    fn not_api_created(&self, name: &str) -> ControlError {
        match self.get(name) {
            Some(p) if self.declared_names().contains(name) => ControlError::InUse(format!(
                "delivery stream {name} is declared in {}; change it there (streams declared in a config file cannot be changed over the API)",
                p.spec.origin
            )),
            Some(p) => ControlError::InUse(format!(
                "delivery stream {name} was created on first put from the auto_create template in {}; it cannot be changed over the API",
                p.spec.origin
            )),
            None => ControlError::NotFound(self.not_found(name).to_string()),
        }
    }

    pub async fn create_stream(&self, stream: StoredStream) -> Result<(), ControlError> {
        let control = self.control()?;
        let _one_change = control.changes.lock().await;
        let name = stream.name.clone();
        if self.get(&name).is_some() || self.stored_stream(&name).is_some() {
            return Err(ControlError::InUse(format!(
                "Firehose {name} under accountId {} already exists",
                self.config.identity.account_id
            )));
        }
        let count = self.api_stream_count();
        if count >= control.plane.max_streams {
            let names: Vec<String> =
                control.streams.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
            return Err(ControlError::Limit(format!(
                "You have already consumed your firehose quota of {} hoses. Firehose names: {names:?}",
                control.plane.max_streams
            )));
        }
        let spec = build_spec(&stream, &control.plane).map_err(|e| ControlError::Invalid(e.0))?;
        control
            .store
            .save(&stream)
            .map_err(|e| ControlError::Internal(format!("cannot store the delivery stream: {e}")))?;
        if let Err(e) = self.launch(spec) {
            let _ = control.store.remove(&name);
            return Err(ControlError::Invalid(format!("the delivery stream cannot start: {e}")));
        }
        tracing::info!(stream = %name, "created delivery stream over the API");
        control.streams.lock().unwrap_or_else(|p| p.into_inner()).insert(name, stream);
        Ok(())
    }

    /// Applies `change` to the stored stream. `restart` says whether the pipeline must be rebuilt
    /// (destination or encryption changed) or only the record (tags).
    pub async fn change_stream(
        &self,
        name: &str,
        restart: bool,
        change: impl FnOnce(&mut StoredStream) -> Result<(), ControlError>,
    ) -> Result<StoredStream, ControlError> {
        let control = self.control()?;
        let _one_change = control.changes.lock().await;
        let Some(mut stream) = self.stored_stream(name) else { return Err(self.not_api_created(name)) };
        if stream.status == StreamStatus::Deleting {
            return Err(ControlError::InUse(format!("delivery stream {name} is being deleted")));
        }
        change(&mut stream)?;
        stream.updated_ms = crate::clock::now_ms();
        let spec = if restart {
            Some(build_spec(&stream, &control.plane).map_err(|e| ControlError::Invalid(e.0))?)
        } else {
            None
        };
        control
            .store
            .save(&stream)
            .map_err(|e| ControlError::Internal(format!("cannot store the delivery stream: {e}")))?;
        control.streams.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), stream.clone());
        if let Some(spec) = spec {
            self.swap_pipeline(spec).await?;
        }
        Ok(stream)
    }

    /// Replaces a running pipeline by one with a new spec on the same WAL.
    pub(super) async fn swap_pipeline(&self, spec: PipelineSpec) -> Result<(), ControlError> {
        let name = spec.name.clone();
        self.stop_pipeline(&name, false).await;
        let result = self
            .launch(spec)
            .map(|_| ())
            .map_err(|e| ControlError::Internal(format!("the new configuration cannot start: {e}")));
        self.closing.lock().unwrap_or_else(|p| p.into_inner()).remove(&name);
        result
    }

    /// Stops intake and waits until the pipeline has delivered what it buffered; with `discard`, the
    /// task is stopped first (closing intake would flush the buffers and deliver them) and only
    /// uploads already under way finish. The name stays in `closing` (puts get 503) until the
    /// caller removes it.
    pub(super) async fn stop_pipeline(&self, name: &str, discard: bool) {
        self.closing.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string());
        let task = self.tasks.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
        if discard {
            if let Some(task) = &task {
                task.abort();
            }
        }
        let pipeline = self.pipelines.write().unwrap_or_else(|p| p.into_inner()).remove(name);
        if let Some(p) = pipeline {
            p.ingest.close().await;
            let listening = p.listening.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(listening) = listening {
                listening.stop().await;
            }
        }
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// DeleteDeliveryStream: marks the stream DELETING and finishes in the background.
    pub async fn delete_stream(self: &Arc<Self>, name: &str, force: bool) -> Result<(), ControlError> {
        let stream = self
            .change_stream(name, false, |s| {
                s.status = StreamStatus::Deleting;
                s.force_delete = force;
                Ok(())
            })
            .await?;
        let daemon = self.clone();
        let name = stream.name.clone();
        tokio::spawn(async move { daemon.finish_delete(&name, force).await });
        Ok(())
    }

    async fn finish_delete(self: Arc<Self>, name: &str, force: bool) {
        let Some(control) = &self.control else { return };
        self.stop_pipeline(name, force).await;
        let dir = self.config.storage.dir.join("pipelines").join(name);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::error!(stream = %name, error = %e, "cannot remove a deleted stream's WAL; it is removed at the next start");
            }
        }
        if let Err(e) = control.store.remove(name) {
            tracing::error!(stream = %name, error = %e, "cannot remove a deleted stream's record");
        }
        control.streams.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
        self.closing.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
        tracing::info!(stream = %name, discarded = force, "deleted delivery stream");
    }
}
