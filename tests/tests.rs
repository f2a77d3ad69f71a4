//! The integration tests: one binary, a module per area (as ripgrep's `tests/tests.rs`), so
//! the shared servers and helpers in `common/` are compiled once. Each area runs the real
//! `smtpsend` binary against servers on loopback. `dkim_memory.rs` is a binary of its own:
//! it installs a counting global allocator.

mod common;

mod bad_input;
mod bounce;
mod bs;
mod check;
mod compose_cli;
mod dane;
mod diagnose;
mod direct;
mod direct_security;
mod dkim;
mod dkim_send;
mod docs;
mod exim;
mod faults;
mod golden;
mod hostile;
mod local_cli;
mod log;
mod maildrop;
mod msmtprc;
mod mta_sts;
mod oauth;
mod oauth_e2e;
mod opensmtpd;
mod postfix;
mod queue;
mod real_servers;
mod relay;
mod resolve;
mod runner;
mod sasl;
mod server_selftest;
mod tls_mistakes;
