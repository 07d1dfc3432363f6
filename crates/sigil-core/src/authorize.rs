//! The authorization endpoint (RFC 6749 §4.1.1, RFC 7636, OIDC Core §3.1.2): validation in
//! the order RFC 6749 §4.1.2.1 demands, the sign-in / consent decision, and code issuance.

use crate::audit::Caller;
use crate::authority::Authority;
use crate::client::{redirect_uri_matches, Client, GrantType};
use crate::error::{ErrorCode, OAuthError};
use crate::factors::{level, Authentication, Level, Method, UsedMethod};
use crate::pkce::is_valid_s256_challenge;
use crate::scope::ScopeSet;
use crate::secret::Secret;
use crate::store::{AuthorizationCode, FactorKind};
use crate::token::{verify_jwt, IdTokenClaims, ID_TOKEN_TYP};
use crate::user::User;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Lifetime of an authorization code, in seconds.
pub const CODE_TTL: i64 = 60;
/// Longest accepted `state`, `nonce` or `login_hint`.
const MAX_PARAM_LEN: usize = 2048;

/// The query (or form) parameters of an authorization request, as received.
#[derive(Debug, Default, Clone)]
pub struct AuthorizeParams {
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub response_type: Option<String>,
    pub response_mode: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    /// OIDC Core §3.1.2.1: the authentication levels asked for, in order of preference.
    pub acr_values: Option<String>,
    pub login_hint: Option<String>,
    /// OIDC Core §3.1.2.1: an ID token we issued earlier, naming the user the client expects.
    pub id_token_hint: Option<String>,
    /// OIDC Core §6 request objects: not supported, refused with `request_not_supported`.
    pub request: Option<String>,
    /// RFC 9126 §4: the `urn:ietf:params:oauth:request_uri:…` reference of a pushed
    /// request, which then stands for every parameter but `client_id`. Any other value
    /// (OIDC Core §6 request objects by reference) is refused with `request_uri_not_supported`.
    pub request_uri: Option<String>,
    /// RFC 8707 §2: the resources the tokens are for (the parameter may repeat).
    pub resources: Vec<String>,
    /// RFC 9449 §10: the thumbprint of the DPoP key the code is to be bound to.
    pub dpop_jkt: Option<String>,
    /// Names of parameters that appeared more than once (RFC 6749 §3.1 forbids it).
    pub repeated: Vec<String>,
}

/// A validated authorization request, kept in the session while the user signs in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub redirect_uri_given: bool,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub prompt_none: bool,
    pub prompt_login: bool,
    pub prompt_consent: bool,
    pub max_age: Option<i64>,
    /// The weakest authentication level `acr_values` is content with (none: no demand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr_level: Option<Level>,
    pub login_hint: Option<String>,
    /// The `sub` of a valid `id_token_hint`: the user the client expects to be signed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint_subject: Option<String>,
    /// RFC 8707: the resources named, checked for the client (empty: none named).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// RFC 9449 §10: the DPoP key thumbprint the code will be bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
}

/// Why an authorization request failed, and so how to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or the redirect URI cannot be trusted: an error page, never a redirect.
    Fatal(String),
    /// The request could not be checked (the database is unavailable, or an internal
    /// failure): an error page with the error's description, never a redirect.
    Unchecked(OAuthError),
    /// Redirect to the (registered) redirect URI with `error`, `state` and `iss`.
    Redirect {
        redirect_uri: String,
        error: OAuthError,
        state: Option<String>,
    },
}

/// Who is signed in to the browser session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignedIn {
    pub user_id: String,
    pub auth_time: i64,
    /// The user's `session_epoch` at sign-in.
    #[serde(default)]
    pub session_epoch: i64,
    /// The session's record in the store (`BrowserSessionStore`), which the user can end
    /// from the account page. Sessions signed in before it existed have none.
    #[serde(default)]
    pub session_id: Option<String>,
    /// How the user proved who they are in this session, and when: the password, a second
    /// factor, a step-up later on. Sessions from before methods were kept have none and
    /// count as a password at `auth_time`.
    #[serde(default)]
    pub methods: Vec<UsedMethod>,
}

impl SignedIn {
    /// The methods of the session's sign-in (see [`SignedIn::methods`]).
    pub fn used_methods(&self) -> Vec<UsedMethod> {
        if self.methods.is_empty() {
            return vec![UsedMethod {
                method: Method::Password,
                at: self.auth_time,
            }];
        }
        self.methods.clone()
    }

    /// The level the session's sign-in reached.
    pub fn level(&self) -> Level {
        level(&self.used_methods())
    }

    /// What tokens issued from this session say about its sign-in.
    pub fn authentication(&self) -> Authentication {
        Authentication::of(&self.used_methods(), self.auth_time).in_session(
            self.session_id
                .as_deref()
                .map(crate::backchannel::session_sid),
        )
    }

    /// Notes a further method (a step-up) used at `at`, which becomes the `auth_time`.
    pub fn add_method(&mut self, method: Method, at: i64) {
        self.methods = self.used_methods();
        self.methods.push(UsedMethod { method, at });
        self.auth_time = at;
    }

    /// Whether this session still counts for `user`: the account is enabled and nothing
    /// (disabling, a password reset) ended its sessions since.
    pub fn is_valid_for(&self, user: &User) -> bool {
        user.id == self.user_id && !user.is_disabled && self.session_epoch == user.session_epoch
    }
}

/// What the browser flow must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Login,
    /// The user is signed in but must choose a new password before anything is issued
    /// (a one-time password set by an admin, or the bootstrap admin's).
    ChangePassword,
    Consent,
    /// The user must prove a second factor now (a step-up, or a requirement of the
    /// policy): with a passkey, when `passkey_only` (the client asked for `phr`).
    SecondFactor {
        passkey_only: bool,
    },
    /// The user must have a second factor (`passkey`: a passkey) and has none: they add
    /// one first, which also proves it.
    EnrollSecondFactor {
        passkey: bool,
    },
    /// Everything is in place: issue a code for this user.
    Issue {
        user: Box<User>,
        auth: Authentication,
    },
}

impl AuthorizationRequest {
    fn redirect_error(&self, error: OAuthError) -> AuthorizeError {
        AuthorizeError::Redirect {
            redirect_uri: self.redirect_uri.clone(),
            error,
            state: self.state.clone(),
        }
    }
    pub fn scopes(&self) -> ScopeSet {
        ScopeSet::parse(&self.scope).unwrap_or_default()
    }
}

/// How an authorization request reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channel {
    /// In the browser's request to the authorization endpoint.
    FrontChannel,
    /// Pushed by the client first (RFC 9126): at the push, and again when its
    /// `request_uri` comes back.
    Pushed,
}

impl Authority {
    /// Validates a request to the authorization endpoint. Unknown client and unregistered
    /// redirect URI are fatal; every later error is redirected to the registered URI. A
    /// `request_uri` of a pushed request (RFC 9126 §4) is taken, once, and its parameters
    /// are validated instead of the others.
    pub async fn validate_authorization(
        &self,
        params: AuthorizeParams,
    ) -> Result<(Arc<Client>, AuthorizationRequest), AuthorizeError> {
        match params
            .request_uri
            .as_deref()
            .and_then(crate::par::pushed_reference)
        {
            Some(reference) => {
                let pushed = self.take_pushed_parameters(&params, reference).await?;
                self.check_authorization(pushed, Channel::Pushed).await
            }
            None => {
                self.check_authorization(params, Channel::FrontChannel)
                    .await
            }
        }
    }

    /// The validation of an authorization request, however it came.
    pub(crate) async fn check_authorization(
        &self,
        params: AuthorizeParams,
        channel: Channel,
    ) -> Result<(Arc<Client>, AuthorizationRequest), AuthorizeError> {
        let fatal = |text: &str| AuthorizeError::Fatal(text.to_string());
        let is_repeated = |name: &str| params.repeated.iter().any(|r| r == name);
        if is_repeated("client_id") {
            return Err(fatal("the client_id parameter is repeated"));
        }
        let client_id = params
            .client_id
            .as_deref()
            .ok_or_else(|| fatal("the client_id parameter is missing"))?;
        let client = self
            .find_client(client_id)
            .await
            .map_err(AuthorizeError::Unchecked)?
            .ok_or_else(|| fatal("unknown client"))?;
        if is_repeated("redirect_uri") {
            return Err(fatal("the redirect_uri parameter is repeated"));
        }
        // RFC 6749 §3.1.2.3: exact string match against the registered URIs, except the
        // port of a loopback IP redirect (RFC 8252 §7.3). The URI as requested is the one
        // redirected to and bound to the code, so /token must repeat it exactly.
        let (redirect_uri, redirect_uri_given) = match params.redirect_uri.as_deref() {
            Some(uri)
                if client
                    .redirect_uris
                    .iter()
                    .any(|r| redirect_uri_matches(r, uri)) =>
            {
                (uri.to_string(), true)
            }
            Some(_) => return Err(fatal("the redirect_uri is not registered for this client")),
            // OIDC Core §3.1.2.1: REQUIRED in an OpenID Connect request. RFC 6749 §4.1.2.1:
            // without one there is nowhere safe to redirect, so it is an error page.
            None if is_openid_request(params.scope.as_deref()) => {
                return Err(fatal(
                    "the redirect_uri parameter is required in an OpenID Connect request (scope openid)",
                ))
            }
            None => match client.redirect_uris.as_slice() {
                [only] => (only.clone(), false),
                _ => return Err(fatal("the redirect_uri parameter is required")),
            },
        };
        let state_repeated = is_repeated("state");
        let mut request = AuthorizationRequest {
            client_id: client.id.clone(),
            redirect_uri,
            redirect_uri_given,
            scope: String::new(),
            state: if state_repeated {
                None
            } else {
                params.state.clone()
            },
            nonce: params.nonce.clone(),
            code_challenge: String::new(),
            prompt_none: false,
            prompt_login: false,
            prompt_consent: false,
            max_age: None,
            acr_level: None,
            login_hint: params.login_hint.clone(),
            hint_subject: None,
            resources: Vec::new(),
            dpop_jkt: None,
        };
        let invalid = |text: &str| OAuthError::invalid_request(text);
        if let Some(name) = params.repeated.first() {
            return Err(
                request.redirect_error(invalid(&format!("the {name} parameter is repeated")))
            );
        }
        // RFC 9126 §4: a client (or every client) that must push its requests is refused
        // any other way in.
        if channel == Channel::FrontChannel && self.config.requires_pushed_requests(&client) {
            return Err(request.redirect_error(invalid(
                "this client must push its authorization requests to the pushed authorization request endpoint (RFC 9126) and send the request_uri",
            )));
        }
        // OIDC Core §6: request objects are not supported; the request they carry may differ
        // from the plain parameters, so nothing else is looked at.
        if params.request.is_some() {
            return Err(request.redirect_error(OAuthError::new(
                ErrorCode::RequestNotSupported,
                "request objects (the request parameter) are not supported",
            )));
        }
        if params.request_uri.is_some() {
            return Err(request.redirect_error(OAuthError::new(
                ErrorCode::RequestUriNotSupported,
                "the request_uri parameter is not supported",
            )));
        }
        for (name, value) in [
            ("state", &params.state),
            ("nonce", &params.nonce),
            ("login_hint", &params.login_hint),
            ("acr_values", &params.acr_values),
        ] {
            if value.as_ref().is_some_and(|v| v.len() > MAX_PARAM_LEN) {
                request.state = None;
                return Err(
                    request.redirect_error(invalid(&format!("the {name} parameter is too long")))
                );
            }
        }
        match params.response_type.as_deref() {
            None => {
                return Err(
                    request.redirect_error(invalid("the response_type parameter is missing"))
                )
            }
            Some("code") => {}
            Some(_) => {
                return Err(request.redirect_error(OAuthError::new(
                    ErrorCode::UnsupportedResponseType,
                    "only response_type=code is supported",
                )))
            }
        }
        if params
            .response_mode
            .as_deref()
            .is_some_and(|m| m != "query")
        {
            return Err(request.redirect_error(invalid("only response_mode=query is supported")));
        }
        if !client.allows_grant(GrantType::AuthorizationCode) {
            return Err(request.redirect_error(OAuthError::unauthorized_client(
                "this client may not use the authorization code flow",
            )));
        }
        // RFC 7636 and RFC 9700 §2.1.1: PKCE for every client, S256 only.
        let challenge = params.code_challenge.as_deref().ok_or_else(|| {
            request.redirect_error(invalid(
                "PKCE is required: send code_challenge with code_challenge_method=S256",
            ))
        })?;
        if params.code_challenge_method.as_deref() != Some("S256") {
            return Err(request.redirect_error(invalid("code_challenge_method must be S256")));
        }
        if !is_valid_s256_challenge(challenge) {
            return Err(
                request.redirect_error(invalid("code_challenge is not a valid S256 challenge"))
            );
        }
        request.code_challenge = challenge.to_string();
        let scope = params
            .scope
            .as_deref()
            .ok_or_else(|| {
                request.redirect_error(OAuthError::invalid_scope("the scope parameter is missing"))
            })
            .and_then(|s| ScopeSet::parse(s).map_err(|e| request.redirect_error(e)))?;
        if scope.is_empty() {
            return Err(
                request.redirect_error(OAuthError::invalid_scope("the scope parameter is empty"))
            );
        }
        let not_allowed = scope.difference(&client.allowed_scopes());
        if !not_allowed.is_empty() {
            return Err(request.redirect_error(OAuthError::invalid_scope(format!(
                "scope not allowed: {}",
                not_allowed.join(" ")
            ))));
        }
        request.resources = self
            .check_resources(&client, &params.resources, &scope)
            .await
            .map_err(|e| request.redirect_error(e))?;
        request.scope = scope.to_string();
        if let Some(jkt) = params.dpop_jkt.as_deref() {
            if !crate::dpop::is_thumbprint(jkt) {
                return Err(request.redirect_error(invalid(
                    "dpop_jkt must be a JWK SHA-256 thumbprint (43 base64url characters)",
                )));
            }
            request.dpop_jkt = Some(jkt.to_string());
        }
        if let Some(prompt) = params.prompt.as_deref() {
            let values: Vec<&str> = prompt.split(' ').filter(|v| !v.is_empty()).collect();
            for value in &values {
                match *value {
                    "none" => request.prompt_none = true,
                    "login" | "select_account" => request.prompt_login = true,
                    "consent" => request.prompt_consent = true,
                    _ => return Err(request.redirect_error(invalid("unsupported prompt value"))),
                }
            }
            if request.prompt_none && values.len() > 1 {
                return Err(request
                    .redirect_error(invalid("prompt=none cannot be combined with other values")));
            }
        }
        if let Some(max_age) = params.max_age.as_deref() {
            match max_age.parse::<i64>() {
                Ok(seconds) if seconds >= 0 => request.max_age = Some(seconds),
                _ => {
                    return Err(request
                        .redirect_error(invalid("max_age must be a whole number of seconds")))
                }
            }
        }
        // Values we do not know are passed over (OIDC Core §3.1.2.1: acr_values are a
        // voluntary request); of ours, the weakest named is what the client is content with.
        request.acr_level = params
            .acr_values
            .as_deref()
            .and_then(Level::requested)
            .filter(|level| *level > Level::OneFactor);
        if let Some(hint) = params.id_token_hint.as_deref() {
            let subject = self
                .id_token_hint_subject(hint, &client)
                .map_err(|text| request.redirect_error(invalid(text)))?;
            request.hint_subject = Some(subject);
        }
        Ok((client, request))
    }

    /// OIDC Core §3.1.2.1 `id_token_hint`: an ID token this server issued (our signature and
    /// `typ`, our `iss`) to this client (`aud`). An expired one is still a fine hint. Returns
    /// its `sub`.
    fn id_token_hint_subject(&self, hint: &str, client: &Client) -> Result<String, &'static str> {
        let claims: IdTokenClaims = verify_jwt(&self.keys.current(), hint, ID_TOKEN_TYP)
            .map_err(|_| "the id_token_hint is not a valid ID token from this server")?;
        if claims.iss != self.config.issuer {
            return Err("the id_token_hint was issued by another server");
        }
        if claims.aud != client.id {
            return Err("the id_token_hint was issued to another client");
        }
        Ok(claims.sub)
    }

    /// Decides what the browser must do next for a validated request. `login_done` and
    /// `consent_done` say that this very request just went through the login or consent page.
    pub async fn decide(
        &self,
        request: &AuthorizationRequest,
        signed_in: Option<&SignedIn>,
        login_done: bool,
        consent_done: bool,
    ) -> Result<Decision, AuthorizeError> {
        let server_error = |e: OAuthError| request.redirect_error(e);
        let client = self
            .find_client(&request.client_id)
            .await
            .map_err(server_error)?
            .ok_or_else(|| AuthorizeError::Fatal("unknown client".into()))?;
        let user = match signed_in {
            Some(s) => self
                .signed_in_user(s)
                .await
                .map_err(|e| server_error(e.into()))?
                .map(|u| (u, s.auth_time)),
            None => None,
        };
        let now = self.now();
        // OIDC Core §3.1.2.1: a hint naming another user than the signed-in one asks for
        // that user to sign in (after this request's own login, whoever signed in stands).
        let is_other_user = |user: &User| {
            request
                .hint_subject
                .as_deref()
                .is_some_and(|sub| sub != user.id)
        };
        let needs_login = match &user {
            None => true,
            Some((user, auth_time)) => {
                !login_done
                    && (request.prompt_login
                        // OIDC Core §3.1.2.1 (errata set 2): max_age=0 means prompt=login,
                        // even within the second the session signed in.
                        || request
                            .max_age
                            .is_some_and(|max| max == 0 || now - auth_time > max)
                        || is_other_user(user))
            }
        };
        if needs_login {
            if request.prompt_none {
                let description = match &user {
                    Some((user, _)) if is_other_user(user) => {
                        "the signed-in user is not the one the id_token_hint names"
                    }
                    Some(_) => "the user must sign in again",
                    None => "the user is not signed in",
                };
                return Err(
                    request.redirect_error(OAuthError::new(ErrorCode::LoginRequired, description))
                );
            }
            return Ok(Decision::Login);
        }
        let Some((user, _)) = user else {
            return Ok(Decision::Login);
        };
        let Some(signed_in) = signed_in else {
            return Ok(Decision::Login);
        };
        if user.must_change_password {
            if request.prompt_none {
                return Err(request.redirect_error(OAuthError::new(
                    ErrorCode::InteractionRequired,
                    "the user must choose a new password",
                )));
            }
            return Ok(Decision::ChangePassword);
        }
        if let Some(step) = self.missing_factor(request, &user, signed_in).await? {
            if request.prompt_none {
                return Err(request.redirect_error(OAuthError::new(
                    ErrorCode::LoginRequired,
                    "the user must sign in with a second factor",
                )));
            }
            return Ok(step);
        }
        let needs_consent = !consent_done
            && (request.prompt_consent
                || (!client.is_first_party
                    && !self.has_consent(&user.id, &client.id, request).await?));
        if needs_consent {
            if request.prompt_none {
                return Err(request.redirect_error(OAuthError::new(
                    ErrorCode::ConsentRequired,
                    "the user has not consented to this client",
                )));
            }
            return Ok(Decision::Consent);
        }
        Ok(Decision::Issue {
            user: Box::new(user),
            auth: signed_in.authentication(),
        })
    }

    /// What the user must still do for the level the policy requires of them, or the
    /// request asks for (`acr_values`): prove a factor they have, or add one. `None`
    /// when the session is strong enough.
    async fn missing_factor(
        &self,
        request: &AuthorizationRequest,
        user: &User,
        signed_in: &SignedIn,
    ) -> Result<Option<Decision>, AuthorizeError> {
        let requested = request.acr_level.unwrap_or(Level::OneFactor);
        let have = signed_in.level();
        if have >= requested.max(Level::TwoFactor) {
            return Ok(None);
        }
        // A user with a second factor signs in with it, whatever the client asked for
        // (a session that reached the account otherwise, say after a password reset,
        // must still prove it); so does a user the policy requires one of.
        let factors = self
            .store
            .list_factors(&user.id)
            .await
            .map_err(|e| request.redirect_error(e.into()))?;
        let confirmed: Vec<_> = factors.iter().filter(|f| f.is_confirmed()).collect();
        let required = if self.config.mfa.requires(user) || !confirmed.is_empty() {
            Level::TwoFactor
        } else {
            Level::OneFactor
        };
        let wanted = requested.max(required);
        if have >= wanted {
            return Ok(None);
        }
        let passkey_only = wanted == Level::PhishingResistant;
        let usable = confirmed
            .iter()
            .filter(|f| !passkey_only || f.kind == FactorKind::Passkey)
            .count();
        Ok(Some(if usable > 0 {
            Decision::SecondFactor { passkey_only }
        } else {
            Decision::EnrollSecondFactor {
                passkey: passkey_only,
            }
        }))
    }

    async fn has_consent(
        &self,
        user_id: &str,
        client_id: &str,
        request: &AuthorizationRequest,
    ) -> Result<bool, AuthorizeError> {
        let granted = self
            .store
            .find_consent(user_id, client_id)
            .await
            .map_err(|e| request.redirect_error(e.into()))?;
        Ok(granted.is_some_and(|g| {
            request
                .scopes()
                .is_subset_of(&ScopeSet::parse(&g).unwrap_or_default())
        }))
    }

    /// Remembers that the user consented to the request's scopes (added to earlier ones).
    pub async fn record_consent(
        &self,
        user_id: &str,
        request: &AuthorizationRequest,
    ) -> Result<(), OAuthError> {
        self.keep_document_client(&request.client_id).await?;
        let earlier = self.store.find_consent(user_id, &request.client_id).await?;
        let mut scopes = request.scopes().to_vec();
        if let Some(earlier) = earlier {
            scopes.extend(ScopeSet::parse(&earlier).unwrap_or_default().to_vec());
        }
        let merged = ScopeSet::from_list(scopes);
        self.store
            .save_consent(user_id, &request.client_id, &merged.to_string(), self.now())
            .await?;
        Ok(())
    }

    /// Issues a single-use authorization code bound to the client, redirect URI, PKCE
    /// challenge, nonce, user, auth_time and scopes. Only its hash is stored.
    pub async fn issue_code(
        &self,
        request: &AuthorizationRequest,
        user: &User,
        auth: &Authentication,
    ) -> Result<Secret, OAuthError> {
        self.keep_document_client(&request.client_id).await?;
        let code = Secret::generate();
        let now = self.now();
        let record = AuthorizationCode {
            code_hash: code.storage_hash(),
            client_id: request.client_id.clone(),
            user_id: user.id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            redirect_uri_given: request.redirect_uri_given,
            scope: request.scope.clone(),
            code_challenge: request.code_challenge.clone(),
            nonce: request.nonce.clone(),
            auth_time: auth.auth_time,
            acr: auth.acr.clone(),
            amr: auth.amr_text(),
            sid: auth.sid.clone(),
            resources: request.resources.clone(),
            dpop_jkt: request.dpop_jkt.clone(),
            created_at: now,
            expires_at: now + CODE_TTL,
            used_at: None,
            family_id: None,
            access_token_jti: None,
            access_token_exp: None,
        };
        self.store.create_authorization_code(&record).await?;
        if let Some(client) = self.find_client(&request.client_id).await? {
            self.note_first_use(&client).await;
        }
        if let Some(sid) = &auth.sid {
            self.logout_queue
                .signed_in_to(sid, &request.client_id, &user.id)
                .await;
        }
        Ok(code)
    }

    /// Checks a user name and password on the password pool. The answer is the same for an
    /// unknown user, a wrong password and a disabled account. `device` is the id of a
    /// trusted-device cookie proven to belong to this user name: the attempt is then
    /// counted against the device instead of the account (see
    /// [`crate::throttle::device_subject`]).
    pub async fn authenticate_user(
        &self,
        username: &str,
        password: Secret,
        device: Option<&str>,
        caller: &Caller,
    ) -> Result<Option<User>, OAuthError> {
        self.check_password(username, password, "sign-in page", device, caller)
            .await
    }
}

/// Whether a raw `scope` parameter asks for OpenID Connect (holds the `openid` token).
fn is_openid_request(scope: Option<&str>) -> bool {
    scope.is_some_and(|scope| scope.split(' ').any(|token| token == "openid"))
}
