//! The lifecycle edges end to end: hold and resume, cancellation answered
//! with cancelled and with cancel_failed, a failed job retried then returned,
//! and readyToProcess false then ready.

use std::sync::Arc;

use orderd::subjects::Verb;
use orderd::wire::DispatchMessage;
use orderd_core::model::JobStatus;
use serde_json::json;
use testkit::{create_body, spawn_app, Script};

/// Starts every job and leaves it running.
fn start_only() -> Script {
    Arc::new(|m: &DispatchMessage| {
        if m.action == "create" {
            vec![(JobStatus::Started, None)]
        } else {
            vec![]
        }
    })
}

#[tokio::test]
async fn hold_then_resume_holds_and_resumes_the_job() {
    let t = spawn_app().await;
    let mut events = t.events().await;
    let dispatch = t.dispatcher(start_only()).await;
    let order = t.create(&create_body("SEQUENTIAL", &["INSTALL"])).await;
    events
        .wait_for("job started", |e| {
            e.order_id == order.to_string()
                && e.events
                    .iter()
                    .any(|ev| matches!(ev, orderd_core::Event::JobStarted { .. }))
        })
        .await;

    let held = t
        .command(order, Verb::Hold, &json!({"reason": "customer asked"}))
        .await;
    assert!(held.ok, "{held:?}");
    assert_eq!(held.state.as_deref(), Some("ON_HOLD"));
    // A second hold is a warning and changes nothing.
    let again = t.command(order, Verb::Hold, &json!({})).await;
    assert!(!again.ok);
    let error = again.error.expect("an error");
    assert_eq!(error.code, "ORD-409-ALREADY_ON_HOLD");
    assert_eq!(error.kind, "Warning");

    let resumed = t.command(order, Verb::Resume, &json!({})).await;
    assert!(resumed.ok, "{resumed:?}");
    assert_eq!(resumed.state.as_deref(), Some("IN_PROGRESS"));
    events.wait_state(order, "IN_PROGRESS").await;

    // Dispatch was told to hold, then to resume, the same attempt.
    let deadline = tokio::time::Instant::now() + testkit::WAIT;
    loop {
        let actions = dispatch.actions_of(order);
        if actions.contains_key(&(1, 1, "resume".into())) {
            assert_eq!(actions.get(&(1, 1, "hold".into())), Some(&1));
            assert_eq!(actions.get(&(1, 1, "create".into())), Some(&1));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{actions:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let done = t.job(order, 1, 1, JobStatus::Completed, None).await;
    assert!(done.ok, "{done:?}");
    events.wait_state(order, "EXECUTED").await;
}

#[tokio::test]
async fn cancellation_answered_cancelled_closes_the_order() {
    let t = spawn_app().await;
    let mut events = t.events().await;
    let _dispatch = t.dispatcher(testkit::start_and_confirm_cancels()).await;
    let order = t
        .create_all_started(&mut events, &["INSTALL", "PICKUP"])
        .await;
    let cancel = t
        .command(order, Verb::Cancel, &json!({"reason": "changed mind"}))
        .await;
    assert!(cancel.ok, "{cancel:?}");
    // While the cancels are out, a second cancel is refused.
    let again = t.command(order, Verb::Cancel, &json!({})).await;
    let code = again.error.map(|e| e.code);
    assert!(
        code.as_deref() == Some("ORD-409-CANCEL_IN_PROGRESS")
            || code.as_deref() == Some("ORD-409-ALREADY_CANCELLED"),
        "{code:?}"
    );

    let closed = events.wait_state(order, "CLOSED").await;
    assert_eq!(closed.close_reason.as_deref(), Some("CANCELLED"));
    let view = t.get(order).await;
    assert_eq!(view["cancellation"]["status"], "SUCCESS");
    assert_eq!(view["cancellation"]["requested"], true);
}

#[tokio::test]
async fn cancellation_answered_cancel_failed_lets_the_order_carry_on() {
    let t = spawn_app().await;
    let mut events = t.events().await;
    let _dispatch = t
        .dispatcher(Arc::new(|m: &DispatchMessage| match m.action.as_str() {
            "create" => vec![(JobStatus::Started, None)],
            "cancel" => vec![(JobStatus::CancelFailed, Some("ALREADY_ON_SITE".into()))],
            _ => vec![],
        }))
        .await;
    let order = t.create(&create_body("SEQUENTIAL", &["INSTALL"])).await;
    events
        .wait_for("job started", |e| {
            e.order_id == order.to_string()
                && e.events
                    .iter()
                    .any(|ev| matches!(ev, orderd_core::Event::JobStarted { .. }))
        })
        .await;
    let cancel = t.command(order, Verb::Cancel, &json!({})).await;
    assert!(cancel.ok, "{cancel:?}");
    events
        .wait_for("cancellation failed", |e| {
            e.order_id == order.to_string()
                && e.events
                    .iter()
                    .any(|ev| matches!(ev, orderd_core::Event::CancellationFailed { .. }))
        })
        .await;
    let view = t.get(order).await;
    assert_eq!(view["state"], "IN_PROGRESS");
    assert_eq!(view["cancellation"]["status"], "FAILED");
    assert_eq!(view["cancellation"]["failureReasonCode"], "ALREADY_ON_SITE");

    // The order carries on and executes.
    let done = t.job(order, 1, 1, JobStatus::Completed, None).await;
    assert!(done.ok, "{done:?}");
    events.wait_state(order, "EXECUTED").await;
}

#[tokio::test]
async fn a_failed_delivery_is_retried_then_returned() {
    let t = spawn_app().await;
    let mut events = t.events().await;
    // DELIVERY: maxAttempts 3, returnOnFailure. Every DELIVERY attempt fails;
    // the RETURN completes.
    let dispatch = t
        .dispatcher(Arc::new(|m: &DispatchMessage| {
            if m.action != "create" {
                return vec![];
            }
            if m.work_order_type.as_deref() == Some("RETURN") {
                vec![(JobStatus::Started, None), (JobStatus::Completed, None)]
            } else {
                vec![
                    (JobStatus::Started, None),
                    (JobStatus::Failed, Some("NO_ONE_HOME".into())),
                ]
            }
        }))
        .await;
    let order = t.create(&create_body("SEQUENTIAL", &["DELIVERY"])).await;
    let executed = events.wait_state(order, "EXECUTED").await;
    assert!(executed.seq > 1);

    let actions = dispatch.actions_of(order);
    for attempt in 1..=3 {
        assert_eq!(
            actions.get(&(1, attempt, "create".into())),
            Some(&1),
            "attempt {attempt}: {actions:?}"
        );
    }
    assert!(
        !actions.contains_key(&(1, 4, "create".into())),
        "{actions:?}"
    );
    assert_eq!(
        actions.get(&(2, 1, "create".into())),
        Some(&1),
        "the return"
    );

    let view = t.get(order).await;
    let work_orders = view["workOrders"].as_array().unwrap();
    assert_eq!(work_orders.len(), 2);
    assert_eq!(work_orders[0]["state"], "FAILED");
    assert_eq!(work_orders[0]["attempt"], 3);
    assert_eq!(work_orders[1]["type"], "RETURN");
    assert_eq!(work_orders[1]["state"], "COMPLETED");
}

#[tokio::test]
async fn an_order_not_ready_waits_until_ready() {
    let t = spawn_app().await;
    let mut events = t.events().await;
    let dispatch = t.dispatcher(testkit::complete_everything()).await;
    let mut body = create_body("SEQUENTIAL", &["PICKUP"]);
    body["readyToProcess"] = json!(false);
    let created = t
        .send(
            orderd::subjects::create(&t.tenant),
            &body,
            &testkit::msg_id(),
        )
        .await;
    assert!(created.ok, "{created:?}");
    assert_eq!(created.state.as_deref(), Some("CREATED"));
    let order = orderd_core::OrderId::parse(created.order_id.as_deref().unwrap()).unwrap();

    let hold = t.command(order, Verb::Hold, &json!({})).await;
    assert_eq!(
        hold.error.map(|e| e.code).as_deref(),
        Some("ORD-409-NOT_READY")
    );
    assert!(
        dispatch.actions_of(order).is_empty(),
        "nothing dispatched yet"
    );

    let ready = t.command(order, Verb::Ready, &json!({})).await;
    assert!(ready.ok, "{ready:?}");
    events.wait_state(order, "EXECUTED").await;
    assert_eq!(
        dispatch.actions_of(order).get(&(1, 1, "create".into())),
        Some(&1)
    );
    // readyToProcess only goes false -> true.
    let again = t.command(order, Verb::Ready, &json!({})).await;
    assert!(!again.ok);
}

#[tokio::test]
async fn an_order_with_work_done_and_a_work_order_failed_for_good_closes_as_partial() {
    let t = spawn_app().await;
    let mut events = t.events().await;
    // INSTALL fails on every attempt (2, no return); PICKUP completes.
    let _dispatch = t
        .dispatcher(Arc::new(|m: &DispatchMessage| {
            match (m.action.as_str(), m.work_order_type.as_deref()) {
                ("create", Some("INSTALL")) => vec![
                    (JobStatus::Started, None),
                    (JobStatus::Failed, Some("NO_ACCESS".to_owned())),
                ],
                ("create", _) => vec![(JobStatus::Started, None), (JobStatus::Completed, None)],
                _ => vec![],
            }
        }))
        .await;
    let partial = t
        .create(&create_body("START_TOGETHER", &["INSTALL", "PICKUP"]))
        .await;
    let closed = events.wait_state(partial, "CLOSED").await;
    assert_eq!(closed.close_reason.as_deref(), Some("PARTIAL"));
    let view = t.get(partial).await;
    assert_eq!(view["closeReason"], "PARTIAL", "{view}");
    let states: Vec<&str> = view["workOrders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["FAILED", "COMPLETED"]);

    // With nothing done, the same failure closes it as CANCELLED.
    let nothing = t.create(&create_body("SEQUENTIAL", &["INSTALL"])).await;
    let closed = events.wait_state(nothing, "CLOSED").await;
    assert_eq!(closed.close_reason.as_deref(), Some("CANCELLED"));
}
