//! Alerts other systems evaluated: Alertmanager's webhook (payload version 4) at
//! `POST /api/v1/alertmanager`, and Alertmanager's own intake, `POST /api/v2/alerts`,
//! so a Prometheus server can name tocsin as its alertmanager.
//!
//! Both senders deliver at least once (retries, HA pairs), so intake is idempotent:
//! the engine identifies an occurrence by fingerprint and `startsAt`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::{ApiError, read_body};
use crate::alert::External;
use crate::clock::Timestamp;
use crate::daemon::Daemon;
use crate::engine::ExternalAlert;
use crate::labels::{self, Labels};

/// Alertmanager's webhook body. Unknown fields are accepted: new ones keep appearing
/// (`notification_reason`, `routeLabels`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Webhook {
    version: String,
    #[serde(default)]
    truncated_alerts: u64,
    #[serde(default)]
    group_key: String,
    #[serde(default)]
    notification_reason: Option<String>,
    #[serde(default, rename = "externalURL")]
    external_url: Option<String>,
    alerts: Vec<WebhookAlert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookAlert {
    status: String,
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    starts_at: String,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
}

/// `postableAlert` of Alertmanager's API v2.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert {
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
}

/// How long a v2 alert without `endsAt` stays firing unless refreshed (Alertmanager's
/// default `resolve_timeout`).
const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// An RFC 3339 time; Go's zero time (`0001-01-01T00:00:00Z`, "no end") is `None`.
pub(super) fn parse_time(text: &str) -> Result<Option<Timestamp>, String> {
    if text.starts_with("0001-01-01") {
        return Ok(None);
    }
    let t = humantime::parse_rfc3339_weak(text)
        .or_else(|_| humantime::parse_rfc3339(text))
        .map_err(|e| format!("time {text:?}: {e}"))?;
    let since = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("time {text:?} is before 1970"))?;
    Ok(Some(Timestamp(since.as_millis() as i64)))
}

fn labels(raw: BTreeMap<String, String>) -> Result<Labels, String> {
    // An empty value is no label at all (`Labels` drops it, as Prometheus does).
    if raw.get("alertname").is_none_or(|v| v.is_empty()) {
        return Err("labels have no alertname".into());
    }
    if let Some(bad) = raw
        .keys()
        .find(|k| !labels::valid_name(k) || labels::reserved_name(k))
    {
        return Err(format!("invalid label name {bad:?}"));
    }
    Ok(Labels::from_pairs(raw))
}

fn bad(index: usize, why: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, format!("alert {index}: {why}")).with("alert", index)
}

/// `POST /api/v1/alertmanager`: Alertmanager's webhook. 200 on success; 400 only for
/// a body that can never succeed (Alertmanager does not retry 4xx); 503 if the store
/// fails, so Alertmanager retries.
pub async fn alertmanager(
    State(daemon): State<Daemon>,
    body: axum::body::Body,
) -> Result<StatusCode, ApiError> {
    let bytes = read_body(body, daemon.config().server.body_limit).await?;
    let hook = decode_webhook(&bytes)?;
    if hook.truncated_alerts > 0 {
        daemon
            .metrics()
            .alertmanager_truncated_alerts
            .inc_by(hook.truncated_alerts);
        tracing::warn!(group_key = %hook.group_key, truncated = hook.truncated_alerts, "alertmanager truncated this notification (max_alerts): some alerts were not sent");
    }
    tracing::debug!(group_key = %hook.group_key, reason = ?hook.notification_reason, alerts = hook.alerts.len(), "alertmanager webhook");
    let alerts = hook.alerts;
    daemon
        .receive_external("alertmanager_webhook", alerts)
        .await?;
    Ok(StatusCode::OK)
}

/// An Alertmanager webhook body, decoded and checked.
pub struct WebhookBody {
    pub group_key: String,
    pub notification_reason: Option<String>,
    /// Alerts Alertmanager left out (`max_alerts`).
    pub truncated_alerts: u64,
    pub alerts: Vec<ExternalAlert>,
}

/// Decodes an Alertmanager webhook body; the error is the 400 the handler answers.
/// Pure, so the fuzz target (`fuzz/`) runs exactly what the handler runs.
pub fn decode_webhook(bytes: &[u8]) -> Result<WebhookBody, ApiError> {
    let hook: Webhook = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid webhook payload: {e}"),
        )
    })?;
    if hook.version != "4" {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "webhook payload version {:?}; tocsin reads version 4",
                hook.version
            ),
        ));
    }
    let mut alerts = Vec::with_capacity(hook.alerts.len());
    for (i, a) in hook.alerts.into_iter().enumerate() {
        let firing = match a.status.as_str() {
            "firing" => true,
            "resolved" => false,
            other => return Err(bad(i, format!("status {other:?}: firing or resolved"))),
        };
        let starts_at = parse_time(&a.starts_at)
            .map_err(|e| bad(i, e))?
            .ok_or_else(|| bad(i, "startsAt is the zero time".into()))?;
        let ends_at = match &a.ends_at {
            Some(t) => parse_time(t).map_err(|e| bad(i, e))?,
            None => None,
        };
        alerts.push(ExternalAlert {
            labels: labels(a.labels).map_err(|e| bad(i, e))?,
            firing,
            // Firing webhook alerts carry no end: Alertmanager sends the resolve.
            external: External {
                starts_at,
                ends_at: if firing { None } else { ends_at },
                annotations: a.annotations,
                generator_url: a.generator_url,
                external_url: hook.external_url.clone().filter(|u| !u.is_empty()),
                group_key: Some(hook.group_key.clone()).filter(|k| !k.is_empty()),
            },
        });
    }
    Ok(WebhookBody {
        group_key: hook.group_key,
        notification_reason: hook.notification_reason,
        truncated_alerts: hook.truncated_alerts,
        alerts,
    })
}

/// `POST /api/v2/alerts`: a JSON array of `postableAlert`, as Prometheus sends.
pub async fn v2_alerts(
    State(daemon): State<Daemon>,
    body: axum::body::Body,
) -> Result<StatusCode, ApiError> {
    let bytes = read_body(body, daemon.config().server.body_limit).await?;
    let alerts = decode_v2_alerts(&bytes, daemon.now())?;
    daemon.receive_external("api_v2", alerts).await?;
    Ok(StatusCode::OK)
}

/// Decodes a `POST /api/v2/alerts` body as of `now`; the error is the 400 the
/// handler answers. Pure, for the fuzz target too.
pub fn decode_v2_alerts(bytes: &[u8], now: Timestamp) -> Result<Vec<ExternalAlert>, ApiError> {
    let posted: Vec<PostableAlert> = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid alerts: {e}")))?;
    let mut alerts = Vec::with_capacity(posted.len());
    for (i, a) in posted.into_iter().enumerate() {
        let starts_at = match &a.starts_at {
            Some(t) => parse_time(t).map_err(|e| bad(i, e))?.unwrap_or(now),
            None => now,
        };
        let ends_at = match &a.ends_at {
            Some(t) => parse_time(t).map_err(|e| bad(i, e))?,
            None => None,
        }
        .unwrap_or(now + RESOLVE_TIMEOUT);
        alerts.push(ExternalAlert {
            labels: labels(a.labels).map_err(|e| bad(i, e))?,
            // Resolved once its end is in the past, as Alertmanager decides.
            firing: ends_at > now,
            external: External {
                starts_at,
                ends_at: Some(ends_at),
                annotations: a.annotations,
                generator_url: a.generator_url,
                external_url: None,
                group_key: None,
            },
        });
    }
    Ok(alerts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `alertmanager` fuzz target: `alertname: ""` passed the check on
    /// the raw labels and became an alert with no name.
    #[test]
    fn an_empty_alertname_is_no_alertname() {
        let v2 = br#"[{"labels":{"alertname":""},"st":"HarnessTestA(9Z"}]"#;
        let refused = decode_v2_alerts(v2, Timestamp(0)).expect_err("refused");
        assert_eq!(refused.body["error"], "alert 0: labels have no alertname");
        let hook = br#"{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"","job":"x"},"startsAt":"2026-11-28T14:29:40Z"}]}"#;
        let refused = decode_webhook(hook).err().expect("refused");
        assert_eq!(refused.body["error"], "alert 0: labels have no alertname");
    }
}
