//! The orders' live side: one actor per live order and the router that
//! owns them, and the two background tasks that feed them commands of their
//! own.
//! - [`messages`]: the messages of actors and router, and the clock: the
//!   vocabulary the intake, the read service and the tasks below share;
//! - [`router`]: the registry of live actors: spawning, forwarding in
//!   order, passivation;
//! - [`actor`]: the order actor, the thin shell around
//!   `orderd_core::execute`: decide → persist (compare-and-set, the outbox
//!   inside it) → publish the outbox → answer the intake;
//! - [`plugins`]: asks an INITIATED order's validation plugins and feeds the
//!   verdicts back as commands;
//! - [`timers`]: wakes orders whose timers are due, at a bounded rate.
//!
//! May import: [`crate::store`], [`crate::bus`] (the publisher), the wire
//! contract ([`crate::outbox`], [`crate::subjects`], [`crate::wire`]) and
//! [`crate::settings`], [`crate::telemetry`] and [`crate::retry`]. Never the intake or the read service, which sit
//! above it. Inside: `messages` imports nothing of the crate; `plugins` and
//! `timers` speak to the router by [`messages`] only.

pub mod actor;
pub mod messages;
pub mod plugins;
pub mod router;
pub mod timers;

pub use actor::{Deps, OrderActor, MAX_BATCH};
pub use messages::{
    system_clock, Clock, CreatesSettled, Execution, NotLive, OrderMsg, RetryReason, Routed,
    RouterMsg, Summary, Verdict,
};
pub use router::Router;
