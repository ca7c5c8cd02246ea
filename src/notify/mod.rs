//! Channels: how a notification leaves tocsin.
//!
//! The outbox (`crate::outbox`) decides what is owed to whom and when; a channel
//! only turns one [`Message`] into one request to the outside world and says
//! whether it went through. Channels never read the store or the engine: a message
//! carries snapshots of its alerts, so an outbox entry written before a crash can be
//! sent after the restart exactly as it was meant.

pub mod alertmanager;
pub mod console;
pub mod email;
mod fit;
mod mail;
pub mod slack;
pub mod sms;
pub mod voice;
pub mod webhook;

pub use fit::ranges;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alert::{NotifyReason, State};
use crate::clock::Timestamp;
use crate::escalation::Address;
use crate::labels::Fingerprint;

/// An alert as a message shows it, taken when the notification was owed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertSnapshot {
    pub fingerprint: Fingerprint,
    pub incident: Option<u64>,
    /// The rule (alert) name, e.g. `投稿成功率低下`.
    pub rule: String,
    /// `critical`, `warning`, `info` (or whatever the labels say; may be empty).
    pub severity: String,
    /// Every label, `alertname` and `severity` included.
    pub labels: BTreeMap<String, String>,
    /// Rendered annotations: `summary`, `description`, `impact`, `action`, ...
    pub annotations: BTreeMap<String, String>,
    pub state: State,
    pub fired_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    /// Who acked, and when, while acknowledged.
    pub acked_by: Option<String>,
    pub acked_at: Option<Timestamp>,
    /// What the person who acked wrote.
    // `default` reads snapshots stored before these fields. Never
    // `skip_serializing_if`: the store's encoding (postcard, `store/codec.rs`)
    // has no field names, so a skipped field shifts every byte after it and the
    // outbox record no longer reads. Webhooks get `null`, as for `acked_by`.
    #[serde(default)]
    pub ack_note: Option<String>,
    /// Who resolved it by hand, and what they wrote; None when its condition or
    /// its sender resolved it.
    #[serde(default)]
    pub resolved_by: Option<String>,
    #[serde(default)]
    pub resolve_note: Option<String>,
    /// Where the alert came from, when another system evaluated it.
    pub generator_url: Option<String>,
}

/// One message to one address, about one or more alerts (grouped).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The idempotency key: the same across retries and restarts, different for
    /// every distinct notification. Webhooks receive it; the notification log uses
    /// it so a message is never sent twice once it was confirmed.
    pub key: String,
    pub reason: NotifyReason,
    /// The escalation level that owes this message, from 1; 0 for messages that are
    /// not pages (acked, resolved updates).
    pub level: u32,
    /// At least one alert; several when alerts were grouped.
    pub alerts: Vec<AlertSnapshot>,
    /// A reference returned when an earlier message about the same alert was
    /// delivered on this address ([`Delivered::reference`]), so the channel can
    /// edit it (Slack `chat.update`) or thread to it. None for a first message.
    pub update: Option<String>,
    /// When the message was owed.
    pub at: Timestamp,
}

/// What a channel reports after a message went through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// A handle for later updates of this message (Slack: `"{channel_id}:{ts}"`;
    /// email: the Message-ID of the thread root), if the channel has one.
    pub reference: Option<String>,
}

/// Why a message did not go through.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later: a 5xx, a 429, a timeout, a refused connection, an
    /// SMTP 4xx. `after` is the wait the other side asked for (Retry-After).
    #[error("{reason}")]
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Will fail the same way every time: a bad address, bad credentials, a 4xx
    /// that is not a rate limit. The outbox falls back at once.
    #[error("{reason}")]
    Permanent { reason: String },
}

impl SendError {
    pub fn retry(reason: impl Into<String>) -> SendError {
        SendError::Retry {
            reason: reason.into(),
            after: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> SendError {
        SendError::Permanent {
            reason: reason.into(),
        }
    }
}

impl AlertSnapshot {
    /// The alert as a message shows it, with its annotations rendered.
    pub fn of(alert: &crate::alert::Alert, annotations: BTreeMap<String, String>) -> AlertSnapshot {
        AlertSnapshot {
            fingerprint: alert.fingerprint,
            incident: alert.incident,
            rule: alert.rule.clone(),
            severity: alert.labels.get("severity").unwrap_or("").to_string(),
            labels: alert.labels.to_map(),
            annotations,
            state: alert.state,
            fired_at: alert.fired_at,
            resolved_at: alert.resolved_at,
            acked_by: alert.ack.as_ref().map(|a| a.actor.clone()),
            acked_at: alert.ack.as_ref().map(|a| a.at),
            ack_note: alert.ack.as_ref().and_then(|a| a.note.clone()),
            resolved_by: None,
            resolve_note: None,
            generator_url: alert
                .external
                .as_ref()
                .and_then(|e| e.generator_url.clone()),
        }
    }
}

/// The headline every channel starts with, from the seed's message formats:
/// `:rotating_light: CRITICAL: 投稿成功率低下` style words without the Slack parts.
pub fn severity_word(severity: &str) -> String {
    if severity.is_empty() {
        "ALERT".to_string()
    } else {
        severity.to_uppercase()
    }
}

/// The most severe of some severities (critical, warning, anything else, info), so
/// a group holding one critical alert pages like a critical one.
pub fn most_severe<'a>(severities: impl Iterator<Item = &'a str>) -> &'a str {
    let rank = |s: &str| match s.to_ascii_lowercase().as_str() {
        "critical" => 0,
        "warning" => 1,
        "info" => 3,
        _ => 2,
    };
    severities.min_by_key(|s| rank(s)).unwrap_or("")
}

/// Every configured channel, and the one place a message is sent through.
pub struct Channels {
    console: bool,
    slack: Option<slack::Slack>,
    email: Option<email::Email>,
    sms: Option<sms::Twilio>,
    webhooks: std::collections::HashMap<String, webhook::Webhook>,
    /// The Alertmanagers acks silence alerts in, by name.
    alertmanagers: std::collections::HashMap<String, alertmanager::Alertmanager>,
    /// For answers to Slack interactions (`response_url`), which need no token.
    responses: reqwest::Client,
    /// When set, messages are recorded here instead of sent (`tocsin test`'s
    /// escalation tests, and tests of the notification path).
    recorder: Option<Recorder>,
}

/// Messages a recording [`Channels`] took, in order, with the time each was sent.
#[derive(Clone)]
pub struct Recorder {
    sent: std::sync::Arc<std::sync::Mutex<Vec<Recorded>>>,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
}

/// One message a recording [`Channels`] took.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    pub at: Timestamp,
    pub address: Address,
    pub message: Message,
}

impl Recorder {
    /// Everything recorded so far, leaving it empty.
    pub fn take(&self) -> Vec<Recorded> {
        std::mem::take(&mut *self.sent.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Channels {
    /// The channels `[channels]` configures. Must run inside the tokio runtime
    /// (the SMTP pool keeps a task).
    pub fn from_config(c: &crate::config::Channels) -> Result<Channels, String> {
        Ok(Channels {
            console: c.console.enabled,
            slack: c.slack.clone().map(slack::Slack::new),
            email: c.email.clone().map(email::Email::new).transpose()?,
            sms: c.sms.clone().map(sms::Twilio::new),
            webhooks: c
                .webhooks
                .iter()
                .map(|w| (w.name.clone(), webhook::Webhook::new(w.clone())))
                .collect(),
            alertmanagers: c
                .alertmanagers
                .iter()
                .map(|a| (a.name.clone(), alertmanager::Alertmanager::new(a.clone())))
                .collect(),
            responses: slack::response_client(),
            recorder: None,
        })
    }

    /// Channels that record every message, with the time on `clock`, instead of
    /// sending it.
    pub fn recording(clock: std::sync::Arc<dyn crate::clock::Clock>) -> (Channels, Recorder) {
        let recorder = Recorder {
            sent: Default::default(),
            clock,
        };
        let channels = Channels {
            console: true,
            slack: None,
            email: None,
            sms: None,
            webhooks: Default::default(),
            alertmanagers: Default::default(),
            responses: slack::response_client(),
            recorder: Some(recorder.clone()),
        };
        (channels, recorder)
    }

    /// The channels that can send, for the start-up log: `console`, `slack`,
    /// `email`, `sms`, `webhook:NAME` (or `recording`).
    pub fn enabled(&self) -> Vec<String> {
        if self.recorder.is_some() {
            return vec!["recording".to_string()];
        }
        let mut names: Vec<String> = [
            (self.console, "console"),
            (self.slack.is_some(), "slack"),
            (self.email.is_some(), "email"),
            (self.sms.is_some(), "sms"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| name.to_string())
        .collect();
        let mut hooks: Vec<&String> = self.webhooks.keys().collect();
        hooks.sort();
        names.extend(hooks.into_iter().map(|n| format!("webhook:{n}")));
        names
    }

    /// Sends a scheduled report by email (recorded, not sent, when recording).
    pub async fn send_report(
        &self,
        name: &str,
        to: &[String],
        report: &crate::report::Report,
    ) -> Result<Delivered, SendError> {
        if self.recorder.is_some() {
            return Ok(Delivered::default());
        }
        match &self.email {
            Some(e) => e.send_report(name, to, report).await,
            None => Err(SendError::permanent("[channels.email] is not configured")),
        }
    }

    /// Answers a Slack interaction through its `response_url` with a message only
    /// the person who clicked sees. The URL is the credential (valid 30 minutes):
    /// it is never logged or stored, so this is not an outbox delivery; a failure
    /// is tried once more after a second.
    pub async fn respond_slack(&self, response_url: &str, text: &str) {
        for attempt in 0..2 {
            match slack::respond(&self.responses, response_url, text).await {
                Ok(()) => return,
                Err(SendError::Retry { reason, .. }) if attempt == 0 => {
                    tracing::warn!(%reason, "slack: cannot reply to a button; trying once more");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "slack: cannot reply to a button");
                    return;
                }
            }
        }
    }

    /// What Alertmanager `name` holds, for the watch of the alerts tocsin
    /// silenced there. Recording channels have none to ask: `None`.
    pub async fn alertmanager_holds(
        &self,
        name: &str,
    ) -> Result<Option<alertmanager::Held>, SendError> {
        if self.recorder.is_some() {
            return Ok(None);
        }
        match self.alertmanagers.get(name) {
            Some(a) => a.holds().await.map(Some),
            None => Err(SendError::permanent(format!(
                "alertmanager {name:?} is not configured"
            ))),
        }
    }

    /// Sends one message to one address.
    pub async fn send(&self, to: &Address, msg: &Message) -> Result<Delivered, SendError> {
        if let Some(r) = &self.recorder {
            let mut log = r.sent.lock().unwrap_or_else(|e| e.into_inner());
            log.push(Recorded {
                at: r.clock.now(),
                address: to.clone(),
                message: msg.clone(),
            });
            return Ok(Delivered {
                reference: Some(format!("recorded:{}", log.len())),
            });
        }
        let missing = |what: &str| SendError::permanent(format!("{what} is not configured"));
        match to {
            Address::Console => {
                if self.console {
                    console::send(msg);
                }
                Ok(Delivered::default())
            }
            Address::Slack { channel } => match &self.slack {
                Some(s) => s.send(channel, msg).await,
                None => Err(missing("[channels.slack]")),
            },
            Address::Email { to } => match &self.email {
                Some(e) => e.send(to, msg).await,
                None => Err(missing("[channels.email]")),
            },
            Address::Sms { to } => match &self.sms {
                Some(t) => t.send_sms(to, msg).await,
                None => Err(missing("[channels.sms]")),
            },
            Address::Voice { to } => match &self.sms {
                Some(t) => t.call(to, msg).await,
                None => Err(missing("[channels.sms]")),
            },
            Address::Webhook { name } => match self.webhooks.get(name) {
                Some(w) => w.send(msg).await,
                None => Err(missing(&format!("webhook {name:?}"))),
            },
            Address::Alertmanager { name } => match self.alertmanagers.get(name) {
                Some(a) => a.send(msg).await,
                None => Err(missing(&format!("alertmanager {name:?}"))),
            },
        }
    }
}
