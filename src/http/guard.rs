//! Who may call a route, and from where.
//!
//! - **Tokens and scopes.** With `[[tokens]]`, every route needs `Authorization:
//!   Bearer <token>` (the scheme in any case, as HTTP has it) of a token whose
//!   scopes cover it: `intake` to push samples and send alerts, `read` to read
//!   alerts and silences, `operate` to ack, resolve and silence, `admin` for all
//!   of them. `/healthz`, `/readyz` and `/metrics` are open unless `server.open`
//!   leaves them out. Without tokens (loopback only) every route is open.
//! - **Cross-site requests.** A web page the on-call person opens can make their
//!   browser POST to a daemon on 127.0.0.1 with no token. Every state-changing
//!   route (Slack's and Twilio's are signed instead) refuses a request whose
//!   `Origin` is another site, or that a browser marks `Sec-Fetch-Site:
//!   cross-site`, and the routes whose body is JSON want `Content-Type:
//!   application/json`, which a page cannot send to another site without the CORS
//!   preflight tocsin never answers.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use super::failures::{AuthFailures, ClientIp};
use crate::config::Scope;
use crate::daemon::Daemon;

/// Who made a request: the token's name (recorded as the actor of acks, resolves
/// and silences) and whether it may do everything (force a silence of every
/// alert).
#[derive(Clone, Debug)]
pub struct Caller {
    pub name: String,
    pub admin: bool,
}

/// What [`authenticate`] checks a route against.
#[derive(Clone)]
pub struct Guard {
    pub daemon: Daemon,
    pub failures: AuthFailures,
    pub scope: Scope,
}

/// The token of `Authorization: Bearer <token>`, the scheme in any case.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start())
}

/// Checks the bearer token against the configured tokens (in constant time) and
/// its scopes against the route's; with no tokens configured (loopback only) every
/// request passes. A refusal is counted, and limited per client address.
pub async fn authenticate(
    State(guard): State<Guard>,
    ClientIp(client): ClientIp,
    mut request: Request,
    next: Next,
) -> Response {
    let config = guard.daemon.config();
    if config.tokens.is_empty() {
        return next.run(request).await;
    }
    let found = bearer(request.headers()).map(|b| config.find_token(b));
    let (reason, status, message) = match found {
        Some(Some(token)) if token.allows(guard.scope) => {
            let caller = Caller {
                name: token.name.clone(),
                admin: token.allows(Scope::Admin),
            };
            request.extensions_mut().insert(caller);
            return next.run(request).await;
        }
        Some(Some(token)) => (
            "scope",
            StatusCode::FORBIDDEN,
            format!(
                "token {:?} lacks the {:?} scope this route needs (it has: {})",
                token.name,
                guard.scope.name(),
                token
                    .scopes
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Some(None) => (
            "wrong_token",
            StatusCode::UNAUTHORIZED,
            "missing or invalid bearer token".to_string(),
        ),
        None => (
            "missing_token",
            StatusCode::UNAUTHORIZED,
            "missing or invalid bearer token".to_string(),
        ),
    };
    // The route template, not the path: a bounded set of label values.
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("api", |p| p.as_str());
    guard.failures.refuse(
        guard.daemon.metrics(),
        client,
        endpoint,
        reason,
        status,
        message,
    )
}

/// A state-changing route whose body, when there is one, is JSON: cross-site
/// checks, then the content type.
pub async fn same_site_json(
    State(daemon): State<Daemon>,
    request: Request,
    next: Next,
) -> Response {
    if let Err(refused) = cross_site(&daemon, request.headers()) {
        return *refused;
    }
    if let Err(refused) = json_body(&daemon, request.headers()) {
        return *refused;
    }
    next.run(request).await
}

/// A state-changing route whose body is not JSON (the text format): cross-site
/// checks only.
pub async fn same_site(State(daemon): State<Daemon>, request: Request, next: Next) -> Response {
    match cross_site(&daemon, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refused) => *refused,
    }
}

/// A refusal, boxed: a `Response` is large to carry in every `Ok`.
type Refused = Box<Response>;

fn refuse(daemon: &Daemon, reason: &str, status: StatusCode, message: String) -> Response {
    daemon
        .metrics()
        .cross_site_refused
        .get_or_create(&vec![("reason".to_string(), reason.to_string())])
        .inc();
    ApiError::new(status, message).into_response()
}

/// Refuses a request a browser sent on behalf of another site: an `Origin` that
/// is not this server (the request's own `Host`, or `server.public_url`), or
/// `Sec-Fetch-Site: cross-site`. Clients that are not browsers send neither.
fn cross_site(daemon: &Daemon, headers: &HeaderMap) -> Result<(), Refused> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if text(header::HeaderName::from_static("sec-fetch-site"))
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
    {
        return Err(Box::new(refuse(
            daemon,
            "origin",
            StatusCode::FORBIDDEN,
            "cross-site request refused: the browser says another site sent it".to_string(),
        )));
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let host = text(header::HOST);
    let public = daemon.config().server.public_url.as_deref();
    if same_origin(origin, host, public) {
        return Ok(());
    }
    Err(Box::new(refuse(
        daemon,
        "origin",
        StatusCode::FORBIDDEN,
        format!(
            "cross-site request refused: Origin {:?} is not this server",
            origin.chars().take(100).collect::<String>()
        ),
    )))
}

/// Whether `origin` (`scheme://host[:port]`) names this server: its authority
/// is the request's `Host` (the scheme is left out: a TLS proxy in front changes
/// it), or it is `public_url`'s scheme and authority.
fn same_origin(origin: &str, host: Option<&str>, public_url: Option<&str>) -> bool {
    let authority = |url: &str| {
        let rest = url.split_once("://").map(|(_, r)| r)?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        Some(rest[..end].to_ascii_lowercase())
    };
    let Some(from) = authority(origin) else {
        return false; // `null`, or not a URL
    };
    if host.is_some_and(|h| h.eq_ignore_ascii_case(&from)) {
        return true;
    }
    public_url.is_some_and(|p| {
        let scheme_of = |u: &str| u.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        authority(p) == Some(from) && scheme_of(p) == scheme_of(origin)
    })
}

/// A JSON body must say so: `Content-Type: application/json` (or `…+json`), which
/// a page cannot send to another site without a preflight. A request without a
/// body (an ack with no note) needs none.
fn json_body(daemon: &Daemon, headers: &HeaderMap) -> Result<(), Refused> {
    let content_type = headers.get(header::CONTENT_TYPE);
    let empty = headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0")
        || (!headers.contains_key(header::CONTENT_LENGTH)
            && !headers.contains_key(header::TRANSFER_ENCODING));
    let json = content_type
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let essence = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"))
        })
        .unwrap_or(false);
    if json || (content_type.is_none() && empty) {
        return Ok(());
    }
    Err(Box::new(refuse(
        daemon,
        "content_type",
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "the body must be sent with Content-Type: application/json".to_string(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_is_case_insensitive() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
            bearer(&h).map(str::to_string)
        };
        assert_eq!(with("Bearer abc"), Some("abc".into()));
        assert_eq!(with("bearer abc"), Some("abc".into()));
        assert_eq!(with("BEARER  abc"), Some("abc".into()));
        assert_eq!(with("Basic abc"), None);
        assert_eq!(with("Bearerabc"), None);
    }

    #[test]
    fn only_this_server_is_the_same_origin() {
        let host = Some("127.0.0.1:9095");
        assert!(same_origin("http://127.0.0.1:9095", host, None));
        assert!(same_origin("https://127.0.0.1:9095", host, None));
        assert!(!same_origin("http://evil.example", host, None));
        assert!(!same_origin("http://127.0.0.1:3000", host, None));
        assert!(!same_origin("null", host, None));
        assert!(!same_origin("http://localhost:9095", host, None));
        let public = Some("https://tocsin.example.com/base");
        assert!(same_origin(
            "https://tocsin.example.com",
            Some("127.0.0.1:9095"),
            public
        ));
        assert!(!same_origin(
            "http://tocsin.example.com",
            Some("127.0.0.1:9095"),
            public
        ));
    }
}
