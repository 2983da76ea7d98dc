//! The query endpoint's planner: one index drives the page (keyset
//! pagination over a sorted set), the other filters narrow it on the loaded
//! snapshots.
//!
//! The driving index is the most selective one the query names, in this
//! order: client order id, an indexed string or boolean attribute, an
//! indexed number attribute (equality or range), sub-state, state, and
//! finally every order of the tenant by creation time. A creation-time range
//! bounds the scores of an index scored by createdAt, and filters otherwise.
//!
//! Invariants: only attributes the tenant's current configuration marks as
//! indexed can be filtered on (`ORD-400-ATTRIBUTE_NOT_INDEXED`), and not
//! while their index is still being built for older orders
//! (`ORD-503-INDEX_BUILDING`, see [`crate::store::backfill`]), so a query never
//! misses an order for want of its index entry; the indexes are written
//! with the snapshots in one atomic step, and every filter is checked again
//! on the snapshot, so a page never shows an order that does not match. A
//! page may hold fewer orders than asked (follow `next`).

use orderd_core::{Order, TenantConfig, TenantId};

use crate::store::indexes::{self, Lookup};
use crate::store::{Index, Page, RedisStore, SnapshotStore, StoreError};
use crate::wire::{
    ErrorBody, OrderView, QueryFacts, QueryRequest, QueryResponse, RangeBody, WireError,
};

/// Why a query was refused.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Redis failed, or the cursor is not ours.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request is malformed.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The attribute is unknown or not indexed in the current configuration.
    #[error("attribute {0} is not indexed: only indexed attributes can be filtered on")]
    NotIndexed(String),
    /// A range on an attribute that is not a number, or a value of the
    /// wrong type.
    #[error("attribute {0}: {1}")]
    BadFilter(String, &'static str),
    /// A time that is not RFC 3339.
    #[error("{0} must be an RFC 3339 time")]
    BadTime(&'static str),
    /// The attribute's index is still being built for older orders.
    #[error("attribute {0} was indexed recently and its index is still being built for older orders; try again shortly")]
    IndexBuilding(String),
}

impl QueryError {
    /// The error as the client sees it, with its stable code.
    pub fn body(&self) -> ErrorBody {
        match self {
            QueryError::Store(StoreError::BadCursor) => ErrorBody::error(
                "ORD-400-BAD_CURSOR",
                "the cursor was not handed out by this endpoint",
            ),
            QueryError::Store(e) => {
                tracing::warn!(error = %e, "query failed");
                ErrorBody::error("ORD-503-UNAVAILABLE", "storage is unavailable; try again")
            }
            QueryError::Wire(e) => ErrorBody::from(e),
            QueryError::NotIndexed(_) => {
                ErrorBody::error("ORD-400-ATTRIBUTE_NOT_INDEXED", self.to_string())
            }
            QueryError::BadFilter(..) => ErrorBody::error("ORD-400-BAD_FILTER", self.to_string()),
            QueryError::BadTime(_) => ErrorBody::error("ORD-400-BAD_FILTER", self.to_string()),
            QueryError::IndexBuilding(_) => {
                ErrorBody::error("ORD-503-INDEX_BUILDING", self.to_string())
            }
        }
    }
}

/// The index a query pages over, with its score bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The index.
    pub index: Index,
    /// Lowest score (inclusive).
    pub min: f64,
    /// Highest score (inclusive).
    pub max: f64,
}

fn parse_time(field: &'static str, s: Option<&str>) -> Result<Option<f64>, QueryError> {
    let Some(s) = s else { return Ok(None) };
    let t = crate::wire::parse_rfc3339(s).ok_or(QueryError::BadTime(field))?;
    #[allow(clippy::cast_precision_loss)] // ms timestamps fit f64 exactly
    Ok(Some(t.0 as f64))
}

/// Chooses the driving index; refuses filters on attributes that are not
/// indexed.
pub fn plan(
    tenant: &TenantId,
    req: &QueryRequest,
    config: &TenantConfig,
) -> Result<Plan, QueryError> {
    let from = parse_time("createdFrom", req.created_from.as_deref())?.unwrap_or(f64::MIN);
    let to = parse_time("createdTo", req.created_to.as_deref())?.unwrap_or(f64::MAX);
    let by_created = |index: Index| Plan {
        index,
        min: from,
        max: to,
    };
    let mut string_eq = None;
    let mut number = None;
    for (name, value) in &req.custom_attributes {
        match indexes::lookup(config, name) {
            None => return Err(QueryError::NotIndexed(name.clone())),
            Some(Lookup::Equality) => {
                if !(value.is_string() || value.is_boolean()) {
                    return Err(QueryError::BadFilter(
                        name.clone(),
                        "expected a string or a boolean",
                    ));
                }
                string_eq.get_or_insert_with(|| Index::attribute(tenant, name, value));
            }
            Some(Lookup::Numeric) => {
                let n = value
                    .as_f64()
                    .ok_or(QueryError::BadFilter(name.clone(), "expected a number"))?;
                number.get_or_insert((Index::number(tenant, name), n, n));
            }
        }
    }
    for (name, RangeBody { min, max }) in &req.custom_attribute_ranges {
        match indexes::lookup(config, name) {
            None => return Err(QueryError::NotIndexed(name.clone())),
            Some(Lookup::Equality) => {
                return Err(QueryError::BadFilter(
                    name.clone(),
                    "ranges apply to number attributes only",
                ))
            }
            Some(Lookup::Numeric) => {
                number.get_or_insert((
                    Index::number(tenant, name),
                    min.unwrap_or(f64::MIN),
                    max.unwrap_or(f64::MAX),
                ));
            }
        }
    }
    Ok(if let Some(coid) = &req.client_order_id {
        by_created(Index::client_order_id(tenant, coid))
    } else if let Some(index) = string_eq {
        by_created(index)
    } else if let Some((index, min, max)) = number {
        Plan { index, min, max }
    } else if let Some(sub) = &req.sub_state {
        by_created(Index::sub_state(tenant, sub))
    } else if let Some(state) = req.state {
        by_created(Index::state(tenant, state))
    } else {
        by_created(Index::created(tenant))
    })
}

/// One page of a plan (see [`RedisStore::page`] for the cursor).
pub async fn page(
    store: &RedisStore,
    plan: &Plan,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Page, StoreError> {
    store
        .page(&plan.index, plan.min, plan.max, cursor, limit)
        .await
}

fn matches(order: &Order, tenant: &TenantId, req: &QueryRequest) -> bool {
    &order.tenant == tenant
        && req.admits(&QueryFacts {
            state: order.state,
            sub_state: order.sub_state.as_deref(),
            client_order_id: &order.client_order_id,
            created_at: order.created_at,
            custom: &order.custom,
        })
}

/// Runs a query: plan, one page of the driving index, the snapshots, the
/// other filters.
pub async fn run(
    store: &RedisStore,
    req: &QueryRequest,
    limit: usize,
) -> Result<QueryResponse, QueryError> {
    let tenant = req.tenant()?;
    let config = store.tenant_config(&tenant).await?;
    let plan = plan(&tenant, req, &config)?;
    let filtered: Vec<&String> = req
        .custom_attributes
        .keys()
        .chain(req.custom_attribute_ranges.keys())
        .collect();
    if !filtered.is_empty() {
        let building = store.backfill_pending(&tenant).await?;
        if let Some(name) = filtered.into_iter().find(|n| building.contains(n)) {
            return Err(QueryError::IndexBuilding(name.clone()));
        }
    }
    let page = page(store, &plan, req.after.as_deref(), limit).await?;
    let snapshots = store.load_many(&page.ids).await?;
    let orders = snapshots
        .iter()
        .map(|s| &s.order)
        .filter(|o| matches(o, &tenant, req))
        .map(OrderView::from)
        .collect();
    Ok(QueryResponse {
        orders,
        next: page.next,
    })
}
