//! The read side: the NATS Services API service `orderd` and what its
//! endpoints compute.
//! - [`service`]: the service and its endpoints (get, explain, query,
//!   history, outcome, health, `config.*`), the tenant fence, error replies;
//! - [`query`]: the query planner over the store's indexes;
//! - [`config`]: the `config.*` endpoints (get, validate, publish,
//!   attributes, dry run);
//! - [`replay`]: pure: replays a recorded history under a candidate
//!   configuration, for the dry run.
//!
//! May import: [`crate::order`] (its messages: a live order is read through
//! its actor), [`crate::archive`] (an order's history, archived orders,
//! erasure), [`crate::store`], [`crate::settings`] and the wire contract.
//! Inside: `service` → `config` → `replay`; `replay` imports only the wire
//! contract and the core.

pub mod config;
pub mod query;
pub mod replay;
pub mod service;

pub use service::{Reader, ServiceError, ServiceHandle};
