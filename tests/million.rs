//! A million orders fit: create many orders through orderd, let idle actors
//! passivate, and check that at most a bounded number stay live and that
//! resident memory at steady state stays under 2 GiB; then wake 10,000
//! random passivated orders with a command each and check that each comes
//! back with its right state (the command applies as seq 2, ON_HOLD).
//!
//! ```sh
//! MILLION_ORDERS=1000000 cargo test --release --test million -- --ignored --nocapture
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::HeaderMap;
use futures::StreamExt;
use rand_free::pick;
use serde_json::Value;

use orderd::headers;
use orderd::subjects::{self, Verb};
use orderd::wire::Outcome;
use testkit::{create_body, env_or, Process, Servers};

const LIVE_BOUND: u64 = 10_000;
const RSS_BOUND_MIB: f64 = 2048.0;

fn rss_mib(pid: u32) -> f64 {
    testkit::rss_kib(pid) as f64 / 1024.0
}

/// A tiny deterministic pick of `k` indexes out of `n` (no extra crate).
mod rand_free {
    pub fn pick(n: usize, k: usize, seed: u64) -> Vec<usize> {
        let mut x = seed | 1;
        let mut out = Vec::with_capacity(k);
        let mut seen = std::collections::HashSet::new();
        while out.len() < k.min(n) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x % n as u64) as usize;
            if seen.insert(i) {
                out.push(i);
            }
        }
        out
    }
}

async fn live_orders(nats: &async_nats::Client) -> Option<u64> {
    let msg = tokio::time::timeout(
        Duration::from_secs(2),
        nats.request(subjects::API_HEALTH, "{}".into()),
    )
    .await
    .ok()?
    .ok()?;
    let v: Value = serde_json::from_slice(&msg.payload).ok()?;
    v["liveOrders"].as_u64()
}

#[tokio::test]
#[ignore = "long: run with --ignored (see the module docs)"]
async fn a_million_orders_fit() {
    let n: usize = env_or("MILLION_ORDERS", 1_000_000);
    let wake: usize = env_or("MILLION_WAKE", 10_000);
    let servers = Servers::start().await;
    let log = servers.dir().join("orderd.log");
    let orderd = Process::start_with(
        &servers,
        &[
            ("RUST_LOG", "warn"),
            ("ORDERD_PASSIVATE_AFTER_MS", "2000"),
            ("ORDERD_MAX_IN_FLIGHT", "512"),
            ("ORDERD_MAX_ACK_PENDING", "2048"),
        ],
        Some(&log),
    );
    let pid = orderd.pid();
    let nats = async_nats::connect(&servers.nats_url).await.expect("nats");
    testkit::wait_healthy(&nats).await;
    let js = jetstream::new(nats.clone());
    let tenant = testkit::random_tenant();
    let started = Instant::now();

    let peak_live = Arc::new(Mutex::new(0u64));
    let sampler = {
        let nats = nats.clone();
        let peak = peak_live.clone();
        tokio::spawn(async move {
            loop {
                if let Some(l) = live_orders(&nats).await {
                    let mut p = peak.lock().expect("peak");
                    *p = (*p).max(l);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };

    // Creates, pipelined by the thousand.
    let body = serde_json::to_vec(&create_body("SEQUENTIAL", &["PICKUP"])).expect("json");
    let mut ids = Vec::with_capacity(n);
    let mut acks = Vec::with_capacity(1000);
    for i in 0..n {
        let id = format!("m{i}");
        ids.push(orderd::wire::order_id_for_create(&tenant, &id));
        let mut h = HeaderMap::new();
        h.insert(headers::NATS_MSG_ID, id.as_str());
        acks.push(
            js.publish_with_headers(subjects::create(&tenant), h, body.clone().into())
                .await
                .expect("publish"),
        );
        if acks.len() == 1000 {
            for a in acks.drain(..) {
                a.await.expect("stored");
            }
        }
        if i % 100_000 == 0 && i > 0 {
            eprintln!(
                "million: {i} published after {:.0}s, RSS {:.0} MiB",
                started.elapsed().as_secs_f64(),
                rss_mib(pid)
            );
        }
    }
    for a in acks {
        a.await.expect("stored");
    }
    let published = started.elapsed().as_secs_f64();
    // Wait until orderd has decided them all.
    let mut consumer: jetstream::consumer::PullConsumer = js
        .get_stream(subjects::STREAM_COMMANDS)
        .await
        .expect("stream")
        .get_consumer(&orderd::intake::consumers::lane_name(
            orderd::intake::consumers::intake_streams()[0],
            &orderd::subjects::Unit::first(&tenant),
            &orderd::settings::Settings::default(),
        ))
        .await
        .expect("consumer");
    loop {
        let info = consumer.info().await.expect("info");
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let applied = started.elapsed().as_secs_f64();
    let rss_peak_during = rss_mib(pid);
    // Steady state: every actor idle, passivated.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let live_steady = live_orders(&nats).await.unwrap_or(u64::MAX);
    let rss_steady = rss_mib(pid);

    // Wake random passivated orders with a hold each.
    let inbox = nats.new_inbox();
    let mut replies = nats
        .subscribe(format!("{inbox}.>"))
        .await
        .expect("subscribe");
    nats.flush().await.expect("flush");
    let picks = pick(n, wake, 0x5eed);
    let mut acks = Vec::new();
    for (k, i) in picks.iter().enumerate() {
        let mut h = HeaderMap::new();
        h.insert(headers::NATS_MSG_ID, format!("wake-{i}").as_str());
        h.insert(headers::ORDERD_REPLY_TO, format!("{inbox}.{k}").as_str());
        acks.push(
            js.publish_with_headers(
                subjects::command(&tenant, ids[*i], Verb::Hold),
                h,
                "{}".into(),
            )
            .await
            .expect("publish"),
        );
        // async-nats allows 5,000 PubAcks in flight: await them by the thousand.
        if acks.len() == 1000 {
            for a in acks.drain(..) {
                a.await.expect("stored");
            }
        }
    }
    for a in acks {
        a.await.expect("stored");
    }
    let mut right = 0;
    let mut wrong = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while right + wrong.len() < picks.len() && Instant::now() < deadline {
        let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(30), replies.next()).await
        else {
            break;
        };
        let o: Outcome = serde_json::from_slice(&msg.payload).expect("outcome");
        if o.ok && !o.duplicate && o.seq == Some(2) && o.state.as_deref() == Some("ON_HOLD") {
            right += 1;
        } else {
            wrong.push(o);
        }
    }
    sampler.abort();
    let peak = *peak_live.lock().expect("peak");
    eprintln!(
        "million: {n} orders published in {published:.0}s, applied by {applied:.0}s ({:.0}/s); RSS {rss_peak_during:.0} MiB \
         right after, {rss_steady:.0} MiB at steady state (bound {RSS_BOUND_MIB} MiB); live actors peak {peak}, steady {live_steady} \
         (bound {LIVE_BOUND}); {right} of {} woken orders came back right",
        n as f64 / applied,
        picks.len()
    );
    assert!(rss_steady < RSS_BOUND_MIB);
    assert!(
        live_steady <= LIVE_BOUND,
        "{live_steady} live at steady state"
    );
    assert!(
        wrong.is_empty(),
        "{} wrong: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    assert_eq!(right, picks.len());
    drop(orderd);
}
