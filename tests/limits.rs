//! Every bound of the contract, AT the limit and ONE PAST it, through the
//! public path a message takes: subject → `parse_inbound`, body →
//! `decode_command` → the core's `execute` with a `Ctx`. At the limit the
//! command is accepted; one past, it is refused with its stable code (and,
//! for field checks, the field and the problem code).

use orderd::subjects::{self, Inbound};
use orderd::wire::{self, OrderRequest, DEFAULT_MAX_BODY};
use orderd_core::config::{AttributeDef, AttributeValidation, DataType};
use orderd_core::ids::IdError;
use orderd_core::{
    execute, CommandId, Ctx, Envelope, Order, OrderId, Outcome, TenantConfig, TenantId, Timestamp,
};
use serde_json::{json, Value};
use uuid::Uuid;

const ORDER: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";

// ---- the client's path ----------------------------------------------------

/// How a command ended: accepted, or refused with a code and field problems.
#[derive(Debug, PartialEq)]
enum End {
    Accepted,
    Refused {
        code: String,
        problems: Vec<(String, String)>,
    },
}

fn refused(code: &str) -> End {
    End::Refused {
        code: code.to_owned(),
        problems: Vec::new(),
    }
}

fn invalid(field: &str, problem: &str) -> End {
    End::Refused {
        code: "ORD-422-INVALID_FIELDS".to_owned(),
        problems: vec![(field.to_owned(), problem.to_owned())],
    }
}

/// Publishes `body` to `subject` as a client would, and runs it through the
/// wire and the core on a blank order (a create) under `config`.
fn send(subject: &str, content_type: Option<&str>, body: &[u8], config: &TenantConfig) -> End {
    let inbound = match subjects::parse_inbound(subject) {
        Ok(inbound) => inbound,
        Err(e) => return refused(e.code()),
    };
    let command = match wire::decode_command(&inbound, content_type, body, DEFAULT_MAX_BODY) {
        Ok(command) => command,
        Err(e) => return refused(e.code()),
    };
    let tenant = inbound.tenant().clone();
    let order_id = inbound
        .order()
        .unwrap_or_else(|| wire::order_id_for_create(&tenant, "key-1"));
    let envelope = Envelope {
        tenant: tenant.clone(),
        order_id,
        command_id: CommandId::parse("key-1").unwrap(),
        by: "client".into(),
        command,
        expected_seq: None,
    };
    let ctx = Ctx {
        now: Timestamp(1_700_000_000_000),
        config,
        fresh_ids: [Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3)],
    };
    match execute(&Order::blank(order_id, tenant), &envelope, &ctx) {
        Outcome::Applied(_) => End::Accepted,
        Outcome::Duplicate => panic!("a blank order has applied nothing"),
        Outcome::Refused(r) => End::Refused {
            code: r.code().to_owned(),
            problems: r
                .details()
                .iter()
                .map(|p| (p.field.clone(), p.code.to_owned()))
                .collect(),
        },
    }
}

fn create_subject() -> String {
    subjects::create(&TenantId::parse("acme").unwrap())
}

fn create(body: &Value) -> End {
    create_with(body, &TenantConfig::default())
}

fn create_with(body: &Value, config: &TenantConfig) -> End {
    let json = send(
        &create_subject(),
        None,
        &serde_json::to_vec(body).unwrap(),
        config,
    );
    let msgpack = send(
        &create_subject(),
        Some("application/msgpack"),
        &rmp_serde::to_vec_named(body).unwrap(),
        config,
    );
    assert_eq!(json, msgpack, "JSON and MessagePack disagree");
    json
}

fn minimal() -> Value {
    json!({
        "clientId": "c-1",
        "clientName": "Acme Retail",
        "clientOrderId": "PO-1",
        "workOrders": [{"type": "DELIVERY"}],
    })
}

fn with(path: &str, value: Value) -> Value {
    let mut body = minimal();
    let mut at = &mut body;
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts[..parts.len() - 1] {
        if at.get(*part).is_none() {
            at[*part] = json!({});
        }
        at = &mut at[*part];
    }
    at[parts[parts.len() - 1]] = value;
    body
}

/// Asserts the value at `path` is accepted at the limit and refused one past.
fn at_and_past(path: &str, at: Value, past: Value, field: &str, problem: &str) {
    assert_eq!(
        create(&with(path, at.clone())),
        End::Accepted,
        "{path} = {at}"
    );
    assert_eq!(
        create(&with(path, past.clone())),
        invalid(field, problem),
        "{path} = {past}"
    );
}

// ---- body size ------------------------------------------------------------

#[test]
fn body_size_256_kib_accepted_one_byte_more_refused() {
    assert_eq!(DEFAULT_MAX_BODY, 256 * 1024);
    // JSON: the minimal create, padded with trailing whitespace.
    let mut body = serde_json::to_vec(&minimal()).unwrap();
    body.resize(DEFAULT_MAX_BODY, b' ');
    let config = TenantConfig::default();
    assert_eq!(send(&create_subject(), None, &body, &config), End::Accepted);
    body.push(b' ');
    assert_eq!(
        send(&create_subject(), None, &body, &config),
        refused("ORD-413-PAYLOAD_TOO_LARGE")
    );
    // MessagePack: a location field sized so the body is exactly the limit
    // (the decode succeeds; the core then refuses the oversized field).
    let sized = |n: usize| {
        let v = with("dropDetails/location", json!({"line1": "x".repeat(n)}));
        rmp_serde::to_vec_named(&v).unwrap()
    };
    // (Measured with a string long enough to take the same str32 header.)
    let overhead = sized(70_000).len() - 70_000;
    let body = sized(DEFAULT_MAX_BODY - overhead);
    assert_eq!(body.len(), DEFAULT_MAX_BODY);
    let inbound = Inbound::Create {
        tenant: TenantId::parse("acme").unwrap(),
    };
    let msgpack = Some("application/msgpack");
    assert!(wire::decode_command(&inbound, msgpack, &body, DEFAULT_MAX_BODY).is_ok());
    let body = sized(DEFAULT_MAX_BODY - overhead + 1);
    assert_eq!(
        wire::decode_command(&inbound, msgpack, &body, DEFAULT_MAX_BODY)
            .unwrap_err()
            .code(),
        "ORD-413-PAYLOAD_TOO_LARGE"
    );
    // Every inbound kind checks the size first, before the content type.
    let too_big = vec![b'{'; DEFAULT_MAX_BODY + 1];
    let order = OrderId::parse(ORDER).unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    for verb in subjects::Verb::ALL {
        let subject = subjects::command(&tenant, order, verb);
        assert_eq!(
            send(&subject, Some("text/html"), &too_big, &config),
            refused("ORD-413-PAYLOAD_TOO_LARGE"),
            "{verb}"
        );
    }
    assert_eq!(
        wire::decode::<OrderRequest>(None, &too_big, DEFAULT_MAX_BODY)
            .unwrap_err()
            .code(),
        "ORD-413-PAYLOAD_TOO_LARGE"
    );
}

// ---- work orders ----------------------------------------------------------

#[test]
fn fifty_forward_work_orders_accepted_fifty_one_refused() {
    let work_orders = |n: usize| Value::Array(vec![json!({"type": "PICKUP"}); n]);
    at_and_past(
        "workOrders",
        work_orders(50),
        work_orders(51),
        "workOrders",
        "LENGTH",
    );
    assert_eq!(
        create(&with("workOrders", work_orders(0))),
        invalid("workOrders", "LENGTH")
    );
}

// ---- strings --------------------------------------------------------------

#[test]
fn client_fields_128_characters_accepted_129_refused() {
    for field in ["clientId", "clientName", "clientOrderId"] {
        at_and_past(
            field,
            json!("x".repeat(128)),
            json!("x".repeat(129)),
            field,
            "LENGTH",
        );
        // Characters, not bytes: 128 two-byte characters are fine.
        assert_eq!(create(&with(field, json!("é".repeat(128)))), End::Accepted);
        assert_eq!(create(&with(field, json!(""))), invalid(field, "LENGTH"));
        assert_eq!(
            create(&with(field, json!("a\u{0}b"))),
            invalid(field, "PATTERN")
        );
    }
}

#[test]
fn invoice_number_3_to_64_of_its_pattern() {
    let path = "orderSummary/invoiceNumber";
    let field = "orderSummary.invoiceNumber";
    at_and_past(
        path,
        json!("A:_-9".repeat(13)[..64].to_owned()),
        json!("x".repeat(65)),
        field,
        "LENGTH",
    );
    at_and_past(path, json!("ab1"), json!("ab"), field, "LENGTH");
    at_and_past(path, json!("INV-1"), json!("INV 1"), field, "PATTERN");
    at_and_past(path, json!("INV-1"), json!("INV.1"), field, "PATTERN");
}

#[test]
fn order_description_1_to_256_of_its_pattern() {
    let path = "orderSummary/orderDescription";
    let field = "orderSummary.orderDescription";
    at_and_past(
        path,
        json!(format!("A{}", "b, 9".repeat(64))[..256].to_owned()),
        json!("b".repeat(257)),
        field,
        "LENGTH",
    );
    assert_eq!(create(&with(path, json!("a"))), End::Accepted);
    assert_eq!(
        create(&with(path, json!(""))),
        End::Refused {
            code: "ORD-422-INVALID_FIELDS".into(),
            problems: vec![
                (field.into(), "LENGTH".into()),
                (field.into(), "PATTERN".into())
            ],
        }
    );
    at_and_past(
        path,
        json!("Two chairs"),
        json!("2 chairs"),
        field,
        "PATTERN",
    );
    at_and_past(
        path,
        json!("Two chairs"),
        json!("Two chairs!"),
        field,
        "PATTERN",
    );
}

#[test]
fn total_items_1000_accepted_1001_refused() {
    at_and_past(
        "orderSummary/totalItems",
        json!(1000),
        json!(1001),
        "orderSummary.totalItems",
        "RANGE",
    );
}

#[test]
fn phone_3_to_32_characters() {
    let path = "dropDetails/contact";
    let field = "dropDetails.contact.phone";
    let contact = |phone: String| json!({"name": "Ada", "phone": phone});
    at_and_past(
        path,
        contact(format!("+{}", "1".repeat(31))),
        contact(format!("+{}", "1".repeat(32))),
        field,
        "PATTERN",
    );
    at_and_past(
        path,
        contact("123".into()),
        contact("12".into()),
        field,
        "PATTERN",
    );
    at_and_past(
        path,
        contact("+44 (20) 7946-0000".into()),
        contact("+44 20 7946 0000 ext 5".into()),
        field,
        "PATTERN",
    );
    // One number, as a string: a list is malformed.
    assert_eq!(
        create(&with(path, json!({"name": "Ada", "phone": ["123", "456"]}))),
        refused("ORD-400-MALFORMED")
    );
}

#[test]
fn address_32_fields_of_256_characters() {
    let path = "dropDetails/location";
    let field = "dropDetails.location";
    let fields = |n: usize| {
        Value::Object(
            (0..n)
                .map(|i| (format!("f{i}"), json!("x")))
                .collect::<serde_json::Map<_, _>>(),
        )
    };
    at_and_past(path, fields(32), fields(33), field, "TYPE");
    at_and_past(
        path,
        json!({"line1": "x".repeat(256)}),
        json!({"line1": "x".repeat(257)}),
        field,
        "TYPE",
    );
}

// ---- custom attributes ----------------------------------------------------

/// A letters-only attribute name for each number (`a`, `b`, …, `ba`, …).
fn letters(mut n: usize) -> String {
    let mut s = String::new();
    loop {
        s.insert(0, char::from(b'a' + (n % 26) as u8));
        n /= 26;
        if n == 0 {
            return s;
        }
    }
}

fn attribute(name: &str, data_type: DataType) -> AttributeDef {
    AttributeDef {
        name: name.to_owned(),
        description: None,
        data_type,
        validation: AttributeValidation::default(),
        default_value: None,
        indexed: false,
        security_level: None,
        delete: false,
    }
}

#[test]
fn sixty_four_custom_attributes_accepted_sixty_five_refused() {
    let mut config = TenantConfig {
        attributes: (0..64)
            .map(|i| attribute(&letters(i), DataType::Number))
            .collect(),
        ..TenantConfig::default()
    };
    assert!(
        config.problems().is_empty(),
        "64 attributes is a valid schema"
    );
    let custom = |n: usize| {
        Value::Object(
            (0..n)
                .map(|i| (letters(i), json!(i)))
                .collect::<serde_json::Map<_, _>>(),
        )
    };
    assert_eq!(
        create_with(&with("customAttributes", custom(64)), &config),
        End::Accepted
    );
    assert_eq!(
        create_with(&with("customAttributes", custom(65)), &config),
        invalid("customAttributes", "LENGTH")
    );
    // The schema holds 64 attributes at most, too.
    config.attributes.push(attribute("extra", DataType::Number));
    let problems: Vec<_> = config
        .problems()
        .into_iter()
        .map(|p| (p.field, p.code))
        .collect();
    assert_eq!(problems, [("attributes".to_owned(), "LENGTH")]);
}

#[test]
fn attribute_values_nest_8_levels_not_9() {
    let config = TenantConfig {
        attributes: vec![
            attribute("tree", DataType::Object),
            attribute("list", DataType::Array),
        ],
        ..TenantConfig::default()
    };
    let nested = |depth: usize, object: bool| {
        let mut v = json!("leaf");
        for _ in 0..depth {
            v = if object {
                json!({ "k": v })
            } else {
                json!([v])
            };
        }
        v
    };
    for (name, object) in [("tree", true), ("list", false)] {
        let body = |depth| with("customAttributes", json!({ name: nested(depth, object) }));
        assert_eq!(create_with(&body(8), &config), End::Accepted, "{name}");
        assert_eq!(
            create_with(&body(9), &config),
            invalid(&format!("customAttributes.{name}"), "DEPTH"),
            "{name}"
        );
    }
    // Mixed objects and arrays count alike.
    let mixed = json!({"a": [{"b": [{"c": [{"d": [1]}]}]}]});
    assert_eq!(
        create_with(&with("customAttributes", json!({ "tree": mixed })), &config),
        End::Accepted
    );
    let mixed = json!({"a": [{"b": [{"c": [{"d": [[1]]}]}]}]});
    assert_eq!(
        create_with(&with("customAttributes", json!({ "tree": mixed })), &config),
        invalid("customAttributes.tree", "DEPTH")
    );
}

// ---- tokens and ids -------------------------------------------------------

#[test]
fn tenant_token_64_characters_accepted_65_refused() {
    let config = TenantConfig::default();
    let body = serde_json::to_vec(&minimal()).unwrap();
    let subject = |tenant: &str| format!("orderd.v1.{tenant}.cmd.create");
    assert_eq!(
        send(&subject(&"t".repeat(64)), None, &body, &config),
        End::Accepted
    );
    assert_eq!(
        send(&subject(&"t".repeat(65)), None, &body, &config),
        refused("ORD-400-BAD_TENANT")
    );
    // `api` is the read service's token, never a tenant.
    assert_eq!(
        send(&subject("api"), None, &body, &config),
        refused("ORD-400-BAD_TENANT")
    );
    // The same bound where the tenant travels in a read request's body.
    let request = |tenant: String| OrderRequest {
        tenant,
        order_id: ORDER.into(),
    };
    assert!(request("t".repeat(64)).ids().is_ok());
    assert_eq!(
        request("t".repeat(65)).ids().unwrap_err().code(),
        "ORD-400-BAD_TENANT"
    );
}

#[test]
fn command_id_128_characters_accepted_129_refused() {
    assert!(CommandId::parse(&"k".repeat(128)).is_ok());
    assert_eq!(
        CommandId::parse(&"k".repeat(129)),
        Err(IdError::Invalid {
            kind: "command id",
            pattern: "1 to 128 printable ASCII characters, no whitespace",
            len: 129
        })
    );
    assert!(CommandId::parse("").is_err());
}

#[test]
fn ids_that_are_not_clean_subject_tokens_are_refused() {
    let config = TenantConfig::default();
    let body = serde_json::to_vec(&minimal()).unwrap();
    let empty = b"{}";
    let job = br#"{"attempt": 1}"#;
    for bad in [
        "a.b", "a*", "*", ">", "a>", "a b", "a\tb", "a\nb", "a\rb", "",
    ] {
        // As the tenant token.
        let code = send(&format!("orderd.v1.{bad}.cmd.create"), None, &body, &config);
        assert!(
            code == refused("ORD-400-BAD_TENANT") || code == refused("ORD-400-BAD_SUBJECT"),
            "tenant {bad:?}: {code:?}"
        );
        assert!(TenantId::parse(bad).is_err(), "{bad:?}");
        // As the order id.
        assert_eq!(
            send(
                &format!("orderd.v1.acme.cmd.{bad}.hold"),
                None,
                empty,
                &config
            ),
            refused("ORD-400-BAD_SUBJECT"),
            "order {bad:?}"
        );
        assert!(OrderId::parse(bad).is_err(), "{bad:?}");
        // As the work order id.
        assert_eq!(
            send(
                &format!("orderd.v1.acme.job.{ORDER}.{bad}.started"),
                None,
                job,
                &config
            ),
            refused("ORD-400-BAD_SUBJECT"),
            "work order {bad:?}"
        );
        // As an id given in a body.
        let by_id = with("dropDetails", json!({"contactId": bad}));
        assert_eq!(
            create(&by_id),
            refused("ORD-400-MALFORMED"),
            "contactId {bad:?}"
        );
    }
    // A UUID with a wildcard or a dot in place of one character.
    for c in ['.', '*', '>', ' '] {
        let mut id = ORDER.to_owned();
        id.replace_range(3..4, &c.to_string());
        assert!(OrderId::parse(&id).is_err(), "{id:?}");
    }
    // Work order ids run from 1 to u32::MAX.
    for (wo, ok) in [
        ("1", true),
        ("4294967295", true),
        ("0", false),
        ("4294967296", false),
    ] {
        let subject = format!("orderd.v1.acme.job.{ORDER}.{wo}.started");
        assert_eq!(subjects::parse_inbound(&subject).is_ok(), ok, "{wo}");
    }
    // Nats-Msg-Id is never a subject token (it is hashed into the order id
    // and kept in the order's record), so `.`, `*` and `>` are allowed there;
    // whitespace and control characters are not.
    for ok in ["a.b", "a*", ">", "client:42:create"] {
        assert!(CommandId::parse(ok).is_ok(), "{ok:?}");
    }
    for bad in ["a b", "a\tb", "a\nb", "a\u{0}b", "é"] {
        assert!(CommandId::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn reply_subjects_256_characters_accepted_257_refused() {
    let subject = |n: usize| format!("_INBOX_acme.{}", "x".repeat(n - "_INBOX_acme.".len()));
    assert!(subjects::check_reply_subject(&subject(256)).is_ok());
    assert_eq!(
        subjects::check_reply_subject(&subject(257))
            .unwrap_err()
            .code(),
        "ORD-400-BAD_REPLY_SUBJECT"
    );
}
