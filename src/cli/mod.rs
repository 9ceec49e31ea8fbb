//! The binary's own modules: command-line concerns that the library does not need.

pub mod config_source;
pub mod daemon_address;
pub mod logging;
pub mod observe;
pub mod reload;
pub mod replay;
pub mod systemd;
pub mod test_config;
pub mod validate;
