//! Checks of core attributes (seed 002's patterns and bounds) and of custom
//! attributes against a tenant's schema. Every check adds to a list, so a
//! refusal names every problem at once.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::command::{
    Address, Contact, ContactInput, CreateOrder, DetailsPatch, LocationInput, StopInput,
    SummaryPatch, WorkOrderSpec,
};
use crate::config::{AttributeDef, DataType, TenantConfig};
use crate::model::{Item, Money, OrderSummary};
use crate::rejection::FieldProblem;

/// The most work orders one order may carry (returns included).
pub const MAX_WORK_ORDERS: usize = 100;
/// The longest client id, client name, client order id, plugin or job text.
pub const MAX_TEXT: usize = 128;
/// The deepest nesting of an object or array custom attribute value.
pub const MAX_DEPTH: usize = 8;
/// The most custom attributes on one order.
pub const MAX_CUSTOM_ATTRIBUTES: usize = 64;
/// The largest totalItems.
pub const MAX_TOTAL_ITEMS: u32 = 1000;
/// The most items one work order lists.
pub const MAX_ITEMS: usize = 100;
/// The longest item description, and the longest instructions.
pub const MAX_DESCRIPTION: usize = 256;
/// The longest instructions of a work order.
pub const MAX_INSTRUCTIONS: usize = 1024;

/// Problems found so far.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<FieldProblem>);

impl Problems {
    /// Records one problem.
    pub fn add(
        &mut self,
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) {
        self.0.push(FieldProblem {
            field: field.into(),
            code,
            message: message.into(),
        });
    }

    /// No problem found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn text(p: &mut Problems, field: &str, value: &str, min: usize, max: usize) {
    let n = value.chars().count();
    if n < min || n > max {
        p.add(
            field,
            "LENGTH",
            format!("must be {min} to {max} characters, got {n}"),
        );
    }
    if value.chars().any(char::is_control) {
        p.add(field, "PATTERN", "must not contain control characters");
    }
}

/// `invoiceNumber`: 3–64 characters, `^[a-zA-Z0-9:_-]*$`.
pub fn invoice_number(p: &mut Problems, v: &str) {
    let field = "orderSummary.invoiceNumber";
    let n = v.chars().count();
    if !(3..=64).contains(&n) {
        p.add(
            field,
            "LENGTH",
            format!("must be 3 to 64 characters, got {n}"),
        );
    }
    if !v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'))
    {
        p.add(field, "PATTERN", "must match ^[a-zA-Z0-9:_-]*$");
    }
}

/// `orderDescription`: 1–256 characters, `^([a-zA-Z])([a-zA-Z0-9,\s]*)$`.
pub fn order_description(p: &mut Problems, v: &str) {
    let field = "orderSummary.orderDescription";
    let n = v.chars().count();
    if !(1..=256).contains(&n) {
        p.add(
            field,
            "LENGTH",
            format!("must be 1 to 256 characters, got {n}"),
        );
    }
    let mut chars = v.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == ',' || c.is_whitespace());
    if !(first_ok && rest_ok) {
        p.add(
            field,
            "PATTERN",
            "must match ^([a-zA-Z])([a-zA-Z0-9,\\s]*)$",
        );
    }
}

fn money(p: &mut Problems, field: &str, m: &Money) {
    if !m.amount.is_finite() || m.amount < 0.0 {
        p.add(
            format!("{field}.amount"),
            "RANGE",
            "must be a number of at least 0",
        );
    }
    if m.currency.len() != 3 || !m.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        p.add(
            format!("{field}.currency"),
            "PATTERN",
            "must be an ISO 4217 code (three capital letters)",
        );
    }
}

/// Checks a whole summary.
pub fn summary(p: &mut Problems, s: &OrderSummary) {
    if let Some(v) = &s.invoice_number {
        invoice_number(p, v);
    }
    if let Some(v) = &s.order_description {
        order_description(p, v);
    }
    if let Some(w) = s.total_weight {
        if !w.is_finite() || w < 0.0 {
            p.add(
                "orderSummary.totalWeight",
                "RANGE",
                "must be a number of at least 0",
            );
        }
    }
    if let Some(n) = s.total_items {
        if n > MAX_TOTAL_ITEMS {
            p.add(
                "orderSummary.totalItems",
                "RANGE",
                format!("must be at most {MAX_TOTAL_ITEMS}, got {n}"),
            );
        }
    }
    if let Some(m) = &s.total_order_cost {
        money(p, "orderSummary.totalOrderCost", m);
    }
}

/// The summary after a patch.
pub fn patched_summary(current: &OrderSummary, patch: &SummaryPatch) -> OrderSummary {
    let mut s = current.clone();
    if let Some(v) = &patch.invoice_number {
        s.invoice_number = Some(v.clone());
    }
    if let Some(v) = &patch.order_description {
        s.order_description = Some(v.clone());
    }
    if let Some(v) = patch.total_weight {
        s.total_weight = Some(v);
    }
    if let Some(v) = patch.total_items {
        s.total_items = Some(v);
    }
    if let Some(v) = &patch.total_order_cost {
        s.total_order_cost = Some(v.clone());
    }
    s
}

/// A contact: a name, and one phone number (not a list).
pub fn contact(p: &mut Problems, c: &Contact) {
    contact_at(p, "dropDetails.contact", c);
}

/// A contact at `field` (`dropDetails.contact`, `workOrders[0].pickup.contact`).
fn contact_at(p: &mut Problems, field: &str, c: &Contact) {
    // Messages never repeat the values: they are personal data.
    text(p, &format!("{field}.name"), &c.name, 1, MAX_TEXT);
    let phone_ok = (3..=32).contains(&c.phone.len())
        && c.phone.chars().enumerate().all(|(i, ch)| {
            ch.is_ascii_digit() || matches!(ch, ' ' | '-' | '(' | ')') || (i == 0 && ch == '+')
        })
        && c.phone.chars().filter(char::is_ascii_digit).count() >= 3;
    if !phone_ok {
        p.add(
            format!("{field}.phone"),
            "PATTERN",
            "must be one phone number: digits, spaces, -, ( ), an optional leading +, 3 to 32 characters",
        );
    }
}

/// An address: a JSON object of at most 32 fields of text or numbers.
pub fn address(p: &mut Problems, field: &str, a: &Address) {
    match &a.0 {
        Value::Object(m) if !m.is_empty() && m.len() <= 32 => {
            if !m
                .values()
                .all(|v| matches!(v, Value::String(s) if s.len() <= 256) || v.is_number())
            {
                p.add(
                    field,
                    "TYPE",
                    "address fields must be text (up to 256 characters) or numbers",
                );
            }
        }
        _ => p.add(field, "TYPE", "must be an object of 1 to 32 address fields"),
    }
}

fn location(p: &mut Problems, field: &str, l: &LocationInput) {
    if let LocationInput::Address(a) = l {
        address(p, field, a);
    }
}

/// Checks a new order's core attributes (custom attributes apart).
pub fn create(p: &mut Problems, c: &CreateOrder, config: &TenantConfig) {
    text(p, "clientId", &c.client.id, 1, MAX_TEXT);
    text(p, "clientName", &c.client.name, 1, MAX_TEXT);
    text(p, "clientOrderId", &c.client_order_id, 1, MAX_TEXT);
    if let Some(crate::command::ContactInput::Details(d)) = &c.contact {
        contact(p, d);
    }
    if let Some(l) = &c.location {
        location(p, "dropDetails.location", l);
    }
    if let Some(l) = &c.return_location {
        location(p, "dropDetails.returnLocation", l);
    }
    summary(p, &c.summary);
    if c.work_orders.is_empty() || c.work_orders.len() > MAX_WORK_ORDERS / 2 {
        p.add(
            "workOrders",
            "LENGTH",
            format!(
                "must hold 1 to {} work orders, got {}",
                MAX_WORK_ORDERS / 2,
                c.work_orders.len()
            ),
        );
    }
    for (i, w) in c.work_orders.iter().enumerate() {
        if config.work_order_type(&w.kind).is_none() {
            p.add(
                format!("workOrders[{i}].type"),
                "UNKNOWN_TYPE",
                "is not a work-order type of this tenant",
            );
        }
        work_order_details(p, &format!("workOrders[{i}]"), w);
    }
}

/// A work order's items, instructions, pickup and drop.
fn work_order_details(p: &mut Problems, at: &str, w: &WorkOrderSpec) {
    details(
        p,
        at,
        Some(&w.items),
        w.instructions.as_deref(),
        [&w.pickup, &w.drop],
    );
}

/// Work-order details to set on one work order or on a return (`at`
/// names them in errors: `addReturn`, or empty for the body's top level).
pub fn details_patch(p: &mut Problems, at: &str, d: &DetailsPatch) {
    details(
        p,
        at,
        d.items.as_deref(),
        d.instructions.as_deref(),
        [&d.pickup, &d.drop],
    );
}

/// `at.name`, or `name` at the top level.
fn path(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_owned()
    } else {
        format!("{at}.{name}")
    }
}

fn details(
    p: &mut Problems,
    at: &str,
    items: Option<&[Item]>,
    instructions: Option<&str>,
    [pickup, drop]: [&StopInput; 2],
) {
    let items = items.unwrap_or_default();
    if items.len() > MAX_ITEMS {
        p.add(
            path(at, "items"),
            "LENGTH",
            format!("must hold at most {MAX_ITEMS} items, got {}", items.len()),
        );
    }
    for (j, item) in items.iter().enumerate().take(MAX_ITEMS) {
        let field = path(at, &format!("items[{j}]"));
        text(p, &format!("{field}.id"), &item.id, 1, MAX_TEXT);
        text(
            p,
            &format!("{field}.description"),
            &item.description,
            1,
            MAX_DESCRIPTION,
        );
        if item.quantity == 0 || item.quantity > MAX_TOTAL_ITEMS {
            p.add(
                format!("{field}.quantity"),
                "RANGE",
                format!("must be 1 to {MAX_TOTAL_ITEMS}, got {}", item.quantity),
            );
        }
        if item.weight.is_some_and(|w| !w.is_finite() || w < 0.0) {
            p.add(
                format!("{field}.weight"),
                "RANGE",
                "must be a number 0 or more",
            );
        }
    }
    if let Some(instructions) = instructions {
        let n = instructions.chars().count();
        if n == 0 || n > MAX_INSTRUCTIONS {
            p.add(
                path(at, "instructions"),
                "LENGTH",
                format!("must be 1 to {MAX_INSTRUCTIONS} characters, got {n}"),
            );
        }
    }
    for (name, stop) in [("pickup", pickup), ("drop", drop)] {
        if let Some(ContactInput::Details(d)) = &stop.contact {
            contact_at(p, &format!("{}.contact", path(at, name)), d);
        }
        if let Some(l) = &stop.location {
            location(p, &format!("{}.location", path(at, name)), l);
        }
    }
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Whether a whole string matches a tenant pattern. `None` when the pattern
/// itself is not a valid regular expression.
pub fn pattern_matches(pattern: &str, value: &str) -> Option<bool> {
    let re = regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 20)
        .build()
        .ok()?;
    Some(re.is_match(value))
}

/// Checks one custom attribute value against its definition.
pub fn attribute_value(p: &mut Problems, def: &AttributeDef, v: &Value) {
    let field = format!("customAttributes.{}", def.name);
    let type_ok = match def.data_type {
        DataType::String => v.is_string(),
        DataType::Number => v.as_f64().is_some_and(f64::is_finite),
        DataType::Boolean => v.is_boolean(),
        DataType::Object => v.is_object(),
        DataType::Array => v.is_array(),
        DataType::Money => match v {
            Value::Object(m) => {
                m.len() == 2
                    && m.get("amount")
                        .and_then(Value::as_f64)
                        .is_some_and(|a| a.is_finite() && a >= 0.0)
                    && m.get("currency")
                        .and_then(Value::as_str)
                        .is_some_and(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
            }
            _ => false,
        },
    };
    if !type_ok {
        p.add(
            &field,
            "TYPE",
            format!("must be of type {:?}", def.data_type).to_lowercase(),
        );
        return;
    }
    if depth(v) > MAX_DEPTH {
        p.add(
            &field,
            "DEPTH",
            format!("must nest at most {MAX_DEPTH} levels"),
        );
        return;
    }
    let rules = &def.validation;
    if let Some(r) = rules.range {
        let measured = match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => Some(s.chars().count() as f64),
            Value::Array(a) => Some(a.len() as f64),
            _ => None,
        };
        if let Some(x) = measured {
            if r.min.is_some_and(|m| x < m) || r.max.is_some_and(|m| x > m) {
                p.add(
                    &field,
                    "RANGE",
                    format!("must be within [{:?}, {:?}]", r.min, r.max),
                );
            }
        }
    }
    if let (Some(re), Value::String(s)) = (&rules.regex, v) {
        match pattern_matches(re, s) {
            Some(true) => {}
            Some(false) => p.add(&field, "PATTERN", "does not match the attribute's pattern"),
            None => p.add(
                &field,
                "BAD_SCHEMA",
                "the attribute's pattern is not a valid regular expression",
            ),
        }
    }
    if let Some(allowed) = &rules.value_one_of {
        if !allowed.is_empty() && !allowed.iter().any(|a| same_value(a, v)) {
            p.add(&field, "NOT_ONE_OF", "is not one of the allowed values");
        }
    }
}

/// Checks custom attributes given on create (`creating`: defaults are filled
/// in and required ones enforced) or on update (only the given ones).
pub fn custom_attributes(
    p: &mut Problems,
    given: &BTreeMap<String, Value>,
    config: &TenantConfig,
    creating: bool,
) -> BTreeMap<String, Value> {
    if given.len() > MAX_CUSTOM_ATTRIBUTES {
        p.add(
            "customAttributes",
            "LENGTH",
            format!("at most {MAX_CUSTOM_ATTRIBUTES} attributes"),
        );
        return BTreeMap::new();
    }
    let mut out = BTreeMap::new();
    for (name, v) in given {
        match config.attribute(name) {
            Some(def) => {
                attribute_value(p, def, v);
                out.insert(name.clone(), v.clone());
            }
            None => p.add(
                format!("customAttributes.{}", truncate(name, 32)),
                "UNKNOWN_ATTRIBUTE",
                "is not an attribute of this tenant's schema",
            ),
        }
    }
    if creating {
        for def in config.attributes.iter().filter(|d| !d.delete) {
            if out.contains_key(&def.name) {
                continue;
            }
            if let Some(d) = &def.default_value {
                out.insert(def.name.clone(), d.clone());
            } else if def.validation.required {
                p.add(
                    format!("customAttributes.{}", def.name),
                    "REQUIRED",
                    "is required",
                );
            }
        }
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}
