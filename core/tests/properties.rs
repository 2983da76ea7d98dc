//! Property tests: random command sequences, valid and invalid, for every
//! flow, checked after every step against the lifecycle's invariants and a
//! small model of the allowed state transitions.

mod common;

use std::collections::BTreeMap;

use common::{create, Harness};
use orderd_core::command::{
    Contact, ContactInput, DetailsPatch, JobUpdate, LocationInput, PluginVerdict, StopInput,
    SummaryPatch, UpdateOrder,
};
use orderd_core::config::SubStateConfig;
use orderd_core::event::Event;
use orderd_core::ids::LocationId;
use orderd_core::model::{
    CancellationStatus, CloseReason, ExecutionFlow, Item, JobStatus, OrderState, WorkOrderState,
};
use orderd_core::{Command, Envelope, Outcome, TenantConfig, WorkOrderId};
use proptest::prelude::*;

const KINDS: [&str; 5] = ["DELIVERY", "PICKUP", "INSTALL", "KYC", "RETURN"];

#[derive(Debug, Clone)]
enum Op {
    Create {
        flow: ExecutionFlow,
        kinds: Vec<usize>,
        ready: bool,
    },
    /// A job update: work order by index, attempt relative to the current one.
    Job {
        wo: usize,
        attempt_delta: i8,
        status: JobStatus,
    },
    Hold,
    Resume,
    Cancel,
    /// Cancel one work order, by index (sometimes one past the last).
    CancelWorkOrder(usize),
    /// Hold, or resume, one work order, by index.
    HoldWorkOrder(usize),
    ResumeWorkOrder(usize),
    /// Change one work order's details, by index; the kind of change by
    /// number (see `patch`).
    UpdateWorkOrder(usize, u8),
    /// Add a return for one work order, by index, with or without details.
    AddReturn(usize, bool),
    Close,
    MarkReady,
    Update(u32),
    SubState(usize),
    Verdict {
        plugin: usize,
        accept: bool,
    },
    FireTimers,
    /// Send again the envelope of an earlier step (same command id).
    Repeat(usize),
}

fn flow() -> impl Strategy<Value = ExecutionFlow> {
    prop_oneof![
        Just(ExecutionFlow::Sequential),
        Just(ExecutionFlow::StartTogether),
        Just(ExecutionFlow::CompleteTogether)
    ]
}

fn status() -> impl Strategy<Value = JobStatus> {
    prop_oneof![
        4 => Just(JobStatus::Started),
        5 => Just(JobStatus::Completed),
        3 => Just(JobStatus::Failed),
        2 => Just(JobStatus::Cancelled),
        1 => Just(JobStatus::CancelFailed),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (flow(), prop::collection::vec(0..KINDS.len(), 1..4), any::<bool>())
            .prop_map(|(flow, kinds, ready)| Op::Create { flow, kinds, ready }),
        24 => (0..6usize, prop_oneof![8 => Just(0i8), 1 => Just(-1i8), 1 => Just(1i8)], status())
            .prop_map(|(wo, attempt_delta, status)| Op::Job { wo, attempt_delta, status }),
        2 => Just(Op::Hold),
        2 => Just(Op::Resume),
        1 => Just(Op::Cancel),
        2 => (0..6usize).prop_map(Op::CancelWorkOrder),
        2 => (0..6usize).prop_map(Op::HoldWorkOrder),
        2 => (0..6usize).prop_map(Op::ResumeWorkOrder),
        2 => (0..6usize, 0..PATCHES).prop_map(|(wo, k)| Op::UpdateWorkOrder(wo, k)),
        3 => (0..6usize, any::<bool>()).prop_map(|(wo, d)| Op::AddReturn(wo, d)),
        1 => Just(Op::Close),
        1 => Just(Op::MarkReady),
        1 => (0..1200u32).prop_map(Op::Update),
        1 => (0..3usize).prop_map(Op::SubState),
        2 => (0..2usize, prop::bool::weighted(0.85)).prop_map(|(plugin, accept)| Op::Verdict { plugin, accept }),
        1 => Just(Op::FireTimers),
        2 => (0..64usize).prop_map(Op::Repeat),
    ]
}

/// How many kinds of work-order change `patch` makes.
const PATCHES: u8 = 6;

/// A work-order change of kind `k`: instructions, items, a drop contact in
/// full (personal data), a pickup location by id, nothing (refused
/// EMPTY_UPDATE), a bad item (refused INVALID_FIELDS).
fn patch(k: u8) -> DetailsPatch {
    let item = |quantity| Item {
        id: "SKU-1".into(),
        description: "Chair".into(),
        quantity,
        weight: None,
    };
    match k {
        0 => DetailsPatch {
            instructions: Some("Call ahead".into()),
            ..DetailsPatch::default()
        },
        1 => DetailsPatch {
            items: Some(vec![item(2)]),
            ..DetailsPatch::default()
        },
        2 => DetailsPatch {
            drop: StopInput {
                contact: Some(ContactInput::Details(Contact {
                    name: "Rae Porter".into(),
                    phone: "+15550123".into(),
                })),
                location: None,
            },
            ..DetailsPatch::default()
        },
        3 => DetailsPatch {
            pickup: StopInput {
                contact: None,
                location: Some(LocationInput::Id(LocationId(uuid::Uuid::from_u128(9)))),
            },
            ..DetailsPatch::default()
        },
        4 => DetailsPatch::default(),
        _ => DetailsPatch {
            items: Some(vec![item(0)]),
            ..DetailsPatch::default()
        },
    }
}

/// The model's answer to a work-order change: the code it is refused
/// with, or `None` when it applies.
fn expected_update(o: &orderd_core::Order, id: WorkOrderId, k: u8) -> Option<&'static str> {
    let w = o.work_order(id);
    Some(if o.state.is_final() {
        "ORD-409-ORDER_IMMUTABLE"
    } else if o.cancellation.status.in_flight() {
        "ORD-409-CANCEL_IN_PROGRESS"
    } else if w.is_none() {
        "ORD-404-WORK_ORDER_NOT_FOUND"
    } else if w.is_some_and(|w| !w.state.is_open()) {
        "ORD-409-WORK_ORDER_NOT_OPEN"
    } else if w.is_some_and(|w| w.withdrawing || w.cancel_requested) {
        "ORD-409-CANCEL_IN_PROGRESS"
    } else if w.is_some_and(|w| w.attempt > 0 || w.state != WorkOrderState::Pending) {
        "ORD-409-WORK_ORDER_DISPATCHED"
    } else if k == 4 {
        "ORD-422-EMPTY_UPDATE"
    } else if k == 5 {
        "ORD-422-INVALID_FIELDS"
    } else {
        return None;
    })
}

/// The model's answer to adding a return.
fn expected_return(o: &orderd_core::Order, id: WorkOrderId) -> Option<&'static str> {
    let w = o.work_order(id);
    Some(if o.state == OrderState::Closed {
        "ORD-409-ORDER_IMMUTABLE"
    } else if o.cancellation.status.in_flight() {
        "ORD-409-CANCEL_IN_PROGRESS"
    } else if w.is_none() {
        "ORD-404-WORK_ORDER_NOT_FOUND"
    } else if w.is_some_and(|w| w.returns.is_some()) {
        "ORD-409-WORK_ORDER_IS_RETURN"
    } else if w.is_some_and(|w| w.state != WorkOrderState::Completed) {
        "ORD-409-WORK_ORDER_NOT_COMPLETED"
    } else if o.work_orders.iter().any(|r| {
        r.returns == Some(id)
            && !matches!(r.state, WorkOrderState::Failed | WorkOrderState::Cancelled)
    }) {
        "ORD-409-RETURN_EXISTS"
    } else if o.work_orders.len() >= orderd_core::validate::MAX_WORK_ORDERS {
        "ORD-422-INVALID_FIELDS"
    } else {
        return None;
    })
}

/// Checks an outcome of a work-order change or a return against the model.
fn check_against_model(
    before: &orderd_core::Order,
    op: &Op,
    outcome: &Outcome,
    after: &orderd_core::Order,
) {
    let n = before.work_orders.len().max(1);
    let target = |wo: usize| WorkOrderId((wo % (n + 1)) as u32 + 1);
    let (expected, id) = match op {
        Op::UpdateWorkOrder(wo, k) => (expected_update(before, target(*wo), *k), target(*wo)),
        Op::AddReturn(wo, _) => (expected_return(before, target(*wo)), target(*wo)),
        _ => return,
    };
    match (expected, outcome) {
        (Some(code), Outcome::Refused(r)) => assert_eq!(r.code(), code, "{op:?}"),
        (None, Outcome::Applied(change)) => {
            match op {
                Op::UpdateWorkOrder(..) => {
                    // Only that work order's details changed; nothing was sent.
                    assert!(change.job_commands().is_empty(), "{change:?}");
                    assert_eq!(after.state, before.state);
                    for (b, a) in before.work_orders.iter().zip(&after.work_orders) {
                        if a.id == id {
                            // The part the change names is set; the rest stays.
                            let (mut want, got) = (b.details.clone(), &a.details);
                            match op {
                                Op::UpdateWorkOrder(_, 0) => {
                                    want.instructions = Some("Call ahead".into());
                                }
                                Op::UpdateWorkOrder(_, 1) => {
                                    want.items = patch(1).items.unwrap_or_default();
                                }
                                Op::UpdateWorkOrder(_, 2) => {
                                    assert!(got.drop.contact_id.is_some());
                                    assert_ne!(got.drop.contact_id, b.details.drop.contact_id);
                                    want.drop.contact_id = got.drop.contact_id;
                                }
                                _ => {
                                    want.pickup.location_id =
                                        Some(LocationId(uuid::Uuid::from_u128(9)));
                                }
                            }
                            assert_eq!(*got, want, "{op:?}");
                            assert_eq!((a.state, a.attempt), (b.state, b.attempt));
                        } else {
                            assert_eq!(a, b);
                        }
                    }
                }
                _ => {
                    let ret = after.work_orders.last().expect("a return");
                    assert_eq!(after.work_orders.len(), before.work_orders.len() + 1);
                    assert_eq!(ret.returns, Some(id));
                    assert_eq!(ret.kind, "RETURN");
                    if before.state == OrderState::Executed {
                        // Running again, with the return dispatched at once.
                        assert_eq!(after.state, OrderState::InProgress, "{change:?}");
                        assert!(change.job_commands().iter().any(|j| j.work_order == ret.id
                            && j.action == orderd_core::JobAction::Create));
                    }
                }
            }
        }
        (expected, outcome) => panic!("{op:?}: the model expects {expected:?}, got {outcome:?}"),
    }
}

#[derive(Debug, Clone)]
struct Scenario {
    plugins: usize,
    auto_close: bool,
    first: Op,
    ops: Vec<Op>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        0..3usize,
        any::<bool>(),
        (
            flow(),
            prop::collection::vec(0..KINDS.len(), 1..5),
            prop::bool::weighted(0.8),
        ),
        prop::collection::vec(op(), 0..60),
    )
        .prop_map(
            |(plugins, auto_close, (flow, kinds, ready), ops)| Scenario {
                plugins,
                auto_close,
                first: Op::Create { flow, kinds, ready },
                ops,
            },
        )
}

fn config(s: &Scenario) -> TenantConfig {
    let mut c = TenantConfig {
        plugins: ["fraud", "address"][..s.plugins]
            .iter()
            .map(|p| p.to_string())
            .collect(),
        auto_close_after_ms: s.auto_close.then_some(5_000),
        milestones: vec![
            orderd_core::config::Milestone {
                name: "started".into(),
                reach: OrderState::InProgress,
                within_ms: 3_000,
                after: None,
                warn_before_ms: Some(1_000),
            },
            orderd_core::config::Milestone {
                name: "done".into(),
                reach: OrderState::Executed,
                within_ms: 8_000,
                after: Some("started".into()),
                warn_before_ms: None,
            },
        ],
        ..TenantConfig::default()
    };
    c.sub_states.insert(
        OrderState::InProgress,
        SubStateConfig {
            sub_states: vec!["A".into(), "B".into(), "C".into()],
            transitions: vec![("A".into(), "B".into())],
        },
    );
    c
}

fn command(h: &Harness, op: &Op) -> Command {
    match op {
        Op::Create { flow, kinds, ready } => {
            let names: Vec<&str> = kinds.iter().map(|k| KINDS[*k]).collect();
            let mut c = create(*flow, &names);
            c.ready_to_process = *ready;
            Command::Create(Box::new(c))
        }
        Op::Job {
            wo,
            attempt_delta,
            status,
        } => {
            let n = h.order.work_orders.len().max(1);
            let id = (*wo % (n + 1)) as u32 + 1; // sometimes one past the last: unknown
            let current = h.order.work_order(WorkOrderId(id)).map_or(1, |w| w.attempt);
            let attempt = (i64::from(current) + i64::from(*attempt_delta)).max(0) as u32;
            Command::Job(JobUpdate {
                work_order: WorkOrderId(id),
                attempt,
                status: *status,
                job_id: None,
                reason_code: Some("E".into()),
            })
        }
        Op::Hold => Command::Hold { reason: None },
        Op::Resume => Command::Resume,
        Op::Cancel => Command::Cancel { reason: None },
        Op::CancelWorkOrder(wo) | Op::HoldWorkOrder(wo) | Op::ResumeWorkOrder(wo) => {
            let n = h.order.work_orders.len().max(1);
            let work_order = WorkOrderId((*wo % (n + 1)) as u32 + 1);
            match op {
                Op::CancelWorkOrder(_) => Command::CancelWorkOrder {
                    work_order,
                    reason: None,
                },
                Op::HoldWorkOrder(_) => Command::HoldWorkOrder {
                    work_order,
                    reason: None,
                },
                _ => Command::ResumeWorkOrder { work_order },
            }
        }
        Op::UpdateWorkOrder(wo, k) => {
            let n = h.order.work_orders.len().max(1);
            Command::UpdateWorkOrder {
                work_order: WorkOrderId((*wo % (n + 1)) as u32 + 1),
                details: Box::new(patch(*k)),
            }
        }
        Op::AddReturn(wo, with_details) => {
            let n = h.order.work_orders.len().max(1);
            Command::AddReturn {
                returns: WorkOrderId((*wo % (n + 1)) as u32 + 1),
                details: Box::new(if *with_details {
                    patch(0)
                } else {
                    DetailsPatch::default()
                }),
            }
        }
        Op::Close => Command::Close,
        Op::MarkReady => Command::MarkReady,
        Op::Update(items) => Command::Update(Box::new(UpdateOrder {
            summary: SummaryPatch {
                total_items: Some(*items),
                ..SummaryPatch::default()
            },
            ..UpdateOrder::default()
        })),
        Op::SubState(i) => Command::SetSubState {
            to: ["A", "B", "C"].get(*i).map(|s| s.to_string()),
        },
        Op::Verdict { plugin, accept } => Command::RecordPluginVerdict {
            plugin: ["fraud", "address"][*plugin].to_owned(),
            verdict: if *accept {
                PluginVerdict::Accepted
            } else {
                PluginVerdict::Rejected(vec!["no".into()])
            },
        },
        Op::FireTimers => Command::FireTimers,
        Op::Repeat(_) => unreachable!("repeats reuse an envelope"),
    }
}

/// The small model: which top-level moves the lifecycle allows.
fn allowed_move(from: OrderState, to: OrderState) -> bool {
    use OrderState::*;
    from == to
        || matches!(
            (from, to),
            (Initiated, Created | Closed)
                | (Created, InProgress | OnHold | Closed)
                | (InProgress, OnHold | Executed | Closed)
                | (OnHold, InProgress | Created | Closed)
                | (Executed, InProgress | Closed)
        )
}

fn state_after(e: &Event, current: OrderState) -> OrderState {
    match e {
        Event::Validated => OrderState::Created,
        Event::Started | Event::Reopened => OrderState::InProgress,
        Event::Held { .. } => OrderState::OnHold,
        Event::Resumed { to } => *to,
        Event::Executed => OrderState::Executed,
        Event::Closed { .. } => OrderState::Closed,
        _ => current,
    }
}

fn check_change(
    before: &orderd_core::Order,
    change: &orderd_core::Change,
    after: &orderd_core::Order,
) {
    // Every step of the state path is a move the lifecycle allows, and
    // nothing is dispatched while held, not ready, or cancelling.
    let mut state = before.state;
    let mut path = vec![state];
    for e in &change.events {
        let next = state_after(e, state);
        assert!(
            allowed_move(state, next),
            "illegal move {state} -> {next} in {change:?}"
        );
        state = next;
        path.push(state);
        if let Event::JobDispatched { .. } = e {
            assert_eq!(
                state,
                OrderState::InProgress,
                "dispatch outside IN_PROGRESS: {change:?}"
            );
        }
    }
    assert_eq!(state, after.state);
    if change
        .events
        .iter()
        .any(|e| matches!(e, Event::JobDispatched { .. }))
    {
        assert!(
            after.ready_to_process,
            "dispatch while readyToProcess is false"
        );
        assert!(!after.cancellation.status.in_flight() || after.state == OrderState::InProgress);
    }
    // Once requested, cancellationRequested stays true.
    if before.cancellation.requested {
        assert!(after.cancellation.requested);
    }
    // An order that closes because its execution could not finish is
    // PARTIAL exactly when some forward work order was completed; PARTIAL
    // never names anything else.
    for e in &change.events {
        if let Event::Closed { reason, cause } = e {
            let forward = || after.work_orders.iter().filter(|w| !w.is_return());
            let some_done = forward().any(|w| w.state == WorkOrderState::Completed);
            let some_uncovered = forward().any(|w| !after.is_covered(w));
            let could_not_finish = cause
                .as_deref()
                .is_some_and(|c| c.starts_with("execution could not finish"));
            if could_not_finish {
                assert!(
                    some_uncovered,
                    "could not finish, yet all covered: {change:?}"
                );
                let expected = if some_done {
                    CloseReason::Partial
                } else {
                    CloseReason::Cancelled
                };
                assert_eq!(*reason, expected, "{change:?}");
            } else {
                assert_ne!(*reason, CloseReason::Partial, "{change:?}");
            }
        }
    }
    // Only a client's return runs an EXECUTED order again.
    if change.events.iter().any(|e| matches!(e, Event::Reopened)) {
        assert_eq!(before.state, OrderState::Executed);
        assert_eq!(change.command, "add_return");
    }
    // Personal data travels sealed: no encoding of a change carries it.
    let encoded = serde_json::to_string(change).expect("encodes");
    assert!(!encoded.contains("Rae Porter") && !encoded.contains("+15550123"));
    // And it reads back (a reader sees every event, every field once).
    let back: orderd_core::Change = serde_json::from_str(&encoded).expect(&encoded);
    assert_eq!(back.events.len(), change.events.len());
    // Final states are final.
    if before.state == OrderState::Closed {
        assert_eq!(after.state, OrderState::Closed);
    }
}

fn check_order(h: &Harness) {
    let o = &h.order;
    let open = o.open_work_orders().count();
    let out = o
        .work_orders
        .iter()
        .filter(|w| w.state.has_job_out())
        .count();
    match o.state {
        OrderState::Initiated | OrderState::Created => {
            assert!(
                o.work_orders.iter().all(|w| w.attempt == 0),
                "no job before IN_PROGRESS"
            );
        }
        OrderState::InProgress => {
            assert!(open > 0, "IN_PROGRESS with nothing open");
            assert!(
                o.work_orders.iter().any(|w| w.attempt > 0),
                "IN_PROGRESS with no job ever sent"
            );
            assert!(
                o.work_orders
                    .iter()
                    .all(|w| w.state != WorkOrderState::OnHold || w.held_alone),
                "only a work order held on its own is on hold in IN_PROGRESS"
            );
        }
        OrderState::OnHold => {
            assert!(o.held_from.is_some());
            assert!(
                o.work_orders.iter().all(|w| !matches!(
                    w.state,
                    WorkOrderState::Dispatched | WorkOrderState::InProgress
                )),
                "a job runs while the order is held"
            );
        }
        OrderState::Executed => {
            assert_eq!(open, 0);
            assert!(o
                .work_orders
                .iter()
                .filter(|w| !w.is_return())
                .all(|w| o.is_covered(w)));
        }
        OrderState::Closed => {
            assert_eq!(open, 0, "CLOSED with open work orders");
            assert!(o.close_reason.is_some());
        }
    }
    if o.execution_flow == ExecutionFlow::Sequential {
        assert!(out <= 1, "SEQUENTIAL with {out} jobs out");
    }
    if o.cancellation.status == CancellationStatus::Attempting {
        assert!(
            o.work_orders.iter().any(|w| w.cancel_requested),
            "ATTEMPTING with no cancel out"
        );
    }
    assert!(o.work_orders.len() <= orderd_core::validate::MAX_WORK_ORDERS);
    // Every timer belongs to something still pending; a closed order keeps none.
    for t in &o.timers {
        match &t.kind {
            orderd_core::model::TimerKind::AutoClose => assert_eq!(o.state, OrderState::Executed),
            orderd_core::model::TimerKind::MilestoneDue(n)
            | orderd_core::model::TimerKind::MilestoneWarning(n) => {
                assert!(!o.milestones[n].reached, "a timer for a met milestone");
                assert_ne!(o.state, OrderState::Closed);
            }
        }
    }
    h.assert_no_double_dispatch();
}

fn run(s: Scenario) {
    let mut h = Harness::new(config(&s));
    let mut envelopes: Vec<(Envelope, bool)> = Vec::new();
    for op in std::iter::once(&s.first).chain(s.ops.iter()) {
        let before = h.order.clone();
        let (env, repeat_of_applied) = match op {
            Op::Repeat(k) if !envelopes.is_empty() => {
                let (e, applied) = envelopes[k % envelopes.len()].clone();
                (e, applied)
            }
            Op::Repeat(_) => continue,
            op => {
                let cmd = command(&h, op);
                (h.envelope(cmd), false)
            }
        };
        // The same command naming the order's sequence decides exactly as
        // without it; naming any other is refused and changes nothing.
        let conditional = before.exists()
            && !matches!(env.command, Command::Create(_))
            && !before.applied_commands.contains(&env.command_id);
        let mut right = h.clone();
        let right_outcome = conditional.then(|| {
            right.run_envelope(&Envelope {
                expected_seq: Some(before.seq),
                ..env.clone()
            })
        });
        if conditional {
            for wrong_seq in [before.seq + 1, before.seq.saturating_sub(1), before.seq + 7] {
                if wrong_seq == before.seq {
                    continue;
                }
                let mut wrong = h.clone();
                let refused = wrong.run_envelope(&Envelope {
                    expected_seq: Some(wrong_seq),
                    ..env.clone()
                });
                assert_eq!(
                    refused,
                    Outcome::Refused(orderd_core::Rejection::SeqMismatch {
                        expected: wrong_seq,
                        actual: before.seq,
                    })
                );
                assert_eq!(wrong.order, before);
            }
        }
        let outcome = h.run_envelope(&env);
        if !matches!(op, Op::Repeat(_)) {
            check_against_model(&before, op, &outcome, &h.order);
        }
        if let Some(right_outcome) = right_outcome {
            assert_eq!(right_outcome, outcome, "expectedSeq = seq changes nothing");
            assert_eq!(right.order, h.order);
        }
        match &outcome {
            Outcome::Applied(change) => {
                assert!(
                    !repeat_of_applied,
                    "an applied command id was applied again"
                );
                check_change(&before, change, &h.order);
            }
            Outcome::Duplicate => assert_eq!(h.order, before),
            Outcome::Refused(r) => {
                assert_eq!(h.order, before);
                assert!(r.code().starts_with("ORD-4"), "{}", r.code());
            }
        }
        let applied = matches!(outcome, Outcome::Applied(_) | Outcome::Duplicate);
        envelopes.push((env, applied));
        check_order(&h);
    }
    assert_eq!(
        h.rebuilt(),
        h.order,
        "rebuilding from the recorded changes gives the same order"
    );
    // And through the snapshot encoding, as the runtime stores it.
    let snapshot = rmp_serde::to_vec_named(&h.order).expect("encodes");
    let back: orderd_core::Order = rmp_serde::from_slice(&snapshot).expect("decodes");
    assert_eq!(back, h.order);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000)
    ))]

    #[test]
    fn random_command_sequences_keep_every_invariant(s in scenario()) {
        run(s);
    }
}

/// Drives orders to the end with a cooperative dispatch (started, then
/// completed, always the current attempt): every flow reaches EXECUTED.
#[test]
fn a_cooperative_dispatch_executes_every_flow() {
    for flow in ExecutionFlow::ALL {
        let mut h = Harness::created(flow, &["PICKUP", "DELIVERY", "INSTALL"]);
        for _ in 0..20 {
            let out: Vec<(u32, u32, WorkOrderState)> = h
                .order
                .work_orders
                .iter()
                .filter(|w| w.state.has_job_out())
                .map(|w| (w.id.0, w.attempt, w.state))
                .collect();
            for (id, attempt, state) in out {
                if state == WorkOrderState::Dispatched {
                    h.job_ok(id, attempt, JobStatus::Started);
                }
                h.job_ok(id, attempt, JobStatus::Completed);
            }
        }
        assert_eq!(h.order.state, OrderState::Executed, "{flow:?}");
        assert_eq!(h.job_commands().len(), 3);
        let _ = BTreeMap::<(), ()>::new();
    }
}
