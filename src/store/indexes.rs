//! The secondary indexes a snapshot keeps, beyond state and client order id:
//! creation time, sub-state and the tenant's indexed custom attributes.
//!
//! Each index is a sorted set of order ids ([`super::keys`]):
//! - [`keys::created_index`]: every order, scored by createdAt (ms);
//! - [`keys::sub_state_index`]: scored by createdAt;
//! - [`keys::attribute_index`]: strings and booleans, scored by createdAt
//!   (equality);
//! - [`keys::number_index`]: numbers, scored by the value (equality and
//!   ranges);
//! - [`keys::closed_index`]: CLOSED orders, scored by their last change
//!   (the archive sweep's list).
//!
//! Invariants: the entries are a pure function of the order and the
//! tenant's **current** configuration version ([`entries`]), the same
//! version the query endpoint reads to decide what may be filtered on. The
//! save script (`snapshots.rs`) writes them in the same atomic step as the
//! snapshot, only while that version is still current (it compares the
//! tenant's current pointer), and removes the entries of the previous
//! snapshot that no longer hold, so an index never disagrees with a stored
//! snapshot.
//!
//! When a published version makes an attribute indexed (or changes how it
//! is indexed), the orders written before it lack its entries: the publish
//! marks the attribute in [`keys::backfill`] in the same script that moves
//! the pointer, and [`super::backfill`] rewrites every order's entries;
//! until it is done, queries on that attribute are refused with
//! `ORD-503-INDEX_BUILDING`.

use orderd_core::config::DataType;
use orderd_core::{Order, OrderState, TenantConfig};

use super::keys;

/// String values longer than this are not indexed (a key per value).
pub const MAX_INDEXED_VALUE: usize = 256;

/// How an attribute can be looked up, if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Equality, through [`keys::attribute_index`].
    Equality,
    /// Equality and ranges, through [`keys::number_index`].
    Numeric,
}

/// How an attribute of this configuration is indexed; `None` when it is not.
pub fn lookup(config: &TenantConfig, name: &str) -> Option<Lookup> {
    let def = config.attribute(name)?;
    if !def.indexed {
        return None;
    }
    match def.data_type {
        DataType::String | DataType::Boolean => Some(Lookup::Equality),
        DataType::Number => Some(Lookup::Numeric),
        DataType::Object | DataType::Array | DataType::Money => None,
    }
}

/// The attributes `next` indexes that `previous` did not index the same way
/// (newly indexed, or indexed as another type): the orders written under
/// `previous` lack their entries. Sorted.
pub fn newly_indexed(previous: &TenantConfig, next: &TenantConfig) -> Vec<String> {
    let mut names: Vec<String> = next
        .attributes
        .iter()
        .map(|a| a.name.as_str())
        .filter(|name| {
            let now = lookup(next, name);
            now.is_some() && now != lookup(previous, name)
        })
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The index entries `(key, score)` the order must have, beyond its state and
/// client order id entries; `config` is the tenant's current version.
pub fn entries(order: &Order, config: &TenantConfig) -> Vec<(String, f64)> {
    #[allow(clippy::cast_precision_loss)] // ms timestamps fit f64 exactly
    let created = order.created_at.0 as f64;
    let mut out = vec![(keys::created_index(&order.tenant), created)];
    if order.state == OrderState::Closed {
        #[allow(clippy::cast_precision_loss)]
        let closed = order.updated_at.0 as f64;
        out.push((keys::closed_index(&order.tenant), closed));
    }
    if let Some(sub) = &order.sub_state {
        out.push((keys::sub_state_index(&order.tenant, sub), created));
    }
    for (name, value) in &order.custom {
        match lookup(config, name) {
            Some(Lookup::Numeric) => {
                if let Some(n) = value.as_f64().filter(|n| n.is_finite()) {
                    out.push((keys::number_index(&order.tenant, name), n));
                }
            }
            Some(Lookup::Equality) => {
                let indexable = match value {
                    serde_json::Value::String(s) => s.len() <= MAX_INDEXED_VALUE,
                    serde_json::Value::Bool(_) => true,
                    _ => false,
                };
                if indexable {
                    out.push((keys::attribute_index(&order.tenant, name, value), created));
                }
            }
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderd_core::config::{AttributeDef, AttributeValidation};
    use orderd_core::{OrderId, TenantId, Timestamp};

    fn def(name: &str, data_type: DataType, indexed: bool) -> AttributeDef {
        AttributeDef {
            name: name.into(),
            description: None,
            data_type,
            validation: AttributeValidation::default(),
            default_value: None,
            indexed,
            security_level: None,
            delete: false,
        }
    }

    #[test]
    fn only_indexed_scalar_attributes_get_entries() {
        let tenant = TenantId::parse("acme").unwrap();
        let mut order = Order::blank(OrderId(uuid::Uuid::nil()), tenant.clone());
        order.created_at = Timestamp(1_000);
        order.sub_state = Some("PACKING".into());
        order.custom.insert("region".into(), "north".into());
        order.custom.insert("weight".into(), 12.5.into());
        order.custom.insert("note".into(), "x".into());
        order
            .custom
            .insert("tags".into(), serde_json::json!(["a", "b"]));
        let config = TenantConfig {
            attributes: vec![
                def("region", DataType::String, true),
                def("weight", DataType::Number, true),
                def("note", DataType::String, false),
                def("tags", DataType::Array, true),
            ],
            ..TenantConfig::default()
        };
        let got = entries(&order, &config);
        assert_eq!(
            got,
            vec![
                ("orderd:idx:acme:created".to_owned(), 1_000.0),
                ("orderd:idx:acme:sub:PACKING".to_owned(), 1_000.0),
                ("orderd:idx:acme:attr:region:\"north\"".to_owned(), 1_000.0),
                ("orderd:idx:acme:num:weight".to_owned(), 12.5),
            ]
        );
        assert_eq!(lookup(&config, "note"), None);
        assert_eq!(lookup(&config, "tags"), None);
        assert_eq!(lookup(&config, "weight"), Some(Lookup::Numeric));
    }

    #[test]
    fn newly_indexed_names_what_older_orders_lack() {
        let before = TenantConfig {
            attributes: vec![
                def("region", DataType::String, true),
                def("weight", DataType::Number, false),
                def("code", DataType::String, true),
                def("gone", DataType::String, true),
            ],
            ..TenantConfig::default()
        };
        let mut retired = def("gone", DataType::String, true);
        retired.delete = true;
        let after = TenantConfig {
            attributes: vec![
                def("region", DataType::String, true), // as before
                def("weight", DataType::Number, true), // now indexed
                def("code", DataType::Number, true),   // another type
                retired,                               // deleted
                def("fresh", DataType::Boolean, true), // new
                def("notes", DataType::String, false), // not indexed
                def("tags", DataType::Array, true),    // not indexable
            ],
            ..TenantConfig::default()
        };
        assert_eq!(newly_indexed(&before, &after), ["code", "fresh", "weight"]);
        assert!(newly_indexed(&after, &after).is_empty());
        assert!(newly_indexed(&after, &before).contains(&"code".to_owned()));
    }
}
