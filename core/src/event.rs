//! Events: what happened to an order, in the past tense. The order changes only
//! by applying them, so a replay and a live run cannot diverge. A [`Change`] is
//! the events of one accepted command, under one sequence number.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::command::{Address, Contact};
use crate::ids::{CommandId, ContactId, LocationId, Timestamp, WorkOrderId};
use crate::model::{
    Client, CloseReason, DropDetails, ExecutionFlow, IgnoredWhy, JobStatus, OrderState,
    OrderSummary, TimerKind, UpdateGroup, WorkOrderDetails, WorkOrderState,
};

/// Personal data riding on an event on its way to the store apart. It never
/// serializes (a snapshot, a published event or a log cannot carry it) and its
/// `Debug` is redacted; after a round trip through any encoding it is empty.
#[derive(Clone, PartialEq, Default)]
pub struct Sealed<T>(pub Option<T>);

impl<T> fmt::Debug for Sealed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<sealed>")
    }
}

impl<T> Serialize for Sealed<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl<'de, T> Deserialize<'de> for Sealed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Sealed(None))
    }
}

/// A work order as registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredWorkOrder {
    /// Its id.
    pub id: WorkOrderId,
    /// Type name, as `type` (a `return_added` event is tagged by `kind`;
    /// `kind` is still read, as events recorded before it was renamed have it).
    #[serde(rename = "type", alias = "kind")]
    pub kind: String,
    /// Job type.
    pub job_type: String,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Return on failure.
    pub return_on_failure: bool,
    /// Return on cancellation.
    pub return_on_cancel: bool,
    /// For a RETURN: the work order it returns.
    pub returns: Option<WorkOrderId>,
    /// Items, instructions, pickup and drop (ids only).
    #[serde(default, skip_serializing_if = "WorkOrderDetails::is_empty")]
    pub details: WorkOrderDetails,
}

/// The core attributes of a new order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    /// Who placed it.
    pub client: Client,
    /// The client's reference.
    pub client_order_id: String,
    /// Ready to process.
    pub ready_to_process: bool,
    /// Contact and location references.
    pub drop: DropDetails,
    /// Flow.
    pub execution_flow: ExecutionFlow,
    /// Summary.
    pub summary: OrderSummary,
    /// Custom attributes, defaults filled in.
    pub custom: BTreeMap<String, serde_json::Value>,
    /// Tenant configuration version.
    pub schema_version: u64,
    /// The work orders.
    pub work_orders: Vec<RegisteredWorkOrder>,
    /// Plugins to wait for.
    pub plugins: Vec<String>,
}

/// Everything that can happen to an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum Event {
    /// The order exists, INITIATED.
    Registered(Box<Registration>),
    /// A contact was taken apart into the contact store.
    ContactRecorded {
        /// Its new id.
        contact_id: ContactId,
        /// The personal data, for the store only.
        contact: Sealed<Contact>,
    },
    /// An address was taken apart into the location store.
    LocationRecorded {
        /// Its new id.
        location_id: LocationId,
        /// The personal data, for the store only.
        address: Sealed<Address>,
    },
    /// One plugin accepted the order.
    PluginAccepted {
        /// The plugin.
        plugin: String,
    },
    /// Every plugin accepted (or none is configured): CREATED.
    Validated,
    /// A plugin refused: CLOSED as VALIDATION_FAILED.
    ValidationFailed {
        /// The plugin.
        plugin: String,
        /// Its reasons.
        reasons: Vec<String>,
    },
    /// readyToProcess went false→true.
    MarkedReady,
    /// The orchestrator picked the order up: IN_PROGRESS.
    Started,
    /// The order was withdrawn: ON_HOLD.
    Held {
        /// The state it left.
        from: OrderState,
        /// Why.
        reason: Option<String>,
    },
    /// The hold ended.
    Resumed {
        /// The state it went back to.
        to: OrderState,
    },
    /// Every work order is done.
    Executed,
    /// The order is over.
    Closed {
        /// Why.
        reason: CloseReason,
        /// What led to it, when it was not a plain request.
        cause: Option<String>,
    },
    /// The tenant sub-state changed.
    SubStateChanged {
        /// Before.
        from: Option<String>,
        /// After.
        to: Option<String>,
    },
    /// Updatable attributes changed.
    Updated {
        /// The groups touched.
        groups: Vec<UpdateGroup>,
        /// The new contact id.
        contact_id: Option<ContactId>,
        /// The new location id.
        location_id: Option<LocationId>,
        /// The new summary (whole).
        summary: Option<OrderSummary>,
        /// Custom attributes set.
        custom: BTreeMap<String, serde_json::Value>,
    },
    /// A job was sent to dispatch for this attempt.
    JobDispatched {
        /// The work order.
        work_order: WorkOrderId,
        /// The attempt (1 for the first job).
        attempt: u32,
        /// Job type.
        job_type: String,
        /// COMPLETE_TOGETHER group: the order id.
        group: Option<String>,
    },
    /// Dispatch started the job.
    JobStarted {
        /// The work order.
        work_order: WorkOrderId,
        /// The attempt.
        attempt: u32,
        /// Dispatch's job id.
        job_id: Option<String>,
    },
    /// The job completed: the work order is COMPLETED.
    JobCompleted {
        /// The work order.
        work_order: WorkOrderId,
        /// The attempt.
        attempt: u32,
    },
    /// The job failed; the work order waits for its next attempt, or failed for good.
    JobFailed {
        /// The work order.
        work_order: WorkOrderId,
        /// The attempt.
        attempt: u32,
        /// Dispatch's reason.
        reason_code: Option<String>,
        /// No attempts left: the work order is FAILED.
        final_attempt: bool,
    },
    /// A job update was recorded but changed nothing.
    JobUpdateIgnored {
        /// The work order.
        work_order: WorkOrderId,
        /// The attempt it named.
        attempt: u32,
        /// Its status.
        status: JobStatus,
        /// Why it changed nothing.
        why: IgnoredWhy,
    },
    /// A hold was sent for the job.
    JobHoldRequested {
        /// The work order.
        work_order: WorkOrderId,
        /// The attempt.
        attempt: u32,
    },
    /// A resume was sent for the job.
    JobResumeRequested {
        /// The work order.
        work_order: WorkOrderId,
        /// The attempt.
        attempt: u32,
    },
    /// A cancel was sent for the job.
    JobCancelRequested {
        /// The work order.
        work_order: WorkOrderId,
        /// The attempt.
        attempt: u32,
    },
    /// Dispatch cancelled the job: the work order is CANCELLED.
    JobCancelled {
        /// The work order.
        work_order: WorkOrderId,
        /// The attempt.
        attempt: u32,
    },
    /// Dispatch could not cancel the job; it carries on.
    JobCancelFailed {
        /// The work order.
        work_order: WorkOrderId,
        /// The attempt.
        attempt: u32,
        /// Dispatch's reason.
        reason_code: Option<String>,
    },
    /// The client held one work order on its own (its job's hold follows
    /// when one is out); the order's resume leaves it held.
    WorkOrderHeld {
        /// The work order.
        work_order: WorkOrderId,
        /// Why, for the record.
        reason: Option<String>,
    },
    /// The client resumed a work order it held on its own.
    WorkOrderResumed {
        /// The work order.
        work_order: WorkOrderId,
    },
    /// The client asked to cancel one work order: cancelled at once when no
    /// job is out, else when dispatch confirms its job's cancel.
    WorkOrderWithdrawn {
        /// The work order.
        work_order: WorkOrderId,
        /// Why, for the record.
        reason: Option<String>,
    },
    /// The client changed a work order's own details before it was sent
    /// to dispatch: its items, instructions, pickup and drop as they are
    /// now (ids only; new contacts and addresses are recorded apart first).
    WorkOrderUpdated {
        /// The work order.
        work_order: WorkOrderId,
        /// Its details after the change, whole.
        details: WorkOrderDetails,
    },
    /// A work order with no job out was cancelled (never started, or between attempts).
    WorkOrderCancelled {
        /// The work order.
        work_order: WorkOrderId,
        /// Its state before.
        from: WorkOrderState,
    },
    /// A RETURN work order was added.
    ReturnAdded(RegisteredWorkOrder),
    /// A return was added to an EXECUTED order: IN_PROGRESS again until it
    /// is done (the auto-close timer is dropped; executing again sets it anew).
    Reopened,
    /// A cancel was requested: cancellation PENDING.
    CancellationRequested {
        /// Who asked.
        by: String,
        /// Why.
        reason: Option<String>,
    },
    /// orderd is attempting the cancellation: ATTEMPTING.
    CancellationAttempting,
    /// Cancelled: SUCCESS.
    CancellationSucceeded,
    /// A job could not be cancelled: FAILED, the order carries on.
    CancellationFailed {
        /// The first cancel-failed reason.
        reason_code: String,
    },
    /// A timer was set.
    TimerSet {
        /// What it does.
        timer: TimerKind,
        /// When.
        due: Timestamp,
    },
    /// A timer fired (and is gone).
    TimerFired {
        /// What it did.
        timer: TimerKind,
    },
    /// A milestone started counting.
    MilestoneStarted {
        /// Its name.
        name: String,
        /// The state that meets it.
        reach: OrderState,
        /// When it is due.
        due: Timestamp,
    },
    /// A milestone is due soon (its monitoring rule's warning).
    MilestoneDueSoon {
        /// Its name.
        name: String,
        /// When it is due.
        due: Timestamp,
    },
    /// A milestone's due time passed before it was met.
    MilestoneMissed {
        /// Its name.
        name: String,
    },
    /// A milestone was met.
    MilestoneReached {
        /// Its name.
        name: String,
        /// Met after its due time.
        late: bool,
    },
}

impl Event {
    /// Every event kind, as `kind()` names them.
    pub const KINDS: [&'static str; 41] = [
        "registered",
        "contact_recorded",
        "location_recorded",
        "plugin_accepted",
        "validated",
        "validation_failed",
        "marked_ready",
        "started",
        "held",
        "resumed",
        "executed",
        "closed",
        "sub_state_changed",
        "updated",
        "job_dispatched",
        "job_started",
        "job_completed",
        "job_failed",
        "job_update_ignored",
        "job_hold_requested",
        "job_resume_requested",
        "job_cancel_requested",
        "job_cancelled",
        "job_cancel_failed",
        "work_order_cancelled",
        "work_order_withdrawn",
        "work_order_held",
        "work_order_resumed",
        "work_order_updated",
        "return_added",
        "reopened",
        "cancellation_requested",
        "cancellation_attempting",
        "cancellation_succeeded",
        "cancellation_failed",
        "timer_set",
        "timer_fired",
        "milestone_started",
        "milestone_due_soon",
        "milestone_missed",
        "milestone_reached",
    ];

    /// The event's kind, as in subjects and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Registered(_) => "registered",
            Event::ContactRecorded { .. } => "contact_recorded",
            Event::LocationRecorded { .. } => "location_recorded",
            Event::PluginAccepted { .. } => "plugin_accepted",
            Event::Validated => "validated",
            Event::ValidationFailed { .. } => "validation_failed",
            Event::MarkedReady => "marked_ready",
            Event::Started => "started",
            Event::Held { .. } => "held",
            Event::Resumed { .. } => "resumed",
            Event::Executed => "executed",
            Event::Closed { .. } => "closed",
            Event::SubStateChanged { .. } => "sub_state_changed",
            Event::Updated { .. } => "updated",
            Event::JobDispatched { .. } => "job_dispatched",
            Event::JobStarted { .. } => "job_started",
            Event::JobCompleted { .. } => "job_completed",
            Event::JobFailed { .. } => "job_failed",
            Event::JobUpdateIgnored { .. } => "job_update_ignored",
            Event::JobHoldRequested { .. } => "job_hold_requested",
            Event::JobResumeRequested { .. } => "job_resume_requested",
            Event::JobCancelRequested { .. } => "job_cancel_requested",
            Event::JobCancelled { .. } => "job_cancelled",
            Event::JobCancelFailed { .. } => "job_cancel_failed",
            Event::WorkOrderCancelled { .. } => "work_order_cancelled",
            Event::WorkOrderWithdrawn { .. } => "work_order_withdrawn",
            Event::WorkOrderHeld { .. } => "work_order_held",
            Event::WorkOrderResumed { .. } => "work_order_resumed",
            Event::WorkOrderUpdated { .. } => "work_order_updated",
            Event::ReturnAdded(_) => "return_added",
            Event::Reopened => "reopened",
            Event::CancellationRequested { .. } => "cancellation_requested",
            Event::CancellationAttempting => "cancellation_attempting",
            Event::CancellationSucceeded => "cancellation_succeeded",
            Event::CancellationFailed { .. } => "cancellation_failed",
            Event::TimerSet { .. } => "timer_set",
            Event::TimerFired { .. } => "timer_fired",
            Event::MilestoneStarted { .. } => "milestone_started",
            Event::MilestoneDueSoon { .. } => "milestone_due_soon",
            Event::MilestoneMissed { .. } => "milestone_missed",
            Event::MilestoneReached { .. } => "milestone_reached",
        }
    }
}

/// The events of one accepted command: one sequence number, one published
/// message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// The order's sequence number after this change (previous + 1).
    pub seq: u64,
    /// The command that caused it.
    pub command_id: CommandId,
    /// The command's verb.
    pub command: String,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub by: String,
    /// What happened, in order.
    pub events: Vec<Event>,
}

/// A command for dispatch, derived from a change's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobCommand {
    /// The work order.
    pub work_order: WorkOrderId,
    /// The attempt.
    pub attempt: u32,
    /// What dispatch must do.
    pub action: JobAction,
    /// Job type (create only).
    pub job_type: Option<String>,
    /// COMPLETE_TOGETHER group id.
    pub group: Option<String>,
}

/// What dispatch is asked to do with a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobAction {
    /// Create (run) the job.
    Create,
    /// Hold it.
    Hold,
    /// Resume it.
    Resume,
    /// Cancel it.
    Cancel,
}

impl JobAction {
    /// Every action, as in subjects.
    pub const ALL: [JobAction; 4] = [
        JobAction::Create,
        JobAction::Hold,
        JobAction::Resume,
        JobAction::Cancel,
    ];

    /// The subject token.
    pub fn as_str(self) -> &'static str {
        match self {
            JobAction::Create => "create",
            JobAction::Hold => "hold",
            JobAction::Resume => "resume",
            JobAction::Cancel => "cancel",
        }
    }
}

/// Personal data to store apart before the change is persisted.
#[derive(Debug, Clone, PartialEq)]
pub enum Personal {
    /// A contact.
    Contact(ContactId, Contact),
    /// An address.
    Location(LocationId, Address),
}

impl Change {
    /// The job commands this change sends to dispatch, in order.
    pub fn job_commands(&self) -> Vec<JobCommand> {
        self.events
            .iter()
            .filter_map(|e| {
                let (work_order, attempt, action, job_type, group) = match e {
                    Event::JobDispatched {
                        work_order,
                        attempt,
                        job_type,
                        group,
                    } => (
                        *work_order,
                        *attempt,
                        JobAction::Create,
                        Some(job_type.clone()),
                        group.clone(),
                    ),
                    Event::JobHoldRequested {
                        work_order,
                        attempt,
                    } => (*work_order, *attempt, JobAction::Hold, None, None),
                    Event::JobResumeRequested {
                        work_order,
                        attempt,
                    } => (*work_order, *attempt, JobAction::Resume, None, None),
                    Event::JobCancelRequested {
                        work_order,
                        attempt,
                    } => (*work_order, *attempt, JobAction::Cancel, None, None),
                    _ => return None,
                };
                Some(JobCommand {
                    work_order,
                    attempt,
                    action,
                    job_type,
                    group,
                })
            })
            .collect()
    }

    /// The personal data this change carries to the stores apart. Empty once
    /// the change has been through any encoding.
    pub fn personal_data(&self) -> Vec<Personal> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::ContactRecorded {
                    contact_id,
                    contact: Sealed(Some(c)),
                } => Some(Personal::Contact(*contact_id, c.clone())),
                Event::LocationRecorded {
                    location_id,
                    address: Sealed(Some(a)),
                } => Some(Personal::Location(*location_id, a.clone())),
                _ => None,
            })
            .collect()
    }

    /// The order state after the change, when the change moved it.
    pub fn state_reached(&self) -> Option<OrderState> {
        self.events.iter().rev().find_map(|e| match e {
            Event::Registered(_) => Some(OrderState::Initiated),
            Event::Validated => Some(OrderState::Created),
            Event::Started | Event::Reopened => Some(OrderState::InProgress),
            Event::Held { .. } => Some(OrderState::OnHold),
            Event::Resumed { to } => Some(*to),
            Event::Executed => Some(OrderState::Executed),
            Event::Closed { .. } | Event::ValidationFailed { .. } => Some(OrderState::Closed),
            _ => None,
        })
    }
}
