//! The Alerts page (open alerts by state and severity, filtered by label matchers,
//! updated live over server-sent events) and the page of one alert (labels,
//! annotations, value, timeline, and the ack / unack / resolve buttons).

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::access::Viewer;
use super::layout::{self, page};
use super::{Web, refuse};
use crate::alert::{Event, State as AlertState};
use crate::clock::Timestamp;
use crate::daemon::{AlertView, OpError};
use crate::matcher::Matcher;

/// The groups of the Alerts page, in the order an on-call person reads them.
const GROUPS: [AlertState; 4] = [
    AlertState::Firing,
    AlertState::Acknowledged,
    AlertState::Pending,
    AlertState::Suppressed,
];

/// `?labels=host=bot-1, env!=test&severity=critical`
#[derive(Deserialize, Default, Clone)]
pub struct Filter {
    #[serde(default)]
    labels: String,
    #[serde(default)]
    severity: String,
}

impl Filter {
    /// The label matchers, comma-separated as typed; the first bad one is refused.
    fn matchers(&self) -> Result<Vec<Matcher>, String> {
        self.labels
            .split(',')
            .filter(|m| !m.trim().is_empty())
            .map(|m| Matcher::parse(m).map_err(|e| e.to_string()))
            .collect()
    }

    fn keeps(&self, matchers: &[Matcher], v: &AlertView) -> bool {
        (self.severity.is_empty() || v.severity == self.severity)
            && matchers.iter().all(|m| m.matches_labels(&v.alert.labels))
    }

    fn query(&self) -> String {
        layout::query(&[("labels", &self.labels), ("severity", &self.severity)])
    }
}

fn severity_rank(s: &str) -> u8 {
    match s {
        "critical" => 0,
        "warning" => 1,
        "info" => 2,
        _ => 3,
    }
}

/// The id an alert's page goes by: its incident number once it has fired, else
/// its fingerprint (a pending alert has no incident yet).
pub fn alert_id(v: &AlertView) -> String {
    match v.alert.incident {
        Some(n) => n.to_string(),
        None => v.alert.fingerprint.to_string(),
    }
}

/// The grouped tables: what the page shows and what each live update replaces.
fn groups(views: &[AlertView], filter: &Filter, now: Timestamp) -> Markup {
    let matchers = match filter.matchers() {
        Ok(m) => m,
        Err(e) => return layout::trouble(&e),
    };
    let mut kept: Vec<&AlertView> = views
        .iter()
        .filter(|v| filter.keeps(&matchers, v))
        .collect();
    kept.sort_by_key(|v| {
        (
            severity_rank(&v.severity),
            v.alert.fired_at.or(v.alert.active_since),
            v.alert.fingerprint,
        )
    });
    html! {
        @for state in GROUPS {
            @let these: Vec<&&AlertView> = kept.iter().filter(|v| v.alert.state == state).collect();
            section.group id=(format!("group-{}", state.name())) {
                h2 { (layout::state(state)) " " span.count { (these.len()) } }
                @if these.is_empty() {
                    p.none { "None." }
                } @else {
                    table.alerts {
                        thead { tr {
                            th { "#" } th { "Alert" } th { "Severity" } th { "Labels" }
                            th { "Value" } th { "Since" } th { "Acked by" }
                        } }
                        tbody {
                            @for v in these { (row(v, now)) }
                        }
                    }
                }
            }
        }
    }
}

fn row(v: &AlertView, now: Timestamp) -> Markup {
    let a = &v.alert;
    let since = if a.state == AlertState::Pending {
        a.active_since
    } else {
        a.fired_at.or(a.active_since)
    };
    html! {
        tr.alert data-fingerprint=(a.fingerprint.to_string()) {
            td { @if let Some(n) = a.incident { (n) } }
            td { a.rule href=(format!("/alerts/{}", alert_id(v))) { (a.rule) } }
            td { (layout::severity(&v.severity)) }
            td { (layout::labels(&a.labels)) }
            td.value { (v.value_text) }
            td {
                @if let Some(t) = since {
                    (layout::time(t)) br; span.for { "for " (layout::duration(now.since(t))) }
                }
            }
            td.acked { @if let Some(k) = &a.ack { (k.actor) " via " (k.via) } }
        }
    }
}

/// `GET /`: the open alerts.
pub async fn list(
    State(web): State<Web>,
    Extension(viewer): Extension<Viewer>,
    Query(filter): Query<Filter>,
) -> Response {
    let views = web.daemon.alerts().await;
    let now = web.daemon.now();
    let severities = ["critical", "warning", "info"];
    page(
        "Alerts",
        Some(&viewer),
        html! {
            h1 { "Alerts" }
            form.filter method="get" action="/" {
                label { "Labels " input type="text" name="labels" value=(filter.labels)
                    placeholder="host=bot-1, env!=test" size="40"; }
                " "
                label { "Severity "
                    select name="severity" {
                        option value="" selected[filter.severity.is_empty()] { "any" }
                        @for s in severities {
                            option value=(s) selected[filter.severity == s] { (s) }
                        }
                    }
                }
                " "
                button type="submit" { "Filter" }
            }
            div #alerts data-live=(format!("/ui/live{}", filter.query())) {
                (groups(&views, &filter, now))
            }
        },
    )
    .into_response()
}

/// `GET /ui/live?…`: the Alerts page's groups again after every change of the
/// state, as server-sent events (`app.js` swaps them in). The first comes at once.
pub async fn live(State(web): State<Web>, Query(filter): Query<Filter>) -> Response {
    let Ok(permit) = web.live.clone().try_acquire_owned() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many live pages open; reload to look again",
        );
    };
    let changes = web.daemon.watch_changes();
    let state = (web, filter, changes, permit, true);
    let stream = futures_util::stream::unfold(
        state,
        |(web, filter, mut changes, permit, first)| async move {
            if !first && changes.changed().await.is_err() {
                return None;
            }
            changes.borrow_and_update();
            let views = web.daemon.alerts().await;
            let html = groups(&views, &filter, web.daemon.now()).into_string();
            let event: Result<SseEvent, Infallible> =
                Ok(SseEvent::default().event("alerts").data(html));
            Some((event, (web, filter, changes, permit, false)))
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

#[derive(Deserialize, Default)]
pub struct Notice {
    #[serde(default)]
    notice: String,
}

/// `GET /alerts/{id}`: one alert, by incident number or fingerprint.
pub async fn one(
    State(web): State<Web>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
    Query(notice): Query<Notice>,
) -> Response {
    let (v, timeline) = match web.daemon.alert(&id).await {
        Ok(found) => found,
        Err(OpError::NotFound(_)) => {
            let body = html! { h1 { "No alert " (id) } p { a href="/" { "All alerts" } } };
            return (
                StatusCode::NOT_FOUND,
                page("Not found", Some(&viewer), body),
            )
                .into_response();
        }
        Err(e) => return refuse(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let a = &v.alert;
    let id = alert_id(&v);
    let like_this: String = a
        .labels
        .iter()
        .map(|(n, val)| format!("{}\n", Matcher::equal(n, val)))
        .collect();
    let silence_link = format!(
        "/silences/new{}",
        layout::query(&[("matchers", &like_this)])
    );
    let action = |what: &str| format!("/alerts/{id}/{what}");
    let open = viewer.person.is_none();
    let title = match a.incident {
        Some(n) => format!("#{n} {}", a.rule),
        None => a.rule.clone(),
    };
    page(
        &title,
        Some(&viewer),
        html! {
            h1 { (title) " " (layout::state(a.state)) " " (layout::severity(&v.severity)) }
            @if !notice.notice.is_empty() { p.notice { (notice.notice) } }
            dl.facts {
                dt { "Value" } dd.value { (v.value_text) }
                @if let Some(t) = a.fired_at { dt { "Fired" } dd { (layout::time(t)) } }
                @if let Some(t) = a.active_since { dt { "Holding since" } dd { (layout::time(t)) } }
                @if let Some(t) = a.resolved_at { dt { "Resolved" } dd { (layout::time(t)) } }
                @if let Some(k) = &a.ack {
                    dt { "Acknowledged" }
                    dd.ack { (k.actor) " via " (k.via) ", " (layout::time(k.at))
                        @if let Some(n) = &k.note { ": " q { (n) } } }
                }
                @if !a.silenced_by.is_empty() {
                    dt { "Silenced by" }
                    dd { @for s in &a.silenced_by { code { (s) } " " } }
                }
            }
            h2 { "Annotations" }
            @if v.annotations.is_empty() { p.none { "None." } }
            dl.annotations {
                @for (k, text) in &v.annotations { dt { (k) } dd { (text) } }
            }
            h2 { "Labels" }
            table.labels { @for (n, val) in a.labels.iter() { tr { th { (n) } td { (val) } } } }
            h2 { "Actions" }
            div.actions {
                @if matches!(a.state, AlertState::Firing | AlertState::Suppressed) && a.ack.is_none() {
                    form #ack method="post" action=(action("ack")) {
                        (layout::csrf(&viewer))
                        @if open { label { "Your name " input type="text" name="actor" required; } " " }
                        label { "Note " input type="text" name="note" size="40"; }
                        " "
                        button type="submit" { "Acknowledge" }
                    }
                }
                @if a.ack.is_some() && a.state != AlertState::Resolved {
                    form #unack method="post" action=(action("unack")) {
                        (layout::csrf(&viewer))
                        @if open { label { "Your name " input type="text" name="actor" required; } " " }
                        button type="submit" { "Unacknowledge" }
                    }
                }
                @if a.state.is_active() {
                    form #resolve method="post" action=(action("resolve")) {
                        (layout::csrf(&viewer))
                        @if open { label { "Your name " input type="text" name="actor" required; } " " }
                        label { "Note " input type="text" name="note" size="40"; }
                        " "
                        button type="submit" { "Resolve" }
                    }
                }
                p { a #silence-like-this href=(silence_link) { "Silence alerts like this…" } }
            }
            h2 { "Timeline" }
            table #timeline {
                thead { tr { th { "When" } th { "State" } th { "What" } th { "Who" } th { "Via" } th { "Note" } } }
                tbody {
                    @for e in &timeline {
                        tr {
                            td { (layout::time(e.at)) }
                            td { @if e.from != e.to { (e.from.name()) " → " } (e.to.name()) }
                            td { (e.reason) }
                            td.actor { @if let Some(p) = &e.actor { (p) } }
                            td { @if let Some(p) = &e.via { (p) } }
                            td { @if let Some(n) = &e.note { (n) } }
                        }
                    }
                }
            }
        },
    )
    .into_response()
}

#[derive(Deserialize)]
pub struct ActionForm {
    /// Missing is refused as wrong is, with the same reason (not a decoding error).
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

/// `POST /alerts/{id}/ack|unack|resolve`: the API's actions, as the signed-in
/// person (or the name typed on an open daemon), via "web".
pub async fn act(
    State(web): State<Web>,
    Extension(viewer): Extension<Viewer>,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Err(refused) = viewer.check(&web, &form.csrf) {
        return refused.into_response();
    }
    let actor = viewer.actor(form.actor.as_deref());
    let note = form
        .note
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    let event = match action.as_str() {
        "ack" => Event::Ack {
            actor,
            via: "web".into(),
            note,
        },
        "unack" => Event::Unack { actor },
        "resolve" => Event::Resolve { actor, note },
        other => {
            return refuse(
                StatusCode::NOT_FOUND,
                format!("unknown action {other:?}: ack, unack, resolve"),
            );
        }
    };
    match web.daemon.act(&id, event).await {
        Ok(_) => Redirect::to(&format!("/alerts/{id}")).into_response(),
        Err(OpError::Rejected(why)) => {
            let to = format!(
                "/alerts/{id}{}",
                layout::query(&[("notice", &why.to_string())])
            );
            Redirect::to(&to).into_response()
        }
        Err(e) => crate::http::ApiError::from(e).into_response(),
    }
}
