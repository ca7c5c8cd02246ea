//! The Slack channel against fake Slack servers (wiremock on 127.0.0.1): what a
//! person sees in the channel, what Slack receives, and how each failure is sorted
//! into retry-later or never.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use tocsin::alert::{NotifyReason, State};
use tocsin::clock::Timestamp;
use tocsin::config::{Secret, SlackSettings};
use tocsin::escape::mrkdwn;
use tocsin::labels::Fingerprint;
use tocsin::notify::slack::{Slack, render};
use tocsin::notify::{AlertSnapshot, Message, SendError};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "xoxb-1234-secret-token";
/// The secret part of the webhook URL; it must never show in an error.
const HOOK_PATH: &str = "/services/T000/B000/s3cr3tHookPath";
/// Ends in zeros, which a float would drop: the reference would then name no message.
const TS: &str = "1503435956.000200";
const FIRED: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn settings_of(server: &MockServer) -> SlackSettings {
    SlackSettings {
        webhook_url: None,
        bot_token: Some(Secret::new(TOKEN)),
        api_url: format!("{}/api", server.uri()),
        channels: SlackSettings::seed_channels(),
        default_channel: "#alerts".to_string(),
        timeout: Duration::from_secs(5),
    }
}

fn bot(server: &MockServer) -> Slack {
    Slack::new(settings_of(server))
}

fn webhook(url: String) -> Slack {
    Slack::new(SlackSettings {
        webhook_url: Some(Secret::new(url)),
        bot_token: None,
        api_url: "http://127.0.0.1:9/api".to_string(),
        channels: SlackSettings::seed_channels(),
        default_channel: "#alerts".to_string(),
        timeout: Duration::from_secs(5),
    })
}

fn alert(incident: u64, rule: &str, severity: &str) -> AlertSnapshot {
    let labels = BTreeMap::from([
        ("alertname".to_string(), rule.to_string()),
        ("severity".to_string(), severity.to_string()),
        ("host".to_string(), format!("bot-{incident}")),
    ]);
    let annotations = BTreeMap::from([
        ("summary".to_string(), "投稿成功率が 85% です".to_string()),
        ("impact".to_string(), "投稿が失敗する".to_string()),
        ("action".to_string(), "ログを確認".to_string()),
    ]);
    AlertSnapshot {
        fingerprint: Fingerprint(0x3f2a_9c0d_11e4_b7a8 + incident),
        incident: Some(incident),
        rule: rule.to_string(),
        severity: severity.to_string(),
        labels,
        annotations,
        state: State::Firing,
        fired_at: Some(Timestamp::from_secs(FIRED)),
        resolved_at: None,
        acked_by: None,
        acked_at: None,
        ack_note: None,
        resolved_by: None,
        resolve_note: None,
        generator_url: None,
    }
}

fn message(reason: NotifyReason, alerts: Vec<AlertSnapshot>) -> Message {
    Message {
        key: "k1".to_string(),
        reason,
        level: 1,
        alerts,
        update: None,
        at: Timestamp::from_secs(FIRED + 600),
    }
}

fn firing(severity: &str) -> Message {
    message(
        NotifyReason::Firing,
        vec![alert(42, "投稿成功率低下", severity)],
    )
}

fn acked(update: &str) -> Message {
    let mut a = alert(42, "投稿成功率低下", "critical");
    a.state = State::Acknowledged;
    a.acked_by = Some("alice".to_string());
    a.acked_at = Some(Timestamp::from_secs(FIRED + 300));
    let mut msg = message(NotifyReason::Acknowledged, vec![a]);
    msg.update = Some(update.to_string());
    msg
}

fn slack_ok(channel: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "ok": true, "channel": channel, "ts": TS, "message": {"text": "…"}
    }))
}

fn slack_error(code: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": code}))
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| r.body_json().expect("a JSON body"))
        .collect()
}

fn blocks_of(body: &Value) -> &Vec<Value> {
    body["blocks"].as_array().expect("blocks")
}

fn actions_of(body: &Value) -> Vec<&Value> {
    blocks_of(body)
        .iter()
        .filter(|b| b["type"] == "actions")
        .collect()
}

fn action_ids(actions: &Value) -> Vec<&str> {
    actions["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action_id"].as_str().unwrap())
        .collect()
}

/// Every string in a JSON value, keys included: what Slack will interpret.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(o) => o.iter().for_each(|(k, v)| {
            out.push(k.clone());
            strings(v, out)
        }),
        _ => {}
    }
}

fn all_text(body: &Value) -> String {
    let mut out = Vec::new();
    strings(body, &mut out);
    out.join("\n")
}

fn retry_after(e: SendError) -> Option<Duration> {
    match e {
        SendError::Retry { after, .. } => after,
        SendError::Permanent { reason } => panic!("expected retry, got permanent: {reason}"),
    }
}

fn permanent_reason(e: SendError) -> String {
    match e {
        SendError::Permanent { reason } => reason,
        SendError::Retry { reason, .. } => panic!("expected permanent, got retry: {reason}"),
    }
}

#[tokio::test]
async fn a_critical_page_posts_the_seed_headline_with_buttons_and_returns_its_reference() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("content-type", "application/json; charset=utf-8"))
        .respond_with(slack_ok("C0CRIT"))
        .expect(1)
        .mount(&server)
        .await;

    let delivered = bot(&server)
        .send("#alerts-critical", &firing("critical"))
        .await
        .expect("delivered");
    assert_eq!(
        delivered.reference.as_deref(),
        Some("C0CRIT:1503435956.000200")
    );

    let body = &bodies(&server).await[0];
    assert_eq!(body["channel"], "#alerts-critical");
    assert_eq!(
        body["text"],
        "<!channel> :rotating_light: CRITICAL: 投稿成功率低下"
    );
    let blocks = blocks_of(body);
    let head = blocks[0]["text"]["text"].as_str().unwrap();
    assert!(head.starts_with("<!channel> :rotating_light: CRITICAL: 投稿成功率低下\n"));
    assert!(head.contains("投稿成功率が 85% です"), "{head}");
    assert!(head.contains("*Impact:* 投稿が失敗する"), "{head}");
    assert!(head.contains("*Action:* ログを確認"), "{head}");

    let fields: Vec<&str> = blocks[1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "*Severity*\ncritical",
            "*Incident*\n#42",
            "*host*\nbot-42",
            "*Fired at*\n2026-01-01T00:00:00Z"
        ]
    );

    let actions = actions_of(body);
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0]["block_id"], "alert:42:firing");
    assert_eq!(
        action_ids(actions[0]),
        ["tocsin_ack", "tocsin_resolve", "tocsin_silence_1h"]
    );
    let elements = actions[0]["elements"].as_array().unwrap();
    for e in elements {
        assert_eq!(e["value"], "42");
        assert_eq!(e["type"], "button");
    }
    assert_eq!(elements[0]["text"]["text"], "Acknowledge");
    assert_eq!(elements[0]["style"], "primary");
    assert_eq!(elements[1]["text"]["text"], "Resolve");
    assert_eq!(elements[1]["style"], "danger");
    assert_eq!(elements[2]["text"]["text"], "Silence 1h");
    assert!(elements[2].get("style").is_none());
}

#[tokio::test]
async fn each_severity_reads_as_the_seed_writes_it() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(slack_ok("C1"))
        .expect(4)
        .mount(&server)
        .await;
    let slack = bot(&server);
    for severity in ["critical", "warning", "info", "page"] {
        slack
            .send(slack.channel_for(severity), &firing(severity))
            .await
            .expect("delivered");
    }
    let sent: Vec<(String, String)> = bodies(&server)
        .await
        .iter()
        .map(|b| {
            (
                b["channel"].as_str().unwrap().to_string(),
                b["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        (
            "#alerts-critical",
            "<!channel> :rotating_light: CRITICAL: 投稿成功率低下",
        ),
        ("#alerts-warning", ":warning: WARNING: 投稿成功率低下"),
        ("#alerts-info", ":information_source: INFO: 投稿成功率低下"),
        ("#alerts", ":bell: PAGE: 投稿成功率低下"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(c, t)| (c.to_string(), t.to_string()))
        .collect();
    assert_eq!(sent, want);
}

#[test]
fn re_notifications_say_why_they_came_again() {
    let mut msg = firing("critical");
    msg.level = 3;
    assert_eq!(
        render(&msg)["text"],
        "<!channel> :rotating_light: CRITICAL: 投稿成功率低下 (escalated: level 3)"
    );
    msg.level = 1;
    msg.reason = NotifyReason::AckExpired;
    assert_eq!(
        render(&msg)["text"],
        "<!channel> :rotating_light: CRITICAL: 投稿成功率低下 — ack expired, still firing"
    );
    msg.reason = NotifyReason::SilenceEnded;
    assert!(
        render(&msg)["text"]
            .as_str()
            .unwrap()
            .ends_with("— silence ended, still firing")
    );

    let mut resolved = firing("critical");
    resolved.reason = NotifyReason::Resolved;
    resolved.alerts[0].state = State::Resolved;
    resolved.alerts[0].resolved_at = Some(Timestamp::from_secs(FIRED + 900));
    let body = render(&resolved);
    assert_eq!(
        body["text"],
        ":large_green_circle: RESOLVED: 投稿成功率低下"
    );
    assert!(actions_of(&body).is_empty(), "no buttons once resolved");
    assert!(all_text(&body).contains("Resolved at 2026-01-01T00:15:00Z"));
    assert!(
        !all_text(&body).contains("<!channel>"),
        "a resolve pages no one"
    );
}

#[tokio::test]
async fn an_ack_edits_the_posted_message_and_keeps_only_resolve() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.update"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("content-type", "application/json; charset=utf-8"))
        .respond_with(slack_ok("C0CRIT"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/chat.postMessage"))
        .respond_with(slack_ok("C0CRIT"))
        .expect(0)
        .mount(&server)
        .await;

    let delivered = bot(&server)
        .send("#alerts-critical", &acked(&format!("C0CRIT:{TS}")))
        .await
        .expect("delivered");
    assert_eq!(delivered.reference, Some(format!("C0CRIT:{TS}")));

    let body = &bodies(&server).await[0];
    assert_eq!(
        body["channel"], "C0CRIT",
        "chat.update takes the channel id"
    );
    assert_eq!(body["ts"], TS);
    assert_eq!(
        body["text"],
        ":white_check_mark: ACKED by alice: 投稿成功率低下"
    );
    assert!(!all_text(body).contains("<!channel>"));
    assert!(all_text(body).contains("Acknowledged by alice at 2026-01-01T00:05:00Z"));
    let actions = actions_of(body);
    assert_eq!(actions.len(), 1);
    assert_eq!(action_ids(actions[0]), ["tocsin_resolve"]);
    assert_eq!(actions[0]["block_id"], "alert:42:acknowledged");
}

#[tokio::test]
async fn an_update_of_a_message_that_is_gone_is_posted_anew_in_its_channel() {
    let server = MockServer::start().await;
    Mock::given(path("/api/chat.update"))
        .respond_with(slack_error("message_not_found"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/chat.postMessage"))
        .respond_with(slack_ok("C0CRIT"))
        .expect(1)
        .mount(&server)
        .await;

    let delivered = bot(&server)
        .send("#alerts-critical", &acked(&format!("C0CRIT:{TS}")))
        .await
        .expect("delivered as a new message");
    assert_eq!(delivered.reference, Some(format!("C0CRIT:{TS}")));
    let sent = bodies(&server).await;
    assert_eq!(sent[1]["channel"], "C0CRIT");
    assert!(sent[1].get("ts").is_none(), "a new message, not an edit");
    assert_eq!(
        sent[1]["text"],
        ":white_check_mark: ACKED by alice: 投稿成功率低下"
    );
}

#[tokio::test]
async fn refused_credentials_and_channels_are_permanent_and_name_slacks_code() {
    for code in ["invalid_auth", "channel_not_found", "not_in_channel"] {
        let server = MockServer::start().await;
        Mock::given(path("/api/chat.postMessage"))
            .respond_with(slack_error(code))
            .mount(&server)
            .await;
        let e = bot(&server)
            .send("#alerts-critical", &firing("critical"))
            .await
            .expect_err("refused");
        let reason = permanent_reason(e);
        assert!(reason.contains(code), "{reason}");
        assert!(reason.contains("#alerts-critical"), "{reason}");
        assert!(!reason.contains(TOKEN), "{reason}");
    }
}

#[tokio::test]
async fn a_failed_edit_that_is_not_about_the_message_is_not_reposted() {
    let server = MockServer::start().await;
    Mock::given(path("/api/chat.update"))
        .respond_with(slack_error("invalid_auth"))
        .mount(&server)
        .await;
    Mock::given(path("/api/chat.postMessage"))
        .respond_with(slack_ok("C0CRIT"))
        .expect(0)
        .mount(&server)
        .await;
    let e = bot(&server)
        .send("#alerts-critical", &acked(&format!("C0CRIT:{TS}")))
        .await
        .expect_err("refused");
    assert!(permanent_reason(e).contains("invalid_auth"));
}

#[tokio::test]
async fn server_errors_and_slacks_own_transient_codes_are_retried() {
    let server = MockServer::start().await;
    Mock::given(path("/api/chat.postMessage"))
        .respond_with(ResponseTemplate::new(500).set_body_string("oops"))
        .mount(&server)
        .await;
    let e = bot(&server)
        .send("#alerts-critical", &firing("critical"))
        .await
        .expect_err("500");
    assert_eq!(retry_after(e), None);

    for code in ["ratelimited", "internal_error", "service_unavailable"] {
        let server = MockServer::start().await;
        Mock::given(path("/api/chat.postMessage"))
            .respond_with(slack_error(code))
            .mount(&server)
            .await;
        let e = bot(&server)
            .send("#alerts-critical", &firing("critical"))
            .await
            .expect_err(code);
        assert!(
            matches!(&e, SendError::Retry { reason, .. } if reason.contains(code)),
            "{e:?}"
        );
    }
}

#[tokio::test]
async fn a_rate_limit_is_retried_after_the_wait_slack_asks_for() {
    let server = MockServer::start().await;
    Mock::given(path("/api/chat.postMessage"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "7")
                .set_body_json(json!({"ok": false, "error": "ratelimited"})),
        )
        .mount(&server)
        .await;
    let e = bot(&server)
        .send("#alerts-critical", &firing("critical"))
        .await
        .expect_err("429");
    assert_eq!(retry_after(e), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn a_slow_slack_is_a_timeout_to_retry() {
    let server = MockServer::start().await;
    Mock::given(path("/api/chat.postMessage"))
        .respond_with(slack_ok("C1").set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let slack = Slack::new(SlackSettings {
        timeout: Duration::from_millis(200),
        ..settings_of(&server)
    });
    let e = slack
        .send("#alerts-critical", &firing("critical"))
        .await
        .expect_err("timed out");
    assert!(
        matches!(&e, SendError::Retry { reason, .. } if reason.contains("timed out")),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_webhook_gets_the_same_body_and_ok_means_delivered() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(HOOK_PATH))
        .and(header("content-type", "application/json; charset=utf-8"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .expect(2)
        .mount(&server)
        .await;
    let slack = webhook(format!("{}{HOOK_PATH}", server.uri()));

    let delivered = slack
        .send("#alerts-critical", &firing("critical"))
        .await
        .expect("delivered");
    assert_eq!(
        delivered.reference, None,
        "a webhook message cannot be edited"
    );
    // An update has nothing to edit through a webhook: it arrives as a new message.
    slack
        .send("#alerts-critical", &acked(&format!("C0CRIT:{TS}")))
        .await
        .expect("delivered");

    let sent = bodies(&server).await;
    assert_eq!(sent[0], render(&firing("critical")));
    assert_eq!(
        sent[1]["text"],
        ":white_check_mark: ACKED by alice: 投稿成功率低下"
    );
    assert!(sent[1].get("ts").is_none());
    let requests = server.received_requests().await.unwrap();
    assert!(requests[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn webhook_failures_are_sorted_and_never_show_the_url() {
    let server = MockServer::start().await;
    Mock::given(path(HOOK_PATH))
        .respond_with(ResponseTemplate::new(404).set_body_string("no_service"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path(HOOK_PATH))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "3"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path(HOOK_PATH))
        .respond_with(ResponseTemplate::new(503).set_body_string("unavailable"))
        .mount(&server)
        .await;
    let slack = webhook(format!("{}{HOOK_PATH}", server.uri()));
    let msg = firing("warning");

    let reason = permanent_reason(slack.send("", &msg).await.expect_err("404"));
    assert!(reason.contains("no_service"), "{reason}");
    assert!(!reason.contains("s3cr3t"), "{reason}");
    assert_eq!(
        retry_after(slack.send("", &msg).await.expect_err("429")),
        Some(Duration::from_secs(3))
    );
    assert_eq!(
        retry_after(slack.send("", &msg).await.expect_err("503")),
        None
    );

    // Nothing listens here; reqwest's own error would carry the whole URL.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let slack = webhook(format!("http://{closed}{HOOK_PATH}"));
    let e = slack.send("", &msg).await.expect_err("refused");
    let SendError::Retry { reason, .. } = &e else {
        panic!("a refused connection is worth retrying: {e:?}");
    };
    assert!(!reason.contains("s3cr3t"), "{reason}");
    assert!(!format!("{e:?}").contains("s3cr3t"));
}

#[tokio::test]
async fn labels_and_annotations_cannot_mention_or_inject() {
    let mut a = alert(7, "投稿成功率低下 <!here>", "critical");
    a.labels.insert("host".into(), "<!channel>".into());
    a.labels.insert("owner".into(), "<@U123>".into());
    a.labels.insert("<b>key</b>".into(), "a & b".into());
    a.annotations
        .insert("summary".into(), "<script>alert(1)</script>".into());
    a.annotations.insert(
        "description".into(),
        "<https://evil.example|click me>".into(),
    );
    a.acked_by = Some("<!everyone>".into());
    a.generator_url = Some("https://prom.example/graph?g0.expr=a&b=<c>".into());

    let server = MockServer::start().await;
    Mock::given(path("/api/chat.postMessage"))
        .respond_with(slack_ok("C1"))
        .mount(&server)
        .await;
    let slack = bot(&server);
    let page = message(NotifyReason::Firing, vec![a.clone()]);
    let mut ack = message(NotifyReason::Acknowledged, vec![a.clone()]);
    ack.alerts[0].state = State::Acknowledged;
    let group = message(NotifyReason::Firing, vec![a.clone(), alert(8, "x", "info")]);
    for msg in [&page, &ack, &group] {
        slack
            .send("#alerts-critical", msg)
            .await
            .expect("delivered");
    }

    for body in bodies(&server).await {
        let text = all_text(&body);
        let ours = "<!channel> :rotating_light: CRITICAL:";
        assert_eq!(
            text.matches("<!channel>").count(),
            text.matches(ours).count(),
            "only tocsin's own <!channel> may be raw: {text}"
        );
        for raw in [
            "<!here>",
            "<@U123>",
            "<script>",
            "<!everyone>",
            "<https://evil",
            "<b>",
        ] {
            assert!(!text.contains(raw), "{raw} went out raw: {text}");
        }
        assert!(text.contains("&lt;!here&gt;"), "{text}");
    }
    let sent = bodies(&server).await;
    let page_text = all_text(&sent[0]);
    for escaped in [
        "&lt;!channel&gt;",
        "&lt;@U123&gt;",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "&lt;https://evil.example|click me&gt;",
        "*&lt;b&gt;key&lt;/b&gt;*\na &amp; b",
        "<https://prom.example/graph?g0.expr=a&amp;b=&lt;c&gt;|Source>",
    ] {
        assert!(
            page_text.contains(escaped),
            "{escaped} missing: {page_text}"
        );
    }
    assert!(all_text(&sent[1]).contains("ACKED by &lt;!everyone&gt;"));
}

#[test]
fn escape_mrkdwn_turns_the_three_control_characters_into_entities() {
    assert_eq!(
        mrkdwn("<!channel> & <@U1> 投稿"),
        "&lt;!channel&gt; &amp; &lt;@U1&gt; 投稿"
    );
    assert_eq!(mrkdwn("plain *bold* _it_"), "plain *bold* _it_");
}

#[test]
fn a_storm_of_twelve_alerts_is_one_message_that_says_twelve() {
    let alerts: Vec<AlertSnapshot> = (1..=12)
        .map(|i| alert(100 + i, "投稿成功率低下", "critical"))
        .collect();
    let body = render(&message(NotifyReason::Firing, alerts));
    assert_eq!(
        body["text"],
        "<!channel> :rotating_light: CRITICAL: 投稿成功率低下 (12 alerts)"
    );
    let blocks = blocks_of(&body);
    assert!(blocks.len() <= 50, "{} blocks", blocks.len());
    let actions = actions_of(&body);
    assert_eq!(actions.len(), 10, "buttons for the first ten");
    let values: Vec<&str> = actions
        .iter()
        .map(|a| a["elements"][0]["value"].as_str().unwrap())
        .collect();
    assert_eq!(values[0], "101");
    assert_eq!(values[9], "110");
    let text = all_text(&body);
    assert!(text.contains("…and 2 more"), "{text}");
    assert!(
        text.contains("*投稿成功率低下* · #101 · host=bot-101"),
        "{text}"
    );
    assert!(
        !text.contains("#111"),
        "past the cap, alerts are counted, not listed"
    );

    // Block ids must be unique within a message.
    let ids: std::collections::HashSet<&str> = actions
        .iter()
        .map(|a| a["block_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 10);
}

#[test]
fn a_group_pages_as_its_most_severe_alert() {
    let alerts = vec![
        alert(1, "キャッシュヒット率低下", "warning"),
        alert(2, "投稿成功率低下", "critical"),
    ];
    let body = render(&message(NotifyReason::Firing, alerts));
    assert_eq!(
        body["text"],
        "<!channel> :rotating_light: CRITICAL: キャッシュヒット率低下, 投稿成功率低下 (2 alerts)"
    );
}

#[test]
fn long_texts_are_cut_to_slacks_limits() {
    let mut a = alert(1, &"長".repeat(50_000), "critical");
    a.annotations
        .insert("description".into(), "<&>".repeat(5_000));
    for i in 0..20 {
        a.labels.insert(format!("label{i:02}"), "v".repeat(3_000));
    }
    let body = render(&message(NotifyReason::Firing, vec![a]));
    assert!(body["text"].as_str().unwrap().chars().count() <= 40_000);
    for block in blocks_of(&body) {
        if let Some(t) = block["text"]["text"].as_str() {
            assert!(
                t.chars().count() <= 3_000,
                "section of {}",
                t.chars().count()
            );
            assert!(t.ends_with('…'));
        }
        if let Some(fields) = block["fields"].as_array() {
            assert!(fields.len() <= 10, "{} fields", fields.len());
            for f in fields {
                assert!(f["text"].as_str().unwrap().chars().count() <= 2_000);
            }
            let last = fields.last().unwrap()["text"].as_str().unwrap();
            assert!(last.starts_with("*Fired at*"), "{last}");
        }
    }
}

#[test]
fn channels_follow_severity() {
    let slack = Slack::new(SlackSettings {
        webhook_url: None,
        bot_token: None,
        api_url: "http://127.0.0.1:9/api".into(),
        channels: SlackSettings::seed_channels(),
        default_channel: "#alerts".into(),
        timeout: Duration::from_secs(1),
    });
    assert_eq!(slack.channel_for("critical"), "#alerts-critical");
    assert_eq!(slack.channel_for("warning"), "#alerts-warning");
    assert_eq!(slack.channel_for("info"), "#alerts-info");
    assert_eq!(slack.channel_for("debug"), "#alerts");
}

#[test]
fn a_source_link_too_long_for_slack_is_left_out_never_cut() {
    let long = format!(
        "http://prometheus.example.com/graph?g0.expr={}",
        "x".repeat(2_800)
    );
    let mut a = alert(1, "投稿成功率低下", "critical");
    a.generator_url = Some(long.clone());
    let text = all_text(&render(&message(NotifyReason::Firing, vec![a.clone()])));
    assert!(!text.contains("<http"), "no link, whole or cut: {text}");
    assert!(
        text.contains("Source link left out: 2844 characters"),
        "{text}"
    );
    // A link that fits is kept whole.
    a.generator_url = Some(long[..1_900].to_string());
    let text = all_text(&render(&message(NotifyReason::Firing, vec![a])));
    assert!(
        text.contains(&format!("<{}|Source>", &long[..1_900])),
        "{text}"
    );
}
