//! The engine: each evaluation turns rule results into state-machine events, steps
//! every affected alert, and hands back what changed plus the notifications owed.
//! It owns alert state in memory; persisting the changes before acting on the
//! notifications is the caller's job (and its invariant).

use std::collections::{HashMap, HashSet};

use rustc_hash::FxHashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::alert::{self, Action, Alert, Event, NotifyReason, Params, Rejected, State};
use crate::clock::Timestamp;
use crate::eval::evaluate_rule;
use crate::humanize::ValueFormat;
use crate::labels::{Fingerprint, Labels};
use crate::rules::RuleSet;
use crate::rules::model::AlertRule;
use crate::series::SeriesStore;

/// A notification owed: written to the store with the state change that caused it.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    pub alert: Fingerprint,
    pub incident: Option<u64>,
    pub reason: NotifyReason,
    pub at: Timestamp,
    /// The alert as it was when it owed this message: a resolve and a new
    /// occurrence can come in one step, and the resolved message must show the
    /// incident it ends, not the one opened after it.
    pub then: Alert,
}

/// An alert as another system sends it.
#[derive(Clone, Debug)]
pub struct ExternalAlert {
    pub labels: Labels,
    pub firing: bool,
    pub external: crate::alert::External,
}

/// The alert records one step changed: what the store must write.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    /// Alerts as they are now.
    pub alerts: Vec<Alert>,
    /// Alerts forgotten (inactive, never fired: nothing to remember).
    pub removed: Vec<Fingerprint>,
    /// Appended to each alert's timeline, in this order.
    pub timeline: Vec<(Fingerprint, alert::TimelineEntry)>,
    /// The next incident number to hand out.
    pub next_incident: u64,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.removed.is_empty() && self.timeline.is_empty()
    }
}

/// What one evaluation or operation changed.
#[derive(Debug, Default)]
pub struct Outcome {
    pub changes: Changes,
    pub notifications: Vec<Notification>,
    /// External alerts whose `endsAt` a re-send moved earlier without a write: their
    /// expiry deadline must move with it (a later one is found when the earlier
    /// deadline is reached).
    pub expiring_sooner: Vec<Fingerprint>,
}

impl Outcome {
    /// Adds what another step changed, to be committed together.
    pub fn absorb(&mut self, other: Outcome) {
        let c = &mut self.changes;
        c.alerts.extend(other.changes.alerts);
        c.removed.extend(other.changes.removed);
        c.timeline.extend(other.changes.timeline);
        c.next_incident = c.next_incident.max(other.changes.next_incident);
        self.notifications.extend(other.notifications);
        self.expiring_sooner.extend(other.expiring_sooner);
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.notifications.is_empty()
    }
}

pub struct Engine {
    rules: Arc<RuleSet>,
    params: HashMap<String, Params>,
    alerts: HashMap<Fingerprint, Alert>,
    /// The alerts of each rule, so a rule's evaluation visits only its own alerts.
    by_rule: HashMap<String, HashSet<Fingerprint>>,
    /// The series labels each alert came from, for `resolve when` lookups. Not
    /// persisted: after a restart it is rebuilt as soon as the series is evaluated.
    series_labels: HashMap<Fingerprint, Labels>,
    next_incident: u64,
    /// Until this time, an alert loaded from the store whose series has not been
    /// seen yet is left alone: after a restart the series store is empty, and "no
    /// data yet" must not reset a pending alert's `for` progress or resolve a firing
    /// one (the Prometheus restart bug). Set at the first evaluation.
    warm_until: Option<Timestamp>,
    /// External alerts whose `endsAt` a re-send moved, not written yet.
    refreshed: FxHashSet<Fingerprint>,
}

impl Engine {
    /// An engine over `rules`, resuming `alerts` loaded from the store (by
    /// fingerprint): the map becomes the engine's own, as sized by the load.
    pub fn new(
        rules: Arc<RuleSet>,
        alerts: HashMap<Fingerprint, Alert>,
        next_incident: u64,
    ) -> Engine {
        let mut by_rule: HashMap<String, HashSet<Fingerprint>> = HashMap::new();
        // Alerts another system evaluated belong to no rule of ours (see `put`).
        for a in alerts.values().filter(|a| a.external.is_none()) {
            match by_rule.get_mut(&a.rule) {
                Some(set) => {
                    set.insert(a.fingerprint);
                }
                None => {
                    by_rule.insert(a.rule.clone(), HashSet::from([a.fingerprint]));
                }
            }
        }
        let mut e = Engine {
            rules: Arc::new(RuleSet::default()),
            params: HashMap::new(),
            alerts,
            by_rule,
            series_labels: HashMap::new(),
            next_incident: next_incident.max(1),
            warm_until: None,
            refreshed: FxHashSet::default(),
        };
        e.set_rules(rules);
        e
    }

    fn put(&mut self, alert: Alert) {
        // Alerts another system evaluated belong to no rule of ours, even when a
        // rule has the same name.
        if alert.external.is_some() {
            self.alerts.insert(alert.fingerprint, alert);
            return;
        }
        match self.by_rule.get_mut(&alert.rule) {
            Some(set) => {
                set.insert(alert.fingerprint);
            }
            None => {
                self.by_rule
                    .insert(alert.rule.clone(), HashSet::from([alert.fingerprint]));
            }
        }
        self.alerts.insert(alert.fingerprint, alert);
    }

    fn forget(&mut self, alert: &Alert) {
        self.alerts.remove(&alert.fingerprint);
        if let Some(set) = self.by_rule.get_mut(&alert.rule) {
            set.remove(&alert.fingerprint);
        }
        self.series_labels.remove(&alert.fingerprint);
    }

    /// Swaps in a new rule set. Alerts of rules that still exist keep their state.
    pub fn set_rules(&mut self, rules: Arc<RuleSet>) {
        self.params = rules
            .alerts
            .iter()
            .map(|r| (r.name.clone(), Params::from_rule(r)))
            .collect();
        self.rules = rules;
    }

    /// Swaps in a reloaded rule set: alerts of rules that still exist keep their
    /// state; active alerts of rules that are gone are resolved (nothing would ever
    /// evaluate them again).
    pub fn reload(&mut self, rules: Arc<RuleSet>, now: Timestamp) -> Outcome {
        self.set_rules(rules);
        let orphans: Vec<Fingerprint> = self
            .alerts
            .values()
            .filter(|a| a.external.is_none() && !self.params.contains_key(&a.rule))
            .filter(|a| !matches!(a.state, State::Inactive | State::Resolved))
            .map(|a| a.fingerprint)
            .collect();
        let mut out = self.outcome();
        for fp in orphans {
            let event = Event::Resolve {
                actor: "tocsin".into(),
                note: Some("the rule was removed by a reload".into()),
            };
            if let Ok(o) = self.apply(fp, &event, now) {
                out.absorb(o);
            }
        }
        out.changes.next_incident = self.next_incident;
        out
    }

    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }

    pub fn alert(&self, fp: Fingerprint) -> Option<&Alert> {
        self.alerts.get(&fp)
    }

    /// The next incident number to hand out: every number below it was.
    pub fn next_incident(&self) -> u64 {
        self.next_incident
    }

    /// Drops an alert the store pruned past retention. Should it fire again, it
    /// starts as a new alert, under a new incident number.
    pub fn forget_pruned(&mut self, fp: Fingerprint) {
        if let Some(alert) = self.alerts.get(&fp).cloned() {
            self.forget(&alert);
        }
        self.refreshed.remove(&fp);
    }

    pub fn alert_by_incident(&self, id: u64) -> Option<&Alert> {
        self.alerts.values().find(|a| a.incident == Some(id))
    }

    /// Evaluates every rule at `now`.
    pub fn evaluate(&mut self, series: &SeriesStore, now: Timestamp) -> Outcome {
        let all: Vec<usize> = (0..self.rules.alerts.len()).collect();
        self.evaluate_rules(series, now, &all)
    }

    /// Evaluates the rules at these indices of the rule set at `now`.
    pub fn evaluate_rules(
        &mut self,
        series: &SeriesStore,
        now: Timestamp,
        which: &[usize],
    ) -> Outcome {
        let warm_until = *self
            .warm_until
            .get_or_insert(now + series.limits().lookback);
        let warming = now < warm_until;
        let rules = self.rules.clone();
        let mut out = self.outcome();
        for rule in which.iter().filter_map(|i| rules.alerts.get(*i)) {
            self.evaluate_one(rule, series, now, warming, &mut out);
        }
        out.changes.next_incident = self.next_incident;
        out
    }

    fn evaluate_one(
        &mut self,
        rule: &AlertRule,
        series: &SeriesStore,
        now: Timestamp,
        warming: bool,
        out: &mut Outcome,
    ) {
        let result = evaluate_rule(rule, series, now);
        let mut seen = HashSet::new();
        for (labels, value) in result.active() {
            let full = alert_labels(rule, labels);
            let fp = full.fingerprint();
            seen.insert(fp);
            self.series_labels
                .entry(fp)
                .or_insert_with(|| labels.clone());
            let resolve_holds = result.resolvable.as_ref().map(|r| r.contains(labels));
            let alert = self
                .alerts
                .remove(&fp)
                .unwrap_or_else(|| Alert::new(fp, rule.name.clone(), full));
            let event = Event::Evaluated {
                holds: true,
                resolve_holds,
                value,
            };
            self.step(alert, &event, now, out);
        }
        let unmapped = |e: &Engine| {
            e.by_rule
                .get(&rule.name)
                .is_some_and(|set| set.iter().any(|fp| !e.series_labels.contains_key(fp)))
        };
        // While warming up, learn which stored alerts' series now have data (and so
        // a real answer), even where the condition is false.
        if warming && unmapped(self) {
            for (labels, ..) in result.decided.iter().filter(|(_, holds, _)| !holds) {
                let fp = alert_labels(rule, labels).fingerprint();
                if self.alerts.contains_key(&fp) {
                    self.series_labels.insert(fp, labels.clone().into_owned());
                }
            }
        }
        // Alerts of this rule whose series no longer meet the condition. Resolved ones
        // too: a manually resolved alert waits for its condition to clear once.
        let others: Vec<Fingerprint> = self
            .by_rule
            .get(&rule.name)
            .into_iter()
            .flatten()
            .filter(|fp| !seen.contains(*fp))
            .filter_map(|fp| self.alerts.get(fp))
            .filter(|a| a.state != State::Inactive)
            .filter(|a| !warming || self.series_labels.contains_key(&a.fingerprint))
            .map(|a| a.fingerprint)
            .collect();
        if others.is_empty() {
            return;
        }
        let observed: FxHashSet<&Labels> = match result.resolvable {
            Some(_) => result.decided.iter().map(|(l, ..)| &**l).collect(),
            None => FxHashSet::default(),
        };
        for fp in others {
            let resolve_holds =
                result
                    .resolvable
                    .as_ref()
                    .map(|r| match self.series_labels.get(&fp) {
                        // A series with no data at all can resolve.
                        Some(l) => r.contains(l) || !observed.contains(l),
                        None => true,
                    });
            let alert = self.alerts.remove(&fp).expect("listed above");
            let event = Event::Evaluated {
                holds: false,
                resolve_holds,
                value: alert.value,
            };
            self.step(alert, &event, now, out);
        }
    }

    /// Applies an operator's event (ack, unack, resolve, silence) to one alert.
    pub fn apply(
        &mut self,
        fp: Fingerprint,
        event: &Event,
        now: Timestamp,
    ) -> Result<Outcome, Rejected> {
        let Some(alert) = self.alerts.get(&fp) else {
            return Err(Rejected {
                reason: "no such alert".into(),
            });
        };
        let params = self.params_for(alert);
        let transition = alert::step(&params, alert, event, now)?;
        let mut out = self.outcome();
        self.absorb(transition, now, &mut out);
        out.changes.next_incident = self.next_incident;
        Ok(out)
    }

    fn params_for(&self, alert: &Alert) -> Params {
        // External alerts follow their sender: fire and resolve at once. An alert whose
        // rule was removed by a reload still answers acks and resolves.
        match alert.external {
            Some(_) => Params::default(),
            None => self.params.get(&alert.rule).cloned().unwrap_or_default(),
        }
    }

    fn step(&mut self, alert: Alert, event: &Event, now: Timestamp, out: &mut Outcome) {
        let params = self.params_for(&alert);
        match alert::step(&params, &alert, event, now) {
            Ok(t) => {
                let changed = t.alert != alert;
                if changed || !t.actions.is_empty() {
                    self.absorb(t, now, out);
                } else {
                    self.put(alert);
                }
            }
            // Evaluations are never rejected; keep the alert as it was if one is.
            Err(_) => self.put(alert),
        }
    }

    /// Takes a transition into the engine's state and the outcome.
    fn absorb(&mut self, t: alert::Transition, now: Timestamp, out: &mut Outcome) {
        let mut alert = t.alert;
        let mut reasons = Vec::new();
        for action in t.actions {
            match action {
                Action::OpenIncident => {
                    alert.incident = Some(self.next_incident);
                    self.next_incident += 1;
                }
                Action::Notify(reason) => reasons.push(reason),
                Action::Record(entry) => out.changes.timeline.push((alert.fingerprint, entry)),
            }
        }
        // After all actions, so a notification carries an incident opened with it.
        out.notifications
            .extend(reasons.into_iter().map(|reason| Notification {
                alert: alert.fingerprint,
                incident: alert.incident,
                reason,
                at: now,
                then: alert.clone(),
            }));
        if alert.state == State::Inactive && alert.incident.is_none() {
            out.changes.removed.push(alert.fingerprint);
            self.forget(&alert);
        } else {
            out.changes.alerts.push(alert.clone());
            self.put(alert);
        }
    }

    /// Takes one alert another system evaluated (an Alertmanager webhook or a
    /// Prometheus `POST /api/v2/alerts`) into the same lifecycle, adding what changed
    /// to `out`. Idempotent: senders deliver at least once, in any order, so an
    /// occurrence is identified by fingerprint and `starts_at`, and an update about an
    /// older occurrence than the one held never changes it.
    pub fn receive_external(&mut self, incoming: ExternalAlert, now: Timestamp, out: &mut Outcome) {
        let ExternalAlert {
            labels,
            firing,
            mut external,
        } = incoming;
        let fp = labels.fingerprint();
        // A group incident lasts while any alert of the group fires, whichever
        // does: its occurrence starts with the earliest, not with those firing now.
        if external.group_key.is_some()
            && let Some(held) = self.alerts.get(&fp)
            && held.state.is_active()
            && let Some(h) = held.external.as_ref().map(|e| e.starts_at)
        {
            external.starts_at = external.starts_at.min(h);
        }
        if self.resent_unchanged(fp, firing, &external, out) {
            return;
        }
        // Moved into the alert when it is new, kept for a new occurrence otherwise.
        let mut labels = Some(labels);
        let fresh = |labels: Labels| {
            // A group incident may have no `alertname`: its labels name it.
            let rule = match labels.get("alertname") {
                Some(name) => name.to_string(),
                None => labels.to_string(),
            };
            Alert::new(fp, rule, labels)
        };
        let mut alert = match self.alerts.remove(&fp) {
            Some(a) => a,
            None => fresh(labels.take().expect("not taken yet")),
        };
        let held = alert.external.as_ref().map(|e| e.starts_at);
        if held.is_some_and(|h| external.starts_at < h) {
            // About an older occurrence than the one held: stale.
            self.put(alert);
            return;
        }
        let new_occurrence = held.is_some_and(|h| external.starts_at > h);
        let same_occurrence = held == Some(external.starts_at);
        if same_occurrence && firing && alert.state == State::Resolved {
            // A late duplicate of the firing message: this occurrence has resolved.
            self.put(alert);
            return;
        }
        // What a re-send may change besides the state. Prometheus re-sends every
        // firing alert each minute with only `endsAt` moved: that is kept in memory
        // and written at the next tick (a crash loses at most one tick of it), so a
        // re-send that changes nothing else writes nothing.
        let (described_anew, ends_moved) = match &alert.external {
            Some(e) => (
                !same_description(e, &external),
                e.ends_at != external.ends_at,
            ),
            None => (true, true),
        };
        if new_occurrence && firing {
            // A newer occurrence means the older one ended, whatever was received.
            let clear = Event::Evaluated {
                holds: false,
                resolve_holds: None,
                value: alert.value,
            };
            self.step(alert, &clear, now, out);
            alert = match self.alerts.remove(&fp) {
                Some(a) => a,
                None => fresh(labels.take().expect("held, so not taken")),
            };
        }
        alert.external = Some(Box::new(external));
        let event = Event::Evaluated {
            holds: firing,
            resolve_holds: None,
            value: alert.value,
        };
        let written = out.changes.alerts.len();
        self.step(alert, &event, now, out);
        if out.changes.alerts.len() > written || !self.alerts.contains_key(&fp) {
            // The step wrote it (or forgot it): its external part went with it.
        } else if described_anew || new_occurrence {
            out.changes.alerts.push(self.alerts[&fp].clone());
        } else if ends_moved {
            self.refreshed.insert(fp);
            out.expiring_sooner.push(fp);
        }
        out.changes.next_incident = self.next_incident;
    }

    /// Whether this is a re-send of the occurrence held, in the state held, with
    /// the same description: the common case (Prometheus re-sends every firing
    /// alert each minute), taken without a state-machine step. A moved `endsAt` is
    /// kept in memory and written at the next evaluation (a crash loses at most one
    /// evaluation interval of it).
    fn resent_unchanged(
        &mut self,
        fp: Fingerprint,
        firing: bool,
        incoming: &alert::External,
        out: &mut Outcome,
    ) -> bool {
        let Some(a) = self.alerts.get_mut(&fp) else {
            return false;
        };
        let same_state = match a.state {
            State::Firing | State::Acknowledged | State::Suppressed => {
                firing && a.cleared_since.is_none()
            }
            State::Resolved => !firing,
            State::Inactive | State::Pending => false,
        };
        let Some(held) = a.external.as_mut() else {
            return false;
        };
        if !same_state || held.starts_at != incoming.starts_at || !same_description(held, incoming)
        {
            return false;
        }
        if held.ends_at != incoming.ends_at {
            // Only a sooner end moves the deadline now: a later one is found when the
            // deadline held is reached, so the common re-send does no scheduling.
            let sooner = incoming
                .ends_at
                .is_some_and(|new| held.ends_at.is_none_or(|old| new < old));
            held.ends_at = incoming.ends_at;
            self.refreshed.insert(fp);
            if sooner {
                out.expiring_sooner.push(fp);
            }
        }
        true
    }

    /// Adds the alerts whose `endsAt` re-sends moved since the last call to `out`,
    /// to be written with it. Part of every tick.
    pub fn flush_refreshed(&mut self, out: &mut Outcome) {
        for fp in std::mem::take(&mut self.refreshed) {
            if let Some(a) = self.alerts.get(&fp) {
                out.changes.alerts.push(a.clone());
            }
        }
    }

    /// Brings every alert's silences up to date at `now`: a silence that started or
    /// now matches suppresses, one that ended or was expired releases.
    pub fn sync_silences(
        &mut self,
        silences: &[crate::silence::Silence],
        now: Timestamp,
    ) -> Outcome {
        let all: Vec<Fingerprint> = self
            .alerts
            .values()
            .filter(|a| a.state != State::Inactive)
            .map(|a| a.fingerprint)
            .collect();
        self.sync_silences_of(all, silences, now)
    }

    /// [`Engine::sync_silences`] for these alerts only: the ones a step just
    /// changed, while the silences themselves did not change.
    pub fn sync_silences_of(
        &mut self,
        alerts: impl IntoIterator<Item = Fingerprint>,
        silences: &[crate::silence::Silence],
        now: Timestamp,
    ) -> Outcome {
        let mut changes: Vec<(Fingerprint, Event)> = Vec::new();
        for fp in alerts {
            let Some(a) = self.alerts.get(&fp) else {
                continue;
            };
            if a.state == State::Inactive || (silences.is_empty() && a.silenced_by.is_empty()) {
                continue;
            }
            let want: Vec<&str> = silences
                .iter()
                .filter(|s| s.silences(&a.labels, now))
                .map(|s| s.id.as_str())
                .collect();
            for id in want.iter().filter(|id| !a.silenced_by.contains(**id)) {
                changes.push((a.fingerprint, Event::SilenceStart { id: id.to_string() }));
            }
            for id in a
                .silenced_by
                .iter()
                .filter(|id| !want.contains(&id.as_str()))
            {
                changes.push((a.fingerprint, Event::SilenceEnd { id: id.clone() }));
            }
        }
        let mut out = self.outcome();
        for (fp, event) in changes {
            if let Ok(o) = self.apply(fp, &event, now) {
                out.absorb(o);
            }
        }
        out.changes.next_incident = self.next_incident;
        out
    }

    /// Resolves those of `alerts` whose sender stopped refreshing them before their
    /// `ends_at`, as Alertmanager does; the others are left as they are.
    pub fn expire_external(
        &mut self,
        alerts: impl IntoIterator<Item = Fingerprint>,
        now: Timestamp,
    ) -> Outcome {
        self.restep(alerts, now, |_, a| {
            expires_at(a).is_some_and(|end| end <= now).then_some(false)
        })
    }

    /// Steps each of `alerts` as an evaluation would, for those `holds` answers:
    /// whether the alert's condition holds now (None: leave it as it is).
    fn restep(
        &mut self,
        alerts: impl IntoIterator<Item = Fingerprint>,
        now: Timestamp,
        holds: impl Fn(&Engine, &Alert) -> Option<bool>,
    ) -> Outcome {
        let mut out = self.outcome();
        for fp in alerts {
            let Some(holds) = self.alerts.get(&fp).and_then(|a| holds(self, a)) else {
                continue;
            };
            let alert = self.alerts.remove(&fp).expect("looked up above");
            let event = Event::Evaluated {
                holds,
                resolve_holds: None,
                value: alert.value,
            };
            self.step(alert, &event, now, &mut out);
        }
        out.changes.next_incident = self.next_incident;
        out
    }

    /// When a flapping external alert may stop flapping: when enough of its recent
    /// changes have left the flap window. Rule alerts are rechecked by their
    /// evaluations; an external alert has none, so it needs this deadline.
    pub fn flapping_ends_at(&self, alert: &Alert) -> Option<Timestamp> {
        if !alert.flapping || alert.external.is_none() {
            return None;
        }
        let params = self.params_for(alert);
        let keep = (params.flap_max_changes / 2) as usize;
        let count = alert.recent_changes.len();
        // The change whose leaving the window brings the count down to `keep`.
        let last_to_leave = alert.recent_changes.get(count.checked_sub(keep + 1)?)?;
        Some(*last_to_leave + params.flap_window + Duration::from_millis(1))
    }

    /// Steps these external alerts with what their sender last said, so flapping
    /// that ended with time is noticed without a new message from the sender.
    pub fn recheck_flapping(
        &mut self,
        alerts: impl IntoIterator<Item = Fingerprint>,
        now: Timestamp,
    ) -> Outcome {
        self.restep(alerts, now, |engine, a| {
            engine
                .flapping_ends_at(a)
                .is_some_and(|t| t <= now)
                .then_some(a.state.is_active())
        })
    }

    fn outcome(&self) -> Outcome {
        Outcome {
            changes: Changes {
                next_incident: self.next_incident,
                ..Changes::default()
            },
            ..Outcome::default()
        }
    }

    /// The alert's annotations, rendered with its value and labels.
    pub fn annotations(&self, alert: &Alert) -> std::collections::BTreeMap<String, String> {
        if let Some(e) = &alert.external {
            return e.annotations.to_map();
        }
        let Some(rule) = self.rules.alerts.iter().find(|r| r.name == alert.rule) else {
            return Default::default();
        };
        let value = ValueFormat::for_unit(rule.value_unit).format(alert.value);
        let labels = alert.labels.to_map();
        rule.annotations
            .iter()
            .map(|(k, t)| {
                (
                    k.clone(),
                    t.render(&value, &rule.name, rule.severity.name(), &labels),
                )
            })
            .collect()
    }

    /// The alert's last value as its rule's unit reads (`85%`, `1m 30s`), as
    /// `{{ value }}` shows it; a plain number for alerts of other systems.
    pub fn value_text(&self, alert: &Alert) -> String {
        let unit = (alert.external.is_none())
            .then(|| self.rules.alerts.iter().find(|r| r.name == alert.rule))
            .flatten()
            .and_then(|r| r.value_unit);
        ValueFormat::for_unit(unit).format(alert.value)
    }

    /// The escalation policy the alert's rule names (`escalate "POLICY"`), if any.
    pub fn escalation_of(&self, alert: &Alert) -> Option<&str> {
        if alert.external.is_some() {
            return None;
        }
        self.rules
            .alerts
            .iter()
            .find(|r| r.name == alert.rule)
            .and_then(|r| r.escalation.as_deref())
    }
}

/// When an external alert expires unless its sender refreshes it: its `endsAt`,
/// while it has fired and not resolved.
pub fn expires_at(alert: &Alert) -> Option<Timestamp> {
    if !alert.state.is_active() {
        return None;
    }
    alert.external.as_ref().and_then(|e| e.ends_at)
}

/// Whether a sender describes an alert as before: what a message shows besides
/// its state.
fn same_description(held: &alert::External, incoming: &alert::External) -> bool {
    held.annotations == incoming.annotations && held.generator_url == incoming.generator_url
}

/// An alert's labels: its series' labels, the rule's labels over them, then
/// `alertname` and `severity`, as Prometheus labels an alert.
pub fn alert_labels(rule: &AlertRule, series: &Labels) -> Labels {
    series.merged(
        rule.labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain([
                ("alertname", rule.name.as_str()),
                ("severity", rule.severity.name()),
            ]),
    )
}
