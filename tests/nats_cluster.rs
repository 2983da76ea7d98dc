//! orderd on a three-node NATS cluster with R3 streams: orders under load
//! while the node that leads the commands stream is killed (kill -9) and
//! started again, then the next leader too. Every command that got a PubAck
//! is applied once, every order finishes, each order's events are
//! contiguous; the time from each kill to the next event decided is
//! printed. Also: a stream an operator changed keeps the change when
//! orderd starts again.
//!
//! `NATS_CLUSTER_ORDERS=600 NATS_CLUSTER_KILLS=6 cargo test --release --test nats_cluster -- --nocapture`

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull};
use async_nats::HeaderMap;
use futures::StreamExt;

use orderd::headers;
use orderd::settings::SecretUrl;
use orderd::subjects;
use orderd::wire::DispatchMessage;
use orderd_core::model::JobStatus;
use orderd_core::{OrderId, TenantId, WorkOrderId};
use testkit::servers::NatsCluster;
use testkit::{
    create_body, env_or, job_body, job_msg_id, msg_id, percentile, random_tenant, App, Servers,
};

/// Publishes through JetStream until the cluster acknowledges (the same
/// `Nats-Msg-Id` each time, so a repeat is dropped), as a client rides over
/// a leader election.
async fn publish_until_acked(js: &jetstream::Context, subject: String, id: &str, body: Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut h = HeaderMap::new();
        h.insert(headers::NATS_MSG_ID, id);
        let sent = js
            .publish_with_headers(subject.clone(), h, body.clone().into())
            .await;
        if let Ok(ack) = sent {
            if ack.await.is_ok() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{subject} never acknowledged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Plays dispatch on a durable (R3) consumer: each job command is answered
/// started then completed, and acked only once both updates are stored.
fn dispatch(js: jetstream::Context, tenant: TenantId) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let consumer = async {
                let stream = js.get_stream(subjects::STREAM_DISPATCH).await.ok()?;
                stream
                    .get_or_create_consumer::<pull::Config>(
                        "cluster-test-dispatch",
                        pull::Config {
                            durable_name: Some("cluster-test-dispatch".into()),
                            filter_subject: subjects::dispatch_of_tenant(&tenant),
                            ack_wait: Duration::from_secs(5),
                            ..Default::default()
                        },
                    )
                    .await
                    .ok()
            };
            let Some(consumer) = consumer.await else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let Ok(mut messages) = consumer.messages().await else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            while let Some(next) = messages.next().await {
                let Ok(msg) = next else { continue };
                let Ok(m) = serde_json::from_slice::<DispatchMessage>(&msg.payload) else {
                    let _ = msg.ack().await;
                    continue;
                };
                if m.action == "create" {
                    let order = OrderId::parse(&m.order_id).unwrap();
                    for status in [JobStatus::Started, JobStatus::Completed] {
                        let subject = subjects::job_update(
                            &tenant,
                            order,
                            WorkOrderId(m.work_order_id),
                            status,
                        );
                        let id = job_msg_id(order, m.work_order_id, m.attempt, status);
                        let body = serde_json::to_vec(&job_body(m.attempt, None)).unwrap();
                        publish_until_acked(&js, subject, &id, body).await;
                    }
                }
                let _ = msg.ack().await;
            }
        }
    })
}

/// The node that leads `stream`, once every stream has a leader and all
/// their replicas are current (a node started again has caught up).
async fn settled_leader(js: &jetstream::Context, stream: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut all = true;
        let mut wanted = None;
        for (name, _) in subjects::STREAMS {
            let cluster = match js.get_stream(name).await {
                Ok(mut s) => s.info().await.ok().and_then(|i| i.cluster.clone()),
                Err(_) => None,
            };
            let settled = cluster.as_ref().is_some_and(|c| {
                c.leader.is_some()
                    && c.replicas.len() == 2
                    && c.replicas.iter().all(|r| r.current && !r.offline)
            });
            all &= settled;
            if name == stream {
                wanted = cluster
                    .and_then(|c| c.leader)
                    .and_then(|l| NatsCluster::index_of(&l));
            }
        }
        if let (true, Some(leader)) = (all, wanted) {
            return leader;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster did not settle in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn orders_ride_over_the_death_of_the_streams_leaders() {
    let orders_wanted: usize = env_or("NATS_CLUSTER_ORDERS", 60);
    let kills: usize = env_or("NATS_CLUSTER_KILLS", 2);
    let mut cluster = NatsCluster::start(3)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let servers = Servers::start().await; // its Redis; its own NATS is unused
    let mut settings = servers.settings();
    settings.nats.url = SecretUrl::new(cluster.urls().join(","));
    settings.nats.replicas = 3;
    let client = async_nats::connect(cluster.urls()).await.expect("client");
    let js = jetstream::new(client.clone());
    let app = App::start(settings, &client).await;

    // Every stream and bucket orderd made has three replicas.
    for (stream, _) in subjects::STREAMS {
        let mut s = js.get_stream(stream).await.unwrap();
        assert_eq!(s.info().await.unwrap().config.num_replicas, 3, "{stream}");
    }

    let tenant = random_tenant();
    let dispatcher = dispatch(js.clone(), tenant.clone());
    // Every event as it is published, timed, to measure the pauses.
    let seen: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let mut events = client
        .subscribe(subjects::events_of_tenant(&tenant))
        .await
        .unwrap();
    let log = seen.clone();
    let watcher = tokio::spawn(async move {
        while events.next().await.is_some() {
            log.lock().unwrap().push(Instant::now());
        }
    });

    // Creates, spread over the run (at least `orders_wanted`, and until the
    // kills are over), each until acknowledged.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let js = js.clone();
        let tenant = tenant.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut orders = Vec::new();
            while orders.len() < orders_wanted || !done.load(std::sync::atomic::Ordering::Relaxed) {
                let id = msg_id();
                orders.push(orderd::wire::order_id_for_create(&tenant, &id));
                let body =
                    serde_json::to_vec(&create_body("SEQUENTIAL", &["PICKUP", "INSTALL"])).unwrap();
                publish_until_acked(&js, subjects::create(&tenant), &id, body).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            orders
        })
    };

    let mut pauses = Vec::new();
    for round in 0..kills {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let victim = settled_leader(&js, subjects::STREAM_COMMANDS).await;
        let killed_at = Instant::now();
        cluster.kill(victim);
        // The next event decided after the kill. Usually 4 to 9 s (the
        // elections of every stream and bucket the dead node led); the
        // bound is wide because elections can cascade (a run here once
        // passed 30 s), and the orders finishing below is what must hold.
        let deadline = killed_at + Duration::from_secs(60);
        let resumed = loop {
            let next = seen
                .lock()
                .unwrap()
                .iter()
                .find(|t| **t > killed_at)
                .copied();
            if let Some(t) = next {
                break t;
            }
            assert!(
                Instant::now() < deadline,
                "nothing decided for 60 s after killing n{victim}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        pauses.push(resumed.duration_since(killed_at).as_secs_f64() * 1000.0);
        println!(
            "round {round}: killed n{victim} (commands stream leader); next event after {:.0} ms",
            pauses.last().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(800)).await;
        cluster
            .start_again(victim)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let orders = publisher.await.unwrap();

    // Every order finishes: five events each (created, two work orders
    // started and completed, the last one EXECUTED).
    let by_order: BTreeMap<String, Vec<u64>> =
        testkit::events::wait_until_each_has(&js, &tenant, &orders, 5)
            .await
            .into_iter()
            .map(|(order, events)| (order, events.iter().map(|e| e.seq).collect()))
            .collect();
    // Each command applied once: seqs 1..=5, each stored once, none more.
    for o in &orders {
        let seqs = &by_order[&o.to_string()];
        assert_eq!(seqs, &[1, 2, 3, 4, 5], "order {o}: {seqs:?}");
    }
    assert_eq!(
        by_order.keys().cloned().collect::<BTreeSet<_>>(),
        orders
            .iter()
            .map(ToString::to_string)
            .collect::<BTreeSet<_>>(),
        "no order that was not created"
    );
    // Sizing: what one lifecycle (two work orders) leaves in each stream.
    for (stream, _) in subjects::STREAMS {
        let mut s = js.get_stream(stream).await.unwrap();
        let bytes = s.info().await.unwrap().state.bytes;
        println!(
            "{stream}: {:.0} bytes per lifecycle (each replica)",
            bytes as f64 / orders.len() as f64
        );
    }
    let mut sorted = pauses.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "{} orders, {} leader kills: time to resume p50 {:.0} ms, max {:.0} ms",
        orders.len(),
        kills,
        percentile(&sorted, 50.0),
        sorted.last().copied().unwrap_or_default()
    );
    dispatcher.abort();
    watcher.abort();
    app.stop().await;
}

#[tokio::test]
async fn an_operators_change_to_a_stream_survives_a_restart() {
    let servers = Servers::start().await;
    let client = async_nats::connect(&servers.nats_url).await.unwrap();
    let js = jetstream::new(client.clone());
    let app = App::start(servers.settings(), &client).await;
    app.stop().await;

    // The operator keeps events 90 days and caps them at 1 GiB.
    let mut events = js.get_stream(subjects::STREAM_EVENTS).await.unwrap();
    let mut config = events.info().await.unwrap().config.clone();
    config.max_age = Duration::from_secs(90 * 24 * 3600);
    config.max_bytes = 1 << 30;
    js.update_stream(config).await.unwrap();

    let app = App::start(servers.settings(), &client).await;
    let kept = events.info().await.unwrap().config.clone();
    assert_eq!(kept.max_age, Duration::from_secs(90 * 24 * 3600));
    assert_eq!(kept.max_bytes, 1 << 30);
    app.stop().await;
}
