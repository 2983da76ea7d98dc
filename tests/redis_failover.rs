//! orderd on Redis with Sentinel: a primary, two replicas and three
//! sentinels.
//! With `redis.wait_replicas = 1`, orders under load while the primary is
//! killed (kill -9): the sentinels promote a replica, orderd follows it,
//! and no acknowledged command is lost: every order finishes, its events
//! are contiguous, and what Redis holds (read back through orderd) is what
//! the events say, and following the new primary counts as a Redis
//! reconnect. The time from the kill to the next event is printed.
//! And the wait matters: with the replicas frozen (SIGSTOP), a command is
//! not acknowledged until a replica has its write.
//!
//! `REDIS_FAILOVER_ORDERS=600 cargo test --release --test redis_failover -- --nocapture`

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

use orderd::settings::SecretUrl;
use orderd::subjects::{self, Verb};
use testkit::servers::{free_port, SentinelSet};
use testkit::{
    complete_everything, create_body, env_or, random_tenant, sample, scrape, App, Dispatcher,
    Servers, TestApp,
};

/// orderd on the set's primary, found through its sentinels, waiting for
/// one replica on every write, with its HTTP listener at `listen`.
async fn start(set: &SentinelSet, listen: SocketAddr) -> TestApp {
    let servers = Servers::start().await; // its NATS; its own Redis is unused
    let mut settings = servers.settings();
    settings.http.listen = listen.to_string();
    settings.redis.url = SecretUrl::new(format!("redis://127.0.0.1:{}", set.primary.port()));
    settings.redis.sentinels = set.addrs();
    settings.redis.wait_replicas = 1;
    settings.redis.wait_timeout_ms = 500;
    settings.validate().expect("valid settings");
    let nats = async_nats::connect(&servers.nats_url).await.unwrap();
    let app = App::start(settings, &nats).await;
    TestApp {
        app: Some(app),
        js: async_nats::jetstream::new(nats.clone()),
        nats,
        tenant: random_tenant(),
        servers,
    }
}

#[tokio::test]
async fn a_killed_primary_loses_no_acknowledged_command() {
    let wanted: usize = env_or("REDIS_FAILOVER_ORDERS", 80);
    let mut set = SentinelSet::start().await.unwrap_or_else(|e| panic!("{e}"));
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let t = start(&set, http).await;
    let _dispatch = Dispatcher::start(&t.nats, &t.tenant, complete_everything()).await;
    let seen: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let mut events = t
        .nats
        .subscribe(subjects::events_of_tenant(&t.tenant))
        .await
        .unwrap();
    let log = seen.clone();
    tokio::spawn(async move {
        while events.next().await.is_some() {
            log.lock().unwrap().push(Instant::now());
        }
    });

    // Creates in small batches until the kill is over.
    let done = Arc::new(AtomicBool::new(false));
    let t = Arc::new(t);
    let publisher = {
        let (t, done) = (t.clone(), done.clone());
        tokio::spawn(async move {
            let mut orders = Vec::new();
            while orders.len() < wanted || !done.load(Ordering::Relaxed) {
                orders.extend(t.publish_creates(4).await);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            orders
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let old_primary = set.primary.port();
    let killed_at = Instant::now();
    set.primary.kill();
    let deadline = killed_at + Duration::from_secs(30);
    while set.primary_port().await == Some(old_primary) {
        assert!(
            Instant::now() < deadline,
            "the sentinels never promoted the replica"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let promoted = killed_at.elapsed();
    let resumed = loop {
        let next = seen
            .lock()
            .unwrap()
            .iter()
            .find(|at| **at > killed_at + promoted)
            .copied();
        if let Some(at) = next {
            break at.duration_since(killed_at);
        }
        assert!(
            Instant::now() < deadline,
            "nothing decided after the failover"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_millis(1000)).await;
    done.store(true, Ordering::Relaxed);
    let orders = publisher.await.unwrap();

    // Every order finishes, with its five events, each once, in order.
    let by_order = testkit::events::wait_until_each_has(&t.js, &t.tenant, &orders, 5).await;
    for o in &orders {
        let events = &by_order[&o.to_string()];
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5], "order {o}");
        // What the promoted primary holds is what the events say.
        let view = t.get(*o).await;
        assert_eq!(view["seq"], 5, "order {o}: {view}");
        assert_eq!(view["state"], events[4].state.as_str(), "order {o}");
    }
    // Following the new primary is a reconnect, and counted.
    let reconnects = sample(&scrape(http).await, "orderd_redis_reconnects_total");
    assert!(reconnects >= 1.0, "reconnects counted: {reconnects}");
    println!(
        "{} orders; primary killed: replica promoted after {:.0} ms, next event after {:.0} ms",
        orders.len(),
        promoted.as_secs_f64() * 1000.0,
        resumed.as_secs_f64() * 1000.0
    );
}

#[tokio::test]
async fn no_command_is_acknowledged_before_a_replica_has_it() {
    let set = SentinelSet::start().await.unwrap_or_else(|e| panic!("{e}"));
    let t = start(&set, format!("127.0.0.1:{}", free_port()).parse().unwrap()).await;
    let order = t.create(&create_body("SEQUENTIAL", &["PICKUP"])).await;

    for r in &set.replicas {
        r.signal("STOP");
    }
    let frozen_at = Instant::now();
    let held = {
        let t = &t;
        async move { t.command(order, Verb::Hold, &json!({})).await }
    };
    let thaw = async {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        for r in &set.replicas {
            r.signal("CONT");
        }
    };
    let (outcome, ()) = tokio::join!(held, thaw);
    let answered = frozen_at.elapsed();
    assert!(outcome.ok, "{outcome:?}");
    assert!(
        answered >= Duration::from_millis(2500),
        "the hold was answered after {answered:?}, before a replica had it"
    );
    println!("answered {answered:?} after the replicas froze (thawed at 2.5 s)");
}
