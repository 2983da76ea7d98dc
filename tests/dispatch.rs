//! What dispatch receives: a job command carries its work order's items,
//! instructions, and where to pick up and drop, as ids in the contact and
//! location stores, never the personal data itself; bad details are refused
//! by field and change nothing.

use std::collections::BTreeMap;

use futures::StreamExt;
use orderd::subjects;
use orderd::wire::{DispatchMessage, Outcome};
use serde_json::{json, Value};
use testkit::{complete_everything, create_body, msg_id, spawn_app, TestApp};

/// Personal data the test gives; none of it may reach dispatch or events.
const SECRETS: [&str; 5] = [
    "Sam Stockwell",
    "+15550111",
    "9 Depot Road",
    "Jane Doe",
    "1 Main St",
];

/// A create whose first work order has items, instructions and a pickup
/// given in full, and whose second has none (it drops at the order's drop).
fn detailed_create() -> Value {
    let mut body = create_body("SEQUENTIAL", &["PICKUP", "DELIVERY"]);
    body["workOrders"][0] = json!({
        "type": "PICKUP",
        "items": [
            {"id": "SKU-1", "description": "Sofa", "quantity": 1, "weight": 40.5},
            {"id": "SKU-2", "description": "Chair", "quantity": 4}
        ],
        "instructions": "Use the service lift",
        "pickup": {
            "contact": {"name": "Sam Stockwell", "phone": "+15550111"},
            "location": {"street": "9 Depot Road", "city": "Springfield"}
        }
    });
    body
}

/// Subscribes to the tenant's job commands (raw) and events, starts a
/// dispatch that answers by `script`, and creates [`detailed_create`].
async fn detailed_order(
    t: &TestApp,
    script: testkit::Script,
) -> (
    async_nats::Subscriber,
    testkit::EventLog,
    testkit::Dispatcher,
    orderd_core::OrderId,
) {
    let raw = t
        .nats
        .subscribe(subjects::dispatch_of_tenant(&t.tenant))
        .await
        .unwrap();
    let events = t.events().await;
    let dispatch = t.dispatcher(script).await;
    let order = t.create(&detailed_create()).await;
    (raw, events, dispatch, order)
}

/// Sends an update that must be applied (the order then IN_PROGRESS) and
/// waits for its event message.
async fn applied_update(
    t: &TestApp,
    events: &mut testkit::EventLog,
    order: orderd_core::OrderId,
    body: Value,
) -> orderd::wire::EventMessage {
    let applied = t
        .command(order, orderd::subjects::Verb::Update, &body)
        .await;
    assert!(applied.ok, "{body}: {applied:?}");
    assert_eq!(applied.state.as_deref(), Some("IN_PROGRESS"));
    let seq = applied.seq.expect("a seq");
    events
        .wait_for("the update's event", |e| {
            e.order_id == order.to_string() && e.seq == seq
        })
        .await
}

/// The drop location id of an order of another tenant, new.
async fn others_location(t: &TestApp) -> String {
    let other = testkit::random_tenant();
    let theirs = t
        .send(
            subjects::create(&other),
            &create_body("SEQUENTIAL", &["DELIVERY"]),
            &msg_id(),
        )
        .await;
    assert!(theirs.ok, "{theirs:?}");
    let (_, their_order) = t
        .read(
            subjects::API_GET,
            &json!({"tenant": other.as_str(), "orderId": theirs.order_id}),
        )
        .await;
    testkit::drop_ids(&their_order).1
}

/// Sends each update body and checks it is refused with its code.
async fn refused_updates<const N: usize>(
    t: &TestApp,
    order: orderd_core::OrderId,
    cases: [(Value, &str); N],
) {
    for (body, code) in cases {
        let refused = t
            .command(order, orderd::subjects::Verb::Update, &body)
            .await;
        assert_eq!(
            refused.error.as_ref().map(|e| e.code.as_str()),
            Some(code),
            "{body}: {refused:?}"
        );
    }
}

async fn outcome(t: &TestApp, body: &Value) -> Outcome {
    t.send(subjects::create(&t.tenant), body, &msg_id()).await
}

#[tokio::test]
async fn a_job_command_carries_items_instructions_and_stops_by_id_only() {
    let t = spawn_app().await;
    let (mut raw, mut events, _dispatch, order) = detailed_order(&t, complete_everything()).await;
    events.wait_state(order, "EXECUTED").await;

    // The two create commands, as dispatch received them, raw.
    let mut creates: BTreeMap<u32, (DispatchMessage, String)> = BTreeMap::new();
    while creates.len() < 2 {
        let msg = tokio::time::timeout(testkit::WAIT, raw.next())
            .await
            .expect("job commands in time")
            .expect("subscription open");
        let text = String::from_utf8(msg.payload.to_vec()).unwrap();
        let m: DispatchMessage = serde_json::from_str(&text).unwrap();
        if m.order_id == order.to_string() && m.action == "create" {
            creates.insert(m.work_order_id, (m, text));
        }
    }
    let view = t.get(order).await;
    let (first, first_raw) = &creates[&1];
    let items = first.items.as_ref().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(
        (items[0].id.as_str(), items[0].quantity, items[0].weight),
        ("SKU-1", 1, Some(40.5))
    );
    assert_eq!((items[1].id.as_str(), items[1].weight), ("SKU-2", None));
    assert_eq!(first.instructions.as_deref(), Some("Use the service lift"));
    let pickup = first.pickup.as_ref().expect("a pickup");
    let (pickup_contact, pickup_location) = (
        pickup.contact_id.clone().expect("pickup contact id"),
        pickup.location_id.clone().expect("pickup location id"),
    );
    // The pickup's contact and address are stored apart, under their ids.
    let store = t.servers.store().await;
    assert!(store
        .stored_contact(&pickup_contact)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .stored_location(&pickup_location)
        .await
        .unwrap()
        .is_some());
    // No own drop: the order's drop contact and location.
    let drop = first.drop.as_ref().expect("a drop");
    let order_drop = &view["dropDetails"];
    assert_eq!(drop.contact_id.as_deref(), order_drop["contactId"].as_str());
    assert_eq!(
        drop.location_id.as_deref(),
        order_drop["locationId"].as_str()
    );
    assert_ne!(drop.location_id.as_deref(), Some(pickup_location.as_str()));

    let (second, _) = &creates[&2];
    assert_eq!(second.items.as_deref().map(<[_]>::len), Some(0));
    assert_eq!(second.instructions, None);
    assert_eq!(
        second
            .pickup
            .as_ref()
            .map(|p| p.contact_id.is_none() && p.location_id.is_none()),
        Some(true)
    );

    // The order's view shows the details; the events carry ids only.
    let wo = &view["workOrders"][0];
    assert_eq!(wo["items"][0]["description"], "Sofa");
    assert_eq!(wo["instructions"], "Use the service lift");
    assert_eq!(wo["pickup"]["contactId"], pickup_contact.as_str());
    assert!(view["workOrders"][1]["drop"]["locationId"].is_null());
    let history = serde_json::to_string(&t.history(order).await).unwrap();
    for secret in SECRETS {
        assert!(!first_raw.contains(secret), "{secret:?} reached dispatch");
        assert!(!history.contains(secret), "{secret:?} is in an event");
        assert!(
            !view.to_string().contains(secret),
            "{secret:?} is in the view"
        );
    }
    assert!(history.contains("Use the service lift") && history.contains("SKU-2"));
}

#[tokio::test]
async fn bad_work_order_details_are_refused_by_field_and_change_nothing() {
    let t = spawn_app().await;
    let field_problems = |o: &Outcome| -> Vec<(String, String)> {
        let e = o.error.as_ref().expect("an error");
        assert_eq!(e.code, "ORD-422-INVALID_FIELDS", "{o:?}");
        e.details
            .iter()
            .map(|d| (d.field.clone(), d.code.clone()))
            .collect()
    };

    let mut body = detailed_create();
    body["workOrders"][0]["items"][0]["quantity"] = json!(0);
    body["workOrders"][0]["items"][1]["weight"] = json!(-1);
    body["workOrders"][0]["items"][1]["description"] = json!("");
    body["workOrders"][0]["pickup"]["contact"]["phone"] = json!("call me");
    let problems = field_problems(&outcome(&t, &body).await);
    for (field, code) in [
        ("workOrders[0].items[0].quantity", "RANGE"),
        ("workOrders[0].items[1].weight", "RANGE"),
        ("workOrders[0].items[1].description", "LENGTH"),
        ("workOrders[0].pickup.contact.phone", "PATTERN"),
    ] {
        assert!(
            problems.contains(&(field.to_owned(), code.to_owned())),
            "{field} {code} not in {problems:?}"
        );
    }
    // The messages never repeat the personal data they refuse.
    let refused = outcome(&t, &body).await;
    assert!(!format!("{:?}", refused.error).contains("call me"));

    let mut body = detailed_create();
    body["workOrders"][0]["items"] = json!(vec![
        json!({"id": "x", "description": "y", "quantity": 1});
        101
    ]);
    body["workOrders"][0]["instructions"] = json!("x".repeat(1025));
    let problems = field_problems(&outcome(&t, &body).await);
    assert!(problems.contains(&("workOrders[0].items".into(), "LENGTH".into())));
    assert!(problems.contains(&("workOrders[0].instructions".into(), "LENGTH".into())));

    // Shapes the wire refuses before the core: an unknown item field, a
    // location in full and by id at once, a malformed id.
    for (path, value) in [
        ("/workOrders/0/items/0/colour", json!("red")),
        (
            "/workOrders/0/pickup/locationId",
            json!("67e55044-10b1-426f-9247-bb680e5fe0c8"),
        ),
        ("/workOrders/1/drop", json!({"contactId": "not-a-uuid"})),
    ] {
        let mut body = detailed_create();
        let (parent, key) = path.rsplit_once('/').unwrap();
        body.pointer_mut(parent).unwrap()[key] = value;
        let o = outcome(&t, &body).await;
        assert_eq!(
            o.error.as_ref().map(|e| e.code.as_str()),
            Some("ORD-400-MALFORMED"),
            "{path}: {o:?}"
        );
    }
    // Nothing was created.
    let (_, counts) = t
        .read(subjects::API_COUNTS, &json!({"tenant": t.tenant.as_str()}))
        .await;
    assert_eq!(counts["total"], 0, "{counts}");
}

#[tokio::test]
async fn dispatch_reads_a_stop_by_id_for_its_own_tenant_only_and_every_read_is_audited() {
    let t = spawn_app().await;
    let order = t.create(&detailed_create()).await;
    let view = t.get(order).await;
    let pickup = &view["workOrders"][0]["pickup"];
    let contact_id = pickup["contactId"]
        .as_str()
        .expect("a contact id")
        .to_owned();
    let location_id = pickup["locationId"]
        .as_str()
        .expect("a location id")
        .to_owned();
    let tenant = t.tenant.as_str();
    let ask = |subject: &'static str, tenant: String, id: String| {
        let t = &t;
        async move {
            t.read(
                subject,
                &json!({"tenant": tenant, "id": id, "by": "dispatch-east"}),
            )
            .await
            .1
        }
    };

    let contact = ask(subjects::API_CONTACT, tenant.into(), contact_id.clone()).await;
    assert_eq!(contact["name"], "Sam Stockwell", "{contact}");
    assert_eq!(contact["phone"], "+15550111");
    assert_eq!(contact["contactId"], contact_id.as_str());
    let location = ask(subjects::API_LOCATION, tenant.into(), location_id.clone()).await;
    assert_eq!(
        location["address"],
        json!({"street": "9 Depot Road", "city": "Springfield"})
    );
    // The order's own drop contact reads the same way.
    let drop_contact = view["dropDetails"]["contactId"]
        .as_str()
        .unwrap()
        .to_owned();
    let jane = ask(subjects::API_CONTACT, tenant.into(), drop_contact).await;
    assert_eq!(jane["name"], "Jane Doe");

    // Another tenant cannot read them: not found, as for an unknown id;
    // nor can a location id be read as a contact.
    let other = testkit::random_tenant();
    let refused = ask(subjects::API_CONTACT, other.to_string(), contact_id.clone()).await;
    assert_eq!(refused["code"], "ORD-404-CONTACT_NOT_FOUND", "{refused}");
    let refused = ask(
        subjects::API_LOCATION,
        other.to_string(),
        location_id.clone(),
    )
    .await;
    assert_eq!(refused["code"], "ORD-404-LOCATION_NOT_FOUND", "{refused}");
    let crossed = ask(subjects::API_CONTACT, tenant.into(), location_id.clone()).await;
    assert_eq!(crossed["code"], "ORD-404-CONTACT_NOT_FOUND", "{crossed}");
    let unknown = ask(
        subjects::API_LOCATION,
        tenant.into(),
        uuid::Uuid::new_v4().to_string(),
    )
    .await;
    assert_eq!(unknown["code"], "ORD-404-LOCATION_NOT_FOUND");
    let malformed = ask(subjects::API_CONTACT, tenant.into(), "nope".into()).await;
    assert_eq!(malformed["code"], "ORD-400-MALFORMED");

    // Every read is in its tenant's audit, newest first, without the data.
    let (_, audit) = t
        .read(subjects::API_AUDIT, &json!({"tenant": tenant, "limit": 10}))
        .await;
    let entries = audit["entries"].as_array().expect("entries");
    let seen: Vec<(String, String, bool)> = entries
        .iter()
        .map(|e| {
            assert_eq!(e["by"], "dispatch-east");
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["id"].as_str().unwrap().to_owned(),
                e["found"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen.len(), 5, "{audit}");
    assert_eq!(seen[1], ("contact".into(), location_id.clone(), false));
    assert_eq!(seen[4], ("contact".into(), contact_id.clone(), true));
    assert_eq!(seen[3], ("location".into(), location_id.clone(), true));
    for secret in SECRETS {
        assert!(
            !audit.to_string().contains(secret),
            "{secret:?} in the audit"
        );
    }
    let (_, theirs) = t
        .read(subjects::API_AUDIT, &json!({"tenant": other.as_str()}))
        .await;
    let theirs = theirs["entries"].as_array().unwrap();
    assert_eq!(
        theirs.len(),
        2,
        "the other tenant's refused reads are its own"
    );
    assert!(theirs.iter().all(|e| e["found"] == false));
}

#[tokio::test]
async fn one_work_order_is_cancelled_alone_and_the_order_executes_without_it() {
    use orderd::subjects::Verb;
    use orderd_core::model::JobStatus;

    let t = spawn_app().await;
    let mut events = t.events().await;
    let dispatch = t.dispatcher(testkit::start_and_confirm_cancels()).await;
    let order = t
        .create_all_started(&mut events, &["PICKUP", "INSTALL"])
        .await;

    let cancelled = t
        .command(
            order,
            Verb::Cancel,
            &json!({"workOrderId": 1, "reason": "not needed"}),
        )
        .await;
    assert!(cancelled.ok, "{cancelled:?}");
    events
        .wait_event(order, "work order 1 cancelled", |e| {
            matches!(e, orderd_core::Event::JobCancelled { work_order, .. } if work_order.0 == 1)
        })
        .await;
    let view = t.get(order).await;
    assert_eq!(view["state"], "IN_PROGRESS");
    assert_eq!(view["workOrders"][0]["state"], "CANCELLED");
    assert_eq!(view["workOrders"][1]["state"], "IN_PROGRESS");
    assert!(
        !dispatch
            .actions_of(order)
            .contains_key(&(2, 1, "cancel".into())),
        "only work order 1's job was cancelled"
    );

    // Bad input changes nothing.
    for (verb, body, code) in [
        (
            Verb::Cancel,
            json!({"workOrderId": 9}),
            "ORD-404-WORK_ORDER_NOT_FOUND",
        ),
        (
            Verb::Cancel,
            json!({"workOrderId": 1}),
            "ORD-409-WORK_ORDER_NOT_OPEN",
        ),
        (Verb::Cancel, json!({"workOrderId": 0}), "ORD-400-MALFORMED"),
        (Verb::Close, json!({"workOrderId": 2}), "ORD-400-MALFORMED"),
        (
            Verb::Resume,
            json!({"workOrderId": 2}),
            "ORD-409-NOT_ON_HOLD",
        ),
    ] {
        let refused = t.command(order, verb, &body).await;
        assert_eq!(
            refused.error.map(|e| e.code).as_deref(),
            Some(code),
            "{body}"
        );
    }

    // Work order 2 held alone, then resumed: its job is held and resumed,
    // the order stays IN_PROGRESS.
    let held = t
        .command(
            order,
            Verb::Hold,
            &json!({"workOrderId": 2, "reason": "wait for parts"}),
        )
        .await;
    assert!(held.ok, "{held:?}");
    assert_eq!(held.state.as_deref(), Some("IN_PROGRESS"));
    let again = t
        .command(order, Verb::Hold, &json!({"workOrderId": 2}))
        .await;
    assert_eq!(
        again.error.map(|e| e.code).as_deref(),
        Some("ORD-409-ALREADY_ON_HOLD")
    );
    let view = t.get(order).await;
    assert_eq!(view["workOrders"][1]["state"], "ON_HOLD");
    assert_eq!(view["workOrders"][1]["heldAlone"], true);
    assert_eq!(view["workOrders"][0]["withdrawn"], true);
    let resumed = t
        .command(order, Verb::Resume, &json!({"workOrderId": 2}))
        .await;
    assert!(resumed.ok, "{resumed:?}");
    let deadline = tokio::time::Instant::now() + testkit::WAIT;
    while !dispatch
        .actions_of(order)
        .contains_key(&(2, 1, "resume".into()))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            dispatch.actions_of(order)
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        dispatch.actions_of(order).get(&(2, 1, "hold".into())),
        Some(&1)
    );

    // The other completes: the order executes without the cancelled one.
    let done = t.job(order, 2, 1, JobStatus::Completed, None).await;
    assert!(done.ok, "{done:?}");
    events.wait_state(order, "EXECUTED").await;
}

#[tokio::test]
async fn a_reference_by_id_must_name_one_of_the_tenants_own_contacts_or_locations() {
    let t = spawn_app().await;
    let first = t.create(&create_body("SEQUENTIAL", &["PICKUP"])).await;
    let (contact, location) = testkit::drop_ids(&t.get(first).await);
    let mut body = create_body("SEQUENTIAL", &["PICKUP"]);
    body["dropDetails"] = json!({"contactId": contact, "locationId": location});

    // The tenant's own, by id: accepted, and the new order names them.
    let own = outcome(&t, &body).await;
    assert!(own.ok, "{own:?}");
    let again = t
        .get(orderd_core::OrderId::parse(own.order_id.as_deref().unwrap()).unwrap())
        .await;
    assert_eq!(again["dropDetails"]["contactId"], contact.as_str());

    // Another tenant naming them: refused by field, nothing created.
    let other = testkit::random_tenant();
    let key = msg_id();
    let foreign = t.send(subjects::create(&other), &body, &key).await;
    let error = foreign.error.expect("refused");
    assert_eq!(error.code, "ORD-404-CONTACT_NOT_FOUND", "{error:?}");
    assert_eq!(error.details[0].field, "dropDetails.contactId");
    let (_, counts) = t
        .read(subjects::API_COUNTS, &json!({"tenant": other.as_str()}))
        .await;
    assert_eq!(counts["total"], 0, "{counts}");

    // An id nobody stored, in a work order's pickup.
    let mut unknown = create_body("SEQUENTIAL", &["PICKUP"]);
    unknown["workOrders"][0]["pickup"] =
        json!({"locationId": "0b6b7a4e-9d9e-4c55-8d55-0e9a8f4c1d2e"});
    let refused = outcome(&t, &unknown).await;
    let error = refused.error.expect("refused");
    assert_eq!(error.code, "ORD-404-LOCATION_NOT_FOUND", "{error:?}");
    assert_eq!(error.details[0].field, "workOrders[0].pickup.locationId");
    // And in an update of one work order, or a return added.
    for (body, field) in [
        (
            json!({"workOrderId": 1, "pickup": {"locationId": "0b6b7a4e-9d9e-4c55-8d55-0e9a8f4c1d2e"}}),
            "pickup.locationId",
        ),
        (
            json!({"addReturn": {"returns": 1, "drop": {"contactId": "0b6b7a4e-9d9e-4c55-8d55-0e9a8f4c1d2e"}}}),
            "addReturn.drop.contactId",
        ),
    ] {
        let refused = t.command(first, subjects::Verb::Update, &body).await;
        let error = refused.error.expect("refused");
        assert_eq!(error.details[0].field, field, "{error:?}");
    }
}

/// Waits until dispatch received a job command for `order`'s work order
/// `work_order` with `action`.
async fn received(
    dispatch: &testkit::Dispatcher,
    order: orderd_core::OrderId,
    work_order: u32,
    action: &str,
) -> DispatchMessage {
    let deadline = tokio::time::Instant::now() + testkit::WAIT;
    loop {
        if let Some(m) = dispatch.received().into_iter().find(|m| {
            m.order_id == order.to_string() && m.work_order_id == work_order && m.action == action
        }) {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {action} for work order {work_order}: {:?}",
            dispatch.actions_of(order)
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn one_work_order_changed_before_dispatch_reaches_dispatch_with_its_new_details() {
    use orderd::subjects::Verb;
    use orderd_core::model::JobStatus;

    let t = spawn_app().await;
    let (mut raw, mut events, dispatch, order) =
        detailed_order(&t, testkit::start_and_confirm_cancels()).await;
    events
        .wait_event(
            order,
            "work order 1 started",
            |e| matches!(e, orderd_core::Event::JobStarted { work_order, .. } if work_order.0 == 1),
        )
        .await;

    // Another tenant's address, by id: this tenant cannot name it.
    let their_location = others_location(&t).await;

    // Work order 2 waits for 1 (SEQUENTIAL): its details change, the
    // contact and address given in full are stored apart.
    let message = applied_update(
        &t,
        &mut events,
        order,
        json!({
            "workOrderId": 2,
            "items": [{"id": "SKU-7", "description": "Lamp", "quantity": 3}],
            "instructions": "Leave at the gate",
            "drop": {
                "contact": {"name": "Rae Porter", "phone": "+15550123"},
                "location": {"street": "4 Lime Walk", "city": "Springfield"}
            }
        }),
    )
    .await;
    let seq = message.seq;
    assert_eq!(message.command, "update_work_order");
    assert_eq!(message.kind, "changed");
    assert!(message
        .events
        .iter()
        .any(|e| e.kind() == "work_order_updated"));

    // Bad input is refused, and nothing changes.
    let zero_quantity = json!([{"id": "a", "description": "b", "quantity": 0}]);
    refused_updates(
        &t,
        order,
        [
            (
                json!({"workOrderId": 9, "instructions": "x"}),
                "ORD-404-WORK_ORDER_NOT_FOUND",
            ),
            (
                json!({"workOrderId": 1, "instructions": "x"}),
                "ORD-409-WORK_ORDER_DISPATCHED",
            ),
            (json!({"workOrderId": 2}), "ORD-422-EMPTY_UPDATE"),
            (
                json!({"workOrderId": 2, "items": zero_quantity}),
                "ORD-422-INVALID_FIELDS",
            ),
            (
                json!({"workOrderId": 2, "drop": {"locationId": their_location}}),
                "ORD-404-LOCATION_NOT_FOUND",
            ),
            (
                json!({"workOrderId": 2, "orderSummary": {"totalItems": 1}}),
                "ORD-400-MALFORMED",
            ),
            (
                json!({"workOrderId": 2, "pickup": {"colour": "red"}}),
                "ORD-400-MALFORMED",
            ),
            (json!({"instructions": "which one?"}), "ORD-400-MALFORMED"),
        ],
    )
    .await;
    // The other tenant's id is named by its field.
    let foreign = t
        .command(
            order,
            Verb::Update,
            &json!({"workOrderId": 2, "drop": {"locationId": their_location}}),
        )
        .await;
    assert_eq!(
        foreign.error.expect("refused").details[0].field,
        "drop.locationId"
    );
    let view = t.get(order).await;
    assert_eq!(view["seq"], seq, "refusals changed nothing");
    let wo2 = &view["workOrders"][1];
    assert_eq!(wo2["instructions"], "Leave at the gate");
    assert_eq!(wo2["items"][0]["id"], "SKU-7");
    let drop_contact = wo2["drop"]["contactId"]
        .as_str()
        .expect("a drop contact")
        .to_owned();
    let drop_location = wo2["drop"]["locationId"]
        .as_str()
        .expect("a drop location")
        .to_owned();
    assert_ne!(
        Some(drop_contact.as_str()),
        view["dropDetails"]["contactId"].as_str()
    );
    let store = t.servers.store().await;
    assert!(store.stored_contact(&drop_contact).await.unwrap().is_some());
    assert!(store
        .stored_location(&drop_location)
        .await
        .unwrap()
        .is_some());

    // Work order 1 completes: 2 is dispatched with its new details, by id.
    let done = t.job(order, 1, 1, JobStatus::Completed, None).await;
    assert!(done.ok, "{done:?}");
    let create = received(&dispatch, order, 2, "create").await;
    assert_eq!(create.instructions.as_deref(), Some("Leave at the gate"));
    let items = create.items.as_ref().expect("items");
    assert_eq!((items[0].id.as_str(), items[0].quantity), ("SKU-7", 3));
    let drop = create.drop.as_ref().expect("a drop");
    assert_eq!(drop.contact_id.as_deref(), Some(drop_contact.as_str()));
    assert_eq!(drop.location_id.as_deref(), Some(drop_location.as_str()));
    // Now it is out: its details are fixed.
    let late = t
        .command(
            order,
            Verb::Update,
            &json!({"workOrderId": 2, "instructions": "x"}),
        )
        .await;
    assert_eq!(
        late.error.map(|e| e.code).as_deref(),
        Some("ORD-409-WORK_ORDER_DISPATCHED")
    );

    // No personal data in what dispatch got, in the events or in the view.
    let mut seen = Vec::new();
    while let Ok(Some(msg)) =
        tokio::time::timeout(std::time::Duration::from_millis(200), raw.next()).await
    {
        seen.push(String::from_utf8(msg.payload.to_vec()).unwrap());
    }
    assert!(seen.iter().any(|m| m.contains("Leave at the gate")));
    let history = serde_json::to_string(&t.history(order).await).unwrap();
    let view = t.get(order).await.to_string();
    for secret in ["Rae Porter", "+15550123", "4 Lime Walk"] {
        assert!(
            seen.iter().all(|m| !m.contains(secret)),
            "{secret:?} reached dispatch"
        );
        assert!(!history.contains(secret), "{secret:?} is in an event");
        assert!(!view.contains(secret), "{secret:?} is in the view");
    }
}

#[tokio::test]
async fn a_return_added_after_delivery_runs_the_order_again_until_it_is_back() {
    use orderd::subjects::Verb;

    let t = spawn_app().await;
    let mut events = t.events().await;
    let dispatch = t.dispatcher(complete_everything()).await;
    let mut body = create_body("SEQUENTIAL", &["PICKUP", "DELIVERY"]);
    body["dropDetails"]["returnLocation"] = json!({"street": "7 Returns Way"});
    body["workOrders"][1]["items"] = json!([{"id": "SKU-1", "description": "Sofa", "quantity": 1}]);
    let order = t.create(&body).await;
    let executed = events.wait_state(order, "EXECUTED").await;

    // Refused, changing nothing: an unknown work order, a return mixed with
    // other changes, an order-level update of an EXECUTED order, a return
    // to another tenant's address.
    let their_location = others_location(&t).await;
    refused_updates(
        &t,
        order,
        [
            (
                json!({"addReturn": {"returns": 9}}),
                "ORD-404-WORK_ORDER_NOT_FOUND",
            ),
            (
                json!({"addReturn": {"returns": 2}, "orderSummary": {"totalItems": 1}}),
                "ORD-400-MALFORMED",
            ),
            (
                json!({"orderSummary": {"totalItems": 1}}),
                "ORD-409-ORDER_IMMUTABLE",
            ),
            (
                json!({"addReturn": {"returns": 2, "drop": {"locationId": their_location}}}),
                "ORD-404-LOCATION_NOT_FOUND",
            ),
        ],
    )
    .await;
    assert_eq!(t.get(order).await["seq"], executed.seq);

    // EXECUTED → IN_PROGRESS, the return dispatched, completed, EXECUTED.
    let reopened = applied_update(
        &t,
        &mut events,
        order,
        json!({"addReturn": {"returns": 2, "instructions": "Collect the sofa"}}),
    )
    .await;
    let reopened_at = reopened.seq;
    assert_eq!(reopened.kind, "in_progress");
    assert_eq!(reopened.command, "add_return");
    let kinds: Vec<&str> = reopened.events.iter().map(|e| e.kind()).collect();
    assert_eq!(kinds, ["return_added", "reopened", "job_dispatched"]);
    let again = events
        .wait_for("executed again", |e| {
            e.order_id == order.to_string() && e.seq > reopened_at && e.state == "EXECUTED"
        })
        .await;
    assert_eq!(again.kind, "executed");

    let ret = received(&dispatch, order, 3, "create").await;
    assert_eq!(ret.returns, Some(2));
    assert_eq!(ret.work_order_type.as_deref(), Some("RETURN"));
    assert_eq!(ret.instructions.as_deref(), Some("Collect the sofa"));
    assert_eq!(ret.items.as_ref().map(|i| i[0].id.as_str()), Some("SKU-1"));
    let view = t.get(order).await;
    let pickup = ret.pickup.as_ref().expect("a pickup");
    assert_eq!(
        pickup.location_id.as_deref(),
        view["dropDetails"]["locationId"].as_str()
    );
    assert_eq!(
        ret.drop.as_ref().and_then(|d| d.location_id.as_deref()),
        view["dropDetails"]["returnLocationId"].as_str()
    );
    assert_eq!(view["workOrders"][2]["state"], "COMPLETED");
    assert_eq!(view["workOrders"][2]["returns"], 2);

    // One return per delivered work order; a return is not returned.
    refused_updates(
        &t,
        order,
        [
            (
                json!({"addReturn": {"returns": 2}}),
                "ORD-409-RETURN_EXISTS",
            ),
            (
                json!({"addReturn": {"returns": 3}}),
                "ORD-409-WORK_ORDER_IS_RETURN",
            ),
        ],
    )
    .await;
    let closed = t.command(order, Verb::Close, &json!({})).await;
    assert!(closed.ok, "{closed:?}");
    events.wait_state(order, "CLOSED").await;
    let refused = t
        .command(order, Verb::Update, &json!({"addReturn": {"returns": 1}}))
        .await;
    assert_eq!(
        refused.error.map(|e| e.code).as_deref(),
        Some("ORD-409-ORDER_IMMUTABLE")
    );
}
