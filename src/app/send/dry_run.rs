//! `--dry-run`: what a send would do, on stdout, with nothing sent and nothing connected
//! to: the envelope sender, each recipient as given and where its aliases lead, each
//! destination with its route, and the header section as it would be sent.

use std::io::{self, Write};

use crate::app::settings::Settings;
use crate::delivery::recipients::Target;
use crate::delivery::route::RouteSpec;
use crate::error::Error;
use crate::exit::ExitStatus;

pub(super) fn show(
    settings: &Settings,
    from: &str,
    asked: &[(String, Vec<Target>)],
    targets: &[Target],
    head: &[u8],
) -> Result<ExitStatus, Error> {
    let mut out = Vec::new();
    write(settings, from, asked, targets, head, &mut out)
        .map_err(|e| Error::io("writing the dry run", e))?;
    io::stdout()
        .write_all(&out)
        .map_err(|e| Error::io("writing the dry run", e))?;
    Ok(ExitStatus::Ok)
}

fn write(
    settings: &Settings,
    from: &str,
    asked: &[(String, Vec<Target>)],
    targets: &[Target],
    head: &[u8],
    out: &mut dyn Write,
) -> io::Result<()> {
    let sender = if from.is_empty() {
        "<> (the null sender)"
    } else {
        from
    };
    writeln!(out, "envelope sender: {sender}")?;
    for (given, routed) in asked {
        let names: Vec<String> = routed.iter().map(target_name).collect();
        if names.len() != 1 || names[0] != *given {
            writeln!(out, "alias: {given} -> {}", names.join(", "))?;
        }
    }
    let route = settings.route_spec().ok();
    for target in targets {
        match target {
            Target::Mailbox(name) => writeln!(
                out,
                "recipient {name}: local mailbox {}",
                settings.local.mail_spool().join(name).display()
            )?,
            Target::Remote(address) => {
                writeln!(out, "recipient {address}: {}", route_words(route, address))?
            }
        }
    }
    let remote = targets.iter().any(|t| matches!(t, Target::Remote(_)));
    let signer = settings.dkim.as_deref().filter(|_| remote);
    let signing = match signer.map(|s| s.domain_for(head).map(|d| (s, d))) {
        Some(Ok((signer, domain))) => {
            writeln!(
                out,
                "DKIM: would sign as {}",
                super::sign::described(signer, &domain)
            )?;
            Some((signer, domain))
        }
        Some(Err(e)) => {
            writeln!(out, "DKIM: cannot sign: {e}; a send would fail")?;
            None
        }
        None => None,
    };
    writeln!(out, "header section as it would be sent:")?;
    if let Some((signer, domain)) = signing {
        writeln!(
            out,
            "  DKIM-Signature: v=1; a={}; c=relaxed/relaxed; d={domain}; s={}; (h=, t=, bh= \
             and b= are computed when it is sent)",
            signer.algorithm(),
            signer.selector()
        )?;
    }
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        writeln!(out, "  {}", String::from_utf8_lossy(line))?;
    }
    writeln!(out, "nothing was sent")
}

fn target_name(target: &Target) -> String {
    match target {
        Target::Mailbox(name) => name.clone(),
        Target::Remote(address) => address.clone(),
    }
}

/// How a remote recipient would go, in words.
fn route_words(route: Option<&RouteSpec>, address: &str) -> String {
    match route {
        Some(RouteSpec::Relay(relay)) => {
            let account = relay
                .account
                .as_ref()
                .map(|a| format!(", account {}", a.name))
                .unwrap_or_default();
            let user = relay
                .user
                .as_ref()
                .map(|u| format!(", user {u}"))
                .unwrap_or_default();
            format!(
                "relay {}:{} (TLS {}{account}{user})",
                relay.host, relay.port, relay.tls
            )
        }
        Some(RouteSpec::Direct(direct)) => {
            let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
            format!(
                "direct delivery to the mail exchangers of {domain} (looked up when sending; \
                 TLS {}, DANE {}, MTA-STS {})",
                direct.tls, direct.dane, direct.mta_sts
            )
        }
        None => "no route (see the error a send would give)".to_string(),
    }
}
