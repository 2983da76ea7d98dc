//! The outbox: the messages a persisted change still owes NATS (its event and
//! its job commands for dispatch). They are written in the order's snapshot in
//! the same compare-and-set as the change itself, published right after that
//! write and before the command is answered and its message acknowledged,
//! and re-published from the snapshot after a crash (or when a publish
//! failed: the message is then not acknowledged, and its redelivery retries
//! the publish); the stream's `Nats-Msg-Id` dedupe drops the doubles.
//!
//! This is the one place that turns a core [`Change`] into wire messages.

use serde::{Deserialize, Serialize};

use orderd_core::{Change, Order};

use crate::{headers, subjects, wire};

/// What an outbox message is, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxKind {
    /// A state event on `…evt.<orderId>.<kind>`.
    Event,
    /// A job command on `…dispatch.<orderId>.<workOrderId>.<action>`.
    Dispatch,
}

/// One message to publish through JetStream, exactly as it will be sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMsg {
    /// Event or job command.
    pub kind: OutboxKind,
    /// The full subject.
    pub subject: String,
    /// The `Nats-Msg-Id`: `<orderId>:<seq>` for an event,
    /// `<orderId>:<seq>:<workOrderId>:<action>` for a job command.
    pub msg_id: String,
    /// The JSON body.
    #[serde(with = "as_bytes")]
    pub body: Vec<u8>,
    /// The W3C `traceparent` of the command that caused it (orderd's hop),
    /// published as the `traceparent` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl OutboxMsg {
    /// The content type of every outbox body.
    pub const CONTENT_TYPE: &'static str = headers::JSON;
}

/// The outbox messages of one persisted change, `order` being the order
/// after it: its event first, then its job commands in the order the core
/// listed them.
pub fn for_change(order: &Order, change: &Change) -> Vec<OutboxMsg> {
    let event = wire::EventMessage::from_change(order, change);
    let mut out = vec![OutboxMsg {
        kind: OutboxKind::Event,
        subject: subjects::event(&order.tenant, order.id, subjects::EventKind::of(change)),
        msg_id: headers::event_msg_id(order.id, change.seq),
        body: wire::encode(&event, false),
        traceparent: None,
    }];
    out.extend(change.job_commands().iter().map(|job| OutboxMsg {
        kind: OutboxKind::Dispatch,
        subject: subjects::dispatch(&order.tenant, order.id, job.work_order, job.action),
        msg_id: headers::dispatch_msg_id(order.id, change.seq, job.work_order, job.action),
        body: wire::encode(&wire::DispatchMessage::new(order, job, change.seq), false),
        traceparent: None,
    }));
    out
}

/// MessagePack `bin` for byte bodies (serde's default would write an array
/// of integers); also reads an array, for robustness.
mod as_bytes {
    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
                Ok(v.as_bytes().to_vec())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(BytesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_through_messagepack_as_bin() {
        let msg = OutboxMsg {
            kind: OutboxKind::Dispatch,
            subject: "s".into(),
            msg_id: "m".into(),
            body: br#"{"a":1}"#.to_vec(),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        };
        let bytes = rmp_serde::to_vec_named(&msg).unwrap();
        // bin8 marker followed by the length: the body is not an int array.
        assert!(bytes.windows(2).any(|w| w == [0xc4, 7]));
        let back: OutboxMsg = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, msg);
    }
}
