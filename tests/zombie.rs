//! A zombie owner is fenced: two orderd processes share one NATS and one
//! Redis while orders stream in; again and again one of them is frozen
//! (SIGSTOP) with commands in flight for longer than the ack wait, so the
//! other takes its commands over, then thawed (SIGCONT) to carry on with
//! what it held, on state that is now stale. Its stale writes must be
//! refused by the snapshot's compare-and-set (counted from its log lines),
//! and no order may diverge: every order's stored events are 1, 2, 3… with
//! no gap or double, no command is applied twice, and every snapshot ends
//! where its last event says.
//!
//! CI runs 5 rounds; the documented form runs 20:
//!
//! ```sh
//! ZOMBIE_ROUNDS=20 cargo test --release --test zombie -- --nocapture
//! ```

use std::collections::HashSet;
use std::time::Duration;

use async_nats::HeaderMap;

use orderd::headers;
use orderd::store::SnapshotStore;
use orderd::subjects;
use orderd_core::OrderId;
use testkit::{complete_everything, create_body, stored_events, Process, Servers};

/// The ack wait both processes run with (`Servers::env`).
const ACK_WAIT: Duration = Duration::from_secs(2);

fn count_lines(path: &std::path::Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

#[tokio::test]
async fn a_frozen_instance_that_wakes_up_is_fenced() {
    let rounds: usize = std::env::var("ZOMBIE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let servers = Servers::start().await;
    let logs = [servers.dir().join("a.log"), servers.dir().join("b.log")];
    let env = [("RUST_LOG", "orderd=info")];
    let procs = [
        Process::start_with(&servers, &env, Some(&logs[0])),
        Process::start_with(&servers, &env, Some(&logs[1])),
    ];
    let t = testkit::attach(servers).await;
    let mut events = t.events().await;
    let _dispatch = t.dispatcher(complete_everything()).await;

    // Creates at a steady rate for the whole test.
    let stop = tokio_util_stop();
    let driver = {
        let js = t.js.clone();
        let tenant = t.tenant.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let flows = ["SEQUENTIAL", "START_TOGETHER", "COMPLETE_TOGETHER"];
            let mut orders = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(25));
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                let id = testkit::msg_id();
                orders.push(orderd::wire::order_id_for_create(&tenant, &id));
                let body = create_body(flows[i % 3], &["PICKUP", "INSTALL"]);
                i += 1;
                let mut h = HeaderMap::new();
                h.insert(headers::NATS_MSG_ID, id.as_str());
                js.publish_with_headers(
                    subjects::create(&tenant),
                    h,
                    serde_json::to_vec(&body).expect("json").into(),
                )
                .await
                .expect("publish")
                .await
                .expect("stored");
            }
            orders
        })
    };

    for round in 0..rounds {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let zombie = &procs[round % 2];
        zombie.signal("STOP");
        tokio::time::sleep(ACK_WAIT + Duration::from_millis(1500)).await;
        zombie.signal("CONT");
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let orders: Vec<OrderId> = driver.await.expect("driver");
    for order in &orders {
        events.wait_state(*order, "EXECUTED").await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The streams may lag the snapshots for a moment (an outbox publish that
    // failed while a process was frozen is retried): allow 30 s.
    let store = t.servers.store().await;
    let settle_deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (applied, diverged) = loop {
        let stored = stored_events(&t.js, &t.tenant).await;
        let mut applied = HashSet::new();
        let mut diverged = Vec::new();
        for order in &orders {
            let list = &stored[&order.to_string()];
            let seqs: Vec<u64> = list.iter().map(|e| e.seq).collect();
            let want: Vec<u64> = (1..=list.len() as u64).collect();
            assert_eq!(seqs, want, "order {order}: gap or double");
            for e in list {
                assert!(
                    applied.insert(e.command_id.clone()),
                    "{} applied twice",
                    e.command_id
                );
            }
            let snap = store.load(*order).await.expect("redis").expect("snapshot");
            let last = list.last().expect("events");
            if snap.order.seq != last.seq || snap.order.state.as_str() != last.state {
                eprintln!(
                    "zombie: order {order} not (yet) in step: snapshot seq {} {} (version {}, outbox {}), events {:?}",
                    snap.order.seq,
                    snap.order.state.as_str(),
                    snap.version,
                    snap.outbox.len(),
                    list.iter()
                        .map(|e| (e.seq, e.command.as_str(), e.state.as_str()))
                        .collect::<Vec<_>>()
                );
                diverged.push(*order);
            }
        }
        if diverged.is_empty() || std::time::Instant::now() > settle_deadline {
            break (applied, diverged);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let stale: usize = logs
        .iter()
        .map(|l| count_lines(l, "snapshot moved under us"))
        .sum();
    let conflicts: usize = logs.iter().map(|l| count_lines(l, "Conflict")).sum();
    eprintln!(
        "zombie: {rounds} freezes of {:?} each; {} orders, {} events; stale writes refused by the compare-and-set: {stale} \
         (decided again on the fresh snapshot), {conflicts} lost twice and redelivered; {} snapshots diverged",
        ACK_WAIT + Duration::from_millis(1500),
        orders.len(),
        applied.len(),
        diverged.len()
    );
    assert!(diverged.is_empty(), "snapshots diverged: {diverged:?}");
    if rounds >= 10 {
        assert!(
            stale > 0,
            "no stale write was ever attempted: the test did not test fencing"
        );
    }
    drop(procs);
}

fn tokio_util_stop() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false))
}
