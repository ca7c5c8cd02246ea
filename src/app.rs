//! The embeddable daemon: `start(settings, clock)` binds, loads state and serves;
//! tests start it on port 0. `main.rs` only turns flags into [`Settings`].
//!
//! One [`Core`] (series and engine) behind a std `Mutex`, never held across an
//! `.await`: every operation that changes alert state runs on a blocking thread,
//! commits its batch to redb, and only then hands the notifications to the channels.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::alert::{Alert, Event, Rejected, TimelineEntry};
use crate::clock::{Clock, Timestamp};
use crate::engine::{Engine, ExternalAlert};
use crate::escalation::state::{self as escalation, Escalation, Resolver};
use crate::labels::{Fingerprint, Labels};
use crate::metrics::Metrics;
use crate::notify::{Address, Channels};
use crate::outbox::{self, Delivery, Outbox};
use crate::rules::{self, CheckOptions, RuleSet};
use crate::series::{IncomingSample, Limits, Sample, SeriesError, SeriesStore};
use crate::silence::Silence;
use crate::store::{Store, StoreError};

/// Everything the daemon needs to run, already validated.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_path: PathBuf,
    pub rule_paths: Vec<PathBuf>,
    pub check: CheckOptions,
    pub evaluation_interval: Duration,
    pub lookback: Duration,
    pub max_series: usize,
    pub max_samples_per_series: usize,
    pub max_labels: usize,
    pub body_limit: usize,
    /// How often the rules files are checked for changes (hot reload); SIGHUP also
    /// reloads.
    pub rules_poll: Duration,
    /// Targets to pull metrics from, as Prometheus scrapes.
    pub scrape: Vec<crate::scrape::Target>,
    /// Bearer tokens for the write and intake endpoints; none means open (loopback
    /// only: the config refuses anything else).
    pub tokens: Vec<crate::config::Token>,
    /// How long one HTTP request may take before it is answered 408.
    pub request_timeout: Duration,
    /// Whether notifications are printed on the console channel.
    pub console: bool,
    /// People, groups and on-call rotations.
    pub directory: Arc<crate::escalation::Directory>,
    /// Routes and escalation policies.
    pub routing: Arc<crate::escalation::Routing>,
    pub slack: Option<crate::notify::slack::SlackSettings>,
    pub email: Option<crate::notify::email::EmailSettings>,
    pub sms: Option<crate::notify::sms::TwilioSettings>,
    pub webhooks: Vec<crate::notify::webhook::WebhookSettings>,
    /// Recurring maintenance windows.
    pub maintenance: Vec<crate::maintenance::MaintenanceWindow>,
    /// Scheduled email reports (daily summary, weekly report).
    pub reports: Vec<crate::report::ReportSchedule>,
    /// Slack signing secrets; several while one is being rotated. Empty: the Slack
    /// endpoints refuse everything.
    pub slack_signing_secrets: Vec<crate::config::Secret>,
    /// The base URL Slack and Twilio reach tocsin at (behind a TLS proxy), for
    /// checking Twilio signatures, which sign the full URL.
    pub public_url: Option<String>,
}

impl Settings {
    /// The embedded default: rules/, ./data/tocsin.redb, loopback, console channel.
    pub fn embedded_default() -> Settings {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 9095)),
            data_path: PathBuf::from("data/tocsin.redb"),
            rule_paths: vec![PathBuf::from("rules")],
            check: CheckOptions::default(),
            evaluation_interval: Duration::from_secs(15),
            lookback: Duration::from_secs(300),
            max_series: 1_000_000,
            max_samples_per_series: 100_000,
            max_labels: 32,
            body_limit: 1 << 20,
            rules_poll: Duration::from_secs(2),
            scrape: Vec::new(),
            tokens: Vec::new(),
            request_timeout: Duration::from_secs(30),
            console: true,
            directory: Arc::default(),
            routing: Arc::new(crate::escalation::Routing::console_only()),
            slack: None,
            email: None,
            sms: None,
            webhooks: Vec::new(),
            maintenance: Vec::new(),
            reports: Vec::new(),
            slack_signing_secrets: Vec::new(),
            public_url: None,
        }
    }

    /// The daemon's settings from a validated config file.
    pub fn from_config(c: &crate::config::Config) -> Settings {
        Settings {
            listen: c.server.listen,
            data_path: c.storage.path.clone(),
            rule_paths: c.rules.paths.clone(),
            check: c.check_options(),
            evaluation_interval: c.rules.evaluation_interval,
            lookback: c.rules.lookback,
            max_series: c.limits.max_series,
            max_samples_per_series: c.limits.max_samples_per_series,
            max_labels: c.limits.max_labels,
            body_limit: c.server.body_limit,
            scrape: c
                .scrape
                .iter()
                .map(|t| crate::scrape::Target {
                    name: t.name.clone(),
                    url: t.url.clone(),
                    interval: t.interval,
                    timeout: t.timeout,
                    labels: Labels::new(),
                })
                .collect(),
            tokens: c.tokens.clone(),
            request_timeout: c.server.request_timeout,
            console: c.channels.console.enabled,
            directory: Arc::new(c.directory.clone()),
            routing: Arc::new(c.routing.clone()),
            slack: c.channels.slack.clone(),
            email: c.channels.email.clone(),
            sms: c.channels.sms.clone(),
            webhooks: c.channels.webhooks.clone(),
            maintenance: c.maintenance.clone(),
            reports: c.reports.clone(),
            slack_signing_secrets: c.channels.slack_signing_secrets.clone(),
            public_url: c.server.public_url.clone(),
            ..Settings::embedded_default()
        }
    }

    /// The token a bearer value belongs to (compared in constant time).
    pub fn token(&self, bearer: &str) -> Option<&crate::config::Token> {
        let mut found = None;
        for t in &self.tokens {
            if t.token.matches(bearer) && found.is_none() {
                found = Some(t);
            }
        }
        found
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("rules do not check:\n{0}")]
    Rules(String),
    #[error("cannot read rules: {0}")]
    RulesIo(std::io::Error),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("channels: {0}")]
    Channels(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
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
}

/// The state every operation works on.
struct Core {
    series: SeriesStore,
    engine: Engine,
    /// For each metric name a rule reads, the rules (by index) that read it: an
    /// ingest evaluates only the rules reading what it brought; the tick
    /// evaluates all of them.
    rule_metrics: std::collections::HashMap<String, Vec<usize>>,
    /// Every silence, expired ones too (they are history); few, so a list.
    silences: Vec<Silence>,
    /// The escalation of every alert being paged about, mirrored in the store.
    escalations: std::collections::HashMap<Fingerprint, Escalation>,
    /// Messages owed, mirrored in the store's outbox table.
    outbox: Outbox,
}

/// External alerts waiting for the core, committed together (see
/// [`Daemon::receive_external`]).
#[derive(Default)]
struct IntakeQueue {
    last_ticket: u64,
    waiting: Vec<(u64, Vec<ExternalAlert>)>,
    /// Outcomes of requests another caller committed, until their caller looks.
    done: std::collections::HashMap<u64, Result<(), String>>,
}

impl IntakeQueue {
    fn queue(&mut self, alerts: Vec<ExternalAlert>) -> u64 {
        self.last_ticket += 1;
        self.waiting.push((self.last_ticket, alerts));
        self.last_ticket
    }
}

/// The daemon's shared state: a cheap-clone handle.
#[derive(Clone)]
pub struct Daemon {
    shared: Arc<Shared>,
}

struct Shared {
    core: Mutex<Core>,
    intake: Mutex<IntakeQueue>,
    store: Store,
    clock: Arc<dyn Clock>,
    settings: Settings,
    metrics: Metrics,
    /// False while the store refuses writes: state changes cannot be made durable,
    /// so `/readyz` says not ready until a commit succeeds again.
    store_ok: std::sync::atomic::AtomicBool,
    /// Set when a commit failed and the in-memory state could not be put back to
    /// what is durable yet (the store could not be read): retried before the next
    /// operation. Deliveries go on meanwhile: a page about an alert that really
    /// fires is worth more than waiting for the disk.
    stale: std::sync::atomic::AtomicBool,
    channels: Channels,
    /// Wakes the delivery loop when something was added to the outbox.
    wake: tokio::sync::Notify,
    /// One delivery pass at a time, so no message is picked up twice.
    delivering: tokio::sync::Mutex<()>,
    /// When each Slack channel was last posted to: Slack disables apps that post
    /// more than about one message per second per channel.
    slack_paced: Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// When this daemon opened: a report whose period ended before it is not
    /// sent late on a first start.
    opened_at: Timestamp,
    /// Reports that failed to send, and when: retried five minutes later.
    report_failed: Mutex<std::collections::HashMap<String, Timestamp>>,
}

/// An alert as the API shows it.
#[derive(Clone, Debug)]
pub struct AlertView {
    pub alert: Alert,
    pub annotations: std::collections::BTreeMap<String, String>,
    pub severity: String,
}

impl Daemon {
    /// Loads rules and stored alerts; binds nothing.
    pub fn open(settings: Settings, clock: Arc<dyn Clock>) -> Result<Daemon, AppError> {
        let channels = Channels::from_settings(&settings).map_err(AppError::Channels)?;
        Daemon::open_with(settings, clock, channels)
    }

    /// [`Daemon::open`] with the channels given (a recording set in tests and in
    /// `tocsin test`).
    pub fn open_with(
        settings: Settings,
        clock: Arc<dyn Clock>,
        channels: Channels,
    ) -> Result<Daemon, AppError> {
        Daemon::open_with_store(settings, clock, channels, None)
    }

    /// [`Daemon::open_with`] over a store the caller opened (`None`: the file at
    /// `data_path`): fault tests pass one whose disk fails on cue.
    pub fn open_with_store(
        settings: Settings,
        clock: Arc<dyn Clock>,
        channels: Channels,
        store: Option<Store>,
    ) -> Result<Daemon, AppError> {
        crate::tls::install_crypto_provider();
        let opened_at = clock.now();
        let sources = rules::read_sources(&settings.rule_paths).map_err(AppError::RulesIo)?;
        let set: RuleSet = rules::check_sources(&sources, &settings.check)
            .map_err(|d| AppError::Rules(rules::diagnostic::render(&sources, &d, false)))?;
        let rule_metrics = metrics_read_by(&set);
        let store = match store {
            Some(store) => store,
            None => Store::open(&settings.data_path)?,
        };
        // The notification log only has to outlive retries (a day at most).
        store.prune_sent(clock.now() - Duration::from_secs(7 * 86400))?;
        let limits = Limits {
            retention: set.longest_window() + settings.lookback,
            lookback: settings.lookback,
            max_series: settings.max_series,
            max_samples_per_series: settings.max_samples_per_series,
        };
        let metrics = Metrics::default();
        metrics.rules.set(set.alerts.len() as i64);
        let engine = Engine::new(Arc::new(set), store.load_alerts()?, store.next_incident()?);
        metrics.set_alert_states(engine.alerts().map(|a| &a.state));
        let timing = outbox::Timing {
            group_wait: settings.routing.group_wait,
            ..outbox::Timing::default()
        };
        let core = Core {
            series: SeriesStore::new(limits),
            engine,
            rule_metrics,
            silences: store.load_silences()?,
            escalations: store
                .load_escalations()?
                .into_iter()
                .map(|e| (e.fingerprint, e))
                .collect(),
            outbox: Outbox::new(timing, store.load_outbox()?, store.next_delivery()?),
        };
        metrics.outbox_pending.set(core.outbox.len() as i64);
        Ok(Daemon {
            shared: Arc::new(Shared {
                core: Mutex::new(core),
                intake: Mutex::default(),
                store,
                clock,
                settings,
                metrics,
                store_ok: std::sync::atomic::AtomicBool::new(true),
                stale: std::sync::atomic::AtomicBool::new(false),
                channels,
                wake: tokio::sync::Notify::new(),
                delivering: tokio::sync::Mutex::new(()),
                slack_paced: Mutex::new(Default::default()),
                opened_at,
                report_failed: Mutex::new(Default::default()),
            }),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The metrics as exposition text, with the per-state alert counts taken now
    /// (counted here, once per scrape, rather than on every commit). Blocking.
    pub fn render_metrics(&self) -> String {
        {
            let core = self.core();
            let states = core.engine.alerts().map(|a| &a.state);
            self.shared.metrics.set_alert_states(states);
        }
        self.shared.metrics.render()
    }

    /// Whether state changes can be made durable right now.
    pub fn ready(&self) -> bool {
        self.shared
            .store_ok
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    fn core(&self) -> std::sync::MutexGuard<'_, Core> {
        // A panic while holding the lock leaves the core as consistent as the store
        // is: every change is committed before it is acted on.
        let mut core = self.shared.core.lock().unwrap_or_else(|e| e.into_inner());
        if self.stale() {
            self.restore_from_store(&mut core);
        }
        core
    }

    fn stale(&self) -> bool {
        self.shared.stale.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Takes a batch of samples whole or not at all, then evaluates if any sample
    /// feeds a rule. Blocking (commits to redb): call from a blocking thread.
    pub fn ingest(&self, samples: &[IncomingSample]) -> Result<usize, OpError> {
        let now = self.now();
        let mut core = self.core();
        let at = |s: &IncomingSample| s.at.unwrap_or(now);
        core.series
            .check_batch(
                samples
                    .iter()
                    .map(|s| (s.metric.as_str(), &s.labels, at(s))),
            )
            .map_err(|(index, source)| {
                let reason = match source {
                    SeriesError::TooManySeries { .. } => "series_limit",
                    SeriesError::TooManySamples { .. } => "sample_limit",
                    SeriesError::OutOfOrder { .. } => "out_of_order",
                };
                let refused = &self.shared.metrics.samples_refused;
                refused
                    .get_or_create(&Metrics::label("reason", reason))
                    .inc_by(samples.len() as u64);
                OpError::Sample { index, source }
            })?;
        for (index, s) in samples.iter().enumerate() {
            let sample = Sample {
                t: at(s),
                v: s.value,
            };
            core.series
                .append(&s.metric, &s.labels, sample)
                .map_err(|source| OpError::Sample { index, source })?;
        }
        self.shared
            .metrics
            .samples_ingested
            .inc_by(samples.len() as u64);
        self.shared
            .metrics
            .series
            .set(core.series.series_count() as i64);
        // Only the rules reading what was pushed: the others' results cannot have
        // changed, and time moves them on at the tick.
        let mut readers = Vec::new();
        let mut last = None;
        for s in samples.iter().map(|s| s.metric.as_str()) {
            if last != Some(s) {
                last = Some(s);
                readers.extend(core.rule_metrics.get(s).into_iter().flatten());
            }
        }
        readers.sort_unstable();
        readers.dedup();
        if !readers.is_empty() {
            self.evaluate_locked(&mut core, now, Some(&readers))?;
        }
        Ok(samples.len())
    }

    /// Reads and checks the rules again and swaps them in if they are clean;
    /// otherwise keeps the running rules and returns the diagnostics. Blocking.
    pub fn reload(&self) -> Result<usize, String> {
        let checked = rules::read_sources(&self.shared.settings.rule_paths)
            .map_err(|e| e.to_string())
            .and_then(|sources| {
                rules::check_sources(&sources, &self.shared.settings.check)
                    .map_err(|d| rules::diagnostic::render(&sources, &d, false))
            });
        let m = &self.shared.metrics;
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
        let now = self.now();
        let mut core = self.core();
        let count = set.alerts.len();
        core.series
            .set_retention(set.longest_window() + self.shared.settings.lookback);
        core.rule_metrics = metrics_read_by(&set);
        let mut outcome = core.engine.reload(Arc::new(set), now);
        outcome.absorb(self.sync_all_silences(&mut core, now));
        self.commit_and_notify(&mut core, now, outcome)
            .map_err(|e| e.to_string())?;
        m.rules.set(count as i64);
        m.rules_last_reload_success.set(1);
        m.reloads
            .get_or_create(&Metrics::label("outcome", "success"))
            .inc();
        tracing::info!(rules = count, "rules reloaded");
        Ok(count)
    }

    /// One evaluation tick. Blocking.
    pub fn tick(&self) -> Result<(), OpError> {
        let now = self.now();
        let mut core = self.core();
        if !self.ready() {
            // A quiet daemon may have nothing to write for hours: an empty commit
            // tells when the disk takes writes again, so /readyz recovers with it.
            let ok = self
                .shared
                .store
                .apply(&crate::store::Batch::default())
                .is_ok();
            self.shared
                .store_ok
                .store(ok, std::sync::atomic::Ordering::SeqCst);
        }
        if let Err(e) = self.shared.store.sync() {
            tracing::warn!(error = %e, "cannot sync settled deliveries; retried next tick");
        }
        core.series.trim(now);
        self.shared
            .metrics
            .series
            .set(core.series.series_count() as i64);
        let mut timed = core.engine.expire_external(now);
        core.engine.flush_refreshed(&mut timed);
        timed.absorb(self.sync_all_silences(&mut core, now));
        self.commit_and_notify(&mut core, now, timed)?;
        self.evaluate_locked(&mut core, now, None)?;
        self.escalate_due(&mut core, now)
    }

    /// Writes what otherwise waits for the next tick (`endsAt` extensions, unsynced
    /// delivery settlements): part of a clean shutdown. Blocking.
    pub fn flush(&self) -> Result<(), OpError> {
        let now = self.now();
        let mut core = self.core();
        let mut refreshed = crate::engine::Outcome::default();
        core.engine.flush_refreshed(&mut refreshed);
        self.commit_and_notify(&mut core, now, refreshed)?;
        self.shared.store.sync()?;
        Ok(())
    }

    /// Takes alerts another system evaluated (Alertmanager webhook, Prometheus
    /// `POST /api/v2/alerts`) into the lifecycle. Blocking.
    ///
    /// Group commit: a request queues its alerts, then waits for the core. Whoever
    /// gets the core first takes every request queued by then into one transaction,
    /// so requests that arrive during a commit's fsync share the next one. Each
    /// caller returns once the commit that carried its alerts is durable.
    pub fn receive_external(
        &self,
        source: &str,
        alerts: Vec<ExternalAlert>,
    ) -> Result<usize, OpError> {
        self.shared
            .metrics
            .external_alerts
            .get_or_create(&Metrics::label("source", source))
            .inc_by(alerts.len() as u64);
        let count = alerts.len();
        let ticket = self.intake().queue(alerts);
        let mut core = self.core();
        let taken = {
            let mut intake = self.intake();
            if let Some(done) = intake.done.remove(&ticket) {
                return done
                    .map(|()| count)
                    .map_err(|e| StoreError::Shared(e).into());
            }
            std::mem::take(&mut intake.waiting)
        };
        let now = self.now();
        let mut outcome = crate::engine::Outcome::default();
        let mut tickets = Vec::with_capacity(taken.len());
        for (t, alerts) in taken {
            tickets.push(t);
            for a in alerts {
                core.engine.receive_external(a, now, &mut outcome);
            }
        }
        let result = self.commit_and_notify(&mut core, now, outcome);
        let shared = result.as_ref().map(|_| ()).map_err(|e| match e {
            OpError::Store(e) => e.to_string(),
            e => e.to_string(),
        });
        let mine = tickets.contains(&ticket);
        let mut intake = self.intake();
        for t in tickets.into_iter().filter(|t| *t != ticket) {
            intake.done.insert(t, shared.clone());
        }
        if !mine {
            // Taken by a caller that panicked before answering: not committed.
            return Err(
                StoreError::Shared("the commit carrying these alerts failed".into()).into(),
            );
        }
        result.map(|()| count)
    }

    fn intake(&self) -> std::sync::MutexGuard<'_, IntakeQueue> {
        self.shared.intake.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Evaluates the rules (those listed by index, or all), then commits.
    fn evaluate_locked(
        &self,
        core: &mut Core,
        now: Timestamp,
        only: Option<&[usize]>,
    ) -> Result<(), OpError> {
        let started = std::time::Instant::now();
        let outcome = match only {
            Some(rules) => core.engine.evaluate_rules(&core.series, now, rules),
            None => core.engine.evaluate(&core.series, now),
        };
        self.shared.metrics.evaluations.inc();
        self.shared
            .metrics
            .evaluation_seconds
            .observe(started.elapsed().as_secs_f64());
        self.commit_and_notify(core, now, outcome)
    }

    /// Brings silences and maintenance windows up to date, turns notifications into
    /// escalation steps and outbox deliveries, and commits all of it in one
    /// transaction; only then is the delivery loop woken. Durable first, then sent.
    fn commit_and_notify(
        &self,
        core: &mut Core,
        now: Timestamp,
        mut outcome: crate::engine::Outcome,
    ) -> Result<(), OpError> {
        // Silences change on their own only with time (checked every tick) or when
        // one is added or expired (checked there): here only the alerts this step
        // touched need a look.
        if !outcome.batch.alerts.is_empty() {
            let silences = self.active_silences(core, now);
            let touched: Vec<Fingerprint> =
                outcome.batch.alerts.iter().map(|a| a.fingerprint).collect();
            let silenced = core.engine.sync_silences_of(touched, &silences, now);
            outcome.absorb(silenced);
        }
        // An alert that appeared in this very step under an active silence was
        // silenced from its first moment: its firing is not announced.
        let engine = &core.engine;
        outcome.notifications.retain(|n| {
            n.reason != crate::alert::NotifyReason::Firing
                || engine
                    .alert(n.alert)
                    .is_none_or(|a| a.state != crate::alert::State::Suppressed)
        });
        self.escalate(core, now, &mut outcome);
        if !outcome.batch.is_empty() {
            let committed = self.shared.store.apply(&outcome.batch);
            let ok = committed.is_ok();
            self.shared
                .store_ok
                .store(ok, std::sync::atomic::Ordering::SeqCst);
            if !ok {
                self.restore_from_store(core);
            }
            committed?;
            self.shared
                .metrics
                .outbox_pending
                .set(core.outbox.len() as i64);
        }
        if !outcome.batch.outbox.is_empty() {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    /// The silences in force at `now`: the operators' and the maintenance windows'.
    fn active_silences(&self, core: &Core, now: Timestamp) -> Vec<Silence> {
        let windows = self.shared.settings.maintenance.iter();
        core.silences
            .iter()
            .filter(|s| s.status(now) == crate::silence::Status::Active)
            .cloned()
            .chain(windows.filter_map(|w| w.active(now)))
            .collect()
    }

    /// Every alert's silences brought up to date: after silences changed, and each
    /// tick (silences and windows start and end with time).
    fn sync_all_silences(&self, core: &mut Core, now: Timestamp) -> crate::engine::Outcome {
        let silences = self.active_silences(core, now);
        core.engine.sync_silences(&silences, now)
    }

    /// After a failed commit, puts the in-memory state back to what is durable:
    /// a change the caller was refused (503) is then neither shown nor acted on (an
    /// ack that was not stored does not pause the escalation; a page about a state
    /// change that was not stored is not sent, its incident number not handed out).
    fn restore_from_store(&self, core: &mut Core) {
        let store = &self.shared.store;
        let durable = (|| {
            Ok::<_, StoreError>((
                store.load_alerts()?,
                store.next_incident()?,
                store.load_escalations()?,
                store.load_outbox()?,
                store.next_delivery()?,
                store.load_silences()?,
            ))
        })();
        match durable {
            Ok((alerts, next_incident, escalations, outbox, next_delivery, silences)) => {
                self.shared
                    .stale
                    .store(false, std::sync::atomic::Ordering::SeqCst);
                let rules = core.engine.rules().clone();
                core.engine = Engine::new(rules, alerts, next_incident);
                core.escalations = escalations
                    .into_iter()
                    .map(|e| (e.fingerprint, e))
                    .collect();
                core.outbox = Outbox::new(core.outbox.timing.clone(), outbox, next_delivery);
                core.silences = silences;
            }
            Err(e) => {
                self.shared
                    .stale
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                tracing::error!(error = %e, "cannot reload the state store after a failed commit")
            }
        }
    }

    /// The escalation side of a step: each notification moves its alert's
    /// escalation and owes messages; alerts that stopped paging without one (acked
    /// by a silence, resolved while flapping) pause or end theirs.
    fn escalate(&self, core: &mut Core, now: Timestamp, outcome: &mut crate::engine::Outcome) {
        let settings = &self.shared.settings;
        let resolver = self.resolver();
        let notified: std::collections::HashSet<Fingerprint> =
            outcome.notifications.iter().map(|n| n.alert).collect();
        for n in std::mem::take(&mut outcome.notifications) {
            let Some(alert) = core.engine.alert(n.alert) else {
                continue;
            };
            tracing::info!(alert_id = %alert.fingerprint, incident = ?alert.incident, reason = %n.reason, "notification");
            let current = core.escalations.remove(&n.alert);
            let named = core.engine.escalation_of(alert);
            let policy = settings.routing.policy_for(&alert.labels, named);
            let (next, owed) =
                escalation::on_notification(current, n.reason, alert, policy, &resolver, now);
            let snapshot = core.engine.snapshot(&n.then);
            let group = group_key(&settings.routing.group_by, &alert.labels);
            let deliveries = core.outbox.enqueue(&snapshot, owed, &group, now);
            outcome.batch.outbox.extend(deliveries);
            if let Some(e) = &next {
                core.escalations.insert(n.alert, e.clone());
            }
            outcome.batch.escalations.push((n.alert, next));
            outcome.notifications.push(n);
        }
        let changed: Vec<Fingerprint> = outcome
            .batch
            .alerts
            .iter()
            .map(|a| a.fingerprint)
            .filter(|fp| !notified.contains(fp) && core.escalations.contains_key(fp))
            .collect();
        for fp in changed {
            let Some(esc) = core.escalations.remove(&fp) else {
                continue;
            };
            let Some(alert) = core.engine.alert(fp) else {
                outcome.batch.escalations.push((fp, None));
                continue;
            };
            let next = match alert.state {
                crate::alert::State::Firing => Some(esc),
                crate::alert::State::Acknowledged | crate::alert::State::Suppressed => {
                    Some(Escalation {
                        due_at: None,
                        ..esc
                    })
                }
                _ => None,
            };
            if let Some(e) = &next {
                core.escalations.insert(fp, e.clone());
            }
            outcome.batch.escalations.push((fp, next));
        }
    }

    /// Turns policy targets into addresses with this daemon's people and channels.
    fn resolver(&self) -> Resolver<'_> {
        let settings = &self.shared.settings;
        Resolver {
            directory: &settings.directory,
            routing: &settings.routing,
            slack: settings.slack.as_ref(),
        }
    }

    /// Runs the escalation steps whose deadline has come, and expires acks older
    /// than their policy's `ack_timeout`. Part of every tick.
    fn escalate_due(&self, core: &mut Core, now: Timestamp) -> Result<(), OpError> {
        let routing = &self.shared.settings.routing;
        let expired: Vec<Fingerprint> = core
            .engine
            .alerts()
            .filter(|a| a.state == crate::alert::State::Acknowledged)
            .filter(|a| {
                let timeout = routing
                    .policy_for(&a.labels, core.engine.escalation_of(a))
                    .ack_timeout;
                match (timeout, &a.ack) {
                    (Some(t), Some(ack)) => ack.at + t <= now,
                    _ => false,
                }
            })
            .map(|a| a.fingerprint)
            .collect();
        let mut outcome = crate::engine::Outcome::default();
        for fp in expired {
            if let Ok(o) = core.engine.apply(fp, &Event::AckExpired, now) {
                outcome.absorb(o);
            }
        }
        let due: Vec<Fingerprint> = core
            .escalations
            .values()
            .filter(|e| e.due_at.is_some_and(|t| t <= now))
            .map(|e| e.fingerprint)
            .collect();
        let settings = &self.shared.settings;
        let resolver = self.resolver();
        for fp in due {
            let Some(esc) = core.escalations.remove(&fp) else {
                continue;
            };
            let Some(alert) = core.engine.alert(fp) else {
                outcome.batch.escalations.push((fp, None));
                continue;
            };
            let (next, owed) = escalation::on_due(esc, alert, &resolver, now);
            let snapshot = core.engine.snapshot(alert);
            let group = group_key(&settings.routing.group_by, &alert.labels);
            outcome
                .batch
                .outbox
                .extend(core.outbox.enqueue(&snapshot, owed, &group, now));
            if let Some(e) = &next {
                core.escalations.insert(fp, e.clone());
            }
            outcome.batch.escalations.push((fp, next));
        }
        self.commit_and_notify(core, now, outcome)?;
        self.audit(core, now);
        Ok(())
    }

    /// Every unacked firing alert must have a step ahead of it or a message in
    /// flight; one that has neither is a stuck escalation, and it must show.
    fn audit(&self, core: &Core, now: Timestamp) {
        let grace = self
            .shared
            .settings
            .evaluation_interval
            .max(Duration::from_secs(60));
        let pending = core.outbox.pending_alerts();
        let overdue = core
            .engine
            .alerts()
            .filter(|a| a.state == crate::alert::State::Firing && !a.flapping)
            .filter(|a| {
                let ahead = core
                    .escalations
                    .get(&a.fingerprint)
                    .and_then(|e| e.due_at)
                    .is_some_and(|t| t + grace > now);
                !ahead && !pending.contains(&a.fingerprint)
            })
            .count();
        if overdue > 0 {
            tracing::error!(
                overdue,
                "escalations overdue: firing alerts with no step ahead"
            );
        }
        self.shared.metrics.escalations_overdue.set(overdue as i64);
    }

    /// When the outbox next has something due.
    pub fn next_delivery_due(&self) -> Option<Timestamp> {
        self.core().outbox.next_due()
    }

    /// Sends every message due now, one at a time, and settles each in the store:
    /// delivered (logged under its idempotency key), rescheduled with backoff, or
    /// handed to the fallback. Returns how many messages were attempted.
    pub async fn deliver_due(&self) -> usize {
        let _one_pass = self.shared.delivering.lock().await;
        let now = self.now();
        let due = self.core().outbox.due(now);
        let count = due.len();
        for mut m in due {
            let keys = self.core().outbox.keys(&m.deliveries);
            let store = &self.shared.store;
            let already =
                !keys.is_empty() && keys.iter().all(|k| store.was_sent(k).unwrap_or(false));
            let result = if already {
                outbox::Outcome::AlreadySent
            } else {
                if let [alert] = m.message.alerts.as_slice() {
                    let key = reference_key(&m.address, alert.incident);
                    m.message.update = store.reference(alert.fingerprint, &key).ok().flatten();
                }
                self.pace(&m.address).await;
                match self.shared.channels.send(&m.address, &m.message).await {
                    Ok(d) => outbox::Outcome::Delivered {
                        reference: d.reference,
                    },
                    Err(e) => outbox::Outcome::Failed(e),
                }
            };
            self.count_delivery(&m, &result);
            let d = self.clone();
            let settled = tokio::task::spawn_blocking(move || d.settle(&m, &result)).await;
            match settled {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "cannot record a delivery"),
                Err(e) => tracing::error!(error = %e, "recording a delivery panicked"),
            }
        }
        count
    }

    fn count_delivery(&self, m: &outbox::DueMessage, result: &outbox::Outcome) {
        let channel = m.address.channel().to_string();
        match result {
            outbox::Outcome::Delivered { .. } => {
                self.shared
                    .metrics
                    .notifications
                    .get_or_create(&vec![
                        ("channel".to_string(), channel),
                        ("reason".to_string(), m.message.reason.name().to_string()),
                    ])
                    .inc();
            }
            outbox::Outcome::Failed(e) => {
                let kind = match e {
                    crate::notify::SendError::Retry { .. } => "retry",
                    crate::notify::SendError::Permanent { .. } => "permanent",
                };
                tracing::warn!(address = %m.address, error = %e, kind, "delivery failed");
                self.shared
                    .metrics
                    .delivery_failures
                    .get_or_create(&vec![
                        ("channel".to_string(), channel),
                        ("kind".to_string(), kind.to_string()),
                    ])
                    .inc();
            }
            outbox::Outcome::AlreadySent => {}
        }
    }

    /// Sends the scheduled reports whose time has come (daily summary, weekly
    /// report): each once per occurrence of its schedule, recorded in the store so
    /// a restart neither skips nor repeats one.
    pub async fn run_reports(&self) {
        let now = self.now();
        for schedule in &self.shared.settings.reports {
            let Some(due) = schedule.when.last_at_or_before(now) else {
                continue;
            };
            let last = match self.shared.store.job_ran(&schedule.name) {
                Ok(last) => last.unwrap_or(self.shared.opened_at),
                Err(e) => {
                    tracing::error!(error = %e, report = %schedule.name, "cannot read report schedule");
                    continue;
                }
            };
            let failed_at = self
                .shared
                .report_failed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&schedule.name)
                .copied();
            if due <= last || failed_at.is_some_and(|t| now < t + Duration::from_secs(300)) {
                continue;
            }
            let d = self.clone();
            let history = tokio::task::spawn_blocking(move || d.history()).await;
            let Ok(Ok(history)) = history else {
                tracing::error!(report = %schedule.name, "cannot read alert history for a report");
                continue;
            };
            let report = crate::report::summarize(&history, due - schedule.period, due);
            let sent = self
                .shared
                .channels
                .send_report(&schedule.name, &schedule.to, &report)
                .await;
            let mut failed = self
                .shared
                .report_failed
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match sent {
                Ok(_) => {
                    failed.remove(&schedule.name);
                    let batch = crate::store::Batch {
                        jobs: vec![(schedule.name.clone(), due)],
                        ..Default::default()
                    };
                    if let Err(e) = self.shared.store.apply(&batch) {
                        tracing::error!(error = %e, report = %schedule.name, "cannot record a sent report");
                    }
                    tracing::info!(report = %schedule.name, "report sent");
                }
                Err(e) => {
                    failed.insert(schedule.name.clone(), now);
                    tracing::warn!(error = %e, report = %schedule.name, "report not sent; retrying in 5 minutes");
                }
            }
        }
    }

    /// Every alert with its timeline, for reports. Blocking.
    fn history(&self) -> Result<Vec<(Alert, Vec<TimelineEntry>)>, OpError> {
        let alerts: Vec<Alert> = self
            .core()
            .engine
            .alerts()
            .filter(|a| a.incident.is_some())
            .cloned()
            .collect();
        alerts
            .into_iter()
            .map(|a| {
                let t = self.shared.store.timeline(a.fingerprint)?;
                Ok((a, t))
            })
            .collect()
    }

    /// Waits out Slack's pace of one message per second per channel.
    async fn pace(&self, address: &Address) {
        let Address::Slack { channel } = address else {
            return;
        };
        let wait = {
            let mut last = self
                .shared
                .slack_paced
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let now = std::time::Instant::now();
            let next = last
                .get(channel)
                .map_or(now, |t| (*t + Duration::from_secs(1)).max(now));
            last.insert(channel.clone(), next);
            next - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Records what happened to one message, in one transaction. Blocking.
    fn settle(&self, m: &outbox::DueMessage, result: &outbox::Outcome) -> Result<(), OpError> {
        let now = self.now();
        let mut core = self.core();
        let settled = core.outbox.settle(m, result, now);
        let mut batch = crate::store::Batch {
            next_incident: 0,
            outbox: settled.put,
            outbox_done: settled.delete,
            sent: settled.sent.into_iter().map(|k| (k, now)).collect(),
            references: settled
                .references
                .into_iter()
                .map(|(a, addr, r)| (a.fingerprint, reference_key(&addr, a.incident), r))
                .collect(),
            ..Default::default()
        };
        for (alert, note) in settled.notes {
            batch.timeline.push((
                alert.fingerprint,
                TimelineEntry {
                    at: now,
                    from: alert.state,
                    to: alert.state,
                    actor: None,
                    via: Some(m.address.channel().to_string()),
                    reason: note,
                    note: None,
                },
            ));
        }
        for failed in settled.fallback {
            for d in self.fallbacks(&failed, now) {
                batch.outbox.push(core.outbox.add(d));
            }
        }
        // Not synced: a settlement lost in a crash sends the message again under
        // the same key, never loses it; the next durable commit (at the latest the
        // next tick) carries it to disk.
        let committed = self.shared.store.apply_unsynced(&batch);
        self.shared
            .store_ok
            .store(committed.is_ok(), std::sync::atomic::Ordering::SeqCst);
        self.shared
            .metrics
            .outbox_pending
            .set(core.outbox.len() as i64);
        committed?;
        Ok(())
    }

    /// The deliveries that stand in for one that keeps failing: the policy's
    /// fallback addresses, other than the failing one.
    fn fallbacks(&self, failed: &Delivery, now: Timestamp) -> Vec<Delivery> {
        let settings = &self.shared.settings;
        let labels = Labels::from_pairs(failed.alert.labels.clone());
        let policy = settings.routing.policy_for(&labels, None);
        let resolver = self.resolver();
        resolver
            .fallback(policy, &failed.alert.severity, now)
            .into_iter()
            .filter(|a| *a != failed.address)
            .map(|address| Delivery {
                id: 0,
                key: format!("{}.fallback.{address}", failed.key),
                address,
                due_at: now,
                created_at: now,
                attempts: 0,
                last_error: None,
                fallback_for: Some(failed.address.clone()),
                fell_back: false,
                ..failed.clone()
            })
            .collect()
    }

    /// Finds an alert by incident number or fingerprint.
    fn resolve_id(&self, core: &Core, id: &str) -> Result<Fingerprint, OpError> {
        let by_incident = id
            .parse::<u64>()
            .ok()
            .and_then(|n| core.engine.alert_by_incident(n));
        let by_fp = || {
            id.parse::<Fingerprint>()
                .ok()
                .and_then(|fp| core.engine.alert(fp))
        };
        by_incident
            .or_else(by_fp)
            .map(|a| a.fingerprint)
            .ok_or_else(|| OpError::NotFound(format!("no alert with id {id}")))
    }

    /// Applies an operator's event (ack, unack, resolve) to alert `id`. Blocking.
    pub fn act(&self, id: &str, event: Event) -> Result<AlertView, OpError> {
        let now = self.now();
        let mut core = self.core();
        let fp = self.resolve_id(&core, id)?;
        let outcome = core.engine.apply(fp, &event, now)?;
        self.commit_and_notify(&mut core, now, outcome)?;
        Ok(self.view(&core.engine, core.engine.alert(fp).expect("just acted on")))
    }

    /// Stores a new silence (validated) and applies it to the alerts at once.
    /// Blocking.
    pub fn add_silence(&self, silence: Silence) -> Result<Silence, OpError> {
        silence.validate().map_err(OpError::Invalid)?;
        let now = self.now();
        let mut core = self.core();
        core.silences.push(silence.clone());
        let mut outcome = self.sync_all_silences(&mut core, now);
        outcome.batch.silences.push(silence.clone());
        if let Err(e) = self.commit_and_notify(&mut core, now, outcome) {
            core.silences.retain(|s| s.id != silence.id);
            return Err(e);
        }
        Ok(silence)
    }

    /// Ends a silence now; its alerts resume. Blocking.
    pub fn expire_silence(&self, id: &str) -> Result<Silence, OpError> {
        let now = self.now();
        let mut core = self.core();
        let Some(s) = core.silences.iter_mut().find(|s| s.id == id) else {
            return Err(OpError::NotFound(format!("no silence with id {id}")));
        };
        if s.ends_at > now {
            s.ends_at = now.max(s.starts_at);
            if s.starts_at > now {
                s.starts_at = now;
            }
        }
        let expired = s.clone();
        let mut outcome = self.sync_all_silences(&mut core, now);
        outcome.batch.silences.push(expired.clone());
        self.commit_and_notify(&mut core, now, outcome)?;
        Ok(expired)
    }

    pub fn silences(&self) -> Vec<Silence> {
        self.core().silences.clone()
    }

    fn view(&self, engine: &Engine, alert: &Alert) -> AlertView {
        AlertView {
            alert: alert.clone(),
            annotations: engine.annotations(alert),
            severity: alert.labels.get("severity").unwrap_or("").to_string(),
        }
    }

    /// Every alert that is not inactive, newest incident first.
    pub fn alerts(&self) -> Vec<AlertView> {
        let core = self.core();
        let mut out: Vec<AlertView> = core
            .engine
            .alerts()
            .filter(|a| a.state != crate::alert::State::Inactive)
            .map(|a| self.view(&core.engine, a))
            .collect();
        out.sort_by(|a, b| {
            b.alert
                .incident
                .cmp(&a.alert.incident)
                .then(a.alert.fingerprint.cmp(&b.alert.fingerprint))
        });
        out
    }

    /// One alert with its timeline.
    pub fn alert(&self, id: &str) -> Result<(AlertView, Vec<TimelineEntry>), OpError> {
        let (view, fp) = {
            let core = self.core();
            let fp = self.resolve_id(&core, id)?;
            (
                self.view(&core.engine, core.engine.alert(fp).expect("found")),
                fp,
            )
        };
        Ok((view, self.shared.store.timeline(fp)?))
    }
}

/// Where a message reference is kept: per address and incident, so a new
/// occurrence of an alert starts a new Slack message and a new mail thread.
fn reference_key(address: &Address, incident: Option<u64>) -> String {
    format!("{address}#{}", incident.unwrap_or(0))
}

/// The grouping key of an alert: the values of the `group_by` labels.
fn group_key(group_by: &[String], labels: &Labels) -> String {
    group_by
        .iter()
        .map(|l| format!("{l}={}", labels.get(l).unwrap_or("")))
        .collect::<Vec<_>>()
        .join(",")
}

/// The metric names a rule set reads.
fn metrics_read_by(set: &RuleSet) -> std::collections::HashMap<String, Vec<usize>> {
    let mut readers: std::collections::HashMap<String, Vec<usize>> = Default::default();
    for (i, rule) in set.alerts.iter().enumerate() {
        let conditions = std::iter::once(&rule.condition).chain(&rule.resolve_when);
        for selector in conditions.flat_map(|c| c.expr.selectors()) {
            let rules = readers.entry(selector.metric.clone()).or_default();
            if rules.last() != Some(&i) {
                rules.push(i);
            }
        }
    }
    readers
}

/// A stamp of the rules files (paths, sizes, modification times), so a change in
/// the rules folder is noticed by polling, without a platform file watcher.
type RulesStamp = Vec<(PathBuf, u64, Option<std::time::SystemTime>)>;

fn rules_stamp(paths: &[PathBuf]) -> RulesStamp {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            collect_stamps(p, &mut files);
        } else {
            stamp(p, &mut files);
        }
    }
    files.sort();
    files
}

fn collect_stamps(dir: &std::path::Path, out: &mut RulesStamp) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_stamps(&p, out);
        } else if p.extension().is_some_and(|e| e == rules::EXTENSION) {
            stamp(&p, out);
        }
    }
}

fn stamp(p: &std::path::Path, out: &mut RulesStamp) {
    if let Ok(meta) = std::fs::metadata(p) {
        out.push((p.to_path_buf(), meta.len(), meta.modified().ok()));
    }
}

/// Reloads the rules when their files change (polled) or on SIGHUP, until stopped.
async fn watch_rules(daemon: Daemon, mut stop: watch::Receiver<bool>) {
    let paths = daemon.settings().rule_paths.clone();
    let mut last = rules_stamp(&paths);
    let mut poll = tokio::time::interval(daemon.settings().rules_poll);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<()>();
        let forced = tokio::select! {
            _ = poll.tick() => false,
            _ = hangup => true,
            _ = stop.changed() => return,
        };
        let now = rules_stamp(&paths);
        if !forced && now == last {
            continue;
        }
        last = now;
        let d = daemon.clone();
        // The outcome is logged and counted by `reload`.
        let _ = tokio::task::spawn_blocking(move || d.reload()).await;
    }
}

/// Delivers the outbox until stopped: woken when something is enqueued, and at
/// least once a second for retries and batches coming due.
async fn deliver_loop(daemon: Daemon, mut stop: watch::Receiver<bool>) {
    loop {
        daemon.deliver_due().await;
        daemon.run_reports().await;
        let wait = daemon
            .next_delivery_due()
            .map_or(Duration::from_secs(1), |t| {
                let now = daemon.now();
                if t <= now {
                    Duration::ZERO
                } else {
                    t.since(now).min(Duration::from_secs(1))
                }
            });
        tokio::select! {
            _ = daemon.shared.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

/// A running daemon: its address, and a handle to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub daemon: Daemon,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops serving and ticking, and waits for in-flight requests to finish.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Opens the daemon, binds `settings.listen` (port 0 picks one), and serves until
/// stopped: HTTP, plus an evaluation tick so `for` clauses advance without pushes.
pub async fn start(settings: Settings, clock: Arc<dyn Clock>) -> Result<Running, AppError> {
    crate::tls::install_crypto_provider();
    let addr = settings.listen;
    let daemon = tokio::task::spawn_blocking(move || Daemon::open(settings, clock))
        .await
        .expect("open does not panic")?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Listen { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| AppError::Listen { addr, source })?;
    let (tx, rx) = watch::channel(false);
    let scrape_limits = crate::scrape::Limits {
        body_limit: daemon.settings().body_limit,
        max_labels: daemon.settings().max_labels,
    };
    let scrape_into = daemon.clone();
    let scraper = crate::scrape::spawn(
        daemon.settings().scrape.clone(),
        scrape_limits,
        Arc::new(move |samples| {
            scrape_into
                .ingest(&samples)
                .map(drop)
                .map_err(|e| e.to_string())
        }),
        rx.clone(),
    );
    let router = crate::http::router(daemon.clone());
    let ticker = daemon.clone();
    let mut tick_rx = rx.clone();
    let daemon_for_reload = daemon.clone();
    let reload_rx = rx.clone();
    let daemon_for_delivery = daemon.clone();
    let delivery_rx = rx.clone();
    let daemon_for_flush = daemon.clone();
    let task = tokio::spawn(async move {
        let tick = async move {
            let mut interval = tokio::time::interval(ticker.settings().evaluation_interval);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = interval.tick() => {
                        let d = ticker.clone();
                        match tokio::task::spawn_blocking(move || d.tick()).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => tracing::error!(error = %e, "evaluation failed"),
                            Err(e) => tracing::error!(error = %e, "evaluation panicked"),
                        }
                    }
                    _ = tick_rx.changed() => break,
                }
            }
        };
        let reloader = watch_rules(daemon_for_reload, reload_rx);
        let deliveries = deliver_loop(daemon_for_delivery, delivery_rx);
        let mut stop_rx = rx;
        let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = stop_rx.changed().await;
        });
        let (served, (), (), ()) = tokio::join!(serve, tick, reloader, deliveries);
        // Scrape loops hold the daemon (and so the redb file): wait for them too.
        let _ = scraper.await;
        match tokio::task::spawn_blocking(move || daemon_for_flush.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot write the state held for the tick"),
            Err(e) => tracing::error!(error = %e, "writing the state held for the tick panicked"),
        }
        if let Err(e) = served {
            tracing::error!(error = %e, "server stopped");
        }
    });
    tracing::info!(%addr, "tocsin listening");
    Ok(Running {
        addr,
        daemon,
        shutdown: tx,
        task,
    })
}
