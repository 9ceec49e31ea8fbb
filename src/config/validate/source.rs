//! Sources other than Direct PUT: where a pipeline reads.

use super::*;

/// `source: kinesis:`: the stream by ARN, or by name and region.
pub(super) fn kinesis_source(c: &mut Checker, k: &crate::config::RawKinesis, field: &str) -> Option<KinesisSourceSpec> {
    let field = format!("{field}.source.kinesis");
    let before = c.errors.len();
    let (stream_name, stream_arn, region) = match (&k.stream_arn, &k.stream_name) {
        (Some(arn), _) => {
            // arn:aws:kinesis:<region>:<account>:stream/<name>
            let parts: Vec<&str> = arn.value.splitn(6, ':').collect();
            match parts.as_slice() {
                ["arn", _, "kinesis", region, _, resource] if resource.starts_with("stream/") && resource.len() > 7 => {
                    (resource[7..].to_string(), arn.value.clone(), region.to_string())
                }
                _ => {
                    c.at(
                        arn,
                        &format!("{field}.stream_arn"),
                        "must be a stream ARN such as arn:aws:kinesis:us-east-1:123456789012:stream/name",
                    );
                    return None;
                }
            }
        }
        (None, Some(name)) => {
            let region = k.region.as_ref().map_or_else(|| "us-east-1".to_string(), |r| r.value.clone());
            let arn = format!("arn:aws:kinesis:{region}:{}:stream/{}", crate::daemon::account_id(), name.value);
            (name.value.clone(), arn, region)
        }
        (None, None) => {
            c.errors
                .push(ConfigError::plain(c.origin, format!("{field}: needs stream_arn, or stream_name (and region)")));
            return None;
        }
    };
    let region = k.region.as_ref().map_or(region, |r| r.value.clone());
    if let Some(e) = &k.endpoint {
        if !(e.value.starts_with("http://") || e.value.starts_with("https://")) {
            c.at(e, &format!("{field}.endpoint"), "must be an http:// or https:// URL");
        }
    }
    let position = k.starting_position.as_ref().map_or("LATEST", |p| p.value.as_str());
    let starting_position = match position {
        "LATEST" => StartingPosition::Latest,
        "TRIM_HORIZON" => StartingPosition::TrimHorizon,
        "AT_TIMESTAMP" => match &k.starting_timestamp {
            Some(t) => match chrono::DateTime::parse_from_rfc3339(&t.value) {
                Ok(at) => StartingPosition::AtTimestamp(at.timestamp_millis()),
                Err(e) => {
                    c.at(
                        t,
                        &format!("{field}.starting_timestamp"),
                        format!("is not an RFC 3339 time such as 2026-12-01T00:00:00Z: {e}"),
                    );
                    StartingPosition::Latest
                }
            },
            None => {
                c.errors.push(ConfigError::plain(
                    c.origin,
                    format!("{field}.starting_timestamp is required with AT_TIMESTAMP"),
                ));
                StartingPosition::Latest
            }
        },
        other => {
            if let Some(p) = &k.starting_position {
                let hint = crate::config::teach::hint(other, ["LATEST", "TRIM_HORIZON", "AT_TIMESTAMP"]);
                c.at(
                    p,
                    &format!("{field}.starting_position"),
                    format!("`{other}` is not LATEST, TRIM_HORIZON or AT_TIMESTAMP{hint}"),
                );
            }
            StartingPosition::Latest
        }
    };
    if let Some(l) = &k.leases {
        c.at(l, &format!("{field}.leases"), "shared leases (several daemons on one stream) are not supported yet: remove `leases:` and run one daemon per stream");
    }
    (c.errors.len() == before).then(|| KinesisSourceSpec {
        stream_name,
        stream_arn,
        region,
        endpoint: k.endpoint.as_ref().map(|e| e.value.clone()),
        starting_position,
    })
}
