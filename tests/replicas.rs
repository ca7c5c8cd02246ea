//! Three tocsin replicas over one PostgreSQL (a real server: this binary's throwaway
//! cluster), with `kill -9` of random replicas and restarts, seeded and printed like
//! the crash test (`TOCSIN_REPLICAS_SEED=N` replays the choices).
//!
//! The test binary re-executes itself as each replica (`child DIR RECEIVER URL`):
//! the real server on the real clock, its one escalation level posting to a
//! webhook the parent serves on 127.0.0.1, which keeps each message once by its
//! `Idempotency-Key`. The parent plays Prometheus (each new alert posted to every
//! live replica, as to an Alertmanager cluster, again until one answers 2xx) and the
//! operators (acks sent to random replicas). At the end:
//!
//! - every alert answered 2xx was paged, within `FAILOVER_BOUND` of its acceptance
//!   even when the replica holding the lease was killed right after;
//! - no alert's first level was paged under two keys of its own, and an incident
//!   number names one alert (one incident per alert across replicas). A message
//!   regrouped after a failover (a group key, then the alert's own) is counted and
//!   printed, as the crash test does after a restart;
//! - every ack answered 2xx is kept, and a replica that did not take it shows it
//!   within a second;
//! - only the replica holding the lease is ready and answers writes; the others
//!   answer 503, never a 2xx for what they did not commit.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::postgres;
use serde_json::{Value, json};
use tocsin::store::{PgStore, Store};

const REPLICAS: usize = 3;
/// kill -9 per run: the issue asks for at least ten.
const KILLS: usize = 10;
/// A page accepted at T reaches the receiver by T + this, across a failover: lease
/// expiry (3 s) plus a renewal period, the state read again, and the send.
const FAILOVER_BOUND: Duration = Duration::from_secs(5);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        child(Path::new(&args[2]), &args[3], &args[4]);
        return;
    }
    let tests: &[(&str, fn())] = &[(
        "replicas_killed_at_random_page_once_per_alert_and_keep_every_ack",
        chaos,
    )];
    common::run_tests(tests);
}

fn child(dir: &Path, receiver: &str, url: &str) {
    use tocsin::config::{Backend, Secret, WebhookSettings};
    use tocsin::escalation::{Level, Policy, Routing, Target};
    let policy = Policy {
        name: "default".into(),
        levels: vec![Level {
            after: Duration::ZERO,
            targets: vec![Target::Webhook("pager".into())],
            via: Vec::new(),
        }],
        repeat_interval: Duration::from_secs(24 * 3600),
        ack_timeout: None,
        fallback: Vec::new(),
        phone_severities: vec!["critical".into()],
    };
    let mut routing = Routing::console_only();
    routing.policies = BTreeMap::from([("default".into(), policy)]);
    routing.group_wait = Duration::from_millis(100);
    let mut config = common::test_config(dir);
    config.storage.backend = Backend::Postgres {
        url: Secret::new(url),
    };
    config.rules.paths = Vec::new();
    config.rules.evaluation_interval = Duration::from_millis(250);
    config.channels.console.enabled = false;
    config.routing = routing;
    config.channels.webhooks = vec![WebhookSettings {
        name: "pager".into(),
        url: Secret::new(format!("{receiver}/hook")),
        bearer: None,
        timeout: Duration::from_secs(2),
    }];
    common::serve_until_stdin_closes(config);
}

/// What the receiver got: each key once, and per (fingerprint, incident, reason)
/// the keys it came under, and when the first arrived.
#[derive(Default)]
struct Received {
    keys: HashSet<String>,
    repeats: usize,
    by_alert: HashMap<(u64, u64, String), HashSet<String>>,
    first_page: HashMap<u64, Instant>,
    incidents: HashMap<u64, u64>,
    reused: Vec<String>,
}

struct Replica {
    child: Child,
    base: String,
}

fn start(dir: &Path, receiver: &str, url: &str) -> Replica {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("child")
        .arg(dir)
        .arg(receiver)
        .arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn a replica");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("the replica did not start: {line:?}"))
        .to_string();
    Replica {
        child,
        base: format!("http://{addr}"),
    }
}

fn chaos() {
    let seed = std::env::var("TOCSIN_REPLICAS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("replicas seed {seed} (TOCSIN_REPLICAS_SEED={seed} replays it)");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(chaos_async(seed));
}

async fn chaos_async(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let url = postgres::fresh_database("replicas");
    let received = Arc::new(Mutex::new(Received::default()));
    let receiver = receiver(received.clone()).await;
    let dirs: Vec<_> = (0..REPLICAS)
        .map(|i| common::daemon_dir(&format!("replica-{i}"), ""))
        .collect();
    let mut replicas: Vec<Replica> = dirs.iter().map(|d| start(d, &receiver, &url)).collect();
    let http = tocsin::tls::http_client()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();

    // fingerprint -> when it was accepted; incident acked -> actor.
    let mut accepted: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut acked: Vec<(u64, String)> = Vec::new();
    let mut refused_by_standby = 0;
    let mut failovers: Vec<Duration> = Vec::new();
    for round in 0..KILLS * 2 {
        // Prometheus: a new alert to every replica, until one takes it (bounded).
        let labels = json!({"alertname": "ReplicaTest", "instance": format!("i-{round}")});
        let body = json!([{"labels": labels, "startsAt": now_rfc3339()}]);
        let deadline = Instant::now() + Duration::from_secs(15);
        let fp = loop {
            let mut took = None;
            for r in &replicas {
                let answer = http
                    .post(format!("{}/api/v2/alerts", r.base))
                    .json(&body)
                    .send()
                    .await;
                match answer.map(|a| a.status()) {
                    Ok(s) if s.is_success() => took = Some(Instant::now()),
                    Ok(s) if s == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                        refused_by_standby += 1
                    }
                    Ok(s) => panic!("round {round}: a replica answered {s}"),
                    Err(_) => {}
                }
            }
            if let Some(at) = took {
                let fp = fingerprint(&labels);
                accepted.entry(fp).or_insert(at);
                break fp;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: no replica took the alert"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let _ = fp;

        // An operator acks an earlier incident on a random replica.
        if round > 2 && rng.bool() {
            let id = rng.u64(1..round as u64);
            let r = &replicas[rng.usize(..REPLICAS)];
            let actor = format!("op-{round}");
            let answer = http
                .post(format!("{}/api/v1/alerts/{id}/ack", r.base))
                .json(&json!({"actor": actor}))
                .send()
                .await;
            if let Ok(a) = answer
                && a.status().is_success()
            {
                acked.push((id, actor));
                // Every other live replica shows it within a second.
                for other in replicas.iter().filter(|o| o.base != r.base) {
                    assert!(
                        shows_ack(&http, &other.base, id).await,
                        "round {round}: the ack of incident {id} is not seen on {} within 1 s",
                        other.base
                    );
                }
            }
        }

        // Every other round, kill -9 a replica (often the one holding the lease).
        if round % 2 == 1 {
            let victim = if rng.bool() {
                leader(&http, &replicas).await.unwrap_or(0)
            } else {
                rng.usize(..REPLICAS)
            };
            let was_leader = leader(&http, &replicas).await == Some(victim);
            let r = &mut replicas[victim];
            r.child.kill().unwrap();
            let killed = Instant::now();
            r.child.wait().unwrap();
            tokio::time::sleep(Duration::from_millis(rng.u64(0..800))).await;
            replicas[victim] = start(&dirs[victim], &receiver, &url);
            // One failover at a time: the next kill waits until a replica acts.
            let deadline = Instant::now() + Duration::from_secs(15);
            while leader(&http, &replicas).await.is_none() {
                assert!(
                    Instant::now() < deadline,
                    "round {round}: no replica took over"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if was_leader {
                failovers.push(killed.elapsed());
            }
            println!("round {round}: killed replica {victim} (held the lease: {was_leader})");
        }
    }

    // Every accepted alert is paged, each within the bound of its acceptance.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let missing: Vec<u64> = {
            let r = received.lock().unwrap();
            accepted
                .keys()
                .filter(|fp| !r.first_page.contains_key(fp))
                .copied()
                .collect()
        };
        if missing.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "never paged: {missing:016x?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for r in &mut replicas {
        drop(r.child.stdin.take());
        let _ = r.child.wait();
    }
    let r = received.lock().unwrap();
    let mut latencies: Vec<Duration> = accepted
        .iter()
        .map(|(fp, at)| r.first_page[fp].saturating_duration_since(*at))
        .collect();
    if std::env::var("TOCSIN_REPLICAS_VERBOSE").is_ok() {
        println!("latencies in order of acceptance: {latencies:?}");
    }
    latencies.sort();
    println!(
        "pages: {} alerts, latency median {:?}, max {:?}; {} sent again under their key; {} refusals by replicas without the lease",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies.last().unwrap(),
        r.repeats,
        refused_by_standby,
    );
    failovers.sort();
    if !failovers.is_empty() {
        println!(
            "failover (kill -9 of the replica holding the lease to another ready): {} times, median {:?}, max {:?}",
            failovers.len(),
            failovers[failovers.len() / 2],
            failovers.last().unwrap()
        );
    }
    assert!(
        *latencies.last().unwrap() <= FAILOVER_BOUND,
        "a page went out {:?} after it was accepted",
        latencies.last().unwrap()
    );
    assert!(r.reused.is_empty(), "{:?}", r.reused);
    // A message regrouped after a failover (others joined or left its group)
    // carries a group key: the same notification may then arrive under a group key
    // and its own, as after a restart in the crash test; counted, not hidden. Two
    // keys of its own would be two pages of one level.
    let mut regrouped = 0;
    for ((fp, incident, reason), keys) in &r.by_alert {
        let own = keys.iter().filter(|k| !k.starts_with("group.")).count();
        assert!(
            own <= 1,
            "{fp:016x} incident {incident} {reason} paged under several keys: {keys:?}"
        );
        regrouped += usize::from(keys.len() > 1);
    }
    println!("{regrouped} notifications came twice, regrouped after a failover");
    let store = PgStore::connect(&url).unwrap();
    for (id, actor) in &acked {
        let fp = store
            .incident(*id)
            .unwrap()
            .expect("an acked incident exists");
        let timeline = store.timeline(fp).unwrap();
        assert!(
            timeline.iter().any(|e| e.actor.as_deref() == Some(actor)),
            "the ack of incident {id} by {actor} (answered 2xx) is lost"
        );
    }
    let loaded = store.load().unwrap();
    let numbers: HashSet<u64> = loaded.alerts.iter().filter_map(|a| a.incident).collect();
    assert_eq!(
        numbers.len(),
        loaded.alerts.len(),
        "incident numbers are unique"
    );
    assert_eq!(
        loaded.alerts.len(),
        accepted.len(),
        "one incident per alert"
    );
}

/// The replica that is ready (holds the lease), if one is.
async fn leader(http: &reqwest::Client, replicas: &[Replica]) -> Option<usize> {
    for (i, r) in replicas.iter().enumerate() {
        if let Ok(a) = http.get(format!("{}/readyz", r.base)).send().await
            && a.status().is_success()
        {
            return Some(i);
        }
    }
    None
}

/// Whether `base` shows incident `id` acked within a second.
async fn shows_ack(http: &reqwest::Client, base: &str, id: u64) -> bool {
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        if let Ok(a) = http.get(format!("{base}/api/v1/alerts/{id}")).send().await
            && let Ok(v) = a.json::<Value>().await
            && v["state"] == "acknowledged"
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn fingerprint(labels: &Value) -> u64 {
    let pairs: Vec<(String, String)> = labels
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    tocsin::labels::Labels::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .fingerprint()
        .0
}

async fn receiver(received: Arc<Mutex<Received>>) -> String {
    use axum::extract::State as Extract;
    use axum::http::{HeaderMap, StatusCode};
    async fn hook(
        Extract(received): Extract<Arc<Mutex<Received>>>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> StatusCode {
        let key = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mut r = received.lock().unwrap();
        if !r.keys.insert(key.clone()) {
            r.repeats += 1;
            return StatusCode::OK;
        }
        let reason = message["reason"].as_str().unwrap_or("").to_string();
        for a in message["alerts"].as_array().into_iter().flatten() {
            let fp = a["fingerprint"]
                .as_str()
                .and_then(|s| u64::from_str_radix(s, 16).ok())
                .or_else(|| a["fingerprint"].as_u64())
                .unwrap_or(0);
            let incident = a["incident"].as_u64().unwrap_or(0);
            r.by_alert
                .entry((fp, incident, reason.clone()))
                .or_default()
                .insert(key.clone());
            if reason == "firing" {
                r.first_page.entry(fp).or_insert_with(Instant::now);
            }
            if let Some(before) = r.incidents.insert(incident, fp)
                && before != fp
            {
                r.reused.push(format!(
                    "incident {incident} named {before:016x} then {fp:016x}"
                ));
            }
        }
        StatusCode::OK
    }
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(received);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}
