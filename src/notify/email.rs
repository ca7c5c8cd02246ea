//! Email over SMTP (lettre): text and HTML parts, every mail of one alert
//! occurrence in one thread.

use std::time::Duration;

use super::{Delivered, Message, SendError};
use crate::config::Secret;

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// Implicit TLS from the first byte (port 465).
    Wrapper,
    /// Plain EHLO, then STARTTLS is required (port 587).
    StartTls,
    /// No TLS: a local relay or a test server only.
    None,
}

/// `[channels.email]`, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct EmailSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The sender, `tocsin <alerts@example.com>`.
    pub from: String,
    /// The right-hand side of Message-IDs (`<alert.…@{domain}>`).
    pub message_id_domain: String,
    pub timeout: Duration,
}

pub struct Email {
    settings: EmailSettings,
}

impl Email {
    pub fn new(settings: EmailSettings) -> Result<Email, String> {
        Ok(Email { settings })
    }

    pub async fn send(&self, to: &[String], msg: &Message) -> Result<Delivered, SendError> {
        let _ = (to, msg, &self.settings);
        Err(SendError::permanent("email: not built yet"))
    }
}
