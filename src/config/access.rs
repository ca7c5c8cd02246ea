//! Stage two for who may reach the server and how: the listen address, tokens and
//! their scopes, the routes open without a token, the listener's timeouts checked
//! against each other, and the web UI's trusted proxy.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;

use toml::Spanned;

use super::compile::Compiler;
use super::raw::{RawToken, RawWeb, Str, Strs};
use super::{Config, OpenRoutes, Scope, Secret, Server, Token, Web};

impl Compiler<'_> {
    /// `tokens[i].scopes`: absent is every scope but `admin` (what a token could do
    /// before scopes existed); an empty list would be a token that can do nothing.
    pub(super) fn scopes(
        &mut self,
        raw: Option<&[Spanned<String>]>,
        i: usize,
        name: Range<usize>,
    ) -> Vec<Scope> {
        let Some(raw) = raw else {
            return vec![Scope::Intake, Scope::Read, Scope::Operate];
        };
        let mut scopes = Vec::new();
        for (j, value) in raw.iter().enumerate() {
            let key = format!("tokens[{i}].scopes[{j}]");
            let Some(text) = self.text(value, &key) else {
                continue;
            };
            match Scope::ALL.iter().find(|s| s.name() == text.trim()) {
                Some(s) => scopes.push(*s),
                None => self.report(
                    value.span(),
                    format!(
                        "{key}: unknown scope {:?}, expected one of intake, read, operate, admin",
                        text.trim()
                    ),
                ),
            }
        }
        if raw.is_empty() {
            self.report(
                name,
                format!(
                    "tokens[{i}].scopes: empty; list what the token may do (intake, read, \
                     operate, admin)"
                ),
            );
        }
        scopes.sort();
        scopes.dedup();
        scopes
    }

    /// `server.open`: `"health"` and `"metrics"`, the routes that need no token.
    pub(super) fn open_routes(&mut self, raw: &Option<Strs>, default: OpenRoutes) -> OpenRoutes {
        let Some(raw) = raw else {
            return default;
        };
        let mut open = OpenRoutes {
            health: false,
            metrics: false,
        };
        for (i, value) in raw.iter().enumerate() {
            let key = format!("server.open[{i}]");
            let Some(text) = self.text(value, &key) else {
                continue;
            };
            match text.trim() {
                "health" => open.health = true,
                "metrics" => open.metrics = true,
                other => self.report(
                    value.span(),
                    format!(
                        "{key}: unknown route group {other:?}, expected \"health\" or \"metrics\""
                    ),
                ),
            }
        }
        open
    }

    /// A connection idle while its request is worked on must not be cut: the idle
    /// timeout must outlast the request timeout.
    pub(super) fn idle_after_requests(&mut self, raw: &Str, server: &Server) {
        if server.idle_timeout <= server.request_timeout {
            let span = raw.as_ref().map(|v| v.span());
            self.problems.push(self.src.problem(
                span,
                format!(
                    "server.idle_timeout: {} must be longer than server.request_timeout ({})",
                    humantime::format_duration(server.idle_timeout),
                    humantime::format_duration(server.request_timeout)
                ),
            ));
        }
    }

    /// `[web]`: the proxy header naming the signed-in person, and the addresses
    /// allowed to set it.
    pub(super) fn web(&mut self, raw: &RawWeb, defaults: Web) -> Web {
        let user_header = raw.user_header.as_ref().and_then(|v| {
            let name = self.text(v, "web.user_header")?;
            let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if !name.is_empty() && name.chars().all(token) {
                return Some(name.to_ascii_lowercase());
            }
            self.report(
                v.span(),
                format!("web.user_header: {name:?} is not an HTTP header name"),
            );
            None
        });
        let trusted_proxies = match &raw.trusted_proxies {
            None => defaults.trusted_proxies,
            Some(list) => list
                .iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    let key = format!("web.trusted_proxies[{i}]");
                    let text = self.text(v, &key)?;
                    match text.trim().parse() {
                        Ok(ip) => Some(ip),
                        Err(_) => {
                            self.report(v.span(), format!("{key}: {text:?} is not an IP address"));
                            None
                        }
                    }
                })
                .collect(),
        };
        Web {
            user_header,
            trusted_proxies,
        }
    }

    /// The listen address. A non-loopback address needs tokens: without them anyone
    /// who can reach the port could push samples and ack alerts.
    pub(super) fn listen(&mut self, value: &Str, has_tokens: bool) -> SocketAddr {
        let default = Config::default().server.listen;
        let Some(value) = value else {
            return default;
        };
        let Some(text) = self.text(value, "server.listen") else {
            return default;
        };
        let addr: SocketAddr = match text.trim().parse() {
            Ok(addr) => addr,
            Err(_) => {
                self.report(
                    value.span(),
                    format!(
                        "server.listen: invalid address {text:?}: expected IP:PORT, \
                         such as 127.0.0.1:9095 or [::1]:9095"
                    ),
                );
                return default;
            }
        };
        if !addr.ip().is_loopback() && !has_tokens {
            self.report(
                value.span(),
                format!(
                    "refusing to listen on {addr} without tokens: add [[tokens]] or \
                     listen on 127.0.0.1"
                ),
            );
        }
        addr
    }

    /// `server.advertise_url`: an http(s) URL with a host other replicas can
    /// reach (not `0.0.0.0`), no query or fragment; kept without a trailing `/`.
    pub(super) fn advertise_url(&mut self, value: &Str) -> Option<String> {
        let value = value.as_ref()?;
        let url = self.http_url(value, "server.advertise_url")?;
        let unusable = match reqwest::Url::parse(&url) {
            Ok(parsed) if parsed.query().is_some() || parsed.fragment().is_some() => {
                Some("it must not have a query or a fragment")
            }
            Ok(parsed) => match parsed.host_str().map(|h| h.trim_matches(['[', ']'])) {
                None => Some("it has no host"),
                Some(host)
                    if host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_unspecified()) =>
                {
                    Some("0.0.0.0 and :: name no address another replica can reach")
                }
                Some(_) => None,
            },
            Err(_) => Some("it is not a URL"),
        };
        if let Some(why) = unusable {
            self.report(
                value.span(),
                format!(
                    "server.advertise_url: {why}: write the URL the other replicas \
                     reach this one at, such as \"http://10.0.0.5:9095\""
                ),
            );
            return None;
        }
        Some(url.trim_end_matches('/').to_string())
    }

    /// With PostgreSQL, the other replicas must be able to reach this one (they
    /// forward writes to whichever acts): an `advertise_url`, or a listen address
    /// that names one.
    pub(super) fn reachable_by_replicas(
        &mut self,
        raw: &super::raw::RawServer,
        server: &super::Server,
        storage: &super::Storage,
    ) {
        // A wrong advertise_url is reported where it is written.
        if !matches!(storage.backend, super::Backend::Postgres { .. })
            || raw.advertise_url.is_some()
            || !server.listen.ip().is_unspecified()
        {
            return;
        }
        let Some(listen) = &raw.listen else {
            return;
        };
        self.report(
            listen.span(),
            format!(
                "server.listen: {} names no address another replica can reach: with \
                 storage.backend = \"postgres\", set server.advertise_url to the URL \
                 the other replicas reach this one at (such as \"http://10.0.0.5:9095\")",
                server.listen
            ),
        );
    }

    pub(super) fn tokens(&mut self, raw: &[RawToken]) -> Vec<Token> {
        let mut tokens: Vec<Token> = Vec::new();
        // Where each name was first seen, to report a duplicate against it.
        let mut names: HashMap<String, usize> = HashMap::new();
        for (i, t) in raw.iter().enumerate() {
            let name = self.text(&t.name, &format!("tokens[{i}].name"));
            let secret = self.text(&t.token, &format!("tokens[{i}].token"));
            let name_ok = match &name {
                None => false,
                Some(n) if n.trim().is_empty() => {
                    self.report(t.name.span(), format!("tokens[{i}].name: name is empty"));
                    false
                }
                Some(n) => match names.get(n) {
                    Some(&line) => {
                        self.report(
                            t.name.span(),
                            format!(
                                "tokens[{i}].name: duplicate token name {n:?} (first at line {line})"
                            ),
                        );
                        false
                    }
                    None => {
                        names.insert(n.clone(), self.line_of(&t.name.span()));
                        true
                    }
                },
            };
            let secret = secret.map(Secret::new);
            let secret_ok = match &secret {
                None => false,
                Some(s) if s.is_empty() => {
                    self.report(t.token.span(), format!("tokens[{i}].token: token is empty"));
                    false
                }
                Some(s)
                    if s.expose()
                        .chars()
                        .any(|c| c.is_whitespace() || c.is_control()) =>
                {
                    self.report(
                        t.token.span(),
                        format!(
                            "tokens[{i}].token: token contains whitespace or control characters"
                        ),
                    );
                    false
                }
                Some(s) => match tokens.iter().find(|other| other.token == *s) {
                    Some(other) => {
                        let message = format!(
                            "tokens[{i}].token: same token as token {:?}; each token must be \
                             unique so it names one actor",
                            other.name
                        );
                        self.report(t.token.span(), message);
                        false
                    }
                    None => true,
                },
            };
            let scopes = self.scopes(t.scopes.as_deref(), i, t.name.span());
            if let (Some(name), Some(token), true, true) = (name, secret, name_ok, secret_ok) {
                tokens.push(Token {
                    name,
                    token,
                    scopes,
                });
            }
        }
        tokens
    }
}
