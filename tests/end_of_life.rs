//! An order's end of life, through the public subjects: closed orders past
//! their tenant's retention are archived (read back from the archive) and
//! leave the live store; an archived order answers `ORD-410-ORDER_ARCHIVED`
//! to reads and commands, a create sent again included; a contact erased
//! on request is gone from Redis, from the commands stream and never was in
//! the archive, and an erase is refused while an open order needs it.
//!
//! The fill test's size: `END_OF_LIFE_ORDERS` (CI: 10,000).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use orderd::headers;
use orderd::subjects::{self, Verb};
use orderd::wire;
use orderd_core::OrderId;
use serde_json::{json, Value};
use testkit::{create_body, env_or, msg_id, spawn_app_with, TestApp};

/// Test settings: a quick sweep, no rate limit to speak of, a short
/// duplicate window (so a create can be sent again within the test).
fn quick(s: &mut orderd::settings::Settings) {
    s.archive.sweep_every_ms = 200;
    s.archive.per_sec = 100_000;
    s.nats.duplicate_window_secs = 1;
}

async fn call(t: &TestApp, subject: &str, body: Value) -> Value {
    t.read(subject, &body).await.1
}

async fn set_retention(t: &TestApp, ms: u64) {
    let current = call(
        t,
        subjects::API_CONFIG_GET,
        json!({"tenant": t.tenant.as_str()}),
    )
    .await;
    let mut config = current["config"].clone();
    config["retentionMs"] = json!(ms);
    let published = call(
        t,
        subjects::API_CONFIG_PUBLISH,
        json!({"tenant": t.tenant.as_str(), "config": config}),
    )
    .await;
    assert!(published["version"].is_u64(), "{published}");
}

async fn counts(t: &TestApp) -> Value {
    call(
        t,
        subjects::API_COUNTS,
        json!({"tenant": t.tenant.as_str()}),
    )
    .await
}

/// Publishes each `(subject, body)` with a fresh `Nats-Msg-Id` (or the
/// one given), until the stream stored them all.
async fn publish_all(t: &TestApp, messages: impl IntoIterator<Item = (String, String, Vec<u8>)>) {
    let mut acks = Vec::new();
    for (subject, key, body) in messages {
        let mut h = HeaderMap::new();
        h.insert(headers::NATS_MSG_ID, key.as_str());
        acks.push(
            t.js.publish_with_headers(subject, h, body.into())
                .await
                .expect("publish"),
        );
        if acks.len() >= 512 {
            for ack in acks.drain(..) {
                ack.await.expect("stored");
            }
        }
    }
    for ack in acks {
        ack.await.expect("stored");
    }
}

/// Publishes `n` creates with `body`; their order ids and keys.
async fn fill(t: &TestApp, n: usize, body: &Value) -> Vec<(OrderId, String)> {
    let payload = serde_json::to_vec(body).expect("json");
    let orders: Vec<(OrderId, String)> = (0..n)
        .map(|_| {
            let key = msg_id();
            (wire::order_id_for_create(&t.tenant, &key), key)
        })
        .collect();
    let creates = orders
        .iter()
        .map(|(_, key)| (subjects::create(&t.tenant), key.clone(), payload.clone()));
    publish_all(t, creates).await;
    orders
}

/// Publishes a cancel of each order.
async fn cancel_all(t: &TestApp, orders: &[(OrderId, String)]) {
    let cancels = orders.iter().map(|(order, _)| {
        (
            subjects::command(&t.tenant, *order, Verb::Cancel),
            msg_id(),
            br#"{"reason":"end of life test"}"#.to_vec(),
        )
    });
    publish_all(t, cancels).await;
}

/// Waits until `done` holds of the tenant's counts, printing progress.
async fn wait_counts(t: &TestApp, what: &str, within: Duration, done: impl Fn(&Value) -> bool) {
    let start = Instant::now();
    let mut said = Instant::now();
    loop {
        let c = counts(t).await;
        if done(&c) {
            eprintln!("{what}: {:.1}s", start.elapsed().as_secs_f64());
            return;
        }
        assert!(
            start.elapsed() < within,
            "{what} not within {within:?}: {c}"
        );
        if said.elapsed() > Duration::from_secs(5) {
            eprintln!("{what}: waiting, counts {}", c["states"]);
            said = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn not_ready() -> Value {
    let mut body = create_body("SEQUENTIAL", &["PICKUP", "DELIVERY"]);
    body["readyToProcess"] = json!(false);
    body
}

#[tokio::test]
async fn closed_orders_past_retention_leave_the_live_store_for_the_archive() {
    let n: usize = env_or("END_OF_LIFE_ORDERS", 10_000);
    let t = spawn_app_with(quick).await;
    // A retention no order reaches yet: fill, close, measure.
    set_retention(&t, 3_600_000).await;
    let started = Instant::now();
    let orders = fill(&t, n, &not_ready()).await;
    wait_counts(&t, "created", Duration::from_secs(600), |c| {
        c["states"]["CREATED"] == json!(n)
    })
    .await;
    cancel_all(&t, &orders).await;
    wait_counts(&t, "closed", Duration::from_secs(600), |c| {
        c["states"]["CLOSED"] == json!(n)
    })
    .await;
    eprintln!(
        "{n} orders created and closed in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    // Orders that stay: one open, one closed after the cutoff is moved.
    let open = t.create(&not_ready()).await;
    let ids: Vec<OrderId> = orders.iter().map(|(o, _)| *o).collect();
    let store = t.servers.store().await;
    let before = store.live_footprint(&ids).await.expect("footprint");
    assert_eq!(before.tombstones, 0);
    assert!(before.keys >= n as u64, "{before:?}");

    // 100 at random, as they were before they left.
    let mut picked = BTreeSet::new();
    while picked.len() < 100.min(n) {
        picked.insert((uuid::Uuid::new_v4().as_u128() % n as u128) as usize);
    }
    let sample: Vec<OrderId> = picked.iter().map(|i| ids[*i]).collect();
    let mut views = Vec::new();
    for order in &sample {
        views.push((t.get(*order).await, t.history(*order).await));
    }

    let archiving = Instant::now();
    set_retention(&t, 1_000).await;
    wait_counts(&t, "archived", Duration::from_secs(600), |c| {
        c["states"]["CLOSED"] == json!(0)
    })
    .await;
    let took = archiving.elapsed().as_secs_f64();
    let after = store.live_footprint(&ids).await.expect("footprint");
    eprintln!(
        "end of life: {n} orders archived in {took:.1}s ({:.0}/s); live store of those orders: \
         {} keys, {} bytes before; {} keys, {} bytes after, plus {} tombstones of {} bytes",
        n as f64 / took,
        before.keys,
        before.bytes,
        after.keys,
        after.bytes,
        after.tombstones,
        after.tombstone_bytes,
    );
    assert_eq!(after.keys, 0, "nothing of an archived order stays live");
    assert_eq!(after.tombstones, n as u64);
    assert!(
        after.tombstone_bytes < before.bytes / 4,
        "tombstones are small: {after:?} against {before:?}"
    );
    let c = counts(&t).await;
    assert_eq!(c["total"], json!(1), "only the open order is live: {c}");
    assert_eq!(c["states"]["CREATED"], json!(1));

    // The archive holds every one of them, once (the tenant's own records:
    // other tests may share the servers).
    let mut records: BTreeSet<String> = BTreeSet::new();
    let mut total = 0;
    orderd::bus::scan::scan(
        &t.js,
        subjects::STREAM_ARCHIVE,
        format!("orderd.v1.{}.archive.>", t.tenant),
        |m| {
            total += 1;
            records.insert(m.subject);
            true
        },
    )
    .await
    .unwrap();
    assert_eq!(total, n, "one record per order");
    assert_eq!(records.len(), n);
    for order in &ids {
        assert!(records.contains(&subjects::archive_of_order(&t.tenant, *order)));
    }
    for ((view, history), order) in views.iter().zip(&sample) {
        let record = call(
            &t,
            subjects::API_ARCHIVE,
            json!({"tenant": t.tenant.as_str(), "orderId": order.to_string()}),
        )
        .await;
        assert_eq!(&record["order"], view, "the archived view is the last view");
        assert_eq!(record["historyComplete"], json!(true), "{record}");
        let archived: Vec<wire::EventMessage> =
            serde_json::from_value(record["history"].clone()).unwrap();
        assert_eq!(&archived, history);
        // The snapshot's version: one write per change, and one more when
        // the order's actor passivated after its last change (it clears
        // the published outbox), as happens when closing takes over a
        // minute (`runtime.passivate_after_ms`).
        let (version, seq) = (record["version"].as_u64(), view["seq"].as_u64());
        assert!(
            version == seq || version == seq.map(|s| s + 1),
            "archived version {version:?}, last seq {seq:?}"
        );
    }

    // An archived order: reads and commands say so, and it comes back for
    // nothing, not even a create sent again with its key.
    let (gone, key) = orders[0].clone();
    let (h, read) = t
        .read(
            subjects::API_GET,
            &json!({"tenant": t.tenant.as_str(), "orderId": gone.to_string()}),
        )
        .await;
    assert_eq!(read["code"], "ORD-410-ORDER_ARCHIVED", "{read}");
    assert_eq!(
        h.unwrap()
            .get(headers::NATS_SERVICE_ERROR_CODE)
            .map(|v| v.as_str().to_owned()),
        Some("410".to_owned())
    );
    let hold = t.command(gone, Verb::Hold, &json!({})).await;
    assert_eq!(
        hold.error.as_ref().map(|e| e.code.as_str()),
        Some("ORD-410-ORDER_ARCHIVED"),
        "{hold:?}"
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let again = t
        .send(subjects::create(&t.tenant), &not_ready(), &key)
        .await;
    assert_eq!(
        again.error.as_ref().map(|e| e.code.as_str()),
        Some("ORD-410-ORDER_ARCHIVED"),
        "{again:?}"
    );
    assert_eq!(t.get(open).await["state"], "CREATED");
    let missing = call(
        &t,
        subjects::API_ARCHIVE,
        json!({"tenant": t.tenant.as_str(), "orderId": open.to_string()}),
    )
    .await;
    assert_eq!(missing["code"], "ORD-404-NOT_ARCHIVED");
    // Another tenant cannot read it from the archive.
    let other = call(
        &t,
        subjects::API_ARCHIVE,
        json!({"tenant": "another", "orderId": gone.to_string()}),
    )
    .await;
    assert_eq!(other["code"], "ORD-404-NOT_ARCHIVED");
}

/// Every text the commands stream holds for the tenant.
async fn commands_text(t: &TestApp) -> String {
    let mut text = String::new();
    orderd::bus::scan::scan(
        &t.js,
        subjects::STREAM_COMMANDS,
        subjects::commands_of_tenant(&t.tenant),
        |m| {
            text.push_str(&String::from_utf8_lossy(&m.payload));
            true
        },
    )
    .await
    .unwrap();
    text
}

#[tokio::test]
async fn an_erased_contact_is_gone_everywhere_and_no_erase_while_an_open_order_needs_it() {
    let t = spawn_app_with(quick).await;
    let tn = t.tenant.as_str();
    let mut body = not_ready();
    body["dropDetails"]["contact"] = json!({"name": "Erin Eraseme", "phone": "+15550999"});
    body["dropDetails"]["location"] = json!({"street": "77 Forget Lane", "city": "Nowhere"});
    let order = t.create(&body).await;
    let (contact, location) = testkit::drop_ids(&t.get(order).await);
    assert!(commands_text(&t).await.contains("Erin Eraseme"));
    let erase = |kind: &'static str, id: String, tenant: String| {
        let t = &t;
        async move {
            call(
                t,
                subjects::API_ERASE,
                json!({"tenant": tenant, "kind": kind, "id": id, "by": "privacy desk"}),
            )
            .await
        }
    };

    // An open order needs it: refused, naming the order, nothing erased.
    let refused = erase("contact", contact.clone(), tn.to_owned()).await;
    assert_eq!(refused["code"], "ORD-409-PERSONAL_IN_USE", "{refused}");
    assert_eq!(refused["details"][0]["message"], order.to_string());
    let still = call(
        &t,
        subjects::API_CONTACT,
        json!({"tenant": tn, "id": contact, "by": "dispatch"}),
    )
    .await;
    assert_eq!(still["name"], "Erin Eraseme");
    // Another tenant's id is unknown; a bad kind is malformed.
    let foreign = erase("contact", contact.clone(), "another".to_owned()).await;
    assert_eq!(foreign["code"], "ORD-404-CONTACT_NOT_FOUND");
    let bad = erase("person", contact.clone(), tn.to_owned()).await;
    assert_eq!(bad["code"], "ORD-400-MALFORMED");

    // Closed: erased from Redis and from the commands stream.
    let cancel = t.command(order, Verb::Cancel, &json!({})).await;
    assert!(cancel.ok, "{cancel:?}");
    let done = erase("contact", contact.clone(), tn.to_owned()).await;
    assert_eq!(done["status"], "ERASED", "{done}");
    assert_eq!(done["commandsErased"], 1, "the create carried it: {done}");
    assert_eq!(done["commandsLeft"], 0);
    let store = t.servers.store().await;
    assert!(store.stored_contact(&contact).await.unwrap().is_none());
    let text = commands_text(&t).await;
    for marker in ["Erin Eraseme", "+15550999"] {
        assert!(
            !text.contains(marker),
            "{marker} still in the commands stream"
        );
    }
    let lookup = call(
        &t,
        subjects::API_CONTACT,
        json!({"tenant": tn, "id": contact, "by": "dispatch"}),
    )
    .await;
    assert_eq!(lookup["code"], "ORD-410-ERASED", "{lookup}");
    let twice = erase("contact", contact.clone(), tn.to_owned()).await;
    assert_eq!(twice["status"], "ALREADY_ERASED", "{twice}");
    // The location stays until it is erased in turn.
    let address = call(
        &t,
        subjects::API_LOCATION,
        json!({"tenant": tn, "id": location, "by": "dispatch"}),
    )
    .await;
    assert_eq!(address["address"]["street"], "77 Forget Lane");
    let gone = erase("location", location.clone(), tn.to_owned()).await;
    assert_eq!(gone["status"], "ERASED", "{gone}");
    assert!(store.stored_location(&location).await.unwrap().is_none());

    // The erases are audited, without the data.
    let audit = call(&t, subjects::API_AUDIT, json!({"tenant": tn})).await;
    let entries = audit.to_string();
    assert!(entries.contains("erase:privacy desk"), "{audit}");
    assert!(!entries.contains("Erin"));

    // The archive never held it: the order archived, its record by id only.
    set_retention(&t, 1_000).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let record = loop {
        let r = call(
            &t,
            subjects::API_ARCHIVE,
            json!({"tenant": tn, "orderId": order.to_string()}),
        )
        .await;
        if r["order"].is_object() {
            break r;
        }
        assert!(Instant::now() < deadline, "not archived: {r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let text = record.to_string();
    assert!(
        text.contains(&contact),
        "the record names the contact by id"
    );
    for marker in ["Erin Eraseme", "+15550999", "77 Forget Lane"] {
        assert!(!text.contains(marker), "{marker} in the archive");
    }
    let ids: BTreeSet<String> = [contact, location].into_iter().collect();
    assert_eq!(ids.len(), 2);
}

#[tokio::test]
async fn orders_an_older_orderd_wrote_are_walked_into_the_new_indexes() {
    use orderd::store::keys;
    let mut t = spawn_app_with(quick).await;
    let tn = t.tenant.clone();
    let open = t.create(&not_ready()).await;
    let closed = t.create(&not_ready()).await;
    assert!(t.command(closed, Verb::Cancel, &json!({})).await.ok);
    let (contact, _) = testkit::drop_ids(&t.get(open).await);
    t.stop_app().await;

    // As an orderd before the end of life left them: no closed-orders
    // index, no personal-data set, no layout.
    let client = redis::Client::open(t.servers.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let gone = vec![
        keys::closed_index(&tn),
        keys::tenant_personal(&tn),
        keys::tenant_layout(&tn),
    ];
    let _: () = redis::cmd("DEL")
        .arg(&gone)
        .query_async(&mut conn)
        .await
        .unwrap();
    let lookup = json!({"tenant": tn.as_str(), "id": contact, "by": "dispatch"});

    // Started again, the tenant's owner walks its orders back in.
    let mut settings = t.servers.settings();
    quick(&mut settings);
    t.app = Some(testkit::App::start(settings, &t.nats).await);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = call(&t, subjects::API_CONTACT, lookup.clone()).await;
        if found["contactId"] == json!(contact) {
            break;
        }
        assert!(Instant::now() < deadline, "never walked: {found}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The closed order is in the closed-orders index again: archived.
    set_retention(&t, 1_000).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = call(
            &t,
            subjects::API_ARCHIVE,
            json!({"tenant": tn.as_str(), "orderId": closed.to_string()}),
        )
        .await;
        if r["order"].is_object() {
            break;
        }
        assert!(Instant::now() < deadline, "not archived: {r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(t.get(open).await["state"], "CREATED");
    // Its indexing is not an attribute's: config.get lists none.
    let config = call(&t, subjects::API_CONFIG_GET, json!({"tenant": tn.as_str()})).await;
    assert_eq!(config["indexing"], json!([]), "{config}");
}
