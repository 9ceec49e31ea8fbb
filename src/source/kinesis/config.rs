//! `source: kinesis:` as written (Firehose's KinesisStreamSourceConfiguration, and the KCL-style
//! lease table for several daemons), its validated form, and the rules between them. A
//! config-layer module: it imports only the config kit, so `config` can list it.

use serde::Deserialize;

use crate::config::kit::{Checker, Spanned};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKinesis {
    pub stream_arn: Option<Spanned<String>>,
    pub stream_name: Option<Spanned<String>>,
    pub region: Option<Spanned<String>>,
    /// kinesalite, LocalStack, a VPC endpoint.
    pub endpoint: Option<Spanned<String>>,
    /// LATEST (Firehose's default) | TRIM_HORIZON | AT_TIMESTAMP
    pub starting_position: Option<Spanned<String>>,
    pub starting_timestamp: Option<Spanned<String>>,
    /// Shards shared by several daemons through a DynamoDB lease table.
    pub leases: Option<RawLeases>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLeases {
    pub dynamodb: RawLeaseTable,
    /// This daemon's name in the table (default: host name and a random suffix).
    pub owner: Option<Spanned<String>>,
    /// How long a lease lasts without renewal before another daemon may take it (KCL's
    /// failover time; default 10).
    pub lease_duration_seconds: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLeaseTable {
    pub table: Spanned<String>,
    pub endpoint: Option<Spanned<String>>,
    /// Default: the stream's region.
    pub region: Option<Spanned<String>>,
}

/// Where a KinesisStreamAsSource pipeline reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KinesisSourceSpec {
    pub stream_name: String,
    pub stream_arn: String,
    pub region: String,
    pub endpoint: Option<String>,
    pub starting_position: StartingPosition,
    /// Shards shared with other daemons through a lease table; `None`: this daemon reads them all.
    pub leases: Option<LeaseSpec>,
}

/// A DynamoDB lease table in the KCL's style (source/kinesis/leases.rs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseSpec {
    pub table: String,
    pub endpoint: Option<String>,
    pub region: String,
    /// Unique per daemon; a restarted daemon with the same name takes its leases back at once.
    pub owner: String,
    pub lease_duration: std::time::Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartingPosition {
    Latest,
    TrimHorizon,
    /// Milliseconds since the epoch.
    AtTimestamp(i64),
}

/// `source: kinesis:`: the stream by ARN, or by name and region.
pub fn validate(c: &mut Checker, k: &RawKinesis, field: &str) -> Option<KinesisSourceSpec> {
    let field = format!("{field}.source.kinesis");
    let before = c.error_count();
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
            let region = k.region.as_ref().map_or_else(|| c.identity().region.clone(), |r| r.value.clone());
            let arn = format!("arn:aws:kinesis:{region}:{}:stream/{}", c.identity().account_id, name.value);
            (name.value.clone(), arn, region)
        }
        (None, None) => {
            c.plain(format!("{field}: needs stream_arn, or stream_name (and region)"));
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
        "AT_TIMESTAMP" => crate::config::kit::starting_timestamp(c, &k.starting_timestamp, &field)
            .map_or(StartingPosition::Latest, StartingPosition::AtTimestamp),
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
    (c.error_count() == before).then(|| KinesisSourceSpec {
        stream_name,
        stream_arn,
        region,
        endpoint: k.endpoint.as_ref().map(|e| e.value.clone()),
        starting_position,
        leases,
    })
}

/// `leases:`: the DynamoDB table shards are shared through.
fn lease_spec(c: &mut Checker, l: &RawLeases, field: &str, region: &str) -> LeaseSpec {
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
    let host = crate::host::hostname().unwrap_or("sluice");
    format!("{host}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}
