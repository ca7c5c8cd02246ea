//! The outbox: every message owed, persisted in the same redb transaction as the
//! state change that owed it, then handed to the channels until it goes through.
//!
//! Pure bookkeeping over an in-memory mirror of the outbox table; the daemon
//! commits what these functions return before it acts on it. The stages, in order:
//! schedule (group wait, SMS window) → take what is due, withdrawing what is no
//! longer true, grouped into messages (one in flight per address, Slack paced) →
//! the channel sends → settle (delivered, retry with backoff, fall back, give up).
//!
//! Guarantees: at-least-once delivery with a stable idempotency key per message;
//! the notification log (`sent` keys) keeps a confirmed message from going twice.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use backon::BackoffBuilder;
use serde::{Deserialize, Serialize};

use crate::alert::{NotifyReason, State};
use crate::clock::Timestamp;
use crate::escalation::Address;
use crate::escalation::state::Owed;
use crate::labels::Fingerprint;
use crate::notify::{AlertSnapshot, Message, SendError};

/// One message owed to one address about one alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: u64,
    /// The idempotency key; stable across retries and restarts.
    pub key: String,
    pub address: Address,
    pub reason: NotifyReason,
    pub level: u32,
    /// Shared, not copied: the mirror, the batch that writes it and its
    /// settlement all hold the one snapshot (each copy cost a storm's profile
    /// several percent). Stored as the snapshot itself.
    #[serde(with = "shared_snapshot")]
    pub alert: Arc<AlertSnapshot>,
    /// Deliveries with the same address, reason, level and group go out as one
    /// message when they are due together. Once taken into a message for a
    /// receiver that sees its key (a webhook, mail), the group is that message
    /// ([`TAKEN`] and its key), written before the message leaves: a retry, a
    /// restart or another replica sends it again with the same deliveries under
    /// the same key, and nothing new joins it.
    pub group: String,
    /// Not before this time (group wait, SMS window, backoff).
    pub due_at: Timestamp,
    pub created_at: Timestamp,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Set on a delivery made because another address kept failing.
    pub fallback_for: Option<Address>,
    /// Whether the fallback for this delivery has been sent already.
    #[serde(default)]
    pub fell_back: bool,
}

/// A shared snapshot reads and writes as the snapshot: the stored layout is the
/// one a plain field had.
mod shared_snapshot {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::notify::AlertSnapshot;

    pub fn serialize<S: Serializer>(a: &Arc<AlertSnapshot>, s: S) -> Result<S::Ok, S::Error> {
        a.as_ref().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<AlertSnapshot>, D::Error> {
        AlertSnapshot::deserialize(d).map(Arc::new)
    }
}

/// The start of the group of a delivery taken into a message; the message's key
/// follows.
pub const TAKEN: &str = "message:";

impl Delivery {
    /// The key of the message this delivery was taken into, if any.
    pub fn message(&self) -> Option<&str> {
        self.group.strip_prefix(TAKEN)
    }
}

/// Whether the receiver is given a message's key, and may keep each message once
/// by it: a webhook (its `Idempotency-Key`) and mail (the `Message-ID` is made
/// from it).
fn sees_key(address: &Address) -> bool {
    matches!(address, Address::Webhook { .. } | Address::Email { .. })
}

/// The alert a delivery's timeline note is about.
fn about(d: &Delivery) -> (Fingerprint, State) {
    (d.alert.fingerprint, d.alert.state)
}

/// How deliveries are scheduled and retried.
#[derive(Clone, Debug)]
pub struct Timing {
    /// A first notification of a group opens a window this long; alerts of the
    /// same group arriving inside it go out together when it closes.
    pub group_wait: Duration,
    /// At most one SMS (and one call) per number this often; later alerts are
    /// batched into the next one, never dropped.
    pub phone_interval: Duration,
    /// Failures before the fallback is used.
    pub fallback_after: u32,
    /// A delivery still failing this long after it was owed is given up (and
    /// recorded as failed).
    pub give_up_after: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// At most one message per Slack channel this often: Slack disables apps that
    /// post more than about one message per second per channel.
    pub slack_pace: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            group_wait: Duration::from_secs(30),
            phone_interval: Duration::from_secs(30 * 60),
            fallback_after: 5,
            give_up_after: Duration::from_secs(24 * 3600),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            slack_pace: Duration::from_secs(1),
        }
    }
}

/// The in-memory mirror of the outbox table, the send windows, and what is in
/// flight. Only the entries are persisted; the rest is rebuilt (empty) at start.
#[derive(Debug, Default)]
pub struct Outbox {
    entries: BTreeMap<u64, Delivery>,
    next_id: u64,
    /// Per window key, the last slot used: a time in the future means a batch is
    /// scheduled then and new entries join it.
    windows: HashMap<String, Timestamp>,
    /// Entries that may be taken, by when: their `due_at`, or later while their
    /// Slack channel is paced. Entries in flight or parked are not here.
    ready: BTreeSet<(Timestamp, u64)>,
    /// Entries being sent now.
    in_flight: HashSet<u64>,
    /// Addresses with a message in flight, and the entries due for them meanwhile:
    /// one message at a time per address keeps an update behind the page it edits.
    busy: HashMap<Address, Vec<u64>>,
    /// Per Slack channel, the earliest time the next message may go.
    paced: HashMap<String, Timestamp>,
    pub timing: Timing,
}

/// Messages due now, with the deliveries each one settles.
#[derive(Clone, Debug)]
pub struct DueMessage {
    pub message: Message,
    pub address: Address,
    pub deliveries: Vec<u64>,
}

/// Messages taken to send now, and what was withdrawn instead of sent.
#[derive(Clone, Debug, Default)]
pub struct Taken {
    pub messages: Vec<DueMessage>,
    /// Deliveries no longer owed (deleted, with a note each): the state they spoke
    /// of has passed.
    pub withdrawn: Settled,
    /// Deliveries just taken into a message (their group is now that message):
    /// to write before the message is sent.
    pub bound: Vec<Delivery>,
}

/// What happened to a message, for [`Outbox::settle`].
#[derive(Clone, Debug)]
pub enum Outcome {
    Delivered {
        reference: Option<String>,
    },
    Failed(SendError),
    /// The notification log says it was sent before (a crash after sending).
    AlreadySent,
}

/// Changes to persist after settling a message.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settled {
    /// Deliveries to write (rescheduled, or new fallbacks).
    pub put: Vec<Delivery>,
    /// Deliveries done with (sent, or given up).
    pub delete: Vec<u64>,
    /// Idempotency keys confirmed sent.
    pub sent: Vec<String>,
    /// What people reviewing the incident should see, per alert.
    /// Timeline notes: the alert (fingerprint, state as the message showed it)
    /// and the note. Not the snapshot: cloning one per settled message was a
    /// tenth of a storm's profile.
    pub notes: Vec<((Fingerprint, State), String)>,
    /// A fallback is owed: the caller resolves the policy's fallback addresses.
    pub fallback: Vec<Delivery>,
    /// What a message sent leaves the next ones to wait for, to store as jobs
    /// (named from [`PACE_MARK`] and [`WINDOW_MARK`]): when its Slack channel may have the next message,
    /// and the phone number's window. Another replica taking over reads them
    /// ([`Outbox::remember`]), so pacing and windows hold across replicas.
    pub marks: Vec<(String, Timestamp)>,
}

/// The job names that keep the outbox's pacing and windows.
const PACE_MARK: &str = "outbox.pace.";
const WINDOW_MARK: &str = "outbox.window.";

impl Outbox {
    pub fn new(timing: Timing, entries: Vec<Delivery>, next_id: u64) -> Outbox {
        let next_id = entries
            .iter()
            .map(|d| d.id + 1)
            .max()
            .unwrap_or(1)
            .max(next_id);
        let mut outbox = Outbox {
            ready: entries.iter().map(|d| (d.due_at, d.id)).collect(),
            next_id,
            timing,
            ..Outbox::default()
        };
        // The windows the owed entries were scheduled in: a new entry joins its
        // batch, as it would have before the restart or the failover (an entry
        // retried since was moved by its backoff, not by its window).
        for d in entries
            .iter()
            .filter(|d| d.attempts == 0 && d.message().is_none())
        {
            if let Some((key, _)) = outbox.window(&d.address, d.reason, d.level, &d.group) {
                let last = outbox.windows.entry(key).or_insert(d.due_at);
                *last = (*last).max(d.due_at);
            }
        }
        outbox.entries = entries.into_iter().map(|d| (d.id, d)).collect();
        outbox
    }

    /// Takes in the marks the messages sent by another replica (or before a
    /// restart) left: a Slack channel stays paced, a phone number's window holds.
    pub fn remember(&mut self, marks: impl IntoIterator<Item = (String, Timestamp)>) {
        for (name, at) in marks {
            let (map, key) = if let Some(channel) = name.strip_prefix(PACE_MARK) {
                (&mut self.paced, channel)
            } else if let Some(window) = name.strip_prefix(WINDOW_MARK) {
                (&mut self.windows, window)
            } else {
                continue;
            };
            let last = map.entry(key.to_string()).or_insert(at);
            *last = (*last).max(at);
        }
    }

    /// Puts an entry (new or rescheduled) in the mirror, ready at its `due_at`.
    fn insert(&mut self, d: Delivery) {
        self.ready.insert((d.due_at, d.id));
        self.entries.insert(d.id, d);
    }

    /// Takes an entry out of the mirror, wherever it waits.
    fn remove(&mut self, id: u64) -> Option<Delivery> {
        let d = self.entries.remove(&id)?;
        self.ready.remove(&(d.due_at, id));
        Some(d)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    pub fn entries(&self) -> impl Iterator<Item = &Delivery> {
        self.entries.values()
    }

    /// The alerts something is still owed about.
    pub fn pending_alerts(&self) -> rustc_hash::FxHashSet<crate::labels::Fingerprint> {
        self.entries.values().map(|d| d.alert.fingerprint).collect()
    }

    /// The earliest time something may be taken (not counting what waits for a
    /// message in flight: it is ready again when that one settles).
    pub fn next_due(&self) -> Option<Timestamp> {
        self.ready.first().map(|(t, _)| *t)
    }

    /// Messages being sent now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Schedules the messages owed about `alert`. The returned deliveries are in
    /// the mirror already; the caller writes them in its transaction.
    pub fn enqueue(
        &mut self,
        alert: &Arc<AlertSnapshot>,
        owed: Vec<Owed>,
        group: &str,
        now: Timestamp,
    ) -> Vec<Delivery> {
        let mut out = Vec::with_capacity(owed.len());
        for o in owed {
            let key = format!(
                "{}.{}.{}.L{}.{}.{}",
                alert.fingerprint,
                alert.incident.unwrap_or(0),
                o.reason.name().replace(' ', "_"),
                o.level,
                o.round,
                o.address
            );
            let due_at = self.slot(&o.address, o.reason, o.level, group, now);
            let d = Delivery {
                id: self.next_id,
                key,
                address: o.address,
                reason: o.reason,
                level: o.level,
                alert: alert.clone(),
                group: group.to_string(),
                due_at,
                created_at: now,
                attempts: 0,
                last_error: None,
                fallback_for: None,
                fell_back: false,
            };
            self.next_id += 1;
            self.insert(d.clone());
            out.push(d);
        }
        out
    }

    /// Adds deliveries made elsewhere (fallbacks) to the mirror, with new ids.
    pub fn add(&mut self, mut d: Delivery) -> Delivery {
        d.id = self.next_id;
        self.next_id += 1;
        self.insert(d.clone());
        d
    }

    /// The window a delivery is batched in, and its length; None: it goes at once.
    fn window(
        &self,
        address: &Address,
        reason: NotifyReason,
        level: u32,
        group: &str,
    ) -> Option<(String, Duration)> {
        match address {
            Address::Sms { .. } | Address::Voice { .. } => {
                Some((address.to_string(), self.timing.phone_interval))
            }
            // Only first notifications are grouped; updates and resolved notices go
            // at once, and later levels are due together anyway.
            _ if level == 1 && reason != NotifyReason::Resolved => {
                Some((format!("{address}|{group}"), self.timing.group_wait))
            }
            _ => None,
        }
    }

    /// When a new delivery may go: at once, or with the batch its window holds.
    fn slot(
        &mut self,
        address: &Address,
        reason: NotifyReason,
        level: u32,
        group: &str,
        now: Timestamp,
    ) -> Timestamp {
        let Some((key, len)) = self.window(address, reason, level, group) else {
            return now;
        };
        let due = match self.windows.get(&key) {
            // A message is scheduled now or later: join it.
            Some(&last) if last >= now => last,
            Some(&last) if now < last + len => last + len,
            _ => now,
        };
        self.windows.insert(key, due);
        due
    }

    /// Takes the deliveries due at `now`, grouped into messages, and marks them in
    /// flight until [`Outbox::settle`]. `still_owed` is asked about each first: a
    /// delivery it refuses (with the reason) is withdrawn, not sent. An address with
    /// a message in flight gets nothing more until that one settles; a Slack
    /// channel gets at most one message per [`Timing::slack_pace`].
    pub fn take_due(
        &mut self,
        now: Timestamp,
        still_owed: impl Fn(&Delivery) -> Result<(), String>,
    ) -> Taken {
        let mut taken = Taken::default();
        let mut groups: BTreeMap<(Address, String, String, u32), Vec<u64>> = BTreeMap::new();
        while let Some(&(t, id)) = self.ready.first() {
            if t > now {
                break;
            }
            self.ready.pop_first();
            let d = &self.entries[&id];
            if let Err(why) = still_owed(d) {
                let d = self.entries.remove(&id).expect("ready entries exist");
                taken.withdrawn.delete.push(id);
                let note = format!("not sent to {}: {}: {why}", d.address, d.reason);
                taken.withdrawn.notes.push((about(&d), note));
                continue;
            }
            if let Some(waiting) = self.busy.get_mut(&d.address) {
                waiting.push(id);
                continue;
            }
            if let Address::Slack { channel } = &d.address
                && let Some(&after) = self.paced.get(channel)
                && after > now
                && !groups.keys().any(|(a, ..)| *a == d.address)
            {
                self.ready.insert((after, id));
                continue;
            }
            let group = match d.address {
                _ if d.message().is_some() => d.group.clone(),
                // One SMS per window carries everything owed to that number.
                Address::Sms { .. } | Address::Voice { .. } => String::new(),
                _ => d.group.clone(),
            };
            let key = (
                d.address.clone(),
                group,
                d.reason.name().to_string(),
                d.level,
            );
            groups.entry(key).or_default().push(id);
        }
        for ((address, ..), ids) in groups {
            if self.busy.contains_key(&address) {
                // A second group for the same address: after the first settles.
                self.busy.get_mut(&address).expect("checked").extend(ids);
                continue;
            }
            let first = &self.entries[&ids[0]];
            let key = if let Some(key) = first.message() {
                // Taken before (then failed, or its sender died): the same message.
                key.to_string()
            } else {
                let key = if ids.len() == 1 {
                    first.key.clone()
                } else {
                    let numbers: Vec<String> = ids.iter().map(u64::to_string).collect();
                    format!("group.{}.{}", first.key, numbers.join("-"))
                };
                // Even a message of one: sent, then owed again after a crash
                // before its settlement, it must not be joined by others. Only
                // where the receiver sees the key: binding costs a write per
                // delivery, and to Slack, a phone or the console a message sent
                // twice shows twice under any key.
                let ids_to_bind = if sees_key(&address) { &ids[..] } else { &[] };
                for id in ids_to_bind {
                    let d = self.entries.get_mut(id).expect("taken entries exist");
                    d.group = format!("{TAKEN}{key}");
                    taken.bound.push(d.clone());
                }
                key
            };
            let ds: Vec<&Delivery> = ids.iter().map(|id| &self.entries[id]).collect();
            // Each alert once: two deliveries about the same alert (fallbacks for two
            // failing addresses) settle together in one message that names it once.
            let mut alerts: Vec<AlertSnapshot> = Vec::with_capacity(ds.len());
            for d in &ds {
                let same = |a: &AlertSnapshot| {
                    a.fingerprint == d.alert.fingerprint && a.incident == d.alert.incident
                };
                if !alerts.iter().any(same) {
                    alerts.push(AlertSnapshot::clone(&d.alert));
                }
            }
            let message = Message {
                key,
                reason: ds[0].reason,
                level: ds[0].level,
                alerts,
                update: None,
                at: ds.iter().map(|d| d.created_at).min().unwrap_or(now),
            };
            if let Address::Slack { channel } = &address {
                self.paced
                    .insert(channel.clone(), now + self.timing.slack_pace);
            }
            self.busy.insert(address.clone(), Vec::new());
            self.in_flight.extend(ids.iter().copied());
            taken.messages.push(DueMessage {
                message,
                address,
                deliveries: ids,
            });
        }
        taken
    }

    /// The idempotency keys of a due message's deliveries.
    pub fn keys(&self, ids: &[u64]) -> Vec<String> {
        ids.iter()
            .filter_map(|id| self.entries.get(id))
            .map(|d| d.key.clone())
            .collect()
    }

    /// Records what happened to a message and returns what to persist. The
    /// address is free again: what waited for it is ready at its own time.
    pub fn settle(&mut self, due: &DueMessage, outcome: &Outcome, now: Timestamp) -> Settled {
        let mut s = Settled::default();
        if matches!(outcome, Outcome::Delivered { .. }) {
            match &due.address {
                Address::Slack { channel } => {
                    if let Some(&until) = self.paced.get(channel) {
                        s.marks.push((format!("{PACE_MARK}{channel}"), until));
                    }
                }
                Address::Sms { .. } | Address::Voice { .. } => {
                    let key = due.address.to_string();
                    if let Some(&last) = self.windows.get(&key) {
                        s.marks.push((format!("{WINDOW_MARK}{key}"), last));
                    }
                }
                _ => {}
            }
        }
        for id in &due.deliveries {
            self.in_flight.remove(id);
        }
        for id in self.busy.remove(&due.address).unwrap_or_default() {
            if let Some(d) = self.entries.get(&id) {
                self.ready.insert((d.due_at, id));
            }
        }
        // One wait for the whole message: its deliveries are retried together,
        // as the one message they were taken into.
        let retry_in = match outcome {
            Outcome::Failed(_) => due
                .deliveries
                .first()
                .and_then(|id| self.entries.get(id))
                .map_or(self.timing.max_backoff, |d| {
                    self.backoff(d.id, d.attempts + 1)
                }),
            _ => Duration::ZERO,
        };
        for id in &due.deliveries {
            let Some(d) = self.entries.get(id).cloned() else {
                continue;
            };
            match outcome {
                Outcome::Delivered { reference } => {
                    self.remove(*id);
                    s.delete.push(*id);
                    s.sent.push(d.key.clone());
                    let what = match &d.fallback_for {
                        Some(failed) => format!("notified {} instead of {failed}", d.address),
                        None => format!("notified {}", d.address),
                    };
                    let mut note = describe(&what, &d);
                    if let (Address::Alertmanager { .. }, Some(done)) = (&d.address, reference) {
                        // What was done there (a silence made or expired), for the
                        // timeline.
                        note = format!("{note}: {done}");
                    }
                    s.notes.push((about(&d), note));
                }
                Outcome::AlreadySent => {
                    self.remove(*id);
                    s.delete.push(*id);
                }
                Outcome::Failed(err) => self.failed(d, err, now, retry_in, &mut s),
            }
        }
        s
    }

    fn failed(
        &mut self,
        mut d: Delivery,
        err: &SendError,
        now: Timestamp,
        backoff: Duration,
        s: &mut Settled,
    ) {
        d.attempts += 1;
        d.last_error = Some(err.to_string());
        let (permanent, asked) = match err {
            SendError::Permanent { .. } => (true, None),
            SendError::Retry { after, .. } => (false, *after),
        };
        let too_old = now.since(d.created_at) >= self.timing.give_up_after;
        // A silence upstream that cannot be made is retried, not handed to the
        // people of the fallback: they were not the ones it was for.
        let upstream = matches!(d.address, Address::Alertmanager { .. });
        let fall_back = !d.fell_back
            && !upstream
            && d.fallback_for.is_none()
            && (permanent || d.attempts >= self.timing.fallback_after || too_old);
        if fall_back {
            d.fell_back = true;
            s.fallback.push(d.clone());
            s.notes.push((
                about(&d),
                format!(
                    "delivery to {} failing after {} attempt(s): {err}; using the fallback",
                    d.address, d.attempts
                ),
            ));
        }
        if upstream && d.attempts == 1 && !permanent {
            // Retried quietly like any delivery, but an ack whose silence is not
            // made yet must show: the Alertmanager still notifies its receivers.
            s.notes.push((
                about(&d),
                format!("{} not told yet: {err}; retrying", d.address),
            ));
        }
        if permanent || too_old {
            self.remove(d.id);
            s.delete.push(d.id);
            s.notes.push((
                about(&d),
                format!(
                    "delivery to {} failed after {} attempt(s): {err}",
                    d.address, d.attempts
                ),
            ));
            return;
        }
        // The other side said how long to wait (Retry-After): that wins.
        self.remove(d.id);
        d.due_at = now + asked.unwrap_or(backoff);
        self.insert(d.clone());
        s.put.push(d);
    }

    /// The wait before attempt `attempts + 1`: exponential with jitter, seeded by
    /// the delivery so a replay of the same failures waits the same.
    fn backoff(&self, id: u64, attempts: u32) -> Duration {
        backon::ExponentialBuilder::new()
            .with_min_delay(self.timing.min_backoff)
            .with_max_delay(self.timing.max_backoff)
            .with_factor(2.0)
            .with_jitter_seed(id)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(attempts.saturating_sub(1) as usize)
            .unwrap_or(self.timing.max_backoff)
            // backon adds its jitter after capping (up to twice the cap): the cap is
            // what a channel that came back may wait for its page.
            .min(self.timing.max_backoff)
    }
}

fn describe(what: &str, d: &Delivery) -> String {
    let level = if d.level > 0 {
        format!(" (level {})", d.level)
    } else {
        String::new()
    };
    let retries = if d.attempts > 0 {
        format!(" after {} failed attempt(s)", d.attempts)
    } else {
        String::new()
    };
    format!("{what}: {}{level}{retries}", d.reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::State;
    use crate::labels::Fingerprint;

    const T: Timestamp = Timestamp(1_800_000_000_000);
    const S: Duration = Duration::from_secs(1);

    fn alert(n: u64) -> Arc<AlertSnapshot> {
        Arc::new(AlertSnapshot {
            fingerprint: Fingerprint(n),
            incident: Some(n),
            rule: "HostDown".into(),
            severity: "critical".into(),
            labels: Default::default(),
            annotations: Default::default(),
            state: State::Firing,
            fired_at: Some(T),
            resolved_at: None,
            acked_by: None,
            acked_at: None,
            ack_note: None,
            resolved_by: None,
            resolve_note: None,
            generator_url: None,
        })
    }

    fn owed(address: Address, level: u32) -> Vec<Owed> {
        vec![Owed {
            address,
            reason: NotifyReason::Firing,
            level,
            round: "r0".into(),
        }]
    }

    fn slack() -> Address {
        Address::Slack {
            channel: "#alerts-critical".into(),
        }
    }

    #[test]
    fn a_group_sends_its_first_alert_at_once_and_batches_the_rest() {
        let mut o = Outbox::default();
        o.enqueue(&alert(1), owed(slack(), 1), "g", T);
        o.enqueue(&alert(2), owed(slack(), 1), "g", T + S);
        o.enqueue(&alert(3), owed(slack(), 1), "g", T + 20 * S);
        // Another group is not held back.
        o.enqueue(&alert(4), owed(slack(), 1), "other", T + S);
        // Sends what is due at `now` and says how many alerts each message had.
        let mut send = |now| -> Vec<usize> {
            let due = o.take_due(now, |_| Ok(())).messages;
            for m in &due {
                o.settle(m, &Outcome::Delivered { reference: None }, now);
            }
            due.iter().map(|m| m.message.alerts.len()).collect()
        };
        assert_eq!(send(T), [1]);
        assert_eq!(send(T + 29 * S), [1], "the other group, at once");
        assert_eq!(send(T + 30 * S), [2], "the batch closes at +30s");
        // Escalations (level 2) are not grouped by wait.
        let mut o = Outbox::default();
        let d = o.enqueue(&alert(1), owed(slack(), 2), "g", T);
        let e = o.enqueue(&alert(2), owed(slack(), 2), "g", T + S);
        assert_eq!((d[0].due_at, e[0].due_at), (T, T + S));
    }

    #[test]
    fn retries_back_off_then_fall_back_then_deliver_when_the_channel_returns() {
        let mut o = Outbox::default();
        o.enqueue(&alert(1), owed(slack(), 2), "g", T);
        let mut now = T;
        let mut waits = Vec::new();
        let mut fallbacks = 0;
        for _ in 0..7 {
            let due = o.take_due(now, |_| Ok(())).messages.remove(0);
            let s = o.settle(&due, &Outcome::Failed(SendError::retry("HTTP 500")), now);
            fallbacks += s.fallback.len();
            let next = o.next_due().unwrap();
            waits.push(next.since(now));
            now = next;
        }
        assert_eq!(fallbacks, 1, "one fallback, after the fifth failure");
        assert!(waits.windows(2).all(|w| w[0] <= w[1] * 2), "{waits:?}");
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(300)));
        assert!(waits[4] >= Duration::from_secs(8), "grows: {waits:?}");
        // The channel is back: delivered once, logged under its key.
        let due = o.take_due(now, |_| Ok(())).messages.remove(0);
        let s = o.settle(&due, &Outcome::Delivered { reference: None }, now);
        assert_eq!(s.sent.len(), 1);
        assert!(o.is_empty());
    }

    #[test]
    fn retry_after_is_obeyed_and_a_permanent_error_falls_back_at_once() {
        let mut o = Outbox::default();
        o.enqueue(&alert(1), owed(slack(), 2), "g", T);
        let due = o.take_due(T, |_| Ok(())).messages.remove(0);
        let asked = SendError::Retry {
            reason: "429".into(),
            after: Some(Duration::from_secs(7)),
        };
        o.settle(&due, &Outcome::Failed(asked), T);
        assert_eq!(o.next_due(), Some(T + 7 * S));
        let due = o.take_due(T + 7 * S, |_| Ok(())).messages.remove(0);
        let s = o.settle(
            &due,
            &Outcome::Failed(SendError::permanent("invalid_auth")),
            T,
        );
        assert_eq!((s.fallback.len(), s.delete.len()), (1, 1));
        assert!(o.is_empty());
        assert!(
            s.notes
                .iter()
                .any(|(_, n)| n.contains("failed after 2 attempt(s): invalid_auth"))
        );
    }

    #[test]
    fn a_failing_upstream_silence_is_retried_shown_and_never_handed_to_the_fallback() {
        let mut o = Outbox::default();
        let upstream = Address::Alertmanager {
            name: "main".into(),
        };
        o.enqueue(&alert(1), owed(upstream, 0), "g", T);
        let mut now = T;
        let mut notes = Vec::new();
        for _ in 0..7 {
            let due = o.take_due(now, |_| Ok(())).messages.remove(0);
            let err = SendError::retry("alertmanager main: cannot connect");
            let s = o.settle(&due, &Outcome::Failed(err), now);
            assert!(
                s.fallback.is_empty(),
                "the fallback's people were not asked"
            );
            notes.extend(s.notes.into_iter().map(|(_, n)| n));
            now = o.next_due().expect("still retried");
        }
        assert_eq!(
            notes,
            ["alertmanager:main not told yet: alertmanager main: cannot connect; retrying"],
            "the first failure shows on the timeline, once"
        );
        // Refused for good: given up, said so, still nobody else told.
        let due = o.take_due(now, |_| Ok(())).messages.remove(0);
        let refused = SendError::permanent("alertmanager main: HTTP 400");
        let s = o.settle(&due, &Outcome::Failed(refused), now);
        assert!(s.fallback.is_empty());
        assert!(o.is_empty());
        assert!(
            s.notes
                .iter()
                .any(|(_, n)| n.contains("failed after 8 attempt(s): alertmanager main: HTTP 400")),
            "{:?}",
            s.notes
        );
    }

    #[test]
    fn a_phone_gets_one_message_per_window_with_everything_owed() {
        let mut o = Outbox::default();
        let sms = Address::Sms {
            to: "+819000000001".into(),
        };
        o.enqueue(&alert(1), owed(sms.clone(), 3), "a", T);
        o.enqueue(&alert(2), owed(sms.clone(), 3), "b", T + 60 * S);
        o.enqueue(&alert(3), owed(sms.clone(), 3), "c", T + 600 * S);
        let first = o.take_due(T, |_| Ok(())).messages;
        assert_eq!(first.len(), 1);
        o.settle(&first[0], &Outcome::Delivered { reference: None }, T);
        assert!(o.take_due(T + 1799 * S, |_| Ok(())).messages.is_empty());
        let later = o.take_due(T + 1800 * S, |_| Ok(())).messages;
        let sizes: Vec<usize> = later.iter().map(|m| m.message.alerts.len()).collect();
        assert_eq!(sizes, [2], "one SMS carrying both later alerts");
    }

    #[test]
    fn one_message_per_address_is_in_flight_and_slack_is_paced() {
        let mut o = Outbox::default();
        o.enqueue(&alert(1), owed(slack(), 2), "a", T);
        o.enqueue(&alert(2), owed(slack(), 3), "b", T);
        let first = o.take_due(T, |_| Ok(())).messages;
        assert_eq!(first.len(), 1, "the second waits for the first to settle");
        assert_eq!(o.in_flight(), 1);
        assert_eq!(
            o.next_due(),
            None,
            "nothing ready while the address is busy"
        );
        o.settle(&first[0], &Outcome::Delivered { reference: None }, T);
        // Free again, but Slack takes one message per second per channel.
        assert_eq!(o.next_due(), Some(T));
        assert!(o.take_due(T, |_| Ok(())).messages.is_empty());
        assert_eq!(o.next_due(), Some(T + S), "paced to one second later");
        assert_eq!(o.take_due(T + S, |_| Ok(())).messages.len(), 1);
    }

    #[test]
    fn another_outbox_keeps_the_pace_and_the_window_a_sent_message_left() {
        // The replica that acts sends to Slack and to a phone, then hands over.
        let sms = sms_to();
        let mut old = Outbox::default();
        old.enqueue(&alert(1), owed(slack(), 2), "a", T);
        old.enqueue(&alert(1), owed(sms.clone(), 2), "a", T);
        let mut marks = Vec::new();
        for m in old.take_due(T, |_| Ok(())).messages {
            marks.extend(
                old.settle(&m, &Outcome::Delivered { reference: None }, T)
                    .marks,
            );
        }
        assert_eq!(marks.len(), 2, "{marks:?}");
        // The next replica, from the store half a second later: nothing owed,
        // the marks.
        let now = T + S / 2;
        let mut new = Outbox::new(Timing::default(), Vec::new(), old.next_id());
        new.remember(marks);
        new.enqueue(&alert(2), owed(slack(), 2), "b", now);
        let sms_due = new.enqueue(&alert(2), owed(sms, 2), "b", now)[0].due_at;
        assert!(new.take_due(now, |_| Ok(())).messages.is_empty());
        assert_eq!(
            new.next_due(),
            Some(T + S),
            "Slack: paced to a second after"
        );
        assert_eq!(
            sms_due,
            T + Timing::default().phone_interval,
            "the phone's window holds"
        );
        // Without the marks both would go at once.
        let mut bare = Outbox::new(Timing::default(), Vec::new(), 1);
        bare.enqueue(&alert(2), owed(slack(), 2), "b", now);
        bare.enqueue(&alert(2), owed(sms_to(), 2), "b", now);
        assert_eq!(bare.take_due(now, |_| Ok(())).messages.len(), 2);
    }

    fn sms_to() -> Address {
        Address::Sms {
            to: "+819012345678".into(),
        }
    }

    #[test]
    fn an_owed_phone_batch_is_joined_after_a_restart() {
        let sms = sms_to();
        let mut old = Outbox::default();
        old.enqueue(&alert(1), owed(sms.clone(), 2), "a", T);
        let first = old.take_due(T, |_| Ok(())).messages;
        old.settle(&first[0], &Outcome::Delivered { reference: None }, T);
        let later = old.enqueue(&alert(2), owed(sms.clone(), 2), "a", T + S);
        let slot = later[0].due_at;
        assert!(slot > T + S);
        // Read back from the store: the owed entry names the window.
        let mut new = Outbox::new(Timing::default(), later, old.next_id());
        let joined = new.enqueue(&alert(3), owed(sms, 2), "a", T + 2 * S);
        assert_eq!(joined[0].due_at, slot, "joins the batch already scheduled");
    }

    #[test]
    fn a_message_of_several_goes_again_whole_under_its_key_and_nothing_joins_it() {
        let ops = Address::Email {
            to: vec!["ops@example.com".into()],
        };
        let mut old = Outbox::default();
        for n in 1..=3 {
            old.enqueue(&alert(n), owed(ops.clone(), 2), "g", T);
        }
        let taken = old.take_due(T, |_| Ok(()));
        let key = taken.messages[0].message.key.clone();
        assert_eq!(
            taken.bound.len(),
            3,
            "the message's deliveries, to write first"
        );
        assert!(
            taken
                .bound
                .iter()
                .all(|d| d.message() == Some(key.as_str()))
        );

        // Its sender dies mid-send; another replica reads the written entries, and
        // more is owed to the same address meanwhile.
        let mut new = Outbox::new(Timing::default(), taken.bound, old.next_id());
        new.enqueue(&alert(4), owed(ops.clone(), 2), "g", T + S);
        let mut delivered = BTreeMap::new();
        let mut failed = 0;
        let mut now = T + S;
        while !new.is_empty() && now < T + 3600 * S {
            for m in new.take_due(now, |_| Ok(())).messages {
                // The first attempt of the message of three fails: its retry must
                // still be that message.
                let outcome = if m.message.key == key && failed == 0 {
                    failed += 1;
                    Outcome::Failed(SendError::Retry {
                        reason: "timeout".into(),
                        after: None,
                    })
                } else {
                    let alerts: Vec<u64> =
                        m.message.alerts.iter().map(|a| a.fingerprint.0).collect();
                    assert!(delivered.insert(m.message.key.clone(), alerts).is_none());
                    Outcome::Delivered { reference: None }
                };
                new.settle(&m, &outcome, now);
            }
            now = now + S;
        }
        assert_eq!(failed, 1);
        assert_eq!(delivered.len(), 2, "{delivered:?}");
        assert_eq!(
            delivered[&key],
            [1, 2, 3],
            "the same three under the same key"
        );
        assert!(
            delivered.values().any(|a| a == &[4]),
            "the newcomer on its own"
        );
        assert!(new.is_empty());

        // Slack is not given the key: nothing to bind, nothing to write.
        let mut o = Outbox::default();
        o.enqueue(&alert(1), owed(slack(), 2), "g", T);
        o.enqueue(&alert(2), owed(slack(), 2), "g", T);
        let taken = o.take_due(T, |_| Ok(()));
        assert_eq!((taken.messages.len(), taken.bound.len()), (1, 0));
    }

    #[test]
    fn two_deliveries_about_one_alert_make_a_message_that_names_it_once() {
        let mut o = Outbox::default();
        let ops = Address::Email {
            to: vec!["ops@example.com".into()],
        };
        o.enqueue(&alert(1), owed(ops.clone(), 2), "g", T);
        o.enqueue(&alert(1), owed(ops.clone(), 2), "g", T);
        o.enqueue(&alert(2), owed(ops, 2), "g", T);
        let due = o.take_due(T, |_| Ok(())).messages;
        assert_eq!(due.len(), 1);
        let named: Vec<u64> = due[0]
            .message
            .alerts
            .iter()
            .map(|a| a.fingerprint.0)
            .collect();
        assert_eq!(named, [1, 2]);
        assert_eq!(due[0].deliveries.len(), 3, "all three settle with it");
    }

    #[test]
    fn a_delivery_no_longer_owed_is_withdrawn_with_the_reason() {
        let mut o = Outbox::default();
        o.enqueue(&alert(1), owed(slack(), 1), "g", T);
        o.enqueue(&alert(2), owed(slack(), 1), "g", T);
        let taken = o.take_due(T, |d| {
            if d.alert.fingerprint == Fingerprint(2) {
                Err("the alert is resolved now".into())
            } else {
                Ok(())
            }
        });
        let alerts: Vec<u64> = taken.messages[0]
            .message
            .alerts
            .iter()
            .map(|a| a.fingerprint.0)
            .collect();
        assert_eq!(alerts, [1], "the group goes without the withdrawn alert");
        assert_eq!(taken.withdrawn.delete.len(), 1);
        assert_eq!(
            taken.withdrawn.notes[0].1,
            "not sent to slack:#alerts-critical: firing: the alert is resolved now"
        );
        assert_eq!(o.len(), 1, "only the message in flight is left");
    }
}
