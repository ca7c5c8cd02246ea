//! Silences and maintenance windows: the list with each one's status, the editor
//! that shows which open alerts a silence would catch before it is saved, and
//! expiring one.

use std::time::Duration;

use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::Web;
use super::access::Viewer;
use super::alerts::alert_id;
use super::layout::{self, page};
use crate::alert::State as AlertState;
use crate::daemon::OpError;
use crate::matcher::Matcher;
use crate::silence::{Force, Silence, Status};

/// `GET /silences`
pub async fn list(State(web): State<Web>, Extension(viewer): Extension<Viewer>) -> Response {
    let now = web.daemon.now();
    let mut all = web.daemon.silences().await;
    all.sort_by_key(|s| {
        (
            s.status(now) == Status::Expired,
            std::cmp::Reverse(s.starts_at),
        )
    });
    let windows = &web.daemon.config().maintenance;
    page(
        "Silences",
        Some(&viewer),
        html! {
            h1 { "Silences" }
            p { a.button href="/silences/new" { "New silence" } }
            @if all.is_empty() { p.none { "No silences." } } @else {
                table #silences {
                    thead { tr { th { "Status" } th { "Matchers" } th { "From" } th { "Until" }
                        th { "By" } th { "Comment" } th {} } }
                    tbody {
                        @for s in &all {
                            @let status = s.status(now);
                            tr.silence data-id=(s.id) {
                                td { span class=(format!("status status-{}", status.name())) { (status.name()) } }
                                td { (matchers(&s.matchers)) }
                                td { (layout::time(s.starts_at)) }
                                td { (layout::time(s.ends_at)) }
                                td { (s.created_by) }
                                td { (s.comment) }
                                td {
                                    @if status != Status::Expired {
                                        form method="post" action=(format!("/silences/{}/expire", s.id)) {
                                            (layout::csrf(&viewer))
                                            button type="submit" { "Expire" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Maintenance windows" }
            @if windows.is_empty() { p.none { "None configured (" code { "[[maintenance]]" } ")." } } @else {
                table #maintenance {
                    thead { tr { th { "Name" } th { "Status" } th { "Matchers" } th { "Lasts" } th { "Next change" } } }
                    tbody {
                        @for w in windows {
                            tr {
                                td { (w.name) }
                                td { @if w.active(now).is_some() { "active" } @else { "waiting" } }
                                td { (matchers(&w.matchers)) }
                                td { (layout::duration(w.duration)) }
                                td { @if let Some(t) = w.next_change(now) { (layout::time(t)) } }
                            }
                        }
                    }
                }
            }
        },
    )
    .into_response()
}

fn matchers(ms: &[Matcher]) -> Markup {
    html! { @for m in ms { code.matcher { (m.to_string()) } " " } }
}

/// What the editor holds: matchers one a line, a duration, a comment.
#[derive(Deserialize, Default)]
pub struct Draft {
    #[serde(default)]
    matchers: String,
    #[serde(default)]
    duration: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    csrf: String,
}

impl Draft {
    fn parse(&self) -> Result<(Vec<Matcher>, Duration), String> {
        let ms = self
            .matchers
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| Matcher::parse(l).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        if ms.is_empty() {
            return Err("give at least one matcher, one a line: host=bot-1".into());
        }
        let duration = humantime::parse_duration(self.duration_text())
            .map_err(|e| format!("duration {:?}: {e}", self.duration_text()))?;
        Ok((ms, duration))
    }

    fn duration_text(&self) -> &str {
        match self.duration.trim() {
            "" => "2h",
            d => d,
        }
    }
}

/// `GET /silences/new?matchers=…`: the editor, with the open alerts its matchers
/// select (the "Preview" button reloads it; `app.js` refreshes it as one types).
pub async fn editor(
    State(web): State<Web>,
    Extension(viewer): Extension<Viewer>,
    Query(draft): Query<Draft>,
) -> Response {
    render_editor(&web, &viewer, &draft, None)
        .await
        .into_response()
}

async fn render_editor(web: &Web, viewer: &Viewer, draft: &Draft, error: Option<&str>) -> Markup {
    let preview = match draft.parse() {
        Ok((ms, _)) => {
            let views = web.daemon.alerts().await;
            let caught: Vec<_> = views
                .iter()
                .filter(|v| v.alert.state.is_active() || v.alert.state == AlertState::Pending)
                .filter(|v| ms.iter().all(|m| m.matches_labels(&v.alert.labels)))
                .collect();
            html! {
                p { "It would silence " b.caught-count { (caught.len()) } " open alert(s)." }
                ul.caught {
                    @for v in &caught {
                        li { a href=(format!("/alerts/{}", alert_id(v))) { (v.alert.rule) } " "
                            (layout::state(v.alert.state)) " " (layout::labels(&v.alert.labels)) }
                    }
                }
            }
        }
        Err(_) if draft.matchers.trim().is_empty() => {
            html! { p.none { "Type matchers to see what they catch." } }
        }
        Err(e) => layout::trouble(&e),
    };
    page(
        "New silence",
        Some(viewer),
        html! {
            h1 { "New silence" }
            @if let Some(e) = error { (layout::trouble(e)) }
            form #silence-editor method="post" action="/silences" {
                (layout::csrf(viewer))
                label { "Matchers, one a line (" code { "host=bot-1" } ", " code { "env!=test" } ", "
                    code { "host=~\"bot-.*\"" } ")" br;
                    textarea name="matchers" rows="6" cols="60" { (draft.matchers) } }
                br;
                label { "For " input type="text" name="duration" value=(draft.duration_text()) size="8"; }
                " "
                label { "Comment " input type="text" name="comment" value=(draft.comment) size="40"; }
                @if viewer.person.is_none() {
                    " " label { "Your name " input type="text" name="actor" value=[draft.actor.as_deref()]; }
                }
                br;
                button type="submit" formmethod="get" formaction="/silences/new" { "Preview" }
                " "
                button #create type="submit" { "Create silence" }
            }
            h2 { "Preview" }
            div #preview { (preview) }
        },
    )
}

/// `POST /silences`: creates the silence from now for its duration.
pub async fn create(
    State(web): State<Web>,
    Extension(viewer): Extension<Viewer>,
    Form(draft): Form<Draft>,
) -> Response {
    if let Err(refused) = viewer.check(&web, &draft.csrf) {
        return refused.into_response();
    }
    let (matchers, duration) = match draft.parse() {
        Ok(ok) => ok,
        Err(e) => {
            let body = render_editor(&web, &viewer, &draft, Some(&e)).await;
            return (StatusCode::BAD_REQUEST, body).into_response();
        }
    };
    let now = web.daemon.now();
    let silence = Silence {
        id: uuid::Uuid::new_v4().to_string(),
        matchers,
        starts_at: now,
        ends_at: now + duration,
        created_by: viewer.actor(draft.actor.as_deref()),
        comment: draft.comment.trim().to_string(),
        updated_at: None,
    };
    // A silence of every alert is refused here as in Slack: it is for the API,
    // asked for in so many words with an admin token.
    match web.daemon.add_silence(silence, Force::No).await {
        Ok(_) => Redirect::to("/silences").into_response(),
        Err(OpError::Invalid(e)) => {
            let body = render_editor(&web, &viewer, &draft, Some(&e)).await;
            (StatusCode::BAD_REQUEST, body).into_response()
        }
        Err(e) => crate::http::ApiError::from(e).into_response(),
    }
}

#[derive(Deserialize)]
pub struct ExpireForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /silences/{id}/expire`
pub async fn expire(
    State(web): State<Web>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
    Form(form): Form<ExpireForm>,
) -> Response {
    if let Err(refused) = viewer.check(&web, &form.csrf) {
        return refused.into_response();
    }
    match web.daemon.expire_silence(&id).await {
        Ok(_) => Redirect::to("/silences").into_response(),
        Err(e) => crate::http::ApiError::from(e).into_response(),
    }
}
