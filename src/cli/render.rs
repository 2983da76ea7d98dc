//! The human-readable text of every answer: aligned tables and `label
//! value` lines, no colours, stable enough to read but not a contract
//! (scripts use `--json`, orderd's raw answers). Pure: values in, text out.

use std::fmt::Write as _;

use orderd_core::Timestamp;
use serde_json::Value;

use crate::wire::{
    rfc3339, ConfigReply, DryRunReply, EventMessage, OrderView, Outcome, QueryResponse,
    ValidateReply,
};

/// A table: a header row and left-aligned columns two spaces apart.
struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(head: &[&str]) -> Self {
        Self {
            rows: vec![head.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self, out: &mut String) {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

fn or_dash(v: Option<&str>) -> String {
    v.filter(|s| !s.is_empty()).unwrap_or("-").to_owned()
}

fn label(out: &mut String, name: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{name:<14}{value}");
}

/// The state with its sub-state and close reason: `CLOSED (CANCELLED)`,
/// `IN_PROGRESS/PACKING`.
fn situation(state: &str, sub_state: Option<&str>, close_reason: Option<&str>) -> String {
    let mut s = state.to_owned();
    if let Some(sub) = sub_state {
        let _ = write!(s, "/{sub}");
    }
    if let Some(reason) = close_reason {
        let _ = write!(s, " ({reason})");
    }
    s
}

/// An order, as `get` shows it.
pub fn order(v: &OrderView) -> String {
    let mut out = String::new();
    label(&mut out, "order", &v.order_id);
    let mut state = situation(&v.state, v.sub_state.as_deref(), v.close_reason.as_deref());
    if let Some(from) = &v.held_from {
        let _ = write!(state, ", held from {from}");
    }
    label(&mut out, "state", state);
    label(&mut out, "seq", v.seq);
    label(
        &mut out,
        "client",
        format!(
            "{} ({}), client order {}",
            v.client_name, v.client_id, v.client_order_id
        ),
    );
    label(
        &mut out,
        "flow",
        format!(
            "{}, ready to process: {}",
            serde_json::to_value(v.execution_flow)
                .ok()
                .and_then(|f| f.as_str().map(str::to_owned))
                .unwrap_or_default(),
            if v.ready_to_process { "yes" } else { "no" }
        ),
    );
    label(
        &mut out,
        "created",
        format!("{} by {}", v.created_at, v.created_by),
    );
    label(
        &mut out,
        "updated",
        format!("{} by {}", v.updated_at, v.updated_by),
    );
    label(&mut out, "config", format!("version {}", v.schema_version));
    let d = &v.drop_details;
    label(
        &mut out,
        "drop",
        format!(
            "contact {}, location {}, return location {}",
            or_dash(d.contact_id.as_deref()),
            or_dash(d.location_id.as_deref()),
            or_dash(d.return_location_id.as_deref())
        ),
    );
    let s = &v.order_summary;
    label(
        &mut out,
        "summary",
        format!(
            "invoice {}, {}, items {}, weight {}, cost {}",
            or_dash(s.invoice_number.as_deref()),
            s.order_description
                .as_deref()
                .map_or_else(|| "no description".to_owned(), |d| format!("{d:?}")),
            s.total_items
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
            s.total_weight
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
            s.total_order_cost.as_ref().map_or_else(
                || "-".to_owned(),
                |m| format!("{} {}", m.amount, m.currency)
            ),
        ),
    );
    let c = &v.cancellation;
    let mut cancellation = c.status.clone();
    if c.requested {
        let _ = write!(
            cancellation,
            ", requested {} by {}",
            or_dash(c.requested_on.as_deref()),
            or_dash(c.requested_by.as_deref())
        );
    }
    if let Some(reason) = &c.failure_reason_code {
        let _ = write!(cancellation, ", failed: {reason}");
    }
    label(&mut out, "cancellation", cancellation);
    if !v.waiting_for_plugins.is_empty() {
        label(
            &mut out,
            "plugins",
            format!("waiting for {}", v.waiting_for_plugins.join(", ")),
        );
    }
    for (name, value) in &v.custom_attributes {
        label(&mut out, "attribute", format!("{name} = {value}"));
    }
    if !v.work_orders.is_empty() {
        out.push('\n');
        let mut t = Table::new(&[
            "WORK ORDER",
            "TYPE",
            "JOB TYPE",
            "STATE",
            "ATTEMPT",
            "NOTES",
        ]);
        for w in &v.work_orders {
            let mut notes = Vec::new();
            if let Some(r) = w.returns {
                notes.push(format!("returns {r}"));
            }
            if let Some(j) = &w.job_id {
                notes.push(format!("job {j}"));
            }
            if let Some(f) = &w.last_failure {
                notes.push(format!("last failure {f}"));
            }
            if w.cancel_failed {
                notes.push("cancel failed".to_owned());
            }
            if w.ignored_updates > 0 {
                notes.push(format!("{} updates ignored", w.ignored_updates));
            }
            t.row(vec![
                w.work_order_id.to_string(),
                w.kind.clone(),
                w.job_type.clone(),
                w.state.clone(),
                format!("{}/{}", w.attempt, w.max_attempts),
                notes.join(", "),
            ]);
        }
        t.render(&mut out);
    }
    if !v.milestones.is_empty() {
        out.push('\n');
        let mut t = Table::new(&["MILESTONE", "REACH", "DUE", "STATUS"]);
        for (name, m) in &v.milestones {
            let status = match (m.reached, m.missed) {
                (true, true) => "reached late",
                (true, false) => "reached",
                (false, true) => "missed",
                (false, false) => "open",
            };
            t.row(vec![
                name.clone(),
                m.reach.clone(),
                m.due.clone(),
                status.to_owned(),
            ]);
        }
        t.render(&mut out);
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An explanation (`orderd_core::Explanation` as JSON).
pub fn explanation(v: &Value) -> String {
    let mut out = String::new();
    label(&mut out, "state", text(&v["state"]));
    if let Some(waiting) = v["waitingFor"].as_array() {
        out.push_str("waiting for\n");
        for w in waiting {
            let _ = writeln!(out, "  - {}", text(w));
        }
    }
    if let Some(commands) = v["commands"].as_array() {
        out.push('\n');
        let mut t = Table::new(&["COMMAND", "ALLOWED", "CODE", "REASON"]);
        for c in commands {
            t.row(vec![
                text(&c["command"]),
                if c["allowed"] == Value::Bool(true) {
                    "yes"
                } else {
                    "no"
                }
                .to_owned(),
                text(&c["code"]),
                text(&c["reason"]),
            ]);
        }
        t.render(&mut out);
    }
    if let Some(timers) = v["timers"].as_array().filter(|t| !t.is_empty()) {
        out.push('\n');
        let mut t = Table::new(&["TIMER", "DUE"]);
        for timer in timers {
            let due = timer["due"]
                .as_i64()
                .map_or_else(|| text(&timer["due"]), |ms| rfc3339(Timestamp(ms)));
            t.row(vec![text(&timer["kind"]), due]);
        }
        t.render(&mut out);
    }
    out
}

/// The kinds of a message's events, in order: `held, job_hold_requested`.
fn event_kinds(m: &EventMessage) -> String {
    m.events
        .iter()
        .filter_map(|e| serde_json::to_value(e).ok())
        .map(|e| text(&e["kind"]))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An order's history as a table.
pub fn history(events: &[EventMessage]) -> String {
    let mut out = String::new();
    let mut t = Table::new(&["SEQ", "AT", "COMMAND", "BY", "STATE", "EVENTS"]);
    for m in events {
        t.row(vec![
            m.seq.to_string(),
            m.at.clone(),
            m.command.clone(),
            m.by.clone(),
            situation(&m.state, m.sub_state.as_deref(), m.close_reason.as_deref()),
            event_kinds(m),
        ]);
    }
    t.render(&mut out);
    out
}

/// One line of `watch`: a change.
pub fn change_line(m: &EventMessage) -> String {
    format!(
        "{}  {}  seq {:<4} {:<12} {:<24} {}",
        m.at,
        m.order_id,
        m.seq,
        m.command,
        situation(&m.state, m.sub_state.as_deref(), m.close_reason.as_deref()),
        event_kinds(m)
    )
}

/// One line of `watch`: where an order stood when the watch began.
pub fn state_line(v: &OrderView) -> String {
    format!(
        "{}  {}  seq {:<4} {:<12} {}",
        v.updated_at,
        v.order_id,
        v.seq,
        "(now)",
        situation(&v.state, v.sub_state.as_deref(), v.close_reason.as_deref())
    )
}

/// A page of `query`.
pub fn orders(page: &QueryResponse) -> String {
    let mut out = String::new();
    let mut t = Table::new(&[
        "ORDER",
        "STATE",
        "CLIENT ORDER",
        "SEQ",
        "CREATED",
        "UPDATED",
    ]);
    for v in &page.orders {
        t.row(vec![
            v.order_id.clone(),
            situation(&v.state, v.sub_state.as_deref(), v.close_reason.as_deref()),
            v.client_order_id.clone(),
            v.seq.to_string(),
            v.created_at.clone(),
            v.updated_at.clone(),
        ]);
    }
    t.render(&mut out);
    out
}

/// What became of a command. `verb` is `create`, `hold`, …
pub fn outcome(verb: &str, o: &Outcome) -> String {
    let order = o.order_id.as_deref().unwrap_or("?");
    let state = o.state.as_deref().unwrap_or("?");
    let seq = o.seq.map_or_else(|| "?".to_owned(), |s| s.to_string());
    if o.duplicate {
        format!(
            "{verb} {order}: the command with this idempotency key was applied before; \
             nothing changed now; the order is {state} (seq {seq})"
        )
    } else if verb == "create" {
        format!("created order {order}: {state} (seq {seq})")
    } else {
        format!("{verb} {order}: applied; the order is {state} (seq {seq})")
    }
}

/// A configuration version.
pub fn config(c: &ConfigReply) -> String {
    let mut out = String::new();
    label(&mut out, "tenant", &c.tenant);
    label(
        &mut out,
        "version",
        format!("{} (current: {})", c.version, c.current_version),
    );
    if !c.indexing.is_empty() {
        label(&mut out, "indexing", c.indexing.join(", "));
    }
    out.push('\n');
    out.push_str(&serde_json::to_string_pretty(&c.config).unwrap_or_default());
    out.push('\n');
    out
}

/// The answer of `config validate` for a valid draft.
pub fn validated(v: &ValidateReply) -> String {
    format!(
        "valid: publishing it now would make version {} of {}\n",
        v.next_version, v.tenant
    )
}

/// The answer of `config dry-run`.
pub fn dry_run(r: &DryRunReply) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} recent orders of {} checked, {} replayed (current version {}); {} would come out differently",
        r.checked,
        r.tenant,
        r.replayed,
        r.current_version,
        r.differences.len()
    );
    if !r.problems.is_empty() {
        out.push_str("\nproblems with the draft (publish would refuse it)\n");
        for p in &r.problems {
            let _ = writeln!(out, "  {}: {} {}", p.field, p.code, p.message);
        }
    }
    if !r.differences.is_empty() {
        out.push('\n');
        let mut t = Table::new(&["ORDER", "VERSION", "NOW", "DRAFT", "FIRST DIFFERENCE"]);
        for d in &r.differences {
            let end = |e: &crate::wire::OrderEnd| {
                let mut s = situation(&e.state, e.sub_state.as_deref(), e.close_reason.as_deref());
                if !e.milestones_missed.is_empty() {
                    let _ = write!(s, ", missed {}", e.milestones_missed.join(" "));
                }
                s
            };
            let first = d.first_difference.as_ref().map_or_else(String::new, |f| {
                format!(
                    "seq {} {}: {} / draft: {}",
                    f.seq.map_or_else(|| "end".to_owned(), |s| s.to_string()),
                    f.command,
                    f.now,
                    f.draft
                )
            });
            t.row(vec![
                d.order_id.clone(),
                d.schema_version.to_string(),
                end(&d.now),
                end(&d.draft),
                first,
            ]);
        }
        t.render(&mut out);
    }
    if !r.unreplayable.is_empty() {
        out.push('\n');
        let mut t = Table::new(&["NOT REPLAYED", "CODE", "WHY"]);
        for u in &r.unreplayable {
            t.row(vec![u.order_id.clone(), u.code.clone(), u.reason.clone()]);
        }
        t.render(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let mut t = Table::new(&["A", "LONGER", "C"]);
        t.row(vec!["wide cell".into(), "x".into(), "last".into()]);
        let mut out = String::new();
        t.render(&mut out);
        assert_eq!(out, "A          LONGER  C\nwide cell  x       last\n");
    }

    #[test]
    fn situations_read_plainly() {
        assert_eq!(
            situation("CLOSED", None, Some("CANCELLED")),
            "CLOSED (CANCELLED)"
        );
        assert_eq!(
            situation("IN_PROGRESS", Some("PACKING"), None),
            "IN_PROGRESS/PACKING"
        );
    }
}
