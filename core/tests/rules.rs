//! One named example per lifecycle rule (DESIGN §1, seed 002). Each test is
//! named after the rule it shows.

mod common;

use std::collections::BTreeMap;

use common::{create, Harness};
use orderd_core::command::{
    Address, Contact, ContactInput, LocationInput, PluginVerdict, SummaryPatch, UpdateOrder,
};
use orderd_core::config::{AttributeDef, AttributeValidation, DataType, Range, SubStateConfig};
use orderd_core::event::Event;
use orderd_core::model::{
    CancellationStatus, CloseReason, ExecutionFlow::*, JobStatus::*, OrderState, UpdateGroup,
    WorkOrderState,
};
use orderd_core::{explain, Command, Outcome, TenantConfig, TenantId};
use serde_json::json;

fn hold() -> Command {
    Command::Hold {
        reason: Some("customer asked".into()),
    }
}
fn cancel() -> Command {
    Command::Cancel { reason: None }
}
fn update(u: UpdateOrder) -> Command {
    Command::Update(Box::new(u))
}
fn plugins(names: &[&str]) -> TenantConfig {
    TenantConfig {
        plugins: names.iter().map(|s| s.to_string()).collect(),
        ..TenantConfig::default()
    }
}
fn verdict(plugin: &str, v: PluginVerdict) -> Command {
    Command::RecordPluginVerdict {
        plugin: plugin.into(),
        verdict: v,
    }
}

// ---- states -----------------------------------------------------------------

#[test]
fn only_orderd_moves_an_order_into_or_out_of_initiated() {
    let mut h = Harness::created_with(
        plugins(&["fraud", "address"]),
        create(Sequential, &["DELIVERY"]),
    );
    assert_eq!(h.order.state, OrderState::Initiated);
    // No client command moves it on: hold/resume/close are refused, ready only sets the flag.
    assert_eq!(h.refused(hold()), "ORD-409-NOT_ALLOWED_IN_STATE");
    assert_eq!(h.refused(Command::Resume), "ORD-409-NOT_ON_HOLD");
    assert_eq!(h.refused(Command::Close), "ORD-409-NOT_ALLOWED_IN_STATE");
    h.ok(verdict("fraud", PluginVerdict::Accepted));
    assert_eq!(
        h.order.state,
        OrderState::Initiated,
        "still waits for the second plugin"
    );
    assert!(h.job_commands().is_empty());
    h.ok(verdict("address", PluginVerdict::Accepted));
    assert_eq!(h.order.state, OrderState::InProgress);
    assert_eq!(h.job_commands(), vec![(1, 1, "create")]);
    assert_eq!(
        h.refused(verdict("fraud", PluginVerdict::Accepted)),
        "ORD-409-NOT_ALLOWED_IN_STATE"
    );
}

#[test]
fn a_plugin_rejection_closes_the_order_as_validation_failed() {
    let mut h = Harness::created_with(plugins(&["fraud"]), create(Sequential, &["DELIVERY"]));
    let c = h.ok(verdict(
        "fraud",
        PluginVerdict::Rejected(vec!["blocked card".into()]),
    ));
    assert!(c.events.iter().any(
        |e| matches!(e, Event::ValidationFailed { reasons, .. } if reasons[0] == "blocked card")
    ));
    assert_eq!(h.order.state, OrderState::Closed);
    assert_eq!(h.order.close_reason, Some(CloseReason::ValidationFailed));
    assert!(h.job_commands().is_empty());
    assert_eq!(h.wo(1).state, WorkOrderState::Cancelled);
}

#[test]
fn a_verdict_from_a_plugin_the_order_does_not_wait_for_is_refused() {
    let mut h = Harness::created_with(plugins(&["fraud"]), create(Sequential, &["DELIVERY"]));
    assert_eq!(
        h.refused(verdict("other", PluginVerdict::Accepted)),
        "ORD-409-UNEXPECTED_PLUGIN"
    );
}

#[test]
fn ready_to_process_false_blocks_created_to_in_progress() {
    let mut c = create(Sequential, &["DELIVERY"]);
    c.ready_to_process = false;
    let mut h = Harness::created_with(TenantConfig::default(), c);
    assert_eq!(h.order.state, OrderState::Created);
    assert!(
        h.job_commands().is_empty(),
        "nothing dispatched while not ready"
    );
    h.ok(Command::MarkReady);
    assert_eq!(h.order.state, OrderState::InProgress);
    assert_eq!(h.job_commands(), vec![(1, 1, "create")]);
}

#[test]
fn ready_to_process_false_blocks_created_to_on_hold() {
    let mut c = create(Sequential, &["DELIVERY"]);
    c.ready_to_process = false;
    let mut h = Harness::created_with(TenantConfig::default(), c);
    assert_eq!(h.refused(hold()), "ORD-409-NOT_READY");
    assert_eq!(h.order.state, OrderState::Created);
}

#[test]
fn ready_to_process_only_goes_from_false_to_true() {
    let mut h = Harness::created(Sequential, &["DELIVERY"]);
    assert_eq!(
        h.refused(update(UpdateOrder {
            ready_to_process: Some(false),
            ..Default::default()
        })),
        "ORD-422-READY_IRREVERSIBLE"
    );
    assert_eq!(h.refused(Command::MarkReady), "ORD-409-ALREADY_READY");
    let mut c = create(Sequential, &["DELIVERY"]);
    c.ready_to_process = false;
    let mut h = Harness::created_with(TenantConfig::default(), c);
    h.ok(update(UpdateOrder {
        ready_to_process: Some(true),
        ..Default::default()
    }));
    assert!(h.order.ready_to_process);
    assert_eq!(h.order.state, OrderState::InProgress);
}

#[test]
fn cancel_still_works_while_ready_to_process_is_false() {
    let mut c = create(Sequential, &["DELIVERY"]);
    c.ready_to_process = false;
    let mut h = Harness::created_with(TenantConfig::default(), c);
    h.ok(cancel());
    assert_eq!(h.order.state, OrderState::Closed);
    assert_eq!(h.order.close_reason, Some(CloseReason::Cancelled));
}

#[test]
fn closed_carries_its_reason_completed_after_close() {
    let mut h = Harness::created(Sequential, &["DELIVERY"]);
    h.complete(1);
    assert_eq!(h.order.state, OrderState::Executed);
    h.ok(Command::Close);
    assert_eq!(h.order.state, OrderState::Closed);
    assert_eq!(h.order.close_reason, Some(CloseReason::Completed));
    assert_eq!(h.refused(Command::Close), "ORD-409-ORDER_IMMUTABLE");
}

#[test]
fn close_is_refused_before_execution() {
    let mut h = Harness::created(Sequential, &["DELIVERY"]);
    assert_eq!(h.refused(Command::Close), "ORD-409-NOT_ALLOWED_IN_STATE");
}

#[test]
fn auto_close_fires_after_the_configured_delay() {
    let config = TenantConfig {
        auto_close_after_ms: Some(60_000),
        ..TenantConfig::default()
    };
    let mut h = Harness::created_with(config, create(Sequential, &["DELIVERY"]));
    h.complete(1);
    assert_eq!(h.order.state, OrderState::Executed);
    let due = h.order.timers[0].due;
    assert_eq!(
        h.refused(Command::FireTimers),
        "ORD-409-NO_TIMER_DUE",
        "not due yet"
    );
    h.now = due.0; // the next command comes 1 s later, past the due time
    h.ok(Command::FireTimers);
    assert_eq!(h.order.close_reason, Some(CloseReason::Completed));
    assert!(h.order.timers.is_empty());
}

fn sub_state_config() -> TenantConfig {
    let mut config = TenantConfig::default();
    config.sub_states.insert(
        OrderState::InProgress,
        SubStateConfig {
            sub_states: vec!["PICKING".into(), "PACKED".into(), "LOADED".into()],
            transitions: vec![
                ("PICKING".into(), "PACKED".into()),
                ("PACKED".into(), "LOADED".into()),
            ],
        },
    );
    config
}

#[test]
fn sub_state_changes_follow_the_tenant_transitions() {
    let mut h = Harness::created_with(sub_state_config(), create(Sequential, &["DELIVERY"]));
    let sub = |s: &str| Command::SetSubState { to: Some(s.into()) };
    assert_eq!(h.refused(sub("UNKNOWN")), "ORD-422-UNKNOWN_SUB_STATE");
    h.ok(sub("PICKING"));
    assert_eq!(
        h.refused(sub("LOADED")),
        "ORD-409-SUB_STATE_TRANSITION",
        "PICKING→LOADED is not configured"
    );
    h.ok(sub("PACKED"));
    h.ok(sub("LOADED"));
    assert_eq!(h.order.sub_state.as_deref(), Some("LOADED"));
    h.ok(Command::SetSubState { to: None });
    assert_eq!(h.order.sub_state, None);
}

#[test]
fn a_state_change_clears_the_sub_state() {
    let mut h = Harness::created_with(sub_state_config(), create(Sequential, &["DELIVERY"]));
    h.ok(Command::SetSubState {
        to: Some("PICKING".into()),
    });
    h.ok(hold());
    assert_eq!(h.order.sub_state, None);
    assert_eq!(
        h.refused(Command::SetSubState {
            to: Some("PICKING".into())
        }),
        "ORD-422-UNKNOWN_SUB_STATE",
        "PICKING is configured under IN_PROGRESS only"
    );
}

// ---- flows ------------------------------------------------------------------

#[test]
fn sequential_sends_one_job_at_a_time_in_the_given_order() {
    let mut h = Harness::created(Sequential, &["PICKUP", "DELIVERY", "INSTALL"]);
    assert_eq!(h.job_commands(), vec![(1, 1, "create")]);
    h.job_ok(1, 1, Started);
    assert_eq!(
        h.job_commands().len(),
        1,
        "the next job waits for completion, not for start"
    );
    h.job_ok(1, 1, Completed);
    assert_eq!(h.job_commands(), vec![(1, 1, "create"), (2, 1, "create")]);
    h.complete(2);
    h.complete(3);
    assert_eq!(
        h.job_commands().iter().map(|j| j.0).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(h.order.state, OrderState::Executed);
}

#[test]
fn start_together_sends_every_job_at_once() {
    let h = Harness::created(StartTogether, &["PICKUP", "DELIVERY", "INSTALL"]);
    assert_eq!(
        h.job_commands(),
        vec![(1, 1, "create"), (2, 1, "create"), (3, 1, "create")]
    );
    assert!(h.changes[0]
        .job_commands()
        .iter()
        .all(|j| j.group.is_none()));
}

#[test]
fn start_together_a_failure_does_not_stop_the_others() {
    let mut h = Harness::created(StartTogether, &["KYC", "PICKUP"]);
    h.job_ok(1, 1, Failed); // KYC: one attempt, no return
    assert_eq!(h.wo(1).state, WorkOrderState::Failed);
    assert_eq!(
        h.wo(2).state,
        WorkOrderState::Dispatched,
        "the other carries on"
    );
    assert_eq!(h.order.state, OrderState::InProgress);
    h.complete(2);
    // Nothing open, a forward work order failed and nothing covers it: the
    // order cannot execute and closes as PARTIAL (work order 2 was done),
    // saying why.
    assert_eq!(h.order.state, OrderState::Closed);
    assert_eq!(h.order.close_reason, Some(CloseReason::Partial));
    let cause = h
        .changes
        .last()
        .unwrap()
        .events
        .iter()
        .find_map(|e| match e {
            Event::Closed { cause, .. } => cause.clone(),
            _ => None,
        });
    assert!(cause.unwrap().contains("work order 1 FAILED"));
}

#[test]
fn complete_together_sends_one_group() {
    let h = Harness::created(CompleteTogether, &["PICKUP", "DELIVERY"]);
    let jobs = h.changes[0].job_commands();
    assert_eq!(jobs.len(), 2);
    let group = jobs[0].group.clone().expect("a group id");
    assert_eq!(group, h.order.id.to_string());
    assert!(jobs
        .iter()
        .all(|j| j.group.as_deref() == Some(group.as_str())));
}

#[test]
fn complete_together_one_failure_cancels_the_others_and_the_order_fails_together() {
    let mut h = Harness::created(CompleteTogether, &["KYC", "PICKUP", "INSTALL"]);
    h.job_ok(2, 1, Started);
    h.job_ok(1, 1, Failed); // KYC fails for good
    assert_eq!(h.job_commands()[3..], [(2, 1, "cancel"), (3, 1, "cancel")]);
    h.job_ok(2, 1, Cancelled);
    assert_eq!(
        h.order.state,
        OrderState::InProgress,
        "still waits for the cancel of work order 3"
    );
    h.job_ok(3, 1, Cancelled);
    assert_eq!(h.order.state, OrderState::Closed);
    assert_eq!(h.order.close_reason, Some(CloseReason::Cancelled));
    assert_eq!(
        h.order.cancellation.status,
        CancellationStatus::None,
        "a group failure is not a client cancellation"
    );
}

#[test]
fn complete_together_succeeds_when_every_member_completes() {
    let mut h = Harness::created(CompleteTogether, &["PICKUP", "DELIVERY"]);
    h.complete(2);
    assert_eq!(h.order.state, OrderState::InProgress);
    h.complete(1);
    assert_eq!(h.order.state, OrderState::Executed);
}

#[test]
fn a_failed_job_is_retried_up_to_max_attempts() {
    let mut h = Harness::created(Sequential, &["INSTALL"]); // maxAttempts 2, no return
    h.job_ok(1, 1, Failed);
    assert_eq!(h.job_commands(), vec![(1, 1, "create"), (1, 2, "create")]);
    assert_eq!(h.wo(1).attempt, 2);
    h.job_ok(1, 2, Failed);
    assert_eq!(h.wo(1).state, WorkOrderState::Failed);
    assert_eq!(h.job_commands().len(), 2, "no third attempt");
    assert_eq!(h.order.state, OrderState::Closed);
    // Nothing was done: cancelled, not partial.
    assert_eq!(h.order.close_reason, Some(CloseReason::Cancelled));
}

#[test]
fn a_work_order_that_fails_for_good_gets_a_return_when_its_type_says_so() {
    let mut h = Harness::created(Sequential, &["DELIVERY"]); // 3 attempts, returnOnFailure
    for attempt in 1..=3 {
        h.job_ok(1, attempt, Failed);
    }
    assert_eq!(h.wo(1).state, WorkOrderState::Failed);
    let ret = h.wo(2);
    assert_eq!(ret.kind, "RETURN");
    assert_eq!(ret.returns, Some(orderd_core::WorkOrderId(1)));
    assert_eq!(h.job_commands().last(), Some(&(2, 1, "create")));
    h.complete(2);
    // The failed forward work order is covered by its completed return.
    assert_eq!(h.order.state, OrderState::Executed);
}

#[test]
fn an_order_is_executed_only_when_every_forward_work_order_is_completed_or_covered() {
    let mut h = Harness::created(StartTogether, &["DELIVERY", "PICKUP"]);
    for attempt in 1..=3 {
        h.job_ok(1, attempt, Failed);
    }
    h.complete(2);
    assert_eq!(
        h.order.state,
        OrderState::InProgress,
        "the return of work order 1 is still open"
    );
    let ret = h.wo(3).clone();
    for attempt in 1..=ret.max_attempts {
        h.job_ok(3, attempt, Failed);
    }
    assert_eq!(
        h.order.state,
        OrderState::Closed,
        "a failed return covers nothing"
    );
    assert_eq!(h.order.close_reason, Some(CloseReason::Partial));
}

#[test]
fn an_order_with_work_done_that_cannot_execute_closes_as_partial_in_every_flow() {
    for flow in [Sequential, StartTogether, CompleteTogether] {
        // KYC: one attempt, no return.
        let mut h = Harness::created(flow, &["PICKUP", "KYC"]);
        h.complete(1);
        h.job_ok(2, 1, Failed);
        assert_eq!(h.order.state, OrderState::Closed, "{flow:?}");
        assert_eq!(h.order.close_reason, Some(CloseReason::Partial), "{flow:?}");
        let closed = h.changes.last().unwrap().events.last().unwrap().clone();
        assert_eq!(
            closed,
            Event::Closed {
                reason: CloseReason::Partial,
                cause: Some("execution could not finish: work order 2 FAILED".into()),
            },
            "{flow:?}"
        );
        // It was not cancelled: a cancel finds it closed for good.
        let Outcome::Refused(r) = h.run(cancel()) else {
            panic!("a PARTIAL order refuses a cancel")
        };
        assert_eq!(r.code(), "ORD-409-ORDER_IMMUTABLE", "{flow:?}");
    }
    // The same failure with nothing done: CANCELLED.
    let mut h = Harness::created(StartTogether, &["PICKUP", "KYC"]);
    h.job_ok(2, 1, Failed);
    h.job_ok(1, 1, Failed);
    h.job_ok(1, 2, Failed);
    h.job_ok(1, 3, Failed);
    assert_eq!(h.order.close_reason, Some(CloseReason::Cancelled));
}

#[test]
fn sequential_a_failure_ends_the_sequence() {
    let mut h = Harness::created(Sequential, &["KYC", "DELIVERY"]);
    h.job_ok(1, 1, Failed);
    assert_eq!(
        h.wo(2).state,
        WorkOrderState::Cancelled,
        "the next work order never starts"
    );
    assert_eq!(h.job_commands(), vec![(1, 1, "create")]);
    assert_eq!(h.order.state, OrderState::Closed);
}

// ---- late, repeated and out-of-order job updates ------------------------------

#[test]
fn a_completed_for_an_old_attempt_after_a_new_attempt_started_is_recorded_not_applied() {
    let mut h = Harness::created(Sequential, &["DELIVERY", "PICKUP"]);
    h.job_ok(1, 1, Failed);
    h.job_ok(1, 2, Started);
    let c = h.job_ok(1, 1, Completed);
    assert!(matches!(
        c.events[..],
        [Event::JobUpdateIgnored {
            why: orderd_core::model::IgnoredWhy::StaleAttempt,
            ..
        }]
    ));
    assert_eq!(h.wo(1).state, WorkOrderState::InProgress);
    assert_eq!(h.wo(1).ignored_updates, 1);
    assert_eq!(
        h.job_commands().len(),
        2,
        "work order 2 is not started by a stale completion"
    );
}

#[test]
fn a_completed_before_started_completes_the_work_order() {
    let mut h = Harness::created(Sequential, &["DELIVERY"]);
    h.job_ok(1, 1, Completed);
    assert_eq!(h.order.state, OrderState::Executed);
    let c = h.job_ok(1, 1, Started);
    assert!(
        matches!(c.events[..], [Event::JobUpdateIgnored { .. }]),
        "a late start never flips state back"
    );
    assert_eq!(h.order.state, OrderState::Executed);
    assert_eq!(h.wo(1).state, WorkOrderState::Completed);
}

#[test]
fn a_job_update_that_arrives_twice_is_recorded_once_as_a_change() {
    let mut h = Harness::created(Sequential, &["DELIVERY", "PICKUP"]);
    h.job_ok(1, 1, Completed);
    let c = h.job_ok(1, 1, Completed);
    assert!(matches!(c.events[..], [Event::JobUpdateIgnored { .. }]));
    assert_eq!(
        h.job_commands().len(),
        2,
        "the second completion sends nothing"
    );
}

#[test]
fn a_job_update_for_an_attempt_never_sent_is_refused() {
    let mut h = Harness::created(Sequential, &["DELIVERY", "PICKUP"]);
    assert!(
        matches!(h.job(1, 2, Completed), Outcome::Refused(r) if r.code() == "ORD-409-UNKNOWN_ATTEMPT")
    );
    assert!(
        matches!(h.job(2, 1, Started), Outcome::Refused(r) if r.code() == "ORD-409-UNKNOWN_ATTEMPT"),
        "work order 2 has no job yet"
    );
    assert!(
        matches!(h.job(9, 1, Started), Outcome::Refused(r) if r.code() == "ORD-404-WORK_ORDER_NOT_FOUND")
    );
}

// ---- hold and resume ----------------------------------------------------------

#[test]
fn hold_remembers_the_state_and_holds_the_jobs_out() {
    let mut h = Harness::created(StartTogether, &["DELIVERY", "PICKUP"]);
    h.job_ok(1, 1, Started);
    h.ok(hold());
    assert_eq!(h.order.state, OrderState::OnHold);
    assert_eq!(h.order.held_from, Some(OrderState::InProgress));
    assert_eq!(h.job_commands()[2..], [(1, 1, "hold"), (2, 1, "hold")]);
    assert!(h
        .order
        .work_orders
        .iter()
        .all(|w| w.state == WorkOrderState::OnHold));
    assert_eq!(h.refused(hold()), "ORD-409-ALREADY_ON_HOLD");
}

#[test]
fn job_updates_while_held_are_recorded_and_nothing_new_is_dispatched() {
    let mut h = Harness::created(Sequential, &["DELIVERY", "PICKUP"]);
    h.ok(hold());
    h.job_ok(1, 1, Started);
    h.job_ok(1, 1, Completed);
    assert_eq!(
        h.wo(1).state,
        WorkOrderState::Completed,
        "recorded while held"
    );
    assert_eq!(h.order.state, OrderState::OnHold);
    assert_eq!(
        h.job_commands(),
        vec![(1, 1, "create"), (1, 1, "hold")],
        "work order 2 waits for resume"
    );
}

#[test]
fn resume_restores_the_state_resumes_held_jobs_and_carries_on() {
    let mut h = Harness::created(Sequential, &["DELIVERY", "PICKUP"]);
    h.job_ok(1, 1, Started);
    h.ok(hold());
    h.ok(Command::Resume);
    assert_eq!(h.order.state, OrderState::InProgress);
    assert_eq!(
        h.wo(1).state,
        WorkOrderState::InProgress,
        "the work order goes back to where it was"
    );
    assert_eq!(h.job_commands().last(), Some(&(1, 1, "resume")));
    h.job_ok(1, 1, Completed);
    assert_eq!(h.job_commands().last(), Some(&(2, 1, "create")));
    assert_eq!(h.refused(Command::Resume), "ORD-409-NOT_ON_HOLD");
}

#[test]
fn a_failure_while_held_is_retried_only_after_resume() {
    let mut h = Harness::created(Sequential, &["DELIVERY"]);
    h.ok(hold());
    h.job_ok(1, 1, Failed);
    assert_eq!(h.wo(1).state, WorkOrderState::Pending);
    assert_eq!(h.job_commands().len(), 2, "no retry while held");
    h.ok(Command::Resume);
    assert_eq!(h.job_commands().last(), Some(&(1, 2, "create")));
}

#[test]
fn hold_is_refused_outside_created_and_in_progress() {
    let mut h = Harness::created(Sequential, &["DELIVERY"]);
    h.complete(1);
    assert_eq!(h.refused(hold()), "ORD-409-ORDER_IMMUTABLE");
}

// ---- cancellation (seed 002) -------------------------------------------------

#[test]
fn cancel_with_nothing_started_succeeds_and_closes_as_cancelled() {
    let mut h = Harness::created_with(plugins(&["fraud"]), create(Sequential, &["DELIVERY"]));
    let c = h.ok(cancel());
    let kinds: Vec<_> = c.events.iter().map(Event::kind).collect();
    assert_eq!(
        &kinds[..3],
        [
            "cancellation_requested",
            "cancellation_attempting",
            "cancellation_succeeded"
        ]
    );
    assert_eq!(h.order.state, OrderState::Closed);
    assert_eq!(h.order.close_reason, Some(CloseReason::Cancelled));
    assert!(h.order.cancellation.requested);
    assert_eq!(h.order.cancellation.status, CancellationStatus::Success);
    assert!(
        h.order.cancellation.requested_on.is_some()
            && h.order.cancellation.status_timestamp.is_some()
    );
    assert_eq!(h.refused(cancel()), "ORD-409-ALREADY_CANCELLED");
}

#[test]
fn cancel_with_jobs_out_attempts_through_dispatch_then_succeeds() {
    let mut h = Harness::created(StartTogether, &["PICKUP", "INSTALL"]);
    h.ok(cancel());
    assert_eq!(h.order.cancellation.status, CancellationStatus::Attempting);
    assert_eq!(h.job_commands()[2..], [(1, 1, "cancel"), (2, 1, "cancel")]);
    h.job_ok(1, 1, Cancelled);
    assert_eq!(h.order.cancellation.status, CancellationStatus::Attempting);
    h.job_ok(2, 1, Cancelled);
    assert_eq!(h.order.cancellation.status, CancellationStatus::Success);
    assert_eq!(h.order.state, OrderState::Closed);
    assert_eq!(h.order.close_reason, Some(CloseReason::Cancelled));
}

#[test]
fn cancel_is_refused_while_a_cancellation_is_attempting() {
    let mut h = Harness::created(StartTogether, &["PICKUP"]);
    h.ok(cancel());
    assert_eq!(h.refused(cancel()), "ORD-409-CANCEL_IN_PROGRESS");
    assert_eq!(h.refused(hold()), "ORD-409-CANCEL_IN_PROGRESS");
}

#[test]
fn a_failed_cancellation_keeps_requested_true_and_the_order_carries_on() {
    let mut h = Harness::created(Sequential, &["PICKUP", "INSTALL"]);
    h.job_ok(1, 1, Started);
    h.ok(cancel());
    h.job_ok(1, 1, CancelFailed);
    let c = &h.order.cancellation;
    assert_eq!(c.status, CancellationStatus::Failed);
    assert!(c.requested, "cancellationRequested stays true after FAILED");
    assert_eq!(c.failure_reason_code.as_deref(), Some("E_TEST"));
    assert_eq!(h.order.state, OrderState::InProgress);
    h.job_ok(1, 1, Completed);
    assert_eq!(
        h.job_commands().last(),
        Some(&(2, 1, "create")),
        "the flow carries on"
    );
    h.complete(2);
    assert_eq!(h.order.state, OrderState::Executed);
}

#[test]
fn a_new_cancel_after_failed_is_accepted_and_resets_status_and_timestamp() {
    let mut h = Harness::created(Sequential, &["PICKUP", "INSTALL"]);
    h.ok(cancel());
    h.job_ok(1, 1, CancelFailed);
    let failed_at = h.order.cancellation.status_timestamp;
    h.ok(cancel());
    assert_eq!(h.order.cancellation.status, CancellationStatus::Attempting);
    assert!(h.order.cancellation.status_timestamp > failed_at);
    assert_eq!(
        h.order.cancellation.failure_reason_code, None,
        "reset by the new request"
    );
    h.job_ok(1, 1, Cancelled);
    assert_eq!(h.order.state, OrderState::Closed);
    assert_eq!(h.wo(2).state, WorkOrderState::Cancelled);
}

#[test]
fn a_successful_cancellation_returns_goods_that_already_moved() {
    let mut h = Harness::created(Sequential, &["DELIVERY", "DELIVERY", "DELIVERY"]);
    h.complete(1); // delivered: goods moved
    h.job_ok(2, 1, Started); // picked up: goods moved
    h.ok(cancel());
    h.job_ok(2, 1, Cancelled);
    assert_eq!(h.order.cancellation.status, CancellationStatus::Success);
    let returns: Vec<_> = h
        .order
        .work_orders
        .iter()
        .filter_map(|w| w.returns)
        .map(|r| r.0)
        .collect();
    assert_eq!(
        returns,
        vec![1, 2],
        "work order 3 never started: nothing to return"
    );
    assert_eq!(
        h.order.state,
        OrderState::InProgress,
        "returns run before the order closes"
    );
    let (r1, r2) = (h.order.work_orders[3].id.0, h.order.work_orders[4].id.0);
    h.complete(r1);
    h.complete(r2);
    assert_eq!(h.order.state, OrderState::Closed);
    assert_eq!(h.order.close_reason, Some(CloseReason::Cancelled));
}

#[test]
fn a_job_that_completes_before_its_cancel_makes_the_cancellation_fail() {
    let mut h = Harness::created(Sequential, &["PICKUP"]);
    h.ok(cancel());
    h.job_ok(1, 1, Completed);
    assert_eq!(h.order.cancellation.status, CancellationStatus::Failed);
    assert_eq!(
        h.order.cancellation.failure_reason_code.as_deref(),
        Some("COMPLETED_BEFORE_CANCEL")
    );
    assert_eq!(h.order.state, OrderState::Executed);
}

#[test]
fn cancelling_a_held_order_cancels_its_held_jobs() {
    let mut h = Harness::created(Sequential, &["PICKUP"]);
    h.ok(hold());
    h.ok(cancel());
    assert_eq!(h.job_commands().last(), Some(&(1, 1, "cancel")));
    h.job_ok(1, 1, Cancelled);
    assert_eq!(h.order.state, OrderState::Closed);
}

#[test]
fn cancel_is_refused_once_executed() {
    let mut h = Harness::created(Sequential, &["PICKUP"]);
    h.complete(1);
    assert_eq!(h.refused(cancel()), "ORD-409-ORDER_IMMUTABLE");
}

// ---- updates ------------------------------------------------------------------

#[test]
fn updates_change_contact_location_summary_and_custom_attributes() {
    let mut config = TenantConfig::default();
    config.attributes.push(AttributeDef {
        name: "priority".into(),
        description: None,
        data_type: DataType::Number,
        validation: AttributeValidation::default(),
        default_value: None,
        indexed: true,
        security_level: None,
        delete: false,
    });
    let mut h = Harness::created_with(config, create(Sequential, &["PICKUP"]));
    let old_contact = h.order.drop.contact_id;
    h.ok(update(UpdateOrder {
        contact: Some(ContactInput::Details(Contact {
            name: "Bo Marker".into(),
            phone: "+1 555 0100".into(),
        })),
        location: Some(LocationInput::Address(Address(
            json!({"line1": "1 Marker Street", "city": "Leeds"}),
        ))),
        summary: SummaryPatch {
            total_items: Some(7),
            ..Default::default()
        },
        custom: BTreeMap::from([("priority".to_owned(), json!(2))]),
        ready_to_process: None,
    }));
    assert_ne!(h.order.drop.contact_id, old_contact);
    assert!(h.order.drop.location_id.is_some());
    assert_eq!(h.order.summary.total_items, Some(7));
    assert_eq!(
        h.order.summary.invoice_number.as_deref(),
        Some("INV-001"),
        "fields not given stay"
    );
    assert_eq!(h.order.custom["priority"], json!(2));
    assert_eq!(
        h.refused(update(UpdateOrder::default())),
        "ORD-422-EMPTY_UPDATE"
    );
}

#[test]
fn modification_rules_lock_a_group_from_the_configured_state_on() {
    let mut config = TenantConfig::default();
    config
        .modification_rules
        .insert(UpdateGroup::OrderSummary, OrderState::InProgress);
    let mut c = create(Sequential, &["PICKUP"]);
    c.ready_to_process = false;
    let mut h = Harness::created_with(config, c);
    let patch = || {
        update(UpdateOrder {
            summary: SummaryPatch {
                total_items: Some(3),
                ..Default::default()
            },
            ..Default::default()
        })
    };
    h.ok(patch()); // CREATED: still allowed
    h.ok(Command::MarkReady);
    assert_eq!(h.refused(patch()), "ORD-409-MODIFICATION_LOCKED");
    h.ok(update(UpdateOrder {
        contact: Some(ContactInput::Id(orderd_core::ids::ContactId(
            uuid::Uuid::from_u128(5),
        ))),
        ..Default::default()
    }));
}

#[test]
fn executed_and_closed_orders_are_immutable() {
    let mut h = Harness::created(Sequential, &["PICKUP"]);
    h.complete(1);
    let patch = || {
        update(UpdateOrder {
            summary: SummaryPatch {
                total_items: Some(3),
                ..Default::default()
            },
            ..Default::default()
        })
    };
    assert_eq!(h.refused(patch()), "ORD-409-ORDER_IMMUTABLE");
    h.ok(Command::Close);
    assert_eq!(h.refused(patch()), "ORD-409-ORDER_IMMUTABLE");
    assert_eq!(h.refused(Command::MarkReady), "ORD-409-ORDER_IMMUTABLE");
}

#[test]
fn core_attributes_follow_the_seed_patterns_and_bounds() {
    let mut c = create(Sequential, &["PICKUP", "TELEPORT"]);
    c.summary.invoice_number = Some("no spaces allowed".into());
    c.summary.order_description = Some("1 starts with a digit".into());
    c.summary.total_items = Some(1001);
    c.client_order_id = String::new();
    let mut h = Harness::new(TenantConfig::default());
    match h.run(Command::Create(Box::new(c))) {
        Outcome::Refused(r) => {
            assert_eq!(r.code(), "ORD-422-INVALID_FIELDS");
            let fields: Vec<_> = r
                .details()
                .iter()
                .map(|p| (p.field.as_str(), p.code))
                .collect();
            assert!(fields.contains(&("orderSummary.invoiceNumber", "PATTERN")));
            assert!(fields.contains(&("orderSummary.orderDescription", "PATTERN")));
            assert!(fields.contains(&("orderSummary.totalItems", "RANGE")));
            assert!(fields.contains(&("clientOrderId", "LENGTH")));
            assert!(fields.contains(&("workOrders[1].type", "UNKNOWN_TYPE")));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!h.order.exists());
    // At the bounds: accepted.
    let mut c = create(Sequential, &["PICKUP"]);
    c.summary.invoice_number = Some("a:_".into());
    c.summary.order_description = Some(
        format!("A{}", "b, 1".repeat(63))
            .chars()
            .take(256)
            .collect(),
    );
    c.summary.total_items = Some(1000);
    h.ok(Command::Create(Box::new(c)));
}

fn schema() -> TenantConfig {
    let def = |name: &str, data_type, validation, default_value| AttributeDef {
        name: name.into(),
        description: None,
        data_type,
        validation,
        default_value,
        indexed: true,
        security_level: None,
        delete: false,
    };
    TenantConfig {
        version: 7,
        attributes: vec![
            def(
                "stringValidations",
                DataType::String,
                AttributeValidation {
                    range: Some(Range {
                        min: Some(0.0),
                        max: Some(9.0),
                    }),
                    regex: Some("string[0-9]+".into()),
                    value_one_of: Some(vec![json!("string123"), json!("string124")]),
                    required: false,
                },
                None,
            ),
            def(
                "intValidations",
                DataType::Number,
                AttributeValidation {
                    range: Some(Range {
                        min: Some(0.0),
                        max: Some(5.0),
                    }),
                    value_one_of: Some((0..=5).map(|n| json!(n)).collect()),
                    required: true,
                    regex: None,
                },
                Some(json!(1)),
            ),
            def(
                "vip",
                DataType::Boolean,
                AttributeValidation {
                    required: true,
                    ..Default::default()
                },
                None,
            ),
            def(
                "deposit",
                DataType::Money,
                AttributeValidation::default(),
                None,
            ),
        ],
        ..TenantConfig::default()
    }
}

#[test]
fn custom_attributes_are_validated_against_the_tenant_schema() {
    let mut h = Harness::new(schema());
    let mut c = create(Sequential, &["PICKUP"]);
    c.custom = BTreeMap::from([
        ("stringValidations".to_owned(), json!("string999")),
        ("intValidations".to_owned(), json!(9)),
        (
            "deposit".to_owned(),
            json!({"amount": 5, "currency": "eur"}),
        ),
        ("unknown".to_owned(), json!(1)),
    ]);
    let Outcome::Refused(r) = h.run(Command::Create(Box::new(c))) else {
        panic!("expected a refusal")
    };
    let got: Vec<_> = r
        .details()
        .iter()
        .map(|p| (p.field.as_str(), p.code))
        .collect();
    for want in [
        ("customAttributes.stringValidations", "NOT_ONE_OF"),
        ("customAttributes.intValidations", "RANGE"),
        ("customAttributes.intValidations", "NOT_ONE_OF"),
        ("customAttributes.deposit", "TYPE"),
        ("customAttributes.unknown", "UNKNOWN_ATTRIBUTE"),
        ("customAttributes.vip", "REQUIRED"),
    ] {
        assert!(got.contains(&want), "missing {want:?} in {got:?}");
    }
}

#[test]
fn custom_attribute_defaults_are_filled_in_and_the_schema_version_recorded() {
    let mut h = Harness::new(schema());
    let mut c = create(Sequential, &["PICKUP"]);
    c.custom = BTreeMap::from([
        ("vip".to_owned(), json!(true)),
        ("stringValidations".to_owned(), json!("string123")),
    ]);
    h.ok(Command::Create(Box::new(c)));
    assert_eq!(h.order.custom["intValidations"], json!(1));
    assert_eq!(h.order.schema_version, 7);
}

// ---- personal data ----------------------------------------------------------

#[test]
fn contact_details_become_a_contact_id_and_never_stay_in_the_order() {
    let h = Harness::created(Sequential, &["PICKUP"]);
    let change = &h.changes[0];
    let personal = change.personal_data();
    assert_eq!(
        personal.len(),
        1,
        "the core hands the contact to the store apart"
    );
    assert!(h.order.drop.contact_id.is_some());
    let marker = "Ada Marker";
    let texts = [
        serde_json::to_string(&h.order).unwrap(),
        serde_json::to_string(change).unwrap(),
        format!("{:?}", h.order),
        format!("{change:?}"),
        String::from_utf8_lossy(&rmp_serde::to_vec_named(&h.order).unwrap()).into_owned(),
        String::from_utf8_lossy(&rmp_serde::to_vec_named(change).unwrap()).into_owned(),
    ];
    for t in texts {
        assert!(
            !t.contains(marker) && !t.contains("7946"),
            "personal data leaked: {t}"
        );
    }
    // After a round trip the sealed contact is gone.
    let back: orderd_core::Change =
        rmp_serde::from_slice(&rmp_serde::to_vec_named(change).unwrap()).unwrap();
    assert!(back.personal_data().is_empty());
}

// ---- idempotency -------------------------------------------------------------

#[test]
fn a_command_id_the_order_has_seen_gives_no_new_events_for_its_whole_life() {
    let mut h = Harness::created(Sequential, &["PICKUP", "INSTALL"]);
    let env = h.envelope(Command::Job(orderd_core::command::JobUpdate {
        work_order: orderd_core::WorkOrderId(1),
        attempt: 1,
        status: Completed,
        job_id: None,
        reason_code: None,
    }));
    assert!(matches!(h.run_envelope(&env), Outcome::Applied(_)));
    // Much later, after many other changes, the same id is still known.
    h.complete(2);
    h.ok(Command::Close);
    assert_eq!(h.run_envelope(&env), Outcome::Duplicate);
    let create_env = orderd_core::Envelope {
        command_id: h.changes[0].command_id.clone(),
        ..h.envelope(Command::MarkReady)
    };
    assert_eq!(h.run_envelope(&create_env), Outcome::Duplicate);
}

#[test]
fn another_tenants_order_is_not_found() {
    let mut h = Harness::created(Sequential, &["PICKUP"]);
    let mut env = h.envelope(hold());
    env.tenant = TenantId::parse("globex").unwrap();
    assert!(
        matches!(h.run_envelope(&env), Outcome::Refused(r) if r.code() == "ORD-404-ORDER_NOT_FOUND")
    );
    let mut fresh = Harness::new(TenantConfig::default());
    assert_eq!(fresh.refused(hold()), "ORD-404-ORDER_NOT_FOUND");
}

#[test]
fn a_create_for_an_existing_order_is_refused() {
    let mut h = Harness::created(Sequential, &["PICKUP"]);
    assert_eq!(
        h.refused(Command::Create(Box::new(create(Sequential, &["PICKUP"])))),
        "ORD-409-ORDER_EXISTS"
    );
}

// ---- explain -----------------------------------------------------------------

#[test]
fn explain_says_what_a_sequential_order_waits_for() {
    let mut h = Harness::created(Sequential, &["PICKUP", "DELIVERY", "INSTALL"]);
    h.complete(1);
    h.job_ok(2, 1, Failed);
    h.job_ok(2, 2, Started);
    let e = explain(&h.order, &h.config);
    assert_eq!(
        e.waiting_for[0],
        "SEQUENTIAL: work order 2 (DELIVERY): job attempt 2 of 3 in progress"
    );
    assert_eq!(
        e.waiting_for[1],
        "SEQUENTIAL: work order(s) 3 wait for work order 2"
    );
}

#[test]
fn explain_lists_the_allowed_commands_and_each_refusal_with_its_reason() {
    let mut h = Harness::created(Sequential, &["PICKUP"]);
    h.ok(hold());
    let e = explain(&h.order, &h.config);
    let find = |c: &str| e.commands.iter().find(|a| a.command == c).unwrap().clone();
    assert!(find("resume").allowed);
    assert!(find("cancel").allowed);
    let hold = find("hold");
    assert!(!hold.allowed);
    assert_eq!(hold.code, Some("ORD-409-ALREADY_ON_HOLD"));
    assert_eq!(find("close").code, Some("ORD-409-NOT_ALLOWED_IN_STATE"));
    assert!(e.waiting_for[0].contains("nothing is dispatched until resume"));
    assert_eq!(h.order.state, OrderState::OnHold, "explain changes nothing");
}

#[test]
fn event_kinds_are_listed_once_each() {
    let kinds: std::collections::BTreeSet<_> = Event::KINDS.iter().collect();
    assert_eq!(kinds.len(), Event::KINDS.len());
    let h = Harness::created(Sequential, &["PICKUP"]);
    for e in &h.changes[0].events {
        assert!(Event::KINDS.contains(&e.kind()));
        let json = serde_json::to_value(e).unwrap();
        assert_eq!(json["kind"], e.kind(), "the serialized tag is the kind");
    }
}

#[test]
fn a_work_orders_details_are_kept_with_ids_and_a_return_goes_the_other_way() {
    use orderd_core::command::{Address, LocationInput, StopInput};
    use orderd_core::model::Item;

    let mut c = common::create(Sequential, &["DELIVERY", "DELIVERY"]);
    let address =
        |street: &str| LocationInput::Address(Address(serde_json::json!({"street": street})));
    c.location = Some(address("1 Drop Lane"));
    c.return_location = Some(address("7 Returns Way"));
    c.work_orders[0].items = vec![Item {
        id: "SKU-1".into(),
        description: "Fridge".into(),
        quantity: 1,
        weight: Some(60.0),
    }];
    c.work_orders[0].instructions = Some("Two people".into());
    c.work_orders[0].pickup = StopInput {
        contact: Some(ContactInput::Details(Contact {
            name: "Depot Desk".into(),
            phone: "+15550111".into(),
        })),
        location: Some(address("9 Depot Road")),
    };
    c.work_orders[1].drop = StopInput {
        contact: None,
        location: Some(address("2 Other Street")),
    };
    let mut h = Harness::new(orderd_core::TenantConfig::default());
    let created = h.ok(Command::Create(Box::new(c)));
    // Six pieces of personal data (the order's contact, drop and return
    // location, the pickup's contact and address, the second drop), each
    // stored apart under its own id.
    let recorded: Vec<String> = created
        .events
        .iter()
        .filter_map(|e| match e {
            Event::ContactRecorded { contact_id, .. } => Some(contact_id.to_string()),
            Event::LocationRecorded { location_id, .. } => Some(location_id.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(recorded.len(), 6, "{recorded:?}");
    let distinct: std::collections::HashSet<_> = recorded.iter().collect();
    assert_eq!(distinct.len(), 6, "every id is new: {recorded:?}");
    let first = h.wo(1).details.clone();
    assert_eq!(first.items[0].id, "SKU-1");
    assert_eq!(first.instructions.as_deref(), Some("Two people"));
    assert!(first.pickup.contact_id.is_some() && first.pickup.location_id.is_some());
    assert!(first.drop.is_empty(), "no own drop: the order's");
    assert!(h.wo(2).details.drop.location_id.is_some());
    assert_ne!(h.wo(2).details.drop.location_id, h.order.drop.location_id);

    // The first fails for good: its return picks up where it dropped (the
    // order's drop) and goes to the order's return location.
    for attempt in 1..=2 {
        h.job_ok(1, attempt, Failed);
    }
    let failed = h.job_ok(1, 3, Failed);
    // The change that adds it reads back, as JSON and as MessagePack (the
    // event's `kind` tag and the work order's `type` never clash).
    let json = serde_json::to_string(&failed).unwrap();
    let back: orderd_core::Change = serde_json::from_str(&json).expect(&json);
    assert_eq!(back, failed);
    let packed = rmp_serde::to_vec_named(&failed).unwrap();
    assert_eq!(
        rmp_serde::from_slice::<orderd_core::Change>(&packed).unwrap(),
        failed
    );
    let ret = h.wo(3).clone();
    assert_eq!(ret.returns, Some(orderd_core::WorkOrderId(1)));
    assert_eq!(ret.details.items, first.items);
    assert_eq!(ret.details.pickup.location_id, h.order.drop.location_id);
    assert_eq!(ret.details.pickup.contact_id, h.order.drop.contact_id);
    assert_eq!(
        ret.details.drop.location_id,
        h.order.drop.return_location_id
    );
    assert_eq!(ret.details.instructions, None);
    // Rebuilt from its events, the order holds the same details.
    assert_eq!(h.rebuilt(), h.order);
}

fn cancel_wo(n: u32) -> Command {
    Command::CancelWorkOrder {
        work_order: orderd_core::WorkOrderId(n),
        reason: Some("not needed".into()),
    }
}

#[test]
fn a_pending_work_order_cancelled_alone_is_skipped_and_the_order_executes_without_it() {
    let mut h = Harness::created(Sequential, &["PICKUP", "DELIVERY", "INSTALL"]);
    assert_eq!(h.job_commands(), vec![(1, 1, "create")]);
    h.ok(cancel_wo(2));
    assert_eq!(h.wo(2).state, WorkOrderState::Cancelled);
    assert!(h.wo(2).withdrawn);
    assert_eq!(h.order.state, OrderState::InProgress);
    h.complete(1);
    // The sequence skips the withdrawn one.
    assert_eq!(h.job_commands().last(), Some(&(3, 1, "create")));
    h.complete(3);
    assert_eq!(h.order.state, OrderState::Executed);
    assert!(
        h.job_commands().iter().all(|(wo, _, _)| *wo != 2),
        "no job for the withdrawn one"
    );
    assert_eq!(h.rebuilt(), h.order);
}

#[test]
fn a_running_work_order_is_cancelled_through_its_job_and_a_refused_cancel_lets_it_run() {
    let mut h = Harness::created(StartTogether, &["PICKUP", "DELIVERY", "INSTALL"]);
    h.job_ok(2, 1, Started);
    h.ok(cancel_wo(2));
    assert_eq!(h.job_commands().last(), Some(&(2, 1, "cancel")));
    assert_eq!(
        h.wo(2).state,
        WorkOrderState::InProgress,
        "until dispatch answers"
    );
    assert_eq!(h.refused(cancel_wo(2)), "ORD-409-CANCEL_IN_PROGRESS");
    h.job_ok(2, 1, Cancelled);
    assert!(h.wo(2).withdrawn);
    // Dispatch refuses the next one's cancel: it runs on and counts.
    h.ok(cancel_wo(3));
    h.job_ok(3, 1, CancelFailed);
    assert!(!h.wo(3).withdrawing && !h.wo(3).withdrawn);
    h.complete(1);
    assert_eq!(h.order.state, OrderState::InProgress, "3 still runs");
    h.complete(3);
    assert_eq!(h.order.state, OrderState::Executed);
}

#[test]
fn a_withdrawn_work_order_does_not_break_a_complete_together_group() {
    let mut h = Harness::created(CompleteTogether, &["PICKUP", "INSTALL"]);
    h.ok(cancel_wo(1));
    h.job_ok(1, 1, Cancelled);
    assert!(h.wo(1).withdrawn);
    assert_eq!(
        h.wo(2).state,
        WorkOrderState::Dispatched,
        "the group goes on"
    );
    h.complete(2);
    assert_eq!(h.order.state, OrderState::Executed);
}

#[test]
fn cancelling_one_work_order_is_refused_when_it_cannot_apply() {
    let mut h = Harness::created(Sequential, &["PICKUP", "DELIVERY"]);
    assert_eq!(h.refused(cancel_wo(9)), "ORD-404-WORK_ORDER_NOT_FOUND");
    h.complete(1);
    assert_eq!(h.refused(cancel_wo(1)), "ORD-409-WORK_ORDER_NOT_OPEN");
    h.ok(Command::Cancel { reason: None });
    assert_eq!(h.refused(cancel_wo(2)), "ORD-409-CANCEL_IN_PROGRESS");
    // Every work order withdrawn one by one: nothing to execute.
    let mut all = Harness::created(StartTogether, &["PICKUP", "INSTALL"]);
    all.ok(cancel_wo(1));
    all.job_ok(1, 1, Cancelled);
    all.ok(cancel_wo(2));
    all.job_ok(2, 1, Cancelled);
    assert_eq!(all.order.state, OrderState::Closed);
    assert_eq!(all.order.close_reason, Some(CloseReason::Cancelled));
    assert_eq!(all.refused(cancel_wo(1)), "ORD-409-ORDER_IMMUTABLE");
}

fn hold_wo(n: u32) -> Command {
    Command::HoldWorkOrder {
        work_order: orderd_core::WorkOrderId(n),
        reason: None,
    }
}

fn resume_wo(n: u32) -> Command {
    Command::ResumeWorkOrder {
        work_order: orderd_core::WorkOrderId(n),
    }
}

#[test]
fn a_pending_work_order_held_alone_waits_for_its_own_resume_and_the_sequence_with_it() {
    let mut h = Harness::created(Sequential, &["PICKUP", "DELIVERY"]);
    h.ok(hold_wo(2));
    assert!(h.wo(2).held_alone);
    assert_eq!(h.refused(hold_wo(2)), "ORD-409-ALREADY_ON_HOLD");
    h.complete(1);
    assert_eq!(
        h.order.state,
        OrderState::InProgress,
        "waits for work order 2"
    );
    assert_eq!(h.job_commands(), vec![(1, 1, "create")]);
    // The order's hold and resume leave it held.
    h.ok(hold());
    h.ok(Command::Resume);
    assert!(h.wo(2).held_alone);
    assert_eq!(h.job_commands(), vec![(1, 1, "create")]);
    h.ok(resume_wo(2));
    assert_eq!(h.job_commands().last(), Some(&(2, 1, "create")));
    h.complete(2);
    assert_eq!(h.order.state, OrderState::Executed);
    assert_eq!(h.rebuilt(), h.order);
}

#[test]
fn a_running_work_order_held_alone_is_held_through_its_job_and_the_others_go_on() {
    let mut h = Harness::created(StartTogether, &["PICKUP", "INSTALL"]);
    h.job_ok(1, 1, Started);
    h.job_ok(2, 1, Started);
    assert_eq!(h.refused(resume_wo(1)), "ORD-409-NOT_ON_HOLD");
    h.ok(hold_wo(1));
    assert_eq!(h.job_commands().last(), Some(&(1, 1, "hold")));
    assert_eq!(h.order.state, OrderState::InProgress);
    // The whole order held and resumed: only work order 2's job resumes.
    h.ok(hold());
    assert_eq!(h.job_commands().last(), Some(&(2, 1, "hold")));
    h.ok(Command::Resume);
    assert_eq!(h.job_commands().last(), Some(&(2, 1, "resume")));
    assert_eq!(h.wo(1).state, WorkOrderState::OnHold);
    h.complete(2);
    assert_eq!(h.order.state, OrderState::InProgress);
    h.ok(resume_wo(1));
    assert_eq!(h.job_commands().last(), Some(&(1, 1, "resume")));
    assert_eq!(h.wo(1).state, WorkOrderState::InProgress);
    h.complete(1);
    assert_eq!(h.order.state, OrderState::Executed);
}

// ---- changing one work order, adding a return ----------------------------

fn update_wo(n: u32, patch: orderd_core::command::DetailsPatch) -> Command {
    Command::UpdateWorkOrder {
        work_order: orderd_core::WorkOrderId(n),
        details: Box::new(patch),
    }
}

fn add_return(n: u32, patch: orderd_core::command::DetailsPatch) -> Command {
    Command::AddReturn {
        returns: orderd_core::WorkOrderId(n),
        details: Box::new(patch),
    }
}

fn instructions(text: &str) -> orderd_core::command::DetailsPatch {
    orderd_core::command::DetailsPatch {
        instructions: Some(text.into()),
        ..Default::default()
    }
}

fn item(id: &str, quantity: u32) -> orderd_core::model::Item {
    orderd_core::model::Item {
        id: id.into(),
        description: "Boxed chair".into(),
        quantity,
        weight: None,
    }
}

fn street(s: &str) -> LocationInput {
    LocationInput::Address(Address(json!({ "street": s })))
}

#[test]
fn a_work_order_not_yet_dispatched_takes_new_details_and_dispatch_gets_them() {
    use orderd_core::command::{DetailsPatch, StopInput};

    let mut h = Harness::created(Sequential, &["PICKUP", "DELIVERY"]);
    h.job_ok(1, 1, Started);
    // Work order 2 waits for 1: its items, instructions and drop change;
    // the contact and the address given in full are stored apart.
    let changed = h.ok(update_wo(
        2,
        DetailsPatch {
            items: Some(vec![item("SKU-9", 2)]),
            instructions: Some("Ring the bell".into()),
            pickup: StopInput::default(),
            drop: StopInput {
                contact: Some(ContactInput::Details(Contact {
                    name: "Rae Porter".into(),
                    phone: "+15550123".into(),
                })),
                location: Some(street("3 New Road")),
            },
        },
    ));
    let kinds: Vec<&str> = changed.events.iter().map(Event::kind).collect();
    assert_eq!(
        kinds,
        [
            "contact_recorded",
            "location_recorded",
            "work_order_updated"
        ]
    );
    assert!(changed.job_commands().is_empty(), "nothing is dispatched");
    let encoded = serde_json::to_string(&changed).unwrap();
    assert!(!encoded.contains("Rae Porter") && !encoded.contains("3 New Road"));
    assert_eq!(changed.personal_data().len(), 2);
    let d = h.wo(2).details.clone();
    assert_eq!(d.items, vec![item("SKU-9", 2)]);
    assert_eq!(d.instructions.as_deref(), Some("Ring the bell"));
    assert!(d.drop.contact_id.is_some() && d.drop.location_id.is_some());
    assert_eq!(
        h.order.drop_of(h.wo(2)),
        d.drop,
        "it drops at its own drop now"
    );

    // A stop given in part keeps the rest; a second change replaces the
    // instructions only.
    let before = h.wo(2).details.clone();
    h.ok(update_wo(
        2,
        DetailsPatch {
            instructions: Some("Leave at the gate".into()),
            drop: StopInput {
                contact: None,
                location: Some(LocationInput::Id(orderd_core::ids::LocationId(
                    uuid::Uuid::from_u128(7),
                ))),
            },
            ..Default::default()
        },
    ));
    let after = h.wo(2).details.clone();
    assert_eq!(after.items, before.items);
    assert_eq!(after.drop.contact_id, before.drop.contact_id);
    assert_eq!(
        after.drop.location_id.map(|l| l.0),
        Some(uuid::Uuid::from_u128(7))
    );
    // It is dispatched with them when its turn comes; then it is fixed.
    h.complete(1);
    assert_eq!(h.job_commands().last(), Some(&(2, 1, "create")));
    assert_eq!(h.wo(2).details, after);
    assert_eq!(
        h.refused(update_wo(2, instructions("Too late"))),
        "ORD-409-WORK_ORDER_DISPATCHED"
    );
    assert_eq!(h.rebuilt(), h.order);
}

#[test]
fn changing_one_work_order_is_refused_once_it_was_sent_or_when_it_cannot_apply() {
    use orderd_core::command::DetailsPatch;

    let mut h = Harness::created(StartTogether, &["PICKUP", "DELIVERY", "INSTALL"]);
    // Every job is out: DISPATCHED, IN_PROGRESS, held, and (held, so not
    // retried) between attempts.
    h.job_ok(2, 1, Started);
    h.ok(hold_wo(1));
    h.ok(hold());
    h.job_ok(3, 1, Failed);
    assert_eq!(h.wo(3).state, WorkOrderState::Pending);
    for n in [1, 2, 3] {
        assert_eq!(
            h.refused(update_wo(n, instructions("x"))),
            "ORD-409-WORK_ORDER_DISPATCHED",
            "work order {n}"
        );
    }
    assert_eq!(
        h.refused(update_wo(9, instructions("x"))),
        "ORD-404-WORK_ORDER_NOT_FOUND"
    );
    h.job_ok(2, 1, Completed);
    assert_eq!(
        h.refused(update_wo(2, instructions("x"))),
        "ORD-409-WORK_ORDER_NOT_OPEN"
    );

    // Before the order starts, each is free to change; bad values are
    // listed by field; an empty change is refused.
    let mut c = create(Sequential, &["PICKUP", "DELIVERY"]);
    c.ready_to_process = false;
    let mut h = Harness::created_with(TenantConfig::default(), c);
    assert_eq!(
        h.refused(update_wo(1, DetailsPatch::default())),
        "ORD-422-EMPTY_UPDATE"
    );
    let bad = DetailsPatch {
        items: Some(vec![item("SKU-1", 0)]),
        instructions: Some(String::new()),
        pickup: orderd_core::command::StopInput {
            contact: Some(ContactInput::Details(Contact {
                name: "Sam".into(),
                phone: "call me".into(),
            })),
            location: None,
        },
        ..Default::default()
    };
    match h.run(update_wo(1, bad)) {
        Outcome::Refused(r) => {
            let fields: Vec<(&str, &str)> = r
                .details()
                .iter()
                .map(|p| (p.field.as_str(), p.code))
                .collect();
            assert_eq!(
                fields,
                [
                    ("items[0].quantity", "RANGE"),
                    ("instructions", "LENGTH"),
                    ("pickup.contact.phone", "PATTERN"),
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    h.ok(update_wo(1, instructions("Call ahead")));
    // Not while its cancel (or the order's) is out, nor once the order ended.
    h.ok(Command::MarkReady);
    h.ok(cancel());
    assert_eq!(
        h.refused(update_wo(2, instructions("x"))),
        "ORD-409-CANCEL_IN_PROGRESS"
    );
    let mut h = Harness::created(Sequential, &["PICKUP"]);
    h.complete(1);
    assert_eq!(
        h.refused(update_wo(1, instructions("x"))),
        "ORD-409-ORDER_IMMUTABLE"
    );
}

#[test]
fn a_return_added_after_delivery_runs_the_order_again_until_it_is_done() {
    let config = TenantConfig {
        auto_close_after_ms: Some(60_000),
        ..TenantConfig::default()
    };
    let mut c = create(Sequential, &["PICKUP", "DELIVERY"]);
    c.location = Some(street("1 Drop Lane"));
    c.return_location = Some(street("7 Returns Way"));
    c.work_orders[1].items = vec![item("SKU-1", 1)];
    let mut h = Harness::created_with(config, c);
    h.complete(1);
    h.complete(2);
    assert_eq!(h.order.state, OrderState::Executed);
    assert!(!h.order.timers.is_empty(), "auto-close is set");

    let added = h.ok(add_return(2, Default::default()));
    let kinds: Vec<&str> = added.events.iter().map(Event::kind).collect();
    assert_eq!(kinds, ["return_added", "reopened", "job_dispatched"]);
    assert_eq!(added.state_reached(), Some(OrderState::InProgress));
    let json = serde_json::to_string(&added).unwrap();
    let back: orderd_core::Change = serde_json::from_str(&json).expect(&json);
    assert_eq!(back, added, "the change reads back as it was written");
    let packed = rmp_serde::to_vec_named(&added).unwrap();
    let back: orderd_core::Change = rmp_serde::from_slice(&packed).unwrap();
    assert_eq!(back, added);
    assert_eq!(h.order.state, OrderState::InProgress);
    assert!(h.order.timers.is_empty(), "auto-close waits for the return");
    // The goods go back the other way: from where work order 2 dropped
    // them to the return location, the same items.
    let ret = h.wo(3).clone();
    assert_eq!(ret.returns, Some(orderd_core::WorkOrderId(2)));
    assert_eq!(ret.kind, "RETURN");
    assert_eq!(ret.details.items, vec![item("SKU-1", 1)]);
    assert_eq!(ret.details.pickup, h.order.drop_of(h.wo(2)));
    assert_eq!(
        ret.details.drop.location_id,
        h.order.drop.return_location_id
    );
    assert_eq!(h.job_commands().last(), Some(&(3, 1, "create")));
    // One return at a time for a work order.
    assert_eq!(
        h.refused(add_return(2, Default::default())),
        "ORD-409-RETURN_EXISTS"
    );
    h.complete(3);
    assert_eq!(h.order.state, OrderState::Executed);
    assert_eq!(h.order.timers.len(), 1, "auto-close set anew");
    h.ok(Command::Close);
    assert_eq!(h.order.close_reason, Some(CloseReason::Completed));
    assert_eq!(
        h.refused(add_return(1, Default::default())),
        "ORD-409-ORDER_IMMUTABLE"
    );
    assert_eq!(h.rebuilt(), h.order);
}

#[test]
fn a_return_added_while_running_follows_the_flow_and_may_change_its_details() {
    use orderd_core::command::{DetailsPatch, StopInput};

    // SEQUENTIAL: the return waits for the work order running now.
    let mut h = Harness::created(Sequential, &["PICKUP", "DELIVERY"]);
    h.complete(1);
    h.job_ok(2, 1, Started);
    h.ok(add_return(
        1,
        DetailsPatch {
            items: Some(vec![item("SKU-7", 3)]),
            instructions: Some("Fragile".into()),
            drop: StopInput {
                contact: None,
                location: Some(street("5 Depot Road")),
            },
            ..Default::default()
        },
    ));
    let ret = h.wo(3).clone();
    assert_eq!(ret.details.items, vec![item("SKU-7", 3)]);
    assert_eq!(ret.details.instructions.as_deref(), Some("Fragile"));
    assert!(ret.details.drop.location_id.is_some());
    assert_eq!(ret.details.pickup, h.order.drop_of(h.wo(1)));
    assert_eq!(h.job_commands().last(), Some(&(2, 1, "create")));
    // A return waiting for its turn can itself be changed.
    h.ok(update_wo(3, instructions("Two people")));
    h.complete(2);
    assert_eq!(h.job_commands().last(), Some(&(3, 1, "create")));
    h.complete(3);
    assert_eq!(h.order.state, OrderState::Executed);

    // START_TOGETHER: sent at once; held orders wait for resume.
    let mut h = Harness::created(StartTogether, &["PICKUP", "DELIVERY"]);
    h.complete(1);
    h.ok(hold());
    h.ok(add_return(1, Default::default()));
    assert_eq!(h.wo(3).state, WorkOrderState::Pending);
    h.ok(Command::Resume);
    assert_eq!(h.job_commands().last(), Some(&(3, 1, "create")));
    assert_eq!(h.rebuilt(), h.order);
}

#[test]
fn adding_a_return_is_refused_when_it_cannot_apply() {
    use orderd_core::command::DetailsPatch;

    let mut h = Harness::created(StartTogether, &["PICKUP", "DELIVERY", "KYC"]);
    assert_eq!(
        h.refused(add_return(1, Default::default())),
        "ORD-409-WORK_ORDER_NOT_COMPLETED"
    );
    assert_eq!(
        h.refused(add_return(9, Default::default())),
        "ORD-404-WORK_ORDER_NOT_FOUND"
    );
    h.complete(1);
    // A return that fails for good leaves the goods where they are: another
    // may be asked for; a return is never returned itself.
    h.ok(add_return(1, Default::default()));
    assert_eq!(
        h.refused(add_return(4, Default::default())),
        "ORD-409-WORK_ORDER_IS_RETURN"
    );
    for attempt in 1..=3 {
        h.job_ok(4, attempt, Failed);
    }
    assert_eq!(h.wo(4).state, WorkOrderState::Failed);
    match h.run(add_return(
        1,
        DetailsPatch {
            items: Some(vec![item("", 1)]),
            ..Default::default()
        },
    )) {
        Outcome::Refused(r) => {
            assert_eq!(r.code(), "ORD-422-INVALID_FIELDS");
            assert_eq!(r.details()[0].field, "addReturn.items[0].id");
        }
        other => panic!("{other:?}"),
    }
    h.ok(add_return(1, Default::default()));
    assert_eq!(h.wo(5).returns, Some(orderd_core::WorkOrderId(1)));
    // Not while a cancellation is under way; a cancelled order is closed.
    h.ok(cancel());
    assert_eq!(
        h.refused(add_return(1, Default::default())),
        "ORD-409-CANCEL_IN_PROGRESS"
    );
    let mut h = Harness::created(Sequential, &["PICKUP"]);
    h.ok(cancel());
    h.job_ok(1, 1, Cancelled);
    assert_eq!(h.order.close_reason, Some(CloseReason::Cancelled));
    assert_eq!(
        h.refused(add_return(1, Default::default())),
        "ORD-409-ORDER_IMMUTABLE"
    );
}

#[test]
fn what_a_work_orders_update_or_a_return_names_by_id_or_carries_in_full_is_listed() {
    use orderd_core::command::{DetailsPatch, InlinePersonal, Reference, StopInput};
    use orderd_core::ids::{ContactId, LocationId};

    let contact = ContactId(uuid::Uuid::from_u128(1));
    let location = LocationId(uuid::Uuid::from_u128(2));
    let patch = DetailsPatch {
        pickup: StopInput {
            contact: Some(ContactInput::Id(contact)),
            location: Some(street("9 Depot Road")),
        },
        drop: StopInput {
            contact: Some(ContactInput::Details(Contact {
                name: "Rae Porter".into(),
                phone: "+15550123".into(),
            })),
            location: Some(LocationInput::Id(location)),
        },
        ..Default::default()
    };
    // By id: each must be one the tenant's orders stored (checked by the
    // runtime), named by its field.
    assert_eq!(
        update_wo(2, patch.clone()).references(),
        [
            ("pickup.contactId".to_owned(), Reference::Contact(contact)),
            ("drop.locationId".to_owned(), Reference::Location(location)),
        ]
    );
    let fields: Vec<String> = add_return(1, patch.clone())
        .references()
        .into_iter()
        .map(|(field, _)| field)
        .collect();
    assert_eq!(
        fields,
        ["addReturn.pickup.contactId", "addReturn.drop.locationId"]
    );
    // In full: what an erase looks for in the commands a stream holds.
    for command in [update_wo(2, patch.clone()), add_return(1, patch)] {
        let inline = command.inline_personal();
        assert_eq!(inline.len(), 2, "{inline:?}");
        assert!(matches!(inline[0], InlinePersonal::Address(_)));
        assert!(matches!(inline[1], InlinePersonal::Contact(c) if c.name == "Rae Porter"));
    }
    assert!(update_wo(1, instructions("x")).references().is_empty());
}
