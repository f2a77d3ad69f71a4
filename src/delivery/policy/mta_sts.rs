//! MTA-STS (RFC 8461): whether a recipient domain asks for TLS to its MX hosts, and which
//! hosts those are.
//!
//! [`policy_for`] is the one entry point: the `_mta-sts` TXT record ([`record`]), the
//! policy fetched over HTTPS ([`fetch`], [`http`]) when the record's id is new, parsed
//! ([`policy`]) and kept in a per-domain [`cache`]. Its [`Outcome`] then answers, for each
//! MX host, what delivery must do ([`Outcome::check_mx`]).
//!
//! Nothing here fails a delivery by itself: per §3.3 and §5.1 every failure on the way
//! (DNS, HTTPS, a bad policy, an unwritable cache) means "no policy", or the cached one
//! while it is valid, with a note for the log. SMTP TLS reporting (RFC 8460) is not done.

pub mod cache;
pub mod fetch;
pub mod http;
pub mod policy;
pub mod record;

use std::time::{SystemTime, UNIX_EPOCH};

pub use cache::{Cache, CacheError, Entry};
pub use fetch::{FetchError, FetchErrorKind, FetchSettings, Fetcher};
pub use policy::{Mode, MxCheck, MxPattern, Policy, PolicyError};
pub use record::{Record, RecordError};

use crate::delivery::resolve::{Resolver, address_literal, ascii_domain};

/// Where the policy in an [`Outcome`] came from, or why there is none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// No usable `_mta-sts` record (none, an invalid one, or the lookup failed) and
    /// nothing cached: the domain is treated as not using MTA-STS (§3.1).
    NotAnnounced,
    /// A record, but no policy could be fetched and nothing is cached: delivery goes on
    /// as without MTA-STS (§3.3); the notes say why.
    Unavailable,
    /// Fetched now: nothing was cached, the cached one had expired, the id changed, or
    /// the cached one was past half its life (a proactive refresh).
    Fetched,
    /// From the cache: the record's id is the one it was fetched under. A refresh that
    /// failed is in the notes.
    Cached,
    /// From the cache although the record is gone or unusable, the DNS lookup failed, or
    /// a new policy could not be fetched: a valid cached policy must still be applied
    /// (§3.3, §5.1).
    CachedFallback,
}

/// The policy that applies to a domain now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub policy: Option<Policy>,
    /// The record id the policy was fetched under.
    pub id: Option<String>,
    pub source: Source,
    /// What went wrong on the way, one line each, for the log: a fetch that failed, a
    /// cache that could not be read or written, an expired policy dropped.
    pub notes: Vec<String>,
}

impl Outcome {
    fn none(source: Source, notes: Vec<String>) -> Outcome {
        Outcome {
            policy: None,
            id: None,
            source,
            notes,
        }
    }

    /// What delivery to the MX host `host` must do; [`MxCheck::Unconstrained`] without a
    /// policy.
    pub fn check_mx(&self, host: &str) -> MxCheck {
        match &self.policy {
            Some(p) => p.check_mx(host),
            None => MxCheck::Unconstrained,
        }
    }

    /// For the log: `mta-sts enforce`, `mta-sts testing`, `mta-sts none`; `None` without
    /// a policy.
    pub fn label(&self) -> Option<&'static str> {
        self.policy.as_ref().map(Policy::label)
    }
}

/// The MTA-STS policy of `domain` (the recipient domain, any case, U- or A-labels) at
/// `now`, following §5.1:
///
/// 1. A cached policy that has outlived its `max_age` is dropped.
/// 2. The `_mta-sts` TXT record is looked up on every call (the "optional" check of §5.1
///    step 1), so a changed id is seen at once. No usable record: the valid cached policy
///    if any ([`Source::CachedFallback`]), else none.
/// 3. Same id as the cached policy: that policy ([`Source::Cached`]); past half its
///    `max_age` it is fetched again first (§3.3's proactive refresh), and kept if that
///    fails. Otherwise the policy is fetched, parsed and cached for its `max_age`
///    ([`Source::Fetched`]); if that fails, the valid cached policy
///    ([`Source::CachedFallback`]), else none ([`Source::Unavailable`]).
///
/// An address literal has no policy.
pub fn policy_for(
    domain: &str,
    resolver: &Resolver,
    fetcher: &Fetcher,
    cache: &Cache,
    now: SystemTime,
) -> Outcome {
    let mut notes = Vec::new();
    let Some(domain) = policy_domain(domain, &mut notes) else {
        return Outcome::none(Source::NotAnnounced, notes);
    };
    let now = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let cached = valid_cached(&domain, cache, now, &mut notes);
    let record = match announced(&domain, resolver) {
        Ok(record) => record,
        Err(missing) => return without_record(cached, missing, notes),
    };
    let refreshing = match &cached {
        Some((entry, policy)) if entry.id == record.id => {
            if !entry.wants_refresh_at(now) {
                return Outcome {
                    policy: Some(policy.clone()),
                    id: Some(record.id),
                    source: Source::Cached,
                    notes,
                };
            }
            true
        }
        _ => false,
    };
    let (text, policy) = match fetch_policy(&domain, resolver, fetcher) {
        Ok(got) => got,
        Err(why) => return fetch_failed(cached, why, refreshing, notes),
    };
    store(cache, &domain, &record.id, now, text, &policy, &mut notes);
    Outcome {
        policy: Some(policy),
        id: Some(record.id),
        source: Source::Fetched,
        notes,
    }
}

/// The A-label name the `_mta-sts` record and the policy host are under; `None` for an
/// address literal, which has no policy, and for a name that is not a domain (noted).
fn policy_domain(domain: &str, notes: &mut Vec<String>) -> Option<String> {
    if address_literal(domain).is_some() {
        return None;
    }
    match ascii_domain(domain) {
        Ok(d) => Some(d),
        Err(e) => {
            notes.push(format!("mta-sts: {e}"));
            None
        }
    }
}

/// Why there is no usable `_mta-sts` record, as two notes for the log: the one when
/// nothing is cached (`None` when there is simply no record, which is no fault), and the
/// one when a cached policy is applied instead.
struct NoRecord {
    alone: Option<String>,
    with_cache: String,
}

/// The domain's `_mta-sts` TXT record (§3.1), asked for on every call so that a changed
/// id is seen at once.
fn announced(domain: &str, resolver: &Resolver) -> Result<Record, NoRecord> {
    let txt_name = format!("_mta-sts.{domain}");
    let records = match resolver.txt(&txt_name) {
        Ok(records) => records,
        Err(e) => {
            let why = format!("mta-sts: {e}");
            return Err(NoRecord {
                alone: Some(why.clone()),
                with_cache: why,
            });
        }
    };
    match record::select(&records) {
        Ok(Some(record)) => Ok(record),
        Ok(None) => Err(NoRecord {
            alone: None,
            with_cache: format!(
                "mta-sts: {txt_name}: no STSv1 TXT record; the cached policy stays"
            ),
        }),
        Err(e) => Err(NoRecord {
            alone: Some(format!("mta-sts: {txt_name}: {e}")),
            with_cache: format!("mta-sts: {txt_name}: {e}; the cached policy stays"),
        }),
    }
}

/// No usable record: a valid cached policy must still be applied (§3.3, §5.1); without
/// one the domain is treated as not using MTA-STS (§3.1).
fn without_record(
    cached: Option<(Entry, Policy)>,
    missing: NoRecord,
    mut notes: Vec<String>,
) -> Outcome {
    match cached {
        Some(cached) => fallback(Some(cached), missing.with_cache, notes),
        None => {
            notes.extend(missing.alone);
            Outcome::none(Source::NotAnnounced, notes)
        }
    }
}

/// The policy fetched over HTTPS (§3.3) and parsed, with its text for the cache; or why
/// not, for the log.
fn fetch_policy(
    domain: &str,
    resolver: &Resolver,
    fetcher: &Fetcher,
) -> Result<(String, Policy), String> {
    fetcher
        .fetch(domain, resolver)
        .map_err(|e| format!("mta-sts: {e}"))
        .and_then(|text| {
            Policy::parse(&text)
                .map(|p| (text, p))
                .map_err(|e| format!("mta-sts: mta-sts.{domain}: {e}"))
        })
}

/// A fetch that failed: the valid cached policy stays (§3.3). When the record still names
/// it and only the proactive refresh failed, it is current ([`Source::Cached`]), only not
/// renewed.
fn fetch_failed(
    cached: Option<(Entry, Policy)>,
    why: String,
    refreshing: bool,
    notes: Vec<String>,
) -> Outcome {
    if refreshing {
        let mut outcome = fallback(cached, format!("{why}; the cached policy stays"), notes);
        outcome.source = Source::Cached;
        return outcome;
    }
    if cached.is_some() {
        return fallback(cached, format!("{why}; the cached policy stays"), notes);
    }
    fallback(None, why, notes)
}

/// What applies when the current policy cannot be had: the valid cached one
/// ([`Source::CachedFallback`]), else none ([`Source::Unavailable`]); `why` is noted.
fn fallback(cached: Option<(Entry, Policy)>, why: String, mut notes: Vec<String>) -> Outcome {
    notes.push(why);
    match cached {
        Some((entry, policy)) => Outcome {
            policy: Some(policy),
            id: Some(entry.id),
            source: Source::CachedFallback,
            notes,
        },
        None => Outcome::none(Source::Unavailable, notes),
    }
}

/// Keeps a fetched policy under its record id for its `max_age` (§5.1). A cache that
/// cannot be written costs only the caching, so it is a note.
fn store(
    cache: &Cache,
    domain: &str,
    id: &str,
    now: u64,
    text: String,
    policy: &Policy,
    notes: &mut Vec<String>,
) {
    let stored = if policy.max_age == 0 {
        // Valid for no time at all: nothing to keep, and the old one is superseded.
        cache.remove(domain)
    } else {
        cache.store(
            domain,
            &Entry {
                id: id.to_string(),
                fetched_at: now,
                expires_at: now.saturating_add(u64::from(policy.max_age)),
                policy: text,
            },
        )
    };
    if let Err(e) = stored {
        notes.push(e.to_string());
    }
}

/// The cached policy of `domain` if it is still valid at `now`; an expired or unusable
/// one is removed, and a note says so.
fn valid_cached(
    domain: &str,
    cache: &Cache,
    now: u64,
    notes: &mut Vec<String>,
) -> Option<(Entry, Policy)> {
    let entry = match cache.load(domain) {
        Ok(Some(entry)) => entry,
        Ok(None) => return None,
        Err(e) => {
            notes.push(e.to_string());
            return None;
        }
    };
    let drop = |why: String, notes: &mut Vec<String>| {
        notes.push(why);
        if let Err(e) = cache.remove(domain) {
            notes.push(e.to_string());
        }
    };
    if !entry.is_valid_at(now) {
        drop(
            format!("mta-sts: {domain}: the cached policy expired; dropped"),
            notes,
        );
        return None;
    }
    match Policy::parse(&entry.policy) {
        Ok(policy) => Some((entry, policy)),
        Err(e) => {
            drop(
                format!("mta-sts: {domain}: the cached policy is unusable ({e}); dropped"),
                notes,
            );
            None
        }
    }
}
