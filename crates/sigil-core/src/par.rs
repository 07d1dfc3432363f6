//! Pushed authorization requests (RFC 9126): a client sends its authorization request
//! straight to the server (`POST /par`), authenticated as at the token endpoint; the
//! request is validated exactly as at the authorization endpoint and kept for a minute under
//! a single-use `request_uri`, which the browser then brings to `/authorize` with the
//! `client_id` (and nothing else that counts).
//!
//! What is kept is the validated request's parameters (only those the authorization
//! endpoint knows), under the SHA-256 of the `request_uri`'s 256-bit random part. When the
//! `request_uri` comes back they are validated again against the client as it is then
//! (RFC 9126 §4), so that a redirect URI or scope removed meanwhile no longer counts.
//!
//! A flood of pushes is bounded by the form size limit, the one-minute lifetime and a cap
//! per client on the pushes of the last minute ([`AuthorityConfig::pushed_requests_max_per_client`],
//! counted in memory on each replica): it bounds the pushed requests one client can have
//! waiting at a time, which matters for a public client, whose `client_id` alone pushes.

use crate::authority::{Authority, AuthorityConfig, ClientCredentials};
use crate::authorize::{AuthorizeError, AuthorizeParams, Channel};
use crate::error::{ErrorCode, OAuthError};
use crate::secret::{hash_for_storage, is_random_token, Secret};
use crate::store::PushedRequest;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;

/// RFC 9126 §2.2: how long a `request_uri` can be used, in seconds.
pub const PUSHED_REQUEST_TTL: i64 = 60;
/// RFC 9126 §2.2: the URN namespace of the `request_uri` values this server makes; the
/// random part follows it.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// Default of [`AuthorityConfig::pushed_requests_max_per_client`].
pub const DEFAULT_MAX_PER_CLIENT: u32 = 1000;
/// Clients whose recent pushes are counted at once; past it the stale counts go, and if
/// none is stale, all of them (the memory stays bounded; the cap is then lax for a minute).
const MAX_COUNTED_CLIENTS: usize = 100_000;

/// RFC 9126 §2.2: the answer to a pushed authorization request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushedAuthorization {
    /// `urn:ietf:params:oauth:request_uri:` and 256 random bits: the single-use reference
    /// to send to `/authorize` with `client_id`.
    pub request_uri: String,
    /// Seconds the `request_uri` stays usable.
    pub expires_in: i64,
}

/// The random part of a `request_uri` in this server's form, if it has that form
/// (`urn:ietf:params:oauth:request_uri:…`). Any other `request_uri` is not a pushed request.
pub fn pushed_reference(request_uri: &str) -> Option<&str> {
    request_uri.strip_prefix(REQUEST_URI_PREFIX)
}

impl Authority {
    /// RFC 9126 §2.1: authenticates the client as the token endpoint does, refuses a
    /// `request_uri` inside the push, validates the request as the authorization endpoint
    /// would (every error is returned, none redirected: §2.3) and keeps its parameters
    /// under a fresh `request_uri` for [`PUSHED_REQUEST_TTL`] seconds.
    pub async fn push_authorization_request(
        &self,
        credentials: &ClientCredentials,
        params: AuthorizeParams,
    ) -> Result<PushedAuthorization, OAuthError> {
        self.push_authorization_request_with_dpop(credentials, params, None)
            .await
    }

    /// [`Authority::push_authorization_request`] with the request's DPoP proof, if it had
    /// one (RFC 9449 §10.1): the code will be bound to its key, which `dpop_jkt`, if given
    /// too, must name.
    pub async fn push_authorization_request_with_dpop(
        &self,
        credentials: &ClientCredentials,
        mut params: AuthorizeParams,
        dpop: Option<crate::dpop::DpopProof<'_>>,
    ) -> Result<PushedAuthorization, OAuthError> {
        let client = self.authenticate_client(credentials).await?;
        if let Some(proof) = dpop {
            let jkt = self.check_dpop_proof(proof, "/par", None).await?;
            if params.dpop_jkt.as_deref().is_some_and(|named| named != jkt) {
                return Err(OAuthError::new(
                    crate::error::ErrorCode::InvalidDpopProof,
                    "dpop_jkt does not name the key of the DPoP proof",
                ));
            }
            params.dpop_jkt = Some(jkt);
        }
        if params
            .client_id
            .as_deref()
            .is_some_and(|id| id != client.id)
        {
            return Err(OAuthError::invalid_request(
                "the client_id parameter is not the authenticated client",
            ));
        }
        if params.request_uri.is_some() {
            return Err(OAuthError::invalid_request(
                "a pushed authorization request cannot carry a request_uri",
            ));
        }
        let params = AuthorizeParams {
            client_id: Some(client.id.clone()),
            ..params
        };
        let stored = StoredParameters::from_params(&params);
        self.check_authorization(params, Channel::Pushed)
            .await
            .map_err(|error| match error {
                // §2.3: what the authorization endpoint shows on a page instead of
                // redirecting (an unregistered redirect URI, say) is `invalid_request` here.
                AuthorizeError::Fatal(text) => OAuthError::invalid_request(text),
                AuthorizeError::Unchecked(error) => error,
                AuthorizeError::Redirect { error, .. } => error,
            })?;
        let now = self.now();
        self.pushes
            .take(&client.id, now, self.config.pushed_requests_max_per_client)?;
        let parameters =
            serde_json::to_string(&stored).map_err(|e| OAuthError::server_error(&e))?;
        let reference = Secret::generate();
        self.store
            .create_pushed_request(&PushedRequest {
                request_hash: reference.storage_hash(),
                client_id: client.id.clone(),
                parameters,
                expires_at: now + PUSHED_REQUEST_TTL,
            })
            .await?;
        Ok(PushedAuthorization {
            request_uri: format!("{REQUEST_URI_PREFIX}{}", reference.expose()),
            expires_in: PUSHED_REQUEST_TTL,
        })
    }

    /// RFC 9126 §4: the parameters of the pushed request `reference` (the random part of
    /// its `request_uri`) for the `client_id` of `params`, taken once. Every other
    /// parameter of `params` is ignored. An unknown, used, expired or another client's
    /// reference is an error page: nothing says yet where a redirect would be safe.
    pub(crate) async fn take_pushed_parameters(
        &self,
        params: &AuthorizeParams,
        reference: &str,
    ) -> Result<AuthorizeParams, AuthorizeError> {
        let fatal = |text: &str| AuthorizeError::Fatal(text.to_string());
        if let Some(name) = params
            .repeated
            .iter()
            .find(|name| *name == "client_id" || *name == "request_uri")
        {
            return Err(fatal(&format!("the {name} parameter is repeated")));
        }
        let client_id = params
            .client_id
            .as_deref()
            .ok_or_else(|| fatal("the client_id parameter is missing"))?;
        self.find_client(client_id)
            .await
            .map_err(AuthorizeError::Unchecked)?
            .ok_or_else(|| fatal("unknown client"))?;
        let unusable = || {
            AuthorizeError::Fatal(format!(
                "{}: the request_uri is unknown, expired, used already or not this client's",
                ErrorCode::InvalidRequestUri.as_str()
            ))
        };
        if !is_random_token(reference, 32) {
            return Err(unusable());
        }
        let pushed = self
            .store
            .take_pushed_request(&hash_for_storage(reference), client_id, self.now())
            .await
            .map_err(|e| AuthorizeError::Unchecked(e.into()))?
            .ok_or_else(unusable)?;
        let stored: StoredParameters = serde_json::from_str(&pushed.parameters).map_err(|e| {
            AuthorizeError::Unchecked(OAuthError::server_error(&format!(
                "a pushed request's parameters do not parse: {e}"
            )))
        })?;
        Ok(stored.into_params(pushed.client_id))
    }
}

/// The parameters of a pushed request as kept in the store: a JSON object of the
/// authorization endpoint's parameters by their names, each a string, except `resource`,
/// an array (RFC 8707 lets it repeat). `client_id` is the record's own column.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    redirect_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    response_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    response_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code_challenge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code_challenge_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_age: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acr_values: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    login_hint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token_hint: Option<String>,
    #[serde(default, rename = "resource", skip_serializing_if = "Vec::is_empty")]
    resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dpop_jkt: Option<String>,
}

impl StoredParameters {
    /// The parameters worth keeping of a request that passed validation. Every field of
    /// [`AuthorizeParams`] is named here, so that a new one cannot be forgotten silently.
    fn from_params(params: &AuthorizeParams) -> Self {
        let AuthorizeParams {
            client_id: _,
            redirect_uri,
            response_type,
            response_mode,
            scope,
            state,
            nonce,
            code_challenge,
            code_challenge_method,
            prompt,
            max_age,
            acr_values,
            login_hint,
            id_token_hint,
            // Refused before anything is kept (request objects are not supported, and a
            // push cannot name another pushed request); a repeat fails validation.
            request: _,
            request_uri: _,
            repeated: _,
            resources,
            dpop_jkt,
        } = params.clone();
        Self {
            redirect_uri,
            response_type,
            response_mode,
            scope,
            state,
            nonce,
            code_challenge,
            code_challenge_method,
            prompt,
            max_age,
            acr_values,
            login_hint,
            id_token_hint,
            resources,
            dpop_jkt,
        }
    }

    fn into_params(self, client_id: String) -> AuthorizeParams {
        AuthorizeParams {
            client_id: Some(client_id),
            redirect_uri: self.redirect_uri,
            response_type: self.response_type,
            response_mode: self.response_mode,
            scope: self.scope,
            state: self.state,
            nonce: self.nonce,
            code_challenge: self.code_challenge,
            code_challenge_method: self.code_challenge_method,
            prompt: self.prompt,
            max_age: self.max_age,
            acr_values: self.acr_values,
            login_hint: self.login_hint,
            id_token_hint: self.id_token_hint,
            request: None,
            request_uri: None,
            resources: self.resources,
            dpop_jkt: self.dpop_jkt,
            repeated: Vec::new(),
        }
    }
}

/// Pushes per client over the last [`PUSHED_REQUEST_TTL`] seconds, estimated from the
/// counts of the current and the previous window (a sliding window in constant memory):
/// at most about as many of the client's pushed requests are live at once.
#[derive(Debug, Default)]
pub(crate) struct PushCounter {
    windows: Mutex<HashMap<String, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: i64,
    current: u64,
    previous: u64,
}

impl PushCounter {
    /// Counts a push of `client_id` at `now`, or refuses it (429, with the seconds until
    /// the count has room again) when `max` pushes fall within the last window already.
    pub(crate) fn take(&self, client_id: &str, now: i64, max: u32) -> Result<(), OAuthError> {
        let length = PUSHED_REQUEST_TTL;
        let start = now - now.rem_euclid(length);
        let mut windows = match self.windows.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if windows.len() >= MAX_COUNTED_CLIENTS && !windows.contains_key(client_id) {
            windows.retain(|_, w| w.start >= start - length);
            if windows.len() >= MAX_COUNTED_CLIENTS {
                windows.clear();
            }
        }
        let window = windows.entry(client_id.to_string()).or_insert(Window {
            start,
            current: 0,
            previous: 0,
        });
        if window.start != start {
            window.previous = if window.start == start - length {
                window.current
            } else {
                0
            };
            window.current = 0;
            window.start = start;
        }
        let elapsed = (now - start) as u64;
        let length = length as u64;
        // The previous window's share rounded up: the estimate errs on the side of the cap.
        let estimate = (window.previous * (length - elapsed)).div_ceil(length) + window.current;
        if estimate >= u64::from(max) {
            return Err(OAuthError::rate_limited(
                Some(length - elapsed),
                "this client has pushed too many authorization requests in the last minute; try again later",
            ));
        }
        window.current += 1;
        Ok(())
    }
}

impl AuthorityConfig {
    /// Whether `client` must push its authorization requests: the client's own setting,
    /// or the server's for every client (`--require-pushed-authorization-requests`).
    pub fn requires_pushed_requests(&self, client: &crate::client::Client) -> bool {
        self.require_pushed_authorization_requests || client.require_pushed_authorization_requests
    }
}
