//! Tenant configuration: validation of every part, seed 002's sample payload,
//! and milestones with their monitoring rules.

mod common;

use common::{create, Harness};
use orderd_core::config::{AttributeDef, Milestone, WorkOrderType};
use orderd_core::event::Event;
use orderd_core::model::{ExecutionFlow, JobStatus, OrderState, TimerKind};
use orderd_core::{explain, Command, TenantConfig};

/// The `POST /config/attributes` sample of seed 002, as published.
const SEED_002_SAMPLE: &str = r#"{
  "attributes": [
    { "name": "maxAttempts", "dataType": "number", "indexed": false,
      "validation": { "required": false }, "defaultValue": 1, "securityLevel": "OPEN", "delete": false },
    { "name": "stringValidations", "description": "string", "indexed": true, "dataType": "string",
      "validation": { "range": { "min": 0, "max": 5 }, "regex": "string",
                      "valueOneOf": [ "string123", "string124" ], "required": false } },
    { "name": "intValidations", "description": "int", "indexed": true, "dataType": "number", "defaultValue": 1,
      "validation": { "range": { "min": 0, "max": 5 }, "valueOneOf": [ 0,1,2,3,4,5 ], "required": true } }
  ]
}"#;

#[derive(serde::Deserialize)]
struct AttributesRequest {
    attributes: Vec<AttributeDef>,
}

#[test]
fn the_seed_002_sample_attribute_payload_is_accepted_as_it_is() {
    let req: AttributesRequest = serde_json::from_str(SEED_002_SAMPLE).expect("the sample parses");
    let config = TenantConfig {
        attributes: req.attributes,
        ..TenantConfig::default()
    };
    assert_eq!(config.problems(), vec![]);
    assert!(config.attribute("intValidations").unwrap().indexed);
    assert_eq!(
        config
            .attribute("maxAttempts")
            .unwrap()
            .security_level
            .as_deref(),
        Some("OPEN")
    );
}

#[test]
fn an_invalid_configuration_lists_every_problem() {
    let mut config: TenantConfig = serde_json::from_str(r#"{
        "attributes": [
            { "name": "bad name", "dataType": "string" },
            { "name": "n", "dataType": "number", "defaultValue": 9, "validation": { "range": { "min": 5, "max": 1 } } },
            { "name": "r", "dataType": "string", "validation": { "regex": "(" } }
        ],
        "plugins": ["ok", "not ok"],
        "milestones": [
            { "name": "a", "reach": "IN_PROGRESS", "withinMs": 1000, "after": "b" },
            { "name": "b", "reach": "EXECUTED", "withinMs": 1000, "after": "a", "warnBeforeMs": 2000 }
        ]
    }"#).unwrap();
    config.work_order_types.insert(
        "X".into(),
        WorkOrderType {
            job_type: "x".into(),
            max_attempts: 0,
            return_on_failure: false,
            return_on_cancel: false,
        },
    );
    let got: Vec<(String, &str)> = config
        .problems()
        .into_iter()
        .map(|p| (p.field, p.code))
        .collect();
    for want in [
        ("attributes[0].name", "PATTERN"),
        ("attributes[1].validation.range", "RANGE"),
        ("attributes[1].defaultValue", "INVALID_DEFAULT"),
        ("attributes[2].validation.regex", "BAD_SCHEMA"),
        ("workOrderTypes.X.maxAttempts", "RANGE"),
        ("plugins[1]", "PATTERN"),
        ("milestones[1].warnBeforeMs", "RANGE"),
        ("milestones", "CYCLE"),
    ] {
        assert!(
            got.iter().any(|(f, c)| f == want.0 && *c == want.1),
            "missing {want:?} in {got:?}"
        );
    }
}

#[test]
fn unknown_configuration_fields_are_refused() {
    let r: Result<TenantConfig, _> = serde_json::from_str(r#"{ "autoCloseAfterMinutes": 5 }"#);
    assert!(r.is_err());
}

fn milestones() -> TenantConfig {
    TenantConfig {
        milestones: vec![
            Milestone {
                name: "started".into(),
                reach: OrderState::InProgress,
                within_ms: 60_000,
                after: None,
                warn_before_ms: Some(10_000),
            },
            Milestone {
                name: "executed".into(),
                reach: OrderState::Executed,
                within_ms: 5_000,
                after: Some("started".into()),
                warn_before_ms: Some(2_000),
            },
        ],
        ..TenantConfig::default()
    }
}

fn kinds(c: &orderd_core::Change) -> Vec<&'static str> {
    c.events.iter().map(Event::kind).collect()
}

#[test]
fn a_milestone_met_in_time_starts_the_milestones_counted_from_it() {
    let mut h = Harness::created_with(milestones(), create(ExecutionFlow::Sequential, &["PICKUP"]));
    // Created and started in one change: "started" is met at once.
    assert!(kinds(&h.changes[0]).contains(&"milestone_reached"));
    let executed = &h.order.milestones["executed"];
    assert!(!executed.reached);
    assert_eq!(
        h.order.timers.len(),
        2,
        "warning and due timers of the second milestone"
    );
    h.complete(1);
    assert!(h.order.milestones["executed"].reached);
    assert!(
        h.order.timers.is_empty(),
        "met milestones leave no timer behind"
    );
}

#[test]
fn a_milestone_warns_before_it_is_due_and_raises_an_event_when_missed() {
    let mut c = create(ExecutionFlow::Sequential, &["PICKUP"]);
    c.ready_to_process = false;
    let mut h = Harness::created_with(milestones(), c);
    let due = h.order.milestones["started"].due;
    assert_eq!(h.refused(Command::FireTimers), "ORD-409-NO_TIMER_DUE");
    h.now = due.0 - 10_000; // the next command is 1 s later: inside the warning window
    let c = h.ok(Command::FireTimers);
    assert!(kinds(&c).contains(&"milestone_due_soon"));
    h.now = due.0;
    let c = h.ok(Command::FireTimers);
    assert!(kinds(&c).contains(&"milestone_missed"));
    assert_eq!(
        h.refused(Command::FireTimers),
        "ORD-409-NO_TIMER_DUE",
        "each timer fires once"
    );
    let c = h.ok(Command::MarkReady);
    assert!(c
        .events
        .iter()
        .any(|e| matches!(e, Event::MilestoneReached { late: true, .. })));
}

#[test]
fn a_backlog_of_overdue_timers_fires_each_once_in_due_order() {
    let mut c = create(ExecutionFlow::Sequential, &["PICKUP"]);
    c.ready_to_process = false;
    let mut h = Harness::created_with(milestones(), c);
    h.now += 3_600_000; // long downtime: both the warning and the due time passed
    let c = h.ok(Command::FireTimers);
    let fired: Vec<_> = c
        .events
        .iter()
        .filter_map(|e| match e {
            Event::TimerFired { timer } => Some(timer.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        fired,
        vec![
            TimerKind::MilestoneWarning("started".into()),
            TimerKind::MilestoneDue("started".into())
        ]
    );
    assert_eq!(h.refused(Command::FireTimers), "ORD-409-NO_TIMER_DUE");
}

#[test]
fn explain_lists_pending_milestones() {
    let mut c = create(ExecutionFlow::Sequential, &["PICKUP"]);
    c.ready_to_process = false;
    let h = Harness::created_with(milestones(), c);
    let e = explain(&h.order, &h.config);
    assert!(
        e.waiting_for
            .iter()
            .any(|w| w.starts_with("milestone started: reach IN_PROGRESS")),
        "{:?}",
        e.waiting_for
    );
    assert_eq!(e.timers.len(), 2);
}

#[test]
fn a_cancelled_order_meets_no_milestone_and_keeps_no_timer() {
    let mut c = create(ExecutionFlow::Sequential, &["PICKUP"]);
    c.ready_to_process = false;
    let mut h = Harness::created_with(milestones(), c);
    h.ok(Command::Cancel { reason: None });
    assert!(!h.order.milestones["started"].reached);
    assert!(h.order.timers.is_empty());
    let _ = JobStatus::Started;
}

#[test]
fn the_plugin_policy_has_defaults_and_is_checked() {
    let config: TenantConfig = serde_json::from_str(r#"{ "plugins": ["fraud"] }"#).unwrap();
    assert_eq!(config.plugin_policy.timeout_ms, 2_000);
    assert_eq!(config.plugin_policy.retries, 2);
    assert_eq!(
        config.plugin_policy.on_timeout,
        orderd_core::config::OnTimeout::Fail
    );
    let bad: TenantConfig = serde_json::from_str(
        r#"{ "pluginPolicy": { "timeoutMs": 1, "retries": 99, "onTimeout": "PASS" } }"#,
    )
    .unwrap();
    let fields: Vec<String> = bad.problems().into_iter().map(|p| p.field).collect();
    assert!(fields.contains(&"pluginPolicy.timeoutMs".to_owned()));
    assert!(fields.contains(&"pluginPolicy.retries".to_owned()));
}

#[test]
fn a_retention_is_one_second_to_ten_years() {
    for (ms, ok) in [
        (None, true),
        (Some(999), false),
        (Some(1_000), true),
        (Some(orderd_core::config::MAX_RETENTION_MS), true),
        (Some(orderd_core::config::MAX_RETENTION_MS + 1), false),
    ] {
        let config = TenantConfig {
            retention_ms: ms,
            ..TenantConfig::default()
        };
        let problems = config.problems();
        assert_eq!(
            problems.iter().any(|p| p.field == "retentionMs"),
            !ok,
            "{ms:?}: {problems:?}"
        );
    }
}
