//! Delivery: the messages the outbox holds leave through the channels, one at a
//! time per address, each settled in the store (delivered and logged under its
//! idempotency key, retried with backoff, or handed to the policy's fallback).
//!
//! Resolve wins: what leaves is checked against the alert as it is when it leaves,
//! not as it was when the message was owed. A page for an alert acknowledged or
//! resolved since (a group wait, a phone window, a retry) is withdrawn and says so
//! on the timeline.

use super::schedule::Due;
use super::state::Core;
use super::{Context, OpError};
use crate::alert::{Alert, NotifyReason, State, TimelineEntry};
use crate::clock::Timestamp;
use crate::escalation::Address;
use crate::escalation::state::Resolver;
use crate::labels::Labels;
use crate::notify::{Channels, SendError};
use crate::outbox::{self, Delivery, DueMessage, Settled};
use crate::store::{Batch, Durability};

/// A message taken from the outbox, with what its send needs from the store.
pub(super) struct Outgoing {
    pub due: DueMessage,
    /// The notification log has every key of it: sent before a crash, not again.
    pub already_sent: bool,
}

/// Takes the messages due at `now`, withdrawing those no longer true, and reads
/// what each send needs. Blocking.
pub(super) fn take(ctx: &Context, core: &mut Core, now: Timestamp) -> Vec<Outgoing> {
    let engine = &core.engine;
    let taken = core
        .outbox
        .take_due(now, |d| still_owed(d, engine.alert(d.alert.fingerprint)));
    // A page leaving is what makes its address one to tell of the ack and the
    // resolve. Marked here, in memory; written with the page's settlement, so no
    // write waits in front of the send (after a crash, pages still owed count as
    // gone: see `Core::open`).
    for m in taken.messages.iter().filter(|m| m.message.reason.is_page()) {
        for alert in &m.message.alerts {
            if let Some(esc) = core.escalations.get_mut(&alert.fingerprint)
                && esc.incident == alert.incident
            {
                esc.paged(&m.address);
            }
        }
    }
    if !taken.withdrawn.delete.is_empty() {
        // Deferred: lost in a crash, the same deliveries are withdrawn again.
        if let Err(e) = write(ctx, &settlement(now, taken.withdrawn, None)) {
            tracing::error!(error = %e, "cannot record withdrawn deliveries");
        }
    }
    let mut out = Vec::with_capacity(taken.messages.len());
    for mut due in taken.messages {
        let keys = core.outbox.keys(&due.deliveries);
        let store = &ctx.store;
        let already_sent =
            !keys.is_empty() && keys.iter().all(|k| store.was_sent(k).unwrap_or(false));
        if let [alert] = due.message.alerts.as_slice() {
            let key = reference_key(&due.address, alert.incident);
            due.message.update = store.reference(alert.fingerprint, &key).ok().flatten();
        }
        out.push(Outgoing { due, already_sent });
    }
    core.arm(ctx, Due::Deliveries, now);
    ctx.metrics.outbox_pending.set(core.outbox.len() as i64);
    out
}

/// Sends one message (unless the log says it went before a crash).
pub(super) async fn send(ctx: &Context, channels: &Channels, out: &Outgoing) -> outbox::Outcome {
    if out.already_sent {
        return outbox::Outcome::AlreadySent;
    }
    let m = &out.due;
    // A replica that lost the lease on a shared state sends nothing more: the one
    // that took it over owes the message now (under the same idempotency key).
    if ctx.store.lease().is_none() {
        return outbox::Outcome::Failed(crate::notify::SendError::Retry {
            reason: "this replica lost the lease on the state".into(),
            after: None,
        });
    }
    let result = match channels.send(&m.address, &m.message).await {
        Ok(d) => outbox::Outcome::Delivered {
            reference: d.reference,
        },
        Err(e) => outbox::Outcome::Failed(e),
    };
    count(ctx, m, &result);
    result
}

/// Records what happened to one message, in one transaction. Blocking.
pub(super) fn settle(
    ctx: &Context,
    core: &mut Core,
    m: &DueMessage,
    result: &outbox::Outcome,
    now: Timestamp,
) -> Result<(), OpError> {
    let settled = core.outbox.settle(m, result, now);
    let mut fallbacks = Vec::new();
    for failed in &settled.fallback {
        for d in fallback_for(ctx, failed, now) {
            fallbacks.push(core.outbox.add(d));
        }
    }
    let mut batch = settlement(now, settled, Some((&m.address, fallbacks)));
    // The mark `take` made when the page left, written with its fate.
    if m.message.reason.is_page() {
        for alert in &m.message.alerts {
            if let Some(esc) = core.escalations.get(&alert.fingerprint)
                && esc.incident == alert.incident
            {
                batch
                    .escalations
                    .push((alert.fingerprint, Some(esc.clone())));
            }
        }
    }
    let recorded = write(ctx, &batch);
    core.arm(ctx, Due::Deliveries, now);
    ctx.metrics.outbox_pending.set(core.outbox.len() as i64);
    recorded
}

/// The batch that records what happened to messages: deliveries done with or
/// rescheduled, keys sent, references, timeline notes, and fallbacks owed.
fn settlement(now: Timestamp, settled: Settled, sent: Option<(&Address, Vec<Delivery>)>) -> Batch {
    let via = sent.as_ref().map(|(a, _)| a.channel().to_string());
    let mut batch = Batch {
        outbox_done: settled.delete,
        sent: settled.sent.into_iter().map(|k| (k, now)).collect(),
        references: settled
            .references
            .into_iter()
            .map(|(a, addr, r)| (a.fingerprint, reference_key(&addr, a.incident), r))
            .collect(),
        ..Default::default()
    };
    batch.outbox = settled.put;
    if let Some((_, fallbacks)) = sent {
        batch.outbox.extend(fallbacks);
    }
    for (alert, note) in settled.notes {
        batch.timeline.push((
            alert.fingerprint,
            TimelineEntry {
                at: now,
                from: alert.state,
                to: alert.state,
                actor: None,
                via: via.clone(),
                reason: note,
                note: None,
            },
        ));
    }
    batch
}

/// Writes what delivery learned. Not synced: lost in a crash, a message is sent
/// again under the same key, never lost; the next durable commit (at the latest the
/// next evaluation) carries it to disk.
fn write(ctx: &Context, batch: &Batch) -> Result<(), OpError> {
    let committed = ctx.store.commit(batch, Durability::Deferred);
    ctx.set_store_ok(committed.is_ok());
    committed?;
    Ok(())
}

/// Whether a delivery still says something true about its alert as it is now: a
/// page only while the incident it pages for fires unacknowledged; an ack update
/// only while the ack stands; a resolved notice always (it ends what was said).
fn still_owed(d: &Delivery, alert: Option<&Alert>) -> Result<(), String> {
    let incident = d.alert.incident;
    let current = alert.filter(|a| a.incident == incident);
    let holds = match d.reason {
        NotifyReason::Resolved => true,
        NotifyReason::Acknowledged => current.is_some_and(|a| {
            a.state == State::Acknowledged || (a.state == State::Suppressed && a.ack.is_some())
        }),
        NotifyReason::Firing
        | NotifyReason::Unacknowledged
        | NotifyReason::AckExpired
        | NotifyReason::SilenceEnded => current.is_some_and(|a| a.state == State::Firing),
    };
    if holds {
        return Ok(());
    }
    Err(match current {
        Some(a) => format!("the alert is {} now", a.state),
        None => "its incident is over".to_string(),
    })
}

fn count(ctx: &Context, m: &DueMessage, result: &outbox::Outcome) {
    let channel = m.address.channel().to_string();
    match result {
        outbox::Outcome::Delivered { .. } => {
            ctx.metrics
                .notifications
                .get_or_create(&vec![
                    ("channel".to_string(), channel),
                    ("reason".to_string(), m.message.reason.name().to_string()),
                ])
                .inc();
        }
        outbox::Outcome::Failed(e) => {
            let kind = match e {
                SendError::Retry { .. } => "retry",
                SendError::Permanent { .. } => "permanent",
            };
            tracing::warn!(address = %m.address, error = %e, kind, "delivery failed");
            ctx.metrics
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

/// The deliveries that stand in for one that keeps failing: the policy's fallback
/// addresses, other than the failing one.
fn fallback_for(ctx: &Context, failed: &Delivery, now: Timestamp) -> Vec<Delivery> {
    let config = &ctx.config;
    let labels = Labels::from_pairs(failed.alert.labels.clone());
    let policy = config.routing.policy_for(&labels, None);
    let slack_channel = |severity: &str| ctx.slack_channel(severity);
    let resolver = Resolver {
        directory: &config.directory,
        routing: &config.routing,
        slack_channel: &slack_channel,
    };
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

/// Where a message reference is kept: per address and incident, so a new
/// occurrence of an alert starts a new Slack message and a new mail thread.
fn reference_key(address: &Address, incident: Option<u64>) -> String {
    format!("{address}#{}", incident.unwrap_or(0))
}
