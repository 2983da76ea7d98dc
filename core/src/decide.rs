//! `decide`: the rules of the order lifecycle.
//!
//! A command first gives its own events (or a refusal). Then the flow engine,
//! [`Decision::settle`], looks at the resulting state and adds what follows
//! from it until nothing more does: start the order, dispatch the next job,
//! cancel a failed group, resolve a cancellation, add returns, execute or close.
//! Because the flow engine reads state rather than the command, the same rules
//! hold whichever command led there (a resume, a late job update, a verdict).
//!
//! Invariants the rules keep (and the property tests check):
//! - nothing is dispatched while the order is ON_HOLD, CREATED with
//!   readyToProcess false, INITIATED, or while a cancellation is ATTEMPTING;
//! - SEQUENTIAL has at most one work order with a job out;
//! - a job is sent at most once per work-order attempt;
//! - a refused command leaves the order exactly as it was.

use crate::apply::apply_at;
use crate::command::{
    Command, ContactInput, CreateOrder, Ctx, DetailsPatch, Envelope, JobUpdate, LocationInput,
    PluginVerdict, StopInput, UpdateOrder,
};
use crate::config::RETURN_TYPE;
use crate::event::{Event, RegisteredWorkOrder, Registration, Sealed};
use crate::ids::{ContactId, LocationId, Timestamp, WorkOrderId};
use crate::model::{
    CancellationStatus, CloseReason, DropDetails, ExecutionFlow, IgnoredWhy, JobStatus, Order,
    OrderState, Stop, TimerKind, UpdateGroup, WorkOrder, WorkOrderDetails, WorkOrderState,
};
use crate::rejection::Rejection;
use crate::validate::{self, Problems};

/// The reason code recorded when a job completes before its cancel took effect.
pub const COMPLETED_BEFORE_CANCEL: &str = "COMPLETED_BEFORE_CANCEL";
/// The failure reason recorded when dispatch cancels a job on its own.
pub const CANCELLED_BY_DISPATCH: &str = "CANCELLED_BY_DISPATCH";

/// Decides the events a command causes, or refuses it. Pure: the same order,
/// envelope and context always give the same answer.
pub fn decide(order: &Order, envelope: &Envelope, ctx: &Ctx<'_>) -> Result<Vec<Event>, Rejection> {
    if let Command::Create(create) = &envelope.command {
        if order.exists() {
            return Err(Rejection::OrderExists);
        }
        let mut d = Decision::new(order, envelope, ctx);
        d.create(create)?;
        d.settle();
        return Ok(d.events);
    }
    if !order.exists() || order.tenant != envelope.tenant {
        // Another tenant's order is indistinguishable from no order at all.
        return Err(Rejection::OrderNotFound);
    }
    if let Some(expected) = envelope.expected_seq {
        if expected != order.seq {
            return Err(Rejection::SeqMismatch {
                expected,
                actual: order.seq,
            });
        }
    }
    let mut d = Decision::new(order, envelope, ctx);
    match &envelope.command {
        Command::Create(_) => unreachable!("handled above"),
        Command::Update(u) => d.update(u)?,
        Command::MarkReady => d.mark_ready()?,
        Command::Hold { reason } => d.hold(reason)?,
        Command::Resume => d.resume()?,
        Command::Cancel { reason } => d.cancel(reason)?,
        Command::CancelWorkOrder { work_order, reason } => {
            d.cancel_work_order(*work_order, reason)?;
        }
        Command::HoldWorkOrder { work_order, reason } => {
            d.hold_work_order(*work_order, reason)?;
        }
        Command::ResumeWorkOrder { work_order } => d.resume_work_order(*work_order)?,
        Command::UpdateWorkOrder {
            work_order,
            details,
        } => d.update_work_order(*work_order, details)?,
        Command::AddReturn { returns, details } => d.add_client_return(*returns, details)?,
        Command::Close => d.close()?,
        Command::SetSubState { to } => d.set_sub_state(to)?,
        Command::Job(update) => d.job_update(update)?,
        Command::RecordPluginVerdict { plugin, verdict } => d.plugin_verdict(plugin, verdict)?,
        Command::FireTimers => d.fire_timers()?,
    }
    d.settle();
    Ok(d.events)
}

/// The command's verb, for refusals.
fn verb(envelope: &Envelope) -> &'static str {
    envelope.command.verb()
}

/// A decision under way: a scratch copy of the order with the events so far
/// applied to it.
struct Decision<'a> {
    order: Order,
    events: Vec<Event>,
    envelope: &'a Envelope,
    ctx: &'a Ctx<'a>,
    next_fresh_id: usize,
}

impl<'a> Decision<'a> {
    fn new(order: &Order, envelope: &'a Envelope, ctx: &'a Ctx<'a>) -> Self {
        Self {
            order: order.clone_for_decision(),
            events: Vec::new(),
            envelope,
            ctx,
            next_fresh_id: 0,
        }
    }

    fn emit(&mut self, event: Event) {
        apply_at(&mut self.order, &event, self.ctx.now, &self.envelope.by);
        self.events.push(event);
    }

    fn fresh_id(&mut self) -> uuid::Uuid {
        // Ctx::FRESH_IDS covers the order's own (contact, location, return
        // location); a work order's pickup and drop given in full take ids
        // derived from the first, which is random: unique in practice, and
        // the same for the same context (the core stays a pure function).
        let n = self.next_fresh_id;
        self.next_fresh_id += 1;
        if let Some(id) = self.ctx.fresh_ids.get(n) {
            return *id;
        }
        let seed = self.ctx.fresh_ids[0].as_u128();
        let mixed = seed ^ (n as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
        uuid::Builder::from_random_bytes(mixed.to_be_bytes()).into_uuid()
    }

    fn refuse_final(&self) -> Result<(), Rejection> {
        if self.order.state.is_final() {
            return Err(Rejection::OrderImmutable {
                state: self.order.state,
            });
        }
        Ok(())
    }

    // ---- commands ---------------------------------------------------------

    fn create(&mut self, c: &CreateOrder) -> Result<(), Rejection> {
        let config = self.ctx.config;
        let mut p = Problems::default();
        validate::create(&mut p, c, config);
        let custom = validate::custom_attributes(&mut p, &c.custom, config, true);
        if !p.is_empty() {
            return Err(Rejection::InvalidFields(p.0));
        }
        let contact_id = self.contact(&c.contact);
        let location_id = self.location(&c.location);
        let return_location_id = self.location(&c.return_location);
        let mut work_orders = Vec::with_capacity(c.work_orders.len());
        for (w, n) in c.work_orders.iter().zip(1u32..) {
            let Some(t) = config.work_order_type(&w.kind) else {
                continue;
            };
            let details = WorkOrderDetails {
                items: w.items.clone(),
                instructions: w.instructions.clone(),
                pickup: self.stop(&w.pickup),
                drop: self.stop(&w.drop),
            };
            work_orders.push(RegisteredWorkOrder {
                id: WorkOrderId(n),
                kind: w.kind.clone(),
                job_type: t.job_type,
                max_attempts: t.max_attempts.max(1),
                return_on_failure: t.return_on_failure,
                return_on_cancel: t.return_on_cancel,
                returns: None,
                details,
            });
        }
        self.emit(Event::Registered(Box::new(Registration {
            client: c.client.clone(),
            client_order_id: c.client_order_id.clone(),
            ready_to_process: c.ready_to_process,
            drop: DropDetails {
                contact_id,
                location_id,
                return_location_id,
            },
            execution_flow: c.execution_flow,
            summary: c.summary.clone(),
            custom,
            schema_version: config.version,
            work_orders,
            plugins: config.plugins.clone(),
        })));
        if config.plugins.is_empty() {
            self.emit(Event::Validated);
        }
        self.start_milestones(None);
        Ok(())
    }

    /// Takes a work order's pickup or drop apart, as the order's.
    fn stop(&mut self, s: &StopInput) -> Stop {
        Stop {
            contact_id: self.contact(&s.contact),
            location_id: self.location(&s.location),
        }
    }

    /// Takes a contact apart: details become a `ContactRecorded` with a fresh id.
    fn contact(&mut self, c: &Option<ContactInput>) -> Option<ContactId> {
        match c {
            None => None,
            Some(ContactInput::Id(id)) => Some(*id),
            Some(ContactInput::Details(details)) => {
                let id = ContactId(self.fresh_id());
                self.emit(Event::ContactRecorded {
                    contact_id: id,
                    contact: Sealed(Some(details.clone())),
                });
                Some(id)
            }
        }
    }

    /// Takes an address apart: it becomes a `LocationRecorded` with a fresh id.
    fn location(&mut self, l: &Option<LocationInput>) -> Option<LocationId> {
        match l {
            None => None,
            Some(LocationInput::Id(id)) => Some(*id),
            Some(LocationInput::Address(a)) => {
                let id = LocationId(self.fresh_id());
                self.emit(Event::LocationRecorded {
                    location_id: id,
                    address: Sealed(Some(a.clone())),
                });
                Some(id)
            }
        }
    }

    fn update(&mut self, u: &UpdateOrder) -> Result<(), Rejection> {
        self.refuse_final()?;
        let config = self.ctx.config;
        let mut groups = Vec::new();
        if u.contact.is_some() {
            groups.push(UpdateGroup::Contact);
        }
        if u.location.is_some() {
            groups.push(UpdateGroup::Location);
        }
        if !u.summary.is_empty() {
            groups.push(UpdateGroup::OrderSummary);
        }
        if !u.custom.is_empty() {
            groups.push(UpdateGroup::CustomAttributes);
        }
        let ready_change = match u.ready_to_process {
            Some(false) if self.order.ready_to_process => return Err(Rejection::ReadyIrreversible),
            Some(true) if !self.order.ready_to_process => true,
            _ => false,
        };
        if groups.is_empty() {
            return if ready_change {
                self.emit(Event::MarkedReady);
                Ok(())
            } else if u.ready_to_process == Some(true) {
                Err(Rejection::AlreadyReady)
            } else {
                Err(Rejection::EmptyUpdate)
            };
        }
        for g in &groups {
            check_update_group(&self.order, config, *g)?;
        }
        let mut p = Problems::default();
        if let Some(ContactInput::Details(c)) = &u.contact {
            validate::contact(&mut p, c);
        }
        if let Some(LocationInput::Address(a)) = &u.location {
            validate::address(&mut p, "dropDetails.location", a);
        }
        let summary = (!u.summary.is_empty())
            .then(|| validate::patched_summary(&self.order.summary, &u.summary));
        if let Some(s) = &summary {
            validate::summary(&mut p, s);
        }
        let custom = validate::custom_attributes(&mut p, &u.custom, config, false);
        if !p.is_empty() {
            return Err(Rejection::InvalidFields(p.0));
        }
        let contact_id = self.contact(&u.contact);
        let location_id = self.location(&u.location);
        self.emit(Event::Updated {
            groups,
            contact_id,
            location_id,
            summary,
            custom,
        });
        if ready_change {
            self.emit(Event::MarkedReady);
        }
        Ok(())
    }

    fn mark_ready(&mut self) -> Result<(), Rejection> {
        self.refuse_final()?;
        if self.order.ready_to_process {
            return Err(Rejection::AlreadyReady);
        }
        self.emit(Event::MarkedReady);
        Ok(())
    }

    fn hold(&mut self, reason: &Option<String>) -> Result<(), Rejection> {
        self.refuse_final()?;
        let command = verb(self.envelope);
        match self.order.state {
            OrderState::OnHold => return Err(Rejection::AlreadyOnHold),
            OrderState::Initiated => {
                return Err(Rejection::NotAllowedInState {
                    command,
                    state: OrderState::Initiated,
                })
            }
            OrderState::Created if !self.order.ready_to_process => {
                return Err(Rejection::NotReady { command })
            }
            _ => {}
        }
        if self.order.cancellation.status.in_flight() {
            return Err(Rejection::CancelInProgress);
        }
        let from = self.order.state;
        self.emit(Event::Held {
            from,
            reason: reason.clone(),
        });
        self.for_each_job(
            |w| {
                matches!(
                    w.state,
                    WorkOrderState::Dispatched | WorkOrderState::InProgress
                )
            },
            |work_order, attempt| Event::JobHoldRequested {
                work_order,
                attempt,
            },
        );
        Ok(())
    }

    fn resume(&mut self) -> Result<(), Rejection> {
        self.refuse_final()?;
        let Some(to) = self
            .order
            .held_from
            .filter(|_| self.order.state == OrderState::OnHold)
        else {
            return Err(Rejection::NotOnHold);
        };
        self.emit(Event::Resumed { to });
        self.for_each_job(
            |w| w.state == WorkOrderState::OnHold && !w.held_alone,
            |work_order, attempt| Event::JobResumeRequested {
                work_order,
                attempt,
            },
        );
        Ok(())
    }

    /// The open work order `work_order`, for a command on it alone.
    fn open_work_order(&self, work_order: WorkOrderId) -> Result<&WorkOrder, Rejection> {
        self.refuse_final()?;
        if self.order.cancellation.status.in_flight() {
            return Err(Rejection::CancelInProgress);
        }
        let Some(w) = self.order.work_order(work_order) else {
            return Err(Rejection::WorkOrderNotFound);
        };
        if !w.state.is_open() {
            return Err(Rejection::WorkOrderNotOpen {
                work_order: work_order.0,
                state: w.state,
            });
        }
        if w.withdrawing || w.cancel_requested {
            return Err(Rejection::CancelInProgress);
        }
        Ok(w)
    }

    /// Holds one work order: its job's hold goes out when one is out; a
    /// PENDING one is not dispatched until its own resume.
    fn hold_work_order(
        &mut self,
        work_order: WorkOrderId,
        reason: &Option<String>,
    ) -> Result<(), Rejection> {
        if matches!(
            self.order.state,
            OrderState::Initiated | OrderState::Created
        ) {
            // Nothing runs yet: the order's own hold is the one to use.
            return Err(Rejection::NotAllowedInState {
                command: "hold",
                state: self.order.state,
            });
        }
        let w = self.open_work_order(work_order)?;
        if w.held_alone {
            return Err(Rejection::AlreadyOnHold);
        }
        let job_out = matches!(
            w.state,
            WorkOrderState::Dispatched | WorkOrderState::InProgress
        );
        let attempt = w.attempt;
        self.emit(Event::WorkOrderHeld {
            work_order,
            reason: reason.clone(),
        });
        if job_out {
            self.emit(Event::JobHoldRequested {
                work_order,
                attempt,
            });
        }
        Ok(())
    }

    /// Resumes a work order held on its own: its job's resume goes out when
    /// one is held, unless the whole order is on hold (then the order's
    /// resume releases it).
    fn resume_work_order(&mut self, work_order: WorkOrderId) -> Result<(), Rejection> {
        let w = self.open_work_order(work_order)?;
        if !w.held_alone {
            return Err(Rejection::NotOnHold);
        }
        let job_held = w.state == WorkOrderState::OnHold;
        let attempt = w.attempt;
        self.emit(Event::WorkOrderResumed { work_order });
        if job_held && self.order.state != OrderState::OnHold {
            self.emit(Event::JobResumeRequested {
                work_order,
                attempt,
            });
        }
        Ok(())
    }

    /// Withdraws one work order: at once when no job is out, else through
    /// its job's cancel (if dispatch refuses it, the work order carries on).
    fn cancel_work_order(
        &mut self,
        work_order: WorkOrderId,
        reason: &Option<String>,
    ) -> Result<(), Rejection> {
        let w = self.open_work_order(work_order)?;
        // ON_HOLD only ever holds a job (a work order held alone before
        // its job stays PENDING).
        let (job_out, from, attempt) = (w.state.has_job_out(), w.state, w.attempt);
        self.emit(Event::WorkOrderWithdrawn {
            work_order,
            reason: reason.clone(),
        });
        if job_out {
            self.emit(Event::JobCancelRequested {
                work_order,
                attempt,
            });
        } else {
            self.emit(Event::WorkOrderCancelled { work_order, from });
        }
        Ok(())
    }

    /// Changes one work order's own details while it has not been sent to
    /// dispatch (PENDING, never attempted): a line's details are fixed from
    /// its release on, as the seeds' "restrict from status" rules have it.
    fn update_work_order(
        &mut self,
        work_order: WorkOrderId,
        patch: &DetailsPatch,
    ) -> Result<(), Rejection> {
        let w = self.open_work_order(work_order)?;
        if w.state != WorkOrderState::Pending || w.attempt > 0 {
            return Err(Rejection::WorkOrderDispatched {
                work_order: work_order.0,
                attempt: w.attempt,
                state: w.state,
            });
        }
        if patch.is_empty() {
            return Err(Rejection::EmptyUpdate);
        }
        let current = w.details.clone();
        let mut p = Problems::default();
        validate::details_patch(&mut p, "", patch);
        if !p.is_empty() {
            return Err(Rejection::InvalidFields(p.0));
        }
        let details = self.patched_details(current, patch);
        self.emit(Event::WorkOrderUpdated {
            work_order,
            details,
        });
        Ok(())
    }

    /// Adds a return for a completed forward work order at the client's
    /// request. The flow engine dispatches it as the order's flow allows;
    /// an EXECUTED order runs again until it is done.
    fn add_client_return(
        &mut self,
        returns: WorkOrderId,
        patch: &DetailsPatch,
    ) -> Result<(), Rejection> {
        if self.order.state == OrderState::Closed {
            return Err(Rejection::OrderImmutable {
                state: OrderState::Closed,
            });
        }
        if self.order.cancellation.status.in_flight() {
            return Err(Rejection::CancelInProgress);
        }
        let o = &self.order;
        let Some(w) = o.work_order(returns) else {
            return Err(Rejection::WorkOrderNotFound);
        };
        if w.is_return() {
            return Err(Rejection::WorkOrderIsReturn {
                work_order: returns.0,
            });
        }
        if w.state != WorkOrderState::Completed {
            return Err(Rejection::WorkOrderNotCompleted {
                work_order: returns.0,
                state: w.state,
            });
        }
        // A return that failed or was cancelled leaves the goods where they
        // are: another may be asked for.
        if let Some(r) = o.work_orders.iter().find(|r| {
            r.returns == Some(returns)
                && (r.state.is_open() || r.state == WorkOrderState::Completed)
        }) {
            return Err(Rejection::ReturnExists {
                work_order: returns.0,
                return_id: r.id.0,
            });
        }
        let mut p = Problems::default();
        if o.work_orders.len() >= validate::MAX_WORK_ORDERS {
            p.add(
                "addReturn",
                "LENGTH",
                format!(
                    "the order holds {} work orders, the most it may",
                    validate::MAX_WORK_ORDERS
                ),
            );
        }
        validate::details_patch(&mut p, "addReturn", patch);
        if !p.is_empty() {
            return Err(Rejection::InvalidFields(p.0));
        }
        let defaults = self.return_details(w);
        let details = self.patched_details(defaults, patch);
        self.push_return(returns, details);
        if self.order.state == OrderState::Executed {
            self.emit(Event::Reopened);
        }
        Ok(())
    }

    /// `base` with what `patch` sets; contacts and addresses given in full
    /// are recorded apart under new ids, as on create.
    fn patched_details(
        &mut self,
        mut base: WorkOrderDetails,
        patch: &DetailsPatch,
    ) -> WorkOrderDetails {
        if let Some(items) = &patch.items {
            base.items.clone_from(items);
        }
        if let Some(instructions) = &patch.instructions {
            base.instructions = Some(instructions.clone());
        }
        base.pickup = self.patched_stop(base.pickup, &patch.pickup);
        base.drop = self.patched_stop(base.drop, &patch.drop);
        base
    }

    /// `base` with the contact and the location that `s` gives, each apart.
    fn patched_stop(&mut self, base: Stop, s: &StopInput) -> Stop {
        Stop {
            contact_id: self.contact(&s.contact).or(base.contact_id),
            location_id: self.location(&s.location).or(base.location_id),
        }
    }

    fn cancel(&mut self, reason: &Option<String>) -> Result<(), Rejection> {
        match self.order.state {
            OrderState::Closed if self.order.close_reason == Some(CloseReason::Cancelled) => {
                return Err(Rejection::AlreadyCancelled)
            }
            OrderState::Executed | OrderState::Closed => {
                return Err(Rejection::OrderImmutable {
                    state: self.order.state,
                })
            }
            _ => {}
        }
        if self.order.cancellation.status.in_flight() {
            return Err(Rejection::CancelInProgress);
        }
        self.emit(Event::CancellationRequested {
            by: self.envelope.by.clone(),
            reason: reason.clone(),
        });
        self.emit(Event::CancellationAttempting);
        self.for_each_job(
            |w| w.state.has_job_out(),
            |work_order, attempt| Event::JobCancelRequested {
                work_order,
                attempt,
            },
        );
        Ok(())
    }

    fn close(&mut self) -> Result<(), Rejection> {
        match self.order.state {
            OrderState::Executed => {
                self.emit(Event::Closed {
                    reason: CloseReason::Completed,
                    cause: None,
                });
                Ok(())
            }
            OrderState::Closed => Err(Rejection::OrderImmutable {
                state: OrderState::Closed,
            }),
            state => Err(Rejection::NotAllowedInState {
                command: verb(self.envelope),
                state,
            }),
        }
    }

    fn set_sub_state(&mut self, to: &Option<String>) -> Result<(), Rejection> {
        let state = self.order.state;
        let from = self.order.sub_state.clone();
        if *to == from {
            return Err(Rejection::EmptyUpdate);
        }
        if let Some(target) = to {
            let configured = self.ctx.config.sub_states.get(&state);
            if !configured.is_some_and(|c| c.sub_states.iter().any(|s| s == target)) {
                return Err(Rejection::UnknownSubState {
                    sub_state: target.chars().take(64).collect(),
                    state,
                });
            }
            if let (Some(current), Some(c)) = (&from, configured) {
                if !c
                    .transitions
                    .iter()
                    .any(|(f, t)| f == current && t == target)
                {
                    return Err(Rejection::SubStateTransition {
                        from: current.clone(),
                        to: target.clone(),
                    });
                }
            }
        }
        self.emit(Event::SubStateChanged {
            from,
            to: to.clone(),
        });
        Ok(())
    }

    fn job_update(&mut self, u: &JobUpdate) -> Result<(), Rejection> {
        let wo = self
            .order
            .work_order(u.work_order)
            .ok_or(Rejection::WorkOrderNotFound)?;
        if u.attempt == 0 || u.attempt > wo.attempt {
            return Err(Rejection::UnknownAttempt {
                work_order: u.work_order.0,
                attempt: u.attempt,
                current: wo.attempt,
            });
        }
        let ignored = |why| Event::JobUpdateIgnored {
            work_order: u.work_order,
            attempt: u.attempt,
            status: u.status,
            why,
        };
        if u.attempt < wo.attempt {
            self.emit(ignored(IgnoredWhy::StaleAttempt));
            return Ok(());
        }
        if self.order.state.is_final() {
            self.emit(ignored(IgnoredWhy::AlreadyPast));
            return Ok(());
        }
        let (work_order, attempt) = (u.work_order, u.attempt);
        let job_out = wo.state.has_job_out();
        let effective = if wo.state == WorkOrderState::OnHold {
            wo.held_from.unwrap_or(WorkOrderState::Dispatched)
        } else {
            wo.state
        };
        let cancel_requested = wo.cancel_requested;
        let final_attempt = attempt >= wo.max_attempts;
        match u.status {
            JobStatus::Started if effective == WorkOrderState::Dispatched => {
                self.emit(Event::JobStarted {
                    work_order,
                    attempt,
                    job_id: u.job_id.clone(),
                });
            }
            JobStatus::Completed if job_out => {
                if cancel_requested {
                    self.emit(Event::JobCancelFailed {
                        work_order,
                        attempt,
                        reason_code: Some(COMPLETED_BEFORE_CANCEL.to_owned()),
                    });
                }
                self.emit(Event::JobCompleted {
                    work_order,
                    attempt,
                });
            }
            JobStatus::Failed if job_out => {
                self.emit(Event::JobFailed {
                    work_order,
                    attempt,
                    reason_code: u.reason_code.clone(),
                    final_attempt,
                });
            }
            JobStatus::Cancelled if job_out && cancel_requested => {
                self.emit(Event::JobCancelled {
                    work_order,
                    attempt,
                });
            }
            JobStatus::Cancelled if job_out => {
                // Dispatch gave the job up on its own: that is a failed attempt.
                self.emit(Event::JobFailed {
                    work_order,
                    attempt,
                    reason_code: Some(CANCELLED_BY_DISPATCH.to_owned()),
                    final_attempt,
                });
            }
            JobStatus::CancelFailed if job_out && cancel_requested => {
                self.emit(Event::JobCancelFailed {
                    work_order,
                    attempt,
                    reason_code: u.reason_code.clone(),
                });
            }
            JobStatus::CancelFailed | JobStatus::Cancelled if !cancel_requested && job_out => {
                self.emit(ignored(IgnoredWhy::NoCancelRequested));
            }
            _ => self.emit(ignored(IgnoredWhy::AlreadyPast)),
        }
        Ok(())
    }

    fn plugin_verdict(&mut self, plugin: &str, verdict: &PluginVerdict) -> Result<(), Rejection> {
        self.refuse_final()?;
        if self.order.state != OrderState::Initiated {
            return Err(Rejection::NotAllowedInState {
                command: verb(self.envelope),
                state: self.order.state,
            });
        }
        if !self.order.validation.waiting_for.contains(plugin) {
            return Err(Rejection::UnexpectedPlugin(
                plugin.chars().take(64).collect(),
            ));
        }
        match verdict {
            PluginVerdict::Accepted => {
                self.emit(Event::PluginAccepted {
                    plugin: plugin.to_owned(),
                });
                if self.order.validation.waiting_for.is_empty() {
                    self.emit(Event::Validated);
                }
            }
            PluginVerdict::Rejected(reasons) => {
                self.emit(Event::ValidationFailed {
                    plugin: plugin.to_owned(),
                    reasons: reasons.clone(),
                });
                self.cancel_pending_work_orders(|_| true);
                self.emit(Event::Closed {
                    reason: CloseReason::ValidationFailed,
                    cause: Some(format!("plugin {plugin} refused the order")),
                });
            }
        }
        Ok(())
    }

    fn fire_timers(&mut self) -> Result<(), Rejection> {
        let now = self.ctx.now;
        let mut due: Vec<(Timestamp, TimerKind)> = self
            .order
            .timers
            .iter()
            .filter(|t| t.due <= now)
            .map(|t| (t.due, t.kind.clone()))
            .collect();
        if due.is_empty() {
            return Err(Rejection::NoTimerDue);
        }
        due.sort();
        for (_, timer) in due {
            self.emit(Event::TimerFired {
                timer: timer.clone(),
            });
            match timer {
                TimerKind::AutoClose if self.order.state == OrderState::Executed => {
                    self.emit(Event::Closed {
                        reason: CloseReason::Completed,
                        cause: Some("auto-close".to_owned()),
                    });
                }
                TimerKind::AutoClose => {}
                TimerKind::MilestoneWarning(name) => {
                    if let Some(m) = self.order.milestones.get(&name).filter(|m| !m.reached) {
                        let due = m.due;
                        self.emit(Event::MilestoneDueSoon { name, due });
                    }
                }
                TimerKind::MilestoneDue(name) => {
                    if self.order.milestones.get(&name).is_some_and(|m| !m.reached) {
                        self.emit(Event::MilestoneMissed { name });
                    }
                }
            }
        }
        Ok(())
    }

    /// Starts the milestones counted from `after` (None: from creation).
    fn start_milestones(&mut self, after: Option<&str>) {
        let now = self.ctx.now;
        let starting: Vec<_> = self
            .ctx
            .config
            .milestones
            .iter()
            .filter(|m| m.after.as_deref() == after && !self.order.milestones.contains_key(&m.name))
            .cloned()
            .collect();
        for m in starting {
            let due = now.plus_ms(m.within_ms);
            self.emit(Event::MilestoneStarted {
                name: m.name.clone(),
                reach: m.reach,
                due,
            });
            if let Some(w) = m.warn_before_ms.filter(|w| *w < m.within_ms) {
                self.emit(Event::TimerSet {
                    timer: TimerKind::MilestoneWarning(m.name.clone()),
                    due: now.plus_ms(m.within_ms - w),
                });
            }
            self.emit(Event::TimerSet {
                timer: TimerKind::MilestoneDue(m.name),
                due,
            });
        }
    }

    /// Marks the milestones the order's state now meets, and starts the ones
    /// counted from them.
    fn meet_milestones(&mut self) {
        let state = self.order.state;
        if state == OrderState::Closed && self.order.close_reason != Some(CloseReason::Completed) {
            // A cancelled or refused order meets nothing by closing.
            return;
        }
        let met: Vec<(String, bool)> = self
            .order
            .milestones
            .iter()
            .filter(|(_, m)| !m.reached && (state == m.reach || state.rank() > m.reach.rank()))
            .map(|(n, m)| (n.clone(), m.missed))
            .collect();
        for (name, late) in met {
            self.emit(Event::MilestoneReached {
                name: name.clone(),
                late,
            });
            self.start_milestones(Some(&name));
        }
    }

    // ---- the flow engine --------------------------------------------------

    /// Adds what follows from the current state, until nothing more does.
    fn settle(&mut self) {
        // Each round either emits and changes the state, or stops; the number
        // of work orders bounds the rounds (a generous cap guards the bound).
        for _ in 0..(4 * validate::MAX_WORK_ORDERS + 16) {
            let before = self.events.len();
            self.settle_once();
            if !self.order.milestones.is_empty() {
                self.meet_milestones();
            }
            if self.events.len() == before {
                return;
            }
        }
    }

    fn settle_once(&mut self) {
        let o = &self.order;
        if o.cancellation.status == CancellationStatus::Attempting
            && !o.work_orders.iter().any(|w| w.cancel_requested)
        {
            self.resolve_cancellation();
            return;
        }
        match o.state {
            OrderState::Initiated | OrderState::Executed | OrderState::Closed => {}
            OrderState::Created => {
                if o.ready_to_process
                    && o.validation.waiting_for.is_empty()
                    && !o.cancellation.status.in_flight()
                {
                    self.emit(Event::Started);
                }
            }
            OrderState::OnHold => {
                // Nothing is dispatched while held; a successful cancellation
                // with nothing left to return still closes the order.
                if o.cancellation.status == CancellationStatus::Success
                    && o.open_work_orders().next().is_none()
                {
                    self.emit(Event::Closed {
                        reason: CloseReason::Cancelled,
                        cause: None,
                    });
                }
            }
            OrderState::InProgress => {
                if o.cancellation.status.in_flight() {
                    return;
                }
                if self.contain_failures() {
                    return;
                }
                if self.order.open_work_orders().next().is_none() {
                    self.finish();
                } else {
                    self.dispatch_next_work_orders();
                }
            }
        }
    }

    /// Every cancel is answered: SUCCESS, or FAILED with the first reason.
    fn resolve_cancellation(&mut self) {
        if let Some(code) = self.order.cancellation.attempt_failure.clone() {
            self.emit(Event::CancellationFailed { reason_code: code });
            return;
        }
        self.emit(Event::CancellationSucceeded);
        self.cancel_pending_work_orders(|_| true);
        // Goods that moved go back: completed work orders, and cancelled ones
        // whose job had started, when their type says so.
        let returns: Vec<WorkOrderId> = self
            .order
            .work_orders
            .iter()
            .filter(|w| !w.is_return() && w.return_on_cancel)
            .filter(|w| {
                w.state == WorkOrderState::Completed
                    || (w.state == WorkOrderState::Cancelled && w.started)
            })
            .map(|w| w.id)
            .collect();
        for id in returns {
            self.add_return(id);
        }
        if self.order.state != OrderState::OnHold && self.order.open_work_orders().next().is_none()
        {
            self.emit(Event::Closed {
                reason: CloseReason::Cancelled,
                cause: None,
            });
        }
    }

    /// Nothing is open: EXECUTED when every forward work order is covered;
    /// otherwise the order cannot execute and closes with the cause: as
    /// PARTIAL when some forward work order was completed, else CANCELLED.
    fn finish(&mut self) {
        let o = &self.order;
        if o.cancellation.status == CancellationStatus::Success {
            self.emit(Event::Closed {
                reason: CloseReason::Cancelled,
                cause: None,
            });
            return;
        }
        if o.work_orders
            .iter()
            .filter(|w| !w.is_return())
            .all(|w| w.withdrawn)
        {
            // Every work order was cancelled one by one: nothing to execute.
            self.emit(Event::Closed {
                reason: CloseReason::Cancelled,
                cause: Some("every work order was cancelled".to_owned()),
            });
            return;
        }
        let uncovered: Vec<String> = o
            .work_orders
            .iter()
            .filter(|w| !w.is_return() && !o.is_covered(w))
            .map(|w| format!("work order {} {}", w.id, w.state.as_str()))
            .collect();
        if uncovered.is_empty() {
            self.emit(Event::Executed);
            if let Some(ms) = self.ctx.config.auto_close_after_ms {
                self.emit(Event::TimerSet {
                    timer: TimerKind::AutoClose,
                    due: self.ctx.now.plus_ms(ms),
                });
            }
        } else {
            let some_done = o
                .work_orders
                .iter()
                .any(|w| !w.is_return() && w.state == WorkOrderState::Completed);
            self.emit(Event::Closed {
                reason: if some_done {
                    CloseReason::Partial
                } else {
                    CloseReason::Cancelled
                },
                cause: Some(format!(
                    "execution could not finish: {}",
                    uncovered.join(", ")
                )),
            });
        }
    }

    /// Reacts to work orders that failed for good: returns, and what the flow
    /// says about the others. Returns whether it emitted anything.
    fn contain_failures(&mut self) -> bool {
        let before = self.events.len();
        let failed: Vec<WorkOrderId> = self
            .order
            .work_orders
            .iter()
            .filter(|w| w.state == WorkOrderState::Failed && !w.is_return())
            .map(|w| w.id)
            .collect();
        for id in &failed {
            let wants_return = self
                .order
                .work_order(*id)
                .is_some_and(|w| w.return_on_failure);
            let has_return = self
                .order
                .work_orders
                .iter()
                .any(|r| r.returns == Some(*id));
            if wants_return && !has_return {
                self.add_return(*id);
            }
        }
        // A forward work order that ended without completing (failed for good,
        // or cancelled by a cancellation that failed elsewhere) breaks a
        // sequence and a group; START_TOGETHER lets the others carry on.
        let broken = self.order.work_orders.iter().any(|w| {
            !w.is_return()
                && !w.withdrawn
                && matches!(w.state, WorkOrderState::Failed | WorkOrderState::Cancelled)
        });
        if broken {
            match self.order.execution_flow {
                ExecutionFlow::StartTogether => {}
                ExecutionFlow::Sequential => {
                    // What never started never will.
                    self.cancel_pending_work_orders(|w| !w.is_return());
                }
                ExecutionFlow::CompleteTogether => {
                    // The group fails as a whole: cancel what is still open.
                    self.cancel_pending_work_orders(|w| !w.is_return());
                    self.for_each_job(
                        |w| {
                            !w.is_return()
                                && w.state.has_job_out()
                                && !w.cancel_requested
                                && !w.cancel_failed
                        },
                        |work_order, attempt| Event::JobCancelRequested {
                            work_order,
                            attempt,
                        },
                    );
                }
            }
        }
        self.events.len() > before
    }

    /// Sends the jobs the flow allows now.
    fn dispatch_next_work_orders(&mut self) {
        let o = &self.order;
        let group = (o.execution_flow == ExecutionFlow::CompleteTogether).then(|| o.id.to_string());
        let next: Vec<_> = match o.execution_flow {
            // A work order held alone is not dispatched; SEQUENTIAL waits.
            ExecutionFlow::Sequential => o
                .open_work_orders()
                .next()
                .filter(|w| w.state == WorkOrderState::Pending && !w.held_alone)
                .into_iter()
                .collect(),
            ExecutionFlow::StartTogether | ExecutionFlow::CompleteTogether => o
                .work_orders
                .iter()
                .filter(|w| w.state == WorkOrderState::Pending && !w.held_alone)
                .collect(),
        };
        let jobs: Vec<_> = next
            .into_iter()
            .map(|w| {
                let group = if w.is_return() { None } else { group.clone() };
                (w.id, w.attempt + 1, w.job_type.clone(), group)
            })
            .collect();
        for (work_order, attempt, job_type, group) in jobs {
            self.emit(Event::JobDispatched {
                work_order,
                attempt,
                job_type,
                group,
            });
        }
    }

    /// Emits one event for each work order that `which` selects, with its
    /// current attempt (hold, resume and cancel requests for jobs out).
    fn for_each_job(
        &mut self,
        which: impl Fn(&crate::model::WorkOrder) -> bool,
        event: impl Fn(WorkOrderId, u32) -> Event,
    ) {
        let jobs: Vec<_> = self
            .order
            .work_orders
            .iter()
            .filter(|w| which(w))
            .map(|w| (w.id, w.attempt))
            .collect();
        for (work_order, attempt) in jobs {
            self.emit(event(work_order, attempt));
        }
    }

    fn cancel_pending_work_orders(&mut self, which: impl Fn(&crate::model::WorkOrder) -> bool) {
        let pending: Vec<_> = self
            .order
            .work_orders
            .iter()
            .filter(|w| w.state == WorkOrderState::Pending && which(w))
            .map(|w| w.id)
            .collect();
        for work_order in pending {
            self.emit(Event::WorkOrderCancelled {
                work_order,
                from: WorkOrderState::Pending,
            });
        }
    }

    /// Adds a RETURN for `of` with its default details (orderd's own
    /// returns: on failure, on cancellation).
    fn add_return(&mut self, of: WorkOrderId) {
        if self.order.work_orders.len() >= validate::MAX_WORK_ORDERS {
            return;
        }
        let Some(returned) = self.order.work_order(of) else {
            return;
        };
        let details = self.return_details(returned);
        self.push_return(of, details);
    }

    /// Where a return of `returned` goes by default: the goods go back the
    /// other way, picked up where it dropped them (its own drop, else the
    /// order's), taken to the order's return location, else to where they
    /// were picked up; the same items, no instructions.
    fn return_details(&self, returned: &WorkOrder) -> WorkOrderDetails {
        let pickup = self.order.drop_of(returned);
        let drop = match self.order.drop.return_location_id {
            Some(location) => Stop {
                contact_id: None,
                location_id: Some(location),
            },
            None => returned.details.pickup,
        };
        WorkOrderDetails {
            items: returned.details.items.clone(),
            instructions: None,
            pickup,
            drop,
        }
    }

    /// Appends a RETURN for `of`, with the next work-order id.
    fn push_return(&mut self, of: WorkOrderId, details: WorkOrderDetails) {
        let t = self.ctx.config.return_type();
        let id = WorkOrderId(
            self.order
                .work_orders
                .iter()
                .map(|w| w.id.0)
                .max()
                .unwrap_or(0)
                + 1,
        );
        self.emit(Event::ReturnAdded(RegisteredWorkOrder {
            id,
            kind: RETURN_TYPE.to_owned(),
            job_type: t.job_type,
            max_attempts: t.max_attempts.max(1),
            return_on_failure: false,
            return_on_cancel: false,
            returns: Some(of),
            details,
        }));
    }
}

/// Whether an update group may change now, under the state and the tenant's
/// modification rules.
pub fn check_update_group(
    order: &Order,
    config: &crate::config::TenantConfig,
    group: UpdateGroup,
) -> Result<(), Rejection> {
    if order.state.is_final() {
        return Err(Rejection::OrderImmutable { state: order.state });
    }
    if let Some(locked_from) = config.modification_rules.get(&group) {
        if order.state.rank() >= locked_from.rank() {
            return Err(Rejection::ModificationLocked {
                group,
                locked_from: *locked_from,
            });
        }
    }
    Ok(())
}
