//! Drops records by a field's value.
//!
//! Config: `{ field: level, drop: [debug, trace] }`. A JSON record whose `field` is one of `drop`
//! (compared as text) is `Dropped`; others pass unchanged; a record that is not JSON is
//! `ProcessingFailed`.

use serde_json::Value;
use sluice_plugin::{transform, Output, Record};

#[transform]
fn filter(record: Record<'_>) -> Output<'_> {
    let config: Value = serde_json::from_str(sluice_plugin::config()).unwrap_or(Value::Null);
    let Ok(doc) = serde_json::from_slice::<Value>(record.data) else {
        return Output::failed();
    };
    let field = config["field"].as_str().unwrap_or("");
    let value = match &doc[field] {
        Value::String(s) => s.clone(),
        Value::Null => return Output::ok(record.data),
        other => other.to_string(),
    };
    let drop = config["drop"].as_array().is_some_and(|list| list.iter().any(|d| d.as_str() == Some(value.as_str())));
    if drop {
        Output::dropped()
    } else {
        Output::ok(record.data)
    }
}
