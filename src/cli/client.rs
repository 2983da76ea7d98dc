//! The command line's NATS client: the same subjects and headers as any
//! client of orderd, nothing private.
//! - reads are NATS Services API requests to `orderd.v1.api.*`; an answer
//!   carrying `Nats-Service-Error-Code` (or `Orderd-Error-Code`) is an
//!   [`ErrorBody`];
//! - writes are JetStream publishes with a `Nats-Msg-Id` (the idempotency
//!   key) and an `Orderd-Reply-To` inbox subscribed before the publish; the
//!   PubAck says the command is durable, the Outcome on the inbox says what
//!   became of it. When the PubAck says `duplicate` the stream dropped the
//!   repeat and no Outcome will come, so the `outcome` endpoint is asked
//!   whether the first one took effect.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::{HeaderMap, RequestErrorKind};
use bytes::Bytes;
use futures::StreamExt;
use orderd_core::{CommandId, OrderId, TenantId};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;

use super::args::Connection;
use super::failure::Failure;
use crate::wire::{self, ErrorBody, Outcome};
use crate::{headers, subjects};

/// How often the `outcome` endpoint is asked again while a duplicate's
/// first command is not applied yet.
const OUTCOME_POLL: Duration = Duration::from_millis(200);

/// A connection to NATS, for one tenant.
pub struct Client {
    nats: async_nats::Client,
    js: jetstream::Context,
    tenant: TenantId,
    timeout: Duration,
}

/// What became of a command.
pub struct Sent {
    /// The Outcome: from the reply inbox, or from the `outcome` endpoint.
    pub outcome: Outcome,
    /// The answer as orderd sent it (for `--json`).
    pub raw: Bytes,
}

impl Client {
    /// Connects to the NATS server the arguments name.
    pub async fn connect(conn: &Connection) -> Result<Self, Failure> {
        let settings = crate::settings::NatsSettings {
            url: conn.nats_url.clone(),
            tls_ca_file: conn.tls_ca.clone(),
            tls_cert_file: conn.tls_cert.clone(),
            tls_key_file: conn.tls_key.clone(),
            credentials_file: conn.creds.clone(),
            nkey_seed_file: conn.nkey_seed.clone(),
            ..Default::default()
        };
        let options = settings.connect_options().map_err(Failure::Usage)?;
        let nats = options
            .connection_timeout(conn.timeout)
            .request_timeout(Some(conn.timeout))
            .connect(conn.nats_url.servers())
            .await
            .map_err(|e| {
                Failure::Unavailable(format!(
                    "cannot connect to NATS at {}: {e}",
                    conn.nats_url.redacted()
                ))
            })?;
        let mut js = jetstream::new(nats.clone());
        js.set_timeout(conn.timeout);
        Ok(Self {
            nats,
            js,
            tenant: conn.tenant.clone(),
            timeout: conn.timeout,
        })
    }

    /// The tenant every request names.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// JetStream, for the watch's consumer on the events stream.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// Asks a read endpoint; the raw answer, or orderd's error.
    pub async fn read_raw<Req: Serialize>(
        &self,
        subject: &'static str,
        request: &Req,
    ) -> Result<Bytes, Failure> {
        let body = wire::encode(request, false);
        let answer = self
            .nats
            .request(subject, body.into())
            .await
            .map_err(|e| match e.kind() {
                RequestErrorKind::TimedOut => Failure::Unavailable(format!(
                    "no answer on {subject} within {:?}",
                    self.timeout
                )),
                RequestErrorKind::NoResponders => Failure::Unavailable(format!(
                    "nothing answers on {subject}: is orderd running?"
                )),
                _ => Failure::Unavailable(format!("{subject}: {e}")),
            })?;
        if let Some(error) = error_of(answer.headers.as_ref(), &answer.payload) {
            return Err(Failure::Refused(error));
        }
        Ok(answer.payload)
    }

    /// Asks a read endpoint and decodes its answer.
    pub async fn read<Req: Serialize, Rep: DeserializeOwned>(
        &self,
        subject: &'static str,
        request: &Req,
    ) -> Result<(Rep, Bytes), Failure> {
        let raw = self.read_raw(subject, request).await?;
        let decoded = decode(subject, &raw)?;
        Ok((decoded, raw))
    }

    /// Publishes a command through JetStream and waits for what became of
    /// it. `order` is the order a command names (`None` for a create).
    pub async fn send(
        &self,
        subject: String,
        body: Vec<u8>,
        key: &CommandId,
        order: Option<OrderId>,
    ) -> Result<Sent, Failure> {
        let inbox = self.nats.new_inbox();
        let mut replies =
            self.nats.subscribe(inbox.clone()).await.map_err(|e| {
                Failure::Unavailable(format!("cannot subscribe to a reply inbox: {e}"))
            })?;
        let mut h = HeaderMap::new();
        h.insert(headers::NATS_MSG_ID, key.as_str());
        h.insert(headers::ORDERD_REPLY_TO, inbox.as_str());
        h.insert(headers::CONTENT_TYPE, headers::JSON);
        let unavailable = |e: &dyn std::fmt::Display| {
            Failure::Unavailable(format!(
                "no PubAck ({e}): the command may not be stored; \
                 retry with --idempotency-key {}",
                key.as_str()
            ))
        };
        let ack = self
            .js
            .publish_with_headers(subject, h, body.into())
            .await
            .map_err(|e| unavailable(&e))?
            .await
            .map_err(|e| unavailable(&e))?;
        if ack.duplicate {
            return self.applied_before(key, order).await;
        }
        let waited = tokio::time::timeout(self.timeout, replies.next()).await;
        let Ok(Some(reply)) = waited else {
            return Err(Failure::Unavailable(format!(
                "the command is stored, but no outcome came within {:?} (is orderd running?); \
                 retry with --idempotency-key {} to learn what became of it",
                self.timeout,
                key.as_str()
            )));
        };
        let outcome: Outcome = decode("the reply inbox", &reply.payload)?;
        Ok(Sent {
            outcome,
            raw: reply.payload,
        })
    }

    /// Asks the `outcome` endpoint whether the command under `key` took
    /// effect, again until it has or the timeout runs out (the first copy
    /// may still be on its way through orderd).
    async fn applied_before(
        &self,
        key: &CommandId,
        order: Option<OrderId>,
    ) -> Result<Sent, Failure> {
        let request = wire::OutcomeRequest {
            tenant: self.tenant.to_string(),
            command_id: key.as_str().to_owned(),
            order_id: order.map(|o| o.to_string()),
        };
        let deadline = Instant::now() + self.timeout;
        loop {
            match self
                .read::<_, Outcome>(subjects::API_OUTCOME, &request)
                .await
            {
                Ok((outcome, raw)) => return Ok(Sent { outcome, raw }),
                Err(Failure::Refused(e))
                    if matches!(e.status(), 404 | 503)
                        && Instant::now() + OUTCOME_POLL < deadline =>
                {
                    tokio::time::sleep(OUTCOME_POLL).await;
                }
                Err(Failure::Refused(mut e)) if e.status() == 404 => {
                    e.message = format!(
                        "{} (the stream already held idempotency key {}: orderd has not \
                         handled its first copy yet)",
                        e.message,
                        key.as_str()
                    );
                    return Err(Failure::Refused(e));
                }
                Err(other) => return Err(other),
            }
        }
    }
}

/// orderd's error in an answer, if it is one.
fn error_of(h: Option<&HeaderMap>, payload: &[u8]) -> Option<ErrorBody> {
    let h = h?;
    let status = h.get(headers::NATS_SERVICE_ERROR_CODE);
    let code = h.get(headers::ORDERD_ERROR_CODE);
    if status.is_none() && code.is_none() {
        return None;
    }
    if let Ok(body) = serde_json::from_slice::<ErrorBody>(payload) {
        return Some(body);
    }
    let message = h
        .get(headers::NATS_SERVICE_ERROR)
        .map_or_else(String::new, |m| m.as_str().to_owned());
    let code = code
        .map(|c| c.as_str().to_owned())
        .or_else(|| status.map(|s| format!("ORD-{}-SERVICE_ERROR", s.as_str())))?;
    Some(ErrorBody::error(code, message))
}

/// Decodes a JSON answer.
pub fn decode<T: DeserializeOwned>(from: &str, payload: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(payload).map_err(|e| Failure::Unexpected(format!("{from}: {e}")))
}
