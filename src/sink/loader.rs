//! The other shape of destination: a warehouse that loads batches already staged as objects in
//! the pipeline's object store, the way Firehose loads Redshift (stage, write a manifest, COPY).
//!
//! The pipeline stages the batch and its manifest (`pipeline/staged.rs`) and retries [`Loader::load`]
//! with the shared retry loop; a loader only turns a manifest into a load, once per batch id.

use async_trait::async_trait;
use bytes::Bytes;

use super::destination::SendError;
use crate::process::ErrorOutputType;

/// What a load did.
#[derive(Debug, PartialEq, Eq)]
pub enum Loaded {
    Loaded,
    /// The batch id was found: loaded before (a replay after a crash, or a lost COMMIT answer).
    AlreadyLoaded,
}

#[async_trait]
pub trait Loader: Send + Sync {
    /// Where it loads, for logs (`host:port/database`; never credentials).
    fn name(&self) -> &str;

    /// Firehose's error output type for batches given up (their manifests go to the error prefix).
    fn error_output_type(&self) -> ErrorOutputType;

    /// The manifest naming the staged objects (`s3://bucket/key` URLs) in the loader's format.
    fn manifest(&self, object_urls: &[String]) -> Bytes;

    /// Loads the batch whose manifest is at `manifest_url`, once per `batch_id`.
    async fn load(&self, batch_id: &str, manifest_url: &str) -> Result<Loaded, SendError>;
}
