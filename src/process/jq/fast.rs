//! The fast plan: queries that build one object from paths, answered without jaq.
//!
//! `{customer_id: .customer_id, device: .type.device, year: .ts[0:4]}` needs three fields of the
//! record, yet jaq parses the whole record into a value tree first. The plan parses such a query
//! into a trie of the paths it reads, walks the record once with jiter (a pull parser that skips
//! what it does not need without allocating), and answers with the fields in query order.
//!
//! The plan only answers when it can answer exactly as jaq would: strings, integers, booleans and
//! null (missing fields are null, as in jq). A float, an object or array where a value is wanted, a
//! path through a non-object, or a record that is not a JSON object makes [`FastPlan::run`] return
//! `None`, and the caller asks jaq.

use std::borrow::Cow;

use jiter::{Jiter, JiterResult, Peek};

/// A field's value, as jaq would print it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FastValue<'a> {
    Null,
    Bool(bool),
    /// An integer, as its JSON text (at most 18 digits, so it is exact in every jq).
    Int(&'a str),
    Str(Cow<'a, str>),
}

impl FastValue<'_> {
    /// Appends the value as jq prints it (`jq -c`).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            FastValue::Null => out.extend_from_slice(b"null"),
            FastValue::Bool(true) => out.extend_from_slice(b"true"),
            FastValue::Bool(false) => out.extend_from_slice(b"false"),
            FastValue::Int(text) => out.extend_from_slice(text.as_bytes()),
            FastValue::Str(s) => write_json_string(out, s),
        }
    }
}

/// Writes the plan's answer as the object jq would print: `{"name":value,...}` in query order.
pub fn write_fields(out: &mut Vec<u8>, fields: &[(&str, FastValue<'_>)]) {
    out.push(b'{');
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_string(out, name);
        out.push(b':');
        value.write_json(out);
    }
    out.push(b'}');
}

/// Writes a JSON string the way jaq does: `"`, `\` and control characters escaped (short forms
/// where JSON has them), everything else, non-ASCII included, as is.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut plain_from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f | 0x7f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[plain_from..i]);
        if escape.is_empty() {
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            out.extend_from_slice(escape);
        }
        plain_from = i + 1;
    }
    out.extend_from_slice(&bytes[plain_from..]);
    out.push(b'"');
}

/// `[from:to]` on a string, in characters (jq's string slice); `None` is an open end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slice {
    from: Option<usize>,
    to: Option<usize>,
}

#[derive(Debug)]
struct Field {
    name: String,
    slice: Option<Slice>,
}

/// One step of the path trie: the fields that end here and the keys that lead further.
#[derive(Debug, Default)]
struct Node {
    ends: Vec<usize>,
    children: Vec<(String, Node)>,
}

impl Node {
    fn insert(&mut self, path: &[String], field: usize) {
        match path.split_first() {
            None => self.ends.push(field),
            Some((key, rest)) => {
                let at = match self.children.iter().position(|(k, _)| k == key) {
                    Some(at) => at,
                    None => {
                        self.children.push((key.clone(), Node::default()));
                        self.children.len() - 1
                    }
                };
                self.children[at].1.insert(rest, field);
            }
        }
    }

    fn every_end(&self, f: &mut impl FnMut(usize)) {
        self.ends.iter().for_each(|&e| f(e));
        self.children.iter().for_each(|(_, c)| c.every_end(f));
    }
}

#[derive(Debug)]
pub struct FastPlan {
    fields: Vec<Field>,
    root: Node,
}

/// Why the plan cannot answer a record (the caller then asks jaq).
struct Unanswerable;

impl From<jiter::JiterError> for Unanswerable {
    fn from(_: jiter::JiterError) -> Self {
        Unanswerable
    }
}

impl FastPlan {
    /// The plan for `query`, if it has the shape the plan handles. The query already compiled
    /// with jaq, so this parser only has to recognise the shape, not report errors.
    pub fn parse(query: &str) -> Option<Self> {
        let mut p = QueryParser { rest: query };
        p.skip_ws();
        p.eat('{')?;
        let mut fields: Vec<Field> = Vec::new();
        let mut root = Node::default();
        p.skip_ws();
        if !p.eat_if('}') {
            loop {
                p.skip_ws();
                let name = p.key()?;
                p.skip_ws();
                let (path, slice) = if p.eat_if(':') {
                    p.skip_ws();
                    p.path()?
                } else {
                    (vec![name.clone()], None) // `{a}` is `{a: .a}`
                };
                if path.is_empty() || fields.iter().any(|f| f.name == name) {
                    return None;
                }
                root.insert(&path, fields.len());
                fields.push(Field { name, slice });
                p.skip_ws();
                if p.eat_if('}') {
                    break;
                }
                p.eat(',')?;
            }
        }
        p.skip_ws();
        p.rest.is_empty().then_some(Self { fields, root })
    }

    /// The query's fields for this record, or `None` when jaq must answer.
    pub fn run<'a>(&self, data: &'a [u8]) -> Option<Vec<(&str, FastValue<'a>)>> {
        let mut values: Vec<FastValue<'a>> = vec![FastValue::Null; self.fields.len()];
        let mut j = Jiter::new(data);
        if j.peek().ok()? != Peek::Object {
            return None;
        }
        walk_object(&mut j, data, &self.root, &mut values).ok()?;
        j.finish().ok()?;
        let mut out = Vec::with_capacity(self.fields.len());
        for (field, value) in self.fields.iter().zip(values) {
            let value = match (field.slice, value) {
                (None, v) => v,
                (Some(s), FastValue::Str(text)) => FastValue::Str(slice_chars(text, s)),
                (Some(_), _) => return None, // jaq errors on slicing anything else: let it say so
            };
            out.push((field.name.as_str(), value));
        }
        Some(out)
    }
}

/// Reads the object `j` is at, filling the values of the fields under `node`.
fn walk_object<'a>(
    j: &mut Jiter<'a>,
    data: &'a [u8],
    node: &Node,
    values: &mut [FastValue<'a>],
) -> Result<(), Unanswerable> {
    let find = |k: &str| node.children.iter().position(|(name, _)| name == k);
    let mut next = j.known_object()?.map(find);
    while let Some(found) = next {
        match found.map(|at| &node.children[at].1) {
            Some(child) => {
                // A repeated key replaces the earlier value entirely, as in jq.
                child.every_end(&mut |e| values[e] = FastValue::Null);
                let peek = j.peek()?;
                if peek == Peek::Object {
                    if !child.ends.is_empty() {
                        return Err(Unanswerable); // an object as a field's value: jaq prints it
                    }
                    walk_object(j, data, child, values)?;
                } else if peek == Peek::Null {
                    j.known_null()?; // every path through null is null
                } else if !child.children.is_empty() {
                    return Err(Unanswerable); // indexing a non-object is a jq error
                } else {
                    let value = scalar(j, data, peek)?;
                    child.ends.iter().for_each(|&e| values[e] = value.clone());
                }
            }
            None => {
                let peek = j.peek()?;
                j.known_skip(peek)?
            }
        }
        next = j.next_key()?.map(find);
    }
    Ok(())
}

fn scalar<'a>(j: &mut Jiter<'a>, data: &'a [u8], peek: Peek) -> Result<FastValue<'a>, Unanswerable> {
    Ok(match peek {
        Peek::True | Peek::False => FastValue::Bool(j.known_bool(peek)?),
        Peek::String => {
            let start = j.current_index();
            let owned_len = j.known_str()?.len();
            let end = j.current_index();
            // Without escapes the decoded string is the raw text between the quotes: borrow it.
            let raw = data.get(start + 1..end.saturating_sub(1)).ok_or(Unanswerable)?;
            if raw.len() == owned_len && !raw.contains(&b'\\') {
                FastValue::Str(Cow::Borrowed(std::str::from_utf8(raw).map_err(|_| Unanswerable)?))
            } else {
                decode_escaped(data, start)?
            }
        }
        _ => {
            let len = j.known_number_bytes(peek)?.len();
            let start = j.current_index() - len;
            let text = data.get(start..start + len).ok_or(Unanswerable)?;
            let digits = text.strip_prefix(b"-").unwrap_or(text);
            let plain = !digits.is_empty()
                && digits.len() <= 18
                && digits.iter().all(u8::is_ascii_digit)
                && (digits[0] != b'0' || text == b"0");
            if !plain {
                return Err(Unanswerable); // floats and huge integers: jaq's number printing decides
            }
            FastValue::Int(std::str::from_utf8(text).map_err(|_| Unanswerable)?)
        }
    })
}

/// Decodes the escaped string starting at `start` into an owned string.
fn decode_escaped<'a>(data: &'a [u8], start: usize) -> Result<FastValue<'a>, Unanswerable> {
    let mut j = Jiter::new(data.get(start..).ok_or(Unanswerable)?);
    let s: JiterResult<&str> = j.next_str();
    Ok(FastValue::Str(Cow::Owned(s?.to_owned())))
}

fn slice_chars(text: Cow<'_, str>, s: Slice) -> Cow<'_, str> {
    let byte_at = |chars: Option<usize>, default: usize| match chars {
        None => default,
        Some(n) => text.char_indices().nth(n).map_or(text.len(), |(i, _)| i),
    };
    let from = byte_at(s.from, 0);
    let to = byte_at(s.to, text.len()).max(from);
    match text {
        Cow::Borrowed(b) => Cow::Borrowed(&b[from..to]),
        Cow::Owned(o) => Cow::Owned(o[from..to].to_owned()),
    }
}

/// A tiny recogniser for the query shape the plan handles.
struct QueryParser<'q> {
    rest: &'q str,
}

impl QueryParser<'_> {
    fn skip_ws(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn eat_if(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(r) => {
                self.rest = r;
                true
            }
            None => false,
        }
    }

    fn eat(&mut self, c: char) -> Option<()> {
        self.eat_if(c).then_some(())
    }

    fn ident(&mut self) -> Option<String> {
        let end = self.rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(self.rest.len());
        let ident = &self.rest[..end];
        if ident.is_empty() || ident.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        self.rest = &self.rest[end..];
        Some(ident.to_string())
    }

    /// A string literal without escapes or interpolation.
    fn plain_string(&mut self) -> Option<String> {
        let body = self.rest.strip_prefix('"')?;
        let end = body.find('"')?;
        let text = &body[..end];
        if text.contains('\\') || text.chars().any(char::is_control) {
            return None;
        }
        self.rest = &body[end + 1..];
        Some(text.to_string())
    }

    fn key(&mut self) -> Option<String> {
        if self.rest.starts_with('"') {
            self.plain_string()
        } else {
            self.ident()
        }
    }

    fn number(&mut self) -> Option<usize> {
        let end = self.rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(self.rest.len());
        if end == 0 {
            return None;
        }
        let n = self.rest[..end].parse().ok()?;
        self.rest = &self.rest[end..];
        Some(n)
    }

    /// `.a.b["c"]` with an optional `[from:to]` at the end.
    fn path(&mut self) -> Option<(Vec<String>, Option<Slice>)> {
        let mut path = Vec::new();
        self.eat('.')?;
        path.push(if self.rest.starts_with('"') { self.plain_string()? } else { self.ident()? });
        loop {
            if self.eat_if('.') {
                if self.rest.starts_with('[') {
                    continue; // `.a.["b"]`
                }
                path.push(if self.rest.starts_with('"') { self.plain_string()? } else { self.ident()? });
            } else if self.rest.starts_with('[') {
                self.eat('[')?;
                self.skip_ws();
                if self.rest.starts_with('"') {
                    path.push(self.plain_string()?);
                    self.skip_ws();
                    self.eat(']')?;
                } else {
                    let from = self.number();
                    self.skip_ws();
                    self.eat(':')?;
                    self.skip_ws();
                    let to = self.number();
                    self.skip_ws();
                    self.eat(']')?;
                    // A slice ends the path: what follows is not the plan's shape.
                    return Some((path, Some(Slice { from, to })));
                }
            } else {
                return Some((path, None));
            }
        }
    }
}
