//! The lease one replica acts under when several share one PostgreSQL state
//! (ARCHITECTURE.md, "Replicas": why a lease and not claims per row).
//!
//! One row, `tocsin_lease`: the holder (a random id per process), a fencing epoch
//! and an expiry in the database's clock. Every replica tries to take or renew it
//! every [`RENEW_EVERY`]: the holder extends it; anyone takes it once it expired,
//! with the epoch one higher. Every commit checks, in its own transaction and
//! under a share lock on the row, that the lease is still this replica's with the
//! epoch it holds (`FOR SHARE`: a takeover waits for commits under the old epoch to
//! end, and every commit after it sees the new holder), so a replica that lost
//! the lease can never commit again. It stops sending too: locally the lease counts
//! as lost [`MARGIN`] before the database would let another replica take it,
//! measured from before the renewal was sent.
//!
//! The row also names the holder's URL (`server.advertise_url`): a standby
//! forwards the writes it is sent there (`http/forward.rs`), so any replica
//! accepts them. Each renewal writes it; a standby reads it with each try.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::StoreError;
use super::db_error;

/// How long a lease lasts without renewal: a dead holder's lease is taken over
/// this long after its last renewal at most (plus one [`RENEW_EVERY`]).
pub const TTL: Duration = Duration::from_secs(3);
/// How often every replica renews or tries to take the lease.
pub const RENEW_EVERY: Duration = Duration::from_millis(500);
/// The holder stops acting this long before its lease expires in the database.
const MARGIN: Duration = Duration::from_millis(500);

/// This process' side of the lease.
pub(super) struct Lease {
    /// Random per process: a restarted replica is a new holder, with a new epoch.
    pub holder: String,
    /// The epoch held (0: none).
    epoch: AtomicU64,
    /// The epoch the state in memory was read under (`Store::act_under`).
    acting: AtomicU64,
    /// When the lease stops counting here (`MARGIN` before the database's expiry).
    valid_until: Mutex<Option<Instant>>,
    /// Given up for good (the store is closing): never taken again.
    released: AtomicBool,
    /// The URL other replicas reach this one at, written into the row while held
    /// (empty until the listener is bound).
    address: Mutex<String>,
    /// Another replica's URL while it holds an unexpired lease, as last read.
    holder_url: Mutex<Option<String>>,
}

impl Lease {
    pub fn new() -> Lease {
        Lease {
            holder: uuid::Uuid::new_v4().to_string(),
            epoch: AtomicU64::new(0),
            acting: AtomicU64::new(0),
            valid_until: Mutex::new(None),
            released: AtomicBool::new(false),
            address: Mutex::new(String::new()),
            holder_url: Mutex::new(None),
        }
    }

    /// The URL this replica is reached at, written with the next renewal.
    pub fn advertise(&self, url: &str) {
        *self.address.lock().unwrap_or_else(|e| e.into_inner()) = url.to_string();
    }

    /// The URL of the replica that holds the lease, when another one does and
    /// has said where it is reached.
    pub fn holder_url(&self) -> Option<String> {
        self.holder_url
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_holder_url(&self, url: Option<String>) {
        *self.holder_url.lock().unwrap_or_else(|e| e.into_inner()) = url;
    }

    pub fn released(&self) -> bool {
        self.released.load(Ordering::SeqCst)
    }

    /// The epoch the daemon acts under (0: none yet): commits are fenced with it.
    pub fn acting(&self) -> Option<u64> {
        Some(self.acting.load(Ordering::SeqCst)).filter(|e| *e != 0)
    }

    pub fn act_under(&self, epoch: u64) {
        self.acting.store(epoch, Ordering::SeqCst);
    }

    /// The epoch while the lease is held and not about to expire.
    pub fn held(&self) -> Option<u64> {
        let until = *self.valid_until.lock().unwrap_or_else(|e| e.into_inner());
        let epoch = self.epoch.load(Ordering::SeqCst);
        (epoch != 0 && until.is_some_and(|t| Instant::now() < t)).then_some(epoch)
    }

    /// Renews the lease, or takes it if it expired: one statement, in the
    /// database's clock. Returns the epoch held after it, if any.
    pub async fn renew(&self, client: &tokio_postgres::Client) -> Result<Option<u64>, StoreError> {
        if self.released() {
            return Ok(None);
        }
        let sent = Instant::now();
        let ttl_ms = TTL.as_millis() as i64;
        let address = self
            .address
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let row = client
            .query_opt(
                "UPDATE tocsin_lease SET
                     epoch = CASE WHEN holder = $1 THEN epoch ELSE epoch + 1 END,
                     holder = $1,
                     address = $3,
                     expires_at = clock_timestamp() + $2::bigint * interval '1 millisecond'
                 WHERE id = 1 AND (holder = $1 OR expires_at < clock_timestamp())
                 RETURNING epoch",
                &[&self.holder, &ttl_ms, &address],
            )
            .await
            .inspect_err(|_| self.set_holder_url(None))
            .map_err(db_error("renew the lease"))?;
        let holder_url = match row {
            Some(_) => None,
            // Someone else holds it: where writes go meanwhile.
            None => client
                .query_opt(
                    "SELECT address FROM tocsin_lease
                     WHERE id = 1 AND expires_at > clock_timestamp() AND address <> ''",
                    &[],
                )
                .await
                .inspect_err(|_| self.set_holder_url(None))
                .map_err(db_error("read the lease"))?
                .map(|r| r.get::<_, String>(0)),
        };
        self.set_holder_url(holder_url);
        let mut until = self.valid_until.lock().unwrap_or_else(|e| e.into_inner());
        match row {
            Some(row) => {
                let epoch = row.get::<_, i64>(0) as u64;
                let before = self.epoch.swap(epoch, Ordering::SeqCst);
                if before != epoch {
                    tracing::info!(epoch, "this replica holds the lease on the state");
                }
                *until = Some(sent + TTL - MARGIN);
                Ok(Some(epoch))
            }
            None => {
                if self.epoch.swap(0, Ordering::SeqCst) != 0 {
                    tracing::warn!("this replica lost the lease on the state: standby");
                }
                *until = None;
                Ok(None)
            }
        }
    }

    /// Inside a commit's transaction: refuses it unless this replica holds the
    /// lease with the epoch it acts under, and keeps a takeover out until it ends.
    pub async fn fence(
        &self,
        txn: &deadpool_postgres::Transaction<'_>,
        epoch: u64,
    ) -> Result<(), StoreError> {
        // Prepared once per connection: the check is pipelined with the commit's
        // writes (`pg_batch.rs`) and adds no round trip of its own.
        let check = txn
            .prepare_cached(
                "SELECT 1 FROM tocsin_lease WHERE id = 1 AND holder = $1 AND epoch = $2
                 AND expires_at > clock_timestamp() FOR SHARE",
            )
            .await
            .map_err(db_error("check the lease"))?;
        let row = txn
            .query_opt(&check, &[&self.holder, &(epoch as i64)])
            .await
            .map_err(db_error("check the lease"))?;
        row.map(|_| ()).ok_or(StoreError::Standby)
    }

    /// Gives the lease up (on close), so another replica takes over at once.
    pub async fn release(&self, client: &tokio_postgres::Client) -> Result<(), StoreError> {
        self.released.store(true, Ordering::SeqCst);
        self.epoch.store(0, Ordering::SeqCst);
        self.set_holder_url(None);
        client
            .execute(
                "UPDATE tocsin_lease SET expires_at = '-infinity' WHERE id = 1 AND holder = $1",
                &[&self.holder],
            )
            .await
            .map_err(db_error("release the lease"))?;
        Ok(())
    }
}
