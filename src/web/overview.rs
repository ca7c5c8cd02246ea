//! The pages that describe the setup rather than one alert: who is on call and how
//! each policy escalates, every rule with its alerts and last evaluation, and how
//! the daemon itself is doing.

use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::TimeZone;
use maud::{Markup, html};

use super::Web;
use super::access::Viewer;
use super::layout::{self, page};
use crate::clock::Timestamp;
use crate::escalation::Target;
use crate::rules::model::Hold;

/// How far ahead the on-call page looks.
const PREVIEW: Duration = Duration::from_secs(14 * 24 * 3600);

fn target(t: &Target) -> String {
    match t {
        Target::Person(p) => format!("person {p}"),
        Target::Group(g) => format!("group {g}"),
        Target::Schedule(s) => format!("on call in {s}"),
        Target::SlackBySeverity => "the Slack channel of the severity".into(),
        Target::SlackChannel(c) => format!("Slack {c}"),
        Target::Email(e) => format!("email {e}"),
        Target::Webhook(w) => format!("webhook {w}"),
        Target::Console => "console".into(),
    }
}

/// A time in a schedule's own zone, as its people read it.
fn zoned(t: Timestamp, tz: chrono_tz::Tz) -> String {
    tz.timestamp_millis_opt(t.0)
        .single()
        .map_or_else(String::new, |d| {
            d.format("%a %Y-%m-%d %H:%M %Z").to_string()
        })
}

/// `GET /oncall`
pub async fn oncall(State(web): State<Web>, Extension(viewer): Extension<Viewer>) -> Response {
    let now = web.daemon.now();
    let config = web.daemon.config();
    let dir = &config.directory;
    let name = |id: &str| {
        dir.people
            .get(id)
            .map_or_else(|| id.to_string(), |p| p.name.clone())
    };
    page(
        "On call",
        Some(&viewer),
        html! {
            h1 { "On call" }
            @if dir.schedules.is_empty() { p.none { "No schedules (" code { "[[schedules]]" } ")." } }
            @for (id, r) in &dir.schedules {
                section.schedule id=(format!("schedule-{id}")) {
                    h2 { (r.name) " " small { "(" (r.time_zone.name()) ")" } }
                    p.now { "Now: " b { (r.on_call(now).map_or_else(|| "nobody".to_string(), name)) } }
                    table.handoffs {
                        thead { tr { th { "From (" (r.time_zone.name()) ")" } th { "Your time" } th { "On call" } } }
                        tbody {
                            @for h in r.handoffs(now, now + PREVIEW) {
                                tr { td { (zoned(h.at, r.time_zone)) } td { (layout::time(h.at)) } td { (name(&h.person)) } }
                            }
                        }
                    }
                }
            }
            h1 { "Escalation policies" }
            @for (id, p) in &config.routing.policies {
                section.policy id=(format!("policy-{id}")) {
                    h2 { (p.name)
                        @if *id == config.routing.default_policy { " " small { "(default)" } } }
                    ol.levels {
                        @for l in &p.levels {
                            li {
                                "after " (layout::duration(l.after)) ": "
                                (l.targets.iter().map(target).collect::<Vec<_>>().join(", "))
                                @if !l.via.is_empty() {
                                    " by " (l.via.iter().map(|m| m.name()).collect::<Vec<_>>().join(", "))
                                }
                            }
                        }
                    }
                    p { "Repeats the last level every " (layout::duration(p.repeat_interval)) " while unacknowledged"
                        @if let Some(t) = p.ack_timeout { "; an ack lasts " (layout::duration(t)) }
                        "." }
                    @if !p.fallback.is_empty() {
                        p { "Fallback: " (p.fallback.iter().map(target).collect::<Vec<_>>().join(", ")) }
                    }
                }
            }
        },
    )
    .into_response()
}

fn hold(h: Hold) -> String {
    match h {
        Hold::Immediately => "at once".into(),
        Hold::For(d) => format!("for {}", layout::duration(d)),
        Hold::Evaluations(n) => format!("for {n} evaluations"),
    }
}

/// How far a pending alert is through its `for`: "6m / 15m (40%)".
fn progress(h: Hold, since: Timestamp, consecutive: u32, now: Timestamp) -> (String, f64) {
    match h {
        Hold::For(d) if !d.is_zero() => {
            let held = now.since(since).min(d);
            let share = held.as_secs_f64() / d.as_secs_f64();
            (
                format!("{} / {}", layout::duration(held), layout::duration(d)),
                share,
            )
        }
        Hold::Evaluations(n) if n > 0 => {
            let share = f64::from(consecutive.min(n)) / f64::from(n);
            (format!("{consecutive} / {n} evaluations"), share)
        }
        _ => (String::new(), 1.0),
    }
}

/// `GET /rules`
pub async fn rules(State(web): State<Web>, Extension(viewer): Extension<Viewer>) -> Response {
    let rules = web.daemon.rules().await;
    let now = web.daemon.now();
    page(
        "Rules",
        Some(&viewer),
        html! {
            h1 { "Rules" }
            @if rules.is_empty() { p.none { "No rules loaded." } }
            @for r in &rules {
                section.rule data-rule=(r.name) {
                    h2 { (r.name) " " (layout::severity(r.severity)) }
                    p.origin { code { (r.path.display()) ":" (r.line) } }
                    p.condition { "when " code { (r.condition) } " — holds " (hold(r.hold)) }
                    @if let Some(c) = &r.resolve_when { p { "resolve when " code { (c) } } }
                    p.states {
                        @if r.states.is_empty() { "No alerts." }
                        @for (s, n) in &r.states { (layout::state(*s)) " " (n) " " }
                    }
                    p.evaluated {
                        @match r.last_evaluation {
                            Some(e) => { "Last evaluated " (layout::time(e.at)) " in " (format!("{:.3} ms", e.took.as_secs_f64() * 1000.0)) }
                            None => { "Not evaluated yet." }
                        }
                    }
                    @if !r.pending.is_empty() {
                        table.pending {
                            thead { tr { th { "Pending" } th { "Value" } th { "Since" } th { "Progress" } } }
                            tbody {
                                @for p in &r.pending {
                                    @let (text, share) = progress(r.hold, p.since, p.consecutive, now);
                                    tr {
                                        td { (layout::labels(&p.labels)) }
                                        td { (p.value_text) }
                                        td { (layout::time(p.since)) }
                                        td.progress {
                                            progress max="100" value=(format!("{:.0}", share * 100.0)) {}
                                            " " (text)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
    .into_response()
}

fn opt_time(t: Option<Timestamp>) -> Markup {
    match t {
        Some(t) => layout::time(t),
        None => html! { "never" },
    }
}

/// `GET /status`
pub async fn status(State(web): State<Web>, Extension(viewer): Extension<Viewer>) -> Response {
    let status = match web.daemon.status().await {
        Ok(s) => s,
        Err(e) => return super::refuse(axum::http::StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    page(
        "Status",
        Some(&viewer),
        html! {
            h1 { "Status" }
            dl.facts #status {
                dt { "Version" } dd { "tocsin " (status.version) }
                dt { "Up since" } dd { (layout::time(status.opened_at)) " (" (layout::duration(status.now.since(status.opened_at))) ")" }
                dt { "Config" } dd { code { (status.config_source) } }
                dt { "Rules" } dd #reload {
                    (status.reload.rules) " rules, loaded " (layout::time(status.reload.at))
                    @if let Some(why) = &status.reload.refused {
                        br; b.trouble { "The last reload was refused; the rules above still run:" }
                        pre { (why) }
                    }
                }
                dt { "State store" } dd { @if status.store_ok { "writing" } @else { b.trouble { "refusing writes" } } }
                dt { "Series" } dd { (status.series) }
                dt { "Outbox" } dd { (status.outbox_pending) " message(s) owed" }
                dt { code { "tocsin_escalations_overdue" } } dd #overdue { (status.escalations_overdue) }
            }
            h2 { "Channels" }
            table #channels {
                thead { tr { th { "Channel" } th { "Owed" } th { "Last success" } th { "Last failure" } } }
                tbody {
                    @for c in &status.channels {
                        tr {
                            td { (c.channel) }
                            td { (c.pending) }
                            td { (opt_time(c.last_success)) }
                            td { @match &c.last_failure {
                                Some(f) => { (layout::time(f.at)) ": " (f.error) }
                                None => { "never" }
                            } }
                        }
                    }
                }
            }
        },
    )
    .into_response()
}
