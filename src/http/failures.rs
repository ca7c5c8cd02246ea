//! Refused credentials (a bearer token, a Slack or Twilio signature): each one is
//! counted in `tocsin_auth_failures_total{endpoint,reason}`, and a client address
//! that keeps failing is answered 429 instead.
//!
//! Only failures are limited, never requests: a client with a valid credential is
//! always served, even from an address that is over the limit. Behind a reverse proxy
//! every client can share one address, and a lockout would let anyone shut Slack,
//! Twilio or CI out by sending garbage; the credentials themselves (random tokens,
//! HMAC keys) are what stops guessing. The limit keeps a noisy client from costing
//! more than a counter bump and names it in the answer.
//!
//! governor's keyed GCRA limiter holds one small state per address and forgets
//! addresses that have been quiet long enough (`retain_recent`), which a hand-made
//! sliding window would have to reinvent.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::ApiError;
use crate::metrics::Metrics;

/// Failures one address may have at once before it is answered 429 ...
pub const FAILURE_BURST: u32 = 20;
/// ... and how often it earns one more: 20 per 5 minutes.
pub const FAILURE_REFILL: Duration = Duration::from_secs(15);

/// Forgetting quiet addresses scans the whole map, so it runs once every this many
/// failures rather than on each.
const FORGET_EVERY: u64 = 1024;

/// The per-address failure limit, shared by every authenticated route.
#[derive(Clone)]
pub struct AuthFailures {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    seen: Arc<AtomicU64>,
}

impl Default for AuthFailures {
    fn default() -> Self {
        let quota = Quota::with_period(FAILURE_REFILL)
            .expect("the refill period is not zero")
            .allow_burst(NonZeroU32::new(FAILURE_BURST).expect("the burst is not zero"));
        AuthFailures {
            limiter: Arc::new(RateLimiter::keyed(quota)),
            seen: Arc::default(),
        }
    }
}

impl AuthFailures {
    /// Counts one refused credential and answers it: `status` with `message` as the
    /// JSON reason, or 429 with `Retry-After` once `client` is over the limit.
    /// `message` must not contain the credential.
    pub fn refuse(
        &self,
        metrics: &Metrics,
        client: IpAddr,
        endpoint: &str,
        reason: &str,
        status: StatusCode,
        message: impl Into<String>,
    ) -> Response {
        metrics
            .auth_failures
            .get_or_create(&vec![
                ("endpoint".to_string(), endpoint.to_string()),
                ("reason".to_string(), reason.to_string()),
            ])
            .inc();
        if self.seen.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            self.limiter.retain_recent();
        }
        match self.limiter.check_key(&client) {
            Ok(()) => {
                tracing::debug!(%client, endpoint, reason, "credential refused");
                ApiError::new(status, message).into_response()
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                tracing::debug!(%client, endpoint, reason, "credential refused; over the failure limit");
                let mut response = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many failed authentications from this address; try again later",
                )
                .with("retry_after_seconds", secs)
                .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, secs.into());
                response
            }
        }
    }
}

/// The address a request came from: the peer, or, when the peer is a reverse proxy
/// on the same host (loopback), the address that proxy appended to
/// `X-Forwarded-For`. Unspecified (0.0.0.0) when the server was started without
/// connection info.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(&parts.extensions, &parts.headers)))
    }
}

pub fn client_ip(extensions: &axum::http::Extensions, headers: &HeaderMap) -> IpAddr {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical());
    match peer {
        Some(ip) if ip.is_loopback() => forwarded_for(headers).unwrap_or(ip),
        Some(ip) => ip,
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

/// The last address in `X-Forwarded-For`: the one the nearest proxy saw. Earlier
/// entries come from the client and prove nothing.
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all("x-forwarded-for").iter().next_back()?;
    let ip: IpAddr = last
        .to_str()
        .ok()?
        .rsplit(',')
        .next()?
        .trim()
        .parse()
        .ok()?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip_of(peer: Option<&str>, forwarded: &[&str]) -> IpAddr {
        let mut ext = axum::http::Extensions::new();
        if let Some(p) = peer {
            ext.insert(ConnectInfo(p.parse::<SocketAddr>().unwrap()));
        }
        let mut headers = HeaderMap::new();
        for f in forwarded {
            headers.append("x-forwarded-for", f.parse().unwrap());
        }
        client_ip(&ext, &headers)
    }

    #[test]
    fn forwarded_for_is_believed_from_a_local_proxy_only() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(ip_of(Some("192.0.2.7:5000"), &[]), ip("192.0.2.7"));
        assert_eq!(
            ip_of(Some("192.0.2.7:5000"), &["198.51.100.1"]),
            ip("192.0.2.7"),
            "a remote peer cannot claim another address"
        );
        assert_eq!(
            ip_of(Some("127.0.0.1:5000"), &["10.0.0.1, 198.51.100.1"]),
            ip("198.51.100.1"),
            "the address the proxy appended, not the client's claim"
        );
        assert_eq!(
            ip_of(Some("127.0.0.1:5000"), &["10.0.0.1", "198.51.100.2"]),
            ip("198.51.100.2")
        );
        assert_eq!(
            ip_of(Some("[::ffff:127.0.0.1]:5000"), &["garbage"]),
            ip("127.0.0.1")
        );
        assert_eq!(ip_of(None, &["198.51.100.1"]), ip("0.0.0.0"));
    }

    #[test]
    fn an_address_over_the_limit_gets_429_and_another_does_not() {
        let failures = AuthFailures::default();
        let metrics = Metrics::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let refuse = |ip| {
            failures
                .refuse(
                    &metrics,
                    ip,
                    "/x",
                    "wrong_token",
                    StatusCode::UNAUTHORIZED,
                    "no",
                )
                .status()
        };
        for i in 0..FAILURE_BURST {
            assert_eq!(refuse(a), StatusCode::UNAUTHORIZED, "failure {i}");
        }
        let over = failures.refuse(
            &metrics,
            a,
            "/x",
            "wrong_token",
            StatusCode::UNAUTHORIZED,
            "no",
        );
        assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = over.headers()[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=15).contains(&retry), "{retry}");
        assert_eq!(refuse(b), StatusCode::UNAUTHORIZED);
        assert!(
            metrics
                .render()
                .contains(r#"tocsin_auth_failures_total{endpoint="/x",reason="wrong_token"} 22"#),
            "{}",
            metrics.render()
        );
    }
}
