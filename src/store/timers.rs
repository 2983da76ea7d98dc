//! The timer set [`keys::TIMERS`]: every order with a pending timer, scored
//! by its earliest due time (ms). The save script keeps it in step with the
//! snapshot (adds or moves the order, removes it when no timer is left); the
//! timer sweep reads it to wake orders that have no live actor.

use orderd_core::OrderId;

use super::{keys, RedisStore, StoreError};

impl RedisStore {
    /// Order ids whose earliest timer is due at or before `now_ms`, at most
    /// `limit`, the longest overdue first.
    pub async fn due_timers(&self, now_ms: i64, limit: usize) -> Result<Vec<OrderId>, StoreError> {
        let mut conn = self.conn();
        let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(keys::TIMERS)
            .arg("-inf")
            .arg(now_ms)
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await?;
        Ok(ids.iter().filter_map(|s| OrderId::parse(s).ok()).collect())
    }
}
