//! The Twilio channel against a fake Twilio (wiremock on 127.0.0.1): the exact
//! request a text or a call makes, what Japanese costs in segments, and which
//! failures are worth retrying.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use tocsin::alert::{NotifyReason, State};
use tocsin::clock::Timestamp;
use tocsin::config::{Secret, TwilioSettings};
use tocsin::labels::Fingerprint;
use tocsin::notify::sms::{SmsEncoding, Twilio, encoding, segments};
use tocsin::notify::{AlertSnapshot, Delivered, Message, SendError};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "tok-very-secret-42";
const FROM: &str = "+15017122661";
const TO: &str = "+819012345678";

fn settings(api_url: &str, max_segments: u32) -> TwilioSettings {
    TwilioSettings {
        account_sid: SID.into(),
        auth_token: Secret::new(TOKEN),
        from: FROM.into(),
        api_url: api_url.into(),
        max_segments,
        voice: "Polly.Mizuki".into(),
        voice_language: "ja-JP".into(),
        timeout: Duration::from_secs(5),
    }
}

fn twilio(server: &MockServer, max_segments: u32) -> Twilio {
    Twilio::new(settings(&server.uri(), max_segments))
}

fn alert(incident: u64, rule: &str, account: &str, summary: &str) -> AlertSnapshot {
    let labels: BTreeMap<String, String> = [
        ("alertname", rule),
        ("severity", "critical"),
        ("account", account),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut annotations = BTreeMap::new();
    if !summary.is_empty() {
        annotations.insert("summary".to_string(), summary.to_string());
    }
    AlertSnapshot {
        fingerprint: Fingerprint(0x42 + incident),
        incident: Some(incident),
        rule: rule.into(),
        severity: "critical".into(),
        labels,
        annotations,
        state: State::Firing,
        fired_at: Some(Timestamp::from_secs(1_700_000_000)),
        resolved_at: None,
        acked_by: None,
        acked_at: None,
        ack_note: None,
        resolved_by: None,
        resolve_note: None,
        generator_url: None,
    }
}

fn page(alerts: Vec<AlertSnapshot>) -> Message {
    Message {
        key: "sms-key-1".into(),
        reason: NotifyReason::Firing,
        level: 1,
        alerts,
        update: None,
        at: Timestamp::from_secs(1_700_000_060),
    }
}

fn created(sid: &str) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(serde_json::json!({
        "sid": sid, "account_sid": SID, "status": "queued", "num_segments": "1",
    }))
}

fn twilio_error(status: u16, code: u32, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(serde_json::json!({
        "code": code, "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status,
    }))
}

/// The form fields of the only request the fake received.
async fn only_form(server: &MockServer) -> (Request, BTreeMap<String, String>) {
    let mut requests = server.received_requests().await.expect("recording is on");
    assert_eq!(
        requests.len(),
        1,
        "one request, no retry inside the channel"
    );
    let request = requests.remove(0);
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&request.body).unwrap();
    (request, form.into_iter().collect())
}

fn messages_path() -> String {
    format!("/2010-04-01/Accounts/{SID}/Messages.json")
}

#[tokio::test]
async fn an_sms_is_one_form_post_with_basic_auth_and_returns_the_message_sid() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .respond_with(created("SM0123"))
        .expect(1)
        .mount(&server)
        .await;

    let msg = page(vec![alert(42, "投稿成功率低下", "a1", "成功率が 80% です")]);
    let delivered = twilio(&server, 3).send_sms(TO, &msg).await;

    assert_eq!(
        delivered,
        Ok(Delivered {
            reference: Some("SM0123".into())
        })
    );
    let (request, form) = only_form(&server).await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"));
    assert_eq!(
        request.headers.get("authorization").unwrap(),
        &format!("Basic {basic}")
    );
    assert_eq!(
        request.headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(form.len(), 3, "{form:?}");
    assert_eq!(form["To"], TO);
    assert_eq!(form["From"], FROM);
    assert_eq!(
        form["Body"],
        "[CRITICAL] #42 投稿成功率低下 account=a1: 成功率が 80% です. Reply ACK 42"
    );
}

#[tokio::test]
async fn a_long_japanese_body_is_counted_as_ucs2_and_cut_to_max_segments() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(created("SM1"))
        .mount(&server)
        .await;

    let summary = "投稿の成功率が閾値を下回っています。".repeat(20);
    let msg = page(vec![alert(42, "投稿成功率低下", "a1", &summary)]);
    twilio(&server, 2).send_sms(TO, &msg).await.unwrap();

    let (_, form) = only_form(&server).await;
    let body = &form["Body"];
    assert_eq!(encoding(body), SmsEncoding::Ucs2);
    assert_eq!(segments(body), 2, "{body}");
    // Two concatenated UCS-2 parts hold 2 × 67 UTF-16 units; the cut uses them all.
    assert_eq!(body.encode_utf16().count(), 134, "{body}");
    assert!(body.starts_with("[CRITICAL] #42 投稿成功率低下 account=a1: 投稿の"));
    assert!(body.ends_with("… Reply ACK 42"), "{body}");
}

#[tokio::test]
async fn alerts_batched_in_the_window_go_out_as_one_text() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(created("SM2"))
        .mount(&server)
        .await;

    let msg = page(vec![
        alert(42, "投稿成功率低下", "a1", "成功率 80%"),
        alert(43, "DiskFull", "a2", "disk 95%"),
        alert(44, "CPU使用率異常", "a3", ""),
    ]);
    twilio(&server, 3).send_sms(TO, &msg).await.unwrap();

    let (_, form) = only_form(&server).await;
    assert_eq!(
        form["Body"],
        "[CRITICAL] 3 alerts: #42 投稿成功率低下 account=a1; #43 DiskFull account=a2; \
         #44 CPU使用率異常 account=a3. Reply ACK ALL or ACK <n>"
    );
}

#[tokio::test]
async fn an_invalid_number_is_permanent_with_twilios_code_and_no_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(twilio_error(
            400,
            21211,
            "The 'To' number 5551234567 is not a valid phone number.",
        ))
        .mount(&server)
        .await;

    let msg = page(vec![alert(42, "DiskFull", "a1", "")]);
    let err = twilio(&server, 1).send_sms("5551234567", &msg).await;

    let Err(SendError::Permanent { reason }) = err else {
        panic!("expected a permanent failure, got {err:?}");
    };
    assert!(reason.contains("21211"), "{reason}");
    assert!(reason.contains("is not a valid phone number"), "{reason}");
    assert!(!reason.contains(TOKEN), "{reason}");
}

#[tokio::test]
async fn bad_credentials_are_permanent_and_the_token_stays_out_of_the_reason() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(twilio_error(401, 20003, "Authenticate"))
        .mount(&server)
        .await;

    let msg = page(vec![alert(42, "DiskFull", "a1", "")]);
    let err = twilio(&server, 1).send_sms(TO, &msg).await.unwrap_err();

    let SendError::Permanent { reason } = &err else {
        panic!("expected a permanent failure, got {err:?}");
    };
    assert!(reason.contains("20003"), "{reason}");
    assert!(
        reason.contains("auth_token"),
        "the hint says what to check: {reason}"
    );
    assert!(!format!("{err} {err:?}").contains(TOKEN));
}

#[tokio::test]
async fn a_rate_limit_is_retried_after_the_wait_twilio_asks_for() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            twilio_error(429, 20429, "Too Many Requests").insert_header("Retry-After", "5"),
        )
        .mount(&server)
        .await;

    let msg = page(vec![alert(42, "DiskFull", "a1", "")]);
    let err = twilio(&server, 1).send_sms(TO, &msg).await.unwrap_err();

    let SendError::Retry { reason, after } = err else {
        panic!("expected a retry, got {err:?}");
    };
    assert_eq!(after, Some(Duration::from_secs(5)));
    assert!(reason.contains("20429"), "{reason}");
}

#[tokio::test]
async fn twilio_being_down_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream unavailable"))
        .mount(&server)
        .await;

    let msg = page(vec![alert(42, "DiskFull", "a1", "")]);
    let err = twilio(&server, 1).send_sms(TO, &msg).await.unwrap_err();

    assert!(
        matches!(&err, SendError::Retry { after: None, reason } if reason.contains("503")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_retried() {
    // A port that was just free and is closed again: nothing listens there.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let channel = Twilio::new(settings(&format!("http://127.0.0.1:{port}"), 1));

    let msg = page(vec![alert(42, "DiskFull", "a1", "")]);
    let err = channel.send_sms(TO, &msg).await.unwrap_err();

    assert!(
        matches!(&err, SendError::Retry { reason, .. } if reason.contains("connect")),
        "{err:?}"
    );
    assert!(!format!("{err:?}").contains(TOKEN));
}

#[tokio::test]
async fn a_slow_twilio_is_given_up_on_after_the_timeout_and_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(created("SM3").set_delay(Duration::from_secs(10)))
        .mount(&server)
        .await;
    let mut s = settings(&server.uri(), 1);
    s.timeout = Duration::from_millis(200);

    let msg = page(vec![alert(42, "DiskFull", "a1", "")]);
    let started = std::time::Instant::now();
    let err = Twilio::new(s).send_sms(TO, &msg).await.unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, SendError::Retry { .. }), "{err:?}");
}

#[tokio::test]
async fn a_call_reads_the_alert_out_with_escaped_twiml() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/2010-04-01/Accounts/{SID}/Calls.json")))
        .respond_with(created("CA0456"))
        .expect(1)
        .mount(&server)
        .await;

    let mut a = alert(42, "投稿成功率低下", "<script>&", "成功率 <80%>");
    a.labels.insert("note".into(), "\"quoted\" 'text'".into());
    let delivered = twilio(&server, 1).call(TO, &page(vec![a])).await;

    assert_eq!(
        delivered,
        Ok(Delivered {
            reference: Some("CA0456".into())
        })
    );
    let (request, form) = only_form(&server).await;
    assert!(request.headers.contains_key("authorization"));
    assert_eq!(form.len(), 3, "{form:?}");
    assert_eq!(form["To"], TO);
    assert_eq!(form["From"], FROM);
    assert_eq!(
        form["Twiml"],
        "<Response><Say voice=\"Polly.Mizuki\" language=\"ja-JP\" loop=\"2\">\
         tocsin から重大アラートです。インシデント 42 番、投稿成功率低下。\
         account &lt;script&gt;&amp;、note &quot;quoted&quot; &apos;text&apos;。\
         成功率 &lt;80%&gt;。\
         確認するには、SMS で ACK 42 と返信してください。\
         </Say></Response>"
    );
}

#[tokio::test]
async fn a_failed_call_maps_errors_like_an_sms() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(twilio_error(400, 21215, "Geo permission not enabled"))
        .mount(&server)
        .await;

    let msg = page(vec![alert(42, "DiskFull", "a1", "")]);
    let err = twilio(&server, 1).call(TO, &msg).await.unwrap_err();

    assert!(
        matches!(&err, SendError::Permanent { reason } if reason.contains("21215") && reason.starts_with("twilio voice")),
        "{err:?}"
    );
}

/// A call about `msg` with the voice `voice` speaking `language`, as the fake Twilio
/// received it: the `Twiml` field, and the raw form body it travelled in.
async fn call_with(voice: &str, language: &str, msg: &Message) -> (String, String) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(created("CA1"))
        .mount(&server)
        .await;
    let twilio = Twilio::new(TwilioSettings {
        voice: voice.into(),
        voice_language: language.into(),
        ..settings(&server.uri(), 3)
    });
    twilio.call(TO, msg).await.unwrap();
    let (request, form) = only_form(&server).await;
    (
        form["Twiml"].clone(),
        String::from_utf8(request.body).unwrap(),
    )
}

/// The text of the one `<Say>` of a TwiML document, and its `voice` and `language`.
fn say_of(twiml: &str) -> (String, String, String) {
    let open = twiml.find("<Say ").expect("a <Say>");
    let text_at = open + twiml[open..].find('>').unwrap() + 1;
    let attrs = &twiml[open..text_at];
    let attr = |name: &str| {
        let start = attrs.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        attrs[start..start + attrs[start..].find('"').unwrap()].to_string()
    };
    let close = twiml.rfind("</Say>").unwrap();
    (
        attr("voice"),
        attr("language"),
        twiml[text_at..close].to_string(),
    )
}

#[tokio::test]
async fn every_documented_voice_is_named_with_its_language() {
    let msg = page(vec![alert(42, "投稿成功率低下", "a1", "成功率 80%")]);
    for voice in tocsin::limits::twilio::VOICES {
        for language in voice.languages {
            let (twiml, _) = call_with(voice.name, language, &msg).await;
            let (said_voice, said_language, _) = say_of(&twiml);
            assert_eq!(
                (said_voice.as_str(), said_language.as_str()),
                (voice.name, *language)
            );
        }
    }
}

#[tokio::test]
async fn a_japanese_call_fits_twilios_bytes_for_each_kind_of_voice() {
    use tocsin::limits::twilio::{SAY_URL_ENCODED, TWIML_CHARS};
    // The shapes: a 1,920-character Japanese summary, and a 204-alert batch.
    let one = page(vec![alert(
        2,
        "巨大説明テスト",
        "a1",
        &"説明文".repeat(640),
    )]);
    let batch = page(
        (2..=205)
            .map(|n| alert(n, "巨大説明テスト", &format!("account-{n}"), "説明"))
            .collect(),
    );
    for (voice, language) in [
        ("Polly.Mizuki", "ja-JP"),
        ("Google.ja-JP-Standard-A", "ja-JP"),
        ("man", "en"),
    ] {
        let engine = tocsin::limits::twilio::voice_named(voice).unwrap().engine;
        for msg in [&one, &batch] {
            let (twiml, body) = call_with(voice, language, msg).await;
            let (_, _, said) = say_of(&twiml);
            assert!(
                said.len() <= engine.say_bytes(),
                "{voice}: {} bytes",
                said.len()
            );
            assert!(twiml.len() <= TWIML_CHARS, "{voice}: {} bytes", twiml.len());
            // What went over the wire, URL-encoded, as Twilio reads the parameter.
            let encoded = body
                .split('&')
                .find_map(|p| p.strip_prefix("Twiml="))
                .unwrap();
            assert!(
                encoded.len() <= SAY_URL_ENCODED,
                "{voice}: {}",
                encoded.len()
            );
            assert!(said.ends_with("と返信してください。"), "{said}");
        }
    }
    // The batch says how many alerts it is about, and their numbers.
    let (twiml, _) = call_with("Polly.Mizuki", "ja-JP", &batch).await;
    assert!(
        twiml.contains("204 件です。インシデント 2 から 205 番、"),
        "{twiml}"
    );
    assert!(twiml.contains("ACK ALL"), "{twiml}");
}
