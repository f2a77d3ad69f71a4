//! Throughput of the reply parser and the body encoder, each beside a plain copy of the
//! same buffer in the same run, so the ratio (not the absolute time) is what to read.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use smtpsend::smtp::{BodyEncoder, ReplyParser};

/// A message body like the bench's: 76-character lines, every tenth starting with a dot,
/// with bare LF line ends so the encoder has work to do.
fn body(size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 80);
    let mut i = 0usize;
    while out.len() < size {
        if i.is_multiple_of(10) {
            out.push(b'.');
        }
        out.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, 75));
        out.push(b'\n');
        i += 1;
    }
    out.truncate(size);
    out
}

/// Many EHLO-sized multi-line replies.
fn replies(count: usize) -> Vec<u8> {
    let one = b"250-mail.example.org Hello client.example.org [192.0.2.1]\r\n\
250-PIPELINING\r\n250-SIZE 52428800\r\n250-ETRN\r\n250-STARTTLS\r\n\
250-AUTH PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n\
250-SMTPUTF8\r\n250 CHUNKING\r\n";
    one.repeat(count)
}

fn encoder(c: &mut Criterion) {
    let input = body(8 << 20);
    let mut g = c.benchmark_group("body encoder, 8 MiB");
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.bench_function("memcpy (ceiling)", |b| {
        let mut out = Vec::with_capacity(input.len() * 2);
        b.iter(|| {
            out.clear();
            for block in input.chunks(128 * 1024) {
                out.extend_from_slice(black_box(block));
            }
            black_box(out.len())
        })
    });
    g.bench_function("BodyEncoder (CRLF + dot-stuffing)", |b| {
        let mut out = Vec::with_capacity(input.len() * 2);
        b.iter(|| {
            out.clear();
            let mut enc = BodyEncoder::new(false);
            for block in input.chunks(128 * 1024) {
                enc.encode(black_box(block), &mut out);
            }
            enc.finish(&mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

fn parser(c: &mut Criterion) {
    let input = replies(4096);
    let mut g = c.benchmark_group("reply parser, 4096 EHLO replies");
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.bench_function("memcpy (ceiling)", |b| {
        let mut out = Vec::with_capacity(input.len());
        b.iter(|| {
            out.clear();
            for block in input.chunks(16 * 1024) {
                out.extend_from_slice(black_box(block));
            }
            black_box(out.len())
        })
    });
    g.bench_function("ReplyParser", |b| {
        b.iter(|| {
            let mut p = ReplyParser::new();
            let mut n = 0;
            for block in input.chunks(16 * 1024) {
                p.push(black_box(block));
                while let Ok(Some(r)) = p.next_reply() {
                    n += r.lines.len();
                }
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, encoder, parser);
criterion_main!(benches);
