//! `POST /api/v1/import/prometheus`: a Prometheus text exposition body (format
//! 0.0.4), read by [`crate::exposition`] and taken whole or refused whole: a
//! malformed line is a 400, a sample the store refuses a 422, each naming the line.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use super::{ApiError, read_body};
use crate::daemon::{Daemon, OpError};
use crate::exposition;
use crate::series::IncomingSample;

pub async fn prometheus(
    State(daemon): State<Daemon>,
    body: axum::body::Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let bytes = read_body(body, daemon.config().server.body_limit).await?;
    let parsed = exposition::parse(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()).with("line", e.line))?;
    let (lines, samples): (Vec<usize>, Vec<IncomingSample>) =
        parsed.into_iter().map(|s| (s.line, s.sample)).unzip();
    // The store's refusals name a sample; the client wrote lines.
    match daemon.ingest(samples).await {
        Ok(accepted) => Ok(Json(json!({ "accepted": accepted }))),
        Err(OpError::Sample { index, source }) => {
            let line = lines.get(index).copied().unwrap_or(0);
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("line {line}: {source}"),
            )
            .with("line", line))
        }
        Err(OpError::Refused { index, why, .. }) => {
            let line = lines.get(index).copied().unwrap_or(0);
            Err(
                ApiError::new(StatusCode::BAD_REQUEST, format!("line {line}: {why}"))
                    .with("line", line),
            )
        }
        Err(e) => Err(e.into()),
    }
}
