//! What a query and the index upkeep cost with 1,000,000 orders in Redis.
//!
//! `cargo run --release --example query_cost [orders]` starts its own
//! redis-server on a free port (in a temporary directory, no persistence),
//! writes the orders' snapshots and index entries with pipelined writes (as
//! the save script would leave them), then measures:
//! - the query endpoint's work ([`orderd::api::query::run`]: plan, one page of
//!   the driving index, the page's snapshots, the filters) for each kind of
//!   filter, 200 times each;
//! - the save script (snapshot compare-and-set plus index upkeep) for new
//!   orders and for state changes of existing ones, against the same save
//!   for a tenant that indexes nothing.
//!
//! The figures are in docs/configuration.md.

use std::net::TcpListener;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use orderd::settings::{RedisSettings, SecretUrl};
use orderd::store::{self, keys, RedisStore, Snapshot, SnapshotStore};
use orderd::wire::{QueryRequest, RangeBody};
use orderd_core::command::{CreateOrder, WorkOrderSpec};
use orderd_core::model::{Client, ExecutionFlow, OrderSummary};
use orderd_core::{
    apply_change, execute, Command, CommandId, Ctx, Envelope, Order, OrderId, OrderState, Outcome,
    TenantConfig, TenantId, Timestamp,
};
use uuid::Uuid;

const REGIONS: [&str; 10] = [
    "north", "south", "east", "west", "centre", "coast", "hills", "lakes", "moors", "vale",
];
const BATCH: usize = 5_000;
const START_MS: i64 = 1_700_000_000_000;

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let total: Duration = samples.iter().sum();
    let n = u32::try_from(samples.len()).unwrap_or(u32::MAX).max(1);
    println!(
        "{what:<58} mean {:>8.3} ms  p50 {:>8.3} ms  p99 {:>8.3} ms",
        (total / n).as_secs_f64() * 1e3,
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
    );
}

fn config() -> anyhow::Result<TenantConfig> {
    Ok(serde_json::from_value(serde_json::json!({
        "attributes": [
            {"name": "region", "dataType": "string", "indexed": true},
            {"name": "weight", "dataType": "number", "indexed": true},
            {"name": "note", "dataType": "string", "indexed": false}
        ],
        "subStates": {"IN_PROGRESS": {"subStates": ["PACKING"]}}
    }))?)
}

/// A real order, made by the core, to copy.
fn template(tenant: &TenantId, config: &TenantConfig) -> anyhow::Result<Order> {
    let id = OrderId(Uuid::new_v4());
    let mut custom = std::collections::BTreeMap::new();
    custom.insert("region".to_owned(), serde_json::json!("north"));
    custom.insert("weight".to_owned(), serde_json::json!(1.0));
    custom.insert("note".to_owned(), serde_json::json!("leave at the door"));
    let envelope = Envelope {
        tenant: tenant.clone(),
        order_id: id,
        command_id: CommandId::parse("create")?,
        by: "bench".into(),
        command: Command::Create(Box::new(CreateOrder {
            client: Client {
                id: "c-1".into(),
                name: "Acme Retail".into(),
            },
            client_order_id: "PO-1".into(),
            ready_to_process: true,
            contact: None,
            location: None,
            return_location: None,
            execution_flow: ExecutionFlow::Sequential,
            summary: OrderSummary::default(),
            work_orders: vec![
                WorkOrderSpec {
                    kind: "PICKUP".into(),
                    ..Default::default()
                },
                WorkOrderSpec {
                    kind: "DELIVERY".into(),
                    ..Default::default()
                },
            ],
            custom,
        })),
        expected_seq: None,
    };
    let ctx = Ctx {
        now: Timestamp(START_MS),
        config,
        fresh_ids: [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()],
    };
    let mut order = Order::blank(id, tenant.clone());
    match execute(&order, &envelope, &ctx) {
        Outcome::Applied(change) => apply_change(&mut order, &change),
        other => anyhow::bail!("template create: {other:?}"),
    }
    Ok(order)
}

/// Order `i` of the data set.
fn nth(template: &Order, i: usize) -> Order {
    let mut o = template.clone();
    o.id = OrderId(Uuid::from_u128(
        0x0bd0_0000_0000_4000_8000_0000_0000_0000 | i as u128,
    ));
    // One order every 100 ms: 1M orders over about 28 hours.
    #[allow(clippy::cast_possible_wrap)]
    let at = START_MS + (i as i64) * 100;
    o.created_at = Timestamp(at);
    o.updated_at = Timestamp(at);
    o.client_order_id = format!("PO-{}", i / 10);
    o.custom.insert(
        "region".into(),
        serde_json::json!(REGIONS[i % REGIONS.len()]),
    );
    #[allow(clippy::cast_precision_loss)]
    o.custom.insert(
        "weight".into(),
        serde_json::json!((i % 100_000) as f64 / 10.0),
    );
    o.state = if i.is_multiple_of(5) {
        OrderState::Executed
    } else {
        OrderState::InProgress
    };
    o.sub_state = (i % 10 == 1).then(|| "PACKING".to_owned());
    o
}

async fn fill(
    conn: &redis::aio::ConnectionManager,
    template: &Order,
    config: &TenantConfig,
    n: usize,
) -> anyhow::Result<()> {
    let mut conn = conn.clone();
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(BATCH) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            let order = nth(template, i);
            let snap = Snapshot::new(order, Vec::new(), 1);
            let o = &snap.order;
            let id = o.id.to_string();
            let entries = store::indexes::entries(o, config);
            let idx: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
            pipe.cmd("HSET")
                .arg(keys::order(&o.id))
                .arg("v")
                .arg(1)
                .arg("snap")
                .arg(rmp_serde::to_vec_named(&snap)?)
                .arg("idx")
                .arg(idx.join("\n"))
                .ignore();
            pipe.cmd("ZADD")
                .arg(keys::state_index(&o.tenant, o.state))
                .arg(o.created_at.0)
                .arg(&id)
                .ignore();
            pipe.cmd("ZADD")
                .arg(keys::client_order_index(&o.tenant, &o.client_order_id))
                .arg(o.created_at.0)
                .arg(&id)
                .ignore();
            for (key, score) in &entries {
                pipe.cmd("ZADD").arg(key).arg(*score).arg(&id).ignore();
            }
        }
        pipe.query_async::<()>(&mut conn).await?;
    }
    println!(
        "wrote {n} orders (snapshots and index entries) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn used_memory(conn: &redis::aio::ConnectionManager) -> anyhow::Result<String> {
    let mut conn = conn.clone();
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory_human:"))
        .unwrap_or("?")
        .trim()
        .to_owned())
}

fn query(tenant: &TenantId) -> QueryRequest {
    QueryRequest {
        tenant: tenant.to_string(),
        state: None,
        client_order_id: None,
        sub_state: None,
        custom_attributes: Default::default(),
        custom_attribute_ranges: Default::default(),
        created_from: None,
        created_to: None,
        limit: Some(50),
        after: None,
    }
}

async fn measure_queries(store: &RedisStore, tenant: &TenantId, n: usize) -> anyhow::Result<()> {
    const RUNS: usize = 200;
    #[allow(clippy::cast_possible_wrap)]
    let span_ms = (n as i64) * 100;
    let at = move |k: usize, plus_ms: i64| {
        #[allow(clippy::cast_possible_wrap)]
        let offset = ((k * 7_919) as i64 * 100) % span_ms.max(1);
        orderd::wire::rfc3339(Timestamp(START_MS + offset + plus_ms))
    };
    type Make = Box<dyn Fn(usize) -> QueryRequest>;
    let t = tenant.clone();
    let kinds: Vec<(&str, Make)> = vec![
        (
            "state IN_PROGRESS, first page of 50",
            Box::new({
                let t = t.clone();
                move |_| QueryRequest {
                    state: Some(OrderState::InProgress),
                    ..query(&t)
                }
            }),
        ),
        (
            "state IN_PROGRESS, a page deep inside (cursor)",
            Box::new({
                let t = t.clone();
                move |k| {
                    #[allow(clippy::cast_possible_wrap)]
                    let score = START_MS + ((k * 7_919) as i64 * 100) % span_ms.max(1);
                    QueryRequest {
                        state: Some(OrderState::InProgress),
                        after: Some(format!("{score}:0")),
                        ..query(&t)
                    }
                }
            }),
        ),
        (
            "region = <one of 10 values> (100k orders each)",
            Box::new({
                let t = t.clone();
                move |k| {
                    let mut q = query(&t);
                    q.custom_attributes
                        .insert("region".into(), serde_json::json!(REGIONS[k % 10]));
                    q
                }
            }),
        ),
        (
            "weight in [x, x + 1] (number range, ~100 orders)",
            Box::new({
                let t = t.clone();
                move |k| {
                    let mut q = query(&t);
                    #[allow(clippy::cast_precision_loss)]
                    let x = (k * 37 % 9_000) as f64;
                    q.custom_attribute_ranges.insert(
                        "weight".into(),
                        RangeBody {
                            min: Some(x),
                            max: Some(x + 1.0),
                        },
                    );
                    q
                }
            }),
        ),
        (
            "created in a one-hour window",
            Box::new({
                let t = t.clone();
                move |k| QueryRequest {
                    created_from: Some(at(k, 0)),
                    created_to: Some(at(k, 3_600_000)),
                    ..query(&t)
                }
            }),
        ),
        (
            "subState PACKING and state IN_PROGRESS",
            Box::new({
                let t = t.clone();
                move |_| QueryRequest {
                    sub_state: Some("PACKING".into()),
                    state: Some(OrderState::InProgress),
                    ..query(&t)
                }
            }),
        ),
        (
            "clientOrderId (10 orders each)",
            Box::new({
                let t = t.clone();
                move |k| QueryRequest {
                    client_order_id: Some(format!("PO-{}", k * 31 % (n / 10).max(1))),
                    ..query(&t)
                }
            }),
        ),
    ];
    for (what, make) in kinds {
        let mut samples = Vec::with_capacity(RUNS);
        let mut returned = 0;
        for k in 0..RUNS {
            let req = make(k);
            let started = Instant::now();
            let page = orderd::api::query::run(store, &req, 50).await?;
            samples.push(started.elapsed());
            returned += page.orders.len();
        }
        report(
            &format!("query: {what} [{} per page]", returned / RUNS),
            samples,
        );
    }
    Ok(())
}

async fn measure_upkeep(
    store: &RedisStore,
    template: &Order,
    plain_tenant: &TenantId,
    n: usize,
) -> anyhow::Result<()> {
    const SAVES: usize = 2_000;
    // New orders with indexed attributes, into the 1M-member indexes.
    let mut samples = Vec::with_capacity(SAVES);
    for i in 0..SAVES {
        let mut snap = Snapshot::new(nth(template, n + i), Vec::new(), 1);
        let started = Instant::now();
        store.save(&mut snap, None).await?;
        samples.push(started.elapsed());
    }
    report("save: new order, 6 index entries (1M-member sets)", samples);

    // State changes of existing orders: the script diffs the old entries.
    let mut samples = Vec::with_capacity(SAVES);
    for i in 0..SAVES {
        let mut order = nth(template, i * 37 % n);
        let previous = order.state;
        order.state = OrderState::OnHold;
        order.sub_state = None;
        order
            .custom
            .insert("region".into(), serde_json::json!("elsewhere"));
        let mut snap = Snapshot::new(order, Vec::new(), 2);
        let started = Instant::now();
        store.save(&mut snap, Some(previous)).await?;
        samples.push(started.elapsed());
    }
    report(
        "save: state + attribute change, old entries removed",
        samples,
    );

    // The same new-order save for a tenant that indexes nothing.
    let mut plain = template.clone();
    plain.tenant = plain_tenant.clone();
    plain.custom.clear();
    let mut samples = Vec::with_capacity(SAVES);
    for i in 0..SAVES {
        let mut order = nth(&plain, n + SAVES + i);
        order.custom.clear();
        order.sub_state = None;
        let mut snap = Snapshot::new(order, Vec::new(), 1);
        let started = Instant::now();
        store.save(&mut snap, None).await?;
        samples.push(started.elapsed());
    }
    report("save: new order, no custom index (baseline)", samples);
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let port = free_port()?;
    let dir = std::env::temp_dir().join(format!("orderd-query-cost-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let mut redis = Process::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()?;
    let result = run(port, n).await;
    let _ = redis.kill();
    let _ = redis.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(port: u16, n: usize) -> anyhow::Result<()> {
    let settings = RedisSettings {
        url: SecretUrl::new(format!("redis://127.0.0.1:{port}")),
        response_timeout_ms: 30_000,
        require_appendonly: false,
        ..RedisSettings::default()
    };
    let mut tries = 0;
    let store = loop {
        match RedisStore::connect(&settings).await {
            Ok(s) => break s,
            Err(_) if tries < 50 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let tenant = TenantId::parse("bench")?;
    let plain_tenant = TenantId::parse("plain")?;
    let config = config()?;
    let version = store.put_tenant_config(&tenant, &config).await?;
    let config = TenantConfig { version, ..config };
    let template = template(&tenant, &config)?;
    // The fill writes what the save script would, without it: a connection
    // of its own, as any tool's.
    let conn = redis::Client::open(settings.url.expose())?
        .get_connection_manager()
        .await?;
    println!("orders: {n}; empty redis: {}", used_memory(&conn).await?);
    fill(&conn, &template, &config, n).await?;
    println!("redis used memory: {}", used_memory(&conn).await?);
    let created = store.order_count(&tenant).await?;
    println!("created index: {created} orders");
    measure_queries(&store, &tenant, n).await?;
    measure_upkeep(&store, &template, &plain_tenant, n).await?;
    Ok(())
}
