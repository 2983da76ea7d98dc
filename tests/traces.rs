//! W3C Trace Context across services: a command that carries a
//! `traceparent` is a hop of its caller's trace, and orderd is the next
//! hop. Its outcome, the events and the job commands the command caused
//! carry the same trace id, with orderd's span id as their parent; a later
//! command's messages carry that command's trace, not the first one's; a
//! malformed header is ignored (the command is decided all the same).
//! With `trace.otlp_endpoint` set, orderd exports its command span to an
//! OpenTelemetry collector (here a small OTLP/HTTP receiver in the test),
//! as a child of the caller's span, with the id its messages name.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use serde_json::json;

use orderd::headers;
use orderd::subjects::{self, Verb};
use orderd::wire::Outcome;
use testkit::servers::free_port;
use testkit::{attach, create_body, msg_id, spawn_app, stored_messages, Process, Servers, TestApp};

const CREATE_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const HOLD_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

/// Sends `body` to `subject` with `traceparent` (if any); the outcome and
/// the `traceparent` its message carried.
async fn send_traced(
    t: &TestApp,
    subject: String,
    body: serde_json::Value,
    traceparent: Option<&str>,
) -> (Outcome, Option<String>) {
    let mut h = HeaderMap::new();
    h.insert(headers::NATS_MSG_ID, msg_id().as_str());
    if let Some(tp) = traceparent {
        h.insert(headers::TRACEPARENT, tp);
    }
    let reply = t
        .send_for_reply(subject, serde_json::to_vec(&body).unwrap(), h)
        .await;
    let outcome: Outcome = serde_json::from_slice(&reply.payload).expect("an outcome");
    let tp = reply
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::TRACEPARENT))
        .map(|v| v.as_str().to_owned());
    (outcome, tp)
}

/// The `traceparent` of each message stored under `filter`, in order.
async fn stored_traceparents(t: &TestApp, stream: &str, filter: String) -> Vec<Option<String>> {
    stored_messages(&t.js, stream, filter)
        .await
        .iter()
        .map(|m| {
            m.headers
                .as_ref()
                .and_then(|h| h.get(headers::TRACEPARENT))
                .map(|v| v.as_str().to_owned())
        })
        .collect()
}

#[tokio::test]
async fn a_commands_trace_reaches_its_outcome_events_and_job_commands() {
    let t = spawn_app().await;
    let incoming = format!("00-{CREATE_TRACE}-00f067aa0ba902b7-01");
    let (created, outcome_tp) = send_traced(
        &t,
        subjects::create(&t.tenant),
        create_body("START_TOGETHER", &["PICKUP", "INSTALL"]),
        Some(&incoming),
    )
    .await;
    assert!(created.ok, "{created:?}");
    let order = orderd_core::OrderId::parse(created.order_id.as_deref().unwrap()).unwrap();

    // orderd's hop: same trace and flags, its own span id as the parent.
    let hop = outcome_tp.expect("the outcome carries the trace");
    let fields: Vec<&str> = hop.split('-').collect();
    assert_eq!(fields.len(), 4, "{hop}");
    assert_eq!(
        (fields[0], fields[1], fields[3]),
        ("00", CREATE_TRACE, "01")
    );
    assert_ne!(fields[2], "00f067aa0ba902b7", "orderd is a hop of its own");
    assert_eq!(fields[2].len(), 16);

    // A second command with another trace; a third with a malformed one.
    let (held, held_tp) = send_traced(
        &t,
        subjects::command(&t.tenant, order, Verb::Hold),
        json!({}),
        Some(&format!("00-{HOLD_TRACE}-b7ad6b7169203331-00")),
    )
    .await;
    assert!(held.ok, "{held:?}");
    assert_eq!(
        held_tp.as_deref().and_then(headers::trace_id),
        Some(HOLD_TRACE)
    );
    let (resumed, resumed_tp) = send_traced(
        &t,
        subjects::command(&t.tenant, order, Verb::Resume),
        json!({}),
        Some("not-a-traceparent"),
    )
    .await;
    assert!(
        resumed.ok,
        "a malformed traceparent is ignored: {resumed:?}"
    );
    assert_eq!(resumed_tp, None);

    // Events: created (create's trace), on hold (hold's), resumed (none).
    let events = stored_traceparents(
        &t,
        subjects::STREAM_EVENTS,
        subjects::events_of_tenant(&t.tenant),
    )
    .await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[0].as_deref(), Some(hop.as_str()));
    assert_eq!(
        events[1].as_deref().and_then(headers::trace_id),
        Some(HOLD_TRACE)
    );
    assert_eq!(events[2], None, "the resume came without a valid trace");

    // Job commands: both creates (START_TOGETHER) carry the create's hop,
    // the holds the hold's trace.
    let jobs = stored_messages(
        &t.js,
        subjects::STREAM_DISPATCH,
        subjects::dispatch_of_tenant(&t.tenant),
    )
    .await;
    let traced: BTreeSet<(String, Option<String>)> = jobs
        .iter()
        .map(|m| {
            let action = m.subject.rsplit('.').next().unwrap().to_owned();
            let trace = m
                .headers
                .as_ref()
                .and_then(|h| h.get(headers::TRACEPARENT))
                .and_then(|v| headers::trace_id(v.as_str()).map(str::to_owned));
            (action, trace)
        })
        .collect();
    assert!(
        traced.contains(&("create".into(), Some(CREATE_TRACE.into()))),
        "{traced:?}"
    );
    assert!(
        traced.contains(&("hold".into(), Some(HOLD_TRACE.into()))),
        "{traced:?}"
    );
    assert!(
        !traced.iter().any(|(a, tr)| a == "create" && tr.is_none()),
        "{traced:?}"
    );
}

/// An OTLP/HTTP receiver: every JSON body posted to `/v1/traces`.
async fn collector() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let json = serde_json::from_slice(&body).expect("OTLP/JSON");
                sink.lock().unwrap().push(json);
                "{}"
            }
        }),
    );
    let port = free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://127.0.0.1:{port}/v1/traces"), received)
}

/// Every span received, with its service name.
fn spans(received: &[serde_json::Value]) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for body in received {
        for rs in body["resourceSpans"].as_array().into_iter().flatten() {
            let service = rs["resource"]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["key"] == "service.name")
                .and_then(|a| a["value"]["stringValue"].as_str())
                .unwrap_or_default()
                .to_owned();
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for span in ss["spans"].as_array().into_iter().flatten() {
                    out.push((service.clone(), span.clone()));
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn orderds_span_joins_the_callers_trace_at_the_collector() {
    let (endpoint, received) = collector().await;
    let servers = Servers::start().await;
    let orderd = Process::start_with_env(
        &servers,
        &[
            ("ORDERD_TRACE_OTLP_ENDPOINT", endpoint.as_str()),
            ("ORDERD_TRACE_SERVICE_NAME", "orderd-under-test"),
        ],
    );
    let t = attach(servers).await;
    let caller_span = "00f067aa0ba902b7";
    let (created, hop) = send_traced(
        &t,
        subjects::create(&t.tenant),
        create_body("SEQUENTIAL", &["PICKUP"]),
        Some(&format!("00-{CREATE_TRACE}-{caller_span}-01")),
    )
    .await;
    assert!(created.ok, "{created:?}");
    let hop = hop.expect("the outcome carries orderd's hop");
    let hop_span = hop.split('-').nth(2).unwrap().to_owned();

    // A graceful stop sends the spans still batched.
    orderd.signal("TERM");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let ours = loop {
        let found = spans(&received.lock().unwrap())
            .into_iter()
            .find(|(_, span)| span["traceId"] == CREATE_TRACE);
        if let Some(found) = found {
            break found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no span of the trace reached the collector: {:?}",
            received.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (service, span) = ours;
    assert_eq!(service, "orderd-under-test");
    assert_eq!(span["name"], "command", "{span}");
    assert_eq!(
        span["parentSpanId"], caller_span,
        "a child of the caller's span: {span}"
    );
    assert_eq!(
        span["spanId"],
        hop_span.as_str(),
        "the span id orderd's messages name as their parent: {span}"
    );
    drop(orderd);
}
