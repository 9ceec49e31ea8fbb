//! sluice: a self-hosted, durable delivery daemon that speaks the Amazon Data Firehose API.
//!
//! A record's path: [`api`] (Firehose wire API) → [`source`] (Direct PUT into the WAL in
//! [`buffer::wal`]) → [`pipeline`] (batching per partition, delivery, watermark) → [`format`]
//! (encoding and compression) → [`sink`] (object stores). [`config`] declares pipelines;
//! [`daemon`] runs them.

pub mod api;
pub mod aws_request;
pub mod bench;
pub mod buffer;
pub mod config;
pub mod control;
pub mod daemon;
pub mod durable_file;
pub mod format;
pub mod hash;
pub mod host;
pub mod identity;
pub mod metrics;
pub mod pipeline;
pub mod process;
pub mod record;
pub mod sink;
pub mod source;
pub mod state_lock;
