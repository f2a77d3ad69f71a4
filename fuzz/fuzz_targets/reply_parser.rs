//! The reply parser must never panic and never hold more than its bounds, whatever the
//! server sends and however the bytes are split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpsend::smtp::ReplyParser;
use smtpsend::smtp::reply::{MAX_LINE, MAX_LINES};

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the read size, so splits are explored too.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(split).max(1);
    let mut parser = ReplyParser::new();
    for piece in rest.chunks(step) {
        parser.push(piece);
        loop {
            match parser.next_reply() {
                Ok(Some(reply)) => {
                    assert!((200..=599).contains(&reply.code));
                    assert!(!reply.lines.is_empty() && reply.lines.len() <= MAX_LINES);
                    assert!(reply.lines.iter().all(|l| l.len() <= MAX_LINE * 3));
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
