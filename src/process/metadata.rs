//! Firehose's MetadataExtraction: a jq expression per record yields the partition keys used as
//! `!{partitionKeyFromQuery:k}`. The query runs as a [`JqProgram`], so the object-of-paths queries
//! Firehose's documentation teaches take the fast plan.

use std::collections::BTreeMap;
use std::sync::Arc;

use jaq_json::Val;

use super::jq::fast::FastValue;
use super::jq::{CompileError, JqProgram, Outputs};
use super::{ErrorOutputType, Failed, Item, Processor};

/// Firehose's limit on keys a query may produce.
pub const MAX_KEYS: usize = 50;
/// Firehose's errorCode for records whose partition keys cannot be extracted.
pub const CODE: &str = "DynamicPartitioning.MetadataExtractionFailed";

pub struct MetadataExtraction {
    program: JqProgram,
}

impl MetadataExtraction {
    /// Compiles the query, or explains why it does not compile.
    pub fn compile(query: &str) -> Result<Self, CompileError> {
        Ok(Self { program: JqProgram::compile(query)? })
    }

    /// The same extraction answering every record through jaq (benchmarks compare the two).
    pub fn without_fast_plan(self) -> Self {
        Self { program: self.program.without_fast_plan() }
    }

    /// Runs the query on one record's JSON and returns its partition keys.
    pub fn extract(&self, data: &[u8]) -> Result<BTreeMap<String, String>, String> {
        match self.program.run(data)? {
            Outputs::Fields(fields) => {
                let mut keys = BTreeMap::new();
                for (name, value) in fields {
                    let value = match value {
                        FastValue::Null => continue, // a null key is a missing key
                        FastValue::Bool(b) => b.to_string(),
                        FastValue::Int(text) => text.to_string(),
                        FastValue::Str(s) => s.into_owned(),
                    };
                    keys.insert(name.to_string(), value);
                }
                check_count(keys.len())?;
                Ok(keys)
            }
            Outputs::Values(values) => keys_from_value(values),
        }
    }
}

fn check_count(n: usize) -> Result<(), String> {
    if n > MAX_KEYS {
        return Err(format!("jq query produced {n} partition keys; at most {MAX_KEYS} are allowed"));
    }
    Ok(())
}

fn keys_from_value(values: Vec<Val>) -> Result<BTreeMap<String, String>, String> {
    let mut values = values.into_iter();
    let value = match (values.next(), values.next()) {
        (Some(v), None) => v,
        (None, _) => return Err("jq query produced no output".into()),
        (Some(_), Some(_)) => return Err("jq query produced more than one output; it must produce one object".into()),
    };
    let Val::Obj(map) = value else {
        return Err(format!("jq query must produce an object of partition keys, not {value}"));
    };
    check_count(map.len())?;
    let mut keys = BTreeMap::new();
    for (k, v) in map.iter() {
        let key = text(k).ok_or_else(|| format!("partition key name {k} is not a string"))?;
        let value = match v {
            Val::Null => continue, // a null key is a missing key; the prefix check reports it if used
            Val::Bool(_) | Val::Num(_) => v.to_string(),
            Val::TStr(_) | Val::BStr(_) => text(v).unwrap_or_default(),
            other => return Err(format!("partition key `{key}` must be a string, number or boolean, not {other}")),
        };
        keys.insert(key, value);
    }
    Ok(keys)
}

fn text(v: &Val) -> Option<String> {
    match v {
        Val::TStr(b) | Val::BStr(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

impl Processor for MetadataExtraction {
    fn name(&self) -> &'static str {
        "metadata_extraction"
    }

    fn process(&self, items: Vec<Item>, failed: &mut Vec<Failed>) -> Vec<Item> {
        let mut out = Vec::with_capacity(items.len());
        for mut item in items {
            match self.extract(&item.record.data) {
                Ok(query) => {
                    let mut keys = item.keys.as_deref().cloned().unwrap_or_default();
                    keys.query = query;
                    item.keys = Some(Arc::new(keys));
                    out.push(item);
                }
                Err(message) => failed.push(Failed::new(item.record, ErrorOutputType::ProcessingFailed, CODE, message)),
            }
        }
        out
    }
}

impl std::fmt::Debug for MetadataExtraction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetadataExtraction")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extract(query: &str, data: &str) -> Result<BTreeMap<String, String>, String> {
        MetadataExtraction::compile(query).unwrap().extract(data.as_bytes())
    }

    #[test]
    fn firehose_examples_work() {
        let keys = extract(
            r#"{customer_id: .customer_id, device: .type.device, year: (.ts | strptime("%Y-%m-%dT%H:%M:%SZ") | strftime("%Y"))}"#,
            r#"{"customer_id": "c-42", "type": {"device": "mobile"}, "ts": "2026-07-13T14:05:09Z"}"#,
        )
        .unwrap();
        assert_eq!(keys["customer_id"], "c-42");
        assert_eq!(keys["device"], "mobile");
        assert_eq!(keys["year"], "2026");
        let keys = extract(
            r#"{hour: (.epoch | strftime("%H")), n: .n, ok: .ok}"#,
            r#"{"epoch": 1783951509, "n": 7, "ok": true}"#,
        )
        .unwrap();
        assert_eq!((keys["hour"].as_str(), keys["n"].as_str(), keys["ok"].as_str()), ("14", "7", "true"));
    }

    #[test]
    fn failures_explain_themselves() {
        assert!(MetadataExtraction::compile("{a: .a").is_err());
        assert!(extract("{a: .a}", "not json").unwrap_err().contains("not valid JSON"));
        assert!(extract(".a", r#"{"a": 1}"#).unwrap_err().contains("must produce an object"));
        assert!(extract(r#"{y: (.ts | strptime("%Y"))| strftime("%Y")}"#, r#"{"ts": "nope"}"#)
            .unwrap_err()
            .contains("jq query failed"));
        assert!(extract("{a: .a}", r#"{"a": {"b": 1}}"#).unwrap_err().contains("must be a string"));
        assert!(!extract("{a: .missing}", "{}").unwrap().contains_key("a"), "null is a missing key");
    }
}
