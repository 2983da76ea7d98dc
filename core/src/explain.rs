//! `explain`: what an order waits for, what would move it, and which client
//! commands it accepts now (each refused one with its code and reason). The
//! answers come from `decide` itself, run on probe commands, so they cannot
//! drift from the rules.

use serde::Serialize;
use uuid::Uuid;

use crate::command::{Command, ContactInput, Ctx, Envelope, UpdateOrder};
use crate::config::TenantConfig;
use crate::decide::{check_update_group, decide};
use crate::ids::CommandId;
use crate::model::{
    CancellationStatus, ExecutionFlow, Order, OrderState, Timer, TimerKind, UpdateGroup, WorkOrder,
    WorkOrderState,
};
use crate::rejection::Rejection;

/// One command kind and whether the order accepts it now.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandAllowance {
    /// The verb (hold, resume, cancel, update.contact, …).
    pub command: &'static str,
    /// Accepted now.
    pub allowed: bool,
    /// When refused: the stable code.
    pub code: Option<&'static str>,
    /// When refused: why, in plain words.
    pub reason: Option<String>,
}

/// An order's situation in plain words.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The order state.
    pub state: OrderState,
    /// Sentences saying what it waits for and what would move it.
    pub waiting_for: Vec<String>,
    /// Every client command kind, allowed or refused with the reason.
    pub commands: Vec<CommandAllowance>,
    /// Pending timers.
    pub timers: Vec<Timer>,
}

/// The client commands `explain` reports on, in a fixed order.
pub const EXPLAINED_COMMANDS: [&str; 10] = [
    "ready",
    "hold",
    "resume",
    "cancel",
    "close",
    "substate",
    "update.contact",
    "update.location",
    "update.orderSummary",
    "update.customAttributes",
];

/// Whether the order would accept a client command of this kind now.
pub fn allowance(
    order: &Order,
    config: &TenantConfig,
    command: &'static str,
) -> Result<(), Rejection> {
    let probe = |cmd: Command| {
        let envelope = Envelope {
            tenant: order.tenant.clone(),
            order_id: order.id,
            command_id: CommandId::parse("explain-probe").expect("valid id"),
            by: "explain".to_owned(),
            command: cmd,
            expected_seq: None,
        };
        let ctx = Ctx {
            now: order.updated_at,
            config,
            fresh_ids: [Uuid::nil(); Ctx::FRESH_IDS],
        };
        decide(order, &envelope, &ctx).map(|_| ())
    };
    match command {
        "ready" => probe(Command::MarkReady),
        "hold" => probe(Command::Hold { reason: None }),
        "resume" => probe(Command::Resume),
        "cancel" => probe(Command::Cancel { reason: None }),
        "close" => probe(Command::Close),
        "substate" => {
            let candidates: Vec<String> = config
                .sub_states
                .get(&order.state)
                .map(|c| c.sub_states.clone())
                .unwrap_or_default();
            let mut last = Err(Rejection::UnknownSubState {
                sub_state: String::new(),
                state: order.state,
            });
            for s in candidates {
                last = probe(Command::SetSubState { to: Some(s) });
                if last.is_ok() {
                    break;
                }
            }
            last
        }
        "update.contact" => {
            check_update_group(order, config, UpdateGroup::Contact).and_then(|_| {
                probe(Command::Update(Box::new(UpdateOrder {
                    contact: Some(ContactInput::Id(crate::ids::ContactId(Uuid::nil()))),
                    ..UpdateOrder::default()
                })))
            })
        }
        "update.location" => check_update_group(order, config, UpdateGroup::Location),
        "update.orderSummary" => check_update_group(order, config, UpdateGroup::OrderSummary),
        "update.customAttributes" => {
            check_update_group(order, config, UpdateGroup::CustomAttributes)
        }
        _ => Err(Rejection::EmptyUpdate),
    }
}

fn describe_work_order(w: &WorkOrder) -> String {
    let job = match w.state {
        WorkOrderState::Pending if w.attempt == 0 => "not started".to_owned(),
        WorkOrderState::Pending => format!(
            "attempt {} of {} failed, next attempt waits to be dispatched",
            w.attempt, w.max_attempts
        ),
        WorkOrderState::Dispatched => format!(
            "job attempt {} of {} dispatched, waiting for dispatch to start it",
            w.attempt, w.max_attempts
        ),
        WorkOrderState::InProgress => {
            format!(
                "job attempt {} of {} in progress",
                w.attempt, w.max_attempts
            )
        }
        WorkOrderState::OnHold => {
            format!("job attempt {} of {} on hold", w.attempt, w.max_attempts)
        }
        WorkOrderState::Completed => "completed".to_owned(),
        WorkOrderState::Failed => format!("failed after {} attempt(s)", w.attempt),
        WorkOrderState::Cancelled => "cancelled".to_owned(),
    };
    let cancel = if w.cancel_requested {
        ", cancel sent, waiting for dispatch's answer"
    } else {
        ""
    };
    format!("work order {} ({}): {job}{cancel}", w.id, w.kind)
}

fn waiting_for(order: &Order) -> Vec<String> {
    let mut out = Vec::new();
    if order.cancellation.status == CancellationStatus::Attempting {
        let ids: Vec<String> = order
            .work_orders
            .iter()
            .filter(|w| w.cancel_requested)
            .map(|w| w.id.to_string())
            .collect();
        out.push(format!(
            "cancellation ATTEMPTING: waiting for dispatch to answer the cancel of work order(s) {}",
            ids.join(", ")
        ));
    }
    match order.state {
        OrderState::Initiated => {
            let plugins: Vec<&str> = order
                .validation
                .waiting_for
                .iter()
                .map(String::as_str)
                .collect();
            out.push(format!(
                "waiting for validation plugin(s): {}",
                plugins.join(", ")
            ));
        }
        OrderState::Created if !order.ready_to_process => {
            out.push("readyToProcess is false: waiting for a ready command (or an update setting readyToProcess true)".to_owned());
        }
        OrderState::Created => {
            out.push("waiting for the orchestrator to pick the order up".to_owned())
        }
        OrderState::OnHold => out.push(format!(
            "on hold (from {}): nothing is dispatched until resume",
            order.held_from.map_or("?", OrderState::as_str)
        )),
        OrderState::InProgress => {
            let open: Vec<&WorkOrder> = order.open_work_orders().collect();
            match order.execution_flow {
                ExecutionFlow::Sequential => {
                    if let Some((first, rest)) = open.split_first() {
                        out.push(format!("SEQUENTIAL: {}", describe_work_order(first)));
                        if !rest.is_empty() {
                            let ids: Vec<String> = rest.iter().map(|w| w.id.to_string()).collect();
                            out.push(format!(
                                "SEQUENTIAL: work order(s) {} wait for work order {}",
                                ids.join(", "),
                                first.id
                            ));
                        }
                    }
                }
                flow => {
                    let name = if flow == ExecutionFlow::StartTogether {
                        "START_TOGETHER"
                    } else {
                        "COMPLETE_TOGETHER"
                    };
                    for w in open {
                        out.push(format!("{name}: {}", describe_work_order(w)));
                    }
                }
            }
        }
        OrderState::Executed => out.push(
            match order.timers.iter().find(|t| t.kind == TimerKind::AutoClose) {
                Some(t) => format!(
                    "executed: closes automatically at {} ms, or on a close command",
                    t.due.0
                ),
                None => "executed: waiting for a close command (post-execution work)".to_owned(),
            },
        ),
        OrderState::Closed => out.push(format!(
            "closed ({}): nothing to wait for",
            order
                .close_reason
                .map_or("?".to_owned(), |r| format!("{r:?}").to_uppercase())
        )),
    }
    for (name, m) in order.milestones.iter().filter(|(_, m)| !m.reached) {
        out.push(format!(
            "milestone {name}: reach {} by {} ms{}",
            m.reach,
            m.due.0,
            if m.missed { " (missed)" } else { "" }
        ));
    }
    out
}

/// Explains an order: what it waits for and which commands it accepts now.
pub fn explain(order: &Order, config: &TenantConfig) -> Explanation {
    let commands = EXPLAINED_COMMANDS
        .iter()
        .map(|&command| match allowance(order, config, command) {
            Ok(()) => CommandAllowance {
                command,
                allowed: true,
                code: None,
                reason: None,
            },
            Err(r) => CommandAllowance {
                command,
                allowed: false,
                code: Some(r.code()),
                reason: Some(r.to_string()),
            },
        })
        .collect();
    Explanation {
        state: order.state,
        waiting_for: waiting_for(order),
        commands,
        timers: order.timers.clone(),
    }
}
