//! The classic Firehose Lambda transform, as a sluice plugin.
//!
//! Config: `{ fields: [password, ssn, credit_card] }` (required; other keys are refused). For each JSON record: the configured fields'
//! values (at any depth) become `"[REDACTED]"`, `event_type` is lower-cased, and
//! `processed_timestamp` (now, RFC 3339), `hour_of_day` and `day_of_week` (of the record's arrival,
//! UTC) are added. A record that is not a JSON object is `ProcessingFailed`.
//!
//! It is a batch plugin (`#[transform_batch]`): the config and the clock are read once per batch
//! rather than once per record (each clock read is a call out to the host).

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use sluice_plugin::{transform_batch, Output, Record};

/// The plugin's `config:`. Unknown keys are refused, so `feilds:` fails validation instead of
/// silently redacting nothing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Field names whose values are redacted, at any depth.
    fields: Vec<String>,
}

fn redact(value: &mut Value, fields: &[String]) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if fields.iter().any(|f| f == k) {
                    *v = Value::String("[REDACTED]".into());
                } else {
                    redact(v, fields);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact(v, fields)),
        _ => {}
    }
}

#[transform_batch(config = Config)]
fn transform<'a>(records: &[Record<'a>], config: &Config) -> Vec<Output<'a>> {
    let now = Utc::now().to_rfc3339();
    records.iter().map(|r| redact_record(r, &config.fields, &now)).collect()
}

fn redact_record<'a>(record: &Record<'a>, fields: &[String], now: &str) -> Output<'a> {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(record.data) else {
        return Output::failed();
    };
    let mut value = Value::Object(std::mem::take(&mut map));
    redact(&mut value, fields);
    let Value::Object(mut map) = value else { return Output::failed() };
    if let Some(Value::String(t)) = map.get_mut("event_type") {
        *t = t.to_lowercase();
    }
    let arrival: DateTime<Utc> = DateTime::from_timestamp_millis(record.arrival_ms).unwrap_or_default();
    map.insert("processed_timestamp".into(), Value::String(now.to_string()));
    map.insert("hour_of_day".into(), Value::from(arrival.hour()));
    map.insert("day_of_week".into(), Value::String(arrival.weekday().to_string()));
    match serde_json::to_vec(&Value::Object(Map::from_iter(map))) {
        Ok(data) => Output::ok(data),
        Err(_) => Output::failed(),
    }
}
