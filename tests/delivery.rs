//! The notification path end to end, through real channels against fake Slack and
//! webhook servers (wiremock on 127.0.0.1): a Slack outage is retried with backoff,
//! the fallback is used, and the page is delivered when Slack comes back, nothing
//! lost; an ack edits the Slack message that announced the alert. Time is a
//! `ManualClock` the daemon's own loop runs on, jumping from one deadline to the
//! next: minutes of outage pass in milliseconds.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tocsin::alert::Event;
use tocsin::clock::{Clock, ManualClock, Timestamp};
use tocsin::config::{Config, Secret, SlackSettings, WebhookSettings};
use tocsin::daemon::{Daemon, LoopHandle};
use tocsin::escalation::{Level, Policy, Routing, Target};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const T0: i64 = 1_800_000_000;

fn config(dir: &std::path::Path, slack: &MockServer, hook: &MockServer) -> Config {
    let policy = Policy {
        name: "default".into(),
        levels: vec![Level {
            after: Duration::ZERO,
            targets: vec![Target::SlackBySeverity],
            via: Vec::new(),
        }],
        repeat_interval: Duration::from_secs(24 * 3600),
        ack_timeout: None,
        fallback: vec![Target::Webhook("ops".into())],
        phone_severities: vec!["critical".into()],
    };
    let mut routing = Routing::console_only();
    routing.policies = BTreeMap::from([("default".into(), policy)]);
    let mut config = common::test_config(dir);
    config.routing = routing;
    config.rules.paths = Vec::new();
    config.channels.console.enabled = false;
    config.channels.slack = Some(SlackSettings {
        webhook_url: None,
        bot_token: Some(Secret::new("xoxb-test")),
        api_url: format!("{}/api", slack.uri()),
        channels: SlackSettings::seed_channels(),
        default_channel: "#alerts-info".into(),
        timeout: Duration::from_secs(5),
    });
    config.channels.webhooks = vec![WebhookSettings {
        name: "ops".into(),
        url: Secret::new(format!("{}/hook", hook.uri())),
        bearer: None,
        timeout: Duration::from_secs(5),
    }];
    config
}

/// The daemon with its loop running on `clock`.
fn open(config: Config, clock: &ManualClock) -> (Daemon, LoopHandle) {
    let daemon = Daemon::open(config, Arc::new(clock.clone())).unwrap();
    let looping = daemon.spawn_loop();
    (daemon, looping)
}

async fn fire(daemon: &Daemon, clock: &ManualClock) {
    let labels = [
        ("alertname", "投稿成功率低下"),
        ("severity", "critical"),
        ("account", "a1"),
    ];
    common::fire_external(daemon, &labels, clock.now()).await;
}

fn ok_post() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "ok": true, "channel": "C0CRIT", "ts": "1800000000.000100"
    }))
}

async fn requests_to(server: &MockServer, p: &str) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == p)
        .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
        .collect()
}

#[tokio::test]
async fn a_slack_outage_is_retried_falls_back_and_the_page_arrives_when_slack_returns() {
    let slack = MockServer::start().await;
    let hook = MockServer::start().await;
    // Slack is down for the first six attempts, then back.
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(6)
        .with_priority(1)
        .mount(&slack)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(ok_post())
        .with_priority(2)
        .mount(&slack)
        .await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&hook)
        .await;

    let dir = common::daemon_dir("delivery-outage", "");
    let clock = ManualClock::new(Timestamp::from_secs(T0));
    let (daemon, looping) = open(config(&dir, &slack, &hook), &clock);
    fire(&daemon, &clock).await;
    // Ten minutes of the daemon's loop: each retry runs at its deadline. Retries
    // back off to at most five minutes, so six failures end well inside this.
    let t0 = Timestamp::from_secs(T0);
    daemon
        .run_until(&clock, t0 + Duration::from_secs(600))
        .await;
    assert_eq!(
        daemon.metrics().outbox_pending.get(),
        0,
        "nothing left owed"
    );
    let posts = requests_to(&slack, "/api/chat.postMessage").await;
    assert_eq!(posts.len(), 7, "six failures, then the page");
    assert_eq!(posts[6]["channel"], "#alerts-critical");
    // The fallback went once, after the fifth failure, with its idempotency key.
    let hooks = hook.received_requests().await.unwrap();
    assert_eq!(hooks.len(), 1);
    let key = hooks[0]
        .headers
        .get("idempotency-key")
        .unwrap()
        .to_str()
        .unwrap();
    // The key a page to webhook:ops would have: one message, one key.
    assert!(
        key.contains(".firing.L1.") && key.ends_with(".webhook:ops") && !key.contains("slack"),
        "{key}"
    );
    let fallback: Value = serde_json::from_slice(&hooks[0].body).unwrap();
    assert_eq!(fallback["alerts"][0]["rule"], "投稿成功率低下");
    // The timeline tells the story, for the review.
    let (_, timeline) = daemon.alert("1").await.unwrap();
    let notes: Vec<&str> = timeline.iter().map(|e| e.reason.as_str()).collect();
    assert!(
        notes.iter().any(|n| n
            .starts_with("delivery to slack:#alerts-critical failing after 5 attempt(s): slack")),
        "{notes:#?}"
    );
    assert!(
        notes.contains(&"notified webhook:ops instead of slack:#alerts-critical: firing (level 1)")
    );
    assert!(
        notes.contains(
            &"notified slack:#alerts-critical: firing (level 1) after 6 failed attempt(s)"
        ),
        "{notes:#?}"
    );
    // The outage took minutes of (injected) time, with growing waits: the page
    // went when its last retry was due, not at the end of the run.
    let delivered = timeline
        .iter()
        .find(|e| {
            e.reason
                .starts_with("notified slack:#alerts-critical: firing")
        })
        .unwrap();
    let took = delivered.at.since(t0);
    assert!(took > Duration::from_secs(30), "{took:?}");
    assert!(took < Duration::from_secs(600), "{took:?}");
    looping.stop().await;
}

#[tokio::test]
async fn an_ack_edits_the_slack_message_that_announced_the_alert() {
    let slack = MockServer::start().await;
    let hook = MockServer::start().await;
    Mock::given(path("/api/chat.postMessage"))
        .respond_with(ok_post())
        .mount(&slack)
        .await;
    Mock::given(path("/api/chat.update"))
        .respond_with(ok_post())
        .mount(&slack)
        .await;
    let dir = common::daemon_dir("delivery-ack", "");
    let clock = ManualClock::new(Timestamp::from_secs(T0));
    let (daemon, looping) = open(config(&dir, &slack, &hook), &clock);
    fire(&daemon, &clock).await;
    daemon.caught_up().await;
    assert_eq!(requests_to(&slack, "/api/chat.postMessage").await.len(), 1);
    let t0 = Timestamp::from_secs(T0);
    daemon
        .run_until(&clock, t0 + Duration::from_secs(120))
        .await;
    daemon
        .act(
            "1",
            Event::Ack {
                actor: "tanaka".into(),
                via: "slack".into(),
                note: None,
            },
        )
        .await
        .unwrap();
    daemon.caught_up().await;
    let updates = requests_to(&slack, "/api/chat.update").await;
    assert_eq!(
        updates.len(),
        1,
        "the message is edited, not a new one posted"
    );
    assert_eq!(updates[0]["channel"], "C0CRIT");
    assert_eq!(updates[0]["ts"], "1800000000.000100");
    assert!(
        updates[0]["text"]
            .as_str()
            .unwrap()
            .contains("ACKED by tanaka"),
        "{}",
        updates[0]["text"]
    );
    assert_eq!(requests_to(&slack, "/api/chat.postMessage").await.len(), 1);
    looping.stop().await;
}

/// A fake Slack that answers each post with its own `ts` (…0001, …0002, …), as
/// Slack does, and each update with the `ts` it was given.
struct NumberedPosts(std::sync::atomic::AtomicU64);

impl wiremock::Respond for NumberedPosts {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let ts = match body.get("ts").and_then(Value::as_str) {
            Some(ts) => ts.to_string(),
            None => {
                let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                format!("1800000000.{n:06}")
            }
        };
        ResponseTemplate::new(200).set_body_json(json!({"ok": true, "channel": "C0CRIT", "ts": ts}))
    }
}

/// Each alert's line in a grouped message: its text, and the buttons it offers.
fn lines_of(update: &Value) -> Vec<(String, Vec<String>)> {
    let blocks = update["blocks"].as_array().unwrap();
    let mut out = Vec::new();
    for (i, b) in blocks.iter().enumerate().skip(1) {
        if b["type"] != "section" {
            continue;
        }
        let text = b["text"]["text"].as_str().unwrap().to_string();
        let buttons = blocks
            .get(i + 1)
            .filter(|n| n["type"] == "actions")
            .map(|n| {
                n["elements"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["action_id"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        out.push((text, buttons));
    }
    out
}

#[tokio::test]
async fn acks_and_resolves_edit_the_grouped_message_that_announced_them() {
    let slack = MockServer::start().await;
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(NumberedPosts(Default::default()))
        .mount(&slack)
        .await;
    let dir = common::daemon_dir("delivery-group-edit", "");
    let mut config = config(&dir, &slack, &hook);
    config.routing.group_by = vec!["alertname".into()];
    let clock = ManualClock::new(Timestamp::from_secs(T0));
    let (daemon, looping) = open(config, &clock);
    let t0 = Timestamp::from_secs(T0);
    let labels = |account: &'static str| {
        [
            ("alertname", "投稿成功率低下"),
            ("severity", "critical"),
            ("account", account),
        ]
    };
    // #1 is posted at once (…0001); #2 and #3 wait for the group and are posted
    // together when it closes (…0002).
    common::fire_external(&daemon, &labels("a1"), t0).await;
    daemon.run_until(&clock, t0 + Duration::from_secs(1)).await;
    common::fire_external(&daemon, &labels("a2"), t0 + Duration::from_secs(1)).await;
    common::fire_external(&daemon, &labels("a3"), t0 + Duration::from_secs(1)).await;
    daemon.run_until(&clock, t0 + Duration::from_secs(60)).await;
    let posts = requests_to(&slack, "/api/chat.postMessage").await;
    assert_eq!(posts.len(), 2, "{posts:#?}");
    assert!(posts[1]["text"].as_str().unwrap().contains("(2 alerts)"));

    let ack = Event::Ack {
        actor: "tanaka".into(),
        via: "slack".into(),
        note: None,
    };
    daemon.act("2", ack).await.unwrap();
    daemon
        .run_until(&clock, t0 + Duration::from_secs(120))
        .await;
    let updates = requests_to(&slack, "/api/chat.update").await;
    assert_eq!(updates.len(), 1, "{updates:#?}");
    assert_eq!(updates[0]["ts"], "1800000000.000002", "the grouped message");
    let lines = lines_of(&updates[0]);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].0.contains("#2") && lines[0].0.contains("Acknowledged by tanaka"));
    assert_eq!(lines[0].1, ["tocsin_resolve"], "only Resolve is left on #2");
    assert!(lines[1].0.contains("#3"));
    assert_eq!(
        lines[1].1,
        ["tocsin_ack", "tocsin_resolve", "tocsin_silence_1h"],
        "#3 still fires"
    );
    assert_eq!(
        requests_to(&slack, "/api/chat.postMessage").await.len(),
        2,
        "no new message for the ack"
    );

    // The sender resolves all three at once: both messages are edited, none posted.
    let resolved: Vec<tocsin::engine::ExternalAlert> = ["a1", "a2", "a3"]
        .into_iter()
        .map(|a| tocsin::engine::ExternalAlert {
            labels: tocsin::labels::Labels::from_pairs(labels(a)),
            firing: false,
            external: tocsin::alert::External {
                starts_at: if a == "a1" {
                    t0
                } else {
                    t0 + Duration::from_secs(1)
                },
                ends_at: Some(t0 + Duration::from_secs(150)),
                annotations: Default::default(),
                generator_url: None,
                external_url: None,
                group_key: None,
            },
        })
        .collect();
    clock.set(t0 + Duration::from_secs(150));
    daemon.receive_external("test", resolved).await.unwrap();
    daemon
        .run_until(&clock, t0 + Duration::from_secs(200))
        .await;
    let updates = requests_to(&slack, "/api/chat.update").await;
    let edited: std::collections::BTreeSet<&str> = updates[1..]
        .iter()
        .map(|u| u["ts"].as_str().unwrap())
        .collect();
    assert_eq!(
        edited,
        ["1800000000.000001", "1800000000.000002"].into(),
        "{updates:#?}"
    );
    let group = updates[1..]
        .iter()
        .rfind(|u| u["ts"] == "1800000000.000002")
        .unwrap();
    for (text, buttons) in &lines_of(group) {
        assert!(text.contains("Resolved at"), "{text}");
        assert!(buttons.is_empty(), "no live buttons on {text}");
    }
    assert!(group.to_string().contains("Now: 2 resolved"), "{group}");
    assert_eq!(requests_to(&slack, "/api/chat.postMessage").await.len(), 2);
    looping.stop().await;
}
