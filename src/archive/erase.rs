//! Erasing a contact or a location: a person's data gone from everywhere
//! orderd holds it.
//!
//! Where it can be: the item in Redis (under its id), and the commands that
//! carried it in full (a create, an update of the drop details) for as long
//! as the commands stream keeps them (`nats.work_max_age_hours`). Events,
//! job commands, views, logs and the archive name it by id only.
//!
//! Step by step:
//! 1. the tenant must hold the item (another tenant's id is unknown here);
//! 2. no live order that is not CLOSED may name it (its work needs the
//!    address): refused with the orders that do (every such order of the
//!    tenant is read to find them: an erase is rare, and an index per item
//!    would cost every command a write);
//! 3. every create and update of the tenant still in the commands stream is
//!    read, and each one that carries the same contact or address in full,
//!    and whose command was already decided, is deleted from the stream
//!    (JetStream overwrites a deleted message); a command not decided yet is
//!    left and counted, and then the erase stops there, the item kept, so
//!    that asking again once it is decided reads the stream again;
//! 4. the item is deleted from Redis, its key remembered as erased (a
//!    lookup then answers `ORD-410-ERASED`), and the erase audited.
//!
//! The stream is looked through before Redis forgets the data, so an erase
//! that fails half way can be asked again and finds what is left.

use async_nats::jetstream;

use orderd_core::command::InlinePersonal;
use orderd_core::{CommandId, OrderId, Personal, TenantId};

use crate::bus::scan::scan;
use crate::bus::BusError;
use crate::settings::Settings;
use crate::store::{Erased, PersonalRef, RedisStore, StoreError};
use crate::subjects::{self, Inbound};
use crate::{headers, wire};

/// At most this many orders are named when an erase is refused.
const USERS_NAMED: usize = 20;

/// Why an erase was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    /// The tenant never stored it.
    #[error("the tenant holds no such {0}")]
    NotFound(&'static str),
    /// Orders that are not CLOSED name it.
    #[error("{} open order(s) name it", .0.len())]
    InUse(Vec<OrderId>),
    /// Redis.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// NATS.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// What an erase did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Erasure {
    /// Erased now, or by an earlier request; `None` when it stopped before
    /// Redis because commands that carry it are not decided yet.
    pub erased: Option<Erased>,
    /// Commands deleted from the commands stream.
    pub commands_erased: u64,
    /// Commands that carry it but are not decided yet: left in the stream,
    /// and the item kept in Redis (ask again once they are).
    pub commands_left: u64,
    /// Creates and updates looked through.
    pub commands_read: u64,
}

/// A stored command that carries the item.
struct Carrier {
    seq: u64,
    order: OrderId,
    command: CommandId,
}

/// Erases the tenant's `what` everywhere, as asked by `by`, at `now_ms`.
pub async fn erase(
    store: &RedisStore,
    js: &jetstream::Context,
    settings: &Settings,
    tenant: &TenantId,
    what: PersonalRef,
    by: &str,
    now_ms: i64,
) -> Result<Erasure, EraseError> {
    let Some(value) = store.personal_value(tenant, what).await? else {
        if store.erased_at(tenant, what).await?.is_some() {
            let erased = store.erase_personal(tenant, what, by, now_ms).await?;
            return Ok(Erasure {
                erased: Some(erased),
                commands_erased: 0,
                commands_left: 0,
                commands_read: 0,
            });
        }
        return Err(EraseError::NotFound(what.kind()));
    };
    let open = store.open_orders_naming(tenant, what, USERS_NAMED).await?;
    if !open.is_empty() {
        return Err(EraseError::InUse(open));
    }

    let mut carriers = Vec::new();
    let mut read = 0;
    for filter in [
        subjects::create(tenant),
        subjects::updates_of_tenant(tenant),
        subjects::stored_updates_of_tenant(tenant),
    ] {
        read += scan(js, subjects::STREAM_COMMANDS, filter, |msg| {
            if let Some(c) = carrier(tenant, &value, settings, &msg) {
                carriers.push(c);
            }
            true
        })
        .await?;
    }
    let stream = js
        .get_stream(subjects::STREAM_COMMANDS)
        .await
        .map_err(|e| BusError::Stream {
            stream: subjects::STREAM_COMMANDS,
            why: e.to_string(),
        })?;
    let (mut erased, mut left) = (0, 0);
    for c in carriers {
        if !decided(store, &c).await? {
            left += 1;
            continue;
        }
        match stream.delete_message(c.seq).await {
            Ok(_) => erased += 1,
            Err(e) => {
                return Err(EraseError::Bus(BusError::Stream {
                    stream: subjects::STREAM_COMMANDS,
                    why: format!("cannot delete message {}: {e}", c.seq),
                }))
            }
        }
    }
    // A command not decided yet still carries it: keep the item, so that
    // asking again reads the stream again.
    let outcome = if left > 0 {
        None
    } else {
        Some(store.erase_personal(tenant, what, by, now_ms).await?)
    };
    tracing::info!(
        tenant = %tenant,
        kind = what.kind(),
        commands_erased = erased,
        commands_left = left,
        finished = left == 0,
        "erased personal data"
    );
    Ok(Erasure {
        erased: outcome,
        commands_erased: erased,
        commands_left: left,
        commands_read: read,
    })
}

/// The stored command `msg`, if it carries `value` in full.
fn carrier(
    tenant: &TenantId,
    value: &Personal,
    settings: &Settings,
    msg: &crate::bus::scan::Stored,
) -> Option<Carrier> {
    let header = |name: &str| {
        msg.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    let inbound = subjects::parse_inbound(&msg.subject).ok()?;
    let content_type = header(headers::CONTENT_TYPE);
    let command = wire::decode_command(
        &inbound,
        content_type.as_deref(),
        &msg.payload,
        settings.runtime.max_body_bytes,
    )
    .ok()?;
    let carries = command
        .inline_personal()
        .into_iter()
        .any(|p| match (p, value) {
            (InlinePersonal::Contact(c), Personal::Contact(_, v)) => c == v,
            (InlinePersonal::Address(a), Personal::Location(_, v)) => a == v,
            _ => false,
        });
    if !carries {
        return None;
    }
    let msg_id = header(headers::NATS_MSG_ID);
    let order = match inbound {
        Inbound::Create { .. } => {
            let key = msg_id.clone().unwrap_or_else(|| format!("js:{}", msg.seq));
            wire::order_id_for_create(tenant, &key)
        }
        Inbound::Command { order, .. } | Inbound::JobUpdate { order, .. } => order,
    };
    let command = match msg_id {
        Some(id) => CommandId::parse(&id).ok()?,
        None => CommandId::parse(&format!("js:{}:{}", subjects::STREAM_COMMANDS, msg.seq)).ok()?,
    };
    Some(Carrier {
        seq: msg.seq,
        order,
        command,
    })
}

/// Whether the order already applied or refused the command (or was
/// archived, after which nothing of it is decided again).
async fn decided(store: &RedisStore, c: &Carrier) -> Result<bool, StoreError> {
    match store.fetch(c.order).await {
        Err(StoreError::Archived { .. }) => Ok(true),
        Err(e) => Err(e),
        Ok(Some(s)) if s.order.applied_commands.contains(&c.command) => Ok(true),
        Ok(_) => Ok(store.refusal(&c.order, &c.command).await?.is_some()),
    }
}
