//! Sets partition keys from fields, for `!{partitionKeyFromLambda:name}` prefixes.
//!
//! Config: `{ keys: [customer_id, region] }`. Each named field of a JSON record (string, number or
//! boolean) becomes a partition key of the same name; the data passes unchanged. A record that is
//! not JSON, or lacks a key, is `ProcessingFailed`.

use serde_json::Value;
use sluice_plugin::{transform, Output, Record};

#[transform]
fn route(record: Record<'_>) -> Output<'_> {
    let config: Value = serde_json::from_str(sluice_plugin::config()).unwrap_or(Value::Null);
    let Ok(doc) = serde_json::from_slice::<Value>(record.data) else {
        return Output::failed();
    };
    let mut out = Output::ok(record.data);
    for key in config["keys"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        let value = match &doc[key] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Output::failed(),
        };
        out = out.with_key(key, value);
    }
    out
}
