//! Chaos: orders driven at a steady rate through a simulated dispatch while
//! the orderd process is killed with SIGKILL every few seconds, and Redis and
//! NATS are each killed (SIGKILL) and restarted twice. Once the faults stop
//! and the work drains, four invariants are checked:
//!
//! - **no loss**: every command that got a PubAck is in an order's stored
//!   events, or was refused with an error the client heard;
//! - **no double effect**: each order's stored events are numbered 1, 2, 3…
//!   without a gap or a double, no command id is applied twice, and dispatch
//!   received each job command (order, work order, attempt, action) once;
//! - **model equality**: replaying each order's applied commands through
//!   `orderd_core::execute` (at the times the events carry) gives exactly the
//!   snapshot in Redis;
//! - **liveness**: every order reaches CLOSED within a bound after the
//!   faults stop.
//!
//! Each order: create → (first event) hold → (held) resume → dispatch
//! answers started + completed per job → (EXECUTED) close: 8 commands.
//!
//! The short form runs in the normal test run (`chaos_short`: 5,000 orders
//! at 100 a second, about a minute; `chaos_short_three_instances`: the same
//! with three orderd processes, one killed every 5 s in turn, 3,000
//! orders);
//! the long form is ignored and takes its size from the environment:
//!
//! ```sh
//! CHAOS_ORDERS=100000 CHAOS_RATE=250 CHAOS_DRAIN_SECS=600 \
//!   cargo test --release --test chaos chaos -- --ignored --exact --nocapture
//! # with several instances: CHAOS_INSTANCES=3 (the kills go round them),
//! # and CHAOS_PARTITIONS=4 to spread the tenant's orders over them
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull};
use async_nats::HeaderMap;
use futures::{StreamExt, TryStreamExt};

use orderd::headers;
use orderd::store::SnapshotStore;
use orderd::subjects::{self, Inbound, Verb};
use orderd::wire::{self, DispatchMessage, EventMessage, Outcome};
use orderd_core::model::JobStatus;
use orderd_core::{
    apply_change, execute, Command, CommandId, Ctx, Envelope, Order, OrderId, TenantConfig,
    TenantId, Timestamp, WorkOrderId,
};
use testkit::{create_body, env_or, stored_events, Process, Servers};

/// The size and pace of a run.
#[derive(Debug, Clone)]
struct Knobs {
    orders: usize,
    /// Orders created per second.
    rate: f64,
    kill_every: Duration,
    redis_kills: usize,
    nats_kills: usize,
    /// How long the work may take to drain once the faults stop.
    drain: Duration,
    /// orderd processes on the same servers; the kills go round them.
    instances: usize,
    /// `ownership.partitions` of every instance.
    partitions: u16,
}

impl Knobs {
    fn from_env(orders: usize, rate: f64, kill_every_secs: u64) -> Self {
        Self {
            orders: env_or("CHAOS_ORDERS", orders),
            rate: env_or("CHAOS_RATE", rate),
            kill_every: Duration::from_secs(env_or("CHAOS_KILL_EVERY_SECS", kill_every_secs)),
            redis_kills: env_or("CHAOS_REDIS_KILLS", 2),
            nats_kills: env_or("CHAOS_NATS_KILLS", 2),
            drain: Duration::from_secs(env_or("CHAOS_DRAIN_SECS", 180)),
            instances: env_or("CHAOS_INSTANCES", 1),
            partitions: env_or("CHAOS_PARTITIONS", 1),
        }
    }
}

/// The short form, inside the normal test run: 5,000 orders (about 40,000
/// commands) over 50 s, orderd killed every 10 s, Redis and NATS twice each.
#[tokio::test]
async fn chaos_short() {
    run(Knobs {
        orders: 5_000,
        rate: 100.0,
        kill_every: Duration::from_secs(10),
        redis_kills: 2,
        nats_kills: 2,
        drain: Duration::from_secs(120),
        instances: 1,
        partitions: 1,
    })
    .await;
}

/// The short form with three orderd instances: 3,000 orders over 30 s, one
/// instance killed every 5 s in turn (the tenant's owner among them, so
/// its lanes are taken over), Redis and NATS once each.
///
/// It found commands lost at a hand-over (a stopping lane nak'ed them round
/// its own stream until `max_deliver` dropped them) and Redis writes lost
/// with `appendfsync everysec`: docs/RELIABILITY.md, "What these tests
/// found".
#[tokio::test]
async fn chaos_short_three_instances() {
    run(Knobs {
        orders: 3_000,
        rate: 100.0,
        kill_every: Duration::from_secs(5),
        redis_kills: 1,
        nats_kills: 1,
        drain: Duration::from_secs(120),
        instances: 3,
        partitions: 1,
    })
    .await;
}

/// The three-instance short form with the tenant's orders in 4
/// partitions: each instance owns some of them, so every kill takes
/// partitions over while creates (read on partition 0) and the commands
/// after them are decided by different instances.
#[tokio::test]
async fn chaos_short_three_instances_partitioned() {
    run(Knobs {
        orders: 3_000,
        rate: 100.0,
        kill_every: Duration::from_secs(5),
        redis_kills: 1,
        nats_kills: 1,
        drain: Duration::from_secs(120),
        instances: 3,
        partitions: 4,
    })
    .await;
}

/// The long form: 5,000 orders by default, sized from the environment
/// (`CHAOS_ORDERS=100000` in the documented run), orderd killed every 10 s.
#[tokio::test]
#[ignore = "long: run with --ignored (see the module docs)"]
async fn chaos() {
    run(Knobs::from_env(5_000, 60.0, 10)).await;
}

/// A command the test published: where, and what, to replay it.
struct Sent {
    subject: String,
    body: Vec<u8>,
}

#[derive(Default)]
struct Ledger {
    sent: HashMap<String, Sent>,
    acked: HashSet<String>,
    /// The last outcome heard per command id.
    outcomes: HashMap<String, Outcome>,
    /// Every event, once per (order, seq), as the watcher saw it.
    events: HashMap<(String, u64), EventMessage>,
    closed: HashSet<String>,
    /// Job commands received, by (order, work order, attempt, action): the
    /// distinct stream sequences they came in.
    dispatched: HashMap<(String, u32, u32, String), HashSet<u64>>,
}

struct World {
    js: jetstream::Context,
    tenant: TenantId,
    ledger: Mutex<Ledger>,
    publish_attempts: AtomicU64,
}

type Shared = Arc<World>;

impl World {
    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().expect("ledger")
    }
}

/// Publishes a command through JetStream until it is acknowledged (NATS may
/// be down for a while), with a stable `Nats-Msg-Id`.
async fn publish_durable(w: Shared, subject: String, id: String, body: Vec<u8>) {
    w.ledger().sent.insert(
        id.clone(),
        Sent {
            subject: subject.clone(),
            body: body.clone(),
        },
    );
    let reply = format!("chaosr.{id}");
    loop {
        w.publish_attempts.fetch_add(1, Ordering::Relaxed);
        let mut h = HeaderMap::new();
        h.insert(headers::NATS_MSG_ID, id.as_str());
        h.insert(headers::ORDERD_REPLY_TO, reply.as_str());
        let attempt = tokio::time::timeout(Duration::from_secs(5), async {
            let ack =
                w.js.publish_with_headers(subject.clone(), h, body.clone().into())
                    .await
                    .map_err(|e| e.to_string())?;
            ack.await.map_err(|e| e.to_string())
        })
        .await;
        if let Ok(Ok(_)) = attempt {
            w.ledger().acked.insert(id);
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn spawn_publish(w: &Shared, subject: String, id: String, body: Vec<u8>) {
    tokio::spawn(publish_durable(w.clone(), subject, id, body));
}

/// Reads a durable consumer for ever, through NATS restarts, handing each
/// message (acked) to `handle` with its stream sequence.
async fn consume(
    w: Shared,
    stream: &'static str,
    durable: &'static str,
    filter: String,
    handle: impl Fn(&Shared, u64, &[u8]),
) {
    loop {
        let consumer: Option<jetstream::consumer::PullConsumer> = async {
            let s = w.js.get_stream(stream).await.ok()?;
            s.get_or_create_consumer(
                durable,
                pull::Config {
                    durable_name: Some(durable.to_owned()),
                    filter_subject: filter.clone(),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(5),
                    ..Default::default()
                },
            )
            .await
            .ok()
        }
        .await;
        let Some(consumer) = consumer else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let Ok(mut messages) = consumer.messages().await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut errors = 0;
        while let Some(next) = messages.next().await {
            match next {
                Ok(msg) => {
                    errors = 0;
                    let seq = msg.info().map(|i| i.stream_sequence).unwrap_or(0);
                    handle(&w, seq, &msg.payload);
                    let _ = msg.ack().await;
                }
                Err(_) => {
                    errors += 1;
                    if errors > 5 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Plays the client after each event: hold once created, resume once held,
/// close once executed.
fn on_event(w: &Shared, _seq: u64, payload: &[u8]) {
    let Ok(e) = serde_json::from_slice::<EventMessage>(payload) else {
        return;
    };
    let key = (e.order_id.clone(), e.seq);
    {
        let mut l = w.ledger();
        if l.events.contains_key(&key) {
            return;
        }
        l.events.insert(key, e.clone());
        if e.state == "CLOSED" {
            l.closed.insert(e.order_id.clone());
        }
    }
    let Ok(order) = OrderId::parse(&e.order_id) else {
        return;
    };
    let next = match (e.command.as_str(), e.state.as_str()) {
        (_, "EXECUTED") => Some((Verb::Close, "x")),
        ("create", _) => Some((Verb::Hold, "h")),
        ("hold", "ON_HOLD") => Some((Verb::Resume, "r")),
        _ => None,
    };
    if let Some((verb, tag)) = next {
        let body = if verb == Verb::Hold {
            br#"{"reason":"chaos"}"#.to_vec()
        } else {
            b"{}".to_vec()
        };
        spawn_publish(
            w,
            subjects::command(&w.tenant, order, verb),
            format!("{tag}:{order}"),
            body,
        );
    }
}

/// Plays dispatch: every job created is started, then completed.
fn on_dispatch(w: &Shared, seq: u64, payload: &[u8]) {
    let Ok(m) = serde_json::from_slice::<DispatchMessage>(payload) else {
        return;
    };
    let first = {
        let mut l = w.ledger();
        let seen = l
            .dispatched
            .entry((
                m.order_id.clone(),
                m.work_order_id,
                m.attempt,
                m.action.clone(),
            ))
            .or_default();
        let first = seen.is_empty();
        seen.insert(seq);
        first
    };
    let Ok(order) = OrderId::parse(&m.order_id) else {
        return;
    };
    if m.action != "create" || !first {
        return;
    }
    let w = w.clone();
    tokio::spawn(async move {
        for status in [JobStatus::Started, JobStatus::Completed] {
            let id = testkit::job_msg_id(order, m.work_order_id, m.attempt, status);
            let body = serde_json::to_vec(&testkit::job_body(m.attempt, None)).expect("json");
            let subject =
                subjects::job_update(&w.tenant, order, WorkOrderId(m.work_order_id), status);
            publish_durable(w.clone(), subject, id, body).await;
        }
    });
}

/// Collects the outcomes the clients hear.
async fn listen_outcomes(w: Shared, nats: async_nats::Client) {
    let Ok(mut sub) = nats.subscribe("chaosr.>").await else {
        return;
    };
    while let Some(msg) = sub.next().await {
        let Some(id) = msg.subject.as_str().strip_prefix("chaosr.") else {
            continue;
        };
        if let Ok(o) = serde_json::from_slice::<Outcome>(&msg.payload) {
            w.ledger().outcomes.insert(id.to_owned(), o);
        }
    }
}

#[derive(Debug)]
enum Fault {
    Orderd,
    Redis,
    Nats,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn at_ms(rfc3339: &str) -> i64 {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .expect("an RFC 3339 time");
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).expect("ms")
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return -1;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// What a failed run leaves to read: where the commands no order decided
/// sit in the stream, the tenant's lanes at the server, the dead letters,
/// and (with `CHAOS_KEEP_LOGS=<dir>`) every process's log.
async fn diagnose(
    js: &jetstream::Context,
    tenant: &TenantId,
    ledger: &Ledger,
    applied: &HashSet<String>,
    servers: &Servers,
) {
    let mut seqs: HashMap<String, u64> = HashMap::new();
    let _ = orderd::bus::scan::scan(
        js,
        subjects::STREAM_COMMANDS,
        subjects::commands_of_tenant(tenant),
        |m| {
            if let Some(id) = m.headers.as_ref().and_then(|h| h.get(headers::NATS_MSG_ID)) {
                seqs.insert(id.as_str().to_owned(), m.seq);
            }
            true
        },
    )
    .await;
    let mut lost: Vec<u64> = ledger
        .acked
        .iter()
        .filter(|id| !applied.contains(*id) && !ledger.outcomes.contains_key(*id))
        .filter_map(|id| seqs.get(id).copied())
        .collect();
    lost.sort_unstable();
    eprintln!(
        "chaos diagnosis: {} undecided commands in the stream, seqs {:?}…{:?} (first few {:?})",
        lost.len(),
        lost.first(),
        lost.last(),
        &lost[..lost.len().min(10)]
    );
    if let Ok(stream) = js.get_stream(subjects::STREAM_COMMANDS).await {
        let names: Vec<String> = stream
            .consumer_names()
            .try_collect()
            .await
            .unwrap_or_default();
        for name in names {
            if let Ok(mut c) = stream.get_consumer::<pull::Config>(&name).await {
                if let Ok(info) = c.info().await {
                    eprintln!(
                        "chaos diagnosis: consumer {name}: start {:?}, delivered {:?}, ack floor {:?}, pending {}, ack pending {}, redelivered {}",
                        info.config.deliver_policy,
                        info.delivered.stream_sequence,
                        info.ack_floor.stream_sequence,
                        info.num_pending,
                        info.num_ack_pending,
                        info.num_redelivered
                    );
                }
            }
        }
    }
    if let Ok(mut dlq) = js.get_stream(subjects::STREAM_DEAD_LETTERS).await {
        if let Ok(info) = dlq.info().await {
            eprintln!("chaos diagnosis: dead letters {}", info.state.messages);
        }
    }
    if let Ok(dir) = std::env::var("CHAOS_KEEP_LOGS") {
        let keep = std::path::Path::new(&dir).join(format!("run-{}", now_ms()));
        let _ = std::fs::create_dir_all(&keep);
        if let Ok(entries) = std::fs::read_dir(servers.dir()) {
            for e in entries.flatten() {
                if e.path().extension().is_some_and(|x| x == "log") {
                    let _ = std::fs::copy(e.path(), keep.join(e.file_name()));
                }
            }
        }
        eprintln!("chaos diagnosis: logs kept in {}", keep.display());
    }
}

/// What the outcome endpoint says of `command_id`.
async fn ask_outcome(
    nats: &async_nats::Client,
    tenant: &TenantId,
    order: OrderId,
    command_id: &str,
) -> serde_json::Value {
    let body = serde_json::json!({
        "tenant": tenant.as_str(),
        "orderId": order.to_string(),
        "commandId": command_id,
    });
    for _ in 0..5 {
        let asked = nats
            .request(subjects::API_OUTCOME, body.to_string().into())
            .await;
        if let Ok(reply) = asked {
            return serde_json::from_slice(&reply.payload).unwrap_or_default();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    serde_json::Value::Null
}

/// The commands stream's sequence of the message `command_id` was stored
/// as (for the report of a lost command): each order gets one command per
/// verb, so it is the last on its subject.
async fn stream_seq_of(js: &jetstream::Context, subject: &str, command_id: &str) -> Option<u64> {
    let stream = js.get_stream(subjects::STREAM_COMMANDS).await.ok()?;
    let msg = stream.get_last_raw_message_by_subject(subject).await.ok()?;
    let id = msg.headers.get(headers::NATS_MSG_ID)?.as_str().to_owned();
    (id == command_id).then_some(msg.sequence)
}

/// The envelope orderd built for a command the test sent.
fn envelope_of(tenant: &TenantId, order: OrderId, command_id: &str, sent: &Sent) -> Envelope {
    let inbound = subjects::parse_inbound(&sent.subject).expect("subject");
    let command =
        wire::decode_command(&inbound, None, &sent.body, usize::MAX).expect("a valid command");
    let by = match (&inbound, &command) {
        (_, Command::Create(c)) => c.client.id.clone(),
        (Inbound::JobUpdate { .. }, _) => "dispatch".to_owned(),
        _ => "client".to_owned(),
    };
    Envelope {
        tenant: tenant.clone(),
        order_id: order,
        command_id: CommandId::parse(command_id).expect("command id"),
        by,
        command,
        expected_seq: None,
    }
}

async fn run(knobs: Knobs) {
    eprintln!("chaos: {knobs:?}");
    let mut servers = Servers::start().await;
    let names: Vec<String> = (0..knobs.instances.max(1))
        .map(|i| format!("chaos-{i}"))
        .collect();
    let partitions = knobs.partitions.to_string();
    let start = |servers: &Servers, i: usize| {
        let log = servers.dir().join(format!("orderd-{i}.log"));
        let env = [
            ("RUST_LOG", "info"),
            ("ORDERD_INSTANCE_NAME", names[i].as_str()),
            ("ORDERD_OWNERSHIP_PARTITIONS", partitions.as_str()),
        ];
        Process::start_with(servers, &env, Some(&log))
    };
    let mut instances: Vec<Option<Process>> =
        (0..names.len()).map(|i| Some(start(&servers, i))).collect();
    let nats = async_nats::ConnectOptions::new()
        .max_reconnects(None)
        .connect(&servers.nats_url)
        .await
        .expect("client connects");
    testkit::wait_healthy(&nats).await;
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(5))
        .build(nats.clone());
    let tenant = testkit::random_tenant();
    let w: Shared = Arc::new(World {
        js,
        tenant: tenant.clone(),
        ledger: Mutex::new(Ledger::default()),
        publish_attempts: AtomicU64::new(0),
    });
    let mut helpers = vec![
        tokio::spawn(listen_outcomes(w.clone(), nats.clone())),
        tokio::spawn(consume(
            w.clone(),
            subjects::STREAM_EVENTS,
            "chaos-client",
            subjects::events_of_tenant(&tenant),
            on_event,
        )),
        tokio::spawn(consume(
            w.clone(),
            subjects::STREAM_DISPATCH,
            "chaos-dispatch",
            subjects::dispatch_of_tenant(&tenant),
            on_dispatch,
        )),
    ];
    nats.flush().await.expect("flush");

    // The driver: creates at a steady rate.
    let started = Instant::now();
    let driver = {
        let w = w.clone();
        let knobs = knobs.clone();
        tokio::spawn(async move {
            let flows = ["SEQUENTIAL", "START_TOGETHER", "COMPLETE_TOGETHER"];
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / knobs.rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut orders = Vec::with_capacity(knobs.orders);
            for i in 0..knobs.orders {
                tick.tick().await;
                let id = format!("c:{}", uuid::Uuid::new_v4());
                orders.push(wire::order_id_for_create(&w.tenant, &id));
                let body = create_body(flows[i % 3], &["PICKUP", "INSTALL"]);
                spawn_publish(
                    &w,
                    subjects::create(&w.tenant),
                    id,
                    serde_json::to_vec(&body).expect("json"),
                );
            }
            orders
        })
    };

    // The faults, on a timeline over the driving time.
    let drive = Duration::from_secs_f64(knobs.orders as f64 / knobs.rate);
    let mut timeline: Vec<(Duration, Fault)> = Vec::new();
    let mut t = knobs.kill_every;
    while t < drive {
        timeline.push((t, Fault::Orderd));
        t += knobs.kill_every;
    }
    for i in 0..knobs.redis_kills {
        let f = (i as f64 + 0.3) / (knobs.redis_kills as f64 + 0.2);
        timeline.push((drive.mul_f64(f), Fault::Redis));
    }
    for i in 0..knobs.nats_kills {
        let f = (i as f64 + 0.55) / (knobs.nats_kills as f64 + 0.2);
        timeline.push((drive.mul_f64(f), Fault::Nats));
    }
    timeline.sort_by_key(|(t, _)| *t);
    let mut kills_ms = Vec::new();
    let mut next_victim = 0;
    let (mut redis_kills, mut nats_kills) = (0, 0);
    for (at, fault) in timeline {
        tokio::time::sleep_until((started + at).into()).await;
        match fault {
            Fault::Orderd => {
                let i = next_victim % instances.len();
                next_victim += 1;
                if let Some(victim) = instances[i].take() {
                    victim.kill9();
                }
                // After the process is gone: any later event is the new one's.
                kills_ms.push(now_ms());
                instances[i] = Some(start(&servers, i));
            }
            Fault::Redis => {
                redis_kills += 1;
                servers.kill_redis();
                tokio::time::sleep(Duration::from_secs(1)).await;
                servers.start_redis().await;
            }
            Fault::Nats => {
                nats_kills += 1;
                servers.kill_nats();
                tokio::time::sleep(Duration::from_secs(1)).await;
                servers.start_nats().await;
            }
        }
    }
    let orders = driver.await.expect("driver");
    let faults_over = Instant::now();
    eprintln!(
        "chaos: faults over after {:.1}s; draining",
        started.elapsed().as_secs_f64()
    );

    // Liveness: every order closes within the bound.
    let deadline = faults_over + knobs.drain;
    let drained = loop {
        let closed = w.ledger().closed.len();
        if closed >= orders.len() {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let drain_secs = faults_over.elapsed().as_secs_f64();
    // Let stragglers (outcomes, duplicate deliveries) arrive.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let stored = stored_events(&w.js, &tenant).await;
    let store = servers.store().await;
    let config = TenantConfig::default();
    let mut problems: Vec<String> = Vec::new();
    let mut problem = |p: String| {
        if problems.len() < 20 {
            eprintln!("chaos problem: {p}");
        }
        problems.push(p);
    };

    let ledger = std::mem::take(&mut *w.ledger());
    // No double effect: contiguous events, each command id once.
    let mut applied: HashSet<String> = HashSet::new();
    let mut events_total = 0;
    for (order_id, list) in &stored {
        events_total += list.len();
        let seqs: Vec<u64> = list.iter().map(|e| e.seq).collect();
        let want: Vec<u64> = (1..=list.len() as u64).collect();
        if seqs != want {
            problem(format!("order {order_id}: event seqs {seqs:?}"));
        }
        for e in list {
            if !applied.insert(e.command_id.clone()) {
                problem(format!("command {} applied twice", e.command_id));
            }
        }
    }
    for (key, seqs) in &ledger.dispatched {
        if seqs.len() != 1 {
            problem(format!(
                "job command {key:?} dispatched {} times",
                seqs.len()
            ));
        }
    }
    // No loss: every acknowledged command applied or refused with an error.
    // An outcome on the reply subject is core NATS and can be missed (the
    // client's subscription is away while NATS restarts): the client then
    // asks the outcome endpoint, as the docs tell it to.
    let mut refused = 0;
    let mut asked_after = 0;
    for id in &ledger.acked {
        if applied.contains(id) {
            continue;
        }
        let heard = ledger.outcomes.get(id);
        if heard.is_some_and(|o| !o.ok && o.error.is_some()) {
            refused += 1;
            continue;
        }
        asked_after += 1;
        let sent = &ledger.sent[id];
        let order = match subjects::parse_inbound(&sent.subject).expect("subject") {
            Inbound::Create { .. } => wire::order_id_for_create(&tenant, id),
            Inbound::Command { order, .. } | Inbound::JobUpdate { order, .. } => order,
        };
        let asked = ask_outcome(&nats, &tenant, order, id).await;
        if asked["ok"] == serde_json::json!(false) && asked["error"]["code"].is_string() {
            refused += 1;
            continue;
        }
        let seq = stream_seq_of(&w.js, &sent.subject, id).await;
        let state = store
            .load(order)
            .await
            .ok()
            .flatten()
            .map(|s| format!("{} seq {}", s.order.state.as_str(), s.order.seq));
        problem(format!(
            "acked command {id} (stream seq {seq:?}, order {order} now {state:?}) neither applied nor refused: heard {heard:?}, asked {asked}"
        ));
    }
    // Model equality, and liveness per order.
    for order in &orders {
        let key = order.to_string();
        let snap = store.load(*order).await.expect("redis").map(|s| s.order);
        let list = stored.get(&key).cloned().unwrap_or_default();
        let Some(snap) = snap else {
            problem(format!("order {order}: no snapshot"));
            continue;
        };
        if snap.state.as_str() != "CLOSED" {
            problem(format!("order {order}: ended {}", snap.state.as_str()));
        }
        let mut model = Order::blank(*order, tenant.clone());
        for e in &list {
            let envelope = if e.command_id.starts_with("orderd:") {
                Envelope {
                    tenant: tenant.clone(),
                    order_id: *order,
                    command_id: CommandId::parse(&e.command_id).expect("id"),
                    by: "orderd".into(),
                    command: Command::FireTimers,
                    expected_seq: None,
                }
            } else {
                let Some(sent) = ledger.sent.get(&e.command_id) else {
                    problem(format!("order {order}: unknown command {}", e.command_id));
                    break;
                };
                envelope_of(&tenant, *order, &e.command_id, sent)
            };
            let ctx = Ctx {
                now: Timestamp(at_ms(&e.at)),
                config: &config,
                fresh_ids: [uuid::Uuid::nil(); Ctx::FRESH_IDS],
            };
            match execute(&model, &envelope, &ctx) {
                orderd_core::Outcome::Applied(change) if change.seq == e.seq => {
                    apply_change(&mut model, &change)
                }
                other => {
                    problem(format!(
                        "order {order}: the model does not apply {} as seq {}: {other:?}",
                        e.command_id, e.seq
                    ));
                    break;
                }
            }
        }
        // Contact and location ids are fresh random ids: take orderd's.
        model.drop = snap.drop.clone();
        if model != snap {
            problem(format!(
                "order {order}: snapshot differs from the model\n model: {model:?}\n  snap: {snap:?}"
            ));
        }
    }

    let mut resumes: Vec<i64> = Vec::new();
    let mut ats: Vec<i64> = ledger.events.values().map(|e| at_ms(&e.at)).collect();
    ats.sort_unstable();
    for k in &kills_ms {
        if let Some(first) = ats.iter().find(|a| **a > *k) {
            resumes.push(first - k);
        }
    }
    resumes.sort_unstable();
    let pass = problems.is_empty() && drained && !applied.is_empty();
    if !pass {
        diagnose(&w.js, &tenant, &ledger, &applied, &servers).await;
    }
    eprintln!(
        "chaos report\n\
         orders                {}\n\
         commands sent         {} (publish attempts {})\n\
         commands acked        {}\n\
         commands applied      {}\n\
         commands refused      {} ({asked_after} outcomes not heard, asked after)\n\
         events stored         {}\n\
         job commands          {}\n\
         orderd instances      {}\n\
         orderd SIGKILLs       {}\n\
         redis kills           {redis_kills}\n\
         nats kills            {nats_kills}\n\
         resume after kill ms  p50 {} p99 {} max {}\n\
         drained               {drained} in {drain_secs:.1}s after the faults\n\
         total time            {:.1}s\n\
         problems              {}\n\
         result                {}",
        orders.len(),
        ledger.sent.len(),
        w.publish_attempts.load(Ordering::Relaxed),
        ledger.acked.len(),
        applied.len(),
        refused,
        events_total,
        ledger.dispatched.len(),
        instances.len(),
        kills_ms.len(),
        percentile(&resumes, 50.0),
        percentile(&resumes, 99.0),
        resumes.last().copied().unwrap_or(-1),
        started.elapsed().as_secs_f64(),
        problems.len(),
        if pass { "PASS" } else { "FAIL" },
    );
    drop(ledger);
    for h in helpers.drain(..) {
        h.abort();
    }
    for orderd in instances.into_iter().flatten() {
        orderd.kill9();
    }
    assert!(!applied.is_empty(), "a run that applied nothing fails");
    assert!(drained, "not every order closed within {:?}", knobs.drain);
    assert!(
        problems.is_empty(),
        "{} problems: {:#?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );
}
