//! Delivering a message: the connection driver around the sans-IO session, the relay and
//! direct (MX) routes, local mailboxes, the bound on concurrent deliveries, and the log of
//! attempts.

mod connection;
pub mod direct;
pub mod link;
pub mod log;
pub mod mailbox;
pub mod policy;
pub mod pool;
pub mod recipients;
pub mod remote;
pub mod resolve;
pub mod route;

pub use connection::{
    BLOCK, Body, CHUNK_MAX, Delivered, Job, JobOutcome, RehearsalStep, TakeAlong, deliver,
    deliver_batch, deliver_message, deliver_message_along, encode_chunk, rehearse,
};
pub use remote::{Relay, Remote};
pub use route::{Client, Route, RouteSpec, Timeouts};
