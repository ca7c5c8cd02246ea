//! The store's behaviour through the `Store` trait, run against both backends: the
//! redb file and PostgreSQL (a real server: one throwaway cluster for this binary,
//! a fresh database per test). Each scenario is one function; `both!` makes a test
//! of it per backend, so a difference between them fails by name.
//! Backend-specific failures (a torn disk, a corrupt row) are at the end.

use std::collections::HashMap;
use std::time::Duration;

use tocsin::alert::{Ack, Alert, State};
use tocsin::clock::Timestamp;
use tocsin::escalation::Address;
use tocsin::escalation::state::Escalation;
use tocsin::labels::Fingerprint;
use tocsin::matcher::Matcher;
use tocsin::silence::Silence;
use tocsin::store::{Batch, Durability, PG_SCHEMA_VERSION, PgStore, RedbStore, Store, StoreError};

mod common;
use common::postgres;
use common::records::{T, TempDir, alert, delivery, entry, firing};

/// A store under test, and how to open it again over the same data.
struct Opened {
    store: Option<Box<dyn Store>>,
    reopen: Box<dyn Fn() -> Box<dyn Store>>,
    _dir: Option<TempDir>,
}

impl Opened {
    fn store(&self) -> &dyn Store {
        self.store.as_deref().unwrap()
    }

    /// Closes the store and opens it again: what a restart sees.
    fn reopened(&mut self) -> &dyn Store {
        drop(self.store.take());
        self.store = Some((self.reopen)());
        self.store()
    }
}

fn redb(name: &str) -> Opened {
    let dir = TempDir::new(name);
    let path = dir.0.join("tocsin.redb");
    let reopen = move || Box::new(RedbStore::open(&path).unwrap()) as Box<dyn Store>;
    Opened {
        store: Some(reopen()),
        reopen: Box::new(reopen),
        _dir: Some(dir),
    }
}

fn pg(name: &str) -> Opened {
    let url = postgres::fresh_database(name);
    let reopen = move || Box::new(PgStore::connect(&url).unwrap()) as Box<dyn Store>;
    Opened {
        store: Some(reopen()),
        reopen: Box::new(reopen),
        _dir: None,
    }
}

macro_rules! both {
    ($($scenario:ident),* $(,)?) => {
        mod redb_backend {
            $(#[test] fn $scenario() { super::$scenario(super::redb(stringify!($scenario))); })*
        }
        mod postgres_backend {
            $(#[test] fn $scenario() { super::$scenario(super::pg(stringify!($scenario))); })*
        }
    };
}

both!(
    everything_round_trips_and_survives_a_reopen,
    inactive_alerts_without_an_incident_are_deleted,
    incident_ids_are_never_reused_nor_re_pointed,
    the_last_write_of_a_key_in_a_batch_wins,
    the_notification_log_references_and_jobs,
    retention_forgets_alerts_and_old_history,
    a_deferred_commit_is_visible_and_synced,
);

fn silence(id: &str) -> Silence {
    Silence {
        id: id.into(),
        matchers: vec![Matcher::parse("host=\"bot-1\"").unwrap()],
        starts_at: T,
        ends_at: T + Duration::from_secs(3600),
        created_by: "alice".into(),
        comment: "maintenance".into(),
        updated_at: None,
    }
}

fn escalation(a: &Alert) -> Escalation {
    Escalation {
        fingerprint: a.fingerprint,
        incident: a.incident,
        policy: "default".into(),
        started_at: T,
        next_level: 2,
        due_at: Some(T + Duration::from_secs(300)),
        repeats: 0,
        notified: [Address::Console].into(),
    }
}

/// What a load holds by fingerprint, in fingerprint order.
fn by_fingerprint<T: Clone>(loaded: &HashMap<Fingerprint, T>) -> Vec<T> {
    let mut rows: Vec<_> = loaded.iter().collect();
    rows.sort_by_key(|(fp, _)| **fp);
    rows.into_iter().map(|(_, v)| v.clone()).collect()
}

/// Non-finite values compare unequal; the test compares them apart.
fn without_nan(mut alerts: Vec<Alert>) -> Vec<Alert> {
    for a in &mut alerts {
        if a.value.is_nan() {
            a.value = -1.0;
        }
    }
    alerts
}

fn everything_round_trips_and_survives_a_reopen(mut opened: Opened) {
    let store = opened.store();
    let empty = store.load().unwrap();
    assert!(empty.alerts.is_empty() && empty.outbox.is_empty());
    assert_eq!((empty.next_incident, empty.next_delivery), (1, 1));

    let mut a = firing("bot-1", 1);
    a.state = State::Acknowledged;
    a.ack = Some(Box::new(Ack {
        actor: "alice".into(),
        via: "slack".into(),
        note: Some("looking".into()),
        at: T,
    }));
    a.silenced_by.insert("m1".into());
    let mut b = alert("投稿成功率低下", "bot-2");
    b.state = State::Pending;
    b.value = f64::NAN;
    let mut c = firing("bot-3", 2);
    c.value = f64::INFINITY;
    let batch = Batch {
        alerts: vec![a.clone(), b.clone(), c.clone()],
        timeline: vec![
            (
                a.fingerprint,
                entry(1, State::Inactive, State::Firing, "held"),
            ),
            (
                b.fingerprint,
                entry(1, State::Inactive, State::Pending, "p"),
            ),
            (
                a.fingerprint,
                entry(2, State::Firing, State::Acknowledged, "ack"),
            ),
        ],
        next_incident: 3,
        silences: vec![silence("s2"), silence("s1")],
        escalations: vec![(a.fingerprint, Some(escalation(&a)))],
        outbox: vec![delivery(5, &a), delivery(3, &c)],
        ..Batch::default()
    };
    store.commit(&batch, Durability::Immediate).unwrap();
    // A second batch appends to a timeline already there.
    let more = Batch {
        timeline: vec![(
            a.fingerprint,
            entry(3, State::Acknowledged, State::Firing, "again"),
        )],
        next_incident: 3,
        ..Batch::default()
    };
    store.commit(&more, Durability::Immediate).unwrap();

    for reopen in [false, true] {
        let store = if reopen {
            opened.reopened()
        } else {
            opened.store()
        };
        let loaded = store.load().unwrap();
        let mut want = vec![a.clone(), b.clone(), c.clone()];
        want.sort_by_key(|x| x.fingerprint.0);
        assert_eq!(
            without_nan(by_fingerprint(&loaded.alerts)),
            without_nan(want)
        );
        let nan = loaded.alerts.get(&b.fingerprint);
        assert!(nan.unwrap().value.is_nan());
        assert_eq!(loaded.next_incident, 3);
        assert_eq!(
            loaded
                .silences
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>(),
            ["s1", "s2"]
        );
        assert_eq!(loaded.silences[0], silence("s1"));
        assert_eq!(by_fingerprint(&loaded.escalations), vec![escalation(&a)]);
        assert_eq!(
            loaded.outbox.iter().map(|d| d.id).collect::<Vec<_>>(),
            [3, 5]
        );
        assert_eq!(loaded.outbox[1], delivery(5, &a));
        assert_eq!(loaded.next_delivery, 6);
        let reasons: Vec<String> = store
            .timeline(a.fingerprint)
            .unwrap()
            .into_iter()
            .map(|e| e.reason)
            .collect();
        assert_eq!(reasons, ["held", "ack", "again"]);
        assert_eq!(store.timeline(b.fingerprint).unwrap().len(), 1);
        assert_eq!(store.incident(1).unwrap(), Some(a.fingerprint));
        assert_eq!(store.incident(2).unwrap(), Some(c.fingerprint));
        assert_eq!(store.incident(3).unwrap(), None);
    }
}

fn inactive_alerts_without_an_incident_are_deleted(opened: Opened) {
    let store = opened.store();
    let mut a = alert("Disk", "bot-1");
    a.state = State::Pending;
    let b = firing("bot-2", 1);
    let batch = Batch {
        alerts: vec![a.clone(), b.clone()],
        next_incident: 2,
        ..Batch::default()
    };
    store.commit(&batch, Durability::Immediate).unwrap();
    a.state = State::Inactive;
    let mut resolved = b.clone();
    resolved.state = State::Inactive;
    let batch = Batch {
        alerts: vec![a.clone(), resolved.clone()],
        next_incident: 2,
        ..Batch::default()
    };
    store.commit(&batch, Durability::Immediate).unwrap();
    // The resolved incident is history; the alert that never fired is gone.
    assert_eq!(
        by_fingerprint(&store.load().unwrap().alerts),
        vec![resolved]
    );
    let batch = Batch {
        removed: vec![b.fingerprint],
        next_incident: 2,
        ..Batch::default()
    };
    store.commit(&batch, Durability::Immediate).unwrap();
    assert!(store.load().unwrap().alerts.is_empty());
}

fn incident_ids_are_never_reused_nor_re_pointed(mut opened: Opened) {
    let store = opened.store();
    let a = firing("bot-1", 7);
    // An id above the batch's counter moves the stored counter past it.
    let batch = Batch {
        alerts: vec![a.clone()],
        next_incident: 2,
        ..Batch::default()
    };
    store.commit(&batch, Durability::Immediate).unwrap();
    assert_eq!(store.load().unwrap().next_incident, 8);
    // A batch with a lower counter does not move it back.
    store
        .commit(
            &Batch {
                next_incident: 3,
                ..Batch::default()
            },
            Durability::Immediate,
        )
        .unwrap();
    assert_eq!(store.load().unwrap().next_incident, 8);
    // Another alert claiming id 7 does not take it over.
    let other = firing("bot-9", 7);
    store
        .commit(
            &Batch {
                alerts: vec![other],
                next_incident: 8,
                ..Batch::default()
            },
            Durability::Immediate,
        )
        .unwrap();
    let store = opened.reopened();
    assert_eq!(store.incident(7).unwrap(), Some(a.fingerprint));
    assert_eq!(store.load().unwrap().next_incident, 8);
}

fn the_last_write_of_a_key_in_a_batch_wins(opened: Opened) {
    let store = opened.store();
    let a = firing("bot-1", 1);
    let mut acked = a.clone();
    acked.state = State::Acknowledged;
    let mut d = delivery(1, &a);
    let first = d.clone();
    d.attempts = 2;
    let mut s = silence("s1");
    let first_silence = s.clone();
    s.comment = "longer".into();
    let batch = Batch {
        removed: vec![a.fingerprint],
        alerts: vec![a.clone(), acked.clone()],
        next_incident: 2,
        silences: vec![first_silence, s.clone()],
        escalations: vec![(a.fingerprint, Some(escalation(&a))), (a.fingerprint, None)],
        outbox: vec![first, d.clone()],
        sent: vec![("k".into(), Timestamp(1)), ("k".into(), Timestamp(2))],
        references: vec![
            (a.fingerprint, "slack:#a".into(), "old".into()),
            (a.fingerprint, "slack:#a".into(), "new".into()),
        ],
        jobs: vec![
            ("daily".into(), Timestamp(1)),
            ("daily".into(), Timestamp(9)),
        ],
        ..Batch::default()
    };
    store.commit(&batch, Durability::Immediate).unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(by_fingerprint(&loaded.alerts), vec![acked]);
    assert_eq!(loaded.silences, vec![s]);
    assert!(loaded.escalations.is_empty());
    assert_eq!(loaded.outbox, vec![d]);
    assert_eq!(
        store
            .reference(a.fingerprint, "slack:#a")
            .unwrap()
            .as_deref(),
        Some("new")
    );
    assert_eq!(job_ran(store, "daily"), Some(Timestamp(9)));
    // A delivery written and settled in one batch is gone.
    let batch = Batch {
        outbox: vec![delivery(2, &a)],
        outbox_done: vec![1, 2],
        next_incident: 2,
        ..Batch::default()
    };
    store.commit(&batch, Durability::Immediate).unwrap();
    let loaded = store.load().unwrap();
    assert!(loaded.outbox.is_empty());
    assert_eq!(loaded.next_delivery, 3);
}

fn the_notification_log_references_and_jobs(opened: Opened) {
    let store = opened.store();
    let a = firing("bot-1", 1);
    assert!(!store.was_sent("k1").unwrap());
    assert_eq!(store.reference(a.fingerprint, "slack:#a").unwrap(), None);
    assert_eq!(job_ran(store, "daily"), None);
    let batch = Batch {
        sent: vec![("k1".into(), Timestamp(10)), ("k2".into(), Timestamp(20))],
        references: vec![(a.fingerprint, "slack:#a".into(), "C1:1700.1".into())],
        jobs: vec![("daily".into(), Timestamp(30))],
        next_incident: 1,
        ..Batch::default()
    };
    store.commit(&batch, Durability::Immediate).unwrap();
    assert!(store.was_sent("k1").unwrap() && store.was_sent("k2").unwrap());
    assert_eq!(
        store
            .reference(a.fingerprint, "slack:#a")
            .unwrap()
            .as_deref(),
        Some("C1:1700.1")
    );
    assert_eq!(store.reference(a.fingerprint, "slack:#b").unwrap(), None);
    // Several at once (a message about many alerts), answered in the order asked.
    let b = firing("bot-2", 1);
    let wanted = [
        (b.fingerprint, "slack:#a".to_string()),
        (a.fingerprint, "slack:#b".to_string()),
        (a.fingerprint, "slack:#a".to_string()),
    ];
    assert_eq!(
        store.references(&wanted).unwrap(),
        [None, None, Some("C1:1700.1".to_string())]
    );
    assert_eq!(store.references(&[]).unwrap(), Vec::<Option<String>>::new());
    assert_eq!(job_ran(store, "daily"), Some(Timestamp(30)));
    assert_eq!(store.prune_sent(Timestamp(15)).unwrap(), 1);
    assert!(!store.was_sent("k1").unwrap());
    assert!(store.was_sent("k2").unwrap());
}

fn retention_forgets_alerts_and_old_history(mut opened: Opened) {
    let store = opened.store();
    let old = firing("bot-1", 1);
    let kept = firing("bot-2", 2);
    let batch = Batch {
        alerts: vec![old.clone(), kept.clone()],
        timeline: vec![
            (
                old.fingerprint,
                entry(1, State::Inactive, State::Firing, "a"),
            ),
            (
                kept.fingerprint,
                entry(1, State::Inactive, State::Firing, "old"),
            ),
            (
                kept.fingerprint,
                entry(5, State::Firing, State::Inactive, "new"),
            ),
        ],
        next_incident: 3,
        escalations: vec![(old.fingerprint, Some(escalation(&old)))],
        references: vec![(old.fingerprint, "slack:#a".into(), "r".into())],
        ..Batch::default()
    };
    store.commit(&batch, Durability::Immediate).unwrap();
    let batch = Batch {
        forgotten: vec![old.fingerprint],
        timeline_before: vec![(kept.fingerprint, Timestamp(5))],
        next_incident: 3,
        ..Batch::default()
    };
    store.commit(&batch, Durability::Immediate).unwrap();
    let store = opened.reopened();
    let loaded = store.load().unwrap();
    assert_eq!(by_fingerprint(&loaded.alerts), vec![kept.clone()]);
    assert!(loaded.escalations.is_empty());
    assert_eq!(loaded.next_incident, 3, "the counter never goes back");
    assert!(store.timeline(old.fingerprint).unwrap().is_empty());
    assert_eq!(store.reference(old.fingerprint, "slack:#a").unwrap(), None);
    assert_eq!(store.incident(1).unwrap(), None);
    assert_eq!(store.incident(2).unwrap(), Some(kept.fingerprint));
    let reasons: Vec<String> = store
        .timeline(kept.fingerprint)
        .unwrap()
        .into_iter()
        .map(|e| e.reason)
        .collect();
    assert_eq!(reasons, ["new"]);
}

fn a_deferred_commit_is_visible_and_synced(mut opened: Opened) {
    let store = opened.store();
    let batch = Batch {
        sent: vec![("k1".into(), Timestamp(10))],
        outbox_done: vec![1],
        next_incident: 1,
        ..Batch::default()
    };
    store.commit(&batch, Durability::Deferred).unwrap();
    assert!(store.was_sent("k1").unwrap());
    store.sync().unwrap();
    assert!(opened.reopened().was_sent("k1").unwrap());
}

// ---- PostgreSQL only ----

#[test]
fn postgres_schema_is_versioned_and_a_newer_one_refused() {
    let url = postgres::fresh_database("schema");
    let store = PgStore::connect(&url).unwrap();
    assert_eq!(store.schema_version().unwrap(), PG_SCHEMA_VERSION);
    drop(store);
    // Migrating again is a no-op, and two replicas starting at once migrate once.
    let both: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PgStore::connect(&url).map(|_| ()))
        })
        .collect();
    for t in both {
        t.join().unwrap().unwrap();
    }
    let db = url.rsplit('/').next().unwrap();
    postgres::cluster().psql(db, "UPDATE tocsin_schema SET version = 99");
    match PgStore::connect(&url) {
        Err(StoreError::UnsupportedSchema { found: 99, .. }) => {}
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    assert_eq!(
        postgres::cluster().psql(db, "SELECT version FROM tocsin_schema"),
        "99",
        "a refused database is left as it was"
    );
}

#[test]
fn postgres_a_batch_is_all_or_nothing() {
    let url = postgres::fresh_database("atomic");
    let db = url.rsplit('/').next().unwrap().to_string();
    let store = PgStore::connect(&url).unwrap();
    let a = firing("bot-1", 1);
    let batch = Batch {
        alerts: vec![a.clone()],
        timeline: vec![(a.fingerprint, entry(1, State::Inactive, State::Firing, "x"))],
        next_incident: 2,
        ..Batch::default()
    };
    store.commit(&batch, Durability::Immediate).unwrap();
    // A damaged timeline row makes the pruning at the end of the next batch fail.
    postgres::cluster().psql(&db, "UPDATE tocsin_timeline SET record = '\\x09'");
    let b = firing("bot-2", 2);
    let failing = Batch {
        alerts: vec![b.clone()],
        sent: vec![("k".into(), Timestamp(1))],
        timeline_before: vec![(a.fingerprint, Timestamp(5))],
        next_incident: 3,
        ..Batch::default()
    };
    let err = store.commit(&failing, Durability::Immediate).unwrap_err();
    assert!(matches!(err, StoreError::Decode { .. }), "{err}");
    let loaded = store.load().unwrap();
    assert_eq!(by_fingerprint(&loaded.alerts), vec![a]);
    assert_eq!(loaded.next_incident, 2);
    assert!(!store.was_sent("k").unwrap());
}

#[test]
fn postgres_a_commit_after_the_lease_was_taken_over_writes_nothing() {
    let url = postgres::fresh_database("fenced");
    let db = url.rsplit('/').next().unwrap().to_string();
    // Alone on the database: it takes the lease at once and acts under it.
    let store = PgStore::connect(&url).unwrap();
    let a = firing("bot-1", 1);
    let first = Batch {
        alerts: vec![a.clone()],
        next_incident: 2,
        ..Batch::default()
    };
    store.commit(&first, Durability::Immediate).unwrap();
    // Another replica takes the lease over (what a takeover writes).
    postgres::cluster().psql(
        &db,
        "UPDATE tocsin_lease SET holder = 'another replica', epoch = epoch + 1",
    );
    // The fence goes out with the writes, in one pipeline: every write of a
    // refused commit is rolled back with it.
    let b = firing("bot-2", 2);
    let fenced = Batch {
        alerts: vec![b.clone()],
        timeline: vec![(b.fingerprint, entry(1, State::Inactive, State::Firing, "x"))],
        outbox: vec![delivery(1, &b)],
        sent: vec![("k".into(), Timestamp(1))],
        next_incident: 3,
        ..Batch::default()
    };
    let err = store.commit(&fenced, Durability::Immediate).unwrap_err();
    assert!(matches!(err, StoreError::Standby), "{err}");
    let loaded = store.load().unwrap();
    assert_eq!(by_fingerprint(&loaded.alerts), vec![a]);
    assert!(loaded.outbox.is_empty());
    assert_eq!(loaded.next_incident, 2);
    assert!(!store.was_sent("k").unwrap());
    assert!(store.timeline(b.fingerprint).unwrap().is_empty());
}

#[test]
fn postgres_errors_never_quote_the_url() {
    // Nothing listens on port 1: the connection is refused.
    let url = "postgres://tocsin:hunter2secret@127.0.0.1:1/tocsin";
    let err = PgStore::connect(url).unwrap_err().to_string();
    assert!(!err.contains("hunter2secret"), "{err}");
    assert!(err.contains("connect"), "{err}");
    let err = PgStore::connect("postgres://tocsin:hunter2secret@[bad")
        .unwrap_err()
        .to_string();
    assert!(!err.contains("hunter2secret"), "{err}");
}

/// `tocsin migrate`: a redb state into PostgreSQL and back into a new file, every
/// table carried (old incident ids, the log, references, jobs, the counters), and
/// a destination that already holds a state refused.
#[test]
fn migrate_copies_a_redb_state_into_postgres_and_back() {
    use tocsin::store::transfer;
    let dir = TempDir::new("migrate");
    let source = dir.0.join("source.redb");
    let back = dir.0.join("back.redb");
    let a = firing("bot-1", 1);
    let mut again = a.clone();
    again.incident = Some(4);
    let b = firing("bot-2", 2);
    {
        let store = RedbStore::open(&source).unwrap();
        let batches = [
            Batch {
                alerts: vec![a.clone(), b.clone()],
                timeline: vec![
                    (
                        a.fingerprint,
                        entry(1, State::Inactive, State::Firing, "one"),
                    ),
                    (b.fingerprint, entry(2, State::Inactive, State::Firing, "b")),
                ],
                next_incident: 3,
                silences: vec![silence("s1")],
                escalations: vec![(b.fingerprint, Some(escalation(&b)))],
                outbox: vec![delivery(1, &a), delivery(2, &b)],
                sent: vec![("k0".into(), Timestamp(5))],
                references: vec![(a.fingerprint, "slack:#a".into(), "C:1".into())],
                jobs: vec![("weekly".into(), Timestamp(7))],
                ..Batch::default()
            },
            Batch {
                // Alert a fires again under a new number; number 1 still names it.
                alerts: vec![again.clone()],
                timeline: vec![(
                    a.fingerprint,
                    entry(3, State::Inactive, State::Firing, "two"),
                )],
                next_incident: 5,
                outbox_done: vec![1],
                ..Batch::default()
            },
        ];
        for batch in &batches {
            store.commit(batch, Durability::Immediate).unwrap();
        }
    }
    let url = postgres::fresh_database("migrate");
    let tocsin = |direction: &str, file: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args(["migrate", direction, "--redb"])
            .arg(file)
            .env("TOCSIN_DATABASE_URL", &url)
            .output()
            .unwrap()
    };
    let out = tocsin("redb-to-postgres", &source);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("2 alerts, 3 timeline entries, 3 incident ids"),
        "{stdout}"
    );

    let original = transfer::dump_redb(&RedbStore::open(&source).unwrap()).unwrap();
    assert_eq!(original.incidents.len(), 3);
    let pg = PgStore::connect(&url).unwrap();
    assert_eq!(transfer::dump_postgres(&pg).unwrap(), original);
    assert_eq!(pg.incident(1).unwrap(), Some(a.fingerprint));
    assert_eq!(pg.load().unwrap().next_delivery, 3);
    drop(pg);

    // Copying again into a database that holds a state is refused, and changes nothing.
    let out = tocsin("redb-to-postgres", &source);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("copy into an empty one"), "{stderr}");
    assert!(!stderr.contains(&url), "{stderr}");

    let out = tocsin("postgres-to-redb", &back);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copied = transfer::dump_redb(&RedbStore::open(&back).unwrap()).unwrap();
    assert_eq!(copied, original);
}

/// When the job `name` last ran, as the state loads it.
fn job_ran(store: &dyn Store, name: &str) -> Option<Timestamp> {
    let jobs = store.load().unwrap().jobs;
    jobs.into_iter().find(|(n, _)| n == name).map(|(_, at)| at)
}
