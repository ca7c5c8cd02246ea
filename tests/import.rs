//! `POST /api/v1/import/prometheus` against the daemon in-process on 127.0.0.1:0: a
//! valid exposition body fires alerts through a rule; every malformed body is
//! refused whole with the line at fault, and nothing of it is applied.

use std::path::PathBuf;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tocsin::clock::{ManualClock, Timestamp};
use tocsin::server::{Running, start};

mod common;

const RULES: &str = r#"metric temperature gauge count
metric pending_jobs gauge count

alert "Hot" {
  when temperature > 30
  severity critical
}

alert "Backlog" {
  when pending_jobs > 0
  severity warning
}
"#;

const NOW_MS: i64 = 1_800_000_000_000;

fn dir(name: &str) -> PathBuf {
    common::daemon_dir(&format!("import-{name}"), RULES)
}

async fn daemon(name: &str) -> Running {
    let d = dir(name);
    let mut config = common::test_config(&d);
    config.limits.max_labels = 4;
    config.server.body_limit = 16 * 1024;
    let clock = ManualClock::new(Timestamp(NOW_MS));
    start(config, Arc::new(clock)).await.unwrap()
}

async fn post(r: &Running, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
    let resp = tocsin::tls::http_client()
        .build()
        .unwrap()
        .post(format!("http://{}/api/v1/import/prometheus", r.addr))
        .header("content-type", "text/plain; version=0.0.4")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn alerts(r: &Running) -> Vec<Value> {
    let resp = reqwest::get(format!("http://{}/api/v1/alerts", r.addr))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    body["alerts"].as_array().unwrap().clone()
}

#[tokio::test]
async fn an_exposition_body_fires_alerts_through_a_rule() {
    let running = daemon("fire").await;
    let body = format!(
        r#"# HELP temperature Room temperature.\nIn degrees \\ celsius.
# TYPE temperature gauge
temperature{{room="lab \"A\"",path="C:\\temp\nnext"}} 35.5 {now}
temperature{{room="hall"}} NaN
temperature{{ room = "roof" , }} +Inf {earlier}
temperature{{room="cellar"}} -Inf
temperature{{room="office"}} 21

# TYPE request_seconds histogram
request_seconds_bucket{{le="0.1"}} 1
request_seconds_bucket{{le="+Inf"}} 3
request_seconds_sum 0.7
request_seconds_count 3
"#,
        now = NOW_MS,
        earlier = NOW_MS - 10_000,
    );
    let (status, reply) = post(&running, body).await;
    assert_eq!((status, reply), (StatusCode::OK, json!({ "accepted": 9 })));

    let mut firing: Vec<(String, String, Option<String>)> = alerts(&running)
        .await
        .into_iter()
        .map(|a| {
            assert_eq!(
                (&a["rule"], &a["state"]),
                (&json!("Hot"), &json!("firing")),
                "{a}"
            );
            let labels = &a["labels"];
            (
                labels["room"].as_str().unwrap().to_string(),
                a["value"].to_string(),
                labels["path"].as_str().map(str::to_string),
            )
        })
        .collect();
    firing.sort();
    // NaN, -Inf and 21 are not above 30; the escapes are undone in the labels.
    assert_eq!(
        firing,
        [
            (
                "lab \"A\"".to_string(),
                "35.5".to_string(),
                Some("C:\\temp\nnext".to_string())
            ),
            ("roof".to_string(), "\"inf\"".to_string(), None),
        ]
    );
    running.stop().await;
}

#[tokio::test]
async fn malformed_bodies_are_refused_whole_with_the_line() {
    let running = daemon("bad").await;
    // Every body starts with a sample that would fire "Backlog" if applied.
    let first = "# TYPE pending_jobs gauge\npending_jobs{queue=\"mail\"} 5\n";
    let cases: &[(&str, u64, &str)] = &[
        (
            "9temperature 1\n",
            3,
            "invalid metric name \"9temperature\"",
        ),
        (
            "temperature{room=\"a\\q\"} 1\n",
            3,
            "invalid escape sequence \\q",
        ),
        ("temperature{room=\"a\"}\n", 3, "missing value"),
        ("temperature{room=\"a\"} hot\n", 3, "invalid value \"hot\""),
        (
            "temperature{room=\"a\",room=\"b\"} 1\n",
            3,
            "duplicate label name \"room\"",
        ),
        (
            "temperature{a=\"1\",b=\"2\",c=\"3\",d=\"4\",e=\"5\"} 1\n",
            3,
            "5 labels, at most 4",
        ),
        (
            "temperature{__room=\"a\"} 1\n",
            3,
            "invalid label name \"__room\"",
        ),
        ("temperature{room=\"a} 1\n", 3, "unterminated value"),
        ("temperature 1 soon\n", 3, "invalid timestamp \"soon\""),
        ("\n\ntemperature 1\ntemperature 2\n", 6, "duplicate series"),
        ("# TYPE temperature thermometer\n", 3, "unknown metric type"),
        (
            "pending_jobs{queue=\"sms\"} 1\n# TYPE pending_jobs gauge\n",
            4,
            "second TYPE line",
        ),
    ];
    for (rest, line, want) in cases {
        let (status, reply) = post(&running, format!("{first}{rest}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{rest:?}: {reply}");
        assert_eq!(reply["line"], *line, "{rest:?}: {reply}");
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with(&format!("line {line}: ")) && error.contains(want),
            "{rest:?}: {error:?} lacks {want:?}"
        );
    }

    // Not UTF-8.
    let mut body = first.as_bytes().to_vec();
    body.extend_from_slice(b"temperature{room=\"\xff\"} 1\n");
    let (status, reply) = post(&running, body).await;
    assert_eq!(
        (status, reply),
        (
            StatusCode::BAD_REQUEST,
            json!({ "error": "line 3: invalid UTF-8", "line": 3 })
        )
    );

    // Larger than the body limit (16 KiB): refused before parsing, so no line.
    let big = format!("{first}{}", "# padding\n".repeat(2000));
    let (status, reply) = post(&running, big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("larger than"));

    // Nothing of any refused body was applied.
    assert!(alerts(&running).await.is_empty());

    // Refused by the store (older than what it holds): 422, still with the line.
    let (status, _) = post(&running, format!("other 1 {NOW_MS}\n")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, reply) = post(&running, format!("{first}other 1 {}\n", NOW_MS - 1000)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    assert_eq!(reply["line"], 3, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .starts_with("line 3: sample at"),
        "{reply}"
    );
    assert!(alerts(&running).await.is_empty());

    // And the same first line alone is taken.
    let (status, reply) = post(&running, first).await;
    assert_eq!((status, reply), (StatusCode::OK, json!({ "accepted": 1 })));
    assert_eq!(alerts(&running).await.len(), 1);
    running.stop().await;
}
