//! Destinations, where a pipeline's records go. Every pipeline has an object store
//! (`object_store.rs`: S3 and S3-compatible servers, or a local directory, through the
//! object_store crate), which is the destination itself or the backup of a sending destination.
//! Each sending destination is one folder (`http_endpoint/`, `opensearch/`, `splunk/`,
//! `postgres/`, `redshift/`, `kafka/`, `iceberg/`) owning its options (`config.rs`), its Firehose mapping (`firehose.rs`)
//! and its runtime, which implements the one small [`destination::Destination`] trait, or
//! [`loader::Loader`] for a warehouse that loads what was staged in the object store (Redshift).
//! `config::destinations` lists the kinds and [`open`] starts one.

pub mod destination;
pub mod http_client;
pub mod http_endpoint;
pub mod iceberg;
pub mod kafka;
pub mod loader;
pub mod object_store;
pub mod opensearch;
pub mod postgres;
pub mod probe;
pub mod redshift;
pub mod retry;
pub mod splunk;
pub mod stdout;
pub mod store_error;

pub use self::object_store::{ObjectSink, SinkError};
pub use self::probe::Probe;
use std::sync::Arc;

use crate::config::SendingSpec;
use destination::Destination;
use loader::Loader;

/// A pipeline's destination beyond its object store, opened.
pub enum Opened {
    /// Records are sent in requests ([`Destination`]).
    Sends(Arc<dyn Destination>),
    /// Batches are staged as objects, then loaded ([`Loader`]).
    Loads(Arc<dyn Loader>),
}

/// The runtime half of the registry (`config::destinations` lists the kinds).
/// `stream_arn` is what the HTTP endpoint protocol sends as the source (`X-Amz-Firehose-Source-Arn`);
/// `instance` is unique to the state directory and the destination and stable across restarts
/// (Kafka's transactional id is made from it).
pub fn open(spec: &SendingSpec, pipeline: &str, stream_arn: &str, instance: &str) -> Result<Opened, SinkError> {
    Ok(match spec {
        SendingSpec::Http(h) => Opened::Sends(Arc::new(http_endpoint::HttpEndpoint::new(h, stream_arn)?)),
        SendingSpec::Search(s) => Opened::Sends(Arc::new(opensearch::OpenSearch::new(s)?)),
        SendingSpec::Splunk(s) => Opened::Sends(Arc::new(splunk::Splunk::new(s, pipeline)?)),
        SendingSpec::Postgres(p) => Opened::Sends(Arc::new(postgres::Postgres::new(p)?)),
        SendingSpec::Redshift(r) => Opened::Loads(Arc::new(redshift::Redshift::new(r)?)),
        SendingSpec::Stdout(_) => Opened::Sends(Arc::new(stdout::Stdout)),
        SendingSpec::Kafka(k) => Opened::Sends(Arc::new(kafka::Kafka::new(k, pipeline, instance)?)),
        SendingSpec::Iceberg(i) => Opened::Sends(Arc::new(iceberg::Iceberg::new(i)?)),
    })
}
