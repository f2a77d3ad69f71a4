//! SASLprep (RFC 4013) for SCRAM user names and passwords, by the `stringprep` crate:
//! mapping (§2.1), NFKC normalisation (§2.2), prohibited output (§2.3), the bidirectional
//! check (§2.4) and unassigned code points (§2.5, as a stored string). Normalisation is why
//! a password typed in decomposed form (`a` + U+0308) proves the same key as `ä`.

/// Prepare `text` as a stored string; `Err` says which rule refused it.
pub fn saslprep(text: &str) -> Result<String, String> {
    stringprep::saslprep(text)
        .map(|prepared| prepared.into_owned())
        .map_err(|e| {
            // The crate's message holds the character itself, which may be a control.
            format!(
                "SASLprep (RFC 4013) refuses it: {}",
                e.to_string().escape_debug()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4013 §3, all seven examples.
    #[test]
    fn rfc4013_examples() {
        assert_eq!(
            saslprep("I\u{00AD}X").unwrap(),
            "IX",
            "soft hyphen mapped to nothing"
        );
        assert_eq!(saslprep("user").unwrap(), "user", "no transformation");
        assert_eq!(saslprep("USER").unwrap(), "USER", "case preserved");
        assert_eq!(saslprep("\u{00AA}").unwrap(), "a", "output is NFKC");
        assert_eq!(saslprep("\u{2168}").unwrap(), "IX", "output is NFKC");
        assert!(saslprep("\u{0007}").is_err(), "prohibited character");
        assert!(saslprep("\u{0627}\u{0031}").is_err(), "bidirectional check");
    }

    #[test]
    fn a_decomposed_password_prepares_like_the_composed_one() {
        assert_eq!(
            saslprep("pa\u{0308}ss").unwrap(),
            saslprep("p\u{00E4}ss").unwrap()
        );
        assert_eq!(saslprep("pa\u{0308}ss").unwrap(), "p\u{00E4}ss");
    }

    #[test]
    fn the_refusal_names_the_character_escaped() {
        let e = saslprep("a\u{0007}b").unwrap_err();
        assert!(e.contains("\\u{7}"), "{e}");
        assert!(!e.contains('\u{0007}'), "{e}");
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
