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
use serde::{Deserialize, Serialize};

use crate::alert::{Alert, NotifyReason, State, TimelineEntry};
use crate::clock::Timestamp;
use crate::escalation::Address;
use crate::escalation::state::Resolver;
use crate::labels::{Fingerprint, Labels};
use crate::notify::{AlertSnapshot, Channels, Message, SendError};
use crate::outbox::{self, Delivery, DueMessage, Settled};
use crate::store::{Batch, Durability};

/// A message taken from the outbox, with what its send needs from the store.
pub(super) struct Outgoing {
    pub due: DueMessage,
    /// The notification log has every key of it: sent before a crash, not again.
    pub already_sent: bool,
    /// A message whose deliveries could not be written as its own: not sent now
    /// (a failed attempt, retried).
    pub unrecorded: bool,
    /// Slack messages edited in place before `post` goes (`chat.update`): grouped
    /// messages re-rendered with their alerts as they are now, and single-alert
    /// messages of the alerts this one is about. Each is current, so sending one
    /// again after a failure is harmless.
    pub edits: Vec<Message>,
    /// What is sent whose reference is remembered for its alerts.
    post: Post,
}

/// What [`Outgoing`] posts after its edits.
enum Post {
    /// The due message itself (its `update` set to the reference it edits, if
    /// any): most messages, a storm's hundreds of alerts among them, not copied.
    Due,
    /// What is left of it once the edits took their alerts.
    Rest(Message),
    /// Nothing: the edits say it all.
    Nothing,
}

impl Outgoing {
    fn post(&self) -> Option<&Message> {
        match &self.post {
            Post::Due => Some(&self.due.message),
            Post::Rest(m) => Some(m),
            Post::Nothing => None,
        }
    }
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
    // What each message is made of is written before it leaves, so it is only
    // ever sent again whole, under its key, by whoever sends it next (a retry,
    // a restarted daemon, another replica); nothing owed later joins it. Not
    // written, it is not sent now (retried). Deferred, as a settlement: a killed
    // process's writes are in the file (another replica's: in the database); only
    // a power loss can take them, and then a message may go again under another
    // key, never not at all. Withdrawn deliveries go in the same write (lost in a
    // crash, they are withdrawn again).
    let bound: std::collections::HashSet<u64> = taken.bound.iter().map(|d| d.id).collect();
    let mut batch = settlement(now, taken.withdrawn, None);
    batch.outbox.extend(taken.bound);
    let recorded = batch.is_empty()
        || write(ctx, &batch, Durability::Deferred)
            .inspect_err(|e| tracing::error!(error = %e, "cannot record the messages taken"))
            .is_ok();
    let mut out = Vec::with_capacity(taken.messages.len());
    for mut due in taken.messages {
        let keys = core.outbox.keys(&due.deliveries);
        let store = &ctx.store;
        let already_sent =
            !keys.is_empty() && keys.iter().all(|k| store.was_sent(k).unwrap_or(false));
        let unrecorded = !recorded && due.deliveries.iter().any(|id| bound.contains(id));
        let (edits, post) = shape(ctx, core, &mut due);
        out.push(Outgoing {
            due,
            already_sent,
            unrecorded,
            edits,
            post,
        });
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
    if out.unrecorded {
        return outbox::Outcome::Failed(crate::notify::SendError::Retry {
            reason: "the message could not be recorded before sending".into(),
            after: None,
        });
    }
    // A replica that lost the lease on a shared state sends nothing more: the one
    // that took it over owes the message now (under the same idempotency key).
    if ctx.store.lease().is_none() {
        return outbox::Outcome::Failed(crate::notify::SendError::Retry {
            reason: "this replica lost the lease on the state".into(),
            after: None,
        });
    }
    let mut result = outbox::Outcome::Delivered { reference: None };
    // Edits first: a failure after the post would post it again on the retry.
    for msg in out.edits.iter().chain(out.post()) {
        result = match channels.send(&m.address, msg).await {
            Ok(d) => outbox::Outcome::Delivered {
                reference: d.reference,
            },
            Err(e) => outbox::Outcome::Failed(e),
        };
        if matches!(result, outbox::Outcome::Failed(_)) {
            break;
        }
    }
    count(ctx, m, &result);
    result
}

/// Records what happened to messages sent, all in one transaction. Blocking.
pub(super) fn settle(
    ctx: &Context,
    core: &mut Core,
    sent: Vec<(Outgoing, outbox::Outcome)>,
    now: Timestamp,
) -> Result<(), OpError> {
    let mut batch = Batch::default();
    for (out, result) in &sent {
        batch.append(settle_one(ctx, core, out, result, now));
    }
    let recorded = write(ctx, &batch, Durability::Deferred);
    core.arm(ctx, Due::Deliveries, now);
    ctx.metrics.outbox_pending.set(core.outbox.len() as i64);
    recorded
}

/// What happened to one message: the mirror updated, and the records to write.
fn settle_one(
    ctx: &Context,
    core: &mut Core,
    out: &Outgoing,
    result: &outbox::Outcome,
    now: Timestamp,
) -> Batch {
    let m = &out.due;
    let settled = core.outbox.settle(m, result, now);
    let channel = m.address.channel();
    match result {
        outbox::Outcome::Delivered { .. } => core.observed.sent(channel, now),
        outbox::Outcome::Failed(e) => core.observed.failed(channel, now, e.to_string()),
        outbox::Outcome::AlreadySent => {}
    }
    let mut fallbacks = Vec::new();
    for failed in &settled.fallback {
        for d in fallback_for(ctx, failed, now) {
            fallbacks.push(core.outbox.add(d));
        }
    }
    let mut batch = settlement(now, settled, Some((&m.address, fallbacks)));
    if let (outbox::Outcome::Delivered { reference: Some(r) }, Some(post)) = (result, out.post()) {
        batch.references = references(&m.address, post, r);
    }
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
    batch
}

/// The batch that records what happened to messages: deliveries done with or
/// rescheduled, keys sent, timeline notes, and fallbacks owed.
fn settlement(now: Timestamp, settled: Settled, sent: Option<(&Address, Vec<Delivery>)>) -> Batch {
    let via = sent.as_ref().map(|(a, _)| a.channel().to_string());
    let mut batch = Batch {
        outbox_done: settled.delete,
        sent: settled.sent.into_iter().map(|k| (k, now)).collect(),
        // Pacing and windows, for a replica that takes over.
        jobs: settled.marks,
        ..Default::default()
    };
    batch.outbox = settled.put;
    if let Some((_, fallbacks)) = sent {
        batch.outbox.extend(fallbacks);
    }
    for ((fingerprint, state), note) in settled.notes {
        batch.timeline.push((
            fingerprint,
            TimelineEntry {
                at: now,
                from: state,
                to: state,
                actor: None,
                via: via.clone(),
                reason: note,
                note: None,
            },
        ));
    }
    batch
}

/// Writes what delivery learned. A settlement is deferred: lost in a crash, a
/// message is sent again under the same key, never lost; the next durable commit
/// (at the latest the next evaluation) carries it to disk.
fn write(ctx: &Context, batch: &Batch, durability: Durability) -> Result<(), OpError> {
    let committed = ctx.store.commit(batch, durability);
    ctx.set_store_ok(committed.is_ok());
    committed?;
    ctx.changed();
    Ok(())
}

/// Whether a delivery still says something true about its alert as it is now: a
/// page only while the incident it pages for fires unacknowledged; an ack update
/// only while the ack stands; a resolved notice always (it ends what was said).
fn still_owed(d: &Delivery, alert: Option<&Alert>) -> Result<(), String> {
    let incident = d.alert.incident;
    let current = alert.filter(|a| a.incident == incident);
    let acked = |a: &Alert| {
        a.state == State::Acknowledged || (a.state == State::Suppressed && a.ack.is_some())
    };
    let holds = match (&d.address, d.reason) {
        // Upstream, the silence follows the ack: made while it stands, expired
        // once it does not (an unack taken back by a new ack keeps the silence).
        (Address::Alertmanager { .. }, NotifyReason::Acknowledged) => current.is_some_and(acked),
        (Address::Alertmanager { .. }, NotifyReason::Resolved) => true,
        (Address::Alertmanager { .. }, _) => !current.is_some_and(acked),
        (_, reason) => owed_for(reason, current, acked),
    };
    if holds {
        return Ok(());
    }
    Err(match current {
        Some(a) => format!("the alert is {} now", a.state),
        None => "its incident is over".to_string(),
    })
}

/// Whether a message for `reason` still says something true about `current`.
fn owed_for(reason: NotifyReason, current: Option<&Alert>, acked: impl Fn(&Alert) -> bool) -> bool {
    match reason {
        NotifyReason::Resolved => true,
        NotifyReason::Acknowledged => current.is_some_and(acked),
        NotifyReason::Firing
        | NotifyReason::Unacknowledged
        | NotifyReason::AckExpired
        | NotifyReason::SilenceEnded => current.is_some_and(|a| a.state == State::Firing),
    }
}

fn count(ctx: &Context, m: &DueMessage, result: &outbox::Outcome) {
    let channel = m.address.channel().to_string();
    let incidents: Vec<String> = m
        .message
        .alerts
        .iter()
        .map(|a| {
            a.incident
                .map_or_else(|| a.fingerprint.to_string(), |n| format!("#{n}"))
        })
        .collect();
    let incidents = incidents.join(",");
    match result {
        outbox::Outcome::Delivered { .. } => {
            tracing::info!(address = %m.address, reason = %m.message.reason, level = m.message.level, alerts = %incidents, key = %m.message.key, "delivered");
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
            tracing::warn!(address = %m.address, reason = %m.message.reason, level = m.message.level, alerts = %incidents, key = %m.message.key, error = %e, kind, "delivery failed");
            ctx.metrics
                .delivery_failures
                .get_or_create(&vec![
                    ("channel".to_string(), channel),
                    ("kind".to_string(), kind.to_string()),
                ])
                .inc();
        }
        outbox::Outcome::AlreadySent => {
            tracing::info!(address = %m.address, alerts = %incidents, key = %m.message.key, "already delivered before a restart; not sent again");
        }
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
            key: fallback_key(failed, &address),
            address,
            due_at: now,
            created_at: now,
            attempts: 0,
            last_error: None,
            fallback_for: Some(failed.address.clone()),
            fell_back: false,
            // The fallbacks of one message's deliveries go together.
            group: failed.message().unwrap_or(&failed.group).to_string(),
            ..failed.clone()
        })
        .collect()
}

/// The idempotency key of a fallback: the key a delivery of the same message to
/// that address has, so the same news reaches an address once however many of the
/// failing addresses fall back to it, and not again when it was paged there anyway.
fn fallback_key(failed: &Delivery, address: &Address) -> String {
    // Keys end with their address (`Outbox::enqueue`).
    match failed.key.strip_suffix(&failed.address.to_string()) {
        Some(message) => format!("{message}{address}"),
        None => format!("{}.fallback.{address}", failed.key),
    }
}

/// Where a message reference is kept: per address and incident, so a new
/// occurrence of an alert starts a new Slack message and a new mail thread.
fn reference_key(address: &Address, incident: Option<u64>) -> String {
    format!("{address}#{}", incident.unwrap_or(0))
}

// ---------------------------------------------------------------------------------
// Messages that edit earlier ones

/// A Slack message that announced several alerts, remembered once (with its first
/// alert) so that an ack or resolve of any of them edits it in place: otherwise it
/// would go on showing them firing, with live buttons.
#[derive(Serialize, Deserialize)]
struct SlackGroup {
    /// Slack's `channel:ts` of the message.
    reference: String,
    reason: NotifyReason,
    level: u32,
    at: Timestamp,
    /// Its alerts, in the order it shows them: (fingerprint, incident).
    alerts: Vec<(Fingerprint, Option<u64>)>,
}

/// What a grouped message's alerts remember: where its [`SlackGroup`] is kept.
const GROUP_POINTER: &str = "slack-group:";

/// The store key of a group's record, beside its first alert's references.
fn group_key(reference: &str) -> String {
    format!("{GROUP_POINTER}{reference}")
}

/// The edits and the post of a due message. Only Slack edits messages in place;
/// elsewhere a message is sent as it is, threaded (email) to the reference of the
/// first of its alerts that has one.
fn shape(ctx: &Context, core: &Core, due: &mut DueMessage) -> (Vec<Message>, Post) {
    // Every alert's reference in one read: a storm's message is about hundreds.
    let wanted: Vec<(Fingerprint, String)> = due
        .message
        .alerts
        .iter()
        .map(|a| (a.fingerprint, reference_key(&due.address, a.incident)))
        .collect();
    let references = ctx
        .store
        .references(&wanted)
        .unwrap_or_else(|_| vec![None; wanted.len()]);
    if !matches!(due.address, Address::Slack { .. }) {
        due.message.update = references.into_iter().flatten().next();
        return (Vec::new(), Post::Due);
    }
    let message = &due.message;
    let mut groups: Vec<(String, Vec<AlertSnapshot>)> = Vec::new();
    let mut singles: Vec<(AlertSnapshot, String)> = Vec::new();
    let mut rest: Vec<AlertSnapshot> = Vec::new();
    for (a, reference) in message.alerts.iter().zip(references) {
        match reference {
            Some(r) if r.starts_with(GROUP_POINTER) => {
                match groups.iter_mut().find(|(p, _)| *p == r) {
                    Some((_, members)) => members.push(a.clone()),
                    None => groups.push((r, vec![a.clone()])),
                }
            }
            Some(r) => singles.push((a.clone(), r)),
            None => rest.push(a.clone()),
        }
    }
    if groups.is_empty() && singles.len() + rest.len() == 1 {
        // One alert: its own message is edited, or a new one posted.
        due.message.update = singles.pop().map(|(_, r)| r);
        return (Vec::new(), Post::Due);
    }
    let mut edits = Vec::new();
    for (pointer, members) in groups {
        match group_edit(ctx, core, &pointer, message) {
            Some(edit) => edits.push(edit),
            // The group's record is gone: its alerts' news is posted instead.
            None => rest.extend(members),
        }
    }
    for (i, (alert, r)) in singles.into_iter().enumerate() {
        edits.push(Message {
            key: format!("{}.edit.{i}", message.key),
            alerts: vec![alert],
            update: Some(r),
            ..message.clone()
        });
    }
    let post = if rest.is_empty() {
        Post::Nothing
    } else {
        Post::Rest(Message {
            alerts: rest,
            update: None,
            ..message.clone()
        })
    };
    (edits, post)
}

/// The grouped message a pointer names, re-rendered with its alerts as they are
/// now. None when its record cannot be read (then nothing is edited).
fn group_edit(ctx: &Context, core: &Core, pointer: &str, due: &Message) -> Option<Message> {
    let (first, reference) = pointer.strip_prefix(GROUP_POINTER)?.split_once('/')?;
    let first: Fingerprint = first.parse().ok()?;
    let record = ctx.store.reference(first, &group_key(reference)).ok()??;
    let group: SlackGroup = serde_json::from_str(&record).ok()?;
    let alerts = group
        .alerts
        .iter()
        .filter_map(|(fp, incident)| {
            let alert = core.engine.alert(*fp)?;
            let mut now = AlertSnapshot::of(alert, core.engine.annotations(alert));
            if alert.incident != *incident {
                // That occurrence is over; the alert fired again since.
                now.incident = *incident;
                now.state = State::Resolved;
                now.acked_by = None;
                now.acked_at = None;
                now.resolved_at = None;
            }
            Some(now)
        })
        .collect();
    Some(Message {
        key: format!("{}.group.{reference}", due.key),
        reason: group.reason,
        level: group.level,
        alerts,
        update: Some(group.reference),
        at: group.at,
    })
}

/// What to remember once `post` was delivered with `reference`: every alert of it
/// points at the message (a grouped Slack message through its record).
fn references(
    address: &Address,
    post: &Message,
    reference: &str,
) -> Vec<(Fingerprint, String, String)> {
    let key = |a: &AlertSnapshot| reference_key(address, a.incident);
    let grouped = matches!(address, Address::Slack { .. }) && post.alerts.len() > 1;
    if !grouped {
        return post
            .alerts
            .iter()
            .map(|a| (a.fingerprint, key(a), reference.to_string()))
            .collect();
    }
    let first = &post.alerts[0];
    let record = SlackGroup {
        reference: reference.to_string(),
        reason: post.reason,
        level: post.level,
        at: post.at,
        alerts: post
            .alerts
            .iter()
            .map(|a| (a.fingerprint, a.incident))
            .collect(),
    };
    let pointer = format!("{GROUP_POINTER}{}/{reference}", first.fingerprint);
    let mut out = vec![(
        first.fingerprint,
        group_key(reference),
        serde_json::to_string(&record).expect("a group record serializes"),
    )];
    out.extend(
        post.alerts
            .iter()
            .map(|a| (a.fingerprint, key(a), pointer.clone())),
    );
    out
}
