//! `source: http:` as written (plain HTTP posts on the API port), its validated form, and the rules
//! between them. A config-layer module: it imports only the config kit, so `config` can list it.

use serde::Deserialize;

use crate::config::kit::{max_line_bytes, ByteSize, Checker, Secret, Spanned};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpSource {
    /// Default `/ingest/<pipeline>`.
    pub path: Option<Spanned<String>>,
    /// `ndjson` (default: one JSON record per line, checked), `lines` (one record per line, any
    /// text) or `raw` (the whole body is one record).
    pub format: Option<Spanned<String>>,
    /// Clients must send `Authorization: Bearer <token>`; required unless the API listens on
    /// loopback only.
    pub bearer_token: Option<Spanned<String>>,
    /// Largest body taken, after decompression (default 10 MiB).
    pub max_body_bytes: Option<Spanned<ByteSize>>,
    /// Largest record (default 1 MiB, as Firehose's 1,000 KiB record limit rounds up).
    pub max_line_bytes: Option<Spanned<ByteSize>>,
}

/// Where a `source: http:` pipeline is posted to and what its bodies hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpSourceSpec {
    pub path: String,
    pub format: HttpFormat,
    pub bearer_token: Option<Secret>,
    pub max_body_bytes: usize,
    pub max_line_bytes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpFormat {
    /// One JSON value per line, each checked.
    Ndjson,
    /// One record per line, any bytes.
    Lines,
    /// The whole body is one record.
    Raw,
}

/// Paths the API itself answers on.
const RESERVED_PATHS: [&str; 5] = ["/", "/health", "/ready", "/metrics", "/http-endpoint"];

pub fn validate(c: &mut Checker, h: &RawHttpSource, name: &str, field: &str) -> HttpSourceSpec {
    let field = format!("{field}.source.http");
    let path = h.path.as_ref().map_or_else(|| format!("/ingest/{name}"), |p| p.value.clone());
    if let Some(p) = &h.path {
        let reserved =
            RESERVED_PATHS.iter().any(|r| p.value == *r || (*r != "/" && p.value.starts_with(&format!("{r}/"))));
        if !p.value.starts_with('/') || p.value.contains(['?', '#', ' ']) {
            c.at(p, &format!("{field}.path"), "must be a URL path such as /ingest/app-logs");
        } else if reserved {
            c.at(p, &format!("{field}.path"), format!("`{}` is one of the API's own paths", p.value));
        }
    }
    let format = match h.format.as_ref().map(|f| f.value.as_str()) {
        None | Some("ndjson") => HttpFormat::Ndjson,
        Some("lines") => HttpFormat::Lines,
        Some("raw") => HttpFormat::Raw,
        Some(other) => {
            if let Some(f) = &h.format {
                let hint = crate::config::teach::hint(other, ["ndjson", "lines", "raw"]);
                c.at(f, &format!("{field}.format"), format!("`{other}` is not ndjson, lines or raw{hint}"));
            }
            HttpFormat::Ndjson
        }
    };
    let max_body_bytes = match &h.max_body_bytes {
        Some(b) if !(1024..=1 << 30).contains(&b.value.0) => {
            c.at(b, &format!("{field}.max_body_bytes"), "must be between 1KiB and 1GiB");
            10 << 20
        }
        Some(b) => b.value.0 as usize,
        None => 10 << 20,
    };
    if let Some(t) = &h.bearer_token {
        if t.value.trim().is_empty() {
            c.at(t, &format!("{field}.bearer_token"), "must not be empty");
        }
    }
    HttpSourceSpec {
        path,
        format,
        bearer_token: h.bearer_token.as_ref().map(|t| Secret::new(t.value.clone())),
        max_body_bytes,
        max_line_bytes: max_line_bytes(c, h.max_line_bytes.as_ref(), &field),
    }
}
