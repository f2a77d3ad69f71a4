//! Any config text is parsed or refused with an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = smtpsend::config::Config::parse(text, Path::new("/fuzz/config.toml")) {
        let _ = config.account(None);
    }
});
