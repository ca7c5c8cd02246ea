//! The redb store: round trips, atomic batches (by failing the disk mid-commit),
//! reopening files, schema versions, incident ids.

use std::path::Path;

use tocsin::alert::{Ack, Alert, State};
use tocsin::labels::Fingerprint;
use tocsin::store::{Batch, RedbStore, SCHEMA_VERSION, Store, StoreError};

mod common;
use common::disk::FakeDisk;
use common::records::{T, TempDir, alert, delivery, entry, firing};

fn pending(host: &str) -> Alert {
    let mut a = alert("投稿成功率低下", host);
    a.state = State::Pending;
    a.active_since = Some(T);
    a.consecutive = 3;
    a.value = 0.85;
    a
}

#[test]
fn alerts_and_timelines_round_trip() {
    let store = RedbStore::in_memory().unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(store.next_incident().unwrap(), 1);
    assert!(store.load_alerts().unwrap().is_empty());

    let mut a = firing("bot-1", 1);
    a.ack = Some(Box::new(Ack {
        actor: "alice".into(),
        via: "slack".into(),
        note: Some("looking".into()),
        at: T,
    }));
    a.state = State::Acknowledged;
    a.silenced_by.insert("m1".into());
    a.recent_changes = vec![T];
    let b = pending("bot-2");
    let fa = a.fingerprint;
    let batch = Batch {
        alerts: vec![a.clone(), b.clone()],
        removed: vec![],
        timeline: vec![
            (
                fa,
                entry(1, State::Inactive, State::Firing, "condition held"),
            ),
            (
                b.fingerprint,
                entry(1, State::Inactive, State::Pending, "p"),
            ),
            (
                fa,
                entry(2, State::Firing, State::Acknowledged, "acked by alice"),
            ),
        ],
        next_incident: 2,
        ..Batch::default()
    };
    store.apply(&batch).unwrap();

    let mut want = vec![a.clone(), b.clone()];
    want.sort_by_key(|a| a.fingerprint);
    assert_eq!(store.load_alerts().unwrap(), want);
    assert_eq!(store.alert(fa).unwrap(), Some(a.clone()));
    assert_eq!(store.alert(Fingerprint(42)).unwrap(), None);
    assert_eq!(store.alert_by_incident(1).unwrap(), Some(a.clone()));
    assert_eq!(store.alert_by_incident(2).unwrap(), None);
    assert_eq!(store.next_incident().unwrap(), 2);

    // Seq continues per alert across batches.
    store
        .apply(&Batch {
            timeline: vec![(fa, entry(3, State::Acknowledged, State::Resolved, "r"))],
            next_incident: 2,
            ..Batch::default()
        })
        .unwrap();
    let reasons: Vec<String> = store
        .timeline(fa)
        .unwrap()
        .into_iter()
        .map(|e| e.reason)
        .collect();
    assert_eq!(reasons, ["condition held", "acked by alice", "r"]);
    assert_eq!(store.timeline(b.fingerprint).unwrap().len(), 1);
    assert!(store.timeline(Fingerprint(42)).unwrap().is_empty());
}

#[test]
fn inactive_alerts_without_an_incident_are_deleted() {
    let store = RedbStore::in_memory().unwrap();
    let a = pending("bot-1");
    let b = pending("bot-2");
    let mut c = firing("bot-3", 1);
    store
        .apply(&Batch {
            alerts: vec![a.clone(), b.clone(), c.clone()],
            next_incident: 2,
            ..Batch::default()
        })
        .unwrap();

    let mut a_gone = a.clone();
    a_gone.state = State::Inactive;
    c.state = State::Inactive; // has an incident: kept for review
    store
        .apply(&Batch {
            alerts: vec![a_gone, c.clone()],
            removed: vec![b.fingerprint],
            next_incident: 2,
            ..Batch::default()
        })
        .unwrap();
    assert_eq!(store.load_alerts().unwrap(), vec![c]);
}

#[test]
fn non_finite_values_survive() {
    let store = RedbStore::in_memory().unwrap();
    let mut alerts = Vec::new();
    for (i, v) in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.5]
        .into_iter()
        .enumerate()
    {
        let mut a = pending(&format!("bot-{i}"));
        a.value = v;
        alerts.push(a);
    }
    store
        .apply(&Batch {
            alerts: alerts.clone(),
            next_incident: 1,
            ..Batch::default()
        })
        .unwrap();
    for a in alerts {
        let got = store.alert(a.fingerprint).unwrap().unwrap().value;
        assert!(
            got == a.value || (got.is_nan() && a.value.is_nan()),
            "{got}"
        );
    }
}

/// The journal's fold leaves out a delivery owed and done with between two folds;
/// one written by an earlier fold, then rescheduled and done with in one fold,
/// is deleted all the same. After a restart neither is owed, and the delivery
/// counter is past both.
#[test]
fn deliveries_done_with_before_their_fold_are_not_owed_after_a_restart() {
    let dir = TempDir::new("fold-outbox");
    let path = dir.path().join("tocsin.redb");
    let a = firing("bot-1", 1);
    let commit = |store: &RedbStore, batch: Batch| store.apply(&batch).unwrap();
    {
        let store = RedbStore::open(&path).unwrap();
        commit(
            &store,
            Batch {
                outbox: vec![delivery(1, &a)],
                ..Batch::default()
            },
        );
        // A read waits for the fold: delivery 1 is in the file now.
        assert_eq!(store.load().unwrap().outbox.len(), 1);
        let mut retried = delivery(1, &a);
        retried.attempts = 1;
        commit(
            &store,
            Batch {
                outbox: vec![retried, delivery(2, &a)],
                ..Batch::default()
            },
        );
        commit(
            &store,
            Batch {
                outbox_done: vec![1, 2],
                ..Batch::default()
            },
        );
        // Dropped: the last two frames fold together.
    }
    let store = RedbStore::open(&path).unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded.outbox, vec![], "nothing owed");
    assert_eq!(loaded.next_delivery, 3);
}

#[test]
fn a_reopened_file_has_everything() {
    let dir = TempDir::new("reopen");
    let path = dir.path().join("state").join("tocsin.redb");
    let p = pending("bot-1");
    let f = firing("bot-2", 1);
    {
        let store = RedbStore::open(&path).unwrap();
        store
            .apply(&Batch {
                alerts: vec![p.clone(), f.clone()],
                timeline: vec![
                    (
                        p.fingerprint,
                        entry(1, State::Inactive, State::Pending, "a"),
                    ),
                    (f.fingerprint, entry(1, State::Pending, State::Firing, "b")),
                    (f.fingerprint, entry(2, State::Firing, State::Firing, "c")),
                ],
                next_incident: 2,
                ..Batch::default()
            })
            .unwrap();
    }
    let store = RedbStore::open(&path).unwrap();
    let got = store.alert(p.fingerprint).unwrap().unwrap();
    assert_eq!(got.state, State::Pending);
    assert_eq!(got.active_since, Some(T), "the `for` progress survives");
    assert_eq!(got.consecutive, 3);
    assert_eq!(store.alert(f.fingerprint).unwrap(), Some(f.clone()));
    assert_eq!(store.alert_by_incident(1).unwrap(), Some(f.clone()));
    assert_eq!(store.next_incident().unwrap(), 2);
    let reasons: Vec<String> = store
        .timeline(f.fingerprint)
        .unwrap()
        .into_iter()
        .map(|e| e.reason)
        .collect();
    assert_eq!(reasons, ["b", "c"]);
    // Appending after a reopen continues the sequence.
    store
        .apply(&Batch {
            timeline: vec![(f.fingerprint, entry(3, State::Firing, State::Resolved, "d"))],
            next_incident: 2,
            ..Batch::default()
        })
        .unwrap();
    assert_eq!(store.timeline(f.fingerprint).unwrap().len(), 3);
}

#[test]
fn incident_ids_are_never_reused() {
    let dir = TempDir::new("incidents");
    let path = dir.path().join("tocsin.redb");
    {
        let store = RedbStore::open(&path).unwrap();
        store
            .apply(&Batch {
                alerts: vec![firing("bot-1", 1), firing("bot-2", 2)],
                next_incident: 3,
                ..Batch::default()
            })
            .unwrap();
    }
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.next_incident().unwrap(), 3);
    // A caller with a stale counter cannot move it back...
    store
        .apply(&Batch {
            next_incident: 1,
            ..Batch::default()
        })
        .unwrap();
    assert_eq!(store.next_incident().unwrap(), 3);
    // ...and an id written is never handed out again.
    store
        .apply(&Batch {
            alerts: vec![firing("bot-3", 9)],
            next_incident: 3,
            ..Batch::default()
        })
        .unwrap();
    assert_eq!(store.next_incident().unwrap(), 10);
    drop(store);
    assert_eq!(RedbStore::open(&path).unwrap().next_incident().unwrap(), 10);
}

// ---------------------------------------------------------------------------
// Schema versions: files written by other versions, made with redb directly.
// ---------------------------------------------------------------------------

const RAW_META: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
/// The alerts table as schema versions 1 to 3 wrote it (JSON values).
const RAW_ALERTS: redb::TableDefinition<u64, &str> = redb::TableDefinition::new("alerts");
/// The alerts table from schema version 4 on (encoded values).
const BYTE_ALERTS: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("alerts");

#[test]
fn a_newer_schema_is_refused_and_left_alone() {
    let dir = TempDir::new("newer");
    std::fs::create_dir_all(dir.path()).unwrap();
    let path = dir.path().join("tocsin.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(RAW_META)
            .unwrap()
            .insert("schema_version", SCHEMA_VERSION + 1)
            .unwrap();
        txn.commit().unwrap();
    }
    let err = RedbStore::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::UnsupportedSchema { found, supported }
            if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err:?}"
    );
    let message = format!(
        "the state database has schema version {}",
        SCHEMA_VERSION + 1
    );
    assert!(err.to_string().starts_with(&message), "{err}");

    use redb::ReadableDatabase;
    let db = redb::Database::create(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(RAW_META).unwrap();
    let v = meta.get("schema_version").unwrap().unwrap().value();
    assert_eq!(v, SCHEMA_VERSION + 1, "not rewritten");
    assert!(txn.open_table(RAW_ALERTS).is_err(), "no tables created");
}

#[test]
fn a_file_without_a_version_is_migrated() {
    // Version 0: written before versions were recorded; alerts already there.
    let dir = TempDir::new("older");
    std::fs::create_dir_all(dir.path()).unwrap();
    let path = dir.path().join("tocsin.redb");
    let old = firing("bot-1", 4);
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let json = serde_json::to_string(&old).unwrap();
        txn.open_table(RAW_ALERTS)
            .unwrap()
            .insert(old.fingerprint.0, json.as_str())
            .unwrap();
        txn.open_table(RAW_META).unwrap();
        txn.commit().unwrap();
    }
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(store.load_alerts().unwrap(), vec![old.clone()]);
    assert_eq!(store.next_incident().unwrap(), 1);
    assert!(store.timeline(old.fingerprint).unwrap().is_empty());
    // The next batch carrying the alert maps its incident and moves the counter.
    store
        .apply(&Batch {
            alerts: vec![old.clone()],
            next_incident: 1,
            ..Batch::default()
        })
        .unwrap();
    assert_eq!(store.next_incident().unwrap(), 5);
    drop(store);
    assert_eq!(
        RedbStore::open(&path).unwrap().schema_version().unwrap(),
        SCHEMA_VERSION
    );
}

#[test]
fn a_corrupt_record_is_a_typed_error() {
    let dir = TempDir::new("corrupt");
    std::fs::create_dir_all(dir.path()).unwrap();
    let path = dir.path().join("tocsin.redb");
    {
        RedbStore::open(&path).unwrap();
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(BYTE_ALERTS)
            .unwrap()
            .insert(7, [1, 0xff, 0xff].as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let err = RedbStore::open(&path).unwrap().load_alerts().unwrap_err();
    assert!(matches!(err, StoreError::Decode { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("corrupt alerts record 0000000000000007: "),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// Atomicity: fail the disk at every write of a batch's commit in turn, reopen
// what reached it, and find either all of the batch or none of it.
// ---------------------------------------------------------------------------

#[test]
fn a_batch_is_all_or_nothing() {
    let first = Batch {
        alerts: vec![pending("bot-1")],
        timeline: vec![(
            pending("bot-1").fingerprint,
            entry(1, State::Inactive, State::Pending, "first"),
        )],
        next_incident: 1,
        ..Batch::default()
    };
    let mut fired = pending("bot-1");
    fired.state = State::Firing;
    fired.incident = Some(1);
    let second = Batch {
        alerts: vec![fired.clone(), firing("bot-2", 2)],
        timeline: vec![
            (
                fired.fingerprint,
                entry(2, State::Pending, State::Firing, "second"),
            ),
            (
                firing("bot-2", 2).fingerprint,
                entry(2, State::Inactive, State::Firing, "second"),
            ),
        ],
        next_incident: 3,
        ..Batch::default()
    };

    let mut failures = 0;
    for budget in 0.. {
        let disk = FakeDisk::healthy();
        let store = RedbStore::with_backend(disk.clone()).unwrap();
        store.apply(&first).unwrap();
        disk.fail_after(budget);
        let result = store.apply(&second);
        drop(store);

        let reopened = RedbStore::with_backend(disk.copy()).unwrap();
        let alerts = reopened.load_alerts().unwrap();
        let timeline = reopened.timeline(fired.fingerprint).unwrap();
        let next = reopened.next_incident().unwrap();
        let applied = alerts.len() == 2;
        if applied {
            assert_eq!(timeline.len(), 2, "budget {budget}");
            assert_eq!(next, 3, "budget {budget}");
            assert_eq!(
                reopened.alert_by_incident(2).unwrap().map(|a| a.state),
                Some(State::Firing)
            );
        } else {
            assert_eq!(alerts, first.alerts, "budget {budget}");
            assert_eq!(timeline.len(), 1, "budget {budget}");
            assert_eq!(next, 1, "budget {budget}");
            assert_eq!(reopened.alert_by_incident(1).unwrap(), None);
        }
        match result {
            // Committed durably before returning: it must be there.
            Ok(()) => {
                assert!(applied, "budget {budget}");
                break;
            }
            Err(_) => failures += 1,
        }
    }
    assert!(failures > 0, "the disk never failed mid-commit");
}

#[test]
fn store_and_errors_cross_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<RedbStore>();
    // The daemon holds its store as a trait object.
    send_sync::<Box<dyn Store>>();
    send_sync::<StoreError>();
}

/// A file written by schema version 1 (before silences) opens, keeps its alerts and
/// incident counter, and gains the silences table.
#[test]
fn a_version_1_file_is_migrated_to_the_current_schema() {
    let dir = TempDir::new("v1");
    std::fs::create_dir_all(dir.path()).unwrap();
    let path = dir.path().join("tocsin.redb");
    let a = firing("bot-1", 7);
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(RAW_META).unwrap();
            meta.insert("schema_version", 1).unwrap();
            meta.insert("next_incident", 8).unwrap();
            let json = serde_json::to_string(&a).unwrap();
            txn.open_table(RAW_ALERTS)
                .unwrap()
                .insert(a.fingerprint.0, json.as_str())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(store.load_alerts().unwrap(), vec![a]);
    assert_eq!(store.next_incident().unwrap(), 8);
    assert!(store.load_silences().unwrap().is_empty());
}

/// A file written by tocsin at schema version 3 (JSON values; made by the build
/// before the record encoding: two alerts posted to `/api/v2/alerts`, incident 1
/// acked by alice, a silence) opens at the current version with everything in it,
/// and a timeline entry written after the migration comes after the old ones.
#[test]
fn a_version_3_file_written_by_tocsin_is_migrated_to_the_record_encoding() {
    let dir = TempDir::new("v3");
    std::fs::create_dir_all(dir.path()).unwrap();
    let path = dir.path().join("tocsin.redb");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store/v3.redb");
    std::fs::copy(fixture, &path).unwrap();
    {
        use redb::ReadableDatabase;
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let version = txn.open_table(RAW_META).unwrap().get("schema_version");
        assert_eq!(
            version.unwrap().unwrap().value(),
            3,
            "the fixture is version 3"
        );
    }

    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let loaded = store.load().unwrap();
    let mut alerts: Vec<(Option<u64>, State, Option<String>)> = loaded
        .alerts
        .values()
        .map(|a| (a.incident, a.state, a.ack.as_ref().map(|k| k.actor.clone())))
        .collect();
    alerts.sort();
    assert_eq!(
        alerts,
        [
            (Some(1), State::Acknowledged, Some("alice".to_string())),
            (Some(2), State::Firing, None)
        ]
    );
    let acked = &loaded
        .alerts
        .values()
        .find(|a| a.incident == Some(1))
        .unwrap();
    assert_eq!(
        &acked.external.as_ref().unwrap().annotations["summary"],
        "disk full on bot-1"
    );
    assert_eq!(loaded.next_incident, 3);
    assert_eq!(loaded.silences.len(), 1);
    assert_eq!(loaded.silences[0].created_by, "bob");
    assert_eq!(
        loaded.silences[0].matchers[0].to_string(),
        "host=~\"bot-9.*\""
    );
    assert_eq!(loaded.escalations.len(), 2, "{:?}", loaded.escalations);
    assert!(
        loaded.escalations.values().all(|e| !e.notified.is_empty()),
        "the addresses paged survive: {:?}",
        loaded.escalations
    );
    assert_eq!(store.incident(1).unwrap(), Some(acked.fingerprint));

    let timeline = store.timeline(acked.fingerprint).unwrap();
    let reasons: Vec<&str> = timeline.iter().map(|e| e.reason.as_str()).collect();
    assert!(timeline.len() >= 2, "{reasons:?}");
    assert!(
        timeline.iter().any(|e| e.actor.as_deref() == Some("alice")),
        "{reasons:?}"
    );
    store
        .apply(&Batch {
            timeline: vec![(
                acked.fingerprint,
                entry(T.0 + 10, State::Acknowledged, State::Resolved, "after"),
            )],
            ..Batch::default()
        })
        .unwrap();
    let after = store.timeline(acked.fingerprint).unwrap();
    assert_eq!(after.len(), timeline.len() + 1);
    assert_eq!(after.last().unwrap().reason, "after");
}
