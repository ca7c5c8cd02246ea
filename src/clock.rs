//! Time as an input. Everything that decides by time (evaluation, `for`, escalation,
//! ack expiry) takes a [`Timestamp`] read once from a [`Clock`], so tests can run
//! hours of alert life in milliseconds with a [`ManualClock`]. The daemon's loop
//! also waits through its clock ([`Clock::sleep_until`]): on a manual clock it
//! wakes when the test moves time, not when the wall clock does.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, as Prometheus timestamps are.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_secs(s: i64) -> Self {
        Timestamp(s * 1000)
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0).max(0) as u64)
    }

    /// RFC 3339 in UTC, for people and APIs.
    pub fn to_rfc3339(self) -> String {
        let t = UNIX_EPOCH + Duration::from_millis(self.0.max(0) as u64);
        humantime::format_rfc3339_millis(t).to_string()
    }
}

impl std::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(d.as_millis() as i64))
    }
}

impl std::ops::Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(d.as_millis() as i64))
    }
}

/// A future that is `Send`, as the daemon's tasks need.
pub type Wait<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
    /// Completes once `now()` has reached `t` (at once if it has).
    fn sleep_until(&self, t: Timestamp) -> Wait<'_>;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_millis() as i64)
    }

    fn sleep_until(&self, t: Timestamp) -> Wait<'_> {
        Box::pin(async move {
            // Checked again after each sleep: the wall clock may have been set back.
            loop {
                let now = self.now();
                if now >= t {
                    return;
                }
                tokio::time::sleep(t.since(now)).await;
            }
        })
    }
}

/// A clock that moves only when told to; clones share the same time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    ms: Arc<AtomicI64>,
    /// Wakes whoever sleeps on this clock when it moves.
    moved: Arc<tokio::sync::Notify>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            ms: Arc::new(AtomicI64::new(start.0)),
            moved: Arc::default(),
        }
    }

    pub fn set(&self, t: Timestamp) {
        self.ms.store(t.0, Ordering::SeqCst);
        self.moved.notify_waiters();
    }

    pub fn advance(&self, d: Duration) {
        self.ms.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
        self.moved.notify_waiters();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.ms.load(Ordering::SeqCst))
    }

    fn sleep_until(&self, t: Timestamp) -> Wait<'_> {
        Box::pin(async move {
            loop {
                // Registered before the check, so a move in between is not missed.
                let moved = self.moved.notified();
                tokio::pin!(moved);
                moved.as_mut().enable();
                if self.now() >= t {
                    return;
                }
                moved.await;
            }
        })
    }
}
