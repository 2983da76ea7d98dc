//! The configuration API's requests and replies, and the validation plugin
//! protocol. The tenant travels in the body, as with the read endpoints.

use orderd_core::config::AttributeDef;
use orderd_core::{TenantConfig, TenantId};
use serde::{Deserialize, Serialize};

use super::{FieldProblemBody, OrderView, WireError};
use crate::subjects;

/// `config.get`: the current configuration, or one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigRequest {
    /// The tenant.
    pub tenant: String,
    /// A version; the current one when absent.
    #[serde(default)]
    pub version: Option<u64>,
}

/// `config.validate` and `config.publish`: a whole draft configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigDraft {
    /// The tenant.
    pub tenant: String,
    /// Every part at once (its `version` is ignored: orderd numbers versions).
    pub config: TenantConfig,
    /// Publish only if this is still the current version.
    #[serde(default)]
    pub expected_version: Option<u64>,
}

/// `config.attributes`: seed 002's `POST /config/attributes` body plus the
/// tenant. Each attribute replaces the one of the same name or is added;
/// `delete: true` retires it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributesRequest {
    /// The tenant.
    pub tenant: String,
    /// The attribute definitions.
    pub attributes: Vec<AttributeDef>,
    /// Publish only if this is still the current version.
    #[serde(default)]
    pub expected_version: Option<u64>,
}

/// `config.dryrun`: a draft replayed against the tenant's recent orders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DryRunRequest {
    /// The tenant.
    pub tenant: String,
    /// The draft.
    pub config: TenantConfig,
    /// How many of the most recent orders (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<u32>,
}

macro_rules! tenant_of {
    ($($t:ty),*) => {$(
        impl $t {
            /// The tenant, parsed.
            pub fn tenant(&self) -> Result<TenantId, WireError> {
                Ok(subjects::parse_tenant(&self.tenant)?)
            }
        }
    )*};
}
tenant_of!(ConfigRequest, ConfigDraft, AttributesRequest, DryRunRequest);

/// A stored configuration version (the reply of get, publish, attributes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigReply {
    /// The tenant.
    pub tenant: String,
    /// Its version.
    pub version: u64,
    /// The version new orders get now.
    pub current_version: u64,
    /// The configuration.
    pub config: TenantConfig,
    /// Attributes whose index is still being built for the tenant's older
    /// orders (after a version made them indexed); queries on them are
    /// refused with `ORD-503-INDEX_BUILDING` until this is empty.
    pub indexing: Vec<String>,
}

/// The reply of `config.validate` for a valid draft (an invalid one is
/// refused with every problem in the error's details).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidateReply {
    /// The tenant.
    pub tenant: String,
    /// Always true (an invalid draft gets an error reply).
    pub valid: bool,
    /// The version a publish would make now.
    pub next_version: u64,
}

/// The reply of `config.dryrun`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DryRunReply {
    /// The tenant.
    pub tenant: String,
    /// The version new orders get now.
    pub current_version: u64,
    /// How many recent orders were looked at.
    pub checked: usize,
    /// How many of them were replayed (the others are in `unreplayable`).
    pub replayed: usize,
    /// Problems with the draft itself (a draft with problems would be
    /// refused by publish; the replay still runs).
    pub problems: Vec<FieldProblemBody>,
    /// The orders the draft would decide differently.
    pub differences: Vec<OrderDifference>,
    /// The orders whose history could not be replayed, and why.
    pub unreplayable: Vec<UnreplayableOrder>,
}

/// One order whose recorded history comes out differently under the draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderDifference {
    /// The order.
    pub order_id: String,
    /// The configuration version it was created under.
    pub schema_version: u64,
    /// The ends differ; false when only a step along the way does (a
    /// refused command whose effect a later one made up for).
    pub ends_differently: bool,
    /// How its history ends replayed under its own version.
    pub now: OrderEnd,
    /// How it ends replayed under the draft.
    pub draft: OrderEnd,
    /// The first command whose outcome differs.
    pub first_difference: Option<StepDifference>,
}

/// Where a replayed history leaves the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderEnd {
    /// The order state.
    pub state: String,
    /// The tenant sub-state.
    pub sub_state: Option<String>,
    /// Why it is CLOSED, once it is.
    pub close_reason: Option<String>,
    /// The milestones it missed.
    pub milestones_missed: Vec<String>,
}

/// The first recorded command (or the timers due by the dry run's time)
/// whose outcome differs under the draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepDifference {
    /// The event message that recorded the command; null for the timers
    /// due by the dry run's time, after the last command.
    pub seq: Option<u64>,
    /// The command's verb.
    pub command: String,
    /// The command's idempotency key (null for the timers at the end).
    pub command_id: Option<String>,
    /// When, RFC 3339.
    pub at: String,
    /// Its outcome under the order's own version (`applied → IN_PROGRESS`).
    pub now: String,
    /// Its outcome under the draft (`refused ORD-409-…`).
    pub draft: String,
}

/// An order the dry run could not replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnreplayableOrder {
    /// The order.
    pub order_id: String,
    /// `NO_EVENTS`, `EVENTS_EXPIRED`, `SEQ_GAP`, `EVENTS_BEHIND`,
    /// `UNRECOGNISED_EVENTS` or `NOT_REPRODUCED`.
    pub code: String,
    /// Why, in words.
    pub reason: String,
}

/// What a validation plugin is asked: the order as `get` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginRequest {
    /// The tenant.
    pub tenant: String,
    /// The order.
    pub order_id: String,
    /// The plugin asked.
    pub plugin: String,
    /// The order (no personal data: contacts and addresses by id).
    pub order: OrderView,
}

/// What a validation plugin answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginReply {
    /// true: the plugin accepts the order.
    pub ok: bool,
    /// Why not (when `ok` is false).
    #[serde(default)]
    pub reasons: Vec<String>,
}
