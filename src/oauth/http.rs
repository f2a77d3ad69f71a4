//! One form POST to an OAuth endpoint (RFC 6749 §3.2, RFC 8628 §3.1) with a deadline,
//! and the answer sorted into granted, refused (RFC 6749 §5.2) or failed.

use std::time::Duration;

use serde::Deserialize;

use super::OAuthError;
use crate::config::oauth::{check_endpoint, is_loopback_url};

/// Endpoints answer with a small JSON object; anything longer is not one.
const BODY_LIMIT: u64 = 64 * 1024;

/// What an endpoint said.
#[derive(Debug)]
pub(crate) enum Reply {
    /// 2xx: the JSON body, for the caller to read.
    Granted(Vec<u8>),
    /// An error response (RFC 6749 §5.2): `error` and its optional description.
    Refused {
        error: String,
        description: Option<String>,
    },
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl Reply {
    /// "invalid_grant: AADSTS70000: ..." for messages.
    pub fn describe(error: &str, description: Option<&str>) -> String {
        match description {
            Some(d) if !d.is_empty() => format!("{error}: {}", one_line(d)),
            _ => error.to_string(),
        }
    }
}

/// Providers put newlines, trace ids and timestamps in `error_description`; stderr gets
/// one line of at most 300 characters.
fn one_line(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = flat.trim();
    match trimmed.char_indices().nth(300) {
        Some((at, _)) => format!("{}...", &trimmed[..at]),
        None => trimmed.to_string(),
    }
}

/// POSTs `form` to `url` (named `what` in messages). The form carries secrets, so the
/// URL is checked again here (https, or http to loopback) and redirects are not
/// followed: a 307 could carry the body somewhere else.
pub(crate) fn post_form(
    url: &str,
    what: &str,
    form: &[(&str, &str)],
    timeout: Duration,
) -> Result<Reply, OAuthError> {
    check_endpoint(url).map_err(|e| OAuthError::Config(format!("{what}: {e}")))?;
    let proxy = if is_loopback_url(url) {
        None
    } else {
        ureq::Proxy::try_from_env()
    };
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .proxy(proxy)
        .user_agent(concat!("smtpsend/", env!("CARGO_PKG_VERSION")))
        .accept("application/json")
        .build()
        .new_agent();
    let mut response = agent
        .post(url)
        .send_form(form.iter().copied())
        .map_err(|e| failure(what, url, &e))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(BODY_LIMIT)
        .read_to_vec()
        .map_err(|e| failure(what, url, &e))?;
    match status {
        200..=299 => Ok(Reply::Granted(body)),
        // RFC 6749 §5.2 says 400 (401 for client authentication); accept any 4xx that
        // carries an error object, since providers differ.
        400..=499 => match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) => Ok(Reply::Refused {
                error: e.error,
                description: e.error_description,
            }),
            Err(_) if status == 408 || status == 429 => Err(OAuthError::Transient(format!(
                "{what} {url}: HTTP {status}; try again later"
            ))),
            Err(_) => Err(OAuthError::Config(format!(
                "{what} {url}: HTTP {status} without an OAuth error; check the endpoint URL"
            ))),
        },
        500..=599 => Err(OAuthError::Transient(format!(
            "{what} {url}: HTTP {status}; try again later"
        ))),
        300..=399 => Err(OAuthError::Config(format!(
            "{what} {url}: HTTP {status} redirect, not followed; put the final URL in the config"
        ))),
        _ => Err(OAuthError::Transient(format!(
            "{what} {url}: unexpected HTTP {status}"
        ))),
    }
}

/// A request that got no HTTP answer. Everything but a malformed URL can be a passing
/// network fault, so the message is kept and retried.
fn failure(what: &str, url: &str, e: &ureq::Error) -> OAuthError {
    let detail = match e {
        ureq::Error::Timeout(_) => "timed out".to_string(),
        ureq::Error::HostNotFound => "host not found".to_string(),
        ureq::Error::Io(io) => crate::os_error::describe(io),
        ureq::Error::BodyExceedsLimit(_) => {
            return OAuthError::Transient(format!(
                "{what} {url}: the answer is longer than {BODY_LIMIT} bytes"
            ));
        }
        ureq::Error::BadUri(_) | ureq::Error::Http(_) | ureq::Error::InvalidProxyUrl => {
            return OAuthError::Config(format!("{what} {url}: {e}"));
        }
        other => other.to_string(),
    };
    OAuthError::Transient(format!("{what} {url}: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_is_flattened_and_capped() {
        let long = "x".repeat(400);
        let shown = Reply::describe("invalid_grant", Some(&format!("line1\r\nline2 {long}")));
        assert!(
            shown.starts_with("invalid_grant: line1  line2 x"),
            "{shown}"
        );
        assert!(!shown.contains('\n'));
        assert!(shown.ends_with("..."));
        assert_eq!(Reply::describe("access_denied", None), "access_denied");
        assert_eq!(Reply::describe("access_denied", Some("")), "access_denied");
    }

    #[test]
    fn plain_http_elsewhere_is_refused_before_connecting() {
        let err = post_form(
            "http://192.0.2.1/token",
            "token endpoint",
            &[("refresh_token", "r")],
            Duration::from_millis(10),
        )
        .unwrap_err();
        assert!(matches!(err, OAuthError::Config(_)), "{err:?}");
        assert!(err.to_string().contains("plain http is refused"), "{err}");
    }
}
