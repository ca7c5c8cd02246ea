//! HTTP: ingestion, the alert API, health. Handlers decode and validate, then call
//! the [`Daemon`] on a blocking thread; every refusal is a 4xx with a JSON reason.

mod alerts;
pub(crate) mod import;
mod ingest;
mod intake;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::app::{Daemon, OpError};

pub fn router(daemon: Daemon) -> Router {
    Router::new()
        .route("/api/v1/samples", post(ingest::samples))
        .route("/api/v1/import/prometheus", post(import::prometheus))
        .route("/api/v1/alertmanager", post(intake::alertmanager))
        .route("/api/v2/alerts", post(intake::v2_alerts))
        .route("/api/v1/alerts", get(alerts::list))
        .route("/api/v1/alerts/{id}", get(alerts::get_one))
        .route("/api/v1/alerts/{id}/{action}", post(alerts::act))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|| async { "ready\n" }))
        .with_state(daemon)
}

/// `GET /metrics`: tocsin's own metrics in the OpenMetrics text format.
async fn metrics(axum::extract::State(daemon): axum::extract::State<Daemon>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        daemon.metrics().render(),
    )
}

/// A refusal: status and a JSON body `{"error": "..."}` plus any detail fields.
pub struct ApiError {
    status: StatusCode,
    body: serde_json::Value,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: json!({ "error": message.into() }),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.body[key] = value.into();
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        let status = match &e {
            OpError::Sample { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            OpError::NotFound(_) => StatusCode::NOT_FOUND,
            OpError::Rejected(_) => StatusCode::CONFLICT,
            OpError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let err = ApiError::new(status, e.to_string());
        match e {
            OpError::Sample { index, .. } => err.with("sample", index),
            _ => err,
        }
    }
}

/// Runs a blocking daemon operation off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OpError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(_) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
        )),
    }
}

/// Reads a request body up to the configured limit, or a 413 with a JSON reason.
async fn read_body(body: axum::body::Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {limit} bytes"),
        )
    })
}
