//! The PostgreSQL backend: the same tables as the redb file (`pg_schema.rs`), the
//! same record encoding (`codec.rs`), the same behaviour behind [`Store`]. The only
//! module that talks to PostgreSQL.
//!
//! tokio-postgres with a deadpool pool, on a small runtime of the store's own: the
//! [`Store`] methods block (the daemon calls them from blocking threads, and once
//! from `Daemon::open` inside its runtime), so each one hands its query to that
//! runtime and waits on a plain channel, which is safe from any thread. A batch is
//! encoded before it leaves the caller's thread, and each table's rows go in one
//! statement (`unnest` of arrays), so a commit is a few round trips whatever its size.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::codec::{decode, encode};
use super::pg_schema;
use super::{Batch, Durability, Loaded, Store, StoreError};
use crate::alert::{Alert, State, TimelineEntry};
use crate::clock::Timestamp;
use crate::labels::Fingerprint;

/// The longest one store operation may take before it is an error: a database that
/// stopped answering makes commits fail (and `/readyz` say so) instead of hanging.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections kept: the daemon commits from one thread at a time, and reads
/// (timelines, the notification log) alongside.
const POOL_SIZE: usize = 8;

/// The state in PostgreSQL tables, shared by every replica that connects to them.
pub struct PgStore {
    /// Always Some until drop, which shuts it down without blocking.
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    /// A deferred commit waits for a durable one.
    unsynced: AtomicBool,
}

impl std::fmt::Debug for PgStore {
    /// Never prints the connection settings: they may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

/// Maps a PostgreSQL error to the store's, saying what was being done. The text is
/// the server's message or the client's; neither quotes the connection URL.
pub(super) fn db_error(doing: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::Postgres {
        doing,
        message: match e.as_db_error() {
            Some(db) => format!("{}: {}", db.severity(), db.message()),
            None => match std::error::Error::source(&e) {
                Some(source) => format!("{e}: {source}"),
                None => e.to_string(),
            },
        },
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db_error("connect")(e),
        other => StoreError::Postgres {
            doing: "connect",
            message: other.to_string(),
        },
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host/db` or
    /// `host=... user=...`), and migrates its schema. The URL is never logged.
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|_| StoreError::Postgres {
            doing: "read the connection URL",
            // The parser's message may quote the URL, password and all.
            message: "not a PostgreSQL connection URL or key=value string".into(),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name("tocsin");
        }
        config.keepalives_idle(Duration::from_secs(10));
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tocsin-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Postgres {
                doing: "start its runtime",
                message: e.to_string(),
            })?;
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(OPERATION_TIMEOUT))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError::Postgres {
                doing: "build the connection pool",
                message: e.to_string(),
            })?;
        let store = PgStore {
            runtime: Some(runtime),
            pool,
            unsynced: AtomicBool::new(false),
        };
        store.run(|pool| async move {
            let mut client = pool.get().await.map_err(pool_error)?;
            pg_schema::migrate(&mut client).await
        })?;
        Ok(store)
    }

    /// The schema version recorded in the database.
    pub fn schema_version(&self) -> Result<u64, StoreError> {
        self.run(|pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let row = client
                .query_one("SELECT version FROM tocsin_schema", &[])
                .await
                .map_err(db_error("read the schema version"))?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }

    /// Runs `op` on the store's runtime and waits for it, from any thread.
    pub(super) fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let runtime = self.runtime.as_ref().expect("Some until drop");
        let fut = op(self.pool.clone());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let out = tokio::time::timeout(OPERATION_TIMEOUT, fut)
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::Postgres {
                        doing: "finish in time",
                        message: format!("no answer in {OPERATION_TIMEOUT:?}"),
                    })
                });
            let _ = tx.send(out);
        });
        rx.recv().unwrap_or_else(|_| {
            Err(StoreError::Postgres {
                doing: "run the query",
                message: "the store's runtime stopped".into(),
            })
        })
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A batch as rows: encoded on the caller's thread, in the order redb applies it.
#[derive(Default)]
pub(super) struct Rows {
    alerts_put: (Vec<i64>, Vec<Vec<u8>>),
    alerts_deleted: Vec<i64>,
    incidents: (Vec<i64>, Vec<i64>),
    next_incident: i64,
    timeline: (Vec<i64>, Vec<Vec<u8>>),
    silences: (Vec<String>, Vec<Vec<u8>>),
    escalations_put: (Vec<i64>, Vec<Vec<u8>>),
    escalations_deleted: Vec<i64>,
    outbox_put: (Vec<i64>, Vec<Vec<u8>>),
    outbox_done: Vec<i64>,
    next_delivery: i64,
    sent: (Vec<String>, Vec<i64>),
    references: (Vec<i64>, Vec<String>, Vec<String>),
    jobs: (Vec<String>, Vec<i64>),
    forgotten: Vec<i64>,
    timeline_before: Vec<(i64, i64)>,
}

/// The last write of each key wins, as in a table written row by row: one
/// `INSERT ... ON CONFLICT DO UPDATE` may not touch a row twice.
fn last_wins<K: Clone + Eq + std::hash::Hash, V>(rows: Vec<(K, V)>) -> Vec<(K, V)> {
    let mut last = std::collections::HashMap::with_capacity(rows.len());
    for (i, (k, _)) in rows.iter().enumerate() {
        last.insert(k.clone(), i);
    }
    rows.into_iter()
        .enumerate()
        .filter(|(i, (k, _))| last[k] == *i)
        .map(|(_, kv)| kv)
        .collect()
}

fn unzip<K, V>(rows: Vec<(K, V)>) -> (Vec<K>, Vec<V>) {
    rows.into_iter().unzip()
}

impl Rows {
    pub(super) fn of(batch: &Batch) -> Result<Rows, StoreError> {
        let mut rows = Rows::default();
        // Alerts: removals first, then writes in order; the last word on a
        // fingerprint is what stays.
        let mut alerts: Vec<(i64, Option<Vec<u8>>)> = Vec::new();
        for fp in &batch.removed {
            alerts.push((fp.0 as i64, None));
        }
        let mut next = batch.next_incident.max(1);
        for alert in &batch.alerts {
            let fp = alert.fingerprint;
            if alert.state == State::Inactive && alert.incident.is_none() {
                alerts.push((fp.0 as i64, None));
                continue;
            }
            alerts.push((fp.0 as i64, Some(encode("alerts", fp, alert)?)));
            if let Some(id) = alert.incident {
                rows.incidents.0.push(id as i64);
                rows.incidents.1.push(fp.0 as i64);
                next = next.max(id.saturating_add(1));
            }
        }
        for (fp, record) in last_wins(alerts) {
            match record {
                Some(r) => {
                    rows.alerts_put.0.push(fp);
                    rows.alerts_put.1.push(r);
                }
                None => rows.alerts_deleted.push(fp),
            }
        }
        rows.next_incident = next as i64;
        for (fp, entry) in &batch.timeline {
            rows.timeline.0.push(fp.0 as i64);
            rows.timeline.1.push(encode("timeline", fp, entry)?);
        }
        let silences = batch
            .silences
            .iter()
            .map(|s| Ok((s.id.clone(), encode("silences", &s.id, s)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        rows.silences = unzip(last_wins(silences));
        let mut escalations = Vec::new();
        for (fp, esc) in &batch.escalations {
            let record = esc
                .as_ref()
                .map(|e| encode("escalations", fp, e))
                .transpose()?;
            escalations.push((fp.0 as i64, record));
        }
        for (fp, record) in last_wins(escalations) {
            match record {
                Some(r) => {
                    rows.escalations_put.0.push(fp);
                    rows.escalations_put.1.push(r);
                }
                None => rows.escalations_deleted.push(fp),
            }
        }
        let mut next_delivery = 1;
        let outbox = batch
            .outbox
            .iter()
            .map(|d| {
                next_delivery = next_delivery.max(d.id + 1);
                Ok((d.id as i64, encode("outbox", d.id, d)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        rows.outbox_put = unzip(last_wins(outbox));
        rows.next_delivery = next_delivery as i64;
        rows.outbox_done = batch.outbox_done.iter().map(|id| *id as i64).collect();
        rows.sent = unzip(last_wins(
            batch.sent.iter().map(|(k, at)| (k.clone(), at.0)).collect(),
        ));
        let references = last_wins(
            batch
                .references
                .iter()
                .map(|(fp, address, r)| ((fp.0 as i64, address.clone()), r.clone()))
                .collect(),
        );
        for ((fp, address), reference) in references {
            rows.references.0.push(fp);
            rows.references.1.push(address);
            rows.references.2.push(reference);
        }
        rows.jobs = unzip(last_wins(
            batch.jobs.iter().map(|(k, at)| (k.clone(), at.0)).collect(),
        ));
        rows.forgotten = batch.forgotten.iter().map(|fp| fp.0 as i64).collect();
        rows.timeline_before = batch
            .timeline_before
            .iter()
            .map(|(fp, at)| (fp.0 as i64, at.0))
            .collect();
        Ok(rows)
    }

    /// Writes the rows inside `txn`, table by table, as redb's `write_batch` does.
    pub(super) async fn write(
        self,
        txn: &tokio_postgres::Transaction<'_>,
    ) -> Result<(), StoreError> {
        let e = db_error;
        if !self.alerts_deleted.is_empty() {
            txn.execute(
                "DELETE FROM tocsin_alerts WHERE fingerprint = ANY($1)",
                &[&self.alerts_deleted],
            )
            .await
            .map_err(e("delete alerts"))?;
        }
        if !self.alerts_put.0.is_empty() {
            txn.execute(
                "INSERT INTO tocsin_alerts (fingerprint, record)
                 SELECT * FROM unnest($1::bigint[], $2::bytea[])
                 ON CONFLICT (fingerprint) DO UPDATE SET record = excluded.record",
                &[&self.alerts_put.0, &self.alerts_put.1],
            )
            .await
            .map_err(e("write alerts"))?;
        }
        if !self.incidents.0.is_empty() {
            // The first writer of an id wins: ids are never re-pointed.
            txn.execute(
                "INSERT INTO tocsin_incidents (id, fingerprint)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[]) ON CONFLICT (id) DO NOTHING",
                &[&self.incidents.0, &self.incidents.1],
            )
            .await
            .map_err(e("write incident ids"))?;
        }
        // The counter only grows; rows are locked only when it does.
        txn.execute(
            "UPDATE tocsin_meta SET value = $1 WHERE key = 'next_incident' AND value < $1",
            &[&self.next_incident],
        )
        .await
        .map_err(e("write the incident counter"))?;
        if !self.timeline.0.is_empty() {
            let n = self.timeline.0.len() as i64;
            let first: i64 = txn
                .query_one(
                    "UPDATE tocsin_meta SET value = value + $1 WHERE key = 'next_timeline'
                     RETURNING value - $1",
                    &[&n],
                )
                .await
                .map_err(e("number timeline entries"))?
                .get(0);
            let seqs: Vec<i64> = (first..first + n).collect();
            txn.execute(
                "INSERT INTO tocsin_timeline (fingerprint, seq, record)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[])",
                &[&self.timeline.0, &seqs, &self.timeline.1],
            )
            .await
            .map_err(e("append to timelines"))?;
        }
        if !self.silences.0.is_empty() {
            txn.execute(
                "INSERT INTO tocsin_silences (id, record)
                 SELECT * FROM unnest($1::text[], $2::bytea[])
                 ON CONFLICT (id) DO UPDATE SET record = excluded.record",
                &[&self.silences.0, &self.silences.1],
            )
            .await
            .map_err(e("write silences"))?;
        }
        if !self.escalations_put.0.is_empty() {
            txn.execute(
                "INSERT INTO tocsin_escalations (fingerprint, record)
                 SELECT * FROM unnest($1::bigint[], $2::bytea[])
                 ON CONFLICT (fingerprint) DO UPDATE SET record = excluded.record",
                &[&self.escalations_put.0, &self.escalations_put.1],
            )
            .await
            .map_err(e("write escalations"))?;
        }
        if !self.escalations_deleted.is_empty() {
            txn.execute(
                "DELETE FROM tocsin_escalations WHERE fingerprint = ANY($1)",
                &[&self.escalations_deleted],
            )
            .await
            .map_err(e("delete escalations"))?;
        }
        if !self.outbox_put.0.is_empty() {
            txn.execute(
                "INSERT INTO tocsin_outbox (id, record)
                 SELECT * FROM unnest($1::bigint[], $2::bytea[])
                 ON CONFLICT (id) DO UPDATE SET record = excluded.record",
                &[&self.outbox_put.0, &self.outbox_put.1],
            )
            .await
            .map_err(e("write the outbox"))?;
            txn.execute(
                "UPDATE tocsin_meta SET value = $1 WHERE key = 'next_delivery' AND value < $1",
                &[&self.next_delivery],
            )
            .await
            .map_err(e("write the delivery counter"))?;
        }
        if !self.outbox_done.is_empty() {
            txn.execute(
                "DELETE FROM tocsin_outbox WHERE id = ANY($1)",
                &[&self.outbox_done],
            )
            .await
            .map_err(e("settle deliveries"))?;
        }
        if !self.sent.0.is_empty() {
            txn.execute(
                "INSERT INTO tocsin_sent (key, at) SELECT * FROM unnest($1::text[], $2::bigint[])
                 ON CONFLICT (key) DO UPDATE SET at = excluded.at",
                &[&self.sent.0, &self.sent.1],
            )
            .await
            .map_err(e("write the notification log"))?;
        }
        if !self.references.0.is_empty() {
            txn.execute(
                "INSERT INTO tocsin_message_refs (fingerprint, address, reference)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[])
                 ON CONFLICT (fingerprint, address) DO UPDATE SET reference = excluded.reference",
                &[&self.references.0, &self.references.1, &self.references.2],
            )
            .await
            .map_err(e("write message references"))?;
        }
        if !self.jobs.0.is_empty() {
            txn.execute(
                "INSERT INTO tocsin_jobs (name, at) SELECT * FROM unnest($1::text[], $2::bigint[])
                 ON CONFLICT (name) DO UPDATE SET at = excluded.at",
                &[&self.jobs.0, &self.jobs.1],
            )
            .await
            .map_err(e("write scheduled jobs"))?;
        }
        if !self.forgotten.is_empty() {
            forget(txn, &self.forgotten).await?;
        }
        for (fp, before) in &self.timeline_before {
            prune_timeline(txn, *fp, *before).await?;
        }
        Ok(())
    }
}

/// Deletes alerts past retention with their timeline, escalation, references and
/// the incident id that still names them.
async fn forget(txn: &tokio_postgres::Transaction<'_>, fps: &[i64]) -> Result<(), StoreError> {
    let e = db_error;
    let old = txn
        .query(
            "DELETE FROM tocsin_alerts WHERE fingerprint = ANY($1) RETURNING fingerprint, record",
            &[&fps],
        )
        .await
        .map_err(e("forget alerts"))?;
    for row in old {
        let fp: i64 = row.get(0);
        let alert: Alert = decode("alerts", Fingerprint(fp as u64), row.get::<_, &[u8]>(1))?;
        if let Some(id) = alert.incident {
            txn.execute(
                "DELETE FROM tocsin_incidents WHERE id = $1 AND fingerprint = $2",
                &[&(id as i64), &fp],
            )
            .await
            .map_err(e("forget incident ids"))?;
        }
    }
    for (table, what) in [
        ("tocsin_escalations", "forget escalations"),
        ("tocsin_timeline", "forget timelines"),
        ("tocsin_message_refs", "forget message references"),
    ] {
        txn.execute(
            &format!("DELETE FROM {table} WHERE fingerprint = ANY($1)"),
            &[&fps],
        )
        .await
        .map_err(e(what))?;
    }
    Ok(())
}

/// Deletes one alert's timeline entries from before `before`. The instant is
/// inside the record, so entries are read and decoded; an entry that does not
/// decode is an error, and nothing is deleted.
async fn prune_timeline(
    txn: &tokio_postgres::Transaction<'_>,
    fp: i64,
    before: i64,
) -> Result<(), StoreError> {
    let rows = txn
        .query(
            "SELECT seq, record FROM tocsin_timeline WHERE fingerprint = $1",
            &[&fp],
        )
        .await
        .map_err(db_error("read a timeline"))?;
    let mut old = Vec::new();
    for row in rows {
        let seq: i64 = row.get(0);
        let key = format!("{}/{seq}", Fingerprint(fp as u64));
        let entry: TimelineEntry = decode("timeline", key, row.get::<_, &[u8]>(1))?;
        if entry.at.0 < before {
            old.push(seq);
        }
    }
    if !old.is_empty() {
        txn.execute(
            "DELETE FROM tocsin_timeline WHERE fingerprint = $1 AND seq = ANY($2)",
            &[&fp, &old],
        )
        .await
        .map_err(db_error("prune a timeline"))?;
    }
    Ok(())
}

/// A connection from the pool.
pub(super) async fn client(pool: &Pool) -> Result<Object, StoreError> {
    pool.get().await.map_err(pool_error)
}

/// Every row of `sql` (key, record), decoded, sorted by key as u64 (as redb
/// orders them).
async fn load_table<T: serde::de::DeserializeOwned>(
    txn: &tokio_postgres::Transaction<'_>,
    sql: &str,
    name: &'static str,
) -> Result<Vec<T>, StoreError> {
    let mut rows: Vec<(u64, T)> = Vec::new();
    for row in txn
        .query(sql, &[])
        .await
        .map_err(db_error("load the state"))?
    {
        let key = row.get::<_, i64>(0) as u64;
        rows.push((key, decode(name, key, row.get::<_, &[u8]>(1))?));
    }
    rows.sort_by_key(|(k, _)| *k);
    Ok(rows.into_iter().map(|(_, v)| v).collect())
}

impl Store for PgStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        self.run(|pool| async move {
            let mut client = client(&pool).await?;
            // One snapshot of every table.
            let txn = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(db_error("load the state"))?;
            let alerts = load_table(
                &txn,
                "SELECT fingerprint, record FROM tocsin_alerts",
                "alerts",
            )
            .await?;
            let escalations = load_table(
                &txn,
                "SELECT fingerprint, record FROM tocsin_escalations",
                "escalations",
            )
            .await?;
            let outbox = load_table(&txn, "SELECT id, record FROM tocsin_outbox", "outbox").await?;
            let mut silences = Vec::new();
            for row in txn
                .query(
                    "SELECT id, record FROM tocsin_silences ORDER BY id COLLATE \"C\"",
                    &[],
                )
                .await
                .map_err(db_error("load silences"))?
            {
                let id: &str = row.get(0);
                silences.push(decode("silences", id, row.get::<_, &[u8]>(1))?);
            }
            let mut next_incident = 1;
            let mut next_delivery = 1;
            for row in txn
                .query("SELECT key, value FROM tocsin_meta", &[])
                .await
                .map_err(db_error("load counters"))?
            {
                let value = row.get::<_, i64>(1) as u64;
                match row.get::<_, &str>(0) {
                    "next_incident" => next_incident = value.max(1),
                    "next_delivery" => next_delivery = value.max(1),
                    _ => {}
                }
            }
            txn.commit().await.map_err(db_error("load the state"))?;
            Ok(Loaded {
                alerts,
                next_incident,
                silences,
                escalations,
                outbox,
                next_delivery,
            })
        })
    }

    fn commit(&self, batch: &Batch, durability: Durability) -> Result<(), StoreError> {
        let rows = Rows::of(batch)?;
        self.run(|pool| async move {
            let mut client = client(&pool).await?;
            let txn = client
                .transaction()
                .await
                .map_err(db_error("begin a commit"))?;
            if durability == Durability::Deferred {
                // Visible at once, on disk with the WAL writer or the next durable
                // commit: the same promise as redb's non-durable commit.
                txn.batch_execute("SET LOCAL synchronous_commit = off")
                    .await
                    .map_err(db_error("begin a commit"))?;
            }
            rows.write(&txn).await?;
            txn.commit().await.map_err(db_error("commit"))
        })?;
        self.unsynced
            .store(durability == Durability::Deferred, Ordering::SeqCst);
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        if !self.unsynced.load(Ordering::SeqCst) {
            return Ok(());
        }
        // A durable commit that writes WAL flushes every asynchronous one before it.
        self.run(|pool| async move {
            let client = client(&pool).await?;
            client
                .execute(
                    "UPDATE tocsin_meta SET value = value WHERE key = 'next_incident'",
                    &[],
                )
                .await
                .map_err(db_error("sync"))?;
            Ok(())
        })?;
        self.unsynced.store(false, Ordering::SeqCst);
        Ok(())
    }

    fn timeline(&self, fp: Fingerprint) -> Result<Vec<TimelineEntry>, StoreError> {
        self.run(|pool| async move {
            let client = client(&pool).await?;
            let rows = client
                .query(
                    "SELECT seq, record FROM tocsin_timeline WHERE fingerprint = $1 ORDER BY seq",
                    &[&(fp.0 as i64)],
                )
                .await
                .map_err(db_error("read a timeline"))?;
            rows.iter()
                .map(|row| {
                    let key = format!("{fp}/{}", row.get::<_, i64>(0));
                    decode("timeline", key, row.get::<_, &[u8]>(1))
                })
                .collect()
        })
    }

    fn was_sent(&self, key: &str) -> Result<bool, StoreError> {
        let key = key.to_string();
        self.run(|pool| async move {
            let client = client(&pool).await?;
            let row = client
                .query_opt("SELECT 1 FROM tocsin_sent WHERE key = $1", &[&key])
                .await
                .map_err(db_error("read the notification log"))?;
            Ok(row.is_some())
        })
    }

    fn reference(&self, fp: Fingerprint, address: &str) -> Result<Option<String>, StoreError> {
        let address = address.to_string();
        self.run(|pool| async move {
            let client = client(&pool).await?;
            let row = client
                .query_opt(
                    "SELECT reference FROM tocsin_message_refs WHERE fingerprint = $1 AND address = $2",
                    &[&(fp.0 as i64), &address],
                )
                .await
                .map_err(db_error("read a message reference"))?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn job_ran(&self, name: &str) -> Result<Option<Timestamp>, StoreError> {
        let name = name.to_string();
        self.run(|pool| async move {
            let client = client(&pool).await?;
            let row = client
                .query_opt("SELECT at FROM tocsin_jobs WHERE name = $1", &[&name])
                .await
                .map_err(db_error("read scheduled jobs"))?;
            Ok(row.map(|r| Timestamp(r.get(0))))
        })
    }

    fn prune_sent(&self, before: Timestamp) -> Result<usize, StoreError> {
        self.run(|pool| async move {
            let client = client(&pool).await?;
            let n = client
                .execute("DELETE FROM tocsin_sent WHERE at < $1", &[&before.0])
                .await
                .map_err(db_error("prune the notification log"))?;
            Ok(n as usize)
        })
    }

    fn incident(&self, id: u64) -> Result<Option<Fingerprint>, StoreError> {
        self.run(|pool| async move {
            let client = client(&pool).await?;
            let row = client
                .query_opt(
                    "SELECT fingerprint FROM tocsin_incidents WHERE id = $1",
                    &[&(id as i64)],
                )
                .await
                .map_err(db_error("read incident ids"))?;
            Ok(row.map(|r| Fingerprint(r.get::<_, i64>(0) as u64)))
        })
    }
}
