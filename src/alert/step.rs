//! The transition function. Each event kind has one method on [`Stepper`]; each
//! method matches on the state, so every (state, event) pair is answered in one
//! visible place.

use std::time::Duration;

use super::event::{Action, Event, NotifyReason, Rejected, TimelineEntry, Transition};
use super::flap;
use super::model::{Ack, Alert, Params, State};
use crate::clock::Timestamp;
use crate::rules::model::Hold;

/// Decides what `event` does to `alert` at `now`. Pure: the same inputs give the
/// same transition. Only manual operations (ack, unack, resolve) can be rejected.
pub fn step(
    params: &Params,
    alert: &Alert,
    event: &Event,
    now: Timestamp,
) -> Result<Transition, Rejected> {
    let mut s = Stepper {
        params,
        now,
        alert: alert.clone(),
        actions: Vec::new(),
    };
    match event {
        Event::Evaluated {
            holds,
            resolve_holds,
            value,
        } => s.evaluated(*holds, *resolve_holds, *value),
        Event::Ack { actor, via, note } => s.ack(actor, via, note)?,
        Event::Unack { actor } => s.unack(actor)?,
        Event::AckExpired => s.ack_expired(),
        Event::Resolve { actor, note } => s.resolve_by_hand(actor, note)?,
        Event::SilenceStart { id } => s.silence_start(id),
        Event::SilenceEnd { id } => s.silence_end(id),
    }
    Ok(Transition {
        alert: s.alert,
        actions: s.actions,
    })
}

/// Who caused a timeline entry; empty when the condition did.
#[derive(Default)]
struct By {
    actor: Option<String>,
    via: Option<String>,
    note: Option<String>,
}

impl By {
    fn person(actor: &str) -> By {
        By {
            actor: Some(actor.to_string()),
            ..By::default()
        }
    }
}

struct Stepper<'a> {
    params: &'a Params,
    now: Timestamp,
    alert: Alert,
    actions: Vec<Action>,
}

impl Stepper<'_> {
    fn evaluated(&mut self, holds: bool, resolve_holds: Option<bool>, value: f64) {
        let now = self.now;
        let a = &mut self.alert;
        a.value = value;
        // Counted only on the way to firing (`for N evaluations`): once it fires the
        // count means nothing, and an evaluation that changes nothing must leave
        // the alert equal, so it is not written again.
        a.consecutive = match (holds, a.state) {
            (false, _) => 0,
            (true, State::Firing | State::Acknowledged | State::Suppressed) => a.consecutive,
            (true, _) => a.consecutive.saturating_add(1),
        };
        if !holds {
            a.awaiting_clear = false;
        }
        let mut changed = false;
        match a.state {
            State::Inactive | State::Resolved => {
                if holds && !a.awaiting_clear {
                    a.active_since = Some(now);
                    a.consecutive = 1;
                    if self.hold_met() {
                        self.fire();
                        changed = true;
                    } else {
                        self.change(State::Pending, "condition started holding", By::default());
                    }
                }
            }
            State::Pending => {
                if holds {
                    a.active_since.get_or_insert(now);
                    if self.hold_met() {
                        self.fire();
                        changed = true;
                    }
                } else {
                    let since = a.active_since.take().unwrap_or(now);
                    let reason = format!(
                        "condition stopped holding after {} pending",
                        fmt_duration(now.since(since))
                    );
                    self.change(State::Inactive, reason, By::default());
                }
            }
            State::Firing | State::Acknowledged | State::Suppressed => {
                let clear = match self.params.resolve_hold {
                    Some(_) => resolve_holds == Some(true),
                    None => !holds,
                };
                if clear {
                    a.cleared_since.get_or_insert(now);
                    a.consecutive_clear = a.consecutive_clear.saturating_add(1);
                    if self.clear_met() {
                        self.resolve_by_condition();
                        changed = true;
                    }
                } else {
                    a.cleared_since = None;
                    a.consecutive_clear = 0;
                }
            }
        }
        flap::update(
            &mut self.alert,
            self.params,
            now,
            changed,
            &mut self.actions,
        );
    }

    /// Whether the condition has held long enough to fire (`for`).
    fn hold_met(&self) -> bool {
        let a = &self.alert;
        match self.params.hold {
            Hold::Immediately => true,
            // Prometheus: `ts - activeAt >= for`.
            Hold::For(d) => self.now.since(a.active_since.unwrap_or(self.now)) >= d,
            Hold::Evaluations(n) => a.consecutive >= n,
        }
    }

    /// Whether the clear condition has held long enough to resolve: the longer of
    /// keep-firing-for and the `resolve when` hold, and that many evaluations.
    fn clear_met(&self) -> bool {
        let a = &self.alert;
        let keep = self.params.keep_firing_for.unwrap_or_default();
        let (hold_for, evaluations) = match self.params.resolve_hold {
            Some(Hold::For(d)) => (d, 0),
            Some(Hold::Evaluations(n)) => (Duration::ZERO, n),
            Some(Hold::Immediately) | None => (Duration::ZERO, 0),
        };
        let cleared = self.now.since(a.cleared_since.unwrap_or(self.now));
        cleared >= keep.max(hold_for) && a.consecutive_clear >= evaluations
    }

    fn fire(&mut self) {
        let a = &mut self.alert;
        a.fired_at = Some(self.now);
        a.resolved_at = None;
        a.cleared_since = None;
        a.consecutive_clear = 0;
        a.ack = None;
        a.awaiting_clear = false;
        self.actions.push(Action::OpenIncident);
        // An alert another system evaluated: tocsin held no condition of its own.
        let reason = match a.external {
            Some(_) => "reported firing by its sender".to_string(),
            None => hold_reason(self.params.hold),
        };
        if a.silenced_by.is_empty() {
            self.change(State::Firing, reason, By::default());
            self.notify(NotifyReason::Firing);
        } else {
            // Fires (a new incident, for the record) but tells no one until the
            // silence ends.
            a.resume_to = Some(State::Firing);
            let ids = join(a.silenced_by.iter());
            let reason = format!("{reason}, while silenced by {ids}");
            self.change(State::Suppressed, reason, By::default());
        }
    }

    fn resolve_by_condition(&mut self) {
        // An alert another system evaluated resolves when its sender says so (its
        // `endsAt` is then the past) or when that `endsAt` passes unrefreshed: the
        // two look alike from here.
        let reason = match &self.alert.external {
            Some(_) => "resolved by its sender, or its endsAt passed".to_string(),
            None => clear_reason(self.params),
        };
        self.close();
        self.change(State::Resolved, reason, By::default());
        self.notify(NotifyReason::Resolved);
    }

    /// What every way into `Resolved` forgets.
    fn close(&mut self) {
        let a = &mut self.alert;
        a.resolved_at = Some(self.now);
        a.active_since = None;
        a.cleared_since = None;
        a.consecutive_clear = 0;
        a.ack = None;
        a.resume_to = None;
    }

    fn ack(&mut self, actor: &str, via: &str, note: &Option<String>) -> Result<(), Rejected> {
        let a = &mut self.alert;
        match (a.state, a.resume_to) {
            (State::Firing, _) | (State::Suppressed, Some(State::Firing) | None) => {}
            (State::Acknowledged, _) | (State::Suppressed, _) => {
                let by = a.ack.as_ref().map_or("someone", |k| k.actor.as_str());
                return Err(Rejected::new(format!(
                    "alert is already acknowledged by {by}"
                )));
            }
            (State::Resolved, _) => return Err(Rejected::new("alert is already resolved")),
            (State::Inactive | State::Pending, _) => {
                return Err(Rejected::new("alert is not firing"));
            }
        }
        a.ack = Some(Box::new(Ack {
            actor: actor.to_string(),
            via: via.to_string(),
            note: note.clone(),
            at: self.now,
        }));
        let by = By {
            actor: Some(actor.to_string()),
            via: Some(via.to_string()),
            note: note.clone(),
        };
        let reason = format!("acked by {actor} via {via}");
        if a.state == State::Suppressed {
            // Still silenced: it becomes acknowledged when the silence ends.
            a.resume_to = Some(State::Acknowledged);
            self.change(State::Suppressed, reason, by);
        } else {
            self.change(State::Acknowledged, reason, by);
        }
        self.notify(NotifyReason::Acknowledged);
        Ok(())
    }

    fn unack(&mut self, actor: &str) -> Result<(), Rejected> {
        let a = &mut self.alert;
        let reason = format!("unacked by {actor}");
        match (a.state, a.resume_to) {
            (State::Acknowledged, _) => {
                a.ack = None;
                self.change(State::Firing, reason, By::person(actor));
            }
            (State::Suppressed, Some(State::Acknowledged)) => {
                a.ack = None;
                a.resume_to = Some(State::Firing);
                self.change(State::Suppressed, reason, By::person(actor));
            }
            _ => return Err(Rejected::new("alert is not acknowledged")),
        }
        self.notify(NotifyReason::Unacknowledged);
        Ok(())
    }

    /// A timer event: in any state where it no longer applies it does nothing.
    fn ack_expired(&mut self) {
        let a = &mut self.alert;
        let Some(ack) = a.ack.take() else { return };
        if let Some(timeout) = self.params.ack_timeout
            && self.now.since(ack.at) < timeout
        {
            // A stale timer: the alert was acked again since it was set.
            a.ack = Some(ack);
            return;
        }
        let reason = format!(
            "ack by {} expired after {}",
            ack.actor,
            fmt_duration(self.now.since(ack.at))
        );
        match (a.state, a.resume_to) {
            (State::Acknowledged, _) => {
                self.change(State::Firing, reason, By::default());
                self.notify(NotifyReason::AckExpired);
            }
            (State::Suppressed, Some(State::Acknowledged)) => {
                // Escalation resumes when the silence ends.
                a.resume_to = Some(State::Firing);
                self.change(State::Suppressed, reason, By::default());
            }
            _ => a.ack = Some(ack),
        }
    }

    fn resolve_by_hand(&mut self, actor: &str, note: &Option<String>) -> Result<(), Rejected> {
        let from = self.alert.state;
        match from {
            State::Inactive => return Err(Rejected::new("alert is not active")),
            State::Resolved => return Err(Rejected::new("alert is already resolved")),
            State::Pending | State::Firing | State::Acknowledged | State::Suppressed => {}
        }
        self.close();
        self.alert.awaiting_clear = true;
        let by = By {
            note: note.clone(),
            ..By::person(actor)
        };
        self.change(State::Resolved, format!("resolved by {actor}"), by);
        if from != State::Pending {
            self.notify(NotifyReason::Resolved);
        }
        Ok(())
    }

    fn silence_start(&mut self, id: &str) {
        let a = &mut self.alert;
        if !a.silenced_by.insert(id.to_string()) {
            return;
        }
        if matches!(a.state, State::Firing | State::Acknowledged) {
            a.resume_to = Some(a.state);
            self.change(
                State::Suppressed,
                format!("silenced by {id}"),
                By::default(),
            );
        }
    }

    fn silence_end(&mut self, id: &str) {
        let a = &mut self.alert;
        if !a.silenced_by.remove(id) || !a.silenced_by.is_empty() {
            return;
        }
        if a.state == State::Suppressed {
            let to = a.resume_to.take().unwrap_or(State::Firing);
            self.change(to, format!("silence {id} ended"), By::default());
            if to == State::Firing {
                self.notify(NotifyReason::SilenceEnded);
            }
        }
    }

    /// Moves to `to` and records it. With `to == from`, records without a change.
    fn change(&mut self, to: State, reason: impl Into<String>, by: By) {
        let from = self.alert.state;
        self.alert.state = to;
        self.actions.push(Action::Record(TimelineEntry {
            at: self.now,
            from,
            to,
            actor: by.actor,
            via: by.via,
            reason: reason.into(),
            note: by.note,
        }));
    }

    fn notify(&mut self, reason: NotifyReason) {
        self.actions.push(Action::Notify(reason));
    }
}

fn hold_reason(hold: Hold) -> String {
    match hold {
        Hold::Immediately => "condition held".to_string(),
        Hold::For(d) => format!("condition held for {}", fmt_duration(d)),
        Hold::Evaluations(n) => format!("condition held for {}", evaluations(n)),
    }
}

fn clear_reason(params: &Params) -> String {
    let base = match params.resolve_hold {
        None => "condition cleared".to_string(),
        Some(Hold::Immediately) => "resolve condition held".to_string(),
        Some(Hold::For(d)) => format!("resolve condition held for {}", fmt_duration(d)),
        Some(Hold::Evaluations(n)) => format!("resolve condition held for {}", evaluations(n)),
    };
    match params.keep_firing_for {
        Some(k) if !k.is_zero() => format!("{base}, kept firing for {}", fmt_duration(k)),
        _ => base,
    }
}

fn evaluations(n: u32) -> String {
    if n == 1 {
        "1 evaluation".to_string()
    } else {
        format!("{n} evaluations")
    }
}

pub(super) fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn join<'a>(ids: impl Iterator<Item = &'a String>) -> String {
    ids.map(String::as_str).collect::<Vec<_>>().join(", ")
}
