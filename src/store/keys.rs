//! Every Redis key orderd reads or writes, and nothing else: no other module
//! formats a key (tests may call these functions to look at what is stored).
//!
//! | key | type | holds | written by |
//! | --- | --- | --- | --- |
//! | `orderd:order:<orderId>` | hash | `v` version, `snap` msgpack snapshot, `idx` the index keys of the last write | the save script |
//! | `orderd:order:<orderId>:cmds` | string | applied command ids, each followed by a newline | the save script (APPEND) |
//! | `orderd:idx:<tenant>:state:<STATE>` | sorted set | order ids by createdAt | the save script |
//! | `orderd:idx:<tenant>:coid:<clientOrderId>` | sorted set | order ids by createdAt | the save script |
//! | `orderd:idx:<tenant>:created` | sorted set | every order id by createdAt | the save script |
//! | `orderd:idx:<tenant>:sub:<subState>` | sorted set | order ids by createdAt | the save script |
//! | `orderd:idx:<tenant>:attr:<name>:<json value>` | sorted set | order ids by createdAt | the save script |
//! | `orderd:idx:<tenant>:num:<name>` | sorted set | order ids by the number | the save script |
//! | `orderd:idx:<tenant>:backfill` | hash | `attrs`, `cursor`, `version` of an index backfill | the publish script, the backfill |
//! | `orderd:backfills` | set | tenants with an index backfill | the publish script, the backfill |
//! | `orderd:timers` | sorted set | order ids by their earliest due timer (ms) | the save script |
//! | `orderd:contact:<contactId>` | string | msgpack contact (personal data) | the save script |
//! | `orderd:location:<locationId>` | string | msgpack address (personal data) | the save script |
//! | `orderd:tenant:<tenant>:config:<version>` | string | msgpack `TenantConfig`, never changed | the publish script |
//! | `orderd:tenant:<tenant>:config:current` | string | the current version number | the publish script |
//! | `orderd:tenant:<tenant>:personal` | set | the contact and location keys the tenant's orders stored: what its reads may resolve | the save script |
//! | `orderd:tenant:<tenant>:audit` | stream | one entry per read of personal data (kind, id, by, found; never the data), capped | the lookup script |
//! | `orderd:tenant:<tenant>:epoch`, `orderd:tenant:<tenant>:epoch:<partition>` | string | the epoch of the owner of the tenant's partition 0 (or of the whole tenant), and of its other partitions: their orders are written with it only | the owner's claim (`fence`) |
//!
//! Invariants: every key starts with [`ROOT`]; tenants and ids are printed by
//! their own `Display`, which never holds a `:`, so a key names one thing;
//! the formats never change without a migration (they are what a running
//! Redis holds).

use std::fmt;

use orderd_core::{OrderId, OrderState, TenantId};

/// The first segment of every key.
pub const ROOT: &str = "orderd";

/// The set of order ids by their earliest due timer, of every tenant: what
/// orderd kept before each tenant had its own ([`tenant_timers`]). Writes
/// remove an order from it; the sweep still wakes the orders left in it.
pub const TIMERS: &str = "orderd:timers";

/// The set of tenants with an index backfill in progress.
pub const BACKFILLS: &str = "orderd:backfills";

/// An order's snapshot hash: `{v: version, snap: msgpack Snapshot, idx:
/// the index keys its last write added, newline-separated}`.
pub fn order(order: &OrderId) -> String {
    format!("orderd:order:{order}")
}

/// An order's applied command ids: each followed by a newline (a command id
/// never holds whitespace), appended by every write.
pub fn command_ids(order: &OrderId) -> String {
    format!("orderd:order:{order}:cmds")
}

/// The commands an order refused: a hash of command id to the answer the
/// client was given (text), so a redelivered refusal gets the same answer
/// instead of being decided again on a later state.
pub fn refusals(order: &OrderId) -> String {
    format!("orderd:order:{order}:refused")
}

/// A tenant's orders in one state, by createdAt.
pub fn state_index(tenant: &TenantId, state: OrderState) -> String {
    format!("orderd:idx:{tenant}:state:{}", state.as_str())
}

/// A tenant's orders with one client order id, by createdAt.
pub fn client_order_index(tenant: &TenantId, client_order_id: &str) -> String {
    format!("orderd:idx:{tenant}:coid:{client_order_id}")
}

/// Every order of the tenant, by createdAt.
pub fn created_index(tenant: &TenantId) -> String {
    format!("orderd:idx:{tenant}:created")
}

/// A tenant's orders in one sub-state, by createdAt.
pub fn sub_state_index(tenant: &TenantId, sub_state: &str) -> String {
    format!("orderd:idx:{tenant}:sub:{sub_state}")
}

/// A tenant's orders whose string or boolean attribute has this value (its
/// JSON text), by createdAt.
pub fn attribute_index(tenant: &TenantId, name: &str, value: &serde_json::Value) -> String {
    format!("orderd:idx:{tenant}:attr:{name}:{value}")
}

/// A tenant's orders with a number attribute, scored by its value.
pub fn number_index(tenant: &TenantId, name: &str) -> String {
    format!("orderd:idx:{tenant}:num:{name}")
}

/// A tenant's index backfill in progress: a hash `{attrs, cursor, version}`
/// (the attributes being filled in, newline-separated and sorted; the
/// cursor of the next page of [`created_index`]; the version that asked for
/// them). Absent when none is running.
pub fn backfill(tenant: &TenantId) -> String {
    format!("orderd:idx:{tenant}:backfill")
}

/// A stored contact (personal data, apart from the order).
pub fn contact(id: impl fmt::Display) -> String {
    format!("orderd:contact:{id}")
}

/// A stored location (personal data, apart from the order).
pub fn location(id: impl fmt::Display) -> String {
    format!("orderd:location:{id}")
}

/// One version of a tenant's configuration.
pub fn config_version(tenant: &TenantId, version: u64) -> String {
    format!("{}{version}", config_version_prefix(tenant))
}

/// What every [`config_version`] key of the tenant starts with (the read
/// script appends the version it finds current).
pub fn config_version_prefix(tenant: &TenantId) -> String {
    format!("orderd:tenant:{tenant}:config:")
}

/// The tenant's current configuration version number.
pub fn config_current(tenant: &TenantId) -> String {
    format!("orderd:tenant:{tenant}:config:current")
}

/// The contact and location keys the tenant's orders stored.
pub fn tenant_personal(tenant: &TenantId) -> String {
    format!("orderd:tenant:{tenant}:personal")
}

/// The tenant's audit of personal-data reads.
pub fn tenant_audit(tenant: &TenantId) -> String {
    format!("orderd:tenant:{tenant}:audit")
}

/// A tenant's CLOSED orders, scored by their last change (ms): what the
/// archive sweep reads once their retention has passed.
pub fn closed_index(tenant: &TenantId) -> String {
    format!("orderd:idx:{tenant}:closed")
}

/// The contact and location keys of the tenant that were erased, each with
/// when (ms): a lookup of one answers that it was erased.
pub fn tenant_erased(tenant: &TenantId) -> String {
    format!("orderd:tenant:{tenant}:erased")
}

/// The tenant's orders with a pending timer, by their earliest due time
/// (ms): the tenant's owner wakes them.
pub fn tenant_timers(tenant: &TenantId) -> String {
    format!("orderd:tenant:{tenant}:timers")
}

/// The layout the tenant's index entries follow (see
/// `super::backfill::LAYOUT`).
pub fn tenant_layout(tenant: &TenantId) -> String {
    format!("orderd:tenant:{tenant}:layout")
}

/// The epoch of the unit's current owner (the fence): the tenant's key
/// for partition 0 (a whole tenant's), with the partition after it for
/// the others.
pub fn owner_epoch(unit: &crate::subjects::Unit) -> String {
    if unit.part == 0 {
        format!("orderd:tenant:{}:epoch", unit.tenant)
    } else {
        format!("orderd:tenant:{}:epoch:{}", unit.tenant, unit.part)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The formats are what a running Redis holds: pinned, so a change is
    /// a decision, not an accident.
    #[test]
    fn every_key_keeps_its_format() {
        let t = TenantId::parse("acme").unwrap();
        let id = OrderId(uuid::Uuid::nil());
        let nil = "00000000-0000-0000-0000-000000000000";
        let cases = [
            (order(&id), format!("orderd:order:{nil}")),
            (command_ids(&id), format!("orderd:order:{nil}:cmds")),
            (refusals(&id), format!("orderd:order:{nil}:refused")),
            (
                state_index(&t, OrderState::InProgress),
                "orderd:idx:acme:state:IN_PROGRESS".to_owned(),
            ),
            (
                client_order_index(&t, "PO-1"),
                "orderd:idx:acme:coid:PO-1".to_owned(),
            ),
            (created_index(&t), "orderd:idx:acme:created".to_owned()),
            (
                sub_state_index(&t, "PACKING"),
                "orderd:idx:acme:sub:PACKING".to_owned(),
            ),
            (
                attribute_index(&t, "region", &serde_json::json!("north")),
                "orderd:idx:acme:attr:region:\"north\"".to_owned(),
            ),
            (
                attribute_index(&t, "fragile", &serde_json::json!(true)),
                "orderd:idx:acme:attr:fragile:true".to_owned(),
            ),
            (
                number_index(&t, "weight"),
                "orderd:idx:acme:num:weight".to_owned(),
            ),
            (backfill(&t), "orderd:idx:acme:backfill".to_owned()),
            (contact("c1"), "orderd:contact:c1".to_owned()),
            (location("l1"), "orderd:location:l1".to_owned()),
            (
                config_version(&t, 7),
                "orderd:tenant:acme:config:7".to_owned(),
            ),
            (
                config_version_prefix(&t),
                "orderd:tenant:acme:config:".to_owned(),
            ),
            (
                config_current(&t),
                "orderd:tenant:acme:config:current".to_owned(),
            ),
            (TIMERS.to_owned(), "orderd:timers".to_owned()),
            (tenant_timers(&t), "orderd:tenant:acme:timers".to_owned()),
            (closed_index(&t), "orderd:idx:acme:closed".to_owned()),
            (tenant_erased(&t), "orderd:tenant:acme:erased".to_owned()),
            (tenant_layout(&t), "orderd:tenant:acme:layout".to_owned()),
            (BACKFILLS.to_owned(), "orderd:backfills".to_owned()),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
            assert!(got.starts_with(ROOT), "{got}");
        }
    }
}
