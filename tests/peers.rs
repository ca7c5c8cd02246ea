//! tocsin behind the real thing: Debian's Alertmanager 0.25 sending its webhook, and
//! Prometheus 2.42 naming tocsin as its alertmanager. Both run as child processes on
//! 127.0.0.1 (`.ci/run` installs them); every wait is bounded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tocsin::clock::SystemClock;
use tocsin::config::Config;
use tocsin::server::{Running, start};

/// Kills the child process when the test ends, however it ends.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &str, args: &[String], dir: &Path) -> Peer {
    let child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{}.log", program.rsplit('/').next().unwrap()))).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}); CI installs it via `.ci/run` (Debian packages prometheus, prometheus-alertmanager)"));
    Peer(child)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("peers-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("rules")).unwrap();
    d
}

async fn tocsin(d: &Path) -> Running {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.storage.path = d.join("data/tocsin.redb");
    config.rules.paths = vec![d.join("rules")];
    start(config, Arc::new(SystemClock)).await.unwrap()
}

/// Polls tocsin's alert list until `want` holds, for at most `limit`.
async fn wait_for(
    r: &Running,
    limit: Duration,
    what: &str,
    want: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let body: Value = reqwest::get(format!("http://{}/api/v1/alerts", r.addr))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let alerts = body["alerts"].as_array().unwrap().clone();
        if want(&alerts) {
            return alerts;
        }
        assert!(
            started.elapsed() < limit,
            "timed out waiting for {what}; alerts: {alerts:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn alertmanager_webhook_into_tocsin_fires_then_resolves() {
    let d = dir("alertmanager");
    let r = tocsin(&d).await;
    let am_port = free_port();
    std::fs::write(
        d.join("am.yml"),
        format!(
            "route:\n  receiver: tocsin\n  group_by: [alertname]\n  group_wait: 100ms\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: tocsin\n    webhook_configs:\n      - url: http://{}/api/v1/alertmanager\n        send_resolved: true\n",
            r.addr
        ),
    )
    .unwrap();
    let _am = spawn(
        "prometheus-alertmanager",
        &[
            "--config.file=am.yml".into(),
            format!("--storage.path={}", d.join("am-data").display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=".into(),
        ],
        &d,
    );
    let http = tocsin::tls::http_client().build().unwrap();
    let am = format!("http://127.0.0.1:{am_port}/api/v2/alerts");
    let alert = json!([{ "labels": { "alertname": "DiskFull", "instance": "db1:9100", "severity": "critical" },
                         "annotations": { "summary": "Disk 95% full on db1" } }]);
    // Alertmanager needs a moment to listen: retry the post, bounded.
    let started = Instant::now();
    while http
        .post(&am)
        .json(&alert)
        .send()
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "alertmanager did not start; see {}",
            d.join("prometheus-alertmanager.log").display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let firing = wait_for(&r, Duration::from_secs(20), "the alert to fire", |a| {
        a.iter().any(|x| x["state"] == "firing")
    })
    .await;
    assert_eq!(firing[0]["labels"]["instance"], "db1:9100");
    assert_eq!(firing[0]["annotations"]["summary"], "Disk 95% full on db1");

    let mut resolved = alert.clone();
    resolved[0]["endsAt"] =
        json!(humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string());
    assert!(
        http.post(&am)
            .json(&resolved)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    wait_for(&r, Duration::from_secs(20), "the alert to resolve", |a| {
        a.iter().all(|x| x["state"] == "resolved")
    })
    .await;
    r.stop().await;
}

#[tokio::test]
async fn prometheus_sends_its_alerts_to_tocsin() {
    let d = dir("prometheus");
    let r = tocsin(&d).await;
    let prom_port = free_port();
    std::fs::write(
        d.join("rules.yml"),
        "groups:\n  - name: t\n    rules:\n      - alert: PrometheusScrapesItself\n        expr: up == 1\n        labels:\n          severity: info\n        annotations:\n          summary: \"{{ $labels.instance }} is up\"\n",
    )
    .unwrap();
    std::fs::write(
        d.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n\
             scrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:{prom_port}']\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{}']\n",
            r.addr
        ),
    )
    .unwrap();
    let _prom = spawn(
        "prometheus",
        &[
            "--config.file=prometheus.yml".into(),
            format!("--storage.tsdb.path={}", d.join("prom-data").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        &d,
    );
    let alerts = wait_for(&r, Duration::from_secs(40), "Prometheus' alert", |a| {
        a.iter().any(|x| x["state"] == "firing")
    })
    .await;
    let a = &alerts[0];
    assert_eq!(a["rule"], "PrometheusScrapesItself");
    assert_eq!(a["labels"]["job"], "self");
    assert_eq!(
        a["annotations"]["summary"],
        format!("127.0.0.1:{prom_port} is up")
    );
    r.stop().await;
}
