//! Which field a position in a YAML config is in: `pipelines[0].buffering.size_mb` for line 5,
//! column 27. The YAML parser reports a type error by position only; people think in fields.
//!
//! Read from the text the way a person reads it: block mappings and sequences by indentation
//! (a key's parent is the nearest line above that starts further left; a `- ` item's index is
//! the number of `- ` lines before it at the same column), flow mappings and sequences on one line
//! by their brackets. Multi-line flow collections and multi-line scalars are not followed: the path
//! stops where the reading would be a guess, so it may be shorter but is never wrong in a way that
//! points elsewhere.

/// The structural parts that start a line: the columns (0-based) of its `- ` markers, then its
/// key, if it has one, with the key's column.
struct LineStart<'a> {
    indent: usize,
    dashes: Vec<usize>,
    key: Option<(usize, &'a str)>,
    /// Where the key's value starts (after `key:`), when there is a key.
    value_at: usize,
}

fn line_start(line: &str) -> Option<LineStart<'_>> {
    let trimmed = line.trim_start_matches(' ');
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return None;
    }
    let indent = line.len() - trimmed.len();
    let mut at = indent;
    let mut dashes = Vec::new();
    while line[at..].starts_with("- ") || &line[at..] == "-" {
        dashes.push(at);
        at += 1;
        at += line[at..].len() - line[at..].trim_start_matches(' ').len();
    }
    let (key, value_at) = match key_at(line, at) {
        Some((name, end)) => (Some((at, name)), end),
        None => (None, at),
    };
    Some(LineStart { indent, dashes, key, value_at })
}

/// A plain or quoted key starting at `at` and followed by `:` and a space or the end of the line:
/// the key and where its value starts.
fn key_at(line: &str, at: usize) -> Option<(&str, usize)> {
    let rest = &line[at..];
    let (name, after) = match rest.chars().next()? {
        q @ ('"' | '\'') => {
            let close = rest[1..].find(q)? + 1;
            (&rest[1..close], close + 1)
        }
        _ => {
            let end = rest.find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')))?;
            (&rest[..end], end)
        }
    };
    let tail = rest[after..].strip_prefix(':')?;
    (tail.is_empty() || tail.starts_with(' ')).then_some((name, at + after + 1))
}

/// The `- ` items before the one at `line_index` (0-based) whose dash is at `column`: its index in
/// its sequence.
fn item_index(lines: &[&str], line_index: usize, column: usize) -> usize {
    let mut count = 0;
    for line in lines[..line_index].iter().rev() {
        let Some(start) = line_start(line) else { continue };
        if start.indent < column {
            break;
        }
        if start.indent == column {
            if start.dashes.first() != Some(&column) {
                break;
            }
            count += 1;
        }
    }
    count
}

/// The path inside flow collections (`{ a: 1, b: [x, y] }`) from `from` up to `column` on one
/// line, and the column of the innermost key on it.
fn flow_path(line: &str, from: usize, column: usize) -> (Vec<String>, Option<usize>) {
    enum Context {
        Map(Option<(String, usize)>),
        Seq(usize),
    }
    let mut stack: Vec<Context> = Vec::new();
    let mut quote: Option<char> = None;
    let end = column.min(line.len());
    let mut i = from;
    while i < end {
        let c = line[i..].chars().next().unwrap_or(' ');
        match (quote, c) {
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') if !matches!(stack.last(), Some(Context::Map(None))) => quote = Some(c),
            (None, '{') => stack.push(Context::Map(None)),
            (None, '[') => stack.push(Context::Seq(0)),
            (None, '}' | ']') => {
                stack.pop();
            }
            (None, ',') => match stack.last_mut() {
                Some(Context::Seq(n)) => *n += 1,
                Some(Context::Map(key)) => *key = None,
                None => {}
            },
            (None, _) if matches!(stack.last(), Some(Context::Map(None))) && c != ' ' => {
                if let Some((name, after)) = key_at(line, i) {
                    if let Some(Context::Map(key)) = stack.last_mut() {
                        *key = Some((name.to_string(), i));
                    }
                    i = after;
                    continue;
                }
            }
            _ => {}
        }
        i += c.len_utf8();
    }
    let innermost_key = stack.iter().rev().find_map(|c| match c {
        Context::Map(Some((_, at))) => Some(*at),
        _ => None,
    });
    let path = stack
        .into_iter()
        .filter_map(|c| match c {
            Context::Map(key) => key.map(|(name, _)| name),
            Context::Seq(n) => Some(format!("[{n}]")),
        })
        .collect();
    (path, innermost_key)
}

/// A field found at a position: its path, and the 1-based column of its key on the position's
/// line (where a `key: value` can be taken out to read past a bad value).
#[derive(Debug, PartialEq, Eq)]
pub struct FieldAt {
    pub path: String,
    pub key_column: Option<usize>,
}

/// The field at `line`:`column` (1-based, as the parser reports them), such as
/// `pipelines[0].buffering.size_mb` (empty when the position is not inside any field), and
/// where its key is.
pub fn field_at(text: &str, line: usize, column: usize) -> FieldAt {
    let none = FieldAt { path: String::new(), key_column: None };
    let lines: Vec<&str> = text.split('\n').collect();
    let Some(index) = line.checked_sub(1).filter(|&i| i < lines.len()) else { return none };
    let column = column.saturating_sub(1);
    // Segments from the innermost out.
    let mut segments: Vec<String> = Vec::new();
    let mut node;
    let mut key_column = None;
    match line_start(lines[index]) {
        Some(start) => {
            node = start.indent;
            if let Some((key_col, name)) = start.key.filter(|(at, _)| *at <= column) {
                let (mut inner, inner_key) = flow_path(lines[index], start.value_at, column + 1);
                inner.reverse();
                segments.extend(inner);
                segments.push(name.to_string());
                node = key_col;
                key_column = Some(inner_key.unwrap_or(key_col) + 1);
            }
            // Dashes are left of each other, so every one left of the node stays left of the next.
            let limit = node;
            for &dash in start.dashes.iter().rev().filter(|&&d| d < limit) {
                segments.push(format!("[{}]", item_index(&lines, index, dash)));
                node = dash;
            }
        }
        None => return none,
    }
    for j in (0..index).rev() {
        if node == 0 {
            break;
        }
        let Some(start) = line_start(lines[j]) else { continue };
        if start.indent >= node {
            continue;
        }
        // This line holds our node: its key is the parent when it starts left of the node,
        // otherwise the node is in one of its `- ` items.
        if let Some((key_col, name)) = start.key.filter(|(at, _)| *at < node) {
            segments.push(name.to_string());
            node = key_col;
        }
        let limit = node;
        for &dash in start.dashes.iter().rev().filter(|&&d| d < limit) {
            segments.push(format!("[{}]", item_index(&lines, j, dash)));
            node = dash;
        }
    }
    let mut path = String::new();
    for segment in segments.iter().rev() {
        if !path.is_empty() && !segment.starts_with('[') {
            path.push('.');
        }
        path.push_str(segment);
    }
    FieldAt { path, key_column }
}

#[cfg(test)]
mod tests {
    use super::field_at;

    fn field_path(text: &str, line: usize, column: usize) -> String {
        field_at(text, line, column).path
    }

    const CONFIG: &str = "\
api: { listen: 127.0.0.1:4573 }
pipelines:
  - name: first
    destination: { local: { path: ./out } }
  - name: second
    buffering: { size_mb: five, interval_seconds: 60 }
    processors:
      - jq: { query: . }
      - add_newline: {}
    destination:
      s3:
        bucket: b
        prefix: [x, y]
";

    /// Line and column (1-based) of the first `needle` on line `line`.
    fn at(line: usize, needle: &str) -> (usize, usize) {
        let text = CONFIG.split('\n').nth(line - 1).unwrap();
        (line, text.find(needle).unwrap() + 1)
    }

    #[test]
    fn block_keys_sequence_items_and_flow_entries_are_named() {
        let path = |(line, column): (usize, usize)| field_path(CONFIG, line, column);
        assert_eq!(path(at(1, "127")), "api.listen");
        assert_eq!(path(at(5, "second")), "pipelines[1].name");
        assert_eq!(path(at(6, "five")), "pipelines[1].buffering.size_mb");
        assert_eq!(path(at(6, "60")), "pipelines[1].buffering.interval_seconds");
        assert_eq!(path(at(9, "add_newline")), "pipelines[1].processors[1].add_newline");
        assert_eq!(path(at(12, "b")), "pipelines[1].destination.s3.bucket");
        assert_eq!(path(at(13, "y")), "pipelines[1].destination.s3.prefix[1]");
        assert_eq!(path(at(4, "./out")), "pipelines[0].destination.local.path");
    }

    #[test]
    fn the_key_of_a_bad_value_is_found_in_block_and_flow_style() {
        let (line, column) = at(6, "five");
        assert_eq!(field_at(CONFIG, line, column).key_column, Some(at(6, "size_mb").1));
        let (line, column) = at(12, "b");
        assert_eq!(field_at(CONFIG, line, column).key_column, Some(at(12, "bucket").1));
    }

    #[test]
    fn positions_outside_the_text_have_no_path() {
        assert_eq!(field_path(CONFIG, 0, 1), "");
        assert_eq!(field_path(CONFIG, 99, 1), "");
    }
}
