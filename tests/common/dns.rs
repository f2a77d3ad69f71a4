//! An authoritative DNS server in the test process, so direct delivery can be tested without
//! touching the machine's resolver or the Internet.
//!
//! [`DnsServer::start`] serves one zone, the root, built from a list of `(name, record)`
//! pairs: every name not listed is NXDOMAIN, a listed name without the asked type is NODATA.
//! A name can instead be made to answer SERVFAIL or REFUSED. [`SilentServer`] never answers.
//! Addresses are limited to loopback so that a test which connects to what it resolved can
//! only ever reach this machine.

// Each integration test crate uses a different part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::rdata;
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, MessageResponseBuilder, ZoneType};

/// One entry of a test zone. Names may be written with or without the trailing dot.
#[derive(Clone, Copy, Debug)]
pub enum Rec<'a> {
    /// `MX preference exchange`; `Mx(0, ".")` is the null MX of RFC 7505.
    Mx(u16, &'a str),
    /// An IPv4 address in 127.0.0.0/8.
    A(&'a str),
    /// An IPv6 address: `::1`.
    Aaaa(&'a str),
    /// An alias.
    Cname(&'a str),
    /// Text: a name that exists without an address or an MX, or a record such as a DKIM
    /// key or an `_mta-sts` policy record. Text longer than a character-string's 255
    /// octets is split over several (RFC 1035 §3.3.14), which readers join (RFC 6376
    /// §3.6.2.2).
    Txt(&'a str),
    /// One TXT record of several character-strings, which readers such as RFC 8461 §3.1
    /// concatenate.
    TxtParts(&'a [&'a str]),
    /// `TLSA usage selector matching data` (RFC 6698 §2.1), at `_25._tcp.HOST`.
    Tlsa(u8, u8, u8, &'a [u8]),
    /// Every query for this name answers SERVFAIL.
    ServFail,
    /// Every query for this name answers REFUSED.
    Refused,
}

pub use Rec::*;

pub const TTL: u32 = 300;

/// Every query a server received, as (lower-case A-label name without the trailing dot, type).
pub type QueryLog = Arc<Mutex<Vec<(String, RecordType)>>>;

/// The running server; stopped when dropped.
pub struct DnsServer {
    addr: SocketAddr,
    log: QueryLog,
    stop: Option<Box<dyn FnOnce() + Send>>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Serve `zone` on 127.0.0.1, UDP and TCP on the same random port.
    pub fn start(zone: &[(&str, Rec<'_>)]) -> DnsServer {
        let (catalog, fail) = build_catalog(zone);
        let log = QueryLog::default();
        let handler = Handler {
            catalog,
            fail,
            log: log.clone(),
        };
        DnsServer::serve(handler, log)
    }

    /// Serve `handler` on 127.0.0.1, UDP and TCP on the same random port; it records the
    /// queries it receives in `log` (see [`log_query`]).
    pub fn serve(handler: impl RequestHandler, log: QueryLog) -> DnsServer {
        let (udp, tcp) = bind_pair();
        let addr = udp.local_addr().expect("UDP address");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("test DNS server runtime");
            runtime.block_on(async move {
                let mut server = Server::new(handler);
                server.register_socket(
                    tokio::net::UdpSocket::from_std(udp).expect("register UDP socket"),
                );
                server.register_listener(
                    tokio::net::TcpListener::from_std(tcp).expect("register TCP listener"),
                    Duration::from_secs(5),
                    32,
                );
                let token = server.shutdown_token().clone();
                let stop: Box<dyn FnOnce() + Send> = Box::new(move || token.cancel());
                ready_tx.send(stop).expect("report readiness");
                let _ = server.block_until_done().await;
            });
        });
        let stop = ready_rx.recv().expect("test DNS server started");
        DnsServer {
            addr,
            log,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Where to send queries (`Resolver::with_server`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every query received so far, as (lower-case A-label name without the trailing dot, type).
    pub fn queries(&self) -> Vec<(String, RecordType)> {
        self.log.lock().expect("query log").clone()
    }

    /// How many queries of type `rtype` asked for `name`.
    pub fn count(&self, name: &str, rtype: RecordType) -> usize {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.queries()
            .iter()
            .filter(|(n, t)| *n == name && *t == rtype)
            .count()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A UDP socket on 127.0.0.1 that receives queries and never answers: the timeout case.
pub struct SilentServer {
    socket: UdpSocket,
}

impl SilentServer {
    pub fn start() -> SilentServer {
        SilentServer {
            socket: UdpSocket::bind("127.0.0.1:0").expect("bind silent UDP socket"),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("silent server address")
    }
}

/// A UDP socket and a TCP listener on the same free port of 127.0.0.1, non-blocking for tokio.
fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..20 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
        let port = udp.local_addr().expect("UDP address").port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)) {
            udp.set_nonblocking(true).expect("non-blocking UDP");
            tcp.set_nonblocking(true).expect("non-blocking TCP");
            return (udp, tcp);
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1");
}

pub fn fqdn(name: &str) -> Name {
    let mut n = Name::from_utf8(name).unwrap_or_else(|e| panic!("test zone name {name:?}: {e}"));
    n.set_fqdn(true);
    n
}

fn loopback(ip: IpAddr) -> IpAddr {
    assert!(
        ip.is_loopback(),
        "test zones hold loopback addresses only, not {ip}"
    );
    ip
}

/// The record data of `rec`, or the error its name answers with instead.
pub fn record_data(rec: Rec<'_>) -> Result<RData, ResponseCode> {
    Ok(match rec {
        Mx(preference, exchange) => RData::MX(rdata::MX::new(preference, fqdn(exchange))),
        A(ip) => match loopback(ip.parse().expect("IPv4 address")) {
            IpAddr::V4(v4) => RData::A(rdata::A(v4)),
            IpAddr::V6(_) => panic!("A record with an IPv6 address: {ip}"),
        },
        Aaaa(ip) => match loopback(ip.parse().expect("IPv6 address")) {
            IpAddr::V6(v6) => RData::AAAA(rdata::AAAA(v6)),
            IpAddr::V4(_) => panic!("AAAA record with an IPv4 address: {ip}"),
        },
        Cname(target) => RData::CNAME(rdata::CNAME(fqdn(target))),
        Txt("") => RData::TXT(rdata::TXT::new(vec![String::new()])),
        Txt(text) => RData::TXT(rdata::TXT::new(
            text.as_bytes()
                .chunks(255)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect(),
        )),
        TxtParts(parts) => RData::TXT(rdata::TXT::new(
            parts.iter().map(|p| p.to_string()).collect(),
        )),
        Tlsa(usage, selector, matching, data) => RData::TLSA(rdata::TLSA::new(
            usage.into(),
            selector.into(),
            matching.into(),
            data.to_vec(),
        )),
        ServFail => return Err(ResponseCode::ServFail),
        Refused => return Err(ResponseCode::Refused),
    })
}

/// The SOA of a test zone; its minimum is the TTL of denials.
pub fn soa_record(origin: &Name) -> Record {
    let soa = rdata::SOA::new(
        fqdn("ns.test"),
        fqdn("hostmaster.test"),
        1,
        3600,
        600,
        86400,
        60,
    );
    Record::from_rdata(origin.clone(), TTL, RData::SOA(soa))
}

/// Add `zone`'s records to `handler`; the names that answer with an error go to `fail`.
pub fn fill_zone(
    handler: &mut InMemoryZoneHandler,
    zone: &[(&str, Rec<'_>)],
    fail: &mut HashMap<LowerName, ResponseCode>,
) {
    for &(name, rec) in zone {
        let owner = fqdn(name);
        match record_data(rec) {
            Ok(data) => assert!(
                handler.upsert_mut(Record::from_rdata(owner, TTL, data), 1),
                "insert test record {name}"
            ),
            Err(code) => {
                fail.insert(LowerName::new(&owner), code);
            }
        }
    }
}

/// The root zone holding `zone`, and the names that answer with an error instead.
fn build_catalog(zone: &[(&str, Rec<'_>)]) -> (Catalog, HashMap<LowerName, ResponseCode>) {
    let root = Name::root();
    let mut handler: InMemoryZoneHandler =
        InMemoryZoneHandler::empty(root.clone(), ZoneType::Primary, AxfrPolicy::Deny, None);
    assert!(handler.upsert_mut(soa_record(&root), 1), "insert SOA");
    let mut fail = HashMap::new();
    fill_zone(&mut handler, zone, &mut fail);
    let mut catalog = Catalog::new();
    catalog.upsert(LowerName::new(&root), vec![Arc::new(handler)]);
    (catalog, fail)
}

/// Record `request`'s question in `log`; its name, unless the request is malformed.
pub fn log_query(log: &QueryLog, request: &Request) -> Option<LowerName> {
    let info = request.request_info().ok()?;
    let name = info.query.name();
    let ascii = Name::from(name).to_ascii();
    let shown = ascii.trim_end_matches('.').to_ascii_lowercase();
    log.lock()
        .expect("query log")
        .push((shown, info.query.query_type()));
    Some(name.clone())
}

/// Answer `request` with `code`.
pub async fn send_error<R: ResponseHandler>(
    request: &Request,
    code: ResponseCode,
    mut response_handle: R,
) -> ResponseInfo {
    let response =
        MessageResponseBuilder::from_message_request(request).error_msg(&request.metadata, code);
    response_handle
        .send_response(response)
        .await
        .expect("send test DNS error response")
}

/// The catalog, behind a log of queries and the chosen failures.
struct Handler {
    catalog: Catalog,
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
        let failure = log_query(&self.log, request).and_then(|name| self.fail.get(&name).copied());
        match failure {
            Some(code) => send_error(request, code, response_handle).await,
            None => {
                self.catalog
                    .handle_request::<R, T>(request, response_handle)
                    .await
            }
        }
    }
}
