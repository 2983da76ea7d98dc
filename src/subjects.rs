//! Every NATS subject orderd builds or reads, and nothing else: no other module
//! formats a subject. The catalogue in `subjects/orderd.asyncapi.yaml` mirrors
//! [`catalogue`], and `tests/catalogue.rs` proves the two agree.
//!
//! The trees, each captured by one JetStream stream:
//!
//! | subject | stream | who publishes |
//! | --- | --- | --- |
//! | `orderd.v1.<tenant>.cmd.create` | [`STREAM_COMMANDS`] | clients |
//! | `orderd.v1.<tenant>.cmd.<orderId>.<verb>` | [`STREAM_COMMANDS`] | clients |
//! | `orderd.v1.<tenant>.job.<orderId>.<workOrderId>.<status>` | [`STREAM_JOBS`] | dispatch |
//! | `orderd.v1.<tenant>.dispatch.<orderId>.<workOrderId>.<action>` | [`STREAM_DISPATCH`] | orderd |
//! | `orderd.v1.<tenant>.evt.<orderId>.<kind>` | [`STREAM_EVENTS`] | orderd |
//! | `orderd.v1.<tenant>.dlq.<source>` | [`STREAM_DEAD_LETTERS`] | orderd |
//!
//! Reads are NATS Services API endpoints of the service [`SERVICE_NAME`] on
//! fixed subjects ([`API_GET`], [`API_EXPLAIN`], [`API_QUERY`], [`API_HISTORY`]):
//! the Services API cannot serve a wildcard endpoint, so the tenant travels in
//! the request body, not in the subject. Fence reads with per-endpoint
//! permissions, not per-tenant ones.
//!
//! Invariants: the version token is [`VERSION`]; the tenant is always the third
//! token; ids are printed by their own `Display`, which is always one valid
//! subject token. The tenant token [`RESERVED_TENANT`] is refused on the way in,
//! because `orderd.v1.api.>` is the read service's tree: a tenant granted its
//! own `orderd.v1.<tenant>.>` must never reach it.

use std::fmt;

use orderd_core::model::{JobStatus, OrderState};
use orderd_core::{Change, JobAction, OrderId, TenantId, WorkOrderId};

/// The first token of every orderd subject.
pub const ROOT: &str = "orderd";
/// The version token of every subject.
pub const VERSION: &str = "v1";

/// The JetStream stream that captures client commands.
pub const STREAM_COMMANDS: &str = "ORDERD_CMD";
/// The JetStream stream that captures job updates from dispatch.
pub const STREAM_JOBS: &str = "ORDERD_JOB";
/// The JetStream stream that captures job commands for dispatch.
pub const STREAM_DISPATCH: &str = "ORDERD_DISPATCH";
/// The JetStream stream that captures order events.
pub const STREAM_EVENTS: &str = "ORDERD_EVT";

/// The JetStream stream that keeps dead letters: commands and job updates
/// that kept failing until their last delivery.
pub const STREAM_DEAD_LETTERS: &str = "ORDERD_DLQ";

/// The subject filter of [`STREAM_COMMANDS`].
pub const FILTER_COMMANDS: &str = "orderd.v1.*.cmd.>";
/// The subject filter of [`STREAM_JOBS`].
pub const FILTER_JOBS: &str = "orderd.v1.*.job.>";
/// The subject filter of [`STREAM_DISPATCH`].
pub const FILTER_DISPATCH: &str = "orderd.v1.*.dispatch.>";
/// The subject filter of [`STREAM_EVENTS`].
pub const FILTER_EVENTS: &str = "orderd.v1.*.evt.>";

/// The subject filter of [`STREAM_DEAD_LETTERS`].
pub const FILTER_DEAD_LETTERS: &str = "orderd.v1.*.dlq.>";

/// The JetStream stream that keeps archived orders: one record per order
/// that left the live store after its tenant's retention.
pub const STREAM_ARCHIVE: &str = "ORDERD_ARCHIVE";
/// The subject filter of [`STREAM_ARCHIVE`].
pub const FILTER_ARCHIVE: &str = "orderd.v1.*.archive.>";

/// Every stream orderd needs, as (name, subject filter).
pub const STREAMS: [(&str, &str); 6] = [
    (STREAM_COMMANDS, FILTER_COMMANDS),
    (STREAM_JOBS, FILTER_JOBS),
    (STREAM_DISPATCH, FILTER_DISPATCH),
    (STREAM_EVENTS, FILTER_EVENTS),
    (STREAM_DEAD_LETTERS, FILTER_DEAD_LETTERS),
    (STREAM_ARCHIVE, FILTER_ARCHIVE),
];

/// The JetStream key-value bucket where each live instance announces itself
/// (`<prefix>_members`, one key per instance id, expiring unless renewed).
pub fn members_bucket(consumer_prefix: &str) -> String {
    format!("{consumer_prefix}_members")
}

/// The JetStream key-value bucket of the tenants' owners
/// (`<prefix>_owners`, one key per tenant, its value the owning instance's
/// id, expiring unless renewed).
pub fn owners_bucket(consumer_prefix: &str) -> String {
    format!("{consumer_prefix}_owners")
}

/// Where a dead letter came from: the intake stream whose message it was
/// (the last token of its subject).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeadLetterSource {
    /// A client command ([`STREAM_COMMANDS`]).
    Command,
    /// A job update from dispatch ([`STREAM_JOBS`]).
    JobUpdate,
}

impl DeadLetterSource {
    /// Both sources.
    pub const ALL: [DeadLetterSource; 2] = [DeadLetterSource::Command, DeadLetterSource::JobUpdate];

    /// The subject token.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterSource::Command => "cmd",
            DeadLetterSource::JobUpdate => "job",
        }
    }

    /// The source of a message read from `stream`.
    pub fn of_stream(stream: &str) -> DeadLetterSource {
        if stream == STREAM_JOBS {
            DeadLetterSource::JobUpdate
        } else {
            DeadLetterSource::Command
        }
    }
}

/// The subject filter of a stream, by the stream's name.
pub fn stream_filter(stream: &str) -> Option<&'static str> {
    STREAMS
        .iter()
        .find(|(name, _)| *name == stream)
        .map(|(_, filter)| *filter)
}

/// The Services API name of orderd's read service.
pub const SERVICE_NAME: &str = "orderd";
/// The Services API group all read endpoints live under.
pub const API_GROUP: &str = "orderd.v1.api";
/// Endpoint name of `get`: one order, as an `OrderView`.
pub const API_GET_ENDPOINT: &str = "get";
/// Endpoint name of `explain`: what an order waits for and accepts.
pub const API_EXPLAIN_ENDPOINT: &str = "explain";
/// Endpoint name of `query`: orders by state and indexed attributes.
pub const API_QUERY_ENDPOINT: &str = "query";
/// Endpoint name of `history`: the event messages of one order.
pub const API_HISTORY_ENDPOINT: &str = "history";
/// Endpoint name of `health`: whether orderd can reach Redis and NATS.
pub const API_HEALTH_ENDPOINT: &str = "health";
/// The `outcome` endpoint's name.
pub const API_OUTCOME_ENDPOINT: &str = "outcome";
/// Endpoint name of `counts`: a tenant's orders per state and sub-state.
pub const API_COUNTS_ENDPOINT: &str = "counts";
/// Endpoint name of `contact`: a contact the tenant's orders stored, by id (audited).
pub const API_CONTACT_ENDPOINT: &str = "contact";
/// Endpoint name of `location`: an address the tenant's orders stored, by id (audited).
pub const API_LOCATION_ENDPOINT: &str = "location";
/// Endpoint name of `audit`: the tenant's latest reads of personal data.
pub const API_AUDIT_ENDPOINT: &str = "audit";
/// Endpoint name of `archive`: an archived order, read back.
pub const API_ARCHIVE_ENDPOINT: &str = "archive";
/// Endpoint name of `erase`: a contact or location erased everywhere.
pub const API_ERASE_ENDPOINT: &str = "erase";
/// Subject of the `get` endpoint (group + endpoint name).
pub const API_GET: &str = "orderd.v1.api.get";
/// Subject of the `explain` endpoint.
pub const API_EXPLAIN: &str = "orderd.v1.api.explain";
/// Subject of the `query` endpoint.
pub const API_QUERY: &str = "orderd.v1.api.query";
/// Subject of the `history` endpoint.
pub const API_HISTORY: &str = "orderd.v1.api.history";
/// Subject of the `health` endpoint.
pub const API_HEALTH: &str = "orderd.v1.api.health";
/// Whether a command (by its `Nats-Msg-Id`) was applied, and the order it left.
pub const API_OUTCOME: &str = "orderd.v1.api.outcome";
/// Subject of the `counts` endpoint.
pub const API_COUNTS: &str = "orderd.v1.api.counts";
/// Subject of the `contact` endpoint.
pub const API_CONTACT: &str = "orderd.v1.api.contact";
/// Subject of the `location` endpoint.
pub const API_LOCATION: &str = "orderd.v1.api.location";
/// Subject of the `audit` endpoint.
pub const API_AUDIT: &str = "orderd.v1.api.audit";
/// Subject of the `archive` endpoint.
pub const API_ARCHIVE: &str = "orderd.v1.api.archive";
/// Subject of the `erase` endpoint.
pub const API_ERASE: &str = "orderd.v1.api.erase";
/// Every read endpoint, as (endpoint name, full subject).
pub const API_ENDPOINTS: [(&str, &str); 12] = [
    (API_GET_ENDPOINT, API_GET),
    (API_EXPLAIN_ENDPOINT, API_EXPLAIN),
    (API_QUERY_ENDPOINT, API_QUERY),
    (API_HISTORY_ENDPOINT, API_HISTORY),
    (API_HEALTH_ENDPOINT, API_HEALTH),
    (API_OUTCOME_ENDPOINT, API_OUTCOME),
    (API_COUNTS_ENDPOINT, API_COUNTS),
    (API_CONTACT_ENDPOINT, API_CONTACT),
    (API_LOCATION_ENDPOINT, API_LOCATION),
    (API_AUDIT_ENDPOINT, API_AUDIT),
    (API_ARCHIVE_ENDPOINT, API_ARCHIVE),
    (API_ERASE_ENDPOINT, API_ERASE),
];

/// Endpoint name of `config.get`: a tenant's configuration (current or a version).
pub const API_CONFIG_GET_ENDPOINT: &str = "config_get";
/// Endpoint name of `config.validate`: checks a draft, stores nothing.
pub const API_CONFIG_VALIDATE_ENDPOINT: &str = "config_validate";
/// Endpoint name of `config.publish`: a whole draft becomes the next version.
pub const API_CONFIG_PUBLISH_ENDPOINT: &str = "config_publish";
/// Endpoint name of `config.attributes`: seed 002's `POST /config/attributes`.
pub const API_CONFIG_ATTRIBUTES_ENDPOINT: &str = "config_attributes";
/// Endpoint name of `config.dryrun`: what a draft would change for recent orders.
pub const API_CONFIG_DRYRUN_ENDPOINT: &str = "config_dryrun";
/// Subject of the `config.get` endpoint.
pub const API_CONFIG_GET: &str = "orderd.v1.api.config.get";
/// Subject of the `config.validate` endpoint.
pub const API_CONFIG_VALIDATE: &str = "orderd.v1.api.config.validate";
/// Subject of the `config.publish` endpoint.
pub const API_CONFIG_PUBLISH: &str = "orderd.v1.api.config.publish";
/// Subject of the `config.attributes` endpoint.
pub const API_CONFIG_ATTRIBUTES: &str = "orderd.v1.api.config.attributes";
/// Subject of the `config.dryrun` endpoint.
pub const API_CONFIG_DRYRUN: &str = "orderd.v1.api.config.dryrun";
/// Every configuration endpoint, as (endpoint name, full subject).
pub const API_CONFIG_ENDPOINTS: [(&str, &str); 5] = [
    (API_CONFIG_GET_ENDPOINT, API_CONFIG_GET),
    (API_CONFIG_VALIDATE_ENDPOINT, API_CONFIG_VALIDATE),
    (API_CONFIG_PUBLISH_ENDPOINT, API_CONFIG_PUBLISH),
    (API_CONFIG_ATTRIBUTES_ENDPOINT, API_CONFIG_ATTRIBUTES),
    (API_CONFIG_DRYRUN_ENDPOINT, API_CONFIG_DRYRUN),
];

/// The tenant token no tenant may use: it is the read service's subject tree.
pub const RESERVED_TENANT: &str = "api";

/// A client command on an existing order (the last token of its subject).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    /// Change updatable attributes.
    Update,
    /// Set readyToProcess to true.
    Ready,
    /// Put the order on hold.
    Hold,
    /// Resume a held order.
    Resume,
    /// Cancel the order.
    Cancel,
    /// Close an executed order.
    Close,
    /// Set the tenant sub-state.
    SubState,
}

impl Verb {
    /// Every verb, in subject-catalogue order.
    pub const ALL: [Verb; 7] = [
        Verb::Update,
        Verb::Ready,
        Verb::Hold,
        Verb::Resume,
        Verb::Cancel,
        Verb::Close,
        Verb::SubState,
    ];

    /// The subject token (and the command's verb in logs and events).
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Update => "update",
            Verb::Ready => "ready",
            Verb::Hold => "hold",
            Verb::Resume => "resume",
            Verb::Cancel => "cancel",
            Verb::Close => "close",
            Verb::SubState => "substate",
        }
    }

    /// The verb named by a subject token.
    pub fn parse(token: &str) -> Option<Verb> {
        Verb::ALL.into_iter().find(|v| v.as_str() == token)
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The last token of an event subject: the state a change moved the order to,
/// or `changed` when the change left the state where it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// The order reached INITIATED (it was registered).
    Initiated,
    /// The order reached CREATED.
    Created,
    /// The order reached IN_PROGRESS.
    InProgress,
    /// The order reached ON_HOLD.
    OnHold,
    /// The order reached EXECUTED.
    Executed,
    /// The order reached CLOSED.
    Closed,
    /// The order changed without changing state.
    Changed,
}

impl EventKind {
    /// Every kind, in lifecycle order, `changed` last.
    pub const ALL: [EventKind; 7] = [
        EventKind::Initiated,
        EventKind::Created,
        EventKind::InProgress,
        EventKind::OnHold,
        EventKind::Executed,
        EventKind::Closed,
        EventKind::Changed,
    ];

    /// The kind of the event message a change publishes.
    pub fn of(change: &Change) -> EventKind {
        change
            .state_reached()
            .map_or(EventKind::Changed, EventKind::reached)
    }

    /// The kind for a change that moved the order to `state`.
    pub fn reached(state: OrderState) -> EventKind {
        match state {
            OrderState::Initiated => EventKind::Initiated,
            OrderState::Created => EventKind::Created,
            OrderState::InProgress => EventKind::InProgress,
            OrderState::OnHold => EventKind::OnHold,
            OrderState::Executed => EventKind::Executed,
            OrderState::Closed => EventKind::Closed,
        }
    }

    /// The subject token.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Initiated => "initiated",
            EventKind::Created => "created",
            EventKind::InProgress => "in_progress",
            EventKind::OnHold => "on_hold",
            EventKind::Executed => "executed",
            EventKind::Closed => "closed",
            EventKind::Changed => "changed",
        }
    }

    /// The kind named by a subject token.
    pub fn parse(token: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == token)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// The token layouts, shared by the builders (with real ids) and by the
// catalogue (with `{placeholders}`), so the two cannot drift apart.

fn create_layout(tenant: &str) -> String {
    format!("{ROOT}.{VERSION}.{tenant}.cmd.create")
}

fn command_layout(tenant: &str, order: &str, verb: &str) -> String {
    format!("{ROOT}.{VERSION}.{tenant}.cmd.{order}.{verb}")
}

fn job_layout(tenant: &str, order: &str, work_order: &str, status: &str) -> String {
    format!("{ROOT}.{VERSION}.{tenant}.job.{order}.{work_order}.{status}")
}

fn dispatch_layout(tenant: &str, order: &str, work_order: &str, action: &str) -> String {
    format!("{ROOT}.{VERSION}.{tenant}.dispatch.{order}.{work_order}.{action}")
}

fn plugin_layout(tenant: &str, plugin: &str) -> String {
    format!("{ROOT}.{VERSION}.{tenant}.plugin.{plugin}.validate")
}

/// The request subject of a tenant's validation plugin (a NATS service);
/// `plugin` is a configured name, `[A-Za-z0-9_-]{1,64}`.
pub fn plugin_validate(tenant: &TenantId, plugin: &str) -> String {
    plugin_layout(tenant.as_str(), plugin)
}

fn event_layout(tenant: &str, order: &str, kind: &str) -> String {
    format!("{ROOT}.{VERSION}.{tenant}.evt.{order}.{kind}")
}

fn dead_letter_layout(tenant: &str, source: &str) -> String {
    format!("{ROOT}.{VERSION}.{tenant}.dlq.{source}")
}

/// The subject a message that kept failing is dead-lettered to.
pub fn dead_letter(tenant: &TenantId, source: DeadLetterSource) -> String {
    dead_letter_layout(tenant.as_str(), source.as_str())
}

/// Every dead letter of one tenant: `orderd.v1.<tenant>.dlq.>`.
pub fn dead_letters_of_tenant(tenant: &TenantId) -> String {
    format!("{ROOT}.{VERSION}.{tenant}.dlq.>")
}

/// The subject a client publishes a new order to.
pub fn create(tenant: &TenantId) -> String {
    create_layout(tenant.as_str())
}

/// The subject of a command on an existing order.
pub fn command(tenant: &TenantId, order: OrderId, verb: Verb) -> String {
    command_layout(tenant.as_str(), &order.to_string(), verb.as_str())
}

/// The subject dispatch publishes a job update to.
pub fn job_update(
    tenant: &TenantId,
    order: OrderId,
    work_order: WorkOrderId,
    status: JobStatus,
) -> String {
    job_layout(
        tenant.as_str(),
        &order.to_string(),
        &work_order.to_string(),
        status.as_str(),
    )
}

/// The subject orderd publishes a job command for dispatch to.
pub fn dispatch(
    tenant: &TenantId,
    order: OrderId,
    work_order: WorkOrderId,
    action: JobAction,
) -> String {
    dispatch_layout(
        tenant.as_str(),
        &order.to_string(),
        &work_order.to_string(),
        action.as_str(),
    )
}

/// The subject orderd publishes an order's event message to.
pub fn event(tenant: &TenantId, order: OrderId, kind: EventKind) -> String {
    event_layout(tenant.as_str(), &order.to_string(), kind.as_str())
}

/// Every event of one tenant: `orderd.v1.<tenant>.evt.>`.
pub fn events_of_tenant(tenant: &TenantId) -> String {
    format!("{ROOT}.{VERSION}.{tenant}.evt.>")
}

/// Every event of one order: `orderd.v1.<tenant>.evt.<orderId>.*` (its history).
pub fn events_of_order(tenant: &TenantId, order: OrderId) -> String {
    event_layout(tenant.as_str(), &order.to_string(), "*")
}

/// Every event of every tenant (the same as [`FILTER_EVENTS`]).
pub fn all_events() -> &'static str {
    FILTER_EVENTS
}

/// Every job command for one tenant's dispatch: `orderd.v1.<tenant>.dispatch.>`.
pub fn dispatch_of_tenant(tenant: &TenantId) -> String {
    format!("{ROOT}.{VERSION}.{tenant}.dispatch.>")
}

/// Every command of one tenant: `orderd.v1.<tenant>.cmd.>` (for permissions).
pub fn commands_of_tenant(tenant: &TenantId) -> String {
    format!("{ROOT}.{VERSION}.{tenant}.cmd.>")
}

/// The archive record of one order:
/// `orderd.v1.<tenant>.archive.<orderId>` ([`STREAM_ARCHIVE`]).
pub fn archive_of_order(tenant: &TenantId, order: OrderId) -> String {
    archive_layout(tenant.as_str(), &order.to_string())
}

fn archive_layout(tenant: &str, order: &str) -> String {
    format!("{ROOT}.{VERSION}.{tenant}.archive.{order}")
}

/// Every order update of one tenant: `orderd.v1.<tenant>.cmd.*.update`.
pub fn updates_of_tenant(tenant: &TenantId) -> String {
    format!("{ROOT}.{VERSION}.{tenant}.cmd.*.{}", Verb::Update.as_str())
}

/// Every job update of one tenant: `orderd.v1.<tenant>.job.>` (for permissions).
pub fn job_updates_of_tenant(tenant: &TenantId) -> String {
    format!("{ROOT}.{VERSION}.{tenant}.job.>")
}

/// The partition of `order` among `parts`: FNV-1a (32 bits) of the order id
/// as its subjects print it, modulo `parts`. This is what nats-server's
/// `partition()` subject transform computes for that token, so the stream
/// stores every command and job update of an order under the partition
/// this names (`tests/partitions.rs` checks the two agree). Always 0 for
/// one partition.
pub fn partition_of(order: OrderId, parts: u16) -> u16 {
    partition_of_token(&order.to_string(), parts)
}

fn partition_of_token(token: &str, parts: u16) -> u16 {
    if parts <= 1 {
        return 0;
    }
    let mut h: u32 = 0x811c_9dc5;
    for b in token.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    u16::try_from(h % u32::from(parts)).unwrap_or(0)
}

/// A unit of ownership: one partition of one tenant's orders (the whole
/// tenant when its orders are in one partition). Each unit's commands and
/// job updates are read through its own two lanes and decided by one
/// instance at a time. Creates (whose subject names no order) arrive on
/// partition 0's lane and are decided there ([`created_elsewhere`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Unit {
    /// The tenant.
    pub tenant: TenantId,
    /// The partition, from 0.
    pub part: u16,
}

impl Unit {
    /// Partition 0 of `tenant` (all of it when it has one partition).
    pub fn first(tenant: &TenantId) -> Unit {
        Unit {
            tenant: tenant.clone(),
            part: 0,
        }
    }

    /// The unit `order` of `tenant` belongs to, among `parts` partitions.
    pub fn of(tenant: &TenantId, order: OrderId, parts: u16) -> Unit {
        Unit {
            tenant: tenant.clone(),
            part: partition_of(order, parts),
        }
    }

    /// Every unit of `tenant`, among `parts` partitions.
    pub fn all(tenant: &TenantId, parts: u16) -> impl Iterator<Item = Unit> + '_ {
        (0..parts.max(1)).map(move |part| Unit {
            tenant: tenant.clone(),
            part,
        })
    }

    /// Reads a unit back from its [`fmt::Display`] form.
    pub fn parse(text: &str) -> Option<Unit> {
        let (tenant, part) = match text.split_once('.') {
            Some((t, p)) => (t, p.parse().ok().filter(|p| *p > 0)?),
            None => (text, 0),
        };
        Some(Unit {
            tenant: TenantId::parse(tenant).ok()?,
            part,
        })
    }
}

/// `<tenant>` for partition 0, `<tenant>.<partition>` for the others: the
/// owners bucket's key (so one partition keeps the key of a whole tenant).
impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.part == 0 {
            write!(f, "{}", self.tenant)
        } else {
            write!(f, "{}.{}", self.tenant, self.part)
        }
    }
}

/// The durable name of `unit`'s lane on the stream whose consumers `token`
/// names (`cmd` or `job`): `<prefix>-<token>_<tenant>` for partition 0 (a
/// whole tenant's), `<prefix>-<token>_<tenant>@<partition>` for the others.
pub fn lane_consumer(prefix: &str, token: &str, unit: &Unit) -> String {
    let base = format!("{prefix}-{token}_{}", unit.tenant);
    if unit.part == 0 {
        base
    } else {
        format!("{base}@{}", unit.part)
    }
}

/// The unit whose lane `name` is ([`lane_consumer`]), if it is one.
pub fn lane_consumer_unit(prefix: &str, token: &str, name: &str) -> Option<Unit> {
    let rest = name.strip_prefix(&format!("{prefix}-{token}_"))?;
    let (tenant, part) = match rest.split_once('@') {
        Some((t, p)) => (t, p.parse().ok().filter(|p| *p > 0)?),
        None => (rest, 0),
    };
    Some(Unit {
        tenant: TenantId::parse(tenant).ok()?,
        part,
    })
}

/// The subject transform of the commands stream when orders are spread
/// over `parts` partitions (source, destination): a command on an order,
/// `orderd.v1.<tenant>.cmd.<orderId>.<verb>`, is stored as
/// `orderd.v1.<tenant>.pc.<partition>.<orderId>.<verb>`. A create (one
/// token shorter) and any other subject are stored as sent. The stored
/// token `pc` lies outside what the stream captures, so no client can
/// publish into a partition directly.
pub fn commands_transform(parts: u16) -> (String, String) {
    (
        format!("{ROOT}.{VERSION}.*.cmd.*.*"),
        format!(
            "{ROOT}.{VERSION}.{{{{wildcard(1)}}}}.pc.{{{{partition({parts},2)}}}}.{{{{wildcard(2)}}}}.{{{{wildcard(3)}}}}"
        ),
    )
}

/// The subject transform of the job updates stream (source, destination):
/// `orderd.v1.<tenant>.job.<orderId>.<workOrderId>.<status>` is stored as
/// `orderd.v1.<tenant>.pj.<partition>.<orderId>.<workOrderId>.<status>`.
pub fn job_updates_transform(parts: u16) -> (String, String) {
    (
        format!("{ROOT}.{VERSION}.*.job.*.*.*"),
        format!(
            "{ROOT}.{VERSION}.{{{{wildcard(1)}}}}.pj.{{{{partition({parts},2)}}}}.{{{{wildcard(2)}}}}.{{{{wildcard(3)}}}}.{{{{wildcard(4)}}}}"
        ),
    )
}

/// What one unit's lane on the commands stream (`commands: true`) or the
/// job updates stream reads, among `parts` partitions: with one
/// partition, every subject of the tenant; with more, the unit's stored
/// partition, and for partition 0 also what the transform leaves as sent
/// (creates, subjects that are not a command, and anything stored before
/// the transform).
pub fn lane_filters(unit: &Unit, parts: u16, commands: bool) -> Vec<String> {
    let tenant = &unit.tenant;
    let (sent, stored) = if commands {
        (commands_of_tenant(tenant), "pc")
    } else {
        (job_updates_of_tenant(tenant), "pj")
    };
    if parts <= 1 {
        return vec![sent];
    }
    let mut filters = vec![format!(
        "{ROOT}.{VERSION}.{tenant}.{stored}.{}.>",
        unit.part
    )];
    if unit.part == 0 {
        filters.push(sent);
    }
    filters
}

/// A stored subject in the form its sender published it: the transform's
/// `pc.<partition>` and `pj.<partition>` back to `cmd` and `job` (a
/// dead letter names the subject to publish again).
pub fn as_sent(stored: &str) -> String {
    let tokens: Vec<&str> = stored.split('.').collect();
    let tree = match tokens.get(3) {
        Some(&"pc") => "cmd",
        Some(&"pj") => "job",
        _ => return stored.to_owned(),
    };
    if tokens.len() < 6 {
        return stored.to_owned();
    }
    let mut out: Vec<&str> = tokens[..3].to_vec();
    out.push(tree);
    out.extend(&tokens[5..]);
    out.join(".")
}

/// Where a new order is announced to the owner of its partition: creates
/// arrive on the lane of the tenant's partition 0 and are decided there,
/// and the order's own owner then loads it (to ask its validation
/// plugins). Core NATS request and reply, served by the unit's owner
/// while it owns it; outside every tenant's tree, so no tenant can reach
/// it.
pub fn created_elsewhere(unit: &Unit) -> String {
    created_elsewhere_layout(unit.tenant.as_str(), &unit.part.to_string())
}

fn created_elsewhere_layout(tenant: &str, part: &str) -> String {
    format!("{ROOT}._int.{VERSION}.{tenant}.{part}.created")
}

/// Every stored order update of one tenant once its commands are
/// partitioned: `orderd.v1.<tenant>.pc.*.*.update`.
pub fn stored_updates_of_tenant(tenant: &TenantId) -> String {
    format!("{ROOT}.{VERSION}.{tenant}.pc.*.*.{}", Verb::Update.as_str())
}

/// Why a subject was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// Not an orderd v1 inbound subject (wrong root, version, tree, verb,
    /// status, id or token count). The subject text is not echoed: it may be
    /// hostile; log it yourself where it is safe to.
    #[error("not an orderd {VERSION} inbound subject: {reason}")]
    BadSubject {
        /// What is wrong, in plain words.
        reason: &'static str,
    },
    /// The tenant token is not `[A-Za-z0-9_-]{1,64}`, or is reserved.
    #[error("bad tenant token ({len} characters): {reason}")]
    BadTenant {
        /// Its length.
        len: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A reply subject that orderd will not publish to.
    #[error("bad reply subject: {reason}")]
    BadReplySubject {
        /// What is wrong.
        reason: &'static str,
    },
}

impl SubjectError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            SubjectError::BadSubject { .. } => "ORD-400-BAD_SUBJECT",
            SubjectError::BadTenant { .. } => "ORD-400-BAD_TENANT",
            SubjectError::BadReplySubject { .. } => "ORD-400-BAD_REPLY_SUBJECT",
        }
    }
}

fn bad(reason: &'static str) -> SubjectError {
    SubjectError::BadSubject { reason }
}

/// What an inbound subject says: which tenant, order and command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// `orderd.v1.<tenant>.cmd.create`.
    Create {
        /// The tenant.
        tenant: TenantId,
    },
    /// `orderd.v1.<tenant>.cmd.<orderId>.<verb>`.
    Command {
        /// The tenant.
        tenant: TenantId,
        /// The order.
        order: OrderId,
        /// The verb.
        verb: Verb,
    },
    /// `orderd.v1.<tenant>.job.<orderId>.<workOrderId>.<status>`.
    JobUpdate {
        /// The tenant.
        tenant: TenantId,
        /// The order.
        order: OrderId,
        /// The work order.
        work_order: WorkOrderId,
        /// The job status.
        status: JobStatus,
    },
}

impl Inbound {
    /// The tenant the subject names.
    pub fn tenant(&self) -> &TenantId {
        match self {
            Inbound::Create { tenant }
            | Inbound::Command { tenant, .. }
            | Inbound::JobUpdate { tenant, .. } => tenant,
        }
    }

    /// The order the subject names; `None` for a create (its id is derived
    /// from the idempotency key, see `wire::order_id_for_create`).
    pub fn order(&self) -> Option<OrderId> {
        match self {
            Inbound::Create { .. } => None,
            Inbound::Command { order, .. } | Inbound::JobUpdate { order, .. } => Some(*order),
        }
    }

    /// The command's verb as in logs (`create`, `hold`, …, `job`).
    pub fn verb(&self) -> &'static str {
        match self {
            Inbound::Create { .. } => "create",
            Inbound::Command { verb, .. } => verb.as_str(),
            Inbound::JobUpdate { .. } => "job",
        }
    }
}

/// Parses a subject orderd consumes (a command or a job update).
pub fn parse_inbound(subject: &str) -> Result<Inbound, SubjectError> {
    let tokens: Vec<&str> = subject.split('.').collect();
    if tokens.len() < 5 {
        return Err(bad("too few tokens"));
    }
    if tokens[0] != ROOT {
        return Err(bad("does not start with orderd"));
    }
    if tokens[1] != VERSION {
        return Err(bad("unsupported version"));
    }
    let tenant = parse_tenant(tokens[2])?;
    // The stored forms of a partitioned stream: the partition token is
    // the transform's, from the order id that follows it.
    let (tree, rest) = match (tokens[3], &tokens[4..]) {
        ("pc" | "pj", [part, rest @ ..]) => {
            if part.parse::<u16>().is_err() {
                return Err(bad("partition is not a number"));
            }
            (if tokens[3] == "pc" { "cmd" } else { "job" }, rest)
        }
        (tree, rest) => (tree, rest),
    };
    match (tree, rest) {
        ("cmd", ["create"]) => Ok(Inbound::Create { tenant }),
        ("cmd", [order, verb]) => Ok(Inbound::Command {
            tenant,
            order: OrderId::parse(order).map_err(|_| bad("order id is not a hyphenated UUID"))?,
            verb: Verb::parse(verb).ok_or(bad("unknown verb"))?,
        }),
        ("cmd", _) => Err(bad(
            "a command subject is cmd.create or cmd.<orderId>.<verb>",
        )),
        ("job", [order, work_order, status]) => Ok(Inbound::JobUpdate {
            tenant,
            order: OrderId::parse(order).map_err(|_| bad("order id is not a hyphenated UUID"))?,
            work_order: WorkOrderId::parse(work_order)
                .map_err(|_| bad("work order id is not a decimal number from 1"))?,
            status: JobStatus::ALL
                .into_iter()
                .find(|s| s.as_str() == *status)
                .ok_or(bad("unknown job status"))?,
        }),
        ("job", _) => Err(bad(
            "a job update subject is job.<orderId>.<workOrderId>.<status>",
        )),
        _ => Err(bad("not a command or job update subject")),
    }
}

/// The tenant token of an orderd subject (`orderd.v1.<tenant>.…`), not yet
/// parsed: the intake's discovery reads it before it opens the tenant's
/// lanes (empty when the subject has fewer tokens).
pub fn tenant_token(subject: &str) -> &str {
    subject.split('.').nth(2).unwrap_or_default()
}

/// Parses a tenant token as it appears in a subject or a request body:
/// a valid [`TenantId`] that is not [`RESERVED_TENANT`].
pub fn parse_tenant(token: &str) -> Result<TenantId, SubjectError> {
    if token == RESERVED_TENANT {
        return Err(SubjectError::BadTenant {
            len: token.len(),
            reason: "reserved for the read service",
        });
    }
    TenantId::parse(token).map_err(|_| SubjectError::BadTenant {
        len: token.len(),
        reason: "must match [A-Za-z0-9_-]{1,64}",
    })
}

/// The longest reply subject orderd publishes to.
pub const MAX_REPLY_SUBJECT_LEN: usize = 256;

/// Checks a subject a client named in `Orderd-Reply-To` before orderd publishes
/// the outcome there with its own permissions: a literal subject (no wildcard,
/// no whitespace, no empty token), outside orderd's own trees (`orderd.`) and
/// outside the server's `$` system trees (`$JS.API`, `$SYS`, …), so a client
/// cannot make orderd write into a stream or call an API on its behalf.
/// Inboxes (`_INBOX.…`) are the expected choice.
pub fn check_reply_subject(subject: &str) -> Result<(), SubjectError> {
    let reason = if subject.is_empty() || subject.len() > MAX_REPLY_SUBJECT_LEN {
        Some("must be 1 to 256 characters")
    } else if !subject.bytes().all(|b| b.is_ascii_graphic()) {
        Some("must be printable ASCII without whitespace")
    } else if subject
        .split('.')
        .any(|t| t.is_empty() || t == "*" || t == ">")
    {
        Some("must be a literal subject without empty tokens or wildcards")
    } else if subject.starts_with('$') {
        Some("must not be a system subject")
    } else if subject.split('.').next() == Some(ROOT) {
        Some("must not be an orderd subject")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(SubjectError::BadReplySubject { reason }),
        None => Ok(()),
    }
}

/// Which tree a catalogued subject belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tree {
    /// Client commands, into orderd.
    Command,
    /// Job updates from dispatch, into orderd.
    JobUpdate,
    /// Job commands, from orderd to dispatch.
    Dispatch,
    /// Order events, from orderd.
    Event,
    /// Dead letters, from orderd.
    DeadLetter,
    /// Archived orders, from orderd (read back through the `archive`
    /// endpoint).
    Archive,
    /// Services API read endpoints (request/reply).
    Service,
    /// Validation plugin requests, from orderd to the tenant's plugins
    /// (request/reply, core NATS).
    Plugin,
    /// Between orderd instances only (request/reply, core NATS).
    Internal,
}

/// One subject pattern, in AsyncAPI channel-address form: ids are the
/// parameters `{tenant}`, `{orderId}` and `{workOrderId}`; every other token is
/// literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubjectPattern {
    /// The channel address, e.g. `orderd.v1.{tenant}.cmd.{orderId}.hold`.
    pub address: String,
    /// The tree it belongs to.
    pub tree: Tree,
}

impl SubjectPattern {
    /// Whether a concrete subject fits this pattern: same token count, literal
    /// tokens equal, each `{parameter}` one non-empty token.
    pub fn matches(&self, subject: &str) -> bool {
        let pattern: Vec<&str> = self.address.split('.').collect();
        let subject: Vec<&str> = subject.split('.').collect();
        pattern.len() == subject.len()
            && pattern.iter().zip(&subject).all(|(p, s)| {
                if p.starts_with('{') && p.ends_with('}') {
                    !s.is_empty() && *s != "*" && *s != ">"
                } else {
                    p == s
                }
            })
    }
}

const P_TENANT: &str = "{tenant}";
const P_ORDER: &str = "{orderId}";
const P_WORK_ORDER: &str = "{workOrderId}";
const P_PLUGIN: &str = "{plugin}";
const P_PARTITION: &str = "{partition}";

/// Every subject pattern the code builds or serves, in AsyncAPI
/// channel-address form: each verb, status, action and kind written out.
pub fn catalogue() -> Vec<SubjectPattern> {
    let mut all = vec![SubjectPattern {
        address: create_layout(P_TENANT),
        tree: Tree::Command,
    }];
    all.extend(Verb::ALL.into_iter().map(|verb| SubjectPattern {
        address: command_layout(P_TENANT, P_ORDER, verb.as_str()),
        tree: Tree::Command,
    }));
    all.extend(JobStatus::ALL.into_iter().map(|status| SubjectPattern {
        address: job_layout(P_TENANT, P_ORDER, P_WORK_ORDER, status.as_str()),
        tree: Tree::JobUpdate,
    }));
    all.extend(JobAction::ALL.into_iter().map(|action| SubjectPattern {
        address: dispatch_layout(P_TENANT, P_ORDER, P_WORK_ORDER, action.as_str()),
        tree: Tree::Dispatch,
    }));
    all.extend(EventKind::ALL.into_iter().map(|kind| SubjectPattern {
        address: event_layout(P_TENANT, P_ORDER, kind.as_str()),
        tree: Tree::Event,
    }));
    all.extend(
        DeadLetterSource::ALL
            .into_iter()
            .map(|source| SubjectPattern {
                address: dead_letter_layout(P_TENANT, source.as_str()),
                tree: Tree::DeadLetter,
            }),
    );
    all.push(SubjectPattern {
        address: archive_layout(P_TENANT, P_ORDER),
        tree: Tree::Archive,
    });
    all.extend(
        API_ENDPOINTS
            .into_iter()
            .chain(API_CONFIG_ENDPOINTS)
            .map(|(_, subject)| SubjectPattern {
                address: subject.to_owned(),
                tree: Tree::Service,
            }),
    );
    all.push(SubjectPattern {
        address: plugin_layout(P_TENANT, P_PLUGIN),
        tree: Tree::Plugin,
    });
    all.push(SubjectPattern {
        address: created_elsewhere_layout(P_TENANT, P_PARTITION),
        tree: Tree::Internal,
    });
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId::parse("acme_eu-1").unwrap()
    }

    fn order() -> OrderId {
        OrderId::parse("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap()
    }

    #[test]
    fn builders_follow_the_issue_to_the_letter() {
        let o = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        assert_eq!(create(&tenant()), "orderd.v1.acme_eu-1.cmd.create");
        assert_eq!(
            command(&tenant(), order(), Verb::SubState),
            format!("orderd.v1.acme_eu-1.cmd.{o}.substate")
        );
        assert_eq!(
            job_update(&tenant(), order(), WorkOrderId(3), JobStatus::CancelFailed),
            format!("orderd.v1.acme_eu-1.job.{o}.3.cancel_failed")
        );
        assert_eq!(
            dispatch(&tenant(), order(), WorkOrderId(12), JobAction::Create),
            format!("orderd.v1.acme_eu-1.dispatch.{o}.12.create")
        );
        assert_eq!(
            event(&tenant(), order(), EventKind::InProgress),
            format!("orderd.v1.acme_eu-1.evt.{o}.in_progress")
        );
        assert_eq!(events_of_tenant(&tenant()), "orderd.v1.acme_eu-1.evt.>");
        assert_eq!(
            events_of_order(&tenant(), order()),
            format!("orderd.v1.acme_eu-1.evt.{o}.*")
        );
        assert_eq!(all_events(), "orderd.v1.*.evt.>");
        assert_eq!(
            dispatch_of_tenant(&tenant()),
            "orderd.v1.acme_eu-1.dispatch.>"
        );
        assert_eq!(commands_of_tenant(&tenant()), "orderd.v1.acme_eu-1.cmd.>");
        assert_eq!(
            job_updates_of_tenant(&tenant()),
            "orderd.v1.acme_eu-1.job.>"
        );
    }

    #[test]
    fn every_inbound_subject_round_trips() {
        let t = tenant();
        assert_eq!(
            parse_inbound(&create(&t)).unwrap(),
            Inbound::Create { tenant: t.clone() }
        );
        for verb in Verb::ALL {
            let parsed = parse_inbound(&command(&t, order(), verb)).unwrap();
            assert_eq!(
                parsed,
                Inbound::Command {
                    tenant: t.clone(),
                    order: order(),
                    verb
                }
            );
            assert_eq!(parsed.verb(), verb.as_str());
            assert_eq!(parsed.order(), Some(order()));
        }
        for status in JobStatus::ALL {
            for wo in [1, 7, u32::MAX] {
                let parsed =
                    parse_inbound(&job_update(&t, order(), WorkOrderId(wo), status)).unwrap();
                assert_eq!(
                    parsed,
                    Inbound::JobUpdate {
                        tenant: t.clone(),
                        order: order(),
                        work_order: WorkOrderId(wo),
                        status
                    }
                );
            }
        }
    }

    #[test]
    fn parse_refuses_what_is_not_an_inbound_subject() {
        let o = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        let bad_subjects = [
            "".to_owned(),
            "orderd".to_owned(),
            "orderd.v1.acme.cmd".to_owned(),
            "orderx.v1.acme.cmd.create".to_owned(),
            "orderd.v2.acme.cmd.create".to_owned(),
            "orderd.V1.acme.cmd.create".to_owned(),
            format!("orderd.v1.acme.cmd.{o}.explode"),
            format!("orderd.v1.acme.cmd.{o}.Hold"),
            format!("orderd.v1.acme.cmd.{o}"),
            format!("orderd.v1.acme.cmd.{o}.hold.extra"),
            "orderd.v1.acme.cmd.create.extra".to_owned(),
            "orderd.v1.acme.cmd.not-a-uuid.hold".to_owned(),
            "orderd.v1.acme.cmd.67e5504410b1426f9247bb680e5fe0c8.hold".to_owned(),
            format!("orderd.v1.acme.job.{o}.0.started"),
            format!("orderd.v1.acme.job.{o}.x.started"),
            format!("orderd.v1.acme.job.{o}.1.exploded"),
            format!("orderd.v1.acme.job.{o}.1"),
            format!("orderd.v1.acme.job.{o}.1.started.extra"),
            format!("orderd.v1.acme.evt.{o}.created"),
            format!("orderd.v1.acme.dispatch.{o}.1.create"),
            "orderd.v1.api.get".to_owned(),
        ];
        for s in &bad_subjects {
            let err = parse_inbound(s).unwrap_err();
            assert!(
                matches!(err, SubjectError::BadSubject { .. }),
                "{s:?}: {err:?}"
            );
            assert_eq!(err.code(), "ORD-400-BAD_SUBJECT");
        }
        let long = "x".repeat(65);
        for tenant in ["a*", ">", "", long.as_str(), "a b", "api"] {
            let s = format!("orderd.v1.{tenant}.cmd.create");
            let err = parse_inbound(&s).unwrap_err();
            assert!(
                matches!(err, SubjectError::BadTenant { .. }),
                "{s:?}: {err:?}"
            );
            assert_eq!(err.code(), "ORD-400-BAD_TENANT");
        }
        // A dot in a tenant only shifts the tokens: the subject does not parse.
        assert!(parse_inbound("orderd.v1.a.b.cmd.create").is_err());
    }

    #[test]
    fn subject_errors_do_not_echo_the_subject() {
        let err = parse_inbound("orderd.v1.secret-marker.cmd.zzz.hold").unwrap_err();
        assert!(!err.to_string().contains("zzz"));
        let err = parse_inbound("orderd.v1.Marker*.cmd.create").unwrap_err();
        assert!(!err.to_string().contains("Marker"));
    }

    #[test]
    fn event_kind_is_the_state_reached_or_changed() {
        assert_eq!(EventKind::reached(OrderState::OnHold).as_str(), "on_hold");
        for state in OrderState::ALL {
            assert_eq!(
                EventKind::reached(state).as_str(),
                state.as_str().to_ascii_lowercase()
            );
        }
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
    }

    #[test]
    fn stream_filters_capture_their_trees_only() {
        assert_eq!(stream_filter(STREAM_EVENTS), Some("orderd.v1.*.evt.>"));
        assert_eq!(stream_filter("NOPE"), None);
        let t = tenant();
        let captured_by = |subject: &str| -> Vec<&str> {
            STREAMS
                .iter()
                .filter(|(_, filter)| wildcard_matches(filter, subject))
                .map(|(name, _)| *name)
                .collect()
        };
        assert_eq!(captured_by(&create(&t)), [STREAM_COMMANDS]);
        assert_eq!(
            captured_by(&command(&t, order(), Verb::Hold)),
            [STREAM_COMMANDS]
        );
        assert_eq!(
            captured_by(&job_update(&t, order(), WorkOrderId(1), JobStatus::Started)),
            [STREAM_JOBS]
        );
        assert_eq!(
            captured_by(&dispatch(&t, order(), WorkOrderId(1), JobAction::Hold)),
            [STREAM_DISPATCH]
        );
        assert_eq!(
            captured_by(&event(&t, order(), EventKind::Changed)),
            [STREAM_EVENTS]
        );
        for (_, subject) in API_ENDPOINTS {
            assert!(captured_by(subject).is_empty(), "{subject}");
        }
        assert!(wildcard_matches(
            &events_of_order(&t, order()),
            &event(&t, order(), EventKind::Closed)
        ));
    }

    /// NATS wildcard matching, for the tests.
    fn wildcard_matches(filter: &str, subject: &str) -> bool {
        let f: Vec<&str> = filter.split('.').collect();
        let s: Vec<&str> = subject.split('.').collect();
        for (i, ft) in f.iter().enumerate() {
            match *ft {
                ">" => return s.len() > i,
                "*" if i < s.len() => {}
                lit if i < s.len() && s[i] == lit => {}
                _ => return false,
            }
        }
        f.len() == s.len()
    }

    #[test]
    fn api_subjects_are_group_plus_endpoint() {
        for (name, subject) in API_ENDPOINTS {
            assert_eq!(format!("{API_GROUP}.{name}"), subject);
        }
    }

    #[test]
    fn reply_subjects_that_would_make_orderd_a_deputy_are_refused() {
        assert!(check_reply_subject("_INBOX.abc.123").is_ok());
        assert!(check_reply_subject("clients.acme.replies").is_ok());
        for bad in [
            "",
            "_INBOX.*",
            "_INBOX.>",
            "a..b",
            ".a",
            "a b",
            "$JS.API.STREAM.DELETE.ORDERD_CMD",
            "$SYS.REQ.SERVER.PING",
            "orderd.v1.acme.cmd.create",
            "orderd",
            &"x".repeat(257),
        ] {
            let err = check_reply_subject(bad).unwrap_err();
            assert_eq!(err.code(), "ORD-400-BAD_REPLY_SUBJECT", "{bad:?}");
        }
    }

    #[test]
    fn catalogue_lists_each_pattern_once() {
        let all = catalogue();
        let mut addresses: Vec<&str> = all.iter().map(|p| p.address.as_str()).collect();
        addresses.sort_unstable();
        addresses.dedup();
        assert_eq!(addresses.len(), all.len());
        assert_eq!(all.len(), 1 + 7 + 5 + 4 + 7 + 12 + 5 + 1 + 2 + 1 + 1);
        assert!(addresses.contains(&"orderd.v1.{tenant}.cmd.{orderId}.hold"));
        assert!(addresses.contains(&"orderd.v1.{tenant}.plugin.{plugin}.validate"));
        assert!(addresses.contains(&"orderd.v1.{tenant}.dlq.cmd"));
    }

    #[test]
    fn dead_letters_have_their_own_tree_and_stream() {
        let t = tenant();
        assert_eq!(
            dead_letter(&t, DeadLetterSource::of_stream(STREAM_COMMANDS)),
            "orderd.v1.acme_eu-1.dlq.cmd"
        );
        assert_eq!(
            dead_letter(&t, DeadLetterSource::of_stream(STREAM_JOBS)),
            "orderd.v1.acme_eu-1.dlq.job"
        );
        assert_eq!(dead_letters_of_tenant(&t), "orderd.v1.acme_eu-1.dlq.>");
        assert_eq!(
            stream_filter(STREAM_DEAD_LETTERS),
            Some(FILTER_DEAD_LETTERS)
        );
        // Not an inbound subject: orderd never reads its own dead letters.
        assert!(parse_inbound("orderd.v1.acme.dlq.cmd").is_err());
    }

    #[test]
    fn config_and_plugin_subjects_stay_out_of_every_stream() {
        let t = tenant();
        let plugin = plugin_validate(&t, "fraud-check");
        assert_eq!(plugin, format!("orderd.v1.{t}.plugin.fraud-check.validate"));
        for subject in API_CONFIG_ENDPOINTS
            .iter()
            .map(|(_, s)| (*s).to_owned())
            .chain([plugin])
        {
            for (_, filter) in STREAMS {
                assert!(!wildcard_matches(filter, &subject), "{subject} in {filter}");
            }
            assert!(parse_inbound(&subject).is_err(), "{subject}");
        }
        for (name, subject) in API_CONFIG_ENDPOINTS {
            assert_eq!(format!("{API_GROUP}.{}", name.replace('_', ".")), subject);
        }
    }
}
