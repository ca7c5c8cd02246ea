//! Escalation: which policy an alert follows, who each level reaches, and the
//! persisted deadline of every alert's next step.

pub mod policy;

pub use policy::{Directory, Group, Level, Method, Person, Policy, Route, Routing, Target};
pub mod state;
