//! The archive record of one order: what the archive keeps once the order
//! leaves the live store. Pure: built from the order, the version stored,
//! its history and when.

use serde::{Deserialize, Serialize};

use orderd_core::Order;

use crate::wire::{self, EventMessage, OrderView};

/// One archived order, as stored under `orderd.v1.<tenant>.archive.<orderId>`
/// and answered by the `archive` endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveRecord {
    /// The tenant.
    pub tenant: String,
    /// The order id.
    pub order_id: String,
    /// When it was archived (RFC 3339).
    pub archived_at: String,
    /// The snapshot version that was archived.
    pub version: u64,
    /// The order as it was last stored: every field it was indexed by
    /// (state, sub-state, client order id, createdAt, custom attributes),
    /// contacts and locations by id only.
    pub order: OrderView,
    /// Its event messages, oldest first, as far as the events stream still
    /// kept them.
    pub history: Vec<EventMessage>,
    /// Whether `history` holds every event from 1 to the order's sequence
    /// (false when the events stream had already dropped the oldest).
    pub history_complete: bool,
}

impl ArchiveRecord {
    /// The record of `order` (stored as `version`) with `history`, archived
    /// at `at_ms`.
    pub fn new(order: &Order, version: u64, mut history: Vec<EventMessage>, at_ms: i64) -> Self {
        history.retain(|e| e.seq <= order.seq);
        history.sort_by_key(|e| e.seq);
        history.dedup_by_key(|e| e.seq);
        let history_complete = history.len() as u64 == order.seq
            && history.iter().zip(1..).all(|(e, seq)| e.seq == seq);
        Self {
            tenant: order.tenant.to_string(),
            order_id: order.id.to_string(),
            archived_at: wire::rfc3339(orderd_core::Timestamp(at_ms)),
            version,
            order: OrderView::from(order),
            history,
            history_complete,
        }
    }

    /// The record as JSON in at most `max_bytes`: when its whole history
    /// would not fit in one message, the oldest events are left out (and
    /// `historyComplete` is false).
    pub fn encode_within(&mut self, max_bytes: usize) -> Vec<u8> {
        loop {
            let body = serde_json::to_vec(self).unwrap_or_default();
            if body.len() <= max_bytes || self.history.is_empty() {
                return body;
            }
            let drop = self.history.len().div_ceil(2);
            self.history.drain(..drop);
            self.history_complete = false;
        }
    }

    /// The `Nats-Msg-Id` of the record: one record per archived version,
    /// however often a crash makes the sweep store it again.
    pub fn msg_id(&self) -> String {
        format!("archive:{}:{}", self.order_id, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderd_core::{OrderId, TenantId};

    fn order(seq: u64) -> Order {
        let id = OrderId::parse("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap();
        let mut o = Order::blank(id, TenantId::parse("acme").unwrap());
        o.seq = seq;
        o
    }

    fn event(o: &Order, seq: u64) -> EventMessage {
        EventMessage {
            tenant: "acme".into(),
            order_id: o.id.to_string(),
            seq,
            kind: "changed".into(),
            at: "1970-01-01T00:00:00.000Z".into(),
            command: "update".into(),
            command_id: format!("c{seq}"),
            by: "client".into(),
            state: "CLOSED".into(),
            sub_state: None,
            close_reason: None,
            events: Vec::new(),
        }
    }

    #[test]
    fn the_history_is_complete_only_from_one_to_the_orders_sequence() {
        let o = order(3);
        let all: Vec<EventMessage> = (1..=3).map(|s| event(&o, s)).collect();
        let whole = ArchiveRecord::new(&o, 3, all.clone(), 0);
        assert!(whole.history_complete);
        assert_eq!(whole.msg_id(), format!("archive:{}:3", o.id));
        // The events stream dropped the first: not complete.
        let aged = ArchiveRecord::new(&o, 3, all[1..].to_vec(), 0);
        assert!(!aged.history_complete);
        // Twice the same event, or one past the order: kept once, cut off.
        let mut doubled = all.clone();
        doubled.push(event(&o, 2));
        doubled.push(event(&o, 4));
        let r = ArchiveRecord::new(&o, 3, doubled, 0);
        assert!(r.history_complete);
        assert_eq!(r.history.len(), 3);
    }

    #[test]
    fn a_record_too_large_for_one_message_leaves_out_its_oldest_events() {
        let o = order(40);
        let all: Vec<EventMessage> = (1..=40).map(|s| event(&o, s)).collect();
        let mut r = ArchiveRecord::new(&o, 40, all, 0);
        let whole = serde_json::to_vec(&r).unwrap().len();
        let body = r.encode_within(whole / 3);
        assert!(body.len() <= whole / 3, "{} > {}", body.len(), whole / 3);
        assert!(!r.history_complete);
        assert!(!r.history.is_empty(), "the newest are kept");
        assert_eq!(r.history.last().map(|e| e.seq), Some(40));
        let back: ArchiveRecord = serde_json::from_slice(&body).unwrap();
        assert_eq!(back, r);
    }
}
