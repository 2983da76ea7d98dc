//! W3C Trace Context across services: a command that carries a
//! `traceparent` is a hop of its caller's trace, and orderd is the next
//! hop. Its outcome, the events and the job commands the command caused
//! carry the same trace id, with orderd's span id as their parent; a later
//! command's messages carry that command's trace, not the first one's; a
//! malformed header is ignored (the command is decided all the same).

use std::collections::BTreeSet;

use async_nats::HeaderMap;
use serde_json::json;

use orderd::headers;
use orderd::subjects::{self, Verb};
use orderd::wire::Outcome;
use testkit::{create_body, msg_id, spawn_app, stored_messages, TestApp};

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
