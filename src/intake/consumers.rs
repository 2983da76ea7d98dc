//! The intake's durable consumers: their names, their configurations, and
//! opening them. Each unit (a tenant, or one partition of its orders when
//! `ownership.partitions` is more than 1) has one lane per intake stream
//! (commands, job updates); each intake stream has one discovery consumer
//! that finds new tenants (see [`super::lanes`]).

use async_nats::jetstream::{self, consumer::pull};

use crate::bus::{stream_specs, BusError, StreamSpec};
use crate::settings::Settings;
use crate::subjects::{self, Unit};

/// The streams that feed orderd (commands, job updates), each read through
/// one lane per tenant ([`lane_config`]).
pub fn intake_streams() -> [StreamSpec; 2] {
    let [cmd, job, ..] = stream_specs();
    [cmd, job]
}

/// The token that names a stream's consumers: `cmd` or `job`.
fn stream_token(spec: StreamSpec) -> &'static str {
    if spec.name == subjects::STREAM_COMMANDS {
        "cmd"
    } else {
        "job"
    }
}

/// The durable name of one unit's lane on `spec`
/// ([`subjects::lane_consumer`]).
pub fn lane_name(spec: StreamSpec, unit: &Unit, settings: &Settings) -> String {
    subjects::lane_consumer(&settings.nats.consumer_prefix, stream_token(spec), unit)
}

/// The unit whose lane `name` is, if it is one of orderd's lanes on `spec`.
pub fn lane_unit(spec: StreamSpec, name: &str, settings: &Settings) -> Option<Unit> {
    subjects::lane_consumer_unit(&settings.nats.consumer_prefix, stream_token(spec), name)
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

/// One unit's lane on `spec`: a durable pull consumer of the unit's
/// subjects only ([`subjects::lane_filters`]), with explicit acks, a
/// bounded number out at once, and redelivery after the ack wait.
pub fn lane_config(spec: StreamSpec, unit: &Unit, settings: &Settings) -> pull::Config {
    let mut filters = subjects::lane_filters(
        unit,
        settings.ownership.partitions,
        spec.name == subjects::STREAM_COMMANDS,
    );
    let (filter_subject, filter_subjects) = if filters.len() == 1 {
        (filters.remove(0), Vec::new())
    } else {
        (String::new(), filters)
    };
    pull::Config {
        durable_name: Some(lane_name(spec, unit, settings)),
        description: Some(format!("orderd intake of {} for {unit}", spec.name)),
        filter_subject,
        filter_subjects,
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
        || current.filter_subject != wanted.filter_subject
        || current.filter_subjects != wanted.filter_subjects
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

/// The units that have a lane on `spec` (whoever opened it).
pub async fn lanes(
    js: &jetstream::Context,
    spec: StreamSpec,
    settings: &Settings,
) -> Result<Vec<Unit>, BusError> {
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
        .filter_map(|n| lane_unit(spec, n, settings))
        .collect())
}

/// Opens `unit`'s lane on `spec` for a new owner: the consumer is made
/// anew, starting right after its ack floor. Deleting the old one ends
/// every pull request a previous owner may still have open at the server
/// (a stopped pull loop's request outlives it and would swallow new
/// messages until their ack wait), and leaves its acks nowhere to go; the
/// messages still out with it (unacknowledged: it was killed, or lost its
/// lease while deciding) come again at once and in stream order, before
/// the ones after them. Messages above the floor that were already
/// decided come back as duplicates.
pub async fn take_over(
    js: &jetstream::Context,
    spec: StreamSpec,
    unit: &Unit,
    settings: &Settings,
) -> Result<jetstream::consumer::PullConsumer, BusError> {
    let wanted = lane_config(spec, unit, settings);
    let mut consumer = open_consumer(js, spec, wanted.clone()).await?;
    let name = lane_name(spec, unit, settings);
    let err = |why: String| BusError::Consumer {
        consumer: name.clone(),
        why,
    };
    let info = consumer.info().await.map_err(|e| err(e.to_string()))?;
    let floor = info.ack_floor.stream_sequence;
    // A consumer made at a later start has a floor of 0 until its first
    // ack: it must not start over from the stream's first message.
    let start_sequence = match info.config.deliver_policy {
        jetstream::consumer::DeliverPolicy::ByStartSequence { start_sequence } => {
            start_sequence.max(floor + 1)
        }
        _ => floor + 1,
    };
    if info.num_ack_pending > 0 {
        tracing::info!(
            consumer = %name,
            unacknowledged = info.num_ack_pending,
            start_sequence,
            "taking over a lane with messages out: reading again from its ack floor"
        );
    }
    let stream = js
        .get_stream(spec.name)
        .await
        .map_err(|e| err(format!("stream {}: {e}", spec.name)))?;
    stream
        .delete_consumer(&name)
        .await
        .map_err(|e| err(e.to_string()))?;
    consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence { start_sequence },
            ..wanted
        })
        .await
        .map_err(|e| err(e.to_string()))?;
    Ok(consumer)
}

/// Asks a tenant's partition 0 commands lane, which reads its creates,
/// whether every create before a place in the stream is decided
/// ([`crate::order::CreatesSettled`]).
pub struct CreateLane {
    js: jetstream::Context,
    settings: std::sync::Arc<Settings>,
}

impl CreateLane {
    /// Asks through `js`.
    pub fn new(js: jetstream::Context, settings: std::sync::Arc<Settings>) -> Self {
        Self { js, settings }
    }

    async fn settled(&self, tenant: &orderd_core::TenantId, position: u64) -> Result<bool, String> {
        let spec = intake_streams()[0];
        let name = lane_name(spec, &Unit::first(tenant), &self.settings);
        let stream = self
            .js
            .get_stream(spec.name)
            .await
            .map_err(|e| e.to_string())?;
        let info = stream
            .consumer_info(&name)
            .await
            .map_err(|e| e.to_string())?;
        // Every message of the lane up to its ack floor is settled; with
        // none out, every one it delivered is, and with none pending
        // either, every one the stream holds for it.
        Ok(info.ack_floor.stream_sequence >= position
            || (info.num_ack_pending == 0
                && (info.num_pending == 0 || info.delivered.stream_sequence >= position)))
    }
}

impl crate::order::CreatesSettled for CreateLane {
    fn settled_before<'a>(
        &'a self,
        tenant: &'a orderd_core::TenantId,
        order: orderd_core::OrderId,
        position: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            if subjects::partition_of(order, self.settings.ownership.partitions) == 0 {
                // Read on the creates' own lane, after them.
                return true;
            }
            match self.settled(tenant, position).await {
                Ok(settled) => settled,
                Err(e) => {
                    // Its consumer being made anew at a hand-over, or NATS
                    // away: wait rather than refuse a command whose create
                    // may be about to be decided.
                    tracing::debug!(error = %e, "cannot read the creates lane; the command waits");
                    false
                }
            }
        })
    }
}
