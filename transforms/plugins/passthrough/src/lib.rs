//! Returns every record unchanged: the baseline for the plugin benchmark.

use sluice_plugin::{transform, Output, Record};

#[transform]
fn passthrough(record: Record<'_>) -> Output<'_> {
    Output::ok(record.data)
}
