//! Rendering a [`Mail`] into a whole RFC 5322 message: a subject, a plain-text and an HTML
//! body from the askama templates in `templates/mail/` (the HTML escapes everything and has
//! inline styles only, as mail clients want), joined as multipart/alternative by lettre.

use askama::Template;
use lettre::message::header::ContentTransferEncoding;
use lettre::message::{header, Body, Mailbox, MultiPart};
use lettre::Message;
use sigil_core::mail::{Mail, MailKind};
use std::time::{Duration, UNIX_EPOCH};

/// What a message is made of before it is formatted.
#[derive(Debug)]
pub struct Rendered {
    pub subject: &'static str,
    pub text: String,
    pub html: String,
}

/// Why a message could not be rendered. Never holds the body or the link.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template: {0}")]
    Template(#[from] askama::Error),
    #[error("the recipient is not a valid mail address")]
    Recipient,
    #[error("the message cannot be built: {0}")]
    Build(String),
}

/// The fixed parts of every message: sender, issuer (links and wording), and the domain
/// of the `Message-ID`.
#[derive(Debug, Clone)]
pub struct Letterhead {
    pub from: Mailbox,
    pub issuer: String,
    pub message_id_domain: String,
}

impl Letterhead {
    /// The whole message, formatted (CRLF line ends, headers and both bodies).
    pub fn format(&self, id: &str, mail: &Mail, now: i64) -> Result<Vec<u8>, RenderError> {
        let rendered = render(&self.issuer, &mail.kind)?;
        let to: Mailbox = mail.to.parse().map_err(|_| RenderError::Recipient)?;
        let date = UNIX_EPOCH + Duration::from_secs(u64::try_from(now).unwrap_or(0));
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject)
            .date(date)
            .message_id(Some(format!("<{id}@{}>", self.message_id_domain)))
            .header(header::MIME_VERSION_1_0)
            .multipart(MultiPart::alternative_plain_html(
                body(rendered.text),
                body(rendered.html),
            ))
            .map_err(|e| RenderError::Build(e.to_string()))?;
        Ok(message.formatted())
    }
}

/// The subject and both bodies of one message.
pub fn render(issuer: &str, kind: &MailKind) -> Result<Rendered, RenderError> {
    let issuer = issuer.trim_end_matches('/');
    let subject = subject(kind);
    let forgot_password = format!("{issuer}/forgot-password");
    let account = format!("{issuer}/account");
    let (text, html) = match kind {
        MailKind::VerifyEmail {
            username,
            link,
            hours,
        } => {
            let valid_for = plural(*hours, "hour");
            let text = VerifyEmailText {
                issuer,
                username,
                link: link.expose(),
                valid_for: &valid_for,
            };
            let html = VerifyEmailHtml {
                issuer,
                subject,
                username,
                link: link.expose(),
                valid_for: &valid_for,
            };
            (text.render()?, html.render()?)
        }
        MailKind::Invitation { link, days } => {
            let valid_for = plural(*days, "day");
            let text = InvitationText {
                issuer,
                link: link.expose(),
                valid_for: &valid_for,
            };
            let html = InvitationHtml {
                issuer,
                subject,
                link: link.expose(),
                valid_for: &valid_for,
            };
            (text.render()?, html.render()?)
        }
        MailKind::PasswordReset {
            username,
            link,
            minutes,
        } => {
            let valid_for = plural(*minutes, "minute");
            let text = PasswordResetText {
                issuer,
                username,
                link: link.expose(),
                valid_for: &valid_for,
            };
            let html = PasswordResetHtml {
                issuer,
                subject,
                username,
                link: link.expose(),
                valid_for: &valid_for,
            };
            (text.render()?, html.render()?)
        }
        MailKind::PasswordChanged { username, by_reset } => {
            let text = PasswordChangedText {
                issuer,
                username,
                by_reset: *by_reset,
                forgot_password: &forgot_password,
                account: &account,
            };
            let html = PasswordChangedHtml {
                issuer,
                subject,
                username,
                by_reset: *by_reset,
                forgot_password: &forgot_password,
                account: &account,
            };
            (text.render()?, html.render()?)
        }
        MailKind::ConfirmNewEmail {
            username,
            link,
            hours,
        } => {
            let valid_for = plural(*hours, "hour");
            let text = ConfirmNewEmailText {
                issuer,
                username,
                link: link.expose(),
                valid_for: &valid_for,
            };
            let html = ConfirmNewEmailHtml {
                issuer,
                subject,
                username,
                link: link.expose(),
                valid_for: &valid_for,
            };
            (text.render()?, html.render()?)
        }
        MailKind::EmailChanged {
            username,
            new_email,
        } => {
            let text = EmailChangedText {
                issuer,
                username,
                new_email,
            };
            let html = EmailChangedHtml {
                issuer,
                subject,
                username,
                new_email,
            };
            (text.render()?, html.render()?)
        }
        MailKind::AccountExists {
            username,
            login,
            reset,
        } => {
            let text = AccountExistsText {
                issuer,
                username,
                login,
                reset,
            };
            let html = AccountExistsHtml {
                issuer,
                subject,
                username,
                login,
                reset,
            };
            (text.render()?, html.render()?)
        }
        MailKind::SecondFactorAdded { username, what }
        | MailKind::SecondFactorRemoved { username, what } => {
            let change = if matches!(kind, MailKind::SecondFactorAdded { .. }) {
                "added to"
            } else {
                "removed from"
            };
            let what =
                format!("{what} was just {change} your account at {issuer} as a second factor.");
            security_notice(issuer, subject, username, &what, &forgot_password, &account)?
        }
        MailKind::RecoveryCodeUsed { username, left } => {
            let what = format!(
                "One of your recovery codes was just used to sign in to your account at {issuer}. {} left; you can make a new set on your account page.",
                plural(*left, "code")
            );
            security_notice(issuer, subject, username, &what, &forgot_password, &account)?
        }
        MailKind::SecondFactorsReset { username } => {
            let what = format!("An administrator just removed every second factor (authenticator apps, passkeys and recovery codes) of your account at {issuer}. Add one again on your account page.");
            security_notice(issuer, subject, username, &what, &forgot_password, &account)?
        }
    };
    Ok(Rendered {
        subject,
        text,
        html,
    })
}

/// The subject line of each kind of message.
pub fn subject(kind: &MailKind) -> &'static str {
    match kind {
        MailKind::VerifyEmail { .. } => "Confirm your e-mail address",
        MailKind::Invitation { .. } => "You are invited to create an account",
        MailKind::PasswordReset { .. } => "Reset your password",
        MailKind::PasswordChanged { by_reset: true, .. } => "Your password was reset",
        MailKind::PasswordChanged { .. } => "Your password was changed",
        MailKind::ConfirmNewEmail { .. } => "Confirm your new e-mail address",
        MailKind::EmailChanged { .. } => "Your e-mail address was changed",
        MailKind::AccountExists { .. } => "You already have an account",
        MailKind::SecondFactorAdded { .. } => "A second factor was added to your account",
        MailKind::SecondFactorRemoved { .. } => "A second factor was removed from your account",
        MailKind::RecoveryCodeUsed { .. } => "A recovery code was used",
        MailKind::SecondFactorsReset { .. } => "Your second factors were reset",
    }
}

/// A body as plain 7bit text when it is ASCII with lines of at most 998 characters (RFC
/// 5322 §2.1.1), so that a link stays whole and copyable in a `.eml` file read as text;
/// quoted-printable otherwise (a name in another script, say).
fn body(content: String) -> Body {
    let crlf = content.replace("\r\n", "\n").replace('\n', "\r\n");
    let fits_7bit = crlf.is_ascii()
        && !crlf.contains('\0')
        && crlf
            .split("\r\n")
            .all(|line| line.len() <= 998 && !line.contains('\r'));
    if fits_7bit {
        Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::SevenBit)
    } else {
        Body::new(content)
    }
}

/// "1 hour", "24 hours".
fn plural(count: i64, unit: &str) -> String {
    if count == 1 {
        format!("1 {unit}")
    } else {
        format!("{count} {unit}s")
    }
}

#[derive(Template)]
#[template(path = "mail/verify_email.txt")]
struct VerifyEmailText<'a> {
    issuer: &'a str,
    username: &'a str,
    link: &'a str,
    valid_for: &'a str,
}

#[derive(Template)]
#[template(path = "mail/verify_email.html")]
struct VerifyEmailHtml<'a> {
    issuer: &'a str,
    subject: &'a str,
    username: &'a str,
    link: &'a str,
    valid_for: &'a str,
}

#[derive(Template)]
#[template(path = "mail/invitation.txt")]
struct InvitationText<'a> {
    issuer: &'a str,
    link: &'a str,
    valid_for: &'a str,
}

#[derive(Template)]
#[template(path = "mail/invitation.html")]
struct InvitationHtml<'a> {
    issuer: &'a str,
    subject: &'a str,
    link: &'a str,
    valid_for: &'a str,
}

#[derive(Template)]
#[template(path = "mail/password_reset.txt")]
struct PasswordResetText<'a> {
    issuer: &'a str,
    username: &'a str,
    link: &'a str,
    valid_for: &'a str,
}

#[derive(Template)]
#[template(path = "mail/password_reset.html")]
struct PasswordResetHtml<'a> {
    issuer: &'a str,
    subject: &'a str,
    username: &'a str,
    link: &'a str,
    valid_for: &'a str,
}

/// A notice of a change to how the account signs in (both bodies).
fn security_notice(
    issuer: &str,
    subject: &str,
    username: &str,
    what: &str,
    forgot_password: &str,
    account: &str,
) -> Result<(String, String), RenderError> {
    let text = SecurityNoticeText {
        issuer,
        username,
        what,
        forgot_password,
        account,
    };
    let html = SecurityNoticeHtml {
        issuer,
        subject,
        username,
        what,
        forgot_password,
        account,
    };
    Ok((text.render()?, html.render()?))
}

#[derive(Template)]
#[template(path = "mail/security_notice.txt")]
struct SecurityNoticeText<'a> {
    issuer: &'a str,
    username: &'a str,
    what: &'a str,
    forgot_password: &'a str,
    account: &'a str,
}

#[derive(Template)]
#[template(path = "mail/security_notice.html")]
struct SecurityNoticeHtml<'a> {
    issuer: &'a str,
    subject: &'a str,
    username: &'a str,
    what: &'a str,
    forgot_password: &'a str,
    account: &'a str,
}

#[derive(Template)]
#[template(path = "mail/password_changed.txt")]
struct PasswordChangedText<'a> {
    issuer: &'a str,
    username: &'a str,
    by_reset: bool,
    forgot_password: &'a str,
    account: &'a str,
}

#[derive(Template)]
#[template(path = "mail/password_changed.html")]
struct PasswordChangedHtml<'a> {
    issuer: &'a str,
    subject: &'a str,
    username: &'a str,
    by_reset: bool,
    forgot_password: &'a str,
    account: &'a str,
}

#[derive(Template)]
#[template(path = "mail/confirm_new_email.txt")]
struct ConfirmNewEmailText<'a> {
    issuer: &'a str,
    username: &'a str,
    link: &'a str,
    valid_for: &'a str,
}

#[derive(Template)]
#[template(path = "mail/confirm_new_email.html")]
struct ConfirmNewEmailHtml<'a> {
    issuer: &'a str,
    subject: &'a str,
    username: &'a str,
    link: &'a str,
    valid_for: &'a str,
}

#[derive(Template)]
#[template(path = "mail/email_changed.txt")]
struct EmailChangedText<'a> {
    issuer: &'a str,
    username: &'a str,
    new_email: &'a str,
}

#[derive(Template)]
#[template(path = "mail/email_changed.html")]
struct EmailChangedHtml<'a> {
    issuer: &'a str,
    subject: &'a str,
    username: &'a str,
    new_email: &'a str,
}

#[derive(Template)]
#[template(path = "mail/account_exists.txt")]
struct AccountExistsText<'a> {
    issuer: &'a str,
    username: &'a str,
    login: &'a str,
    reset: &'a str,
}

#[derive(Template)]
#[template(path = "mail/account_exists.html")]
struct AccountExistsHtml<'a> {
    issuer: &'a str,
    subject: &'a str,
    username: &'a str,
    login: &'a str,
    reset: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigil_core::mail::Link;

    const ISSUER: &str = "https://id.example.com";
    const LINK: &str = "https://id.example.com/verify-email?token=abc_DEF-123&x=1";

    fn every_kind() -> Vec<MailKind> {
        let link = || Link::new(LINK.into());
        let username = "<b>ann</b> & \"co\"".to_string();
        vec![
            MailKind::VerifyEmail {
                username: username.clone(),
                link: link(),
                hours: 24,
            },
            MailKind::Invitation {
                link: link(),
                days: 7,
            },
            MailKind::PasswordReset {
                username: username.clone(),
                link: link(),
                minutes: 30,
            },
            MailKind::PasswordChanged {
                username: username.clone(),
                by_reset: true,
            },
            MailKind::PasswordChanged {
                username: username.clone(),
                by_reset: false,
            },
            MailKind::ConfirmNewEmail {
                username: username.clone(),
                link: link(),
                hours: 1,
            },
            MailKind::EmailChanged {
                username: username.clone(),
                new_email: "new<script>@example.com".into(),
            },
            MailKind::AccountExists {
                username,
                login: format!("{ISSUER}/login"),
                reset: format!("{ISSUER}/forgot-password"),
            },
        ]
    }

    /// What askama's HTML escaper makes of `text`.
    fn escaped(text: &str) -> String {
        text.replace('&', "&#38;")
            .replace('<', "&#60;")
            .replace('>', "&#62;")
            .replace('"', "&#34;")
            .replace('\'', "&#39;")
    }

    fn has_link(kind: &MailKind) -> bool {
        matches!(
            kind,
            MailKind::VerifyEmail { .. }
                | MailKind::Invitation { .. }
                | MailKind::PasswordReset { .. }
                | MailKind::ConfirmNewEmail { .. }
        )
    }

    #[test]
    fn every_kind_renders_with_its_link_in_both_bodies() {
        for kind in every_kind() {
            let rendered = render(ISSUER, &kind).expect("renders");
            assert!(!rendered.subject.is_empty());
            assert!(rendered.text.contains(ISSUER), "{}", kind.name());
            assert!(rendered.html.contains(ISSUER), "{}", kind.name());
            assert!(rendered.html.starts_with("<!DOCTYPE html>"));
            if has_link(&kind) {
                assert!(rendered.text.contains(LINK), "{}: text link", kind.name());
                // In HTML the `&` of the query is escaped, as it must be in an attribute.
                let escaped = escaped(LINK);
                assert!(
                    rendered.html.contains(&format!("href=\"{escaped}\"")),
                    "{}: html link",
                    kind.name()
                );
            }
        }
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        for kind in every_kind() {
            let rendered = render(ISSUER, &kind).expect("renders");
            assert!(!rendered.html.contains("<b>ann"), "{}", kind.name());
            assert!(!rendered.html.contains("<script>"), "{}", kind.name());
            if !matches!(kind, MailKind::Invitation { .. }) {
                let name = escaped("<b>ann</b> & \"co\"");
                assert!(rendered.html.contains(&name), "{}", kind.name());
                assert!(rendered.text.contains("<b>ann</b> & \"co\""));
            }
        }
    }

    #[test]
    fn the_html_loads_nothing_from_outside() {
        for kind in every_kind() {
            let html = render(ISSUER, &kind).expect("renders").html;
            for banned in ["<img", "<link", "<script", "<style", "url("] {
                assert!(!html.contains(banned), "{}: {banned}", kind.name());
            }
        }
    }

    #[test]
    fn a_formatted_message_has_the_headers_and_two_parts() {
        let letterhead = Letterhead {
            from: "Sigil <sigil@example.com>".parse().expect("mailbox"),
            issuer: ISSUER.into(),
            message_id_domain: "id.example.com".into(),
        };
        let mail = Mail {
            to: "ann@example.com".into(),
            kind: every_kind().remove(0),
        };
        let bytes = letterhead
            .format("m1", &mail, 1_700_000_000)
            .expect("formats");
        let text = String::from_utf8(bytes).expect("ascii");
        assert!(text.contains("From: Sigil <sigil@example.com>\r\n"));
        assert!(text.contains("To: ann@example.com\r\n"));
        assert!(text.contains("Subject: Confirm your e-mail address\r\n"));
        assert!(text.contains("Message-ID: <m1@id.example.com>\r\n"));
        assert!(text.contains("Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
        assert!(text.contains("multipart/alternative"));
        assert!(text.contains("text/plain"));
        assert!(text.contains("text/html"));
        assert!(!text.contains("quoted-printable"), "ASCII bodies stay 7bit");
        assert!(text.contains(LINK), "the link is whole in the raw message");
        let mut accented = mail.clone();
        if let MailKind::VerifyEmail { username, .. } = &mut accented.kind {
            *username = "Zoë".into();
        }
        let bytes = letterhead.format("m3", &accented, 0).expect("formats");
        let raw = String::from_utf8(bytes).expect("ascii");
        assert!(raw.is_ascii());
        assert!(raw.contains("Content-Transfer-Encoding: quoted-printable"));
        let bad = Mail {
            to: "not an address".into(),
            kind: every_kind().remove(0),
        };
        assert!(matches!(
            letterhead.format("m2", &bad, 0),
            Err(RenderError::Recipient)
        ));
    }
}
