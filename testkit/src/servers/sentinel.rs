//! Redis with failover: a primary, two replicas of it, and three sentinels
//! (`redis-server --sentinel`) that monitor the primary as `orderd` (quorum
//! 2, down after 1 s) and promote a replica when it dies.

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::redis::RedisServer;
use super::{free_port, kill9, wait_listening, ServerError, TempDir};

/// The primary, the replicas and the sentinels, killed on drop.
pub struct SentinelSet {
    /// The node that was primary at start.
    pub primary: RedisServer,
    /// Its replicas at start.
    pub replicas: Vec<RedisServer>,
    sentinels: Vec<(Child, u16)>,
    // Last: removed once everything is gone.
    _dir: TempDir,
}

impl SentinelSet {
    /// Starts them and waits until every sentinel knows the primary and
    /// its replica.
    pub async fn start() -> Result<Self, ServerError> {
        let dir = TempDir::new("orderd-sentinel")?;
        let io = |what: String| move |source| ServerError::Io { what, source };
        let p_dir = dir.path().join("primary");
        std::fs::create_dir_all(&p_dir).map_err(io(format!("creating {}", p_dir.display())))?;
        let primary = RedisServer::start_in(&p_dir).await?;
        let mut replicas = Vec::new();
        for i in 0..2 {
            let r_dir = dir.path().join(format!("replica-{i}"));
            std::fs::create_dir_all(&r_dir).map_err(io(format!("creating {}", r_dir.display())))?;
            let of = vec![
                "--replicaof".into(),
                "127.0.0.1".into(),
                primary.port().to_string(),
            ];
            replicas.push(RedisServer::start_with(&r_dir, of).await?);
        }
        let mut sentinels = Vec::new();
        for i in 0..3 {
            let port = free_port();
            let conf = dir.path().join(format!("sentinel-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\n\
                     sentinel monitor orderd 127.0.0.1 {} 2\n\
                     sentinel down-after-milliseconds orderd 1000\n\
                     sentinel failover-timeout orderd 5000\n\
                     sentinel parallel-syncs orderd 1\n",
                    dir.path().display(),
                    primary.port()
                ),
            )
            .map_err(io(format!("writing {}", conf.display())))?;
            let log_path = dir.path().join(format!("sentinel-{i}.log"));
            let log =
                File::create(&log_path).map_err(io(format!("creating {}", log_path.display())))?;
            let mut child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(log)
                .stderr(Stdio::null())
                .spawn()
                .map_err(|source| ServerError::Spawn {
                    name: "redis-server --sentinel",
                    source,
                })?;
            wait_listening(&mut child, "redis sentinel", port, &log_path).await?;
            sentinels.push((child, port));
        }
        let set = Self {
            primary,
            replicas,
            sentinels,
            _dir: dir,
        };
        set.wait_until_known().await?;
        Ok(set)
    }

    /// The sentinels' addresses, `127.0.0.1:<port>`.
    pub fn addrs(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|(_, p)| format!("127.0.0.1:{p}"))
            .collect()
    }

    /// The port of the node the sentinels call primary now.
    pub async fn primary_port(&self) -> Option<u16> {
        let addr = self.addrs().into_iter().next()?;
        let client = redis::Client::open(format!("redis://{addr}")).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let (_, port): (String, u16) = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg("orderd")
            .query_async(&mut conn)
            .await
            .ok()?;
        Some(port)
    }

    async fn wait_until_known(&self) -> Result<(), ServerError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let mut all = true;
            for addr in self.addrs() {
                let known = async {
                    let client = redis::Client::open(format!("redis://{addr}")).ok()?;
                    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
                    let replicas: Vec<redis::Value> = redis::cmd("SENTINEL")
                        .arg("replicas")
                        .arg("orderd")
                        .query_async(&mut conn)
                        .await
                        .ok()?;
                    Some(replicas.len() == 2)
                };
                all &= known.await == Some(true);
            }
            if all {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ServerError::Io {
                    what: "waiting for the sentinels to know the replicas".into(),
                    source: std::io::Error::other("timed out"),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        for (child, _) in &mut self.sentinels {
            kill9(child);
        }
    }
}
