//! Tenant configurations, versioned: every change is a new immutable
//! version, and a pointer names the current one.
//!
//! Keys ([`super::keys`]): each version under [`keys::config_version`]
//! (msgpack `TenantConfig`, never changed once written); the current version
//! number under [`keys::config_current`]; and the index backfill a publish
//! asks for ([`keys::backfill`], [`keys::BACKFILLS`]).
//!
//! Invariants:
//! - version 1 is the built-in default ([`TenantConfig::default`]) until a
//!   tenant publishes anything, so the first published configuration is
//!   version 2 and orders created before it keep deciding with the default;
//! - a publish writes the new version and moves the pointer in one Lua
//!   script, and only if the pointer is still where the publisher read it
//!   (two concurrent publishes cannot both take the same number);
//! - a publish that makes an attribute indexed marks it for the index
//!   backfill in that same script, so no order written under the old version
//!   can be missed by a crash between the two;
//! - a version, once written, is read from a process-wide cache forever
//!   (it never changes), so deciding an old order costs no Redis read;
//! - the current configuration is read through [`TenantConfigs`], a cache
//!   with a short time to live, so a burst of commands does not read Redis
//!   once per command.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orderd_core::{TenantConfig, TenantId};

use super::{indexes, keys, RedisStore, SnapshotStore, StoreError};

/// The version every tenant has before it publishes a configuration.
pub(super) const DEFAULT_VERSION: u64 = 1;

/// Tries of a publish that lost the race for the next version number.
const PUBLISH_TRIES: usize = 5;

/// Reads the pointer and the version it names in one step.
/// KEYS: 1 pointer; ARGV: 1 the version key prefix (`…:config:`).
const CURRENT_SCRIPT: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return false end
return {v, redis.call('GET', ARGV[1] .. v)}
";

/// Writes a new version and moves the pointer, if the pointer is still at
/// the version the publisher read; with attribute names, also marks them
/// for the index backfill (merged with any backfill in progress, which
/// then starts its walk again).
/// A tenant without orders has nothing to backfill.
/// KEYS: 1 pointer, 2 new version key, 3 the tenant's backfill hash, 4 the
/// set of tenants with a backfill, 5 the tenant's creation-time index;
/// ARGV: 1 expected current ('' for none), 2 new version, 3 config bytes,
/// 4 tenant, 5… newly indexed attribute names.
const PUBLISH_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur then cur = '' end
if cur ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('SET', KEYS[1], ARGV[2])
if #ARGV >= 5 and redis.call('ZCARD', KEYS[5]) > 0 then
  local seen = {}
  local attrs = {}
  local old = redis.call('HGET', KEYS[3], 'attrs')
  if old then
    for a in string.gmatch(old, '[^\n]+') do seen[a] = true; attrs[#attrs + 1] = a end
  end
  for i = 5, #ARGV do
    if not seen[ARGV[i]] then seen[ARGV[i]] = true; attrs[#attrs + 1] = ARGV[i] end
  end
  table.sort(attrs)
  redis.call('HSET', KEYS[3], 'attrs', table.concat(attrs, '\n'), 'cursor', '', 'version', ARGV[2])
  redis.call('SADD', KEYS[4], ARGV[4])
end
return 1
";

/// Why a publish did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Redis failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The caller expected another current version.
    #[error("the current version is {current}, not {expected}")]
    VersionMismatch {
        /// What the caller expected.
        expected: u64,
        /// What is current.
        current: u64,
    },
    /// Other publishers kept winning the race.
    #[error("too many concurrent publishes; try again")]
    Contended,
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The new version, now current.
    pub version: u64,
    /// The attributes it made indexed (or indexed as another type) that the
    /// version it replaced did not: marked for the index backfill in the
    /// same step.
    pub newly_indexed: Vec<String>,
}

fn decode(key: &str, bytes: &[u8]) -> Result<TenantConfig, StoreError> {
    rmp_serde::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        key: key.to_owned(),
        source,
    })
}

impl RedisStore {
    /// The current version and configuration of a tenant.
    pub async fn current_config(
        &self,
        tenant: &TenantId,
    ) -> Result<(u64, TenantConfig), StoreError> {
        let mut conn = self.conn();
        let got: Option<(u64, Option<Vec<u8>>)> = redis::Script::new(CURRENT_SCRIPT)
            .key(keys::config_current(tenant))
            .arg(keys::config_version_prefix(tenant))
            .invoke_async(&mut conn)
            .await?;
        match got {
            None => Ok((DEFAULT_VERSION, TenantConfig::default())),
            Some((version, Some(bytes))) => {
                let mut config = decode(&keys::config_version(tenant, version), &bytes)?;
                config.version = version;
                Ok((version, config))
            }
            Some((version, None)) => {
                tracing::warn!(%tenant, version, "current tenant configuration missing; using the default");
                Ok((version, TenantConfig::default()))
            }
        }
    }

    /// One version of a tenant's configuration, read from Redis (the default
    /// for version 1 or less when none was stored under it).
    pub async fn config_at(
        &self,
        tenant: &TenantId,
        version: u64,
    ) -> Result<TenantConfig, StoreError> {
        let mut conn = self.conn();
        let key = keys::config_version(tenant, version);
        let bytes: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
        match bytes {
            Some(b) => {
                let mut config = decode(&key, &b)?;
                config.version = version;
                Ok(config)
            }
            None => {
                if version > DEFAULT_VERSION {
                    tracing::warn!(%tenant, version, "tenant configuration version missing; using the default");
                }
                Ok(TenantConfig {
                    version: version.max(DEFAULT_VERSION),
                    ..TenantConfig::default()
                })
            }
        }
    }

    /// One version of a tenant's configuration, through the process-wide
    /// cache of versions (a version never changes).
    pub(super) async fn cached_config(
        &self,
        tenant: &TenantId,
        version: u64,
    ) -> Result<Arc<TenantConfig>, StoreError> {
        let key = (tenant.clone(), version);
        if let Some(hit) = self.versions.hit(&key) {
            return Ok(hit);
        }
        let config = Arc::new(self.config_at(tenant, version).await?);
        self.versions.remember(key, config.clone());
        Ok(config)
    }

    /// The current version number of a tenant.
    pub async fn current_config_version(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        let v: Option<u64> = redis::cmd("GET")
            .arg(keys::config_current(tenant))
            .query_async(&mut conn)
            .await?;
        Ok(v.unwrap_or(DEFAULT_VERSION))
    }

    /// Stores `config` as the tenant's next version and makes it current; the
    /// caller has checked it (`TenantConfig::problems`). With `expected`, only
    /// if that is still the current version. Attributes it indexes that the
    /// version it replaces did not are marked for the index backfill
    /// ([`super::backfill`]) in the same atomic step.
    pub async fn publish_config(
        &self,
        tenant: &TenantId,
        config: &TenantConfig,
        expected: Option<u64>,
    ) -> Result<Published, PublishError> {
        let mut c = self.conn();
        for _ in 0..PUBLISH_TRIES {
            let stored: Option<u64> = redis::cmd("GET")
                .arg(keys::config_current(tenant))
                .query_async(&mut c)
                .await
                .map_err(StoreError::from)?;
            let current = stored.unwrap_or(DEFAULT_VERSION);
            if let Some(expected) = expected.filter(|e| *e != current) {
                return Err(PublishError::VersionMismatch { expected, current });
            }
            let previous = self.config_at(tenant, current).await?;
            let newly_indexed = indexes::newly_indexed(&previous, config);
            let next = current + 1;
            let mut versioned = config.clone();
            versioned.version = next;
            let bytes = rmp_serde::to_vec_named(&versioned).map_err(StoreError::from)?;
            let script = redis::Script::new(PUBLISH_SCRIPT);
            let mut invocation = script.prepare_invoke();
            invocation
                .key(keys::config_current(tenant))
                .key(keys::config_version(tenant, next))
                .key(keys::backfill(tenant))
                .key(keys::BACKFILLS)
                .key(keys::created_index(tenant))
                .arg(stored.map(|v| v.to_string()).unwrap_or_default())
                .arg(next)
                .arg(bytes)
                .arg(tenant.as_str());
            for name in &newly_indexed {
                invocation.arg(name);
            }
            let done: i64 = invocation
                .invoke_async(&mut c)
                .await
                .map_err(StoreError::from)?;
            if done == 1 {
                return Ok(Published {
                    version: next,
                    newly_indexed,
                });
            }
        }
        Err(PublishError::Contended)
    }

    /// Publishes a tenant configuration as its next version, unchecked
    /// (for tests and tools; clients go through the configuration API).
    pub async fn put_tenant_config(
        &self,
        tenant: &TenantId,
        config: &TenantConfig,
    ) -> Result<u64, StoreError> {
        self.publish_config(tenant, config, None)
            .await
            .map(|published| published.version)
            .map_err(|e| match e {
                PublishError::Store(e) => e,
                other => StoreError::Redis(redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "publish",
                    other.to_string(),
                ))),
            })
    }
}

/// Versions already read, kept for the life of the process: a version never
/// changes, so a hit is always right.
#[derive(Default)]
pub(super) struct ConfigVersions {
    cache: Mutex<HashMap<(TenantId, u64), Arc<TenantConfig>>>,
}

impl ConfigVersions {
    /// Bounded: past this many entries the cache starts again.
    const MAX: usize = 10_000;

    fn hit(&self, key: &(TenantId, u64)) -> Option<Arc<TenantConfig>> {
        self.cache.lock().ok().and_then(|c| c.get(key).cloned())
    }

    /// Keeps a version just written or read.
    fn remember(&self, key: (TenantId, u64), config: Arc<TenantConfig>) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= Self::MAX {
                cache.clear();
            }
            cache.insert(key, config);
        }
    }
}

/// Tenant configurations read through a short-lived cache, so a burst of
/// commands does not read Redis once per command. A changed configuration
/// takes effect within the time to live.
pub struct TenantConfigs {
    ttl: Duration,
    cache: Mutex<HashMap<TenantId, (Instant, Arc<TenantConfig>)>>,
}

impl TenantConfigs {
    /// A cache that keeps each configuration for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The tenant's configuration, from the cache or from `store`.
    pub async fn get(
        &self,
        store: &dyn SnapshotStore,
        tenant: &TenantId,
    ) -> Result<Arc<TenantConfig>, StoreError> {
        if let Some(hit) = self.cached(tenant) {
            return Ok(hit);
        }
        let config = Arc::new(store.tenant_config(tenant).await?);
        if let Ok(mut cache) = self.cache.lock() {
            // Bounded: a cache that outgrows its use starts again.
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(tenant.clone(), (Instant::now(), config.clone()));
        }
        Ok(config)
    }

    /// The version an order was created under. Versions never change; the
    /// store keeps them (the Redis store in its process-wide cache of
    /// versions).
    pub async fn at(
        &self,
        store: &dyn SnapshotStore,
        tenant: &TenantId,
        version: u64,
    ) -> Result<Arc<TenantConfig>, StoreError> {
        store.tenant_config_at(tenant, version).await
    }

    fn cached(&self, tenant: &TenantId) -> Option<Arc<TenantConfig>> {
        let cache = self.cache.lock().ok()?;
        let (at, config) = cache.get(tenant)?;
        (at.elapsed() < self.ttl).then(|| config.clone())
    }
}
