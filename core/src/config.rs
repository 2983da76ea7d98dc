//! A tenant's configuration as the core sees it: work-order types, the custom
//! attribute schema, sub-states, modification rules, plugins and auto-close.
//! Each configuration is one immutable version; an order records the version
//! it was created under.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{OrderState, UpdateGroup};

/// Everything a tenant can configure that changes how the core decides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantConfig {
    /// The schema version; every published change makes a new one.
    #[serde(default)]
    pub version: u64,
    /// Work-order types by name (DELIVERY, PICKUP, …). Empty means the defaults.
    #[serde(default)]
    pub work_order_types: BTreeMap<String, WorkOrderType>,
    /// The custom attribute schema.
    #[serde(default)]
    pub attributes: Vec<AttributeDef>,
    /// Sub-states per order state.
    #[serde(default)]
    pub sub_states: BTreeMap<OrderState, SubStateConfig>,
    /// From which order state on each updatable group can no longer change.
    #[serde(default)]
    pub modification_rules: BTreeMap<UpdateGroup, OrderState>,
    /// Validation plugins (NATS services) a new order waits for, by name.
    #[serde(default)]
    pub plugins: Vec<String>,
    /// Close an EXECUTED order as COMPLETED after this many milliseconds;
    /// `None` waits for an explicit close.
    #[serde(default)]
    pub auto_close_after_ms: Option<u64>,
}

impl Default for TenantConfig {
    fn default() -> Self {
        Self {
            version: 1,
            work_order_types: BTreeMap::new(),
            attributes: Vec::new(),
            sub_states: BTreeMap::new(),
            modification_rules: BTreeMap::new(),
            plugins: Vec::new(),
            auto_close_after_ms: None,
        }
    }
}

impl TenantConfig {
    /// The work-order type with this name: the tenant's own when it configured
    /// any, otherwise the built-in defaults.
    pub fn work_order_type(&self, name: &str) -> Option<WorkOrderType> {
        if self.work_order_types.is_empty() {
            default_work_order_type(name)
        } else {
            self.work_order_types.get(name).cloned()
        }
    }

    /// The type used for RETURN work orders.
    pub fn return_type(&self) -> WorkOrderType {
        self.work_order_type(RETURN_TYPE)
            .unwrap_or_else(|| WorkOrderType::plain(3))
    }

    /// The attribute definition with this name.
    pub fn attribute(&self, name: &str) -> Option<&AttributeDef> {
        self.attributes.iter().find(|a| a.name == name && !a.delete)
    }
}

/// The name of the work-order type that returns goods.
pub const RETURN_TYPE: &str = "RETURN";

/// The built-in work-order types a tenant gets until it configures its own.
pub fn default_work_order_type(name: &str) -> Option<WorkOrderType> {
    let t = |max_attempts, on_failure, on_cancel| WorkOrderType {
        job_type: name.to_ascii_lowercase(),
        max_attempts,
        return_on_failure: on_failure,
        return_on_cancel: on_cancel,
    };
    match name {
        "DELIVERY" => Some(t(3, true, true)),
        "PICKUP" => Some(t(3, false, false)),
        "INSTALL" => Some(t(2, false, false)),
        "KYC" => Some(t(1, false, false)),
        RETURN_TYPE => Some(t(3, false, false)),
        _ => None,
    }
}

/// How the work orders of one type are run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkOrderType {
    /// The job type dispatch is asked to run.
    pub job_type: String,
    /// How many attempts a job gets before the work order fails (at least 1).
    pub max_attempts: u32,
    /// Add a RETURN work order when a work order of this type fails for good.
    #[serde(default)]
    pub return_on_failure: bool,
    /// Add a RETURN work order when the order is cancelled after goods moved.
    #[serde(default)]
    pub return_on_cancel: bool,
}

impl WorkOrderType {
    /// A type with `max_attempts` and no returns.
    pub fn plain(max_attempts: u32) -> Self {
        Self {
            job_type: "job".into(),
            max_attempts,
            return_on_failure: false,
            return_on_cancel: false,
        }
    }
}

/// The data type of a custom attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    /// Text.
    String,
    /// A JSON number.
    Number,
    /// true or false.
    Boolean,
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
    /// `{ "amount": number, "currency": "ISO" }`.
    Money,
}

/// A custom attribute definition (seed 002, `POST /config/attributes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributeDef {
    /// `^[a-zA-Z]{1,32}$`.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// The value's type.
    pub data_type: DataType,
    /// The checks a value must pass.
    #[serde(default)]
    pub validation: AttributeValidation,
    /// Used when an order does not give the attribute.
    #[serde(default)]
    pub default_value: Option<serde_json::Value>,
    /// Only indexed attributes can be filtered on.
    #[serde(default)]
    pub indexed: bool,
    /// Access level, kept as given.
    #[serde(default)]
    pub security_level: Option<String>,
    /// A deleted attribute is no longer accepted.
    #[serde(default)]
    pub delete: bool,
}

/// The checks of a custom attribute.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributeValidation {
    /// The order must carry the attribute (after defaults).
    #[serde(default)]
    pub required: bool,
    /// Numbers: the value; strings and arrays: the length.
    #[serde(default)]
    pub range: Option<Range>,
    /// Strings: a pattern the whole value must match (see `crate::pattern`).
    #[serde(default)]
    pub regex: Option<String>,
    /// The value must equal one of these.
    #[serde(default)]
    pub value_one_of: Option<Vec<serde_json::Value>>,
}

/// An inclusive range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Range {
    /// Lower bound.
    pub min: Option<f64>,
    /// Upper bound.
    pub max: Option<f64>,
}

/// The sub-states of one order state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubStateConfig {
    /// The sub-states allowed under the state.
    pub sub_states: Vec<String>,
    /// Allowed moves between two sub-states, `[from, to]`. Entering a
    /// sub-state from none, and clearing it, are always allowed.
    #[serde(default)]
    pub transitions: Vec<(String, String)>,
}
