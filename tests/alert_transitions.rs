//! The alert state machine: one table over every (state, event kind) pair, then
//! scenarios that run an alert through time, then a property over random event
//! sequences. Time is a value here: no test sleeps.

use std::time::Duration;

use proptest::prelude::*;
use tocsin::alert::{
    Ack, Action, Alert, Event, NotifyReason, Params, Rejected, State, Transition, step,
};
use tocsin::clock::Timestamp;
use tocsin::labels::Labels;
use tocsin::rules::model::Hold;

const T: Timestamp = Timestamp(1_700_000_000_000);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn mins(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

fn at(d: Duration) -> Timestamp {
    T + d
}

fn new_alert() -> Alert {
    let labels = Labels::from_pairs([("alertname", "HighCpu"), ("severity", "critical")]);
    Alert::new(labels.fingerprint(), "HighCpu".into(), labels)
}

// ---------------------------------------------------------------------------
// The table: every state × every event kind, through one helper.
// ---------------------------------------------------------------------------

/// An alert in `state` as the machine would have left it at `T`.
fn fixture(name: &str) -> Alert {
    let mut a = new_alert();
    let firing = |a: &mut Alert| {
        a.state = State::Firing;
        a.incident = Some(7);
        a.active_since = Some(T - mins(10));
        a.fired_at = Some(T - mins(5));
        a.consecutive = 10;
    };
    let ack = || Ack {
        actor: "alice".into(),
        via: "slack".into(),
        note: None,
        at: T - mins(1),
    };
    match name {
        "inactive" => {}
        "pending" => {
            a.state = State::Pending;
            a.active_since = Some(T - mins(1));
            a.consecutive = 1;
        }
        "firing" => firing(&mut a),
        "acknowledged" => {
            firing(&mut a);
            a.state = State::Acknowledged;
            a.ack = Some(Box::new(ack()));
        }
        "resolved" => {
            a.state = State::Resolved;
            a.incident = Some(7);
            a.fired_at = Some(T - mins(30));
            a.resolved_at = Some(T - mins(10));
        }
        "suppressed" => {
            firing(&mut a);
            a.state = State::Suppressed;
            a.silenced_by.insert("s1".into());
            a.resume_to = Some(State::Firing);
        }
        "suppressed+acked" => {
            firing(&mut a);
            a.state = State::Suppressed;
            a.ack = Some(Box::new(ack()));
            a.silenced_by.insert("s1".into());
            a.resume_to = Some(State::Acknowledged);
        }
        "inactive+silenced" => {
            a.silenced_by.insert("s1".into());
        }
        "resolved+awaiting_clear" => {
            a = fixture("resolved");
            a.awaiting_clear = true;
        }
        other => panic!("no fixture {other}"),
    }
    a
}

fn event(name: &str) -> Event {
    match name {
        "holds" => Event::Evaluated {
            holds: true,
            resolve_holds: None,
            value: 1.0,
        },
        "clear" => Event::Evaluated {
            holds: false,
            resolve_holds: None,
            value: 0.0,
        },
        "ack" => Event::Ack {
            actor: "bob".into(),
            via: "cli".into(),
            note: None,
        },
        "unack" => Event::Unack {
            actor: "bob".into(),
        },
        "ack_expired" => Event::AckExpired,
        "resolve" => Event::Resolve {
            actor: "bob".into(),
            note: Some("fixed by hand".into()),
        },
        "silence_start" => Event::SilenceStart { id: "s2".into() },
        "silence_end" => Event::SilenceEnd { id: "s1".into() },
        other => panic!("no event {other}"),
    }
}

const EVENT_KINDS: &[&str] = &[
    "holds",
    "clear",
    "ack",
    "unack",
    "ack_expired",
    "resolve",
    "silence_start",
    "silence_end",
];

/// `for 5m`, nothing else: pending first, resolving at once.
fn table_params() -> Params {
    Params {
        hold: Hold::For(mins(5)),
        ..Params::default()
    }
}

/// The outcome as one line: `state: action, action` or `rejected: reason`.
fn summarize(result: &Result<Transition, Rejected>) -> String {
    match result {
        Err(r) => format!("rejected: {}", r.reason),
        Ok(t) if t.actions.is_empty() => format!("{}: -", t.alert.state),
        Ok(t) => {
            let actions: Vec<String> = t
                .actions
                .iter()
                .map(|a| match a {
                    Action::OpenIncident => "open".to_string(),
                    Action::Notify(r) => format!("notify {r:?}"),
                    Action::Record(e) if e.from == e.to => format!("record {}", e.from),
                    Action::Record(e) => format!("record {}->{}", e.from, e.to),
                })
                .collect();
            format!("{}: {}", t.alert.state, actions.join(", "))
        }
    }
}

/// Runs one step and checks the invariants every transition keeps, then the
/// expected outcome.
fn check(params: &Params, before: &Alert, event: &Event, now: Timestamp, want: &str) {
    let result = step(params, before, event, now);
    if let Ok(t) = &result {
        let changes: Vec<_> = t
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Record(e) if e.from != e.to => Some(e),
                _ => None,
            })
            .collect();
        if t.alert.state == before.state {
            assert!(changes.is_empty(), "no state change, yet {changes:?}");
        } else {
            assert_eq!(changes.len(), 1, "one entry per change: {:?}", t.actions);
            assert_eq!(
                (changes[0].from, changes[0].to, changes[0].at),
                (before.state, t.alert.state, now)
            );
        }
    }
    assert_eq!(
        summarize(&result),
        want,
        "{} + {event:?}",
        before.state.name()
    );
}

#[test]
fn every_state_and_event() {
    #[rustfmt::skip]
    let table: &[(&str, &str, &str)] = &[
        ("inactive", "holds", "pending: record inactive->pending"),
        ("inactive", "clear", "inactive: -"),
        ("inactive", "ack", "rejected: alert is not firing"),
        ("inactive", "unack", "rejected: alert is not acknowledged"),
        ("inactive", "ack_expired", "inactive: -"),
        ("inactive", "resolve", "rejected: alert is not active"),
        ("inactive", "silence_start", "inactive: -"),
        ("inactive", "silence_end", "inactive: -"),

        ("pending", "holds", "pending: -"),
        ("pending", "clear", "inactive: record pending->inactive"),
        ("pending", "ack", "rejected: alert is not firing"),
        ("pending", "unack", "rejected: alert is not acknowledged"),
        ("pending", "ack_expired", "pending: -"),
        ("pending", "resolve", "resolved: record pending->resolved"),
        ("pending", "silence_start", "pending: -"),
        ("pending", "silence_end", "pending: -"),

        ("firing", "holds", "firing: -"),
        ("firing", "clear", "resolved: record firing->resolved, notify Resolved"),
        ("firing", "ack", "acknowledged: record firing->acknowledged, notify Acknowledged"),
        ("firing", "unack", "rejected: alert is not acknowledged"),
        ("firing", "ack_expired", "firing: -"),
        ("firing", "resolve", "resolved: record firing->resolved, notify Resolved"),
        ("firing", "silence_start", "suppressed: record firing->suppressed"),
        ("firing", "silence_end", "firing: -"),

        ("acknowledged", "holds", "acknowledged: -"),
        ("acknowledged", "clear", "resolved: record acknowledged->resolved, notify Resolved"),
        ("acknowledged", "ack", "rejected: alert is already acknowledged by alice"),
        ("acknowledged", "unack", "firing: record acknowledged->firing, notify Unacknowledged"),
        ("acknowledged", "ack_expired", "firing: record acknowledged->firing, notify AckExpired"),
        ("acknowledged", "resolve", "resolved: record acknowledged->resolved, notify Resolved"),
        ("acknowledged", "silence_start", "suppressed: record acknowledged->suppressed"),
        ("acknowledged", "silence_end", "acknowledged: -"),

        ("resolved", "holds", "pending: record resolved->pending"),
        ("resolved", "clear", "resolved: -"),
        ("resolved", "ack", "rejected: alert is already resolved"),
        ("resolved", "unack", "rejected: alert is not acknowledged"),
        ("resolved", "ack_expired", "resolved: -"),
        ("resolved", "resolve", "rejected: alert is already resolved"),
        ("resolved", "silence_start", "resolved: -"),
        ("resolved", "silence_end", "resolved: -"),

        ("suppressed", "holds", "suppressed: -"),
        ("suppressed", "clear", "resolved: record suppressed->resolved, notify Resolved"),
        ("suppressed", "ack", "suppressed: record suppressed, notify Acknowledged"),
        ("suppressed", "unack", "rejected: alert is not acknowledged"),
        ("suppressed", "ack_expired", "suppressed: -"),
        ("suppressed", "resolve", "resolved: record suppressed->resolved, notify Resolved"),
        ("suppressed", "silence_start", "suppressed: -"),
        ("suppressed", "silence_end", "firing: record suppressed->firing, notify SilenceEnded"),

        // Suppressed while acknowledged: the ack lives on in `resume_to`.
        ("suppressed+acked", "holds", "suppressed: -"),
        ("suppressed+acked", "clear", "resolved: record suppressed->resolved, notify Resolved"),
        ("suppressed+acked", "ack", "rejected: alert is already acknowledged by alice"),
        ("suppressed+acked", "unack", "suppressed: record suppressed, notify Unacknowledged"),
        ("suppressed+acked", "ack_expired", "suppressed: record suppressed"),
        ("suppressed+acked", "resolve", "resolved: record suppressed->resolved, notify Resolved"),
        ("suppressed+acked", "silence_start", "suppressed: -"),
        ("suppressed+acked", "silence_end", "acknowledged: record suppressed->acknowledged"),

        // A manual resolve waits for the condition to clear once.
        ("resolved+awaiting_clear", "holds", "resolved: -"),
        ("resolved+awaiting_clear", "clear", "resolved: -"),
    ];

    // Every state meets every event kind.
    for state in State::ALL {
        for kind in EVENT_KINDS {
            assert!(
                table
                    .iter()
                    .any(|(f, e, _)| fixture(f).state == state && e == kind),
                "table misses {state} + {kind}"
            );
        }
    }

    let params = table_params();
    for (f, e, want) in table {
        check(&params, &fixture(f), &event(e), T, want);
    }

    // The same pairs where the hold or the time makes the difference.
    let immediately = Params::default();
    check(
        &immediately,
        &fixture("inactive"),
        &event("holds"),
        T,
        "firing: open, record inactive->firing, notify Firing",
    );
    check(
        &immediately,
        &fixture("resolved"),
        &event("holds"),
        T,
        "firing: open, record resolved->firing, notify Firing",
    );
    check(
        &immediately,
        &fixture("inactive+silenced"),
        &event("holds"),
        T,
        "suppressed: open, record inactive->suppressed",
    );
    check(
        &params,
        &fixture("pending"),
        &event("holds"),
        T + mins(4),
        "firing: open, record pending->firing, notify Firing",
    );
    let ack_timeout = Params {
        ack_timeout: Some(mins(30)),
        ..table_params()
    };
    check(
        &ack_timeout,
        &fixture("acknowledged"),
        &event("ack_expired"),
        T,
        "acknowledged: -",
    );
    check(
        &ack_timeout,
        &fixture("acknowledged"),
        &event("ack_expired"),
        T + mins(29),
        "firing: record acknowledged->firing, notify AckExpired",
    );
}

// ---------------------------------------------------------------------------
// Scenarios: an alert through time.
// ---------------------------------------------------------------------------

/// Drives one alert as the engine would: assigns incident ids, keeps the actions.
struct Sim {
    params: Params,
    alert: Alert,
    next_incident: u64,
}

impl Sim {
    fn new(params: Params) -> Sim {
        Sim {
            params,
            alert: new_alert(),
            next_incident: 1,
        }
    }

    fn send(&mut self, now: Timestamp, event: Event) -> Vec<Action> {
        let t = step(&self.params, &self.alert, &event, now).expect("not rejected");
        self.alert = t.alert;
        for a in &t.actions {
            if *a == Action::OpenIncident {
                self.alert.incident = Some(self.next_incident);
                self.next_incident += 1;
            }
        }
        t.actions
    }

    fn eval(&mut self, now: Timestamp, holds: bool) -> Vec<Action> {
        self.send(
            now,
            Event::Evaluated {
                holds,
                resolve_holds: None,
                value: if holds { 1.0 } else { 0.0 },
            },
        )
    }

    /// With `resolve when`: `holds` and `resolve_holds` given separately.
    fn eval2(&mut self, now: Timestamp, holds: bool, resolve_holds: bool) -> Vec<Action> {
        self.send(
            now,
            Event::Evaluated {
                holds,
                resolve_holds: Some(resolve_holds),
                value: 0.5,
            },
        )
    }

    fn state(&self) -> State {
        self.alert.state
    }
}

fn notifies(actions: &[Action]) -> Vec<NotifyReason> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Notify(r) => Some(*r),
            _ => None,
        })
        .collect()
}

fn reasons(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Record(e) => Some(e.reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn for_15m_is_pending_then_fires_at_exactly_15m() {
    let mut sim = Sim::new(Params {
        hold: Hold::For(mins(15)),
        ..Params::default()
    });
    let acts = sim.eval(T, true);
    assert_eq!(sim.state(), State::Pending);
    assert_eq!(sim.alert.active_since, Some(T));
    assert!(notifies(&acts).is_empty(), "pending never notifies");
    for m in 1..15 {
        assert!(sim.eval(at(mins(m)), true).is_empty());
        assert_eq!(sim.state(), State::Pending);
    }
    assert!(sim.eval(at(mins(15) - secs(1)), true).is_empty());
    let acts = sim.eval(at(mins(15)), true);
    assert_eq!(sim.state(), State::Firing);
    assert_eq!(acts[0], Action::OpenIncident);
    assert_eq!(notifies(&acts), [NotifyReason::Firing]);
    assert_eq!(reasons(&acts), ["condition held for 15m"]);
    assert_eq!(sim.alert.incident, Some(1));
    assert_eq!(sim.alert.fired_at, Some(at(mins(15))));
    assert_eq!(sim.alert.active_since, Some(T), "activeAt is kept");
}

#[test]
fn pending_that_clears_goes_inactive_silently() {
    let mut sim = Sim::new(Params {
        hold: Hold::For(mins(15)),
        ..Params::default()
    });
    sim.eval(T, true);
    let acts = sim.eval(at(mins(5)), false);
    assert_eq!(sim.state(), State::Inactive);
    assert!(notifies(&acts).is_empty());
    assert_eq!(
        reasons(&acts),
        ["condition stopped holding after 5m pending"]
    );
    assert_eq!(sim.alert.active_since, None);
    // Holding again starts the `for` over.
    sim.eval(at(mins(6)), true);
    assert_eq!(sim.alert.active_since, Some(at(mins(6))));
    sim.eval(at(mins(20)), true);
    assert_eq!(sim.state(), State::Pending);
    sim.eval(at(mins(21)), true);
    assert_eq!(sim.state(), State::Firing);
}

#[test]
fn keep_firing_for_holds_the_alert_after_the_condition_clears() {
    let mut sim = Sim::new(Params {
        keep_firing_for: Some(mins(10)),
        ..Params::default()
    });
    sim.eval(T, true);
    assert_eq!(sim.state(), State::Firing);
    sim.eval(at(mins(1)), false);
    assert_eq!(sim.state(), State::Firing);
    assert_eq!(sim.alert.cleared_since, Some(at(mins(1))));
    // Holding again resets the keep-firing clock.
    sim.eval(at(mins(5)), true);
    assert_eq!(sim.alert.cleared_since, None);
    sim.eval(at(mins(6)), false);
    assert!(sim.eval(at(mins(16) - secs(1)), false).is_empty());
    assert_eq!(sim.state(), State::Firing);
    let acts = sim.eval(at(mins(16)), false);
    assert_eq!(sim.state(), State::Resolved);
    assert_eq!(notifies(&acts), [NotifyReason::Resolved]);
    assert_eq!(reasons(&acts), ["condition cleared, kept firing for 10m"]);
    assert_eq!(sim.alert.resolved_at, Some(at(mins(16))));
}

#[test]
fn hysteresis_resolves_only_when_the_resolve_condition_held() {
    // cpu > 90% fires; resolve when cpu < 80% for 5m.
    let mut sim = Sim::new(Params {
        resolve_hold: Some(Hold::For(mins(5))),
        ..Params::default()
    });
    sim.eval2(T, true, false);
    assert_eq!(sim.state(), State::Firing);
    // 85%: the condition no longer holds, but neither does the resolve condition.
    for m in 1..30 {
        sim.eval2(at(mins(m)), false, false);
        assert_eq!(sim.state(), State::Firing);
    }
    sim.eval2(at(mins(30)), false, true);
    sim.eval2(at(mins(33)), false, true);
    assert_eq!(sim.state(), State::Firing);
    // Back to 85% resets the resolve hold.
    sim.eval2(at(mins(34)), false, false);
    assert_eq!(sim.alert.cleared_since, None);
    sim.eval2(at(mins(35)), false, true);
    sim.eval2(at(mins(39)), false, true);
    assert_eq!(sim.state(), State::Firing);
    let acts = sim.eval2(at(mins(40)), false, true);
    assert_eq!(sim.state(), State::Resolved);
    assert_eq!(reasons(&acts), ["resolve condition held for 5m"]);

    // The same by evaluations: `resolve when ... for 3 evaluations`.
    let mut sim = Sim::new(Params {
        resolve_hold: Some(Hold::Evaluations(3)),
        ..Params::default()
    });
    sim.eval2(T, true, false);
    sim.eval2(at(mins(1)), false, true);
    sim.eval2(at(mins(2)), false, true);
    sim.eval2(at(mins(3)), false, false);
    sim.eval2(at(mins(4)), false, true);
    sim.eval2(at(mins(5)), false, true);
    assert_eq!(sim.state(), State::Firing);
    sim.eval2(at(mins(6)), false, true);
    assert_eq!(sim.state(), State::Resolved);
}

#[test]
fn for_3_evaluations_fires_at_the_third_in_a_row() {
    let mut sim = Sim::new(Params {
        hold: Hold::Evaluations(3),
        ..Params::default()
    });
    sim.eval(T, true);
    assert_eq!((sim.state(), sim.alert.consecutive), (State::Pending, 1));
    sim.eval(at(secs(30)), true);
    sim.eval(at(secs(60)), false);
    assert_eq!((sim.state(), sim.alert.consecutive), (State::Inactive, 0));
    sim.eval(at(secs(90)), true);
    sim.eval(at(secs(120)), true);
    assert_eq!(sim.state(), State::Pending);
    let acts = sim.eval(at(secs(150)), true);
    assert_eq!(sim.state(), State::Firing);
    assert_eq!(reasons(&acts), ["condition held for 3 evaluations"]);
}

#[test]
fn firing_again_after_resolving_opens_a_new_incident() {
    let mut sim = Sim::new(Params::default());
    sim.eval(T, true);
    assert_eq!(sim.alert.incident, Some(1));
    sim.eval(at(mins(1)), false);
    assert_eq!(sim.state(), State::Resolved);
    assert_eq!(sim.alert.incident, Some(1), "kept for review");
    let acts = sim.eval(at(mins(2)), true);
    assert_eq!(sim.state(), State::Firing);
    assert!(acts.contains(&Action::OpenIncident));
    assert_eq!(sim.alert.incident, Some(2));
    assert_eq!(sim.alert.resolved_at, None);
}

#[test]
fn manual_resolve_does_not_refire_until_the_condition_cleared_once() {
    let mut sim = Sim::new(Params::default());
    sim.eval(T, true);
    let acts = sim.send(
        at(mins(1)),
        Event::Resolve {
            actor: "alice".into(),
            note: Some("restarted the bot".into()),
        },
    );
    assert_eq!(sim.state(), State::Resolved);
    assert_eq!(notifies(&acts), [NotifyReason::Resolved]);
    let Action::Record(entry) = &acts[0] else {
        panic!("{acts:?}")
    };
    assert_eq!(entry.actor.as_deref(), Some("alice"));
    assert_eq!(entry.note.as_deref(), Some("restarted the bot"));
    assert!(sim.alert.awaiting_clear);

    // Still true at the next evaluations: no re-fire.
    for m in 2..10 {
        assert!(sim.eval(at(mins(m)), true).is_empty());
        assert_eq!(sim.state(), State::Resolved);
    }
    // A resolve wins over a later (concurrent) ack.
    let late_ack = Event::Ack {
        actor: "bob".into(),
        via: "slack".into(),
        note: None,
    };
    let err = step(&sim.params, &sim.alert, &late_ack, at(mins(10))).unwrap_err();
    assert_eq!(err.reason, "alert is already resolved");

    sim.eval(at(mins(11)), false);
    assert!(!sim.alert.awaiting_clear);
    sim.eval(at(mins(12)), true);
    assert_eq!(sim.state(), State::Firing);
    assert_eq!(sim.alert.incident, Some(2));
}

#[test]
fn silence_during_firing_then_end_resumes_escalation() {
    let mut sim = Sim::new(Params::default());
    sim.eval(T, true);
    let acts = sim.send(at(mins(1)), Event::SilenceStart { id: "m1".into() });
    assert_eq!(sim.state(), State::Suppressed);
    assert_eq!(sim.alert.resume_to, Some(State::Firing));
    assert!(notifies(&acts).is_empty());
    // A second silence; the first ending does not resume.
    sim.send(at(mins(2)), Event::SilenceStart { id: "m2".into() });
    assert!(
        sim.send(at(mins(3)), Event::SilenceEnd { id: "m1".into() })
            .is_empty()
    );
    assert_eq!(sim.state(), State::Suppressed);
    sim.eval(at(mins(4)), true);
    let acts = sim.send(at(mins(5)), Event::SilenceEnd { id: "m2".into() });
    assert_eq!(sim.state(), State::Firing);
    assert_eq!(notifies(&acts), [NotifyReason::SilenceEnded]);
    assert_eq!(reasons(&acts), ["silence m2 ended"]);
    assert_eq!(sim.alert.incident, Some(1), "the same incident");
}

#[test]
fn firing_while_silenced_opens_an_incident_but_tells_no_one() {
    let mut sim = Sim::new(Params::default());
    sim.send(T, Event::SilenceStart { id: "m1".into() });
    let acts = sim.eval(at(mins(1)), true);
    assert_eq!(sim.state(), State::Suppressed);
    assert_eq!(acts[0], Action::OpenIncident);
    assert!(notifies(&acts).is_empty());
    let acts = sim.send(at(mins(2)), Event::SilenceEnd { id: "m1".into() });
    assert_eq!(sim.state(), State::Firing);
    assert_eq!(notifies(&acts), [NotifyReason::SilenceEnded]);
}

#[test]
fn ack_expires_after_the_timeout() {
    let mut sim = Sim::new(Params {
        ack_timeout: Some(mins(30)),
        ..Params::default()
    });
    sim.eval(T, true);
    let acts = sim.send(
        at(mins(2)),
        Event::Ack {
            actor: "alice".into(),
            via: "slack".into(),
            note: None,
        },
    );
    assert_eq!(sim.state(), State::Acknowledged);
    assert_eq!(notifies(&acts), [NotifyReason::Acknowledged]);
    assert_eq!(reasons(&acts), ["acked by alice via slack"]);
    let ack = sim.alert.ack.clone().expect("ack recorded");
    assert_eq!((ack.actor.as_str(), ack.via.as_str()), ("alice", "slack"));
    // A timer set for an earlier ack is stale.
    assert!(sim.send(at(mins(20)), Event::AckExpired).is_empty());
    assert_eq!(sim.state(), State::Acknowledged);
    let acts = sim.send(at(mins(32)), Event::AckExpired);
    assert_eq!(sim.state(), State::Firing);
    assert_eq!(notifies(&acts), [NotifyReason::AckExpired]);
    assert_eq!(reasons(&acts), ["ack by alice expired after 30m"]);
    assert_eq!(sim.alert.ack, None);
}

#[test]
fn flapping_holds_notifications_until_it_settles() {
    let mut sim = Sim::new(Params::default()); // more than 6 changes in 1h
    let mut notified = Vec::new();
    let mut held = 0;
    // Fires and resolves every 2 minutes: 10 changes in 20 minutes.
    for i in 0..10 {
        let acts = sim.eval(at(mins(2 * i)), i % 2 == 0);
        notified.extend(notifies(&acts));
        held += reasons(&acts)
            .iter()
            .filter(|r| r.starts_with("held: flapping"))
            .count();
    }
    assert!(sim.alert.flapping);
    assert_eq!(
        notified.len(),
        6,
        "the first 6 changes notify: {notified:?}"
    );
    assert_eq!(held, 4);
    assert_eq!(sim.state(), State::Resolved);
    // It keeps flapping: still held, incidents still opened.
    let acts = sim.eval(at(mins(20)), true);
    assert!(acts.contains(&Action::OpenIncident));
    assert!(notifies(&acts).is_empty());
    assert_eq!(sim.alert.incident, Some(6));
    // Quiet and firing for an hour: the old changes leave the window, flapping
    // stops at 3 or fewer, and the firing alert is announced once.
    let mut stopped = None;
    for m in 21..=90 {
        let acts = sim.eval(at(mins(m)), true);
        if !sim.alert.flapping && stopped.is_none() {
            assert_eq!(notifies(&acts), [NotifyReason::Firing]);
            assert_eq!(reasons(&acts), ["flapping stopped, notifying firing"]);
            stopped = Some(m);
        } else {
            assert!(notifies(&acts).is_empty(), "at {m}m: {acts:?}");
        }
    }
    // Changes at 0, 2, ..., 20m. At 74m those before 14m have left the window,
    // leaving 14..20 (4); at 75m 16, 18, 20 (3) remain: half of 6.
    assert_eq!(stopped, Some(75));
}

// ---------------------------------------------------------------------------
// Totality: any sequence of events, any parameters.
// ---------------------------------------------------------------------------

fn any_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (any::<bool>(), proptest::option::of(any::<bool>())).prop_map(|(holds, resolve_holds)| {
            Event::Evaluated {
                holds,
                resolve_holds,
                value: 1.0,
            }
        }),
        Just(Event::Ack {
            actor: "a".into(),
            via: "cli".into(),
            note: None
        }),
        Just(Event::Unack { actor: "a".into() }),
        Just(Event::AckExpired),
        Just(Event::Resolve {
            actor: "a".into(),
            note: None
        }),
        (0..3u8).prop_map(|i| Event::SilenceStart { id: i.to_string() }),
        (0..3u8).prop_map(|i| Event::SilenceEnd { id: i.to_string() }),
    ]
}

fn any_hold() -> impl Strategy<Value = Hold> {
    prop_oneof![
        Just(Hold::Immediately),
        (0..600u64).prop_map(|s| Hold::For(secs(s))),
        (0..5u32).prop_map(Hold::Evaluations),
    ]
}

fn any_params() -> impl Strategy<Value = Params> {
    (
        any_hold(),
        proptest::option::of(any_hold()),
        proptest::option::of((0..600u64).prop_map(secs)),
        proptest::option::of((0..600u64).prop_map(secs)),
        0..8u32,
    )
        .prop_map(|(hold, resolve_hold, keep, ack, flap)| Params {
            hold,
            resolve_hold,
            keep_firing_for: keep,
            ack_timeout: ack,
            flap_max_changes: flap,
            flap_window: mins(30),
        })
}

proptest! {
    #[test]
    fn any_sequence_keeps_the_invariants(
        params in any_params(),
        events in proptest::collection::vec((any_event(), 0..300u64), 1..60),
    ) {
        let mut alert = new_alert();
        let mut now = T;
        let mut next_incident = 1;
        for (event, gap) in events {
            now = now + secs(gap);
            let Ok(t) = step(&params, &alert, &event, now) else { continue };
            let changes = t.actions.iter().filter(|a| matches!(a, Action::Record(e) if e.from != e.to)).count();
            prop_assert_eq!(changes, usize::from(t.alert.state != alert.state));
            let notified = notifies(&t.actions);
            if t.alert.state == State::Pending || t.alert.state == State::Suppressed {
                prop_assert!(!notified.contains(&NotifyReason::Firing));
            }
            prop_assert_eq!(t.alert.resume_to.is_some(), t.alert.state == State::Suppressed);
            prop_assert_eq!(t.alert.ack.is_some(), t.alert.state == State::Acknowledged
                || t.alert.resume_to == Some(State::Acknowledged));
            alert = t.alert;
            if t.actions.contains(&Action::OpenIncident) {
                alert.incident = Some(next_incident);
                next_incident += 1;
            }
        }
    }
}

#[test]
fn params_default_flapping_limits() {
    let p = Params::default();
    assert_eq!(p.flap_max_changes, 6);
    assert_eq!(p.flap_window, Duration::from_secs(3600));
    assert_eq!(p.hold, Hold::Immediately);
}
