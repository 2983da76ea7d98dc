//! # orderd: order orchestration on NATS
//!
//! One actor per live order, commands and events on NATS JetStream, snapshots
//! in Redis. The pure domain lives in the `orderd-core` crate; this crate is
//! the shell around it.
//!
//! # Layout
//! Wire contract:
//! - [`subjects`]: every NATS subject orderd builds or reads, the stream
//!   names and filters, the read service's endpoints, and the catalogue that
//!   `subjects/orderd.asyncapi.yaml` mirrors.
//! - [`headers`]: every message header name, and the `Nats-Msg-Id` values
//!   orderd derives.
//! - [`wire`]: the payloads: command bodies and their decoding into core
//!   commands, outcomes, event messages, job commands for dispatch, order
//!   views and read requests, with their stable error codes.
//!
//! Runtime (a command flows down this list):
//! - [`settings`]: the one `Settings` struct, file < environment, validated.
//! - [`bus`]: the NATS connection, the five streams, the durable pull
//!   consumers and the outbox publisher.
//! - [`intake`]: pulls commands and job updates, parses them into envelopes,
//!   hands them to the router, and acks/naks/terms them (one function decides).
//! - [`router`]: the registry of live order actors; spawning, forwarding in
//!   order, passivation.
//! - [`actor`]: the order actor, the thin shell around `orderd_core::execute`:
//!   decide → persist (compare-and-set) → answer → publish the outbox.
//! - [`outbox`]: the messages a persisted change owes NATS.
//! - [`store`]: everything in Redis, and the only module that talks to it
//!   (every key in [`store::keys`]): snapshots written by compare-and-set
//!   with their query indexes, personal data and timers in one atomic step;
//!   tenant configurations, one immutable version per change; the index
//!   backfill ([`store::backfill`]), which writes a newly indexed
//!   attribute's entries for the tenant's older orders, in the background.
//! - [`plugins`]: asks an INITIATED order's validation plugins from its own
//!   tasks and feeds the verdicts back as commands.
//! - [`timers`]: wakes orders whose timers are due, at a bounded rate.
//! - [`service`]: the read endpoints (NATS Services API), with
//!   [`query`] (the query planner) and [`config_api`] (the `config.*`
//!   endpoints, dry run included, which replays recorded histories with
//!   [`replay`], pure).
//! - [`app`]: `run(settings, shutdown)`, the single entry point, and the
//!   shutdown order.

pub mod actor;
pub mod app;
pub mod bus;
pub mod config_api;
pub mod headers;
pub mod intake;
pub mod lanes;
pub mod outbox;
pub mod plugins;
pub mod query;
pub mod replay;
pub mod router;
pub mod service;
pub mod settings;
pub mod store;
pub mod subjects;
pub mod timers;
pub mod wire;
