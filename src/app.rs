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
use crate::engine::{Engine, ExternalAlert, Notification};
use crate::labels::{Fingerprint, Labels};
use crate::metrics::Metrics;
use crate::notify::console;
use crate::rules::{self, CheckOptions, RuleSet};
use crate::series::{Limits, Sample, SeriesError, SeriesStore};
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
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A sample as accepted by the ingestion endpoints, already validated.
#[derive(Clone, Debug)]
pub struct IncomingSample {
    pub metric: String,
    pub labels: Labels,
    pub value: f64,
    pub at: Option<Timestamp>,
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
    /// Metric names any rule reads: an ingest that touches none needs no evaluation.
    rule_metrics: std::collections::HashSet<String>,
    /// Every silence, expired ones too (they are history); few, so a list.
    silences: Vec<Silence>,
}

/// The daemon's shared state: a cheap-clone handle.
#[derive(Clone)]
pub struct Daemon {
    shared: Arc<Shared>,
}

struct Shared {
    core: Mutex<Core>,
    store: Store,
    clock: Arc<dyn Clock>,
    settings: Settings,
    metrics: Metrics,
    /// False while the store refuses writes: state changes cannot be made durable,
    /// so `/readyz` says not ready until a commit succeeds again.
    store_ok: std::sync::atomic::AtomicBool,
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
        let sources = rules::read_sources(&settings.rule_paths).map_err(AppError::RulesIo)?;
        let set: RuleSet = rules::check_sources(&sources, &settings.check)
            .map_err(|d| AppError::Rules(rules::diagnostic::render(&sources, &d, false)))?;
        let rule_metrics = metrics_read_by(&set);
        let store = Store::open(&settings.data_path)?;
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
        let core = Core {
            series: SeriesStore::new(limits),
            engine,
            rule_metrics,
            silences: store.load_silences()?,
        };
        Ok(Daemon {
            shared: Arc::new(Shared {
                core: Mutex::new(core),
                store,
                clock,
                settings,
                metrics,
                store_ok: std::sync::atomic::AtomicBool::new(true),
            }),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
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
        self.shared.core.lock().unwrap_or_else(|e| e.into_inner())
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
        if samples
            .iter()
            .any(|s| core.rule_metrics.contains(&s.metric))
        {
            self.evaluate_locked(&mut core, now)?;
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
        let outcome = core.engine.reload(Arc::new(set), now);
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
        core.series.trim(now);
        self.shared
            .metrics
            .series
            .set(core.series.series_count() as i64);
        let expired = core.engine.expire_external(now);
        self.commit_and_notify(&mut core, now, expired)?;
        self.evaluate_locked(&mut core, now)
    }

    /// Takes alerts another system evaluated (Alertmanager webhook, Prometheus
    /// `POST /api/v2/alerts`) into the lifecycle, one committed batch for all.
    /// Blocking.
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
        let now = self.now();
        let mut core = self.core();
        let mut total = crate::engine::Outcome::default();
        let count = alerts.len();
        for a in alerts {
            let out = core.engine.receive_external(a, now);
            total.absorb(out);
        }
        self.commit_and_notify(&mut core, now, total)?;
        Ok(count)
    }

    fn evaluate_locked(&self, core: &mut Core, now: Timestamp) -> Result<(), OpError> {
        let started = std::time::Instant::now();
        let outcome = core.engine.evaluate(&core.series, now);
        self.shared.metrics.evaluations.inc();
        self.shared
            .metrics
            .evaluation_seconds
            .observe(started.elapsed().as_secs_f64());
        self.commit_and_notify(core, now, outcome)
    }

    /// Brings silences up to date, then commits: durable first, then the channels.
    fn commit_and_notify(
        &self,
        core: &mut Core,
        now: Timestamp,
        mut outcome: crate::engine::Outcome,
    ) -> Result<(), OpError> {
        let silenced = core.engine.sync_silences(&core.silences, now);
        outcome.absorb(silenced);
        let engine = &core.engine;
        // An alert that appeared in this very step under an active silence was
        // silenced from its first moment: its firing is not announced.
        outcome.notifications.retain(|n| {
            n.reason != crate::alert::NotifyReason::Firing
                || engine
                    .alert(n.alert)
                    .is_none_or(|a| a.state != crate::alert::State::Suppressed)
        });
        let batch = &outcome.batch;
        if !(batch.alerts.is_empty()
            && batch.removed.is_empty()
            && batch.timeline.is_empty()
            && batch.silences.is_empty())
        {
            let committed = self.shared.store.apply(&outcome.batch);
            let ok = committed.is_ok();
            self.shared
                .store_ok
                .store(ok, std::sync::atomic::Ordering::SeqCst);
            committed?;
            self.shared
                .metrics
                .set_alert_states(engine.alerts().map(|a| &a.state));
        }
        for n in &outcome.notifications {
            self.deliver(engine, n);
        }
        Ok(())
    }

    fn deliver(&self, engine: &Engine, n: &Notification) {
        let Some(alert) = engine.alert(n.alert) else {
            return;
        };
        let annotations = engine.annotations(alert);
        tracing::info!(alert_id = %alert.fingerprint, incident = ?alert.incident, reason = %n.reason, "notification");
        if !self.shared.settings.console {
            return;
        }
        let _ = annotations;
        console::send(&crate::notify::Message {
            key: String::new(),
            reason: n.reason,
            level: 1,
            alerts: vec![engine.snapshot(alert)],
            update: None,
            at: n.at,
        });
        let labels = vec![
            ("channel".to_string(), "console".to_string()),
            ("reason".to_string(), n.reason.name().to_string()),
        ];
        self.shared
            .metrics
            .notifications
            .get_or_create(&labels)
            .inc();
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
        let mut outcome = crate::engine::Outcome::default();
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
        let mut outcome = crate::engine::Outcome::default();
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

/// The metric names a rule set reads.
fn metrics_read_by(set: &RuleSet) -> std::collections::HashSet<String> {
    set.alerts
        .iter()
        .flat_map(|a| std::iter::once(&a.condition).chain(&a.resolve_when))
        .flat_map(|c| c.expr.selectors())
        .map(|s| s.metric.clone())
        .collect()
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
    let scraper =
        crate::scrape::spawn(daemon.clone(), daemon.settings().scrape.clone(), rx.clone());
    let router = crate::http::router(daemon.clone());
    let ticker = daemon.clone();
    let mut tick_rx = rx.clone();
    let daemon_for_reload = daemon.clone();
    let reload_rx = rx.clone();
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
        let mut stop_rx = rx;
        let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = stop_rx.changed().await;
        });
        let (served, (), ()) = tokio::join!(serve, tick, reloader);
        // Scrape loops hold the daemon (and so the redb file): wait for them too.
        let _ = scraper.await;
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
