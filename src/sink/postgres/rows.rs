//! Records to rows of PostgreSQL's text COPY format, following the table's own columns.
//!
//! Text rather than binary COPY: the server parses each value into the column's own type
//! (numeric, timestamptz, inet, arrays, enums, domains...), so every type a table can have
//! loads without a client-side encoder per type, and a value that does not fit is reported by
//! the database with its own message and the failing line, which is how bad rows are found
//! (`super::load`). BENCHMARKS.md ("PostgreSQL destination") has the measurement behind the choice.

use bytes::{BufMut, Bytes, BytesMut};
use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::record::Record;

/// A column of the target table, as the catalog describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// `format_type()`: `integer`, `timestamp with time zone`, `jsonb`, ...
    pub type_name: String,
    /// NOT NULL without a default: a record must give it a value.
    pub required: bool,
}

impl Column {
    fn is_json(&self) -> bool {
        matches!(self.type_name.as_str(), "json" | "jsonb")
    }
}

/// How a record becomes a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Each column takes the record's field of the same name (missing or null: NULL).
    Columns(Vec<Column>),
    /// The whole record into one json/jsonb column.
    Document(Column),
}

impl Layout {
    /// The column list of the COPY statement.
    pub fn column_names(&self) -> Vec<&str> {
        match self {
            Layout::Columns(columns) => columns.iter().map(|c| c.name.as_str()).collect(),
            Layout::Document(column) => vec![column.name.as_str()],
        }
    }

    /// One line of text COPY input (with its newline), or why the record cannot be a row.
    ///
    /// The record is parsed once into borrowed slices (`RawValue`): a field is copied only into
    /// the line, never into an intermediate tree; a `serde_json::Value` per record (an allocation
    /// per field) cost more than the rest of the row (BENCHMARKS.md, "PostgreSQL destination").
    pub fn row(&self, record: &Record) -> Result<Bytes, String> {
        let text = std::str::from_utf8(&record.data).map_err(|_| "the record is not UTF-8 text".to_string())?;
        let text = text.trim();
        let mut line = BytesMut::with_capacity(text.len() + 16);
        match self {
            Layout::Document(_) => {
                let raw: &RawValue = serde_json::from_str(text).map_err(not_json)?;
                if !raw.get().starts_with('{') {
                    return Err("the record is not a JSON object".into());
                }
                escape(&mut line, raw.get());
            }
            Layout::Columns(columns) => {
                let fields = fields(text)?;
                for (i, column) in columns.iter().enumerate() {
                    if i > 0 {
                        line.put_u8(b'\t');
                    }
                    // The last of repeated keys wins, as in serde_json's own maps.
                    let value = fields.iter().rev().find(|(k, _)| *k == column.name.as_str()).map(|(_, v)| *v);
                    field(&mut line, value, column)?;
                }
            }
        }
        line.put_u8(b'\n');
        Ok(line.freeze())
    }
}

fn not_json(e: serde_json::Error) -> String {
    format!("the record is not a JSON document: {e}")
}

/// A record's top-level fields, borrowed from its text (keys with escapes, rare, are unescaped).
fn fields(text: &str) -> Result<Vec<(Cow<'_, str>, &RawValue)>, String> {
    if !text.starts_with('{') {
        // Text that is not JSON at all still gets the parser's message.
        serde_json::from_str::<&RawValue>(text).map_err(not_json)?;
        return Err("the record is not a JSON object".into());
    }
    serde_json::from_str::<Fields<'_>>(text).map(|f| f.0).map_err(not_json)
}

struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Fields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<Fields<'de>, M::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    out.push((key.0, map.next_value::<&'de RawValue>()?));
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// An object key, borrowed from the text unless it holds escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(Visit)
    }
}

fn field(line: &mut BytesMut, value: Option<&RawValue>, column: &Column) -> Result<(), String> {
    match value.map(RawValue::get).filter(|v| *v != "null") {
        None if column.required => {
            Err(format!("the record has no value for column \"{}\", which is NOT NULL without a default", column.name))
        }
        None => {
            line.put_slice(b"\\N");
            Ok(())
        }
        // A string's text, unescaped, for every column but json/jsonb (which take it as JSON).
        Some(raw) if raw.starts_with('"') && !column.is_json() => {
            match serde_json::from_str::<&str>(raw) {
                Ok(s) => escape(line, s),
                // It holds escapes: unescape into a String.
                Err(_) => escape(line, &serde_json::from_str::<String>(raw).map_err(not_json)?),
            }
            Ok(())
        }
        // Numbers and booleans as JSON writes them; objects and arrays (and anything for a json
        // column) as their JSON text.
        Some(raw) => {
            escape(line, raw);
            Ok(())
        }
    }
}

/// Text COPY escaping: backslash, and the delimiter and line characters.
fn escape(line: &mut BytesMut, s: &str) {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let replacement: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        line.put_slice(&s.as_bytes()[start..i]);
        line.put_slice(replacement);
        start = i + 1;
    }
    line.put_slice(&s.as_bytes()[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, type_name: &str, required: bool) -> Column {
        Column { name: name.into(), type_name: type_name.into(), required }
    }

    fn row(layout: &Layout, json: &str) -> Result<String, String> {
        layout.row(&Record::new(0, 0, Bytes::from(json.to_string()))).map(|b| String::from_utf8(b.to_vec()).unwrap())
    }

    #[test]
    fn columns_take_fields_by_name_with_text_copy_escaping() {
        let layout = Layout::Columns(vec![
            col("id", "bigint", true),
            col("note", "text", false),
            col("ok", "boolean", false),
            col("doc", "jsonb", false),
            col("label", "jsonb", false),
        ]);
        let out =
            row(&layout, r#"{"id": 7, "note": "a\tb\\c\nd", "ok": true, "doc": {"k": [1]}, "label": "x", "extra": 1}"#);
        // Objects keep the text the record gave them (jsonb normalizes it).
        assert_eq!(out.unwrap(), "7\ta\\tb\\\\c\\nd\ttrue\t{\"k\": [1]}\t\"x\"\n");
        assert_eq!(row(&layout, r#"{"id": 1}"#).unwrap(), "1\t\\N\t\\N\t\\N\t\\N\n");
    }

    #[test]
    fn records_that_cannot_be_rows_say_why() {
        let layout = Layout::Columns(vec![col("id", "bigint", true)]);
        assert!(row(&layout, r#"{"other": 1}"#).unwrap_err().contains("no value for column \"id\""));
        assert!(row(&layout, r#"{"id": null}"#).unwrap_err().contains("NOT NULL"));
        assert!(row(&layout, "[1, 2]").unwrap_err().contains("not a JSON object"));
        assert!(row(&layout, "{\"id\":").unwrap_err().contains("not a JSON document"));
    }

    #[test]
    fn a_document_column_takes_the_whole_record() {
        let layout = Layout::Document(col("doc", "jsonb", true));
        assert_eq!(row(&layout, "{\"a\": \"t\\tab\"}\n").unwrap(), "{\"a\": \"t\\\\tab\"}\n");
    }
}
