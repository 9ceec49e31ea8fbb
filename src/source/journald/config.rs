//! `source: journald:` as written, its validated form, and the rules between them. A config-layer
//! module: it imports only the config kit, so `config` can list it.

use serde::Deserialize;

use crate::config::kit::{Checker, Spanned};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJournald {
    /// Only these units (`journalctl -u`); default: every entry.
    #[serde(default)]
    pub units: Vec<Spanned<String>>,
    /// journalctl matches such as `_TRANSPORT=kernel` or `PRIORITY=3`.
    #[serde(default)]
    pub matches: Vec<Spanned<String>>,
    /// First run only: start at the journal's end instead of its beginning.
    pub since_now: Option<bool>,
    /// Read the journal files of this directory (`journalctl --directory`; a mounted host journal).
    pub directory: Option<Spanned<String>>,
    /// The journalctl to run (default: `journalctl` on the PATH).
    pub journalctl: Option<Spanned<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournaldSpec {
    pub units: Vec<String>,
    pub matches: Vec<String>,
    pub since_now: bool,
    pub directory: Option<String>,
    pub journalctl: String,
}

pub fn validate(c: &mut Checker, j: &RawJournald, field: &str) -> JournaldSpec {
    let field = format!("{field}.source.journald");
    for (i, m) in j.matches.iter().enumerate() {
        let valid = m.value.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_')
        });
        if !valid {
            c.at(
                m,
                &format!("{field}.matches[{i}]"),
                format!("`{}` is not a journal match such as PRIORITY=3 or _TRANSPORT=kernel", m.value),
            );
        }
    }
    for (i, u) in j.units.iter().enumerate() {
        if u.value.trim().is_empty() || u.value.starts_with('-') {
            c.at(u, &format!("{field}.units[{i}]"), "must be a unit name such as nginx.service");
        }
    }
    JournaldSpec {
        units: j.units.iter().map(|u| u.value.clone()).collect(),
        matches: j.matches.iter().map(|m| m.value.clone()).collect(),
        since_now: j.since_now.unwrap_or(false),
        directory: j.directory.as_ref().map(|d| d.value.clone()),
        journalctl: j.journalctl.as_ref().map_or_else(|| "journalctl".to_string(), |p| p.value.clone()),
    }
}
