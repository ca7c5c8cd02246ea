//! Incident reports: the daily summary (last 24 h: fired, acked, resolved, time to
//! ack and to resolve) and the weekly report, computed from stored alerts and their
//! timelines, sent by email on schedule.
//!
//! [`summarize`] is pure: the caller reads the alerts and timelines from the store
//! and passes the period in; the email channel renders the [`Report`].

use std::collections::BTreeMap;
use std::time::Duration;

use crate::alert::{Alert, State, TimelineEntry};
use crate::calendar::Recurrence;
use crate::clock::Timestamp;

/// One `[[reports]]` entry: what period it covers, when it is sent, to whom.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportSchedule {
    /// `daily`, `weekly`, ... shown in the subject.
    pub name: String,
    pub when: Recurrence,
    /// The period covered, ending at the send time (24h, 7d).
    pub period: Duration,
    pub to: Vec<String>,
}

/// What happened to incidents in `[from, to)`.
///
/// Counts are of events in the period: an incident that fired yesterday and was
/// resolved today counts as resolved today (and its time to resolve is today's), so
/// consecutive reports add up and nothing falls between two of them.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub from: Timestamp,
    pub to: Timestamp,
    /// Incidents that fired in the period.
    pub fired: usize,
    /// Incidents first acknowledged in the period, whenever they fired.
    pub acked: usize,
    /// Incidents resolved in the period, whenever they fired.
    pub resolved: usize,
    /// From firing to the first ack, over the incidents acked in the period.
    pub time_to_ack: Option<Durations>,
    /// From firing to resolved, over the incidents resolved in the period.
    pub time_to_resolve: Option<Durations>,
    /// Incidents fired in the period, per rule, most first (ties by rule name).
    pub by_rule: Vec<RuleCount>,
    /// Incidents still open at `to`, oldest first, whenever they fired.
    pub open: Vec<OpenIncident>,
    /// Set when the period reaches back past the store's retention: incidents
    /// resolved before this instant were pruned and are not counted.
    pub retained_since: Option<Timestamp>,
}

impl Report {
    /// Notes that history before `horizon` was pruned, if the period reaches it.
    pub fn with_retention(mut self, horizon: Timestamp) -> Report {
        if self.from < horizon {
            self.retained_since = Some(horizon);
        }
        self
    }

    /// The line a report carries when its period reaches past retention.
    pub fn retention_note(&self) -> Option<String> {
        self.retained_since.map(|t| {
            format!(
                "Incidents resolved before {} are past retention (storage.retention) and not counted.",
                t.to_rfc3339()
            )
        })
    }
}

/// The middle and the average of some durations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Durations {
    pub count: usize,
    pub median: Duration,
    pub mean: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleCount {
    pub rule: String,
    pub count: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenIncident {
    /// Known for the alert's latest occurrence only: an alert remembers the number
    /// of its current incident, the timeline does not name earlier ones.
    pub incident: Option<u64>,
    pub rule: String,
    pub severity: String,
    /// The labels that tell this alert from others of its rule (no `alertname`,
    /// no `severity`).
    pub labels: BTreeMap<String, String>,
    pub fired_at: Timestamp,
    /// Firing, acknowledged or suppressed, as of `to`.
    pub state: State,
    pub acked_by: Option<String>,
}

/// Summarizes the incidents of `alerts` (each with its timeline) in `[from, to)`.
///
/// An alert that fired several times has one incident per occurrence; occurrences
/// are read from the timeline (an entry from an inactive state into an active one
/// starts one). Time to ack is taken to the first entry into `Acknowledged` after
/// the firing, time to resolve to the first entry into `Resolved`.
pub fn summarize(alerts: &[(Alert, Vec<TimelineEntry>)], from: Timestamp, to: Timestamp) -> Report {
    let in_period = |t: Timestamp| from <= t && t < to;
    let mut fired = 0;
    let mut to_ack = Vec::new();
    let mut to_resolve = Vec::new();
    let mut by_rule: BTreeMap<&str, usize> = BTreeMap::new();
    let mut open = Vec::new();

    for (alert, timeline) in alerts {
        for occurrence in occurrences(alert, timeline) {
            if in_period(occurrence.fired) {
                fired += 1;
                *by_rule.entry(alert.rule.as_str()).or_default() += 1;
            }
            if let Some((at, _)) = occurrence.acked
                && in_period(at)
            {
                to_ack.push(at.since(occurrence.fired));
            }
            if let Some(at) = occurrence.resolved
                && in_period(at)
            {
                to_resolve.push(at.since(occurrence.fired));
            }
            if let Some(state) = occurrence.state_at(to)
                && state.is_active()
            {
                open.push(OpenIncident {
                    incident: occurrence.incident,
                    rule: alert.rule.clone(),
                    severity: alert.labels.get("severity").unwrap_or("").to_string(),
                    labels: alert
                        .labels
                        .iter()
                        .filter(|(k, _)| !matches!(*k, "alertname" | "severity"))
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    fired_at: occurrence.fired,
                    state,
                    acked_by: occurrence.acked_by_at(to),
                });
            }
        }
    }

    let mut by_rule: Vec<RuleCount> = by_rule
        .into_iter()
        .map(|(rule, count)| RuleCount {
            rule: rule.to_string(),
            count,
        })
        .collect();
    // Stable: the BTreeMap already ordered ties by name.
    by_rule.sort_by_key(|r| std::cmp::Reverse(r.count));
    open.sort_by_key(|o| (o.fired_at, o.incident));

    Report {
        from,
        to,
        fired,
        acked: to_ack.len(),
        resolved: to_resolve.len(),
        time_to_ack: Durations::of(to_ack),
        time_to_resolve: Durations::of(to_resolve),
        by_rule,
        open,
        retained_since: None,
    }
}

impl Durations {
    /// None for no durations: "median 0s" would claim something that was not measured.
    pub fn of(mut ds: Vec<Duration>) -> Option<Durations> {
        if ds.is_empty() {
            return None;
        }
        ds.sort();
        let n = ds.len();
        let median = if n % 2 == 1 {
            ds[n / 2]
        } else {
            (ds[n / 2 - 1] + ds[n / 2]) / 2
        };
        let total: Duration = ds.iter().sum();
        Some(Durations {
            count: n,
            median,
            mean: total / n as u32,
        })
    }
}

/// One firing of an alert, from its timeline.
struct Occurrence {
    fired: Timestamp,
    incident: Option<u64>,
    /// The first ack after firing, and who gave it.
    acked: Option<(Timestamp, Option<String>)>,
    resolved: Option<Timestamp>,
    /// The state changes of this occurrence in time order, the firing first:
    /// (when, into what state, by whom).
    changes: Vec<(Timestamp, State, Option<String>)>,
}

impl Occurrence {
    fn new(fired: Timestamp, state: State) -> Occurrence {
        Occurrence {
            fired,
            incident: None,
            acked: None,
            resolved: None,
            changes: vec![(fired, state, None)],
        }
    }

    /// The state as of `t` (changes strictly before it), None before it fired.
    fn state_at(&self, t: Timestamp) -> Option<State> {
        self.changes
            .iter()
            .take_while(|(at, _, _)| *at < t)
            .last()
            .map(|(_, state, _)| *state)
    }

    /// Who holds the ack as of `t`, if the alert is acknowledged then.
    fn acked_by_at(&self, t: Timestamp) -> Option<String> {
        let (_, state, actor) = self
            .changes
            .iter()
            .take_while(|(at, _, _)| *at < t)
            .last()?;
        if *state == State::Acknowledged {
            actor.clone()
        } else {
            None
        }
    }
}

/// Splits an alert's timeline into its occurrences. An alert whose timeline shows no
/// firing but that has fired (a timeline lost or pruned) is taken from its fields.
fn occurrences(alert: &Alert, timeline: &[TimelineEntry]) -> Vec<Occurrence> {
    let mut entries: Vec<&TimelineEntry> = timeline.iter().collect();
    entries.sort_by_key(|e| e.at);

    let mut found: Vec<Occurrence> = Vec::new();
    for e in entries {
        let starts = matches!(e.from, State::Inactive | State::Pending | State::Resolved)
            && e.to.is_active();
        if starts {
            found.push(Occurrence::new(e.at, e.to));
            continue;
        }
        let Some(current) = found.last_mut() else {
            continue;
        };
        if current.resolved.is_some() {
            continue;
        }
        if e.to != e.from {
            current.changes.push((e.at, e.to, e.actor.clone()));
        }
        if e.to == State::Acknowledged && current.acked.is_none() {
            current.acked = Some((e.at, e.actor.clone()));
        }
        if e.to == State::Resolved {
            current.resolved = Some(e.at);
        }
    }

    if found.is_empty()
        && let Some(fired) = alert.fired_at
    {
        let first = if alert.state == State::Suppressed {
            State::Suppressed
        } else {
            State::Firing
        };
        let mut o = Occurrence::new(fired, first);
        if let Some(ack) = &alert.ack {
            o.acked = Some((ack.at, Some(ack.actor.clone())));
            o.changes
                .push((ack.at, State::Acknowledged, Some(ack.actor.clone())));
        }
        if let Some(resolved) = alert.resolved_at.filter(|r| *r >= fired) {
            o.resolved = Some(resolved);
            o.changes.push((resolved, State::Resolved, None));
        }
        found.push(o);
    }

    for o in &mut found {
        if Some(o.fired) == alert.fired_at {
            o.incident = alert.incident;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Action, Event, Params, step};
    use crate::labels::Labels;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    /// 2026-11-28T00:00:00Z
    const DAY_START: i64 = 1_795_824_000_000;

    fn t(offset_ms: i64) -> Timestamp {
        Timestamp(DAY_START + offset_ms)
    }

    /// An alert driven through the real state machine, so the timelines under test
    /// are the ones the daemon stores.
    struct Life {
        alert: Alert,
        timeline: Vec<TimelineEntry>,
        next_incident: u64,
    }

    impl Life {
        fn new(rule: &str, host: &str, first_incident: u64) -> Life {
            let labels = Labels::from_pairs([
                ("alertname", rule),
                ("severity", "critical"),
                ("host", host),
            ]);
            Life {
                alert: Alert::new(labels.fingerprint(), rule.to_string(), labels),
                timeline: Vec::new(),
                next_incident: first_incident,
            }
        }

        fn on(mut self, at: Timestamp, event: Event) -> Life {
            let tr = step(&Params::default(), &self.alert, &event, at).expect("accepted");
            self.alert = tr.alert;
            for action in tr.actions {
                match action {
                    Action::OpenIncident => {
                        self.alert.incident = Some(self.next_incident);
                        self.next_incident += 1;
                    }
                    Action::Record(e) => self.timeline.push(e),
                    Action::Notify(_) => {}
                }
            }
            self
        }

        fn fire(self, at: Timestamp) -> Life {
            self.on(at, evaluated(true))
        }

        fn clear(self, at: Timestamp) -> Life {
            self.on(at, evaluated(false))
        }

        fn ack(self, at: Timestamp, who: &str) -> Life {
            let ack = Event::Ack {
                actor: who.to_string(),
                via: "slack".to_string(),
                note: None,
            };
            self.on(at, ack)
        }

        fn done(self) -> (Alert, Vec<TimelineEntry>) {
            (self.alert, self.timeline)
        }
    }

    fn evaluated(holds: bool) -> Event {
        Event::Evaluated {
            holds,
            resolve_holds: None,
            value: 1.0,
        }
    }

    fn mins(n: u64) -> Duration {
        Duration::from_secs(n * 60)
    }

    fn day() -> (Timestamp, Timestamp) {
        (t(0), t(24 * HOUR))
    }

    #[test]
    fn counts_what_happened_in_the_period() {
        let alerts = vec![
            // Fired, acked after 5m, resolved after 30m, all today.
            Life::new("投稿成功率低下", "bot-1", 40)
                .fire(t(HOUR))
                .ack(t(HOUR + 5 * MIN), "alice")
                .clear(t(HOUR + 30 * MIN))
                .done(),
            // Fired today, acked after 15m, still open tonight.
            Life::new("投稿成功率低下", "bot-2", 41)
                .fire(t(2 * HOUR))
                .ack(t(2 * HOUR + 15 * MIN), "bob")
                .done(),
            // Fired yesterday, resolved today after 70m: resolved here, not fired.
            Life::new("CPU使用率異常", "bot-3", 39)
                .fire(t(-HOUR))
                .clear(t(10 * MIN))
                .done(),
            // Fires tomorrow: not in this report at all.
            Life::new("CPU使用率異常", "bot-4", 50)
                .fire(t(25 * HOUR))
                .done(),
        ];
        let (from, to) = day();
        let r = summarize(&alerts, from, to);

        assert_eq!((r.fired, r.acked, r.resolved), (2, 2, 2));
        assert_eq!(
            r.time_to_ack,
            Some(Durations {
                count: 2,
                median: mins(10),
                mean: mins(10),
            })
        );
        assert_eq!(
            r.time_to_resolve,
            Some(Durations {
                count: 2,
                median: mins(50),
                mean: mins(50),
            })
        );
        assert_eq!(
            r.by_rule,
            vec![RuleCount {
                rule: "投稿成功率低下".to_string(),
                count: 2,
            }]
        );
        assert_eq!(r.open.len(), 1, "{:?}", r.open);
        let open = &r.open[0];
        assert_eq!(open.incident, Some(41));
        assert_eq!(open.state, State::Acknowledged);
        assert_eq!(open.acked_by.as_deref(), Some("bob"));
        assert_eq!(open.fired_at, t(2 * HOUR));
        assert_eq!(open.severity, "critical");
        assert_eq!(
            open.labels,
            BTreeMap::from([("host".to_string(), "bot-2".to_string())])
        );
    }

    #[test]
    fn an_alert_that_fires_twice_is_two_incidents() {
        let alerts = vec![
            Life::new("ディスク残量不足", "db-1", 7)
                .fire(t(HOUR))
                .clear(t(HOUR + 20 * MIN))
                .fire(t(5 * HOUR))
                .ack(t(5 * HOUR + 3 * MIN), "carol")
                .clear(t(5 * HOUR + 40 * MIN))
                .done(),
            Life::new("CPU使用率異常", "bot-1", 20)
                .fire(t(3 * HOUR))
                .done(),
        ];
        let (from, to) = day();
        let r = summarize(&alerts, from, to);

        assert_eq!((r.fired, r.acked, r.resolved), (3, 1, 2));
        assert_eq!(r.time_to_ack.map(|d| d.median), Some(mins(3)));
        // 20m and 40m.
        assert_eq!(
            r.time_to_resolve,
            Some(Durations {
                count: 2,
                median: mins(30),
                mean: mins(30),
            })
        );
        assert_eq!(
            r.by_rule,
            vec![
                RuleCount {
                    rule: "ディスク残量不足".to_string(),
                    count: 2,
                },
                RuleCount {
                    rule: "CPU使用率異常".to_string(),
                    count: 1,
                },
            ]
        );
        assert_eq!(r.open.len(), 1);
        assert_eq!(r.open[0].incident, Some(20));
        assert_eq!(r.open[0].state, State::Firing);
        assert_eq!(r.open[0].acked_by, None);
    }

    #[test]
    fn open_is_judged_at_the_end_of_the_period() {
        let alerts = vec![
            // Fired two days ago, resolved after the period ended: open at `to`,
            // acked long before the period, so neither fired nor acked here.
            Life::new("投稿成功率低下", "bot-1", 1)
                .fire(t(-48 * HOUR))
                .ack(t(-47 * HOUR), "dave")
                .clear(t(26 * HOUR))
                .done(),
            // Resolved by hand within the period.
            Life::new("投稿成功率低下", "bot-2", 2)
                .fire(t(-2 * HOUR))
                .on(
                    t(HOUR),
                    Event::Resolve {
                        actor: "erin".to_string(),
                        note: None,
                    },
                )
                .done(),
        ];
        let (from, to) = day();
        let r = summarize(&alerts, from, to);

        assert_eq!((r.fired, r.acked, r.resolved), (0, 0, 1));
        assert_eq!(r.time_to_ack, None);
        assert_eq!(r.time_to_resolve.map(|d| d.median), Some(mins(180)));
        assert!(r.by_rule.is_empty());
        assert_eq!(r.open.len(), 1);
        // The alert now knows it resolved, but at `to` it was still acknowledged.
        assert_eq!(r.open[0].incident, Some(1));
        assert_eq!(r.open[0].state, State::Acknowledged);
        assert_eq!(r.open[0].acked_by.as_deref(), Some("dave"));
    }

    #[test]
    fn silenced_firing_is_an_incident_and_open() {
        let alerts = vec![
            Life::new("投稿成功率低下", "bot-1", 3)
                .on(
                    t(0),
                    Event::SilenceStart {
                        id: "maint".to_string(),
                    },
                )
                .fire(t(HOUR))
                .done(),
        ];
        let (from, to) = day();
        let r = summarize(&alerts, from, to);
        assert_eq!(r.fired, 1);
        assert_eq!(r.open.len(), 1);
        assert_eq!(r.open[0].state, State::Suppressed);
    }

    #[test]
    fn an_alert_without_a_timeline_is_read_from_its_fields() {
        let (mut alert, _) = Life::new("投稿成功率低下", "bot-1", 9)
            .fire(t(HOUR))
            .ack(t(HOUR + 6 * MIN), "frank")
            .done();
        alert.incident = Some(9);
        let (from, to) = day();
        let r = summarize(&[(alert, Vec::new())], from, to);
        assert_eq!((r.fired, r.acked, r.resolved), (1, 1, 0));
        assert_eq!(r.time_to_ack.map(|d| d.mean), Some(mins(6)));
        assert_eq!(r.open[0].acked_by.as_deref(), Some("frank"));
    }

    #[test]
    fn median_of_an_even_count_is_the_middle_two_averaged() {
        let d = Durations::of(vec![mins(9), mins(1), mins(3), mins(100)]).unwrap();
        assert_eq!(d.median, mins(6));
        assert_eq!(d.mean, Duration::from_secs(113 * 60 / 4));
        let d = Durations::of(vec![mins(9), mins(1), mins(3)]).unwrap();
        assert_eq!(d.median, mins(3));
        assert_eq!(Durations::of(Vec::new()), None);
    }

    #[test]
    fn nothing_happened_is_an_empty_report() {
        let (from, to) = day();
        let r = summarize(&[], from, to);
        assert_eq!((r.fired, r.acked, r.resolved), (0, 0, 0));
        assert!(r.open.is_empty() && r.by_rule.is_empty());
        assert_eq!((r.from, r.to), (from, to));
    }
}
