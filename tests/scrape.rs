//! Scrape targets against a local axum server on 127.0.0.1:0, in real time with
//! short intervals: scraped metrics fire rules, every scrape writes `up`, and a
//! target that is down, slow, failing or talking nonsense gets `up == 0`. Scraping
//! needs no daemon: one test hands the scrapes to a sink that records them.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::Value;
use tocsin::clock::SystemClock;
use tocsin::labels::Labels;
use tocsin::scrape::{self, Target};
use tocsin::series::IncomingSample;
use tocsin::server::{Running, start};
use tokio::sync::watch;

mod common;

const RULES: &str = r#"metric queue_depth gauge count
metric up gauge count

alert "QueueDeep" {
  when queue_depth > 100
  severity warning
}

alert "TargetUp" {
  when up == 1
  severity info
}

alert "TargetDown" {
  when up == 0
  severity critical
}
"#;

const EXPOSITION: &str = "\
# HELP queue_depth Jobs waiting.
# TYPE queue_depth gauge
queue_depth{queue=\"emails\",job=\"worker\"} 250
queue_depth{queue=\"sms\"} 3
";

fn dir(name: &str) -> PathBuf {
    common::daemon_dir(&format!("scrape-{name}"), RULES)
}

async fn daemon(name: &str) -> Running {
    let d = dir(name);
    start(common::test_config(&d), Arc::new(SystemClock))
        .await
        .unwrap()
}

/// What `server::start` passes to `scrape::spawn`.
fn into_daemon(running: &Running) -> (scrape::Limits, scrape::Sink) {
    tocsin::server::scrape_into(&running.daemon)
}

/// A metrics server: `/metrics` good, `/broken` 500, `/garbage` unparseable,
/// `/slow` slower than any timeout here.
async fn exporter() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let app = Router::new()
        .route(
            "/metrics",
            get(|| async {
                (
                    [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                    EXPOSITION,
                )
            }),
        )
        .route(
            "/broken",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "oops\n") }),
        )
        .route("/garbage", get(|| async { "<html>not metrics</html>\n" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                EXPOSITION
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, server)
}

fn target(name: &str, url: String) -> Target {
    Target {
        name: name.to_string(),
        url,
        interval: Duration::from_millis(200),
        timeout: Duration::from_millis(200),
        labels: Labels::from_pairs([("env", "test")]),
    }
}

/// The firing alerts as (rule, job, instance, other label), sorted.
async fn firing(r: &Running) -> Vec<(String, String, String, String)> {
    let body: Value = reqwest::get(format!("http://{}/api/v1/alerts?state=firing", r.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut out: Vec<_> = body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let l = &a["labels"];
            let other = format!(
                "env={} queue={} exported_job={}",
                s(&l["env"]),
                s(&l["queue"]),
                s(&l["exported_job"])
            );
            (s(&a["rule"]), s(&l["job"]), s(&l["instance"]), other)
        })
        .collect();
    out.sort();
    out
}

/// Polls until `done` holds of the firing alerts, or fails after a few seconds.
async fn wait_for(
    r: &Running,
    what: &str,
    done: impl Fn(&[(String, String, String, String)]) -> bool,
) -> Vec<(String, String, String, String)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    loop {
        let now = firing(r).await;
        if done(&now) {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; firing: {now:#?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn has(alerts: &[(String, String, String, String)], rule: &str, job: &str) -> bool {
    alerts.iter().any(|a| a.0 == rule && a.1 == job)
}

#[tokio::test]
async fn scraped_metrics_fire_rules_and_a_dead_target_sets_up_to_zero() {
    let running = daemon("fire").await;
    let (addr, server) = exporter().await;
    let instance = addr.to_string();
    let (stop, shutdown) = watch::channel(false);
    let (limits, sink) = into_daemon(&running);
    let scraper = scrape::spawn(
        vec![
            target("worker", format!("http://{addr}/metrics")),
            target("broken", format!("http://{addr}/broken")),
            target("garbage", format!("http://{addr}/garbage")),
            target("slow", format!("http://{addr}/slow")),
        ],
        limits,
        sink,
        shutdown,
    );

    let alerts = wait_for(&running, "the scraped metric's alert and every up", |a| {
        has(a, "QueueDeep", "worker")
            && has(a, "TargetUp", "worker")
            && ["broken", "garbage", "slow"]
                .iter()
                .all(|job| has(a, "TargetDown", job))
    })
    .await;
    // Target labels on every sample; the scraped `job` kept as `exported_job`.
    let queue_deep: Vec<_> = alerts.iter().filter(|a| a.0 == "QueueDeep").collect();
    assert_eq!(
        queue_deep,
        [&(
            "QueueDeep".to_string(),
            "worker".to_string(),
            instance.clone(),
            "env=test queue=emails exported_job=worker".to_string()
        )]
    );
    assert!(
        alerts
            .iter()
            .filter(|a| a.0.starts_with("Target"))
            .all(|a| a.2 == instance && a.3 == "env=test queue= exported_job="),
        "{alerts:#?}"
    );

    // The exporter goes away: connection refused, up becomes 0, and the series it
    // served are marked stale, so their alert resolves at once.
    server.abort();
    let _ = server.await;
    wait_for(&running, "TargetDown for the stopped worker", |a| {
        has(a, "TargetDown", "worker")
            && !has(a, "QueueDeep", "worker")
            && !has(a, "TargetUp", "worker")
    })
    .await;

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), scraper)
        .await
        .expect("scrape loops stop when told")
        .unwrap();
    running.stop().await;
}

#[tokio::test]
async fn loops_stop_on_shutdown_and_bad_targets_are_skipped() {
    let running = daemon("stop").await;
    let (addr, server) = exporter().await;
    let (stop, shutdown) = watch::channel(false);
    let (limits, sink) = into_daemon(&running);
    let scraper = scrape::spawn(
        vec![
            target("tls", format!("https://{addr}/metrics")),
            target("worker", format!("http://{addr}/metrics")),
        ],
        limits,
        sink,
        shutdown,
    );
    wait_for(&running, "the worker scraped", |a| {
        has(a, "QueueDeep", "worker")
    })
    .await;
    assert!(!firing(&running).await.iter().any(|a| a.1 == "tls"));
    drop(stop);
    tokio::time::timeout(Duration::from_secs(5), scraper)
        .await
        .expect("scrape loops stop when the sender goes")
        .unwrap();

    let err = scrape::validate(&[target("tls", format!("https://{addr}/metrics"))]).unwrap_err();
    assert!(
        err.to_string()
            .contains("https targets are not supported yet"),
        "{err}"
    );

    server.abort();
    running.stop().await;
}

#[tokio::test]
async fn each_scrape_is_one_batch_for_the_sink_and_a_refused_one_sets_up_to_zero() {
    let (addr, server) = exporter().await;
    // Every batch handed over, in order; the first is refused.
    let batches: Arc<Mutex<Vec<Vec<IncomingSample>>>> = Arc::default();
    let record = batches.clone();
    let sink: scrape::Sink = Arc::new(move |samples| {
        let mut all = record.lock().unwrap();
        all.push(samples);
        let answer = if all.len() == 1 {
            Err("no room".to_string())
        } else {
            Ok(())
        };
        Box::pin(std::future::ready(answer))
    });
    let limits = scrape::Limits {
        body_limit: 1 << 20,
    };
    let (stop, shutdown) = watch::channel(false);
    let scraper = scrape::spawn(
        vec![target("node", format!("http://{addr}/metrics"))],
        limits,
        sink,
        shutdown,
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while batches.lock().unwrap().len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for three scrapes"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), scraper)
        .await
        .expect("scrape loops stop when told")
        .unwrap();
    server.abort();

    let batches = batches.lock().unwrap();
    let instance = addr.to_string();
    let target_labels = Labels::from_pairs([
        ("job", "node"),
        ("instance", instance.as_str()),
        ("env", "test"),
    ]);
    let value = |batch: &[IncomingSample], metric: &str| {
        let s = batch
            .iter()
            .find(|s| s.metric == metric)
            .unwrap_or_else(|| panic!("no {metric} in {batch:#?}"));
        assert_eq!(s.labels, target_labels, "{metric}");
        s.value
    };
    let names = |batch: &[IncomingSample]| -> Vec<String> {
        let mut names: Vec<_> = batch.iter().map(|s| s.metric.clone()).collect();
        names.sort();
        names
    };
    // The scrape itself: target labels added, the scraped `job` exported, `up`.
    let scraped = &batches[0];
    assert_eq!(
        names(scraped),
        [
            "queue_depth",
            "queue_depth",
            "scrape_duration_seconds",
            "scrape_samples_scraped",
            "up"
        ]
    );
    assert_eq!(
        scraped[0].labels,
        target_labels.merged([("queue", "emails"), ("exported_job", "worker")])
    );
    assert_eq!(scraped[0].value, 250.0);
    assert_eq!(value(scraped, "up"), 1.0);
    assert_eq!(value(scraped, "scrape_samples_scraped"), 2.0);
    // Refused by the sink: the scrape failed, and `up` says so.
    let refused = &batches[1];
    assert_eq!(
        names(refused),
        ["scrape_duration_seconds", "scrape_samples_scraped", "up"]
    );
    assert_eq!(value(refused, "up"), 0.0);
    assert_eq!(value(refused, "scrape_samples_scraped"), 0.0);
    // The next scrape is taken.
    assert_eq!(names(&batches[2]), names(scraped));
    assert_eq!(value(&batches[2], "up"), 1.0);
}
