//! One test's world and its client: [`TestApp`] holds the servers, an
//! orderd (in-process, or none when the test runs it as processes), a
//! connection, JetStream on it, and a random tenant, so tests never see
//! each other's orders; it sends commands as upstream does (through
//! JetStream, with `Nats-Msg-Id` and `Orderd-Reply-To`, returning the
//! outcome) and calls the read endpoints. Also the create body and the
//! idempotency keys the tests send.
//!
//! Imports: `servers`, `app`, `events`, `dispatcher`.

use async_nats::jetstream;
use async_nats::HeaderMap;
use futures::StreamExt;
use serde_json::{json, Value};

use orderd::headers;
use orderd::settings::Settings;
use orderd::subjects::{self, Verb};
use orderd::wire::{EventMessage, Outcome};
use orderd_core::model::JobStatus;
use orderd_core::{OrderId, TenantId, WorkOrderId};

use crate::app::{wait_healthy, App};
use crate::dispatcher::{job_body, job_msg_id, Dispatcher, Script};
use crate::events::EventLog;
use crate::servers::Servers;
use crate::WAIT;

/// A random tenant, so tests never see each other's orders.
pub fn random_tenant() -> TenantId {
    let id = uuid::Uuid::new_v4().simple().to_string();
    TenantId::parse(&format!("t{}", &id[..12])).expect("tenant")
}

/// A fresh idempotency key.
pub fn msg_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The contact and location ids of a view's drop details.
pub fn drop_ids(view: &Value) -> (String, String) {
    let id = |name: &str| {
        view["dropDetails"][name]
            .as_str()
            .unwrap_or_else(|| panic!("dropDetails.{name} in {view}"))
            .to_owned()
    };
    (id("contactId"), id("locationId"))
}

/// A create body with one work order per given type.
pub fn create_body(flow: &str, types: &[&str]) -> Value {
    json!({
        "clientId": "client-1",
        "clientName": "Acme Retail",
        "clientOrderId": format!("PO-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        "executionFlow": flow,
        "dropDetails": {
            "contact": {"name": "Jane Doe", "phone": "+15550100"},
            "location": {"street": "1 Main St", "city": "Springfield"}
        },
        "orderSummary": {"invoiceNumber": "INV-1", "orderDescription": "Sofa and chairs", "totalItems": 3},
        "workOrders": types.iter().map(|t| json!({"type": t})).collect::<Vec<_>>(),
    })
}

/// One test's world: servers, an orderd, a client and a tenant.
pub struct TestApp {
    /// orderd, in-process.
    pub app: Option<App>,
    /// The test's client.
    pub nats: async_nats::Client,
    /// JetStream on the test's client.
    pub js: jetstream::Context,
    /// The test's tenant.
    pub tenant: TenantId,
    /// The servers (dropped last).
    pub servers: Servers,
}

/// Starts servers and orderd with the harness settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts servers and orderd, adjusting the settings first.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let servers = Servers::start().await;
    let mut settings = servers.settings();
    adjust(&mut settings);
    let nats = async_nats::connect(&servers.nats_url)
        .await
        .expect("test client connects");
    let app = App::start(settings, &nats).await;
    let js = jetstream::new(nats.clone());
    TestApp {
        app: Some(app),
        nats,
        js,
        tenant: random_tenant(),
        servers,
    }
}

/// A test client on `servers`, whose orderd (if any) runs as processes the
/// test started itself.
pub async fn client_for(servers: Servers) -> TestApp {
    let nats = async_nats::connect(&servers.nats_url)
        .await
        .expect("test client connects");
    let js = jetstream::new(nats.clone());
    TestApp {
        app: None,
        nats,
        js,
        tenant: random_tenant(),
        servers,
    }
}

/// [`client_for`], once an orderd on `servers` answers its health endpoint.
pub async fn attach(servers: Servers) -> TestApp {
    let t = client_for(servers).await;
    wait_healthy(&t.nats).await;
    t
}

impl TestApp {
    /// Publishes `body` to `subject` through JetStream with the given
    /// headers and `Orderd-Reply-To`, and returns the outcome.
    pub async fn send_raw(&self, subject: String, body: Vec<u8>, headers: HeaderMap) -> Outcome {
        let msg = self.send_for_reply(subject, body, headers).await;
        serde_json::from_slice(&msg.payload)
            .or_else(|_| rmp_serde::from_slice(&msg.payload))
            .expect("an Outcome")
    }

    /// [`Self::send_raw`], returning the outcome's message as it came
    /// (headers and all).
    pub async fn send_for_reply(
        &self,
        subject: String,
        body: Vec<u8>,
        mut headers: HeaderMap,
    ) -> async_nats::Message {
        let inbox = self.nats.new_inbox();
        let mut sub = self.nats.subscribe(inbox.clone()).await.expect("subscribe");
        headers.insert(headers::ORDERD_REPLY_TO, inbox.as_str());
        self.js
            .publish_with_headers(subject, headers, body.into())
            .await
            .expect("publish")
            .await
            .expect("stream acknowledges the command");
        tokio::time::timeout(WAIT, sub.next())
            .await
            .expect("an outcome in time")
            .expect("reply subscription open")
    }

    /// Publishes a JSON command with a `Nats-Msg-Id` and returns the outcome.
    pub async fn send(&self, subject: String, body: &Value, id: &str) -> Outcome {
        let mut h = HeaderMap::new();
        h.insert(headers::NATS_MSG_ID, id);
        self.send_raw(subject, serde_json::to_vec(body).expect("json"), h)
            .await
    }

    /// Publishes `n` creates (the three flows in turn, two work orders
    /// each) back to back, without waiting for their outcomes; their order
    /// ids, once the stream stored them all.
    pub async fn publish_creates(&self, n: usize) -> Vec<OrderId> {
        let flows = ["SEQUENTIAL", "START_TOGETHER", "COMPLETE_TOGETHER"];
        let mut acks = Vec::new();
        let mut orders = Vec::new();
        for i in 0..n {
            let id = msg_id();
            orders.push(orderd::wire::order_id_for_create(&self.tenant, &id));
            let body = create_body(flows[i % 3], &["PICKUP", "INSTALL"]);
            let mut h = HeaderMap::new();
            h.insert(headers::NATS_MSG_ID, id.as_str());
            acks.push(
                self.js
                    .publish_with_headers(
                        subjects::create(&self.tenant),
                        h,
                        serde_json::to_vec(&body).expect("json").into(),
                    )
                    .await
                    .expect("publish"),
            );
        }
        for ack in acks {
            ack.await.expect("stored");
        }
        orders
    }

    /// Creates a START_TOGETHER order of `types` and waits, on `events`,
    /// until the job of its last work order started (dispatch must start
    /// jobs, as [`crate::start_and_confirm_cancels`] does).
    pub async fn create_all_started(
        &self,
        events: &mut crate::EventLog,
        types: &[&str],
    ) -> OrderId {
        let order = self.create(&create_body("START_TOGETHER", types)).await;
        let last = u32::try_from(types.len()).expect("a few work orders");
        events
            .wait_event(order, &format!("work order {last} started"), |e| {
                matches!(e, orderd_core::Event::JobStarted { work_order, .. } if work_order.0 == last)
            })
            .await;
        order
    }

    /// Creates an order; panics unless accepted.
    pub async fn create(&self, body: &Value) -> OrderId {
        let outcome = self
            .send(subjects::create(&self.tenant), body, &msg_id())
            .await;
        assert!(outcome.ok, "create refused: {outcome:?}");
        OrderId::parse(outcome.order_id.as_deref().expect("order id")).expect("uuid")
    }

    /// Sends a command with a fresh idempotency key.
    pub async fn command(&self, order: OrderId, verb: Verb, body: &Value) -> Outcome {
        self.send(
            subjects::command(&self.tenant, order, verb),
            body,
            &msg_id(),
        )
        .await
    }

    /// Sends a job update as dispatch would.
    pub async fn job(
        &self,
        order: OrderId,
        work_order: u32,
        attempt: u32,
        status: JobStatus,
        reason: Option<&str>,
    ) -> Outcome {
        let body = job_body(attempt, reason);
        let id = job_msg_id(order, work_order, attempt, status);
        self.send(
            subjects::job_update(&self.tenant, order, WorkOrderId(work_order), status),
            &body,
            &id,
        )
        .await
    }

    /// Calls a read endpoint with a JSON body; returns the headers and body.
    pub async fn read(&self, subject: &str, body: &Value) -> (Option<HeaderMap>, Value) {
        let msg = tokio::time::timeout(
            WAIT,
            self.nats.request(
                subject.to_owned(),
                serde_json::to_vec(body).expect("json").into(),
            ),
        )
        .await
        .expect("a reply in time")
        .expect("request");
        (
            msg.headers.clone(),
            serde_json::from_slice(&msg.payload).expect("json reply"),
        )
    }

    /// Publishes `config` as the tenant's next configuration version, and
    /// gives orderd's configuration cache a moment to see it.
    pub async fn publish_config(&self, config: &Value) {
        let body = json!({"tenant": self.tenant.as_str(), "config": config});
        let (h, v) = self.read(subjects::API_CONFIG_PUBLISH, &body).await;
        assert!(
            h.as_ref()
                .and_then(|h| h.get(headers::NATS_SERVICE_ERROR))
                .is_none(),
            "publishing the configuration failed: {v}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }

    /// The order as the get endpoint shows it.
    pub async fn get(&self, order: OrderId) -> Value {
        let (_, v) = self
            .read(
                subjects::API_GET,
                &json!({"tenant": self.tenant.as_str(), "orderId": order.to_string()}),
            )
            .await;
        v
    }

    /// The event messages of an order, read back from the events stream.
    pub async fn history(&self, order: OrderId) -> Vec<EventMessage> {
        let (h, v) = self
            .read(
                subjects::API_HISTORY,
                &json!({"tenant": self.tenant.as_str(), "orderId": order.to_string()}),
            )
            .await;
        assert!(
            h.as_ref()
                .and_then(|h| h.get(headers::NATS_SERVICE_ERROR))
                .is_none(),
            "history failed: {v}"
        );
        serde_json::from_value(v["events"].clone()).expect("events")
    }

    /// Subscribes to every event of the tenant.
    pub async fn events(&self) -> EventLog {
        EventLog::subscribe(&self.nats, &self.tenant).await
    }

    /// Starts a dispatcher for the tenant that answers by `script`.
    pub async fn dispatcher(&self, script: Script) -> Dispatcher {
        Dispatcher::start(&self.nats, &self.tenant, script).await
    }

    /// Stops the in-process orderd gracefully.
    pub async fn stop_app(&mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
    }
}

/// NATS subject matching: whether `pattern` (with `*` and `>` wildcards)
/// matches `subject`, whose own tokens are taken literally (a `*` or `>`
/// in it matches only a wildcard of the pattern), as the server matches a
/// consumer's filter or a permission.
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let s: Vec<&str> = subject.split('.').collect();
    for (i, token) in p.iter().enumerate() {
        match *token {
            ">" => return s.len() > i,
            "*" if i < s.len() => {}
            literal if i < s.len() && s[i] == literal => {}
            _ => return false,
        }
    }
    p.len() == s.len()
}
