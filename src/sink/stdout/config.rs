//! `destination: stdout:` as written and validated. A config-layer module: it imports only the
//! config kit, so `config` can list it.

use serde::Deserialize;

use crate::config::kit::{RawDestination, Spanned};

/// Where error records of a stdout pipeline go when it names no `backup:`.
pub const DEFAULT_BACKUP: &str = "./stdout-errors";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStdout {
    /// Where records that fail before output (processing, conversion) are written; a local
    /// directory `./stdout-errors` (relative to the config file) when left out.
    pub backup: Option<Spanned<RawDestination>>,
}

/// `stdout` has no options of its own: records are written as they are, one per line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StdoutSpec {}
