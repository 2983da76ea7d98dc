//! Personal data (contacts and addresses), stored apart from the order under
//! their own ids ([`keys::contact`], [`keys::location`]), so an order's
//! snapshot, events and logs carry only the ids.
//!
//! Invariant: an item is written by the save script of the snapshot that
//! first refers to it, in the same atomic step and before it, so a stored
//! snapshot never names an item that is not stored.

use std::fmt;

use orderd_core::Personal;

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
