//! The `jq` processor: maps each record through a jq expression (a sluice extension; Firehose has
//! no such thing, and would need a Lambda function for it).
//!
//! Every value the query produces becomes a record, in order: one value replaces the record,
//! `empty` (for example `select(.level != "debug")` failing) drops it, several (`.items[]`) fan
//! it out. Values are written as compact JSON, as `jq -c` prints them; with `raw_output` a string
//! value is written as its text, as `jq -r` does (for CSV or plain log lines). A record that is not
//! JSON, or on which the query fails, goes to the error output.

use bytes::Bytes;

use super::{JqProgram, Outputs};
use crate::process::{ErrorOutputType, Failed, Item, Processor};

/// The errorCode of records the jq processor rejects.
pub const CODE: &str = "JQProcessing.Failed";

pub struct JqTransform {
    program: JqProgram,
    raw_output: bool,
    /// Records the query dropped (yielded nothing for), counted once per batch.
    dropped: metrics::Counter,
}

impl JqTransform {
    pub fn new(program: JqProgram, raw_output: bool) -> Self {
        Self { program, raw_output, dropped: metrics::Counter::noop() }
    }

    /// Counts the records the query drops (`sluice_dropped_records_total{processor="jq"}`).
    pub fn counting_drops(self, dropped: metrics::Counter) -> Self {
        Self { dropped, ..self }
    }

    /// Appends the record's outputs to `out`.
    fn map(&self, item: &Item, out: &mut Vec<Item>) -> Result<(), String> {
        match self.program.run(&item.record.data)? {
            Outputs::Fields(fields) => {
                let mut json = Vec::with_capacity(item.record.data.len() / 2 + 16);
                super::fast::write_fields(&mut json, &fields);
                out.push(item.derive(Bytes::from(json)));
            }
            Outputs::Values(values) => {
                for value in values {
                    let data = match &value {
                        jaq_json::Val::TStr(text) if self.raw_output => Bytes::copy_from_slice(text),
                        _ => {
                            let mut json = Vec::new();
                            super::write_json(&mut json, &value)?;
                            Bytes::from(json)
                        }
                    };
                    out.push(item.derive(data));
                }
            }
        }
        Ok(())
    }
}

impl Processor for JqTransform {
    fn name(&self) -> &'static str {
        "jq"
    }

    fn process(&self, items: Vec<Item>, failed: &mut Vec<Failed>) -> Vec<Item> {
        let mut out = Vec::with_capacity(items.len());
        let mut dropped = 0u64;
        for item in items {
            let before = out.len();
            match self.map(&item, &mut out) {
                Ok(()) => dropped += u64::from(out.len() == before),
                Err(message) => {
                    out.truncate(before); // a record fails whole: no partial fan-out
                    failed.push(Failed::new(item.record, ErrorOutputType::ProcessingFailed, CODE, message));
                }
            }
        }
        if dropped > 0 {
            self.dropped.increment(dropped);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    /// (source sequence, data or "code message") of each output and each failure.
    type Seen = Vec<(u64, String)>;

    fn run(query: &str, raw_output: bool, inputs: &[&str]) -> (Seen, Seen) {
        let t = JqTransform::new(JqProgram::compile(query).unwrap(), raw_output);
        let items = inputs
            .iter()
            .enumerate()
            .map(|(i, d)| Item::new(Record::new(i as u64, 1, Bytes::from(d.to_string()))))
            .collect();
        let mut failed = Vec::new();
        let out = t.process(items, &mut failed);
        let text = |d: &Bytes| String::from_utf8_lossy(d).into_owned();
        (
            out.iter().map(|i| (i.record.seq, text(&i.record.data))).collect(),
            failed.iter().map(|f| (f.record.seq, format!("{} {}", f.code, f.message))).collect(),
        )
    }

    #[test]
    fn maps_drops_and_fans_out_keeping_each_source_sequence() {
        let (out, failed) = run(
            r#"select(.level != "debug") | {msg, n: (.n + 1)}"#,
            false,
            &[r#"{"level":"info","msg":"a","n":1}"#, r#"{"level":"debug","msg":"b","n":2}"#],
        );
        assert_eq!(out, vec![(0, r#"{"msg":"a","n":2}"#.to_string())]);
        assert!(failed.is_empty());
        let (out, _) = run(".items[]", false, &[r#"{"items":[1,"two",{"three":3}]}"#]);
        assert_eq!(out, vec![(0, "1".into()), (0, "\"two\"".into()), (0, r#"{"three":3}"#.into())]);
    }

    #[test]
    fn raw_output_writes_strings_as_text() {
        let (out, _) = run(r#""\(.a),\(.b)""#, true, &[r#"{"a":"x","b":2}"#]);
        assert_eq!(out, vec![(0, "x,2".to_string())]);
        let (out, _) = run(".a", false, &[r#"{"a":"x"}"#]);
        assert_eq!(out, vec![(0, "\"x\"".to_string())]);
    }

    #[test]
    fn failures_go_to_the_error_output_whole() {
        let (out, failed) =
            run(".items[] | (. + 1)", false, &[r#"{"items":[1,"two"]}"#, "not json", r#"{"items":[5]}"#]);
        assert_eq!(out, vec![(2, "6".to_string())], "the first record fails whole, not half fanned out");
        assert_eq!(failed.len(), 2);
        assert!(failed[0].1.starts_with("JQProcessing.Failed jq query failed"), "{failed:?}");
        assert!(failed[1].1.contains("not valid JSON"), "{failed:?}");
    }

    #[test]
    fn the_fast_plan_output_is_the_record() {
        let (out, _) = run(
            "{customer_id: .customer_id, year: .ts[0:4]}",
            false,
            &[r#"{"customer_id":"c-1","ts":"2026-12-02T07:00:00Z","big":{"ignored":[1,2,3]}}"#],
        );
        assert_eq!(out, vec![(0, r#"{"customer_id":"c-1","year":"2026"}"#.to_string())]);
    }
}
