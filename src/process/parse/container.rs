//! Container runtimes' log lines: CRI (containerd, CRI-O: `<RFC 3339 time> <stdout|stderr> <P|F>
//! <message>`) and Docker's json-file driver (`{"log": "...\n", "stream": "stdout", "time": "..."}`).
//!
//! A CRI line tagged `P` is a partial line the runtime split (at 16 KiB); its record says so
//! (`partial: true`). Joining partials into one record happens where lines are read
//! (`source.file.join_cri_partials`), so that a joined record's position covers all its lines.

use serde_json::{Map, Value};

/// A CRI line's parts, borrowed from the line.
#[derive(Debug, PartialEq, Eq)]
pub struct CriLine<'t> {
    pub timestamp: &'t str,
    pub stream: &'t str,
    /// Tagged `P`: the runtime split a longer line here.
    pub partial: bool,
    pub message: &'t str,
}

impl CriLine<'_> {
    /// Its fields in the order a sorted JSON object writes them.
    pub fn fields(&self) -> [(&'static str, CriField<'_>); 4] {
        [
            ("message", CriField::Text(self.message)),
            ("partial", CriField::Flag(self.partial)),
            ("stream", CriField::Text(self.stream)),
            ("timestamp", CriField::Text(self.timestamp)),
        ]
    }
}

/// A CRI field's value, written without building a `Value`.
#[derive(Clone, Copy, Debug, serde::Serialize)]
#[serde(untagged)]
pub enum CriField<'t> {
    Text(&'t str),
    Flag(bool),
}

/// The parts of a CRI line: `<RFC 3339 time> <stdout|stderr> <P|F> <message>`.
pub fn cri_line(text: &str) -> Result<CriLine<'_>, String> {
    let mut parts = text.splitn(4, ' ');
    let (Some(time), Some(stream), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("not a CRI log line: expected `<time> <stream> <P|F> <message>`".into());
    };
    if chrono::DateTime::parse_from_rfc3339(time).is_err() {
        return Err(format!("not a CRI log line: `{time}` is not an RFC 3339 time"));
    }
    if stream != "stdout" && stream != "stderr" {
        return Err(format!("not a CRI log line: stream `{stream}` is not stdout or stderr"));
    }
    let partial = match tag.split(':').next() {
        Some("P") => true,
        Some("F") => false,
        _ => return Err(format!("not a CRI log line: tag `{tag}` is not P or F")),
    };
    Ok(CriLine { timestamp: time, stream, partial, message: parts.next().unwrap_or("") })
}

/// `timestamp`, `stream`, `partial` and `message` of a CRI line, as a JSON object's fields.
pub fn cri(text: &str) -> Result<Map<String, Value>, String> {
    let line = cri_line(text)?;
    Ok(line
        .fields()
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                CriField::Text(t) => Value::from(t),
                CriField::Flag(b) => Value::from(b),
            };
            (k.to_string(), v)
        })
        .collect())
}

/// `timestamp`, `stream` and `message` (the `log` without its newline) of a Docker json-file line.
pub fn docker_json(text: &str) -> Result<Map<String, Value>, String> {
    let Ok(Value::Object(mut line)) = serde_json::from_str::<Value>(text) else {
        return Err("not a Docker json-file line: not a JSON object".into());
    };
    let Some(Value::String(log)) = line.remove("log") else {
        return Err("not a Docker json-file line: no `log` string".into());
    };
    let mut out = Map::new();
    if let Some(time) = line.remove("time") {
        out.insert("timestamp".into(), time);
    }
    if let Some(stream) = line.remove("stream") {
        out.insert("stream".into(), stream);
    }
    let message = log.strip_suffix('\n').unwrap_or(&log);
    out.insert("message".into(), message.strip_suffix('\r').unwrap_or(message).into());
    // Anything else the driver added (`attrs`) is kept.
    out.extend(line);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_full_and_partial_lines() {
        let m = cri("2026-12-06T10:00:00.123456789Z stdout F hello world").unwrap();
        assert_eq!(m["stream"], "stdout");
        assert_eq!(m["partial"], false);
        assert_eq!(m["message"], "hello world");
        assert_eq!(m["timestamp"], "2026-12-06T10:00:00.123456789Z");
        assert_eq!(cri("2026-12-06T10:00:00Z stderr P part").unwrap()["partial"], true);
        assert!(cri("2026-12-06T10:00:00Z stdin F x").is_err());
        assert!(cri("yesterday stdout F x").is_err());
        assert!(cri("plain text").is_err());
    }

    #[test]
    fn docker_json_lines() {
        let m = docker_json(r#"{"log":"hello\n","stream":"stderr","time":"2026-12-06T10:00:00Z"}"#).unwrap();
        assert_eq!(m["message"], "hello");
        assert_eq!(m["stream"], "stderr");
        assert!(docker_json(r#"{"msg":"x"}"#).is_err());
    }
}
