//! Queries over NATS against the indexes the snapshot script keeps: state,
//! sub-state, client order id, creation time, indexed custom attributes
//! (equality, number ranges), cursor paging, refusal of attributes that are
//! not indexed, and index entries that follow the snapshot.

use std::collections::BTreeSet;
use std::time::Duration;

use orderd::headers;
use orderd::subjects::{self, Verb};
use orderd_core::OrderId;
use serde_json::{json, Value};
use testkit::{create_body, spawn_app, TestApp};

async fn query(t: &TestApp, filter: Value) -> Result<Value, Value> {
    let mut body = filter;
    body["tenant"] = json!(t.tenant.as_str());
    let (h, v) = t.read(subjects::API_QUERY, &body).await;
    match h.as_ref().and_then(|h| h.get(headers::NATS_SERVICE_ERROR)) {
        Some(_) => Err(v),
        None => Ok(v),
    }
}

/// Every order id a query returns, following `next` page by page.
async fn all_pages(t: &TestApp, filter: Value, limit: u32) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut after: Option<String> = None;
    loop {
        let mut f = filter.clone();
        f["limit"] = json!(limit);
        if let Some(a) = &after {
            f["after"] = json!(a);
        }
        let page = query(t, f).await.expect("query answers");
        pages += 1;
        for o in page["orders"].as_array().unwrap() {
            ids.push(o["orderId"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => return (ids, pages),
        }
    }
}

fn set(ids: &[OrderId]) -> BTreeSet<String> {
    ids.iter().map(ToString::to_string).collect()
}

#[tokio::test]
async fn every_filter_pages_and_the_indexes_follow_the_snapshots() {
    let t = spawn_app().await;
    let config = json!({
        "tenant": t.tenant.as_str(),
        "config": {
            "attributes": [
                {"name": "region", "dataType": "string", "indexed": true},
                {"name": "weight", "dataType": "number", "indexed": true},
                {"name": "fragile", "dataType": "boolean", "indexed": true},
                {"name": "note", "dataType": "string", "indexed": false}
            ],
            "subStates": {"IN_PROGRESS": {"subStates": ["PACKING", "LOADED"],
                                           "transitions": [["PACKING", "LOADED"]]}}
        }
    });
    let (h, v) = t.read(subjects::API_CONFIG_PUBLISH, &config).await;
    assert!(
        h.and_then(|h| h.get(headers::NATS_SERVICE_ERROR).cloned())
            .is_none(),
        "{v}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Six orders: no dispatcher answers, so they stay IN_PROGRESS.
    let mut orders = Vec::new();
    let before = orderd::wire::rfc3339(orderd_core::Timestamp(
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap()
            - 1,
    ));
    for (i, (region, weight)) in [
        ("north", 1.5),
        ("north", 10.0),
        ("south", 20.0),
        ("north", 30.0),
        ("east", 40.0),
        ("south", 50.0),
    ]
    .into_iter()
    .enumerate()
    {
        let mut body = create_body("SEQUENTIAL", &["PICKUP"]);
        body["clientOrderId"] = json!(if i < 2 { "PO-SAME" } else { "PO-OTHER" });
        body["customAttributes"] =
            json!({"region": region, "weight": weight, "fragile": i % 2 == 0, "note": "n"});
        orders.push(t.create(&body).await);
    }
    let (north, north_ids) = (
        vec![orders[0], orders[1], orders[3]],
        all_pages(&t, json!({"customAttributes": {"region": "north"}}), 2).await,
    );
    assert_eq!(
        north_ids.0.iter().cloned().collect::<BTreeSet<_>>(),
        set(&north)
    );
    assert_eq!(north_ids.1, 2, "3 orders in pages of 2");

    // Number equality and ranges (inclusive), boolean equality.
    let (ids, _) = all_pages(&t, json!({"customAttributes": {"weight": 10}}), 10).await;
    assert_eq!(ids, vec![orders[1].to_string()]);
    let (ids, _) = all_pages(
        &t,
        json!({"customAttributeRanges": {"weight": {"min": 10, "max": 40}}}),
        1,
    )
    .await;
    assert_eq!(
        ids,
        [1, 2, 3, 4].map(|i| orders[i].to_string()).to_vec(),
        "by value, one per page"
    );
    let (ids, _) = all_pages(
        &t,
        json!({"customAttributes": {"region": "south"},
               "customAttributeRanges": {"weight": {"min": 30}}}),
        10,
    )
    .await;
    assert_eq!(ids, vec![orders[5].to_string()]);
    let (ids, _) = all_pages(&t, json!({"customAttributes": {"fragile": true}}), 10).await;
    assert_eq!(ids.len(), 3);

    // State, client order id, creation time.
    let (ids, pages) = all_pages(&t, json!({"state": "IN_PROGRESS"}), 4).await;
    assert_eq!(ids.len(), 6);
    assert_eq!(pages, 2);
    let (ids, _) = all_pages(&t, json!({"clientOrderId": "PO-SAME"}), 10).await;
    assert_eq!(
        ids.iter().cloned().collect::<BTreeSet<_>>(),
        set(&orders[..2])
    );
    let created_third = t.get(orders[2]).await["createdAt"]
        .as_str()
        .unwrap()
        .to_owned();
    let (ids, _) = all_pages(&t, json!({"createdFrom": created_third}), 10).await;
    assert!(ids.len() >= 4 && ids.len() <= 6, "{ids:?}");
    assert!(ids.contains(&orders[5].to_string()));
    let (ids, _) = all_pages(&t, json!({"createdFrom": before, "createdTo": before}), 10).await;
    assert!(ids.is_empty());
    let (ids, _) = all_pages(&t, json!({}), 5).await;
    assert_eq!(ids.len(), 6, "no filter: every order by creation time");

    // Sub-state: entered, moved, and its index follows.
    for o in &orders[..2] {
        let out = t
            .command(*o, Verb::SubState, &json!({"subState": "PACKING"}))
            .await;
        assert!(out.ok, "{out:?}");
    }
    let (ids, _) = all_pages(&t, json!({"subState": "PACKING"}), 10).await;
    assert_eq!(
        ids.iter().cloned().collect::<BTreeSet<_>>(),
        set(&orders[..2])
    );
    let out = t
        .command(orders[0], Verb::SubState, &json!({"subState": "LOADED"}))
        .await;
    assert!(out.ok);
    let (ids, _) = all_pages(&t, json!({"subState": "PACKING"}), 10).await;
    assert_eq!(ids, vec![orders[1].to_string()]);
    let (ids, _) = all_pages(
        &t,
        json!({"subState": "LOADED", "state": "IN_PROGRESS"}),
        10,
    )
    .await;
    assert_eq!(ids, vec![orders[0].to_string()]);

    // Counts per state and sub-state, from the same indexes.
    let (h, counts) = t
        .read(subjects::API_COUNTS, &json!({"tenant": t.tenant.as_str()}))
        .await;
    assert!(
        h.and_then(|h| h.get(headers::NATS_SERVICE_ERROR).cloned())
            .is_none(),
        "{counts}"
    );
    assert_eq!(counts["total"], 6, "{counts}");
    assert_eq!(counts["states"]["IN_PROGRESS"], 6, "{counts}");
    assert_eq!(
        counts["states"]["CLOSED"], 0,
        "every state, zeros too: {counts}"
    );
    assert_eq!(counts["subStates"], json!({"LOADED": 1, "PACKING": 1}));
    let (_, other) = t
        .read(subjects::API_COUNTS, &json!({"tenant": "someone_else"}))
        .await;
    assert_eq!(
        other["total"], 0,
        "another tenant's orders are not counted: {other}"
    );
    let (h, refused) = t
        .read(
            subjects::API_COUNTS,
            &json!({"tenant": t.tenant.as_str(), "state": "x"}),
        )
        .await;
    assert!(
        h.and_then(|h| h.get(headers::NATS_SERVICE_ERROR).cloned())
            .is_some(),
        "{refused}"
    );
    assert!(
        refused["code"]
            .as_str()
            .is_some_and(|c| c.starts_with("ORD-400")),
        "{refused}"
    );

    // An update moves the attribute's index entries with the snapshot.
    let out = t
        .command(
            orders[0],
            Verb::Update,
            &json!({"customAttributes": {"region": "west", "weight": 99}}),
        )
        .await;
    assert!(out.ok, "{out:?}");
    let (ids, _) = all_pages(&t, json!({"customAttributes": {"region": "west"}}), 10).await;
    assert_eq!(ids, vec![orders[0].to_string()]);
    let (ids, _) = all_pages(&t, json!({"customAttributes": {"region": "north"}}), 10).await;
    assert_eq!(
        ids.iter().cloned().collect::<BTreeSet<_>>(),
        set(&[orders[1], orders[3]])
    );
    let (ids, _) = all_pages(&t, json!({"customAttributes": {"weight": 1.5}}), 10).await;
    assert!(ids.is_empty());
    let mut conn = redis::Client::open(t.servers.redis_url.as_str())
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();
    let in_north: bool = redis::cmd("ZSCORE")
        .arg(format!("orderd:idx:{}:attr:region:\"north\"", t.tenant))
        .arg(orders[0].to_string())
        .query_async::<Option<f64>>(&mut conn)
        .await
        .unwrap()
        .is_some();
    assert!(!in_north, "the old entry left in the same step");

    // Filters the indexes cannot serve are refused with a stable code.
    for (filter, code) in [
        (
            json!({"customAttributes": {"note": "n"}}),
            "ORD-400-ATTRIBUTE_NOT_INDEXED",
        ),
        (
            json!({"customAttributes": {"unknown": 1}}),
            "ORD-400-ATTRIBUTE_NOT_INDEXED",
        ),
        (
            json!({"customAttributeRanges": {"note": {"min": 1}}}),
            "ORD-400-ATTRIBUTE_NOT_INDEXED",
        ),
        (
            json!({"customAttributeRanges": {"region": {"min": 1}}}),
            "ORD-400-BAD_FILTER",
        ),
        (json!({"createdFrom": "yesterday"}), "ORD-400-BAD_FILTER"),
        (
            json!({"state": "IN_PROGRESS", "after": "nope"}),
            "ORD-400-BAD_CURSOR",
        ),
    ] {
        let err = query(&t, filter.clone()).await.unwrap_err();
        assert_eq!(err["code"], code, "{filter}: {err}");
    }
}
