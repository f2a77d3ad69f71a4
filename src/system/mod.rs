//! What smtpsend asks of the operating system: who we are, what this host is called,
//! whether a file is private enough to hold a secret, how a secret command is run,
//! whether a person is watching stderr, and the calendar and local time zone.

pub mod identity;
pub mod private;
pub mod secret_command;
pub mod signals;
pub mod terminal;
pub mod time;
