//! Identity providers: the presets' endpoints and scopes, and the rule that a token
//! endpoint is reached over HTTPS (plain HTTP only on loopback, for tests and local
//! brokers).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A token or client secret: shown as `<redacted>` by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where an account's access token comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// `oauth_token_command`: run with `sh -c`; the first line of its output.
    Command(String),
    /// `oauth_token_file`: a private file whose first line is the token.
    File(PathBuf),
    /// `oauth_provider`: obtained by `smtpsend oauth login`, kept in the store, refreshed.
    Provider(Provider),
}

/// Which kind of provider an account's `oauth_provider` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// Microsoft identity platform (Microsoft 365, Outlook.com).
    Microsoft,
    /// Google (Gmail, Workspace).
    Google,
    /// Endpoints and scope given in the config.
    Custom,
}

impl ProviderKind {
    /// The config spelling: `microsoft`, `google`, `custom`.
    pub fn from_name(name: &str) -> Option<ProviderKind> {
        match name.to_ascii_lowercase().as_str() {
            "microsoft" | "microsoft365" | "outlook" => Some(ProviderKind::Microsoft),
            "google" | "gmail" => Some(ProviderKind::Google),
            "custom" => Some(ProviderKind::Custom),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Microsoft => "microsoft",
            ProviderKind::Google => "google",
            ProviderKind::Custom => "custom",
        }
    }
}

/// Everything needed to run the device flow (RFC 8628) and to refresh (RFC 6749 §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provider {
    pub kind: ProviderKind,
    pub client_id: String,
    /// Sent in the body of token requests (RFC 6749 §2.3.1) when set; Google's
    /// "TVs and limited input devices" clients need it.
    pub client_secret: Option<Secret>,
    pub device_endpoint: String,
    pub token_endpoint: String,
    pub scope: String,
}

/// The `oauth_*` keys of one account, as written.
#[derive(Clone, Debug, Default)]
pub struct ProviderKeys {
    pub provider: String,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub tenant: Option<String>,
    pub device_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub scope: Option<String>,
}

const MICROSOFT_SCOPE: &str = "https://outlook.office.com/SMTP.Send offline_access";
const GOOGLE_DEVICE: &str = "https://oauth2.googleapis.com/device/code";
const GOOGLE_TOKEN: &str = "https://oauth2.googleapis.com/token";
const GOOGLE_SCOPE: &str = "https://mail.google.com/";

impl Provider {
    /// Builds a provider from the config keys. A preset's endpoints and scope may be
    /// overridden one by one (a national cloud, a narrower scope); `custom` needs all three.
    pub fn from_keys(keys: ProviderKeys) -> Result<Provider, String> {
        let kind = ProviderKind::from_name(&keys.provider).ok_or_else(|| {
            format!(
                "unknown oauth_provider {:?} (expected microsoft, google or custom)",
                keys.provider
            )
        })?;
        let client_id = keys
            .client_id
            .ok_or("oauth_provider is set but no oauth_client_id")?;
        if keys.tenant.is_some() && kind != ProviderKind::Microsoft {
            return Err(format!(
                "oauth_tenant is for oauth_provider = \"microsoft\", not {:?}",
                kind.name()
            ));
        }
        let (device, token, scope) = match kind {
            ProviderKind::Microsoft => {
                let tenant = keys.tenant.unwrap_or_else(|| "common".to_string());
                if !valid_tenant(&tenant) {
                    return Err(format!(
                        "oauth_tenant {tenant:?} is not a tenant name, domain or id"
                    ));
                }
                let base = format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0");
                (
                    format!("{base}/devicecode"),
                    format!("{base}/token"),
                    MICROSOFT_SCOPE.to_string(),
                )
            }
            ProviderKind::Google => (
                GOOGLE_DEVICE.to_string(),
                GOOGLE_TOKEN.to_string(),
                GOOGLE_SCOPE.to_string(),
            ),
            ProviderKind::Custom => {
                let missing: Vec<&str> = [
                    ("oauth_device_endpoint", &keys.device_endpoint),
                    ("oauth_token_endpoint", &keys.token_endpoint),
                    ("oauth_scope", &keys.scope),
                ]
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| *k)
                .collect();
                if !missing.is_empty() {
                    return Err(format!(
                        "oauth_provider = \"custom\" needs {}",
                        missing.join(", ")
                    ));
                }
                (String::new(), String::new(), String::new())
            }
        };
        let device_endpoint = keys.device_endpoint.unwrap_or(device);
        let token_endpoint = keys.token_endpoint.unwrap_or(token);
        check_endpoint(&device_endpoint).map_err(|e| format!("oauth_device_endpoint: {e}"))?;
        check_endpoint(&token_endpoint).map_err(|e| format!("oauth_token_endpoint: {e}"))?;
        Ok(Provider {
            kind,
            client_id,
            client_secret: keys.client_secret.map(Secret::new),
            device_endpoint,
            token_endpoint,
            scope: keys.scope.unwrap_or(scope),
        })
    }
}

/// A tenant goes into a URL path: "common", "organizations", a domain or a GUID.
fn valid_tenant(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

/// Tokens and client secrets travel in the request body, so the endpoint must be
/// `https://` (RFC 6749 §3.2, RFC 8628 §3.1: TLS is required). Plain `http://` is
/// allowed only to a loopback address literal (127.0.0.0/8, ::1), which never leaves
/// the machine; a host name such as `localhost` could be resolved elsewhere. The URL is
/// parsed by the same parser the HTTP client uses, so the host checked is the host reached.
pub fn check_endpoint(url: &str) -> Result<(), String> {
    let uri: ureq::http::Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    let host = uri.host().unwrap_or("");
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("https") => Ok(()),
        Some("http") if is_loopback(host) => Ok(()),
        Some("http") => Err(format!(
            "{url:?}: plain http is refused (tokens would cross the network unencrypted); \
             use https, or a loopback address (127.0.0.1, [::1])"
        )),
        _ => Err(format!("{url:?} is not an https:// URL")),
    }
}

/// True for an address literal in 127.0.0.0/8 or ::1 (names are not resolved); IPv6
/// may come bracketed, as `Uri::host` gives it.
pub fn is_loopback(host: &str) -> bool {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => {
            v6 == Ipv6Addr::LOCALHOST
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4: Ipv4Addr| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// True when `url` points at a loopback address literal (then no proxy is used).
pub fn is_loopback_url(url: &str) -> bool {
    url.parse::<ureq::http::Uri>()
        .ok()
        .and_then(|uri| uri.host().map(is_loopback))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(provider: &str) -> ProviderKeys {
        ProviderKeys {
            provider: provider.into(),
            client_id: Some("cid".into()),
            ..ProviderKeys::default()
        }
    }

    #[test]
    fn microsoft_preset_uses_common_tenant() {
        let p = Provider::from_keys(keys("microsoft")).unwrap();
        assert_eq!(
            p.device_endpoint,
            "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode"
        );
        assert_eq!(
            p.token_endpoint,
            "https://login.microsoftonline.com/common/oauth2/v2.0/token"
        );
        assert_eq!(
            p.scope,
            "https://outlook.office.com/SMTP.Send offline_access"
        );
    }

    #[test]
    fn microsoft_tenant_goes_into_both_endpoints() {
        let p = Provider::from_keys(ProviderKeys {
            tenant: Some("contoso.onmicrosoft.com".into()),
            ..keys("microsoft")
        })
        .unwrap();
        assert!(
            p.device_endpoint
                .contains("/contoso.onmicrosoft.com/oauth2/v2.0/devicecode")
        );
        assert!(
            p.token_endpoint
                .contains("/contoso.onmicrosoft.com/oauth2/v2.0/token")
        );
        let bad = Provider::from_keys(ProviderKeys {
            tenant: Some("a/b?c".into()),
            ..keys("microsoft")
        });
        assert!(bad.unwrap_err().contains("oauth_tenant"));
    }

    #[test]
    fn google_preset() {
        let p = Provider::from_keys(keys("google")).unwrap();
        assert_eq!(p.kind, ProviderKind::Google);
        assert_eq!(p.device_endpoint, GOOGLE_DEVICE);
        assert_eq!(p.token_endpoint, GOOGLE_TOKEN);
        assert_eq!(p.scope, "https://mail.google.com/");
        let err = Provider::from_keys(ProviderKeys {
            tenant: Some("x".into()),
            ..keys("google")
        })
        .unwrap_err();
        assert!(err.contains("oauth_tenant"), "{err}");
    }

    #[test]
    fn custom_needs_both_endpoints_and_scope() {
        let err = Provider::from_keys(keys("custom")).unwrap_err();
        assert!(
            err.contains("oauth_device_endpoint, oauth_token_endpoint, oauth_scope"),
            "{err}"
        );
        let p = Provider::from_keys(ProviderKeys {
            device_endpoint: Some("http://127.0.0.1:8080/device".into()),
            token_endpoint: Some("https://idp.example/token".into()),
            scope: Some("smtp".into()),
            ..keys("custom")
        })
        .unwrap();
        assert_eq!(p.kind, ProviderKind::Custom);
        assert_eq!(p.scope, "smtp");
    }

    #[test]
    fn client_id_is_required_and_provider_name_checked() {
        let err = Provider::from_keys(ProviderKeys {
            client_id: None,
            ..keys("google")
        })
        .unwrap_err();
        assert!(err.contains("oauth_client_id"), "{err}");
        let err = Provider::from_keys(keys("yahoo")).unwrap_err();
        assert!(err.contains("yahoo"), "{err}");
    }

    #[test]
    fn plain_http_only_to_loopback_literals() {
        for ok in [
            "https://login.example/token",
            "http://127.0.0.1:8080/token",
            "http://127.1.2.3/token",
            "http://[::1]:99/token",
            "HTTP://127.0.0.1/t",
        ] {
            assert!(check_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://login.example/token",
            "http://localhost:8080/token",
            "http://10.0.0.1/token",
            "http://127.0.0.1.evil.example/token",
            "ftp://127.0.0.1/token",
            "login.example/token",
            "https:///token",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
        let err = check_endpoint("http://idp.example/token").unwrap_err();
        assert!(err.contains("plain http is refused"), "{err}");
    }

    #[test]
    fn client_secret_is_redacted_in_debug() {
        let p = Provider::from_keys(ProviderKeys {
            client_secret: Some("s3cr3t".into()),
            ..keys("google")
        })
        .unwrap();
        assert!(!format!("{p:?}").contains("s3cr3t"));
    }
}
