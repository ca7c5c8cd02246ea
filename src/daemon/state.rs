//! The core state: series, alerts, silences, escalations, the outbox and the
//! deadline queue, behind one lock. The operations here are blocking and run on a
//! blocking thread with the lock held; each ends in the commit pipeline, so a change
//! is durable before anything acts on it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::observed::Observed;
use super::schedule::{Due, Schedule};
use super::{AlertView, Context, OpError};
use crate::alert::{Alert, State};
use crate::clock::Timestamp;
use crate::engine::{Engine, Outcome};
use crate::escalation::state::Escalation;
use crate::labels::Fingerprint;
use crate::outbox::{self, Outbox};
use crate::rules::RuleSet;
use crate::series::{Limits, SeriesStore};
use crate::silence::{Silence, Status};
use crate::store::{Loaded, StoreError};

/// The state every operation works on.
pub(super) struct Core {
    pub series: SeriesStore,
    pub engine: Engine,
    /// For each metric name a rule reads, the rules (by index) that read it: an
    /// ingest evaluates only the rules reading what it brought; the evaluation
    /// deadline evaluates all of them.
    pub rule_metrics: HashMap<String, Vec<usize>>,
    /// Every silence, expired ones too (they are history); few, so a list.
    pub silences: Vec<Silence>,
    /// The escalation of every alert being paged about, mirrored in the store.
    pub escalations: HashMap<Fingerprint, Escalation>,
    /// Messages owed, mirrored in the store's outbox table.
    pub outbox: Outbox,
    /// Every deadline, derived from the state above.
    pub schedule: Schedule,
    /// Per scheduled report (by index in the config): when it last ran, and when
    /// it last failed to send (retried five minutes later).
    pub reports: Vec<ReportState>,
    /// Each rule's last evaluation and each channel's last sends, for the web UI.
    pub observed: Observed,
    /// The retention sweep's progress.
    pub retention: super::schedule::Sweep,
    /// Per Alertmanager in `[[channels.alertmanager]]`, when it was last asked
    /// what it holds (see `upstream.rs`). In memory: after a restart the watch
    /// starts over.
    pub upstream_watched: Vec<Option<Timestamp>>,
}

/// How long after a failed send a report is tried again.
pub(super) const REPORT_RETRY: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ReportState {
    pub last_ran: Option<Timestamp>,
    pub failed_at: Option<Timestamp>,
}

impl Core {
    /// The state as the store holds it, with every deadline armed.
    pub fn open(ctx: &Context, rules: RuleSet, now: Timestamp) -> Result<Core, StoreError> {
        let config = &ctx.config;
        let limits = Limits {
            retention: rules.longest_window() + config.rules.lookback,
            lookback: config.rules.lookback,
            max_series: config.limits.max_series,
            max_samples_per_series: config.limits.max_samples_per_series,
        };
        let loaded = ctx.store.load()?;
        // When each report last ran comes with the state (`take`).
        let reports = vec![ReportState::default(); config.reports.len()];
        let rule_metrics = metrics_read_by(&rules);
        let mut core = Core {
            series: SeriesStore::new(limits),
            engine: Engine::new(Arc::new(rules), HashMap::new(), 1),
            rule_metrics,
            silences: Vec::new(),
            escalations: HashMap::new(),
            outbox: Outbox::default(),
            schedule: Schedule::default(),
            reports,
            observed: Observed::default(),
            retention: Default::default(),
            upstream_watched: vec![None; config.channels.alertmanagers.len()],
        };
        // The first sweep an hour after start, as every later one: a restart in
        // the middle of an outage owes its first minutes to intake, and the next
        // deadline after a start stays the rules' evaluation.
        core.retention.next = Some(now + super::schedule::EVERY);
        core.take(ctx, loaded, now);
        Ok(core)
    }

    /// Replaces the alert state with `loaded` and re-arms every deadline from it.
    fn take(&mut self, ctx: &Context, loaded: Loaded, now: Timestamp) {
        let timing = outbox::Timing {
            group_wait: ctx.config.routing.group_wait,
            ..outbox::Timing::default()
        };
        self.engine = Engine::new(
            self.engine.rules().clone(),
            loaded.alerts,
            loaded.next_incident,
        );
        self.silences = loaded.silences;
        self.escalations = loaded.escalations;
        self.outbox = Outbox::new(timing, loaded.outbox, loaded.next_delivery);
        // When each report last ran, and the marks the messages sent before left
        // (a Slack channel's pace, a phone number's window), by another replica or
        // before a restart: a report is not sent twice, and pacing holds.
        for (state, report) in self.reports.iter_mut().zip(&ctx.config.reports) {
            let ran = loaded.jobs.iter().find(|(name, _)| *name == report.name);
            state.last_ran = ran.map(|(_, at)| *at).max(state.last_ran);
        }
        self.outbox.remember(loaded.jobs);
        // A page still owed may have left just before a crash, its mark not yet on
        // disk: it counts as gone, so whoever it may have reached hears of the ack
        // and the resolve (told once too often rather than never). The mark is
        // written when the page settles.
        for d in self.outbox.entries() {
            if let Some(esc) = self.escalations.get_mut(&d.alert.fingerprint)
                && esc.incident == d.alert.incident
                && d.reason.is_page()
            {
                esc.paged(&d.address);
            }
        }
        self.arm_all(ctx, now);
        ctx.metrics.outbox_pending.set(self.outbox.len() as i64);
    }

    /// After a failed commit, puts the in-memory state back to what is durable: a
    /// change the caller was refused (503) is then neither shown nor acted on (an
    /// ack that was not stored does not pause the escalation; a page about a state
    /// change that was not stored is not sent, its incident number not handed out).
    pub fn restore(&mut self, ctx: &Context, now: Timestamp) {
        match ctx.store.load() {
            Ok(loaded) => {
                ctx.set_stale(false);
                self.take(ctx, loaded, now);
            }
            Err(e) => {
                ctx.set_stale(true);
                tracing::error!(error = %e, "cannot reload the state store after a failed commit");
            }
        }
    }

    /// The silences in force at `now`: the operators' and the maintenance windows'.
    pub fn active_silences(&self, ctx: &Context, now: Timestamp) -> Vec<Silence> {
        let windows = ctx.config.maintenance.iter();
        self.silences
            .iter()
            .filter(|s| s.status(now) == Status::Active)
            .cloned()
            .chain(windows.filter_map(|w| w.active(now)))
            .collect()
    }

    /// Every alert's silences brought up to date: after silences changed, and when
    /// a silence or a maintenance window starts or ends.
    pub fn sync_all_silences(&mut self, ctx: &Context, now: Timestamp) -> Outcome {
        let silences = self.active_silences(ctx, now);
        self.engine.sync_silences(&silences, now)
    }

    /// Finds an alert by incident number or fingerprint.
    pub fn resolve_id(&self, id: &str) -> Result<Fingerprint, OpError> {
        let by_incident = id
            .parse::<u64>()
            .ok()
            .and_then(|n| self.engine.alert_by_incident(n));
        let by_fp = || {
            id.parse::<Fingerprint>()
                .ok()
                .and_then(|fp| self.engine.alert(fp))
        };
        by_incident
            .or_else(by_fp)
            .map(|a| a.fingerprint)
            .ok_or_else(|| OpError::NotFound(format!("no alert with id {id}")))
    }

    pub fn view(&self, ctx: &Context, alert: &Alert) -> AlertView {
        let policy = ctx
            .config
            .routing
            .policy_for(&alert.labels, self.engine.escalation_of(alert));
        AlertView {
            alert: alert.clone(),
            annotations: self.engine.annotations(alert),
            severity: alert.labels.get("severity").unwrap_or("").to_string(),
            value_text: self.engine.value_text(alert),
            policy: policy.name.clone(),
        }
    }

    /// Every alert that is not inactive, newest incident first.
    pub fn alerts(&self, ctx: &Context) -> Vec<AlertView> {
        let mut out: Vec<AlertView> = self
            .engine
            .alerts()
            .filter(|a| a.state != State::Inactive)
            .map(|a| self.view(ctx, a))
            .collect();
        out.sort_by(|a, b| {
            b.alert
                .incident
                .cmp(&a.alert.incident)
                .then(a.alert.fingerprint.cmp(&b.alert.fingerprint))
        });
        out
    }

    /// Every unacked firing alert must have a step ahead of it or a message in
    /// flight; one that has neither is a stuck escalation, and it must show.
    pub fn audit(&self, ctx: &Context, now: Timestamp) {
        let grace = ctx
            .config
            .rules
            .evaluation_interval
            .max(Duration::from_secs(60));
        let pending = self.outbox.pending_alerts();
        let overdue = self
            .engine
            .alerts()
            .filter(|a| a.state == State::Firing && !a.flapping)
            .filter(|a| {
                let ahead = self
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
        ctx.metrics.escalations_overdue.set(overdue as i64);
    }
}

/// The metric names a rule set reads, and which rules read each.
pub(super) fn metrics_read_by(set: &RuleSet) -> HashMap<String, Vec<usize>> {
    let mut readers: HashMap<String, Vec<usize>> = HashMap::new();
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

/// Deadlines, derived from the state: `arm` is the one place one is set.
/// Handlers re-check the state before acting, so a deadline that state moved later
/// is simply re-armed; one that state moved earlier is re-armed by the commit that
/// moved it.
impl Core {
    /// When `due` is owed, from the state it belongs to; `None` when nothing is.
    pub fn when(&self, ctx: &Context, due: &Due, now: Timestamp) -> Option<Timestamp> {
        let core = self;
        let config = &ctx.config;
        match due {
            Due::Silence(id) => {
                let s = core.silences.iter().find(|s| s.id == **id)?;
                [s.starts_at, s.ends_at].into_iter().find(|t| *t > now)
            }
            Due::Maintenance(i) => config.maintenance.get(*i)?.next_change(now),
            Due::Expiry(fp) => crate::engine::expires_at(core.engine.alert(*fp)?),
            Due::AckTimeout(fp) => {
                let alert = core.engine.alert(*fp)?;
                if alert.state != State::Acknowledged {
                    return None;
                }
                let policy = config
                    .routing
                    .policy_for(&alert.labels, core.engine.escalation_of(alert));
                Some(alert.ack.as_ref()?.at + policy.ack_timeout?)
            }
            Due::Flapping(fp) => core.engine.flapping_ends_at(core.engine.alert(*fp)?),
            // Set when it runs: one interval after the last evaluation.
            Due::Evaluation => core.schedule.when(due),
            Due::Escalation(fp) => core.escalations.get(fp)?.due_at,
            Due::Deliveries => core.outbox.next_due(),
            Due::Retention => core.retention.next,
            Due::Upstream(i) => core.upstream_due(ctx, *i, now),
            Due::Report(i) => {
                let schedule = config.reports.get(*i)?;
                let state = core.reports.get(*i)?;
                match state.failed_at {
                    Some(failed) => Some(failed + REPORT_RETRY),
                    None => schedule
                        .when
                        .next_after(state.last_ran.unwrap_or(ctx.opened_at)),
                }
            }
        }
    }

    /// Sets `due`'s deadline from the state. A deadline already past is kept at `now`:
    /// the loop takes it in its next turn.
    pub fn arm(&mut self, ctx: &Context, due: Due, now: Timestamp) {
        let at = self.when(ctx, &due, now);
        self.schedule.set(due, at);
        ctx.deadline_set(at);
    }

    /// The deadlines that follow one alert's state.
    pub fn arm_alert(&mut self, ctx: &Context, fp: Fingerprint, now: Timestamp) {
        for due in Due::of_alert(fp) {
            self.arm(ctx, due, now);
        }
    }

    /// Every deadline, from the whole state: at start, and after the state was reloaded
    /// from the store or the rules changed.
    pub fn arm_all(&mut self, ctx: &Context, now: Timestamp) {
        let core = &*self;
        let evaluation = core.schedule.when(&Due::Evaluation).unwrap_or(now);
        let alerts = core
            .engine
            .alerts()
            .flat_map(|a| Due::of_alert(a.fingerprint));
        let escalations = core.escalations.keys().map(|fp| Due::Escalation(*fp));
        let silences = (core.silences.iter()).map(|s| Due::Silence(Box::new(s.id.clone())));
        let config = &ctx.config;
        let keys = alerts
            .chain(escalations)
            .chain(silences)
            .chain((0..config.maintenance.len()).map(Due::Maintenance))
            .chain((0..config.reports.len()).map(Due::Report))
            .chain((0..config.channels.alertmanagers.len()).map(Due::Upstream))
            .chain([Due::Deliveries, Due::Retention]);
        let deadlines: Vec<(Due, Timestamp)> = keys
            .filter_map(|due| core.when(ctx, &due, now).map(|at| (due, at)))
            .chain([(Due::Evaluation, evaluation)])
            .collect();
        // In one go: a restart with 100,000 alerts arms 200,000 deadlines.
        self.schedule.replace_all(deadlines);
        ctx.deadline_set(self.schedule.next());
    }
}
