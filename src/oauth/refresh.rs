//! Keeping the stored access token fresh: RFC 6749 §6, refresh token grant.

use super::http::{Reply, post_form};
use super::store::{Store, StoredToken};
use super::token::TokenResponse;
use super::{Context, EXPIRY_MARGIN, OAuthError, Provider};

/// The stored access token, refreshed first when it expires within [`EXPIRY_MARGIN`].
/// A rotated refresh token is stored before the access token is handed out, so it is
/// never lost to a crash between the two.
pub(crate) fn fresh_token(
    account: &str,
    provider: &Provider,
    store: &Store,
    ctx: &Context<'_>,
) -> Result<String, OAuthError> {
    let stored = load(account, store)?;
    if !stored.expires_within(ctx.clock.now(), EXPIRY_MARGIN) {
        return Ok(stored.access_token.expose().to_string());
    }
    let _lock = store.lock()?;
    // Another smtpsend may have refreshed while we waited for the lock; with rotation its
    // refresh token is the only valid one now.
    let stored = load(account, store)?;
    if !stored.expires_within(ctx.clock.now(), EXPIRY_MARGIN) {
        return Ok(stored.access_token.expose().to_string());
    }
    let fresh = refresh(account, provider, stored, ctx)?;
    store.save(&fresh)?;
    Ok(fresh.access_token.expose().to_string())
}

fn load(account: &str, store: &Store) -> Result<StoredToken, OAuthError> {
    store.load()?.ok_or_else(|| {
        OAuthError::needs_login_for(
            account,
            format_args!("no OAuth token is stored ({})", store.path().display()),
        )
    })
}

/// One refresh request. `invalid_grant` means the refresh token was revoked, expired or
/// already used (RFC 6749 §5.2): only a new login helps.
fn refresh(
    account: &str,
    provider: &Provider,
    stored: StoredToken,
    ctx: &Context<'_>,
) -> Result<StoredToken, OAuthError> {
    let Some(refresh_token) = stored.refresh_token else {
        return Err(OAuthError::needs_login_for(
            account,
            "the OAuth access token expired and no refresh token is stored",
        ));
    };
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose()),
        ("client_id", provider.client_id.as_str()),
        // Microsoft requires the scope again; RFC 6749 §6 allows the original one.
        ("scope", provider.scope.as_str()),
    ];
    if let Some(secret) = &provider.client_secret {
        form.push(("client_secret", secret.expose()));
    }
    let what = "token endpoint";
    match post_form(&provider.token_endpoint, what, &form, ctx.http_timeout)? {
        Reply::Granted(body) => {
            TokenResponse::parse(&body, &format!("{what} {}", provider.token_endpoint))?
                .into_stored(ctx.clock.now(), Some(refresh_token))
        }
        Reply::Refused { error, description } => {
            let said = Reply::describe(&error, description.as_deref());
            Err(match error.as_str() {
                "invalid_grant" => OAuthError::needs_login_for(
                    account,
                    format_args!("the refresh token was refused ({said})"),
                ),
                "temporarily_unavailable" | "server_error" | "slow_down" => {
                    OAuthError::Transient(format!(
                        "account {account}: {what} {}: {said}",
                        provider.token_endpoint
                    ))
                }
                _ => OAuthError::Config(format!(
                    "account {account}: {what} {} refused the refresh ({said}); \
                     check oauth_client_id, oauth_client_secret and oauth_scope",
                    provider.token_endpoint
                )),
            })
        }
    }
}
