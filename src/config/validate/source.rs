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
    let leases = k.leases.as_ref().map(|l| lease_spec(c, l, &field, &region));
    (c.errors.len() == before).then(|| KinesisSourceSpec {
        stream_name,
        stream_arn,
        region,
        endpoint: k.endpoint.as_ref().map(|e| e.value.clone()),
        starting_position,
        leases,
    })
}

/// `leases:`: the DynamoDB table shards are shared through.
fn lease_spec(c: &mut Checker, l: &crate::config::RawLeases, field: &str, region: &str) -> LeaseSpec {
    let table = &l.dynamodb.table;
    // DynamoDB's own rule for table names.
    let valid = (3..=255).contains(&table.value.len())
        && table.value.chars().all(|ch| ch.is_ascii_alphanumeric() || "_-.".contains(ch));
    if !valid {
        c.at(table, &format!("{field}.leases.dynamodb.table"), "must be 3 to 255 letters, digits, `_`, `-` or `.`");
    }
    if let Some(e) = &l.dynamodb.endpoint {
        if !(e.value.starts_with("http://") || e.value.starts_with("https://")) {
            c.at(e, &format!("{field}.leases.dynamodb.endpoint"), "must be an http:// or https:// URL");
        }
    }
    let seconds = l.lease_duration_seconds.as_ref().map_or(10, |d| d.value);
    if let Some(d) = &l.lease_duration_seconds {
        if !(1..=3600).contains(&d.value) {
            c.at(d, &format!("{field}.leases.lease_duration_seconds"), "must be between 1 and 3600");
        }
    }
    let owner = match &l.owner {
        Some(o) if o.value.trim().is_empty() => {
            c.at(o, &format!("{field}.leases.owner"), "must not be empty");
            String::new()
        }
        Some(o) => o.value.clone(),
        None => default_lease_owner(),
    };
    LeaseSpec {
        table: table.value.clone(),
        endpoint: l.dynamodb.endpoint.as_ref().map(|e| e.value.clone()),
        region: l.dynamodb.region.as_ref().map_or_else(|| region.to_string(), |r| r.value.clone()),
        owner,
        lease_duration: std::time::Duration::from_secs(seconds),
    }
}

/// The host's name and a random suffix: unique per daemon run (the same for every pipeline of
/// it, so validating a config twice gives the same spec), and readable in the table.
fn default_lease_owner() -> String {
    static OWNER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    OWNER.get_or_init(host_and_suffix).clone()
}

fn host_and_suffix() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sluice".to_string());
    format!("{host}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}
