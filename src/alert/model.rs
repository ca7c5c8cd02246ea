//! What an alert is and remembers between evaluations, and the per-rule parameters
//! that drive its transitions.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::labels::{self, Fingerprint, Labels, Pairs};
use crate::rules::model::{AlertRule, Hold};

/// The lifecycle state. Silences are tracked beside it (`Alert::silenced_by`);
/// `Suppressed` is the state of an alert that fired while a silence matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The condition does not hold (or never did).
    Inactive,
    /// The condition holds but not yet for long enough; never notifies.
    Pending,
    Firing,
    /// Firing, and a person has taken it: escalation stops.
    Acknowledged,
    /// Was firing; its incident is closed. Kept for review and for re-firing.
    Resolved,
    /// Firing or acknowledged while a silence matches; `resume_to` says which.
    Suppressed,
}

impl State {
    pub const ALL: [State; 6] = [
        State::Inactive,
        State::Pending,
        State::Firing,
        State::Acknowledged,
        State::Resolved,
        State::Suppressed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            State::Inactive => "inactive",
            State::Pending => "pending",
            State::Firing => "firing",
            State::Acknowledged => "acknowledged",
            State::Resolved => "resolved",
            State::Suppressed => "suppressed",
        }
    }

    /// Firing, acknowledged or suppressed: the alert has fired and not resolved.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            State::Firing | State::Acknowledged | State::Suppressed
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who took the alert, from where, and when (the start of `ack_timeout`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub actor: String,
    /// The interface the ack came through: "slack", "http", "cli".
    pub via: String,
    pub note: Option<String>,
    pub at: Timestamp,
}

/// One alert instance: a rule and one series. Persisted as is (JSON in the store), so
/// every field a restart must not forget lives here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub fingerprint: Fingerprint,
    /// The rule (alert) name.
    pub rule: String,
    /// The full alert labels, `alertname` and `severity` included.
    pub labels: Labels,
    pub state: State,
    /// The short number people type (`ack 42`); a new one each time the alert fires.
    pub incident: Option<u64>,
    /// When the condition started holding: the progress of `for`, kept across
    /// restarts so a pending alert does not start over.
    pub active_since: Option<Timestamp>,
    /// Evaluations in a row at which the condition held (`for N evaluations`).
    pub consecutive: u32,
    /// Evaluations in a row at which the clear condition held, while active
    /// (`resolve when ... for N evaluations`).
    #[serde(default)]
    pub consecutive_clear: u32,
    pub fired_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    /// When the clear condition started holding, while active: the progress of
    /// keep-firing-for and of `resolve when ... for D`.
    pub cleared_since: Option<Timestamp>,
    /// The last evaluated value, for messages. Non-finite values survive JSON.
    #[serde(with = "json_f64")]
    pub value: f64,
    /// Boxed, as `external`: few alerts are acked at a time.
    pub ack: Option<Box<Ack>>,
    /// The ids of the silences that currently match.
    #[serde(default)]
    pub silenced_by: BTreeSet<String>,
    /// The state to go back to when the last silence ends (`Suppressed` only).
    pub resume_to: Option<State>,
    /// When the alert last fired or resolved by itself, within `flap_window`.
    #[serde(default)]
    pub recent_changes: Vec<Timestamp>,
    /// Changing too often: firing and resolved notifications are held.
    #[serde(default)]
    pub flapping: bool,
    /// Set by a manual resolve: the condition must stop holding once before the
    /// alert may fire again, or the next evaluation would undo the resolve.
    #[serde(default)]
    pub awaiting_clear: bool,
    /// Set for alerts that another system evaluated (an Alertmanager webhook, a
    /// Prometheus posting to `/api/v2/alerts`): what it said about the alert.
    /// Boxed: most of an alert's size, and held by every alert in the engine's
    /// map whether it came from another system or not.
    #[serde(default)]
    pub external: Option<Box<External>>,
}

/// What the sending system said about an alert it evaluated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct External {
    /// When the sender says this occurrence started: with the fingerprint, the
    /// identity of one occurrence, so duplicates and stale updates are recognised.
    pub starts_at: Timestamp,
    /// When the sender says it ends if not refreshed (Prometheus' endsAt).
    pub ends_at: Option<Timestamp>,
    pub annotations: Annotations,
    pub generator_url: Option<String>,
    /// The `externalURL` of the Alertmanager whose webhook brought it: where an
    /// ack can silence it (see `[[channels.alertmanager]]`).
    // Stored: `default` for older records, never `skip_serializing_if` (the
    // store's encoding has no field names; see `store/codec.rs`).
    #[serde(default)]
    pub external_url: Option<String>,
    /// The Alertmanager group (`groupKey`) it came in, for one incident per group.
    #[serde(default)]
    pub group_key: Option<String>,
}

/// An external alert's annotations, sorted by name, packed as label sets are
/// ([`Pairs`]: two allocations, where a `BTreeMap` took a 500-byte node even for
/// one entry, and every firing alert holds one). Written as a map, as the
/// `BTreeMap` it replaced was: stored records read the same.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Annotations(Pairs);

impl Annotations {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name)
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + Clone {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_map(&self) -> std::collections::BTreeMap<String, String> {
        self.0.to_map()
    }
}

impl From<std::collections::BTreeMap<String, String>> for Annotations {
    fn from(map: std::collections::BTreeMap<String, String>) -> Annotations {
        Annotations(Pairs::collect(map))
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Annotations {
    /// A later duplicate name wins, as in a map.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Annotations {
        Annotations(Pairs::collect(pairs))
    }
}

impl std::ops::Index<&str> for Annotations {
    type Output = str;
    fn index(&self, name: &str) -> &str {
        self.get(name)
            .unwrap_or_else(|| panic!("no annotation {name:?}"))
    }
}

impl Serialize for Annotations {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Annotations {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Annotations, D::Error> {
        labels::read_map(d).map(|pairs| Annotations(Pairs::from_vec(pairs)))
    }
}

impl Alert {
    pub fn new(fingerprint: Fingerprint, rule: String, labels: Labels) -> Alert {
        Alert {
            fingerprint,
            rule,
            labels,
            state: State::Inactive,
            incident: None,
            active_since: None,
            consecutive: 0,
            consecutive_clear: 0,
            fired_at: None,
            resolved_at: None,
            cleared_since: None,
            value: 0.0,
            ack: None,
            silenced_by: BTreeSet::new(),
            resume_to: None,
            recent_changes: Vec::new(),
            flapping: false,
            awaiting_clear: false,
            external: None,
        }
    }
}

/// The parts of a rule (and of its escalation) that the state machine obeys.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// How long the condition must hold before firing (`for`).
    pub hold: Hold,
    /// Some when the rule has `resolve when`: then only that condition clears an
    /// active alert, held this long (hysteresis).
    pub resolve_hold: Option<Hold>,
    /// Keep firing this long after the condition clears (Prometheus'
    /// `keep_firing_for`).
    pub keep_firing_for: Option<Duration>,
    /// An ack older than this no longer holds back escalation. `AckExpired` events
    /// that arrive earlier are stale timers and are ignored.
    pub ack_timeout: Option<Duration>,
    /// More fire/resolve changes than this within `flap_window` is flapping.
    pub flap_max_changes: u32,
    pub flap_window: Duration,
}

impl Params {
    pub const DEFAULT_FLAP_MAX_CHANGES: u32 = 6;
    pub const DEFAULT_FLAP_WINDOW: Duration = Duration::from_secs(3600);

    /// The rule's holds with the default flapping limits. Ack timeouts belong to
    /// escalation policies, not rules: set `ack_timeout` from the policy.
    pub fn from_rule(rule: &AlertRule) -> Params {
        Params {
            hold: rule.condition.hold,
            resolve_hold: rule.resolve_when.as_ref().map(|c| c.hold),
            keep_firing_for: rule.keep_firing_for,
            ..Params::default()
        }
    }
}

impl Default for Params {
    fn default() -> Self {
        Params {
            hold: Hold::Immediately,
            resolve_hold: None,
            keep_firing_for: None,
            ack_timeout: None,
            flap_max_changes: Self::DEFAULT_FLAP_MAX_CHANGES,
            flap_window: Self::DEFAULT_FLAP_WINDOW,
        }
    }
}

/// JSON has no NaN or infinity (serde_json writes them as `null` and then cannot
/// read them back), so non-finite values are written as Prometheus writes them:
/// `"NaN"`, `"+Inf"`, `"-Inf"`. Binary formats (the store's) take any f64 as is.
mod json_f64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() || !s.is_human_readable() {
            s.serialize_f64(*v)
        } else if v.is_nan() {
            s.serialize_str("NaN")
        } else if *v > 0.0 {
            s.serialize_str("+Inf")
        } else {
            s.serialize_str("-Inf")
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Number(f64),
        Text(String),
        Null(()),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        if !d.is_human_readable() {
            return f64::deserialize(d);
        }
        Ok(match Repr::deserialize(d)? {
            Repr::Number(v) => v,
            Repr::Text(t) => match t.as_str() {
                "+Inf" | "Inf" | "inf" => f64::INFINITY,
                "-Inf" | "-inf" => f64::NEG_INFINITY,
                _ => t.parse().unwrap_or(f64::NAN),
            },
            Repr::Null(()) => f64::NAN,
        })
    }
}
