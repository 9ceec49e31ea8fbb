//! Config problems, reported all at once: each with its file, line, column and field path, and a
//! message that says what would be right (`teach.rs` adds "did you mean"). [`Checker`] collects
//! them while validation goes on past the first.

use std::fmt;

use serde_saphyr::Spanned;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub origin: String,
    pub line: u64,
    pub column: u64,
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn plain(origin: &str, message: String) -> Self {
        Self { origin: origin.to_string(), line: 0, column: 0, field: String::new(), message }
    }

    /// An error at a spanned value of `origin`.
    pub fn at<T>(origin: &str, spanned: &Spanned<T>, field: &str, message: String) -> Self {
        Self {
            origin: origin.to_string(),
            line: spanned.referenced.line(),
            column: spanned.referenced.column(),
            field: field.to_string(),
            message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        write!(f, ": ")?;
        if !self.field.is_empty() {
            write!(f, "`{}`: ", self.field)?;
        }
        write!(f, "{}", self.message)
    }
}

/// Every problem found in a config, so a user fixes them in one round.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn single(e: ConfigError) -> Self {
        Self(vec![e])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects every problem of a config (with file, line, column and field) instead of stopping at
/// the first; connectors' config modules validate with it through `config::kit`.
pub struct Checker<'a> {
    pub(crate) origin: &'a str,
    /// The directory of the file being checked: relative paths it names are relative to it
    /// (empty for text that is not a file, such as the embedded default: the working directory).
    pub(crate) base: &'a std::path::Path,
    pub(crate) errors: Vec<ConfigError>,
    /// `api.account_id`/`api.region`, read first: ARNs the config implies (a Kinesis stream given
    /// by name) are built with them, never with a process-wide value (issue #23).
    pub(crate) identity: super::security::Identity,
}

impl Checker<'_> {
    /// A path the config names, as the daemon will open it: relative to the directory of the file
    /// that names it, so a config works from any working directory (and under systemd).
    pub fn path(&self, written: &str) -> std::path::PathBuf {
        relative_to(self.base, written)
    }

    /// Problems found so far: a validator compares before and after to know whether its part passed.
    pub fn error_count(&self) -> usize {
        self.errors.len()
    }

    /// A problem of the file as a whole (no single value to point at).
    pub fn plain(&mut self, message: impl Into<String>) {
        self.errors.push(ConfigError::plain(self.origin, message.into()));
    }

    /// Who the daemon is in ARNs the config implies (`api.account_id`, `api.region`).
    pub fn identity(&self) -> &crate::identity::Identity {
        &self.identity
    }

    /// A problem with `spanned`'s value, at its line and column, naming `field`.
    pub fn at<T>(&mut self, spanned: &Spanned<T>, field: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            origin: self.origin.to_string(),
            line: spanned.referenced.line(),
            column: spanned.referenced.column(),
            field: field.to_string(),
            message: message.into(),
        });
    }
}

/// `written` relative to `base` unless it is absolute (or `base` is empty).
pub fn relative_to(base: &std::path::Path, written: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(written);
    if path.is_absolute() || base.as_os_str().is_empty() {
        path.to_path_buf()
    } else {
        // `./logs` under `/etc/sluice` is `/etc/sluice/logs`, not `/etc/sluice/./logs`.
        base.join(path.strip_prefix(".").unwrap_or(path))
    }
}
