//! A DNSSEC-signed DNS tree in the test process, for DANE (RFC 7672): a root zone signed with
//! a key made in the test, whose DNSKEY is written to a trust anchor file for smtpsend, and
//! below it one delegated zone per [`Zone`]: signed (with a DS record in the root), unsigned
//! (the root's NSEC proves there is no DS: an insecure delegation, RFC 4035 §5.2), or signed
//! and then given broken signatures (bogus).
//!
//! One server on loopback answers for every zone: a resolver pointed at it with
//! `--dns-server` finds each zone's records there, and the DS record of a child zone comes
//! from the root, as it would from the parent on the Internet. Keys are ECDSA P-256
//! (algorithm 13); denial of existence is NSEC. As in [`super::dns`], addresses are loopback
//! only.

// Each integration test crate uses a different part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::dnssec::NxProofKind;
use hickory_server::net::runtime::Time;
use hickory_server::proto::dnssec::crypto::EcdsaSigningKey;
use hickory_server::proto::dnssec::rdata::{DNSKEY, DNSSECRData, DS, RRSIG};
use hickory_server::proto::dnssec::{Algorithm, DigestType, DnssecSigner, SigningKey};
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use tempfile::TempDir;

use super::dns::{
    DnsServer, QueryLog, Rec, TTL, fill_zone, fqdn, log_query, send_error, soa_record,
};

/// One zone delegated from the signed root.
#[derive(Clone, Copy, Debug)]
pub struct Zone<'a> {
    origin: &'a str,
    records: &'a [(&'a str, Rec<'a>)],
    signing: Signing<'a>,
}

#[derive(Clone, Copy, Debug)]
enum Signing<'a> {
    Signed,
    Unsigned,
    /// Signed, then every signature over the RRsets owned by this name altered.
    Broken(&'a str),
}

impl<'a> Zone<'a> {
    /// A zone signed with its own key, whose DS record is in the root: its answers are
    /// secure.
    pub fn signed(origin: &'a str, records: &'a [(&'a str, Rec<'a>)]) -> Zone<'a> {
        Zone {
            origin,
            records,
            signing: Signing::Signed,
        }
    }

    /// An unsigned zone under the signed root: its answers are insecure.
    pub fn unsigned(origin: &'a str, records: &'a [(&'a str, Rec<'a>)]) -> Zone<'a> {
        Zone {
            origin,
            records,
            signing: Signing::Unsigned,
        }
    }

    /// A signed zone whose signatures over the records of `name` no longer verify, as if the
    /// records had been changed after signing: answers about `name` are bogus.
    pub fn bogus(origin: &'a str, records: &'a [(&'a str, Rec<'a>)], name: &'a str) -> Zone<'a> {
        Zone {
            origin,
            records,
            signing: Signing::Broken(name),
        }
    }
}

/// The signed tree, served on loopback; stopped when dropped.
pub struct DnssecServer {
    server: DnsServer,
    trust_anchor: PathBuf,
    _dir: TempDir,
}

impl DnssecServer {
    /// Sign the root and `zones` with keys made now, write the root's DNSKEY to a trust
    /// anchor file, and serve them all on 127.0.0.1.
    pub fn start(zones: &[Zone<'_>]) -> DnssecServer {
        let root_name = Name::root();
        let mut root = zone_handler(&root_name, true);
        // The root's own NS RRset, so that the apex looks like one.
        upsert(
            &mut root,
            Record::from_rdata(root_name.clone(), TTL, ns("ns.test")),
        );
        let mut catalog = Catalog::new();
        let mut apexes = Vec::new();
        let mut fail = HashMap::new();
        for zone in zones {
            let origin = fqdn(zone.origin);
            let signed = !matches!(zone.signing, Signing::Unsigned);
            let mut child = zone_handler(&origin, signed);
            upsert(
                &mut child,
                Record::from_rdata(origin.clone(), TTL, ns(&format!("ns.{}", zone.origin))),
            );
            for (name, _) in zone.records {
                assert!(
                    origin.zone_of(&fqdn(name)),
                    "{name} is not in the zone {}",
                    zone.origin
                );
            }
            fill_zone(&mut child, zone.records, &mut fail);
            // The delegation in the root: NS, and for a signed zone the DS of its key.
            upsert(
                &mut root,
                Record::from_rdata(origin.clone(), TTL, ns(&format!("ns.{}", zone.origin))),
            );
            if signed {
                let key = sign_with_new_key(&mut child, &origin);
                let ds = DS::from_key(&key, &origin, DigestType::SHA256).expect("DS record");
                upsert(
                    &mut root,
                    Record::from_rdata(origin.clone(), TTL, RData::DNSSEC(DNSSECRData::DS(ds))),
                );
            }
            if let Signing::Broken(name) = zone.signing {
                break_signatures(&mut child, &fqdn(name));
            }
            let apex = LowerName::new(&origin);
            catalog.upsert(apex.clone(), vec![Arc::new(child)]);
            apexes.push(apex);
        }
        let root_key = sign_with_new_key(&mut root, &root_name);
        let root: Arc<InMemoryZoneHandler> = Arc::new(root);
        catalog.upsert(LowerName::new(&root_name), vec![root.clone()]);
        let mut parent = Catalog::new();
        parent.upsert(LowerName::new(&root_name), vec![root]);

        let dir = tempfile::tempdir().expect("temp dir for the trust anchor");
        let trust_anchor = dir.path().join("root.key");
        std::fs::write(
            &trust_anchor,
            format!(". {TTL} IN DNSKEY {}\n", DNSKEY::from_key(&root_key)),
        )
        .expect("write trust anchor");

        let log = QueryLog::default();
        let handler = Handler {
            catalog,
            parent,
            apexes,
            fail,
            log: log.clone(),
        };
        DnssecServer {
            server: DnsServer::serve(handler, log),
            trust_anchor,
            _dir: dir,
        }
    }

    /// Where to send queries (`Resolver::with_server`, `--dns-server`).
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// A file holding the root's DNSKEY record, for `Resolver::with_dnssec`.
    pub fn trust_anchor(&self) -> &Path {
        &self.trust_anchor
    }

    /// How many queries of type `rtype` asked for `name`.
    pub fn count(&self, name: &str, rtype: RecordType) -> usize {
        self.server.count(name, rtype)
    }

    /// Every query received so far.
    pub fn queries(&self) -> Vec<(String, RecordType)> {
        self.server.queries()
    }
}

/// An empty zone with its SOA; `signed` zones deny with NSEC records.
fn zone_handler(origin: &Name, signed: bool) -> InMemoryZoneHandler {
    let proof = signed.then_some(NxProofKind::Nsec);
    let mut zone =
        InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny, proof);
    upsert(&mut zone, soa_record(origin));
    zone
}

fn upsert(zone: &mut InMemoryZoneHandler, record: Record) {
    let what = format!("{} {}", record.name, record.record_type());
    assert!(zone.upsert_mut(record, 1), "insert {what}");
}

fn ns(host: &str) -> RData {
    RData::NS(hickory_server::proto::rr::rdata::NS(fqdn(host)))
}

/// Make a key for `zone`, publish its DNSKEY there, build the NSEC chain and sign every
/// RRset (a single key signs keys and zone: a CSK). Returns the public key, for the DS record
/// or the trust anchor.
fn sign_with_new_key(
    zone: &mut InMemoryZoneHandler,
    origin: &Name,
) -> hickory_server::proto::dnssec::PublicKeyBuf {
    let algorithm = Algorithm::ECDSAP256SHA256;
    let pkcs8 = EcdsaSigningKey::generate_pkcs8(algorithm).expect("generate zone key");
    let key = EcdsaSigningKey::from_pkcs8(&pkcs8, algorithm).expect("load zone key");
    let public = key.to_public_key().expect("public zone key");
    let signer = DnssecSigner::new(
        DNSKEY::from_key(&public),
        Box::new(key),
        origin.clone(),
        // Signatures valid from now for a day: longer than any test.
        Duration::from_secs(86400),
    );
    zone.add_zone_signing_key_mut(signer)
        .expect("add zone signing key");
    zone.secure_zone_mut().expect("sign zone");
    public
}

/// Flip a bit in every signature over the RRsets owned by `name` (the zone's keys and its
/// denial records are left alone), so that a validator finds them bogus (RFC 4035 §5.3).
fn break_signatures(zone: &mut InMemoryZoneHandler, name: &Name) {
    let owner = LowerName::new(name);
    let mut broken = 0;
    for (key, rrset) in zone.records_get_mut().iter_mut() {
        if key.name != owner
            || matches!(
                key.record_type,
                RecordType::DNSKEY | RecordType::NSEC | RecordType::NSEC3 | RecordType::SOA
            )
        {
            continue;
        }
        let mut altered = (**rrset).clone();
        let sigs: Vec<Record> = altered
            .rrsigs()
            .iter()
            .map(|r| {
                let RData::DNSSEC(DNSSECRData::RRSIG(rrsig)) = &r.data else {
                    panic!("an RRSIG that is not one: {r}");
                };
                let mut sig = rrsig.sig().to_vec();
                let last = sig.last_mut().expect("a signature has bytes");
                *last ^= 1;
                let data = RRSIG::from_sig(rrsig.input().clone(), sig);
                Record::from_rdata(
                    r.name.clone(),
                    r.ttl,
                    RData::DNSSEC(DNSSECRData::RRSIG(data)),
                )
            })
            .collect();
        broken += sigs.len();
        altered.set_rrsigs(sigs);
        *rrset = Arc::new(altered);
    }
    assert!(broken > 0, "no signature to break at {name}");
}

/// The catalog of every zone, except that a DS query for a delegated zone's apex is the
/// root's to answer (RFC 4035 §3.1.4.1), behind the query log and the chosen failures.
struct Handler {
    catalog: Catalog,
    /// The root zone alone.
    parent: Catalog,
    apexes: Vec<LowerName>,
    fail: HashMap<LowerName, ResponseCode>,
    log: QueryLog,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        let Some(name) = log_query(&self.log, request) else {
            return self
                .catalog
                .handle_request::<R, T>(request, response_handle)
                .await;
        };
        if let Some(&code) = self.fail.get(&name) {
            return send_error(request, code, response_handle).await;
        }
        let ds_at_cut = request
            .request_info()
            .is_ok_and(|info| info.query.query_type() == RecordType::DS)
            && self.apexes.contains(&name);
        let catalog = if ds_at_cut {
            &self.parent
        } else {
            &self.catalog
        };
        catalog
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}
