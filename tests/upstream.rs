//! An ack in tocsin silences the Alertmanager that sent the alert: the real
//! Alertmanager 0.25 (Debian's `prometheus-alertmanager`, a child process on
//! 127.0.0.1, no gossip, storage in a temp dir) sends Prometheus-shaped alerts to
//! tocsin's webhook and to another receiver; the silence is read back with the real
//! `amtool`; the other receiver stops hearing of the alert; the resolve, the unack
//! and tocsin's own resolve expire the silence. Every wait is bounded.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tocsin::clock::{Clock, ManualClock, SystemClock, Timestamp};
use tocsin::config::{AlertmanagerSettings, Config, Secret};
use tocsin::server::{Running, start};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Kills the child process when the test ends, however it ends.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The alert as Prometheus sends it to Alertmanager.
fn alert(starts_at: &str, ends_at: &str) -> Value {
    json!([{
        "labels": { "alertname": "DiskFull", "instance": "db1:9100", "job": "node", "severity": "critical" },
        "annotations": { "summary": "disk 95% full on db1" },
        "generatorURL": "http://prometheus:9090/graph?g0.expr=disk",
        "startsAt": starts_at,
        "endsAt": ends_at,
    }])
}

fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The wall clock's now as tocsin's time: a manual clock that starts where
/// Alertmanager's real time is.
fn real_now() -> Timestamp {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    Timestamp(since_epoch.as_millis() as i64)
}

/// Alertmanager on `port`, sending every alert to tocsin and to `other`, again
/// every second while it fires (repeat_interval), so silence is noticed quickly.
fn alertmanager(dir: &Path, port: u16, tocsin: &str, other: &str) -> Peer {
    alertmanager_grouping(dir, port, tocsin, other, "alertname")
}

/// [`alertmanager`], grouping by `group_by`.
fn alertmanager_grouping(dir: &Path, port: u16, tocsin: &str, other: &str, group_by: &str) -> Peer {
    run_alertmanager(
        dir,
        port,
        &format!(
            "route:\n  receiver: other\n  group_by: [{group_by}]\n  group_wait: 100ms\n  group_interval: 1s\n  repeat_interval: 1s\n  \
             routes:\n    - receiver: tocsin\n      continue: true\n    - receiver: other\n\
             receivers:\n  - name: tocsin\n    webhook_configs:\n      - url: {tocsin}/api/v1/alertmanager\n        send_resolved: true\n  \
             - name: other\n    webhook_configs:\n      - url: {other}/notify\n        send_resolved: true\n"
        ),
    )
}

/// Alertmanager on `port`, notifying only `other`: Prometheus sends to tocsin
/// itself, not through this Alertmanager.
fn alertmanager_without_tocsin(dir: &Path, port: u16, other: &str) -> Peer {
    run_alertmanager(
        dir,
        port,
        &format!(
            "route:\n  receiver: other\n  group_by: [alertname]\n  group_wait: 100ms\n  group_interval: 1s\n  repeat_interval: 1s\n\
             receivers:\n  - name: other\n    webhook_configs:\n      - url: {other}/notify\n        send_resolved: true\n"
        ),
    )
}

/// Alertmanager on `port` with the configuration `yaml`.
fn run_alertmanager(dir: &Path, port: u16, yaml: &str) -> Peer {
    std::fs::write(dir.join("am.yml"), yaml).unwrap();
    let child = Command::new("prometheus-alertmanager")
        .args([
            "--config.file=am.yml".to_string(),
            format!("--storage.path={}", dir.join("am-data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--web.external-url=http://127.0.0.1:{port}"),
            "--cluster.listen-address=".into(),
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("alertmanager.log")).unwrap())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run prometheus-alertmanager ({e}); CI installs it via `.ci/run`")
        });
    Peer(child)
}

/// tocsin on 127.0.0.1:0 with Alertmanager `main` at `am` upstream.
async fn tocsin(dir: &Path, am: &str) -> Running {
    tocsin_with(dir, am, false).await
}

/// [`tocsin`], with one incident per Alertmanager group when `group_incidents`.
async fn tocsin_with(dir: &Path, am: &str, group_incidents: bool) -> Running {
    let mut config = common::test_config(dir);
    config.channels.alertmanagers = vec![upstream_settings(am, group_incidents)];
    start(config, Arc::new(SystemClock)).await.unwrap()
}

/// `[[channels.alertmanager]]` "main" at `am`, asked every second while it
/// holds a silence of tocsin's.
fn upstream_settings(am: &str, group_incidents: bool) -> AlertmanagerSettings {
    AlertmanagerSettings {
        name: "main".into(),
        url: Secret::new(am),
        external_urls: vec![am.to_string()],
        generator_urls: Vec::new(),
        bearer: None,
        timeout: Duration::from_secs(5),
        max_silence: Duration::from_secs(3600),
        watch_interval: Duration::from_secs(1),
        group_incidents,
    }
}

/// Polls `probe` until it gives a value, for at most 30 s.
async fn until<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `amtool silence query` against the upstream, as JSON; None while amtool
/// cannot get an answer (Alertmanager still starting).
async fn amtool_silences(am: &str, expired: bool) -> Option<Vec<Value>> {
    let mut args = vec![
        format!("--alertmanager.url={am}"),
        "silence".into(),
        "query".into(),
        "-o".into(),
        "json".into(),
    ];
    if expired {
        args.push("--expired".into());
    }
    let out = tokio::task::spawn_blocking(move || Command::new("amtool").args(&args).output())
        .await
        .unwrap()
        .expect("amtool on PATH (.ci/run installs prometheus-alertmanager)");
    if !out.status.success() {
        return None;
    }
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    Some(listed.as_array().cloned().unwrap_or_default())
}

struct Setup {
    /// The alert's `startsAt`, as posted.
    starts_at: String,
    tocsin: Running,
    am: String,
    other: MockServer,
    http: reqwest::Client,
    _alertmanager: Peer,
}

impl Setup {
    /// Alertmanager and tocsin (on `clock`, its config changed by `change`)
    /// running, the alert posted to Alertmanager and firing in tocsin.
    async fn started(
        name: &str,
        clock: Arc<dyn Clock>,
        change: impl FnOnce(&mut Config, &mut AlertmanagerSettings),
    ) -> Setup {
        let dir = common::daemon_dir(name, "");
        let port = free_port();
        let am = format!("http://127.0.0.1:{port}");
        let mut config = common::test_config(&dir);
        let mut upstream = upstream_settings(&am, false);
        change(&mut config, &mut upstream);
        config.channels.alertmanagers = vec![upstream];
        let tocsin = start(config, clock).await.unwrap();
        let other = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&other)
            .await;
        let peer = alertmanager(&dir, port, &format!("http://{}", tocsin.addr), &other.uri());
        let now = std::time::SystemTime::now();
        let s = Setup {
            starts_at: rfc3339(now),
            tocsin,
            am,
            other,
            http: reqwest::Client::new(),
            _alertmanager: peer,
        };
        let body = alert(&s.starts_at, &rfc3339(now + Duration::from_secs(3600)));
        until("alertmanager to take the alert", || async {
            let r = s
                .http
                .post(format!("{}/api/v2/alerts", s.am))
                .json(&body)
                .send()
                .await;
            r.is_ok_and(|r| r.status().is_success()).then_some(())
        })
        .await;
        until("tocsin to have it firing", || async {
            (s.tocsin_alert().await?["state"] == "firing").then_some(())
        })
        .await;
        s
    }

    /// [`Setup::started`] on the real clock, the alert also notified to the other
    /// receiver more than once.
    async fn firing(name: &str) -> Setup {
        let s = Setup::started(name, Arc::new(SystemClock), |_, _| {}).await;
        until("the other receiver to be told twice", || async {
            (s.notified().await >= 2).then_some(())
        })
        .await;
        s
    }

    fn tocsin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.tocsin.addr)
    }

    /// tocsin's alert with its timeline, once it has one.
    async fn tocsin_alert(&self) -> Option<Value> {
        let r = self
            .http
            .get(self.tocsin_url("/api/v1/alerts/1"))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())?;
        r.json().await.ok()
    }

    async fn timeline(&self) -> Vec<String> {
        let alert = self.tocsin_alert().await.unwrap();
        alert["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["reason"].as_str().unwrap().to_string())
            .collect()
    }

    async fn act(&self, action: &str, note: &str) {
        self.act_as("alice", action, note).await;
    }

    async fn act_as(&self, actor: &str, action: &str, note: &str) {
        let r = self
            .http
            .post(self.tocsin_url(&format!("/api/v1/alerts/1/{action}")))
            .json(&json!({ "actor": actor, "note": note }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{action}: {}", r.text().await.unwrap());
    }

    /// Notifications the other receiver got.
    async fn notified(&self) -> usize {
        self.other
            .received_requests()
            .await
            .unwrap_or_default()
            .len()
    }

    /// The silence tocsin made upstream, once there is one.
    async fn silence(&self) -> Value {
        until("the silence upstream", || async {
            amtool_silences(&self.am, false).await?.into_iter().next()
        })
        .await
    }

    /// Waits until upstream has no active silence and returns the expired ones.
    async fn expired(&self) -> Vec<Value> {
        until("the silence to be expired upstream", || async {
            amtool_silences(&self.am, false)
                .await?
                .is_empty()
                .then_some(())
        })
        .await;
        amtool_silences(&self.am, true).await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_silences_the_alertmanager_until_the_alert_resolves() {
    let s = Setup::firing("upstream-ack-resolve").await;
    let acked_at = Instant::now();
    s.act("ack", "replacing the disk").await;
    assert!(
        acked_at.elapsed() < Duration::from_secs(2),
        "the ack does not wait for Alertmanager"
    );
    let silence = s.silence().await;
    assert_eq!(silence["createdBy"], "alice");
    assert_eq!(silence["comment"], "replacing the disk (tocsin #1)");
    let mut matchers: Vec<String> = silence["matchers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(
                (m["isRegex"].clone(), m["isEqual"].clone()),
                (json!(false), json!(true))
            );
            format!(
                "{}={}",
                m["name"].as_str().unwrap(),
                m["value"].as_str().unwrap()
            )
        })
        .collect();
    matchers.sort();
    assert_eq!(
        matchers,
        [
            "alertname=DiskFull",
            "instance=db1:9100",
            "job=node",
            "severity=critical"
        ]
    );
    let id = silence["id"].as_str().unwrap().to_string();

    // Alertmanager stops notifying its other receiver. It re-notifies every
    // second while the alert is not muted (seen above); a notification in flight
    // when the silence arrived may still land, so count from a moment later.
    until("alertmanager to mark the alert silenced", || async {
        let alerts: Value = s
            .http
            .get(format!("{}/api/v2/alerts", s.am))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (alerts[0]["status"]["silencedBy"] == json!([id])).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = s.notified().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        s.notified().await,
        before,
        "the other receiver heard nothing more"
    );
    assert!(
        s.timeline().await.iter().any(
            |r| r == &format!("notified alertmanager:main: acknowledged: silence {id} created")
        ),
        "{:#?}",
        s.timeline().await
    );

    // The alert resolves at its source. Alertmanager, muted, tells no one; the
    // watch sees it gone, resolves it, and the resolve expires the silence.
    let now = rfc3339(std::time::SystemTime::now());
    let body = alert(&s.starts_at, &now);
    let r = s
        .http
        .post(format!("{}/api/v2/alerts", s.am))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    until("tocsin to resolve the alert", || async {
        (s.tocsin_alert().await?["state"] == "resolved").then_some(())
    })
    .await;
    let expired = s.expired().await;
    assert!(
        expired.iter().any(|e| e["id"] == id.as_str()),
        "{expired:#?}"
    );
    let timeline = s.timeline().await;
    assert!(
        timeline
            .iter()
            .any(|r| r == "resolved by alertmanager main"),
        "{timeline:#?}"
    );
    assert!(
        timeline
            .iter()
            .any(|r| r == &format!("notified alertmanager:main: resolved: silence {id} expired")),
        "{timeline:#?}"
    );
    s.tocsin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unack_or_a_resolve_in_tocsin_expires_the_silence() {
    let s = Setup::firing("upstream-unack").await;
    s.act("ack", "").await;
    let first = s.silence().await;
    assert_eq!(first["comment"], "acknowledged in tocsin (tocsin #1)");
    s.act("unack", "").await;
    let expired = s.expired().await;
    assert!(
        expired.iter().any(|e| e["id"] == first["id"]),
        "{expired:#?}"
    );
    // Acked again: a new silence; resolved in tocsin: expired too.
    s.act("ack", "second look").await;
    let second = until("a second silence", || async {
        amtool_silences(&s.am, false)
            .await?
            .into_iter()
            .find(|x| x["id"] != first["id"])
    })
    .await;
    assert_eq!(second["comment"], "second look (tocsin #1)");
    s.act("resolve", "fixed").await;
    let expired = s.expired().await;
    assert!(
        expired.iter().any(|e| e["id"] == second["id"]),
        "{expired:#?}"
    );
    s.tocsin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alertmanager_that_is_down_gets_its_silence_when_it_is_back() {
    let dir = common::daemon_dir("upstream-down", "");
    let port = free_port();
    let am = format!("http://127.0.0.1:{port}");
    let tocsin = tocsin(&dir, &am).await;
    let http = reqwest::Client::new();
    // The webhook as that Alertmanager sends it; then Alertmanager goes away.
    let hook = json!({
        "version": "4", "status": "firing", "receiver": "tocsin", "groupKey": "{}:{alertname=\"DiskFull\"}",
        "groupLabels": { "alertname": "DiskFull" }, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": am, "truncatedAlerts": 0,
        "alerts": [{ "status": "firing",
            "labels": { "alertname": "DiskFull", "instance": "db1:9100", "severity": "critical" },
            "annotations": {}, "startsAt": rfc3339(std::time::SystemTime::now()),
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "" }],
    });
    let url = |p: &str| format!("http://{}{p}", tocsin.addr);
    let r = http
        .post(url("/api/v1/alertmanager"))
        .json(&hook)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(url("/api/v1/alerts/1/ack"))
        .json(&json!({ "actor": "bob" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the ack does not wait for Alertmanager");
    let timeline = until("the failure on the timeline", || async {
        let a: Value = http
            .get(url("/api/v1/alerts/1"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let reasons: Vec<String> = a["timeline"]
            .as_array()?
            .iter()
            .map(|e| e["reason"].as_str().unwrap().to_string())
            .collect();
        reasons
            .iter()
            .any(|r| {
                r.starts_with("alertmanager:main not told yet: alertmanager main: cannot connect")
            })
            .then_some(reasons)
    })
    .await;
    assert!(
        timeline.iter().any(|r| r == "acked by bob via http"),
        "{timeline:#?}"
    );
    // It comes back (its other receiver is not part of this test): the retry,
    // with backoff, makes the silence.
    let other = MockServer::start().await;
    let _peer = alertmanager(&dir, port, &format!("http://{}", tocsin.addr), &other.uri());
    let silence = until("the silence upstream", || async {
        amtool_silences(&am, false).await?.into_iter().next()
    })
    .await;
    assert_eq!(silence["createdBy"], "bob");
    tocsin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_incident_per_group_and_its_ack_silences_the_group() {
    let dir = common::daemon_dir("upstream-group", "");
    let port = free_port();
    let am = format!("http://127.0.0.1:{port}");
    let tocsin = tocsin_with(&dir, &am, true).await;
    let other = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&other)
        .await;
    let _peer = alertmanager_grouping(
        &dir,
        port,
        &format!("http://{}", tocsin.addr),
        &other.uri(),
        "service",
    );
    let http = reqwest::Client::new();
    let starts = rfc3339(std::time::SystemTime::now());
    let later = rfc3339(std::time::SystemTime::now() + Duration::from_secs(3600));
    let two = |ends: &str, which: &[&str]| {
        let all = [("ApiErrors", "api-1"), ("ApiLatency", "api-2")];
        Value::Array(
            all.iter()
                .filter(|(n, _)| which.contains(n))
                .map(|(name, instance)| json!({
                    "labels": { "alertname": name, "service": "api", "instance": instance, "severity": "critical" },
                    "annotations": { "team": "api" },
                    "startsAt": starts, "endsAt": ends,
                }))
                .collect(),
        )
    };
    until("alertmanager to take both alerts", || async {
        let r = http
            .post(format!("{am}/api/v2/alerts"))
            .json(&two(&later, &["ApiErrors", "ApiLatency"]))
            .send()
            .await;
        r.is_ok_and(|r| r.status().is_success()).then_some(())
    })
    .await;
    let url = |p: &str| format!("http://{}{p}", tocsin.addr);
    let incident = until("one incident for the group, with both alerts", || async {
        let body: Value = http
            .get(url("/api/v1/alerts"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let alerts = body["alerts"].as_array()?.clone();
        (alerts.len() == 1
            && alerts[0]["annotations"]["alerts"]
                .as_str()?
                .starts_with("2 firing"))
        .then(|| alerts[0].clone())
    })
    .await;
    assert_eq!(incident["labels"], json!({ "service": "api" }));
    assert_eq!(incident["rule"], r#"{service="api"}"#);
    assert_eq!(incident["state"], "firing");
    assert_eq!(
        incident["annotations"]["team"], "api",
        "the annotations they share"
    );

    let r = http
        .post(url("/api/v1/alerts/1/ack"))
        .json(&json!({ "actor": "alice" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let silence = until("the group's silence upstream", || async {
        amtool_silences(&am, false).await?.into_iter().next()
    })
    .await;
    assert_eq!(
        silence["matchers"],
        json!([{ "name": "service", "value": "api", "isRegex": false, "isEqual": true }])
    );
    until("alertmanager to mute both alerts", || async {
        let alerts: Value = http
            .get(format!("{am}/api/v2/alerts"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let muted = alerts
            .as_array()?
            .iter()
            .filter(|a| a["status"]["state"] == "suppressed")
            .count();
        (muted == 2).then_some(())
    })
    .await;

    // One alert of the group resolves: the incident stands (Alertmanager still
    // holds the other). Both resolve: the watch resolves it and the silence goes.
    let now = rfc3339(std::time::SystemTime::now());
    http.post(format!("{am}/api/v2/alerts"))
        .json(&two(&now, &["ApiErrors"]))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let body: Value = http
        .get(url("/api/v1/alerts/1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["state"], "acknowledged", "the group still fires");
    let now = rfc3339(std::time::SystemTime::now());
    http.post(format!("{am}/api/v2/alerts"))
        .json(&two(&now, &["ApiLatency"]))
        .send()
        .await
        .unwrap();
    until("the group incident to resolve", || async {
        let body: Value = http
            .get(url("/api/v1/alerts/1"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (body["state"] == "resolved").then_some(())
    })
    .await;
    until("the silence to be expired upstream", || async {
        amtool_silences(&am, false).await?.is_empty().then_some(())
    })
    .await;
    tocsin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_that_expires_expires_the_silence() {
    // tocsin's time starts at the real now (Alertmanager keeps real time) and is
    // then moved by hand past the ack's timeout.
    let clock = ManualClock::new(real_now());
    let ack_timeout = Duration::from_secs(1800);
    let s = Setup::started(
        "upstream-ack-timeout",
        Arc::new(clock.clone()),
        |config, upstream| {
            upstream.watch_interval = Duration::from_secs(600);
            let policy = config.routing.policies.get_mut("default").unwrap();
            policy.ack_timeout = Some(ack_timeout);
        },
    )
    .await;
    s.act_as("carol", "ack", "looking").await;
    let acked_at = clock.now();
    s.tocsin.daemon.caught_up().await;
    let silence = s.silence().await;
    assert_eq!(silence["createdBy"], "carol");
    let id = silence["id"].as_str().unwrap().to_string();

    // Nobody takes the ack back; its timeout passes.
    s.tocsin
        .daemon
        .run_until(&clock, acked_at + ack_timeout + Duration::from_secs(1))
        .await;
    let expired = s.expired().await;
    assert!(
        expired.iter().any(|e| e["id"] == id.as_str()),
        "{expired:#?}"
    );
    let timeline = s.timeline().await;
    assert!(
        timeline
            .iter()
            .any(|r| r.starts_with("notified alertmanager:main: ack expired")
                && r.ends_with(&format!("silence {id} expired"))),
        "{timeline:#?}"
    );
    s.tocsin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_prometheus_posts_to_tocsin_is_silenced_in_its_alertmanager() {
    // Prometheus sends to tocsin and to the Alertmanager alike; tocsin knows the
    // alert is that Alertmanager's by its generatorURL.
    let dir = common::daemon_dir("upstream-generator", "");
    let port = free_port();
    let am = format!("http://127.0.0.1:{port}");
    let mut config = common::test_config(&dir);
    let mut upstream = upstream_settings(&am, false);
    upstream.generator_urls = vec!["http://prometheus:9090/".into()];
    config.channels.alertmanagers = vec![upstream];
    let tocsin = start(config, Arc::new(SystemClock)).await.unwrap();
    let other = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&other)
        .await;
    let _peer = alertmanager_without_tocsin(&dir, port, &other.uri());
    let http = reqwest::Client::new();
    let starts = rfc3339(std::time::SystemTime::now());
    let firing = alert(
        &starts,
        &rfc3339(std::time::SystemTime::now() + Duration::from_secs(3600)),
    );
    let prometheus_sends = |body: Value| {
        let http = http.clone();
        let (am, tocsin) = (am.clone(), format!("http://{}", tocsin.addr));
        async move {
            for to in [am, tocsin] {
                let r = http
                    .post(format!("{to}/api/v2/alerts"))
                    .json(&body)
                    .send()
                    .await;
                if !r.is_ok_and(|r| r.status().is_success()) {
                    return None;
                }
            }
            Some(())
        }
    };
    until("alertmanager and tocsin to take the alert", || {
        prometheus_sends(firing.clone())
    })
    .await;
    until("the other receiver to be told", || async {
        (!other.received_requests().await?.is_empty()).then_some(())
    })
    .await;

    let r = http
        .post(format!("http://{}/api/v1/alerts/1/ack", tocsin.addr))
        .json(&json!({ "actor": "dave", "note": "on it" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let silence = until("the silence upstream", || async {
        amtool_silences(&am, false).await?.into_iter().next()
    })
    .await;
    assert_eq!(
        (silence["createdBy"].clone(), silence["comment"].clone()),
        (json!("dave"), json!("on it (tocsin #1)"))
    );
    let id = silence["id"].as_str().unwrap().to_string();
    until("alertmanager to mark the alert silenced", || async {
        let alerts: Value = http
            .get(format!("{am}/api/v2/alerts"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (alerts[0]["status"]["silencedBy"] == json!([id])).then_some(())
    })
    .await;

    // Prometheus sends the resolve to both: tocsin hears it itself and expires
    // the silence.
    let resolved = alert(&starts, &rfc3339(std::time::SystemTime::now()));
    until("the resolve to be taken", || {
        prometheus_sends(resolved.clone())
    })
    .await;
    until("the silence to be expired upstream", || async {
        amtool_silences(&am, false).await?.is_empty().then_some(())
    })
    .await;
    let expired = amtool_silences(&am, true).await.unwrap();
    assert!(
        expired.iter().any(|e| e["id"] == id.as_str()),
        "{expired:#?}"
    );
    tocsin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_that_outlasts_max_silence_keeps_its_silence() {
    // tocsin's time starts at the real now and is then moved by hand.
    let clock = ManualClock::new(real_now());
    let max_silence = Duration::from_secs(600);
    let s = Setup::started("upstream-renew", Arc::new(clock.clone()), |_, upstream| {
        upstream.max_silence = max_silence;
        upstream.watch_interval = Duration::from_secs(60);
    })
    .await;
    s.act_as("erin", "ack", "a long one").await;
    let acked_at = clock.now();
    s.tocsin.daemon.caught_up().await;
    let ends_at = |s: &Value| {
        let t = chrono::DateTime::parse_from_rfc3339(s["endsAt"].as_str().unwrap()).unwrap();
        Timestamp(t.timestamp_millis())
    };
    let first = s.silence().await;
    assert!(ends_at(&first) <= acked_at + max_silence, "{first:#?}");

    // The alert still fires upstream and the ack stands past half of max_silence:
    // the watch renews the silence in place, so it outlasts max_silence.
    s.tocsin
        .daemon
        .run_until(&clock, acked_at + Duration::from_secs(420))
        .await;
    let renewed = until("the silence renewed", || async {
        let silence = amtool_silences(&s.am, false).await?.into_iter().next()?;
        (ends_at(&silence) > acked_at + max_silence).then_some(silence)
    })
    .await;
    assert_eq!(renewed["id"], first["id"], "the same silence");
    assert_eq!(renewed["comment"], "a long one (tocsin #1)");
    let id = first["id"].as_str().unwrap();
    let timeline = s.timeline().await;
    assert!(
        timeline
            .iter()
            .any(|r| r
                == &format!("notified alertmanager:main: acknowledged: silence {id} extended")),
        "{timeline:#?}"
    );
    s.tocsin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_that_cannot_be_renewed_is_owed_once() {
    // An Alertmanager that answers reads but cannot make silences (HTTP 500):
    // fault injection the real one cannot do, so a fake stands in for it.
    let fake = MockServer::start().await;
    let dir = common::daemon_dir("upstream-renew-failing", "");
    let mut config = common::test_config(&dir);
    let mut upstream = upstream_settings(&fake.uri(), false);
    upstream.max_silence = Duration::from_secs(3600);
    upstream.watch_interval = Duration::from_secs(60);
    config.channels.alertmanagers = vec![upstream];
    let clock = ManualClock::new(Timestamp::from_secs(1_800_000_000));
    let tocsin = start(config, Arc::new(clock.clone())).await.unwrap();
    let http = reqwest::Client::new();
    let url = |p: &str| format!("http://{}{p}", tocsin.addr);
    let labels = json!({ "alertname": "DiskFull", "instance": "db1:9100" });
    let hook = json!({
        "version": "4", "status": "firing", "receiver": "tocsin", "groupKey": "{}:{alertname=\"DiskFull\"}",
        "groupLabels": { "alertname": "DiskFull" }, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": fake.uri(), "truncatedAlerts": 0,
        "alerts": [{ "status": "firing", "labels": labels, "annotations": {},
            "startsAt": clock.now().to_rfc3339(), "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "", "fingerprint": "" }],
    });
    let r = http
        .post(url("/api/v1/alertmanager"))
        .json(&hook)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let listed: Value = http
        .get(url("/api/v2/alerts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fingerprint = listed[0]["fingerprint"].as_str().unwrap().to_string();
    // It still holds the alert, and tocsin's silence of it ends within the hour.
    let ends = clock.now() + Duration::from_secs(60);
    Mock::given(method("GET"))
        .and(path("/api/v2/status"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "uptime": "2020-01-01T00:00:00Z" })),
        )
        .mount(&fake)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/alerts"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([{ "fingerprint": fingerprint, "labels": labels }])),
        )
        .mount(&fake)
        .await;
    let matchers: Vec<Value> = ["alertname=DiskFull", "instance=db1:9100"]
        .iter()
        .map(|m| {
            let (name, value) = m.split_once('=').unwrap();
            json!({ "name": name, "value": value, "isRegex": false, "isEqual": true })
        })
        .collect();
    Mock::given(method("GET"))
        .and(path("/api/v2/silences"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{
            "id": "s1", "status": { "state": "active" }, "matchers": matchers,
            "createdBy": "carol", "comment": "looking (tocsin #1)",
            "startsAt": clock.now().to_rfc3339(), "endsAt": ends.to_rfc3339(),
        }])))
        .mount(&fake)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/silences"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&fake)
        .await;
    let r = http
        .post(url("/api/v1/alerts/1/ack"))
        .json(&json!({ "actor": "carol", "note": "looking" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Twenty watches, each finding the silence ending soon: still one call owed.
    tocsin
        .daemon
        .run_until(&clock, clock.now() + Duration::from_secs(20 * 60))
        .await;
    assert_eq!(tocsin.daemon.metrics().outbox_pending.get(), 1);
    tocsin.stop().await;
}
