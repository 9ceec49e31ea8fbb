//! Wrapping a line source's lines as JSON objects (the file source's records unless `raw: true`):
//! the line as `message`, with the file, the pod a kubelet path names, and the configured fields
//! (the host among them); with `parse: cri`, a container runtime's line parsed as it is wrapped.

use bytes::Bytes;

use crate::process::parse::container::cri_line;

/// `{"message": <line without its newline>, "file": <path>, ..fields}` and a newline: a file
/// source's record. The line is taken as UTF-8, invalid bytes replaced (JSON holds text only).
/// With `cri`, a container runtime's line is parsed as it is wrapped: `message` is its text and
/// `stream`, `partial` and `timestamp` come from its head (a line that is not CRI keeps its whole
/// text, flagged `"malformed": true`), which is the `parse: { format: cri }` processor's output
/// without writing the record and reading it back.
///
/// Everything but the line is the same for every line of a file, so it is encoded once, when the
/// file is opened: wrapping a line writes those bytes and the line's JSON-escaped parts. Keys come
/// out in sorted order, as a JSON object encoded from a sorted map; configured fields win over the
/// line's (a `message` field replaces the line).
#[derive(Clone, Debug)]
pub struct JsonWrap {
    /// The object's members in key order.
    members: Vec<Member>,
    cri: bool,
}

#[derive(Clone, Debug)]
enum Member {
    /// `"key":value`, encoded once.
    Fixed(Vec<u8>),
    /// `"key":` and which part of the line follows.
    Line(Vec<u8>, Part),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Message,
    Partial,
    Stream,
    Timestamp,
    Malformed,
}

impl JsonWrap {
    pub fn new(file: Option<&str>, fields: &std::collections::BTreeMap<String, String>, cri: bool) -> Self {
        let mut fixed = std::collections::BTreeMap::<&str, serde_json::Value>::new();
        if let Some(file) = file {
            fixed.insert("file", file.into());
            if let Some(pod) = kubernetes_pod(file) {
                fixed.insert("kubernetes", pod);
            }
        }
        for (k, v) in fields {
            fixed.insert(k, v.as_str().into());
        }
        let mut parts = vec![("message", Part::Message)];
        if cri {
            parts.extend([
                ("malformed", Part::Malformed),
                ("partial", Part::Partial),
                ("stream", Part::Stream),
                ("timestamp", Part::Timestamp),
            ]);
        }
        // `"key":`. Writing a string or a `Value` into a Vec cannot fail.
        let head = |key: &str| {
            let mut out = Vec::new();
            let _ = serde_json::to_writer(&mut out, key);
            out.push(b':');
            out
        };
        let mut members: Vec<(&str, Member)> = fixed
            .iter()
            .map(|(key, value)| {
                let mut out = head(key);
                let _ = serde_json::to_writer(&mut out, value);
                (*key, Member::Fixed(out))
            })
            .collect();
        members.extend(
            parts
                .into_iter()
                .filter(|(key, _)| !fixed.contains_key(key))
                .map(|(key, part)| (key, Member::Line(head(key), part))),
        );
        members.sort_by(|a, b| a.0.cmp(b.0));
        Self { members: members.into_iter().map(|(_, m)| m).collect(), cri }
    }

    pub fn wrap(&self, line: &[u8]) -> Bytes {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        let text = String::from_utf8_lossy(body);
        let cri = if self.cri { cri_line(&text).ok() } else { None };
        let mut out = Vec::with_capacity(body.len() + body.len() / 8 + 64 * self.members.len());
        out.push(b'{');
        for member in &self.members {
            let (head, part) = match member {
                Member::Fixed(bytes) => {
                    out.extend_from_slice(bytes);
                    out.push(b',');
                    continue;
                }
                Member::Line(head, part) => (head, part),
            };
            let value = match (part, &cri) {
                (Part::Message, Some(c)) => Value::Text(c.message),
                (Part::Message, None) => Value::Text(&text),
                (Part::Stream, Some(c)) => Value::Text(c.stream),
                (Part::Timestamp, Some(c)) => Value::Text(c.timestamp),
                (Part::Partial, Some(c)) => Value::Json(if c.partial { b"true" } else { b"false" }),
                (Part::Malformed, None) => Value::Json(b"true"),
                // A CRI line is not malformed; a malformed one has no stream, partial or timestamp.
                _ => continue,
            };
            out.extend_from_slice(head);
            match value {
                // Writing a string into a Vec cannot fail.
                Value::Text(t) => drop(serde_json::to_writer(&mut out, t)),
                Value::Json(j) => out.extend_from_slice(j),
            }
            out.push(b',');
        }
        match out.last_mut() {
            Some(last @ b',') => *last = b'}',
            _ => out.push(b'}'),
        }
        out.push(b'\n');
        Bytes::from(out)
    }
}

/// A part of a line, as written into its JSON object.
enum Value<'t> {
    Text(&'t str),
    Json(&'static [u8]),
}

/// The pod of a container log the kubelet writes, from its path alone (no Kubernetes API needed):
/// `…/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log` → `{namespace, pod, uid, container}`.
/// Namespace and pod names cannot hold `_` (they are DNS labels), so the split is unambiguous.
pub fn kubernetes_pod(path: &str) -> Option<serde_json::Value> {
    let mut parts = path.rsplit('/');
    let (_file, container, pod_dir, pods) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if pods != "pods" || container.is_empty() {
        return None;
    }
    let mut ids = pod_dir.splitn(3, '_');
    let (namespace, pod, uid) = (ids.next()?, ids.next()?, ids.next()?);
    if namespace.is_empty() || pod.is_empty() || uid.is_empty() {
        return None;
    }
    Some(serde_json::json!({ "namespace": namespace, "pod": pod, "uid": uid, "container": container }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_log_path_names_its_pod() {
        let pod = kubernetes_pod("/var/log/pods/shop_cart-7d9f_0b6c7a1e-1111-2222-3333-444455556666/server/0.log");
        assert_eq!(
            pod,
            Some(serde_json::json!({ "namespace": "shop", "pod": "cart-7d9f",
                "uid": "0b6c7a1e-1111-2222-3333-444455556666", "container": "server" }))
        );
        assert_eq!(kubernetes_pod("/var/log/app/server/0.log"), None);
        assert_eq!(kubernetes_pod("/var/log/pods/no-underscores/server/0.log"), None);
    }

    #[test]
    fn wrapped_lines_are_json_with_their_file_and_fields() {
        let fields = [("host".to_string(), "web-1".to_string())].into_iter().collect();
        let out = JsonWrap::new(Some("/var/log/a.log"), &fields, false).wrap(b"caf\xc3\xa9 \xff\r\n");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["message"], "café \u{fffd}");
        assert_eq!(v["file"], "/var/log/a.log");
        assert_eq!(v["host"], "web-1");
        assert!(out.ends_with(b"\n"));
    }

    #[test]
    fn wrapping_writes_what_encoding_the_sorted_object_writes() {
        let fields = [("zone", "eu \"1\""), ("app", "cart"), ("host", "n1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let file = "/var/log/pods/shop_cart-7d9f_0b6c7a1e/server/0.log";
        let out = JsonWrap::new(Some(file), &fields, false).wrap(b"a \"quoted\"\tline\n");
        let mut expected = serde_json::json!({
            "app": "cart", "file": file, "host": "n1", "message": "a \"quoted\"\tline", "zone": "eu \"1\"",
            "kubernetes": kubernetes_pod(file).unwrap(),
        })
        .to_string();
        expected.push('\n');
        assert_eq!(String::from_utf8(out.to_vec()).unwrap(), expected);
        let bare = JsonWrap::new(None, &Default::default(), false).wrap(b"x\r\n");
        assert_eq!(&bare[..], b"{\"message\":\"x\"}\n");
        let replaced = [("message".to_string(), "fixed".to_string())].into_iter().collect();
        assert_eq!(&JsonWrap::new(None, &replaced, false).wrap(b"line")[..], b"{\"message\":\"fixed\"}\n");
    }

    #[test]
    fn cri_lines_parsed_as_wrapped_equal_the_parse_processors_output() {
        use crate::process::parse::{Format, Parse, ParseSpec};
        use crate::process::{Item, Processor};
        let fields =
            [("node".to_string(), "n1".to_string()), ("host".to_string(), "vm".to_string())].into_iter().collect();
        let file = "/var/log/pods/shop_cart-7d9f_0b6c7a1e/server/0.log";
        let parse = Parse::new(ParseSpec {
            format: Format::Cri,
            field: Some("message".into()),
            target: None,
            keep_unparsed: false,
        });
        for line in ["2026-12-06T10:00:00.1Z stdout F a \"quoted\" line\n", "2026-12-06T10:00:00Z stderr P part"] {
            let wrapped = JsonWrap::new(Some(file), &fields, false).wrap(line.as_bytes());
            let mut failed = Vec::new();
            let item = Item::new(crate::record::Record::new(0, 0, wrapped));
            let processed = parse.process(vec![item], &mut failed);
            let mut expected = processed[0].record.data.to_vec();
            expected.push(b'\n');
            let parsed = JsonWrap::new(Some(file), &fields, true).wrap(line.as_bytes());
            assert_eq!(String::from_utf8_lossy(&parsed), String::from_utf8_lossy(&expected));
        }
        let malformed = JsonWrap::new(None, &fields, true).wrap(b"not a CRI line\n");
        let expected = "{\"host\":\"vm\",\"malformed\":true,\"message\":\"not a CRI line\",\"node\":\"n1\"}\n";
        assert_eq!(String::from_utf8_lossy(&malformed), expected);
    }
}
