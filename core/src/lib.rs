//! # orderd-core: the pure order domain
//!
//! The heart of orderd, in the sans-IO style: no I/O, no clock, no randomness.
//! Time, the tenant's configuration and fresh ids come in with each command in
//! a [`Ctx`]; what must happen comes out as values.
//!
//! ## Layout
//! - [`ids`]: identifier newtypes whose text is always a valid subject token.
//! - [`model`]: the [`Order`] and its [`WorkOrder`]s.
//! - [`command`]: [`Command`]s and the [`Envelope`] and [`Ctx`] they come in.
//! - [`event`]: [`Event`]s, a [`Change`] (one command's events under one
//!   sequence number), and the [`JobCommand`]s a change sends to dispatch.
//! - [`rejection`]: every refusal with its stable code.
//! - [`config`]: the tenant configuration the core reads.
//! - [`validate`]: checks of core and custom attributes.
//! - [`decide`]: `decide(&order, &envelope, &ctx) -> Result<Vec<Event>, Rejection>`
//!   and the flow engine that derives dispatches, returns and closure.
//! - [`apply`]: `apply(&mut order, &event)`, the only way an order changes.
//! - [`explain`]: what an order waits for and which commands it accepts now.
//!
//! ## The seam
//! The runtime calls [`execute`] for each command: it returns the [`Change`]
//! to persist (apply it with [`apply_change`]), `Duplicate` for a command id
//! the order has already applied, or the [`Rejection`]. Rebuilding an order by
//! applying its recorded changes to [`Order::blank`] gives the same order.

pub mod apply;
pub mod command;
pub mod config;
pub mod decide;
pub mod event;
pub mod explain;
pub mod ids;
pub mod model;
pub mod rejection;
pub mod validate;

pub use apply::{apply, apply_change};
pub use command::{Command, Ctx, Envelope};
pub use config::TenantConfig;
pub use decide::decide;
pub use event::{Change, Event, JobAction, JobCommand, Personal};
pub use explain::{explain, Explanation};
pub use ids::{CommandId, OrderId, TenantId, Timestamp, WorkOrderId};
pub use model::{Order, OrderState, WorkOrder, WorkOrderState};
pub use rejection::{Rejection, Severity};

/// What became of one command.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Accepted: persist this change, then carry out its effects.
    Applied(Change),
    /// The order already applied this command id: nothing to do.
    Duplicate,
    /// Refused; the order is unchanged.
    Refused(Rejection),
}

/// Decides one command and wraps its events into the next [`Change`].
pub fn execute(order: &Order, envelope: &Envelope, ctx: &Ctx<'_>) -> Outcome {
    if order.applied_commands.contains(&envelope.command_id) {
        return Outcome::Duplicate;
    }
    match decide(order, envelope, ctx) {
        Ok(events) => Outcome::Applied(Change {
            seq: order.seq + 1,
            command_id: envelope.command_id.clone(),
            command: envelope.command.verb().to_owned(),
            at: ctx.now,
            by: envelope.by.clone(),
            events,
        }),
        Err(rejection) => Outcome::Refused(rejection),
    }
}
