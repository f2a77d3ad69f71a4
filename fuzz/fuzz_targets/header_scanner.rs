//! The header scanner used by -t never panics, and what it returns as recipients is valid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpsend::message::{PrepareOptions, prepare};

fuzz_target!(|data: &[u8]| {
    let opts = PrepareOptions {
        extract_recipients: true,
        add_missing_headers: data.first().is_some_and(|b| b & 1 == 1),
        envelope_from: "fuzz@example.org".into(),
        full_name: Some("Fuzz Tester".into()),
        hostname: "host.example.org".into(),
    };
    let mut input = data;
    if let Ok(prepared) = prepare(&mut input, &opts) {
        for r in &prepared.recipients {
            assert!(!r.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0));
        }
    }
});
