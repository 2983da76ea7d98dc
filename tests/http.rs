//! orderd's HTTP listener: off unless `http.listen` names an address; when
//! on, `/healthz` answers while orderd runs, and the listener goes with it.

use testkit::servers::free_port;
use testkit::{http_get, spawn_app_with};

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
