//! "Sign in with …": `GET /login/provider/{id}` sends the browser to an upstream provider,
//! `GET /login/provider/{id}/callback` takes its answer, and `/account/providers` lists,
//! links and unlinks a user's upstream identities.
//!
//! What an attacker would try, and what stops it:
//! - A forged or replayed callback (CSRF, code injection): the `state` must be one this
//!   browser session started, for this provider, within ten minutes, and is used once; the
//!   code is bound to the PKCE verifier kept with it, and the ID token to its `nonce`.
//! - A mix-up (RFC 9700 §4.4): an authorization response's `iss` must be the provider's
//!   (RFC 9207), and the ID token's `iss` and `aud` are checked by the `openidconnect` crate.
//! - Taking an account through an upstream account with the victim's address: an address
//!   never links by itself; the person must sign in to the account with its own password
//!   (and second factor) first.
//! - Upstream failures of any kind end on Sigil's own page, never as a redirect to the app.
//! - Each failure is one request to the provider at most; the sign-in page lists only
//!   configured providers, and path ids are checked before any lookup.

use super::browser;
use super::error::{FederationFailure, PageError};
use super::form::OAuthForm;
use super::login;
use super::pages;
use super::respond;
use crate::http::caller::PeerAddress;
use crate::state::AppState;
use crate::upstream::UpstreamError;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use sigil_core::audit::Caller;
use sigil_core::factors::{Method, UsedMethod};
use sigil_core::federation::{FederationError, Provider, Resolution, UpstreamIdentity};
use std::collections::HashMap;
use tower_sessions::Session;

const STARTS: &str = "federation_starts";
const PENDING_LINK: &str = "federation_pending_link";
/// How long an upstream sign-in may take, from the redirect to the callback.
const START_TTL: i64 = 10 * 60;
/// Upstream sign-ins a session may have under way at once (several tabs).
const MAX_STARTS: usize = 4;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login/provider/{id}", get(start))
        .route("/login/provider/{id}/callback", get(callback))
        .route(
            "/login/link-provider",
            get(confirm_link_page).post(confirm_link),
        )
        .route("/account/providers", get(providers_page))
        .route("/account/providers/link", post(link))
        .route("/account/providers/unlink", post(unlink))
}

/// What the callback of an upstream sign-in needs, kept in the session under its `state`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Started {
    provider_id: String,
    nonce: String,
    pkce_verifier: String,
    /// The pending authorization request, and where to go without one.
    req: String,
    next: String,
    purpose: Purpose,
    created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
enum Purpose {
    SignIn,
    /// Linking another identity from the account page, for this user and session epoch.
    Link {
        user_id: String,
        session_epoch: i64,
    },
}

/// A new identity whose verified address is an existing account's: linked once that
/// account signs in in this session (with its own password, and second factor).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingLink {
    provider_id: String,
    identity: UpstreamIdentity,
    user_id: String,
    created_at: i64,
}

/// A "Sign in with …" link of the sign-in page.
#[derive(Debug, Clone)]
pub struct ProviderLink {
    pub href: String,
    pub name: String,
}

/// The sign-in page's provider links, carrying the pending request (or `next`). A store
/// failure leaves them out (the password form still works) and is logged.
pub(super) async fn links(state: &AppState, req: &str, next: &str) -> Vec<ProviderLink> {
    let providers = match state.federation.providers().await {
        Ok(providers) => providers,
        Err(error) => {
            tracing::warn!(%error, "could not list the identity providers for the sign-in page");
            return Vec::new();
        }
    };
    let query = continuation(req, next);
    providers
        .into_iter()
        .map(|p| ProviderLink {
            href: format!("/login/provider/{}{query}", p.id),
            name: p.name,
        })
        .collect()
}

/// `?req=…` or `?next=…` (or nothing), URL-encoded.
fn continuation(req: &str, next: &str) -> String {
    let encode = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    if !req.is_empty() {
        format!("?req={}", encode(req))
    } else if !next.is_empty() {
        format!("?next={}", encode(next))
    } else {
        String::new()
    }
}

/// Ends on Sigil's page about an upstream sign-in that signed nobody in, leading to `back`.
fn failure(failure: FederationFailure, back: &str) -> PageError {
    PageError::Federation {
        failure,
        back: back.to_string(),
    }
}

fn back_to_login(req: &str, next: &str) -> String {
    format!("/login{}", continuation(req, next))
}

async fn starts(session: &Session) -> Result<HashMap<String, Started>, PageError> {
    Ok(session
        .get::<HashMap<String, Started>>(STARTS)
        .await?
        .unwrap_or_default())
}

/// Keeps a started sign-in under its `state`, dropping expired ones and the oldest beyond
/// [`MAX_STARTS`].
async fn keep_start(
    session: &Session,
    state_token: String,
    started: Started,
    now: i64,
) -> Result<(), PageError> {
    let mut map = starts(session).await?;
    map.retain(|_, s| now - s.created_at < START_TTL);
    while map.len() >= MAX_STARTS {
        let oldest = map
            .iter()
            .min_by_key(|(_, s)| s.created_at)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(key) => map.remove(&key),
            None => break,
        };
    }
    map.insert(state_token, started);
    session.insert(STARTS, map).await?;
    Ok(())
}

/// Takes the started sign-in of `state_token` out of the session (it is good once).
async fn take_start(session: &Session, state_token: &str) -> Result<Option<Started>, PageError> {
    let mut map = starts(session).await?;
    let started = map.remove(state_token);
    if started.is_some() {
        session.insert(STARTS, map).await?;
    }
    Ok(started)
}

async fn find_provider(state: &AppState, id: &str) -> Result<Option<Provider>, PageError> {
    state
        .federation
        .provider(id)
        .await
        .map_err(federation_unavailable)
}

fn federation_unavailable(error: FederationError) -> PageError {
    match error {
        FederationError::Store(error) => PageError::Unavailable {
            event: "could not read the identity providers",
            error,
        },
        other => {
            tracing::error!(error = %other, "federation failed");
            failure(FederationFailure::Internal, "/login")
        }
    }
}

fn no_such_provider(back: &str) -> PageError {
    failure(FederationFailure::NoSuchProvider, back)
}

fn unreachable_provider(provider: &Provider, error: &UpstreamError, back: &str) -> PageError {
    tracing::warn!(provider = %provider.id, %error, "upstream sign-in failed");
    let provider = provider.name.clone();
    let kind = match error {
        UpstreamError::Unreachable(_) => FederationFailure::Unreachable { provider },
        UpstreamError::Refused(_) | UpstreamError::Invalid(_) => {
            FederationFailure::Refused { provider }
        }
    };
    failure(kind, back)
}

#[derive(Deserialize)]
struct StartQuery {
    req: Option<String>,
    next: Option<String>,
}

/// `GET /login/provider/{id}`: to the provider's authorization endpoint, with a fresh
/// `state`, `nonce` and PKCE challenge kept in this session.
async fn start(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(query): Query<StartQuery>,
) -> Result<Response, PageError> {
    let req = query.req.unwrap_or_default();
    let next = login::local_next(query.next.as_deref()).to_string();
    let back = back_to_login(&req, &next);
    let Some(provider) = find_provider(&state, &id).await? else {
        return Err(no_such_provider(&back));
    };
    let now = state.authority.now();
    if !req.is_empty() && browser::find_pending(&session, &req, now).await?.is_none() {
        return Err(PageError::SignInExpired);
    }
    redirect_upstream(&state, &session, &provider, req, next, Purpose::SignIn).await
}

async fn redirect_upstream(
    state: &AppState,
    session: &Session,
    provider: &Provider,
    req: String,
    next: String,
    purpose: Purpose,
) -> Result<Response, PageError> {
    let back = match purpose {
        Purpose::SignIn => back_to_login(&req, &next),
        Purpose::Link { .. } => "/account/providers".to_string(),
    };
    let redirect_uri = provider.redirect_uri(&state.authority.config().issuer);
    let started = match state.upstreams.start(provider, &redirect_uri).await {
        Ok(started) => started,
        Err(error) => return Err(unreachable_provider(provider, &error, &back)),
    };
    let now = state.authority.now();
    keep_start(
        session,
        started.state,
        Started {
            provider_id: provider.id.clone(),
            nonce: started.nonce,
            pkce_verifier: started.pkce_verifier,
            req,
            next,
            purpose,
            created_at: now,
        },
        now,
    )
    .await?;
    Ok(respond::see_other(&started.url))
}

#[derive(Deserialize)]
struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

/// An OAuth error code as the provider sent it, if it is one (RFC 6749 §4.1.2.1 limits
/// them to printable ASCII; anything else is not shown).
fn error_code(code: &str) -> Option<&str> {
    (code.len() <= 64
        && !code.is_empty()
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')))
    .then_some(code)
}

/// `GET /login/provider/{id}/callback`: the provider's answer.
async fn callback(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, PageError> {
    let now = state.authority.now();
    let forged = || failure(FederationFailure::Forged, "/login");
    let Some(state_token) = query
        .state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 256)
    else {
        tracing::warn!(provider = ?id.chars().take(32).collect::<String>(), "upstream callback without a state");
        return Err(forged());
    };
    let Some(started) = take_start(&session, state_token).await? else {
        tracing::warn!(provider = ?id.chars().take(32).collect::<String>(), "upstream callback with an unknown state");
        return Err(forged());
    };
    if started.provider_id != id {
        tracing::warn!(provider = %started.provider_id, "upstream callback at another provider's URI");
        return Err(forged());
    }
    let back = match started.purpose {
        Purpose::SignIn => back_to_login(&started.req, &started.next),
        Purpose::Link { .. } => "/account/providers".to_string(),
    };
    if now - started.created_at >= START_TTL {
        return Err(failure(FederationFailure::Expired, &back));
    }
    let Some(provider) = find_provider(&state, &id).await? else {
        return Err(no_such_provider(&back));
    };
    let caller = peer.anonymous();
    // An error response is checked for its issuer too (RFC 9207 §2.4): a mix-up must not
    // show another provider's words under this one's name.
    if query.error.is_some() && query.iss.is_some() {
        if let Err(error) = state
            .upstreams
            .check_response_issuer(&provider, query.iss.as_deref())
            .await
        {
            state
                .federation
                .record_refusal(&caller, &provider, &error.to_string())
                .await;
            return Err(unreachable_provider(&provider, &error, &back));
        }
    }
    if let Some(code) = query.error.as_deref() {
        let shown = error_code(code).unwrap_or("an error");
        tracing::info!(provider = %provider.id, error = %shown, "the provider did not sign the user in");
        state
            .federation
            .record_refusal(
                &caller,
                &provider,
                &format!("the provider answered {shown}"),
            )
            .await;
        return Err(failure(
            FederationFailure::Cancelled {
                provider: provider.name.clone(),
                code: shown.to_string(),
            },
            &back,
        ));
    }
    let secret = state
        .federation
        .client_secret(&provider)
        .map_err(federation_unavailable)?;
    let redirect_uri = provider.redirect_uri(&state.authority.config().issuer);
    let checked = async {
        state
            .upstreams
            .check_response_issuer(&provider, query.iss.as_deref())
            .await?;
        let code = query
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 2048)
            .ok_or_else(|| UpstreamError::Invalid("the answer has no code".into()))?;
        state
            .upstreams
            .finish(
                &provider,
                &secret,
                &redirect_uri,
                code,
                &started.pkce_verifier,
                &started.nonce,
            )
            .await
    };
    let identity = match checked.await {
        Ok(identity) => identity,
        Err(error) => {
            state
                .federation
                .record_refusal(&caller, &provider, &error.to_string())
                .await;
            return Err(unreachable_provider(&provider, &error, &back));
        }
    };
    match started.purpose.clone() {
        Purpose::Link {
            user_id,
            session_epoch,
        } => {
            finish_link(
                &state,
                &session,
                &peer,
                &provider,
                &identity,
                &user_id,
                session_epoch,
            )
            .await
        }
        Purpose::SignIn => {
            sign_in(
                &state, &session, &peer, &headers, &provider, identity, &started, now,
            )
            .await
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn sign_in(
    state: &AppState,
    session: &Session,
    peer: &PeerAddress,
    headers: &HeaderMap,
    provider: &Provider,
    identity: UpstreamIdentity,
    started: &Started,
    now: i64,
) -> Result<Response, PageError> {
    let back = back_to_login(&started.req, &started.next);
    let resolution = state
        .federation
        .resolve(&peer.anonymous(), provider, &identity)
        .await
        .map_err(federation_unavailable)?;
    let user = match resolution {
        Resolution::Linked(user) | Resolution::Created(user) => user,
        Resolution::ProveAccount(user) => {
            session
                .insert(
                    PENDING_LINK,
                    PendingLink {
                        provider_id: provider.id.clone(),
                        identity,
                        user_id: user.id.clone(),
                        created_at: now,
                    },
                )
                .await?;
            return Err(failure(
                FederationFailure::ProveAccount {
                    provider: provider.name.clone(),
                },
                &back_to_login(&started.req, &started.next),
            ));
        }
        Resolution::NoAccount => {
            return Err(failure(
                FederationFailure::NoAccount {
                    provider: provider.name.clone(),
                },
                &back,
            ));
        }
        Resolution::Disabled => return Err(failure(FederationFailure::Disabled, &back)),
    };
    login::after_first_factor(
        state,
        session,
        &started.req,
        &started.next,
        &user,
        peer.0.clone(),
        headers,
        UsedMethod {
            method: Method::Federated,
            at: now,
        },
    )
    .await
}

/// The page that asks to confirm a waiting link, carrying the pending request or `next`.
pub(super) fn confirm_url(req: &str, next: &str) -> String {
    format!("/login/link-provider{}", continuation(req, next))
}

/// The identity waiting for this account, if it is recent and this is the account (a
/// wait for another account is dropped).
async fn pending_link_of(
    state: &AppState,
    session: &Session,
    user: &sigil_core::user::User,
) -> Result<Option<PendingLink>, PageError> {
    let Some(pending) = session.get::<PendingLink>(PENDING_LINK).await? else {
        return Ok(None);
    };
    if pending.user_id != user.id || state.authority.now() - pending.created_at >= START_TTL {
        session.remove::<PendingLink>(PENDING_LINK).await?;
        return Ok(None);
    }
    Ok(Some(pending))
}

/// After a sign-in that proved an account by its own means (not through a provider):
/// whether an identity waits to be linked to it (see [`confirm_link`]).
pub(super) async fn has_pending_link(
    state: &AppState,
    session: &Session,
    user: &sigil_core::user::User,
) -> Result<bool, PageError> {
    Ok(pending_link_of(state, session, user).await?.is_some())
}

#[derive(Template)]
#[template(path = "link_provider.html")]
struct ConfirmLinkPage<'a> {
    csrf: &'a str,
    req: &'a str,
    next: &'a str,
    provider: &'a str,
    email: &'a str,
    username: &'a str,
}

/// Where a sign-in goes on once the link is decided: the pending request, `next`, or the
/// account's providers page.
async fn go_on(
    state: &AppState,
    session: &Session,
    req: &str,
    next: &str,
) -> Result<Response, PageError> {
    if !req.is_empty() {
        return login::continue_pending(state, session, req, state.authority.now()).await;
    }
    Ok(respond::see_other(match next {
        "" => "/account/providers",
        next => next,
    }))
}

/// `GET /login/link-provider`: "Link your NAME account to this one?", once the account
/// proved itself with its own password (and second factor).
async fn confirm_link_page(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    Query(query): Query<StartQuery>,
) -> Result<Response, PageError> {
    let req = query.req.unwrap_or_default();
    let next = login::local_next(query.next.as_deref()).to_string();
    let Some((user, _)) = browser::current_user(&state, &session, peer.0.as_deref()).await? else {
        return Ok(respond::see_other(&back_to_login(&req, &next)));
    };
    let Some(pending) = pending_link_of(&state, &session, &user).await? else {
        return go_on(&state, &session, &req, &next).await;
    };
    let Some(provider) = find_provider(&state, &pending.provider_id).await? else {
        session.remove::<PendingLink>(PENDING_LINK).await?;
        return go_on(&state, &session, &req, &next).await;
    };
    let csrf = browser::csrf_token(&session).await?;
    let page = ConfirmLinkPage {
        csrf: &csrf,
        req: &req,
        next: &next,
        provider: &provider.name,
        email: pending.identity.email.as_deref().unwrap_or(""),
        username: &user.username,
    };
    Ok(pages::render(&page, &[])?.into_response())
}

/// `POST /login/link-provider` (`decision`: `link` or anything else): links the waiting
/// identity or forgets it, then goes on with the sign-in.
async fn confirm_link(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = OAuthForm::parse(&body);
    browser::check_csrf(&session, &form).await?;
    let req = form.single("req").ok().flatten().unwrap_or("").to_string();
    let next = login::local_next(form.single("next").ok().flatten()).to_string();
    let Some((user, _)) = browser::current_user(&state, &session, peer.0.as_deref()).await? else {
        return Ok(respond::see_other(&back_to_login(&req, &next)));
    };
    let pending = pending_link_of(&state, &session, &user).await?;
    session.remove::<PendingLink>(PENDING_LINK).await?;
    let wants = form.single("decision").ok().flatten() == Some("link");
    if let (Some(pending), true) = (pending, wants) {
        if let Some(provider) = find_provider(&state, &pending.provider_id).await? {
            let caller = Caller::user(user.id.clone(), user.username.clone(), peer.0.clone());
            match state
                .federation
                .link(&caller, &user, &provider, &pending.identity)
                .await
            {
                Ok(()) => {
                    tracing::info!(user = %user.id, "an upstream identity was linked at sign-in")
                }
                Err(FederationError::AlreadyLinked) => {
                    return Err(failure(
                        FederationFailure::AlreadyLinked {
                            provider: provider.name.clone(),
                        },
                        "/account/providers",
                    ))
                }
                Err(error) => return Err(federation_unavailable(error)),
            }
        }
    }
    go_on(&state, &session, &req, &next).await
}

async fn finish_link(
    state: &AppState,
    session: &Session,
    peer: &PeerAddress,
    provider: &Provider,
    identity: &UpstreamIdentity,
    user_id: &str,
    session_epoch: i64,
) -> Result<Response, PageError> {
    let back = "/account/providers";
    let current = browser::current_user(state, session, peer.0.as_deref()).await?;
    let Some((user, _)) =
        current.filter(|(u, _)| u.id == user_id && u.session_epoch == session_epoch)
    else {
        return Err(failure(
            FederationFailure::SessionChanged,
            "/login?next=/account/providers",
        ));
    };
    let caller = Caller::user(user.id.clone(), user.username.clone(), peer.0.clone());
    match state
        .federation
        .link(&caller, &user, provider, identity)
        .await
    {
        Ok(()) => Ok(respond::see_other("/account/providers?notice=linked")),
        Err(FederationError::AlreadyLinked) => Err(failure(
            FederationFailure::AlreadyLinked {
                provider: provider.name.clone(),
            },
            back,
        )),
        Err(error) => Err(federation_unavailable(error)),
    }
}

#[derive(Debug)]
struct IdentityRow {
    provider: String,
    issuer: String,
    subject: String,
    email: String,
    since: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "account_providers.html")]
struct ProvidersPage<'a> {
    tab: &'a str,
    notice: Option<&'a str>,
    error: Option<&'a str>,
    csrf: &'a str,
    linked: Vec<IdentityRow>,
    available: Vec<(String, String)>,
    has_password: bool,
}

#[derive(Deserialize, Default)]
struct NoticeQuery {
    notice: Option<String>,
}

fn notice_text(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "linked" => "Linked. You can now sign in with it.",
        "unlinked" => "Unlinked. It no longer signs you in.",
        _ => return None,
    })
}

/// `GET /account/providers`: the identities linked to the account, and the providers it
/// could link.
async fn providers_page(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PageError> {
    let Some(me) = super::account_pages::me(&state, &session, &peer).await? else {
        return Ok(respond::see_other("/login?next=/account/providers"));
    };
    Ok(
        render_providers(&state, &me, notice_text(query.notice.as_deref()), None)
            .await?
            .into_response(),
    )
}

async fn render_providers(
    state: &AppState,
    me: &super::account_pages::Me,
    notice: Option<&str>,
    error: Option<&str>,
) -> Result<pages::Page, PageError> {
    let providers = state
        .federation
        .providers()
        .await
        .map_err(federation_unavailable)?;
    let identities = state
        .federation
        .identities(&me.user.id)
        .await
        .map_err(federation_unavailable)?;
    let name_of = |issuer: &str, provider_id: &str| {
        providers
            .iter()
            .find(|p| p.issuer == issuer)
            .or_else(|| providers.iter().find(|p| p.id == provider_id))
            .map(|p| p.name.clone())
            .unwrap_or_else(|| format!("{issuer} (provider removed)"))
    };
    let linked: Vec<IdentityRow> = identities
        .iter()
        .map(|i| IdentityRow {
            provider: name_of(&i.issuer, &i.provider_id),
            issuer: i.issuer.clone(),
            subject: i.subject.clone(),
            email: i.email.clone().unwrap_or_default(),
            since: super::admin::format_time(i.created_at),
            last_used: i
                .last_used_at
                .map(super::admin::format_time)
                .unwrap_or_default(),
        })
        .collect();
    let available = providers
        .iter()
        .map(|p| (p.id.clone(), p.name.clone()))
        .collect();
    let page = ProvidersPage {
        tab: "providers",
        notice,
        error,
        csrf: &me.csrf,
        linked,
        available,
        has_password: me.user.has_password(),
    };
    Ok(pages::render(&page, &[])?)
}

/// What the account page's forms share: the CSRF check, a signed-in user, and a step-up
/// first for an account with a second factor whose session did not prove one (linking
/// adds a way in, unlinking takes one away). `Err` is where to send the browser instead.
async fn account_form(
    state: &AppState,
    session: &Session,
    peer: &PeerAddress,
    body: &Bytes,
) -> Result<Result<(super::account_pages::Me, OAuthForm), Response>, PageError> {
    let form = OAuthForm::parse(body);
    browser::check_csrf(session, &form).await?;
    let Some(me) = super::account_pages::me(state, session, peer).await? else {
        return Ok(Err(respond::see_other("/login?next=/account/providers")));
    };
    let summary = state.factors.summary(&me.user.id).await?;
    if super::account_security::needs_step_up(&me, &summary) {
        return Ok(Err(respond::see_other(
            "/login/second-factor?next=/account/providers",
        )));
    }
    Ok(Ok((me, form)))
}

/// `POST /account/providers/link` (`provider`): to the provider, to link what signs in there.
async fn link(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    body: Bytes,
) -> Result<Response, PageError> {
    let (me, form) = match account_form(&state, &session, &peer, &body).await? {
        Ok(signed_in) => signed_in,
        Err(elsewhere) => return Ok(elsewhere),
    };
    let id = form.single("provider").ok().flatten().unwrap_or("");
    let Some(provider) = find_provider(&state, id).await? else {
        return Err(no_such_provider("/account/providers"));
    };
    redirect_upstream(
        &state,
        &session,
        &provider,
        String::new(),
        String::new(),
        Purpose::Link {
            user_id: me.user.id.clone(),
            session_epoch: me.user.session_epoch,
        },
    )
    .await
}

/// `POST /account/providers/unlink` (`issuer`, `subject`): unlinks one of the account's
/// identities, unless it is the last way in.
async fn unlink(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    body: Bytes,
) -> Result<Response, PageError> {
    let (me, form) = match account_form(&state, &session, &peer, &body).await? {
        Ok(signed_in) => signed_in,
        Err(elsewhere) => return Ok(elsewhere),
    };
    let issuer = form.single("issuer").ok().flatten().unwrap_or("");
    let subject = form.single("subject").ok().flatten().unwrap_or("");
    match state
        .federation
        .unlink(&me.caller, &me.user, issuer, subject)
        .await
    {
        Ok(()) => Ok(respond::see_other("/account/providers?notice=unlinked")),
        Err(FederationError::LastWayIn) => {
            let page = render_providers(
                &state,
                &me,
                None,
                Some("This is the only way you can sign in. Set a password (with \"Forgot your password?\" on the sign-in page) or link another provider first."),
            )
            .await?;
            Err(PageError::InvalidForm(page))
        }
        Err(FederationError::NotFound) => {
            Err(failure(FederationFailure::NotLinked, "/account/providers"))
        }
        Err(error) => Err(federation_unavailable(error)),
    }
}
