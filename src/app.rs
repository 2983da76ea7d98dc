//! The service assembled: [`run`] is the single entry point, used by `main`
//! and by the integration tests alike.
//!
//! Start-up: connect NATS and Redis (refusing a Redis without an append-only
//! file), create the streams, start the router, the intake consumers, the
//! timer sweeper, the archive sweep, the plugin task (and re-ask the
//! plugins of INITIATED orders), the index backfill and the read service.
//!
//! Shutdown, in this order: stop pulling (what was prefetched stays
//! unacknowledged, for the next owner's consumer to read again),
//! let in-flight commands finish and be acked, stop the order actors (each
//! publishes what it owes), stop the read service, drain NATS, close Redis.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::Actor;
use tokio::sync::{watch, Semaphore};

use crate::api::{self, Reader, ServiceError};
use crate::bus::ownership::Ownership;
use crate::bus::{self, BusError, JetStreamPublisher};
use crate::intake::{Intake, Lanes};
use crate::order::{system_clock, Clock, Deps, Router, RouterMsg};
use crate::settings::Settings;
use crate::store::{RedisStore, StoreError, TenantConfigs};

/// Why orderd could not start (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// NATS.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// Redis.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The read service.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The HTTP listener.
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
    /// The router actor would not start.
    #[error("router: {0}")]
    Router(String),
}

/// Runs orderd until `shutdown` completes, then shuts down gracefully.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> Result<(), AppError> {
    run_with_clock(settings, system_clock(), shutdown).await
}

/// [`run`] with a given clock.
pub async fn run_with_clock(
    settings: Settings,
    clock: Clock,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AppError> {
    let settings = Arc::new(settings);
    if settings.http.listen_addr().is_some() {
        // Installed before the work it measures starts.
        let _ = crate::http::metrics();
    }
    tracing::info!(
        nats = %settings.nats.url,
        redis = %settings.redis.url,
        "orderd starting"
    );
    let client = bus::connect(&settings).await?;
    let js = bus::jetstream(client.clone());
    if settings.nats.auto_create_streams {
        bus::ensure_streams(&js, &settings).await?;
    }
    let store = RedisStore::connect(&settings.redis)
        .await?
        .partitioned(settings.ownership.partitions);

    let (plugin_requests, plugin_asks) = crate::order::plugins::PluginRequests::channel();
    let deps = Deps {
        store: Arc::new(store.clone()),
        publisher: Arc::new(JetStreamPublisher::new(js.clone())),
        configs: Arc::new(TenantConfigs::new(Duration::from_millis(
            settings.runtime.tenant_config_ttl_ms,
        ))),
        clock: clock.clone(),
        passivate_after: Duration::from_millis(settings.runtime.passivate_after_ms),
        hold_back: settings.ack_wait() * 2,
        plugins: Some(plugin_requests),
        creates: (settings.ownership.partitions > 1).then(|| {
            Arc::new(crate::intake::consumers::CreateLane::new(
                js.clone(),
                settings.clone(),
            )) as Arc<dyn crate::order::CreatesSettled>
        }),
    };
    let (router, router_task) = Actor::spawn(None, Router, deps)
        .await
        .map_err(|e| AppError::Router(e.to_string()))?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let intake = Intake {
        client: client.clone(),
        js: js.clone(),
        router: router.clone(),
        settings: settings.clone(),
        permits: Arc::new(Semaphore::new(settings.runtime.max_in_flight)),
        store: store.clone(),
    };
    let instance = instance_id(&settings);
    let ownership = Ownership::open(&js, &settings, instance.clone()).await?;
    tracing::info!(instance = %instance, "instance id");
    let lanes_ownership = ownership.clone();
    let lanes = Lanes::new(
        js.clone(),
        settings.clone(),
        intake,
        stop_rx.clone(),
        ownership,
        store.clone(),
    );
    // The lanes that exist already, before anything else is read. A failure
    // here (another instance creating the streams at the same moment, say)
    // is not fatal: the keeper lists them again every few seconds.
    if let Err(e) = lanes.sync().await {
        tracing::warn!(error = %e, "cannot list the lanes yet; trying again shortly");
    }
    let archive = tokio::spawn(
        crate::archive::sweep::Sweeper {
            store: store.clone(),
            js: js.clone(),
            ownership: lanes_ownership.clone(),
            settings: settings.clone(),
            now: clock.clone(),
            router: router.clone(),
        }
        .run(stop_rx.clone()),
    );
    let lane_keeper = tokio::spawn(lanes.clone().run());
    let sweeper = tokio::spawn(crate::order::timers::sweep(
        store.clone(),
        router.clone(),
        lanes_ownership.clone(),
        clock,
        Duration::from_millis(settings.runtime.timer_sweep_ms),
        settings.runtime.timer_fire_per_sec,
        stop_rx.clone(),
    ));
    let plugin_task = tokio::spawn(crate::order::plugins::run(
        crate::order::plugins::Asker {
            client: client.clone(),
            router: router.clone(),
            store: store.clone(),
            in_flight: Arc::default(),
            ownership: Some(lanes_ownership.clone()),
        },
        plugin_asks,
    ));
    let backfill_wake = crate::store::backfill::Wake::default();
    let backfill = tokio::spawn(crate::store::backfill::run(
        store.clone(),
        backfill_wake.clone(),
        stop_rx.clone(),
    ));
    let reader = Reader {
        ownership: lanes_ownership,
        store: store.clone(),
        router: router.clone(),
        js: js.clone(),
        client: client.clone(),
        settings: settings.clone(),
        backfill: backfill_wake,
    };
    let service = api::service::start(reader.clone()).await?;
    let http = match settings.http.listen_addr() {
        Some(addr) => {
            let readiness = crate::http::Readiness {
                consumers: crate::intake::consumers::intake_streams()
                    .into_iter()
                    .map(|spec| {
                        let name = crate::intake::consumers::discovery_name(spec, &settings);
                        (spec.name.to_owned(), name)
                    })
                    .collect(),
            };
            Some(crate::http::start(addr, reader, readiness, stop_rx.clone()).await?)
        }
        None => None,
    };
    tracing::info!("orderd running");

    shutdown.await;
    tracing::info!("orderd stopping: no more pulls");
    let _ = stop_tx.send(true);
    let _ = lane_keeper.await;
    lanes.join().await;
    let _ = sweeper.await;
    let _ = archive.await;
    let _ = backfill.await;

    let grace = Duration::from_millis(settings.runtime.shutdown_grace_ms);
    if lanes.drain(grace).await {
        tracing::info!("in-flight commands finished");
    } else {
        tracing::warn!("shutdown grace elapsed; unfinished commands will be redelivered");
    }

    match router.call(RouterMsg::StopAll, Some(grace)).await {
        Ok(CallResult::Success(())) => tracing::info!("order actors stopped"),
        _ => tracing::warn!("order actors did not all stop in time"),
    }
    router.stop(None);
    let _ = router_task.await;
    // Only now: the actors have published what they owed.
    lanes.release_all().await;

    plugin_task.abort();
    service.stop().await;
    if let Some(http) = http {
        http.join().await;
    }
    if let Err(e) = client.drain().await {
        tracing::debug!(error = %e, "nats drain");
    }
    drop(store);
    tracing::info!("orderd stopped");
    Ok(())
}

/// This instance's id in the membership: its name (letters, digits, `-`
/// and `_` kept) and a random part, new at every start, so a restarted
/// process never passes for the one before it.
fn instance_id(settings: &Settings) -> String {
    let name: String = crate::intake::lanes::instance_name(settings)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{name}-{}", &random[..8])
}
