//! Lanes: each tenant's commands and job updates are read through the
//! tenant's own durable consumers (its lanes), so a tenant with a backlog
//! never holds up another: a consumer delivers in stream order, and one
//! shared consumer would make every tenant wait behind the busiest one.
//!
//! - A **discovery** consumer per intake stream reads only the headers of
//!   every message; the first message of a tenant without a lane opens the
//!   tenant's lanes (on both streams) before the discovery acknowledges it,
//!   so after a crash the discovery sees it again, and opening is
//!   idempotent. Each message is acknowledged on its own: a message that
//!   was delivered but never seen (the connection dropped on the way, or
//!   another instance took it and stopped) comes back after the ack wait.
//! - A lane starts at the first message the stream holds for its tenant,
//!   not at the message that opened it: messages of the tenant that were
//!   still unacknowledged at the discovery (as after a nats-server restart)
//!   may lie before it.
//! - Every few seconds each instance lists the lanes on the streams and
//!   pulls those it does not yet pull, so instances share every lane,
//!   whoever opened it; and it opens again those of its lanes whose pull
//!   loop ended because the consumer vanished at the server.
//! - Each lane has its own bound on messages between pull and ack
//!   (`runtime.max_in_flight`); the server bounds each lane's unacked
//!   messages (`consumers.max_ack_pending`).
//!
//! Lanes are durable and stay: a tenant's lanes cost the server two idle
//! consumers once its traffic stops.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use tokio::sync::{watch, Mutex, Semaphore};
use tokio::task::JoinHandle;

use orderd_core::TenantId;

use super::consumers;
use super::pull::{refuse_unroutable, Intake};
use crate::bus::{BusError, StreamSpec};
use crate::settings::Settings;
use crate::subjects;

/// How often each instance looks for lanes opened by others.
const SYNC_EVERY: Duration = Duration::from_secs(2);

/// The most headers the discovery reads per pull.
const DISCOVERY_BATCH: usize = 1_000;

/// A lane this instance pulls.
struct Lane {
    task: JoinHandle<()>,
    permits: Arc<Semaphore>,
}

/// The lanes this instance pulls, and how to open more.
pub struct Lanes {
    js: jetstream::Context,
    settings: Arc<Settings>,
    /// Every lane's intake is a copy of this one, with its own permits.
    intake: Intake,
    stop: watch::Receiver<bool>,
    running: Mutex<HashMap<(StreamSpec, TenantId), Lane>>,
}

impl Lanes {
    /// Lanes that hand their messages to `intake`'s router, until `stop`.
    pub fn new(
        js: jetstream::Context,
        settings: Arc<Settings>,
        intake: Intake,
        stop: watch::Receiver<bool>,
    ) -> Arc<Self> {
        Arc::new(Self {
            js,
            settings,
            intake,
            stop,
            running: Mutex::new(HashMap::new()),
        })
    }

    /// Opens and pulls `tenant`'s lane on `spec` (creating the consumer
    /// when needed); nothing if already pulled here.
    pub async fn open(&self, spec: StreamSpec, tenant: &TenantId) -> Result<(), BusError> {
        if *self.stop.borrow() {
            // Shutting down: lanes end, none opens (and the discovery does
            // not acknowledge a tenant's first message as if it had).
            return Err(BusError::Consumer {
                consumer: consumers::lane_name(spec, tenant, &self.settings),
                why: "orderd is shutting down".to_owned(),
            });
        }
        let mut running = self.running.lock().await;
        let key = (spec, tenant.clone());
        if running.get(&key).is_some_and(|l| !l.task.is_finished()) {
            return Ok(());
        }
        let wanted = consumers::lane_config(spec, tenant, &self.settings);
        let consumer = consumers::open_consumer(&self.js, spec, wanted).await?;
        let permits = Arc::new(Semaphore::new(self.settings.runtime.max_in_flight));
        let intake = Intake {
            permits: permits.clone(),
            ..self.intake.clone()
        };
        let task = tokio::spawn(intake.run(consumer, self.stop.clone()));
        tracing::info!(stream = spec.name, tenant = %tenant, "lane open");
        running.insert(key, Lane { task, permits });
        Ok(())
    }

    /// Opens `tenant`'s lanes on both intake streams.
    async fn open_tenant(&self, tenant: &TenantId) -> Result<(), BusError> {
        for spec in consumers::intake_streams() {
            self.open(spec, tenant).await?;
        }
        Ok(())
    }

    /// Pulls every lane that exists on the streams (opened by this instance
    /// or another), and opens again each lane of this instance whose pull
    /// loop ended (its consumer vanished at the server): the consumer is
    /// created again and reads the tenant's messages from the first one
    /// the stream holds; those already decided come back as duplicates.
    pub async fn sync(&self) -> Result<(), BusError> {
        for spec in consumers::intake_streams() {
            for tenant in consumers::lanes(&self.js, spec, &self.settings).await? {
                self.open(spec, &tenant).await?;
            }
        }
        let ended: Vec<(StreamSpec, TenantId)> = self
            .running
            .lock()
            .await
            .iter()
            .filter(|(_, lane)| lane.task.is_finished())
            .map(|(key, _)| key.clone())
            .collect();
        for (spec, tenant) in ended {
            self.open(spec, &tenant).await?;
        }
        Ok(())
    }

    /// Keeps the lanes in step with the streams until stopped: discovery of
    /// new tenants on both intake streams, and a periodic [`Lanes::sync`].
    pub async fn run(self: Arc<Self>) {
        let discoveries: Vec<_> = consumers::intake_streams()
            .into_iter()
            .map(|spec| tokio::spawn(self.clone().discover(spec)))
            .collect();
        let mut stop = self.stop.clone();
        let mut tick = tokio::time::interval(SYNC_EVERY);
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = tick.tick() => {
                    if let Err(e) = self.sync().await {
                        tracing::debug!(error = %e, "lane sync failed; trying again");
                    }
                }
            }
        }
        for d in discoveries {
            let _ = d.await;
        }
    }

    /// Reads the headers of `spec`'s messages and opens a lane for each new
    /// tenant.
    async fn discover(self: Arc<Self>, spec: StreamSpec) {
        let mut stop = self.stop.clone();
        'reconnect: loop {
            let opened = async {
                let wanted = consumers::discovery_config(spec, &self.settings);
                let consumer = consumers::open_consumer(&self.js, spec, wanted).await?;
                consumer
                    .stream()
                    .max_messages_per_batch(DISCOVERY_BATCH)
                    .messages()
                    .await
                    .map_err(|e| BusError::Consumer {
                        consumer: consumers::discovery_name(spec, &self.settings),
                        why: e.to_string(),
                    })
            };
            let mut messages = tokio::select! {
                _ = stop.changed() => return,
                m = opened => match m {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "tenant discovery cannot pull; retrying");
                        tokio::select! {
                            _ = stop.changed() => return,
                            () = tokio::time::sleep(Duration::from_secs(1)) => continue 'reconnect,
                        }
                    }
                },
            };
            let mut known: HashSet<String> = HashSet::new();
            loop {
                let next = tokio::select! {
                    _ = stop.changed() => return,
                    m = messages.next() => m,
                };
                let msg = match next {
                    Some(Ok(msg)) => msg,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "discovery pull hiccup");
                        continue;
                    }
                    None => continue 'reconnect,
                };
                let token = subjects::tenant_token(&msg.subject);
                if !known.contains(token) {
                    let Ok(tenant) = TenantId::parse(token) else {
                        // No lane will ever read it: answer it here.
                        refuse_unroutable(&self.intake.client, &msg).await;
                        let _ = msg.ack().await;
                        continue;
                    };
                    // Until it opens, the message stays unacknowledged.
                    while let Err(e) = self.open_tenant(&tenant).await {
                        tracing::warn!(error = %e, tenant = %tenant, "cannot open lane; retrying");
                        tokio::select! {
                            _ = stop.changed() => return,
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                    known.insert(token.to_owned());
                }
                let _ = msg.ack().await;
            }
        }
    }

    /// Waits up to `grace` for every lane's messages in flight to be
    /// settled (after [`Lanes::join`]); true when they all were.
    pub async fn drain(&self, grace: Duration) -> bool {
        let all = u32::try_from(self.settings.runtime.max_in_flight).unwrap_or(u32::MAX);
        let permits: Vec<Arc<Semaphore>> = self
            .running
            .lock()
            .await
            .values()
            .map(|l| l.permits.clone())
            .collect();
        let settled = futures::future::join_all(permits.into_iter().map(|p| async move {
            let _ = p.acquire_many(all).await;
        }));
        tokio::time::timeout(grace, settled).await.is_ok()
    }

    /// Waits for every lane's pull loop to end (after stop).
    pub async fn join(&self) {
        let mut running = self.running.lock().await;
        for lane in running.values_mut() {
            let _ = (&mut lane.task).await;
        }
    }
}
