//! Retention: resolved incidents older than `storage.retention` are pruned with
//! their timelines by the daemon's own loop (a deadline of the one queue, on a
//! manual clock); the incident counter never goes back, and asking for a pruned
//! incident says it is past retention.

use std::sync::Arc;
use std::time::Duration;

use tocsin::alert::{Event, State};
use tocsin::clock::{Clock, ManualClock, Timestamp};
use tocsin::daemon::{Daemon, LoopHandle};
use tocsin::notify::Channels;
use tocsin::store::{RedbStore, Store};

mod common;

const DAY: Duration = Duration::from_secs(86400);

struct Harness {
    clock: ManualClock,
    daemon: Daemon,
    looping: LoopHandle,
    path: std::path::PathBuf,
}

async fn harness(name: &str, retention: Duration) -> Harness {
    let dir = common::daemon_dir(&format!("retention-{name}"), "");
    let mut config = common::test_config(&dir);
    config.storage.retention = retention;
    let path = config.storage.path.clone();
    let clock = ManualClock::new(Timestamp::from_secs(1_800_000_000));
    let (channels, _recorder) = Channels::recording(Arc::new(clock.clone()));
    let daemon = Daemon::open_with(config, Arc::new(clock.clone()), channels, None).unwrap();
    Harness {
        looping: daemon.spawn_loop(),
        clock,
        daemon,
        path,
    }
}

impl Harness {
    async fn fire(&self, host: &str) {
        let labels = [("alertname", "DiskFull"), ("host", host)];
        common::fire_external(&self.daemon, &labels, self.clock.now()).await;
    }

    async fn resolve(&self, id: &str) {
        let event = Event::Resolve {
            actor: "alice".into(),
            note: None,
        };
        self.daemon.act(id, event).await.unwrap();
    }

    async fn wait(&self, d: Duration) {
        let until = self.clock.now() + d;
        self.daemon.run_until(&self.clock, until).await;
    }

    fn incident_of(&self, views: &[tocsin::daemon::AlertView], host: &str) -> u64 {
        views
            .iter()
            .find(|v| v.alert.labels.get("host") == Some(host))
            .and_then(|v| v.alert.incident)
            .unwrap()
    }
}

#[tokio::test]
async fn a_resolved_incident_past_retention_is_pruned_and_says_so() {
    let h = harness("pruned", 7 * DAY).await;
    h.fire("bot-1").await;
    h.fire("bot-2").await;
    let views = h.daemon.alerts().await;
    let old = h.incident_of(&views, "bot-1");
    let kept = h.incident_of(&views, "bot-2");
    h.resolve(&old.to_string()).await;
    h.wait(Duration::from_secs(60)).await;
    let (_, timeline) = h.daemon.alert(&old.to_string()).await.unwrap();
    let fp = h
        .daemon
        .alert(&old.to_string())
        .await
        .unwrap()
        .0
        .alert
        .fingerprint;
    assert!(timeline.len() >= 2, "{timeline:?}");

    // Six days on it is still there; a day later it is past retention.
    h.wait(6 * DAY).await;
    assert!(h.daemon.alert(&old.to_string()).await.is_ok());
    h.wait(DAY + Duration::from_secs(3600)).await;
    let err = h.daemon.alert(&old.to_string()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "incident {old} is past retention: resolved incidents are kept for 7days (storage.retention)"
        )
    );
    // The firing one is kept, history and all.
    let (view, timeline) = h.daemon.alert(&kept.to_string()).await.unwrap();
    assert_eq!(view.alert.state, State::Firing);
    assert!(!timeline.is_empty());
    assert_eq!(h.daemon.metrics().pruned_alerts.get(), 1);

    // The same alert firing again is a new incident: numbers never go back.
    h.fire("bot-1").await;
    let again = h.incident_of(&h.daemon.alerts().await, "bot-1");
    assert!(again > kept, "incident {again} after {kept}");
    let (_, timeline) = h.daemon.alert(&again.to_string()).await.unwrap();
    assert!(
        timeline.iter().all(|e| e.at >= h.clock.now()),
        "the pruned history stays gone: {timeline:?}"
    );

    // The store agrees after a restart.
    h.looping.stop().await;
    drop(h.daemon);
    let store = RedbStore::open(&h.path).unwrap();
    assert_eq!(store.incident(old).unwrap(), None);
    assert_eq!(store.incident(again).unwrap(), Some(fp));
    assert!(store.next_incident().unwrap() > again);
}

#[tokio::test]
async fn an_old_incident_of_an_alert_that_fired_again_says_which_number_it_has_now() {
    let h = harness("again", 30 * DAY).await;
    h.fire("bot-1").await;
    let first = h.incident_of(&h.daemon.alerts().await, "bot-1");
    h.resolve(&first.to_string()).await;
    h.wait(DAY).await;
    h.fire("bot-1").await;
    let second = h.incident_of(&h.daemon.alerts().await, "bot-1");
    assert_ne!(first, second);
    let err = h.daemon.alert(&first.to_string()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("incident {first} is over: its alert fired again as incident {second}")
    );
    // Past retention, the history of the first incident goes; the second's stays.
    h.wait(31 * DAY).await;
    let (view, timeline) = h.daemon.alert(&second.to_string()).await.unwrap();
    assert_eq!(view.alert.state, State::Firing);
    let fired_again = view.alert.fired_at.unwrap();
    assert!(!timeline.is_empty());
    assert!(
        timeline.iter().all(|e| e.at >= fired_again),
        "entries of the first incident remain: {timeline:?}"
    );
}

#[tokio::test]
async fn a_sweep_over_many_alerts_goes_in_bounded_turns() {
    let h = harness("many", DAY).await;
    let start = h.clock.now();
    let hosts: Vec<String> = (0..2_500).map(|i| format!("bot-{i}")).collect();
    let alerts: Vec<_> = hosts
        .iter()
        .map(|host| tocsin::engine::ExternalAlert {
            labels: tocsin::labels::Labels::from_pairs([("alertname", "Storm"), ("host", host)]),
            firing: true,
            external: tocsin::alert::External {
                starts_at: h.clock.now(),
                ends_at: None,
                annotations: Default::default(),
                generator_url: None,
                external_url: None,
                group_key: None,
            },
        })
        .collect();
    h.daemon
        .receive_external("test", alerts.clone())
        .await
        .unwrap();
    let resolved: Vec<_> = alerts
        .into_iter()
        .map(|mut a| {
            a.firing = false;
            a
        })
        .collect();
    h.daemon.receive_external("test", resolved).await.unwrap();
    h.wait(Duration::from_secs(60)).await;
    assert_eq!(h.daemon.alerts().await.len(), 2_500);

    // Past the horizon, a sweep takes them a thousand per turn, 50 ms apart.
    let pruned = || h.daemon.metrics().pruned_alerts.get();
    h.daemon.run_until(&h.clock, start + DAY).await;
    assert_eq!(pruned(), 0);
    let mut seen = Vec::new();
    while pruned() < 2_500 && h.clock.now() < start + 2 * DAY {
        let next = h.daemon.next_deadline().unwrap();
        h.daemon.run_until(&h.clock, next).await;
        if seen.last().is_none_or(|(_, n)| *n != pruned()) {
            seen.push((next, pruned()));
        }
    }
    let counts: Vec<u64> = seen.iter().map(|(_, n)| *n).collect();
    assert_eq!(counts, [1_000, 2_000, 2_500]);
    assert_eq!(seen[1].0.0 - seen[0].0.0, 50, "ms between two turns");
    assert_eq!(h.daemon.alerts().await.len(), 0);
}
