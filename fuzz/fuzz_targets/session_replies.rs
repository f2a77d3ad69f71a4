//! A kept-open session with transactions pipelined behind each other (a queue run), fed
//! whatever a hostile server sends, split anywhere. It must never panic, never report an
//! outcome for a transaction it did not start, never report a recipient that was not in
//! that transaction's envelope, and say nothing after it has failed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpsend::smtp::{Engine, Envelope, Event, MessageInfo, Session, SessionOptions, TlsPolicy};

/// A greeting and an EHLO reply that offer pipelining and chunking, so that most inputs
/// reach the states where transactions are staged.
const FRIENDLY: &[u8] =
    b"220 mx ESMTP\r\n250-mx\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 SIZE 100000\r\n";

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
    let chunked = flags & 2 == 2;
    let jobs: Vec<Envelope> = [
        &["a@x.example", "b@x.example"][..],
        &["c@x.example"],
        &["d@x.example"],
    ]
    .iter()
    .map(|r| Envelope {
        from: "s@y.example".into(),
        recipients: r.iter().map(|s| s.to_string()).collect(),
    })
    .collect();
    let info = || MessageInfo {
        size: Some(4),
        chunk: chunked.then(|| b"hi\r\n".to_vec()),
        ..MessageInfo::default()
    };
    let mut s = Session::new(
        jobs[0].clone(),
        SessionOptions {
            tls: TlsPolicy::Off,
            keep_open: true,
            chunk: info().chunk,
            size: Some(4),
            ..SessionOptions::default()
        },
    );
    // The envelopes whose transactions were written, in order; outcomes come in this order.
    let mut started = vec![0usize];
    let mut next = 1;
    let mut outcomes = 0;
    let mut failed = false;
    let mut pieces = input.chunks(step);
    let mut eof = false;
    loop {
        while s.can_stage() && next < jobs.len() {
            if s.stage_transaction(jobs[next].clone(), info()).is_ok() {
                started.push(next);
            }
            next += 1;
        }
        while let Some(out) = s.poll_transmit() {
            let n = out.len();
            s.consume(n);
        }
        while let Some(event) = s.poll_event() {
            assert!(!failed, "an event after the session failed: {event:?}");
            match event {
                Event::SendBody => s.body_sent(),
                Event::StartTls => panic!("STARTTLS with TLS off"),
                Event::Done(report) => {
                    let job = started
                        .get(outcomes)
                        .expect("an outcome for a job never started");
                    assert!(
                        report
                            .accepted
                            .iter()
                            .all(|r| jobs[*job].recipients.contains(r))
                    );
                    outcomes += 1;
                }
                Event::TransactionFailed(_) => {
                    assert!(
                        outcomes < started.len(),
                        "an outcome for a job never started"
                    );
                    outcomes += 1;
                }
                Event::Failed(_) => failed = true,
                Event::Reply(..) => panic!("a reply event outside a rehearsal"),
            }
            if s.is_idle() {
                if next < jobs.len() {
                    s.start_transaction(jobs[next].clone(), info());
                    started.push(next);
                    next += 1;
                } else {
                    s.quit();
                }
            }
        }
        if failed || s.is_finished() {
            return;
        }
        match pieces.next() {
            Some(piece) => s.handle_input(piece),
            None if eof => return,
            None => {
                s.handle_eof();
                eof = true;
            }
        }
    }
});
