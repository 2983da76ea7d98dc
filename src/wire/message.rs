//! What orderd sends: the outcome of a command, the one event message per
//! accepted command, and job commands for dispatch. None of them carries
//! personal data: contacts and addresses appear only as ids.

use orderd_core::model::{CloseReason, Order};
use orderd_core::{Change, Event, JobCommand, OrderId, Timestamp};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::command::ItemBody;
use super::view::StopView;
use super::ErrorBody;
use crate::subjects::EventKind;

/// The reply a client gets on its `Orderd-Reply-To` subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// Accepted (or already applied before).
    pub ok: bool,
    /// The order (for a create: the id orderd derived), when known.
    pub order_id: Option<String>,
    /// The order's sequence number after the command.
    pub seq: Option<u64>,
    /// The command id had been applied already; nothing changed now.
    pub duplicate: bool,
    /// The order state after the command (`IN_PROGRESS`).
    pub state: Option<String>,
    /// Why the command was refused.
    pub error: Option<ErrorBody>,
}

impl Outcome {
    /// The command was applied; `order` is the order after it.
    pub fn applied(order: &Order) -> Self {
        Self {
            ok: true,
            order_id: Some(order.id.to_string()),
            seq: Some(order.seq),
            duplicate: false,
            state: Some(order.state.as_str().to_owned()),
            error: None,
        }
    }

    /// The command id had been applied before; `order` is the order as it is.
    pub fn duplicate(order: &Order) -> Self {
        Self {
            duplicate: true,
            ..Self::applied(order)
        }
    }

    /// The command was refused (by the core, or before it reached the core).
    pub fn refused(order_id: Option<OrderId>, error: ErrorBody) -> Self {
        Self {
            ok: false,
            order_id: order_id.map(|id| id.to_string()),
            seq: None,
            duplicate: false,
            state: None,
            error: Some(error),
        }
    }
}

/// The one message an accepted command publishes on
/// `orderd.v1.<tenant>.evt.<orderId>.<kind>`, with `Nats-Msg-Id`
/// `<orderId>:<seq>`: the order's situation after the change, and the change's
/// events in order. Events keep the core's own field names (snake_case, tagged
/// by `kind`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventMessage {
    /// The tenant.
    pub tenant: String,
    /// The order.
    pub order_id: String,
    /// The order's sequence number after this change.
    pub seq: u64,
    /// The subject's kind token: the state reached, or `changed`.
    pub kind: String,
    /// When, RFC 3339 (UTC, milliseconds).
    pub at: String,
    /// The command's verb (`create`, `hold`, `job`, …).
    pub command: String,
    /// The command's idempotency key.
    pub command_id: String,
    /// Who sent the command.
    pub by: String,
    /// The order state after the change.
    pub state: String,
    /// The tenant sub-state after the change.
    pub sub_state: Option<String>,
    /// Why the order is CLOSED, once it is.
    pub close_reason: Option<String>,
    /// What happened, in order.
    pub events: Vec<Event>,
}

impl EventMessage {
    /// The message for `change`, given the order after the change is applied.
    pub fn from_change(order_after: &Order, change: &Change) -> Self {
        Self {
            tenant: order_after.tenant.to_string(),
            order_id: order_after.id.to_string(),
            seq: change.seq,
            kind: EventKind::of(change).as_str().to_owned(),
            at: rfc3339(change.at),
            command: change.command.clone(),
            command_id: change.command_id.to_string(),
            by: change.by.clone(),
            state: order_after.state.as_str().to_owned(),
            sub_state: order_after.sub_state.clone(),
            close_reason: order_after.close_reason.map(|r| close_reason(r).to_owned()),
            events: change.events.clone(),
        }
    }
}

#[cfg(test)]
impl EventMessage {
    /// A change of `order` to `seq` leaving it in `state`, with `events`
    /// (for the tests of what reads event messages).
    pub(crate) fn sample(order: &str, seq: u64, state: &str, events: Vec<Event>) -> Self {
        Self {
            tenant: "acme".into(),
            order_id: order.into(),
            seq,
            kind: "changed".into(),
            at: "2026-01-01T00:00:00.000Z".into(),
            command: "hold".into(),
            command_id: format!("c{seq}"),
            by: "x".into(),
            state: state.into(),
            sub_state: None,
            close_reason: None,
            events,
        }
    }
}

/// The wire name of a close reason.
pub fn close_reason(reason: CloseReason) -> &'static str {
    match reason {
        CloseReason::Completed => "COMPLETED",
        CloseReason::ValidationFailed => "VALIDATION_FAILED",
        CloseReason::Cancelled => "CANCELLED",
        CloseReason::Partial => "PARTIAL",
    }
}

/// A job command for dispatch, on
/// `orderd.v1.<tenant>.dispatch.<orderId>.<workOrderId>.<action>`. A `create`
/// also carries what the job needs to run: the job and work-order types, the
/// group (COMPLETE_TOGETHER), the items and instructions, where to pick up
/// and drop, and the contact and location ids (never the personal data
/// itself: dispatch reads it by id through the contact and location
/// endpoints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DispatchMessage {
    /// The tenant.
    pub tenant: String,
    /// The order.
    pub order_id: String,
    /// The work order within the order.
    pub work_order_id: u32,
    /// The attempt: job updates must name it back.
    pub attempt: u32,
    /// `create`, `hold`, `resume` or `cancel`.
    pub action: String,
    /// The job type (create only).
    pub job_type: Option<String>,
    /// The COMPLETE_TOGETHER group id (create only).
    pub group: Option<String>,
    /// The order's sequence number of the change that sent this command.
    pub seq: u64,
    /// The work order's type (create only).
    pub work_order_type: Option<String>,
    /// For a RETURN work order: the work order whose goods it brings back.
    pub returns: Option<u32>,
    /// The consignee's contact id (create only).
    pub contact_id: Option<String>,
    /// The drop location id (create only).
    pub location_id: Option<String>,
    /// The return location id (create only).
    pub return_location_id: Option<String>,
    /// The items (create only).
    pub items: Option<Vec<ItemBody>>,
    /// Free text for the crew (create only).
    pub instructions: Option<String>,
    /// Where the job picks up (create only).
    pub pickup: Option<StopView>,
    /// Where the job drops (create only): the work order's own drop, else
    /// the order's drop contact and location.
    pub drop: Option<StopView>,
}

impl DispatchMessage {
    /// The message for `job`, sent by the change with sequence number `seq`;
    /// `order` is the order after that change.
    pub fn new(order: &Order, job: &JobCommand, seq: u64) -> Self {
        let create = job.action == orderd_core::JobAction::Create;
        let work_order = order.work_order(job.work_order);
        let when_create = |v: Option<String>| if create { v } else { None };
        // The work order, for what only a create carries.
        let created = work_order.filter(|_| create);
        Self {
            tenant: order.tenant.to_string(),
            order_id: order.id.to_string(),
            work_order_id: job.work_order.0,
            attempt: job.attempt,
            action: job.action.as_str().to_owned(),
            job_type: job.job_type.clone(),
            group: job.group.clone(),
            seq,
            work_order_type: when_create(work_order.map(|w| w.kind.clone())),
            returns: work_order.and_then(|w| w.returns).map(|r| r.0),
            contact_id: when_create(order.drop.contact_id.map(|id| id.to_string())),
            location_id: when_create(order.drop.location_id.map(|id| id.to_string())),
            return_location_id: when_create(order.drop.return_location_id.map(|id| id.to_string())),
            items: created.map(|w| w.details.items.iter().map(ItemBody::from).collect()),
            instructions: created.and_then(|w| w.details.instructions.clone()),
            pickup: created.map(|w| StopView::from(&w.details.pickup)),
            drop: created.map(|w| StopView::from(&order.drop_of(w))),
        }
    }
}

/// Earliest and latest instants RFC 3339 can write (years 0000 to 9999).
const MIN_MS: i64 = -62_167_219_200_000;
const MAX_MS: i64 = 253_402_300_799_999;

/// A timestamp as RFC 3339 in UTC with exactly three fractional digits
/// (`2023-11-14T22:13:20.500Z`, so the text sorts as the time does), clamped
/// to the years RFC 3339 can write.
pub fn rfc3339(ts: Timestamp) -> String {
    let ms = ts.0.clamp(MIN_MS, MAX_MS);
    let t = OffsetDateTime::UNIX_EPOCH + Duration::milliseconds(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// An RFC 3339 time as a timestamp (milliseconds, the sub-millisecond part
/// dropped); `None` when the text is not RFC 3339.
pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
    let t = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .ok()
        .map(Timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_milliseconds() {
        assert_eq!(rfc3339(Timestamp(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(Timestamp(-1)), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            rfc3339(Timestamp(1_700_000_000_123)),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(rfc3339(Timestamp(i64::MAX)), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(Timestamp(i64::MIN)), "0000-01-01T00:00:00.000Z");
        // Parses back as RFC 3339.
        let text = rfc3339(Timestamp(1_700_000_000_123));
        let parsed =
            OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339).unwrap();
        assert_eq!(parsed.unix_timestamp_nanos(), 1_700_000_000_123_000_000);
        assert_eq!(parse_rfc3339(&text), Some(Timestamp(1_700_000_000_123)));
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20.123+01:00"),
            Some(Timestamp(1_700_000_000_123))
        );
        assert_eq!(parse_rfc3339("2023-11-14 22:13:20"), None);
    }
}
