//! Logging: `tracing` to standard error, human-readable or JSON. The filter comes from
//! `RUST_LOG` (default `info`). Handlers never log tokens, secrets or passwords.
//!
//! A value from a request can hold anything, a newline among it. JSON escapes it; the text
//! format writes every message and field value through [`EscapedFields`], so one event is
//! always one line, whatever a call site writes (`%value`, `?value` or message text).

use crate::config::LogFormat;
use std::fmt;
use std::io::IsTerminal;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::EnvFilter;

pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours for a terminal only: a log file or collector gets plain text.
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.fmt_fields(EscapedFields::default()).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The text format's fields (the message is one), as `tracing`'s default writes them, with
/// control characters escaped: `\n`, `\r`, `\t`, and `\u{…}` for the other C0 and C1
/// controls, DEL and the Unicode line and paragraph separators.
#[derive(Debug, Default)]
pub struct EscapedFields(DefaultFields);

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut formatted = String::new();
        self.0.format_fields(Writer::new(&mut formatted), fields)?;
        write_escaped(&mut writer, &formatted)
    }
}

/// Writes `text` with every character that could end or rewrite a log line escaped.
pub fn write_escaped(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    for c in text.chars() {
        match c {
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                write!(out, "\\u{{{:x}}}", c as u32)?
            }
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str) -> String {
        let mut out = String::new();
        write_escaped(&mut out, text).expect("write to a String");
        out
    }

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escaped("a\nb\rc\td"), "a\\nb\\rc\\td");
        assert_eq!(
            escaped("\u{1b}[31m\u{0}\u{7f}\u{85}"),
            "\\u{1b}[31m\\u{0}\\u{7f}\\u{85}"
        );
        assert_eq!(escaped("x\u{2028}y\u{2029}"), "x\\u{2028}y\\u{2029}");
        assert_eq!(escaped("client=\"é ü\" ok"), "client=\"é ü\" ok");
    }
}
