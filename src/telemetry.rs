//! Every metric orderd records: its name, what it means, and the small
//! functions the layers call where the work happens. Recording goes through
//! the `metrics` facade, so it costs next to nothing when no recorder is
//! installed (`http.listen` unset); the HTTP listener installs the
//! Prometheus recorder and renders it at `/metrics`.
//!
//! Labels are bounded: verbs, outcomes, lanes and stages are fixed sets;
//! the one open label is the tenant, on the lanes' backlog and the timers
//! due (one series per tenant this instance decides). Never an order id, never personal data.
//!
//! Traces: with `trace.otlp_endpoint` set, orderd's command spans are
//! exported to an OpenTelemetry collector over OTLP/HTTP ([`otlp_layer`]),
//! each a child of the W3C trace its command came with ([`join_trace`]).
//!
//! May import: nothing of the crate (a leaf every layer may use).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Commands and job updates decided, by `verb` and `outcome`
/// (`applied`, `duplicate`, `refused`, `retry`).
pub const COMMANDS: &str = "orderd_commands_total";
/// Seconds one batch of an order's commands took, by `stage`: `decide`
/// (load, configuration, the pure decision), `persist` (the Redis
/// compare-and-set), `publish` (the outbox to JetStream, PubAcks awaited).
pub const STAGE_SECONDS: &str = "orderd_stage_seconds";
/// Order actors in memory.
pub const ACTORS_LIVE: &str = "orderd_actors_live";
/// Order actors stopped after `runtime.passivate_after_ms` idle.
pub const ACTORS_PASSIVATED: &str = "orderd_actors_passivated_total";
/// Messages stored in a lane and not yet delivered, by `tenant` and `lane`
/// (`cmd`, `job`), as of the lane's last pull.
pub const LANE_BACKLOG: &str = "orderd_lane_backlog";
/// Redis calls that failed (the commands concerned are redelivered).
pub const REDIS_ERRORS: &str = "orderd_redis_errors_total";
/// The connection to Redis re-established: a connection found to be a new
/// one (it lacks the name orderd gives each connection), after the old one
/// broke (Redis restarted, the network cut, the connection killed) or after
/// a Sentinel failover moved the primary. Counted by a check every half
/// second, so two reconnects closer together count once.
pub const REDIS_RECONNECTS: &str = "orderd_redis_reconnects_total";
/// Outbox publishes that failed (retried until JetStream acknowledges).
pub const NATS_PUBLISH_ERRORS: &str = "orderd_nats_publish_errors_total";
/// NATS connection events, by `event` (`connected`, `disconnected`, …).
pub const NATS_CONNECTION_EVENTS: &str = "orderd_nats_connection_events_total";
/// Timer firings (milestones, holds that expire) decided.
pub const TIMERS_FIRED: &str = "orderd_timers_fired_total";
/// Orders whose earliest timer is due and not fired yet, by `tenant`, as
/// the timer sweep counted them at its last tick in the timer sets of the
/// tenants this instance decides (with partitions spread over instances,
/// this instance's share: the tenant's count times the part of its
/// partitions it decides); 0 once the tenant moved to another instance.
pub const TIMERS_DUE: &str = "orderd_timers_due";
/// Tenants this instance decides.
pub const TENANTS_OWNED: &str = "orderd_tenants_owned";
/// Writes refused because another instance owns the order's tenant now.
pub const FENCED_WRITES: &str = "orderd_fenced_writes_total";
/// Closed orders archived after their tenant's retention, and removed from
/// the live store.
pub const ORDERS_ARCHIVED: &str = "orderd_orders_archived_total";

/// The histogram buckets of [`STAGE_SECONDS`], in seconds: 0.25 ms to 5 s.
pub const STAGE_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A recorder is installed ([`describe`] was called): until then the
/// functions below return at once, so orderd without `/metrics` does not
/// even build their labels.
static RECORDING: AtomicBool = AtomicBool::new(false);

/// Whether metrics are recorded: a caller whose figure costs a Redis call
/// asks first.
pub fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

/// Every metric with its help text, for the exporter's `# HELP` lines;
/// recording starts here (call it once the recorder is installed).
pub fn describe() {
    RECORDING.store(true, Ordering::Relaxed);
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        COMMANDS,
        "Commands and job updates decided, by verb and outcome"
    );
    describe_histogram!(
        STAGE_SECONDS,
        Unit::Seconds,
        "Time one batch of an order's commands spent in each stage"
    );
    describe_gauge!(ACTORS_LIVE, "Order actors in memory");
    describe_counter!(ACTORS_PASSIVATED, "Order actors stopped after being idle");
    describe_gauge!(
        LANE_BACKLOG,
        "Messages stored in a tenant's lane, not yet delivered"
    );
    describe_counter!(REDIS_ERRORS, "Redis calls that failed");
    describe_counter!(
        REDIS_RECONNECTS,
        "Times the connection to Redis was re-established"
    );
    describe_counter!(
        FENCED_WRITES,
        "Writes refused: another instance owns the tenant now"
    );
    describe_counter!(NATS_PUBLISH_ERRORS, "Outbox publishes that failed");
    describe_counter!(
        NATS_CONNECTION_EVENTS,
        "NATS connection events (connected, disconnected, ...)"
    );
    describe_counter!(TIMERS_FIRED, "Timer firings decided");
    describe_gauge!(
        TIMERS_DUE,
        "Orders of a tenant whose earliest timer is due and not fired yet"
    );
    describe_gauge!(TENANTS_OWNED, "Tenants this instance decides");
    describe_counter!(
        ORDERS_ARCHIVED,
        "Closed orders archived after their retention and removed from the live store"
    );
}

/// One command decided.
pub fn command(verb: &'static str, outcome: &'static str) {
    if !recording() {
        return;
    }
    metrics::counter!(COMMANDS, "verb" => verb, "outcome" => outcome).increment(1);
}

/// A stage of a batch took `took`.
pub fn stage(stage: &'static str, took: Duration) {
    if !recording() {
        return;
    }
    metrics::histogram!(STAGE_SECONDS, "stage" => stage).record(took.as_secs_f64());
}

/// An order actor started (`+1`) or stopped (`-1`).
pub fn actors_live(delta: f64) {
    if !recording() {
        return;
    }
    metrics::gauge!(ACTORS_LIVE).increment(delta);
}

/// An order actor passivated.
pub fn passivated() {
    if !recording() {
        return;
    }
    metrics::counter!(ACTORS_PASSIVATED).increment(1);
}

/// A lane's backlog as its last pull saw it.
pub fn lane_backlog(tenant: &str, lane: &'static str, pending: u64) {
    if !recording() {
        return;
    }
    metrics::gauge!(LANE_BACKLOG, "tenant" => tenant.to_owned(), "lane" => lane)
        .set(pending as f64);
}

/// A Redis call failed.
pub fn redis_error() {
    if !recording() {
        return;
    }
    metrics::counter!(REDIS_ERRORS).increment(1);
}

/// The connection to Redis was re-established.
pub fn redis_reconnected() {
    if !recording() {
        return;
    }
    metrics::counter!(REDIS_RECONNECTS).increment(1);
}

/// A write was fenced (another instance owns the tenant now).
pub fn fenced_write() {
    if !recording() {
        return;
    }
    metrics::counter!(FENCED_WRITES).increment(1);
}

/// An outbox publish failed.
pub fn publish_error() {
    if !recording() {
        return;
    }
    metrics::counter!(NATS_PUBLISH_ERRORS).increment(1);
}

/// A NATS connection event.
pub fn connection_event(event: &'static str) {
    if !recording() {
        return;
    }
    metrics::counter!(NATS_CONNECTION_EVENTS, "event" => event).increment(1);
}

/// Orders archived.
pub fn archived(n: u64) {
    if !recording() {
        return;
    }
    metrics::counter!(ORDERS_ARCHIVED).increment(n);
}

/// A timer firing decided.
pub fn timer_fired() {
    if !recording() {
        return;
    }
    metrics::counter!(TIMERS_FIRED).increment(1);
}

/// How many of the tenant's orders have a timer due and not fired yet.
pub fn timers_due(tenant: &str, due: u64) {
    if !recording() {
        return;
    }
    metrics::gauge!(TIMERS_DUE, "tenant" => tenant.to_owned()).set(due as f64);
}

/// How many units (tenants, or partitions of tenants) this instance decides now.
pub fn tenants_owned(n: usize) {
    if !recording() {
        return;
    }
    metrics::gauge!(TENANTS_OWNED).set(n as f64);
}

/// Spans are exported (set once [`otlp_layer`] is installed).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// The OpenTelemetry layer that exports orderd's command spans (and the
/// log lines at info and above inside them, as span events) to the OTLP/HTTP
/// endpoint `endpoint` (`http://collector:4318/v1/traces`), in batches from
/// a thread of its own, and the provider to shut down at exit (it sends
/// what is left).
pub fn otlp_layer<S>(
    endpoint: &str,
    service_name: &str,
) -> Result<
    (
        impl tracing_subscriber::Layer<S>,
        opentelemetry_sdk::trace::SdkTracerProvider,
    ),
    String,
>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    use tracing_subscriber::Layer as _;

    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| e.to_string())?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service_name.to_owned())
                .build(),
        )
        .build();
    let tracer = provider.tracer("orderd");
    // Only the command spans (at debug, so logging at info does not pay for
    // them unless traces are on), and orderd's own events inside them.
    let only_commands = tracing_subscriber::filter::filter_fn(|meta| {
        meta.target().starts_with("orderd")
            && if meta.is_span() {
                meta.name() == "command"
            } else {
                *meta.level() <= tracing::Level::INFO
            }
    });
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(only_commands);
    EXPORTING.store(true, Ordering::Relaxed);
    Ok((layer, provider))
}

/// Makes `span` (a command's) a child of the W3C trace `traceparent`
/// names. Returns the span id of orderd's hop when spans are exported (the
/// id the collector knows), `None` otherwise (the caller makes one up).
pub fn join_trace(span: &tracing::Span, traceparent: &str) -> Option<u64> {
    use opentelemetry::propagation::TextMapPropagator as _;
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    if !EXPORTING.load(Ordering::Relaxed) {
        return None;
    }
    let carrier =
        std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&carrier);
    span.set_parent(parent).ok()?;
    let context = span.context();
    let ours = context.span().span_context().clone();
    ours.is_valid()
        .then(|| u64::from_be_bytes(ours.span_id().to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[&str] = &[
        COMMANDS,
        STAGE_SECONDS,
        ACTORS_LIVE,
        ACTORS_PASSIVATED,
        LANE_BACKLOG,
        REDIS_ERRORS,
        REDIS_RECONNECTS,
        NATS_PUBLISH_ERRORS,
        NATS_CONNECTION_EVENTS,
        TIMERS_FIRED,
        TIMERS_DUE,
        TENANTS_OWNED,
        FENCED_WRITES,
        ORDERS_ARCHIVED,
    ];

    /// The `orderd_…` names a text mentions.
    fn names_in(text: &str) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        for (i, _) in text.match_indices("orderd_") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            out.insert(name);
        }
        out
    }

    #[test]
    fn the_dashboard_and_the_readme_speak_of_real_metrics_only() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let dashboard = std::fs::read_to_string(root.join("docs/grafana-dashboard.json")).unwrap();
        let _: serde_json::Value = serde_json::from_str(&dashboard).expect("valid JSON");
        let known = |name: &str| {
            ALL.iter().any(|m| {
                name == *m
                    || ["_bucket", "_count", "_sum"]
                        .iter()
                        .any(|s| name == format!("{m}{s}"))
            })
        };
        for name in names_in(&dashboard) {
            assert!(
                known(&name),
                "the dashboard uses {name}, which orderd does not record"
            );
        }
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        for name in names_in(&readme) {
            assert!(
                known(&name),
                "the README names {name}, which orderd does not record"
            );
        }
        for m in ALL {
            assert!(
                readme.contains(&format!("`{m}`")),
                "the README does not explain {m}"
            );
        }
    }
}
