//! The timer sets: each tenant's orders with a pending timer
//! ([`keys::tenant_timers`]), scored by the earliest due time (ms). The save
//! script keeps an order's entry in step with its snapshot (adds or moves
//! it, removes it when no timer is left); the tenant's owner sweeps its set
//! to wake orders that have no live actor. [`keys::TIMERS`], the one set of
//! every tenant kept before, is only emptied: each write removes its order
//! from it, and any instance wakes what is left in it.

use orderd_core::{OrderId, TenantId};

use super::{keys, RedisStore, StoreError};

impl RedisStore {
    /// The tenant's orders whose earliest timer is due at or before
    /// `now_ms`, at most `limit`, the longest overdue first.
    pub async fn due_timers(
        &self,
        tenant: &TenantId,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<OrderId>, StoreError> {
        self.lowest(keys::tenant_timers(tenant), &now_ms.to_string(), limit)
            .await
    }

    /// How many of the tenant's orders have their earliest timer due at or
    /// before `now_ms` (one `ZCOUNT`: cheap however large the backlog).
    pub async fn due_timer_count(&self, tenant: &TenantId, now_ms: i64) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        Ok(redis::cmd("ZCOUNT")
            .arg(keys::tenant_timers(tenant))
            .arg("-inf")
            .arg(now_ms)
            .query_async(&mut conn)
            .await?)
    }

    /// Orders of any tenant still in the set kept before per-tenant sets,
    /// due at or before `now_ms`, at most `limit`.
    pub async fn due_timers_of_before(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<OrderId>, StoreError> {
        self.lowest(keys::TIMERS.to_owned(), &now_ms.to_string(), limit)
            .await
    }
}
