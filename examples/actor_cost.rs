//! What one ractor actor costs in resident memory before it holds anything:
//! the floor under orderd's bytes per live order actor.
//!
//! ```sh
//! cargo run --release --example actor_cost            # empty actors
//! cargo run --release --example actor_cost -- interval # each with a send_interval, as an order actor's idle check
//! ```
//!
//! Spawns 100,000 actors with no state and prints the growth of the
//! process's resident memory divided by their number.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ACTORS: usize = 100_000;

struct Empty;

struct Tick;

impl Actor for Empty {
    type Msg = Tick;
    type State = ();
    type Arguments = bool;

    async fn pre_start(
        &self,
        myself: ActorRef<Tick>,
        interval: bool,
    ) -> Result<(), ActorProcessingErr> {
        if interval {
            // Kept running for the actor's life, as the order actor's is.
            std::mem::forget(myself.send_interval(Duration::from_secs(30), || Tick));
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Tick>,
        _msg: Tick,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

fn rss_kib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let interval = std::env::args().nth(1).as_deref() == Some("interval");
    let before = rss_kib();
    let mut actors = Vec::with_capacity(ACTORS);
    for _ in 0..ACTORS {
        let (actor, _handle) = Actor::spawn(None, Empty, interval).await?;
        actors.push(actor);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let per_actor = (rss_kib() - before) * 1024.0 / ACTORS as f64;
    println!(
        "{ACTORS} ractor actors{}: {per_actor:.0} bytes of resident memory each",
        if interval {
            " with a send_interval"
        } else {
            ""
        }
    );
    Ok(())
}
