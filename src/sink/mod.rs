//! Destinations, where a pipeline's records go. Every pipeline has an object store
//! (`object_store.rs`: S3 and S3-compatible servers, or a local directory, through the
//! object_store crate), which is the destination itself or the backup of a sending destination.
//! Each sending destination is one folder (`http_endpoint/`, `opensearch/`, `splunk/`,
//! `postgres/`, `redshift/`) owning its options (`config.rs`), its Firehose mapping (`firehose.rs`)
//! and its runtime, which implements the one small [`destination::Destination`] trait; Redshift
//! loads what was staged in the object store instead. `config::destinations` lists the kinds and
//! [`open`] starts one.

pub mod destination;
pub mod http_client;
pub mod http_endpoint;
pub mod object_store;
pub mod opensearch;
pub mod postgres;
pub mod probe;
pub mod redshift;
pub mod retry;
pub mod splunk;

pub use self::object_store::{ObjectSink, SinkError};
pub use self::probe::Probe;
use std::sync::Arc;

use crate::config::SendingSpec;
use destination::Destination;

/// The runtime half of the registry (`config::destinations` lists the kinds): the destination a
/// pipeline sends to, or the Redshift cluster it loads (its batches are
/// staged as objects first, `warehouse.rs`).
pub type Opened = (Option<Arc<dyn Destination>>, Option<Arc<redshift::Redshift>>);

/// `stream_arn` is what the HTTP endpoint protocol sends as the source (`X-Amz-Firehose-Source-Arn`).
pub fn open(spec: &SendingSpec, pipeline: &str, stream_arn: &str) -> Result<Opened, SinkError> {
    Ok(match spec {
        SendingSpec::Http(h) => (Some(Arc::new(http_endpoint::HttpEndpoint::new(h, stream_arn)?)), None),
        SendingSpec::Search(s) => (Some(Arc::new(opensearch::OpenSearch::new(s)?)), None),
        SendingSpec::Splunk(s) => (Some(Arc::new(splunk::Splunk::new(s, pipeline)?)), None),
        SendingSpec::Postgres(p) => (Some(Arc::new(postgres::Postgres::new(p)?)), None),
        SendingSpec::Redshift(r) => (None, Some(Arc::new(redshift::Redshift::new(r)?))),
    })
}
