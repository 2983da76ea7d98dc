//! Identifier newtypes. Every id's text is a valid NATS subject token (no `.`,
//! `*`, `>`, whitespace), so a subject built from ids can never be ambiguous.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a piece of text is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty, too long, or a character outside the allowed set.
    #[error("{kind} must match {pattern}, got {len} characters")]
    Invalid {
        /// Which identifier.
        kind: &'static str,
        /// The accepted shape.
        pattern: &'static str,
        /// The length of the refused text (the text itself may be hostile).
        len: usize,
    },
}

fn token_ok(s: &str, max: usize, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || extra.contains(&b))
}

/// A tenant: `[A-Za-z0-9_-]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    /// The longest accepted tenant token.
    pub const MAX_LEN: usize = 64;

    /// The token reserved for the read service's subjects (`orderd.v1.api.…`).
    pub const RESERVED: &'static str = "api";

    /// Parses a tenant token.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if token_ok(s, Self::MAX_LEN, &[]) && s != Self::RESERVED {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::Invalid {
                kind: "tenant",
                pattern: "[A-Za-z0-9_-]{1,64}, not \"api\"",
                len: s.len(),
            })
        }
    }

    /// The token as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<TenantId> for String {
    fn from(t: TenantId) -> String {
        t.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// Parses the hyphenated UUID form.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                // Only the 36-character hyphenated form: it is what we print, and
                // the one form that is a clean subject token.
                if s.len() != 36 {
                    return Err(IdError::Invalid { kind: $kind, pattern: "a hyphenated UUID", len: s.len() });
                }
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| IdError::Invalid { kind: $kind, pattern: "a hyphenated UUID", len: s.len() })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }
    };
}

uuid_id!(
    /// An order: unique across tenants, chosen by orderd.
    OrderId,
    "order id"
);
uuid_id!(
    /// A contact kept apart from the order (personal data lives only in the contact store).
    ContactId,
    "contact id"
);
uuid_id!(
    /// A location (address) kept apart from the order.
    LocationId,
    "location id"
);

/// A work order within its order: 1, 2, 3… in the order they were added.
/// Unique only inside one order; subjects always carry the order id beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkOrderId(pub u32);

impl WorkOrderId {
    /// Parses the decimal form used in subjects.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let bad = || IdError::Invalid {
            kind: "work order id",
            pattern: "a decimal number from 1",
            len: s.len(),
        };
        if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        match s.parse::<u32>() {
            Ok(n) if n > 0 => Ok(Self(n)),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for WorkOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The idempotency key of a command (`Nats-Msg-Id`, or one derived from the
/// stream position): printable ASCII without whitespace, 1 to 128 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommandId(String);

impl CommandId {
    /// The longest accepted command id.
    pub const MAX_LEN: usize = 128;

    /// Parses a command id.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if !s.is_empty() && s.len() <= Self::MAX_LEN && s.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::Invalid {
                kind: "command id",
                pattern: "1 to 128 printable ASCII characters, no whitespace",
                len: s.len(),
            })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CommandId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<CommandId> for String {
    fn from(c: CommandId) -> String {
        c.0
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A point in time, milliseconds since the Unix epoch. The core never reads a
/// clock: every `Timestamp` it sees came in with a command.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// This time plus `ms` milliseconds (saturating).
    pub fn plus_ms(self, ms: u64) -> Self {
        Self(self.0.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_are_not_subject_tokens_are_refused() {
        for bad in ["", "a.b", "a*", ">", "a b", "a\tb", &"x".repeat(65)] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(TenantId::parse(&"x".repeat(64)).is_ok());
        assert!(TenantId::parse("acme_eu-1").is_ok());
        assert!(
            TenantId::parse("api").is_err(),
            "reserved for the read service"
        );
        assert!(WorkOrderId::parse("0").is_err());
        assert!(WorkOrderId::parse("1.2").is_err());
        assert_eq!(WorkOrderId::parse("12").unwrap(), WorkOrderId(12));
        assert!(OrderId::parse("not-a-uuid").is_err());
        assert!(OrderId::parse("67e55044-10b1-426f-9247-bb680e5fe0c8").is_ok());
        assert!(OrderId::parse("67e5504410b1426f9247bb680e5fe0c8").is_err());
        assert!(CommandId::parse("a b").is_err());
        assert!(CommandId::parse(&"k".repeat(128)).is_ok());
        assert!(CommandId::parse(&"k".repeat(129)).is_err());
    }
}
