//! What goes into the state machine (events) and what comes out (a transition: the
//! next alert and the actions owed).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::model::{Alert, State};
use crate::clock::Timestamp;

/// Something that happened to one alert.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// One evaluation of the rule for this alert's series. A series that vanished
    /// is `holds: false` (and `resolve_holds: Some(true)` if the rule has
    /// `resolve when`).
    Evaluated {
        holds: bool,
        /// Whether the rule's `resolve when` condition holds; `None` without one.
        resolve_holds: Option<bool>,
        value: f64,
    },
    Ack {
        actor: String,
        via: String,
        note: Option<String>,
    },
    Unack {
        actor: String,
    },
    /// The ack timer ran out (see `Params::ack_timeout`).
    AckExpired,
    /// A person closed the alert by hand.
    Resolve {
        actor: String,
        note: Option<String>,
    },
    SilenceStart {
        id: String,
    },
    SilenceEnd {
        id: String,
    },
}

/// The outcome of one step.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub alert: Alert,
    /// In the order the caller must apply them: an `OpenIncident` comes before the
    /// notifications that name the incident.
    pub actions: Vec<Action>,
}

/// What the caller owes after a step, written to the store in the same transaction
/// as the alert.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// The alert fired: the caller assigns the next incident id and sets
    /// `alert.incident`, in the same store transaction.
    OpenIncident,
    Notify(NotifyReason),
    Record(TimelineEntry),
}

/// Why a notification is owed; shown in logs and on the timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyReason {
    Firing,
    Resolved,
    /// So sent messages can be updated ("acked by alice").
    Acknowledged,
    Unacknowledged,
    /// Still firing after `ack_timeout`: escalation starts again.
    AckExpired,
    /// The last silence ended on a firing alert: escalation resumes.
    SilenceEnded,
}

impl NotifyReason {
    /// Whether a message for this reason pages someone, as opposed to telling them
    /// of an ack or a resolve.
    pub fn is_page(self) -> bool {
        !matches!(self, NotifyReason::Acknowledged | NotifyReason::Resolved)
    }

    pub fn name(self) -> &'static str {
        match self {
            NotifyReason::Firing => "firing",
            NotifyReason::Resolved => "resolved",
            NotifyReason::Acknowledged => "acknowledged",
            NotifyReason::Unacknowledged => "unacknowledged",
            NotifyReason::AckExpired => "ack expired",
            NotifyReason::SilenceEnded => "silence ended",
        }
    }
}

impl fmt::Display for NotifyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One line of an alert's history, kept for post-incident review (time to ack, time
/// to resolve, who did what from where).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: Timestamp,
    pub from: State,
    /// Equal to `from` for entries that record something other than a state change.
    pub to: State,
    pub actor: Option<String>,
    pub via: Option<String>,
    /// For people: "condition held for 15m", "acked by alice via slack".
    pub reason: String,
    pub note: Option<String>,
}

/// A manual operation that makes no sense in the alert's current state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Rejected {
    pub reason: String,
}

impl Rejected {
    pub(super) fn new(reason: impl Into<String>) -> Rejected {
        Rejected {
            reason: reason.into(),
        }
    }
}
