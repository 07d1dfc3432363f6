//! Browser sessions a user can see and end, and the apps they connected.

use super::{AccountError, Accounts};
use crate::audit::Caller;
use crate::authorize::SignedIn;
use crate::backchannel::{session_sid, EndedSessions};
use crate::factors::{last_used, UsedMethod};
use crate::secret::random_token;
use crate::store::BrowserSession;
use crate::user::User;

/// A browser session as the account page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub session: BrowserSession,
    /// The session the page is shown in.
    pub is_current: bool,
}

impl Accounts {
    /// Records a new signed-in browser session and returns what the session keeps:
    /// `methods` are how the user proved who they are (the last one's time is the
    /// session's `auth_time`).
    pub async fn start_session(
        &self,
        user: &User,
        address: Option<String>,
        user_agent: Option<String>,
        methods: Vec<UsedMethod>,
    ) -> Result<SignedIn, AccountError> {
        let now = self.now();
        let id = random_token(16);
        self.store
            .create_browser_session(&BrowserSession {
                id: id.clone(),
                user_id: user.id.clone(),
                created_at: now,
                last_seen_at: now,
                address,
                user_agent: user_agent.map(|agent| agent.chars().take(200).collect()),
                ended_at: None,
            })
            .await?;
        Ok(SignedIn {
            user_id: user.id.clone(),
            auth_time: last_used(&methods).unwrap_or(now),
            session_epoch: user.session_epoch,
            session_id: Some(id),
            methods,
        })
    }

    /// Ends a session's record when the browser signs out (not audited: signing out is
    /// not a change to the account). A failure is logged; the sign-out goes on.
    pub async fn forget_session(&self, user_id: &str, session_id: &str) {
        if let Err(error) = self
            .store
            .end_browser_sessions(user_id, Some(session_id), None, self.now())
            .await
        {
            tracing::warn!(%error, "could not end a session's record");
        }
        let sid = session_sid(session_id);
        self.logouts
            .sessions_ended(user_id, EndedSessions::Only(&sid))
            .await;
    }

    /// The user's live sessions, the current one marked; `idle_ttl`: how long an unused
    /// session lives.
    pub async fn list_sessions(
        &self,
        user_id: &str,
        current: Option<&str>,
        idle_ttl: i64,
    ) -> Result<Vec<SessionInfo>, AccountError> {
        let sessions = self
            .store
            .list_browser_sessions(user_id, self.now() - idle_ttl)
            .await?;
        Ok(sessions
            .into_iter()
            .map(|session| SessionInfo {
                is_current: Some(session.id.as_str()) == current,
                session,
            })
            .collect())
    }

    /// Ends one of the user's sessions (`only`), or every one but the current (`except`).
    pub async fn end_sessions(
        &self,
        caller: &Caller,
        user: &User,
        only: Option<&str>,
        except: Option<&str>,
    ) -> Result<u64, AccountError> {
        let ended = self
            .store
            .end_browser_sessions(&user.id, only, except, self.now())
            .await?;
        let only_sid = only.map(session_sid);
        let except_sid = except.map(session_sid);
        let which = match (&only_sid, &except_sid) {
            (Some(sid), _) => EndedSessions::Only(sid),
            (None, Some(sid)) => EndedSessions::AllExcept(sid),
            (None, None) => EndedSessions::All,
        };
        self.logouts.sessions_ended(&user.id, which).await;
        let detail = match only {
            Some(_) => format!("{ended} session ended"),
            None => format!("{ended} other sessions ended"),
        };
        self.audit_log
            .record(caller, "user.sessions_ended", Some(&user.username), detail)
            .await;
        Ok(ended)
    }
}
