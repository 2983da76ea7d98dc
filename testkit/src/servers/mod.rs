//! Real servers on free loopback ports, in a temporary directory that goes
//! with them: `nats-server` with JetStream and file storage ([`NatsServer`],
//! the pinned release; see [`binary`]) and `redis-server` append-only
//! ([`RedisServer`]), each startable, stoppable, killable with SIGKILL and
//! restartable on the same port and data; [`Servers`] is the pair a test or
//! the bench runs orderd against.
//!
//! Every child is killed on drop and every temporary directory removed. A
//! server that exits or does not listen within [`START_WITHIN`] is an error
//! that carries the end of its log.
//!
//! Imports: `orderd` (settings, the Redis store) and nothing else of this
//! crate.

pub mod binary;
mod cluster;
mod nats;
mod redis;
mod sentinel;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use orderd::settings::{SecretUrl, Settings};

pub use cluster::NatsCluster;
pub use nats::{ClusterNode, NatsOptions, NatsServer};
pub use redis::RedisServer;
pub use sentinel::SentinelSet;

/// How long a server may take to listen.
pub const START_WITHIN: Duration = Duration::from_secs(15);

/// Why a server did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The binary is missing or of the wrong release (the message says
    /// what to do).
    #[error("{0}")]
    Binary(String),
    /// The temporary directory or the log file could not be made.
    #[error("{what}: {source}")]
    Io {
        /// What was being made.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The process could not be spawned.
    #[error("{name} did not start: {source}")]
    Spawn {
        /// `nats-server` or `redis-server`.
        name: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// The process exited, or did not listen in time.
    #[error("{name} {what} on port {port}; its log ends:\n{log}")]
    NotListening {
        /// `nats-server` or `redis-server`.
        name: &'static str,
        /// `exited (status)` or `did not listen within …`.
        what: String,
        /// The port it was given.
        port: u16,
        /// The last lines of its log.
        log: String,
    },
}

/// A directory under the system's temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Makes `<tmp>/<prefix>-<uuid>`.
    pub fn new(prefix: &str) -> Result<Self, ServerError> {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).map_err(|source| ServerError::Io {
            what: format!("creating {}", path.display()),
            source,
        })?;
        Ok(Self(path))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port nobody listens on now (the OS's pick for port 0).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The last `lines` lines of the file at `path` (empty if unreadable).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(lines).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// Waits until something accepts connections on `127.0.0.1:port`; fails if
/// `child` exits first or [`START_WITHIN`] passes.
async fn wait_listening(
    child: &mut Child,
    name: &'static str,
    port: u16,
    log: &Path,
) -> Result<(), ServerError> {
    let deadline = tokio::time::Instant::now() + START_WITHIN;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        let what = match child.try_wait() {
            Ok(Some(status)) => Some(format!("exited ({status})")),
            _ if tokio::time::Instant::now() > deadline => {
                Some(format!("did not listen within {START_WITHIN:?}"))
            }
            _ => None,
        };
        if let Some(what) = what {
            return Err(ServerError::NotListening {
                name,
                what,
                port,
                log: log_tail(log, 20),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills `child` with SIGKILL and reaps it.
fn kill9(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// How to start [`Servers`].
#[derive(Debug, Clone)]
pub struct ServersBuilder {
    prefix: String,
    nats: NatsOptions,
    redis_fsync: &'static str,
}

impl ServersBuilder {
    /// The temporary directory's name starts with `prefix`
    /// (`orderd-test` by default).
    pub fn named(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.prefix);
        self
    }

    /// nats-server serves Go's profiles (`/debug/pprof/…`) on `port`.
    pub fn nats_profile_port(mut self, port: Option<String>) -> Self {
        self.nats.profile_port = port;
        self
    }

    /// Redis's `appendfsync` (`always` by default: with `everysec`, Redis
    /// answers writes it has not yet handed to the operating system while
    /// an fsync is slow, so even a killed Redis process can lose
    /// acknowledged writes, and the tests kill it).
    pub fn redis_fsync(mut self, policy: &'static str) -> Self {
        self.redis_fsync = policy;
        self
    }

    /// Starts both and waits until they accept connections.
    pub async fn start(self) -> Result<Servers, ServerError> {
        let dir = TempDir::new(&self.prefix)?;
        let nats = NatsServer::start_in(dir.path(), self.nats).await?;
        let fsync = vec!["--appendfsync".to_owned(), self.redis_fsync.to_owned()];
        let redis = RedisServer::start_with(dir.path(), fsync).await?;
        Ok(Servers {
            nats_url: nats.url(),
            redis_url: redis.url(),
            nats,
            redis,
            dir,
        })
    }
}

/// A NATS server and a Redis server of one test (or one bench run), in one
/// temporary directory (`nats/`, `redis/`, their logs, and whatever the
/// test writes there).
pub struct Servers {
    /// `nats://127.0.0.1:<port>`.
    pub nats_url: String,
    /// `redis://127.0.0.1:<port>`.
    pub redis_url: String,
    nats: NatsServer,
    redis: RedisServer,
    // Last: removed once both servers are gone.
    dir: TempDir,
}

impl Servers {
    /// How to start them, for the bench and anything that wants errors
    /// rather than panics.
    pub fn builder() -> ServersBuilder {
        ServersBuilder {
            prefix: "orderd-test".to_owned(),
            nats: NatsOptions::default(),
            redis_fsync: "always",
        }
    }

    /// Starts both and waits until they accept connections; panics with the
    /// reason (a missing or wrong nats-server says to run `./scripts/test`).
    /// `ORDERD_TEST_NATS_PROFILE=<port>` has nats-server serve Go's
    /// profiles there, to see where its CPU goes.
    pub async fn start() -> Self {
        Self::builder()
            .nats_profile_port(std::env::var("ORDERD_TEST_NATS_PROFILE").ok())
            .start()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The NATS server.
    pub fn nats(&self) -> &NatsServer {
        &self.nats
    }

    /// The Redis server.
    pub fn redis(&self) -> &RedisServer {
        &self.redis
    }

    /// The data directory of the servers (`nats/`, `redis/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops Redis with SIGTERM (it writes its append-only file and exits).
    pub fn stop_redis(&mut self) {
        self.redis.stop();
    }

    /// Kills Redis with SIGKILL (no shutdown; what it acknowledged is in
    /// its append-only file, in the OS cache).
    pub fn kill_redis(&mut self) {
        self.redis.kill();
    }

    /// Starts Redis again on the same port and directory.
    pub async fn start_redis(&mut self) {
        self.redis
            .start_again()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Kills NATS (kill -9) and leaves it down.
    pub fn kill_nats(&mut self) {
        self.nats.kill();
    }

    /// Starts NATS again (after [`Servers::kill_nats`]) on the same port and
    /// store.
    pub async fn start_nats(&mut self) {
        self.nats
            .start_again()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Kills NATS (kill -9) and starts it again on the same port and store.
    pub async fn restart_nats(&mut self) {
        self.nats.kill();
        self.start_nats().await;
    }

    /// Settings for an orderd on these servers, tuned for tests: short ack
    /// wait and backoff so redeliveries happen within a test's patience.
    pub fn settings(&self) -> Settings {
        let mut s = Settings::default();
        s.nats.url = SecretUrl::new(self.nats_url.clone());
        s.redis.url = SecretUrl::new(self.redis_url.clone());
        s.consumers.ack_wait_secs = 3;
        s.consumers.nak_backoff_ms = vec![50, 100, 250, 500];
        s.consumers.max_ack_pending = 256;
        s.runtime.max_in_flight = 64;
        s.runtime.tenant_config_ttl_ms = 200;
        s.runtime.timer_sweep_ms = 200;
        s.runtime.shutdown_grace_ms = 5_000;
        s.validate().expect("test settings are valid");
        s
    }

    /// The environment that gives the `orderd` binary the same settings.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ORDERD_NATS_URL", self.nats_url.clone()),
            ("ORDERD_REDIS_URL", self.redis_url.clone()),
            ("ORDERD_ACK_WAIT_SECS", "2".into()),
            ("ORDERD_MAX_IN_FLIGHT", "64".into()),
            ("ORDERD_LOG_FORMAT", "json".into()),
            ("RUST_LOG", "warn".into()),
        ]
    }

    /// A Redis store handle on the test's Redis.
    pub async fn store(&self) -> orderd::store::RedisStore {
        orderd::store::RedisStore::connect(&self.settings().redis)
            .await
            .expect("redis store")
    }
}
