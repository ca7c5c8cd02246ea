//! Retention: resolved incidents and their timelines older than
//! `storage.retention` are pruned, so the store and the memory stay flat however
//! long the daemon runs. A sweep is a deadline of the one queue (`Due::Retention`):
//! it takes the alerts in fingerprint order, a bounded batch per turn, so a sweep
//! over many alerts is many short turns and intake waits for none of them.
//!
//! What goes: an alert resolved before the horizon (`now - retention`), with
//! nothing owed for it, is forgotten whole (its record, timeline, escalation and
//! message references); of any other alert, the timeline entries from before both
//! the horizon and its current occurrence (incidents that ended before it began).
//! The incident counter is never touched: a number is never handed out twice, and
//! one that is gone is reported as past retention.

use std::time::Duration;

use super::schedule::EVERY;
use super::state::Core;
use super::{Context, OpError};
use crate::alert::{Alert, State};
use crate::clock::Timestamp;
use crate::labels::Fingerprint;
use crate::store::{Batch, Durability, StoreError};

/// Alerts looked at per turn: one commit of at most this many deletions.
pub(super) const BATCH: usize = 1_000;
/// Between two turns of a sweep: room for intake.
pub(super) const PACE: Duration = Duration::from_millis(50);
/// What a turn pruned.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Pruned {
    pub alerts: usize,
    pub timelines: usize,
}

/// One turn of the sweep at `now`: the next batch of alerts, pruned in one commit
/// (deferred: a prune lost in a crash is done again by the next sweep), and the
/// next turn armed.
pub(super) fn turn(ctx: &Context, core: &mut Core, now: Timestamp) -> Result<Pruned, StoreError> {
    if core.retention.left.is_empty() {
        let mut all: Vec<Fingerprint> = core.engine.alerts().map(|a| a.fingerprint).collect();
        all.sort_unstable_by(|a, b| b.cmp(a));
        core.retention.left = all;
    }
    let horizon = now - ctx.config.storage.retention;
    let take = core.retention.left.len().saturating_sub(BATCH);
    let batch_of = core.retention.left.split_off(take);
    let pending = core.outbox.pending_alerts();
    let mut batch = Batch::default();
    for fp in batch_of.into_iter().rev() {
        let Some(alert) = core.engine.alert(fp) else {
            continue;
        };
        if past_retention(alert, horizon)
            && !pending.contains(&fp)
            && !core.escalations.contains_key(&fp)
        {
            batch.forgotten.push(fp);
        } else {
            let cutoff = occurrence_start(alert).map_or(horizon, |t| t.min(horizon));
            batch.timeline_before.push((fp, cutoff));
        }
    }
    let pruned = Pruned {
        alerts: batch.forgotten.len(),
        timelines: batch.timeline_before.len(),
    };
    let committed = if batch.is_empty() {
        Ok(())
    } else {
        ctx.store.commit(&batch, Durability::Deferred)
    };
    if committed.is_ok() {
        for fp in &batch.forgotten {
            core.engine.forget_pruned(*fp);
            core.arm_alert(ctx, *fp, now);
        }
        ctx.metrics.pruned_alerts.inc_by(pruned.alerts as u64);
    }
    core.retention.next = Some(if core.retention.left.is_empty() {
        now + EVERY
    } else {
        now + PACE
    });
    committed.map(|()| pruned)
}

/// Whether `alert` is an incident that resolved before `horizon`.
fn past_retention(alert: &Alert, horizon: Timestamp) -> bool {
    matches!(alert.state, State::Resolved | State::Inactive)
        && alert.resolved_at.is_some_and(|t| t < horizon)
}

/// When the alert's current occurrence began: entries before belong to earlier
/// incidents, which ended before it.
fn occurrence_start(alert: &Alert) -> Option<Timestamp> {
    match (alert.active_since, alert.fired_at) {
        (Some(a), Some(f)) => Some(a.min(f)),
        (a, f) => a.or(f),
    }
}

/// Why an incident number names no alert held now: past retention, or its alert
/// fired again since under a newer number. `None` when the number was never
/// handed out.
pub(super) fn gone(ctx: &Context, core: &Core, id: u64) -> Option<String> {
    if id == 0 || id >= core.engine.next_incident() {
        return None;
    }
    let retention = humantime::format_duration(ctx.config.storage.retention);
    let again = ctx
        .store
        .incident(id)
        .ok()
        .flatten()
        .and_then(|fp| core.engine.alert(fp))
        .and_then(|a| a.incident);
    Some(match again {
        Some(newer) if newer != id => {
            format!("incident {id} is over: its alert fired again as incident {newer}")
        }
        _ => format!(
            "incident {id} is past retention: resolved incidents are kept for {retention} (storage.retention)"
        ),
    })
}

impl Core {
    /// [`Core::resolve_id`], saying why an incident number names no alert held
    /// now (past retention, or fired again since): reads the store.
    pub fn find(&self, ctx: &Context, id: &str) -> Result<Fingerprint, OpError> {
        self.resolve_id(id).map_err(|e| {
            let gone = id.parse::<u64>().ok().and_then(|n| gone(ctx, self, n));
            gone.map_or(e, OpError::NotFound)
        })
    }
}
