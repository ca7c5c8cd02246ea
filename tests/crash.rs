//! `kill -9` during an alert storm: nothing owed is lost, no ack is forgotten, no
//! incident number names two alerts, and the redb file always opens.
//!
//! The test binary re-executes itself as the child (`child DIR RECEIVER`), which runs
//! the real daemon (`tocsin::server::start`, real clock) whose one escalation level
//! posts to a webhook the parent serves on 127.0.0.1. The parent is everyone else:
//! Prometheus posting alerts to `/api/v2/alerts` and resolving them, a host pushing
//! samples that fire a rule, operators acking over HTTP, and the webhook receiver,
//! which keeps each message once by its `Idempotency-Key` and counts repeats.
//! Several of those run at once while the parent kills the child with SIGKILL at
//! random moments (at least 20 times) and starts it again.
//!
//! At the end a last child drains the outbox and stops cleanly, and the parent
//! checks, against the store as the next start would read it:
//!
//! - every state change that owes a message (fired, acked, resolved) reached the
//!   receiver at least once: repeats after a crash are allowed, losses are not. A
//!   message no longer true when its turn came (a page for an alert acked or
//!   resolved since: resolve wins) is withdrawn instead, and only with a note on
//!   the timeline saying so, after the alert left the state that owed it;
//! - every ack that was answered 2xx is in the alert's timeline, by its actor;
//! - every alert post answered 2xx opened its incident;
//! - an incident number always names the same alert;
//! - the redb file passes redb's integrity check and the outbox is empty.
//!
//! Seeded: the seed is printed and `TOCSIN_CRASH_SEED=N` replays the same choices
//! and kill times (thread timing still varies). Bounded: about 20–40 s.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tocsin::alert::State;
use tocsin::labels::{Fingerprint, Labels};
use tocsin::store::{RedbStore, Store};

const RULES: &str = r#"metric crash_load gauge ratio

alert "CrashLoadHigh" {
  when crash_load > 90%
  severity critical
}
"#;

/// Kills per run: the issue asks for at least 20.
const KILLS: usize = 24;
/// Concurrent clients while the daemon lives, so kills land mid-request.
const WORKERS: usize = 3;
/// External alerts (alertname × instance) and pushing hosts.
const NAMES: [&str; 4] = ["QueueStuck", "BotDown", "ApiErrors", "DiskSlow"];
const INSTANCES: usize = 10;
const HOSTS: usize = 6;
/// Each alert fires at most this often: more would make it flap (six changes an
/// hour), and a flapping alert is held, not notified.
const MAX_FIRES: u32 = 2;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        child(Path::new(&args[2]), &args[3]);
        return;
    }
    let tests: &[(&str, fn())] = &[(
        "kill_9_during_an_alert_storm_loses_no_page_and_no_ack",
        storm,
    )];
    common::run_tests(tests);
}

// ---------------------------------------------------------------------------------
// The child: the daemon, until killed or until its stdin closes.

fn child(dir: &Path, receiver: &str) {
    // Short, so storms go out grouped (several alerts per message) within the run.
    let config = common::pager_config(dir, receiver, Duration::from_millis(300));
    common::serve_until_stdin_closes(config);
}

// ---------------------------------------------------------------------------------
// The parent.

/// Seeded, so a failing run replays from the seed it printed.
type Rng = fastrand::Rng;

/// What the webhook receiver processed: each key once.
#[derive(Default)]
struct Receiver {
    keys: HashSet<String>,
    /// Requests repeating a key already processed (a crash after sending).
    repeats: usize,
    /// (fingerprint, incident, reason) of every alert in every processed message,
    /// with how many processed messages carried it.
    got: BTreeMap<(u64, u64, String), Vec<String>>,
    /// The alert each incident number was seen for.
    incidents: HashMap<u64, u64>,
    reused: Vec<String>,
}

/// One alert Prometheus sends: firing since `starts` or resolved.
#[derive(Clone, Debug)]
struct External {
    labels: BTreeMap<String, String>,
    firing: Option<String>,
    /// The last `startsAt` sent, for the resolve.
    starts: String,
    fires: u32,
    /// Bumped (a new label set) once this one fired `MAX_FIRES` times.
    generation: u32,
    /// A post whose answer was lost with the child: sent again after the restart,
    /// as Prometheus resends.
    uncertain: bool,
    busy: bool,
}

/// A host pushing `crash_load`.
#[derive(Clone, Debug, Default)]
struct Host {
    /// The last value pushed.
    value: f64,
    fires: u32,
    generation: u32,
    uncertain: bool,
    busy: bool,
}

impl Host {
    fn name(&self, index: usize) -> String {
        format!("h{index}-g{}", self.generation)
    }
}

#[derive(Default)]
struct Model {
    externals: Vec<External>,
    hosts: Vec<Host>,
    /// Fingerprints whose firing post was answered 2xx, with how many times.
    fired_ok: BTreeMap<u64, u32>,
    /// Acks answered 2xx: (incident, fingerprint, actor).
    acked: Vec<(u64, u64, String)>,
    /// Incident numbers the API answered with, and the alert each named.
    api_incidents: HashMap<u64, u64>,
    reused: Vec<String>,
    ops: usize,
    failed_ops: usize,
    next_actor: usize,
}

fn now_rfc3339() -> String {
    let t = SystemTime::now();
    humantime::format_rfc3339_millis(t).to_string()
}

fn fingerprint(labels: &BTreeMap<String, String>) -> u64 {
    Labels::from_pairs(labels.clone()).fingerprint().0
}

struct Setup {
    dir: PathBuf,
    receiver: String,
}

impl Setup {
    fn db(&self) -> PathBuf {
        self.dir.join("data/tocsin.redb")
    }

    /// Starts a child and returns it with the address it serves on.
    fn start(&self) -> (Child, String) {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .arg("child")
            .arg(&self.dir)
            .arg(&self.receiver)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn child");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("the child did not start: {line:?}"))
            .to_string();
        (child, format!("http://{addr}"))
    }
}

fn storm() {
    let seed = std::env::var("TOCSIN_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("crash storm seed: {seed} (replay with TOCSIN_CRASH_SEED={seed})");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(storm_async(seed));
}

async fn storm_async(seed: u64) {
    tocsin::tls::install_crypto_provider();
    let started = Instant::now();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("crash-storm");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/crash.rules"), RULES).unwrap();
    let received = Arc::new(Mutex::new(Receiver::default()));
    let receiver = receiver(received.clone(), seed).await;
    let setup = Setup { dir, receiver };
    let http = tocsin::tls::http_client()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();

    let mut model = Model::default();
    for name in NAMES {
        for i in 0..INSTANCES {
            model.externals.push(External {
                labels: BTreeMap::from([
                    ("alertname".to_string(), name.to_string()),
                    ("instance".to_string(), format!("bot-{i}")),
                    ("severity".to_string(), "critical".to_string()),
                ]),
                firing: None,
                starts: String::new(),
                fires: 0,
                generation: 0,
                uncertain: false,
                busy: false,
            });
        }
    }
    model.hosts = vec![Host::default(); HOSTS];
    let model = Arc::new(Mutex::new(model));
    let rng = Arc::new(Mutex::new(Rng::with_seed(seed)));

    let mut kills = 0;
    while kills < KILLS {
        let (mut child, base) = setup.start();
        resend_uncertain(&http, &base, &model).await;
        let life = Duration::from_millis(150 + rng.lock().unwrap().u64(..900));
        let dead = Arc::new(AtomicBool::new(false));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..WORKERS {
            workers.spawn(worker(
                http.clone(),
                base.clone(),
                model.clone(),
                rng.clone(),
                dead.clone(),
            ));
        }
        tokio::time::sleep(life).await;
        child.kill().expect("kill -9"); // SIGKILL on Unix
        child.wait().unwrap();
        dead.store(true, Ordering::SeqCst);
        while let Some(done) = workers.join_next().await {
            if let Err(e) = done {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        kills += 1;
        // Every so often the file must open as a fresh process would find it.
        if kills % 8 == 0 {
            let store = RedbStore::open(setup.db()).expect("the store opens after kill -9");
            store.load_alerts().expect("alerts load");
            store.load_outbox().expect("the outbox loads");
        }
    }

    // A last life, not killed: resend what was uncertain, let the outbox drain.
    let (mut child, base) = setup.start();
    resend_uncertain(&http, &base, &model).await;
    let mut drained = false;
    let mut still_owed = f64::NAN;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        still_owed = outbox_pending(&http, &base).await;
        if still_owed == 0.0 {
            drained = true;
            break;
        }
    }
    // The API's view of incidents, once more.
    api_list(&http, &base, &model).await;
    drop(child.stdin.take());
    assert!(
        child.wait().unwrap().success(),
        "the last child stops cleanly"
    );
    assert!(drained, "the outbox did not drain: {still_owed} still owed");

    let model = model.lock().unwrap();
    let received = received.lock().unwrap();
    let (owed, withdrawn) = verify(&setup, &model, &received);
    // A message of several is written before it leaves and goes again whole,
    // under its key: no notification may arrive twice under two keys (before,
    // one regrouped after a restart did, when other alerts joined its group).
    let regrouped = received.got.values().filter(|keys| keys.len() > 1).count();
    println!(
        "crash storm: {kills} kills, {} operations ({} cut off by a kill), {} acks, \
         {owed} notifications owed and all received ({withdrawn} more withdrawn, no \
         longer true), in {} messages; {} requests repeated a key, {regrouped} \
         notifications came twice under two keys; {:.1} s",
        model.ops,
        model.failed_ops,
        model.acked.len(),
        received.keys.len(),
        received.repeats,
        started.elapsed().as_secs_f64()
    );
    let twice: Vec<_> = received
        .got
        .iter()
        .filter(|(_, keys)| keys.len() > 1)
        .collect();
    assert!(twice.is_empty(), "notified twice under two keys: {twice:?}");
}

/// The checks, against the store as a restart would read it.
/// Returns how many notifications the timelines owed (and the receiver got), and
/// how many more were withdrawn.
fn verify(setup: &Setup, model: &Model, received: &Receiver) -> (usize, usize) {
    // The file passes redb's own integrity check (it was closed cleanly last, but
    // every earlier open repaired a killed process's file).
    {
        let mut db = redb::Database::open(setup.db()).expect("redb opens the file");
        assert!(
            db.check_integrity().expect("integrity check runs"),
            "redb's integrity check repaired the file"
        );
    }
    let store = RedbStore::open(setup.db()).expect("the store opens");
    assert!(
        store.load_outbox().unwrap().is_empty(),
        "nothing left owed in the outbox"
    );
    let alerts = store.load_alerts().unwrap();
    let by_fp: HashMap<u64, &tocsin::alert::Alert> =
        alerts.iter().map(|a| (a.fingerprint.0, a)).collect();

    // Every state change that owes a message reached the receiver, unless the
    // message was withdrawn, as the timeline says.
    let mut missing = Vec::new();
    let mut owed_total = 0;
    let mut withdrawn_total = 0;
    for a in &alerts {
        let timeline = store.timeline(a.fingerprint).unwrap();
        assert!(
            !timeline.iter().any(|e| e.reason.starts_with("held")),
            "{}: flapping held a notification; the storm must stay below the flap limit",
            a.labels
        );
        // Written in the order things happened: no entry is stamped before the one
        // it follows (a step run at a time older than a change already committed).
        assert!(
            timeline.windows(2).all(|w| w[0].at <= w[1].at),
            "{}: the timeline goes back in time: {timeline:#?}",
            a.labels
        );
        // Pages: every change to firing owes one, unless it was withdrawn. Resolve
        // wins: a page no longer true when its turn came is not sent, and the
        // timeline says so; each withdrawal must follow the alert leaving firing.
        let changes = timeline
            .iter()
            .filter(|e| e.to == State::Firing && e.from != State::Firing)
            .count();
        let withdrawn_note = "not sent to webhook:pager: firing: ";
        let withdrawals: Vec<_> = timeline
            .iter()
            .filter(|e| e.reason.starts_with(withdrawn_note))
            .collect();
        for (i, w) in withdrawals.iter().enumerate() {
            let left = timeline
                .iter()
                .filter(|e| e.at <= w.at && e.from == State::Firing && e.to != State::Firing)
                .count();
            assert!(
                left > i,
                "{} ({}): {:?} withdrawn while the alert had left firing only {left} \
                 time(s): {timeline:#?}",
                a.labels,
                a.fingerprint,
                w.reason
            );
        }
        let withdrawn = withdrawals.len();
        assert!(
            withdrawn <= changes,
            "{}: {withdrawn} firing messages withdrawn, {changes} owed",
            a.labels
        );
        let owed = changes - withdrawn;
        let got = |incident: Option<u64>, reason: &str| {
            received
                .got
                .keys()
                .filter(|(fp, i, r)| {
                    *fp == a.fingerprint.0 && incident.is_none_or(|n| n == *i) && r == reason
                })
                .count()
        };
        owed_total += owed;
        withdrawn_total += withdrawn;
        if got(None, "firing") < owed {
            missing.push(format!(
                "{} ({}): {owed} firing owed ({withdrawn} more withdrawn), {} received",
                a.labels,
                a.fingerprint,
                got(None, "firing")
            ));
        }
        // Whoever was paged about an incident hears that it is over: every incident
        // whose page reached the receiver and that has ended (a later incident
        // opened, or the alert is resolved) got its resolved notice.
        let paged: Vec<u64> = received
            .got
            .keys()
            .filter(|(fp, _, r)| *fp == a.fingerprint.0 && r == "firing")
            .map(|(_, i, _)| *i)
            .collect();
        for i in &paged {
            let ended = a.incident.is_some_and(|current| *i < current)
                || (a.incident == Some(*i) && a.state == State::Resolved);
            owed_total += usize::from(ended);
            if ended && got(Some(*i), "resolved") == 0 {
                missing.push(format!(
                    "{} ({}): incident {i} was paged and ended, its resolved notice never came",
                    a.labels, a.fingerprint
                ));
            }
        }
        // And of its ack, answered 2xx, unless the ack no longer stood when its
        // turn came (withdrawn, as the timeline says).
        let ack_withdrawn = timeline.iter().any(|e| {
            e.reason
                .starts_with("not sent to webhook:pager: acknowledged: ")
        });
        for (incident, fp, _) in &model.acked {
            if *fp != a.fingerprint.0 || !paged.contains(incident) {
                continue;
            }
            owed_total += 1;
            if got(Some(*incident), "acknowledged") == 0 && !ack_withdrawn {
                missing.push(format!(
                    "{} ({}): incident {incident} was paged and acked, the ack never came",
                    a.labels, a.fingerprint
                ));
            }
        }
    }
    assert!(missing.is_empty(), "lost notifications:\n{missing:#?}");
    assert!(owed_total > 50, "the storm owed only {owed_total} messages");

    // Every post answered 2xx opened its incident(s).
    for (fp, times) in &model.fired_ok {
        let a = by_fp
            .get(fp)
            .unwrap_or_else(|| panic!("alert {} was accepted and is gone", Fingerprint(*fp)));
        let fired = store
            .timeline(a.fingerprint)
            .unwrap()
            .iter()
            .filter(|e| e.to == State::Firing && e.from != State::Firing)
            .count();
        assert!(
            fired as u32 >= *times,
            "{}: {times} firing posts accepted, {fired} firings stored",
            a.labels
        );
    }

    // Every ack answered 2xx is there, by its actor; an alert still in the acked
    // incident and not resolved since is still acknowledged.
    for (incident, fp, actor) in &model.acked {
        let timeline = store.timeline(Fingerprint(*fp)).unwrap();
        assert!(
            timeline
                .iter()
                .any(|e| e.to == State::Acknowledged && e.actor.as_deref() == Some(actor)),
            "the ack by {actor} of incident {incident} was answered 2xx and is lost"
        );
        let a = by_fp[fp];
        if a.incident == Some(*incident) && matches!(a.state, State::Firing) {
            panic!("incident {incident} was acked (2xx) and is firing again unacked");
        }
    }

    // An incident number names one alert: in messages, in API answers, in the store.
    assert!(received.reused.is_empty(), "{:#?}", received.reused);
    assert!(model.reused.is_empty(), "{:#?}", model.reused);
    let next = store.next_incident().unwrap();
    for (incident, fp) in received.incidents.iter().chain(&model.api_incidents) {
        assert!(*incident < next, "incident {incident} >= next {next}");
        let stored = store.alert_by_incident(*incident).unwrap();
        assert_eq!(
            stored.map(|a| a.fingerprint.0),
            Some(*fp),
            "incident {incident} names another alert in the store"
        );
    }
    for (fp, incident) in received
        .incidents
        .iter()
        .map(|(i, fp)| (fp, i))
        .chain(model.acked.iter().map(|(i, fp, _)| (fp, i)))
    {
        assert!(
            by_fp.contains_key(fp),
            "incident {incident}'s alert is gone"
        );
    }
    (owed_total, withdrawn_total)
}

/// One client: random operations until the child is killed.
async fn worker(
    http: reqwest::Client,
    base: String,
    model: Arc<Mutex<Model>>,
    rng: Arc<Mutex<Rng>>,
    dead: Arc<AtomicBool>,
) {
    while !dead.load(Ordering::SeqCst) {
        // A realistic pace rather than a flood: the storm lasts the whole run.
        let pause = rng.lock().unwrap().u64(..25);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let pick = rng.lock().unwrap().u64(..100);
        let ok = match pick {
            0..=39 => external_op(&http, &base, &model, &rng).await,
            40..=59 => host_op(&http, &base, &model, &rng).await,
            60..=89 => ack_op(&http, &base, &model, &rng).await,
            _ => api_list(&http, &base, &model).await,
        };
        let mut m = model.lock().unwrap();
        m.ops += 1;
        if !ok {
            m.failed_ops += 1;
            // The child is gone (or going): stop until the restart.
            return;
        }
    }
}

async fn post(http: &reqwest::Client, url: String, body: Value) -> Option<Value> {
    let r = http.post(url).json(&body).send().await.ok()?;
    let status = r.status();
    let body = r.json::<Value>().await.unwrap_or(Value::Null);
    if status.is_success() {
        Some(body)
    } else if status == reqwest::StatusCode::CONFLICT || status == reqwest::StatusCode::NOT_FOUND {
        // An ack racing a resolve, or an alert resolved away: not a fault.
        Some(Value::Null)
    } else {
        panic!("tocsin answered {status}: {body}");
    }
}

/// Prometheus: fire an alert (sometimes several at once), or resolve one.
async fn external_op(
    http: &reqwest::Client,
    base: &str,
    model: &Mutex<Model>,
    rng: &Mutex<Rng>,
) -> bool {
    // Choose under the lock, send without it.
    let (indices, bodies) = {
        let mut m = model.lock().unwrap();
        let mut r = rng.lock().unwrap();
        let burst = if r.u64(..4) == 0 { 5 } else { 1 };
        let mut indices = Vec::new();
        let mut bodies = Vec::new();
        for _ in 0..burst {
            let i = r.usize(..m.externals.len());
            let e = &mut m.externals[i];
            if e.busy {
                continue;
            }
            if e.firing.is_none() && e.fires >= MAX_FIRES {
                // Fired and resolved enough: the next bot of this slot takes over.
                e.generation += 1;
                e.fires = 0;
                e.labels
                    .insert("generation".to_string(), e.generation.to_string());
            }
            e.busy = true;
            let now = now_rfc3339();
            let body = match &e.firing {
                None => {
                    e.starts = now.clone();
                    json!({"labels": e.labels, "startsAt": now, "endsAt": "0001-01-01T00:00:00Z"})
                }
                Some(starts) => json!({"labels": e.labels, "startsAt": starts, "endsAt": now}),
            };
            indices.push(i);
            bodies.push(body);
        }
        (indices, bodies)
    };
    if indices.is_empty() {
        return true;
    }
    let answered = post(http, format!("{base}/api/v2/alerts"), Value::Array(bodies))
        .await
        .is_some();
    let mut m = model.lock().unwrap();
    for i in indices {
        let e = &mut m.externals[i];
        e.busy = false;
        // The model follows what was asked: an unanswered post is sent again.
        let fp = fingerprint(&e.labels);
        let fired = e.firing.is_none();
        if fired {
            e.firing = Some(e.starts.clone());
            e.fires += 1;
        } else {
            e.firing = None;
        }
        e.uncertain = !answered;
        if answered && fired {
            *m.fired_ok.entry(fp).or_default() += 1;
        }
    }
    answered
}

/// A host pushes its load: high fires `CrashLoadHigh`, low resolves it.
async fn host_op(
    http: &reqwest::Client,
    base: &str,
    model: &Mutex<Model>,
    rng: &Mutex<Rng>,
) -> bool {
    let (h, name, value) = {
        let mut m = model.lock().unwrap();
        let h = rng.lock().unwrap().usize(..HOSTS);
        let host = &mut m.hosts[h];
        if host.busy {
            return true;
        }
        if host.value < 0.9 && host.fires >= MAX_FIRES {
            // A new host takes over (a new series, a new alert).
            host.generation += 1;
            host.fires = 0;
        }
        let high = host.value < 0.9;
        host.busy = true;
        (h, host.name(h), if high { 0.97 } else { 0.2 })
    };
    let body =
        json!({"samples": [{"name": "crash_load", "labels": {"host": name}, "value": value}]});
    let answered = post(http, format!("{base}/api/v1/samples"), body)
        .await
        .is_some();
    let mut m = model.lock().unwrap();
    let host = &mut m.hosts[h];
    if value > 0.9 && host.value < 0.9 {
        host.fires += 1;
    }
    host.value = value;
    host.uncertain = !answered;
    host.busy = false;
    answered
}

/// An operator acks an alert that fires.
async fn ack_op(
    http: &reqwest::Client,
    base: &str,
    model: &Mutex<Model>,
    rng: &Mutex<Rng>,
) -> bool {
    let Ok(r) = http
        .get(format!("{base}/api/v1/alerts?state=firing"))
        .send()
        .await
    else {
        return false;
    };
    let Ok(list) = r.json::<Value>().await else {
        return false;
    };
    let firing: Vec<u64> = list["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["id"].as_u64())
        .collect();
    if firing.is_empty() {
        return true;
    }
    let (id, actor) = {
        let mut m = model.lock().unwrap();
        let id = firing[rng.lock().unwrap().usize(..firing.len())];
        m.next_actor += 1;
        (id, format!("op-{}", m.next_actor))
    };
    let Some(answer) = post(
        http,
        format!("{base}/api/v1/alerts/{id}/ack"),
        json!({"actor": actor, "note": "crash test"}),
    )
    .await
    else {
        return false;
    };
    if answer.is_null() {
        return true; // 409: resolved meanwhile
    }
    let fp: u64 = answer["fingerprint"]
        .as_str()
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .expect("fingerprint in the answer");
    let mut m = model.lock().unwrap();
    note_incident(&mut m, id, fp);
    m.acked.push((id, fp, actor));
    true
}

/// Lists every alert and notes which incident names which alert.
async fn api_list(http: &reqwest::Client, base: &str, model: &Mutex<Model>) -> bool {
    let Ok(r) = http.get(format!("{base}/api/v1/alerts")).send().await else {
        return false;
    };
    let Ok(list) = r.json::<Value>().await else {
        return false;
    };
    let mut m = model.lock().unwrap();
    for a in list["alerts"].as_array().into_iter().flatten() {
        let (Some(id), Some(fp)) = (
            a["id"].as_u64(),
            a["fingerprint"]
                .as_str()
                .and_then(|s| u64::from_str_radix(s, 16).ok()),
        ) else {
            continue;
        };
        note_incident(&mut m, id, fp);
    }
    true
}

fn note_incident(m: &mut Model, id: u64, fp: u64) {
    if let Some(before) = m.api_incidents.insert(id, fp)
        && before != fp
    {
        m.reused.push(format!(
            "API: incident {id} named {before:016x} then {fp:016x}"
        ));
    }
}

/// After a restart: send again what a killed child may not have taken.
async fn resend_uncertain(http: &reqwest::Client, base: &str, model: &Mutex<Model>) {
    let (externals, hosts) = {
        let m = model.lock().unwrap();
        let externals: Vec<Value> = m
            .externals
            .iter()
            .filter(|e| e.uncertain)
            .map(|e| match &e.firing {
                Some(starts) => {
                    json!({"labels": e.labels, "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z"})
                }
                None => json!({"labels": e.labels, "startsAt": e.starts, "endsAt": now_rfc3339()}),
            })
            .collect();
        let hosts: Vec<Value> = m
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| h.uncertain)
            .map(|(i, h)| json!({"name": "crash_load", "labels": {"host": h.name(i)}, "value": h.value}))
            .collect();
        (externals, hosts)
    };
    if !externals.is_empty() {
        post(
            http,
            format!("{base}/api/v2/alerts"),
            Value::Array(externals),
        )
        .await
        .expect("the restarted daemon takes the resent alerts");
    }
    if !hosts.is_empty() {
        post(
            http,
            format!("{base}/api/v1/samples"),
            json!({ "samples": hosts }),
        )
        .await
        .expect("the restarted daemon takes the resent samples");
    }
    let mut m = model.lock().unwrap();
    let fired: Vec<u64> = m
        .externals
        .iter()
        .filter(|e| e.uncertain && e.firing.is_some())
        .map(|e| fingerprint(&e.labels))
        .collect();
    for fp in fired {
        *m.fired_ok.entry(fp).or_default() += 1;
    }
    m.externals.iter_mut().for_each(|e| e.uncertain = false);
    m.hosts.iter_mut().for_each(|h| h.uncertain = false);
}

async fn outbox_pending(http: &reqwest::Client, base: &str) -> f64 {
    let Ok(r) = http.get(format!("{base}/metrics")).send().await else {
        return f64::NAN;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("tocsin_outbox_pending "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// The webhook receiver: keeps each message once by its idempotency key; slow now
/// and then, so some kills land while a message is on the wire.
async fn receiver(received: Arc<Mutex<Receiver>>, seed: u64) -> String {
    use axum::extract::State as Extract;
    use axum::http::{HeaderMap, StatusCode};
    type Shared = (Arc<Mutex<Receiver>>, Arc<Mutex<Rng>>);
    async fn hook(
        Extract((received, rng)): Extract<Shared>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> StatusCode {
        let delay = rng.lock().unwrap().u64(..40);
        tokio::time::sleep(Duration::from_millis(delay)).await;
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
                .unwrap_or(0);
            let incident = a["incident"].as_u64().unwrap_or(0);
            r.got
                .entry((fp, incident, reason.clone()))
                .or_default()
                .push(key.clone());
            if let Some(before) = r.incidents.insert(incident, fp)
                && before != fp
            {
                r.reused.push(format!(
                    "webhook: incident {incident} named {before:016x} then {fp:016x}"
                ));
            }
        }
        StatusCode::OK
    }
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state((
            received,
            Arc::new(Mutex::new(Rng::with_seed(seed ^ 0xfeed))),
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}
