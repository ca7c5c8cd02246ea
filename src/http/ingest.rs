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

use super::{ApiError, blocking, read_body};
use crate::app::Daemon;
use crate::clock::Timestamp;
use crate::labels::Labels;
use crate::series::{IncomingSample, valid_metric_name};

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
    let bytes = read_body(body, daemon.settings().body_limit).await?;
    let batch: Batch = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")))?;
    let max_labels = daemon.settings().max_labels;
    let count = batch.samples.len() as u64;
    let samples = batch
        .samples
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            if s.labels.len() > max_labels {
                // Counted as the store counts its limits: the whole batch is refused.
                let refused = &daemon.metrics().samples_refused;
                refused
                    .get_or_create(&crate::metrics::Metrics::label("reason", "label_limit"))
                    .inc_by(count);
            }
            validate(s, max_labels).map_err(|why| bad_sample(i, why))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let d = daemon.clone();
    let accepted = blocking(move || d.ingest(&samples)).await?;
    Ok(Json(json!({ "accepted": accepted })))
}

/// Decodes and validates a sample batch as the handler does, the refusal being the
/// 400 it answers: the fuzz target's entry point (`fuzz/`).
pub fn decode_samples(bytes: &[u8], max_labels: usize) -> Result<Vec<IncomingSample>, ApiError> {
    let batch: Batch = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")))?;
    batch
        .samples
        .into_iter()
        .enumerate()
        .map(|(i, s)| validate(s, max_labels).map_err(|why| bad_sample(i, why)))
        .collect()
}

fn bad_sample(index: usize, why: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, format!("sample {index}: {why}")).with("sample", index)
}

fn validate(s: JsonSample, max_labels: usize) -> Result<IncomingSample, String> {
    if !valid_metric_name(&s.name) {
        return Err(format!("invalid metric name {:?}", s.name));
    }
    if s.labels.len() > max_labels {
        return Err(format!("{} labels, at most {max_labels}", s.labels.len()));
    }
    if let Some(bad) = s.labels.keys().find(|k| !valid_label_name(k)) {
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

/// A label name a client may send: Prometheus' rule, and none of the `__` names
/// Prometheus keeps for itself.
pub fn valid_label_name(n: &str) -> bool {
    crate::labels::valid_name(n) && !n.starts_with("__")
}
