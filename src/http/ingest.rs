//! `POST /api/v1/samples`: a JSON batch of samples, taken whole or refused whole.
//!
//! ```json
//! {"samples": [{"name": "cpu_usage", "labels": {"host": "bot-1"}, "value": 0.95,
//!               "timestamp": 1764374400000}]}
//! ```
//! `timestamp` is optional (milliseconds since the epoch, or RFC 3339); `kind`
//! (`gauge`, `counter`, `event`) is optional and only checked.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, read_body};
use crate::clock::Timestamp;
use crate::daemon::Daemon;
use crate::labels::{self, Labels};
use crate::series::IncomingSample;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    samples: Vec<JsonSample>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSample {
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    value: f64,
    #[serde(default)]
    timestamp: Option<JsonTime>,
    #[serde(default)]
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonTime {
    Millis(i64),
    Rfc3339(String),
}

pub async fn samples(
    State(daemon): State<Daemon>,
    body: axum::body::Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let bytes = read_body(body, daemon.config().server.body_limit).await?;
    // Counts, sizes and how far ahead a timestamp may be are bounded by the
    // daemon, as for every intake.
    let samples = decode_samples(&bytes)?;
    let accepted = daemon.ingest(samples).await?;
    Ok(Json(json!({ "accepted": accepted })))
}

/// Decodes and validates a sample batch as the handler does, the refusal being the
/// 400 it answers: the fuzz target's entry point (`fuzz/`).
pub fn decode_samples(bytes: &[u8]) -> Result<Vec<IncomingSample>, ApiError> {
    let batch: Batch = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")))?;
    batch
        .samples
        .into_iter()
        .enumerate()
        .map(|(i, s)| validate(s).map_err(|why| bad_sample(i, why)))
        .collect()
}

fn bad_sample(index: usize, why: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, format!("sample {index}: {why}")).with("sample", index)
}

fn validate(s: JsonSample) -> Result<IncomingSample, String> {
    if !labels::valid_metric_name(&s.name) {
        return Err(format!("invalid metric name {:?}", s.name));
    }
    if let Some(bad) = s
        .labels
        .keys()
        .find(|k| !labels::valid_name(k) || labels::reserved_name(k))
    {
        return Err(format!("invalid label name {bad:?}"));
    }
    if let Some(kind) = &s.kind
        && !matches!(kind.as_str(), "gauge" | "counter" | "event")
    {
        return Err(format!("unknown kind {kind:?}: gauge, counter or event"));
    }
    let at = match s.timestamp {
        None => None,
        Some(JsonTime::Millis(ms)) => Some(Timestamp(ms)),
        Some(JsonTime::Rfc3339(text)) => {
            let t =
                humantime::parse_rfc3339(&text).map_err(|e| format!("timestamp {text:?}: {e}"))?;
            let ms = t
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|_| format!("timestamp {text:?} is before 1970"))?;
            Some(Timestamp(ms.as_millis() as i64))
        }
    };
    Ok(IncomingSample {
        metric: s.name,
        labels: Labels::from_pairs(s.labels),
        value: s.value,
        at,
    })
}
