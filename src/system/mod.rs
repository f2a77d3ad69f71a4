//! What smtpsend asks of the system beyond files and sockets: the calendar and the local
//! time zone ([`time`]).

pub mod time;
