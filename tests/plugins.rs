//! Validation plugins as real NATS services (the async-nats Services API):
//! an order waits in INITIATED for every plugin, a rejection closes it as
//! VALIDATION_FAILED with the reasons, a timeout follows the policy, a slow
//! plugin delays no other order, and a restart asks again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::service::ServiceExt;
use futures::StreamExt;
use orderd::headers;
use orderd::subjects;
use orderd::wire::{PluginReply, PluginRequest};
use orderd_core::event::Event;
use serde_json::{json, Value};
use testkit::{create_body, spawn_app, App, TestApp};

/// How a test plugin answers one request: `None` never answers.
type Answer = Arc<dyn Fn(&PluginRequest) -> Option<(Duration, PluginReply)> + Send + Sync>;

/// Starts a plugin service for the tenant; returns how many requests it got.
async fn plugin(t: &TestApp, name: &str, answer: Answer) -> Arc<AtomicUsize> {
    let service = t
        .nats
        .service_builder()
        .description("a test validation plugin")
        .start(format!("plugin-{name}"), "1.0.0")
        .await
        .expect("plugin service starts");
    let mut endpoint = service
        .endpoint_builder()
        .name("validate")
        .add(subjects::plugin_validate(&t.tenant, name))
        .await
        .expect("plugin endpoint");
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    tokio::spawn(async move {
        let _service = service; // lives as long as the endpoint
        while let Some(request) = endpoint.next().await {
            count.fetch_add(1, Ordering::SeqCst);
            let Ok(req) = serde_json::from_slice::<PluginRequest>(&request.message.payload) else {
                continue;
            };
            let Some((delay, reply)) = answer(&req) else {
                continue;
            };
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let body = serde_json::to_vec(&reply).unwrap();
                let _ = request.respond(Ok(body.into())).await;
            });
        }
    });
    t.nats.flush().await.unwrap();
    asked
}

fn accept() -> Option<(Duration, PluginReply)> {
    Some((
        Duration::ZERO,
        PluginReply {
            ok: true,
            reasons: vec![],
        },
    ))
}

async fn publish(t: &TestApp, config: Value) {
    let body = json!({"tenant": t.tenant.as_str(), "config": config});
    let (h, v) = t.read(subjects::API_CONFIG_PUBLISH, &body).await;
    assert!(
        h.and_then(|h| h.get(headers::NATS_SERVICE_ERROR).cloned())
            .is_none(),
        "{v}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
}

fn body_with_client_order_id(id: &str) -> Value {
    let mut b = create_body("SEQUENTIAL", &["PICKUP"]);
    b["clientOrderId"] = json!(id);
    b
}

#[tokio::test]
async fn an_order_waits_for_every_plugin_and_a_rejection_closes_it_with_the_reasons() {
    let t = spawn_app().await;
    publish(&t, json!({"plugins": ["fraud", "credit"]})).await;
    let fraud = plugin(&t, "fraud", Arc::new(|_| accept())).await;
    let credit = plugin(
        &t,
        "credit",
        Arc::new(|req: &PluginRequest| {
            let bad = req.order.client_order_id.starts_with("BAD");
            Some((
                Duration::from_millis(200),
                PluginReply {
                    ok: !bad,
                    reasons: if bad {
                        vec!["credit limit exceeded".into(), "account on hold".into()]
                    } else {
                        vec![]
                    },
                },
            ))
        }),
    )
    .await;
    let mut events = t.events().await;

    let good = t.create(&body_with_client_order_id("GOOD-1")).await;
    let bad = t.create(&body_with_client_order_id("BAD-1")).await;
    // Registered, and waiting: the create's own event is INITIATED.
    let first = events
        .wait_for("good registered", |e| {
            e.order_id == good.to_string() && e.seq == 1
        })
        .await;
    assert_eq!(first.state, "INITIATED");

    events.wait_state(good, "IN_PROGRESS").await;
    let closed = events.wait_state(bad, "CLOSED").await;
    assert_eq!(closed.close_reason.as_deref(), Some("VALIDATION_FAILED"));
    let reasons = closed
        .events
        .iter()
        .find_map(|e| match e {
            Event::ValidationFailed { plugin, reasons } => Some((plugin.clone(), reasons.clone())),
            _ => None,
        })
        .expect("a validation_failed event");
    assert_eq!(
        reasons,
        (
            "credit".to_owned(),
            vec![
                "credit limit exceeded".to_owned(),
                "account on hold".to_owned()
            ]
        )
    );
    assert_eq!(fraud.load(Ordering::SeqCst), 2);
    assert_eq!(credit.load(Ordering::SeqCst), 2);
    // The verdicts are commands with deterministic ids.
    let history = t.history(good).await;
    let ids: Vec<&str> = history.iter().map(|e| e.command_id.as_str()).collect();
    assert!(
        ids.contains(&format!("plugin:fraud:{good}").as_str()),
        "{ids:?}"
    );
    assert!(
        ids.contains(&format!("plugin:credit:{good}").as_str()),
        "{ids:?}"
    );
}

#[tokio::test]
async fn a_plugin_that_never_answers_follows_the_timeout_policy() {
    let t = spawn_app().await;
    let silent = plugin(&t, "silent", Arc::new(|_| None)).await;
    let mut events = t.events().await;

    publish(
        &t,
        json!({"plugins": ["silent"],
               "pluginPolicy": {"timeoutMs": 150, "retries": 2, "onTimeout": "FAIL"}}),
    )
    .await;
    let failed = t.create(&body_with_client_order_id("F-1")).await;
    let closed = events.wait_state(failed, "CLOSED").await;
    assert_eq!(closed.close_reason.as_deref(), Some("VALIDATION_FAILED"));
    assert!(closed.events.iter().any(|e| matches!(e,
        Event::ValidationFailed { reasons, .. } if reasons == &["plugin silent did not answer".to_owned()])));
    assert_eq!(
        silent.load(Ordering::SeqCst),
        3,
        "asked once and retried twice"
    );

    publish(
        &t,
        json!({"plugins": ["silent"],
               "pluginPolicy": {"timeoutMs": 150, "retries": 0, "onTimeout": "PASS"}}),
    )
    .await;
    let passed = t.create(&body_with_client_order_id("P-1")).await;
    events.wait_state(passed, "IN_PROGRESS").await;
}

#[tokio::test]
async fn a_slow_plugin_delays_no_other_order() {
    let t = spawn_app().await;
    publish(
        &t,
        json!({"plugins": ["careful"], "pluginPolicy": {"timeoutMs": 10000}}),
    )
    .await;
    plugin(
        &t,
        "careful",
        Arc::new(|req: &PluginRequest| {
            let slow = req.order.client_order_id.starts_with("SLOW");
            Some((
                Duration::from_millis(if slow { 2_500 } else { 0 }),
                PluginReply {
                    ok: true,
                    reasons: vec![],
                },
            ))
        }),
    )
    .await;
    let mut events = t.events().await;
    let slow = t.create(&body_with_client_order_id("SLOW-1")).await;
    let bodies: Vec<Value> = (0..5)
        .map(|i| body_with_client_order_id(&format!("FAST-{i}")))
        .collect();
    let fast: Vec<_> = futures::future::join_all(bodies.iter().map(|b| t.create(b))).await;
    for f in &fast {
        events.wait_state(*f, "IN_PROGRESS").await;
    }
    assert_eq!(t.get(slow).await["state"], "INITIATED", "still waiting");
    events.wait_state(slow, "IN_PROGRESS").await;
}

#[tokio::test]
async fn an_initiated_order_asks_again_after_a_restart() {
    let mut t = spawn_app().await;
    // A long timeout: within this test only a restart asks again.
    publish(
        &t,
        json!({"plugins": ["late"], "pluginPolicy": {"timeoutMs": 60000}}),
    )
    .await;
    let order = t.create(&body_with_client_order_id("R-1")).await;
    assert_eq!(t.get(order).await["state"], "INITIATED");
    t.stop_app().await;

    let asked = plugin(&t, "late", Arc::new(|_| accept())).await;
    let mut events = t.events().await;
    t.app = Some(App::start(t.servers.settings(), &t.nats).await);
    events.wait_state(order, "IN_PROGRESS").await;
    assert_eq!(asked.load(Ordering::SeqCst), 1);
}
