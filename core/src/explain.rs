//! `explain`: what an order waits for, and which commands it accepts now.

use serde::Serialize;

use crate::config::TenantConfig;
use crate::model::{Order, OrderState, Timer};

/// One command kind and whether the order accepts it now.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandAllowance {
    /// The verb (hold, resume, cancel, …).
    pub command: &'static str,
    /// Accepted now.
    pub allowed: bool,
    /// When refused: the stable code.
    pub code: Option<&'static str>,
    /// When refused: why, in plain words.
    pub reason: Option<String>,
}

/// An order's situation in plain words.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The order state.
    pub state: OrderState,
    /// Sentences saying what it waits for and what would move it.
    pub waiting_for: Vec<String>,
    /// Every client command kind, allowed or refused with the reason.
    pub commands: Vec<CommandAllowance>,
    /// Pending timers.
    pub timers: Vec<Timer>,
}

/// Explains an order.
pub fn explain(order: &Order, _config: &TenantConfig) -> Explanation {
    Explanation { state: order.state, waiting_for: Vec::new(), commands: Vec::new(), timers: order.timers.clone() }
}
