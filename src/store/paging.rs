//! The index reads: keyset pages over one index for the query endpoint and
//! the backfill, a tenant's most recent orders for the dry run, and a
//! tenant's orders waiting in a state when an instance takes the tenant.
//!
//! An index is named by an [`Index`], made from the tenant and what it
//! indexes, so no caller handles a key. Every index is a sorted set of order
//! ids, written only by the save script (see [`super::indexes`] for which
//! an order is in).

use orderd_core::{OrderId, OrderState, TenantId};

use super::{keys, RedisStore, StoreError};

/// One index of a tenant, to page over (see [`RedisStore::page`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index(String);

impl Index {
    /// Every order of the tenant, by createdAt.
    pub fn created(tenant: &TenantId) -> Self {
        Self(keys::created_index(tenant))
    }

    /// The tenant's orders in `state`, by createdAt.
    pub fn state(tenant: &TenantId, state: OrderState) -> Self {
        Self(keys::state_index(tenant, state))
    }

    /// The tenant's orders with this client order id, by createdAt.
    pub fn client_order_id(tenant: &TenantId, client_order_id: &str) -> Self {
        Self(keys::client_order_index(tenant, client_order_id))
    }

    /// The tenant's orders in this sub-state, by createdAt.
    pub fn sub_state(tenant: &TenantId, sub_state: &str) -> Self {
        Self(keys::sub_state_index(tenant, sub_state))
    }

    /// The tenant's orders whose string or boolean attribute `name` has
    /// `value`, by createdAt (the attribute must be indexed for equality).
    pub fn attribute(tenant: &TenantId, name: &str, value: &serde_json::Value) -> Self {
        Self(keys::attribute_index(tenant, name, value))
    }

    /// The tenant's orders with the number attribute `name`, scored by its
    /// value (the attribute must be indexed as a number).
    pub fn number(tenant: &TenantId, name: &str) -> Self {
        Self(keys::number_index(tenant, name))
    }
}

/// A page of order ids, oldest first, and the cursor of the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The order ids.
    pub ids: Vec<OrderId>,
    /// Pass it back to get the next page; `None` on the last page.
    pub next: Option<String>,
}

impl RedisStore {
    /// How many of a tenant's orders are in each state (every state, zeros
    /// included), and in each of `sub_states`: one `ZCARD` per index, in
    /// one round trip. The indexes are written in the same atomic step as
    /// the snapshots, so the counts are as exact as a query.
    pub async fn counts(
        &self,
        tenant: &TenantId,
        sub_states: &[String],
    ) -> Result<(Vec<(OrderState, u64)>, Vec<(String, u64)>), StoreError> {
        let mut pipe = redis::pipe();
        for state in OrderState::ALL {
            pipe.zcard(keys::state_index(tenant, state));
        }
        for sub in sub_states {
            pipe.zcard(keys::sub_state_index(tenant, sub));
        }
        let mut conn = self.conn();
        let counts: Vec<u64> = pipe.query_async(&mut conn).await?;
        let (states, subs) = counts.split_at(OrderState::ALL.len().min(counts.len()));
        Ok((
            OrderState::ALL
                .into_iter()
                .zip(states.iter().copied())
                .collect(),
            sub_states
                .iter()
                .cloned()
                .zip(subs.iter().copied())
                .collect(),
        ))
    }

    /// A page of a tenant's orders in `state`, oldest first.
    pub async fn orders_in_state(
        &self,
        tenant: &TenantId,
        state: OrderState,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.page(
            &Index::state(tenant, state),
            f64::MIN,
            f64::MAX,
            cursor,
            limit,
        )
        .await
    }

    /// A page of a tenant's orders with this client order id, oldest first.
    pub async fn orders_with_client_order_id(
        &self,
        tenant: &TenantId,
        client_order_id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.page(
            &Index::client_order_id(tenant, client_order_id),
            f64::MIN,
            f64::MAX,
            cursor,
            limit,
        )
        .await
    }

    /// Keyset pagination over the members of an index scored from `min`
    /// to `max` (inclusive; `f64::MIN`/`f64::MAX` for no bound). The cursor
    /// is `<score>:<skip>`: the last score returned and how many members with
    /// that score were already returned, so members added or removed
    /// elsewhere in the set do not shift the pages.
    pub async fn page(
        &self,
        index: &Index,
        min: f64,
        max: f64,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let (min, skip) = match cursor {
            None => (min, 0),
            Some(c) => parse_cursor(c).ok_or(StoreError::BadCursor)?,
        };
        let mut conn = self.conn();
        // One more than asked, to know whether there is a next page.
        let rows: Vec<(String, f64)> = redis::cmd("ZRANGEBYSCORE")
            .arg(&index.0)
            .arg(score_bound(min))
            .arg(score_bound(max))
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(skip)
            .arg(limit + 1)
            .query_async(&mut conn)
            .await?;
        let more = rows.len() > limit;
        let rows = &rows[..rows.len().min(limit)];
        let ids = rows
            .iter()
            .filter_map(|(id, _)| OrderId::parse(id).ok())
            .collect();
        let next = match rows.last() {
            Some((_, last)) if more => {
                let same = rows.iter().filter(|(_, s)| s == last).count();
                let skip = if *last == min { skip + same } else { same };
                Some(format!("{last}:{skip}"))
            }
            _ => None,
        };
        Ok(Page { ids, next })
    }

    /// How many orders the tenant has.
    pub async fn order_count(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        Ok(redis::cmd("ZCARD")
            .arg(keys::created_index(tenant))
            .query_async(&mut conn)
            .await?)
    }

    /// The tenant's `limit` most recently created orders, newest first.
    pub async fn recent_orders(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> Result<Vec<OrderId>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn();
        let ids: Vec<String> = redis::cmd("ZREVRANGE")
            .arg(keys::created_index(tenant))
            .arg(0)
            .arg(limit - 1)
            .query_async(&mut conn)
            .await?;
        Ok(ids.iter().filter_map(|s| OrderId::parse(s).ok()).collect())
    }

    /// The tenant's `limit` oldest orders in `state`, oldest first.
    pub async fn oldest_orders_in(
        &self,
        tenant: &TenantId,
        state: OrderState,
        limit: usize,
    ) -> Result<Vec<OrderId>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn();
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(keys::state_index(tenant, state))
            .arg(0)
            .arg(limit - 1)
            .query_async(&mut conn)
            .await?;
        Ok(ids.iter().filter_map(|s| OrderId::parse(s).ok()).collect())
    }
}

fn score_bound(x: f64) -> String {
    if x == f64::MIN {
        "-inf".to_owned()
    } else if x == f64::MAX {
        "+inf".to_owned()
    } else {
        x.to_string()
    }
}

fn parse_cursor(c: &str) -> Option<(f64, usize)> {
    let (score, skip) = c.rsplit_once(':')?;
    let score: f64 = score.parse().ok()?;
    score.is_finite().then_some(())?;
    Some((score, skip.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_parse_only_in_their_own_shape() {
        assert_eq!(parse_cursor("1700000000000:3"), Some((1.7e12, 3)));
        assert_eq!(parse_cursor("-5:0"), Some((-5.0, 0)));
        assert_eq!(parse_cursor("12.5:3"), Some((12.5, 3)));
        assert_eq!(parse_cursor("1700000000000:2"), Some((1.7e12, 2)));
        for bad in ["", "x:1", "1:", "1", "1:-2", "inf:0", "NaN:1"] {
            assert_eq!(parse_cursor(bad), None, "{bad}");
        }
    }
}
