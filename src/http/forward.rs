//! Any replica accepts writes: a standby relays each write it is sent to the
//! replica that holds the lease, and answers with that replica's answer,
//! unchanged (ARCHITECTURE.md, "Replicas").
//!
//! - [`to_holder`] sits innermost on every write route (alerts, the Alertmanager
//!   webhook, acks, silences, Slack and Twilio callbacks, the web UI's forms),
//!   after the route's own guard: a standby checks tokens, scopes and cross-site
//!   requests itself, and relays only what it would have taken. Slack's and
//!   Twilio's signatures are checked where the request is acted on: the body and
//!   the headers they sign go unchanged (Twilio signs `server.public_url` and the
//!   path, the same on every replica).
//! - A relayed request carries [`HOP`]: the caller's address, signed with the key
//!   every replica shares ([`Daemon::signing_key`]). [`arrived`], outermost, puts
//!   that address back as the peer, so the holder limits refused credentials and
//!   trusts a proxy's user header per real caller, not per standby. A request
//!   carrying [`HOP`] is never relayed again: a replica that does not act answers
//!   it 503 itself.
//! - Bounded: one pooled client, [`TIMEOUT`] per relay, bodies up to
//!   `server.body_limit` one way and [`ANSWER_LIMIT`] the other. No holder, or
//!   none that answers: 503 with a JSON reason to retry; never a 2xx that the
//!   holder did not give.
//!
//! Samples are not relayed: each replica keeps its own windows whole.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{ApiError, read_body};
use crate::daemon::{Daemon, Writes};

/// The header of a relayed request: `<caller address> <unix ms> <hex HMAC>`.
pub const HOP: &str = "x-tocsin-forwarded";
/// How long a relay may take, connecting included.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer relayed back (answers to writes are small).
pub const ANSWER_LIMIT: usize = 1 << 20;
/// How old a signed caller address may be (replicas' clocks may differ a little).
const HOP_MAX_AGE_MS: i64 = 60_000;

/// The request headers that travel with a relayed request: what the holder's
/// checks read (the token, the body's type, Slack's and Twilio's signatures,
/// the web UI's cookie, the proxy's client address). `Origin` and
/// `Sec-Fetch-Site` stay: the standby checked them, and the holder is not the
/// host the browser named.
const RELAYED: &[&str] = &[
    "authorization",
    "content-type",
    "cookie",
    "accept",
    "user-agent",
    "x-forwarded-for",
    "x-slack-signature",
    "x-slack-request-timestamp",
    "x-slack-retry-num",
    "x-slack-retry-reason",
    "x-twilio-signature",
];

/// What both middlewares share: the daemon, one pooled client, the shared key.
#[derive(Clone)]
pub struct Forwarder {
    daemon: Daemon,
    client: reqwest::Client,
    key: HopKey,
}

impl Forwarder {
    pub fn new(daemon: Daemon, key: [u8; 32]) -> Forwarder {
        let client = crate::tls::http_client()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            // The holder's answer is relayed as it is, a redirect too.
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("a client without custom TLS settings builds");
        Forwarder {
            daemon,
            client,
            key: HopKey(Arc::new(key)),
        }
    }
}

/// Signs and checks the caller's address on a relayed request.
#[derive(Clone)]
struct HopKey(Arc<[u8; 32]>);

impl HopKey {
    fn mac(&self, peer: &str, at_ms: i64, method: &str, path: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0[..]).expect("any key length");
        for part in ["tocsin forward", peer, &at_ms.to_string(), method, path] {
            mac.update(part.as_bytes());
            mac.update(b"\0");
        }
        mac
    }

    /// The [`HOP`] value for a request from `peer`, signed at `at_ms`.
    fn sign(&self, peer: SocketAddr, at_ms: i64, method: &str, path: &str) -> String {
        let peer = peer.to_string();
        let mac = self.mac(&peer, at_ms, method, path).finalize().into_bytes();
        format!("{peer} {at_ms} {}", hex::encode(mac))
    }

    /// The caller a [`HOP`] value names, if a replica signed it for this method
    /// and path within [`HOP_MAX_AGE_MS`] of `now_ms`.
    fn verify(&self, value: &str, now_ms: i64, method: &str, path: &str) -> Option<SocketAddr> {
        let mut parts = value.split(' ');
        let (peer, at, mac) = (parts.next()?, parts.next()?, parts.next()?);
        let at_ms: i64 = at.parse().ok()?;
        if (now_ms - at_ms).abs() > HOP_MAX_AGE_MS {
            return None;
        }
        let mac = hex::decode(mac).ok()?;
        self.mac(peer, at_ms, method, path)
            .verify_slice(&mac)
            .ok()?;
        peer.parse().ok()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Forwarder {
    /// Where a write sent here now is committed, for `/readyz`: here, or at a
    /// holder that answers HTTP (any status: `/healthz` may need a token) within
    /// a second. A standby cut off from the holder is not ready.
    pub async fn writes_go_somewhere(&self) -> Option<Writes> {
        match self.daemon.writes() {
            Writes::Here => self.daemon.ready().then_some(Writes::Here),
            Writes::Forward(url) => {
                let probe = self
                    .client
                    .get(format!("{url}/healthz"))
                    .timeout(Duration::from_secs(1))
                    .send()
                    .await;
                probe.is_ok().then_some(Writes::Forward(url))
            }
            Writes::Nowhere => None,
        }
    }
}

fn path_of(request: &Request) -> &str {
    request.uri().path_and_query().map_or("/", |p| p.as_str())
}

/// Outermost: a request a replica relayed is served as if its caller had sent
/// it here (the signed address becomes the peer). One whose signature does not
/// verify keeps its real peer; either way it is never relayed again.
pub async fn arrived(State(fwd): State<Forwarder>, mut request: Request, next: Next) -> Response {
    if let Some(value) = request.headers().get(HOP).and_then(|v| v.to_str().ok()) {
        let claimed = fwd.key.verify(
            value,
            now_ms(),
            request.method().as_str(),
            path_of(&request),
        );
        match claimed {
            Some(peer) => {
                request.extensions_mut().insert(ConnectInfo(peer));
            }
            None => tracing::debug!("a forwarded request whose caller does not verify"),
        }
    }
    next.run(request).await
}

/// Innermost on a write route: served here while this replica acts, else
/// relayed to the one that does.
pub async fn to_holder(State(fwd): State<Forwarder>, request: Request, next: Next) -> Response {
    if request.headers().contains_key(HOP) {
        // Relayed once already: answered here, 503 if this replica does not act.
        return next.run(request).await;
    }
    let holder = match fwd.daemon.writes() {
        Writes::Here => return next.run(request).await,
        Writes::Forward(url) => url,
        Writes::Nowhere => {
            count(&fwd, "no_holder");
            return no_replica_acts("no replica holds the lease on the state");
        }
    };
    relay(&fwd, &holder, request).await
}

/// Counts a relay by outcome (`tocsin_writes_relayed_total`).
fn count(fwd: &Forwarder, outcome: &str) {
    fwd.daemon
        .metrics()
        .writes_relayed
        .get_or_create(&vec![("outcome".to_string(), outcome.to_string())])
        .inc();
}

/// 503, to retry: nothing was committed.
fn no_replica_acts(why: &str) -> Response {
    let mut answer = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("no replica acts on the state now ({why}): nothing was committed; retry"),
    )
    .into_response();
    answer
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    answer
}

async fn relay(fwd: &Forwarder, holder: &str, request: Request) -> Response {
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
    let body = match read_body(body, fwd.daemon.config().server.body_limit).await {
        Ok(body) => body,
        Err(refused) => return refused.into_response(),
    };
    let method = match reqwest::Method::from_bytes(parts.method.as_str().as_bytes()) {
        Ok(m) => m,
        Err(_) => return ApiError::new(StatusCode::BAD_REQUEST, "bad method").into_response(),
    };
    let mut headers = reqwest::header::HeaderMap::new();
    let proxy_header = fwd.daemon.config().web.user_header.clone();
    let relayed = RELAYED
        .iter()
        .copied()
        .chain(proxy_header.as_deref())
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok());
    for name in relayed {
        for value in parts.headers.get_all(&name) {
            headers.append(name.clone(), value.clone());
        }
    }
    let hop = fwd.key.sign(peer, now_ms(), parts.method.as_str(), path);
    headers.insert(
        HOP,
        HeaderValue::from_str(&hop).expect("an address, digits and hex"),
    );
    let sent = fwd
        .client
        .request(method, format!("{holder}{path}"))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let answer = match sent {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(error = %without_url(&e), "cannot reach the replica that acts");
            count(fwd, "unreachable");
            return no_replica_acts("the replica that holds the lease does not answer");
        }
    };
    let status = answer.status();
    let headers = answered_headers(answer.headers());
    let body = match bounded(answer).await {
        Some(body) => body,
        None => {
            tracing::warn!("the replica that acts answered too much, or stopped");
            count(fwd, "broken");
            return ApiError::new(
                StatusCode::BAD_GATEWAY,
                "the replica that acts gave no whole answer: what it did is unknown; \
                 retry (a repeat is taken as the same request)",
            )
            .into_response();
        }
    };
    count(fwd, "answered");
    tracing::debug!(path, %status, took = ?started.elapsed(), "relayed a write to the replica that acts");
    let mut out = Response::new(Body::from(body));
    *out.status_mut() = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    *out.headers_mut() = headers;
    out
}

/// A reqwest error without its URL (the holder's address is no secret, but the
/// path may carry a query someone typed).
fn without_url(e: &reqwest::Error) -> String {
    let mut shown = e.to_string();
    if let Some(url) = e.url() {
        shown = shown.replace(url.as_str(), "the replica that acts");
    }
    shown
}

/// The answer's headers, without those that belong to one connection.
fn answered_headers(from: &reqwest::header::HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in from {
        if matches!(
            name.as_str(),
            "connection" | "keep-alive" | "transfer-encoding" | "content-length" | "date"
        ) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// The answer's body, or None past [`ANSWER_LIMIT`] or if it broke off.
async fn bounded(mut answer: reqwest::Response) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await.ok()? {
        if body.len() + chunk.len() > ANSWER_LIMIT {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_caller_verifies_only_for_its_method_path_key_and_time() {
        let key = HopKey(Arc::new([7; 32]));
        let peer: SocketAddr = "10.1.2.3:5555".parse().unwrap();
        let at = 1_000_000;
        let hop = key.sign(peer, at, "POST", "/api/v2/alerts");
        assert_eq!(
            key.verify(&hop, at + 5, "POST", "/api/v2/alerts"),
            Some(peer)
        );
        assert_eq!(key.verify(&hop, at, "POST", "/api/v1/alerts/1/ack"), None);
        assert_eq!(key.verify(&hop, at, "DELETE", "/api/v2/alerts"), None);
        let other = HopKey(Arc::new([8; 32]));
        assert_eq!(other.verify(&hop, at, "POST", "/api/v2/alerts"), None);
        assert_eq!(
            key.verify(&hop, at + HOP_MAX_AGE_MS + 1, "POST", "/api/v2/alerts"),
            None,
            "an old signature is not replayed"
        );
        let forged = hop.replace("10.1.2.3", "10.9.9.9");
        assert_eq!(key.verify(&forged, at, "POST", "/api/v2/alerts"), None);
    }
}
