//! Which TLS policy each exchanger of a recipient domain gets on the direct route: DANE
//! where the domain's DNSSEC-signed TLSA records ask for it (RFC 7672), else the domain's
//! MTA-STS policy (RFC 8461), else what the user configured (opportunistic TLS, or a
//! verified certificate for `tls_verify_domains`).
//!
//! DANE is looked up only through a resolver whose answers can be validated: the root
//! zone's keys must check out against the trust anchor ([`Resolver::dnssec_available`]).
//! Where they cannot (a resolver that strips signatures), mail goes as without DANE unless
//! DANE is required. Once answers validate, a bogus one is a temporary failure of that
//! host, never a reason to go without DANE (RFC 7672 §2.1.1).

use std::net::IpAddr;
use std::time::SystemTime;

use super::dane::{DanePolicy, reference_identifiers};
use super::mta_sts::{self, Cache, Fetcher, MxCheck, Outcome};
use super::tlsa::Tlsa;
use crate::delivery::resolve::{Addresses, MailHost, Resolver, Secured, address_literal};
use crate::delivery::route::DaneRecords;
use crate::error::Error;
use crate::smtp::TraceLine;
use crate::transport::PolicyUse;

/// The published policies the direct route honours, and what it needs to find them.
pub struct Policies {
    pub dane: PolicyUse,
    pub mta_sts: PolicyUse,
    /// Domains whose exchangers must be authenticated by DANE.
    pub dane_domains: Vec<String>,
    /// Domains that must have an MTA-STS policy in mode enforce.
    pub mta_sts_domains: Vec<String>,
    /// A validating resolver, when DANE is not off.
    pub secure: Option<Resolver>,
    /// Fetcher and cache, when MTA-STS is not off.
    pub sts: Option<(Fetcher, Cache)>,
}

/// What a domain's published policies came to.
pub struct DomainPolicy {
    pub hosts: Vec<MailHost>,
    /// The lookups went through the validating resolver.
    validated: bool,
    /// The MX RRset (or the denial of one) is DNSSEC-secure (RFC 7672 §2.2.1).
    mx_secure: bool,
    /// The domain's MTA-STS policy, if it has one.
    sts: Option<Outcome>,
    require_dane: bool,
}

/// What one exchanger gets.
#[derive(Clone, Debug)]
pub enum HostTls {
    /// STARTTLS, the certificate matched against these TLSA records.
    Dane(DaneRecords),
    /// MTA-STS `enforce`: STARTTLS with a certificate verified for the MX host name.
    Enforced,
    /// As the user configured (opportunistic unless a verified certificate is asked for),
    /// with what to call it: `opportunistic`, `mta-sts testing`, ...
    Configured(&'static str),
}

impl HostTls {
    /// In words, before the connection: what the host must do.
    pub fn describe(&self) -> String {
        match self {
            HostTls::Dane(d) => format!("dane ({} usable TLSA records)", d.records.len()),
            HostTls::Enforced => "mta-sts enforce".into(),
            HostTls::Configured(label) => (*label).into(),
        }
    }
}

impl Policies {
    /// The exchangers of `domain` and the policies that bear on them. `plain` is the
    /// route's usual resolver.
    ///
    /// Errors: the lookups' own, and a temporary failure when a required policy is not
    /// there (DANE without signed MX records, MTA-STS without a policy in mode enforce).
    pub fn domain(
        &self,
        plain: &Resolver,
        domain: &str,
        trace: &mut dyn FnMut(&TraceLine),
    ) -> Result<DomainPolicy, Error> {
        let listed = |list: &[String]| list.iter().any(|d| d.eq_ignore_ascii_case(domain));
        let require_dane = self.dane == PolicyUse::Require || listed(&self.dane_domains);
        let require_sts = self.mta_sts == PolicyUse::Require || listed(&self.mta_sts_domains);
        // An address literal names its host: no DNS vouches for it, no policy applies.
        if address_literal(domain).is_some() && !require_dane && !require_sts {
            return Ok(DomainPolicy {
                hosts: plain.mail_hosts(domain)?,
                validated: false,
                mx_secure: false,
                sts: None,
                require_dane: false,
            });
        }
        let secure = match &self.secure {
            Some(resolver) if self.dane != PolicyUse::Off || require_dane => {
                match resolver.dnssec_available() {
                    Ok(works) => works.then_some(resolver),
                    // A DNS server in trouble is named for the domain's own lookup, when
                    // that fails too, not for the DNSSEC check of the root's keys.
                    Err(e) => {
                        plain.mail_hosts(domain)?;
                        return Err(e);
                    }
                }
            }
            _ => None,
        };
        let (hosts, validated, mx_secure) = match secure {
            Some(resolver) => {
                let hosts = resolver.mail_hosts_secured(domain)?;
                let secure = hosts.is_secure();
                (hosts.value, true, secure)
            }
            None => {
                if self.secure.is_some() && self.dane != PolicyUse::Off {
                    note(
                        trace,
                        "DNSSEC answers cannot be validated here: no DANE".into(),
                    );
                }
                (plain.mail_hosts(domain)?, false, false)
            }
        };
        if require_dane && !mx_secure {
            return Err(Error::TempFail(format!(
                "{domain}: DANE is required, but {}",
                if validated {
                    "its MX records are not DNSSEC-signed"
                } else {
                    "DNSSEC answers cannot be validated here"
                }
            )));
        }
        let wants_sts = self.mta_sts != PolicyUse::Off || require_sts;
        let sts = self
            .sts
            .as_ref()
            .filter(|_| wants_sts)
            .map(|(fetcher, cache)| {
                let outcome = mta_sts::policy_for(domain, plain, fetcher, cache, SystemTime::now());
                for n in &outcome.notes {
                    note(trace, format!("MTA-STS for {domain}: {n}"));
                }
                outcome
            });
        let enforced = sts
            .as_ref()
            .and_then(Outcome::label)
            .is_some_and(|l| l == "mta-sts enforce");
        if require_sts && !enforced {
            return Err(Error::TempFail(format!(
                "{domain}: MTA-STS is required, but the domain has no policy in mode enforce"
            )));
        }
        Ok(DomainPolicy {
            hosts,
            validated,
            mx_secure,
            sts: sts.filter(|o| o.policy.is_some()),
            require_dane,
        })
    }

    /// The addresses of exchanger `host` of `domain` and the TLS it gets.
    ///
    /// Errors (the host is skipped for the next): its lookups' own (a bogus TLSA answer
    /// included, RFC 7672 §2.2.3), DANE required and no usable records, or an MTA-STS
    /// policy in mode enforce that does not list it (RFC 8461 §4.1).
    pub fn host(
        &self,
        plain: &Resolver,
        policy: &DomainPolicy,
        host: &MailHost,
        domain: &str,
    ) -> Result<(Vec<IpAddr>, HostTls), Error> {
        let addrs = match self.secure.as_ref().filter(|_| policy.validated) {
            Some(resolver) => {
                let addrs = resolver.addresses_secured(&host.name)?;
                if policy.mx_secure && addrs.is_secure() {
                    let (base, tlsa) = tlsa_base(resolver, &host.name, &addrs.value)?;
                    match DanePolicy::from_tlsa(&tlsa) {
                        DanePolicy::Required(records) => {
                            let names = reference_identifiers(base, &host.name, domain, true);
                            return Ok((
                                addrs.value.ips,
                                HostTls::Dane(DaneRecords { records, names }),
                            ));
                        }
                        // RFC 7672 §2.2: all unusable means TLS as without DANE (then
                        // MTA-STS, if the domain has it).
                        DanePolicy::Unusable(_) | DanePolicy::Absent => {}
                    }
                }
                if policy.require_dane {
                    return Err(Error::TempFail(format!(
                        "{}: DANE is required, but the host has no usable secure TLSA records",
                        host.name
                    )));
                }
                addrs.value.ips
            }
            None => plain.addresses(&host.name)?,
        };
        let check = policy
            .sts
            .as_ref()
            .map_or(MxCheck::Unconstrained, |o| o.check_mx(&host.name));
        let tls = match check {
            MxCheck::Unconstrained => HostTls::Configured("opportunistic"),
            MxCheck::RequireVerifiedTls => HostTls::Enforced,
            MxCheck::Report { matches: true } => HostTls::Configured("mta-sts testing"),
            MxCheck::Report { matches: false } => {
                HostTls::Configured("mta-sts testing (host not in the policy)")
            }
            MxCheck::Refused => {
                return Err(Error::TempFail(format!(
                    "{}: not among the MX hosts the MTA-STS policy of {domain} allows",
                    host.name
                )));
            }
        };
        Ok((addrs, tls))
    }
}

/// The TLSA base domain of exchanger `host` whose addresses are secure, and its records
/// (RFC 7672 §2.2.2, RFC 7671 §7): an alias is looked up at its fully CNAME-expanded name
/// first; where that name has no secure TLSA records, at the name the MX record gave.
/// The TLSA name uses port 25 whatever port is dialled (`--mx-port`).
fn tlsa_base<'h>(
    resolver: &Resolver,
    host: &'h str,
    addrs: &'h Addresses,
) -> Result<(&'h str, Secured<Vec<Tlsa>>), Error> {
    if let Some(expanded) = &addrs.expanded {
        let tlsa = resolver.tlsa(expanded, 25)?;
        if tlsa.is_secure() && !tlsa.value.is_empty() {
            return Ok((expanded, tlsa));
        }
    }
    Ok((host, resolver.tlsa(host, 25)?))
}

fn note(trace: &mut dyn FnMut(&TraceLine), text: String) {
    trace(&TraceLine { client: true, text });
}
