//! The configuration API: the `config.*` endpoints of the read service.
//!
//! - `config.get`: the current configuration, or any stored version;
//! - `config.validate`: checks a whole draft, stores nothing;
//! - `config.publish`: a whole draft (every part at once) becomes the next
//!   version, if valid;
//! - `config.attributes`: seed 002's `POST /config/attributes`, merged into
//!   the current configuration as the next version;
//! - `config.dryrun`: what the draft would decide differently for the
//!   tenant's most recent orders.
//!
//! Invariants: a configuration with any problem is refused with every
//! problem listed (`ORD-422-INVALID_CONFIG`) and nothing is stored; a
//! change is in Redis (a new version and the pointer, one atomic step) before
//! the reply; existing orders keep the version they were created under.
//!
//! A version that makes an attribute indexed answers at once; the index
//! entries of the tenant's older orders are written after the reply by
//! [`crate::backfill`], and the replies of publish, attributes and get list
//! the attributes still being built in `indexing` (a query on one of them
//! is refused with `ORD-503-INDEX_BUILDING` until it is done).
//!
//! # The dry run, and what it does not do
//! orderd does not keep command bodies, so it cannot re-run an order's whole
//! history under a draft. The dry run replays what the snapshot still holds:
//! it rebuilds each recent order's creation from its snapshot (client,
//! flow, summary, custom attributes, forward work orders; contact and
//! locations by id) and decides it with the order's own version and with the
//! draft, then compares what the two decide (refused or accepted, with which
//! problems; which plugins it waits for; each work order's job type,
//! attempts and return rules; the milestones it starts). On the order as it
//! stands now it checks the rules that act later: its sub-state under the
//! draft's sub-states, its work orders' attempts against the draft's
//! `maxAttempts`, and the auto-close of an executed order. It does not
//! replay job updates or client commands one by one.

use std::collections::BTreeMap;

use uuid::Uuid;

use orderd_core::command::{ContactInput, CreateOrder, LocationInput, WorkOrderSpec};
use orderd_core::model::{TimerKind, WorkOrderState};
use orderd_core::{
    apply_change, execute, Command, CommandId, Ctx, Envelope, Order, OrderId, Outcome,
    TenantConfig, TenantId,
};

use crate::config_store::{self, PublishError};
use crate::indexes;
use crate::store::{RedisStore, SnapshotStore, StoreError};
use crate::wire::{
    AttributesRequest, Change, ConfigDraft, ConfigReply, ConfigRequest, DryRunReply, DryRunRequest,
    ErrorBody, FieldProblemBody, OrderDifference, ValidateReply, WireError,
};

/// The most orders one dry run replays.
pub const MAX_DRY_RUN: usize = 1_000;
const DEFAULT_DRY_RUN: usize = 100;

/// Why a configuration request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Malformed request.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Redis failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration has problems (every one listed).
    #[error("the configuration is invalid: {} problem(s)", .0.len())]
    Invalid(Vec<orderd_core::rejection::FieldProblem>),
    /// The caller's expected version is not the current one.
    #[error("the current version is {current}, not {expected}")]
    VersionConflict {
        /// Expected.
        expected: u64,
        /// Current.
        current: u64,
    },
    /// No such version.
    #[error("version {0} does not exist")]
    NoSuchVersion(u64),
    /// Publishes kept colliding.
    #[error("too many concurrent changes; try again")]
    Contended,
}

impl ConfigError {
    /// The error as the client sees it, with its stable code.
    pub fn body(&self) -> ErrorBody {
        match self {
            ConfigError::Wire(e) => ErrorBody::from(e),
            ConfigError::Store(e) => {
                tracing::warn!(error = %e, "configuration request failed");
                ErrorBody::error("ORD-503-UNAVAILABLE", "storage is unavailable; try again")
            }
            ConfigError::Invalid(problems) => ErrorBody {
                details: problems.iter().map(FieldProblemBody::from).collect(),
                ..ErrorBody::error("ORD-422-INVALID_CONFIG", self.to_string())
            },
            ConfigError::VersionConflict { .. } => {
                ErrorBody::error("ORD-409-CONFIG_VERSION_CONFLICT", self.to_string())
            }
            ConfigError::NoSuchVersion(_) => {
                ErrorBody::error("ORD-404-CONFIG_VERSION_NOT_FOUND", self.to_string())
            }
            ConfigError::Contended => ErrorBody::error("ORD-503-CONTENDED", self.to_string()),
        }
    }
}

impl From<PublishError> for ConfigError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::Store(e) => ConfigError::Store(e),
            PublishError::VersionMismatch { expected, current } => {
                ConfigError::VersionConflict { expected, current }
            }
            PublishError::Contended => ConfigError::Contended,
        }
    }
}

fn check(config: &TenantConfig) -> Result<(), ConfigError> {
    let problems = config.problems();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// `config.get`.
pub async fn get(store: &RedisStore, req: ConfigRequest) -> Result<ConfigReply, ConfigError> {
    let tenant = req.tenant()?;
    let conn = store.connection();
    let (current_version, current) = config_store::current(conn, &tenant).await?;
    let (version, config) = match req.version {
        None => (current_version, current),
        Some(v) if v == 0 || v > current_version => return Err(ConfigError::NoSuchVersion(v)),
        Some(v) => (v, config_store::at(conn, &tenant, v).await?),
    };
    Ok(ConfigReply {
        tenant: tenant.to_string(),
        version,
        current_version,
        config,
        indexing: crate::backfill::pending(conn, &tenant).await?,
    })
}

/// `config.validate`.
pub async fn validate(store: &RedisStore, req: ConfigDraft) -> Result<ValidateReply, ConfigError> {
    let tenant = req.tenant()?;
    check(&req.config)?;
    let current = config_store::current_version(store.connection(), &tenant).await?;
    Ok(ValidateReply {
        tenant: tenant.to_string(),
        valid: true,
        next_version: current + 1,
    })
}

async fn publish_checked(
    store: &RedisStore,
    tenant: &TenantId,
    config: &TenantConfig,
    expected: Option<u64>,
) -> Result<ConfigReply, ConfigError> {
    check(config)?;
    let published = config_store::publish(store.connection(), tenant, config, expected).await?;
    let version = published.version;
    tracing::info!(
        %tenant,
        version,
        newly_indexed = ?published.newly_indexed,
        "tenant configuration published"
    );
    let mut config = config.clone();
    config.version = version;
    Ok(ConfigReply {
        tenant: tenant.to_string(),
        version,
        current_version: version,
        config,
        indexing: crate::backfill::pending(store.connection(), tenant).await?,
    })
}

/// `config.publish`: the whole draft, validated, becomes the next version.
pub async fn publish(store: &RedisStore, req: ConfigDraft) -> Result<ConfigReply, ConfigError> {
    let tenant = req.tenant()?;
    publish_checked(store, &tenant, &req.config, req.expected_version).await
}

/// `config.attributes`: each attribute replaces the one of the same name or
/// is added; the result, validated, becomes the next version.
pub async fn attributes(
    store: &RedisStore,
    req: AttributesRequest,
) -> Result<ConfigReply, ConfigError> {
    let tenant = req.tenant()?;
    let (current_version, mut config) = config_store::current(store.connection(), &tenant).await?;
    if let Some(expected) = req.expected_version.filter(|e| *e != current_version) {
        return Err(ConfigError::VersionConflict {
            expected,
            current: current_version,
        });
    }
    for def in &req.attributes {
        match config.attributes.iter_mut().find(|a| a.name == def.name) {
            Some(existing) => *existing = def.clone(),
            None => config.attributes.push(def.clone()),
        }
    }
    // The merge was made on `current_version`: publish only on top of it.
    publish_checked(store, &tenant, &config, Some(current_version)).await
}

/// `config.dryrun`: see the module documentation for what is replayed.
pub async fn dry_run(store: &RedisStore, req: DryRunRequest) -> Result<DryRunReply, ConfigError> {
    let tenant = req.tenant()?;
    let limit = req
        .limit
        .map_or(DEFAULT_DRY_RUN, |l| {
            usize::try_from(l).unwrap_or(MAX_DRY_RUN)
        })
        .clamp(1, MAX_DRY_RUN);
    let current_version = config_store::current_version(store.connection(), &tenant).await?;
    let mut draft = req.config.clone();
    draft.version = current_version + 1;
    let ids = recent_orders(store, &tenant, limit).await?;
    let snapshots = store.load_many(&ids).await?;
    let mut differences = Vec::new();
    for snap in snapshots.iter().filter(|s| s.order.tenant == tenant) {
        let own = store
            .tenant_config_at(&tenant, snap.order.schema_version)
            .await?;
        let changes = compare(&snap.order, &own, &draft);
        if !changes.is_empty() {
            differences.push(OrderDifference {
                order_id: snap.order.id.to_string(),
                schema_version: snap.order.schema_version,
                state: snap.order.state.as_str().to_owned(),
                changes,
            });
        }
    }
    Ok(DryRunReply {
        tenant: tenant.to_string(),
        current_version,
        checked: snapshots.len(),
        problems: req
            .config
            .problems()
            .iter()
            .map(FieldProblemBody::from)
            .collect(),
        differences,
    })
}

/// The tenant's most recently created orders, newest first.
async fn recent_orders(
    store: &RedisStore,
    tenant: &TenantId,
    limit: usize,
) -> Result<Vec<OrderId>, StoreError> {
    let mut conn = store.connection().clone();
    let ids: Vec<String> = redis::cmd("ZREVRANGE")
        .arg(indexes::created_key(tenant))
        .arg(0)
        .arg(limit.saturating_sub(1))
        .query_async(&mut conn)
        .await?;
    Ok(ids.iter().filter_map(|s| OrderId::parse(s).ok()).collect())
}

/// The order's creation, rebuilt from its snapshot.
fn rebuilt_create(order: &Order) -> CreateOrder {
    CreateOrder {
        client: order.client.clone(),
        client_order_id: order.client_order_id.clone(),
        ready_to_process: order.ready_to_process,
        contact: order.drop.contact_id.map(ContactInput::Id),
        location: order.drop.location_id.map(LocationInput::Id),
        return_location: order.drop.return_location_id.map(LocationInput::Id),
        execution_flow: order.execution_flow,
        summary: order.summary.clone(),
        work_orders: order
            .work_orders
            .iter()
            .filter(|w| !w.is_return())
            .map(|w| WorkOrderSpec {
                kind: w.kind.clone(),
            })
            .collect(),
        custom: order.custom.clone(),
    }
}

/// What deciding the rebuilt creation under `config` gives: the new order,
/// or the refusal in words.
fn created_under(order: &Order, config: &TenantConfig) -> Result<Order, String> {
    let blank = Order::blank(order.id, order.tenant.clone());
    let Ok(command_id) = CommandId::parse("dryrun") else {
        return Err("internal".into());
    };
    let envelope = Envelope {
        tenant: order.tenant.clone(),
        order_id: order.id,
        command_id,
        by: order.created_by.clone(),
        command: Command::Create(Box::new(rebuilt_create(order))),
    };
    let ctx = Ctx {
        now: order.created_at,
        config,
        fresh_ids: [Uuid::nil(); Ctx::FRESH_IDS],
    };
    match execute(&blank, &envelope, &ctx) {
        Outcome::Applied(change) => {
            let mut created = blank;
            apply_change(&mut created, &change);
            Ok(created)
        }
        Outcome::Refused(r) => {
            let details: Vec<String> = r
                .details()
                .iter()
                .map(|p| format!("{} {}", p.field, p.code))
                .collect();
            Err(if details.is_empty() {
                format!("refused {}", r.code())
            } else {
                format!("refused {} ({})", r.code(), details.join(", "))
            })
        }
        Outcome::Duplicate => Err("duplicate".into()),
    }
}

fn describe_creation(o: &Order) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert(
        "create".to_owned(),
        format!("accepted, {}", o.state.as_str()),
    );
    let plugins: Vec<&str> = o
        .validation
        .waiting_for
        .iter()
        .map(String::as_str)
        .collect();
    out.insert("plugins".to_owned(), format!("[{}]", plugins.join(", ")));
    for w in &o.work_orders {
        out.insert(
            format!("workOrder.{}", w.id),
            format!(
                "{} jobType {} maxAttempts {} returnOnFailure {} returnOnCancel {}",
                w.kind, w.job_type, w.max_attempts, w.return_on_failure, w.return_on_cancel
            ),
        );
    }
    let mut timers: Vec<String> = o
        .timers
        .iter()
        .map(|t| {
            let what = match &t.kind {
                TimerKind::AutoClose => "auto-close".to_owned(),
                TimerKind::MilestoneWarning(name) => format!("{name} due soon"),
                TimerKind::MilestoneDue(name) => format!("{name} due"),
            };
            format!("{what} at {}", crate::wire::rfc3339(t.due))
        })
        .collect();
    timers.sort();
    out.insert("milestones".to_owned(), format!("[{}]", timers.join(", ")));
    out
}

/// Every aspect the draft decides differently for this order.
pub fn compare(order: &Order, own: &TenantConfig, draft: &TenantConfig) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut differ = |aspect: String, now: String, draft: String| {
        if now != draft {
            changes.push(Change { aspect, now, draft });
        }
    };
    match (created_under(order, own), created_under(order, draft)) {
        (Ok(a), Ok(b)) => {
            let (a, b) = (describe_creation(&a), describe_creation(&b));
            let aspects: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for aspect in aspects {
                differ(
                    aspect.clone(),
                    a.get(aspect).cloned().unwrap_or_else(|| "none".into()),
                    b.get(aspect).cloned().unwrap_or_else(|| "none".into()),
                );
            }
        }
        (a, b) => differ(
            "create".into(),
            a.map_or_else(|e| e, |o| format!("accepted, {}", o.state.as_str())),
            b.map_or_else(|e| e, |o| format!("accepted, {}", o.state.as_str())),
        ),
    }
    if let Some(sub) = &order.sub_state {
        let allowed = |c: &TenantConfig| {
            c.sub_states
                .get(&order.state)
                .is_some_and(|s| s.sub_states.contains(sub))
        };
        let word = |ok: bool| {
            if ok {
                format!("sub-state {sub} allowed")
            } else {
                format!("sub-state {sub} not configured")
            }
        };
        differ("subState".into(), word(allowed(own)), word(allowed(draft)));
    }
    for w in order.work_orders.iter().filter(|w| !w.is_return()) {
        let Some(t) = draft.work_order_type(&w.kind) else {
            continue; // the creation comparison reports an unknown type
        };
        let now = format!("{} after attempt {}", w.state.as_str(), w.attempt);
        if w.attempt > t.max_attempts {
            differ(
                format!("workOrder.{}.attempts", w.id),
                now,
                format!("FAILED after attempt {}", t.max_attempts),
            );
        } else if w.state == WorkOrderState::Failed && w.attempt < t.max_attempts {
            differ(
                format!("workOrder.{}.attempts", w.id),
                now,
                format!("retried (up to {} attempts)", t.max_attempts),
            );
        }
    }
    if order.state == orderd_core::OrderState::Executed {
        let word = |c: &TenantConfig| match c.auto_close_after_ms {
            Some(ms) => format!("closes {ms} ms after execution"),
            None => "waits for close".to_owned(),
        };
        differ("autoClose".into(), word(own), word(draft));
    }
    changes
}
