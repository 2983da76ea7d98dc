//! # orderd: order orchestration on NATS
//!
//! One actor per live order, commands and events on NATS JetStream, snapshots
//! in Redis. The pure domain lives in the `orderd-core` crate; this crate is
//! the shell around it.
//!
//! # Layout
//! Each folder is one concern, with a `//!` page that says what lives there
//! and what it may import. Bottom to top; a module imports only from its
//! own layer or the layers below it (`tests/layout.rs` checks it):
//!
//! 1. The wire contract, pure (no I/O):
//!    - [`subjects`]: every NATS subject orderd builds or reads, the stream
//!      names and filters, the read service's endpoints, and the catalogue
//!      that `subjects/orderd.asyncapi.yaml` mirrors;
//!    - [`headers`]: every message header name, and the `Nats-Msg-Id`
//!      values orderd derives;
//!    - [`wire`]: the payloads: command bodies and their decoding into core
//!      commands, outcomes, event messages, job commands, order views and
//!      read requests, with their stable error codes;
//!    - [`outbox`]: the messages a persisted change owes NATS;
//!    - [`settings`]: the one `Settings` struct, file < environment,
//!      validated;
//!    - [`telemetry`]: every metric's name and meaning, recorded through
//!      the `metrics` facade (a leaf: every layer may record into it);
//!    - [`retry`]: the delays before trying again after a passing failure
//!      (exponential with jitter; a leaf too).
//! 2. The servers, one module each, nothing above them:
//!    - [`store`]: Redis: every key format and every Redis command
//!      (snapshots with their outbox and command ids, personal data,
//!      indexes, timers, tenant configurations, the index backfill; every
//!      key in [`store::keys`]; it names a write's fence by its
//!      [`subjects::Unit`]);
//!    - [`bus`]: NATS: the connection, the six streams, the outbox
//!      publisher.
//! 3. [`order`]: the order actors (decide → persist → publish → answer),
//!    their router and messages, and the timer and plugin tasks that feed
//!    them. Beside it, [`archive`]: an order's record beyond the live
//!    store (its history read back, the archive of closed orders past
//!    their tenant's retention, erasing a contact or location).
//! 4. The two ways in, side by side (neither imports the other):
//!    - [`intake`]: the lanes (durable consumers of commands and job
//!      updates), the pull loop and the ack policy;
//!    - [`api`]: the read service (NATS Services API): get, explain, query,
//!      history, outcome, health and the `config.*` endpoints;
//!    - [`http`]: the HTTP listener (health probes, metrics, the dashboard),
//!      reading through the read service's `Reader`.
//! 5. [`app`]: `run(settings, shutdown)`, the single entry point, which
//!    wires them together, and the shutdown order.
//!
//! Beside the layers, a client of them: [`cli`], the operator's command
//! line (`orderd get|hold|watch|…`). It talks to a running orderd over NATS
//! like any client, so it imports only the wire contract (`subjects`,
//! `headers`, `wire`) and `settings`, and nothing imports it but `main`.
//!
//! One command, NATS to Redis to its event: `intake/pull.rs` (pull, parse
//! with `wire`) → `order/router.rs` → `order/actor.rs` (decide in
//! `orderd_core`; persist with `store`; publish the outbox with `bus`) →
//! `intake/pull.rs` (answer the client, ack).

pub mod api;
pub mod app;
pub mod archive;
pub mod bus;
pub mod cli;
pub mod headers;
pub mod http;
pub mod intake;
pub mod order;
pub mod outbox;
pub mod retry;
pub mod settings;
pub mod store;
pub mod subjects;
pub mod telemetry;
pub mod wire;
