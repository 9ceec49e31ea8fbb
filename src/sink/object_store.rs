//! Object-store delivery (S3, S3-compatible servers, a local directory) through `object_store`.
//!
//! An object is encoded on a blocking thread into fixed-size chunks and streamed to the store:
//! one PUT when it fits in a single chunk, a multipart upload otherwise, so a 128 MiB object
//! never sits in memory twice. The upload only completes on the encoder's explicit end marker,
//! so a failed encode can never leave a truncated object behind.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, ClientOptions, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, RetryConfig,
    WriteMultipart,
};
use thiserror::Error;
use tokio::sync::mpsc;

use crate::config::{ServerSideEncryption, StoreSpec};

/// Part size for multipart uploads; S3 needs at least 5 MiB per part but the last.
const PART_SIZE: usize = 8 << 20;
/// A part buffer starts at most this large and doubles: the hint is the batch's size before
/// compression, and a compressed object is a fraction of it, so reserving the hint held several
/// idle megabytes per upload (issue #29).
const FIRST_CHUNK: usize = 1 << 20;

#[derive(Debug, Error)]
pub enum SinkError {
    #[error("cannot set up the object store: {0}")]
    Setup(String),
    /// Displayed in plain words (`store_error.rs`): what failed and what to check.
    #[error("{}", super::store_error::plain_words(.0))]
    Store(#[from] object_store::Error),
    #[error("encoding the object failed: {0}")]
    Encode(String),
}

pub struct ObjectSink {
    store: Arc<dyn ObjectStore>,
    attributes: Attributes,
    description: String,
    /// The root of a local destination: incomplete uploads there are files of our own to clean.
    local_root: Option<std::path::PathBuf>,
    probe: super::probe::ProbeTarget,
}

impl ObjectSink {
    pub fn new(spec: &StoreSpec, content_encoding: Option<&'static str>) -> Result<Self, SinkError> {
        match spec {
            StoreSpec::Local { path } => {
                std::fs::create_dir_all(path)
                    .map_err(|e| SinkError::Setup(format!("cannot create {}: {e}", path.display())))?;
                let removed = remove_staging_files(path);
                if removed > 0 {
                    tracing::info!(directory = %path.display(), files = removed, "removed incomplete uploads left by an earlier crash");
                }
                // fsync files and directories: the WAL is freed once a put returns, so the put
                // has to mean "on disk", as it does on S3.
                let store = LocalFileSystem::new_with_prefix(path)
                    .map_err(|e| SinkError::Setup(e.to_string()))?
                    .with_fsync(true);
                // LocalFileSystem stores no attributes, so none are sent.
                Ok(Self {
                    store: Arc::new(store),
                    attributes: Attributes::new(),
                    description: format!("local directory {}", path.display()),
                    local_root: Some(path.clone()),
                    probe: super::probe::ProbeTarget::Local(path.clone()),
                })
            }
            StoreSpec::S3 { bucket, endpoint, region, force_path_style, encryption } => {
                let profile = crate::aws::profile::load();
                let credentials = super::probe::CredentialSource::detect(
                    profile.access_key_id.is_some() && profile.secret_access_key.is_some(),
                );
                let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
                if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
                    if let (Some(id), Some(secret)) = (profile.access_key_id, profile.secret_access_key) {
                        b = b.with_access_key_id(id).with_secret_access_key(secret);
                        if let Some(token) = profile.session_token {
                            b = b.with_token(token);
                        }
                    }
                }
                let region = region
                    .clone()
                    .or_else(|| std::env::var("AWS_REGION").ok())
                    .or(profile.region)
                    .unwrap_or_else(|| "us-east-1".into());
                b = b.with_region(region);
                match encryption {
                    Some(ServerSideEncryption::S3Managed) => {
                        // object_store exports the key only by its name.
                        let key: AmazonS3ConfigKey = "aws_server_side_encryption"
                            .parse()
                            .map_err(|e: object_store::Error| SinkError::Setup(e.to_string()))?;
                        b = b.with_config(key, "AES256");
                    }
                    Some(ServerSideEncryption::Kms { key_id }) => b = b.with_sse_kms_encryption(key_id),
                    None => {}
                }
                // One ClientOptions for everything: `with_client_options` replaces earlier
                // settings such as allow_http.
                let mut client = ClientOptions::new()
                    .with_timeout(Duration::from_secs(120))
                    .with_connect_timeout(Duration::from_secs(5));
                if let Some(endpoint) = endpoint {
                    b = b.with_endpoint(endpoint);
                    client = client.with_allow_http(endpoint.starts_with("http://"));
                }
                b = b.with_client_options(client).with_virtual_hosted_style_request(!force_path_style);
                // object_store retries briefly; the pipeline's own retry loop (with metrics and
                // retention) handles long outages.
                b = b.with_retry(RetryConfig {
                    max_retries: 2,
                    retry_timeout: Duration::from_secs(20),
                    ..Default::default()
                });
                let store = b.build().map_err(|e| SinkError::Setup(e.to_string()))?;
                let mut attributes = Attributes::new();
                attributes.insert(Attribute::ContentType, "application/octet-stream".into());
                if let Some(enc) = content_encoding {
                    attributes.insert(Attribute::ContentEncoding, enc.into());
                }
                Ok(Self {
                    store: Arc::new(store),
                    attributes,
                    description: format!("s3://{bucket}"),
                    local_root: None,
                    probe: super::probe::ProbeTarget::S3 { bucket: bucket.clone(), credentials },
                })
            }
        }
    }

    /// The startup check for this destination (it shares the store's client).
    pub fn probe(&self) -> super::Probe {
        super::Probe { store: self.store.clone(), target: self.probe.clone(), endpoint: None }
    }

    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Writes to `key` what `encode` produces; it runs on a blocking thread and its output is
    /// streamed to the store. The object is only completed if `encode` succeeds. `size_hint` (the
    /// uncompressed size, an upper bound for most objects) sizes the first buffer, so a 1 MiB
    /// object does not reserve a whole 8 MiB part.
    pub async fn write_with<F>(&self, key: &str, size_hint: usize, encode: F) -> Result<(), SinkError>
    where
        F: FnOnce(&mut (dyn Write + Send)) -> io::Result<()> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(2);
        let encoder = tokio::task::spawn_blocking(move || {
            let mut chunks = ChunkWriter { tx, buf: Vec::with_capacity(size_hint.clamp(4096, FIRST_CHUNK)) };
            encode(&mut chunks)?;
            chunks.end()
        });
        let uploaded = self.upload(key, rx).await;
        if uploaded.is_err() {
            self.clean_failed_upload(key);
        }
        let encoded = encoder.await.map_err(|e| SinkError::Encode(e.to_string()))?;
        match (uploaded, encoded) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(e), _) => Err(e),
            (_, Err(e)) => Err(SinkError::Encode(e.to_string())),
        }
    }

    /// Writes to `key` the concatenation of `parts`, already encoded (`buffer::parts`): one PUT
    /// of all of them when they fit in a part, otherwise a multipart upload of `PART_SIZE` parts.
    /// Neither copies them.
    pub async fn write_parts(&self, key: &str, parts: Vec<Bytes>) -> Result<(), SinkError> {
        let path = Path::from(key);
        let total: usize = parts.iter().map(Bytes::len).sum();
        let written = if total <= PART_SIZE {
            let opts = PutOptions { attributes: self.attributes.clone(), ..Default::default() };
            self.store.put_opts(&path, parts.into_iter().collect(), opts).await.map(drop).map_err(SinkError::from)
        } else {
            let opts = PutMultipartOptions { attributes: self.attributes.clone(), ..Default::default() };
            let upload = self.store.put_multipart_opts(&path, opts).await?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            let mut result = Ok(());
            for part in parts {
                if let Err(e) = writer.wait_for_capacity(2).await {
                    result = Err(e);
                    break;
                }
                writer.put(part);
            }
            match result {
                Ok(()) => writer.finish().await.map(drop).map_err(SinkError::from),
                Err(e) => {
                    let _ = writer.abort().await;
                    Err(e.into())
                }
            }
        };
        if written.is_err() {
            self.clean_failed_upload(key);
        }
        written
    }

    /// object_store stages a local upload as `<key>#<n>`; a failed one (a full disk) may leave it
    /// behind.
    fn clean_failed_upload(&self, key: &str) {
        if let Some(root) = &self.local_root {
            let target = root.join(key);
            if let (Some(dir), Some(name)) = (target.parent(), target.file_name().and_then(|n| n.to_str())) {
                remove_staging_in(dir, name);
            }
        }
    }

    async fn upload(&self, key: &str, mut chunks: mpsc::Receiver<Chunk>) -> Result<(), SinkError> {
        let path = Path::from(key);
        let Some(Chunk::Data(first)) = chunks.recv().await else {
            return Err(SinkError::Encode("the encoder stopped before producing data".into()));
        };
        match chunks.recv().await {
            Some(Chunk::End) => {
                let opts = PutOptions { attributes: self.attributes.clone(), ..Default::default() };
                self.store.put_opts(&path, first.into(), opts).await?;
                Ok(())
            }
            Some(Chunk::Data(second)) => {
                let opts = PutMultipartOptions { attributes: self.attributes.clone(), ..Default::default() };
                let upload = self.store.put_multipart_opts(&path, opts).await?;
                let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
                writer.put(first);
                writer.put(second);
                loop {
                    match chunks.recv().await {
                        Some(Chunk::Data(data)) => {
                            if let Err(e) = writer.wait_for_capacity(2).await {
                                let _ = writer.abort().await;
                                return Err(e.into());
                            }
                            writer.put(data);
                        }
                        Some(Chunk::End) => {
                            writer.finish().await?;
                            return Ok(());
                        }
                        None => {
                            let _ = writer.abort().await;
                            return Err(SinkError::Encode("the encoder failed mid-object".into()));
                        }
                    }
                }
            }
            None => Err(SinkError::Encode("the encoder failed mid-object".into())),
        }
    }

    /// Every complete object under `prefix` with its size, in key order (`sluice replay` reads
    /// error outputs this way).
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, SinkError> {
        use futures::TryStreamExt;
        let prefix = (!prefix.is_empty()).then(|| Path::from(prefix));
        let mut objects: Vec<(String, u64)> = self
            .store
            .list(prefix.as_ref())
            .map_ok(|meta| (meta.location.to_string(), meta.size))
            .try_collect()
            .await?;
        objects.retain(|(key, _)| !is_staging_name(key));
        objects.sort();
        Ok(objects)
    }

    /// Reads an object back (the tests use it to check what was written).
    pub async fn get(&self, key: &str) -> Result<Bytes, SinkError> {
        Ok(self.store.get(&Path::from(key)).await?.bytes().await?)
    }
}

/// object_store's name for a local upload in progress: `<final name>#<n>`.
fn is_staging_name(name: &str) -> bool {
    name.rsplit_once('#')
        .is_some_and(|(base, n)| !base.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes every incomplete upload under a local destination (at start: a crash mid-upload
/// leaves one, and nothing else would ever remove it). Returns how many were removed.
fn remove_staging_files(root: &std::path::Path) -> usize {
    let mut removed = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => dirs.push(entry.path()),
                Ok(t) if t.is_file() && entry.file_name().to_str().is_some_and(is_staging_name) => {
                    removed += usize::from(std::fs::remove_file(entry.path()).is_ok());
                }
                _ => {}
            }
        }
    }
    removed
}

/// Removes the staging files of the object `name` in `dir`.
fn remove_staging_in(dir: &std::path::Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let Some(file) = entry.file_name().to_str().map(str::to_owned) else { continue };
        let ours = file.strip_prefix(name).is_some_and(|rest| rest.starts_with('#'));
        if ours && is_staging_name(&file) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

enum Chunk {
    Data(Bytes),
    End,
}

/// `Write` adapter from the blocking encoder to the async uploader, in `PART_SIZE` chunks.
struct ChunkWriter {
    tx: mpsc::Sender<Chunk>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self, chunk: Chunk) -> io::Result<()> {
        self.tx.blocking_send(chunk).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload was abandoned"))
    }

    fn end(mut self) -> io::Result<()> {
        let mut rest = std::mem::take(&mut self.buf);
        // The last part waits for the upload; it should not hold the unused half of a doubling.
        if rest.capacity() > rest.len() + rest.len() / 4 {
            rest.shrink_to_fit();
        }
        self.send(Chunk::Data(Bytes::from(rest)))?;
        self.send(Chunk::End)
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let take = (PART_SIZE - self.buf.len()).min(data.len());
        if self.buf.capacity() - self.buf.len() < take {
            // Grow by doubling but never past one part.
            let want = (self.buf.len() + take).max(self.buf.capacity() * 2).min(PART_SIZE);
            self.buf.reserve_exact(want - self.buf.len());
        }
        self.buf.extend_from_slice(&data[..take]);
        if self.buf.len() == PART_SIZE {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(FIRST_CHUNK));
            self.send(Chunk::Data(Bytes::from(full)))?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{Compression, ObjectFormat, RawEncoder};
    use crate::record::Record;

    fn records(n: usize, size: usize) -> Arc<Vec<Record>> {
        Arc::new((0..n).map(|i| Record::new(i as u64, 0, Bytes::from(format!("{i:0size$}")))).collect())
    }

    #[tokio::test]
    async fn small_and_multipart_objects_land_whole_on_local_disk() {
        let dir = tempfile::tempdir().unwrap();
        let sink = ObjectSink::new(&StoreSpec::Local { path: dir.path().to_path_buf() }, None).unwrap();
        let format = Arc::new(ObjectFormat {
            encoder: RawEncoder { append_delimiter: true },
            compression: Compression::Uncompressed,
            compression_level: None,
            extension: String::new(),
        });
        for (key, n) in [("a/small", 3), ("b/large", 20_000)] {
            let recs = records(n, 1000);
            let (records, format, entry) = (recs.clone(), format.clone(), format.entry_name(key));
            sink.write_with(key, n * 1001, move |out| format.write_object(&records, &entry, out)).await.unwrap();
            let back = sink.get(key).await.unwrap();
            assert_eq!(back.len(), n * 1001, "{key}");
            assert!(back.starts_with(format!("{:01000}\n", 0).as_bytes()));
        }
        assert!(dir.path().join("b/large").exists());
    }

    #[test]
    fn incomplete_uploads_are_removed_at_start_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("year=2026/day=01");
        std::fs::create_dir_all(&nested).unwrap();
        for name in ["obj#1", "obj#12", "keep", "a#b", "#3", "x#"] {
            std::fs::write(nested.join(name), b"x").unwrap();
        }
        ObjectSink::new(&StoreSpec::Local { path: dir.path().to_path_buf() }, None).unwrap();
        let mut left: Vec<String> =
            std::fs::read_dir(&nested).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["#3", "a#b", "keep", "x#"]);
    }
}
