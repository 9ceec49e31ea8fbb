//! The binary's own modules: command-line concerns that the library does not need.

pub mod logging;
pub mod systemd;
pub mod validate;
