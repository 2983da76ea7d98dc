//! The owner's fence: a tenant's orders are written only by the instance
//! that owns the tenant now, whatever the timing.
//!
//! Each claim of a tenant (`crate::bus::ownership`) has an epoch, the
//! owners key's revision, which grows with every claim. The new owner
//! raises the tenant's epoch key to it before it pulls a message
//! ([`RedisStore::fence`]), and every write of an order of the tenant
//! carries the epoch of the instance that writes it: the save and refusal
//! scripts refuse it, changing nothing, unless it is the stored one. An
//! owner that stalled past its lease (a VM pause, a stopped process, a
//! starved runtime) and wakes after another instance took the tenant over
//! can decide no more: its writes fail with [`StoreError::Fenced`].
//!
//! An instance that does not own the tenant writes with epoch 0, which
//! passes only where no owner ever claimed it (a store used without
//! ownership, as in the store's own tests).
//!
//! Invariant: the stored epoch never goes down (the raise is one script).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use orderd_core::TenantId;

use super::{keys, RedisStore, StoreError};

/// The epochs this instance writes with, per tenant it owns.
#[derive(Debug, Clone, Default)]
pub(super) struct Fences(Arc<RwLock<HashMap<TenantId, u64>>>);

impl Fences {
    /// The epoch to write `tenant`'s orders with: its claim's, or 0.
    pub(super) fn epoch(&self, tenant: &TenantId) -> u64 {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
            .copied()
            .unwrap_or(0)
    }

    fn set(&self, tenant: &TenantId, epoch: Option<u64>) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        match epoch {
            Some(e) => map.insert(tenant.clone(), e),
            None => map.remove(tenant),
        };
    }
}

/// Raises the epoch key to ARGV[1], never lowers it.
///
/// KEYS: 1 the tenant's epoch. ARGV: 1 the new epoch.
/// Returns 1 when the key now holds it, 0 when it held a later one.
const RAISE_SCRIPT: &str = r"
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local new = tonumber(ARGV[1])
if cur > new then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
";

impl RedisStore {
    /// Makes `epoch` the one `tenant`'s orders are written with, from now
    /// on and by this instance only. `Ok(false)`, changing nothing, when a
    /// later claim raised it already (this one lost). Waits for the
    /// replicas like any write (`redis.wait_replicas`).
    pub async fn fence(&self, tenant: &TenantId, epoch: u64) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let raised: i64 = redis::Script::new(RAISE_SCRIPT)
            .key(keys::owner_epoch(tenant))
            .arg(epoch)
            .invoke_async(&mut conn)
            .await?;
        if raised != 1 {
            return Ok(false);
        }
        self.replicated(&mut conn).await?;
        self.fences.set(tenant, Some(epoch));
        Ok(true)
    }

    /// This instance stops writing `tenant`'s orders as their owner: its
    /// writes carry epoch 0 from now on.
    pub fn unfence(&self, tenant: &TenantId) {
        self.fences.set(tenant, None);
    }

    /// The epoch stored for `tenant` (0: never claimed).
    pub async fn stored_epoch(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let v: Option<u64> = redis::cmd("GET")
            .arg(keys::owner_epoch(tenant))
            .query_async(&mut self.conn())
            .await?;
        Ok(v.unwrap_or(0))
    }
}
