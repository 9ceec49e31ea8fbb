//! Config files on disk: telling a pipeline config from a table schema, and a config directory
//! (`sluice run --config-dir DIR`) merged into one config.
//!
//! In a directory every `*.yaml`/`*.yml` file declares pipelines; `api:`, `storage:` and
//! `auto_create:` may each be set by one file only (two files disagreeing about the listen address
//! would otherwise be settled by file order, silently). Schema files found there are skipped: they
//! are read through `format_conversion.schema.file`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::de::IgnoredAny;

use super::{load_file, Config, ConfigError, ConfigErrors};

/// What a YAML file is, judged by its top-level keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A sluice config (`pipelines:`, `api:`, ...).
    Config,
    /// A table schema for format conversion (`columns:` only).
    Schema,
}

fn top_level_keys(text: &str) -> Vec<String> {
    serde_saphyr::from_str::<BTreeMap<String, IgnoredAny>>(text).map(|m| m.into_keys().collect()).unwrap_or_default()
}

pub fn sniff(text: &str) -> FileKind {
    match top_level_keys(text).as_slice() {
        [only] if only == "columns" => FileKind::Schema,
        _ => FileKind::Config,
    }
}

/// The YAML files of a directory, sorted by name.
pub fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let yaml = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        if yaml && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Loads every config file of `dir` into one config.
pub fn load_dir(dir: &Path) -> Result<Config, ConfigErrors> {
    let origin = dir.display().to_string();
    let files = yaml_files(dir)
        .map_err(|e| ConfigErrors::single(ConfigError::plain(&origin, format!("cannot read the directory: {e}"))))?;
    let mut errors = Vec::new();
    let mut merged: Option<Config> = None;
    let mut owners: HashMap<&'static str, PathBuf> = HashMap::new();
    let mut pipeline_files: HashMap<String, PathBuf> = HashMap::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            errors.push(ConfigError::plain(&file.display().to_string(), "cannot read the file".into()));
            continue;
        };
        if sniff(&text) == FileKind::Schema {
            continue;
        }
        let config = match load_file(&file) {
            Ok(c) => c,
            Err(e) => {
                errors.extend(e.0);
                continue;
            }
        };
        let sections = top_level_keys(&text);
        let name = file.display().to_string();
        for section in ["api", "storage", "auto_create"] {
            if !sections.iter().any(|s| s == section) {
                continue;
            }
            if let Some(first) = owners.get(section) {
                errors.push(ConfigError::plain(
                    &name,
                    format!("`{section}:` is already set in {}; set it in one file of the directory", first.display()),
                ));
            } else {
                owners.insert(section, file.clone());
            }
        }
        for p in &config.pipelines {
            if let Some(first) = pipeline_files.insert(p.name.clone(), file.clone()) {
                errors.push(ConfigError::plain(
                    &name,
                    format!("pipeline `{}` is already declared in {}", p.name, first.display()),
                ));
            }
        }
        merged = Some(match merged.take() {
            None => config,
            Some(mut m) => {
                if owners.get("api") == Some(&file) {
                    (m.listen, m.limits) = (config.listen, config.limits);
                }
                if owners.get("storage") == Some(&file) {
                    m.storage = config.storage;
                }
                if owners.get("auto_create") == Some(&file) {
                    m.auto_create = config.auto_create;
                }
                m.pipelines.extend(config.pipelines);
                m
            }
        });
    }
    match merged {
        _ if !errors.is_empty() => Err(ConfigErrors(errors)),
        None => Err(ConfigErrors::single(ConfigError::plain(&origin, "holds no *.yaml config files".into()))),
        Some(m) => Ok(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_file_is_told_from_a_config() {
        assert_eq!(sniff("columns:\n  - { name: a, type: string }\n"), FileKind::Schema);
        assert_eq!(sniff("pipelines: []\n"), FileKind::Config);
        assert_eq!(sniff("columns: []\npipelines: []\n"), FileKind::Config);
        assert_eq!(sniff(": not yaml ["), FileKind::Config);
    }

    #[test]
    fn a_directory_merges_pipelines_and_refuses_two_owners_of_a_section() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(
            "a.yaml",
            "api: { listen: \"127.0.0.1:4999\" }\npipelines:\n  - { name: a, destination: { local: { path: ./a } } }\n",
        );
        write("b.yml", "pipelines:\n  - { name: b, destination: { local: { path: ./b } } }\n");
        write("schema.yaml", "columns:\n  - { name: x, type: string }\n");
        write("notes.txt", "ignored");
        let config = load_dir(dir.path()).unwrap();
        assert_eq!(config.pipelines.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(config.listen.port(), 4999);

        write(
            "c.yaml",
            "api: { listen: \"127.0.0.1:5000\" }\npipelines:\n  - { name: a, destination: { local: { path: ./c } } }\n",
        );
        let errors = load_dir(dir.path()).unwrap_err().to_string();
        assert!(errors.contains("`api:` is already set in"), "{errors}");
        assert!(errors.contains("pipeline `a` is already declared in"), "{errors}");
    }
}
