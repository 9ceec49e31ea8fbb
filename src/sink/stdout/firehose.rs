//! `stdout` in Firehose's terms: none (Firehose has no such destination). Describe shows it as the
//! sluice extension `StdoutDestinationDescription`; CreateDeliveryStream cannot ask for it. A
//! config-layer module.

use serde_json::{json, Value};

use super::config::StdoutSpec;
use crate::config::kit::{DeliveryMetric, DescribeContext};

/// Its delivery metrics (`sluice_delivery_to_stdout_*`).
pub const METRIC: DeliveryMetric = DeliveryMetric {
    name: "stdout",
    firehose: "(sluice: Firehose has no stdout destination)",
    delivered: "records written to standard output",
};

pub fn describe(_: &StdoutSpec, ctx: &DescribeContext) -> (&'static str, Value) {
    let description = json!({
        "S3DestinationDescription": ctx.backup,
        "ProcessingConfiguration": ctx.processing,
        "BufferingHints": ctx.buffering,
    });
    ("StdoutDestinationDescription", description)
}
