//! The load harness: tocsin against the real Alertmanager and Prometheus, on this
//! machine, in one run, over 127.0.0.1. Every loop is bounded and stops by itself.
//!
//! ```sh
//! cargo run --release --example load                 # everything, about 8 minutes
//! cargo run --release --example load -- --quick      # no default-interval pipeline, short phases
//! cargo run --release --example load -- --out docs/bench --seconds 10
//! cargo run --release --example load -- --tocsin /path/to/older/tocsin   # before/after
//! ```
//!
//! It builds and runs the `tocsin` binary (`serve --config`, as shipped), Debian's
//! `prometheus-alertmanager` and `prometheus` as child processes, each phase on
//! fresh processes and data folders. The harness is their client, their webhook
//! receiver and their scrape target. It prints `metric value unit` lines, ratios
//! tocsin/peer for what both did in this run, and writes `load.csv` (every latency
//! sample) and `latency.png` to `--out` (default `target/bench`).
//!
//! Phases:
//! - ingestion: samples/s accepted by `POST /api/v1/samples` (JSON) and
//!   `POST /api/v1/import/prometheus` (text), 1,000 samples a request, 4 connections,
//!   10,000 series; once for a metric no rule reads, once for one a rule reads (every
//!   push then evaluates the rule set);
//! - `POST /api/v2/alerts`, batches of 100 alerts with distinct labels, 4 connections,
//!   tocsin and Alertmanager: new alerts, then re-sent ones (as Prometheus re-sends);
//! - detection latency: the push of a sample that crosses a threshold (no `for`) to
//!   the webhook at the harness, one crossing at a time;
//! - `POST /api/v2/alerts` to the webhook, tocsin and Alertmanager (`group_wait: 0s`);
//! - metric change at a scrape target to the webhook: Prometheus + Alertmanager with
//!   their defaults (scrape 1m, evaluation 1m, group_wait 30s), with 1 s intervals and
//!   with 100 ms intervals (their config accepts even less; 100 ms is where we
//!   stopped), beside tocsin scraping the same target at 1 s and at its default 15 s;
//! - flood (`--only flood`): `/healthz` and `POST /api/v2/alerts` → webhook before
//!   and during a flood of 15,000 idle and slow-header connections, kept up for the
//!   whole phase (`examples/load/flood.rs`);
//! - storm (`--only storm`): 100,000 new alerts, store on disk and on tmpfs, then
//!   the store's size and a restart on it;
//! - prune (`--only prune`): new-alert intake before and during a retention sweep
//!   of 100,000 resolved alerts (`examples/load/prune.rs`);
//! - stores (`--only stores`) and failover (`--only failover`, `--kills N`): tocsin
//!   over PostgreSQL beside redb and Alertmanager, and `kill -9` of the replica
//!   holding the lease while a page is due (`examples/load/postgres.rs`);
//! - peak RSS of every process in every phase (`VmHWM`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::mpsc;

#[path = "../benches/common/plot.rs"]
#[allow(dead_code)]
mod plot;

#[path = "load/flood.rs"]
mod flood;

#[path = "load/prune.rs"]
mod prune;

#[path = "load/postgres.rs"]
mod postgres;

const SAMPLES_PER_REQUEST: usize = 1_000;
const INGEST_SERIES: usize = 10_000;
const ALERTS_PER_REQUEST: usize = 100;
const CONNECTIONS: usize = 4;
/// Distinct alerts re-sent in the refresh phase (Prometheus re-sends every firing
/// alert each evaluation).
const REFRESH_POOL: usize = 10_000;
const PUSH_CROSSINGS: usize = 250;
const V2_CROSSINGS: usize = 200;

/// Command-line options.
#[derive(Clone)]
struct Options {
    quick: bool,
    out: PathBuf,
    /// Length of each throughput phase.
    seconds: f64,
    /// Run only these phases (`ingest`, `alerts`, `storm`, `prune`, `latency`,
    /// `flood`, `stores`, `failover`, `pipelines`); all if empty.
    only: Vec<String>,
    /// Measure this `tocsin` binary (an older build, for a before/after in one
    /// session) instead of building this one.
    tocsin: Option<PathBuf>,
}

impl Options {
    fn runs(&self, phase: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == phase)
    }
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let quick = args.iter().any(|a| a == "--quick");
    Options {
        quick,
        out: value("--out").map_or_else(|| PathBuf::from("target/bench"), PathBuf::from),
        seconds: value("--seconds")
            .and_then(|s| s.parse().ok())
            .unwrap_or(if quick { 3.0 } else { 8.0 }),
        only: value("--only")
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        tocsin: value("--tocsin").map(PathBuf::from),
    }
}

/// Everything printed, also kept for the summary and the CSV.
#[derive(Default)]
struct Report {
    lines: Vec<(String, f64, String)>,
    latencies: Vec<(String, Vec<f64>)>,
}

impl Report {
    fn emit(&mut self, metric: &str, value: f64, unit: &str) {
        println!("{metric} {value:.3} {unit}");
        self.lines.push((metric.into(), value, unit.into()));
    }

    fn get(&self, metric: &str) -> Option<f64> {
        self.lines
            .iter()
            .find(|(m, ..)| m == metric)
            .map(|(_, v, _)| *v)
    }

    /// `ratio_<what> = tocsin / peer` (or peer / tocsin for latencies and memory,
    /// so every ratio reads "how many times better tocsin is").
    fn ratio(&mut self, name: &str, numerator: &str, denominator: &str) {
        if let (Some(a), Some(b)) = (self.get(numerator), self.get(denominator))
            && b > 0.0
        {
            self.emit(&format!("ratio_{name}"), a / b, "x");
        }
    }

    fn latencies(&mut self, name: &str, ms: Vec<f64>, expected: usize) {
        if ms.is_empty() {
            self.emit(&format!("{name}_delivered"), 0.0, "of_expected");
            return;
        }
        let mut sorted = ms.clone();
        sorted.sort_by(f64::total_cmp);
        let q = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
        self.emit(&format!("{name}_p50"), q(0.5), "ms");
        self.emit(&format!("{name}_p99"), q(0.99), "ms");
        self.emit(&format!("{name}_max"), q(1.0), "ms");
        self.emit(
            &format!("{name}_delivered"),
            ms.len() as f64 / expected as f64,
            "of_expected",
        );
        self.latencies.push((name.to_string(), ms));
    }
}

// ---------------------------------------------------------------------------------
// Child processes

/// A child process, killed when dropped however the harness ends.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    dir: PathBuf,
}

impl Proc {
    fn spawn(name: &str, program: &Path, args: &[String], dir: &Path) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(program)
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
        Proc {
            name: name.to_string(),
            child,
            log,
            dir: dir.to_path_buf(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts a new peak: the kernel's high-water mark drops to the current RSS.
    fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5");
    }

    /// The peak resident set since the last reset, in MiB.
    fn peak_mib(&self) -> f64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Polls `url` until it answers 2xx, for at most `limit`.
async fn wait_ready(http: &reqwest::Client, url: &str, what: &Proc, limit: Duration) {
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        if started.elapsed() > limit {
            let log = std::fs::read_to_string(&what.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!(
                "{} did not become ready at {url}; its log ends:\n{}",
                what.name,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Where this run keeps its processes' folders: on disk (the temp folder), or in
/// memory (/dev/shm), which shows how much of a latency is the disk's fsync.
struct Workspace {
    root: PathBuf,
    memory_root: PathBuf,
    tocsin: PathBuf,
    receiver: u16,
    runs: AtomicU64,
}

#[derive(Clone, Copy, PartialEq)]
enum Storage {
    Disk,
    Memory,
}

impl Workspace {
    fn fresh(&self, name: &str) -> PathBuf {
        self.fresh_on(name, Storage::Disk)
    }

    fn fresh_on(&self, name: &str, storage: Storage) -> PathBuf {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let root = match storage {
            Storage::Disk => &self.root,
            Storage::Memory => &self.memory_root,
        };
        let d = root.join(format!("{n:02}-{name}"));
        std::fs::create_dir_all(d.join("rules")).expect("run folder");
        d
    }
}

impl Drop for Workspace {
    /// Removes the run's folders, unless `TOCSIN_LOAD_KEEP` is set (to look at a
    /// store after the run).
    fn drop(&mut self) {
        if std::env::var_os("TOCSIN_LOAD_KEEP").is_some() {
            eprintln!(
                "kept {} and {}",
                self.root.display(),
                self.memory_root.display()
            );
            return;
        }
        let _ = std::fs::remove_dir_all(&self.root);
        let _ = std::fs::remove_dir_all(&self.memory_root);
    }
}

/// The rules the harness's tocsin runs: the default rule set of the repository plus
/// the three the phases cross.
const BENCH_RULES: &str = r#"metric bench_level gauge
metric load_eval gauge
metric pipe_level gauge

alert "BenchLevelHigh" {
  when bench_level > 100
  severity critical
}

alert "LoadEvalHigh" {
  when load_eval > 1000000000
  severity warning
}

alert "PipeLevelHigh" {
  when pipe_level > 100
  severity critical
}
"#;

/// A tocsin child: `tocsin serve --config` with a webhook channel at the receiver,
/// `group_wait = "0s"`, the load-test alerts routed to the console (stdout is
/// /dev/null), and
/// two scrape jobs on the receiver's targets.
async fn start_tocsin(
    ws: &Workspace,
    http: &reqwest::Client,
    name: &str,
    storage: Storage,
) -> (Proc, String) {
    let dir = ws.fresh_on(name, storage);
    std::fs::write(dir.join("rules/bench.rules"), BENCH_RULES).expect("rules");
    let port = free_port();
    let repo_rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let r = ws.receiver;
    let config = format!(
        r#"[server]
listen = "127.0.0.1:{port}"

[storage]
path = "{data}"

[rules]
paths = ["{repo_rules}", "{bench_rules}"]

# The load-test alerts go here; the harness sends tocsin's stdout to /dev/null.
[channels.console]
enabled = true

[[channels.webhook]]
name = "bench"
url = "http://127.0.0.1:{r}/hook/tocsin"

[[scrape]]
name = "pull-1s"
url = "http://127.0.0.1:{r}/metrics/tocsin-1s"
interval = "1s"

[[scrape]]
name = "pull-default"
url = "http://127.0.0.1:{r}/metrics/tocsin-default"

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

[log]
level = "info"
"#,
        data = dir.join("tocsin.redb").display(),
        repo_rules = repo_rules.display(),
        bench_rules = dir.join("rules").display(),
    );
    std::fs::write(dir.join("tocsin.toml"), config).expect("config");
    let p = Proc::spawn(
        "tocsin",
        &ws.tocsin,
        &["serve".into(), "--config".into(), "tocsin.toml".into()],
        &dir,
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(http, &format!("{base}/readyz"), &p, Duration::from_secs(30)).await;
    eprintln!("{name}: tocsin pid {}", p.pid());
    (p, base)
}

/// An Alertmanager child with `config` (its receiver URL filled in).
async fn start_alertmanager(
    ws: &Workspace,
    http: &reqwest::Client,
    name: &str,
    config: &str,
) -> (Proc, String) {
    let dir = ws.fresh(name);
    std::fs::write(dir.join("am.yml"), config).expect("am config");
    let port = free_port();
    let p = Proc::spawn(
        "alertmanager",
        Path::new("prometheus-alertmanager"),
        &[
            "--config.file=am.yml".into(),
            format!("--storage.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            // No cluster: no gossip, and no wait for peers before notifying.
            "--cluster.listen-address=".into(),
        ],
        &dir,
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(
        http,
        &format!("{base}/-/ready"),
        &p,
        Duration::from_secs(30),
    )
    .await;
    (p, base)
}

/// Alertmanager for the intake phases: crossings to the webhook at once, the load-test
/// alerts to a receiver that notifies nothing (tocsin's go to its console, whose
/// output the harness discards).
fn alertmanager_intake_config(receiver: u16) -> String {
    format!(
        r#"route:
  receiver: hook
  group_by: [alertname, crossing]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 4h
  routes:
    - matchers: ['alertname="LoadTest"']
      receiver: blackhole
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:{receiver}/hook/alertmanager
        send_resolved: false
  - name: blackhole
"#
    )
}

// ---------------------------------------------------------------------------------
// The receiver: webhooks in, scrape targets out.

/// What the harness serves and hears.
#[derive(Default)]
struct Receiver {
    /// Crossings waited for: id → when the crossing was made.
    pending: Mutex<HashMap<String, Instant>>,
    /// (id, latency) of each first arrival.
    arrivals: Mutex<Option<mpsc::UnboundedSender<(String, Duration)>>>,
    /// Scrape targets: path → (crossing id, value).
    targets: Mutex<HashMap<String, Vec<(String, f64)>>>,
    webhooks: AtomicU64,
}

impl Receiver {
    fn expect(&self, id: &str, at: Instant) {
        self.pending.lock().unwrap().insert(id.to_string(), at);
    }

    fn arrived(&self, id: &str, at: Instant) {
        let Some(t0) = self.pending.lock().unwrap().remove(id) else {
            return;
        };
        if let Some(tx) = self.arrivals.lock().unwrap().as_ref() {
            let _ = tx.send((id.to_string(), at.saturating_duration_since(t0)));
        }
    }
}

/// `POST /hook/{source}`: tocsin's webhook (alerts carry `state`) or Alertmanager's
/// (alerts carry `status`); every firing alert with a `crossing` label is an arrival.
async fn hook(State(r): State<Arc<Receiver>>, UrlPath(_source): UrlPath<String>, body: Bytes) {
    let at = Instant::now();
    r.webhooks.fetch_add(1, Ordering::Relaxed);
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return;
    };
    for a in v["alerts"].as_array().into_iter().flatten() {
        let firing = a["status"] == "firing" || a["state"] == "firing";
        if let (true, Some(id)) = (firing, a["labels"]["crossing"].as_str()) {
            r.arrived(id, at);
        }
    }
}

/// `GET /metrics/{target}`: the crossing series of one target, exposition format.
async fn target(State(r): State<Arc<Receiver>>, UrlPath(name): UrlPath<String>) -> String {
    let targets = r.targets.lock().unwrap();
    let mut out = String::from("# TYPE pipe_level gauge\n");
    for (id, v) in targets.get(&name).into_iter().flatten() {
        let _ = writeln!(out, "pipe_level{{crossing=\"{id}\"}} {v}");
    }
    out
}

async fn start_receiver(r: Arc<Receiver>) -> u16 {
    let app = Router::new()
        .route("/hook/{source}", post(hook))
        .route("/metrics/{target}", get(target))
        .layer(axum::extract::DefaultBodyLimit::max(256 << 20))
        .with_state(r);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the receiver");
    let port = listener.local_addr().expect("receiver address").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

// ---------------------------------------------------------------------------------
// Load

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Json,
    Text,
}

/// One request's body: series `batch * SAMPLES_PER_REQUEST ..` of `metric` at `ts`.
fn ingest_body(format: Format, metric: &str, batch: usize, ts: i64, value: f64) -> String {
    let mut b = String::with_capacity(SAMPLES_PER_REQUEST * 90);
    let first = batch * SAMPLES_PER_REQUEST;
    match format {
        Format::Json => {
            b.push_str("{\"samples\":[");
            for s in first..first + SAMPLES_PER_REQUEST {
                if s > first {
                    b.push(',');
                }
                let _ = write!(
                    b,
                    "{{\"name\":\"{metric}\",\"labels\":{{\"host\":\"bot-{}\",\"series\":\"s-{s}\"}},\"value\":{value},\"timestamp\":{ts}}}",
                    s % 100
                );
            }
            b.push_str("]}");
        }
        Format::Text => {
            for s in first..first + SAMPLES_PER_REQUEST {
                let _ = writeln!(
                    b,
                    "{metric}{{host=\"bot-{}\",series=\"s-{s}\"}} {value} {ts}",
                    s % 100
                );
            }
        }
    }
    b
}

/// Items accepted over a phase: the median of its whole one-second windows (the
/// headline: robust to a moment of noise from the machine's other work) and the mean.
struct Rate {
    median: f64,
    mean: f64,
}

/// When each request finished and how many items it carried.
type Completions = Arc<Mutex<Vec<(Instant, u64)>>>;

fn rate(started: Instant, completions: &Completions) -> Rate {
    let done = completions.lock().unwrap();
    let end = done.iter().map(|(t, _)| *t).max().unwrap_or(started);
    let seconds = end.duration_since(started).as_secs_f64();
    let total: u64 = done.iter().map(|(_, n)| n).sum();
    let whole = seconds.floor() as usize;
    let mut windows = vec![0u64; whole.max(1)];
    for (t, n) in done.iter() {
        let w = t.duration_since(started).as_secs_f64().floor() as usize;
        if w < windows.len() {
            windows[w] += n;
        }
    }
    windows.sort_unstable();
    Rate {
        median: windows[windows.len() / 2] as f64,
        mean: total as f64 / seconds.max(1e-9),
    }
}

fn emit_rate(report: &mut Report, metric: &str, r: &Rate, unit: &str) {
    report.emit(metric, r.median, unit);
    report.emit(&format!("{metric}_mean"), r.mean, unit);
}

/// Pushes rounds of samples for `INGEST_SERIES` series for `seconds`; each connection
/// owns a fixed share of the series, so every series' samples arrive in order.
async fn ingest(
    http: &reqwest::Client,
    base: &str,
    format: Format,
    metric: &str,
    seconds: f64,
) -> Rate {
    let path = match format {
        Format::Json => "/api/v1/samples",
        Format::Text => "/api/v1/import/prometheus",
    };
    let url = format!("{base}{path}");
    let batches = INGEST_SERIES / SAMPLES_PER_REQUEST;
    let start_ts = now_ms() - 3_600_000;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let completions: Completions = Arc::default();
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let (http, url, metric) = (http.clone(), url.clone(), metric.to_string());
            let completions = completions.clone();
            tokio::spawn(async move {
                let mut round = 0i64;
                'rounds: loop {
                    for batch in (c..batches).step_by(CONNECTIONS) {
                        if Instant::now() >= deadline {
                            break 'rounds;
                        }
                        let ts = start_ts + round * 1000;
                        let body = ingest_body(format, &metric, batch, ts, (round % 50) as f64);
                        let content_type = match format {
                            Format::Json => "application/json",
                            Format::Text => "text/plain; version=0.0.4",
                        };
                        let r = http
                            .post(&url)
                            .header("content-type", content_type)
                            .body(body)
                            .send()
                            .await
                            .expect("ingest request");
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        assert!(status.is_success(), "ingest refused: {status} {text}");
                        completions
                            .lock()
                            .unwrap()
                            .push((Instant::now(), SAMPLES_PER_REQUEST as u64));
                    }
                    round += 1;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("ingest task");
    }
    rate(started, &completions)
}

fn alert_json(id: &str, starts: &str, ends: &str) -> Value {
    json!({
        "labels": {"alertname": "LoadTest", "id": id, "instance": format!("host-{id}:9100"), "job": "node", "severity": "warning"},
        "annotations": {"summary": format!("load test alert {id}")},
        "startsAt": starts,
        "endsAt": ends,
        "generatorURL": "http://127.0.0.1/graph?g0.expr=load_test",
    })
}

/// Posts batches of 100 alerts to `/api/v2/alerts` for `seconds`. `pool`: re-send
/// these bodies in turn (after one unmeasured pass); otherwise every alert is new.
async fn post_alerts(
    http: &reqwest::Client,
    base: &str,
    seconds: f64,
    pool: Option<Arc<Vec<String>>>,
    tag: &str,
) -> Rate {
    let url = format!("{base}/api/v2/alerts");
    let starts = rfc3339(now_ms());
    let ends = rfc3339(now_ms() + 3_600_000);
    if let Some(pool) = &pool {
        for body in pool.iter() {
            let r = http
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .expect("warm-up post");
            assert!(r.status().is_success(), "warm-up refused: {}", r.status());
        }
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let completions: Completions = Arc::default();
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let (http, url, pool) = (http.clone(), url.clone(), pool.clone());
            let (starts, ends, tag) = (starts.clone(), ends.clone(), tag.to_string());
            let completions = completions.clone();
            tokio::spawn(async move {
                let mut n = 0usize;
                while Instant::now() < deadline {
                    let body = match &pool {
                        Some(p) => p[(c + n * CONNECTIONS) % p.len()].clone(),
                        None => {
                            let alerts: Vec<Value> = (0..ALERTS_PER_REQUEST)
                                .map(|k| alert_json(&format!("{tag}-{c}-{n}-{k}"), &starts, &ends))
                                .collect();
                            serde_json::to_string(&alerts).expect("json")
                        }
                    };
                    n += 1;
                    let r = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .expect("alerts request");
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    assert!(status.is_success(), "alerts refused: {status} {text}");
                    completions
                        .lock()
                        .unwrap()
                        .push((Instant::now(), ALERTS_PER_REQUEST as u64));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("alerts task");
    }
    rate(started, &completions)
}

/// Alerts in the storm phase: an outage's worth of new alerts, all left firing.
const STORM_ALERTS: usize = 100_000;

/// Posts [`STORM_ALERTS`] new alerts (4 connections, 100 a request, each answered
/// 2xx); the seconds it took.
async fn post_storm(http: &reqwest::Client, base: &str, tag: &str) -> f64 {
    let url = format!("{base}/api/v2/alerts");
    let starts = rfc3339(now_ms());
    let ends = rfc3339(now_ms() + 3_600_000);
    let batches = STORM_ALERTS / ALERTS_PER_REQUEST;
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let (http, url) = (http.clone(), url.clone());
            let (starts, ends, tag) = (starts.clone(), ends.clone(), tag.to_string());
            tokio::spawn(async move {
                for b in (c..batches).step_by(CONNECTIONS) {
                    let alerts: Vec<Value> = (0..ALERTS_PER_REQUEST)
                        .map(|k| alert_json(&format!("{tag}-storm-{b}-{k}"), &starts, &ends))
                        .collect();
                    let r = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(serde_json::to_string(&alerts).expect("json"))
                        .send()
                        .await
                        .expect("storm request");
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    assert!(status.is_success(), "storm refused: {status} {text}");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("storm task");
    }
    started.elapsed().as_secs_f64()
}

/// The bytes of the store in `dir`: the redb file and any journal files beside it.
fn store_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("tocsin.redb"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// The resident set now, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The storm: [`STORM_ALERTS`] new alerts into tocsin and into Alertmanager, each
/// left firing. Then tocsin's store per alert, after a clean stop (SIGTERM: the
/// journal folded), and its restart to ready with all of them.
async fn storm_phase(ws: &Workspace, http: &reqwest::Client, port: u16, report: &mut Report) {
    let n = STORM_ALERTS as f64;
    // The same storm with the store on tmpfs: what is left without the disk.
    {
        let (t, base) = start_tocsin(ws, http, "storm", Storage::Memory).await;
        t.reset_peak();
        let took = post_storm(http, &base, "m").await;
        report.emit("tocsin_storm_tmpfs_rate", n / took, "alerts/s");
        report.emit("tocsin_storm_tmpfs_peak_rss", t.peak_mib(), "MiB");
    }
    let (mut t, base) = start_tocsin(ws, http, "storm", Storage::Disk).await;
    t.reset_peak();
    let took = post_storm(http, &base, "t").await;
    report.emit("tocsin_storm_seconds", took, "s");
    report.emit("tocsin_storm_rate", n / took, "alerts/s");
    report.emit("tocsin_storm_peak_rss", t.peak_mib(), "MiB");
    report.emit("tocsin_storm_rss_after", rss_mib(t.pid()), "MiB");
    // The stop: the journal's last fold, and the store packed and compacted.
    let stopping = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &t.pid().to_string()])
        .status();
    let _ = t.child.wait();
    report.emit(
        "tocsin_storm_stop",
        stopping.elapsed().as_secs_f64() * 1e3,
        "ms",
    );
    let bytes = store_bytes(&t.dir);
    report.emit("tocsin_storm_store_bytes", bytes as f64, "bytes");
    report.emit("tocsin_storm_store_bytes_per_alert", bytes as f64 / n, "B");
    // The restart: the same folder and config, from spawn to /readyz 200.
    let dir = t.dir.clone();
    drop(t);
    let mut times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let p = Proc::spawn(
            "tocsin",
            &ws.tocsin,
            &["serve".into(), "--config".into(), "tocsin.toml".into()],
            &dir,
        );
        loop {
            if let Ok(r) = http.get(format!("{base}/readyz")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "tocsin did not restart"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        times.push(started.elapsed().as_secs_f64() * 1e3);
        report.emit("tocsin_storm_rss_restarted", rss_mib(p.pid()), "MiB");
        let _ = Command::new("kill")
            .args(["-TERM", &p.pid().to_string()])
            .status();
        let mut p = p;
        let _ = p.child.wait();
    }
    times.sort_by(f64::total_cmp);
    report.emit("tocsin_storm_restart_to_ready", times[1], "ms");

    let (am, base) = start_alertmanager(ws, http, "storm", &alertmanager_intake_config(port)).await;
    am.reset_peak();
    let took = post_storm(http, &base, "a").await;
    report.emit("alertmanager_storm_seconds", took, "s");
    report.emit("alertmanager_storm_rate", n / took, "alerts/s");
    report.emit("alertmanager_storm_peak_rss", am.peak_mib(), "MiB");
    report.emit("alertmanager_storm_rss_after", rss_mib(am.pid()), "MiB");
    report.ratio(
        "storm_rate_tocsin_over_alertmanager",
        "tocsin_storm_rate",
        "alertmanager_storm_rate",
    );
    report.ratio(
        "storm_tmpfs_rate_tocsin_over_alertmanager",
        "tocsin_storm_tmpfs_rate",
        "alertmanager_storm_rate",
    );
    report.ratio(
        "storm_peak_rss_alertmanager_over_tocsin",
        "alertmanager_storm_peak_rss",
        "tocsin_storm_peak_rss",
    );
}

fn refresh_pool() -> Arc<Vec<String>> {
    let starts = rfc3339(now_ms());
    let ends = rfc3339(now_ms() + 3_600_000);
    Arc::new(
        (0..REFRESH_POOL / ALERTS_PER_REQUEST)
            .map(|b| {
                let alerts: Vec<Value> = (0..ALERTS_PER_REQUEST)
                    .map(|k| alert_json(&format!("pool-{b}-{k}"), &starts, &ends))
                    .collect();
                serde_json::to_string(&alerts).expect("json")
            })
            .collect(),
    )
}

/// Waits for the arrival of `id`, for at most `limit`; other arrivals are kept.
async fn arrival(
    rx: &mut mpsc::UnboundedReceiver<(String, Duration)>,
    got: &mut HashMap<String, Duration>,
    id: &str,
    limit: Duration,
) -> Option<Duration> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(d) = got.remove(id) {
            return Some(d);
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((k, d))) => {
                got.insert(k, d);
            }
            _ => return None,
        }
    }
}

/// One crossing at a time: push a sample over the threshold to a fresh series and
/// time the webhook. Also times the push's response (the alert is durable by then).
async fn push_crossings(
    http: &reqwest::Client,
    base: &str,
    tag: &str,
    r: &Arc<Receiver>,
    rx: &mut mpsc::UnboundedReceiver<(String, Duration)>,
) -> (Vec<f64>, Vec<f64>) {
    let url = format!("{base}/api/v1/samples");
    // Every series exists below the threshold first, as a monitored value would.
    let below: Vec<Value> = (0..PUSH_CROSSINGS)
        .map(|k| json!({"name": "bench_level", "labels": {"crossing": format!("{tag}-{k}")}, "value": 0}))
        .collect();
    let resp = http
        .post(&url)
        .json(&json!({"samples": below}))
        .send()
        .await
        .expect("push");
    assert!(
        resp.status().is_success(),
        "seed push refused: {}",
        resp.status()
    );
    let mut got = HashMap::new();
    let (mut webhook, mut response) = (Vec::new(), Vec::new());
    for k in 0..PUSH_CROSSINGS {
        let id = format!("{tag}-{k}");
        let body = serde_json::to_vec(&json!({"samples": [{"name": "bench_level", "labels": {"crossing": id}, "value": 200}]}))
            .expect("json");
        let t0 = Instant::now();
        r.expect(&id, t0);
        let resp = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("push");
        response.push(t0.elapsed().as_secs_f64() * 1e3);
        assert!(
            resp.status().is_success(),
            "crossing push refused: {}",
            resp.status()
        );
        if let Some(d) = arrival(rx, &mut got, &id, Duration::from_secs(10)).await {
            webhook.push(d.as_secs_f64() * 1e3);
        }
    }
    (webhook, response)
}

/// One alert at a time to `/api/v2/alerts`, timed to its webhook.
async fn v2_crossings(
    http: &reqwest::Client,
    base: &str,
    tag: &str,
    r: &Arc<Receiver>,
    rx: &mut mpsc::UnboundedReceiver<(String, Duration)>,
) -> Vec<f64> {
    let url = format!("{base}/api/v2/alerts");
    let mut got = HashMap::new();
    let mut out = Vec::new();
    for k in 0..V2_CROSSINGS {
        let id = format!("{tag}-{k}");
        let body = serde_json::to_vec(&json!([{
            "labels": {"alertname": "V2Latency", "crossing": id, "severity": "critical"},
            "annotations": {"summary": "latency probe"},
            "startsAt": rfc3339(now_ms()),
        }]))
        .expect("json");
        let t0 = Instant::now();
        r.expect(&id, t0);
        let resp = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("v2 post");
        assert!(
            resp.status().is_success(),
            "v2 post refused: {}",
            resp.status()
        );
        if let Some(d) = arrival(rx, &mut got, &id, Duration::from_secs(10)).await {
            out.push(d.as_secs_f64() * 1e3);
        }
    }
    out
}

/// Waits until tocsin has nothing left to deliver (bounded), so one phase's
/// deliveries do not run into the next.
async fn drained(http: &reqwest::Client, base: &str) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let text = match http.get(format!("{base}/metrics")).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => return,
        };
        let pending = text
            .lines()
            .find(|l| l.starts_with("tocsin_outbox_pending "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if pending == 0.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------
// Pipelines: a metric changes at a scrape target; time to the webhook.

/// One pipeline's crossings: where they are served, how many, how far apart.
struct Pipeline {
    name: &'static str,
    /// The receiver's target path the pipeline scrapes.
    target: &'static str,
    crossings: usize,
    every: Duration,
}

async fn pipelines(
    http: &reqwest::Client,
    ws: &Workspace,
    r: &Arc<Receiver>,
    rx: &mut mpsc::UnboundedReceiver<(String, Duration)>,
    quick: bool,
    report: &mut Report,
) {
    let mut list = vec![
        Pipeline {
            name: "tocsin_pull_1s",
            target: "tocsin-1s",
            crossings: 30,
            every: Duration::from_millis(770),
        },
        Pipeline {
            name: "prometheus_alertmanager_1s",
            target: "prom-1s",
            crossings: 30,
            every: Duration::from_millis(770),
        },
        Pipeline {
            name: "prometheus_alertmanager_100ms",
            target: "prom-100ms",
            crossings: 50,
            every: Duration::from_millis(137),
        },
    ];
    if !quick {
        list.push(Pipeline {
            name: "tocsin_pull_default_15s",
            target: "tocsin-default",
            crossings: 8,
            every: Duration::from_millis(6_300),
        });
        list.push(Pipeline {
            name: "prometheus_alertmanager_defaults",
            target: "prom-default",
            crossings: 6,
            every: Duration::from_millis(10_300),
        });
    }
    {
        let mut targets = r.targets.lock().unwrap();
        for p in &list {
            let series = (0..p.crossings)
                .map(|k| (format!("{}-{k}", p.target), 0.0))
                .collect();
            targets.insert(p.target.to_string(), series);
        }
    }
    let (tocsin, _) = start_tocsin(ws, http, "pipelines-tocsin", Storage::Disk).await;
    let am_port_config = format!(
        r#"route:
  receiver: hook
  group_by: [alertname, crossing]
  routes:
    - matchers: ['job=~"fast|fastest"']
      receiver: hook
      group_wait: 0s
      group_interval: 1s
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:{}/hook/alertmanager-pipeline
        send_resolved: false
"#,
        ws.receiver
    );
    let (am, am_base) =
        start_alertmanager(ws, http, "pipelines-alertmanager", &am_port_config).await;
    let dir = ws.fresh("pipelines-prometheus");
    let recv = ws.receiver;
    std::fs::write(
        dir.join("rules.yml"),
        "groups:\n\
         \x20 - name: default\n    rules:\n      - alert: PipeLevelHigh\n        expr: pipe_level{job=\"default\"} > 100\n\
         \x20 - name: fast\n    interval: 1s\n    rules:\n      - alert: PipeLevelHigh\n        expr: pipe_level{job=\"fast\"} > 100\n\
         \x20 - name: fastest\n    interval: 100ms\n    rules:\n      - alert: PipeLevelHigh\n        expr: pipe_level{job=\"fastest\"} > 100\n",
    )
    .expect("prometheus rules");
    let am_target = am_base.trim_start_matches("http://");
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "# scrape_interval and evaluation_interval left at their defaults (1m).\n\
             rule_files: [rules.yml]\n\
             scrape_configs:\n\
             \x20 - job_name: default\n    metrics_path: /metrics/prom-default\n    static_configs: [{{targets: ['127.0.0.1:{recv}']}}]\n\
             \x20 - job_name: fast\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    metrics_path: /metrics/prom-1s\n    static_configs: [{{targets: ['127.0.0.1:{recv}']}}]\n\
             \x20 - job_name: fastest\n    scrape_interval: 100ms\n    scrape_timeout: 100ms\n    metrics_path: /metrics/prom-100ms\n    static_configs: [{{targets: ['127.0.0.1:{recv}']}}]\n\
             alerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['{am_target}']}}]\n"
        ),
    )
    .expect("prometheus config");
    let prom_port = free_port();
    let prom = Proc::spawn(
        "prometheus",
        Path::new("prometheus"),
        &[
            "--config.file=prometheus.yml".into(),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        &dir,
    );
    let prom_base = format!("http://127.0.0.1:{prom_port}");
    wait_ready(
        http,
        &format!("{prom_base}/-/ready"),
        &prom,
        Duration::from_secs(60),
    )
    .await;
    // Prometheus applies scrape targets and discovers Alertmanager in steps of up to
    // 5 s after it starts; a crossing made before that would time its start-up.
    prometheus_settled(http, &prom_base, 3).await;
    for p in [&tocsin, &am, &prom] {
        p.reset_peak();
    }
    eprintln!(
        "pipelines: {} crossings over {} pipelines; waiting for the slowest (up to 4 minutes)",
        list.iter().map(|p| p.crossings).sum::<usize>(),
        list.len()
    );

    // Flip every pipeline's crossings on its own schedule, all pipelines at once.
    let started = Instant::now();
    let mut schedule: Vec<(Duration, &Pipeline, usize)> = list
        .iter()
        .flat_map(|p| {
            (0..p.crossings).map(move |k| (p.every * k as u32 + Duration::from_millis(500), p, k))
        })
        .collect();
    schedule.sort_by_key(|(at, ..)| *at);
    let mut got: HashMap<String, Duration> = HashMap::new();
    for (at, p, k) in &schedule {
        let wait = at.saturating_sub(started.elapsed());
        // Collect arrivals while waiting for the next flip.
        let until = tokio::time::Instant::now() + wait;
        while let Ok(Some((id, d))) = tokio::time::timeout_at(until, rx.recv()).await {
            got.insert(id, d);
        }
        let id = format!("{}-{k}", p.target);
        let t0 = Instant::now();
        r.expect(&id, t0);
        if let Some(series) = r.targets.lock().unwrap().get_mut(p.target)
            && let Some(s) = series.iter_mut().find(|(i, _)| *i == id)
        {
            s.1 = 200.0;
        }
    }
    let expected: usize = list.iter().map(|p| p.crossings).sum();
    let limit = tokio::time::Instant::now() + Duration::from_secs(if quick { 20 } else { 240 });
    while got.len() < expected {
        match tokio::time::timeout_at(limit, rx.recv()).await {
            Ok(Some((id, d))) => {
                got.insert(id, d);
            }
            _ => break,
        }
    }
    for p in &list {
        let ms: Vec<f64> = (0..p.crossings)
            .filter_map(|k| got.get(&format!("{}-{k}", p.target)))
            .map(|d| d.as_secs_f64() * 1e3)
            .collect();
        report.latencies(
            &format!("{}_metric_change_to_webhook", p.name),
            ms,
            p.crossings,
        );
    }
    report.emit("tocsin_peak_rss_pipelines", tocsin.peak_mib(), "MiB");
    report.emit("alertmanager_peak_rss_pipelines", am.peak_mib(), "MiB");
    report.emit("prometheus_peak_rss_pipelines", prom.peak_mib(), "MiB");
    report.emit("pipelines_elapsed", started.elapsed().as_secs_f64(), "s");
}

// ---------------------------------------------------------------------------------

/// Waits (bounded) until Prometheus has scraped each of its `targets` and knows an
/// Alertmanager to send to.
async fn prometheus_settled(http: &reqwest::Client, base: &str, targets: usize) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        let get = |path: &str| {
            let url = format!("{base}{path}");
            async move {
                match http.get(url).send().await {
                    Ok(r) => r.json::<Value>().await.unwrap_or_default(),
                    Err(_) => Value::Null,
                }
            }
        };
        let t = get("/api/v1/targets").await;
        let up = t["data"]["activeTargets"]
            .as_array()
            .map_or(0, |a| a.iter().filter(|x| x["health"] == "up").count());
        let am = get("/api/v1/alertmanagers").await;
        let known = am["data"]["activeAlertmanagers"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        if up >= targets && known {
            eprintln!(
                "prometheus: {up} targets up and an alertmanager known after {:.1} s",
                started.elapsed().as_secs_f64()
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("prometheus did not report every target up within 120 s; measuring anyway");
}

/// Builds the `tocsin` binary next to this example (same profile) and returns it.
fn build_tocsin() -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    // target/<profile>/examples/load → target/<profile>/tocsin
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("examples folder")
        .to_path_buf();
    let release = profile_dir.ends_with("release");
    eprintln!(
        "building the tocsin binary (cargo build{} --bin tocsin)",
        if release { " --release" } else { "" }
    );
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--quiet", "--bin", "tocsin"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo");
    assert!(status.success(), "cargo build --bin tocsin failed");
    let bin = profile_dir.join("tocsin");
    assert!(bin.exists(), "no binary at {}", bin.display());
    bin
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{} cpus ({cpu}), load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

fn main() {
    let opts = options();
    tocsin::tls::install_crypto_provider();
    assert!(
        have("prometheus-alertmanager") && have("prometheus"),
        "needs Debian's prometheus-alertmanager and prometheus (apt-get install prometheus prometheus-alertmanager)"
    );
    let tocsin_bin = opts.tocsin.clone().unwrap_or_else(build_tocsin);
    std::fs::create_dir_all(&opts.out).expect("output folder");
    eprintln!("machine: {}", machine());
    // Two workers: the machine has two cores and the children need them too.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let report = rt.block_on(run(opts.clone(), tocsin_bin));
    finish(&opts, &report);
}

async fn run(opts: Options, tocsin_bin: PathBuf) -> Report {
    let mut report = Report::default();
    let http = tocsin::tls::http_client()
        .pool_max_idle_per_host(32)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client");
    let receiver = Arc::new(Receiver::default());
    let (tx, mut rx) = mpsc::unbounded_channel();
    *receiver.arrivals.lock().unwrap() = Some(tx);
    let port = start_receiver(receiver.clone()).await;
    let ws = Workspace {
        root: std::env::temp_dir().join(format!("tocsin-load-{}", std::process::id())),
        memory_root: PathBuf::from(format!("/dev/shm/tocsin-load-{}", std::process::id())),
        tocsin: tocsin_bin,
        receiver: port,
        runs: AtomicU64::new(0),
    };
    let secs = opts.seconds;

    // Ingestion, each on a fresh daemon.
    let ingestion = if opts.runs("ingest") {
        &[
            ("ingest_json", Format::Json, "load_json"),
            ("ingest_text", Format::Text, "load_text"),
            ("ingest_json_evaluated", Format::Json, "load_eval"),
        ][..]
    } else {
        &[][..]
    };
    for &(name, format, metric) in ingestion {
        let (t, base) = start_tocsin(&ws, &http, name, Storage::Disk).await;
        t.reset_peak();
        let r = ingest(&http, &base, format, metric, secs).await;
        emit_rate(&mut report, &format!("tocsin_{name}"), &r, "samples/s");
        report.emit(&format!("tocsin_peak_rss_{name}"), t.peak_mib(), "MiB");
    }

    // Alert intake: new alerts, then re-sent ones; tocsin, then Alertmanager.
    let pool = refresh_pool();
    let intake = if opts.runs("alerts") {
        &[("alerts_v2_new", false), ("alerts_v2_refresh", true)][..]
    } else {
        &[][..]
    };
    for &(phase, refresh) in intake {
        let posting = refresh.then(|| pool.clone());
        for (storage, suffix) in [(Storage::Disk, ""), (Storage::Memory, "_tmpfs")] {
            let (t, base) = start_tocsin(&ws, &http, phase, storage).await;
            t.reset_peak();
            let r = post_alerts(&http, &base, secs, posting.clone(), "t").await;
            emit_rate(
                &mut report,
                &format!("tocsin_{phase}{suffix}"),
                &r,
                "alerts/s",
            );
            report.emit(
                &format!("tocsin_peak_rss_{phase}{suffix}"),
                t.peak_mib(),
                "MiB",
            );
        }
        let (am, base) =
            start_alertmanager(&ws, &http, phase, &alertmanager_intake_config(port)).await;
        am.reset_peak();
        let r = post_alerts(&http, &base, secs, posting, "a").await;
        emit_rate(
            &mut report,
            &format!("alertmanager_{phase}"),
            &r,
            "alerts/s",
        );
        report.emit(
            &format!("alertmanager_peak_rss_{phase}"),
            am.peak_mib(),
            "MiB",
        );
        for suffix in ["", "_tmpfs"] {
            report.ratio(
                &format!("{phase}{suffix}_tocsin_over_alertmanager"),
                &format!("tocsin_{phase}{suffix}"),
                &format!("alertmanager_{phase}"),
            );
        }
        report.ratio(
            &format!("peak_rss_{phase}_alertmanager_over_tocsin"),
            &format!("alertmanager_peak_rss_{phase}"),
            &format!("tocsin_peak_rss_{phase}"),
        );
    }

    // A storm of STORM_ALERTS new alerts: time, RSS, the store, and a restart.
    if opts.runs("storm") {
        storm_phase(&ws, &http, port, &mut report).await;
    }
    if opts.runs("prune") {
        prune::phase(&ws, &http, &mut report, secs).await;
    }

    // Latency: push → webhook, and /api/v2/alerts → webhook for both.
    if opts.runs("latency") {
        for (storage, suffix) in [(Storage::Disk, ""), (Storage::Memory, "_tmpfs")] {
            let (t, base) = start_tocsin(&ws, &http, "latency", storage).await;
            t.reset_peak();
            let (webhook, response) =
                push_crossings(&http, &base, &format!("push{suffix}"), &receiver, &mut rx).await;
            report.latencies(
                &format!("tocsin_push_to_webhook{suffix}"),
                webhook,
                PUSH_CROSSINGS,
            );
            report.latencies(
                &format!("tocsin_push_response{suffix}"),
                response,
                PUSH_CROSSINGS,
            );
            drained(&http, &base).await;
            let v2 = v2_crossings(&http, &base, &format!("tv2{suffix}"), &receiver, &mut rx).await;
            report.latencies(&format!("tocsin_v2_to_webhook{suffix}"), v2, V2_CROSSINGS);
            report.emit(
                &format!("tocsin_peak_rss_latency{suffix}"),
                t.peak_mib(),
                "MiB",
            );
        }
        let (am, base) =
            start_alertmanager(&ws, &http, "latency", &alertmanager_intake_config(port)).await;
        am.reset_peak();
        let v2 = v2_crossings(&http, &base, "av2", &receiver, &mut rx).await;
        report.latencies("alertmanager_v2_to_webhook", v2, V2_CROSSINGS);
        report.emit("alertmanager_peak_rss_latency", am.peak_mib(), "MiB");
        for suffix in ["", "_tmpfs"] {
            for q in ["p50", "p99"] {
                report.ratio(
                    &format!("v2_to_webhook_{q}{suffix}_alertmanager_over_tocsin"),
                    &format!("alertmanager_v2_to_webhook_{q}"),
                    &format!("tocsin_v2_to_webhook{suffix}_{q}"),
                );
            }
        }
    }

    if opts.runs("flood") {
        flood::phase(&ws, &http, &receiver, &mut rx, &mut report).await;
    }

    // PostgreSQL against redb and Alertmanager; failover (examples/load/postgres.rs).
    let pg = postgres::available();
    if !pg && (opts.runs("stores") || opts.runs("failover")) {
        eprintln!("no PostgreSQL server (apt-get install postgresql): stores and failover skipped");
    }
    if pg && opts.runs("stores") {
        postgres::stores_phase(&ws, &http, &receiver, &mut rx, secs, &mut report).await;
    }
    if pg && opts.runs("failover") {
        postgres::failover_phase(&ws, &http, &mut report).await;
    }

    if opts.runs("pipelines") {
        pipelines(&http, &ws, &receiver, &mut rx, opts.quick, &mut report).await;
    }
    for q in ["p50", "p99"] {
        report.ratio(
            &format!("pull_1s_{q}_prometheus_alertmanager_over_tocsin"),
            &format!("prometheus_alertmanager_1s_metric_change_to_webhook_{q}"),
            &format!("tocsin_pull_1s_metric_change_to_webhook_{q}"),
        );
    }
    report.ratio(
        "detection_p50_prometheus_alertmanager_defaults_over_tocsin_push",
        "prometheus_alertmanager_defaults_metric_change_to_webhook_p50",
        "tocsin_push_to_webhook_p50",
    );
    report.ratio(
        "detection_p50_prometheus_alertmanager_1s_over_tocsin_push",
        "prometheus_alertmanager_1s_metric_change_to_webhook_p50",
        "tocsin_push_to_webhook_p50",
    );
    report.emit(
        "receiver_webhooks",
        receiver.webhooks.load(Ordering::Relaxed) as f64,
        "requests",
    );
    report
}

fn finish(opts: &Options, report: &Report) {
    let mut csv = String::from("series,latency_ms\n");
    for (name, ms) in &report.latencies {
        for v in ms {
            let _ = writeln!(csv, "{name},{v:.4}");
        }
    }
    let csv_path = opts.out.join("latency.csv");
    std::fs::write(&csv_path, csv).expect("write latency.csv");
    let mut lines = String::new();
    for (m, v, u) in &report.lines {
        let _ = writeln!(lines, "{m} {v:.3} {u}");
    }
    std::fs::write(opts.out.join("load.txt"), lines).expect("write load.txt");
    let wanted = [
        ("tocsin_push_to_webhook", "tocsin: push → webhook"),
        (
            "tocsin_push_to_webhook_tmpfs",
            "tocsin: push → webhook, store on tmpfs",
        ),
        ("tocsin_v2_to_webhook", "tocsin: /api/v2/alerts → webhook"),
        (
            "alertmanager_v2_to_webhook",
            "Alertmanager: /api/v2/alerts → webhook",
        ),
        (
            "tocsin_pull_1s_metric_change_to_webhook",
            "tocsin scraping at 1s",
        ),
        (
            "prometheus_alertmanager_100ms_metric_change_to_webhook",
            "Prometheus+AM at 100ms",
        ),
        (
            "prometheus_alertmanager_1s_metric_change_to_webhook",
            "Prometheus+AM at 1s",
        ),
        (
            "tocsin_pull_default_15s_metric_change_to_webhook",
            "tocsin scraping at 15s (default)",
        ),
        (
            "prometheus_alertmanager_defaults_metric_change_to_webhook",
            "Prometheus+AM defaults",
        ),
    ];
    let series: Vec<(String, Vec<f64>)> = wanted
        .iter()
        .filter_map(|(k, label)| {
            report
                .latencies
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| (label.to_string(), v.clone()))
        })
        .collect();
    let png = opts.out.join("latency.png");
    match plot::latency_cdf(&png, "Detection and delivery latency, 127.0.0.1", &series) {
        Ok(()) => eprintln!(
            "wrote {}, {} and load.txt",
            png.display(),
            csv_path.display()
        ),
        Err(e) => eprintln!("no plot ({e}); wrote {}", csv_path.display()),
    }
}
