//! The overview's activity charts (last 24 hours from the per-minute counts, last 7 days
//! from the hourly ones) and `/admin/activity.csv` / `/admin/activity.ndjson`: the stored
//! counts, streamed in pages.

use super::audit::{csv_record, download, rfc3339, Format};
use super::charts::{Chart, Series};
use super::Admin;
use crate::http::error::PageError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use sigil_core::activity::{
    hour_of, metric, ActivityPage, ActivityQuery, ActivityRow, Grain, HOUR,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/activity.csv", get(export_csv))
        .route("/admin/activity.ndjson", get(export_ndjson))
}

/// The overview's two views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum Range {
    /// The last 24 hours, in quarter hours, from the per-minute counts.
    #[default]
    #[serde(rename = "24h")]
    Day,
    /// The last 7 days, in hours, from the hourly counts.
    #[serde(rename = "7d")]
    Week,
}

impl Range {
    /// (table, bucket width, number of buckets)
    fn shape(self) -> (Grain, i64, i64) {
        match self {
            Range::Day => (Grain::Minute, 900, 96),
            Range::Week => (Grain::Hour, HOUR, 168),
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Range::Day => "last 24 hours",
            Range::Week => "last 7 days",
        }
    }
}

/// The sign-in methods as the table names them, with their stored label stem.
const METHODS: [(&str, &str); 4] = [
    ("Password", "password"),
    ("Passkey", "passkey"),
    ("Upstream provider", "provider"),
    ("Second step (code or passkey)", "second_factor"),
];

/// One row of the sign-ins-by-method table.
pub struct MethodRow {
    pub method: &'static str,
    pub succeeded: i64,
    pub failed: i64,
}

/// What the overview shows of the activity.
pub struct Overview {
    pub charts: Vec<Chart>,
    pub methods: Vec<MethodRow>,
}

/// Reads the counts of `range` up to now and arranges them as the overview's charts.
pub async fn overview(state: &AppState, range: Range) -> Result<Overview, PageError> {
    let (grain, width, count) = range.shape();
    let now = state.authority.now();
    let last = now - now.rem_euclid(width);
    let from = last - (count - 1) * width;
    let rows = state
        .admin
        .activity_series(&ActivityQuery {
            grain,
            from,
            to: last + width,
            bucket_seconds: width,
            client_id: None,
        })
        .await
        .map_err(|error| PageError::Unavailable {
            event: "admin: the activity counts could not be read",
            error,
        })?;
    let buckets: Vec<i64> = (0..count).map(|i| from + i * width).collect();
    // The values of `metric` whose label passes `keep`, per bucket.
    let values = |metric: &str, keep: &dyn Fn(&str) -> bool| -> Vec<i64> {
        let mut values = vec![0; buckets.len()];
        for row in rows.iter().filter(|r| r.metric == metric && keep(&r.label)) {
            let i = (row.bucket - from) / width;
            if let Some(slot) = usize::try_from(i).ok().and_then(|i| values.get_mut(i)) {
                *slot += row.count;
            }
        }
        values
    };
    let first_step_ok = |label: &str| label.ends_with(".ok") && !label.starts_with("second_factor");
    let failed = |label: &str| label.ends_with(".failed");
    let sign_ins = Chart {
        id: "sign-ins",
        title: "Sign-ins",
        buckets: buckets.clone(),
        bucket_seconds: width,
        series: vec![
            Series {
                name: "Succeeded",
                values: values(metric::SIGN_IN, &first_step_ok),
            },
            Series {
                name: "Failed",
                values: values(metric::SIGN_IN, &failed),
            },
        ],
    };
    let tokens = Chart {
        id: "tokens",
        title: "Tokens issued",
        buckets: buckets.clone(),
        bucket_seconds: width,
        series: GRANT_SERIES
            .iter()
            .map(|(name, grant)| Series {
                name,
                values: values(metric::TOKEN, &|label| label == *grant),
            })
            .collect(),
    };
    let any = |_: &str| true;
    let problems = Chart {
        id: "problems",
        title: "Problems",
        buckets: buckets.clone(),
        bucket_seconds: width,
        series: vec![
            Series {
                name: "Refresh-token reuse",
                values: values(metric::REFRESH_REUSE, &any),
            },
            Series {
                name: "Throttled",
                values: values(metric::THROTTLED, &any),
            },
            Series {
                name: "Server errors (5xx)",
                values: values(metric::SERVER_ERROR, &any),
            },
        ],
    };
    let sum = |label: &str| -> i64 {
        rows.iter()
            .filter(|r| r.metric == metric::SIGN_IN && r.label == label)
            .map(|r| r.count)
            .sum()
    };
    let methods = METHODS
        .iter()
        .map(|(method, stem)| MethodRow {
            method,
            succeeded: sum(&format!("{stem}.ok")),
            failed: sum(&format!("{stem}.failed")),
        })
        .collect();
    Ok(Overview {
        charts: vec![sign_ins, tokens, problems],
        methods,
    })
}

/// The grants in the tokens chart, in stacking order.
const GRANT_SERIES: [(&str, &str); 4] = [
    ("Authorization code", "authorization_code"),
    ("Refresh token", "refresh_token"),
    ("Client credentials", "client_credentials"),
    ("Password", "password"),
];

#[derive(Deserialize)]
struct ExportQuery {
    /// `minute` or `hour` (the default).
    grain: Option<String>,
    /// Seconds since the epoch; the oldest kept by default.
    from: Option<i64>,
    /// Seconds since the epoch, exclusive; now by default.
    to: Option<i64>,
}

async fn export_csv(
    State(state): State<AppState>,
    _admin: Admin,
    Query(query): Query<ExportQuery>,
) -> Result<Response, PageError> {
    export(state, query, Format::Csv)
}

async fn export_ndjson(
    State(state): State<AppState>,
    _admin: Admin,
    Query(query): Query<ExportQuery>,
) -> Result<Response, PageError> {
    export(state, query, Format::Ndjson)
}

/// Rows read from the store per page of an export.
const EXPORT_PAGE: i64 = 500;

type Cursor = Option<(i64, String, String, String)>;

fn export(state: AppState, query: ExportQuery, format: Format) -> Result<Response, PageError> {
    let grain = match query.grain.as_deref() {
        None | Some("hour") => Grain::Hour,
        Some("minute") => Grain::Minute,
        Some(_) => return Err(invalid("grain is \"minute\" or \"hour\"")),
    };
    let from = query.from.unwrap_or(0).max(0);
    let to = query
        .to
        .unwrap_or_else(|| hour_of(state.authority.now()) + HOUR);
    if to < from {
        return Err(invalid("to must not be before from"));
    }
    let header = match format {
        Format::Csv => Some(Bytes::from_static(CSV_HEADER.as_bytes())),
        Format::Ndjson => None,
    };
    // (where the next page starts, the header still to send, done)
    let start: (Cursor, Option<Bytes>, bool) = (None, header, false);
    let pages = futures_util::stream::unfold(start, move |(after, header, done)| {
        let state = state.clone();
        async move {
            if let Some(header) = header {
                return Some((Ok(header), (after, None, done)));
            }
            if done {
                return None;
            }
            let page = ActivityPage {
                grain,
                from,
                to,
                after: after.clone(),
                limit: EXPORT_PAGE,
            };
            let batch = match state.admin.list_activity(&page).await {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!(%error, "activity export cut short");
                    return Some((
                        Err(std::io::Error::other(
                            "the activity counts could not be read",
                        )),
                        (after, None, true),
                    ));
                }
            };
            let last = batch.last().map(|r| {
                (
                    r.bucket,
                    r.metric.clone(),
                    r.label.clone(),
                    r.client_id.clone(),
                )
            })?;
            let mut chunk = String::new();
            for row in &batch {
                match format {
                    Format::Csv => csv_row(&mut chunk, grain, row),
                    Format::Ndjson => ndjson_row(&mut chunk, grain, row),
                }
            }
            let finished = (batch.len() as i64) < EXPORT_PAGE;
            Some((Ok(Bytes::from(chunk)), (Some(last), None, finished)))
        }
    });
    Ok(download(pages, format, "sigil-activity"))
}

const CSV_HEADER: &str = "time,bucket,grain,metric,label,client_id,count\r\n";

fn csv_row(out: &mut String, grain: Grain, row: &ActivityRow) {
    let fields = [
        rfc3339(row.bucket),
        row.bucket.to_string(),
        grain.as_str().to_string(),
        row.metric.clone(),
        row.label.clone(),
        row.client_id.clone(),
        row.count.to_string(),
    ];
    // Client ids come from registrations: quoted and defused like the audit log's.
    csv_record(out, &fields);
}

fn ndjson_row(out: &mut String, grain: Grain, row: &ActivityRow) {
    let line = serde_json::json!({
        "time": rfc3339(row.bucket),
        "bucket": row.bucket,
        "grain": grain.as_str(),
        "metric": row.metric,
        "label": row.label,
        "client_id": row.client_id,
        "count": row.count,
    });
    out.push_str(&line.to_string());
    out.push('\n');
}

/// A query the export cannot answer (422, the message says why).
fn invalid(message: &str) -> PageError {
    PageError::Admin(sigil_core::admin::AdminError::Invalid(message.to_string()))
}
