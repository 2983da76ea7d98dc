//! Lanes: each tenant's commands and job updates are read through the
//! tenant's own durable consumers (its lanes), so a tenant with a backlog
//! never holds up another: a consumer delivers in stream order, and one
//! shared consumer would make every tenant wait behind the busiest one.
//! With `ownership.partitions` = P above 1, each tenant has P pairs of
//! lanes, one per partition of its orders (a [`Unit`]), each owned on its
//! own; "tenant" below then reads "unit".
//!
//! - A **discovery** consumer per intake stream reads only the headers of
//!   every message; the first message of a tenant without lanes makes the
//!   tenant's lanes (on both streams) before the discovery acknowledges it,
//!   so after a crash the discovery sees it again, and making them is
//!   idempotent. Each message is acknowledged on its own: a message that
//!   was delivered but never seen (the connection dropped on the way, or
//!   another instance took it and stopped) comes back after the ack wait.
//! - A lane starts at the first message the stream holds for its tenant,
//!   not at the message that opened it: messages of the tenant that were
//!   still unacknowledged at the discovery (as after a nats-server restart)
//!   may lie before it.
//! - **One instance pulls a tenant's lanes**: its owner
//!   ([`crate::bus::ownership`]), so an order's commands are decided in stream
//!   order even with several instances. Every quarter lease each instance
//!   renews its membership, and for every unit with lanes: takes it when
//!   it should own it ([`assign`]: a tenant's partitions spread evenly) and
//!   nobody live does, gives it up (gracefully: stop
//!   pulling, let the commands in flight finish, then release) when another
//!   live instance should own it, and stops at once when its claim is gone.
//!   A watchdog (every twelfth of a lease) stops every lane when the
//!   membership could not be renewed for two thirds of a lease: by the
//!   time the member key expires and another instance may take over, this
//!   one has stopped pulling.
//! - Every few seconds each instance lists the lanes on the streams, to
//!   learn the tenants another instance discovered; and it opens again those
//!   of its lanes whose pull loop ended because the consumer vanished at
//!   the server.
//! - Each lane has its own bound on messages between pull and ack
//!   (`runtime.max_in_flight`); the server bounds each lane's unacked
//!   messages (`consumers.max_ack_pending`).
//!
//! Lanes are durable and stay: a tenant's lanes cost the server two idle
//! consumers once its traffic stops.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::StreamExt;
use tokio::sync::{watch, Mutex, Notify, Semaphore};
use tokio::task::JoinHandle;

use orderd_core::TenantId;

use super::consumers;
use super::pull::{refuse_unroutable, Intake};
use crate::bus::ownership::{assign, owner_of, Ownership};
use crate::bus::{BusError, StreamSpec};
use crate::settings::Settings;
use crate::store::{Epoch, RedisStore};
use crate::subjects::Unit;
use crate::{retry, subjects};

/// How often each instance looks for lanes made by others.
const SYNC_EVERY: Duration = Duration::from_secs(2);

/// The most headers the discovery reads per pull.
const DISCOVERY_BATCH: usize = 1_000;

/// A lane this instance pulls.
struct Lane {
    task: JoinHandle<()>,
    permits: Arc<Semaphore>,
}

/// A unit this instance owns, and its lanes.
struct Held {
    /// The owners key's revision when this instance took it.
    revision: u64,
    /// Ends the unit's pull loops (and its announcements' responder).
    stop: watch::Sender<bool>,
    lanes: Vec<(StreamSpec, Lane)>,
}

impl Held {
    /// Ends its pull loops (what they prefetched stays unacknowledged).
    fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// The lanes this instance pulls, and how it comes to own them.
pub struct Lanes {
    js: jetstream::Context,
    settings: Arc<Settings>,
    /// Every lane's intake is a copy of this one, with its own permits.
    intake: Intake,
    stop: watch::Receiver<bool>,
    ownership: Ownership,
    /// Where each claim's epoch is raised (the fence of its writes).
    store: RedisStore,
    /// Units with lanes on the streams (whoever made them).
    known: Mutex<HashSet<Unit>>,
    /// Units this instance owns.
    held: Mutex<HashMap<Unit, Held>>,
    /// Units being handed over (pull stopped, commands finishing).
    releasing: Mutex<HashSet<Unit>>,
    /// When a membership renewal last succeeded (when it was sent).
    renewed: std::sync::Mutex<Option<Instant>>,
    /// Asks for an ownership pass now (a new tenant).
    wake: Notify,
}

impl Lanes {
    /// Lanes that hand their messages to `intake`'s router, until `stop`.
    pub fn new(
        js: jetstream::Context,
        settings: Arc<Settings>,
        intake: Intake,
        stop: watch::Receiver<bool>,
        ownership: Ownership,
        store: RedisStore,
    ) -> Arc<Self> {
        Arc::new(Self {
            js,
            settings,
            intake,
            stop,
            ownership,
            store,
            known: Mutex::new(HashSet::new()),
            held: Mutex::new(HashMap::new()),
            releasing: Mutex::new(HashSet::new()),
            renewed: std::sync::Mutex::new(None),
            wake: Notify::new(),
        })
    }

    /// Makes the lanes of every unit of `tenant` on both intake streams
    /// (their consumers), and asks for an ownership pass so their owners
    /// pull them soon.
    async fn make_lanes(&self, tenant: &TenantId) -> Result<(), BusError> {
        if *self.stop.borrow() {
            // Shutting down: the discovery does not acknowledge a tenant's
            // first message as if its lanes were there.
            return Err(BusError::Consumer {
                consumer: consumers::lane_name(
                    consumers::intake_streams()[0],
                    &Unit::first(tenant),
                    &self.settings,
                ),
                why: "orderd is shutting down".to_owned(),
            });
        }
        let units: Vec<Unit> = Unit::all(tenant, self.settings.ownership.partitions).collect();
        for unit in &units {
            for spec in consumers::intake_streams() {
                let wanted = consumers::lane_config(spec, unit, &self.settings);
                consumers::open_consumer(&self.js, spec, wanted).await?;
            }
        }
        self.known.lock().await.extend(units);
        self.wake.notify_one();
        Ok(())
    }

    /// Learns the units whose lanes exist on the streams (made by this
    /// instance or another), and forgets the lanes of this instance whose
    /// pull loop ended (their consumer vanished at the server): the next
    /// pass takes the unit again and makes its consumers anew. Lanes of
    /// partitions beyond `ownership.partitions` (left from a larger
    /// setting) are not taken.
    pub async fn sync(&self) -> Result<(), BusError> {
        let mut found = HashSet::new();
        for spec in consumers::intake_streams() {
            found.extend(consumers::lanes(&self.js, spec, &self.settings).await?);
        }
        let parts = self.settings.ownership.partitions;
        self.known
            .lock()
            .await
            .extend(found.into_iter().filter(|u| u.part < parts));
        let mut held = self.held.lock().await;
        let ended: Vec<Unit> = held
            .iter()
            .filter(|(_, h)| h.lanes.iter().any(|(_, l)| l.task.is_finished()))
            .map(|(t, _)| t.clone())
            .collect();
        for unit in ended {
            if let Some(h) = held.remove(&unit) {
                // Still its owner: the next pass opens the lanes again.
                h.stop();
                self.stop_deciding(&unit);
                self.ownership.release(&unit, h.revision).await;
            }
        }
        Ok(())
    }

    /// This instance no longer decides `unit`: reads go to the store, and
    /// its writes of the unit's orders are fenced.
    fn stop_deciding(&self, unit: &Unit) {
        self.ownership.set_deciding(unit, false);
        self.store.unfence(unit);
    }

    /// Renews this instance's membership.
    async fn heartbeat(&self) -> Result<(), BusError> {
        let sent = Instant::now();
        let info = serde_json::json!({
            "name": instance_name(&self.settings),
            "pid": std::process::id(),
        });
        self.ownership
            .heartbeat(bytes::Bytes::from(info.to_string()))
            .await?;
        *self.renewed.lock().unwrap_or_else(|e| e.into_inner()) = Some(sent);
        Ok(())
    }

    /// The membership was renewed less than two thirds of a lease ago.
    fn fresh(&self) -> bool {
        let renewed = *self.renewed.lock().unwrap_or_else(|e| e.into_inner());
        renewed.is_some_and(|at| at.elapsed() <= self.ownership.lease() * 2 / 3)
    }

    /// One ownership pass: take, keep or give up each known unit.
    async fn pass(self: &Arc<Self>) -> Result<(), BusError> {
        if !self.fresh() {
            return Ok(());
        }
        let mut members = self.ownership.members().await?;
        let me = self.ownership.me().to_owned();
        if !members.contains(&me) {
            members.push(me.clone());
            members.sort();
        }
        let mut known: Vec<Unit> = self.known.lock().await.iter().cloned().collect();
        known.sort();
        // Who should own each unit: a tenant's partitions spread evenly.
        let parts = self.settings.ownership.partitions;
        let mut targets: HashMap<TenantId, Vec<bool>> = HashMap::new();
        for unit in &known {
            targets.entry(unit.tenant.clone()).or_insert_with(|| {
                if parts <= 1 {
                    // A whole tenant: ranked as before partitions, so
                    // instances of an older release agree during an upgrade.
                    return vec![owner_of(unit.tenant.as_str(), &members) == Some(me.as_str())];
                }
                let keys: Vec<String> = Unit::all(&unit.tenant, parts)
                    .map(|u| u.to_string())
                    .collect();
                assign(&keys, &members)
                    .into_iter()
                    .map(|o| o == Some(me.as_str()))
                    .collect()
            });
        }
        for unit in known {
            if *self.stop.borrow() {
                return Ok(());
            }
            if self.releasing.lock().await.contains(&unit) {
                continue;
            }
            let want = targets
                .get(&unit.tenant)
                .and_then(|t| t.get(usize::from(unit.part)))
                .copied()
                .unwrap_or(false);
            let held_revision = self.held.lock().await.get(&unit).map(|h| h.revision);
            match (held_revision, want) {
                (Some(revision), true) => {
                    let claim = self.ownership.claim(&unit).await?;
                    if claim.is_none_or(|c| c.owner != me || c.revision != revision) {
                        tracing::warn!(unit = %unit, "lost the claim: stopping its lanes");
                        if let Some(h) = self.held.lock().await.remove(&unit) {
                            h.stop();
                        }
                        self.stop_deciding(&unit);
                    }
                }
                (Some(_), false) => self.hand_over(unit),
                (None, true) => {
                    let claim = self.ownership.claim(&unit).await?;
                    let taken = match &claim {
                        None => self.ownership.take(&unit, None).await?,
                        Some(c) if c.owner == me => Some(c.revision),
                        Some(c) if !members.contains(&c.owner) => {
                            self.ownership.take(&unit, Some(c)).await?
                        }
                        // Its owner is live: it hands over when it sees us.
                        Some(_) => None,
                    };
                    if let Some(revision) = taken {
                        self.pull(&unit, revision).await;
                    }
                }
                (None, false) => {}
            }
        }
        Ok(())
    }

    /// Starts pulling `unit`'s lanes, which this instance now owns:
    /// first raises the unit's epoch to this claim's (its revision), so
    /// no earlier owner writes its orders from then on.
    async fn pull(&self, unit: &Unit, revision: u64) {
        let epoch = Epoch {
            generation: self.ownership.generation(),
            revision,
        };
        match self.store.fence(unit, epoch).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(unit = %unit, "a later claim of the unit exists: not pulling");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, unit = %unit, "cannot raise the unit's epoch; the next pass tries again");
                self.ownership.release(unit, revision).await;
                return;
            }
        }
        let (stop, stop_rx) = watch::channel(false);
        let mut lanes = Vec::new();
        for spec in consumers::intake_streams() {
            let consumer = match consumers::take_over(&self.js, spec, unit, &self.settings).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, unit = %unit, "cannot open the lane; the next pass tries again");
                    let _ = stop.send(true);
                    self.store.unfence(unit);
                    self.ownership.release(unit, revision).await;
                    return;
                }
            };
            let permits = Arc::new(Semaphore::new(self.settings.runtime.max_in_flight));
            let intake = Intake {
                permits: permits.clone(),
                ..self.intake.clone()
            };
            let task = tokio::spawn(intake.run(consumer, stop_rx.clone()));
            lanes.push((spec, Lane { task, permits }));
        }
        tracing::info!(unit = %unit, "owner: pulling its lanes");
        let tenant = &unit.tenant;
        // Orders written by an older orderd lack the index entries this
        // one adds: once per tenant (by its partition 0's owner), the
        // backfill walks them.
        if unit.part == 0 {
            match self.store.upgrade_layout(tenant).await {
                Ok(true) => {
                    tracing::info!(tenant = %tenant, "the tenant's orders follow an older index layout: walking them in the background")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, tenant = %tenant, "cannot check the tenant's index layout; the next claim tries again")
                }
            }
        }
        self.ownership.set_deciding(unit, true);
        // New orders of the unit created by partition 0's owner elsewhere
        // are announced here.
        if self.settings.ownership.partitions > 1 {
            tokio::spawn(crate::order::plugins::serve_announcements(
                self.intake.client.clone(),
                self.intake.router.clone(),
                unit.clone(),
                stop_rx.clone(),
            ));
        }
        // Its orders waiting for plugins ask again, from here.
        tokio::spawn(crate::order::plugins::resume_waiting(
            self.store.clone(),
            self.intake.router.clone(),
            unit.clone(),
            self.settings.ownership.partitions,
        ));
        self.held.lock().await.insert(
            unit.clone(),
            Held {
                revision,
                stop,
                lanes,
            },
        );
    }

    /// Gives `unit` to the instance that should own it, in the
    /// background: stop pulling, let the commands in flight finish (at most
    /// the shutdown grace), then release the claim.
    fn hand_over(self: &Arc<Self>, unit: Unit) {
        let this = self.clone();
        tokio::spawn(async move {
            let Some(held) = this.held.lock().await.remove(&unit) else {
                return;
            };
            this.releasing.lock().await.insert(unit.clone());
            held.stop();
            this.ownership.set_deciding(&unit, false);
            let grace = Duration::from_millis(this.settings.runtime.shutdown_grace_ms);
            let settled = settle(&held, this.settings.runtime.max_in_flight, grace).await;
            // The commands in flight wrote as the owner; from here on, any
            // left over are fenced and go back to the stream.
            this.store.unfence(&unit);
            this.ownership.release(&unit, held.revision).await;
            this.releasing.lock().await.remove(&unit);
            tracing::info!(unit = %unit, settled, "handed the unit over");
            this.wake.notify_one();
        });
    }

    /// Stops every lane at once, keeping the claims (the membership could
    /// not be renewed: another instance may soon take the tenants over).
    async fn fence(&self) {
        let mut held = self.held.lock().await;
        if held.is_empty() {
            return;
        }
        tracing::warn!(
            units = held.len(),
            "membership not renewed for two thirds of a lease: stopped pulling"
        );
        for (unit, h) in held.drain() {
            h.stop();
            self.stop_deciding(&unit);
        }
    }

    /// Keeps the lanes in step with the streams and the other instances
    /// until stopped: discovery of new tenants on both intake streams,
    /// ownership passes every quarter lease (or at once for a new tenant),
    /// the watchdog, and a periodic [`Lanes::sync`].
    pub async fn run(self: Arc<Self>) {
        let discoveries: Vec<_> = consumers::intake_streams()
            .into_iter()
            .map(|spec| tokio::spawn(self.clone().discover(spec)))
            .collect();
        let lease = self.ownership.lease();
        let heartbeats = {
            let this = self.clone();
            let mut stop = self.stop.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(lease / 4);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut first = true;
                loop {
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = tick.tick() => {}
                    }
                    let renewal = tokio::time::timeout(lease / 2, this.heartbeat());
                    match renewal.await.unwrap_or_else(|_| {
                        Err(BusError::Stream {
                            stream: "members",
                            why: "renewal timed out".to_owned(),
                        })
                    }) {
                        Ok(()) if first => {
                            // Take tenants at once, not a tick later.
                            first = false;
                            this.wake.notify_one();
                        }
                        Ok(()) => {}
                        Err(e) => tracing::debug!(error = %e, "membership renewal failed"),
                    }
                }
            })
        };
        let passes = {
            let this = self.clone();
            let mut stop = self.stop.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(lease / 4);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = tick.tick() => {}
                        () = this.wake.notified() => {}
                    }
                    if let Err(e) = this.pass().await {
                        tracing::debug!(error = %e, "ownership pass failed; trying again");
                    }
                }
            })
        };
        let mut stop = self.stop.clone();
        let mut sync = tokio::time::interval(SYNC_EVERY);
        let mut watchdog = tokio::time::interval(lease / 12);
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = sync.tick() => {
                    if let Err(e) = self.sync().await {
                        tracing::debug!(error = %e, "lane sync failed; trying again");
                    }
                }
                _ = watchdog.tick() => {
                    if !self.fresh() {
                        self.fence().await;
                    }
                }
            }
        }
        let _ = heartbeats.await;
        let _ = passes.await;
        for h in self.held.lock().await.values() {
            h.stop();
        }
        for d in discoveries {
            let _ = d.await;
        }
    }

    /// Reads the headers of `spec`'s messages and makes the lanes of each new
    /// tenant (their consumers; the tenant's owner pulls them).
    async fn discover(self: Arc<Self>, spec: StreamSpec) {
        let mut stop = self.stop.clone();
        let mut delays = retry::backoff();
        'reconnect: loop {
            let opened = async {
                let wanted = consumers::discovery_config(spec, &self.settings);
                let consumer = consumers::open_consumer(&self.js, spec, wanted).await?;
                consumer
                    .stream()
                    .max_messages_per_batch(DISCOVERY_BATCH)
                    .expires(super::pull::PULL_EXPIRES)
                    .heartbeat(super::pull::PULL_HEARTBEAT)
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
                        let delay = delays.next().unwrap_or(retry::LONGEST);
                        tokio::select! {
                            _ = stop.changed() => return,
                            () = tokio::time::sleep(delay) => continue 'reconnect,
                        }
                    }
                },
            };
            delays = retry::backoff();
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
                    let mut delays = retry::backoff();
                    while let Err(e) = self.make_lanes(&tenant).await {
                        tracing::warn!(error = %e, tenant = %tenant, "cannot open lane; retrying");
                        let delay = delays.next().unwrap_or(retry::LONGEST);
                        tokio::select! {
                            _ = stop.changed() => return,
                            () = tokio::time::sleep(delay) => {}
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
        let held = self.held.lock().await;
        let all = self.settings.runtime.max_in_flight;
        let settled = futures::future::join_all(held.values().map(|h| settle(h, all, grace)));
        settled.await.into_iter().all(|s| s)
    }

    /// Waits for every lane's pull loop to end (after stop).
    pub async fn join(&self) {
        let mut held = self.held.lock().await;
        for h in held.values_mut() {
            for (_, lane) in &mut h.lanes {
                let _ = (&mut lane.task).await;
            }
        }
    }

    /// Releases every tenant and leaves the membership (at shutdown, after
    /// [`Lanes::drain`] and once the actors have stopped), so the other
    /// instances take the tenants over at their next pass, not after a
    /// lease.
    pub async fn release_all(&self) {
        let mut held = self.held.lock().await;
        for (unit, h) in held.drain() {
            self.stop_deciding(&unit);
            self.ownership.release(&unit, h.revision).await;
        }
        self.ownership.leave().await;
    }
}

/// Waits up to `grace` until none of `held`'s messages are between pull
/// and ack; true when that happened.
async fn settle(held: &Held, max_in_flight: usize, grace: Duration) -> bool {
    let all = u32::try_from(max_in_flight).unwrap_or(u32::MAX);
    let permits: Vec<Arc<Semaphore>> = held.lanes.iter().map(|(_, l)| l.permits.clone()).collect();
    let settled = futures::future::join_all(permits.into_iter().map(|p| async move {
        let _ = p.acquire_many(all).await;
    }));
    tokio::time::timeout(grace, settled).await.is_ok()
}

/// This instance's name for operators: the setting, else the host name.
pub fn instance_name(settings: &Settings) -> String {
    if !settings.ownership.instance_name.is_empty() {
        return settings.ownership.instance_name.clone();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "orderd".to_owned())
}
