//! The store's side of an order's end of life: the closed orders whose
//! retention has passed, removing an archived order from the live store,
//! and erasing a contact or location.
//!
//! Invariants:
//! - an order leaves the live store in one atomic step, and only as the
//!   version that was archived (compare-and-set, and fenced by the tenant's
//!   epoch like every write of its orders): a change after the archive copy
//!   was taken keeps it live, and the next sweep archives it again;
//! - what stays of an archived order is a tombstone, its hash holding only
//!   `v` = `archived:<when>` and `archived` (when, ms), which expires with
//!   the archive: no writer expects that version, so the save and refusal
//!   scripts refuse every write of the order ([`StoreError::Archived`])
//!   without a read of their own, and a late command, or a create sent
//!   again with the same idempotency key, cannot bring the order back as
//!   new;
//! - an erased contact or location is gone from Redis, and its key is
//!   remembered in the tenant's erased set (a lookup answers that it was
//!   erased, not that it never existed); it is erased only while no live
//!   order that is not CLOSED names it.

use orderd_core::{OrderId, OrderState, Personal, TenantId};

use super::personal::{self, PersonalRef};
use super::{keys, RedisStore, StoreError};

/// Removes an archived order from the live store, leaving its tombstone.
///
/// KEYS: 1 order hash, 2 its command ids, 3 its refusals, 4 the tenant's
/// owner epoch, 5 the CLOSED state index, 6 the client order id index, 7
/// the tenant's timers, 8 the timers of every tenant kept before. ARGV: 1
/// the archived version, 2 the writer's epoch, 3 the order id, 4 when
/// (ms), 5 the tombstone's life (s).
///
/// Returns `{1, version}` when removed, `{0, stored version}` when the
/// order moved on (or is gone), `{3, stored epoch}` when fenced, `{4,
/// when}` when it was archived already.
const REMOVE_SCRIPT: &str = r"
local epoch = redis.call('GET', KEYS[4]) or '0:0'
if epoch ~= ARGV[2] then return {3, epoch} end
local archived = redis.call('HGET', KEYS[1], 'archived')
if archived then return {4, archived} end
local cur = redis.call('HGET', KEYS[1], 'v') or '0'
if cur ~= ARGV[1] then return {0, cur} end
local idx = redis.call('HGET', KEYS[1], 'idx')
if idx then
  for k in string.gmatch(idx, '[^\n]+') do redis.call('ZREM', k, ARGV[3]) end
end
redis.call('ZREM', KEYS[5], ARGV[3])
redis.call('ZREM', KEYS[6], ARGV[3])
redis.call('ZREM', KEYS[7], ARGV[3])
redis.call('ZREM', KEYS[8], ARGV[3])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'v', 'archived:' .. ARGV[4], 'archived', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {1, cur}
";

/// Erases one contact or location of a tenant, and audits the erase.
///
/// KEYS: 1 the item's key, 2 the tenant's personal-data set, 3 the tenant's
/// erased set, 4 the tenant's audit. ARGV: 1 when (ms), 2 audit entries
/// kept, 3 kind, 4 id, 5 by.
///
/// Returns 1 when erased now, 2 when it was erased before, 0 when the
/// tenant never stored it.
const ERASE_SCRIPT: &str = r"
local answer = 1
if redis.call('SISMEMBER', KEYS[2], KEYS[1]) == 0 then
  answer = 0
  if redis.call('HEXISTS', KEYS[3], KEYS[1]) == 1 then answer = 2 end
else
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], KEYS[1])
  redis.call('HSET', KEYS[3], KEYS[1], ARGV[1])
end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[2], '*', 'kind', ARGV[3], 'id', ARGV[4], 'by', 'erase:' .. ARGV[5], 'found', tostring(answer))
return answer
";

/// What became of an erase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Erased {
    /// Erased now.
    Now,
    /// Erased by an earlier request.
    Before,
    /// The tenant never stored it (or another tenant did).
    Unknown,
}

impl RedisStore {
    /// Up to `limit` of the tenant's CLOSED orders whose last change was
    /// at or before `cutoff_ms`, oldest first.
    pub async fn closed_before(
        &self,
        tenant: &TenantId,
        cutoff_ms: i64,
        limit: usize,
    ) -> Result<Vec<OrderId>, StoreError> {
        self.lowest(keys::closed_index(tenant), &cutoff_ms.to_string(), limit)
            .await
    }

    /// How many of the tenant's CLOSED orders last changed at or before
    /// `cutoff_ms` (one `ZCOUNT`).
    pub async fn closed_count_before(
        &self,
        tenant: &TenantId,
        cutoff_ms: i64,
    ) -> Result<u64, StoreError> {
        Ok(redis::cmd("ZCOUNT")
            .arg(keys::closed_index(tenant))
            .arg("-inf")
            .arg(cutoff_ms)
            .query_async(&mut self.conn())
            .await?)
    }

    /// Removes the archived `version` of a CLOSED order from the live store
    /// (its snapshot, command ids, refusals and index entries), leaving a
    /// tombstone for `tombstone_secs`. Fenced by this instance's epoch for
    /// the tenant; [`StoreError::StaleVersion`] when the order changed
    /// since (archive it again).
    pub async fn remove_archived(
        &self,
        order: &orderd_core::Order,
        version: u64,
        at_ms: i64,
        tombstone_secs: u64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tenant = &order.tenant;
        let unit = self.fences.unit_of(tenant, order.id);
        let (ok, found): (i64, String) = redis::Script::new(REMOVE_SCRIPT)
            .key(keys::order(&order.id))
            .key(keys::command_ids(&order.id))
            .key(keys::refusals(&order.id))
            .key(keys::owner_epoch(&unit))
            .key(keys::state_index(tenant, OrderState::Closed))
            // Without a client order id, a key that never exists.
            .key(keys::client_order_index(tenant, &order.client_order_id))
            .key(keys::tenant_timers(tenant))
            .key(keys::TIMERS)
            .arg(version)
            .arg(self.fences.epoch(&unit).to_string())
            .arg(order.id.to_string())
            .arg(at_ms)
            .arg(tombstone_secs.max(1))
            .invoke_async(&mut conn)
            .await?;
        match ok {
            1 => self.replicated(&mut conn).await,
            3 => Err(self.fenced(&unit, &found)),
            4 => Err(StoreError::Archived {
                order: order.id,
                at_ms: found.parse().unwrap_or_default(),
            }),
            _ => Err(StoreError::StaleVersion {
                order: order.id,
                expected: version,
                found: found.parse().unwrap_or(0),
            }),
        }
    }

    /// When the order was archived (ms), if only its tombstone is left.
    pub async fn archived_at(&self, order: OrderId) -> Result<Option<i64>, StoreError> {
        let mut conn = self.conn();
        Ok(redis::cmd("HGET")
            .arg(keys::order(&order))
            .arg("archived")
            .query_async(&mut conn)
            .await?)
    }

    /// Up to `limit` of the tenant's orders that are not CLOSED and name
    /// `what`: every such order is read (page by page from the state
    /// indexes), as an erase is rare and an index per item would cost
    /// every command a write.
    pub async fn open_orders_naming(
        &self,
        tenant: &TenantId,
        what: PersonalRef,
        limit: usize,
    ) -> Result<Vec<OrderId>, StoreError> {
        const PAGE: isize = 500;
        let mut found = Vec::new();
        for state in OrderState::ALL {
            if state == OrderState::Closed {
                continue;
            }
            let mut start: isize = 0;
            loop {
                let ids: Vec<String> = redis::cmd("ZRANGE")
                    .arg(keys::state_index(tenant, state))
                    .arg(start)
                    .arg(start + PAGE - 1)
                    .query_async(&mut self.conn())
                    .await?;
                let page: Vec<OrderId> = ids
                    .iter()
                    .filter_map(|id| OrderId::parse(id).ok())
                    .collect();
                for snapshot in self.load_many(&page).await? {
                    let (contacts, locations) = snapshot.order.personal_refs();
                    let names = match what {
                        PersonalRef::Contact(id) => contacts.contains(&id),
                        PersonalRef::Location(id) => locations.contains(&id),
                    };
                    if names && snapshot.order.state != OrderState::Closed {
                        found.push(snapshot.order.id);
                        if found.len() >= limit {
                            return Ok(found);
                        }
                    }
                }
                if ids.len() < PAGE as usize {
                    break;
                }
                start += PAGE;
            }
        }
        Ok(found)
    }

    /// The tenant's stored `what`, if the tenant stored it, without an
    /// audit entry (for the erase, which audits itself).
    pub async fn personal_value(
        &self,
        tenant: &TenantId,
        what: PersonalRef,
    ) -> Result<Option<Personal>, StoreError> {
        let mut conn = self.conn();
        let (member, value): (bool, Option<Vec<u8>>) = redis::pipe()
            .atomic()
            .cmd("SISMEMBER")
            .arg(keys::tenant_personal(tenant))
            .arg(what.key())
            .cmd("GET")
            .arg(what.key())
            .query_async(&mut conn)
            .await?;
        value
            .filter(|_| member)
            .map(|b| personal::decode(what, &b))
            .transpose()
    }

    /// Erases the tenant's `what` from Redis, remembering that it did, and
    /// audits the erase as done by `by`.
    pub async fn erase_personal(
        &self,
        tenant: &TenantId,
        what: PersonalRef,
        by: &str,
        at_ms: i64,
    ) -> Result<Erased, StoreError> {
        let mut conn = self.conn();
        let answer: i64 = redis::Script::new(ERASE_SCRIPT)
            .key(what.key())
            .key(keys::tenant_personal(tenant))
            .key(keys::tenant_erased(tenant))
            .key(keys::tenant_audit(tenant))
            .arg(at_ms)
            .arg(personal::AUDIT_KEPT)
            .arg(what.kind())
            .arg(what.id())
            .arg(by)
            .invoke_async(&mut conn)
            .await?;
        let erased = match answer {
            1 => Erased::Now,
            2 => Erased::Before,
            _ => Erased::Unknown,
        };
        if erased == Erased::Now {
            self.replicated(&mut conn).await?;
        }
        Ok(erased)
    }

    /// When the tenant's `what` was erased (ms), if it was.
    pub async fn erased_at(
        &self,
        tenant: &TenantId,
        what: PersonalRef,
    ) -> Result<Option<i64>, StoreError> {
        let mut conn = self.conn();
        Ok(redis::cmd("HGET")
            .arg(keys::tenant_erased(tenant))
            .arg(what.key())
            .query_async(&mut conn)
            .await?)
    }

    /// Keys and bytes the tenant's live orders hold in Redis (their
    /// snapshots, command ids and refusals; tombstones counted apart), for
    /// the end-of-life report and its test. Walks every order key: a tool,
    /// not a hot path.
    pub async fn live_footprint(&self, orders: &[OrderId]) -> Result<Footprint, StoreError> {
        let mut conn = self.conn();
        let mut out = Footprint::default();
        for chunk in orders.chunks(500) {
            let mut pipe = redis::pipe();
            for order in chunk {
                for key in [
                    keys::order(order),
                    keys::command_ids(order),
                    keys::refusals(order),
                ] {
                    pipe.cmd("MEMORY").arg("USAGE").arg(key);
                }
                pipe.cmd("HEXISTS").arg(keys::order(order)).arg("archived");
            }
            let answers: Vec<Option<u64>> = pipe.query_async(&mut conn).await?;
            for per_order in answers.chunks(4) {
                let tombstone = per_order[3] == Some(1);
                let bytes: u64 = per_order[..3].iter().flatten().sum();
                let present = per_order[..3].iter().flatten().count() as u64;
                if tombstone {
                    out.tombstones += 1;
                    out.tombstone_bytes += bytes;
                } else {
                    out.keys += present;
                    out.bytes += bytes;
                }
            }
        }
        Ok(out)
    }
}

/// What a set of orders holds in the live store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Keys of orders still live.
    pub keys: u64,
    /// Their bytes (Redis `MEMORY USAGE`).
    pub bytes: u64,
    /// Orders of which only the tombstone is left.
    pub tombstones: u64,
    /// The tombstones' bytes.
    pub tombstone_bytes: u64,
}
