//! `orderd-demo`: watch orderd work. Connects to the same NATS as orderd,
//! creates a handful of orders of each execution flow (plus one held and
//! resumed, one cancelled, and one whose first job fails and is retried),
//! plays dispatch for them (answers each job with started, then completed),
//! and prints every state event as it happens, one line each.
//!
//! Run orderd first (`cargo run`), then `cargo run --bin orderd-demo`.
//! `--tenant NAME` picks the tenant (default: demo).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use async_nats::HeaderMap;
use futures::StreamExt;
use serde_json::{json, Value};

use orderd::headers;
use orderd::settings::Settings;
use orderd::subjects::{self, Verb};
use orderd::wire::{self, DispatchMessage, EventMessage};
use orderd_core::model::JobStatus;
use orderd_core::{OrderId, TenantId, WorkOrderId};

/// What the demo does with an order beyond running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// Jobs start, then complete.
    Plain,
    /// Held once its job started, resumed a moment later.
    HoldResume,
    /// Cancelled once its jobs started; dispatch confirms the cancel.
    Cancel,
    /// The first attempt fails; the retry completes.
    FailOnce,
    /// Its second work order is cancelled alone once its job started; the
    /// first completes, and the order executes without the second.
    CancelOne,
}

type Labels = Arc<Mutex<HashMap<String, (String, Scenario)>>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut tenant = "demo".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tenant" => tenant = args.next().unwrap_or(tenant),
            _ => anyhow::bail!("usage: orderd-demo [--tenant NAME]"),
        }
    }
    let tenant = TenantId::parse(&tenant)?;
    let settings = Settings::load(None)?;
    let nats = async_nats::connect(settings.nats.url.expose()).await?;
    let js = jetstream::new(nats.clone());
    println!("orderd demo: tenant {tenant}, NATS {}", settings.nats.url);
    wait_for_orderd(&nats).await?;

    let labels: Labels = Arc::new(Mutex::new(HashMap::new()));
    let events = print_events(&nats, &tenant, labels.clone()).await?;
    let dispatch = play_dispatch(&nats, &js, &tenant, labels.clone()).await?;

    let plan: Vec<(&str, &str, Vec<&str>, Scenario)> = vec![
        (
            "seq-1",
            "SEQUENTIAL",
            vec!["PICKUP", "INSTALL"],
            Scenario::Plain,
        ),
        (
            "seq-2",
            "SEQUENTIAL",
            vec!["DELIVERY", "INSTALL", "PICKUP"],
            Scenario::Plain,
        ),
        (
            "start-1",
            "START_TOGETHER",
            vec!["PICKUP", "INSTALL"],
            Scenario::Plain,
        ),
        (
            "start-2",
            "START_TOGETHER",
            vec!["DELIVERY", "KYC"],
            Scenario::Plain,
        ),
        (
            "group-1",
            "COMPLETE_TOGETHER",
            vec!["PICKUP", "INSTALL"],
            Scenario::Plain,
        ),
        (
            "group-2",
            "COMPLETE_TOGETHER",
            vec!["DELIVERY", "PICKUP"],
            Scenario::Plain,
        ),
        ("held", "SEQUENTIAL", vec!["INSTALL"], Scenario::HoldResume),
        (
            "cancelled",
            "START_TOGETHER",
            vec!["PICKUP", "INSTALL"],
            Scenario::Cancel,
        ),
        ("retried", "SEQUENTIAL", vec!["INSTALL"], Scenario::FailOnce),
        (
            "trimmed",
            "START_TOGETHER",
            vec!["PICKUP", "INSTALL"],
            Scenario::CancelOne,
        ),
    ];
    let mut orders = Vec::new();
    for (label, flow, types, scenario) in &plan {
        let key = uuid::Uuid::new_v4().to_string();
        let order = wire::order_id_for_create(&tenant, &key);
        if let Ok(mut l) = labels.lock() {
            l.insert(order.to_string(), ((*label).to_owned(), *scenario));
        }
        let body = json!({
            "clientId": "demo-shop",
            "clientName": "Demo Shop",
            "clientOrderId": format!("PO-{label}"),
            "executionFlow": flow,
            "dropDetails": {
                "contact": {"name": "A Customer", "phone": "+15550100"},
                "location": {"street": "1 Demo Street", "city": "Exampleton"}
            },
            "workOrders": types.iter().map(|t| json!({"type": t})).collect::<Vec<_>>(),
        });
        println!(
            "{}  → create  {label:<10} {flow} {}",
            now(),
            types.join(", ")
        );
        publish(&js, subjects::create(&tenant), &body, &key).await?;
        orders.push((order, *label, *scenario));
    }

    // The scripted operator: hold then resume one order, cancel another.
    for (order, label, scenario) in &orders {
        match scenario {
            Scenario::HoldResume => {
                let (o, l, t, js) = (*order, *label, tenant.clone(), js.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(900)).await;
                    println!("{}  → hold    {l:<10} (operator)", now());
                    let _ =
                        command(&js, &t, o, Verb::Hold, json!({"reason": "customer asked"})).await;
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    println!("{}  → resume  {l:<10} (operator)", now());
                    let _ = command(&js, &t, o, Verb::Resume, json!({})).await;
                });
            }
            Scenario::Cancel => {
                let (o, l, t, js) = (*order, *label, tenant.clone(), js.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(900)).await;
                    println!("{}  → cancel  {l:<10} (operator)", now());
                    let _ =
                        command(&js, &t, o, Verb::Cancel, json!({"reason": "changed mind"})).await;
                });
            }
            Scenario::CancelOne => {
                let (o, l, t, js) = (*order, *label, tenant.clone(), js.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(900)).await;
                    println!("{}  → cancel  {l:<10} work order 2 alone (operator)", now());
                    let body = json!({"workOrderId": 2, "reason": "not needed"});
                    let _ = command(&js, &t, o, Verb::Cancel, body).await;
                });
            }
            Scenario::Plain | Scenario::FailOnce => {}
        }
    }

    // Wait for every order to end, close the executed ones, and finish.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut closed_sent = std::collections::HashSet::new();
    loop {
        let mut open = 0;
        for (order, label, _) in &orders {
            match last_state(&events, *order) {
                Some(s) if s == "CLOSED" => {}
                Some(s) if s == "EXECUTED" => {
                    open += 1;
                    if closed_sent.insert(*order) {
                        println!("{}  → close   {label:<10} (billing done)", now());
                        command(&js, &tenant, *order, Verb::Close, json!({})).await?;
                    }
                }
                _ => open += 1,
            }
        }
        if open == 0 {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            dispatch.abort();
            anyhow::bail!("gave up waiting: {open} orders still open (is orderd running?)");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    dispatch.abort();
    println!("done: every order ended. Read one back with the get endpoint:");
    if let Some((order, label, _)) = orders.first() {
        let reply = nats
            .request(
                subjects::API_GET,
                serde_json::to_vec(
                    &json!({"tenant": tenant.as_str(), "orderId": order.to_string()}),
                )?
                .into(),
            )
            .await?;
        let view: Value = serde_json::from_slice(&reply.payload)?;
        println!(
            "  {label}: state {} seq {} work orders {}",
            view["state"],
            view["seq"],
            view["workOrders"].as_array().map_or(0, Vec::len)
        );
        println!();
        println!("next, from another terminal (the same NATS):");
        println!("  export ORDERD_NATS_URL={}", settings.nats.url);
        println!("  orderd watch --tenant {tenant}            # every order of the tenant, live");
        println!("  orderd get {order} --tenant {tenant}");
        println!("  orderd explain {order} --tenant {tenant}");
        println!("  orderd history {order} --tenant {tenant}");
        println!("(orderd is ./target/release/orderd after ./scripts/demo)");
    }
    Ok(())
}

/// The last state seen for an order.
fn last_state(events: &Arc<Mutex<HashMap<String, String>>>, order: OrderId) -> Option<String> {
    events.lock().ok()?.get(&order.to_string()).cloned()
}

async fn wait_for_orderd(nats: &async_nats::Client) -> anyhow::Result<()> {
    for i in 0..300 {
        let answer = tokio::time::timeout(
            Duration::from_millis(500),
            nats.request(subjects::API_HEALTH, "{}".into()),
        )
        .await;
        if let Ok(Ok(msg)) = answer {
            let v: Value = serde_json::from_slice(&msg.payload).unwrap_or_default();
            if v["ok"] == json!(true) {
                return Ok(());
            }
        }
        if i == 0 {
            println!("waiting for orderd to answer on {} …", subjects::API_HEALTH);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("orderd did not answer; start it with `cargo run`")
}

fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

async fn publish(
    js: &jetstream::Context,
    subject: String,
    body: &Value,
    key: &str,
) -> anyhow::Result<()> {
    let mut h = HeaderMap::new();
    h.insert(headers::NATS_MSG_ID, key);
    js.publish_with_headers(subject, h, serde_json::to_vec(body)?.into())
        .await?
        .await?;
    Ok(())
}

async fn command(
    js: &jetstream::Context,
    tenant: &TenantId,
    order: OrderId,
    verb: Verb,
    body: Value,
) -> anyhow::Result<()> {
    let key = uuid::Uuid::new_v4().to_string();
    publish(js, subjects::command(tenant, order, verb), &body, &key).await
}

/// Prints every event of the tenant, one line each; remembers each order's
/// last state.
async fn print_events(
    nats: &async_nats::Client,
    tenant: &TenantId,
    labels: Labels,
) -> anyhow::Result<Arc<Mutex<HashMap<String, String>>>> {
    let mut sub = nats.subscribe(subjects::events_of_tenant(tenant)).await?;
    let states = Arc::new(Mutex::new(HashMap::new()));
    let seen = states.clone();
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let Ok(e) = serde_json::from_slice::<EventMessage>(&msg.payload) else {
                continue;
            };
            let label = labels
                .lock()
                .ok()
                .and_then(|l| l.get(&e.order_id).map(|(l, _)| l.clone()))
                .unwrap_or_else(|| e.order_id[..8].to_owned());
            let what: Vec<String> = e.events.iter().map(describe).collect();
            let state = match &e.close_reason {
                Some(r) => format!("{} ({r})", e.state),
                None => e.state.clone(),
            };
            println!(
                "{}  ● {label:<10} #{:<2} {state:<22} {}",
                now(),
                e.seq,
                what.join(", ")
            );
            if let Ok(mut s) = seen.lock() {
                s.insert(e.order_id.clone(), e.state.clone());
            }
        }
    });
    nats.flush().await?;
    Ok(states)
}

/// One event in a few words.
fn describe(e: &orderd_core::Event) -> String {
    use orderd_core::Event as E;
    match e {
        E::JobDispatched {
            work_order,
            attempt,
            ..
        } => format!("job {work_order} sent (attempt {attempt})"),
        E::JobStarted { work_order, .. } => format!("job {work_order} started"),
        E::JobCompleted { work_order, .. } => format!("job {work_order} completed"),
        E::JobFailed {
            work_order,
            reason_code,
            ..
        } => format!(
            "job {work_order} failed ({})",
            reason_code.as_deref().unwrap_or("no reason")
        ),
        E::JobCancelled { work_order, .. } => format!("job {work_order} cancelled"),
        other => other.kind().replace('_', " "),
    }
}

/// What a dispatch service does before it sends a crew: reads the job's
/// drop address by id (the job command carries only the id), which orderd
/// audits. Prints how many fields it got, not the address itself.
async fn read_drop_address(
    nats: &async_nats::Client,
    tenant: &TenantId,
    job: &DispatchMessage,
    label: &str,
) {
    let Some(id) = job.drop.as_ref().and_then(|d| d.location_id.clone()) else {
        return;
    };
    let request = json!({"tenant": tenant.as_str(), "id": id, "by": "demo-dispatch"});
    let Ok(reply) = nats
        .request(subjects::API_LOCATION, request.to_string().into())
        .await
    else {
        return;
    };
    let fields = serde_json::from_slice::<serde_json::Value>(&reply.payload)
        .ok()
        .and_then(|v| v["address"].as_object().map(serde_json::Map::len))
        .unwrap_or(0);
    println!(
        "{}  ◆ {label:<10} dispatch: read the drop address by id ({fields} fields; the read is audited)",
        now()
    );
}

/// Plays dispatch: reads the tenant's job commands from the ORDERD_DISPATCH
/// stream and answers them as the order's scenario says.
async fn play_dispatch(
    nats: &async_nats::Client,
    js: &jetstream::Context,
    tenant: &TenantId,
    labels: Labels,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let stream = js.get_stream(subjects::STREAM_DISPATCH).await?;
    let consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(pull::Config {
            filter_subject: subjects::dispatch_of_tenant(tenant),
            deliver_policy: jetstream::consumer::DeliverPolicy::New,
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let js = js.clone();
    let nats = nats.clone();
    let tenant = tenant.clone();
    Ok(tokio::spawn(async move {
        while let Some(Ok(msg)) = messages.next().await {
            let _ = msg.ack().await;
            let Ok(job) = serde_json::from_slice::<DispatchMessage>(&msg.payload) else {
                continue;
            };
            let Ok(order) = OrderId::parse(&job.order_id) else {
                continue;
            };
            let (label, scenario) = labels
                .lock()
                .ok()
                .and_then(|l| l.get(&job.order_id).cloned())
                .unwrap_or_else(|| (job.order_id[..8].to_owned(), Scenario::Plain));
            println!(
                "{}  ◆ {label:<10} dispatch: {} job {} (attempt {}{})",
                now(),
                job.action,
                job.work_order_id,
                job.attempt,
                job.job_type
                    .as_deref()
                    .map(|t| format!(", {t}"))
                    .unwrap_or_default()
            );
            if job.action == "create" && job.work_order_id == 1 {
                read_drop_address(&nats, &tenant, &job, &label).await;
            }
            let answers: Vec<(u64, JobStatus, Option<&str>)> = match (job.action.as_str(), scenario)
            {
                ("create", Scenario::HoldResume | Scenario::Cancel) => {
                    vec![(300, JobStatus::Started, None)]
                }
                ("create", Scenario::CancelOne) if job.work_order_id == 2 => {
                    vec![(300, JobStatus::Started, None)]
                }
                ("create", Scenario::CancelOne) => vec![
                    (300, JobStatus::Started, None),
                    (1500, JobStatus::Completed, None),
                ],
                ("create", Scenario::FailOnce) if job.attempt == 1 => vec![
                    (300, JobStatus::Started, None),
                    (500, JobStatus::Failed, Some("TECHNICIAN_ILL")),
                ],
                ("create", _) => vec![
                    (300, JobStatus::Started, None),
                    (600, JobStatus::Completed, None),
                ],
                ("resume", _) => vec![(400, JobStatus::Completed, None)],
                ("cancel", _) => vec![(300, JobStatus::Cancelled, None)],
                _ => vec![],
            };
            let (js, tenant) = (js.clone(), tenant.clone());
            tokio::spawn(async move {
                for (delay, status, reason) in answers {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    let body = match reason {
                        Some(r) => json!({"attempt": job.attempt, "reasonCode": r}),
                        None => json!({"attempt": job.attempt}),
                    };
                    let key = format!(
                        "{}:{}:{}:{}",
                        job.order_id,
                        job.work_order_id,
                        job.attempt,
                        status.as_str()
                    );
                    let subject = subjects::job_update(
                        &tenant,
                        order,
                        WorkOrderId(job.work_order_id),
                        status,
                    );
                    let _ = publish(&js, subject, &body, &key).await;
                }
            });
        }
    }))
}
