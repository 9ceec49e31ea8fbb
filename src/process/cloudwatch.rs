//! Firehose's CloudWatchLogProcessing (`DataMessageExtraction`): a CloudWatch Logs subscription
//! payload becomes one record per `logEvents[].message`; CONTROL_MESSAGE payloads are dropped.

use bytes::Bytes;
use serde::Deserialize;

use super::{ErrorOutputType, Failed, Item, Processor};

pub const CODE: &str = "CloudWatchLogs.InvalidPayload";

pub struct CloudWatchLogProcessing;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    message_type: String,
    #[serde(default)]
    log_events: Vec<LogEvent>,
}

#[derive(Deserialize)]
struct LogEvent {
    message: String,
}

impl Processor for CloudWatchLogProcessing {
    fn name(&self) -> &'static str {
        "cloudwatch_log_processing"
    }

    fn process(&self, items: Vec<Item>, failed: &mut Vec<Failed>) -> Vec<Item> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match serde_json::from_slice::<Payload>(&item.record.data) {
                Ok(p) if p.message_type == "DATA_MESSAGE" => {
                    out.extend(p.log_events.into_iter().map(|e| item.derive(Bytes::from(e.message))));
                }
                Ok(p) if p.message_type == "CONTROL_MESSAGE" => {}
                Ok(p) => failed.push(Failed::new(
                    item.record,
                    ErrorOutputType::DecompressionFailed,
                    CODE,
                    format!("unknown CloudWatch Logs messageType `{}`", p.message_type),
                )),
                Err(e) => failed.push(Failed::new(
                    item.record,
                    ErrorOutputType::DecompressionFailed,
                    CODE,
                    format!("not a CloudWatch Logs subscription payload: {e}"),
                )),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    fn item(data: &str) -> Item {
        Item::new(Record::new(3, 0, Bytes::copy_from_slice(data.as_bytes())))
    }

    #[test]
    fn extracts_messages_and_drops_control_messages() {
        let data = r#"{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","subscriptionFilters":["f"],
            "logEvents":[{"id":"1","timestamp":1,"message":"first"},{"id":"2","timestamp":2,"message":"second"}]}"#;
        let control = r#"{"messageType":"CONTROL_MESSAGE","logEvents":[{"id":"","timestamp":1,"message":"CWL CONTROL MESSAGE"}]}"#;
        let mut failed = Vec::new();
        let out = CloudWatchLogProcessing.process(vec![item(data), item(control), item("{")], &mut failed);
        let messages: Vec<_> = out.iter().map(|i| String::from_utf8_lossy(&i.record.data).into_owned()).collect();
        assert_eq!(messages, ["first", "second"]);
        assert!(out.iter().all(|i| i.record.seq == 3));
        assert_eq!(failed.len(), 1);
    }
}
