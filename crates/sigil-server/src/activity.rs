//! Writing the activity counters ([`sigil_core::activity`]) to the database: every few
//! seconds a task writes what this replica counted, in one transaction; on shutdown a last
//! write. Housekeeping deletes counts past their retention.

use crate::config::{secs, ActivityArgs};
use crate::state::AppState;
use std::time::Duration;
use tracing::Instrument;

/// How the counters are written and kept.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub flush_interval: Duration,
    /// Seconds the per-minute counts are kept.
    pub minute_retention: i64,
    /// Seconds the hourly counts are kept.
    pub hour_retention: i64,
}

impl From<&ActivityArgs> for Settings {
    fn from(args: &ActivityArgs) -> Self {
        Self {
            flush_interval: args.activity_flush_interval,
            minute_retention: secs(args.activity_minute_retention),
            hour_retention: secs(args.activity_retention),
        }
    }
}

/// Writes the counts once; a failure is logged and the counts wait for the next write.
pub async fn write(state: &AppState) {
    match state.authority.write_activity().await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(counts = n, "activity written"),
        Err(error) => {
            tracing::warn!(%error, "could not write the activity counts; kept for the next try")
        }
    }
}

/// Starts the task that writes the counts every `flush_interval`.
pub fn spawn_writer(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(
        async move {
            let mut ticker = tokio::time::interval(state.activity.flush_interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                write(&state).await;
            }
        }
        .instrument(tracing::info_span!("task", task = "activity")),
    )
}

/// Deletes the counts past their retention (run by housekeeping).
pub async fn prune(state: &AppState) {
    let settings = state.activity;
    match state
        .authority
        .prune_activity(settings.minute_retention, settings.hour_retention)
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(rows = n, "deleted old activity counts"),
        Err(error) => tracing::warn!(%error, "deleting old activity counts failed"),
    }
}
