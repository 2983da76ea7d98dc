//! An order's history: its event messages read back from the events
//! stream (for the `history` endpoint and the dry run).

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;

use orderd_core::{OrderId, TenantId};

use crate::{subjects, wire};

/// Every event message of one order, oldest first, read back from the
/// events stream through a short-lived consumer filtered on the order.
pub async fn read_events(
    js: &jetstream::Context,
    tenant: &TenantId,
    order_id: OrderId,
) -> Result<Vec<wire::EventMessage>, async_nats::Error> {
    let stream = js.get_stream(subjects::STREAM_EVENTS).await?;
    let consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(pull::Config {
            filter_subject: subjects::events_of_order(tenant, order_id),
            ack_policy: jetstream::consumer::AckPolicy::None,
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await?;
    let mut consumer = consumer;
    let pending = consumer.info().await?.num_pending;
    let name = consumer.cached_info().name.clone();
    let mut out = Vec::new();
    let mut remaining = usize::try_from(pending).unwrap_or(usize::MAX);
    while remaining > 0 {
        let batch = remaining.min(256);
        let mut messages = consumer
            .fetch()
            .max_messages(batch)
            .expires(Duration::from_secs(2))
            .messages()
            .await?;
        let mut got = 0;
        while let Some(msg) = messages.next().await {
            let msg = msg?;
            got += 1;
            match serde_json::from_slice::<wire::EventMessage>(&msg.payload) {
                Ok(event) => out.push(event),
                Err(e) => tracing::warn!(error = %e, "undecodable event in the stream"),
            }
        }
        if got == 0 {
            break;
        }
        remaining = remaining.saturating_sub(got);
    }
    // Ephemeral anyway; deleting it now keeps the server tidy.
    let _ = stream.delete_consumer(&name).await;
    out.sort_by_key(|e| e.seq);
    out.dedup_by_key(|e| e.seq);
    Ok(out)
}
