//! `orderd-bench`: measures orderd as its users will, end to end through
//! NATS JetStream, Redis and the order actors, on a stack it starts itself.
//!
//! It starts `nats-server` (JetStream, file storage; the pinned release) and
//! `redis-server` (`appendonly yes`) on free loopback ports in a temporary
//! directory, as the tests do (`orderd-testkit`'s servers), and orderd as a
//! child process (this binary re-executed with `--serve`, which
//! runs `orderd::app::run`): a separate process, so orderd's resident memory
//! and CPU are its own, as in production. Then it plays upstream (creates
//! orders of 3 work orders, one third per execution flow) and dispatch
//! (answers every job with started, then completed once the started is
//! applied) and measures:
//! - lifecycles per second (create publish → the order's EXECUTED event) at
//!   a fixed number of orders in flight and at saturation;
//! - p50/p99/p99.9 latency from each command's publish to its event, at half
//!   the saturation rate and with one order in flight;
//! - orderd's resident memory per live order actor, and (`--passivated N`)
//!   with N orders passivated;
//! - in the same run, the raw capacity of the same servers (JetStream
//!   publish-with-ack, Redis pipelined writes) and orderd's ratio to it;
//! - the CPU time each process (nats-server, redis-server with its forked
//!   children, orderd, the bench) spent per lifecycle during the saturation
//!   phase, and the lifecycles/s the machine's cores allow at that cost: a
//!   figure that holds still on a noisy machine when rates do not.
//!
//! Diagnostics: `ORDERD_BENCH_TRACE=PATH` writes the half-saturation phase's
//! command latencies as CSV with, beside them, round trips timed every 5 ms
//! to nats-server (PING, a JetStream publish), Redis (PING) and orderd (its
//! health endpoint), to tell a stall in one server from queueing;
//! `ORDERD_BENCH_NATS_PROFILE=PORT` starts nats-server with its profiling
//! port (Go's `/debug/pprof/`).
//!
//! It fails (exit 1) if an order does not reach EXECUTED or one of its
//! events is missing (each order's event sequence numbers must be 1, 2, 3…).
//!
//! Durability: `--redis-replica` adds a Redis replica that orderd waits for
//! on every write; `--durable` also runs NATS as a three-node cluster with
//! every stream on three replicas, so an answer means a quorum stored it,
//! and counts the CPU of all five servers. `--instances N` runs N orderd
//! processes on the same servers (one owns the bench's tenant, the others
//! stand by) and sums their CPU: what the coordination costs.
//! `--partitions P` spreads the tenant's orders over P partitions
//! (`ownership.partitions`), so the instances share its work.
//!
//! `cargo run --release -p orderd-bench -- [--quick] [--json PATH]
//! [--passivated N] [--live N] [--secs S] [--inflight N] [--saturation N]
//! [--redis-replica] [--durable] [--instances N] [--partitions P]`

#![recursion_limit = "256"]

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;

use orderd::headers;
use orderd::settings::Settings;
use orderd::subjects;
use orderd::wire;
use orderd_core::model::JobStatus;
use orderd_core::{OrderId, TenantId, WorkOrderId};
use testkit::measure::{cpu_secs, rss_kib};
use testkit::servers::{log_tail, NatsCluster, Servers};
use testkit::Process;

/// The same allocator as the `orderd` binary, so `--serve` measures it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FLOWS: [&str; 3] = ["SEQUENTIAL", "START_TOGETHER", "COMPLETE_TOGETHER"];
const TYPES: [&str; 3] = ["PICKUP", "DELIVERY", "INSTALL"];

/// What to run.
#[derive(Debug, Clone)]
struct Args {
    quick: bool,
    json: Option<PathBuf>,
    passivated: Option<u64>,
    live: u64,
    secs: f64,
    inflight: usize,
    saturation: usize,
    /// A Redis replica, and orderd waits for it on every write
    /// (`redis.wait_replicas = 1`).
    redis_replica: bool,
    /// orderd processes on the same servers (one owns the bench's tenant,
    /// the others stand by): what the coordination of several costs.
    instances: usize,
    /// `ownership.partitions` of every orderd process.
    partitions: u16,
    /// Equal durability with a peer that fsyncs before it answers: a
    /// three-node NATS cluster with every stream on three replicas (a PubAck
    /// means a quorum stored it) and the Redis replica wait.
    durable: bool,
}

impl Args {
    fn parse() -> anyhow::Result<Self> {
        let mut a = Args {
            quick: false,
            json: None,
            passivated: None,
            live: 100_000,
            secs: 20.0,
            inflight: 256,
            saturation: 1024,
            redis_replica: false,
            durable: false,
            instances: 1,
            partitions: 1,
        };
        let mut live = None;
        let mut secs = None;
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut value = || it.next().context(format!("{arg} needs a value"));
            match arg.as_str() {
                "--quick" => a.quick = true,
                "--json" => a.json = Some(value()?.into()),
                "--passivated" => a.passivated = Some(value()?.parse()?),
                "--live" => live = Some(value()?.parse()?),
                "--secs" => secs = Some(value()?.parse()?),
                "--inflight" => a.inflight = value()?.parse()?,
                "--saturation" => a.saturation = value()?.parse()?,
                "--redis-replica" => a.redis_replica = true,
                "--instances" => a.instances = value()?.parse::<usize>()?.max(1),
                "--partitions" => a.partitions = value()?.parse::<u16>()?.max(1),
                "--durable" => {
                    a.durable = true;
                    a.redis_replica = true;
                }
                _ => bail!(
                    "usage: orderd-bench [--quick] [--json PATH] [--passivated N] [--live N] \
                     [--secs S] [--inflight N] [--saturation N] [--redis-replica] [--durable] \
                     [--instances N] [--partitions P]"
                ),
            }
        }
        if a.quick {
            a.live = 5_000;
            a.secs = 5.0;
        }
        a.live = live.unwrap_or(a.live);
        a.secs = secs.unwrap_or(a.secs);
        if a.instances > 1 {
            // Health answers from any instance: memory per actor is
            // measured with one only.
            a.live = 0;
            a.passivated = None;
        }
        Ok(a)
    }
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--serve") {
        return serve();
    }
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("orderd-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("orderd-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("orderd-bench: FAILED (see above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("orderd-bench: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--serve`: orderd itself, configured by the `ORDERD_*` environment, and
/// logging as the `orderd` binary does by default (`info`; `RUST_LOG`
/// wins), to the standard error the bench sends to a file: what a log
/// level costs is part of what users run.
fn serve() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(Settings::default().log.filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let mut settings = Settings::default();
    if let Err(e) = settings
        .apply_env(|k| std::env::var(k).ok())
        .and_then(|()| settings.validate())
    {
        eprintln!("orderd (bench): {e}");
        return ExitCode::from(78);
    }
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::FAILURE;
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match runtime.block_on(orderd::app::run(settings, shutdown)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orderd (bench): {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------- the stack

/// The servers (testkit's: the pinned nats-server, redis-server
/// append-only) and orderd; all killed on drop, orderd first.
struct Stack {
    orderd: Option<Process>,
    /// With `--instances N`: the N - 1 other orderd processes.
    peers: Vec<Process>,
    /// With `--redis-replica`: a replica of the Redis, which orderd waits for.
    replica: Option<testkit::servers::RedisServer>,
    /// With `--durable`: the three-node NATS cluster orderd and the bench
    /// use instead of the single server (which then stands idle).
    cluster: Option<NatsCluster>,
    servers: Servers,
    /// `ownership.partitions` of every orderd process.
    partitions: u16,
}

impl Stack {
    async fn start(redis_replica: bool, durable: bool) -> anyhow::Result<Self> {
        // Go profiles of nats-server on this port, for finding where its
        // share of the cores goes (`/debug/pprof/profile?seconds=N`).
        // Redis as most deployments run it (its default), as in every
        // figure docs/BENCHMARKS.md keeps.
        let servers = Servers::builder()
            .named("orderd-bench")
            .redis_fsync("everysec")
            .nats_profile_port(std::env::var("ORDERD_BENCH_NATS_PROFILE").ok())
            .start()
            .await?;
        let replica = if redis_replica {
            let dir = servers.dir().join("replica");
            std::fs::create_dir_all(&dir)?;
            let port = servers
                .redis()
                .url()
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .to_owned();
            let of = vec!["--replicaof".into(), "127.0.0.1".into(), port];
            Some(testkit::servers::RedisServer::start_with(&dir, of).await?)
        } else {
            None
        };
        let cluster = if durable {
            Some(NatsCluster::start(3).await?)
        } else {
            None
        };
        Ok(Self {
            orderd: None,
            peers: Vec::new(),
            replica,
            cluster,
            servers,
            partitions: 1,
        })
    }

    /// The NATS servers' URLs: the cluster's nodes, or the single server.
    fn nats_urls(&self) -> Vec<String> {
        match &self.cluster {
            Some(cluster) => cluster.urls(),
            None => vec![self.servers.nats_url.clone()],
        }
    }

    /// The nats-server processes: the cluster's three, or the single one.
    fn nats_pids(&self) -> Vec<u32> {
        match &self.cluster {
            Some(cluster) => cluster.pids(),
            None => self.servers.nats().pid().into_iter().collect(),
        }
    }

    /// What the run's durability is, for the report.
    fn setup(&self) -> String {
        let nats = if self.cluster.is_some() {
            "3-node NATS cluster, streams R3"
        } else {
            "one nats-server, streams R1"
        };
        let redis = if self.replica.is_some() {
            "Redis + a replica orderd waits for"
        } else {
            "Redis without replica"
        };
        format!("{nats}; {redis}")
    }

    /// Stream replicas: three on the cluster.
    fn replicas(&self) -> usize {
        if self.cluster.is_some() {
            3
        } else {
            1
        }
    }

    /// The command that runs one orderd (this binary, `--serve`).
    fn orderd_command(&self, name: &str, passivate_ms: u64) -> anyhow::Result<Command> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("--serve")
            .env("ORDERD_NATS_URL", self.nats_urls().join(","))
            .env("ORDERD_NATS_REPLICAS", self.replicas().to_string())
            .env("ORDERD_REDIS_URL", &self.servers.redis_url)
            .env("ORDERD_PASSIVATE_AFTER_MS", passivate_ms.to_string())
            .env("ORDERD_INSTANCE_NAME", name)
            .env("ORDERD_OWNERSHIP_PARTITIONS", self.partitions.to_string());
        if self.replica.is_some() {
            cmd.env("ORDERD_REDIS_WAIT_REPLICAS", "1");
        }
        Ok(cmd)
    }

    /// Starts `n` more orderd processes beside the first, and waits a lease
    /// and a half, so ownership has settled before anything is measured.
    async fn start_peers(&mut self, n: usize) -> anyhow::Result<()> {
        for i in 1..=n {
            let log = self.servers.dir().join(format!("orderd-peer-{i}.log"));
            let cmd = self.orderd_command(&format!("peer-{i}"), 3_600_000)?;
            self.peers
                .push(Process::spawn(cmd, Some(&log)).context("orderd peer")?);
        }
        if n > 0 {
            tokio::time::sleep(Duration::from_millis(4_500)).await;
        }
        Ok(())
    }

    /// Starts orderd (this binary, `--serve`) with the given passivation.
    async fn start_orderd(
        &mut self,
        nats: &async_nats::Client,
        passivate_ms: u64,
    ) -> anyhow::Result<u32> {
        let log = self.servers.dir().join("orderd.log");
        let cmd = self.orderd_command("first", passivate_ms)?;
        let orderd = Process::spawn(cmd, Some(&log)).context("orderd")?;
        let pid = orderd.pid();
        let orderd = self.orderd.insert(orderd);
        let deadline = Instant::now() + Duration::from_secs(30);
        while health(nats).await.is_none() {
            let what = match orderd.exited() {
                Some(status) => Some(format!("exited ({status})")),
                None if Instant::now() > deadline => Some("did not become healthy".to_owned()),
                None => None,
            };
            if let Some(what) = what {
                bail!("orderd {what}; its log ends:\n{}", log_tail(&log, 20));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(pid)
    }

    fn kill_orderd(&mut self) {
        if let Some(orderd) = self.orderd.take() {
            orderd.kill9();
        }
    }
}

/// The live order actors, when orderd answers its health endpoint.
async fn health(nats: &async_nats::Client) -> Option<u64> {
    let answer = tokio::time::timeout(
        Duration::from_secs(2),
        nats.request(subjects::API_HEALTH, "{}".into()),
    )
    .await
    .ok()?
    .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&answer.payload).ok()?;
    if v["ok"] != json!(true) {
        return None;
    }
    v["liveOrders"].as_u64()
}

fn rss_bytes(pid: u32) -> u64 {
    rss_kib(pid) * 1024
}

/// CPU seconds used so far by each process of the run: nats-server,
/// redis-server, orderd, the bench itself.
#[derive(Debug, Clone, Copy, Default)]
struct CpuUse {
    nats: f64,
    redis: f64,
    /// Every orderd process.
    orderd: f64,
    /// Of which the `--instances` peers.
    peers: f64,
    bench: f64,
}

impl CpuUse {
    fn now(stack: &Stack, orderd: u32) -> Self {
        let peers = stack.peers.iter().map(|p| cpu_secs(p.pid())).sum::<f64>();
        Self {
            nats: stack.nats_pids().into_iter().map(cpu_secs).sum(),
            redis: cpu_secs(stack.servers.redis().pid().unwrap_or(0))
                + stack
                    .cluster
                    .as_ref()
                    .and(stack.replica.as_ref())
                    .and_then(|r| r.pid())
                    .map_or(0.0, cpu_secs),
            orderd: cpu_secs(orderd) + peers,
            peers,
            bench: cpu_secs(std::process::id()),
        }
    }

    /// Milliseconds of CPU per lifecycle since `before`.
    fn per_lifecycle_ms(self, before: Self, lifecycles: f64) -> Self {
        let per = |a: f64, b: f64| (a - b) * 1e3 / lifecycles;
        Self {
            nats: per(self.nats, before.nats),
            redis: per(self.redis, before.redis),
            orderd: per(self.orderd, before.orderd),
            peers: per(self.peers, before.peers),
            bench: per(self.bench, before.bench),
        }
    }

    fn total(self) -> f64 {
        self.nats + self.redis + self.orderd + self.bench
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default()
}

// ------------------------------------------------------------- the tracker

/// What the bench knows of one order.
struct OrderTrack {
    created: Instant,
    /// Bit n set: the event with seq n arrived.
    seen: u64,
    /// The seq of the EXECUTED event, once it arrived.
    executed: Option<u64>,
    phase: usize,
}

#[derive(Default)]
struct Tracker {
    orders: HashMap<OrderId, OrderTrack>,
    /// Publish time of each command whose latency is recorded.
    sent: HashMap<String, Instant>,
    recording: bool,
    latencies_us: Vec<u32>,
    /// With `ORDERD_BENCH_TRACE`: each recorded latency with its command's
    /// publish time, to tell stalls (clustered) from queueing (spread).
    trace: Option<Vec<(Instant, u32)>>,
    lifecycle_us: Vec<u32>,
    completed: u64,
    duplicates: u64,
    out_of_range: u64,
    /// Per phase: its permits (closed loop), released by EXECUTED.
    permits: Vec<Option<Arc<Semaphore>>>,
    /// Per phase: orders created, orders executed.
    created_in: Vec<u64>,
    executed_in: Vec<u64>,
    event_bytes: u64,
    event_count: u64,
}

/// The light view of an event message the bench needs.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventView {
    order_id: OrderId,
    seq: u64,
    state: String,
    command_id: String,
}

/// The light view of a job command.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DispatchView {
    order_id: OrderId,
    work_order_id: u32,
    attempt: u32,
    action: String,
}

/// Upstream and dispatch, played by the bench.
#[derive(Clone)]
struct Player {
    tenant: TenantId,
    upstream: jetstream::Context,
    dispatch: jetstream::Context,
    tracker: Arc<Mutex<Tracker>>,
    next_id: Arc<AtomicU64>,
    failed_publishes: Arc<AtomicU64>,
    create_body: Arc<[bytes::Bytes; 3]>,
}

fn create_body(flow: &str) -> bytes::Bytes {
    let body = json!({
        "clientId": "bench",
        "clientName": "Bench Retail",
        "clientOrderId": "PO-bench",
        "executionFlow": flow,
        "dropDetails": {
            "contact": {"name": "Jane Doe", "phone": "+15550100"},
            "location": {"street": "1 Main St", "city": "Springfield"}
        },
        "orderSummary": {"invoiceNumber": "INV-1", "orderDescription": "Sofa and chairs", "totalItems": 3},
        "workOrders": TYPES.iter().map(|t| json!({"type": t})).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&body).unwrap_or_default().into()
}

impl Player {
    /// Publishes a create for the current phase; the PubAck is awaited apart.
    async fn create(&self, phase: usize) {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let key = format!("b:{n}");
        let order = wire::order_id_for_create(&self.tenant, &key);
        {
            let Ok(mut t) = self.tracker.lock() else {
                return;
            };
            let now = Instant::now();
            t.orders.insert(
                order,
                OrderTrack {
                    created: now,
                    seen: 0,
                    executed: None,
                    phase,
                },
            );
            t.created_in[phase] += 1;
            if t.recording {
                t.sent.insert(key.clone(), now);
            }
        }
        let body = self.create_body[usize::try_from(n % 3).unwrap_or(0)].clone();
        self.publish(&self.upstream, subjects::create(&self.tenant), key, body)
            .await;
    }

    async fn publish(
        &self,
        js: &jetstream::Context,
        subject: String,
        msg_id: String,
        body: bytes::Bytes,
    ) {
        let mut h = HeaderMap::new();
        h.insert(headers::NATS_MSG_ID, msg_id.as_str());
        match js.publish_with_headers(subject, h, body).await {
            Ok(ack) => {
                let failed = self.failed_publishes.clone();
                tokio::spawn(async move {
                    if ack.await.is_err() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            Err(_) => {
                self.failed_publishes.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A job update, as dispatch sends it (idempotency key per status).
    async fn job(&self, order: OrderId, work_order: u32, attempt: u32, status: JobStatus) {
        let key = format!(
            "j:{order}:{work_order}:{attempt}:{}",
            match status {
                JobStatus::Started => 's',
                _ => 'c',
            }
        );
        if let Ok(mut t) = self.tracker.lock() {
            if t.recording {
                t.sent.insert(key.clone(), Instant::now());
            }
        }
        let subject = subjects::job_update(&self.tenant, order, WorkOrderId(work_order), status);
        let body = format!("{{\"attempt\":{attempt}}}");
        self.publish(&self.dispatch, subject, key, body.into())
            .await;
    }

    /// Reads the tenant's events: checks sequence numbers, records
    /// latencies, counts lifecycles, and completes jobs whose start applied.
    async fn follow_events(self, mut sub: async_nats::Subscriber) {
        while let Some(msg) = sub.next().await {
            let Ok(e) = serde_json::from_slice::<EventView>(&msg.payload) else {
                continue;
            };
            let now = Instant::now();
            if !self.track_event(&e, msg.payload.len(), now) {
                return;
            }
            // A started job runs, then completes.
            if let Some(rest) = e.command_id.strip_prefix("j:") {
                if let Some(rest) = rest.strip_suffix(":s") {
                    let mut parts = rest.rsplitn(3, ':');
                    let attempt = parts.next().and_then(|a| a.parse().ok());
                    let wo = parts.next().and_then(|w| w.parse().ok());
                    if let (Some(attempt), Some(wo)) = (attempt, wo) {
                        self.job(e.order_id, wo, attempt, JobStatus::Completed)
                            .await;
                    }
                }
            }
        }
    }

    /// Books one event; false when the tracker is gone.
    fn track_event(&self, e: &EventView, len: usize, now: Instant) -> bool {
        let Ok(mut guard) = self.tracker.lock() else {
            return false;
        };
        let t = &mut *guard;

        t.event_bytes += len as u64;
        t.event_count += 1;
        if let Some(at) = t.sent.remove(&e.command_id) {
            let us = u32::try_from(now.duration_since(at).as_micros()).unwrap_or(u32::MAX);
            t.latencies_us.push(us);
            if let Some(trace) = &mut t.trace {
                trace.push((at, us));
            }
        }
        let Some(o) = t.orders.get_mut(&e.order_id) else {
            return true;
        };
        if e.seq == 0 || e.seq > 63 {
            t.out_of_range += 1;
            return true;
        }
        let bit = 1u64 << e.seq;
        if o.seen & bit != 0 {
            t.duplicates += 1;
            return true;
        }
        o.seen |= bit;
        let mut done = None;
        if e.state == "EXECUTED" && o.executed.is_none() {
            o.executed = Some(e.seq);
            done = Some((o.phase, o.created));
        }
        if let Some((phase, created)) = done {
            t.completed += 1;
            t.executed_in[phase] += 1;
            if t.recording {
                let us = u32::try_from(now.duration_since(created).as_micros()).unwrap_or(u32::MAX);
                t.lifecycle_us.push(us);
            }
            if let Some(p) = &t.permits[phase] {
                p.add_permits(1);
            }
        }
        true
    }

    /// Plays dispatch: every job created is started.
    async fn follow_dispatch(self, mut sub: async_nats::Subscriber) {
        while let Some(msg) = sub.next().await {
            let Ok(d) = serde_json::from_slice::<DispatchView>(&msg.payload) else {
                continue;
            };
            if let Ok(mut t) = self.tracker.lock() {
                t.event_bytes += msg.payload.len() as u64;
                t.event_count += 1;
            }
            if d.action == "create" {
                self.job(d.order_id, d.work_order_id, d.attempt, JobStatus::Started)
                    .await;
            }
        }
    }

    fn new_phase(&self, permits: Option<Arc<Semaphore>>) -> usize {
        let Ok(mut t) = self.tracker.lock() else {
            return 0;
        };
        t.permits.push(permits);
        t.created_in.push(0);
        t.executed_in.push(0);
        t.permits.len() - 1
    }

    fn completed(&self) -> u64 {
        self.tracker.lock().map(|t| t.completed).unwrap_or(0)
    }

    fn phase_counts(&self, phase: usize) -> (u64, u64) {
        self.tracker
            .lock()
            .map(|t| (t.created_in[phase], t.executed_in[phase]))
            .unwrap_or((0, 0))
    }

    fn set_recording(&self, on: bool) {
        if let Ok(mut t) = self.tracker.lock() {
            t.recording = on;
            if on {
                t.latencies_us.clear();
                t.lifecycle_us.clear();
            } else {
                t.sent.clear();
            }
        }
    }

    fn take_latencies(&self) -> (Vec<u32>, Vec<u32>) {
        self.tracker
            .lock()
            .map(|mut t| {
                (
                    std::mem::take(&mut t.latencies_us),
                    std::mem::take(&mut t.lifecycle_us),
                )
            })
            .unwrap_or_default()
    }

    /// Waits until every order of `phase` executed; false on timeout.
    async fn drain(&self, phase: usize, progress: &Progress, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let (created, executed) = self.phase_counts(phase);
            progress.set(format!("draining: {executed}/{created} executed"));
            if executed >= created {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

// ----------------------------------------------------------------- progress

#[derive(Clone)]
struct Progress {
    line: Arc<Mutex<String>>,
    on: Arc<AtomicBool>,
}

impl Progress {
    fn start(player: Player) -> Self {
        let p = Self {
            line: Arc::new(Mutex::new(String::new())),
            on: Arc::new(AtomicBool::new(true)),
        };
        let tty = std::io::stderr().is_terminal();
        let this = p.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut last = (Instant::now(), player.completed());
            let mut ticks = 0u64;
            while this.on.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                ticks += 1;
                let done = player.completed();
                let rate = (done - last.1) as f64 / last.0.elapsed().as_secs_f64();
                last = (Instant::now(), done);
                let line = this.line.lock().map(|l| l.clone()).unwrap_or_default();
                let text = format!(
                    "[{:>5.1}s] {line:<44} lifecycles {done:>8} ({rate:>7.0}/s)",
                    started.elapsed().as_secs_f64()
                );
                if tty {
                    eprint!("\r{text}\x1b[K");
                } else if ticks % 4 == 0 {
                    eprintln!("{text}");
                }
                let _ = std::io::stderr().flush();
            }
            if tty {
                eprint!("\r\x1b[K");
            }
        });
        p
    }

    fn set(&self, s: impl Into<String>) {
        if let Ok(mut l) = self.line.lock() {
            *l = s.into();
        }
    }

    fn stop(&self) {
        self.on.store(false, Ordering::Relaxed);
    }
}

fn note(progress: &Progress, what: &str) {
    progress.set(what);
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K");
    }
    eprintln!("· {what}");
}

// ------------------------------------------------------------------- phases

/// A closed loop: `inflight` orders at all times for `secs` (after a warm-up
/// of a fifth of that); returns lifecycles/s over the measured window.
async fn closed_loop(
    player: &Player,
    progress: &Progress,
    label: &str,
    inflight: usize,
    secs: f64,
    record: bool,
) -> anyhow::Result<f64> {
    let permits = Arc::new(Semaphore::new(inflight));
    let phase = player.new_phase(Some(permits.clone()));
    let warm = Duration::from_secs_f64((secs / 5.0).max(0.5));
    let measure = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut window: Option<(Instant, u64)> = None;
    progress.set(format!("{label}: warm-up"));
    loop {
        let elapsed = start.elapsed();
        if window.is_none() && elapsed >= warm {
            player.set_recording(record);
            window = Some((Instant::now(), player.phase_counts(phase).1));
            progress.set(format!("{label}: measuring ({inflight} in flight)"));
        }
        if elapsed >= warm + measure {
            break;
        }
        let Ok(Ok(permit)) =
            tokio::time::timeout(Duration::from_millis(50), permits.acquire()).await
        else {
            continue;
        };
        permit.forget();
        player.create(phase).await;
    }
    let (t0, c0) = window.context("no measuring window")?;
    let c1 = player.phase_counts(phase).1;
    let rate = (c1 - c0) as f64 / t0.elapsed().as_secs_f64();
    player.set_recording(false);
    if !player.drain(phase, progress, Duration::from_secs(60)).await {
        let (created, executed) = player.phase_counts(phase);
        bail!("{label}: only {executed} of {created} orders reached EXECUTED");
    }
    Ok(rate)
}

/// An open loop: creates at `rate` per second for `secs`, latencies recorded.
async fn open_loop(
    player: &Player,
    progress: &Progress,
    label: &str,
    rate: f64,
    secs: f64,
) -> anyhow::Result<f64> {
    let phase = player.new_phase(None);
    let warm = Duration::from_secs_f64((secs / 5.0).max(0.5));
    let start = Instant::now();
    let mut sent = 0u64;
    let mut recording = false;
    let mut window = (Instant::now(), 0u64);
    progress.set(format!("{label}: warm-up"));
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let elapsed = start.elapsed();
        if !recording && elapsed >= warm {
            recording = true;
            player.set_recording(true);
            window = (Instant::now(), player.phase_counts(phase).1);
            progress.set(format!("{label}: measuring at {rate:.0}/s"));
        }
        if elapsed.as_secs_f64() >= warm.as_secs_f64() + secs {
            break;
        }
        let due = (elapsed.as_secs_f64() * rate) as u64;
        while sent < due {
            player.create(phase).await;
            sent += 1;
        }
    }
    let achieved =
        (player.phase_counts(phase).1 - window.1) as f64 / window.0.elapsed().as_secs_f64();
    player.set_recording(false);
    if !player.drain(phase, progress, Duration::from_secs(60)).await {
        let (created, executed) = player.phase_counts(phase);
        bail!("{label}: only {executed} of {created} orders reached EXECUTED");
    }
    Ok(achieved)
}

/// Round trips to each server and to orderd, timed every few milliseconds
/// beside the half-saturation phase (with `ORDERD_BENCH_TRACE`): a stall
/// in the commands' latency that one of them shares points at its cause.
type ProbeLog = Arc<Mutex<Vec<(Instant, &'static str, u32)>>>;

fn start_probes(
    nats: &async_nats::Client,
    js: &jetstream::Context,
    redis_url: &str,
    stop: &Arc<AtomicBool>,
) -> (ProbeLog, Vec<tokio::task::JoinHandle<()>>) {
    let log: ProbeLog = Arc::default();
    let every = Duration::from_millis(5);
    let mut tasks = Vec::new();
    let record = |log: &ProbeLog, what: &'static str, at: Instant| {
        let us = u32::try_from(at.elapsed().as_micros()).unwrap_or(u32::MAX);
        if let Ok(mut l) = log.lock() {
            l.push((at, what, us));
        }
    };
    {
        let (nats, log, stop) = (nats.clone(), log.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let at = Instant::now();
                if nats.flush().await.is_ok() {
                    record(&log, "nats_ping", at);
                }
                let at = Instant::now();
                if health(&nats).await.is_some() {
                    record(&log, "orderd_health", at);
                }
                tokio::time::sleep(every).await;
            }
        }));
    }
    {
        let (js, log, stop) = (js.clone(), log.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let _ = js
                .get_or_create_stream(stream::Config {
                    name: "BENCH_PROBE".into(),
                    subjects: vec!["bench.probe".into()],
                    max_messages: 1_000,
                    ..Default::default()
                })
                .await;
            while !stop.load(Ordering::Relaxed) {
                let at = Instant::now();
                if let Ok(ack) = js.publish("bench.probe", "p".into()).await {
                    if ack.await.is_ok() {
                        record(&log, "js_publish", at);
                    }
                }
                tokio::time::sleep(every).await;
            }
        }));
    }
    {
        let (url, log, stop) = (redis_url.to_owned(), log.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(client) = redis::Client::open(url) else {
                return;
            };
            let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
                return;
            };
            while !stop.load(Ordering::Relaxed) {
                let at = Instant::now();
                let pong: redis::RedisResult<String> =
                    redis::cmd("PING").query_async(&mut conn).await;
                if pong.is_ok() {
                    record(&log, "redis_ping", at);
                }
                tokio::time::sleep(every).await;
            }
        }));
    }
    (log, tasks)
}

/// Writes the half-saturation phase's latencies and probes as CSV:
/// milliseconds since the phase began, what, latency in milliseconds.
fn write_trace(
    player: &Player,
    probes: &ProbeLog,
    since: Instant,
    path: &Path,
) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    let mut rows: Vec<(Instant, &'static str, u32)> = player
        .tracker
        .lock()
        .map(|mut t| t.trace.as_mut().map(std::mem::take).unwrap_or_default())
        .unwrap_or_default()
        .into_iter()
        .map(|(at, us)| (at, "command", us))
        .collect();
    rows.extend(
        probes
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default(),
    );
    rows.sort_by_key(|r| r.0);
    let mut csv = String::from("at_ms,what,latency_ms\n");
    for (at, what, us) in rows {
        let _ = writeln!(
            csv,
            "{:.3},{what},{:.3}",
            at.saturating_duration_since(since).as_secs_f64() * 1e3,
            f64::from(us) / 1e3
        );
    }
    std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
struct Percentiles {
    samples: usize,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
}

fn percentiles(mut us: Vec<u32>) -> Percentiles {
    if us.is_empty() {
        return Percentiles::default();
    }
    us.sort_unstable();
    let at = |q: f64| {
        let i = ((us.len() as f64 * q).ceil() as usize).clamp(1, us.len()) - 1;
        f64::from(us[i]) / 1000.0
    };
    Percentiles {
        samples: us.len(),
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        p999_ms: at(0.999),
        max_ms: at(1.0),
    }
}

// ------------------------------------------------------------ raw capacity

/// JetStream publish-with-ack messages/s into a file-stored stream, with
/// `window` publishes in flight, messages of `size` bytes with a msg id.
async fn raw_jetstream(
    client: &async_nats::Client,
    size: usize,
    secs: f64,
    window: usize,
    replicas: usize,
) -> anyhow::Result<f64> {
    let js = jetstream::new(client.clone());
    let _ = js.delete_stream("BENCH_RAW").await;
    js.create_stream(stream::Config {
        name: "BENCH_RAW".into(),
        subjects: vec!["bench.raw.>".into()],
        storage: stream::StorageType::File,
        num_replicas: replicas,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .context("raw stream")?;
    let payload = bytes::Bytes::from(vec![b'x'; size]);
    let mut pending = FuturesUnordered::new();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut acked = 0u64;
    let mut n = 0u64;
    while Instant::now() < end {
        while pending.len() < window {
            n += 1;
            let mut h = HeaderMap::new();
            h.insert(headers::NATS_MSG_ID, format!("raw:{n}:{}", "0".repeat(40)));
            let ack = js
                .publish_with_headers(format!("bench.raw.{}", n % 64), h, payload.clone())
                .await?;
            pending.push(std::future::IntoFuture::into_future(ack));
        }
        if let Some(r) = pending.next().await {
            r?;
            acked += 1;
        }
    }
    let rate = acked as f64 / start.elapsed().as_secs_f64();
    while let Some(r) = pending.next().await {
        r?;
    }
    let _ = js.delete_stream("BENCH_RAW").await;
    Ok(rate)
}

/// Redis pipelined SETs of `size`-byte values/s, `tasks` pipelines of
/// `depth` in flight.
async fn raw_redis(redis_url: &str, size: usize, secs: f64) -> anyhow::Result<f64> {
    let client = redis::Client::open(redis_url)?;
    let value = vec![b'x'; size];
    let depth = 128usize;
    let tasks = 2usize;
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut handles = Vec::new();
    for task in 0..tasks {
        let mut conn = client.get_multiplexed_async_connection().await?;
        let value = value.clone();
        handles.push(tokio::spawn(async move {
            let mut written = 0u64;
            let mut i = 0u64;
            while Instant::now() < end {
                let mut pipe = redis::pipe();
                for _ in 0..depth {
                    i += 1;
                    pipe.cmd("SET")
                        .arg(format!("bench:raw:{task}:{}", i % 50_000))
                        .arg(&value)
                        .ignore();
                }
                pipe.query_async::<()>(&mut conn).await?;
                written += depth as u64;
            }
            Ok::<u64, redis::RedisError>(written)
        }));
    }
    let mut total = 0;
    for h in handles {
        total += h.await??;
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    let mut conn = client.get_multiplexed_async_connection().await?;
    for task in 0..tasks {
        let keys: Vec<String> = (0..50_000)
            .map(|i| format!("bench:raw:{task}:{i}"))
            .collect();
        for chunk in keys.chunks(5_000) {
            redis::cmd("DEL")
                .arg(chunk)
                .query_async::<()>(&mut conn)
                .await?;
        }
    }
    Ok(rate)
}

/// Messages stored in orderd's four streams.
async fn stream_messages(js: &jetstream::Context) -> anyhow::Result<u64> {
    let mut total = 0;
    for name in [
        subjects::STREAM_COMMANDS,
        subjects::STREAM_JOBS,
        subjects::STREAM_DISPATCH,
        subjects::STREAM_EVENTS,
    ] {
        let mut s = js.get_stream(name).await?;
        total += s.info().await?.state.messages;
    }
    Ok(total)
}

/// Redis command counts (commandstats): (writes sent by orderd: scripts
/// and SETs; reads: HGET/GET; every command).
async fn redis_counts(conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<(u64, u64)> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    let mut writes = 0;
    let mut reads = 0;
    for line in info.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let calls = rest
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .and_then(|c| c.parse::<u64>().ok())
            .unwrap_or(0);
        match name {
            "cmdstat_evalsha" | "cmdstat_eval" | "cmdstat_set" | "cmdstat_mset" => writes += calls,
            "cmdstat_hget" | "cmdstat_get" | "cmdstat_hmget" | "cmdstat_mget" => reads += calls,
            _ => {}
        }
    }
    Ok((writes, reads))
}

// -------------------------------------------------------------------- bench

#[allow(clippy::too_many_lines)]
async fn bench(args: Args) -> anyhow::Result<bool> {
    let load_start = load_average();
    let trace_path = std::env::var_os("ORDERD_BENCH_TRACE").map(PathBuf::from);
    eprintln!(
        "orderd-bench: {} cores ({}), load average {load_start}",
        std::thread::available_parallelism().map_or(0, usize::from),
        cpu_model()
    );
    let mut stack = Stack::start(args.redis_replica, args.durable).await?;
    stack.partitions = args.partitions;
    eprintln!(
        "servers: {} | {} ({})",
        stack.servers.nats().version(),
        stack.servers.redis().version(),
        stack.setup()
    );
    let connect = |name: &'static str| {
        let url = stack.nats_urls();
        async move {
            async_nats::ConnectOptions::new()
                .name(name)
                .subscription_capacity(1 << 20)
                .client_capacity(1 << 16)
                .connect(url)
                .await
        }
    };
    let control = connect("bench-control").await?;
    let upstream = connect("bench-upstream").await?;
    let dispatch = connect("bench-dispatch").await?;
    let events = connect("bench-events").await?;
    let passivate_ms = 3_600_000;
    let pid = stack.start_orderd(&control, passivate_ms).await?;
    stack.start_peers(args.instances - 1).await?;
    let rss_idle = rss_bytes(pid);

    let tenant = TenantId::parse("bench")?;
    let player = Player {
        tenant: tenant.clone(),
        upstream: jetstream::new(upstream.clone()),
        dispatch: jetstream::new(dispatch.clone()),
        tracker: Arc::new(Mutex::new(Tracker {
            trace: trace_path.as_ref().map(|_| Vec::new()),
            ..Tracker::default()
        })),
        next_id: Arc::new(AtomicU64::new(1)),
        failed_publishes: Arc::new(AtomicU64::new(0)),
        create_body: Arc::new(FLOWS.map(create_body)),
    };
    let ev_sub = events
        .subscribe(subjects::events_of_tenant(&tenant))
        .await?;
    let job_sub = dispatch
        .subscribe(subjects::dispatch_of_tenant(&tenant))
        .await?;
    events.flush().await?;
    dispatch.flush().await?;
    tokio::spawn(player.clone().follow_events(ev_sub));
    tokio::spawn(player.clone().follow_dispatch(job_sub));
    let progress = Progress::start(player.clone());
    let control_js = jetstream::new(control.clone());
    let mut redis_conn = redis::Client::open(stack.servers.redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;

    // Warm-up, and the sizes of what orderd writes.
    note(&progress, "warm-up");
    closed_loop(&player, &progress, "warm-up", 64, 2.0, false).await?;
    let (msg_size, snapshot_size) = {
        let (bytes, count) = player
            .tracker
            .lock()
            .map(|t| (t.event_bytes, t.event_count))
            .unwrap_or((0, 1));
        let ids: Vec<OrderId> = player
            .tracker
            .lock()
            .map(|t| t.orders.keys().take(50).copied().collect())
            .unwrap_or_default();
        let mut snap_total = 0u64;
        for id in &ids {
            let n: u64 = redis::cmd("HSTRLEN")
                .arg(orderd::store::keys::order(id))
                .arg("snap")
                .query_async(&mut redis_conn)
                .await?;
            snap_total += n;
        }
        (
            usize::try_from(bytes / count.max(1)).unwrap_or(512),
            usize::try_from(snap_total / (ids.len().max(1) as u64)).unwrap_or(2048),
        )
    };

    let raw_secs = if args.quick { 2.0 } else { 5.0 };
    note(&progress, "raw capacity (JetStream, Redis)");
    let js_raw_1 = raw_jetstream(&control, msg_size, raw_secs, 4096, stack.replicas()).await?;
    let redis_raw_1 = raw_redis(&stack.servers.redis_url, snapshot_size, raw_secs).await?;

    // Throughput at a fixed number in flight.
    note(&progress, &format!("{} orders in flight", args.inflight));
    let fixed = closed_loop(&player, &progress, "fixed", args.inflight, args.secs, false).await?;

    // Saturation, with the messages and writes a lifecycle costs.
    note(
        &progress,
        &format!("saturation ({} in flight)", args.saturation),
    );
    let js0 = stream_messages(&control_js).await?;
    let (w0, r0) = redis_counts(&mut redis_conn).await?;
    let done0 = player.completed();
    let cpu0 = CpuUse::now(&stack, pid);
    let saturated = closed_loop(
        &player,
        &progress,
        "saturation",
        args.saturation,
        args.secs,
        false,
    )
    .await?;
    let lifecycles = (player.completed() - done0).max(1) as f64;
    let cpu = CpuUse::now(&stack, pid).per_lifecycle_ms(cpu0, lifecycles);
    let js_per = (stream_messages(&control_js).await? - js0) as f64 / lifecycles;
    let (w1, r1) = redis_counts(&mut redis_conn).await?;
    let redis_per = (w1 - w0) as f64 / lifecycles;
    let redis_reads_per = (r1 - r0) as f64 / lifecycles;

    // Latency at half the saturation rate, and with one order in flight.
    let half = (saturated / 2.0).max(1.0);
    note(
        &progress,
        &format!("latency at half saturation ({half:.0}/s)"),
    );
    let stop_probes = Arc::new(AtomicBool::new(false));
    let half_start = Instant::now();
    let probes = trace_path.as_ref().map(|_| {
        start_probes(
            &control,
            &control_js,
            &stack.servers.redis_url,
            &stop_probes,
        )
    });
    let half_achieved = open_loop(&player, &progress, "half", half, args.secs).await?;
    stop_probes.store(true, Ordering::Relaxed);
    if let (Some(path), Some((log, tasks))) = (&trace_path, probes) {
        for t in tasks {
            let _ = t.await;
        }
        write_trace(&player, &log, half_start, path)?;
    }
    let (cmd_half, life_half) = player.take_latencies();
    note(&progress, "latency, one order in flight");
    closed_loop(
        &player,
        &progress,
        "one",
        1,
        (args.secs / 2.0).max(3.0),
        true,
    )
    .await?;
    let (cmd_one, life_one) = player.take_latencies();

    // Raw capacity again, at the end of the run.
    note(&progress, "raw capacity again");
    let js_raw_2 = raw_jetstream(&control, msg_size, raw_secs, 4096, stack.replicas()).await?;
    let redis_raw_2 = raw_redis(&stack.servers.redis_url, snapshot_size, raw_secs).await?;

    // Memory per live actor.
    note(
        &progress,
        &format!("memory: {} more live orders", args.live),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let live0 = health(&control).await.unwrap_or(0);
    let rss0 = rss_bytes(pid);
    {
        let permits = Arc::new(Semaphore::new(args.saturation));
        let phase = player.new_phase(Some(permits.clone()));
        for _ in 0..args.live {
            let Ok(p) = permits.acquire().await else {
                break;
            };
            p.forget();
            player.create(phase).await;
        }
        if !player
            .drain(phase, &progress, Duration::from_secs(120))
            .await
        {
            let (created, executed) = player.phase_counts(phase);
            bail!("memory: only {executed} of {created} orders reached EXECUTED");
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let live1 = health(&control).await.unwrap_or(0);
    let rss1 = rss_bytes(pid);
    let per_actor =
        (rss1.saturating_sub(rss0)) as f64 / (live1.saturating_sub(live0)).max(1) as f64;

    // Passivated orders (long: not in --quick unless asked).
    let mut passivated = None;
    if let Some(n) = args.passivated {
        note(
            &progress,
            &format!("passivation: {n} orders through an orderd that passivates after 1 s"),
        );
        stack.kill_orderd();
        let pid2 = stack.start_orderd(&control, 1_000).await?;
        let permits = Arc::new(Semaphore::new(args.saturation));
        let phase = player.new_phase(Some(permits.clone()));
        let mut peak_rss = 0;
        for i in 0..n {
            let Ok(p) = permits.acquire().await else {
                break;
            };
            p.forget();
            player.create(phase).await;
            if i % 10_000 == 0 {
                peak_rss = peak_rss.max(rss_bytes(pid2));
            }
        }
        if !player
            .drain(phase, &progress, Duration::from_secs(300))
            .await
        {
            let (created, executed) = player.phase_counts(phase);
            bail!("passivation: only {executed} of {created} orders reached EXECUTED");
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut live = health(&control).await.unwrap_or(u64::MAX);
        while live > 0 && Instant::now() < deadline {
            progress.set(format!("passivation: {live} actors still live"));
            tokio::time::sleep(Duration::from_millis(500)).await;
            live = health(&control).await.unwrap_or(u64::MAX);
        }
        let rss = rss_bytes(pid2);
        peak_rss = peak_rss.max(rss);
        passivated = Some((n, rss, peak_rss, live));
    }
    progress.stop();
    tokio::time::sleep(Duration::from_millis(600)).await;

    // Checks: every order executed, every event there.
    let mut ok = true;
    let failed_publishes = player.failed_publishes.load(Ordering::Relaxed);
    let (orders, not_executed, gaps, duplicates) = {
        let t = player
            .tracker
            .lock()
            .map_err(|_| anyhow::anyhow!("tracker poisoned"))?;
        let mut not_executed = 0u64;
        let mut gaps = 0u64;
        for o in t.orders.values() {
            match o.executed {
                None => not_executed += 1,
                Some(last) => {
                    // Bits 1..=last set, nothing else.
                    let want = if last >= 63 {
                        u64::MAX << 1
                    } else {
                        ((1u64 << (last + 1)) - 1) & !1
                    };
                    if o.seen != want {
                        gaps += 1;
                    }
                }
            }
        }
        (
            t.orders.len(),
            not_executed,
            gaps + t.out_of_range,
            t.duplicates,
        )
    };
    if not_executed > 0 {
        eprintln!("FAIL: {not_executed} of {orders} orders did not reach EXECUTED");
        ok = false;
    }
    if gaps > 0 {
        eprintln!("FAIL: {gaps} orders miss an event (sequence numbers not contiguous)");
        ok = false;
    }
    if failed_publishes > 0 {
        eprintln!("FAIL: {failed_publishes} publishes by the bench were not acknowledged");
        ok = false;
    }

    let js_raw = js_raw_1.max(js_raw_2);
    let redis_raw = redis_raw_1.max(redis_raw_2);
    let budget = (js_raw / js_per).min(redis_raw / redis_per);
    let ratio = saturated / budget;
    let half_p = percentiles(cmd_half);
    let one_p = percentiles(cmd_one);
    let life_half_p = percentiles(life_half);
    let life_one_p = percentiles(life_one);
    let load_end = load_average();
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;

    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!();
    println!(
        "orderd-bench ({}), {orders} orders, {} cores, load average {load_start} → {load_end}",
        if args.quick { "quick" } else { "full" },
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!(
        "servers: {} | {} ({})",
        stack.servers.nats().version(),
        stack.servers.redis().version(),
        stack.setup()
    );
    println!("{:<48} {:>14}", "measure", "value");
    let row = |k: &str, v: String| println!("{k:<48} {v:>14}");
    row("orderd instances (CPU summed)", args.instances.to_string());
    row("partitions of the tenant", args.partitions.to_string());
    row(
        &format!("lifecycles/s, {} in flight", args.inflight),
        format!("{fixed:.0}"),
    );
    row(
        &format!("lifecycles/s, saturation ({} in flight)", args.saturation),
        format!("{saturated:.0}"),
    );
    row(
        "JetStream raw publish-with-ack msgs/s",
        format!("{js_raw:.0}"),
    );
    row("Redis raw pipelined SETs/s", format!("{redis_raw:.0}"));
    row("JetStream msgs per lifecycle", format!("{js_per:.2}"));
    row("Redis writes per lifecycle", format!("{redis_per:.2}"));
    row("Redis reads per lifecycle", format!("{redis_reads_per:.2}"));
    row("raw budget lifecycles/s", format!("{budget:.0}"));
    row("ratio to raw budget", format!("{:.1}%", ratio * 100.0));
    row(
        "CPU ms per lifecycle: nats/redis/orderd/bench",
        format!(
            "{:.3}/{:.3}/{:.3}/{:.3}",
            cpu.nats, cpu.redis, cpu.orderd, cpu.bench
        ),
    );
    row(
        "  all four; lifecycles/s the cores allow",
        format!("{:.3}; {:.0}", cpu.total(), cores * 1e3 / cpu.total()),
    );
    row(
        &format!("command→event p50/p99/p99.9 ms @ {half:.0}/s"),
        format!(
            "{:.2}/{:.2}/{:.2}",
            half_p.p50_ms, half_p.p99_ms, half_p.p999_ms
        ),
    );
    row(
        "command→event p50/p99/p99.9 ms, 1 in flight",
        format!(
            "{:.2}/{:.2}/{:.2}",
            one_p.p50_ms, one_p.p99_ms, one_p.p999_ms
        ),
    );
    row(
        "lifecycle p50/p99 ms @ half, 1 in flight",
        format!(
            "{:.1}/{:.1} {:.1}/{:.1}",
            life_half_p.p50_ms, life_half_p.p99_ms, life_one_p.p50_ms, life_one_p.p99_ms
        ),
    );
    row("orderd RSS idle MiB", format!("{:.1}", mib(rss_idle)));
    row(
        &format!(
            "bytes per live actor ({} more live)",
            live1.saturating_sub(live0)
        ),
        format!("{per_actor:.0}"),
    );
    row(
        "orderd RSS with all live orders MiB",
        format!("{:.1}", mib(rss1)),
    );
    if let Some((n, rss, peak, live)) = passivated {
        row(
            &format!("orderd RSS, {n} passivated ({live} live) MiB"),
            format!("{:.1}", mib(rss)),
        );
        row(
            "  peak RSS during that run MiB",
            format!("{:.1}", mib(peak)),
        );
    }
    row("event duplicates seen", duplicates.to_string());
    println!("result: {}", if ok { "PASS" } else { "FAIL" });

    if let Some(path) = &args.json {
        let report = json!({
            "quick": args.quick,
            "redis_replica_wait": args.redis_replica,
            "nats_cluster_r3": args.durable,
            "instances": args.instances,
            "partitions": args.partitions,
            "setup": stack.setup(),
            "ok": ok,
            "orders": orders,
            "lifecycles_per_sec": saturated,
            "lifecycles_per_sec_fixed_inflight": fixed,
            "fixed_inflight": args.inflight,
            "saturation_inflight": args.saturation,
            "raw_budget_lifecycles_per_sec": budget,
            "ratio_to_raw": ratio,
            "cpu_ms_per_lifecycle": {
                "nats": cpu.nats,
                "redis": cpu.redis,
                "orderd": cpu.orderd,
                "orderd_peers": cpu.peers,
                "bench": cpu.bench,
                "total": cpu.total(),
            },
            "lifecycles_per_sec_cores_allow": cores * 1e3 / cpu.total(),
            "js_raw_msgs_per_sec": js_raw,
            "js_raw_msgs_per_sec_start_end": [js_raw_1, js_raw_2],
            "redis_raw_writes_per_sec": redis_raw,
            "redis_raw_writes_per_sec_start_end": [redis_raw_1, redis_raw_2],
            "js_msgs_per_lifecycle": js_per,
            "redis_writes_per_lifecycle": redis_per,
            "redis_reads_per_lifecycle": redis_reads_per,
            "message_bytes_avg": msg_size,
            "snapshot_bytes_avg": snapshot_size,
            "half_saturation_rate": half,
            "half_saturation_achieved": half_achieved,
            "p50_ms": half_p.p50_ms,
            "p99_ms": half_p.p99_ms,
            "p999_ms": half_p.p999_ms,
            "latency_half_saturation": half_p,
            "latency_one_in_flight": one_p,
            "lifecycle_latency_half_saturation": life_half_p,
            "lifecycle_latency_one_in_flight": life_one_p,
            "one_in_flight_p50_ms": one_p.p50_ms,
            "one_in_flight_p99_ms": one_p.p99_ms,
            "one_in_flight_p999_ms": one_p.p999_ms,
            "bytes_per_live_actor": per_actor,
            "live_actors_measured": live1.saturating_sub(live0),
            "rss_mib_idle": mib(rss_idle),
            "rss_mib_all_live": mib(rss1),
            "rss_mib_passivated_1m": passivated.map(|(_, rss, _, _)| mib(rss)),
            "passivated_orders": passivated.map(|(n, _, _, _)| n),
            "passivated_peak_rss_mib": passivated.map(|(_, _, p, _)| mib(p)),
            "event_duplicates": duplicates,
            "nats_server_version": stack.servers.nats().version(),
            "redis_server_version": stack.servers.redis().version(),
            "cores": std::thread::available_parallelism().map_or(0, usize::from),
            "cpu": cpu_model(),
            "load_average_start": load_start,
            "load_average_end": load_end,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    drop(stack);
    Ok(ok)
}
