//! Intake: everything between the two intake streams (commands, job
//! updates) and the router. A command's way in, in order:
//! - [`consumers`]: the durable consumers' names and configurations, and
//!   opening them: one lane per tenant and intake stream, one discovery per
//!   intake stream;
//! - [`lanes`]: which lanes this instance pulls; the discovery that opens a
//!   new tenant's lanes, and the sync that pulls lanes opened elsewhere;
//! - [`pull`]: one lane's pull loop: parse a message into an envelope, hand
//!   it to the router, wait for the verdict, acknowledge and answer;
//! - [`ack`]: the ack policy, in one function.
//!
//! May import: [`crate::order`] (its messages only), [`crate::bus`],
//! [`crate::settings`] and the wire contract ([`crate::subjects`],
//! [`crate::headers`], [`crate::wire`]). Not the store: the actors persist.

pub mod ack;
pub mod consumers;
pub mod lanes;
pub mod pull;

pub use lanes::Lanes;
pub use pull::Intake;
