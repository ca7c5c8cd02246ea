//! Resolve wins: a message owed for a state the alert has since left is never sent.
//! One table: (a message waiting: in a group wait, a phone window, a later level, an
//! "unacknowledged" page in the group wait) × (what happens meanwhile: an ack, a
//! manual resolve, the sender's resolve, a silence). Every case runs the daemon's own
//! loop on a manual clock with recording channels, through two hours.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tocsin::alert::{Event, External, NotifyReason};
use tocsin::clock::{ManualClock, Timestamp};
use tocsin::config::Config;
use tocsin::daemon::Daemon;
use tocsin::engine::ExternalAlert;
use tocsin::escalation::{Directory, Level, Method, Person, Policy, Routing, Target};
use tocsin::labels::Labels;
use tocsin::matcher::Matcher;
use tocsin::notify::{Channels, Recorded};
use tocsin::silence::Silence;

const T0: i64 = 1_800_000_000;
const SEC: Duration = Duration::from_secs(1);
const MIN: Duration = Duration::from_secs(60);

/// Where the page about alert `y` waits when the later event happens.
#[derive(Clone, Copy, Debug)]
enum Waiting {
    /// `y` fired a second after `x` of the same group: its page waits for the
    /// group window to close (30 s).
    GroupWait,
    /// `x` was texted at once, so `y`'s SMS waits for the phone window (30 min).
    PhoneWindow,
    /// `y` was paged at level 1; level 2 is due at 15 min.
    NextLevel,
    /// `y` was paged, acked and unacked within the group window: the
    /// "unacknowledged" page waits for the window to close.
    Unacknowledged,
}

/// What happens to `y` while its page waits.
#[derive(Clone, Copy, Debug)]
enum Later {
    Ack,
    Resolve,
    /// The sender (Alertmanager, Prometheus) says it resolved.
    SenderResolved,
    Silence,
}

fn labels(host: &str) -> Labels {
    Labels::from_pairs([
        ("alertname", "投稿成功率低下"),
        ("severity", "critical"),
        ("host", host),
    ])
}

fn config(dir: &std::path::Path, waiting: Waiting) -> Config {
    let level = |after: Duration, targets: Vec<Target>, via: Vec<Method>| Level {
        after,
        targets,
        via,
    };
    let levels = match waiting {
        Waiting::PhoneWindow => vec![level(
            Duration::ZERO,
            vec![Target::Person("sato".into())],
            vec![Method::Sms],
        )],
        _ => vec![
            level(Duration::ZERO, vec![Target::Console], Vec::new()),
            level(MIN * 15, vec![Target::Webhook("pager".into())], Vec::new()),
        ],
    };
    let policy = Policy {
        name: "default".into(),
        levels,
        repeat_interval: Duration::from_secs(4 * 3600),
        ack_timeout: None,
        fallback: Vec::new(),
        phone_severities: vec!["critical".into()],
    };
    let mut routing = Routing::console_only();
    routing.policies = BTreeMap::from([("default".into(), policy)]);
    routing.group_by = vec!["alertname".into()];
    let sato = Person {
        id: "sato".into(),
        name: "Sato".into(),
        email: None,
        phone: Some("+819000000001".into()),
        slack: None,
    };
    let mut config = common::test_config(dir);
    config.rules.paths = Vec::new();
    config.routing = routing;
    config.directory = Directory {
        people: BTreeMap::from([("sato".into(), sato)]),
        ..Directory::default()
    };
    config
}

fn firing(host: &str, starts_at: Timestamp, firing: bool) -> ExternalAlert {
    ExternalAlert {
        labels: labels(host),
        firing,
        external: External {
            starts_at,
            ends_at: None,
            annotations: Default::default(),
            generator_url: None,
            external_url: None,
            group_key: None,
        },
    }
}

/// Pages (not updates) about `host` in what the channels took.
fn pages_about(sent: &[Recorded], host: &str) -> Vec<String> {
    sent.iter()
        .filter(|r| {
            matches!(
                r.message.reason,
                NotifyReason::Firing
                    | NotifyReason::Unacknowledged
                    | NotifyReason::AckExpired
                    | NotifyReason::SilenceEnded
            )
        })
        .filter(|r| {
            r.message
                .alerts
                .iter()
                .any(|a| a.labels.get("host").map(String::as_str) == Some(host))
        })
        .map(|r| {
            format!(
                "{}s {} {} L{}",
                r.at.since(Timestamp::from_secs(T0)).as_secs(),
                r.address,
                r.message.reason,
                r.message.level
            )
        })
        .collect()
}

async fn case(waiting: Waiting, later: Later) {
    let name = format!("resolve-wins-{waiting:?}-{later:?}").to_lowercase();
    let dir = common::daemon_dir(&name, "");
    let t0 = Timestamp::from_secs(T0);
    let clock = ManualClock::new(t0);
    let (channels, recorder) = Channels::recording(Arc::new(clock.clone()));
    let daemon = Daemon::open_with(
        config(&dir, waiting),
        Arc::new(clock.clone()),
        channels,
        None,
    )
    .unwrap();
    let looping = daemon.spawn_loop();
    let fire = async |host: &str, at: Timestamp| {
        daemon
            .receive_external("test", vec![firing(host, at, true)])
            .await
            .unwrap();
        daemon.caught_up().await;
    };

    // The page about `y` is left waiting.
    let y_started = match waiting {
        Waiting::GroupWait => {
            fire("x", t0).await;
            daemon.run_until(&clock, t0 + SEC).await;
            fire("y", t0 + SEC).await;
            t0 + SEC
        }
        Waiting::PhoneWindow => {
            fire("x", t0).await;
            daemon.run_until(&clock, t0 + MIN).await;
            fire("y", t0 + MIN).await;
            t0 + MIN
        }
        Waiting::NextLevel => {
            fire("y", t0).await;
            t0
        }
        Waiting::Unacknowledged => {
            fire("y", t0).await;
            daemon.run_until(&clock, t0 + SEC).await;
            let ack = Event::Ack {
                actor: "sato".into(),
                via: "test".into(),
                note: None,
            };
            daemon.act("1", ack).await.unwrap();
            daemon.run_until(&clock, t0 + SEC * 2).await;
            let unack = Event::Unack {
                actor: "sato".into(),
            };
            daemon.act("1", unack).await.unwrap();
            t0
        }
    };
    let y = daemon
        .alerts()
        .await
        .into_iter()
        .find(|v| v.alert.labels.get("host") == Some("y"))
        .unwrap();
    let y_id = y.alert.incident.unwrap().to_string();

    // Something happens to `y` before its page is due.
    let at = clock_after(&daemon, &clock, y_started + SEC * 3).await;
    match later {
        Later::Ack => {
            let ack = Event::Ack {
                actor: "sato".into(),
                via: "test".into(),
                note: None,
            };
            daemon.act(&y_id, ack).await.unwrap();
        }
        Later::Resolve => {
            let resolve = Event::Resolve {
                actor: "sato".into(),
                note: None,
            };
            daemon.act(&y_id, resolve).await.unwrap();
        }
        Later::SenderResolved => {
            daemon
                .receive_external("test", vec![firing("y", y_started, false)])
                .await
                .unwrap();
        }
        Later::Silence => {
            let silence = Silence {
                id: "maint".into(),
                matchers: vec![Matcher::parse("host=y").unwrap()],
                starts_at: at,
                ends_at: at + Duration::from_secs(3 * 3600),
                created_by: "sato".into(),
                comment: "maintenance".into(),
                updated_at: None,
            };
            daemon.add_silence(silence).await.unwrap();
        }
    }
    daemon.run_until(&clock, t0 + MIN * 120).await;
    let sent = recorder.take();
    let after: Vec<String> = pages_about(&sent, "y")
        .into_iter()
        .filter(|p| {
            let secs: u64 = p.split('s').next().unwrap().parse().unwrap();
            t0 + Duration::from_secs(secs) > at
        })
        .collect();
    assert!(
        after.is_empty(),
        "{waiting:?} × {later:?}: paged about y after it was {later:?}: {after:?}"
    );
    // What was waiting and withdrawn says so on y's timeline.
    let (_, timeline) = daemon.alert(&y_id).await.unwrap();
    let withdrawn = timeline
        .iter()
        .any(|e| e.reason.starts_with("not sent to "));
    let was_queued = !matches!(waiting, Waiting::NextLevel);
    assert_eq!(
        withdrawn,
        was_queued,
        "{waiting:?} × {later:?}: timeline {:?}",
        timeline.iter().map(|e| &e.reason).collect::<Vec<_>>()
    );
    // `x`, the other alert of the group, was not held back by y's fate.
    if matches!(waiting, Waiting::GroupWait | Waiting::PhoneWindow) {
        assert!(!pages_about(&sent, "x").is_empty(), "x was paged");
    }
    looping.stop().await;
}

/// Moves the clock to `t` through the loop, and returns it.
async fn clock_after(daemon: &Daemon, clock: &ManualClock, t: Timestamp) -> Timestamp {
    daemon.run_until(clock, t).await;
    t
}

#[tokio::test]
async fn no_page_leaves_for_a_state_the_alert_has_left() {
    for waiting in [
        Waiting::GroupWait,
        Waiting::PhoneWindow,
        Waiting::NextLevel,
        Waiting::Unacknowledged,
    ] {
        for later in [
            Later::Ack,
            Later::Resolve,
            Later::SenderResolved,
            Later::Silence,
        ] {
            case(waiting, later).await;
        }
    }
}

/// The control: with nothing happening meanwhile, every waiting page goes out at
/// its time, so the table above is not passing because nothing is ever sent.
#[tokio::test]
async fn with_nothing_in_between_each_waiting_page_goes_at_its_time() {
    let t0 = Timestamp::from_secs(T0);
    for (waiting, want) in [
        (Waiting::GroupWait, "30s console firing L1"),
        (Waiting::PhoneWindow, "1800s sms:+819000000001 firing L1"),
        (Waiting::NextLevel, "900s webhook:pager firing L2"),
        (Waiting::Unacknowledged, "30s console unacknowledged L1"),
    ] {
        let dir = common::daemon_dir(&format!("resolve-wins-control-{waiting:?}"), "");
        let clock = ManualClock::new(t0);
        let (channels, recorder) = Channels::recording(Arc::new(clock.clone()));
        let daemon = Daemon::open_with(
            config(&dir, waiting),
            Arc::new(clock.clone()),
            channels,
            None,
        )
        .unwrap();
        let looping = daemon.spawn_loop();
        let start = match waiting {
            Waiting::GroupWait => t0 + SEC,
            Waiting::PhoneWindow => t0 + MIN,
            _ => t0,
        };
        if !matches!(waiting, Waiting::NextLevel | Waiting::Unacknowledged) {
            daemon
                .receive_external("test", vec![firing("x", t0, true)])
                .await
                .unwrap();
        }
        daemon.run_until(&clock, start).await;
        daemon
            .receive_external("test", vec![firing("y", start, true)])
            .await
            .unwrap();
        if let Waiting::Unacknowledged = waiting {
            let id = daemon.alerts().await[0].alert.incident.unwrap().to_string();
            daemon.run_until(&clock, t0 + SEC).await;
            let ack = Event::Ack {
                actor: "sato".into(),
                via: "test".into(),
                note: None,
            };
            daemon.act(&id, ack).await.unwrap();
            daemon.run_until(&clock, t0 + SEC * 2).await;
            let unack = Event::Unack {
                actor: "sato".into(),
            };
            daemon.act(&id, unack).await.unwrap();
        }
        daemon.run_until(&clock, t0 + MIN * 40).await;
        let pages = pages_about(&recorder.take(), "y");
        assert!(
            pages.iter().any(|p| p == want),
            "{waiting:?}: want {want:?} in {pages:?}"
        );
        looping.stop().await;
    }
}

/// Whoever a page reached hears the resolve; whoever it never reached does not.
#[tokio::test]
async fn the_resolve_reaches_those_a_page_reached() {
    let t0 = Timestamp::from_secs(T0);
    let dir = common::daemon_dir("resolve-wins-reached", "");
    let clock = ManualClock::new(t0);
    let (channels, recorder) = Channels::recording(Arc::new(clock.clone()));
    let daemon = Daemon::open_with(
        config(&dir, Waiting::GroupWait),
        Arc::new(clock.clone()),
        channels,
        None,
    )
    .unwrap();
    let looping = daemon.spawn_loop();
    let send = async |host: &str, starts: Timestamp, fires: bool, until: Timestamp| {
        daemon
            .receive_external("test", vec![firing(host, starts, fires)])
            .await
            .unwrap();
        daemon.run_until(&clock, until).await;
    };
    // y waits behind x in the group window, and resolves before it closes: its
    // page is withdrawn, and nobody is told of a resolve they never heard fire.
    send("x", t0, true, t0 + SEC).await;
    send("y", t0 + SEC, true, t0 + SEC * 2).await;
    send("y", t0 + SEC, false, t0 + MIN).await;
    // y fires again (a new incident), is paged, and resolves: it hears both.
    send("y", t0 + MIN, true, t0 + MIN * 2).await;
    send("y", t0 + MIN, false, t0 + MIN * 3).await;
    let about_y: Vec<String> = recorder
        .take()
        .iter()
        .filter(|r| r.message.alerts.iter().any(|a| a.labels["host"] == "y"))
        .map(|r| {
            let a = &r.message.alerts[0];
            format!("#{} {}", a.incident.unwrap(), r.message.reason)
        })
        .collect();
    assert_eq!(about_y, ["#3 firing", "#3 resolved"]);
    looping.stop().await;
}

/// A batch held in the phone window whose alerts were mostly acked or resolved
/// before the window closed: the SMS and the call that leave name only the alerts
/// still firing, with their count, and the text offers ACK ALL.
#[tokio::test]
async fn a_phone_batch_names_only_what_still_fires_when_it_leaves() {
    let t0 = Timestamp::from_secs(T0);
    let dir = common::daemon_dir("resolve-wins-phone-batch", "");
    let mut config = config(&dir, Waiting::PhoneWindow);
    config.routing.policies.get_mut("default").unwrap().levels[0].via =
        vec![Method::Sms, Method::Voice];
    let clock = ManualClock::new(t0);
    let (channels, recorder) = Channels::recording(Arc::new(clock.clone()));
    let daemon = Daemon::open_with(config, Arc::new(clock.clone()), channels, None).unwrap();
    let looping = daemon.spawn_loop();
    // x pages at once and opens the window; ten more a minute later wait in it.
    daemon
        .receive_external("test", vec![firing("x", t0, true)])
        .await
        .unwrap();
    daemon.run_until(&clock, t0 + MIN).await;
    let hosts: Vec<String> = (0..10).map(|i| format!("h{i}")).collect();
    let batch: Vec<ExternalAlert> = hosts.iter().map(|h| firing(h, t0 + MIN, true)).collect();
    daemon.receive_external("test", batch).await.unwrap();
    let incident = |host: String| {
        let daemon = daemon.clone();
        async move {
            daemon
                .alerts()
                .await
                .into_iter()
                .find(|v| v.alert.labels.get("host") == Some(host.as_str()))
                .and_then(|v| v.alert.incident)
                .unwrap()
                .to_string()
        }
    };
    // Before the window closes: four acked, three resolved by hand, one by its
    // sender. Two still fire.
    daemon.run_until(&clock, t0 + MIN * 20).await;
    for h in &hosts[..4] {
        let ack = Event::Ack {
            actor: "sato".into(),
            via: "slack".into(),
            note: None,
        };
        daemon.act(&incident(h.clone()).await, ack).await.unwrap();
    }
    for h in &hosts[4..7] {
        let resolve = Event::Resolve {
            actor: "sato".into(),
            note: None,
        };
        daemon
            .act(&incident(h.clone()).await, resolve)
            .await
            .unwrap();
    }
    daemon
        .receive_external("test", vec![firing("h7", t0 + MIN, false)])
        .await
        .unwrap();
    let still: Vec<String> = vec![incident("h8".into()).await, incident("h9".into()).await];
    recorder.take();

    daemon.run_until(&clock, t0 + MIN * 31).await;
    let sent = recorder.take();
    let pages: Vec<&Recorded> = sent
        .iter()
        .filter(|r| r.message.reason == NotifyReason::Firing)
        .collect();
    let named = |r: &Recorded| -> Vec<String> {
        r.message
            .alerts
            .iter()
            .map(|a| a.incident.unwrap().to_string())
            .collect()
    };
    assert_eq!(pages.len(), 2, "one SMS and one call: {sent:#?}");
    for page in &pages {
        assert_eq!(named(page), still, "{}", page.address);
        assert_eq!(page.at, t0 + MIN * 30, "{}", page.address);
    }
    let sms = pages
        .iter()
        .find(|r| matches!(r.address, tocsin::escalation::Address::Sms { .. }))
        .unwrap();
    let text = tocsin::notify::sms::sms_body(&sms.message, 3);
    assert!(
        text.starts_with(&format!("[CRITICAL] 2 alerts: #{} ", still[0])),
        "{text}"
    );
    assert!(text.ends_with("Reply ACK ALL or ACK <n>"), "{text}");
    let call = pages
        .iter()
        .find(|r| matches!(r.address, tocsin::escalation::Address::Voice { .. }))
        .unwrap();
    let twiml = tocsin::notify::voice::twiml(&call.message, "Polly.Mizuki", "ja-JP");
    assert!(twiml.contains("2 件です。"), "{twiml}");
    for gone in &hosts[..8] {
        let n = incident(gone.clone()).await;
        assert!(!twiml.contains(&format!(" {n} 番")), "{twiml}");
    }
    looping.stop().await;
}
