//! The `prune` phase of the load harness (`--only prune`): new-alert intake while
//! the retention sweep prunes a store filled past its horizon, against the same
//! daemon's intake just before the sweep, in one run (issue 18: pruning never
//! stalls intake).
//!
//! tocsin runs inside this process (`tocsin::server::start`, what `tocsin serve`
//! runs, over HTTP on 127.0.0.1) on a clock the harness moves forward, as nobody
//! can wait for an hour-long retention on the wall clock:
//!
//! 1. [`FILLED`] alerts are posted firing, then posted again resolved, and their
//!    notices delivered (to the harness's webhook receiver);
//! 2. before: new alerts are posted for `--seconds` (4 connections, 100 a request,
//!    each answered once durable), every request's latency recorded;
//! 3. the clock jumps past `storage.retention` and the sweep's hour, so the first
//!    sweep starts and forgets the resolved alerts in bounded batches;
//! 4. during: the same posting, from the jump until the sweep has pruned every
//!    filled alert (two minutes at most).
//!
//! It prints the intake (median of whole one-second windows, and mean) and the
//! request latency (p50/p99/max) before and during, their ratio, the sweep's
//! length and the alerts it pruned.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use tocsin::clock::{Clock, SystemClock, Timestamp, Wait};

use super::{
    ALERTS_PER_REQUEST, CONNECTIONS, Completions, Report, Storage, Workspace, alert_json,
    emit_rate, free_port, now_ms, rate, rfc3339,
};

/// Resolved alerts in the store when the sweep starts: a busy week's worth.
const FILLED: usize = 100_000;
/// The longest the phase waits for the sweep.
const MAX_SWEEP: Duration = Duration::from_secs(120);
/// The retention the phase configures; the clock jumps past it and the sweep's
/// first hour.
const RETENTION_HOURS: u64 = 1;

/// The wall clock plus an offset the harness moves forward. Sleeps look at the
/// clock often, so a sleeper notices a jump past its deadline.
#[derive(Default)]
struct JumpClock {
    offset_ms: AtomicI64,
}

impl JumpClock {
    fn jump(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for JumpClock {
    fn now(&self) -> Timestamp {
        Timestamp(SystemClock.now().0 + self.offset_ms.load(Ordering::SeqCst))
    }

    fn sleep_until(&self, t: Timestamp) -> Wait<'_> {
        Box::pin(async move {
            loop {
                let left = t.0 - self.now().0;
                if left <= 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(left.min(20) as u64)).await;
            }
        })
    }
}

/// The phase's config: the repository's rules, the load-test alerts to the
/// harness's webhook receiver, retention [`RETENTION_HOURS`].
fn config(dir: &Path, port: u16, receiver: u16) -> tocsin::config::Config {
    let repo_rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let text = format!(
        r#"[server]
listen = "127.0.0.1:{port}"

[storage]
path = "{data}"
retention = "{RETENTION_HOURS}h"

[rules]
paths = ["{repo_rules}"]

[[channels.webhook]]
name = "bench"
url = "http://127.0.0.1:{receiver}/hook/prune"

[escalation]
group_wait = "0s"

[policies.default]
[[policies.default.levels]]
notify = ["webhook:bench"]

[log]
level = "warn"
"#,
        data = dir.join("tocsin.redb").display(),
        repo_rules = repo_rules.display(),
    );
    let path = dir.join("tocsin.toml");
    std::fs::write(&path, text).expect("config");
    tocsin::config::Config::load(Some(&path)).expect("prune config")
}

/// Posts `alerts` (ids), 100 a request on 4 connections, with `ends` as endsAt.
async fn post_all(http: &reqwest::Client, url: &str, ids: &[String], starts: &str, ends: &str) {
    let chunks: Vec<Vec<String>> = ids.chunks(ALERTS_PER_REQUEST).map(|c| c.to_vec()).collect();
    let chunks = Arc::new(chunks);
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let (http, url, chunks) = (http.clone(), url.to_string(), chunks.clone());
            let (starts, ends) = (starts.to_string(), ends.to_string());
            tokio::spawn(async move {
                for chunk in chunks.iter().skip(c).step_by(CONNECTIONS) {
                    let body: Vec<_> = chunk
                        .iter()
                        .map(|id| alert_json(id, &starts, &ends))
                        .collect();
                    let r = http.post(&url).json(&body).send().await.expect("fill");
                    assert!(r.status().is_success(), "fill refused: {}", r.status());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("fill task");
    }
}

/// New alerts, 100 a request on 4 connections, until `stop` or `limit`: when each
/// request finished (for the rate) and how long each took (ms).
async fn post_new(
    http: &reqwest::Client,
    url: &str,
    tag: &str,
    limit: Duration,
    stop: Arc<AtomicBool>,
) -> (Instant, Completions, Vec<f64>) {
    let starts = rfc3339(now_ms());
    let ends = rfc3339(now_ms() + 30 * 86_400_000);
    let started = Instant::now();
    let completions: Completions = Arc::default();
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let (http, url, tag) = (http.clone(), url.to_string(), tag.to_string());
            let (starts, ends) = (starts.clone(), ends.clone());
            let (completions, stop) = (completions.clone(), stop.clone());
            tokio::spawn(async move {
                let mut took = Vec::new();
                let mut n = 0;
                while started.elapsed() < limit && !stop.load(Ordering::SeqCst) {
                    let body: Vec<_> = (0..ALERTS_PER_REQUEST)
                        .map(|k| alert_json(&format!("{tag}-{c}-{n}-{k}"), &starts, &ends))
                        .collect();
                    n += 1;
                    let sent = Instant::now();
                    let r = http.post(&url).json(&body).send().await.expect("intake");
                    assert!(r.status().is_success(), "intake refused: {}", r.status());
                    took.push(sent.elapsed().as_secs_f64() * 1e3);
                    completions
                        .lock()
                        .unwrap()
                        .push((Instant::now(), ALERTS_PER_REQUEST as u64));
                }
                took
            })
        })
        .collect();
    let mut took = Vec::new();
    for t in tasks {
        took.extend(t.await.expect("intake task"));
    }
    (started, completions, took)
}

/// Waits until the daemon owes no message (the fill's notices went out).
async fn drained(daemon: &tocsin::daemon::Daemon) {
    let started = Instant::now();
    while daemon.metrics().outbox_pending.get() > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the fill's notices were not delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn phase(ws: &Workspace, http: &reqwest::Client, report: &mut Report, seconds: f64) {
    let dir = ws.fresh_on("prune", Storage::Disk);
    let port = free_port();
    let clock = Arc::new(JumpClock::default());
    let running = tocsin::server::start(config(&dir, port, ws.receiver), clock.clone())
        .await
        .expect("tocsin starts in the harness");
    let daemon = running.daemon.clone();
    let url = format!("http://{}/api/v2/alerts", running.addr);

    // 1. The fill: FILLED alerts fire, then resolve.
    let filled = Instant::now();
    let ids: Vec<String> = (0..FILLED).map(|i| format!("old-{i}")).collect();
    let starts = rfc3339(now_ms());
    post_all(http, &url, &ids, &starts, &rfc3339(now_ms() + 3_600_000)).await;
    post_all(http, &url, &ids, &starts, &rfc3339(now_ms())).await;
    drained(&daemon).await;
    report.emit("tocsin_prune_filled_alerts", FILLED as f64, "alerts");
    report.emit(
        "tocsin_prune_fill_seconds",
        filled.elapsed().as_secs_f64(),
        "s",
    );

    // 2. Before: the same daemon and store, no sweep.
    let limit = Duration::from_secs_f64(seconds);
    let no_stop = Arc::new(AtomicBool::new(false));
    let (started, done, took) = post_new(http, &url, "before", limit, no_stop).await;
    emit_rate(
        report,
        "tocsin_intake_before_prune",
        &rate(started, &done),
        "alerts/s",
    );
    let expected = took.len();
    report.latencies("tocsin_intake_before_prune_latency", took, expected);

    // 3. and 4. The jump starts the sweep; intake goes on until it has pruned the
    // fill.
    let pruned_before = daemon.metrics().pruned_alerts.get();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (daemon, stop) = (daemon.clone(), stop.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            while daemon.metrics().pruned_alerts.get() - pruned_before < FILLED as u64 {
                if started.elapsed() > MAX_SWEEP {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            stop.store(true, Ordering::SeqCst);
            started.elapsed().as_secs_f64()
        })
    };
    clock.jump(Duration::from_secs(RETENTION_HOURS * 3600 + 3600 + 60));
    let (started, done, took) = post_new(http, &url, "during", MAX_SWEEP, stop).await;
    let swept = watcher.await.expect("watcher");
    let pruned = daemon.metrics().pruned_alerts.get() - pruned_before;
    emit_rate(
        report,
        "tocsin_intake_during_prune",
        &rate(started, &done),
        "alerts/s",
    );
    let expected = took.len();
    report.latencies("tocsin_intake_during_prune_latency", took, expected);
    report.emit("tocsin_prune_seconds", swept, "s");
    report.emit("tocsin_prune_pruned_alerts", pruned as f64, "alerts");
    report.ratio(
        "intake_during_prune_over_before",
        "tocsin_intake_during_prune",
        "tocsin_intake_before_prune",
    );
    report.ratio(
        "latency_p99_before_over_during_prune",
        "tocsin_intake_before_prune_latency_p99",
        "tocsin_intake_during_prune_latency_p99",
    );
    running.stop().await;
}
