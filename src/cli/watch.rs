//! `orderd watch`: an order's (or a tenant's orders') current state, then
//! every change after it, in sequence, with no gap and no double, even when
//! the watch begins in the middle of a burst.
//!
//! The recipe (docs/operations.md has it for dashboards):
//! 1. subscribe first: an ordered consumer on the events stream, filtered
//!    on the order's (or the tenant's) event subjects, delivering only what
//!    the stream stores from now on. The server holds what arrives meanwhile;
//! 2. then read the current state with `get` (a tenant: `query`, per open
//!    state), and note each order's `seq`;
//! 3. then print each event whose `seq` is the next one of its order;
//!    drop one at or below it (the state already shows it, or it is a
//!    re-published double), hold one above it until the gap fills.
//!
//! Why nothing is lost: orderd publishes a change's event only after the
//! change is visible to reads, so an event newer than the state `get` read
//! is published after that read, hence after the subscription, and the
//! stream delivers it. A gap can only come from events stored out of order;
//! one that stays open past [`GAP_GRACE`] is filled from the `history`
//! endpoint (or, if the stream no longer holds them, reported and skipped).
//!
//! A tenant's watch narrowed by query filters runs the same recipe: the
//! opening list is the query's (per open state, or the one state asked
//! for), every order's changes are still put in sequence, and
//! [`Narrowing`] then picks the ones to print (see its rule).

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use bytes::Bytes;
use futures::StreamExt;
use orderd_core::{OrderId, OrderState, TenantId};

use super::args::{QueryFilters, WatchArgs};
use super::client::Client;
use super::failure::Failure;
use super::narrow::Narrowing;
use super::render;
use crate::subjects;
use crate::wire::{
    EventMessage, HistoryRequest, HistoryResponse, OrderRequest, OrderView, QueryResponse,
};

/// How long an order's events may wait behind a gap before the gap is
/// filled from its history.
pub const GAP_GRACE: Duration = Duration::from_secs(1);

/// Errors from the events stream in a row before the watch gives up (the
/// ordered consumer recreates itself after each).
const MAX_STREAM_FAILURES: u32 = 10;

/// The most raw payloads kept for `--json` while their events wait.
const RAW_KEPT: usize = 10_000;

/// Where one order's printing stands.
#[derive(Debug, Default)]
struct Track {
    /// The seq to print next; `None` until the order's state or first event
    /// is seen.
    next: Option<u64>,
    /// Events that came before their turn, by seq.
    pending: BTreeMap<u64, EventMessage>,
    /// Since when the oldest of them waits.
    waiting_since: Option<Instant>,
}

/// Puts each order's events in sequence: once, in order, after the state.
#[derive(Debug, Default)]
pub struct Sequencer {
    orders: HashMap<String, Track>,
}

/// An order whose events wait behind a gap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    /// The order.
    pub order_id: String,
    /// The first seq missing.
    pub next: u64,
    /// The first seq held back.
    pub first_pending: u64,
}

impl Sequencer {
    /// The order's state was read at `seq`: print what comes after it.
    /// Returns the held events this makes printable.
    pub fn start(&mut self, order_id: &str, seq: u64, now: Instant) -> Vec<EventMessage> {
        let track = self.orders.entry(order_id.to_owned()).or_default();
        let next = seq + 1;
        track.next = Some(track.next.map_or(next, |n| n.max(next)));
        Self::flush(track, now)
    }

    /// An event arrived; returns the events now printable, in order.
    pub fn offer(&mut self, event: EventMessage, now: Instant) -> Vec<EventMessage> {
        let track = self.orders.entry(event.order_id.clone()).or_default();
        // An order first seen by its event (a tenant's watch, an order the
        // opening list did not have): it starts there.
        let next = *track.next.get_or_insert(event.seq);
        if event.seq < next {
            return Vec::new();
        }
        track.pending.entry(event.seq).or_insert(event);
        Self::flush(track, now)
    }

    /// Gives up on a gap: the order's printing goes on from `seq`.
    pub fn skip_to(&mut self, order_id: &str, seq: u64, now: Instant) -> Vec<EventMessage> {
        let track = self.orders.entry(order_id.to_owned()).or_default();
        track.next = Some(track.next.map_or(seq, |n| n.max(seq)));
        Self::flush(track, now)
    }

    /// Orders whose held events have waited longer than `grace`.
    pub fn stalled(&self, now: Instant, grace: Duration) -> Vec<Stall> {
        self.orders
            .iter()
            .filter(|(_, t)| {
                t.waiting_since
                    .is_some_and(|since| now.duration_since(since) >= grace)
            })
            .filter_map(|(id, t)| {
                Some(Stall {
                    order_id: id.clone(),
                    next: t.next?,
                    first_pending: *t.pending.keys().next()?,
                })
            })
            .collect()
    }

    /// Takes the printable events; what stays held waits from `now` on
    /// (or from when the oldest of it began waiting, if nothing moved).
    fn flush(track: &mut Track, now: Instant) -> Vec<EventMessage> {
        let mut ready = Vec::new();
        let Some(mut next) = track.next else {
            return ready;
        };
        // Doubles and what the state already shows.
        track.pending = track.pending.split_off(&next);
        while let Some(event) = track.pending.remove(&next) {
            ready.push(event);
            next += 1;
        }
        track.next = Some(next);
        if track.pending.is_empty() {
            track.waiting_since = None;
        } else if !ready.is_empty() || track.waiting_since.is_none() {
            track.waiting_since = Some(now);
        }
        ready
    }
}

/// Prints one line; false once stdout is closed (the reader went away).
fn emit(line: &str) -> bool {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
}

/// An event's line: with `--json` the message as the stream holds it (its
/// raw payload when it came from the stream), else text.
fn event_line(e: &EventMessage, raw: Option<&[u8]>, json: bool) -> String {
    match (json, raw) {
        (true, Some(raw)) => String::from_utf8_lossy(raw).into_owned(),
        (true, None) => serde_json::to_string(e).unwrap_or_default(),
        (false, _) => render::change_line(e),
    }
}

fn state_line(v: &OrderView, json: bool) -> String {
    if json {
        serde_json::to_string(v).unwrap_or_default()
    } else {
        render::state_line(v)
    }
}

/// Refuses what cannot be watched, before anything is sent: filters with
/// an order.
pub fn check(args: &WatchArgs) -> Result<(), Failure> {
    if args.order.is_some() && !args.filters.is_empty() {
        return Err(Failure::Usage(
            "filters narrow a tenant's watch: give them without ORDER".to_owned(),
        ));
    }
    Ok(())
}

/// Runs the watch (once [`check`]ed) until interrupted (Ctrl-C), or until stdout closes.
pub async fn run(client: &Client, args: &WatchArgs) -> Result<(), Failure> {
    let json = args.conn.json;
    let tenant = client.tenant().clone();
    let narrowed = !args.filters.is_empty();
    // 1. Subscribe first.
    let filter = match args.order {
        Some(order) => subjects::events_of_order(&tenant, order),
        None => subjects::events_of_tenant(&tenant),
    };
    let unavailable = |e: &dyn std::fmt::Display| {
        Failure::Unavailable(format!("cannot follow the events stream: {e}"))
    };
    let stream = client
        .jetstream()
        .get_stream(subjects::STREAM_EVENTS)
        .await
        .map_err(|e| unavailable(&e))?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: filter,
            deliver_policy: DeliverPolicy::New,
            ..Default::default()
        })
        .await
        .map_err(|e| unavailable(&e))?;
    let mut events = consumer.messages().await.map_err(|e| unavailable(&e))?;

    // 2. Then the current state.
    let mut sequencer = Sequencer::default();
    let mut narrowing = narrowed.then(|| Narrowing::new(args.filters.request(&tenant, None, None)));
    let opening = match args.order {
        Some(order) => vec![current(client, &tenant, order).await?],
        None if args.changes_only => {
            if narrowed {
                // One order at most, so that filters orderd refuses fail now.
                let request = args.filters.request(&tenant, Some(1), None);
                let _: (QueryResponse, _) = client.read(subjects::API_QUERY, &request).await?;
            }
            Vec::new()
        }
        None => open_orders(client, &tenant, &args.filters).await?,
    };
    for view in &opening {
        if !emit(&state_line(view, json)) {
            return Ok(());
        }
        sequencer.start(&view.order_id, view.seq, Instant::now());
        if let Some(narrowing) = narrowing.as_mut() {
            narrowing.opened(view);
        }
    }

    // 3. Then every change after it.
    let mut raw: HashMap<(String, u64), Bytes> = HashMap::new();
    let mut failures = 0;
    let mut tick = tokio::time::interval(GAP_GRACE / 4);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let ready = tokio::select! {
            next = events.next() => match next {
                Some(Ok(msg)) => {
                    failures = 0;
                    match serde_json::from_slice::<EventMessage>(&msg.payload) {
                        Ok(event) => {
                            if json {
                                raw.insert((event.order_id.clone(), event.seq), msg.payload.clone());
                            }
                            sequencer.offer(event, Instant::now())
                        }
                        Err(e) => {
                            eprintln!("orderd: an event this version cannot read was skipped: {e}");
                            Vec::new()
                        }
                    }
                }
                Some(Err(e)) if failures < MAX_STREAM_FAILURES => {
                    failures += 1;
                    eprintln!("orderd: the events stream failed ({e}); following it again");
                    Vec::new()
                }
                Some(Err(e)) => return Err(Failure::Unavailable(format!("the events stream: {e}"))),
                None => return Err(Failure::Unavailable("the events stream ended".to_owned())),
            },
            _ = tick.tick() => fill_gaps(client, &tenant, &mut sequencer).await,
            _ = &mut interrupted => return Ok(()),
        };
        for event in &ready {
            let payload = raw.remove(&(event.order_id.clone(), event.seq));
            if let Some(narrowing) = narrowing.as_mut() {
                if !admitted(client, &tenant, narrowing, event).await {
                    continue;
                }
            }
            if !emit(&event_line(event, payload.as_deref(), json)) {
                return Ok(());
            }
        }
        // Held back and then dropped as doubles: their payloads go too.
        if raw.len() > RAW_KEPT {
            raw.clear();
        }
    }
}

async fn current(client: &Client, tenant: &TenantId, order: OrderId) -> Result<OrderView, Failure> {
    let request = OrderRequest {
        tenant: tenant.to_string(),
        order_id: order.to_string(),
    };
    Ok(client.read(subjects::API_GET, &request).await?.0)
}

/// Whether a narrowed watch prints `event`, reading its order first when
/// it is first seen in the middle of its life.
async fn admitted(
    client: &Client,
    tenant: &TenantId,
    narrowing: &mut Narrowing,
    event: &EventMessage,
) -> bool {
    if narrowing.needs_reading(event) {
        let read = match OrderId::parse(&event.order_id) {
            Ok(order) => current(client, tenant, order).await,
            Err(e) => Err(Failure::Unexpected(e.to_string())),
        };
        if let Err(f) = &read {
            eprintln!(
                "orderd: order {} cannot be read ({f}); its changes are left out",
                event.order_id
            );
        }
        narrowing.read(&event.order_id, read.ok().as_ref());
    }
    narrowing.admits(event)
}

/// Every order of the tenant that `filters` match and that is not CLOSED
/// (or, with a state among the filters, every order in that state), page
/// after page.
async fn open_orders(
    client: &Client,
    tenant: &TenantId,
    filters: &QueryFilters,
) -> Result<Vec<OrderView>, Failure> {
    let states: Vec<OrderState> = match filters.state {
        Some(state) => vec![state],
        None => OrderState::ALL
            .into_iter()
            .filter(|s| *s != OrderState::Closed)
            .collect(),
    };
    let mut all = Vec::new();
    for state in states {
        let mut after = None;
        loop {
            let mut request = filters.request(tenant, Some(500), after);
            request.state = Some(state);
            let (page, _): (QueryResponse, _) = client.read(subjects::API_QUERY, &request).await?;
            all.extend(page.orders);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    // An order that moved between two states' pages is listed twice: keep
    // its later look.
    all.sort_by(|a, b| a.order_id.cmp(&b.order_id).then(b.seq.cmp(&a.seq)));
    all.dedup_by(|later, earlier| later.order_id == earlier.order_id);
    all.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    Ok(all)
}

/// Fills gaps that stayed open from the orders' histories.
async fn fill_gaps(
    client: &Client,
    tenant: &TenantId,
    sequencer: &mut Sequencer,
) -> Vec<EventMessage> {
    let mut ready = Vec::new();
    for stall in sequencer.stalled(Instant::now(), GAP_GRACE) {
        let missing = stall.first_pending - stall.next;
        let request = HistoryRequest {
            tenant: tenant.to_string(),
            order_id: stall.order_id.clone(),
            from_seq: Some(stall.next),
            limit: Some(u32::try_from(missing).unwrap_or(u32::MAX)),
        };
        if let Ok((page, _)) = client
            .read::<_, HistoryResponse>(subjects::API_HISTORY, &request)
            .await
        {
            for event in page.events {
                ready.extend(sequencer.offer(event, Instant::now()));
            }
        }
        if sequencer
            .stalled(Instant::now(), Duration::ZERO)
            .iter()
            .any(|s| s.order_id == stall.order_id && s.next == stall.next)
        {
            eprintln!(
                "orderd: order {}: seq {}..{} are not in the events stream; skipped",
                stall.order_id,
                stall.next,
                stall.first_pending - 1
            );
            ready.extend(sequencer.skip_to(&stall.order_id, stall.first_pending, Instant::now()));
        }
    }
    ready
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(order: &str, seq: u64) -> EventMessage {
        EventMessage::sample(order, seq, "ON_HOLD", Vec::new())
    }

    fn seqs(events: &[EventMessage]) -> Vec<u64> {
        events.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn events_already_in_the_state_and_doubles_are_dropped() {
        let now = Instant::now();
        let mut s = Sequencer::default();
        // Subscribed, then events 4 and 5 arrived before the state was read at 5.
        assert!(seqs(&s.start("a", 5, now)).is_empty());
        assert!(s.offer(event("a", 4), now).is_empty());
        assert!(s.offer(event("a", 5), now).is_empty());
        assert_eq!(seqs(&s.offer(event("a", 6), now)), [6]);
        assert!(s.offer(event("a", 6), now).is_empty());
        assert_eq!(seqs(&s.offer(event("a", 7), now)), [7]);
    }

    #[test]
    fn an_early_event_waits_for_its_turn() {
        let now = Instant::now();
        let mut s = Sequencer::default();
        s.start("a", 1, now);
        assert!(s.offer(event("a", 3), now).is_empty());
        assert!(s.stalled(now, GAP_GRACE).is_empty());
        let later = now + GAP_GRACE;
        assert_eq!(
            s.stalled(later, GAP_GRACE),
            [Stall {
                order_id: "a".into(),
                next: 2,
                first_pending: 3
            }]
        );
        assert_eq!(seqs(&s.offer(event("a", 2), later)), [2, 3]);
        assert!(s.stalled(later + GAP_GRACE, GAP_GRACE).is_empty());
    }

    #[test]
    fn a_gap_given_up_goes_on_from_the_next_held_event() {
        let now = Instant::now();
        let mut s = Sequencer::default();
        s.start("a", 1, now);
        s.offer(event("a", 4), now);
        assert_eq!(seqs(&s.skip_to("a", 4, now)), [4]);
        assert_eq!(seqs(&s.offer(event("a", 5), now)), [5]);
    }

    #[test]
    fn orders_without_a_state_start_at_their_first_event() {
        let now = Instant::now();
        let mut s = Sequencer::default();
        assert_eq!(seqs(&s.offer(event("b", 9), now)), [9]);
        assert_eq!(seqs(&s.offer(event("b", 10), now)), [10]);
        // Orders are sequenced apart.
        s.start("a", 2, now);
        assert_eq!(seqs(&s.offer(event("a", 3), now)), [3]);
        assert!(s.offer(event("b", 10), now).is_empty());
    }

    #[test]
    fn a_state_read_after_some_events_does_not_print_them_twice() {
        let now = Instant::now();
        let mut s = Sequencer::default();
        s.offer(event("a", 3), now);
        // The tenant's opening list saw the order later, at seq 4.
        assert!(s.start("a", 4, now).is_empty());
        assert_eq!(seqs(&s.offer(event("a", 5), now)), [5]);
    }
}
