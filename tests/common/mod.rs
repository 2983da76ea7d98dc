//! The integration-test harness: real `nats-server` (JetStream, file storage)
//! and `redis-server` (append-only) on free loopback ports in a temporary
//! directory, orderd in-process ([`App`]) or as the built binary
//! ([`Process`], for kill -9), a client for one random tenant per test, a
//! scriptable dispatcher, and an event log. Everything is killed on drop.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use orderd::headers;
use orderd::settings::{SecretUrl, Settings};
use orderd::subjects::{self, Verb};
use orderd::wire::{DispatchMessage, EventMessage, Outcome};
use orderd_core::model::JobStatus;
use orderd_core::{OrderId, TenantId, WorkOrderId};

/// How long a test waits for anything before failing.
pub const WAIT: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn find_binary(name: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| panic!("{name} not found: install it (scripts/test does)"))
}

async fn wait_for_port(port: u16, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not start on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A NATS server and a Redis server of one test.
pub struct Servers {
    nats: Option<Child>,
    redis: Child,
    dir: PathBuf,
    /// `nats://127.0.0.1:<port>`.
    pub nats_url: String,
    /// `redis://127.0.0.1:<port>`.
    pub redis_url: String,
    nats_port: u16,
    redis_port: u16,
}

impl Servers {
    /// Starts both and waits until they accept connections.
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("orderd-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("nats")).expect("temp dir");
        std::fs::create_dir_all(dir.join("redis")).expect("temp dir");
        let nats_port = free_port();
        let redis_port = free_port();
        let nats = Self::spawn_nats(&dir, nats_port);
        let redis = Self::spawn_redis(&dir, redis_port);
        let servers = Self {
            nats: Some(nats),
            redis,
            dir,
            nats_url: format!("nats://127.0.0.1:{nats_port}"),
            redis_url: format!("redis://127.0.0.1:{redis_port}"),
            nats_port,
            redis_port,
        };
        wait_for_port(nats_port, "nats-server").await;
        wait_for_port(redis_port, "redis-server").await;
        servers
    }

    fn spawn_redis(dir: &Path, port: u16) -> Child {
        Command::new(find_binary("redis-server"))
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--appendonly", "yes"])
            .args(["--save", ""])
            .arg("--dir")
            .arg(dir.join("redis"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts")
    }

    /// Stops Redis with SIGTERM (it writes its append-only file and exits).
    pub fn stop_redis(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.redis.id().to_string()])
            .status();
        let _ = self.redis.wait();
    }

    /// Kills Redis with SIGKILL (no shutdown; what it acknowledged is in
    /// its append-only file, in the OS cache).
    pub fn kill_redis(&mut self) {
        let _ = self.redis.kill();
        let _ = self.redis.wait();
    }

    /// The data directory of the servers (`nats/`, `redis/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts Redis again on the same port and directory.
    pub async fn start_redis(&mut self) {
        self.redis = Self::spawn_redis(&self.dir, self.redis_port);
        wait_for_port(self.redis_port, "redis-server").await;
    }

    fn spawn_nats(dir: &Path, port: u16) -> Child {
        Command::new(find_binary("nats-server"))
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
            .arg("-sd")
            .arg(dir.join("nats"))
            // ORDERD_TEST_NATS_PROFILE=<port>: nats-server serves Go's
            // profiles there (/debug/pprof/...), to see where its CPU goes.
            .args(
                std::env::var("ORDERD_TEST_NATS_PROFILE")
                    .map(|p| vec!["--profile".to_owned(), p])
                    .unwrap_or_default(),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts")
    }

    /// Kills NATS (kill -9) and leaves it down.
    pub fn kill_nats(&mut self) {
        if let Some(mut n) = self.nats.take() {
            let _ = n.kill();
            let _ = n.wait();
        }
    }

    /// Starts NATS again (after [`Servers::kill_nats`]) on the same port and store.
    pub async fn start_nats(&mut self) {
        if self.nats.is_none() {
            self.nats = Some(Self::spawn_nats(&self.dir, self.nats_port));
        }
        wait_for_port(self.nats_port, "nats-server").await;
    }

    /// Kills NATS (kill -9) and starts it again on the same port and store.
    pub async fn restart_nats(&mut self) {
        if let Some(mut n) = self.nats.take() {
            let _ = n.kill();
            let _ = n.wait();
        }
        self.nats = Some(Self::spawn_nats(&self.dir, self.nats_port));
        wait_for_port(self.nats_port, "nats-server").await;
    }

    /// Settings for an orderd on these servers, tuned for tests: short ack
    /// wait and backoff so redeliveries happen within a test's patience.
    pub fn settings(&self) -> Settings {
        let mut s = Settings::default();
        s.nats.url = SecretUrl::new(self.nats_url.clone());
        s.redis.url = SecretUrl::new(self.redis_url.clone());
        s.consumers.ack_wait_secs = 3;
        s.consumers.nak_backoff_ms = vec![50, 100, 250, 500];
        s.consumers.max_ack_pending = 256;
        s.runtime.max_in_flight = 64;
        s.runtime.tenant_config_ttl_ms = 200;
        s.runtime.timer_sweep_ms = 200;
        s.runtime.shutdown_grace_ms = 5_000;
        s.validate().expect("test settings are valid");
        s
    }

    /// The environment that gives the `orderd` binary the same settings.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ORDERD_NATS_URL", self.nats_url.clone()),
            ("ORDERD_REDIS_URL", self.redis_url.clone()),
            ("ORDERD_ACK_WAIT_SECS", "2".into()),
            ("ORDERD_MAX_IN_FLIGHT", "64".into()),
            ("ORDERD_LOG_FORMAT", "json".into()),
            ("RUST_LOG", "warn".into()),
        ]
    }

    /// A Redis store handle on the test's Redis.
    pub async fn store(&self) -> orderd::store::RedisStore {
        orderd::store::RedisStore::connect(&self.settings().redis)
            .await
            .expect("redis store")
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        if let Some(n) = self.nats.as_mut() {
            let _ = n.kill();
            let _ = n.wait();
        }
        let _ = self.redis.kill();
        let _ = self.redis.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// orderd running in the test process.
pub struct App {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), orderd::app::AppError>>>,
}

impl App {
    /// Starts orderd with `settings` and waits until its service answers.
    pub async fn start(settings: Settings, nats: &async_nats::Client) -> Self {
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(orderd::app::run(settings, async move {
            let _ = rx.await;
        }));
        let mut app = Self {
            stop: Some(tx),
            task: Some(task),
        };
        // An orderd that ends before it is healthy says why, instead of
        // the wait running out in silence.
        let ended = tokio::select! {
            () = wait_healthy(nats) => None,
            ended = app.task.as_mut().expect("orderd task") => Some(ended),
        };
        if let Some(ended) = ended {
            app.task = None;
            panic!("orderd ended before it became healthy: {ended:?}");
        }
        app
    }

    /// Shuts orderd down gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(WAIT, task)
                .await
                .expect("orderd stops in time")
                .expect("orderd task");
            result.expect("orderd ran without error");
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Waits until an orderd answers the health endpoint.
pub async fn wait_healthy(nats: &async_nats::Client) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let answer = tokio::time::timeout(
            Duration::from_millis(500),
            nats.request(subjects::API_HEALTH, "{}".into()),
        )
        .await;
        let last = match answer {
            Ok(Ok(msg)) => {
                if let Ok(v) = serde_json::from_slice::<Value>(&msg.payload) {
                    if v["ok"] == json!(true) {
                        return;
                    }
                }
                String::from_utf8_lossy(&msg.payload).into_owned()
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer within 500 ms".to_owned(),
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "orderd did not become healthy; its last answer: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `orderd` binary as a child process (for kill -9).
pub struct Process {
    child: Child,
}

impl Process {
    /// Starts the built binary against `servers`.
    pub fn start(servers: &Servers) -> Self {
        Self::start_with_env(servers, &[])
    }

    /// Starts the built binary with extra `ORDERD_*` variables.
    pub fn start_with_env(servers: &Servers, extra: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orderd"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
        for (k, v) in servers.env() {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        // ORDERD_TEST_LOGS=1 shows the child's logs.
        let logs = if std::env::var_os("ORDERD_TEST_LOGS").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        let child = cmd
            .stdout(Stdio::null())
            .stderr(logs)
            .spawn()
            .expect("orderd binary starts");
        Self { child }
    }

    /// Starts the built binary against `servers` with extra environment,
    /// its log lines (stderr) appended to `log` when given.
    pub fn start_with(servers: &Servers, env: &[(&str, &str)], log: Option<&Path>) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orderd"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
        for (k, v) in servers.env() {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        // orderd logs to stdout; start-up failures go to stderr.
        let (out, err) = match log {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("log file");
                let copy = file.try_clone().expect("log file");
                (Stdio::from(file), Stdio::from(copy))
            }
            None if std::env::var_os("ORDERD_TEST_LOGS").is_some() => {
                (Stdio::inherit(), Stdio::inherit())
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let child = cmd
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("orderd binary starts");
        Self { child }
    }

    /// The process id (for SIGSTOP / SIGCONT).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`STOP`, `CONT`, …) to the process.
    pub fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status();
    }

    /// SIGKILL: no shutdown, no flush, nothing.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A random tenant, so tests never see each other's orders.
pub fn random_tenant() -> TenantId {
    let id = uuid::Uuid::new_v4().simple().to_string();
    TenantId::parse(&format!("t{}", &id[..12])).expect("tenant")
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

/// A connected test client on servers started without an orderd.
pub async fn client_only() -> TestApp {
    client_for(Servers::start().await).await
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

/// A knob of a long test: the environment variable `name`, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The resident memory of process `pid`, in KiB (0 if it cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The `p`th percentile (nearest rank) of `sorted`; NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
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

/// A fresh idempotency key.
pub fn msg_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl TestApp {
    /// Publishes `body` to `subject` through JetStream with the given
    /// headers and `Orderd-Reply-To`, and returns the outcome.
    pub async fn send_raw(
        &self,
        subject: String,
        body: Vec<u8>,
        mut headers: HeaderMap,
    ) -> Outcome {
        let inbox = self.nats.new_inbox();
        let mut sub = self.nats.subscribe(inbox.clone()).await.expect("subscribe");
        headers.insert(headers::ORDERD_REPLY_TO, inbox.as_str());
        let ack = self
            .js
            .publish_with_headers(subject, headers, body.into())
            .await
            .expect("publish")
            .await
            .expect("stream acknowledges the command");
        let _ = ack;
        let msg = tokio::time::timeout(WAIT, sub.next())
            .await
            .expect("an outcome in time")
            .expect("reply subscription open");
        serde_json::from_slice(&msg.payload)
            .or_else(|_| rmp_serde::from_slice(&msg.payload))
            .expect("an Outcome")
    }

    /// Publishes a JSON command with a `Nats-Msg-Id` and returns the outcome.
    pub async fn send(&self, subject: String, body: &Value, id: &str) -> Outcome {
        let mut h = HeaderMap::new();
        h.insert(headers::NATS_MSG_ID, id);
        self.send_raw(subject, serde_json::to_vec(body).expect("json"), h)
            .await
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

/// Every event message of one tenant, as it arrives (doubles removed).
pub struct EventLog {
    rx: mpsc::UnboundedReceiver<EventMessage>,
    seen: Vec<EventMessage>,
    _task: tokio::task::JoinHandle<()>,
}

impl EventLog {
    async fn subscribe(nats: &async_nats::Client, tenant: &TenantId) -> Self {
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
    async fn start(nats: &async_nats::Client, tenant: &TenantId, script: Script) -> Self {
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

/// Every message of `stream` under `filter`, read raw (no dedupe, no ack),
/// oldest first.
pub async fn stored_messages(
    js: &jetstream::Context,
    stream: &str,
    filter: String,
) -> Vec<jetstream::Message> {
    let stream = js.get_stream(stream).await.expect("the stream exists");
    let mut consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            filter_subject: filter,
            ack_policy: jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut remaining = consumer.info().await.expect("info").num_pending as usize;
    let mut out = Vec::with_capacity(remaining);
    while remaining > 0 {
        let mut batch = consumer
            .fetch()
            .max_messages(remaining.min(1000))
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .expect("fetch");
        while let Some(Ok(msg)) = batch.next().await {
            remaining -= 1;
            out.push(msg);
        }
    }
    out
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
