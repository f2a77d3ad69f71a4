//! RFC 8628, the device authorization grant: the person signs in on any browser with a
//! short code while smtpsend polls the token endpoint.

use std::io::Write;
use std::time::Duration;

use serde::Deserialize;

use super::http::{Reply, post_form};
use super::token::TokenResponse;
use super::{Context, OAuthError, Provider, ProviderKind, Secret};

/// RFC 8628 §3.5: the grant type of the polling requests.
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// RFC 8628 §3.2: the interval when the server names none.
const DEFAULT_INTERVAL: u64 = 5;

/// RFC 8628 §3.5: `slow_down` adds 5 seconds to this and every later interval.
const SLOW_DOWN_STEP: u64 = 5;

/// RFC 8628 §3.2, the device authorization response.
#[derive(Deserialize)]
struct DeviceAuthorization {
    device_code: Secret,
    user_code: String,
    /// Google still spells it `verification_url`.
    #[serde(alias = "verification_url")]
    verification_uri: String,
    #[serde(default)]
    verification_uri_complete: Option<String>,
    expires_in: u64,
    #[serde(default)]
    interval: Option<u64>,
}

/// Runs the grant and returns the token response. Tells the person what to do on `out`.
pub(crate) fn authorize(
    account: &str,
    provider: &Provider,
    ctx: &Context<'_>,
    out: &mut dyn Write,
) -> Result<TokenResponse, OAuthError> {
    let device = request_code(account, provider, ctx)?;
    let mut interval = device.interval.unwrap_or(DEFAULT_INTERVAL).max(1);
    let deadline = ctx.clock.now() + Duration::from_secs(device.expires_in);
    let _ = writeln!(
        out,
        "smtpsend: to authorize account {account}, open {} and enter the code {}",
        printable(&device.verification_uri),
        printable(&device.user_code)
    );
    if let Some(complete) = &device.verification_uri_complete {
        let _ = writeln!(out, "smtpsend: (or open {})", printable(complete));
    }
    let _ = writeln!(
        out,
        "smtpsend: waiting for the sign-in; the code expires in {} minutes",
        device.expires_in.div_ceil(60)
    );
    let _ = out.flush();
    let what = "token endpoint";
    let mut form = vec![
        ("grant_type", DEVICE_GRANT),
        ("device_code", device.device_code.expose()),
        ("client_id", provider.client_id.as_str()),
    ];
    if let Some(secret) = &provider.client_secret {
        form.push(("client_secret", secret.expose()));
    }
    loop {
        ctx.clock.sleep(Duration::from_secs(interval));
        if ctx.clock.now() >= deadline {
            return Err(expired(account));
        }
        let reply = post_form(&provider.token_endpoint, what, &form, ctx.http_timeout)?;
        let (error, description) = match reply {
            Reply::Granted(body) => {
                return TokenResponse::parse(&body, &format!("{what} {}", provider.token_endpoint));
            }
            Reply::Refused { error, description } => (error, description),
        };
        match error.as_str() {
            "authorization_pending" => {}
            "slow_down" => interval += SLOW_DOWN_STEP,
            "access_denied" => {
                return Err(OAuthError::Denied(format!(
                    "account {account}: the sign-in was refused ({})",
                    Reply::describe(&error, description.as_deref())
                )));
            }
            "expired_token" => return Err(expired(account)),
            _ => {
                return Err(OAuthError::Config(format!(
                    "account {account}: {what} {}: {}",
                    provider.token_endpoint,
                    Reply::describe(&error, description.as_deref())
                )));
            }
        }
    }
}

fn expired(account: &str) -> OAuthError {
    OAuthError::Denied(format!(
        "account {account}: the code expired before the sign-in was completed; \
         run `smtpsend oauth login {account}` again"
    ))
}

/// RFC 8628 §3.1: the device authorization request.
fn request_code(
    account: &str,
    provider: &Provider,
    ctx: &Context<'_>,
) -> Result<DeviceAuthorization, OAuthError> {
    let what = "device authorization endpoint";
    let url = &provider.device_endpoint;
    let form = [
        ("client_id", provider.client_id.as_str()),
        ("scope", provider.scope.as_str()),
    ];
    match post_form(url, what, &form, ctx.http_timeout)? {
        Reply::Granted(body) => serde_json::from_slice(&body).map_err(|e| {
            OAuthError::Transient(format!(
                "{what} {url}: the answer is not a device authorization response \
                 (line {}, column {})",
                e.line(),
                e.column()
            ))
        }),
        Reply::Refused { error, description } => {
            let said = Reply::describe(&error, description.as_deref());
            Err(match error.as_str() {
                "temporarily_unavailable" | "server_error" | "slow_down" => {
                    OAuthError::Transient(format!("{what} {url}: {said}"))
                }
                // Google's device flow serves only a short list of scopes, which
                // does not name Gmail's.
                "invalid_scope" if provider.kind == ProviderKind::Google => {
                    OAuthError::Config(format!(
                        "account {account}: {what} {url} refused ({said}); Google's device \
                         flow may not grant this scope: get the token from a helper with \
                         oauth_token_command instead (see Gmail in the README)"
                    ))
                }
                _ => OAuthError::Config(format!(
                    "account {account}: {what} {url} refused ({said}); \
                     check oauth_client_id and oauth_scope"
                )),
            })
        }
    }
}

/// What the server sent, without control characters (a terminal escape sequence in a
/// "user code" must not reach the person's terminal).
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_removed_from_what_is_printed() {
        assert_eq!(printable("AB\u{1b}[2JCD"), "AB[2JCD");
    }

    #[test]
    fn google_spelling_is_accepted() {
        let d: DeviceAuthorization = serde_json::from_str(
            r#"{"device_code":"d","user_code":"U","verification_url":"https://g.co/device","expires_in":1800}"#,
        )
        .unwrap();
        assert_eq!(d.verification_uri, "https://g.co/device");
        assert_eq!(d.interval, None);
    }
}
