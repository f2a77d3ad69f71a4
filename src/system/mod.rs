//! What smtpsend asks of the operating system: who we are and what this host is called.

pub mod identity;
