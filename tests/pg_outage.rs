//! PostgreSQL going away under a running tocsin: the server stopped as in a crash
//! (`pg_ctl stop -m immediate`, every connection dropped) for longer than the
//! lease lasts, then started again.
//! While it is down, pushes, Alertmanager-style intake and acks answer 503 with a
//! JSON reason and `/readyz` says not ready: never a 2xx for what was not
//! committed. When it is back, tocsin is ready again without a restart (the
//! evaluation deadline tries a write), the refused changes are absent and the
//! same requests succeed. A real server: the cluster of this test binary.

mod common;

use std::time::Duration;

use common::postgres;
use common::served::Served;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tocsin::clock::Timestamp;
use tocsin::config::{Backend, Secret};
use tocsin::store::{PgStore, Store};

const RULES: &str = r#"metric queue_length gauge count

alert "キュー滞留" {
  when queue_length > 100
  severity critical
}
"#;

const T0: i64 = 1_800_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_gets_503_not_ready_and_everything_resumes_after() {
    let url = postgres::fresh_database("outage");
    let dir = common::daemon_dir("pg-outage", RULES);
    let mut config = common::test_config(&dir);
    config.storage.backend = Backend::Postgres {
        url: Secret::new(url.clone()),
    };
    config.channels.console.enabled = false;
    config.rules.evaluation_interval = Duration::from_secs(60);
    let s = Served::open(config, Timestamp::from_secs(T0), None).await;

    assert_eq!(s.push("a", 500.0).await.0, StatusCode::OK);
    assert_eq!(s.get("/readyz").await.0, StatusCode::OK);
    s.daemon.caught_up().await;
    s.daemon.flush().await.unwrap();

    postgres::cluster().stop_server();
    let (status, body) = s.push("b", 500.0).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let reason = body["error"].as_str().unwrap();
    assert!(reason.starts_with("store: "), "{reason}");
    assert!(reason.contains("PostgreSQL"), "{reason}");
    assert!(!reason.contains(&url), "the URL is never quoted: {reason}");
    let (status, body) = s.alertmanager("db-1").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, body) = s
        .post("/api/v1/alerts/1/ack", json!({"actor": "tanaka"}))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, body) = s.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    // Down longer than the lease lasts (3 s), so the lease lapses too.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(s.push("b", 500.0).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(s.get("/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);

    postgres::cluster().start_server();
    // Ready again at the evaluation deadline's write, with no request needed, once
    // the lease is renewed (real time: every 500 ms; bounded wait).
    let evaluation = Timestamp::from_secs(T0) + Duration::from_secs(60);
    s.daemon.run_until(&s.clock, evaluation).await;
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while s.get("/readyz").await.0 != StatusCode::OK {
        assert!(
            std::time::Instant::now() < until,
            "not ready after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The refused ack did not happen; the same requests succeed now.
    let (_, one) = s.get("/api/v1/alerts/1").await;
    let one: Value = serde_json::from_str(&one).unwrap();
    assert_eq!(one["state"], "firing", "{one}");
    assert_eq!(one["ack"], Value::Null);
    let (status, body) = s
        .post("/api/v1/alerts/1/ack", json!({"actor": "tanaka"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(s.push("b", 500.0).await.0, StatusCode::OK);
    assert_eq!(s.alertmanager("db-1").await.0, StatusCode::OK);

    // The database holds exactly what was answered 2xx.
    let store = PgStore::connect(&url).unwrap();
    let loaded = store.load().unwrap();
    let hosts: Vec<String> = loaded
        .alerts
        .iter()
        .map(|a| a.labels.get("host").unwrap_or_default().to_string())
        .collect();
    assert_eq!(loaded.alerts.len(), 3, "{hosts:?}");
    let acked = loaded.alerts.iter().filter(|a| a.ack.is_some()).count();
    assert_eq!(acked, 1);
    assert_eq!(
        loaded.next_incident, 4,
        "no incident number was lost or reused"
    );
}
