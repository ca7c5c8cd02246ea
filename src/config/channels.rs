//! `[channels.*]` → the settings each channel is built from. Secrets become
//! [`Secret`]s as they are read and are never quoted in a message.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use toml::Spanned;

use super::compile::Compiler;
use super::raw::{RawAlertmanager, RawChannels, RawEmail, RawSlack, RawSms, RawWebhook};
use super::{
    AlertmanagerSettings, Channels, Console, EmailSettings, Secret, SlackSettings, SmtpTls,
    TwilioSettings, WebhookSettings,
};
use crate::limits;

/// How long one request to Slack, Twilio or a webhook may take, unless set.
const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// SMTP is slower to answer than an HTTP API (greeting, TLS, auth).
const DEFAULT_SMTP_TIMEOUT: Duration = Duration::from_secs(30);
/// An upstream silence lasts at most this long unless configured.
const DEFAULT_MAX_UPSTREAM_SILENCE: Duration = Duration::from_secs(7 * 86400);
/// How often an Alertmanager is asked about the alerts tocsin silenced there.
const DEFAULT_UPSTREAM_WATCH: Duration = Duration::from_secs(60);
const DEFAULT_SLACK_API: &str = "https://slack.com/api";
const DEFAULT_TWILIO_API: &str = "https://api.twilio.com";
const DEFAULT_SLACK_CHANNEL: &str = "#alerts-info";
/// Three segments: 459 characters in GSM-7, 201 in UCS-2 (Japanese).
const DEFAULT_MAX_SEGMENTS: u32 = 3;
/// Twilio's own recommended limit for one message.
const MAX_SEGMENTS: u64 = limits::twilio::SMS_SEGMENTS as u64;

impl Compiler<'_> {
    pub(super) fn channels(&mut self, raw: &RawChannels, console: Console) -> Channels {
        let (slack, slack_signing_secrets) = match &raw.slack {
            Some(s) => self.slack(s),
            None => (None, Vec::new()),
        };
        Channels {
            console,
            slack,
            slack_signing_secrets,
            email: raw.email.as_ref().and_then(|e| self.email(e.get_ref())),
            sms: raw.sms.as_ref().and_then(|s| self.sms(s.get_ref())),
            webhooks: self.webhooks(&raw.webhook),
            alertmanagers: self.alertmanagers(&raw.alertmanager),
        }
    }

    fn slack(&mut self, raw: &Spanned<RawSlack>) -> (Option<SlackSettings>, Vec<Secret>) {
        let span = raw.span();
        let raw = raw.get_ref();
        let bot_token = raw
            .bot_token
            .as_ref()
            .and_then(|t| self.secret(t, "channels.slack.bot_token"));
        let webhook_url = raw.webhook_url.as_ref().and_then(|u| {
            let url = self.http_url(u, "channels.slack.webhook_url")?;
            Some(Secret::new(url))
        });
        let signing_secrets: Vec<Secret> = raw
            .signing_secrets
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.secret(s, &format!("channels.slack.signing_secrets[{i}]")))
            .collect();
        let api_url = raw
            .api_url
            .as_ref()
            .and_then(|u| self.http_url(u, "channels.slack.api_url"))
            .map_or(DEFAULT_SLACK_API.to_string(), |u| {
                u.trim_end_matches('/').to_string()
            });
        let timeout = self.duration(&raw.timeout, "channels.slack.timeout", DEFAULT_HTTP_TIMEOUT);
        let default_channel = raw
            .default_channel
            .as_ref()
            .and_then(|c| self.slack_channel(c, "channels.slack.default_channel"))
            .unwrap_or_else(|| DEFAULT_SLACK_CHANNEL.to_string());
        let channels = match &raw.channels {
            None => SlackSettings::seed_channels(),
            Some(map) => {
                let mut channels = BTreeMap::new();
                for (severity, channel) in map {
                    let key = format!("channels.slack.channels.{}", severity.get_ref());
                    if let Some(channel) = self.slack_channel(channel, &key) {
                        channels.insert(severity.get_ref().clone(), channel);
                    }
                }
                channels
            }
        };
        if raw.bot_token.is_none() && raw.webhook_url.is_none() {
            self.report(
                span,
                "channels.slack: needs bot_token (to post and update messages) or \
                 webhook_url (an incoming webhook)"
                    .to_string(),
            );
            return (None, signing_secrets);
        }
        if bot_token.is_none() && webhook_url.is_none() {
            // Already reported.
            return (None, signing_secrets);
        }
        let settings = SlackSettings {
            webhook_url,
            bot_token,
            api_url,
            channels,
            default_channel,
            timeout,
        };
        (Some(settings), signing_secrets)
    }

    /// A channel to post to: `#name`, or an id (`C0123ABCD`) as Slack shows it.
    fn slack_channel(&mut self, value: &Spanned<String>, key: &str) -> Option<String> {
        let text = self.nonempty(value, key)?;
        if is_slack_channel(&text) {
            return Some(text);
        }
        self.report(
            value.span(),
            format!("{key}: {text:?} is not a Slack channel: expected #name or a channel id"),
        );
        None
    }

    fn email(&mut self, raw: &RawEmail) -> Option<EmailSettings> {
        let host = self.nonempty(&raw.host, "channels.email.host");
        let tls = match &raw.tls {
            None => Some(SmtpTls::StartTls),
            Some(v) => {
                let text = self.text(v, "channels.email.tls")?;
                match text.trim() {
                    "tls" => Some(SmtpTls::Wrapper),
                    "starttls" => Some(SmtpTls::StartTls),
                    "none" => Some(SmtpTls::None),
                    other => {
                        self.report(
                            v.span(),
                            format!(
                                "channels.email.tls: unknown value {other:?}, expected \
                                 \"tls\", \"starttls\" or \"none\""
                            ),
                        );
                        None
                    }
                }
            }
        };
        let port = match &raw.port {
            None => Some(match tls.unwrap_or(SmtpTls::StartTls) {
                SmtpTls::Wrapper => 465,
                SmtpTls::StartTls => 587,
                SmtpTls::None => 25,
            }),
            Some(p) => match u16::try_from(*p.get_ref()) {
                Ok(port) if port > 0 => Some(port),
                _ => {
                    self.report(
                        p.span(),
                        "channels.email.port: expected a port from 1 to 65535".to_string(),
                    );
                    None
                }
            },
        };
        let username = raw
            .username
            .as_ref()
            .and_then(|u| self.nonempty(u, "channels.email.username"));
        let password = raw
            .password
            .as_ref()
            .and_then(|p| self.secret(p, "channels.email.password"));
        match (&raw.username, &raw.password) {
            (Some(u), None) => self.report(
                u.span(),
                "channels.email.username: a username needs a password".to_string(),
            ),
            (None, Some(p)) => self.report(
                p.span(),
                "channels.email.password: a password needs a username".to_string(),
            ),
            _ => {}
        }
        // A password sent without TLS can be read by anyone on the path; only a
        // relay on this host is safe to reach in clear.
        if let (Some(SmtpTls::None), Some(host), Some(_), Some(t)) =
            (tls, &host, &raw.password, &raw.tls)
            && !is_loopback_host(host)
        {
            self.report(
                t.span(),
                format!(
                    "channels.email.tls: \"none\" would send the password in clear to \
                     {host}; use \"starttls\" or \"tls\", or a relay on this host"
                ),
            );
        }
        let from = self
            .text(&raw.from, "channels.email.from")
            .and_then(
                |from| match from.trim().parse::<lettre::message::Mailbox>() {
                    Ok(mailbox) => Some((from.trim().to_string(), mailbox)),
                    Err(_) => {
                        self.report(
                            raw.from.span(),
                            format!(
                                "channels.email.from: invalid sender {:?}: expected an address \
                             such as \"tocsin <alerts@example.com>\"",
                                from.trim()
                            ),
                        );
                        None
                    }
                },
            );
        let message_id_domain = match &raw.message_id_domain {
            Some(d) => self.nonempty(d, "channels.email.message_id_domain"),
            None => from.as_ref().map(|(_, m)| m.email.domain().to_string()),
        };
        let timeout = self.duration(&raw.timeout, "channels.email.timeout", DEFAULT_SMTP_TIMEOUT);
        Some(EmailSettings {
            host: host?,
            port: port?,
            tls: tls?,
            username,
            password,
            from: from?.0,
            message_id_domain: message_id_domain?,
            timeout,
            // Set with the server's public URL (`Compiler::compile`).
            alerts_url: None,
        })
    }

    fn sms(&mut self, raw: &RawSms) -> Option<TwilioSettings> {
        let account_sid = self
            .text(&raw.account_sid, "channels.sms.account_sid")
            .and_then(|sid| {
                let sid = sid.trim().to_string();
                if is_account_sid(&sid) {
                    return Some(sid);
                }
                self.report(
                    raw.account_sid.span(),
                    "channels.sms.account_sid: expected a Twilio account SID: AC and 32 hex \
                     digits"
                        .to_string(),
                );
                None
            });
        let auth_token = self.secret(&raw.auth_token, "channels.sms.auth_token");
        let from = self.phone(&raw.from, "channels.sms.from");
        let api_url = raw
            .api_url
            .as_ref()
            .and_then(|u| self.http_url(u, "channels.sms.api_url"))
            .map_or(DEFAULT_TWILIO_API.to_string(), |u| {
                u.trim_end_matches('/').to_string()
            });
        let max_segments = match &raw.max_segments {
            None => Some(DEFAULT_MAX_SEGMENTS),
            Some(n) if (1..=MAX_SEGMENTS).contains(n.get_ref()) => Some(*n.get_ref() as u32),
            Some(n) => {
                self.report(
                    n.span(),
                    format!("channels.sms.max_segments: must be from 1 to {MAX_SEGMENTS}"),
                );
                None
            }
        };
        let timeout = self.duration(&raw.timeout, "channels.sms.timeout", DEFAULT_HTTP_TIMEOUT);
        let (voice, voice_language) = self.voice(raw)?;
        Some(TwilioSettings {
            account_sid: account_sid?,
            auth_token: auth_token?,
            from: from?,
            api_url,
            max_segments: max_segments?,
            voice,
            voice_language,
            timeout,
        })
    }

    /// The call voice and its language: a pair Twilio documents, since an invalid
    /// one makes Twilio say nothing (`limits::twilio::VOICES`).
    fn voice(&mut self, raw: &RawSms) -> Option<(String, String)> {
        let voice = match &raw.voice {
            Some(v) => (self.nonempty(v, "channels.sms.voice")?, v.span()),
            None => (limits::twilio::DEFAULT_VOICE.to_string(), 0..0),
        };
        let language = match &raw.voice_language {
            Some(l) => (self.nonempty(l, "channels.sms.voice_language")?, l.span()),
            None => (limits::twilio::DEFAULT_LANGUAGE.to_string(), 0..0),
        };
        let Some(known) = limits::twilio::voice_named(&voice.0) else {
            let span = raw.voice.as_ref().map_or(0..0, |v| v.span());
            let choices = voices_for(&language.0);
            self.report(
                span,
                format!(
                    "channels.sms.voice: {:?} is not a Twilio voice tocsin knows; for {:?} \
                     use one of: {choices}",
                    voice.0, language.0
                ),
            );
            return None;
        };
        if !known.languages.contains(&language.0.as_str()) {
            let span = match (&raw.voice_language, &raw.voice) {
                (Some(l), _) => l.span(),
                (None, Some(v)) => v.span(),
                (None, None) => 0..0,
            };
            self.report(
                span,
                format!(
                    "channels.sms.voice_language: {} does not speak {:?} (it speaks {}); \
                     for {:?} use one of: {}",
                    voice.0,
                    language.0,
                    known.languages.join(", "),
                    language.0,
                    voices_for(&language.0)
                ),
            );
            return None;
        }
        Some((voice.0, language.0))
    }

    fn webhooks(&mut self, raw: &[RawWebhook]) -> Vec<WebhookSettings> {
        let mut names = HashMap::new();
        let mut webhooks = Vec::new();
        for (i, w) in raw.iter().enumerate() {
            let key = |field: &str| format!("channels.webhook[{i}].{field}");
            let name = self.unique_name(&w.name, &key("name"), "webhook", &mut names);
            let url = self.http_url(&w.url, &key("url")).map(Secret::new);
            // Outer None: a bearer was given and refused; inner None: none given.
            let bearer = match &w.bearer {
                None => Some(None),
                Some(b) => self.secret(b, &key("bearer")).map(Some),
            };
            let timeout = self.duration(&w.timeout, &key("timeout"), DEFAULT_HTTP_TIMEOUT);
            if let (Some(name), Some(url), Some(bearer)) = (name, url, bearer) {
                webhooks.push(WebhookSettings {
                    name,
                    url,
                    bearer,
                    timeout,
                });
            }
        }
        webhooks
    }
}

impl Compiler<'_> {
    fn alertmanagers(&mut self, raw: &[RawAlertmanager]) -> Vec<AlertmanagerSettings> {
        let mut names = HashMap::new();
        let mut out = Vec::new();
        for (i, a) in raw.iter().enumerate() {
            let key = |field: &str| format!("channels.alertmanager[{i}].{field}");
            let name = self.unique_name(&a.name, &key("name"), "alertmanager", &mut names);
            let url = self
                .http_url(&a.url, &key("url"))
                .map(|u| u.trim_end_matches('/').to_string());
            let mut external_urls = Vec::new();
            for (j, e) in a.external_urls.iter().enumerate() {
                if let Some(u) = self.http_url(e, &format!("{}[{j}]", key("external_urls"))) {
                    external_urls.push(u.trim_end_matches('/').to_string());
                }
            }
            let mut generator_urls = Vec::new();
            for (j, g) in a.generator_urls.iter().enumerate() {
                if let Some(u) = self.http_url(g, &format!("{}[{j}]", key("generator_urls"))) {
                    generator_urls.push(u);
                }
            }
            let bearer = match &a.bearer {
                None => Some(None),
                Some(b) => self.secret(b, &key("bearer")).map(Some),
            };
            let timeout = self.duration(&a.timeout, &key("timeout"), DEFAULT_HTTP_TIMEOUT);
            let max_silence = self.duration(
                &a.max_silence,
                &key("max_silence"),
                DEFAULT_MAX_UPSTREAM_SILENCE,
            );
            let watch_interval = self.duration(
                &a.watch_interval,
                &key("watch_interval"),
                DEFAULT_UPSTREAM_WATCH,
            );
            let group_incidents = match &a.incident {
                None => false,
                Some(v) => match v.get_ref().trim() {
                    "alert" => false,
                    "group" => true,
                    other => {
                        self.report(
                            v.span(),
                            format!(
                                "{}: {other:?}: \"alert\" (one incident per alert) or \"group\" \
                                 (one per Alertmanager group)",
                                key("incident")
                            ),
                        );
                        false
                    }
                },
            };
            if let (Some(name), Some(url), Some(bearer)) = (name, url, bearer) {
                if external_urls.is_empty() && a.external_urls.is_empty() {
                    external_urls.push(url.clone());
                }
                out.push(AlertmanagerSettings {
                    name,
                    url: Secret::new(url),
                    external_urls,
                    generator_urls,
                    bearer,
                    timeout,
                    max_silence,
                    watch_interval,
                    group_incidents,
                });
            }
        }
        out
    }
}

/// `#name` (lowercase letters, digits, `-`, `_`, as Slack allows), or an id: `C…`
/// (public), `G…` (private), upper-case letters and digits.
fn is_slack_channel(text: &str) -> bool {
    if let Some(name) = text.strip_prefix('#') {
        return !name.is_empty()
            && name
                .chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && c != '#');
    }
    text.len() >= 9
        && text.starts_with(['C', 'G'])
        && text
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// The documented voices for `language`, for a message; all of them when none
/// speaks it.
fn voices_for(language: &str) -> String {
    let all = limits::twilio::VOICES;
    let speaking: Vec<&str> = all
        .iter()
        .filter(|v| v.languages.contains(&language))
        .map(|v| v.name)
        .collect();
    if speaking.is_empty() {
        let languages: std::collections::BTreeSet<&str> = all
            .iter()
            .flat_map(|v| v.languages.iter().copied())
            .collect();
        format!(
            "none; the languages with a documented voice are {}",
            languages.into_iter().collect::<Vec<_>>().join(", ")
        )
    } else {
        speaking.join(", ")
    }
}

fn is_account_sid(sid: &str) -> bool {
    sid.strip_prefix("AC")
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
