//! The pull loop: reads one tenant's lane (a durable pull consumer, see
//! [`super::lanes`]), turns each message into an envelope for its order,
//! hands it to the router, and once the order actor has decided,
//! acknowledges the message and answers the client.
//!
//! Invariants:
//! - messages are handed to the router in the order they are pulled, so an
//!   order's commands reach its actor in stream order;
//! - at most `runtime.max_in_flight` messages of a lane are between pull and
//!   ack (each lane has its own permits);
//! - a message is acked only after the actor reported its change persisted
//!   (or that it was a duplicate); [`super::ack::ack_kind`] is the one place
//!   that decides between ack, nak and term;
//! - a message still failing on its last delivery (`consumers.max_deliver`)
//!   is not dropped silently: it is published, with its error, to the
//!   tenant's dead-letter subject (`orderd.v1.<tenant>.dlq.<source>`, kept by
//!   the `ORDERD_DLQ` stream), and only then terminated.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use async_nats::HeaderMap;
use futures::StreamExt;
use ractor::ActorRef;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use orderd_core::command::Reference;
use orderd_core::{Command, CommandId, Envelope, OrderId};

use super::ack::{ack_kind, outcome_for, Fate};
use crate::headers;
use crate::order::{Execution, Routed, RouterMsg, Verdict};
use crate::settings::Settings;
use crate::store::{PersonalRef, RedisStore};
use crate::subjects::{self, Inbound};
use crate::wire::{self, Format, WireError};
use crate::{retry, telemetry};

/// Everything the intake needs, shared by the consumers' loops.
#[derive(Clone)]
pub struct Intake {
    /// Publishes replies to clients.
    pub client: async_nats::Client,
    /// Publishes dead letters.
    pub js: jetstream::Context,
    /// The router.
    pub router: ActorRef<RouterMsg>,
    /// The settings.
    pub settings: Arc<Settings>,
    /// Bounds the lane's messages between pull and ack.
    pub permits: Arc<Semaphore>,
    /// Where the tenant's contacts and locations are (a reference by id
    /// must name one of its own).
    pub store: RedisStore,
}

/// How long one pull request waits at the server, and how often the server
/// says it is still there while the lane is idle. A pull request lives at
/// one server: when that server dies, or the consumer's leader moves, two
/// missed heartbeats tell the client to pull again elsewhere (async-nats's
/// defaults, 30 s and 15 s, left a lane silent for up to half a minute
/// after a node of a cluster died).
pub const PULL_EXPIRES: Duration = Duration::from_secs(10);
/// See [`PULL_EXPIRES`].
pub const PULL_HEARTBEAT: Duration = Duration::from_secs(2);

impl Intake {
    /// Pulls `consumer` until `shutdown` turns true, leaving what it had
    /// prefetched unacknowledged. Ends early when the consumer no longer
    /// exists at the server (deleted by an operator, or lost): whoever
    /// opened it opens it again ([`super::lanes::Lanes::sync`]).
    pub async fn run(
        self,
        consumer: jetstream::consumer::PullConsumer,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let batch = self.settings.runtime.max_in_flight.clamp(1, 256);
        let mut delays = retry::backoff();
        'reconnect: loop {
            let stream = consumer
                .stream()
                .max_messages_per_batch(batch)
                .expires(PULL_EXPIRES)
                .heartbeat(PULL_HEARTBEAT)
                .messages()
                .await;
            let mut messages = match stream {
                Ok(m) => m,
                Err(e) => {
                    if Self::gone(&consumer).await {
                        return;
                    }
                    tracing::warn!(error = %e, "cannot pull; retrying");
                    let delay = delays.next().unwrap_or(retry::LONGEST);
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        () = tokio::time::sleep(delay) => continue 'reconnect,
                    }
                }
            };
            delays = retry::backoff();
            loop {
                let permit = tokio::select! {
                    _ = shutdown.changed() => break 'reconnect,
                    p = self.permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break 'reconnect,
                    },
                };
                let next = tokio::select! {
                    // What the stream prefetched is left unacknowledged:
                    // the next owner's consumer starts again at the ack
                    // floor (`super::consumers::take_over`), so it comes at
                    // once. (Nak'ing it here sent it straight back to this
                    // same, still pulling stream, again and again, until
                    // the server's max_deliver dropped it for good: the
                    // three-instance chaos test lost commands that way at
                    // a hand-over.)
                    _ = shutdown.changed() => return,
                    m = messages.next() => m,
                };
                match next {
                    Some(Ok(msg)) => self.accept(msg, permit).await,
                    Some(Err(e)) => {
                        // Missed heartbeats while NATS is away, and the like:
                        // the stream recovers by itself, unless the consumer
                        // itself is gone.
                        tracing::debug!(error = %e, "pull stream hiccup");
                        if Self::gone(&consumer).await {
                            return;
                        }
                    }
                    None => continue 'reconnect,
                }
            }
        }
    }

    /// The server says `consumer` does not exist (not merely that it cannot
    /// answer now, as while NATS is away).
    async fn gone(consumer: &jetstream::consumer::PullConsumer) -> bool {
        use jetstream::context::ConsumerInfoErrorKind;
        match consumer.get_info().await {
            Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {
                tracing::warn!(
                    consumer = %consumer.cached_info().name,
                    "the consumer is gone at the server; its lane will be opened again"
                );
                true
            }
            _ => false,
        }
    }

    /// Turns one message into an envelope and hands it to the router; a
    /// task waits for the verdict, acks and answers.
    async fn accept(&self, msg: jetstream::Message, permit: OwnedSemaphorePermit) {
        let (stream, stream_seq, delivered, backlog) = match msg.info() {
            Ok(i) => (
                i.stream.to_owned(),
                i.stream_sequence,
                i.delivered,
                i.pending,
            ),
            Err(_) => {
                // Not a JetStream delivery: nothing to ack.
                return;
            }
        };
        let msg_id = header(&msg, headers::NATS_MSG_ID);
        let content_type = header(&msg, headers::CONTENT_TYPE);
        // The trace the command came with, if its header is valid.
        let incoming = header(&msg, headers::TRACEPARENT)
            .filter(|tp| headers::child_traceparent(tp, 1).is_some());
        let mut reply = Reply::to_sender_of(&self.client, &msg, None);
        let last_delivery = self.settings.consumers.max_deliver > 0
            && delivered >= self.settings.consumers.max_deliver;

        // A refusal before any order decides (`Some` error), or Redis that
        // cannot check the references now (`None`).
        let parsed = match self.envelope(&msg, &stream, stream_seq, msg_id, content_type) {
            Ok(envelope) => match self.references_held(&envelope).await {
                Ok(()) => Ok(envelope),
                Err(e) => Err((Some(envelope.order_id), Some(envelope.tenant.clone()), e)),
            },
            Err((order_id, e)) => Err((order_id, None, Some(e))),
        };
        let envelope = match parsed {
            Ok(envelope) => envelope,
            Err((order_id, _, Some(e))) => {
                tracing::info!(
                    code = e.code(),
                    stream_seq,
                    "message refused before reaching an order"
                );
                let fate = Fate::Malformed(e);
                reply
                    .send(outcome_for(&fate, order_id, last_delivery))
                    .await;
                self.settle(&msg, &fate, delivered).await;
                return;
            }
            Err((order_id, tenant, None)) => {
                // Redis cannot say now: the message comes back, or, on its
                // last delivery, goes to the dead letters like a command
                // the actor could not decide.
                let fate = Fate::Undecided;
                reply
                    .send(outcome_for(&fate, order_id, last_delivery))
                    .await;
                match tenant {
                    Some(tenant) => {
                        let at = (stream.as_str(), stream_seq, delivered, last_delivery);
                        self.conclude(&msg, &tenant, at, &fate).await;
                    }
                    None => self.settle(&msg, &fate, delivered).await,
                }
                return;
            }
        };
        let order_id = envelope.order_id;
        let tenant = envelope.tenant.clone();
        let lane = if stream == subjects::STREAM_JOBS {
            "job"
        } else {
            "cmd"
        };
        telemetry::lane_backlog(tenant.as_str(), lane, backlog);
        // At debug: a span at the default level costs every command a
        // formatted copy of its fields (about 5% of orderd's CPU in the
        // bench). The log lines a command can cause name it themselves.
        let span = tracing::debug_span!(
            "command",
            order_id = %order_id,
            tenant = %envelope.tenant,
            command = envelope.command.verb(),
            stream_seq,
            delivered,
            trace_id = incoming.as_deref().and_then(headers::trace_id),
        );
        // orderd's hop of that trace: the span's own id when spans are
        // exported, else one made up for it.
        let traceparent = incoming.as_deref().and_then(|tp| {
            let hop = telemetry::join_trace(&span, tp)
                .unwrap_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0);
            headers::child_traceparent(tp, hop)
        });
        reply.traceparent = traceparent.clone();
        let (tx, rx) = ractor::concurrency::oneshot();
        let exec = Execution {
            envelope,
            reply: Some(tx.into()),
            span: span.clone(),
            traceparent,
            position: (stream == subjects::STREAM_COMMANDS).then_some(stream_seq),
        };
        let routed = self.router.cast(RouterMsg::Route {
            order_id,
            msg: Routed::Execute(Box::new(exec)),
        });
        if routed.is_err() {
            // The router is gone (shutting down): put the message back.
            self.settle(&msg, &Fate::Undecided, delivered).await;
            return;
        }
        let this = self.clone();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let fate = this.await_verdict(&msg, rx).await;
                // The outcome goes out before the ack, on the same
                // connection: a process killed between the two leaves the
                // message unacknowledged, so it is decided again (a
                // duplicate) and the outcome sent again; never acked with
                // its outcome lost.
                reply
                    .send(outcome_for(&fate, Some(order_id), last_delivery))
                    .await;
                let at = (stream.as_str(), stream_seq, delivered, last_delivery);
                this.conclude(&msg, &tenant, at, &fate).await;
                drop(permit);
            },
            span,
        ));
    }

    /// Parses subject, headers and body into an envelope; on failure, the
    /// order id when known, and why.
    fn envelope(
        &self,
        msg: &jetstream::Message,
        stream: &str,
        stream_seq: u64,
        msg_id: Option<String>,
        content_type: Option<String>,
    ) -> Result<Envelope, (Option<OrderId>, WireError)> {
        let inbound = subjects::parse_inbound(&msg.subject).map_err(|e| (None, e.into()))?;
        let order_id = match &inbound {
            Inbound::Create { tenant } => {
                let key = msg_id.clone().unwrap_or_else(|| format!("js:{stream_seq}"));
                wire::order_id_for_create(tenant, &key)
            }
            Inbound::Command { order, .. } | Inbound::JobUpdate { order, .. } => *order,
        };
        let command_id = match &msg_id {
            Some(id) => CommandId::parse(id).map_err(|_| {
                (
                    Some(order_id),
                    WireError::Malformed(
                        "Nats-Msg-Id must be 1 to 128 printable ASCII characters".into(),
                    ),
                )
            })?,
            None => CommandId::parse(&format!("js:{stream}:{stream_seq}")).map_err(|_| {
                (
                    Some(order_id),
                    WireError::Malformed("stream position".into()),
                )
            })?,
        };
        let (command, expected_seq) = wire::decode_conditional_command(
            &inbound,
            content_type.as_deref(),
            &msg.payload,
            self.settings.runtime.max_body_bytes,
        )
        .map_err(|e| (Some(order_id), e))?;
        let by = match (&inbound, &command) {
            (_, Command::Create(create)) => create.client.id.clone(),
            (Inbound::JobUpdate { .. }, _) => "dispatch".to_owned(),
            _ => "client".to_owned(),
        };
        Ok(Envelope {
            tenant: inbound.tenant().clone(),
            order_id,
            command_id,
            by,
            command,
            expected_seq,
        })
    }

    /// Every contact and location the command names by id is one its
    /// tenant stored: `Err(Some)` names the first that is not (unknown, or
    /// another tenant's), `Err(None)` when Redis cannot say now.
    async fn references_held(&self, envelope: &Envelope) -> Result<(), Option<WireError>> {
        let refs = envelope.command.references();
        if refs.is_empty() {
            return Ok(());
        }
        let items: Vec<PersonalRef> = refs
            .iter()
            .map(|(_, r)| match r {
                Reference::Contact(id) => PersonalRef::Contact(*id),
                Reference::Location(id) => PersonalRef::Location(*id),
            })
            .collect();
        let held = self
            .store
            .personal_held(&envelope.tenant, &items)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "cannot check references; the command comes back");
                None
            })?;
        match refs.into_iter().zip(items).zip(held).find(|(_, h)| !h) {
            Some((((field, _), item), _)) => Err(Some(WireError::UnknownReference {
                field,
                kind: item.kind(),
            })),
            None => Ok(()),
        }
    }

    /// Acknowledges `msg` as its fate says, except that one still to be
    /// redelivered on its last delivery (`at`: stream, stream sequence,
    /// deliveries, last) goes to the tenant's dead letters instead.
    async fn conclude(
        &self,
        msg: &jetstream::Message,
        tenant: &orderd_core::TenantId,
        (stream, stream_seq, delivered, last_delivery): (&str, u64, i64, bool),
        fate: &Fate,
    ) {
        if last_delivery && matches!(ack_kind(fate, delivered, &self.settings), AckKind::Nak(_)) {
            self.dead_letter(msg, tenant, stream, stream_seq, delivered, fate)
                .await;
        } else {
            self.settle(msg, fate, delivered).await;
        }
    }

    /// Waits for the actor's verdict, telling the server the message is
    /// still being worked on so it is not redelivered meanwhile.
    async fn await_verdict(
        &self,
        msg: &jetstream::Message,
        rx: ractor::concurrency::OneshotReceiver<Verdict>,
    ) -> Fate {
        let period = (self.settings.ack_wait() / 2).max(Duration::from_millis(500));
        let mut rx = std::pin::pin!(rx);
        loop {
            tokio::select! {
                v = &mut rx => return v.map_or(Fate::Undecided, Fate::Decided),
                () = tokio::time::sleep(period) => {
                    let _ = msg.ack_with(AckKind::Progress).await;
                }
            }
        }
    }

    /// The last delivery failed too: publish the message with its error to
    /// the tenant's dead-letter subject, then terminate it. If even that
    /// fails, the message is nak'ed (and the server drops it: it had its
    /// deliveries), and the loss is logged.
    async fn dead_letter(
        &self,
        msg: &jetstream::Message,
        tenant: &orderd_core::TenantId,
        stream: &str,
        stream_seq: u64,
        delivered: i64,
        fate: &Fate,
    ) {
        let (code, why) = match fate {
            Fate::Decided(Verdict::Retry(reason)) => ("ORD-503-UNAVAILABLE", format!("{reason:?}")),
            Fate::Decided(Verdict::Applied(_) | Verdict::Duplicate(_)) => (
                "ORD-503-UNPUBLISHED",
                "applied, but its events and job commands could not be published".to_owned(),
            ),
            Fate::Undecided => (
                "ORD-503-UNAVAILABLE",
                "the order actor went away before deciding".to_owned(),
            ),
            Fate::Decided(Verdict::Refused(_) | Verdict::RefusedBefore(_)) | Fate::Malformed(_) => {
                ("ORD-500-INTERNAL", "not a passing failure".to_owned())
            }
        };
        let mut h = msg.headers.clone().unwrap_or_default();
        if let Some(id) = h.get(headers::NATS_MSG_ID).map(|v| v.as_str().to_owned()) {
            h.insert(headers::ORDERD_DLQ_MSG_ID, id.as_str());
        }
        h.insert(
            headers::NATS_MSG_ID,
            headers::dead_letter_msg_id(stream, stream_seq).as_str(),
        );
        h.insert(headers::ORDERD_ERROR_CODE, code);
        h.insert(headers::ORDERD_ERROR, why.as_str());
        h.insert(
            headers::ORDERD_DLQ_SUBJECT,
            subjects::as_sent(&msg.subject).as_str(),
        );
        h.insert(
            headers::ORDERD_DLQ_SOURCE,
            format!("{stream}:{stream_seq}").as_str(),
        );
        h.insert(
            headers::ORDERD_DLQ_DELIVERIES,
            delivered.to_string().as_str(),
        );
        let subject = subjects::dead_letter(tenant, subjects::DeadLetterSource::of_stream(stream));
        let published = async {
            self.js
                .publish_with_headers(subject, h, msg.payload.clone())
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match published {
            Ok(_) => {
                tracing::warn!(code, error = %why, stream, stream_seq, delivered, "dead-lettered after its last delivery");
                if let Err(e) = msg.ack_with(AckKind::Term).await {
                    tracing::warn!(error = %e, stream, stream_seq, "termination not sent");
                }
            }
            Err(e) => {
                tracing::error!(code, error = %why, dlq_error = %e, stream, stream_seq, "last delivery failed and the dead letter could not be published: the server drops the message");
                self.settle(msg, fate, delivered).await;
            }
        }
    }

    async fn settle(&self, msg: &jetstream::Message, fate: &Fate, delivered: i64) {
        let kind = ack_kind(fate, delivered, &self.settings);
        if let Err(e) = msg.ack_with(kind).await {
            // The server redelivers after the ack wait; the order's record of
            // applied command ids makes that harmless.
            let stream_seq = msg.info().map(|i| i.stream_sequence).unwrap_or_default();
            tracing::warn!(error = %e, subject = %msg.subject, stream_seq, "acknowledgement not sent");
        }
    }
}

/// Answers a message that no tenant's lane reads, because its subject's
/// tenant token is not a tenant: refused with the subject's error. Nothing
/// else happens to it (it stays in the stream until its age runs out).
pub async fn refuse_unroutable(client: &async_nats::Client, msg: &jetstream::Message) {
    let Err(e) = subjects::parse_inbound(&msg.subject) else {
        return;
    };
    let e = WireError::from(e);
    tracing::info!(
        code = e.code(),
        "message refused before reaching an order: not a tenant's subject"
    );
    let fate = Fate::Malformed(e);
    Reply::to_sender_of(client, msg, None)
        .send(outcome_for(&fate, None, false))
        .await;
}

fn header(msg: &jetstream::Message, name: &str) -> Option<String> {
    msg.headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_owned())
}

/// Where and how the client's outcome goes.
struct Reply {
    client: async_nats::Client,
    to: Option<String>,
    format: Format,
    traceparent: Option<String>,
}

impl Reply {
    /// The reply subject and format the message's headers name.
    fn to_sender_of(
        client: &async_nats::Client,
        msg: &jetstream::Message,
        traceparent: Option<String>,
    ) -> Reply {
        let content_type = header(msg, headers::CONTENT_TYPE);
        let to = header(msg, headers::ORDERD_REPLY_TO).filter(|r| {
            let ok = subjects::check_reply_subject(r).is_ok();
            if !ok {
                tracing::warn!("ignoring an invalid reply subject");
            }
            ok
        });
        Reply {
            client: client.clone(),
            to,
            format: Format::from_content_type(content_type.as_deref()).unwrap_or_default(),
            traceparent,
        }
    }

    async fn send(&self, outcome: Option<wire::Outcome>) {
        let (Some(to), Some(outcome)) = (&self.to, outcome) else {
            return;
        };
        let mut h = HeaderMap::new();
        h.insert(headers::CONTENT_TYPE, self.format.content_type());
        if let Some(e) = &outcome.error {
            h.insert(headers::ORDERD_ERROR_CODE, e.code.as_str());
        }
        if let Some(traceparent) = &self.traceparent {
            h.insert(headers::TRACEPARENT, traceparent.as_str());
        }
        let body = wire::encode_as(&outcome, self.format);
        if let Err(e) = self
            .client
            .publish_with_headers(to.clone(), h, body.into())
            .await
        {
            tracing::warn!(error = %e, "outcome not sent to the client");
        }
    }
}
