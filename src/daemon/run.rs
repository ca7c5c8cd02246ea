//! The loop: a turn does everything due at the clock's `now`, then the loop sleeps
//! until the next deadline or until something new is armed. `tocsin serve`,
//! `tocsin test` and the test suite all run this one loop; tests drive it on a
//! manual clock with [`Daemon::run_until`] and [`Daemon::caught_up`].

use std::sync::MutexGuard;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;

use super::standby::STANDBY_POLL;
use super::state::Core;
use super::{Daemon, delivery, reports, turn, upstream};
use crate::clock::{Clock, ManualClock, Timestamp};

impl Daemon {
    /// The earliest deadline, if any. Safe on the async workers: it reads the queue
    /// under the lock and never touches the store.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.queue().schedule.next()
    }

    /// The core locked without the store reload that [`Daemon::core`] may do: only
    /// for reading in-memory state from async code.
    pub(super) fn queue(&self) -> MutexGuard<'_, Core> {
        self.shared.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One turn of the loop: everything due at the clock's `now` is done (state
    /// changes committed, due messages handed to their sends, reports started).
    pub async fn advance(&self) {
        let _one = self.shared.turning.lock().await;
        self.shared.advancing.store(true, Ordering::SeqCst);
        let turn = self
            .with_core(|ctx, core, now| {
                // While the turn runs the loop is not asleep: whatever is armed now
                // is seen when the turn ends.
                ctx.sleeping_until.store(i64::MIN, Ordering::SeqCst);
                let turn = turn::run_due(ctx, core, now);
                // A core that could not be read back after a failed commit may owe
                // pages about changes no store holds. A lone daemon (redb, lease 0)
                // sends them anyway (RELIABILITY.md); a replica sends nothing until
                // the state is read back (which arms the deliveries again): the
                // database decides, and whoever acts next would page the same
                // alert under a key of its own, a double page.
                let shared = ctx.store.lease() != Some(0);
                let outgoing = if shared && ctx.stale.load(Ordering::SeqCst) {
                    Vec::new()
                } else {
                    delivery::take(ctx, core, now)
                };
                Ok((turn, outgoing))
            })
            .await;
        match turn {
            Ok((turn, outgoing)) => {
                for out in outgoing {
                    self.start(move |d| d.deliver(out));
                }
                match turn {
                    Ok(turn) => {
                        for index in turn.reports {
                            self.start(move |d| reports::run(d, index));
                        }
                        for index in turn.upstream_watches {
                            self.start(move |d| upstream::watch(d, index));
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "a deadline's work could not be committed")
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "a turn of the daemon's loop panicked"),
        }
        self.shared.advancing.store(false, Ordering::SeqCst);
        self.shared.progress.send_modify(|n| *n += 1);
    }

    /// Runs a task the loop does not wait for (a send, a report), counted until it
    /// ends so [`Daemon::caught_up`] knows.
    pub(super) fn start<F>(&self, task: impl FnOnce(Daemon) -> F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.shared.outstanding.fetch_add(1, Ordering::SeqCst);
        let d = self.clone();
        let fut = task(d.clone());
        tokio::spawn(async move {
            fut.await;
            d.shared.outstanding.fetch_sub(1, Ordering::SeqCst);
            d.shared.progress.send_modify(|n| *n += 1);
        });
    }

    /// Sends one message and settles it, group-committed as intake is: the
    /// message joins the ones sent and waiting for the core, and whoever gets the
    /// core first settles all of them in one commit (over PostgreSQL a commit is
    /// round trips under the core's lock). Returns once its own settlement is
    /// written (or failed).
    async fn deliver(self, out: delivery::Outgoing) {
        let sent = delivery::send(&self.shared.ctx, &self.shared.channels, &out).await;
        self.settling().push((out, sent));
        let d = self.clone();
        let settled = self
            .with_core(move |ctx, core, now| {
                let waiting = std::mem::take(&mut *d.settling());
                if waiting.is_empty() {
                    // Settled by a delivery that took the core first.
                    return Ok(());
                }
                delivery::settle(ctx, core, waiting, now)
            })
            .await;
        if let Err(e) = settled {
            tracing::error!(error = %e, "cannot record what was delivered");
        }
    }

    fn settling(&self) -> MutexGuard<'_, Vec<(delivery::Outgoing, crate::outbox::Outcome)>> {
        self.shared
            .settling
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The loop `tocsin serve` runs: a turn, then sleep until the next deadline or
    /// until something new is armed, until `stop` says so.
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut last_read = std::time::Instant::now();
        loop {
            if !self.acting(&mut last_read).await {
                // A standby: another replica holds the lease, and acts.
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tokio::time::sleep(STANDBY_POLL) => {}
                }
                continue;
            }
            self.advance().await;
            let next = {
                let core = self.queue();
                let next = core.schedule.next();
                self.shared
                    .ctx
                    .sleeping_until
                    .store(next.map_or(i64::MAX, |t| t.0), Ordering::SeqCst);
                next
            };
            let clock = &self.shared.ctx.clock;
            let sleep = async {
                match next {
                    Some(t) => clock.sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.changed() => break,
                _ = self.shared.ctx.wake.notified() => {}
                _ = sleep => {}
            }
        }
    }

    /// Starts the loop on the current runtime. Deadlines are kept while it runs.
    pub fn spawn_loop(&self) -> LoopHandle {
        let (stop, rx) = watch::channel(false);
        LoopHandle {
            daemon: self.clone(),
            stop,
            task: Some(tokio::spawn(self.clone().run(rx))),
        }
    }

    /// Waits until everything due at the clock's `now` is done: no deadline is
    /// due, no turn is running, no send or report is outstanding. The loop must be
    /// running.
    pub async fn caught_up(&self) {
        let mut progress = self.shared.progress.subscribe();
        loop {
            progress.borrow_and_update();
            let idle = !self.shared.advancing.load(Ordering::SeqCst)
                && self.shared.outstanding.load(Ordering::SeqCst) == 0
                && self.next_deadline().is_none_or(|t| t > self.now());
            if idle || progress.changed().await.is_err() {
                return;
            }
        }
    }

    /// Keeps the loop from taking a turn until the guard is dropped: a driver of a
    /// manual clock moves time and acts at exactly that instant before the
    /// deadlines of that instant are taken.
    pub async fn hold(&self) -> Held<'_> {
        Held(self.shared.turning.lock().await)
    }

    /// Moves `clock` to each deadline up to `until` in turn, letting the loop do
    /// what each owes at exactly its time, then to `until`. How `tocsin test` and
    /// the tests run hours of escalation in milliseconds, through the loop that
    /// pages people.
    pub async fn run_until(&self, clock: &ManualClock, until: Timestamp) {
        loop {
            self.caught_up().await;
            match self.next_deadline() {
                Some(next) if next <= until => clock.set(next.max(clock.now())),
                _ => break,
            }
        }
        if clock.now() < until {
            clock.set(until);
        }
        self.caught_up().await;
    }
}

/// Keeps the loop from taking a turn while it lives (see [`Daemon::hold`]).
pub struct Held<'a>(#[allow(dead_code)] tokio::sync::MutexGuard<'a, ()>);

/// The running loop of a daemon; [`LoopHandle::stop`] ends it.
pub struct LoopHandle {
    daemon: Daemon,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LoopHandle {
    /// Stops the loop, waits (a while) for sends in flight, and writes what waits
    /// for the next evaluation.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let d = &self.daemon;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut progress = d.shared.progress.subscribe();
        while d.shared.outstanding.load(Ordering::SeqCst) > 0 {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero()
                || tokio::time::timeout(left, progress.changed())
                    .await
                    .is_err()
            {
                tracing::warn!(
                    "stopping with messages still being sent; they go again after a restart"
                );
                break;
            }
        }
        if let Err(e) = d.flush().await {
            tracing::error!(error = %e, "cannot write the state held for the next evaluation");
        }
    }
}

impl Drop for LoopHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
