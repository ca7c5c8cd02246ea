//! The alert state machine: `step(params, alert, event, now) -> Transition`.
//!
//! One [`Alert`] per rule and series. Everything that can happen to it — an
//! evaluation of its rule, an ack, a manual resolve, a silence starting or ending, an
//! ack timer running out — is an [`Event`], and [`step`] decides the next alert and
//! the [`Action`]s owed (open an incident, notify, record on the timeline).
//!
//! Invariants:
//! - `step` is pure: no I/O, no clock reads (`now` is an argument), no panics, and it
//!   answers every (state, event) pair — manual operations that make no sense are
//!   [`Rejected`], timer and evaluation events never are.
//! - Every state change records exactly one [`TimelineEntry`]; a few non-changes
//!   that matter for review (an ack while silenced, a withheld notification) record
//!   one too, with `from == to`.
//! - Pending never notifies; a silenced alert never notifies `Firing`.

mod event;
mod flap;
mod model;
mod step;

pub use event::{Action, Event, NotifyReason, Rejected, TimelineEntry, Transition};
pub use model::{Ack, Alert, Annotations, External, Params, State};
pub use step::step;
