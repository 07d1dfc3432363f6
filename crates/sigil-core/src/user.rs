//! Users (resource owners) and the profile claims they carry.

/// A user as stored. The password hash is an argon2id PHC string.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub password_hash: String,
    pub is_admin: bool,
    pub is_disabled: bool,
    /// Set for the bootstrap admin: the one-time password must be changed at first sign-in.
    pub must_change_password: bool,
    /// Incremented when all the user's browser sessions must end (disabled, password reset
    /// or changed). A session is valid only while it carries the current epoch.
    pub session_epoch: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("is_admin", &self.is_admin)
            .field("is_disabled", &self.is_disabled)
            .finish_non_exhaustive()
    }
}

/// Checks a user name: 1 to 64 characters, letters, digits and `.`, `_`, `-`, `@`.
pub fn validate_username(username: &str) -> Result<(), &'static str> {
    if username.is_empty() || username.chars().count() > 64 {
        return Err("user name must be 1 to 64 characters");
    }
    if !username
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        return Err("user name may contain letters, digits, '.', '_', '-' and '@' only");
    }
    Ok(())
}

/// Checks a new password: at least 8 characters and at most 1024 bytes (NIST SP 800-63B).
pub fn validate_new_password(password: &str) -> Result<(), &'static str> {
    if password.chars().count() < 8 {
        return Err("password must be at least 8 characters");
    }
    if password.len() > 1024 {
        return Err("password must be at most 1024 bytes");
    }
    Ok(())
}
