//! Deadlines kept by the real binary on the wall clock: `tocsin serve --config` as a
//! child process on 127.0.0.1, alerts posted as Prometheus posts them, and a webhook
//! receiver noting when each message arrives. A level `after = "2s"` arrives 2 s
//! after the first page (within 100 ms); an ack before then stops it; after ack →
//! unack → resolve nothing more says firing or unacknowledged; an `endsAt` and a
//! silence's end take effect within 100 ms.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};

mod common;

/// How late a timed action may be on the wall clock.
const LATE: Duration = Duration::from_millis(100);

/// One message the webhook took: when, and its JSON body.
type Arrivals = Arc<Mutex<Vec<(SystemTime, Value)>>>;

struct Daemon {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    async fn start(name: &str, hook: u16) -> Daemon {
        let d = common::daemon_dir(name, "");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // The group window is short so the ack → unack → resolve case needs no
        // half-minute wait; the levels are the issue's: at once, then 2 s.
        let config = format!(
            r#"[server]
listen = "127.0.0.1:{port}"
[storage]
path = "{data}"
[rules]
paths = []
[channels.console]
enabled = false
[[channels.webhook]]
name = "pager"
url = "http://127.0.0.1:{hook}/hook"
[escalation]
group_wait = "3s"
[policies.default]
[[policies.default.levels]]
after = "0s"
notify = ["webhook:pager"]
[[policies.default.levels]]
after = "2s"
notify = ["webhook:pager"]
"#,
            data = d.join("data/tocsin.redb").display(),
        );
        std::fs::write(d.join("tocsin.toml"), config).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args(["serve", "--config"])
            .arg(d.join("tocsin.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let daemon = Daemon {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: tocsin::tls::http_client().build().unwrap(),
        };
        for _ in 0..400 {
            if daemon.get("/healthz").await.is_ok() {
                return daemon;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("tocsin serve did not start");
    }

    async fn get(&self, path: &str) -> Result<Value, reqwest::Error> {
        let r = self.http.get(format!("{}{path}", self.base)).send().await?;
        Ok(r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    /// Posts one alert as Prometheus does (`POST /api/v2/alerts`).
    async fn fire(&self, name: &str, ends_at: Option<SystemTime>) {
        let mut alert = json!({
            "labels": { "alertname": name, "severity": "critical" },
            "annotations": { "summary": name },
        });
        if let Some(t) = ends_at {
            alert["endsAt"] = json!(rfc3339(t));
        }
        self.post("/api/v2/alerts", json!([alert])).await;
    }

    /// The incident number of the alert named `name`.
    async fn incident(&self, name: &str) -> u64 {
        let body = self
            .get(&format!("/api/v1/alerts?label=alertname={name}"))
            .await
            .unwrap();
        body["alerts"][0]["id"].as_u64().expect("the alert exists")
    }

    async fn state(&self, name: &str) -> String {
        let body = self
            .get(&format!("/api/v1/alerts?label=alertname={name}"))
            .await
            .unwrap();
        body["alerts"][0]["state"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// A webhook receiver on 127.0.0.1 that notes when each message arrives.
async fn receiver() -> (u16, Arrivals) {
    let arrivals: Arrivals = Arc::default();
    let noted = arrivals.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |Json(body): Json<Value>| {
            let noted = noted.clone();
            async move {
                noted.lock().unwrap().push((SystemTime::now(), body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, arrivals)
}

/// The messages about alert `name`: (arrival, reason, level).
fn about(arrivals: &Arrivals, name: &str) -> Vec<(SystemTime, String, u64)> {
    arrivals
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, b)| {
            b["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["labels"]["alertname"] == name)
        })
        .map(|(t, b)| {
            (
                *t,
                b["reason"].as_str().unwrap().to_string(),
                b["level"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Waits (bounded) until `name` has a message with `reason` at `level`.
async fn arrival(arrivals: &Arrivals, name: &str, reason: &str, level: u64) -> SystemTime {
    for _ in 0..200 {
        let found = about(arrivals, name)
            .into_iter()
            .find(|(_, r, l)| r == reason && *l == level);
        if let Some((t, ..)) = found {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "{name}: no {reason} level {level}; got {:?}",
        about(arrivals, name)
    );
}

fn between(t: SystemTime, from: SystemTime, late: Duration) -> bool {
    t >= from && t <= from + late
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_deadline_is_kept_to_within_100_ms() {
    tocsin::tls::install_crypto_provider();
    let (hook, arrivals) = receiver().await;
    let daemon = Daemon::start("deadlines", hook).await;

    // A: level 2 two seconds after the first page.
    let posted = SystemTime::now();
    daemon.fire("LevelA", None).await;
    let first = arrival(&arrivals, "LevelA", "firing", 1).await;
    let second = arrival(&arrivals, "LevelA", "firing", 2).await;
    let gap = second.duration_since(first).unwrap();
    assert!(
        second >= posted + Duration::from_secs(2) && gap <= Duration::from_secs(2) + LATE,
        "level 2 came {gap:?} after level 1"
    );
    eprintln!("level 2 after level 1: {gap:?}");

    // B: an ack before the level's time stops it.
    daemon.fire("AckedB", None).await;
    arrival(&arrivals, "AckedB", "firing", 1).await;
    let id = daemon.incident("AckedB").await;
    daemon
        .post(
            &format!("/api/v1/alerts/{id}/ack"),
            json!({"actor": "sato"}),
        )
        .await;

    // C: ack → unack → resolve within the group window; the unacknowledged page
    // waits for the window, and must not leave after the resolve.
    daemon.fire("FlipC", None).await;
    arrival(&arrivals, "FlipC", "firing", 1).await;
    let id = daemon.incident("FlipC").await;
    for action in ["ack", "unack", "resolve"] {
        daemon
            .post(
                &format!("/api/v1/alerts/{id}/{action}"),
                json!({"actor": "sato"}),
            )
            .await;
    }
    let resolved = SystemTime::now();

    // D: an endsAt 1.5 s ahead resolves it then.
    let ends = SystemTime::now() + Duration::from_millis(1500);
    daemon.fire("ExpiresD", Some(ends)).await;
    let expired = arrival(&arrivals, "ExpiresD", "resolved", 0).await;
    assert!(
        between(expired, ends, LATE),
        "endsAt {} but resolved at {}",
        rfc3339(ends),
        rfc3339(expired)
    );

    // E: a silence from +0.5 s to +1.5 s; it suppresses at its start, and when it
    // ends the escalation resumes at once (past the group window).
    daemon.fire("SilencedE", None).await;
    arrival(&arrivals, "SilencedE", "firing", 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let starts = SystemTime::now() + Duration::from_millis(500);
    let ends = starts + Duration::from_secs(1);
    daemon
        .post(
            "/api/v1/silences",
            json!({
                "matchers": [{"name": "alertname", "op": "=", "value": "SilencedE"}],
                "starts_at": rfc3339(starts), "ends_at": rfc3339(ends), "comment": "edges",
            }),
        )
        .await;
    let wait = starts + LATE;
    tokio::time::sleep(wait.duration_since(SystemTime::now()).unwrap()).await;
    assert_eq!(
        daemon.state("SilencedE").await,
        "suppressed",
        "at its start"
    );
    let resumed = arrival(&arrivals, "SilencedE", "silence_ended", 1).await;
    assert!(
        between(resumed, ends, LATE),
        "silence ended {} but escalation resumed at {}",
        rfc3339(ends),
        rfc3339(resumed)
    );

    // Long enough for every level and window above to have come due.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let b: Vec<u64> = about(&arrivals, "AckedB")
        .into_iter()
        .filter(|(_, r, _)| r == "firing")
        .map(|(.., l)| l)
        .collect();
    assert_eq!(b, [1], "the ack stopped level 2");
    let c_after: Vec<(String, u64)> = about(&arrivals, "FlipC")
        .into_iter()
        .filter(|(t, ..)| *t > resolved)
        .map(|(_, r, l)| (r, l))
        .filter(|(r, _)| r != "resolved")
        .collect();
    assert!(
        c_after.is_empty(),
        "after the resolve, FlipC still got {c_after:?}"
    );
}
