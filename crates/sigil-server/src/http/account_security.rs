//! `/account/security`: a signed-in user's second factors. Lists authenticator apps and
//! passkeys with their last use and the recovery codes left; adds an authenticator app
//! (the secret shown as a QR code drawn here, as inline SVG, and as its `otpauth://` URI,
//! counted only once a code from the app confirms it); shows recovery codes once, when
//! made; renames and removes factors. Removing a factor or replacing the codes asks for
//! the current password, and every change to an account that has a factor asks for a
//! session that proved one (a browser signed in before the factor was added steps up
//! first). With `?req=`, the page is the enrolment a sign-in under a requirement walks
//! through, and the pending request goes on once a factor is added.

use super::account::request_id;
use super::admin::format_time;
use super::browser;
use super::error::PageError;
use super::form::OAuthForm;
use super::login::{continue_pending, local_next};
use super::{pages, respond};
use crate::http::caller::PeerAddress;
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use sigil_core::factors::{FactorError, FactorSummary, Level, Method};
use sigil_core::secret::{is_random_token, Secret};
use sigil_core::store::FactorKind;
use tower_sessions::Session;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account/security", get(overview))
        .route("/account/security/totp", get(show_totp).post(start_totp))
        .route("/account/security/totp/confirm", post(confirm_totp))
        .route("/account/security/recovery-codes", post(new_recovery_codes))
        .route("/account/security/factor", post(change_factor))
}

/// The session key of the authenticator app being added (its unconfirmed factor's id).
const TOTP_ENROLMENT: &str = "totp_enrolment";

#[derive(Deserialize, Default)]
struct SecurityQuery {
    req: Option<String>,
    next: Option<String>,
    notice: Option<String>,
}

/// The fixed words a redirect may ask the page to show.
fn notice_text(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "renamed" => "Renamed.",
        "removed" => "Removed. We sent you a mail about it.",
        "added" => "Added. We sent you a mail about it.",
        _ => return None,
    })
}

/// One factor as the page lists it.
pub(super) struct FactorRow {
    pub id: String,
    pub name: String,
    pub added: String,
    pub last_used: String,
}

#[derive(Template)]
#[template(path = "account_security.html")]
struct SecurityPage<'a> {
    tab: &'a str,
    notice: Option<&'a str>,
    error: Option<&'a str>,
    csrf: &'a str,
    req: &'a str,
    /// Where to go once a factor is added, without a pending request (an admin page).
    next: &'a str,
    /// Signed in under a requirement without a factor: the page says one must be added.
    must_enrol: bool,
    /// The pending request asks for a passkey.
    wants_passkey: bool,
    apps: Vec<FactorRow>,
    passkeys: Vec<FactorRow>,
    recovery_codes_left: i64,
    /// The issuer has a host name, so passkeys can work.
    passkeys_available: bool,
}

#[derive(Template)]
#[template(path = "account_totp.html")]
struct TotpPage<'a> {
    tab: &'a str,
    notice: Option<&'a str>,
    error: Option<&'a str>,
    csrf: &'a str,
    req: &'a str,
    /// Where to go once a factor is added, without a pending request (an admin page).
    next: &'a str,
    qr_svg: &'a str,
    uri: &'a str,
    secret: &'a str,
    name: &'a str,
}

#[derive(Template)]
#[template(path = "account_recovery_codes.html")]
struct RecoveryCodesPage<'a> {
    tab: &'a str,
    notice: Option<&'a str>,
    error: Option<&'a str>,
    codes: &'a [String],
    continue_to: &'a str,
}

pub(super) use super::account_pages::{me, Me};

pub(super) fn sign_in_first(req: &str) -> Response {
    match req {
        "" => respond::see_other("/login?next=/account/security"),
        req => respond::see_other(&format!("/login?req={req}")),
    }
}

/// A change to an account with a factor needs a session that proved one: else the
/// browser steps up first (and comes back here).
pub(super) fn needs_step_up(me: &Me, summary: &FactorSummary) -> bool {
    summary.has_any() && me.signed_in.level() < Level::TwoFactor
}

pub(super) fn step_up(req: &str) -> Response {
    respond::see_other(&super::second_factor::page_url(req))
}

pub(super) fn rows(summary: &FactorSummary, kind: FactorKind) -> Vec<FactorRow> {
    summary
        .factors
        .iter()
        .filter(|f| f.kind == kind)
        .map(|f| FactorRow {
            id: f.id.clone(),
            name: f.name.clone(),
            added: format_time(f.confirmed_at.unwrap_or(f.created_at)),
            last_used: f
                .last_used_at
                .map(format_time)
                .unwrap_or_else(|| "never".to_string()),
        })
        .collect()
}

pub(super) async fn overview_page(
    state: &AppState,
    session: &Session,
    me: &Me,
    (req, next): (&str, &str),
    notice: Option<&str>,
    error: Option<&str>,
) -> Result<pages::Page, PageError> {
    let summary = state.factors.summary(&me.user.id).await?;
    let wants_passkey = super::second_factor::wants_passkey(state, session, req).await?;
    let page = SecurityPage {
        tab: "security",
        notice,
        error,
        csrf: &me.csrf,
        req,
        next,
        must_enrol: !summary.has_any() && (state.factors.is_required(&me.user) || !req.is_empty()),
        wants_passkey,
        apps: rows(&summary, FactorKind::Totp),
        passkeys: rows(&summary, FactorKind::Passkey),
        recovery_codes_left: summary.recovery_codes_left,
        passkeys_available: state.passkeys.is_available(),
    };
    Ok(pages::render(&page, &[])?)
}

async fn overview(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    Query(query): Query<SecurityQuery>,
) -> Result<Response, PageError> {
    let req = request_id(query.req.as_deref());
    let Some(me) = me(&state, &session, &peer).await? else {
        return Ok(sign_in_first(req));
    };
    let notice = notice_text(query.notice.as_deref());
    let next = local_next(query.next.as_deref());
    Ok(
        overview_page(&state, &session, &me, (req, next), notice, None)
            .await?
            .into_response(),
    )
}

/// `POST /account/security/totp`: a new secret for an authenticator app, kept unconfirmed.
async fn start_totp(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = OAuthForm::parse(&body);
    browser::check_csrf(&session, &form).await?;
    let req = request_id(form.single("req").ok().flatten());
    let next = local_next(form.single("next").ok().flatten());
    let Some(me) = me(&state, &session, &peer).await? else {
        return Ok(sign_in_first(req));
    };
    if needs_step_up(&me, &state.factors.summary(&me.user.id).await?) {
        return Ok(step_up(req));
    }
    let enrolment = state.factors.start_totp(&me.user).await?;
    session.insert(TOTP_ENROLMENT, &enrolment.factor_id).await?;
    Ok(respond::see_other(&with_next(&totp_url(req), next)))
}

/// `url` with `next` added to its query, when there is one.
fn with_next(url: &str, next: &str) -> String {
    if next.is_empty() {
        return url.to_string();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    let next = form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>();
    format!("{url}{separator}next={next}")
}

fn totp_url(req: &str) -> String {
    match req {
        "" => "/account/security/totp".to_string(),
        req => format!("/account/security/totp?req={req}"),
    }
}

/// The QR code of `uri`, as an `<svg>` element to put in the page.
fn qr_svg(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(220, 220)
        .build();
    // The renderer writes a standalone XML document; the page wants the element only.
    Some(svg[svg.find("<svg")?..].to_string())
}

async fn totp_page(
    state: &AppState,
    session: &Session,
    me: &Me,
    (req, next): (&str, &str),
    name: &str,
    error: Option<&str>,
) -> Result<Option<pages::Page>, PageError> {
    let Some(factor_id) = session.get::<String>(TOTP_ENROLMENT).await? else {
        return Ok(None);
    };
    let enrolment = match state.factors.totp_enrolment(&me.user, &factor_id).await {
        Ok(enrolment) => enrolment,
        Err(FactorError::NotFound) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let qr = qr_svg(&enrolment.uri).unwrap_or_default();
    let secret = enrolment.secret.base32();
    let page = TotpPage {
        tab: "security",
        notice: None,
        error,
        csrf: &me.csrf,
        req,
        next,
        qr_svg: &qr,
        uri: &enrolment.uri,
        secret: &secret,
        name,
    };
    Ok(Some(pages::render(&page, &[])?))
}

#[derive(Deserialize, Default)]
struct ReqQuery {
    req: Option<String>,
    next: Option<String>,
}

async fn show_totp(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    Query(query): Query<ReqQuery>,
) -> Result<Response, PageError> {
    let req = request_id(query.req.as_deref());
    let next = local_next(query.next.as_deref());
    let Some(me) = me(&state, &session, &peer).await? else {
        return Ok(sign_in_first(req));
    };
    match totp_page(
        &state,
        &session,
        &me,
        (req, next),
        "Authenticator app",
        None,
    )
    .await?
    {
        Some(page) => Ok(page.into_response()),
        // Nothing being added (or it expired): back to the list, which offers it.
        None => Ok(respond::see_other(&security_url(req, None))),
    }
}

fn security_url(req: &str, notice: Option<&str>) -> String {
    let mut url = "/account/security".to_string();
    let mut separator = '?';
    if !req.is_empty() {
        url.push_str(&format!("?req={req}"));
        separator = '&';
    }
    if let Some(notice) = notice {
        url.push_str(&format!("{separator}notice={notice}"));
    }
    url
}

/// `POST /account/security/totp/confirm`: a code from the app makes it count.
async fn confirm_totp(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = OAuthForm::parse(&body);
    browser::check_csrf(&session, &form).await?;
    let req = request_id(form.single("req").ok().flatten());
    let next = local_next(form.single("next").ok().flatten());
    let name = form.single("name").ok().flatten().unwrap_or("").to_string();
    let code = form.single("code").ok().flatten().unwrap_or("");
    let Some(me) = me(&state, &session, &peer).await? else {
        return Ok(sign_in_first(req));
    };
    let Some(factor_id) = session.get::<String>(TOTP_ENROLMENT).await? else {
        return Ok(respond::see_other(&security_url(req, None)));
    };
    let (state_ref, session_ref, me_ref, name_ref) = (&state, &session, &me, &name);
    let refused = |message: String| async move {
        match totp_page(
            state_ref,
            session_ref,
            me_ref,
            (req, next),
            name_ref,
            Some(&message),
        )
        .await?
        {
            Some(page) => Ok::<_, PageError>(page),
            None => {
                overview_page(
                    state_ref,
                    session_ref,
                    me_ref,
                    (req, next),
                    None,
                    Some(&message),
                )
                .await
            }
        }
    };
    let codes = match state
        .factors
        .confirm_totp(&me.caller, &me.user, &factor_id, &name, code)
        .await
    {
        Ok(codes) => codes,
        Err(FactorError::WrongCode) => {
            return Err(PageError::InvalidForm(
                refused("That code is not right. Type the code the app shows now.".into()).await?,
            ))
        }
        Err(FactorError::InvalidName(why)) => {
            return Err(PageError::InvalidForm(
                refused(format!("The name is not possible: {why}.")).await?,
            ))
        }
        Err(FactorError::Throttled(_)) => {
            return Err(PageError::TooManyRequests(
                refused("Too many wrong codes. Please wait a while before trying again.".into())
                    .await?,
            ))
        }
        Err(error) => return Err(error.into()),
    };
    session.remove::<String>(TOTP_ENROLMENT).await?;
    tracing::info!(user = %me.user.id, "authenticator app added");
    // The code just typed proves the app: the session has a second factor from now on.
    let mut signed_in = me.signed_in.clone();
    signed_in.add_method(Method::Totp, state.authority.now());
    browser::sign_in(&session, signed_in).await?;
    after_change(&state, &session, (req, next), codes, "added").await
}

/// After a factor is added: the recovery codes when there are new ones, then on to the
/// pending request or back to the list.
pub(super) async fn after_change(
    state: &AppState,
    session: &Session,
    (req, next): (&str, &str),
    codes: Option<Vec<String>>,
    notice: &str,
) -> Result<Response, PageError> {
    let continue_to = match (req, next) {
        ("", "") => security_url("", Some(notice)),
        ("", next) => next.to_string(),
        (req, _) => format!("/authorize/resume?req={req}"),
    };
    if let Some(codes) = codes {
        return Ok(pages::render(
            &RecoveryCodesPage {
                tab: "security",
                notice: Some("Added. We sent you a mail about it."),
                error: None,
                codes: &codes,
                continue_to: &continue_to,
            },
            &[],
        )?
        .into_response());
    }
    if req.is_empty() {
        return Ok(respond::see_other(&continue_to));
    }
    continue_pending(state, session, req, state.authority.now()).await
}

/// Checks the current password a change asks for; the overview again when it is wrong.
async fn check_password(
    state: &AppState,
    session: &Session,
    me: &Me,
    form: &OAuthForm,
) -> Result<(), PageError> {
    let password = form
        .single("password")
        .ok()
        .flatten()
        .unwrap_or("")
        .to_string();
    let message = match state
        .accounts
        .check_current_password(&me.user, Secret::new(password))
        .await
    {
        Ok(()) => return Ok(()),
        Err(sigil_core::accounts::AccountError::WrongPassword) => {
            "Your password is not correct: nothing was changed."
        }
        Err(sigil_core::accounts::AccountError::Throttled) => {
            return Err(PageError::TooManyRequests(
                overview_page(
                    state,
                    session,
                    me,
                    ("", ""),
                    None,
                    Some("Too many attempts: please wait a while before trying again."),
                )
                .await?,
            ))
        }
        Err(error) => return Err(PageError::Account(error)),
    };
    Err(PageError::InvalidForm(
        overview_page(state, session, me, ("", ""), None, Some(message)).await?,
    ))
}

/// `POST /account/security/recovery-codes`: a new set, replacing the old; needs the
/// current password.
async fn new_recovery_codes(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = OAuthForm::parse(&body);
    browser::check_csrf(&session, &form).await?;
    let Some(me) = me(&state, &session, &peer).await? else {
        return Ok(sign_in_first(""));
    };
    if needs_step_up(&me, &state.factors.summary(&me.user.id).await?) {
        return Ok(step_up(""));
    }
    check_password(&state, &session, &me, &form).await?;
    let codes = state
        .factors
        .regenerate_recovery_codes(&me.caller, &me.user)
        .await?;
    tracing::info!(user = %me.user.id, "recovery codes replaced");
    Ok(pages::render(
        &RecoveryCodesPage {
            tab: "security",
            notice: Some("Your new recovery codes replace the old ones, which no longer work."),
            error: None,
            codes: &codes,
            continue_to: "/account/security",
        },
        &[],
    )?
    .into_response())
}

/// `POST /account/security/factor`: `action=rename` (with `name`) or `action=remove`
/// (with the current password) for the factor `factor`.
async fn change_factor(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = OAuthForm::parse(&body);
    browser::check_csrf(&session, &form).await?;
    let Some(me) = me(&state, &session, &peer).await? else {
        return Ok(sign_in_first(""));
    };
    if needs_step_up(&me, &state.factors.summary(&me.user.id).await?) {
        return Ok(step_up(""));
    }
    let factor_id = match form.single("factor").ok().flatten() {
        Some(id) if is_random_token(id, 16) => id,
        _ => return Err(FactorError::NotFound.into()),
    };
    let (state_ref, session_ref, me_ref) = (&state, &session, &me);
    let refused = |message: String| async move {
        overview_page(
            state_ref,
            session_ref,
            me_ref,
            ("", ""),
            None,
            Some(&message),
        )
        .await
    };
    match form.single("action").ok().flatten() {
        Some("rename") => {
            let name = form.single("name").ok().flatten().unwrap_or("");
            match state.factors.rename(&me.user, factor_id, name).await {
                Ok(()) => Ok(respond::see_other(&security_url("", Some("renamed")))),
                Err(FactorError::InvalidName(why)) => Err(PageError::InvalidForm(
                    refused(format!("The name is not possible: {why}.")).await?,
                )),
                Err(error) => Err(error.into()),
            }
        }
        Some("remove") => {
            check_password(&state, &session, &me, &form).await?;
            match state.factors.remove(&me.caller, &me.user, factor_id).await {
                Ok(()) => {
                    tracing::info!(user = %me.user.id, "second factor removed");
                    Ok(respond::see_other(&security_url("", Some("removed"))))
                }
                Err(FactorError::LastRequiredFactor) => Err(PageError::InvalidForm(
                    refused(
                        "Your account must have a second factor: add another before removing this one."
                            .into(),
                    )
                    .await?,
                )),
                Err(error) => Err(error.into()),
            }
        }
        _ => Err(PageError::InvalidForm(
            refused("Choose to rename or to remove it.".into()).await?,
        )),
    }
}
