//! Order actors in the running service: idle actors passivate (memory stays
//! bounded), a passivated order wakes for its next command with its state
//! intact, timers fire from the snapshot after passivation (auto-close), and
//! a graceful shutdown then restart carries on where it left off.

use std::time::Duration;

use orderd::subjects::{self, Verb};
use orderd_core::TenantConfig;
use serde_json::{json, Value};
use testkit::{complete_everything, create_body, spawn_app_with};

async fn live_orders(t: &testkit::TestApp) -> u64 {
    let (_, health) = t.read(subjects::API_HEALTH, &json!({})).await;
    health["liveOrders"].as_u64().expect("live order count")
}

async fn wait_live(t: &testkit::TestApp, want: u64) {
    let deadline = tokio::time::Instant::now() + testkit::WAIT;
    loop {
        let n = live_orders(t).await;
        if n == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} live orders, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn idle_orders_passivate_and_wake_with_their_state() {
    let t = spawn_app_with(|s| s.runtime.passivate_after_ms = 500).await;
    let mut events = t.events().await;
    let mut orders = Vec::new();
    for _ in 0..5 {
        orders.push(t.create(&create_body("SEQUENTIAL", &["PICKUP"])).await);
    }
    assert!(live_orders(&t).await >= 1);
    wait_live(&t, 0).await;

    // A command for a passivated order wakes it from its snapshot.
    let held = t.command(orders[0], Verb::Hold, &json!({})).await;
    assert!(held.ok, "{held:?}");
    assert_eq!(held.seq, Some(2));
    events.wait_state(orders[0], "ON_HOLD").await;
    wait_live(&t, 0).await;
    let view = t.get(orders[0]).await;
    assert_eq!(view["state"], "ON_HOLD");
    assert_eq!(view["heldFrom"], "IN_PROGRESS");
}

#[tokio::test]
async fn auto_close_fires_from_the_snapshot_after_passivation() {
    let t = spawn_app_with(|s| {
        s.runtime.passivate_after_ms = 100;
        s.runtime.timer_sweep_ms = 100;
    })
    .await;
    let config = TenantConfig {
        auto_close_after_ms: Some(1_500),
        ..TenantConfig::default()
    };
    t.servers
        .store()
        .await
        .put_tenant_config(&t.tenant, &config)
        .await
        .unwrap();
    let mut events = t.events().await;
    let _dispatch = t.dispatcher(complete_everything()).await;
    let order = t.create(&create_body("SEQUENTIAL", &["PICKUP"])).await;
    let executed = events.wait_state(order, "EXECUTED").await;
    // The actor goes idle before the timer is due; the timer survives in
    // the snapshot and the sweeper wakes the order.
    wait_live(&t, 0).await;
    let view: Value = t.get(order).await;
    assert_eq!(
        view["state"], "EXECUTED",
        "passivated before the timer was due"
    );
    // The timer is in its tenant's set, which only the tenant's owner
    // sweeps; no other tenant's, nor the set of every tenant kept before.
    let store = t.servers.store().await;
    let later = i64::MAX / 2;
    assert_eq!(
        store.due_timers(&t.tenant, later, 10).await.unwrap(),
        vec![order]
    );
    let other = testkit::random_tenant();
    assert!(store
        .due_timers(&other, later, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(!store
        .due_timers_of_before(later, 1_000)
        .await
        .unwrap()
        .contains(&order));
    let closed = events.wait_state(order, "CLOSED").await;
    assert_eq!(closed.close_reason.as_deref(), Some("COMPLETED"));
    assert_eq!(closed.command, "fire_timers");
    assert_eq!(closed.seq, executed.seq + 1);
    let view = t.get(order).await;
    assert_eq!(view["state"], "CLOSED");
    assert!(store
        .due_timers(&t.tenant, later, 10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn graceful_shutdown_then_restart_carries_on() {
    let mut t = spawn_app_with(|_| {}).await;
    let mut events = t.events().await;
    let order = t
        .create(&create_body("SEQUENTIAL", &["PICKUP", "INSTALL"]))
        .await;
    events.wait_state(order, "IN_PROGRESS").await;
    t.stop_app().await;

    // While orderd is down, the job update is kept by JetStream.
    let mut h = async_nats::HeaderMap::new();
    h.insert(orderd::headers::NATS_MSG_ID, testkit::msg_id().as_str());
    t.js.publish_with_headers(
        subjects::job_update(
            &t.tenant,
            order,
            orderd_core::WorkOrderId(1),
            orderd_core::model::JobStatus::Completed,
        ),
        h,
        serde_json::to_vec(&testkit::job_body(1, None))
            .unwrap()
            .into(),
    )
    .await
    .unwrap()
    .await
    .expect("JetStream takes commands while orderd is down");

    let settings = t.servers.settings();
    t.app = Some(testkit::App::start(settings, &t.nats).await);
    let _dispatch = t.dispatcher(complete_everything()).await;
    events.wait_state(order, "EXECUTED").await;
    let seqs: Vec<u64> = t.history(order).await.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    t.stop_app().await;
}
