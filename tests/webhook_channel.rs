//! The generic webhook channel against a fake receiver (wiremock on 127.0.0.1): the
//! JSON it posts, its headers, and which answers are worth retrying. The URL is a
//! secret, so no failure may print it.

use std::collections::BTreeMap;
use std::time::Duration;

use tocsin::alert::{NotifyReason, State};
use tocsin::clock::Timestamp;
use tocsin::config::{Secret, WebhookSettings};
use tocsin::labels::Fingerprint;
use tocsin::notify::webhook::Webhook;
use tocsin::notify::{AlertSnapshot, Delivered, Message, SendError};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// The credential a real webhook URL carries in its path.
const URL_SECRET: &str = "hook-s3cr3t-path";
const BEARER: &str = "bearer-s3cr3t";

fn webhook(url: String, bearer: Option<&str>) -> Webhook {
    Webhook::new(WebhookSettings {
        name: "ops".into(),
        url: Secret::new(url),
        bearer: bearer.map(Secret::new),
        timeout: Duration::from_secs(5),
    })
}

fn hook_url(server: &MockServer) -> String {
    format!("{}/hooks/{URL_SECRET}", server.uri())
}

fn message(reason: NotifyReason) -> Message {
    let labels: BTreeMap<String, String> = [
        ("alertname", "投稿成功率低下"),
        ("severity", "critical"),
        ("account", "a1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Message {
        key: "n-42-firing-1".into(),
        reason,
        level: 2,
        alerts: vec![AlertSnapshot {
            fingerprint: Fingerprint(0xabcdef),
            incident: Some(42),
            rule: "投稿成功率低下".into(),
            severity: "critical".into(),
            labels,
            annotations: [("summary".to_string(), "成功率 80%".to_string())].into(),
            state: State::Firing,
            fired_at: Some(Timestamp::from_secs(1_700_000_000)),
            resolved_at: None,
            acked_by: None,
            acked_at: None,
            ack_note: None,
            resolved_by: None,
            resolve_note: None,
            generator_url: None,
        }],
        update: None,
        at: Timestamp(1_700_000_060_250),
    }
}

async fn receiver(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/hooks/{URL_SECRET}")))
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    server
}

async fn only_request(server: &MockServer) -> Request {
    let mut requests = server.received_requests().await.expect("recording is on");
    assert_eq!(
        requests.len(),
        1,
        "one request, no retry inside the channel"
    );
    requests.remove(0)
}

fn assert_no_secret(err: &SendError) {
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(URL_SECRET), "{shown}");
    assert!(!shown.contains(BEARER), "{shown}");
}

#[tokio::test]
async fn the_message_is_posted_as_json_with_its_idempotency_key() {
    let server = receiver(200).await;
    let msg = message(NotifyReason::Firing);

    let delivered = webhook(hook_url(&server), None).send(&msg).await;

    assert_eq!(delivered, Ok(Delivered { reference: None }));
    let request = only_request(&server).await;
    assert_eq!(
        request.headers.get("idempotency-key").unwrap(),
        "n-42-firing-1"
    );
    assert_eq!(
        request.headers.get("content-type").unwrap(),
        "application/json"
    );
    assert!(!request.headers.contains_key("authorization"));
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "key": "n-42-firing-1",
            "reason": "firing",
            "level": 2,
            "at": "2023-11-14T22:14:20.250Z",
            "status": "firing",
            "alerts": [{
                // Hex, as the API and the CLI write it: a number above 2^53 would
                // reach a JavaScript receiver wrong.
                "fingerprint": "0000000000abcdef",
                "incident": 42,
                "rule": "投稿成功率低下",
                "severity": "critical",
                "labels": {"alertname": "投稿成功率低下", "severity": "critical", "account": "a1"},
                "annotations": {"summary": "成功率 80%"},
                "state": "firing",
                "fired_at": "2023-11-14T22:13:20.000Z",
                "resolved_at": null,
                "acked_by": null,
                "acked_at": null,
                "generator_url": null,
            }],
        })
    );
    assert_schema_valid(&body);
}

/// docs/webhook.schema.json, compiled.
fn schema() -> jsonschema::Validator {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/webhook.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the schema compiles")
}

fn assert_schema_valid(body: &serde_json::Value) {
    let errors: Vec<String> = schema()
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{body:#}\n{}", errors.join("\n"));
}

/// What the channel really sends, for each kind of message and alert (a grouped
/// message, an acked alert, a resolved one from Alertmanager with a fingerprint
/// above 2^53), is valid against the documented schema; the schema is strict
/// enough to refuse the old form (a numeric fingerprint, epoch milliseconds).
#[tokio::test]
async fn every_payload_matches_the_documented_schema() {
    let server = receiver(200).await;
    let hook = webhook(hook_url(&server), None);
    let mut firing = message(NotifyReason::Firing);
    let mut second = firing.alerts[0].clone();
    second.fingerprint = Fingerprint(12870665111334686317);
    second.incident = Some(43);
    second.labels.insert("account".into(), "a2".into());
    firing.alerts.push(second);
    let mut acked = message(NotifyReason::Acknowledged);
    acked.level = 0;
    acked.alerts[0].state = State::Acknowledged;
    acked.alerts[0].acked_by = Some("alice".into());
    acked.alerts[0].acked_at = Some(Timestamp(1_700_000_100_000));
    let mut resolved = message(NotifyReason::Resolved);
    resolved.level = 0;
    resolved.alerts[0].state = State::Resolved;
    resolved.alerts[0].resolved_at = Some(Timestamp(1_700_000_200_000));
    resolved.alerts[0].generator_url = Some("http://prometheus:9090/graph?g0.expr=up".into());
    for msg in [&firing, &acked, &resolved] {
        hook.send(msg).await.unwrap();
    }
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3);
    for r in &requests {
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_schema_valid(&body);
    }
    let first: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(first["alerts"][1]["fingerprint"], "b29dc9ba201e0e6d");
    let last: serde_json::Value = serde_json::from_slice(&requests[2].body).unwrap();
    assert_eq!(last["alerts"][0]["resolved_at"], "2023-11-14T22:16:40.000Z");

    let mut old = first.clone();
    old["alerts"][1]["fingerprint"] = serde_json::json!(12870665111334686317u64);
    old["alerts"][0]["fired_at"] = serde_json::json!(1_700_000_000_000i64);
    assert_eq!(schema().iter_errors(&old).count(), 2, "{old:#}");
}

#[tokio::test]
async fn a_resolve_says_resolved() {
    let server = receiver(204).await;
    let mut msg = message(NotifyReason::Resolved);
    msg.alerts[0].state = State::Resolved;

    webhook(hook_url(&server), None).send(&msg).await.unwrap();

    let body: serde_json::Value =
        serde_json::from_slice(&only_request(&server).await.body).unwrap();
    assert_eq!(body["status"], "resolved");
    assert_eq!(body["reason"], "resolved");
    assert_eq!(body["alerts"][0]["state"], "resolved");
}

#[tokio::test]
async fn a_bearer_token_is_sent_when_configured() {
    let server = receiver(202).await;

    webhook(hook_url(&server), Some(BEARER))
        .send(&message(NotifyReason::Firing))
        .await
        .unwrap();

    let request = only_request(&server).await;
    assert_eq!(
        request.headers.get("authorization").unwrap(),
        &format!("Bearer {BEARER}")
    );
}

#[tokio::test]
async fn a_server_error_is_retried() {
    let server = receiver(500).await;

    let err = webhook(hook_url(&server), Some(BEARER))
        .send(&message(NotifyReason::Firing))
        .await
        .unwrap_err();

    assert!(
        matches!(&err, SendError::Retry { reason, after: None } if reason.contains("500")),
        "{err:?}"
    );
    assert_no_secret(&err);
}

#[tokio::test]
async fn a_rate_limit_is_retried_after_the_wait_asked_for() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "7"))
        .mount(&server)
        .await;

    let err = webhook(hook_url(&server), None)
        .send(&message(NotifyReason::Firing))
        .await
        .unwrap_err();

    assert_eq!(
        err,
        SendError::Retry {
            reason: "webhook ops: HTTP 429 Too Many Requests".into(),
            after: Some(Duration::from_secs(7)),
        }
    );
}

#[tokio::test]
async fn a_missing_endpoint_is_permanent_and_the_url_stays_secret() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        // A receiver that echoes the request it could not route.
        .respond_with(
            ResponseTemplate::new(404).set_body_string(format!("no route for /hooks/{URL_SECRET}")),
        )
        .mount(&server)
        .await;

    let err = webhook(hook_url(&server), Some(BEARER))
        .send(&message(NotifyReason::Firing))
        .await
        .unwrap_err();

    assert!(
        matches!(&err, SendError::Permanent { reason } if reason.contains("404") && reason.contains("ops")),
        "{err:?}"
    );
    assert_no_secret(&err);
}

#[tokio::test]
async fn a_refused_connection_is_retried_without_naming_the_url() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/hooks/{URL_SECRET}");

    let err = webhook(url, Some(BEARER))
        .send(&message(NotifyReason::Firing))
        .await
        .unwrap_err();

    assert!(
        matches!(&err, SendError::Retry { reason, .. } if reason.contains("connect")),
        "{err:?}"
    );
    assert_no_secret(&err);
}

#[tokio::test]
async fn a_receiver_that_never_answers_is_retried_after_the_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(10)))
        .mount(&server)
        .await;
    let channel = Webhook::new(WebhookSettings {
        name: "ops".into(),
        url: Secret::new(hook_url(&server)),
        bearer: None,
        timeout: Duration::from_millis(200),
    });

    let started = std::time::Instant::now();
    let err = channel
        .send(&message(NotifyReason::Firing))
        .await
        .unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(&err, SendError::Retry { reason, .. } if reason.contains("200ms")),
        "{err:?}"
    );
    assert_no_secret(&err);
}
