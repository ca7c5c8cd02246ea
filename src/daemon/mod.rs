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
//! - `run` — the loop ([`Daemon::spawn_loop`]) that `tocsin serve`, `tocsin test`
//!   and the test suite all run.
//!
//! This module is the async facade: the only place that crosses into blocking code
//! (`spawn_blocking`).

mod delivery;
mod intake;
mod observed;
mod ops;
mod pipeline;
mod reports;
mod retention;
mod run;
mod schedule;
mod standby;
mod state;
mod turn;
mod upstream;
mod views;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use crate::admission::{self, Bounds};
use crate::alert::{Alert, Event, Rejected, TimelineEntry};
use crate::clock::{Clock, Timestamp};
use crate::config::Config;
use crate::engine::ExternalAlert;
use crate::metrics::Metrics;
use crate::notify::Channels;
use crate::rules::{self, RuleSet};
use crate::series::{IncomingSample, SeriesError};
use crate::silence::{Force, Silence};
use crate::store::{PgStore, RedbStore, Store, StoreError};
use intake::IntakeQueue;
pub use observed::{ChannelStatus, Failure, RuleEvaluation};
pub use run::{Held, LoopHandle};
pub use schedule::Due;
pub use standby::Writes;
use standby::store_lease;
use state::Core;
pub use views::{PendingAlert, ReloadStatus, RuleStatus, Status};

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
    /// A sample or an alert outside the intake bounds (`[limits]`): the whole
    /// request is refused. `what` is `sample` or `alert`.
    #[error("{what} {index}: {why}")]
    Refused {
        what: &'static str,
        index: usize,
        why: admission::Refusal,
    },
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
    /// The last value as the rule's unit reads it (`85%`, `1m 30s`).
    pub value_text: String,
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
    /// Bumped after every write of the state: live pages look again then.
    changes: watch::Sender<u64>,
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

    /// Something was written: whoever watches the state (a live page) looks again.
    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
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
    /// Messages sent and not settled yet: whoever takes the core next settles
    /// every one of them in one commit (`Daemon::deliver`).
    settling: Mutex<Vec<(delivery::Outgoing, crate::outbox::Outcome)>>,
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
    /// The last rules load or reload, for the status page.
    reload: Mutex<ReloadStatus>,
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
            changes: watch::Sender::new(0),
            acting: std::sync::atomic::AtomicU64::new(lease),
        };
        let loaded = ReloadStatus {
            at: now,
            rules: set.alerts.len(),
            refused: None,
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
                settling: Mutex::default(),
                channels,
                turning: tokio::sync::Mutex::new(()),
                advancing: AtomicBool::new(false),
                outstanding: AtomicUsize::new(0),
                progress: watch::Sender::new(0),
                reload: Mutex::new(loaded),
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

    /// What intake admits, from `[limits]`.
    fn bounds(&self) -> Bounds {
        let l = &self.config().limits;
        Bounds {
            max_labels: l.max_labels,
            max_label_name_bytes: l.max_label_name_bytes,
            max_label_value_bytes: l.max_label_value_bytes,
            max_annotation_value_bytes: l.max_annotation_value_bytes,
            future_tolerance: l.future_tolerance,
        }
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
    /// Every way samples come in (JSON, the text format, scrapes) ends here, so the
    /// intake bounds are applied here, once.
    pub async fn ingest(&self, samples: Vec<IncomingSample>) -> Result<usize, OpError> {
        let (bounds, now) = (self.bounds(), self.now());
        let refused = samples.iter().enumerate().find_map(|(index, s)| {
            let checked = bounds.sample(&s.metric, &s.labels, s.at, now);
            checked.err().map(|why| (index, why))
        });
        if let Some((index, why)) = refused {
            // Counted as the store counts its limits: the whole batch is refused.
            self.metrics()
                .samples_refused
                .get_or_create(&Metrics::label("reason", why.reason()))
                .inc_by(samples.len() as u64);
            return Err(OpError::Refused {
                what: "sample",
                index,
                why,
            });
        }
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
        let (bounds, now) = (self.bounds(), self.now());
        let refused = alerts.iter().enumerate().find_map(|(index, a)| {
            let e = &a.external;
            let checked = bounds.alert(
                &a.labels,
                e.annotations.iter(),
                e.generator_url.as_deref(),
                e.starts_at,
                now,
            );
            checked.err().map(|why| (index, why))
        });
        if let Some((index, why)) = refused {
            self.metrics()
                .external_alerts_refused
                .get_or_create(&vec![
                    ("source".to_string(), source.to_string()),
                    ("reason".to_string(), why.reason().to_string()),
                ])
                .inc_by(alerts.len() as u64);
            return Err(OpError::Refused {
                what: "alert",
                index,
                why,
            });
        }
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
        self.with_fresh_core(move |ctx, core, now| core.act_paged(ctx, &addresses, event, now))
            .await
    }

    /// Stores a new silence (validated, within `[limits]`) and applies it to the
    /// alerts at once. One that matches every alert needs [`Force::Yes`], which only
    /// the HTTP API passes on request.
    pub async fn add_silence(&self, silence: Silence, force: Force) -> Result<Silence, OpError> {
        self.with_fresh_core(move |ctx, core, now| core.add_silence(ctx, silence, force, now))
            .await
    }

    /// Changes silence `id` to `new` in place, or expires it and stores `new`
    /// (under its own id) instead, as Alertmanager's API does; returns the silence
    /// that stands.
    pub async fn update_silence(&self, id: &str, new: Silence) -> Result<Silence, OpError> {
        let id = id.to_string();
        self.with_fresh_core(move |ctx, core, now| core.update_silence(ctx, &id, new, now))
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

    /// Every rule with its alerts by state, the `for` progress of its pending
    /// alerts and its last evaluation.
    pub async fn rules(&self) -> Vec<RuleStatus> {
        self.with_core(|_, core, _| Ok(core.rule_statuses()))
            .await
            .unwrap_or_default()
    }

    /// How the daemon is doing: where its config came from, the last rules reload,
    /// each channel's outbox and last sends, overdue escalations, uptime.
    pub async fn status(&self) -> Result<Status, OpError> {
        let reload = self
            .shared
            .reload
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        self.with_core(move |ctx, core, now| Ok(core.status(ctx, now, reload)))
            .await
    }

    /// A receiver that sees a new value after every write of the state: a live
    /// page renders again when it changes.
    pub fn watch_changes(&self) -> watch::Receiver<u64> {
        self.shared.ctx.changes.subscribe()
    }

    fn set_reload(&self, change: impl FnOnce(&mut ReloadStatus)) {
        change(&mut self.shared.reload.lock().unwrap_or_else(|e| e.into_inner()));
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
                let at = self.now();
                self.set_reload(|r| {
                    r.at = at;
                    r.refused = Some(why.clone());
                });
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
        self.set_reload(|r| {
            *r = ReloadStatus {
                at: now,
                rules: count,
                refused: None,
            }
        });
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
