//! `decide`: the rules. Placeholder while the rules are written.
use crate::command::{Ctx, Envelope};
use crate::event::Event;
use crate::model::Order;
use crate::rejection::Rejection;

/// Decides the events a command causes, or refuses it.
pub fn decide(_order: &Order, _envelope: &Envelope, _ctx: &Ctx<'_>) -> Result<Vec<Event>, Rejection> {
    Err(Rejection::OrderNotFound)
}
