//! What an alert mail says: its thread ids, its subject, and its text and HTML
//! bodies, cut to what any mail server takes (RFC 5321's 64K octets, counted on
//! the mail as it travels, transfer encoding included).
//!
//! Threading: every mail has its own Message-ID,
//! `<alert.{fingerprint}.{fired_at ms}.{hash of the message key}@{domain}>`, so two
//! mails never share one (the page to ops@ and to tanaka@, a fallback, an update).
//! The first mail to a recipient about an occurrence opens their thread; every later
//! mail to them about it (escalations, reminders, the ack, the resolve) answers it
//! with `In-Reply-To` and `References`. Ids are deterministic: a mail sent twice (a
//! retry after a lost reply) is the same mail to the recipient's client.
//!
//! What a mail carries when it must be shortened: the subject, the headline and
//! the first alert always; each alert's annotations and labels up to a length, then
//! cut with how long they were; as many alerts of a group as fit, then how many more
//! there are, by state, with a link that lists them all.

use std::fmt::Write as _;

use lettre::message::{MessageBuilder, MultiPart};
use sha2::{Digest, Sha256};

use super::fit::one_line;
use super::{AlertSnapshot, Message, fit, most_severe, severity_word};
use crate::alert::{NotifyReason, State};
use crate::escape::{html, line};
use crate::limits;

/// The Message-IDs of one mail: its own, and the one it answers (the first mail
/// to the same recipients about the same occurrence).
pub(super) struct Thread {
    pub id: String,
    pub parent: Option<String>,
}

impl Thread {
    pub fn of(msg: &Message, domain: &str) -> Thread {
        // A group's mails thread by their first alert.
        let first = &msg.alerts[0];
        let fired = first.fired_at.unwrap_or(msg.at).0;
        let digest = Sha256::digest(msg.key.as_bytes());
        let short = &hex::encode(digest)[..16];
        let id = format!("<alert.{}.{fired}.{short}@{domain}>", first.fingerprint);
        // The reference is the thread's first Message-ID; anything else is not one.
        let parent = msg
            .update
            .clone()
            .filter(|r| r.starts_with('<') && r.ends_with('>') && r.contains('@') && *r != id);
        Thread { id, parent }
    }

    /// The Message-ID later mails to the same recipients answer.
    pub fn root(&self) -> &str {
        self.parent.as_deref().unwrap_or(&self.id)
    }
}

/// `[CRITICAL] 投稿成功率低下 #42 (+11 more)`, and `[RESOLVED] …` for the notice
/// that it is over, as Alertmanager writes it. Every other mail of an occurrence
/// keeps the firing subject, so clients that thread by subject agree.
pub(super) fn subject(msg: &Message) -> String {
    /// A rule name of thousands of characters stays readable, and its header short.
    const RULE_CHARS: usize = 120;
    let first = &msg.alerts[0];
    let tag = match msg.reason {
        NotifyReason::Resolved => "RESOLVED".to_string(),
        _ => severity_word(most_severe(msg.alerts.iter().map(|a| a.severity.as_str()))),
    };
    let mut s = format!("[{tag}] {}", one_line(&cut(&first.rule, RULE_CHARS)));
    if let Some(n) = first.incident {
        let _ = write!(s, " #{n}");
    }
    if msg.alerts.len() > 1 {
        let _ = write!(s, " (+{} more)", msg.alerts.len() - 1);
    }
    // A header is one line: no control character reaches a mail client.
    line(&s).into_owned()
}

/// The first line of the body: what this mail says happened, and who did it.
fn headline(msg: &Message) -> String {
    let first = &msg.alerts[0];
    let mut what = format!(
        "{}: {}",
        severity_word(&first.severity),
        one_line(&cut(&first.rule, 500))
    );
    if msg.alerts.len() > 1 {
        let _ = write!(what, " (+{} more)", msg.alerts.len() - 1);
    }
    let status = match msg.reason {
        NotifyReason::Firing if msg.level > 1 => format!("ESCALATED (level {})", msg.level),
        NotifyReason::Firing if msg.update.is_some() => "STILL FIRING".to_string(),
        NotifyReason::Firing => return what,
        NotifyReason::Acknowledged => match &first.acked_by {
            Some(by) => format!("ACKNOWLEDGED by {}", one_line(by)),
            None => "ACKNOWLEDGED".to_string(),
        },
        NotifyReason::Resolved => match &first.resolved_by {
            Some(by) => format!("RESOLVED by {}", one_line(by)),
            None => "RESOLVED".to_string(),
        },
        NotifyReason::Unacknowledged => "UNACKNOWLEDGED".to_string(),
        NotifyReason::AckExpired => "ACK EXPIRED".to_string(),
        NotifyReason::SilenceEnded => "SILENCE ENDED".to_string(),
    };
    format!("{status} — {what}")
}

/// How much of each alert a mail shows. Tried from the most generous down until
/// the mail fits.
#[derive(Clone, Copy)]
struct Caps {
    /// Characters of one annotation or label value.
    value: usize,
    /// Label lines, and annotation rows, per alert.
    rows: usize,
}

const CAPS: [Caps; 4] = [
    Caps {
        value: 2_000,
        rows: 40,
    },
    Caps {
        value: 500,
        rows: 20,
    },
    Caps {
        value: 100,
        rows: 10,
    },
    Caps { value: 30, rows: 5 },
];

/// A link longer than this is left out rather than cut: cut, it leads nowhere.
const URL_CHARS: usize = 4_000;

impl Caps {
    /// The longest link shown: as much room as two values.
    fn url(self) -> usize {
        (self.value * 2).min(URL_CHARS)
    }
}

/// The mail for `msg`: `headers` (From, To, ids, …) with the subject and both
/// bodies, as much of it as fits in [`limits::email::MESSAGE_OCTETS`] octets as
/// sent. `alerts_url` lists the alerts a long group only counts.
pub(super) fn build(
    headers: MessageBuilder,
    msg: &Message,
    alerts_url: Option<&str>,
) -> Result<lettre::Message, String> {
    let headline = headline(msg);
    let headers = headers.subject(subject(msg));
    let mail = |caps: Caps, shown: usize| {
        let sections: Vec<Section> = msg.alerts[..shown]
            .iter()
            .map(|a| Section::of(a, caps))
            .collect();
        let more = More::of(&msg.alerts[shown..], alerts_url);
        let body = MultiPart::alternative_plain_html(
            text(&headline, msg, &sections, more.as_ref()),
            html_body(&headline, msg, &sections, more.as_ref()),
        );
        headers
            .clone()
            .multipart(body)
            .map_err(|e| format!("email: cannot build the mail: {e}"))
    };
    let fits = |m: &lettre::Message| m.formatted().len() <= limits::email::MESSAGE_OCTETS;
    let n = msg.alerts.len();
    // A group shows a few alerts in less detail rather than one in full.
    let wanted = n.min(GROUP_SHOWN);
    let mut best: Option<(Caps, usize)> = None;
    for caps in CAPS {
        // At least the first alert; then as many more as fit.
        let shown =
            fit::longest(n - 1, |k| mail(caps, k + 1).is_ok_and(|m| fits(&m))).map(|k| k + 1);
        if let Some(k) = shown {
            if k >= wanted {
                return mail(caps, k);
            }
            if best.is_none_or(|(_, b)| k > b) {
                best = Some((caps, k));
            }
        }
    }
    // Nothing fits even at the tightest caps (no alert is that large once cut):
    // send the smallest, and let the server say.
    let (caps, shown) = best.unwrap_or((CAPS[CAPS.len() - 1], 1));
    mail(caps, shown)
}

/// Alerts of a group a mail lists before it gives them less detail each.
const GROUP_SHOWN: usize = 5;

/// The alerts a mail leaves out, counted.
struct More {
    count: usize,
    /// `3 firing, 1 acknowledged`.
    states: String,
    /// Where all of them are listed; otherwise the command that lists them.
    link: Option<String>,
    command: String,
}

impl More {
    fn of(rest: &[AlertSnapshot], alerts_url: Option<&str>) -> Option<More> {
        if rest.is_empty() {
            return None;
        }
        let mut states: Vec<(State, usize)> = Vec::new();
        for a in rest {
            match states.iter_mut().find(|(s, _)| *s == a.state) {
                Some((_, n)) => *n += 1,
                None => states.push((a.state, 1)),
            }
        }
        states.sort();
        // Alerts of one rule are listed by it; a mixed group by state.
        let rule = &rest[0].rule;
        let one_rule = rest.iter().all(|a| a.rule == *rule);
        let query: Vec<(&str, String)> = if one_rule {
            vec![("label", format!("alertname={rule}"))]
        } else {
            Vec::new()
        };
        let link = alerts_url.map(|url| match serde_urlencoded::to_string(&query) {
            Ok(q) if !q.is_empty() => format!("{url}?{q}"),
            _ => url.to_string(),
        });
        let link = link.filter(|l| l.chars().count() <= URL_CHARS);
        let command = if one_rule {
            format!("tocsin alerts --label 'alertname={}'", cut(rule, 200))
        } else {
            "tocsin alerts".to_string()
        };
        Some(More {
            count: rest.len(),
            states: states
                .iter()
                .map(|(s, n)| format!("{n} {s}"))
                .collect::<Vec<_>>()
                .join(", "),
            link,
            command,
        })
    }

    fn sentence(&self) -> String {
        format!(
            "…and {} more alert{} ({}), too many for one mail.",
            self.count,
            if self.count == 1 { "" } else { "s" },
            self.states
        )
    }
}

fn is_critical(a: &AlertSnapshot) -> bool {
    a.severity.eq_ignore_ascii_case("critical")
}

/// Whether any alert of the message is critical (the mail is marked urgent).
pub(super) fn urgent(msg: &Message) -> bool {
    msg.alerts.iter().any(is_critical)
}

/// One alert's part of the body, shared by the text and the HTML rendering so the
/// two say the same.
struct Section {
    title: String,
    state: State,
    severity: String,
    rows: Vec<(String, Value)>,
}

enum Value {
    Text(String),
    /// One item a line (labels).
    Lines(Vec<String>),
    /// A link, when it is one (http or https); otherwise shown as text.
    Url(String),
}

/// The annotations people write for alerts, in the order they read them.
const KNOWN_ANNOTATIONS: [(&str, &str); 4] = [
    ("summary", "Summary"),
    ("description", "Description"),
    ("impact", "Impact"),
    ("action", "Action"),
];

impl Section {
    fn of(a: &AlertSnapshot, caps: Caps) -> Section {
        let value = |v: &str| cut(v, caps.value);
        let mut title = one_line(&cut(&a.rule, caps.value.max(200)));
        if let Some(n) = a.incident {
            let _ = write!(title, " #{n}");
        }
        let mut rows = Vec::new();
        for (key, name) in KNOWN_ANNOTATIONS {
            if let Some(v) = a.annotations.get(key) {
                rows.push((name.to_string(), Value::Text(value(v))));
            }
        }
        let others: Vec<_> = a
            .annotations
            .iter()
            .filter(|(key, _)| !KNOWN_ANNOTATIONS.iter().any(|(k, _)| k == key))
            .collect();
        for (key, v) in others.iter().take(caps.rows) {
            rows.push((cut(key, 100), Value::Text(value(v))));
        }
        if others.len() > caps.rows {
            let left = others.len() - caps.rows;
            rows.push((
                "More".to_string(),
                Value::Text(format!("{left} more annotations")),
            ));
        }
        let labels: Vec<(&String, &String)> = a
            .labels
            .iter()
            .filter(|(k, _)| k.as_str() != "alertname")
            .collect();
        let mut lines: Vec<String> = labels
            .iter()
            .take(caps.rows)
            .map(|(k, v)| one_line(&format!("{}={}", cut(k, 100), value(v))))
            .collect();
        if labels.len() > caps.rows {
            lines.push(format!("…and {} more labels", labels.len() - caps.rows));
        }
        if !lines.is_empty() {
            rows.push(("Labels".to_string(), Value::Lines(lines)));
        }
        if let Some(t) = a.fired_at {
            rows.push(("Fired".to_string(), Value::Text(t.to_rfc3339())));
        }
        if a.acked_at.is_some() || a.acked_by.is_some() {
            let mut v = a.acked_at.map_or_else(String::new, |t| t.to_rfc3339());
            if let Some(by) = &a.acked_by {
                let _ = write!(v, " by {}", one_line(&cut(by, 200)));
            }
            rows.push((
                "Acknowledged".to_string(),
                Value::Text(v.trim().to_string()),
            ));
        }
        if let Some(note) = &a.ack_note {
            rows.push(("Ack note".to_string(), Value::Text(value(note))));
        }
        if let Some(t) = a.resolved_at {
            let mut v = t.to_rfc3339();
            if let Some(by) = &a.resolved_by {
                let _ = write!(v, " by {}", one_line(&cut(by, 200)));
            }
            rows.push(("Resolved".to_string(), Value::Text(v)));
        }
        if let Some(note) = &a.resolve_note {
            rows.push(("Resolve note".to_string(), Value::Text(value(note))));
        }
        if let Some(url) = &a.generator_url {
            let n = url.chars().count();
            let shown = if n <= caps.url() {
                Value::Url(url.clone())
            } else {
                Value::Text(format!("(a link of {n} characters, left out)"))
            };
            rows.push(("Source".to_string(), shown));
        }
        Section {
            title,
            state: a.state,
            severity: a.severity.clone(),
            rows,
        }
    }
}

/// The text part. Every value is written a line at a time through `escape::line`:
/// a multi-line annotation keeps its lines, and a label or rule name with an escape
/// sequence or a line feed in it cannot add a line or drive a terminal.
fn text(headline: &str, msg: &Message, sections: &[Section], more: Option<&More>) -> String {
    let mut out = format!("{}\n", line(headline));
    for s in sections {
        let _ = write!(out, "\n{} ({})\n", line(&s.title), s.state);
        let width = s
            .rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0)
            + 2;
        for (name, value) in &s.rows {
            let lines: Vec<&str> = match value {
                Value::Text(t) | Value::Url(t) => t.lines().collect(),
                Value::Lines(ls) => ls.iter().map(String::as_str).collect(),
            };
            let label = format!("{}:", line(name));
            for (i, text) in lines.iter().enumerate() {
                let label = if i == 0 { label.as_str() } else { "" };
                let _ = writeln!(out, "  {label:<width$}{}", line(text));
            }
        }
    }
    if let Some(more) = more {
        let _ = writeln!(out, "\n{}", more.sentence());
        match &more.link {
            Some(link) => {
                let _ = writeln!(out, "All of them: {link}");
            }
            None => {
                let _ = writeln!(out, "`{}` lists them all.", more.command);
            }
        }
    }
    let _ = write!(out, "\n-- \ntocsin ({})\n", reason_words(msg));
    out
}

fn html_body(headline: &str, msg: &Message, sections: &[Section], more: Option<&More>) -> String {
    let color = if msg.reason == NotifyReason::Resolved {
        RESOLVED_COLOR
    } else {
        severity_color(&msg.alerts[0].severity)
    };
    let mut out = html_head();
    let _ = writeln!(
        out,
        "<h2 style=\"color:{color};margin:0 0 12px\">{}</h2>",
        html(headline)
    );
    for s in sections {
        let _ = write!(
            out,
            "<div style=\"margin:12px 0;padding:8px 12px;border-left:4px solid {}\">\n\
             <h3 style=\"margin:0 0 8px\">{} <span style=\"color:#666;font-weight:normal\">({})</span></h3>\n\
             <table style=\"border-collapse:collapse\">\n",
            severity_color(&s.severity),
            html(&s.title),
            s.state
        );
        for (name, value) in &s.rows {
            let cell = match value {
                Value::Text(t) => html(t),
                Value::Lines(ls) => ls
                    .iter()
                    .map(|l| html(l))
                    .collect::<Vec<_>>()
                    .join("<br>\n"),
                Value::Url(u) if u.starts_with("https://") || u.starts_with("http://") => {
                    format!("<a href=\"{0}\">{0}</a>", html(u))
                }
                // Not a web link (javascript:, data:): shown, never followed.
                Value::Url(u) => html(u),
            };
            let _ = writeln!(
                out,
                "<tr><th style=\"{TH}\">{}</th><td style=\"{TD}\">{cell}</td></tr>",
                html(name)
            );
        }
        out.push_str("</table>\n</div>\n");
    }
    if let Some(more) = more {
        let _ = write!(out, "<p>{}", html(&more.sentence()));
        match &more.link {
            Some(link) => {
                let _ = write!(out, " <a href=\"{0}\">All of them</a>", html(link));
            }
            None => {
                let _ = write!(out, " <code>{}</code> lists them all.", html(&more.command));
            }
        }
        out.push_str("</p>\n");
    }
    let _ = write!(
        out,
        "<p style=\"color:#888;font-size:12px\">tocsin ({})</p>\n</body>\n</html>\n",
        html(&reason_words(msg))
    );
    out
}

/// Why this mail was sent, for its footer.
fn reason_words(msg: &Message) -> String {
    if msg.level > 0 {
        format!("{}, level {}", msg.reason, msg.level)
    } else {
        msg.reason.to_string()
    }
}

/// `text` cut to `max` characters, saying how long it was.
fn cut(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max).collect();
    format!("{kept}… ({n} characters in all)")
}

pub(super) const TH: &str = "text-align:left;vertical-align:top;padding:2px 16px 2px 0;color:#444";
pub(super) const TD: &str = "vertical-align:top;padding:2px 16px 2px 0;white-space:pre-wrap";
const RESOLVED_COLOR: &str = "#2e7d32";

fn severity_color(severity: &str) -> &'static str {
    match severity.to_ascii_lowercase().as_str() {
        "critical" => "#c62828",
        "warning" => "#ef6c00",
        _ => "#1565c0",
    }
}

pub(super) fn html_head() -> String {
    "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"></head>\n\
     <body style=\"font-family:sans-serif;font-size:14px\">\n"
        .to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::clock::Timestamp;
    use crate::labels::Fingerprint;

    fn snapshot() -> AlertSnapshot {
        AlertSnapshot {
            fingerprint: Fingerprint(0xabc),
            incident: Some(42),
            rule: "投稿成功率低下".to_string(),
            severity: "critical".to_string(),
            labels: BTreeMap::from([
                ("alertname".to_string(), "投稿成功率低下".to_string()),
                ("severity".to_string(), "critical".to_string()),
            ]),
            annotations: BTreeMap::new(),
            state: State::Firing,
            fired_at: Some(Timestamp(1_000)),
            resolved_at: None,
            acked_by: None,
            acked_at: None,
            ack_note: None,
            resolved_by: None,
            resolve_note: None,
            generator_url: None,
        }
    }

    fn message(key: &str, reason: NotifyReason, level: u32, update: Option<&str>) -> Message {
        Message {
            key: key.to_string(),
            reason,
            level,
            alerts: vec![snapshot()],
            update: update.map(str::to_string),
            at: Timestamp(2_000),
        }
    }

    #[test]
    fn every_mail_has_its_own_id_and_later_ones_answer_the_first() {
        let first = Thread::of(&message("k1", NotifyReason::Firing, 1, None), "example.com");
        assert!(
            first.id.starts_with("<alert.0000000000000abc.1000."),
            "{}",
            first.id
        );
        assert!(first.id.ends_with("@example.com>"), "{}", first.id);
        assert_eq!(first.parent, None);
        assert_eq!(first.root(), first.id);
        // The same page to another recipient (another key) is another mail.
        let other = Thread::of(
            &message("k1b", NotifyReason::Firing, 1, None),
            "example.com",
        );
        assert_ne!(other.id, first.id);

        let root = first.id.clone();
        let later = [
            message("k2", NotifyReason::Firing, 2, Some(&root)),
            message("k3", NotifyReason::Acknowledged, 0, Some(&root)),
            message("k4", NotifyReason::Resolved, 0, Some(&root)),
        ];
        let ids: std::collections::BTreeSet<String> = later
            .iter()
            .map(|m| {
                let t = Thread::of(m, "example.com");
                assert_eq!(t.parent.as_deref(), Some(root.as_str()));
                assert_ne!(t.id, root);
                t.id
            })
            .collect();
        assert_eq!(ids.len(), later.len());
        // A retry is the same mail.
        assert!(ids.contains(&Thread::of(&later[0], "example.com").id));
        // A reference that is no Message-ID is not answered.
        let odd = Thread::of(
            &message("k5", NotifyReason::Resolved, 0, Some("C1:2")),
            "x.y",
        );
        assert_eq!(odd.parent, None);
    }

    #[test]
    fn the_subject_says_resolved_and_the_headline_who_did_what() {
        let mut acked = message("k", NotifyReason::Acknowledged, 0, Some("x"));
        acked.alerts[0].acked_by = Some("alice".to_string());
        let mut resolved = message("k", NotifyReason::Resolved, 0, Some("x"));
        resolved.alerts[0].resolved_by = Some("bob".to_string());
        let msgs = [
            message("k", NotifyReason::Firing, 1, None),
            message("k", NotifyReason::Firing, 3, Some("x")),
            acked,
            resolved,
        ];
        let subjects: Vec<String> = msgs.iter().map(subject).collect();
        assert_eq!(
            subjects,
            [
                "[CRITICAL] 投稿成功率低下 #42",
                "[CRITICAL] 投稿成功率低下 #42",
                "[CRITICAL] 投稿成功率低下 #42",
                "[RESOLVED] 投稿成功率低下 #42",
            ]
        );
        let headlines: Vec<String> = msgs.iter().map(headline).collect();
        assert_eq!(
            headlines,
            [
                "CRITICAL: 投稿成功率低下",
                "ESCALATED (level 3) — CRITICAL: 投稿成功率低下",
                "ACKNOWLEDGED by alice — CRITICAL: 投稿成功率低下",
                "RESOLVED by bob — CRITICAL: 投稿成功率低下",
            ]
        );
    }

    #[test]
    fn control_characters_reach_neither_subject_nor_text() {
        let mut m = message("k", NotifyReason::Firing, 1, None);
        m.alerts[0].rule = "Disk\u{1b}[2J\r\nBcc: x".to_string();
        m.alerts[0]
            .labels
            .insert("host".to_string(), "a\nFIRING #999 Fake".to_string());
        assert_eq!(subject(&m), "[CRITICAL] Disk\\x1b[2J Bcc: x #42");
        let sections: Vec<Section> = m.alerts.iter().map(|a| Section::of(a, CAPS[0])).collect();
        let text = text(&headline(&m), &m, &sections, None);
        assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text}");
        assert!(
            !text.lines().any(|l| l.starts_with("FIRING #999")),
            "{text}"
        );
        assert!(text.contains("Disk\\x1b[2J"), "{text}");
    }

    #[test]
    fn html_from_labels_is_inert() {
        let mut m = message("k", NotifyReason::Firing, 1, None);
        m.alerts[0]
            .labels
            .insert("host".to_string(), "<script>alert(1)</script>".to_string());
        m.alerts[0].generator_url = Some("javascript:alert(1)".to_string());
        let sections: Vec<Section> = m.alerts.iter().map(|a| Section::of(a, CAPS[0])).collect();
        let html = html_body(&headline(&m), &m, &sections, None);
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("host=&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("href=\"javascript"), "{html}");
    }
}
