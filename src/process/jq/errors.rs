//! jaq's load and compile errors in plain words, with the column they point at.
//!
//! jaq reports each error with a slice of the query text; the slice's offset gives the column.
//! Errors in jaq's own prelude (which a query cannot cause) are reported without a column.

use jaq_core::load::{self, lex, parse};

/// Why a jq query does not compile. `column` is 1-based within the query text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct CompileError {
    pub column: Option<usize>,
    pub message: String,
}

impl CompileError {
    fn render(&self) -> String {
        match self.column {
            Some(c) => format!("jq query, column {c}: {}", self.message),
            None => format!("jq query: {}", self.message),
        }
    }
}

/// The 1-based column of `part` in `query`, when `part` is a slice of it.
fn column_of(query: &str, part: &str) -> Option<usize> {
    let start = query.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    (at >= start && at <= start + query.len()).then(|| query[..at - start].chars().count() + 1)
}

fn found(part: &str) -> String {
    match part.chars().next() {
        None => "the end of the query".to_string(),
        Some(_) => format!("`{}`", part.chars().take(12).collect::<String>()),
    }
}

fn lex_expect(e: &lex::Expect<&str>) -> String {
    match e {
        lex::Expect::Digit => "a digit".into(),
        lex::Expect::Ident => "a name".into(),
        lex::Expect::Delim(open) => match *open {
            "(" => "a closing `)`".into(),
            "[" => "a closing `]`".into(),
            "{" => "a closing `}`".into(),
            "\"" => "a closing `\"`".into(),
            other => format!("the end of `{other}`"),
        },
        lex::Expect::Escape => "a valid string escape such as \\n or \\\"".into(),
        lex::Expect::Unicode => "four hexadecimal digits after \\u".into(),
        _ => "a jq token".into(),
    }
}

pub(super) fn load_error(query: &str, errors: &load::Errors<&str, ()>) -> CompileError {
    let mut first = None;
    for (file, error) in errors {
        let ours = file.code == query;
        let (part, message) = match error {
            load::Error::Io(items) => match items.first() {
                Some((part, why)) => (*part, format!("cannot load `{part}`: {why}")),
                None => continue,
            },
            load::Error::Lex(items) => match items.first() {
                Some((expect, part)) => (*part, format!("expected {} but found {}", lex_expect(expect), found(part))),
                None => continue,
            },
            load::Error::Parse(items) => match items.first() {
                Some((expect, part)) => (*part, format!("expected {} but found {}", parse_expect(expect), found(part))),
                None => continue,
            },
        };
        let column = if ours { column_of(query, part) } else { None };
        first.get_or_insert(CompileError { column, message });
    }
    first.unwrap_or(CompileError { column: None, message: "the query does not parse".into() })
}

fn parse_expect(e: &parse::Expect<&str>) -> String {
    match e {
        parse::Expect::Just(s) => format!("`{s}`"),
        parse::Expect::Term => "a value or filter".into(),
        other => other.as_str().to_string(),
    }
}

pub(super) fn compile_error(query: &str, errors: &jaq_core::compile::Errors<&str, ()>) -> CompileError {
    for (file, list) in errors {
        if let Some((name, undefined)) = list.first() {
            let what = undefined.as_str();
            let hint = match (what, *name) {
                ("filter", "strptime" | "strftime" | "mktime" | "gmtime") => "",
                ("variable", _) => " (variables are bound with `as $name`)",
                ("filter", _) => " (is it a typo, or a jq function sluice's jq does not have?)",
                _ => "",
            };
            let column = if file.code == query { column_of(query, name) } else { None };
            return CompileError { column, message: format!("unknown {what} `{name}`{hint}") };
        }
    }
    CompileError { column: None, message: "the query does not compile".into() }
}
