//! JSON records as Iceberg rows: an Arrow `RecordBatch` in the table's schema (arrow-json decodes
//! the records against the schema iceberg-rust derives, field ids included), and the Iceberg types
//! new tables and new columns get from the records themselves.
//!
//! As in Firehose, only top-level keys map to columns (by exact name); nested objects are structs,
//! arrays lists; keys the table has no column for are ignored unless schema evolution adds them;
//! timestamps are RFC 3339 strings or numbers in the column's unit (microseconds). A record that is
//! not one JSON object, or whose values do not fit their columns, is refused alone with the
//! decoder's reason; the rest of the batch is written.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array_58::RecordBatch;
use arrow_json_58::reader::{Decoder, ReaderBuilder};
use arrow_schema_58::SchemaRef;
use iceberg::spec::{ListType, NestedField, PrimitiveType, Schema, StructType, Type};
use serde_json::value::RawValue;
use serde_json::Value;

/// How a table's rows are decoded: its Arrow schema, derived once per schema version.
pub struct RowDecoder {
    arrow: SchemaRef,
}

/// What became of a table's records: the rows to write (their record indexes in order) and the
/// records refused with the reason.
pub struct Decoded {
    pub batch: Option<RecordBatch>,
    pub written: Vec<usize>,
    pub refused: Vec<(usize, String)>,
}

impl RowDecoder {
    pub fn new(schema: &Schema) -> Result<Self, String> {
        let arrow = iceberg::arrow::schema_to_arrow_schema(schema)
            .map_err(|e| format!("the table's schema has no Arrow form: {e}"))?;
        Ok(Self { arrow: Arc::new(arrow) })
    }

    fn decoder(&self, rows: usize) -> Result<Decoder, String> {
        ReaderBuilder::new(self.arrow.clone())
            .with_batch_size(rows.max(1))
            .build_decoder()
            .map_err(|e| format!("cannot decode into the table's schema: {e}"))
    }

    /// Decodes `records` (index, bytes). The common case is one pass over all of them; when that
    /// fails, each record is decoded alone to find the ones at fault, and the rest once more.
    pub fn decode<'a>(&self, records: &[(usize, &'a [u8])]) -> Result<Decoded, String> {
        let mut refused = Vec::new();
        let mut objects: Vec<(usize, &'a [u8])> = Vec::with_capacity(records.len());
        for &(index, data) in records {
            match one_object(data) {
                Ok(()) => objects.push((index, data)),
                Err(reason) => refused.push((index, reason)),
            }
        }
        if let Ok(batch) = self.decode_all(&objects) {
            let written = objects.iter().map(|(i, _)| *i).collect();
            return Ok(Decoded { batch, written, refused });
        }
        let mut fitting = Vec::with_capacity(objects.len());
        for &(index, data) in &objects {
            match self.decode_all(&[(index, data)]) {
                Ok(_) => fitting.push((index, data)),
                Err(reason) => refused.push((index, reason)),
            }
        }
        refused.sort_by_key(|(i, _)| *i);
        let batch = self.decode_all(&fitting)?;
        Ok(Decoded { batch, written: fitting.iter().map(|(i, _)| *i).collect(), refused })
    }

    fn decode_all(&self, records: &[(usize, &[u8])]) -> Result<Option<RecordBatch>, String> {
        if records.is_empty() {
            return Ok(None);
        }
        let mut decoder = self.decoder(records.len())?;
        for (_, data) in records {
            let mut rest: &[u8] = data;
            while !rest.is_empty() {
                let used = decoder.decode(rest).map_err(|e| e.to_string())?;
                if used == 0 {
                    return Err("the record does not fit the table's schema".into());
                }
                rest = &rest[used..];
            }
        }
        decoder.flush().map_err(|e| e.to_string())
    }
}

/// Whether `data` is one JSON object (and nothing after it), the only shape a row can have.
fn one_object(data: &[u8]) -> Result<(), String> {
    let start = data.iter().position(|b| !b.is_ascii_whitespace());
    if start.map(|s| data[s]) != Some(b'{') {
        return Err("the record is not a JSON object (an Iceberg row is one object per record)".into());
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(data)
        .map(|_| ())
        .map_err(|e| format!("the record is not valid JSON: {e}"))
}

/// The top-level keys of a record and their values, for schema evolution and table creation.
pub fn top_level(data: &[u8]) -> Option<BTreeMap<String, &RawValue>> {
    serde_json::from_slice(data).ok()
}

/// The Iceberg type a JSON value suggests; `None` for `null`, `[]` and `{}` (nothing to go by).
/// Ids inside structs and lists are placeholders: the catalog (creation) or the schema update
/// (evolution) assigns fresh ones.
pub fn infer(value: &Value) -> Option<Type> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(_) => Type::Primitive(PrimitiveType::Boolean),
        Value::Number(n) if n.is_i64() => Type::Primitive(PrimitiveType::Long),
        Value::Number(_) => Type::Primitive(PrimitiveType::Double),
        Value::String(_) => Type::Primitive(PrimitiveType::String),
        Value::Array(items) => {
            let element = items.iter().filter_map(infer).reduce(widen)?;
            Type::List(ListType::new(Arc::new(NestedField::list_element(0, element, false))))
        }
        Value::Object(map) => {
            let fields: Vec<_> =
                map.iter().filter_map(|(k, v)| infer(v).map(|t| Arc::new(NestedField::optional(0, k, t)))).collect();
            if fields.is_empty() {
                return None;
            }
            Type::Struct(StructType::new(fields))
        }
    })
}

/// Two records' types for one column: a long and a double make a double; otherwise the first wins
/// (records that do not fit it are refused with the reason).
pub fn widen(a: Type, b: Type) -> Type {
    match (&a, &b) {
        (Type::Primitive(PrimitiveType::Long), Type::Primitive(PrimitiveType::Double)) => b,
        _ => a,
    }
}

/// The new top-level columns `records` carry that `schema` lacks, with their types, in the order
/// first seen.
pub fn new_columns(schema: Option<&Schema>, records: &[(usize, &[u8])]) -> Vec<(String, Type)> {
    let mut found: Vec<(String, Type)> = Vec::new();
    for (_, data) in records {
        let Some(top) = top_level(data) else { continue };
        for (key, raw) in top {
            if schema.is_some_and(|s| s.field_by_name(&key).is_some()) {
                continue;
            }
            let Ok(value) = serde_json::from_str::<Value>(raw.get()) else { continue };
            let Some(ty) = infer(&value) else { continue };
            match found.iter_mut().find(|(k, _)| *k == key) {
                Some((_, t)) => *t = widen(t.clone(), ty),
                None => found.push((key, ty)),
            }
        }
    }
    found
}

/// A schema for a new table from the columns its first records carry (ids numbered from 1;
/// the catalog keeps or reassigns them consistently).
pub fn schema_of(columns: &[(String, Type)]) -> Result<Schema, String> {
    let mut next = 0;
    let fields = columns
        .iter()
        .map(|(name, ty)| Arc::new(NestedField::optional(fresh(&mut next), name, numbered(ty, &mut next))))
        .collect::<Vec<_>>();
    Schema::builder().with_fields(fields).build().map_err(|e| format!("cannot make a schema from the records: {e}"))
}

fn fresh(next: &mut i32) -> i32 {
    *next += 1;
    *next
}

fn numbered(ty: &Type, next: &mut i32) -> Type {
    match ty {
        Type::Primitive(_) => ty.clone(),
        Type::Struct(s) => Type::Struct(StructType::new(
            s.fields()
                .iter()
                .map(|f| Arc::new(NestedField::optional(fresh(next), &f.name, numbered(&f.field_type, next))))
                .collect(),
        )),
        Type::List(l) => {
            let id = fresh(next);
            let element = numbered(&l.element_field.field_type, next);
            Type::List(ListType::new(Arc::new(NestedField::list_element(id, element, false))))
        }
        Type::Map(_) => ty.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(lines: &[&'static str]) -> Vec<(usize, &'static [u8])> {
        lines.iter().enumerate().map(|(i, l)| (i, l.as_bytes())).collect()
    }

    #[test]
    fn new_columns_are_inferred_from_the_records_and_widened() {
        let rs = records(&[r#"{"a":1,"b":"x","n":null}"#, r#"{"a":1.5,"c":{"d":true},"e":[1,2]}"#]);
        let cols = new_columns(None, &rs);
        let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "e"]);
        assert_eq!(cols[0].1, Type::Primitive(PrimitiveType::Double));
        let schema = schema_of(&cols).unwrap();
        assert!(schema.field_by_name("c.d").is_some(), "{schema}");
    }

    #[test]
    fn a_record_that_does_not_fit_is_refused_alone() {
        let cols = vec![("a".to_string(), Type::Primitive(PrimitiveType::Long))];
        let decoder = RowDecoder::new(&schema_of(&cols).unwrap()).unwrap();
        let rs = records(&[r#"{"a":1}"#, r#"{"a":"not a number"}"#, "[1]", r#"{"a":3,"extra":true}"#, "{bad"]);
        let d = decoder.decode(&rs).unwrap();
        assert_eq!(d.written, [0, 3]);
        assert_eq!(d.batch.unwrap().num_rows(), 2);
        let refused: Vec<usize> = d.refused.iter().map(|(i, _)| *i).collect();
        assert_eq!(refused, [1, 2, 4]);
        assert!(d.refused[1].1.contains("not a JSON object"), "{:?}", d.refused);
    }
}
