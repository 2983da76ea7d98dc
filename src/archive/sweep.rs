//! The archive sweep: on each tenant's owner, the CLOSED orders whose
//! tenant's retention (`retentionMs`) has passed are archived, then removed
//! from the live store.
//!
//! One order, step by step: read its snapshot (CLOSED, last changed before
//! the cutoff), read its history from the events stream, store its record
//! in the archive stream and wait for JetStream's acknowledgement, then
//! remove it from Redis as the version the record holds (the store's
//! compare-and-set, fenced by the tenant's epoch). An order that changed
//! meanwhile stays live and is archived at a later sweep; an instance that
//! no longer owns the tenant is fenced and archives nothing of it.
//!
//! Bounded: at most `archive.per_sec` orders a second per instance, so a
//! retention set on a tenant with years of closed orders is worked off at
//! a steady pace; each sweep says how many it archived and how many are
//! left past their retention.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap;
use futures::StreamExt;
use tokio::sync::watch;

use orderd_core::{OrderState, TenantId, Timestamp};

use super::record::ArchiveRecord;
use ractor::ActorRef;

use crate::bus::ownership::{Decided, Ownership};
use crate::bus::BusError;
use crate::order::RouterMsg;
use crate::settings::Settings;
use crate::store::{RedisStore, SnapshotStore, StoreError};
use crate::{headers, subjects, telemetry};

/// Orders archived at once (each waits on round trips to Redis and NATS).
const AT_ONCE: usize = 16;

/// What the sweep reads the time from (Unix milliseconds).
pub type Now = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Why one order was not archived.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Redis.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// NATS.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// What one pass over a tenant did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Orders archived and removed from the live store.
    pub archived: u64,
    /// Orders that changed since they were read (archived at a later pass).
    pub moved: u64,
}

/// Everything the sweep needs.
#[derive(Clone)]
pub struct Sweeper {
    /// The live store.
    pub store: RedisStore,
    /// Where the records go.
    pub js: jetstream::Context,
    /// The tenants this instance decides (only those are swept here).
    pub ownership: Ownership,
    /// The settings (`archive.*`).
    pub settings: Arc<Settings>,
    /// The clock.
    pub now: Now,
    /// The order actors: an archived order's live actor is stopped.
    pub router: ActorRef<RouterMsg>,
}

impl Sweeper {
    /// Runs until `stop`: every `archive.sweep_every_ms`, archives up to
    /// the rate's budget of the owned tenants' orders past retention.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let every = Duration::from_millis(self.settings.archive.sweep_every_ms);
        let budget = u64::from(self.settings.archive.per_sec)
            .saturating_mul(self.settings.archive.sweep_every_ms)
            .div_ceil(1_000)
            .max(1);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut turn = 0_usize;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {}
            }
            let mut left = budget;
            turn = turn.wrapping_add(1);
            for decided in self.ownership.deciding_now(turn) {
                if left == 0 || *stop.borrow() {
                    break;
                }
                match self.tenant(&decided, left).await {
                    Ok(pass) => left = left.saturating_sub(pass.archived + pass.moved),
                    Err(e) => {
                        tracing::warn!(tenant = %decided.tenant, error = %e, "archive sweep failed; trying again at the next")
                    }
                }
            }
        }
    }

    /// Archives up to `limit` of the CLOSED orders of the tenant's
    /// partitions this instance decides (`decided`) whose retention has
    /// passed (none when the tenant sets no retention).
    pub async fn tenant(&self, decided: &Decided, limit: u64) -> Result<Pass, ArchiveError> {
        let tenant = &decided.tenant;
        let config = self.store.tenant_config(tenant).await?;
        let Some(retention) = config.retention_ms else {
            return Ok(Pass::default());
        };
        let now = (self.now)().0;
        let cutoff = now.saturating_sub(i64::try_from(retention).unwrap_or(i64::MAX));
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let due: Vec<_> = self
            .store
            .closed_before(tenant, cutoff, decided.widen(limit))
            .await?
            .into_iter()
            .filter(|id| decided.holds(*id))
            .take(limit)
            .collect();
        let mut pass = Pass::default();
        // A few at once: each waits on Redis and JetStream round trips.
        let mut results = futures::stream::iter(due)
            .map(|order_id| self.one(tenant, order_id, cutoff, now))
            .buffer_unordered(AT_ONCE);
        let mut failed = None;
        while let Some(result) = results.next().await {
            match result {
                Ok(true) => pass.archived += 1,
                Ok(false) => pass.moved += 1,
                Err(ArchiveError::Store(StoreError::Fenced { .. })) => {
                    tracing::info!(tenant = %tenant, "another instance owns the tenant now: its archive sweep is theirs");
                    break;
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        drop(results);
        if let Some(e) = failed {
            telemetry::archived(pass.archived);
            return Err(e);
        }
        if pass.archived > 0 {
            telemetry::archived(pass.archived);
            let left = self.store.closed_count_before(tenant, cutoff).await?;
            tracing::info!(
                tenant = %tenant,
                archived = pass.archived,
                left_past_retention = left,
                "archived closed orders past their retention"
            );
        }
        Ok(pass)
    }

    /// Archives one order; false when it is not (or no longer) due: it
    /// changed since, or it is gone.
    async fn one(
        &self,
        tenant: &TenantId,
        order_id: orderd_core::OrderId,
        cutoff: i64,
        now: i64,
    ) -> Result<bool, ArchiveError> {
        let snapshot = match self.store.fetch(order_id).await {
            Ok(Some(s)) => s,
            Ok(None) | Err(StoreError::Archived { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let order = &snapshot.order;
        if order.state != OrderState::Closed
            || order.updated_at.0 > cutoff
            || &order.tenant != tenant
        {
            return Ok(false);
        }
        let history = super::read_events(&self.js, tenant, order_id).await?;
        let mut record = ArchiveRecord::new(order, snapshot.version, history, now);
        // Room for the headers within the stream's largest message.
        let max = usize::try_from(self.settings.nats.max_msg_bytes).unwrap_or(1 << 20);
        let body = record.encode_within(max.saturating_sub(1_024));
        let mut h = HeaderMap::new();
        h.insert(headers::NATS_MSG_ID, record.msg_id().as_str());
        h.insert(headers::CONTENT_TYPE, "application/json");
        let failed = |why: String| BusError::Stream {
            stream: subjects::STREAM_ARCHIVE,
            why,
        };
        self.js
            .publish_with_headers(subjects::archive_of_order(tenant, order_id), h, body.into())
            .await
            .map_err(|e| failed(e.to_string()))?
            .await
            .map_err(|e| failed(e.to_string()))?;
        let keep = self.settings.archive.max_age_days.saturating_mul(24 * 3600);
        match self
            .store
            .remove_archived(order, snapshot.version, now, keep)
            .await
        {
            Ok(()) => {
                let _ = self.router.cast(RouterMsg::Forget { order_id });
                Ok(true)
            }
            // Changed after it was read, or archived by a sweep before.
            Err(StoreError::StaleVersion { .. } | StoreError::Archived { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
