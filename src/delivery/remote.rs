//! A route made live: a relay with the credentials it gets, or direct delivery.

use super::direct::Direct;
use super::route::{Client, Route};
use crate::smtp::{Credentials, Mechanism, SessionOptions};

/// A relay, ready to connect to: where, and who we are to it.
#[derive(Clone, Debug)]
pub struct Relay {
    pub route: Route,
    pub credentials: Option<Credentials>,
    /// A mechanism forced by the user; otherwise chosen from the server's offer.
    pub mechanism: Option<Mechanism>,
    /// Allow AUTH without verified TLS (only when the user insists).
    pub allow_plaintext_auth: bool,
    pub ehlo: String,
}

impl Relay {
    /// The session options every message through this relay starts from.
    pub fn session_options(&self, client: &Client) -> SessionOptions {
        SessionOptions {
            ehlo_name: self.ehlo.clone(),
            credentials: self.credentials.clone(),
            mechanism: self.mechanism,
            allow_plaintext_auth: self.allow_plaintext_auth,
            pipelining: client.pipelining,
            trace: client.trace,
            ..SessionOptions::default()
        }
    }
}

/// Where remote recipients go: one relay, or each domain's exchangers.
pub enum Remote {
    Relay(Box<Relay>),
    Direct(Box<Direct>),
}

impl Remote {
    /// The session options every message on this route starts from.
    pub fn session_options(&self, client: &Client) -> SessionOptions {
        match self {
            Remote::Relay(relay) => relay.session_options(client),
            Remote::Direct(direct) => direct.session_options(client),
        }
    }

    /// The route in words: `smtp.example.org:587`, or `direct delivery`.
    pub fn describe(&self) -> String {
        match self {
            Remote::Relay(relay) => format!("{}:{}", relay.route.host, relay.route.port),
            Remote::Direct(_) => "direct delivery".to_string(),
        }
    }
}
