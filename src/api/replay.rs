//! Replaying an order's recorded history under a tenant configuration: the
//! pure half of the dry run (`config.dryrun`, [`super::config`]). No
//! I/O and no clock: the shell reads the event messages and the time, this
//! module derives and replays.
//!
//! # Deriving the commands
//! orderd keeps no command bodies, but every command it applied published
//! one [`EventMessage`] (`orderd.v1.<tenant>.evt.<orderId>.<kind>`) with the
//! command's verb, id, sender and time, and the events it caused. Each
//! message gives back its command ([`recorded_commands`]):
//! - `create`: from its `registered` event: client, client order id,
//!   readiness, flow, summary, custom attributes (as recorded, defaults
//!   filled in), the forward work orders' types, and the contact and
//!   locations **by id** (`ContactInput::Id`, `LocationInput::Id`): personal
//!   data never enters a replay;
//! - `update`: its `updated` event (contact and location by id, the whole
//!   summary, the custom attributes set) and `marked_ready`;
//! - `ready`, `hold` (its reason), `resume`, `cancel` (its reason), `close`,
//!   `substate` (the target);
//! - `update_work_order`: its `work_order_updated` event (the details,
//!   whole, by id); `add_return`: its `return_added` event (the returned
//!   work order and the return's details, whole, by id);
//! - `job`: the job event the update caused: started, completed (also when
//!   it completed before a cancel took effect), failed with its reason,
//!   cancelled (a failure `CANCELLED_BY_DISPATCH` is dispatch's own
//!   `cancelled`), cancel-failed, or the status an ignored update named;
//! - `plugin_verdict`: accepted, or rejected with the reasons;
//! - `fire_timers`: time passing (see below).
//!
//! A history can be replayed only whole: the messages must run from seq 1
//! without a gap up to the order's own seq ([`Unreplayable`] says why not:
//! expired from the stream, a gap, not yet published, a message this
//! version does not understand).
//!
//! # Replaying
//! [`replay`] runs the commands through the pure core (`execute`, then
//! `apply_change`) from a blank order, each at the time its message
//! records, with its own command id and sender, and fresh ids derived from
//! the step (deterministic; only personal data given in full would use
//! them, and a replay never has any). A refused command leaves the order as
//! it was and the replay goes on with the next, as orderd would.
//!
//! Timers fire as time passes: before a command at time `t`, every timer of
//! the replayed order due by `t` fires (so a draft's own milestones and
//! auto-close act, at the latest by the next command); a recorded
//! `fire_timers` fires what is due then ("nothing due" when the replayed
//! order has no timer due: not a refusal); after the last command, what is
//! due by the `horizon` (the dry run's now) fires, as a last step.
//!
//! Replayed under the order's own version, the history must reproduce the
//! recorded state, sub-state and close reason after every command
//! ([`reproduces`]); if it does not, the order is reported as not
//! replayable rather than compared, so a difference under a draft is the
//! draft's doing. [`compare`] then finds the first step whose outcome
//! (applied or refused with its code, the situation reached, milestones
//! missed) differs, and how each replay ends.

use std::fmt::Write as _;

use uuid::Uuid;

use orderd_core::command::{
    ContactInput, CreateOrder, DetailsPatch, JobUpdate, LocationInput, PluginVerdict, StopInput,
    SummaryPatch, UpdateOrder, WorkOrderSpec,
};
use orderd_core::decide::{CANCELLED_BY_DISPATCH, COMPLETED_BEFORE_CANCEL};
use orderd_core::event::Registration;
use orderd_core::model::{JobStatus, Stop, WorkOrderDetails};
use orderd_core::{
    apply_change, execute, Command, CommandId, Ctx, Envelope, Event, Order, OrderId, Outcome,
    Rejection, TenantConfig, TenantId, Timestamp,
};

use crate::wire::{close_reason, parse_rfc3339, rfc3339, EventMessage, OrderEnd, StepDifference};

/// Rounds of firing timers at one instant: firing can start milestones whose
/// timers are due at once too; the milestones of a version bound it.
const FIRE_ROUNDS: usize = 64;

/// One command as the event stream recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The order's sequence number after it.
    pub seq: u64,
    /// When it was applied.
    pub at: Timestamp,
    /// Its idempotency key.
    pub command_id: CommandId,
    /// Who sent it.
    pub by: String,
    /// The command, derived from its events.
    pub command: Command,
    /// Where it left the order, as recorded.
    pub reached: Situation,
}

/// An order's state, sub-state and close reason, in their wire names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Situation {
    /// `IN_PROGRESS`, …
    pub state: String,
    /// The tenant sub-state.
    pub sub_state: Option<String>,
    /// `CANCELLED`, … once CLOSED.
    pub close_reason: Option<String>,
}

impl Situation {
    /// Where `order` is.
    pub fn of(order: &Order) -> Self {
        Self {
            state: order.state.as_str().to_owned(),
            sub_state: order.sub_state.clone(),
            close_reason: order.close_reason.map(|r| close_reason(r).to_owned()),
        }
    }

    fn recorded(m: &EventMessage) -> Self {
        Self {
            state: m.state.clone(),
            sub_state: m.sub_state.clone(),
            close_reason: m.close_reason.clone(),
        }
    }
}

impl std::fmt::Display for Situation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.state)?;
        if let Some(sub) = &self.sub_state {
            write!(f, "/{sub}")?;
        }
        if let Some(reason) = &self.close_reason {
            write!(f, " ({reason})")?;
        }
        Ok(())
    }
}

/// Why an order's history cannot be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreplayable {
    /// The stream holds no message of the order.
    #[error("the event stream holds no event of this order (expired, or not published yet)")]
    NoEvents,
    /// The stream no longer holds the order's first messages.
    #[error(
        "the event stream no longer holds the order's first events (its oldest is seq {first})"
    )]
    Expired {
        /// The oldest seq still held.
        first: u64,
    },
    /// A message is missing in the middle.
    #[error("the event stream lacks seq {missing}")]
    Gap {
        /// The first seq missing.
        missing: u64,
    },
    /// The newest messages are not in the stream yet.
    #[error("the event stream ends at seq {last}, the order is at seq {order}")]
    Behind {
        /// The newest seq held.
        last: u64,
        /// The order's own seq.
        order: u64,
    },
    /// A message whose command cannot be derived.
    #[error("seq {seq}: {why}")]
    Unrecognised {
        /// The message.
        seq: u64,
        /// Why.
        why: String,
    },
    /// Replayed under its own version, the history does not come out as
    /// recorded.
    #[error("replayed under its own version, seq {seq} ({command}) gives {replayed}, but the record says {recorded}")]
    NotReproduced {
        /// The first step that differs.
        seq: u64,
        /// Its command.
        command: String,
        /// As recorded.
        recorded: String,
        /// As replayed.
        replayed: String,
    },
}

impl Unreplayable {
    /// A stable code for the reason.
    pub fn code(&self) -> &'static str {
        match self {
            Unreplayable::NoEvents => "NO_EVENTS",
            Unreplayable::Expired { .. } => "EVENTS_EXPIRED",
            Unreplayable::Gap { .. } => "SEQ_GAP",
            Unreplayable::Behind { .. } => "EVENTS_BEHIND",
            Unreplayable::Unrecognised { .. } => "UNRECOGNISED_EVENTS",
            Unreplayable::NotReproduced { .. } => "NOT_REPRODUCED",
        }
    }
}

/// The commands an order's event messages record, oldest first. `messages`
/// are the order's messages as the stream returned them (sorted by seq);
/// `order_seq` is the order's own seq (its snapshot), which they must reach.
pub fn recorded_commands(
    messages: &[EventMessage],
    order_seq: u64,
) -> Result<Vec<Recorded>, Unreplayable> {
    let Some(first) = messages.first() else {
        return Err(Unreplayable::NoEvents);
    };
    if first.seq != 1 {
        return Err(Unreplayable::Expired { first: first.seq });
    }
    for (m, want) in messages.iter().zip(1u64..) {
        if m.seq != want {
            return Err(Unreplayable::Gap { missing: want });
        }
    }
    let last = messages.last().map_or(0, |m| m.seq);
    if last < order_seq {
        return Err(Unreplayable::Behind {
            last,
            order: order_seq,
        });
    }
    messages
        .iter()
        .map(|m| {
            let unrecognised = |why: String| Unreplayable::Unrecognised { seq: m.seq, why };
            Ok(Recorded {
                seq: m.seq,
                at: parse_rfc3339(&m.at)
                    .ok_or_else(|| unrecognised("its time is not RFC 3339".into()))?,
                command_id: CommandId::parse(&m.command_id)
                    .map_err(|_| unrecognised("its command id is invalid".into()))?,
                by: m.by.clone(),
                command: command_of(m).map_err(unrecognised)?,
                reached: Situation::recorded(m),
            })
        })
        .collect()
}

/// The command one message records.
fn command_of(m: &EventMessage) -> Result<Command, String> {
    let events = &m.events;
    // The command from the first event `pick` recognises.
    let from = |what: &str, pick: &dyn Fn(&Event) -> Option<Command>| {
        events
            .iter()
            .find_map(pick)
            .ok_or_else(|| format!("a {} message without its {what} event", m.command))
    };
    let command = match m.command.as_str() {
        "create" => from("registered", &|e| match e {
            Event::Registered(r) => Some(Command::Create(Box::new(create_of(r)))),
            _ => None,
        })?,
        "update" => update_of(events)
            .ok_or_else(|| "an update message without its updated event".to_owned())?,
        "ready" => Command::MarkReady,
        "hold" => from("held", &|e| match e {
            Event::Held { reason, .. } => Some(Command::Hold {
                reason: reason.clone(),
            }),
            _ => None,
        })?,
        "resume" => Command::Resume,
        "cancel" => from("cancellation_requested", &|e| match e {
            Event::CancellationRequested { reason, .. } => Some(Command::Cancel {
                reason: reason.clone(),
            }),
            _ => None,
        })?,
        "cancel_work_order" => from("work_order_withdrawn", &|e| match e {
            Event::WorkOrderWithdrawn { work_order, reason } => Some(Command::CancelWorkOrder {
                work_order: *work_order,
                reason: reason.clone(),
            }),
            _ => None,
        })?,
        "hold_work_order" => from("work_order_held", &|e| match e {
            Event::WorkOrderHeld { work_order, reason } => Some(Command::HoldWorkOrder {
                work_order: *work_order,
                reason: reason.clone(),
            }),
            _ => None,
        })?,
        "resume_work_order" => from("work_order_resumed", &|e| match e {
            Event::WorkOrderResumed { work_order } => Some(Command::ResumeWorkOrder {
                work_order: *work_order,
            }),
            _ => None,
        })?,
        "update_work_order" => from("work_order_updated", &|e| match e {
            Event::WorkOrderUpdated {
                work_order,
                details,
            } => Some(Command::UpdateWorkOrder {
                work_order: *work_order,
                details: Box::new(details_by_id(details)),
            }),
            _ => None,
        })?,
        "add_return" => from("return_added", &|e| match e {
            Event::ReturnAdded(r) => r.returns.map(|returns| Command::AddReturn {
                returns,
                details: Box::new(details_by_id(&r.details)),
            }),
            _ => None,
        })?,
        "close" => Command::Close,
        "substate" => from("sub_state_changed", &|e| match e {
            Event::SubStateChanged { to, .. } => Some(Command::SetSubState { to: to.clone() }),
            _ => None,
        })?,
        "job" => from("job", &|_| job_update_of(events).map(Command::Job))?,
        "plugin_verdict" => from("plugin verdict", &|e| {
            let (plugin, verdict) = match e {
                Event::PluginAccepted { plugin } => (plugin, PluginVerdict::Accepted),
                Event::ValidationFailed { plugin, reasons } => {
                    (plugin, PluginVerdict::Rejected(reasons.clone()))
                }
                _ => return None,
            };
            Some(Command::RecordPluginVerdict {
                plugin: plugin.clone(),
                verdict,
            })
        })?,
        "fire_timers" => Command::FireTimers,
        other => return Err(format!("unknown command {other:?}")),
    };
    // The derivation and the core must name the command alike.
    debug_assert_eq!(command.verb(), m.command);
    Ok(command)
}

/// A stop's ids, as a command gives them by reference.
fn stop_by_id(s: &Stop) -> StopInput {
    StopInput {
        contact: s.contact_id.map(ContactInput::Id),
        location: s.location_id.map(LocationInput::Id),
    }
}

/// Details as recorded (whole, ids only), as a command that sets every
/// part: it gives the same details again.
fn details_by_id(d: &WorkOrderDetails) -> DetailsPatch {
    DetailsPatch {
        items: Some(d.items.clone()),
        instructions: d.instructions.clone(),
        pickup: stop_by_id(&d.pickup),
        drop: stop_by_id(&d.drop),
    }
}

fn create_of(r: &Registration) -> CreateOrder {
    CreateOrder {
        client: r.client.clone(),
        client_order_id: r.client_order_id.clone(),
        ready_to_process: r.ready_to_process,
        contact: r.drop.contact_id.map(ContactInput::Id),
        location: r.drop.location_id.map(LocationInput::Id),
        return_location: r.drop.return_location_id.map(LocationInput::Id),
        execution_flow: r.execution_flow,
        summary: r.summary.clone(),
        work_orders: r
            .work_orders
            .iter()
            .filter(|w| w.returns.is_none())
            .map(|w| WorkOrderSpec {
                kind: w.kind.clone(),
                items: w.details.items.clone(),
                instructions: w.details.instructions.clone(),
                pickup: stop_by_id(&w.details.pickup),
                drop: stop_by_id(&w.details.drop),
            })
            .collect(),
        custom: r.custom.clone(),
    }
}

fn update_of(events: &[Event]) -> Option<Command> {
    let ready = events.iter().any(|e| matches!(e, Event::MarkedReady));
    let updated = events.iter().find_map(|e| match e {
        Event::Updated {
            contact_id,
            location_id,
            summary,
            custom,
            ..
        } => Some((contact_id, location_id, summary, custom)),
        _ => None,
    });
    let mut update = UpdateOrder {
        ready_to_process: ready.then_some(true),
        ..UpdateOrder::default()
    };
    match updated {
        Some((contact_id, location_id, summary, custom)) => {
            update.contact = contact_id.map(ContactInput::Id);
            update.location = location_id.map(LocationInput::Id);
            // The event holds the whole summary after the update: setting
            // every field it has gives the same summary.
            if let Some(s) = summary {
                update.summary = SummaryPatch {
                    invoice_number: s.invoice_number.clone(),
                    order_description: s.order_description.clone(),
                    total_weight: s.total_weight,
                    total_items: s.total_items,
                    total_order_cost: s.total_order_cost.clone(),
                };
            }
            update.custom = custom.clone();
        }
        None if ready => {}
        None => return None,
    }
    Some(Command::Update(Box::new(update)))
}

/// The job update behind a `job` message: its first job event (the flow
/// engine adds dispatches, cancels and returns after it, never these).
fn job_update_of(events: &[Event]) -> Option<JobUpdate> {
    let update = |work_order, attempt, status, job_id, reason_code| JobUpdate {
        work_order,
        attempt,
        status,
        job_id,
        reason_code,
    };
    for (i, e) in events.iter().enumerate() {
        let found = match e {
            Event::JobStarted {
                work_order,
                attempt,
                job_id,
            } => update(
                *work_order,
                *attempt,
                JobStatus::Started,
                job_id.clone(),
                None,
            ),
            Event::JobCompleted {
                work_order,
                attempt,
            } => update(*work_order, *attempt, JobStatus::Completed, None, None),
            Event::JobCancelFailed {
                work_order,
                attempt,
                reason_code,
            } => {
                let completed_next = matches!(
                    events.get(i + 1),
                    Some(Event::JobCompleted { work_order: w, attempt: a })
                        if w == work_order && a == attempt
                );
                if completed_next && reason_code.as_deref() == Some(COMPLETED_BEFORE_CANCEL) {
                    update(*work_order, *attempt, JobStatus::Completed, None, None)
                } else {
                    update(
                        *work_order,
                        *attempt,
                        JobStatus::CancelFailed,
                        None,
                        reason_code.clone(),
                    )
                }
            }
            Event::JobFailed {
                work_order,
                attempt,
                reason_code,
                ..
            } => {
                if reason_code.as_deref() == Some(CANCELLED_BY_DISPATCH) {
                    update(*work_order, *attempt, JobStatus::Cancelled, None, None)
                } else {
                    update(
                        *work_order,
                        *attempt,
                        JobStatus::Failed,
                        None,
                        reason_code.clone(),
                    )
                }
            }
            Event::JobCancelled {
                work_order,
                attempt,
            } => update(*work_order, *attempt, JobStatus::Cancelled, None, None),
            Event::JobUpdateIgnored {
                work_order,
                attempt,
                status,
                ..
            } => update(*work_order, *attempt, *status, None, None),
            _ => continue,
        };
        return Some(found);
    }
    None
}

/// One step of a replay: a recorded command (with the timers that fired
/// before it), or the timers due by the horizon at the end.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The recorded message's seq; `None` for the last step (the horizon).
    pub seq: Option<u64>,
    /// The command's verb.
    pub command: String,
    /// The recorded command id; `None` for the last step.
    pub command_id: Option<String>,
    /// When.
    pub at: Timestamp,
    /// What it came to, in words: `applied → IN_PROGRESS`,
    /// `refused ORD-409-…`, `nothing due → EXECUTED`, with the timers that
    /// fired first and the milestones missed or reached late.
    pub outcome: String,
    /// The refusal's code, when the command was refused.
    pub refused: Option<String>,
    /// Where the order is after the step.
    pub after: Situation,
}

/// How a replayed history leaves the order: state, sub-state, close
/// reason and the milestones missed.
fn end_of(order: &Order) -> OrderEnd {
    let situation = Situation::of(order);
    OrderEnd {
        state: situation.state,
        sub_state: situation.sub_state,
        close_reason: situation.close_reason,
        milestones_missed: order
            .milestones
            .iter()
            .filter(|(_, m)| m.missed)
            .map(|(name, _)| name.clone())
            .collect(),
    }
}

/// One replay of a history under one configuration.
#[derive(Debug, Clone)]
pub struct Replay {
    /// One per recorded command, then the horizon's.
    pub steps: Vec<Step>,
    /// The order at the end.
    pub order: Order,
}

impl Replay {
    /// How it ends.
    pub fn end(&self) -> OrderEnd {
        end_of(&self.order)
    }
}

/// What one command came to in a replay.
enum Ran {
    Applied(Vec<Event>),
    Refused(String),
    NothingDue,
}

/// Runs one command on `order` (applying it when accepted).
fn run(
    order: &mut Order,
    command: Command,
    command_id: CommandId,
    by: &str,
    at: Timestamp,
    config: &TenantConfig,
    salt: u64,
) -> Ran {
    let fire = matches!(command, Command::FireTimers);
    let envelope = Envelope {
        tenant: order.tenant.clone(),
        order_id: order.id,
        command_id,
        by: by.to_owned(),
        command,
        expected_seq: None,
    };
    let base = u128::from(salt) << 8;
    let ctx = Ctx {
        now: at,
        config,
        fresh_ids: [
            Uuid::from_u128(base | 1),
            Uuid::from_u128(base | 2),
            Uuid::from_u128(base | 3),
        ],
    };
    match execute(order, &envelope, &ctx) {
        Outcome::Applied(change) => {
            apply_change(order, &change);
            Ran::Applied(change.events)
        }
        Outcome::Refused(Rejection::NoTimerDue) if fire => Ran::NothingDue,
        Outcome::Refused(r) => Ran::Refused(r.code().to_owned()),
        Outcome::Duplicate => Ran::Refused("duplicate command id".into()),
    }
}

/// Fires every timer due by `at` (again while firing makes more due).
fn fire_due(order: &mut Order, at: Timestamp, config: &TenantConfig, salt: u64) -> Vec<Event> {
    let mut events = Vec::new();
    for round in 0..FIRE_ROUNDS {
        if !order.timers.iter().any(|t| t.due <= at) {
            break;
        }
        let Ok(id) = CommandId::parse(&format!("dryrun:timers:{salt}:{round}")) else {
            break;
        };
        match run(order, Command::FireTimers, id, "orderd", at, config, salt) {
            Ran::Applied(fired) => events.extend(fired),
            Ran::Refused(_) | Ran::NothingDue => break,
        }
    }
    events
}

/// The milestone notes of a step's events.
fn milestone_notes(events: &[Event], out: &mut String) {
    for e in events {
        match e {
            Event::MilestoneMissed { name } => {
                let _ = write!(out, "; milestone {name} missed");
            }
            Event::MilestoneReached { name, late: true } => {
                let _ = write!(out, "; milestone {name} reached late");
            }
            _ => {}
        }
    }
}

fn describe(timers: &[Event], ran: &Ran, order: &Order) -> String {
    let mut out = String::new();
    if !timers.is_empty() {
        out.push_str("timers fired, then ");
    }
    let situation = Situation::of(order);
    match ran {
        Ran::Applied(_) => {
            let _ = write!(out, "applied → {situation}");
        }
        Ran::Refused(code) => {
            let _ = write!(out, "refused {code}");
        }
        Ran::NothingDue => {
            let _ = write!(out, "nothing due → {situation}");
        }
    }
    milestone_notes(timers, &mut out);
    if let Ran::Applied(events) = ran {
        milestone_notes(events, &mut out);
    }
    out
}

/// Replays `recorded` under `config` from a blank order, then fires what is
/// due by `horizon`.
pub fn replay(
    order_id: OrderId,
    tenant: &TenantId,
    recorded: &[Recorded],
    config: &TenantConfig,
    horizon: Timestamp,
) -> Replay {
    let mut order = Order::blank(order_id, tenant.clone());
    let mut steps = Vec::with_capacity(recorded.len() + 1);
    for r in recorded {
        let timers = if matches!(r.command, Command::FireTimers) {
            Vec::new()
        } else {
            fire_due(&mut order, r.at, config, r.seq)
        };
        let ran = run(
            &mut order,
            r.command.clone(),
            r.command_id.clone(),
            &r.by,
            r.at,
            config,
            r.seq,
        );
        steps.push(Step {
            seq: Some(r.seq),
            command: r.command.verb().to_owned(),
            command_id: Some(r.command_id.as_str().to_owned()),
            at: r.at,
            outcome: describe(&timers, &ran, &order),
            refused: match &ran {
                Ran::Refused(code) => Some(code.clone()),
                _ => None,
            },
            after: Situation::of(&order),
        });
    }
    let at = horizon.max(recorded.last().map_or(horizon, |r| r.at));
    let fired = fire_due(&mut order, at, config, u64::MAX);
    let mut outcome = if fired.is_empty() {
        format!("nothing due → {}", Situation::of(&order))
    } else {
        format!("timers fired → {}", Situation::of(&order))
    };
    milestone_notes(&fired, &mut outcome);
    steps.push(Step {
        seq: None,
        command: Command::FireTimers.verb().to_owned(),
        command_id: None,
        at,
        outcome,
        refused: None,
        after: Situation::of(&order),
    });
    Replay { steps, order }
}

/// Checks that a replay under the order's own version came out as recorded:
/// every command applied, and the situation after it the recorded one.
pub fn reproduces(recorded: &[Recorded], replay: &Replay) -> Result<(), Unreplayable> {
    for (r, step) in recorded.iter().zip(&replay.steps) {
        let replayed = match &step.refused {
            Some(code) => Some(format!("refused {code}")),
            None if step.after != r.reached => Some(step.after.to_string()),
            None => None,
        };
        if let Some(replayed) = replayed {
            return Err(Unreplayable::NotReproduced {
                seq: r.seq,
                command: r.command.verb().to_owned(),
                recorded: r.reached.to_string(),
                replayed,
            });
        }
    }
    Ok(())
}

/// How a history comes out differently under two configurations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The ends differ (not only a step along the way).
    pub ends_differently: bool,
    /// The end under the first configuration (the order's own).
    pub now: OrderEnd,
    /// The end under the second (the draft).
    pub draft: OrderEnd,
    /// The first step whose outcome differs.
    pub first: Option<StepDifference>,
}

/// Compares two replays of one history; `None` when every step and the end
/// come out alike.
pub fn compare(now: &Replay, draft: &Replay) -> Option<Difference> {
    let first = now
        .steps
        .iter()
        .zip(&draft.steps)
        .find(|(a, b)| a.outcome != b.outcome)
        .map(|(a, b)| StepDifference {
            seq: a.seq,
            command: a.command.clone(),
            command_id: a.command_id.clone(),
            at: rfc3339(a.at),
            now: a.outcome.clone(),
            draft: b.outcome.clone(),
        });
    let (end_now, end_draft) = (now.end(), draft.end());
    if first.is_none() && end_now == end_draft {
        return None;
    }
    Some(Difference {
        ends_differently: end_now != end_draft,
        now: end_now,
        draft: end_draft,
        first,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderd_core::WorkOrderId;
    use serde_json::json;
    use std::collections::BTreeMap;

    const START: i64 = 1_700_000_000_000;

    fn config(v: serde_json::Value) -> TenantConfig {
        serde_json::from_value(v).expect("a configuration")
    }

    /// An order driven through the core as orderd would, keeping the event
    /// messages it publishes (after a trip through JSON, as the stream
    /// returns them).
    struct Story {
        order: Order,
        config: TenantConfig,
        messages: Vec<EventMessage>,
        now: i64,
    }

    impl Story {
        fn new(config: TenantConfig) -> Self {
            let tenant = TenantId::parse("acme").unwrap();
            Self {
                order: Order::blank(OrderId(Uuid::from_u128(7)), tenant),
                config,
                messages: Vec::new(),
                now: START,
            }
        }

        fn at(&mut self, ms: i64) -> &mut Self {
            self.now = START + ms;
            self
        }

        /// Sends a command a second after the last; true when applied.
        fn send(&mut self, command: Command) -> bool {
            self.now += 1_000;
            let n = self.messages.len() as u128 + 1;
            let by = match command {
                Command::Job(_) => "dispatch",
                Command::FireTimers | Command::RecordPluginVerdict { .. } => "orderd",
                _ => "client-1",
            };
            let envelope = Envelope {
                tenant: self.order.tenant.clone(),
                order_id: self.order.id,
                command_id: CommandId::parse(&format!("cmd-{}", self.now)).unwrap(),
                by: by.into(),
                command,
                expected_seq: None,
            };
            let ctx = Ctx {
                now: Timestamp(self.now),
                config: &self.config,
                fresh_ids: [
                    Uuid::from_u128(n * 10 + 1),
                    Uuid::from_u128(n * 10 + 2),
                    Uuid::from_u128(n * 10 + 3),
                ],
            };
            match execute(&self.order, &envelope, &ctx) {
                Outcome::Applied(change) => {
                    apply_change(&mut self.order, &change);
                    let message = EventMessage::from_change(&self.order, &change);
                    let text = serde_json::to_vec(&message).unwrap();
                    self.messages.push(serde_json::from_slice(&text).unwrap());
                    true
                }
                _ => false,
            }
        }

        fn ok(&mut self, command: Command) {
            let verb = command.verb();
            assert!(self.send(command), "{verb} applied");
        }

        fn job(&mut self, work_order: u32, attempt: u32, status: JobStatus, reason: Option<&str>) {
            self.ok(Command::Job(JobUpdate {
                work_order: WorkOrderId(work_order),
                attempt,
                status,
                job_id: Some(format!("job-{work_order}-{attempt}")),
                reason_code: reason.map(str::to_owned),
            }));
        }

        fn recorded(&self) -> Vec<Recorded> {
            recorded_commands(&self.messages, self.order.seq).expect("replayable")
        }

        fn replay(&self, config: &TenantConfig, horizon: i64) -> Replay {
            replay(
                self.order.id,
                &self.order.tenant,
                &self.recorded(),
                config,
                Timestamp(START + horizon),
            )
        }
    }

    /// A create as a client sends it (contact in full: personal data).
    fn create(kinds: &[&str], custom: serde_json::Value) -> Command {
        let body = json!({
            "clientId": "client-1", "clientName": "Acme Retail", "clientOrderId": "PO-1",
            "dropDetails": {"contact": {"name": "Ada Marker", "phone": "+44 20 7946 0000"}},
            "orderSummary": {"invoiceNumber": "INV-001"},
            "workOrders": kinds.iter().map(|k| json!({"type": k})).collect::<Vec<_>>(),
            "customAttributes": custom,
        });
        let tenant = TenantId::parse("acme").unwrap();
        let inbound = crate::subjects::parse_inbound(&crate::subjects::create(&tenant)).unwrap();
        let body = serde_json::to_vec(&body).unwrap();
        crate::wire::decode_command(&inbound, None, &body, crate::wire::DEFAULT_MAX_BODY).unwrap()
    }

    fn pickup(max_attempts: u32, return_on_failure: bool) -> serde_json::Value {
        json!({"PICKUP": {"jobType": "pickup", "maxAttempts": max_attempts,
                          "returnOnFailure": return_on_failure},
               "RETURN": {"jobType": "return", "maxAttempts": 1}})
    }

    #[test]
    fn a_history_gives_back_its_commands_and_replays_as_recorded() {
        let own = config(json!({
            "attributes": [{"name": "region", "dataType": "string", "defaultValue": "north"}],
            "workOrderTypes": pickup(3, false),
            "subStates": {"IN_PROGRESS": {"subStates": ["PACKING", "LOADED"],
                                           "transitions": [["PACKING", "LOADED"]]}},
            "plugins": ["credit"],
            "milestones": [{"name": "dispatched", "reach": "IN_PROGRESS", "withinMs": 500}]
        }));
        let mut s = Story::new(own.clone());
        s.ok(create(&["PICKUP", "PICKUP"], json!({})));
        s.at(10_000).ok(Command::FireTimers); // the milestone is missed
        s.ok(Command::RecordPluginVerdict {
            plugin: "credit".into(),
            verdict: PluginVerdict::Accepted,
        });
        s.ok(Command::Update(Box::new(UpdateOrder {
            summary: SummaryPatch {
                total_items: Some(4),
                ..SummaryPatch::default()
            },
            custom: BTreeMap::from([("region".to_owned(), json!("south"))]),
            ..UpdateOrder::default()
        })));
        s.ok(Command::SetSubState {
            to: Some("PACKING".into()),
        });
        s.ok(Command::SetSubState {
            to: Some("LOADED".into()),
        });
        s.ok(Command::Hold {
            reason: Some("customer away".into()),
        });
        s.job(1, 1, JobStatus::Started, None); // recorded while held
        s.ok(Command::Resume);
        s.job(1, 1, JobStatus::Failed, Some("NO_ACCESS"));
        s.job(1, 1, JobStatus::Failed, None); // stale: ignored
        s.job(1, 2, JobStatus::Completed, None);
        s.ok(Command::Cancel {
            reason: Some("changed mind".into()),
        });
        s.job(2, 1, JobStatus::Cancelled, None);
        assert_eq!(s.order.state.as_str(), "CLOSED");

        let recorded = s.recorded();
        assert_eq!(recorded.len(), s.messages.len());
        let verbs: Vec<&str> = recorded.iter().map(|r| r.command.verb()).collect();
        assert_eq!(
            verbs,
            [
                "create",
                "fire_timers",
                "plugin_verdict",
                "update",
                "substate",
                "substate",
                "hold",
                "job",
                "resume",
                "job",
                "job",
                "job",
                "cancel",
                "job"
            ]
        );
        // Personal data stays by reference.
        let Command::Create(c) = &recorded[0].command else {
            panic!("a create")
        };
        assert_eq!(c.contact, s.order.drop.contact_id.map(ContactInput::Id));
        assert_eq!(c.custom.get("region"), Some(&json!("north")));
        assert_eq!(
            recorded[6].command,
            Command::Hold {
                reason: Some("customer away".into())
            }
        );
        let Command::Job(failed) = &recorded[9].command else {
            panic!("a job update")
        };
        assert_eq!(
            (failed.attempt, failed.status, failed.reason_code.as_deref()),
            (1, JobStatus::Failed, Some("NO_ACCESS"))
        );
        assert_eq!(recorded[0].at, Timestamp(START + 1_000));
        assert_eq!(recorded[0].by, "client-1");

        let now = s.replay(&own, 60_000);
        reproduces(&recorded, &now).expect("reproduces the record");
        assert_eq!(now.end(), end_of(&s.order));
        assert_eq!(now.end().milestones_missed, ["dispatched"]);
        assert_eq!(compare(&now, &s.replay(&own, 60_000)), None);
    }

    /// An update as a client sends it.
    fn update(body: serde_json::Value) -> Command {
        let tenant = TenantId::parse("acme").unwrap();
        let order = OrderId::parse("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap();
        let subject = crate::subjects::command(&tenant, order, crate::subjects::Verb::Update);
        let inbound = crate::subjects::parse_inbound(&subject).unwrap();
        let body = serde_json::to_vec(&body).unwrap();
        crate::wire::decode_command(&inbound, None, &body, crate::wire::DEFAULT_MAX_BODY).unwrap()
    }

    #[test]
    fn a_changed_work_order_and_a_client_return_replay_as_recorded() {
        let own = TenantConfig::default();
        let mut s = Story::new(own.clone());
        s.ok(create(&["PICKUP", "DELIVERY"], json!({})));
        s.ok(update(json!({
            "workOrderId": 2,
            "instructions": "Ring twice",
            "drop": {"contact": {"name": "Rae Porter", "phone": "+15550123"}}
        })));
        for wo in [1, 2] {
            s.job(wo, 1, JobStatus::Started, None);
            s.job(wo, 1, JobStatus::Completed, None);
        }
        s.ok(update(json!({"addReturn": {"returns": 2, "items": []}})));
        s.job(3, 1, JobStatus::Completed, None);
        assert_eq!(s.order.state.as_str(), "EXECUTED");
        let recorded = s.recorded();
        let verbs: Vec<&str> = recorded.iter().map(|r| r.command.verb()).collect();
        assert_eq!(verbs[1], "update_work_order");
        assert_eq!(verbs[6], "add_return");
        // Given back by id: no personal data enters a replay.
        assert!(!format!("{recorded:?}").contains("Rae Porter"));
        let now = s.replay(&own, 10_000);
        reproduces(&recorded, &now).unwrap();
        assert_eq!(
            now.order.work_orders[1].details,
            s.order.work_orders[1].details
        );
        assert_eq!(
            now.order.work_orders[2].details,
            s.order.work_orders[2].details
        );
    }

    #[test]
    fn a_broken_history_says_why_it_cannot_be_replayed() {
        let mut s = Story::new(TenantConfig::default());
        s.ok(create(&["PICKUP"], json!({})));
        s.job(1, 1, JobStatus::Started, None);
        s.job(1, 1, JobStatus::Completed, None);
        let m = &s.messages;
        let seq = s.order.seq;
        assert_eq!(recorded_commands(&[], seq), Err(Unreplayable::NoEvents));
        assert_eq!(
            recorded_commands(&m[1..], seq),
            Err(Unreplayable::Expired { first: 2 })
        );
        let gap = [m[0].clone(), m[2].clone()];
        assert_eq!(
            recorded_commands(&gap, seq),
            Err(Unreplayable::Gap { missing: 2 })
        );
        assert_eq!(
            recorded_commands(&m[..2], seq),
            Err(Unreplayable::Behind { last: 2, order: 3 })
        );
        let mut odd = m.clone();
        odd[1].command = "teleport".into();
        let err = recorded_commands(&odd, seq).unwrap_err();
        assert_eq!(err.code(), "UNRECOGNISED_EVENTS");
        assert!(err.to_string().contains("teleport"), "{err}");
        let mut odd = m.clone();
        odd[2].at = "yesterday".into();
        assert_eq!(
            recorded_commands(&odd, seq).unwrap_err().code(),
            "UNRECOGNISED_EVENTS"
        );
        let mut odd = m.clone();
        odd[2].events.clear();
        assert!(recorded_commands(&odd, seq)
            .unwrap_err()
            .to_string()
            .contains("without its job event"));
        // A record the replay does not come to.
        let mut odd = m.clone();
        odd[2].state = "IN_PROGRESS".into();
        let recorded = recorded_commands(&odd, seq).unwrap();
        let replayed = replay(
            s.order.id,
            &s.order.tenant,
            &recorded,
            &TenantConfig::default(),
            Timestamp(START),
        );
        let err = reproduces(&recorded, &replayed).unwrap_err();
        assert_eq!(err.code(), "NOT_REPRODUCED");
        assert!(err.to_string().contains("seq 3"), "{err}");
    }

    #[test]
    fn more_attempts_or_a_return_change_how_a_failed_job_ends() {
        let own = config(json!({"workOrderTypes": pickup(1, false)}));
        let mut s = Story::new(own.clone());
        s.ok(create(&["PICKUP"], json!({})));
        s.job(1, 1, JobStatus::Started, None);
        s.job(1, 1, JobStatus::Failed, Some("NO_ACCESS"));
        assert_eq!(s.order.state.as_str(), "CLOSED");
        let now = s.replay(&own, 10_000);
        reproduces(&s.recorded(), &now).unwrap();

        let more = s.replay(&config(json!({"workOrderTypes": pickup(2, false)})), 10_000);
        let d = compare(&now, &more).expect("a difference");
        assert!(d.ends_differently);
        assert_eq!(
            (d.now.state.as_str(), d.now.close_reason.as_deref()),
            ("CLOSED", Some("CANCELLED"))
        );
        assert_eq!(d.draft.state, "IN_PROGRESS");
        let first = d.first.expect("a first difference");
        assert_eq!((first.seq, first.command.as_str()), (Some(3), "job"));
        assert_eq!(first.now, "applied → CLOSED (CANCELLED)");
        assert_eq!(first.draft, "applied → IN_PROGRESS");

        // A return after the failure: the order waits for it instead.
        let returned = s.replay(&config(json!({"workOrderTypes": pickup(1, true)})), 10_000);
        let d = compare(&now, &returned).expect("a difference");
        assert_eq!(d.draft.state, "IN_PROGRESS");
        assert_eq!(d.first.unwrap().seq, Some(3));
    }

    #[test]
    fn a_refused_sub_state_move_is_reported_though_the_order_ends_alike() {
        let sub_states = |transitions: serde_json::Value| {
            config(
                json!({"subStates": {"IN_PROGRESS": {"subStates": ["PACKING", "LOADED"],
                                                        "transitions": transitions}}}),
            )
        };
        let own = sub_states(json!([["PACKING", "LOADED"]]));
        let mut s = Story::new(own.clone());
        s.ok(create(&["PICKUP"], json!({})));
        s.ok(Command::SetSubState {
            to: Some("PACKING".into()),
        });
        s.ok(Command::SetSubState {
            to: Some("LOADED".into()),
        });
        s.job(1, 1, JobStatus::Started, None);
        s.job(1, 1, JobStatus::Completed, None);
        let now = s.replay(&own, 0);
        let draft = s.replay(&sub_states(json!([])), 0);
        let d = compare(&now, &draft).expect("a difference");
        assert!(!d.ends_differently, "both EXECUTED: {d:?}");
        assert_eq!(d.now.state, "EXECUTED");
        let first = d.first.unwrap();
        assert_eq!((first.seq, first.command.as_str()), (Some(3), "substate"));
        assert_eq!(first.now, "applied → IN_PROGRESS/LOADED");
        assert_eq!(first.draft, "refused ORD-409-SUB_STATE_TRANSITION");
    }

    #[test]
    fn a_drafts_timers_fire_by_the_next_command_or_the_horizon() {
        let own = TenantConfig::default();
        let mut s = Story::new(own.clone());
        s.ok(create(&["PICKUP"], json!({})));
        s.job(1, 1, JobStatus::Started, None);
        s.job(1, 1, JobStatus::Completed, None);
        assert_eq!(s.order.state.as_str(), "EXECUTED");
        let auto_close = config(json!({"autoCloseAfterMs": 1000}));
        // The horizon is past the auto-close: the draft closes the order.
        let d =
            compare(&s.replay(&own, 60_000), &s.replay(&auto_close, 60_000)).expect("a difference");
        assert!(d.ends_differently);
        assert_eq!(
            (d.draft.state.as_str(), d.draft.close_reason.as_deref()),
            ("CLOSED", Some("COMPLETED"))
        );
        let first = d.first.unwrap();
        assert_eq!(first.seq, None);
        assert_eq!(first.now, "nothing due → EXECUTED");
        assert_eq!(first.draft, "timers fired → CLOSED (COMPLETED)");
        // Not yet due at the horizon: alike.
        assert_eq!(
            compare(&s.replay(&own, 3_500), &s.replay(&auto_close, 3_500)),
            None
        );

        // A milestone the draft adds (due 1.5 s after the create) is missed
        // before the job completes 2 s after it.
        let milestone = config(
            json!({"milestones": [{"name": "done", "reach": "EXECUTED", "withinMs": 1500}]}),
        );
        let d = compare(&s.replay(&own, 0), &s.replay(&milestone, 0)).expect("a difference");
        assert!(d.ends_differently, "a milestone missed");
        assert!(d.now.milestones_missed.is_empty());
        assert_eq!(d.draft.milestones_missed, ["done"]);
        assert_eq!(d.draft.state, d.now.state);
        let first = d.first.unwrap();
        assert_eq!(first.seq, Some(3));
        assert_eq!(first.now, "applied → EXECUTED");
        assert_eq!(
            first.draft,
            "timers fired, then applied → EXECUTED; milestone done missed; milestone done reached late"
        );
    }
}
