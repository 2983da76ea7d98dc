//! A client of orderd: publishes a create through JetStream, reads its
//! outcome, then explains the order through the read service.
//!
//! Run against a local stack (`./scripts/demo` starts one):
//! `cargo run --example client`

use async_nats::{jetstream, HeaderMap};
use futures::StreamExt;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("ORDERD_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let client = async_nats::connect(url).await?;
    let js = jetstream::new(client.clone());
    let reply = client.new_inbox();
    let mut outcomes = client.subscribe(reply.clone()).await?;

    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", "example-PO-1001"); // the idempotency key
    headers.insert("Orderd-Reply-To", reply.as_str());
    let body = serde_json::json!({
        "clientId": "c-17", "clientName": "Acme Retail", "clientOrderId": "PO-1001",
        "executionFlow": "SEQUENTIAL",
        "dropDetails": { "contact": { "name": "Sam Example", "phone": "+44 20 7946 0000" },
                         "location": { "line1": "1 Example Street", "city": "Leeds", "country": "GB" } },
        "orderSummary": { "invoiceNumber": "INV-1001", "orderDescription": "Two boxes",
                          "totalItems": 2 },
        "workOrders": [ { "type": "PICKUP" }, { "type": "DELIVERY" } ]
    });
    let ack = js
        .publish_with_headers(
            "orderd.v1.acme.cmd.create",
            headers,
            serde_json::to_vec(&body)?.into(),
        )
        .await? // sent
        .await?; // PubAck: the command is durable
    let outcome: serde_json::Value = if ack.duplicate {
        // The stream already had this Nats-Msg-Id and dropped the repeat: no
        // Outcome will come on the reply subject. Ask what became of it.
        let request = serde_json::json!({ "tenant": "acme", "commandId": "example-PO-1001" });
        let reply = client
            .request(
                "orderd.v1.api.outcome",
                serde_json::to_vec(&request)?.into(),
            )
            .await?;
        serde_json::from_slice(&reply.payload)?
    } else {
        let outcome = outcomes
            .next()
            .await
            .ok_or_else(|| anyhow::anyhow!("no outcome"))?;
        serde_json::from_slice(&outcome.payload)?
    };
    println!("outcome: {outcome}");

    let request = serde_json::json!({ "tenant": "acme", "orderId": outcome["orderId"] });
    let explained = client
        .request(
            "orderd.v1.api.explain",
            serde_json::to_vec(&request)?.into(),
        )
        .await?;
    let explained: serde_json::Value = serde_json::from_slice(&explained.payload)?;
    println!("waiting for: {}", explained["waitingFor"]);
    Ok(())
}
