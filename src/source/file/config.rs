//! `source: file:` as written (tailed files, in the Kinesis Agent's and Vector's role), its
//! validated form, and the rules between them. A config-layer module: it imports only the config
//! kit, so `config` can list it.

use std::time::Duration;

use serde::Deserialize;

use crate::config::kit::{max_line_bytes, ByteSize, Checker, Spanned};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFileSource {
    pub include: Spanned<Vec<String>>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// `beginning` or `end` (default): where a file seen for the first time is read from.
    pub start_at: Option<Spanned<String>>,
    pub multiline: Option<RawMultiline>,
    /// Container logs (CRI: containerd, CRI-O): join lines the runtime split (tag `P`) with the line
    /// that ends them, so a joined record is checkpointed past all its lines.
    pub join_cri_partials: Option<Spanned<bool>>,
    pub max_line_bytes: Option<Spanned<ByteSize>>,
    /// Fields added to every line's JSON object `{"message": .., "file": .., "host": .., <fields>}`.
    pub fields: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    /// Deliver the lines as they are, not wrapped as JSON (as the Kinesis Agent sends them).
    pub raw: Option<Spanned<bool>>,
    /// `cri`: parse container runtimes' lines where they are wrapped (`message`, `stream`,
    /// `partial`, `timestamp`), joining the lines the runtime split unless `join_cri_partials: false`.
    pub parse: Option<Spanned<String>>,
    /// Lines skipped at the start of every file (Kinesis Agent's skipHeaderLines).
    pub skip_header_lines: Option<Spanned<u64>>,
    /// Appended to a line that was cut (Kinesis Agent's truncatedRecordTerminator).
    pub truncated_line_terminator: Option<Spanned<String>>,
    /// How often the globs are scanned again (default 1000).
    pub glob_interval_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMultiline {
    /// A line matching this starts a new record; others are joined to the one before.
    pub start_pattern: Spanned<String>,
    /// A record is let go this long after its last line (default 1000).
    pub timeout_ms: Option<Spanned<u64>>,
}

/// What a `source: file:` pipeline tails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSourceSpec {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// Files seen for the first time are read from their start (else from their end).
    pub start_at_beginning: bool,
    pub multiline: Option<MultilineSpec>,
    pub join_cri_partials: bool,
    pub max_line_bytes: usize,
    /// Lines are wrapped as JSON objects: `{"message": line, "file": path, "host": .., ..fields}`.
    pub wrap: bool,
    /// Added to every wrapped line (`host` is always among them).
    pub fields: std::collections::BTreeMap<String, String>,
    /// Container runtimes' lines are parsed as they are wrapped.
    pub parse_cri: bool,
    pub skip_header_lines: u64,
    pub truncated_line_terminator: Option<String>,
    pub glob_interval: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultilineSpec {
    pub start_pattern: String,
    pub timeout: Duration,
}

pub fn validate(c: &mut Checker, f: &RawFileSource, field: &str) -> FileSourceSpec {
    let field = format!("{field}.source.file");
    if f.include.value.is_empty() {
        c.at(&f.include, &format!("{field}.include"), "needs at least one path or glob such as /var/log/app/*.log");
    }
    for (i, pattern) in f.include.value.iter().chain(&f.exclude).enumerate() {
        if let Err(e) = glob::Pattern::new(pattern) {
            c.at(&f.include, &format!("{field}.include/exclude[{i}]"), format!("`{pattern}` is not a glob: {e}"));
        }
    }
    let start_at_beginning = match f.start_at.as_ref().map(|s| s.value.as_str()) {
        None | Some("end") => false,
        Some("beginning") => true,
        Some(other) => {
            if let Some(s) = &f.start_at {
                c.at(s, &format!("{field}.start_at"), format!("`{other}` is not beginning or end"));
            }
            false
        }
    };
    let multiline = f.multiline.as_ref().map(|m| {
        if let Err(e) = regex::Regex::new(&m.start_pattern.value) {
            c.at(
                &m.start_pattern,
                &format!("{field}.multiline.start_pattern"),
                format!("is not a regular expression: {e}"),
            );
        }
        MultilineSpec {
            start_pattern: m.start_pattern.value.clone(),
            timeout: Duration::from_millis(m.timeout_ms.as_ref().map_or(1000, |t| t.value)),
        }
    });
    let raw = f.raw.as_ref().is_some_and(|r| r.value);
    let parse_cri = match &f.parse {
        None => false,
        Some(p) if p.value == "cri" => true,
        Some(p) => {
            c.at(
                p,
                &format!("{field}.parse"),
                format!(
                    "`{}` is not parsed where lines are read (only `cri` is); use a `parse: {{ format: {}, field: message }}` processor",
                    p.value, p.value
                ),
            );
            false
        }
    };
    if let (true, Some(r)) = (raw && (f.fields.is_some() || f.parse.is_some()), &f.raw) {
        c.at(r, &format!("{field}.raw"), "raw lines cannot carry `fields:` or be parsed (`parse:`); leave `raw` out");
    }
    // Parsing CRI lines implies joining the lines the runtime split, unless said otherwise.
    let join_cri_partials = f.join_cri_partials.as_ref().map_or(parse_cri, |j| j.value);
    if let (true, Some(j)) = (join_cri_partials && f.multiline.is_some(), &f.join_cri_partials) {
        c.at(j, &format!("{field}.join_cri_partials"), "cannot be combined with multiline: (both join lines)");
    }
    let glob_interval = Duration::from_millis(f.glob_interval_ms.as_ref().map_or(1000, |t| t.value.max(10)));
    FileSourceSpec {
        // Relative globs are relative to the config file, as every path in it.
        include: f.include.value.iter().map(|p| c.path(p).to_string_lossy().into_owned()).collect(),
        exclude: f.exclude.iter().map(|p| c.path(p).to_string_lossy().into_owned()).collect(),
        start_at_beginning,
        multiline,
        join_cri_partials,
        max_line_bytes: max_line_bytes(c, f.max_line_bytes.as_ref(), &field),
        wrap: !raw,
        fields: if raw {
            Default::default()
        } else {
            with_host(f.fields.as_ref().map(|m| m.value.clone()).unwrap_or_default())
        },
        parse_cri,
        skip_header_lines: f.skip_header_lines.as_ref().map_or(0, |s| s.value),
        truncated_line_terminator: f.truncated_line_terminator.as_ref().map(|t| t.value.clone()),
        glob_interval,
    }
}

/// Wrapped lines (the default) say which host read them, as log shippers' records do: `host` is
/// the machine's host name unless the config sets it (e.g. to a Kubernetes
/// node name).
fn with_host(mut fields: std::collections::BTreeMap<String, String>) -> std::collections::BTreeMap<String, String> {
    if !fields.contains_key("host") {
        fields.insert("host".into(), crate::host::hostname().unwrap_or("localhost").to_string());
    }
    fields
}

#[cfg(test)]
mod tests {
    use crate::config::sources::SourceSpec;

    fn load(source: &str) -> Result<SourceSpec, String> {
        let yaml = format!("pipelines:\n  - name: a\n    source: {{ file: {source} }}\n    destination: {{ local: {{ path: ./d }} }}\n");
        let cfg = crate::config::load_str(&yaml, "test.yaml", Default::default()).map_err(|e| e.to_string())?;
        Ok(cfg.pipelines[0].source.clone())
    }

    #[test]
    fn lines_are_wrapped_with_the_host_unless_raw_and_parse_cri_joins_split_lines() {
        let Ok(SourceSpec::File(f)) = load("{ include: [a.log] }") else { panic!("a file source") };
        assert!(f.wrap && f.fields.contains_key("host") && !f.parse_cri && !f.join_cri_partials);
        let Ok(SourceSpec::File(f)) = load("{ include: [a.log], raw: true }") else { panic!("a file source") };
        assert!(!f.wrap && f.fields.is_empty());
        let Ok(SourceSpec::File(f)) = load("{ include: [a.log], parse: cri }") else { panic!("a file source") };
        assert!(f.wrap && f.parse_cri && f.join_cri_partials);
        let Ok(SourceSpec::File(f)) = load("{ include: [a.log], parse: cri, join_cri_partials: false }") else {
            panic!("a file source")
        };
        assert!(f.parse_cri && !f.join_cri_partials);
    }

    #[test]
    fn raw_lines_with_fields_and_other_formats_are_refused_with_the_way_out() {
        let err = load("{ include: [a.log], raw: true, fields: { app: x } }").unwrap_err();
        assert!(err.contains("`pipelines[0].source.file.raw`: raw lines cannot carry `fields:`"), "{err}");
        let err = load("{ include: [a.log], parse: logfmt }").unwrap_err();
        assert!(err.contains("use a `parse: { format: logfmt, field: message }` processor"), "{err}");
    }
}
