//! JSON records → typed columns in one pass, following the OpenX and Hive JSON SerDe rules
//! (spec §5), then → Arrow arrays.
//!
//! The parser is jiter (a pull parser that hands out borrowed keys and the raw text of numbers, so
//! decimals are exact and no `serde_json::Value` is built per record). Values go into our own column
//! buffers rather than Arrow builders because a record can fail halfway (a bad value in its third
//! column, or the second of two concatenated objects): every column can be truncated back to the
//! row count before the record, which Arrow's builders cannot do.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    TimestampMicrosecondType,
};
use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, ListArray, MapArray, PrimitiveArray, RecordBatch, StringArray, StructArray,
};
use arrow_buffer::{BooleanBuffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use jiter::{Jiter, Peek};

use super::hive_type::HiveType;
use super::timestamp::{self, HiveTimestampFormat};

/// Which SerDe's rules apply (spec §5).
#[derive(Clone, Debug, PartialEq)]
pub enum InputRules {
    OpenX { case_insensitive: bool, dots_to_underscores: bool, column_to_json_key: HashMap<String, String> },
    Hive { timestamp_formats: Vec<HiveTimestampFormat> },
}

impl InputRules {
    fn lenient(&self) -> bool {
        matches!(self, InputRules::OpenX { .. })
    }

    /// How JSON keys become column names: (fold case, dots to underscores). Hive column names are
    /// case-insensitive in both SerDes; OpenX lets the user turn folding off and dots on.
    pub fn key_rules(&self) -> (bool, bool) {
        match self {
            InputRules::OpenX { case_insensitive, dots_to_underscores, .. } => {
                (*case_insensitive, *dots_to_underscores)
            }
            InputRules::Hive { .. } => (true, false),
        }
    }
}

/// Why a record could not be converted; the two error codes Firehose uses (spec §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailKind {
    /// `DataFormatConversion.ParseError`: the record is not JSON objects.
    Parse,
    /// `DataFormatConversion.MalformedData`: a value does not fit its column.
    Malformed,
}

#[derive(Clone, Debug)]
pub struct ConversionFailure {
    pub kind: FailKind,
    pub message: String,
}

impl FailKind {
    pub fn code(&self) -> &'static str {
        match self {
            FailKind::Parse => "DataFormatConversion.ParseError",
            FailKind::Malformed => "DataFormatConversion.MalformedData",
        }
    }
}

/// A failure on its way up: the column path is collected while unwinding, so the happy path pays nothing.
struct Fail {
    kind: FailKind,
    message: String,
    path: Vec<String>,
}

impl Fail {
    fn malformed(message: impl Into<String>) -> Self {
        Fail { kind: FailKind::Malformed, message: message.into(), path: Vec::new() }
    }

    fn at(mut self, segment: &str) -> Self {
        self.path.push(segment.to_string());
        self
    }
}

impl From<jiter::JiterError> for Fail {
    fn from(e: jiter::JiterError) -> Self {
        Fail { kind: FailKind::Parse, message: format!("{} at byte {}", e.error_type, e.index), path: Vec::new() }
    }
}

type Res = Result<(), Fail>;

/// JSON key → column index, looked up for every key of every record: foldhash rather than the
/// default SipHash, which is built to resist flooding and costs several times more per lookup
/// (the keys are the schema's column names, not attacker-chosen table entries).
type KeyLookup = HashMap<String, usize, foldhash::fast::RandomState>;

/// Decodes records into rows of a fixed schema; [`Decoder::finish`] hands out the Arrow batch.
/// A row is read like a struct value: `root` is a struct column whose fields are the table's columns.
pub struct Decoder {
    root: Column,
    rules: InputRules,
    schema: SchemaRef,
    scratch: String,
}

impl Decoder {
    pub fn new(columns: &[(String, HiveType)], rules: InputRules) -> Self {
        let (fold, _) = rules.key_rules();
        let mut root = Column::new(&HiveType::Struct(columns.to_vec()), fold);
        if let (Data::Struct { lookup, .. }, InputRules::OpenX { column_to_json_key, .. }) = (&mut root.data, &rules) {
            // A mapped column is found by its JSON key instead of its name.
            for (i, (name, _)) in columns.iter().enumerate() {
                if let Some(json_key) = column_to_json_key.get(name) {
                    lookup.retain(|_, column| *column != i);
                    lookup.insert(if fold { json_key.to_lowercase() } else { json_key.clone() }, i);
                }
            }
        }
        let schema =
            Arc::new(Schema::new(columns.iter().map(|(n, t)| Field::new(n, t.to_arrow(), true)).collect::<Vec<_>>()));
        Self { root, rules, schema, scratch: String::new() }
    }

    pub fn rows(&self) -> usize {
        self.root.len()
    }

    /// Decodes one record: one JSON object, or several concatenated (`{..}{..}`), each a row. On a
    /// failure nothing of the record stays behind.
    pub fn push(&mut self, data: &[u8]) -> Result<(), ConversionFailure> {
        let before = self.root.len();
        match self.push_objects(data) {
            Ok(()) => Ok(()),
            Err(f) => {
                self.root.truncate(before);
                let message = match (&f.kind, f.path.is_empty()) {
                    (FailKind::Parse, _) => format!("The record is not valid JSON: {}", f.message),
                    (FailKind::Malformed, true) => format!("Data does not match the schema. {}", f.message),
                    (FailKind::Malformed, false) => {
                        let path: Vec<&str> = f.path.iter().rev().map(String::as_str).collect();
                        format!(
                            "Data does not match the schema. Column '{}': {}",
                            path.join(".").replace(".[", "["),
                            f.message
                        )
                    }
                };
                Err(ConversionFailure { kind: f.kind, message })
            }
        }
    }

    fn push_objects(&mut self, data: &[u8]) -> Res {
        let mut j = Jiter::new(data);
        let mut objects = 0;
        loop {
            let rest = &data[j.current_index()..];
            if rest.iter().all(u8::is_ascii_whitespace) {
                break;
            }
            let peek = j.peek()?;
            if peek != Peek::Object {
                return Err(Fail {
                    kind: FailKind::Parse,
                    message: "expected a JSON object (records are JSON objects, possibly concatenated)".into(),
                    path: Vec::new(),
                });
            }
            self.root.read_object(&mut j, &self.rules, &mut self.scratch, 0)?;
            objects += 1;
        }
        if objects == 0 {
            return Err(Fail { kind: FailKind::Parse, message: "the record is empty".into(), path: Vec::new() });
        }
        Ok(())
    }

    /// Hands out the rows decoded so far and starts empty.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let Data::Struct { fields, .. } = &mut self.root.data else {
            return Err(ArrowError::SchemaError("the decoder's root is not a struct".into()));
        };
        let arrays: Vec<ArrayRef> = fields.iter_mut().map(Column::finish).collect::<Result<_, _>>()?;
        self.root.valid.clear();
        RecordBatch::try_new(self.schema.clone(), arrays)
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// Finds the column for a JSON key after OpenX's key rules (case folding, dots to underscores).
/// `scratch` avoids an allocation per key when the key has to be rewritten.
fn column_index(lookup: &KeyLookup, key: &str, fold: bool, dots: bool, scratch: &mut String) -> Option<usize> {
    let needs_fold = fold
        && if key.is_ascii() {
            key.bytes().any(|b| b.is_ascii_uppercase())
        } else {
            key.chars().any(char::is_uppercase)
        };
    let needs_dots = dots && key.contains('.');
    if !needs_fold && !needs_dots {
        return lookup.get(key).copied();
    }
    scratch.clear();
    if needs_fold {
        scratch.push_str(&key.to_lowercase());
    } else {
        scratch.push_str(key);
    }
    if needs_dots {
        let replaced = scratch.replace('.', "_");
        *scratch = replaced;
    }
    lookup.get(scratch.as_str()).copied()
}

/// One column's values and validity, truncatable to any earlier row count.
struct Column {
    ty: HiveType,
    valid: Vec<bool>,
    data: Data,
}

enum Data {
    Bool(Vec<bool>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Dec(Vec<i128>),
    /// string, char, varchar and binary
    Bytes {
        offsets: Vec<i32>,
        data: Vec<u8>,
    },
    List {
        offsets: Vec<i32>,
        element: Box<Column>,
    },
    Map {
        offsets: Vec<i32>,
        keys: Box<Column>,
        values: Box<Column>,
    },
    Struct {
        fields: Vec<Column>,
        names: Vec<String>,
        lookup: KeyLookup,
    },
}

impl Column {
    fn new(ty: &HiveType, fold: bool) -> Self {
        let data = match ty {
            HiveType::Boolean => Data::Bool(Vec::new()),
            HiveType::TinyInt => Data::I8(Vec::new()),
            HiveType::SmallInt => Data::I16(Vec::new()),
            HiveType::Int | HiveType::Date => Data::I32(Vec::new()),
            HiveType::BigInt | HiveType::Timestamp => Data::I64(Vec::new()),
            HiveType::Float => Data::F32(Vec::new()),
            HiveType::Double => Data::F64(Vec::new()),
            HiveType::Decimal { .. } => Data::Dec(Vec::new()),
            HiveType::String | HiveType::Char(_) | HiveType::Varchar(_) | HiveType::Binary => {
                Data::Bytes { offsets: vec![0], data: Vec::new() }
            }
            HiveType::Array(e) => Data::List { offsets: vec![0], element: Box::new(Column::new(e, fold)) },
            HiveType::Map(k, v) => Data::Map {
                offsets: vec![0],
                keys: Box::new(Column::new(k, fold)),
                values: Box::new(Column::new(v, fold)),
            },
            HiveType::Struct(fields) => Data::Struct {
                fields: fields.iter().map(|(_, t)| Column::new(t, fold)).collect(),
                names: fields.iter().map(|(n, _)| n.clone()).collect(),
                lookup: fields
                    .iter()
                    .enumerate()
                    .map(|(i, (n, _))| (if fold { n.to_lowercase() } else { n.clone() }, i))
                    .collect(),
            },
        };
        Column { ty: ty.clone(), valid: Vec::new(), data }
    }

    fn len(&self) -> usize {
        self.valid.len()
    }

    /// Back to `n` rows. Children are cut by the parent's offsets even when the parent itself has
    /// only `n` rows: a row that failed halfway has pushed children but not yet itself.
    fn truncate(&mut self, n: usize) {
        self.valid.truncate(n);
        match &mut self.data {
            Data::Bool(v) => v.truncate(n),
            Data::I8(v) => v.truncate(n),
            Data::I16(v) => v.truncate(n),
            Data::I32(v) => v.truncate(n),
            Data::I64(v) => v.truncate(n),
            Data::F32(v) => v.truncate(n),
            Data::F64(v) => v.truncate(n),
            Data::Dec(v) => v.truncate(n),
            Data::Bytes { offsets, data } => {
                if let Some(&end) = offsets.get(n) {
                    data.truncate(end as usize);
                    offsets.truncate(n + 1);
                }
            }
            Data::List { offsets, element } => {
                if let Some(&end) = offsets.get(n) {
                    element.truncate(end as usize);
                    offsets.truncate(n + 1);
                }
            }
            Data::Map { offsets, keys, values } => {
                if let Some(&end) = offsets.get(n) {
                    keys.truncate(end as usize);
                    values.truncate(end as usize);
                    offsets.truncate(n + 1);
                }
            }
            Data::Struct { fields, .. } => fields.iter_mut().for_each(|f| f.truncate(n)),
        }
    }

    fn push_null(&mut self) {
        self.valid.push(false);
        match &mut self.data {
            Data::Bool(v) => v.push(false),
            Data::I8(v) => v.push(0),
            Data::I16(v) => v.push(0),
            Data::I32(v) => v.push(0),
            Data::I64(v) => v.push(0),
            Data::F32(v) => v.push(0.0),
            Data::F64(v) => v.push(0.0),
            Data::Dec(v) => v.push(0),
            Data::Bytes { offsets, .. } | Data::List { offsets, .. } | Data::Map { offsets, .. } => {
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last);
            }
            Data::Struct { fields, .. } => fields.iter_mut().for_each(Column::push_null),
        }
    }

    /// Reads the value at `peek` into this column (one new row).
    fn read(&mut self, j: &mut Jiter, peek: Peek, rules: &InputRules, scratch: &mut String, depth: usize) -> Res {
        match peek {
            Peek::Null => {
                j.known_null()?;
                self.push_null();
                Ok(())
            }
            Peek::Object => self.read_object(j, rules, scratch, depth),
            Peek::Array => self.read_array(j, rules, scratch, depth),
            Peek::String => {
                let s = j.known_str()?;
                self.push_text(s, rules, true)
            }
            Peek::True | Peek::False => {
                let b = j.known_bool(peek)?;
                match &mut self.data {
                    Data::Bool(v) => {
                        v.push(b);
                        self.valid.push(true);
                        Ok(())
                    }
                    Data::Bytes { .. } if rules.lenient() || matches!(self.ty, HiveType::String) => {
                        self.push_text(if b { "true" } else { "false" }, rules, false)
                    }
                    _ => Err(mismatch(&self.ty, "a boolean")),
                }
            }
            p if p.is_num() => {
                let text = j.known_number_bytes(peek)?;
                // JSON numbers are ASCII; jiter validated the grammar.
                let text = std::str::from_utf8(text).map_err(|_| Fail::malformed("invalid number"))?;
                self.push_number(text, rules)
            }
            _ => {
                // Let jiter produce its syntax error for the unexpected byte.
                j.known_skip(peek)?;
                Err(Fail { kind: FailKind::Parse, message: "expected a JSON value".into(), path: Vec::new() })
            }
        }
    }

    fn read_object(&mut self, j: &mut Jiter, rules: &InputRules, scratch: &mut String, depth: usize) -> Res {
        let row = self.len();
        let (fold, dots) = rules.key_rules();
        match &mut self.data {
            Data::Struct { fields, names, lookup } => {
                let mut next = j.known_object()?.map(|k| column_index(lookup, k, fold, dots, scratch));
                while let Some(idx) = next {
                    let peek = j.peek()?;
                    match idx {
                        Some(i) => {
                            let f = &mut fields[i];
                            if f.len() > row {
                                f.truncate(row); // a repeated key: the last value wins, as in Jackson-based SerDes
                            }
                            f.read(j, peek, rules, scratch, depth + 1).map_err(|e| e.at(&names[i]))?;
                        }
                        None => j.known_skip(peek)?,
                    }
                    next = j.next_key()?.map(|k| column_index(lookup, k, fold, dots, scratch));
                }
                for f in fields.iter_mut() {
                    if f.len() == row {
                        f.push_null();
                    }
                }
                self.valid.push(true);
                Ok(())
            }
            Data::Map { offsets, keys, values } => {
                let push_key = |keys: &mut Column, k: &str| {
                    keys.push_text(k, rules, false).map_err(|e| e.at(&format!("[{k}]")))?;
                    Ok::<_, Fail>(keys.len() - 1)
                };
                let mut next = j.known_object()?.map(|k| push_key(keys, k));
                while let Some(pushed) = next {
                    let entry = pushed?;
                    let peek = j.peek()?;
                    values.read(j, peek, rules, scratch, depth + 1).map_err(|e| e.at(&format!("[{entry}]")))?;
                    next = j.next_key()?.map(|k| push_key(keys, k));
                }
                offsets.push(offset(keys.len())?);
                self.valid.push(true);
                Ok(())
            }
            Data::Bytes { .. } if rules.lenient() => self.push_raw_json(j, Peek::Object),
            _ => Err(mismatch(&self.ty, "an object")),
        }
    }

    fn read_array(&mut self, j: &mut Jiter, rules: &InputRules, scratch: &mut String, depth: usize) -> Res {
        match &mut self.data {
            Data::List { offsets, element } => {
                let mut next = j.known_array()?;
                let mut i = 0usize;
                while let Some(peek) = next {
                    element.read(j, peek, rules, scratch, depth + 1).map_err(|e| e.at(&format!("[{i}]")))?;
                    i += 1;
                    next = j.array_step()?;
                }
                offsets.push(offset(element.len())?);
                self.valid.push(true);
                Ok(())
            }
            Data::Bytes { .. } if rules.lenient() => self.push_raw_json(j, Peek::Array),
            _ => Err(mismatch(&self.ty, "an array")),
        }
    }

    /// OpenX turns a nested object or array in a string column into its JSON text.
    fn push_raw_json(&mut self, j: &mut Jiter, peek: Peek) -> Res {
        let start = j.current_index();
        j.known_skip(peek)?;
        let raw = j.slice_to_current(start);
        let text = std::str::from_utf8(raw).map_err(|_| Fail::malformed("nested value is not UTF-8"))?;
        self.push_str_value(text)
    }

    /// A JSON number. Integers parse exactly, decimals from their text (no float rounding).
    fn push_number(&mut self, text: &str, rules: &InputRules) -> Res {
        let ty = &self.ty;
        let out_of_range = || Fail::malformed(format!("{text} is out of range for {ty}"));
        match (&mut self.data, ty) {
            (Data::I8(v), _) => v.push(integer(text).and_then(|n| i8::try_from(n).ok()).ok_or_else(out_of_range)?),
            (Data::I16(v), _) => v.push(integer(text).and_then(|n| i16::try_from(n).ok()).ok_or_else(out_of_range)?),
            (Data::I32(v), HiveType::Date) => {
                // OpenX: a number in a date column is days since the epoch; Hive wants the text form.
                if !rules.lenient() {
                    return Err(mismatch(ty, "a number"));
                }
                v.push(integer(text).and_then(|n| i32::try_from(n).ok()).ok_or_else(out_of_range)?);
            }
            (Data::I32(v), _) => v.push(integer(text).and_then(|n| i32::try_from(n).ok()).ok_or_else(out_of_range)?),
            (Data::I64(v), HiveType::Timestamp) => {
                let micros = match rules {
                    InputRules::OpenX { .. } => timestamp::from_epoch_number(text),
                    InputRules::Hive { timestamp_formats }
                        if timestamp_formats.iter().any(|f| matches!(f, HiveTimestampFormat::Millis)) =>
                    {
                        text.parse::<i64>().ok().and_then(|n| n.checked_mul(1000))
                    }
                    InputRules::Hive { .. } => None,
                };
                v.push(micros.ok_or_else(|| Fail::malformed(format!("{text} is not a timestamp")))?);
            }
            (Data::I64(v), _) => v.push(integer(text).ok_or_else(out_of_range)?),
            (Data::F32(v), _) => v.push(text.parse::<f32>().map_err(|_| out_of_range())?),
            (Data::F64(v), _) => v.push(text.parse::<f64>().map_err(|_| out_of_range())?),
            (Data::Dec(v), HiveType::Decimal { precision, scale }) => {
                v.push(parse_decimal(text, *precision, *scale).map_err(Fail::malformed)?)
            }
            (Data::Bytes { .. }, HiveType::String | HiveType::Char(_) | HiveType::Varchar(_)) => {
                return self.push_str_value(text);
            }
            _ => return Err(mismatch(ty, "a number")),
        }
        self.valid.push(true);
        Ok(())
    }

    /// A JSON string (or an object key, for map keys). `quoted` is false for map keys, which are
    /// strings by JSON's grammar and so are always converted.
    fn push_text(&mut self, s: &str, rules: &InputRules, quoted: bool) -> Res {
        let strict = quoted && !rules.lenient();
        match &self.ty {
            HiveType::String | HiveType::Char(_) | HiveType::Varchar(_) => {
                return self.push_str_value(s);
            }
            HiveType::Binary => {
                if let Data::Bytes { offsets, data } = &mut self.data {
                    data.extend_from_slice(s.as_bytes());
                    offsets.push(offset(data.len())?);
                }
            }
            HiveType::Timestamp => {
                let micros = match rules {
                    InputRules::OpenX { .. } => timestamp::parse_datetime(s, true).or_else(|| {
                        let t = s.trim();
                        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'-' || b == b'.'))
                            .then(|| timestamp::from_epoch_number(t))
                            .flatten()
                    }),
                    InputRules::Hive { timestamp_formats } if timestamp_formats.is_empty() => {
                        timestamp::parse_datetime(s, false)
                    }
                    InputRules::Hive { timestamp_formats } => timestamp_formats.iter().find_map(|f| f.parse_value(s)),
                };
                let micros = micros.ok_or_else(|| Fail::malformed(format!("'{s}' is not a timestamp")))?;
                if let Data::I64(v) = &mut self.data {
                    v.push(micros);
                }
            }
            HiveType::Date => {
                let days = timestamp::parse_date(s).ok_or_else(|| Fail::malformed(format!("'{s}' is not a date")))?;
                if let Data::I32(v) = &mut self.data {
                    v.push(days);
                }
            }
            HiveType::Boolean => {
                if strict {
                    return Err(mismatch(&self.ty, "a string"));
                }
                let b = match s.trim() {
                    t if t.eq_ignore_ascii_case("true") => true,
                    t if t.eq_ignore_ascii_case("false") => false,
                    _ => return Err(Fail::malformed(format!("'{s}' is not a boolean"))),
                };
                if let Data::Bool(v) = &mut self.data {
                    v.push(b);
                }
            }
            HiveType::TinyInt
            | HiveType::SmallInt
            | HiveType::Int
            | HiveType::BigInt
            | HiveType::Float
            | HiveType::Double
            | HiveType::Decimal { .. } => {
                if strict {
                    return Err(Fail::malformed(
                        "Current token (VALUE_STRING) not numeric, can not use numeric value accessors",
                    ));
                }
                let t = s.trim();
                if t.is_empty() {
                    return Err(Fail::malformed(format!("'' is not a {} value", self.ty)));
                }
                return self.push_number(t, rules);
            }
            HiveType::Array(_) | HiveType::Map(..) | HiveType::Struct(_) => return Err(mismatch(&self.ty, "a string")),
        }
        self.valid.push(true);
        Ok(())
    }

    /// Appends a string value, cut to a varchar's or char's length (and a char padded to it), as Hive does.
    fn push_str_value(&mut self, s: &str) -> Res {
        let Data::Bytes { offsets, data } = &mut self.data else { return Err(mismatch(&self.ty, "a string")) };
        match self.ty {
            HiveType::Varchar(n) | HiveType::Char(n) => {
                let n = n as usize;
                let cut = s.char_indices().nth(n).map_or(s.len(), |(i, _)| i);
                data.extend_from_slice(&s.as_bytes()[..cut]);
                if let HiveType::Char(_) = self.ty {
                    let chars = s[..cut].chars().count();
                    data.extend(std::iter::repeat_n(b' ', n.saturating_sub(chars)));
                }
            }
            _ => data.extend_from_slice(s.as_bytes()),
        }
        // Offsets are i32 (Arrow Utf8). Buffers are at most 128 MiB, so this cannot fail in practice;
        // if it did, the record fails rather than corrupting the column.
        let end = data.len();
        let Ok(end32) = i32::try_from(end) else {
            let start = offsets.last().copied().unwrap_or(0) as usize;
            data.truncate(start);
            return Err(Fail::malformed("the batch holds more than 2 GiB of text in one column"));
        };
        offsets.push(end32);
        self.valid.push(true);
        Ok(())
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let nulls = take_nulls(&mut self.valid);
        let array: ArrayRef = match &mut self.data {
            Data::Bool(v) => Arc::new(BooleanArray::new(BooleanBuffer::from(std::mem::take(v)), nulls)),
            Data::I8(v) => Arc::new(PrimitiveArray::<Int8Type>::new(ScalarBuffer::from(std::mem::take(v)), nulls)),
            Data::I16(v) => Arc::new(PrimitiveArray::<Int16Type>::new(ScalarBuffer::from(std::mem::take(v)), nulls)),
            Data::I32(v) if matches!(self.ty, HiveType::Date) => {
                Arc::new(PrimitiveArray::<Date32Type>::new(ScalarBuffer::from(std::mem::take(v)), nulls))
            }
            Data::I32(v) => Arc::new(PrimitiveArray::<Int32Type>::new(ScalarBuffer::from(std::mem::take(v)), nulls)),
            Data::I64(v) if matches!(self.ty, HiveType::Timestamp) => {
                Arc::new(PrimitiveArray::<TimestampMicrosecondType>::new(ScalarBuffer::from(std::mem::take(v)), nulls))
            }
            Data::I64(v) => Arc::new(PrimitiveArray::<Int64Type>::new(ScalarBuffer::from(std::mem::take(v)), nulls)),
            Data::F32(v) => Arc::new(PrimitiveArray::<Float32Type>::new(ScalarBuffer::from(std::mem::take(v)), nulls)),
            Data::F64(v) => Arc::new(PrimitiveArray::<Float64Type>::new(ScalarBuffer::from(std::mem::take(v)), nulls)),
            Data::Dec(v) => {
                let HiveType::Decimal { precision, scale } = self.ty else {
                    return Err(ArrowError::SchemaError("decimal column without a decimal type".into()));
                };
                Arc::new(
                    PrimitiveArray::<Decimal128Type>::new(ScalarBuffer::from(std::mem::take(v)), nulls)
                        .with_precision_and_scale(precision, scale as i8)?,
                )
            }
            Data::Bytes { offsets, data } => {
                let offs = OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(offsets, vec![0])));
                let values = std::mem::take(data).into();
                if matches!(self.ty, HiveType::Binary) {
                    Arc::new(BinaryArray::try_new(offs, values, nulls)?)
                } else {
                    Arc::new(StringArray::try_new(offs, values, nulls)?)
                }
            }
            Data::List { offsets, element } => {
                let offs = OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(offsets, vec![0])));
                let DataType::List(field) = self.ty.to_arrow() else {
                    return Err(ArrowError::SchemaError("list column without a list type".into()));
                };
                Arc::new(ListArray::try_new(field, offs, element.finish()?, nulls)?)
            }
            Data::Map { offsets, keys, values } => {
                let offs = OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(offsets, vec![0])));
                let DataType::Map(entries_field, _) = self.ty.to_arrow() else {
                    return Err(ArrowError::SchemaError("map column without a map type".into()));
                };
                let DataType::Struct(entry_fields) = entries_field.data_type().clone() else {
                    return Err(ArrowError::SchemaError("map entries are not a struct".into()));
                };
                let entries = StructArray::try_new(entry_fields, vec![keys.finish()?, values.finish()?], None)?;
                Arc::new(MapArray::try_new(entries_field, offs, entries, nulls, false)?)
            }
            Data::Struct { fields, .. } => {
                let DataType::Struct(arrow_fields) = self.ty.to_arrow() else {
                    return Err(ArrowError::SchemaError("struct column without a struct type".into()));
                };
                let children = fields.iter_mut().map(Column::finish).collect::<Result<Vec<_>, _>>()?;
                Arc::new(StructArray::try_new(arrow_fields, children, nulls)?)
            }
        };
        Ok(array)
    }
}

/// The message for a value of the wrong JSON kind; the container wording is Jackson's, as Firehose reports it.
fn mismatch(ty: &HiveType, found: &str) -> Fail {
    let expected = match ty {
        HiveType::Array(_) => "Start of Array expected".to_string(),
        HiveType::Struct(_) | HiveType::Map(..) => "Start of Object expected".to_string(),
        _ => format!("a {ty} value was expected"),
    };
    Fail::malformed(format!("{expected}, found {found}"))
}

fn take_nulls(valid: &mut Vec<bool>) -> Option<NullBuffer> {
    let v = std::mem::take(valid);
    if v.iter().all(|b| *b) {
        None
    } else {
        Some(NullBuffer::new(BooleanBuffer::from(v)))
    }
}

fn offset(len: usize) -> Result<i32, Fail> {
    i32::try_from(len).map_err(|_| Fail::malformed("a buffer holds more than 2^31 values"))
}

/// An integer from a JSON number's text: exact for integers, and a float form only when it is
/// integral (`1e3`, `2.0`), since silently truncating `2.5` would change the data.
fn integer(text: &str) -> Option<i64> {
    if let Ok(n) = text.parse::<i64>() {
        return Some(n);
    }
    let f: f64 = text.parse().ok()?;
    (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
}

/// A decimal's unscaled value at `scale`, from a number's exact text. Extra fraction digits are
/// rounded half up (as Hive's HiveDecimal does); too many integer digits are an error, where Hive
/// would quietly store null.
pub fn parse_decimal(text: &str, precision: u8, scale: u8) -> Result<i128, String> {
    let bad = || format!("'{text}' is not a number");
    let t = text.trim();
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i32>().map_err(|_| bad())?),
        None => (t, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.bytes().chain(frac_part.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    // The digits of int_part then frac_part, read in place (this runs once per decimal value).
    let total = int_part.len() + frac_part.len();
    let digit = |i: usize| {
        let b = if i < int_part.len() { int_part.as_bytes()[i] } else { frac_part.as_bytes()[i - int_part.len()] };
        i128::from(b - b'0')
    };
    // value = digits × 10^(exponent − frac_len); unscaled = value × 10^scale.
    let shift = i64::from(exponent) - frac_part.len() as i64 + i64::from(scale);
    let out_of_range = || format!("{text} is out of range for decimal({precision},{scale})");
    let (kept, round_up) = if shift >= 0 {
        (total, false)
    } else {
        let drop = (-shift) as usize;
        if drop > total {
            (0, false)
        } else {
            (total - drop, digit(total - drop) >= 5)
        }
    };
    let first = (0..kept).find(|&i| digit(i) != 0).unwrap_or(kept);
    let significant = kept - first;
    let zeros = if shift > 0 { shift as usize } else { 0 };
    if significant > 0 && significant + zeros > usize::from(precision) {
        return Err(out_of_range());
    }
    let mut v: i128 = 0;
    for i in first..kept {
        v = v * 10 + digit(i);
    }
    if significant > 0 {
        for _ in 0..zeros {
            v *= 10;
        }
    }
    if round_up {
        v += 1;
    }
    if v >= 10i128.pow(u32::from(precision)) {
        return Err(out_of_range());
    }
    Ok(if negative { -v } else { v })
}

#[cfg(test)]
mod tests;
