//! `sluice validate`: checks config files (or every YAML file of a directory) and prints each
//! problem with its file, line, column and a code frame.

use std::path::{Path, PathBuf};

use sluice::config::{self, ConfigErrors, FileKind};

/// Checks every path; Ok when all are valid.
pub fn run(paths: &[PathBuf]) -> anyhow::Result<()> {
    if paths.is_empty() {
        anyhow::bail!("give the config files or directories to check (or set SLUICE_CONFIG)");
    }
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let found = config::yaml_files(path)
                .map_err(|e| anyhow::anyhow!("{}: cannot read the directory: {e}", path.display()))?;
            if found.is_empty() {
                anyhow::bail!("{}: holds no *.yaml files", path.display());
            }
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    let mut invalid = 0;
    for file in &files {
        if !check(file) {
            invalid += 1;
        }
    }
    if invalid > 0 {
        anyhow::bail!("{invalid} of {} file{} invalid", files.len(), if files.len() == 1 { " is" } else { "s are" });
    }
    Ok(())
}

/// Checks one file, printing what it is and whether it is valid.
fn check(path: &Path) -> bool {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: cannot read the file: {e}", path.display());
            return false;
        }
    };
    if config::sniff(&text) == FileKind::Schema {
        return match config::load_schema_file(path) {
            Ok(columns) => {
                println!(
                    "{}: OK: a table schema ({} columns), used by a pipeline's `format_conversion: {{ schema: {{ file: ... }} }}`",
                    path.display(),
                    columns.len()
                );
                true
            }
            Err(config::LoadSchemaError::Invalid(errors)) => report(path, "table schema", &errors),
            Err(config::LoadSchemaError::Unreadable(e)) => {
                eprintln!("{}: cannot read the file: {e}", path.display());
                false
            }
        };
    }
    match config::load_file(path) {
        Ok(cfg) => {
            println!(
                "{}: OK ({} pipeline{}{})",
                path.display(),
                cfg.pipelines.len(),
                if cfg.pipelines.len() == 1 { "" } else { "s" },
                if cfg.auto_create.is_some() { ", auto_create on" } else { "" }
            );
            true
        }
        Err(errors) => report(path, "config", &errors),
    }
}

/// Prints every error, with a code frame from the file it names (the original text, before
/// environment variables were substituted: frames never show a secret).
pub fn report(path: &Path, what: &str, errors: &ConfigErrors) -> bool {
    for e in &errors.0 {
        eprintln!("{e}");
        if e.line > 0 {
            if let Some(frame) =
                std::fs::read_to_string(&e.origin).ok().and_then(|t| config::code_frame(&t, e.line, e.column))
            {
                eprintln!("{frame}");
            }
        }
    }
    let n = errors.0.len();
    eprintln!("{}: invalid {what} ({n} problem{})\n", path.display(), if n == 1 { "" } else { "s" });
    false
}
