//! Wire errors and the error body every reply carries. Error text never echoes
//! a value from a message body: decoder messages are scrubbed down to field
//! names, value kinds and positions (see [`scrub`]), because bodies carry
//! personal data (contacts, addresses) that must not reach a log or a reply.

use orderd_core::rejection::FieldProblem;
use orderd_core::{Rejection, Severity};
use serde::{Deserialize, Serialize};

use crate::subjects::SubjectError;

/// Why a message could not be turned into a command or request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The body is larger than the configured maximum; it was not parsed.
    #[error("body of {size} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The body's size.
        size: usize,
        /// The maximum.
        max: usize,
    },
    /// Not valid JSON/MessagePack, a wrong type, a missing or unknown field, or
    /// a combination the contract forbids. The text names fields, never values.
    #[error("malformed body: {0}")]
    Malformed(String),
    /// A contact or location named by id that the tenant never stored
    /// (unknown, or another tenant's).
    #[error("{field}: no such {kind} in this tenant")]
    UnknownReference {
        /// The field that names it.
        field: String,
        /// `contact` or `location`.
        kind: &'static str,
    },
    /// A `Content-Type` other than JSON or MessagePack (printable prefix only).
    #[error("unsupported content type {0:?}: use application/json or application/msgpack")]
    UnsupportedContentType(String),
    /// The subject does not name a valid command.
    #[error(transparent)]
    Subject(#[from] SubjectError),
}

impl WireError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            WireError::TooLarge { .. } => "ORD-413-PAYLOAD_TOO_LARGE",
            WireError::Malformed(_) => "ORD-400-MALFORMED",
            WireError::UnknownReference { kind, .. } => personal_not_found_code(kind),
            WireError::UnsupportedContentType(_) => "ORD-415-UNSUPPORTED_CONTENT_TYPE",
            WireError::Subject(e) => e.code(),
        }
    }

    /// Wire errors are always errors (never warnings or information).
    pub fn severity(&self) -> Severity {
        Severity::Error
    }
}

/// One problem with one field, on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldProblemBody {
    /// The field's path, e.g. `orderSummary.invoiceNumber`.
    pub field: String,
    /// A stable code, e.g. `PATTERN`, `REQUIRED`, `RANGE`.
    pub code: String,
    /// Plain words.
    pub message: String,
}

impl From<&FieldProblem> for FieldProblemBody {
    fn from(p: &FieldProblem) -> Self {
        Self {
            field: p.field.clone(),
            code: p.code.to_owned(),
            message: p.message.clone(),
        }
    }
}

/// An error as clients see it: a stable code, a type (`Error`, `Warning`,
/// `Info`), plain words, and the field problems when there are any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// `ORD-<status>-<NAME>`.
    pub code: String,
    /// `Error`, `Warning` or `Info`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Plain words, without personal data.
    pub message: String,
    /// Field problems (may be empty).
    #[serde(default)]
    pub details: Vec<FieldProblemBody>,
}

/// The code of a contact or location (`kind`) the tenant does not hold.
pub fn personal_not_found_code(kind: &str) -> &'static str {
    if kind == "contact" {
        "ORD-404-CONTACT_NOT_FOUND"
    } else {
        "ORD-404-LOCATION_NOT_FOUND"
    }
}

/// The code of [`ErrorBody::order_archived`].
pub const ORDER_ARCHIVED: &str = "ORD-410-ORDER_ARCHIVED";

impl ErrorBody {
    /// An `Error` with this code and message and no details, for errors the
    /// runtime raises itself (e.g. `ORD-503-UNAVAILABLE`).
    pub fn error(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            kind: severity_name(Severity::Error).to_owned(),
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// The answer about an order that was archived and left the live
    /// store: to a command (nothing changes) and to a read.
    pub fn order_archived() -> Self {
        Self::error(
            ORDER_ARCHIVED,
            "the order was archived after its retention: it no longer changes; read it with orderd.v1.api.archive",
        )
    }

    /// A contact or location (`kind`) the tenant does not hold: unknown, or
    /// another tenant's.
    pub fn personal_not_found(kind: &str) -> Self {
        Self::error(
            personal_not_found_code(kind),
            format!("no such {kind} in this tenant"),
        )
    }

    /// The HTTP-like status in the code (`ORD-404-…` → 404), for the
    /// `Nats-Service-Error-Code` header; 500 when the code has none.
    pub fn status(&self) -> u16 {
        self.code
            .split('-')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(500)
    }
}

/// The wire name of a severity.
pub fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "Error",
        Severity::Warning => "Warning",
        Severity::Info => "Info",
    }
}

impl From<&Rejection> for ErrorBody {
    fn from(r: &Rejection) -> Self {
        Self {
            code: r.code().to_owned(),
            kind: severity_name(r.severity()).to_owned(),
            message: r.to_string(),
            details: r.details().iter().map(FieldProblemBody::from).collect(),
        }
    }
}

impl From<&WireError> for ErrorBody {
    fn from(e: &WireError) -> Self {
        Self {
            code: e.code().to_owned(),
            kind: severity_name(e.severity()).to_owned(),
            message: e.to_string(),
            details: match e {
                WireError::UnknownReference { field, kind } => vec![FieldProblemBody {
                    field: field.clone(),
                    code: "NOT_FOUND".to_owned(),
                    message: format!("no such {kind} in this tenant"),
                }],
                _ => Vec::new(),
            },
        }
    }
}

/// The longest scrubbed message kept.
const MAX_MESSAGE: usize = 300;

/// Reduces a serde decoder message to what is safe to log and return: field
/// names of our own types, the kind of a wrong value (`string`, `integer`),
/// and what was expected; never the value itself.
pub(crate) fn scrub(message: &str) -> String {
    const EXPECTED: &str = ", expected ";
    let scrubbed = if let Some((prefix, rest)) = ["invalid type: ", "invalid value: "]
        .into_iter()
        .find_map(|p| message.strip_prefix(p).map(|rest| (p, rest)))
    {
        // `invalid type: string "…", expected …`: the value sits before the
        // last ", expected " (the expected part is ours); keep only its kind.
        let (given, expected) = split_last(rest, EXPECTED);
        let kind: String = given
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == ' ')
            .collect();
        match expected {
            Some(expected) => format!("{prefix}{}, expected {expected}", kind.trim_end()),
            None => format!("{prefix}{}", kind.trim_end()),
        }
    } else if message.starts_with("unknown variant ") {
        match split_last(message, EXPECTED).1 {
            Some(expected) => format!("unknown variant, expected {expected}"),
            None => "unknown variant".to_owned(),
        }
    } else if let Some(rest) = message.strip_prefix("unknown field `") {
        let (name, tail) = match split_last(rest, "`, expected ") {
            (name, Some(expected)) => (name, format!(", expected {expected}")),
            (_, None) => match split_last(rest, "`, there are no fields") {
                (name, Some(_)) => (name, ", there are no fields".to_owned()),
                (_, None) => ("", String::new()),
            },
        };
        if is_field_name(name) {
            format!("unknown field `{name}`{tail}")
        } else {
            format!("unknown field{tail}")
        }
    } else {
        // Anything else (syntax errors, missing or duplicate fields of our own
        // types, custom messages): blank whatever is quoted, to be safe.
        blank_quoted(message)
    };
    truncate(scrubbed, MAX_MESSAGE)
}

fn split_last<'a>(s: &'a str, sep: &str) -> (&'a str, Option<&'a str>) {
    match s.rfind(sep) {
        Some(i) => (&s[..i], Some(&s[i + sep.len()..])),
        None => (s, None),
    }
}

/// A name that looks like a field of ours (camelCase identifier), not data.
fn is_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Keeps `` `name` `` when it is a field name, blanks every other quoted or
/// back-quoted text.
fn blank_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                // Debug-escaped string: skip to the closing unescaped quote.
                let mut escaped = false;
                for d in chars.by_ref() {
                    match (escaped, d) {
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        _ => escaped = false,
                    }
                }
                out.push_str("\"…\"");
            }
            '`' => {
                let inner: String = chars.by_ref().take_while(|d| *d != '`').collect();
                if is_field_name(&inner) {
                    out.push('`');
                    out.push_str(&inner);
                    out.push('`');
                } else {
                    out.push_str("`…`");
                }
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// A header value safe to put in an error message: printable ASCII, at most
/// 64 characters.
pub(crate) fn printable_prefix(value: &str) -> String {
    value
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_keeps_kinds_and_field_names_and_drops_values() {
        let cases = [
            (
                r#"invalid type: string "Zebedee Marker", expected u32"#,
                "invalid type: string, expected u32",
            ),
            (
                r#"invalid type: string "Zebedee, expected x", expected a boolean"#,
                "invalid type: string, expected a boolean",
            ),
            (
                "invalid value: integer `5550123`, expected a nonzero u32",
                "invalid value: integer, expected a nonzero u32",
            ),
            (
                "invalid type: floating point `1.5`, expected a string",
                "invalid type: floating point, expected a string",
            ),
            (
                "unknown variant `Zebedee`, expected one of `SEQUENTIAL`, `START_TOGETHER`",
                "unknown variant, expected one of `SEQUENTIAL`, `START_TOGETHER`",
            ),
            (
                "unknown field `colour`, expected one of `name`, `phone`",
                "unknown field `colour`, expected one of `name`, `phone`",
            ),
            (
                "unknown field `Zebedee Marker 55`, there are no fields",
                "unknown field, there are no fields",
            ),
            ("missing field `clientId`", "missing field `clientId`"),
            (
                "some custom `Zebedee Marker` \"Zebedee\" text",
                "some custom `…` \"…\" text",
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(scrub(raw), want, "{raw}");
        }
        assert!(scrub(&"x".repeat(1000)).len() <= MAX_MESSAGE + '…'.len_utf8());
    }

    #[test]
    fn error_bodies_carry_code_type_and_status() {
        let body = ErrorBody::from(&Rejection::AlreadyOnHold);
        assert_eq!(body.code, "ORD-409-ALREADY_ON_HOLD");
        assert_eq!(body.kind, "Warning");
        assert_eq!(body.status(), 409);
        let body = ErrorBody::from(&WireError::TooLarge { size: 10, max: 5 });
        assert_eq!(body.code, "ORD-413-PAYLOAD_TOO_LARGE");
        assert_eq!(body.kind, "Error");
        assert_eq!(body.status(), 413);
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["type"], "Error");
        assert_eq!(ErrorBody::error("weird", "x").status(), 500);
    }
}
