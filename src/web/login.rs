//! Signing in and out of the web UI: the token form, the HttpOnly, SameSite=Strict
//! cookie that keeps the token, and where to go after. Who is looking on every
//! other page is `access.rs`'s.

use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use maud::html;
use serde::Deserialize;

use super::access::{CSRF_FIELD, TOKEN_COOKIE, Viewer};
use super::{Web, layout, refuse};
use crate::http::failures::ClientIp;

/// Only a path on this site: a `next` of `//evil.example` or `https://…` would
/// send the person elsewhere after signing in.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /login`: the token form.
pub async fn login_form(State(web): State<Web>, Query(q): Query<NextQuery>) -> Response {
    let next = local_path(q.next.as_deref()).to_string();
    let csrf = web.keys.csrf("");
    layout::page(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            p { "This tocsin asks for one of its API tokens (" code { "[[tokens]]" } ")." }
            form method="post" action="/login" {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                input type="hidden" name="next" value=(next);
                label { "Token " input type="password" name="token" autocomplete="current-password" required; }
                " "
                button type="submit" { "Sign in" }
            }
        },
    )
    .into_response()
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    token: String,
    next: Option<String>,
}

/// `POST /login`: a known token is kept in the cookie; a wrong one counts against
/// the address's limit of failures, as a wrong bearer token does.
pub async fn login(
    State(web): State<Web>,
    ClientIp(client): ClientIp,
    Form(form): Form<LoginForm>,
) -> Response {
    if !web.keys.verify("", &form.csrf) {
        return refuse(StatusCode::FORBIDDEN, "missing or invalid cross-site token");
    }
    if web.daemon.config().find_token(&form.token).is_none() {
        return web.failures.refuse(
            web.daemon.metrics(),
            client,
            "/login",
            "wrong_token",
            StatusCode::UNAUTHORIZED,
            "unknown token",
        );
    }
    let cookie = Cookie::build((TOKEN_COOKIE, form.token))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .build();
    (
        [(header::SET_COOKIE, cookie.to_string())],
        Redirect::to(local_path(form.next.as_deref())),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`: forgets the cookie.
pub async fn logout(
    State(web): State<Web>,
    axum::Extension(viewer): axum::Extension<Viewer>,
    Form(form): Form<LogoutForm>,
) -> Response {
    if let Err(refused) = viewer.check(&web, &form.csrf) {
        return refused.into_response();
    }
    let mut cookie = Cookie::build((TOKEN_COOKIE, ""))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .build();
    cookie.make_removal();
    (
        [(header::SET_COOKIE, cookie.to_string())],
        Redirect::to("/login"),
    )
        .into_response()
}
