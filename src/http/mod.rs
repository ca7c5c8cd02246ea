//! HTTP: ingestion, the alert API, health. Handlers decode and validate, call the
//! [`Daemon`]'s async facade, and encode; every refusal is a 4xx with a JSON reason.

mod alertmanager_api;
mod alerts;
pub mod decoders;
pub mod failures;
pub mod forward;
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
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the operating system gives random bytes");
    let forwarder = forward::Forwarder::new(daemon.clone(), key);
    routes_with(daemon, AuthFailures::default(), forwarder)
}

/// [`routes`], counting refused credentials in `failures` (shared with the web
/// UI's login form, so a wrong token typed there counts as a wrong bearer does),
/// and relaying writes with `forwarder` while another replica acts.
pub fn routes_with(
    daemon: Daemon,
    failures: AuthFailures,
    forwarder: forward::Forwarder,
) -> Router {
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
    // Innermost on every write route: after the route's own checks, a standby
    // relays the write to the replica that acts (samples stay here).
    let relay = axum::middleware::from_fn_with_state(forwarder.clone(), forward::to_holder);
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
                .route_layer(relay.clone())
                .route_layer(json.clone())
                .route_layer(needs(Scope::Intake)),
        )
        .route(
            "/api/v2/alerts",
            get(alertmanager_api::alerts)
                .route_layer(needs(Scope::Read))
                .merge(
                    post(intake::v2_alerts)
                        .route_layer(relay.clone())
                        .route_layer(json.clone())
                        .route_layer(needs(Scope::Intake)),
                ),
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
                .route_layer(relay.clone())
                .route_layer(json.clone())
                .route_layer(needs(Scope::Operate)),
        )
        .route(
            "/api/v1/silences",
            get(silences::list).route_layer(needs(Scope::Read)).merge(
                post(silences::create)
                    .route_layer(relay.clone())
                    .route_layer(json.clone())
                    .route_layer(needs(Scope::Operate)),
            ),
        )
        .route(
            "/api/v1/silences/{id}",
            delete(silences::expire)
                .route_layer(relay.clone())
                .route_layer(json.clone())
                .route_layer(needs(Scope::Operate)),
        )
        // Alertmanager's API v2, for amtool, Grafana and the like: silences are
        // operated as on tocsin's own API, everything else is read.
        .route(
            "/api/v2/silences",
            get(alertmanager_api::silences)
                .route_layer(needs(Scope::Read))
                .merge(
                    post(alertmanager_api::post_silence)
                        .route_layer(relay.clone())
                        .route_layer(json.clone())
                        .route_layer(needs(Scope::Operate)),
                ),
        )
        .route(
            "/api/v2/silence/{id}",
            get(alertmanager_api::silence)
                .route_layer(needs(Scope::Read))
                .merge(
                    delete(alertmanager_api::expire)
                        .route_layer(relay.clone())
                        .route_layer(json)
                        .route_layer(needs(Scope::Operate)),
                ),
        )
        .route(
            "/api/v2/status",
            get(alertmanager_api::status).route_layer(needs(Scope::Read)),
        )
        .route(
            "/api/v2/receivers",
            get(alertmanager_api::receivers).route_layer(needs(Scope::Read)),
        )
        .route(
            "/api/v2/alerts/groups",
            get(alertmanager_api::groups).route_layer(needs(Scope::Read)),
        )
        // Slack and Twilio sign their requests instead of sending a token.
        .merge(slack::routes(
            daemon.clone(),
            failures.clone(),
            forwarder.clone(),
        ))
        .merge(twilio::routes(
            daemon.clone(),
            failures.clone(),
            forwarder.clone(),
        ))
        .route("/metrics", maybe_open(open.metrics, get(metrics)))
        .route(
            "/healthz",
            maybe_open(open.health, get(|| async { "ok\n" })),
        )
        .route("/readyz", {
            let forwarder = forwarder.clone();
            maybe_open(open.health, get(move || readyz(forwarder.clone())))
        })
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

/// `GET /readyz`: 200 while a write sent here would be committed: by this
/// replica (`ready: acting`), or by the one it relays writes to, which answers
/// (`ready: standby`, over PostgreSQL); 503 while the store refuses writes, no
/// replica acts, or the one that does cannot be reached.
async fn readyz(forwarder: forward::Forwarder) -> Response {
    match forwarder.writes_go_somewhere().await {
        Some(crate::daemon::Writes::Here) => "ready: acting\n".into_response(),
        Some(_) => "ready: standby, relaying writes to the replica that acts\n".into_response(),
        None => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the state store refuses writes, or no replica acts on it",
        )
        .into_response(),
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
