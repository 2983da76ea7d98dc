//! The configuration API over NATS, persisted in Redis: versions, seed 002's
//! attributes payload, every problem of an invalid configuration, drafts
//! validated and published in one step, orders decided by the version they
//! were created under, and the dry run.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use orderd::headers;
use orderd::subjects::{self, Verb};
use orderd_core::OrderId;
use serde_json::{json, Value};
use testkit::{create_body, spawn_app, TestApp};

/// seed 002's `POST /config/attributes` sample, as published.
const SEED_002_SAMPLE: &str = r#"{
  "attributes": [
    { "name": "maxAttempts", "dataType": "number", "indexed": false,
      "validation": { "required": false }, "defaultValue": 1, "securityLevel": "OPEN", "delete": false },
    { "name": "stringValidations", "description": "string", "indexed": true, "dataType": "string",
      "validation": { "range": { "min": 0, "max": 5 }, "regex": "string",
                      "valueOneOf": [ "string123", "string124" ], "required": false } },
    { "name": "intValidations", "description": "int", "indexed": true, "dataType": "number", "defaultValue": 1,
      "validation": { "range": { "min": 0, "max": 5 }, "valueOneOf": [ 0,1,2,3,4,5 ], "required": true } }
  ]
}"#;

/// Calls a config endpoint: `Ok(reply)` or `Err(error body)`.
async fn call(t: &TestApp, subject: &str, body: Value) -> Result<Value, Value> {
    let (h, v) = t.read(subject, &body).await;
    let failed = h
        .as_ref()
        .and_then(|h| h.get(headers::NATS_SERVICE_ERROR))
        .is_some();
    if failed {
        Err(v)
    } else {
        Ok(v)
    }
}

fn tenant(t: &TestApp) -> String {
    t.tenant.to_string()
}

/// Long enough for the actors' cache of current configurations (200 ms in
/// the test settings) to see a publish.
async fn let_it_take_effect() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn versions_attributes_invalid_drafts_and_orders_keep_their_version() {
    let t = spawn_app().await;
    let tn = tenant(&t);

    // Nothing published: version 1, the default.
    let got = call(&t, subjects::API_CONFIG_GET, json!({"tenant": tn}))
        .await
        .unwrap();
    assert_eq!(got["version"], 1);

    // seed 002's sample, as it is (plus the tenant).
    let mut body: Value = serde_json::from_str(SEED_002_SAMPLE).unwrap();
    body["tenant"] = json!(tn);
    let v2 = call(&t, subjects::API_CONFIG_ATTRIBUTES, body)
        .await
        .unwrap();
    assert_eq!(v2["version"], 2, "{v2}");
    assert_eq!(v2["config"]["attributes"].as_array().unwrap().len(), 3);

    // Stored in Redis before the reply: the version and the pointer.
    let mut conn = redis::Client::open(t.servers.redis_url.as_str())
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();
    let current: String = redis::cmd("GET")
        .arg(format!("orderd:tenant:{tn}:config:current"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(current, "2");
    let exists: bool = redis::cmd("EXISTS")
        .arg(format!("orderd:tenant:{tn}:config:2"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(exists);

    // An invalid draft: every problem listed, nothing changes.
    let invalid = json!({
        "tenant": tn,
        "config": {
            "attributes": [{"name": "bad name", "dataType": "string"}],
            "plugins": ["not ok"],
            "pluginPolicy": {"timeoutMs": 1},
            "milestones": [{"name": "m", "reach": "EXECUTED", "withinMs": 1000, "warnBeforeMs": 5000}],
            "subStates": {"IN_PROGRESS": {"subStates": ["A"], "transitions": [["A", "B"]]}}
        }
    });
    for subject in [subjects::API_CONFIG_VALIDATE, subjects::API_CONFIG_PUBLISH] {
        let err = call(&t, subject, invalid.clone()).await.unwrap_err();
        assert_eq!(err["code"], "ORD-422-INVALID_CONFIG");
        let fields: Vec<&str> = err["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field"].as_str().unwrap())
            .collect();
        for want in [
            "attributes[0].name",
            "plugins[0]",
            "pluginPolicy.timeoutMs",
            "milestones[0].warnBeforeMs",
            "subStates.IN_PROGRESS.transitions",
        ] {
            assert!(fields.contains(&want), "{want} missing from {fields:?}");
        }
    }
    let still = call(&t, subjects::API_CONFIG_GET, json!({"tenant": tn}))
        .await
        .unwrap();
    assert_eq!(still["version"], 2, "the active config is unchanged");

    // A whole draft: validated, then published in one step.
    let draft = json!({
        "attributes": [{"name": "region", "dataType": "string", "indexed": true}],
        "subStates": {"IN_PROGRESS": {"subStates": ["PACKING", "LOADED"],
                                       "transitions": [["PACKING", "LOADED"]]}},
        "autoCloseAfterMs": 60000
    });
    let ok = call(
        &t,
        subjects::API_CONFIG_VALIDATE,
        json!({"tenant": tn, "config": draft}),
    )
    .await
    .unwrap();
    assert_eq!(ok, json!({"tenant": tn, "valid": true, "nextVersion": 3}));
    // An expected version that is not current is refused.
    let conflict = call(
        &t,
        subjects::API_CONFIG_PUBLISH,
        json!({"tenant": tn, "config": draft, "expectedVersion": 1}),
    )
    .await
    .unwrap_err();
    assert_eq!(conflict["code"], "ORD-409-CONFIG_VERSION_CONFLICT");
    let v3 = call(
        &t,
        subjects::API_CONFIG_PUBLISH,
        json!({"tenant": tn, "config": draft, "expectedVersion": 2}),
    )
    .await
    .unwrap();
    assert_eq!(v3["version"], 3);
    // Old versions are kept.
    let old = call(
        &t,
        subjects::API_CONFIG_GET,
        json!({"tenant": tn, "version": 2}),
    )
    .await
    .unwrap();
    assert_eq!(old["version"], 2);
    assert_eq!(old["currentVersion"], 3);
    assert_eq!(old["config"]["attributes"].as_array().unwrap().len(), 3);
    let missing = call(
        &t,
        subjects::API_CONFIG_GET,
        json!({"tenant": tn, "version": 9}),
    )
    .await
    .unwrap_err();
    assert_eq!(missing["code"], "ORD-404-CONFIG_VERSION_NOT_FOUND");

    // An order created under version 3 ...
    let_it_take_effect().await;
    let mut body = create_body("SEQUENTIAL", &["PICKUP"]);
    body["customAttributes"] = json!({"region": "north"});
    let old_order = t.create(&body).await;
    assert_eq!(t.get(old_order).await["schemaVersion"], 3);

    // ... keeps deciding with it after version 4 drops its sub-states.
    let v4 = call(
        &t,
        subjects::API_CONFIG_PUBLISH,
        json!({"tenant": tn, "config": {"attributes": draft["attributes"]}}),
    )
    .await
    .unwrap();
    assert_eq!(v4["version"], 4);
    let_it_take_effect().await;
    let moved = t
        .command(old_order, Verb::SubState, &json!({"subState": "PACKING"}))
        .await;
    assert!(moved.ok, "decided with version 3: {moved:?}");
    let new_order = t.create(&body).await;
    assert_eq!(t.get(new_order).await["schemaVersion"], 4);
    let refused = t
        .command(new_order, Verb::SubState, &json!({"subState": "PACKING"}))
        .await;
    assert!(!refused.ok);
    assert_eq!(
        refused.error.as_ref().map(|e| e.code.as_str()),
        Some("ORD-422-UNKNOWN_SUB_STATE")
    );
}

/// The configuration the dry-run test's orders are created under, and its
/// variations.
fn dry_run_config(pickup_attempts: u32, delivery_returns: bool, transitions: Value) -> Value {
    json!({
        "workOrderTypes": {
            "PICKUP": {"jobType": "pickup", "maxAttempts": pickup_attempts},
            "DELIVERY": {"jobType": "delivery", "maxAttempts": 2,
                         "returnOnFailure": delivery_returns},
            "RETURN": {"jobType": "return", "maxAttempts": 1}
        },
        "subStates": {"IN_PROGRESS": {"subStates": ["PACKING", "LOADED"],
                                       "transitions": transitions}}
    })
}

/// A dry run of `draft`; waits while an order's latest events are still on
/// their way to the stream.
async fn dry_run(t: &TestApp, draft: &Value) -> Value {
    let deadline = tokio::time::Instant::now() + testkit::WAIT;
    loop {
        let run = call(
            t,
            subjects::API_CONFIG_DRYRUN,
            json!({"tenant": tenant(t), "config": draft, "limit": 50}),
        )
        .await
        .unwrap();
        let behind = run["unreplayable"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["code"] == "EVENTS_BEHIND");
        if !behind || tokio::time::Instant::now() > deadline {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The orders a dry run lists as different, by id.
fn differing(run: &Value) -> std::collections::BTreeMap<String, Value> {
    run["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["orderId"].as_str().unwrap().to_owned(), d.clone()))
        .collect()
}

#[tokio::test]
async fn a_dry_run_replays_recent_histories_from_the_event_stream_under_a_draft() {
    use orderd_core::model::JobStatus::{Cancelled, Completed, Failed, Started};
    let t = spawn_app().await;
    let tn = tenant(&t);
    let active = dry_run_config(1, false, json!([["PACKING", "LOADED"]]));
    call(
        &t,
        subjects::API_CONFIG_PUBLISH,
        json!({"tenant": tn, "config": active}),
    )
    .await
    .unwrap();
    let_it_take_effect().await;
    let ok = |o: orderd::wire::Outcome| assert!(o.ok, "{o:?}");

    // Held and resumed, then delivered.
    let held = t.create(&create_body("SEQUENTIAL", &["DELIVERY"])).await;
    ok(
        t.command(held, Verb::Hold, &json!({"reason": "customer away"}))
            .await,
    );
    ok(t.command(held, Verb::Resume, &json!({})).await);
    ok(t.job(held, 1, 1, Started, None).await);
    ok(t.job(held, 1, 1, Completed, None).await);
    // Cancelled while its first job ran.
    let cancelled = t
        .create(&create_body("SEQUENTIAL", &["PICKUP", "DELIVERY"]))
        .await;
    ok(t.job(cancelled, 1, 1, Started, None).await);
    ok(
        t.command(cancelled, Verb::Cancel, &json!({"reason": "changed mind"}))
            .await,
    );
    ok(t.job(cancelled, 1, 1, Cancelled, None).await);
    // A pickup whose only attempt failed: it cannot execute.
    let pickup_failed = t.create(&create_body("SEQUENTIAL", &["PICKUP"])).await;
    ok(t.job(pickup_failed, 1, 1, Started, None).await);
    ok(t.job(pickup_failed, 1, 1, Failed, Some("NO_ACCESS")).await);
    // A delivery that failed both attempts: no return under the active config.
    let delivery_failed = t.create(&create_body("SEQUENTIAL", &["DELIVERY"])).await;
    ok(t.job(delivery_failed, 1, 1, Failed, Some("NO_ACCESS"))
        .await);
    ok(t.job(delivery_failed, 1, 2, Failed, Some("NO_ACCESS"))
        .await);
    // Moved through two sub-states.
    let packed = t.create(&create_body("SEQUENTIAL", &["DELIVERY"])).await;
    ok(
        t.command(packed, Verb::SubState, &json!({"subState": "PACKING"}))
            .await,
    );
    ok(
        t.command(packed, Verb::SubState, &json!({"subState": "LOADED"}))
            .await,
    );
    // One whose first events are gone from the stream.
    let expired = t.create(&create_body("SEQUENTIAL", &["PICKUP"])).await;
    ok(t.job(expired, 1, 1, Started, None).await);
    let states = [
        (held, "EXECUTED"),
        (cancelled, "CLOSED"),
        (pickup_failed, "CLOSED"),
        (delivery_failed, "CLOSED"),
        (packed, "IN_PROGRESS"),
        (expired, "IN_PROGRESS"),
    ];
    for (order, state) in states {
        assert_eq!(t.get(order).await["state"], state, "{order}");
    }
    // Its two event messages are in the stream; then the first goes.
    let deadline = tokio::time::Instant::now() + testkit::WAIT;
    while t.history(expired).await.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "events too slow");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.js.get_stream(subjects::STREAM_EVENTS)
        .await
        .unwrap()
        .purge()
        .filter(subjects::events_of_order(&t.tenant, expired))
        .keep(1)
        .await
        .unwrap();

    // The active configuration itself: every history reproduces, nothing differs.
    let same = dry_run(&t, &active).await;
    assert_eq!(same["checked"], 6, "{same:#}");
    assert_eq!(same["replayed"], 5, "{same:#}");
    assert_eq!(same["differences"], json!([]), "{same:#}");
    let unreplayable = same["unreplayable"].as_array().unwrap();
    assert_eq!(unreplayable.len(), 1, "{same:#}");
    assert_eq!(unreplayable[0]["orderId"], expired.to_string());
    assert_eq!(unreplayable[0]["code"], "EVENTS_EXPIRED");
    assert!(
        unreplayable[0]["reason"]
            .as_str()
            .unwrap()
            .contains("its oldest is seq 2"),
        "{same:#}"
    );

    // Two pickup attempts: only the failed pickup ends differently.
    let run = dry_run(
        &t,
        &dry_run_config(2, false, json!([["PACKING", "LOADED"]])),
    )
    .await;
    let diffs = differing(&run);
    assert_eq!(diffs.len(), 1, "{run:#}");
    let d = &diffs[&pickup_failed.to_string()];
    assert_eq!(d["endsDifferently"], true);
    assert_eq!(d["schemaVersion"], 2);
    assert_eq!(
        d["now"],
        json!({"state": "CLOSED", "subState": null, "closeReason": "CANCELLED", "milestonesMissed": []})
    );
    assert_eq!(d["draft"]["state"], "IN_PROGRESS");
    let first = &d["firstDifference"];
    assert_eq!(first["seq"], 3, "{d:#}");
    assert_eq!(first["command"], "job");
    assert_eq!(first["now"], "applied → CLOSED (CANCELLED)");
    assert_eq!(first["draft"], "applied → IN_PROGRESS");
    assert!(first["at"].as_str().unwrap().ends_with('Z'));

    // Deliveries that return on failure: only the failed delivery differs.
    let run = dry_run(&t, &dry_run_config(1, true, json!([["PACKING", "LOADED"]]))).await;
    let diffs = differing(&run);
    assert_eq!(diffs.len(), 1, "{run:#}");
    let d = &diffs[&delivery_failed.to_string()];
    assert_eq!(d["now"]["closeReason"], "CANCELLED");
    assert_eq!(d["draft"]["state"], "IN_PROGRESS", "waits for its return");
    assert_eq!(d["firstDifference"]["seq"], 3, "{d:#}");

    // No move from PACKING to LOADED: the sub-state order stays PACKING.
    let run = dry_run(&t, &dry_run_config(1, false, json!([]))).await;
    let diffs = differing(&run);
    assert_eq!(diffs.len(), 1, "{run:#}");
    let d = &diffs[&packed.to_string()];
    assert_eq!(d["now"]["subState"], "LOADED");
    assert_eq!(d["draft"]["subState"], "PACKING");
    assert_eq!(d["firstDifference"]["command"], "substate");
    assert_eq!(
        d["firstDifference"]["draft"],
        "refused ORD-409-SUB_STATE_TRANSITION"
    );

    // A validation plugin (with no recorded verdict): every replayed order
    // waits for it from its creation on, its job updates are refused, and
    // the cancelled one is cancelled before it ever started.
    let mut with_plugin = active.clone();
    with_plugin["plugins"] = json!(["fraud"]);
    let run = dry_run(&t, &with_plugin).await;
    let diffs = differing(&run);
    assert_eq!(diffs.len(), 5, "{run:#}");
    for (order, d) in &diffs {
        let end = if *order == cancelled.to_string() {
            "CLOSED"
        } else {
            "INITIATED"
        };
        assert_eq!(d["draft"]["state"], end, "{order}");
        assert_eq!(d["firstDifference"]["seq"], 1, "{order}");
        assert_eq!(d["firstDifference"]["draft"], "applied → INITIATED");
    }
    let d = &diffs[&held.to_string()];
    assert_eq!(d["now"]["state"], "EXECUTED");
    assert_eq!(run["problems"], json!([]));

    // A draft with problems is still replayed; they are reported.
    let mut invalid = active.clone();
    invalid["plugins"] = json!(["not ok"]);
    let run = dry_run(&t, &invalid).await;
    assert_eq!(run["problems"][0]["field"], "plugins[0]", "{run:#}");

    // Nothing was stored.
    let got = call(&t, subjects::API_CONFIG_GET, json!({"tenant": tn}))
        .await
        .unwrap();
    assert_eq!(got["version"], 2);
}

#[tokio::test]
async fn a_tenant_changes_only_its_own_configuration() {
    let t = spawn_app().await;
    let intruder = testkit::random_tenant();
    let ask = |reply: String| {
        let nats = t.nats.clone();
        let body = json!({"tenant": t.tenant.as_str(), "config": {"plugins": ["x"]}});
        async move {
            let mut sub = nats.subscribe(reply.clone()).await.unwrap();
            nats.publish_with_reply(
                subjects::API_CONFIG_PUBLISH,
                reply,
                serde_json::to_vec(&body).unwrap().into(),
            )
            .await
            .unwrap();
            let msg = tokio::time::timeout(Duration::from_secs(10), sub.next())
                .await
                .expect("an answer")
                .unwrap();
            serde_json::from_slice::<Value>(&msg.payload).unwrap()
        }
    };
    let stolen = ask(format!("_INBOX_{intruder}.c1")).await;
    assert_eq!(stolen["code"], "ORD-403-READ_NOT_ALLOWED", "{stolen}");
    let got = call(&t, subjects::API_CONFIG_GET, json!({"tenant": tenant(&t)}))
        .await
        .unwrap();
    assert_eq!(got["version"], 1, "nothing changed");
    let own = ask(format!("_INBOX_{}.c2", t.tenant)).await;
    assert_eq!(own["version"], 2, "{own}");
}

// ---- indexing an attribute later --------------------------------------------

/// A query over NATS: `Ok(reply)` or `Err(error body)`.
async fn query(t: &TestApp, mut filter: Value) -> Result<Value, Value> {
    filter["tenant"] = json!(tenant(t));
    call(t, subjects::API_QUERY, filter).await
}

/// Every order id a query finds, page after page.
async fn found(t: &TestApp, filter: Value) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let mut f = filter.clone();
        f["limit"] = json!(100);
        if let Some(a) = &after {
            f["after"] = json!(a);
        }
        let page = query(t, f).await.expect("the query answers");
        for o in page["orders"].as_array().unwrap() {
            ids.insert(o["orderId"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => return ids,
        }
    }
}

/// Creates `n` orders at once; order `i` has region north (even) or south
/// (odd) and weightKg `i * 10`.
async fn create_weighed(t: &TestApp, n: usize) -> Vec<(OrderId, &'static str, f64)> {
    futures::stream::iter(0..n)
        .map(|i| async move {
            let region = if i % 2 == 0 { "north" } else { "south" };
            let weight = (i * 10) as f64;
            let mut body = create_body("SEQUENTIAL", &["PICKUP"]);
            body["customAttributes"] = json!({"region": region, "weightKg": weight});
            (t.create(&body).await, region, weight)
        })
        .buffer_unordered(16)
        .collect()
        .await
}

fn weighed_attributes(indexed: bool) -> Value {
    json!([
        {"name": "region", "dataType": "string", "indexed": indexed},
        {"name": "weightKg", "dataType": "number", "indexed": indexed}
    ])
}

/// Publishes a configuration of just those two attributes.
async fn publish_weighed(t: &TestApp, indexed: bool) -> Value {
    call(
        t,
        subjects::API_CONFIG_PUBLISH,
        json!({"tenant": tenant(t), "config": {"attributes": weighed_attributes(indexed)}}),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn older_orders_are_found_by_an_attribute_indexed_after_them() {
    let t = spawn_app().await;
    let tn = tenant(&t);
    let v2 = publish_weighed(&t, false).await;
    assert_eq!(v2["indexing"], json!([]), "no orders yet: nothing to build");
    let_it_take_effect().await;
    // More than one page of the backfill's walk.
    let orders = create_weighed(&t, orderd::store::backfill::PAGE + 50).await;
    let refused = query(&t, json!({"customAttributes": {"region": "north"}}))
        .await
        .unwrap_err();
    assert_eq!(refused["code"], "ORD-400-ATTRIBUTE_NOT_INDEXED");

    let v3 = publish_weighed(&t, true).await;
    assert_eq!(v3["indexing"], json!(["region", "weightKg"]), "{v3}");

    // Until the backfill is done, a query on them says so; then it answers.
    let deadline = tokio::time::Instant::now() + testkit::WAIT;
    loop {
        match query(&t, json!({"customAttributes": {"region": "north"}})).await {
            Ok(_) => break,
            Err(e) => {
                assert_eq!(e["code"], "ORD-503-INDEX_BUILDING", "{e}");
                assert!(tokio::time::Instant::now() < deadline, "backfill too slow");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let got = call(&t, subjects::API_CONFIG_GET, json!({"tenant": tn}))
        .await
        .unwrap();
    assert_eq!(got["indexing"], json!([]));

    let ids = |keep: &dyn Fn(&str, f64) -> bool| -> BTreeSet<String> {
        orders
            .iter()
            .filter(|(_, r, w)| keep(r, *w))
            .map(|(id, _, _)| id.to_string())
            .collect()
    };
    let north = ids(&|r, _| r == "north");
    assert_eq!(north.len(), (orderd::store::backfill::PAGE + 50) / 2);
    assert_eq!(
        found(&t, json!({"customAttributes": {"region": "north"}})).await,
        north
    );
    assert_eq!(
        found(&t, json!({"customAttributes": {"region": "south"}})).await,
        ids(&|r, _| r == "south")
    );
    assert_eq!(
        found(
            &t,
            json!({"customAttributeRanges": {"weightKg": {"min": 100, "max": 1500}}})
        )
        .await,
        ids(&|_, w| (100.0..=1500.0).contains(&w))
    );
    assert_eq!(
        found(&t, json!({"customAttributes": {"weightKg": 420}})).await,
        ids(&|_, w| w == 420.0)
    );
    assert_eq!(
        found(
            &t,
            json!({"customAttributes": {"region": "south"},
                   "customAttributeRanges": {"weightKg": {"max": 990}}})
        )
        .await,
        ids(&|r, w| r == "south" && w <= 990.0)
    );
}

/// The members of one sorted set.
async fn members(conn: &mut redis::aio::ConnectionManager, key: &str) -> BTreeSet<String> {
    redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_backfill_resumes_refuses_queries_meanwhile_and_survives_concurrent_writes() {
    let mut t = spawn_app().await;
    let tn = tenant(&t);
    publish_weighed(&t, false).await;
    let_it_take_effect().await;
    let n = 2 * orderd::store::backfill::PAGE + 10;
    let orders = create_weighed(&t, n).await;
    // No orderd from here on: the backfill runs only when this test says.
    t.stop_app().await;
    let store = t.servers.store().await;
    let conn = redis::Client::open(t.servers.redis_url.as_str())
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();

    let indexed: orderd_core::TenantConfig =
        serde_json::from_value(json!({"attributes": weighed_attributes(true)})).unwrap();
    let published = store
        .publish_config(&t.tenant, &indexed, None)
        .await
        .unwrap();
    assert_eq!(published.newly_indexed, ["region", "weightKg"]);
    assert_eq!(
        store.backfill_pending(&t.tenant).await.unwrap(),
        ["region", "weightKg"]
    );
    let north: orderd::wire::QueryRequest = serde_json::from_value(
        json!({"tenant": tn, "customAttributes": {"region": "north"}, "limit": 500}),
    )
    .unwrap();
    let refused = orderd::api::query::run(&store, &north, 500)
        .await
        .unwrap_err();
    assert_eq!(refused.body().code, "ORD-503-INDEX_BUILDING");
    // A filter on something else is not held up.
    let by_state: orderd::wire::QueryRequest =
        serde_json::from_value(json!({"tenant": tn, "state": "IN_PROGRESS", "limit": 500}))
            .unwrap();
    assert_eq!(
        orderd::api::query::run(&store, &by_state, 500)
            .await
            .unwrap()
            .orders
            .len(),
        n
    );

    // A first walk stopped after its first page keeps its cursor ...
    // (A stop is honoured between pages, after the first.)
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(true);
    let stopped = orderd::store::backfill::backfill_tenant(&store, &t.tenant, Some(&stop_rx))
        .await
        .unwrap();
    assert_eq!(stopped, None, "stopped before the end");
    drop(stop_tx);
    let cursor: Option<String> = redis::cmd("HGET")
        .arg(orderd::store::keys::backfill(&t.tenant))
        .arg("cursor")
        .query_async(&mut conn.clone())
        .await
        .unwrap();
    assert!(cursor.is_some_and(|c| !c.is_empty()), "the cursor is kept");

    // ... and the walk that finishes runs while an "actor" moves half the
    // orders to the other region and weight, one write after another.
    let writer = {
        let store = t.servers.store().await;
        // It writes as the tenant's owner does: with the owner's epoch.
        let epoch = store
            .stored_epoch(&orderd::subjects::Unit::first(&t.tenant))
            .await
            .unwrap();
        assert!(store
            .fence(&orderd::subjects::Unit::first(&t.tenant), epoch)
            .await
            .unwrap());
        let moved: Vec<OrderId> = orders.iter().step_by(2).map(|(id, _, _)| *id).collect();
        tokio::spawn(async move {
            use orderd::store::SnapshotStore;
            for id in moved {
                let mut snap = store.load(id).await.unwrap().expect("stored");
                snap.order.custom.insert("region".into(), json!("west"));
                snap.order.custom.insert("weightKg".into(), json!(-1.0));
                snap.version += 1;
                let state = snap.order.state;
                store.save(&mut snap, Some(state)).await.unwrap();
            }
        })
    };
    let finished = orderd::store::backfill::backfill_tenant(&store, &t.tenant, None)
        .await
        .unwrap()
        .expect("the backfill finishes");
    writer.await.unwrap();
    assert_eq!(finished.attributes, ["region", "weightKg"]);
    assert!(finished.orders < n, "resumed at the cursor: {finished:?}");
    assert!(store.backfill_pending(&t.tenant).await.unwrap().is_empty());

    // Every order is in exactly the entries its snapshot says.
    let mut c = conn.clone();
    let key =
        |region: &str| orderd::store::keys::attribute_index(&t.tenant, "region", &json!(region));
    let (north_ids, south_ids, west_ids) = (
        members(&mut c, &key("north")).await,
        members(&mut c, &key("south")).await,
        members(&mut c, &key("west")).await,
    );
    let weights: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(orderd::store::keys::number_index(&t.tenant, "weightKg"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut c)
        .await
        .unwrap();
    let weights: std::collections::BTreeMap<String, f64> = weights.into_iter().collect();
    assert_eq!(weights.len(), n);
    for (i, (id, region, weight)) in orders.iter().enumerate() {
        let id = id.to_string();
        let (region, weight) = if i % 2 == 0 {
            ("west", -1.0)
        } else {
            (*region, *weight)
        };
        assert_eq!(north_ids.contains(&id), region == "north", "{id}");
        assert_eq!(south_ids.contains(&id), region == "south", "{id}");
        assert_eq!(west_ids.contains(&id), region == "west", "{id}");
        assert_eq!(weights.get(&id), Some(&weight), "{id}");
    }
    // And the queries agree.
    let expect = |want: &str| -> BTreeSet<String> {
        orders
            .iter()
            .enumerate()
            .filter(|(i, (_, region, _))| (if i % 2 == 0 { "west" } else { *region }) == want)
            .map(|(_, (id, _, _))| id.to_string())
            .collect()
    };
    for region in ["north", "south", "west"] {
        let req: orderd::wire::QueryRequest = serde_json::from_value(
            json!({"tenant": tn, "customAttributes": {"region": region}, "limit": 500}),
        )
        .unwrap();
        let answered: BTreeSet<String> = orderd::api::query::run(&store, &req, 500)
            .await
            .unwrap()
            .orders
            .iter()
            .map(|o| o.order_id.clone())
            .collect();
        assert_eq!(answered, expect(region), "{region}");
    }
    assert_eq!(expect("west").len(), n.div_ceil(2));
}
