//! How late tocsin keeps its deadlines on the wall clock: the `tocsin` binary as a
//! child process (`serve --config`), alerts posted as Prometheus posts them, and a
//! webhook receiver here noting when each message arrives.
//!
//! ```sh
//! cargo run --release --example lateness                          # this build
//! cargo run --release --example lateness -- --tocsin OLD/tocsin   # another build, same load
//! ```
//!
//! The load: 200 alerts with distinct names posted over 10 s, each under a policy
//! with levels at 0 s, 2 s and 5 s to one webhook (no grouping), and 100 more with
//! an `endsAt` 3 s ahead. Lateness is the arrival at the receiver minus the instant
//! the action was owed: for a level, the alert's `fired_at` (from the message) plus
//! the level's `after`; for an expiry, the `endsAt` posted. It prints `metric value
//! unit` lines: p50, p99 and max per kind, and how many messages arrived.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};

const LEVEL_ALERTS: usize = 200;
const EXPIRING_ALERTS: usize = 100;
const SPREAD: Duration = Duration::from_secs(10);
const LEVELS: [u64; 3] = [0, 2, 5];
const ENDS_AFTER: Duration = Duration::from_secs(3);

type Arrivals = Arc<Mutex<Vec<(SystemTime, Value)>>>;

struct Child_(Child);

impl Drop for Child_ {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tocsin = match args.iter().position(|a| a == "--tocsin") {
        Some(i) => args[i + 1].clone(),
        None => {
            let status = Command::new(env!("CARGO"))
                .args(["build", "--release", "--bin", "tocsin"])
                .status()
                .expect("cargo build");
            assert!(status.success());
            format!("{}/target/release/tocsin", env!("CARGO_MANIFEST_DIR"))
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(&tocsin));
}

async fn run(tocsin: &str) {
    tocsin::tls::install_crypto_provider();
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
    let hook = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = std::env::temp_dir().join(format!("tocsin-lateness-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let levels: String = LEVELS
        .iter()
        .map(|s| {
            format!("[[policies.default.levels]]\nafter = \"{s}s\"\nnotify = [\"webhook:pager\"]\n")
        })
        .collect();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = \"{}\"\n[rules]\npaths = []\n\
         [channels.console]\nenabled = false\n[[channels.webhook]]\nname = \"pager\"\n\
         url = \"http://127.0.0.1:{hook}/hook\"\n[escalation]\ngroup_wait = \"0s\"\n\
         [policies.default]\nrepeat_interval = \"1h\"\n{levels}",
        dir.join("data/tocsin.redb").display()
    );
    std::fs::write(dir.join("tocsin.toml"), config).unwrap();
    let _child = Child_(
        Command::new(tocsin)
            .args(["serve", "--config"])
            .arg(dir.join("tocsin.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tocsin"),
    );
    let http = tocsin::tls::http_client().build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..400 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Alerts with levels, and alerts that expire, interleaved over the spread.
    let total = LEVEL_ALERTS + EXPIRING_ALERTS;
    let gap = SPREAD / total as u32;
    let mut ends: HashMap<String, SystemTime> = HashMap::new();
    for i in 0..total {
        let expiring = i % 3 == 2 && ends.len() < EXPIRING_ALERTS;
        let name = if expiring {
            format!("expiring-{i}")
        } else {
            format!("levels-{i}")
        };
        let mut alert = json!({ "labels": { "alertname": name, "severity": "critical" } });
        if expiring {
            let end = SystemTime::now() + ENDS_AFTER;
            alert["endsAt"] = json!(rfc3339(end));
            ends.insert(name.clone(), end);
        }
        let r = http
            .post(format!("{base}/api/v2/alerts"))
            .json(&json!([alert]))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        tokio::time::sleep(gap).await;
    }
    // Every deadline above has come, with room for a 15 s tick to catch up.
    tokio::time::sleep(Duration::from_secs(*LEVELS.last().unwrap() + 20)).await;

    let mut late: HashMap<String, Vec<i64>> = HashMap::new();
    for (arrived, body) in arrivals.lock().unwrap().iter() {
        let reason = body["reason"].as_str().unwrap_or("");
        let level = body["level"].as_u64().unwrap_or(0);
        for a in body["alerts"].as_array().into_iter().flatten() {
            let name = a["labels"]["alertname"].as_str().unwrap_or("");
            let owed = match (reason, ends.get(name)) {
                ("resolved", Some(end)) => Some(("expiry".to_string(), ms(*end))),
                ("firing", None) if level >= 1 => {
                    // RFC 3339 since the payload was documented; epoch
                    // milliseconds from builds before it.
                    let fired = a["fired_at"].as_i64().unwrap_or_else(|| {
                        a["fired_at"]
                            .as_str()
                            .and_then(|t| humantime::parse_rfc3339(t).ok())
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                            .map_or(0, |d| d.as_millis() as i64)
                    });
                    let after = LEVELS[(level - 1) as usize] as i64 * 1000;
                    Some((format!("level{level}"), fired + after))
                }
                _ => None,
            };
            if let Some((kind, owed)) = owed {
                late.entry(kind).or_default().push(ms(*arrived) - owed);
            }
        }
    }
    let mut kinds: Vec<_> = late.into_iter().collect();
    kinds.sort();
    for (kind, mut v) in kinds {
        v.sort_unstable();
        println!("lateness_{kind}_count {} messages", v.len());
        println!("lateness_{kind}_p50 {} ms", percentile(&v, 0.50));
        println!("lateness_{kind}_p99 {} ms", percentile(&v, 0.99));
        println!("lateness_{kind}_max {} ms", v.last().unwrap());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
