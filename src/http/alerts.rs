//! The alert API: list, one alert with its timeline, and ack / unack / resolve.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, read_body};
use crate::alert::{Event, TimelineEntry};
use crate::clock::Timestamp;
use crate::daemon::{AlertView, Daemon};

fn time(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| Value::String(t.to_rfc3339()))
}

fn alert_json(v: &AlertView) -> Value {
    let a = &v.alert;
    json!({
        "id": a.incident,
        "fingerprint": a.fingerprint.to_string(),
        "rule": a.rule,
        "state": a.state.name(),
        "severity": v.severity,
        "labels": a.labels.to_map(),
        "annotations": v.annotations,
        // A value tocsin evaluated; none for an alert another system evaluated.
        "value": match (&a.external, a.value.is_finite()) {
            (Some(_), _) => Value::Null,
            (None, true) => json!(a.value),
            (None, false) => json!(a.value.to_string()),
        },
        "source": if a.external.is_some() { "external" } else { "rule" },
        "generator_url": a.external.as_ref().and_then(|e| e.generator_url.as_deref()),
        "active_since": time(a.active_since),
        "fired_at": time(a.fired_at),
        "resolved_at": time(a.resolved_at),
        "silenced_by": a.silenced_by,
        "flapping": a.flapping,
        "ack": a.ack.as_ref().map(|k| json!({
            "actor": k.actor, "via": k.via, "note": k.note, "at": k.at.to_rfc3339(),
        })),
    })
}

fn entry_json(e: &TimelineEntry) -> Value {
    json!({
        "at": e.at.to_rfc3339(),
        "from": e.from.name(),
        "to": e.to.name(),
        "actor": e.actor,
        "via": e.via,
        "reason": e.reason,
        "note": e.note,
    })
}

/// `GET /api/v1/alerts?state=firing&severity=critical&label=host=bot-1`
pub async fn list(
    State(daemon): State<Daemon>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let mut want: HashMap<&str, Vec<&str>> = HashMap::new();
    for (k, v) in &query {
        match k.as_str() {
            "state" | "severity" | "label" => want.entry(k.as_str()).or_default().push(v),
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("unknown filter {other:?}: state, severity, label"),
                ));
            }
        }
    }
    let mut labels = Vec::new();
    for l in want.get("label").into_iter().flatten() {
        let Some((name, value)) = l.split_once('=') else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("label filter {l:?} is not name=value"),
            ));
        };
        labels.push((name, value));
    }
    let all = daemon.alerts().await;
    let matches = |v: &AlertView| {
        let any = |key: &str, value: &str| want.get(key).is_none_or(|vs| vs.contains(&value));
        any("state", v.alert.state.name())
            && any("severity", &v.severity)
            && labels
                .iter()
                .all(|(n, val)| v.alert.labels.get(n) == Some(*val))
    };
    let alerts: Vec<Value> = all.iter().filter(|v| matches(v)).map(alert_json).collect();
    Ok(Json(json!({ "alerts": alerts })))
}

/// `GET /api/v1/alerts/{id}`: `id` is the incident number or the fingerprint.
pub async fn get_one(
    State(daemon): State<Daemon>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (view, timeline) = daemon.alert(&id).await?;
    let mut body = alert_json(&view);
    body["timeline"] = timeline.iter().map(entry_json).collect();
    Ok(Json(body))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

/// `POST /api/v1/alerts/{id}/ack|unack|resolve` with an optional JSON body
/// `{"actor": "alice", "note": "looking"}`.
pub async fn act(
    State(daemon): State<Daemon>,
    Path((id, action)): Path<(String, String)>,
    caller: Option<axum::Extension<super::Caller>>,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = read_body(body, daemon.config().server.body_limit).await?;
    let body: ActionBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        ActionBody::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")))?
    };
    // With tokens, the token's name is the actor: a caller cannot act as someone else.
    let actor = match caller {
        Some(axum::Extension(super::Caller(name))) => name,
        None => body.actor.unwrap_or_else(|| "api".to_string()),
    };
    let event = match action.as_str() {
        "ack" => Event::Ack {
            actor,
            via: "http".into(),
            note: body.note,
        },
        "unack" => Event::Unack { actor },
        "resolve" => Event::Resolve {
            actor,
            note: body.note,
        },
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("unknown action {other:?}: ack, unack, resolve"),
            ));
        }
    };
    let view = daemon.act(&id, event).await?;
    Ok(Json(alert_json(&view)))
}
