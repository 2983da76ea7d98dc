//! The order and its work orders: the state the core decides on. Nothing here
//! changes except through [`crate::apply`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{CommandId, ContactId, LocationId, OrderId, TenantId, Timestamp, WorkOrderId};

/// The six lifecycle states of an order (seed 002).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderState {
    /// Registered, waiting for the tenant's validation plugins.
    #[default]
    Initiated,
    /// Validated; waits for readyToProcess or for the orchestrator.
    Created,
    /// At least one work order has a job.
    InProgress,
    /// Withdrawn for a while: nothing is dispatched, jobs are held.
    OnHold,
    /// Every work order is done.
    Executed,
    /// Over, with a [`CloseReason`].
    Closed,
}

impl OrderState {
    /// Every state, in lifecycle order.
    pub const ALL: [OrderState; 6] = [
        OrderState::Initiated,
        OrderState::Created,
        OrderState::InProgress,
        OrderState::OnHold,
        OrderState::Executed,
        OrderState::Closed,
    ];

    /// The wire name (`IN_PROGRESS`).
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Initiated => "INITIATED",
            OrderState::Created => "CREATED",
            OrderState::InProgress => "IN_PROGRESS",
            OrderState::OnHold => "ON_HOLD",
            OrderState::Executed => "EXECUTED",
            OrderState::Closed => "CLOSED",
        }
    }

    /// Position in the lifecycle, used by modification rules ("from state X on").
    /// ON_HOLD ranks with IN_PROGRESS: a hold does not move an order forward.
    pub fn rank(self) -> u8 {
        match self {
            OrderState::Initiated => 0,
            OrderState::Created => 1,
            OrderState::InProgress | OrderState::OnHold => 2,
            OrderState::Executed => 3,
            OrderState::Closed => 4,
        }
    }

    /// EXECUTED and CLOSED orders can no longer be changed by clients.
    pub fn is_final(self) -> bool {
        matches!(self, OrderState::Executed | OrderState::Closed)
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an order was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CloseReason {
    /// Executed, and post-execution work is done.
    Completed,
    /// A validation plugin refused the order.
    ValidationFailed,
    /// Cancelled, or its execution could not finish and no work order was
    /// done (see the close event's cause).
    Cancelled,
    /// Its execution could not finish, but some of its work orders were
    /// done: at least one forward work order COMPLETED, and one FAILED or
    /// CANCELLED with no completed return (the close event names them).
    Partial,
}

/// How the work orders of an order run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionFlow {
    /// One at a time, in the given order; the next starts when the previous completed.
    #[default]
    Sequential,
    /// All at once; each completes on its own.
    StartTogether,
    /// All at once, as one group that succeeds or fails as a whole.
    CompleteTogether,
}

impl ExecutionFlow {
    /// Every flow.
    pub const ALL: [ExecutionFlow; 3] = [
        ExecutionFlow::Sequential,
        ExecutionFlow::StartTogether,
        ExecutionFlow::CompleteTogether,
    ];
}

/// The state of a work order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkOrderState {
    /// No job out: not started yet, or waiting for its next attempt.
    Pending,
    /// A job was sent to dispatch.
    Dispatched,
    /// Dispatch started the job.
    InProgress,
    /// The job is held with the order.
    OnHold,
    /// Done.
    Completed,
    /// Failed for good (attempts used up, or its group failed).
    Failed,
    /// Cancelled (never to run).
    Cancelled,
}

impl WorkOrderState {
    /// Still to run or running.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            WorkOrderState::Pending
                | WorkOrderState::Dispatched
                | WorkOrderState::InProgress
                | WorkOrderState::OnHold
        )
    }

    /// A job is out at dispatch for it.
    pub fn has_job_out(self) -> bool {
        matches!(
            self,
            WorkOrderState::Dispatched | WorkOrderState::InProgress | WorkOrderState::OnHold
        )
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkOrderState::Pending => "PENDING",
            WorkOrderState::Dispatched => "DISPATCHED",
            WorkOrderState::InProgress => "IN_PROGRESS",
            WorkOrderState::OnHold => "ON_HOLD",
            WorkOrderState::Completed => "COMPLETED",
            WorkOrderState::Failed => "FAILED",
            WorkOrderState::Cancelled => "CANCELLED",
        }
    }
}

/// The status of the order's cancellation (seed 002).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CancellationStatus {
    /// Never requested.
    #[default]
    None,
    /// Requested, not yet attempted.
    Pending,
    /// Cancels are out at dispatch.
    Attempting,
    /// Cancelled.
    Success,
    /// At least one job could not be cancelled; the order carries on.
    Failed,
}

impl CancellationStatus {
    /// A cancellation is under way: a new request is refused.
    pub fn in_flight(self) -> bool {
        matches!(
            self,
            CancellationStatus::Pending | CancellationStatus::Attempting
        )
    }
}

/// The cancellation attributes of an order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cancellation {
    /// Set by the first cancel, never cleared.
    pub requested: bool,
    /// When the last cancel was requested.
    pub requested_on: Option<Timestamp>,
    /// Who asked.
    pub requested_by: Option<String>,
    /// Where the last request is.
    pub status: CancellationStatus,
    /// Why the last attempt failed.
    pub failure_reason_code: Option<String>,
    /// When `status` last changed.
    pub status_timestamp: Option<Timestamp>,
    /// The first cancel-failed reason of the attempt under way.
    pub attempt_failure: Option<String>,
}

/// Who placed the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Client {
    /// Client participant id.
    pub id: String,
    /// Client name (a business, not a person).
    pub name: String,
}

/// An amount of money.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Money {
    /// The amount, at least 0.
    pub amount: f64,
    /// ISO 4217 code, three capital letters.
    pub currency: String,
}

/// The order summary (seed 002).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderSummary {
    /// 3–64 characters of `[a-zA-Z0-9:_-]`.
    pub invoice_number: Option<String>,
    /// 1–256 characters: a letter, then letters, digits, commas and spaces.
    pub order_description: Option<String>,
    /// At least 0.
    pub total_weight: Option<f64>,
    /// 0 to 1000.
    pub total_items: Option<u32>,
    /// The order's total cost.
    pub total_order_cost: Option<Money>,
}

/// Where the goods go; personal data is held apart and only referenced here.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DropDetails {
    /// The consignee's contact in the contact store.
    pub contact_id: Option<ContactId>,
    /// The drop location in the location store.
    pub location_id: Option<LocationId>,
    /// Where returns go, when the client gave one.
    pub return_location_id: Option<LocationId>,
}

/// The groups of attributes that may change after creation, each under the
/// tenant's modification rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UpdateGroup {
    /// dropDetails.contact.
    Contact,
    /// dropDetails.location.
    Location,
    /// orderSummary fields.
    OrderSummary,
    /// custom attributes.
    CustomAttributes,
}

impl UpdateGroup {
    /// Every group.
    pub const ALL: [UpdateGroup; 4] = [
        UpdateGroup::Contact,
        UpdateGroup::Location,
        UpdateGroup::OrderSummary,
        UpdateGroup::CustomAttributes,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateGroup::Contact => "contact",
            UpdateGroup::Location => "location",
            UpdateGroup::OrderSummary => "orderSummary",
            UpdateGroup::CustomAttributes => "customAttributes",
        }
    }
}

/// The latest job update that did not change the work order, kept for operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IgnoredUpdate {
    /// The attempt the update was for.
    pub attempt: u32,
    /// The status it carried.
    pub status: JobStatus,
    /// Why it changed nothing.
    pub why: IgnoredWhy,
}

/// A job status reported by dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Dispatch started the job.
    Started,
    /// The job is done.
    Completed,
    /// The job failed; `reasonCode` says why.
    Failed,
    /// The job was cancelled at orderd's request.
    Cancelled,
    /// The job could not be cancelled.
    CancelFailed,
}

impl JobStatus {
    /// Every status, as in subjects.
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Started,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
        JobStatus::CancelFailed,
    ];

    /// The subject token.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Started => "started",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::CancelFailed => "cancel_failed",
        }
    }
}

/// Why a job update changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IgnoredWhy {
    /// It is for an earlier attempt than the current one.
    StaleAttempt,
    /// The work order already reached that point or went past it.
    AlreadyPast,
    /// A cancel answer for a job orderd did not ask to cancel.
    NoCancelRequested,
}

/// One item a work order moves or works on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    /// The client's id of the item (SKU, serial, …).
    pub id: String,
    /// What it is.
    pub description: String,
    /// How many.
    pub quantity: u32,
    /// Weight of one, in the client's unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
}

/// A place a work order picks up at or drops at: ids in the contact and
/// location stores, never the personal data itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stop {
    /// Who to meet there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<ContactId>,
    /// Where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<LocationId>,
}

impl Stop {
    /// Neither a contact nor a location.
    pub fn is_empty(&self) -> bool {
        self.contact_id.is_none() && self.location_id.is_none()
    }
}

/// What dispatch needs to run a work order beyond its type: the items, the
/// instructions, and where to pick up and drop (a work order without its
/// own drop uses the order's drop details).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkOrderDetails {
    /// The items.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Item>,
    /// Free text for the crew (no personal data: it travels in events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Where the goods are collected.
    #[serde(default, skip_serializing_if = "Stop::is_empty")]
    pub pickup: Stop,
    /// Where they go.
    #[serde(default, skip_serializing_if = "Stop::is_empty")]
    pub drop: Stop,
}

impl WorkOrderDetails {
    /// Nothing beyond the type.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
            && self.instructions.is_none()
            && self.pickup.is_empty()
            && self.drop.is_empty()
    }
}

/// One instruction of the order, and the job that runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkOrder {
    /// 1, 2, 3… within the order.
    pub id: WorkOrderId,
    /// The type name (DELIVERY, PICKUP, RETURN, …).
    pub kind: String,
    /// The job type dispatch runs.
    pub job_type: String,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Add a RETURN on failure.
    pub return_on_failure: bool,
    /// Add a RETURN on cancellation after goods moved.
    pub return_on_cancel: bool,
    /// For a RETURN: the work order whose goods it brings back.
    pub returns: Option<WorkOrderId>,
    /// Where it is.
    pub state: WorkOrderState,
    /// The state it was in when it was held.
    pub held_from: Option<WorkOrderState>,
    /// The current attempt (0 before the first job).
    pub attempt: u32,
    /// A cancel was sent for the current attempt and is not answered yet.
    pub cancel_requested: bool,
    /// The last cancel sent for the current attempt was refused by dispatch.
    pub cancel_failed: bool,
    /// Dispatch started a job for it at least once: its goods may have moved.
    pub started: bool,
    /// The last failure reason dispatch gave.
    pub last_failure: Option<String>,
    /// Dispatch's id of the current job, once it reported one.
    pub job_id: Option<String>,
    /// Job updates that changed nothing, counted; the latest one kept.
    pub ignored_updates: u32,
    /// The latest job update that changed nothing.
    pub last_ignored: Option<IgnoredUpdate>,
    /// Items, instructions, pickup and drop.
    #[serde(default, skip_serializing_if = "WorkOrderDetails::is_empty")]
    pub details: WorkOrderDetails,
    /// The client asked to cancel this work order alone; its job's cancel
    /// is out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub withdrawing: bool,
    /// Held on its own at the client's request: the order's resume leaves
    /// it held; only its own resume releases it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held_alone: bool,
    /// Cancelled at the client's request: not needed any more, so it
    /// neither breaks its flow nor keeps the order from executing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub withdrawn: bool,
}

impl WorkOrder {
    /// A RETURN work order (type RETURN) is never itself returned.
    pub fn is_return(&self) -> bool {
        self.returns.is_some()
    }
}

/// A timer kept in the order, so that it survives restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timer {
    /// What happens when it fires.
    pub kind: TimerKind,
    /// When it is due.
    pub due: Timestamp,
}

/// What a timer does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TimerKind {
    /// Close an EXECUTED order as COMPLETED.
    AutoClose,
    /// The named milestone is due within its warning time.
    MilestoneWarning(String),
    /// The named milestone is due: missed unless reached.
    MilestoneDue(String),
}

/// Where one milestone of the order stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MilestoneStatus {
    /// The state that meets it.
    pub reach: OrderState,
    /// When it is due.
    pub due: Timestamp,
    /// Met (possibly late).
    pub reached: bool,
    /// Its due time passed before it was met.
    pub missed: bool,
}

/// The validation plugins' verdicts while the order is INITIATED.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    /// Plugins that have not answered yet.
    pub waiting_for: BTreeSet<String>,
}

/// One order: the unit of consistency, owned by one actor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// Unique across tenants.
    pub id: OrderId,
    /// The tenant that owns it.
    pub tenant: TenantId,
    /// Grows by one with every accepted change; 0 means the order does not exist yet.
    pub seq: u64,
    /// Who placed it.
    pub client: Client,
    /// The client's own reference (not unique).
    pub client_order_id: String,
    /// false blocks CREATED→IN_PROGRESS and CREATED→ON_HOLD; only goes false→true.
    pub ready_to_process: bool,
    /// Contact and location references.
    pub drop: DropDetails,
    /// How the work orders run.
    pub execution_flow: ExecutionFlow,
    /// Invoice, description, totals.
    pub summary: OrderSummary,
    /// Tenant-defined attributes, validated against `schema_version`.
    pub custom: BTreeMap<String, serde_json::Value>,
    /// Lifecycle state.
    pub state: OrderState,
    /// Tenant sub-state under `state`.
    pub sub_state: Option<String>,
    /// Why it is CLOSED.
    pub close_reason: Option<CloseReason>,
    /// The state to go back to on resume.
    pub held_from: Option<OrderState>,
    /// Seed 002 cancellation attributes.
    pub cancellation: Cancellation,
    /// The tenant configuration version it was created under.
    pub schema_version: u64,
    /// Creation time and author.
    pub created_at: Timestamp,
    /// Who created it.
    pub created_by: String,
    /// Last change time.
    pub updated_at: Timestamp,
    /// Who made the last change.
    pub updated_by: String,
    /// The work orders, forward ones first, returns appended as they come.
    pub work_orders: Vec<WorkOrder>,
    /// Plugins still to answer.
    pub validation: Validation,
    /// Pending timers.
    pub timers: Vec<Timer>,
    /// The tenant's milestones that have started counting, by name.
    #[serde(default)]
    pub milestones: BTreeMap<String, MilestoneStatus>,
    /// Every command id applied to this order, for its whole life.
    pub applied_commands: BTreeSet<CommandId>,
}

impl Order {
    /// Every contact and location the order names (its drop details and
    /// each work order's stops), each once.
    pub fn personal_refs(&self) -> (BTreeSet<ContactId>, BTreeSet<LocationId>) {
        let mut contacts = BTreeSet::new();
        let mut locations = BTreeSet::new();
        contacts.extend(self.drop.contact_id);
        locations.extend(self.drop.location_id);
        locations.extend(self.drop.return_location_id);
        for wo in &self.work_orders {
            for stop in [&wo.details.pickup, &wo.details.drop] {
                contacts.extend(stop.contact_id);
                locations.extend(stop.location_id);
            }
        }
        (contacts, locations)
    }

    /// An order that does not exist yet (seq 0): only a create applies to it.
    pub fn blank(id: OrderId, tenant: TenantId) -> Self {
        Self {
            id,
            tenant,
            seq: 0,
            client: Client {
                id: String::new(),
                name: String::new(),
            },
            client_order_id: String::new(),
            ready_to_process: true,
            drop: DropDetails::default(),
            execution_flow: ExecutionFlow::Sequential,
            summary: OrderSummary::default(),
            custom: BTreeMap::new(),
            state: OrderState::Initiated,
            sub_state: None,
            close_reason: None,
            held_from: None,
            cancellation: Cancellation::default(),
            schema_version: 0,
            created_at: Timestamp(0),
            created_by: String::new(),
            updated_at: Timestamp(0),
            updated_by: String::new(),
            work_orders: Vec::new(),
            validation: Validation::default(),
            timers: Vec::new(),
            milestones: BTreeMap::new(),
            applied_commands: BTreeSet::new(),
        }
    }

    /// A copy of the order without its record of applied command ids: what
    /// a decision works on (it never reads them, and for a busy order they
    /// are most of its size).
    pub fn clone_for_decision(&self) -> Self {
        Self {
            id: self.id,
            tenant: self.tenant.clone(),
            seq: self.seq,
            client: self.client.clone(),
            client_order_id: self.client_order_id.clone(),
            ready_to_process: self.ready_to_process,
            drop: self.drop.clone(),
            execution_flow: self.execution_flow,
            summary: self.summary.clone(),
            custom: self.custom.clone(),
            state: self.state,
            sub_state: self.sub_state.clone(),
            close_reason: self.close_reason,
            held_from: self.held_from,
            cancellation: self.cancellation.clone(),
            schema_version: self.schema_version,
            created_at: self.created_at,
            created_by: self.created_by.clone(),
            updated_at: self.updated_at,
            updated_by: self.updated_by.clone(),
            work_orders: self.work_orders.clone(),
            validation: self.validation.clone(),
            timers: self.timers.clone(),
            milestones: self.milestones.clone(),
            applied_commands: BTreeSet::new(),
        }
    }

    /// Whether a create has been applied.
    pub fn exists(&self) -> bool {
        self.seq > 0
    }

    /// The work order with this id.
    pub fn work_order(&self, id: WorkOrderId) -> Option<&WorkOrder> {
        self.work_orders.iter().find(|w| w.id == id)
    }

    /// Mutable access for `apply`.
    pub(crate) fn work_order_mut(&mut self, id: WorkOrderId) -> Option<&mut WorkOrder> {
        self.work_orders.iter_mut().find(|w| w.id == id)
    }

    /// Work orders still to run or running.
    pub fn open_work_orders(&self) -> impl Iterator<Item = &WorkOrder> {
        self.work_orders.iter().filter(|w| w.state.is_open())
    }

    /// Where `w` drops: its own drop, else the order's drop contact and
    /// location.
    pub fn drop_of(&self, w: &WorkOrder) -> Stop {
        if w.details.drop.is_empty() {
            Stop {
                contact_id: self.drop.contact_id,
                location_id: self.drop.location_id,
            }
        } else {
            w.details.drop
        }
    }

    /// A forward work order is covered when it completed, when the client
    /// withdrew it, or when a RETURN for it completed.
    pub fn is_covered(&self, wo: &WorkOrder) -> bool {
        wo.state == WorkOrderState::Completed
            || wo.withdrawn
            || self
                .work_orders
                .iter()
                .any(|r| r.returns == Some(wo.id) && r.state == WorkOrderState::Completed)
    }
}
