//! Where each recipient goes. Addresses go over SMTP; a bare local name (`root`, as cron
//! writes it) goes through the aliases file and then to a qualified address, the
//! configured default recipient, or the local mailbox, in that order.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::message::address::{self, AddressError, Origin};
use crate::message::aliases::{self, Aliases};

/// The destination of one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// An address, delivered over SMTP.
    Remote(String),
    /// A user's mailbox on this machine.
    Mailbox(String),
}

/// How bare local names are handled: the account's `local_domain`, `default_recipient`,
/// `local_delivery`, `aliases` and `mail_spool`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalRules {
    pub local_domain: Option<String>,
    pub default_recipient: Option<String>,
    pub local_delivery: bool,
    pub aliases_file: Option<PathBuf>,
    /// The mailbox directory for local delivery (default `/var/mail`).
    pub mail_spool: Option<PathBuf>,
}

impl LocalRules {
    /// The mailbox directory for local delivery.
    pub fn mail_spool(&self) -> PathBuf {
        self.mail_spool
            .clone()
            .unwrap_or_else(|| Path::new(crate::delivery::mailbox::SPOOL_DIR).to_path_buf())
    }
}

/// The rules, and the aliases table once a local name needed it.
#[derive(Debug, Default)]
pub struct LocalPolicy {
    pub rules: LocalRules,
    aliases: Option<Option<Aliases>>,
}

impl LocalPolicy {
    pub fn new(rules: LocalRules) -> LocalPolicy {
        LocalPolicy {
            rules,
            aliases: None,
        }
    }

    /// The aliases table, read once and only when a local name needs it.
    fn aliases(&mut self) -> Result<Option<&Aliases>, Error> {
        if self.aliases.is_none() {
            let path = self
                .rules
                .aliases_file
                .clone()
                .unwrap_or_else(|| PathBuf::from(aliases::SYSTEM_ALIASES));
            self.aliases = Some(Aliases::load(&path)?);
        }
        Ok(self.aliases.as_ref().and_then(Option::as_ref))
    }

    /// The targets of one recipient as given (argument or header).
    pub fn route(&mut self, input: &str, origin: Origin) -> Result<Vec<Target>, Error> {
        let name = match address::envelope_address(input) {
            Ok(addr) => return Ok(vec![Target::Remote(addr)]),
            Err(AddressError::NoDomain(_)) => input.trim().to_ascii_lowercase(),
            Err(e) => return Err(e.into_error(origin)),
        };
        let expanded = match self.aliases()? {
            Some(table) => table.expand(&name)?,
            None => vec![name],
        };
        let mut targets = Vec::new();
        for entry in expanded {
            let target = if entry.contains('@') {
                Target::Remote(entry)
            } else {
                self.local_target(&entry, origin)?
            };
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
        Ok(targets)
    }

    /// A local name no alias turned into an address.
    fn local_target(&self, name: &str, origin: Origin) -> Result<Target, Error> {
        if let Some(domain) = &self.rules.local_domain {
            let addr = address::envelope_address(&format!("{name}@{domain}"))
                .map_err(|e| e.into_error(origin))?;
            return Ok(Target::Remote(addr));
        }
        if let Some(default) = &self.rules.default_recipient {
            return Ok(Target::Remote(default.clone()));
        }
        if self.rules.local_delivery {
            return Ok(Target::Mailbox(name.to_string()));
        }
        Err(Error::Usage(format!(
            "{name:?} is a local name and local delivery is off: set local_domain or \
             default_recipient in the config"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(aliases: &str) -> LocalPolicy {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aliases");
        std::fs::write(&path, aliases).unwrap();
        let mut p = LocalPolicy::new(LocalRules {
            local_delivery: true,
            aliases_file: Some(path.clone()),
            ..LocalRules::default()
        });
        p.aliases = Some(Aliases::load(&path).unwrap());
        p
    }

    #[test]
    fn addresses_go_remote() {
        let mut p = policy("");
        assert_eq!(
            p.route("a@example.org", Origin::CommandLine).unwrap(),
            vec![Target::Remote("a@example.org".into())]
        );
    }

    #[test]
    fn local_names_go_to_the_mailbox_by_default() {
        let mut p = policy("");
        assert_eq!(
            p.route("Root", Origin::CommandLine).unwrap(),
            vec![Target::Mailbox("root".into())]
        );
    }

    #[test]
    fn aliases_expand_to_addresses_and_names() {
        let mut p = policy("root: admin@example.org, ops\npostmaster: root\n");
        assert_eq!(
            p.route("postmaster", Origin::Message).unwrap(),
            vec![
                Target::Remote("admin@example.org".into()),
                Target::Mailbox("ops".into())
            ]
        );
    }

    #[test]
    fn local_domain_and_default_recipient() {
        let mut p = policy("");
        p.rules.local_domain = Some("example.org".into());
        assert_eq!(
            p.route("root", Origin::CommandLine).unwrap(),
            vec![Target::Remote("root@example.org".into())]
        );
        p.rules.local_domain = None;
        p.rules.default_recipient = Some("me@example.net".into());
        assert_eq!(
            p.route("root", Origin::CommandLine).unwrap(),
            vec![Target::Remote("me@example.net".into())]
        );
        p.rules.default_recipient = None;
        p.rules.local_delivery = false;
        assert!(matches!(
            p.route("root", Origin::CommandLine),
            Err(Error::Usage(_))
        ));
    }

    #[test]
    fn bad_addresses_keep_their_origin() {
        let mut p = policy("");
        assert!(matches!(
            p.route("a@@b", Origin::CommandLine),
            Err(Error::Usage(_))
        ));
        assert!(matches!(
            p.route("a@@b", Origin::Message),
            Err(Error::Data(_))
        ));
    }
}
