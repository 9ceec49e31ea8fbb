//! Destinations: which kind, the object store (S3 or a local directory) and Firehose's prefix rules.

use super::*;

/// The object store, and the endpoint when the destination is not an object store. Each kind's
/// own rules are its folder's (`config::destinations` lists them).
pub(super) fn destination(
    c: &mut Checker,
    d: &Spanned<RawDestination>,
    field: &str,
    partitions: &PartitionContext,
) -> Option<(ObjectDestination, Option<Arc<SendingSpec>>)> {
    use crate::config::destinations::{validate, Validated};
    match validate(c, d, field, partitions) {
        Validated::ObjectStore => object_destination(c, d, field, partitions).map(|o| (o, None)),
        Validated::Sending { at, spec, backup } => {
            let store = sending_backup(c, d, &at, backup, partitions)?;
            if store.format_conversion.is_some() && matches!(d.value, RawDestination::HttpEndpoint(_)) {
                c.at(backup, &format!("{at}.backup.format_conversion"), "applies to S3 destinations only");
            }
            Some((store, Some(Arc::new(*spec?))))
        }
        Validated::Staged(staged) => {
            let (store, spec) = *staged;
            Some((store, Some(Arc::new(spec))))
        }
        Validated::Invalid => None,
    }
}

/// What every sending destination checks: no dynamic partitioning (a Firehose rule), and a
/// `backup:` that is an object store (it receives the error records).
fn sending_backup(
    c: &mut Checker,
    d: &Spanned<RawDestination>,
    at: &str,
    backup: &Spanned<RawDestination>,
    partitions: &PartitionContext,
) -> Option<ObjectDestination> {
    if partitions.enabled {
        c.at(d, at, "dynamic partitioning applies to S3 destinations only (Firehose rule)");
    }
    if !matches!(backup.value, RawDestination::S3(_) | RawDestination::Local(_)) {
        c.at(backup, &format!("{at}.backup"), "must be an `s3:` or `local:` store");
        return None;
    }
    object_destination(c, backup, &format!("{at}.backup"), partitions)
}

fn object_destination(
    c: &mut Checker,
    d: &Spanned<RawDestination>,
    field: &str,
    partitions: &PartitionContext,
) -> Option<ObjectDestination> {
    let (kind, o) = match &d.value {
        RawDestination::S3(o) => ("s3", o),
        RawDestination::Local(o) => ("local", o),
        // The sending kinds (`config::destinations`) are not object stores.
        _ => return None,
    };
    store_destination(c, d, kind, o, &format!("{field}.{kind}"), partitions)
}

/// An object store's destination, from its fields; `at` locates errors about it as a whole.
pub(crate) fn store_destination<T>(
    c: &mut Checker,
    at: &Spanned<T>,
    kind: &str,
    o: &RawObjectStore,
    field: &str,
    partitions: &PartitionContext,
) -> Option<ObjectDestination> {
    let field = field.to_string();
    let store = if kind == "s3" { s3_store(c, at, o, &field) } else { local_store(c, at, o, &field) };
    let (prefix, error_prefix) = prefixes(c, o, &field, partitions)?;
    let compression = o.compression.as_ref().map(|c| c.value).unwrap_or_default();
    let compression_level = o.compression_level.as_ref().map(|level| {
        let range = match compression {
            Compression::Gzip => Some(1..=9),
            Compression::Zstd => Some(1..=19),
            _ => None,
        };
        match range {
            Some(range) if !range.contains(&level.value) => c.at(
                level,
                &format!("{field}.compression_level"),
                format!("must be between {} and {} for {}", range.start(), range.end(), compression.name()),
            ),
            Some(_) => {}
            None => c.at(
                level,
                &format!("{field}.compression_level"),
                format!("applies to GZIP (1–9) and ZSTD (1–19), not {}", compression.name()),
            ),
        }
        level.value
    });
    let conversion = match &o.format_conversion {
        Some(fc) if fc.value.enabled != Some(false) => {
            if let Some(comp) = o.compression.as_ref().filter(|c| c.value != Compression::Uncompressed) {
                c.at(
                    comp,
                    &format!("{field}.compression"),
                    "must be unset (or UNCOMPRESSED) with format_conversion: Parquet and ORC compress inside the file; set format_conversion.output.<format>.compression instead",
                );
            }
            if o.append_delimiter {
                c.at(
                    fc,
                    &format!("{field}.append_delimiter"),
                    "has no meaning with format_conversion (records become rows)",
                );
            }
            format_conversion(c, fc, &format!("{field}.format_conversion")).map(Arc::new)
        }
        _ => None,
    };

    let file_extension = match &o.file_extension {
        Some(ext) => {
            let ok = ext.value.is_empty()
                || (ext.value.len() <= 128
                    && ext.value.starts_with('.')
                    && !ext.value[1..].is_empty()
                    && ext.value[1..]
                        .chars()
                        .all(|ch| ch.is_ascii_digit() || ch.is_ascii_lowercase() || "!-_.*'()".contains(ch)));
            if !ok {
                c.at(
                    ext,
                    &format!("{field}.file_extension"),
                    "must be empty or match \\.[0-9a-z!\\-_.*'()]+ (at most 128 characters)",
                );
            }
            ext.value.clone()
        }
        None => match &conversion {
            Some(spec) => spec.extension().to_string(),
            None => compression.default_extension().to_string(),
        },
    };

    Some(ObjectDestination {
        store: store?,
        configured_prefix: o.prefix.as_ref().map(|p| p.value.clone()),
        configured_error_prefix: o.error_output_prefix.as_ref().map(|p| p.value.clone()),
        prefix,
        error_prefix,
        compression,
        compression_level,
        file_extension,
        append_delimiter: o.append_delimiter,
        format_conversion: conversion,
    })
}

fn s3_store<T>(c: &mut Checker, d: &Spanned<T>, o: &RawObjectStore, field: &str) -> Option<StoreSpec> {
    if let Some(p) = &o.path {
        c.at(p, &format!("{field}.path"), "`path` belongs to a `local` destination; an s3 destination takes `bucket`");
    }
    let Some(bucket) = &o.bucket else {
        c.at(d, &format!("{field}.bucket"), "is required");
        return None;
    };
    if bucket.value.is_empty() || bucket.value.contains('/') {
        c.at(bucket, &format!("{field}.bucket"), "must be a bucket name (no `/`)");
    }
    if let Some(e) = &o.endpoint {
        if !(e.value.starts_with("http://") || e.value.starts_with("https://")) {
            c.at(e, &format!("{field}.endpoint"), "must be an http:// or https:// URL");
        }
    }
    Some(StoreSpec::S3 {
        bucket: bucket.value.clone(),
        endpoint: o.endpoint.as_ref().map(|e| e.value.clone()),
        region: o.region.as_ref().map(|r| r.value.clone()),
        force_path_style: o.force_path_style.as_ref().is_some_and(|f| f.value),
        encryption: None,
    })
}

fn local_store<T>(c: &mut Checker, d: &Spanned<T>, o: &RawObjectStore, field: &str) -> Option<StoreSpec> {
    let misplaced = [
        ("bucket", o.bucket.as_ref().map(|s| (s.referenced.line(), s.referenced.column()))),
        ("endpoint", o.endpoint.as_ref().map(|s| (s.referenced.line(), s.referenced.column()))),
        ("region", o.region.as_ref().map(|s| (s.referenced.line(), s.referenced.column()))),
        ("force_path_style", o.force_path_style.as_ref().map(|s| (s.referenced.line(), s.referenced.column()))),
    ];
    for (name, at) in misplaced {
        if let Some((line, column)) = at {
            c.errors.push(ConfigError {
                origin: c.origin.to_string(),
                line,
                column,
                field: format!("{field}.{name}"),
                message: format!("`{name}` belongs to an `s3` destination; a local destination takes `path`"),
            });
        }
    }
    let Some(path) = &o.path else {
        c.at(d, &format!("{field}.path"), "is required: the directory objects are written under");
        return None;
    };
    if path.value.is_empty() {
        c.at(path, &format!("{field}.path"), "must not be empty");
    }
    Some(StoreSpec::Local { path: c.path(&path.value) })
}

/// Applies Firehose's prefix rules (spec §4) and defaults.
fn prefixes(
    c: &mut Checker,
    o: &RawObjectStore,
    field: &str,
    partitions: &PartitionContext,
) -> Option<(KeyTemplate, KeyTemplate)> {
    let parse = |c: &mut Checker, s: &Spanned<String>, name: &str| match KeyTemplate::parse(&s.value) {
        Ok(t) => Some(t),
        Err(e) => {
            c.at(s, &format!("{field}.{name}"), e.to_string());
            None
        }
    };
    let prefix = match &o.prefix {
        Some(p) => Some((p, parse(c, p, "prefix")?)),
        None => None,
    };
    let error_prefix = match &o.error_output_prefix {
        Some(p) => Some((p, parse(c, p, "error_output_prefix")?)),
        None => None,
    };

    if let Some((span, t)) = &prefix {
        if t.has_error_output_type() {
            c.at(
                span,
                &format!("{field}.prefix"),
                "`!{firehose:error-output-type}` may only appear in error_output_prefix",
            );
        }
        use crate::format::object_key::PartitionSource;
        for (source, key) in t.partition_keys() {
            let problem = match source {
                _ if !partitions.enabled => Some("needs `dynamic_partitioning: { enabled: true }`"),
                PartitionSource::Query if !partitions.has_query => {
                    Some("needs a metadata_extraction processor that produces the key")
                }
                PartitionSource::Lambda if !partitions.has_plugin => {
                    Some("needs a wasm processor that sets partition keys")
                }
                PartitionSource::Lambda | PartitionSource::Query => None,
            };
            if let Some(problem) = problem {
                c.at(span, &format!("{field}.prefix"), format!("partition key `{key}` {problem}"));
            }
        }
        if t.has_expressions() && error_prefix.is_none() {
            c.at(
                span,
                &format!("{field}.error_output_prefix"),
                "is required when prefix uses expressions (Firehose rule)",
            );
        }
    }
    if let Some((span, t)) = &error_prefix {
        if t.partition_keys().next().is_some() {
            c.at(span, &format!("{field}.error_output_prefix"), "partition keys may not appear in error_output_prefix");
        }
        if t.has_expressions() && !t.has_error_output_type() {
            c.at(
                span,
                &format!("{field}.error_output_prefix"),
                "must include `!{firehose:error-output-type}` when it uses expressions (Firehose rule)",
            );
        }
    }

    let with_time_path = |raw: &str| KeyTemplate::parse(&format!("{raw}{DEFAULT_TIME_PATH}")).ok();
    let static_prefix = prefix.as_ref().filter(|(_, t)| !t.has_expressions()).map(|(s, _)| s.value.as_str());
    let effective_prefix = match &prefix {
        Some((_, t)) if t.has_expressions() => Some(t.clone()),
        _ => with_time_path(static_prefix.unwrap_or("")),
    };
    let effective_error = match &error_prefix {
        Some((_, t)) if t.has_expressions() => Some(t.clone()),
        Some((s, _)) => with_time_path(&s.value),
        None => with_time_path(&format!("{}!{{firehose:error-output-type}}/", static_prefix.unwrap_or(""))),
    };
    let (effective_prefix, effective_error) = (effective_prefix?, effective_error?);
    let no_keys = |_: &crate::format::object_key::PartitionSource, _: &str| Some(String::new());
    for (template, name) in [(&effective_prefix, "prefix"), (&effective_error, "error_output_prefix")] {
        let ctx = crate::format::object_key::RenderContext {
            oldest_arrival_ms: 0,
            error_output_type: Some("format-conversion-failed"),
            partition_key: &no_keys,
            seed: 0,
        };
        if let Err(e) = template.render(&ctx) {
            let span = if name == "prefix" { o.prefix.as_ref() } else { o.error_output_prefix.as_ref() };
            match span {
                Some(s) => c.at(s, &format!("{field}.{name}"), e.to_string()),
                None => c.errors.push(ConfigError::plain(c.origin, format!("{field}.{name}: {e}"))),
            }
        }
    }
    Some((effective_prefix, effective_error))
}
