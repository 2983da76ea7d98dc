//! Personal data stays in its vault: orders created with marker contact
//! names, phones and addresses, run to the end with trace logging on (JSON
//! lines), and then every log line, every message of the events, job-update
//! and dispatch streams, and every Redis key except the contact and location
//! store is searched for the markers. They must be found only in that store.
//!
//! The commands stream (`ORDERD_CMD`) is not searched: it holds the clients'
//! own messages as they sent them (a create carries the contact), kept for
//! `nats.work_max_age_hours`.
//!
//! `PRIVACY_ORDERS=1000 cargo test --test privacy -- --nocapture`

use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::HeaderMap;
use serde_json::json;

use orderd::headers;
use orderd::subjects;
use testkit::{complete_everything, Process, Servers};

const NAME_MARK: &str = "Zqvmarkname";
const STREET_MARK: &str = "Zqvmarkstreet";
const CITY_MARK: &str = "Zqvmarkcity";
const PHONE_MARK: &str = "+999 8274 ";

fn body(i: usize) -> serde_json::Value {
    json!({
        "clientId": "client-1",
        "clientName": "Acme Retail",
        "clientOrderId": format!("PO-{i}"),
        "executionFlow": "START_TOGETHER",
        "dropDetails": {
            "contact": {"name": format!("{NAME_MARK} {i}"), "phone": format!("{PHONE_MARK}{i:05}")},
            "location": {"street": format!("{i} {STREET_MARK} Road"), "city": CITY_MARK}
        },
        "orderSummary": {"invoiceNumber": "INV-1", "orderDescription": "Sofa", "totalItems": 1},
        "workOrders": [{"type": "DELIVERY"}],
    })
}

/// The markers in `bytes`, if any (phones also without their spaces).
fn markers_in(bytes: &[u8]) -> Vec<&'static str> {
    let text = String::from_utf8_lossy(bytes);
    let squeezed: String = text.chars().filter(|c| *c != ' ').collect();
    let mut found = Vec::new();
    for m in [NAME_MARK, STREET_MARK, CITY_MARK, PHONE_MARK] {
        if text.contains(m) {
            found.push(m);
        }
    }
    if squeezed.contains("+9998274") || squeezed.contains("9998274") {
        found.push("phone digits");
    }
    found
}

async fn scan_stream(js: &jetstream::Context, stream: &str) -> (usize, Vec<String>) {
    let messages = testkit::stored_messages(js, stream, String::new()).await;
    let mut hits = Vec::new();
    for msg in &messages {
        let mut all = msg.subject.as_bytes().to_vec();
        all.extend_from_slice(&msg.payload);
        if let Some(h) = &msg.headers {
            for (k, vs) in h.iter() {
                all.extend_from_slice(k.to_string().as_bytes());
                for v in vs {
                    let v: &async_nats::HeaderValue = v;
                    all.extend_from_slice(v.as_str().as_bytes());
                }
            }
        }
        let found = markers_in(&all);
        if !found.is_empty() {
            hits.push(format!("{stream} {}: {found:?}", msg.subject));
        }
    }
    (messages.len(), hits)
}

#[tokio::test]
async fn personal_data_is_only_in_the_contact_and_location_store() {
    let orders: usize = std::env::var("PRIVACY_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let started = Instant::now();
    let servers = Servers::start().await;
    let log = servers.dir().join("orderd-trace.log");
    let _orderd = Process::start_with(
        &servers,
        &[("RUST_LOG", "trace"), ("ORDERD_LOG_FORMAT", "json")],
        Some(&log),
    );
    let t = testkit::attach(servers).await;
    let mut events = t.events().await;
    let _dispatch = t.dispatcher(complete_everything()).await;

    let mut acks = Vec::new();
    let mut ids = Vec::new();
    for i in 0..orders {
        let id = testkit::msg_id();
        ids.push(orderd::wire::order_id_for_create(&t.tenant, &id));
        let mut h = HeaderMap::new();
        h.insert(headers::NATS_MSG_ID, id.as_str());
        acks.push(
            t.js.publish_with_headers(
                subjects::create(&t.tenant),
                h,
                serde_json::to_vec(&body(i)).expect("json").into(),
            )
            .await
            .expect("publish"),
        );
    }
    for a in acks {
        a.await.expect("stored");
    }
    for id in &ids {
        events.wait_state(*id, "EXECUTED").await;
    }
    // One update of the contact and the location too, on a few orders.
    for (i, id) in ids.iter().take(20).enumerate() {
        let changed = json!({"dropDetails": {
            "contact": {"name": format!("{NAME_MARK} new {i}"), "phone": format!("{PHONE_MARK}9{i:04}")},
            "location": {"street": format!("{STREET_MARK} new {i}"), "city": CITY_MARK}
        }});
        let o = t.command(*id, subjects::Verb::Update, &changed).await;
        // Executed orders are immutable: refused, and the refusal must not
        // echo the values either.
        let text = serde_json::to_vec(&o).expect("json");
        assert!(
            markers_in(&text).is_empty(),
            "an outcome echoes personal data: {o:?}"
        );
    }
    let _ = t.get(ids[0]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut hits = Vec::new();
    // Every log line.
    let logs = std::fs::read(&log).expect("the log file");
    let lines = logs
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    let trace_lines = logs
        .split(|b| *b == b'\n')
        .filter(|l| l.windows(7).any(|w| w == b"\"TRACE\"" || w == b"\"DEBUG\""))
        .count();
    for (n, line) in logs.split(|b| *b == b'\n').enumerate() {
        let found = markers_in(line);
        if !found.is_empty() {
            hits.push(format!(
                "log line {n}: {found:?}: {}",
                String::from_utf8_lossy(&line[..line.len().min(300)])
            ));
        }
    }
    // Every stream message but the clients' own commands.
    let mut messages = 0;
    for stream in [
        subjects::STREAM_EVENTS,
        subjects::STREAM_DISPATCH,
        subjects::STREAM_JOBS,
    ] {
        let (n, h) = scan_stream(&t.js, stream).await;
        messages += n;
        hits.extend(h);
    }
    // Every Redis key: the vault must hold the markers, nothing else may.
    let client = redis::Client::open(t.servers.redis_url.as_str()).expect("redis url");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut con)
        .await
        .expect("keys");
    let (mut vault_keys, mut vault_hits, mut other_keys) = (0, 0, 0);
    for key in &keys {
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut con)
            .await
            .expect("type");
        let dump: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![redis::cmd("GET")
                .arg(key)
                .query_async(&mut con)
                .await
                .expect("get")],
            "hash" => redis::cmd("HGETALL")
                .arg(key)
                .query_async(&mut con)
                .await
                .expect("hgetall"),
            "zset" => redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(&mut con)
                .await
                .expect("zrange"),
            "set" => redis::cmd("SMEMBERS")
                .arg(key)
                .query_async(&mut con)
                .await
                .expect("smembers"),
            "list" => redis::cmd("LRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .query_async(&mut con)
                .await
                .expect("lrange"),
            other => panic!("key {key} of unexpected type {other}"),
        };
        let mut all = key.as_bytes().to_vec();
        for d in dump {
            all.extend_from_slice(&d);
        }
        let found = markers_in(&all);
        let vault = key.starts_with(&orderd::store::keys::contact(""))
            || key.starts_with(&orderd::store::keys::location(""));
        if vault {
            vault_keys += 1;
            if !found.is_empty() {
                vault_hits += 1;
            }
        } else {
            other_keys += 1;
            if !found.is_empty() {
                hits.push(format!("redis key {key} ({kind}): {found:?}"));
            }
        }
    }
    eprintln!(
        "privacy: {orders} orders; {lines} log lines ({trace_lines} at debug or trace), {messages} stream messages, \
         {other_keys} Redis keys searched; {vault_hits} of {vault_keys} vault keys hold markers; \
         {} hits outside the vault; {:.1}s",
        hits.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(trace_lines > 0, "verbose logging was not on");
    assert!(
        vault_hits >= orders,
        "the markers must be in the vault (positive control): {vault_hits}"
    );
    assert!(
        hits.is_empty(),
        "personal data outside its vault:\n{}",
        hits[..hits.len().min(20)].join("\n")
    );
}
