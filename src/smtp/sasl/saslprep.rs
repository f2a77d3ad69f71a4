//! SASLprep (RFC 4013) for SCRAM user names and passwords, as far as it goes without
//! Unicode tables.
//!
//! Done: the mapping step (RFC 4013 §2.1: non-ASCII spaces, RFC 3454 C.1.2, become U+0020;
//! the "commonly mapped to nothing" characters, B.1, are removed) and every prohibition of
//! §2.3 that is a fixed list of code points (C.2.1 ASCII controls, C.2.2, C.3 private use,
//! C.4 non-characters, C.6 to C.9). For an ASCII string that is all of RFC 4013.
//!
//! Not done: NFKC normalisation (§2.2), the unassigned code points of RFC 3454 A.1, and
//! the bidirectional check (§2.4), which need the Unicode character database. A non-ASCII
//! password is therefore sent as typed after the mapping: it works when it is already in
//! NFKC form, which is the case for text typed on ordinary keyboards, and otherwise the
//! server refuses it with a 535 (never a wrong acceptance).

/// Prepare `text` as a stored string; `Err` names the first prohibited character.
pub fn saslprep(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if mapped_to_nothing(c) {
            continue;
        }
        let c = if non_ascii_space(c) { ' ' } else { c };
        if prohibited(c) {
            return Err(format!(
                "it contains U+{:04X}, which SASLprep (RFC 4013 §2.3) prohibits",
                c as u32
            ));
        }
        out.push(c);
    }
    Ok(out)
}

/// RFC 3454 Table C.1.2.
fn non_ascii_space(c: char) -> bool {
    matches!(
        c,
        '\u{00A0}' | '\u{1680}' | '\u{2000}'..='\u{200B}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

/// RFC 3454 Table B.1.
fn mapped_to_nothing(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{1806}'
            | '\u{180B}'..='\u{180D}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2060}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
    )
}

/// RFC 4013 §2.3 prohibited output, the tables that are fixed ranges.
fn prohibited(c: char) -> bool {
    let n = c as u32;
    // C.4: the last two code points of every plane are non-characters.
    if n & 0xFFFE == 0xFFFE {
        return true;
    }
    matches!(
        c,
        // C.2.1 ASCII control characters.
        '\u{0000}'..='\u{001F}' | '\u{007F}'
        // C.2.2 non-ASCII control characters.
        | '\u{0080}'..='\u{009F}'
        | '\u{06DD}'
        | '\u{070F}'
        | '\u{180E}'
        | '\u{200C}'
        | '\u{200D}'
        | '\u{2028}'
        | '\u{2029}'
        | '\u{2060}'..='\u{2063}'
        | '\u{206A}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFC}'
        | '\u{1D173}'..='\u{1D17A}'
        // C.3 private use.
        | '\u{E000}'..='\u{F8FF}'
        | '\u{F0000}'..='\u{FFFFD}'
        | '\u{100000}'..='\u{10FFFD}'
        // C.4 non-characters (besides the plane ends above).
        | '\u{FDD0}'..='\u{FDEF}'
        // C.6 inappropriate for plain text.
        | '\u{FFFD}'
        // C.7 inappropriate for canonical representation.
        | '\u{2FF0}'..='\u{2FFB}'
        // C.8 change display properties or deprecated.
        | '\u{0340}'
        | '\u{0341}'
        | '\u{200E}'
        | '\u{200F}'
        | '\u{202A}'..='\u{202E}'
        // C.9 tagging characters.
        | '\u{E0001}'
        | '\u{E0020}'..='\u{E007F}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4013 §3's examples that need no normalisation.
    #[test]
    fn rfc4013_examples() {
        assert_eq!(
            saslprep("I\u{00AD}X").unwrap(),
            "IX",
            "soft hyphen mapped to nothing"
        );
        assert_eq!(saslprep("user").unwrap(), "user", "no transformation");
        assert_eq!(saslprep("USER").unwrap(), "USER", "case preserved");
        assert!(saslprep("\u{0007}").is_err(), "prohibited character");
    }

    #[test]
    fn printable_ascii_is_unchanged() {
        let all: String = (0x20u8..0x7f).map(char::from).collect();
        assert_eq!(saslprep(&all).unwrap(), all);
    }

    #[test]
    fn ascii_controls_are_refused() {
        for bad in ["a\tb", "a\rb", "a\nb", "a\0b", "a\u{7f}b"] {
            let e = saslprep(bad).unwrap_err();
            assert!(e.contains("RFC 4013"), "{e}");
        }
    }

    #[test]
    fn non_ascii_spaces_become_spaces() {
        assert_eq!(saslprep("a\u{00A0}b\u{3000}c").unwrap(), "a b c");
    }

    #[test]
    fn private_use_and_noncharacters_are_refused() {
        assert!(saslprep("\u{E000}").is_err());
        assert!(saslprep("\u{FFFF}").is_err());
        assert!(saslprep("\u{1FFFE}").is_err());
        assert!(saslprep("\u{202E}").is_err(), "bidi override");
        assert_eq!(saslprep("pässwörd").unwrap(), "pässwörd");
    }
}
