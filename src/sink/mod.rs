//! Destinations: object stores (S3 and S3-compatible servers, a local directory), all through
//! object_store; the sending destinations behind the `Destination` trait (HTTP endpoint,
//! OpenSearch, Splunk, PostgreSQL); and Redshift, which loads what was staged in an object store.

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
