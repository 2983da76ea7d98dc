//! The same command twice is applied once: inside the stream's duplicate
//! window JetStream drops the second copy; after it, the order's own record
//! of applied command ids answers "duplicate" and changes nothing.

use std::time::Duration;

use async_nats::HeaderMap;
use orderd::headers;
use orderd::subjects::{self, Verb};
use orderd_core::model::JobStatus;
use orderd_core::{OrderId, WorkOrderId};
use serde_json::{json, Value};
use testkit::{create_body, msg_id, spawn_app_with, TestApp};

/// Publishes without waiting for an outcome; returns whether the stream
/// called it a duplicate.
async fn publish(t: &TestApp, subject: String, body: &Value, id: &str) -> bool {
    let mut h = HeaderMap::new();
    h.insert(headers::NATS_MSG_ID, id);
    t.js.publish_with_headers(subject, h, serde_json::to_vec(body).unwrap().into())
        .await
        .unwrap()
        .await
        .unwrap()
        .duplicate
}

#[tokio::test]
async fn a_repeat_inside_the_window_is_dropped_by_the_stream() {
    let t = spawn_app_with(|_| {}).await;
    let mut events = t.events().await;
    let create_id = msg_id();
    let body = create_body("SEQUENTIAL", &["PICKUP"]);
    let first = t.send(subjects::create(&t.tenant), &body, &create_id).await;
    assert!(first.ok && !first.duplicate);
    let order = OrderId::parse(first.order_id.as_deref().unwrap()).unwrap();
    assert!(publish(&t, subjects::create(&t.tenant), &body, &create_id).await);
    // The stream dropped the repeat, so no Outcome comes on a reply subject;
    // the outcome endpoint tells the client what became of its create.
    let (_, known) = t
        .read(
            subjects::API_OUTCOME,
            &json!({"tenant": t.tenant.as_str(), "commandId": create_id}),
        )
        .await;
    assert_eq!(known["ok"], json!(true), "{known}");
    assert_eq!(known["duplicate"], json!(true));
    assert_eq!(known["orderId"], json!(order.to_string()));
    let (headers, unknown) = t
        .read(
            subjects::API_OUTCOME,
            &json!({"tenant": t.tenant.as_str(), "commandId": "never-sent", "orderId": order.to_string()}),
        )
        .await;
    assert_eq!(
        unknown["code"],
        json!("ORD-404-COMMAND_NOT_APPLIED"),
        "{unknown}"
    );
    assert!(headers
        .unwrap()
        .get(headers::NATS_SERVICE_ERROR_CODE)
        .is_some());

    let hold_id = msg_id();
    let held = t
        .send(
            subjects::command(&t.tenant, order, Verb::Hold),
            &json!({}),
            &hold_id,
        )
        .await;
    assert!(held.ok);
    assert!(
        publish(
            &t,
            subjects::command(&t.tenant, order, Verb::Hold),
            &json!({}),
            &hold_id
        )
        .await
    );

    // A later command goes through, and its event follows the hold's: the
    // doubles never reached the order.
    let resumed = t.command(order, Verb::Resume, &json!({})).await;
    assert!(resumed.ok);
    assert_eq!(resumed.seq, Some(3));
    events.wait_state(order, "IN_PROGRESS").await;
    let seqs: Vec<u64> = t.history(order).await.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
}

#[tokio::test]
async fn a_repeat_after_the_window_is_answered_as_a_duplicate() {
    let t = spawn_app_with(|s| s.nats.duplicate_window_secs = 1).await;
    let create_id = msg_id();
    let body = create_body("SEQUENTIAL", &["PICKUP"]);
    let first = t.send(subjects::create(&t.tenant), &body, &create_id).await;
    assert!(first.ok && !first.duplicate);
    let order = OrderId::parse(first.order_id.as_deref().unwrap()).unwrap();
    let hold_id = msg_id();
    let held = t
        .send(
            subjects::command(&t.tenant, order, Verb::Hold),
            &json!({}),
            &hold_id,
        )
        .await;
    assert!(held.ok);
    assert_eq!(held.seq, Some(2));
    let started_id = testkit::job_msg_id(order, 1, 1, JobStatus::Started);
    let job_subject = subjects::job_update(&t.tenant, order, WorkOrderId(1), JobStatus::Started);
    let started = t
        .send(
            job_subject.clone(),
            &testkit::job_body(1, None),
            &started_id,
        )
        .await;
    assert!(started.ok);
    assert_eq!(started.seq, Some(3));

    // Let the stream forget the ids (its window is one second).
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let again = t.send(subjects::create(&t.tenant), &body, &create_id).await;
    assert!(again.ok && again.duplicate, "{again:?}");
    assert_eq!(
        again.order_id, first.order_id,
        "the same order, not a new one"
    );
    assert_eq!(again.seq, Some(3));

    let again = t
        .send(
            subjects::command(&t.tenant, order, Verb::Hold),
            &json!({}),
            &hold_id,
        )
        .await;
    assert!(again.ok && again.duplicate, "{again:?}");
    let again = t
        .send(job_subject, &testkit::job_body(1, None), &started_id)
        .await;
    assert!(again.ok && again.duplicate, "{again:?}");

    let view = t.get(order).await;
    assert_eq!(view["seq"], 3);
    let seqs: Vec<u64> = t.history(order).await.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
}

/// A refused command sent again (its copy redelivered after a crash, or
/// re-published after the window) gets the answer it got, even when the
/// order has since moved to a state where it would pass: its client was
/// told it was refused. The outcome endpoint reports the refusal too.
#[tokio::test]
async fn a_refusal_repeated_after_the_order_moved_on_is_the_same_refusal() {
    let t = spawn_app_with(|s| s.nats.duplicate_window_secs = 1).await;
    let created = t
        .send(
            subjects::create(&t.tenant),
            &create_body("SEQUENTIAL", &["PICKUP"]),
            &msg_id(),
        )
        .await;
    let order = OrderId::parse(created.order_id.as_deref().unwrap()).unwrap();
    let resume = subjects::command(&t.tenant, order, Verb::Resume);
    let resume_id = msg_id();
    let refused = t.send(resume.clone(), &json!({}), &resume_id).await;
    assert!(!refused.ok, "a resume of an order not on hold: {refused:?}");
    let code = refused.error.as_ref().unwrap().code.clone();
    assert_eq!(code, "ORD-409-NOT_ON_HOLD");

    let held = t.command(order, Verb::Hold, &json!({})).await;
    assert!(held.ok);
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    // On the held order a new resume would pass; this one is refused again.
    let again = t.send(resume, &json!({}), &resume_id).await;
    assert!(!again.ok, "{again:?}");
    assert_eq!(again.error.as_ref().unwrap().code, code);
    let seqs: Vec<u64> = t.history(order).await.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2], "the repeat changed nothing");

    let (headers, answer) = t
        .read(
            subjects::API_OUTCOME,
            &json!({"tenant": t.tenant.as_str(), "commandId": resume_id, "orderId": order.to_string()}),
        )
        .await;
    assert!(headers.is_none_or(|h| h.get(headers::NATS_SERVICE_ERROR_CODE).is_none()));
    assert_eq!(answer["ok"], json!(false), "{answer}");
    assert_eq!(answer["error"]["code"], json!(code));
    assert_eq!(answer["orderId"], json!(order.to_string()));
}
