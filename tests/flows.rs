//! Each execution flow end to end through NATS, Redis and the order actors:
//! a client creates an order, a dispatcher answers its jobs, the order
//! executes; the events carry contiguous sequence numbers and no personal
//! data, and the read endpoints agree.

use orderd::headers;
use orderd::subjects::{self, Verb};
use serde_json::json;
use testkit::{complete_everything, create_body, spawn_app};

async fn runs_to_executed_then_closed(flow: &str) {
    let t = spawn_app().await;
    let mut events = t.events().await;
    let dispatch = t.dispatcher(complete_everything()).await;

    let order = t
        .create(&create_body(flow, &["DELIVERY", "INSTALL", "PICKUP"]))
        .await;
    events.wait_state(order, "EXECUTED").await;

    // Every work order got exactly one job, in order for SEQUENTIAL.
    let creates: Vec<u32> = dispatch
        .received()
        .iter()
        .filter(|m| m.order_id == order.to_string() && m.action == "create")
        .map(|m| m.work_order_id)
        .collect();
    let mut sorted = creates.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, vec![1, 2, 3], "{flow}: {creates:?}");
    if flow == "SEQUENTIAL" {
        assert_eq!(creates, vec![1, 2, 3], "one at a time, in order");
    }
    if flow == "COMPLETE_TOGETHER" {
        let groups: Vec<_> = dispatch
            .received()
            .iter()
            .filter(|m| m.order_id == order.to_string() && m.action == "create")
            .map(|m| m.group.clone())
            .collect();
        assert!(groups
            .iter()
            .all(|g| g.as_deref() == Some(&order.to_string()[..])));
    }

    // Close, then the order is CLOSED / COMPLETED.
    let closed = t.command(order, Verb::Close, &json!({})).await;
    assert!(closed.ok, "{closed:?}");
    assert_eq!(closed.state.as_deref(), Some("CLOSED"));
    events.wait_state(order, "CLOSED").await;

    // The history is contiguous from 1 and matches the live events.
    let history = t.history(order).await;
    let seqs: Vec<u64> = history.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected);
    assert_eq!(history.last().map(|e| e.state.as_str()), Some("CLOSED"));
    assert_eq!(
        history.last().and_then(|e| e.close_reason.as_deref()),
        Some("COMPLETED")
    );

    // No personal data in any event or job command.
    for e in &history {
        let text = serde_json::to_string(e).unwrap();
        assert!(
            !text.contains("Jane Doe") && !text.contains("+15550100") && !text.contains("Main St")
        );
    }
    for m in dispatch.received() {
        let text = serde_json::to_string(&m).unwrap();
        assert!(!text.contains("Jane Doe") && !text.contains("Main St"));
    }

    // The read endpoint shows the same order.
    let view = t.get(order).await;
    assert_eq!(view["state"], "CLOSED");
    assert_eq!(view["seq"], json!(history.len()));
    assert_eq!(view["executionFlow"], flow);
    assert!(!view.to_string().contains("Jane Doe"));
}

#[tokio::test]
async fn sequential_flow_runs_one_job_at_a_time() {
    runs_to_executed_then_closed("SEQUENTIAL").await;
}

#[tokio::test]
async fn start_together_flow_sends_every_job_at_once() {
    runs_to_executed_then_closed("START_TOGETHER").await;
}

#[tokio::test]
async fn complete_together_flow_runs_as_one_group() {
    runs_to_executed_then_closed("COMPLETE_TOGETHER").await;
}

#[tokio::test]
async fn personal_data_goes_to_its_own_store_and_reads_are_tenant_fenced() {
    let t = spawn_app().await;
    let order = t.create(&create_body("SEQUENTIAL", &["DELIVERY"])).await;
    let view = t.get(order).await;
    let contact_id = view["dropDetails"]["contactId"]
        .as_str()
        .expect("a contact id")
        .to_owned();
    let store = t.servers.store().await;
    let raw = store
        .stored_contact(&contact_id)
        .await
        .unwrap()
        .expect("the contact is stored apart");
    let contact: serde_json::Value = rmp_serde::from_slice(&raw).unwrap();
    assert_eq!(contact["name"], "Jane Doe");

    // Another tenant asking for this order id: not found, nothing revealed.
    let (h, body) = t
        .read(
            subjects::API_GET,
            &json!({"tenant": "someoneelse", "orderId": order.to_string()}),
        )
        .await;
    assert_eq!(body["code"], "ORD-404-ORDER_NOT_FOUND");
    let h = h.expect("error headers");
    assert_eq!(
        h.get(headers::NATS_SERVICE_ERROR_CODE).unwrap().as_str(),
        "404"
    );

    // Explain and query answer for the owner.
    let (_, explained) = t
        .read(
            subjects::API_EXPLAIN,
            &json!({"tenant": t.tenant.as_str(), "orderId": order.to_string()}),
        )
        .await;
    assert_eq!(explained["state"], "IN_PROGRESS");
    let (_, page) = t
        .read(
            subjects::API_QUERY,
            &json!({"tenant": t.tenant.as_str(), "state": "IN_PROGRESS"}),
        )
        .await;
    let ids: Vec<_> = page["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["orderId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec![order.to_string()]);
}
