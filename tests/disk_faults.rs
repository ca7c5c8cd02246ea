//! Disk and resource faults.
//!
//! - A data directory tocsin cannot write at start: `tocsin serve` exits 2 with an
//!   error naming the file and the OS reason, and does not panic. (Run as an
//!   unprivileged user: when the tests run as root, the binary is started through
//!   `setpriv` as `nobody`, since root ignores permission bits.)
//! - A disk that fails during a write (a redb backend that fails on cue): the
//!   request gets a 503 with a JSON reason, `/readyz` says not ready until a write
//!   succeeds, nothing half-written is found when the bytes are reopened, and what
//!   the API shows is what was committed.
//! - Series, samples-per-series and label limits: the batch is refused whole with a
//!   reason, `tocsin_samples_refused_total{reason}` counts it, and the alerts that
//!   already fire carry on.

mod common;

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::disk::FakeDisk;
use common::served::Served;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tocsin::clock::Timestamp;
use tocsin::config::Config;
use tocsin::store::RedbStore;

const RULES: &str = r#"metric queue_length gauge count

alert "キュー滞留" {
  when queue_length > 100
  severity critical
}
"#;

const T0: i64 = 1_800_000_000;

// ---------------------------------------------------------------------------------
// An unwritable data directory at start.

fn running_as_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// Runs `tocsin serve --config CONFIG` as an unprivileged user; returns its exit
/// code and stderr. Fails if it is still running after ten seconds.
fn serve_unprivileged(config: &Path) -> (Option<i32>, String) {
    let bin = env!("CARGO_BIN_EXE_tocsin");
    let mut cmd = if running_as_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
        c
    } else {
        Command::new(bin)
    };
    let mut child = cmd
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tocsin");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tocsin started over a data directory it cannot write");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status.code(), err)
}

/// A folder `nobody` can read, with a config whose database is `db`.
fn unwritable_setup(name: &str) -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("disk-{name}"));
    if dir.exists() {
        // Left read-only by an earlier run: make it removable again.
        for e in walk(&dir) {
            let _ = std::fs::set_permissions(&e, std::fs::Permissions::from_mode(0o755));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("state/data/tocsin.redb");
    let config = dir.join("tocsin.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[storage]\npath = \"{}\"\n\n[rules]\npaths = []\n",
            db.display()
        ),
    )
    .unwrap();
    (dir, db)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

fn read_only(p: &Path) {
    let mode = if p.is_dir() { 0o555 } else { 0o444 };
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn assert_clear_refusal(code: Option<i32>, stderr: &str, names: &Path) {
    assert_eq!(code, Some(2), "exit code; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.contains(&names.display().to_string()),
        "the error names {}: {stderr}",
        names.display()
    );
    assert!(stderr.contains("Permission denied"), "{stderr}");
}

#[test]
fn a_data_directory_that_cannot_be_created_is_a_clear_error_at_start() {
    let (dir, db) = unwritable_setup("no-mkdir");
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    read_only(&state);
    let (code, stderr) = serve_unprivileged(&dir.join("tocsin.toml"));
    assert_clear_refusal(code, &stderr, &dir.join("state/data"));
    assert!(
        stderr.contains("cannot create the state directory"),
        "{stderr}"
    );
    assert!(!db.exists());
}

#[test]
fn a_read_only_data_directory_is_a_clear_error_at_start() {
    let (dir, db) = unwritable_setup("ro-dir");
    let data = db.parent().unwrap();
    std::fs::create_dir_all(data).unwrap();
    read_only(data);
    let (code, stderr) = serve_unprivileged(&dir.join("tocsin.toml"));
    assert_clear_refusal(code, &stderr, &db);
    assert!(!db.exists());
}

#[test]
fn a_read_only_database_file_is_a_clear_error_at_start() {
    let (dir, db) = unwritable_setup("ro-file");
    drop(RedbStore::open(&db).unwrap());
    let before = std::fs::read(&db).unwrap();
    read_only(&db);
    // `nobody` must reach the file to be refused by it.
    for p in [
        &dir,
        &dir.join("state"),
        &db.parent().unwrap().to_path_buf(),
    ] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (code, stderr) = serve_unprivileged(&dir.join("tocsin.toml"));
    assert_clear_refusal(code, &stderr, &db);
    assert_eq!(std::fs::read(&db).unwrap(), before, "the file is untouched");
}

// ---------------------------------------------------------------------------------
// A disk that fails during a write.

/// A daemon over `disk`, its loop running on a manual clock, served on 127.0.0.1
/// by the real router.
/// A daemon whose redb store sits on `disk`, served on 127.0.0.1.
async fn served(name: &str, disk: &FakeDisk, tune: impl FnOnce(&mut Config)) -> Served {
    let dir = common::daemon_dir(&format!("disk-{name}"), RULES);
    let mut config = common::test_config(&dir);
    config.channels.console.enabled = false;
    tune(&mut config);
    let store = RedbStore::with_shared_backend(disk.clone()).unwrap();
    Served::open(config, Timestamp::from_secs(T0), Some(Box::new(store))).await
}

#[tokio::test]
async fn a_disk_failing_mid_write_gets_503_not_ready_and_leaves_the_file_consistent() {
    let disk = FakeDisk::healthy();
    // Rules evaluated every minute: the evaluation that finds the disk writable
    // again comes while host a's sample is still fresh (5 minutes' lookback).
    let s = served("midwrite", &disk, |c| {
        c.rules.evaluation_interval = Duration::from_secs(60)
    })
    .await;
    assert_eq!(s.push("a", 500.0).await.0, StatusCode::OK);
    assert_eq!(s.alert("1").await["state"], "firing");
    assert_eq!(s.get("/readyz").await.0, StatusCode::OK);
    // The page about it is sent, and its settlement made durable, before the disk
    // fills: a settlement still waiting for a durable commit would be lost with
    // the failing disk and the page sent again (at least once), which is not what
    // this test is about.
    s.daemon.caught_up().await;
    s.daemon.flush().await.unwrap();

    // The disk fills up. A change that must be made durable is refused, with why.
    disk.fail();
    let (status, body) = s.push("b", 500.0).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let reason = body["error"].as_str().unwrap();
    assert!(reason.starts_with("store: "), "{reason}");
    assert!(reason.contains("No space left on device"), "{reason}");
    let (status, body) = s
        .post("/api/v1/alerts/1/ack", json!({"actor": "tanaka"}))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, body) = s.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("the state store refuses writes"), "{body}");
    // redb reads nothing more until the file is reopened, and reopening needs a
    // write: a timeline cannot be read either, and says so.
    let (status, body) = s.get("/api/v1/alerts/1").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("No space left on device"), "{body}");

    // The bytes as a restart would find them: consistent, the refused changes absent.
    {
        let reopened = RedbStore::with_backend(disk.copy()).expect("reopens");
        let alerts = reopened.load_alerts().unwrap();
        assert_eq!(alerts.len(), 1, "only host a's alert: {alerts:?}");
        assert_eq!(alerts[0].incident, Some(1));
        assert_eq!(alerts[0].ack, None);
        assert_eq!(reopened.next_incident().unwrap(), 2);
        reopened.load_outbox().unwrap();
        reopened.load_escalations().unwrap();
    }

    // The disk has room again: ready as soon as a write succeeds, without waiting
    // for traffic. The rules' evaluation deadline tries one (the old test called
    // the tick by hand): with nothing else due, that is exactly one evaluation
    // interval after the evaluation at start, and not a moment before.
    disk.recover();
    let evaluation = Timestamp::from_secs(T0) + Duration::from_secs(60);
    assert_eq!(s.daemon.next_deadline(), Some(evaluation));
    s.daemon
        .run_until(&s.clock, evaluation - Duration::from_millis(1))
        .await;
    assert_eq!(s.get("/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    s.daemon.run_until(&s.clock, evaluation).await;
    assert_eq!(s.get("/readyz").await.0, StatusCode::OK);
    // What was refused did not happen: the ack answered 503 was not kept.
    let one = s.alert("1").await;
    assert_eq!(
        one["state"], "firing",
        "the refused ack is not shown: {one}"
    );
    assert_eq!(one["ack"], Value::Null);
    // The same requests now succeed, and incident numbers carry on without a gap
    // the client could have seen.
    let (status, body) = s
        .post("/api/v1/alerts/1/ack", json!({"actor": "tanaka"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(s.push("b", 500.0).await.0, StatusCode::OK);
    let b = s.alert("2").await;
    assert_eq!(b["labels"]["host"], "b", "{b}");
    let reopened = RedbStore::with_backend(disk.copy()).unwrap();
    assert_eq!(reopened.load_alerts().unwrap().len(), 2);
}

// ---------------------------------------------------------------------------------
// Limits.

fn sample(name: &str, labels: Value, value: f64) -> Value {
    json!({"name": name, "labels": labels, "value": value})
}

#[tokio::test]
async fn the_series_limit_refuses_new_series_whole_counts_them_and_spares_firing_alerts() {
    let s = served("series-limit", &FakeDisk::healthy(), |c| {
        c.limits.max_series = 3
    })
    .await;
    assert_eq!(s.push("a", 500.0).await.0, StatusCode::OK);
    assert_eq!(s.alert("1").await["state"], "firing");
    // Three new series where two are left: the batch is refused whole, with why.
    let batch: Vec<Value> = (0..3)
        .map(|i| sample("bot_posts", json!({"account": format!("acct-{i}")}), 1.0))
        .collect();
    let (status, body) = s.post("/api/v1/samples", json!({"samples": batch})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["error"],
        "sample 2: series limit of 3 reached; new series are refused"
    );
    assert_eq!(body["sample"], 2);
    assert_eq!(s.refused("series_limit"), 3.0);
    let (_, metrics) = s.get("/metrics").await;
    assert!(
        metrics.contains("tocsin_series 1\n"),
        "nothing of it was kept"
    );
    // The firing alert is untouched and its series still takes samples.
    assert_eq!(s.push("a", 800.0).await.0, StatusCode::OK);
    let a = s.alert("1").await;
    assert_eq!(
        (a["state"].as_str(), a["value"].as_f64()),
        (Some("firing"), Some(800.0))
    );
    // Within the limit, new series are still taken.
    let (status, _) = s
        .post("/api/v1/samples", json!({"samples": batch[..2]}))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn too_many_labels_on_a_sample_is_refused_with_a_reason_and_counted() {
    let s = served("label-limit", &FakeDisk::healthy(), |c| {
        c.limits.max_labels = 2
    })
    .await;
    assert_eq!(s.push("a", 500.0).await.0, StatusCode::OK);
    let batch = json!({"samples": [
        sample("queue_length", json!({"host": "b"}), 1.0),
        sample("queue_length", json!({"host": "c", "pod": "p", "session": "s-81b2"}), 1.0),
    ]});
    let (status, body) = s.post("/api/v1/samples", batch).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "sample 1: 3 labels, at most 2");
    assert_eq!(s.refused("label_limit"), 2.0, "the whole batch was refused");
    assert_eq!(s.alert("1").await["state"], "firing");
    let (_, metrics) = s.get("/metrics").await;
    assert!(metrics.contains("tocsin_series 1\n"), "{metrics}");
}

#[tokio::test]
async fn a_series_at_its_sample_cap_refuses_the_batch_whole_and_counts_it() {
    let s = served("sample-cap", &FakeDisk::healthy(), |c| {
        c.limits.max_samples_per_series = 3
    })
    .await;
    // In the past of the daemon's clock, so an evaluation at T0 reads the newest.
    let at = |secs: i64| (T0 - 10 + secs) * 1000;
    let push = |host: &str, t: i64, v: f64| {
        sample("queue_length", json!({"host": host}), v)
            .as_object()
            .cloned()
            .map(|mut o| {
                o.insert("timestamp".into(), json!(at(t)));
                Value::Object(o)
            })
            .unwrap()
    };
    for t in 0..3 {
        let (status, body) = s
            .post("/api/v1/samples", json!({"samples": [push("a", t, 500.0)]}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Host b is new (fine); host a is at its cap: nothing of the batch is taken.
    let (status, body) = s
        .post(
            "/api/v1/samples",
            json!({"samples": [push("b", 3, 500.0), push("a", 3, 50.0)]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let reason = body["error"].as_str().unwrap();
    assert!(
        reason.starts_with("sample 1: series queue_length{host=\"a\"} holds 3 samples, its cap"),
        "{reason}"
    );
    assert_eq!(s.refused("sample_limit"), 2.0);
    let (_, metrics) = s.get("/metrics").await;
    assert!(
        metrics.contains("tocsin_series 1\n"),
        "host b was not taken"
    );
    // A re-sent sample (same timestamp) replaces, and does not count against the cap.
    let (status, body) = s
        .post("/api/v1/samples", json!({"samples": [push("a", 2, 600.0)]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(s.alert("1").await["value"], 600.0);
}
