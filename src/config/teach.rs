//! Config errors that teach: "did you mean", every unknown field of a file in one run, and the
//! code frame under each message.
//!
//! serde stops at the first error. For the commonest one, an unknown (usually misspelt) field,
//! [`parse_recovering`] reports it, blanks the field out of the text and parses again, so one
//! run lists every unknown field and then every semantic error of what remains. Blanking keeps
//! the line count, so later errors still point at the right line. Other syntax and type errors
//! stop the parse there: what follows cannot be trusted.

use serde_saphyr::Error as YamlError;

use super::validate::ConfigError;
use super::RawConfig;

/// Unknown fields reported in one run before giving up on recovery.
const MAX_RECOVERIES: usize = 50;

/// The closest candidate to `word`, if one is close enough to be what was meant.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word_lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            let lower = c.to_ascii_lowercase();
            let distance = strsim::damerau_levenshtein(&word_lower, &lower);
            let similarity = strsim::jaro_winkler(&word_lower, &lower);
            (c, distance, similarity)
        })
        .filter(|(c, distance, similarity)| *distance <= (c.len().max(word.len()) / 3).max(1) || *similarity >= 0.88)
        .min_by(|a, b| a.1.cmp(&b.1).then(b.2.total_cmp(&a.2)))
        .map(|(c, ..)| c)
}

/// `; did you mean `x`?` or nothing.
pub fn hint<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    did_you_mean(word, candidates).map(|c| format!("; did you mean `{c}`?")).unwrap_or_default()
}

fn list(expected: &[&str]) -> String {
    expected.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ")
}

/// Fields an object store's options share in one type but that only one kind takes: not offered
/// as "allowed here" where they would be refused next.
const S3_ONLY: &[&str] = &["bucket", "endpoint", "region", "force_path_style"];
const LOCAL_ONLY: &[&str] = &["path"];

/// What `expected` really allows at `path` (`…destination.local.x`: no S3 options).
fn allowed_at<'a>(path: &str, expected: &[&'a str]) -> Vec<&'a str> {
    let segments: Vec<&str> = path.split(['.', '[']).collect();
    let parent = segments.len().checked_sub(2).and_then(|i| segments.get(i)).copied().unwrap_or("");
    let excluded: &[&str] = match parent {
        "local" => S3_ONLY,
        "s3" => LOCAL_ONLY,
        _ => &[],
    };
    expected.iter().copied().filter(|e| !excluded.contains(e)).collect()
}

/// The message for a parse error at the field `path`, in sluice's words where serde's can be
/// improved on.
fn message(e: &YamlError, path: &str) -> String {
    match e {
        YamlError::SerdeUnknownField { field, expected, .. } => {
            let allowed = allowed_at(path, expected);
            format!(
                "unknown field `{field}`{} (allowed here: {})",
                hint(field, allowed.iter().copied()),
                list(&allowed)
            )
        }
        YamlError::SerdeUnknownVariant { variant, expected, .. } => {
            format!("unknown value `{variant}`{} (one of: {})", hint(variant, expected.iter().copied()), list(expected))
        }
        // The location is the error's own, shown once in front of it.
        other => {
            let text = other.to_string();
            match text.rfind(" at line ") {
                Some(at) if text[at..].contains(", column ") => text[..at].to_string(),
                _ => text,
            }
        }
    }
}

/// A parse error in sluice's words, without a location (for text sluice generated itself).
pub fn plain_yaml_error(e: &YamlError) -> String {
    message(e, "")
}

/// Parses the config text, recovering from unknown fields. Returns the parsed config if the
/// text (with unknown fields blanked) parses, and every error met on the way.
pub fn parse_recovering(text: &str, origin: &str) -> (Option<RawConfig>, Vec<ConfigError>) {
    let mut text = text.to_string();
    let mut errors: Vec<ConfigError> = Vec::new();
    // Fields taken out to read past a bad value: their absence is no news.
    let mut blanked: Vec<String> = Vec::new();
    for _ in 0..=MAX_RECOVERIES {
        let error = match serde_saphyr::from_str::<RawConfig>(&text) {
            Ok(raw) => return (Some(raw), errors),
            Err(e) => e,
        };
        let e = error.without_snippet();
        let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
        if let YamlError::SerdeMissingField { field, .. } = e {
            if blanked.iter().any(|b| b == field) {
                break;
            }
        }
        let at = super::yaml_path::field_at(&text, line as usize, column as usize);
        let repeated = errors.last().is_some_and(|last| (last.line, last.column) == (line, column));
        let message = message(e, &at.path);
        errors.push(ConfigError { origin: origin.to_string(), line, column, field: at.path, message });
        let recovered = match e {
            _ if repeated => false,
            YamlError::SerdeUnknownField { .. } => blank_key(&mut text, line as usize, column as usize),
            // A value of the wrong type or an unknown enum value: the field is taken out and the
            // rest read on, so one bad value does not hide the file's other problems.
            YamlError::SerdeInvalidType { .. }
            | YamlError::SerdeInvalidValue { .. }
            | YamlError::SerdeInvalidLength { .. }
            | YamlError::SerdeUnknownVariant { .. }
            | YamlError::InvalidScalar { .. }
            | YamlError::InvalidBooleanStrict { .. }
            | YamlError::NullIntoString { .. }
            | YamlError::Message { .. } => match at.key_column {
                Some(key_column) => {
                    let key = (line as usize)
                        .checked_sub(1)
                        .and_then(|l| text.split('\n').nth(l))
                        .and_then(|l| l.get(key_column.saturating_sub(1)..));
                    let name = key.map(|k| k.split(':').next().unwrap_or("").trim_matches(['"', '\'']).to_string());
                    blanked.extend(name);
                    blank_key(&mut text, line as usize, key_column)
                }
                None => false,
            },
            _ => false,
        };
        if !recovered {
            break;
        }
    }
    (None, errors)
}

/// Removes the `key: value` whose key starts at `line`:`column` (1-based), keeping every line.
/// Returns false when it cannot do so safely.
fn blank_key(text: &mut String, line: usize, column: usize) -> bool {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let Some(current) = lines.get(line.wrapping_sub(1)) else { return false };
    let Some((key_at, _)) = current.char_indices().nth(column.wrapping_sub(1)) else { return false };
    let before = &current[..key_at];
    if before.contains(['{', ',']) {
        return blank_flow_entry(&mut lines[line - 1], key_at) && {
            *text = lines.join("\n");
            true
        };
    }
    if !before.chars().all(|c| c == ' ' || c == '-') {
        return false;
    }
    // Block style: the key's line, and the more-indented lines of its value after it.
    let indent = before.len();
    lines[line - 1] = before.to_string(); // keeps a `- ` that opened a sequence item
    for next in lines.iter_mut().skip(line) {
        let trimmed = next.trim_start();
        let next_indent = next.len() - trimmed.len();
        if !trimmed.is_empty() && !trimmed.starts_with('#') && next_indent <= indent {
            break;
        }
        next.clear();
    }
    *text = lines.join("\n");
    true
}

/// Removes `key: value` from a flow mapping on one line: up to the next `,` or closing bracket
/// at the same depth (quotes respected), with one adjoining comma.
fn blank_flow_entry(line: &mut String, key_at: usize) -> bool {
    let bytes = line.as_bytes();
    let (mut depth, mut quote, mut end) = (0i32, None::<u8>, None);
    for (i, &b) in bytes.iter().enumerate().skip(key_at) {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(b),
            (None, b'{' | b'[') => depth += 1,
            (None, b'}' | b']') if depth == 0 => {
                end = Some(i);
                break;
            }
            (None, b'}' | b']') => depth -= 1,
            (None, b',') if depth == 0 => {
                let spaces = bytes[i + 1..].iter().take_while(|b| **b == b' ').count();
                end = Some(i + 1 + spaces);
                break;
            }
            _ => {}
        }
    }
    let Some(end) = end else { return false };
    let mut start = key_at;
    if bytes[..end].iter().rev().find(|b| **b != b' ') != Some(&b',') {
        // The last entry: take the comma before it instead.
        match line[..key_at].rfind(',') {
            Some(comma) if line[comma + 1..key_at].trim().is_empty() => start = comma,
            _ => {}
        }
    }
    line.replace_range(start..end, "");
    true
}

/// The line an error points at, with a caret under its column, for terminals:
/// ```text
///    5 |       - feilds: [a]
///      |         ^
/// ```
pub fn code_frame(text: &str, line: u64, column: u64) -> Option<String> {
    let source = text.lines().nth((line as usize).checked_sub(1)?)?;
    let source = &mask_secret_values(&mask_url_passwords(source));
    let gutter = line.to_string().len();
    let caret_at: usize = source.chars().take((column as usize).saturating_sub(1)).map(|_| 1).sum();
    Some(format!("{:>gutter$} |\n{line} | {source}\n{:>gutter$} | {}^", "", "", " ".repeat(caret_at)))
}

/// A line with the password of every `scheme://user:password@host` replaced by `***`, so an error
/// about a database URL written out in the file does not print its password. Same length is not
/// kept: the caret points at the value's start, which comes before any password.
fn mask_url_passwords(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c == '?' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at_sign), Some(colon)) if colon < at_sign => {
                out.push_str(&authority[..=colon]);
                out.push_str("***");
                out.push_str(&authority[at_sign..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

/// Keys whose values are secrets wherever they appear in a config.
const SECRET_KEYS: &[&str] =
    &["password", "access_key", "secret", "secret_access_key", "bearer_token", "token", "hec_token"];

/// A line with the value of every secret key (`password: x`, `"token": "x"`) replaced by `***`, so
/// an error about a neighbouring value on the same line (a flow mapping such as
/// `sasl: { mechanism: X, password: y }`) does not print it.
fn mask_secret_values(line: &str) -> String {
    let mut out = line.to_string();
    for key in SECRET_KEYS {
        let mut from = 0;
        while let Some(found) = out[from..].find(key) {
            let at = from + found;
            let before = out[..at].chars().next_back();
            let after_key = &out[at + key.len()..];
            let quote_len = usize::from(after_key.starts_with('"') || after_key.starts_with('\''));
            let rest = &after_key[quote_len..];
            let is_key = before.is_none_or(|c| c.is_whitespace() || matches!(c, '{' | ',' | '"' | '\''))
                && rest.trim_start().starts_with(':');
            if !is_key {
                from = at + key.len();
                continue;
            }
            let value_start = at + key.len() + quote_len + (rest.len() - rest.trim_start().len()) + 1;
            let value = &out[value_start..];
            let trimmed = value.trim_start();
            let lead = value.len() - trimmed.len();
            let len = match trimmed.chars().next() {
                Some(q @ ('"' | '\'')) => trimmed[1..].find(q).map_or(trimmed.len(), |end| end + 2),
                _ => trimmed.find([',', '}', '#']).unwrap_or(trimmed.len()),
            };
            let (start, end) = (value_start + lead, value_start + lead + len);
            if trimmed[..len].trim().is_empty() {
                from = end.max(at + key.len());
                continue;
            }
            out.replace_range(start..end, "***");
            from = start + 3;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn secret_values_are_masked_in_code_frames() {
        let frame =
            super::code_frame("sasl: { mechanism: GSSAPI, username: u, password: \"s3cret\" }\n", 1, 20).unwrap();
        assert!(!frame.contains("s3cret") && frame.contains("password: ***"), "{frame}");
        let frame = super::code_frame("  access_key: AKIA123 # note\n", 1, 3).unwrap();
        assert!(!frame.contains("AKIA123"), "{frame}");
        let frame = super::code_frame("  passwords_file: ./p, token_url: x\n", 1, 3).unwrap();
        assert!(frame.contains("./p"), "only whole keys are secrets: {frame}");
    }

    #[test]
    fn a_local_destination_is_not_offered_s3_options() {
        let expected = ["bucket", "endpoint", "path", "prefix", "compression"];
        assert_eq!(
            super::allowed_at("pipelines[0].destination.local.prefx", &expected),
            ["path", "prefix", "compression"]
        );
        assert_eq!(
            super::allowed_at("pipelines[0].destination.s3.prefx", &expected),
            ["bucket", "endpoint", "prefix", "compression"]
        );
        assert_eq!(super::allowed_at("pipelines[0].buferring", &expected), expected);
    }

    use super::*;

    #[test]
    fn url_passwords_are_masked_in_code_frames() {
        assert_eq!(
            mask_url_passwords(r#"  url: "postgres://loader:pa:ss@db:5432/x?sslmode=require" # p://a:b@c"#),
            r#"  url: "postgres://loader:***@db:5432/x?sslmode=require" # p://a:***@c"#
        );
        assert_eq!(mask_url_passwords("endpoint: https://host:8443/path"), "endpoint: https://host:8443/path");
        let frame = code_frame("a: 1\nurl: postgres://u:hunter2@h/db\n", 2, 6).unwrap();
        assert!(frame.contains("postgres://u:***@h/db") && !frame.contains("hunter2"), "{frame}");
    }

    #[test]
    fn suggests_the_close_name_and_nothing_for_a_far_one() {
        let fields = ["fields", "prefix", "error_output_prefix", "compression"];
        assert_eq!(did_you_mean("feilds", fields), Some("fields"));
        assert_eq!(did_you_mean("compresion", fields), Some("compression"));
        assert_eq!(did_you_mean("error_prefix", fields), Some("error_output_prefix"));
        assert_eq!(did_you_mean("banana", fields), None);
        assert_eq!(did_you_mean("gzip", ["GZIP", "ZIP", "Snappy"]), Some("GZIP"));
    }

    #[test]
    fn every_unknown_field_is_reported_in_one_run() {
        let text = "pipelines:\n  - name: a\n    bufering: { size_mb: 1 }\n    destination:\n      local:\n        path: ./x\n        prefx: p/\n        nested_typo:\n          deep: 1\n  - naem: b\n    destination: { local: { pth: ./y, prefix: q/ } }\n";
        let (raw, errors) = parse_recovering(text, "c.yaml");
        let messages: Vec<String> = errors.iter().map(|e| format!("{}:{} {}", e.line, e.column, e.message)).collect();
        assert_eq!(errors.len(), 5, "{messages:#?}");
        assert!(messages[0].starts_with("3:5 unknown field `bufering`; did you mean `buffering`?"), "{messages:#?}");
        assert!(messages[1].starts_with("7:9 unknown field `prefx`; did you mean `prefix`?"), "{messages:#?}");
        assert!(messages[2].starts_with("8:9 unknown field `nested_typo` (allowed here:"), "{messages:#?}");
        assert!(messages[3].starts_with("10:5 unknown field `naem`; did you mean `name`?"), "{messages:#?}");
        assert!(messages[4].starts_with("11:29 unknown field `pth`; did you mean `path`?"), "{messages:#?}");
        assert!(raw.is_some(), "what remains parses, so semantic checks can run on it");
    }

    #[test]
    fn flow_entries_are_removed_with_their_comma() {
        for (line, at, expected) in [
            ("x: { a: 1, bad: [1, {b: 2}], c: 3 }", 11, "x: { a: 1, c: 3 }"),
            ("x: { a: 1, bad: \"}\" }", 11, "x: { a: 1}"),
            ("x: { bad: 1 }", 5, "x: { }"),
        ] {
            let mut l = line.to_string();
            assert!(blank_flow_entry(&mut l, at));
            assert_eq!(l, expected);
        }
    }

    #[test]
    fn the_frame_points_at_the_column() {
        assert_eq!(code_frame("a: 1\n  bad: 2\n", 2, 3).unwrap(), "  |\n2 |   bad: 2\n  |   ^");
    }
}
