//! The router: owns the registry of live order actors, spawns one (which
//! loads its snapshot) on an order's first message, and forwards every
//! message for an order to its actor, in the order the router received them.
//!
//! Passivation without losing a message: an idle actor asks to stop, telling
//! how many routed messages it handled; the router agrees only if that is
//! every message it forwarded, removes the actor from the registry, then
//! tells it to stop. A message for the order that arrives after that spawns a
//! fresh actor, which loads the snapshot the old one wrote. Two actors never
//! hold the same order in one process.

use std::collections::HashMap;
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use orderd_core::OrderId;

use super::actor::{Deps, OrderActor, OrderArgs};
use super::messages::{NotLive, OrderMsg, Routed, RouterMsg};

/// The router (zero-sized; its state is [`RouterState`]).
pub struct Router;

struct Live {
    actor: ActorRef<OrderMsg>,
    forwarded: u64,
}

/// The router's state.
pub struct RouterState {
    deps: Deps,
    live: HashMap<OrderId, Live>,
    by_actor: HashMap<ActorId, OrderId>,
    stopping: bool,
}

impl Actor for Router {
    type Msg = RouterMsg;
    type State = RouterState;
    type Arguments = Deps;

    async fn pre_start(
        &self,
        _myself: ActorRef<RouterMsg>,
        deps: Deps,
    ) -> Result<RouterState, ActorProcessingErr> {
        Ok(RouterState {
            deps,
            live: HashMap::new(),
            by_actor: HashMap::new(),
            stopping: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RouterMsg>,
        msg: RouterMsg,
        state: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RouterMsg::Route { order_id, msg } => {
                if state.stopping {
                    // Dropping the message drops its reply port: the intake
                    // naks it and it comes back after the restart.
                    return Ok(());
                }
                match state.actor_for(&myself, order_id).await {
                    Some(live) => {
                        live.forwarded += 1;
                        // A send fails only if the actor died just now: its
                        // supervision event removes it, and the dropped reply
                        // port makes the intake nak the message.
                        let _ = live.actor.send_message(OrderMsg::Routed(msg));
                    }
                    None => tracing::error!(order_id = %order_id, "cannot start order actor"),
                }
            }
            RouterMsg::Read { order_id, reply } => match state.live.get_mut(&order_id) {
                Some(live) => {
                    live.forwarded += 1;
                    let (tx, rx) = ractor::concurrency::oneshot();
                    if live
                        .actor
                        .send_message(OrderMsg::Routed(Routed::Read(tx.into())))
                        .is_err()
                    {
                        let _ = reply.send(Err(NotLive));
                    } else {
                        // Answer without blocking the router on the actor.
                        tokio::spawn(async move {
                            let answer = rx.await.map_err(|_| NotLive);
                            let _ = reply.send(answer);
                        });
                    }
                }
                None => {
                    let _ = reply.send(Err(NotLive));
                }
            },
            RouterMsg::Idle {
                order_id,
                actor,
                handled,
            } => {
                let agreed = matches!(
                    state.live.get(&order_id),
                    Some(live) if live.actor.get_id() == actor && live.forwarded == handled
                );
                if agreed {
                    if let Some(live) = state.live.remove(&order_id) {
                        state.by_actor.remove(&actor);
                        let _ = live.actor.send_message(OrderMsg::Stop(None));
                    }
                }
            }
            RouterMsg::Forget { order_id } => {
                if let Some(live) = state.live.remove(&order_id) {
                    state.by_actor.remove(&live.actor.get_id());
                    let _ = live.actor.send_message(OrderMsg::Stop(None));
                }
            }
            RouterMsg::LiveCount(reply) => {
                let _ = reply.send(state.live.len());
            }
            RouterMsg::StopAll(reply) => {
                state.stopping = true;
                let actors: Vec<_> = state.live.drain().map(|(_, l)| l.actor).collect();
                state.by_actor.clear();
                let grace = Duration::from_secs(10);
                tokio::spawn(async move {
                    let stops = actors
                        .iter()
                        .map(|a| a.call(|port| OrderMsg::Stop(Some(port)), Some(grace)));
                    futures::future::join_all(stops).await;
                    let _ = reply.send(());
                });
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<RouterMsg>,
        event: SupervisionEvent,
        state: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => state.forget(&cell),
            SupervisionEvent::ActorFailed(cell, error) => {
                tracing::error!(error = %error, "order actor failed; its queued commands will be redelivered");
                state.forget(&cell);
            }
            _ => {}
        }
        Ok(())
    }
}

impl RouterState {
    async fn actor_for(
        &mut self,
        myself: &ActorRef<RouterMsg>,
        order_id: OrderId,
    ) -> Option<&mut Live> {
        if !self.live.contains_key(&order_id) {
            let args = OrderArgs {
                order_id,
                deps: self.deps.clone(),
                router: myself.clone(),
            };
            match OrderActor::spawn_linked(None, OrderActor, args, myself.get_cell()).await {
                Ok((actor, _)) => {
                    self.by_actor.insert(actor.get_id(), order_id);
                    self.live.insert(
                        order_id,
                        Live {
                            actor,
                            forwarded: 0,
                        },
                    );
                }
                Err(e) => {
                    tracing::error!(error = %e, "spawn failed");
                    return None;
                }
            }
        }
        self.live.get_mut(&order_id)
    }

    fn forget(&mut self, cell: &ActorCell) {
        if let Some(order_id) = self.by_actor.remove(&cell.get_id()) {
            if matches!(self.live.get(&order_id), Some(l) if l.actor.get_id() == cell.get_id()) {
                self.live.remove(&order_id);
            }
        }
    }
}
