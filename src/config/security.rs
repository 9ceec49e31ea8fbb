//! `api:` identity, authentication and TLS: who may call the API, over what.
//!
//! ```yaml
//! api:
//!   account_id: "123456789012"       # in ARNs and error messages (default 000000000000)
//!   region: us-east-1                # in ARNs
//!   auth:
//!     access_keys:
//!       - { id: AKIDCLICKS, secret: "${CLICKS_SECRET}", streams: ["clicks*"], actions: ["PutRecord*"] }
//!   tls: { cert_file: /etc/sluice/tls.crt, key_file: /etc/sluice/tls.key }
//! ```

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::validate::{ConfigError, Secret};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    #[serde(default)]
    pub access_keys: Vec<Spanned<RawAccessKey>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccessKey {
    pub id: Spanned<String>,
    pub secret: Spanned<String>,
    /// Stream name patterns (`*` matches any run of characters); default: every stream.
    pub streams: Option<Vec<Spanned<String>>>,
    /// Operation patterns such as `PutRecord*` or `Describe*`; default: every operation.
    pub actions: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTlsServer {
    pub cert_file: Spanned<String>,
    pub key_file: Spanned<String>,
}

pub use crate::identity::Identity;

/// One access key: its secret, and what it may do.
#[derive(Clone, Debug)]
pub struct AccessKey {
    pub id: String,
    pub secret: Secret,
    pub streams: Vec<Pattern>,
    pub actions: Vec<Pattern>,
}

impl AccessKey {
    /// Whether this key may call `operation` (on `stream`, for operations that name one).
    pub fn allows(&self, operation: &str, stream: Option<&str>) -> bool {
        let action_ok = self.actions.is_empty() || self.actions.iter().any(|p| p.matches(operation));
        let stream_ok = match stream {
            Some(s) => self.streams.is_empty() || self.streams.iter().any(|p| p.matches(s)),
            // ListDeliveryStreams names no stream; a key limited to some streams still may list.
            None => true,
        };
        action_ok && stream_ok
    }
}

/// A glob with `*` only, as IAM resource patterns are written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    pub fn new(text: &str) -> Self {
        Pattern(text.to_string())
    }

    pub fn matches(&self, text: &str) -> bool {
        let parts: Vec<&str> = self.0.split('*').collect();
        // No `*`: one part, matched exactly.
        let [first, middle @ .., last] = parts.as_slice() else { return self.0 == text };
        let Some(mut rest) = text.strip_prefix(first) else { return false };
        for part in middle {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

pub use crate::tls::TlsFiles;

#[derive(Clone, Debug, Default)]
pub struct ApiSecurity {
    /// `None`: requests are not authenticated (signatures are ignored).
    pub access_keys: Option<Vec<AccessKey>>,
    pub tls: Option<TlsFiles>,
}

/// Every Firehose operation and sluice's own actions, for checking `actions` patterns.
const OPERATIONS: &[&str] = &[
    "CreateDeliveryStream",
    "DeleteDeliveryStream",
    "DescribeDeliveryStream",
    "ListDeliveryStreams",
    "ListTagsForDeliveryStream",
    "PutRecord",
    "PutRecordBatch",
    "StartDeliveryStreamEncryption",
    "StopDeliveryStreamEncryption",
    "TagDeliveryStream",
    "UntagDeliveryStream",
    "UpdateDestination",
    // sluice's own: `GET /tap/<stream>` and the web console.
    "Tap",
    "Console",
];

pub(super) fn validate(
    raw: &super::RawApi,
    errors: &mut Vec<ConfigError>,
    origin: &str,
    base: &std::path::Path,
) -> (Identity, ApiSecurity) {
    let mut identity = Identity::default();
    if let Some(a) = &raw.account_id {
        if a.value.len() != 12 || !a.value.bytes().all(|b| b.is_ascii_digit()) {
            errors.push(ConfigError::at(
                origin,
                a,
                "api.account_id",
                "must be 12 digits, as AWS account ids are".into(),
            ));
        }
        identity.account_id = a.value.clone();
    }
    if let Some(r) = &raw.region {
        if r.value.is_empty() || !r.value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            errors.push(ConfigError::at(origin, r, "api.region", "must be a region name such as us-east-1".into()));
        }
        identity.region = r.value.clone();
    }
    let access_keys = raw.auth.as_ref().map(|auth| {
        if auth.value.access_keys.is_empty() {
            errors.push(ConfigError::at(
                origin,
                auth,
                "api.auth.access_keys",
                "must list at least one key; remove `auth:` to turn authentication off".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        auth.value
            .access_keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let field = format!("api.auth.access_keys[{i}]");
                let id = &k.value.id;
                if !(3..=128).contains(&id.value.len()) || !id.value.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    errors.push(ConfigError::at(
                        origin,
                        id,
                        &format!("{field}.id"),
                        "must be 3-128 letters and digits (AWS access key ids are 16-128)".into(),
                    ));
                } else if !seen.insert(id.value.clone()) {
                    errors.push(ConfigError::at(origin, id, &format!("{field}.id"), "is listed twice".into()));
                }
                if k.value.secret.value.len() < 8 {
                    errors.push(ConfigError::at(
                        origin,
                        &k.value.secret,
                        &format!("{field}.secret"),
                        "must be at least 8 characters".into(),
                    ));
                }
                let actions: Vec<Pattern> = k
                    .value
                    .actions
                    .iter()
                    .flatten()
                    .map(|a| {
                        let p = Pattern::new(&a.value);
                        if !OPERATIONS.iter().any(|op| p.matches(op)) {
                            let hint = super::teach::hint(&a.value, OPERATIONS.iter().copied());
                            errors.push(ConfigError::at(
                                origin,
                                a,
                                &format!("{field}.actions"),
                                format!("`{}` matches no Firehose operation or sluice action{hint}", a.value),
                            ));
                        }
                        p
                    })
                    .collect();
                AccessKey {
                    id: id.value.clone(),
                    secret: Secret::new(k.value.secret.value.clone()),
                    streams: k.value.streams.iter().flatten().map(|s| Pattern::new(&s.value)).collect(),
                    actions,
                }
            })
            .collect()
    });
    let tls = raw.tls.as_ref().map(|t| TlsFiles {
        cert_file: super::errors::relative_to(base, &t.value.cert_file.value),
        key_file: super::errors::relative_to(base, &t.value.key_file.value),
    });
    (identity, ApiSecurity { access_keys, tls })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_like_iam_globs() {
        assert!(Pattern::new("clicks*").matches("clicks-prod"));
        assert!(Pattern::new("*").matches(""));
        assert!(Pattern::new("Put*Batch").matches("PutRecordBatch"));
        assert!(!Pattern::new("Put*Batch").matches("PutRecord"));
        assert!(Pattern::new("exact").matches("exact"));
        assert!(!Pattern::new("exact").matches("exactly"));
        assert!(Pattern::new("*-prod").matches("clicks-prod"));
        assert!(!Pattern::new("a*a").matches("a"));
    }
}
