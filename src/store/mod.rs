//! Everything orderd keeps in Redis, and the only code that talks to it: as
//! [`crate::subjects`] is for NATS subjects, this folder is for Redis keys
//! and commands. Nothing outside it formats a key or sends a command; the
//! rest of the crate calls the named methods of [`RedisStore`] (and the
//! order actor the small [`SnapshotStore`] trait, so it can be tested
//! without servers).
//!
//! # Layout
//! - this page: [`RedisStore`] (the connection and its start-up checks),
//!   [`StoreError`], the [`SnapshotStore`] trait;
//! - [`keys`]: every key format, one function per key;
//! - `snapshots`: an order's snapshot with its outbox, loaded (one, or
//!   many for reading), and saved by one Lua script that compares-and-sets
//!   its version and updates every index, the timer set and the personal
//!   data in the same atomic step; the order's applied command ids, kept
//!   beside it;
//! - `personal`: contacts and addresses, stored apart from the order;
//! - [`indexes`]: the query index entries a snapshot keeps, a pure
//!   function of the order and the tenant's current configuration;
//! - `paging`: the index reads of the query endpoint, the dry run and a
//!   claim's plugin resumption (keyset pages over an index, recent orders,
//!   a tenant's oldest orders in a state);
//! - `timers`: the set of orders by their earliest due timer, and how many
//!   of a tenant's are due;
//! - `reconnects`: the check that counts the connection's
//!   re-establishments (Redis restarted, a Sentinel failover);
//! - `fence`: the epoch of each tenant's owner, which every write of its
//!   orders must carry;
//! - `configs`: tenant configurations, one immutable version per change and
//!   the current pointer, their caches, and the publish script;
//! - [`backfill`]: the background walk that writes the index entries a
//!   newly indexed attribute lacks, and its marker;
//! - `archive`: an order's end of life: the closed orders past their
//!   retention, removing an archived order (leaving a tombstone that
//!   refuses every later write of it), erasing a contact or location.
//!
//! # Imports
//! The folder imports `orderd_core`, [`crate::settings`] (the connection
//! settings), [`crate::outbox`] (the messages saved with a snapshot) and
//! [`crate::telemetry`] (the reconnects it counts), and nothing else of the
//! crate: the runtime modules import the store, never
//! the other way round.
//!
//! # Invariants
//! - a snapshot write whose expected version is not the stored one fails
//!   with [`StoreError::StaleVersion`] and changes nothing: that is what
//!   fences two orderd instances that both hold the same order;
//! - an index entry, the timer set and the personal data change only in the
//!   atomic step that writes the snapshot they follow;
//! - a configuration version, once written, never changes.

mod archive;
pub mod backfill;
mod configs;
mod fence;
pub mod indexes;
pub mod keys;
mod paging;
mod personal;
mod reconnects;
mod sentinel;
mod snapshots;
mod timers;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use orderd_core::{OrderId, OrderState, TenantConfig, TenantId};

use crate::settings::RedisSettings;

pub use archive::{Erased, Footprint};
pub use configs::{PublishError, Published, TenantConfigs};
pub use fence::Epoch;
pub use paging::{Index, Page};
pub use personal::{AuditEntry, PersonalRef};
pub use snapshots::{Reindexed, Snapshot};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis could not be reached or answered with an error: passing.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Another writer moved the order on: reload and decide again.
    #[error("stale snapshot version for order {order}: expected {expected}, found {found}")]
    StaleVersion {
        /// The order.
        order: OrderId,
        /// The version this writer read.
        expected: u64,
        /// The version in Redis.
        found: u64,
    },
    /// A stored value does not decode.
    #[error("stored value under {key} does not decode: {source}")]
    Corrupt {
        /// The key.
        key: String,
        /// Why.
        source: rmp_serde::decode::Error,
    },
    /// An order's command ids hold something that is not a command id.
    #[error("the command ids under {0} do not decode")]
    CorruptIds(String),
    /// A value does not encode (a bug).
    #[error("cannot encode value: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// A query cursor that this store did not hand out.
    #[error("invalid cursor")]
    BadCursor,
    /// The order's snapshot was not loaded (a bug in the caller).
    #[error("snapshot not loaded")]
    NotLoaded,
    /// A write reached fewer replicas than `redis.wait_replicas` in time:
    /// passing (the command comes again).
    #[error("a write reached {reached} of the {wanted} replicas asked for in time")]
    NotReplicated {
        /// Replicas that have it.
        reached: u32,
        /// Replicas asked for.
        wanted: u32,
    },
    /// Another instance owns the order's tenant now (a later claim raised
    /// its epoch): this one may not write its orders. Nothing was written;
    /// the command goes back to the stream for the owner.
    #[error("tenant {tenant} is owned under epoch {stored}, not {mine}: write fenced")]
    Fenced {
        /// The tenant.
        tenant: TenantId,
        /// The epoch this instance wrote with.
        mine: Epoch,
        /// The stored one.
        stored: Epoch,
    },
    /// The order was archived and removed from the live store (only its
    /// tombstone is left): nothing was written; read it from the archive.
    #[error("order {order} was archived at {at_ms} ms")]
    Archived {
        /// The order.
        order: OrderId,
        /// When (ms since the epoch).
        at_ms: i64,
    },
    /// The TLS files the settings name cannot be read.
    #[error("{0}")]
    Setup(String),
    /// Redis runs without the append-only file.
    #[error("redis must run with appendonly yes (found appendonly {0})")]
    NoAppendOnly(String),
    /// The tenant's configuration kept changing while an order's index
    /// entries were computed: passing.
    #[error("the configuration of tenant {0} kept changing during a write")]
    ConfigChanging(TenantId),
}

impl StoreError {
    /// Worth retrying later (Redis unreachable or slow).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Redis(_) | StoreError::ConfigChanging(_) | StoreError::NotReplicated { .. }
        )
    }
}

/// What the order actor needs from storage. Small, so an actor can be tested
/// with an in-memory store; [`RedisStore`] is the real one.
pub trait SnapshotStore: Send + Sync + 'static {
    /// The order's snapshot, if it was ever written.
    fn load(&self, order: OrderId) -> BoxFuture<'_, Result<Option<Snapshot>, StoreError>>;

    /// Writes `snapshot` if the stored version is `snapshot.version - 1`
    /// (0: nothing stored), updating the indexes; `previous_state` is the
    /// state of the snapshot being replaced, `None` when there is none. The
    /// same write stores the snapshot's new command ids, refusals and
    /// personal data, and on success clears them from it.
    fn save<'a>(
        &'a self,
        snapshot: &'a mut Snapshot,
        previous_state: Option<OrderState>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Records the snapshot's new refusals if the stored version is still
    /// `snapshot.version` (they were decided on the latest state), else
    /// fails with [`StoreError::StaleVersion`] and records nothing. An
    /// order never written records nothing. On success they join the
    /// snapshot's known refusals.
    fn refuse<'a>(&'a self, snapshot: &'a mut Snapshot) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Notes that the outbox of `version` of `order` is published, so an
    /// instance that loads it next does not publish it again (the creator
    /// of an order of another instance's partition does not write it
    /// again, which would clear it). Nothing when the order moved on.
    fn mark_published(
        &self,
        _order: OrderId,
        _version: u64,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    /// The tenant's configuration; the default when it has none.
    fn tenant_config<'a>(
        &'a self,
        tenant: &'a TenantId,
    ) -> BoxFuture<'a, Result<TenantConfig, StoreError>>;

    /// One version of the tenant's configuration, the one an order was
    /// created under (shared: versions never change, so a store may cache
    /// them). Stores without versions answer the current one.
    fn tenant_config_at<'a>(
        &'a self,
        tenant: &'a TenantId,
        _version: u64,
    ) -> BoxFuture<'a, Result<Arc<TenantConfig>, StoreError>> {
        Box::pin(async move { self.tenant_config(tenant).await.map(Arc::new) })
    }
}

/// The Redis store: the [`SnapshotStore`], plus the named reads and writes
/// of the rest of the crate (queries, configurations, timers, backfill).
/// Cheap to clone: one multiplexed connection, shared.
#[derive(Clone)]
pub struct RedisStore {
    /// The connection to the primary. Private to the folder: no raw
    /// connection leaves it. Replaced when Sentinel names another primary.
    primary: Arc<std::sync::RwLock<ConnectionManager>>,
    /// Replicas a write must reach before it counts, and how long to wait.
    wait: Option<(u32, u64)>,
    save_script: redis::Script,
    versions: Arc<configs::ConfigVersions>,
    /// The current configuration version last seen per tenant: the guess a
    /// write computes its index entries with (the save script checks it).
    current: Arc<std::sync::Mutex<HashMap<TenantId, u64>>>,
    /// The epochs this instance writes its tenants' orders with.
    fences: fence::Fences,
}

/// A self-reconnecting multiplexed connection to `info`.
async fn manager(
    info: redis::ConnectionInfo,
    settings: &RedisSettings,
) -> Result<ConnectionManager, StoreError> {
    let client = if settings.tls_ca_file.is_empty() && settings.tls_cert_file.is_empty() {
        redis::Client::open(info)?
    } else {
        let read = |field: &'static str, path: &str| {
            std::fs::read(path)
                .map_err(|e| StoreError::Setup(format!("redis.{field}: cannot read {path}: {e}")))
        };
        let client_tls = if settings.tls_cert_file.is_empty() {
            None
        } else {
            Some(redis::ClientTlsConfig {
                client_cert: read("tls_cert_file", &settings.tls_cert_file)?,
                client_key: read("tls_key_file", &settings.tls_key_file)?,
            })
        };
        let root_cert = if settings.tls_ca_file.is_empty() {
            None
        } else {
            Some(read("tls_ca_file", &settings.tls_ca_file)?)
        };
        redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls,
                root_cert,
            },
        )?
    };
    let timeout = Duration::from_millis(settings.response_timeout_ms);
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(timeout))
        .set_connection_timeout(Some(timeout))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    Ok(client.get_connection_manager_with_config(config).await?)
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisStore")
    }
}

impl RedisStore {
    /// Connects (to the primary the sentinels name, when there are any, and
    /// follows it from then on), and checks that Redis keeps an append-only
    /// file when asked to.
    pub async fn connect(settings: &RedisSettings) -> Result<Self, StoreError> {
        let info = redis::IntoConnectionInfo::into_connection_info(settings.url.expose())?;
        let sentinels = sentinel::Sentinels::new(settings);
        let info = match &sentinels {
            Some(s) => {
                let primary = s.primary().await?;
                let addr = sentinel::at(&info, &primary);
                info.set_addr(addr)
            }
            None => info,
        };
        let mut conn = manager(info.clone(), settings).await?;
        let named = reconnects::name(&mut conn).await;
        let primary = Arc::new(std::sync::RwLock::new(conn));
        tokio::spawn(reconnects::watch(Arc::downgrade(&primary), named));
        if let Some(sentinels) = sentinels {
            tokio::spawn(sentinel::follow(
                sentinels,
                info,
                settings.clone(),
                Arc::downgrade(&primary),
            ));
        }
        let store = Self {
            primary,
            wait: (settings.wait_replicas > 0)
                .then_some((settings.wait_replicas, settings.wait_timeout_ms)),
            save_script: redis::Script::new(snapshots::SAVE_SCRIPT),
            versions: Arc::default(),
            current: Arc::default(),
            fences: fence::Fences::default(),
        };
        if settings.require_appendonly {
            store.check_appendonly().await?;
        }
        Ok(store)
    }

    async fn check_appendonly(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        match redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendonly")
            .query_async::<Vec<String>>(&mut conn)
            .await
        {
            Ok(pair) => match pair.get(1).map(String::as_str) {
                Some("yes") => {
                    self.check_fsync().await;
                    Ok(())
                }
                other => Err(StoreError::NoAppendOnly(
                    other.unwrap_or("unknown").to_owned(),
                )),
            },
            // Managed Redis often disables CONFIG: we cannot check, so say so.
            Err(e) => {
                tracing::warn!(error = %e, "cannot check that redis runs with appendonly yes");
                Ok(())
            }
        }
    }

    /// Says what a host crash of Redis can lose under its fsync policy
    /// (see docs/runtime.md).
    async fn check_fsync(&self) {
        let mut conn = self.conn();
        let policy = redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendfsync")
            .query_async::<Vec<String>>(&mut conn)
            .await
            .ok()
            .and_then(|pair| pair.get(1).cloned())
            .unwrap_or_default();
        if policy != "always" {
            tracing::warn!(
                appendfsync = %policy,
                "redis does not fsync every write: a crash of the redis host can lose the last \
                 second of snapshots of commands already acknowledged; use appendfsync always \
                 where that matters"
            );
        }
    }

    /// A handle on the connection to the primary (cheap: multiplexed).
    fn conn(&self) -> ConnectionManager {
        self.primary
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// With `redis.wait_replicas` set: waits until that many replicas have
    /// every write sent on `conn` so far (Redis `WAIT`); fewer in time is an
    /// error, so the command is not acknowledged and comes again.
    async fn replicated(&self, conn: &mut ConnectionManager) -> Result<(), StoreError> {
        let Some((replicas, timeout_ms)) = self.wait else {
            return Ok(());
        };
        let reached: u32 = redis::cmd("WAIT")
            .arg(replicas)
            .arg(timeout_ms)
            .query_async(conn)
            .await?;
        if reached < replicas {
            return Err(StoreError::NotReplicated {
                reached,
                wanted: replicas,
            });
        }
        Ok(())
    }

    /// Up to `limit` order ids of the sorted set `key` scored at most `max`.
    async fn lowest(
        &self,
        key: String,
        max: &str,
        limit: usize,
    ) -> Result<Vec<OrderId>, StoreError> {
        let mut conn = self.conn();
        let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(key)
            .arg("-inf")
            .arg(max)
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await?;
        Ok(ids
            .iter()
            .filter_map(|id| OrderId::parse(id).ok())
            .collect())
    }

    /// Answers PING.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok(())
    }
}
