//! A token endpoint's successful answer (RFC 6749 §5.1) and `oauth_token_file`.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};

use super::store::StoredToken;
use super::{OAuthError, Secret};
use crate::system::private::{Ownership, check_private, open_failure};

/// Assumed when the provider does not say how long the token lives (RFC 6749 §5.1 makes
/// `expires_in` only RECOMMENDED); an hour is what Microsoft and Google grant.
const ASSUMED_LIFETIME: u64 = 3600;

/// The fields of an access token response that smtpsend uses.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    access_token: Secret,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default, deserialize_with = "seconds")]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<Secret>,
    #[serde(default)]
    scope: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Microsoft's v1 endpoint sent `"expires_in": "3599"`; accept a number or digits.
fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText {
        Number(u64),
        Text(String),
    }
    match Option::<NumberOrText>::deserialize(d)? {
        None => Ok(None),
        Some(NumberOrText::Number(n)) => Ok(Some(n)),
        Some(NumberOrText::Text(t)) => t
            .parse()
            .map(Some)
            .map_err(|_| de::Error::custom("expires_in is not a number of seconds")),
    }
}

impl TokenResponse {
    /// Parses a 2xx body. The error never quotes the body, which may hold tokens.
    pub fn parse(body: &[u8], what: &str) -> Result<TokenResponse, OAuthError> {
        let response: TokenResponse = serde_json::from_slice(body).map_err(|e| {
            OAuthError::Transient(format!(
                "{what}: the answer is not an access token response (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        if response.access_token.expose().is_empty() {
            return Err(OAuthError::Transient(format!(
                "{what}: the answer holds an empty access_token"
            )));
        }
        // RFC 6750: XOAUTH2 and OAUTHBEARER carry bearer tokens; another type will not work.
        if let Some(kind) = &response.token_type
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(OAuthError::Config(format!(
                "{what}: token_type {kind:?} is not Bearer"
            )));
        }
        Ok(response)
    }

    /// What to store at `now`. A response without a refresh token keeps `previous` (RFC
    /// 6749 §6: the server MAY issue a new one; when it does, the old one may be revoked).
    pub fn into_stored(
        self,
        now: Duration,
        previous: Option<Secret>,
    ) -> Result<StoredToken, OAuthError> {
        let lifetime = self.expires_in.unwrap_or(ASSUMED_LIFETIME);
        Ok(StoredToken {
            access_token: self.access_token,
            expires_at: now.as_secs().saturating_add(lifetime),
            refresh_token: self
                .refresh_token
                .filter(|r| !r.expose().is_empty())
                .or(previous),
            scope: self.scope,
        })
    }
}

/// The first line of a private file (`oauth_token_file`), written there by some other
/// program that keeps it fresh.
pub(crate) fn from_file(path: &Path) -> Result<String, OAuthError> {
    let config = |e: crate::Error| OAuthError::Config(e.to_string());
    let mut file = File::open(path).map_err(|e| config(open_failure(path, &e)))?;
    let meta = file
        .metadata()
        .map_err(|e| config(open_failure(path, &e)))?;
    if !meta.is_file() {
        return Err(OAuthError::Config(format!(
            "{}: oauth_token_file is not a regular file",
            path.display()
        )));
    }
    check_private(path, "is an oauth_token_file", Ownership::of(&meta)).map_err(config)?;
    let mut bytes = Vec::new();
    Read::by_ref(&mut file)
        .take(1 << 20)
        .read_to_end(&mut bytes)
        .map_err(|e| config(open_failure(path, &e)))?;
    first_line(bytes).map_err(|problem| {
        OAuthError::Config(format!("{}: oauth_token_file: {problem}", path.display()))
    })
}

/// The first line without its line ending.
pub(crate) fn first_line(mut bytes: Vec<u8>) -> Result<String, &'static str> {
    if let Some(end) = bytes.iter().position(|&b| b == b'\n') {
        bytes.truncate(end);
    }
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    if bytes.is_empty() {
        return Err("no token (the first line is empty)");
    }
    String::from_utf8(bytes).map_err(|_| "the token is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    const NOW: Duration = Duration::from_secs(1_000_000);

    #[test]
    fn response_with_rotation() {
        let r = TokenResponse::parse(
            br#"{"access_token":"at","token_type":"Bearer","expires_in":3599,"refresh_token":"rt2","scope":"s"}"#,
            "t",
        )
        .unwrap();
        let stored = r.into_stored(NOW, Some(Secret::new("rt1"))).unwrap();
        assert_eq!(stored.access_token.expose(), "at");
        assert_eq!(stored.expires_at, 1_003_599);
        assert_eq!(stored.refresh_token.unwrap().expose(), "rt2");
    }

    #[test]
    fn response_without_refresh_token_keeps_the_old_one() {
        let r = TokenResponse::parse(br#"{"access_token":"at","expires_in":"60"}"#, "t").unwrap();
        let stored = r.into_stored(NOW, Some(Secret::new("rt1"))).unwrap();
        assert_eq!(stored.expires_at, 1_000_060);
        assert_eq!(stored.refresh_token.unwrap().expose(), "rt1");
        let r = TokenResponse::parse(br#"{"access_token":"at"}"#, "t").unwrap();
        assert_eq!(r.into_stored(NOW, None).unwrap().expires_at, 1_003_600);
    }

    #[test]
    fn bad_responses_never_quote_the_body() {
        for body in [
            &br#"{"access_token":""}"#[..],
            br#"{"token":"leaked-secret"}"#,
            b"leaked-secret",
        ] {
            let err = TokenResponse::parse(body, "token endpoint").unwrap_err();
            assert!(!err.to_string().contains("leaked-secret"), "{err}");
        }
        let err =
            TokenResponse::parse(br#"{"access_token":"a","token_type":"mac"}"#, "t").unwrap_err();
        assert!(matches!(err, OAuthError::Config(_)), "{err:?}");
    }

    #[test]
    fn debug_hides_tokens() {
        let r = TokenResponse::parse(br#"{"access_token":"at-x","refresh_token":"rt-x"}"#, "t")
            .unwrap();
        let shown = format!("{r:?}");
        assert!(
            !shown.contains("at-x") && !shown.contains("rt-x"),
            "{shown}"
        );
    }

    fn token_file(mode: u32, contents: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(contents.as_bytes()).unwrap();
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        file
    }

    #[test]
    fn token_file_first_line() {
        let f = token_file(0o600, "ya29.token\r\nexpires: later\n");
        assert_eq!(from_file(f.path()).unwrap(), "ya29.token");
    }

    #[test]
    fn token_file_readable_by_others_is_refused() {
        let f = token_file(0o644, "ya29.token\n");
        let err = from_file(f.path()).unwrap_err();
        assert!(matches!(err, OAuthError::Config(_)), "{err:?}");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        assert!(!err.to_string().contains("ya29"), "{err}");
    }

    #[test]
    fn empty_token_file_is_refused() {
        let f = token_file(0o600, "\n");
        assert!(
            from_file(f.path())
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
    }
}
