//! PostgreSQL in Firehose's API. Firehose has no PostgreSQL destination, so there is nothing to
//! translate from CreateDeliveryStream; DescribeDeliveryStream shows a sluice extension in
//! Firehose's style. A config-layer module.

use serde_json::{json, Value};

use super::config::PostgresSpec;
use crate::config::kit::{DeliveryMetric, DescribeContext};

/// Its delivery metrics (`sluice_delivery_to_postgres_*`).
pub const METRIC: DeliveryMetric = DeliveryMetric {
    name: "postgres",
    firehose: "sluice (Firehose has no PostgreSQL destination)",
    delivered: "rows committed to the table (each exactly once)",
};

/// The URL is left out: it holds the password.
pub fn describe(p: &PostgresSpec, ctx: &DescribeContext) -> (&'static str, Value) {
    let description = json!({
        "TableName": p.table,
        "Columns": p.columns,
        "JsonbColumn": p.jsonb_column,
        "RetryOptions": { "DurationInSeconds": p.retry_duration.as_secs() },
        "S3BackupMode": if p.backup_all { "AllData" } else { "FailedDataOnly" },
        "S3DestinationDescription": ctx.backup,
        "ProcessingConfiguration": ctx.processing,
    });
    ("PostgresDestinationDescription", description)
}
