//! Milestones and monitoring rules end to end: a warning before a milestone
//! is due and an event when it is missed, pending timers in explain, timers
//! kept in the snapshot that fire once after orderd is killed with SIGKILL,
//! and a backlog of overdue timers worked off at a bounded rate.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use orderd::headers;
use orderd::subjects;
use orderd_core::event::Event;
use orderd_core::OrderId;
use serde_json::{json, Value};
use testkit::{create_body, spawn_app, Process, Servers, TestApp};

async fn publish(t: &TestApp, config: Value) {
    let body = json!({"tenant": t.tenant.as_str(), "config": config});
    let (h, v) = t.read(subjects::API_CONFIG_PUBLISH, &body).await;
    assert!(
        h.and_then(|h| h.get(headers::NATS_SERVICE_ERROR).cloned())
            .is_none(),
        "{v}"
    );
}

async fn explain(t: &TestApp, order: OrderId) -> Value {
    let (_, v) = t
        .read(
            subjects::API_EXPLAIN,
            &json!({"tenant": t.tenant.as_str(), "orderId": order.to_string()}),
        )
        .await;
    v
}

/// How many events of each milestone kind the order's history holds.
async fn milestone_events(t: &TestApp, order: OrderId) -> BTreeMap<&'static str, usize> {
    let mut out = BTreeMap::new();
    for message in t.history(order).await {
        for e in &message.events {
            let kind = match e {
                Event::MilestoneDueSoon { .. } => "due_soon",
                Event::MilestoneMissed { .. } => "missed",
                Event::MilestoneReached { .. } => "reached",
                _ => continue,
            };
            *out.entry(kind).or_insert(0) += 1;
        }
    }
    out
}

fn is_missed(e: &orderd::wire::EventMessage) -> bool {
    e.events
        .iter()
        .any(|x| matches!(x, Event::MilestoneMissed { .. }))
}

#[tokio::test]
async fn a_warning_comes_before_the_due_time_and_a_missed_milestone_is_an_event() {
    let t = spawn_app().await;
    publish(
        &t,
        json!({"milestones": [{"name": "executed", "reach": "EXECUTED",
                               "withinMs": 1500, "warnBeforeMs": 1000}]}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut events = t.events().await;
    // No dispatcher: the order stays IN_PROGRESS and misses the milestone.
    let order = t.create(&create_body("SEQUENTIAL", &["PICKUP"])).await;
    let pending = explain(&t, order).await;
    let kinds: Vec<String> = pending["timers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].to_string())
        .collect();
    assert_eq!(kinds.len(), 2, "the warning and the due time: {pending}");

    let soon = events
        .wait_for("due soon", |e| {
            e.order_id == order.to_string()
                && e.events
                    .iter()
                    .any(|x| matches!(x, Event::MilestoneDueSoon { .. }))
        })
        .await;
    let missed = events
        .wait_for("missed", |e| {
            e.order_id == order.to_string() && is_missed(e)
        })
        .await;
    assert!(soon.seq < missed.seq);
    let after = explain(&t, order).await;
    assert_eq!(after["timers"], json!([]), "nothing pending: {after}");
    let counts = milestone_events(&t, order).await;
    assert_eq!(counts.get("due_soon"), Some(&1));
    assert_eq!(counts.get("missed"), Some(&1));
}

#[tokio::test]
async fn timers_survive_a_kill_9_and_a_backlog_fires_each_once_at_a_bounded_rate() {
    const ORDERS: usize = 20;
    let servers = Servers::start().await;
    let first = Process::start(&servers);
    let t = testkit::client_for(servers).await;
    testkit::wait_healthy(&t.nats).await;
    publish(
        &t,
        json!({"milestones": [{"name": "started", "reach": "EXECUTED", "withinMs": 1000}]}),
    )
    .await;
    let mut orders = Vec::new();
    for _ in 0..ORDERS {
        orders.push(t.create(&create_body("SEQUENTIAL", &["PICKUP"])).await);
    }
    let created = Instant::now();
    assert_eq!(
        explain(&t, orders[0]).await["timers"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // SIGKILL before any timer is due: nothing in memory survives.
    first.kill9();
    tokio::time::sleep(Duration::from_millis(1_500).saturating_sub(created.elapsed())).await;

    // Every timer is now overdue. 10 a second, swept every 100 ms: one
    // order per sweep.
    let mut events = t.events().await;
    let _second = Process::start_with_env(
        &t.servers,
        &[
            ("ORDERD_TIMER_FIRE_PER_SEC", "10"),
            ("ORDERD_TIMER_SWEEP_MS", "100"),
        ],
    );
    testkit::wait_healthy(&t.nats).await;
    let mut fired_at = Vec::new();
    for order in &orders {
        let id = order.to_string();
        events
            .wait_for("missed", |e| e.order_id == id && is_missed(e))
            .await;
    }
    // Arrival order is not firing order; read the firing times back.
    for order in &orders {
        let history = t.history(*order).await;
        let missed = history.iter().find(|e| is_missed(e)).expect("missed");
        fired_at.push(missed.at.clone());
    }
    fired_at.sort();
    let ms = |s: &str| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .unwrap()
            .unix_timestamp_nanos()
            / 1_000_000
    };
    let spread = ms(&fired_at[ORDERS - 1]) - ms(&fired_at[0]);
    assert!(
        spread >= 1_200,
        "{ORDERS} overdue orders at 10/s should take about 2 s, took {spread} ms"
    );
    // Each fired once, and nothing fires again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for order in &orders {
        let counts = milestone_events(&t, *order).await;
        assert_eq!(counts.get("missed"), Some(&1), "{order}: {counts:?}");
        assert_eq!(explain(&t, *order).await["timers"], json!([]));
    }
}
