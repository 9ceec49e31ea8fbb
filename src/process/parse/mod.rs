//! `parse:`: turning a log line into fields, as a log shipper's first step.
//!
//! ```yaml
//! processors:
//!   - parse: { format: cri, field: message }        # a file source's {"message": <CRI line>, ...}
//!   - parse: { format: regex, pattern: '^(?P<ip>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)"' }
//! ```
//!
//! Formats: `regex` (named captures), `logfmt`, `syslog` (RFC 5424/3164), `cri` and `docker_json`
//! (container runtimes' lines), `json` (a string that holds JSON) and `csv` (with column names). The
//! text parsed is the whole record (its trailing newline aside) or, with `field`, that string field
//! of a JSON object record. The fields found become the record (no `field`), or are merged into it
//! (replacing keys of the same name), or go under `target`. A record that does not parse goes to the
//! error output as `processing-failed` with `Parse.Failed` and the reason, or passes unchanged with
//! `on_failure: keep`.

pub mod container;
pub mod logfmt;
pub mod syslog;

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{ErrorOutputType, Failed, Item, Processor};

/// The errorCode of records that do not parse.
pub const CODE: &str = "Parse.Failed";

/// What a `parse:` processor reads.
#[derive(Clone, Debug)]
pub enum Format {
    Regex(regex::Regex),
    Logfmt,
    Syslog,
    Cri,
    DockerJson,
    Json,
    /// Column names, and the delimiter byte.
    Csv {
        columns: Vec<String>,
        delimiter: u8,
    },
}

impl PartialEq for Format {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Format::Regex(a), Format::Regex(b)) => a.as_str() == b.as_str(),
            (Format::Csv { columns: a, delimiter: x }, Format::Csv { columns: b, delimiter: y }) => a == b && x == y,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

// Patterns compare by their text, which makes equality an equivalence.
impl Eq for Format {}

/// A validated `parse:` processor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseSpec {
    pub format: Format,
    /// Parse this string field of a JSON object record instead of the whole record.
    pub field: Option<String>,
    /// Put the fields under this key instead of merging them in.
    pub target: Option<String>,
    /// Let records that do not parse pass unchanged instead of failing them.
    pub keep_unparsed: bool,
}

pub struct Parse {
    spec: ParseSpec,
}

impl Parse {
    pub fn new(spec: ParseSpec) -> Self {
        Self { spec }
    }

    /// The fields of `text` in this format.
    fn fields(&self, text: &str) -> Result<Map<String, Value>, String> {
        match &self.spec.format {
            Format::Regex(re) => {
                let captures = re.captures(text).ok_or("the line does not match the pattern")?;
                Ok(re
                    .capture_names()
                    .flatten()
                    .filter_map(|name| captures.name(name).map(|m| (name.to_string(), Value::from(m.as_str()))))
                    .collect())
            }
            Format::Logfmt => logfmt::fields(text),
            Format::Syslog => syslog::fields(text),
            Format::Cri => container::cri(text),
            Format::DockerJson => container::docker_json(text),
            Format::Json => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(o)) => Ok(o),
                Ok(_) => Err("the JSON is not an object".into()),
                Err(e) => Err(format!("not JSON: {e}")),
            },
            Format::Csv { columns, delimiter } => csv_fields(text, columns, *delimiter),
        }
    }

    /// The record's new data, or why it does not parse.
    fn apply(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        let Some(field) = &self.spec.field else {
            let text = std::str::from_utf8(data).map_err(|_| "the record is not UTF-8 text")?;
            let text = text.strip_suffix('\n').unwrap_or(text);
            let fields = self.fields(text.strip_suffix('\r').unwrap_or(text))?;
            let record = match &self.spec.target {
                Some(target) => Map::from_iter([(target.clone(), Value::Object(fields))]),
                None => fields,
            };
            return serde_json::to_vec(&record).map_err(|e| e.to_string());
        };
        // The record's other fields are kept as their JSON text, not decoded and encoded again:
        // only the field parsed is read. Keys and the text are borrowed from the record unless
        // they hold escapes.
        let Some(record) = object_fields(data) else {
            return Err(format!("the record is not a JSON object with a `{field}` field"));
        };
        let text = match record.get(field.as_str()) {
            Some(raw) => string_of(raw).ok_or_else(|| format!("`{field}` is not a string"))?,
            None => return Err(format!("the record has no `{field}` field")),
        };
        let mut out: BTreeMap<&str, Field<'_>> = record.iter().map(|(k, v)| (k.as_ref(), Field::Kept(v))).collect();
        // CRI lines, a log shipper's most common case, are merged without building a `Value` map.
        if let (Format::Cri, None) = (&self.spec.format, &self.spec.target) {
            let line = container::cri_line(&text)?;
            for (k, v) in line.fields() {
                out.insert(k, Field::Cri(v));
            }
            return serde_json::to_vec(&out).map_err(|e| e.to_string());
        }
        let fields = self.fields(&text)?;
        let nested;
        match &self.spec.target {
            Some(target) => {
                nested = Value::Object(fields);
                out.insert(target, Field::Parsed(&nested));
            }
            None => {
                for (k, v) in &fields {
                    out.insert(k, Field::Parsed(v));
                }
            }
        }
        serde_json::to_vec(&out).map_err(|e| e.to_string())
    }
}

/// A JSON object's fields, each value kept as its JSON text; none when `data` is not an object.
fn object_fields(data: &[u8]) -> Option<BTreeMap<Cow<'_, str>, &RawValue>> {
    match serde_json::from_slice::<BTreeMap<&str, &RawValue>>(data) {
        Ok(fields) => Some(fields.into_iter().map(|(k, v)| (Cow::Borrowed(k), v)).collect()),
        // A key with an escape cannot be borrowed.
        Err(_) => serde_json::from_slice::<BTreeMap<String, &RawValue>>(data)
            .ok()
            .map(|fields| fields.into_iter().map(|(k, v)| (Cow::Owned(k), v)).collect()),
    }
}

/// The text of a JSON string, borrowed unless it holds escapes.
fn string_of(raw: &RawValue) -> Option<Cow<'_, str>> {
    match serde_json::from_str::<&str>(raw.get()) {
        Ok(text) => Some(Cow::Borrowed(text)),
        Err(_) => serde_json::from_str::<String>(raw.get()).ok().map(Cow::Owned),
    }
}

/// A field of the record written back: as it was, or parsed.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Field<'a> {
    Kept(&'a RawValue),
    Parsed(&'a Value),
    Cri(container::CriField<'a>),
}

fn csv_fields(text: &str, columns: &[String], delimiter: u8) -> Result<Map<String, Value>, String> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).delimiter(delimiter).from_reader(text.as_bytes());
    let row = match reader.records().next() {
        Some(Ok(row)) => row,
        Some(Err(e)) => return Err(format!("not a CSV line: {e}")),
        None => return Err("an empty line".into()),
    };
    if row.len() != columns.len() {
        return Err(format!("{} values for {} columns", row.len(), columns.len()));
    }
    Ok(columns.iter().zip(row.iter()).map(|(c, v)| (c.clone(), Value::from(v))).collect())
}

impl Processor for Parse {
    fn name(&self) -> &'static str {
        "parse"
    }

    fn process(&self, items: Vec<Item>, failed: &mut Vec<Failed>) -> Vec<Item> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match self.apply(&item.record.data) {
                Ok(data) => out.push(item.derive(Bytes::from(data))),
                Err(_) if self.spec.keep_unparsed => out.push(item),
                Err(reason) => failed.push(Failed::new(item.record, ErrorOutputType::ProcessingFailed, CODE, reason)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    fn run(spec: ParseSpec, inputs: &[&str]) -> (Vec<String>, Vec<String>) {
        let items = inputs
            .iter()
            .enumerate()
            .map(|(i, d)| Item::new(Record::new(i as u64, 0, Bytes::from(d.to_string()))))
            .collect();
        let mut failed = Vec::new();
        let out = Parse::new(spec).process(items, &mut failed);
        (
            out.iter().map(|i| String::from_utf8_lossy(&i.record.data).into_owned()).collect(),
            failed.iter().map(|f| format!("{}: {}", f.code, f.message)).collect(),
        )
    }

    fn spec(format: Format) -> ParseSpec {
        ParseSpec { format, field: None, target: None, keep_unparsed: false }
    }

    #[test]
    fn regex_named_captures_become_fields_and_a_miss_fails_the_record() {
        let re = regex::Regex::new(r"^(?P<ip>\S+) (?P<status>\d+)$").unwrap();
        let (out, failed) = run(spec(Format::Regex(re)), &["10.0.0.1 200\n", "garbage"]);
        assert_eq!(out, [r#"{"ip":"10.0.0.1","status":"200"}"#]);
        assert_eq!(failed, ["Parse.Failed: the line does not match the pattern"]);
    }

    #[test]
    fn a_field_is_parsed_in_place_merged_or_under_a_target() {
        let line = r#"{"message":"2026-12-06T10:00:00Z stdout F hi","host":"n1"}"#;
        let merged = ParseSpec { field: Some("message".into()), ..spec(Format::Cri) };
        let (out, _) = run(merged.clone(), &[line]);
        let v: Value = serde_json::from_str(&out[0]).unwrap();
        assert_eq!(
            (v["message"].as_str(), v["stream"].as_str(), v["host"].as_str()),
            (Some("hi"), Some("stdout"), Some("n1"))
        );
        let targeted = ParseSpec { target: Some("cri".into()), ..merged };
        let (out, _) = run(targeted, &[line]);
        let v: Value = serde_json::from_str(&out[0]).unwrap();
        assert_eq!(v["cri"]["message"], "hi");
        assert_eq!(v["message"], "2026-12-06T10:00:00Z stdout F hi");
    }

    #[test]
    fn unparsed_records_are_kept_raw_when_asked() {
        let keep = ParseSpec { keep_unparsed: true, ..spec(Format::Logfmt) };
        let (out, failed) = run(keep, &["a=1", "no pairs here"]);
        assert_eq!(out, [r#"{"a":"1"}"#, "no pairs here"]);
        assert!(failed.is_empty());
    }

    #[test]
    fn csv_with_quotes_and_json_strings() {
        let csv = Format::Csv { columns: vec!["id".into(), "name".into()], delimiter: b',' };
        let (out, failed) = run(spec(csv), &[r#"7,"Smith, Jane""#, "1,2,3"]);
        assert_eq!(out, [r#"{"id":"7","name":"Smith, Jane"}"#]);
        assert_eq!(failed, ["Parse.Failed: 3 values for 2 columns"]);
        let json = ParseSpec { field: Some("log".into()), ..spec(Format::Json) };
        let (out, _) = run(json, &[r#"{"log":"{\"level\":\"warn\"}"}"#]);
        assert_eq!(out, [r#"{"level":"warn","log":"{\"level\":\"warn\"}"}"#]);
    }
}
