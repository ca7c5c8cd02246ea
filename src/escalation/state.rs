//! Where one alert's escalation stands, and the pure decisions that move it: a
//! state change (fired, acked, resolved, resumed) or a deadline reached at `now`
//! gives the next [`Escalation`] and the messages owed. The record is persisted
//! with the alert, so a restart resumes exactly where it stood: owed steps are
//! sent once, none twice.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::Address;
use super::policy::{Directory, Level, Method, Policy, Routing, Target};
use crate::alert::{Alert, NotifyReason, State};
use crate::clock::Timestamp;
use crate::labels::Fingerprint;

/// One alert occurrence's escalation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    pub fingerprint: Fingerprint,
    pub incident: Option<u64>,
    /// The policy chosen when the alert fired (a reload does not re-route a page
    /// in progress).
    pub policy: String,
    /// Level delays count from here: the firing, or the last restart from level 1
    /// (ack expired, silence ended, unacked).
    pub started_at: Timestamp,
    /// The next level to run, from 0; equal to the number of levels once only
    /// repeats of the last level remain.
    pub next_level: usize,
    /// When the next step is owed. None while paused (acked, suppressed).
    pub due_at: Option<Timestamp>,
    /// How often the last level has been repeated.
    pub repeats: u32,
    /// Every address a page of this occurrence went out to: marked when the message
    /// leaves for its channel ([`Escalation::paged`]), not when it is owed, so a page
    /// withdrawn before it left (the alert was acked or resolved meanwhile) leaves
    /// no one to tell. The acknowledged and resolved notices reach exactly these.
    pub notified: Notified,
}

/// The addresses an occurrence's pages went out to, sorted and unique: a handful
/// at most, so a list (one small allocation) where a `BTreeSet` took a 360-byte
/// node for one address, in every escalation (a storm of 100,000 alerts held 36 MB
/// of them). Written as a sequence, as the set it replaced was: stored records
/// read the same.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<Address>")]
pub struct Notified(Vec<Address>);

impl Notified {
    /// Adds `address`; false if it was there.
    pub fn insert(&mut self, address: Address) -> bool {
        match self.0.binary_search(&address) {
            Ok(_) => false,
            Err(i) => {
                self.0.insert(i, address);
                self.0.shrink_to_fit();
                true
            }
        }
    }

    /// Removes `address`; false if it was not there.
    pub fn remove(&mut self, address: &Address) -> bool {
        match self.0.binary_search(address) {
            Ok(i) => {
                self.0.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    pub fn contains(&self, address: &Address) -> bool {
        self.0.binary_search(address).is_ok()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Address> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl From<Vec<Address>> for Notified {
    fn from(mut addresses: Vec<Address>) -> Notified {
        addresses.sort();
        addresses.dedup();
        addresses.shrink_to_fit();
        Notified(addresses)
    }
}

impl<const N: usize> From<[Address; N]> for Notified {
    fn from(addresses: [Address; N]) -> Notified {
        Vec::from(addresses).into()
    }
}

impl<'a> IntoIterator for &'a Notified {
    type Item = &'a Address;
    type IntoIter = std::slice::Iter<'a, Address>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// A message owed to one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owed {
    pub address: Address,
    pub reason: NotifyReason,
    /// The level that owes it, from 1; 0 for updates (acked, resolved).
    pub level: u32,
    /// Distinguishes repeats and restarts of the same level in the idempotency key.
    pub round: String,
}

/// Turns targets into addresses at the moment a level runs (who is on call now).
pub struct Resolver<'a> {
    pub directory: &'a Directory,
    pub routing: &'a Routing,
    /// The Slack channel for alerts of a severity, when Slack is configured.
    pub slack_channel: &'a dyn Fn(&str) -> Option<String>,
}

impl Resolver<'_> {
    /// The addresses one level reaches for an alert of `severity`, in a stable order.
    pub fn addresses(
        &self,
        policy: &Policy,
        level: &Level,
        severity: &str,
        now: Timestamp,
    ) -> Vec<Address> {
        let phone_ok = policy.phone_severities.iter().any(|s| s == severity);
        let mut out = BTreeSet::new();
        for t in &level.targets {
            self.target(t, &level.via, phone_ok, severity, now, &mut out);
        }
        out.into_iter().collect()
    }

    /// The addresses of a policy's fallback targets.
    pub fn fallback(&self, policy: &Policy, severity: &str, now: Timestamp) -> Vec<Address> {
        let mut out = BTreeSet::new();
        let via = [Method::Email, Method::Slack];
        for t in &policy.fallback {
            self.target(t, &via, false, severity, now, &mut out);
        }
        out.into_iter().collect()
    }

    fn target(
        &self,
        target: &Target,
        via: &[Method],
        phone_ok: bool,
        severity: &str,
        now: Timestamp,
        out: &mut BTreeSet<Address>,
    ) {
        match target {
            Target::Person(id) => self.person(id, via, phone_ok, out),
            Target::Group(id) => {
                if let Some(g) = self.directory.groups.get(id) {
                    for m in &g.members {
                        self.person(m, via, phone_ok, out);
                    }
                    if !g.emails.is_empty() && (via.contains(&Method::Email) || via.is_empty()) {
                        out.insert(Address::Email {
                            to: g.emails.clone(),
                        });
                    }
                }
            }
            Target::Schedule(id) => {
                if let Some(who) = self
                    .directory
                    .schedules
                    .get(id)
                    .and_then(|r| r.on_call(now))
                {
                    self.person(who, via, phone_ok, out);
                }
            }
            Target::SlackBySeverity => {
                if let Some(channel) = (self.slack_channel)(severity) {
                    out.insert(Address::Slack { channel });
                }
            }
            Target::SlackChannel(c) => {
                out.insert(Address::Slack { channel: c.clone() });
            }
            Target::Email(a) => {
                out.insert(Address::Email {
                    to: vec![a.clone()],
                });
            }
            Target::Webhook(n) => {
                out.insert(Address::Webhook { name: n.clone() });
            }
            Target::Console => {
                out.insert(Address::Console);
            }
        }
    }

    fn person(&self, id: &str, via: &[Method], phone_ok: bool, out: &mut BTreeSet<Address>) {
        let Some(p) = self.directory.people.get(id) else {
            return;
        };
        for m in via {
            let a = match m {
                Method::Email => p.email.clone().map(|e| Address::Email { to: vec![e] }),
                Method::Slack => p.slack.clone().map(|u| Address::Slack { channel: u }),
                Method::Sms if phone_ok => p.phone.clone().map(|to| Address::Sms { to }),
                Method::Voice if phone_ok => p.phone.clone().map(|to| Address::Voice { to }),
                Method::Sms | Method::Voice => None,
            };
            out.extend(a);
        }
    }
}

/// What a notification from the state machine means for the alert's escalation:
/// the escalation afterwards (None: there is none) and the messages owed now.
/// `policy` is the one the alert follows now (see `Routing::policy_for`); it is
/// kept for the occurrence.
pub fn on_notification(
    current: Option<Escalation>,
    reason: NotifyReason,
    alert: &Alert,
    policy: &Policy,
    resolver: &Resolver<'_>,
    now: Timestamp,
) -> (Option<Escalation>, Vec<Owed>) {
    match reason {
        NotifyReason::Firing => {
            let esc = Escalation {
                fingerprint: alert.fingerprint,
                incident: alert.incident,
                policy: policy.name.clone(),
                started_at: now,
                next_level: 0,
                due_at: Some(now),
                repeats: 0,
                notified: Notified::default(),
            };
            run_due(esc, reason, alert, resolver, now)
        }
        NotifyReason::AckExpired | NotifyReason::SilenceEnded | NotifyReason::Unacknowledged => {
            // Escalation starts again from level 1, for the same occurrence.
            let mut esc = current.unwrap_or_else(|| Escalation {
                fingerprint: alert.fingerprint,
                incident: alert.incident,
                policy: policy.name.clone(),
                started_at: now,
                next_level: 0,
                due_at: None,
                repeats: 0,
                notified: Notified::default(),
            });
            esc.started_at = now;
            esc.next_level = 0;
            esc.repeats = 0;
            esc.due_at = Some(now);
            if alert.state != State::Firing {
                // Resumed into a state that does not page (still silenced by another
                // silence, or acked again): wait.
                esc.due_at = None;
                return (Some(esc), Vec::new());
            }
            run_due(esc, reason, alert, resolver, now)
        }
        NotifyReason::Acknowledged => {
            let Some(mut esc) = current else {
                return (None, Vec::new());
            };
            esc.due_at = None;
            // Not by phone: an ack is news, not a page. A mail joins its thread.
            let owed = updates(&esc, reason, |a| {
                matches!(
                    a,
                    Address::Slack { .. }
                        | Address::Console
                        | Address::Webhook { .. }
                        | Address::Email { .. }
                )
            });
            (Some(esc), owed)
        }
        NotifyReason::Resolved => {
            let Some(esc) = current else {
                return (None, Vec::new());
            };
            // Everyone who was paged hears it is over; a phone call is not the way
            // to say so, an SMS is.
            let mut owed = updates(&esc, reason, |a| !matches!(a, Address::Voice { .. }));
            for a in &esc.notified {
                if let Address::Voice { to } = a {
                    let sms = Address::Sms { to: to.clone() };
                    if !esc.notified.contains(&sms) {
                        owed.push(Owed {
                            address: sms,
                            reason,
                            level: 0,
                            round: round(&esc),
                        });
                    }
                }
            }
            (None, owed)
        }
    }
}

impl Escalation {
    /// Notes that a page of this occurrence is leaving for `address`.
    pub fn paged(&mut self, address: &Address) {
        // An Alertmanager is told of acks (its silence), never paged: an unack's
        // message to it leaving does not make it one to tell of the resolve.
        if !matches!(address, Address::Alertmanager { .. }) {
            self.notified.insert(address.clone());
        }
    }
}

/// Runs the steps owed at `now`, if the alert still pages. Call when `due_at` has
/// come; a step not yet due does nothing.
pub fn on_due(
    esc: Escalation,
    alert: &Alert,
    resolver: &Resolver<'_>,
    now: Timestamp,
) -> (Option<Escalation>, Vec<Owed>) {
    match alert.state {
        State::Firing => run_due(esc, NotifyReason::Firing, alert, resolver, now),
        // Acked or silenced: paused until something restarts it.
        State::Acknowledged | State::Suppressed => (
            Some(Escalation {
                due_at: None,
                ..esc
            }),
            Vec::new(),
        ),
        State::Inactive | State::Pending | State::Resolved => (None, Vec::new()),
    }
}

fn run_due(
    mut esc: Escalation,
    reason: NotifyReason,
    alert: &Alert,
    resolver: &Resolver<'_>,
    now: Timestamp,
) -> (Option<Escalation>, Vec<Owed>) {
    let Some(due) = esc.due_at else {
        return (Some(esc), Vec::new());
    };
    if due > now {
        return (Some(esc), Vec::new());
    }
    let Some(policy) = resolver.routing.policies.get(&esc.policy) else {
        // The policy was removed by a reload: follow the one routing picks now.
        esc.policy = resolver
            .routing
            .policy_for(&alert.labels, None)
            .name
            .clone();
        return run_due(esc, reason, alert, resolver, now);
    };
    let severity = alert.labels.get("severity").unwrap_or("");
    let mut owed = Vec::new();
    let run = |esc: &mut Escalation, index: usize, owed: &mut Vec<Owed>| {
        let level = &policy.levels[index];
        let r = round(esc);
        for address in resolver.addresses(policy, level, severity, now) {
            owed.push(Owed {
                address,
                reason,
                level: index as u32 + 1,
                round: r.clone(),
            });
        }
    };
    let levels = policy.levels.len();
    if esc.next_level >= levels {
        // Past the last level: repeat it while nobody acks.
        if levels > 0 {
            esc.repeats += 1;
            run(&mut esc, levels - 1, &mut owed);
        }
    } else {
        // Every level whose time has come (several after a long pause or restart).
        while esc.next_level < levels && esc.started_at + policy.levels[esc.next_level].after <= now
        {
            let i = esc.next_level;
            run(&mut esc, i, &mut owed);
            esc.next_level += 1;
        }
    }
    esc.due_at = Some(next_due(&esc, policy, now));
    (Some(esc), owed)
}

/// When the step after the current one is owed.
fn next_due(esc: &Escalation, policy: &Policy, now: Timestamp) -> Timestamp {
    match policy.levels.get(esc.next_level) {
        Some(level) => esc.started_at + level.after,
        None => now + policy.repeat_interval,
    }
}

/// Owed updates to the addresses already notified that `keep` selects.
fn updates(esc: &Escalation, reason: NotifyReason, keep: impl Fn(&Address) -> bool) -> Vec<Owed> {
    esc.notified
        .iter()
        .filter(|a| keep(a))
        .map(|a| Owed {
            address: a.clone(),
            reason,
            level: 0,
            round: round(esc),
        })
        .collect()
}

/// Names one pass of the escalation: a restart from level 1 or a repeat is a new
/// round, so its messages get new idempotency keys.
fn round(esc: &Escalation) -> String {
    format!("{}r{}", esc.started_at.0, esc.repeats)
}
