//! `schema: infer` (beyond Firehose, which needs a Glue table): the schema is learned from the
//! records and evolves as new keys appear.
//!
//! Rules (README "Format conversion"):
//! - A JSON string is `string`, an integer `bigint`, any other number `double`, true/false
//!   `boolean`, an object `struct<...>` (fields in order of first appearance), an array
//!   `array<T>` with T learned from all its elements.
//! - A key seen only with `null` (or only with empty arrays) gets no column until a value shows
//!   its type.
//! - Evolution only adds: new keys become new nullable columns (or struct fields) at the end, and
//!   `bigint` widens to `double` when a fraction appears. A value of another type than its column's
//!   is not a schema change; the record converts as a declared schema would (OpenX coerces, e.g. a
//!   number into a string column) or goes to the error prefix.
//! - Each object holds one schema: the one in force when its batch was converted. The schema is
//!   kept in the pipeline's storage directory (written and fsynced before any file uses it), so a
//!   restart continues with it.

use std::io;
use std::path::PathBuf;

use jiter::{Jiter, Peek};
use serde::{Deserialize, Serialize};

use super::HiveType;
use crate::record::Record;

/// A learned type; `Unknown` until a non-null value is seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Shape {
    Unknown,
    Boolean,
    Bigint,
    Double,
    String,
    Array(Box<Shape>),
    Struct(Vec<(String, Shape)>),
}

impl Shape {
    /// Folds `other` into `self`; true when that changed the schema.
    fn merge(&mut self, other: Shape) -> bool {
        match (&mut *self, other) {
            (_, Shape::Unknown) => false,
            (Shape::Unknown, o) => {
                *self = o;
                true
            }
            (Shape::Bigint, Shape::Double) => {
                *self = Shape::Double;
                true
            }
            (Shape::Array(a), Shape::Array(b)) => a.merge(*b),
            (Shape::Struct(fields), Shape::Struct(new)) => {
                let mut changed = false;
                for (name, shape) in new {
                    match fields.iter_mut().find(|(n, _)| *n == name) {
                        Some((_, existing)) => changed |= existing.merge(shape),
                        None => {
                            changed |= shape.to_hive().is_some();
                            fields.push((name, shape));
                        }
                    }
                }
                changed
            }
            // Same type, or a conflict: the column keeps its type.
            _ => false,
        }
    }

    /// The Hive type, or `None` while nothing is known (such columns are not written yet).
    fn to_hive(&self) -> Option<HiveType> {
        Some(match self {
            Shape::Unknown => return None,
            Shape::Boolean => HiveType::Boolean,
            Shape::Bigint => HiveType::BigInt,
            Shape::Double => HiveType::Double,
            Shape::String => HiveType::String,
            Shape::Array(e) => HiveType::Array(Box::new(e.to_hive()?)),
            Shape::Struct(fields) => {
                let known: Vec<(String, HiveType)> =
                    fields.iter().filter_map(|(n, s)| Some((n.clone(), s.to_hive()?))).collect();
                if known.is_empty() {
                    return None;
                }
                HiveType::Struct(known)
            }
        })
    }
}

#[derive(Serialize, Deserialize)]
struct Persisted {
    columns: Vec<(String, Shape)>,
}

/// A pipeline's inferred schema.
pub struct SchemaInference {
    root: Shape,
    fold_case: bool,
    dots_to_underscores: bool,
    /// Where the schema is kept; `None` keeps it in memory only (benchmarks, tests).
    path: Option<PathBuf>,
}

impl SchemaInference {
    /// Starts from the schema saved at `path`, if there is one.
    pub fn load(path: Option<PathBuf>, fold_case: bool, dots_to_underscores: bool) -> io::Result<Self> {
        let mut root = Shape::Struct(Vec::new());
        if let Some(p) = &path {
            match std::fs::read(p) {
                Ok(bytes) => {
                    let saved: Persisted = serde_json::from_slice(&bytes)
                        .map_err(|e| io::Error::other(format!("{} is not a saved schema: {e}", p.display())))?;
                    root = Shape::Struct(saved.columns);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Self { root, fold_case, dots_to_underscores, path })
    }

    /// Learns from a batch, saves the schema if it changed, and returns the columns to convert
    /// the batch with. Records that are not JSON objects teach nothing (conversion fails them).
    pub fn evolve(&mut self, records: &[Record]) -> io::Result<Vec<(String, HiveType)>> {
        let mut changed = false;
        for r in records {
            let mut j = Jiter::new(&r.data);
            let mut batch_root = Shape::Struct(Vec::new());
            while let Ok(Peek::Object) = j.peek() {
                match self.shape(&mut j, Peek::Object, 0) {
                    Ok(s) => {
                        batch_root.merge(s);
                    }
                    Err(_) => break,
                }
            }
            changed |= self.root.merge(batch_root);
        }
        if changed {
            self.persist()?;
        }
        Ok(self.columns())
    }

    pub fn columns(&self) -> Vec<(String, HiveType)> {
        match self.root.to_hive() {
            Some(HiveType::Struct(fields)) => fields,
            _ => Vec::new(),
        }
    }

    fn shape(&self, j: &mut Jiter, peek: Peek, depth: usize) -> Result<Shape, jiter::JiterError> {
        Ok(match peek {
            Peek::Null => {
                j.known_null()?;
                Shape::Unknown
            }
            Peek::True | Peek::False => {
                j.known_bool(peek)?;
                Shape::Boolean
            }
            Peek::String => {
                j.known_str()?;
                Shape::String
            }
            Peek::Array if depth < super::hive_type::MAX_DEPTH => {
                let mut element = Shape::Unknown;
                let mut next = j.known_array()?;
                while let Some(p) = next {
                    element.merge(self.shape(j, p, depth + 1)?);
                    next = j.array_step()?;
                }
                Shape::Array(Box::new(element))
            }
            Peek::Object if depth < super::hive_type::MAX_DEPTH => {
                let mut fields: Vec<(String, Shape)> = Vec::new();
                let mut key = j.known_object()?.map(|k| self.column_name(k));
                while let Some(name) = key {
                    let p = j.peek()?;
                    let s = self.shape(j, p, depth + 1)?;
                    match fields.iter_mut().find(|(n, _)| *n == name) {
                        Some((_, existing)) => *existing = s,
                        None => fields.push((name, s)),
                    }
                    key = j.next_key()?.map(|k| self.column_name(k));
                }
                Shape::Struct(fields)
            }
            p if p.is_num() => {
                let text = j.known_number_bytes(p)?;
                if text.iter().all(|b| b.is_ascii_digit() || *b == b'-') {
                    Shape::Bigint
                } else {
                    Shape::Double
                }
            }
            p => {
                j.known_skip(p)?;
                Shape::Unknown
            }
        })
    }

    /// The column a key becomes: the decoder's key rules applied once, so its lookup matches.
    fn column_name(&self, key: &str) -> String {
        let name = if self.fold_case { key.to_lowercase() } else { key.to_string() };
        if self.dots_to_underscores {
            name.replace('.', "_")
        } else {
            name
        }
    }

    /// Replaces the saved schema atomically: temporary file, fsync, rename, fsync the directory.
    fn persist(&self) -> io::Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let Shape::Struct(columns) = &self.root else { return Ok(()) };
        crate::durable_file::replace_json(path, &Persisted { columns: columns.clone() })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn records(lines: &[&str]) -> Vec<Record> {
        lines.iter().enumerate().map(|(i, l)| Record::new(i as u64, 0, Bytes::from(l.to_string()))).collect()
    }

    fn types(cols: &[(String, HiveType)]) -> Vec<String> {
        cols.iter().map(|(n, t)| format!("{n}:{t}")).collect()
    }

    #[test]
    fn learns_types_and_only_ever_adds() {
        let mut s = SchemaInference::load(None, true, false).unwrap();
        let cols = s.evolve(&records(&[r#"{"A":1,"b":"x","n":null,"e":[]}"#, "not json"])).unwrap();
        assert_eq!(types(&cols), ["a:bigint", "b:string"]);
        let cols = s.evolve(&records(&[r#"{"a":2.5,"b":7,"n":{"x":[1,2.0],"y":true},"e":["s"]}{"z":false}"#])).unwrap();
        assert_eq!(
            types(&cols),
            ["a:double", "b:string", "n:struct<x:array<double>,y:boolean>", "e:array<string>", "z:boolean"]
        );
        let cols = s.evolve(&records(&[r#"{"n":{"w":"new"}}"#])).unwrap();
        assert_eq!(types(&cols)[2], "n:struct<x:array<double>,y:boolean,w:string>");
    }

    #[test]
    fn the_schema_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("schema.json");
        let mut s = SchemaInference::load(Some(path.clone()), true, true).unwrap();
        s.evolve(&records(&[r#"{"user.id":1}"#])).unwrap();
        let again = SchemaInference::load(Some(path), true, true).unwrap();
        assert_eq!(types(&again.columns()), ["user_id:bigint"]);
    }
}
