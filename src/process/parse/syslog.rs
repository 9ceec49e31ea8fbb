//! Syslog messages (RFC 5424 and RFC 3164) as JSON fields, with `syslog_loose` (the parser Vector
//! uses). Shared by `parse: { format: syslog }` and, later, the syslog source.

use serde_json::{Map, Value};
use syslog_loose::{Message, ProcId, Protocol, Variant};

/// The message's fields: `facility`, `severity` (names), `timestamp` (RFC 3339), `host`, `app`,
/// `procid`, `msgid`, `structured_data` (`{id: {param: value}}`), `message`, `protocol`. Only the
/// fields a message has are set. Err: the text is no syslog message (no `<PRI>` or no header).
pub fn fields(text: &str) -> Result<Map<String, Value>, String> {
    let exact = syslog_loose::parse_message_with_year_exact(text, current_year, Variant::Either)
        .map_err(|_| "not a syslog message (RFC 5424 or RFC 3164): no <PRI> header".to_string())?;
    if exact.facility.is_none() && exact.severity.is_none() {
        return Err("not a syslog message (RFC 5424 or RFC 3164): no <PRI> header".into());
    }
    Ok(to_map(&exact))
}

fn current_year(_: syslog_loose::IncompleteDate) -> i32 {
    use chrono::Datelike;
    chrono::Utc::now().year()
}

fn to_map(m: &Message<&str>) -> Map<String, Value> {
    let mut out = Map::new();
    let mut put = |k: &str, v: Value| {
        out.insert(k.to_string(), v);
    };
    if let Some(f) = m.facility {
        put("facility", f.as_str().into());
    }
    if let Some(s) = m.severity {
        put("severity", s.as_str().into());
    }
    if let Some(t) = m.timestamp {
        put("timestamp", t.to_rfc3339().into());
    }
    if let Some(h) = m.hostname {
        put("host", h.into());
    }
    if let Some(a) = m.appname {
        put("app", a.into());
    }
    match &m.procid {
        Some(ProcId::PID(pid)) => put("procid", (*pid).into()),
        Some(ProcId::Name(name)) => put("procid", (*name).into()),
        None => {}
    }
    if let Some(id) = m.msgid {
        put("msgid", id.into());
    }
    if !m.structured_data.is_empty() {
        let mut sd = Map::new();
        for element in &m.structured_data {
            let params: Map<String, Value> =
                element.params.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect();
            sd.insert(element.id.to_string(), Value::Object(params));
        }
        put("structured_data", Value::Object(sd));
    }
    put(
        "protocol",
        match m.protocol {
            Protocol::RFC3164 => "rfc3164",
            Protocol::RFC5424(_) => "rfc5424",
        }
        .into(),
    );
    put("message", m.msg.into());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5424_with_structured_data() {
        let m = fields(r#"<165>1 2026-12-06T10:00:00.000Z web01 app 4242 ID47 [exampleSDID@32473 iut="3" eventSource="App"] hello there"#).unwrap();
        assert_eq!(m["facility"], "local4");
        assert_eq!(m["severity"], "notice");
        assert_eq!(m["host"], "web01");
        assert_eq!(m["app"], "app");
        assert_eq!(m["procid"], 4242);
        assert_eq!(m["msgid"], "ID47");
        assert_eq!(m["structured_data"]["exampleSDID@32473"]["iut"], "3");
        assert_eq!(m["message"], "hello there");
        assert_eq!(m["protocol"], "rfc5424");
    }

    #[test]
    fn rfc3164_as_logger_sends_it() {
        let m = fields("<13>Dec  6 10:00:00 web01 myapp[123]: disk almost full").unwrap();
        assert_eq!(m["facility"], "user");
        assert_eq!(m["severity"], "notice");
        assert_eq!(m["host"], "web01");
        assert_eq!(m["app"], "myapp");
        assert_eq!(m["procid"], 123);
        assert_eq!(m["message"], "disk almost full");
        assert_eq!(m["protocol"], "rfc3164");
    }

    #[test]
    fn text_without_a_header_is_refused() {
        assert!(fields("just some words").is_err());
    }
}
