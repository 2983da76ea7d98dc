//! The owner's fence: a unit's orders (a tenant's, or one partition of
//! them) are written only by the instance that owns the unit now,
//! whatever the timing.
//!
//! Each claim of a unit (`crate::bus::ownership`) has an [`Epoch`]: the
//! owners bucket's generation (when the bucket was created) and the claim's
//! revision in it, which grows with every claim. The new owner raises the
//! unit's epoch key to its own before it pulls a message
//! ([`RedisStore::fence`]), and every write of an order of the unit
//! carries the epoch of the instance that writes it: the save and refusal
//! scripts refuse it, changing nothing, unless it is the stored one. An
//! owner that stalled past its lease (a VM pause, a stopped process, a
//! starved runtime) and wakes after another instance took the tenant over
//! can decide no more: its writes fail with [`StoreError::Fenced`].
//!
//! The generation comes first in the order, so a bucket made anew (NATS
//! wiped, or a new cluster, with the same Redis), whose revisions start
//! again at 1, still fences what the old one claimed.
//!
//! An instance that does not own the tenant writes with the zero epoch,
//! which passes only where no owner ever claimed it (a store used without
//! ownership, as in the store's own tests).
//!
//! Invariant: the stored epoch never goes down (the raise is one script).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use orderd_core::{OrderId, TenantId};

use super::{keys, RedisStore, StoreError};
use crate::subjects::Unit;

/// A claim's place in the order of claims: the owners bucket's generation,
/// then the claim's revision in it. Stored as `<generation>:<revision>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Epoch {
    /// When the owners bucket was created (ms since the Unix epoch).
    pub generation: u64,
    /// The claim's revision in the bucket.
    pub revision: u64,
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.generation, self.revision)
    }
}

impl Epoch {
    /// Reads a stored epoch; anything else is the zero epoch.
    fn parse(text: &str) -> Self {
        let mut parts = text.split(':').map(|p| p.parse().unwrap_or(0));
        Self {
            generation: parts.next().unwrap_or(0),
            revision: parts.next().unwrap_or(0),
        }
    }
}

/// The epochs this instance writes with, per unit it owns, and how many
/// partitions a tenant's orders are spread over.
#[derive(Debug, Clone)]
pub(super) struct Fences {
    held: Arc<RwLock<HashMap<Unit, Epoch>>>,
    parts: u16,
}

impl Default for Fences {
    fn default() -> Self {
        Self {
            held: Arc::default(),
            parts: 1,
        }
    }
}

impl Fences {
    /// The unit `order` of `tenant` belongs to.
    pub(super) fn unit_of(&self, tenant: &TenantId, order: OrderId) -> Unit {
        Unit::of(tenant, order, self.parts)
    }

    /// The epoch to write `unit`'s orders with: its claim's, or zero.
    pub(super) fn epoch(&self, unit: &Unit) -> Epoch {
        self.held
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(unit)
            .copied()
            .unwrap_or_default()
    }

    fn set(&self, unit: &Unit, epoch: Option<Epoch>) {
        let mut map = self.held.write().unwrap_or_else(|e| e.into_inner());
        match epoch {
            Some(e) => map.insert(unit.clone(), e),
            None => map.remove(unit),
        };
    }
}

/// Raises the epoch key to ARGV[1]:ARGV[2], never lowers it (compared by
/// generation, then revision).
///
/// KEYS: 1 the tenant's epoch. ARGV: 1 the generation, 2 the revision.
/// Returns 1 when the key now holds it, 0 when it held a later one.
const RAISE_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1]) or '0:0'
local sep = string.find(cur, ':', 1, true)
local g, r = 0, 0
if sep then
  g = tonumber(string.sub(cur, 1, sep - 1)) or 0
  r = tonumber(string.sub(cur, sep + 1)) or 0
end
local ng, nr = tonumber(ARGV[1]), tonumber(ARGV[2])
if g > ng or (g == ng and r > nr) then return 0 end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2])
return 1
";

impl RedisStore {
    /// This store writes for tenants whose orders are spread over `parts`
    /// partitions (`ownership.partitions`), each fenced on its own.
    #[must_use]
    pub fn partitioned(mut self, parts: u16) -> Self {
        self.fences.parts = parts.max(1);
        self
    }

    /// Makes `epoch` the one `unit`'s orders are written with, from now
    /// on and by this instance only. `Ok(false)`, changing nothing, when a
    /// later claim raised it already (this one lost). Waits for the
    /// replicas like any write (`redis.wait_replicas`).
    pub async fn fence(&self, unit: &Unit, epoch: Epoch) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let raised: i64 = redis::Script::new(RAISE_SCRIPT)
            .key(keys::owner_epoch(unit))
            .arg(epoch.generation)
            .arg(epoch.revision)
            .invoke_async(&mut conn)
            .await?;
        if raised != 1 {
            return Ok(false);
        }
        self.replicated(&mut conn).await?;
        self.fences.set(unit, Some(epoch));
        Ok(true)
    }

    /// This instance stops writing `unit`'s orders as their owner: its
    /// writes carry the zero epoch from now on.
    pub fn unfence(&self, unit: &Unit) {
        self.fences.set(unit, None);
    }

    /// The epoch stored for `unit` (zero: never claimed).
    pub async fn stored_epoch(&self, unit: &Unit) -> Result<Epoch, StoreError> {
        let v: Option<String> = redis::cmd("GET")
            .arg(keys::owner_epoch(unit))
            .query_async(&mut self.conn())
            .await?;
        Ok(v.map_or_else(Epoch::default, |s| Epoch::parse(&s)))
    }

    pub(super) fn fenced(&self, unit: &Unit, stored: &str) -> StoreError {
        StoreError::Fenced {
            tenant: unit.tenant.clone(),
            mine: self.fences.epoch(unit),
            stored: Epoch::parse(stored),
        }
    }
}
