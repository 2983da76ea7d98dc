//! The read side: a NATS Services API service (`orderd`, discoverable with
//! `$SRV.PING|INFO|STATS`) with the endpoints get, explain, query, history
//! and health, and the configuration endpoints `config.*`
//! ([`super::config`]).
//!
//! Invariants:
//! - reads of a live order go through its actor (the freshest state), else
//!   through its snapshot;
//! - another tenant's order reads as not found: existence is never revealed;
//! - an error reply carries the `Nats-Service-Error(-Code)` headers AND a
//!   JSON [`ErrorBody`]. (`Request::respond(Err(..))` would send an empty
//!   body, so the same headers are set here on a body-carrying reply.)

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::service::{Request, ServiceExt};
use async_nats::HeaderMap;
use futures::StreamExt;
use ractor::rpc::CallResult;
use ractor::ActorRef;
use serde::Serialize;

use orderd_core::ids::{ContactId, LocationId};
use orderd_core::{Order, OrderId, Personal, TenantId};

use super::config;
use crate::order::RouterMsg;
use crate::settings::Settings;
use crate::store::{PersonalRef, RedisStore, SnapshotStore, StoreError};
use crate::wire::{self, ErrorBody, Format, WireError};
use crate::{headers, subjects};

/// The most orders a query page, or events a history page, holds.
pub const MAX_PAGE: usize = 500;
const DEFAULT_PAGE: usize = 50;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The Services API refused to start or add an endpoint.
    #[error("service: {0}")]
    Start(String),
}

/// What the endpoints read from.
#[derive(Clone)]
pub struct Reader {
    /// Snapshots and indexes.
    pub store: RedisStore,
    /// Live actors.
    pub router: ActorRef<RouterMsg>,
    /// The events stream, for history and the dry run.
    pub js: jetstream::Context,
    /// NATS, for health.
    pub client: async_nats::Client,
    /// Limits.
    pub settings: Arc<Settings>,
    /// The instances and who owns which tenant (for health).
    pub ownership: crate::bus::ownership::Ownership,
    /// Wakes the index backfill after a publish.
    pub backfill: crate::store::backfill::Wake,
}

/// A request that failed, as the client sees it.
struct Failure(ErrorBody);

impl From<WireError> for Failure {
    fn from(e: WireError) -> Self {
        Failure(ErrorBody::from(&e))
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::BadCursor => Failure(ErrorBody::error(
                "ORD-400-BAD_CURSOR",
                "the cursor was not handed out by this endpoint",
            )),
            StoreError::Archived { .. } => Failure(ErrorBody::order_archived()),
            other => {
                tracing::warn!(error = %other, "read failed");
                Failure(ErrorBody::error(
                    "ORD-503-UNAVAILABLE",
                    "storage is unavailable; try again",
                ))
            }
        }
    }
}

fn not_found() -> Failure {
    Failure(ErrorBody::from(&orderd_core::Rejection::OrderNotFound))
}

/// The running service.
pub struct ServiceHandle {
    service: async_nats::service::Service,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ServiceHandle {
    /// Stops answering.
    pub async fn stop(self) {
        if let Err(e) = self.service.stop().await {
            tracing::debug!(error = %e, "service stop");
        }
        for t in self.tasks {
            t.abort();
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Get,
    Explain,
    Query,
    History,
    Health,
    ConfigGet,
    ConfigValidate,
    ConfigPublish,
    ConfigAttributes,
    ConfigDryRun,
    Outcome,
    Counts,
    Contact,
    Location,
    Audit,
    Archive,
    Erase,
}

/// Starts the service and its endpoints.
pub async fn start(reader: Reader) -> Result<ServiceHandle, ServiceError> {
    let service = reader
        .client
        .service_builder()
        .description("orderd: read orders, explain them, query them, read their history")
        .start(subjects::SERVICE_NAME, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|e| ServiceError::Start(e.to_string()))?;
    let endpoints = [
        (subjects::API_GET_ENDPOINT, subjects::API_GET, Endpoint::Get),
        (
            subjects::API_EXPLAIN_ENDPOINT,
            subjects::API_EXPLAIN,
            Endpoint::Explain,
        ),
        (
            subjects::API_QUERY_ENDPOINT,
            subjects::API_QUERY,
            Endpoint::Query,
        ),
        (
            subjects::API_HISTORY_ENDPOINT,
            subjects::API_HISTORY,
            Endpoint::History,
        ),
        (
            subjects::API_HEALTH_ENDPOINT,
            subjects::API_HEALTH,
            Endpoint::Health,
        ),
        (
            subjects::API_CONFIG_GET_ENDPOINT,
            subjects::API_CONFIG_GET,
            Endpoint::ConfigGet,
        ),
        (
            subjects::API_CONFIG_VALIDATE_ENDPOINT,
            subjects::API_CONFIG_VALIDATE,
            Endpoint::ConfigValidate,
        ),
        (
            subjects::API_CONFIG_PUBLISH_ENDPOINT,
            subjects::API_CONFIG_PUBLISH,
            Endpoint::ConfigPublish,
        ),
        (
            subjects::API_CONFIG_ATTRIBUTES_ENDPOINT,
            subjects::API_CONFIG_ATTRIBUTES,
            Endpoint::ConfigAttributes,
        ),
        (
            subjects::API_CONFIG_DRYRUN_ENDPOINT,
            subjects::API_CONFIG_DRYRUN,
            Endpoint::ConfigDryRun,
        ),
        (
            subjects::API_OUTCOME_ENDPOINT,
            subjects::API_OUTCOME,
            Endpoint::Outcome,
        ),
        (
            subjects::API_COUNTS_ENDPOINT,
            subjects::API_COUNTS,
            Endpoint::Counts,
        ),
        (
            subjects::API_CONTACT_ENDPOINT,
            subjects::API_CONTACT,
            Endpoint::Contact,
        ),
        (
            subjects::API_LOCATION_ENDPOINT,
            subjects::API_LOCATION,
            Endpoint::Location,
        ),
        (
            subjects::API_AUDIT_ENDPOINT,
            subjects::API_AUDIT,
            Endpoint::Audit,
        ),
        (
            subjects::API_ARCHIVE_ENDPOINT,
            subjects::API_ARCHIVE,
            Endpoint::Archive,
        ),
        (
            subjects::API_ERASE_ENDPOINT,
            subjects::API_ERASE,
            Endpoint::Erase,
        ),
    ];
    let mut tasks = Vec::new();
    for (name, subject, which) in endpoints {
        let mut endpoint = service
            .endpoint_builder()
            .name(name)
            .add(subject)
            .await
            .map_err(|e| ServiceError::Start(e.to_string()))?;
        let reader = reader.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(request) = endpoint.next().await {
                let reader = reader.clone();
                tokio::spawn(async move { reader.answer(which, request).await });
            }
        }));
    }
    Ok(ServiceHandle { service, tasks })
}

impl Reader {
    async fn answer(&self, which: Endpoint, request: Request) {
        let content_type = request
            .message
            .headers
            .as_ref()
            .and_then(|h| h.get(headers::CONTENT_TYPE))
            .map(|v| v.as_str().to_owned());
        let format = Format::from_content_type(content_type.as_deref()).unwrap_or_default();
        let body = &request.message.payload;
        let ct = content_type.as_deref();
        let fenced = match which {
            Endpoint::Health => Ok(()),
            _ => self.fence(request.message.reply.as_deref(), ct, body),
        };
        let result = match fenced {
            Err(f) => Err(f),
            Ok(()) => match which {
                Endpoint::Get => self
                    .get(ct, body)
                    .await
                    .map(|v| wire::encode_as(&v, format)),
                Endpoint::Explain => self
                    .explain(ct, body)
                    .await
                    .map(|v| wire::encode_as(&v, format)),
                Endpoint::Query => self
                    .query(ct, body)
                    .await
                    .map(|v| wire::encode_as(&v, format)),
                Endpoint::History => self
                    .history(ct, body)
                    .await
                    .map(|v| wire::encode_as(&v, format)),
                Endpoint::Health => Ok(wire::encode_as(&self.health().await, format)),
                Endpoint::ConfigGet => self.config(ct, body, config::get, format).await,
                Endpoint::ConfigValidate => self.config(ct, body, config::validate, format).await,
                Endpoint::ConfigPublish => {
                    let published = self.config(ct, body, config::publish, format).await;
                    self.backfill.wake();
                    published
                }
                Endpoint::ConfigAttributes => {
                    let published = self.config(ct, body, config::attributes, format).await;
                    self.backfill.wake();
                    published
                }
                Endpoint::ConfigDryRun => {
                    let js = &self.js;
                    let dry_run = |store, req| config::dry_run(store, js, req);
                    self.config(ct, body, dry_run, format).await
                }
                Endpoint::Outcome => self
                    .outcome(ct, body)
                    .await
                    .map(|v| wire::encode_as(&v, format)),
                Endpoint::Counts => self
                    .counts(ct, body)
                    .await
                    .map(|v| wire::encode_as(&v, format)),
                Endpoint::Contact | Endpoint::Location => {
                    self.personal(which == Endpoint::Contact, ct, body, format)
                        .await
                }
                Endpoint::Audit => self
                    .audit(ct, body)
                    .await
                    .map(|v| wire::encode_as(&v, format)),
                Endpoint::Archive => self
                    .archived(ct, body)
                    .await
                    .map(|v| wire::encode_as(&v, format)),
                Endpoint::Erase => self
                    .erase(ct, body)
                    .await
                    .map(|v| wire::encode_as(&v, format)),
            },
        };
        let mut h = HeaderMap::new();
        h.insert(headers::CONTENT_TYPE, format.content_type());
        let payload = match result {
            Ok(bytes) => bytes,
            Err(Failure(error)) => {
                h.insert(headers::NATS_SERVICE_ERROR, error.message.as_str());
                h.insert(
                    headers::NATS_SERVICE_ERROR_CODE,
                    error.status().to_string().as_str(),
                );
                h.insert(headers::ORDERD_ERROR_CODE, error.code.as_str());
                wire::encode_as(&error, format)
            }
        };
        if let Err(e) = request.respond_with_headers(Ok(payload.into()), h).await {
            tracing::debug!(error = %e, "reply not sent");
        }
    }

    /// Decodes a configuration request and runs its handler.
    async fn config<'s, Req, Rep, F>(
        &'s self,
        ct: Option<&str>,
        body: &[u8],
        handler: impl FnOnce(&'s RedisStore, Req) -> F,
        format: Format,
    ) -> Result<Vec<u8>, Failure>
    where
        Req: serde::de::DeserializeOwned,
        Rep: Serialize,
        F: std::future::Future<Output = Result<Rep, config::ConfigError>>,
    {
        let req: Req = wire::decode(ct, body, self.max_body())?;
        match handler(&self.store, req).await {
            Ok(reply) => Ok(wire::encode_as(&reply, format)),
            Err(e) => Err(Failure(e.body())),
        }
    }

    /// Reads are fenced by the reply subject: the Services API serves shared
    /// subjects and the tenant travels in the body, so the body alone proves
    /// nothing. A tenant's NATS user can receive only on `_INBOX_<tenant>.>`
    /// (config/nats-server.conf), so a request whose reply subject is under
    /// `_INBOX_<tenant>.` was sent by that tenant; `_INBOX.` is the shared
    /// prefix that only orderd and operators may receive on. Anything else
    /// (another tenant's inbox, a made-up subject) is refused.
    fn fence(&self, reply: Option<&str>, ct: Option<&str>, body: &[u8]) -> Result<(), Failure> {
        #[derive(serde::Deserialize)]
        struct Tenanted {
            #[serde(default)]
            tenant: Option<String>,
        }
        let named: Tenanted = wire::decode(ct, body, self.max_body())?;
        let Some(reply) = reply else {
            return Ok(()); // nobody to answer; the request is dropped anyway
        };
        if reply.starts_with("_INBOX.") {
            return Ok(());
        }
        match named.tenant {
            Some(t) if reply.starts_with("_INBOX_") && reply[7..].strip_prefix(t.as_str()).is_some_and(|r| r.starts_with('.')) => Ok(()),
            _ => Err(Failure(wire::ErrorBody::error(
                "ORD-403-READ_NOT_ALLOWED",
                "reads answer only on _INBOX_<tenant>.… for the tenant named in the request (or on _INBOX.… for operators)",
            ))),
        }
    }

    /// The order as the caller's tenant may see it: from its live actor when this instance decides its
    /// partition (queued behind the commands before it), else from the store:
    /// another instance's actor may have changed it since a live one here
    /// last saw it.
    async fn read(&self, tenant: &TenantId, order_id: OrderId) -> Result<Order, Failure> {
        let live = if self.ownership.decides(tenant, order_id) {
            self.router
                .call(
                    |reply| RouterMsg::Read { order_id, reply },
                    Some(Duration::from_secs(5)),
                )
                .await
                .ok()
        } else {
            None
        };
        let order = match live {
            Some(CallResult::Success(Ok(order))) => order.map(|o| *o),
            _ => self.store.fetch(order_id).await?.map(|s| s.order),
        };
        order
            .filter(|o| o.exists() && &o.tenant == tenant)
            .ok_or_else(not_found)
    }

    /// Whether a command took effect: the order it left, marked duplicate
    /// (it was applied once); the refusal it got (`ok: false` and its
    /// error, as on the reply subject); or not found (not handled yet,
    /// unknown, or refused by an order that does not exist).
    async fn outcome(&self, ct: Option<&str>, body: &[u8]) -> Result<wire::Outcome, Failure> {
        let req: wire::OutcomeRequest = wire::decode(ct, body, self.max_body())?;
        let (tenant, order_id, command_id) = req.ids()?;
        let order = self.read(&tenant, order_id).await?;
        if order.applied_commands.contains(&command_id) {
            return Ok(wire::Outcome::duplicate(&order));
        }
        let refused = self
            .store
            .refusal(&order.id, &command_id)
            .await?
            .and_then(|answer| serde_json::from_str::<wire::ErrorBody>(&answer).ok());
        if let Some(error) = refused {
            Ok(wire::Outcome::refused(Some(order.id), error))
        } else {
            Err(Failure(wire::ErrorBody::error(
                "ORD-404-COMMAND_NOT_APPLIED",
                "the order has not applied or refused this command: not handled yet, or unknown",
            )))
        }
    }

    async fn get(&self, ct: Option<&str>, body: &[u8]) -> Result<wire::OrderView, Failure> {
        let req: wire::OrderRequest = wire::decode(ct, body, self.max_body())?;
        let (tenant, order_id) = req.ids()?;
        let order = self.read(&tenant, order_id).await?;
        Ok(wire::OrderView::from(&order))
    }

    async fn explain(
        &self,
        ct: Option<&str>,
        body: &[u8],
    ) -> Result<orderd_core::Explanation, Failure> {
        let req: wire::OrderRequest = wire::decode(ct, body, self.max_body())?;
        let (tenant, order_id) = req.ids()?;
        let order = self.read(&tenant, order_id).await?;
        // Explained by the rules it is decided by: its own version.
        let config = self
            .store
            .tenant_config_at(&tenant, order.schema_version)
            .await?;
        Ok(orderd_core::explain(&order, &config))
    }

    /// A contact (`contact`) or an address the tenant's orders stored, by
    /// id; the read is audited whether found or not. Another tenant's id
    /// reads as not found.
    async fn personal(
        &self,
        contact: bool,
        ct: Option<&str>,
        body: &[u8],
        format: Format,
    ) -> Result<Vec<u8>, Failure> {
        let req: wire::PersonalRequest = wire::decode(ct, body, self.max_body())?;
        let tenant = subjects::parse_tenant(&req.tenant).map_err(WireError::from)?;
        let bad_id = |e: orderd_core::ids::IdError| WireError::Malformed(format!("id: {e}"));
        let what = if contact {
            PersonalRef::Contact(ContactId::parse(&req.id).map_err(bad_id)?)
        } else {
            PersonalRef::Location(LocationId::parse(&req.id).map_err(bad_id)?)
        };
        let by = req.by.chars().take(128).collect::<String>();
        match self.store.lookup_personal(&tenant, what, &by).await? {
            Some(Personal::Contact(id, c)) => Ok(wire::encode_as(
                &wire::ContactReply {
                    tenant: req.tenant,
                    contact_id: id.to_string(),
                    name: c.name,
                    phone: c.phone,
                },
                format,
            )),
            Some(Personal::Location(id, a)) => Ok(wire::encode_as(
                &wire::LocationReply {
                    tenant: req.tenant,
                    location_id: id.to_string(),
                    address: a.0,
                },
                format,
            )),
            None if self.store.erased_at(&tenant, what).await?.is_some() => {
                Err(Failure(ErrorBody::error(
                    "ORD-410-ERASED",
                    format!("this {} was erased on request", what.kind()),
                )))
            }
            None => Err(Failure(ErrorBody::personal_not_found(what.kind()))),
        }
    }

    async fn audit(&self, ct: Option<&str>, body: &[u8]) -> Result<wire::AuditResponse, Failure> {
        let req: wire::AuditRequest = wire::decode(ct, body, self.max_body())?;
        let tenant = subjects::parse_tenant(&req.tenant).map_err(WireError::from)?;
        let limit = req.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
        let entries = self.store.personal_audit(&tenant, limit).await?;
        Ok(wire::AuditResponse {
            tenant: req.tenant,
            entries: entries
                .into_iter()
                .map(|e| wire::AuditEntryView {
                    at: wire::rfc3339(orderd_core::Timestamp(e.at_ms)),
                    kind: e.kind,
                    id: e.id,
                    by: e.by,
                    found: e.found,
                })
                .collect(),
        })
    }

    async fn counts(&self, ct: Option<&str>, body: &[u8]) -> Result<wire::CountsResponse, Failure> {
        let req: wire::CountsRequest = wire::decode(ct, body, self.max_body())?;
        let tenant = subjects::parse_tenant(&req.tenant).map_err(WireError::from)?;
        let config = self.store.tenant_config(&tenant).await?;
        let sub_states: Vec<String> = config
            .sub_states
            .values()
            .flat_map(|c| c.sub_states.iter().cloned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let (states, subs) = self.store.counts(&tenant, &sub_states).await?;
        Ok(wire::CountsResponse {
            tenant: req.tenant,
            total: states.iter().map(|(_, n)| n).sum(),
            states: states
                .into_iter()
                .map(|(s, n)| (s.as_str().to_owned(), n))
                .collect(),
            sub_states: subs.into_iter().collect(),
        })
    }

    async fn query(&self, ct: Option<&str>, body: &[u8]) -> Result<wire::QueryResponse, Failure> {
        let req: wire::QueryRequest = wire::decode(ct, body, self.max_body())?;
        let limit = req
            .limit
            .map_or(DEFAULT_PAGE, |l| usize::try_from(l).unwrap_or(MAX_PAGE))
            .clamp(1, MAX_PAGE);
        super::query::run(&self.store, &req, limit)
            .await
            .map_err(|e| Failure(e.body()))
    }

    async fn history(
        &self,
        ct: Option<&str>,
        body: &[u8],
    ) -> Result<wire::HistoryResponse, Failure> {
        let req: wire::HistoryRequest = wire::decode(ct, body, self.max_body())?;
        let (tenant, order_id) = req.ids()?;
        // Existence is checked first, so another tenant's order reads as
        // not found rather than as an empty history.
        self.read(&tenant, order_id).await?;
        let from = req.from_seq.unwrap_or(1).max(1);
        let limit = req
            .limit
            .map_or(MAX_PAGE, |l| usize::try_from(l).unwrap_or(MAX_PAGE))
            .clamp(1, MAX_PAGE);
        let events = crate::archive::read_events(&self.js, &tenant, order_id)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "history read failed");
                Failure(ErrorBody::error(
                    "ORD-503-UNAVAILABLE",
                    "the event stream is unavailable; try again",
                ))
            })?;
        let mut page: Vec<wire::EventMessage> =
            events.into_iter().filter(|e| e.seq >= from).collect();
        let next_seq = (page.len() > limit).then(|| page[limit].seq);
        page.truncate(limit);
        Ok(wire::HistoryResponse {
            events: page,
            next_seq,
        })
    }

    /// An archived order, read back from the archive.
    async fn archived(
        &self,
        ct: Option<&str>,
        body: &[u8],
    ) -> Result<crate::archive::ArchiveRecord, Failure> {
        let req: wire::OrderRequest = wire::decode(ct, body, self.max_body())?;
        let (tenant, order_id) = req.ids()?;
        match crate::archive::read(&self.js, &tenant, order_id).await {
            Ok(Some(record)) => Ok(record),
            Ok(None) => Err(Failure(ErrorBody::error(
                "ORD-404-NOT_ARCHIVED",
                "the archive holds no such order of this tenant (not archived yet, or past the archive's age)",
            ))),
            Err(e) => {
                tracing::warn!(error = %e, "archive read failed");
                Err(Failure(ErrorBody::error(
                    "ORD-503-UNAVAILABLE",
                    "the archive is unavailable; try again",
                )))
            }
        }
    }

    /// Erases a contact or location of the tenant everywhere.
    async fn erase(&self, ct: Option<&str>, body: &[u8]) -> Result<wire::EraseReply, Failure> {
        use crate::archive::erase::{erase, EraseError};
        let req: wire::EraseRequest = wire::decode(ct, body, self.max_body())?;
        let tenant = subjects::parse_tenant(&req.tenant).map_err(WireError::from)?;
        let bad_id = |e: orderd_core::ids::IdError| WireError::Malformed(format!("id: {e}"));
        let what = match req.kind.as_str() {
            "contact" => PersonalRef::Contact(ContactId::parse(&req.id).map_err(bad_id)?),
            "location" => PersonalRef::Location(LocationId::parse(&req.id).map_err(bad_id)?),
            _ => {
                return Err(WireError::Malformed("kind: must be contact or location".into()).into())
            }
        };
        let by = req.by.chars().take(128).collect::<String>();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        match erase(
            &self.store,
            &self.js,
            &self.settings,
            &tenant,
            what,
            &by,
            now,
        )
        .await
        {
            Ok(done) => Ok(wire::EraseReply {
                tenant: req.tenant,
                kind: req.kind,
                id: req.id,
                status: match done.erased {
                    Some(crate::store::Erased::Now) => "ERASED",
                    // Unknown: another erase finished it meanwhile.
                    Some(crate::store::Erased::Before | crate::store::Erased::Unknown) => {
                        "ALREADY_ERASED"
                    }
                    None => "INCOMPLETE",
                }
                .to_owned(),
                commands_erased: done.commands_erased,
                commands_left: done.commands_left,
                commands_read: done.commands_read,
            }),
            Err(EraseError::NotFound(kind)) => Err(Failure(ErrorBody::personal_not_found(kind))),
            Err(EraseError::InUse(orders)) => {
                let mut error = ErrorBody::error(
                    "ORD-409-PERSONAL_IN_USE",
                    format!(
                        "{} order(s) not closed yet name this {}: erase it once they are closed",
                        orders.len(),
                        what.kind()
                    ),
                );
                error.details = orders
                    .iter()
                    .map(|o| wire::FieldProblemBody {
                        field: "orderId".into(),
                        code: "IN_USE".into(),
                        message: o.to_string(),
                    })
                    .collect();
                Err(Failure(error))
            }
            Err(e) => {
                tracing::warn!(error = %e, "erase failed");
                Err(Failure(ErrorBody::error(
                    "ORD-503-UNAVAILABLE",
                    "storage is unavailable; ask again (an erase can be repeated)",
                )))
            }
        }
    }

    async fn health(&self) -> Health {
        let redis = match self.store.ping().await {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        let live_orders = self
            .router
            .call(RouterMsg::LiveCount, Some(Duration::from_secs(2)))
            .await
            .ok()
            .and_then(|r| match r {
                CallResult::Success(n) => Some(n),
                _ => None,
            });
        let nats = format!("{:?}", self.client.connection_state()).to_lowercase();
        let instances = self.ownership.members().await.unwrap_or_default();
        let owners = self
            .ownership
            .owners()
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
        Health {
            ok: redis == "ok" && live_orders.is_some(),
            redis,
            nats,
            live_orders,
            version: env!("CARGO_PKG_VERSION"),
            instance: self.ownership.me().to_owned(),
            instances,
            owners,
            backlog: self.backlog().await,
        }
    }

    /// Each owned unit's backlog: what its two lanes still have to
    /// deliver or to see acknowledged (one listing per intake stream).
    async fn backlog(&self) -> std::collections::BTreeMap<String, u64> {
        let prefix = &self.settings.nats.consumer_prefix;
        let mut out = std::collections::BTreeMap::new();
        for (stream, token) in [
            (subjects::STREAM_COMMANDS, "cmd"),
            (subjects::STREAM_JOBS, "job"),
        ] {
            let Ok(lanes) = crate::bus::consumer_backlogs(&self.js, stream).await else {
                continue;
            };
            for (name, n) in lanes {
                if let Some(unit) = subjects::lane_consumer_unit(prefix, token, &name) {
                    *out.entry(unit.to_string()).or_insert(0) += n;
                }
            }
        }
        out
    }

    fn max_body(&self) -> usize {
        self.settings.runtime.max_body_bytes
    }
}

/// What the health endpoint answers.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Everything answers.
    pub ok: bool,
    /// `ok`, or the Redis error.
    pub redis: String,
    /// The NATS connection state.
    pub nats: String,
    /// Order actors in memory.
    pub live_orders: Option<usize>,
    /// orderd's version.
    pub version: &'static str,
    /// The id of the instance that answered.
    pub instance: String,
    /// The live instances' ids.
    pub instances: Vec<String>,
    /// Each tenant's owner: the instance that decides its commands; with
    /// `ownership.partitions` above 1, each partition's, keyed
    /// `<tenant>.<partition>` (`<tenant>` for partition 0).
    pub owners: std::collections::BTreeMap<String, String>,
    /// Each tenant's (or partition's, keyed as `owners`) backlog: the
    /// commands and job updates its lanes still have to deliver or to see
    /// acknowledged.
    pub backlog: std::collections::BTreeMap<String, u64>,
}
