//! `orderd-testkit`: what orderd's integration tests and its bench share,
//! so both run orderd against the same real servers, started the same way.
//! Test support only: the `orderd` crate takes it as a dev-dependency
//! (named `testkit`), `orderd-bench` as a dependency; the service never
//! does.
//!
//! # Layout
//!
//! | module | what |
//! |---|---|
//! | [`servers`] | `nats-server` (JetStream, the pinned release) and `redis-server` (append-only) on free loopback ports in a temporary directory: start, stop, kill -9, restart; binary lookup and the version pin ([`servers::binary`]) |
//! | [`process`] | orderd as a child process (the built binary, or the bench re-executing itself), for kill -9, SIGSTOP and its own memory |
//! | [`app`] | orderd inside the test's process, and the wait for any orderd to be healthy |
//! | [`client`] | one test's world ([`TestApp`]: servers, orderd, a connection, a random tenant) and the commands and reads it sends |
//! | [`dispatcher`] | a scriptable dispatch service for one tenant |
//! | [`events`] | a tenant's live event log, and a stream's stored messages read raw |
//! | [`http`] | a plain HTTP GET against orderd's HTTP listener (health probes, metrics) |
//! | [`measure`] | percentiles, a process's memory and CPU time, the knobs of a long run |
//!
//! Imports run one way, with no circles: `process` imports `servers`;
//! `client` imports `servers`, `app`, `events` and `dispatcher`; `browser`
//! imports `servers`; the others
//! import nothing of this crate but [`WAIT`].
//!
//! What tests use most is re-exported here, so a test reads
//! `use testkit::{spawn_app, create_body};`.

pub mod app;
pub mod browser;
pub mod client;
pub mod dispatcher;
pub mod events;
pub mod http;
pub mod measure;
pub mod process;
pub mod servers;

use std::time::Duration;

pub use app::{wait_healthy, App};
pub use browser::Browser;
pub use client::{
    attach, client_for, create_body, drop_ids, msg_id, random_tenant, spawn_app, spawn_app_with,
    subject_matches, TestApp,
};
pub use dispatcher::{
    complete_everything, job_body, job_msg_id, start_and_confirm_cancels, Dispatcher, Script,
};
pub use events::{stored_events, stored_messages, EventLog};
pub use http::{http_get, sample, scrape, HttpAnswer};
pub use measure::{env_or, percentile, rss_kib};
pub use process::Process;
pub use servers::Servers;

/// How long a test waits for anything before failing.
pub const WAIT: Duration = Duration::from_secs(20);
