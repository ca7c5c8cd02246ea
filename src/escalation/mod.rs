//! Escalation: which policy an alert follows, who each level reaches, and the
//! persisted deadline of every alert's next step.

mod address;
pub mod policy;

pub use address::Address;

pub use policy::{Directory, Group, Level, Method, Person, Policy, Route, Routing, Target};
pub mod state;
