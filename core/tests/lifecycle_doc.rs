//! Generates docs/lifecycle.md from the core: a state diagram and a table of
//! every command in every state with its outcome, computed by running the
//! commands. The test fails when the committed file differs, so the document
//! cannot drift from the code. `UPDATE_DOCS=1 cargo test -p orderd-core --test
//! lifecycle_doc` rewrites it.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;

use common::{create, Harness};
use orderd_core::command::{DetailsPatch, JobUpdate, PluginVerdict, SummaryPatch, UpdateOrder};
use orderd_core::config::SubStateConfig;
use orderd_core::model::{ExecutionFlow, JobStatus, OrderState};
use orderd_core::{Command, Outcome, TenantConfig, WorkOrderId};

fn config(plugins: bool) -> TenantConfig {
    let mut c = TenantConfig {
        plugins: if plugins {
            vec!["fraud".into()]
        } else {
            vec![]
        },
        auto_close_after_ms: Some(1),
        ..TenantConfig::default()
    };
    for s in OrderState::ALL {
        c.sub_states.insert(
            s,
            SubStateConfig {
                sub_states: vec!["CHECKED".into()],
                transitions: vec![],
            },
        );
    }
    c
}

/// Representative orders, one per state (and per notable condition).
fn situations() -> Vec<(&'static str, Harness)> {
    let flow = ExecutionFlow::Sequential;
    let kinds = ["PICKUP", "DELIVERY"];
    let mut out = Vec::new();

    let h = Harness::created_with(config(true), create(flow, &kinds));
    out.push(("INITIATED (waiting for a plugin)", h));

    let mut c = create(flow, &kinds);
    c.ready_to_process = false;
    let h = Harness::created_with(config(false), c);
    out.push(("CREATED (readyToProcess false)", h));

    let mut h = Harness::created_with(config(false), create(flow, &kinds));
    h.job_ok(1, 1, JobStatus::Started);
    out.push(("IN_PROGRESS (job 1 started)", h));

    let mut h = Harness::created_with(config(false), create(flow, &["PICKUP"]));
    h.job_ok(1, 1, JobStatus::Started);
    out.push(("IN_PROGRESS (last job started)", h));

    let mut h = Harness::created_with(config(false), create(flow, &kinds));
    h.ok(Command::Cancel { reason: None });
    out.push(("IN_PROGRESS (cancellation ATTEMPTING)", h));

    let mut h = Harness::created_with(config(false), create(flow, &kinds));
    h.ok(Command::Hold { reason: None });
    out.push(("ON_HOLD", h));

    let mut h = Harness::created_with(config(false), create(flow, &kinds));
    h.ok(Command::Hold { reason: None });
    h.job_ok(1, 1, JobStatus::Completed);
    out.push(("ON_HOLD (no job out)", h));

    let mut h = Harness::created_with(config(false), create(flow, &kinds));
    h.complete(1);
    h.complete(2);
    out.push(("EXECUTED", h));

    let mut h = Harness::created_with(config(false), create(flow, &kinds));
    h.complete(1);
    h.complete(2);
    h.ok(Command::Close);
    out.push(("CLOSED (COMPLETED)", h));

    let mut h = Harness::created_with(config(false), create(flow, &kinds));
    h.ok(Command::Cancel { reason: None });
    h.job_ok(1, 1, JobStatus::Cancelled);
    out.push(("CLOSED (CANCELLED)", h));

    // KYC has one attempt and no return: PICKUP done, KYC failed for good.
    let mut h = Harness::created_with(config(false), create(flow, &["PICKUP", "KYC"]));
    h.complete(1);
    h.job_ok(2, 1, JobStatus::Failed);
    out.push(("CLOSED (PARTIAL: PICKUP done, KYC failed)", h));
    out
}

fn job(status: JobStatus) -> Command {
    Command::Job(JobUpdate {
        work_order: WorkOrderId(1),
        attempt: 1,
        status,
        job_id: None,
        reason_code: Some("E".into()),
    })
}

fn update_work_order(n: u32) -> Command {
    Command::UpdateWorkOrder {
        work_order: WorkOrderId(n),
        details: Box::new(DetailsPatch {
            instructions: Some("Use the side door".into()),
            ..Default::default()
        }),
    }
}

fn commands() -> Vec<(&'static str, Command)> {
    vec![
        (
            "create",
            Command::Create(Box::new(create(ExecutionFlow::Sequential, &["PICKUP"]))),
        ),
        (
            "update",
            Command::Update(Box::new(UpdateOrder {
                summary: SummaryPatch {
                    total_items: Some(3),
                    ..Default::default()
                },
                ..Default::default()
            })),
        ),
        ("ready", Command::MarkReady),
        ("hold", Command::Hold { reason: None }),
        ("resume", Command::Resume),
        ("cancel", Command::Cancel { reason: None }),
        (
            "hold work order 1 alone",
            Command::HoldWorkOrder {
                work_order: orderd_core::WorkOrderId(1),
                reason: None,
            },
        ),
        (
            "resume work order 1 alone",
            Command::ResumeWorkOrder {
                work_order: orderd_core::WorkOrderId(1),
            },
        ),
        (
            "cancel work order 1 alone",
            Command::CancelWorkOrder {
                work_order: orderd_core::WorkOrderId(1),
                reason: None,
            },
        ),
        ("update work order 1 alone", update_work_order(1)),
        ("update work order 2 alone", update_work_order(2)),
        (
            "add a return for work order 1",
            Command::AddReturn {
                returns: WorkOrderId(1),
                details: Box::default(),
            },
        ),
        ("close", Command::Close),
        (
            "substate",
            Command::SetSubState {
                to: Some("CHECKED".into()),
            },
        ),
        ("job started (wo 1)", job(JobStatus::Started)),
        ("job completed (wo 1)", job(JobStatus::Completed)),
        ("job failed (wo 1)", job(JobStatus::Failed)),
        ("job cancelled (wo 1)", job(JobStatus::Cancelled)),
        ("job cancel_failed (wo 1)", job(JobStatus::CancelFailed)),
        (
            "plugin verdict: accepted",
            Command::RecordPluginVerdict {
                plugin: "fraud".into(),
                verdict: PluginVerdict::Accepted,
            },
        ),
        (
            "plugin verdict: rejected",
            Command::RecordPluginVerdict {
                plugin: "fraud".into(),
                verdict: PluginVerdict::Rejected(vec!["x".into()]),
            },
        ),
        ("fire timers (after the delay)", Command::FireTimers),
    ]
}

/// Commands naming a sequence (`expectedSeq`): the order's own, or one
/// behind it, as a client acting on a stale view would.
fn conditional_commands() -> Vec<(&'static str, Command, Option<Expect>)> {
    vec![
        (
            "hold, expectedSeq the order's",
            Command::Hold { reason: None },
            Some(Expect::Current),
        ),
        (
            "hold, expectedSeq stale",
            Command::Hold { reason: None },
            Some(Expect::Stale),
        ),
    ]
}

/// Which sequence a conditional command names.
#[derive(Clone, Copy)]
enum Expect {
    Current,
    Stale,
}

fn state_after(e: &orderd_core::Event, current: OrderState) -> OrderState {
    use orderd_core::Event;
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

fn render() -> String {
    let situations = situations();
    let mut edges: BTreeSet<(OrderState, OrderState)> = BTreeSet::new();
    let mut table = String::new();
    let header: Vec<&str> = situations.iter().map(|(n, _)| *n).collect();
    writeln!(table, "| command | {} |", header.join(" | ")).unwrap();
    writeln!(table, "|---|{}", "---|".repeat(header.len())).unwrap();
    let rows = commands()
        .into_iter()
        .map(|(name, cmd)| (name, cmd, None))
        .chain(conditional_commands());
    for (name, cmd, expect) in rows {
        let mut row = format!("| {name} |");
        for (_, base) in &situations {
            let mut h = base.clone();
            h.now += 10_000;
            let before = h.order.state;
            let mut envelope = h.envelope(cmd.clone());
            envelope.expected_seq = expect.map(|e| match e {
                Expect::Current => h.order.seq,
                Expect::Stale => h.order.seq - 1,
            });
            let cell = match h.run_envelope(&envelope) {
                Outcome::Applied(change) => {
                    let mut prev = before;
                    for e in &change.events {
                        let next = state_after(e, prev);
                        if next != prev {
                            edges.insert((prev, next));
                            prev = next;
                        }
                    }
                    let after = h.order.state;
                    if after != before {
                        format!(" → {after}")
                    } else {
                        " accepted".to_owned()
                    }
                }
                Outcome::Duplicate => " duplicate".to_owned(),
                Outcome::Refused(r) => format!(" `{}`", r.code()),
            };
            // A create applies to a blank order: record its path too.
            row.push_str(&cell);
            row.push_str(" |");
        }
        writeln!(table, "{row}").unwrap();
    }
    // The create path from nothing, for the diagram.
    for plugins in [true, false] {
        let h = Harness::created_with(
            config(plugins),
            create(ExecutionFlow::Sequential, &["PICKUP"]),
        );
        let mut prev = OrderState::Initiated;
        for e in &h.changes[0].events {
            let next = match e {
                orderd_core::Event::Validated => OrderState::Created,
                orderd_core::Event::Started => OrderState::InProgress,
                _ => prev,
            };
            if next != prev {
                edges.insert((prev, next));
                prev = next;
            }
        }
    }
    let mut doc = String::new();
    doc.push_str("# Order lifecycle\n\n");
    doc.push_str(
        "<!-- Generated by core/tests/lifecycle_doc.rs from the domain core; do not edit. -->\n",
    );
    doc.push_str(
        "<!-- Regenerate: UPDATE_DOCS=1 cargo test -p orderd-core --test lifecycle_doc -->\n\n",
    );
    doc.push_str("Every edge below was taken by a command in the table (or by a create), run through the core.\n\n");
    doc.push_str("```mermaid\nstateDiagram-v2\n    [*] --> INITIATED: create\n");
    for (a, b) in &edges {
        writeln!(doc, "    {a} --> {b}").unwrap();
    }
    doc.push_str("    CLOSED --> [*]\n```\n\n");
    doc.push_str("## Every command in every state\n\n");
    doc.push_str("Rows are commands, columns representative orders (SEQUENTIAL, work orders PICKUP then DELIVERY unless said, auto-close configured, one sub-state `CHECKED` configured under every state). A cell shows the state reached (→), `accepted` when the order changed but its state did not, or the stable code of the refusal (the order is then unchanged). A job update that changes nothing is still accepted and recorded (`job_update_ignored`). The last rows name a sequence (`expectedSeq`): the order's own decides as without it, any other is refused before any rule of the state.\n\n");
    doc.push_str(&table);
    doc.push_str("\n## Refusal codes\n\n| code | type | meaning |\n|---|---|---|\n");
    doc
}

#[test]
fn lifecycle_doc_matches_the_core() {
    let mut doc = render();
    for (code, severity, meaning) in codes() {
        writeln!(doc, "| `{code}` | {severity} | {meaning} |").unwrap();
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/lifecycle.md");
    if std::env::var("UPDATE_DOCS").is_ok() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &doc).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(committed == doc, "docs/lifecycle.md is out of date: run UPDATE_DOCS=1 cargo test -p orderd-core --test lifecycle_doc");
}

fn codes() -> Vec<(&'static str, String, String)> {
    use orderd_core::model::UpdateGroup;
    use orderd_core::Rejection as R;
    let all = [
        R::OrderNotFound,
        R::OrderExists,
        R::WorkOrderNotFound,
        R::UnknownAttempt {
            work_order: 1,
            attempt: 2,
            current: 1,
        },
        R::InvalidFields(vec![]),
        R::NotAllowedInState {
            command: "close",
            state: OrderState::Created,
        },
        R::OrderImmutable {
            state: OrderState::Executed,
        },
        R::NotReady { command: "hold" },
        R::ReadyIrreversible,
        R::AlreadyReady,
        R::AlreadyOnHold,
        R::NotOnHold,
        R::CancelInProgress,
        R::AlreadyCancelled,
        R::UnknownSubState {
            sub_state: "X".into(),
            state: OrderState::Created,
        },
        R::SubStateTransition {
            from: "A".into(),
            to: "B".into(),
        },
        R::ModificationLocked {
            group: UpdateGroup::Contact,
            locked_from: OrderState::InProgress,
        },
        R::EmptyUpdate,
        R::UnexpectedPlugin("p".into()),
        R::NoTimerDue,
        R::SeqMismatch {
            expected: 3,
            actual: 4,
        },
        R::WorkOrderNotOpen {
            work_order: 1,
            state: orderd_core::WorkOrderState::Completed,
        },
        R::WorkOrderDispatched {
            work_order: 1,
            attempt: 1,
            state: orderd_core::WorkOrderState::Dispatched,
        },
        R::WorkOrderNotCompleted {
            work_order: 1,
            state: orderd_core::WorkOrderState::InProgress,
        },
        R::WorkOrderIsReturn { work_order: 3 },
        R::ReturnExists {
            work_order: 1,
            return_id: 3,
        },
    ];
    all.iter()
        .map(|r| (r.code(), format!("{:?}", r.severity()), r.to_string()))
        .collect()
}
