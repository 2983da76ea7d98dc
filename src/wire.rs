//! The wire contract's payloads: what clients and dispatch send (command
//! bodies), what orderd sends back (outcomes, event messages, job commands)
//! and what the read endpoints take and return. Wire types are separate from
//! the core's domain types, so either can change without breaking the other.
//!
//! Invariants:
//! - bodies are JSON (camelCase) by default, MessagePack maps with the same
//!   names when `Content-Type: application/msgpack`; every body is an object
//!   (a map), never an array or a scalar;
//! - the size limit is checked before a byte is parsed;
//! - command bodies refuse unknown fields;
//! - no error text carries a value from a body (personal data): decoder
//!   messages are scrubbed down to field names, value kinds and positions;
//! - nothing orderd sends carries personal data: contacts and addresses travel
//!   only as their ids.

mod command;
mod config;
mod error;
mod message;
mod view;

use std::io::Cursor;

use orderd_core::{Command, OrderId, TenantId, WorkOrderId};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

pub use command::{
    AddReturnBody, ContactBody, CreateOrderBody, DropDetailsBody, EmptyBody, ExecutionFlowBody,
    ItemBody, JobUpdateBody, MoneyBody, OrderSummaryBody, ReasonBody, StopBody, SubStateBody,
    UpdateDropDetailsBody, UpdateOrderBody, WorkOrderBody,
};
pub use config::{
    AttributesRequest, ConfigDraft, ConfigReply, ConfigRequest, DryRunReply, DryRunRequest,
    OrderDifference, OrderEnd, PluginReply, PluginRequest, StepDifference, UnreplayableOrder,
    ValidateReply,
};
pub use error::{severity_name, ErrorBody, FieldProblemBody, WireError, ORDER_ARCHIVED};
pub use message::{close_reason, parse_rfc3339, rfc3339, DispatchMessage, EventMessage, Outcome};
pub use view::{
    AuditEntryView, AuditRequest, AuditResponse, CancellationView, ContactReply, CountsRequest,
    CountsResponse, DropDetailsView, EraseReply, EraseRequest, HistoryRequest, HistoryResponse,
    LocationReply, MilestoneView, OrderRequest, OrderSummaryView, OrderView, OutcomeRequest,
    PersonalRequest, QueryFacts, QueryRequest, QueryResponse, RangeBody, StopView, WorkOrderView,
};

use crate::headers;
use crate::subjects::{Inbound, Verb};

/// The default largest body orderd parses: 256 KiB.
pub const DEFAULT_MAX_BODY: usize = 256 * 1024;

/// How deep MessagePack bodies may nest (JSON's parser stops at 128 too).
const MAX_DEPTH: usize = 128;

/// The encoding of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// `application/json`, the default.
    #[default]
    Json,
    /// `application/msgpack`, maps with the JSON names.
    MsgPack,
}

impl Format {
    /// The format a `Content-Type` header names: none (or empty) means JSON;
    /// parameters (`; charset=utf-8`) and case are ignored.
    pub fn from_content_type(content_type: Option<&str>) -> Result<Format, WireError> {
        let Some(value) = content_type else {
            return Ok(Format::Json);
        };
        let media = value.split(';').next().unwrap_or_default().trim();
        if media.is_empty() || media.eq_ignore_ascii_case(headers::JSON) {
            Ok(Format::Json)
        } else if media.eq_ignore_ascii_case(headers::MSGPACK)
            || media.eq_ignore_ascii_case("application/x-msgpack")
        {
            Ok(Format::MsgPack)
        } else {
            Err(WireError::UnsupportedContentType(error::printable_prefix(
                value,
            )))
        }
    }

    /// The `Content-Type` header value of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => headers::JSON,
            Format::MsgPack => headers::MSGPACK,
        }
    }
}

/// Encodes a value as JSON, or as MessagePack with named fields (maps).
/// orderd's wire types always encode; a value that cannot (a map with
/// non-string keys) gives an empty body.
pub fn encode<T: Serialize>(value: &T, msgpack: bool) -> Vec<u8> {
    let encoded = if msgpack {
        rmp_serde::to_vec_named(value).map_err(|e| e.to_string())
    } else {
        serde_json::to_vec(value).map_err(|e| e.to_string())
    };
    debug_assert!(encoded.is_ok(), "wire types always encode: {encoded:?}");
    encoded.unwrap_or_default()
}

/// Encodes a value in the given format (see [`encode`]).
pub fn encode_as<T: Serialize>(value: &T, format: Format) -> Vec<u8> {
    encode(value, format == Format::MsgPack)
}

/// Decodes a body that must be an object: checks the size first, then the
/// content type, then parses. An empty body reads as `{}`.
pub fn decode<T: DeserializeOwned>(
    content_type: Option<&str>,
    body: &[u8],
    max_body: usize,
) -> Result<T, WireError> {
    if body.len() > max_body {
        return Err(WireError::TooLarge {
            size: body.len(),
            max: max_body,
        });
    }
    let format = Format::from_content_type(content_type)?;
    let blank = match format {
        Format::Json => body.iter().all(u8::is_ascii_whitespace),
        Format::MsgPack => body.is_empty(),
    };
    if blank {
        return from_json(b"{}");
    }
    match format {
        Format::Json => {
            let first = body.iter().find(|b| !b.is_ascii_whitespace());
            if first != Some(&b'{') {
                return Err(WireError::Malformed(
                    "the body must be a JSON object".to_owned(),
                ));
            }
            from_json(body)
        }
        Format::MsgPack => {
            // fixmap, map16, map32: a body must be a map, never a positional array.
            if !matches!(body[0], 0x80..=0x8f | 0xde | 0xdf) {
                return Err(WireError::Malformed(
                    "the body must be a MessagePack map".to_owned(),
                ));
            }
            from_msgpack(body)
        }
    }
}

fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        let position = format!(" at line {} column {}", e.line(), e.column());
        let message = text.strip_suffix(&position).unwrap_or(&text);
        let mut scrubbed = error::scrub(message);
        if e.line() > 0 {
            scrubbed.push_str(&position);
        }
        WireError::Malformed(scrubbed)
    })
}

fn from_msgpack<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    let mut de = rmp_serde::Deserializer::new(Cursor::new(body));
    de.set_max_depth(MAX_DEPTH);
    let value =
        T::deserialize(&mut de).map_err(|e| WireError::Malformed(error::scrub(&e.to_string())))?;
    let read = de.position();
    if read != body.len() as u64 {
        return Err(WireError::Malformed(format!(
            "{} trailing bytes after the MessagePack map",
            body.len() as u64 - read
        )));
    }
    Ok(value)
}

/// Decodes the body of an inbound command into the core command its subject
/// names. The size is checked before parsing.
pub fn decode_command(
    inbound: &Inbound,
    content_type: Option<&str>,
    body: &[u8],
    max_body: usize,
) -> Result<Command, WireError> {
    decode_conditional_command(inbound, content_type, body, max_body).map(|(c, _)| c)
}

/// [`decode_command`], with the order sequence number the command expects
/// (`expectedSeq` in the body of an order command; never for a create or a
/// job update).
pub fn decode_conditional_command(
    inbound: &Inbound,
    content_type: Option<&str>,
    body: &[u8],
    max_body: usize,
) -> Result<(Command, Option<u64>), WireError> {
    let ct = content_type;
    Ok(match inbound {
        Inbound::Create { .. } => {
            let b: CreateOrderBody = decode(ct, body, max_body)?;
            (Command::Create(Box::new(b.try_into()?)), None)
        }
        Inbound::Command { verb, .. } => match verb {
            Verb::Update => {
                let b: UpdateOrderBody = decode(ct, body, max_body)?;
                let expected = b.expected_seq;
                (b.into_command()?, expected)
            }
            Verb::Ready | Verb::Resume | Verb::Close => {
                let b: EmptyBody = decode(ct, body, max_body)?;
                let command = match (verb, b.work_order_id) {
                    (Verb::Ready, None) => Command::MarkReady,
                    (Verb::Resume, None) => Command::Resume,
                    (Verb::Resume, Some(w)) => Command::ResumeWorkOrder {
                        work_order: WorkOrderId(w.get()),
                    },
                    (Verb::Close, None) => Command::Close,
                    _ => return Err(WireError::Malformed(
                        "workOrderId: only update, hold, resume and cancel act on one work order"
                            .to_owned(),
                    )),
                };
                (command, b.expected_seq)
            }
            Verb::Hold | Verb::Cancel => {
                let b: ReasonBody = decode(ct, body, max_body)?;
                let command = match (verb, b.work_order_id) {
                    (Verb::Hold, None) => Command::Hold { reason: b.reason },
                    (Verb::Hold, Some(w)) => Command::HoldWorkOrder {
                        work_order: WorkOrderId(w.get()),
                        reason: b.reason,
                    },
                    (_, Some(w)) => Command::CancelWorkOrder {
                        work_order: WorkOrderId(w.get()),
                        reason: b.reason,
                    },
                    (_, None) => Command::Cancel { reason: b.reason },
                };
                (command, b.expected_seq)
            }
            Verb::SubState => {
                let b: SubStateBody = decode(ct, body, max_body)?;
                (Command::SetSubState { to: b.sub_state }, b.expected_seq)
            }
        },
        Inbound::JobUpdate {
            work_order, status, ..
        } => {
            let b: JobUpdateBody = decode(ct, body, max_body)?;
            (command::job_update(b, *work_order, *status), None)
        }
    })
}

/// The fixed namespace of order ids derived from create idempotency keys.
/// Changing it would give every redelivered create a new order: never change it.
pub const ORDER_ID_NAMESPACE: Uuid = Uuid::from_u128(0xd06e9e83_5d26_4d6d_bef4_e691532c1a3d);

/// The order id of a create: a UUID v5 over `<tenant>\n<idempotency key>`, so a
/// redelivered or repeated create maps to the same order for the order's whole
/// life, and two tenants using the same key get different orders.
pub fn order_id_for_create(tenant: &TenantId, idempotency_key: &str) -> OrderId {
    let name = format!("{tenant}\n{idempotency_key}");
    OrderId(Uuid::new_v5(&ORDER_ID_NAMESPACE, name.as_bytes()))
}

#[cfg(test)]
mod tests;
