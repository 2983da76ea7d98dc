//! A tenant's watch narrowed by a query: which changes to print. Pure: the
//! watch hands it the changes in seq order (after its sequencer) and reads
//! an order for it when it asks.
//!
//! The rule (`orderd watch --help` and docs/operations.md say it to
//! operators): a change is printed when its order matches the filters after
//! it; the change that makes a matching order stop matching is printed too,
//! once, as its last line; then the order's changes are left out until one
//! makes it match again.
//!
//! What an order is matched on: its state and sub-state as its change left
//! them; its client order id, creation time and custom attributes as the
//! opening list showed them, or its creation event, or (an order first seen
//! in the middle of its life) as `get` read it then, each kept up to date
//! by the attributes its updates set.

use std::collections::{BTreeMap, HashMap};

use orderd_core::{Event, OrderState, Timestamp};

use crate::wire::{parse_rfc3339, EventMessage, OrderView, QueryFacts, QueryRequest};

/// What does not come with every change.
#[derive(Debug, Clone)]
struct Lasting {
    client_order_id: String,
    created_at: Timestamp,
    custom: BTreeMap<String, serde_json::Value>,
}

/// Where one order stands.
#[derive(Debug)]
struct Known {
    /// `None`: the order could not be read; its changes are left out.
    lasting: Option<Lasting>,
    /// Its last printed line showed it matching.
    shown: bool,
}

/// Decides, change after change, which a narrowed watch prints.
#[derive(Debug)]
pub struct Narrowing {
    filter: QueryRequest,
    orders: HashMap<String, Known>,
}

fn state_named(name: &str) -> Option<OrderState> {
    OrderState::ALL.into_iter().find(|s| s.as_str() == name)
}

fn lasting_of(view: &OrderView) -> Option<Lasting> {
    Some(Lasting {
        client_order_id: view.client_order_id.clone(),
        created_at: parse_rfc3339(&view.created_at)?,
        custom: view.custom_attributes.clone(),
    })
}

/// The creation event's attributes, when `event` is an order's first.
fn registered(event: &EventMessage) -> Option<Lasting> {
    event.events.iter().find_map(|e| match e {
        Event::Registered(r) => Some(Lasting {
            client_order_id: r.client_order_id.clone(),
            created_at: parse_rfc3339(&event.at)?,
            custom: r.custom.clone(),
        }),
        _ => None,
    })
}

impl Narrowing {
    /// Narrows to what `filter` matches (its tenant, limit and cursor are
    /// not looked at).
    pub fn new(filter: QueryRequest) -> Self {
        Self {
            filter,
            orders: HashMap::new(),
        }
    }

    /// The opening list showed `view` (the query matched it).
    pub fn opened(&mut self, view: &OrderView) {
        self.orders.insert(
            view.order_id.clone(),
            Known {
                lasting: lasting_of(view),
                shown: true,
            },
        );
    }

    /// Whether the order of `event` must be read (`get`) and handed to
    /// [`Narrowing::read`] before the change can be judged: it was first
    /// seen in the middle of its life.
    pub fn needs_reading(&self, event: &EventMessage) -> bool {
        !self.orders.contains_key(&event.order_id) && registered(event).is_none()
    }

    /// The order `order_id` as `get` read it (`None`: it could not be).
    pub fn read(&mut self, order_id: &str, view: Option<&OrderView>) {
        self.orders.insert(
            order_id.to_owned(),
            Known {
                lasting: view.and_then(lasting_of),
                shown: false,
            },
        );
    }

    /// Whether to print `event`, the next change of its order.
    pub fn admits(&mut self, event: &EventMessage) -> bool {
        let known = self
            .orders
            .entry(event.order_id.clone())
            .or_insert_with(|| Known {
                lasting: registered(event),
                shown: false,
            });
        let Some(lasting) = known.lasting.as_mut() else {
            return false;
        };
        for e in &event.events {
            if let Event::Updated { custom, .. } = e {
                lasting
                    .custom
                    .extend(custom.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        let matches = state_named(&event.state).is_some_and(|state| {
            self.filter.admits(&QueryFacts {
                state,
                sub_state: event.sub_state.as_deref(),
                client_order_id: &lasting.client_order_id,
                created_at: lasting.created_at,
                custom: &lasting.custom,
            })
        });
        let print = matches || known.shown;
        known.shown = matches;
        print
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    const B: &str = "67e55044-10b1-426f-9247-bb680e5fe0c9";
    const C: &str = "67e55044-10b1-426f-9247-bb680e5fe0ca";

    fn filter(state: Option<OrderState>, region: Option<&str>) -> QueryRequest {
        QueryRequest {
            tenant: "acme".into(),
            state,
            client_order_id: None,
            sub_state: None,
            custom_attributes: region
                .map(|r| ("region".to_owned(), serde_json::json!(r)))
                .into_iter()
                .collect(),
            custom_attribute_ranges: BTreeMap::new(),
            created_from: None,
            created_to: None,
            limit: None,
            after: None,
        }
    }

    fn change(order: &str, seq: u64, state: &str, events: Vec<Event>) -> EventMessage {
        EventMessage::sample(order, seq, state, events)
    }

    fn update(region: &str) -> Vec<Event> {
        vec![Event::Updated {
            groups: Vec::new(),
            contact_id: None,
            location_id: None,
            summary: None,
            custom: [("region".to_owned(), serde_json::json!(region))].into(),
        }]
    }

    fn view(order: &str, region: &str) -> OrderView {
        let id = orderd_core::OrderId::parse(order).unwrap_or_else(|e| panic!("{e}"));
        let tenant = orderd_core::TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"));
        let mut o = orderd_core::Order::blank(id, tenant);
        o.custom = [("region".to_owned(), serde_json::json!(region))].into();
        OrderView::from(&o)
    }

    #[test]
    fn an_order_that_stops_matching_gets_its_last_change_then_none_until_it_matches_again() {
        let mut n = Narrowing::new(filter(Some(OrderState::OnHold), None));
        n.read(A, Some(&view(A, "north")));
        assert!(n.admits(&change(A, 4, "ON_HOLD", Vec::new())));
        assert!(
            n.admits(&change(A, 5, "IN_PROGRESS", Vec::new())),
            "its last"
        );
        assert!(!n.admits(&change(A, 6, "IN_PROGRESS", update("south"))));
        assert!(n.admits(&change(A, 7, "ON_HOLD", Vec::new())), "again");
    }

    #[test]
    fn attributes_come_from_the_opening_list_and_follow_updates() {
        let mut n = Narrowing::new(filter(None, Some("north")));
        n.opened(&view(A, "north"));
        assert!(!n.needs_reading(&change(A, 4, "ON_HOLD", Vec::new())));
        assert!(n.admits(&change(A, 4, "ON_HOLD", Vec::new())));
        assert!(
            n.admits(&change(A, 5, "ON_HOLD", update("south"))),
            "its last"
        );
        assert!(!n.admits(&change(A, 6, "IN_PROGRESS", Vec::new())));
        assert!(n.admits(&change(A, 7, "IN_PROGRESS", update("north"))));
    }

    #[test]
    fn an_order_first_seen_mid_life_is_read_and_one_that_cannot_be_is_left_out() {
        let mut n = Narrowing::new(filter(None, Some("north")));
        let later = change(B, 9, "ON_HOLD", Vec::new());
        assert!(n.needs_reading(&later));
        n.read(B, Some(&view(B, "south")));
        assert!(!n.admits(&later));
        let other = change(C, 2, "ON_HOLD", Vec::new());
        n.read(C, None);
        assert!(!n.needs_reading(&other));
        assert!(!n.admits(&other));
    }
}
