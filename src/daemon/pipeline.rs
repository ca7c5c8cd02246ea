//! The commit pipeline. Whatever changed alert state (an evaluation, an alert from
//! another system, an operator, a deadline) goes through the same stages in the same
//! order and leaves as one transaction; only then may anything be sent.
//!
//! ```text
//! mute ─► escalate ─► enqueue ─► write ─► schedule
//! ```
//!
//! - **mute**: the silences of the alerts this step touched are brought up to date,
//!   and an alert silenced from its first moment does not announce its firing.
//! - **escalate**: each notification moves its alert's escalation (fired, acked,
//!   resolved, resumed), each escalation whose deadline came runs its next level,
//!   and alerts that stopped paging without a notification pause or end theirs.
//! - **enqueue**: the messages owed become outbox deliveries (group wait, phone
//!   window).
//! - **write**: everything in one store transaction; on failure the in-memory
//!   state goes back to what is durable and the step is refused.
//! - **schedule**: the deadlines of what was written are re-armed.

use std::collections::HashSet;
use std::sync::Arc;

use super::state::Core;
use super::{Context, Due, OpError};
use crate::alert::{NotifyReason, State};
use crate::clock::Timestamp;
use crate::engine::{Notification, Outcome};
use crate::escalation::Address;
use crate::escalation::Policy;
use crate::escalation::state::{self as escalation, Escalation, Owed};
use crate::labels::Fingerprint;
use crate::notify::AlertSnapshot;
use crate::silence::Silence;
use crate::store::{Batch, Durability};

/// One step on its way through the pipeline.
#[derive(Debug, Default)]
pub(super) struct Step {
    /// What the engine changed, and the notifications it owes.
    pub outcome: Outcome,
    /// Alerts whose escalation deadline has come: their next level runs.
    pub escalations_due: Vec<Fingerprint>,
    /// Silences to write (created, or expired early).
    pub silences: Vec<Silence>,
    /// Acked alerts whose silence in an Alertmanager ends soon: the ack is told
    /// there again, which renews it.
    pub renew_upstream: Vec<(Fingerprint, Address)>,
}

impl From<Outcome> for Step {
    fn from(outcome: Outcome) -> Step {
        Step {
            outcome,
            ..Step::default()
        }
    }
}

/// Messages one alert owes, with the alert as they must show it.
struct Paged {
    alert: Arc<AlertSnapshot>,
    group: String,
    owed: Vec<Owed>,
}

/// Runs `step` through every stage. Durable first, then scheduled: nothing is sent
/// before `write` returned.
pub(super) fn commit(
    ctx: &Context,
    core: &mut Core,
    now: Timestamp,
    mut step: Step,
) -> Result<(), OpError> {
    mute(ctx, core, now, &mut step.outcome);
    let (escalations, mut paged) = escalate(ctx, core, now, &mut step);
    paged.extend(renewals(ctx, core, now, &step.renew_upstream));
    let mut batch = Batch {
        escalations,
        silences: step.silences,
        ..Batch::default()
    };
    enqueue(core, now, paged, &mut batch);
    let changes = step.outcome.changes;
    batch.alerts = changes.alerts;
    batch.removed = changes.removed;
    batch.timeline = changes.timeline;
    batch.next_incident = changes.next_incident;
    write(ctx, core, now, &batch)?;
    schedule(ctx, core, now, &batch, &step.outcome.expiring_sooner);
    Ok(())
}

/// Silences change on their own only with time (their own deadlines) or when one
/// is added or expired (synced there): here only the alerts this step touched need
/// a look.
fn mute(ctx: &Context, core: &mut Core, now: Timestamp, outcome: &mut Outcome) {
    if !outcome.changes.alerts.is_empty() {
        let silences = core.active_silences(ctx, now);
        let touched: Vec<Fingerprint> = outcome
            .changes
            .alerts
            .iter()
            .map(|a| a.fingerprint)
            .collect();
        let silenced = core.engine.sync_silences_of(touched, &silences, now);
        outcome.absorb(silenced);
    }
    // An alert that appeared in this very step under an active silence was
    // silenced from its first moment: its firing is not announced.
    let engine = &core.engine;
    outcome.notifications.retain(|n| {
        n.reason != NotifyReason::Firing
            || engine
                .alert(n.alert)
                .is_none_or(|a| a.state != State::Suppressed)
    });
}

/// The escalation records to write, and the messages owed.
type Escalated = (Vec<(Fingerprint, Option<Escalation>)>, Vec<Paged>);

fn escalate(ctx: &Context, core: &mut Core, now: Timestamp, step: &mut Step) -> Escalated {
    let routing = &ctx.config.routing;
    let slack_channel = |severity: &str| ctx.slack_channel(severity);
    let resolver = escalation::Resolver {
        directory: &ctx.config.directory,
        routing,
        slack_channel: &slack_channel,
    };
    let mut records = Vec::new();
    let mut paged = Vec::new();
    let outcome = &mut step.outcome;
    let notified: HashSet<Fingerprint> = outcome.notifications.iter().map(|n| n.alert).collect();
    for n in &outcome.notifications {
        let Some(alert) = core.engine.alert(n.alert) else {
            continue;
        };
        tracing::info!(alert_id = %alert.fingerprint, incident = alert.incident, reason = %n.reason, "notification");
        let current = core.escalations.remove(&n.alert);
        let policy = routing.policy_for(&alert.labels, core.engine.escalation_of(alert));
        let (mut next, mut owed) =
            escalation::on_notification(current, n.reason, alert, policy, &resolver, now);
        let mut snapshot = AlertSnapshot::of(&n.then, core.engine.annotations(&n.then));
        if n.reason == NotifyReason::Resolved {
            // Who resolved it and why, for the notice: said on the timeline entry.
            let by_hand = outcome
                .changes
                .timeline
                .iter()
                .rev()
                .find(|(fp, e)| *fp == n.alert && e.to == State::Resolved && e.actor.is_some());
            if let Some((_, entry)) = by_hand {
                snapshot.resolved_by = entry.actor.clone();
                snapshot.resolve_note = entry.note.clone();
            }
        }
        upstream(ctx, n, policy, &mut next, &mut owed, now);
        paged.push(Paged {
            alert: Arc::new(snapshot),
            group: routing.group_key(&alert.labels),
            owed,
        });
        if let Some(e) = &next {
            core.escalations.insert(n.alert, e.clone());
        }
        records.push((n.alert, next));
    }
    // Alerts that stopped paging without a notification (acked by a silence,
    // resolved while flapping) pause or end their escalation.
    let changed: Vec<Fingerprint> = outcome
        .changes
        .alerts
        .iter()
        .map(|a| a.fingerprint)
        .filter(|fp| !notified.contains(fp) && core.escalations.contains_key(fp))
        .collect();
    for fp in changed {
        let Some(esc) = core.escalations.remove(&fp) else {
            continue;
        };
        let next = match core.engine.alert(fp).map(|a| a.state) {
            Some(State::Firing) => Some(esc),
            Some(State::Acknowledged | State::Suppressed) => Some(Escalation {
                due_at: None,
                ..esc
            }),
            _ => None,
        };
        if let Some(e) = &next {
            core.escalations.insert(fp, e.clone());
        }
        records.push((fp, next));
    }
    // Escalations whose deadline came: the next level, or a repeat of the last.
    for fp in std::mem::take(&mut step.escalations_due) {
        let Some(esc) = core.escalations.remove(&fp) else {
            continue;
        };
        if esc.due_at.is_none_or(|t| t > now) {
            core.escalations.insert(fp, esc);
            continue;
        }
        let Some(alert) = core.engine.alert(fp) else {
            records.push((fp, None));
            continue;
        };
        let (next, owed) = escalation::on_due(esc, alert, &resolver, now);
        paged.push(Paged {
            alert: Arc::new(AlertSnapshot::of(alert, core.engine.annotations(alert))),
            group: routing.group_key(&alert.labels),
            owed,
        });
        if let Some(e) = &next {
            core.escalations.insert(fp, e.clone());
        }
        records.push((fp, next));
    }
    (records, paged)
}

/// What a notification owes the Alertmanager its alert came from, if one is
/// configured: an ack silences the alert there (and the address is remembered in
/// the escalation, so the resolve expires the silence with everyone else's
/// notice); an unack or an expired ack expires it now.
fn upstream(
    ctx: &Context,
    n: &Notification,
    policy: &Policy,
    next: &mut Option<Escalation>,
    owed: &mut Vec<Owed>,
    now: Timestamp,
) {
    let Some(external) = &n.then.external else {
        return;
    };
    let Some(am) = ctx.config.channels.alertmanager_of(
        external.external_url.as_deref(),
        external.generator_url.as_deref(),
    ) else {
        return;
    };
    let address = Address::Alertmanager {
        name: am.name.clone(),
    };
    let round = format!("{}", now.0);
    match n.reason {
        NotifyReason::Acknowledged => {
            // An alert acked while a silence of tocsin's held it never paged, so
            // it may have no escalation yet: one that waits, to remember the
            // address.
            let esc = next.get_or_insert_with(|| Escalation {
                fingerprint: n.alert,
                incident: n.incident,
                policy: policy.name.clone(),
                started_at: now,
                next_level: 0,
                due_at: None,
                repeats: 0,
                notified: Default::default(),
            });
            esc.notified.insert(address.clone());
        }
        NotifyReason::Unacknowledged | NotifyReason::AckExpired => {
            let held = next.as_mut().is_some_and(|e| e.notified.remove(&address));
            if !held {
                return;
            }
        }
        NotifyReason::Firing | NotifyReason::Resolved | NotifyReason::SilenceEnded => return,
    }
    owed.push(Owed {
        address,
        reason: n.reason,
        level: 0,
        round,
    });
}

/// The acks told again upstream, to renew their silences there.
fn renewals(
    ctx: &Context,
    core: &Core,
    now: Timestamp,
    renew: &[(Fingerprint, Address)],
) -> Vec<Paged> {
    renew
        .iter()
        .filter_map(|(fp, address)| {
            let alert = core.engine.alert(*fp)?;
            Some(Paged {
                alert: Arc::new(AlertSnapshot::of(alert, core.engine.annotations(alert))),
                group: ctx.config.routing.group_key(&alert.labels),
                owed: vec![Owed {
                    address: address.clone(),
                    reason: NotifyReason::Acknowledged,
                    level: 0,
                    round: format!("renew.{}", now.0),
                }],
            })
        })
        .collect()
}

fn enqueue(core: &mut Core, now: Timestamp, paged: Vec<Paged>, batch: &mut Batch) {
    for p in paged {
        let deliveries = core.outbox.enqueue(&p.alert, p.owed, &p.group, now);
        batch.outbox.extend(deliveries);
    }
}

/// Writes the batch in one durable transaction. On failure the in-memory state is
/// put back to what the store holds, and the caller is refused.
fn write(ctx: &Context, core: &mut Core, now: Timestamp, batch: &Batch) -> Result<(), OpError> {
    if batch.is_empty() {
        return Ok(());
    }
    let committed = ctx.store.commit(batch, Durability::Immediate);
    ctx.set_store_ok(committed.is_ok());
    if let Err(e) = committed {
        core.restore(ctx, now);
        return Err(e.into());
    }
    ctx.metrics.outbox_pending.set(core.outbox.len() as i64);
    ctx.changed();
    Ok(())
}

/// Re-arms the deadlines of everything the batch wrote.
fn schedule(
    ctx: &Context,
    core: &mut Core,
    now: Timestamp,
    batch: &Batch,
    expiring_sooner: &[Fingerprint],
) {
    let alerts = batch
        .alerts
        .iter()
        .map(|a| a.fingerprint)
        .chain(batch.removed.iter().copied())
        .chain(expiring_sooner.iter().copied());
    for fp in alerts {
        core.arm_alert(ctx, fp, now);
    }
    for (fp, _) in &batch.escalations {
        core.arm(ctx, Due::Escalation(*fp), now);
    }
    for s in &batch.silences {
        core.arm(ctx, Due::Silence(Box::new(s.id.clone())), now);
    }
    if !batch.outbox.is_empty() {
        core.arm(ctx, Due::Deliveries, now);
    }
    // An ack that silenced an alert upstream starts that Alertmanager's watch.
    let silenced_upstream: Vec<usize> = batch
        .outbox
        .iter()
        .filter(|d| d.reason == NotifyReason::Acknowledged)
        .filter_map(|d| match &d.address {
            Address::Alertmanager { name } => ctx
                .config
                .channels
                .alertmanagers
                .iter()
                .position(|a| &a.name == name),
            _ => None,
        })
        .collect();
    for i in silenced_upstream {
        core.arm(ctx, Due::Upstream(i), now);
    }
}
