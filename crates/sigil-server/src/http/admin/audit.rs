//! `/admin/audit`: the audit log, newest first, with filters and paging by sequence number;
//! `/admin/audit.csv` and `/admin/audit.ndjson`: the whole log (or what the filters keep),
//! oldest first, streamed in pages so that a long log never sits in memory.

use super::{format_time, render, Admin, Chrome};
use crate::http::error::PageError;
use crate::state::AppState;
use askama::Template;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use sigil_core::audit::{AuditEntry, AuditFilter};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/audit", get(list))
        .route("/admin/audit.csv", get(export_csv))
        .route("/admin/audit.ndjson", get(export_ndjson))
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
    "session.ended",
    "audit.exported",
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
    /// The filters as a query, for the download links.
    export_query: String,
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
    let export_query = link(None)
        .split_once('?')
        .map(|(_, q)| q.to_string())
        .unwrap_or_default();
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
        export_query,
    })
}

/// Entries read from the store per page of an export.
const EXPORT_PAGE: i64 = 500;

/// How an export is written; shared with the activity export.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Csv,
    Ndjson,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Csv => "CSV",
            Format::Ndjson => "NDJSON",
        }
    }
}

/// A streamed download: `stem.csv` or `stem.ndjson`, with its content type, never cached.
pub(super) fn download<S>(stream: S, format: Format, stem: &str) -> Response
where
    S: futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    let (content_type, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) =
        HeaderValue::from_str(&format!("attachment; filename=\"{stem}.{extension}\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn export_csv(
    State(state): State<AppState>,
    admin: Admin,
    Query(query): Query<AuditQuery>,
) -> Result<Response, PageError> {
    export(state, admin, query, Format::Csv).await
}

async fn export_ndjson(
    State(state): State<AppState>,
    admin: Admin,
    Query(query): Query<AuditQuery>,
) -> Result<Response, PageError> {
    export(state, admin, query, Format::Ndjson).await
}

/// The export: recorded in the log first (who exported it is itself worth keeping), then
/// the entries the filters keep, oldest first, each with its hashes so that the copy can be
/// checked like the log.
async fn export(
    state: AppState,
    admin: Admin,
    query: AuditQuery,
    format: Format,
) -> Result<Response, PageError> {
    let action = given(&query.action);
    let actor = given(&query.actor);
    let target = given(&query.target);
    let mut described = String::new();
    for (name, value) in [("action", &action), ("actor", &actor), ("target", &target)] {
        if let Some(value) = value {
            described.push_str(&format!(", {name} {value:?}"));
        }
    }
    state
        .admin
        .record_audit_export(&admin.caller(), format.name(), &described)
        .await;
    let keep = move |entry: &AuditEntry| {
        action
            .as_deref()
            .is_none_or(|a| entry.record.action.starts_with(a))
            && actor.as_deref().is_none_or(|a| entry.record.actor == a)
            && target
                .as_deref()
                .is_none_or(|t| entry.record.target.as_deref() == Some(t))
    };
    let header = match format {
        Format::Csv => Some(Bytes::from_static(CSV_HEADER.as_bytes())),
        Format::Ndjson => None,
    };
    // (the next sequence number to read after, the header still to send, done)
    let pages =
        futures_util::stream::unfold((0i64, header, false), move |(after, header, done)| {
            let state = state.clone();
            let keep = keep.clone();
            async move {
                if let Some(header) = header {
                    return Some((Ok(header), (after, None, done)));
                }
                if done {
                    return None;
                }
                let batch = match state.admin.audit_entries_after(after, EXPORT_PAGE).await {
                    Ok(batch) => batch,
                    Err(error) => {
                        tracing::warn!(%error, "audit export cut short");
                        return Some((
                            Err(std::io::Error::other("the audit log could not be read")),
                            (after, None, true),
                        ));
                    }
                };
                let last = batch.last().map(|e| e.seq)?;
                let mut chunk = String::new();
                for entry in batch.iter().filter(|e| keep(e)) {
                    match format {
                        Format::Csv => csv_row(&mut chunk, entry),
                        Format::Ndjson => ndjson_row(&mut chunk, entry),
                    }
                }
                let finished = (batch.len() as i64) < EXPORT_PAGE;
                Some((Ok(Bytes::from(chunk)), (last, None, finished)))
            }
        });
    Ok(download(pages, format, "sigil-audit"))
}

const CSV_HEADER: &str = "seq,time,actor,action,target,detail,address,prev_hash,hash\r\n";

fn csv_row(out: &mut String, entry: &AuditEntry) {
    let record = &entry.record;
    let fields = [
        entry.seq.to_string(),
        rfc3339(record.at),
        record.actor.clone(),
        record.action.clone(),
        record.target.clone().unwrap_or_default(),
        record.detail.clone(),
        record.address.clone().unwrap_or_default(),
        entry.prev_hash.clone(),
        entry.hash.clone(),
    ];
    csv_record(out, &fields);
}

/// One RFC 4180 record. A field a spreadsheet would run as a formula (it starts with
/// `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'` (OWASP CSV
/// injection); any field with a comma, a quote or a line break is quoted.
pub(super) fn csv_record(out: &mut String, fields: &[String]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&csv_field(field));
    }
    out.push_str("\r\n");
}

#[doc(hidden)]
pub fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

fn ndjson_row(out: &mut String, entry: &AuditEntry) {
    let record = &entry.record;
    let line = serde_json::json!({
        "seq": entry.seq,
        "at": record.at,
        "time": rfc3339(record.at),
        "actor": record.actor,
        "actor_id": record.actor_id,
        "action": record.action,
        "target": record.target,
        "detail": record.detail,
        "address": record.address,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    });
    out.push_str(&line.to_string());
    out.push('\n');
}

pub(super) fn rfc3339(unix: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}
