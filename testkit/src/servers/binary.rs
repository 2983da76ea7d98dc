//! Where the server binaries are, and which nats-server release runs.
//!
//! nats-server is pinned: `NATS_SERVER_VERSION` at the workspace root names
//! the one release that `scripts/lib.sh` installs (in
//! `.orderd-local/nats-server-<version>/`), that the tests and the bench
//! run, and that `compose.yaml`'s image carries (a test below checks it).
//! The binary is `$ORDERD_NATS_SERVER` (the scripts export it), else the
//! project-local install, else `nats-server` on the `PATH`; whichever is
//! found must report the pinned version, or nothing starts.
//!
//! redis-server is not pinned: Debian's package (7.0) is what the scripts
//! install, and it is looked up on the `PATH` and in the `sbin` folders.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The environment variable that names the nats-server binary to run.
pub const NATS_SERVER_ENV: &str = "ORDERD_NATS_SERVER";

const PINNED: &str = include_str!("../../../NATS_SERVER_VERSION");

/// The nats-server release orderd is tested against (`NATS_SERVER_VERSION`).
pub fn pinned_nats_version() -> &'static str {
    PINNED.trim()
}

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

/// Where `scripts/lib.sh` installs the pinned nats-server.
pub fn local_nats_server() -> PathBuf {
    workspace_root()
        .join(".orderd-local")
        .join(format!("nats-server-{}", pinned_nats_version()))
        .join("bin")
        .join("nats-server")
}

/// The pinned nats-server, looked up once per process.
pub fn nats_server() -> Result<&'static Binary, String> {
    static FOUND: OnceLock<Result<Binary, String>> = OnceLock::new();
    FOUND
        .get_or_init(find_nats_server)
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

fn find_nats_server() -> Result<Binary, String> {
    let wanted = pinned_nats_version();
    let local = local_nats_server();
    let advice = format!(
        "run ./scripts/test, which installs nats-server {wanted} as {}, \
         or set {NATS_SERVER_ENV} to a nats-server {wanted}",
        local.display()
    );
    let (path, whence) = if let Some(path) = std::env::var_os(NATS_SERVER_ENV) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            let path = path.display();
            return Err(format!("{NATS_SERVER_ENV}={path} is not a file: {advice}"));
        }
        (path, NATS_SERVER_ENV)
    } else if local.is_file() {
        (local, "the project-local install")
    } else if let Some(path) = on_path("nats-server") {
        (path, "the PATH")
    } else {
        return Err(format!("nats-server not found: {advice}"));
    };
    let version = version_line(&path).map_err(|e| format!("{e} (from {whence}): {advice}"))?;
    match release_of(&version) {
        Some(found) if found == wanted => Ok(Binary { path, version }),
        found => Err(format!(
            "{} (from {whence}) is nats-server {}, but orderd is tested against {wanted} \
             (NATS_SERVER_VERSION): {advice}",
            path.display(),
            found.unwrap_or("of an unknown version"),
        )),
    }
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

/// The release in a `--version` line: `nats-server: v2.12.8` → `2.12.8`.
fn release_of(line: &str) -> Option<&str> {
    line.split_whitespace()
        .filter_map(|w| w.strip_prefix('v'))
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_is_read_from_the_version_line() {
        assert_eq!(release_of("nats-server: v2.12.8"), Some("2.12.8"));
        assert_eq!(release_of("nats-server version 2.9.10"), None);
        assert_eq!(release_of(""), None);
    }

    #[test]
    fn the_pin_is_one_release() {
        let v = pinned_nats_version();
        assert_eq!(v.split('.').count(), 3, "{v:?}");
        assert!(v.split('.').all(|n| n.parse::<u32>().is_ok()), "{v:?}");
    }

    #[test]
    fn compose_runs_the_pinned_image() {
        for file in ["compose.yaml", "compose.cluster.yaml"] {
            let compose = std::fs::read_to_string(workspace_root().join(file)).expect(file);
            let images: Vec<&str> = compose
                .lines()
                .filter_map(|l| l.trim().strip_prefix("image: nats:"))
                .collect();
            assert_eq!(images, [pinned_nats_version()], "{file}'s nats image");
        }
    }

    #[test]
    fn the_scripts_install_the_pinned_release() {
        let lib = std::fs::read_to_string(workspace_root().join("scripts/lib.sh"))
            .expect("scripts/lib.sh");
        assert!(lib.contains("NATS_SERVER_VERSION"), "lib.sh reads the pin");
        assert!(lib.contains(NATS_SERVER_ENV), "lib.sh exports the binary");
        assert!(
            lib.contains(".orderd-local/nats-server-"),
            "lib.sh installs where the testkit looks"
        );
    }
}
