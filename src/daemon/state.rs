//! The core state: series, alerts, silences, escalations, the outbox and the
//! deadline queue, behind one lock. The operations here are blocking and run on a
//! blocking thread with the lock held; each ends in the commit pipeline, so a change
//! is durable before anything acts on it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::pipeline::{self, Step};
use super::schedule::Schedule;
use super::{AlertView, Context, OpError, timers};
use crate::alert::{Alert, Event, State};
use crate::clock::Timestamp;
use crate::engine::{Engine, Outcome};
use crate::escalation::state::Escalation;
use crate::labels::Fingerprint;
use crate::metrics::Metrics;
use crate::outbox::{self, Outbox};
use crate::rules::RuleSet;
use crate::series::{IncomingSample, Limits, Sample, SeriesError, SeriesStore};
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
}

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
        let mut reports = Vec::new();
        for r in &config.reports {
            reports.push(ReportState {
                last_ran: ctx.store.job_ran(&r.name)?,
                failed_at: None,
            });
        }
        let rule_metrics = metrics_read_by(&rules);
        let mut core = Core {
            series: SeriesStore::new(limits),
            engine: Engine::new(Arc::new(rules), Vec::new(), 1),
            rule_metrics,
            silences: Vec::new(),
            escalations: HashMap::new(),
            outbox: Outbox::default(),
            schedule: Schedule::default(),
            reports,
        };
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
        self.escalations = loaded
            .escalations
            .into_iter()
            .map(|e| (e.fingerprint, e))
            .collect();
        self.outbox = Outbox::new(timing, loaded.outbox, loaded.next_delivery);
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
        timers::arm_all(ctx, self, now);
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

    /// Takes a batch of samples whole or not at all, then evaluates the rules that
    /// read what it brought.
    pub fn ingest(
        &mut self,
        ctx: &Context,
        samples: &[IncomingSample],
        now: Timestamp,
    ) -> Result<usize, OpError> {
        let at = |s: &IncomingSample| s.at.unwrap_or(now);
        self.series
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
                ctx.metrics
                    .samples_refused
                    .get_or_create(&Metrics::label("reason", reason))
                    .inc_by(samples.len() as u64);
                OpError::Sample { index, source }
            })?;
        for (index, s) in samples.iter().enumerate() {
            let sample = Sample {
                t: at(s),
                v: s.value,
            };
            self.series
                .append(&s.metric, &s.labels, sample)
                .map_err(|source| OpError::Sample { index, source })?;
        }
        ctx.metrics.samples_ingested.inc_by(samples.len() as u64);
        ctx.metrics.series.set(self.series.series_count() as i64);
        // Only the rules reading what was pushed: the others' results cannot have
        // changed, and time moves them on at the evaluation deadline.
        let mut readers = Vec::new();
        let mut last = None;
        for s in samples.iter().map(|s| s.metric.as_str()) {
            if last != Some(s) {
                last = Some(s);
                readers.extend(self.rule_metrics.get(s).into_iter().flatten());
            }
        }
        readers.sort_unstable();
        readers.dedup();
        if !readers.is_empty() {
            let outcome = self.evaluate(ctx, now, Some(&readers));
            pipeline::commit(ctx, self, now, Step::from(outcome))?;
        }
        Ok(samples.len())
    }

    /// Evaluates the rules (those listed by index, or all) at `now`.
    pub fn evaluate(&mut self, ctx: &Context, now: Timestamp, only: Option<&[usize]>) -> Outcome {
        let started = std::time::Instant::now();
        let outcome = match only {
            Some(rules) => self.engine.evaluate_rules(&self.series, now, rules),
            None => self.engine.evaluate(&self.series, now),
        };
        ctx.metrics.evaluations.inc();
        ctx.metrics
            .evaluation_seconds
            .observe(started.elapsed().as_secs_f64());
        outcome
    }

    /// Swaps in a checked rule set; alerts of rules that are gone resolve.
    pub fn reload(&mut self, ctx: &Context, set: RuleSet, now: Timestamp) -> Result<(), OpError> {
        self.series
            .set_retention(set.longest_window() + ctx.config.rules.lookback);
        self.rule_metrics = metrics_read_by(&set);
        let mut outcome = self.engine.reload(Arc::new(set), now);
        outcome.absorb(self.sync_all_silences(ctx, now));
        pipeline::commit(ctx, self, now, Step::from(outcome))?;
        // A rule's escalation policy may have changed, and with it ack timeouts.
        timers::arm_all(ctx, self, now);
        Ok(())
    }

    /// Applies an operator's event (ack, unack, resolve) to alert `id`.
    pub fn act(
        &mut self,
        ctx: &Context,
        id: &str,
        event: Event,
        now: Timestamp,
    ) -> Result<AlertView, OpError> {
        let fp = self.resolve_id(id)?;
        let outcome = self.engine.apply(fp, &event, now)?;
        pipeline::commit(ctx, self, now, Step::from(outcome))?;
        Ok(self.view(self.engine.alert(fp).expect("just acted on")))
    }

    /// Stores a new silence (validated) and applies it to the alerts at once.
    pub fn add_silence(
        &mut self,
        ctx: &Context,
        silence: Silence,
        now: Timestamp,
    ) -> Result<Silence, OpError> {
        silence.validate().map_err(OpError::Invalid)?;
        self.silences.push(silence.clone());
        let mut step = Step::from(self.sync_all_silences(ctx, now));
        step.silences.push(silence.clone());
        if let Err(e) = pipeline::commit(ctx, self, now, step) {
            self.silences.retain(|s| s.id != silence.id);
            return Err(e);
        }
        Ok(silence)
    }

    /// Ends a silence now; its alerts resume.
    pub fn expire_silence(
        &mut self,
        ctx: &Context,
        id: &str,
        now: Timestamp,
    ) -> Result<Silence, OpError> {
        let Some(s) = self.silences.iter_mut().find(|s| s.id == id) else {
            return Err(OpError::NotFound(format!("no silence with id {id}")));
        };
        if s.ends_at > now {
            s.ends_at = now.max(s.starts_at);
            if s.starts_at > now {
                s.starts_at = now;
            }
        }
        let expired = s.clone();
        let mut step = Step::from(self.sync_all_silences(ctx, now));
        step.silences.push(expired.clone());
        pipeline::commit(ctx, self, now, step)?;
        Ok(expired)
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

    pub fn view(&self, alert: &Alert) -> AlertView {
        AlertView {
            alert: alert.clone(),
            annotations: self.engine.annotations(alert),
            severity: alert.labels.get("severity").unwrap_or("").to_string(),
        }
    }

    /// Every alert that is not inactive, newest incident first.
    pub fn alerts(&self) -> Vec<AlertView> {
        let mut out: Vec<AlertView> = self
            .engine
            .alerts()
            .filter(|a| a.state != State::Inactive)
            .map(|a| self.view(a))
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
fn metrics_read_by(set: &RuleSet) -> HashMap<String, Vec<usize>> {
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
