//! What orderd published: a live [`EventLog`] of one tenant's events (as a
//! dashboard sees them, doubles removed, waited on by predicate), and the
//! messages a stream stores, read raw ([`stored_messages`],
//! [`stored_events`]) to count doubles and gaps after the fact.
//!
//! Imports: nothing of this crate but [`crate::WAIT`].

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use tokio::sync::mpsc;

use orderd::subjects;
use orderd::wire::EventMessage;
use orderd_core::{OrderId, TenantId};

use crate::WAIT;

/// Every event message of one tenant, as it arrives (doubles removed).
pub struct EventLog {
    rx: mpsc::UnboundedReceiver<EventMessage>,
    seen: Vec<EventMessage>,
    _task: tokio::task::JoinHandle<()>,
}

impl EventLog {
    /// Subscribes to the tenant's events (the subscription is in place at
    /// the server when this returns).
    pub async fn subscribe(nats: &async_nats::Client, tenant: &TenantId) -> Self {
        let mut sub = nats
            .subscribe(subjects::events_of_tenant(tenant))
            .await
            .expect("subscribe to events");
        nats.flush().await.expect("flush");
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                if let Ok(e) = serde_json::from_slice::<EventMessage>(&msg.payload) {
                    if tx.send(e).is_err() {
                        return;
                    }
                }
            }
        });
        Self {
            rx,
            seen: Vec::new(),
            _task: task,
        }
    }

    /// Waits for the first event (seen before or arriving) that fits.
    pub async fn wait_for(
        &mut self,
        what: &str,
        fits: impl Fn(&EventMessage) -> bool,
    ) -> EventMessage {
        if let Some(e) = self.seen.iter().find(|e| fits(e)) {
            return e.clone();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.rx.recv()).await;
            match next {
                Ok(Some(e)) => {
                    let dup = self
                        .seen
                        .iter()
                        .any(|s| s.order_id == e.order_id && s.seq == e.seq);
                    if !dup {
                        self.seen.push(e.clone());
                    }
                    if fits(&e) {
                        return e;
                    }
                }
                _ => panic!(
                    "no event for {what} within {WAIT:?}; saw {:#?}",
                    self.seen
                        .iter()
                        .map(|e| (e.order_id.clone(), e.seq, e.kind.clone(), e.state.clone()))
                        .collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Waits until one of `order`'s event messages holds an event that `is`
    /// (`what` names it in the failure message).
    pub async fn wait_event(
        &mut self,
        order: OrderId,
        what: &str,
        is: impl Fn(&orderd_core::Event) -> bool,
    ) -> EventMessage {
        let id = order.to_string();
        self.wait_for(&format!("{order} {what}"), |e| {
            e.order_id == id && e.events.iter().any(&is)
        })
        .await
    }

    /// Waits until `order` reaches `state`.
    pub async fn wait_state(&mut self, order: OrderId, state: &str) -> EventMessage {
        let id = order.to_string();
        self.wait_for(&format!("{order} {state}"), |e| {
            e.order_id == id && e.state == state
        })
        .await
    }

    /// The orders seen in events so far.
    pub fn orders(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.seen.iter().map(|e| e.order_id.clone()).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Events of `order` seen so far, in arrival order.
    pub fn of(&self, order: OrderId) -> Vec<EventMessage> {
        let id = order.to_string();
        self.seen
            .iter()
            .filter(|e| e.order_id == id)
            .cloned()
            .collect()
    }
}

/// Every message of `stream` under `filter`, read raw (no dedupe, no ack),
/// oldest first. Asks again while JetStream cannot answer (a cluster
/// electing a leader), for up to [`WAIT`].
pub async fn stored_messages(
    js: &jetstream::Context,
    stream: &str,
    filter: String,
) -> Vec<jetstream::Message> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match try_stored_messages(js, stream, filter.clone()).await {
            Ok(all) => return all,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("cannot read {stream}: {e}"),
        }
    }
}

async fn try_stored_messages(
    js: &jetstream::Context,
    stream: &str,
    filter: String,
) -> Result<Vec<jetstream::Message>, String> {
    let stream = js.get_stream(stream).await.map_err(|e| e.to_string())?;
    let mut consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            filter_subject: filter,
            ack_policy: jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let mut remaining = consumer
        .info()
        .await
        .map_err(|e| e.to_string())?
        .num_pending as usize;
    let mut out = Vec::with_capacity(remaining);
    while remaining > 0 {
        let mut batch = consumer
            .fetch()
            .max_messages(remaining.min(1000))
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        let before = remaining;
        while let Some(Ok(msg)) = batch.next().await {
            remaining -= 1;
            out.push(msg);
        }
        if remaining == before {
            return Err(format!("{remaining} messages did not come"));
        }
    }
    Ok(out)
}

/// Every event message of the tenant stored in the events stream, read raw
/// (no dedupe), grouped by order.
pub async fn stored_events(
    js: &jetstream::Context,
    tenant: &TenantId,
) -> BTreeMap<String, Vec<EventMessage>> {
    let mut out: BTreeMap<String, Vec<EventMessage>> = BTreeMap::new();
    for msg in stored_messages(
        js,
        subjects::STREAM_EVENTS,
        subjects::events_of_tenant(tenant),
    )
    .await
    {
        let e: EventMessage = serde_json::from_slice(&msg.payload).expect("an event message");
        out.entry(e.order_id.clone()).or_default().push(e);
    }
    out
}

/// Waits (up to a minute) until each of `orders` has at least `events`
/// stored event messages; every stored event of the tenant, by order.
pub async fn wait_until_each_has(
    js: &jetstream::Context,
    tenant: &TenantId,
    orders: &[orderd_core::OrderId],
    events: usize,
) -> BTreeMap<String, Vec<EventMessage>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let by_order = stored_events(js, tenant).await;
        let finished = orders
            .iter()
            .filter(|o| {
                by_order
                    .get(&o.to_string())
                    .is_some_and(|e| e.len() >= events)
            })
            .count();
        if finished == orders.len() {
            return by_order;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{finished} of {} orders have {events} events",
            orders.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
