//! What a browser session's sign-in proved: the methods used and when, the authentication
//! level they add up to (`acr`, one of [`ACR_VALUES_SUPPORTED`]) and their RFC 8176
//! Authentication Method Reference values (`amr`).

use serde::{Deserialize, Serialize};

/// One factor: a password, or a federated sign-in, alone.
pub const ACR_1FA: &str = "urn:sigil:acr:1fa";
/// Two factors: a password and a second factor (TOTP, a recovery code, a passkey).
pub const ACR_2FA: &str = "urn:sigil:acr:2fa";
/// Phishing-resistant: a passkey took part (bound to this origin, so a look-alike site can
/// neither use nor relay it). Stronger than [`ACR_2FA`].
pub const ACR_PHR: &str = "phr";
/// What discovery lists as `acr_values_supported`, weakest first.
pub const ACR_VALUES_SUPPORTED: [&str; 3] = [ACR_1FA, ACR_2FA, ACR_PHR];

/// A way the user proved who they are.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Method {
    Password,
    /// A code from an authenticator app (RFC 6238).
    Totp,
    /// One of the user's single-use recovery codes.
    RecoveryCode,
    /// A passkey (WebAuthn). `is_synced`: the credential may be backed up to other devices
    /// (a software key, RFC 8176 `swk`) rather than bound to one device (`hwk`).
    /// `user_verified`: the authenticator checked a PIN or biometric.
    Passkey {
        is_synced: bool,
        user_verified: bool,
    },
    /// An upstream identity provider signed the user in.
    Federated,
}

/// A method and the time it was used (seconds since the epoch).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct UsedMethod {
    pub method: Method,
    pub at: i64,
}

/// Authentication levels, in order of strength.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    OneFactor,
    TwoFactor,
    PhishingResistant,
}

impl Level {
    /// The `acr` value of the level.
    pub fn acr(self) -> &'static str {
        match self {
            Self::OneFactor => ACR_1FA,
            Self::TwoFactor => ACR_2FA,
            Self::PhishingResistant => ACR_PHR,
        }
    }

    /// The level an `acr` value names, if it is one of ours.
    pub fn from_acr(acr: &str) -> Option<Self> {
        match acr {
            ACR_1FA => Some(Self::OneFactor),
            ACR_2FA => Some(Self::TwoFactor),
            ACR_PHR => Some(Self::PhishingResistant),
            _ => None,
        }
    }

    /// The weakest level an `acr_values` request (OIDC Core §3.1.2.1, space-separated,
    /// in order of preference) is content with: the weakest of our values it names.
    /// `None` when it names none of ours (the request then asks for nothing we know).
    pub fn requested(acr_values: &str) -> Option<Self> {
        acr_values.split(' ').filter_map(Self::from_acr).min()
    }
}

/// The level `methods` add up to. A passkey with user verification, or a passkey after a
/// password, is phishing-resistant; a password (or a federated sign-in) with a TOTP or
/// recovery code is two factors; anything else is one.
pub fn level(methods: &[UsedMethod]) -> Level {
    let has = |wanted: fn(&Method) -> bool| methods.iter().any(|m| wanted(&m.method));
    let first = has(|m| matches!(m, Method::Password | Method::Federated));
    let verified_passkey = has(|m| {
        matches!(
            m,
            Method::Passkey {
                user_verified: true,
                ..
            }
        )
    });
    let passkey = has(|m| matches!(m, Method::Passkey { .. }));
    let second = has(|m| matches!(m, Method::Totp | Method::RecoveryCode));
    if verified_passkey || (passkey && first) {
        Level::PhishingResistant
    } else if first && second {
        Level::TwoFactor
    } else {
        Level::OneFactor
    }
}

/// RFC 8176 values for `methods`: `pwd`, `otp`, `hwk` or `swk`, `fed`, and `mfa` once two
/// factors took part (a recovery code has no value of its own and shows as `mfa`).
pub fn amr(methods: &[UsedMethod]) -> Vec<String> {
    let mut values: Vec<&'static str> = Vec::new();
    for used in methods {
        let value = match used.method {
            Method::Password => Some("pwd"),
            Method::Totp => Some("otp"),
            Method::RecoveryCode => None,
            Method::Passkey { is_synced, .. } => Some(if is_synced { "swk" } else { "hwk" }),
            Method::Federated => Some("fed"),
        };
        if let Some(value) = value.filter(|v| !values.contains(v)) {
            values.push(value);
        }
    }
    if level(methods) >= Level::TwoFactor {
        values.push("mfa");
    }
    values.into_iter().map(str::to_string).collect()
}

/// The last time any of `methods` was used: the session's `auth_time`.
pub fn last_used(methods: &[UsedMethod]) -> Option<i64> {
    methods.iter().map(|m| m.at).max()
}

/// What a token says about how its user signed in: `auth_time`, `acr`, `amr`. Kept with
/// authorization codes and refresh-token families, so that every token of one sign-in
/// says the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authentication {
    pub auth_time: i64,
    pub acr: String,
    pub amr: Vec<String>,
    /// The browser session the sign-in happened in, as its `sid`
    /// ([`crate::backchannel::session_sid`]); `None` without one (the password grant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

impl Authentication {
    /// The authentication `methods` make up.
    pub fn of(methods: &[UsedMethod], fallback_time: i64) -> Self {
        Self {
            auth_time: last_used(methods).unwrap_or(fallback_time),
            acr: level(methods).acr().to_string(),
            amr: amr(methods),
            sid: None,
        }
    }

    /// The same authentication, in the browser session `sid`.
    pub fn in_session(mut self, sid: Option<String>) -> Self {
        self.sid = sid;
        self
    }

    /// A password alone at `auth_time` (the password grant; records from before `acr`
    /// was kept).
    pub fn password_at(auth_time: i64) -> Self {
        Self::of(
            &[UsedMethod {
                method: Method::Password,
                at: auth_time,
            }],
            auth_time,
        )
    }

    /// The `amr` values as stored: space-separated.
    pub fn amr_text(&self) -> String {
        self.amr.join(" ")
    }

    /// Rebuilds a stored authentication; an empty `acr` (a record from before it was
    /// kept) reads as a password alone.
    pub fn from_stored(auth_time: i64, acr: &str, amr: &str) -> Self {
        if acr.is_empty() {
            return Self::password_at(auth_time);
        }
        Self {
            auth_time,
            acr: acr.to_string(),
            amr: amr
                .split(' ')
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .collect(),
            sid: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(method: Method, at: i64) -> UsedMethod {
        UsedMethod { method, at }
    }
    const PASSKEY_UV: Method = Method::Passkey {
        is_synced: true,
        user_verified: true,
    };
    const KEY_NO_UV: Method = Method::Passkey {
        is_synced: false,
        user_verified: false,
    };

    #[test]
    fn levels_and_amr_follow_the_methods() {
        let cases: Vec<(Vec<Method>, Level, &[&str])> = vec![
            (vec![Method::Password], Level::OneFactor, &["pwd"]),
            (
                vec![Method::Password, Method::Totp],
                Level::TwoFactor,
                &["pwd", "otp", "mfa"],
            ),
            (
                vec![Method::Password, Method::RecoveryCode],
                Level::TwoFactor,
                &["pwd", "mfa"],
            ),
            (
                vec![Method::Password, KEY_NO_UV],
                Level::PhishingResistant,
                &["pwd", "hwk", "mfa"],
            ),
            (vec![PASSKEY_UV], Level::PhishingResistant, &["swk", "mfa"]),
            (vec![KEY_NO_UV], Level::OneFactor, &["hwk"]),
            (vec![Method::Totp], Level::OneFactor, &["otp"]),
            (vec![Method::Federated], Level::OneFactor, &["fed"]),
            (
                vec![Method::Federated, Method::Totp],
                Level::TwoFactor,
                &["fed", "otp", "mfa"],
            ),
            (
                vec![Method::Password, Method::Password],
                Level::OneFactor,
                &["pwd"],
            ),
        ];
        for (methods, expected_level, expected_amr) in cases {
            let used: Vec<UsedMethod> = methods.iter().map(|m| used(*m, 10)).collect();
            assert_eq!(level(&used), expected_level, "{methods:?}");
            assert_eq!(amr(&used), expected_amr, "{methods:?}");
        }
    }

    #[test]
    fn requested_level_is_the_weakest_named() {
        assert_eq!(Level::requested("phr"), Some(Level::PhishingResistant));
        assert_eq!(
            Level::requested("phr urn:sigil:acr:2fa"),
            Some(Level::TwoFactor)
        );
        assert_eq!(Level::requested("urn:other:gold"), None);
        assert_eq!(
            Level::requested("urn:other:gold urn:sigil:acr:1fa"),
            Some(Level::OneFactor)
        );
    }

    #[test]
    fn auth_time_is_the_latest_method_and_stored_forms_round_trip() {
        let methods = [used(Method::Password, 100), used(Method::Totp, 130)];
        let auth = Authentication::of(&methods, 0);
        assert_eq!(auth.auth_time, 130);
        assert_eq!(auth.acr, ACR_2FA);
        let back = Authentication::from_stored(auth.auth_time, &auth.acr, &auth.amr_text());
        assert_eq!(back, auth);
        assert_eq!(
            Authentication::from_stored(5, "", ""),
            Authentication::password_at(5)
        );
    }
}
