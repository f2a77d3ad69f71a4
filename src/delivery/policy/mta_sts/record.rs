//! The `_mta-sts` TXT record (RFC 8461 §3.1): whether a domain announces a policy, and
//! the policy's id.

use std::fmt;

use crate::delivery::resolve::TxtRecord;

/// The version tag every record starts with; case-sensitive (`%s"v=STSv1"`).
const VERSION: &str = "v=STSv1";

/// A usable `_mta-sts` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// 1 to 32 letters and digits; a new id says the policy changed (RFC 8461 §3.1).
    pub id: String,
}

/// Why the TXT records announce no usable policy. Either way the domain is treated as
/// not implementing MTA-STS (a valid cached policy still applies, §5.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// More than one record starts with `v=STSv1;`.
    Several(usize),
    /// The one STSv1 record does not follow the grammar.
    Invalid(String),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Several(n) => write!(f, "{n} STSv1 TXT records, not one"),
            RecordError::Invalid(why) => write!(f, "invalid STSv1 TXT record: {why}"),
        }
    }
}

/// The STSv1 record among the TXT records of `_mta-sts.DOMAIN`: `Ok(None)` when none
/// starts with `v=STSv1;`. Each record's strings are joined without spaces (§3.1).
pub fn select(records: &[TxtRecord]) -> Result<Option<Record>, RecordError> {
    let candidates: Vec<Vec<u8>> = records
        .iter()
        .map(|strings| strings.concat())
        .filter(|text| is_sts(text))
        .collect();
    match candidates.as_slice() {
        [] => Ok(None),
        [one] => parse(one).map(Some).map_err(RecordError::Invalid),
        several => Err(RecordError::Several(several.len())),
    }
}

/// §3.1: records "that do not begin with `v=STSv1;`" are not ours. The grammar allows
/// white space before the `;`, so that is allowed here too.
fn is_sts(text: &[u8]) -> bool {
    text.strip_prefix(VERSION.as_bytes())
        .map(|rest| rest.trim_ascii_start().starts_with(b";"))
        .unwrap_or(false)
}

/// `sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]`, with
/// `sts-id` required. Trailing white space is forgiven.
fn parse(bytes: &[u8]) -> Result<Record, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not ASCII text".to_string())?;
    if !text.is_ascii() {
        return Err("not ASCII text".into());
    }
    let rest = text
        .strip_prefix(VERSION)
        .ok_or_else(|| "does not start with v=STSv1".to_string())?;
    let mut id = None;
    // Each piece after a ';' is one field, or nothing at the very end.
    let pieces: Vec<&str> = rest.split(';').collect();
    if !pieces[0].chars().all(is_wsp) {
        return Err(format!("unexpected text after v=STSv1: {:?}", pieces[0]));
    }
    let last = pieces.len() - 1;
    for (i, piece) in pieces.iter().enumerate().skip(1) {
        let field = piece.trim_matches(is_wsp);
        if field.is_empty() {
            // An empty piece is the optional final delimiter, after at least one field
            // (every earlier piece was a field, or this returned already).
            if i == last && i > 1 {
                break;
            }
            return Err("empty field".into());
        }
        let (name, value) = field
            .split_once('=')
            .ok_or_else(|| format!("field {field:?} has no '='"))?;
        if !is_field_name(name) {
            return Err(format!("bad field name {name:?}"));
        }
        if name == "id" {
            if id.is_some() {
                return Err("two id fields".into());
            }
            if value.is_empty()
                || value.len() > 32
                || !value.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(format!("id {value:?} is not 1 to 32 letters and digits"));
            }
            id = Some(value.to_string());
        } else if value.is_empty() || !value.bytes().all(is_value_byte) {
            return Err(format!("bad value for {name}: {value:?}"));
        }
    }
    id.map(|id| Record { id })
        .ok_or_else(|| "no id field".to_string())
}

fn is_wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `sts-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")`.
pub(super) fn is_field_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 32
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// `sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E)`: visible characters but `;` and `=`.
fn is_value_byte(b: u8) -> bool {
    matches!(b, 0x21..=0x3a | 0x3c | 0x3e..=0x7e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Vec<TxtRecord> {
        vec![vec![text.as_bytes().to_vec()]]
    }

    fn id(text: &str) -> Result<Option<Record>, RecordError> {
        select(&one(text))
    }

    fn found(id: &str) -> Result<Option<Record>, RecordError> {
        Ok(Some(Record { id: id.into() }))
    }

    #[test]
    fn rfc_example_record() {
        // RFC 8461 §3.1.
        assert_eq!(id("v=STSv1; id=20160831085700Z;"), found("20160831085700Z"));
    }

    #[test]
    fn delimiters_may_carry_white_space_and_the_last_is_optional() {
        assert_eq!(id("v=STSv1;id=abc"), found("abc"));
        assert_eq!(id("v=STSv1 ;\tid=abc ; "), found("abc"));
        assert_eq!(id("v=STSv1; id=abc "), found("abc"));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        assert_eq!(
            id("v=STSv1; ext.x-1=some:value; id=A1; other=1;"),
            found("A1")
        );
    }

    #[test]
    fn strings_of_one_record_are_concatenated_without_spaces() {
        let record = vec![vec![b"v=STSv1; id=12".to_vec(), b"34".to_vec()]];
        assert_eq!(select(&record), found("1234"));
    }

    #[test]
    fn records_of_other_kinds_are_discarded() {
        let records = vec![
            vec![b"v=spf1 -all".to_vec()],
            vec![b"v=STSv1; id=keep".to_vec()],
            vec![b"v=STSv10; id=other".to_vec()],
            vec![b"V=STSV1; id=upper".to_vec()],
            vec![b"\xff\xfe".to_vec()],
        ];
        assert_eq!(select(&records), found("keep"));
    }

    #[test]
    fn no_sts_record_is_no_policy() {
        assert_eq!(select(&[]), Ok(None));
        assert_eq!(id("v=spf1 -all"), Ok(None));
        // Not followed by ';': not an STSv1 record at all (§3.1's filter).
        assert_eq!(id("v=STSv1"), Ok(None));
        assert_eq!(id("id=1; v=STSv1;"), Ok(None));
    }

    #[test]
    fn several_sts_records_are_no_policy() {
        let records = vec![
            vec![b"v=STSv1; id=one".to_vec()],
            vec![b"v=STSv1; id=two".to_vec()],
        ];
        assert_eq!(select(&records), Err(RecordError::Several(2)));
    }

    #[test]
    fn invalid_records_are_refused() {
        for bad in [
            "v=STSv1;",
            "v=STSv1; ;",
            "v=STSv1; id=",
            "v=STSv1; id=has-dash",
            "v=STSv1; id=123456789012345678901234567890123",
            "v=STSv1; id=a; id=b",
            "v=STSv1; ID=upper-case-name-is-an-extension",
            "v=STSv1; noequals; id=1",
            "v=STSv1; id=1;; x=2",
            "v=STSv1; id=1; x=a b",
            "v=STSv1; id=1; _x=1",
            "v=STSv1; id=1; x=",
            "v=STSv1; id=1 2",
            "v=STSv1; id=\u{e9}",
        ] {
            assert!(
                matches!(id(bad), Err(RecordError::Invalid(_))),
                "{bad:?}: {:?}",
                id(bad)
            );
        }
    }

    #[test]
    fn id_of_32_characters_is_the_longest() {
        let longest = "a".repeat(32);
        assert_eq!(id(&format!("v=STSv1; id={longest}")), found(&longest));
    }
}
