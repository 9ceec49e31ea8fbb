//! sluice: a self-hosted, durable delivery daemon that speaks the Amazon Data Firehose API.
//!
//! A record's path: [`api`] (the Firehose wire API) → [`source`] (Direct PUT, HTTP, stdin into the
//! WAL in [`buffer::wal`]; Kinesis, files and journald checkpointed instead) → [`process`]
//! (processors) → [`buffer`] (partitions, batches, batch names) → [`format`] (encoding,
//! compression, object keys) → [`sink`] (object stores, HTTP endpoints, OpenSearch, Splunk,
//! PostgreSQL, Redshift). [`pipeline`] runs one stream; [`daemon`] runs them all from [`config`]
//! and [`control`] (streams created over the API).
//!
//! Modules are layered and imports point down: ARCHITECTURE.md draws the layers and
//! `scripts/check-layers.py` enforces them.

pub mod api;
pub mod aws;
pub mod bench;
pub mod buffer;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod durable_file;
pub mod format;
pub mod hash;
pub mod host;
pub mod identity;
pub mod kafka;
pub mod metrics;
pub mod pipeline;
pub mod process;
pub mod record;
pub mod shutdown;
pub mod sink;
pub mod source;
pub mod state_lock;
pub mod status;
pub mod stored;
pub mod tls;
