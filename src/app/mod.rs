//! The entry layer: the command line, the settings resolved from it and the config, and
//! the modes it dispatches to (send, queue commands, diagnostics, `-bs`, `oauth`).

pub mod cli;
pub mod diagnose;
pub mod oauth;
pub mod send;
pub mod smtp_stdio;
pub mod terminal;
