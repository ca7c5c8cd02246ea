//! The state file stays small: after a storm of new alerts, folded into redb
//! by many folds in random fingerprint order, a clean close gives the free pages
//! back and packs the sparse tables, and the reopened file still holds every
//! alert, its timeline and its notification-log key.

use tocsin::alert::State;
use tocsin::store::{Batch, Durability, RedbStore, Store};

mod common;
use common::records::{T, TempDir, entry, firing};

const ALERTS: usize = 20_000;
const PER_COMMIT: usize = 100;

/// One request of a storm: `PER_COMMIT` new firing alerts, each with the two
/// timeline entries (fired, notified) and the notification-log key a page leaves.
fn storm_batch(commit: usize) -> Batch {
    let mut batch = Batch::default();
    for k in 0..PER_COMMIT {
        let n = commit * PER_COMMIT + k;
        let a = firing(&format!("host-{n}:9100"), n as u64 + 1);
        let fp = a.fingerprint;
        batch.timeline.push((
            fp,
            entry(T.0, State::Inactive, State::Firing, "condition held"),
        ));
        batch.timeline.push((
            fp,
            entry(T.0 + 1, State::Firing, State::Firing, "paged on-call"),
        ));
        batch
            .sent
            .push((format!("{fp}/{}/slack:#alerts/firing/1", n + 1), T));
        batch.alerts.push(a);
    }
    batch.next_incident = ((commit + 1) * PER_COMMIT) as u64 + 1;
    batch
}

#[test]
fn after_a_storm_and_a_clean_close_the_file_is_compact_and_holds_every_alert() {
    let dir = TempDir::new("size");
    let path = dir.path().join("tocsin.redb");
    let store = RedbStore::open(&path).unwrap();
    let commits = ALERTS / PER_COMMIT;
    for c in 0..commits {
        store
            .commit(&storm_batch(c), Durability::Immediate)
            .unwrap();
        if c % 10 == 9 {
            // A read that waits for the fold: one fold per ten requests, as the
            // folder does under a storm, each rewriting the leaves it touches.
            store.next_incident().unwrap();
        }
    }
    let before_close = std::fs::metadata(&path).unwrap().len();
    drop(store);
    let size = std::fs::metadata(&path).unwrap().len();
    let per_alert = size / ALERTS as u64;
    // About 300 bytes are stored per alert here (the alert, two timeline
    // entries, the notification-log key, the incident number); left as the
    // folds leave it, the file is over 700 bytes an alert.
    assert!(
        per_alert <= 450,
        "{per_alert} bytes an alert ({size} bytes, {before_close} before the close)"
    );

    let store = RedbStore::open(&path).unwrap();
    let alerts = store.load_alerts().unwrap();
    assert_eq!(alerts.len(), ALERTS, "every alert read back");
    assert!(alerts.iter().all(|a| a.state == State::Firing));
    let last = storm_batch(commits - 1);
    let fp = last.alerts[PER_COMMIT - 1].fingerprint;
    assert_eq!(store.timeline(fp).unwrap().len(), 2, "its timeline");
    assert!(store.was_sent(&last.sent[PER_COMMIT - 1].0).unwrap());
    assert_eq!(store.next_incident().unwrap(), ALERTS as u64 + 1);
    // Written to again after the compaction, as the daemon does on its next start.
    store
        .commit(&storm_batch(commits), Durability::Immediate)
        .unwrap();
    drop(store);
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.load_alerts().unwrap().len(), ALERTS + PER_COMMIT);
}
