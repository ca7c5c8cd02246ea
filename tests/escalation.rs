//! Escalation on the injected clock: the seed's policy pages at exactly 0, 15, 30
//! and 60 minutes; an ack stops what is left; a restart sends an owed step once;
//! a resolve reaches everyone who was paged; a storm goes out grouped. Hours of
//! escalation run in milliseconds through the daemon's own loop: time is a
//! `ManualClock` that jumps from one deadline to the next, channels record.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tocsin::alert::{Event, External, NotifyReason};
use tocsin::clock::{Clock, ManualClock, Timestamp};
use tocsin::config::{Config, SlackSettings};
use tocsin::daemon::{Daemon, LoopHandle};
use tocsin::engine::ExternalAlert;
use tocsin::escalation::{
    Address, Directory, Group, Level, Method, Person, Policy, Routing, Target,
};
use tocsin::labels::Labels;
use tocsin::notify::{Channels, Recorder};
use tocsin::oncall::Rotation;

const T0: i64 = 1_800_000_000;
const MIN: Duration = Duration::from_secs(60);

fn person(id: &str, phone: &str) -> Person {
    Person {
        id: id.into(),
        name: id.into(),
        email: Some(format!("{id}@example.com")),
        phone: Some(phone.into()),
        slack: Some(format!("U{}", id.to_uppercase())),
    }
}

/// The seed's people and policy: on-call at once (Slack and mail) plus the Slack
/// channel by severity; no ack in 15 min → the manager; 30 min → SMS and a call;
/// 60 min → executives.
fn seed_config(dir: &std::path::Path) -> Config {
    let people = [
        person("sato", "+819000000001"),
        person("suzuki", "+819000000002"),
        person("manager", "+819000000003"),
        person("cto", "+819000000004"),
    ];
    let directory = Directory {
        people: people.iter().map(|p| (p.id.clone(), p.clone())).collect(),
        groups: BTreeMap::from([(
            "executives".to_string(),
            Group {
                id: "executives".into(),
                members: vec!["cto".into()],
                emails: vec!["management@company.com".into()],
            },
        )]),
        schedules: BTreeMap::from([(
            "primary".to_string(),
            Rotation {
                name: "primary".into(),
                people: vec!["sato".into(), "suzuki".into()],
                time_zone: chrono_tz::Asia::Tokyo,
                handoff: chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
                shift: Duration::from_secs(7 * 86400),
                start: chrono::NaiveDate::from_ymd_opt(2020, 1, 6).unwrap(),
            },
        )]),
    };
    let level = |after: u64, targets: Vec<Target>, via: Vec<Method>| Level {
        after: MIN * after as u32,
        targets,
        via,
    };
    let policy = Policy {
        name: "default".into(),
        levels: vec![
            level(
                0,
                vec![Target::Schedule("primary".into()), Target::SlackBySeverity],
                vec![Method::Slack, Method::Email],
            ),
            level(
                15,
                vec![Target::Person("manager".into())],
                vec![Method::Slack, Method::Email],
            ),
            level(
                30,
                vec![
                    Target::Schedule("primary".into()),
                    Target::Person("manager".into()),
                ],
                vec![Method::Sms, Method::Voice],
            ),
            level(
                60,
                vec![Target::Group("executives".into())],
                vec![Method::Email, Method::Sms],
            ),
        ],
        repeat_interval: MIN * 30,
        ack_timeout: None,
        fallback: vec![Target::Email("ops@company.com".into())],
        phone_severities: vec!["critical".into()],
    };
    let mut routing = Routing::console_only();
    routing.policies = BTreeMap::from([("default".into(), policy)]);
    let mut config = common::test_config(dir);
    config.directory = directory;
    config.routing = routing;
    config.rules.paths = Vec::new();
    config.channels.slack = Some(slack());
    config
}

fn slack() -> SlackSettings {
    SlackSettings {
        webhook_url: None,
        bot_token: None,
        api_url: "http://127.0.0.1:9/api".into(),
        channels: SlackSettings::seed_channels(),
        default_channel: "#alerts-info".into(),
        timeout: Duration::from_secs(5),
    }
}

struct Harness {
    daemon: Daemon,
    looping: LoopHandle,
    clock: ManualClock,
    recorder: Recorder,
    /// (minutes since T0, address, reason, level), in order.
    log: Vec<(u64, Address, NotifyReason, u32)>,
    /// (minutes since T0, address, alerts in the message), one per message.
    messages: Vec<(u64, String, usize)>,
    /// (reason, incident) of every alert in every message, in order.
    incidents: Vec<(NotifyReason, u64)>,
}

impl Harness {
    fn open(config: Config, clock: ManualClock) -> Harness {
        let (channels, recorder) = Channels::recording(Arc::new(clock.clone()));
        let daemon = Daemon::open_with(config, Arc::new(clock.clone()), channels, None).unwrap();
        Harness {
            looping: daemon.spawn_loop(),
            daemon,
            clock,
            recorder,
            log: Vec::new(),
            messages: Vec::new(),
            incidents: Vec::new(),
        }
    }

    fn minutes(at: Timestamp) -> u64 {
        at.since(Timestamp::from_secs(T0)).as_secs() / 60
    }

    /// Stops the daemon's loop and closes its store, as a shutdown does.
    async fn stop(self) -> Vec<(u64, Address, NotifyReason, u32)> {
        self.looping.stop().await;
        self.log
    }

    async fn fire(&mut self, labels: &[(&str, &str)]) {
        let alert = ExternalAlert {
            labels: Labels::from_pairs(labels.iter().copied()),
            firing: true,
            external: External {
                starts_at: self.clock.now(),
                ends_at: None,
                annotations: [("summary", "posting is failing")].into_iter().collect(),
                generator_url: None,
                external_url: None,
                group_key: None,
            },
        };
        self.daemon
            .receive_external("test", vec![alert])
            .await
            .unwrap();
        self.deliver().await;
    }

    /// Lets the loop send what is due now, and logs what the channels took.
    async fn deliver(&mut self) {
        self.daemon.caught_up().await;
        for r in self.recorder.take() {
            let m = Self::minutes(r.at);
            let msg = &r.message;
            self.messages
                .push((m, r.address.to_string(), msg.alerts.len()));
            for a in &msg.alerts {
                self.log.push((m, r.address.clone(), msg.reason, msg.level));
                self.incidents
                    .push((msg.reason, a.incident.unwrap_or_default()));
            }
        }
    }

    /// Runs the daemon's loop to `minutes` since T0, the clock jumping from one
    /// deadline to the next.
    async fn run_to(&mut self, minutes: u64) {
        let until = Timestamp::from_secs(T0) + MIN * minutes as u32;
        self.daemon.run_until(&self.clock, until).await;
        self.deliver().await;
    }

    async fn act(&mut self, event: Event) {
        self.daemon.act("1", event).await.unwrap();
        self.deliver().await;
    }

    /// When each level paged, and whom.
    fn pages(&self) -> BTreeMap<(u64, u32), Vec<String>> {
        let mut out: BTreeMap<(u64, u32), Vec<String>> = BTreeMap::new();
        for (m, a, reason, level) in &self.log {
            if *reason == NotifyReason::Firing {
                out.entry((*m, *level)).or_default().push(a.to_string());
            }
        }
        out
    }
}

const CRITICAL: &[(&str, &str)] = &[
    ("alertname", "投稿成功率低下"),
    ("severity", "critical"),
    ("account", "a1"),
];

fn seed_harness(name: &str) -> Harness {
    let dir = common::daemon_dir(name, "");
    let clock = ManualClock::new(Timestamp::from_secs(T0));
    Harness::open(seed_config(&dir), clock)
}

#[tokio::test]
async fn seed_policy_pages_at_exactly_0_15_30_and_60_minutes() {
    let mut h = seed_harness("esc-seed");
    h.fire(CRITICAL).await;
    h.run_to(90).await;
    let pages = h.pages();
    let when: Vec<(u64, u32)> = pages.keys().copied().collect();
    // Level 4 repeats every 30 minutes while nobody acks.
    assert_eq!(when, [(0, 1), (15, 2), (30, 3), (60, 4), (90, 4)]);
    // T0 is a Friday in 2027; the rotation started on a Monday with sato, so the
    // week decides who is on call. Whoever it is gets Slack and mail at once.
    let first = &pages[&(0, 1)];
    assert!(
        first.contains(&"slack:#alerts-critical".to_string()),
        "{first:?}"
    );
    assert_eq!(
        first.len(),
        3,
        "on-call by Slack DM and mail, and the channel: {first:?}"
    );
    let mut second = pages[&(15, 2)].clone();
    second.sort();
    assert_eq!(second, ["email:manager@example.com", "slack:UMANAGER"]);
    let third = &pages[&(30, 3)];
    assert!(
        third.contains(&"sms:+819000000003".to_string()),
        "{third:?}"
    );
    assert!(
        third.contains(&"voice:+819000000003".to_string()),
        "{third:?}"
    );
    assert_eq!(third.len(), 4, "on-call and manager, each by SMS and call");
    // Each delivery is on the alert's timeline, for the post-incident review.
    let (_, timeline) = h.daemon.alert("1").await.unwrap();
    let notes: Vec<&str> = timeline.iter().map(|e| e.reason.as_str()).collect();
    assert!(
        notes.contains(&"notified slack:UMANAGER: firing (level 2)"),
        "{notes:?}"
    );
    let fourth = &pages[&(60, 4)];
    assert!(fourth.contains(&"email:management@company.com".to_string()));
    assert!(fourth.contains(&"sms:+819000000004".to_string()));
}

#[tokio::test]
async fn an_ack_at_20_minutes_stops_the_levels_at_30_and_60() {
    let mut h = seed_harness("esc-ack");
    h.fire(CRITICAL).await;
    h.run_to(20).await;
    h.act(Event::Ack {
        actor: "sato".into(),
        via: "slack".into(),
        note: None,
    })
    .await;
    h.run_to(120).await;
    let when: Vec<(u64, u32)> = h.pages().keys().copied().collect();
    assert_eq!(when, [(0, 1), (15, 2)]);
    // The Slack messages already sent are told (and so edited to show the ack),
    // and the mails get an answer in their threads; phones are not rung for it.
    let acked: Vec<String> = h
        .log
        .iter()
        .filter(|(_, _, r, _)| *r == NotifyReason::Acknowledged)
        .map(|(m, a, ..)| format!("{m} {a}"))
        .collect();
    assert!(
        acked.contains(&"20 slack:#alerts-critical".to_string()),
        "{acked:?}"
    );
    assert!(
        acked.contains(&"20 slack:UMANAGER".to_string()),
        "{acked:?}"
    );
    assert!(
        acked.iter().any(|a| a.starts_with("20 email:")),
        "{acked:?}"
    );
    assert!(acked.iter().all(|a| !a.contains("sms")), "{acked:?}");
}

#[tokio::test]
async fn a_restart_at_29_minutes_sends_the_30_minute_step_once() {
    let dir = common::daemon_dir("esc-restart", "");
    let clock = ManualClock::new(Timestamp::from_secs(T0));
    let mut h = Harness::open(seed_config(&dir), clock.clone());
    h.fire(CRITICAL).await;
    h.run_to(29).await;
    let before = h.stop().await;

    let mut h = Harness::open(seed_config(&dir), clock);
    h.log = before;
    h.run_to(45).await;
    let when: Vec<(u64, u32)> = h.pages().keys().copied().collect();
    assert_eq!(when, [(0, 1), (15, 2), (30, 3)]);
    assert_eq!(h.pages()[&(30, 3)].len(), 4, "each SMS and call once");
}

#[tokio::test]
async fn a_resolve_reaches_everyone_who_was_paged_at_once() {
    let mut h = seed_harness("esc-resolve");
    h.fire(CRITICAL).await;
    h.run_to(31).await;
    let paged: std::collections::BTreeSet<String> =
        h.log.iter().map(|(_, a, ..)| a.to_string()).collect();
    h.act(Event::Resolve {
        actor: "sato".into(),
        note: None,
    })
    .await;
    let resolved: std::collections::BTreeSet<String> = h
        .log
        .iter()
        .filter(|(m, _, r, _)| *r == NotifyReason::Resolved && *m == 31)
        .map(|(_, a, ..)| a.to_string())
        .collect();
    // Everyone at once, but phones: they were texted at 30, and an SMS goes at
    // most every 30 minutes, so theirs waits for 60 (a number that was called is
    // told by SMS).
    let want: std::collections::BTreeSet<String> = paged
        .iter()
        .filter(|a| !a.starts_with("voice:") && !a.starts_with("sms:"))
        .cloned()
        .collect();
    assert_eq!(resolved, want);
    h.run_to(120).await;
    let later: Vec<String> = h
        .log
        .iter()
        .filter(|(m, ..)| *m > 31)
        .map(|(m, a, r, _)| format!("{m} {a} {r}"))
        .collect();
    assert_eq!(
        later,
        [
            "60 sms:+819000000001 resolved",
            "60 sms:+819000000003 resolved"
        ]
    );
}

#[tokio::test]
async fn a_new_occurrence_over_an_unresolved_one_resolves_the_old_incident_by_its_number() {
    let mut h = seed_harness("esc-new-occurrence");
    h.fire(CRITICAL).await;
    // The sender's resolve never came; its next firing has a later startsAt: the
    // old incident resolves and a new one opens in the same step.
    h.clock.advance(MIN * 5);
    h.fire(CRITICAL).await;
    let console = |reason: NotifyReason| -> Vec<u64> {
        let mut seen: Vec<u64> = h
            .incidents
            .iter()
            .filter(|(r, _)| *r == reason)
            .map(|(_, i)| *i)
            .collect();
        seen.dedup();
        seen
    };
    assert_eq!(console(NotifyReason::Firing), [1, 2]);
    assert_eq!(console(NotifyReason::Resolved), [1]);
}

#[tokio::test]
async fn an_sms_goes_at_most_every_30_minutes_and_later_alerts_join_the_next_one() {
    let mut h = seed_harness("esc-sms");
    h.fire(CRITICAL).await;
    h.run_to(5).await;
    // A second critical alert: its SMS level is due at 35, five minutes after the
    // first alert's SMS to the same people.
    h.fire(&[
        ("alertname", "異常API呼び出し"),
        ("severity", "critical"),
        ("account", "a1"),
    ])
    .await;
    h.run_to(65).await;
    let to_manager: Vec<(u64, usize)> = h
        .messages
        .iter()
        .filter(|(_, a, _)| a == "sms:+819000000003")
        .map(|(m, _, n)| (*m, *n))
        .collect();
    // One SMS at 30; the second alert waits for the window and goes at 60, not
    // dropped and not sent early.
    assert_eq!(to_manager, [(30, 1), (60, 1)]);
    let second: Vec<u64> = h
        .log
        .iter()
        .filter(|(_, a, _, level)| a.to_string() == "sms:+819000000003" && *level == 3)
        .map(|(m, ..)| *m)
        .collect();
    assert_eq!(second, [30, 60], "both alerts' level 3 reached the manager");
}

/// The 30-minute SMS window outlives a restart: a second alert's SMS due five
/// minutes after the first one still waits for the window, though the daemon that
/// sent the first one has stopped and a new one opened the same state.
#[tokio::test]
async fn an_sms_window_holds_across_a_restart() {
    let dir = common::daemon_dir("esc-sms-restart", "");
    let clock = ManualClock::new(Timestamp::from_secs(T0));
    let mut h = Harness::open(seed_config(&dir), clock.clone());
    h.fire(CRITICAL).await;
    h.run_to(5).await;
    h.fire(&[
        ("alertname", "異常API呼び出し"),
        ("severity", "critical"),
        ("account", "a1"),
    ])
    .await;
    h.run_to(31).await;
    let sms = |h: &Harness| -> Vec<u64> {
        h.messages
            .iter()
            .filter(|(_, a, _)| a == "sms:+819000000003")
            .map(|(m, ..)| *m)
            .collect()
    };
    assert_eq!(sms(&h), [30], "the first alert's SMS");
    h.stop().await;
    let mut h = Harness::open(seed_config(&dir), clock);
    h.run_to(65).await;
    // The second alert's level 3 was due at 35: within the window, so at 60.
    assert_eq!(sms(&h), [60], "the window was forgotten in the restart");
}

#[tokio::test]
async fn a_storm_of_1000_alerts_goes_out_grouped_and_all_persisted() {
    let dir = common::daemon_dir("esc-storm", "");
    let clock = ManualClock::new(Timestamp::from_secs(T0));
    let mut config = seed_config(&dir);
    config.routing.group_by = vec!["alertname".into()];
    let mut h = Harness::open(config, clock.clone());
    let started = std::time::Instant::now();
    // Ten pushes of 100 alerts over one second.
    for batch in 0..10 {
        let alerts: Vec<ExternalAlert> = (0..100)
            .map(|i| ExternalAlert {
                labels: Labels::from_pairs([
                    ("alertname", "HostDown".to_string()),
                    ("severity", "warning".to_string()),
                    ("host", format!("h{}", batch * 100 + i)),
                ]),
                firing: true,
                external: External {
                    starts_at: clock.now(),
                    ends_at: None,
                    annotations: Default::default(),
                    generator_url: None,
                    external_url: None,
                    group_key: None,
                },
            })
            .collect();
        h.daemon.receive_external("storm", alerts).await.unwrap();
        h.deliver().await;
        clock.advance(Duration::from_millis(100));
    }
    let enqueued = started.elapsed();
    eprintln!("storm: 1000 alerts enqueued and first messages recorded in {enqueued:?}");
    h.run_to(1).await;
    let to_channel: Vec<usize> = h
        .messages
        .iter()
        .filter(|(_, a, _)| a == "slack:#alerts-warning")
        .map(|(_, _, n)| *n)
        .collect();
    // The first push goes at once; the other 900 wait out the group window and go
    // as one message: two posts, not a thousand.
    assert_eq!(
        to_channel,
        [100, 900],
        "every alert reached the channel, grouped"
    );
    // Every alert is in the store with an incident number.
    assert_eq!(h.daemon.alerts().await.len(), 1000);
}

#[tokio::test]
async fn a_stuck_escalation_shows_in_the_overdue_gauge() {
    let dir = common::daemon_dir("esc-stuck", "");
    let clock = ManualClock::new(Timestamp::from_secs(T0));
    let mut h = Harness::open(seed_config(&dir), clock.clone());
    h.fire(CRITICAL).await;
    h.run_to(2).await;
    let gauge = |h: &Harness| {
        h.daemon
            .metrics()
            .render()
            .lines()
            .find_map(|l| {
                l.strip_prefix("tocsin_escalations_overdue ")
                    .map(str::to_string)
            })
            .unwrap()
    };
    assert_eq!(gauge(&h), "0", "a deadline is ahead");
    h.stop().await;

    // Something outside tocsin loses the escalation record of a firing alert.
    {
        let db = redb::Database::open(dir.join("data/tocsin.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("escalations");
            let mut table = txn.open_table(def).unwrap();
            table.retain(|_, _| false).unwrap();
        }
        txn.commit().unwrap();
    }
    let mut h = Harness::open(seed_config(&dir), clock);
    h.run_to(5).await;
    assert_eq!(
        gauge(&h),
        "1",
        "firing, unacked, nothing ahead: it must show"
    );
}

#[tokio::test]
async fn a_flapping_alert_from_a_sender_is_announced_when_its_flapping_ends_with_time() {
    let mut h = seed_harness("esc-flapping");
    let resolve = async |h: &mut Harness, started: Timestamp| {
        let alert = ExternalAlert {
            labels: Labels::from_pairs(CRITICAL.iter().copied()),
            firing: false,
            external: External {
                starts_at: started,
                ends_at: Some(h.clock.now()),
                annotations: Default::default(),
                generator_url: None,
                external_url: None,
                group_key: None,
            },
        };
        h.daemon
            .receive_external("test", vec![alert])
            .await
            .unwrap();
        h.deliver().await;
    };
    // Fires and resolves four times in four minutes (eight changes, more than
    // the six an hour allows), then fires once more and stays.
    for _ in 0..4 {
        let started = h.clock.now();
        h.fire(CRITICAL).await;
        let next = Harness::minutes(h.clock.now()) + 1;
        h.run_to(next).await;
        resolve(&mut h, started).await;
    }
    h.fire(CRITICAL).await;
    let firing_pages = |h: &Harness| {
        h.log
            .iter()
            .filter(|(_, _, r, _)| *r == NotifyReason::Firing)
            .map(|(m, ..)| *m)
            .collect::<std::collections::BTreeSet<u64>>()
    };
    let before = firing_pages(&h);
    assert!(
        !before.contains(&4),
        "flapping holds the fifth firing: {before:?}"
    );
    // No sender message comes any more; when enough changes have left the hour,
    // flapping ends on its own deadline and the alert, still firing, is paged.
    h.run_to(70).await;
    let after = firing_pages(&h);
    let announced: Vec<u64> = after.difference(&before).copied().collect();
    assert_eq!(
        announced.len(),
        1,
        "paged once when flapping ended: {after:?}"
    );
    assert!(
        (60..=63).contains(&announced[0]),
        "at the hour after the changes: {announced:?}"
    );
    let (view, timeline) = h.daemon.alert("5").await.unwrap();
    assert!(!view.alert.flapping);
    assert!(
        timeline
            .iter()
            .any(|e| e.reason == "flapping stopped, notifying firing"),
        "{timeline:?}"
    );
}
