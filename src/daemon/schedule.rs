//! The one deadline queue. Every timed action of the daemon is a [`Due`] key with
//! the instant it is owed at; the loop sleeps until the earliest one (or until
//! something new arrives), and takes everything due at `now` in one turn.
//!
//! Keys are re-armed from the state they belong to after every commit and after
//! they are handled (`Core::arm`), so the queue never holds a second
//! truth: a deadline that state moved later is found early, checked, and re-armed.

use std::collections::{BTreeSet, HashMap};

use crate::clock::Timestamp;
use crate::labels::Fingerprint;

/// What a deadline is for. The order is the order of handling at one instant:
/// silences and expiries change alert state before the escalations they pause,
/// and messages go after the state changes that owe them.
///
/// Sixteen bytes: a firing alert has two deadlines (its expiry and its next
/// escalation step), each held twice (by time and by key), so a storm of 100,000
/// holds 400,000 of these; a silence's id is boxed to keep them small.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Due {
    /// An operator's silence starts or ends.
    Silence(Box<String>),
    /// A maintenance window (by index in the config) opens or closes.
    Maintenance(usize),
    /// An external alert reaches its `endsAt` without being refreshed.
    Expiry(Fingerprint),
    /// An ack is older than its policy's `ack_timeout`.
    AckTimeout(Fingerprint),
    /// A flapping external alert may have calmed down.
    Flapping(Fingerprint),
    /// The rules' evaluation interval, and what rides on it (series trim, `endsAt`
    /// refreshes written, deferred commits synced, the overdue audit).
    Evaluation,
    /// An alert's next escalation step (a level, or a repeat of the last one).
    Escalation(Fingerprint),
    /// The outbox's earliest message (group wait, phone window, retry, pacing).
    Deliveries,
    /// A scheduled report (by index in the config), or its retry.
    Report(usize),
    /// The next batch of the retention sweep, or the next sweep.
    Retention,
    /// Ask an Alertmanager (by index in `[[channels.alertmanager]]`) which of the
    /// alerts tocsin silenced there it still holds.
    Upstream(usize),
}

/// Deadlines by key, ordered by time.
#[derive(Debug, Default)]
pub struct Schedule {
    queue: BTreeSet<(Timestamp, Due)>,
    at: HashMap<Due, Timestamp>,
}

impl Due {
    /// The deadlines every alert has: its `endsAt`, its ack's timeout, the end of
    /// its flapping hold.
    pub fn of_alert(fp: Fingerprint) -> [Due; 3] {
        [Due::Expiry(fp), Due::AckTimeout(fp), Due::Flapping(fp)]
    }
}

impl Schedule {
    /// Sets `due`'s deadline to `at`, replacing the one it had; `None` clears it.
    pub fn set(&mut self, due: Due, at: Option<Timestamp>) {
        match at {
            Some(t) => {
                if let Some(old) = self.at.insert(due.clone(), t) {
                    if old == t {
                        return;
                    }
                    self.queue.remove(&(old, due.clone()));
                }
                self.queue.insert((t, due));
            }
            None => {
                if let Some(old) = self.at.remove(&due) {
                    self.queue.remove(&(old, due));
                }
            }
        }
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Timestamp> {
        self.queue.first().map(|(t, _)| *t)
    }

    /// When `due` is owed, if it is scheduled.
    pub fn when(&self, due: &Due) -> Option<Timestamp> {
        self.at.get(due).copied()
    }

    /// Removes and returns every key due at `now`, in order of time, then of kind.
    pub fn take_due(&mut self, now: Timestamp) -> Vec<Due> {
        let mut out = Vec::new();
        while let Some((t, _)) = self.queue.first() {
            if *t > now {
                break;
            }
            let (_, due) = self.queue.pop_first().expect("just looked");
            self.at.remove(&due);
            out.push(due);
        }
        out
    }

    /// Replaces every deadline with these (of two for one key, the later in the
    /// list wins): what `set` would leave, built at once, in full tree nodes
    /// where one by one would leave them part empty.
    pub fn replace_all(&mut self, deadlines: Vec<(Due, Timestamp)>) {
        let mut at = HashMap::with_capacity(deadlines.len());
        at.extend(deadlines);
        let mut queue: Vec<(Timestamp, Due)> = at.iter().map(|(d, t)| (*t, d.clone())).collect();
        queue.sort_unstable();
        self.queue = BTreeSet::from_iter(queue);
        self.at = at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    #[test]
    fn the_earliest_deadline_comes_first_and_a_key_has_one_deadline() {
        let mut s = Schedule::default();
        s.set(Due::Escalation(Fingerprint(1)), Some(t(300)));
        s.set(Due::Evaluation, Some(t(200)));
        s.set(Due::Escalation(Fingerprint(1)), Some(t(100)));
        assert_eq!(s.next(), Some(t(100)));
        s.set(Due::Escalation(Fingerprint(1)), None);
        assert_eq!(s.next(), Some(t(200)));
        assert_eq!(s.when(&Due::Escalation(Fingerprint(1))), None);
    }

    #[test]
    fn replacing_all_deadlines_leaves_what_setting_each_would() {
        let deadlines = vec![
            (Due::Escalation(Fingerprint(2)), t(300)),
            (Due::Evaluation, t(200)),
            (Due::Escalation(Fingerprint(1)), t(300)),
            (Due::Escalation(Fingerprint(2)), t(100)),
        ];
        let mut one_by_one = Schedule::default();
        one_by_one.set(Due::Report(0), Some(t(50)));
        for (due, at) in deadlines.clone() {
            one_by_one.set(due, Some(at));
        }
        one_by_one.set(Due::Report(0), None);
        let mut at_once = Schedule::default();
        at_once.set(Due::Report(0), Some(t(50)));
        at_once.replace_all(deadlines);
        assert_eq!(at_once.when(&Due::Report(0)), None);
        assert_eq!(at_once.next(), Some(t(100)));
        assert_eq!(at_once.queue, one_by_one.queue);
        assert_eq!(at_once.at, one_by_one.at);
        assert_eq!(
            at_once.take_due(t(300)),
            [
                Due::Escalation(Fingerprint(2)),
                Due::Evaluation,
                Due::Escalation(Fingerprint(1)),
            ]
        );
    }

    #[test]
    fn a_key_takes_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Due>(), 16);
    }

    #[test]
    fn what_is_due_leaves_in_time_order_then_by_kind() {
        let mut s = Schedule::default();
        s.set(Due::Deliveries, Some(t(100)));
        s.set(Due::Escalation(Fingerprint(7)), Some(t(100)));
        s.set(Due::Silence(Box::new("s".into())), Some(t(100)));
        s.set(Due::Evaluation, Some(t(50)));
        s.set(Due::Report(0), Some(t(101)));
        assert_eq!(
            s.take_due(t(100)),
            [
                Due::Evaluation,
                Due::Silence(Box::new("s".into())),
                Due::Escalation(Fingerprint(7)),
                Due::Deliveries,
            ]
        );
        assert_eq!(s.next(), Some(t(101)));
        assert!(s.take_due(t(100)).is_empty());
    }
}

/// Between two sweeps.
pub(super) const EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Where the retention sweep is (`retention.rs` moves it): kept in the core
/// beside the queue whose `Due::Retention` it times.
#[derive(Debug, Default)]
pub(super) struct Sweep {
    /// The alerts still to look at in this sweep, highest fingerprint first (taken
    /// from the end). Empty between sweeps.
    pub left: Vec<Fingerprint>,
    /// When the next turn of the sweep, or the next sweep, is due.
    pub next: Option<Timestamp>,
}
