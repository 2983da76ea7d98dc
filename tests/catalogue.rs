//! The subject catalogue (`subjects/orderd.asyncapi.yaml`) against the code:
//! every subject the code builds is catalogued, every catalogued subject is one
//! the code builds, and the payload schemas name the fields the wire types
//! carry. The YAML is read as text (indentation), so no YAML parser is needed.

use std::collections::BTreeSet;

use orderd::subjects::{self, EventKind, Verb};
use orderd::wire::{
    self, AddReturnBody, AttributesRequest, ConfigDraft, ConfigReply, ConfigRequest, ContactBody,
    CreateOrderBody, DispatchMessage, DropDetailsBody, DryRunReply, DryRunRequest, ErrorBody,
    EventMessage, ExecutionFlowBody, HistoryRequest, HistoryResponse, JobUpdateBody, MoneyBody,
    OrderDifference, OrderEnd, OrderRequest, OrderSummaryBody, OrderView, Outcome, PluginReply,
    PluginRequest, QueryRequest, QueryResponse, RangeBody, ReasonBody, StepDifference, StopBody,
    SubStateBody, UnreplayableOrder, UpdateDropDetailsBody, UpdateOrderBody, ValidateReply,
    WorkOrderBody,
};
use orderd_core::ids::{CommandId, Timestamp};
use orderd_core::model::{JobStatus, Order, WorkOrder, WorkOrderState};
use orderd_core::{
    Change, Event, JobAction, JobCommand, OrderId, TenantConfig, TenantId, WorkOrderId,
};
use serde::Serialize;

const CATALOGUE: &str = include_str!("../subjects/orderd.asyncapi.yaml");

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The lines of the top-level section `name:` (up to the next top-level key).
fn section<'a>(name: &str) -> Vec<&'a str> {
    let header = format!("{name}:");
    CATALOGUE
        .lines()
        .skip_while(|l| *l != header)
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' ') || l.starts_with('#'))
        .collect()
}

/// Every channel address in the catalogue; `null` (a subject the client
/// names, like the outcome's reply subject) is not a pattern and is skipped.
fn catalogue_addresses() -> BTreeSet<String> {
    section("channels")
        .into_iter()
        .filter_map(|l| l.trim().strip_prefix("address:"))
        .map(|a| a.trim().trim_matches(|c| c == '\'' || c == '"').to_owned())
        .filter(|a| a != "null")
        .collect()
}

fn code_addresses() -> BTreeSet<String> {
    subjects::catalogue()
        .into_iter()
        .map(|p| p.address)
        .collect()
}

#[test]
fn every_subject_the_code_builds_is_catalogued() {
    let missing: Vec<_> = code_addresses()
        .difference(&catalogue_addresses())
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "in the code, not in the catalogue: {missing:#?}"
    );
}

#[test]
fn every_catalogued_subject_is_one_the_code_builds() {
    let extra: Vec<_> = catalogue_addresses()
        .difference(&code_addresses())
        .cloned()
        .collect();
    assert!(
        extra.is_empty(),
        "in the catalogue, not in the code: {extra:#?}"
    );
    assert_eq!(catalogue_addresses().len(), subjects::catalogue().len());
}

#[test]
fn every_built_subject_matches_exactly_one_pattern() {
    let tenant = TenantId::parse("acme_eu-1").unwrap();
    let order = OrderId::parse("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap();
    let wo = WorkOrderId(12);
    let mut built = vec![subjects::create(&tenant)];
    built.extend(Verb::ALL.map(|v| subjects::command(&tenant, order, v)));
    built.extend(JobStatus::ALL.map(|s| subjects::job_update(&tenant, order, wo, s)));
    built.extend(JobAction::ALL.map(|a| subjects::dispatch(&tenant, order, wo, a)));
    built.extend(EventKind::ALL.map(|k| subjects::event(&tenant, order, k)));
    built.extend(subjects::DeadLetterSource::ALL.map(|s| subjects::dead_letter(&tenant, s)));
    built.extend(
        [
            subjects::API_GET,
            subjects::API_EXPLAIN,
            subjects::API_QUERY,
            subjects::API_HISTORY,
            subjects::API_HEALTH,
            subjects::API_CONFIG_GET,
            subjects::API_CONFIG_VALIDATE,
            subjects::API_CONFIG_PUBLISH,
            subjects::API_CONFIG_ATTRIBUTES,
            subjects::API_CONFIG_DRYRUN,
            subjects::API_OUTCOME,
            subjects::API_COUNTS,
            subjects::API_CONTACT,
            subjects::API_LOCATION,
            subjects::API_AUDIT,
            subjects::API_ARCHIVE,
            subjects::API_ERASE,
        ]
        .map(str::to_owned),
    );
    built.push(subjects::archive_of_order(&tenant, order));
    built.push(subjects::plugin_validate(&tenant, "fraud-check"));
    built.push(subjects::created_elsewhere(&subjects::Unit {
        tenant: tenant.clone(),
        part: 3,
    }));
    let patterns = subjects::catalogue();
    let catalogued = catalogue_addresses();
    for subject in &built {
        let matching: Vec<_> = patterns.iter().filter(|p| p.matches(subject)).collect();
        assert_eq!(matching.len(), 1, "{subject}: {matching:?}");
        assert!(catalogued.contains(&matching[0].address), "{subject}");
    }
    // And every pattern is reached by some built subject.
    for p in &patterns {
        assert!(built.iter().any(|s| p.matches(s)), "{} unused", p.address);
    }
}

/// The property names of `components.schemas.<name>` in the catalogue.
fn schema_properties(name: &str) -> BTreeSet<String> {
    let components = section("components");
    let schemas = components
        .iter()
        .position(|l| *l == "  schemas:")
        .expect("components.schemas");
    let lines = &components[schemas + 1..];
    let header = format!("    {name}:");
    let start = lines
        .iter()
        .position(|l| *l == header)
        .unwrap_or_else(|| panic!("schema {name} is not in the catalogue"));
    let body: Vec<&str> = lines[start + 1..]
        .iter()
        .take_while(|l| l.trim().is_empty() || indent(l) > 4)
        .copied()
        .collect();
    let Some(props) = body.iter().position(|l| *l == "      properties:") else {
        return BTreeSet::new();
    };
    body[props + 1..]
        .iter()
        .take_while(|l| l.trim().is_empty() || indent(l) >= 8)
        .filter(|l| indent(l) == 8)
        .filter_map(|l| l.trim().strip_suffix(':'))
        .map(str::to_owned)
        .collect()
}

/// The field names a wire value serializes with (every field, nulls included).
fn fields<T: Serialize>(value: &T) -> BTreeSet<String> {
    match serde_json::to_value(value).unwrap() {
        serde_json::Value::Object(map) => map.keys().cloned().collect(),
        other => panic!("not an object: {other}"),
    }
}

fn sample_order() -> Order {
    let mut o = Order::blank(
        OrderId::parse("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap(),
        TenantId::parse("acme").unwrap(),
    );
    o.seq = 2;
    o.work_orders.push(WorkOrder {
        id: WorkOrderId(1),
        kind: "DELIVERY".into(),
        job_type: "delivery".into(),
        max_attempts: 3,
        return_on_failure: false,
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
        details: orderd_core::model::WorkOrderDetails {
            items: vec![orderd_core::model::Item {
                id: "SKU-1".into(),
                description: "Fridge".into(),
                quantity: 1,
                weight: Some(60.0),
            }],
            instructions: Some("ring twice".into()),
            pickup: Default::default(),
            drop: Default::default(),
        },
        withdrawing: false,
        held_alone: false,
        withdrawn: false,
    });
    o
}

#[test]
fn payload_schemas_name_the_fields_the_wire_types_carry() {
    let order = sample_order();
    let view = OrderView::from(&order);
    let change = Change {
        seq: 2,
        command_id: CommandId::parse("k").unwrap(),
        command: "ready".into(),
        at: Timestamp(0),
        by: "c".into(),
        events: vec![Event::MarkedReady],
    };
    let event = EventMessage::from_change(&order, &change);
    let job = JobCommand {
        work_order: WorkOrderId(1),
        attempt: 1,
        action: JobAction::Create,
        job_type: Some("delivery".into()),
        group: None,
    };
    let summary = OrderSummaryBody {
        invoice_number: Some("INV-1".into()),
        order_description: Some("Chairs".into()),
        total_weight: Some(1.0),
        total_items: Some(1),
        total_order_cost: Some(MoneyBody {
            amount: 1.0,
            currency: "GBP".into(),
        }),
    };
    let item = orderd::wire::ItemBody {
        id: "SKU-1".into(),
        description: "Fridge".into(),
        quantity: 1,
        weight: Some(60.0),
    };
    let contact = ContactBody {
        name: "n".into(),
        phone: "p".into(),
    };
    let add_return = AddReturnBody {
        returns: std::num::NonZeroU32::MIN,
        items: Some(vec![item.clone()]),
        instructions: Some("fragile".into()),
        pickup: Some(StopBody::default()),
        drop: Some(StopBody::default()),
    };
    let create = CreateOrderBody {
        client_id: "c".into(),
        client_name: "n".into(),
        client_order_id: "o".into(),
        ready_to_process: true,
        execution_flow: ExecutionFlowBody::Sequential,
        drop_details: None,
        order_summary: None,
        work_orders: vec![WorkOrderBody {
            kind: "DELIVERY".into(),
            ..Default::default()
        }],
        custom_attributes: Default::default(),
    };
    let order_id = order.id.to_string();
    let config: TenantConfig = serde_json::from_value(serde_json::json!({
        "attributes": [{"name": "region", "dataType": "string", "indexed": true}],
        "milestones": [{"name": "started", "reach": "IN_PROGRESS", "withinMs": 1000}]
    }))
    .unwrap();
    let end = |state: &str| OrderEnd {
        state: state.into(),
        sub_state: None,
        close_reason: None,
        milestones_missed: vec![],
    };
    let dry_run = DryRunReply {
        tenant: "acme".into(),
        current_version: 2,
        checked: 2,
        replayed: 1,
        problems: vec![],
        differences: vec![OrderDifference {
            order_id: order_id.clone(),
            schema_version: 1,
            ends_differently: true,
            now: end("IN_PROGRESS"),
            draft: end("INITIATED"),
            first_difference: Some(StepDifference {
                seq: Some(1),
                command: "create".into(),
                command_id: Some("k".into()),
                at: "1970-01-01T00:00:00.000Z".into(),
                now: "applied → IN_PROGRESS".into(),
                draft: "applied → INITIATED".into(),
            }),
        }],
        unreplayable: vec![UnreplayableOrder {
            order_id: order_id.clone(),
            code: "EVENTS_EXPIRED".into(),
            reason: "…".into(),
        }],
    };
    let checks: Vec<(&str, BTreeSet<String>)> = vec![
        ("CreateOrder", fields(&create)),
        ("DropDetails", fields(&DropDetailsBody::default())),
        ("Contact", fields(&contact)),
        ("OrderSummary", fields(&summary)),
        (
            "Money",
            fields(&MoneyBody {
                amount: 1.0,
                currency: "GBP".into(),
            }),
        ),
        (
            "WorkOrderSpec",
            fields(&WorkOrderBody {
                kind: "DELIVERY".into(),
                items: vec![item.clone()],
                instructions: Some("ring twice".into()),
                pickup: Some(StopBody::default()),
                drop: Some(StopBody::default()),
            }),
        ),
        ("Item", fields(&item)),
        ("Stop", fields(&StopBody::default())),
        ("StopView", fields(&orderd::wire::StopView::default())),
        (
            "UpdateOrder",
            fields(&UpdateOrderBody {
                work_order_id: std::num::NonZeroU32::new(2),
                items: add_return.items.clone(),
                instructions: add_return.instructions.clone(),
                pickup: add_return.pickup.clone(),
                drop: add_return.drop.clone(),
                add_return: Some(add_return.clone()),
                expected_seq: Some(3),
                ..UpdateOrderBody::default()
            }),
        ),
        ("AddReturn", fields(&add_return)),
        (
            "UpdateDropDetails",
            fields(&UpdateDropDetailsBody::default()),
        ),
        (
            "Reason",
            fields(&ReasonBody {
                reason: None,
                work_order_id: std::num::NonZeroU32::new(2),
                expected_seq: Some(3),
            }),
        ),
        (
            "SubState",
            fields(&SubStateBody {
                sub_state: None,
                expected_seq: Some(3),
            }),
        ),
        (
            "Empty",
            fields(&orderd::wire::EmptyBody {
                work_order_id: std::num::NonZeroU32::new(2),
                expected_seq: Some(3),
            }),
        ),
        (
            "JobUpdate",
            fields(&JobUpdateBody {
                job_id: None,
                attempt: std::num::NonZeroU32::MIN,
                reason_code: None,
            }),
        ),
        ("Outcome", fields(&Outcome::applied(&order))),
        ("ErrorBody", fields(&ErrorBody::error("ORD-500-X", "x"))),
        ("EventMessage", fields(&event)),
        (
            "DispatchMessage",
            fields(&DispatchMessage::new(&order, &job, 2)),
        ),
        ("OrderView", fields(&view)),
        ("DropDetailsView", fields(&view.drop_details)),
        ("CancellationView", fields(&view.cancellation)),
        ("WorkOrderView", fields(&view.work_orders[0])),
        (
            "MilestoneView",
            fields(&wire::MilestoneView {
                reach: "EXECUTED".into(),
                due: "1970-01-01T00:00:00.000Z".into(),
                reached: false,
                missed: false,
            }),
        ),
        (
            "OutcomeRequest",
            fields(&orderd::wire::OutcomeRequest {
                tenant: "acme".into(),
                command_id: "k".into(),
                order_id: Some("x".into()),
            }),
        ),
        (
            "ArchiveRecord",
            fields(&orderd::archive::ArchiveRecord::new(
                &order,
                3,
                vec![event.clone()],
                0,
            )),
        ),
        (
            "EraseRequest",
            fields(&orderd::wire::EraseRequest {
                tenant: "acme".into(),
                kind: "contact".into(),
                id: order_id.clone(),
                by: "desk".into(),
            }),
        ),
        (
            "EraseReply",
            fields(&orderd::wire::EraseReply {
                tenant: "acme".into(),
                kind: "contact".into(),
                id: order_id.clone(),
                status: "ERASED".into(),
                commands_erased: 1,
                commands_left: 0,
                commands_read: 2,
            }),
        ),
        (
            "PersonalRequest",
            fields(&orderd::wire::PersonalRequest {
                tenant: "acme".into(),
                id: order_id.clone(),
                by: "dispatch".into(),
            }),
        ),
        (
            "ContactReply",
            fields(&orderd::wire::ContactReply {
                tenant: "acme".into(),
                contact_id: order_id.clone(),
                name: "n".into(),
                phone: "1".into(),
            }),
        ),
        (
            "LocationReply",
            fields(&orderd::wire::LocationReply {
                tenant: "acme".into(),
                location_id: order_id.clone(),
                address: serde_json::json!({"city": "x"}),
            }),
        ),
        (
            "AuditRequest",
            fields(&orderd::wire::AuditRequest {
                tenant: "acme".into(),
                limit: Some(5),
            }),
        ),
        (
            "AuditEntry",
            fields(&orderd::wire::AuditEntryView {
                at: "1970-01-01T00:00:00.000Z".into(),
                kind: "contact".into(),
                id: "x".into(),
                by: "d".into(),
                found: true,
            }),
        ),
        (
            "AuditResponse",
            fields(&orderd::wire::AuditResponse {
                tenant: "acme".into(),
                entries: vec![],
            }),
        ),
        (
            "CountsRequest",
            fields(&orderd::wire::CountsRequest {
                tenant: "acme".into(),
            }),
        ),
        (
            "CountsResponse",
            fields(&orderd::wire::CountsResponse {
                tenant: "acme".into(),
                states: Default::default(),
                sub_states: Default::default(),
                total: 0,
            }),
        ),
        (
            "OrderRequest",
            fields(&OrderRequest {
                tenant: "acme".into(),
                order_id: order_id.clone(),
            }),
        ),
        (
            "HistoryRequest",
            fields(&HistoryRequest {
                tenant: "acme".into(),
                order_id,
                from_seq: None,
                limit: None,
            }),
        ),
        (
            "QueryRequest",
            fields(&QueryRequest {
                tenant: "acme".into(),
                state: None,
                client_order_id: None,
                sub_state: None,
                custom_attributes: Default::default(),
                custom_attribute_ranges: Default::default(),
                created_from: None,
                created_to: None,
                limit: None,
                after: None,
            }),
        ),
        (
            "QueryResponse",
            fields(&QueryResponse {
                orders: vec![],
                next: None,
            }),
        ),
        (
            "HistoryResponse",
            fields(&HistoryResponse {
                events: vec![],
                next_seq: None,
            }),
        ),
        (
            "Explanation",
            fields(&orderd_core::explain(&order, &Default::default())),
        ),
        ("TenantConfig", fields(&config)),
        ("AttributeDef", fields(&config.attributes[0])),
        ("Milestone", fields(&config.milestones[0])),
        ("PluginPolicy", fields(&config.plugin_policy)),
        (
            "WorkOrderType",
            fields(&orderd_core::config::WorkOrderType::plain(1)),
        ),
        ("Range", fields(&RangeBody::default())),
        (
            "ConfigRequest",
            fields(&ConfigRequest {
                tenant: "acme".into(),
                version: None,
            }),
        ),
        (
            "ConfigDraft",
            fields(&ConfigDraft {
                tenant: "acme".into(),
                config: config.clone(),
                expected_version: None,
            }),
        ),
        (
            "AttributesRequest",
            fields(&AttributesRequest {
                tenant: "acme".into(),
                attributes: vec![],
                expected_version: None,
            }),
        ),
        (
            "DryRunRequest",
            fields(&DryRunRequest {
                tenant: "acme".into(),
                config: config.clone(),
                limit: None,
            }),
        ),
        (
            "ConfigReply",
            fields(&ConfigReply {
                tenant: "acme".into(),
                version: 2,
                current_version: 2,
                config: config.clone(),
                indexing: vec![],
            }),
        ),
        (
            "ValidateReply",
            fields(&ValidateReply {
                tenant: "acme".into(),
                valid: true,
                next_version: 3,
            }),
        ),
        ("DryRunReply", fields(&dry_run)),
        ("OrderDifference", fields(&dry_run.differences[0])),
        ("OrderEnd", fields(&dry_run.differences[0].now)),
        (
            "StepDifference",
            fields(dry_run.differences[0].first_difference.as_ref().unwrap()),
        ),
        ("UnreplayableOrder", fields(&dry_run.unreplayable[0])),
        (
            "PluginRequest",
            fields(&PluginRequest {
                tenant: "acme".into(),
                order_id: "o".into(),
                plugin: "p".into(),
                order: view.clone(),
            }),
        ),
        (
            "PluginReply",
            fields(&PluginReply {
                ok: false,
                reasons: vec![],
            }),
        ),
    ];
    for (schema, wire_fields) in checks {
        assert_eq!(
            schema_properties(schema),
            wire_fields,
            "schema {schema} and its wire type disagree"
        );
    }
    // Every event kind the core emits is in the Event schema's list.
    let event_schema = CATALOGUE
        .split("\n    Event:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n    EventMessage:\n").next())
        .expect("the Event schema");
    for kind in Event::KINDS {
        let listed = event_schema
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|token| token == kind);
        assert!(
            listed,
            "event kind {kind} is not in the catalogue's Event schema"
        );
    }
    // Sanity of the YAML reader itself.
    assert!(schema_properties("CommandHeaders").contains("Orderd-Reply-To"));
}

#[test]
fn the_catalogue_names_the_headers_and_streams() {
    for name in [
        orderd::headers::NATS_MSG_ID,
        orderd::headers::CONTENT_TYPE,
        orderd::headers::ORDERD_REPLY_TO,
        orderd::headers::ORDERD_ERROR_CODE,
        orderd::headers::ORDERD_SEQ,
        orderd::headers::NATS_SERVICE_ERROR,
        orderd::headers::NATS_SERVICE_ERROR_CODE,
        orderd::headers::MSGPACK,
        orderd::headers::ORDERD_ERROR,
        orderd::headers::ORDERD_DLQ_SUBJECT,
        orderd::headers::ORDERD_DLQ_SOURCE,
        orderd::headers::ORDERD_DLQ_DELIVERIES,
        orderd::headers::ORDERD_DLQ_MSG_ID,
        orderd::headers::TRACEPARENT,
    ] {
        assert!(CATALOGUE.contains(name), "{name}");
    }
    for (stream, filter) in subjects::STREAMS {
        assert!(CATALOGUE.contains(stream), "{stream}");
        assert!(CATALOGUE.contains(filter), "{filter}");
    }
    assert!(CATALOGUE.contains("asyncapi: 3.0.0"));
    // Both encodings of a catalogued payload decode alike.
    let body = br#"{"subState":null}"#;
    let inbound = subjects::parse_inbound(&subjects::command(
        &TenantId::parse("acme").unwrap(),
        OrderId::parse("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap(),
        Verb::SubState,
    ))
    .unwrap();
    assert!(wire::decode_command(&inbound, None, body, wire::DEFAULT_MAX_BODY).is_ok());
}
