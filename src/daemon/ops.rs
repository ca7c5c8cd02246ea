//! The operations that change alert state from outside the loop: samples pushed
//! or scraped, rules reloaded, an operator's ack, unack or resolve, silences added
//! or expired. Each runs with the core locked and ends in the commit pipeline.

use std::sync::Arc;

use super::observed::RuleEvaluation;
use super::pipeline::{self, Step};
use super::state::{Core, metrics_read_by};
use super::{AlertView, Context, OpError};
use crate::alert::{Event, State};
use crate::clock::Timestamp;
use crate::engine::Outcome;
use crate::escalation::Address;
use crate::metrics::Metrics;
use crate::rules::RuleSet;
use crate::series::{IncomingSample, Sample, SeriesError};
use crate::silence::{Force, Silence, Status};

impl Core {
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
        let all: Vec<usize>;
        let rules = match only {
            Some(rules) => rules,
            None => {
                all = (0..self.engine.rules().alerts.len()).collect();
                &all
            }
        };
        // One rule at a time, so each one's time is known (the rules page shows it).
        let mut outcome = Outcome::default();
        let set = self.engine.rules().clone();
        for &i in rules {
            let one = std::time::Instant::now();
            outcome.absorb(self.engine.evaluate_rules(&self.series, now, &[i]));
            if let Some(rule) = set.alerts.get(i) {
                let took = one.elapsed();
                let last = RuleEvaluation { at: now, took };
                match self.observed.evaluations.get_mut(&rule.name) {
                    Some(e) => *e = last,
                    None => {
                        self.observed.evaluations.insert(rule.name.clone(), last);
                    }
                }
            }
        }
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
        self.arm_all(ctx, now);
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
        let fp = self.find(ctx, id)?;
        let outcome = self.engine.apply(fp, &event, now)?;
        pipeline::commit(ctx, self, now, Step::from(outcome))?;
        Ok(self.view(ctx, self.engine.alert(fp).expect("just acted on")))
    }

    /// Applies an operator's event to every alert that still fires and whose current
    /// occurrence paged one of `addresses` (`ACK ALL` by SMS: everything that paged
    /// this phone), in one commit. An alert the event no longer applies to is left
    /// alone. Returns the alerts it changed, by incident.
    pub fn act_paged(
        &mut self,
        ctx: &Context,
        addresses: &[Address],
        event: Event,
        now: Timestamp,
    ) -> Result<Vec<AlertView>, OpError> {
        let paged: Vec<_> = self
            .escalations
            .values()
            .filter(|e| e.notified.iter().any(|a| addresses.contains(a)))
            .filter(|e| {
                self.engine
                    .alert(e.fingerprint)
                    .is_some_and(|a| a.state == State::Firing && a.incident == e.incident)
            })
            .map(|e| e.fingerprint)
            .collect();
        let mut outcome = Outcome::default();
        let mut done = Vec::new();
        for fp in paged {
            if let Ok(o) = self.engine.apply(fp, &event, now) {
                outcome.absorb(o);
                done.push(fp);
            }
        }
        if !done.is_empty() {
            pipeline::commit(ctx, self, now, Step::from(outcome))?;
        }
        let mut views: Vec<AlertView> = done
            .iter()
            .filter_map(|fp| self.engine.alert(*fp))
            .map(|a| self.view(ctx, a))
            .collect();
        views.sort_by_key(|v| v.alert.incident);
        Ok(views)
    }

    /// Stores a new silence (validated, within `[limits]`, one that matches every
    /// alert only if forced) and applies it to the alerts at once.
    pub fn add_silence(
        &mut self,
        ctx: &Context,
        silence: Silence,
        force: Force,
        now: Timestamp,
    ) -> Result<Silence, OpError> {
        silence.validate().map_err(OpError::Invalid)?;
        silence
            .within(ctx.config.limits.max_silence_duration, force)
            .map_err(OpError::Invalid)?;
        let silence = Silence {
            updated_at: Some(now),
            ..silence
        };
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
            s.updated_at = Some(now);
        }
        let expired = s.clone();
        let mut step = Step::from(self.sync_all_silences(ctx, now));
        step.silences.push(expired.clone());
        pipeline::commit(ctx, self, now, step)?;
        Ok(expired)
    }

    /// Changes the silence `id` to `new`, as Alertmanager's `POST /api/v2/silences`
    /// with an id does: in place when the matchers are the same and the change
    /// does not rewrite history (an active silence keeps its start and may not end
    /// in the past; a pending one may not start in the past); otherwise the old one
    /// is expired and `new`, under its own id, takes its place. Returns the silence
    /// that stands.
    pub fn update_silence(
        &mut self,
        ctx: &Context,
        id: &str,
        new: Silence,
        now: Timestamp,
    ) -> Result<Silence, OpError> {
        new.validate().map_err(OpError::Invalid)?;
        // A change is bounded as a new silence is (amtool cannot force one), from
        // when it takes effect: a start already past counts from now.
        let effective = Silence {
            starts_at: new.starts_at.max(now),
            ..new.clone()
        };
        effective
            .within(ctx.config.limits.max_silence_duration, Force::No)
            .map_err(OpError::Invalid)?;
        let Some(index) = self.silences.iter().position(|s| s.id == id) else {
            return Err(OpError::NotFound(format!("no silence with id {id}")));
        };
        let before = self.silences.clone();
        let prev = &mut self.silences[index];
        let in_place = prev.matchers == new.matchers
            && match prev.status(now) {
                Status::Active => {
                    prev.starts_at.0 / 1000 == new.starts_at.0 / 1000 && new.ends_at >= now
                }
                Status::Pending => new.starts_at >= now,
                Status::Expired => false,
            };
        let mut step_silences = Vec::new();
        let standing = if in_place {
            *prev = Silence {
                id: prev.id.clone(),
                updated_at: Some(now),
                ..new
            };
            step_silences.push(prev.clone());
            prev.clone()
        } else {
            if prev.status(now) != Status::Expired {
                prev.ends_at = now.max(prev.starts_at);
                prev.starts_at = prev.starts_at.min(now);
                prev.updated_at = Some(now);
                step_silences.push(prev.clone());
            }
            let replacement = Silence {
                starts_at: new.starts_at.max(now),
                updated_at: Some(now),
                ..new
            };
            replacement.validate().map_err(OpError::Invalid)?;
            self.silences.push(replacement.clone());
            step_silences.push(replacement.clone());
            replacement
        };
        let mut step = Step::from(self.sync_all_silences(ctx, now));
        step.silences = step_silences;
        if let Err(e) = pipeline::commit(ctx, self, now, step) {
            self.silences = before;
            return Err(e);
        }
        Ok(standing)
    }
}
