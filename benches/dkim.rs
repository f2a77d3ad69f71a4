//! DKIM signing of a 1 GiB message made on the fly (a reader, not a file): throughput, the
//! most heap the signer holds at once, and the process's peak RSS.
//!
//! `cargo bench --bench dkim` (release). `DKIM_BENCH_MIB=N` changes the size. Two bodies: text
//! (words and single spaces, the canonicalizer's slow path) and base64 (76-octet lines with
//! no white space, what a large attachment is), both with bare-LF line ends as cron or PHP
//! hand them over, so the CRLF normalisation runs too.
//! SHA-256 alone over the same number of octets is printed as the ceiling.
//!
//! Exits non-zero when the signer's heap grows past 1 MiB or the peak RSS passes 16 MiB
//! (issue 18's bound for a send).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use ring::digest;
use ring::rand::SystemRandom;
use ring::signature::Ed25519KeyPair;
use smtpsend::message::dkim::{Signer, SignerConfig};

/// Counts the bytes allocated and not yet freed, and the most at any time since the last
/// [`Counting::reset_peak`].
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

impl Counting {
    fn reset_peak() -> usize {
        let live = LIVE.load(Ordering::Relaxed);
        PEAK.store(live, Ordering::Relaxed);
        live
    }
}

/// A message of `size` octets: a header section, then `line` repeated.
struct Generated {
    head: Vec<u8>,
    line: Vec<u8>,
    left: u64,
    at: usize,
}

impl Generated {
    fn new(size: u64, line: &[u8]) -> Generated {
        let head = b"From: Bench <bench@example.org>\nTo: sink@example.net\n\
            Subject: a large message\nDate: Fri, 21 Nov 1997 09:55:06 -0600\n\
            Message-ID: <bench@example.org>\nMIME-Version: 1.0\n\
            Content-Type: text/plain; charset=utf-8\n\n"
            .to_vec();
        Generated {
            left: size,
            head,
            line: line.to_vec(),
            at: 0,
        }
    }
}

impl Read for Generated {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < out.len() && self.left > 0 {
            let src: &[u8] = if !self.head.is_empty() {
                &self.head
            } else {
                &self.line[self.at..]
            };
            let take = src.len().min(out.len() - n).min(self.left as usize);
            out[n..n + take].copy_from_slice(&src[..take]);
            n += take;
            self.left -= take as u64;
            if !self.head.is_empty() {
                self.head.drain(..take);
            } else {
                self.at = (self.at + take) % self.line.len();
            }
        }
        Ok(n)
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let mib: u64 = std::env::var("DKIM_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let size = mib << 20;

    let dir = tempfile::tempdir().expect("temporary directory");
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("Ed25519 key");
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64_encode(pkcs8.as_ref())
    );
    let key = dir.path().join("dkim.pem");
    std::fs::write(&key, pem).expect("write the key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod the key");
    let signer = Signer::load(&SignerConfig {
        key,
        selector: "bench".into(),
        domain: None,
        headers: None,
    })
    .expect("load the key");

    // The ceiling: SHA-256 alone over as many octets, in 64 KiB blocks.
    let block = vec![b'a'; 64 * 1024];
    let started = Instant::now();
    let mut ctx = digest::Context::new(&digest::SHA256);
    for _ in 0..size / block.len() as u64 {
        ctx.update(&block);
    }
    std::hint::black_box(ctx.finish());
    let secs = started.elapsed().as_secs_f64();
    println!(
        "sha256 alone (ceiling)    {mib:>5} MiB  {:>7.1} MB/s",
        size as f64 / secs / 1e6
    );

    let text = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod\n";
    let base64 = [
        b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx".as_ref(),
        b"MjM0\n",
    ]
    .concat();
    let mut failed = false;
    for (name, line) in [
        ("text, LF lines", &text[..]),
        ("base64, LF lines", &base64[..]),
    ] {
        let mut input = Generated::new(size, line);
        let before = Counting::reset_peak();
        let started = Instant::now();
        let field = signer.sign(&mut input, false).expect("sign");
        let secs = started.elapsed().as_secs_f64();
        let held = PEAK.load(Ordering::Relaxed) - before;
        std::hint::black_box(&field);
        println!(
            "{name:<25} {mib:>5} MiB  {:>7.1} MB/s  signer heap peak {:>4} KiB",
            size as f64 / secs / 1e6,
            held / 1024
        );
        if held > 1 << 20 {
            eprintln!("FAIL: the signer held {held} bytes of heap at once");
            failed = true;
        }
    }
    let rss = peak_rss_kib();
    println!("peak RSS of this process: {:.1} MiB", rss as f64 / 1024.0);
    if rss > 16 * 1024 {
        eprintln!("FAIL: peak RSS {rss} KiB is over 16 MiB");
        failed = true;
    }
    if failed {
        std::process::exit(1);
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
