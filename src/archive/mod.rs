//! An order's record beyond the live store: its history read back from the
//! events stream, the archive of closed orders past their tenant's
//! retention, and erasing a contact or location everywhere orderd holds it.
//!
//! - this page: [`read_events`] (an order's history, for the `history`
//!   endpoint, the dry run and the archive) and [`read`] (an archived
//!   order, for the `archive` endpoint);
//! - [`record`]: the archive record, a pure function of the order and its
//!   history;
//! - [`sweep`]: the task that archives, on each tenant's owner, the CLOSED
//!   orders whose retention has passed;
//! - [`erase`]: a contact or location erased from Redis and from the
//!   commands the commands stream still holds.
//!
//! May import: [`crate::order`] (to stop an archived order's live actor),
//! [`crate::store`], [`crate::bus`], [`crate::settings`], the wire contract
//! and [`crate::telemetry`].
//!
//! Invariants:
//! - an order leaves the live store only after its archive record is
//!   stored (acknowledged by JetStream), and only as the version that
//!   record holds; a crash between the two archives it again (the record's
//!   `Nats-Msg-Id` makes that one record);
//! - the archive holds no personal data: the order's view names its
//!   contacts and locations by id, as its events do.

pub mod erase;
pub mod record;
pub mod sweep;

use async_nats::jetstream;

use orderd_core::{OrderId, TenantId};

use crate::bus::scan::scan;
use crate::bus::BusError;
use crate::{subjects, wire};

pub use record::ArchiveRecord;

/// Every event message of one order, oldest first, read back from the
/// events stream (as long as it keeps them: `nats.events_max_age_days`).
pub async fn read_events(
    js: &jetstream::Context,
    tenant: &TenantId,
    order_id: OrderId,
) -> Result<Vec<wire::EventMessage>, BusError> {
    let mut out = Vec::new();
    let filter = subjects::events_of_order(tenant, order_id);
    scan(js, subjects::STREAM_EVENTS, filter, |msg| {
        match serde_json::from_slice::<wire::EventMessage>(&msg.payload) {
            Ok(event) => out.push(event),
            Err(e) => tracing::warn!(error = %e, "undecodable event in the stream"),
        }
        true
    })
    .await?;
    out.sort_by_key(|e| e.seq);
    out.dedup_by_key(|e| e.seq);
    Ok(out)
}

/// The archive record of an order, if the archive holds one.
pub async fn read(
    js: &jetstream::Context,
    tenant: &TenantId,
    order_id: OrderId,
) -> Result<Option<ArchiveRecord>, BusError> {
    use jetstream::stream::LastRawMessageErrorKind;
    let failed = |why: String| BusError::Stream {
        stream: subjects::STREAM_ARCHIVE,
        why,
    };
    let stream = js
        .get_stream(subjects::STREAM_ARCHIVE)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let subject = subjects::archive_of_order(tenant, order_id);
    match stream.get_last_raw_message_by_subject(&subject).await {
        Ok(msg) => serde_json::from_slice(&msg.payload)
            .map(Some)
            .map_err(|e| failed(format!("the record of {order_id} does not decode: {e}"))),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(failed(e.to_string())),
    }
}
