//! Any EHLO reply a server can send parses into capabilities without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpsend::smtp::{Capabilities, ReplyParser};

fuzz_target!(|data: &[u8]| {
    let mut parser = ReplyParser::new();
    parser.push(data);
    while let Ok(Some(reply)) = parser.next_reply() {
        let caps = Capabilities::from_ehlo(&reply);
        assert!(caps.auth.iter().all(|m| !m.is_empty()));
    }
});
