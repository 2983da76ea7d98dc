//! orderd inside the test's own process ([`App`]: `orderd::app::run` on a
//! task, stopped gracefully or aborted on drop), and the wait for any
//! orderd to answer its health endpoint.
//!
//! Imports: nothing of this crate but [`crate::WAIT`].

use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::oneshot;

use orderd::settings::Settings;
use orderd::subjects;

use crate::WAIT;

/// orderd running in the test process.
pub struct App {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), orderd::app::AppError>>>,
}

impl App {
    /// Starts orderd with `settings` and waits until its service answers.
    pub async fn start(settings: Settings, nats: &async_nats::Client) -> Self {
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(orderd::app::run(settings, async move {
            let _ = rx.await;
        }));
        let mut app = Self {
            stop: Some(tx),
            task: Some(task),
        };
        // An orderd that ends before it is healthy says why, instead of
        // the wait running out in silence.
        let ended = tokio::select! {
            () = wait_healthy(nats) => None,
            ended = app.task.as_mut().expect("orderd task") => Some(ended),
        };
        if let Some(ended) = ended {
            app.task = None;
            panic!("orderd ended before it became healthy: {ended:?}");
        }
        app
    }

    /// Shuts orderd down gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(WAIT, task)
                .await
                .expect("orderd stops in time")
                .expect("orderd task");
            result.expect("orderd ran without error");
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Waits until an orderd answers the health endpoint.
pub async fn wait_healthy(nats: &async_nats::Client) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let answer = tokio::time::timeout(
            Duration::from_millis(500),
            nats.request(subjects::API_HEALTH, "{}".into()),
        )
        .await;
        let last = match answer {
            Ok(Ok(msg)) => {
                if let Ok(v) = serde_json::from_slice::<Value>(&msg.payload) {
                    if v["ok"] == json!(true) {
                        return;
                    }
                }
                String::from_utf8_lossy(&msg.payload).into_owned()
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer within 500 ms".to_owned(),
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "orderd did not become healthy; its last answer: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
