//! Command bodies as clients and dispatch send them (JSON camelCase, or
//! MessagePack maps with the same names), and their mapping onto core
//! [`Command`]s. Every body refuses unknown fields.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::num::NonZeroU32;

use orderd_core::command::{
    Address, Contact, ContactInput, CreateOrder, DetailsPatch, JobUpdate, LocationInput, StopInput,
    SummaryPatch, UpdateOrder, WorkOrderSpec,
};
use orderd_core::ids::{ContactId, LocationId};
use orderd_core::model::{Client, ExecutionFlow, Item, Money, OrderSummary};
use orderd_core::{Command, WorkOrderId};
use serde::de::value::{MapAccessDeserializer, StringDeserializer};
use serde::de::{DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::WireError;

/// The body of `cmd.create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOrderBody {
    /// Client participant id.
    pub client_id: String,
    /// Client name (a business).
    pub client_name: String,
    /// The client's own reference (not unique).
    pub client_order_id: String,
    /// Default true.
    #[serde(default = "yes")]
    pub ready_to_process: bool,
    /// Default SEQUENTIAL.
    #[serde(default, deserialize_with = "by_name")]
    pub execution_flow: ExecutionFlowBody,
    /// Contact, location and return location, each in full or by id.
    #[serde(default, deserialize_with = "map_or_null")]
    pub drop_details: Option<DropDetailsBody>,
    /// Invoice, description, totals.
    #[serde(default, deserialize_with = "map_or_null")]
    pub order_summary: Option<OrderSummaryBody>,
    /// The work orders, in order.
    #[serde(deserialize_with = "maps")]
    pub work_orders: Vec<WorkOrderBody>,
    /// Tenant-defined attributes.
    #[serde(default)]
    pub custom_attributes: BTreeMap<String, serde_json::Value>,
}

fn yes() -> bool {
    true
}

/// How the work orders run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionFlowBody {
    /// One at a time (default).
    #[default]
    Sequential,
    /// All at once; each completes on its own.
    StartTogether,
    /// All at once, succeeding or failing as one group.
    CompleteTogether,
}

impl From<ExecutionFlowBody> for ExecutionFlow {
    fn from(f: ExecutionFlowBody) -> Self {
        match f {
            ExecutionFlowBody::Sequential => ExecutionFlow::Sequential,
            ExecutionFlowBody::StartTogether => ExecutionFlow::StartTogether,
            ExecutionFlowBody::CompleteTogether => ExecutionFlow::CompleteTogether,
        }
    }
}

impl From<ExecutionFlow> for ExecutionFlowBody {
    fn from(f: ExecutionFlow) -> Self {
        match f {
            ExecutionFlow::Sequential => ExecutionFlowBody::Sequential,
            ExecutionFlow::StartTogether => ExecutionFlowBody::StartTogether,
            ExecutionFlow::CompleteTogether => ExecutionFlowBody::CompleteTogether,
        }
    }
}

/// Drop details of a new order. Each of contact, location and return location
/// is given in full or by id, never both.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DropDetailsBody {
    /// The consignee's contact (personal data).
    #[serde(default, deserialize_with = "map_or_null")]
    pub contact: Option<ContactBody>,
    /// A contact already in the contact store.
    #[serde(default)]
    pub contact_id: Option<String>,
    /// The drop address: any JSON object (personal data).
    #[serde(default)]
    pub location: Option<serde_json::Value>,
    /// A location already in the location store.
    #[serde(default)]
    pub location_id: Option<String>,
    /// Where returns go: any JSON object (personal data).
    #[serde(default)]
    pub return_location: Option<serde_json::Value>,
    /// A return location already in the location store.
    #[serde(default)]
    pub return_location_id: Option<String>,
}

/// Drop details of an update: contact and location only.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateDropDetailsBody {
    /// A new contact (personal data).
    #[serde(default, deserialize_with = "map_or_null")]
    pub contact: Option<ContactBody>,
    /// A new contact by id.
    #[serde(default)]
    pub contact_id: Option<String>,
    /// A new drop address (personal data).
    #[serde(default)]
    pub location: Option<serde_json::Value>,
    /// A new location by id.
    #[serde(default)]
    pub location_id: Option<String>,
}

/// A contact: personal data. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContactBody {
    /// The person's name.
    pub name: String,
    /// One phone number, as a string.
    pub phone: String,
}

impl std::fmt::Debug for ContactBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContactBody(<redacted>)")
    }
}

/// The order summary of a new order; in an update, only the given fields change.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderSummaryBody {
    /// 3–64 characters of `[a-zA-Z0-9:_-]`.
    #[serde(default)]
    pub invoice_number: Option<String>,
    /// 1–256 characters: a letter, then letters, digits, commas and spaces.
    #[serde(default)]
    pub order_description: Option<String>,
    /// At least 0.
    #[serde(default)]
    pub total_weight: Option<f64>,
    /// 0 to 1000.
    #[serde(default)]
    pub total_items: Option<u32>,
    /// The order's total cost.
    #[serde(default, deserialize_with = "map_or_null")]
    pub total_order_cost: Option<MoneyBody>,
}

/// An amount of money.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MoneyBody {
    /// The amount.
    pub amount: f64,
    /// ISO 4217 code.
    pub currency: String,
}

impl From<MoneyBody> for Money {
    fn from(m: MoneyBody) -> Self {
        Money {
            amount: m.amount,
            currency: m.currency,
        }
    }
}

impl From<&Money> for MoneyBody {
    fn from(m: &Money) -> Self {
        MoneyBody {
            amount: m.amount,
            currency: m.currency.clone(),
        }
    }
}

/// One work order of a new order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkOrderBody {
    /// Its type (DELIVERY, PICKUP, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// The items it moves or works on.
    #[serde(default)]
    pub items: Vec<ItemBody>,
    /// Free text for the crew (it travels in events: no personal data).
    #[serde(default)]
    pub instructions: Option<String>,
    /// Where it picks up: a contact and a location, each in full or by id.
    #[serde(default, deserialize_with = "map_or_null")]
    pub pickup: Option<StopBody>,
    /// Where it drops (else the order's drop details).
    #[serde(default, deserialize_with = "map_or_null")]
    pub drop: Option<StopBody>,
}

/// One item of a work order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ItemBody {
    /// The client's id of the item.
    pub id: String,
    /// What it is.
    pub description: String,
    /// How many (1 to 1000).
    pub quantity: u32,
    /// Weight of one.
    #[serde(default)]
    pub weight: Option<f64>,
}

impl From<ItemBody> for Item {
    fn from(i: ItemBody) -> Self {
        Item {
            id: i.id,
            description: i.description,
            quantity: i.quantity,
            weight: i.weight,
        }
    }
}

impl From<&Item> for ItemBody {
    fn from(i: &Item) -> Self {
        ItemBody {
            id: i.id.clone(),
            description: i.description.clone(),
            quantity: i.quantity,
            weight: i.weight,
        }
    }
}

/// A work order's pickup or drop: each of contact and location in full
/// (personal data, stored apart under a new id) or by id, never both. The
/// same shape as an update's drop details.
pub type StopBody = UpdateDropDetailsBody;

impl UpdateDropDetailsBody {
    /// The contact and location it gives, checked (`path` names it in
    /// errors).
    fn into_input(self, path: &str) -> Result<StopInput, WireError> {
        Ok(StopInput {
            contact: contact_input(self.contact, self.contact_id, path)?,
            location: location_input(self.location, self.location_id, path, "location")?,
        })
    }
}

impl WorkOrderBody {
    fn into_spec(self, i: usize) -> Result<WorkOrderSpec, WireError> {
        let stop = |s: Option<StopBody>, name: &str| {
            s.map_or(Ok(StopInput::default()), |s| {
                s.into_input(&format!("workOrders[{i}].{name}"))
            })
        };
        Ok(WorkOrderSpec {
            kind: self.kind,
            items: self.items.into_iter().map(Item::from).collect(),
            instructions: self.instructions,
            pickup: stop(self.pickup, "pickup")?,
            drop: stop(self.drop, "drop")?,
        })
    }
}

/// Declares a body that gives a work order's details (items, instructions,
/// pickup, drop) beside its own fields: the update of one work order and a
/// return to add read them alike, each field strict, with no buffering of
/// the body (serde's `flatten` would buffer it whole, and with it any
/// length a hostile body declares).
macro_rules! body_with_details {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$field_meta:meta])* pub $field:ident: $ty:ty,)*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[$field_meta])* pub $field: $ty,)*
            /// The items, replaced whole (`[]` clears them).
            #[serde(
                default,
                deserialize_with = "maps_or_null",
                skip_serializing_if = "Option::is_none"
            )]
            pub items: Option<Vec<ItemBody>>,
            /// Free text for the crew (no personal data: it travels in
            /// events and job commands).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub instructions: Option<String>,
            /// Where it picks up: a contact or location given replaces that
            /// one, the other stays.
            #[serde(
                default,
                deserialize_with = "map_or_null",
                skip_serializing_if = "Option::is_none"
            )]
            pub pickup: Option<StopBody>,
            /// Where it drops, as for pickup.
            #[serde(
                default,
                deserialize_with = "map_or_null",
                skip_serializing_if = "Option::is_none"
            )]
            pub drop: Option<StopBody>,
        }

        impl $name {
            /// The details as the core's patch (`at` names them in errors).
            fn details_patch(&mut self, at: &str) -> Result<DetailsPatch, WireError> {
                let stop = |s: Option<StopBody>, name: &str| {
                    let path = if at.is_empty() {
                        name.to_owned()
                    } else {
                        format!("{at}.{name}")
                    };
                    s.map_or(Ok(StopInput::default()), |s| s.into_input(&path))
                };
                Ok(DetailsPatch {
                    items: self
                        .items
                        .take()
                        .map(|items| items.into_iter().map(Item::from).collect()),
                    instructions: self.instructions.take(),
                    pickup: stop(self.pickup.take(), "pickup")?,
                    drop: stop(self.drop.take(), "drop")?,
                })
            }
        }
    };
}

body_with_details! {
    /// The body of `update`: only what may change after creation. One of
    /// three shapes: the order's own attributes; one work order's details
    /// (`workOrderId` with items, instructions, pickup and/or drop); or a
    /// return to add (`addReturn`). `expectedSeq` goes with any of them.
    #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct UpdateOrderBody {
        /// A new contact and/or location.
        #[serde(default, deserialize_with = "map_or_null")]
        pub drop_details: Option<UpdateDropDetailsBody>,
        /// Summary fields to change; absent (or null) fields stay as they are.
        #[serde(default, deserialize_with = "map_or_null")]
        pub order_summary: Option<OrderSummaryBody>,
        /// Custom attributes to set.
        #[serde(default)]
        pub custom_attributes: BTreeMap<String, serde_json::Value>,
        /// Only `true` changes anything (false→true).
        #[serde(default)]
        pub ready_to_process: Option<bool>,
        /// The one work order whose own details change (before it is sent
        /// to dispatch): with items, instructions, pickup and/or drop.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub work_order_id: Option<NonZeroU32>,
        /// A return to add for a completed work order (alone in the body).
        #[serde(
            default,
            deserialize_with = "map_or_null",
            skip_serializing_if = "Option::is_none"
        )]
        pub add_return: Option<AddReturnBody>,
        /// The order's sequence number the sender expects: refused with
        /// `ORD-409-SEQ_MISMATCH` when the order has moved on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub expected_seq: Option<u64>,
    }
}

body_with_details! {
    /// A return the client adds to an order: the goods of a completed work
    /// order go back. Each detail given replaces its default: the returned
    /// work order's items, picked up where it dropped, taken to the order's
    /// return location (else where it picked up).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct AddReturnBody {
        /// The completed forward work order whose goods go back.
        pub returns: NonZeroU32,
    }
}

/// The body of `hold` and `cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReasonBody {
    /// Why, for the record.
    #[serde(default)]
    pub reason: Option<String>,
    /// The one work order to hold or cancel (the order and its other work
    /// orders go on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_order_id: Option<NonZeroU32>,
    /// The order's sequence number the sender expects: refused with
    /// `ORD-409-SEQ_MISMATCH` when the order has moved on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_seq: Option<u64>,
}

/// The body of `substate`: `subState` is required; null clears it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubStateBody {
    /// The sub-state to move to, or null.
    #[serde(deserialize_with = "present_or_null")]
    pub sub_state: Option<String>,
    /// The order's sequence number the sender expects: refused with
    /// `ORD-409-SEQ_MISMATCH` when the order has moved on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_seq: Option<u64>,
}

/// The body of `ready`, `resume` and `close`: empty, `{}`, or only
/// `expectedSeq` (and, for `resume`, `workOrderId`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmptyBody {
    /// `resume` only: the one work order to resume (held on its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_order_id: Option<NonZeroU32>,
    /// The order's sequence number the sender expects: refused with
    /// `ORD-409-SEQ_MISMATCH` when the order has moved on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_seq: Option<u64>,
}

/// The body of a job update from dispatch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobUpdateBody {
    /// Dispatch's id of the job.
    #[serde(default)]
    pub job_id: Option<String>,
    /// The attempt the job belongs to, from 1.
    pub attempt: NonZeroU32,
    /// Why it failed (failed, cancel_failed).
    #[serde(default)]
    pub reason_code: Option<String>,
}

/// A unit enum by its name only. rmp-serde would also read a variant's index
/// (`executionFlow: 2`), which JSON refuses: both encodings must accept the
/// same bodies.
fn by_name<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<T, D::Error> {
    let name = String::deserialize(d)?;
    T::deserialize(StringDeserializer::<D::Error>::new(name))
}

/// [`by_name`] for an optional enum (null or absent is `None`).
pub(crate) fn by_name_or_null<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|name| T::deserialize(StringDeserializer::<D::Error>::new(name)))
        .transpose()
}

/// Reads a nested body from a map only. serde would also read a struct from a
/// positional array (`"orderSummary": ["INV-1", …]`), which ties clients to
/// the field order and skips `deny_unknown_fields`: bodies are maps, at every
/// level.
struct MapOnly<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for MapOnly<T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map))
    }
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for MapOnly<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_map(self)
    }
}

/// An optional nested body: a map, or null.
fn map_or_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    struct OrNull<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for OrNull<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object or null")
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
            MapOnly(PhantomData).deserialize(d).map(Some)
        }
    }

    d.deserialize_option(OrNull(PhantomData))
}

/// A list of nested bodies, each a map.
fn maps<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    struct Maps<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for Maps<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array of objects")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut all = Vec::new();
            while let Some(item) = seq.next_element_seed(MapOnly(PhantomData))? {
                all.push(item);
            }
            Ok(all)
        }
    }

    d.deserialize_seq(Maps(PhantomData))
}

/// An optional list of nested bodies, each a map; null is `None`.
fn maps_or_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Vec<T>>, D::Error> {
    struct OrNull<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for OrNull<T> {
        type Value = Option<Vec<T>>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array of objects or null")
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            maps(d).map(Some)
        }
    }

    d.deserialize_option(OrNull(PhantomData))
}

/// A required field that may be null (serde treats a plain `Option` as optional).
fn present_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

fn malformed(message: impl Into<String>) -> WireError {
    WireError::Malformed(message.into())
}

fn contact_input(
    contact: Option<ContactBody>,
    contact_id: Option<String>,
    path: &str,
) -> Result<Option<ContactInput>, WireError> {
    match (contact, contact_id) {
        (Some(_), Some(_)) => Err(malformed(format!(
            "{path}: give contact or contactId, not both"
        ))),
        (Some(c), None) => Ok(Some(ContactInput::Details(Contact {
            name: c.name,
            phone: c.phone,
        }))),
        (None, Some(id)) => ContactId::parse(&id)
            .map(|id| Some(ContactInput::Id(id)))
            .map_err(|e| malformed(format!("{path}.contactId: {e}"))),
        (None, None) => Ok(None),
    }
}

fn location_input(
    location: Option<serde_json::Value>,
    location_id: Option<String>,
    path: &str,
    name: &str,
) -> Result<Option<LocationInput>, WireError> {
    match (location, location_id) {
        (Some(_), Some(_)) => Err(malformed(format!(
            "{path}: give {name} or {name}Id, not both"
        ))),
        (Some(address @ serde_json::Value::Object(_)), None) => {
            Ok(Some(LocationInput::Address(Address(address))))
        }
        (Some(_), None) => Err(malformed(format!(
            "{path}.{name}: an address must be an object"
        ))),
        (None, Some(id)) => LocationId::parse(&id)
            .map(|id| Some(LocationInput::Id(id)))
            .map_err(|e| malformed(format!("{path}.{name}Id: {e}"))),
        (None, None) => Ok(None),
    }
}

impl TryFrom<CreateOrderBody> for CreateOrder {
    type Error = WireError;

    fn try_from(b: CreateOrderBody) -> Result<Self, WireError> {
        let drop = b.drop_details.unwrap_or_default();
        let path = "dropDetails";
        Ok(CreateOrder {
            client: Client {
                id: b.client_id,
                name: b.client_name,
            },
            client_order_id: b.client_order_id,
            ready_to_process: b.ready_to_process,
            contact: contact_input(drop.contact, drop.contact_id, path)?,
            location: location_input(drop.location, drop.location_id, path, "location")?,
            return_location: location_input(
                drop.return_location,
                drop.return_location_id,
                path,
                "returnLocation",
            )?,
            execution_flow: b.execution_flow.into(),
            summary: b.order_summary.map(OrderSummary::from).unwrap_or_default(),
            work_orders: b
                .work_orders
                .into_iter()
                .enumerate()
                .map(|(i, w)| w.into_spec(i))
                .collect::<Result<_, _>>()?,
            custom: b.custom_attributes,
        })
    }
}

impl From<OrderSummaryBody> for OrderSummary {
    fn from(s: OrderSummaryBody) -> Self {
        OrderSummary {
            invoice_number: s.invoice_number,
            order_description: s.order_description,
            total_weight: s.total_weight,
            total_items: s.total_items,
            total_order_cost: s.total_order_cost.map(Money::from),
        }
    }
}

impl From<OrderSummaryBody> for SummaryPatch {
    fn from(s: OrderSummaryBody) -> Self {
        SummaryPatch {
            invoice_number: s.invoice_number,
            order_description: s.order_description,
            total_weight: s.total_weight,
            total_items: s.total_items,
            total_order_cost: s.total_order_cost.map(Money::from),
        }
    }
}

impl UpdateOrderBody {
    /// Whether it changes the order's own attributes.
    fn changes_the_order(&self) -> bool {
        self.drop_details.is_some()
            || self.order_summary.is_some()
            || !self.custom_attributes.is_empty()
            || self.ready_to_process.is_some()
    }

    /// Whether it gives a work order's details.
    fn gives_details(&self) -> bool {
        self.items.is_some()
            || self.instructions.is_some()
            || self.pickup.is_some()
            || self.drop.is_some()
    }

    /// The core command of the body's shape: the order's update, one work
    /// order's, or a return to add. Shapes never mix.
    pub(crate) fn into_command(mut self) -> Result<Command, WireError> {
        if let Some(mut r) = self.add_return.take() {
            if self.changes_the_order() || self.gives_details() || self.work_order_id.is_some() {
                return Err(malformed(
                    "addReturn: an update that adds a return carries nothing else (but expectedSeq)",
                ));
            }
            return Ok(Command::AddReturn {
                returns: WorkOrderId(r.returns.get()),
                details: Box::new(r.details_patch("addReturn")?),
            });
        }
        if let Some(w) = self.work_order_id {
            if self.changes_the_order() {
                return Err(malformed(
                    "workOrderId: an update of one work order changes only its items, instructions, pickup and drop",
                ));
            }
            return Ok(Command::UpdateWorkOrder {
                work_order: WorkOrderId(w.get()),
                details: Box::new(self.details_patch("")?),
            });
        }
        if self.gives_details() {
            return Err(malformed(
                "items, instructions, pickup and drop belong to one work order: name it with workOrderId",
            ));
        }
        let drop = self
            .drop_details
            .unwrap_or_default()
            .into_input("dropDetails")?;
        Ok(Command::Update(Box::new(UpdateOrder {
            contact: drop.contact,
            location: drop.location,
            summary: self
                .order_summary
                .map(SummaryPatch::from)
                .unwrap_or_default(),
            custom: self.custom_attributes,
            ready_to_process: self.ready_to_process,
        })))
    }
}

/// Builds the core command of a job update.
pub(crate) fn job_update(
    body: JobUpdateBody,
    work_order: orderd_core::WorkOrderId,
    status: orderd_core::model::JobStatus,
) -> Command {
    Command::Job(JobUpdate {
        work_order,
        attempt: body.attempt.get(),
        status,
        job_id: body.job_id,
        reason_code: body.reason_code,
    })
}
