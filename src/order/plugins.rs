//! Validation plugins: a new order waits in INITIATED until every plugin of
//! its configuration version has answered a request on
//! `orderd.v1.<tenant>.plugin.<name>.validate` with ok or with reasons.
//!
//! The order actor never waits: it hands a [`PluginAsk`] to this module's
//! task ([`run`]) and goes on with its other commands. Each plugin is asked
//! from its own task, so a slow plugin delays only its own verdict. The
//! verdict comes back to the order's actor as an ordinary command,
//! `RecordPluginVerdict`, under the deterministic command id
//! `plugin:<name>:<orderId>`, so a verdict delivered twice (after a crash, or
//! by two instances) is applied once.
//!
//! Timeouts follow the order's `pluginPolicy`: `timeoutMs` per request,
//! `retries` more requests, then `onTimeout` (FAIL: the order is rejected
//! with the reason "plugin `<name>` did not answer"; PASS: accepted). "No
//! responders" counts as a timeout (after waiting `timeoutMs`, so a plugin
//! that is restarting gets its retries spread out).
//!
//! Restarts: an INITIATED order asks again whenever its actor loads it, and
//! an instance that takes a tenant (at start-up, or over from another)
//! loads every INITIATED order of it ([`resume_waiting`]), so no order
//! waits forever for a question nobody asks. A verdict is recorded by the
//! tenant's owner only: another instance's write is fenced, and it stops
//! delivering.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use ractor::ActorRef;
use tokio::sync::mpsc;

use orderd_core::command::PluginVerdict;
use orderd_core::config::OnTimeout;
use orderd_core::{Command, CommandId, Envelope, Order, OrderId, OrderState};

use super::messages::{Execution, RetryReason, Routed, RouterMsg, Verdict};
use crate::store::{RedisStore, SnapshotStore};
use crate::wire::{OrderView, PluginReply, PluginRequest};
use crate::{retry, subjects};

/// An INITIATED order that wants its plugins asked.
#[derive(Debug, Clone)]
pub struct PluginAsk {
    /// The order as it is now.
    pub order: Box<Order>,
}

/// The order actors' handle on the plugin task.
#[derive(Clone)]
pub struct PluginRequests(mpsc::UnboundedSender<PluginAsk>);

impl PluginRequests {
    /// A handle and the receiving end for [`run`].
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<PluginAsk>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(tx), rx)
    }

    /// Asks the plugins `order` waits for (never blocks).
    pub fn ask(&self, order: &Order) {
        let _ = self.0.send(PluginAsk {
            order: Box::new(order.clone()),
        });
    }
}

/// What the plugin task needs.
#[derive(Clone)]
pub struct Asker {
    /// NATS, for the requests.
    pub client: async_nats::Client,
    /// The router, to deliver verdicts.
    pub router: ActorRef<RouterMsg>,
    /// Configuration versions (the order's plugin policy).
    pub store: RedisStore,
    /// (order, plugin) pairs being asked now, so an order loaded twice is
    /// not asked twice at once.
    pub in_flight: Arc<Mutex<HashSet<(OrderId, String)>>>,
    /// Which orders this instance decides (`None`: all of them). An order
    /// it created for another instance's partition is announced to that
    /// partition's owner ([`announce`]), which asks its plugins.
    pub ownership: Option<crate::bus::ownership::Ownership>,
}

/// The plugin task: asks each plugin of each order from its own task.
pub async fn run(asker: Asker, mut asks: mpsc::UnboundedReceiver<PluginAsk>) {
    while let Some(ask) = asks.recv().await {
        if let Some(ownership) = asker.ownership.as_ref().filter(|o| o.parts() > 1) {
            let unit = ownership.unit_of(&ask.order.tenant, ask.order.id);
            if !ownership.deciding(&unit) {
                tokio::spawn(announce(asker.client.clone(), unit, ask.order.id));
                continue;
            }
        }
        let order = Arc::new(*ask.order);
        for plugin in &order.validation.waiting_for {
            let plugin = plugin.clone();
            let key = (order.id, plugin.clone());
            let fresh = asker
                .in_flight
                .lock()
                .map(|mut set| set.insert(key.clone()))
                .unwrap_or(false);
            if !fresh {
                continue;
            }
            let asker = asker.clone();
            let order = order.clone();
            tokio::spawn(async move {
                asker.ask_one(&order, &plugin).await;
                if let Ok(mut set) = asker.in_flight.lock() {
                    set.remove(&key);
                }
            });
        }
    }
}

impl Asker {
    async fn ask_one(&self, order: &Order, plugin: &str) {
        let policy = match self
            .store
            .tenant_config_at(&order.tenant, order.schema_version)
            .await
        {
            Ok(config) => config.plugin_policy,
            Err(e) => {
                // The order asks again when it next loads (or when an
                // instance takes its tenant).
                tracing::warn!(order_id = %order.id, error = %e, "plugin policy unreadable; not asking now");
                return;
            }
        };
        let request = PluginRequest {
            tenant: order.tenant.to_string(),
            order_id: order.id.to_string(),
            plugin: plugin.to_owned(),
            order: OrderView::from(order),
        };
        let payload = match serde_json::to_vec(&request) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "plugin request does not encode");
                return;
            }
        };
        let subject = subjects::plugin_validate(&order.tenant, plugin);
        let timeout = Duration::from_millis(policy.timeout_ms);
        let mut verdict = None;
        for attempt in 0..=policy.retries {
            let started = tokio::time::Instant::now();
            let answer = tokio::time::timeout(
                timeout,
                self.client.request(subject.clone(), payload.clone().into()),
            )
            .await;
            match answer {
                Ok(Ok(msg)) => match serde_json::from_slice::<PluginReply>(&msg.payload) {
                    Ok(reply) if reply.ok => {
                        verdict = Some(PluginVerdict::Accepted);
                        break;
                    }
                    Ok(reply) => {
                        let mut reasons = reply.reasons;
                        if reasons.is_empty() {
                            reasons.push(format!("plugin {plugin} refused the order"));
                        }
                        verdict = Some(PluginVerdict::Rejected(reasons));
                        break;
                    }
                    Err(_) => tracing::warn!(plugin, attempt, "plugin answer does not decode"),
                },
                Ok(Err(e)) => {
                    tracing::info!(plugin, attempt, error = %e, "plugin request failed");
                    // No responders answers at once: wait out the timeout so
                    // the retries are spread over the policy's time.
                    tokio::time::sleep_until(started + timeout).await;
                }
                Err(_) => tracing::info!(plugin, attempt, "plugin did not answer in time"),
            }
        }
        let verdict = verdict.unwrap_or_else(|| match policy.on_timeout {
            OnTimeout::Pass => PluginVerdict::Accepted,
            OnTimeout::Fail => {
                PluginVerdict::Rejected(vec![format!("plugin {plugin} did not answer")])
            }
        });
        self.deliver(order, plugin, verdict).await;
    }

    /// Feeds the verdict to the order's actor; retries while it cannot be
    /// decided (Redis away).
    async fn deliver(&self, order: &Order, plugin: &str, verdict: PluginVerdict) {
        let Ok(command_id) = CommandId::parse(&format!("plugin:{plugin}:{}", order.id)) else {
            return;
        };
        let mut delays = retry::backoff();
        for _ in 0..30 {
            let (tx, rx) = ractor::concurrency::oneshot();
            let envelope = Envelope {
                tenant: order.tenant.clone(),
                order_id: order.id,
                command_id: command_id.clone(),
                by: "orderd".into(),
                command: Command::RecordPluginVerdict {
                    plugin: plugin.to_owned(),
                    verdict: verdict.clone(),
                },
                expected_seq: None,
            };
            let span = tracing::info_span!(
                "command",
                order_id = %order.id,
                tenant = %order.tenant,
                command = "plugin_verdict"
            );
            let sent = self.router.cast(RouterMsg::Route {
                order_id: order.id,
                msg: Routed::Execute(Box::new(Execution {
                    envelope,
                    reply: Some(tx.into()),
                    span,
                    traceparent: None,
                    position: None,
                })),
            });
            if sent.is_err() {
                return; // shutting down: the order asks again when it loads
            }
            match tokio::time::timeout(Duration::from_secs(30), rx).await {
                Ok(Ok(Verdict::Retry(RetryReason::Fenced))) => {
                    // Another instance owns the tenant: it asks itself.
                    return;
                }
                Ok(Ok(Verdict::Retry(_))) | Err(_) => {
                    tokio::time::sleep(delays.next().unwrap_or(retry::LONGEST)).await;
                }
                Ok(Ok(Verdict::Refused(r))) => {
                    tracing::debug!(code = r.code(), "plugin verdict refused");
                    return;
                }
                Ok(Ok(_)) => return,
                Ok(Err(_)) => return,
            }
        }
    }
}

/// When this instance takes `unit` (at start-up, or over from another):
/// loads every INITIATED order of it, so each asks its plugins again.
pub async fn resume_waiting(
    store: RedisStore,
    router: ActorRef<RouterMsg>,
    unit: crate::subjects::Unit,
    parts: u16,
) {
    let tenant = &unit.tenant;
    let Ok(ids) = store
        .oldest_orders_in(tenant, OrderState::Initiated, 10_000)
        .await
    else {
        tracing::warn!(%tenant, "cannot look for the tenant's INITIATED orders");
        return;
    };
    let ids = ids
        .into_iter()
        .filter(|id| crate::subjects::partition_of(*id, parts) == unit.part);
    let loads = futures::stream::iter(ids)
        .map(|order_id| {
            let router = router.clone();
            async move {
                load(&router, order_id, Duration::from_secs(10)).await;
            }
        })
        .buffer_unordered(16);
    loads.collect::<Vec<()>>().await;
}

/// Loads `order_id`'s actor (a read through the router), so an INITIATED
/// order asks its plugins from here; true once it answered within `within`.
async fn load(router: &ActorRef<RouterMsg>, order_id: OrderId, within: Duration) -> bool {
    let (tx, rx) = ractor::concurrency::oneshot();
    router
        .cast(RouterMsg::Route {
            order_id,
            msg: Routed::Read(tx.into()),
        })
        .is_ok()
        && tokio::time::timeout(within, rx).await.is_ok()
}

/// Tells the owner of `unit` that `order`, which this instance created
/// (creates are decided on the tenant's partition 0), exists: the owner
/// loads it, and so asks its plugins. Sent again up to three times while
/// unanswered; if all go unanswered (the partition changing hands), the
/// next owner asks every INITIATED order of it when it takes it.
pub async fn announce(client: async_nats::Client, unit: crate::subjects::Unit, order: OrderId) {
    let subject = subjects::created_elsewhere(&unit);
    for _ in 0..4 {
        let request = client.request(subject.clone(), order.to_string().into());
        match tokio::time::timeout(Duration::from_secs(2), request).await {
            Ok(Ok(_)) => return,
            Ok(Err(_)) | Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    tracing::info!(unit = %unit, order_id = %order, "new order not announced to its partition's owner; it asks its plugins when it next loads it");
}

/// While this instance owns `unit` (until `stop`): loads each order
/// announced on [`subjects::created_elsewhere`], so an INITIATED one asks
/// its plugins from here, and answers once it is loaded.
pub async fn serve_announcements(
    client: async_nats::Client,
    router: ActorRef<RouterMsg>,
    unit: crate::subjects::Unit,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut sub = match client.subscribe(subjects::created_elsewhere(&unit)).await {
        Ok(sub) => sub,
        Err(e) => {
            tracing::warn!(error = %e, unit = %unit, "cannot listen for new orders created elsewhere; they ask their plugins when next loaded");
            return;
        }
    };
    loop {
        let msg = tokio::select! {
            _ = stop.changed() => break,
            m = sub.next() => match m { Some(m) => m, None => break },
        };
        let Some(order_id) = std::str::from_utf8(&msg.payload)
            .ok()
            .and_then(|t| OrderId::parse(t).ok())
        else {
            continue;
        };
        let (client, router) = (client.clone(), router.clone());
        tokio::spawn(async move {
            if load(&router, order_id, Duration::from_secs(5)).await {
                if let Some(reply) = msg.reply {
                    let _ = client.publish(reply, bytes::Bytes::new()).await;
                }
            }
        });
    }
    let _ = sub.unsubscribe().await;
}
