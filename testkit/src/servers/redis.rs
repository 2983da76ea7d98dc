//! redis-server, append-only, on a free loopback port.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::binary::{self, Binary};
use super::{free_port, kill9, wait_listening, ServerError};

/// One redis-server with `appendonly yes` and no RDB snapshots, killed on
/// drop; its data is `<dir>/redis/`, its log `<dir>/redis.log`.
pub struct RedisServer {
    binary: &'static Binary,
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    /// More arguments (`--replicaof 127.0.0.1 <port>`).
    args: Vec<String>,
}

impl RedisServer {
    /// Starts one in `dir` (which the caller keeps).
    pub async fn start_in(dir: &Path) -> Result<Self, ServerError> {
        Self::start_with(dir, Vec::new()).await
    }

    /// Starts one in `dir` with more arguments.
    pub async fn start_with(dir: &Path, args: Vec<String>) -> Result<Self, ServerError> {
        let data = dir.join("redis");
        std::fs::create_dir_all(&data).map_err(|source| ServerError::Io {
            what: format!("creating {}", data.display()),
            source,
        })?;
        let mut server = Self {
            binary: binary::redis_server().map_err(ServerError::Binary)?,
            child: None,
            port: free_port(),
            dir: dir.to_owned(),
            args,
        };
        server.start_again().await?;
        Ok(server)
    }

    /// Its port (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sends it a signal by name (`STOP`, `CONT`).
    pub fn signal(&self, name: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .arg(format!("-{name}"))
                .arg(child.id().to_string())
                .status();
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its `--version` line.
    pub fn version(&self) -> &str {
        &self.binary.version
    }

    /// Its log (appended across restarts).
    pub fn log(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// Stops it with SIGTERM (it writes its append-only file and exits).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Kills it with SIGKILL (no shutdown; what it acknowledged is in its
    /// append-only file, in the OS cache).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill9(&mut child);
        }
    }

    /// Starts it (again, after [`RedisServer::stop`] or
    /// [`RedisServer::kill`]) on the same port and data, and waits until it
    /// listens.
    pub async fn start_again(&mut self) -> Result<(), ServerError> {
        if self.child.is_none() {
            self.child = Some(self.spawn()?);
        }
        let log = self.log();
        let child = self.child.as_mut().expect("spawned above");
        wait_listening(child, "redis-server", self.port, &log).await
    }

    fn spawn(&self) -> Result<Child, ServerError> {
        let log_path = self.log();
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| ServerError::Io {
                what: format!("opening {}", log_path.display()),
                source,
            })?;
        Command::new(&self.binary.path)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--appendonly", "yes"])
            .args(["--save", ""])
            .arg("--dir")
            .arg(self.dir.join("redis"))
            .args(&self.args)
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| ServerError::Spawn {
                name: "redis-server",
                source,
            })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
