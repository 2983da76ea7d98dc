//! Redis Sentinel: which node is the primary now. orderd asks the sentinels
//! (`SENTINEL get-master-addr-by-name`) at start and then every quarter
//! second; when they name another node (they promoted a replica), the
//! store's connection is replaced with one to the new primary. Writes that
//! failed meanwhile failed as any Redis error does: their commands were not
//! acknowledged and come again.
//!
//! Imports: nothing of the folder.

use std::sync::{RwLock, Weak};
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::StoreError;
use crate::settings::RedisSettings;

/// How often the sentinels are asked.
const EVERY: Duration = Duration::from_millis(250);

/// The sentinels of one monitored primary.
pub(super) struct Sentinels {
    nodes: Vec<String>,
    master: String,
    timeout: Duration,
}

impl Sentinels {
    /// The sentinels the settings name, if any.
    pub(super) fn new(settings: &RedisSettings) -> Option<Self> {
        (!settings.sentinels.is_empty()).then(|| Self {
            nodes: settings.sentinels.clone(),
            master: settings.master_name.clone(),
            timeout: Duration::from_millis(settings.response_timeout_ms),
        })
    }

    /// The primary's address, as the first sentinel that answers says.
    pub(super) async fn primary(&self) -> Result<(String, u16), StoreError> {
        let mut last = None;
        for node in &self.nodes {
            match self.ask(node).await {
                Ok(Some(addr)) => return Ok(addr),
                Ok(None) => {}
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            StoreError::Redis(redis::RedisError::from((
                redis::ErrorKind::Io,
                "no sentinel knows the primary",
                self.master.clone(),
            )))
        }))
    }

    async fn ask(&self, node: &str) -> Result<Option<(String, u16)>, StoreError> {
        let client = redis::Client::open(format!("redis://{node}"))?;
        let asked = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&self.master)
                .query_async::<Option<(String, u16)>>(&mut conn)
                .await
        };
        match tokio::time::timeout(self.timeout, asked).await {
            Ok(answer) => Ok(answer?),
            Err(_) => Err(StoreError::Redis(redis::RedisError::from((
                redis::ErrorKind::Io,
                "sentinel did not answer in time",
                node.to_owned(),
            )))),
        }
    }
}

/// The address `(host, port)` in the form of `info`'s: TLS if it is.
pub(super) fn at(
    info: &redis::ConnectionInfo,
    (host, port): &(String, u16),
) -> redis::ConnectionAddr {
    match info.addr() {
        redis::ConnectionAddr::TcpTls { insecure, .. } => redis::ConnectionAddr::TcpTls {
            host: host.clone(),
            port: *port,
            insecure: *insecure,
            tls_params: None,
        },
        _ => redis::ConnectionAddr::Tcp(host.clone(), *port),
    }
}

/// Follows the primary until the store is gone: a new primary gets a new
/// connection, which replaces the old one in `primary`.
pub(super) async fn follow(
    sentinels: Sentinels,
    info: redis::ConnectionInfo,
    settings: RedisSettings,
    primary: Weak<RwLock<ConnectionManager>>,
) {
    let mut current = match info.addr() {
        redis::ConnectionAddr::Tcp(host, port)
        | redis::ConnectionAddr::TcpTls { host, port, .. } => Some((host.clone(), *port)),
        _ => None,
    };
    loop {
        tokio::time::sleep(EVERY).await;
        let Some(slot) = primary.upgrade() else {
            return; // the store is gone
        };
        let Ok(now) = sentinels.primary().await else {
            continue; // the sentinels are away: keep the connection we have
        };
        if current.as_ref() == Some(&now) {
            continue;
        }
        let next = info.clone().set_addr(at(&info, &now));
        match super::manager(next, &settings).await {
            Ok(conn) => {
                tracing::warn!(host = %now.0, port = now.1, "redis primary moved (sentinel failover): writing there now");
                *slot.write().unwrap_or_else(|e| e.into_inner()) = conn;
                current = Some(now);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot connect to the new redis primary yet");
            }
        }
    }
}
