//! Silences: `GET/POST /api/v1/silences`, `DELETE /api/v1/silences/{id}`.
//!
//! ```json
//! {"matchers": [{"name": "host", "op": "=", "value": "bot-1"}],
//!  "duration": "2h", "comment": "rebooting bot-1", "created_by": "alice"}
//! ```
//! `starts_at` (RFC 3339, default now) and `ends_at` or `duration` set the time range.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, Caller, read_body};
use crate::clock::Timestamp;
use crate::daemon::Daemon;
use crate::matcher::{MatchOp, Matcher};
use crate::silence::Silence;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSilence {
    matchers: Vec<NewMatcher>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    created_by: Option<String>,
    #[serde(default)]
    comment: String,
}

/// A matcher as a request gives it: the stored shape, but `op` may be left out
/// (`=`) and unknown fields are refused. Made into a [`Matcher`] by
/// `Matcher::new`, which refuses an invalid regex.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMatcher {
    name: String,
    #[serde(default = "equal")]
    op: String,
    value: String,
}

fn equal() -> String {
    "=".into()
}

fn time(text: &str, what: &str) -> Result<Timestamp, ApiError> {
    let t = humantime::parse_rfc3339_weak(text)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("{what} {text:?}: {e}")))?;
    let since = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, format!("{what} is before 1970")))?;
    Ok(Timestamp(since.as_millis() as i64))
}

pub fn silence_json(s: &Silence, now: Timestamp) -> Value {
    json!({
        "id": s.id,
        "status": s.status(now).name(),
        "matchers": s.matchers,
        "starts_at": s.starts_at.to_rfc3339(),
        "ends_at": s.ends_at.to_rfc3339(),
        "created_by": s.created_by,
        "comment": s.comment,
    })
}

/// `GET /api/v1/silences`: every silence, newest first, with its status.
pub async fn list(State(daemon): State<Daemon>) -> Json<Value> {
    let now = daemon.now();
    let mut all = daemon.silences().await;
    all.sort_by_key(|s| std::cmp::Reverse(s.starts_at));
    Json(json!({ "silences": all.iter().map(|s| silence_json(s, now)).collect::<Vec<_>>() }))
}

/// `POST /api/v1/silences`: creates a silence; 201 with it.
pub async fn create(
    State(daemon): State<Daemon>,
    caller: Option<axum::Extension<Caller>>,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let bytes = read_body(body, daemon.config().server.body_limit).await?;
    let new: NewSilence = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")))?;
    let now = daemon.now();
    let starts_at = match &new.starts_at {
        Some(t) => time(t, "starts_at")?,
        None => now,
    };
    let ends_at = match (&new.ends_at, &new.duration) {
        (Some(t), None) => time(t, "ends_at")?,
        (None, Some(d)) => {
            let d = crate::duration::parse(d)
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("duration: {e}")))?;
            starts_at + d
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "give either ends_at or duration",
            ));
        }
    };
    // With tokens, the token's name is the creator.
    let created_by = match caller {
        Some(axum::Extension(Caller(name))) => name,
        None => new.created_by.unwrap_or_else(|| "api".into()),
    };
    let matchers = new
        .matchers
        .into_iter()
        .map(|m| {
            let op: MatchOp = m.op.parse()?;
            Matcher::new(m.name, op, m.value)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let silence = Silence {
        id: uuid::Uuid::new_v4().to_string(),
        matchers,
        starts_at,
        ends_at,
        created_by,
        comment: new.comment,
        updated_at: None,
    };
    let created = daemon.add_silence(silence).await?;
    Ok((StatusCode::CREATED, Json(silence_json(&created, now))))
}

/// `DELETE /api/v1/silences/{id}`: expires the silence now.
pub async fn expire(
    State(daemon): State<Daemon>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let expired = daemon.expire_silence(&id).await?;
    Ok(Json(silence_json(&expired, daemon.now())))
}
