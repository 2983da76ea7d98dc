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
//! [`crate::store::backfill`], and the replies of publish, attributes and get list
//! the attributes still being built in `indexing` (a query on one of them
//! is refused with `ORD-503-INDEX_BUILDING` until it is done).
//!
//! # The dry run
//! For each of the tenant's most recent orders (newest first, by the
//! creation-time index), the dry run reads the order's event messages back
//! from the events stream (`orderd.v1.<tenant>.evt.<orderId>.>`, the reader
//! of the `history` endpoint, [`crate::archive::read_events`]), derives the
//! commands they record, and replays them through the pure core twice:
//! under the version the order was created under and under the draft
//! ([`super::replay`]). It reports each order whose replay comes out
//! differently (how each ends, and the first command whose outcome
//! differs), and each order it could not replay with the reason (events
//! expired from the stream, a gap, not yet published, a replay under its
//! own version that does not reproduce the record). It stores nothing, and
//! reads no personal data: contacts and locations stay ids.

use async_nats::jetstream;
use futures::StreamExt;

use orderd_core::{OrderId, TenantConfig, TenantId, Timestamp};

use super::replay::{self, Unreplayable};
use crate::store::{PublishError, RedisStore, SnapshotStore, StoreError};
use crate::wire::{
    AttributesRequest, ConfigDraft, ConfigReply, ConfigRequest, DryRunReply, DryRunRequest,
    ErrorBody, FieldProblemBody, OrderDifference, UnreplayableOrder, ValidateReply, WireError,
};

/// The most orders one dry run replays.
pub const MAX_DRY_RUN: usize = 1_000;
const DEFAULT_DRY_RUN: usize = 100;
/// Orders whose events are read from the stream at once.
const READ_AT_ONCE: usize = 8;

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
    /// The events stream could not be read.
    #[error("the event stream is unavailable; try again")]
    Events(String),
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
            ConfigError::Events(e) => {
                tracing::warn!(error = %e, "dry run could not read the event stream");
                ErrorBody::error("ORD-503-UNAVAILABLE", self.to_string())
            }
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
    let (current_version, current) = store.current_config(&tenant).await?;
    let (version, config) = match req.version {
        None => (current_version, current),
        Some(v) if v == 0 || v > current_version => return Err(ConfigError::NoSuchVersion(v)),
        Some(v) => (v, store.config_at(&tenant, v).await?),
    };
    Ok(ConfigReply {
        tenant: tenant.to_string(),
        version,
        current_version,
        config,
        indexing: store.backfill_pending(&tenant).await?,
    })
}

/// `config.validate`.
pub async fn validate(store: &RedisStore, req: ConfigDraft) -> Result<ValidateReply, ConfigError> {
    let tenant = req.tenant()?;
    check(&req.config)?;
    let current = store.current_config_version(&tenant).await?;
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
    let published = store.publish_config(tenant, config, expected).await?;
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
        indexing: store.backfill_pending(tenant).await?,
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
    let (current_version, mut config) = store.current_config(&tenant).await?;
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
pub async fn dry_run(
    store: &RedisStore,
    js: &jetstream::Context,
    req: DryRunRequest,
) -> Result<DryRunReply, ConfigError> {
    let tenant = req.tenant()?;
    let limit = req
        .limit
        .map_or(DEFAULT_DRY_RUN, |l| {
            usize::try_from(l).unwrap_or(MAX_DRY_RUN)
        })
        .clamp(1, MAX_DRY_RUN);
    let current_version = store.current_config_version(&tenant).await?;
    let mut draft = req.config.clone();
    draft.version = current_version + 1;
    // Timers of the replays fire up to now, the shell's clock.
    let horizon = Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
    );
    let ids = store.recent_orders(&tenant, limit).await?;
    let snapshots = store.load_many(&ids).await?;
    let orders: Vec<(OrderId, u64, u64)> = snapshots
        .iter()
        .filter(|s| s.order.tenant == tenant)
        .map(|s| (s.order.id, s.order.seq, s.order.schema_version))
        .collect();
    let mut histories = futures::stream::iter(orders.iter().copied())
        .map(|(id, seq, version)| {
            let tenant = &tenant;
            async move {
                let events = crate::archive::read_events(js, tenant, id).await;
                (id, seq, version, events)
            }
        })
        .buffered(READ_AT_ONCE);
    let mut reply = DryRunReply {
        tenant: tenant.to_string(),
        current_version,
        checked: orders.len(),
        replayed: 0,
        problems: req
            .config
            .problems()
            .iter()
            .map(FieldProblemBody::from)
            .collect(),
        differences: Vec::new(),
        unreplayable: Vec::new(),
    };
    while let Some((id, seq, version, events)) = histories.next().await {
        let events = events.map_err(|e| ConfigError::Events(e.to_string()))?;
        let own = store.tenant_config_at(&tenant, version).await?;
        match replay_both(id, &tenant, &events, seq, &own, &draft, horizon) {
            Ok(difference) => {
                reply.replayed += 1;
                reply
                    .differences
                    .extend(difference.map(|d| OrderDifference {
                        order_id: id.to_string(),
                        schema_version: version,
                        ends_differently: d.ends_differently,
                        now: d.now,
                        draft: d.draft,
                        first_difference: d.first,
                    }));
            }
            Err(why) => {
                tracing::info!(%tenant, order_id = %id, reason = why.code(), "dry run could not replay an order");
                reply.unreplayable.push(UnreplayableOrder {
                    order_id: id.to_string(),
                    code: why.code().to_owned(),
                    reason: why.to_string(),
                });
            }
        }
    }
    Ok(reply)
}

/// Replays one order's history under its own version (which must reproduce
/// the record) and under the draft; the difference, if any.
fn replay_both(
    id: OrderId,
    tenant: &TenantId,
    events: &[crate::wire::EventMessage],
    order_seq: u64,
    own: &TenantConfig,
    draft: &TenantConfig,
    horizon: Timestamp,
) -> Result<Option<replay::Difference>, Unreplayable> {
    let recorded = replay::recorded_commands(events, order_seq)?;
    let now = replay::replay(id, tenant, &recorded, own, horizon);
    replay::reproduces(&recorded, &now)?;
    let under_draft = replay::replay(id, tenant, &recorded, draft, horizon);
    Ok(replay::compare(&now, &under_draft))
}
