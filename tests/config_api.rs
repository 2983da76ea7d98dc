//! The configuration API over NATS, persisted in Redis: versions, seed 002's
//! attributes payload, every problem of an invalid configuration, drafts
//! validated and published in one step, orders decided by the version they
//! were created under, and the dry run.

mod common;

use std::time::Duration;

use common::{create_body, spawn_app, TestApp};
use orderd::headers;
use orderd::subjects::{self, Verb};
use serde_json::{json, Value};

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
    let store = t.servers.store().await;
    let mut conn = store.connection().clone();
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

#[tokio::test]
async fn a_dry_run_lists_the_recent_orders_a_draft_would_decide_differently() {
    let t = spawn_app().await;
    let tn = tenant(&t);
    let kyc = t.create(&create_body("SEQUENTIAL", &["KYC"])).await;
    let pickup = t.create(&create_body("SEQUENTIAL", &["PICKUP"])).await;

    // The same configuration as now: nothing differs.
    let same = call(
        &t,
        subjects::API_CONFIG_DRYRUN,
        json!({"tenant": tn, "config": {}}),
    )
    .await
    .unwrap();
    assert_eq!(same["checked"], 2, "{same}");
    assert_eq!(same["differences"], json!([]), "{same}");

    // A draft that adds a plugin and knows only PICKUP work orders.
    let draft = json!({
        "plugins": ["fraud"],
        "workOrderTypes": {"PICKUP": {"jobType": "pickup", "maxAttempts": 5}},
        "milestones": [{"name": "done", "reach": "EXECUTED", "withinMs": 3600000}]
    });
    let run = call(
        &t,
        subjects::API_CONFIG_DRYRUN,
        json!({"tenant": tn, "config": draft, "limit": 10}),
    )
    .await
    .unwrap();
    assert_eq!(run["checked"], 2);
    assert_eq!(run["problems"], json!([]));
    let diffs = run["differences"].as_array().unwrap();
    let of = |id: String| -> Vec<Value> {
        diffs
            .iter()
            .find(|d| d["orderId"] == json!(id))
            .map(|d| d["changes"].as_array().unwrap().clone())
            .unwrap_or_default()
    };
    let kyc_changes = of(kyc.to_string());
    assert!(
        kyc_changes
            .iter()
            .any(|c| c["aspect"] == "create" && c["draft"].as_str().unwrap().contains("refused")),
        "{kyc_changes:#?}"
    );
    let pickup_changes = of(pickup.to_string());
    let aspects: Vec<&str> = pickup_changes
        .iter()
        .map(|c| c["aspect"].as_str().unwrap())
        .collect();
    for want in ["create", "plugins", "workOrder.1", "milestones"] {
        assert!(aspects.contains(&want), "{want} in {pickup_changes:#?}");
    }
    // Nothing was stored.
    let got = call(&t, subjects::API_CONFIG_GET, json!({"tenant": tn}))
        .await
        .unwrap();
    assert_eq!(got["version"], 1);
}

#[tokio::test]
async fn a_tenant_changes_only_its_own_configuration() {
    use futures::StreamExt;
    let t = spawn_app().await;
    let intruder = common::random_tenant();
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
