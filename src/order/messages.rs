//! The messages of the order actors and their router, and the clock they
//! share: the vocabulary between the intake, the read service, the timer
//! sweeper, the plugin asker and the actors. Types only, no behaviour.
//!
//! May import: `orderd_core`, ractor, tracing. Nothing else of the crate.

use std::sync::Arc;

use ractor::{ActorId, RpcReplyPort};

use orderd_core::{Envelope, Order, OrderId, OrderState, Rejection, Timestamp};

/// Reads the wall clock; a function so tests can set the time.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The system clock, in Unix milliseconds.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Timestamp(i64::try_from(ms).unwrap_or(i64::MAX))
    })
}

/// A command for the order, with the port its verdict goes to.
pub struct Execution {
    /// The command and who sent it.
    pub envelope: Envelope,
    /// Where the verdict goes (the intake, which acks the message).
    pub reply: Option<RpcReplyPort<Verdict>>,
    /// The command's tracing span.
    pub span: tracing::Span,
    /// orderd's hop of the W3C trace the command came with
    /// ([`crate::headers::child_traceparent`]): its events and job
    /// commands carry it.
    pub traceparent: Option<String>,
    /// Its place in the commands stream, for a command read from there
    /// (`None` for job updates and orderd's own commands): a command on an
    /// order not found yet waits while creates before it are undecided.
    pub position: Option<u64>,
}

/// Whether every create of a tenant before a place in the commands stream
/// has been decided. When a tenant's orders are partitioned, creates are
/// read on its partition 0's lane and other commands on their own
/// partition's: a command on an order not found waits while this says no,
/// so a create and a command sent right after it are decided in order.
pub trait CreatesSettled: Send + Sync + 'static {
    /// True when no create of `tenant` before `position` that `order`'s
    /// command could be waiting for is still to be decided: always for an
    /// order of partition 0, whose commands share the creates' lane (so
    /// they come after its create anyway). When it cannot be known now
    /// (the lane being made anew at a hand-over), no: the command waits.
    fn settled_before<'a>(
        &'a self,
        tenant: &'a orderd_core::TenantId,
        order: OrderId,
        position: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>>;
}

/// Messages the router forwards; the router counts them, to know when an
/// actor has nothing left to do.
pub enum Routed {
    /// Decide a command.
    Execute(Box<Execution>),
    /// The order as the actor holds it (fresh), `None` if it does not exist.
    Read(RpcReplyPort<Option<Box<Order>>>),
    /// Fire due timers (the timer sweeper found one).
    FireTimers,
}

/// The order actor's messages.
pub enum OrderMsg {
    /// From the router.
    Routed(Routed),
    /// Decide the commands queued since the last batch.
    Flush,
    /// The actor's own timer came due.
    TimerDue,
    /// The actor's own idle check.
    IdleCheck,
    /// Publishing the outbox failed earlier: try again.
    RetryPublish,
    /// The router approved passivation (or shutdown): tidy up and stop.
    Stop(Option<RpcReplyPort<()>>),
}

/// What became of a command, for the intake: how to acknowledge the message
/// and what to tell the client.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Applied and persisted.
    Applied(Summary),
    /// Already applied earlier: nothing changed.
    Duplicate(Summary),
    /// Refused by the core: permanent.
    Refused(Rejection),
    /// Refused at an earlier delivery (recorded with the order): the
    /// answer it got then, not a new decision on the order as it is now.
    /// Also the answer to any command of an archived order (it no longer
    /// changes, whatever is sent).
    RefusedBefore(crate::wire::ErrorBody),
    /// Not decided because of a passing failure: redeliver later.
    Retry(RetryReason),
}

impl Verdict {
    /// The outcome's name in metrics: `applied`, `duplicate`, `refused`
    /// (now or at an earlier delivery) or `retry`.
    pub fn outcome_name(&self) -> &'static str {
        match self {
            Verdict::Applied(_) => "applied",
            Verdict::Duplicate(_) => "duplicate",
            Verdict::Refused(_) | Verdict::RefusedBefore(_) => "refused",
            Verdict::Retry(_) => "retry",
        }
    }
}

/// The order after a command, for the client's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The order.
    pub order_id: OrderId,
    /// Its sequence number.
    pub seq: u64,
    /// Its state.
    pub state: OrderState,
    /// The order owes NATS nothing (its outbox is published). When false
    /// the message is redelivered later, which retries the publish.
    pub published: bool,
}

/// Why a command must be redelivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryReason {
    /// Redis failed or timed out.
    Store(String),
    /// Another instance wrote the order twice while we decided.
    Conflict,
    /// Another instance owns the order's tenant now (its epoch is stored).
    Fenced,
    /// An earlier command of this order failed and must go first.
    WaitingForEarlier,
    /// The order does not exist yet, and a create before the command in
    /// the stream is not decided yet (its tenant's orders are partitioned:
    /// creates are read on another lane).
    CreatePending,
}

/// The router's messages.
pub enum RouterMsg {
    /// Forward to the order's actor, spawning it when needed.
    Route {
        /// The order.
        order_id: OrderId,
        /// The message.
        msg: Routed,
    },
    /// The order as its live actor holds it; `None` when no actor is live
    /// (the caller then reads the snapshot) or the order does not exist.
    Read {
        /// The order.
        order_id: OrderId,
        /// Where the answer goes: `Err(())` when no actor is live.
        reply: RpcReplyPort<Result<Option<Box<Order>>, NotLive>>,
    },
    /// An actor has been idle for its passivation time.
    Idle {
        /// Its order.
        order_id: OrderId,
        /// The actor.
        actor: ActorId,
        /// Routed messages it handled.
        handled: u64,
    },
    /// The order left the live store (archived): its actor, if live, stops
    /// after the messages already queued for it, so nothing is answered
    /// from its memory any more.
    Forget {
        /// The order.
        order_id: OrderId,
    },
    /// How many order actors are live.
    LiveCount(RpcReplyPort<usize>),
    /// Stop every order actor after its queued messages (shutdown).
    StopAll(RpcReplyPort<()>),
}

/// No actor is live for the order: read its snapshot instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotLive;
