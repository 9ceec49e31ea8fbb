//! How the operator tools (`health`, `tap`, `top`, `replay`) find the daemon they talk to, the same
//! way in each: the address is `--endpoint`, else `$SLUICE_ENDPOINT`, else the daemon's own config
//! file's `api.listen` when `--config` names it, else `http://127.0.0.1:4573`; with `--config`, the
//! file's `api.tls` certificate is trusted and the first of its `api.auth` keys signs requests.

use std::path::PathBuf;

use anyhow::Context;

use sluice::aws::request::Keys;
use sluice::config;

/// The default `api.listen`, as a URL.
const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4573";

#[derive(clap::Args, Clone, Debug, Default)]
pub struct DaemonArgs {
    /// The daemon's API, such as http://127.0.0.1:4573 [default: $SLUICE_ENDPOINT, else the
    /// address in --config's file, else http://127.0.0.1:4573]
    #[arg(long, env = "SLUICE_ENDPOINT")]
    pub endpoint: Option<String>,
    /// The daemon's config file: its api.listen, api.tls and api.auth say where it listens and
    /// which key signs requests (the first of api.auth's keys; otherwise the AWS credential chain).
    #[arg(long = "config", value_name = "FILE")]
    pub daemon_config: Option<PathBuf>,
}

/// A daemon found: its base URL (no trailing slash), the keys to sign with, and an HTTP client that
/// trusts its certificate.
pub struct Daemon {
    pub endpoint: String,
    pub keys: Keys,
    pub http: reqwest::Client,
}

impl DaemonArgs {
    pub fn resolve(&self) -> anyhow::Result<Daemon> {
        let mut keys = Keys::from_chain();
        let mut builder = reqwest::Client::builder();
        let mut from_config = None;
        if let Some(path) = &self.daemon_config {
            let cfg = config::load_file(path).map_err(|errors| {
                super::validate::report(path, "config", &errors);
                anyhow::anyhow!("cannot read the daemon's address from {}: the config is invalid", path.display())
            })?;
            // Its first key signs (a key of `api.auth` the daemon knows), and its certificate is trusted.
            if let Some(key) = cfg.security.access_keys.as_ref().and_then(|k| k.first()) {
                keys = Keys { id: key.id.clone(), secret: key.secret.expose().to_string(), token: None };
            }
            let scheme = match &cfg.security.tls {
                Some(tls) => {
                    let pem = std::fs::read(&tls.cert_file)
                        .with_context(|| format!("cannot read the API certificate {}", tls.cert_file.display()))?;
                    let cert = reqwest::Certificate::from_pem(&pem)
                        .with_context(|| format!("{} is not a PEM certificate", tls.cert_file.display()))?;
                    builder = builder.add_root_certificate(cert);
                    "https"
                }
                None => "http",
            };
            from_config = Some(url_of(scheme, cfg.listen));
        }
        // An explicit address wins over the file's (a daemon started with `--listen`).
        let endpoint = match (&self.endpoint, from_config) {
            (Some(e), _) => e.trim_end_matches('/').to_string(),
            (None, Some(url)) => url,
            (None, None) => DEFAULT_ENDPOINT.to_string(),
        };
        Ok(Daemon { endpoint, keys, http: builder.build().context("cannot build an HTTP client")? })
    }
}

/// The URL a local tool reaches a listen address at: an unspecified address (0.0.0.0, ::) is
/// reached on the loopback interface.
fn url_of(scheme: &str, listen: std::net::SocketAddr) -> String {
    let ip = match listen.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("{scheme}://{}", std::net::SocketAddr::new(ip, listen.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_reached_on_loopback() {
        assert_eq!(url_of("http", "0.0.0.0:4600".parse().unwrap()), "http://127.0.0.1:4600");
        assert_eq!(url_of("https", "[::]:443".parse().unwrap()), "https://[::1]:443");
        assert_eq!(url_of("http", "10.0.0.5:4573".parse().unwrap()), "http://10.0.0.5:4573");
    }
}
