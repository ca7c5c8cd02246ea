//! Slack: an incoming webhook, or a bot token with `chat.postMessage` and
//! `chat.update` so a message changes when its alert is acked or resolved.
//!
//! Two halves: [`render`] turns a [`Message`] into Slack's JSON (fallback `text` plus
//! Block Kit `blocks`), a pure function; [`Slack::send`] carries it to Slack and sorts
//! every failure into retry-later or never ([`SendError`]). Retrying itself is the
//! outbox's business, never this module's.
//!
//! Everything that comes from an alert (rule name, labels, annotations, who acked) is
//! escaped for mrkdwn, so a label holding `<!channel>` or `<@U123>` shows as text and
//! pings no one. The only raw mention is tocsin's own `<!channel>` on critical pages.

use std::time::{Duration, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use serde_json::{Value, json};

use super::{AlertSnapshot, Delivered, Message, SendError, most_severe, severity_word};
use crate::alert::{NotifyReason, State};
use crate::clock::Timestamp;
use crate::config::{Secret, SlackSettings};
use crate::escape::mrkdwn;
use crate::limits::slack as limits;

/// Slack `error` codes that mean "not now" rather than "never".
const TRANSIENT_ERRORS: &[&str] = &[
    "ratelimited",
    "rate_limited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

/// `chat.update` errors meaning the original message can no longer be edited (deleted,
/// too old, not ours): the news still has to reach the channel, so it is posted anew.
const UNEDITABLE_ERRORS: &[&str] = &[
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
];

pub struct Slack {
    settings: SlackSettings,
    http: reqwest::Client,
}

impl Slack {
    pub fn new(settings: SlackSettings) -> Slack {
        Slack {
            settings,
            http: crate::tls::http_client()
                .build()
                .expect("a plain client builds"),
        }
    }

    /// The channel for alerts of `severity`.
    pub fn channel_for(&self, severity: &str) -> &str {
        self.settings.channel_for(severity)
    }

    /// Posts `msg` to `channel`, or updates the message `msg.update` names.
    ///
    /// With a bot token the reference of the message is returned
    /// (`"{channel_id}:{ts}"`) so a later message about the same alert can edit it. An
    /// incoming webhook cannot edit, so there an update arrives as a new message and no
    /// reference is returned. An empty `channel` means the channel for the message's
    /// severity.
    pub async fn send(&self, channel: &str, msg: &Message) -> Result<Delivered, SendError> {
        let rendered = render(msg);
        if let Some(token) = present(&self.settings.bot_token) {
            let channel = match channel {
                "" => self.channel_for(&message_severity(&msg.alerts)),
                c => c,
            };
            self.send_with_token(token, channel, msg.update.as_deref(), rendered)
                .await
        } else if let Some(url) = present(&self.settings.webhook_url) {
            self.send_to_webhook(url, &rendered).await
        } else {
            Err(SendError::permanent(
                "slack: neither bot_token nor webhook_url is set",
            ))
        }
    }

    async fn send_with_token(
        &self,
        token: &Secret,
        channel: &str,
        update: Option<&str>,
        rendered: Value,
    ) -> Result<Delivered, SendError> {
        let mut channel = channel;
        if let Some((channel_id, ts)) = update.and_then(parse_reference) {
            let body = with_fields(&rendered, [("channel", channel_id), ("ts", ts)]);
            match self.call(token, "chat.update", &body).await {
                Ok(answer) => return Ok(delivered(&answer)),
                Err(CallError::Refused(code)) if UNEDITABLE_ERRORS.contains(&code.as_str()) => {
                    tracing::info!(
                        error = %code,
                        channel = channel_id,
                        "slack message cannot be edited; posting a new one"
                    );
                    // Where the old message was is where its readers are.
                    channel = channel_id;
                }
                Err(e) => return Err(self.send_error(e, "chat.update", channel_id)),
            }
        }
        let body = with_fields(&rendered, [("channel", channel)]);
        match self.call(token, "chat.postMessage", &body).await {
            Ok(answer) => Ok(delivered(&answer)),
            Err(e) => Err(self.send_error(e, "chat.postMessage", channel)),
        }
    }

    /// One Web API call. Slack answers HTTP 200 to most failures, so success is the
    /// body's `ok`, not the status.
    async fn call(&self, token: &Secret, method: &str, body: &Value) -> Result<Value, CallError> {
        let url = format!("{}/{method}", self.settings.api_url.trim_end_matches('/'));
        let request = self
            .http
            .post(url)
            .bearer_auth(token.expose())
            // Slack wants the charset spelled out on JSON bodies.
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body.to_string());
        let response = self
            .with_timeout(request)
            .send()
            .await
            .map_err(|e| CallError::Failed(SendError::retry(describe(e))))?;
        let status = response.status();
        let after = retry_after(response.headers());
        let text = response
            .text()
            .await
            .map_err(|e| CallError::Failed(SendError::retry(describe(e))))?;
        let answer: Option<Value> = serde_json::from_str(&text).ok();
        let code = answer
            .as_ref()
            .and_then(|a| a.get("error"))
            .and_then(Value::as_str)
            .map(short);
        if !status.is_success() {
            let what = match &code {
                Some(code) => format!("HTTP {} {code}", status.as_u16()),
                None => format!("HTTP {}", status.as_u16()),
            };
            return Err(CallError::Failed(by_status(status, after, what)));
        }
        let Some(answer) = answer else {
            // Whether the message went out is unknown; a retry may duplicate it, which
            // beats losing a page.
            return Err(CallError::Failed(SendError::retry(format!(
                "HTTP {} with a body that is not Slack's JSON",
                status.as_u16()
            ))));
        };
        if answer.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(answer);
        }
        let code = code.unwrap_or_else(|| "unknown_error".to_string());
        if TRANSIENT_ERRORS.contains(&code.as_str()) {
            return Err(CallError::Failed(SendError::Retry {
                reason: code,
                after,
            }));
        }
        Err(CallError::Refused(code))
    }

    /// An incoming webhook: the same body, no channel (the webhook is bound to one),
    /// and a plain-text answer, `ok` or an error code.
    async fn send_to_webhook(
        &self,
        url: &Secret,
        rendered: &Value,
    ) -> Result<Delivered, SendError> {
        let request = self
            .http
            .post(url.expose())
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(rendered.to_string());
        let response =
            self.with_timeout(request).send().await.map_err(|e| {
                SendError::retry(self.scrub(format!("slack webhook: {}", describe(e))))
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(Delivered::default());
        }
        let after = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        let code = short(text.lines().next().unwrap_or("").trim());
        let what = self.scrub(format!("HTTP {} {code}", status.as_u16()));
        Err(prefix(
            by_status(status, after, what.trim_end().to_string()),
            "slack webhook",
        ))
    }

    fn with_timeout(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if self.settings.timeout.is_zero() {
            request
        } else {
            request.timeout(self.settings.timeout)
        }
    }

    fn send_error(&self, e: CallError, method: &str, channel: &str) -> SendError {
        let e = match e {
            CallError::Refused(code) => SendError::permanent(code),
            CallError::Failed(e) => e,
        };
        let e = prefix(e, &format!("slack {method} to {channel}"));
        match e {
            SendError::Retry { reason, after } => SendError::Retry {
                reason: self.scrub(reason),
                after,
            },
            SendError::Permanent { reason } => SendError::permanent(self.scrub(reason)),
        }
    }

    /// Replaces the secrets in a reason with `***`. reqwest's errors have their URL
    /// stripped already ([`describe`]); this is the second lock on the door.
    fn scrub(&self, mut reason: String) -> String {
        let secrets = [&self.settings.webhook_url, &self.settings.bot_token];
        for secret in secrets.into_iter().flatten() {
            if !secret.is_empty() {
                reason = reason.replace(secret.expose(), "***");
            }
        }
        reason
    }
}

/// How a Web API call went wrong.
enum CallError {
    /// Slack said `ok: false` with this error code, which is not a transient one.
    Refused(String),
    /// Anything else, already sorted into retry or permanent.
    Failed(SendError),
}

fn present(secret: &Option<Secret>) -> Option<&Secret> {
    secret.as_ref().filter(|s| !s.is_empty())
}

/// `"C123:1503435956.000247"` → (`C123`, `1503435956.000247`); ts never contains ':'.
fn parse_reference(reference: &str) -> Option<(&str, &str)> {
    let (channel, ts) = reference.split_once(':')?;
    (!channel.is_empty() && !ts.is_empty()).then_some((channel, ts))
}

/// The message's reference from a successful answer. `ts` is kept as the string Slack
/// sent: as a float it would lose digits and no longer name the message.
fn delivered(answer: &Value) -> Delivered {
    let channel = answer.get("channel").and_then(Value::as_str);
    let ts = answer.get("ts").and_then(Value::as_str);
    Delivered {
        reference: channel.zip(ts).map(|(c, ts)| format!("{c}:{ts}")),
    }
}

fn with_fields<const N: usize>(rendered: &Value, fields: [(&str, &str); N]) -> Value {
    let mut body = rendered.clone();
    if let Some(map) = body.as_object_mut() {
        for (k, v) in fields {
            map.insert(k.to_string(), Value::from(v));
        }
    }
    body
}

/// The client for answers to interactions: a timeout, and no redirects (the URL is
/// a credential and must not follow a `Location` elsewhere).
pub(super) fn response_client() -> reqwest::Client {
    crate::tls::http_client()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a plain client builds")
}

/// Posts `text` to an interaction's `response_url`: a message only the person who
/// clicked sees, leaving the original message as it is.
pub(super) async fn respond(
    client: &reqwest::Client,
    response_url: &str,
    text: &str,
) -> Result<(), SendError> {
    let body = json!({
        "response_type": "ephemeral",
        "replace_original": false,
        "text": text,
    });
    let response = client
        .post(response_url)
        .json(&body)
        .send()
        .await
        .map_err(|e| SendError::retry(describe(e)))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    Err(by_status(
        status,
        retry_after(response.headers()),
        format!("response_url answered HTTP {status}"),
    ))
}

/// Retry for a rate limit, a server error or a request timeout; permanent otherwise.
fn by_status(status: StatusCode, after: Option<Duration>, what: String) -> SendError {
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        SendError::Retry {
            reason: what,
            after,
        }
    } else {
        SendError::permanent(what)
    }
}

fn prefix(e: SendError, context: &str) -> SendError {
    match e {
        SendError::Retry { reason, after } => SendError::Retry {
            reason: format!("{context}: {reason}"),
            after,
        },
        SendError::Permanent { reason } => SendError::permanent(format!("{context}: {reason}")),
    }
}

/// `Retry-After` in seconds, the form Slack sends.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A network failure in words, without the URL: a webhook URL is a secret.
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    if causes.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {}", causes.join(": "))
    }
}

/// An error code from the other side, kept short so a stray HTML page does not end up
/// in a log line.
fn short(code: &str) -> String {
    code.chars().take(100).collect()
}

// ---------------------------------------------------------------------------------
// Rendering: pure, so every word a person reads can be tested without a server.

/// Alerts of a grouped message that get their own lines and buttons; the rest are
/// counted. Each takes two blocks, so the message (headline, these, a count and a
/// status line: 23 blocks) stays far below Slack's 50.
pub const LISTED_ALERTS: usize = 10;

pub const ACK_ACTION: &str = "tocsin_ack";
pub const RESOLVE_ACTION: &str = "tocsin_resolve";
pub const SILENCE_1H_ACTION: &str = "tocsin_silence_1h";

/// The body Slack receives, without the channel: `{"text": …, "blocks": […]}`.
/// `text` is the headline, which Slack shows in notifications.
pub fn render(msg: &Message) -> Value {
    json!({
        "text": cap(headline(msg), limits::TEXT),
        "blocks": blocks(msg),
    })
}

/// The headline of a message, in the seed's words: `<!channel> :rotating_light:
/// CRITICAL: 投稿成功率低下`, then what happened (`(escalated: level 2)`,
/// `— ack expired, still firing`) or who took it (`ACKED by alice`).
pub fn headline(msg: &Message) -> String {
    let subject = subject(&msg.alerts);
    let page = || {
        format!(
            "{}{subject}",
            severity_prefix(&message_severity(&msg.alerts))
        )
    };
    match msg.reason {
        NotifyReason::Firing if msg.level > 1 => {
            format!("{} (escalated: level {})", page(), msg.level)
        }
        NotifyReason::Firing => page(),
        NotifyReason::AckExpired => format!("{} — ack expired, still firing", page()),
        NotifyReason::SilenceEnded => format!("{} — silence ended, still firing", page()),
        NotifyReason::Unacknowledged => format!("{} — unacknowledged, still firing", page()),
        NotifyReason::Acknowledged => {
            let who = msg
                .alerts
                .iter()
                .find_map(|a| a.acked_by.as_deref())
                .map_or_else(|| "someone".to_string(), mrkdwn);
            format!(":white_check_mark: ACKED by {who}: {subject}")
        }
        NotifyReason::Resolved => format!(":large_green_circle: RESOLVED: {subject}"),
    }
}

/// The seed's prefix per severity; only critical pages the whole channel.
fn severity_prefix(severity: &str) -> String {
    match severity.to_ascii_lowercase().as_str() {
        "critical" => "<!channel> :rotating_light: CRITICAL: ".to_string(),
        "warning" => ":warning: WARNING: ".to_string(),
        "info" => ":information_source: INFO: ".to_string(),
        _ => format!(":bell: {}: ", mrkdwn(&severity_word(severity))),
    }
}

/// The most severe severity among the alerts, so a group holding one critical alert
/// pages like a critical one.
fn message_severity(alerts: &[AlertSnapshot]) -> String {
    most_severe(alerts.iter().map(|a| a.severity.as_str())).to_string()
}

/// The rule names (escaped, the first three) and, for a group, how many alerts.
fn subject(alerts: &[AlertSnapshot]) -> String {
    const NAMED_RULES: usize = 3;
    let mut rules: Vec<&str> = Vec::new();
    for a in alerts {
        if !rules.contains(&a.rule.as_str()) {
            rules.push(&a.rule);
        }
    }
    let mut s = rules
        .iter()
        .take(NAMED_RULES)
        .map(|r| mrkdwn(r))
        .collect::<Vec<_>>()
        .join(", ");
    if rules.len() > NAMED_RULES {
        s.push_str(", …");
    }
    if alerts.len() > 1 {
        s.push_str(&format!(" ({} alerts)", alerts.len()));
    }
    s
}

fn blocks(msg: &Message) -> Vec<Value> {
    match msg.alerts.as_slice() {
        [alert] => single_alert_blocks(msg, alert),
        alerts => grouped_blocks(msg, alerts),
    }
}

/// One alert: the headline with its annotations, a fields section, then its source,
/// its state and its buttons where there are any.
fn single_alert_blocks(msg: &Message, alert: &AlertSnapshot) -> Vec<Value> {
    let mut text = headline(msg);
    let annotations = annotation_lines(alert);
    if !annotations.is_empty() {
        text.push('\n');
        text.push_str(&annotations);
    }
    let mut blocks = vec![section(text), fields_section(alert)];
    let mut context = Vec::new();
    if let Some(link) = source_link(alert) {
        context.push(link);
    }
    if let Some(status) = status_line(alert, msg.at) {
        context.push(status);
    }
    if !context.is_empty() {
        blocks.push(json!({
            "type": "context",
            "elements": context.into_iter().map(mrkdwn_field).collect::<Vec<_>>(),
        }));
    }
    blocks.extend(actions(alert));
    blocks
}

/// Several alerts: the headline, then per alert one line and its buttons, up to
/// [`LISTED_ALERTS`], then how many more.
fn grouped_blocks(msg: &Message, alerts: &[AlertSnapshot]) -> Vec<Value> {
    let mut blocks = vec![section(headline(msg))];
    for alert in alerts.iter().take(LISTED_ALERTS) {
        let mut text = alert_line(alert);
        if let Some(summary) = alert.annotations.get("summary") {
            text.push('\n');
            text.push_str(&mrkdwn(summary));
        }
        if let Some(status) = status_line(alert, msg.at) {
            text.push('\n');
            text.push_str(&status);
        }
        blocks.push(section(text));
        blocks.extend(actions(alert));
    }
    if alerts.len() > LISTED_ALERTS {
        blocks.push(json!({
            "type": "context",
            "elements": [mrkdwn_field(format!("…and {} more", alerts.len() - LISTED_ALERTS))],
        }));
    }
    if let Some(now) = group_status(alerts) {
        blocks.push(json!({"type": "context", "elements": [mrkdwn_field(now)]}));
    }
    blocks
}

/// `Now: 2 firing · 1 acknowledged · 1 resolved`, once a grouped message is edited
/// because some of its alerts changed; None while all still fire as paged.
fn group_status(alerts: &[AlertSnapshot]) -> Option<String> {
    let mut counts: Vec<(State, usize)> = Vec::new();
    for a in alerts {
        match counts.iter_mut().find(|(s, _)| *s == a.state) {
            Some((_, n)) => *n += 1,
            None => counts.push((a.state, 1)),
        }
    }
    if counts.iter().all(|(s, _)| *s == State::Firing) {
        return None;
    }
    counts.sort();
    let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    Some(format!("Now: {}", parts.join(" · ")))
}

/// `*投稿成功率低下* · #42 · account=a1, host=bot-1`
fn alert_line(alert: &AlertSnapshot) -> String {
    let mut line = format!("*{}* · {}", mrkdwn(&alert.rule), alert_id(alert));
    let labels = series_labels(alert)
        .map(|(k, v)| format!("{}={}", mrkdwn(k), mrkdwn(v)))
        .collect::<Vec<_>>();
    if !labels.is_empty() {
        line.push_str(" · ");
        line.push_str(&labels.join(", "));
    }
    line
}

/// Summary and description as they are, impact and action (and any other annotation)
/// under their names.
fn annotation_lines(alert: &AlertSnapshot) -> String {
    let mut lines = Vec::new();
    for key in ["summary", "description"] {
        if let Some(v) = alert.annotations.get(key) {
            lines.push(mrkdwn(v));
        }
    }
    for (key, name) in [("impact", "Impact"), ("action", "Action")] {
        if let Some(v) = alert.annotations.get(key) {
            lines.push(format!("*{name}:* {}", mrkdwn(v)));
        }
    }
    for (key, v) in &alert.annotations {
        if !matches!(
            key.as_str(),
            "summary" | "description" | "impact" | "action"
        ) {
            lines.push(format!("*{}:* {}", mrkdwn(key), mrkdwn(v)));
        }
    }
    lines.join("\n")
}

/// Severity, incident, the series' labels and when it fired, as a fields section
/// (at most ten fields: labels beyond the room share one).
fn fields_section(alert: &AlertSnapshot) -> Value {
    let severity = if alert.severity.is_empty() {
        "none".to_string()
    } else {
        mrkdwn(&alert.severity)
    };
    let id_field = match alert.incident {
        Some(_) => format!("*Incident*\n{}", alert_id(alert)),
        None => format!("*Fingerprint*\n{}", alert.fingerprint),
    };
    let mut fields = vec![format!("*Severity*\n{severity}"), id_field];
    let fired = alert.fired_at.map(|t| format!("*Fired at*\n{}", utc(t)));
    let room = limits::FIELDS - fields.len() - usize::from(fired.is_some());
    let labels: Vec<(&String, &String)> = series_labels(alert).collect();
    let (own, shared) = if labels.len() > room {
        labels.split_at(room - 1)
    } else {
        (labels.as_slice(), &[][..])
    };
    for (k, v) in own {
        fields.push(format!("*{}*\n{}", mrkdwn(k), mrkdwn(v)));
    }
    if !shared.is_empty() {
        let rest = shared
            .iter()
            .map(|(k, v)| format!("{}={}", mrkdwn(k), mrkdwn(v)))
            .collect::<Vec<_>>()
            .join(", ");
        fields.push(format!("*More labels*\n{rest}"));
    }
    fields.extend(fired);
    json!({
        "type": "section",
        "fields": fields.into_iter().map(mrkdwn_field).collect::<Vec<_>>(),
    })
}

/// The labels that tell one series of a rule from another.
fn series_labels(alert: &AlertSnapshot) -> impl Iterator<Item = (&String, &String)> {
    alert
        .labels
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "alertname" | "severity"))
}

/// `Acknowledged by X at T`, `Resolved at T`: what changed since the page.
fn status_line(alert: &AlertSnapshot, at: Timestamp) -> Option<String> {
    match alert.state {
        State::Acknowledged => {
            let who = alert
                .acked_by
                .as_deref()
                .map_or_else(|| "someone".to_string(), mrkdwn);
            let when = alert.acked_at.unwrap_or(at);
            Some(format!(
                ":white_check_mark: Acknowledged by {who} at {}",
                utc(when)
            ))
        }
        State::Resolved => Some(format!(
            ":large_green_circle: Resolved at {}",
            utc(alert.resolved_at.unwrap_or(at))
        )),
        State::Suppressed => Some(":mute: Silenced".to_string()),
        State::Inactive | State::Pending | State::Firing => None,
    }
}

/// A link to where the alert was evaluated, when it is a plain http(s) URL. A link
/// longer than a context element holds is left out and says so: cut, it would lead
/// nowhere (or somewhere else).
fn source_link(alert: &AlertSnapshot) -> Option<String> {
    let url = alert.generator_url.as_deref()?;
    let plain = (url.starts_with("https://") || url.starts_with("http://"))
        && !url.contains(|c: char| c == '|' || c.is_whitespace());
    if !plain {
        return None;
    }
    let link = format!("<{}|Source>", mrkdwn(url));
    if limits::chars(&link) <= limits::FIELD_TEXT {
        Some(link)
    } else {
        Some(format!(
            "Source link left out: {} characters, more than a Slack message holds",
            url.chars().count()
        ))
    }
}

/// The buttons an alert's state allows: all three while firing, Resolve once acked,
/// none once resolved. The block id names the state, so it changes with every update.
fn actions(alert: &AlertSnapshot) -> Option<Value> {
    let value = alert_value(alert);
    let ack = button("Acknowledge", ACK_ACTION, &value, Some("primary"));
    let resolve = button("Resolve", RESOLVE_ACTION, &value, Some("danger"));
    let silence = button("Silence 1h", SILENCE_1H_ACTION, &value, None);
    let elements = match alert.state {
        State::Firing => vec![ack, resolve, silence],
        State::Suppressed => vec![ack, resolve],
        State::Acknowledged => vec![resolve],
        State::Inactive | State::Pending | State::Resolved => return None,
    };
    Some(json!({
        "type": "actions",
        "block_id": format!("alert:{value}:{}", alert.state.name()),
        "elements": elements,
    }))
}

fn button(label: &str, action_id: &str, value: &str, style: Option<&str>) -> Value {
    let mut b = json!({
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label},
        "value": value,
    });
    if let Some(style) = style {
        b["style"] = Value::from(style);
    }
    b
}

/// What a button click sends back: the incident number, or the fingerprint of an
/// alert without one.
fn alert_value(alert: &AlertSnapshot) -> String {
    alert
        .incident
        .map_or_else(|| alert.fingerprint.to_string(), |i| i.to_string())
}

/// `#42`, or the fingerprint.
fn alert_id(alert: &AlertSnapshot) -> String {
    alert
        .incident
        .map_or_else(|| alert.fingerprint.to_string(), |i| format!("#{i}"))
}

fn section(text: String) -> Value {
    json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": cap(text, limits::SECTION_TEXT)},
    })
}

fn mrkdwn_field(text: String) -> Value {
    json!({"type": "mrkdwn", "text": cap(text, limits::FIELD_TEXT)})
}

/// UTC, RFC 3339, to the second.
fn utc(t: Timestamp) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(t.0.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Cuts `s` to at most `max` characters, ending with `…`. Characters are counted in
/// UTF-16 units, which is never fewer than Slack counts. A cut never leaves half an
/// entity (`&am`) behind.
fn cap(s: String, max: usize) -> String {
    if limits::chars(&s) <= max {
        return s;
    }
    let mut used = 0;
    let mut end = 0;
    for (i, c) in s.char_indices() {
        if used + c.len_utf16() > max.saturating_sub(1) {
            break;
        }
        used += c.len_utf16();
        end = i + c.len_utf8();
    }
    let mut cut = &s[..end];
    if let Some(amp) = cut.rfind('&')
        && !cut[amp..].contains(';')
    {
        cut = &cut[..amp];
    }
    format!("{cut}…")
}
