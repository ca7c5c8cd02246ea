//! A generic JSON webhook: one POST per message, with its idempotency key.
//!
//! The receiver gets the message as tocsin holds it (key, reason, escalation level,
//! time, alert snapshots) and can drop a repeat by its `Idempotency-Key`: a retry
//! after a timeout carries the same key, because the first attempt may have arrived.
//!
//! This module also holds what every HTTP channel shares: how a transport failure
//! and a `Retry-After` header become a [`SendError`].

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{DATE, HeaderMap, RETRY_AFTER};
use serde::Serialize;

use super::{AlertSnapshot, Delivered, Message, SendError};
use crate::alert::NotifyReason;
use crate::config::WebhookSettings;

pub struct Webhook {
    settings: WebhookSettings,
    /// Built once: it keeps connections to the receiver open between messages.
    client: Result<reqwest::Client, String>,
}

/// The JSON body of a webhook request, documented by `docs/webhook.schema.json`
/// (tests/webhook_channel.rs validates what is sent against it). Its own type, not
/// the stored snapshot: the wire format speaks as the HTTP API does (fingerprints
/// as hex strings, times in RFC 3339) whatever the outbox keeps.
#[derive(Serialize)]
struct Payload<'a> {
    key: &'a str,
    reason: NotifyReason,
    level: u32,
    /// RFC 3339, UTC.
    at: String,
    /// Alertmanager's word for the group: `firing`, `resolved`, or `acknowledged`.
    status: &'static str,
    alerts: Vec<PayloadAlert<'a>>,
}

/// One alert of a webhook payload.
#[derive(Serialize)]
struct PayloadAlert<'a> {
    /// Alertmanager's fingerprint as 16 hex digits, the id the API and the CLI
    /// use: a JSON number above 2^53 would reach a JavaScript receiver wrong.
    fingerprint: String,
    incident: Option<u64>,
    rule: &'a str,
    severity: &'a str,
    labels: &'a std::collections::BTreeMap<String, String>,
    annotations: &'a std::collections::BTreeMap<String, String>,
    state: crate::alert::State,
    /// RFC 3339, UTC.
    fired_at: Option<String>,
    resolved_at: Option<String>,
    acked_by: Option<&'a str>,
    acked_at: Option<String>,
    generator_url: Option<&'a str>,
}

impl<'a> PayloadAlert<'a> {
    fn of(a: &'a AlertSnapshot) -> PayloadAlert<'a> {
        PayloadAlert {
            fingerprint: a.fingerprint.to_string(),
            incident: a.incident,
            rule: &a.rule,
            severity: &a.severity,
            labels: &a.labels,
            annotations: &a.annotations,
            state: a.state,
            fired_at: a.fired_at.map(|t| t.to_rfc3339()),
            resolved_at: a.resolved_at.map(|t| t.to_rfc3339()),
            acked_by: a.acked_by.as_deref(),
            acked_at: a.acked_at.map(|t| t.to_rfc3339()),
            generator_url: a.generator_url.as_deref(),
        }
    }
}

impl Webhook {
    pub fn new(settings: WebhookSettings) -> Webhook {
        let client = http_client(settings.timeout);
        Webhook { settings, client }
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    pub async fn send(&self, msg: &Message) -> Result<Delivered, SendError> {
        let name = &self.settings.name;
        let client = self
            .client
            .as_ref()
            .map_err(|e| SendError::permanent(format!("webhook {name}: {e}")))?;
        // The parse error names what is wrong, never the URL itself.
        let url = reqwest::Url::parse(self.settings.url.expose()).map_err(|e| {
            SendError::permanent(format!(
                "webhook {name}: the configured url is invalid: {e}"
            ))
        })?;
        let payload = Payload {
            key: &msg.key,
            reason: msg.reason,
            level: msg.level,
            at: msg.at.to_rfc3339(),
            status: status_word(msg.reason),
            alerts: msg.alerts.iter().map(PayloadAlert::of).collect(),
        };
        let mut request = client
            .post(url)
            .header("Idempotency-Key", &msg.key)
            .json(&payload);
        if let Some(token) = &self.settings.bearer {
            request = request.bearer_auth(token.expose());
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(&format!("webhook {name}"), e, self.settings.timeout))?;

        let status = response.status();
        if status.is_success() {
            return Ok(Delivered { reference: None });
        }
        // No response body in the reason: a receiver may echo the request, and with
        // it the URL's credential.
        let reason = format!("webhook {name}: HTTP {status}");
        if is_retryable_status(status) {
            Err(SendError::Retry {
                reason,
                after: retry_after(response.headers()),
            })
        } else {
            Err(SendError::permanent(reason))
        }
    }
}

fn status_word(reason: NotifyReason) -> &'static str {
    match reason {
        NotifyReason::Resolved => "resolved",
        NotifyReason::Acknowledged => "acknowledged",
        NotifyReason::Firing
        | NotifyReason::Unacknowledged
        | NotifyReason::AckExpired
        | NotifyReason::SilenceEnded => "firing",
    }
}

/// 408 (the server gave up waiting), 429 (slow down) and every 5xx say "not now";
/// any other 4xx will fail the same way next time.
fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// The client every HTTP channel builds once: the settings' timeout over the whole
/// exchange, and no redirects, so a POST is never silently turned into a GET and a
/// credential never follows a `Location` to another host.
pub(super) fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    crate::tls::http_client()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tocsin/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {}", e.without_url()))
}

/// The wait a 429 or 503 asked for. `Retry-After` is either seconds or an HTTP date;
/// a date is measured from the response's own `Date` when it has one, so a skewed
/// local clock does not stretch or cancel the wait.
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let now = headers
        .get(DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(|d| chrono::DateTime::parse_from_rfc2822(d.trim()).ok())
        .map_or_else(chrono::Utc::now, |d| d.to_utc());
    Some((at.to_utc() - now).to_std().unwrap_or(Duration::ZERO))
}

/// A request that got no HTTP answer. Everything here may succeed later (the peer
/// restarts, the network comes back) except a request that could not be built.
/// The reason names the kind of failure and the OS error, never the URL: reqwest's
/// own message includes it, and a webhook URL is a secret.
pub(super) fn transport_error(what: &str, err: reqwest::Error, timeout: Duration) -> SendError {
    let err = err.without_url();
    if err.is_builder() {
        return SendError::permanent(format!("{what}: cannot build the request"));
    }
    let cause = io_cause(&err).map_or_else(String::new, |c| format!(": {c}"));
    let reason = if err.is_timeout() {
        format!(
            "{what}: no answer within {}",
            humantime::format_duration(timeout)
        )
    } else if err.is_connect() {
        format!("{what}: cannot connect{cause}")
    } else {
        format!("{what}: request failed{cause}")
    };
    SendError::retry(reason)
}

/// The innermost I/O error, e.g. `Connection refused (os error 111)`: the useful
/// part of a chain whose outer layers only say "error sending request".
fn io_cause(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = None;
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            cause = Some(io.to_string());
        }
        source = e.source();
    }
    cause
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(reqwest::header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_in_seconds() {
        let h = headers(&[(RETRY_AFTER, "120")]);
        assert_eq!(retry_after(&h), Some(Duration::from_secs(120)));
    }

    #[test]
    fn retry_after_as_a_date_counts_from_the_response_date() {
        let h = headers(&[
            (RETRY_AFTER, "Wed, 21 Oct 2015 07:28:30 GMT"),
            (DATE, "Wed, 21 Oct 2015 07:28:00 GMT"),
        ]);
        assert_eq!(retry_after(&h), Some(Duration::from_secs(30)));
    }

    #[test]
    fn a_date_in_the_past_means_now_and_garbage_means_nothing() {
        let past = headers(&[(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(retry_after(&past), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers(&[(RETRY_AFTER, "soon")])), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn which_statuses_are_worth_retrying() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [301, 400, 401, 403, 404, 410, 422] {
            assert!(
                !is_retryable_status(StatusCode::from_u16(s).unwrap()),
                "{s}"
            );
        }
    }
}
