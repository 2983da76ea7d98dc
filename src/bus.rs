//! NATS: the connection, the five JetStream streams, the durable pull
//! consumers that feed the order actors, and the outbox publisher.
//!
//! Only what nats-server 2.9 has: one filter subject per consumer, no
//! consumer metadata, no per-message TTL.
//!
//! Invariant: every publish of the outbox carries its `Nats-Msg-Id`, so a
//! re-publish after a crash is dropped by the stream within its duplicate
//! window.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream};
use async_nats::HeaderMap;
use futures::future::BoxFuture;

use orderd_core::TenantId;

use crate::outbox::OutboxMsg;
use crate::settings::Settings;
use crate::{headers, subjects};

/// Why a NATS operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Could not connect.
    #[error("cannot connect to nats at {url}: {source}")]
    Connect {
        /// The server (password masked).
        url: String,
        /// Why.
        source: async_nats::ConnectError,
    },
    /// A stream could not be created, updated or found.
    #[error("stream {stream}: {why}")]
    Stream {
        /// The stream.
        stream: &'static str,
        /// Why.
        why: String,
    },
    /// A consumer could not be created or opened.
    #[error("consumer {consumer}: {why}")]
    Consumer {
        /// The durable name.
        consumer: String,
        /// Why.
        why: String,
    },
    /// A JetStream publish was not acknowledged.
    #[error("publish to {subject} failed: {why}")]
    Publish {
        /// The subject.
        subject: String,
        /// Why.
        why: String,
    },
}

/// One of orderd's streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamSpec {
    /// Its name.
    pub name: &'static str,
    /// The one subject filter it captures.
    pub subject: &'static str,
    /// Events are kept longer: the history endpoint reads them back.
    pub is_events: bool,
}

/// The five streams: commands, job updates, job commands, events, dead
/// letters (kept as long as events).
pub fn stream_specs() -> [StreamSpec; 5] {
    let spec = |name, subject, is_events| StreamSpec {
        name,
        subject,
        is_events,
    };
    [
        spec(subjects::STREAM_COMMANDS, subjects::FILTER_COMMANDS, false),
        spec(subjects::STREAM_JOBS, subjects::FILTER_JOBS, false),
        spec(subjects::STREAM_DISPATCH, subjects::FILTER_DISPATCH, false),
        spec(subjects::STREAM_EVENTS, subjects::FILTER_EVENTS, true),
        spec(
            subjects::STREAM_DEAD_LETTERS,
            subjects::FILTER_DEAD_LETTERS,
            true,
        ),
    ]
}

/// The streams that feed orderd (commands, job updates), each read through
/// one lane per tenant ([`lane_config`]).
pub fn intake_streams() -> [StreamSpec; 2] {
    let [cmd, job, ..] = stream_specs();
    [cmd, job]
}

/// Connects to NATS.
pub async fn connect(settings: &Settings) -> Result<async_nats::Client, BusError> {
    async_nats::ConnectOptions::new()
        .name("orderd")
        .connection_timeout(Duration::from_millis(settings.nats.connect_timeout_ms))
        // Keep reconnecting for ever: JetStream keeps the commands meanwhile.
        .max_reconnects(None)
        .connect(settings.nats.url.expose())
        .await
        .map_err(|source| BusError::Connect {
            url: settings.nats.url.redacted(),
            source,
        })
}

/// The JetStream context orderd publishes and consumes through.
pub fn jetstream(client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(5))
        .build(client)
}

/// The configuration orderd wants for a stream.
pub fn stream_config(spec: StreamSpec, settings: &Settings) -> stream::Config {
    let max_age = if spec.is_events {
        Duration::from_secs(settings.nats.events_max_age_days * 24 * 3600)
    } else {
        Duration::from_secs(settings.nats.work_max_age_hours * 3600)
    };
    stream::Config {
        name: spec.name.to_owned(),
        subjects: vec![spec.subject.to_owned()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        max_age,
        max_message_size: settings.nats.max_msg_bytes,
        duplicate_window: Duration::from_secs(settings.nats.duplicate_window_secs),
        num_replicas: 1,
        ..Default::default()
    }
}

/// Creates the streams, or brings their settings up to date.
pub async fn ensure_streams(js: &jetstream::Context, settings: &Settings) -> Result<(), BusError> {
    for spec in stream_specs() {
        js.create_or_update_stream(stream_config(spec, settings))
            .await
            .map_err(|e| BusError::Stream {
                stream: spec.name,
                why: e.to_string(),
            })?;
    }
    Ok(())
}

/// The token that names a stream's consumers: `cmd` or `job`.
fn stream_token(spec: StreamSpec) -> &'static str {
    if spec.name == subjects::STREAM_COMMANDS {
        "cmd"
    } else {
        "job"
    }
}

/// The durable name of one tenant's lane on `spec`:
/// `<prefix>-cmd_<tenant>` or `<prefix>-job_<tenant>`.
pub fn lane_name(spec: StreamSpec, tenant: &TenantId, settings: &Settings) -> String {
    format!(
        "{}-{}_{tenant}",
        settings.nats.consumer_prefix,
        stream_token(spec)
    )
}

/// The tenant whose lane `name` is, if it is one of orderd's lanes on `spec`.
pub fn lane_tenant(spec: StreamSpec, name: &str, settings: &Settings) -> Option<TenantId> {
    let prefix = format!("{}-{}_", settings.nats.consumer_prefix, stream_token(spec));
    TenantId::parse(name.strip_prefix(&prefix)?).ok()
}

/// The durable name of the consumer that finds new tenants on `spec`:
/// `<prefix>-cmd-discovery` or `<prefix>-job-discovery`.
pub fn discovery_name(spec: StreamSpec, settings: &Settings) -> String {
    format!(
        "{}-{}-discovery",
        settings.nats.consumer_prefix,
        stream_token(spec)
    )
}

/// One tenant's lane on `spec`: a durable pull consumer of the tenant's
/// subjects only, with explicit acks, a bounded number out at once, and
/// redelivery after the ack wait.
pub fn lane_config(spec: StreamSpec, tenant: &TenantId, settings: &Settings) -> pull::Config {
    let filter = if spec.name == subjects::STREAM_COMMANDS {
        subjects::commands_of_tenant(tenant)
    } else {
        subjects::job_updates_of_tenant(tenant)
    };
    pull::Config {
        durable_name: Some(lane_name(spec, tenant, settings)),
        description: Some(format!("orderd intake of {} for {tenant}", spec.name)),
        filter_subject: filter,
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        // Every message the stream holds for the tenant, whenever the lane
        // is opened: no other lane reads them, and one already decided is a
        // duplicate. (Starting where the discovery first saw the tenant
        // skipped the tenant's earlier messages when they were still
        // pending at the discovery, as after a nats-server restart.)
        deliver_policy: jetstream::consumer::DeliverPolicy::All,
        ack_wait: settings.ack_wait(),
        max_deliver: settings.consumers.max_deliver,
        max_ack_pending: settings.consumers.max_ack_pending,
        ..Default::default()
    }
}

/// The discovery consumer of `spec`: reads only the headers of every
/// message, to learn which tenants have a lane to open; each message is
/// acknowledged once its tenant's lanes are open.
pub fn discovery_config(spec: StreamSpec, settings: &Settings) -> pull::Config {
    pull::Config {
        durable_name: Some(discovery_name(spec, settings)),
        description: Some(format!("orderd tenant discovery on {}", spec.name)),
        // Each message acknowledged once its tenant's lanes are open, and
        // only then: a cumulative acknowledgement would also settle
        // messages this instance never saw (delivered to another instance,
        // or lost on the way when the connection dropped), and a tenant
        // whose only messages those were would never get a lane.
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        deliver_policy: jetstream::consumer::DeliverPolicy::All,
        headers_only: true,
        ack_wait: settings.ack_wait(),
        max_ack_pending: 100_000,
        ..Default::default()
    }
}

/// Opens (creating when needed) the durable consumer `wanted` on `spec`'s
/// stream, and brings its limits up to date.
pub async fn open_consumer(
    js: &jetstream::Context,
    spec: StreamSpec,
    wanted: pull::Config,
) -> Result<jetstream::consumer::PullConsumer, BusError> {
    let name = wanted.durable_name.clone().unwrap_or_default();
    let err = |why: String| BusError::Consumer {
        consumer: name.clone(),
        why,
    };
    let stream = js
        .get_stream(spec.name)
        .await
        .map_err(|e| err(format!("stream {}: {e}", spec.name)))?;
    let mut consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(&name, wanted.clone())
        .await
        .map_err(|e| err(e.to_string()))?;
    // The server's answer to the get or create says how the consumer is set.
    if consumer.cached_info().config.ack_policy != wanted.ack_policy {
        // An acknowledgement policy cannot change in place (the discovery
        // acknowledged cumulatively before): a new consumer replaces it.
        // For the discovery that only means reading the headers again.
        tracing::info!(consumer = %name, "replacing the consumer: its acknowledgement policy changed");
        stream
            .delete_consumer(&name)
            .await
            .map_err(|e| err(e.to_string()))?;
        consumer = stream
            .create_consumer(wanted.clone())
            .await
            .map_err(|e| err(e.to_string()))?;
    }
    let current = &consumer.cached_info().config;
    if current.ack_wait != wanted.ack_wait
        || current.max_deliver != wanted.max_deliver
        || current.max_ack_pending != wanted.max_ack_pending
    {
        // The start position cannot change: keep the one it has.
        let update = pull::Config {
            deliver_policy: current.deliver_policy,
            ..wanted
        };
        match stream.create_consumer(update).await {
            Ok(updated) => consumer = updated,
            Err(e) => tracing::warn!(consumer = %name, error = %e, "cannot update consumer limits"),
        }
    }
    Ok(consumer)
}

/// The tenants that have a lane on `spec` (whoever opened it).
pub async fn lanes(
    js: &jetstream::Context,
    spec: StreamSpec,
    settings: &Settings,
) -> Result<Vec<TenantId>, BusError> {
    use futures::TryStreamExt;
    let err = |why: String| BusError::Stream {
        stream: spec.name,
        why,
    };
    let stream = js
        .get_stream(spec.name)
        .await
        .map_err(|e| err(e.to_string()))?;
    let names: Vec<String> = stream
        .consumer_names()
        .try_collect()
        .await
        .map_err(|e| err(e.to_string()))?;
    Ok(names
        .iter()
        .filter_map(|n| lane_tenant(spec, n, settings))
        .collect())
}

/// Publishes outbox messages. A trait so the order actor can be tested
/// without a server.
pub trait Publisher: Send + Sync + 'static {
    /// Publishes every message, then waits for all their acks together.
    fn publish_all<'a>(&'a self, msgs: &'a [OutboxMsg]) -> BoxFuture<'a, Result<(), BusError>>;
}

/// The JetStream [`Publisher`].
#[derive(Clone)]
pub struct JetStreamPublisher {
    js: jetstream::Context,
}

impl JetStreamPublisher {
    /// Publishes through `js`.
    pub fn new(js: jetstream::Context) -> Self {
        Self { js }
    }
}

impl Publisher for JetStreamPublisher {
    fn publish_all<'a>(&'a self, msgs: &'a [OutboxMsg]) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            let failed = |m: &OutboxMsg, why: String| BusError::Publish {
                subject: m.subject.clone(),
                why,
            };
            // Send all, then await the acks together: one round trip per change.
            let mut acks = Vec::with_capacity(msgs.len());
            for m in msgs {
                let mut h = HeaderMap::new();
                h.insert(headers::NATS_MSG_ID, m.msg_id.as_str());
                h.insert(headers::CONTENT_TYPE, OutboxMsg::CONTENT_TYPE);
                let publish = jetstream::message::PublishMessage::build()
                    .payload(m.body.clone().into())
                    .headers(h);
                let ack = self
                    .js
                    .send_publish(m.subject.clone(), publish)
                    .await
                    .map_err(|e| failed(m, e.to_string()))?;
                acks.push(ack);
            }
            let results = futures::future::join_all(
                acks.into_iter().map(std::future::IntoFuture::into_future),
            )
            .await;
            for (m, r) in msgs.iter().zip(results) {
                r.map_err(|e| failed(m, e.to_string()))?;
            }
            Ok(())
        })
    }
}
