//! Startup checks of object destinations: can sluice reach the store, with working credentials,
//! and write to it?
//!
//! A local directory is probed by writing and removing a small file. S3 is probed by listing one
//! page of the bucket (reachability, credentials, read permission); a write cannot be tested on S3
//! without leaving an object or a delete marker behind, so it is not. When no credentials were
//! configured and the probe fails, the message names every place that was looked in — otherwise
//! a missing key shows up as an opaque error from the instance metadata endpoint.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use object_store::ObjectStore;

/// How long a probe may take before the destination counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where S3 credentials come from, in the order object_store and sluice look for them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    Environment,
    SharedFile {
        profile: String,
    },
    WebIdentity,
    Container,
    /// Nothing configured: the instance metadata service is the last resort.
    InstanceMetadata,
}

impl CredentialSource {
    /// The source that will be used, judged from the environment and the shared files.
    pub fn detect(profile_has_keys: bool) -> Self {
        let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
        if set("AWS_ACCESS_KEY_ID") {
            CredentialSource::Environment
        } else if profile_has_keys {
            CredentialSource::SharedFile { profile: std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into()) }
        } else if set("AWS_WEB_IDENTITY_TOKEN_FILE") {
            CredentialSource::WebIdentity
        } else if set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") || set("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
            CredentialSource::Container
        } else {
            CredentialSource::InstanceMetadata
        }
    }
}

/// The chain sluice looks through, for the message when none of it had credentials.
const CHAIN: &str = "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment; the shared files \
(AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, AWS_CONFIG_FILE or ~/.aws/config, profile AWS_PROFILE or \
`default`); web identity (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN); the container endpoint \
(AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or _FULL_URI); the instance metadata service (169.254.169.254)";

#[derive(Clone)]
pub struct Probe {
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) target: ProbeTarget,
    /// A sending destination's host and port, checked by opening a connection (a request would
    /// deliver something, or need credentials the check should not spend).
    pub(super) endpoint: Option<(String, u16)>,
}

#[derive(Clone)]
pub(super) enum ProbeTarget {
    Local(PathBuf),
    S3 { bucket: String, credentials: CredentialSource },
}

impl Probe {
    /// Also checks that a sending destination at `url` accepts connections.
    pub fn with_endpoint(mut self, url: &str) -> Self {
        self.endpoint =
            reqwest::Url::parse(url).ok().and_then(|u| Some((u.host_str()?.to_string(), u.port_or_known_default()?)));
        self
    }

    /// Checks the destination (and, for a sending destination, its backup store); the error says
    /// what failed in words an operator can act on.
    pub async fn check(&self) -> Result<(), String> {
        if let Some((host, port)) = &self.endpoint {
            let connect = tokio::net::TcpStream::connect((host.as_str(), *port));
            match tokio::time::timeout(PROBE_TIMEOUT, connect).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(format!("cannot connect to {host}:{port}: {e}")),
                Err(_) => return Err(format!("no connection to {host}:{port} within {} s", PROBE_TIMEOUT.as_secs())),
            }
        }
        self.check_store().await.map_err(|e| if self.endpoint.is_some() { format!("the backup store: {e}") } else { e })
    }

    async fn check_store(&self) -> Result<(), String> {
        match &self.target {
            ProbeTarget::Local(root) => {
                let root = root.clone();
                tokio::task::spawn_blocking(move || probe_directory(&root))
                    .await
                    .map_err(|e| format!("the directory check did not finish: {e}"))?
            }
            ProbeTarget::S3 { bucket, credentials } => {
                let listed = tokio::time::timeout(PROBE_TIMEOUT, async {
                    self.store.list(None).next().await.transpose().map(|_| ())
                })
                .await;
                let error = match listed {
                    Ok(Ok(())) => return Ok(()),
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => format!("no answer within {} s", PROBE_TIMEOUT.as_secs()),
                };
                Err(match credentials {
                    CredentialSource::InstanceMetadata => format!(
                        "cannot list bucket `{bucket}`: no AWS credentials were found; looked in: {CHAIN}. The last step failed: {error}"
                    ),
                    source => format!("cannot list bucket `{bucket}` (credentials from {}): {error}", describe(source)),
                })
            }
        }
    }
}

fn describe(source: &CredentialSource) -> String {
    match source {
        CredentialSource::Environment => "the environment".into(),
        CredentialSource::SharedFile { profile } => format!("the shared credentials file, profile `{profile}`"),
        CredentialSource::WebIdentity => "web identity".into(),
        CredentialSource::Container => "the container credentials endpoint".into(),
        CredentialSource::InstanceMetadata => "the instance metadata service".into(),
    }
}

/// Writes, syncs and removes a small file in the destination directory.
fn probe_directory(root: &std::path::Path) -> Result<(), String> {
    use std::io::Write;
    let path = root.join(format!(".sluice-check-{}", uuid::Uuid::new_v4()));
    let written = std::fs::File::create(&path).and_then(|mut f| {
        f.write_all(b"sluice startup check\n")?;
        f.sync_all()
    });
    let removed = std::fs::remove_file(&path);
    written.map_err(|e| format!("cannot write to {}: {e}", root.display()))?;
    removed.map_err(|e| format!("cannot remove a file from {}: {e}", root.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_only_directory_fails_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let probe = Probe {
            store: Arc::new(object_store::memory::InMemory::new()),
            target: ProbeTarget::Local(dir.path().to_path_buf()),
            endpoint: None,
        };
        assert_eq!(probe.check().await, Ok(()));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the probe leaves nothing behind");
        let missing = Probe { target: ProbeTarget::Local(dir.path().join("gone")), ..probe.clone() };
        assert!(missing.check().await.unwrap_err().contains("cannot write to"));
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let unreachable = probe.clone().with_endpoint(&format!("http://127.0.0.1:{port}/"));
        assert!(unreachable.check().await.unwrap_err().starts_with(&format!("cannot connect to 127.0.0.1:{port}")));
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let reachable = probe.with_endpoint(&format!("https://127.0.0.1:{}/", open.local_addr().unwrap().port()));
        assert_eq!(reachable.check().await, Ok(()));
    }
}
