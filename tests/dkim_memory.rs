//! The DKIM signer's memory does not grow with the message (issue 18: a 1 GiB message is
//! signed in the RSS an unsigned send needs). This binary counts every heap allocation, so
//! it holds this one test alone; `benches/dkim.rs` does the same at 1 GiB in release mode
//! and reports the throughput. Here the sizes stay small enough for a debug build: a
//! signer that kept the body would show it at 64 MiB as plainly as at 1 GiB.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::Ed25519KeyPair;
use smtpsend::message::dkim::{Signer, SignerConfig};

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

/// `head`, then `line` again and again up to `size` octets in all: a message that exists
/// only as a reader.
struct Generated {
    head: Vec<u8>,
    line: &'static [u8],
    left: usize,
    at: usize,
}

impl Read for Generated {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < out.len() && self.left > 0 {
            let src = if self.head.is_empty() {
                &self.line[self.at..]
            } else {
                &self.head[..]
            };
            let take = src.len().min(out.len() - n).min(self.left);
            out[n..n + take].copy_from_slice(&src[..take]);
            n += take;
            self.left -= take;
            if self.head.is_empty() {
                self.at = (self.at + take) % self.line.len();
            } else {
                self.head.drain(..take);
            }
        }
        Ok(n)
    }
}

/// The most heap in use at once while `signer` signs `input`, above what was in use before.
fn heap_while_signing(signer: &Signer, mut input: Generated) -> usize {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let field = signer.sign(&mut input, false).expect("sign");
    assert!(field.starts_with("DKIM-Signature: v=1;"));
    PEAK.load(Ordering::Relaxed) - before
}

fn message(size: usize, filler: Vec<u8>) -> Generated {
    let mut head = b"From: a@example.org\nTo: b@example.net\nSubject: big\n".to_vec();
    head.extend_from_slice(&filler);
    head.extend_from_slice(b"\n");
    Generated {
        head,
        line: b"Lorem ipsum dolor sit amet,  consectetur\tadipiscing elit, sed do  \n",
        left: size,
        at: 0,
    }
}

#[test]
fn the_signer_holds_the_same_heap_for_4_mib_and_64_mib() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("key");
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
    );
    let key = dir.path().join("dkim.pem");
    std::fs::write(&key, pem).expect("write the key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let signer = Signer::load(&SignerConfig {
        key,
        selector: "s".into(),
        domain: None,
        headers: None,
    })
    .expect("load the key");

    // A first signing pays for what is made once (lazily initialised tables): not counted.
    heap_while_signing(&signer, message(1024, Vec::new()));
    let small = heap_while_signing(&signer, message(4 << 20, Vec::new()));
    let large = heap_while_signing(&signer, message(64 << 20, Vec::new()));
    eprintln!("heap held while signing: 4 MiB message {small} B, 64 MiB message {large} B");
    // The input block, its encoded copy, the hash buffer: fixed sizes, whatever the body.
    // 60 MiB more body may not cost a single KiB more heap.
    assert!(large <= small + 1024, "the heap grew with the body");
    assert!(
        large < 512 * 1024,
        "{large} bytes of heap for a small header section"
    );

    // The header section is held until the body starts, and is refused past 1 MiB, so a
    // largest one still leaves the heap within a few MiB.
    // Lines within 998 octets (longer ones would be folded), counted with their CRLF.
    let fields = "X-Filler: ".to_string() + &"y".repeat(900) + "\n";
    let filler = fields
        .repeat((1 << 20) / (fields.len() + 1) - 1)
        .into_bytes();
    let big_head = heap_while_signing(&signer, message(4 << 20, filler));
    eprintln!("with a header section of almost 1 MiB: {big_head} B");
    assert!(big_head < 3 << 20, "{big_head} bytes of heap");
}
