//! Flapping: an alert whose condition fires and resolves too often is held, not
//! re-notified. Only changes made by the condition count (firing, resolving by
//! itself); people's acks and resolves do not, and their notifications are never
//! held, so a person always hears back.

use super::event::{Action, NotifyReason, TimelineEntry};
use super::model::{Alert, Params, State};
use crate::clock::Timestamp;

/// Called once per evaluation step, after the transition: counts the change (if
/// any), forgets changes older than the window, and updates `flapping` with
/// hysteresis — on above `flap_max_changes`, off at half of it or below.
pub(super) fn update(
    alert: &mut Alert,
    params: &Params,
    now: Timestamp,
    changed: bool,
    actions: &mut Vec<Action>,
) {
    if changed {
        alert.recent_changes.push(now);
    }
    let horizon = now - params.flap_window;
    alert.recent_changes.retain(|t| *t >= horizon);
    let count = alert.recent_changes.len();
    let was = alert.flapping;
    if count > params.flap_max_changes as usize {
        alert.flapping = true;
    } else if count <= (params.flap_max_changes / 2) as usize {
        alert.flapping = false;
    }

    if alert.flapping {
        for action in actions.iter_mut() {
            if let Action::Notify(reason @ (NotifyReason::Firing | NotifyReason::Resolved)) =
                *action
            {
                let entry = entry(
                    alert,
                    now,
                    format!("held: flapping ({reason} not notified)"),
                );
                *action = Action::Record(entry);
            }
        }
    } else if was {
        // Notifications were held while it flapped: say where the alert stands now,
        // so a firing alert is never left unannounced. A resolved notification
        // reaches only those who heard of the firing (the notify log's job).
        let announce = match alert.state {
            State::Firing => Some(NotifyReason::Firing),
            State::Inactive | State::Pending | State::Resolved if alert.incident.is_some() => {
                Some(NotifyReason::Resolved)
            }
            _ => None,
        };
        let reason = match announce {
            Some(r) => format!("flapping stopped, notifying {r}"),
            None => "flapping stopped".to_string(),
        };
        actions.push(Action::Record(entry(alert, now, reason)));
        if let Some(r) = announce
            && !actions.contains(&Action::Notify(r))
        {
            actions.push(Action::Notify(r));
        }
    }
}

/// A timeline entry that is not a state change.
fn entry(alert: &Alert, now: Timestamp, reason: String) -> TimelineEntry {
    TimelineEntry {
        at: now,
        from: alert.state,
        to: alert.state,
        actor: None,
        via: None,
        reason,
        note: None,
    }
}
