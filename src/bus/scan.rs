//! Reading back what a stream holds under a subject filter, oldest first,
//! through a short-lived consumer: an order's history, the archive, the
//! commands an erase looks through. Pages of at most [`PAGE`] messages, so
//! memory stays bounded however much the filter matches.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;

use super::BusError;

/// The most messages one page holds.
pub const PAGE: usize = 256;

/// One stored message.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its stream sequence.
    pub seq: u64,
    /// Its subject.
    pub subject: String,
    /// Its headers.
    pub headers: Option<HeaderMap>,
    /// Its body.
    pub payload: Bytes,
}

/// Hands every message `stream` holds under `filter` to `each`, oldest
/// first, a page at a time; stops early when `each` says so (false).
/// Returns how many were handed over.
pub async fn scan(
    js: &jetstream::Context,
    stream: &'static str,
    filter: String,
    mut each: impl FnMut(Stored) -> bool,
) -> Result<u64, BusError> {
    let failed = |why: String| BusError::Stream { stream, why };
    let handle = js
        .get_stream(stream)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let mut consumer: jetstream::consumer::PullConsumer = handle
        .create_consumer(pull::Config {
            filter_subject: filter,
            ack_policy: jetstream::consumer::AckPolicy::None,
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .map_err(|e| failed(e.to_string()))?;
    let pending = consumer
        .info()
        .await
        .map_err(|e| failed(e.to_string()))?
        .num_pending;
    let name = consumer.cached_info().name.clone();
    let mut remaining = pending;
    let mut handed = 0;
    'pages: while remaining > 0 {
        let batch = usize::try_from(remaining).unwrap_or(PAGE).min(PAGE);
        let mut messages = consumer
            .fetch()
            .max_messages(batch)
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let mut got = 0;
        while let Some(msg) = messages.next().await {
            let msg = msg.map_err(|e| failed(e.to_string()))?;
            got += 1;
            let seq = msg.info().map(|i| i.stream_sequence).unwrap_or_default();
            let stored = Stored {
                seq,
                subject: msg.subject.to_string(),
                headers: msg.headers.clone(),
                payload: msg.payload.clone(),
            };
            handed += 1;
            if !each(stored) {
                break 'pages;
            }
        }
        if got == 0 {
            break;
        }
        remaining = remaining.saturating_sub(got);
    }
    // Ephemeral anyway; deleting it now keeps the server tidy.
    let _ = handle.delete_consumer(&name).await;
    Ok(handed)
}
