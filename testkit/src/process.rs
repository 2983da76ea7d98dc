//! orderd as a child process, so a test can kill it with SIGKILL, stop it
//! with SIGSTOP, or read its memory apart from the test's: the `orderd`
//! binary cargo built beside the running test ([`Process::start`] and its
//! variants), or any command that runs orderd ([`Process::spawn`], which
//! the bench uses to re-execute itself).
//!
//! The child runs in the workspace root, so `config/orderd.toml` is found
//! as in production, and is killed on drop.
//!
//! Imports: `servers` (for the settings' environment).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::servers::binary::workspace_root;
use crate::servers::Servers;

/// The environment variable that names another `orderd` binary.
pub const ORDERD_BIN_ENV: &str = "ORDERD_BIN";

/// The `orderd` binary: `$ORDERD_BIN`, else the one cargo built with the
/// running test (`target/<profile>/orderd`, beside the test's `deps/`;
/// cargo builds a package's binaries before its integration tests).
pub fn orderd_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os(ORDERD_BIN_ENV) {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("the running test's path");
    let mut dir = exe.parent().expect("the test's folder");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("the profile's folder");
    }
    let bin = dir.join(format!("orderd{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "no orderd binary at {}: run the test through cargo test (which builds it) or set {ORDERD_BIN_ENV}",
        bin.display()
    );
    bin
}

/// An orderd child process, killed (SIGKILL) on drop.
pub struct Process {
    child: Child,
}

impl Process {
    /// Starts the built binary against `servers`.
    pub fn start(servers: &Servers) -> Self {
        Self::start_with(servers, &[], None)
    }

    /// Starts the built binary with extra `ORDERD_*` variables.
    pub fn start_with_env(servers: &Servers, extra: &[(&str, &str)]) -> Self {
        Self::start_with(servers, extra, None)
    }

    /// Starts the built binary against `servers` with extra environment,
    /// its output appended to `log` when given. Without a log,
    /// `ORDERD_TEST_LOGS=1` shows it; otherwise it is dropped.
    pub fn start_with(servers: &Servers, env: &[(&str, &str)], log: Option<&Path>) -> Self {
        let mut cmd = Command::new(orderd_binary());
        cmd.envs(servers.env());
        cmd.envs(env.iter().copied());
        Self::spawn(cmd, log).expect("orderd binary starts")
    }

    /// Runs `cmd` (a command that runs orderd) in the workspace root, its
    /// standard output and error appended to `log` when given.
    pub fn spawn(mut cmd: Command, log: Option<&Path>) -> std::io::Result<Self> {
        // orderd logs to stdout; start-up failures go to stderr.
        let (out, err) = match log {
            Some(path) => {
                let file = File::options().create(true).append(true).open(path)?;
                let copy = file.try_clone()?;
                (Stdio::from(file), Stdio::from(copy))
            }
            None if std::env::var_os("ORDERD_TEST_LOGS").is_some() => {
                (Stdio::inherit(), Stdio::inherit())
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let child = cmd
            .current_dir(workspace_root())
            .stdout(out)
            .stderr(err)
            .spawn()?;
        Ok(Self { child })
    }

    /// The process id (for SIGSTOP / SIGCONT, `/proc/<pid>`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`STOP`, `CONT`, …) to the process.
    pub fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status();
    }

    /// How it ended, if it has (reaped); `None` while it runs.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL: no shutdown, no flush, nothing.
    pub fn kill9(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
