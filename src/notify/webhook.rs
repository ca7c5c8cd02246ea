//! A generic JSON webhook: one POST per message, with its idempotency key.

use std::time::Duration;

use super::{Delivered, Message, SendError};
use crate::config::Secret;

/// One `[[channels.webhook]]`, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookSettings {
    pub name: String,
    /// The URL may hold a credential, so it is a secret.
    pub url: Secret,
    /// Sent as `Authorization: Bearer …` when set.
    pub bearer: Option<Secret>,
    pub timeout: Duration,
}

pub struct Webhook {
    settings: WebhookSettings,
}

impl Webhook {
    pub fn new(settings: WebhookSettings) -> Webhook {
        Webhook { settings }
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    pub async fn send(&self, msg: &Message) -> Result<Delivered, SendError> {
        let _ = msg;
        Err(SendError::permanent("webhook: not built yet"))
    }
}
