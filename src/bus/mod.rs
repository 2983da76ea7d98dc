//! NATS: the connection, the six JetStream streams, the outbox publisher,
//! [`ownership`] (the key-value buckets where instances announce
//! themselves and claim tenants), and [`scan`] (reading back what a stream
//! holds under a filter). The consumers that feed the order actors
//! are the intake's ([`crate::intake::consumers`]).
//!
//! May import: [`crate::settings`] and the wire contract
//! ([`crate::subjects`], [`crate::headers`], [`crate::outbox`]), and
//! [`crate::telemetry`] and [`crate::retry`] (as every layer may).
//!
//! Invariant: every publish of the outbox carries its `Nats-Msg-Id`, so a
//! re-publish after a crash is dropped by the stream within its duplicate
//! window.

pub mod ownership;
pub mod scan;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;
use futures::future::BoxFuture;

use crate::outbox::OutboxMsg;
use crate::settings::Settings;
use crate::{headers, subjects, telemetry};

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
    /// The TLS, credentials or nkey files the settings name cannot be used.
    #[error("cannot connect to nats as configured: {0}")]
    ConnectSettings(String),
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
    /// How long it keeps what it holds.
    pub keep: Keep,
}

/// Which limits a stream keeps its messages by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Keep {
    /// Work in flight (commands, job updates, job commands): hours.
    Work,
    /// Events and dead letters: days (the history endpoint reads events).
    Events,
    /// Archived orders: the archive's own age.
    Archive,
}

/// The six streams: commands, job updates, job commands, events, dead
/// letters (kept as long as events), and the archive.
pub fn stream_specs() -> [StreamSpec; 6] {
    let spec = |name, subject, keep| StreamSpec {
        name,
        subject,
        keep,
    };
    [
        spec(
            subjects::STREAM_COMMANDS,
            subjects::FILTER_COMMANDS,
            Keep::Work,
        ),
        spec(subjects::STREAM_JOBS, subjects::FILTER_JOBS, Keep::Work),
        spec(
            subjects::STREAM_DISPATCH,
            subjects::FILTER_DISPATCH,
            Keep::Work,
        ),
        spec(
            subjects::STREAM_EVENTS,
            subjects::FILTER_EVENTS,
            Keep::Events,
        ),
        spec(
            subjects::STREAM_DEAD_LETTERS,
            subjects::FILTER_DEAD_LETTERS,
            Keep::Events,
        ),
        spec(
            subjects::STREAM_ARCHIVE,
            subjects::FILTER_ARCHIVE,
            Keep::Archive,
        ),
    ]
}

/// Connects to NATS.
pub async fn connect(settings: &Settings) -> Result<async_nats::Client, BusError> {
    let options = settings
        .nats
        .connect_options()
        .map_err(BusError::ConnectSettings)?;
    options
        .name("orderd")
        .connection_timeout(Duration::from_millis(settings.nats.connect_timeout_ms))
        // Keep reconnecting for ever: JetStream keeps the commands meanwhile.
        .max_reconnects(None)
        .event_callback(|event| async move {
            use async_nats::Event;
            let name = match &event {
                Event::Connected => "connected",
                Event::Disconnected => "disconnected",
                Event::LameDuckMode => "lame_duck",
                Event::SlowConsumer(_) => "slow_consumer",
                Event::ServerError(_) => "server_error",
                Event::ClientError(_) => "client_error",
                _ => "other",
            };
            match &event {
                Event::Connected => tracing::info!("nats connected"),
                other => tracing::warn!(event = %other, "nats connection event"),
            }
            telemetry::connection_event(name);
        })
        .connect(settings.nats.url.servers())
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
    const DAY: u64 = 24 * 3600;
    let (max_age, max_bytes) = match spec.keep {
        Keep::Work => (
            settings.nats.work_max_age_hours * 3600,
            settings.nats.work_max_bytes,
        ),
        Keep::Events => (
            settings.nats.events_max_age_days * DAY,
            settings.nats.events_max_bytes,
        ),
        Keep::Archive => (
            settings.archive.max_age_days * DAY,
            settings.archive.max_bytes,
        ),
    };
    stream::Config {
        name: spec.name.to_owned(),
        subjects: vec![spec.subject.to_owned()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        max_age: Duration::from_secs(max_age),
        max_bytes,
        // One record per archived order: the latest, should a change after
        // an archive copy make the sweep archive it again.
        max_messages_per_subject: if spec.keep == Keep::Archive { 1 } else { 0 },
        max_message_size: settings.nats.max_msg_bytes,
        duplicate_window: Duration::from_secs(settings.nats.duplicate_window_secs),
        num_replicas: settings.nats.replicas,
        subject_transform: subject_transform(spec, settings.ownership.partitions),
        ..Default::default()
    }
}

/// The transform that stores an intake stream's messages under their
/// order's partition, when orders are spread over more than one.
fn subject_transform(spec: StreamSpec, parts: u16) -> Option<stream::SubjectTransform> {
    let (source, destination) = match spec.name {
        _ if parts <= 1 => return None,
        subjects::STREAM_COMMANDS => subjects::commands_transform(parts),
        subjects::STREAM_JOBS => subjects::job_updates_transform(parts),
        _ => return None,
    };
    Some(stream::SubjectTransform {
        source,
        destination,
    })
}

/// Each consumer of `stream` with what it still has to deliver or to
/// see acknowledged (pending plus unacknowledged), for operators.
pub async fn consumer_backlogs(
    js: &jetstream::Context,
    stream: &'static str,
) -> Result<Vec<(String, u64)>, BusError> {
    use futures::TryStreamExt;
    let failed = |why: String| BusError::Stream { stream, why };
    let handle = js
        .get_stream(stream)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let infos: Vec<jetstream::consumer::Info> = handle
        .consumers()
        .try_collect()
        .await
        .map_err(|e| failed(e.to_string()))?;
    Ok(infos
        .into_iter()
        .map(|i| (i.name, i.num_pending + i.num_ack_pending as u64))
        .collect())
}

/// Whether every consumer of `stream` has nothing pending and nothing
/// unacknowledged (so the partitions can change without reordering any
/// order's commands).
async fn drained(stream: &mut jetstream::stream::Stream) -> Result<bool, String> {
    use futures::TryStreamExt;
    let names: Vec<String> = stream
        .consumer_names()
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    for name in names {
        let info = stream
            .consumer_info(&name)
            .await
            .map_err(|e| e.to_string())?;
        if info.num_pending > 0 || info.num_ack_pending > 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Creates the streams that are missing, with the settings. A stream that
/// exists keeps what an operator chose for it (replicas, limits, the
/// duplicate window, placement): only its subjects are set again when they
/// are not orderd's, as orderd could not work without them; what differs
/// from the settings is logged.
pub async fn ensure_streams(js: &jetstream::Context, settings: &Settings) -> Result<(), BusError> {
    use jetstream::context::GetStreamErrorKind;
    for spec in stream_specs() {
        let failed = |why: String| BusError::Stream {
            stream: spec.name,
            why,
        };
        let wanted = stream_config(spec, settings);
        match js.get_stream(spec.name).await {
            Ok(mut stream) => {
                let info = stream.info().await.map_err(|e| failed(e.to_string()))?;
                let mut have = info.config.clone();
                for (what, theirs, ours) in [
                    (
                        "replicas",
                        have.num_replicas as i64,
                        wanted.num_replicas as i64,
                    ),
                    (
                        "max_age_secs",
                        have.max_age.as_secs() as i64,
                        wanted.max_age.as_secs() as i64,
                    ),
                    ("max_bytes", have.max_bytes, wanted.max_bytes),
                    (
                        "duplicate_window_secs",
                        have.duplicate_window.as_secs() as i64,
                        wanted.duplicate_window.as_secs() as i64,
                    ),
                ] {
                    if theirs != ours {
                        tracing::info!(
                            stream = spec.name,
                            setting = what,
                            stream_has = theirs,
                            settings_say = ours,
                            "the stream exists: kept as it is (change it with the NATS tools)"
                        );
                    }
                }
                if have.subject_transform != wanted.subject_transform {
                    // Another number of partitions: only once nothing is
                    // in flight, or an order's commands could be split
                    // between the old layout and the new.
                    if !drained(&mut stream).await.map_err(failed)? {
                        return Err(failed(format!(
                            "set up for another number of partitions than ownership.partitions = {}, \
                             and it still has commands in flight: start orderd with the old value \
                             until they are decided, then with the new (docs/runtime.md, \"Several instances\")",
                            settings.ownership.partitions
                        )));
                    }
                    tracing::warn!(
                        stream = spec.name,
                        partitions = settings.ownership.partitions,
                        "the stream is drained: storing its messages under the new number of partitions"
                    );
                    have.subject_transform = wanted.subject_transform.clone();
                    js.update_stream(have.clone())
                        .await
                        .map_err(|e| failed(e.to_string()))?;
                }
                if have.subjects != wanted.subjects {
                    tracing::warn!(
                        stream = spec.name,
                        "the stream's subjects are not orderd's: setting them"
                    );
                    have.subjects = wanted.subjects;
                    js.update_stream(have)
                        .await
                        .map_err(|e| failed(e.to_string()))?;
                }
            }
            Err(e)
                if matches!(e.kind(), GetStreamErrorKind::JetStream(ref j)
                    if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
            {
                js.create_stream(wanted)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
            }
            Err(e) => return Err(failed(e.to_string())),
        }
    }
    Ok(())
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
                if let Some(traceparent) = &m.traceparent {
                    h.insert(headers::TRACEPARENT, traceparent.as_str());
                }
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
