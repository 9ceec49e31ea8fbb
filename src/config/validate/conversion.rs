//! Validation of `format_conversion:` (Firehose's DataFormatConversionConfiguration): the schema
//! (inline, from a file, or inferred), the input rules and the Parquet/ORC options.

use super::*;

pub(super) fn format_conversion(
    c: &mut Checker,
    fc: &Spanned<RawFormatConversion>,
    field: &str,
) -> Option<ConversionSpec> {
    let schema = match &fc.value.schema.value {
        RawSchemaChoice::Keyword(k) if k == "infer" => Some(SchemaSpec::Infer),
        RawSchemaChoice::Keyword(k) => {
            c.at(
                &fc.value.schema,
                &format!("{field}.schema"),
                format!("`{k}`: expected `infer`, `columns: [...]` or `file: <path>`"),
            );
            None
        }
        RawSchemaChoice::Table(t) => schema_columns(c, &fc.value.schema, t, field).map(SchemaSpec::Declared),
    };
    let columns = match &schema {
        Some(SchemaSpec::Declared(cols)) => Some(cols.clone()),
        _ => None,
    };
    let input = match fc.value.input.as_ref() {
        None => Some(InputRules::OpenX {
            case_insensitive: true,
            dots_to_underscores: false,
            column_to_json_key: Default::default(),
        }),
        Some(input) => match &input.value {
            RawInput::OpenxJson(o) => {
                let mut mappings = std::collections::HashMap::new();
                if let (Some(m), Some(SchemaSpec::Infer)) = (&o.column_to_json_key_mappings, &schema) {
                    c.at(
                        m,
                        &format!("{field}.input.openx_json.column_to_json_key_mappings"),
                        "needs declared columns; with `schema: infer` the columns are named after the keys",
                    );
                }
                if let (Some(m), Some(cols)) = (&o.column_to_json_key_mappings, &columns) {
                    for (column, key) in &m.value {
                        if !cols.iter().any(|(n, _)| n == column) {
                            c.at(
                                m,
                                &format!("{field}.input.openx_json.column_to_json_key_mappings"),
                                format!("`{column}` is not a column of the schema"),
                            );
                        }
                        mappings.insert(column.clone(), key.clone());
                    }
                }
                Some(InputRules::OpenX {
                    case_insensitive: o.case_insensitive.unwrap_or(true),
                    dots_to_underscores: o.convert_dots_in_json_keys_to_underscores.unwrap_or(false),
                    column_to_json_key: mappings,
                })
            }
            RawInput::HiveJson(h) => {
                let mut formats = Vec::new();
                for (i, f) in h.timestamp_formats.iter().flatten().enumerate() {
                    match HiveTimestampFormat::parse(&f.value) {
                        Ok(t) => formats.push(t),
                        Err(e) => c.at(f, &format!("{field}.input.hive_json.timestamp_formats[{i}]"), e),
                    }
                }
                if let Some(cols) = &columns {
                    if let Some((name, _)) = cols.iter().find(|(n, _)| n.contains('.')) {
                        c.at(
                            input,
                            &format!("{field}.input.hive_json"),
                            format!("column `{name}`: the Hive JSON SerDe allows no dots in column names"),
                        );
                    }
                }
                Some(InputRules::Hive { timestamp_formats: formats })
            }
        },
    };
    let output_field = format!("{field}.output");
    let output = match &fc.value.output.value {
        RawOutput::Parquet(p) => parquet_options(c, p, &format!("{output_field}.parquet")).map(OutputFormat::Parquet),
        RawOutput::Orc(o) => orc_options(c, o, columns.as_ref(), &format!("{output_field}.orc")).map(OutputFormat::Orc),
    };
    Some(ConversionSpec { schema: schema?, input: input?, output: output? })
}

/// The schema's columns, inline or from `schema.file`, each type parsed and each name checked.
fn schema_columns(
    c: &mut Checker,
    schema: &Spanned<RawSchemaChoice>,
    table: &RawSchema,
    field: &str,
) -> Option<Vec<(String, HiveType)>> {
    match (&table.columns, &table.file) {
        (Some(cols), None) => {
            if cols.is_empty() {
                c.at(schema, &format!("{field}.schema"), "declares no columns");
                return None;
            }
            check_columns(c, cols, &format!("{field}.schema.columns"))
        }
        (None, Some(file)) => match load_schema_file(&c.path(&file.value)) {
            Ok(columns) => Some(columns),
            Err(LoadSchemaError::Unreadable(e)) => {
                let shown = c.path(&file.value);
                c.at(file, &format!("{field}.schema.file"), format!("cannot read `{}`: {e}", shown.display()));
                None
            }
            Err(LoadSchemaError::Invalid(errors)) => {
                // Reported against the schema file itself, with its own lines.
                c.errors.extend(errors.0);
                None
            }
        },
        _ => {
            c.at(schema, &format!("{field}.schema"), "needs exactly one of `columns` (inline) or `file`");
            None
        }
    }
}

pub enum LoadSchemaError {
    Unreadable(std::io::Error),
    Invalid(ConfigErrors),
}

/// A table schema file (`columns:` with a name and Hive type each), checked with errors that
/// name the schema file and its lines.
pub fn load_schema_file(path: &std::path::Path) -> Result<Vec<(String, HiveType)>, LoadSchemaError> {
    let text = std::fs::read_to_string(path).map_err(LoadSchemaError::Unreadable)?;
    let origin = path.display().to_string();
    let base = path.parent().unwrap_or(std::path::Path::new(""));
    let mut c = Checker { origin: &origin, base, errors: Vec::new(), identity: Default::default() };
    let parsed = serde_saphyr::from_str::<RawSchemaFile>(&text);
    let columns = match &parsed {
        Ok(file) if file.columns.is_empty() => {
            c.errors.push(ConfigError::plain(&origin, "declares no columns".into()));
            None
        }
        Ok(file) => check_columns(&mut c, &file.columns, "columns"),
        Err(e) => {
            let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
            let message = e.without_snippet().to_string();
            c.errors.push(ConfigError { line, column, ..ConfigError::plain(&origin, message) });
            None
        }
    };
    match columns {
        Some(columns) if c.errors.is_empty() => Ok(columns),
        _ => Err(LoadSchemaError::Invalid(ConfigErrors(c.errors))),
    }
}

fn check_columns(c: &mut Checker, raw: &[Spanned<RawColumn>], at: &str) -> Option<Vec<(String, HiveType)>> {
    let mut out: Vec<(String, HiveType)> = Vec::new();
    let mut ok = true;
    for (i, col) in raw.iter().enumerate() {
        let name = &col.value.name;
        if let Err(e) = hive_type::check_name(&name.value) {
            c.at(name, &format!("{at}[{i}].name"), e);
            ok = false;
        } else if out.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name.value)) {
            c.at(name, &format!("{at}[{i}].name"), format!("column `{}` is declared twice", name.value));
            ok = false;
        }
        match HiveType::parse(&col.value.ty.value) {
            Ok(t) => out.push((name.value.clone(), t)),
            Err(e) => {
                c.at(&col.value.ty, &format!("{at}[{i}].type"), format!("`{}`: {e}", col.value.ty.value));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// Sets `out` from a Firehose-style enum string (case-insensitive), or reports the allowed values.
/// `value` as one of `options` (case-insensitive), into `out`; a problem naming the options otherwise.
pub(crate) fn choose<T: Copy>(
    c: &mut Checker,
    value: &Option<Spanned<String>>,
    field: &str,
    options: &[(&str, T)],
    out: &mut T,
) -> bool {
    let Some(v) = value else { return true };
    match options.iter().find(|(name, _)| name.eq_ignore_ascii_case(&v.value)) {
        Some((_, chosen)) => {
            *out = *chosen;
            true
        }
        None => {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            let hint = crate::config::teach::hint(&v.value, names.iter().copied());
            c.at(v, field, format!("`{}` is not one of {}{hint}", v.value, names.join(", ")));
            false
        }
    }
}

fn parquet_options(c: &mut Checker, p: &RawParquet, field: &str) -> Option<ParquetOptions> {
    let mut o = ParquetOptions::default();
    let mut ok = true;
    use ParquetCompression as P;
    let codecs = [("UNCOMPRESSED", P::Uncompressed), ("SNAPPY", P::Snappy), ("GZIP", P::Gzip), ("ZSTD", P::Zstd)];
    ok &= choose(c, &p.compression, &format!("{field}.compression"), &codecs, &mut o.compression);
    if let Some(v) = &p.page_size_bytes {
        if v.value.0 < 64 << 10 {
            c.at(v, &format!("{field}.page_size_bytes"), "must be at least 64 KiB (as in Firehose)");
            ok = false;
        }
        o.page_size_bytes = v.value.0 as usize;
    }
    if let Some(v) = &p.block_size_bytes {
        // Firehose's minimum is 64 MiB; smaller row groups are legitimate for small, frequent files.
        if v.value.0 < 1 << 20 {
            c.at(v, &format!("{field}.block_size_bytes"), "must be at least 1 MiB");
            ok = false;
        }
        o.block_size_bytes = v.value.0 as usize;
    }
    if let Some(v) = &p.max_padding_bytes {
        if v.value.0 != 0 {
            c.at(v, &format!("{field}.max_padding_bytes"), "is not supported (sluice writes to object stores, which have no HDFS blocks to align to); leave it unset or 0");
            ok = false;
        }
    }
    o.enable_dictionary_compression = p.enable_dictionary_compression.unwrap_or(false);
    let versions = [("V1", false), ("V2", true)];
    ok &= choose(c, &p.writer_version, &format!("{field}.writer_version"), &versions, &mut o.writer_version_2);
    ok.then_some(o)
}

/// `columns` is the declared schema (None with `schema: infer`), to check bloom filter columns against.
fn orc_options(
    c: &mut Checker,
    r: &RawOrc,
    columns: Option<&Vec<(String, HiveType)>>,
    field: &str,
) -> Option<OrcOptions> {
    let mut o = OrcOptions::default();
    let mut ok = true;
    use OrcCompression as O;
    let codecs = [("NONE", O::None), ("ZLIB", O::Zlib), ("SNAPPY", O::Snappy), ("ZSTD", O::Zstd)];
    ok &= choose(c, &r.compression, &format!("{field}.compression"), &codecs, &mut o.compression);
    if let Some(v) = &r.stripe_size_bytes {
        if v.value.0 < 1 << 20 {
            c.at(v, &format!("{field}.stripe_size_bytes"), "must be at least 1 MiB");
            ok = false;
        }
        o.stripe_size_bytes = v.value.0 as usize;
    }
    if let Some(v) = &r.block_size_bytes {
        if v.value.0 < 1 << 20 {
            c.at(v, &format!("{field}.block_size_bytes"), "must be at least 1 MiB");
            ok = false;
        }
    }
    let versions = [("V0_12", false), ("V0_11", true)];
    ok &= choose(c, &r.format_version, &format!("{field}.format_version"), &versions, &mut o.format_0_11);
    if let Some(v) = &r.padding_tolerance {
        if !(0.0..=1.0).contains(&v.value) {
            c.at(v, &format!("{field}.padding_tolerance"), "must be between 0 and 1");
            ok = false;
        }
    }
    if let Some(v) = &r.dictionary_key_threshold {
        if !(0.0..=1.0).contains(&v.value) {
            c.at(v, &format!("{field}.dictionary_key_threshold"), "must be between 0 and 1");
            ok = false;
        } else if v.value > 0.0 {
            c.at(
                v,
                &format!("{field}.dictionary_key_threshold"),
                "only 0 is supported yet: sluice writes ORC strings without dictionaries, as a threshold of 0 does",
            );
            ok = false;
        }
    }
    if let Some(v) = &r.row_index_stride {
        if v.value < 1000 {
            c.at(v, &format!("{field}.row_index_stride"), "must be at least 1000 (as in Firehose)");
            ok = false;
        }
        o.row_index_stride = v.value as usize;
    }
    if let Some(v) = &r.bloom_filter_columns {
        for name in &v.value {
            match columns.and_then(|cols| cols.iter().find(|(n, _)| n == name)) {
                Some((_, ty)) if !ty.is_primitive() => {
                    c.at(
                        v,
                        &format!("{field}.bloom_filter_columns"),
                        format!("`{name}` is {ty}; bloom filters apply to primitive columns"),
                    );
                    ok = false;
                }
                None if columns.is_some() => {
                    c.at(
                        v,
                        &format!("{field}.bloom_filter_columns"),
                        format!("`{name}` is not a column of the schema"),
                    );
                    ok = false;
                }
                _ => {}
            }
        }
        o.bloom_filter_columns = v.value.clone();
    }
    if let Some(v) = &r.bloom_filter_false_positive_probability {
        if !(v.value > 0.0 && v.value < 1.0) {
            c.at(v, &format!("{field}.bloom_filter_false_positive_probability"), "must be between 0 and 1 (exclusive)");
            ok = false;
        }
        o.bloom_filter_fpp = v.value;
    }
    if let Some(v) = r.enable_padding.as_ref().filter(|p| p.value) {
        c.at(v, &format!("{field}.enable_padding"), "is not supported (object stores have no HDFS blocks to pad to)");
        ok = false;
    }
    ok.then_some(o)
}
