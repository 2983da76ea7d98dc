//! Reading back what a stream holds under a subject filter, oldest first,
//! through a short-lived consumer: an order's history, the archive, the
//! commands an erase looks through, the dashboard's last minutes. Pages of at most [`PAGE`] messages, so
//! memory stays bounded however much the filter matches.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;
use time::OffsetDateTime;

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
    /// When the stream stored it.
    pub stored_at: OffsetDateTime,
}

/// Hands every message `stream` holds under `filter` to `each`, oldest
/// first, a page at a time; stops early when `each` says so (false).
/// Returns how many were handed over.
pub async fn scan(
    js: &jetstream::Context,
    stream: &'static str,
    filter: String,
    each: impl FnMut(Stored) -> bool,
) -> Result<u64, BusError> {
    scan_from(js, stream, filter, DeliverPolicy::All, each).await
}

/// As [`scan`], from the first message stored at or after `start` (what
/// the last minutes hold, without reading what came before).
pub async fn scan_since(
    js: &jetstream::Context,
    stream: &'static str,
    filter: String,
    start: OffsetDateTime,
    each: impl FnMut(Stored) -> bool,
) -> Result<u64, BusError> {
    let from = DeliverPolicy::ByStartTime { start_time: start };
    scan_from(js, stream, filter, from, each).await
}

async fn scan_from(
    js: &jetstream::Context,
    stream: &'static str,
    filter: String,
    from: DeliverPolicy,
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
            deliver_policy: from,
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
            let (seq, stored_at) = msg.info().map_or((0, OffsetDateTime::UNIX_EPOCH), |i| {
                (i.stream_sequence, i.published)
            });
            let stored = Stored {
                seq,
                stored_at,
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
