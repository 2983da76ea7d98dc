//! A tenant's configuration as the core sees it: work-order types, the custom
//! attribute schema, sub-states, modification rules, plugins and auto-close.
//! Each configuration is one immutable version; an order records the version
//! it was created under.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{OrderState, UpdateGroup};

/// The shortest retention of closed orders.
pub const MIN_RETENTION_MS: u64 = 1_000;
/// The longest retention of closed orders (ten years).
pub const MAX_RETENTION_MS: u64 = 3_650 * 24 * 3_600_000;

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
    /// How long a plugin gets to answer, how often it is asked again, and
    /// what a plugin that never answers means.
    #[serde(default)]
    pub plugin_policy: PluginPolicy,
    /// Close an EXECUTED order as COMPLETED after this many milliseconds;
    /// `None` waits for an explicit close.
    #[serde(default)]
    pub auto_close_after_ms: Option<u64>,
    /// Expected times for reaching states (Manhattan milestones).
    #[serde(default)]
    pub milestones: Vec<Milestone>,
    /// Archive a CLOSED order this many milliseconds after it closed, and
    /// remove it from the live store; `None` keeps closed orders live. Not
    /// a rule of how an order is decided: the tenant's current version
    /// applies to every order.
    #[serde(default)]
    pub retention_ms: Option<u64>,
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
            plugin_policy: PluginPolicy::default(),
            auto_close_after_ms: None,
            milestones: Vec::new(),
            retention_ms: None,
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

/// What to do when a validation plugin does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OnTimeout {
    /// The order fails validation (CLOSED, VALIDATION_FAILED).
    #[default]
    Fail,
    /// The plugin counts as having accepted the order.
    Pass,
}

/// How validation plugins are asked (the runtime applies it; the core only
/// checks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginPolicy {
    /// How long one request waits for an answer.
    #[serde(default = "PluginPolicy::default_timeout_ms")]
    pub timeout_ms: u64,
    /// How many more times a plugin is asked after a timeout.
    #[serde(default = "PluginPolicy::default_retries")]
    pub retries: u32,
    /// What a plugin that never answered means.
    #[serde(default)]
    pub on_timeout: OnTimeout,
}

impl PluginPolicy {
    fn default_timeout_ms() -> u64 {
        2_000
    }
    fn default_retries() -> u32 {
        2
    }
}

impl Default for PluginPolicy {
    fn default() -> Self {
        Self {
            timeout_ms: Self::default_timeout_ms(),
            retries: Self::default_retries(),
            on_timeout: OnTimeout::Fail,
        }
    }
}

/// A milestone: the order should reach a state within a time, counted from
/// its creation or from another milestone being met. A monitoring rule raises
/// an event some time before it is due, and one when it is missed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Milestone {
    /// `[A-Za-z0-9_-]{1,64}`, unique per tenant.
    pub name: String,
    /// The state that meets it (or any later state in the lifecycle).
    pub reach: OrderState,
    /// Milliseconds allowed.
    pub within_ms: u64,
    /// Count from this milestone being met; `None` counts from creation.
    #[serde(default)]
    pub after: Option<String>,
    /// Raise `milestone_due_soon` this many milliseconds before it is due.
    #[serde(default)]
    pub warn_before_ms: Option<u64>,
}

/// The most milestones, plugins, attributes, types or sub-states of one kind.
pub const MAX_ITEMS: usize = 64;

fn is_token(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl TenantConfig {
    /// Every problem with this configuration; empty when it is valid.
    pub fn problems(&self) -> Vec<crate::rejection::FieldProblem> {
        let mut p = crate::validate::Problems::default();
        let mut count = |field: &str, n: usize| {
            if n > MAX_ITEMS {
                p.add(field, "LENGTH", format!("at most {MAX_ITEMS} entries"));
            }
        };
        count("attributes", self.attributes.len());
        count("workOrderTypes", self.work_order_types.len());
        count("plugins", self.plugins.len());
        count("milestones", self.milestones.len());
        let mut seen = std::collections::BTreeSet::new();
        for (i, a) in self.attributes.iter().enumerate() {
            let f = format!("attributes[{i}]");
            if !(1..=32).contains(&a.name.len()) || !a.name.bytes().all(|b| b.is_ascii_alphabetic())
            {
                p.add(
                    format!("{f}.name"),
                    "PATTERN",
                    "must match ^[a-zA-Z]{1,32}$",
                );
            }
            if !seen.insert(a.name.as_str()) {
                p.add(format!("{f}.name"), "DUPLICATE", "is defined twice");
            }
            if let Some(d) = a.description.as_deref().filter(|d| !d.is_empty()) {
                let mut chars = d.chars();
                let ok = d.chars().count() <= 256
                    && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == ',' || c.is_whitespace());
                if !ok {
                    p.add(
                        format!("{f}.description"),
                        "PATTERN",
                        "must be 0 to 256 characters matching ^([a-zA-Z])([a-zA-Z0-9,\\s]*)$",
                    );
                }
            }
            if let Some(r) = a.validation.range {
                if let (Some(min), Some(max)) = (r.min, r.max) {
                    if min > max {
                        p.add(
                            format!("{f}.validation.range"),
                            "RANGE",
                            "min must not exceed max",
                        );
                    }
                }
            }
            if let Some(re) = &a.validation.regex {
                if crate::validate::pattern_matches(re, "").is_none() {
                    p.add(
                        format!("{f}.validation.regex"),
                        "BAD_SCHEMA",
                        "is not a valid regular expression",
                    );
                }
            }
            if let Some(d) = &a.default_value {
                let mut inner = crate::validate::Problems::default();
                crate::validate::attribute_value(&mut inner, a, d);
                if !inner.is_empty() {
                    p.add(
                        format!("{f}.defaultValue"),
                        "INVALID_DEFAULT",
                        "does not pass the attribute's own validation",
                    );
                }
            }
        }
        for (name, t) in &self.work_order_types {
            let f = format!("workOrderTypes.{name}");
            if !is_token(name, 32) {
                p.add(&f, "PATTERN", "type names must match [A-Za-z0-9_-]{1,32}");
            }
            if !(1..=10).contains(&t.max_attempts) {
                p.add(format!("{f}.maxAttempts"), "RANGE", "must be 1 to 10");
            }
            if !is_token(&t.job_type, 64) {
                p.add(
                    format!("{f}.jobType"),
                    "PATTERN",
                    "must match [A-Za-z0-9_-]{1,64}",
                );
            }
        }
        for (state, c) in &self.sub_states {
            let f = format!("subStates.{state}");
            for s in &c.sub_states {
                if !is_token(s, 64) {
                    p.add(
                        &f,
                        "PATTERN",
                        "sub-state names must match [A-Za-z0-9_-]{1,64}",
                    );
                }
            }
            for (from, to) in &c.transitions {
                if !c.sub_states.contains(from) || !c.sub_states.contains(to) {
                    p.add(
                        format!("{f}.transitions"),
                        "UNKNOWN_SUB_STATE",
                        "a transition names a sub-state that is not configured",
                    );
                }
            }
        }
        for (i, name) in self.plugins.iter().enumerate() {
            if !is_token(name, 64) {
                p.add(
                    format!("plugins[{i}]"),
                    "PATTERN",
                    "must match [A-Za-z0-9_-]{1,64}",
                );
            }
        }
        if !(10..=60_000).contains(&self.plugin_policy.timeout_ms) {
            p.add(
                "pluginPolicy.timeoutMs",
                "RANGE",
                "must be 10 ms to 60 seconds",
            );
        }
        if self.plugin_policy.retries > 10 {
            p.add("pluginPolicy.retries", "RANGE", "must be 0 to 10");
        }
        if self
            .auto_close_after_ms
            .is_some_and(|ms| ms > 90 * 24 * 3_600_000)
        {
            p.add("autoCloseAfterMs", "RANGE", "must be at most 90 days");
        }
        if self
            .retention_ms
            .is_some_and(|ms| !(MIN_RETENTION_MS..=MAX_RETENTION_MS).contains(&ms))
        {
            p.add("retentionMs", "RANGE", "must be 1 second to 10 years");
        }
        let names: std::collections::BTreeSet<&str> =
            self.milestones.iter().map(|m| m.name.as_str()).collect();
        if names.len() != self.milestones.len() {
            p.add("milestones", "DUPLICATE", "milestone names must be unique");
        }
        for (i, m) in self.milestones.iter().enumerate() {
            let f = format!("milestones[{i}]");
            if !is_token(&m.name, 64) {
                p.add(
                    format!("{f}.name"),
                    "PATTERN",
                    "must match [A-Za-z0-9_-]{1,64}",
                );
            }
            if m.within_ms == 0 || m.within_ms > 365 * 24 * 3_600_000 {
                p.add(format!("{f}.withinMs"), "RANGE", "must be 1 ms to 365 days");
            }
            if let Some(after) = &m.after {
                if after == &m.name || !names.contains(after.as_str()) {
                    p.add(
                        format!("{f}.after"),
                        "UNKNOWN_MILESTONE",
                        "must name another milestone of this tenant",
                    );
                }
            }
            if m.warn_before_ms.is_some_and(|w| w >= m.within_ms) {
                p.add(
                    format!("{f}.warnBeforeMs"),
                    "RANGE",
                    "must be less than withinMs",
                );
            }
        }
        // Milestones counted from one another must not form a cycle.
        for m in &self.milestones {
            let mut at = m.after.as_deref();
            let mut hops = 0;
            while let Some(name) = at {
                hops += 1;
                if name == m.name || hops > self.milestones.len() {
                    p.add(
                        "milestones",
                        "CYCLE",
                        format!("milestone {} is counted from itself", m.name),
                    );
                    break;
                }
                at = self
                    .milestones
                    .iter()
                    .find(|x| x.name == name)
                    .and_then(|x| x.after.as_deref());
            }
        }
        p.0
    }
}
