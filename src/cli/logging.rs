//! Log output: text for people, JSON lines for collectors, never ANSI colour outside a terminal.

use std::io::IsTerminal;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise.
    Auto,
    Text,
    Json,
}

impl LogFormat {
    /// `$SLUICE_LOG_FORMAT` (for commands other than `run`, which also takes `--log-format`);
    /// `auto` when unset or not one of the names.
    pub fn from_env() -> Self {
        let name = std::env::var("SLUICE_LOG_FORMAT").unwrap_or_default();
        <Self as clap::ValueEnum>::from_str(&name, true).unwrap_or(LogFormat::Auto)
    }
}

/// Installs the global subscriber (level from `RUST_LOG`, default `info`), writing to stderr.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let terminal = std::io::stderr().is_terminal();
    let json = match format {
        LogFormat::Auto => !terminal,
        LogFormat::Text => false,
        LogFormat::Json => true,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        // One object per line: timestamp, level, target, fields (the message is `fields.message`).
        builder.json().with_current_span(false).with_span_list(false).init();
    } else {
        builder.with_ansi(terminal).init();
    }
}
