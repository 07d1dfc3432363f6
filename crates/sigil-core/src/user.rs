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
    /// An admin requires this user to sign in with a second factor, whatever `--mfa` says.
    pub requires_second_factor: bool,
    /// Incremented when all the user's browser sessions must end (disabled, password reset
    /// or changed). A session is valid only while it carries the current epoch.
    pub session_epoch: i64,
    /// How the account came to be (shown in the admin console).
    pub origin: AccountOrigin,
    /// Counts the changes to the record: an update applies only to the version it was
    /// read at (`UserStore::update_user`), so that two changes at once cannot undo each
    /// other (a profile edit racing a disable, a password change racing a reset).
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl User {
    /// Whether the account has a password (an account made through an upstream provider
    /// has none until its owner sets one).
    pub fn has_password(&self) -> bool {
        !self.password_hash.is_empty()
    }

    /// Whether the account must verify its address before it may sign in: accounts made at
    /// `/signup` do (an invitation to the same address verified it already).
    pub fn awaits_email_verification(&self) -> bool {
        matches!(
            self.origin,
            AccountOrigin::SignUp | AccountOrigin::Invitation
        ) && !self.email_verified
    }
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
    // Full-width, mathematical and other compatibility forms look like plain letters
    // (ａｄｍｉｎ, 𝐚𝐝𝐦𝐢𝐧): a name must be its own NFKC form (RFC 8265's width mapping).
    {
        use unicode_normalization::UnicodeNormalization;
        if username.nfkc().collect::<String>() != username {
            return Err("user name may not use full-width or other look-alike forms of letters");
        }
    }
    Ok(())
}

/// Whether `text` holds characters that change how text around them is shown without
/// showing themselves: bidirectional overrides and isolates, zero-width characters.
pub fn has_invisible_controls(text: &str) -> bool {
    text.chars().any(|c| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
    })
}

/// How an account was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccountOrigin {
    /// By an admin in the console, or `sigil user add` (and accounts made before this was
    /// recorded).
    #[default]
    Admin,
    /// The first admin, made at first start.
    Bootstrap,
    /// By the person themselves at `/signup`.
    SignUp,
    /// At `/signup` with an admin's invitation.
    Invitation,
    /// At its first sign-in through an upstream identity provider that creates accounts.
    Federated,
}

impl AccountOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Bootstrap => "bootstrap",
            Self::SignUp => "sign_up",
            Self::Invitation => "invitation",
            Self::Federated => "federated",
        }
    }

    /// Reads [`AccountOrigin::as_str`] back; anything else counts as `Admin`.
    pub fn parse(value: &str) -> Self {
        match value {
            "bootstrap" => Self::Bootstrap,
            "sign_up" => Self::SignUp,
            "invitation" => Self::Invitation,
            "federated" => Self::Federated,
            _ => Self::Admin,
        }
    }

    /// In words, for the console.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Admin => "made by an admin",
            Self::Bootstrap => "the first admin",
            Self::SignUp => "signed up",
            Self::Invitation => "signed up by invitation",
            Self::Federated => "made at a sign-in through an identity provider",
        }
    }
}

/// A user name as stored: trimmed, in Unicode normalisation form C (so that the same
/// letters typed on two keyboards are the same name).
pub fn normalize_username(username: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    username.trim().nfc().collect()
}

/// The key two user names collide on: the normalised name, lowercased. Unique in the store.
pub fn username_key(username: &str) -> String {
    normalize_username(username).to_lowercase()
}

/// An e-mail address as stored: trimmed, NFC, the domain lowercased (the local part is
/// the mailbox owner's and is kept as typed).
pub fn normalize_email(email: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let email: String = email.trim().nfc().collect();
    match email.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
        None => email,
    }
}

/// The key two e-mail addresses collide on: the normalised address, lowercased whole
/// (nearly every mail system treats the local part case-insensitively). Unique in the store.
pub fn email_key(email: &str) -> String {
    normalize_email(email).to_lowercase()
}

/// Checks an e-mail address: one `@`, something before it, a dotted domain after it, at
/// most 254 bytes, no spaces or control characters.
pub fn validate_email(email: &str) -> Result<(), &'static str> {
    let valid = match email.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !local.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        }
        None => false,
    } && email.len() <= 254
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'));
    if valid {
        Ok(())
    } else {
        Err("this is not an e-mail address")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_normalise() {
        assert_eq!(normalize_username("  Alice "), "Alice");
        assert_eq!(username_key(" Alice"), "alice");
        // "é" as one code point and as e + combining accent are one name.
        assert_eq!(username_key("Jos\u{e9}"), username_key("Jose\u{301}"));
        assert_eq!(normalize_email(" Bob@Example.COM "), "Bob@example.com");
        assert_eq!(email_key("Bob@Example.COM"), "bob@example.com");
    }

    #[test]
    fn look_alike_names_are_refused() {
        assert!(validate_username("admin").is_ok());
        assert!(validate_username("José").is_ok());
        assert!(validate_username("ａｄｍｉｎ").is_err(), "full-width");
        assert!(validate_username("𝐚𝐝𝐦𝐢𝐧").is_err(), "mathematical bold");
        assert!(has_invisible_controls("Bob\u{202E}txt.exe"));
        assert!(!has_invisible_controls("Bob Example"));
    }

    #[test]
    fn email_addresses_are_checked() {
        assert!(validate_email("a@b.co").is_ok());
        for bad in [
            "", "a", "a@b", "@b.co", "a@@b.co", "a b@c.de", "a@b.co>", "a@.co",
        ] {
            assert!(validate_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn origins_round_trip() {
        for origin in [
            AccountOrigin::Admin,
            AccountOrigin::Bootstrap,
            AccountOrigin::SignUp,
            AccountOrigin::Invitation,
        ] {
            assert_eq!(AccountOrigin::parse(origin.as_str()), origin);
        }
    }
}
