//! A turn of the loop: what happens to the state when deadlines come (when each is
//! owed is `Core::arm`'s business, in `state.rs`).

use super::pipeline::{self, Step};
use super::schedule::Due;
use super::state::Core;
use super::{Context, OpError};
use crate::alert::Event;
use crate::clock::Timestamp;
use crate::engine::Outcome;

/// What a turn of the loop leaves to its async part.
#[derive(Debug, Default)]
pub(super) struct Turn {
    /// Messages may be due.
    pub deliveries: bool,
    /// Reports due now, by index in the config.
    pub reports: Vec<usize>,
    /// Alertmanagers to ask what they still hold, by index in the config.
    pub upstream_watches: Vec<usize>,
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
                let expired = core.when(ctx, d, now).is_some_and(|t| t <= now);
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
            Due::Retention => match super::retention::turn(ctx, core, now) {
                Ok(p) if p.alerts > 0 => {
                    tracing::info!(alerts = p.alerts, "pruned alerts past retention")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot prune past retention; trying again at the next sweep")
                }
            },
            Due::Upstream(i) => turn.upstream_watches.push(*i),
        }
        if !matches!(
            d,
            Due::Evaluation | Due::Deliveries | Due::Report(_) | Due::Upstream(_)
        ) {
            rearm.push(d.clone());
        }
    }
    if silences_changed {
        outcome.absorb(core.sync_all_silences(ctx, now));
    }
    let step = Step {
        outcome,
        escalations_due,
        ..Step::default()
    };
    let committed = pipeline::commit(ctx, core, now, step);
    // Re-armed from the state as it is now, committed or restored.
    for d in rearm {
        core.arm(ctx, d, now);
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
