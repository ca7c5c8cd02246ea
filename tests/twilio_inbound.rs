//! Twilio → tocsin: an SMS reply `ACK 1` from a configured person's phone, signed
//! as Twilio signs it (base64 HMAC-SHA1 of the public URL plus the sorted form
//! parameters), acks the alert as that person; a forged or missing signature gets
//! 403 and changes nothing; an unknown sender is told politely; a replayed
//! MessageSid is not acted on twice.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha1::Sha1;
use tocsin::clock::{ManualClock, Timestamp};
use tocsin::config::{Config, Secret, TwilioSettings};
use tocsin::escalation::{Directory, Person};
use tocsin::server::{Running, start};

mod common;

const RULES: &str = r#"metric post_success_ratio gauge ratio

alert "投稿成功率低下" {
  when post_success_ratio < 95%
  severity critical
}
"#;

const AUTH_TOKEN: &str = "twilio-auth-token-0123456789abcdef";
const PUBLIC: &str = "https://tocsin.example.com";
const BOB: &str = "+819012345678";

fn config(dir: &Path, public_url: Option<&str>) -> Config {
    let mut people = BTreeMap::new();
    people.insert(
        "bob".to_string(),
        Person {
            id: "bob".into(),
            name: "Bob".into(),
            email: None,
            phone: Some(BOB.into()),
            slack: None,
        },
    );
    let mut config = common::test_config(dir);
    config.directory = Directory {
        people,
        ..Directory::default()
    };
    config.channels.sms = Some(TwilioSettings {
        account_sid: "AC0123".into(),
        auth_token: Secret::new(AUTH_TOKEN),
        from: "+15005550006".into(),
        api_url: "http://127.0.0.1:9".into(),
        max_segments: 3,
        voice: "Polly.Mizuki".into(),
        voice_language: "ja-JP".into(),
        timeout: Duration::from_secs(5),
    });
    config.server.public_url = public_url.map(str::to_string);
    config
}

struct Harness {
    running: Running,
    http: reqwest::Client,
    base: String,
}

impl Harness {
    async fn start(name: &str, public_url: Option<&str>) -> Harness {
        tocsin::tls::install_crypto_provider();
        let dir = common::daemon_dir(&format!("twilio-{name}"), RULES);
        let clock = ManualClock::new(Timestamp::from_secs(1_800_000_000));
        let running = start(config(&dir, public_url), Arc::new(clock))
            .await
            .unwrap();
        let base = format!("http://{}", running.addr);
        let h = Harness {
            running,
            http: reqwest::Client::new(),
            base,
        };
        let body = json!({ "samples": [
            { "name": "post_success_ratio", "labels": { "host": "bot-1" }, "value": 0.5 },
        ]});
        let r = h
            .http
            .post(format!("{}/api/v1/samples", h.base))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        h
    }

    async fn state(&self) -> Value {
        let alert: Value = self
            .http
            .get(format!("{}/api/v1/alerts/1", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        alert["state"].clone()
    }

    /// An inbound SMS as Twilio posts it, with `signature` (None: no header).
    async fn sms(
        &self,
        from: &str,
        text: &str,
        sid: &str,
        signature: Option<String>,
    ) -> reqwest::Response {
        let body = serde_urlencoded::to_string(sms_params(from, text, sid)).unwrap();
        let mut r = self
            .http
            .post(format!("{}/twilio/sms", self.base))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(s) = signature {
            r = r.header("X-Twilio-Signature", s);
        }
        r.send().await.unwrap()
    }

    /// The same, signed for `url` with `token`.
    async fn signed_sms(&self, from: &str, text: &str, sid: &str) -> reqwest::Response {
        let sig = sign(
            AUTH_TOKEN,
            &format!("{PUBLIC}/twilio/sms"),
            &sms_params(from, text, sid),
        );
        self.sms(from, text, sid, Some(sig)).await
    }
}

fn sms_params(from: &str, text: &str, sid: &str) -> Vec<(String, String)> {
    [
        ("ToCountry", "JP"),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("SmsSid", sid),
        ("SmsStatus", "received"),
        ("Body", text),
        ("To", "+15005550006"),
        ("NumSegments", "1"),
        ("MessageSid", sid),
        ("AccountSid", "AC0123"),
        ("From", from),
        ("ApiVersion", "2010-04-01"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Twilio's scheme, written out independently of tocsin's.
fn sign(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut s = url.to_string();
    for (k, v) in sorted {
        s.push_str(&k);
        s.push_str(&v);
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(s.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn twiml(r: reqwest::Response) -> String {
    assert_eq!(r.status(), StatusCode::OK);
    let kind = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(kind.starts_with("text/xml"), "{kind}");
    r.text().await.unwrap()
}

const XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

#[tokio::test]
async fn ack_from_a_known_phone_acks_as_that_person() {
    let h = Harness::start("ack", Some(PUBLIC)).await;
    let reply = twiml(h.signed_sms(BOB, "ack 1 on my way", "SM0001").await).await;
    assert_eq!(
        reply,
        format!("{XML}<Response><Message>Acked #1 投稿成功率低下</Message></Response>")
    );
    let alert: Value = h
        .http
        .get(format!("{}/api/v1/alerts/1", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            &alert["state"],
            &alert["ack"]["actor"],
            &alert["ack"]["via"],
            &alert["ack"]["note"]
        ),
        (
            &json!("acknowledged"),
            &json!("bob"),
            &json!("sms"),
            &json!("on my way")
        )
    );
    // The last thing a person did (deliveries are on the timeline too).
    let last = alert["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|e| !e["actor"].is_null())
        .unwrap()
        .clone();
    assert_eq!(
        (&last["actor"], &last["via"]),
        (&json!("bob"), &json!("sms"))
    );

    // Twilio retrying the same message: no second ack attempt, no second reply.
    h.http
        .post(format!("{}/api/v1/alerts/1/unack", h.base))
        .send()
        .await
        .unwrap();
    let again = twiml(h.signed_sms(BOB, "ACK 1", "SM0001").await).await;
    assert_eq!(again, format!("{XML}<Response></Response>"));
    assert_eq!(h.state().await, "firing");

    // The URL with an explicit :443, as some proxies pass it on, is accepted too.
    let params = sms_params(BOB, "ACK 1", "SM0002");
    let sig = sign(
        AUTH_TOKEN,
        "https://tocsin.example.com:443/twilio/sms",
        &params,
    );
    let reply = twiml(h.sms(BOB, "ACK 1", "SM0002", Some(sig)).await).await;
    assert!(reply.contains("Acked #1"), "{reply}");
    h.running.stop().await;
}

#[tokio::test]
async fn forged_or_unsigned_sms_get_403_and_change_nothing() {
    let h = Harness::start("forged", Some(PUBLIC)).await;
    let params = sms_params(BOB, "ACK 1", "SM0100");
    let cases = [
        (
            "another token",
            Some(sign("guess", &format!("{PUBLIC}/twilio/sms"), &params)),
        ),
        (
            "another URL",
            Some(sign(AUTH_TOKEN, "https://evil.example/twilio/sms", &params)),
        ),
        ("no signature", None),
    ];
    for (what, sig) in cases {
        let r = h.sms(BOB, "ACK 1", "SM0100", sig).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{what}");
        let text = r.text().await.unwrap();
        assert!(!text.contains(AUTH_TOKEN), "{what}: the token leaked");
        assert_eq!(h.state().await, "firing", "{what}");
    }
    // Signed, then the body changed on the way.
    let sig = sign(
        AUTH_TOKEN,
        &format!("{PUBLIC}/twilio/sms"),
        &sms_params(BOB, "hello", "SM0101"),
    );
    let r = h.sms(BOB, "ACK 1", "SM0101", Some(sig)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(h.state().await, "firing");
    let metrics = h
        .http
        .get(format!("{}/metrics", h.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"tocsin_auth_failures_total{endpoint="/twilio/sms",reason="wrong_signature"} 3"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"tocsin_auth_failures_total{endpoint="/twilio/sms",reason="missing_signature"} 1"#
        ),
        "{metrics}"
    );
    h.running.stop().await;
}

#[tokio::test]
async fn unknown_senders_and_other_words_get_a_polite_reply_and_change_nothing() {
    let h = Harness::start("polite", Some(PUBLIC)).await;
    let reply = twiml(h.signed_sms("+15550001111", "ACK 1", "SM0200").await).await;
    assert_eq!(
        reply,
        format!(
            "{XML}<Response><Message>This number is not one of tocsin&apos;s people, so it \
             cannot acknowledge alerts. Nothing was changed.</Message></Response>"
        )
    );
    assert_eq!(h.state().await, "firing");
    let reply = twiml(h.signed_sms(BOB, "<b>on it</b>", "SM0201").await).await;
    assert!(
        reply.contains("Reply ACK and the alert number to acknowledge it, e.g. ACK 42;"),
        "{reply}"
    );
    assert_eq!(h.state().await, "firing");
    let reply = twiml(h.signed_sms(BOB, "ACK 77", "SM0202").await).await;
    assert!(reply.contains("There is no alert #77."), "{reply}");
    h.running.stop().await;
}

#[tokio::test]
async fn without_a_public_url_sms_cannot_be_verified_and_is_refused() {
    let h = Harness::start("no-public-url", None).await;
    let r = h.signed_sms(BOB, "ACK 1", "SM0300").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let reply: Value = r.json().await.unwrap();
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("server.public_url is not set"),
        "{reply}"
    );
    assert_eq!(h.state().await, "firing");
    h.running.stop().await;
}

/// `ACK ALL` acks everything a batched page stood for: every alert still firing
/// whose page reached this phone, and nothing that has not paged it yet.
#[tokio::test]
async fn ack_all_acks_every_alert_that_paged_this_phone() {
    use tocsin::escalation::{Level, Method, Policy, Routing, Target};
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    tocsin::tls::install_crypto_provider();
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": "SM1"})))
        .mount(&twilio)
        .await;
    let dir = common::daemon_dir("twilio-ack-all", RULES);
    let mut config = config(&dir, Some(PUBLIC));
    config.channels.sms.as_mut().unwrap().api_url = twilio.uri();
    let mut routing = Routing::console_only();
    routing.policies = BTreeMap::from([(
        "default".into(),
        Policy {
            name: "default".into(),
            levels: vec![Level {
                after: Duration::ZERO,
                targets: vec![Target::Person("bob".into())],
                via: vec![Method::Sms],
            }],
            repeat_interval: Duration::from_secs(24 * 3600),
            ack_timeout: None,
            fallback: Vec::new(),
            phone_severities: vec!["critical".into()],
        },
    )]);
    config.routing = routing;
    let t0 = Timestamp::from_secs(1_800_000_000);
    let clock = ManualClock::new(t0);
    let running = start(config, Arc::new(clock.clone())).await.unwrap();
    let h = Harness {
        base: format!("http://{}", running.addr),
        running,
        http: reqwest::Client::new(),
    };
    let push = |hosts: std::ops::RangeInclusive<u32>| {
        let samples: Vec<Value> = hosts
            .map(|n| json!({"name": "post_success_ratio", "labels": {"host": format!("bot-{n}")}, "value": 0.5}))
            .collect();
        let body = json!({ "samples": samples }).to_string();
        let (http, base) = (h.http.clone(), h.base.clone());
        async move {
            let r = http
                .post(format!("{base}/api/v1/samples"))
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
        }
    };
    let texts = || async {
        twilio
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|r| {
                let form: BTreeMap<String, String> = serde_urlencoded::from_bytes(&r.body).unwrap();
                form["Body"].clone()
            })
            .collect::<Vec<String>>()
    };
    let daemon = h.running.daemon.clone();
    // #1-3 page at once; #4-5 a minute later wait for the phone window. Every
    // push carries all hosts: a series silent for the lookback would resolve.
    push(1..=3).await;
    clock.set(t0 + Duration::from_secs(60));
    push(1..=5).await;
    daemon
        .run_until(&clock, t0 + Duration::from_secs(1800))
        .await;
    let sent = texts().await;
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert!(
        sent[1].starts_with("[CRITICAL] 2 alerts: #4 "),
        "{}",
        sent[1]
    );
    assert!(sent[1].ends_with("Reply ACK ALL or ACK <n>"), "{}", sent[1]);
    // #6 fires after the batch left: its SMS waits for the next window.
    clock.set(t0 + Duration::from_secs(1860));
    push(1..=6).await;

    let reply = twiml(h.signed_sms(BOB, "ACK ALL on it", "SM0400").await).await;
    assert_eq!(
        reply,
        format!("{XML}<Response><Message>Acked 5 alerts: #1-5</Message></Response>")
    );
    for n in 1..=6 {
        let alert: Value = h
            .http
            .get(format!("{}/api/v1/alerts/{n}", h.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let want = if n <= 5 { "acknowledged" } else { "firing" };
        assert_eq!(alert["state"], want, "#{n}");
        if n <= 5 {
            assert_eq!(
                (
                    &alert["ack"]["actor"],
                    &alert["ack"]["via"],
                    &alert["ack"]["note"]
                ),
                (&json!("bob"), &json!("sms"), &json!("on it"))
            );
        }
    }
    // Nothing left to ack: said so, nothing changed.
    let reply = twiml(h.signed_sms(BOB, "ack all", "SM0401").await).await;
    assert!(reply.contains("nothing was changed"), "{reply}");
    h.running.stop().await;
}
