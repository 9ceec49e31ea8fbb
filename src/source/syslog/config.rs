//! `source: syslog:` as written, its validated form, and the rules between them. A config-layer
//! module: it imports only the config kit, so `config` can list it.

use std::net::SocketAddr;

use serde::Deserialize;

use crate::config::kit::{max_line_bytes, Checker, Spanned};
use crate::config::security::RawTlsServer;
use crate::config::ByteSize;
use crate::tls::TlsFiles;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSyslog {
    /// The address to listen on, such as `0.0.0.0:514` or `127.0.0.1:5514`.
    pub listen: Spanned<String>,
    /// udp | tcp | tls
    pub mode: Spanned<String>,
    /// `mode: tls`: the server certificate, as `api.tls` takes it (relative paths: to the config file).
    pub tls: Option<Spanned<RawTlsServer>>,
    /// Longer messages are cut to this many bytes (counted in sluice_lines_truncated_total); default 1 MiB.
    pub max_line_bytes: Option<Spanned<ByteSize>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Udp,
    Tcp,
    Tls,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyslogSpec {
    pub listen: SocketAddr,
    pub mode: Mode,
    pub tls: Option<TlsFiles>,
    pub max_message_bytes: usize,
}

pub fn validate(c: &mut Checker, s: &RawSyslog, field: &str) -> Option<SyslogSpec> {
    let field = format!("{field}.source.syslog");
    let before = c.error_count();
    let listen = match crate::config::resolve_listen(&s.listen.value) {
        Ok(addr) => Some(addr),
        Err(e) => {
            c.at(&s.listen, &format!("{field}.listen"), e);
            None
        }
    };
    let mode = match s.mode.value.as_str() {
        "udp" => Mode::Udp,
        "tcp" => Mode::Tcp,
        "tls" => Mode::Tls,
        other => {
            c.at(&s.mode, &format!("{field}.mode"), format!("`{other}` is not udp, tcp or tls"));
            Mode::Udp
        }
    };
    let tls = match (&s.tls, mode) {
        (Some(t), Mode::Tls) => {
            let files =
                TlsFiles { cert_file: c.path(&t.value.cert_file.value), key_file: c.path(&t.value.key_file.value) };
            for (path, name, spanned) in
                [(&files.cert_file, "cert_file", &t.value.cert_file), (&files.key_file, "key_file", &t.value.key_file)]
            {
                if let Err(e) = std::fs::metadata(path) {
                    c.at(spanned, &format!("{field}.tls.{name}"), format!("cannot read `{}`: {e}", path.display()));
                }
            }
            Some(files)
        }
        (None, Mode::Tls) => {
            c.at(&s.mode, &format!("{field}.tls"), "is required with `mode: tls` (cert_file and key_file)");
            None
        }
        (Some(t), _) => {
            c.at(t, &format!("{field}.tls"), "applies to `mode: tls` only");
            None
        }
        (None, _) => None,
    };
    let max_message_bytes = max_line_bytes(c, s.max_line_bytes.as_ref(), &field);
    (c.error_count() == before).then_some(SyslogSpec { listen: listen?, mode, tls, max_message_bytes })
}
