//! `DataFormatConversionConfiguration` → sluice's `format_conversion` (Parquet/ORC from a schema file).

use serde_json::{json, Map, Value};

use super::{refuse, Members, Result};
use crate::config::control_plane::ControlPlane;
use crate::stored::TranslateError;

/// `DataFormatConversionConfiguration` → sluice's `format_conversion`. The schema comes from the
/// schema file `control_plane.tables` maps the Glue `DatabaseName.TableName` to.
pub(super) fn format_conversion(value: &Value, path: &str, control: &ControlPlane) -> Result<Option<Value>> {
    let m = Members::of(
        value,
        path,
        &["SchemaConfiguration", "InputFormatConfiguration", "OutputFormatConfiguration", "Enabled"],
    )?;
    if !m.bool("Enabled")?.unwrap_or(true) {
        return Ok(None);
    }
    let schema = m
        .get("SchemaConfiguration")
        .ok_or_else(|| TranslateError(format!("{} is required", m.child("SchemaConfiguration"))))?;
    let s = Members::of(
        schema,
        &m.child("SchemaConfiguration"),
        &["RoleARN", "CatalogId", "DatabaseName", "TableName", "Region", "VersionId"],
    )?;
    let table = format!("{}.{}", s.required_str("DatabaseName")?, s.required_str("TableName")?);
    let Some(file) = control.tables.get(&table) else {
        return refuse(format!(
            "{}: Glue table {table} cannot be resolved: map it to a schema file in control_plane.tables",
            s.path
        ));
    };
    let mut out = Map::new();
    out.insert("schema".into(), json!({ "file": file.to_string_lossy() }));
    if let Some(input) = m.get("InputFormatConfiguration") {
        let i = Members::of(input, &m.child("InputFormatConfiguration"), &["Deserializer"])?;
        if let Some(d) = i.get("Deserializer") {
            let d = Members::of(d, &i.child("Deserializer"), &["OpenXJsonSerDe", "HiveJsonSerDe"])?;
            if let Some(o) = d.get("OpenXJsonSerDe") {
                let o = Members::of(
                    o,
                    &d.child("OpenXJsonSerDe"),
                    &["ConvertDotsInJsonKeysToUnderscores", "CaseInsensitive", "ColumnToJsonKeyMappings"],
                )?;
                let mut x = Map::new();
                if let Some(b) = o.bool("CaseInsensitive")? {
                    x.insert("case_insensitive".into(), b.into());
                }
                if let Some(b) = o.bool("ConvertDotsInJsonKeysToUnderscores")? {
                    x.insert("convert_dots_in_json_keys_to_underscores".into(), b.into());
                }
                if let Some(map) = o.get("ColumnToJsonKeyMappings") {
                    x.insert("column_to_json_key_mappings".into(), map.clone());
                }
                out.insert("input".into(), json!({ "openx_json": x }));
            } else if let Some(h) = d.get("HiveJsonSerDe") {
                let h = Members::of(h, &d.child("HiveJsonSerDe"), &["TimestampFormats"])?;
                let mut x = Map::new();
                if let Some(f) = h.get("TimestampFormats") {
                    x.insert("timestamp_formats".into(), f.clone());
                }
                out.insert("input".into(), json!({ "hive_json": x }));
            }
        }
    }
    let output = m
        .get("OutputFormatConfiguration")
        .ok_or_else(|| TranslateError(format!("{} is required", m.child("OutputFormatConfiguration"))))?;
    let o = Members::of(output, &m.child("OutputFormatConfiguration"), &["Serializer"])?;
    let serializer =
        o.get("Serializer").ok_or_else(|| TranslateError(format!("{} is required", o.child("Serializer"))))?;
    let s = Members::of(serializer, &o.child("Serializer"), &["ParquetSerDe", "OrcSerDe"])?;
    let snake = |key: &str| -> String {
        let mut out = String::new();
        for (i, ch) in key.chars().enumerate() {
            if ch.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        }
        out
    };
    let serde_block = |value: &Value, path: String, known: &[&str]| -> Result<Map<String, Value>> {
        let m = Members::of(value, &path, known)?;
        Ok(m.object.iter().map(|(k, v)| (snake(k), v.clone())).collect())
    };
    if let Some(p) = s.get("ParquetSerDe") {
        let p = serde_block(
            p,
            s.child("ParquetSerDe"),
            &[
                "BlockSizeBytes",
                "PageSizeBytes",
                "Compression",
                "EnableDictionaryCompression",
                "MaxPaddingBytes",
                "WriterVersion",
            ],
        )?;
        out.insert("output".into(), json!({ "parquet": p }));
    } else if let Some(orc) = s.get("OrcSerDe") {
        let orc = serde_block(
            orc,
            s.child("OrcSerDe"),
            &[
                "StripeSizeBytes",
                "BlockSizeBytes",
                "RowIndexStride",
                "EnablePadding",
                "PaddingTolerance",
                "Compression",
                "BloomFilterColumns",
                "BloomFilterFalsePositiveProbability",
                "DictionaryKeyThreshold",
                "FormatVersion",
            ],
        )?;
        out.insert("output".into(), json!({ "orc": orc }));
    } else {
        return refuse(format!("{} needs ParquetSerDe or OrcSerDe", s.path));
    }
    Ok(Some(Value::Object(out)))
}
