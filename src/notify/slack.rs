//! Slack: an incoming webhook, or a bot token with `chat.postMessage` and
//! `chat.update` so a message changes when its alert is acked or resolved.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Delivered, Message, SendError};
use crate::config::Secret;

/// `[channels.slack]`, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct SlackSettings {
    /// An incoming webhook URL (the whole URL is the secret). Either this or
    /// `bot_token`; with both, the bot token is used.
    pub webhook_url: Option<Secret>,
    /// A bot token (`xoxb-…`) for `chat.postMessage` / `chat.update`.
    pub bot_token: Option<Secret>,
    /// The Web API base, `https://slack.com/api`; tests point it at a fake.
    pub api_url: String,
    /// Channel by severity: `critical` → `#alerts-critical`, ...
    pub channels: BTreeMap<String, String>,
    /// The channel for a severity not in `channels`.
    pub default_channel: String,
    /// How long one request may take.
    pub timeout: Duration,
}

impl SlackSettings {
    /// The seed's channels: `#alerts-critical`, `#alerts-warning`, `#alerts-info`.
    pub fn seed_channels() -> BTreeMap<String, String> {
        ["critical", "warning", "info"]
            .into_iter()
            .map(|s| (s.to_string(), format!("#alerts-{s}")))
            .collect()
    }
}

pub struct Slack {
    settings: SlackSettings,
}

impl Slack {
    pub fn new(settings: SlackSettings) -> Slack {
        Slack { settings }
    }

    /// The channel for alerts of `severity`.
    pub fn channel_for(&self, severity: &str) -> &str {
        self.settings
            .channels
            .get(severity)
            .unwrap_or(&self.settings.default_channel)
    }

    /// Posts `msg` to `channel`, or updates the message `msg.update` names.
    pub async fn send(&self, channel: &str, msg: &Message) -> Result<Delivered, SendError> {
        let _ = (channel, msg);
        Err(SendError::permanent("slack: not built yet"))
    }
}
