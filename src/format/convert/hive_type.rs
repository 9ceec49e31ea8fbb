//! Hive/Glue column types (`decimal(12,2)`, `array<struct<id:bigint>>`, ...) as Firehose's schema
//! configuration declares them, and their Arrow equivalents.

use std::fmt;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, TimeUnit};

/// Largest precision of a Hive decimal (and of ORC's and Arrow's 128-bit decimals).
pub const MAX_DECIMAL_PRECISION: u8 = 38;
/// Nesting deeper than this is refused: it protects the recursive decoder's stack and no table needs it.
pub const MAX_DEPTH: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HiveType {
    String,
    Char(u32),
    Varchar(u32),
    TinyInt,
    SmallInt,
    Int,
    BigInt,
    Float,
    Double,
    Boolean,
    Date,
    Timestamp,
    Decimal { precision: u8, scale: u8 },
    Binary,
    Array(Box<HiveType>),
    Map(Box<HiveType>, Box<HiveType>),
    Struct(Vec<(String, HiveType)>),
}

impl HiveType {
    /// Parses a type string the way Hive's DDL does: keywords are case-insensitive, spaces are
    /// allowed between tokens, `decimal` alone means `decimal(10,0)`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut p = Parser { text, pos: 0 };
        let t = p.ty(0)?;
        p.skip_space();
        if p.pos != text.len() {
            return Err(format!("unexpected `{}` after the type at character {}", &text[p.pos..], p.pos + 1));
        }
        Ok(t)
    }

    /// The Arrow type the converter builds for this column. Timestamps are microseconds without a
    /// time zone (Hive timestamps carry none), which covers years 0001–9999, unlike nanoseconds.
    pub fn to_arrow(&self) -> DataType {
        match self {
            HiveType::String | HiveType::Char(_) | HiveType::Varchar(_) => DataType::Utf8,
            HiveType::TinyInt => DataType::Int8,
            HiveType::SmallInt => DataType::Int16,
            HiveType::Int => DataType::Int32,
            HiveType::BigInt => DataType::Int64,
            HiveType::Float => DataType::Float32,
            HiveType::Double => DataType::Float64,
            HiveType::Boolean => DataType::Boolean,
            HiveType::Date => DataType::Date32,
            HiveType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            HiveType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale as i8),
            HiveType::Binary => DataType::Binary,
            HiveType::Array(element) => DataType::List(Arc::new(Field::new("element", element.to_arrow(), true))),
            HiveType::Map(key, value) => DataType::Map(
                Arc::new(Field::new(
                    "key_value",
                    DataType::Struct(Fields::from(vec![
                        Field::new("key", key.to_arrow(), false),
                        Field::new("value", value.to_arrow(), true),
                    ])),
                    false,
                )),
                false,
            ),
            HiveType::Struct(fields) => DataType::Struct(
                fields.iter().map(|(name, t)| Field::new(name, t.to_arrow(), true)).collect::<Vec<_>>().into(),
            ),
        }
    }

    pub fn is_primitive(&self) -> bool {
        !matches!(self, HiveType::Array(_) | HiveType::Map(..) | HiveType::Struct(_))
    }
}

impl fmt::Display for HiveType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HiveType::String => f.write_str("string"),
            HiveType::Char(n) => write!(f, "char({n})"),
            HiveType::Varchar(n) => write!(f, "varchar({n})"),
            HiveType::TinyInt => f.write_str("tinyint"),
            HiveType::SmallInt => f.write_str("smallint"),
            HiveType::Int => f.write_str("int"),
            HiveType::BigInt => f.write_str("bigint"),
            HiveType::Float => f.write_str("float"),
            HiveType::Double => f.write_str("double"),
            HiveType::Boolean => f.write_str("boolean"),
            HiveType::Date => f.write_str("date"),
            HiveType::Timestamp => f.write_str("timestamp"),
            HiveType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            HiveType::Binary => f.write_str("binary"),
            HiveType::Array(e) => write!(f, "array<{e}>"),
            HiveType::Map(k, v) => write!(f, "map<{k},{v}>"),
            HiveType::Struct(fields) => {
                f.write_str("struct<")?;
                for (i, (name, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{name}:{t}")?;
                }
                f.write_str(">")
            }
        }
    }
}

/// Checks a column or struct field name: Hive identifiers are letters, digits and `_`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a column name cannot be empty".into());
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("`{name}` is not a valid column name (letters, digits and `_` only, as in Hive)"));
    }
    Ok(())
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.text[self.pos..].starts_with(char::is_whitespace) {
            self.pos += self.text[self.pos..].chars().next().map_or(1, char::len_utf8);
        }
    }

    fn word(&mut self) -> &str {
        self.skip_space();
        let start = self.pos;
        let len = self.text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(self.text.len() - start);
        self.pos += len;
        &self.text[start..self.pos]
    }

    fn eat(&mut self, ch: char) -> bool {
        self.skip_space();
        if self.text[self.pos..].starts_with(ch) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn require(&mut self, ch: char) -> Result<(), String> {
        if self.eat(ch) {
            Ok(())
        } else {
            let found = self.text[self.pos..].chars().next().map_or("the end".to_string(), |c| format!("`{c}`"));
            Err(format!("expected `{ch}` at character {} but found {found}", self.pos + 1))
        }
    }

    fn number(&mut self) -> Result<u32, String> {
        let w = self.word().to_string();
        w.parse::<u32>().map_err(|_| format!("expected a number but found `{w}`"))
    }

    fn ty(&mut self, depth: usize) -> Result<HiveType, String> {
        if depth > MAX_DEPTH {
            return Err(format!("types nest deeper than {MAX_DEPTH} levels"));
        }
        let word = self.word().to_ascii_lowercase();
        Ok(match word.as_str() {
            "string" => HiveType::String,
            "tinyint" => HiveType::TinyInt,
            "smallint" => HiveType::SmallInt,
            "int" | "integer" => HiveType::Int,
            "bigint" => HiveType::BigInt,
            "float" => HiveType::Float,
            "double" => HiveType::Double,
            "boolean" => HiveType::Boolean,
            "date" => HiveType::Date,
            "timestamp" => HiveType::Timestamp,
            "binary" => HiveType::Binary,
            "char" | "varchar" => {
                self.require('(')?;
                let n = self.number()?;
                self.require(')')?;
                let max = if word == "char" { 255 } else { 65535 };
                if n == 0 || n > max {
                    return Err(format!("{word} length must be between 1 and {max}, not {n}"));
                }
                if word == "char" {
                    HiveType::Char(n)
                } else {
                    HiveType::Varchar(n)
                }
            }
            "decimal" | "numeric" => {
                let (precision, scale) = if self.eat('(') {
                    let p = self.number()?;
                    let s = if self.eat(',') { self.number()? } else { 0 };
                    self.require(')')?;
                    (p, s)
                } else {
                    (10, 0)
                };
                if precision == 0 || precision > u32::from(MAX_DECIMAL_PRECISION) {
                    return Err(format!("decimal precision must be between 1 and 38, not {precision}"));
                }
                if scale > precision {
                    return Err(format!("decimal scale {scale} is larger than its precision {precision}"));
                }
                HiveType::Decimal { precision: precision as u8, scale: scale as u8 }
            }
            "array" => {
                self.require('<')?;
                let element = self.ty(depth + 1)?;
                self.require('>')?;
                HiveType::Array(Box::new(element))
            }
            "map" => {
                self.require('<')?;
                let key = self.ty(depth + 1)?;
                if !key.is_primitive() {
                    return Err(format!("a map key must be a primitive type, not {key}"));
                }
                self.require(',')?;
                let value = self.ty(depth + 1)?;
                self.require('>')?;
                HiveType::Map(Box::new(key), Box::new(value))
            }
            "struct" => {
                self.require('<')?;
                let mut fields: Vec<(String, HiveType)> = Vec::new();
                loop {
                    let name = self.word().to_string();
                    check_name(&name)?;
                    if fields.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                        return Err(format!("struct field `{name}` appears twice"));
                    }
                    self.require(':')?;
                    let t = self.ty(depth + 1)?;
                    fields.push((name, t));
                    if !self.eat(',') {
                        break;
                    }
                }
                self.require('>')?;
                HiveType::Struct(fields)
            }
            "uniontype" => return Err("uniontype is not supported (Firehose does not support it either)".into()),
            "" => return Err(format!("expected a type name at character {}", self.pos + 1)),
            other => {
                return Err(format!(
                    "unknown type `{other}` (expected string, char(n), varchar(n), tinyint, smallint, int, bigint, \
                     float, double, boolean, date, timestamp, decimal(p,s), binary, array<>, map<,> or struct<>)"
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_firehose_type_and_prints_it_back() {
        for text in [
            "string",
            "char(3)",
            "varchar(65535)",
            "tinyint",
            "smallint",
            "int",
            "bigint",
            "float",
            "double",
            "boolean",
            "date",
            "timestamp",
            "decimal(12,2)",
            "binary",
            "array<string>",
            "map<string,array<int>>",
            "struct<id:bigint,country:string,tags:array<struct<k:string,v:decimal(38,38)>>>",
        ] {
            assert_eq!(HiveType::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(HiveType::parse(" DECIMAL ").unwrap(), HiveType::Decimal { precision: 10, scale: 0 });
        assert_eq!(HiveType::parse("Map < String , INT >").unwrap().to_string(), "map<string,int>");
    }

    #[test]
    fn rejects_bad_types_with_a_reason() {
        for (text, reason) in [
            ("strin", "unknown type `strin`"),
            ("decimal(39,2)", "between 1 and 38"),
            ("decimal(5,6)", "larger than its precision"),
            ("char(0)", "between 1 and 255"),
            ("array<int", "expected `>`"),
            ("map<array<int>,int>", "primitive"),
            ("struct<a:int,A:int>", "appears twice"),
            ("struct<a-b:int>", "expected `:`"),
            ("uniontype<int,string>", "not supported"),
            ("int int", "unexpected"),
            ("", "expected a type name"),
        ] {
            let e = HiveType::parse(text).unwrap_err();
            assert!(e.contains(reason), "{text}: {e}");
        }
        let deep = format!("{}int{}", "array<".repeat(70), ">".repeat(70));
        assert!(HiveType::parse(&deep).unwrap_err().contains("deeper"));
    }
}
