//! Bad input is refused with its stable code, the message is terminated
//! (never redelivered), and nothing changes: invalid JSON, schema
//! violations, an unknown order, another tenant's order id, an oversized
//! body, a bad tenant token, an unsupported content type.

use std::time::Duration;

use async_nats::HeaderMap;
use orderd::headers;
use orderd::subjects::{self, Verb};
use orderd_core::OrderId;
use serde_json::json;
use testkit::{create_body, msg_id, spawn_app, spawn_app_with, TestApp};

async fn raw(
    t: &TestApp,
    subject: String,
    body: &[u8],
    content_type: Option<&str>,
) -> orderd::wire::Outcome {
    let mut h = HeaderMap::new();
    h.insert(headers::NATS_MSG_ID, msg_id().as_str());
    if let Some(ct) = content_type {
        h.insert(headers::CONTENT_TYPE, ct);
    }
    t.send_raw(subject, body.to_vec(), h).await
}

fn code(o: &orderd::wire::Outcome) -> String {
    assert!(!o.ok, "expected a refusal: {o:?}");
    o.error.as_ref().expect("an error body").code.clone()
}

/// Every message the intake got was settled: the tenant discovery has seen
/// every message, and on every tenant's lane nothing waits for an ack and
/// nothing is being redelivered.
async fn all_settled(t: &TestApp) {
    let deadline = tokio::time::Instant::now() + testkit::WAIT;
    let settings = orderd::settings::Settings::default();
    for spec in orderd::intake::consumers::intake_streams() {
        let mut durables = vec![orderd::intake::consumers::discovery_name(spec, &settings)];
        loop {
            let info = consumer_info(t, spec.name, &durables[0]).await;
            if info.num_pending == 0 && info.num_ack_pending == 0 {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{info:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let lanes = orderd::intake::consumers::lanes(&t.js, spec, &settings)
            .await
            .unwrap();
        assert!(!lanes.is_empty(), "{}: no lane", spec.name);
        durables.extend(
            lanes
                .iter()
                .map(|tenant| orderd::intake::consumers::lane_name(spec, tenant, &settings)),
        );
        for durable in &durables[1..] {
            loop {
                let info = consumer_info(t, spec.name, durable).await;
                if info.num_ack_pending == 0 && info.num_pending == 0 {
                    assert_eq!(
                        info.num_redelivered, 0,
                        "{durable}: a refusal was redelivered"
                    );
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{durable}: {info:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn consumer_info(
    t: &TestApp,
    stream: &str,
    durable: &str,
) -> async_nats::jetstream::consumer::Info {
    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
        t.js.get_stream(stream)
            .await
            .unwrap()
            .get_consumer(durable)
            .await
            .unwrap();
    consumer.info().await.unwrap().clone()
}

#[tokio::test]
async fn bad_input_is_refused_with_its_code_and_changes_nothing() {
    let t = spawn_app_with(|s| s.runtime.max_body_bytes = 4096).await;
    let mut events = t.events().await;
    let create = subjects::create(&t.tenant);

    // Invalid JSON.
    assert_eq!(
        code(&raw(&t, create.clone(), b"{\"clientId\": ", None).await),
        "ORD-400-MALFORMED"
    );
    // Not an object.
    assert_eq!(
        code(&raw(&t, create.clone(), b"[1,2]", None).await),
        "ORD-400-MALFORMED"
    );
    // A schema violation the wire layer sees: a required field missing, an unknown field.
    let mut missing = create_body("SEQUENTIAL", &["PICKUP"]);
    missing.as_object_mut().unwrap().remove("workOrders");
    assert_eq!(
        code(&t.send(create.clone(), &missing, &msg_id()).await),
        "ORD-400-MALFORMED"
    );
    let mut unknown = create_body("SEQUENTIAL", &["PICKUP"]);
    unknown["colour"] = json!("red");
    assert_eq!(
        code(&t.send(create.clone(), &unknown, &msg_id()).await),
        "ORD-400-MALFORMED"
    );
    // A schema violation the core sees: every problem listed, by field.
    let mut invalid = create_body("SEQUENTIAL", &["PICKUP"]);
    invalid["orderSummary"]["invoiceNumber"] = json!("no spaces allowed");
    invalid["orderSummary"]["totalItems"] = json!(5000);
    let refused = t.send(create.clone(), &invalid, &msg_id()).await;
    assert_eq!(code(&refused), "ORD-422-INVALID_FIELDS");
    let fields: Vec<String> = refused
        .error
        .unwrap()
        .details
        .into_iter()
        .map(|d| d.field)
        .collect();
    assert!(
        fields.iter().any(|f| f.contains("invoiceNumber")),
        "{fields:?}"
    );
    assert!(
        fields.iter().any(|f| f.contains("totalItems")),
        "{fields:?}"
    );
    // An unknown work-order type.
    let refused = t
        .send(
            create.clone(),
            &create_body("SEQUENTIAL", &["TELEPORT"]),
            &msg_id(),
        )
        .await;
    assert!(code(&refused).starts_with("ORD-4"));
    // Oversized.
    let mut big = create_body("SEQUENTIAL", &["PICKUP"]);
    big["customAttributes"] = json!({"blob": "x".repeat(5000)});
    assert_eq!(
        code(&t.send(create.clone(), &big, &msg_id()).await),
        "ORD-413-PAYLOAD_TOO_LARGE"
    );
    // Unsupported content type.
    assert_eq!(
        code(&raw(&t, create.clone(), b"<order/>", Some("application/xml")).await),
        "ORD-415-UNSUPPORTED_CONTENT_TYPE"
    );
    // A bad tenant token: `api` is reserved for the read service.
    // No builder makes such a subject (TenantId refuses it), so it is
    // written out: a hostile publisher can still send it.
    let body = serde_json::to_vec(&create_body("SEQUENTIAL", &["PICKUP"])).unwrap();
    assert_eq!(
        code(&raw(&t, "orderd.v1.api.cmd.create".to_owned(), &body, None).await),
        "ORD-400-BAD_TENANT"
    );

    // An unknown order.
    let nobody = OrderId(uuid::Uuid::new_v4());
    assert_eq!(
        code(&t.command(nobody, Verb::Hold, &json!({})).await),
        "ORD-404-ORDER_NOT_FOUND"
    );
    assert_eq!(
        code(
            &t.job(nobody, 1, 1, orderd_core::model::JobStatus::Started, None)
                .await
        ),
        "ORD-404-ORDER_NOT_FOUND"
    );
    let (_, view) = t
        .read(
            subjects::API_GET,
            &json!({"tenant": t.tenant.as_str(), "orderId": nobody.to_string()}),
        )
        .await;
    assert_eq!(
        view["code"], "ORD-404-ORDER_NOT_FOUND",
        "nothing was created for it"
    );

    // Nothing above created an order or published an event.
    let (_, page) = t
        .read(
            subjects::API_QUERY,
            &json!({"tenant": t.tenant.as_str(), "state": "IN_PROGRESS"}),
        )
        .await;
    assert_eq!(page["orders"], json!([]));
    let (_, page) = t
        .read(
            subjects::API_QUERY,
            &json!({"tenant": t.tenant.as_str(), "state": "CLOSED"}),
        )
        .await;
    assert_eq!(page["orders"], json!([]));
    all_settled(&t).await;

    // One good order, to be sure the tenant works and the log is live.
    let order = t.create(&create_body("SEQUENTIAL", &["PICKUP"])).await;
    let first = events.wait_state(order, "IN_PROGRESS").await;
    assert_eq!(first.seq, 1);
    assert_eq!(
        events.orders(),
        vec![order.to_string()],
        "no refused command published an event"
    );
}

#[tokio::test]
async fn another_tenants_order_id_is_not_found_and_untouched() {
    let t = spawn_app_with(|_| {}).await;
    let order = t.create(&create_body("SEQUENTIAL", &["PICKUP"])).await;
    let before = t.get(order).await;

    // The intruder publishes on its own tenant's subjects with the victim's id.
    let intruder = testkit::random_tenant();
    for verb in [Verb::Hold, Verb::Cancel, Verb::Close] {
        let outcome = t
            .send(
                subjects::command(&intruder, order, verb),
                &json!({}),
                &msg_id(),
            )
            .await;
        assert_eq!(code(&outcome), "ORD-404-ORDER_NOT_FOUND", "{verb:?}");
        assert_eq!(outcome.seq, None);
        assert_eq!(outcome.state, None, "no state of the order is revealed");
    }
    let job = t
        .send(
            subjects::job_update(
                &intruder,
                order,
                orderd_core::WorkOrderId(1),
                orderd_core::model::JobStatus::Completed,
            ),
            &testkit::job_body(1, None),
            &msg_id(),
        )
        .await;
    assert_eq!(code(&job), "ORD-404-ORDER_NOT_FOUND");
    // A create for the intruder with any key never lands on the victim.
    let after = t.get(order).await;
    assert_eq!(after["seq"], before["seq"]);
    assert_eq!(after["state"], before["state"]);
    assert_eq!(after["cancellation"], before["cancellation"]);
    all_settled(&t).await;
}

/// Reads are fenced by the reply subject: the tenant in the body must own
/// the inbox the answer goes to (a tenant's NATS user can only receive on
/// `_INBOX_<tenant>.>`), so one tenant cannot read another's orders.
#[tokio::test]
async fn reads_answer_only_on_the_named_tenants_inbox() {
    use futures::StreamExt;
    let t = spawn_app_with(|_| {}).await;
    let order = t.create(&create_body("SEQUENTIAL", &["PICKUP"])).await;
    let intruder = testkit::random_tenant();
    let ask = |reply: String| {
        let nats = t.nats.clone();
        let body = json!({"tenant": t.tenant.as_str(), "orderId": order.to_string()});
        async move {
            let mut sub = nats.subscribe(reply.clone()).await.unwrap();
            nats.publish_with_reply(
                subjects::API_GET,
                reply,
                serde_json::to_vec(&body).unwrap().into(),
            )
            .await
            .unwrap();
            let msg = tokio::time::timeout(std::time::Duration::from_secs(10), sub.next())
                .await
                .expect("an answer")
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&msg.payload).unwrap()
        }
    };
    let own = ask(format!("_INBOX_{}.r1", t.tenant)).await;
    assert_eq!(own["orderId"], json!(order.to_string()), "{own}");
    let shared = ask("_INBOX.r2".to_owned()).await;
    assert_eq!(shared["orderId"], json!(order.to_string()));
    let stolen = ask(format!("_INBOX_{intruder}.r3")).await;
    assert_eq!(
        stolen["code"],
        json!("ORD-403-READ_NOT_ALLOWED"),
        "{stolen}"
    );
    assert!(stolen.get("orderId").is_none());
    let made_up = ask(format!("replies.{}.r4", t.tenant)).await;
    assert_eq!(made_up["code"], json!("ORD-403-READ_NOT_ALLOWED"));
}

#[tokio::test]
async fn a_command_naming_a_stale_sequence_is_refused_and_changes_nothing() {
    let t = spawn_app().await;
    let order = t.create(&create_body("SEQUENTIAL", &["PICKUP"])).await;
    let seq = t.get(order).await["seq"].as_u64().expect("seq");

    // Naming the order's sequence: decided as usual.
    let held = t
        .command(
            order,
            Verb::Hold,
            &json!({"reason": "check stock", "expectedSeq": seq}),
        )
        .await;
    assert!(held.ok, "{held:?}");
    assert_eq!(held.seq, Some(seq + 1));

    // A client acting on the view it had before the hold: refused, with
    // both sequences in words, and the order stays as it is.
    for (verb, body) in [
        (Verb::Resume, json!({"expectedSeq": seq})),
        (Verb::Cancel, json!({"reason": "x", "expectedSeq": seq})),
        (
            Verb::Update,
            json!({"readyToProcess": true, "expectedSeq": seq + 5}),
        ),
        (Verb::SubState, json!({"subState": null, "expectedSeq": 0})),
    ] {
        let refused = t.command(order, verb, &body).await;
        let error = refused.error.expect("refused");
        assert_eq!(error.code, "ORD-409-SEQ_MISMATCH", "{verb:?}");
        assert!(
            error.message.contains(&format!("sequence {}", seq + 1)),
            "{}",
            error.message
        );
    }
    let view = t.get(order).await;
    assert_eq!(
        (view["state"].as_str(), view["seq"].as_u64()),
        (Some("ON_HOLD"), Some(seq + 1))
    );

    // The right sequence again; a wrong type is bad input.
    let resumed = t
        .command(order, Verb::Resume, &json!({"expectedSeq": seq + 1}))
        .await;
    assert!(resumed.ok, "{resumed:?}");
    let bad = t
        .command(order, Verb::Hold, &json!({"expectedSeq": "three"}))
        .await;
    assert_eq!(
        bad.error.map(|e| e.code),
        Some("ORD-400-MALFORMED".to_owned())
    );
}
