//! The HTTP listener: what does not fit NATS well — health probes for an
//! orchestrator, a metrics scrape, the dashboard page. Off unless
//! `http.listen` (`ORDERD_HTTP_LISTEN`) names an address.
//!
//! Every route reads through the same [`Reader`] as the read service, so
//! HTTP answers what NATS answers; nothing here writes to Redis.
//!
//! May import: [`crate::api`] and everything it may import.
//!
//! Routes:
//! - `GET /healthz`: live: the process answers (200, `{"status":"ok"}`).
//! - `GET /readyz`: ready to take work: connected to NATS, Redis answers,
//!   the six streams and the intake's discovery consumers exist (200, or
//!   503 naming each check that failed and why).
//! - `GET /metrics`: every metric of [`crate::telemetry`] in Prometheus'
//!   text format.
//! - `GET /dashboard` and `/dashboard/api/…`: the live dashboard
//!   ([`dashboard`], its chart's last minutes read back from the events
//!   stream by [`throughput`]); `/` leads there.

mod dashboard;
mod throughput;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::Reader;
use crate::telemetry;

/// What `/readyz` checks beyond the connections: the consumers that must
/// exist, as `(stream, durable name)`.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    /// The consumers the intake depends on.
    pub consumers: Vec<(String, String)>,
}

/// What the routes share.
#[derive(Clone)]
struct Web {
    reader: Reader,
    readiness: Readiness,
    metrics: PrometheusHandle,
    /// Who may use the dashboard.
    logins: std::sync::Arc<Vec<crate::settings::DashboardLogin>>,
    /// The dashboard's live stream sessions.
    live_sessions: dashboard::LiveSessions,
}

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("http listener on {addr}: {source}")]
pub struct HttpError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// Why (in use, not permitted, …).
    pub source: std::io::Error,
}

/// A running listener.
pub struct HttpHandle {
    /// The address bound (the port chosen when `:0` was asked for).
    pub local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl HttpHandle {
    /// Waits until the listener has stopped (after the stop signal).
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// The Prometheus recorder, installed process-wide the first time it is
/// asked for (before the work it measures starts: `app` asks first thing
/// when the listener is on). Later calls, and other orderd in the same
/// process (tests), share it.
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let recorder = builder
                .set_buckets(telemetry::STAGE_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new())
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was installed already; /metrics stays empty");
            }
            telemetry::describe();
            handle
        })
        .clone()
}

/// The routes.
fn routes(web: Web) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(scrape))
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/dashboard") }),
        )
        .merge(dashboard::routes())
        .with_state(web)
}

/// Binds `addr` and serves the routes until `stop` turns true.
pub async fn start(
    addr: SocketAddr,
    reader: Reader,
    readiness: Readiness,
    mut stop: watch::Receiver<bool>,
) -> Result<HttpHandle, HttpError> {
    let failed = |source| HttpError { addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(failed)?;
    let local_addr = listener.local_addr().map_err(failed)?;
    let metrics = metrics();
    let logins = std::sync::Arc::new(reader.settings.http.logins());
    let app = routes(Web {
        reader,
        readiness,
        metrics: metrics.clone(),
        logins,
        live_sessions: dashboard::LiveSessions::default(),
    });
    let task = tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        // The recorder's histograms are drained by its upkeep, not by a
        // scrape alone: keep them bounded between scrapes.
        let upkeep = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                metrics.run_upkeep();
            }
        });
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::warn!(error = %e, "http listener stopped");
        }
        upkeep.abort();
    });
    tracing::info!(addr = %local_addr, "http listening");
    Ok(HttpHandle { local_addr, task })
}

/// Live: the process is up and its runtime answers.
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// One check of `/readyz`.
#[derive(Debug, Serialize)]
struct Check {
    /// What was checked: `nats`, `redis`, `stream ORDERD_CMD`,
    /// `consumer ORDERD_CMD/orderd-cmd-discovery`.
    name: String,
    /// Passed.
    ok: bool,
    /// Why not, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Check {
    fn of(name: String, result: Result<(), String>) -> Self {
        let ok = result.is_ok();
        Self {
            name,
            ok,
            error: result.err(),
        }
    }
}

/// Ready: every dependency answers, each within two seconds.
async fn readyz(State(web): State<Web>) -> Response {
    const EACH: Duration = Duration::from_secs(2);
    async fn within<T, E: std::fmt::Display>(
        f: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<(), String> {
        match tokio::time::timeout(EACH, f).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} s", EACH.as_secs())),
        }
    }
    let reader = &web.reader;
    let state = reader.client.connection_state();
    let mut checks = vec![Check::of(
        "nats".into(),
        match state {
            async_nats::connection::State::Connected => Ok(()),
            other => Err(format!("{other:?}").to_lowercase()),
        },
    )];
    checks.push(Check::of("redis".into(), within(reader.store.ping()).await));
    for (stream, _) in crate::subjects::STREAMS {
        let found = within(reader.js.get_stream(stream)).await;
        checks.push(Check::of(format!("stream {stream}"), found));
    }
    for (stream, consumer) in &web.readiness.consumers {
        let found = within(async {
            reader
                .js
                .get_stream_no_info(stream)
                .await
                .map_err(|e| e.to_string())?
                .consumer_info(consumer)
                .await
                .map_err(|e| e.to_string())
        })
        .await;
        checks.push(Check::of(format!("consumer {stream}/{consumer}"), found));
    }
    let ready = checks.iter().all(|c| c.ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": checks,
    });
    (status, Json(body)).into_response()
}

/// The Prometheus scrape.
async fn scrape(State(web): State<Web>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        web.metrics.render(),
    )
        .into_response()
}
