//! The PostgreSQL backend: the same tables as the redb file (`pg_schema.rs`), the
//! same record encoding (`codec.rs`), the same behaviour behind [`Store`]. The only
//! module that talks to PostgreSQL.
//!
//! tokio-postgres with a deadpool pool, on a small runtime of the store's own: the
//! [`Store`] methods block (the daemon calls them from blocking threads, and once
//! from `Daemon::open` inside its runtime), so each one hands its query to that
//! runtime and waits on a plain channel, which is safe from any thread. A batch is
//! encoded before it leaves the caller's thread, and each table's rows go in one
//! statement (`unnest` of arrays), prepared once per connection and pipelined with
//! the fence: a commit is three round trips (begin, the statements, commit)
//! whatever its size.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::codec::decode;
use super::lease::{Lease, RENEW_EVERY, TTL};
use super::pg_batch::Rows;
use super::pg_schema;
use super::{Batch, Durability, Loaded, Store, StoreError, db_error};
use crate::alert::TimelineEntry;
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
    /// The lease this replica acts under, renewed in the background.
    lease: std::sync::Arc<Lease>,
    /// When the database last answered a renewal of the lease (every
    /// [`RENEW_EVERY`]): silent for longer than [`TTL`], it is down or cut off,
    /// and every operation fails at once instead of waiting out its deadline.
    answered: std::sync::Arc<std::sync::Mutex<std::time::Instant>>,
}

impl std::fmt::Debug for PgStore {
    /// Never prints the connection settings: they may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
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
            lease: std::sync::Arc::new(Lease::new()),
            answered: std::sync::Arc::new(std::sync::Mutex::new(std::time::Instant::now())),
        };
        let lease = store.lease.clone();
        store.run(|pool| async move {
            let mut client = pool.get().await.map_err(pool_error)?;
            pg_schema::migrate(&mut client).await?;
            // Takes the lease now if it is free, so a lone replica acts at once
            // (whoever reads the state from here on reads it under this lease).
            if let Some(epoch) = lease.renew(&client).await? {
                lease.act_under(epoch);
            }
            Ok(())
        })?;
        let (lease, pool) = (store.lease.clone(), store.pool.clone());
        let answered = store.answered.clone();
        store.runtime().spawn(async move {
            let mut every = tokio::time::interval(RENEW_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !lease.released() {
                every.tick().await;
                // Bounded: over a connection that a partition holds silent, the
                // renewal would wait until TCP gives up, and the loop with it.
                let renewal = async {
                    let client = pool.get().await.map_err(pool_error)?;
                    lease.renew(&client).await.map(|_| ())
                };
                let renewed = tokio::time::timeout(TTL, renewal)
                    .await
                    .unwrap_or_else(|_| Err(no_answer(TTL)));
                match renewed {
                    Ok(()) => {
                        *answered.lock().unwrap_or_else(|e| e.into_inner()) =
                            std::time::Instant::now()
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot renew the lease on the state"),
                }
            }
        });
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

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("Some until drop")
    }

    /// Runs `op` on the store's runtime and waits for it, from any thread.
    pub(super) fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let silent = self
            .answered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed();
        if silent > TTL {
            // Down or cut off: failing now keeps every caller (a request, the
            // standby's reads under the core's lock) from waiting out the deadline.
            return Err(StoreError::Postgres {
                doing: "reach the database",
                message: format!("no answer for {}s", silent.as_secs()),
            });
        }
        let runtime = self.runtime();
        let fut = op(self.pool.clone());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let out = tokio::time::timeout(OPERATION_TIMEOUT, fut)
                .await
                .unwrap_or_else(|_| Err(no_answer(OPERATION_TIMEOUT)));
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
        // Gives the lease up so another replica takes over at once, not after its
        // expiry; a second at most (the database may be gone).
        let (lease, pool) = (self.lease.clone(), self.pool.clone());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime().spawn(async move {
            let release = async {
                if let Ok(client) = pool.get().await {
                    let _ = lease.release(&client).await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), release).await;
            let _ = tx.send(());
        });
        let _ = rx.recv_timeout(Duration::from_secs(2));
        // Dropping a runtime blocks, which panics inside another runtime.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn no_answer(within: Duration) -> StoreError {
    StoreError::Postgres {
        doing: "finish in time",
        message: format!("no answer in {within:?}"),
    }
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

/// Every row of `sql` (fingerprint, record), decoded straight into a map sized
/// for them, as the daemon holds them.
async fn load_map<T: serde::de::DeserializeOwned>(
    txn: &tokio_postgres::Transaction<'_>,
    sql: &str,
    name: &'static str,
) -> Result<HashMap<Fingerprint, T>, StoreError> {
    let rows = txn
        .query(sql, &[])
        .await
        .map_err(db_error("load the state"))?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let fp = Fingerprint(row.get::<_, i64>(0) as u64);
        out.insert(fp, decode(name, fp, row.get::<_, &[u8]>(1))?);
    }
    Ok(out)
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
            let alerts = load_map(
                &txn,
                "SELECT fingerprint, record FROM tocsin_alerts",
                "alerts",
            )
            .await?;
            let escalations = load_map(
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
            let jobs = txn
                .query("SELECT name, at FROM tocsin_jobs", &[])
                .await
                .map_err(db_error("load scheduled jobs"))?
                .iter()
                .map(|r| (r.get::<_, String>(0), Timestamp(r.get(1))))
                .collect();
            txn.commit().await.map_err(db_error("load the state"))?;
            Ok(Loaded {
                alerts,
                next_incident,
                silences,
                escalations,
                outbox,
                next_delivery,
                jobs,
            })
        })
    }

    fn commit(&self, batch: &Batch, durability: Durability) -> Result<(), StoreError> {
        let rows = Rows::of(batch)?;
        // The epoch the daemon read the state under, even if its renewal is
        // overdue: the database decides.
        let epoch = self.lease.acting().ok_or(StoreError::Standby)?;
        let lease = self.lease.clone();
        self.run(|pool| async move {
            let mut client = client(&pool).await?;
            let txn = client
                .transaction()
                .await
                .map_err(db_error("begin a commit"))?;
            let deferred = async {
                if durability == Durability::Deferred {
                    // Visible at once, on disk with the WAL writer or the next
                    // durable commit: the same promise as redb's non-durable commit.
                    txn.batch_execute("SET LOCAL synchronous_commit = off")
                        .await
                        .map_err(db_error("begin a commit"))?;
                }
                Ok(())
            };
            // The fence, the setting and every write go out together, in this
            // order (one round trip, not one per statement); the fence's share
            // lock holds until the commit, and a fence that fails (or any
            // statement) leaves the transaction to be rolled back.
            futures_util::future::try_join3(lease.fence(&txn, epoch), deferred, rows.write(&txn))
                .await?;
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

    fn references(
        &self,
        wanted: &[(Fingerprint, String)],
    ) -> Result<Vec<Option<String>>, StoreError> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let fps: Vec<i64> = wanted.iter().map(|(fp, _)| fp.0 as i64).collect();
        let addresses: Vec<String> = wanted.iter().map(|(_, a)| a.clone()).collect();
        let n = wanted.len();
        self.run(|pool| async move {
            let client = client(&pool).await?;
            let rows = client
                .query(
                    "SELECT w.i, r.reference \
                     FROM unnest($1::bigint[], $2::text[]) WITH ORDINALITY AS w(fp, address, i) \
                     JOIN tocsin_message_refs r ON r.fingerprint = w.fp AND r.address = w.address",
                    &[&fps, &addresses],
                )
                .await
                .map_err(db_error("read message references"))?;
            let mut found = vec![None; n];
            for row in rows {
                let i: i64 = row.get(0);
                found[i as usize - 1] = Some(row.get(1));
            }
            Ok(found)
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

    fn lease(&self) -> Option<u64> {
        self.lease.held()
    }

    fn act_under(&self, epoch: u64) {
        self.lease.act_under(epoch);
    }

    fn advertise(&self, url: &str) {
        self.lease.advertise(url);
    }

    fn holder_url(&self) -> Option<String> {
        self.lease.holder_url()
    }

    fn shared_key(&self, name: &str) -> Result<Option<[u8; 32]>, StoreError> {
        let name = name.to_string();
        let mut drawn = [0u8; 32];
        getrandom::fill(&mut drawn).map_err(|e| StoreError::Postgres {
            doing: "draw a key",
            message: e.to_string(),
        })?;
        self.run(|pool| async move {
            let client = client(&pool).await?;
            // The first replica's key stays: a later one reads it.
            client
                .execute(
                    "INSERT INTO tocsin_keys (name, key) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                    &[&name, &&drawn[..]],
                )
                .await
                .map_err(db_error("store a key"))?;
            let row = client
                .query_one("SELECT key FROM tocsin_keys WHERE name = $1", &[&name])
                .await
                .map_err(db_error("read a key"))?;
            let key: &[u8] = row.get(0);
            let key = <[u8; 32]>::try_from(key).map_err(|_| StoreError::Postgres {
                doing: "read a key",
                message: format!("key {name:?} is not 32 bytes"),
            })?;
            Ok(Some(key))
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
