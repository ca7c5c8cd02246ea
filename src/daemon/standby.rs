//! Replicas over a shared store (PostgreSQL): whether this one acts, under which
//! lease, and what a standby does meanwhile (ARCHITECTURE.md, "Replicas"). A store
//! of this process alone (redb) always acts, under lease 0.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Daemon, OpError};
use crate::store::Store;

/// How often a standby looks whether it holds the lease.
pub(super) const STANDBY_POLL: Duration = Duration::from_millis(100);
/// How often a standby reads the shared state again, so what it shows (an ack
/// taken by the replica that acts) is at most this old.
const STANDBY_READ: Duration = Duration::from_millis(500);

/// The lease the store holds now, `u64::MAX` for none (a standby).
pub(super) fn store_lease(store: &dyn Store) -> u64 {
    store.lease().unwrap_or(u64::MAX)
}

impl Daemon {
    /// Whether this replica may act (holds the lease), reading the state again
    /// first if the lease is new: another replica may have changed it. A standby
    /// reads it again each time it looks, so what it shows stays fresh.
    pub(super) async fn acting(&self, last_read: &mut std::time::Instant) -> bool {
        let ctx = &self.shared.ctx;
        let lease = store_lease(&*ctx.store);
        if lease != u64::MAX && ctx.acting.load(Ordering::SeqCst) == lease {
            return true;
        }
        if lease == u64::MAX && last_read.elapsed() < STANDBY_READ {
            return false;
        }
        *last_read = std::time::Instant::now();
        let restored = self
            .with_core(move |ctx, core, now| {
                // Read after the lease was taken: every commit under an older
                // epoch is in it, and none can follow (fencing).
                core.restore(ctx, now);
                if !ctx.stale.load(Ordering::SeqCst) {
                    ctx.acting.store(lease, Ordering::SeqCst);
                    if lease != u64::MAX {
                        ctx.store.act_under(lease);
                    }
                }
                Ok(())
            })
            .await;
        if lease != u64::MAX && restored.is_ok() && !ctx.stale.load(Ordering::SeqCst) {
            tracing::info!(epoch = lease, "acting on the state under the lease");
            return true;
        }
        false
    }
}

/// What a replica does with a write it is sent (`http/forward.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Writes {
    /// It holds the lease and acts on the state it read under it: it commits.
    Here,
    /// Another replica holds the lease, reached at this URL: it commits them.
    Forward(String),
    /// No replica acts now (none holds the lease, the holder has not said where
    /// it is reached, the database does not answer, or this replica took the
    /// lease and has not read the state yet): a sender must retry.
    Nowhere,
}

impl Daemon {
    /// Where a write sent to this replica now is committed.
    pub fn writes(&self) -> Writes {
        let ctx = &self.shared.ctx;
        let lease = store_lease(&*ctx.store);
        if lease != u64::MAX {
            return if ctx.acting.load(Ordering::SeqCst) == lease {
                Writes::Here
            } else {
                Writes::Nowhere
            };
        }
        match ctx.store.holder_url() {
            Some(url) => Writes::Forward(url),
            None => Writes::Nowhere,
        }
    }

    /// Tells the other replicas where this one is reached (written into the
    /// lease while it holds it).
    pub fn advertise(&self, url: &str) {
        self.shared.ctx.store.advertise(url);
    }

    /// The key every replica signs with alike (the web UI's cross-site tokens,
    /// the caller's address on a forwarded request): kept in a shared store,
    /// made there once; with a store of this process alone, drawn now.
    pub async fn signing_key(&self) -> Result<[u8; 32], OpError> {
        let stored = self
            .blocking(|d| d.shared.ctx.store.shared_key("signing"))
            .await??;
        Ok(stored.unwrap_or_else(|| {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).expect("the operating system gives random bytes");
            key
        }))
    }
}
