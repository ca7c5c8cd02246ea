//! Slack → tocsin over HTTP, with requests signed exactly as Slack signs them
//! (`v0=` HMAC-SHA256 over `v0:{timestamp}:{raw body}`): the slash command and the
//! buttons act as the configured person; anything forged, stale, altered, replayed or
//! unsigned gets 401 and changes nothing; a client that keeps failing gets 429.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use tocsin::clock::{Clock, ManualClock, Timestamp};
use tocsin::config::{Config, Secret};
use tocsin::escalation::{Directory, Person};
use tocsin::oncall::Rotation;
use tocsin::server::{Running, start};

mod common;

const RULES: &str = r#"metric post_success_ratio gauge ratio
metric cpu_usage gauge ratio

alert "投稿成功率低下" {
  when post_success_ratio < 95%
  severity critical
}

alert "CPU高負荷" {
  when cpu_usage > 90%
  severity warning
}
"#;

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const T0: i64 = 1_800_000_000;

fn directory() -> Directory {
    let person = |id: &str, name: &str, slack: Option<&str>| Person {
        id: id.into(),
        name: name.into(),
        email: None,
        phone: None,
        slack: slack.map(str::to_string),
    };
    let mut people = BTreeMap::new();
    people.insert("alice".into(), person("alice", "Alice", Some("U123")));
    people.insert("bob".into(), person("bob", "Bob <b>", None));
    let rotation = |name: &str, who: &str| Rotation {
        name: name.into(),
        people: vec![who.into()],
        time_zone: chrono_tz::Asia::Tokyo,
        handoff: chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        shift: Duration::from_secs(7 * 86400),
        start: chrono::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap(),
    };
    let mut schedules = BTreeMap::new();
    schedules.insert("primary".into(), rotation("primary", "alice"));
    schedules.insert("secondary".into(), rotation("secondary", "bob"));
    Directory {
        people,
        groups: BTreeMap::new(),
        schedules,
    }
}

fn config(dir: &Path, secrets: &[&str]) -> Config {
    let mut config = common::test_config(dir);
    config.directory = directory();
    config.channels.slack_signing_secrets = secrets.iter().map(|s| Secret::new(*s)).collect();
    config
}

struct Harness {
    running: Running,
    clock: ManualClock,
    http: reqwest::Client,
    base: String,
}

impl Harness {
    async fn start(name: &str, secrets: &[&str]) -> Harness {
        tocsin::tls::install_crypto_provider();
        let dir = common::daemon_dir(&format!("slack-{name}"), RULES);
        let clock = ManualClock::new(Timestamp::from_secs(T0));
        let running = start(config(&dir, secrets), Arc::new(clock.clone()))
            .await
            .unwrap();
        let base = format!("http://{}", running.addr);
        Harness {
            running,
            clock,
            http: reqwest::Client::new(),
            base,
        }
    }

    /// Pushes samples that fire 投稿成功率低下 (incident 1) on `host`.
    async fn fire(&self, host: &str) {
        let body = json!({ "samples": [
            { "name": "post_success_ratio", "labels": { "host": host }, "value": 0.5 },
        ]});
        let r = self
            .http
            .post(format!("{}/api/v1/samples", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }

    async fn alert(&self, id: u64) -> Value {
        let r = self
            .http
            .get(format!("{}/api/v1/alerts/{id}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    fn now_secs(&self) -> i64 {
        self.clock.now().0 / 1000
    }

    /// A request to `path` as Slack sends it, signed with `secret` at `ts`.
    fn signed(&self, path: &str, body: &str, secret: &str, ts: i64) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("X-Slack-Request-Timestamp", ts.to_string())
            .header("X-Slack-Signature", sign(secret, ts, body))
            .body(body.to_string())
    }

    /// `/tocsin <text>` from Slack user `user`, validly signed now.
    async fn command(&self, user: &str, text: &str) -> (StatusCode, Value) {
        let body = slash_body(user, text);
        let r = self
            .signed("/slack/commands", &body, SECRET, self.now_secs())
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

fn sign(secret: &str, ts: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// A slash command's form body, with the fields Slack sends.
fn slash_body(user: &str, text: &str) -> String {
    serde_urlencoded::to_string([
        ("token", "deprecated-verification-token"),
        ("team_id", "T1DC2JH3J"),
        ("team_domain", "example"),
        ("channel_id", "C0ALERTS"),
        ("channel_name", "alerts-critical"),
        ("user_id", user),
        ("user_name", "someone"),
        ("command", "/tocsin"),
        ("text", text),
        ("api_app_id", "A123"),
        ("is_enterprise_install", "false"),
        (
            "response_url",
            "https://hooks.slack.com/commands/T1DC2JH3J/1/abc",
        ),
        (
            "trigger_id",
            "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c",
        ),
    ])
    .unwrap()
}

/// A `block_actions` payload for one of tocsin's buttons, form-encoded.
fn button_body(user: &str, action_id: &str, value: &str, response_url: &str) -> String {
    let payload = json!({
        "type": "block_actions",
        "user": { "id": user, "username": "someone", "name": "someone", "team_id": "T1" },
        "api_app_id": "A123",
        "token": "deprecated",
        "trigger_id": "1.2.3",
        "team": { "id": "T1", "domain": "example" },
        "enterprise": null,
        "is_enterprise_install": false,
        "container": { "type": "message", "message_ts": "1600857119.015400", "channel_id": "C0ALERTS", "is_ephemeral": false },
        "channel": { "id": "C0ALERTS", "name": "alerts-critical" },
        "message": { "type": "message", "ts": "1600857119.015400", "bot_id": "B1", "text": "alert", "blocks": [] },
        "response_url": response_url,
        "actions": [{
            "type": "button", "action_id": action_id, "block_id": "alert:1",
            "value": value, "text": { "type": "plain_text", "text": "Ack" },
            "action_ts": "1600857125.123456",
        }],
        "state": { "values": {} },
    });
    serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap()
}

/// The last thing a person did on the alert (deliveries are on the timeline too).
fn timeline_last(alert: &Value) -> (String, String, String) {
    let e = alert["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|e| !e["actor"].is_null())
        .unwrap()
        .clone();
    let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
    (s("to"), s("actor"), s("via"))
}

#[tokio::test]
async fn a_signed_ack_acks_as_the_person_via_slack() {
    let h = Harness::start("ack", &["an-old-secret-being-rotated", SECRET]).await;
    h.fire("bot-1").await;
    let (status, reply) = h.command("U123", "ack 1 looking into it").await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(
        reply,
        json!({
            "response_type": "in_channel",
            "text": "<@U123> acknowledged #1 投稿成功率低下: looking into it",
        })
    );
    let alert = h.alert(1).await;
    assert_eq!(alert["state"], "acknowledged");
    assert_eq!(
        (
            &alert["ack"]["actor"],
            &alert["ack"]["via"],
            &alert["ack"]["note"]
        ),
        (&json!("alice"), &json!("slack"), &json!("looking into it"))
    );
    assert_eq!(
        timeline_last(&alert),
        ("acknowledged".into(), "alice".into(), "slack".into())
    );

    // A second ack says why, only to the person who typed it.
    let (status, reply) = h.command("U123", "ack 1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["response_type"], "ephemeral");
    assert!(
        reply["text"].as_str().unwrap().starts_with("#1: "),
        "{reply}"
    );

    let (_, reply) = h.command("U123", "unack 1").await;
    assert_eq!(reply["response_type"], "in_channel", "{reply}");
    assert_eq!(h.alert(1).await["state"], "firing");
    let (_, reply) = h.command("U123", "resolve #1 fixed the deploy").await;
    assert_eq!(
        reply["text"],
        "<@U123> resolved #1 投稿成功率低下: fixed the deploy"
    );
    let alert = h.alert(1).await;
    assert_eq!(alert["state"], "resolved");
    assert_eq!(timeline_last(&alert).1, "alice");

    let (_, reply) = h.command("U123", "ack 99").await;
    assert_eq!(
        reply,
        json!({ "response_type": "ephemeral", "text": "There is no alert #99." })
    );
    h.running.stop().await;
}

#[tokio::test]
async fn forged_stale_altered_replayed_or_unsigned_requests_get_401_and_change_nothing() {
    let h = Harness::start("forged", &[SECRET]).await;
    h.fire("bot-1").await;
    let now = h.now_secs();
    let body = slash_body("U123", "ack 1");
    let url = format!("{}/slack/commands", h.base);
    let form =
        |b: reqwest::RequestBuilder| b.header("Content-Type", "application/x-www-form-urlencoded");

    let cases: Vec<(&str, reqwest::RequestBuilder, &str)> = vec![
        (
            "signed with another secret",
            h.signed("/slack/commands", &body, "not-the-secret", now),
            "signature does not match",
        ),
        (
            "timestamp 6 minutes old",
            h.signed("/slack/commands", &body, SECRET, now - 360),
            "more than 5 minutes",
        ),
        (
            "body altered after signing",
            form(h.http.post(&url))
                .header("X-Slack-Request-Timestamp", now.to_string())
                .header("X-Slack-Signature", sign(SECRET, now, &body))
                .body(body.replace("ack+1", "resolve+1")),
            "signature does not match",
        ),
        (
            "no signature header",
            form(h.http.post(&url))
                .header("X-Slack-Request-Timestamp", now.to_string())
                .body(body.clone()),
            "missing X-Slack-Signature",
        ),
        (
            "no timestamp header",
            form(h.http.post(&url))
                .header("X-Slack-Signature", sign(SECRET, now, &body))
                .body(body.clone()),
            "missing X-Slack-Request-Timestamp",
        ),
    ];
    for (what, request, why) in cases {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what}");
        let text = r.text().await.unwrap();
        let reply: Value = serde_json::from_str(&text).unwrap();
        assert!(
            reply["error"].as_str().unwrap().contains(why),
            "{what}: {reply}"
        );
        assert!(!text.contains(SECRET), "{what}: the secret leaked");
        assert_eq!(h.alert(1).await["state"], "firing", "{what}");
    }

    // A body over the configured limit is refused before it is read whole.
    let huge = format!("{body}&pad={}", "x".repeat(2 << 20));
    let r = h
        .signed("/slack/commands", &huge, SECRET, now)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(h.alert(1).await["state"], "firing");

    // The same signed request twice: the copy is refused.
    let first = h
        .signed("/slack/commands", &body, SECRET, now)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    h.http
        .post(format!("{}/api/v1/alerts/1/unack", h.base))
        .send()
        .await
        .unwrap();
    let copy = h
        .signed("/slack/commands", &body, SECRET, now)
        .send()
        .await
        .unwrap();
    assert_eq!(copy.status(), StatusCode::UNAUTHORIZED);
    let reply: Value = copy.json().await.unwrap();
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("already received"),
        "{reply}"
    );
    assert_eq!(h.alert(1).await["state"], "firing", "the copy did not ack");

    let metrics = h.metrics().await;
    for reason in [
        "wrong_signature",
        "stale_timestamp",
        "missing_signature",
        "missing_timestamp",
        "replayed",
    ] {
        assert!(
            metrics.contains(&format!(
                r#"tocsin_auth_failures_total{{endpoint="/slack/commands",reason="{reason}"}}"#
            )),
            "{reason}: {metrics}"
        );
    }
    h.running.stop().await;
}

#[tokio::test]
async fn without_a_signing_secret_every_slack_request_is_refused() {
    let h = Harness::start("unconfigured", &[]).await;
    h.fire("bot-1").await;
    for path in ["/slack/commands", "/slack/interactions"] {
        let r = h
            .signed(path, &slash_body("U123", "ack 1"), SECRET, h.now_secs())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        let reply: Value = r.json().await.unwrap();
        assert!(
            reply["error"]
                .as_str()
                .unwrap()
                .contains("no Slack signing secret is configured"),
            "{reply}"
        );
    }
    assert_eq!(h.alert(1).await["state"], "firing");
    h.running.stop().await;
}

#[tokio::test]
async fn an_unknown_slack_user_is_told_why_and_changes_nothing() {
    let h = Harness::start("unknown", &[SECRET]).await;
    h.fire("bot-1").await;
    for text in ["ack 1", "resolve 1", "silence host=bot-1 1h"] {
        let (status, reply) = h.command("U999", text).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(reply["response_type"], "ephemeral", "{text}");
        let why = reply["text"].as_str().unwrap();
        assert!(
            why.contains("`U999` is not in tocsin's `[people]`")
                && why.contains("nothing was changed"),
            "{why}"
        );
    }
    assert_eq!(h.alert(1).await["state"], "firing");
    let silences: Value = h
        .http
        .get(format!("{}/api/v1/silences", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(silences["silences"], json!([]));
    // Reading is open to anyone in the workspace.
    let (_, reply) = h.command("U999", "list").await;
    assert!(
        reply["text"]
            .as_str()
            .unwrap()
            .starts_with("1 active alert:")
    );
    h.running.stop().await;
}

#[tokio::test]
async fn silence_list_who_and_help() {
    let h = Harness::start("commands", &[SECRET]).await;
    // A label that would ping the whole channel if it were not escaped.
    h.fire("<!channel> <script>").await;
    h.fire("bot-1").await;

    let (_, reply) = h.command("U123", "list").await;
    assert_eq!(reply["response_type"], "ephemeral");
    let text = reply["text"].as_str().unwrap();
    assert!(text.starts_with("2 active alerts:"), "{text}");
    assert!(
        text.contains("• #1 投稿成功率低下 *CRITICAL* `host=&lt;!channel&gt; &lt;script&gt;`: firing for under a minute"),
        "{text}"
    );
    assert!(
        !text.contains("<!channel>") && !text.contains("<script>"),
        "{text}"
    );
    let (_, reply) = h.command("U123", "list warning").await;
    assert_eq!(reply["text"], "No active warning alerts.");

    h.clock.advance(Duration::from_secs(600));
    let (_, reply) = h
        .command(
            "U123",
            r#"silence host=bot-1 alertname=~"投稿.*" 2h deploying bot-1"#,
        )
        .await;
    assert_eq!(reply["response_type"], "in_channel", "{reply}");
    let text = reply["text"].as_str().unwrap();
    let ends = T0 + 600 + 7200;
    assert_eq!(
        text,
        format!(
            "<@U123> silenced `host=bot-1 alertname=~\"投稿.*\"` for 2h (until \
             <!date^{ends}^{{date_short_pretty}} {{time}}|{}>); 1 alert silenced now: deploying bot-1",
            Timestamp::from_secs(ends).to_rfc3339()
        )
    );
    let silences: Value = h
        .http
        .get(format!("{}/api/v1/silences", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let s = &silences["silences"][0];
    assert_eq!(
        (&s["created_by"], &s["comment"], &s["status"]),
        (&json!("alice"), &json!("deploying bot-1"), &json!("active"))
    );
    assert_eq!(s["ends_at"], Timestamp::from_secs(ends).to_rfc3339());
    assert_eq!(
        s["matchers"],
        json!([
            { "name": "host", "op": "=", "value": "bot-1" },
            { "name": "alertname", "op": "=~", "value": "投稿.*" },
        ])
    );
    assert_eq!(h.alert(2).await["state"], "suppressed");
    let (_, reply) = h.command("U123", "list").await;
    assert!(
        reply["text"]
            .as_str()
            .unwrap()
            .contains("`host=bot-1`: silenced for 10m"),
        "{reply}"
    );

    let (_, reply) = h.command("U123", "silence 2h").await;
    assert_eq!(reply["response_type"], "ephemeral");
    assert!(
        reply["text"]
            .as_str()
            .unwrap()
            .contains("is not a label matcher")
    );
    let (_, reply) = h.command("U123", r#"silence host=~".*" 1h"#).await;
    assert!(
        reply["text"]
            .as_str()
            .unwrap()
            .starts_with("Silence refused: "),
        "{reply}"
    );

    let (_, reply) = h.command("U123", "who").await;
    assert_eq!(
        reply,
        json!({
            "response_type": "ephemeral",
            "text": "On call now:\n• *primary*: <@U123> (Alice)\n• *secondary*: Bob &lt;b&gt;",
        })
    );
    let (_, reply) = h.command("U123", "help").await;
    assert_eq!(reply["response_type"], "ephemeral");
    assert!(reply["text"].as_str().unwrap().contains("`ack 42 [note]`"));
    let (_, reply) = h.command("U123", "frobnicate 1").await;
    assert_eq!(reply["response_type"], "ephemeral");
    assert!(
        reply["text"]
            .as_str()
            .unwrap()
            .starts_with("Unknown command `frobnicate`."),
        "{reply}"
    );
    h.running.stop().await;
}

#[tokio::test]
async fn buttons_ack_resolve_and_silence_as_the_person() {
    let h = Harness::start("buttons", &[SECRET]).await;
    let slack = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&slack)
        .await;
    let response_url = format!("{}/actions/T1/1/xyz", slack.uri());
    h.fire("bot-1").await;
    h.fire("bot-2").await;
    let click = |user: &str, action: &str, value: &str| {
        let body = button_body(user, action, value, &response_url);
        h.signed("/slack/interactions", &body, SECRET, h.now_secs())
    };

    // Forged: nothing happens, and Slack is not answered.
    let body = button_body("U123", "tocsin_ack", "1", &response_url);
    let r = h
        .signed("/slack/interactions", &body, "forged", h.now_secs())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(h.alert(1).await["state"], "firing");

    // Unknown user: 200 to Slack, the reason to the clicker only, nothing changed.
    let r = click("U999", "tocsin_ack", "1").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "");
    assert_eq!(h.alert(1).await["state"], "firing");
    let mut told = Vec::new();
    for _ in 0..100 {
        told = slack.received_requests().await.unwrap_or_default();
        if !told.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(told.len(), 1, "the refusal is posted to response_url");
    let said: Value = serde_json::from_slice(&told[0].body).unwrap();
    assert_eq!(
        (&said["response_type"], &said["replace_original"]),
        (&json!("ephemeral"), &json!(false))
    );
    assert!(
        said["text"]
            .as_str()
            .unwrap()
            .contains("`U999` is not in tocsin's `[people]`"),
        "{said}"
    );

    let r = click("U123", "tocsin_ack", "1").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let alert = h.alert(1).await;
    assert_eq!(
        (
            &alert["state"],
            &alert["ack"]["actor"],
            &alert["ack"]["via"]
        ),
        (&json!("acknowledged"), &json!("alice"), &json!("slack"))
    );

    click("U123", "tocsin_resolve", "1").send().await.unwrap();
    let alert = h.alert(1).await;
    assert_eq!(alert["state"], "resolved");
    assert_eq!(timeline_last(&alert).1, "alice");

    click("U123", "tocsin_silence_1h", "2")
        .send()
        .await
        .unwrap();
    assert_eq!(h.alert(2).await["state"], "suppressed");
    let silences: Value = h
        .http
        .get(format!("{}/api/v1/silences", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let s = &silences["silences"][0];
    assert_eq!(s["created_by"], "alice");
    assert_eq!(s["ends_at"], Timestamp::from_secs(T0 + 3600).to_rfc3339());
    assert_eq!(
        s["matchers"],
        json!([
            { "name": "alertname", "op": "=", "value": "投稿成功率低下" },
            { "name": "host", "op": "=", "value": "bot-2" },
            { "name": "severity", "op": "=", "value": "critical" },
        ])
    );
    // Other alerts of the rule are not silenced: the exact labels were matched.
    h.fire("bot-3").await;
    assert_eq!(h.alert(3).await["state"], "firing");

    // A link button (not one of tocsin's) is answered and ignored.
    let r = click("U123", "open_dashboard", "x").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    h.running.stop().await;
}

#[tokio::test]
async fn repeated_failures_from_one_address_get_429_and_are_counted() {
    let h = Harness::start("limit", &[SECRET]).await;
    h.fire("bot-1").await;
    let body = slash_body("U123", "ack 1");
    // The test talks to 127.0.0.1, so X-Forwarded-For names the client, as it would
    // behind a local reverse proxy.
    let forged_from = |ip: &str| {
        h.signed("/slack/commands", &body, "guess", h.now_secs())
            .header("X-Forwarded-For", ip)
    };
    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(forged_from("198.51.100.7").send().await.unwrap().status());
    }
    assert!(
        statuses[..20]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert!(
        statuses[20..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let limited = forged_from("198.51.100.7").send().await.unwrap();
    assert!(limited.headers().contains_key("retry-after"));
    // Another address is not affected.
    assert_eq!(
        forged_from("198.51.100.8").send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    // Only failures are limited: Slack's genuine request from the same address works.
    let genuine = h
        .signed("/slack/commands", &body, SECRET, h.now_secs())
        .header("X-Forwarded-For", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(genuine.status(), StatusCode::OK);
    assert_eq!(h.alert(1).await["state"], "acknowledged");

    let metrics = h.metrics().await;
    assert!(
        metrics.lines().any(|l| l
            == r#"tocsin_auth_failures_total{endpoint="/slack/commands",reason="wrong_signature"} 27"#),
        "{metrics}"
    );
    assert!(!metrics.contains(SECRET));
    h.running.stop().await;
}
