//! `/admin/audit`: the audit log, newest first, with filters and paging by sequence number.

use super::{format_time, render, Admin, Chrome};
use crate::http::error::PageError;
use crate::state::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use sigil_core::audit::AuditFilter;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/audit", get(list))
}

const PAGE_SIZE: i64 = 50;

/// The actions Sigil records, for the filter.
pub const ACTIONS: &[&str] = &[
    "sign_in.success",
    "sign_in.failure",
    "token.revoked",
    "refresh_token.reuse_detected",
    "key.rotated",
    "key.pruned",
    "client.created",
    "client.updated",
    "client.secret_rotated",
    "client.deleted",
    "user.created",
    "user.updated",
    "user.password_reset",
    "user.password_changed",
    "user.admin_granted",
    "user.admin_removed",
    "user.disabled",
    "user.enabled",
    "grant.revoked",
];

pub struct EntryRow {
    pub seq: i64,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub address: String,
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    chrome: Chrome,
    actions: Vec<(&'static str, bool)>,
    actor: String,
    target: String,
    entries: Vec<EntryRow>,
    older: Option<String>,
    newer: Option<String>,
}

#[derive(Deserialize)]
struct AuditQuery {
    action: Option<String>,
    actor: Option<String>,
    target: Option<String>,
    before: Option<i64>,
}

fn given(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Query(query): Query<AuditQuery>,
) -> Result<Response, PageError> {
    let filter = AuditFilter {
        action_prefix: given(&query.action),
        actor: given(&query.actor),
        target: given(&query.target),
        before_seq: query.before,
        limit: PAGE_SIZE + 1,
    };
    let mut entries = state.admin.list_audit(&filter).await?;
    let has_more = entries.len() as i64 > PAGE_SIZE;
    entries.truncate(PAGE_SIZE as usize);
    let link = |before: Option<i64>| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("action", &filter.action_prefix),
            ("actor", &filter.actor),
            ("target", &filter.target),
        ] {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
        if let Some(before) = before {
            query.append_pair("before", &before.to_string());
        }
        format!("/admin/audit?{}", query.finish())
    };
    let older = has_more
        .then(|| entries.last().map(|e| link(Some(e.seq))))
        .flatten();
    let newer = query.before.is_some().then(|| link(None));
    let rows = entries
        .into_iter()
        .map(|e| EntryRow {
            seq: e.seq,
            time: format_time(e.record.at),
            actor: e.record.actor,
            action: e.record.action,
            target: e.record.target.unwrap_or_default(),
            detail: e.record.detail,
            address: e.record.address.unwrap_or_default(),
        })
        .collect();
    render(&AuditPage {
        chrome: admin.chrome(None),
        actions: ACTIONS
            .iter()
            .map(|a| (*a, filter.action_prefix.as_deref() == Some(*a)))
            .collect(),
        actor: filter.actor.clone().unwrap_or_default(),
        target: filter.target.clone().unwrap_or_default(),
        entries: rows,
        older,
        newer,
    })
}
