//! The live dashboard in a real browser (headless chromium over WebDriver):
//! orders driven through every flow, then the page shows their counts, an
//! order's timeline reaching EXECUTED, a count that moves live without a
//! reload, and a hold sent from its button reaching ON_HOLD. Its routes
//! refuse a request without a login, a tenant the login may not read, and a
//! command from a viewer. Screenshots go to `target/dashboard/`
//! (`ORDERD_SCREENSHOTS=docs/screenshots` writes the README's).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};

use orderd::settings::Secret;
use orderd_core::model::JobStatus;
use orderd_core::OrderId;
use testkit::browser::Locator;
use testkit::servers::free_port;
use testkit::{create_body, spawn_app_with, Browser, Dispatcher, EventLog, Script, TestApp};

const OPERATOR: &str = "operator-token-0123456789";
const VIEWER: &str = "viewer-token-0123456789";

/// Completes every job except those of `KYC` work orders, which stay
/// open (their orders stay IN_PROGRESS).
fn complete_but_kyc() -> Script {
    Arc::new(|m: &orderd::wire::DispatchMessage| {
        if m.action == "create" && m.work_order_type.as_deref() != Some("KYC") {
            vec![(JobStatus::Started, None), (JobStatus::Completed, None)]
        } else {
            vec![]
        }
    })
}

/// A raw HTTP/1.1 request to the listener: the status and the JSON body.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let body = body.to_string();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.expect("read");
    let status = answer[9..12].parse().expect("a status");
    let json = answer
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b.trim()).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

fn screenshot_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    match std::env::var("ORDERD_SCREENSHOTS") {
        Ok(dir) => root.join(dir),
        Err(_) => root.join("target/dashboard"),
    }
}

/// The number a count card of the overview shows.
async fn count_is(browser: &Browser, state: &str, n: usize) {
    browser
        .wait_text(&format!("#counts [data-state=\"{state}\"] .n"), |t| {
            t == n.to_string()
        })
        .await;
}

async fn create(t: &TestApp, flow: &str, types: &[&str]) -> (OrderId, String) {
    let body = create_body(flow, types);
    let client_order = body["clientOrderId"].as_str().unwrap().to_owned();
    (t.create(&body).await, client_order)
}

#[tokio::test]
async fn the_dashboard_shows_orders_live_and_holds_from_its_button() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let t = spawn_app_with(|s| {
        s.http.listen = addr.to_string();
        s.http.dashboard_logins = vec![
            Secret::new(format!("{OPERATOR}:*:operator")),
            Secret::new(format!("{VIEWER}:somebody_else:viewer")),
        ];
    })
    .await;
    let tenant = t.tenant.to_string();
    let mut log = EventLog::subscribe(&t.nats, &t.tenant).await;
    let _dispatch = Dispatcher::start(&t.nats, &t.tenant, complete_but_kyc()).await;

    // Every flow to its end, and two orders that stay in progress.
    let mut executed = Vec::new();
    for flow in ["SEQUENTIAL", "START_TOGETHER", "COMPLETE_TOGETHER"] {
        executed.push(create(&t, flow, &["PICKUP", "INSTALL"]).await);
    }
    let (open_a, _) = create(&t, "SEQUENTIAL", &["KYC"]).await;
    let (open_b, _) = create(&t, "SEQUENTIAL", &["KYC"]).await;
    for (order, _) in &executed {
        log.wait_state(*order, "EXECUTED").await;
    }
    log.wait_state(open_b, "IN_PROGRESS").await;

    // The routes' door: a login, the login's tenants, the operator role.
    let read_counts = json!({"tenant": tenant});
    let (status, _) = http(
        addr,
        "POST",
        "/dashboard/api/read/counts",
        None,
        read_counts.clone(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, refused) = http(
        addr,
        "POST",
        "/dashboard/api/read/counts",
        Some(VIEWER),
        read_counts.clone(),
    )
    .await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["code"], "ORD-403-TENANT_NOT_ALLOWED");
    let (status, counts) = http(
        addr,
        "POST",
        "/dashboard/api/read/counts",
        Some(OPERATOR),
        read_counts,
    )
    .await;
    assert_eq!(status, 200, "{counts}");
    assert_eq!(counts["states"]["EXECUTED"], 3, "{counts}");
    let hold = json!({"tenant": "somebody_else", "orderId": open_a.to_string(), "verb": "hold"});
    let (status, refused) = http(addr, "POST", "/dashboard/api/command", Some(VIEWER), hold).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (403, Some("ORD-403-OPERATOR_ONLY"))
    );
    let (status, _) = http(
        addr,
        "POST",
        "/dashboard/api/read/config_publish",
        Some(OPERATOR),
        json!({"tenant": tenant}),
    )
    .await;
    assert_eq!(status, 404, "the page reads; it does not configure");

    // The overview, in a real browser.
    let browser = Browser::start().await;
    let base = format!("http://{addr}/dashboard?tenant={tenant}");
    browser
        .client
        .goto(&format!("{base}#token={OPERATOR}"))
        .await
        .expect("the page opens");
    count_is(&browser, "EXECUTED", 3).await;
    count_is(&browser, "IN_PROGRESS", 2).await;
    count_is(&browser, "TOTAL", 5).await;
    browser.wait_text("#live", |t| t.contains("live")).await;
    browser
        .wait_text("#waiting tbody", |t| t.contains("IN_PROGRESS"))
        .await;

    // Live: a new order moves the count without a reload.
    let (open_c, _) = create(&t, "SEQUENTIAL", &["KYC"]).await;
    count_is(&browser, "IN_PROGRESS", 3).await;
    browser
        .wait_text("#rate", |t| t.parse::<u32>().is_ok_and(|n| n >= 1))
        .await;
    let shots = screenshot_dir();
    browser
        .screenshot(&shots.join("dashboard-overview.png"))
        .await;

    // Search by client order id, then the order's page: its timeline
    // reaches EXECUTED.
    let (done, client_order) = &executed[0];
    let field = browser
        .client
        .find(Locator::Css("#q-client-order"))
        .await
        .unwrap();
    field.send_keys(client_order).await.unwrap();
    browser
        .client
        .find(Locator::Css("#search-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let row = format!("#results tr[data-order=\"{done}\"]");
    browser.wait_text(&row, |t| t.contains("EXECUTED")).await;
    browser
        .client
        .find(Locator::Css(&row))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.wait_text("#order-state", |t| t == "EXECUTED").await;
    let timeline = browser
        .wait_text("#timeline", |t| t.matches("→").count() >= 4)
        .await;
    assert!(timeline.trim_end().ends_with("EXECUTED"), "{timeline}");
    browser
        .wait_text("#work-orders tbody", |t| {
            t.contains("PICKUP") && t.contains("INSTALL")
        })
        .await;
    browser.screenshot(&shots.join("dashboard-order.png")).await;

    // An order in progress: hold from the button; the page follows live.
    browser
        .client
        .goto(&format!("{base}#/order/{open_c}"))
        .await
        .unwrap();
    browser
        .wait_text("#order-state", |t| t == "IN_PROGRESS")
        .await;
    browser.wait_text("#allowed", |t| t.contains("hold")).await;
    let hold = browser
        .client
        .find(Locator::Css("#btn-hold"))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + testkit::WAIT;
    while !hold.is_enabled().await.unwrap() {
        assert!(tokio::time::Instant::now() < deadline, "hold never enabled");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    hold.click().await.unwrap();
    browser.wait_text("#order-state", |t| t == "ON_HOLD").await;
    browser
        .wait_text("#command-result", |t| t.contains("done"))
        .await;
    browser
        .wait_text("#timeline", |t| t.trim_end().ends_with("ON_HOLD"))
        .await;
    log.wait_state(open_c, "ON_HOLD").await;
    assert_eq!(t.get(open_c).await["state"], "ON_HOLD");
    browser.screenshot(&shots.join("dashboard-hold.png")).await;

    let _ = browser.client.clone().close().await;
    let _ = open_a;
}
