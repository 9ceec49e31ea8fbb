//! `source: firehose_http_endpoint:` options: the access keys a sender must present.

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::kit::Secret;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFirehoseHttpEndpoint {
    /// The AccessKey the sender is configured with (`X-Amz-Firehose-Access-Key`).
    pub access_key: Option<Spanned<String>>,
    /// Several accepted keys (a rotation: old and new), in addition to `access_key`.
    #[serde(default)]
    pub access_keys: Vec<Spanned<String>>,
}

/// The keys a sender may present (any key when empty).
pub fn access_keys(raw: &RawFirehoseHttpEndpoint) -> Vec<Secret> {
    raw.access_key.iter().chain(&raw.access_keys).map(|k| Secret::new(k.value.clone())).collect()
}
