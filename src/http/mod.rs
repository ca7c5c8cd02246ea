//! HTTP: ingestion, the alert API, health. Handlers decode and validate, call the
//! [`Daemon`]'s async facade, and encode; every refusal is a 4xx with a JSON reason.

mod alerts;
pub mod decoders;
pub mod failures;
mod guard;
mod import;
mod ingest;
mod intake;
mod replay;
mod silences;
mod slack;
mod twilio;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::connect_info::IntoMakeServiceWithConnectInfo;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use serde_json::json;

use crate::config::Scope;
use crate::daemon::{Daemon, OpError};
use failures::AuthFailures;
pub use guard::Caller;
use guard::Guard;

/// What `axum::serve` runs: [`routes`], with each connection's peer address attached
/// (the limit on authentication failures is per client address).
pub fn router(daemon: Daemon) -> IntoMakeServiceWithConnectInfo<Router, SocketAddr> {
    routes(daemon).into_make_service_with_connect_info::<SocketAddr>()
}

/// Every route. Body limits are applied by each handler (`read_body`); the timeout
/// layer covers every route, the Slack and Twilio ones included. Who may call
/// what, and from where, is `guard`'s: tokens and their scopes, and no
/// state change sent by a browser on behalf of another site.
pub fn routes(daemon: Daemon) -> Router {
    let failures = AuthFailures::default();
    let needs = |scope| {
        axum::middleware::from_fn_with_state(
            Guard {
                daemon: daemon.clone(),
                failures: failures.clone(),
                scope,
            },
            guard::authenticate,
        )
    };
    let json = axum::middleware::from_fn_with_state(daemon.clone(), guard::same_site_json);
    let text = axum::middleware::from_fn_with_state(daemon.clone(), guard::same_site);
    let open = daemon.config().server.open;
    // Read-only routes that may stay open with tokens configured.
    let maybe_open = |open: bool, route: MethodRouter<Daemon>| {
        if open {
            route
        } else {
            route.route_layer(needs(Scope::Read))
        }
    };
    Router::new()
        .route(
            "/api/v1/samples",
            post(ingest::samples)
                .route_layer(json.clone())
                .route_layer(needs(Scope::Intake)),
        )
        .route(
            "/api/v1/import/prometheus",
            post(import::prometheus)
                .route_layer(text)
                .route_layer(needs(Scope::Intake)),
        )
        .route(
            "/api/v1/alertmanager",
            post(intake::alertmanager)
                .route_layer(json.clone())
                .route_layer(needs(Scope::Intake)),
        )
        .route(
            "/api/v2/alerts",
            post(intake::v2_alerts)
                .route_layer(json.clone())
                .route_layer(needs(Scope::Intake)),
        )
        .route(
            "/api/v1/alerts",
            get(alerts::list).route_layer(needs(Scope::Read)),
        )
        .route(
            "/api/v1/alerts/{id}",
            get(alerts::get_one).route_layer(needs(Scope::Read)),
        )
        .route(
            "/api/v1/alerts/{id}/{action}",
            post(alerts::act)
                .route_layer(json.clone())
                .route_layer(needs(Scope::Operate)),
        )
        .route(
            "/api/v1/silences",
            get(silences::list).route_layer(needs(Scope::Read)).merge(
                post(silences::create)
                    .route_layer(json.clone())
                    .route_layer(needs(Scope::Operate)),
            ),
        )
        .route(
            "/api/v1/silences/{id}",
            delete(silences::expire)
                .route_layer(json)
                .route_layer(needs(Scope::Operate)),
        )
        // Slack and Twilio sign their requests instead of sending a token.
        .merge(slack::routes(daemon.clone(), failures.clone()))
        .merge(twilio::routes(daemon.clone(), failures.clone()))
        .route("/metrics", maybe_open(open.metrics, get(metrics)))
        .route(
            "/healthz",
            maybe_open(open.health, get(|| async { "ok\n" })),
        )
        .route("/readyz", maybe_open(open.health, get(readyz)))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            daemon.config().server.request_timeout,
        ))
        .with_state(daemon)
}

/// `GET /readyz`: 200 while state changes can be committed, 503 while the store
/// refuses writes.
async fn readyz(axum::extract::State(daemon): axum::extract::State<Daemon>) -> Response {
    if daemon.ready() {
        "ready\n".into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the state store refuses writes",
        )
        .into_response()
    }
}

/// `GET /metrics`: tocsin's own metrics in the OpenMetrics text format.
async fn metrics(
    axum::extract::State(daemon): axum::extract::State<Daemon>,
) -> Result<impl IntoResponse, ApiError> {
    let text = daemon.render_metrics().await;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    ))
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
            OpError::Refused { .. } => StatusCode::BAD_REQUEST,
            OpError::Invalid(_) => StatusCode::BAD_REQUEST,
            OpError::NotFound(_) => StatusCode::NOT_FOUND,
            OpError::Rejected(_) => StatusCode::CONFLICT,
            OpError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            OpError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let err = ApiError::new(status, e.to_string());
        match e {
            OpError::Sample { index, .. } => err.with("sample", index),
            OpError::Refused { what, index, .. } => err.with(what, index),
            _ => err,
        }
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
