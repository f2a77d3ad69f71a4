//! The diagnostic probe (`--serverinfo`, `--verify`, `--expn`, `--etrn`) fed whatever a
//! hostile server sends, split anywhere, with STARTTLS accepted or not. It must never panic,
//! never write a line that is not one whole command, never answer a query it did not ask,
//! and say nothing after it has finished.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpsend::smtp::probe::{Probe, ProbeEvent, ProbeOptions, Query};
use smtpsend::smtp::{Engine, TlsPolicy};

/// A greeting and an EHLO reply that offer STARTTLS, so that most inputs reach the TLS
/// step and the queries.
const FRIENDLY: &[u8] = b"220 mx ESMTP\r\n250-mx\r\n250-STARTTLS\r\n250 HELP\r\n";

fuzz_target!(|data: &[u8]| {
    let Some((&[split, flags], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let step = usize::from(split).max(1);
    let mut input = Vec::new();
    if flags & 1 == 1 {
        input.extend_from_slice(FRIENDLY);
    }
    input.extend_from_slice(rest);
    let tls = match flags >> 1 & 3 {
        0 => TlsPolicy::Off,
        1 => TlsPolicy::Opportunistic,
        _ => TlsPolicy::Required,
    };
    let queries = vec![
        Query::Vrfy("postmaster".into()),
        Query::Expn("staff".into()),
        Query::Etrn("@example.org".into()),
        Query::Noop,
        Query::Help(None),
    ];
    let asked = queries.len();
    let mut p = Probe::new(ProbeOptions {
        ehlo_name: "client.example".into(),
        tls,
        implicit_tls: flags & 8 == 8,
        queries,
        trace: flags & 16 == 16,
    });
    let mut ended = false;
    let mut pieces = input.chunks(step);
    let mut eof = false;
    loop {
        while let Some(out) = p.poll_transmit() {
            // Whole lines only, each one command of printable ASCII: nothing the server
            // sent can have become part of what the probe writes.
            assert!(out.ends_with(b"\r\n"), "a partial line: {out:?}");
            for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let line = line.strip_suffix(b"\r").expect("CR LF line ends");
                assert!(line.iter().all(|b| (0x20..0x7f).contains(b)), "{line:?}");
            }
            let n = out.len();
            p.consume(n);
        }
        while p.poll_trace().is_some() {}
        while let Some(event) = p.poll_event() {
            assert!(!ended, "an event after the probe ended: {event:?}");
            match event {
                // The handshake "succeeds": what follows is read as inside TLS.
                ProbeEvent::StartTls => p.tls_established(true),
                ProbeEvent::Reply(..) => {}
                ProbeEvent::Done(report) => {
                    assert!(report.answers.len() <= asked, "answers to queries never asked");
                    ended = true;
                }
                ProbeEvent::Failed(_) => ended = true,
            }
        }
        if ended && p.wants_input() {
            panic!("the probe ended but still waits for a reply");
        }
        if ended || p.is_finished() {
            return;
        }
        match pieces.next() {
            Some(piece) => p.handle_input(piece),
            None if eof => return,
            None => {
                p.handle_eof();
                eof = true;
            }
        }
    }
});
