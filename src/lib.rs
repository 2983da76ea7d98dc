//! # orderd: order orchestration on NATS
//!
//! One actor per live order, commands and events on NATS JetStream, snapshots
//! in Redis. The pure domain lives in the `orderd-core` crate; this crate is
//! the shell around it.
//!
//! # Layout
//! - [`subjects`]: every NATS subject orderd builds or reads, the stream
//!   names and filters, the read service's endpoints, and the catalogue that
//!   `subjects/orderd.asyncapi.yaml` mirrors.
//! - [`headers`]: every message header name, and the `Nats-Msg-Id` values
//!   orderd derives.
//! - [`wire`]: the payloads: command bodies and their decoding into core
//!   commands, outcomes, event messages, job commands for dispatch, order
//!   views and read requests, with their stable error codes.

pub mod headers;
pub mod subjects;
pub mod wire;
