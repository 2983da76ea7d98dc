//! orderd's HTTP listener: off unless `http.listen` names an address; when
//! on, `/healthz` answers while orderd runs, and the listener goes with it;
//! `/readyz` says whether each dependency answers; `/metrics` moves with
//! the traffic, counts Redis reconnects, and shows timers due until they
//! fire.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};

use orderd::settings::Settings;
use orderd::subjects::Verb;
use testkit::servers::free_port;
use testkit::{create_body, http_get, sample, scrape, spawn_app_with, App, TestApp, WAIT};

/// orderd with its HTTP listener on a free port, and the port's address.
async fn with_listener() -> (TestApp, SocketAddr) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let app = spawn_app_with(|s| s.http.listen = format!("127.0.0.1:{port}")).await;
    (app, addr)
}

/// `GET path` as JSON, with its status.
async fn get_json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let answer = http_get(addr, path).await.expect("an answer");
    let body = serde_json::from_str(&answer.body).expect("json");
    (answer.status, body)
}

#[tokio::test]
async fn healthz_answers_while_orderd_runs_and_stops_with_it() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut app = spawn_app_with(|s| s.http.listen = format!("127.0.0.1:{port}")).await;

    let live = http_get(addr, "/healthz").await.expect("an answer");
    assert_eq!(live.status, 200, "{live:?}");
    let body: serde_json::Value = serde_json::from_str(&live.body).expect("json");
    assert_eq!(body["status"], "ok");
    let missing = http_get(addr, "/nothing-here").await.expect("an answer");
    assert_eq!(missing.status, 404);

    app.app.take().expect("orderd").stop().await;
    assert!(
        http_get(addr, "/healthz").await.is_none(),
        "the listener stops with orderd"
    );
}

#[tokio::test]
async fn a_bad_listen_address_is_refused_at_load() {
    let e = orderd::settings::Settings::load_with(None, |k| {
        (k == "ORDERD_HTTP_LISTEN").then(|| "not-an-address".to_owned())
    })
    .unwrap_err();
    assert!(e.to_string().contains("http.listen"), "{e}");
}

#[tokio::test]
async fn readyz_names_the_dependency_that_does_not_answer() {
    let (mut t, addr) = with_listener().await;
    let (status, ready) = get_json(addr, "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["status"], "ready");
    let names: Vec<&str> = ready["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    for expected in ["nats", "redis", "stream ORDERD_CMD", "stream ORDERD_EVT"] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    assert!(
        names.iter().any(|n| n.starts_with("consumer ORDERD_CMD/")),
        "{names:?}"
    );

    t.servers.kill_redis();
    let (status, ready) = get_json(addr, "/readyz").await;
    assert_eq!(status, 503, "{ready}");
    let failed: Vec<&Value> = ready["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "only redis fails: {ready}");
    assert_eq!(failed[0]["name"], "redis");
    assert!(failed[0]["error"].as_str().is_some_and(|e| !e.is_empty()));
    // Live all the same: an orchestrator must not restart orderd for it.
    let (status, _) = get_json(addr, "/healthz").await;
    assert_eq!(status, 200);

    t.servers.start_redis().await;
    ready_again(addr, "redis is back").await;
    // The connection was re-established, and counted.
    let reconnects = "orderd_redis_reconnects_total";
    let counted = until(|| async { sample(&scrape(addr).await, reconnects) >= 1.0 }).await;
    assert!(
        counted,
        "{reconnects} after redis restarted: {}",
        scrape(addr).await
    );

    // NATS restarted: orderd reconnects, is ready again, and counts it.
    let disconnected = r#"orderd_nats_connection_events_total{event="disconnected"}"#;
    let before = sample(&scrape(addr).await, disconnected);
    t.servers.restart_nats().await;
    ready_again(addr, "nats is back").await;
    let after = scrape(addr).await;
    assert!(sample(&after, disconnected) > before, "{after}");
}

/// Whether `check` comes true within [`WAIT`], asking every 100 ms.
async fn until<F, Fut>(check: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Waits until `/readyz` answers 200 again.
async fn ready_again(addr: SocketAddr, why: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, ready) = get_json(addr, "/readyz").await;
        if status == 200 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ready again once {why}: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn metrics_move_with_the_traffic() {
    let (t, addr) = with_listener().await;
    let before = scrape(addr).await;
    let created = r#"orderd_commands_total{verb="create",outcome="applied"}"#;
    let held = r#"orderd_commands_total{verb="hold",outcome="applied"}"#;
    let refused = r#"orderd_commands_total{verb="resume",outcome="refused"}"#;
    let persisted = r#"orderd_stage_seconds_count{stage="persist"}"#;

    let mut orders = Vec::new();
    for _ in 0..3 {
        orders.push(t.create(&create_body("SEQUENTIAL", &["PICKUP"])).await);
    }
    assert!(t.command(orders[0], Verb::Hold, &json!({})).await.ok);
    // Resuming an order that is not on hold is refused.
    assert!(!t.command(orders[1], Verb::Resume, &json!({})).await.ok);

    let after = scrape(addr).await;
    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    assert!(moved(created) >= 3.0, "{after}");
    assert!(moved(held) >= 1.0, "{after}");
    assert!(moved(refused) >= 1.0, "{after}");
    assert!(moved(persisted) >= 4.0, "{after}");
    assert!(sample(&after, "orderd_actors_live") >= 1.0, "{after}");
    assert!(sample(&after, "orderd_tenants_owned") >= 1.0, "{after}");
    let backlog = format!(
        r#"orderd_lane_backlog{{tenant="{}",lane="cmd"}}"#,
        t.tenant.as_str()
    );
    assert!(after.contains(&backlog), "{backlog} in {after}");
    assert!(after.contains("# HELP orderd_commands_total"), "{after}");
    assert!(
        after.contains(r#"orderd_stage_seconds_bucket{stage="publish",le="0.001"}"#),
        "histograms with buckets: {after}"
    );
}

#[tokio::test]
async fn timers_due_show_until_they_fire() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // A slow sweep: a count it records stands for two seconds.
    let adjust = |s: &mut Settings| {
        s.http.listen = addr.to_string();
        s.runtime.timer_sweep_ms = 2_000;
    };
    let mut t = spawn_app_with(adjust).await;
    t.publish_config(&json!({"milestones": [
        {"name": "executed", "reach": "EXECUTED", "withinMs": 3000}
    ]}))
    .await;
    // No dispatcher: the order stays IN_PROGRESS, its milestone timer
    // due 3 s after it was created.
    let created = tokio::time::Instant::now();
    let order = t.create(&create_body("SEQUENTIAL", &["PICKUP"])).await;
    let series = format!(r#"orderd_timers_due{{tenant="{}"}}"#, t.tenant.as_str());
    assert_eq!(sample(&scrape(addr).await, &series), 0.0, "not due yet");

    // orderd stops before the timer is due, and starts again after: the
    // sweep finds it due, counts it, then wakes the order, which fires it.
    t.stop_app().await;
    tokio::time::sleep_until(created + Duration::from_millis(3_500)).await;
    let mut settings = t.servers.settings();
    adjust(&mut settings);
    t.app = Some(App::start(settings, &t.nats).await);
    let shown = until(|| async { sample(&scrape(addr).await, &series) >= 1.0 }).await;
    assert!(shown, "{series} while overdue: {}", scrape(addr).await);
    let fired =
        until(|| async { t.get(order).await["milestones"]["executed"]["missed"] == json!(true) })
            .await;
    assert!(fired, "the timer fired: {}", t.get(order).await);
    let cleared = until(|| async { sample(&scrape(addr).await, &series) == 0.0 }).await;
    assert!(cleared, "{series} once fired: {}", scrape(addr).await);
}
