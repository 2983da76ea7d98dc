//! The index backfill: when a published configuration makes a custom
//! attribute indexed (or indexes it as another type), the orders written
//! before it lack its index entries; this module writes them. The same
//! walk rewrites every order's entries once when orderd's own layout of
//! them changed ([`LAYOUT`], asked for by [`RedisStore::upgrade_layout`]
//! when an instance takes the tenant).
//!
//! How it runs, and why in the background: a tenant may have millions of
//! orders, far more than a request/reply can wait for, so the publish
//! answers at once and the backfill runs after it, here. The publish marks
//! the attributes in [`keys::backfill`] (and the tenant in
//! [`keys::BACKFILLS`]) in the same Lua script that makes the version
//! current, so a crash between the two cannot lose the backfill. Until the
//! backfill is done:
//! - the publish reply, and `config.get`, list the attributes in
//!   `indexing`;
//! - a query that filters on one of them is refused with
//!   `ORD-503-INDEX_BUILDING` (try again later), never answered with a
//!   partial result.
//!
//! The walk: the tenant's orders, page by page ([`PAGE`] orders) over the
//! creation-time index [`keys::created_index`], each order's entries
//! rewritten by [`RedisStore::reindex`]: a compare-and-set on the snapshot's
//! version, which also checks that the configuration version the entries
//! were computed with is still current. An actor that writes the order
//! meanwhile writes its entries under the current configuration too (the
//! same check), so no interleaving leaves a wrong or missing entry. The
//! cursor is kept in the backfill hash after each page, so a restarted
//! orderd resumes where it stopped; a publish that adds attributes while a
//! walk runs starts it again from the first order. Several instances may
//! walk one tenant at once: every step is idempotent, and the first to
//! finish clears the marker.
//!
//! Progress is logged (`index backfill progress`, with the orders done and
//! the total) at most every few seconds, and once at the end.
//!
//! The walk needs nothing but Redis, so the whole task lives here: the
//! marker's reads and scripts are the private methods below, the walk
//! ([`backfill_tenant`]) and the runner ([`run`]) call them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use orderd_core::TenantId;

use super::{keys, Index, RedisStore, Reindexed, StoreError};

/// The name a walk carries, in place of attributes, when it rewrites every
/// order's entries after orderd added index entries of its own (the
/// closed-orders index, and the tenant's set of the contacts and locations
/// its orders stored): [`LAYOUT`] is the layout the entries follow now.
/// Not an attribute: never listed as one being indexed.
pub const LAYOUT_WALK: &str = "~layout-2";
/// The layout of the index entries this orderd writes.
pub const LAYOUT: u64 = 2;

/// Marks the tenant's orders for a walk when the layout it recorded is
/// older than this one (merged with any walk in progress, which starts
/// again); records the new layout.
/// KEYS: 1 the tenant's layout, 2 the tenant's backfill hash, 3 the set of
/// tenants with a backfill, 4 the tenant's creation-time index, 5 its
/// current configuration pointer. ARGV: 1 the layout, 2 the walk's name, 3
/// the tenant.
const LAYOUT_SCRIPT: &str = r"
local have = tonumber(redis.call('GET', KEYS[1]) or '0')
if have >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
if redis.call('ZCARD', KEYS[4]) == 0 then return 0 end
local attrs = {ARGV[2]}
local old = redis.call('HGET', KEYS[2], 'attrs')
if old then
  for a in string.gmatch(old, '[^\n]+') do
    if a ~= ARGV[2] then attrs[#attrs + 1] = a end
  end
end
table.sort(attrs)
local version = redis.call('GET', KEYS[5]) or '1'
redis.call('HSET', KEYS[2], 'attrs', table.concat(attrs, '\n'), 'cursor', '', 'version', version)
redis.call('SADD', KEYS[3], ARGV[3])
return 1
";

/// Orders rewritten per page of the walk.
pub const PAGE: usize = 200;

/// How often the runner looks for backfills it was not woken for (asked
/// by another instance, or left by a crash).
const POLL: Duration = Duration::from_secs(5);

/// How often progress is logged during a walk.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Saves the walk's cursor, if the attributes are still the ones walked.
/// KEYS: 1 backfill hash; ARGV: 1 attributes, 2 cursor.
const CURSOR_SCRIPT: &str = r"
if redis.call('HGET', KEYS[1], 'attrs') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'cursor', ARGV[2])
return 1
";

/// Clears the backfill, if the attributes are still the ones walked.
/// KEYS: 1 backfill hash, 2 the set of tenants; ARGV: 1 attributes, 2 tenant.
const FINISH_SCRIPT: &str = r"
if redis.call('HGET', KEYS[1], 'attrs') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
return 1
";

/// Forgets a tenant whose backfill hash is gone (finished elsewhere).
/// KEYS: 1 backfill hash, 2 the set of tenants; ARGV: 1 tenant.
const FORGET_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SREM', KEYS[2], ARGV[1])
return 1
";

/// A backfill in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Marker {
    /// The attributes, as stored (sorted, newline-separated).
    attrs: String,
    /// Where the walk goes on; `None` from the first order.
    cursor: Option<String>,
}

impl Marker {
    /// The attributes being indexed (not the layout walk, which is none).
    fn attributes(&self) -> Vec<String> {
        self.attrs
            .split('\n')
            .filter(|a| !a.is_empty() && *a != LAYOUT_WALK)
            .map(str::to_owned)
            .collect()
    }
}

impl RedisStore {
    /// The attributes whose index is being built for the tenant's existing
    /// orders (sorted; empty when none is).
    pub async fn backfill_pending(&self, tenant: &TenantId) -> Result<Vec<String>, StoreError> {
        Ok(self
            .backfill_marker(tenant)
            .await?
            .map(|m| m.attributes())
            .unwrap_or_default())
    }

    /// Asks for a walk of the tenant's orders when their index entries
    /// follow an older layout than [`LAYOUT`] (once per tenant and layout;
    /// the walk runs in the background like an attribute's backfill). True
    /// when it asked.
    pub async fn upgrade_layout(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        let asked: i64 = redis::Script::new(LAYOUT_SCRIPT)
            .key(keys::tenant_layout(tenant))
            .key(keys::backfill(tenant))
            .key(keys::BACKFILLS)
            .key(keys::created_index(tenant))
            .key(keys::config_current(tenant))
            .arg(LAYOUT)
            .arg(LAYOUT_WALK)
            .arg(tenant.as_str())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(asked == 1)
    }

    /// The tenant's backfill in progress, if any.
    async fn backfill_marker(&self, tenant: &TenantId) -> Result<Option<Marker>, StoreError> {
        let mut conn = self.conn();
        let (attrs, cursor): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(keys::backfill(tenant))
            .arg("attrs")
            .arg("cursor")
            .query_async(&mut conn)
            .await?;
        Ok(attrs.map(|attrs| Marker {
            attrs,
            cursor: cursor.filter(|c| !c.is_empty()),
        }))
    }

    /// The tenants with a backfill in progress.
    async fn backfill_tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        let mut conn = self.conn();
        let names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::BACKFILLS)
            .query_async(&mut conn)
            .await?;
        Ok(names
            .iter()
            .filter_map(|n| TenantId::parse(n).ok())
            .collect())
    }

    /// Saves the walk's cursor; false when a publish changed the attributes
    /// meanwhile (the walk starts again).
    async fn keep_backfill_cursor(
        &self,
        tenant: &TenantId,
        marker: &Marker,
        cursor: &str,
    ) -> Result<bool, StoreError> {
        let kept: i64 = redis::Script::new(CURSOR_SCRIPT)
            .key(keys::backfill(tenant))
            .arg(&marker.attrs)
            .arg(cursor)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(kept == 1)
    }

    /// Clears the finished backfill; false when a publish changed the
    /// attributes meanwhile (the walk starts again).
    async fn finish_backfill(
        &self,
        tenant: &TenantId,
        marker: &Marker,
    ) -> Result<bool, StoreError> {
        let finished: i64 = redis::Script::new(FINISH_SCRIPT)
            .key(keys::backfill(tenant))
            .key(keys::BACKFILLS)
            .arg(&marker.attrs)
            .arg(tenant.as_str())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(finished == 1)
    }

    /// Forgets a tenant whose backfill is gone (finished elsewhere).
    async fn forget_backfill(&self, tenant: &TenantId) -> Result<(), StoreError> {
        let _: i64 = redis::Script::new(FORGET_SCRIPT)
            .key(keys::backfill(tenant))
            .key(keys::BACKFILLS)
            .arg(tenant.as_str())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }
}

/// Wakes the runner (after a publish), so it need not wait for its poll.
#[derive(Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    /// Asks the runner to look for backfills now.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// What a finished walk did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The attributes filled in.
    pub attributes: Vec<String>,
    /// Orders whose entries were rewritten.
    pub orders: usize,
}

/// Runs until `stop`: backfills every tenant in [`keys::BACKFILLS`], then
/// waits to be woken, or for its poll.
pub async fn run(store: RedisStore, wake: Wake, mut stop: watch::Receiver<bool>) {
    loop {
        match store.backfill_tenants().await {
            Ok(tenants) => {
                for tenant in tenants {
                    if *stop.borrow() {
                        return;
                    }
                    if let Err(e) = backfill_tenant(&store, &tenant, Some(&stop)).await {
                        // Left marked: the next round resumes from the cursor.
                        tracing::warn!(%tenant, error = %e, "index backfill interrupted; it will resume");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "index backfills unreadable; trying again"),
        }
        tokio::select! {
            () = wake.0.notified() => {}
            () = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Walks the tenant's orders until every one has the entries of the
/// current configuration, then clears the backfill. `Ok(None)`: nothing
/// to do, or stopped by `stop` (checked between pages, after the first;
/// the cursor is kept).
pub async fn backfill_tenant(
    store: &RedisStore,
    tenant: &TenantId,
    stop: Option<&watch::Receiver<bool>>,
) -> Result<Option<Finished>, StoreError> {
    'walk: loop {
        let Some(marker) = store.backfill_marker(tenant).await? else {
            store.forget_backfill(tenant).await?;
            return Ok(None);
        };
        let attributes = marker.attributes();
        let total = store.order_count(tenant).await?;
        tracing::info!(
            %tenant,
            attributes = ?attributes,
            total,
            resumed = marker.cursor.is_some(),
            "index backfill started"
        );
        let mut cursor = marker.cursor.clone();
        let mut done = 0usize;
        let mut logged = Instant::now();
        loop {
            let page = match store
                .page(
                    &Index::created(tenant),
                    f64::MIN,
                    f64::MAX,
                    cursor.as_deref(),
                    PAGE,
                )
                .await
            {
                Err(StoreError::BadCursor) => {
                    tracing::warn!(%tenant, "index backfill cursor unreadable; walking from the start");
                    cursor = None;
                    continue;
                }
                other => other?,
            };
            for id in &page.ids {
                match store.reindex(*id).await {
                    Ok(Reindexed::Done | Reindexed::Missing) => {}
                    // Written by its actor again and again meanwhile: each of
                    // those writes set the current configuration's entries.
                    Err(StoreError::StaleVersion { .. }) => {}
                    Err(e @ StoreError::Corrupt { .. }) => {
                        tracing::error!(%tenant, order_id = %id, error = %e, "order not backfilled");
                    }
                    Err(e) => return Err(e),
                }
            }
            done += page.ids.len();
            let Some(next) = page.next else {
                if !store.finish_backfill(tenant, &marker).await? {
                    // A publish added attributes meanwhile: walk again.
                    continue 'walk;
                }
                tracing::info!(%tenant, attributes = ?attributes, orders = done, "index backfill finished");
                return Ok(Some(Finished {
                    attributes,
                    orders: done,
                }));
            };
            if !store.keep_backfill_cursor(tenant, &marker, &next).await? {
                continue 'walk;
            }
            cursor = Some(next);
            if logged.elapsed() >= LOG_EVERY {
                logged = Instant::now();
                tracing::info!(%tenant, done, total, "index backfill progress");
            }
            // Between pages, after at least one: every walk makes progress,
            // and its cursor is kept.
            if stop.is_some_and(|s| *s.borrow()) {
                return Ok(None);
            }
        }
    }
}
