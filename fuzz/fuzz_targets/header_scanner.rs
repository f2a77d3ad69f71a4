//! The header scanner used by -t never panics, and what it returns as recipients is valid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpsend::message::{FromHeader, PrepareOptions, prepare};

fuzz_target!(|data: &[u8]| {
    let opts = PrepareOptions {
        extract_recipients: true,
        add_missing_headers: data.first().is_some_and(|b| b & 1 == 1),
        envelope_from: "fuzz@example.org".into(),
        full_name: Some("Fuzz Tester".into()),
        hostname: "host.example.org".into(),
        from_header: match data.first().map(|b| b >> 1 & 3) {
            Some(1) => FromHeader::Always,
            Some(2) => FromHeader::Never,
            _ => FromHeader::Auto,
        },
        undisclosed_recipients: data.first().is_some_and(|b| b & 8 == 8),
    };
    let mut input = data;
    if let Ok(prepared) = prepare(&mut input, &opts) {
        for r in &prepared.recipients {
            assert!(!r.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0));
        }
    }
});
