//! `source: http:`: NDJSON, text lines or raw bodies posted to a path on the API port, kept in the
//! WAL before the answer. `config.rs` owns its options and this module cuts a body into records;
//! the request handler is the API's (`api/http_source.rs`: reading the body, authentication,
//! answers), which writes the records through the pipeline's `IngestPort`.

pub mod config;

use thiserror::Error;

use super::lines::LineSplitter;
use config::{HttpFormat, HttpSourceSpec};

/// Why none of a body's records was written.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BodyError {
    /// A record over `max_line_bytes` (413: the sender should not retry it as is).
    #[error("{0}")]
    TooLarge(String),
    /// A line of an `ndjson` body that is not JSON (400).
    #[error("{0}")]
    Invalid(String),
}

/// The body's records, each checked; blank lines are skipped.
pub fn split(spec: &HttpSourceSpec, body: &[u8]) -> Result<Vec<Vec<u8>>, BodyError> {
    if spec.format == HttpFormat::Raw {
        if body.len() > spec.max_line_bytes {
            return Err(BodyError::TooLarge(format!(
                "the record exceeds max_line_bytes ({} bytes)",
                spec.max_line_bytes
            )));
        }
        return Ok(if body.is_empty() { Vec::new() } else { vec![body.to_vec()] });
    }
    let mut lines = Vec::new();
    // Cut at max + 1 so an over-long line shows as such and is refused, not cut.
    let mut splitter = LineSplitter::new(spec.max_line_bytes + 1, None);
    splitter.push(body, 0, &mut lines);
    lines.extend(splitter.finish(body.len() as u64));
    let mut records = Vec::with_capacity(lines.len());
    for (i, line) in lines.into_iter().enumerate() {
        let text = line.data.strip_suffix(b"\n").unwrap_or(&line.data);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if line.truncated || text.len() > spec.max_line_bytes {
            return Err(BodyError::TooLarge(format!(
                "line {} exceeds max_line_bytes ({} bytes); nothing was written",
                i + 1,
                spec.max_line_bytes
            )));
        }
        if spec.format == HttpFormat::Ndjson {
            if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(text) {
                return Err(BodyError::Invalid(format!("line {} is not JSON ({e}); nothing was written", i + 1)));
            }
        }
        records.push(line.data);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(format: HttpFormat) -> HttpSourceSpec {
        HttpSourceSpec { path: "/p".into(), format, bearer_token: None, max_body_bytes: 1 << 20, max_line_bytes: 8 }
    }

    #[test]
    fn bodies_are_cut_into_checked_records_or_refused_whole() {
        let records = split(&spec(HttpFormat::Ndjson), b"{\"a\":1}\n\n  \r\n[2]\r\n").unwrap();
        assert_eq!(records, vec![b"{\"a\":1}\n".to_vec(), b"[2]\r\n".to_vec()]);
        assert!(matches!(split(&spec(HttpFormat::Ndjson), b"{}\nnot json\n"), Err(BodyError::Invalid(_))));
        assert!(matches!(split(&spec(HttpFormat::Lines), b"123456789\n"), Err(BodyError::TooLarge(_))));
        // A last line without its newline gets one, as every line record ends with it (`lines.rs`).
        assert_eq!(split(&spec(HttpFormat::Lines), b"any text").unwrap(), vec![b"any text\n".to_vec()]);
        assert_eq!(split(&spec(HttpFormat::Raw), b"a\nb").unwrap(), vec![b"a\nb".to_vec()]);
        assert!(split(&spec(HttpFormat::Raw), b"").unwrap().is_empty());
    }
}
