//! Where a message goes: what a policy target resolves to when a level runs, and
//! what the outbox and the channels carry.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a message goes. Ordered and serializable: escalation remembers the set of
/// addresses it notified, so a resolve reaches exactly those.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Address {
    /// Standard output of the daemon.
    Console,
    /// A Slack channel name (`#alerts-critical`), channel id (`C123`) or, with a
    /// bot token, a user id (`U123`) for a direct message.
    Slack { channel: String },
    /// One mail to these recipients (a person, or a group's list).
    Email { to: Vec<String> },
    /// An SMS to an E.164 number.
    Sms { to: String },
    /// A voice call to an E.164 number.
    Voice { to: String },
    /// A generic JSON webhook, by its configured name.
    Webhook { name: String },
    /// An Alertmanager an alert came from, by its configured name: an ack
    /// silences the alert there, and its end expires the silence.
    Alertmanager { name: String },
}

/// JSON (files of schema version 3, read when they are migrated) names the
/// channel in a `via` field: `{"via": "slack", "channel": "#ops"}`. Binary formats
/// (the store's) cannot read such a tag before knowing the variant, so they write
/// the variant's index first.
impl Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            Tagged::serialize(self, s)
        } else {
            Indexed::serialize(self, s)
        }
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
        if d.is_human_readable() {
            Tagged::deserialize(d)
        } else {
            Indexed::deserialize(d)
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Address", tag = "via", rename_all = "snake_case")]
enum Tagged {
    Console,
    Slack { channel: String },
    Email { to: Vec<String> },
    Sms { to: String },
    Voice { to: String },
    Webhook { name: String },
    Alertmanager { name: String },
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Address")]
enum Indexed {
    Console,
    Slack { channel: String },
    Email { to: Vec<String> },
    Sms { to: String },
    Voice { to: String },
    Webhook { name: String },
    Alertmanager { name: String },
}

impl Address {
    /// The channel's name, for metrics and logs: `slack`, `email`, `sms`, ...
    pub fn channel(&self) -> &'static str {
        match self {
            Address::Console => "console",
            Address::Slack { .. } => "slack",
            Address::Email { .. } => "email",
            Address::Sms { .. } => "sms",
            Address::Voice { .. } => "voice",
            Address::Webhook { .. } => "webhook",
            Address::Alertmanager { .. } => "alertmanager",
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Console => f.write_str("console"),
            Address::Slack { channel } => write!(f, "slack:{channel}"),
            Address::Email { to } => write!(f, "email:{}", to.join(",")),
            Address::Sms { to } => write!(f, "sms:{to}"),
            Address::Voice { to } => write!(f, "voice:{to}"),
            Address::Webhook { name } => write!(f, "webhook:{name}"),
            Address::Alertmanager { name } => write!(f, "alertmanager:{name}"),
        }
    }
}
