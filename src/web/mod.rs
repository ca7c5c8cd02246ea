//! The web UI: HTML pages on the daemon's listener, under `/` (the API stays under
//! `/api/`). Every page is a read model built from the [`Daemon`]'s public facade
//! (`alerts`, `alert`, `silences`, `rules`, `status`) and the configuration; every
//! action goes through the same facade calls the API's write routes use.
//!
//! Pages are written with maud: HTML as Rust expressions, checked and escaped when
//! tocsin is compiled, so the binary carries them (no template files, no Node) and
//! a label value can never become markup. The little JavaScript there is
//! (`assets/app.js`: local times, live updates over server-sent events) is embedded
//! with `include_str!`; every page reads and every form works without it.
//!
//! Access follows the API's rules (`access.rs`): open on loopback without tokens;
//! with tokens, a token kept in an HttpOnly, SameSite=Strict cookie, or the person an
//! authenticating proxy names in a trusted header. Every form carries a cross-site
//! token bound to the signed-in identity.

mod access;
mod alerts;
mod layout;
mod login;
mod overview;
mod silences;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};

use crate::daemon::Daemon;
use crate::http::failures::AuthFailures;
use crate::http::forward::{self, Forwarder};

pub use access::CSRF_FIELD;

/// What every page handler shares.
#[derive(Clone)]
pub struct Web {
    daemon: Daemon,
    keys: access::Keys,
    failures: AuthFailures,
    live: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Live alert streams open at once; more are answered 503 (the page still reads,
/// it only stops updating by itself).
const LIVE_STREAMS: usize = 64;

/// Every page of the UI. `failures` is the API's: a wrong token typed into the
/// login form counts against the same per-address limit as a wrong bearer token.
/// `key` signs the cross-site tokens (the one every replica shares, so a form
/// rendered by one verifies on any); `forwarder` relays a form posted to a
/// standby to the replica that acts.
pub fn routes(
    daemon: Daemon,
    failures: AuthFailures,
    key: [u8; 32],
    forwarder: Forwarder,
) -> Router {
    let web = Web {
        keys: access::Keys::from_key(key),
        daemon: daemon.clone(),
        failures,
        live: std::sync::Arc::new(tokio::sync::Semaphore::new(LIVE_STREAMS)),
    };
    let body_limit = daemon.config().server.body_limit;
    let require = axum::middleware::from_fn_with_state(web.clone(), access::require);
    // After `require` (the standby signs the person in and refuses cross-site
    // posts), a form that changes the state goes to the replica that acts.
    let relay = axum::middleware::from_fn_with_state(forwarder, forward::to_holder);
    let pages = Router::new()
        .route("/", get(alerts::list))
        .route("/alerts/{id}", get(alerts::one))
        .route(
            "/alerts/{id}/{action}",
            post(alerts::act).route_layer(relay.clone()),
        )
        .route(
            "/silences",
            get(silences::list).merge(post(silences::create).route_layer(relay.clone())),
        )
        .route("/silences/new", get(silences::editor))
        .route(
            "/silences/{id}/expire",
            post(silences::expire).route_layer(relay),
        )
        .route("/oncall", get(overview::oncall))
        .route("/rules", get(overview::rules))
        .route("/status", get(overview::status))
        .route("/logout", post(login::logout))
        .route_layer(require.clone());
    let public = Router::new()
        .route("/login", get(login::login_form).post(login::login))
        .route("/ui/app.js", get(script))
        .route("/ui/style.css", get(style));
    // The live stream stays open by design: outside the timeout, bounded in number.
    let live = Router::new()
        .route("/ui/live", get(alerts::live))
        .route_layer(require);
    Router::new()
        .merge(pages)
        .merge(public)
        // A slow client cannot hold a page's request open, as on the API's routes.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            daemon.config().server.request_timeout,
        ))
        .merge(live)
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .with_state(web)
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("assets/app.js"),
    )
}

async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("assets/style.css"),
    )
}

/// A refusal on a page: the status and a JSON reason, as the API answers.
fn refuse(status: StatusCode, reason: impl Into<String>) -> axum::response::Response {
    crate::http::ApiError::new(status, reason).into_response()
}
