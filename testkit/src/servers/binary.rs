//! Where the server binaries are: `$ORDERD_NATS_SERVER` for nats-server,
//! else the first `nats-server` on the `PATH` or in the `sbin` folders a
//! non-root `PATH` may lack; redis-server the same way.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The environment variable that names the nats-server binary to run.
pub const NATS_SERVER_ENV: &str = "ORDERD_NATS_SERVER";

/// A server binary, with what its `--version` printed.
#[derive(Debug, Clone)]
pub struct Binary {
    /// Its path.
    pub path: PathBuf,
    /// Its `--version` line, trimmed (`nats-server: v2.12.8`).
    pub version: String,
}

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit/ sits in the workspace")
}

/// nats-server, looked up once per process.
pub fn nats_server() -> Result<&'static Binary, String> {
    static FOUND: OnceLock<Result<Binary, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let path = match std::env::var_os(NATS_SERVER_ENV) {
                Some(path) => PathBuf::from(path),
                None => on_path("nats-server").ok_or_else(|| {
                    format!(
                        "nats-server not found on the PATH or in /usr/sbin: run ./scripts/test \
                         (it installs it) or set {NATS_SERVER_ENV}"
                    )
                })?,
            };
            let version = version_line(&path)?;
            Ok(Binary { path, version })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// redis-server, looked up once per process.
pub fn redis_server() -> Result<&'static Binary, String> {
    static FOUND: OnceLock<Result<Binary, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let path = on_path("redis-server").ok_or_else(|| {
                "redis-server not found on the PATH or in /usr/sbin: run ./scripts/test \
                 (it installs Debian's redis-server)"
                    .to_owned()
            })?;
            let version = version_line(&path)?;
            Ok(Binary { path, version })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The first `name` on the `PATH` or in the `sbin` folders a non-root
/// `PATH` may lack.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn version_line(binary: &Path) -> Result<String, String> {
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .map_err(|e| format!("{} --version failed: {e}", binary.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
