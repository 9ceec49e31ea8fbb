//! Cutting a byte stream into line records: shared by the sources that read text (tailed files,
//! stdin, HTTP `lines`/`ndjson` bodies).
//!
//! A record is one line **with** its `\n`, as the Kinesis Agent sends lines to Firehose, so raw
//! objects are valid NDJSON without `append_delimiter` (a `\r\n` ending is kept as written). A line
//! longer than `max_line` is cut: the first `max_line` bytes (plus the configured terminator) make
//! the record and the rest up to the next newline is dropped and counted, so one runaway line can
//! neither exhaust memory nor stop the source.

use bytes::Bytes;

/// One complete line.
#[derive(Debug, PartialEq, Eq)]
pub struct Line {
    /// The record: the line, cut if too long, with its `\n` (also after a cut).
    pub data: Vec<u8>,
    /// The stream offset just past this line's newline: where reading resumes after it.
    pub end: u64,
    pub truncated: bool,
}

pub struct LineSplitter {
    max_line: usize,
    terminator: Vec<u8>,
    partial: Vec<u8>,
    /// The current line passed `max_line`: its bytes are dropped until its newline.
    cut: bool,
}

impl LineSplitter {
    pub fn new(max_line: usize, terminator: Option<&str>) -> Self {
        Self {
            max_line: max_line.max(1),
            terminator: terminator.unwrap_or("").as_bytes().to_vec(),
            partial: Vec::new(),
            cut: false,
        }
    }

    /// Bytes of an incomplete line held back.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Splits `chunk`, which starts at stream offset `offset`, appending every complete line.
    pub fn push(&mut self, chunk: &[u8], offset: u64, out: &mut Vec<Line>) {
        let mut start = 0;
        for newline in memchr::memchr_iter(b'\n', chunk) {
            self.take(&chunk[start..=newline]);
            let data = std::mem::take(&mut self.partial);
            out.push(Line { data, end: offset + newline as u64 + 1, truncated: std::mem::take(&mut self.cut) });
            start = newline + 1;
        }
        self.take(&chunk[start..]);
    }

    /// Appends bytes of the current line, cutting it at `max_line`.
    fn take(&mut self, bytes: &[u8]) {
        let ends_line = bytes.last() == Some(&b'\n');
        if self.cut {
            if ends_line {
                self.partial.push(b'\n');
            }
            return;
        }
        let room = self.max_line.saturating_sub(self.partial.len());
        let body = if ends_line { &bytes[..bytes.len() - 1] } else { bytes };
        if body.len() > room {
            self.partial.extend_from_slice(&body[..room]);
            self.partial.extend_from_slice(&self.terminator);
            self.cut = true;
        } else {
            self.partial.extend_from_slice(body);
        }
        if ends_line {
            self.partial.push(b'\n');
        }
    }

    /// The held incomplete line as a record (end of input, or a rotated file read to its end),
    /// ending at `end`; a newline is added.
    pub fn finish(&mut self, end: u64) -> Option<Line> {
        if self.partial.is_empty() && !self.cut {
            return None;
        }
        let mut data = std::mem::take(&mut self.partial);
        data.push(b'\n');
        Some(Line { data, end, truncated: std::mem::take(&mut self.cut) })
    }

    /// Forgets a held line (the file was truncated under it).
    pub fn reset(&mut self) {
        self.partial.clear();
        self.cut = false;
    }
}

/// Joins continuation lines (a stack trace) to the line that starts a record.
pub struct Multiline {
    starts: Starts,
    timeout: std::time::Duration,
    pending: Option<(Line, std::time::Instant)>,
    max: usize,
}

/// What tells a record's first line.
enum Starts {
    /// A line matching the pattern starts a record; the others continue it.
    Pattern(regex::bytes::Regex),
    /// Container runtimes' CRI lines: a line tagged `P` (partial) is continued by the next one,
    /// whose message is appended (`<time> <stream> P part1` + `<time> <stream> F part2` →
    /// `<time> <stream> F part1part2`).
    CriPartials,
}

impl Multiline {
    pub fn new(start: regex::bytes::Regex, timeout: std::time::Duration, max: usize) -> Self {
        Self { starts: Starts::Pattern(start), timeout, pending: None, max }
    }

    /// Joins CRI partial lines; a partial line with no end within `timeout` is sent as it is.
    pub fn cri(timeout: std::time::Duration, max: usize) -> Self {
        Self { starts: Starts::CriPartials, timeout, pending: None, max }
    }

    /// Takes one line; returns the record it completes, if it starts a new one.
    pub fn push(&mut self, line: Line, now: std::time::Instant) -> Option<Line> {
        let Starts::Pattern(start) = &self.starts else { return self.push_cri(line, now) };
        let body = line.data.strip_suffix(b"\n").unwrap_or(&line.data);
        match &mut self.pending {
            Some((record, at)) if !start.is_match(body) => {
                if record.data.len() + line.data.len() <= self.max {
                    record.data.extend_from_slice(&line.data);
                } else {
                    record.truncated = true;
                }
                record.end = line.end;
                *at = now;
                None
            }
            _ => self.pending.replace((line, now)).map(|(record, _)| record),
        }
    }

    fn push_cri(&mut self, line: Line, now: std::time::Instant) -> Option<Line> {
        let partial = cri_tag_at(&line.data).is_some_and(|at| line.data[at] == b'P');
        let Some((mut record, _)) = self.pending.take() else {
            if partial {
                self.pending = Some((line, now));
                return None;
            }
            return Some(line);
        };
        // The continuation's message (after `<time> <stream> <tag> `) goes after the partial text.
        let message = cri_tag_at(&line.data).map_or(&line.data[..], |at| {
            let rest = &line.data[at..];
            rest.iter().position(|&b| b == b' ').map_or(&rest[rest.len()..], |space| &rest[space + 1..])
        });
        if record.data.ends_with(b"\n") {
            record.data.pop();
        }
        if record.data.len() + message.len() <= self.max {
            record.data.extend_from_slice(message);
        } else {
            record.truncated = true;
            record.data.push(b'\n');
        }
        record.end = line.end;
        if partial {
            self.pending = Some((record, now));
            return None;
        }
        if let Some(at) = cri_tag_at(&record.data) {
            record.data[at] = b'F'; // whole now
        }
        Some(record)
    }

    /// The record being joined, if no line came for the timeout (or `force`: end of input).
    pub fn flush(&mut self, now: std::time::Instant, force: bool) -> Option<Line> {
        match &self.pending {
            Some((_, at)) if force || now.duration_since(*at) >= self.timeout => self.pending.take().map(|(r, _)| r),
            _ => None,
        }
    }

    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }
}

/// Where a CRI line's tag (`P` or `F`) is: after its time and stream, followed by a space.
fn cri_tag_at(line: &[u8]) -> Option<usize> {
    let first = line.iter().position(|&b| b == b' ')?;
    let second = first + 1 + line[first + 1..].iter().position(|&b| b == b' ')?;
    let at = second + 1;
    (line.get(at).is_some_and(|t| matches!(t, b'P' | b'F'))
        && line.get(at + 1).is_none_or(|b| matches!(b, b' ' | b':')))
    .then_some(at)
}

/// `{"message": <line without its newline>, "file": <path>, ..fields}` and a newline: the shape
/// `fields:` asks for. The line is taken as UTF-8, invalid bytes replaced (JSON holds text only).
///
/// Everything but the line is the same for every line of a file, so it is encoded once, when the
/// file is opened: wrapping a line is two copies and the line's JSON escaping. Keys come out in
/// sorted order, as a JSON object encoded from a sorted map.
#[derive(Clone, Debug)]
pub struct JsonWrap {
    /// `{` and the fields sorted before `message`, up to and including `"message":`.
    head: Vec<u8>,
    /// The fields sorted after `message`, `}` and the newline.
    tail: Vec<u8>,
    /// The whole record, when a configured field named `message` replaces the line.
    constant: Option<Bytes>,
}

impl JsonWrap {
    pub fn new(file: Option<&str>, fields: &std::collections::BTreeMap<String, String>) -> Self {
        let mut others = std::collections::BTreeMap::<&str, serde_json::Value>::new();
        if let Some(file) = file {
            others.insert("file", file.into());
            if let Some(pod) = kubernetes_pod(file) {
                others.insert("kubernetes", pod);
            }
        }
        for (k, v) in fields {
            others.insert(k, v.as_str().into());
        }
        let encode = |out: &mut Vec<u8>, key: &str, value: &serde_json::Value| {
            // Writing a string or a `Value` into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, key);
            out.push(b':');
            let _ = serde_json::to_writer(&mut *out, value);
        };
        if others.contains_key("message") {
            let mut whole = serde_json::to_vec(&others).unwrap_or_default();
            whole.push(b'\n');
            return Self { head: Vec::new(), tail: Vec::new(), constant: Some(Bytes::from(whole)) };
        }
        let mut head = vec![b'{'];
        let mut tail = Vec::new();
        for (key, value) in &others {
            if *key < "message" {
                encode(&mut head, key, value);
                head.push(b',');
            } else {
                tail.push(b',');
                encode(&mut tail, key, value);
            }
        }
        head.extend_from_slice(br#""message":"#);
        tail.extend_from_slice(b"}\n");
        Self { head, tail, constant: None }
    }

    pub fn wrap(&self, line: &[u8]) -> Bytes {
        if let Some(whole) = &self.constant {
            return whole.clone();
        }
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        let mut out = Vec::with_capacity(self.head.len() + body.len() + body.len() / 8 + 2 + self.tail.len());
        out.extend_from_slice(&self.head);
        let _ = serde_json::to_writer(&mut out, &*String::from_utf8_lossy(body));
        out.extend_from_slice(&self.tail);
        Bytes::from(out)
    }
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
    fn cri_partial_lines_are_joined_into_one_whole_line() {
        let mut m = Multiline::cri(std::time::Duration::from_secs(1), 1 << 20);
        let now = std::time::Instant::now();
        let line = |text: &str, end: u64| Line { data: text.as_bytes().to_vec(), end, truncated: false };
        assert!(m.push(line("2026-12-06T10:00:00Z stdout P first ", 10), now).is_none());
        assert!(m.push(line("2026-12-06T10:00:00Z stdout P second ", 20), now).is_none());
        let joined = m.push(line("2026-12-06T10:00:01Z stdout F third\n", 30), now).unwrap();
        assert_eq!(String::from_utf8(joined.data).unwrap(), "2026-12-06T10:00:00Z stdout F first second third\n");
        assert_eq!(joined.end, 30, "the joined record's position is its last line's");
        let whole = m.push(line("2026-12-06T10:00:02Z stderr F alone\n", 40), now).unwrap();
        assert_eq!(whole.data, b"2026-12-06T10:00:02Z stderr F alone\n");
        assert!(m.push(line("2026-12-06T10:00:03Z stdout P cut off", 50), now).is_none());
        assert_eq!(
            m.flush(now, true).unwrap().data,
            b"2026-12-06T10:00:03Z stdout P cut off",
            "an unfinished partial stays P"
        );
    }

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

    fn split(splitter: &mut LineSplitter, chunks: &[&[u8]]) -> Vec<Line> {
        let mut out = Vec::new();
        let mut offset = 0;
        for c in chunks {
            splitter.push(c, offset, &mut out);
            offset += c.len() as u64;
        }
        out
    }

    #[test]
    fn lines_keep_their_newline_and_end_offsets_across_chunks() {
        let mut s = LineSplitter::new(100, None);
        let lines = split(&mut s, &[b"ab", b"c\nde\nf"]);
        assert_eq!(
            lines,
            vec![
                Line { data: b"abc\n".to_vec(), end: 4, truncated: false },
                Line { data: b"de\n".to_vec(), end: 7, truncated: false },
            ]
        );
        assert_eq!(s.pending(), 1);
        assert_eq!(s.finish(8), Some(Line { data: b"f\n".to_vec(), end: 8, truncated: false }));
        assert_eq!(s.finish(8), None);
    }

    #[test]
    fn a_long_line_is_cut_with_the_terminator_and_the_rest_dropped() {
        let mut s = LineSplitter::new(4, Some("…"));
        let lines = split(&mut s, &[b"0123456", b"789\nok\n"]);
        assert_eq!(lines[0], Line { data: "0123…\n".as_bytes().to_vec(), end: 11, truncated: true });
        assert_eq!(lines[1], Line { data: b"ok\n".to_vec(), end: 14, truncated: false });
    }

    #[test]
    fn continuation_lines_join_the_line_that_starts_a_record() {
        let re = regex::bytes::Regex::new(r"^\d{4}-").unwrap();
        let mut m = Multiline::new(re, std::time::Duration::from_secs(1), 1 << 20);
        let now = std::time::Instant::now();
        let line = |t: &str, end| Line { data: t.as_bytes().to_vec(), end, truncated: false };
        assert_eq!(m.push(line("2026-12-02 boom\n", 16), now), None);
        assert_eq!(m.push(line("  at frame 1\n", 29), now), None);
        let first = m.push(line("2026-12-02 next\n", 45), now).unwrap();
        assert_eq!(first.data, b"2026-12-02 boom\n  at frame 1\n");
        assert_eq!(first.end, 29);
        assert_eq!(m.flush(now, false), None);
        assert_eq!(m.flush(now + std::time::Duration::from_secs(1), false).unwrap().end, 45);
    }

    #[test]
    fn wrapped_lines_are_json_with_their_file_and_fields() {
        let fields = [("host".to_string(), "web-1".to_string())].into_iter().collect();
        let out = JsonWrap::new(Some("/var/log/a.log"), &fields).wrap(b"caf\xc3\xa9 \xff\r\n");
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
        let out = JsonWrap::new(Some(file), &fields).wrap(b"a \"quoted\"\tline\n");
        let mut expected = serde_json::json!({
            "app": "cart", "file": file, "host": "n1", "message": "a \"quoted\"\tline", "zone": "eu \"1\"",
            "kubernetes": kubernetes_pod(file).unwrap(),
        })
        .to_string();
        expected.push('\n');
        assert_eq!(String::from_utf8(out.to_vec()).unwrap(), expected);
        let bare = JsonWrap::new(None, &Default::default()).wrap(b"x\r\n");
        assert_eq!(&bare[..], b"{\"message\":\"x\"}\n");
        let replaced = [("message".to_string(), "fixed".to_string())].into_iter().collect();
        assert_eq!(&JsonWrap::new(None, &replaced).wrap(b"line")[..], b"{\"message\":\"fixed\"}\n");
    }
}
