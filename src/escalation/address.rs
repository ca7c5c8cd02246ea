//! Where a message goes: what a policy target resolves to when a level runs, and
//! what the outbox and the channels carry.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a message goes. Ordered and serializable: escalation remembers the set of
/// addresses it notified, so a resolve reaches exactly those.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "snake_case")]
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
