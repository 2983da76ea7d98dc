//! `get --as-of`: an order as it was at a past instant, rebuilt from its
//! history. Pure: the caller reads the event messages (the `history`
//! endpoint), this module rebuilds.
//!
//! Every change orderd applied published one event message with its
//! sequence number, time, command id, sender and events. Applying those
//! changes in order to a blank order is how orderd itself changes an order
//! (`orderd_core::apply_change`, "rebuilding an order by applying its
//! recorded changes to `Order::blank` gives the same order"), so the
//! messages up to the instant give back the whole order as it was then,
//! not only its state. The rebuild needs every message from seq 1: an
//! order whose first events have left the events stream (its retention)
//! cannot be rebuilt, and says so.

use orderd_core::{apply_change, Change, CommandId, Order, OrderId, TenantId, Timestamp};

use crate::wire::{parse_rfc3339, EventMessage, OrderView};

/// The order at an instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Rebuilt {
    /// The order as `get` would have shown it then.
    pub view: OrderView,
    /// How many event messages were applied.
    pub applied: usize,
    /// The time of the last one applied (RFC 3339).
    pub last_at: String,
    /// The command of the last one applied.
    pub last_command: String,
}

/// Why an order cannot be rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AsOfError {
    /// The order has no event at or before the instant: it did not exist yet.
    #[error("the order did not exist yet at that instant (its first event is later)")]
    NotYet,
    /// The stream holds no event of the order.
    #[error("the event stream holds no event of this order")]
    NoEvents,
    /// The stream no longer holds the order's first events.
    #[error("the event stream no longer holds this order's first events (its oldest is seq {first}); it cannot be rebuilt")]
    Expired {
        /// The oldest seq still held.
        first: u64,
    },
    /// A message is missing in the middle.
    #[error("the event stream lacks seq {missing} of this order; it cannot be rebuilt")]
    Gap {
        /// The first seq missing.
        missing: u64,
    },
    /// A message this version cannot read.
    #[error("seq {seq}: {why}")]
    Unreadable {
        /// The message.
        seq: u64,
        /// Why.
        why: &'static str,
    },
    /// The rebuilt order does not reach the state the message recorded.
    #[error("seq {seq}: the rebuilt order is {rebuilt}, the record says {recorded}")]
    NotReproduced {
        /// The message.
        seq: u64,
        /// The state recorded.
        recorded: String,
        /// The state rebuilt.
        rebuilt: String,
    },
}

/// Rebuilds `order` of `tenant` as it was at `at`, from its event messages
/// (oldest first, as the `history` endpoint gives them): every message
/// whose time is at or before `at`.
pub fn rebuild(
    tenant: &TenantId,
    order: OrderId,
    messages: &[EventMessage],
    at: Timestamp,
) -> Result<Rebuilt, AsOfError> {
    let Some(first) = messages.first() else {
        return Err(AsOfError::NoEvents);
    };
    if first.seq != 1 {
        return Err(AsOfError::Expired { first: first.seq });
    }
    let mut rebuilt = Order::blank(order, tenant.clone());
    let mut last: Option<&EventMessage> = None;
    for (m, want) in messages.iter().zip(1u64..) {
        if m.seq != want {
            return Err(AsOfError::Gap { missing: want });
        }
        let unreadable = |why| AsOfError::Unreadable { seq: m.seq, why };
        let when = parse_rfc3339(&m.at).ok_or_else(|| unreadable("its time is not RFC 3339"))?;
        // Changes are stamped in sequence, so the first one after the
        // instant ends the order's past.
        if when > at {
            break;
        }
        let change = Change {
            seq: m.seq,
            command_id: CommandId::parse(&m.command_id)
                .map_err(|_| unreadable("its command id is invalid"))?,
            command: m.command.clone(),
            at: when,
            by: m.by.clone(),
            events: m.events.clone(),
        };
        apply_change(&mut rebuilt, &change);
        if rebuilt.state.as_str() != m.state {
            return Err(AsOfError::NotReproduced {
                seq: m.seq,
                recorded: m.state.clone(),
                rebuilt: rebuilt.state.as_str().to_owned(),
            });
        }
        last = Some(m);
    }
    let Some(last) = last else {
        return Err(AsOfError::NotYet);
    };
    Ok(Rebuilt {
        view: OrderView::from(&rebuilt),
        applied: usize::try_from(last.seq).unwrap_or(usize::MAX),
        last_at: last.at.clone(),
        last_command: last.command.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderd_core::{execute, Command, Ctx, Envelope, Outcome, TenantConfig};
    use serde_json::json;
    use uuid::Uuid;

    const START: i64 = 1_700_000_000_000;

    /// An order driven through the core as orderd would, keeping the event
    /// messages it publishes (after a trip through JSON, as the stream
    /// returns them).
    struct Story {
        order: Order,
        config: TenantConfig,
        messages: Vec<EventMessage>,
        now: i64,
    }

    impl Story {
        fn new() -> Self {
            let tenant = TenantId::parse("acme").unwrap();
            Self {
                order: Order::blank(OrderId(Uuid::from_u128(7)), tenant),
                config: TenantConfig::default(),
                messages: Vec::new(),
                now: START,
            }
        }

        /// Sends a command a second after the last.
        fn ok(&mut self, command: Command) {
            self.now += 1_000;
            let n = self.messages.len() as u128 + 1;
            let envelope = Envelope {
                tenant: self.order.tenant.clone(),
                order_id: self.order.id,
                command_id: CommandId::parse(&format!("cmd-{n}")).unwrap(),
                by: "client-1".into(),
                command,
                expected_seq: None,
            };
            let ctx = Ctx {
                now: Timestamp(self.now),
                config: &self.config,
                fresh_ids: [
                    Uuid::from_u128(n * 10 + 1),
                    Uuid::from_u128(n * 10 + 2),
                    Uuid::from_u128(n * 10 + 3),
                ],
            };
            let Outcome::Applied(change) = execute(&self.order, &envelope, &ctx) else {
                panic!("applied");
            };
            apply_change(&mut self.order, &change);
            let message = EventMessage::from_change(&self.order, &change);
            let text = serde_json::to_vec(&message).unwrap();
            self.messages.push(serde_json::from_slice(&text).unwrap());
        }
    }

    fn create() -> Command {
        let body = json!({
            "clientId": "client-1", "clientName": "Acme Retail", "clientOrderId": "PO-1",
            "dropDetails": {"contact": {"name": "Ada Marker", "phone": "+44 20 7946 0000"}},
            "orderSummary": {"invoiceNumber": "INV-001"},
            "workOrders": [{"type": "PICKUP"}],
        });
        let tenant = TenantId::parse("acme").unwrap();
        let inbound = crate::subjects::parse_inbound(&crate::subjects::create(&tenant)).unwrap();
        let body = serde_json::to_vec(&body).unwrap();
        crate::wire::decode_command(&inbound, None, &body, crate::wire::DEFAULT_MAX_BODY).unwrap()
    }

    fn story() -> Story {
        let mut s = Story::new();
        s.ok(create()); // seq 1 at +1s
        s.ok(Command::Hold {
            reason: Some("asked".into()),
        }); // seq 2 at +2s
        s.ok(Command::Resume); // seq 3 at +3s
        s
    }

    #[test]
    fn each_instant_gives_the_order_as_it_was() {
        let s = story();
        let tenant = s.order.tenant.clone();
        let at = |ms| rebuild(&tenant, s.order.id, &s.messages, Timestamp(START + ms));

        assert_eq!(at(500), Err(AsOfError::NotYet));
        let held = at(2_500).unwrap();
        assert_eq!(held.view.state, "ON_HOLD");
        assert_eq!(held.view.seq, 2);
        assert_eq!(
            held.view.held_from.as_deref(),
            Some(s.messages[0].state.as_str())
        );
        assert_eq!(held.last_command, "hold");
        assert_eq!(held.applied, 2);
        // The instant itself counts.
        assert_eq!(at(2_000).unwrap().view.seq, 2);

        // Rebuilt up to now, it is the order as it is.
        let now = at(60_000).unwrap();
        assert_eq!(now.view, OrderView::from(&s.order));
    }

    #[test]
    fn a_broken_history_says_why() {
        let s = story();
        let tenant = s.order.tenant.clone();
        let late = Timestamp(START + 60_000);
        assert_eq!(
            rebuild(&tenant, s.order.id, &[], late),
            Err(AsOfError::NoEvents)
        );
        assert_eq!(
            rebuild(&tenant, s.order.id, &s.messages[1..], late),
            Err(AsOfError::Expired { first: 2 })
        );
        let gap = [s.messages[0].clone(), s.messages[2].clone()];
        assert_eq!(
            rebuild(&tenant, s.order.id, &gap, late),
            Err(AsOfError::Gap { missing: 2 })
        );
    }
}
