//! Cutting a byte stream into line records: shared by the sources that read text (tailed files,
//! stdin, HTTP `lines`/`ndjson` bodies).
//!
//! A record is one line **with** its `\n`, as the Kinesis Agent sends lines to Firehose, so raw
//! objects are valid NDJSON without `append_delimiter` (a `\r\n` ending is kept as written). A line
//! longer than `max_line` is cut: the first `max_line` bytes (plus the configured terminator) make
//! the record and the rest up to the next newline is dropped and counted, so one runaway line can
//! neither exhaust memory nor stop the source.

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
}
