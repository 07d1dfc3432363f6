//! The rules every new password must meet, whichever way it is set (sign-up, reset,
//! change, the admin console, the command line), after NIST SP 800-63B §3.1.1.2: at least
//! 10 and at most 128 characters, no composition rules, not one of the most common
//! passwords, and not containing the account's user name or e-mail local part.

use std::collections::HashSet;
use std::sync::LazyLock;

/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// The longest password accepted, in characters (a bound on the hashing work too).
pub const MAX_PASSWORD_CHARS: usize = 128;

/// The list shipped in `data/common-passwords.txt`, one per line.
const COMMON_PASSWORDS: &str = include_str!("../data/common-passwords.txt");

/// The common passwords, lowercased, as a set: built once, on first use (the server forces
/// it at start-up with [`common_password_count`]).
static COMMON: LazyLock<HashSet<String>> = LazyLock::new(|| {
    COMMON_PASSWORDS
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_lowercase)
        .collect()
});

/// How many distinct common passwords are refused. Calling it builds the set.
pub fn common_password_count() -> usize {
    COMMON.len()
}

/// Whether `password` is on the common-password list (compared case-insensitively, so
/// `Password123` counts as `password123`).
pub fn is_common(password: &str) -> bool {
    COMMON.contains(&password.to_lowercase())
}

/// What a password is checked against besides the lists: the account it is for.
#[derive(Debug, Clone, Copy, Default)]
pub struct PasswordContext<'a> {
    pub username: &'a str,
    pub email: Option<&'a str>,
}

/// Checks a new password; the error is one sentence for a form.
pub fn check_new_password(password: &str, context: PasswordContext<'_>) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(format!(
            "The password must be at least {MIN_PASSWORD_CHARS} characters long."
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(format!(
            "The password must be at most {MAX_PASSWORD_CHARS} characters long."
        ));
    }
    if is_common(password) {
        return Err(
            "This password is one of the most commonly used ones, which attackers try first. Please choose another."
                .into(),
        );
    }
    let lowered = password.to_lowercase();
    let contains = |part: &str| {
        let part = part.trim().to_lowercase();
        // A one- or two-letter name would refuse half of all passwords.
        part.chars().count() >= 3 && lowered.contains(&part)
    };
    if contains(context.username) {
        return Err("The password must not contain your user name.".into());
    }
    if let Some(local) = context
        .email
        .and_then(|email| email.rsplit_once('@'))
        .map(|(local, _)| local)
    {
        if contains(local) {
            return Err("The password must not contain your e-mail address.".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(password: &str) -> Result<(), String> {
        check_new_password(
            password,
            PasswordContext {
                username: "alice",
                email: Some("Alice.Smith@example.com"),
            },
        )
    }

    #[test]
    fn the_list_is_large_and_loaded() {
        assert!(
            common_password_count() >= 10_000,
            "{}",
            common_password_count()
        );
        assert!(is_common("password"));
        assert!(is_common("PASSWORD1"), "case-insensitively");
        assert!(!is_common("correct horse battery staple"));
    }

    #[test]
    fn length_bounds_count_characters() {
        assert!(check("short").is_err());
        assert!(check("nine char").is_err());
        assert!(check("ten chars!").is_ok());
        // Ten characters of more than ten bytes each count as ten.
        assert!(check("ééééééééé").is_err());
        assert!(check("éééééééééé").is_ok());
        assert!(check(&"x".repeat(128)).is_ok());
        assert!(check(&"x".repeat(129)).is_err());
    }

    #[test]
    fn no_composition_rules() {
        assert!(check("all lowercase words here").is_ok());
        assert!(check("8264193755021").is_ok());
    }

    #[test]
    fn common_passwords_are_refused_even_when_long_enough() {
        for common in ["1234567890", "qwertyuiop", "Password123", "iloveyou12"] {
            if common.chars().count() >= MIN_PASSWORD_CHARS && is_common(common) {
                assert!(check(common).is_err(), "{common}");
            }
        }
        assert!(check("qwertyuiop").is_err());
    }

    #[test]
    fn the_account_s_own_names_are_refused() {
        assert!(check("my name is ALICE ok").is_err());
        assert!(check("alice.smith rocks").is_err());
        assert!(check("nothing of mine here").is_ok());
        // A short user name does not refuse everything that contains it.
        let short = PasswordContext {
            username: "al",
            email: None,
        };
        assert!(check_new_password("totally alright", short).is_ok());
    }
}
