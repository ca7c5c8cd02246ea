//! Restarts, graceful and `kill -9`, of a process running the engine over a redb
//! store: `for` progress, incident ids, acks and timelines survive, and nothing fires
//! twice. The test binary re-executes itself as the child (`child DB RULES`), which
//! reads commands on stdin and answers on stdout:
//!
//! - `sample T SERIES VALUE` appends a sample at T seconds;
//! - `eval T` evaluates at T, commits the batch, prints each notification as
//!   `notify INCIDENT REASON T`, then `ok T`;
//! - `ack INCIDENT ACTOR T` acks, commits, prints notifications and `ok T`.
//!
//! `ok` is printed only after the batch is durable, so anything acknowledged by an
//! `ok` must survive a kill.
//!
//! The child hosts the engine over the store, not the daemon: what is checked here
//! is the state machine's state across kills (a notification is printed once, when
//! its state change is durable). The daemon's deliveries on top of it are at least
//! once, and are killed and checked in `tests/crash.rs`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;

use tocsin::alert::{Event, State};
use tocsin::clock::Timestamp;
use tocsin::engine::{Changes, Engine};
use tocsin::rules::{CheckOptions, check_sources, read_sources};
use tocsin::ruletest::notation::parse_series;
use tocsin::series::{Limits, Sample, SeriesStore};
use tocsin::store::{Batch, Durability, RedbStore, Store};

const RULES: &str = r#"metric cpu_usage gauge ratio

alert "CPU使用率異常" {
  when cpu_usage > 90% for 15m
  severity critical
}
"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        child(Path::new(&args[2]), Path::new(&args[3]));
        return;
    }
    let tests: &[(&str, fn())] = &[
        (
            "graceful_restart_keeps_for_progress_ids_and_timelines",
            graceful_restart,
        ),
        (
            "kill_9_at_random_moments_loses_nothing_and_fires_once",
            kill_9_storm,
        ),
        (
            "an_ack_acknowledged_before_a_kill_survives_it",
            ack_survives_kill,
        ),
    ];
    common::run_tests(tests);
}

// ---------------------------------------------------------------------------------
// The child: an engine host.

fn child(db: &Path, rules: &Path) {
    let sources = read_sources(&[rules.to_path_buf()]).expect("rules");
    let set = Arc::new(check_sources(&sources, &CheckOptions::default()).expect("rules check"));
    let store = RedbStore::open(db).expect("open store");
    let alerts = store.load_alerts().expect("load alerts");
    let mut engine = Engine::new(
        set.clone(),
        alerts.into_iter().map(|a| (a.fingerprint, a)).collect(),
        store.next_incident().expect("next incident"),
    );
    let mut series = SeriesStore::new(Limits {
        retention: set.longest_window() + std::time::Duration::from_secs(300),
        ..Limits::default()
    });
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        let words: Vec<&str> = line.split_whitespace().collect();
        let outcome = match words.as_slice() {
            ["sample", t, sel, v] => {
                let (metric, labels) = parse_series(sel).expect("series");
                let s = Sample {
                    t: Timestamp::from_secs(t.parse().unwrap()),
                    v: v.parse().unwrap(),
                };
                series.append(&metric, &labels, s).expect("append");
                continue;
            }
            ["eval", t] => engine.evaluate(&series, Timestamp::from_secs(t.parse().unwrap())),
            ["ack", id, actor, t] => {
                let fp = engine
                    .alert_by_incident(id.parse().unwrap())
                    .expect("incident")
                    .fingerprint;
                let event = Event::Ack {
                    actor: actor.to_string(),
                    via: "test".into(),
                    note: None,
                };
                engine
                    .apply(fp, &event, Timestamp::from_secs(t.parse().unwrap()))
                    .expect("ack")
            }
            other => panic!("unknown command {other:?}"),
        };
        // Durable first; only then say so.
        let Changes {
            alerts,
            removed,
            timeline,
            next_incident,
        } = outcome.changes;
        let batch = Batch {
            alerts,
            removed,
            timeline,
            next_incident,
            ..Batch::default()
        };
        store.commit(&batch, Durability::Immediate).expect("commit");
        for n in &outcome.notifications {
            writeln!(
                out,
                "notify {} {} {}",
                n.incident.unwrap_or(0),
                n.reason,
                n.at.0 / 1000
            )
            .unwrap();
        }
        writeln!(out, "ok {}", words[words.len() - 1]).unwrap();
        out.flush().unwrap();
    }
}

// ---------------------------------------------------------------------------------
// The parent side.

struct Host {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Every notification the children printed, across restarts.
    notifications: Vec<(u64, String, i64)>,
}

struct Setup {
    dir: PathBuf,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("restart-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cpu.rules"), RULES).unwrap();
        Setup { dir }
    }

    fn db(&self) -> PathBuf {
        self.dir.join("data/tocsin.redb")
    }

    fn start(&self, notifications: Vec<(u64, String, i64)>) -> Host {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .arg("child")
            .arg(self.db())
            .arg(self.dir.join("cpu.rules"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn child");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Host {
            child,
            stdin,
            stdout,
            notifications,
        }
    }

    /// The store as a fresh process would find it.
    fn stored(&self) -> (Vec<tocsin::alert::Alert>, RedbStore) {
        let store = RedbStore::open(self.db()).expect("reopen");
        (store.load_alerts().unwrap(), store)
    }
}

impl Host {
    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("child alive");
    }

    /// Sends the minute `t`: one sample and an evaluation.
    fn minute(&mut self, t: i64, cpu: f64) {
        self.send(&format!(
            "sample {} cpu_usage{{host=\"bot-1\"}} {cpu}",
            t * 60
        ));
        self.send(&format!("eval {}", t * 60));
    }

    /// Reads until `ok T`, collecting notifications; `None` if the child died.
    fn wait_ok(&mut self, t_secs: i64) -> Option<()> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.stdout.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let w: Vec<&str> = line.split_whitespace().collect();
            match w.as_slice() {
                ["notify", id, reason, at] => self.notifications.push((
                    id.parse().unwrap(),
                    reason.to_string(),
                    at.parse().unwrap(),
                )),
                ["ok", t] if *t == t_secs.to_string() => return Some(()),
                _ => {}
            }
        }
    }

    fn stop(mut self) -> Vec<(u64, String, i64)> {
        drop(self.stdin);
        assert!(self.child.wait().unwrap().success());
        self.notifications
    }

    fn kill(mut self) -> Vec<(u64, String, i64)> {
        self.child.kill().unwrap(); // SIGKILL on Unix
        self.child.wait().unwrap();
        self.notifications
    }
}

fn firing_count(n: &[(u64, String, i64)], incident: u64) -> usize {
    n.iter()
        .filter(|(id, r, _)| *id == incident && r == "firing")
        .count()
}

fn graceful_restart() {
    let setup = Setup::new("graceful");
    let mut host = setup.start(Vec::new());
    for t in 0..=10 {
        host.minute(t, 0.95);
        host.wait_ok(t * 60).unwrap();
    }
    let notes = host.stop();
    let (alerts, _) = setup.stored();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].state, State::Pending);
    assert_eq!(
        alerts[0].active_since,
        Some(Timestamp::from_secs(0)),
        "for progress kept"
    );

    // The new process has no samples yet: the first evaluations after the restart
    // must not reset the pending alert.
    let mut host = setup.start(notes);
    host.send("eval 660");
    host.wait_ok(660).unwrap();
    for t in 11..=20 {
        host.minute(t, 0.95);
        host.wait_ok(t * 60).unwrap();
    }
    let notes = host.stop();
    assert_eq!(
        notes,
        vec![(1, "firing".to_string(), 15 * 60)],
        "fires once, at exactly 15m"
    );

    let mut host = setup.start(notes);
    host.minute(21, 0.5);
    host.wait_ok(21 * 60).unwrap();
    for t in 22..=40 {
        host.minute(t, 0.95);
        host.wait_ok(t * 60).unwrap();
    }
    let notes = host.stop();
    let (alerts, store) = setup.stored();
    assert_eq!(notes[1], (1, "resolved".to_string(), 21 * 60));
    assert_eq!(
        notes[2],
        (2, "firing".to_string(), 37 * 60),
        "re-firing opens incident 2"
    );
    assert_eq!(alerts[0].incident, Some(2));
    let timeline: Vec<(State, State)> = store
        .timeline(alerts[0].fingerprint)
        .unwrap()
        .iter()
        .map(|e| (e.from, e.to))
        .collect();
    assert_eq!(
        timeline,
        [
            (State::Inactive, State::Pending),
            (State::Pending, State::Firing),
            (State::Firing, State::Resolved),
            (State::Resolved, State::Pending),
            (State::Pending, State::Firing),
        ]
    );
    assert!(
        store.alert_by_incident(1).unwrap().is_some(),
        "incident 1 still answers"
    );
}

/// Two incidents' worth of minutes, killed at least 20 times at random points:
/// after each kill the parent resumes from the last acknowledged minute (as a
/// real sender retries what was not acknowledged).
fn kill_9_storm() {
    let seed = std::env::var("TOCSIN_RESTART_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("kill -9 storm seed: {seed} (replay with TOCSIN_RESTART_SEED={seed})");
    // Seeded: the seed is printed, so a failing run replays with TOCSIN_RESTART_SEED.
    let mut rng = fastrand::Rng::with_seed(seed);
    // cpu high for minutes 0..=30, low 31..=35, high 36..=70: fires at 15, resolves
    // at 31, fires again at 51.
    let cpu = |t: i64| if (31..=35).contains(&t) { 0.5 } else { 0.95 };
    let last = 70;
    let setup = Setup::new("kill9");
    let mut notes = Vec::new();
    let mut next = 0;
    let mut kills = 0;
    while next <= last {
        let mut host = setup.start(notes);
        // Send a run of minutes without waiting, then kill somewhere inside it.
        let run = rng.i64(1..=6);
        let end = (next + run - 1).min(last);
        for t in next..=end {
            host.minute(t, cpu(t));
        }
        let acked_until = rng.i64(next..=end);
        for t in next..=acked_until {
            host.wait_ok(t * 60).expect("child answers");
        }
        next = acked_until + 1;
        if kills < 20 || rng.bool() {
            notes = host.kill();
            kills += 1;
        } else {
            for t in next..=end {
                host.wait_ok(t * 60).unwrap();
            }
            next = end + 1;
            notes = host.stop();
        }
    }
    assert!(kills >= 20, "{kills} kills");
    let (alerts, store) = setup.stored();
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        (alerts[0].state, alerts[0].incident),
        (State::Firing, Some(2))
    );
    // Nothing fired twice: one firing notification at most per incident, and exactly
    // one firing transition per incident in the timeline.
    assert!(
        firing_count(&notes, 1) <= 1 && firing_count(&notes, 2) <= 1,
        "{notes:?}"
    );
    let fired: BTreeMap<i64, usize> = store
        .timeline(alerts[0].fingerprint)
        .unwrap()
        .iter()
        .filter(|e| e.to == State::Firing)
        .fold(BTreeMap::new(), |mut m, e| {
            *m.entry(e.at.0 / 60_000).or_default() += 1;
            m
        });
    assert_eq!(
        fired,
        BTreeMap::from([(15, 1), (51, 1)]),
        "fired at 15m and 51m, once each"
    );
}

fn ack_survives_kill() {
    let setup = Setup::new("ack");
    let mut host = setup.start(Vec::new());
    for t in 0..=15 {
        host.minute(t, 0.95);
        host.wait_ok(t * 60).unwrap();
    }
    host.send(&format!("ack 1 alice {}", 16 * 60));
    host.wait_ok(16 * 60).unwrap();
    host.kill();
    let (alerts, store) = setup.stored();
    assert_eq!(alerts[0].state, State::Acknowledged);
    assert_eq!(
        alerts[0].ack.as_ref().map(|a| a.actor.as_str()),
        Some("alice")
    );
    let last = store
        .timeline(alerts[0].fingerprint)
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(
        (last.to, last.actor.as_deref()),
        (State::Acknowledged, Some("alice"))
    );
}
