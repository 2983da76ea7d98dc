//! Tenant configurations in Redis, versioned: every change is a new
//! immutable version, and a pointer names the current one.
//!
//! Keys:
//! - `orderd:tenant:<tenant>:config:<version>`: msgpack `TenantConfig`, never
//!   changed once written;
//! - `orderd:tenant:<tenant>:config:current`: the current version number;
//! - the index backfill a publish asks for ([`crate::indexes::backfill_key`]).
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
//!   (it never changes), so deciding an old order costs no Redis read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use redis::aio::ConnectionManager;

use orderd_core::{TenantConfig, TenantId};

use crate::store::StoreError;

/// The version every tenant has before it publishes a configuration.
pub const DEFAULT_VERSION: u64 = 1;

/// Tries of a publish that lost the race for the next version number.
const PUBLISH_TRIES: usize = 5;

/// The key of one stored version.
pub fn version_key(tenant: &TenantId, version: u64) -> String {
    format!("orderd:tenant:{tenant}:config:{version}")
}

/// The key of the current-version pointer.
pub fn current_key(tenant: &TenantId) -> String {
    format!("orderd:tenant:{tenant}:config:current")
}

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

fn decode(key: &str, bytes: &[u8]) -> Result<TenantConfig, StoreError> {
    rmp_serde::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        key: key.to_owned(),
        source,
    })
}

/// The current version and configuration of a tenant.
pub async fn current(
    conn: &ConnectionManager,
    tenant: &TenantId,
) -> Result<(u64, TenantConfig), StoreError> {
    let mut conn = conn.clone();
    let prefix = version_key(tenant, 0);
    let prefix = prefix.trim_end_matches('0');
    let got: Option<(u64, Option<Vec<u8>>)> = redis::Script::new(CURRENT_SCRIPT)
        .key(current_key(tenant))
        .arg(prefix)
        .invoke_async(&mut conn)
        .await?;
    match got {
        None => Ok((DEFAULT_VERSION, TenantConfig::default())),
        Some((version, Some(bytes))) => {
            let mut config = decode(&version_key(tenant, version), &bytes)?;
            config.version = version;
            Ok((version, config))
        }
        Some((version, None)) => {
            tracing::warn!(%tenant, version, "current tenant configuration missing; using the default");
            Ok((version, TenantConfig::default()))
        }
    }
}

/// One version of a tenant's configuration (the default for version 1 or
/// less when none was stored under it).
pub async fn at(
    conn: &ConnectionManager,
    tenant: &TenantId,
    version: u64,
) -> Result<TenantConfig, StoreError> {
    let mut conn = conn.clone();
    let key = version_key(tenant, version);
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

/// The current version number of a tenant.
pub async fn current_version(
    conn: &ConnectionManager,
    tenant: &TenantId,
) -> Result<u64, StoreError> {
    let mut conn = conn.clone();
    let v: Option<u64> = redis::cmd("GET")
        .arg(current_key(tenant))
        .query_async(&mut conn)
        .await?;
    Ok(v.unwrap_or(DEFAULT_VERSION))
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

/// Stores `config` as the tenant's next version and makes it current; the
/// caller has checked it (`TenantConfig::problems`). With `expected`, only
/// if that is still the current version. Attributes it indexes that the
/// version it replaces did not are marked for the index backfill
/// ([`crate::backfill`]) in the same atomic step.
pub async fn publish(
    conn: &ConnectionManager,
    tenant: &TenantId,
    config: &TenantConfig,
    expected: Option<u64>,
) -> Result<Published, PublishError> {
    let mut c = conn.clone();
    for _ in 0..PUBLISH_TRIES {
        let stored: Option<u64> = redis::cmd("GET")
            .arg(current_key(tenant))
            .query_async(&mut c)
            .await
            .map_err(StoreError::from)?;
        let current = stored.unwrap_or(DEFAULT_VERSION);
        if let Some(expected) = expected.filter(|e| *e != current) {
            return Err(PublishError::VersionMismatch { expected, current });
        }
        let previous = at(conn, tenant, current).await?;
        let newly_indexed = crate::indexes::newly_indexed(&previous, config);
        let next = current + 1;
        let mut versioned = config.clone();
        versioned.version = next;
        let bytes = rmp_serde::to_vec_named(&versioned).map_err(StoreError::from)?;
        let script = redis::Script::new(PUBLISH_SCRIPT);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(current_key(tenant))
            .key(version_key(tenant, next))
            .key(crate::indexes::backfill_key(tenant))
            .key(crate::indexes::BACKFILLS_KEY)
            .key(crate::indexes::created_key(tenant))
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

/// Versions already read, kept for the life of the process: a version never
/// changes, so a hit is always right.
#[derive(Default)]
pub struct ConfigVersions {
    cache: Mutex<HashMap<(TenantId, u64), Arc<TenantConfig>>>,
}

impl ConfigVersions {
    /// Bounded: past this many entries the cache starts again.
    const MAX: usize = 10_000;

    /// The version, from the cache or from Redis.
    pub async fn get(
        &self,
        conn: &ConnectionManager,
        tenant: &TenantId,
        version: u64,
    ) -> Result<Arc<TenantConfig>, StoreError> {
        let key = (tenant.clone(), version);
        if let Some(hit) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(hit);
        }
        let config = Arc::new(at(conn, tenant, version).await?);
        self.remember(key, config.clone());
        Ok(config)
    }

    /// Keeps a version just written or read.
    pub fn remember(&self, key: (TenantId, u64), config: Arc<TenantConfig>) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= Self::MAX {
                cache.clear();
            }
            cache.insert(key, config);
        }
    }
}
