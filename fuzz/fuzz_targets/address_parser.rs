//! Address parsing never panics, and whatever it accepts is safe inside a command.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpsend::message::address;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(addr) = address::envelope_address(text) {
        assert!(!addr.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0));
        assert!(!addr.contains('<') && !addr.contains('>') || addr.contains('"'));
        assert!(addr.len() <= 256);
    }
    let list = address::parse_address_list(text);
    for m in list.mailboxes {
        assert!(!m.address.bytes().any(|b| b == b'\r' || b == b'\n'));
    }
    let _ = address::decode_encoded_words(text);
});
