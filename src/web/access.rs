//! Who is looking, and whether a form really came from our page.
//!
//! - No `[[tokens]]` (the listener is loopback only): open, as the API is. The acting
//!   person is the name typed into the form, or "web".
//! - `[web] user_header` and a request from a `trusted_proxies` address carrying it:
//!   the person the proxy names (oauth2-proxy's `X-Forwarded-User`).
//! - Otherwise, with tokens: the token in the `tocsin_token` cookie (HttpOnly,
//!   SameSite=Strict), set by the login form; its name is the acting person.
//!
//! Cross-site requests: every form carries `csrf`, an HMAC of the signed-in identity
//! under the signing key (`Daemon::signing_key`: with PostgreSQL, one key kept in
//! the database and shared by every replica, so a form rendered by one replica
//! verifies on another and after a failover; with redb, drawn at startup). Another site's page can make the browser post to
//! us, but cannot read our pages to learn the token; a post without it, or with one
//! for another identity, is refused 403. Browsers that say a request is cross-site
//! (`Sec-Fetch-Site`) are refused before that.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::Cookie;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{Web, refuse};
use crate::config::{Config, Scope};

/// The cookie that holds the token a person signed in with.
pub(super) const TOKEN_COOKIE: &str = "tocsin_token";
/// The form field of the cross-site token.
pub const CSRF_FIELD: &str = "csrf";

/// The key of the cross-site tokens. Over redb it is drawn at each start: forms
/// rendered before a restart are refused once, and reloading the page mends
/// them. Over PostgreSQL every replica has the same one, kept in the database
/// (never logged).
#[derive(Clone)]
pub struct Keys(std::sync::Arc<[u8; 32]>);

impl Keys {
    pub fn from_key(key: [u8; 32]) -> Keys {
        Keys(std::sync::Arc::new(key))
    }

    fn mac(&self, identity: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0[..]).expect("any key length");
        mac.update(b"tocsin web csrf\0");
        mac.update(identity.as_bytes());
        mac
    }

    pub(super) fn csrf(&self, identity: &str) -> String {
        hex::encode(self.mac(identity).finalize().into_bytes())
    }

    pub(super) fn verify(&self, identity: &str, token: &str) -> bool {
        let Ok(bytes) = hex::decode(token) else {
            return false;
        };
        self.mac(identity).verify_slice(&bytes).is_ok()
    }
}

/// The person looking at a page, as [`require`] found them.
#[derive(Clone, Debug)]
pub struct Viewer {
    /// Who acts: a token's name or the proxy's user; `None` on an open daemon,
    /// where the form says who.
    pub person: Option<String>,
    /// Whether a token cookie signed them in (the page offers to sign out).
    pub by_cookie: bool,
    /// The cross-site token every form of this page carries.
    pub csrf: String,
    identity: String,
}

impl Viewer {
    /// The acting person for an action: the signed-in one, else the name typed into
    /// the form (an open daemon), else "web".
    pub fn actor(&self, typed: Option<&str>) -> String {
        if let Some(p) = &self.person {
            return p.clone();
        }
        match typed.map(str::trim) {
            Some(t) if !t.is_empty() => t.chars().take(100).collect(),
            _ => "web".to_string(),
        }
    }

    /// Refuses a form whose cross-site token is not this viewer's.
    pub fn check(&self, web: &Web, token: &str) -> Result<(), CrossSite> {
        if web.keys.verify(&self.identity, token) {
            Ok(())
        } else {
            Err(CrossSite)
        }
    }
}

/// A form without this viewer's cross-site token: 403 with a JSON reason.
#[derive(Debug)]
pub struct CrossSite;

impl IntoResponse for CrossSite {
    fn into_response(self) -> Response {
        refuse(
            StatusCode::FORBIDDEN,
            "missing or invalid cross-site token: reload the page and try again",
        )
    }
}

/// The person the proxy names, if the request came from a trusted proxy.
fn proxy_user(config: &Config, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<String> {
    let name = config.web.user_header.as_deref()?;
    let peer = peer?;
    if !config.web.trusted_proxies.contains(&peer) {
        return None;
    }
    // UTF-8, not only ASCII: a proxy may name 高橋 as the identity provider does.
    let user = std::str::from_utf8(headers.get(name)?.as_bytes())
        .ok()?
        .trim();
    (!user.is_empty()).then(|| user.chars().take(100).collect())
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == TOKEN_COOKIE)
        .map(|c| c.value().to_string())
}

/// Signs the request in (or sends the person to the login form) and refuses
/// cross-site posts; hands the [`Viewer`] to the page.
pub async fn require(
    State(web): State<Web>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if request.method() != Method::GET
        && request
            .headers()
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return refuse(StatusCode::FORBIDDEN, "cross-site request refused");
    }
    let config = web.daemon.config();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical());
    let (person, by_cookie) = if let Some(user) = proxy_user(config, peer, request.headers()) {
        (Some(user), false)
    } else if config.tokens.is_empty() {
        (None, false)
    } else {
        match cookie_token(request.headers()).and_then(|t| config.find_token(&t).cloned()) {
            // The same scopes as the API: `read` to look, `operate` to act.
            Some(token) => {
                let needs = if request.method() == Method::GET {
                    Scope::Read
                } else {
                    Scope::Operate
                };
                if !token.allows(needs) {
                    return refuse(
                        StatusCode::FORBIDDEN,
                        format!(
                            "token {:?} lacks the {} scope this page needs",
                            token.name,
                            needs.name()
                        ),
                    );
                }
                (Some(token.name), true)
            }
            None if request.method() == Method::GET => {
                let next = request
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string();
                let to = format!("/login?next={}", urlencode(&next));
                return Redirect::to(&to).into_response();
            }
            None => return refuse(StatusCode::UNAUTHORIZED, "sign in first"),
        }
    };
    let identity = match &person {
        Some(p) => format!("{}:{p}", if by_cookie { "token" } else { "proxy" }),
        None => String::new(),
    };
    let viewer = Viewer {
        csrf: web.keys.csrf(&identity),
        person,
        by_cookie,
        identity,
    };
    request.extensions_mut().insert(viewer);
    next.run(request).await
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
