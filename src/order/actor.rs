//! The order actor: one per live order, a thin shell around the pure core.
//!
//! Commands are decided in batches (group commit): the commands that queued
//! up for the order while it was busy are decided one after another on the
//! in-memory order, then, together, in this order: persist the snapshot
//! with its outbox, the batch's command ids and its personal data (stored
//! apart, in the same atomic compare-and-set) → publish the outbox (one
//! round of acks) → answer the intake, which acks each message. A quiet
//! order's batch is one command; a hot order's is everything that arrived
//! meanwhile (at most [`MAX_BATCH`]), so a burst at one order costs one
//! write and one publish per batch, not per command.
//!
//! Invariants:
//! - one batch at a time (the mailbox), and within it one command after the
//!   other, so an order's commands are decided in the order the router
//!   delivered them;
//! - a read, a timer, or a stop is handled only after the commands routed
//!   before it are decided;
//! - a refused command is a [`Verdict`], never an `Err` from `handle` (that
//!   would stop the actor), and a reply send is never `?`-ed (the asker may
//!   have gone);
//! - the answer for a command is sent only once its change is in Redis; a
//!   refusal only once the order is known not to have moved (the batch's
//!   compare-and-set succeeded, or its stored version is unchanged);
//! - after a passing failure the in-memory order is dropped and reloaded,
//!   since the failed write may or may not have happened;
//! - a batch that begins with a create, at an actor that has not loaded its
//!   order yet, is decided on a blank order without loading one (a create
//!   is nearly always for a new order): if the order did exist, the
//!   compare-and-set on version 0 fails and the batch is decided again on
//!   the loaded order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef, MessagingErr};
use uuid::Uuid;

use orderd_core::{
    apply_change, execute, Command, CommandId, Ctx, Envelope, Order, OrderId, OrderState, Outcome,
    TenantId,
};

use super::messages::{
    Clock, Execution, OrderMsg, RetryReason, Routed, RouterMsg, Summary, Verdict,
};
use crate::bus::Publisher;
use crate::outbox;
use crate::store::{Snapshot, SnapshotStore, StoreError, TenantConfigs};
use crate::wire::ErrorBody;
use crate::{retry, telemetry};

/// The most commands decided in one batch (one snapshot write).
pub const MAX_BATCH: usize = 512;

/// What every order actor shares: storage, the publisher, the clock, limits.
#[derive(Clone)]
pub struct Deps {
    /// Snapshots, personal data, tenant configuration.
    pub store: Arc<dyn SnapshotStore>,
    /// The outbox publisher.
    pub publisher: Arc<dyn Publisher>,
    /// Tenant configurations, cached.
    pub configs: Arc<TenantConfigs>,
    /// The clock.
    pub clock: Clock,
    /// Stop after being idle this long.
    pub passivate_after: Duration,
    /// After a passing failure, how long later commands of the order wait
    /// at most for the failed one to come back (keeps the order's commands
    /// in order).
    pub hold_back: Duration,
    /// Where an INITIATED order asks for its validation plugins' verdicts
    /// (`None`: nobody asks, as in tests without NATS).
    pub plugins: Option<super::plugins::PluginRequests>,
    /// Whether the creates before a place in the commands stream are all
    /// decided (`None`: creates and commands share one lane, so they are).
    pub creates: Option<Arc<dyn super::messages::CreatesSettled>>,
}

/// A scheduled message to the actor itself.
type TimerHandle = JoinHandle<Result<(), MessagingErr<OrderMsg>>>;

/// The order actor (zero-sized; its state is [`OrderActorState`]).
pub struct OrderActor;

/// What an order actor starts with.
pub struct OrderArgs {
    /// Its order.
    pub order_id: OrderId,
    /// Shared dependencies.
    pub deps: Deps,
    /// The router that owns it (told when the actor is idle).
    pub router: ActorRef<RouterMsg>,
}

/// The order actor's state.
pub struct OrderActorState {
    order_id: OrderId,
    deps: Deps,
    router: ActorRef<RouterMsg>,
    /// The tenant of a blank order before its first command names one.
    placeholder_tenant: TenantId,
    /// The persisted snapshot, once loaded (version 0: none stored yet).
    snap: Option<Snapshot>,
    /// The snapshot's outbox has been published.
    outbox_published: bool,
    /// The snapshot in Redis still carries an outbox (published or not):
    /// once published, the in-memory copy is dropped to save memory, and
    /// this says passivation must still clear it in Redis.
    outbox_in_redis: bool,
    /// Routed messages handled, compared by the router with those it sent.
    handled: u64,
    last_activity: Instant,
    idle_reported: bool,
    /// A write was fenced: another instance owns the tenant; stop.
    fenced: bool,
    timer: Option<TimerHandle>,
    idle_check: Option<JoinHandle<()>>,
    publish_retry: Option<TimerHandle>,
    /// Outbox publishes failed in a row (the retry backs off).
    publish_failures: u32,
    /// Timer firings left undecided in a row (the retry backs off).
    timer_failures: u32,
    /// After a passing failure: the command to wait for, and until when.
    blocked_on: Option<(CommandId, Instant)>,
    /// Commands received and not yet decided (the next batch).
    pending: Vec<Execution>,
    /// A [`OrderMsg::Flush`] is in the mailbox.
    flush_queued: bool,
}

impl Actor for OrderActor {
    type Msg = OrderMsg;
    type State = OrderActorState;
    type Arguments = OrderArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<OrderMsg>,
        args: OrderArgs,
    ) -> Result<OrderActorState, ActorProcessingErr> {
        // No I/O here: the router awaits this. The snapshot loads with the
        // first message, where a failure is a verdict, not a dead actor.
        let period = (args.deps.passivate_after / 2).max(Duration::from_millis(50));
        let placeholder_tenant = TenantId::parse("_")?;
        let idle_check = myself.send_interval(period, || OrderMsg::IdleCheck);
        telemetry::actors_live(1.0);
        Ok(OrderActorState {
            placeholder_tenant,
            order_id: args.order_id,
            deps: args.deps,
            router: args.router,
            snap: None,
            outbox_published: true,
            outbox_in_redis: false,
            handled: 0,
            last_activity: Instant::now(),
            idle_reported: false,
            fenced: false,
            timer: None,
            idle_check: Some(idle_check),
            publish_retry: None,
            publish_failures: 0,
            timer_failures: 0,
            blocked_on: None,
            pending: Vec::new(),
            flush_queued: false,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<OrderMsg>,
        state: &mut OrderActorState,
    ) -> Result<(), ActorProcessingErr> {
        for handle in [state.timer.take(), state.publish_retry.take()]
            .into_iter()
            .flatten()
        {
            handle.abort();
        }
        if let Some(handle) = state.idle_check.take() {
            handle.abort();
        }
        telemetry::actors_live(-1.0);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<OrderMsg>,
        msg: OrderMsg,
        state: &mut OrderActorState,
    ) -> Result<(), ActorProcessingErr> {
        // Boxed: ractor keeps the actor's message loop, with this future
        // inline, allocated for the actor's whole life; the command path's
        // future is several KiB, so inline it would cost every live order
        // that much memory while it sits idle.
        Box::pin(state.handle_msg(myself.clone(), msg)).await;
        if state.fenced {
            // Another instance owns the order's tenant now: what this actor
            // holds may be stale, and the owner decides from here on.
            myself.stop(Some("fenced".into()));
        }
        Ok(())
    }
}

impl OrderActorState {
    /// One message, as [`Actor::handle`] receives it.
    async fn handle_msg(&mut self, myself: ActorRef<OrderMsg>, msg: OrderMsg) {
        let state = self;
        match msg {
            OrderMsg::Routed(routed) => {
                state.handled += 1;
                state.last_activity = Instant::now();
                state.idle_reported = false;
                match routed {
                    Routed::Execute(exec) => {
                        state.pending.push(*exec);
                        if state.pending.len() >= MAX_BATCH {
                            state.flush(&myself).await;
                        } else if !state.flush_queued {
                            // Behind the commands already in the mailbox:
                            // they join this batch.
                            state.flush_queued = myself.send_message(OrderMsg::Flush).is_ok();
                        }
                    }
                    Routed::Read(reply) => {
                        state.flush(&myself).await;
                        let order = match state.ensure_loaded(&myself).await {
                            Ok(snap) if snap.order.exists() => Some(Box::new(snap.order.clone())),
                            _ => None,
                        };
                        let _ = reply.send(order);
                    }
                    Routed::FireTimers => {
                        state.flush(&myself).await;
                        state.fire_timers(&myself).await;
                    }
                }
            }
            OrderMsg::Flush => {
                state.flush_queued = false;
                state.flush(&myself).await;
            }
            OrderMsg::TimerDue => {
                state.flush(&myself).await;
                state.fire_timers(&myself).await;
            }
            OrderMsg::RetryPublish => {
                state.publish_retry = None;
                state.flush(&myself).await;
                state.publish_outbox(&myself).await;
            }
            OrderMsg::IdleCheck => {
                if !state.idle_reported
                    && state.pending.is_empty()
                    && state.last_activity.elapsed() >= state.deps.passivate_after
                {
                    state.idle_reported = true;
                    let _ = state.router.cast(RouterMsg::Idle {
                        order_id: state.order_id,
                        actor: myself.get_id(),
                        handled: state.handled,
                    });
                }
            }
            OrderMsg::Stop(reply) => {
                state.flush(&myself).await;
                state.tidy_up(&myself).await;
                if let Some(reply) = reply {
                    let _ = reply.send(());
                }
                telemetry::passivated();
                myself.stop(Some("passivated".into()));
            }
        }
    }

    /// Decides the queued commands as one batch, persists and publishes
    /// their changes together, then answers each command.
    async fn flush(&mut self, myself: &ActorRef<OrderMsg>) {
        if self.pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        let span = tracing::debug_span!("batch", order_id = %self.order_id, size = batch.len());
        let verdicts =
            tracing::Instrument::instrument(self.decide_batch(myself, &batch), span.clone()).await;
        // Publish before the messages are acked: if orderd dies after this,
        // they were not acked, come back, and their redelivery loads the
        // order and re-publishes the outbox. Acking first could strand a
        // persisted outbox until the order's next command.
        let published = tracing::Instrument::instrument(self.publish_outbox(myself), span).await;
        for (exec, verdict) in batch.into_iter().zip(verdicts) {
            telemetry::command(exec.envelope.command.verb(), verdict.outcome_name());
            if let Some(reply) = exec.reply {
                // The intake may have given up (shutdown): fine.
                let _ = reply.send(verdict.published(published));
            }
        }
    }

    /// A snapshot of nothing stored: a blank order, whose tenant is set by
    /// the first command (only a create can apply to it).
    fn blank(&self) -> Snapshot {
        Snapshot::new(
            Order::blank(self.order_id, self.placeholder_tenant.clone()),
            Vec::new(),
            0,
        )
    }

    /// Loads the snapshot once, and re-publishes a leftover outbox.
    async fn ensure_loaded(
        &mut self,
        myself: &ActorRef<OrderMsg>,
    ) -> Result<&mut Snapshot, StoreError> {
        if self.snap.is_none() {
            let snap = match self.deps.store.load(self.order_id).await? {
                Some(snap) => snap,
                None => self.blank(),
            };
            self.outbox_published = snap.outbox.is_empty() || snap.published;
            self.outbox_in_redis = !snap.outbox.is_empty();
            self.snap = Some(snap);
            // After a restart or passivation nobody is asking its plugins.
            self.ask_plugins();
            if !self.outbox_published {
                tracing::info!(order_id = %self.order_id, "re-publishing the outbox left by an earlier run");
                self.publish_outbox(myself).await;
            }
            self.schedule_timer(myself);
        }
        self.snap.as_mut().ok_or(StoreError::NotLoaded)
    }

    /// Decides and persists a batch; one verdict per command, in order.
    async fn decide_batch(
        &mut self,
        myself: &ActorRef<OrderMsg>,
        batch: &[Execution],
    ) -> Vec<Verdict> {
        let mut verdicts = vec![None; batch.len()];
        let mut open = Vec::with_capacity(batch.len());
        for (i, exec) in batch.iter().enumerate() {
            if let Some((blocked, until)) = &self.blocked_on {
                if *blocked == exec.envelope.command_id || Instant::now() >= *until {
                    self.blocked_on = None;
                } else if matches!(exec.envelope.command, Command::Create(_)) {
                    // A create overtakes nothing (it comes first for its
                    // order), and the command waiting may wait for it: a
                    // partitioned tenant's creates come on another lane.
                } else {
                    verdicts[i] = Some(Verdict::Retry(RetryReason::WaitingForEarlier));
                    continue;
                }
            }
            open.push(i);
        }
        if let Some(&first) = open.first() {
            let execs: Vec<&Execution> = open.iter().map(|&i| &batch[i]).collect();
            let decided = self.run_batch(myself, &execs).await;
            if self.snap.as_ref().is_some_and(|s| !s.order.exists()) {
                // Nothing stored: the next command reads Redis again (the
                // order may be created there meanwhile, by another lane).
                self.snap = None;
            }
            if matches!(decided.first(), Some(Verdict::Retry(_))) {
                // The write may or may not have happened: reload next time,
                // and let the first of them come back before the later ones.
                self.snap = None;
                self.blocked_on = Some((
                    batch[first].envelope.command_id.clone(),
                    Instant::now() + self.deps.hold_back,
                ));
            }
            for (i, v) in open.into_iter().zip(decided) {
                verdicts[i] = Some(v);
            }
        }
        verdicts
            .into_iter()
            .map(|v| v.unwrap_or(Verdict::Retry(RetryReason::WaitingForEarlier)))
            .collect()
    }

    /// Decides `execs` on the latest snapshot, deciding them all again once
    /// if another instance wrote the order meanwhile.
    async fn run_batch(
        &mut self,
        myself: &ActorRef<OrderMsg>,
        execs: &[&Execution],
    ) -> Vec<Verdict> {
        let mut conflicts = 0;
        // A batch that begins with a create is for a new order, nearly
        // always: decide it on a blank order without loading, once (the
        // write is fenced on version 0; nothing stored means no outbox).
        let mut assume_new = self.snap.is_none()
            && execs
                .first()
                .is_some_and(|e| matches!(e.envelope.command, Command::Create(_)));
        if assume_new {
            self.snap = Some(self.blank());
            self.outbox_published = true;
            self.outbox_in_redis = false;
        }
        loop {
            match self.try_batch(myself, execs).await {
                Ok(verdicts) => return verdicts,
                Err(StoreError::StaleVersion { .. }) if assume_new => {
                    // The order existed after all (a create again, or
                    // redelivered): decide on what is stored.
                    tracing::debug!("the created order exists; loading it");
                    assume_new = false;
                    self.snap = None;
                }
                Err(StoreError::StaleVersion { .. }) if conflicts == 0 => {
                    // Another instance wrote this order: decide again on its
                    // version.
                    conflicts += 1;
                    tracing::info!("snapshot moved under us; reloading once");
                    self.snap = None;
                }
                Err(StoreError::Archived { .. }) => {
                    // Archived after its retention: it never changes again.
                    self.snap = None;
                    let answer = ErrorBody::order_archived();
                    return vec![Verdict::RefusedBefore(answer); execs.len()];
                }
                Err(StoreError::Fenced {
                    tenant,
                    mine,
                    stored,
                }) => {
                    tracing::info!(%tenant, %mine, %stored, commands = execs.len(), "another instance owns the tenant now: not deciding; the commands go back to it");
                    telemetry::fenced_write();
                    self.fenced = true;
                    return vec![Verdict::Retry(RetryReason::Fenced); execs.len()];
                }
                Err(e) => {
                    let reason = match e {
                        StoreError::StaleVersion { .. } => RetryReason::Conflict,
                        other => {
                            telemetry::redis_error();
                            RetryReason::Store(other.to_string())
                        }
                    };
                    tracing::warn!(reason = ?reason, commands = execs.len(), "commands not decided; they will be redelivered");
                    return vec![Verdict::Retry(reason); execs.len()];
                }
            }
        }
    }

    /// Decides each command on the in-memory order, then persists all the
    /// changes in one compare-and-set.
    async fn try_batch(
        &mut self,
        myself: &ActorRef<OrderMsg>,
        execs: &[&Execution],
    ) -> Result<Vec<Verdict>, StoreError> {
        let deps = self.deps.clone();
        let started = Instant::now();
        let exists = self.ensure_loaded(myself).await?.order.exists();
        if let (false, Some(creates), Some(first)) = (exists, &deps.creates, execs.first()) {
            // Not found: unless a create before it is still undecided.
            let waits = match (&first.envelope.command, first.position) {
                (Command::Create(_), _) | (_, None) => None,
                (_, Some(position)) => Some(
                    !creates
                        .settled_before(&first.envelope.tenant, first.envelope.order_id, position)
                        .await,
                ),
            };
            match waits {
                Some(true) => {
                    return Ok(vec![
                        Verdict::Retry(RetryReason::CreatePending);
                        execs.len()
                    ]);
                }
                Some(false) => {
                    // Settled now: a create decided since the load above is
                    // stored (before it was acknowledged), so read again.
                    self.snap = None;
                    self.ensure_loaded(myself).await?;
                }
                None => {}
            }
        }
        let outbox_published = self.outbox_published;
        let snap = self.snap.as_mut().ok_or(StoreError::NotLoaded)?;
        let mut verdicts = Vec::with_capacity(execs.len());
        // The state Redis holds, for the indexes: before the first change.
        let previous_state = snap.order.exists().then_some(snap.order.state);
        let mut applied = 0_usize;
        let mut refused = false;
        let mut created = false;
        // The configuration of an existing order, looked up once per batch.
        let mut created_under = None;
        for exec in execs {
            let envelope = &exec.envelope;
            // An order is decided under the configuration version it was
            // created under; only a new order takes the current one.
            let config = if snap.order.exists() {
                match &created_under {
                    Some(config) => Arc::clone(config),
                    None => {
                        let tenant = &snap.order.tenant;
                        let version = snap.order.schema_version;
                        let config = deps
                            .configs
                            .at(deps.store.as_ref(), tenant, version)
                            .await?;
                        created_under.insert(config).clone()
                    }
                }
            } else {
                // Not created yet: the order belongs to whoever creates it.
                snap.order = Order::blank(snap.order.id, envelope.tenant.clone());
                deps.configs
                    .get(deps.store.as_ref(), &envelope.tenant)
                    .await?
            };
            let ctx = Ctx {
                now: (deps.clock)(),
                config: &config,
                fresh_ids: [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()],
            };
            // A redelivered refusal gets the answer it got before: decided
            // again on a later state it could pass, after its client was
            // told it was refused.
            if let Some(answer) = refused_before(snap, &envelope.command_id) {
                verdicts.push(Verdict::RefusedBefore(answer));
                continue;
            }
            match execute(&snap.order, envelope, &ctx) {
                Outcome::Duplicate => verdicts.push(Verdict::Duplicate(summary(&snap.order))),
                Outcome::Refused(rejection) => {
                    exec.span.in_scope(|| {
                        tracing::info!(
                            order_id = %envelope.order_id,
                            tenant = %envelope.tenant,
                            command = envelope.command.verb(),
                            code = rejection.code(),
                            "command refused"
                        );
                    });
                    refused = true;
                    let answer =
                        serde_json::to_string(&ErrorBody::from(&rejection)).unwrap_or_default();
                    snap.new_refusals
                        .push((envelope.command_id.clone(), answer));
                    verdicts.push(Verdict::Refused(rejection));
                }
                Outcome::Applied(change) => {
                    snap.new_personal.extend(change.personal_data());
                    if applied == 0 && outbox_published {
                        // An outbox not yet published rides along with the
                        // new messages; a published one is dropped.
                        snap.outbox.clear();
                    }
                    // Changed in place, not on a copy: when the write fails
                    // (an `Err` from here), the in-memory snapshot is dropped
                    // and the next command reloads it from Redis.
                    apply_change(&mut snap.order, &change);
                    snap.new_command_ids.push(change.command_id.clone());
                    let first_new = snap.outbox.len();
                    snap.outbox.extend(outbox::for_change(&snap.order, &change));
                    if let Some(traceparent) = &exec.traceparent {
                        for msg in &mut snap.outbox[first_new..] {
                            msg.traceparent = Some(traceparent.clone());
                        }
                    }
                    applied += 1;
                    created |= matches!(envelope.command, Command::Create(_));
                    verdicts.push(Verdict::Applied(summary(&snap.order)));
                }
            }
        }
        telemetry::stage("decide", started.elapsed());
        if applied == 0 {
            if refused {
                // A refusal is final (the message is terminated): record it
                // with the order, fenced like a change, so it is known to
                // have been decided on the latest state (another instance
                // may have moved the order on) and a redelivery repeats it.
                let persisting = Instant::now();
                deps.store.refuse(snap).await?;
                telemetry::stage("persist", persisting.elapsed());
            }
            return Ok(verdicts);
        }
        snap.version += 1;
        // The compare-and-set also fences the batch's refusals: nobody wrote
        // the order between the load they were decided on and this write.
        // It stores the personal data the snapshot refers to in the same step.
        let persisting = Instant::now();
        deps.store.save(snap, previous_state).await?;
        telemetry::stage("persist", persisting.elapsed());
        tracing::debug!(
            seq = snap.order.seq,
            state = snap.order.state.as_str(),
            applied,
            "changes persisted"
        );
        self.outbox_published = false;
        self.outbox_in_redis = true;
        self.schedule_timer(myself);
        if created {
            self.ask_plugins();
        }
        Ok(verdicts)
    }

    /// An INITIATED order asks the plugins it waits for (from another task:
    /// their verdicts come back as commands).
    fn ask_plugins(&self) {
        let (Some(plugins), Some(snap)) = (&self.deps.plugins, &self.snap) else {
            return;
        };
        let order = &snap.order;
        if order.exists()
            && order.state == OrderState::Initiated
            && !order.validation.waiting_for.is_empty()
        {
            plugins.ask(order);
        }
    }

    /// Publishes the snapshot's outbox if it is not yet; on failure, tries
    /// again a little later.
    async fn publish_outbox(&mut self, myself: &ActorRef<OrderMsg>) -> bool {
        let Some(snap) = self.snap.as_mut() else {
            // Not loaded (after a passing failure): nothing known to owe.
            return true;
        };
        if self.outbox_published || snap.outbox.is_empty() {
            self.outbox_published = true;
            return true;
        }
        let publishing = Instant::now();
        match self.deps.publisher.publish_all(&snap.outbox).await {
            Ok(()) => {
                telemetry::stage("publish", publishing.elapsed());
                self.publish_failures = 0;
                self.outbox_published = true;
                // Sent: a live order need not keep the bodies in memory.
                snap.outbox = Vec::new();
                if snap.version == 1 && self.deps.creates.is_some() {
                    // A new order of a partitioned tenant: its partition's
                    // owner (maybe another instance) loads it next, and
                    // would publish this outbox again (core subscribers see
                    // every repeat). In the background: only a saving.
                    let (store, order, version) =
                        (self.deps.store.clone(), snap.order.id, snap.version);
                    tokio::spawn(async move {
                        let _ = store.mark_published(order, version).await;
                    });
                }
                true
            }
            Err(e) => {
                telemetry::publish_error();
                tracing::warn!(error = %e, "outbox not published yet; will retry");
                if self.publish_retry.is_none() {
                    let delay = retry::delay_after(self.publish_failures);
                    self.publish_failures = self.publish_failures.saturating_add(1);
                    self.publish_retry = Some(myself.send_after(delay, || OrderMsg::RetryPublish));
                }
                false
            }
        }
    }

    /// Fires due timers as an internal command.
    async fn fire_timers(&mut self, myself: &ActorRef<OrderMsg>) {
        self.timer = None;
        let now = (self.deps.clock)();
        let Ok(snap) = self.ensure_loaded(myself).await else {
            // Redis is away; the sweeper will find the timer again.
            return;
        };
        let order = &snap.order;
        if !order.exists() || order.timers.is_empty() {
            return;
        }
        if !order.timers.iter().any(|t| t.due <= now) {
            // Woken a little early: wait for the due time.
            self.schedule_timer(myself);
            return;
        }
        let Ok(command_id) = CommandId::parse(&format!("orderd:fire-timers:{}", order.seq)) else {
            return;
        };
        let envelope = Envelope {
            tenant: order.tenant.clone(),
            order_id: order.id,
            command_id,
            by: "orderd".into(),
            command: Command::FireTimers,
            expected_seq: None,
        };
        let span = tracing::info_span!(
            "command",
            order_id = %envelope.order_id,
            tenant = %envelope.tenant,
            command = "fire_timers"
        );
        let exec = Execution {
            envelope,
            reply: None,
            span: span.clone(),
            traceparent: None,
            position: None,
        };
        let verdicts = tracing::Instrument::instrument(
            self.decide_batch(myself, std::slice::from_ref(&exec)),
            span.clone(),
        )
        .await;
        if let Some(Verdict::Applied(_)) = verdicts.first() {
            telemetry::timer_fired();
        }
        if let Some(Verdict::Retry(_)) = verdicts.first() {
            // Try again later (the sweeper would, too).
            let delay = retry::delay_after(self.timer_failures);
            self.timer_failures = self.timer_failures.saturating_add(1);
            self.timer = Some(myself.send_after(delay, || OrderMsg::TimerDue));
        } else {
            self.timer_failures = 0;
        }
        tracing::Instrument::instrument(self.publish_outbox(myself), span).await;
    }

    /// Schedules a `TimerDue` for the order's earliest timer.
    fn schedule_timer(&mut self, myself: &ActorRef<OrderMsg>) {
        if let Some(old) = self.timer.take() {
            old.abort();
        }
        let Some(due) = self
            .snap
            .as_ref()
            .and_then(|s| s.order.timers.iter().map(|t| t.due).min())
        else {
            return;
        };
        let now = (self.deps.clock)();
        let wait = Duration::from_millis(u64::try_from(due.0.saturating_sub(now.0)).unwrap_or(0));
        self.timer = Some(myself.send_after(wait, || OrderMsg::TimerDue));
    }

    /// Before stopping: publish what is owed, and clear a published outbox
    /// in Redis so a later load does not send it again.
    async fn tidy_up(&mut self, myself: &ActorRef<OrderMsg>) {
        self.publish_outbox(myself).await;
        let Some(snap) = self.snap.as_ref() else {
            return;
        };
        if !self.outbox_published || !self.outbox_in_redis || !snap.order.exists() {
            return;
        }
        let mut cleared = Snapshot::new(snap.order.clone(), Vec::new(), snap.version + 1);
        cleared.new_command_ids.clone_from(&snap.new_command_ids);
        match self
            .deps
            .store
            .save(&mut cleared, Some(snap.order.state))
            .await
        {
            Ok(()) => {
                self.snap = Some(cleared);
                self.outbox_in_redis = false;
            }
            // Harmless: the next load re-publishes, and the stream dedupes.
            Err(e) => tracing::debug!(order_id = %self.order_id, error = %e, "outbox not cleared"),
        }
    }
}

/// The answer a command got when the order refused it before, if it did.
fn refused_before(snap: &Snapshot, command: &CommandId) -> Option<ErrorBody> {
    let answer = snap.refusals.get(command)?;
    Some(serde_json::from_str(answer).unwrap_or_else(|_| {
        ErrorBody::error(
            "ORD-500-INTERNAL",
            "the command was refused at an earlier delivery; that answer is unreadable",
        )
    }))
}

fn summary(order: &Order) -> Summary {
    Summary {
        order_id: order.id,
        seq: order.seq,
        state: order.state,
        published: false,
    }
}

impl Verdict {
    /// The verdict, noting whether the order's outbox is published.
    fn published(self, published: bool) -> Verdict {
        match self {
            Verdict::Applied(s) => Verdict::Applied(Summary { published, ..s }),
            Verdict::Duplicate(s) => Verdict::Duplicate(Summary { published, ..s }),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    //! The actor and router against in-memory storage and messaging: no
    //! servers, the clock set by the test.

    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;

    use futures::future::BoxFuture;
    use orderd_core::command::CreateOrder;
    use orderd_core::model::{Client, ExecutionFlow, OrderSummary};
    use orderd_core::TenantConfig;

    use super::*;
    use crate::bus::BusError;
    use crate::order::Router;
    use crate::outbox::OutboxMsg;
    use crate::store::TenantConfigs;
    use orderd_core::{Rejection, Timestamp};

    #[derive(Default)]
    struct MemStore {
        snaps: Mutex<HashMap<OrderId, Snapshot>>,
        personal: AtomicUsize,
        saves: AtomicUsize,
        loads: AtomicUsize,
        /// The next save fails as if another instance had written first.
        conflict_once: AtomicBool,
        /// Saves fail as if another instance owned the tenant now.
        fenced: AtomicBool,
    }

    impl SnapshotStore for MemStore {
        fn load(&self, order: OrderId) -> BoxFuture<'_, Result<Option<Snapshot>, StoreError>> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            let s = self.snaps.lock().unwrap().get(&order).cloned();
            Box::pin(async move { Ok(s) })
        }
        fn save<'a>(
            &'a self,
            snapshot: &'a mut Snapshot,
            _previous: Option<OrderState>,
        ) -> BoxFuture<'a, Result<(), StoreError>> {
            Box::pin(async move {
                if self.fenced.load(Ordering::SeqCst) {
                    return Err(StoreError::Fenced {
                        tenant: snapshot.order.tenant.clone(),
                        mine: crate::store::Epoch {
                            generation: 1,
                            revision: 1,
                        },
                        stored: crate::store::Epoch {
                            generation: 1,
                            revision: 2,
                        },
                    });
                }
                let mut snaps = self.snaps.lock().unwrap();
                let found = snaps.get(&snapshot.order.id).map_or(0, |s| s.version);
                if self.conflict_once.swap(false, Ordering::SeqCst) {
                    // Another writer bumps the stored version (same order).
                    if let Some(s) = snaps.get_mut(&snapshot.order.id) {
                        s.version += 1;
                    }
                    return Err(StoreError::StaleVersion {
                        order: snapshot.order.id,
                        expected: snapshot.version - 1,
                        found: found + 1,
                    });
                }
                if found != snapshot.version - 1 {
                    return Err(StoreError::StaleVersion {
                        order: snapshot.order.id,
                        expected: snapshot.version - 1,
                        found,
                    });
                }
                self.personal
                    .fetch_add(snapshot.new_personal.len(), Ordering::SeqCst);
                snapshot.new_command_ids.clear();
                snapshot.new_personal.clear();
                snapshot.refusals_recorded();
                snaps.insert(snapshot.order.id, snapshot.clone());
                self.saves.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        }
        fn refuse<'a>(
            &'a self,
            snapshot: &'a mut Snapshot,
        ) -> BoxFuture<'a, Result<(), StoreError>> {
            Box::pin(async move {
                let mut snaps = self.snaps.lock().unwrap();
                let stored = snaps.get_mut(&snapshot.order.id);
                let found = stored.as_ref().map_or(0, |s| s.version);
                if found != snapshot.version {
                    return Err(StoreError::StaleVersion {
                        order: snapshot.order.id,
                        expected: snapshot.version,
                        found,
                    });
                }
                if let Some(stored) = stored {
                    stored
                        .refusals
                        .extend(snapshot.new_refusals.iter().cloned());
                }
                snapshot.refusals_recorded();
                Ok(())
            })
        }
        fn tenant_config<'a>(
            &'a self,
            _tenant: &'a TenantId,
        ) -> BoxFuture<'a, Result<TenantConfig, StoreError>> {
            Box::pin(async { Ok(TenantConfig::default()) })
        }
    }

    #[derive(Default)]
    struct MemPublisher {
        sent: Mutex<Vec<OutboxMsg>>,
        down: AtomicBool,
    }

    impl Publisher for MemPublisher {
        fn publish_all<'a>(&'a self, msgs: &'a [OutboxMsg]) -> BoxFuture<'a, Result<(), BusError>> {
            Box::pin(async move {
                if self.down.load(Ordering::SeqCst) {
                    return Err(BusError::Publish {
                        subject: msgs[0].subject.clone(),
                        why: "down".into(),
                    });
                }
                self.sent.lock().unwrap().extend_from_slice(msgs);
                Ok(())
            })
        }
    }

    struct World {
        store: Arc<MemStore>,
        publisher: Arc<MemPublisher>,
        router: ActorRef<RouterMsg>,
        tenant: TenantId,
    }

    async fn world() -> World {
        let store = Arc::new(MemStore::default());
        let publisher = Arc::new(MemPublisher::default());
        let deps = Deps {
            store: store.clone(),
            publisher: publisher.clone(),
            configs: Arc::new(TenantConfigs::new(Duration::from_secs(60))),
            clock: Arc::new(|| Timestamp(1_700_000_000_000)),
            passivate_after: Duration::from_secs(60),
            hold_back: Duration::from_secs(1),
            plugins: None,
            creates: None,
        };
        let (router, _) = Actor::spawn(None, Router, deps).await.unwrap();
        World {
            store,
            publisher,
            router,
            tenant: TenantId::parse("acme").unwrap(),
        }
    }

    fn create() -> Command {
        Command::Create(Box::new(CreateOrder {
            client: Client {
                id: "c-1".into(),
                name: "Acme".into(),
            },
            client_order_id: "PO-1".into(),
            ready_to_process: true,
            contact: Some(orderd_core::command::ContactInput::Details(
                orderd_core::command::Contact {
                    name: "Jane".into(),
                    phone: "+1555".into(),
                },
            )),
            location: None,
            return_location: None,
            execution_flow: ExecutionFlow::Sequential,
            summary: OrderSummary::default(),
            work_orders: vec![orderd_core::command::WorkOrderSpec {
                kind: "PICKUP".into(),
                ..Default::default()
            }],
            custom: Default::default(),
        }))
    }

    async fn run(w: &World, order_id: OrderId, id: &str, command: Command) -> Verdict {
        let (tx, rx) = ractor::concurrency::oneshot();
        let exec = Execution {
            envelope: Envelope {
                tenant: w.tenant.clone(),
                order_id,
                command_id: CommandId::parse(id).unwrap(),
                by: "test".into(),
                command,
                expected_seq: None,
            },
            reply: Some(tx.into()),
            span: tracing::Span::none(),
            traceparent: None,
            position: None,
        };
        w.router
            .cast(RouterMsg::Route {
                order_id,
                msg: Routed::Execute(Box::new(exec)),
            })
            .unwrap();
        rx.await.unwrap()
    }

    async fn settle(w: &World, order_id: OrderId) -> Option<Box<Order>> {
        // A read is queued behind everything before it: when it answers,
        // the actor has finished (and published) the earlier commands.
        match w
            .router
            .call(
                |reply| RouterMsg::Read { order_id, reply },
                Some(Duration::from_secs(5)),
            )
            .await
            .unwrap()
        {
            ractor::rpc::CallResult::Success(Ok(order)) => order,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_fenced_write_sends_the_command_back_and_stops_the_actor() {
        let w = world().await;
        let id = OrderId(Uuid::new_v4());
        assert!(matches!(
            run(&w, id, "k-1", create()).await,
            Verdict::Applied(_)
        ));
        w.store.fenced.store(true, Ordering::SeqCst);
        let saves = w.store.saves.load(Ordering::SeqCst);
        let held = run(&w, id, "k-2", Command::Hold { reason: None }).await;
        assert!(
            matches!(held, Verdict::Retry(RetryReason::Fenced)),
            "{held:?}"
        );
        assert_eq!(w.store.saves.load(Ordering::SeqCst), saves);
        // The actor stopped: what it held may be stale, so nothing answers
        // from memory (a read goes to the store).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let read = w
                .router
                .call(
                    |reply| RouterMsg::Read {
                        order_id: id,
                        reply,
                    },
                    Some(Duration::from_secs(5)),
                )
                .await
                .unwrap();
            if matches!(read, ractor::rpc::CallResult::Success(Err(_))) {
                break;
            }
            assert!(Instant::now() < deadline, "the fenced actor is still live");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Owner again: the command, delivered again, loads the order anew.
        w.store.fenced.store(false, Ordering::SeqCst);
        let loads = w.store.loads.load(Ordering::SeqCst);
        let held = run(&w, id, "k-2", Command::Hold { reason: None }).await;
        assert!(matches!(held, Verdict::Applied(_)), "{held:?}");
        assert!(w.store.loads.load(Ordering::SeqCst) > loads);
    }

    #[tokio::test]
    async fn a_change_is_persisted_before_its_verdict_and_published_after() {
        let w = world().await;
        let id = OrderId(Uuid::new_v4());
        let verdict = run(&w, id, "k-1", create()).await;
        let Verdict::Applied(s) = verdict else {
            panic!("{verdict:?}")
        };
        assert_eq!(s.seq, 1);
        // Persisted, with its outbox, and the contact stored apart first.
        let snap = w.store.snaps.lock().unwrap().get(&id).cloned().unwrap();
        assert_eq!(snap.version, 1);
        assert_eq!(snap.order.seq, 1);
        assert!(!snap.outbox.is_empty());
        assert_eq!(w.store.personal.load(Ordering::SeqCst), 1);
        settle(&w, id).await;
        let sent = w.publisher.sent.lock().unwrap().clone();
        assert_eq!(sent, snap.outbox);
        assert_eq!(sent[0].msg_id, format!("{id}:1"));
        assert!(sent[1..]
            .iter()
            .all(|m| m.msg_id.starts_with(&format!("{id}:1:"))));

        // The same command id again: a duplicate, nothing written.
        let saves = w.store.saves.load(Ordering::SeqCst);
        let again = run(&w, id, "k-1", create()).await;
        assert!(
            matches!(again, Verdict::Duplicate(ref s) if s.seq == 1 && s.published),
            "{again:?}"
        );
        assert_eq!(w.store.saves.load(Ordering::SeqCst), saves);
    }

    #[tokio::test]
    async fn a_create_is_decided_without_a_load_and_one_for_an_existing_order_finds_it() {
        let w = world().await;
        let id = OrderId(Uuid::new_v4());
        let created = run(&w, id, "k-1", create()).await;
        assert!(matches!(created, Verdict::Applied(_)), "{created:?}");
        assert_eq!(
            w.store.loads.load(Ordering::SeqCst),
            0,
            "a new order: no load"
        );

        // Another instance created the order; this one's actor has not
        // loaded it, and the create comes again (redelivered).
        let other = world().await;
        let stored = w.store.snaps.lock().unwrap().get(&id).cloned().unwrap();
        other.store.snaps.lock().unwrap().insert(id, stored.clone());
        let again = run(&other, id, "k-1", create()).await;
        assert!(
            matches!(again, Verdict::Duplicate(ref s) if s.seq == 1),
            "{again:?}"
        );
        assert_eq!(
            other.store.saves.load(Ordering::SeqCst),
            0,
            "nothing written"
        );
        assert_eq!(
            other.store.loads.load(Ordering::SeqCst),
            1,
            "loaded once it was found"
        );
        assert_eq!(other.store.snaps.lock().unwrap().get(&id), Some(&stored));
        // A create under another id for the existing order is decided on
        // the stored order, and refused.
        let other_id = run(&other, id, "k-2", create()).await;
        assert!(matches!(other_id, Verdict::Refused(_)), "{other_id:?}");
    }

    #[tokio::test]
    async fn an_unpublished_outbox_rides_along_with_the_next_change() {
        let w = world().await;
        let id = OrderId(Uuid::new_v4());
        w.publisher.down.store(true, Ordering::SeqCst);
        let created = run(&w, id, "k-1", create()).await;
        // Durable but not yet published: the intake naks, so the message
        // comes back and retries the publish even if orderd dies now.
        assert!(
            matches!(created, Verdict::Applied(ref s) if !s.published),
            "{created:?}"
        );
        assert!(w.publisher.sent.lock().unwrap().is_empty());

        w.publisher.down.store(false, Ordering::SeqCst);
        let held = run(&w, id, "k-2", Command::Hold { reason: None }).await;
        assert!(
            matches!(held, Verdict::Applied(ref s) if s.seq == 2 && s.published),
            "{held:?}"
        );
        settle(&w, id).await;
        let ids: Vec<String> = w
            .publisher
            .sent
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.kind == crate::outbox::OutboxKind::Event)
            .map(|m| m.msg_id.clone())
            .collect();
        assert_eq!(ids, vec![format!("{id}:1"), format!("{id}:2")], "in order");
    }

    #[tokio::test]
    async fn a_write_race_lost_once_is_decided_again_on_the_new_version() {
        let w = world().await;
        let id = OrderId(Uuid::new_v4());
        assert!(matches!(
            run(&w, id, "k-1", create()).await,
            Verdict::Applied(_)
        ));
        w.store.conflict_once.store(true, Ordering::SeqCst);
        let held = run(&w, id, "k-2", Command::Hold { reason: None }).await;
        // Reloaded (version 2 after the other writer), decided again, saved as 3.
        assert!(
            matches!(held, Verdict::Applied(ref s) if s.seq == 2 && s.published),
            "{held:?}"
        );
        let snap = w.store.snaps.lock().unwrap().get(&id).cloned().unwrap();
        assert_eq!(snap.version, 3);
        assert_eq!(snap.order.state, OrderState::OnHold);
    }

    #[tokio::test]
    async fn a_burst_at_one_order_is_decided_in_order_with_fewer_writes() {
        let w = world().await;
        let id = OrderId(Uuid::new_v4());
        assert!(matches!(
            run(&w, id, "k-0", create()).await,
            Verdict::Applied(_)
        ));
        let saves_before = w.store.saves.load(Ordering::SeqCst);
        // Routed all at once, as the intake does under a burst: hold, resume,
        // hold, …, with one refusal (a second hold) in the middle.
        let mut answers = Vec::new();
        for i in 1..=200_u32 {
            let command = if i == 100 || i % 2 == 1 {
                Command::Hold { reason: None }
            } else {
                Command::Resume
            };
            let (tx, rx) = ractor::concurrency::oneshot();
            let exec = Execution {
                envelope: Envelope {
                    tenant: w.tenant.clone(),
                    order_id: id,
                    command_id: CommandId::parse(&format!("k-{i}")).unwrap(),
                    by: "test".into(),
                    command,
                    expected_seq: None,
                },
                reply: Some(tx.into()),
                span: tracing::Span::none(),
                traceparent: None,
                position: None,
            };
            w.router
                .cast(RouterMsg::Route {
                    order_id: id,
                    msg: Routed::Execute(Box::new(exec)),
                })
                .unwrap();
            answers.push(rx);
        }
        let mut seqs = Vec::new();
        let mut refused = Vec::new();
        for (i, rx) in answers.into_iter().enumerate() {
            match rx.await.unwrap() {
                Verdict::Applied(s) => {
                    assert!(s.published, "answered after the publish");
                    seqs.push(s.seq);
                }
                Verdict::Refused(r) => refused.push((i + 1, r)),
                other => panic!("{other:?}"),
            }
        }
        // 100 and 101 are holds of an order held by 99: refused, in the
        // middle of a batch, and the rest carries on from 102's resume.
        let expected: Vec<u64> = (2..2 + seqs.len() as u64).collect();
        assert_eq!(seqs, expected, "applied in routing order, no gaps");
        assert_eq!(seqs.len(), 198);
        let refused_at: Vec<usize> = refused.iter().map(|(i, _)| *i).collect();
        assert_eq!(refused_at, vec![100, 101], "{refused:?}");
        let saves = w.store.saves.load(Ordering::SeqCst) - saves_before;
        assert!(saves < 50, "batched: {saves} writes for 200 commands");
        let order = settle(&w, id).await.unwrap();
        assert_eq!(order.seq, 1 + seqs.len() as u64);
        let events = w
            .publisher
            .sent
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.kind == crate::outbox::OutboxKind::Event)
            .count();
        assert_eq!(events, 1 + seqs.len(), "one event message per change");
    }

    #[tokio::test]
    async fn a_redelivered_refusal_repeats_its_answer_after_the_order_moved_on() {
        let w = world().await;
        let id = OrderId(Uuid::new_v4());
        assert!(matches!(
            run(&w, id, "k-1", create()).await,
            Verdict::Applied(_)
        ));
        // A resume of an order not on hold: refused, and recorded.
        let Verdict::Refused(first) = run(&w, id, "k-2", Command::Resume).await else {
            panic!("a resume of an order not on hold is refused")
        };
        let stored = w.store.snaps.lock().unwrap()[&id].refusals.clone();
        assert!(
            stored.contains_key(&CommandId::parse("k-2").unwrap()),
            "{stored:?}"
        );
        assert!(matches!(
            run(&w, id, "k-3", Command::Hold { reason: None }).await,
            Verdict::Applied(_)
        ));
        // The same resume again (its ack was lost, say): on the held order
        // it would now pass; it gets the answer it got before instead.
        let again = run(&w, id, "k-2", Command::Resume).await;
        let Verdict::RefusedBefore(answer) = again else {
            panic!("{again:?}")
        };
        assert_eq!(answer.code, first.code());
        assert_eq!(settle(&w, id).await.unwrap().state, OrderState::OnHold);
    }

    #[tokio::test]
    async fn a_refusal_is_a_verdict_and_the_actor_lives_on() {
        let w = world().await;
        let id = OrderId(Uuid::new_v4());
        let refused = run(&w, id, "k-1", Command::Resume).await;
        assert_eq!(refused, Verdict::Refused(Rejection::OrderNotFound));
        assert!(w.store.snaps.lock().unwrap().is_empty(), "nothing written");
        assert!(matches!(
            run(&w, id, "k-2", create()).await,
            Verdict::Applied(_)
        ));
        assert!(settle(&w, id).await.is_some());
    }
}
