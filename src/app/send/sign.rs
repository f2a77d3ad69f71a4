//! DKIM signing of an outgoing message (RFC 6376; issue 18), done once before the message
//! goes anywhere, so that the relay, each domain's exchangers and the spool all get the
//! same signed bytes.
//!
//! A message that is queued is queued signed: a queue run sends the bytes that were
//! signed and needs no key. The key may be readable only by the user who sent the message
//! (not by the shared spool's runner), and may have been rotated by the time of a retry;
//! and a retry then sends exactly what a first attempt would have.

use std::io::Write;

use crate::app::settings::Settings;
use crate::delivery;
use crate::error::Error;
use crate::message::dkim::Signer;
use crate::message::input::Message;

/// Read the whole message once (a stream into its kept copy, so memory stays constant),
/// sign it as it will be sent, and put the `DKIM-Signature` field first.
///
/// Errors: [`Error::Data`] for a message that cannot be signed (no `From`, or one without
/// a domain and no `dkim_domain`; a NUL byte); [`Error::Io`] when reading fails.
pub(super) fn sign(
    settings: &Settings,
    signer: &Signer,
    message: &mut Message<'_>,
    err: &mut dyn Write,
) -> Result<(), Error> {
    // Read ahead as `remote::message_info` will, before reading through: asked again
    // afterwards, the message then gives the same answer (see `Message::read_ahead`).
    message.read_ahead(delivery::BLOCK)?;
    let domain = signer.domain_for(message.head())?;
    let field = {
        let mut reader = message.reader()?;
        signer.sign(&mut reader, settings.message.dot_ends_input)?
    };
    let field = in_line_ends_of(field, message.head());
    message.prepend(field.as_bytes());
    if settings.verbose {
        let _ = writeln!(
            err,
            "smtpsend: DKIM: signed as {}",
            described(signer, &domain)
        );
    }
    Ok(())
}

/// `d=DOMAIN s=SELECTOR (ALGORITHM)`, for `-v` and `--dry-run`.
pub(super) fn described(signer: &Signer, domain: &str) -> String {
    format!(
        "d={domain} s={} ({})",
        signer.selector(),
        signer.algorithm()
    )
}

/// The field with the line ends of the message it goes into: on the wire every line ends
/// CRLF either way, and a spooled copy does not mix them.
fn in_line_ends_of(field: String, head: &[u8]) -> String {
    let bare_lf = memchr::memchr(b'\n', head).is_some_and(|i| i == 0 || head[i - 1] != b'\r');
    if bare_lf {
        field.replace("\r\n", "\n")
    } else {
        field
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_takes_the_line_ends_of_the_message() {
        let field = "DKIM-Signature: v=1;\r\n b=x\r\n".to_string();
        assert_eq!(
            in_line_ends_of(field.clone(), b"From: a@b.example\nTo: c\n"),
            "DKIM-Signature: v=1;\n b=x\n"
        );
        assert_eq!(
            in_line_ends_of(field.clone(), b"From: a@b.example\r\n"),
            field
        );
        assert_eq!(in_line_ends_of(field.clone(), b"From: a"), field);
    }
}
