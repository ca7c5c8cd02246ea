//! Alerts from other systems: Alertmanager's webhook and `POST /api/v2/alerts`, fed
//! with payloads captured from a real Alertmanager 0.25 and Prometheus 2.42
//! (tests/fixtures/alertmanager/). Delivery is at least once, so duplicates and stale
//! updates must change nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;
use tocsin::clock::{ManualClock, Timestamp};
use tocsin::server::{Running, start};

mod common;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/alertmanager")
            .join(name),
    )
    .unwrap()
}

fn dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("intake-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("rules")).unwrap();
    // A tocsin rule with the same name as an incoming alert must not claim it.
    std::fs::write(
        d.join("rules/r.rules"),
        "alert \"HarnessTestAlert\" {\n  when never_pushed > 1 for 1h\n  severity info\n}\n",
    )
    .unwrap();
    d
}

async fn daemon(name: &str, clock: &ManualClock) -> Running {
    let d = dir(name);
    start(common::test_config(&d), Arc::new(clock.clone()))
        .await
        .unwrap()
}

async fn post(r: &Running, path: &str, body: String) -> (StatusCode, String) {
    let resp = tocsin::tls::http_client()
        .build()
        .unwrap()
        .post(format!("http://{}{path}", r.addr))
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

async fn alerts(r: &Running) -> Vec<Value> {
    let body: Value = reqwest::get(format!("http://{}/api/v1/alerts", r.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["alerts"].as_array().unwrap().clone()
}

/// (fingerprint, state, incident) of every alert, sorted.
async fn summary(r: &Running) -> Vec<(String, String, u64)> {
    let mut v: Vec<_> = alerts(r)
        .await
        .iter()
        .map(|a| {
            (
                a["fingerprint"].as_str().unwrap().to_string(),
                a["state"].as_str().unwrap().to_string(),
                a["id"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    v.sort();
    v
}

/// State changes on an alert's timeline (deliveries are recorded there too, as
/// they happen).
async fn timeline_len(r: &Running, id: &str) -> usize {
    let body: Value = reqwest::get(format!("http://{}/api/v1/alerts/{id}", r.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["from"] != e["to"])
        .count()
}

#[tokio::test]
async fn alertmanager_webhook_fires_dedups_and_resolves() {
    let clock = ManualClock::new(Timestamp::from_secs(1_800_000_000));
    let r = daemon("webhook", &clock).await;
    let (status, body) = post(
        &r,
        "/api/v1/alertmanager",
        fixture("alertmanager-webhook-firing.json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let firing = summary(&r).await;
    // Alertmanager's own fingerprints: tocsin computes the same ids.
    let fps: Vec<&str> = firing.iter().map(|(fp, ..)| fp.as_str()).collect();
    assert_eq!(
        fps,
        ["91e4f03ad18ae588", "e8c3d2373dc9418d", "fe1556d847319d05"]
    );
    assert!(
        firing
            .iter()
            .all(|(_, state, id)| state == "firing" && *id > 0)
    );
    let first = alerts(&r)
        .await
        .into_iter()
        .find(|a| a["fingerprint"] == "91e4f03ad18ae588")
        .unwrap();
    assert_eq!(first["annotations"]["summary"], "host-a is down");

    // A retry, or the other Alertmanager of an HA pair: nothing changes.
    post(
        &r,
        "/api/v1/alertmanager",
        fixture("alertmanager-webhook-firing.json"),
    )
    .await;
    assert_eq!(summary(&r).await, firing);
    assert_eq!(timeline_len(&r, "91e4f03ad18ae588").await, 1);

    let (status, _) = post(
        &r,
        "/api/v1/alertmanager",
        fixture("alertmanager-webhook-resolved.json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        summary(&r)
            .await
            .iter()
            .all(|(_, state, _)| state == "resolved")
    );

    // A late duplicate of the firing message (same startsAt) must not reopen it.
    post(
        &r,
        "/api/v1/alertmanager",
        fixture("alertmanager-webhook-firing.json"),
    )
    .await;
    assert!(
        summary(&r)
            .await
            .iter()
            .all(|(_, state, _)| state == "resolved")
    );
    assert_eq!(timeline_len(&r, "91e4f03ad18ae588").await, 2);
    // Alertmanager evaluated it, not tocsin: no value of tocsin's, and the timeline
    // says who reported what, not "condition held".
    let one: Value = reqwest::get(format!("http://{}/api/v1/alerts/91e4f03ad18ae588", r.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["value"], Value::Null, "{one}");
    assert_eq!(one["source"], "external", "{one}");
    let reasons: Vec<&str> = one["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["from"] != e["to"])
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "reported firing by its sender",
            "resolved by its sender, or its endsAt passed"
        ]
    );

    // A new occurrence (later startsAt) is a new incident.
    let again = fixture("alertmanager-webhook-firing.json")
        .replace("2026-11-28T14:29:40.742Z", "2026-11-28T15:00:00Z");
    post(&r, "/api/v1/alertmanager", again).await;
    let a = summary(&r)
        .await
        .into_iter()
        .find(|(fp, ..)| fp == "91e4f03ad18ae588")
        .unwrap();
    assert_eq!(a.1, "firing");
    assert!(a.2 > 3, "a new incident number, got {}", a.2);
    r.stop().await;
}

#[tokio::test]
async fn prometheus_v2_alerts_fire_resolve_and_expire() {
    // The fixtures' times: startsAt 14:30:22.045, firing endsAt 14:30:28.045.
    let at = |s: &str| {
        let t = humantime::parse_rfc3339(s).unwrap();
        Timestamp(t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64)
    };
    let clock = ManualClock::new(at("2026-11-28T14:30:23Z"));
    let r = daemon("v2", &clock).await;
    let (status, body) = post(
        &r,
        "/api/v2/alerts",
        fixture("prometheus-alerts-post-firing.json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let a = alerts(&r).await;
    assert_eq!((a.len(), a[0]["state"].as_str()), (1, Some("firing")));
    assert_eq!(a[0]["labels"]["alertname"], "HarnessFlagRaised");

    clock.set(at("2026-11-28T14:30:27Z"));
    post(
        &r,
        "/api/v2/alerts",
        fixture("prometheus-alerts-post-resolved.json"),
    )
    .await;
    assert_eq!(alerts(&r).await[0]["state"], "resolved");

    // Fired again and then not refreshed: it resolves when its endsAt passes.
    let refreshed = fixture("prometheus-alerts-post-firing.json")
        .replace("14:30:22.045Z", "14:31:00Z")
        .replace("14:30:28.045Z", "14:31:10Z");
    clock.set(at("2026-11-28T14:31:01Z"));
    post(&r, "/api/v2/alerts", refreshed).await;
    assert_eq!(alerts(&r).await[0]["state"], "firing");
    // The daemon's loop keeps the endsAt as a deadline: still firing a millisecond
    // before 14:31:10, resolved at exactly 14:31:10 (no longer at the next tick).
    let ends = at("2026-11-28T14:31:10Z");
    r.daemon
        .run_until(&clock, ends - std::time::Duration::from_millis(1))
        .await;
    assert_eq!(alerts(&r).await[0]["state"], "firing");
    r.daemon.run_until(&clock, ends).await;
    assert_eq!(alerts(&r).await[0]["state"], "resolved");
    r.stop().await;
}

#[tokio::test]
async fn bad_intake_is_refused_whole() {
    let clock = ManualClock::new(Timestamp::from_secs(1_800_000_000));
    let r = daemon("bad", &clock).await;
    let cases = [
        (
            "/api/v1/alertmanager",
            "{".to_string(),
            "invalid webhook payload",
        ),
        (
            "/api/v1/alertmanager",
            fixture("alertmanager-webhook-firing.json")
                .replace("\"version\":\"4\"", "\"version\":\"3\""),
            "version",
        ),
        (
            "/api/v1/alertmanager",
            fixture("alertmanager-webhook-firing.json").replace(
                "\"startsAt\":\"2026-11-28T14:29:41.443981963Z\"",
                "\"startsAt\":\"yesterday\"",
            ),
            "alert 2",
        ),
        (
            "/api/v2/alerts",
            r#"[{"labels":{"severity":"page"}}]"#.to_string(),
            "no alertname",
        ),
        (
            "/api/v2/alerts",
            r#"{"labels":{}}"#.to_string(),
            "invalid alerts",
        ),
    ];
    for (path, body, want) in cases {
        let (status, text) = post(&r, path, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        assert!(text.contains(want), "{text} lacks {want}");
    }
    assert!(alerts(&r).await.is_empty(), "nothing was applied");
    r.stop().await;
}

/// Requests sent at once share commits (group commit): each is answered only when
/// its alerts are durable, none is lost or taken twice, and re-sending them all
/// changes nothing.
#[tokio::test]
async fn concurrent_v2_posts_are_each_committed_once() {
    let d = dir("concurrent");
    let clock = ManualClock::new(Timestamp::from_secs(1_800_000_000));
    let r = start(common::test_config(&d), Arc::new(clock.clone()))
        .await
        .unwrap();
    let body = |task: usize, n: usize| {
        let alerts: Vec<Value> = (0..10)
            .map(|k| {
                serde_json::json!({
                    "labels": {"alertname": "Concurrent", "id": format!("{task}-{n}-{k}")},
                    "startsAt": "2027-01-15T08:00:00Z",
                    "endsAt": "2027-01-15T09:00:00Z",
                })
            })
            .collect();
        Value::Array(alerts).to_string()
    };
    let send_all = |r: &Running| -> Vec<tokio::task::JoinHandle<()>> {
        (0..8)
            .map(|task| {
                let addr = r.addr;
                tokio::spawn(async move {
                    let http = reqwest::Client::new();
                    for n in 0..10 {
                        let resp = http
                            .post(format!("http://{addr}/api/v2/alerts"))
                            .body(body(task, n))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(resp.status(), StatusCode::OK);
                    }
                })
            })
            .collect()
    };
    for t in send_all(&r) {
        t.await.unwrap();
    }
    let first = summary(&r).await;
    assert_eq!(first.len(), 800);
    assert!(first.iter().all(|(_, state, _)| state == "firing"));
    let mut incidents: Vec<u64> = first.iter().map(|(.., i)| *i).collect();
    incidents.sort_unstable();
    incidents.dedup();
    assert_eq!(incidents.len(), 800, "one incident per alert");

    // Every one again, as Prometheus re-sends: no alert, state or timeline changes.
    let id = first[0].0.clone();
    let entries = timeline_len(&r, &id).await;
    for t in send_all(&r) {
        t.await.unwrap();
    }
    assert_eq!(summary(&r).await, first);
    assert_eq!(timeline_len(&r, &id).await, entries);

    // Durable: a restart finds all of them.
    r.stop().await;
    let r = start(common::test_config(&d), Arc::new(clock.clone()))
        .await
        .unwrap();
    assert_eq!(summary(&r).await, first);
    r.stop().await;
}

/// A re-send that only moves `endsAt` is kept in memory and written at the next
/// evaluation or at a clean shutdown: after a restart the alert still ends at the
/// later time.
#[tokio::test]
async fn an_ends_at_extension_survives_a_clean_restart() {
    let d = dir("extension");
    let t0 = Timestamp::from_secs(1_800_000_000); // 2027-01-15T08:00:00Z
    let clock = ManualClock::new(t0);
    let r = start(common::test_config(&d), Arc::new(clock.clone()))
        .await
        .unwrap();
    let alert = |ends: &str| {
        format!(
            r#"[{{"labels":{{"alertname":"Extended","host":"a"}},"startsAt":"2027-01-15T08:00:00Z","endsAt":"{ends}"}}]"#
        )
    };
    assert_eq!(
        post(&r, "/api/v2/alerts", alert("2027-01-15T08:01:00Z"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        post(&r, "/api/v2/alerts", alert("2027-01-15T08:10:00Z"))
            .await
            .0,
        StatusCode::OK
    );
    r.stop().await;

    let r = start(common::test_config(&d), Arc::new(clock.clone()))
        .await
        .unwrap();
    // The daemon's loop runs on the manual clock: the extended endsAt (08:10) is a
    // deadline it keeps to the millisecond, not one seen at the next tick.
    let state_at = |ms: u64| {
        let r = &r;
        let clock = &clock;
        async move {
            r.daemon
                .run_until(clock, t0 + std::time::Duration::from_millis(ms))
                .await;
            summary(r).await[0].1.clone()
        }
    };
    assert_eq!(state_at(120_000).await, "firing", "extended to 08:10");
    assert_eq!(state_at(599_999).await, "firing", "until 08:10");
    assert_eq!(state_at(600_000).await, "resolved", "at 08:10");
    r.stop().await;
}
