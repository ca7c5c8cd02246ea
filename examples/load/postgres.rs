//! The PostgreSQL phases of the load harness (issue 17), on a throwaway cluster of
//! their own on 127.0.0.1 (tests/common/postgres.rs, started as the `postgres`
//! user under root, with `fsync=on` as a production server syncs its commits):
//!
//! - `stores`: the same tocsin config over redb and over PostgreSQL, beside
//!   Alertmanager, in one run: new alerts/s and re-sent alerts/s on
//!   `POST /api/v2/alerts` (100 a request, 4 connections), push → webhook and
//!   `/api/v2/alerts` → webhook latency, one crossing at a time;
//! - `failover`: three `tocsin serve` replicas over one database. Each round posts
//!   a new alert to every replica, so its page (the second escalation level) is
//!   due 2 s after the replica holding the lease took it; the holder is killed (`kill -9`) at a
//!   random point between that and 0.3 s past the due time, then restarted. It
//!   measures (the page's arrival at the webhook) − (when it was due), the time
//!   from the kill to another replica ready, and counts pages that arrived twice
//!   under one idempotency key (allowed: the receiver drops them) and alerts paged
//!   under two keys of their own (a double page; must be 0). `--kills N` (30).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{
    BENCH_RULES, PUSH_CROSSINGS, Proc, Receiver, Report, V2_CROSSINGS, Workspace,
    alertmanager_intake_config, drained, emit_rate, free_port, now_ms, post_alerts, push_crossings,
    refresh_pool, rfc3339, start_alertmanager, v2_crossings, wait_ready,
};

#[path = "../../tests/common/postgres.rs"]
#[allow(dead_code)]
mod cluster;

/// Whether Debian's PostgreSQL server is installed (the phases need it).
pub fn available() -> bool {
    std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().any(|e| e.path().join("bin/pg_ctl").exists()))
        .unwrap_or(false)
}

/// The cluster of this run, started on first use.
fn cluster() -> &'static cluster::Cluster {
    static CLUSTER: std::sync::OnceLock<cluster::Cluster> = std::sync::OnceLock::new();
    CLUSTER.get_or_init(cluster::durable)
}

/// A new, empty database and its URL.
fn database(name: &str) -> String {
    let c = cluster();
    c.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
    c.url(name)
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Backend {
    Redb,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Redb => "redb",
            Backend::Postgres => "postgres",
        }
    }
}

/// `tocsin serve` over the PostgreSQL database at `postgres`, or a fresh redb file
/// without it, its webhook at
/// `hook`, `group_wait = "0s"`, `extra` appended to its config; the load-test
/// alerts to the console (stdout is /dev/null). Ready when it returns (`ready`: `/readyz` 200, else
/// `/healthz`: a standby replica is alive but not ready).
async fn start_tocsin_over(
    ws: &Workspace,
    http: &reqwest::Client,
    name: &str,
    postgres: Option<&str>,
    hook: &str,
    extra: &str,
    ready: bool,
) -> (Proc, String) {
    let dir = ws.fresh(name);
    std::fs::write(dir.join("rules/bench.rules"), BENCH_RULES).expect("rules");
    let port = free_port();
    let storage = match postgres {
        None => format!("path = \"{}\"", dir.join("tocsin.redb").display()),
        // The URL comes from TOCSIN_DATABASE_URL, as docs/ha.md says.
        Some(_) => "backend = \"postgres\"".to_string(),
    };
    let config = format!(
        r#"[server]
listen = "127.0.0.1:{port}"

[storage]
{storage}

[rules]
paths = ["{rules}"]

[channels.console]
enabled = true

[[channels.webhook]]
name = "bench"
url = "{hook}"

[escalation]
group_wait = "0s"

[[escalation.routes]]
match = ["alertname=LoadTest"]
policy = "quiet"

[policies.default]
[[policies.default.levels]]
notify = ["webhook:bench"]

[policies.quiet]
[[policies.quiet.levels]]
notify = ["console"]
{extra}"#,
        rules = dir.join("rules").display(),
    );
    std::fs::write(dir.join("tocsin.toml"), config).expect("config");
    let p = spawn_tocsin(ws, &dir, postgres);
    let base = format!("http://127.0.0.1:{port}");
    let probe = if ready { "readyz" } else { "healthz" };
    wait_ready(
        http,
        &format!("{base}/{probe}"),
        &p,
        Duration::from_secs(30),
    )
    .await;
    (p, base)
}

/// `tocsin serve --config tocsin.toml` in `dir`, with the database URL in its
/// environment.
fn spawn_tocsin(ws: &Workspace, dir: &Path, url: Option<&str>) -> Proc {
    let log = dir.join("tocsin.log");
    let mut cmd = Command::new(&ws.tocsin);
    cmd.args(["serve", "--config", "tocsin.toml"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"));
    if let Some(url) = url {
        cmd.env("TOCSIN_DATABASE_URL", url);
    }
    Proc {
        name: "tocsin".into(),
        child: cmd.spawn().expect("run tocsin"),
        log,
        dir: dir.to_path_buf(),
    }
}

// ---------------------------------------------------------------------------------
// stores: redb, PostgreSQL and Alertmanager in one run

pub async fn stores_phase(
    ws: &Workspace,
    http: &reqwest::Client,
    receiver: &Arc<Receiver>,
    rx: &mut mpsc::UnboundedReceiver<(String, Duration)>,
    seconds: f64,
    report: &mut Report,
) {
    let hook = format!("http://127.0.0.1:{}/hook/tocsin", ws.receiver);
    let pool = refresh_pool();
    let mut databases = 0;
    let mut url_for = |backend: Backend| {
        databases += 1;
        (backend == Backend::Postgres).then(|| database(&format!("bench_{databases}")))
    };
    for backend in [Backend::Redb, Backend::Postgres] {
        let b = backend.name();
        for (phase, posting) in [("new", None), ("resent", Some(pool.clone()))] {
            let url = url_for(backend);
            let (t, base) = start_tocsin_over(
                ws,
                http,
                &format!("stores-{b}-{phase}"),
                url.as_deref(),
                &hook,
                "",
                true,
            )
            .await;
            t.reset_peak();
            let r = post_alerts(http, &base, seconds, posting, "t").await;
            emit_rate(
                report,
                &format!("stores_{b}_alerts_{phase}"),
                &r,
                "alerts/s",
            );
            report.emit(&format!("stores_{b}_peak_rss_{phase}"), t.peak_mib(), "MiB");
        }
        let url = url_for(backend);
        let (_t, base) = start_tocsin_over(
            ws,
            http,
            &format!("stores-{b}-latency"),
            url.as_deref(),
            &hook,
            "",
            true,
        )
        .await;
        let (webhook, response) = push_crossings(http, &base, &format!("s{b}"), receiver, rx).await;
        report.latencies(
            &format!("stores_{b}_push_to_webhook"),
            webhook,
            PUSH_CROSSINGS,
        );
        report.latencies(
            &format!("stores_{b}_push_response"),
            response,
            PUSH_CROSSINGS,
        );
        drained(http, &base).await;
        let v2 = v2_crossings(http, &base, &format!("s{b}v2"), receiver, rx).await;
        report.latencies(&format!("stores_{b}_v2_to_webhook"), v2, V2_CROSSINGS);
    }
    let am_config = alertmanager_intake_config(ws.receiver);
    for (phase, posting) in [("new", None), ("resent", Some(pool.clone()))] {
        let (am, base) = start_alertmanager(ws, http, &format!("stores-{phase}"), &am_config).await;
        am.reset_peak();
        let r = post_alerts(http, &base, seconds, posting, "a").await;
        emit_rate(
            report,
            &format!("stores_alertmanager_alerts_{phase}"),
            &r,
            "alerts/s",
        );
    }
    let (_am, base) = start_alertmanager(ws, http, "stores-latency", &am_config).await;
    let v2 = v2_crossings(http, &base, "sav2", receiver, rx).await;
    report.latencies("stores_alertmanager_v2_to_webhook", v2, V2_CROSSINGS);

    for phase in ["new", "resent"] {
        let (pg, redb, am) = (
            format!("stores_postgres_alerts_{phase}"),
            format!("stores_redb_alerts_{phase}"),
            format!("stores_alertmanager_alerts_{phase}"),
        );
        report.ratio(&format!("stores_{phase}_postgres_over_redb"), &pg, &redb);
        report.ratio(
            &format!("stores_{phase}_postgres_over_alertmanager"),
            &pg,
            &am,
        );
        report.ratio(
            &format!("stores_{phase}_redb_over_alertmanager"),
            &redb,
            &am,
        );
    }
    for q in ["p50", "p99"] {
        // Latencies, as the rest of the harness: the peer's over tocsin's, so a
        // ratio above 1 reads "this many times faster than the peer" (redb is the
        // peer of PostgreSQL here).
        report.ratio(
            &format!("stores_push_to_webhook_{q}_redb_over_postgres"),
            &format!("stores_redb_push_to_webhook_{q}"),
            &format!("stores_postgres_push_to_webhook_{q}"),
        );
        report.ratio(
            &format!("stores_v2_to_webhook_{q}_redb_over_postgres"),
            &format!("stores_redb_v2_to_webhook_{q}"),
            &format!("stores_postgres_v2_to_webhook_{q}"),
        );
        report.ratio(
            &format!("stores_v2_to_webhook_{q}_alertmanager_over_postgres"),
            &format!("stores_alertmanager_v2_to_webhook_{q}"),
            &format!("stores_postgres_v2_to_webhook_{q}"),
        );
        report.ratio(
            &format!("stores_v2_to_webhook_{q}_alertmanager_over_redb"),
            &format!("stores_alertmanager_v2_to_webhook_{q}"),
            &format!("stores_redb_v2_to_webhook_{q}"),
        );
    }
}

// ---------------------------------------------------------------------------------
// failover: kill -9 of the lease holder while a page is due

const REPLICAS: usize = 3;
/// When a page is due after the alert was taken: its escalation level's `after`.
const DUE_AFTER: Duration = Duration::from_secs(2);

/// What the failover's webhook heard: each idempotency key's arrivals, and per
/// alert (its `crossing` label) the keys it came under, and the first arrival.
#[derive(Default)]
struct Pages {
    by_key: HashMap<String, usize>,
    keys_of: HashMap<String, Vec<String>>,
    first: HashMap<String, Instant>,
}

async fn page_hook(State(pages): State<Arc<Mutex<Pages>>>, headers: HeaderMap, body: Bytes) {
    let at = Instant::now();
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return;
    };
    let mut p = pages.lock().unwrap();
    *p.by_key.entry(key.clone()).or_default() += 1;
    for a in v["alerts"].as_array().into_iter().flatten() {
        if let (Some("firing"), Some(id)) = (a["state"].as_str(), a["labels"]["crossing"].as_str())
        {
            let keys = p.keys_of.entry(id.to_string()).or_default();
            if !keys.contains(&key) {
                keys.push(key.clone());
            }
            p.first.entry(id.to_string()).or_insert(at);
        }
    }
}

/// Kills from the `--kills N` argument, 30 by default.
fn kills() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--kills")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(30)
}

/// The replica that holds the lease (`/readyz` 200 `ready: acting`; a standby
/// whose holder answers is ready too, but says `ready: standby`), if one does.
async fn leader(http: &reqwest::Client, bases: &[String]) -> Option<usize> {
    for (i, base) in bases.iter().enumerate() {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
            && r.text().await.is_ok_and(|t| t.starts_with("ready: acting"))
        {
            return Some(i);
        }
    }
    None
}

/// Waits (at most 30 s) until a replica holds the lease; which, and when.
async fn await_leader(http: &reqwest::Client, bases: &[String]) -> (usize, Instant) {
    let started = Instant::now();
    loop {
        if let Some(i) = leader(http, bases).await {
            return (i, Instant::now());
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no replica took the lease in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn quantiles(report: &mut Report, name: &str, mut ms: Vec<f64>) {
    if ms.is_empty() {
        return;
    }
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    report.emit(&format!("{name}_p50"), q(0.5), "ms");
    report.emit(&format!("{name}_p90"), q(0.9), "ms");
    report.emit(&format!("{name}_max"), q(1.0), "ms");
}

pub async fn failover_phase(ws: &Workspace, http: &reqwest::Client, report: &mut Report) {
    let kills = kills();
    let pages = Arc::new(Mutex::new(Pages::default()));
    let app = Router::new()
        .route("/hook", post(page_hook))
        .with_state(pages.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the failover hook");
    let hook = format!(
        "http://{}/hook",
        listener.local_addr().expect("hook address")
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let url = database("failover");
    // The page is the second level, due DUE_AFTER after the alert fires; the first
    // goes to the console.
    let policy = format!(
        r#"
[[escalation.routes]]
match = ["alertname=Failover"]
policy = "failover"

[policies.failover]
[[policies.failover.levels]]
notify = ["console"]
[[policies.failover.levels]]
after = "{}ms"
notify = ["webhook:bench"]
"#,
        DUE_AFTER.as_millis()
    );
    let mut replicas = Vec::new();
    let mut bases = Vec::new();
    for i in 0..REPLICAS {
        // The first takes the lease; the others start as standbys.
        let (p, base) = start_tocsin_over(
            ws,
            http,
            &format!("failover-{i}"),
            Some(&url),
            &hook,
            &policy,
            i == 0,
        )
        .await;
        replicas.push(p);
        bases.push(base);
    }
    let client = tocsin::tls::http_client()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut rng = fastrand::Rng::new();
    let (mut late, mut takeover) = (Vec::new(), Vec::new());
    let mut due_at = HashMap::new();
    for round in 0..kills {
        let (holder, _) = await_leader(&client, &bases).await;
        // The sender posts to every replica, as Prometheus does; the holder takes it.
        let id = format!("failover-{round}");
        let body = json!([{
            "labels": {"alertname": "Failover", "crossing": id, "severity": "critical"},
            "startsAt": rfc3339(now_ms()),
        }]);
        let started = Instant::now();
        let taken = loop {
            let mut taken = None;
            for base in &bases {
                if let Ok(r) = client
                    .post(format!("{base}/api/v2/alerts"))
                    .json(&body)
                    .send()
                    .await
                    && r.status().is_success()
                {
                    taken = Some(Instant::now());
                }
            }
            if let Some(at) = taken {
                break at;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "round {round}: no replica took the alert"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let due = taken + DUE_AFTER;
        due_at.insert(id.clone(), due);
        // Killed at a random point from the alert's intake to just past its due time.
        let window = DUE_AFTER + Duration::from_millis(300);
        let kill_at = taken + window.mul_f64(rng.f64());
        tokio::time::sleep_until(kill_at.into()).await;
        let killed = Instant::now();
        let _ = replicas[holder].child.kill();
        let _ = replicas[holder].child.wait();
        let others: Vec<String> = bases
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != holder)
            .map(|(_, b)| b.clone())
            .collect();
        let (_, ready) = await_leader(&client, &others).await;
        takeover.push(ready.duration_since(killed).as_secs_f64() * 1e3);
        let signed = |a: Instant, b: Instant| {
            a.saturating_duration_since(b).as_secs_f64() * 1e3
                - b.saturating_duration_since(a).as_secs_f64() * 1e3
        };
        // The page, however late (bounded).
        let limit = Instant::now() + Duration::from_secs(30);
        let first = loop {
            if let Some(at) = pages.lock().unwrap().first.get(&id).copied() {
                break Some(at);
            }
            if Instant::now() > limit {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        if let Some(at) = first {
            // Negative when it left before the holder was killed after its due time.
            late.push(signed(at, due));
        }
        eprintln!(
            "failover round {round}: killed replica {holder} {:+.0} ms from the due time; page {}",
            signed(killed, due),
            first.map_or("never".to_string(), |at| format!(
                "{:+.0} ms from due",
                signed(at, due)
            ))
        );
        // The replica comes back (as a standby) before the next round.
        let dir = replicas[holder].dir.clone();
        replicas[holder] = spawn_tocsin(ws, &dir, Some(&url));
        wait_ready(
            http,
            &format!("{}/healthz", bases[holder]),
            &replicas[holder],
            Duration::from_secs(30),
        )
        .await;
    }
    // Late repeats of a page still in flight land now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let p = pages.lock().unwrap();
    let lost = due_at
        .keys()
        .filter(|id| !p.first.contains_key(*id))
        .count();
    let again: usize = p.by_key.values().map(|n| n - 1).sum();
    let two_keys = p.keys_of.values().filter(|k| k.len() > 1).count();
    report.emit("failover_kills", kills as f64, "kill -9");
    quantiles(report, "failover_page_after_due", late);
    quantiles(report, "failover_takeover", takeover);
    report.emit("failover_pages_lost", lost as f64, "pages");
    report.emit("failover_sent_again_same_key", again as f64, "messages");
    report.emit("failover_paged_under_two_keys", two_keys as f64, "alerts");
}
