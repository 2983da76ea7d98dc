//! The dashboard's last minutes: a tenant's event messages of the last
//! [`WINDOW_MS`], read back from the events stream by time and counted in
//! buckets of [`BUCKET_MS`]. Nothing is kept in memory, so a reload of the
//! page, or a restart of orderd, loses nothing: the stream is the record.
//!
//! One event message is published per accepted command, so a bucket's
//! `events` is also the commands orderd decided then. Its latency is the
//! time from orderd's decision (the message's `at`) to the events stream
//! storing the message (JetStream's own time): persisting the change and
//! publishing it, that is how long after a decision a subscriber can know
//! of it. It leaves out the time a command waited in its lane before the
//! decision, which `orderd_lane_backlog` shows.
//!
//! Bounded: one answer reads at most [`MAX_EVENTS`] messages and for at
//! most [`MAX_READ`]; past either it says `complete: false`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::bus::scan::{scan_since, Stored};
use crate::bus::BusError;
use crate::subjects;
use crate::wire::parse_rfc3339;
use orderd_core::TenantId;

/// One bucket's length.
pub const BUCKET_MS: i64 = 10_000;

/// How far back an answer goes: 15 minutes.
pub const WINDOW_MS: i64 = 15 * 60 * 1000;

/// The most messages one answer reads.
pub const MAX_EVENTS: u64 = 100_000;

/// The longest one answer reads.
pub const MAX_READ: Duration = Duration::from_secs(5);

/// The request: the tenant, and optionally where the page's own data ends
/// (milliseconds since the epoch), to read only what came after.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThroughputRequest {
    /// The tenant.
    pub tenant: String,
    /// Read from this time on (clamped to the window, rounded down to a
    /// bucket).
    #[serde(default)]
    pub since: Option<i64>,
}

/// One bucket with events in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    /// Where it begins, milliseconds since the epoch.
    pub start: i64,
    /// Event messages stored in it (one per accepted command).
    pub events: u64,
    /// The median latency of its messages, decision → stored.
    pub latency_p50_ms: Option<i64>,
    /// The longest.
    pub latency_max_ms: Option<i64>,
}

/// The answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throughput {
    /// The tenant.
    pub tenant: String,
    /// A bucket's length.
    pub bucket_ms: i64,
    /// The first bucket read (buckets before it were not asked for).
    pub from: i64,
    /// When it was read.
    pub to: i64,
    /// Every message of the span was read (false: it stopped at a bound).
    pub complete: bool,
    /// The buckets with events, oldest first; the others had none.
    pub buckets: Vec<Bucket>,
}

/// The messages counted so far, by bucket.
#[derive(Debug, Default)]
pub struct Tally {
    /// Per bucket start: how many, and each latency known.
    buckets: BTreeMap<i64, (u64, Vec<i64>)>,
    /// Messages counted.
    pub counted: u64,
}

impl Tally {
    /// Counts a message stored at `stored_ms`, decided at `decided_ms` when
    /// known. A decision after the store (clocks apart) counts as 0 ms.
    pub fn add(&mut self, stored_ms: i64, decided_ms: Option<i64>) {
        let start = stored_ms.div_euclid(BUCKET_MS) * BUCKET_MS;
        let (n, latencies) = self.buckets.entry(start).or_default();
        *n += 1;
        latencies.extend(decided_ms.map(|d| (stored_ms - d).max(0)));
        self.counted += 1;
    }

    /// The buckets, oldest first.
    pub fn buckets(self) -> Vec<Bucket> {
        self.buckets
            .into_iter()
            .map(|(start, (events, mut latencies))| {
                latencies.sort_unstable();
                Bucket {
                    start,
                    events,
                    latency_p50_ms: latencies.get(latencies.len() / 2).copied(),
                    latency_max_ms: latencies.last().copied(),
                }
            })
            .collect()
    }
}

/// Where a read begins: the window's start, or `since` when later, rounded
/// down to a bucket.
pub fn first_bucket(now_ms: i64, since: Option<i64>) -> i64 {
    let from = (now_ms - WINDOW_MS).max(since.unwrap_or(i64::MIN));
    from.div_euclid(BUCKET_MS) * BUCKET_MS
}

/// Just the decision time of an event message.
#[derive(Deserialize)]
struct DecidedAt {
    at: String,
}

fn millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Reads the tenant's events from `since` (or the window's start) to now.
pub async fn read(
    js: &async_nats::jetstream::Context,
    tenant: &TenantId,
    since: Option<i64>,
) -> Result<Throughput, BusError> {
    let now = OffsetDateTime::now_utc();
    let to = millis(now);
    let from = first_bucket(to, since);
    let start = OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(from);
    let mut tally = Tally::default();
    let count = |msg: Stored| {
        let decided = serde_json::from_slice::<DecidedAt>(&msg.payload)
            .ok()
            .and_then(|d| parse_rfc3339(&d.at))
            .map(|t| t.0);
        tally.add(millis(msg.stored_at), decided);
        tally.counted < MAX_EVENTS
    };
    let filter = subjects::events_of_tenant(tenant);
    let scanned = scan_since(js, subjects::STREAM_EVENTS, filter, start, count);
    let complete = match tokio::time::timeout(MAX_READ, scanned).await {
        Ok(read) => {
            read?;
            tally.counted < MAX_EVENTS
        }
        Err(_) => false,
    };
    Ok(Throughput {
        tenant: tenant.to_string(),
        bucket_ms: BUCKET_MS,
        from,
        to,
        complete,
        buckets: tally.buckets(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_fall_in_ten_second_buckets_with_their_latencies() {
        let mut tally = Tally::default();
        tally.add(20_000, Some(19_990));
        tally.add(20_500, Some(20_470));
        tally.add(29_999, Some(29_900));
        tally.add(30_000, None);
        tally.add(41_000, Some(41_050));
        assert_eq!(
            tally.buckets(),
            vec![
                Bucket {
                    start: 20_000,
                    events: 3,
                    latency_p50_ms: Some(30),
                    latency_max_ms: Some(99),
                },
                Bucket {
                    start: 30_000,
                    events: 1,
                    latency_p50_ms: None,
                    latency_max_ms: None,
                },
                Bucket {
                    start: 40_000,
                    events: 1,
                    latency_p50_ms: Some(0),
                    latency_max_ms: Some(0),
                },
            ]
        );
    }

    #[test]
    fn a_read_starts_at_the_window_or_later_on_a_bucket() {
        let now = 10_000_000_123;
        assert_eq!(first_bucket(now, None), 9_999_100_000);
        assert_eq!(first_bucket(now, Some(0)), 9_999_100_000);
        assert_eq!(first_bucket(now, Some(10_000_000_000)), 10_000_000_000);
        assert_eq!(first_bucket(now, Some(9_999_999_999)), 9_999_990_000);
    }
}
