//! Every message header name orderd reads or writes, and the header values it
//! derives. `Nats-*` names are NATS's own; orderd's own names share the
//! `Orderd-` prefix.

use orderd_core::{JobAction, OrderId, WorkOrderId};

/// JetStream's idempotency key: a stream drops a second message with the same
/// id inside its duplicate window.
pub const NATS_MSG_ID: &str = "Nats-Msg-Id";
/// The body's encoding: [`JSON`] (the default when absent) or [`MSGPACK`].
pub const CONTENT_TYPE: &str = "Content-Type";
/// MessagePack bodies, encoded as maps.
pub const MSGPACK: &str = "application/msgpack";
/// JSON bodies.
pub const JSON: &str = "application/json";

/// The prefix of orderd's own header names.
pub const ORDERD_PREFIX: &str = "Orderd-";
/// The subject a client names to receive the command's outcome.
pub const ORDERD_REPLY_TO: &str = "Orderd-Reply-To";
/// The stable error code of a refused command or request (`ORD-4xx-…`).
pub const ORDERD_ERROR_CODE: &str = "Orderd-Error-Code";
/// The order's sequence number after the change a message reports.
pub const ORDERD_SEQ: &str = "Orderd-Seq";

/// On a dead letter: why its last delivery failed (no personal data).
pub const ORDERD_ERROR: &str = "Orderd-Error";
/// On a dead letter: the subject the message was first published to.
pub const ORDERD_DLQ_SUBJECT: &str = "Orderd-Dlq-Subject";
/// On a dead letter: the stream and sequence it was stored at (`ORDERD_CMD:42`).
pub const ORDERD_DLQ_SOURCE: &str = "Orderd-Dlq-Source";
/// On a dead letter: how many times it was delivered.
pub const ORDERD_DLQ_DELIVERIES: &str = "Orderd-Dlq-Deliveries";
/// On a dead letter: the original `Nats-Msg-Id`, when it had one.
pub const ORDERD_DLQ_MSG_ID: &str = "Orderd-Dlq-Msg-Id";

/// Set by the Services API on an error reply: the error's description.
pub const NATS_SERVICE_ERROR: &str = "Nats-Service-Error";
/// Set by the Services API on an error reply: the numeric error code.
pub const NATS_SERVICE_ERROR_CODE: &str = "Nats-Service-Error-Code";

/// The `Nats-Msg-Id` of an order's event message: `<orderId>:<seq>`, so a
/// re-published change (outbox replay after a crash) is deduplicated.
pub fn event_msg_id(order: OrderId, seq: u64) -> String {
    format!("{order}:{seq}")
}

/// The `Nats-Msg-Id` of a job command for dispatch:
/// `<orderId>:<seq>:<workOrderId>:<action>`. One change may send several job
/// commands (START_TOGETHER), and one work order may be held, resumed and held
/// again within the same attempt, so the change's seq is part of the key.
pub fn dispatch_msg_id(
    order: OrderId,
    seq: u64,
    work_order: WorkOrderId,
    action: JobAction,
) -> String {
    format!("{order}:{seq}:{work_order}:{}", action.as_str())
}

/// The `Nats-Msg-Id` of a dead letter: `dlq:<stream>:<stream sequence>`, so
/// dead-lettering the same message twice stores it once.
pub fn dead_letter_msg_id(stream: &str, stream_seq: u64) -> String {
    format!("dlq:{stream}:{stream_seq}")
}

/// W3C Trace Context: a command that carries one is a hop of that trace;
/// orderd is the next hop, and its events, job commands and outcome carry
/// the same trace id with orderd's own span id as their parent.
pub const TRACEPARENT: &str = "traceparent";

/// The `traceparent` of orderd's hop for a command that arrived with
/// `incoming`: the same version, trace id and flags, `span_id` as the
/// parent id. `None` when `incoming` is not a valid version-00 header
/// (`00-<32 hex trace id, not all zero>-<16 hex parent id, not all
/// zero>-<2 hex flags>`): a malformed header is ignored, as the
/// specification asks, never refused.
pub fn child_traceparent(incoming: &str, span_id: u64) -> Option<String> {
    let mut parts = incoming.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && s.bytes().any(|b| b != b'0')
    };
    let valid = version == "00"
        && parts.next().is_none()
        && hex(trace, 32)
        && hex(parent, 16)
        && flags.len() == 2
        && flags.bytes().all(|b| b.is_ascii_hexdigit());
    // A span id of zero is invalid: use one bit set instead.
    let span_id = span_id.max(1);
    valid.then(|| format!("00-{trace}-{span_id:016x}-{flags}"))
}

/// The trace id of a `traceparent` value (its second field).
pub fn trace_id(traceparent: &str) -> Option<&str> {
    traceparent.split('-').nth(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_header_names_share_the_prefix() {
        for name in [
            ORDERD_REPLY_TO,
            ORDERD_ERROR_CODE,
            ORDERD_SEQ,
            ORDERD_ERROR,
            ORDERD_DLQ_SUBJECT,
            ORDERD_DLQ_SOURCE,
            ORDERD_DLQ_DELIVERIES,
            ORDERD_DLQ_MSG_ID,
        ] {
            assert!(name.starts_with(ORDERD_PREFIX), "{name}");
        }
        for name in [NATS_MSG_ID, NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE] {
            assert!(name.starts_with("Nats-"), "{name}");
        }
    }

    #[test]
    fn message_ids() {
        let order = OrderId::parse("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap();
        assert_eq!(
            event_msg_id(order, 7),
            "67e55044-10b1-426f-9247-bb680e5fe0c8:7"
        );
        assert_eq!(
            dispatch_msg_id(order, 7, WorkOrderId(2), JobAction::Hold),
            "67e55044-10b1-426f-9247-bb680e5fe0c8:7:2:hold"
        );
    }

    #[test]
    fn orderd_is_the_next_hop_of_a_valid_trace_and_ignores_a_bad_one() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            child_traceparent(incoming, 0xabc).as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000abc-01")
        );
        assert_eq!(trace_id(incoming), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
        ] {
            assert_eq!(child_traceparent(bad, 7), None, "{bad}");
        }
    }
}
