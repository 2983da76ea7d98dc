//! Refusals: every way the core says no, each with a stable code and a type.
//! A refusal never changes the order.

use serde::{Deserialize, Serialize};

use crate::model::{OrderState, UpdateGroup};

/// How serious a refusal is (Manhattan's message types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Severity {
    /// The command is wrong or not allowed.
    Error,
    /// The command asks for what is already so; nothing to do.
    Warning,
    /// For information; nothing to do.
    Info,
}

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldProblem {
    /// The field's path, e.g. `orderSummary.invoiceNumber`.
    pub field: String,
    /// A stable code, e.g. `PATTERN`, `REQUIRED`, `RANGE`.
    pub code: &'static str,
    /// Plain words.
    pub message: String,
}

/// Why the core refused a command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    /// No such order in this tenant (also for another tenant's order id).
    #[error("order not found")]
    OrderNotFound,
    /// A create for an id that already exists.
    #[error("order already exists")]
    OrderExists,
    /// The order has no such work order.
    #[error("work order not found")]
    WorkOrderNotFound,
    /// A job update for an attempt that was never dispatched.
    #[error("work order {work_order} has no attempt {attempt} (current attempt {current})")]
    UnknownAttempt {
        /// The work order.
        work_order: u32,
        /// The attempt named.
        attempt: u32,
        /// The current attempt.
        current: u32,
    },
    /// Fields fail their checks; every problem is listed.
    #[error("invalid order data: {} problem(s)", .0.len())]
    InvalidFields(Vec<FieldProblem>),
    /// The command does not apply in the order's state.
    #[error("{command} is not allowed in state {state}")]
    NotAllowedInState {
        /// The command's verb.
        command: &'static str,
        /// The order's state.
        state: OrderState,
    },
    /// EXECUTED and CLOSED orders cannot change.
    #[error("order is {state} and can no longer change")]
    OrderImmutable {
        /// The order's state.
        state: OrderState,
    },
    /// readyToProcess is false: the order cannot move on yet.
    #[error("readyToProcess is false: {command} waits until the order is ready")]
    NotReady {
        /// The command's verb.
        command: &'static str,
    },
    /// readyToProcess can only go false→true.
    #[error("readyToProcess can only change from false to true")]
    ReadyIrreversible,
    /// readyToProcess is already true.
    #[error("readyToProcess is already true")]
    AlreadyReady,
    /// The order is already on hold.
    #[error("order is already on hold")]
    AlreadyOnHold,
    /// Resume of an order that is not on hold.
    #[error("order is not on hold")]
    NotOnHold,
    /// A cancellation is PENDING or ATTEMPTING.
    #[error("a cancellation is already in progress")]
    CancelInProgress,
    /// The order is already cancelled.
    #[error("order is already cancelled")]
    AlreadyCancelled,
    /// The tenant has no such sub-state under the order's state.
    #[error("sub-state {sub_state:?} is not configured under {state}")]
    UnknownSubState {
        /// The sub-state asked for.
        sub_state: String,
        /// The order's state.
        state: OrderState,
    },
    /// The tenant does not allow this sub-state transition.
    #[error("sub-state transition {from:?} -> {to:?} is not allowed")]
    SubStateTransition {
        /// Current sub-state.
        from: String,
        /// Asked for.
        to: String,
    },
    /// The tenant's modification rules lock this group in this state.
    #[error("{} can no longer change from state {locked_from} on", group.as_str())]
    ModificationLocked {
        /// The group.
        group: UpdateGroup,
        /// The state from which it is locked.
        locked_from: OrderState,
    },
    /// An update that changes nothing.
    #[error("the update changes nothing")]
    EmptyUpdate,
    /// A plugin verdict from a plugin the order does not wait for.
    #[error("order is not waiting for plugin {0:?}")]
    UnexpectedPlugin(String),
    /// No timer is due.
    #[error("no timer is due")]
    NoTimerDue,
    /// The work order is no longer open (completed, failed or cancelled).
    #[error("work order {work_order} is {}: it is no longer open", state.as_str())]
    WorkOrderNotOpen {
        /// The work order.
        work_order: u32,
        /// Its state.
        state: crate::model::WorkOrderState,
    },
    /// The work order has been sent to dispatch (it is, or was, running):
    /// its details can no longer change.
    #[error("work order {work_order} has been sent to dispatch (attempt {attempt}, {}): its details can no longer change", state.as_str())]
    WorkOrderDispatched {
        /// The work order.
        work_order: u32,
        /// Its current attempt.
        attempt: u32,
        /// Its state.
        state: crate::model::WorkOrderState,
    },
    /// Only a completed work order's goods can be returned.
    #[error("work order {work_order} is {}: only a completed work order can be returned", state.as_str())]
    WorkOrderNotCompleted {
        /// The work order.
        work_order: u32,
        /// Its state.
        state: crate::model::WorkOrderState,
    },
    /// A RETURN is never itself returned.
    #[error("work order {work_order} is a return and cannot itself be returned")]
    WorkOrderIsReturn {
        /// The work order.
        work_order: u32,
    },
    /// The work order already has a return that is open or completed.
    #[error("work order {work_order} already has a return (work order {return_id})")]
    ReturnExists {
        /// The work order.
        work_order: u32,
        /// Its return.
        return_id: u32,
    },
    /// The command named the sequence it expected, and the order has moved
    /// on (or is not there yet).
    #[error("the order is at sequence {actual}, not the expected {expected}")]
    SeqMismatch {
        /// What the command expected.
        expected: u64,
        /// Where the order is.
        actual: u64,
    },
}

impl Rejection {
    /// The stable code: `ORD-<http-like status>-<NAME>`.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::OrderNotFound => "ORD-404-ORDER_NOT_FOUND",
            Rejection::OrderExists => "ORD-409-ORDER_EXISTS",
            Rejection::WorkOrderNotFound => "ORD-404-WORK_ORDER_NOT_FOUND",
            Rejection::UnknownAttempt { .. } => "ORD-409-UNKNOWN_ATTEMPT",
            Rejection::InvalidFields(_) => "ORD-422-INVALID_FIELDS",
            Rejection::NotAllowedInState { .. } => "ORD-409-NOT_ALLOWED_IN_STATE",
            Rejection::OrderImmutable { .. } => "ORD-409-ORDER_IMMUTABLE",
            Rejection::NotReady { .. } => "ORD-409-NOT_READY",
            Rejection::ReadyIrreversible => "ORD-422-READY_IRREVERSIBLE",
            Rejection::AlreadyReady => "ORD-409-ALREADY_READY",
            Rejection::AlreadyOnHold => "ORD-409-ALREADY_ON_HOLD",
            Rejection::NotOnHold => "ORD-409-NOT_ON_HOLD",
            Rejection::CancelInProgress => "ORD-409-CANCEL_IN_PROGRESS",
            Rejection::AlreadyCancelled => "ORD-409-ALREADY_CANCELLED",
            Rejection::UnknownSubState { .. } => "ORD-422-UNKNOWN_SUB_STATE",
            Rejection::SubStateTransition { .. } => "ORD-409-SUB_STATE_TRANSITION",
            Rejection::ModificationLocked { .. } => "ORD-409-MODIFICATION_LOCKED",
            Rejection::EmptyUpdate => "ORD-422-EMPTY_UPDATE",
            Rejection::UnexpectedPlugin(_) => "ORD-409-UNEXPECTED_PLUGIN",
            Rejection::NoTimerDue => "ORD-409-NO_TIMER_DUE",
            Rejection::SeqMismatch { .. } => "ORD-409-SEQ_MISMATCH",
            Rejection::WorkOrderNotOpen { .. } => "ORD-409-WORK_ORDER_NOT_OPEN",
            Rejection::WorkOrderDispatched { .. } => "ORD-409-WORK_ORDER_DISPATCHED",
            Rejection::WorkOrderNotCompleted { .. } => "ORD-409-WORK_ORDER_NOT_COMPLETED",
            Rejection::WorkOrderIsReturn { .. } => "ORD-409-WORK_ORDER_IS_RETURN",
            Rejection::ReturnExists { .. } => "ORD-409-RETURN_EXISTS",
        }
    }

    /// Error, Warning or Info.
    pub fn severity(&self) -> Severity {
        match self {
            Rejection::AlreadyReady | Rejection::AlreadyOnHold | Rejection::AlreadyCancelled => {
                Severity::Warning
            }
            Rejection::NoTimerDue => Severity::Info,
            _ => Severity::Error,
        }
    }

    /// Field problems, when the refusal has them.
    pub fn details(&self) -> &[FieldProblem] {
        match self {
            Rejection::InvalidFields(p) => p,
            _ => &[],
        }
    }
}
