//! Counts the re-establishments of the connection to Redis
//! ([`crate::telemetry::REDIS_RECONNECTS`]). The connection manager
//! reconnects on its own and says nothing, so orderd names each connection
//! (`CLIENT SETNAME orderd`), a name Redis keeps for the life of one TCP
//! connection only, and reads it back every [`EVERY`] (`CLIENT GETNAME`):
//! a connection without it is a new one, counted and then named. That
//! covers the manager's reconnects (Redis restarted, the network cut, the
//! connection killed) and a Sentinel failover (a new manager, to the new
//! primary). Two reconnects within one [`EVERY`] count once; where Redis
//! refuses `CLIENT` (an ACL without it) nothing is counted.
//!
//! Imports: nothing of the folder.

use std::sync::{RwLock, Weak};
use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::telemetry;

/// How often the connection's name is read back.
pub(super) const EVERY: Duration = Duration::from_millis(500);

/// The name each connection is given.
const NAME: &str = "orderd";

/// Names the connection; whether Redis took the name.
pub(super) async fn name(conn: &mut ConnectionManager) -> bool {
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(NAME)
        .query_async::<()>(conn)
        .await
        .is_ok()
}

/// Checks the connection in `primary` until the store is gone; `named`:
/// whether the first connection was named (else nothing can be told apart
/// until one is).
pub(super) async fn watch(primary: Weak<RwLock<ConnectionManager>>, mut named: bool) {
    loop {
        tokio::time::sleep(EVERY).await;
        let Some(slot) = primary.upgrade() else {
            return; // the store is gone
        };
        let mut conn = slot.read().unwrap_or_else(|e| e.into_inner()).clone();
        drop(slot);
        let found = redis::cmd("CLIENT")
            .arg("GETNAME")
            .query_async::<Option<String>>(&mut conn)
            .await;
        match found {
            Ok(Some(found)) if found == NAME => {}
            Ok(_) => {
                if named {
                    tracing::info!("redis connection re-established");
                    telemetry::redis_reconnected();
                }
                named = name(&mut conn).await;
            }
            // Away (the manager reconnects on the next call), or CLIENT
            // refused.
            Err(_) => {}
        }
    }
}
