//! The stream layout of partitioned tenants (`ownership.partitions` > 1):
//! nats-server stores every command and job update under the partition
//! orderd computes for its order, so each partition's lanes read exactly
//! their orders. (The instances that own the partitions are driven in
//! `tests/scale_out.rs`.)

use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap;

use orderd::headers;
use orderd::subjects::{self, Inbound, Verb};
use orderd_core::model::JobStatus;
use orderd_core::{OrderId, WorkOrderId};
use testkit::{msg_id, random_tenant, Servers};

/// Reads back the subject of every message `stream` holds, by sequence.
async fn stored_subjects(js: &jetstream::Context, stream: &str) -> Vec<String> {
    let stream = js.get_stream(stream).await.expect("stream");
    let last = stream.get_info().await.expect("info").state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        let msg = stream.get_raw_message(seq).await.expect("stored message");
        out.push(msg.subject.to_string());
    }
    out
}

#[tokio::test]
async fn the_server_stores_each_command_under_the_partition_orderd_computes() {
    const PARTS: u16 = 7;
    let servers = Servers::start().await;
    let mut settings = servers.settings();
    settings.ownership.partitions = PARTS;
    let client = async_nats::connect(&servers.nats_url).await.unwrap();
    let js = jetstream::new(client);
    orderd::bus::ensure_streams(&js, &settings).await.unwrap();
    let tenant = random_tenant();
    let orders: Vec<OrderId> = (0..500)
        .map(|_| OrderId::parse(&uuid::Uuid::new_v4().to_string()).unwrap())
        .collect();
    let mut acks = Vec::new();
    let mut sent = vec![subjects::create(&tenant)];
    for order in &orders {
        sent.push(subjects::command(&tenant, *order, Verb::Hold));
        sent.push(subjects::job_update(
            &tenant,
            *order,
            WorkOrderId(1),
            JobStatus::Started,
        ));
    }
    for subject in &sent {
        let mut h = HeaderMap::new();
        h.insert(headers::NATS_MSG_ID, msg_id().as_str());
        acks.push(
            js.publish_with_headers(subject.clone(), h, "{}".into())
                .await
                .unwrap(),
        );
    }
    for ack in acks {
        ack.await.expect("stored");
    }
    let mut stored = stored_subjects(&js, subjects::STREAM_COMMANDS).await;
    stored.extend(stored_subjects(&js, subjects::STREAM_JOBS).await);
    assert_eq!(stored.len(), sent.len());
    let mut per_partition = [0_usize; PARTS as usize];
    for subject in &stored {
        // Sent form, back again for dead letters.
        assert!(sent.contains(&subjects::as_sent(subject)), "{subject}");
        let tokens: Vec<&str> = subject.split('.').collect();
        let Some(order) = subjects::parse_inbound(subject).unwrap().order() else {
            assert_eq!(
                subject,
                &subjects::create(&tenant),
                "a create is stored as sent"
            );
            continue;
        };
        assert!(matches!(tokens[3], "pc" | "pj"), "{subject}");
        let part: u16 = tokens[4].parse().unwrap();
        assert_eq!(part, subjects::partition_of(order, PARTS), "{subject}");
        per_partition[usize::from(part)] += 1;
        // Exactly one of the tenant's units reads it.
        let commands = tokens[3] == "pc";
        let readers: Vec<u16> = (0..PARTS)
            .filter(|p| {
                let unit = subjects::Unit {
                    tenant: tenant.clone(),
                    part: *p,
                };
                subjects::lane_filters(&unit, PARTS, commands)
                    .iter()
                    .any(|f| testkit::subject_matches(f, subject))
            })
            .collect();
        assert_eq!(readers, vec![part], "{subject}");
    }
    // 1,000 messages over 7 partitions: each gets its share, roughly.
    for (p, n) in per_partition.iter().enumerate() {
        assert!((80..=220).contains(n), "partition {p}: {n} of 1000");
    }
    // A create parses as such from its stored subject.
    assert!(matches!(
        subjects::parse_inbound(&subjects::create(&tenant)),
        Ok(Inbound::Create { .. })
    ));
}

/// orderd refuses to start against streams laid out for another number
/// of partitions while commands are still in flight there, and changes
/// the layout itself once nothing is.
#[tokio::test]
async fn the_number_of_partitions_changes_only_once_nothing_is_in_flight() {
    let servers = Servers::start().await;
    let one = servers.settings();
    let mut eight = servers.settings();
    eight.ownership.partitions = 8;
    let client = async_nats::connect(&servers.nats_url).await.unwrap();
    let js = jetstream::new(client);
    orderd::bus::ensure_streams(&js, &one).await.unwrap();
    let tenant = random_tenant();
    let unit = subjects::Unit::first(&tenant);
    let spec = orderd::intake::consumers::intake_streams()[0];
    orderd::intake::consumers::open_consumer(
        &js,
        spec,
        orderd::intake::consumers::lane_config(spec, &unit, &one),
    )
    .await
    .unwrap();
    let mut h = HeaderMap::new();
    h.insert(headers::NATS_MSG_ID, msg_id().as_str());
    js.publish_with_headers(subjects::create(&tenant), h, "{}".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let refused = orderd::bus::ensure_streams(&js, &eight).await;
    let why = refused.expect_err("a command is in flight").to_string();
    assert!(why.contains("ownership.partitions"), "{why}");
    let stream = js.get_stream(subjects::STREAM_COMMANDS).await.unwrap();
    assert!(stream.cached_info().config.subject_transform.is_none());

    // Once the lane has settled it, the layout changes.
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_consumer(&orderd::intake::consumers::lane_name(spec, &unit, &one))
        .await
        .unwrap();
    let mut batch = consumer.fetch().max_messages(1).messages().await.unwrap();
    use futures::StreamExt;
    let msg = batch.next().await.unwrap().unwrap();
    msg.double_ack().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    orderd::bus::ensure_streams(&js, &eight).await.unwrap();
    let mut stream = js.get_stream(subjects::STREAM_COMMANDS).await.unwrap();
    let transform = stream
        .info()
        .await
        .unwrap()
        .config
        .subject_transform
        .clone();
    assert_eq!(
        transform.map(|t| (t.source, t.destination)),
        Some(subjects::commands_transform(8))
    );
}

/// A command on an order that does not exist is refused not found on
/// every partition, at once: on partition 0 too, whose lane also reads
/// the creates it might wait for.
#[tokio::test]
async fn a_command_on_an_unknown_order_is_not_found_on_every_partition() {
    const PARTS: u16 = 4;
    let t = testkit::spawn_app_with(|s| s.ownership.partitions = PARTS).await;
    // The tenant's lanes open with its first message.
    t.create(&testkit::create_body("SEQUENTIAL", &["PICKUP"]))
        .await;
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < usize::from(PARTS) {
        let order = OrderId::parse(&uuid::Uuid::new_v4().to_string()).unwrap();
        if !seen.insert(subjects::partition_of(order, PARTS)) {
            continue;
        }
        let started = std::time::Instant::now();
        let outcome = t.command(order, Verb::Hold, &serde_json::json!({})).await;
        assert_eq!(
            outcome.error.as_ref().map(|e| e.code.as_str()),
            Some("ORD-404-ORDER_NOT_FOUND"),
            "partition {}: {outcome:?}",
            subjects::partition_of(order, PARTS)
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}
