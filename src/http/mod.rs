//! HTTP: ingestion, the alert API, health. Handlers decode and validate, call the
//! [`Daemon`]'s async facade, and encode; every refusal is a 4xx with a JSON reason.

mod alertmanager_api;
mod alerts;
pub mod decoders;
pub mod failures;
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
use axum::routing::{get, post};
use serde_json::json;

use crate::daemon::{Daemon, OpError};
use failures::{AuthFailures, ClientIp};

/// What `axum::serve` runs: [`routes`], with each connection's peer address attached
/// (the limit on authentication failures is per client address).
pub fn router(daemon: Daemon) -> IntoMakeServiceWithConnectInfo<Router, SocketAddr> {
    routes(daemon).into_make_service_with_connect_info::<SocketAddr>()
}

/// Every route. Body limits are applied by each handler (`read_body`); the timeout
/// layer covers every route, the Slack and Twilio ones included.
pub fn routes(daemon: Daemon) -> Router {
    let failures = AuthFailures::default();
    // Writes and intake need a bearer token when tokens are configured.
    let writes = Router::new()
        .route("/api/v1/samples", post(ingest::samples))
        .route("/api/v1/import/prometheus", post(import::prometheus))
        .route("/api/v1/alertmanager", post(intake::alertmanager))
        .route("/api/v2/alerts", post(intake::v2_alerts))
        .route("/api/v1/alerts/{id}/{action}", post(alerts::act))
        .route("/api/v1/silences", post(silences::create))
        .route(
            "/api/v1/silences/{id}",
            axum::routing::delete(silences::expire),
        )
        .route("/api/v2/silences", post(alertmanager_api::post_silence))
        .route(
            "/api/v2/silence/{id}",
            axum::routing::delete(alertmanager_api::expire),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            (daemon.clone(), failures.clone()),
            authenticate,
        ));
    Router::new()
        .merge(writes)
        // Slack and Twilio sign their requests instead of sending a token.
        .merge(slack::routes(daemon.clone(), failures.clone()))
        .merge(twilio::routes(daemon.clone(), failures))
        .route("/api/v1/alerts", get(alerts::list))
        .route("/api/v1/alerts/{id}", get(alerts::get_one))
        .route("/api/v1/silences", get(silences::list))
        // Alertmanager's API v2, for amtool, Grafana and the like.
        .route("/api/v2/status", get(alertmanager_api::status))
        .route("/api/v2/receivers", get(alertmanager_api::receivers))
        .route("/api/v2/alerts", get(alertmanager_api::alerts))
        .route("/api/v2/alerts/groups", get(alertmanager_api::groups))
        .route("/api/v2/silences", get(alertmanager_api::silences))
        .route("/api/v2/silence/{id}", get(alertmanager_api::silence))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        // Every refusal has a JSON body, a wrong path or method too.
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            daemon.config().server.request_timeout,
        ))
        .with_state(daemon)
}

/// Any path tocsin does not serve (`GET /` included, until a web UI is served
/// there): a JSON 404 like every other refusal.
async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {method} {}", shown_path(&uri)),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", shown_path(&uri)),
    )
}

/// The request's path, cut to a bounded length: a refusal never grows with what an
/// unauthenticated client sends.
fn shown_path(uri: &axum::http::Uri) -> String {
    const LONGEST: usize = 200;
    let path = uri.path();
    if path.len() <= LONGEST {
        return path.to_string();
    }
    let mut end = LONGEST;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &path[..end])
}

/// Who made a request: the name of the token it carried. Recorded as the actor of
/// acks and resolves.
#[derive(Clone, Debug)]
pub struct Caller(pub String);

/// Checks `Authorization: Bearer <token>` against the configured tokens (in constant
/// time); with no tokens configured (loopback only) every request passes. A refusal
/// is counted, and limited per client address.
async fn authenticate(
    axum::extract::State((daemon, failures)): axum::extract::State<(Daemon, AuthFailures)>,
    ClientIp(client): ClientIp,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if daemon.config().tokens.is_empty() {
        return next.run(request).await;
    }
    let bearer = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let reason = match bearer.map(|b| daemon.config().find_token(b)) {
        Some(Some(token)) => {
            let caller = Caller(token.name.clone());
            request.extensions_mut().insert(caller);
            return next.run(request).await;
        }
        Some(None) => "wrong_token",
        None => "missing_token",
    };
    // The route template, not the path: a bounded set of label values.
    let endpoint = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("api", |p| p.as_str());
    failures.refuse(
        daemon.metrics(),
        client,
        endpoint,
        reason,
        StatusCode::UNAUTHORIZED,
        "missing or invalid bearer token",
    )
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
            OpError::Invalid(_) => StatusCode::BAD_REQUEST,
            OpError::NotFound(_) => StatusCode::NOT_FOUND,
            OpError::Rejected(_) => StatusCode::CONFLICT,
            OpError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            OpError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let err = ApiError::new(status, e.to_string());
        match e {
            OpError::Sample { index, .. } => err.with("sample", index),
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
