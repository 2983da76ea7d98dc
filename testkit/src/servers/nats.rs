//! nats-server with JetStream and file storage on a free loopback port.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::binary::{self, Binary};
use super::{free_port, kill9, wait_listening, ServerError, TempDir};

/// What a [`NatsServer`] runs with beyond `-js -a 127.0.0.1 -p <port> -sd
/// <store>`.
#[derive(Debug, Clone, Default)]
pub struct NatsOptions {
    /// A configuration file (`-c`), e.g. `config/nats-server.conf`.
    pub config: Option<PathBuf>,
    /// Environment variables for the server (a configuration's `$VARS`).
    pub env: Vec<(String, String)>,
    /// Go's profiles (`/debug/pprof/…`) served on this port (`--profile`).
    pub profile_port: Option<String>,
    /// A node of a cluster: its stable name, its route port, and the
    /// route ports of the others.
    pub cluster: Option<ClusterNode>,
    /// More command-line arguments (`--tls`, `--tlscert FILE`, …).
    pub args: Vec<String>,
}

/// How one node of a nats-server cluster is started.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    /// `--server_name`: stable across restarts (JetStream knows its peers
    /// by name).
    pub name: String,
    /// `--cluster_name`.
    pub cluster: String,
    /// This node's route port.
    pub route_port: u16,
    /// The other nodes' route ports.
    pub routes: Vec<u16>,
}

/// One nats-server (the pinned release), killed on drop; its store is
/// `<dir>/nats/`, its log `<dir>/nats.log`.
pub struct NatsServer {
    binary: &'static Binary,
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    options: NatsOptions,
    // Only when the server made its own directory: removed after the kill.
    _own_dir: Option<TempDir>,
}

impl NatsServer {
    /// Starts one in a temporary directory of its own.
    pub async fn start(options: NatsOptions) -> Result<Self, ServerError> {
        let dir = TempDir::new("orderd-nats")?;
        let mut server = Self::start_in(dir.path(), options).await?;
        server._own_dir = Some(dir);
        Ok(server)
    }

    /// Starts one in `dir` (which the caller keeps).
    pub async fn start_in(dir: &Path, options: NatsOptions) -> Result<Self, ServerError> {
        let mut server = Self {
            binary: binary::nats_server().map_err(ServerError::Binary)?,
            child: None,
            port: free_port(),
            dir: dir.to_owned(),
            options,
            _own_dir: None,
        };
        server.start_again().await?;
        Ok(server)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Its port (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its `--version` line (`nats-server: v2.12.8`).
    pub fn version(&self) -> &str {
        &self.binary.version
    }

    /// Its log (standard error, appended across restarts).
    pub fn log(&self) -> PathBuf {
        self.dir.join("nats.log")
    }

    /// Kills it (kill -9) and leaves it down.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill9(&mut child);
        }
    }

    /// Starts it (again, after [`NatsServer::kill`]) on the same port and
    /// store, and waits until it listens.
    pub async fn start_again(&mut self) -> Result<(), ServerError> {
        if self.child.is_none() {
            self.child = Some(self.spawn()?);
        }
        let log = self.log();
        let child = self.child.as_mut().expect("spawned above");
        wait_listening(child, "nats-server", self.port, &log).await
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
        let mut cmd = Command::new(&self.binary.path);
        if let Some(config) = &self.options.config {
            cmd.arg("-c").arg(config);
        }
        cmd.args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("-sd")
            .arg(self.dir.join("nats"));
        if let Some(port) = &self.options.profile_port {
            cmd.args(["--profile", port]);
        }
        cmd.args(&self.options.args);
        if let Some(node) = &self.options.cluster {
            let routes: Vec<String> = node
                .routes
                .iter()
                .map(|p| format!("nats://127.0.0.1:{p}"))
                .collect();
            cmd.args(["--server_name", &node.name])
                .args(["--cluster_name", &node.cluster])
                .arg("--cluster")
                .arg(format!("nats://127.0.0.1:{}", node.route_port))
                .arg("--routes")
                .arg(routes.join(","));
        }
        cmd.envs(self.options.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| ServerError::Spawn {
                name: "nats-server",
                source,
            })
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
