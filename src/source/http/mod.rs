//! `source: http:`: NDJSON, text lines or raw bodies posted to a path on the API port, kept in the
//! WAL before the answer. `config.rs` owns its options; the request handler is the API's
//! (`api/http_source.rs`), which splits bodies as the spec says and writes through the pipeline's
//! `IngestPort`.

pub mod config;
