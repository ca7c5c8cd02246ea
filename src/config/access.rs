//! Stage two for who may reach the server and how: tokens' scopes, the routes
//! open without a token, and the listener's timeouts checked against each other.

use std::ops::Range;

use toml::Spanned;

use super::compile::Compiler;
use super::raw::{Str, Strs};
use super::{OpenRoutes, Scope, Server};

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
}
