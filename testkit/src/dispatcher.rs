//! A scriptable dispatch service for one tenant: it reads the tenant's job
//! commands from the dispatch stream, records them, and answers each with
//! the job updates its [`Script`] says, through JetStream like real
//! dispatch (with dispatch's idempotency keys), which [`job_body`] and
//! [`job_msg_id`] make for the tests too.
//!
//! Imports: nothing of this crate.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap;
use futures::StreamExt;
use serde_json::{json, Value};

use orderd::headers;
use orderd::subjects;
use orderd::wire::DispatchMessage;
use orderd_core::model::JobStatus;
use orderd_core::{OrderId, TenantId, WorkOrderId};

/// The body of a job update.
pub fn job_body(attempt: u32, reason: Option<&str>) -> Value {
    match reason {
        Some(r) => json!({"attempt": attempt, "reasonCode": r}),
        None => json!({"attempt": attempt}),
    }
}

/// A stable idempotency key for a job update (dispatch retries reuse it).
pub fn job_msg_id(order: OrderId, work_order: u32, attempt: u32, status: JobStatus) -> String {
    format!("job:{order}:{work_order}:{attempt}:{}", status.as_str())
}

/// How the test dispatcher answers a job command: the statuses to publish,
/// each with an optional reason code. An empty list answers nothing.
pub type Script = Arc<dyn Fn(&DispatchMessage) -> Vec<(JobStatus, Option<String>)> + Send + Sync>;

/// Answers every create with started, then completed; hold, resume and
/// cancel are not answered.
pub fn complete_everything() -> Script {
    Arc::new(|m: &DispatchMessage| {
        if m.action == "create" {
            vec![(JobStatus::Started, None), (JobStatus::Completed, None)]
        } else {
            vec![]
        }
    })
}

/// Starts every job and leaves it running; confirms every cancel.
pub fn start_and_confirm_cancels() -> Script {
    Arc::new(|m: &DispatchMessage| match m.action.as_str() {
        "create" => vec![(JobStatus::Started, None)],
        "cancel" => vec![(JobStatus::Cancelled, None)],
        _ => vec![],
    })
}

/// A dispatcher that plays dispatch for one tenant: it records every job
/// command and answers by its script, through JetStream like real dispatch.
pub struct Dispatcher {
    received: Arc<Mutex<Vec<DispatchMessage>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Dispatcher {
    /// Reads the tenant's job commands from the ORDERD_DISPATCH stream (as a
    /// real dispatch service would: each stored job command once, even when
    /// orderd re-published it after a crash) and answers by `script`.
    pub async fn start(nats: &async_nats::Client, tenant: &TenantId, script: Script) -> Self {
        let js = jetstream::new(nats.clone());
        let stream = js
            .get_stream(subjects::STREAM_DISPATCH)
            .await
            .expect("the dispatch stream exists (orderd creates it)");
        let consumer: jetstream::consumer::PullConsumer = stream
            .create_consumer(jetstream::consumer::pull::Config {
                filter_subject: subjects::dispatch_of_tenant(tenant),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                inactive_threshold: Duration::from_secs(60),
                ..Default::default()
            })
            .await
            .expect("a dispatch consumer");
        let mut messages = consumer.messages().await.expect("dispatch messages");
        let tenant = tenant.clone();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let task = tokio::spawn(async move {
            while let Some(next) = messages.next().await {
                // Errors (missed heartbeats while NATS restarts) pass.
                let Ok(msg) = next else { continue };
                let _ = msg.ack().await;
                let Ok(m) = serde_json::from_slice::<DispatchMessage>(&msg.payload) else {
                    continue;
                };
                if let Ok(mut l) = log.lock() {
                    l.push(m.clone());
                }
                let Ok(order) = OrderId::parse(&m.order_id) else {
                    continue;
                };
                for (status, reason) in script(&m) {
                    let body = job_body(m.attempt, reason.as_deref());
                    let mut h = HeaderMap::new();
                    h.insert(
                        headers::NATS_MSG_ID,
                        job_msg_id(order, m.work_order_id, m.attempt, status).as_str(),
                    );
                    let subject =
                        subjects::job_update(&tenant, order, WorkOrderId(m.work_order_id), status);
                    let sent = js
                        .publish_with_headers(
                            subject,
                            h,
                            serde_json::to_vec(&body).unwrap_or_default().into(),
                        )
                        .await;
                    if let Ok(ack) = sent {
                        let _ = ack.await;
                    }
                }
            }
        });
        Self { received, task }
    }

    /// Every job command received so far (re-publishes included).
    pub fn received(&self) -> Vec<DispatchMessage> {
        self.received.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Job commands received per (order, action), doubles removed.
    pub fn actions_of(&self, order: OrderId) -> BTreeMap<(u32, u32, String), usize> {
        let id = order.to_string();
        let mut out = BTreeMap::new();
        for m in self.received().into_iter().filter(|m| m.order_id == id) {
            *out.entry((m.work_order_id, m.attempt, m.action))
                .or_insert(0) += 1;
        }
        out
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
