//! logfmt (`level=info msg="user logged in" user=alice duration=12ms`) into string fields.
//!
//! Written here rather than taken from a crate: the crates that exist are unmaintained, and the
//! format is one loop (keys up to `=`, values bare or double-quoted with `\"` escapes). A bare key
//! without `=` is `true`, as logfmt's reference implementation reads it.

use serde_json::{Map, Value};

/// The pairs of a logfmt line. Err: the text has no `key=value` pair, or an unterminated quote.
pub fn fields(text: &str) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    let mut pairs = 0;
    let mut rest = text.trim();
    while !rest.is_empty() {
        let key_end = rest.find(|c: char| c == '=' || c.is_whitespace()).unwrap_or(rest.len());
        let key = &rest[..key_end];
        if key.is_empty() {
            return Err(format!("a value without a key at `{}`", preview(rest)));
        }
        rest = &rest[key_end..];
        let Some(after_eq) = rest.strip_prefix('=') else {
            out.insert(key.to_string(), Value::Bool(true));
            rest = rest.trim_start();
            continue;
        };
        let (value, remaining) = match after_eq.strip_prefix('"') {
            Some(quoted) => quoted_value(quoted).ok_or_else(|| format!("the value of `{key}` has no closing quote"))?,
            None => {
                let end = after_eq.find(char::is_whitespace).unwrap_or(after_eq.len());
                (after_eq[..end].to_string(), &after_eq[end..])
            }
        };
        out.insert(key.to_string(), Value::String(value));
        pairs += 1;
        rest = remaining.trim_start();
    }
    if pairs == 0 {
        return Err("no key=value pair".into());
    }
    Ok(out)
}

/// The text of a quoted value (after its opening quote) and what follows its closing quote.
fn quoted_value(quoted: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, 'n')) => value.push('\n'),
                Some((_, 't')) => value.push('\t'),
                Some((_, escaped)) => value.push(escaped),
                None => return None,
            },
            '"' => return Some((value, &quoted[i + 1..])),
            _ => value.push(c),
        }
    }
    None
}

fn preview(text: &str) -> &str {
    &text[..text.char_indices().nth(20).map_or(text.len(), |(i, _)| i)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_quoted_and_flag_values() {
        let m = fields(r#"level=info msg="user \"alice\" logged in" took=12ms debug"#).unwrap();
        assert_eq!(m["level"], "info");
        assert_eq!(m["msg"], r#"user "alice" logged in"#);
        assert_eq!(m["took"], "12ms");
        assert_eq!(m["debug"], true);
    }

    #[test]
    fn unterminated_quotes_and_plain_text_are_refused() {
        assert!(fields(r#"msg="oops"#).unwrap_err().contains("no closing quote"));
        assert!(fields("just words here").is_err());
        assert!(fields("=value").is_err());
    }
}
