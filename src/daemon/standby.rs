//! Replicas over a shared store (PostgreSQL): whether this one acts, under which
//! lease, and what a standby does meanwhile (ARCHITECTURE.md, "Replicas"). A store
//! of this process alone (redb) always acts, under lease 0.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Daemon;
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
