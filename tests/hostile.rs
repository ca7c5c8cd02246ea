//! Hostile and careless input against the real daemon: each test is one of the ten
//! findings of issue 14, done as the outsider (or the careless user) did it, and
//! what must hold now. The daemon runs in-process on 127.0.0.1:0, or as the real
//! binary where a real process matters (its descriptor limit, its stdout).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use tocsin::clock::{ManualClock, Timestamp};
use tocsin::config::Config;
use tocsin::server::{Running, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;

const RULES: &str = "metric unknown_api_calls gauge count\n\n\
    alert \"異常API呼び出し\" {\n  when unknown_api_calls > 0\n  severity critical\n}\n";

/// 2027-01-15T08:00:00Z, the daemon's clock.
const T0: i64 = 1_800_000_000;
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// An in-process daemon over a fresh folder, configured by `toml` (with `env` for
/// its `${VAR}`s) and pinned at [`T0`].
async fn daemon(name: &str, toml: &str, env: &[(&str, &str)]) -> (Running, Api) {
    tocsin::tls::install_crypto_provider();
    let d = common::daemon_dir(&format!("hostile-{name}"), RULES);
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // The console channel stays on, as in the embedded default: its lines show in
    // the test's output.
    let mut config =
        Config::from_str_with_env(toml, Path::new("hostile.toml"), &|n| env.get(n).cloned())
            .unwrap_or_else(|e| panic!("{e}"));
    let paths = common::test_config(&d);
    config.server.listen = paths.server.listen;
    config.storage = paths.storage;
    config.rules = paths.rules;
    let clock = ManualClock::new(Timestamp::from_secs(T0));
    let running = start(config, Arc::new(clock)).await.unwrap();
    let api = Api::new(&running);
    (running, api)
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(r: &Running) -> Api {
        Api {
            http: tocsin::tls::http_client().build().unwrap(),
            base: format!("http://{}", r.addr),
        }
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.base))
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.base))
    }

    /// A JSON body, as well-behaved clients send one.
    async fn json(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        answer(self.post(path).json(body)).await
    }

    async fn metrics(&self) -> String {
        self.get("/metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn alerts(&self) -> Vec<Value> {
        let (status, body) = answer(self.get("/api/v1/alerts")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["alerts"].as_array().unwrap().clone()
    }

    async fn silences(&self) -> Vec<Value> {
        let (status, body) = answer(self.get("/api/v1/silences")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["silences"].as_array().unwrap().clone()
    }
}

async fn answer(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let r = request.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn sample(value: f64, timestamp: Option<i64>) -> Value {
    let mut s =
        json!({ "name": "unknown_api_calls", "labels": { "host": "bot-1" }, "value": value });
    if let Some(t) = timestamp {
        s["timestamp"] = json!(t);
    }
    json!({ "samples": [s] })
}

/// The value of the metric line starting with `prefix`, 0 if there is none.
fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

// ---------------------------------------------------------------------------------
// 1. Anyone who can open TCP connections stops paging.

/// A webhook receiver on 127.0.0.1: every body it took.
async fn receiver() -> (u16, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let noted = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let noted = noted.clone();
            async move {
                noted.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, got)
}

/// `tocsin serve` as a child whose open-file limit is `files` (soft and hard), so
/// a flood can reach it: what the outsider did to a daemon at 20,000.
struct Serve {
    child: Child,
    base: String,
}

impl Serve {
    async fn start(name: &str, files: u64, hook: u16) -> Serve {
        let d = common::daemon_dir(&format!("hostile-{name}"), RULES);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Only keys the daemon had before this issue: the flood alone must do it.
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
[policies.default]
[[policies.default.levels]]
after = "0s"
notify = ["webhook:pager"]
"#,
            data = d.join("data/tocsin.redb").display(),
        );
        std::fs::write(d.join("tocsin.toml"), config).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_tocsin"));
        command
            .args(["serve", "--config"])
            .arg(d.join("tocsin.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child
        // between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                rlimit::setrlimit(rlimit::Resource::NOFILE, files, files)
            });
        }
        let serve = Serve {
            child: command.spawn().unwrap(),
            base: format!("http://127.0.0.1:{port}"),
        };
        let http = fresh_client();
        for _ in 0..400 {
            if http
                .get(format!("{}/healthz", serve.base))
                .send()
                .await
                .is_ok()
            {
                return serve;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("tocsin serve did not start");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that opens a new connection for every request, as a health checker
/// does, and gives up after 5 s.
fn fresh_client() -> reqwest::Client {
    tocsin::tls::http_client()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Opens `idle` connections that never send a byte and `slow` ones that send a
/// request's headers a byte every 200 ms, and keeps them open until dropped.
async fn flood(addr: &str, idle: usize, slow: usize) -> Vec<tokio::task::JoinHandle<()>> {
    let mut held = Vec::new();
    for i in 0..idle + slow {
        let addr = addr.to_string();
        let Ok(mut stream) = TcpStream::connect(&addr).await else {
            continue; // the backlog is full: that is the point
        };
        held.push(tokio::spawn(async move {
            if i >= idle {
                let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
                let _ = stream.write_all(head).await;
                for _ in 0..150 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if stream.write_all(b"a").await.is_err() {
                        return;
                    }
                }
            }
            // Hold it until the server closes it (or the test ends).
            let mut buf = [0u8; 64];
            let _ = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut buf)).await;
        }));
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_and_slow_connections_leaves_health_intake_and_pages_working() {
    tocsin::tls::install_crypto_provider();
    // The test process holds the flood's sockets: its own limit must allow them.
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
    let (hook, pages) = receiver().await;
    // 256 descriptors: a flood of 1,000 connections is four times that.
    let serve = Serve::start("flood", 256, hook).await;
    let addr = serve.base.trim_start_matches("http://").to_string();
    let held = flood(&addr, 800, 200).await;
    let http = fresh_client();

    for i in 0..10 {
        let r = http.get(format!("{}/healthz", serve.base)).send().await;
        assert!(
            r.as_ref().is_ok_and(|r| r.status() == StatusCode::OK),
            "/healthz #{i} during the flood: {r:?}"
        );
    }
    // A well-behaved client's intake: Prometheus posting an alert.
    let alert = json!([{ "labels": { "alertname": "DiskFull", "severity": "critical" } }]);
    let r = http
        .post(format!("{}/api/v2/alerts", serve.base))
        .json(&alert)
        .send()
        .await;
    assert!(
        r.as_ref().is_ok_and(|r| r.status() == StatusCode::OK),
        "intake during the flood: {r:?}"
    );
    // The page leaves: the channel still has descriptors to reach the webhook.
    let started = Instant::now();
    while pages.lock().unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no page reached the webhook during the flood"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        pages.lock().unwrap()[0]["alerts"][0]["labels"]["alertname"],
        "DiskFull"
    );

    // What it held: never more than its limit, the rest closed to make room.
    let text = http
        .get(format!("{}/metrics", serve.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let limit = metric(&text, "tocsin_http_connection_limit ");
    assert!((1.0..256.0).contains(&limit), "{text}");
    assert!(metric(&text, "tocsin_http_connections ") <= limit, "{text}");
    assert!(
        metric(&text, "tocsin_http_connections_shed_total{kind=\"idle\"}") >= 700.0,
        "{text}"
    );
    for h in held {
        h.abort();
    }
}

/// Waits until the server closes `stream` (a read returns 0 or fails), at most
/// `within`; false if it stayed open.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn silent_and_slow_header_connections_are_closed_and_room_is_made() {
    let (running, api) = daemon(
        "timeouts",
        "[server]\nheader_read_timeout = \"1s\"\nmax_connections = 8\n",
        &[],
    )
    .await;
    let addr = running.addr;
    // A connection that says nothing, and one that sends its headers too slowly.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let dribble = tokio::spawn(async move {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if slow.write_all(b"X").await.is_err() {
                break;
            }
        }
        slow
    });
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)).await,
        "a silent connection outlived header_read_timeout"
    );
    let mut slow = dribble.await.unwrap();
    assert!(
        closed_within(&mut slow, Duration::from_secs(2)).await,
        "a slow-header connection outlived header_read_timeout"
    );

    // Twenty idle connections against a limit of eight: the oldest make room,
    // and a client that asks at once is answered.
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let (status, _) = answer(api.get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        closed_within(&mut idle[0], Duration::from_secs(2)).await,
        "the oldest idle connection was not closed to make room"
    );
    let text = api.metrics().await;
    assert_eq!(metric(&text, "tocsin_http_connection_limit "), 8.0);
    assert!(metric(&text, "tocsin_http_connections ") <= 8.0, "{text}");
    assert!(
        metric(&text, "tocsin_http_connections_shed_total{kind=\"idle\"}") >= 12.0,
        "{text}"
    );
    running.stop().await;
}

// ---------------------------------------------------------------------------------
// 2. One sample from the future silences a rule until restart.

#[tokio::test]
async fn a_sample_from_the_future_is_refused_and_cannot_poison_its_series() {
    let (running, api) = daemon("future", "", &[]).await;
    let now_ms = T0 * 1000;
    let (status, body) = api
        .json("/api/v1/samples", &sample(0.0, Some(253_402_300_799_000)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["error"],
        "sample 0: timestamp 253402300799000 (9999-12-31T23:59:59.000Z) is more than 10m \
         ahead of tocsin's clock (2027-01-15T08:00:00.000Z); limits.future_tolerance"
    );
    assert_eq!(body["sample"], 0);
    // In microseconds by mistake: refused, saying so.
    let (status, body) = api
        .json("/api/v1/samples", &sample(0.0, Some(now_ms * 1000)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error = body["error"].as_str().unwrap();
    assert!(
        error.ends_with(&format!(
            "it looks like microseconds; tocsin reads milliseconds since the epoch \
             ({now_ms} would be 2027-01-15T08:00:00.000Z)"
        )),
        "{error}"
    );
    // The text format and Prometheus' alerts are bounded the same way.
    let text = format!(
        "unknown_api_calls{{host=\"bot-1\"}} 1 {}\n",
        now_ms * 1_000_000
    );
    let (status, body) = answer(
        api.post("/api/v1/import/prometheus")
            .header("content-type", "text/plain; version=0.0.4")
            .body(text),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("line 1: timestamp")
            && body["error"].as_str().unwrap().contains("nanoseconds"),
        "{body}"
    );
    let alert =
        json!([{ "labels": { "alertname": "Future" }, "startsAt": "9999-01-01T00:00:00Z" }]);
    let (status, body) = api.json("/api/v2/alerts", &alert).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("alert 0: startsAt 9999-01-01T00:00:00.000Z is more than 10m ahead"),
        "{body}"
    );

    // The series was not poisoned: the real sample is taken and the rule fires.
    let (status, body) = api
        .json("/api/v1/samples", &sample(3.0, Some(now_ms)))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let alerts = api.alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["state"], "firing");
    let text = api.metrics().await;
    assert_eq!(
        metric(
            &text,
            "tocsin_samples_refused_total{reason=\"future_timestamp\"}"
        ),
        3.0,
        "{text}"
    );
    running.stop().await;
}

// ---------------------------------------------------------------------------------
// 3. A Slack request can be replayed. 4. (Slack half) Anyone in Slack can
// silence everything.

fn slack_toml() -> String {
    format!(
        "[channels.slack]\nwebhook_url = \"http://127.0.0.1:9/unused\"\n\
         signing_secrets = [\"{SLACK_SECRET}\"]\n[people.alice]\nslack = \"U0000ALICE\"\n"
    )
}

fn slack_sign(ts: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SLACK_SECRET.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn slash(text: &str) -> String {
    serde_urlencoded::to_string([
        ("team_id", "T1"),
        ("channel_id", "C1"),
        ("user_id", "U0000ALICE"),
        ("command", "/tocsin"),
        ("text", text),
        ("response_url", "http://127.0.0.1:9/respond"),
    ])
    .unwrap()
}

async fn slack(api: &Api, body: &str, signature: &str) -> (StatusCode, Value) {
    answer(
        api.post("/slack/commands")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", T0.to_string())
            .header("x-slack-signature", signature)
            .body(body.to_string()),
    )
    .await
}

#[tokio::test]
async fn a_signed_slack_request_is_taken_once_however_its_signature_is_spelt() {
    let (running, api) = daemon("replay", &slack_toml(), &[]).await;
    let body = slash("silence host=bot-1 1h maintenance");
    let mac = slack_sign(T0, &body);
    let (status, reply) = slack(&api, &body, &format!("v0={mac}")).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["response_type"], "in_channel");
    for copy in [
        format!("v0={mac}"),
        format!("v0={}", mac.to_uppercase()),
        format!(
            "v0={}{}",
            &mac[..32].to_uppercase(),
            &mac[32..].to_lowercase()
        ),
    ] {
        let (status, reply) = slack(&api, &body, &copy).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{copy}: {reply}");
        assert_eq!(
            reply["error"],
            "slack request refused: request was already received once"
        );
    }
    assert_eq!(
        api.silences().await.len(),
        1,
        "one signed request, one silence"
    );
    running.stop().await;
}

// ---------------------------------------------------------------------------------
// 4. Silences that match every alert, and silences for ten years.

#[tokio::test]
async fn a_silence_of_every_alert_needs_force_and_every_silence_has_a_bound() {
    let (running, api) = daemon("silences", &slack_toml(), &[]).await;
    let all = |op: &str, value: &str| {
        json!({ "matchers": [{ "name": "alertname", "op": op, "value": value }],
                "duration": "1h", "comment": "careless" })
    };
    for (op, value) in [("=~", ".+"), ("!=", ""), ("=~", "(?s).+|x")] {
        let (status, body) = api.json("/api/v1/silences", &all(op, value)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{op}{value}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("matches every alert: it would silence all paging"),
            "{body}"
        );
    }
    // Every host's alerts but only where there is a host: not everything.
    let hosts =
        json!({ "matchers": [{ "name": "host", "op": "=~", "value": ".+" }], "duration": "1h" });
    assert_eq!(
        api.json("/api/v1/silences", &hosts).await.0,
        StatusCode::CREATED
    );
    let decade =
        json!({ "matchers": [{ "name": "host", "value": "bot-1" }], "duration": "87600h" });
    let (status, body) = api.json("/api/v1/silences", &decade).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"],
        "a silence may last at most 30days (limits.max_silence_duration); this one lasts \
         3650.0 days"
    );
    // From Slack, never, whoever asks.
    let body = slash("silence alertname=~\".+\" 1h everything");
    let (status, reply) = slack(&api, &body, &format!("v0={}", slack_sign(T0, &body))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["response_type"], "ephemeral", "{reply}");
    assert!(
        reply["text"]
            .as_str()
            .unwrap()
            .starts_with("Silence refused: alertname=~\".+\" matches every alert"),
        "{reply}"
    );
    // Through Alertmanager's API (amtool): bounded the same way, and never forced.
    let am = |value: &str, ends: &str| {
        json!({ "matchers": [{ "name": "alertname", "value": value, "isRegex": true }],
                "startsAt": "2027-01-15T08:00:00Z", "endsAt": ends,
                "createdBy": "amtool", "comment": "careless" })
    };
    let (status, body) = api
        .json("/api/v2/silences", &am(".+", "2027-01-15T09:00:00Z"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("matches every alert"), "{body}");
    let (status, body) = api
        .json("/api/v2/silences", &am("Disk.*", "2037-01-15T08:00:00Z"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.to_string().contains("limits.max_silence_duration"),
        "{body}"
    );
    assert_eq!(api.silences().await.len(), 1, "only the host silence");
    // Through the API, asked for in so many words: taken.
    let mut forced = all("=~", ".+");
    forced["force"] = json!(true);
    let (status, body) = api.json("/api/v1/silences", &forced).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    running.stop().await;
}

// ---------------------------------------------------------------------------------
// 5. Memory bounded by counts, not bytes; /api/v2/alerts without limits.

/// A Prometheus text-format target serving `body`.
async fn target(body: String) -> u16 {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let body = body.clone();
            async move { body }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

#[tokio::test]
async fn every_intake_bounds_label_and_annotation_bytes_and_names_the_field() {
    let big = "x".repeat(100_000);
    let port = target(format!("unknown_api_calls{{host=\"{big}\"}} 1\n")).await;
    let toml = format!(
        "[[scrape]]\nname = \"big\"\nurl = \"http://127.0.0.1:{port}/metrics\"\ninterval = \"1s\"\n"
    );
    let (running, api) = daemon("bytes", &toml, &[]).await;
    let value_refused = "label \"host\": value is 100000 bytes, at most 2048 \
                         (limits.max_label_value_bytes)";

    let mut pushed = sample(1.0, None);
    pushed["samples"][0]["labels"]["host"] = json!(big);
    let (status, body) = api.json("/api/v1/samples", &pushed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], format!("sample 0: {value_refused}"));

    let (status, body) = answer(
        api.post("/api/v1/import/prometheus")
            .header("content-type", "text/plain")
            .body(format!("up 1\nunknown_api_calls{{host=\"{big}\"}} 1\n")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], format!("line 2: {value_refused}"));

    let long_name = json!([{ "labels": { "alertname": "X", "n".repeat(2000): "v" } }]);
    let (status, body) = api.json("/api/v2/alerts", &long_name).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("is 2000 bytes, at most 1024 (limits.max_label_name_bytes)"),
        "{body}"
    );
    let annotated = json!([{ "labels": { "alertname": "X" },
                             "annotations": { "description": "d".repeat(200_000) } }]);
    let (status, body) = api.json("/api/v2/alerts", &annotated).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"],
        "alert 0: annotation \"description\": value is 200000 bytes, at most 16384 \
         (limits.max_annotation_value_bytes)"
    );
    let mut labels = serde_json::Map::new();
    labels.insert("alertname".into(), json!("X"));
    for i in 0..10_000 {
        labels.insert(format!("l{i}"), json!("v"));
    }
    let (status, body) = api
        .json("/api/v2/alerts", &json!([{ "labels": labels }]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "alert 0: 10001 labels, at most 32");
    let webhook = json!({ "version": "4", "status": "firing", "alerts": [{
        "status": "firing", "labels": { "alertname": "X", "host": big },
        "startsAt": "2027-01-15T07:59:00Z" }] });
    let (status, body) = api.json("/api/v1/alertmanager", &webhook).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], format!("alert 0: {value_refused}"));

    // The scrape of the same series is refused whole, and counted.
    let started = Instant::now();
    let text = loop {
        let text = api.metrics().await;
        if metric(
            &text,
            "tocsin_samples_refused_total{reason=\"label_value_bytes\"}",
        ) > 1.0
        {
            break text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the scrape was not refused: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(api.alerts().await.is_empty(), "nothing of it was taken");
    assert_eq!(
        metric(
            &text,
            "tocsin_external_alerts_refused_total{source=\"api_v2\",reason=\"label_name_bytes\"}"
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "tocsin_external_alerts_refused_total{source=\"alertmanager_webhook\",\
             reason=\"label_value_bytes\"}"
        ),
        1.0,
        "{text}"
    );
    running.stop().await;
}

// ---------------------------------------------------------------------------------
// 6. A web page the on-call person opens can mute their pager.

#[tokio::test]
async fn a_browser_cannot_be_made_to_change_state_for_another_site() {
    let (running, api) = daemon("cross-site", "", &[]).await;
    api.json("/api/v1/samples", &sample(2.0, None)).await;
    let silence =
        json!({ "matchers": [{ "name": "host", "value": "bot-1" }], "duration": "2h" }).to_string();
    // What a page can send without a preflight: text/plain, its own Origin.
    let (status, body) = answer(
        api.post("/api/v1/silences")
            .header("content-type", "text/plain")
            .header("origin", "http://evil.example")
            .body(silence.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body["error"],
        "cross-site request refused: Origin \"http://evil.example\" is not this server"
    );
    // A form post (no Origin, as older browsers send it) is still not JSON.
    let (status, body) = answer(
        api.post("/api/v1/samples")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(sample(0.0, None).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    // An ack with no body at all, marked cross-site by the browser.
    let (status, _) = answer(
        api.post("/api/v1/alerts/1/ack")
            .header("sec-fetch-site", "cross-site"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The text format from another origin.
    let (status, _) = answer(
        api.post("/api/v1/import/prometheus")
            .header("origin", "null")
            .body("unknown_api_calls{host=\"bot-1\"} 0\n"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(api.silences().await.is_empty());
    assert_eq!(api.alerts().await[0]["state"], "firing", "nothing changed");
    // The same requests from this server's own origin, as JSON, go through.
    let own = format!("http://{}", running.addr);
    let (status, body) = answer(
        api.post("/api/v1/silences")
            .header("content-type", "application/json; charset=utf-8")
            .header("origin", own)
            .body(silence),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let text = api.metrics().await;
    assert_eq!(
        metric(&text, "tocsin_cross_site_refused_total{reason=\"origin\"}"),
        3.0
    );
    running.stop().await;
}

// ---------------------------------------------------------------------------------
// 7. Reads open with tokens; every token can do everything; `bearer` refused.

#[tokio::test]
async fn tokens_have_scopes_and_reads_need_one() {
    let toml = r#"
[[tokens]]
name = "alertmanager"
token = "${AM}"
scopes = ["intake"]
[[tokens]]
name = "dashboard"
token = "${DASH}"
scopes = ["read"]
[[tokens]]
name = "ops"
token = "${OPS}"
[[tokens]]
name = "root"
token = "${ROOT}"
scopes = ["admin"]
"#;
    let env = [
        ("AM", "am-7f3a9c"),
        ("DASH", "dash-41bb0e"),
        ("OPS", "ops-c0ffee"),
        ("ROOT", "root-5e5e5e"),
    ];
    let (running, api) = daemon("tokens", toml, &env).await;
    let with = |r: reqwest::RequestBuilder, token: &str| r.header("authorization", token);
    let alert = json!([{ "labels": { "alertname": "DiskFull", "severity": "critical" } }]);
    // Alertmanager's token sends alerts, and nothing else.
    let (status, _) =
        answer(with(api.post("/api/v2/alerts"), "Bearer am-7f3a9c").json(&alert)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = answer(with(api.post("/api/v1/alerts/1/ack"), "Bearer am-7f3a9c")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["error"],
        "token \"alertmanager\" lacks the \"operate\" scope this route needs (it has: intake)"
    );
    let silence =
        json!({ "matchers": [{ "name": "alertname", "value": "DiskFull" }], "duration": "1h" });
    let (status, _) =
        answer(with(api.post("/api/v1/silences"), "Bearer am-7f3a9c").json(&silence)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = answer(with(api.get("/api/v1/alerts"), "Bearer am-7f3a9c")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Reads need a token: the alert list names who acked and their notes.
    for path in ["/api/v1/alerts", "/api/v1/alerts/1", "/api/v1/silences"] {
        let (status, _) = answer(api.get(path)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        let (status, _) = answer(with(api.get(path), "Bearer dash-41bb0e")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (status, _) = answer(with(api.post("/api/v1/alerts/1/ack"), "Bearer dash-41bb0e")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "read cannot ack");
    // Health and metrics stay open (server.open's default).
    assert_eq!(answer(api.get("/healthz")).await.0, StatusCode::OK);
    assert_eq!(
        api.get("/metrics").send().await.unwrap().status(),
        StatusCode::OK
    );
    // The scheme in any case, as HTTP has it.
    let (status, body) = answer(with(api.post("/api/v1/alerts/1/ack"), "bearer ops-c0ffee")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ack"]["actor"], "ops");
    // Forcing a silence of everything is admin's alone.
    let everything = json!({ "matchers": [{ "name": "alertname", "op": "=~", "value": ".+" }],
                             "duration": "1h", "force": true });
    let (status, body) =
        answer(with(api.post("/api/v1/silences"), "Bearer ops-c0ffee").json(&everything)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["error"],
        "\"force\" needs a token with the admin scope"
    );
    let (status, _) =
        answer(with(api.post("/api/v1/silences"), "BEARER root-5e5e5e").json(&everything)).await;
    assert_eq!(status, StatusCode::CREATED);
    running.stop().await;
}

#[tokio::test]
async fn health_and_metrics_can_be_closed_too() {
    let toml = "[server]\nopen = []\n[[tokens]]\nname = \"prom\"\ntoken = \"p-9d9d9d\"\n\
                scopes = [\"read\"]\n";
    let (running, api) = daemon("closed", toml, &[]).await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            api.get(path).send().await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
        let r = api.get(path).bearer_auth("p-9d9d9d").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    running.stop().await;
}

// ---------------------------------------------------------------------------------
// 8. Rule names and summaries reach the terminal raw.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_reach_neither_the_console_nor_the_cli() {
    tocsin::tls::install_crypto_provider();
    let d = common::daemon_dir("hostile-console", RULES);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        d.join("tocsin.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = \"{}\"\n[rules]\npaths = []\n",
            d.join("data/tocsin.redb").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["serve", "--config"])
        .arg(d.join("tocsin.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let base = format!("http://127.0.0.1:{port}");
    let http = fresh_client();
    let started = Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "no start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let alert = json!([{
        "labels": { "alertname": "Disk\r\nFIRING #999 Fake", "severity": "critical" },
        "annotations": { "summary": "full\u{1b}[2J\u{1b}[H" },
    }]);
    let r = http
        .post(format!("{base}/api/v2/alerts"))
        .json(&alert)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a console line");
    assert_eq!(
        line,
        "FIRING #1 Disk\\r\\nFIRING #999 Fake [critical] {} — full\\x1b[2J\\x1b[H"
    );
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "a second line was forged"
    );

    // The CLI's table: one row for the one alert, no escape byte.
    let table = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args(["alerts", "--server", &base])
            .env_remove("TOCSIN_TOKEN")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(!table.contains(['\r', '\u{1b}']), "{table:?}");
    assert!(table.contains("Disk\\r\\nFIRING #999 Fake"), "{table}");
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------------------------
// 9. The state is readable by everyone; `check` prints an expanded secret.

#[cfg(unix)]
#[tokio::test]
async fn the_state_is_private_and_check_never_shows_a_variable() {
    use std::os::unix::fs::PermissionsExt;
    let (running, api) = daemon("private", "", &[]).await;
    api.json("/api/v1/samples", &sample(1.0, None)).await;
    let file = running.daemon.config().storage.path.clone();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(file.parent().unwrap()), 0o700, "the data folder");
    assert_eq!(mode(&file), 0o600, "the state file");
    running.stop().await;

    let d = common::daemon_dir("hostile-check", RULES);
    let config = d.join("tocsin.toml");
    std::fs::write(
        &config,
        "[rules]\npaths = []\n[channels.email]\nhost = \"127.0.0.1\"\n\
         from = \"tocsin <${TOCSIN_TOKEN_CI}>\"\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["check", "--config"])
        .arg(&config)
        .env("TOCSIN_TOKEN_CI", "tk-91f0a2c7d3")
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!o.status.success(), "{said}");
    assert!(!said.contains("tk-91f0a2c7d3"), "{said}");
    assert!(said.contains("${TOCSIN_TOKEN_CI}"), "{said}");
}

// ---------------------------------------------------------------------------------
// 10. A 0-byte state file is taken as a new database.

#[tokio::test]
async fn an_empty_state_file_is_an_error_that_says_how_to_start_fresh() {
    let d = common::daemon_dir("hostile-empty", RULES);
    let config = common::test_config(&d);
    let file: PathBuf = config.storage.path.clone();
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"").unwrap();
    let clock = ManualClock::new(Timestamp::from_secs(T0));
    let refused = match start(config, Arc::new(clock)).await {
        Ok(running) => {
            running.stop().await;
            panic!("an empty state file was taken for a new database");
        }
        Err(e) => e.to_string(),
    };
    assert!(refused.contains(&file.display().to_string()), "{refused}");
    assert!(refused.contains("is empty (0 bytes)"), "{refused}");
    assert!(
        refused.contains(&format!("delete it (rm {})", file.display())),
        "{refused}"
    );
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 0, "left as it was");
}
