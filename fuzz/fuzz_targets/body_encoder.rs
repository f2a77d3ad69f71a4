//! Whatever the input and however it is split, the encoded body has only CRLF line ends,
//! no line longer than 998 octets, no line that is a lone dot before the end, and exactly
//! one final CRLF.CRLF.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpsend::smtp::BodyEncoder;
use smtpsend::smtp::body::MAX_LINE;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let dot_ends_input = flags & 1 == 1;
    let step = usize::from(flags >> 1).max(1);
    let mut encoder = BodyEncoder::new(dot_ends_input);
    let mut out = Vec::new();
    for piece in rest.chunks(step) {
        encoder.encode(piece, &mut out);
    }
    encoder.finish(&mut out);
    assert!(out.ends_with(b".\r\n"));
    assert!(out.len() == 3 || out.ends_with(b"\r\n.\r\n"));
    for (i, &b) in out.iter().enumerate() {
        if b == b'\r' {
            assert_eq!(out.get(i + 1), Some(&b'\n'), "bare CR at {i}");
        }
        if b == b'\n' {
            assert!(i > 0 && out[i - 1] == b'\r', "bare LF at {i}");
        }
    }
    for line in out.split(|&b| b == b'\n') {
        assert!(line.len() <= MAX_LINE + 1, "a line of {} octets", line.len());
    }
    // The only lone-dot line is the last one.
    let body = &out[..out.len() - 3];
    assert!(!body.starts_with(b".\r\n"));
    assert!(!body.windows(5).any(|w| w == b"\r\n.\r\n"));
});
