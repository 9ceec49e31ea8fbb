//! `${VAR}` and `${VAR:-default}` in config files, resolved before YAML parsing.
//!
//! Substitution happens on the raw text so it works in any position, and never adds or removes
//! lines, so parse errors still point at the right line. `$$` writes a literal `$`. Comment lines
//! are left alone, so a commented-out `${UNSET}` is not an error.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum InterpolateError {
    #[error("line {line}: environment variable `{name}` is not set and has no default (write `${{{name}:-default}}`)")]
    Unset { line: usize, column: usize, name: String },
    #[error("line {line}: unterminated `${{` (write `$$` for a literal dollar sign)")]
    Unterminated { line: usize },
    #[error("line {line}: `${{{body}}}` is not a valid variable name")]
    BadName { line: usize, body: String },
}

impl InterpolateError {
    pub fn line(&self) -> usize {
        match self {
            InterpolateError::Unset { line, .. }
            | InterpolateError::Unterminated { line }
            | InterpolateError::BadName { line, .. } => *line,
        }
    }
}

pub fn interpolate(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, Vec<InterpolateError>> {
    let done = interpolate_tracked(text, lookup);
    if done.errors.is_empty() {
        Ok(done.text)
    } else {
        Err(done.errors)
    }
}

/// A config after interpolation: its text (a reference that could not be filled left empty, so
/// the rest of the file can still be checked), what was substituted, and every problem.
#[derive(Debug)]
pub struct Interpolated {
    pub text: String,
    pub redactor: Redactor,
    pub errors: Vec<InterpolateError>,
}

/// What interpolation put into a config, so that messages about it can show `${VAR}` instead
/// of the value: environment variables are where secrets live (`${AWS_SECRET_ACCESS_KEY}`).
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    substituted: Vec<(String, String)>,
}

impl Redactor {
    /// `text` with every substituted value replaced by its `${NAME}` reference. Values shorter
    /// than 4 characters are left alone (they would match all over a message) unless the
    /// variable's name says it is a secret.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        let mut by_length: Vec<&(String, String)> = self.substituted.iter().collect();
        by_length.sort_by_key(|(_, value)| std::cmp::Reverse(value.len()));
        for (name, value) in by_length {
            if value.len() >= 4 || (!value.is_empty() && looks_secret(name)) {
                out = out.replace(value.as_str(), &format!("${{{name}}}"));
            }
        }
        out
    }
}

fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["SECRET", "PASSWORD", "TOKEN", "KEY", "CREDENTIAL"].iter().any(|w| upper.contains(w))
}

/// [`interpolate`], also returning what was substituted. Every problem is reported, so a
/// deployment missing three variables learns all three names at once, and the text is returned
/// even then, so the file's other problems are found in the same run.
pub fn interpolate_tracked(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Interpolated {
    let mut errors = Vec::new();
    let mut redactor = Redactor::default();
    let mut out = String::with_capacity(text.len());
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let line_no = index + 1;
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let column = line.len() - rest.len() + pos + 1;
            let after = &rest[pos + 1..];
            if let Some(stripped) = after.strip_prefix('$') {
                out.push('$');
                rest = stripped;
            } else if let Some(body_and_rest) = after.strip_prefix('{') {
                let Some(end) = body_and_rest.find('}') else {
                    errors.push(InterpolateError::Unterminated { line: line_no });
                    rest = "";
                    break;
                };
                let body = &body_and_rest[..end];
                let (name, default) = match body.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (body, None),
                };
                let valid = !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !name.starts_with(|c: char| c.is_ascii_digit());
                if !valid {
                    errors.push(InterpolateError::BadName { line: line_no, body: body.to_string() });
                }
                match (lookup(name).filter(|v| !v.is_empty()), default) {
                    _ if !valid => {}
                    (Some(value), _) => {
                        out.push_str(&value);
                        redactor.substituted.push((name.to_string(), value));
                    }
                    (None, Some(d)) => out.push_str(d),
                    (None, None) => {
                        errors.push(InterpolateError::Unset { line: line_no, column, name: name.to_string() })
                    }
                }
                rest = &body_and_rest[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
    }
    Interpolated { text: out, redactor, errors }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "BUCKET" => Some("lake".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_values_defaults_and_escapes() {
        let out = interpolate("b: ${BUCKET}\nr: ${REGION:-us-east-1}\ne: ${EMPTY:-x}\np: $$5 $x\n", env).unwrap();
        assert_eq!(out, "b: lake\nr: us-east-1\ne: x\np: $5 $x\n");
    }

    #[test]
    fn every_unset_variable_is_named_with_its_line() {
        let errors = interpolate("a: 1\nb: ${NOPE}\nc: ${BUCKET} ${ALSO_NOPE}\n", env).unwrap_err();
        assert_eq!(
            errors,
            vec![
                InterpolateError::Unset { line: 2, column: 4, name: "NOPE".into() },
                InterpolateError::Unset { line: 3, column: 14, name: "ALSO_NOPE".into() },
            ]
        );
        assert!(errors[0].to_string().contains("line 2"));
    }

    #[test]
    fn messages_show_the_reference_never_the_value() {
        let lookup = |name: &str| match name {
            "AWS_SECRET_ACCESS_KEY" => Some("wJalrXUtnFEMI/K7MDENG".to_string()),
            "PIN_KEY" => Some("12".to_string()),
            "N" => Some("5".to_string()),
            _ => None,
        };
        let Interpolated { text, redactor, errors } =
            interpolate_tracked("name: \"${AWS_SECRET_ACCESS_KEY}\"\np: ${PIN_KEY}\nn: ${N}\n", lookup);
        assert!(errors.is_empty());
        assert!(text.contains("wJalrXUtnFEMI/K7MDENG"));
        let message = format!("`{}` is not a valid DeliveryStreamName; pin 12; size 5", "wJalrXUtnFEMI/K7MDENG");
        assert_eq!(
            redactor.redact(&message),
            "`${AWS_SECRET_ACCESS_KEY}` is not a valid DeliveryStreamName; pin ${PIN_KEY}; size 5"
        );
    }

    #[test]
    fn comments_are_not_interpolated() {
        assert_eq!(interpolate("  # ${NOPE}\n", env).unwrap(), "  # ${NOPE}\n");
    }

    #[test]
    fn malformed_references_are_errors() {
        assert_eq!(interpolate("a: ${OPEN", env), Err(vec![InterpolateError::Unterminated { line: 1 }]));
        assert!(matches!(interpolate("a: ${1X}", env).unwrap_err()[..], [InterpolateError::BadName { .. }]));
    }
}
