//! Time in the daemon: when each [`Due`] is owed (computed from the state it belongs
//! to, never stored twice), and what happens when it comes.
//!
//! `arm` is the one place a deadline is set. Handlers re-check the state before
//! acting, so a deadline that state moved later is simply re-armed; one that state
//! moved earlier is re-armed by the commit that moved it.

use super::pipeline::{self, Step};
use super::schedule::Due;
use super::state::Core;
use super::{Context, OpError};
use crate::alert::{Event, State};
use crate::clock::Timestamp;
use crate::engine::{self, Outcome};
use crate::labels::Fingerprint;

/// When `due` is owed, from the state it belongs to; `None` when nothing is.
fn when(ctx: &Context, core: &Core, due: &Due, now: Timestamp) -> Option<Timestamp> {
    let config = &ctx.config;
    match due {
        Due::Silence(id) => {
            let s = core.silences.iter().find(|s| &s.id == id)?;
            [s.starts_at, s.ends_at].into_iter().find(|t| *t > now)
        }
        Due::Maintenance(i) => config.maintenance.get(*i)?.next_change(now),
        Due::Expiry(fp) => engine::expires_at(core.engine.alert(*fp)?),
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
        Due::Report(i) => {
            let schedule = config.reports.get(*i)?;
            let state = core.reports.get(*i)?;
            match state.failed_at {
                Some(failed) => Some(failed + super::reports::RETRY_AFTER),
                None => schedule
                    .when
                    .next_after(state.last_ran.unwrap_or(ctx.opened_at)),
            }
        }
    }
}

/// Sets `due`'s deadline from the state. A deadline already past is kept at `now`:
/// the loop takes it in its next turn.
pub(super) fn arm(ctx: &Context, core: &mut Core, due: Due, now: Timestamp) {
    let at = when(ctx, core, &due, now);
    core.schedule.set(due, at);
    ctx.deadline_set(at);
}

/// The deadlines that follow one alert's state.
pub(super) fn arm_alert(ctx: &Context, core: &mut Core, fp: Fingerprint, now: Timestamp) {
    arm(ctx, core, Due::Expiry(fp), now);
    arm(ctx, core, Due::AckTimeout(fp), now);
    arm(ctx, core, Due::Flapping(fp), now);
}

/// Every deadline, from the whole state: at start, and after the state was reloaded
/// from the store or the rules changed.
pub(super) fn arm_all(ctx: &Context, core: &mut Core, now: Timestamp) {
    let evaluation = core.schedule.when(&Due::Evaluation).unwrap_or(now);
    core.schedule.clear();
    core.schedule.set(Due::Evaluation, Some(evaluation));
    let alerts: Vec<Fingerprint> = core.engine.alerts().map(|a| a.fingerprint).collect();
    for fp in alerts {
        arm_alert(ctx, core, fp, now);
    }
    let escalations: Vec<Fingerprint> = core.escalations.keys().copied().collect();
    for fp in escalations {
        arm(ctx, core, Due::Escalation(fp), now);
    }
    let silences: Vec<String> = core.silences.iter().map(|s| s.id.clone()).collect();
    for id in silences {
        arm(ctx, core, Due::Silence(id), now);
    }
    for i in 0..ctx.config.maintenance.len() {
        arm(ctx, core, Due::Maintenance(i), now);
    }
    for i in 0..ctx.config.reports.len() {
        arm(ctx, core, Due::Report(i), now);
    }
    arm(ctx, core, Due::Deliveries, now);
    ctx.deadline_set(Some(evaluation));
}

/// What a turn of the loop leaves to its async part.
#[derive(Debug, Default)]
pub(super) struct Turn {
    /// Messages may be due.
    pub deliveries: bool,
    /// Reports due now, by index in the config.
    pub reports: Vec<usize>,
}

/// Takes every deadline due at `now` and does the state work they owe, in one
/// commit: silences and windows, expiries, ack timeouts, flapping, the rules'
/// evaluation, escalation levels. Deliveries and reports are left to the caller.
pub(super) fn run_due(ctx: &Context, core: &mut Core, now: Timestamp) -> Result<Turn, OpError> {
    let mut turn = Turn::default();
    let mut outcome = Outcome::default();
    let mut escalations_due = Vec::new();
    let mut silences_changed = false;
    let mut rearm = Vec::new();
    let due = core.schedule.take_due(now);
    for d in &due {
        match d {
            Due::Silence(_) | Due::Maintenance(_) => silences_changed = true,
            Due::Expiry(fp) => outcome.absorb(core.engine.expire_external([*fp], now)),
            Due::AckTimeout(fp) => {
                let expired = when(ctx, core, d, now).is_some_and(|t| t <= now);
                if expired && let Ok(o) = core.engine.apply(*fp, &Event::AckExpired, now) {
                    outcome.absorb(o);
                }
            }
            Due::Flapping(fp) => outcome.absorb(core.engine.recheck_flapping([*fp], now)),
            Due::Evaluation => {
                outcome.absorb(evaluation(ctx, core, now));
                core.schedule.set(
                    Due::Evaluation,
                    Some(now + ctx.config.rules.evaluation_interval),
                );
            }
            Due::Escalation(fp) => escalations_due.push(*fp),
            Due::Deliveries => turn.deliveries = true,
            Due::Report(i) => turn.reports.push(*i),
        }
        if !matches!(d, Due::Evaluation | Due::Deliveries | Due::Report(_)) {
            rearm.push(d.clone());
        }
    }
    if silences_changed {
        outcome.absorb(core.sync_all_silences(ctx, now));
    }
    let step = Step {
        outcome,
        escalations_due,
        silences: Vec::new(),
    };
    let committed = pipeline::commit(ctx, core, now, step);
    // Re-armed from the state as it is now, committed or restored.
    for d in rearm {
        arm(ctx, core, d, now);
    }
    if due.contains(&Due::Evaluation) {
        core.audit(ctx, now);
    }
    committed?;
    Ok(turn)
}

/// The evaluation deadline: the work that rides on the rules' interval, then every
/// rule evaluated at `now`.
fn evaluation(ctx: &Context, core: &mut Core, now: Timestamp) -> Outcome {
    if !ctx.store_ok() {
        // A quiet daemon may have nothing to write for hours: an empty commit
        // tells when the disk takes writes again, so /readyz recovers with it.
        let ok = ctx
            .store
            .commit(&Default::default(), crate::store::Durability::Immediate)
            .is_ok();
        ctx.set_store_ok(ok);
    }
    if let Err(e) = ctx.store.sync() {
        tracing::warn!(error = %e, "cannot sync settled deliveries; retried at the next evaluation");
    }
    core.series.trim(now);
    ctx.metrics.series.set(core.series.series_count() as i64);
    let mut outcome = Outcome::default();
    // `endsAt` refreshes kept in memory since the last evaluation are written now.
    core.engine.flush_refreshed(&mut outcome);
    outcome.absorb(core.evaluate(ctx, now, None));
    outcome
}
