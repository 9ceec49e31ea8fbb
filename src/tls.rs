//! A TLS server certificate from two PEM files (`tls: { cert_file, key_file }`), with rustls: the
//! API's (`api.tls`) and a listening source's (syslog over TLS). A ground-floor module.
//!
//! The certificate and key are read at start (a bad pair stops the daemon with the reason) and
//! re-read whenever either file changes (checked every 10 seconds), so a renewed certificate —
//! cert-manager, certbot — is served to new connections without a restart. A renewal that does not
//! load (half-written files, a key that does not match) is logged and the previous pair is kept.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// A certificate chain and its private key, as PEM files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read the certificate file {path}: {message}")]
    Cert { path: String, message: String },
    #[error("cannot read the private key file {path}: {message}")]
    Key { path: String, message: String },
    #[error("the certificate and key cannot be used together: {0}")]
    Config(String),
}

pub struct TlsReloader {
    files: TlsFiles,
    /// ALPN protocols offered (`http/1.1` for the API; none for syslog).
    alpn: Vec<Vec<u8>>,
    current: RwLock<(TlsAcceptor, Option<SystemTime>)>,
}

impl TlsReloader {
    pub fn load(files: &TlsFiles, alpn: &[&[u8]]) -> Result<Arc<Self>, TlsError> {
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = build(files, &alpn)?;
        Ok(Arc::new(Self { files: files.clone(), alpn, current: RwLock::new((acceptor, modified(files))) }))
    }

    /// The acceptor for a new connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.current.read().unwrap_or_else(|p| p.into_inner()).0.clone()
    }

    /// Re-reads the files every 10 seconds when they changed.
    pub fn watch(self: Arc<Self>) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tick.tick().await;
                self.reload_if_changed();
            }
        });
    }

    pub fn reload_if_changed(&self) {
        let now = modified(&self.files);
        if now == self.current.read().unwrap_or_else(|p| p.into_inner()).1 {
            return;
        }
        match build(&self.files, &self.alpn) {
            Ok(acceptor) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = (acceptor, now);
                tracing::info!(cert = %self.files.cert_file.display(), "reloaded a TLS certificate");
            }
            Err(e) => {
                tracing::warn!(cert = %self.files.cert_file.display(), error = %e, "TLS files changed but do not load; the previous certificate is kept")
            }
        }
    }
}

/// The later modification time of the two files (a renewal may replace either first).
fn modified(files: &TlsFiles) -> Option<SystemTime> {
    let time = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    time(&files.cert_file).max(time(&files.key_file))
}

fn build(files: &TlsFiles, alpn: &[Vec<u8>]) -> Result<TlsAcceptor, TlsError> {
    let cert_path = files.cert_file.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert { path: cert_path.clone(), message: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::Cert { path: cert_path, message: "it holds no PEM certificate".into() });
    }
    // The key's contents never appear in a message: only its path and what went wrong.
    let key = PrivateKeyDer::from_pem_file(&files.key_file)
        .map_err(|e| TlsError::Key { path: files.key_file.display().to_string(), message: e.to_string() })?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = alpn.to_vec();
    Ok(TlsAcceptor::from(Arc::new(config)))
}
