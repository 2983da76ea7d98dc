use orderd_core::command::{
    Address, Contact, ContactInput, CreateOrder, JobUpdate, LocationInput, UpdateOrder,
};
use orderd_core::event::Sealed;
use orderd_core::ids::{CommandId, ContactId, LocationId, Timestamp, WorkOrderId};
use orderd_core::model::{ExecutionFlow, JobStatus, Order, OrderState, WorkOrder, WorkOrderState};
use orderd_core::{Change, Event, JobAction, JobCommand};
use serde_json::json;

use super::*;
use crate::subjects::{self, EventKind};

const MARKER: &str = "Zebedee Quux";

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn order_id() -> OrderId {
    OrderId::parse("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap()
}

fn create_inbound() -> Inbound {
    Inbound::Create { tenant: tenant() }
}

fn verb_inbound(verb: Verb) -> Inbound {
    Inbound::Command {
        tenant: tenant(),
        order: order_id(),
        verb,
    }
}

fn full_create() -> serde_json::Value {
    json!({
        "clientId": "c-1",
        "clientName": "Acme Retail",
        "clientOrderId": "PO-42",
        "readyToProcess": false,
        "executionFlow": "COMPLETE_TOGETHER",
        "dropDetails": {
            "contact": {"name": MARKER, "phone": "+44 20 7946 0000"},
            "location": {"line1": "1 High St", "city": "London", "postcode": "N1 1AA", "country": "GB"},
            "returnLocationId": "0b7a4c0e-6a8e-4c4e-9c1e-2f7d7f1d3a11"
        },
        "orderSummary": {
            "invoiceNumber": "INV-1",
            "orderDescription": "Two chairs",
            "totalWeight": 12.5,
            "totalItems": 2,
            "totalOrderCost": {"amount": 99.5, "currency": "GBP"}
        },
        "workOrders": [{"type": "DELIVERY"}, {"type": "INSTALL"}],
        "customAttributes": {"priority": 3, "fragile": true, "tags": ["a", "b"]}
    })
}

fn json_bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn msgpack_bytes(v: &serde_json::Value) -> Vec<u8> {
    rmp_serde::to_vec_named(v).unwrap()
}

fn decode_create(v: &serde_json::Value) -> Result<Command, WireError> {
    decode_command(&create_inbound(), None, &json_bytes(v), DEFAULT_MAX_BODY)
}

fn malformed(result: Result<Command, WireError>) -> String {
    match result {
        Err(e @ WireError::Malformed(_)) => {
            assert_eq!(e.code(), "ORD-400-MALFORMED");
            e.to_string()
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn a_full_create_maps_onto_the_core_command() {
    let cmd = decode_create(&full_create()).unwrap();
    let Command::Create(c) = cmd else {
        panic!("not a create")
    };
    let CreateOrder {
        client,
        client_order_id,
        ready_to_process,
        contact,
        location,
        return_location,
        execution_flow,
        summary,
        work_orders,
        custom,
    } = *c;
    assert_eq!(client.id, "c-1");
    assert_eq!(client.name, "Acme Retail");
    assert_eq!(client_order_id, "PO-42");
    assert!(!ready_to_process);
    assert_eq!(
        contact,
        Some(ContactInput::Details(Contact {
            name: MARKER.to_owned(),
            phone: "+44 20 7946 0000".to_owned()
        }))
    );
    assert!(
        matches!(location, Some(LocationInput::Address(Address(ref a))) if a["city"] == "London")
    );
    assert_eq!(
        return_location,
        Some(LocationInput::Id(
            LocationId::parse("0b7a4c0e-6a8e-4c4e-9c1e-2f7d7f1d3a11").unwrap()
        ))
    );
    assert_eq!(execution_flow, ExecutionFlow::CompleteTogether);
    assert_eq!(summary.invoice_number.as_deref(), Some("INV-1"));
    assert_eq!(summary.total_weight, Some(12.5));
    assert_eq!(summary.total_items, Some(2));
    assert_eq!(summary.total_order_cost.unwrap().currency, "GBP");
    let kinds: Vec<_> = work_orders.iter().map(|w| w.kind.as_str()).collect();
    assert_eq!(kinds, ["DELIVERY", "INSTALL"]);
    assert_eq!(custom["priority"], json!(3));
}

#[test]
fn a_minimal_create_gets_the_defaults() {
    let cmd = decode_create(&json!({
        "clientId": "c", "clientName": "n", "clientOrderId": "o",
        "workOrders": [{"type": "DELIVERY"}]
    }))
    .unwrap();
    let Command::Create(c) = cmd else {
        panic!("not a create")
    };
    assert!(c.ready_to_process);
    assert_eq!(c.execution_flow, ExecutionFlow::Sequential);
    assert_eq!(c.contact, None);
    assert!(c.custom.is_empty());
}

#[test]
fn json_and_msgpack_give_the_same_command() {
    let v = full_create();
    let from_json = decode_create(&v).unwrap();
    for ct in ["application/msgpack", "Application/MsgPack; charset=binary"] {
        let from_msgpack = decode_command(
            &create_inbound(),
            Some(ct),
            &msgpack_bytes(&v),
            DEFAULT_MAX_BODY,
        )
        .unwrap();
        assert_eq!(from_json, from_msgpack);
    }
    let from_json_ct = decode_command(
        &create_inbound(),
        Some("application/json; charset=utf-8"),
        &json_bytes(&v),
        DEFAULT_MAX_BODY,
    )
    .unwrap();
    assert_eq!(from_json, from_json_ct);
}

#[test]
fn unknown_fields_are_refused_at_every_level() {
    let mut v = full_create();
    v["colour"] = json!("red");
    assert!(malformed(decode_create(&v)).contains("unknown field `colour`"));
    let mut v = full_create();
    v["dropDetails"]["contact"]["email"] = json!("x@example.com");
    malformed(decode_create(&v));
    let mut v = full_create();
    v["orderSummary"]["totalOrderCost"]["cents"] = json!(1);
    malformed(decode_create(&v));
    let mut v = full_create();
    v["workOrders"][0]["priority"] = json!(1);
    malformed(decode_create(&v));
    // The same in MessagePack.
    let mut v = full_create();
    v["colour"] = json!("red");
    let err = decode_command(
        &create_inbound(),
        Some(headers::MSGPACK),
        &msgpack_bytes(&v),
        DEFAULT_MAX_BODY,
    )
    .unwrap_err();
    assert_eq!(err.code(), "ORD-400-MALFORMED");
}

#[test]
fn wrong_types_and_shapes_are_refused() {
    for (path, value) in [
        ("/readyToProcess", json!("yes")),
        ("/orderSummary/totalItems", json!(-1)),
        ("/orderSummary/totalItems", json!(2.5)),
        ("/orderSummary/totalWeight", json!("12kg")),
        ("/workOrders", json!({"type": "DELIVERY"})),
        ("/executionFlow", json!("PARALLEL")),
        ("/clientId", json!(null)),
        ("/dropDetails", json!({"contactId": 7})),
        ("/dropDetails", json!({"contactId": "not-a-uuid"})),
    ] {
        let mut v = full_create();
        *v.pointer_mut(path).unwrap() = value;
        malformed(decode_create(&v));
    }
    let mut v = full_create();
    v.as_object_mut().unwrap().remove("clientOrderId");
    assert!(malformed(decode_create(&v)).contains("missing field `clientOrderId`"));
    for body in [
        json!(null),
        json!([]),
        json!(["c", "n", "o", true]),
        json!(3),
        json!("x"),
    ] {
        malformed(decode_create(&body));
    }
    let raw = |bytes: &[u8]| decode_command(&create_inbound(), None, bytes, DEFAULT_MAX_BODY);
    malformed(raw(b"{"));
    malformed(raw(b"{} trailing"));
    malformed(raw(b""));
    // A positional MessagePack array is not a map, even with the right fields.
    let array = rmp_serde::to_vec(&("c", "n", "o")).unwrap();
    malformed(decode_command(
        &create_inbound(),
        Some(headers::MSGPACK),
        &array,
        DEFAULT_MAX_BODY,
    ));
    let mut trailing = msgpack_bytes(&full_create());
    trailing.push(0xc0);
    assert!(malformed(decode_command(
        &create_inbound(),
        Some(headers::MSGPACK),
        &trailing,
        DEFAULT_MAX_BODY,
    ))
    .contains("trailing"));
}

#[test]
fn an_oversized_body_is_refused_before_parsing() {
    // Not even JSON: had it been parsed, this would be Malformed.
    let body = vec![b'!'; 1025];
    let err = decode_command(&create_inbound(), None, &body, 1024).unwrap_err();
    assert_eq!(
        err,
        WireError::TooLarge {
            size: 1025,
            max: 1024
        }
    );
    assert_eq!(err.code(), "ORD-413-PAYLOAD_TOO_LARGE");
    // An unsupported content type is not looked at either.
    let err =
        decode_command(&verb_inbound(Verb::Close), Some("text/xml"), &body, 1024).unwrap_err();
    assert_eq!(err.code(), "ORD-413-PAYLOAD_TOO_LARGE");
    // At the limit, it is parsed.
    let body = json_bytes(&full_create());
    assert!(decode_command(&create_inbound(), None, &body, body.len()).is_ok());
}

#[test]
fn unsupported_content_types_are_refused() {
    for ct in ["text/plain", "application/xml", "application/cbor"] {
        let err = decode_command(
            &verb_inbound(Verb::Close),
            Some(ct),
            b"{}",
            DEFAULT_MAX_BODY,
        )
        .unwrap_err();
        assert_eq!(err.code(), "ORD-415-UNSUPPORTED_CONTENT_TYPE", "{ct}");
    }
    assert_eq!(Format::from_content_type(Some("")), Ok(Format::Json));
    assert_eq!(Format::from_content_type(None), Ok(Format::Json));
}

#[test]
fn contact_or_contact_id_never_both() {
    let mut v = full_create();
    v["dropDetails"]["contactId"] = json!("0b7a4c0e-6a8e-4c4e-9c1e-2f7d7f1d3a11");
    let text = malformed(decode_create(&v));
    assert!(text.contains("contact or contactId"), "{text}");
    assert!(!text.contains(MARKER));
    let mut v = full_create();
    v["dropDetails"]["locationId"] = json!("0b7a4c0e-6a8e-4c4e-9c1e-2f7d7f1d3a11");
    assert!(malformed(decode_create(&v)).contains("location or locationId"));
    let mut v = full_create();
    v["dropDetails"]["returnLocation"] = json!({"city": "Leeds"});
    assert!(malformed(decode_create(&v)).contains("returnLocation or returnLocationId"));
    // By id alone.
    let mut v = full_create();
    v["dropDetails"] = json!({"contactId": "0b7a4c0e-6a8e-4c4e-9c1e-2f7d7f1d3a11"});
    let Command::Create(c) = decode_create(&v).unwrap() else {
        panic!("not a create")
    };
    assert_eq!(
        c.contact,
        Some(ContactInput::Id(
            ContactId::parse("0b7a4c0e-6a8e-4c4e-9c1e-2f7d7f1d3a11").unwrap()
        ))
    );
    let mut v = full_create();
    v["dropDetails"]["location"] = json!("1 High St, London");
    assert!(malformed(decode_create(&v)).contains("must be an object"));
}

#[test]
fn personal_data_never_reaches_an_error_message() {
    let phone = "+44 20 7946 0999";
    let bad_contacts = [
        json!({"name": MARKER, "phone": 4420794609_u64}),
        json!({"name": MARKER, "phone": [phone]}),
        json!({"name": [MARKER], "phone": phone}),
        json!({"name": MARKER, "phone": phone, MARKER: phone}),
        json!({"name": MARKER}),
        json!(MARKER),
        json!(format!("{MARKER}, expected a string")),
    ];
    for contact in bad_contacts {
        let mut v = full_create();
        v["dropDetails"]["contact"] = contact.clone();
        for (ct, body) in [
            (None, json_bytes(&v)),
            (Some(headers::MSGPACK), msgpack_bytes(&v)),
        ] {
            let err = decode_command(&create_inbound(), ct, &body, DEFAULT_MAX_BODY).unwrap_err();
            let texts = [
                err.to_string(),
                format!("{err:?}"),
                serde_json::to_string(&ErrorBody::from(&err)).unwrap(),
            ];
            for text in texts {
                for secret in ["Zebedee", "Quux", "7946", "4420794609"] {
                    assert!(!text.contains(secret), "{contact} leaked {secret}: {text}");
                }
            }
        }
    }
    // Addresses and unknown variants too.
    let mut v = full_create();
    v["executionFlow"] = json!(MARKER);
    assert!(!malformed(decode_create(&v)).contains("Zebedee"));
    let mut v = full_create();
    v["orderSummary"]["totalItems"] = json!(MARKER);
    assert!(!malformed(decode_create(&v)).contains("Zebedee"));
    // The decoded contact's Debug is redacted as well.
    let cmd = decode_create(&full_create()).unwrap();
    assert!(!format!("{cmd:?}").contains("Zebedee"));
}

#[test]
fn verbs_without_fields_take_an_empty_body_or_an_empty_object() {
    for (verb, want) in [
        (Verb::Ready, Command::MarkReady),
        (Verb::Resume, Command::Resume),
        (Verb::Close, Command::Close),
        (Verb::Hold, Command::Hold { reason: None }),
        (Verb::Cancel, Command::Cancel { reason: None }),
    ] {
        for body in [&b""[..], b"{}", b" { } \n", b"  "] {
            let got = decode_command(&verb_inbound(verb), None, body, DEFAULT_MAX_BODY).unwrap();
            assert_eq!(got, want, "{verb} {body:?}");
        }
        let got = decode_command(
            &verb_inbound(verb),
            Some(headers::MSGPACK),
            &[0x80],
            DEFAULT_MAX_BODY,
        )
        .unwrap();
        assert_eq!(got, want);
        let got = decode_command(
            &verb_inbound(verb),
            Some(headers::MSGPACK),
            b"",
            DEFAULT_MAX_BODY,
        )
        .unwrap();
        assert_eq!(got, want);
        let err = decode_command(&verb_inbound(verb), None, b"{\"x\":1}", DEFAULT_MAX_BODY);
        malformed(err);
        malformed(decode_command(
            &verb_inbound(verb),
            None,
            b"null",
            DEFAULT_MAX_BODY,
        ));
    }
}

#[test]
fn hold_cancel_and_substate_bodies() {
    let hold = decode_command(
        &verb_inbound(Verb::Hold),
        None,
        br#"{"reason":"weather"}"#,
        DEFAULT_MAX_BODY,
    )
    .unwrap();
    assert_eq!(
        hold,
        Command::Hold {
            reason: Some("weather".into())
        }
    );
    let cancel = decode_command(
        &verb_inbound(Verb::Cancel),
        None,
        br#"{"reason":null}"#,
        DEFAULT_MAX_BODY,
    )
    .unwrap();
    assert_eq!(cancel, Command::Cancel { reason: None });
    let sub =
        |body: &[u8]| decode_command(&verb_inbound(Verb::SubState), None, body, DEFAULT_MAX_BODY);
    assert_eq!(
        sub(br#"{"subState":"PACKED"}"#).unwrap(),
        Command::SetSubState {
            to: Some("PACKED".into())
        }
    );
    assert_eq!(
        sub(br#"{"subState":null}"#).unwrap(),
        Command::SetSubState { to: None }
    );
    assert!(malformed(sub(b"{}")).contains("missing field `subState`"));
    malformed(sub(b""));
    malformed(sub(br#"{"subState":3}"#));
}

#[test]
fn update_bodies_are_partial() {
    let update = |v: serde_json::Value| {
        decode_command(
            &verb_inbound(Verb::Update),
            None,
            &json_bytes(&v),
            DEFAULT_MAX_BODY,
        )
    };
    let Command::Update(u) = update(json!({"orderSummary": {"totalItems": 5}})).unwrap() else {
        panic!("not an update")
    };
    assert_eq!(u.summary.total_items, Some(5));
    assert_eq!(u.summary.invoice_number, None);
    assert_eq!(u.contact, None);
    assert_eq!(u.ready_to_process, None);
    let Command::Update(u) = update(json!({
        "dropDetails": {"contactId": "0b7a4c0e-6a8e-4c4e-9c1e-2f7d7f1d3a11", "location": {"city": "York"}},
        "customAttributes": {"priority": 1},
        "readyToProcess": true
    }))
    .unwrap() else {
        panic!("not an update")
    };
    assert!(matches!(u.contact, Some(ContactInput::Id(_))));
    assert!(matches!(u.location, Some(LocationInput::Address(_))));
    assert_eq!(u.ready_to_process, Some(true));
    assert_eq!(u.custom["priority"], json!(1));
    assert_eq!(
        *update(json!({}))
            .map(|c| match c {
                Command::Update(u) => *u,
                _ => panic!("not an update"),
            })
            .as_ref()
            .unwrap(),
        UpdateOrder::default()
    );
    // Only contact and location can change in dropDetails; no client fields.
    malformed(update(
        json!({"dropDetails": {"returnLocationId": "0b7a4c0e-6a8e-4c4e-9c1e-2f7d7f1d3a11"}}),
    ));
    malformed(update(json!({"clientOrderId": "x"})));
    malformed(update(
        json!({"dropDetails": {"contact": {"name": "a", "phone": "1"}, "contactId": "0b7a4c0e-6a8e-4c4e-9c1e-2f7d7f1d3a11"}}),
    ));
}

#[test]
fn an_update_naming_a_work_order_changes_its_details_and_add_return_adds_one() {
    use orderd_core::command::{DetailsPatch, StopInput};
    use orderd_core::model::Item;

    let update = |v: serde_json::Value, msgpack: bool| {
        let (ct, body) = if msgpack {
            (Some(headers::MSGPACK), msgpack_bytes(&v))
        } else {
            (None, json_bytes(&v))
        };
        decode_conditional_command(&verb_inbound(Verb::Update), ct, &body, DEFAULT_MAX_BODY)
    };
    let one = json!({
        "workOrderId": 2,
        "items": [{"id": "SKU-9", "description": "Chair", "quantity": 2}],
        "instructions": "Ring the bell",
        "drop": {"contact": {"name": MARKER, "phone": "+15550123"},
                 "locationId": "0b7a4c0e-6a8e-4c4e-9c1e-2f7d7f1d3a11"},
        "expectedSeq": 4
    });
    for msgpack in [false, true] {
        let (command, expected) = update(one.clone(), msgpack).unwrap();
        assert_eq!(expected, Some(4));
        let Command::UpdateWorkOrder {
            work_order,
            details,
        } = command
        else {
            panic!("not a work-order update: {command:?}")
        };
        assert_eq!(work_order, WorkOrderId(2));
        assert_eq!(
            details.items,
            Some(vec![Item {
                id: "SKU-9".into(),
                description: "Chair".into(),
                quantity: 2,
                weight: None,
            }])
        );
        assert_eq!(details.instructions.as_deref(), Some("Ring the bell"));
        assert_eq!(details.pickup, StopInput::default());
        assert!(matches!(
            details.drop.contact,
            Some(ContactInput::Details(_))
        ));
        assert!(matches!(details.drop.location, Some(LocationInput::Id(_))));
        assert!(!format!("{details:?}").contains(MARKER));
    }
    let (command, _) = update(json!({"addReturn": {"returns": 1}}), true).unwrap();
    assert_eq!(
        command,
        Command::AddReturn {
            returns: WorkOrderId(1),
            details: Box::new(DetailsPatch::default()),
        }
    );
    let (command, _) = update(
        json!({"addReturn": {"returns": 3, "instructions": "Fragile",
               "pickup": {"locationId": "0b7a4c0e-6a8e-4c4e-9c1e-2f7d7f1d3a11"}}}),
        false,
    )
    .unwrap();
    let Command::AddReturn { returns, details } = command else {
        panic!("not a return")
    };
    assert_eq!(returns, WorkOrderId(3));
    assert_eq!(details.instructions.as_deref(), Some("Fragile"));
    assert!(matches!(
        details.pickup.location,
        Some(LocationInput::Id(_))
    ));
    assert_eq!(details.items, None, "the returned work order's items");

    // Shapes never mix; unknown fields and bad ids are refused.
    let refused = |v: serde_json::Value| {
        for msgpack in [false, true] {
            malformed(update(v.clone(), msgpack).map(|(c, _)| c));
        }
    };
    refused(json!({"workOrderId": 2, "orderSummary": {"totalItems": 1}}));
    refused(json!({"workOrderId": 2, "readyToProcess": true}));
    refused(json!({"instructions": "no work order named"}));
    refused(json!({"addReturn": {"returns": 1}, "workOrderId": 1}));
    refused(json!({"addReturn": {"returns": 1}, "items": []}));
    refused(json!({"addReturn": {"returns": 0}}));
    refused(json!({"addReturn": {}}));
    refused(json!({"addReturn": {"returns": 1, "colour": "red"}}));
    refused(json!({"addReturn": [1]}));
    refused(json!({"workOrderId": 0, "instructions": "x"}));
    refused(json!({"workOrderId": 2, "items": [["SKU", "Chair", 1]]}));
    refused(
        json!({"workOrderId": 2, "items": [{"id": "a", "description": "b", "quantity": 1, "size": 3}]}),
    );
    refused(json!({"workOrderId": 2, "pickup": {"locationId": "nope"}}));
    refused(
        json!({"workOrderId": 2, "drop": {"location": {"city": "York"},
                   "locationId": "0b7a4c0e-6a8e-4c4e-9c1e-2f7d7f1d3a11"}}),
    );
    // A work order named with nothing to set reaches the core, which
    // refuses it as an empty update.
    assert!(matches!(
        update(json!({"workOrderId": 2}), false),
        Ok((Command::UpdateWorkOrder { .. }, None))
    ));
    // Other verbs still take no work-order details.
    malformed(decode_command(
        &verb_inbound(Verb::Hold),
        None,
        &json_bytes(&json!({"workOrderId": 1, "instructions": "x"})),
        DEFAULT_MAX_BODY,
    ));
}

#[test]
fn job_updates_carry_the_subject_and_the_attempt() {
    let inbound = subjects::parse_inbound(&subjects::job_update(
        &tenant(),
        order_id(),
        WorkOrderId(2),
        JobStatus::Failed,
    ))
    .unwrap();
    let cmd = decode_command(
        &inbound,
        None,
        br#"{"jobId":"j-9","attempt":2,"reasonCode":"NO_ACCESS"}"#,
        DEFAULT_MAX_BODY,
    )
    .unwrap();
    assert_eq!(
        cmd,
        Command::Job(JobUpdate {
            work_order: WorkOrderId(2),
            attempt: 2,
            status: JobStatus::Failed,
            job_id: Some("j-9".into()),
            reason_code: Some("NO_ACCESS".into()),
        })
    );
    let job = |body: &[u8]| decode_command(&inbound, None, body, DEFAULT_MAX_BODY);
    assert!(job(br#"{"attempt":1}"#).is_ok());
    malformed(job(br#"{"attempt":0}"#));
    malformed(job(br#"{"attempt":-1}"#));
    malformed(job(br#"{"jobId":"j"}"#));
    malformed(job(b""));
    malformed(job(br#"{"attempt":1,"status":"completed"}"#));
}

#[test]
fn create_order_ids_are_deterministic_per_tenant_and_key() {
    let acme = tenant();
    let other = TenantId::parse("other").unwrap();
    let a = order_id_for_create(&acme, "msg-1");
    assert_eq!(a, order_id_for_create(&acme, "msg-1"));
    assert_ne!(a, order_id_for_create(&other, "msg-1"));
    assert_ne!(a, order_id_for_create(&acme, "msg-2"));
    assert_eq!(a.0.get_version_num(), 5);
    // The separator keeps "<tenant>\n<key>" unambiguous: no tenant contains '\n'.
    assert_ne!(
        order_id_for_create(&TenantId::parse("ab").unwrap(), "c"),
        order_id_for_create(&TenantId::parse("a").unwrap(), "bc")
    );
    // Pinned: the namespace must never change.
    assert_eq!(
        order_id_for_create(&acme, "msg-1").to_string(),
        Uuid::new_v5(&ORDER_ID_NAMESPACE, b"acme\nmsg-1")
            .hyphenated()
            .to_string()
    );
}

fn sample_order() -> Order {
    let mut o = Order::blank(order_id(), tenant());
    o.seq = 4;
    o.client.id = "c-1".into();
    o.client.name = "Acme Retail".into();
    o.client_order_id = "PO-42".into();
    o.drop.contact_id = Some(ContactId::parse("0b7a4c0e-6a8e-4c4e-9c1e-2f7d7f1d3a11").unwrap());
    o.drop.location_id = Some(LocationId::parse("1b7a4c0e-6a8e-4c4e-9c1e-2f7d7f1d3a11").unwrap());
    o.state = OrderState::InProgress;
    o.created_at = Timestamp(1_700_000_000_000);
    o.updated_at = Timestamp(1_700_000_000_500);
    o.work_orders.push(WorkOrder {
        id: WorkOrderId(1),
        kind: "DELIVERY".into(),
        job_type: "delivery".into(),
        max_attempts: 3,
        return_on_failure: true,
        return_on_cancel: false,
        returns: None,
        state: WorkOrderState::Dispatched,
        held_from: None,
        attempt: 1,
        cancel_requested: false,
        cancel_failed: false,
        started: false,
        last_failure: None,
        job_id: None,
        ignored_updates: 0,
        last_ignored: None,
        details: Default::default(),
        withdrawing: false,
        held_alone: false,
        withdrawn: false,
    });
    o
}

#[test]
fn an_event_message_is_one_per_change_and_carries_no_personal_data() {
    let order = sample_order();
    let change = Change {
        seq: 4,
        command_id: CommandId::parse("cmd-4").unwrap(),
        command: "update".into(),
        at: Timestamp(1_700_000_000_500),
        by: "c-1".into(),
        events: vec![
            Event::ContactRecorded {
                contact_id: order.drop.contact_id.unwrap(),
                contact: Sealed(Some(Contact {
                    name: MARKER.into(),
                    phone: "+44 20 7946 0000".into(),
                })),
            },
            Event::Started,
        ],
    };
    let msg = EventMessage::from_change(&order, &change);
    assert_eq!(msg.kind, "in_progress");
    assert_eq!(msg.kind, EventKind::of(&change).as_str());
    assert_eq!(msg.seq, 4);
    assert_eq!(msg.at, "2023-11-14T22:13:20.500Z");
    assert_eq!(msg.state, "IN_PROGRESS");
    assert_eq!(msg.command_id, "cmd-4");
    for msgpack in [false, true] {
        let bytes = encode(&msg, msgpack);
        assert!(!String::from_utf8_lossy(&bytes).contains("Zebedee"));
    }
    let json: serde_json::Value = serde_json::from_slice(&encode(&msg, false)).unwrap();
    assert_eq!(json["orderId"], order_id().to_string());
    assert_eq!(json["events"][1]["kind"], "started");
    // A change that does not move the state is `changed`.
    let quiet = Change {
        events: vec![Event::MarkedReady],
        ..change
    };
    assert_eq!(EventMessage::from_change(&order, &quiet).kind, "changed");
    // Round trip for subscribers.
    let back: EventMessage = serde_json::from_value(json).unwrap();
    assert_eq!(back.order_id, msg.order_id);
}

#[test]
fn dispatch_messages_carry_ids_never_personal_data() {
    let order = sample_order();
    let create = JobCommand {
        work_order: WorkOrderId(1),
        attempt: 1,
        action: JobAction::Create,
        job_type: Some("delivery".into()),
        group: None,
    };
    let msg = DispatchMessage::new(&order, &create, 4);
    let json = serde_json::to_value(&msg).unwrap();
    assert_eq!(json["workOrderId"], 1);
    assert_eq!(json["action"], "create");
    assert_eq!(json["workOrderType"], "DELIVERY");
    assert_eq!(json["contactId"], "0b7a4c0e-6a8e-4c4e-9c1e-2f7d7f1d3a11");
    let hold = JobCommand {
        action: JobAction::Hold,
        job_type: None,
        ..create
    };
    let msg = DispatchMessage::new(&order, &hold, 5);
    assert_eq!(msg.action, "hold");
    assert_eq!(msg.contact_id, None);
    assert_eq!(msg.work_order_type, None);
}

#[test]
fn an_order_view_is_camel_case_and_references_only() {
    let view = OrderView::from(&sample_order());
    let json = serde_json::to_value(&view).unwrap();
    for key in [
        "orderId",
        "tenant",
        "clientId",
        "clientName",
        "clientOrderId",
        "readyToProcess",
        "dropDetails",
        "executionFlow",
        "orderSummary",
        "customAttributes",
        "state",
        "subState",
        "closeReason",
        "cancellation",
        "workOrders",
        "seq",
        "schemaVersion",
        "createdAt",
        "updatedAt",
        "createdBy",
        "updatedBy",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
    assert_eq!(json["executionFlow"], "SEQUENTIAL");
    assert_eq!(json["cancellation"]["status"], "NONE");
    assert_eq!(json["workOrders"][0]["type"], "DELIVERY");
    assert_eq!(json["workOrders"][0]["state"], "DISPATCHED");
    assert_eq!(json["createdAt"], "2023-11-14T22:13:20.000Z");
    assert_eq!(
        json["dropDetails"],
        json!({
            "contactId": "0b7a4c0e-6a8e-4c4e-9c1e-2f7d7f1d3a11",
            "locationId": "1b7a4c0e-6a8e-4c4e-9c1e-2f7d7f1d3a11",
            "returnLocationId": null
        })
    );
    let back: OrderView = serde_json::from_value(json).unwrap();
    assert_eq!(back, view);
}

#[test]
fn outcomes_and_errors_on_the_wire() {
    let order = sample_order();
    let ok = serde_json::to_value(Outcome::applied(&order)).unwrap();
    assert_eq!(
        ok,
        json!({"ok": true, "orderId": order_id().to_string(), "seq": 4, "duplicate": false,
               "state": "IN_PROGRESS", "error": null})
    );
    assert!(Outcome::duplicate(&order).duplicate);
    let refused = Outcome::refused(
        Some(order_id()),
        ErrorBody::from(&orderd_core::Rejection::CancelInProgress),
    );
    let json = serde_json::to_value(&refused).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["error"]["code"], "ORD-409-CANCEL_IN_PROGRESS");
    assert_eq!(json["error"]["type"], "Error");
    assert_eq!(json["error"]["details"], json!([]));
    let back: Outcome = rmp_serde::from_slice(&encode(&refused, true)).unwrap();
    assert_eq!(back, refused);
}

#[test]
fn read_requests_parse_their_ids() {
    let body = json!({"tenant": "acme", "orderId": order_id().to_string()});
    let req: OrderRequest = decode(None, &json_bytes(&body), DEFAULT_MAX_BODY).unwrap();
    assert_eq!(req.ids().unwrap(), (tenant(), order_id()));
    let bad: OrderRequest = decode(
        None,
        &json_bytes(&json!({"tenant": "api", "orderId": "x"})),
        DEFAULT_MAX_BODY,
    )
    .unwrap();
    assert_eq!(bad.ids().unwrap_err().code(), "ORD-400-BAD_TENANT");
    let bad: OrderRequest = decode(
        None,
        &json_bytes(&json!({"tenant": "acme", "orderId": "x"})),
        DEFAULT_MAX_BODY,
    )
    .unwrap();
    assert_eq!(bad.ids().unwrap_err().code(), "ORD-400-MALFORMED");
    let q: QueryRequest = decode(
        None,
        &json_bytes(&json!({"tenant": "acme", "state": "ON_HOLD", "limit": 10})),
        DEFAULT_MAX_BODY,
    )
    .unwrap();
    assert_eq!(q.state, Some(OrderState::OnHold));
    assert!(decode::<QueryRequest>(
        None,
        &json_bytes(&json!({"tenant": "acme", "state": "SLEEPING"})),
        DEFAULT_MAX_BODY
    )
    .is_err());
    let h: HistoryRequest = decode(
        Some(headers::MSGPACK),
        &msgpack_bytes(&json!({"tenant": "acme", "orderId": order_id().to_string(), "fromSeq": 3})),
        DEFAULT_MAX_BODY,
    )
    .unwrap();
    assert_eq!(h.from_seq, Some(3));
}
