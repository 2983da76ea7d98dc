//! Wakes orders whose timers are due but which have no live actor (after a
//! restart, or passivated): the timers live in the snapshots, and the
//! timer set ([`crate::store::keys::TIMERS`]) names the orders with their
//! earliest due time.
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

use std::collections::HashMap;
use std::time::Duration;

use ractor::ActorRef;
use tokio::sync::watch;
use tokio::time::Instant;

use orderd_core::OrderId;

use super::messages::{Clock, Routed, RouterMsg};
use crate::store::RedisStore;

/// How long a woken order is left alone before it may be woken again.
const REWAKE_AFTER: Duration = Duration::from_secs(5);

/// How many orders one sweep of `every` may wake at `per_sec` a second
/// (at least one).
pub fn budget(every: Duration, per_sec: u32) -> usize {
    let n = (u128::from(per_sec) * every.as_millis()) / 1_000;
    usize::try_from(n).unwrap_or(usize::MAX).max(1)
}

/// Runs until `stop`: every `every`, wakes at most [`budget`] orders whose
/// timers are due.
pub async fn sweep(
    store: RedisStore,
    router: ActorRef<RouterMsg>,
    clock: Clock,
    every: Duration,
    per_sec: u32,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let budget = budget(every, per_sec);
    let mut woken: HashMap<OrderId, Instant> = HashMap::new();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        woken.retain(|_, at| now.duration_since(*at) < REWAKE_AFTER);
        match store.due_timers(clock().0, budget + woken.len()).await {
            Ok(due) => {
                let fresh: Vec<OrderId> = due
                    .into_iter()
                    .filter(|id| !woken.contains_key(id))
                    .take(budget)
                    .collect();
                if fresh.len() == budget {
                    tracing::info!(budget, "timer backlog: waking at the bounded rate");
                }
                for order_id in fresh {
                    woken.insert(order_id, now);
                    let _ = router.cast(RouterMsg::Route {
                        order_id,
                        msg: Routed::FireTimers,
                    });
                }
            }
            Err(e) => tracing::debug!(error = %e, "timer sweep failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_follows_the_rate_and_is_never_zero() {
        assert_eq!(budget(Duration::from_millis(200), 100), 20);
        assert_eq!(budget(Duration::from_secs(1), 500), 500);
        assert_eq!(budget(Duration::from_millis(10), 1), 1);
    }
}
