//! Wakes orders whose timers are due but which have no live actor (after a
//! restart, or passivated): the timers live in the snapshots, and each
//! tenant's timer set ([`crate::store::keys::tenant_timers`]) names its
//! orders with their earliest due time. Each instance sweeps only the
//! tenants it decides.
//!
//! Invariants:
//! - each timer fires once: firing is a command on the order
//!   (`FireTimers`), decided on its snapshot, and a fired timer leaves the
//!   snapshot in the same compare-and-set write;
//! - after downtime, a backlog of overdue timers is worked off at no more
//!   than `runtime.timer_fire_per_sec` orders a second, oldest first, so a
//!   restart does not load every overdue order at once;
//! - an order woken recently is not woken again for a few seconds, so a
//!   slow order is not piled up with wake-ups.
//!
//! Each tick also counts, per tenant it decides, the orders whose timer is
//! due and not fired yet ([`crate::telemetry::TIMERS_DUE`]; one `ZCOUNT`
//! each, only while metrics are recorded).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use ractor::ActorRef;
use tokio::sync::watch;
use tokio::time::Instant;

use orderd_core::{OrderId, TenantId};

use super::messages::{Clock, Routed, RouterMsg};
use crate::bus::ownership::{Decided, Ownership};
use crate::store::{RedisStore, StoreError};
use crate::telemetry;

/// How long a woken order is left alone before it may be woken again.
const REWAKE_AFTER: Duration = Duration::from_secs(5);

/// How many orders one sweep of `every` may wake at `per_sec` a second
/// (at least one).
pub fn budget(every: Duration, per_sec: u32) -> usize {
    let n = (u128::from(per_sec) * every.as_millis()) / 1_000;
    usize::try_from(n).unwrap_or(usize::MAX).max(1)
}

/// Runs until `stop`: every `every`, wakes at most [`budget`] orders whose
/// timers are due, of the tenants this instance decides (each tenant's
/// owner wakes its own: another instance's write would be fenced), and
/// any left in the set kept before per-tenant sets. The tenants take turns
/// at going first, so one with a backlog does not keep the others waiting.
pub async fn sweep(
    store: RedisStore,
    router: ActorRef<RouterMsg>,
    ownership: Ownership,
    clock: Clock,
    every: Duration,
    per_sec: u32,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let budget = budget(every, per_sec);
    let mut woken: HashMap<OrderId, Instant> = HashMap::new();
    let mut turn = 0_usize;
    let mut counted = HashSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        woken.retain(|_, at| now.duration_since(*at) < REWAKE_AFTER);
        let due_at = clock().0;
        turn = turn.wrapping_add(1);
        let tenants = ownership.deciding_now(turn);
        counted = count_due(&store, &tenants, due_at, counted).await;
        let mut left = budget;
        let before = store.due_timers_of_before(due_at, left + woken.len()).await;
        left -= wake(&router, &mut woken, before, left, now);
        for decided in tenants {
            if left == 0 {
                break;
            }
            // The tenant's set holds every partition's timers: only this
            // instance's partitions are woken here.
            let wanted = decided.widen(left + woken.len());
            let due = store
                .due_timers(&decided.tenant, due_at, wanted)
                .await
                .map(|ids| ids.into_iter().filter(|id| decided.holds(*id)).collect());
            left -= wake(&router, &mut woken, due, left, now);
        }
        if left == 0 {
            tracing::info!(budget, "timer backlog: waking at the bounded rate");
        }
    }
}

/// Records how many orders of each tenant in `tenants` have a timer due at
/// `due_at` (this instance's share of them), and 0 for those of `before`
/// it no longer decides; returns the tenants recorded.
async fn count_due(
    store: &RedisStore,
    tenants: &[Decided],
    due_at: i64,
    before: HashSet<TenantId>,
) -> HashSet<TenantId> {
    if !telemetry::recording() {
        return before;
    }
    let mut now = HashSet::with_capacity(tenants.len());
    for decided in tenants {
        match store.due_timer_count(&decided.tenant, due_at).await {
            Ok(n) => telemetry::timers_due(decided.tenant.as_str(), decided.share(n)),
            // Redis is away: the last count stands until it answers.
            Err(e) => tracing::debug!(error = %e, "cannot count due timers"),
        }
        now.insert(decided.tenant.clone());
    }
    for gone in before.difference(&now) {
        telemetry::timers_due(gone.as_str(), 0);
    }
    now
}

/// Wakes at most `limit` of `due` not woken lately; how many it woke.
fn wake(
    router: &ActorRef<RouterMsg>,
    woken: &mut HashMap<OrderId, Instant>,
    due: Result<Vec<OrderId>, StoreError>,
    limit: usize,
    now: Instant,
) -> usize {
    let due = match due {
        Ok(due) => due,
        Err(e) => {
            tracing::debug!(error = %e, "timer sweep failed");
            return 0;
        }
    };
    let fresh: Vec<OrderId> = due
        .into_iter()
        .filter(|id| !woken.contains_key(id))
        .take(limit)
        .collect();
    for order_id in &fresh {
        woken.insert(*order_id, now);
        let _ = router.cast(RouterMsg::Route {
            order_id: *order_id,
            msg: Routed::FireTimers,
        });
    }
    fresh.len()
}
