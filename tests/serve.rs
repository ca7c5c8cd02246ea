//! The daemon in-process on 127.0.0.1:0: push samples over HTTP, see alerts fire at
//! once, ack them, restart, and have every bad request refused whole with a JSON
//! reason.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tocsin::clock::{ManualClock, Timestamp};
use tocsin::config::Config;
use tocsin::server::{Running, start};

mod common;

const RULES: &str = r#"metric cpu_usage gauge ratio
metric unknown_api_calls gauge count

alert "CPU使用率異常" {
  when cpu_usage > 90% for 15m
  severity critical
  annotations {
    summary = "{{ labels.host }} の CPU 使用率が {{ value }} です"
  }
}

alert "異常API呼び出し" {
  when unknown_api_calls > 0
  severity critical
}
"#;

fn dir(name: &str) -> PathBuf {
    common::daemon_dir(&format!("serve-{name}"), RULES)
}

fn config(dir: &Path) -> Config {
    let mut c = common::test_config(dir);
    c.server.body_limit = 64 * 1024;
    c
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(r: &Running) -> Client {
        Client {
            http: tocsin::tls::http_client().build().unwrap(),
            base: format!("http://{}", r.addr),
        }
    }

    async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn push(&self, samples: Value) -> (StatusCode, Value) {
        self.post("/api/v1/samples", json!({ "samples": samples }).to_string())
            .await
    }

    async fn alerts(&self) -> Vec<Value> {
        let (status, body) = self.get("/api/v1/alerts").await;
        assert_eq!(status, StatusCode::OK);
        body["alerts"].as_array().unwrap().clone()
    }
}

#[tokio::test]
async fn a_sample_crossing_a_threshold_fires_within_the_push() {
    let d = dir("fire");
    let clock = ManualClock::new(Timestamp::from_secs(1_800_000_000));
    let running = start(config(&d), Arc::new(clock.clone())).await.unwrap();
    let c = Client::new(&running);
    let (status, body) = c
        .push(json!([{ "name": "unknown_api_calls", "labels": { "host": "bot-1" }, "value": 2 }]))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "accepted": 1 })));
    // No evaluation deadline has come: the push itself evaluated the rule.
    let alerts = c.alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["state"], "firing");
    let ready = reqwest::get(format!("http://{}/readyz", running.addr))
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        StatusCode::OK,
        "the store took the commit: ready"
    );
    assert_eq!(alerts[0]["id"], 1);
    assert_eq!(alerts[0]["labels"]["host"], "bot-1");
    running.stop().await;
}

#[tokio::test]
async fn for_progress_ack_and_restart() {
    let d = dir("ack");
    let t0 = Timestamp::from_secs(1_800_000_000);
    let clock = ManualClock::new(t0);
    let running = start(config(&d), Arc::new(clock.clone())).await.unwrap();
    let c = Client::new(&running);
    // cpu at 95% pushed every minute: pending until 15 minutes have passed.
    for minute in 0..=15 {
        clock.set(t0 + Duration::from_secs(minute * 60));
        let (status, _) = c
            .push(json!([{ "name": "cpu_usage", "labels": { "host": "bot-1" }, "value": 0.95 }]))
            .await;
        assert_eq!(status, StatusCode::OK);
        let state = c.alerts().await[0]["state"].clone();
        assert_eq!(
            state,
            if minute < 15 { "pending" } else { "firing" },
            "minute {minute}"
        );
    }
    let (_, alert) = c.get("/api/v1/alerts/1").await;
    assert_eq!(
        alert["annotations"]["summary"],
        "bot-1 の CPU 使用率が 95% です"
    );

    let (status, acked) = c
        .post(
            "/api/v1/alerts/1/ack",
            r#"{"actor": "alice", "note": "looking"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (acked["state"].as_str(), acked["ack"]["actor"].as_str()),
        (Some("acknowledged"), Some("alice"))
    );
    // Acking twice is a conflict, not a silent success.
    let (status, body) = c.post("/api/v1/alerts/1/ack", "").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    running.stop().await;
    let running = start(config(&d), Arc::new(clock.clone())).await.unwrap();
    let c = Client::new(&running);
    let fp = acked["fingerprint"].as_str().unwrap().to_string();
    let (status, alert) = c.get(&format!("/api/v1/alerts/{fp}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (alert["id"].as_u64(), alert["state"].as_str()),
        (Some(1), Some("acknowledged"))
    );
    // State changes; deliveries are on the timeline too ("notified console").
    let entries = alert["timeline"].as_array().unwrap();
    let timeline: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e["from"] != e["to"])
        .map(|e| (e["to"].as_str().unwrap(), e["actor"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        timeline,
        [("pending", ""), ("firing", ""), ("acknowledged", "alice")]
    );

    running.stop().await;
}

#[tokio::test]
async fn bad_requests_are_refused_whole_with_a_json_reason() {
    let d = dir("bad");
    let clock = ManualClock::new(Timestamp::from_secs(1_800_000_000));
    let running = start(config(&d), Arc::new(clock.clone())).await.unwrap();
    let c = Client::new(&running);
    let firing = json!({ "name": "unknown_api_calls", "value": 1 });

    let cases: Vec<(Vec<u8>, StatusCode, &str)> = vec![
        (
            b"{not json".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid JSON",
        ),
        (
            json!({ "samples": [firing, { "name": "x", "value": "high" }] })
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
            "invalid JSON",
        ),
        (
            json!({ "samples": [firing, { "name": "9bad", "value": 1 }] })
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
            "sample 1: invalid metric name",
        ),
        (
            json!({ "samples": [firing, { "name": "x", "labels": { "__a": "b" }, "value": 1 }] })
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
            "sample 1: invalid label name",
        ),
        (
            json!({ "samples": [firing], "extra": 1 })
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            vec![b'{', 0xff, 0xfe, b'}'],
            StatusCode::BAD_REQUEST,
            "invalid JSON",
        ),
        (
            vec![b' '; 65 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than",
        ),
        // Out of order within one series: the second sample is older than the first.
        (
            json!({ "samples": [
                { "name": "unknown_api_calls", "value": 1, "timestamp": 1_800_000_000_000i64 },
                { "name": "unknown_api_calls", "value": 1, "timestamp": 1_799_999_999_000i64 },
            ] })
            .to_string()
            .into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "sample 1: sample at",
        ),
    ];
    for (body, want_status, want_error) in cases {
        let (status, reply) = c.post("/api/v1/samples", body).await;
        assert_eq!(status, want_status, "{reply}");
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(error.contains(want_error), "{error:?} lacks {want_error:?}");
    }
    // Every batch above held a firing sample first: none of it was applied.
    assert!(c.alerts().await.is_empty());

    let (status, reply) = c.get("/api/v1/alerts/42").await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("no alert with id 42"))
    );
    let (status, _) = c.post("/api/v1/alerts/42/snooze", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = c.get("/api/v1/alerts?colour=red").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A path or a method tocsin does not serve is a refusal like any other: a JSON
    // reason, never an empty body.
    for (path, want) in [
        ("/", "no such endpoint: GET /"),
        ("/api/v1/nothing", "no such endpoint: GET /api/v1/nothing"),
    ] {
        let (status, reply) = c.get(path).await;
        assert_eq!(
            (status, reply["error"].as_str()),
            (StatusCode::NOT_FOUND, Some(want))
        );
    }
    let (status, reply) = c.post("/healthz", "").await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            Some("POST is not allowed on /healthz")
        )
    );
    let long = format!("/{}", "x".repeat(5000));
    let (status, reply) = c.get(&long).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(reply["error"].as_str().unwrap().len() < 300, "{reply}");
    running.stop().await;
}

#[tokio::test]
async fn alerts_filter_by_state_severity_and_label() {
    let d = dir("filter");
    let clock = ManualClock::new(Timestamp::from_secs(1_800_000_000));
    let running = start(config(&d), Arc::new(clock.clone())).await.unwrap();
    let c = Client::new(&running);
    c.push(json!([
        { "name": "unknown_api_calls", "labels": { "host": "bot-1" }, "value": 1 },
        { "name": "unknown_api_calls", "labels": { "host": "bot-2" }, "value": 1 },
        { "name": "cpu_usage", "labels": { "host": "bot-1" }, "value": 0.99 },
    ]))
    .await;
    let count = |q: &'static str| {
        let c = &c;
        async move {
            c.get(&format!("/api/v1/alerts?{q}")).await.1["alerts"]
                .as_array()
                .unwrap()
                .len()
        }
    };
    assert_eq!(count("state=firing").await, 2);
    assert_eq!(count("state=pending").await, 1);
    assert_eq!(count("severity=critical&label=host=bot-1").await, 2);
    assert_eq!(count("state=firing&label=host=bot-2").await, 1);
    running.stop().await;
}

#[tokio::test]
async fn metrics_expose_ingestion_evaluation_and_alert_states() {
    let d = dir("metrics");
    let clock = ManualClock::new(Timestamp::from_secs(1_800_000_000));
    let running = start(config(&d), Arc::new(clock.clone())).await.unwrap();
    let c = Client::new(&running);
    c.push(json!([
        { "name": "unknown_api_calls", "labels": { "host": "bot-1" }, "value": 1 },
        { "name": "cpu_usage", "labels": { "host": "bot-1" }, "value": 0.99 },
    ]))
    .await;
    // Deliveries happen after the commit, in the daemon's loop: wait until it has
    // sent what is due now.
    running.daemon.caught_up().await;
    let text = reqwest::get(format!("http://{}/metrics", running.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "tocsin_samples_ingested_total 2",
        "tocsin_series 2",
        "tocsin_alerts{state=\"firing\"} 1",
        "tocsin_alerts{state=\"pending\"} 1",
        "tocsin_alerts{state=\"resolved\"} 0",
        "tocsin_notifications_total{channel=\"console\",reason=\"firing\"} 1",
        "tocsin_rules 2",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    // The push evaluated; the evaluation deadline may have too, at start.
    let evaluations: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("tocsin_evaluations_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(evaluations >= 1);
    assert!(text.contains("tocsin_evaluation_duration_seconds_bucket"));
    running.stop().await;
}

/// Polls `/metrics` until `line` is there, for at most five seconds.
async fn wait_metric(running: &Running, line: &str) {
    let started = std::time::Instant::now();
    loop {
        let text = reqwest::get(format!("http://{}/metrics", running.addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.lines().any(|l| l == line) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no {line:?} in\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn hot_reload_keeps_good_rules_and_alert_state() {
    let d = dir("reload");
    let clock = ManualClock::new(Timestamp::from_secs(1_800_000_000));
    let mut s = config(&d);
    s.rules.watch_interval = Duration::from_millis(50);
    let running = start(s, Arc::new(clock.clone())).await.unwrap();
    let c = Client::new(&running);
    c.push(json!([{ "name": "unknown_api_calls", "labels": { "host": "bot-1" }, "value": 1 }]))
        .await;
    let before = c.alerts().await;
    assert_eq!(
        (before[0]["id"].as_u64(), before[0]["state"].as_str()),
        (Some(1), Some("firing"))
    );

    // A broken file: the running rules stay, and the failure is visible.
    std::fs::write(
        d.join("rules/broken.rules"),
        "alert \"x\" {\n  when cpu_usage > \n}\n",
    )
    .unwrap();
    wait_metric(&running, "tocsin_rules_last_reload_success 0").await;
    wait_metric(&running, "tocsin_rules 2").await;
    clock.advance(Duration::from_secs(60));
    c.push(json!([{ "name": "unknown_api_calls", "labels": { "host": "bot-2" }, "value": 1 }]))
        .await;
    assert_eq!(c.alerts().await.len(), 2, "the old rules still evaluate");

    // Fixed, with one more rule and 異常API呼び出し unchanged: its alerts keep their
    // state and ids.
    std::fs::write(
        d.join("rules/broken.rules"),
        "alert \"queue\" {\n  when queue_length > 100\n  severity info\n}\n",
    )
    .unwrap();
    wait_metric(&running, "tocsin_rules 3").await;
    wait_metric(&running, "tocsin_rules_last_reload_success 1").await;
    clock.advance(Duration::from_secs(60));
    c.push(json!([{ "name": "queue_length", "value": 500 }]))
        .await;
    let after = c.alerts().await;
    let bot1 = after
        .iter()
        .find(|a| a["labels"]["host"] == "bot-1")
        .unwrap();
    assert_eq!(
        (bot1["id"].as_u64(), bot1["state"].as_str()),
        (Some(1), Some("firing"))
    );
    assert!(
        after
            .iter()
            .any(|a| a["rule"] == "queue" && a["state"] == "firing")
    );

    // A rule removed: its active alerts resolve, since nothing would evaluate them.
    std::fs::remove_file(d.join("rules/broken.rules")).unwrap();
    wait_metric(&running, "tocsin_rules 2").await;
    let queue = c
        .alerts()
        .await
        .into_iter()
        .find(|a| a["rule"] == "queue")
        .unwrap();
    assert_eq!(queue["state"], "resolved");
    running.stop().await;
}

#[tokio::test]
async fn with_tokens_writes_need_a_bearer_token_and_its_name_is_the_actor() {
    use tocsin::config::{Secret, Token};
    let d = dir("tokens");
    let clock = ManualClock::new(Timestamp::from_secs(1_800_000_000));
    let mut s = config(&d);
    s.tokens = vec![
        Token {
            name: "ci".into(),
            token: Secret::new("s3cret-ci"),
        },
        Token {
            name: "alice".into(),
            token: Secret::new("s3cret-alice"),
        },
    ];
    let running = start(s, Arc::new(clock.clone())).await.unwrap();
    let base = format!("http://{}", running.addr);
    let http = tocsin::tls::http_client().build().unwrap();
    let body = json!({ "samples": [{ "name": "unknown_api_calls", "value": 1 }] }).to_string();
    let push = |auth: Option<&'static str>| {
        let mut r = http
            .post(format!("{base}/api/v1/samples"))
            .body(body.clone());
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        r.send()
    };
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("s3cret-ci"),
        Some("Bearer s3cret-c"),
    ] {
        let r = push(auth).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        let reply: Value = r.json().await.unwrap();
        assert_eq!(reply["error"], "missing or invalid bearer token");
    }
    let c = Client::new(&running);
    assert!(
        c.alerts().await.is_empty(),
        "nothing applied; reads stay open"
    );
    assert_eq!(
        push(Some("Bearer s3cret-ci")).await.unwrap().status(),
        StatusCode::OK
    );

    // The body cannot claim another actor: the token's name is recorded.
    let acked: Value = http
        .post(format!("{base}/api/v1/alerts/1/ack"))
        .header("Authorization", "Bearer s3cret-alice")
        .body(r#"{"actor": "mallory"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(acked["ack"]["actor"], "alice");
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused: u64 = text
        .lines()
        .filter(|l| l.starts_with("tocsin_auth_failures_total{endpoint=\"/api/v1/samples\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(refused, 4, "{text}");
    running.stop().await;
}
