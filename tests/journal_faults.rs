//! A journal write that fails: the state folder on a small tmpfs that fills up
//! (ENOSPC), under a running daemon over the real redb file and its write-ahead
//! journal (`store/journal.rs`, RELIABILITY.md). The fault tests of
//! `disk_faults.rs` run redb on a fake disk, which has no journal.
//!
//! While the disk is full: pushes, `/api/v2/alerts` and acks are answered 503
//! with a JSON reason naming the journal and the OS error, `/readyz` 503; the
//! bytes as a restart would find them hold every change answered 2xx and none
//! of those refused (a refused frame is cut off, never replayed). Once the disk
//! has room again the daemon is ready again without a restart, the same requests
//! succeed, and what the API shows is what the files hold.
//!
//! Needs root to mount the tmpfs (CI runs as root); it says so otherwise.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::served::Served;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tocsin::clock::Timestamp;
use tocsin::store::{RedbStore, Store};

const RULES: &str = r#"metric queue_length gauge count

alert "キュー滞留" {
  when queue_length > 100
  severity critical
}
"#;

const T0: i64 = 1_800_000_000;

/// A tmpfs of `mib` MiB mounted at `at`, unmounted when dropped (a failing test
/// included).
struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    fn mount(at: &Path, mib: u32) -> Tmpfs {
        let _ = Command::new("umount").arg(at).output();
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill it up, which needs root \
             (CI runs the tests as root): mount said {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            at: at.to_path_buf(),
        }
    }

    /// Writes to a file until the filesystem is full; its path. Again after each
    /// refused write: the journal cuts a refused frame off, which frees its pages.
    fn fill(&self) -> PathBuf {
        let path = self.at.join("filler");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let chunk = vec![0u8; 64 << 10];
        // Bounded: the tmpfs is a few MiB.
        for _ in 0..100_000 {
            if f.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).output();
    }
}

/// The state as a restart would find it: the folder's files copied elsewhere and
/// opened (the journal replayed).
fn as_restarted(data: &Path, name: &str) -> RedbStore {
    let copy = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy).unwrap();
    for e in std::fs::read_dir(data).unwrap().flatten() {
        std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
    }
    RedbStore::open(copy.join("tocsin.redb")).expect("reopens")
}

fn hosts(store: &RedbStore) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = store
        .load()
        .unwrap()
        .alerts
        .values()
        .map(|a| {
            let host = a.labels.get("host").unwrap_or_default().to_string();
            (host, a.ack.is_some())
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_the_journal_gets_503_keeps_what_was_acked_and_recovers() {
    let dir = common::daemon_dir("journal-faults", RULES);
    let disk = Tmpfs::mount(&dir.join("disk"), 8);
    let data = disk.at.join("data");
    let mut config = common::test_config(&dir);
    config.storage.path = data.join("tocsin.redb");
    config.channels.console.enabled = false;
    config.rules.evaluation_interval = Duration::from_secs(60);
    let s = Served::open(config, Timestamp::from_secs(T0), None).await;

    assert_eq!(s.push("a", 500.0).await.0, StatusCode::OK);
    assert_eq!(s.push("c", 500.0).await.0, StatusCode::OK);
    let (status, body) = s
        .post("/api/v1/alerts/1/ack", json!({"actor": "sato"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(s.get("/readyz").await.0, StatusCode::OK);
    // Pages sent and settled before the disk fills: this test is about the
    // requests refused, not a settlement lost with the disk.
    s.daemon.caught_up().await;
    s.daemon.flush().await.unwrap();
    // A timeline is read from redb: the journal is folded first, its file closed,
    // so the next frame starts a new file (one that holds room in its last page
    // would take a small frame on a full disk).
    assert_eq!(s.alert("1").await["state"], "acknowledged");

    let filler = disk.fill();
    let (status, body) = s.push("b", 500.0).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let reason = body["error"].as_str().unwrap_or_default();
    assert!(reason.starts_with("store: "), "{reason}");
    assert!(reason.contains("journal"), "{reason}");
    assert!(reason.contains("No space left on device"), "{reason}");
    disk.fill();
    let (status, body) = s.alertmanager("db-1").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["error"].is_string(), "{body}");
    disk.fill();
    let (status, body) = s
        .post("/api/v1/alerts/2/ack", json!({"actor": "tanaka"}))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["error"].is_string(), "{body}");
    disk.fill();
    let (status, body) = s.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    // What the API shows is what was committed: the refused ack is not shown.
    let (status, body) = s.get("/api/v1/alerts/2").await;
    if status == StatusCode::OK {
        let two: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(two["ack"], Value::Null, "the refused ack is shown: {two}");
    } else {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }
    // The files as a restart would find them: the ack answered 2xx, nothing refused.
    let restarted = as_restarted(&data, "journal-faults-full");
    assert_eq!(
        hosts(&restarted),
        [("a".to_string(), true), ("c".to_string(), false)]
    );
    drop(restarted);

    // Room again: ready without a restart at the next write (the evaluation
    // deadline tries one), and the same requests succeed.
    std::fs::remove_file(filler).unwrap();
    let evaluation = Timestamp::from_secs(T0) + Duration::from_secs(60);
    s.daemon.run_until(&s.clock, evaluation).await;
    assert_eq!(s.get("/readyz").await.0, StatusCode::OK);
    let two = s.alert("2").await;
    assert_eq!(two["ack"], Value::Null, "{two}");
    let (status, body) = s
        .post("/api/v1/alerts/2/ack", json!({"actor": "tanaka"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(s.push("b", 500.0).await.0, StatusCode::OK);
    assert_eq!(s.alertmanager("db-1").await.0, StatusCode::OK);
    let one = s.alert("1").await;
    assert_eq!(one["state"], "acknowledged", "{one}");
    s.daemon.flush().await.unwrap();
    let restarted = as_restarted(&data, "journal-faults-after");
    let all = hosts(&restarted);
    assert!(all.contains(&("a".to_string(), true)), "{all:?}");
    assert!(all.contains(&("c".to_string(), true)), "{all:?}");
    assert!(all.contains(&("b".to_string(), false)), "{all:?}");
    assert!(all.contains(&("db-1".to_string(), false)), "{all:?}");
    assert_eq!(all.len(), 4, "{all:?}");
    let numbers: Vec<u64> = {
        let mut n: Vec<u64> = restarted
            .load_alerts()
            .unwrap()
            .iter()
            .filter_map(|a| a.incident)
            .collect();
        n.sort();
        n
    };
    assert_eq!(numbers, [1, 2, 3, 4], "no incident number lost or reused");
}
