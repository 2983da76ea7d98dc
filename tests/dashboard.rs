//! The live dashboard in a real browser (headless chromium over WebDriver):
//! orders driven through every flow, then the page shows their counts, the
//! last minutes' throughput read back from orderd (on a fresh load, before
//! any new event), the orders that missed a milestone, an order's timeline
//! reaching EXECUTED, a count that moves live without a reload, and a hold
//! sent from its button reaching ON_HOLD; no contact's name, phone or
//! address is ever on the page. Its routes refuse a request without a
//! login, a tenant the login may not read, and a command from a viewer; the
//! live stream takes its session cookie, not a token in the address.
//! Screenshots go to `target/dashboard/` (`ORDERD_SCREENSHOTS=docs/screenshots`
//! writes the README's).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};

use orderd::settings::Secret;
use orderd::{headers, subjects};
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

/// A raw request whose answer is read only to the end of its headers (the
/// live stream does not end): the status and the headers, lowercased.
async fn head(addr: SocketAddr, method: &str, path: &str, extra: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n{extra}\r\n");
    conn.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(testkit::WAIT, conn.read(&mut chunk))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(n > 0, "closed before its headers");
        answer.extend_from_slice(&chunk[..n]);
    }
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    (answer[9..12].parse().expect("a status"), answer)
}

/// The live session cookie a bearer token gets (`dashboard_live=…`).
async fn live_cookie(addr: SocketAddr, token: &str) -> String {
    let (status, answer) = head(
        addr,
        "POST",
        "/dashboard/api/live/session",
        &format!("Authorization: Bearer {token}\r\n"),
    )
    .await;
    assert_eq!(status, 204, "{answer}");
    let line = answer
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .expect("a cookie");
    for part in ["httponly", "samesite=strict", "path=/dashboard/api/live"] {
        assert!(line.contains(part), "{part} missing: {line}");
    }
    line.split(';')
        .next()
        .expect("name=value")
        .trim()
        .to_owned()
}

/// What must never be on the page: the contact and address every order is
/// created with (`create_body`).
const PERSONAL: [&str; 4] = ["Jane Doe", "+15550100", "1 Main St", "Springfield"];

async fn no_personal_data(browser: &Browser, what: &str) {
    let page = browser.text_and_source().await;
    for personal in PERSONAL {
        assert!(!page.contains(personal), "{personal:?} is on {what}");
    }
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
    // A milestone the orders that stay in progress miss.
    let config = json!({"tenant": tenant, "config": {"milestones": [
        {"name": "executed", "reach": "EXECUTED", "withinMs": 4000}]}});
    let (h, v) = t.read(subjects::API_CONFIG_PUBLISH, &config).await;
    assert!(
        h.and_then(|h| h.get(headers::NATS_SERVICE_ERROR).cloned())
            .is_none(),
        "{v}"
    );
    let mut log = EventLog::subscribe(&t.nats, &t.tenant).await;
    let _dispatch = Dispatcher::start(&t.nats, &t.tenant, complete_but_kyc()).await;

    // Every flow to its end, and two orders that stay in progress.
    let mut executed = Vec::new();
    for flow in ["SEQUENTIAL", "START_TOGETHER", "COMPLETE_TOGETHER"] {
        executed.push(create(&t, flow, &["PICKUP", "INSTALL"]).await);
    }
    let (open_a, open_a_client) = create(&t, "SEQUENTIAL", &["KYC"]).await;
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

    // The live stream: not with a token in the address, with the session
    // cookie an authorised request sets, and only for the login's tenants.
    let live = format!("/dashboard/api/live?tenant={tenant}");
    let (status, _) = head(addr, "GET", &format!("{live}&token={OPERATOR}"), "").await;
    assert_eq!(status, 401, "a token in the address is not a login");
    let (status, _) = head(addr, "POST", "/dashboard/api/live/session", "").await;
    assert_eq!(status, 401);
    let operator = live_cookie(addr, OPERATOR).await;
    let (status, answer) = head(addr, "GET", &live, &format!("Cookie: {operator}\r\n")).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("text/event-stream"), "{answer}");
    let viewer = live_cookie(addr, VIEWER).await;
    let (status, answer) = head(addr, "GET", &live, &format!("Cookie: {viewer}\r\n")).await;
    assert_eq!(status, 403, "another tenant's stream: {answer}");
    let (status, _) = head(
        addr,
        "GET",
        &live,
        "Cookie: dashboard_live=0123456789abcdef0123456789abcdef\r\n",
    )
    .await;
    assert_eq!(status, 401, "a session orderd did not open");

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
    // The last minutes come from orderd on load: the chart holds the
    // traffic above before the page has seen any event of its own.
    chart_from_orderd(&browser).await;
    browser.wait_text("#live", |t| t.contains("live")).await;
    browser
        .wait_text("#waiting tbody", |t| t.contains("IN_PROGRESS"))
        .await;
    // The orders in progress miss their milestone: listed on their own.
    let missed = format!("#missed tr[data-order=\"{open_a}\"][data-milestone=\"executed\"]");
    browser
        .wait_text(&missed, |t| t.contains(&open_a_client))
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
    no_personal_data(&browser, "the overview").await;

    // A reload keeps the last minutes (and opens a new live session).
    browser.client.refresh().await.expect("a reload");
    chart_from_orderd(&browser).await;
    browser.wait_text("#live", |t| t.contains("live")).await;

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
    no_personal_data(&browser, "the search results").await;
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
    no_personal_data(&browser, "an order's page").await;
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

/// Waits for the chart's first answer from orderd, then checks it holds
/// events that did not reach the page live (so came from orderd's record).
async fn chart_from_orderd(browser: &Browser) {
    browser
        .wait_attr("#chart", "data-loaded", |v| v == "history")
        .await;
    let chart = browser.client.find(Locator::Css("#chart")).await.unwrap();
    let number = |v: Option<String>| v.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let events = number(chart.attr("data-events").await.unwrap());
    let live = number(chart.attr("data-live-events").await.unwrap());
    assert!(
        events >= live + 10,
        "the chart holds {events} events, {live} of them seen live"
    );
}
