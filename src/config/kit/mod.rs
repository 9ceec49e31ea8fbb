//! The toolkit a connector's config module (`sink/<kind>/config.rs`) validates with: the problem
//! collector and the checks every destination shares, so each connector owns its own options and
//! rules while errors keep one shape (file, line, column, field, and a hint).

pub use super::validate::Checker;
pub(crate) use super::validate::{ca_file, choose, http_url, retry_duration};
pub use super::{ByteSize, RawDestination, RawTls, Secret};
pub use serde_saphyr::Spanned;
pub mod firehose;

/// What every destination's DescribeDeliveryStream description shares, computed once for a stream:
/// each destination's `firehose::describe` places these where its Firehose shape has them.
pub struct DescribeContext {
    pub role_arn: String,
    /// `S3DestinationDescription`: the backup (or staging) store.
    pub backup: serde_json::Value,
    /// `ProcessingConfiguration`.
    pub processing: serde_json::Value,
    /// `BufferingHints`.
    pub buffering: serde_json::Value,
}
