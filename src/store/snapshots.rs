//! One MessagePack snapshot per order (the order and the outbox it still
//! owes NATS), written by a single Lua script that compares-and-sets its
//! version AND updates the query indexes, the timer set, the order's
//! command ids and its personal data in the same atomic step.
//!
//! Keys ([`super::keys`]): the snapshot hash [`keys::order`], the command ids
//! [`keys::command_ids`], the refused commands [`keys::refusals`], the state and client order id indexes, the indexes
//! of [`super::indexes`] (whose keys the hash remembers in its `idx` field so
//! the next write can remove the entries that no longer hold), the timer set
//! [`keys::TIMERS`], the personal data of [`super::personal`], and the
//! tenant's current configuration pointer (read, to check that the index
//! entries were computed with the current version).
//!
//! Invariant: a write whose expected version is not the stored one fails with
//! [`StoreError::StaleVersion`] and changes nothing.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use orderd_core::{CommandId, Order, OrderId, OrderState, Personal, TenantConfig, TenantId};

use super::{configs, indexes, keys, personal, RedisStore, SnapshotStore, StoreError};
use crate::outbox::OutboxMsg;

/// One order's persisted state: the order, the messages it still owes NATS,
/// and the version its compare-and-set is on.
///
/// The order's applied command ids are not written with the rest: a busy
/// order would re-encode its whole history with every write. They are
/// appended to a key of their own ([`keys::command_ids`]) by the same atomic
/// write, and put back into the order when it is loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The order.
    pub order: Order,
    /// Messages persisted but maybe not yet published.
    pub outbox: Vec<OutboxMsg>,
    /// 1 for the first write, +1 with every write.
    pub version: u64,
    /// Command ids applied since the last write: the next write appends
    /// them to the order's command ids. Never encoded.
    #[serde(skip)]
    pub new_command_ids: Vec<CommandId>,
    /// Contacts and addresses of the changes since the last write: the next
    /// write stores them apart, in the same atomic step, before the
    /// snapshot that refers to them. Never encoded.
    #[serde(skip)]
    pub new_personal: Vec<Personal>,
    /// The commands the order refused, with the answer each got (opaque
    /// text, written by the order actor). Stored apart, loaded with the
    /// snapshot. Never encoded.
    #[serde(skip)]
    pub refusals: HashMap<CommandId, String>,
    /// Refusals decided since the last write: the next write (or
    /// [`SnapshotStore::refuse`]) records them. Never encoded.
    #[serde(skip)]
    pub new_refusals: Vec<(CommandId, String)>,
    /// Its outbox is known to be published already (another instance
    /// published it and said so: [`SnapshotStore::mark_published`]), so
    /// loading it need not publish it again. Never encoded.
    #[serde(skip)]
    pub published: bool,
}

impl Snapshot {
    /// A snapshot of `order` with nothing owed yet, at `version`.
    pub fn new(order: Order, outbox: Vec<OutboxMsg>, version: u64) -> Self {
        Self {
            order,
            outbox,
            version,
            new_command_ids: Vec::new(),
            new_personal: Vec::new(),
            refusals: HashMap::new(),
            new_refusals: Vec::new(),
            published: false,
        }
    }

    /// Moves the refusals just recorded among the known ones (for a
    /// [`SnapshotStore`] once it has written them).
    pub fn refusals_recorded(&mut self) {
        for (id, answer) in self.new_refusals.drain(..) {
            self.refusals.insert(id, answer);
        }
    }
}

/// At most this many refusals are kept per order: a client that sends the
/// same order thousands of refused commands cannot grow it without bound
/// (past it, a redelivered refusal is decided again, as before refusals
/// were kept).
pub const REFUSALS_KEPT: usize = 256;

/// The new refusals as one argument: `<command id>\t<answer>\n` each (a
/// command id holds no whitespace; the answer is one line).
fn refusals_arg(refusals: &[(CommandId, String)]) -> String {
    let mut out = String::new();
    for (id, answer) in refusals {
        out.push_str(id.as_str());
        out.push('\t');
        out.push_str(&answer.replace('\n', " "));
        out.push('\n');
    }
    out
}

/// The compare-and-set write with its index updates, in one atomic step.
///
/// KEYS: 1 order hash, 2 new state index, 3 old state index, 4 client order
/// id index, 5 the tenant's timers, 6 the tenant's current configuration
/// pointer, 7 the order's command ids, 8 its refusals, 9 the tenant's owner
/// epoch, 10 the tenant's personal-data set, 11 the timers of every tenant
/// kept before (the order leaves it).
/// ARGV: 1 expected version, 2 new version, 3 snapshot ('' to rewrite only
/// the indexes of the stored snapshot), 4 order id, 5 createdAt score, 6 "1"
/// when there is an old state, 7 "1" when the order has a client order id,
/// 8 earliest timer due (ms) or "", 9 the configuration version the entries
/// were computed with, 10 command ids to append (each followed by a
/// newline; '' for none), 11 refusals to record (see [`refusals_arg`]),
/// 12 how many refusals an order keeps at most, 13 the writer's epoch ('' for
/// a write of the indexes alone, which any instance may do; see
/// [`super::fence`]), 14 the number n of personal data items, then n
/// pairs of (contact or location key, value) to set, then pairs of (index
/// key, score): the order's other
/// index entries ([`super::indexes`]). Entries of the previous write (the
/// `idx` field) that are not among them are removed.
///
/// Returns `{1, version}` when written, `{0, stored version}` when the
/// order moved on, `{2, current configuration version}` when the entries
/// were computed with a version that is no longer current (compute them
/// again with that one), `{3, stored epoch}` when fenced. An archived
/// order's tombstone holds `v` = `archived:<when>`, which no writer
/// expects: its `{0, …}` says archived (`super::archive`), with no read of
/// its own on every write. The index keys are passed as arguments, not KEYS:
/// fine on a single Redis, not on a cluster (where every key would need one
/// hash slot).
pub(super) const SAVE_SCRIPT: &str = r"
if ARGV[13] ~= '' then
  local epoch = redis.call('GET', KEYS[9]) or '0:0'
  if epoch ~= ARGV[13] then return {3, epoch} end
end
local cur = redis.call('HGET', KEYS[1], 'v')
if not cur then cur = '0' end
if cur ~= ARGV[1] then return {0, cur} end
local config = redis.call('GET', KEYS[6])
if not config then config = '1' end
if config ~= ARGV[9] then return {2, config} end
local personal = 15 + 2 * tonumber(ARGV[14])
local keep = {}
local list = {}
for i = personal, #ARGV, 2 do
  keep[ARGV[i]] = true
  list[#list + 1] = ARGV[i]
  redis.call('ZADD', ARGV[i], ARGV[i + 1], ARGV[4])
end
redis.call('ZREM', KEYS[11], ARGV[4])
local old = redis.call('HGET', KEYS[1], 'idx')
if old then
  for k in string.gmatch(old, '[^\n]+') do
    if not keep[k] then redis.call('ZREM', k, ARGV[4]) end
  end
end
if ARGV[3] ~= '' then
  for i = 15, personal - 1, 2 do
    redis.call('SET', ARGV[i], ARGV[i + 1])
    redis.call('SADD', KEYS[10], ARGV[i])
  end
  if ARGV[10] ~= '' then redis.call('APPEND', KEYS[7], ARGV[10]) end
  for line in string.gmatch(ARGV[11], '[^\n]+') do
    if redis.call('HLEN', KEYS[8]) >= tonumber(ARGV[12]) then break end
    local tab = string.find(line, '\t', 1, true)
    redis.call('HSETNX', KEYS[8], string.sub(line, 1, tab - 1), string.sub(line, tab + 1))
  end
  redis.call('HSET', KEYS[1], 'v', ARGV[2], 'snap', ARGV[3])
end
redis.call('HSET', KEYS[1], 'idx', table.concat(list, '\n'))
if ARGV[6] == '1' and KEYS[3] ~= KEYS[2] then redis.call('ZREM', KEYS[3], ARGV[4]) end
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4])
if ARGV[7] == '1' then redis.call('ZADD', KEYS[4], ARGV[5], ARGV[4]) end
if ARGV[8] ~= '' then
  redis.call('ZADD', KEYS[5], ARGV[8], ARGV[4])
else
  redis.call('ZREM', KEYS[5], ARGV[4])
end
return {1, ARGV[2]}
";

/// Adds to a tenant's personal-data set those of the given items that are
/// stored. KEYS: 1 the set, 2… the items' keys.
const HOLD_PERSONAL_SCRIPT: &str = r"
local n = 0
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then n = n + redis.call('SADD', KEYS[1], KEYS[i]) end
end
return n
";

/// Records refusals decided on the stored version of an order, which
/// fences them as the save script fences changes. Nothing is recorded for
/// an order never written (it has no version to check, and a refusal of an
/// order that does not exist repeats itself when decided again).
///
/// KEYS: 1 order hash, 2 its refusals, 3 the tenant's owner epoch. ARGV: 1
/// the version they were decided on, 2 the refusals (see [`refusals_arg`]),
/// 3 how many an order keeps at most, 4 the writer's epoch.
///
/// Returns `{1, version}` when recorded (or nothing to record), `{0, stored
/// version}` when the order moved on, `{3, stored epoch}` when another
/// owner's epoch is stored (an archived order answers `{0, archived:…}`).
const REFUSE_SCRIPT: &str = r"
local epoch = redis.call('GET', KEYS[3]) or '0:0'
if epoch ~= ARGV[4] then return {3, epoch} end
local cur = redis.call('HGET', KEYS[1], 'v')
if not cur then cur = '0' end
if cur ~= ARGV[1] then return {0, cur} end
if cur == '0' then return {1, cur} end
for line in string.gmatch(ARGV[2], '[^\n]+') do
  if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[3]) then break end
  local tab = string.find(line, '\t', 1, true)
  redis.call('HSETNX', KEYS[2], string.sub(line, 1, tab - 1), string.sub(line, tab + 1))
end
return {1, cur}
";

/// Notes that the outbox of version ARGV[1] of an order is published, if
/// that is still the stored version (a later write makes the note stale,
/// which the load sees by comparing it with the version).
///
/// KEYS: 1 order hash. ARGV: 1 the version.
const MARK_PUBLISHED_SCRIPT: &str = r"
if redis.call('HGET', KEYS[1], 'v') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'pub', ARGV[1])
end
return 1
";

/// Tries of a write whose entries were computed with a configuration
/// version that stopped being current meanwhile (and of a reindex whose
/// order moved on meanwhile).
const WRITE_TRIES: usize = 4;

/// What rewriting an order's index entries did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reindexed {
    /// The entries now follow the current configuration.
    Done,
    /// No snapshot is stored under that id.
    Missing,
}

impl RedisStore {
    /// The answer the order gave a command it refused, if it recorded one.
    pub async fn refusal(
        &self,
        order: &OrderId,
        command: &CommandId,
    ) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn();
        let answer: Option<String> = redis::cmd("HGET")
            .arg(keys::refusals(order))
            .arg(command.as_str())
            .query_async(&mut conn)
            .await?;
        Ok(answer)
    }

    /// The order's snapshot as the primary holds it, for reading: unlike
    /// [`SnapshotStore::load`] (what an actor decides on) it does not wait
    /// for the replicas, so reads go on while they are away.
    /// [`StoreError::Archived`] when only the order's tombstone is left.
    pub async fn fetch(&self, order: OrderId) -> Result<Option<Snapshot>, StoreError> {
        let mut conn = self.conn();
        // One transaction: the ids as of the snapshot's own version.
        type Loaded = (
            (Option<Vec<u8>>, Option<i64>, Option<u64>),
            Option<Vec<u8>>,
            HashMap<String, String>,
        );
        let ((bytes, archived, published), ids, refusals): Loaded = redis::pipe()
            .atomic()
            .cmd("HMGET")
            .arg(keys::order(&order))
            .arg("snap")
            .arg("archived")
            .arg("pub")
            .cmd("GET")
            .arg(keys::command_ids(&order))
            .cmd("HGETALL")
            .arg(keys::refusals(&order))
            .query_async(&mut conn)
            .await?;
        if let Some(at_ms) = archived {
            return Err(StoreError::Archived { order, at_ms });
        }
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let mut snapshot = decode_snapshot(&order, &bytes)?;
        snapshot.published = published == Some(snapshot.version);
        // Written before the ids had a key of their own: they are in the
        // order; the next write appends them to the key.
        snapshot.new_command_ids = snapshot.order.applied_commands.iter().cloned().collect();
        for id in ids.as_deref().unwrap_or_default().split(|b| *b == b'\n') {
            if id.is_empty() {
                continue;
            }
            let id = std::str::from_utf8(id)
                .ok()
                .and_then(|id| CommandId::parse(id).ok())
                .ok_or_else(|| StoreError::CorruptIds(keys::command_ids(&order)))?;
            snapshot.order.applied_commands.insert(id);
        }
        for (id, answer) in refusals {
            let id = CommandId::parse(&id)
                .map_err(|_| StoreError::CorruptIds(keys::refusals(&order)))?;
            snapshot.refusals.insert(id, answer);
        }
        Ok(Some(snapshot))
    }

    /// Loads several snapshots in one round trip, for reading; missing ones
    /// are skipped. Their orders carry no applied command ids (those are
    /// loaded by [`SnapshotStore::load`], the path to a write).
    pub async fn load_many(&self, ids: &[OrderId]) -> Result<Vec<Snapshot>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn();
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HGET").arg(keys::order(id)).arg("snap");
        }
        let raw: Vec<Option<Vec<u8>>> = pipe.query_async(&mut conn).await?;
        let mut out = Vec::with_capacity(raw.len());
        for (id, bytes) in ids.iter().zip(raw) {
            if let Some(bytes) = bytes {
                out.push(decode_snapshot(id, &bytes)?);
            }
        }
        Ok(out)
    }

    /// Writes a snapshot (`bytes`: it, encoded) with its index entries, or,
    /// with `bytes` None, only the entries of the stored snapshot `snapshot`
    /// (unchanged, its version kept). The entries follow the tenant's
    /// current configuration: computed with the version last seen current,
    /// and computed again when the script says another one is.
    async fn write(
        &self,
        snapshot: &Snapshot,
        previous_state: Option<OrderState>,
        bytes: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let order = &snapshot.order;
        let (expected, new_version) = if bytes.is_some() {
            (snapshot.version.saturating_sub(1), snapshot.version)
        } else {
            (snapshot.version, snapshot.version)
        };
        // Only a snapshot write appends the new command ids and stores the
        // new personal data.
        let mut new_ids = String::new();
        let mut personal = Vec::new();
        let mut refusals = String::new();
        if bytes.is_some() {
            refusals = refusals_arg(&snapshot.new_refusals);
            for id in &snapshot.new_command_ids {
                new_ids.push_str(id.as_str());
                new_ids.push('\n');
            }
            personal = personal::writes(&snapshot.new_personal)?;
        }
        let bytes = bytes.unwrap_or_default();
        let new_state_key = keys::state_index(&order.tenant, order.state);
        let old_state_key = previous_state
            .map(|s| keys::state_index(&order.tenant, s))
            .unwrap_or_else(|| new_state_key.clone());
        let earliest_due = order
            .timers
            .iter()
            .map(|t| t.due.0)
            .min()
            .map(|d| d.to_string())
            .unwrap_or_default();
        // A create is decided on the lane of the tenant's partition 0 (its
        // subject names no order): fenced by that partition's owner. Every
        // later write is fenced by the order's own partition's.
        let unit = match previous_state {
            None => crate::subjects::Unit::first(&order.tenant),
            Some(_) => self.fences.unit_of(&order.tenant, order.id),
        };
        let mut config_version = self.current_guess(&order.tenant, order.schema_version);
        for _ in 0..WRITE_TRIES {
            let config = self.cached_config(&order.tenant, config_version).await?;
            let mut conn = self.conn();
            let mut invocation = self.save_script.prepare_invoke();
            invocation
                .key(keys::order(&order.id))
                .key(&new_state_key)
                .key(&old_state_key)
                .key(keys::client_order_index(
                    &order.tenant,
                    &order.client_order_id,
                ))
                .key(keys::tenant_timers(&order.tenant))
                .key(keys::config_current(&order.tenant))
                .key(keys::command_ids(&order.id))
                .key(keys::refusals(&order.id))
                .key(keys::owner_epoch(&unit))
                .key(keys::tenant_personal(&order.tenant))
                .key(keys::TIMERS)
                .arg(expected)
                .arg(new_version)
                .arg(&bytes)
                .arg(order.id.to_string())
                .arg(order.created_at.0)
                .arg(if previous_state.is_some() { "1" } else { "0" })
                .arg(if order.client_order_id.is_empty() {
                    "0"
                } else {
                    "1"
                })
                .arg(&earliest_due)
                .arg(config_version)
                .arg(&new_ids)
                .arg(&refusals)
                .arg(REFUSALS_KEPT)
                .arg(if new_version == expected {
                    String::new()
                } else {
                    self.fences.epoch(&unit).to_string()
                })
                .arg(personal.len());
            for (key, value) in &personal {
                invocation.arg(key).arg(value);
            }
            for (key, score) in indexes::entries(order, &config) {
                invocation.arg(key).arg(score);
            }
            let (ok, found): (i64, String) = invocation.invoke_async(&mut conn).await?;
            match ok {
                1 => {
                    self.remember_current(&order.tenant, config_version);
                    return self.replicated(&mut conn).await;
                }
                2 => {
                    config_version = found.parse().unwrap_or(configs::DEFAULT_VERSION);
                }
                3 => return Err(self.fenced(&unit, &found)),
                _ if archived_at(&found).is_some() => {
                    return Err(StoreError::Archived {
                        order: order.id,
                        at_ms: archived_at(&found).unwrap_or_default(),
                    })
                }
                _ => {
                    return Err(StoreError::StaleVersion {
                        order: order.id,
                        expected,
                        found: found.parse().unwrap_or(0),
                    })
                }
            }
        }
        Err(StoreError::ConfigChanging(order.tenant.clone()))
    }

    fn current_guess(&self, tenant: &TenantId, fallback: u64) -> u64 {
        self.current
            .lock()
            .ok()
            .and_then(|c| c.get(tenant).copied())
            .unwrap_or(fallback)
    }

    fn remember_current(&self, tenant: &TenantId, version: u64) {
        if let Ok(mut current) = self.current.lock() {
            if current.get(tenant) == Some(&version) {
                return;
            }
            // Bounded: a map that outgrows its use starts again.
            if current.len() >= 10_000 {
                current.clear();
            }
            current.insert(tenant.clone(), version);
        }
    }

    /// Puts the contacts and locations `order` names (those stored) in its
    /// tenant's personal-data set: an order written before the set existed
    /// gets its items there when the backfill walks it.
    async fn hold_personal(&self, order: &orderd_core::Order) -> Result<(), StoreError> {
        let (contacts, locations) = order.personal_refs();
        let items: Vec<String> = contacts
            .iter()
            .map(keys::contact)
            .chain(locations.iter().map(keys::location))
            .collect();
        if items.is_empty() {
            return Ok(());
        }
        let hold = redis::Script::new(HOLD_PERSONAL_SCRIPT);
        let mut script = hold.prepare_invoke();
        script.key(keys::tenant_personal(&order.tenant));
        for item in &items {
            script.key(item);
        }
        let _: i64 = script.invoke_async(&mut self.conn()).await?;
        Ok(())
    }

    /// Rewrites the index entries of one stored order so they follow the
    /// tenant's current configuration, without touching its snapshot: a
    /// compare-and-set on the snapshot's version, read again and retried
    /// when an actor wrote the order meanwhile. Used by the index backfill.
    pub async fn reindex(&self, order: OrderId) -> Result<Reindexed, StoreError> {
        let mut moved = None;
        for _ in 0..WRITE_TRIES {
            // The snapshot alone: its command ids play no part in the indexes.
            let Some(snapshot) = self.load_many(&[order]).await?.pop() else {
                return Ok(Reindexed::Missing);
            };
            let state = snapshot.order.state;
            match self.write(&snapshot, Some(state), None).await {
                Ok(()) => {
                    self.hold_personal(&snapshot.order).await?;
                    return Ok(Reindexed::Done);
                }
                Err(e @ StoreError::StaleVersion { .. }) => moved = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(moved.unwrap_or(StoreError::NotLoaded))
    }
}

/// When the order was archived, if `version` is an archived order's
/// tombstone (`archived:<ms>`; see `super::archive`).
pub(super) fn archived_at(version: &str) -> Option<i64> {
    version.strip_prefix("archived:")?.parse().ok()
}

fn decode_snapshot(id: &OrderId, bytes: &[u8]) -> Result<Snapshot, StoreError> {
    rmp_serde::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        key: keys::order(id),
        source,
    })
}

impl SnapshotStore for RedisStore {
    fn load(&self, order: OrderId) -> BoxFuture<'_, Result<Option<Snapshot>, StoreError>> {
        Box::pin(async move {
            let snapshot = self.fetch(order).await?;
            if snapshot.is_some() {
                // What is decided on must be on the replicas too: a write
                // whose wait failed is still on the primary, and its
                // command, coming again, is answered from it as a duplicate.
                self.replicated(&mut self.conn()).await?;
            }
            Ok(snapshot)
        })
    }

    fn save<'a>(
        &'a self,
        snapshot: &'a mut Snapshot,
        previous_state: Option<OrderState>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            // The command ids have a key of their own: encode the order
            // without them (set aside and put back, not copied).
            let ids = std::mem::take(&mut snapshot.order.applied_commands);
            let bytes = rmp_serde::to_vec_named(&*snapshot);
            snapshot.order.applied_commands = ids;
            self.write(snapshot, previous_state, Some(bytes?)).await?;
            snapshot.new_command_ids.clear();
            snapshot.new_personal.clear();
            snapshot.refusals_recorded();
            Ok(())
        })
    }

    fn refuse<'a>(&'a self, snapshot: &'a mut Snapshot) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let order = snapshot.order.id;
            if snapshot.version == 0 {
                // Never written: nothing to record, and nobody's write to
                // fence (a refused create is decided on the tenant's
                // partition 0, a command on an order not found on the
                // order's own partition).
                snapshot.refusals_recorded();
                return Ok(());
            }
            let mut conn = self.conn();
            let unit = self.fences.unit_of(&snapshot.order.tenant, order);
            let (ok, found): (i64, String) = redis::Script::new(REFUSE_SCRIPT)
                .key(keys::order(&order))
                .key(keys::refusals(&order))
                .key(keys::owner_epoch(&unit))
                .arg(snapshot.version)
                .arg(refusals_arg(&snapshot.new_refusals))
                .arg(REFUSALS_KEPT)
                .arg(self.fences.epoch(&unit).to_string())
                .invoke_async(&mut conn)
                .await?;
            if ok == 3 {
                return Err(self.fenced(&unit, &found));
            }
            if let Some(at_ms) = archived_at(&found) {
                return Err(StoreError::Archived { order, at_ms });
            }
            if ok != 1 {
                return Err(StoreError::StaleVersion {
                    order,
                    expected: snapshot.version,
                    found: found.parse().unwrap_or(0),
                });
            }
            self.replicated(&mut conn).await?;
            snapshot.refusals_recorded();
            Ok(())
        })
    }

    fn mark_published(
        &self,
        order: OrderId,
        version: u64,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let _: i64 = redis::Script::new(MARK_PUBLISHED_SCRIPT)
                .key(keys::order(&order))
                .arg(version)
                .invoke_async(&mut self.conn())
                .await?;
            Ok(())
        })
    }

    fn tenant_config<'a>(
        &'a self,
        tenant: &'a TenantId,
    ) -> BoxFuture<'a, Result<TenantConfig, StoreError>> {
        Box::pin(async move {
            let (_, config) = self.current_config(tenant).await?;
            Ok(config)
        })
    }

    fn tenant_config_at<'a>(
        &'a self,
        tenant: &'a TenantId,
        version: u64,
    ) -> BoxFuture<'a, Result<Arc<TenantConfig>, StoreError>> {
        Box::pin(async move { self.cached_config(tenant, version).await })
    }
}
