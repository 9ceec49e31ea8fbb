//! Delivery to a [`Loader`], as Firehose delivers to Redshift: the batch is staged as an object in
//! the intermediate S3 bucket, a manifest naming it is written beside it (under `manifests/` in the
//! prefix), and the loader loads it (Redshift: COPY), once. A load that keeps failing past the retry
//! duration is skipped: its manifest is written under the error prefix (`redshift-failed`) for a
//! manual backfill, and the staged object stays where it is (Firehose keeps it too).

use std::sync::Arc;

use super::delivery::Delivery;
use crate::buffer::Batch;
use crate::config::StoreSpec;
use crate::sink::destination::SendError;
use crate::sink::loader::{Loaded, Loader};
use crate::sink::retry::{Retried, RetryPolicy};

impl Delivery {
    pub(super) async fn deliver_staged(&self, batch: &Batch, loader: &dyn Loader) {
        let StoreSpec::S3 { bucket, .. } = &self.spec.store.store else {
            // Validation allows only an S3 bucket as the intermediate store.
            tracing::error!(pipeline = %self.spec.name, loader = loader.name(), "loading needs an S3 intermediate bucket; batch left staged");
            return;
        };
        let key = self.object_key(batch, None, "data", &self.format.extension);
        if !self.write_records(&key, batch, true, Arc::new(batch.records.clone()), self.format.clone()).await {
            return;
        }
        let manifest = loader.manifest(&[format!("s3://{bucket}/{key}")]);
        let manifest_key = manifest_key(&key, self.spec.store.prefix.raw());
        if !self.write_bytes(&manifest_key, batch, manifest.clone()).await {
            return;
        }
        let batch_id = self.request_ids(batch)(0);
        let url = format!("s3://{bucket}/{manifest_key}");
        let policy = RetryPolicy {
            initial: self.spec.delivery.retry_initial,
            max: self.spec.delivery.retry_max,
            jitter: 0.15,
            duration: self.spec.sending.as_deref().map_or(std::time::Duration::ZERO, |e| e.retry_duration()),
        };
        let outcome = policy
            .run(
                |_| async {
                    match loader.load(&batch_id, &url).await? {
                        Loaded::Loaded => {}
                        Loaded::AlreadyLoaded => {
                            tracing::info!(pipeline = %self.spec.name, loader = loader.name(), batch_id, manifest = %url, "batch already loaded; skipped (exactly once)")
                        }
                    }
                    Ok::<(), SendError>(())
                },
                |e: &SendError| e.permanent,
                |e, attempts| {
                    self.metrics.sending_failures.increment(1);
                    self.status.delivery_failed(&format!("{}: {}", e.code, e.message));
                    tracing::warn!(pipeline = %self.spec.name, loader = loader.name(), manifest = %url, attempts, code = e.code, error = %e.message, "loading a staged batch failed");
                },
            )
            .await;
        match outcome {
            Retried::Succeeded { .. } => {
                self.status.delivery_succeeded();
                self.metrics.endpoint_records.increment(batch.records.len() as u64);
                self.metrics.endpoint_bytes.increment(batch.bytes as u64);
            }
            Retried::GaveUp { error, attempts } => {
                tracing::error!(pipeline = %self.spec.name, loader = loader.name(), manifest = %url, attempts, code = error.code, error = %error.message, "giving up on this batch: its manifest goes to the error prefix for a backfill");
                let kind = loader.error_output_type();
                let what = format!(
                    "a batch of {} records was given up: its manifest is in the error prefix ({}: {})",
                    batch.records.len(),
                    kind.as_str(),
                    error.code
                );
                self.status.gave_up(crate::clock::now_ms(), what);
                self.metrics.error_records(kind).increment(batch.records.len() as u64);
                let error_key = self.object_key(batch, Some(kind), "manifest", "");
                self.write_bytes(&error_key, batch, manifest).await;
            }
        }
    }

    /// Writes a small object (a manifest) with the same retries as the batch's own.
    async fn write_bytes(&self, key: &str, batch: &Batch, bytes: bytes::Bytes) -> bool {
        self.write_retrying(key, batch, false, 0, || {
            let bytes = bytes.clone();
            move |out: &mut (dyn std::io::Write + Send)| out.write_all(&bytes)
        })
        .await
    }
}

/// The manifest's key: the object's key with `manifests/` after the prefix's fixed part
/// (`staging/2026/12/02/10/x.gz` under prefix `staging/` → `staging/manifests/2026/12/02/10/x.gz`),
/// so manifests sit beside their objects but never among them.
fn manifest_key(object_key: &str, prefix: &str) -> String {
    let fixed = &prefix[..prefix.find("!{").unwrap_or(prefix.len())];
    match object_key.strip_prefix(fixed) {
        Some(rest) => format!("{fixed}manifests/{rest}"),
        None => format!("manifests/{object_key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_sit_beside_their_objects() {
        assert_eq!(manifest_key("staging/2026/12/02/10/x.gz", "staging/"), "staging/manifests/2026/12/02/10/x.gz");
        assert_eq!(manifest_key("2026/12/02/10/x", ""), "manifests/2026/12/02/10/x");
    }
}
