//! Silences over HTTP: a matching alert is suppressed (no notification), new
//! matching alerts fire straight into suppression, expiring resumes them, pending
//! silences start on time, and silences survive a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tocsin::clock::{ManualClock, Timestamp};
use tocsin::config::Config;
use tocsin::server::{Running, start};

mod common;

fn dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("silences-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("rules")).unwrap();
    std::fs::write(
        d.join("rules/r.rules"),
        "alert \"異常API呼び出し\" {\n  when unknown_api_calls > 0\n  severity critical\n}\n",
    )
    .unwrap();
    d
}

fn config(d: &Path) -> Config {
    common::test_config(d)
}

struct C {
    base: String,
    http: reqwest::Client,
    daemon: tocsin::daemon::Daemon,
}

impl C {
    fn new(r: &Running) -> C {
        C {
            base: format!("http://{}", r.addr),
            http: tocsin::tls::http_client().build().unwrap(),
            daemon: r.daemon.clone(),
        }
    }
    async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let r = req.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }
    async fn push(&self, host: &str) {
        let body = json!({ "samples": [{ "name": "unknown_api_calls", "labels": { "host": host }, "value": 1 }] });
        let (status, _) = self
            .send(
                self.http
                    .post(format!("{}/api/v1/samples", self.base))
                    .json(&body),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    async fn state(&self, host: &str) -> String {
        let (_, body) = self
            .send(
                self.http
                    .get(format!("{}/api/v1/alerts?label=host={host}", self.base)),
            )
            .await;
        body["alerts"][0]["state"]
            .as_str()
            .unwrap_or("none")
            .to_string()
    }
    async fn silence(&self, body: Value) -> (StatusCode, Value) {
        self.send(
            self.http
                .post(format!("{}/api/v1/silences", self.base))
                .json(&body),
        )
        .await
    }
    /// Firing notifications delivered so far (once the daemon's loop has sent what
    /// is due now).
    async fn firing_notifications(&self) -> u64 {
        self.daemon.caught_up().await;
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| {
                l.strip_prefix("tocsin_notifications_total{channel=\"console\",reason=\"firing\"} ")
            })
            .map_or(0, |v| v.parse().unwrap())
    }
}

#[tokio::test]
async fn silences_suppress_resume_and_persist() {
    let d = dir("lifecycle");
    let t0 = Timestamp::from_secs(1_800_000_000);
    let clock = ManualClock::new(t0);
    let r = start(config(&d), Arc::new(clock.clone())).await.unwrap();
    let c = C::new(&r);
    c.push("bot-1").await;
    assert_eq!(c.state("bot-1").await, "firing");
    assert_eq!(c.firing_notifications().await, 1);

    let (status, s) = c
        .silence(json!({ "matchers": [{ "name": "host", "op": "=~", "value": "bot-[12]" }], "duration": "2h", "created_by": "alice", "comment": "reboots" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    assert_eq!(
        (s["status"].as_str(), s["created_by"].as_str()),
        (Some("active"), Some("alice"))
    );
    let id = s["id"].as_str().unwrap().to_string();
    assert_eq!(c.state("bot-1").await, "suppressed");

    // A new alert under the silence fires straight into suppression: no notification.
    clock.advance(Duration::from_secs(60));
    c.push("bot-2").await;
    assert_eq!(c.state("bot-2").await, "suppressed");
    assert_eq!(c.firing_notifications().await, 1);
    // One that does not match is not silenced.
    c.push("bot-3").await;
    assert_eq!(c.state("bot-3").await, "firing");

    // The silence survives a restart.
    drop(c);
    r.stop().await;
    let r = start(config(&d), Arc::new(clock.clone())).await.unwrap();
    let c = C::new(&r);
    let (_, list) = c
        .send(c.http.get(format!("{}/api/v1/silences", c.base)))
        .await;
    assert_eq!(list["silences"][0]["id"], id.as_str());
    assert_eq!(c.state("bot-1").await, "suppressed");

    // Expired early: its alerts resume.
    let (status, expired) = c
        .send(c.http.delete(format!("{}/api/v1/silences/{id}", c.base)))
        .await;
    assert_eq!(
        (status, expired["status"].as_str()),
        (StatusCode::OK, Some("expired"))
    );
    assert_eq!(c.state("bot-1").await, "firing");
    let (status, _) = c
        .send(c.http.delete(format!("{}/api/v1/silences/nope", c.base)))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    r.stop().await;
}

#[tokio::test]
async fn a_scheduled_silence_starts_and_ends_on_time() {
    let d = dir("scheduled");
    let t0 = Timestamp::from_secs(1_800_000_000);
    let clock = ManualClock::new(t0);
    let r = start(config(&d), Arc::new(clock.clone())).await.unwrap();
    let c = C::new(&r);
    c.push("bot-1").await;
    let starts = (t0 + Duration::from_secs(600)).to_rfc3339();
    let ends = (t0 + Duration::from_secs(1200)).to_rfc3339();
    let (status, s) = c
        .silence(json!({ "matchers": [{ "name": "host", "value": "bot-1" }], "starts_at": starts, "ends_at": ends, "comment": "maintenance window" }))
        .await;
    assert_eq!(
        (status, s["status"].as_str()),
        (StatusCode::CREATED, Some("pending"))
    );
    assert_eq!(c.state("bot-1").await, "firing");
    // The daemon's loop keeps the silence's edges as deadlines: it starts at
    // exactly its starts_at and ends at exactly its ends_at, with no push and no
    // tick needed (samples keep coming, as they would).
    let at = |secs: u64| t0 + Duration::from_secs(secs);
    r.daemon.run_until(&clock, at(300)).await;
    c.push("bot-1").await;
    r.daemon
        .run_until(&clock, at(600) - Duration::from_millis(1))
        .await;
    assert_eq!(c.state("bot-1").await, "firing");
    r.daemon.run_until(&clock, at(600)).await;
    assert_eq!(c.state("bot-1").await, "suppressed");
    r.daemon.run_until(&clock, at(900)).await;
    c.push("bot-1").await;
    r.daemon
        .run_until(&clock, at(1200) - Duration::from_millis(1))
        .await;
    assert_eq!(c.state("bot-1").await, "suppressed");
    // And its end releases it.
    r.daemon.run_until(&clock, at(1200)).await;
    assert_eq!(c.state("bot-1").await, "firing");
    r.stop().await;
}

#[tokio::test]
async fn bad_silences_are_refused() {
    let d = dir("bad");
    let clock = ManualClock::new(Timestamp::from_secs(1_800_000_000));
    let r = start(config(&d), Arc::new(clock.clone())).await.unwrap();
    let c = C::new(&r);
    for (body, want) in [
        (
            json!({ "matchers": [], "duration": "1h" }),
            "at least one matcher",
        ),
        (
            json!({ "matchers": [{ "name": "host", "op": "=~", "value": ".*" }], "duration": "1h" }),
            "empty string",
        ),
        (
            json!({ "matchers": [{ "name": "host", "op": "=~", "value": "(" }], "duration": "1h" }),
            "invalid regex",
        ),
        (
            json!({ "matchers": [{ "name": "host", "value": "a" }] }),
            "ends_at or duration",
        ),
        (
            json!({ "matchers": [{ "name": "host", "value": "a" }], "duration": "soon" }),
            "duration",
        ),
        // The one duration syntax, as in rules, the config, the CLI and Slack.
        (
            json!({ "matchers": [{ "name": "host", "value": "a" }], "duration": "90mins" }),
            "duration: unknown unit `mins` in `90mins`; did you mean `90m`?",
        ),
        (
            json!({ "matchers": [{ "name": "host", "value": "a" }], "duration": "1h", "colour": "red" }),
            "unknown field",
        ),
    ] {
        let (status, reply) = c.silence(body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
        assert!(
            reply["error"].as_str().unwrap().contains(want),
            "{reply} lacks {want}"
        );
    }
    let (_, list) = c
        .send(c.http.get(format!("{}/api/v1/silences", c.base)))
        .await;
    assert_eq!(list["silences"].as_array().unwrap().len(), 0);
    r.stop().await;
}
