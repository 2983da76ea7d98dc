//! `apply`: the only way an order changes. Total and infallible: `decide` has
//! already checked everything, so applying a recorded event never fails.

use crate::event::{Change, Event, RegisteredWorkOrder};
use crate::ids::Timestamp;
use crate::model::{
    CancellationStatus, IgnoredUpdate, MilestoneStatus, Order, OrderState, TimerKind, WorkOrder,
    WorkOrderState,
};

/// Applies one accepted change: every event, then the sequence number, the
/// command id and the audit fields.
pub fn apply_change(order: &mut Order, change: &Change) {
    for event in &change.events {
        apply_at(order, event, change.at, &change.by);
    }
    order.seq = change.seq;
    order.updated_at = change.at;
    order.updated_by.clone_from(&change.by);
    order.applied_commands.insert(change.command_id.clone());
}

/// Applies one event outside a change (at the order's last update time, by
/// its last author). Sequence number and command ids move only with a change.
pub fn apply(order: &mut Order, event: &Event) {
    let (at, by) = (order.updated_at, order.updated_by.clone());
    apply_at(order, event, at, &by);
}

fn new_work_order(r: &RegisteredWorkOrder) -> WorkOrder {
    WorkOrder {
        id: r.id,
        kind: r.kind.clone(),
        job_type: r.job_type.clone(),
        max_attempts: r.max_attempts,
        return_on_failure: r.return_on_failure,
        return_on_cancel: r.return_on_cancel,
        returns: r.returns,
        state: WorkOrderState::Pending,
        held_from: None,
        attempt: 0,
        cancel_requested: false,
        cancel_failed: false,
        started: false,
        last_failure: None,
        job_id: None,
        ignored_updates: 0,
        last_ignored: None,
        details: r.details.clone(),
        withdrawing: false,
        held_alone: false,
        withdrawn: false,
    }
}

fn set_state(order: &mut Order, state: OrderState) {
    if order.state != state {
        order.state = state;
        // A sub-state belongs to its state: a state change clears it.
        order.sub_state = None;
    }
}

pub(crate) fn apply_at(order: &mut Order, event: &Event, at: Timestamp, by: &str) {
    match event {
        Event::Registered(r) => {
            order.client = r.client.clone();
            order.client_order_id.clone_from(&r.client_order_id);
            order.ready_to_process = r.ready_to_process;
            order.drop = r.drop.clone();
            order.execution_flow = r.execution_flow;
            order.summary = r.summary.clone();
            order.custom = r.custom.clone();
            order.schema_version = r.schema_version;
            order.work_orders = r.work_orders.iter().map(new_work_order).collect();
            order.validation.waiting_for = r.plugins.iter().cloned().collect();
            order.state = OrderState::Initiated;
            order.created_at = at;
            order.created_by = by.to_owned();
        }
        Event::ContactRecorded { .. } | Event::LocationRecorded { .. } => {
            // The reference lands with Registered/Updated; the data goes apart.
        }
        Event::PluginAccepted { plugin } => {
            order.validation.waiting_for.remove(plugin);
        }
        Event::Validated => {
            order.validation.waiting_for.clear();
            set_state(order, OrderState::Created);
        }
        Event::ValidationFailed { plugin, .. } => {
            order.validation.waiting_for.remove(plugin);
        }
        Event::MarkedReady => order.ready_to_process = true,
        Event::Started => set_state(order, OrderState::InProgress),
        Event::Held { from, .. } => {
            order.held_from = Some(*from);
            set_state(order, OrderState::OnHold);
        }
        Event::Resumed { to } => {
            order.held_from = None;
            set_state(order, *to);
        }
        Event::Executed => set_state(order, OrderState::Executed),
        Event::Closed { reason, .. } => {
            order.close_reason = Some(*reason);
            order.held_from = None;
            order.timers.clear();
            set_state(order, OrderState::Closed);
        }
        Event::SubStateChanged { to, .. } => order.sub_state.clone_from(to),
        Event::Updated {
            contact_id,
            location_id,
            summary,
            custom,
            ..
        } => {
            if let Some(c) = contact_id {
                order.drop.contact_id = Some(*c);
            }
            if let Some(l) = location_id {
                order.drop.location_id = Some(*l);
            }
            if let Some(s) = summary {
                order.summary = s.clone();
            }
            for (k, v) in custom {
                order.custom.insert(k.clone(), v.clone());
            }
        }
        Event::JobDispatched {
            work_order,
            attempt,
            ..
        } => {
            if let Some(wo) = order.work_order_mut(*work_order) {
                wo.state = WorkOrderState::Dispatched;
                wo.attempt = *attempt;
                wo.cancel_requested = false;
                wo.cancel_failed = false;
                wo.job_id = None;
            }
        }
        Event::JobStarted {
            work_order, job_id, ..
        } => {
            if let Some(wo) = order.work_order_mut(*work_order) {
                wo.started = true;
                if wo.state == WorkOrderState::OnHold {
                    wo.held_from = Some(WorkOrderState::InProgress);
                } else {
                    wo.state = WorkOrderState::InProgress;
                }
                if job_id.is_some() {
                    wo.job_id.clone_from(job_id);
                }
            }
        }
        Event::JobCompleted { work_order, .. } => {
            if let Some(wo) = order.work_order_mut(*work_order) {
                wo.state = WorkOrderState::Completed;
                wo.held_from = None;
                wo.cancel_requested = false;
            }
        }
        Event::JobFailed {
            work_order,
            reason_code,
            final_attempt,
            ..
        } => {
            if let Some(wo) = order.work_order_mut(*work_order) {
                wo.state = if *final_attempt {
                    WorkOrderState::Failed
                } else {
                    WorkOrderState::Pending
                };
                wo.held_from = None;
                wo.cancel_requested = false;
                wo.last_failure.clone_from(reason_code);
            }
        }
        Event::JobUpdateIgnored {
            work_order,
            attempt,
            status,
            why,
        } => {
            if let Some(wo) = order.work_order_mut(*work_order) {
                wo.ignored_updates = wo.ignored_updates.saturating_add(1);
                wo.last_ignored = Some(IgnoredUpdate {
                    attempt: *attempt,
                    status: *status,
                    why: *why,
                });
            }
        }
        Event::JobHoldRequested { work_order, .. } => {
            if let Some(wo) = order.work_order_mut(*work_order) {
                wo.held_from = Some(wo.state);
                wo.state = WorkOrderState::OnHold;
            }
        }
        Event::JobResumeRequested { work_order, .. } => {
            if let Some(wo) = order.work_order_mut(*work_order) {
                wo.state = wo.held_from.take().unwrap_or(WorkOrderState::Dispatched);
            }
        }
        Event::JobCancelRequested { work_order, .. } => {
            if let Some(wo) = order.work_order_mut(*work_order) {
                wo.cancel_requested = true;
                wo.cancel_failed = false;
            }
        }
        Event::JobCancelled { work_order, .. } => {
            if let Some(wo) = order.work_order_mut(*work_order) {
                wo.state = WorkOrderState::Cancelled;
                wo.held_from = None;
                wo.cancel_requested = false;
                wo.withdrawn = wo.withdrawing;
                wo.withdrawing = false;
            }
        }
        // A work order held alone keeps its state (PENDING: it is not
        // dispatched; a job out: its job's hold event holds it).
        Event::WorkOrderHeld { work_order, .. } => {
            if let Some(wo) = order.work_order_mut(*work_order) {
                wo.held_alone = true;
            }
        }
        Event::WorkOrderResumed { work_order } => {
            if let Some(wo) = order.work_order_mut(*work_order) {
                wo.held_alone = false;
            }
        }
        Event::WorkOrderWithdrawn { work_order, .. } => {
            if let Some(wo) = order.work_order_mut(*work_order) {
                wo.withdrawing = true;
            }
        }
        Event::JobCancelFailed {
            work_order,
            reason_code,
            ..
        } => {
            if let Some(wo) = order.work_order_mut(*work_order) {
                wo.cancel_requested = false;
                wo.cancel_failed = true;
                wo.withdrawing = false;
            }
            if order.cancellation.status == CancellationStatus::Attempting
                && order.cancellation.attempt_failure.is_none()
            {
                order.cancellation.attempt_failure = Some(
                    reason_code
                        .clone()
                        .unwrap_or_else(|| "CANCEL_FAILED".to_owned()),
                );
            }
        }
        Event::WorkOrderCancelled { work_order, .. } => {
            if let Some(wo) = order.work_order_mut(*work_order) {
                wo.state = WorkOrderState::Cancelled;
                wo.held_from = None;
                wo.cancel_requested = false;
                wo.withdrawn = wo.withdrawing;
                wo.withdrawing = false;
            }
        }
        Event::WorkOrderUpdated {
            work_order,
            details,
        } => {
            if let Some(wo) = order.work_order_mut(*work_order) {
                wo.details = details.clone();
            }
        }
        Event::ReturnAdded(r) => order.work_orders.push(new_work_order(r)),
        Event::Reopened => {
            order.timers.retain(|t| t.kind != TimerKind::AutoClose);
            set_state(order, OrderState::InProgress);
        }
        Event::CancellationRequested { by, .. } => {
            let c = &mut order.cancellation;
            c.requested = true;
            c.requested_on = Some(at);
            c.requested_by = Some(by.clone());
            c.status = CancellationStatus::Pending;
            c.failure_reason_code = None;
            c.status_timestamp = Some(at);
        }
        Event::CancellationAttempting => {
            order.cancellation.attempt_failure = None;
            order.cancellation.status = CancellationStatus::Attempting;
            order.cancellation.status_timestamp = Some(at);
        }
        Event::CancellationSucceeded => {
            order.cancellation.status = CancellationStatus::Success;
            order.cancellation.attempt_failure = None;
            order.cancellation.status_timestamp = Some(at);
        }
        Event::CancellationFailed { reason_code } => {
            order.cancellation.status = CancellationStatus::Failed;
            order.cancellation.failure_reason_code = Some(reason_code.clone());
            order.cancellation.attempt_failure = None;
            order.cancellation.status_timestamp = Some(at);
        }
        Event::TimerSet { timer, due } => {
            order.timers.retain(|t| t.kind != *timer);
            order.timers.push(crate::model::Timer {
                kind: timer.clone(),
                due: *due,
            });
        }
        Event::TimerFired { timer } => order.timers.retain(|t| t.kind != *timer),
        Event::MilestoneStarted { name, reach, due } => {
            order.milestones.insert(
                name.clone(),
                MilestoneStatus {
                    reach: *reach,
                    due: *due,
                    reached: false,
                    missed: false,
                },
            );
        }
        Event::MilestoneDueSoon { .. } => {}
        Event::MilestoneMissed { name } => {
            if let Some(m) = order.milestones.get_mut(name) {
                m.missed = true;
            }
        }
        Event::MilestoneReached { name, .. } => {
            if let Some(m) = order.milestones.get_mut(name) {
                m.reached = true;
            }
            order.timers.retain(|t| {
                !matches!(&t.kind, TimerKind::MilestoneDue(n) | TimerKind::MilestoneWarning(n) if n == name)
            });
        }
    }
}
