//! Intake: everything between the two intake streams (commands, job
//! updates) and the router. A command's way in, in order:
//! - [`consumers`]: the durable consumers' names and configurations, and
//!   opening them: one lane per unit (a tenant, or one partition of its
//!   orders) and intake stream, one discovery per intake stream; and
//!   whether a tenant's creates before a place are settled (partitions);
//! - [`lanes`]: which lanes this instance pulls (one instance owns each
//!   unit's, see [`crate::bus::ownership`]); the discovery that makes a
//!   new tenant's lanes, the ownership passes that take, keep and hand over
//!   units, and the sync that learns lanes made elsewhere;
//! - [`pull`]: one lane's pull loop: parse a message into an envelope, hand
//!   it to the router, wait for the verdict, acknowledge and answer;
//! - [`ack`]: the ack policy, in one function.
//!
//! May import: [`crate::order`] (its messages only), [`crate::bus`],
//! [`crate::settings`] and the wire contract ([`crate::subjects`],
//! [`crate::headers`], [`crate::wire`]), [`crate::telemetry`] and
//! [`crate::retry`]. Not the
//! store: the actors persist.

pub mod ack;
pub mod consumers;
pub mod lanes;
pub mod pull;

pub use lanes::Lanes;
pub use pull::Intake;
