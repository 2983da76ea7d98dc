//! Fuzz-style property tests of everything orderd reads from outside: command
//! bodies (every inbound kind, JSON and MessagePack), read requests, content
//! types, subjects, ids, reply subjects, tenant configurations, and create
//! commands through the core's `decide`.
//!
//! What every property holds to:
//! - no panic, whatever the input;
//! - a refusal carries one of the stable codes, and its text never echoes a
//!   personal value from the body;
//! - no unbounded allocation: the bytes a decode holds at its peak stay within
//!   [`ALLOC_PER_BODY_BYTE`] times the body's size plus [`ALLOC_SLACK`] (a
//!   counting allocator measures it, per thread), and a body over the limit is
//!   refused before a byte is parsed (no allocation at all);
//! - what is accepted is what the contract says (each parser is checked against
//!   an independent regular expression or a round trip).
//!
//! Iterations: each of the 16 properties runs `FUZZ_CASES` cases (default
//! [`DEFAULT_CASES`] = 1,000, so 16,000 cases and several times as many
//! decodes: 22 s for the whole file in a debug build on 2 cores with a load
//! average of 9). The long forms, in release: 100,000 cases per property
//! (1.6 M cases) took 233 s; a million per property takes about ten times
//! that.
//!
//! ```text
//! FUZZ_CASES=100000 cargo test --release --test fuzz
//! FUZZ_CASES=1000000 cargo test --release --test fuzz
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use orderd::subjects::{self, Inbound, SubjectError, Verb};
use orderd::wire::{
    self, HistoryRequest, OrderRequest, OutcomeRequest, QueryRequest, WireError, DEFAULT_MAX_BODY,
};
use orderd_core::command::{
    Address, Contact, ContactInput, CreateOrder, LocationInput, WorkOrderSpec,
};
use orderd_core::config::{AttributeDef, AttributeValidation, DataType, Range};
use orderd_core::ids::{ContactId, LocationId};
use orderd_core::model::{Client, ExecutionFlow, JobStatus, Money, OrderSummary};
use orderd_core::validate::{self, Problems};
use orderd_core::{
    apply_change, execute, Command, CommandId, Ctx, Envelope, Event, Order, OrderId, Outcome,
    Rejection, TenantConfig, TenantId, Timestamp, WorkOrderId,
};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};
use uuid::Uuid;

// ---- configuration --------------------------------------------------------

/// Cases per property when `FUZZ_CASES` is not set.
const DEFAULT_CASES: u32 = 1_000;

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        // Shrinking a failure is worth a while; a green run never shrinks.
        max_shrink_iters: 4_096,
        ..ProptestConfig::default()
    }
}

// ---- a counting allocator -------------------------------------------------

/// Bytes a decode may hold at its peak per byte of body (a 1-byte MessagePack
/// integer becomes a 32-byte `serde_json::Value`, plus growth slack)...
const ALLOC_PER_BODY_BYTE: usize = 64;
/// ...plus this much: serde's cautious pre-allocation caps at 1 MiB.
const ALLOC_SLACK: usize = 2 * 1024 * 1024;

/// Counts the bytes each thread holds, and the peak since the last reset.
/// Frees on another thread make a thread's count drift, so only the peak
/// above a baseline taken on the same thread is ever read.
struct CountingAllocator;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| {
            if now > peak.get() {
                peak.set(now);
            }
        });
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are const-initialised thread-locals without destructors, so
// touching them never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        track(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            track(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `f` and returns its result with the most bytes it held at once.
fn peak_bytes<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let r = f();
    let peak = PEAK.with(Cell::get);
    (r, usize::try_from(peak - base).unwrap_or(0))
}

fn assert_bounded(peak: usize, body_len: usize) {
    let bound = ALLOC_PER_BODY_BYTE * body_len + ALLOC_SLACK;
    assert!(
        peak <= bound,
        "decoding {body_len} bytes held {peak} bytes at its peak (bound {bound})"
    );
}

// ---- fixtures -------------------------------------------------------------

/// A personal value planted in bodies: no error text may ever carry it.
const MARKER: &str = "Zebedee Quux";
const MARKER_PHONE: &str = "+44 20 7946 0000";

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn order_id() -> OrderId {
    OrderId::parse("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap()
}

/// Every inbound kind a body can arrive for: create, each verb, a job update.
fn inbounds() -> Vec<Inbound> {
    let mut all = vec![Inbound::Create { tenant: tenant() }];
    all.extend(Verb::ALL.into_iter().map(|verb| Inbound::Command {
        tenant: tenant(),
        order: order_id(),
        verb,
    }));
    all.extend(JobStatus::ALL.into_iter().map(|status| Inbound::JobUpdate {
        tenant: tenant(),
        order: order_id(),
        work_order: WorkOrderId(1),
        status,
    }));
    all
}

fn valid_create() -> Value {
    json!({
        "clientId": "c-1",
        "clientName": "Acme Retail",
        "clientOrderId": "PO-42",
        "readyToProcess": true,
        "executionFlow": "START_TOGETHER",
        "dropDetails": {
            "contact": {"name": MARKER, "phone": MARKER_PHONE},
            "location": {"line1": "1 High St", "city": "London", "postcode": "N1 1AA"},
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

/// A configuration with an attribute of every data type and every check.
fn rich_config() -> TenantConfig {
    let attr = |name: &str, data_type, validation, default_value| AttributeDef {
        name: name.to_owned(),
        description: None,
        data_type,
        validation,
        default_value,
        indexed: true,
        security_level: None,
        delete: false,
    };
    TenantConfig {
        attributes: vec![
            attr(
                "priority",
                DataType::Number,
                AttributeValidation {
                    range: Some(Range {
                        min: Some(0.0),
                        max: Some(9.0),
                    }),
                    ..AttributeValidation::default()
                },
                None,
            ),
            attr(
                "fragile",
                DataType::Boolean,
                AttributeValidation::default(),
                None,
            ),
            attr(
                "tags",
                DataType::Array,
                AttributeValidation::default(),
                None,
            ),
            attr(
                "meta",
                DataType::Object,
                AttributeValidation::default(),
                None,
            ),
            attr(
                "code",
                DataType::String,
                AttributeValidation {
                    regex: Some("[A-Z]{2}[0-9]+".into()),
                    ..AttributeValidation::default()
                },
                None,
            ),
            attr(
                "channel",
                DataType::String,
                AttributeValidation {
                    value_one_of: Some(vec![json!("web"), json!("shop")]),
                    ..AttributeValidation::default()
                },
                Some(json!("web")),
            ),
            attr(
                "price",
                DataType::Money,
                AttributeValidation::default(),
                None,
            ),
        ],
        ..TenantConfig::default()
    }
}

fn ctx(config: &TenantConfig) -> Ctx<'_> {
    Ctx {
        now: Timestamp(1_700_000_000_000),
        config,
        fresh_ids: [Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3)],
    }
}

/// Runs a create through the core as the order actor would, and checks what
/// comes out: a refusal lists its problems without personal data; an
/// acceptance registers exactly the work orders asked for.
fn create_through_core(create: CreateOrder, config: &TenantConfig) {
    let asked = create.work_orders.len();
    let envelope = Envelope {
        tenant: tenant(),
        order_id: order_id(),
        command_id: CommandId::parse("fuzz-1").unwrap(),
        by: "fuzz".into(),
        command: Command::Create(Box::new(create)),
        expected_seq: None,
    };
    let mut order = Order::blank(order_id(), tenant());
    match execute(&order, &envelope, &ctx(config)) {
        Outcome::Applied(change) => {
            assert!(!change.events.is_empty());
            apply_change(&mut order, &change);
            assert!(order.exists());
            assert_eq!(order.work_orders.len(), asked);
            assert!((1..=validate::MAX_WORK_ORDERS / 2).contains(&asked));
            // Personal data travels sealed: what is recorded never shows it.
            for event in &change.events {
                if matches!(
                    event,
                    Event::ContactRecorded { .. } | Event::LocationRecorded { .. }
                ) {
                    let text = serde_json::to_string(event).unwrap();
                    assert!(
                        !text.contains(MARKER) && !text.contains(MARKER_PHONE),
                        "{text}"
                    );
                }
            }
        }
        Outcome::Refused(Rejection::InvalidFields(problems)) => {
            assert!(!problems.is_empty());
            for p in &problems {
                assert!(!p.message.contains(MARKER), "{p:?}");
                assert!(!p.field.contains(MARKER), "{p:?}");
            }
        }
        other => panic!("a create on a blank order gave {other:?}"),
    }
}

// ---- strategies -----------------------------------------------------------

/// Field names of the wire types, so random bodies often hit real fields.
const FIELD_NAMES: &[&str] = &[
    "clientId",
    "clientName",
    "clientOrderId",
    "readyToProcess",
    "executionFlow",
    "dropDetails",
    "contact",
    "contactId",
    "location",
    "locationId",
    "returnLocation",
    "returnLocationId",
    "name",
    "phone",
    "orderSummary",
    "invoiceNumber",
    "orderDescription",
    "totalWeight",
    "totalItems",
    "totalOrderCost",
    "amount",
    "currency",
    "workOrders",
    "type",
    "customAttributes",
    "reason",
    "workOrderId",
    "items",
    "instructions",
    "pickup",
    "drop",
    "addReturn",
    "returns",
    "subState",
    "jobId",
    "attempt",
    "reasonCode",
    "tenant",
    "orderId",
    "fromSeq",
    "limit",
    "state",
    "after",
    "commandId",
    "priority",
    "tags",
    "meta",
    "code",
    "channel",
    "price",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(FIELD_NAMES).prop_map(str::to_owned),
        1 => "\\PC{0,12}",
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1.0e6f64..1.0e6).prop_map(Value::from),
        Just(json!(0)),
        Just(json!(1)),
        Just(json!(1000)),
        Just(json!(1001)),
        proptest::sample::select(
            &[
                "DELIVERY",
                "PICKUP",
                "RETURN",
                "SEQUENTIAL",
                "COMPLETE_TOGETHER",
                "IN_PROGRESS",
                "GBP",
                "67e55044-10b1-426f-9247-bb680e5fe0c8",
                MARKER,
                MARKER_PHONE,
            ][..]
        )
        .prop_map(Value::from),
        "\\PC{0,40}".prop_map(Value::from),
    ]
}

/// Any JSON value, nested a few levels, keyed mostly by real field names.
fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map(key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object shaped like a create: each field right, wrong, or missing.
fn create_like() -> impl Strategy<Value = Value> {
    let base = valid_create();
    let fields: Vec<(String, Value)> = base
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let choices: Vec<_> = fields
        .into_iter()
        .map(|(k, v)| {
            prop_oneof![
                3 => Just(Some(v)),
                1 => json_value().prop_map(Some),
                1 => Just(None),
            ]
            .prop_map(move |v| (k.clone(), v))
        })
        .collect();
    (
        choices,
        proptest::collection::vec((key(), json_value()), 0..2),
    )
        .prop_map(|(fields, extra)| {
            let mut m = serde_json::Map::new();
            for (k, v) in fields {
                if let Some(v) = v {
                    m.insert(k, v);
                }
            }
            for (k, v) in extra {
                m.insert(k, v);
            }
            Value::Object(m)
        })
}

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Replace(Index, u8),
    /// Copies a slice of the body elsewhere (repeats structure).
    Splice(Index, Index, Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = proptest::sample::select(
        &[
            b'{', b'}', b'[', b']', b'"', b':', b',', b'\\', 0x00, 0x7f, 0x80, 0xc0, 0xc1, 0xd9,
            0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xff, b'0', b'9', b'-', b'e', b'.',
        ][..],
    );
    prop_oneof![
        (any::<Index>(), 1u8..=255).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (
            any::<Index>(),
            prop_oneof![interesting.clone(), any::<u8>()]
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Delete),
        (any::<Index>(), prop_oneof![interesting, any::<u8>()])
            .prop_map(|(i, b)| Mutation::Replace(i, b)),
        (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(a, b, c)| Mutation::Splice(a, b, c)),
    ]
}

fn mutate(mut body: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if body.is_empty() {
            body.push(b'{');
        }
        let n = body.len();
        match m {
            Mutation::Flip(i, mask) => body[i.index(n)] ^= mask,
            Mutation::Insert(i, b) => body.insert(i.index(n + 1), *b),
            Mutation::Delete(i) => {
                body.remove(i.index(n));
            }
            Mutation::Replace(i, b) => body[i.index(n)] = *b,
            Mutation::Splice(from, len, to) => {
                let start = from.index(n);
                let end = start + len.index((n - start).min(64) + 1);
                let piece = body[start..end].to_vec();
                let at = to.index(n + 1);
                body.splice(at..at, piece);
            }
        }
    }
    body
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("application/json".to_owned())),
        Just(Some("application/msgpack".to_owned())),
        Just(Some("Application/MsgPack; charset=binary".to_owned())),
        Just(Some("application/x-msgpack".to_owned())),
        Just(Some(String::new())),
        "\\PC{0,80}".prop_map(Some),
        ".{0,20}".prop_map(Some),
    ]
}

// ---- the decoders ---------------------------------------------------------

const DECODE_CODES: [&str; 3] = [
    "ORD-413-PAYLOAD_TOO_LARGE",
    "ORD-400-MALFORMED",
    "ORD-415-UNSUPPORTED_CONTENT_TYPE",
];

/// Decodes `body` for every inbound kind and checks each answer: bounded
/// allocation, a stable code, no personal value in the text; an accepted
/// create goes on through the core.
fn decode_for_every_inbound(content_type: Option<&str>, body: &[u8]) {
    for inbound in inbounds() {
        let (result, peak) =
            peak_bytes(|| wire::decode_command(&inbound, content_type, body, DEFAULT_MAX_BODY));
        assert_bounded(peak, body.len());
        match result {
            Ok(Command::Create(create)) => {
                assert!(matches!(inbound, Inbound::Create { .. }));
                create_through_core(*create, &rich_config());
            }
            Ok(command) => {
                // The subject's verb, or its form for one work order
                // (`workOrderId`), or a return added by an update.
                let (verb, subject) = (command.verb(), inbound.verb());
                assert!(
                    verb == subject
                        || verb == format!("{subject}_work_order")
                        || (verb, subject) == ("add_return", "update"),
                    "{verb} on a {subject} subject"
                );
            }
            Err(e) => check_wire_error(&e),
        }
    }
}

fn check_wire_error(e: &WireError) {
    assert!(DECODE_CODES.contains(&e.code()), "{e:?}");
    let text = e.to_string();
    assert!(!text.contains(MARKER), "{text}");
    assert!(!text.contains(MARKER_PHONE), "{text}");
    assert!(text.len() <= 512, "{} characters: {text}", text.len());
}

/// The read requests, decoded and their ids parsed.
fn decode_requests(content_type: Option<&str>, body: &[u8]) {
    let check = |r: Result<(), WireError>| {
        if let Err(e) = r {
            assert!(
                DECODE_CODES.contains(&e.code()) || e.code() == "ORD-400-BAD_TENANT",
                "{e:?}"
            );
        }
    };
    let (r, peak) = peak_bytes(|| {
        wire::decode::<OrderRequest>(content_type, body, DEFAULT_MAX_BODY)
            .and_then(|r| r.ids().map(drop))
    });
    assert_bounded(peak, body.len());
    check(r);
    let (r, peak) = peak_bytes(|| {
        wire::decode::<HistoryRequest>(content_type, body, DEFAULT_MAX_BODY)
            .and_then(|r| r.ids().map(drop))
    });
    assert_bounded(peak, body.len());
    check(r);
    let (r, peak) = peak_bytes(|| {
        wire::decode::<OutcomeRequest>(content_type, body, DEFAULT_MAX_BODY)
            .and_then(|r| r.ids().map(drop))
    });
    assert_bounded(peak, body.len());
    check(r);
    let (r, peak) = peak_bytes(|| {
        wire::decode::<QueryRequest>(content_type, body, DEFAULT_MAX_BODY)
            .and_then(|r| r.tenant().map(drop))
    });
    assert_bounded(peak, body.len());
    check(r);
}

fn msgpack(v: &Value) -> Vec<u8> {
    rmp_serde::to_vec_named(v).unwrap()
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes, with any content type, for every inbound kind.
    #[test]
    fn arbitrary_bytes_never_panic_any_decoder(
        ct in content_type(),
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        decode_for_every_inbound(ct.as_deref(), &body);
        decode_requests(ct.as_deref(), &body);
    }

    /// Arbitrary bytes that start like a body of each format, so the parsers
    /// get past the first-byte check.
    #[test]
    fn arbitrary_bytes_behind_a_valid_first_byte(
        first in proptest::sample::select(&[b'{', 0x80, 0x81, 0x8f, 0xde, 0xdf][..]),
        rest in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut body = vec![first];
        body.extend(rest);
        let ct = if first == b'{' { None } else { Some("application/msgpack") };
        decode_for_every_inbound(ct, &body);
        decode_requests(ct, &body);
    }

    /// Random JSON values, in both encodings.
    #[test]
    fn random_values_decode_alike_in_json_and_msgpack(v in json_value()) {
        let as_json = serde_json::to_vec(&v).unwrap();
        let as_msgpack = msgpack(&v);
        decode_for_every_inbound(None, &as_json);
        decode_for_every_inbound(Some("application/msgpack"), &as_msgpack);
        decode_requests(None, &as_json);
        decode_requests(Some("application/msgpack"), &as_msgpack);
    }

    /// Create-shaped bodies: each field right, wrong or missing. JSON and
    /// MessagePack must agree on whether a body is accepted, and on what.
    #[test]
    fn create_shaped_bodies_agree_across_formats(v in create_like()) {
        let inbound = Inbound::Create { tenant: tenant() };
        let j = wire::decode_command(&inbound, None, &serde_json::to_vec(&v).unwrap(), DEFAULT_MAX_BODY);
        let m = wire::decode_command(&inbound, Some("application/msgpack"), &msgpack(&v), DEFAULT_MAX_BODY);
        match (&j, &m) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(a), Err(b)) => {
                check_wire_error(a);
                check_wire_error(b);
            }
            _ => prop_assert!(false, "JSON gave {j:?}, MessagePack gave {m:?}"),
        }
        if let Ok(Command::Create(c)) = j {
            create_through_core(*c, &rich_config());
        }
    }

    /// Valid create bodies with bytes flipped, inserted, deleted or copied.
    #[test]
    fn mutated_create_bodies(
        msgpack_body in any::<bool>(),
        mutations in proptest::collection::vec(mutation(), 1..8),
    ) {
        let (ct, body) = if msgpack_body {
            (Some("application/msgpack"), msgpack(&valid_create()))
        } else {
            (None, serde_json::to_vec(&valid_create()).unwrap())
        };
        let body = mutate(body, &mutations);
        decode_for_every_inbound(ct, &body);
    }

    /// Over the limit is refused before parsing, whatever the bytes and the
    /// content type say, and without allocating for the body.
    #[test]
    fn bodies_over_the_limit_are_refused_unparsed(
        max in 0usize..256,
        extra in 1usize..64,
        ct in content_type(),
        fill in any::<u8>(),
    ) {
        let body = vec![fill; max + extra];
        for inbound in inbounds() {
            let (r, peak) = peak_bytes(|| wire::decode_command(&inbound, ct.as_deref(), &body, max));
            prop_assert_eq!(r.unwrap_err(), WireError::TooLarge { size: body.len(), max });
            prop_assert_eq!(peak, 0, "refused, yet allocated");
        }
    }

    /// Content types: only JSON and MessagePack are accepted, and an error
    /// repeats at most a short printable prefix.
    #[test]
    fn content_types(ct in "\\PC{0,100}|.{0,100}") {
        match wire::Format::from_content_type(Some(&ct)) {
            Ok(_) => {
                let media = ct.split(';').next().unwrap().trim().to_ascii_lowercase();
                prop_assert!(
                    ["", "application/json", "application/msgpack", "application/x-msgpack"]
                        .contains(&media.as_str()),
                    "{ct:?}"
                );
            }
            Err(e) => {
                prop_assert_eq!(e.code(), "ORD-415-UNSUPPORTED_CONTENT_TYPE");
                let WireError::UnsupportedContentType(shown) = &e else { unreachable!() };
                prop_assert!(shown.chars().count() <= 64);
                prop_assert!(shown.chars().all(|c| c.is_ascii_graphic() || c == ' '));
            }
        }
    }
}

/// A number reads the same in JSON as in MessagePack, to the last bit (the
/// fuzzer found 92526.02932939997 read one ULP low from JSON).
#[test]
fn json_numbers_read_exactly() {
    let inbound = Inbound::Create { tenant: tenant() };
    for x in [
        92526.02932939997_f64,
        0.1,
        1e-300,
        5e-324,
        1.7976931348623157e308,
    ] {
        let mut v = valid_create();
        v["orderSummary"]["totalWeight"] = json!(x);
        v["customAttributes"]["priority"] = json!(x);
        let from_json = wire::decode_command(
            &inbound,
            None,
            &serde_json::to_vec(&v).unwrap(),
            DEFAULT_MAX_BODY,
        )
        .unwrap();
        let from_msgpack = wire::decode_command(
            &inbound,
            Some("application/msgpack"),
            &msgpack(&v),
            DEFAULT_MAX_BODY,
        )
        .unwrap();
        assert_eq!(from_json, from_msgpack, "{x:e}");
        let Command::Create(c) = from_json else {
            unreachable!()
        };
        assert_eq!(c.summary.total_weight.map(f64::to_bits), Some(x.to_bits()));
    }
}

/// Bodies are maps at every level, and enums are given by name, in both
/// encodings (serde alone would read a nested struct from a positional array,
/// and rmp-serde a variant from its index).
#[test]
fn nested_bodies_are_maps_and_enums_are_names() {
    let inbound = Inbound::Create { tenant: tenant() };
    let refused_in_both = |v: &Value| {
        let j = wire::decode_command(
            &inbound,
            None,
            &serde_json::to_vec(v).unwrap(),
            DEFAULT_MAX_BODY,
        );
        let m = wire::decode_command(
            &inbound,
            Some("application/msgpack"),
            &msgpack(v),
            DEFAULT_MAX_BODY,
        );
        assert_eq!(j.unwrap_err().code(), "ORD-400-MALFORMED", "JSON {v}");
        assert_eq!(
            m.unwrap_err().code(),
            "ORD-400-MALFORMED",
            "MessagePack {v}"
        );
    };
    for (path, positional) in [
        ("/workOrders", json!([["DELIVERY"]])),
        (
            "/orderSummary",
            json!(["INV-1", "Two chairs", 1.5, 2, null]),
        ),
        ("/orderSummary/totalOrderCost", json!([9.5, "GBP"])),
        ("/dropDetails", json!([null, null, null, null, null, null])),
        ("/dropDetails/contact", json!([MARKER, MARKER_PHONE])),
        ("/executionFlow", json!(0)),
        ("/executionFlow", json!(2)),
        ("/executionFlow", json!({"SEQUENTIAL": null})),
    ] {
        let mut v = valid_create();
        *v.pointer_mut(path).unwrap() = positional;
        refused_in_both(&v);
    }
    // null still means absent where a field is optional.
    let mut v = valid_create();
    v["dropDetails"] = Value::Null;
    v["orderSummary"]["totalOrderCost"] = Value::Null;
    let j = wire::decode_command(
        &inbound,
        None,
        &serde_json::to_vec(&v).unwrap(),
        DEFAULT_MAX_BODY,
    );
    let m = wire::decode_command(
        &inbound,
        Some("application/msgpack"),
        &msgpack(&v),
        DEFAULT_MAX_BODY,
    );
    assert!(j.is_ok() && j == m, "{j:?} {m:?}");
    // The read service's state filter, too.
    for state in [json!(0), json!(3)] {
        let body = json!({"tenant": "acme", "state": state});
        let r = wire::decode::<QueryRequest>(
            Some("application/msgpack"),
            &msgpack(&body),
            DEFAULT_MAX_BODY,
        );
        assert_eq!(r.unwrap_err().code(), "ORD-400-MALFORMED");
    }
    let body = json!({"tenant": "acme", "state": "ON_HOLD"});
    for (ct, bytes) in [
        (None, serde_json::to_vec(&body).unwrap()),
        (Some("application/msgpack"), msgpack(&body)),
    ] {
        let r = wire::decode::<QueryRequest>(ct, &bytes, DEFAULT_MAX_BODY).unwrap();
        assert_eq!(r.state, Some(orderd_core::OrderState::OnHold));
    }
}

// ---- deep nesting ---------------------------------------------------------

fn nested_json(depth: usize) -> Vec<u8> {
    let mut s = String::from(
        r#"{"clientId":"c","clientName":"n","clientOrderId":"o","workOrders":[{"type":"DELIVERY"}],"customAttributes":{"tags":"#,
    );
    s.push_str(&"[".repeat(depth));
    s.push_str(&"]".repeat(depth));
    s.push_str("}}");
    s.into_bytes()
}

fn nested_msgpack(depth: usize) -> Vec<u8> {
    let head = json!({
        "clientId": "c", "clientName": "n", "clientOrderId": "o",
        "workOrders": [{"type": "DELIVERY"}],
    });
    let mut body = msgpack(&head);
    // Turn the 4-entry fixmap into a 5-entry one and append customAttributes.
    assert_eq!(body[0], 0x84);
    body[0] = 0x85;
    body.extend(msgpack(&json!("customAttributes")));
    body.push(0x81);
    body.extend(msgpack(&json!("tags")));
    body.extend(std::iter::repeat_n(0x91, depth.saturating_sub(1)));
    body.push(0x90);
    body
}

/// Decodes on a thread with the stack a tokio worker gets (2 MiB), so a
/// nesting that would blow the stack in the runtime blows it here.
fn decode_on_small_stack(ct: Option<&'static str>, body: Vec<u8>) -> Result<Command, WireError> {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            let inbound = Inbound::Create { tenant: tenant() };
            let r = wire::decode_command(&inbound, ct, &body, DEFAULT_MAX_BODY);
            if let Ok(Command::Create(c)) = &r {
                // The core measures the depth too (recursively): it must cope.
                create_through_core((**c).clone(), &rich_config());
            }
            r
        })
        .unwrap()
        .join()
        .expect("the decoder thread panicked or overflowed")
}

/// The deepest accepted nesting decodes, one more is refused cleanly, and a
/// body nested as deep as the size limit allows is refused without blowing
/// the stack, in both formats.
#[test]
fn deep_nesting_is_refused_cleanly() {
    // The arrays sit two levels down (body, customAttributes, tags):
    // both parsers stop at 128 levels in all.
    let deepest_ok = 127 - 2;
    for (ct, make) in [
        (None, nested_json as fn(usize) -> Vec<u8>),
        (Some("application/msgpack"), nested_msgpack),
    ] {
        let ok = decode_on_small_stack(ct, make(deepest_ok));
        assert!(matches!(ok, Ok(Command::Create(_))), "{ct:?}: {ok:?}");
        for depth in [deepest_ok + 1, deepest_ok + 2, 10_000, 120_000] {
            let err = decode_on_small_stack(ct, make(depth)).unwrap_err();
            assert_eq!(
                err.code(),
                "ORD-400-MALFORMED",
                "{ct:?} at {depth}: {err:?}"
            );
        }
    }
    // The core refuses an accepted but too deep attribute with DEPTH.
    let Ok(Command::Create(c)) = decode_on_small_stack(None, nested_json(deepest_ok)) else {
        panic!("accepted above")
    };
    let envelope = Envelope {
        tenant: tenant(),
        order_id: order_id(),
        command_id: CommandId::parse("deep").unwrap(),
        by: "fuzz".into(),
        command: Command::Create(c),
        expected_seq: None,
    };
    let config = rich_config();
    let Outcome::Refused(r) = execute(
        &Order::blank(order_id(), tenant()),
        &envelope,
        &ctx(&config),
    ) else {
        panic!("a 125-deep attribute was accepted")
    };
    assert!(r.details().iter().any(|p| p.code == "DEPTH"), "{r:?}");
}

/// Lengths declared far beyond the body (a 4 GiB string, array or map in a
/// few bytes) are refused without allocating for them.
#[test]
fn declared_lengths_beyond_the_body_allocate_nothing_for_them() {
    let inbound = Inbound::Create { tenant: tenant() };
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    for marker in [0xdb, 0xc6, 0xdd, 0xdf] {
        // {"clientId": <str32|bin32|array32|map32 of 0xffffffff>}
        let mut b = vec![0x81];
        b.extend(msgpack(&json!("clientId")));
        b.push(marker);
        b.extend([0xff; 4]);
        bodies.push(b);
        // The same, as the body itself (where the type allows it).
        bodies.push(vec![marker, 0xff, 0xff, 0xff, 0xff]);
        // Inside customAttributes, where any value is welcome.
        let mut b = vec![0x81];
        b.extend(msgpack(&json!("customAttributes")));
        b.push(0x81);
        b.extend(msgpack(&json!("meta")));
        b.push(marker);
        b.extend([0xff; 4]);
        bodies.push(b);
    }
    let mut b = vec![0xdf, 0xff, 0xff, 0xff, 0xff];
    b.extend(msgpack(&json!("workOrders")));
    b.extend([0xdd, 0xff, 0xff, 0xff, 0xff]);
    bodies.push(b);
    // The counter counts: a real body does allocate.
    let valid = msgpack(&valid_create());
    let (r, peak) = peak_bytes(|| {
        wire::decode_command(
            &inbound,
            Some("application/msgpack"),
            &valid,
            DEFAULT_MAX_BODY,
        )
    });
    assert!(r.is_ok() && peak > valid.len(), "{peak}");
    for body in bodies {
        let (r, peak) = peak_bytes(|| {
            wire::decode_command(
                &inbound,
                Some("application/msgpack"),
                &body,
                DEFAULT_MAX_BODY,
            )
        });
        assert_eq!(r.unwrap_err().code(), "ORD-400-MALFORMED", "{body:x?}");
        assert_bounded(peak, body.len());
    }
}

// ---- subjects -------------------------------------------------------------

/// Tokens that make subjects interesting: every real one, and the wrong ones.
fn subject_token() -> impl Strategy<Value = String> {
    let known: Vec<String> = [
        "orderd",
        "v1",
        "V1",
        "v2",
        "acme",
        "globex",
        "api",
        "acme_eu-1",
        "cmd",
        "job",
        "evt",
        "dispatch",
        "create",
        "67e55044-10b1-426f-9247-bb680e5fe0c8",
        "67E55044-10B1-426F-9247-BB680E5FE0C8",
        "67e5504410b1426f9247bb680e5fe0c8",
        "{67e55044-10b1-426f-9247-bb680e5fe0c8}",
        "0",
        "1",
        "007",
        "4294967295",
        "4294967296",
        "*",
        ">",
        "",
        " ",
        "a b",
        "$JS",
        "_INBOX",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain(Verb::ALL.iter().map(|v| v.as_str().to_owned()))
    .chain(JobStatus::ALL.iter().map(|s| s.as_str().to_owned()))
    .collect();
    prop_oneof![
        6 => proptest::sample::select(known),
        1 => "[A-Za-z0-9_-]{1,70}",
        1 => "\\PC{0,8}",
    ]
}

fn subject_like() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::collection::vec(subject_token(), 0..9).prop_map(|t| t.join(".")),
        // A real prefix, then anything.
        2 => (proptest::collection::vec(subject_token(), 0..5)).prop_map(|t| {
            let mut all = vec!["orderd".to_owned(), "v1".to_owned()];
            all.extend(t);
            all.join(".")
        }),
        1 => "\\PC{0,120}",
        1 => ".{0,40}",
    ]
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && !s
            .bytes()
            .any(|b| b == b'.' || b == b'*' || b == b'>' || b.is_ascii_whitespace() || b < 0x20)
}

/// The subject an `Inbound` came from, rebuilt with the builders.
fn rebuild(inbound: &Inbound) -> String {
    match inbound {
        Inbound::Create { tenant } => subjects::create(tenant),
        Inbound::Command {
            tenant,
            order,
            verb,
        } => subjects::command(tenant, *order, *verb),
        Inbound::JobUpdate {
            tenant,
            order,
            work_order,
            status,
        } => subjects::job_update(tenant, *order, *work_order, *status),
    }
}

/// A regular expression compiled once per test binary.
macro_rules! regex {
    ($re:literal) => {{
        static RE: LazyLock<regex::Regex> = LazyLock::new(|| regex::Regex::new($re).unwrap());
        &*RE
    }};
}

fn tenant_oracle(s: &str) -> bool {
    regex!("^[A-Za-z0-9_-]{1,64}$").is_match(s) && s != "api"
}

proptest! {
    #![proptest_config(config())]

    /// What parses is an inbound subject whose every token is a clean token,
    /// and the builders give back a subject that parses to the same thing.
    #[test]
    fn inbound_subjects(s in subject_like()) {
        match subjects::parse_inbound(&s) {
            Ok(inbound) => {
                prop_assert!(s.split('.').all(is_token), "{s:?}");
                let rebuilt = rebuild(&inbound);
                prop_assert_eq!(subjects::parse_inbound(&rebuilt).unwrap(), inbound.clone());
                // Equal but for the case of the UUID and zeros before the work order.
                prop_assert_eq!(rebuilt.split('.').count(), s.split('.').count());
                prop_assert!(subjects::catalogue().iter().any(|p| p.matches(&rebuilt)));
                prop_assert_eq!(inbound.tenant().as_str(), s.split('.').nth(2).unwrap());
            }
            Err(e) => {
                prop_assert!(
                    matches!(e, SubjectError::BadSubject { .. } | SubjectError::BadTenant { .. }),
                    "{e:?}"
                );
                // The subject is never echoed (it may be hostile).
                if s.len() > 8 {
                    prop_assert!(!e.to_string().contains(&s));
                }
            }
        }
    }

    /// parse_tenant accepts exactly `[A-Za-z0-9_-]{1,64}` but `api`.
    #[test]
    fn tenants(s in prop_oneof![subject_token(), "\\PC{0,80}", "[A-Za-z0-9_-]{60,70}"]) {
        let parsed = subjects::parse_tenant(&s);
        prop_assert_eq!(parsed.is_ok(), tenant_oracle(&s), "{:?}", s);
        prop_assert_eq!(TenantId::parse(&s).is_ok(), tenant_oracle(&s), "{:?}", s);
        if let Ok(t) = parsed {
            prop_assert_eq!(t.as_str(), s.as_str());
            prop_assert!(is_token(t.as_str()));
        } else {
            prop_assert_eq!(parsed.unwrap_err().code(), "ORD-400-BAD_TENANT");
        }
    }

    /// A reply subject passes only when it is a literal, printable subject
    /// outside the `$` trees and orderd's own.
    #[test]
    fn reply_subjects(s in prop_oneof![subject_like(), "_INBOX(\\.[A-Za-z0-9*>]{0,3}){0,4}"]) {
        let ok = subjects::check_reply_subject(&s).is_ok();
        let oracle = (1..=subjects::MAX_REPLY_SUBJECT_LEN).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_graphic())
            && s.split('.').all(|t| !t.is_empty() && t != "*" && t != ">")
            && !s.starts_with('$')
            && s.split('.').next() != Some("orderd");
        prop_assert_eq!(ok, oracle, "{:?}", s);
    }

    /// Ids: each parser against its own shape, and a round trip through text.
    #[test]
    fn ids(s in prop_oneof![subject_token(), "\\PC{0,140}", "[\\x21-\\x7e]{120,130}"], u in any::<u128>(), n in any::<u32>()) {
        let command_oracle = (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic());
        prop_assert_eq!(CommandId::parse(&s).is_ok(), command_oracle, "{:?}", s);

        if let Ok(id) = OrderId::parse(&s) {
            prop_assert_eq!(s.len(), 36);
            prop_assert_eq!(id.to_string(), s.to_ascii_lowercase());
            prop_assert!(is_token(&id.to_string()));
        }
        let id = OrderId(Uuid::from_u128(u));
        prop_assert_eq!(OrderId::parse(&id.to_string()).unwrap(), id);
        prop_assert!(ContactId::parse(&s).is_ok() == OrderId::parse(&s).is_ok());
        prop_assert!(LocationId::parse(&s).is_ok() == OrderId::parse(&s).is_ok());

        let wo_oracle = !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit())
            && s.parse::<u64>().is_ok_and(|v| (1..=u64::from(u32::MAX)).contains(&v));
        prop_assert_eq!(WorkOrderId::parse(&s).is_ok(), wo_oracle, "{:?}", s);
        if n > 0 {
            prop_assert_eq!(WorkOrderId::parse(&WorkOrderId(n).to_string()).unwrap(), WorkOrderId(n));
        }
    }
}

// ---- validators -----------------------------------------------------------

fn text_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9:_-]{0,70}",
        "[a-zA-Z][a-zA-Z0-9, ]{0,260}",
        "[a-zA-Z][a-zA-Z0-9,\\s]{0,20}",
        "\\PC{0,140}",
        ".{0,10}",
        "[+0-9 ()-]{0,40}",
    ]
}

fn problems_of(f: impl FnOnce(&mut Problems)) -> Vec<String> {
    fields_and_codes(f)
        .into_iter()
        .map(|(_, code)| code)
        .collect()
}

fn fields_and_codes(f: impl FnOnce(&mut Problems)) -> Vec<(String, String)> {
    let mut p = Problems::default();
    f(&mut p);
    p.0.into_iter()
        .map(|p| (p.field, p.code.to_owned()))
        .collect()
}

fn value_of_depth() -> impl Strategy<Value = Value> {
    (0usize..12, any::<bool>()).prop_map(|(depth, objects)| {
        let mut v = json!(1);
        for _ in 0..depth {
            v = if objects {
                json!({ "k": v })
            } else {
                json!([v])
            };
        }
        v
    })
}

proptest! {
    #![proptest_config(config())]

    /// The core's checks of invoiceNumber, orderDescription and the phone
    /// agree with the patterns seed 002 gives.
    #[test]
    fn field_validators_match_their_patterns(s in text_like()) {
        let invoice = regex!("^[a-zA-Z0-9:_-]{3,64}$");
        prop_assert_eq!(
            problems_of(|p| validate::invoice_number(p, &s)).is_empty(),
            invoice.is_match(&s),
            "{:?}", s
        );
        let description = regex!(r"^([a-zA-Z])([a-zA-Z0-9,\s]*)$");
        prop_assert_eq!(
            problems_of(|p| validate::order_description(p, &s)).is_empty(),
            description.is_match(&s) && s.chars().count() <= 256,
            "{:?}", s
        );
        let phone = regex!(r"^\+?[0-9 ()-]*$");
        let contact = Contact { name: "Ada".into(), phone: s.clone() };
        prop_assert_eq!(
            problems_of(|p| validate::contact(p, &contact)).is_empty(),
            phone.is_match(&s)
                && (3..=32).contains(&s.len())
                && s.bytes().filter(u8::is_ascii_digit).count() >= 3,
            "{:?}", s
        );
        let named = Contact { name: s.clone(), phone: "+44 1".into() };
        let name_ok = (1..=128).contains(&s.chars().count()) && !s.chars().any(char::is_control);
        let problems = fields_and_codes(|p| validate::contact(p, &named));
        prop_assert!(problems.iter().all(|(field, _)| field == "dropDetails.contact.name"));
        prop_assert_eq!(problems.is_empty(), name_ok, "{:?}", s);
    }

    /// Summaries, addresses and custom attributes of any shape: no panic,
    /// and every problem has a stable code.
    #[test]
    fn summaries_addresses_and_attributes(
        invoice in proptest::option::of(text_like()),
        description in proptest::option::of(text_like()),
        weight in proptest::option::of(prop_oneof![any::<f64>(), Just(f64::NAN), Just(-0.0)]),
        items in proptest::option::of(prop_oneof![0u32..=1001, any::<u32>()]),
        cost in proptest::option::of((any::<f64>(), "[A-Za-z]{0,4}")),
        address in json_value(),
        attributes in prop_oneof![
            // A few attributes of any shape...
            4 => proptest::collection::btree_map(
                prop_oneof![proptest::sample::select(&["priority", "fragile", "tags", "meta", "code", "channel", "price"][..]).prop_map(str::to_owned), "[a-z]{1,8}"],
                prop_oneof![json_value(), value_of_depth()],
                0..8,
            ),
            // ...or about as many as the limit allows, with plain values.
            1 => proptest::collection::btree_map("[a-z]{1,8}", scalar(), 60..70),
        ],
        creating in any::<bool>(),
    ) {
        let summary = OrderSummary {
            invoice_number: invoice,
            order_description: description,
            total_weight: weight,
            total_items: items,
            total_order_cost: cost.map(|(amount, currency)| Money { amount, currency }),
        };
        let codes = problems_of(|p| validate::summary(p, &summary));
        prop_assert!(codes.iter().all(|c| ["LENGTH", "PATTERN", "RANGE"].contains(&c.as_str())), "{codes:?}");
        if items.is_some_and(|n| n > 1000) {
            prop_assert!(codes.contains(&"RANGE".to_owned()));
        }
        let codes = problems_of(|p| validate::address(p, "location", &Address(address)));
        prop_assert!(codes.iter().all(|c| c == "TYPE"));
        let config = rich_config();
        let mut p = Problems::default();
        let kept = validate::custom_attributes(&mut p, &attributes, &config, creating);
        if attributes.len() > validate::MAX_CUSTOM_ATTRIBUTES {
            prop_assert!(kept.is_empty());
            prop_assert_eq!(p.0.len(), 1);
        }
        for problem in &p.0 {
            prop_assert!(
                ["TYPE", "DEPTH", "RANGE", "PATTERN", "NOT_ONE_OF", "UNKNOWN_ATTRIBUTE", "REQUIRED", "LENGTH", "BAD_SCHEMA"]
                    .contains(&problem.code),
                "{problem:?}"
            );
        }
    }
}

// ---- tenant configurations ------------------------------------------------

fn attribute_json() -> impl Strategy<Value = Value> {
    (
        prop_oneof!["[a-zA-Z]{1,33}", "\\PC{0,8}"],
        proptest::sample::select(&["string", "number", "boolean", "object", "array", "money"][..]),
        proptest::option::of(prop_oneof![
            "[a-zA-Z0-9\\[\\]{}()*+?|^$.\\\\-]{0,16}",
            Just("(a+)+$".to_owned()),
            Just("a{1000}{1000}".to_owned()),
            Just("[".to_owned()),
        ]),
        proptest::option::of((
            proptest::option::of(-10.0f64..10.0),
            proptest::option::of(-10.0f64..10.0),
        )),
        proptest::option::of(json_value()),
        proptest::option::of(proptest::collection::vec(scalar(), 0..4)),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(name, data_type, regex, range, default, one_of, required, delete)| {
                json!({
                    "name": name,
                    "dataType": data_type,
                    "validation": {
                        "required": required,
                        "regex": regex,
                        "range": range.map(|(min, max)| json!({"min": min, "max": max})),
                        "valueOneOf": one_of,
                    },
                    "defaultValue": default,
                    "delete": delete,
                })
            },
        )
}

fn tenant_config_json() -> impl Strategy<Value = Value> {
    let milestone = (
        "[a-c]{1,2}",
        proptest::sample::select(&["INITIATED", "CREATED", "IN_PROGRESS", "EXECUTED", "CLOSED"][..]),
        0u64..100_000_000_000,
        proptest::option::of("[a-c]{1,2}"),
        proptest::option::of(0u64..100_000),
    )
        .prop_map(|(name, reach, within, after, warn)| {
            json!({"name": name, "reach": reach, "withinMs": within, "after": after, "warnBeforeMs": warn})
        });
    let work_order_type = (
        "\\PC{0,6}|[A-Z]{1,10}",
        "[a-z]{0,6}|\\PC{0,4}",
        0u32..12,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(name, job, max, f, c)| {
            (name, json!({"jobType": job, "maxAttempts": max, "returnOnFailure": f, "returnOnCancel": c}))
        });
    (
        any::<u64>(),
        proptest::collection::vec(work_order_type, 0..4),
        proptest::collection::vec(attribute_json(), 0..6),
        proptest::collection::vec("[a-z]{0,3}|\\PC{0,4}", 0..4),
        proptest::collection::vec("[a-z]{1,3}", 0..4),
        proptest::option::of(any::<u64>()),
        proptest::collection::vec(milestone, 0..5),
    )
        .prop_map(
            |(version, types, attributes, sub_states, plugins, auto_close, milestones)| {
                let transitions: Vec<Value> = sub_states
                    .iter()
                    .zip(sub_states.iter().rev())
                    .map(|(a, b)| json!([a, b]))
                    .collect();
                json!({
                    "version": version,
                    "workOrderTypes": types.into_iter().collect::<BTreeMap<_, _>>(),
                    "attributes": attributes,
                    "subStates": {"CREATED": {"subStates": sub_states, "transitions": transitions}},
                    "modificationRules": {"contact": "IN_PROGRESS"},
                    "plugins": plugins,
                    "autoCloseAfterMs": auto_close,
                    "milestones": milestones,
                })
            },
        )
}

/// A create that fits most configurations, to run under a random one.
fn plain_create(kind: &str) -> CreateOrder {
    CreateOrder {
        client: Client {
            id: "c".into(),
            name: "n".into(),
        },
        client_order_id: "o".into(),
        ready_to_process: true,
        contact: None,
        location: None,
        return_location: None,
        execution_flow: ExecutionFlow::Sequential,
        summary: OrderSummary::default(),
        work_orders: vec![WorkOrderSpec {
            kind: kind.into(),
            ..Default::default()
        }],
        custom: BTreeMap::new(),
    }
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes as a tenant configuration: refused or checked.
    #[test]
    fn tenant_config_from_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(c) = serde_json::from_slice::<TenantConfig>(&body) {
            let _ = c.problems();
        }
    }

    /// Structured random configurations, and mutated ones: `problems` never
    /// panics, and a configuration it passes can run a create.
    #[test]
    fn tenant_configs(
        v in tenant_config_json(),
        mutations in proptest::collection::vec(mutation(), 0..4),
    ) {
        let body = mutate(serde_json::to_vec(&v).unwrap(), &mutations);
        let Ok(config) = serde_json::from_slice::<TenantConfig>(&body) else {
            return Ok(());
        };
        let problems = config.problems();
        for p in &problems {
            prop_assert!(!p.code.is_empty() && !p.field.is_empty(), "{p:?}");
        }
        if problems.is_empty() {
            let kind = config.work_order_types.keys().next().cloned().unwrap_or_else(|| "DELIVERY".into());
            create_through_core(plain_create(&kind), &config);
        }
    }
}

// ---- create commands through the core -------------------------------------

fn contact_input() -> impl Strategy<Value = Option<ContactInput>> {
    prop_oneof![
        Just(None),
        any::<u128>().prop_map(|u| Some(ContactInput::Id(ContactId(Uuid::from_u128(u))))),
        (
            prop_oneof![Just(MARKER.to_owned()), text_like()],
            prop_oneof![Just(MARKER_PHONE.to_owned()), text_like()]
        )
            .prop_map(|(name, phone)| Some(ContactInput::Details(Contact { name, phone }))),
    ]
}

fn location_input() -> impl Strategy<Value = Option<LocationInput>> {
    prop_oneof![
        Just(None),
        any::<u128>().prop_map(|u| Some(LocationInput::Id(LocationId(Uuid::from_u128(u))))),
        json_value().prop_map(|v| Some(LocationInput::Address(Address(v)))),
        Just(Some(LocationInput::Address(Address(
            json!({"line1": MARKER})
        )))),
    ]
}

fn create_order() -> impl Strategy<Value = CreateOrder> {
    let kind = prop_oneof![
        4 => proptest::sample::select(&["DELIVERY", "PICKUP", "INSTALL", "KYC", "RETURN"][..]).prop_map(str::to_owned),
        1 => "\\PC{0,10}",
    ];
    let custom = proptest::collection::btree_map(
        prop_oneof![
            4 => proptest::sample::select(&["priority", "fragile", "tags", "meta", "code", "channel", "price"][..]).prop_map(str::to_owned),
            1 => "[a-z]{1,8}",
        ],
        prop_oneof![json_value(), value_of_depth()],
        0..6,
    );
    (
        (text_like(), text_like(), text_like(), any::<bool>()),
        (contact_input(), location_input(), location_input()),
        proptest::sample::select(
            &[
                ExecutionFlow::Sequential,
                ExecutionFlow::StartTogether,
                ExecutionFlow::CompleteTogether,
            ][..],
        ),
        (
            proptest::option::of(text_like()),
            proptest::option::of(text_like()),
            proptest::option::of(any::<f64>()),
            proptest::option::of(0u32..1100),
        ),
        prop_oneof![
            proptest::collection::vec(kind.clone(), 0..6),
            proptest::collection::vec(kind, 45..56),
        ],
        custom,
    )
        .prop_map(
            |(
                (id, name, client_order_id, ready),
                (contact, location, return_location),
                flow,
                (invoice, description, weight, items),
                kinds,
                custom,
            )| {
                CreateOrder {
                    client: Client { id, name },
                    client_order_id,
                    ready_to_process: ready,
                    contact,
                    location,
                    return_location,
                    execution_flow: flow,
                    summary: OrderSummary {
                        invoice_number: invoice,
                        order_description: description,
                        total_weight: weight,
                        total_items: items,
                        total_order_cost: None,
                    },
                    work_orders: kinds
                        .into_iter()
                        .map(|kind| WorkOrderSpec {
                            kind,
                            ..Default::default()
                        })
                        .collect(),
                    custom,
                }
            },
        )
}

proptest! {
    #![proptest_config(config())]

    /// Structured random creates through `decide`: accepted with exactly the
    /// work orders asked for, or refused with every problem listed and no
    /// personal value in any message.
    #[test]
    fn random_creates_through_decide(create in create_order(), default_config in any::<bool>()) {
        let config = if default_config { TenantConfig::default() } else { rich_config() };
        create_through_core(create, &config);
    }
}
