//! Soak: tocsin under a steady, realistic load for an hour, its memory sampled.
//!
//! ```sh
//! scripts/soak.sh                 # release build, one hour, in the background
//! cargo run --release --example soak -- --minutes 60 --speed 12 --out scripts/soak-summary.md
//! cargo run --release --example soak -- --minutes 15 --speed 48 --retention 2h --out scripts/soak-churn.md
//! ```
//!
//! The parent process is the world around tocsin: the seed's 100 bot accounts on 5
//! hosts pushing their metrics (`rules/metrics.rules`) every 30 s, a webhook receiver
//! that records every `Idempotency-Key`, an operator who acks, Prometheus posting
//! alerts to `/api/v2/alerts`, and bursts (a posting-success storm, a hot CPU, a bulk
//! backfill, a ten-minute receiver outage). The child is the daemon alone
//! (`tocsin::server::start` over the shipped `rules/`), so its RSS is tocsin's.
//!
//! Time runs `--speed` times faster than the wall clock in both processes (a clock
//! computed from the same start): samples are still 30 s apart in tocsin's time, so
//! each series holds what it would hold in production, but the longest window the
//! rules keep (6 h of `disk_space` for `predict`, plus the 5 min lookback) fills in
//! half an hour of wall time. Memory must then stay flat. `--speed 1` is real time.
//!
//! Every 30 s the parent samples tocsin's RSS and CPU, the bytes live on its heap
//! (the child counts them with a wrapping global allocator), its own metrics and
//! the size of the redb file. Written at the end: `--out` (a Markdown summary) and a
//! CSV of the samples beside it.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tocsin::clock::{Clock, Timestamp, Wait};

#[path = "../benches/common/plot.rs"]
#[allow(dead_code)]
mod plot;

/// The system allocator, counting the bytes live on the heap: RSS alone cannot tell
/// a leak (live bytes grow) from the allocator keeping freed memory (they do not).
struct Counting;

static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded as given.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded as given.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded as given.
        unsafe { std::alloc::System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ACCOUNTS: usize = 100;
const HOSTS: usize = 5;
/// Tocsin's time at the start of the run: 2027-01-15T00:00:00Z.
const T0_MS: i64 = 1_800_000_000_000;
const PUSH_EVERY: Duration = Duration::from_secs(30);

/// The same accelerated clock in both processes: tocsin time from wall time.
#[derive(Clone, Copy)]
struct FastClock {
    wall0_ms: i64,
    speed: f64,
}

impl FastClock {
    fn wall_ms() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    }

    /// Tocsin time elapsed since the start.
    fn elapsed(&self) -> Duration {
        let wall = (Self::wall_ms() - self.wall0_ms).max(0) as f64;
        Duration::from_millis((wall * self.speed) as u64)
    }

    /// How long on the wall clock `d` of tocsin time takes.
    fn wall(&self, d: Duration) -> Duration {
        d.div_f64(self.speed)
    }
}

impl Clock for FastClock {
    fn now(&self) -> Timestamp {
        Timestamp(T0_MS) + self.elapsed()
    }

    /// Sleeps the wall time that the tocsin time until `t` maps to, and looks again
    /// (the conversion rounds to milliseconds).
    fn sleep_until(&self, t: Timestamp) -> Wait<'_> {
        Box::pin(async move {
            loop {
                let now = self.now();
                if now >= t {
                    return;
                }
                tokio::time::sleep(self.wall(t.since(now))).await;
            }
        })
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("daemon") {
        daemon(&args[2..]);
        return;
    }
    let mut minutes = 60.0;
    let mut speed = 12.0;
    let mut out = PathBuf::from("scripts/soak-summary.md");
    let mut retention = String::from("default");
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().expect("a value after the flag").clone();
        match a.as_str() {
            "--minutes" => minutes = value().parse().expect("--minutes N"),
            "--speed" => speed = value().parse().expect("--speed X"),
            "--out" => out = PathBuf::from(value()),
            "--retention" => retention = value(),
            other => panic!("unknown argument {other}: --minutes, --speed, --out, --retention"),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(parent(minutes, speed, out, retention));
}

// ---------------------------------------------------------------------------------
// The child: tocsin, and nothing else.

fn daemon(args: &[String]) {
    let dir = PathBuf::from(&args[0]);
    let clock = FastClock {
        wall0_ms: args[1].parse().unwrap(),
        speed: args[2].parse().unwrap(),
    };
    let receiver = &args[3];
    let mut config = config(&dir, receiver);
    if let Some(r) = args.get(4).filter(|r| *r != "default") {
        config.storage.retention = humantime::parse_duration(r).expect("--retention 2h");
    }
    tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let running = tocsin::server::start(config, Arc::new(clock))
            .await
            .expect("tocsin starts");
        println!("listening {}", running.addr);
        // The live heap, for the parent to sample beside the RSS.
        let heap_file = dir.join("heap");
        std::thread::spawn(move || {
            loop {
                let live = LIVE.load(Ordering::Relaxed);
                let _ = std::fs::write(&heap_file, live.to_string());
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        // Runs until the parent closes stdin, then stops cleanly.
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).unwrap_or(0) > 0 {}
        })
        .await;
        running.stop().await;
    });
}

fn config(dir: &Path, receiver: &str) -> tocsin::config::Config {
    use tocsin::config::WebhookSettings;
    use tocsin::escalation::{Level, Policy, Routing, Target};
    let minutes = |m: u64| Duration::from_secs(60 * m);
    let policy = Policy {
        name: "default".into(),
        levels: vec![
            Level {
                after: Duration::ZERO,
                targets: vec![Target::Webhook("oncall".into())],
                via: Vec::new(),
            },
            Level {
                after: minutes(15),
                targets: vec![Target::Webhook("manager".into())],
                via: Vec::new(),
            },
        ],
        repeat_interval: minutes(30),
        ack_timeout: None,
        fallback: vec![Target::Webhook("fallback".into())],
        phone_severities: vec!["critical".into()],
    };
    let mut routing = Routing::console_only();
    routing.policies = BTreeMap::from([("default".into(), policy)]);
    let hook = |name: &str| WebhookSettings {
        name: name.into(),
        url: tocsin::config::Secret::new(format!("{receiver}/hook/{name}")),
        bearer: None,
        timeout: Duration::from_secs(5),
    };
    let mut config = tocsin::config::Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.storage.path = dir.join("tocsin.redb");
    config.rules.paths = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")];
    // Every 15 s of tocsin time: the daemon's loop sleeps on the injected clock, so
    // the interval is in tocsin time, as every other deadline is.
    config.rules.evaluation_interval = Duration::from_secs(15);
    config.channels.console.enabled = false;
    config.routing = routing;
    config.channels.webhooks = vec![hook("oncall"), hook("manager"), hook("fallback")];
    config
}

// ---------------------------------------------------------------------------------
// The parent: the fleet, the receiver, the operator, the measurements.

/// What the webhook receiver saw.
#[derive(Default)]
struct Received {
    requests: AtomicU64,
    refused: AtomicU64,
    keys: Mutex<HashSet<String>>,
    duplicates: AtomicU64,
    /// While set, `/hook/oncall` answers 503 (the outage burst).
    outage: AtomicBool,
}

/// What the fleet saw from tocsin.
#[derive(Default)]
struct Seen {
    requests: AtomicU64,
    /// Any answer other than 2xx, and 409 for an ack that raced a resolve.
    errors: AtomicU64,
    conflicts: AtomicU64,
    transport: AtomicU64,
    acks: AtomicU64,
    last_error: Mutex<Option<String>>,
}

struct Row {
    wall_min: f64,
    tocsin_h: f64,
    rss_kb: u64,
    /// Bytes live on tocsin's heap (the counting allocator), in KiB.
    heap_kb: u64,
    /// CPU seconds tocsin has used so far (user + system).
    cpu_s: f64,
    series: u64,
    alerts_firing: u64,
    outbox: u64,
    db_kb: u64,
}

async fn parent(minutes: f64, speed: f64, out: PathBuf, retention: String) {
    tocsin::tls::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("tocsin-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let received = Arc::new(Received::default());
    let receiver_addr = receiver(received.clone()).await;
    let clock = FastClock {
        wall0_ms: FastClock::wall_ms(),
        speed,
    };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("daemon")
        .arg(&dir)
        .arg(clock.wall0_ms.to_string())
        .arg(speed.to_string())
        .arg(format!("http://{receiver_addr}"))
        .arg(&retention)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("daemon.log")).unwrap())
        .spawn()
        .expect("spawn the daemon");
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = format!(
        "http://{}",
        line.trim()
            .strip_prefix("listening ")
            .expect("the daemon says where it listens")
    );
    println!("soak: tocsin pid {pid} at {base}, {minutes} min at {speed}x, data in {dir:?}");

    let http = tocsin::tls::http_client().build().unwrap();
    let seen = Arc::new(Seen::default());
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(minutes * 60.0);
    let mut rows: Vec<Row> = Vec::new();
    let mut next_sample = started;
    let mut round: u64 = 0;
    let mut rng = Rng(fastrand::Rng::with_seed(0x50a4));
    let mut counters = vec![(0.0f64, 0.0f64); ACCOUNTS];

    while Instant::now() < end {
        let t = clock.elapsed();
        let minute = t.as_secs() / 60;
        // The fleet: one push per account and per host, concurrently as they would.
        let mut pushes = tokio::task::JoinSet::new();
        for (a, c) in counters.iter_mut().enumerate() {
            if rng.chance(0.02) {
                c.0 += 1.0; // a Chrome start failed
            }
            if rng.chance(0.05) {
                c.1 += 1.0; // a login failed
            }
            let body = json!({ "samples": account_samples(a, minute, *c, &mut rng) });
            pushes.spawn(post(
                http.clone(),
                seen.clone(),
                format!("{base}/api/v1/samples"),
                body,
            ));
        }
        for h in 0..HOSTS {
            let body = json!({ "samples": host_samples(h, minute, &mut rng) });
            pushes.spawn(post(
                http.clone(),
                seen.clone(),
                format!("{base}/api/v1/samples"),
                body,
            ));
        }
        while pushes.join_next().await.is_some() {}

        // Every 10 minutes of tocsin time: Prometheus posts its alerts (firing in
        // the first half hour of each two-hour cycle, resolved after); every 5: the
        // operator acks half of what fires; every 15: a bulk backfill.
        let every = |m: u64| round.is_multiple_of(m * 60 / PUSH_EVERY.as_secs());
        if every(10) {
            let body = prometheus_alerts(&clock, minute);
            post(
                http.clone(),
                seen.clone(),
                format!("{base}/api/v2/alerts"),
                body,
            )
            .await;
        }
        if every(5) {
            ack_some(&http, &seen, &base, &mut rng).await;
        }
        if every(15) {
            let body = json!({ "samples": backfill(&mut rng) });
            post(
                http.clone(),
                seen.clone(),
                format!("{base}/api/v1/samples"),
                body,
            )
            .await;
        }
        received
            .outage
            .store((90..100).contains(&(minute % 120)), Ordering::SeqCst);

        if Instant::now() >= next_sample {
            let row = measure(&http, &base, pid, &dir, started, &clock).await;
            println!(
                "soak: {:5.1} min wall, {:5.2} h tocsin: rss {} KiB, heap {} KiB, cpu {:.0} s, series {}, firing {}, outbox {}, db {} KiB, errors {}",
                row.wall_min,
                row.tocsin_h,
                row.rss_kb,
                row.heap_kb,
                row.cpu_s,
                row.series,
                row.alerts_firing,
                row.outbox,
                row.db_kb,
                seen.errors.load(Ordering::SeqCst)
            );
            rows.push(row);
            next_sample += Duration::from_secs(30);
        }
        round += 1;
        // The next round 30 s of tocsin time after this one began.
        let due = clock.wall(PUSH_EVERY * round as u32);
        let since = Duration::from_millis((FastClock::wall_ms() - clock.wall0_ms) as u64);
        if due > since {
            tokio::time::sleep(due - since).await;
        }
    }

    // Let what is owed drain (the receiver is up), then stop tocsin cleanly.
    received.outage.store(false, Ordering::SeqCst);
    let mut pending = u64::MAX;
    for _ in 0..60 {
        pending = metric(&http, &base, "tocsin_outbox_pending").await as u64;
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let final_metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
    let log_errors = log.lines().filter(|l| l.contains("ERROR")).count();
    let summary = summarize(Summary {
        minutes,
        speed,
        rows: &rows,
        seen: &seen,
        received: &received,
        pending,
        final_metrics: &final_metrics,
        log_errors,
        exit: status.success(),
        rounds: round,
    });
    std::fs::write(&out, &summary).unwrap();
    let csv = out.with_extension("csv");
    let mut f = std::fs::File::create(&csv).unwrap();
    writeln!(
        f,
        "wall_min,tocsin_hours,rss_kib,heap_kib,cpu_seconds,series,alerts_firing,outbox_pending,db_kib"
    )
    .unwrap();
    for r in &rows {
        writeln!(
            f,
            "{:.1},{:.2},{},{},{:.1},{},{},{},{}",
            r.wall_min,
            r.tocsin_h,
            r.rss_kb,
            r.heap_kb,
            r.cpu_s,
            r.series,
            r.alerts_firing,
            r.outbox,
            r.db_kb
        )
        .unwrap();
    }
    let hours = |k: fn(&Row) -> u64| -> Vec<(f64, f64)> {
        rows.iter()
            .map(|r| (r.tocsin_h, k(r) as f64 / 1024.0))
            .collect()
    };
    let curve = |label: &str, points| plot::Curve {
        label: label.into(),
        points,
    };
    let png = out.with_extension("png");
    let panels = [
        (
            "MiB",
            vec![
                curve("RSS", hours(|r| r.rss_kb)),
                curve("live heap", hours(|r| r.heap_kb)),
            ],
        ),
        ("MiB", vec![curve("redb file", hours(|r| r.db_kb))]),
    ];
    match plot::over_time(&png, "tocsin soak", &panels) {
        Ok(()) => eprintln!("wrote {}", png.display()),
        Err(e) => eprintln!("no plot: {e}"),
    }
    println!("{summary}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn sample(name: &str, labels: Value, value: f64) -> Value {
    json!({ "name": name, "labels": labels, "value": value })
}

fn host_of(account: usize) -> usize {
    account % HOSTS
}

/// One account's metrics. A storm runs in minutes 10–40 of every two-hour cycle:
/// a quarter of the accounts post at 70 % success (fires after 15 min, resolves).
fn account_samples(a: usize, minute: u64, counters: (f64, f64), rng: &mut Rng) -> Vec<Value> {
    let labels =
        json!({ "account": format!("acct-{a:03}"), "host": format!("host-{}", host_of(a)) });
    let cycle = minute / 120;
    let storm = (10..40).contains(&(minute % 120)) && (a + cycle as usize).is_multiple_of(4);
    let success = if storm { 0.70 } else { 0.97 } + rng.noise(0.02);
    vec![
        sample("success_rate", labels.clone(), success.min(1.0)),
        sample("ai_response_time", labels.clone(), 5.0 + rng.noise(2.0)),
        sample("cache_hit_rate", labels.clone(), 0.6 + rng.noise(0.1)),
        sample("chrome_startup_failures", labels.clone(), counters.0),
        sample(
            "profile_lock_contention",
            labels.clone(),
            0.02 + rng.noise(0.01),
        ),
        sample("response_time", labels.clone(), 3.0 + rng.noise(1.0)),
        sample("auth_failures", labels.clone(), counters.1),
        sample("unknown_api_calls", labels, 0.0),
    ]
}

/// One host's metrics. Minutes 60–80 of every cycle, one host runs hot (CPU 95 %).
fn host_samples(h: usize, minute: u64, rng: &mut Rng) -> Vec<Value> {
    let labels = json!({ "host": format!("host-{h}") });
    let hot = (60..80).contains(&(minute % 120)) && (minute / 120) as usize % HOSTS == h;
    let cpu = if hot { 0.95 } else { 0.40 + rng.noise(0.1) };
    vec![
        sample("cpu_usage", labels.clone(), cpu),
        sample("memory_usage", labels.clone(), 0.5 + rng.noise(0.05)),
        sample(
            "memory_growth_rate",
            labels.clone(),
            1000.0 + rng.noise(500.0),
        ),
        sample("disk_space", labels.clone(), 0.6 + rng.noise(0.001)),
        sample("network_bandwidth", labels.clone(), 0.3 + rng.noise(0.1)),
        sample("concurrent_accounts", labels.clone(), 12.0),
        sample("queue_length", labels, (10.0 + rng.noise(5.0)).round()),
    ]
}

/// A bulk backfill: 2,000 samples of a metric no rule reads, over a fixed set of
/// series (per account and stage).
fn backfill(rng: &mut Rng) -> Vec<Value> {
    (0..2000)
        .map(|i| {
            let labels = json!({ "account": format!("acct-{:03}", i % ACCOUNTS), "stage": format!("s{}", i / ACCOUNTS) });
            sample("bot_stage_seconds", labels, 1.0 + rng.noise(0.5))
        })
        .collect()
}

/// Prometheus' view: 20 queue alerts, firing in the first half hour of each cycle.
fn prometheus_alerts(clock: &FastClock, minute: u64) -> Value {
    let now = clock.now();
    let cycle_start = Timestamp(T0_MS) + Duration::from_secs(minute / 120 * 7200);
    let firing = minute % 120 < 30;
    let ends = if firing {
        now + Duration::from_secs(900)
    } else {
        now
    };
    // Churn: every cycle brings 200 alerts never seen before (their instance names
    // the cycle), which fire, resolve, and are pruned once past retention.
    let cycle = minute / 120;
    let alerts: Vec<Value> = (0..200)
        .map(|i| {
            json!({
                "labels": { "alertname": "BotQueueStuck", "severity": "warning", "instance": format!("bot-{i}-c{cycle}") },
                "annotations": { "summary": "queue stuck" },
                "startsAt": cycle_start.to_rfc3339(),
                "endsAt": ends.to_rfc3339(),
                "generatorURL": "http://prometheus.example/graph",
            })
        })
        .collect();
    Value::Array(alerts)
}

/// The operator acks about half of what fires.
async fn ack_some(http: &reqwest::Client, seen: &Arc<Seen>, base: &str, rng: &mut Rng) {
    let Ok(r) = http
        .get(format!("{base}/api/v1/alerts?state=firing"))
        .send()
        .await
    else {
        seen.transport.fetch_add(1, Ordering::SeqCst);
        return;
    };
    let body: Value = r.json().await.unwrap_or(Value::Null);
    let ids: Vec<u64> = body["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["id"].as_u64())
        .collect();
    for id in ids {
        if rng.chance(0.5) {
            let url = format!("{base}/api/v1/alerts/{id}/ack");
            let body = json!({ "actor": "soak-operator", "note": "on it" });
            post(http.clone(), seen.clone(), url, body).await;
            seen.acks.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn post(http: reqwest::Client, seen: Arc<Seen>, url: String, body: Value) {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    match http.post(&url).json(&body).send().await {
        Ok(r) if r.status().is_success() => {}
        Ok(r) if r.status() == reqwest::StatusCode::CONFLICT => {
            seen.conflicts.fetch_add(1, Ordering::SeqCst);
        }
        Ok(r) => {
            seen.errors.fetch_add(1, Ordering::SeqCst);
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            *seen.last_error.lock().unwrap() = Some(format!("{url}: {status} {text}"));
        }
        Err(e) => {
            seen.transport.fetch_add(1, Ordering::SeqCst);
            *seen.last_error.lock().unwrap() = Some(format!("{url}: {e}"));
        }
    }
}

/// The fake receiver: records each idempotency key, counts repeats; `oncall` is
/// down (503) while the outage flag is set.
async fn receiver(received: Arc<Received>) -> std::net::SocketAddr {
    use axum::extract::{Path as UrlPath, State};
    use axum::http::{HeaderMap, StatusCode};
    async fn hook(
        State(r): State<Arc<Received>>,
        UrlPath(name): UrlPath<String>,
        headers: HeaderMap,
    ) -> StatusCode {
        r.requests.fetch_add(1, Ordering::SeqCst);
        if name == "oncall" && r.outage.load(Ordering::SeqCst) {
            r.refused.fetch_add(1, Ordering::SeqCst);
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        let key = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if !r.keys.lock().unwrap().insert(key) {
            r.duplicates.fetch_add(1, Ordering::SeqCst);
        }
        StatusCode::OK
    }
    let app = axum::Router::new()
        .route("/hook/{name}", axum::routing::post(hook))
        .with_state(received);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// User plus system CPU time of a process, from `/proc/PID/stat` (clock ticks of
/// 1/100 s on Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// One metric's value (summed over its label sets) from tocsin's `/metrics`.
async fn metric(http: &reqwest::Client, base: &str, name: &str) -> f64 {
    let Ok(r) = http.get(format!("{base}/metrics")).send().await else {
        return f64::NAN;
    };
    let text = r.text().await.unwrap_or_default();
    metric_in(&text, name, "")
}

fn metric_in(text: &str, name: &str, with: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.split(['{', ' '])
                .next()
                .is_some_and(|n| n == name || n == format!("{name}_total"))
        })
        .filter(|l| l.contains(with))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
        + 0.0 // an empty sum is -0
}

async fn measure(
    http: &reqwest::Client,
    base: &str,
    pid: u32,
    dir: &Path,
    started: Instant,
    clock: &FastClock,
) -> Row {
    let text = match http.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    Row {
        wall_min: started.elapsed().as_secs_f64() / 60.0,
        tocsin_h: clock.elapsed().as_secs_f64() / 3600.0,
        rss_kb: rss_kib(pid),
        heap_kb: std::fs::read_to_string(dir.join("heap"))
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(0, |b| b / 1024),
        cpu_s: cpu_seconds(pid),
        series: metric_in(&text, "tocsin_series", "") as u64,
        alerts_firing: metric_in(&text, "tocsin_alerts", "state=\"firing\"") as u64,
        outbox: metric_in(&text, "tocsin_outbox_pending", "") as u64,
        db_kb: std::fs::metadata(dir.join("tocsin.redb")).map_or(0, |m| m.len() / 1024),
    }
}

struct Summary<'a> {
    minutes: f64,
    speed: f64,
    rows: &'a [Row],
    seen: &'a Seen,
    received: &'a Received,
    pending: u64,
    final_metrics: &'a str,
    log_errors: usize,
    exit: bool,
    rounds: u64,
}

/// Least-squares slope of `kib` (KiB) per hour of tocsin time over `rows`.
fn slope(rows: &[&Row], kib: impl Fn(&Row) -> u64) -> f64 {
    let n = rows.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = rows.iter().map(|r| r.tocsin_h).sum::<f64>() / n;
    let my = rows.iter().map(|r| kib(r) as f64).sum::<f64>() / n;
    let cov: f64 = rows
        .iter()
        .map(|r| (r.tocsin_h - mx) * (kib(r) as f64 - my))
        .sum();
    let var: f64 = rows.iter().map(|r| (r.tocsin_h - mx).powi(2)).sum();
    if var == 0.0 { 0.0 } else { cov / var }
}

fn summarize(s: Summary) -> String {
    // The longest window tocsin keeps: predict(disk_space, 6h, …) plus the lookback.
    let full_h = 6.0 + 5.0 / 60.0;
    let filling: Vec<&Row> = s.rows.iter().filter(|r| r.tocsin_h < full_h).collect();
    let full: Vec<&Row> = s.rows.iter().filter(|r| r.tocsin_h >= full_h).collect();
    let max = |rs: &[&Row]| rs.iter().map(|r| r.rss_kb).max().unwrap_or(0);
    let min = |rs: &[&Row]| rs.iter().map(|r| r.rss_kb).min().unwrap_or(0);
    let first = s.rows.first().map_or(0, |r| r.rss_kb);
    let last = s.rows.last().map_or(0, |r| r.rss_kb);
    let keys = s.received.keys.lock().unwrap().len();
    let m = |name: &str, with: &str| metric_in(s.final_metrics, name, with);
    let seen = |a: &AtomicU64| a.load(Ordering::SeqCst);
    let mut o = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(o, "# Soak summary\n");
    let _ = writeln!(
        o,
        "Generated by `examples/soak.rs` (`scripts/soak.sh`). {:.0} wall minutes at {}x: \
         {:.1} h of tocsin time, {} push rounds of {} accounts + {} hosts every 30 s of tocsin time.\n",
        s.minutes,
        s.speed,
        s.rows.last().map_or(0.0, |r| r.tocsin_h),
        s.rounds,
        ACCOUNTS,
        HOSTS
    );
    let heap = |r: &Row| r.heap_kb;
    let rss = |r: &Row| r.rss_kb;
    let hmax = |rs: &[&Row]| rs.iter().map(|r| r.heap_kb).max().unwrap_or(0);
    let hmin = |rs: &[&Row]| rs.iter().map(|r| r.heap_kb).min().unwrap_or(0);
    let _ = writeln!(
        o,
        "## Memory of the tocsin process\n\nRSS, and the bytes live on its heap \
         (a counting allocator): RSS also holds what the allocator keeps after a free.\n"
    );
    let _ = writeln!(o, "| | RSS KiB | live heap KiB |\n|---|---|---|");
    let _ = writeln!(
        o,
        "| first sample | {first} | {} |",
        s.rows.first().map_or(0, |r| r.heap_kb)
    );
    let _ = writeln!(
        o,
        "| max while the windows fill (< {full_h:.2} h tocsin time) | {} | {} |",
        max(&filling),
        hmax(&filling)
    );
    let _ = writeln!(
        o,
        "| min / max once the windows are full ({} samples) | {} / {} | {} / {} |",
        full.len(),
        min(&full),
        max(&full),
        hmin(&full),
        hmax(&full)
    );
    let _ = writeln!(
        o,
        "| last sample | {last} | {} |",
        s.rows.last().map_or(0, |r| r.heap_kb)
    );
    let cpu = s.rows.last().map_or(0.0, |r| r.cpu_s);
    let _ = writeln!(
        o,
        "| (CPU used: {cpu:.0} s over {:.0} wall-min, {:.0} % of one core) | | |",
        s.minutes,
        100.0 * cpu / (s.minutes * 60.0)
    );
    let _ = writeln!(
        o,
        "| slope while filling, per hour of tocsin time | {:.0} | {:.0} |",
        slope(&filling, rss),
        slope(&filling, heap)
    );
    let _ = writeln!(
        o,
        "| slope once full, per hour of tocsin time | {:.0} | {:.0} |\n",
        slope(&full, rss),
        slope(&full, heap)
    );
    let db = |r: &Row| r.db_kb;
    let dmax = |rs: &[&Row]| rs.iter().map(|r| r.db_kb).max().unwrap_or(0);
    let dmin = |rs: &[&Row]| rs.iter().map(|r| r.db_kb).min().unwrap_or(0);
    let _ = writeln!(o, "## The store (redb file)\n");
    let _ = writeln!(o, "| | KiB |\n|---|---|");
    let _ = writeln!(
        o,
        "| max while the windows fill | {} |\n| min / max once full | {} / {} |\n| last sample | {} |",
        dmax(&filling),
        dmin(&full),
        dmax(&full),
        s.rows.last().map_or(0, |r| r.db_kb)
    );
    let _ = writeln!(
        o,
        "| slope once full, per hour of tocsin time | {:.0} |\n",
        slope(&full, db)
    );
    let _ = writeln!(o, "## Load and errors\n");
    let _ = writeln!(o, "| | count |\n|---|---|");
    let _ = writeln!(o, "| requests to tocsin | {} |", seen(&s.seen.requests));
    let _ = writeln!(
        o,
        "| samples ingested | {} |",
        m("tocsin_samples_ingested", "")
    );
    let _ = writeln!(
        o,
        "| samples refused | {} |",
        m("tocsin_samples_refused", "")
    );
    let _ = writeln!(
        o,
        "| non-2xx answers (409 excluded) | {} |",
        seen(&s.seen.errors)
    );
    let _ = writeln!(
        o,
        "| 409 (an ack raced a resolve) | {} |",
        seen(&s.seen.conflicts)
    );
    let _ = writeln!(o, "| transport errors | {} |", seen(&s.seen.transport));
    let _ = writeln!(o, "| acks sent | {} |", seen(&s.seen.acks));
    let _ = writeln!(o, "| ERROR lines in tocsin's log | {} |", s.log_errors);
    let _ = writeln!(
        o,
        "| escalations overdue at the end | {} |",
        m("tocsin_escalations_overdue", "")
    );
    let _ = writeln!(
        o,
        "| clean exit on shutdown | {} |\n",
        if s.exit { "yes" } else { "no" }
    );
    if let Some(e) = s.seen.last_error.lock().unwrap().as_ref() {
        let _ = writeln!(o, "Last error: `{e}`\n");
    }
    let _ = writeln!(o, "## Deliveries\n");
    let _ = writeln!(o, "| | count |\n|---|---|");
    let _ = writeln!(
        o,
        "| webhook requests received | {} |",
        seen(&s.received.requests)
    );
    let _ = writeln!(
        o,
        "| refused during the outage bursts (503) | {} |",
        seen(&s.received.refused)
    );
    let _ = writeln!(o, "| distinct idempotency keys | {keys} |");
    let _ = writeln!(
        o,
        "| repeats of a key already received | {} |",
        seen(&s.received.duplicates)
    );
    let _ = writeln!(
        o,
        "| notifications tocsin counted delivered | {} |",
        m("tocsin_notifications", "")
    );
    let _ = writeln!(
        o,
        "| failed attempts (retried) | {} |",
        m("tocsin_delivery_failures", "kind=\"retry\"")
    );
    let _ = writeln!(o, "| outbox pending after the drain | {} |", s.pending);
    o
}

/// Seeded: the same run every time.
struct Rng(fastrand::Rng);

impl Rng {
    fn chance(&mut self, p: f64) -> bool {
        self.0.f64() < p
    }

    /// Uniform in [-spread, spread].
    fn noise(&mut self, spread: f64) -> f64 {
        (self.0.f64() * 2.0 - 1.0) * spread
    }
}
