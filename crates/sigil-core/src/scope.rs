//! Scopes (RFC 6749 §3.3): a space-delimited set of case-sensitive tokens.

use crate::error::OAuthError;
use std::collections::BTreeSet;

/// Scopes that speak of a user (OIDC Core §5.4 and §11, RFC 6749 has none of its own): they
/// mean nothing in a token a client gets for itself, so `client_credentials` never grants them.
pub const USER_SCOPES: [&str; 6] = [
    "openid",
    "offline_access",
    "profile",
    "email",
    "address",
    "phone",
];

/// Whether `scope` is one of the [`USER_SCOPES`].
pub fn is_user_scope(scope: &str) -> bool {
    USER_SCOPES.contains(&scope)
}

/// A set of scope tokens, kept sorted so that equal sets print the same.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScopeSet(BTreeSet<String>);

impl ScopeSet {
    /// Parses a `scope` parameter. RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
    pub fn parse(value: &str) -> Result<Self, OAuthError> {
        let mut set = BTreeSet::new();
        for token in value.split(' ').filter(|t| !t.is_empty()) {
            if !token.bytes().all(is_scope_char) {
                return Err(OAuthError::invalid_scope(
                    "scope contains a character that RFC 6749 does not allow",
                ));
            }
            set.insert(token.to_string());
        }
        Ok(Self(set))
    }

    pub fn from_list<I, S>(items: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self(items.into_iter().map(Into::into).collect())
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn is_subset_of(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
    pub fn to_vec(&self) -> Vec<String> {
        self.0.iter().cloned().collect()
    }
    /// The scopes of `self` that are [`USER_SCOPES`].
    pub fn user_scopes(&self) -> Vec<String> {
        self.0
            .iter()
            .filter(|s| is_user_scope(s))
            .cloned()
            .collect()
    }
    /// `self` without the [`USER_SCOPES`].
    pub fn without_user_scopes(&self) -> ScopeSet {
        Self(
            self.0
                .iter()
                .filter(|s| !is_user_scope(s))
                .cloned()
                .collect(),
        )
    }
    /// The scopes of `self` not in `other`.
    pub fn difference(&self, other: &ScopeSet) -> Vec<String> {
        self.0.difference(&other.0).cloned().collect()
    }
}

impl std::fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

fn is_scope_char(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_sorted() {
        let s = ScopeSet::parse("openid  email profile").expect("valid");
        assert_eq!(s.to_string(), "email openid profile");
        assert!(s.contains("email"));
    }

    #[test]
    fn rejects_forbidden_characters() {
        assert!(ScopeSet::parse("a\"b").is_err());
        assert!(ScopeSet::parse("a\\b").is_err());
        assert!(ScopeSet::parse("caf\u{e9}").is_err());
    }

    #[test]
    fn user_scopes_are_told_apart() {
        let s = ScopeSet::parse("openid todos:read email address phone offline_access profile")
            .expect("valid");
        assert_eq!(s.without_user_scopes().to_string(), "todos:read");
        assert_eq!(s.user_scopes().len(), 6);
        assert!(!is_user_scope("openid2"));
    }

    #[test]
    fn subset() {
        let all = ScopeSet::parse("a b c").expect("valid");
        assert!(ScopeSet::parse("a c").expect("valid").is_subset_of(&all));
        assert!(!ScopeSet::parse("a d").expect("valid").is_subset_of(&all));
    }
}
