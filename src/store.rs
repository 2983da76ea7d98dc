//! Snapshots in Redis: one MessagePack snapshot per order, written by a single
//! Lua script that compares-and-sets its version AND updates the query
//! indexes in the same atomic step.
//!
//! Keys:
//! - `orderd:order:<orderId>`: hash `{v: version, snap: msgpack Snapshot}`;
//! - `orderd:idx:<tenant>:state:<STATE>`: sorted set of order ids by createdAt;
//! - `orderd:idx:<tenant>:coid:<clientOrderId>`: sorted set of order ids by createdAt;
//! - the indexes of [`crate::indexes`] (creation time, sub-state, indexed
//!   custom attributes), whose keys the hash remembers in its `idx` field so
//!   the next write can remove the entries that no longer hold;
//! - `orderd:timers`: sorted set of order ids by their earliest due timer;
//! - `orderd:contact:<id>`, `orderd:location:<id>`: personal data, apart;
//! - tenant configurations, versioned: see [`crate::config_store`].
//!
//! Invariant: a write whose expected version is not the stored one fails with
//! [`StoreError::StaleVersion`] and changes nothing. That is what fences two
//! orderd instances that both hold the same order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};

use orderd_core::{CommandId, OrderId, OrderState, Personal, TenantConfig, TenantId};

use crate::outbox::OutboxMsg;
use crate::settings::RedisSettings;
use orderd_core::Order;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis could not be reached or answered with an error: passing.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Another writer moved the order on: reload and decide again.
    #[error("stale snapshot version for order {order}: expected {expected}, found {found}")]
    StaleVersion {
        /// The order.
        order: OrderId,
        /// The version this writer read.
        expected: u64,
        /// The version in Redis.
        found: u64,
    },
    /// A stored value does not decode.
    #[error("stored value under {key} does not decode: {source}")]
    Corrupt {
        /// The key.
        key: String,
        /// Why.
        source: rmp_serde::decode::Error,
    },
    /// An order's command ids hold something that is not a command id.
    #[error("the command ids under {0} do not decode")]
    CorruptIds(String),
    /// A value does not encode (a bug).
    #[error("cannot encode value: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// A query cursor that this store did not hand out.
    #[error("invalid cursor")]
    BadCursor,
    /// The order's snapshot was not loaded (a bug in the caller).
    #[error("snapshot not loaded")]
    NotLoaded,
    /// Redis runs without the append-only file.
    #[error("redis must run with appendonly yes (found appendonly {0})")]
    NoAppendOnly(String),
    /// The tenant's configuration kept changing while an order's index
    /// entries were computed: passing.
    #[error("the configuration of tenant {0} kept changing during a write")]
    ConfigChanging(TenantId),
}

impl StoreError {
    /// Worth retrying later (Redis unreachable or slow).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Redis(_) | StoreError::ConfigChanging(_))
    }
}

/// One order's persisted state: the order, the messages it still owes NATS,
/// and the version its compare-and-set is on.
///
/// The order's applied command ids are not written with the rest: a busy
/// order would re-encode its whole history with every write. They are
/// appended to a key of their own ([`command_ids_key`]) by the same atomic
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
        }
    }
}

/// What the order actor needs from storage. Small, so an actor can be tested
/// with an in-memory store; [`RedisStore`] is the real one.
pub trait SnapshotStore: Send + Sync + 'static {
    /// The order's snapshot, if it was ever written.
    fn load(&self, order: OrderId) -> BoxFuture<'_, Result<Option<Snapshot>, StoreError>>;

    /// Writes `snapshot` if the stored version is `snapshot.version - 1`
    /// (0: nothing stored), updating the indexes; `previous_state` is the
    /// state of the snapshot being replaced, `None` when there is none. The
    /// same write stores the snapshot's new command ids and personal data,
    /// and on success clears them from it.
    fn save<'a>(
        &'a self,
        snapshot: &'a mut Snapshot,
        previous_state: Option<OrderState>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The stored version of the order's snapshot (0: none), to check that
    /// a refusal was decided on the latest state.
    fn version(&self, order: OrderId) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// The tenant's configuration; the default when it has none.
    fn tenant_config<'a>(
        &'a self,
        tenant: &'a TenantId,
    ) -> BoxFuture<'a, Result<TenantConfig, StoreError>>;

    /// One version of the tenant's configuration, the one an order was
    /// created under (shared: versions never change, so a store may cache
    /// them). Stores without versions answer the current one.
    fn tenant_config_at<'a>(
        &'a self,
        tenant: &'a TenantId,
        _version: u64,
    ) -> BoxFuture<'a, Result<Arc<TenantConfig>, StoreError>> {
        Box::pin(async move { self.tenant_config(tenant).await.map(Arc::new) })
    }
}

const TIMERS_KEY: &str = "orderd:timers";

/// The key of an order's snapshot hash.
pub fn order_key(order: &OrderId) -> String {
    format!("orderd:order:{order}")
}

/// The key of an order's applied command ids: each followed by a newline (a
/// command id never holds whitespace), appended by every write.
pub fn command_ids_key(order: &OrderId) -> String {
    format!("orderd:order:{order}:cmds")
}

/// The key of a tenant's state index.
pub fn state_index_key(tenant: &TenantId, state: OrderState) -> String {
    format!("orderd:idx:{tenant}:state:{}", state.as_str())
}

/// The key of a tenant's client order id index.
pub fn client_order_index_key(tenant: &TenantId, client_order_id: &str) -> String {
    format!("orderd:idx:{tenant}:coid:{client_order_id}")
}

/// The key of a stored contact.
pub fn contact_key(id: impl std::fmt::Display) -> String {
    format!("orderd:contact:{id}")
}

/// The key of a stored location.
pub fn location_key(id: impl std::fmt::Display) -> String {
    format!("orderd:location:{id}")
}

/// The compare-and-set write with its index updates, in one atomic step.
///
/// KEYS: 1 order hash, 2 new state index, 3 old state index, 4 client order
/// id index, 5 timers, 6 the tenant's current configuration pointer, 7 the
/// order's command ids.
/// ARGV: 1 expected version, 2 new version, 3 snapshot ('' to rewrite only
/// the indexes of the stored snapshot), 4 order id, 5 createdAt score, 6 "1"
/// when there is an old state, 7 "1" when the order has a client order id,
/// 8 earliest timer due (ms) or "", 9 the configuration version the entries
/// were computed with, 10 command ids to append (each followed by a
/// newline; '' for none), 11 the number n of personal data items, then n
/// pairs of (contact or location key, value) to set, then pairs of (index
/// key, score): the order's other
/// index entries ([`crate::indexes`]). Entries of the previous write (the
/// `idx` field) that are not among them are removed.
///
/// Returns `{1, version}` when written, `{0, stored version}` when the
/// order moved on, `{2, current configuration version}` when the entries
/// were computed with a version that is no longer current (compute them
/// again with that one). The index keys are passed as arguments, not KEYS:
/// fine on a single Redis, not on a cluster (where every key would need one
/// hash slot).
const SAVE_SCRIPT: &str = r"
local cur = redis.call('HGET', KEYS[1], 'v')
if not cur then cur = '0' end
if cur ~= ARGV[1] then return {0, cur} end
local config = redis.call('GET', KEYS[6])
if not config then config = '1' end
if config ~= ARGV[9] then return {2, config} end
local personal = 12 + 2 * tonumber(ARGV[11])
local keep = {}
local list = {}
for i = personal, #ARGV, 2 do
  keep[ARGV[i]] = true
  list[#list + 1] = ARGV[i]
  redis.call('ZADD', ARGV[i], ARGV[i + 1], ARGV[4])
end
local old = redis.call('HGET', KEYS[1], 'idx')
if old then
  for k in string.gmatch(old, '[^\n]+') do
    if not keep[k] then redis.call('ZREM', k, ARGV[4]) end
  end
end
if ARGV[3] ~= '' then
  for i = 12, personal - 1, 2 do redis.call('SET', ARGV[i], ARGV[i + 1]) end
  if ARGV[10] ~= '' then redis.call('APPEND', KEYS[7], ARGV[10]) end
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

/// A page of order ids, oldest first, and the cursor of the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The order ids.
    pub ids: Vec<OrderId>,
    /// Pass it back to get the next page; `None` on the last page.
    pub next: Option<String>,
}

/// The Redis [`SnapshotStore`], plus the reads of the query endpoint.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    save_script: redis::Script,
    versions: Arc<crate::config_store::ConfigVersions>,
    /// The current configuration version last seen per tenant: the guess a
    /// write computes its index entries with (the save script checks it).
    current: Arc<std::sync::Mutex<HashMap<TenantId, u64>>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisStore")
    }
}

impl RedisStore {
    /// Connects, and checks that Redis keeps an append-only file when asked to.
    pub async fn connect(settings: &RedisSettings) -> Result<Self, StoreError> {
        let client = redis::Client::open(settings.url.expose())?;
        let timeout = Duration::from_millis(settings.response_timeout_ms);
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let conn = client.get_connection_manager_with_config(config).await?;
        let store = Self {
            conn,
            save_script: redis::Script::new(SAVE_SCRIPT),
            versions: Arc::default(),
            current: Arc::default(),
        };
        if settings.require_appendonly {
            store.check_appendonly().await?;
        }
        Ok(store)
    }

    async fn check_appendonly(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        match redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendonly")
            .query_async::<Vec<String>>(&mut conn)
            .await
        {
            Ok(pair) => match pair.get(1).map(String::as_str) {
                Some("yes") => {
                    self.check_fsync().await;
                    Ok(())
                }
                other => Err(StoreError::NoAppendOnly(
                    other.unwrap_or("unknown").to_owned(),
                )),
            },
            // Managed Redis often disables CONFIG: we cannot check, so say so.
            Err(e) => {
                tracing::warn!(error = %e, "cannot check that redis runs with appendonly yes");
                Ok(())
            }
        }
    }

    /// Says what a host crash of Redis can lose under its fsync policy
    /// (see docs/runtime.md).
    async fn check_fsync(&self) {
        let mut conn = self.conn.clone();
        let policy = redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendfsync")
            .query_async::<Vec<String>>(&mut conn)
            .await
            .ok()
            .and_then(|pair| pair.get(1).cloned())
            .unwrap_or_default();
        if policy != "always" {
            tracing::warn!(
                appendfsync = %policy,
                "redis does not fsync every write: a crash of the redis host can lose the last \
                 second of snapshots of commands already acknowledged; use appendfsync always \
                 where that matters"
            );
        }
    }

    /// Answers PING.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok(())
    }

    /// Publishes a tenant configuration as its next version, unchecked
    /// (for tests and tools; clients go through the configuration API).
    pub async fn put_tenant_config(
        &self,
        tenant: &TenantId,
        config: &TenantConfig,
    ) -> Result<u64, StoreError> {
        crate::config_store::publish(&self.conn, tenant, config, None)
            .await
            .map(|published| published.version)
            .map_err(|e| match e {
                crate::config_store::PublishError::Store(e) => e,
                other => StoreError::Redis(redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "publish",
                    other.to_string(),
                ))),
            })
    }

    /// The connection, for the modules that keep their own keys
    /// (configuration versions, queries).
    pub fn connection(&self) -> &ConnectionManager {
        &self.conn
    }

    /// The cache of configuration versions this store reads through.
    pub fn config_versions(&self) -> &crate::config_store::ConfigVersions {
        &self.versions
    }

    /// Loads several snapshots in one round trip, for reading; missing ones
    /// are skipped. Their orders carry no applied command ids (those are
    /// loaded by [`SnapshotStore::load`], the path to a write).
    pub async fn load_many(&self, ids: &[OrderId]) -> Result<Vec<Snapshot>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HGET").arg(order_key(id)).arg("snap");
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

    /// A page of a tenant's orders in `state`, oldest first.
    pub async fn orders_in_state(
        &self,
        tenant: &TenantId,
        state: OrderState,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.page(
            &state_index_key(tenant, state),
            f64::MIN,
            f64::MAX,
            cursor,
            limit,
        )
        .await
    }

    /// A page of a tenant's orders with this client order id, oldest first.
    pub async fn orders_with_client_order_id(
        &self,
        tenant: &TenantId,
        client_order_id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.page(
            &client_order_index_key(tenant, client_order_id),
            f64::MIN,
            f64::MAX,
            cursor,
            limit,
        )
        .await
    }

    /// Keyset pagination over the members of a sorted set scored from `min`
    /// to `max` (inclusive; `f64::MIN`/`f64::MAX` for no bound). The cursor
    /// is `<score>:<skip>`: the last score returned and how many members with
    /// that score were already returned, so members added or removed
    /// elsewhere in the set do not shift the pages.
    pub async fn page(
        &self,
        key: &str,
        min: f64,
        max: f64,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let (min, skip) = match cursor {
            None => (min, 0),
            Some(c) => parse_cursor(c).ok_or(StoreError::BadCursor)?,
        };
        let mut conn = self.conn.clone();
        // One more than asked, to know whether there is a next page.
        let rows: Vec<(String, f64)> = redis::cmd("ZRANGEBYSCORE")
            .arg(key)
            .arg(score_bound(min))
            .arg(score_bound(max))
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(skip)
            .arg(limit + 1)
            .query_async(&mut conn)
            .await?;
        let more = rows.len() > limit;
        let rows = &rows[..rows.len().min(limit)];
        let ids = rows
            .iter()
            .filter_map(|(id, _)| OrderId::parse(id).ok())
            .collect();
        let next = match rows.last() {
            Some((_, last)) if more => {
                let same = rows.iter().filter(|(_, s)| s == last).count();
                let skip = if *last == min { skip + same } else { same };
                Some(format!("{last}:{skip}"))
            }
            _ => None,
        };
        Ok(Page { ids, next })
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
        if bytes.is_some() {
            for id in &snapshot.new_command_ids {
                new_ids.push_str(id.as_str());
                new_ids.push('\n');
            }
            for item in &snapshot.new_personal {
                personal.push(match item {
                    Personal::Contact(id, contact) => {
                        (contact_key(id), rmp_serde::to_vec_named(contact)?)
                    }
                    Personal::Location(id, address) => {
                        (location_key(id), rmp_serde::to_vec_named(address)?)
                    }
                });
            }
        }
        let bytes = bytes.unwrap_or_default();
        let new_state_key = state_index_key(&order.tenant, order.state);
        let old_state_key = previous_state
            .map(|s| state_index_key(&order.tenant, s))
            .unwrap_or_else(|| new_state_key.clone());
        let earliest_due = order
            .timers
            .iter()
            .map(|t| t.due.0)
            .min()
            .map(|d| d.to_string())
            .unwrap_or_default();
        let mut config_version = self.current_guess(&order.tenant, order.schema_version);
        for _ in 0..WRITE_TRIES {
            let config = self
                .versions
                .get(&self.conn, &order.tenant, config_version)
                .await?;
            let mut conn = self.conn.clone();
            let mut invocation = self.save_script.prepare_invoke();
            invocation
                .key(order_key(&order.id))
                .key(&new_state_key)
                .key(&old_state_key)
                .key(client_order_index_key(
                    &order.tenant,
                    &order.client_order_id,
                ))
                .key(TIMERS_KEY)
                .key(crate::config_store::current_key(&order.tenant))
                .key(command_ids_key(&order.id))
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
                .arg(personal.len());
            for (key, value) in &personal {
                invocation.arg(key).arg(value);
            }
            for (key, score) in crate::indexes::entries(order, &config) {
                invocation.arg(key).arg(score);
            }
            let (ok, found): (i64, String) = invocation.invoke_async(&mut conn).await?;
            match ok {
                1 => {
                    self.remember_current(&order.tenant, config_version);
                    return Ok(());
                }
                2 => {
                    config_version = found
                        .parse()
                        .unwrap_or(crate::config_store::DEFAULT_VERSION);
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
                Ok(()) => return Ok(Reindexed::Done),
                Err(e @ StoreError::StaleVersion { .. }) => moved = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(moved.unwrap_or(StoreError::NotLoaded))
    }

    /// Order ids whose earliest timer is due at or before `now_ms`.
    pub async fn due_timers(&self, now_ms: i64, limit: usize) -> Result<Vec<OrderId>, StoreError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(TIMERS_KEY)
            .arg("-inf")
            .arg(now_ms)
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await?;
        Ok(ids.iter().filter_map(|s| OrderId::parse(s).ok()).collect())
    }

    /// A stored contact or location, as stored (msgpack), for tests and tools.
    pub async fn raw(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("GET").arg(key).query_async(&mut conn).await?)
    }
}

fn score_bound(x: f64) -> String {
    if x == f64::MIN {
        "-inf".to_owned()
    } else if x == f64::MAX {
        "+inf".to_owned()
    } else {
        x.to_string()
    }
}

fn parse_cursor(c: &str) -> Option<(f64, usize)> {
    let (score, skip) = c.rsplit_once(':')?;
    let score: f64 = score.parse().ok()?;
    score.is_finite().then_some(())?;
    Some((score, skip.parse().ok()?))
}

fn decode_snapshot(id: &OrderId, bytes: &[u8]) -> Result<Snapshot, StoreError> {
    rmp_serde::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        key: order_key(id),
        source,
    })
}

impl SnapshotStore for RedisStore {
    fn load(&self, order: OrderId) -> BoxFuture<'_, Result<Option<Snapshot>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            // One transaction: the ids as of the snapshot's own version.
            let (bytes, ids): (Option<Vec<u8>>, Option<Vec<u8>>) = redis::pipe()
                .atomic()
                .cmd("HGET")
                .arg(order_key(&order))
                .arg("snap")
                .cmd("GET")
                .arg(command_ids_key(&order))
                .query_async(&mut conn)
                .await?;
            let Some(bytes) = bytes else {
                return Ok(None);
            };
            let mut snapshot = decode_snapshot(&order, &bytes)?;
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
                    .ok_or_else(|| StoreError::CorruptIds(command_ids_key(&order)))?;
                snapshot.order.applied_commands.insert(id);
            }
            Ok(Some(snapshot))
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
            Ok(())
        })
    }

    fn version(&self, order: OrderId) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let v: Option<u64> = redis::cmd("HGET")
                .arg(order_key(&order))
                .arg("v")
                .query_async(&mut conn)
                .await?;
            Ok(v.unwrap_or(0))
        })
    }

    fn tenant_config<'a>(
        &'a self,
        tenant: &'a TenantId,
    ) -> BoxFuture<'a, Result<TenantConfig, StoreError>> {
        Box::pin(async move {
            let (_, config) = crate::config_store::current(&self.conn, tenant).await?;
            Ok(config)
        })
    }

    fn tenant_config_at<'a>(
        &'a self,
        tenant: &'a TenantId,
        version: u64,
    ) -> BoxFuture<'a, Result<Arc<TenantConfig>, StoreError>> {
        Box::pin(async move { self.versions.get(&self.conn, tenant, version).await })
    }
}

/// Tenant configurations read through a short-lived cache, so a burst of
/// commands does not read Redis once per command. A changed configuration
/// takes effect within the time to live.
pub struct TenantConfigs {
    ttl: std::time::Duration,
    cache: std::sync::Mutex<HashMap<TenantId, (std::time::Instant, Arc<TenantConfig>)>>,
}

impl TenantConfigs {
    /// A cache that keeps each configuration for `ttl`.
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            cache: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The tenant's configuration, from the cache or from `store`.
    pub async fn get(
        &self,
        store: &dyn SnapshotStore,
        tenant: &TenantId,
    ) -> Result<Arc<TenantConfig>, StoreError> {
        if let Some(hit) = self.cached(tenant) {
            return Ok(hit);
        }
        let config = Arc::new(store.tenant_config(tenant).await?);
        if let Ok(mut cache) = self.cache.lock() {
            // Bounded: a cache that outgrows its use starts again.
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(tenant.clone(), (std::time::Instant::now(), config.clone()));
        }
        Ok(config)
    }

    /// The version an order was created under. Versions never change; the
    /// store keeps them (the Redis store in its `ConfigVersions` cache).
    pub async fn at(
        &self,
        store: &dyn SnapshotStore,
        tenant: &TenantId,
        version: u64,
    ) -> Result<Arc<TenantConfig>, StoreError> {
        store.tenant_config_at(tenant, version).await
    }

    fn cached(&self, tenant: &TenantId) -> Option<Arc<TenantConfig>> {
        let cache = self.cache.lock().ok()?;
        let (at, config) = cache.get(tenant)?;
        (at.elapsed() < self.ttl).then(|| config.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_parse_only_in_their_own_shape() {
        assert_eq!(parse_cursor("1700000000000:3"), Some((1.7e12, 3)));
        assert_eq!(parse_cursor("-5:0"), Some((-5.0, 0)));
        assert_eq!(parse_cursor("12.5:3"), Some((12.5, 3)));
        assert_eq!(parse_cursor("1700000000000:2"), Some((1.7e12, 2)));
        for bad in ["", "x:1", "1:", "1", "1:-2", "inf:0", "NaN:1"] {
            assert_eq!(parse_cursor(bad), None, "{bad}");
        }
    }
}
