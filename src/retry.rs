//! How orderd waits before trying again after a passing failure (NATS or
//! Redis away, a consumer that cannot be opened, an outbox not yet
//! published): exponential from 100 ms to 5 s, each delay with random
//! jitter, so many orders or instances that failed together do not retry
//! together, and a long outage costs a retry every few seconds, not every
//! 100 ms. The commands concerned wait in their stream meanwhile.
//!
//! May import: nothing of the crate (a leaf).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// The first delay.
pub const FIRST: Duration = Duration::from_millis(100);
/// The longest delay (before jitter, which adds up to as much again).
pub const LONGEST: Duration = Duration::from_secs(5);

/// An endless series of delays: 100 ms, 200 ms, 400 ms, … up to 5 s, each
/// plus a random part of itself. Start a new one after a success.
pub fn backoff() -> impl Iterator<Item = Duration> + Send {
    ExponentialBuilder::default()
        .with_min_delay(FIRST)
        .with_max_delay(LONGEST)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

/// The delay before attempt `failures + 1`, for a caller that keeps a count
/// of its failures rather than a series.
pub fn delay_after(failures: u32) -> Duration {
    backoff().nth(failures.min(16) as usize).unwrap_or(LONGEST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_with_jitter_and_never_end() {
        let delays: Vec<Duration> = backoff().take(40).collect();
        assert_eq!(delays.len(), 40);
        for (i, d) in delays.iter().enumerate() {
            let base = (FIRST * 2u32.pow(i.min(10) as u32)).min(LONGEST);
            assert!(*d >= base && *d <= base * 2, "{i}: {d:?} against {base:?}");
        }
        // Jitter: forty delays at the cap are not all the same.
        let capped: Vec<Duration> = backoff().skip(10).take(40).collect();
        assert!(capped.iter().any(|d| *d != capped[0]), "{capped:?}");
        assert!(delay_after(0) < Duration::from_millis(201));
        assert!(delay_after(1_000) >= LONGEST);
    }
}
