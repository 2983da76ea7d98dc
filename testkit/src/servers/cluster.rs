//! A nats-server cluster on loopback: N nodes of the pinned release, each
//! with its own store, routes to the others, JetStream on every node.
//! Nodes can be killed (kill -9) and started again on the same ports and
//! store, as a host that dies and comes back.

use std::time::Duration;

use super::nats::{ClusterNode, NatsOptions, NatsServer};
use super::{free_port, ServerError, TempDir};

/// The nodes, killed on drop.
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
    // Last: removed once the nodes are gone.
    _dir: TempDir,
}

impl NatsCluster {
    /// Starts `n` nodes named `n0`, `n1`, … and waits until JetStream has a
    /// meta leader (streams can be created).
    pub async fn start(n: usize) -> Result<Self, ServerError> {
        let dir = TempDir::new("orderd-cluster")?;
        let route_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut starting = Vec::new();
        for i in 0..n {
            let node_dir = dir.path().join(format!("n{i}"));
            std::fs::create_dir_all(&node_dir).map_err(|source| ServerError::Io {
                what: format!("creating {}", node_dir.display()),
                source,
            })?;
            let options = NatsOptions {
                cluster: Some(ClusterNode {
                    name: format!("n{i}"),
                    cluster: "orderd-test".into(),
                    route_port: route_ports[i],
                    routes: route_ports
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != i)
                        .map(|(_, p)| *p)
                        .collect(),
                }),
                ..NatsOptions::default()
            };
            // Started together: each waits for its client port only.
            starting.push(async move { NatsServer::start_in(&node_dir, options).await });
        }
        let nodes = futures::future::try_join_all(starting).await?;
        let cluster = Self { nodes, _dir: dir };
        cluster.wait_for_jetstream().await?;
        Ok(cluster)
    }

    /// Every node's client URL.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsServer::url).collect()
    }

    /// The running nodes' process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(NatsServer::pid).collect()
    }

    /// The node named `name` (`n0`, …), by its index.
    pub fn index_of(name: &str) -> Option<usize> {
        name.strip_prefix('n')?.parse().ok()
    }

    /// Kills node `i` (kill -9) and leaves it down.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts node `i` again on its ports and store.
    pub async fn start_again(&mut self, i: usize) -> Result<(), ServerError> {
        self.nodes[i].start_again().await
    }

    /// Waits until the cluster answers JetStream's account info (it has a
    /// meta leader).
    pub async fn wait_for_jetstream(&self) -> Result<(), ServerError> {
        let client = async_nats::connect(self.urls())
            .await
            .map_err(|e| ServerError::Io {
                what: "connecting to the cluster".into(),
                source: std::io::Error::other(e.to_string()),
            })?;
        let js = async_nats::jetstream::new(client);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match js.query_account().await {
                Ok(_) => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(ServerError::Io {
                        what: "waiting for the cluster's JetStream".into(),
                        source: std::io::Error::other(e.to_string()),
                    })
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}
