//! Where `sluice run` takes its config from, and the command line's overrides of it; both are kept
//! so a reload reads the same place and applies the same overrides.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::SystemTime;

use sluice::config;

/// Where `sluice run` takes its config from.
#[derive(Clone)]
pub enum ConfigSource {
    Embedded,
    File(PathBuf),
    Dir(PathBuf),
}

impl ConfigSource {
    pub fn new(file: Option<PathBuf>, dir: Option<PathBuf>) -> Self {
        match (file, dir) {
            (Some(f), _) => ConfigSource::File(f),
            (None, Some(d)) => ConfigSource::Dir(d),
            (None, None) => ConfigSource::Embedded,
        }
    }

    /// The config, or every problem of it (nothing printed: a reload logs them as fields).
    pub fn load_checked(&self) -> Result<config::Config, config::ConfigErrors> {
        match self {
            ConfigSource::Embedded => config::load_str(config::EMBEDDED_DEFAULT, "<embedded default>", PathBuf::new()),
            ConfigSource::File(p) => config::load_file(p),
            ConfigSource::Dir(d) => config::load_dir(d),
        }
    }

    /// The config; its problems, if any, printed as `sluice validate` prints them.
    pub fn load(&self) -> anyhow::Result<config::Config> {
        let (loaded, path) = match self {
            ConfigSource::Embedded => {
                let c = config::load_str(config::EMBEDDED_DEFAULT, "<embedded default>", PathBuf::new());
                (c, None)
            }
            ConfigSource::File(p) => (config::load_file(p), Some(p)),
            ConfigSource::Dir(d) => (config::load_dir(d), Some(d)),
        };
        loaded.map_err(|errors| {
            if let Some(path) = path {
                super::validate::report(path, "config", &errors);
            }
            anyhow::anyhow!(
                "the config is invalid ({} problem{})",
                errors.0.len(),
                if errors.0.len() == 1 { "" } else { "s" }
            )
        })
    }
}

impl ConfigSource {
    /// The config files' names and modification times: what `--watch-config` compares.
    pub fn fingerprint(&self) -> Vec<(PathBuf, Option<SystemTime>)> {
        let files = match self {
            ConfigSource::Embedded => Vec::new(),
            ConfigSource::File(p) => vec![p.clone()],
            ConfigSource::Dir(d) => config::yaml_files(d).unwrap_or_default(),
        };
        files
            .into_iter()
            .map(|f| {
                let modified = std::fs::metadata(&f).and_then(|m| m.modified()).ok();
                (f, modified)
            })
            .collect()
    }
}

/// `--listen` and `--storage-dir`, applied to every config loaded (the first and each reload).
#[derive(Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub storage_dir: Option<PathBuf>,
}

impl Overrides {
    pub fn apply(&self, mut cfg: config::Config) -> config::Config {
        if let Some(l) = self.listen {
            cfg.listen = l;
        }
        if let Some(d) = &self.storage_dir {
            cfg.storage.dir = d.clone();
        }
        cfg
    }
}
