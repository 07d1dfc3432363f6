//! Sign-in failure counts: the `sign_in_failures` table, one row per subject, and the
//! atomic reservation that checks and counts an attempt in one statement.

use super::{read_rows, Backend, Param, Reads, SqlStore};
use async_trait::async_trait;
use sigil_core::store::{SignInFailureStore, SignInFailures, StoreError};
use sigil_core::throttle::ThrottlePolicy;

/// Counts a sign-in attempt as a failure only when the subject may try now, in one
/// statement (both databases): `$1` subject, `$2` now, `$3` start of the window, `$4` free
/// failures (at least 1), `$5` first delay (at least 1), `$6` longest delay. The wait is
/// `ThrottlePolicy::delay` written in SQL: `$5 * 2^(failures - $4)` (at most 30 doublings),
/// capped at `$6`, counted to the end of the last failure's second. No row comes back when
/// the attempt must wait.
const RESERVE_SIGN_IN_ATTEMPT: &str = "INSERT INTO sign_in_failures (subject, failures, first_failure_at, last_failure_at) VALUES ($1, 1, $2, $2) \
    ON CONFLICT (subject) DO UPDATE SET \
    failures = CASE WHEN sign_in_failures.last_failure_at < $3 THEN 1 ELSE sign_in_failures.failures + 1 END, \
    first_failure_at = CASE WHEN sign_in_failures.last_failure_at < $3 THEN $2 ELSE sign_in_failures.first_failure_at END, \
    last_failure_at = $2 \
    WHERE sign_in_failures.last_failure_at < $3 \
    OR sign_in_failures.failures < $4 \
    OR sign_in_failures.last_failure_at + 1 + (CASE \
        WHEN $5 * (CAST(1 AS BIGINT) << CAST((CASE WHEN sign_in_failures.failures - $4 > 30 THEN 30 ELSE sign_in_failures.failures - $4 END) AS INTEGER)) > $6 THEN $6 \
        ELSE $5 * (CAST(1 AS BIGINT) << CAST((CASE WHEN sign_in_failures.failures - $4 > 30 THEN 30 ELSE sign_in_failures.failures - $4 END) AS INTEGER)) END) <= $2 \
    RETURNING subject";

/// A row of `sign_in_failures`.
#[derive(sqlx::FromRow)]
pub(super) struct SignInFailuresRow {
    subject: String,
    failures: i64,
    first_failure_at: i64,
    last_failure_at: i64,
}

impl From<SignInFailuresRow> for SignInFailures {
    fn from(row: SignInFailuresRow) -> Self {
        Self {
            subject: row.subject,
            failures: row.failures,
            first_failure_at: row.first_failure_at,
            last_failure_at: row.last_failure_at,
        }
    }
}

#[async_trait]
impl<B: Backend> SignInFailureStore for SqlStore<B>
where
    B::Db: Reads<SignInFailuresRow>,
{
    async fn find_sign_in_failures(
        &self,
        subjects: &[String],
    ) -> Result<Vec<SignInFailures>, StoreError> {
        if subjects.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=subjects.len()).map(|n| format!("${n}")).collect();
        let sql = format!("SELECT subject, failures, first_failure_at, last_failure_at FROM sign_in_failures WHERE subject IN ({})", placeholders.join(", "));
        let query = || {
            let mut query = sqlx::query(&sql);
            for subject in subjects {
                query = query.param(subject.as_str());
            }
            query
        };
        let rows = self.hot_all(query).await?;
        let counts = read_rows::<B::Db, SignInFailuresRow>(&rows)?;
        Ok(counts.into_iter().map(SignInFailures::from).collect())
    }

    async fn reserve_sign_in_attempt(
        &self,
        subject: &str,
        free: i64,
        policy: &ThrottlePolicy,
        now: i64,
    ) -> Result<Option<SignInFailures>, StoreError> {
        // A count that was cleared between the refused upsert and the read that
        // explains it: try again (a few times at most; each round is atomic).
        for _ in 0..3 {
            let reserve = sqlx::query(RESERVE_SIGN_IN_ATTEMPT)
                .param(subject)
                .param(now)
                .param(now - policy.window)
                .param(free.max(1))
                .param(policy.base_delay.max(1))
                .param(policy.max_delay);
            if self.fetch_optional(reserve).await?.is_some() {
                return Ok(None);
            }
            let refusing = self.find_sign_in_failures(&[subject.to_string()]).await?;
            if let Some(count) = refusing.into_iter().next() {
                return Ok(Some(count));
            }
        }
        Err(StoreError::Unavailable(
            "the sign-in count keeps changing".into(),
        ))
    }

    async fn release_sign_in_attempt(&self, subject: &str) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE sign_in_failures SET failures = failures - 1 WHERE subject = $1 AND failures > 0",
        )
        .param(subject);
        self.execute(query).await?;
        Ok(())
    }

    async fn clear_sign_in_failures(&self, subject: &str) -> Result<(), StoreError> {
        let query = sqlx::query("DELETE FROM sign_in_failures WHERE subject = $1").param(subject);
        self.execute(query).await?;
        Ok(())
    }
}
