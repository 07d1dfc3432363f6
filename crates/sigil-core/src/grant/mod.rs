//! The token endpoint (RFC 6749 §3.2): one typed request per grant, one response shape.

mod authorization_code;
mod client_credentials;
mod password;
pub(crate) mod refresh_seal;
mod refresh_token;

use crate::audit::Caller;
use crate::authority::{Authority, ClientCredentials};
use crate::client::{Client, GrantType};
use crate::dpop::ProvenKey;
use crate::error::{ErrorCode, OAuthError};
use crate::factors::Authentication;
use crate::scope::{is_user_scope, ScopeSet};
use crate::secret::{random_token, Secret};
use crate::store::{RefreshFamily, RefreshTokenRecord};
use crate::token::{AccessTokenClaims, IdTokenClaims};
use crate::user::User;
use serde::Serialize;

/// A token request, parsed and validated for shape at the HTTP boundary.
#[derive(Debug, Clone)]
pub enum TokenRequest {
    /// RFC 6749 §4.3. Off unless enabled per client; confidential clients only.
    Password {
        username: String,
        password: Secret,
        scope: Option<ScopeSet>,
        resources: Vec<String>,
    },
    /// RFC 6749 §4.4.
    ClientCredentials {
        scope: Option<ScopeSet>,
        resources: Vec<String>,
    },
    /// RFC 6749 §4.1.3 with RFC 7636 §4.5.
    AuthorizationCode {
        code: Secret,
        redirect_uri: Option<String>,
        code_verifier: Option<Secret>,
        /// RFC 8707 §2.2: some of the resources the authorization request named.
        resources: Vec<String>,
    },
    /// RFC 6749 §6.
    RefreshToken {
        refresh_token: Secret,
        scope: Option<ScopeSet>,
        resources: Vec<String>,
    },
}

/// RFC 6749 §5.1 successful token response.
#[derive(Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    /// An RS256 JWT (RFC 9068, `typ: at+jwt`).
    pub access_token: String,
    /// `DPoP` when the token is bound to the key of the request's DPoP proof (RFC 9449
    /// §5), else `Bearer`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub token_type: &'static str,
    pub expires_in: i64,
    /// The granted scopes; omitted when none were granted (a `client_credentials` token of
    /// a client without non-user scopes).
    #[serde(skip_serializing_if = "String::is_empty")]
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("has_id_token", &self.id_token.is_some())
            .finish_non_exhaustive()
    }
}

/// Everything one token response is made of, but the signatures.
pub(crate) struct Issuance<'a> {
    pub subject: Subject<'a>,
    pub scope: &'a ScopeSet,
    pub audience: Vec<String>,
    /// The refresh token handed out with the access token, and the family both belong to.
    pub refresh: Option<NewRefreshToken>,
    /// OIDC `nonce` for the ID token.
    pub nonce: Option<String>,
    /// Fixed `jti` and issue time (the code flow records them before signing).
    pub ids: Option<(String, i64)>,
    /// The DPoP key the access token is bound to (RFC 9449 §6.1); its proof's use is
    /// recorded before the tokens are signed.
    pub dpop: Option<&'a ProvenKey>,
}

/// A refresh token just created (a family's first, or a rotation's successor).
pub(crate) struct NewRefreshToken {
    pub family_id: String,
    pub token: Secret,
}

/// Who a token is for.
pub(crate) enum Subject<'a> {
    User {
        user: &'a User,
        auth: &'a Authentication,
    },
    Client,
}

impl Authority {
    /// Handles a token request from an authenticated-or-identified client. Whether the
    /// client may use the grant is decided here, once; each grant's file starts after it.
    pub async fn token(
        &self,
        credentials: &ClientCredentials,
        request: TokenRequest,
        caller: &Caller,
    ) -> Result<TokenResponse, OAuthError> {
        self.token_with_dpop(credentials, request, None, caller)
            .await
    }

    /// [`Authority::token`] with the request's DPoP proof, if it had one (RFC 9449 §5):
    /// checked after the client is authenticated; a good one binds the access token (and
    /// a public client's refresh tokens) to its key.
    pub async fn token_with_dpop(
        &self,
        credentials: &ClientCredentials,
        request: TokenRequest,
        dpop: Option<crate::dpop::DpopProof<'_>>,
        caller: &Caller,
    ) -> Result<TokenResponse, OAuthError> {
        let client = self.authenticate_client(credentials).await?;
        check_client_may_use(&client, request.grant_type())?;
        let key =
            match dpop {
                Some(proof) => Some(self.verify_dpop_proof(proof, "/token", None).await?),
                None if client.dpop_bound_access_tokens => return Err(OAuthError::new(
                    ErrorCode::InvalidDpopProof,
                    "this client's tokens are DPoP-bound: send a DPoP proof with the token request",
                )),
                None => None,
            };
        let proven = key.as_ref();
        match request {
            TokenRequest::Password {
                username,
                password,
                scope,
                resources,
            } => {
                self.password_grant(
                    &client, &username, password, scope, &resources, proven, caller,
                )
                .await
            }
            TokenRequest::ClientCredentials { scope, resources } => {
                self.client_credentials_grant(&client, scope, &resources, proven)
                    .await
            }
            TokenRequest::AuthorizationCode {
                code,
                redirect_uri,
                code_verifier,
                resources,
            } => {
                self.authorization_code_grant(
                    &client,
                    code,
                    redirect_uri,
                    code_verifier,
                    &resources,
                    proven,
                )
                .await
            }
            TokenRequest::RefreshToken {
                refresh_token,
                scope,
                resources,
            } => {
                self.refresh_token_grant(&client, refresh_token, scope, &resources, proven, caller)
                    .await
            }
        }
    }

    /// RFC 6749 §3.3: the requested scope must be within `allowed`; omitted means all of it.
    pub(crate) fn resolve_scope(
        requested: Option<ScopeSet>,
        allowed: &ScopeSet,
    ) -> Result<ScopeSet, OAuthError> {
        match requested {
            None => Ok(allowed.clone()),
            Some(requested) => {
                let extra = requested.difference(allowed);
                if extra.is_empty() {
                    Ok(requested)
                } else {
                    Err(OAuthError::invalid_scope(format!(
                        "scope not allowed: {}",
                        extra.join(" ")
                    )))
                }
            }
        }
    }

    /// RFC 8707 §2: the `resource` values of a request, checked. Each must be an absolute
    /// URI without a fragment and one the client may use: one of its audiences, or a
    /// registered resource open to self-registered clients when the client registered itself.
    /// The registry's rule comes on top: every scope that is not OpenID Connect's must be
    /// accepted by one of the named resources (a resource that is only an audience, not
    /// registered, accepts any). Returns the resources, each once, in request order.
    pub(crate) async fn check_resources(
        &self,
        client: &Client,
        resources: &[String],
        scope: &ScopeSet,
    ) -> Result<Vec<String>, OAuthError> {
        let mut named: Vec<String> = Vec::new();
        let mut accepted: Option<Vec<String>> = Some(Vec::new());
        for resource in resources {
            if !crate::resource::is_resource_identifier(resource) {
                return Err(OAuthError::new(
                    ErrorCode::InvalidTarget,
                    "resource must be an absolute URI without a fragment (RFC 8707 §2)",
                ));
            }
            if named.contains(resource) {
                continue;
            }
            let registered = self.store.find_resource(resource).await?;
            let audience = client.audiences.iter().any(|a| a == resource);
            let open = registered
                .as_ref()
                .is_some_and(|r| r.self_registered_clients && client.is_self_registered());
            if !audience && !open {
                return Err(OAuthError::new(
                    ErrorCode::InvalidTarget,
                    "this client may not ask for tokens for that resource",
                ));
            }
            match (registered, accepted.as_mut()) {
                (Some(r), Some(scopes)) => scopes.extend(r.scopes),
                (None, _) => accepted = None,
                _ => {}
            }
            named.push(resource.clone());
        }
        if let (Some(accepted), false) = (accepted, named.is_empty()) {
            let others = scope.without_user_scopes();
            let refused: Vec<&str> = others
                .iter()
                .filter(|s| !accepted.iter().any(|a| a == s))
                .collect();
            if !refused.is_empty() {
                return Err(OAuthError::invalid_scope(format!(
                    "scope not accepted by the requested resource: {}",
                    refused.join(" ")
                )));
            }
        }
        Ok(named)
    }

    /// The scope and resources of a grant that asks for both at once (password, client
    /// credentials): a scope asked for must be within `allowed` and accepted by the named
    /// resources; an omitted one is `allowed`, narrowed to what the resources accept.
    pub(crate) async fn scope_and_resources(
        &self,
        client: &Client,
        requested: Option<ScopeSet>,
        allowed: &ScopeSet,
        resources: &[String],
    ) -> Result<(ScopeSet, Vec<String>), OAuthError> {
        match requested {
            Some(requested) => {
                let scope = Self::resolve_scope(Some(requested), allowed)?;
                let named = self.check_resources(client, resources, &scope).await?;
                Ok((scope, named))
            }
            None => {
                let named = self
                    .check_resources(client, resources, &ScopeSet::default())
                    .await?;
                let scope = self.scope_for_resources(allowed, &named).await?;
                Ok((scope, named))
            }
        }
    }

    /// The `aud` of an access token for `resources` (already checked): exactly those, or
    /// without any, the client's first audience (or, if it has none, the issuer itself).
    pub(crate) fn audience_for(&self, client: &Client, resources: &[String]) -> Vec<String> {
        if resources.is_empty() {
            return vec![client
                .audiences
                .first()
                .cloned()
                .unwrap_or_else(|| self.config.issuer.clone())];
        }
        resources.to_vec()
    }

    /// RFC 8707 §2.2: at the token endpoint, the resources asked for must be among those
    /// granted (when the grant named any); without any, all of the granted ones.
    pub(crate) async fn narrow_resources(
        &self,
        client: &Client,
        granted: &[String],
        requested: &[String],
        scope: &ScopeSet,
    ) -> Result<Vec<String>, OAuthError> {
        if granted.is_empty() {
            return self.check_resources(client, requested, scope).await;
        }
        if requested.is_empty() {
            return Ok(granted.to_vec());
        }
        let mut out: Vec<String> = Vec::new();
        for resource in requested {
            if !granted.contains(resource) {
                return Err(OAuthError::new(
                    ErrorCode::InvalidTarget,
                    "resource was not part of the grant: a token request may only narrow the resources",
                ));
            }
            if !out.contains(resource) {
                out.push(resource.clone());
            }
        }
        Ok(out)
    }

    /// The scope of a token for some of a grant's resources: when every one of them is
    /// registered, the scopes none of them accepts are left out (OpenID Connect's stay).
    pub(crate) async fn scope_for_resources(
        &self,
        scope: &ScopeSet,
        resources: &[String],
    ) -> Result<ScopeSet, OAuthError> {
        if resources.is_empty() {
            return Ok(scope.clone());
        }
        let mut accepted: Vec<String> = Vec::new();
        for resource in resources {
            match self.store.find_resource(resource).await? {
                Some(r) => accepted.extend(r.scopes),
                None => return Ok(scope.clone()),
            }
        }
        Ok(ScopeSet::from_list(
            scope
                .iter()
                .filter(|s| is_user_scope(s) || accepted.iter().any(|a| a == s))
                .map(str::to_string),
        ))
    }

    pub(crate) fn access_token_ttl(&self, client: &Client) -> i64 {
        client
            .access_token_ttl
            .unwrap_or(self.config.access_token_ttl)
    }

    /// Builds the access token (and the ID token when `openid` is in scope), signs both in
    /// one trip to the signing pool, and makes the response.
    /// `ids` fixes the access token's `jti` and issue time (the code flow records them
    /// before signing); `None` picks fresh ones.
    pub(crate) async fn issue(
        &self,
        client: &Client,
        issuance: Issuance<'_>,
    ) -> Result<TokenResponse, OAuthError> {
        let Issuance {
            subject,
            scope,
            audience,
            refresh,
            nonce,
            ids,
            dpop,
        } = issuance;
        if let Some(key) = dpop {
            self.record_dpop_use(key).await?;
        }
        let jkt = dpop.map(|key| key.jkt.as_str());
        self.note_first_use(client).await;
        let (jti, now) = ids.unwrap_or_else(|| (random_token(16), self.now()));
        let ttl = self.access_token_ttl(client);
        let scope_text = scope.to_string();
        let (sub, auth, epoch) = match &subject {
            Subject::User { user, auth } => {
                (user.id.clone(), Some(*auth), Some(user.session_epoch))
            }
            Subject::Client => (client.id.clone(), None, None),
        };
        let access = AccessTokenClaims {
            iss: self.config.issuer.clone(),
            sub,
            aud: audience,
            exp: now + ttl,
            iat: now,
            jti,
            client_id: client.id.clone(),
            scope: scope_text.clone(),
            auth_time: auth.map(|a| a.auth_time),
            acr: auth.map(|a| a.acr.clone()),
            amr: auth.map(|a| a.amr.clone()),
            fid: refresh.as_ref().map(|r| r.family_id.clone()),
            sep: epoch,
            cnf: jkt.map(|jkt| crate::dpop::Confirmation {
                jkt: jkt.to_string(),
            }),
        };
        let id = match subject {
            Subject::User { user, auth } if scope.contains("openid") => {
                Some(self.id_token_claims(client, user, auth, scope, nonce))
            }
            _ => None,
        };
        let (access_token, id_token) = self.sign_tokens(access, id).await?;
        Ok(TokenResponse {
            access_token,
            token_type: if jkt.is_some() { "DPoP" } else { "Bearer" },
            expires_in: ttl,
            scope: scope_text,
            refresh_token: refresh.map(|r| r.token.expose().to_string()),
            id_token,
        })
    }

    /// The ID token's claims; its `at_hash` is filled in when the access token is signed.
    fn id_token_claims(
        &self,
        client: &Client,
        user: &User,
        auth: &Authentication,
        scope: &ScopeSet,
        nonce: Option<String>,
    ) -> IdTokenClaims {
        let now = self.now();
        let profile = scope.contains("profile");
        let email = scope.contains("email");
        IdTokenClaims {
            iss: self.config.issuer.clone(),
            sub: user.id.clone(),
            aud: client.id.clone(),
            exp: now + self.config.id_token_ttl,
            iat: now,
            auth_time: auth.auth_time,
            acr: Some(auth.acr.clone()),
            amr: Some(auth.amr.clone()),
            nonce,
            at_hash: None,
            azp: Some(client.id.clone()),
            name: user.name.clone().filter(|_| profile),
            preferred_username: profile.then(|| user.username.clone()),
            email: user.email.clone().filter(|_| email),
            email_verified: (email && user.email.is_some()).then_some(user.email_verified),
            sid: auth.sid.clone(),
        }
    }

    /// Whether this grant gets a refresh token: the client may use the refresh grant, and
    /// `offline_access` was granted or the client's policy always issues one.
    pub(crate) fn wants_refresh_token(client: &Client, scope: &ScopeSet) -> bool {
        client.allows_grant(GrantType::RefreshToken)
            && (scope.contains("offline_access") || client.always_issue_refresh_token)
    }

    /// Opens a new refresh-token family and returns its first token.
    pub(crate) async fn start_refresh_family(
        &self,
        client: &Client,
        user: &User,
        scope: &ScopeSet,
        auth: &Authentication,
        resources: &[String],
        dpop: Option<&ProvenKey>,
    ) -> Result<NewRefreshToken, OAuthError> {
        let now = self.now();
        let family = RefreshFamily {
            id: random_token(16),
            client_id: client.id.clone(),
            user_id: user.id.clone(),
            scope: scope.to_string(),
            auth_time: auth.auth_time,
            acr: auth.acr.clone(),
            amr: auth.amr_text(),
            sid: auth.sid.clone(),
            resources: resources.to_vec(),
            // RFC 9449 §5.2: a confidential client's refresh tokens are bound to it by its
            // authentication already; a public client's are bound to its DPoP key.
            dpop_jkt: dpop
                .filter(|_| !client.is_confidential())
                .map(|key| key.jkt.clone()),
            created_at: now,
            expires_at: now + self.refresh_token_absolute_ttl(client),
            revoked_at: None,
        };
        let token = Secret::generate();
        let record = RefreshTokenRecord {
            id: random_token(16),
            family_id: family.id.clone(),
            token_hash: token.storage_hash(),
            parent_id: None,
            created_at: now,
            expires_at: (now + self.refresh_token_ttl(client)).min(family.expires_at),
            used_at: None,
            sealed_successor: None,
        };
        self.store.create_refresh_family(&family, &record).await?;
        Ok(NewRefreshToken {
            family_id: family.id,
            token,
        })
    }

    /// A refresh token's idle lifetime: the client's own, else the server's for its kind
    /// (public clients, which cannot keep a secret, get the shorter one).
    pub(crate) fn refresh_token_ttl(&self, client: &Client) -> i64 {
        client
            .refresh_token_ttl
            .unwrap_or(if client.is_confidential() {
                self.config.refresh_token_ttl
            } else {
                self.config.public_client_refresh_token_ttl
            })
    }

    /// A refresh-token family's absolute lifetime for `client`'s kind.
    pub(crate) fn refresh_token_absolute_ttl(&self, client: &Client) -> i64 {
        if client.is_confidential() {
            self.config.refresh_token_absolute_ttl
        } else {
            self.config
                .public_client_refresh_token_absolute_ttl
                .min(self.config.refresh_token_absolute_ttl)
        }
    }
}

impl TokenRequest {
    /// The grant this request asks for.
    pub fn grant_type(&self) -> GrantType {
        match self {
            TokenRequest::Password { .. } => GrantType::Password,
            TokenRequest::ClientCredentials { .. } => GrantType::ClientCredentials,
            TokenRequest::AuthorizationCode { .. } => GrantType::AuthorizationCode,
            TokenRequest::RefreshToken { .. } => GrantType::RefreshToken,
        }
    }
}

/// RFC 6749 §5.2 `unauthorized_client`: the client must be registered for the grant, and
/// the two grants in which the client vouches for the request itself, `password` (§4.3.2)
/// and `client_credentials` (§4.4.2), need a confidential client.
fn check_client_may_use(client: &Client, grant: GrantType) -> Result<(), OAuthError> {
    let may_not = || {
        OAuthError::unauthorized_client(format!(
            "this client may not use the {} grant",
            grant.as_str()
        ))
    };
    match grant {
        GrantType::ClientCredentials if !client.is_confidential() => Err(
            OAuthError::unauthorized_client("public clients cannot use client_credentials"),
        ),
        GrantType::Password if !client.is_confidential() => Err(may_not()),
        _ if !client.allows_grant(grant) => Err(may_not()),
        _ => Ok(()),
    }
}

/// RFC 3986 §4.3 absolute-URI (scheme ":" hier-part), and no fragment.
#[cfg(test)]
mod client_may_use_tests;
#[cfg(test)]
pub(crate) mod tests;
