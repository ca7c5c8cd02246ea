//! The page shell (navigation, who is signed in) and the small pieces every page
//! shows the same way: times, durations, labels, states.

use std::time::Duration;

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::access::Viewer;
use crate::alert::State;
use crate::clock::Timestamp;
use crate::labels::Labels;

/// A whole page: `lang` is unset on purpose (names and texts are Japanese and
/// English alike), UTF-8 declared first so Japanese renders whatever the browser's
/// default.
pub fn page(title: &str, viewer: Option<&Viewer>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · tocsin" }
                link rel="stylesheet" href="/ui/style.css";
                script src="/ui/app.js" defer {}
            }
            body {
                nav {
                    a.brand href="/" { "tocsin" }
                    a href="/" { "Alerts" }
                    a href="/silences" { "Silences" }
                    a href="/oncall" { "On call" }
                    a href="/rules" { "Rules" }
                    a href="/status" { "Status" }
                    @if let Some(v) = viewer {
                        span.who {
                            @if let Some(p) = &v.person { "Signed in as " b { (p) } }
                            @if v.by_cookie {
                                form.inline method="post" action="/logout" {
                                    (csrf(v))
                                    button type="submit" { "Sign out" }
                                }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The hidden cross-site token field of a form.
pub fn csrf(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name=(super::CSRF_FIELD) value=(viewer.csrf); }
}

/// An instant: UTC as written (the page reads without JavaScript); `app.js` shows
/// it in the browser's time zone and keeps the UTC instant on hover.
pub fn time(t: Timestamp) -> Markup {
    let utc = t.to_rfc3339();
    let text = format!("{} UTC", utc.get(..19).unwrap_or(&utc).replace('T', " "));
    html! { time datetime=(utc) title=(text) { (text) } }
}

/// A length of time to the minute (to the second under a minute): "3h 12m".
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    let rounded = if secs < 60 { secs } else { secs - secs % 60 };
    humantime::format_duration(Duration::from_secs(rounded)).to_string()
}

pub fn labels(labels: &Labels) -> Markup {
    html! {
        span.labels {
            @for (name, value) in labels.iter() {
                @if name != "alertname" {
                    span.label { (name) "=" (value) } " "
                }
            }
        }
    }
}

pub fn state(s: State) -> Markup {
    html! { span class=(format!("state state-{}", s.name())) { (s.name()) } }
}

pub fn severity(s: &str) -> Markup {
    html! { span class=(format!("sev sev-{s}")) { (s) } }
}

/// `?a=b&c=d`, each pair encoded.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    format!("?{}", q.finish())
}

/// A script-free notice, for pages whose data the daemon could not give.
pub fn trouble(text: &str) -> Markup {
    html! { p.trouble { (PreEscaped("&#9888; ")) (text) } }
}
