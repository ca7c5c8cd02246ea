//! Replies as each medium shows them: Slack mrkdwn (everything from alerts and
//! people escaped, so a label holding `<!channel>` pings no one) and plain SMS text.

use std::time::Duration;

use super::{OnCall, Refusal, Reply};
use crate::alert::State;
use crate::clock::Timestamp;
use crate::daemon::AlertView;
use crate::escape::mrkdwn;
use crate::matcher::Matcher;

/// At most this many alerts in a `list` reply: a longer message is noise in Slack.
const LIST_LIMIT: usize = 20;

pub const HELP_SLACK: &str = "*/tocsin* commands:
• `ack 42 [note]`: acknowledge alert #42 (escalation stops)
• `ack all [note]`: acknowledge every alert still firing that paged you by direct message
• `unack 42`: take back an ack
• `resolve 42 [note]`: close alert #42 by hand
• `silence host=bot-1 alertname=~\"CPU.*\" 2h [comment]`: silence matching alerts for a while (`=`, `!=`, `=~`, `!~`)
• `silence #42 2h [comment]`: silence alerts like #42 (all its labels)
• `list [severity]`: the active alerts
• `who`: who is on call now
• `help`: this text";

pub const HELP_SMS: &str = "Reply ACK and the alert number to acknowledge it, e.g. ACK 42; \
                            ACK ALL acknowledges every alert still firing that paged this phone. \
                            UNACK 42 takes an ack back; RESOLVE 42 closes the alert.";

/// `3 alerts: #2-4` (or `#42 投稿成功率低下` when there is one).
fn counted(alerts: &[AlertView]) -> String {
    match alerts {
        [one] => title_text(one),
        many => {
            let numbers = crate::notify::ranges(many.iter().filter_map(|v| v.alert.incident));
            format!("{} alerts: #{}", many.len(), numbers.join(","))
        }
    }
}

/// `#42 投稿成功率低下`, as text.
fn title_text(v: &AlertView) -> String {
    match v.alert.incident {
        Some(n) => format!("#{n} {}", v.alert.rule),
        None => v.alert.rule.clone(),
    }
}

impl Reply {
    /// The reply in Slack mrkdwn; `user` is the Slack user who asked, mentioned in
    /// replies the channel sees.
    pub fn to_slack(&self, user: &str) -> String {
        let mention = format!("<@{}>", mrkdwn(user));
        let with_note = |text: String, note: &Option<String>| match note {
            Some(n) if !n.is_empty() => format!("{text}: {}", mrkdwn(n)),
            _ => text,
        };
        match self {
            Reply::Help => HELP_SLACK.to_string(),
            Reply::AckedAll { alerts } if alerts.is_empty() => {
                "No alert that paged you by direct message is still firing unacknowledged; \
                 nothing was changed."
                    .to_string()
            }
            Reply::AckedAll { alerts } => {
                format!("{mention} acknowledged {}", mrkdwn(&counted(alerts)))
            }
            Reply::Acked { alert, note } => with_note(
                format!("{mention} acknowledged {}", mrkdwn(&title_text(alert))),
                note,
            ),
            Reply::Unacked { alert } => format!(
                "{mention} took back the ack of {}",
                mrkdwn(&title_text(alert))
            ),
            Reply::Resolved { alert, note } => with_note(
                format!("{mention} resolved {}", mrkdwn(&title_text(alert))),
                note,
            ),
            Reply::Silenced {
                silence,
                duration,
                silenced,
                comment,
            } => {
                let shown: Vec<String> = silence.matchers.iter().map(Matcher::to_string).collect();
                with_note(
                    format!(
                        "{mention} silenced `{}` for {} (until {}); {silenced} alert{} silenced now",
                        mrkdwn(&shown.join(" ")),
                        humantime::format_duration(*duration),
                        slack_date(silence.ends_at),
                        if *silenced == 1 { "" } else { "s" },
                    ),
                    comment,
                )
            }
            Reply::List {
                severity,
                alerts,
                now,
            } => slack_list(severity.as_deref(), alerts, *now),
            Reply::Who { on_call } => slack_who(on_call),
            Reply::Refused(r) => slack_refusal(r),
        }
    }

    /// The reply as a short SMS.
    pub fn to_sms(&self) -> String {
        match self {
            Reply::Acked { alert, .. } => format!("Acked {}", title_text(alert)),
            Reply::AckedAll { alerts } if alerts.is_empty() => {
                "No alert that paged this phone is still firing unacknowledged; nothing was \
                 changed."
                    .to_string()
            }
            // A long list of numbers is cut to what one reply may carry.
            Reply::AckedAll { alerts } => crate::notify::sms::fit(
                &format!("Acked {}", counted(alerts)),
                crate::limits::twilio::SMS_SEGMENTS,
            ),
            Reply::Unacked { alert } => format!("Unacked {}", title_text(alert)),
            Reply::Resolved { alert, .. } => format!("Resolved {}", title_text(alert)),
            Reply::Refused(Refusal::Stranger { .. }) => {
                "This number is not one of tocsin's people, so it cannot acknowledge alerts. \
                 Nothing was changed."
                    .to_string()
            }
            Reply::Refused(Refusal::NoSuchAlert { id }) => format!("There is no alert #{id}."),
            Reply::Refused(Refusal::Rejected { id, reason }) => format!("#{id}: {reason}"),
            Reply::Refused(Refusal::StoreDown) => {
                "tocsin could not record this; nothing was changed. Try again shortly.".to_string()
            }
            Reply::Refused(Refusal::Silence(why)) => format!("Silence refused: {why}"),
            Reply::Help
            | Reply::Refused(Refusal::Parse(_) | Refusal::NotHere)
            | Reply::Silenced { .. }
            | Reply::List { .. }
            | Reply::Who { .. } => HELP_SMS.to_string(),
        }
    }
}

fn slack_refusal(r: &Refusal) -> String {
    match r {
        Refusal::Parse(why) => format!("{}\n\n{HELP_SLACK}", mrkdwn(why)),
        Refusal::Stranger { who } => format!(
            "Your Slack user id `{u}` is not in tocsin's `[people]`, so tocsin cannot record \
             who acted; nothing was changed. Ask an admin to add `slack = \"{u}\"` to your entry.",
            u = mrkdwn(who)
        ),
        Refusal::NoSuchAlert { id } => format!("There is no alert #{}.", mrkdwn(id)),
        Refusal::Rejected { id, reason } => format!("#{}: {}", mrkdwn(id), mrkdwn(reason)),
        Refusal::StoreDown => "tocsin could not record this (its state store refuses writes); \
                               nothing was changed. Try again shortly."
            .to_string(),
        Refusal::Silence(why) => format!("Silence refused: {}", mrkdwn(why)),
        Refusal::NotHere => HELP_SLACK.to_string(),
    }
}

/// A time Slack shows in each reader's own time zone, with UTC as the fallback.
fn slack_date(t: Timestamp) -> String {
    format!(
        "<!date^{}^{{date_short_pretty}} {{time}}|{}>",
        t.0.div_euclid(1000),
        t.to_rfc3339()
    )
}

fn slack_list(severity: Option<&str>, alerts: &[AlertView], now: Timestamp) -> String {
    let which = severity.map_or(String::new(), |s| format!(" {}", mrkdwn(s)));
    if alerts.is_empty() {
        return format!("No active{which} alerts.");
    }
    let mut lines = vec![format!(
        "{} active{which} alert{}:",
        alerts.len(),
        if alerts.len() == 1 { "" } else { "s" }
    )];
    for v in alerts.iter().take(LIST_LIMIT) {
        lines.push(slack_list_line(v, now));
    }
    if alerts.len() > LIST_LIMIT {
        lines.push(format!(
            "… and {} more (`tocsin alerts` shows all)",
            alerts.len() - LIST_LIMIT
        ));
    }
    lines.join("\n")
}

fn slack_list_line(v: &AlertView, now: Timestamp) -> String {
    let a = &v.alert;
    let since = a
        .fired_at
        .map_or(String::new(), |t| format!(" for {}", age(now.since(t))));
    let state = match (&a.state, &a.ack) {
        (State::Acknowledged, Some(ack)) => format!("acked by {}", mrkdwn(&ack.actor)),
        (State::Suppressed, _) => "silenced".to_string(),
        (s, _) => s.name().to_string(),
    };
    let labels: Vec<String> = a
        .labels
        .iter()
        .filter(|(k, _)| !matches!(*k, "alertname" | "severity"))
        .map(|(k, val)| format!("{k}={val}"))
        .collect();
    let labels = if labels.is_empty() {
        String::new()
    } else {
        format!(" `{}`", mrkdwn(&labels.join(" ")))
    };
    format!(
        "• {} *{}*{labels}: {state}{since}",
        mrkdwn(&title_text(v)),
        mrkdwn(&crate::notify::severity_word(&v.severity)),
    )
}

/// `12m`, `3h 5m`: how long, to the minute.
fn age(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        "under a minute".to_string()
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs() / 60 * 60)).to_string()
    }
}

fn slack_who(on_call: &[(String, OnCall)]) -> String {
    if on_call.is_empty() {
        return "No on-call rotations are configured.".to_string();
    }
    let mut lines = vec!["On call now:".to_string()];
    for (name, who) in on_call {
        let who = match who {
            OnCall::Nobody => "nobody".to_string(),
            OnCall::Person(p) => match &p.slack {
                Some(u) => format!("<@{}> ({})", mrkdwn(u), mrkdwn(&p.name)),
                None => mrkdwn(&p.name),
            },
            OnCall::Unknown(id) => mrkdwn(id),
        };
        lines.push(format!("• *{}*: {who}", mrkdwn(name)));
    }
    lines.join("\n")
}
