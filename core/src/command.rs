//! Commands: what someone asks of an order. Imperative, exhaustive, and free
//! of wire concerns (the runtime maps its JSON/MessagePack bodies onto these).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::TenantConfig;
use crate::ids::{CommandId, ContactId, LocationId, OrderId, TenantId, Timestamp, WorkOrderId};
use crate::model::{Client, ExecutionFlow, Item, JobStatus, Money, OrderSummary};

/// A contact: personal data. Its `Debug` never prints the values.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The person's name.
    pub name: String,
    /// One phone number.
    pub phone: String,
}

impl fmt::Debug for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Contact(<redacted>)")
    }
}

/// An address: personal data. Its `Debug` never prints the values.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Address(pub serde_json::Value);

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Address(<redacted>)")
    }
}

/// A contact given in full, or by reference.
#[derive(Debug, Clone, PartialEq)]
pub enum ContactInput {
    /// Name and phone: stored apart under a new contact id.
    Details(Contact),
    /// Already in the contact store.
    Id(ContactId),
}

/// A location given in full, or by reference.
#[derive(Debug, Clone, PartialEq)]
pub enum LocationInput {
    /// An address: stored apart under a new location id.
    Address(Address),
    /// Already in the location store.
    Id(LocationId),
}

/// A pickup or drop of a work order, as the client gave it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StopInput {
    /// Who to meet.
    pub contact: Option<ContactInput>,
    /// Where.
    pub location: Option<LocationInput>,
}

/// One work order of a new order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkOrderSpec {
    /// Its type, one the tenant configured (or a default type).
    pub kind: String,
    /// The items it moves.
    pub items: Vec<Item>,
    /// Free text for the crew.
    pub instructions: Option<String>,
    /// Where it picks up.
    pub pickup: StopInput,
    /// Where it drops (else the order's drop details).
    pub drop: StopInput,
}

/// Work-order details to set on one work order, or on a return being
/// added: each part given replaces what it would otherwise be (the work
/// order's own, or the return's defaults); a stop's contact and location
/// replace apart, so a stop given in part keeps the rest.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DetailsPatch {
    /// The items (an empty list clears them).
    pub items: Option<Vec<Item>>,
    /// Free text for the crew.
    pub instructions: Option<String>,
    /// Where it picks up.
    pub pickup: StopInput,
    /// Where it drops.
    pub drop: StopInput,
}

impl DetailsPatch {
    /// Nothing to set.
    pub fn is_empty(&self) -> bool {
        self.items.is_none()
            && self.instructions.is_none()
            && self.pickup == StopInput::default()
            && self.drop == StopInput::default()
    }
}

/// A new order, as the client gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateOrder {
    /// Who places it.
    pub client: Client,
    /// The client's own reference.
    pub client_order_id: String,
    /// Default true.
    pub ready_to_process: bool,
    /// The consignee.
    pub contact: Option<ContactInput>,
    /// The drop location.
    pub location: Option<LocationInput>,
    /// Where returns go.
    pub return_location: Option<LocationInput>,
    /// How the work orders run.
    pub execution_flow: ExecutionFlow,
    /// Invoice, description, totals.
    pub summary: OrderSummary,
    /// The work orders, in order.
    pub work_orders: Vec<WorkOrderSpec>,
    /// Tenant-defined attributes.
    pub custom: BTreeMap<String, serde_json::Value>,
}

/// A change to an existing order: only what seed 002 lets change.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UpdateOrder {
    /// A new contact.
    pub contact: Option<ContactInput>,
    /// A new location.
    pub location: Option<LocationInput>,
    /// Summary fields to set (each `Some` replaces the field).
    pub summary: SummaryPatch,
    /// Custom attributes to set.
    pub custom: BTreeMap<String, serde_json::Value>,
    /// readyToProcess: only `Some(true)` can change anything.
    pub ready_to_process: Option<bool>,
}

/// Summary fields to replace.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SummaryPatch {
    /// New invoice number.
    pub invoice_number: Option<String>,
    /// New description.
    pub order_description: Option<String>,
    /// New weight.
    pub total_weight: Option<f64>,
    /// New item count.
    pub total_items: Option<u32>,
    /// New cost.
    pub total_order_cost: Option<Money>,
}

impl SummaryPatch {
    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        self.invoice_number.is_none()
            && self.order_description.is_none()
            && self.total_weight.is_none()
            && self.total_items.is_none()
            && self.total_order_cost.is_none()
    }
}

/// A validation plugin's answer about a new order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginVerdict {
    /// The plugin accepts the order.
    Accepted,
    /// The plugin refuses it, with reasons.
    Rejected(Vec<String>),
}

/// A job update from dispatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUpdate {
    /// The work order the job runs.
    pub work_order: WorkOrderId,
    /// The attempt the job belongs to.
    pub attempt: u32,
    /// What happened.
    pub status: JobStatus,
    /// Dispatch's id of the job.
    pub job_id: Option<String>,
    /// Why it failed (failed, cancel_failed).
    pub reason_code: Option<String>,
}

/// Everything that can be asked of an order.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Register a new order.
    Create(Box<CreateOrder>),
    /// Change what may change.
    Update(Box<UpdateOrder>),
    /// Set readyToProcess to true.
    MarkReady,
    /// Withdraw the order for a while.
    Hold {
        /// Why, for the record.
        reason: Option<String>,
    },
    /// Put a held order back where it was.
    Resume,
    /// Cancel the order.
    Cancel {
        /// Why, for the record.
        reason: Option<String>,
    },
    /// Hold one work order: no job for it runs until its own resume; the
    /// others go on (SEQUENTIAL waits for it).
    HoldWorkOrder {
        /// The work order.
        work_order: WorkOrderId,
        /// Why, for the record.
        reason: Option<String>,
    },
    /// Resume a work order held on its own.
    ResumeWorkOrder {
        /// The work order.
        work_order: WorkOrderId,
    },
    /// Cancel one work order: it is not needed any more. The others go on
    /// (SEQUENTIAL moves to the next); the order executes without it.
    CancelWorkOrder {
        /// The work order.
        work_order: WorkOrderId,
        /// Why, for the record.
        reason: Option<String>,
    },
    /// Change one work order's own details (items, instructions, pickup,
    /// drop) while it has not been sent to dispatch yet.
    UpdateWorkOrder {
        /// The work order.
        work_order: WorkOrderId,
        /// What to set.
        details: Box<DetailsPatch>,
    },
    /// Add a RETURN for a completed forward work order: its goods go back.
    /// An EXECUTED order runs again until the return is done.
    AddReturn {
        /// The completed forward work order whose goods go back.
        returns: WorkOrderId,
        /// What to set instead of the return's defaults (the returned work
        /// order's items; picked up where it dropped; taken to the order's
        /// return location, else where it picked up).
        details: Box<DetailsPatch>,
    },
    /// Close an EXECUTED order as COMPLETED.
    Close,
    /// Move to a tenant sub-state (None clears it).
    SetSubState {
        /// The sub-state.
        to: Option<String>,
    },
    /// A job update from dispatch.
    Job(JobUpdate),
    /// A validation plugin answered (orderd-internal).
    RecordPluginVerdict {
        /// The plugin's name.
        plugin: String,
        /// Its answer.
        verdict: PluginVerdict,
    },
    /// Time passed: fire the timers that are due (orderd-internal).
    FireTimers,
}

/// A contact or an address a command carries in full (not by id).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InlinePersonal<'a> {
    /// A contact.
    Contact(&'a Contact),
    /// An address.
    Address(&'a Address),
}

/// One place in a command where a contact and a location may be given.
struct PersonalPlace<'a> {
    /// The field path (`dropDetails`, `workOrders[0].pickup`).
    path: String,
    /// The contact there.
    contact: Option<&'a ContactInput>,
    /// The location there.
    location: Option<&'a LocationInput>,
    /// The location's field name (`location`, `returnLocation`).
    location_name: &'static str,
}

impl<'a> PersonalPlace<'a> {
    fn new(
        path: String,
        contact: Option<&'a ContactInput>,
        (location_name, location): (&'static str, Option<&'a LocationInput>),
    ) -> Self {
        Self {
            path,
            contact,
            location,
            location_name,
        }
    }

    /// A work order's pickup and drop, under `at` (`workOrders[0].`, or
    /// empty).
    fn stops(at: &str, pickup: &'a StopInput, drop: &'a StopInput) -> [Self; 2] {
        [("pickup", pickup), ("drop", drop)].map(|(name, stop)| {
            Self::new(
                format!("{at}{name}"),
                stop.contact.as_ref(),
                ("location", stop.location.as_ref()),
            )
        })
    }
}

/// A contact or a location a command names by id (stored earlier).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    /// A contact.
    Contact(ContactId),
    /// A location.
    Location(LocationId),
}

impl Command {
    /// Every contact and location the command names by id, with the field
    /// that names it (`dropDetails.contactId`, `workOrders[0].pickup.locationId`,
    /// `addReturn.drop.locationId`): each must be one the order's tenant stored.
    pub fn references(&self) -> Vec<(String, Reference)> {
        let mut out = Vec::new();
        for place in self.personal_places() {
            if let Some(ContactInput::Id(id)) = place.contact {
                out.push((format!("{}.contactId", place.path), Reference::Contact(*id)));
            }
            if let Some(LocationInput::Id(id)) = place.location {
                out.push((
                    format!("{}.{}Id", place.path, place.location_name),
                    Reference::Location(*id),
                ));
            }
        }
        out
    }

    /// Every contact and address the command carries in full: what an
    /// erase looks for in the commands a stream still holds.
    pub fn inline_personal(&self) -> Vec<InlinePersonal<'_>> {
        let mut out = Vec::new();
        for place in self.personal_places() {
            if let Some(ContactInput::Details(c)) = place.contact {
                out.push(InlinePersonal::Contact(c));
            }
            if let Some(LocationInput::Address(a)) = place.location {
                out.push(InlinePersonal::Address(a));
            }
        }
        out
    }

    /// Where the command gives a contact or a location (in full or by id),
    /// in body order: one list for [`Command::references`] and
    /// [`Command::inline_personal`].
    fn personal_places(&self) -> Vec<PersonalPlace<'_>> {
        let place = PersonalPlace::new;
        let stops = PersonalPlace::stops;
        match self {
            Command::Create(c) => {
                let mut out = vec![
                    place(
                        "dropDetails".into(),
                        c.contact.as_ref(),
                        ("location", c.location.as_ref()),
                    ),
                    place(
                        "dropDetails".into(),
                        None,
                        ("returnLocation", c.return_location.as_ref()),
                    ),
                ];
                for (i, wo) in c.work_orders.iter().enumerate() {
                    out.extend(stops(&format!("workOrders[{i}]."), &wo.pickup, &wo.drop));
                }
                out
            }
            Command::Update(u) => vec![place(
                "dropDetails".into(),
                u.contact.as_ref(),
                ("location", u.location.as_ref()),
            )],
            // One work order's update gives its stops at the body's top
            // level; a return, inside addReturn.
            Command::UpdateWorkOrder { details, .. } => {
                stops("", &details.pickup, &details.drop).into()
            }
            Command::AddReturn { details, .. } => {
                stops("addReturn.", &details.pickup, &details.drop).into()
            }
            Command::MarkReady
            | Command::Hold { .. }
            | Command::Resume
            | Command::Cancel { .. }
            | Command::HoldWorkOrder { .. }
            | Command::ResumeWorkOrder { .. }
            | Command::CancelWorkOrder { .. }
            | Command::Close
            | Command::SetSubState { .. }
            | Command::Job(_)
            | Command::RecordPluginVerdict { .. }
            | Command::FireTimers => Vec::new(),
        }
    }

    /// The command's verb, as in subjects and logs.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Create(_) => "create",
            Command::Update(_) => "update",
            Command::MarkReady => "ready",
            Command::Hold { .. } => "hold",
            Command::Resume => "resume",
            Command::Cancel { .. } => "cancel",
            Command::CancelWorkOrder { .. } => "cancel_work_order",
            Command::HoldWorkOrder { .. } => "hold_work_order",
            Command::ResumeWorkOrder { .. } => "resume_work_order",
            Command::UpdateWorkOrder { .. } => "update_work_order",
            Command::AddReturn { .. } => "add_return",
            Command::Close => "close",
            Command::SetSubState { .. } => "substate",
            Command::Job(_) => "job",
            Command::RecordPluginVerdict { .. } => "plugin_verdict",
            Command::FireTimers => "fire_timers",
        }
    }
}

/// A command with who sent it, for which order, under which idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The tenant named by the subject the command arrived on.
    pub tenant: TenantId,
    /// The order it is for.
    pub order_id: OrderId,
    /// The idempotency key.
    pub command_id: CommandId,
    /// Who sent it (client id, `dispatch`, `orderd`), for createdBy/updatedBy.
    pub by: String,
    /// The command.
    pub command: Command,
    /// The order's sequence number the sender saw: the command is refused
    /// (`ORD-409-SEQ_MISMATCH`) unless the order is still there. `None`:
    /// whatever the order's sequence.
    pub expected_seq: Option<u64>,
}

/// What the shell hands the core with each command: the time, the tenant's
/// configuration, and fresh ids. The core draws nothing itself.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// Now, as the shell read it.
    pub now: Timestamp,
    /// The tenant configuration in force.
    pub config: &'a TenantConfig,
    /// Fresh random ids for contacts and locations stored apart.
    pub fresh_ids: [Uuid; Ctx::FRESH_IDS],
}

impl Ctx<'_> {
    /// How many fresh ids a command may need (contact, location, return location).
    pub const FRESH_IDS: usize = 3;
}
