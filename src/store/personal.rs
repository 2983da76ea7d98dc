//! Personal data (contacts and addresses), stored apart from the order under
//! their own ids ([`keys::contact`], [`keys::location`]), so an order's
//! snapshot, events and logs carry only the ids.
//!
//! Invariant: an item is written by the save script of the snapshot that
//! first refers to it, in the same atomic step and before it, so a stored
//! snapshot never names an item that is not stored.

use std::fmt;

use orderd_core::ids::{ContactId, LocationId};
use orderd_core::{Personal, TenantId};

use super::{keys, RedisStore, StoreError};

/// The `(key, msgpack value)` pairs the save script sets for `items`.
pub(super) fn writes(items: &[Personal]) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    items
        .iter()
        .map(|item| {
            Ok(match item {
                Personal::Contact(id, contact) => {
                    (keys::contact(id), rmp_serde::to_vec_named(contact)?)
                }
                Personal::Location(id, address) => {
                    (keys::location(id), rmp_serde::to_vec_named(address)?)
                }
            })
        })
        .collect()
}

impl RedisStore {
    /// A stored contact, as stored (msgpack), for tests and tools.
    pub async fn stored_contact(
        &self,
        id: impl fmt::Display,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.stored_personal(keys::contact(id)).await
    }

    /// A stored location, as stored (msgpack), for tests and tools.
    pub async fn stored_location(
        &self,
        id: impl fmt::Display,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.stored_personal(keys::location(id)).await
    }

    async fn stored_personal(&self, key: String) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.conn();
        Ok(redis::cmd("GET").arg(key).query_async(&mut conn).await?)
    }
}

/// A contact or a location, by id: what a lookup reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonalRef {
    /// A contact.
    Contact(ContactId),
    /// An address.
    Location(LocationId),
}

impl PersonalRef {
    /// `contact` or `location`.
    pub fn kind(self) -> &'static str {
        match self {
            PersonalRef::Contact(_) => "contact",
            PersonalRef::Location(_) => "location",
        }
    }

    pub(super) fn key(self) -> String {
        match self {
            PersonalRef::Contact(id) => keys::contact(id),
            PersonalRef::Location(id) => keys::location(id),
        }
    }

    pub(super) fn id(self) -> String {
        match self {
            PersonalRef::Contact(id) => id.to_string(),
            PersonalRef::Location(id) => id.to_string(),
        }
    }
}

/// A stored contact or location, decoded.
pub(super) fn decode(what: PersonalRef, bytes: &[u8]) -> Result<Personal, StoreError> {
    let corrupt = |source| StoreError::Corrupt {
        key: what.key(),
        source,
    };
    Ok(match what {
        PersonalRef::Contact(id) => {
            Personal::Contact(id, rmp_serde::from_slice(bytes).map_err(corrupt)?)
        }
        PersonalRef::Location(id) => {
            Personal::Location(id, rmp_serde::from_slice(bytes).map_err(corrupt)?)
        }
    })
}

/// One read of personal data, as the audit keeps it (never the data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When, ms since the epoch (the Redis server's clock).
    pub at_ms: i64,
    /// `contact` or `location`.
    pub kind: String,
    /// The id asked for.
    pub id: String,
    /// Who asked, as the request named itself.
    pub by: String,
    /// Whether the tenant had it.
    pub found: bool,
}

/// How many audit entries a tenant keeps (about: trimmed in whole blocks).
pub(super) const AUDIT_KEPT: usize = 100_000;

/// Resolves a contact or location the tenant's orders stored, and records
/// the read in the tenant's audit, in one atomic step: the data only if
/// the key is in the tenant's set (another tenant's id reads as absent).
///
/// KEYS: 1 the tenant's personal set, 2 the item's key, 3 the audit stream.
/// ARGV: 1 entries kept, 2 kind, 3 id, 4 by.
const LOOKUP_SCRIPT: &str = r"
local v = false
if redis.call('SISMEMBER', KEYS[1], KEYS[2]) == 1 then
  v = redis.call('GET', KEYS[2])
end
local found = '0'
if v then found = '1' end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*', 'kind', ARGV[2], 'id', ARGV[3], 'by', ARGV[4], 'found', found)
return v
";

impl RedisStore {
    /// The tenant's contact or address, decoded, if one of its orders
    /// stored it; the read is audited either way, as done by `by`.
    pub async fn lookup_personal(
        &self,
        tenant: &TenantId,
        what: PersonalRef,
        by: &str,
    ) -> Result<Option<Personal>, StoreError> {
        let key = what.key();
        let mut conn = self.conn();
        let bytes: Option<Vec<u8>> = redis::Script::new(LOOKUP_SCRIPT)
            .key(keys::tenant_personal(tenant))
            .key(&key)
            .key(keys::tenant_audit(tenant))
            .arg(AUDIT_KEPT)
            .arg(what.kind())
            .arg(what.id())
            .arg(by)
            .invoke_async(&mut conn)
            .await?;
        bytes.map(|b| decode(what, &b)).transpose()
    }

    /// Which of `items` the tenant's orders stored (one answer each, in
    /// order): a reference by id must name one of them.
    pub async fn personal_held(
        &self,
        tenant: &TenantId,
        items: &[PersonalRef],
    ) -> Result<Vec<bool>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("SMISMEMBER");
        cmd.arg(keys::tenant_personal(tenant));
        for item in items {
            cmd.arg(item.key());
        }
        Ok(cmd.query_async(&mut self.conn()).await?)
    }

    /// The tenant's latest `limit` audit entries, newest first.
    pub async fn personal_audit(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        type Raw = Vec<(String, Vec<(String, String)>)>;
        let raw: Raw = redis::cmd("XREVRANGE")
            .arg(keys::tenant_audit(tenant))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.conn())
            .await?;
        Ok(raw
            .into_iter()
            .map(|(stream_id, fields)| {
                let field = |name: &str| {
                    fields
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                AuditEntry {
                    at_ms: stream_id
                        .split('-')
                        .next()
                        .and_then(|ms| ms.parse().ok())
                        .unwrap_or(0),
                    kind: field("kind"),
                    id: field("id"),
                    by: field("by"),
                    found: field("found") == "1",
                }
            })
            .collect())
    }
}
