//! The account pages nobody needs to be signed in for: `/signup`, `/verify-email` (and
//! sending its link again), `/forgot-password` and `/reset-password`. Every form carries
//! the session's CSRF token; every link token arrives in the query once and is never
//! logged (the request log has paths only) nor stored in clear.

use super::browser;
use super::error::PageError;
use super::form::OAuthForm;
use super::login::UNVERIFIED_KEY;
use super::pages::{self, Page};
use super::respond;
use crate::http::caller::PeerAddress;
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use sigil_core::accounts::{AccountError, FieldError, SignUp, SignUpMode, SignUpOutcome};
use sigil_core::secret::{is_random_token, Secret};
use tower_sessions::Session;

/// The session key that remembers who signed up in this browser, and for which pending
/// authorization request: following the verification link in the same browser signs them
/// in and goes on to the app.
const SIGNED_UP_KEY: &str = "signed_up";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/signup", get(sign_up_form).post(sign_up))
        .route("/verify-email", get(verify_email_form).post(verify_email))
        .route("/verify-email/resend", post(resend_verification))
        .route("/forgot-password", get(forgot_form).post(forgot))
        .route("/reset-password", get(reset_form).post(reset))
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignUpPage<'a> {
    csrf: &'a str,
    req: &'a str,
    invite: &'a str,
    client_name: Option<&'a str>,
    username: &'a str,
    email: &'a str,
    name: &'a str,
    error: Option<&'a str>,
    username_error: Option<&'a str>,
    email_error: Option<&'a str>,
    name_error: Option<&'a str>,
    password_error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "verify_email.html")]
struct VerifyEmailPage<'a> {
    csrf: &'a str,
    token: &'a str,
    email: &'a str,
}

#[derive(Template)]
#[template(path = "forgot_password.html")]
struct ForgotPage<'a> {
    csrf: &'a str,
    sent: bool,
    minutes: i64,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "reset_password.html")]
struct ResetPage<'a> {
    csrf: &'a str,
    token: &'a str,
    username: &'a str,
    error: Option<&'a str>,
}

/// A link token as Sigil makes them (256 random bits), or nothing: anything else is
/// refused before the database is asked.
fn link_token(value: Option<&str>) -> Option<Secret> {
    value
        .filter(|token| is_random_token(token, 32))
        .map(Secret::new)
}

/// A pending-request id as Sigil makes them, or nothing.
fn request_id(value: Option<&str>) -> &str {
    match value {
        Some(id) if is_random_token(id, 16) => id,
        _ => "",
    }
}

/// What typed values the sign-up form shows again.
#[derive(Default)]
struct Typed {
    username: String,
    email: String,
    name: String,
}

#[derive(Deserialize)]
struct SignUpQuery {
    req: Option<String>,
    invite: Option<String>,
}

async fn client_name(state: &AppState, session: &Session, req: &str) -> Option<String> {
    if req.is_empty() {
        return None;
    }
    let pending = browser::find_pending(session, req, state.authority.now())
        .await
        .ok()
        .flatten()?;
    state
        .authority
        .find_client(&pending.request.client_id)
        .await
        .ok()
        .flatten()
        .map(|c| c.name.clone())
}

#[allow(clippy::too_many_arguments)]
async fn render_sign_up(
    state: &AppState,
    session: &Session,
    req: &str,
    invite: &str,
    typed: &Typed,
    error: Option<&str>,
    fields: &[FieldError],
) -> Result<Page, PageError> {
    let csrf = browser::csrf_token(session).await?;
    let client = client_name(state, session, req).await;
    let field = |name: &str| {
        fields
            .iter()
            .find(|f| f.field == name)
            .map(|f| f.message.as_str())
    };
    Ok(pages::render(
        &SignUpPage {
            csrf: &csrf,
            req,
            invite,
            client_name: client.as_deref(),
            username: &typed.username,
            email: &typed.email,
            name: &typed.name,
            error,
            username_error: field("username"),
            email_error: field("email"),
            name_error: field("name"),
            password_error: field("password"),
        },
        &[],
    )?)
}

async fn sign_up_form(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<SignUpQuery>,
) -> Result<Response, PageError> {
    let req = request_id(query.req.as_deref()).to_string();
    let mode = state.accounts.config().sign_up;
    let mut typed = Typed::default();
    let invite = match (mode, link_token(query.invite.as_deref())) {
        (SignUpMode::Closed, _) | (SignUpMode::Invite, None) => {
            return Err(PageError::Account(AccountError::SignUpClosed))
        }
        (_, Some(token)) => {
            typed.email = state
                .accounts
                .invitation_email(&token)
                .await
                .map_err(PageError::Account)?;
            token.expose().to_string()
        }
        (SignUpMode::Open, None) => String::new(),
    };
    let page = render_sign_up(&state, &session, &req, &invite, &typed, None, &[]).await?;
    Ok(page.into_response())
}

async fn sign_up(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = OAuthForm::parse(&body);
    browser::check_csrf(&session, &form).await?;
    let text = |name: &str| form.single(name).ok().flatten().unwrap_or("").to_string();
    let req = request_id(form.single("req").ok().flatten()).to_string();
    let invite_field = form.single("invite").ok().flatten();
    let invitation = link_token(invite_field);
    if invite_field.is_some() && invitation.is_none() {
        return Err(PageError::Account(AccountError::InvalidLink));
    }
    let invite = invitation
        .as_ref()
        .map(|t| t.expose().to_string())
        .unwrap_or_default();
    let typed = Typed {
        username: text("username"),
        email: text("email"),
        name: text("name"),
    };
    let caller = peer.anonymous();
    let result = state
        .accounts
        .sign_up(
            &caller,
            SignUp {
                username: typed.username.clone(),
                email: typed.email.clone(),
                name: Some(typed.name.clone()),
                invitation,
            },
            Secret::new(text("password")),
        )
        .await;
    let user = match result {
        Ok(SignUpOutcome::Created(user)) => user,
        Ok(SignUpOutcome::AddressTaken { email }) => {
            // Worded as for a new account: the form does not tell who has one.
            return Ok(check_your_mail(&state, &email)?.into_response());
        }
        Err(AccountError::Fields(fields)) => {
            let page = render_sign_up(
                &state,
                &session,
                &req,
                &invite,
                &typed,
                Some("Please correct what is marked below."),
                &fields,
            )
            .await?;
            return Err(PageError::InvalidForm(page));
        }
        Err(AccountError::Throttled) => {
            let page = render_sign_up(
                &state,
                &session,
                &req,
                &invite,
                &typed,
                Some("Too many accounts were made from your network. Please wait a while before trying again."),
                &[],
            )
            .await?;
            return Err(PageError::TooManyRequests(page));
        }
        Err(error) => return Err(PageError::Account(error)),
    };
    tracing::info!(user = %user.id, "signed up");
    if user.email_verified {
        // An invitation to this very address: the account is ready.
        return sign_in_and_continue(&state, &session, &req, &user, peer.0, &headers).await;
    }
    session
        .insert(SIGNED_UP_KEY, (user.id.clone(), req.clone()))
        .await?;
    Ok(check_your_mail(&state, user.email.as_deref().unwrap_or("your address"))?.into_response())
}

/// The answer to a sign-up that mailed `email`.
fn check_your_mail(state: &AppState, email: &str) -> Result<Page, PageError> {
    let text = format!(
        "We sent a message to {email}. Open the link in it (in this browser, to go straight on) within {} hours; then you can sign in.",
        state.accounts.config().verify_ttl / 3600
    );
    Ok(pages::message("Check your mail", &text, false)?)
}

/// Signs a user in to this browser and goes on to the pending request, or the account page.
async fn sign_in_and_continue(
    state: &AppState,
    session: &Session,
    req: &str,
    user: &sigil_core::user::User,
    address: Option<String>,
    headers: &HeaderMap,
) -> Result<Response, PageError> {
    let now = state.authority.now();
    // A pending request that has expired meanwhile is dropped: the account page instead.
    let req = match browser::find_pending(session, req, now).await? {
        Some(_) => req,
        None => "",
    };
    super::login::after_password(state, session, req, "/account", user, address, headers, now).await
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// `GET /verify-email?token=…`: the link from the mail shows a page with one button; only
/// the click (a POST with the session's CSRF token) uses the link. Mail scanners and link
/// previews fetch links with GET, and must not confirm an address for anyone.
async fn verify_email_form(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<TokenQuery>,
) -> Result<Response, PageError> {
    let token =
        link_token(query.token.as_deref()).ok_or(PageError::Account(AccountError::InvalidLink))?;
    let email = state
        .accounts
        .check_email_link(&token)
        .await
        .map_err(PageError::Account)?;
    let csrf = browser::csrf_token(&session).await?;
    let page = VerifyEmailPage {
        csrf: &csrf,
        token: token.expose(),
        email: &email,
    };
    Ok(pages::render(&page, &[])?.into_response())
}

async fn verify_email(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = OAuthForm::parse(&body);
    browser::check_csrf(&session, &form).await?;
    let token = link_token(form.single("token").ok().flatten())
        .ok_or(PageError::Account(AccountError::InvalidLink))?;
    let user = state
        .accounts
        .follow_email_link(&peer.anonymous(), &token)
        .await
        .map_err(PageError::Account)?;
    tracing::info!(user = %user.id, "e-mail address confirmed");
    // The browser that signed up goes straight on; any other signs in first.
    let signed_up = session.remove::<(String, String)>(SIGNED_UP_KEY).await?;
    match signed_up {
        Some((user_id, req)) if user_id == user.id => {
            sign_in_and_continue(&state, &session, &req, &user, peer.0, &headers).await
        }
        _ => {
            let signed_in = browser::current_user(&state, &session, None).await?;
            if signed_in.is_some_and(|(u, _)| u.id == user.id) {
                return Ok(respond::see_other("/account?notice=email-changed"));
            }
            Ok(respond::see_other(&format!(
                "/login?notice=verified&username={}",
                url_encode(&user.username)
            )))
        }
    }
}

fn url_encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

async fn resend_verification(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = OAuthForm::parse(&body);
    browser::check_csrf(&session, &form).await?;
    let req = request_id(form.single("req").ok().flatten()).to_string();
    let Some(user_id) = session.get::<String>(UNVERIFIED_KEY).await? else {
        return Ok(respond::see_other("/login"));
    };
    let result = state
        .accounts
        .resend_verification(&peer.anonymous(), &user_id)
        .await;
    let (notice, throttled) = match result {
        Ok(()) => ("We sent the link again. Use the newest one.", false),
        Err(AccountError::Throttled) => (
            "We sent several links already. Please wait a while, and check your spam folder.",
            true,
        ),
        Err(error) => return Err(PageError::Account(error)),
    };
    let csrf = browser::csrf_token(&session).await?;
    let email = state
        .authority
        .find_user(&user_id)
        .await
        .ok()
        .flatten()
        .and_then(|u| u.email)
        .unwrap_or_default();
    let page = pages::render(
        &pages::VerifyPendingPage {
            csrf: &csrf,
            req: &req,
            email: &email,
            notice: Some(notice),
        },
        &[],
    )?;
    if throttled {
        return Err(PageError::TooManyRequests(page));
    }
    Ok(page.into_response())
}

async fn forgot_page(
    state: &AppState,
    session: &Session,
    sent: bool,
    error: Option<&str>,
) -> Result<Page, PageError> {
    let csrf = browser::csrf_token(session).await?;
    Ok(pages::render(
        &ForgotPage {
            csrf: &csrf,
            sent,
            minutes: state.accounts.config().reset_ttl / 60,
            error,
        },
        &[],
    )?)
}

async fn forgot_form(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, PageError> {
    Ok(forgot_page(&state, &session, false, None)
        .await?
        .into_response())
}

/// Always the same answer, in the same time: whether an account has the address is
/// looked up (and a mail queued) in a task of its own that the answer does not wait for.
/// Only the per-address limit, which tells nothing about any account, answers otherwise.
async fn forgot(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = OAuthForm::parse(&body);
    browser::check_csrf(&session, &form).await?;
    let email = form
        .single("email")
        .ok()
        .flatten()
        .unwrap_or("")
        .to_string();
    let caller = peer.anonymous();
    match state.accounts.check_mail_request_allowed(&caller).await {
        Ok(()) => {}
        Err(AccountError::Throttled) => {
            let page = forgot_page(
                &state,
                &session,
                false,
                Some("Too many requests came from your network. Please wait a while before trying again."),
            )
            .await?;
            return Err(PageError::TooManyRequests(page));
        }
        Err(error) => return Err(PageError::Account(error)),
    }
    let accounts = state.accounts.clone();
    tokio::spawn(async move {
        if let Err(error) = accounts.request_password_reset(&caller, &email).await {
            tracing::warn!(%error, "a password reset request could not be handled");
        }
    });
    Ok(forgot_page(&state, &session, true, None)
        .await?
        .into_response())
}

async fn reset_page(
    session: &Session,
    token: &str,
    username: &str,
    error: Option<&str>,
) -> Result<Page, PageError> {
    let csrf = browser::csrf_token(session).await?;
    Ok(pages::render(
        &ResetPage {
            csrf: &csrf,
            token,
            username,
            error,
        },
        &[],
    )?)
}

async fn reset_form(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<TokenQuery>,
) -> Result<Response, PageError> {
    let token =
        link_token(query.token.as_deref()).ok_or(PageError::Account(AccountError::InvalidLink))?;
    let user = state
        .accounts
        .check_reset_link(&token)
        .await
        .map_err(PageError::Account)?;
    Ok(reset_page(&session, token.expose(), &user.username, None)
        .await?
        .into_response())
}

async fn reset(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    RawQueryToken(query_token): RawQueryToken,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = OAuthForm::parse(&body);
    browser::check_csrf(&session, &form).await?;
    let token = link_token(
        form.single("token")
            .ok()
            .flatten()
            .or(query_token.as_deref()),
    )
    .ok_or(PageError::Account(AccountError::InvalidLink))?;
    let password = form.single("password").ok().flatten().unwrap_or("");
    let repeat = form.single("repeat_password").ok().flatten();
    let user = state
        .accounts
        .check_reset_link(&token)
        .await
        .map_err(PageError::Account)?;
    if repeat.is_some_and(|r| r != password) {
        let page = reset_page(
            &session,
            token.expose(),
            &user.username,
            Some("The two passwords differ."),
        )
        .await?;
        return Err(PageError::InvalidForm(page));
    }
    let result = state
        .accounts
        .reset_password(&peer.anonymous(), &token, Secret::new(password))
        .await;
    match result {
        Ok(user) => {
            tracing::info!(user = %user.id, "password reset");
            // This browser is signed out too, like every other.
            browser::sign_out(&state, &session).await?;
            Ok(respond::see_other(&format!(
                "/login?notice=password-set&username={}",
                url_encode(&user.username)
            )))
        }
        Err(AccountError::Fields(fields)) => {
            let message = sigil_core::accounts::field_messages(&fields);
            let page = reset_page(&session, token.expose(), &user.username, Some(&message)).await?;
            Err(PageError::InvalidForm(page))
        }
        Err(error) => Err(PageError::Account(error)),
    }
}

/// The `token` of `POST /reset-password?token=…`, when the form posts it in the query.
struct RawQueryToken(Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RawQueryToken {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let token = parts.uri.query().and_then(|query| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(name, _)| name == "token")
                .map(|(_, value)| value.into_owned())
        });
        Ok(Self(token))
    }
}
