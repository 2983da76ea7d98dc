//! The ack policy: what becomes of a pulled message once its order decided
//! ([`Fate`]), the one function that chooses ack, nak or term for it
//! ([`ack_kind`]), and what the client hears ([`outcome_for`]).

use async_nats::jetstream::AckKind;

use orderd_core::OrderId;

use crate::order::{Summary, Verdict};
use crate::settings::Settings;
use crate::wire::{self, ErrorBody, WireError};

/// What became of a message, for acknowledging it and answering the client.
#[derive(Debug)]
pub enum Fate {
    /// The order actor decided.
    Decided(Verdict),
    /// The message is not a valid command: permanent.
    Malformed(WireError),
    /// The order actor went away before deciding (it failed, or shutdown).
    Undecided,
}

/// The one decision of how a message is acknowledged: applied or duplicate,
/// with the order's outbox published → ack; refused or malformed → term
/// (redelivery cannot change the answer); passing trouble, or an outbox not
/// yet published → nak, redelivered after a delay that grows with the
/// delivery count (the redelivery is a duplicate that retries the publish).
pub fn ack_kind(fate: &Fate, delivered: i64, settings: &Settings) -> AckKind {
    let nak = || AckKind::Nak(Some(settings.nak_delay(delivered)));
    match fate {
        Fate::Decided(Verdict::Applied(s) | Verdict::Duplicate(s)) => {
            if s.published {
                AckKind::Ack
            } else {
                nak()
            }
        }
        Fate::Decided(Verdict::Refused(_) | Verdict::RefusedBefore(_)) | Fate::Malformed(_) => {
            AckKind::Term
        }
        Fate::Decided(Verdict::Retry(_)) | Fate::Undecided => nak(),
    }
}

/// What the client hears on its reply subject; `None` when the command was
/// not decided and will be redelivered. An applied command is answered at
/// once, even if its outbox is still to be published: it is durable.
pub fn outcome_for(
    fate: &Fate,
    order_id: Option<OrderId>,
    last_delivery: bool,
) -> Option<wire::Outcome> {
    let decided = |s: &Summary, duplicate: bool| wire::Outcome {
        ok: true,
        order_id: Some(s.order_id.to_string()),
        seq: Some(s.seq),
        duplicate,
        state: Some(s.state.as_str().to_owned()),
        error: None,
    };
    match fate {
        Fate::Decided(Verdict::Applied(s)) => Some(decided(s, false)),
        Fate::Decided(Verdict::Duplicate(s)) => Some(decided(s, true)),
        Fate::Decided(Verdict::Refused(r)) => {
            Some(wire::Outcome::refused(order_id, ErrorBody::from(r)))
        }
        Fate::Decided(Verdict::RefusedBefore(answer)) => {
            Some(wire::Outcome::refused(order_id, answer.clone()))
        }
        Fate::Malformed(e) => Some(wire::Outcome::refused(order_id, ErrorBody::from(e))),
        Fate::Decided(Verdict::Retry(_)) | Fate::Undecided if last_delivery => {
            Some(wire::Outcome::refused(
                order_id,
                ErrorBody::error(
                    "ORD-503-UNAVAILABLE",
                    "the command could not be processed and will not be retried",
                ),
            ))
        }
        Fate::Decided(Verdict::Retry(_)) | Fate::Undecided => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::RetryReason;
    use orderd_core::{OrderState, Rejection};

    fn summary() -> Summary {
        Summary {
            order_id: OrderId(uuid::Uuid::nil()),
            seq: 3,
            state: OrderState::InProgress,
            published: true,
        }
    }

    #[test]
    fn one_table_decides_every_acknowledgement() {
        let s = Settings::default();
        let cases = [
            (Fate::Decided(Verdict::Applied(summary())), "ack"),
            (Fate::Decided(Verdict::Duplicate(summary())), "ack"),
            (
                Fate::Decided(Verdict::Applied(Summary {
                    published: false,
                    ..summary()
                })),
                "nak",
            ),
            (
                Fate::Decided(Verdict::Refused(Rejection::OrderNotFound)),
                "term",
            ),
            (Fate::Malformed(WireError::Malformed("x".into())), "term"),
            (Fate::Decided(Verdict::Retry(RetryReason::Conflict)), "nak"),
            (Fate::Undecided, "nak"),
        ];
        for (fate, want) in cases {
            let got = match ack_kind(&fate, 2, &s) {
                AckKind::Ack => "ack",
                AckKind::Term => "term",
                AckKind::Nak(Some(d)) if d == s.nak_delay(2) => "nak",
                other => panic!("{other:?}"),
            };
            assert_eq!(got, want, "{fate:?}");
        }
    }

    #[test]
    fn clients_hear_an_answer_only_when_it_is_final() {
        let applied =
            outcome_for(&Fate::Decided(Verdict::Applied(summary())), None, false).unwrap();
        assert!(applied.ok && !applied.duplicate && applied.seq == Some(3));
        let dup = outcome_for(&Fate::Decided(Verdict::Duplicate(summary())), None, false).unwrap();
        assert!(dup.ok && dup.duplicate);
        let refused = outcome_for(
            &Fate::Decided(Verdict::Refused(Rejection::OrderNotFound)),
            None,
            false,
        )
        .unwrap();
        assert_eq!(refused.error.unwrap().code, "ORD-404-ORDER_NOT_FOUND");
        assert!(outcome_for(&Fate::Undecided, None, false).is_none());
        let gave_up = outcome_for(&Fate::Undecided, None, true).unwrap();
        assert_eq!(gave_up.error.unwrap().code, "ORD-503-UNAVAILABLE");
    }
}
