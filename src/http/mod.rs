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

use std::net::SocketAddr;

use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::Reader;

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

/// The routes, on `reader`.
pub fn routes(reader: Reader) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(reader)
}

/// Binds `addr` and serves [`routes`] until `stop` turns true.
pub async fn start(
    addr: SocketAddr,
    reader: Reader,
    mut stop: watch::Receiver<bool>,
) -> Result<HttpHandle, HttpError> {
    let failed = |source| HttpError { addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(failed)?;
    let local_addr = listener.local_addr().map_err(failed)?;
    let app = routes(reader);
    let task = tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::warn!(error = %e, "http listener stopped");
        }
    });
    tracing::info!(addr = %local_addr, "http listening");
    Ok(HttpHandle { local_addr, task })
}

/// Live: the process is up and its runtime answers.
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}
