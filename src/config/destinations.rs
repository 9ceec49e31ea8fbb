//! The registry of destinations: every kind a pipeline can deliver to, listed once.
//!
//! A sending destination is one folder, `src/sink/<kind>/`, which owns everything about it:
//! `config.rs` (its options as written, its validated spec, its rules), `firehose.rs` (its Firehose
//! CreateDeliveryStream member and DescribeDeliveryStream shape) and the runtime (`mod.rs`: the
//! `Destination` that sends batches). Adding one is that folder plus one line in each `match` of
//! this file and one arm in `sink::open`; nothing else in the code names it.
//!
//! The object stores (`s3:`, `local:`) are the base every pipeline has (the backup of a sending
//! destination, the staging of Redshift); they are validated in `validate/destination.rs`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use super::control_plane::ControlPlane;
use super::kit::firehose::{Result, Translated};
use super::kit::{Checker, DeliveryMetric, DescribeContext, ObjectDestination, PartitionContext};
use super::RawObjectStore;

/// `destination:` as written: externally tagged, so the YAML key names the kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum RawDestination {
    S3(RawObjectStore),
    Local(RawObjectStore),
    /// Firehose's HTTP endpoint destination (protocol 1.0), with an object store as its backup.
    HttpEndpoint(Box<crate::sink::http_endpoint::config::RawHttpEndpoint>),
    /// OpenSearch through `_bulk`; `elasticsearch:` is the same destination.
    Opensearch(Box<crate::sink::opensearch::config::RawSearch>),
    Elasticsearch(Box<crate::sink::opensearch::config::RawSearch>),
    /// Splunk's HTTP Event Collector, with indexer acknowledgement.
    Splunk(Box<crate::sink::splunk::config::RawSplunk>),
    /// A PostgreSQL table, loaded with COPY, exactly once.
    Postgres(Box<crate::sink::postgres::config::RawPostgres>),
    /// Redshift as Firehose loads it: staged in S3, then COPY.
    Redshift(Box<crate::sink::redshift::config::RawRedshift>),
    /// Standard output, one record per line (sluice's own: for trying pipelines).
    Stdout(Box<crate::sink::stdout::config::RawStdout>),
    /// A Kafka topic (sluice's own: Firehose has none), a transaction per batch.
    Kafka(Box<crate::sink::kafka::config::RawKafkaDestination>),
    /// Apache Iceberg tables through a Glue, REST or SQL catalog, exactly once.
    Iceberg(Box<crate::sink::iceberg::config::RawIceberg>),
}

impl RawDestination {
    /// The YAML key naming this kind (messages, and a fan-out destination's default name).
    pub fn kind(&self) -> &'static str {
        match self {
            RawDestination::S3(_) => "s3",
            RawDestination::Local(_) => "local",
            RawDestination::HttpEndpoint(_) => "http_endpoint",
            RawDestination::Opensearch(_) => "opensearch",
            RawDestination::Elasticsearch(_) => "elasticsearch",
            RawDestination::Splunk(_) => "splunk",
            RawDestination::Postgres(_) => "postgres",
            RawDestination::Redshift(_) => "redshift",
            RawDestination::Stdout(_) => "stdout",
            RawDestination::Kafka(_) => "kafka",
            RawDestination::Iceberg(_) => "iceberg",
        }
    }
}

/// `<name>` of every destination's `sluice_delivery_to_<name>_*` series, the object stores' first.
pub fn delivery_metric_names() -> impl Iterator<Item = &'static str> {
    ["s3", "local"].into_iter().chain(DELIVERY_METRICS.iter().map(|m| m.name))
}

/// A non-object destination a pipeline sends its batches to; its object store (the `backup:`)
/// receives failed records and, with `AllData`, a copy of everything.
#[derive(Clone, Debug, PartialEq)]
pub enum SendingSpec {
    Http(crate::sink::http_endpoint::config::HttpEndpointSpec),
    Search(crate::sink::opensearch::config::SearchSpec),
    Splunk(crate::sink::splunk::config::SplunkSpec),
    Postgres(crate::sink::postgres::config::PostgresSpec),
    Redshift(crate::sink::redshift::config::RedshiftSpec),
    Stdout(crate::sink::stdout::config::StdoutSpec),
    Kafka(crate::sink::kafka::config::KafkaDestinationSpec),
    Iceberg(crate::sink::iceberg::config::IcebergSpec),
}

/// A `destination:` checked by its kind's own rules.
pub(crate) enum Validated<'a> {
    /// `s3:` or `local:`: checked by the caller.
    ObjectStore,
    /// Sends batches; its `backup:` store is checked by the caller. `spec` is `None` when the
    /// destination's own options had problems (already reported).
    Sending { at: String, spec: Option<Box<SendingSpec>>, backup: &'a Spanned<RawDestination> },
    /// Stages batches in its own object store first (Redshift).
    Staged(Box<(ObjectDestination, SendingSpec)>),
    /// Staged, with problems (already reported).
    Invalid,
}

pub(crate) fn validate<'a>(
    c: &mut Checker,
    d: &'a Spanned<RawDestination>,
    field: &str,
    partitions: &PartitionContext,
) -> Validated<'a> {
    let sending =
        |at: String, spec: Option<SendingSpec>, backup| Validated::Sending { at, spec: spec.map(Box::new), backup };
    match &d.value {
        RawDestination::S3(_) | RawDestination::Local(_) => Validated::ObjectStore,
        RawDestination::HttpEndpoint(h) => {
            let at = format!("{field}.http_endpoint");
            let spec = crate::sink::http_endpoint::config::validate(c, h, &at).map(SendingSpec::Http);
            sending(at, spec, &h.backup)
        }
        RawDestination::Opensearch(s) | RawDestination::Elasticsearch(s) => {
            let elasticsearch = matches!(d.value, RawDestination::Elasticsearch(_));
            let at = format!("{field}.{}", if elasticsearch { "elasticsearch" } else { "opensearch" });
            let spec = crate::sink::opensearch::config::validate(c, s, &at, elasticsearch).map(SendingSpec::Search);
            sending(at, spec, &s.backup)
        }
        RawDestination::Splunk(s) => {
            let at = format!("{field}.splunk");
            let spec = crate::sink::splunk::config::validate(c, s, &at).map(SendingSpec::Splunk);
            sending(at, spec, &s.backup)
        }
        RawDestination::Postgres(p) => {
            let at = format!("{field}.postgres");
            let spec = crate::sink::postgres::config::validate(c, p, &at).map(SendingSpec::Postgres);
            sending(at, spec, &p.backup)
        }
        RawDestination::Redshift(r) => {
            let at = format!("{field}.redshift");
            if partitions.enabled {
                c.at(d, &at, "dynamic partitioning applies to S3 destinations only (Firehose rule)");
            }
            match crate::sink::redshift::config::validate(c, r, &at, partitions) {
                Some((store, spec)) => Validated::Staged(Box::new((store, SendingSpec::Redshift(spec)))),
                None => Validated::Invalid,
            }
        }
        RawDestination::Kafka(k) => {
            let at = format!("{field}.kafka");
            let spec = crate::sink::kafka::config::validate(c, k, &at).map(SendingSpec::Kafka);
            sending(at, spec, &k.backup)
        }
        RawDestination::Iceberg(i) => {
            let at = format!("{field}.iceberg");
            let spec = crate::sink::iceberg::config::validate(c, i, &at).map(SendingSpec::Iceberg);
            sending(at, spec, &i.backup)
        }
        RawDestination::Stdout(s) => {
            use crate::sink::stdout::config::{StdoutSpec, DEFAULT_BACKUP};
            let at = format!("{field}.stdout");
            let spec = SendingSpec::Stdout(StdoutSpec::default());
            match &s.backup {
                Some(backup) => sending(at, Some(spec), backup),
                None => {
                    let nowhere = serde_saphyr::Location::UNKNOWN;
                    let path = Spanned::new(DEFAULT_BACKUP.to_string(), nowhere, nowhere);
                    let raw = super::RawObjectStore { path: Some(path), ..Default::default() };
                    match super::kit::store_destination(c, d, "local", &raw, &format!("{at}.backup.local"), partitions)
                    {
                        Some(store) => Validated::Staged(Box::new((store, spec))),
                        None => Validated::Invalid,
                    }
                }
            }
        }
    }
}

/// The Firehose members (CreateDeliveryStream, UpdateDestination) of the destinations listed here;
/// the S3 ones are `stored::translate`'s own.
pub const FIREHOSE_MEMBERS: &[&str] = &[
    crate::sink::http_endpoint::firehose::MEMBER,
    crate::sink::opensearch::firehose::MEMBER,
    crate::sink::opensearch::firehose::ELASTICSEARCH_MEMBER,
    crate::sink::splunk::firehose::MEMBER,
    crate::sink::redshift::firehose::MEMBER,
    crate::sink::iceberg::firehose::MEMBER,
];

/// A stored destination member made ready for DescribeDeliveryStream: its secrets taken out and
/// its kind's own defaults filled in (the common ones are `stored::describe`'s).
pub fn describe_stored(member: &str, d: &mut serde_json::Map<String, Value>) {
    match member {
        crate::sink::http_endpoint::firehose::MEMBER => crate::sink::http_endpoint::firehose::describe_stored(d),
        crate::sink::splunk::firehose::MEMBER => crate::sink::splunk::firehose::describe_stored(d),
        crate::sink::redshift::firehose::MEMBER => crate::sink::redshift::firehose::describe_stored(d),
        _ => {}
    }
}

/// The `destination:` block for a Firehose destination member, if it is one of these kinds.
pub fn translate<'a>(member: &str, config: &'a Value, control: &ControlPlane) -> Option<Result<Translated<'a>>> {
    Some(match member {
        crate::sink::http_endpoint::firehose::MEMBER => {
            crate::sink::http_endpoint::firehose::translate(config, control)
        }
        crate::sink::opensearch::firehose::MEMBER | crate::sink::opensearch::firehose::ELASTICSEARCH_MEMBER => {
            crate::sink::opensearch::firehose::translate(config, member, control)
        }
        crate::sink::splunk::firehose::MEMBER => crate::sink::splunk::firehose::translate(config, control),
        crate::sink::redshift::firehose::MEMBER => crate::sink::redshift::firehose::translate(config, control),
        crate::sink::iceberg::firehose::MEMBER => crate::sink::iceberg::firehose::translate(config, control),
        _ => return None,
    })
}

/// Every sending destination's delivery metrics (the object stores' are `metrics.rs`'s own).
pub const DELIVERY_METRICS: &[&DeliveryMetric] = &[
    &crate::sink::http_endpoint::firehose::METRIC,
    &crate::sink::opensearch::firehose::METRIC,
    &crate::sink::splunk::firehose::METRIC,
    &crate::sink::postgres::firehose::METRIC,
    &crate::sink::redshift::firehose::METRIC,
    &crate::sink::stdout::firehose::METRIC,
    &crate::sink::kafka::firehose::METRIC,
    &crate::sink::iceberg::firehose::METRIC,
];

impl SendingSpec {
    /// The `<destination>` of its `sluice_delivery_to_<destination>_*` metrics (Firehose's DeliveryTo…).
    pub fn metric_name(&self) -> &'static str {
        match self {
            SendingSpec::Http(_) => crate::sink::http_endpoint::firehose::METRIC.name,
            SendingSpec::Search(_) => crate::sink::opensearch::firehose::METRIC.name,
            SendingSpec::Splunk(_) => crate::sink::splunk::firehose::METRIC.name,
            SendingSpec::Postgres(_) => crate::sink::postgres::firehose::METRIC.name,
            SendingSpec::Redshift(_) => crate::sink::redshift::firehose::METRIC.name,
            SendingSpec::Stdout(_) => crate::sink::stdout::firehose::METRIC.name,
            SendingSpec::Kafka(_) => crate::sink::kafka::firehose::METRIC.name,
            SendingSpec::Iceberg(_) => crate::sink::iceberg::firehose::METRIC.name,
        }
    }

    /// Its DescribeDeliveryStream member and description.
    pub fn describe(&self, ctx: &DescribeContext) -> (&'static str, Value) {
        match self {
            SendingSpec::Http(h) => crate::sink::http_endpoint::firehose::describe(h, ctx),
            SendingSpec::Search(s) => crate::sink::opensearch::firehose::describe(s, ctx),
            SendingSpec::Splunk(s) => crate::sink::splunk::firehose::describe(s, ctx),
            SendingSpec::Postgres(p) => crate::sink::postgres::firehose::describe(p, ctx),
            SendingSpec::Redshift(r) => crate::sink::redshift::firehose::describe(r, ctx),
            SendingSpec::Stdout(s) => crate::sink::stdout::firehose::describe(s, ctx),
            SendingSpec::Kafka(k) => crate::sink::kafka::firehose::describe(k, ctx),
            SendingSpec::Iceberg(i) => crate::sink::iceberg::firehose::describe(i, ctx),
        }
    }

    /// Where HTTP requests go (the startup check connects to it). `None` for the databases: they
    /// are not HTTP, and their URL holds the password.
    pub fn url(&self) -> Option<&str> {
        match self {
            SendingSpec::Http(h) => Some(&h.url),
            SendingSpec::Search(s) => Some(&s.endpoint),
            SendingSpec::Splunk(s) => Some(&s.endpoint),
            SendingSpec::Postgres(_)
            | SendingSpec::Redshift(_)
            | SendingSpec::Stdout(_)
            | SendingSpec::Kafka(_)
            | SendingSpec::Iceberg(_) => None,
        }
    }

    pub fn retry_duration(&self) -> Duration {
        match self {
            SendingSpec::Http(h) => h.retry_duration,
            SendingSpec::Search(s) => s.retry_duration,
            SendingSpec::Splunk(s) => s.retry_duration,
            SendingSpec::Postgres(p) => p.retry_duration,
            SendingSpec::Redshift(r) => r.retry_duration,
            // A closed standard output does not come back: a minute, then the error prefix.
            SendingSpec::Stdout(_) => Duration::from_secs(60),
            SendingSpec::Kafka(k) => k.retry_duration,
            SendingSpec::Iceberg(i) => i.retry_duration,
        }
    }

    /// Whether every record is also written to the backup store.
    pub fn backup_all(&self) -> bool {
        match self {
            SendingSpec::Http(h) => h.backup_all,
            SendingSpec::Search(s) => s.backup_all,
            SendingSpec::Splunk(s) => s.backup_all,
            SendingSpec::Postgres(p) => p.backup_all,
            // The staged objects are the copy of everything Firehose keeps.
            SendingSpec::Redshift(_) => false,
            SendingSpec::Stdout(_) => false,
            SendingSpec::Kafka(_) => false,
            SendingSpec::Iceberg(i) => i.backup_all,
        }
    }
}
