//! The daemon: alert state, its commit pipeline, its deadlines and its deliveries,
//! behind [`Daemon`], a cheap-clone handle whose async methods are the only way in.
//!
//! - `state` — the core state behind one std `Mutex` (never held across an `.await`) and
//!   the blocking operations on it.
//! - `intake` — alerts from other systems, group-committed.
//! - `pipeline` — every change goes mute → escalate → enqueue → write → schedule,
//!   durable before anything is sent.
//! - `schedule` and `turn` — one deadline queue for every timed action, and what a
//!   turn of the loop does with the deadlines that came.
//! - `delivery` — messages out, one in flight per address, resolve wins.
//! - `reports` — scheduled reports.
//!
//! This module is the async facade: the only place that crosses into blocking code
//! (`spawn_blocking`), and the home of the loop ([`Daemon::spawn_loop`]) that
//! `tocsin serve`, `tocsin test` and the test suite all run.

mod delivery;
mod intake;
mod ops;
mod pipeline;
mod reports;
mod retention;
mod schedule;
mod standby;
mod state;
mod turn;
mod upstream;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use crate::alert::{Alert, Event, Rejected, TimelineEntry};
use crate::clock::{Clock, ManualClock, Timestamp};
use crate::config::Config;
use crate::engine::ExternalAlert;
use crate::metrics::Metrics;
use crate::notify::Channels;
use crate::rules::{self, RuleSet};
use crate::series::{IncomingSample, SeriesError};
use crate::silence::Silence;
use crate::store::{PgStore, RedbStore, Store, StoreError};
use intake::IntakeQueue;
pub use schedule::Due;
use standby::{STANDBY_POLL, store_lease};
use state::Core;

/// Why the daemon could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("rules do not check:\n{0}")]
    Rules(String),
    #[error("cannot read rules: {0}")]
    RulesIo(std::io::Error),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("channels: {0}")]
    Channels(String),
}

/// The configured store: the redb file, or PostgreSQL (migrated on open).
pub fn open_store(storage: &crate::config::Storage) -> Result<Box<dyn Store>, StoreError> {
    Ok(match &storage.backend {
        crate::config::Backend::Redb => Box::new(RedbStore::open(&storage.path)?),
        crate::config::Backend::Postgres { url } => Box::new(PgStore::connect(url.expose())?),
    })
}

/// Why an operation on the daemon was refused.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("sample {index}: {source}")]
    Sample { index: usize, source: SeriesError },
    /// What was not found, as a sentence: "no alert with id 42".
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Rejected(#[from] Rejected),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The operation panicked; what it changed was not committed.
    #[error("internal error")]
    Internal,
}

/// An alert as the API shows it.
#[derive(Clone, Debug)]
pub struct AlertView {
    pub alert: Alert,
    pub annotations: std::collections::BTreeMap<String, String>,
    pub severity: String,
    /// The escalation policy it follows: its "receiver" in Alertmanager's terms.
    pub policy: String,
}

/// What every stage reads and none replaces: the config, the store, the clock,
/// the metrics, and the flags that say how the store is doing.
pub(crate) struct Context {
    config: Arc<Config>,
    store: Box<dyn Store>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    /// False while the store refuses writes: state changes cannot be made durable,
    /// so `/readyz` says not ready until a commit succeeds again.
    store_ok: AtomicBool,
    /// Set when a commit failed and the in-memory state could not be put back to
    /// what is durable yet (the store could not be read): retried before the next
    /// operation. Deliveries go on meanwhile: a page about an alert that really
    /// fires is worth more than waiting for the disk.
    stale: AtomicBool,
    /// When this daemon opened: a report whose period ended before it is not sent
    /// late on a first start.
    opened_at: Timestamp,
    /// The deadline the loop sleeps until (ms; `i64::MAX` for none). Set with the
    /// core locked, so a deadline armed earlier than it wakes the loop.
    sleeping_until: AtomicI64,
    /// Wakes the loop.
    wake: tokio::sync::Notify,
    /// The lease epoch the in-memory state was read under (`Store::lease`);
    /// `u64::MAX` when read as a standby. A new epoch means another replica may
    /// have acted meanwhile: the state is read again before this one acts.
    acting: std::sync::atomic::AtomicU64,
}

impl Context {
    fn store_ok(&self) -> bool {
        self.store_ok.load(Ordering::SeqCst)
    }

    fn set_store_ok(&self, ok: bool) {
        self.store_ok.store(ok, Ordering::SeqCst);
    }

    fn set_stale(&self, stale: bool) {
        self.stale.store(stale, Ordering::SeqCst);
    }

    /// The Slack channel for alerts of `severity`, when Slack is configured.
    fn slack_channel(&self, severity: &str) -> Option<String> {
        let slack = self.config.channels.slack.as_ref()?;
        Some(slack.channel_for(severity).to_string())
    }

    /// A deadline was set: if it is earlier than what the loop sleeps for, the loop
    /// wakes to look again.
    fn deadline_set(&self, at: Option<Timestamp>) {
        if let Some(t) = at
            && t.0 < self.sleeping_until.load(Ordering::SeqCst)
        {
            self.wake.notify_one();
        }
    }
}

/// The daemon's shared state: a cheap-clone handle.
#[derive(Clone)]
pub struct Daemon {
    shared: Arc<Shared>,
}

struct Shared {
    ctx: Context,
    core: Mutex<Core>,
    intake: Mutex<IntakeQueue>,
    channels: Channels,
    /// One turn of the loop at a time.
    turning: tokio::sync::Mutex<()>,
    /// A turn is running.
    advancing: AtomicBool,
    /// Sends and reports started by the loop and not finished.
    outstanding: AtomicUsize,
    /// Bumped after every turn and every finished send: [`Daemon::caught_up`]
    /// looks again then.
    progress: watch::Sender<u64>,
}

impl Daemon {
    /// Loads the rules and the state at `config.storage.path`, and builds the
    /// configured channels. Blocking (reads the store); binds nothing, and keeps no
    /// deadline until [`Daemon::spawn_loop`]. Must run inside the tokio runtime.
    pub fn open(config: Config, clock: Arc<dyn Clock>) -> Result<Daemon, OpenError> {
        let channels = Channels::from_config(&config.channels).map_err(OpenError::Channels)?;
        Daemon::open_with(config, clock, channels, None)
    }

    /// [`Daemon::open`] with the channels given (a recording set in tests and in
    /// `tocsin test`), over a store the caller opened (`None`: the redb file at
    /// `config.storage.path`; fault tests pass one whose disk fails on cue).
    pub fn open_with(
        config: Config,
        clock: Arc<dyn Clock>,
        channels: Channels,
        store: Option<Box<dyn Store>>,
    ) -> Result<Daemon, OpenError> {
        crate::tls::install_crypto_provider();
        let now = clock.now();
        let sources = rules::read_sources(&config.rules.paths).map_err(OpenError::RulesIo)?;
        let set: RuleSet = rules::check_sources(&sources, &config.check_options())
            .map_err(|d| OpenError::Rules(rules::diagnostic::render(&sources, &d, false)))?;
        let store = match store {
            Some(store) => store,
            None => open_store(&config.storage)?,
        };
        // The notification log only has to outlive retries (a day at most).
        store.prune_sent(now - Duration::from_secs(7 * 86400))?;
        let lease = store_lease(&*store);
        let metrics = Metrics::default();
        metrics.rules.set(set.alerts.len() as i64);
        let ctx = Context {
            config: Arc::new(config),
            store,
            clock,
            metrics,
            store_ok: AtomicBool::new(true),
            stale: AtomicBool::new(false),
            opened_at: now,
            sleeping_until: AtomicI64::new(i64::MAX),
            wake: tokio::sync::Notify::new(),
            acting: std::sync::atomic::AtomicU64::new(lease),
        };
        let core = Core::open(&ctx, set, now)?;
        if lease != u64::MAX {
            // The state was read after the lease was taken.
            ctx.store.act_under(lease);
        }
        ctx.metrics
            .set_alert_states(core.engine.alerts().map(|a| &a.state));
        log_opened(&ctx, &core, &channels, &sources);
        Ok(Daemon {
            shared: Arc::new(Shared {
                ctx,
                core: Mutex::new(core),
                intake: Mutex::default(),
                channels,
                turning: tokio::sync::Mutex::new(()),
                advancing: AtomicBool::new(false),
                outstanding: AtomicUsize::new(0),
                progress: watch::Sender::new(0),
            }),
        })
    }

    /// Says that the daemon is stopping and what it leaves owed for the next start.
    pub fn log_stopping(&self) {
        let owed = self.queue().outbox.len();
        tracing::info!(owed, "tocsin stopped");
    }

    pub fn config(&self) -> &Config {
        &self.shared.ctx.config
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.ctx.metrics
    }

    pub fn now(&self) -> Timestamp {
        self.shared.ctx.clock.now()
    }

    /// When this daemon opened (Alertmanager's `uptime` is this instant).
    pub fn opened_at(&self) -> Timestamp {
        self.shared.ctx.opened_at
    }

    /// Whether state changes can be made durable right now: the store takes
    /// writes, and this replica holds the lease on a shared state.
    pub fn ready(&self) -> bool {
        self.shared.ctx.store_ok() && self.shared.ctx.store.lease().is_some()
    }

    /// The core, locked. A panic while holding the lock leaves the core as
    /// consistent as the store is: every change is committed before it is acted on.
    fn core(&self) -> MutexGuard<'_, Core> {
        let mut core = self.shared.core.lock().unwrap_or_else(|e| e.into_inner());
        if self.shared.ctx.stale.load(Ordering::SeqCst) {
            core.restore(&self.shared.ctx, self.now());
        }
        core
    }

    /// Runs `f` on a blocking thread: the one crossing from async code into the
    /// core and the store.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Daemon) -> T + Send + 'static,
    ) -> Result<T, OpError> {
        let d = self.clone();
        tokio::task::spawn_blocking(move || f(&d))
            .await
            .map_err(|_| OpError::Internal)
    }

    /// [`Daemon::blocking`] for an operation on the core at `now`. `now` is read
    /// with the core locked: read before, it could be older than the `now` of a
    /// change committed while this one waited for the lock, and time would run
    /// backwards from one commit to the next (a timeline entry stamped before the
    /// change it follows; an evaluation at a time before the sample that resolved
    /// its alert, firing it again).
    async fn with_core<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Context, &mut Core, Timestamp) -> Result<T, OpError> + Send + 'static,
    ) -> Result<T, OpError> {
        self.blocking(move |d| {
            let mut core = d.core();
            let now = d.now();
            f(&d.shared.ctx, &mut core, now)
        })
        .await?
    }

    /// [`Daemon::with_core`] for a change a client is answered about: refused
    /// while the state in memory may hold changes that were never committed (a
    /// failed commit, and the store could not be read back since: a database that
    /// is down). Acting on such a state could answer 2xx for what no store holds.
    async fn with_fresh_core<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Context, &mut Core, Timestamp) -> Result<T, OpError> + Send + 'static,
    ) -> Result<T, OpError> {
        self.with_core(move |ctx, core, now| {
            if ctx.stale.load(Ordering::SeqCst) {
                return Err(OpError::Store(StoreError::Stale));
            }
            f(ctx, core, now)
        })
        .await
    }

    /// Takes a batch of samples whole or not at all, then evaluates the rules that
    /// read what it brought.
    pub async fn ingest(&self, samples: Vec<IncomingSample>) -> Result<usize, OpError> {
        self.with_fresh_core(move |ctx, core, now| core.ingest(ctx, &samples, now))
            .await
    }

    /// Takes alerts another system evaluated (Alertmanager webhook, Prometheus
    /// `POST /api/v2/alerts`) into the lifecycle, group-committed.
    pub async fn receive_external(
        &self,
        source: &str,
        alerts: Vec<ExternalAlert>,
    ) -> Result<usize, OpError> {
        self.metrics()
            .external_alerts
            .get_or_create(&Metrics::label("source", source))
            .inc_by(alerts.len() as u64);
        let count = alerts.len();
        self.blocking(move |d| {
            if d.shared.ctx.stale.load(Ordering::SeqCst) {
                // `core` reads the state back first; refused if it still cannot
                // (as in `with_fresh_core`), before the alerts join the queue.
                drop(d.core());
                if d.shared.ctx.stale.load(Ordering::SeqCst) {
                    return Err(OpError::Store(StoreError::Stale));
                }
            }
            let ticket = d
                .shared
                .intake
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .queue(alerts);
            // Read with the core locked, as in `with_core`.
            let mut core = d.core();
            let now = d.now();
            intake::commit(&d.shared.ctx, &mut core, &d.shared.intake, ticket, now)
        })
        .await??;
        Ok(count)
    }

    /// Applies an operator's event (ack, unack, resolve) to alert `id` (incident
    /// number or fingerprint).
    pub async fn act(&self, id: &str, event: Event) -> Result<AlertView, OpError> {
        let id = id.to_string();
        self.with_fresh_core(move |ctx, core, now| core.act(ctx, &id, event, now))
            .await
    }

    /// Applies `event` to every alert still firing whose occurrence paged one of
    /// `addresses` (`ACK ALL`), in one commit; the alerts changed, by incident.
    pub async fn act_paged(
        &self,
        addresses: Vec<crate::escalation::Address>,
        event: Event,
    ) -> Result<Vec<AlertView>, OpError> {
        self.with_core(move |ctx, core, now| core.act_paged(ctx, &addresses, event, now))
            .await
    }

    /// Stores a new silence (validated) and applies it to the alerts at once.
    pub async fn add_silence(&self, silence: Silence) -> Result<Silence, OpError> {
        self.with_fresh_core(move |ctx, core, now| core.add_silence(ctx, silence, now))
            .await
    }

    /// Changes silence `id` to `new` in place, or expires it and stores `new`
    /// (under its own id) instead, as Alertmanager's API does; returns the silence
    /// that stands.
    pub async fn update_silence(&self, id: &str, new: Silence) -> Result<Silence, OpError> {
        let id = id.to_string();
        self.with_core(move |ctx, core, now| core.update_silence(ctx, &id, new, now))
            .await
    }

    /// Ends a silence now; its alerts resume.
    pub async fn expire_silence(&self, id: &str) -> Result<Silence, OpError> {
        let id = id.to_string();
        self.with_fresh_core(move |ctx, core, now| core.expire_silence(ctx, &id, now))
            .await
    }

    /// Every silence, expired ones too.
    pub async fn silences(&self) -> Vec<Silence> {
        self.with_core(|_, core, _| Ok(core.silences.clone()))
            .await
            .unwrap_or_default()
    }

    /// Every alert that is not inactive, newest incident first.
    pub async fn alerts(&self) -> Vec<AlertView> {
        self.with_core(|ctx, core, _| Ok(core.alerts(ctx)))
            .await
            .unwrap_or_default()
    }

    /// One alert with its timeline.
    pub async fn alert(&self, id: &str) -> Result<(AlertView, Vec<TimelineEntry>), OpError> {
        let id = id.to_string();
        self.blocking(move |d| {
            let (view, fp) = {
                let core = d.core();
                let fp = core.find(&d.shared.ctx, &id)?;
                (
                    core.view(&d.shared.ctx, core.engine.alert(fp).expect("found")),
                    fp,
                )
            };
            Ok((view, d.shared.ctx.store.timeline(fp)?))
        })
        .await?
    }

    /// Answers a Slack interaction through its `response_url`, in the background:
    /// the answer to the click itself cannot wait for it.
    pub fn tell_slack(&self, response_url: String, text: String) {
        let d = self.clone();
        tokio::spawn(async move { d.shared.channels.respond_slack(&response_url, &text).await });
    }

    /// Reads and checks the rules again and swaps them in if they are clean;
    /// otherwise keeps the running rules and returns the diagnostics.
    pub async fn reload(&self) -> Result<usize, String> {
        self.blocking(|d| d.reload_blocking())
            .await
            .map_err(|e| e.to_string())?
    }

    fn reload_blocking(&self) -> Result<usize, String> {
        let ctx = &self.shared.ctx;
        let checked = rules::read_sources(&ctx.config.rules.paths)
            .map_err(|e| e.to_string())
            .and_then(|sources| {
                rules::check_sources(&sources, &ctx.config.check_options())
                    .map_err(|d| rules::diagnostic::render(&sources, &d, false))
            });
        let m = &ctx.metrics;
        let set = match checked {
            Ok(set) => set,
            Err(why) => {
                m.rules_last_reload_success.set(0);
                m.reloads
                    .get_or_create(&Metrics::label("outcome", "failure"))
                    .inc();
                tracing::error!(diagnostics = %why, "rules reload failed; keeping the running rules");
                return Err(why);
            }
        };
        let count = set.alerts.len();
        // Read with the core locked, as in `with_core`.
        let mut core = self.core();
        let now = self.now();
        core.reload(ctx, set, now).map_err(|e| e.to_string())?;
        drop(core);
        m.rules.set(count as i64);
        m.rules_last_reload_success.set(1);
        m.reloads
            .get_or_create(&Metrics::label("outcome", "success"))
            .inc();
        tracing::info!(rules = count, "rules reloaded");
        Ok(count)
    }

    /// The metrics as exposition text, with the per-state alert counts taken now
    /// (counted here, once per scrape, rather than on every commit).
    pub async fn render_metrics(&self) -> String {
        let counted = self
            .with_core(|ctx, core, _| {
                ctx.metrics
                    .set_alert_states(core.engine.alerts().map(|a| &a.state));
                Ok(())
            })
            .await;
        if counted.is_err() {
            tracing::error!("counting alert states for /metrics panicked");
        }
        self.metrics().render()
    }

    /// Writes what otherwise waits for the next evaluation (`endsAt` extensions,
    /// deferred delivery settlements): part of a clean shutdown.
    pub async fn flush(&self) -> Result<(), OpError> {
        self.with_core(|ctx, core, now| {
            let mut refreshed = crate::engine::Outcome::default();
            core.engine.flush_refreshed(&mut refreshed);
            pipeline::commit(ctx, core, now, pipeline::Step::from(refreshed))?;
            ctx.store.sync()?;
            Ok(())
        })
        .await
    }

    /// The earliest deadline, if any. Safe on the async workers: it reads the queue
    /// under the lock and never touches the store.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.queue().schedule.next()
    }

    /// The core locked without the store reload that [`Daemon::core`] may do: only
    /// for reading in-memory state from async code.
    fn queue(&self) -> MutexGuard<'_, Core> {
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
                let outgoing = delivery::take(ctx, core, now);
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
    fn start<F>(&self, task: impl FnOnce(Daemon) -> F)
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

    /// Sends one message and settles it.
    async fn deliver(self, out: delivery::Outgoing) {
        let sent = delivery::send(&self.shared.ctx, &self.shared.channels, &out).await;
        let settled = self
            .with_core(move |ctx, core, now| delivery::settle(ctx, core, &out, &sent, now))
            .await;
        if let Err(e) = settled {
            tracing::error!(error = %e, "cannot record a delivery");
        }
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

/// The start-up summary, once the daemon could open (a refusal stays one clear
/// line): the rules and their files, where the state is, what a restart recovered
/// from it (so an operator sees that alerts and owed messages survived), and who
/// can be told.
fn log_opened(ctx: &Context, core: &Core, channels: &Channels, sources: &[rules::SourceFile]) {
    let files: Vec<String> = sources
        .iter()
        .map(|s| s.path.display().to_string())
        .collect();
    tracing::info!(rules = core.engine.rules().alerts.len(), files = %files.join(","), "rules loaded");
    let (mut open, mut firing, mut acked) = (0, 0, 0);
    for a in core.engine.alerts() {
        match a.state {
            crate::alert::State::Inactive | crate::alert::State::Resolved => continue,
            crate::alert::State::Firing => firing += 1,
            crate::alert::State::Acknowledged => acked += 1,
            _ => {}
        }
        open += 1;
    }
    tracing::info!(
        path = %ctx.config.storage.path.display(),
        alerts = open,
        firing,
        acknowledged = acked,
        owed = core.outbox.len(),
        silences = core.silences.len(),
        "state opened"
    );
    tracing::info!(channels = %channels.enabled().join(","), "channels enabled");
}
