//! Every message fits what its provider accepts, whatever the alert holds: the
//! shapes a real outage gives (Japanese texts, a 10,000-character description, 30
//! long labels, a 200-alert group, `<`, `&`, `<!channel>`, newlines and emoji in
//! labels, a 2,800-character source link) sent through the real channels to local
//! stand-ins for Slack and Twilio, and each request checked against the limits in
//! `tocsin::limits` the way the provider counts them. (Mail, against a real SMTP
//! server that takes only RFC 5321's 64K, is in `tests/email.rs`.)

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};
use tocsin::alert::{NotifyReason, State};
use tocsin::clock::Timestamp;
use tocsin::config::{Secret, SlackSettings, TwilioSettings};
use tocsin::labels::Fingerprint;
use tocsin::limits::{slack as slack_limits, twilio as twilio_limits};
use tocsin::notify::slack::Slack;
use tocsin::notify::sms::{Twilio, segments};
use tocsin::notify::{AlertSnapshot, Message};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const FIRED: i64 = 1_795_860_000;

/// An alert as an outage writes it, and as someone hostile could push it.
fn hostile(incident: u64) -> AlertSnapshot {
    let rule = "巨大説明テスト";
    let mut labels = BTreeMap::from([
        ("alertname".to_string(), rule.to_string()),
        ("severity".to_string(), "critical".to_string()),
    ]);
    for i in 0..30 {
        labels.insert(
            format!("label_{i:02}"),
            format!(
                "<!channel> <@U123> & <http://evil|click>\n値🔥{}",
                "長い値".repeat(60)
            ),
        );
    }
    let annotations = BTreeMap::from([
        (
            "summary".to_string(),
            format!("{}<!here>", "投稿成功率が低下しています。".repeat(20)),
        ),
        ("description".to_string(), "説明&<>🔥".repeat(2_000)),
        ("impact".to_string(), "影響".repeat(500)),
        (
            "action".to_string(),
            "<script>alert(1)</script>".repeat(100),
        ),
    ]);
    AlertSnapshot {
        fingerprint: Fingerprint(0x5000 + incident),
        incident: Some(incident),
        rule: rule.to_string(),
        severity: "critical".to_string(),
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
        generator_url: Some(format!(
            "http://prometheus.example.com/graph?g0.expr={}",
            "a".repeat(2_800)
        )),
    }
}

/// The messages the channels are asked to carry about `alerts`: first pages,
/// escalations, acks and resolves.
fn messages(alerts: Vec<AlertSnapshot>) -> Vec<Message> {
    let with = |reason, level, state: State| {
        let alerts: Vec<AlertSnapshot> = alerts
            .iter()
            .cloned()
            .map(|mut a| {
                a.state = state;
                if state == State::Acknowledged {
                    a.acked_by = Some("<!channel>".repeat(50));
                    a.acked_at = Some(Timestamp::from_secs(FIRED + 60));
                }
                if state == State::Resolved {
                    a.resolved_at = Some(Timestamp::from_secs(FIRED + 120));
                }
                a
            })
            .collect();
        Message {
            key: format!("k.{reason}.{level}"),
            reason,
            level,
            alerts,
            update: None,
            at: Timestamp::from_secs(FIRED),
        }
    };
    vec![
        with(NotifyReason::Firing, 1, State::Firing),
        with(NotifyReason::Firing, 3, State::Firing),
        with(NotifyReason::AckExpired, 1, State::Firing),
        with(NotifyReason::Acknowledged, 0, State::Acknowledged),
        with(NotifyReason::Resolved, 0, State::Resolved),
    ]
}

fn shapes() -> Vec<(&'static str, Vec<AlertSnapshot>)> {
    vec![
        ("one alert", vec![hostile(2)]),
        ("a 200-alert group", (2..=201).map(hostile).collect()),
    ]
}

/// Everything wrong with a Slack body, by Block Kit's and chat.postMessage's limits.
fn slack_violations(body: &Value) -> Vec<String> {
    use slack_limits::*;
    let mut out = Vec::new();
    let mut check = |what: &str, text: &str, max: usize| {
        if chars(text) > max {
            out.push(format!("{what}: {} > {max}", chars(text)));
        }
    };
    check("text", body["text"].as_str().unwrap_or(""), TEXT);
    let blocks = body["blocks"].as_array().cloned().unwrap_or_default();
    let mut violations = Vec::new();
    if blocks.len() > BLOCKS {
        violations.push(format!("{} blocks", blocks.len()));
    }
    let mut block_ids = HashSet::new();
    for b in &blocks {
        if let Some(id) = b["block_id"].as_str() {
            check("block_id", id, BLOCK_ID);
            if !block_ids.insert(id.to_string()) {
                violations.push(format!("block_id {id} twice"));
            }
        }
        match b["type"].as_str() {
            Some("section") => {
                if let Some(t) = b["text"]["text"].as_str() {
                    check("section text", t, SECTION_TEXT);
                }
                let fields = b["fields"].as_array().cloned().unwrap_or_default();
                if fields.len() > FIELDS {
                    violations.push(format!("{} fields", fields.len()));
                }
                for f in &fields {
                    check("field", f["text"].as_str().unwrap_or(""), FIELD_TEXT);
                }
            }
            Some("context") => {
                let elements = b["elements"].as_array().cloned().unwrap_or_default();
                if elements.len() > CONTEXT_ELEMENTS {
                    violations.push(format!("{} context elements", elements.len()));
                }
                for e in &elements {
                    check("context", e["text"].as_str().unwrap_or(""), FIELD_TEXT);
                }
            }
            Some("actions") => {
                let elements = b["elements"].as_array().cloned().unwrap_or_default();
                if elements.len() > ACTION_ELEMENTS {
                    violations.push(format!("{} buttons", elements.len()));
                }
                for e in &elements {
                    check(
                        "button",
                        e["text"]["text"].as_str().unwrap_or(""),
                        BUTTON_TEXT,
                    );
                    check("value", e["value"].as_str().unwrap_or(""), BUTTON_VALUE);
                    check(
                        "action_id",
                        e["action_id"].as_str().unwrap_or(""),
                        ACTION_ID,
                    );
                }
            }
            other => violations.push(format!("unexpected block {other:?}")),
        }
    }
    out.extend(violations);
    out
}

/// Every string of a JSON value.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(o) => o.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn slack_messages_stay_within_block_kit_and_never_mention_or_break_a_link() {
    tocsin::tls::install_crypto_provider();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": true, "channel": "C0CRIT", "ts": "1800000000.000100"})),
        )
        .mount(&server)
        .await;
    let slack = Slack::new(SlackSettings {
        webhook_url: None,
        bot_token: Some(Secret::new("xoxb-test")),
        api_url: format!("{}/api", server.uri()),
        channels: SlackSettings::seed_channels(),
        default_channel: "#alerts".into(),
        timeout: Duration::from_secs(5),
    });
    for (_, alerts) in shapes() {
        for msg in messages(alerts) {
            slack.send("", &msg).await.unwrap();
        }
    }
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 10);
    for r in requests {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let violations = slack_violations(&body);
        assert!(violations.is_empty(), "{violations:?}");
        let mut texts = Vec::new();
        strings(&body["blocks"], &mut texts);
        texts.push(body["text"].as_str().unwrap().to_string());
        for t in &texts {
            // Only tocsin's own mention, at the very start of a critical page.
            let mentions = t.matches("<!").count() + t.matches("<@").count();
            let ours = usize::from(t.starts_with("<!channel> :rotating_light:"));
            assert_eq!(mentions, ours, "a mention from an alert: {t:.200}");
            // Every link is whole: an opened `<http` closes as `|Source>`.
            for (i, _) in t.match_indices("<http") {
                let rest = &t[i..];
                let end = rest.find('>').expect("a closed link");
                assert!(
                    rest[..end].ends_with("|Source"),
                    "a broken link: {:.100}",
                    rest
                );
            }
        }
    }
}

fn twilio(server: &MockServer, max_segments: u32, voice: &str, language: &str) -> Twilio {
    Twilio::new(TwilioSettings {
        account_sid: "AC0123456789abcdef0123456789abcdef".into(),
        auth_token: Secret::new("token"),
        from: "+15005550006".into(),
        api_url: server.uri(),
        max_segments,
        voice: voice.into(),
        voice_language: language.into(),
        timeout: Duration::from_secs(5),
    })
}

#[tokio::test]
async fn texts_stay_within_their_segments_and_twilios_1600_characters() {
    tocsin::tls::install_crypto_provider();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": "SM1"})))
        .mount(&server)
        .await;
    for max in [1, 3, 10] {
        let channel = twilio(&server, max, "Polly.Mizuki", "ja-JP");
        for (shape, alerts) in shapes() {
            for msg in messages(alerts) {
                channel.send_sms("+819012345678", &msg).await.unwrap();
                let requests = server.received_requests().await.unwrap();
                let form: BTreeMap<String, String> =
                    serde_urlencoded::from_bytes(&requests.last().unwrap().body).unwrap();
                let body = &form["Body"];
                assert!(
                    segments(body) <= max,
                    "{shape}: {} segments: {body}",
                    segments(body)
                );
                assert!(body.chars().count() <= twilio_limits::SMS_BODY_CHARS);
                assert!(body.encode_utf16().count() <= twilio_limits::SMS_BODY_CHARS);
                if msg.alerts.len() > 1 {
                    assert!(body.contains("200 alerts"), "{shape}: the count: {body}");
                }
                if msg.reason.is_page() {
                    let ack = match msg.alerts.len() {
                        1 => "Reply ACK 2",
                        _ => "Reply ACK ALL or ACK <n>",
                    };
                    assert!(body.ends_with(ack), "{shape}: {body}");
                }
            }
        }
    }
}

#[tokio::test]
async fn calls_stay_within_the_bytes_twilio_counts_for_each_voice() {
    tocsin::tls::install_crypto_provider();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": "CA1"})))
        .mount(&server)
        .await;
    for voice in twilio_limits::VOICES {
        let language = voice.languages[0];
        let channel = twilio(&server, 3, voice.name, language);
        for (shape, alerts) in shapes() {
            for msg in messages(alerts) {
                channel.call("+819012345678", &msg).await.unwrap();
                let requests = server.received_requests().await.unwrap();
                let raw = String::from_utf8(requests.last().unwrap().body.clone()).unwrap();
                let encoded = raw
                    .split('&')
                    .find_map(|p| p.strip_prefix("Twiml="))
                    .unwrap();
                assert!(
                    encoded.len() <= twilio_limits::SAY_URL_ENCODED,
                    "{} {shape}: {} URL-encoded",
                    voice.name,
                    encoded.len()
                );
                let form: BTreeMap<String, String> = serde_urlencoded::from_str(&raw).unwrap();
                let twiml = &form["Twiml"];
                assert!(twiml.len() <= twilio_limits::TWIML_CHARS, "{}", twiml.len());
                let open = twiml.find("loop=\"2\">").unwrap() + "loop=\"2\">".len();
                let said = &twiml[open..twiml.len() - "</Say></Response>".len()];
                assert!(
                    said.len() <= voice.engine.say_bytes(),
                    "{} {shape}: {} bytes",
                    voice.name,
                    said.len()
                );
                assert!(
                    twiml.contains(&format!("voice=\"{}\" language=\"{language}\"", voice.name)),
                    "{twiml:.120}"
                );
                // Nothing from the alert can open or close an element.
                assert_eq!(twiml.matches('<').count(), 4, "{twiml:.300}");
            }
        }
    }
}
