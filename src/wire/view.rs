//! Orders as the read endpoints return them, and the read requests. A view
//! carries every attribute of the order but no personal data: contacts and
//! addresses appear only as their ids.

use std::collections::BTreeMap;

use orderd_core::model::{CancellationStatus, MilestoneStatus, Order, Stop, WorkOrder};
use orderd_core::{CommandId, OrderId, OrderState, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

use super::command::{ExecutionFlowBody, ItemBody, MoneyBody};
use super::message::{close_reason, parse_rfc3339, rfc3339, EventMessage};
use super::WireError;
use crate::subjects;

/// An order as the `get` endpoint returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    /// The order.
    pub order_id: String,
    /// The tenant.
    pub tenant: String,
    /// Client participant id.
    pub client_id: String,
    /// Client name.
    pub client_name: String,
    /// The client's own reference.
    pub client_order_id: String,
    /// readyToProcess.
    pub ready_to_process: bool,
    /// Contact and location ids.
    pub drop_details: DropDetailsView,
    /// How the work orders run.
    pub execution_flow: ExecutionFlowBody,
    /// Invoice, description, totals.
    pub order_summary: OrderSummaryView,
    /// Tenant-defined attributes.
    pub custom_attributes: BTreeMap<String, serde_json::Value>,
    /// Lifecycle state (`IN_PROGRESS`).
    pub state: String,
    /// Tenant sub-state.
    pub sub_state: Option<String>,
    /// Why it is CLOSED.
    pub close_reason: Option<String>,
    /// While ON_HOLD: the state a resume returns to.
    pub held_from: Option<String>,
    /// Seed 002 cancellation attributes.
    pub cancellation: CancellationView,
    /// Validation plugins still to answer (INITIATED only).
    pub waiting_for_plugins: Vec<String>,
    /// The work orders, forward ones first, returns after.
    pub work_orders: Vec<WorkOrderView>,
    /// The tenant's milestones that have started counting, by name.
    pub milestones: BTreeMap<String, MilestoneView>,
    /// The order's sequence number (grows with every change).
    pub seq: u64,
    /// The tenant configuration version it was created under.
    pub schema_version: u64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Who created it.
    pub created_by: String,
    /// Who changed it last.
    pub updated_by: String,
}

/// Drop details by reference only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DropDetailsView {
    /// The consignee's contact id.
    pub contact_id: Option<String>,
    /// The drop location id.
    pub location_id: Option<String>,
    /// The return location id.
    pub return_location_id: Option<String>,
}

/// The order summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderSummaryView {
    /// Invoice number.
    pub invoice_number: Option<String>,
    /// Description.
    pub order_description: Option<String>,
    /// Total weight.
    pub total_weight: Option<f64>,
    /// Total items.
    pub total_items: Option<u32>,
    /// Total cost.
    pub total_order_cost: Option<MoneyBody>,
}

/// The cancellation attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancellationView {
    /// Set by the first cancel, never cleared.
    pub requested: bool,
    /// RFC 3339, when the last cancel was requested.
    pub requested_on: Option<String>,
    /// Who asked.
    pub requested_by: Option<String>,
    /// NONE, PENDING, ATTEMPTING, SUCCESS or FAILED.
    pub status: String,
    /// Why the last attempt failed.
    pub failure_reason_code: Option<String>,
    /// RFC 3339, when the status last changed.
    pub status_timestamp: Option<String>,
}

/// A work order's pickup or drop: ids only (read the data itself through
/// the contact and location endpoints).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopView {
    /// Who to meet there.
    pub contact_id: Option<String>,
    /// Where.
    pub location_id: Option<String>,
}

impl From<&Stop> for StopView {
    fn from(s: &Stop) -> Self {
        Self {
            contact_id: s.contact_id.map(|id| id.to_string()),
            location_id: s.location_id.map(|id| id.to_string()),
        }
    }
}

/// One work order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkOrderView {
    /// 1, 2, 3… within the order.
    pub work_order_id: u32,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The job type dispatch runs.
    pub job_type: String,
    /// PENDING, DISPATCHED, IN_PROGRESS, ON_HOLD, COMPLETED, FAILED, CANCELLED.
    pub state: String,
    /// The current attempt (0 before the first job).
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// For a RETURN: the work order it returns.
    pub returns: Option<u32>,
    /// Dispatch's id of the current job.
    pub job_id: Option<String>,
    /// The last failure reason dispatch gave.
    pub last_failure: Option<String>,
    /// Job updates that changed nothing (stale or repeated).
    pub ignored_updates: u32,
    /// Dispatch started a job for it at least once: its goods may have moved.
    pub started: bool,
    /// The last cancel sent for the current attempt was refused by dispatch.
    pub cancel_failed: bool,
    /// The items.
    pub items: Vec<ItemBody>,
    /// Free text for the crew.
    pub instructions: Option<String>,
    /// Its own pickup.
    pub pickup: StopView,
    /// Its own drop (empty: the order's drop details).
    pub drop: StopView,
    /// Held on its own (`hold` with its id): not dispatched, or its job
    /// held, until its own resume.
    pub held_alone: bool,
    /// Cancelled on its own (`cancel` with its id): the order executes
    /// without it.
    pub withdrawn: bool,
}

/// Where one milestone of the order stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MilestoneView {
    /// The state that meets it.
    pub reach: String,
    /// RFC 3339, when it is due.
    pub due: String,
    /// Met (possibly late).
    pub reached: bool,
    /// Its due time passed before it was met.
    pub missed: bool,
}

impl From<&MilestoneStatus> for MilestoneView {
    fn from(m: &MilestoneStatus) -> Self {
        Self {
            reach: m.reach.as_str().to_owned(),
            due: rfc3339(m.due),
            reached: m.reached,
            missed: m.missed,
        }
    }
}

fn cancellation_status(s: CancellationStatus) -> &'static str {
    match s {
        CancellationStatus::None => "NONE",
        CancellationStatus::Pending => "PENDING",
        CancellationStatus::Attempting => "ATTEMPTING",
        CancellationStatus::Success => "SUCCESS",
        CancellationStatus::Failed => "FAILED",
    }
}

impl From<&WorkOrder> for WorkOrderView {
    fn from(w: &WorkOrder) -> Self {
        Self {
            work_order_id: w.id.0,
            kind: w.kind.clone(),
            job_type: w.job_type.clone(),
            state: w.state.as_str().to_owned(),
            attempt: w.attempt,
            max_attempts: w.max_attempts,
            returns: w.returns.map(|r| r.0),
            job_id: w.job_id.clone(),
            last_failure: w.last_failure.clone(),
            ignored_updates: w.ignored_updates,
            started: w.started,
            cancel_failed: w.cancel_failed,
            items: w.details.items.iter().map(ItemBody::from).collect(),
            instructions: w.details.instructions.clone(),
            pickup: StopView::from(&w.details.pickup),
            drop: StopView::from(&w.details.drop),
            held_alone: w.held_alone,
            withdrawn: w.withdrawn,
        }
    }
}

impl From<&Order> for OrderView {
    fn from(o: &Order) -> Self {
        let c = &o.cancellation;
        Self {
            order_id: o.id.to_string(),
            tenant: o.tenant.to_string(),
            client_id: o.client.id.clone(),
            client_name: o.client.name.clone(),
            client_order_id: o.client_order_id.clone(),
            ready_to_process: o.ready_to_process,
            drop_details: DropDetailsView {
                contact_id: o.drop.contact_id.map(|id| id.to_string()),
                location_id: o.drop.location_id.map(|id| id.to_string()),
                return_location_id: o.drop.return_location_id.map(|id| id.to_string()),
            },
            execution_flow: o.execution_flow.into(),
            order_summary: OrderSummaryView {
                invoice_number: o.summary.invoice_number.clone(),
                order_description: o.summary.order_description.clone(),
                total_weight: o.summary.total_weight,
                total_items: o.summary.total_items,
                total_order_cost: o.summary.total_order_cost.as_ref().map(MoneyBody::from),
            },
            custom_attributes: o.custom.clone(),
            state: o.state.as_str().to_owned(),
            sub_state: o.sub_state.clone(),
            close_reason: o.close_reason.map(|r| close_reason(r).to_owned()),
            held_from: o.held_from.map(|s| s.as_str().to_owned()),
            cancellation: CancellationView {
                requested: c.requested,
                requested_on: c.requested_on.map(rfc3339),
                requested_by: c.requested_by.clone(),
                status: cancellation_status(c.status).to_owned(),
                failure_reason_code: c.failure_reason_code.clone(),
                status_timestamp: c.status_timestamp.map(rfc3339),
            },
            waiting_for_plugins: o.validation.waiting_for.iter().cloned().collect(),
            work_orders: o.work_orders.iter().map(WorkOrderView::from).collect(),
            milestones: o
                .milestones
                .iter()
                .map(|(name, m)| (name.clone(), MilestoneView::from(m)))
                .collect(),
            seq: o.seq,
            schema_version: o.schema_version,
            created_at: rfc3339(o.created_at),
            updated_at: rfc3339(o.updated_at),
            created_by: o.created_by.clone(),
            updated_by: o.updated_by.clone(),
        }
    }
}

fn tenant_and_order(tenant: &str, order_id: &str) -> Result<(TenantId, OrderId), WireError> {
    let tenant = subjects::parse_tenant(tenant)?;
    let order =
        OrderId::parse(order_id).map_err(|e| WireError::Malformed(format!("orderId: {e}")))?;
    Ok((tenant, order))
}

/// The request of the `get` and `explain` endpoints. The Services API serves
/// fixed subjects, so the tenant travels here, not in the subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderRequest {
    /// The tenant.
    pub tenant: String,
    /// The order.
    pub order_id: String,
}

impl OrderRequest {
    /// The tenant and order, parsed.
    pub fn ids(&self) -> Result<(TenantId, OrderId), WireError> {
        tenant_and_order(&self.tenant, &self.order_id)
    }
}

/// The request of the `outcome` endpoint: did a command (by its
/// `Nats-Msg-Id`) take effect? Useful when the PubAck said `duplicate` and no
/// Outcome will come on the reply subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutcomeRequest {
    /// The tenant.
    pub tenant: String,
    /// The command's `Nats-Msg-Id`.
    pub command_id: String,
    /// The order; omitted for a create (its id follows from the command id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
}

impl OutcomeRequest {
    /// The tenant, the order (derived for a create) and the command id, parsed.
    pub fn ids(&self) -> Result<(TenantId, OrderId, CommandId), WireError> {
        let command_id = CommandId::parse(&self.command_id)
            .map_err(|e| WireError::Malformed(format!("commandId: {e}")))?;
        match &self.order_id {
            Some(order) => {
                let (tenant, order) = tenant_and_order(&self.tenant, order)?;
                Ok((tenant, order, command_id))
            }
            None => {
                let tenant = subjects::parse_tenant(&self.tenant)?;
                let order = super::order_id_for_create(&tenant, command_id.as_str());
                Ok((tenant, order, command_id))
            }
        }
    }
}

/// The request of the `history` endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HistoryRequest {
    /// The tenant.
    pub tenant: String,
    /// The order.
    pub order_id: String,
    /// The first sequence number wanted (default 1).
    #[serde(default)]
    pub from_seq: Option<u64>,
    /// At most this many event messages (the runtime caps it).
    #[serde(default)]
    pub limit: Option<u32>,
}

impl HistoryRequest {
    /// The tenant and order, parsed.
    pub fn ids(&self) -> Result<(TenantId, OrderId), WireError> {
        tenant_and_order(&self.tenant, &self.order_id)
    }
}

/// The reply of the `history` endpoint: event messages in sequence order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryResponse {
    /// The event messages, oldest first.
    pub events: Vec<EventMessage>,
    /// The `fromSeq` of the next page, when there is more.
    pub next_seq: Option<u64>,
}

/// The request of the `query` endpoint: orders of one tenant by state,
/// sub-state and indexed custom attributes (all given filters must match).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueryRequest {
    /// The tenant.
    pub tenant: String,
    /// Only orders in this state.
    #[serde(default, deserialize_with = "super::command::by_name_or_null")]
    pub state: Option<OrderState>,
    /// Only orders with this client order id.
    #[serde(default)]
    pub client_order_id: Option<String>,
    /// Only orders in this sub-state.
    #[serde(default)]
    pub sub_state: Option<String>,
    /// Only orders whose indexed custom attributes have these values.
    #[serde(default)]
    pub custom_attributes: BTreeMap<String, serde_json::Value>,
    /// Only orders whose indexed number attributes fall in these ranges
    /// (inclusive).
    #[serde(default)]
    pub custom_attribute_ranges: BTreeMap<String, RangeBody>,
    /// Only orders created at or after this time (RFC 3339).
    #[serde(default)]
    pub created_from: Option<String>,
    /// Only orders created at or before this time (RFC 3339).
    #[serde(default)]
    pub created_to: Option<String>,
    /// At most this many orders (the runtime caps it).
    #[serde(default)]
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    #[serde(default)]
    pub after: Option<String>,
}

impl QueryRequest {
    /// The tenant, parsed.
    pub fn tenant(&self) -> Result<TenantId, WireError> {
        Ok(subjects::parse_tenant(&self.tenant)?)
    }
}

/// What a query's filters look at in one order: the `query` endpoint
/// reads them from each snapshot, `orderd watch` from what it knows of an
/// order after each change.
#[derive(Debug, Clone, Copy)]
pub struct QueryFacts<'a> {
    /// Its state.
    pub state: OrderState,
    /// Its sub-state.
    pub sub_state: Option<&'a str>,
    /// The client's reference.
    pub client_order_id: &'a str,
    /// When it was created.
    pub created_at: Timestamp,
    /// Its custom attributes.
    pub custom: &'a BTreeMap<String, serde_json::Value>,
}

impl QueryRequest {
    /// Whether an order passes every filter given (the tenant aside). A
    /// creation-time bound that is not RFC 3339 is left open: the endpoint
    /// refuses it before anything is matched.
    pub fn admits(&self, order: &QueryFacts<'_>) -> bool {
        let bound = |t: &Option<String>| t.as_deref().and_then(parse_rfc3339);
        let from = bound(&self.created_from).map_or(i64::MIN, |t| t.0);
        let to = bound(&self.created_to).map_or(i64::MAX, |t| t.0);
        // A number equals a number of another JSON form (10 and 10.0).
        let same = |a: &serde_json::Value, b: &serde_json::Value| match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        };
        self.state.is_none_or(|s| order.state == s)
            && self
                .sub_state
                .as_deref()
                .is_none_or(|s| order.sub_state == Some(s))
            && self
                .client_order_id
                .as_deref()
                .is_none_or(|c| order.client_order_id == c)
            && (from..=to).contains(&order.created_at.0)
            && self
                .custom_attributes
                .iter()
                .all(|(k, v)| order.custom.get(k).is_some_and(|x| same(x, v)))
            && self.custom_attribute_ranges.iter().all(|(k, r)| {
                order
                    .custom
                    .get(k)
                    .and_then(serde_json::Value::as_f64)
                    .is_some_and(|x| r.min.is_none_or(|m| x >= m) && r.max.is_none_or(|m| x <= m))
            })
    }
}

/// An inclusive range of numbers; an absent bound is open.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeBody {
    /// Lower bound.
    #[serde(default)]
    pub min: Option<f64>,
    /// Upper bound.
    #[serde(default)]
    pub max: Option<f64>,
}

/// A request to the `counts` endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CountsRequest {
    /// The tenant.
    pub tenant: String,
}

/// The reply of the `counts` endpoint: how many of the tenant's orders are
/// in each state and in each sub-state its configuration names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CountsResponse {
    /// The tenant.
    pub tenant: String,
    /// Every state (zeros included) and its count.
    pub states: BTreeMap<String, u64>,
    /// Every sub-state of the tenant's current configuration and its count.
    pub sub_states: BTreeMap<String, u64>,
    /// All the tenant's orders.
    pub total: u64,
}

/// The reply of the `query` endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryResponse {
    /// The matching orders.
    pub orders: Vec<OrderView>,
    /// The cursor of the next page, when there is more.
    pub next: Option<String>,
}

/// A request to the `contact` or `location` endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PersonalRequest {
    /// The tenant whose orders stored it.
    pub tenant: String,
    /// The contact or location id.
    pub id: String,
    /// Who reads it (a dispatch service's name, an operator): kept in the
    /// audit with the read.
    #[serde(default)]
    pub by: String,
}

/// A request to the `erase` endpoint: one contact or location of the
/// tenant, erased everywhere orderd holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EraseRequest {
    /// The tenant whose orders stored it.
    pub tenant: String,
    /// `contact` or `location`.
    pub kind: String,
    /// Its id.
    pub id: String,
    /// Who asks (an operator, a privacy desk): kept in the audit.
    #[serde(default)]
    pub by: String,
}

/// The reply of the `erase` endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EraseReply {
    /// The tenant.
    pub tenant: String,
    /// `contact` or `location`.
    pub kind: String,
    /// Its id.
    pub id: String,
    /// `ERASED` now, `ALREADY_ERASED` by an earlier request, or
    /// `INCOMPLETE`: commands that carry it are not decided yet, so it is
    /// kept everywhere those are; ask again once they are.
    pub status: String,
    /// Commands deleted from the commands stream because they carried it.
    pub commands_erased: u64,
    /// Commands that carry it but are not decided yet, left in the stream
    /// (status `INCOMPLETE`).
    pub commands_left: u64,
    /// Creates and updates looked through.
    pub commands_read: u64,
}

/// The reply of the `contact` endpoint: personal data. `Debug` is redacted.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactReply {
    /// The tenant.
    pub tenant: String,
    /// The contact id.
    pub contact_id: String,
    /// The person's name.
    pub name: String,
    /// One phone number.
    pub phone: String,
}

impl std::fmt::Debug for ContactReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContactReply({}, <redacted>)", self.contact_id)
    }
}

/// The reply of the `location` endpoint: personal data. `Debug` is redacted.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationReply {
    /// The tenant.
    pub tenant: String,
    /// The location id.
    pub location_id: String,
    /// The address, as the client gave it.
    pub address: serde_json::Value,
}

impl std::fmt::Debug for LocationReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocationReply({}, <redacted>)", self.location_id)
    }
}

/// A request to the `audit` endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditRequest {
    /// The tenant.
    pub tenant: String,
    /// How many entries, newest first (default 50, at most 500).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// One read of personal data: never the data itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntryView {
    /// When, RFC 3339.
    pub at: String,
    /// `contact` or `location`.
    pub kind: String,
    /// The id asked for.
    pub id: String,
    /// Who asked, as the request named itself.
    pub by: String,
    /// Whether the tenant had it (false: unknown, or another tenant's).
    pub found: bool,
}

/// The reply of the `audit` endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditResponse {
    /// The tenant.
    pub tenant: String,
    /// Newest first.
    pub entries: Vec<AuditEntryView>,
}
