//! How a subcommand fails: one [`Failure`] per way, each with its exit code
//! (listed in `--help` and docs/operations.md), reported on stderr with
//! orderd's stable error code first, so a script can `grep` it.

use std::fmt;

use crate::wire::ErrorBody;

/// Exit code: done.
pub const EXIT_OK: u8 = 0;
/// Exit code: orderd refused (an `ORD-…` error other than not found or
/// unavailable), or what was asked cannot be done (e.g. `--as-of` on an
/// order whose first events have left the events stream).
pub const EXIT_REFUSED: u8 = 1;
/// Exit code: a bad argument, option or input file (clap's own usage errors
/// exit with 2 too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the order, command or configuration version does not exist
/// (`ORD-404-…`).
pub const EXIT_NOT_FOUND: u8 = 3;
/// Exit code: NATS or orderd did not answer in time, or answered
/// `ORD-503-…`.
pub const EXIT_UNAVAILABLE: u8 = 4;
/// Exit code: an answer the command line cannot read.
pub const EXIT_UNEXPECTED: u8 = 5;

/// Why a subcommand did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// orderd answered with an error.
    Refused(ErrorBody),
    /// What was asked cannot be done, though nothing failed.
    Cannot(String),
    /// The arguments or an input file are wrong.
    Usage(String),
    /// NATS or orderd cannot be reached, or did not answer in time.
    Unavailable(String),
    /// An answer that is not what the contract says.
    Unexpected(String),
}

impl Failure {
    /// The process's exit code. An error body's code says which: its
    /// HTTP-like status 404 is "not found", 503 and 504 "unavailable",
    /// anything else "refused".
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Refused(e) => match e.status() {
                404 => EXIT_NOT_FOUND,
                503 | 504 => EXIT_UNAVAILABLE,
                _ => EXIT_REFUSED,
            },
            Failure::Cannot(_) => EXIT_REFUSED,
            Failure::Usage(_) => EXIT_USAGE,
            Failure::Unavailable(_) => EXIT_UNAVAILABLE,
            Failure::Unexpected(_) => EXIT_UNEXPECTED,
        }
    }

    /// Prints the failure on stderr.
    pub fn report(&self) {
        eprintln!("{self}");
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused(e) => {
                write!(f, "{}: {}", e.code, e.message)?;
                for d in &e.details {
                    write!(f, "\n  {}: {} {}", d.field, d.code, d.message)?;
                }
                Ok(())
            }
            Failure::Cannot(m) => write!(f, "orderd: cannot: {m}"),
            Failure::Usage(m) => write!(f, "orderd: {m}"),
            Failure::Unavailable(m) => write!(f, "orderd: unavailable: {m}"),
            Failure::Unexpected(m) => write!(f, "orderd: unexpected answer: {m}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_in_the_code_picks_the_exit_code() {
        let refused = |code: &str| Failure::Refused(ErrorBody::error(code, "m")).exit_code();
        assert_eq!(refused("ORD-409-NOT_ON_HOLD"), EXIT_REFUSED);
        assert_eq!(refused("ORD-400-MALFORMED"), EXIT_REFUSED);
        assert_eq!(refused("ORD-404-ORDER_NOT_FOUND"), EXIT_NOT_FOUND);
        assert_eq!(refused("ORD-503-UNAVAILABLE"), EXIT_UNAVAILABLE);
        assert_eq!(Failure::Usage("x".into()).exit_code(), EXIT_USAGE);
    }

    #[test]
    fn the_code_comes_first() {
        let text =
            Failure::Refused(ErrorBody::error("ORD-409-NOT_ON_HOLD", "not held")).to_string();
        assert!(text.starts_with("ORD-409-NOT_ON_HOLD: "), "{text}");
    }
}
