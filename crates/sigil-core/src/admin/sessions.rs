//! Browser sessions as the console shows them: every live one a page at a time, one
//! user's, and an admin ending one, which tells the clients it signed in to by
//! back-channel logout (OpenID Connect Back-Channel Logout 1.0 §2.5) exactly as a user
//! ending their own does.

use super::{Admin, AdminError};
use crate::audit::Caller;
use crate::backchannel::{session_sid, EndedSessions};
use crate::secret::is_random_token;
use crate::store::BrowserSession;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// A live browser session with whom it belongs to and where it signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSession {
    pub session: BrowserSession,
    /// The user's name; `None` if the account was deleted meanwhile.
    pub username: Option<String>,
    /// The clients the session signed in to (an authorization code was issued from it).
    pub clients: Vec<SessionClient>,
}

/// A client a session signed in to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionClient {
    pub client_id: String,
    /// `None` when the client has been deleted meanwhile.
    pub name: Option<String>,
}

/// Where a page of the sessions list starts: after the session last seen at
/// `last_seen_at` with id `id`, in the list's order (the most recently seen first, ties by
/// id, descending). Written `<last_seen_at>.<id>` in links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCursor {
    pub last_seen_at: i64,
    pub id: String,
}

/// A cursor that is not one this service wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadCursor;

impl FromStr for SessionCursor {
    type Err = BadCursor;

    /// Strictly: decimal seconds without sign or leading zeros (at most 18 digits), a
    /// dot, and a session id of the shape Sigil generates.
    fn from_str(text: &str) -> Result<Self, BadCursor> {
        let (seconds, id) = text.split_once('.').ok_or(BadCursor)?;
        let is_number = !seconds.is_empty()
            && seconds.len() <= 18
            && seconds.bytes().all(|b| b.is_ascii_digit())
            && (seconds == "0" || !seconds.starts_with('0'));
        if !is_number || !is_random_token(id, SESSION_ID_BYTES) {
            return Err(BadCursor);
        }
        let last_seen_at = seconds.parse().map_err(|_| BadCursor)?;
        Ok(Self {
            last_seen_at,
            id: id.to_string(),
        })
    }
}

impl fmt::Display for SessionCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.last_seen_at, self.id)
    }
}

/// One page of the live sessions, and where the next (older) one starts, if there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionsPage {
    pub sessions: Vec<AdminSession>,
    pub next: Option<SessionCursor>,
}

/// Bytes in a session record's id (`random_token(16)`, as `Accounts::start_session` makes it).
pub const SESSION_ID_BYTES: usize = 16;

impl Admin {
    /// The live sessions of every user (not ended, seen within `idle_ttl` seconds), the
    /// most recently seen first, `limit` at a time, starting after `after` if given.
    pub async fn list_live_sessions(
        &self,
        idle_ttl: i64,
        after: Option<&SessionCursor>,
        limit: i64,
    ) -> Result<SessionsPage, AdminError> {
        let limit = limit.max(1);
        let mut sessions = self
            .store
            .list_live_browser_sessions(
                self.now() - idle_ttl,
                after.map(|c| (c.last_seen_at, c.id.as_str())),
                limit + 1,
            )
            .await?;
        let has_more = sessions.len() as i64 > limit;
        sessions.truncate(limit as usize);
        let next = sessions
            .last()
            .filter(|_| has_more)
            .map(|last| SessionCursor {
                last_seen_at: last.last_seen_at,
                id: last.id.clone(),
            });
        Ok(SessionsPage {
            sessions: self.describe_sessions(sessions).await?,
            next,
        })
    }

    /// One user's live sessions (not ended, seen within `idle_ttl` seconds), the most
    /// recently seen first.
    pub async fn user_sessions(
        &self,
        user_id: &str,
        idle_ttl: i64,
    ) -> Result<Vec<AdminSession>, AdminError> {
        let sessions = self
            .store
            .list_browser_sessions(user_id, self.now() - idle_ttl)
            .await?;
        self.describe_sessions(sessions).await
    }

    /// A session not ended yet; [`AdminError::NoSuchSession`] when there is none (the id
    /// was never one, or the session ended).
    pub async fn find_session(&self, session_id: &str) -> Result<AdminSession, AdminError> {
        let session = self
            .store
            .find_browser_session(session_id)
            .await?
            .filter(|s| s.ended_at.is_none())
            .ok_or(AdminError::NoSuchSession)?;
        let mut described = self.describe_sessions(vec![session]).await?;
        described.pop().ok_or(AdminError::NoSuchSession)
    }

    /// Ends one browser session of whoever it belongs to: its record is ended (the browser
    /// is signed out at its next request, on every replica), the clients it signed in to
    /// get their back-channel logout, and the audit log records `session.ended` with the
    /// user as target. Returns the session as it was.
    pub async fn end_session(
        &self,
        caller: &Caller,
        session_id: &str,
    ) -> Result<AdminSession, AdminError> {
        let found = self.find_session(session_id).await?;
        let user_id = found.session.user_id.clone();
        let ended = self
            .store
            .end_browser_sessions(&user_id, Some(session_id), None, self.now())
            .await?;
        if ended == 0 {
            // Ended by someone else meanwhile: their logout went out with it.
            return Err(AdminError::NoSuchSession);
        }
        let sid = session_sid(session_id);
        let queued = self
            .logouts
            .sessions_ended(&user_id, EndedSessions::Only(&sid))
            .await;
        let target = found.username.clone().unwrap_or_else(|| user_id.clone());
        let detail = format!(
            "a browser session from {} ended by an admin; back-channel logouts queued: {}",
            found
                .session
                .address
                .as_deref()
                .unwrap_or("an unknown address"),
            queued.queued
        );
        self.audit_log
            .record(caller, "session.ended", Some(&target), detail)
            .await;
        Ok(found)
    }

    /// The sessions with their users' names and their clients, each user and client
    /// looked up once.
    async fn describe_sessions(
        &self,
        sessions: Vec<BrowserSession>,
    ) -> Result<Vec<AdminSession>, AdminError> {
        let mut usernames: HashMap<String, Option<String>> = HashMap::new();
        let mut client_names: HashMap<String, Option<String>> = HashMap::new();
        let mut described = Vec::with_capacity(sessions.len());
        for session in sessions {
            if !usernames.contains_key(&session.user_id) {
                let name = self
                    .store
                    .find_user(&session.user_id)
                    .await?
                    .map(|u| u.username);
                usernames.insert(session.user_id.clone(), name);
            }
            let username = usernames.get(&session.user_id).cloned().flatten();
            let mut clients = Vec::new();
            for client_id in self
                .store
                .list_session_clients(&session_sid(&session.id))
                .await?
            {
                if !client_names.contains_key(&client_id) {
                    let name = self.store.find_client(&client_id).await?.map(|c| c.name);
                    client_names.insert(client_id.clone(), name);
                }
                let name = client_names.get(&client_id).cloned().flatten();
                clients.push(SessionClient { client_id, name });
            }
            described.push(AdminSession {
                session,
                username,
                clients,
            });
        }
        Ok(described)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_read_strictly() {
        let id = crate::secret::random_token(16);
        let cursor: SessionCursor = format!("1700000000.{id}").parse().expect("cursor");
        assert_eq!(cursor.last_seen_at, 1_700_000_000);
        assert_eq!(cursor.to_string(), format!("1700000000.{id}"));
        for bad in [
            String::new(),
            id.clone(),
            format!(".{id}"),
            format!("-1.{id}"),
            format!("+1.{id}"),
            format!("01.{id}"),
            format!("1e3.{id}"),
            format!(" 1.{id}"),
            format!("{}.{id}", "9".repeat(19)),
            "1.short".into(),
            format!("1.{id}x"),
            format!("1.{id}.1"),
        ] {
            assert_eq!(bad.parse::<SessionCursor>(), Err(BadCursor), "{bad:?}");
        }
    }
}
