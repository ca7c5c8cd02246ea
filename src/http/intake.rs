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
    #[serde(default)]
    status: String,
    #[serde(default)]
    group_labels: BTreeMap<String, String>,
    #[serde(default)]
    common_annotations: BTreeMap<String, String>,
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
    let grouped = daemon
        .config()
        .channels
        .alertmanager_of(hook.external_url.as_deref(), None)
        .is_some_and(|a| a.group_incidents);
    let alerts = match grouped {
        true => match hook.group_incident() {
            Ok(group) => vec![group],
            Err(why) => {
                tracing::warn!(group_key = %hook.group_key, %why, "taking this group's alerts one by one");
                hook.alerts
            }
        },
        false => hook.alerts,
    };
    daemon
        .receive_external("alertmanager_webhook", alerts)
        .await?;
    Ok(StatusCode::OK)
}

/// An Alertmanager webhook body, decoded and checked.
pub struct WebhookBody {
    pub group_key: String,
    /// The `externalURL` of the Alertmanager that sent it.
    pub external_url: Option<String>,
    /// `firing` while one alert of the group fires.
    pub firing: bool,
    pub group_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
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
                annotations: a.annotations.into(),
                generator_url: a.generator_url,
                external_url: hook.external_url.clone().filter(|u| !u.is_empty()),
                group_key: None,
            },
        });
    }
    Ok(WebhookBody {
        external_url: hook.external_url.filter(|u| !u.is_empty()),
        firing: hook.status != "resolved",
        group_labels: hook.group_labels,
        common_annotations: hook.common_annotations,
        group_key: hook.group_key,
        notification_reason: hook.notification_reason,
        truncated_alerts: hook.truncated_alerts,
        alerts,
    })
}

/// The most of the group's alerts an incident's `alerts` annotation lists.
const GROUP_LISTED: usize = 20;

impl WebhookBody {
    /// The whole group as one alert (`incident = "group"`): labelled with the
    /// group's labels, firing while one of its alerts fires, its occurrence
    /// starting with the earliest of them; annotated with the annotations they
    /// share and the list of those firing. Refused for a group with no labels
    /// (`group_by: []` would make every alert one incident).
    pub fn group_incident(&self) -> Result<ExternalAlert, String> {
        if self.group_labels.is_empty() {
            return Err("the group has no labels (group_by is empty)".into());
        }
        if let Some(bad) = self
            .group_labels
            .keys()
            .find(|k| !labels::valid_name(k) || labels::reserved_name(k))
        {
            return Err(format!("invalid group label name {bad:?}"));
        }
        let group = Labels::from_pairs(self.group_labels.clone());
        let firing: Vec<&ExternalAlert> = self.alerts.iter().filter(|a| a.firing).collect();
        let counted = if firing.is_empty() {
            self.alerts.iter().collect()
        } else {
            firing.clone()
        };
        let starts_at = counted
            .iter()
            .map(|a| a.external.starts_at)
            .min()
            .ok_or("the notification has no alerts")?;
        let mut annotations = self.common_annotations.clone();
        if !firing.is_empty() {
            let listed: Vec<String> = firing
                .iter()
                .take(GROUP_LISTED)
                .map(|a| {
                    let own = a
                        .labels
                        .iter()
                        .filter(|(k, _)| group.get(k).is_none())
                        .map(|(k, v)| format!("{k}={v:?}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    format!("{{{own}}}")
                })
                .collect();
            let more = firing.len().saturating_sub(GROUP_LISTED);
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            annotations.insert(
                "alerts".into(),
                format!("{} firing: {}{tail}", firing.len(), listed.join(" ")),
            );
        }
        let ends_at = match self.firing {
            true => None,
            false => self.alerts.iter().filter_map(|a| a.external.ends_at).max(),
        };
        Ok(ExternalAlert {
            labels: group,
            firing: self.firing && !firing.is_empty(),
            external: External {
                starts_at,
                ends_at,
                annotations: annotations.into(),
                generator_url: None,
                external_url: self.external_url.clone(),
                group_key: Some(self.group_key.clone()),
            },
        })
    }
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
                annotations: a.annotations.into(),
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

    #[test]
    fn a_group_is_one_alert_with_the_groups_labels_and_its_earliest_start() {
        let hook = br#"{"version":"4","status":"firing","groupKey":"{}:{service=\"api\"}",
            "externalURL":"http://am:9093","groupLabels":{"service":"api"},
            "commonAnnotations":{"team":"api"},
            "alerts":[
              {"status":"firing","labels":{"alertname":"ApiErrors","service":"api"},"startsAt":"2026-11-28T10:05:00Z"},
              {"status":"resolved","labels":{"alertname":"Old","service":"api"},"startsAt":"2026-11-28T09:00:00Z","endsAt":"2026-11-28T10:00:00Z"},
              {"status":"firing","labels":{"alertname":"ApiLatency","service":"api"},"startsAt":"2026-11-28T10:01:00Z"}]}"#;
        let body = decode_webhook(hook).ok().expect("decoded");
        let group = body.group_incident().unwrap();
        assert_eq!(group.labels.to_string(), r#"{service="api"}"#);
        assert!(group.firing);
        assert_eq!(
            group.external.starts_at.to_rfc3339(),
            "2026-11-28T10:01:00.000Z"
        );
        assert_eq!(
            group.external.group_key.as_deref(),
            Some(r#"{}:{service="api"}"#)
        );
        assert_eq!(
            group.external.external_url.as_deref(),
            Some("http://am:9093")
        );
        assert_eq!(&group.external.annotations["team"], "api");
        assert_eq!(
            &group.external.annotations["alerts"],
            r#"2 firing: {alertname="ApiErrors"} {alertname="ApiLatency"}"#
        );
        let ungrouped = br#"{"version":"4","status":"firing","groupLabels":{},
            "alerts":[{"status":"firing","labels":{"alertname":"A"},"startsAt":"2026-11-28T10:05:00Z"}]}"#;
        let body = decode_webhook(ungrouped).ok().expect("decoded");
        assert!(
            body.group_incident().is_err(),
            "no group labels: one by one"
        );
    }
}
