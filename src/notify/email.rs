//! Email over SMTP (lettre): text and HTML parts, every mail of one alert
//! occurrence in one thread.
//!
//! Threading: the first firing mail of an occurrence carries the root Message-ID
//! `<alert.{fingerprint}.{fired_at ms}@{domain}>`; every later mail about it
//! (escalations, reminders, acks, the resolve) gets its own Message-ID derived from
//! the message key and points at the root with `In-Reply-To` and `References`. The
//! subject names the severity, rule and incident and never the state, so clients
//! that thread by subject (Gmail) agree. Both ids are deterministic: a mail sent
//! twice (a retry after a lost reply) is the same mail to the recipient's client.

use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MessageBuilder, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use sha2::{Digest, Sha256};

use super::{AlertSnapshot, Delivered, Message, SendError, severity_word};
use crate::alert::{NotifyReason, State};
use crate::clock::Timestamp;
use crate::config::{EmailSettings, SmtpTls};
use crate::escape::html;
use crate::report::Report;

type Transport = AsyncSmtpTransport<Tokio1Executor>;

pub struct Email {
    settings: EmailSettings,
    from: Mailbox,
    /// Pooled connections, shared by all sends. Replaced after a timeout: the
    /// connection cut mid-conversation would otherwise go back to the pool in an
    /// unknown state and answer the next mail's commands with the last one's replies.
    transport: Mutex<Transport>,
}

impl Email {
    /// Checks the settings and builds the (pooled) transport. Must run inside the
    /// tokio runtime: the pool keeps a task that closes idle connections.
    pub fn new(settings: EmailSettings) -> Result<Email, String> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| format!("email: from {:?} is not an address: {e}", settings.from))?;
        if !is_domain(&settings.message_id_domain) {
            return Err(format!(
                "email: message_id_domain {:?} is not a domain name",
                settings.message_id_domain
            ));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err("email: the channel must be built inside the tokio runtime".to_string());
        }
        let transport = build_transport(&settings)?;
        Ok(Email {
            settings,
            from,
            transport: Mutex::new(transport),
        })
    }

    /// Sends one mail about `msg` to all of `to`. The reference is the thread's root
    /// Message-ID.
    pub async fn send(&self, to: &[String], msg: &Message) -> Result<Delivered, SendError> {
        if msg.alerts.is_empty() {
            return Err(SendError::permanent("email: message has no alerts"));
        }
        let thread = Thread::of(msg, &self.settings.message_id_domain);
        let mut mail = self
            .builder(to)?
            .subject(subject(msg))
            .message_id(Some(thread.id.clone()))
            .raw_header(header(
                "List-Id",
                format!("tocsin alerts <alerts.{}>", self.settings.message_id_domain),
            ));
        if thread.id != thread.root {
            mail = mail
                .in_reply_to(thread.root.clone())
                .references(thread.root.clone());
        }
        if msg.alerts.iter().any(is_critical) {
            mail = mail
                .raw_header(header("X-Priority", "1 (Highest)".to_string()))
                .raw_header(header("Importance", "high".to_string()));
        }
        let rows: Vec<Section> = msg.alerts.iter().map(Section::of).collect();
        let headline = headline(msg);
        let body = MultiPart::alternative_plain_html(
            alert_text(&headline, msg, &rows),
            alert_html(&headline, msg, &rows),
        );
        let mail = mail
            .multipart(body)
            .map_err(|e| SendError::permanent(format!("email: cannot build the mail: {e}")))?;
        self.deliver(mail).await?;
        Ok(Delivered {
            reference: Some(thread.root),
        })
    }

    /// Sends `report` (a scheduled summary) to all of `to`. The reference is the
    /// report's Message-ID, the same for the same schedule and period.
    pub async fn send_report(
        &self,
        schedule_name: &str,
        to: &[String],
        report: &Report,
    ) -> Result<Delivered, SendError> {
        let id = format!(
            "<report.{}.{}.{}@{}>",
            id_part(schedule_name),
            report.from.0,
            report.to.0,
            self.settings.message_id_domain
        );
        let body = MultiPart::alternative_plain_html(
            report_text(schedule_name, report),
            report_html(schedule_name, report),
        );
        let mail = self
            .builder(to)?
            .subject(report_subject(schedule_name, report))
            .message_id(Some(id.clone()))
            .raw_header(header(
                "List-Id",
                format!(
                    "tocsin reports <reports.{}>",
                    self.settings.message_id_domain
                ),
            ))
            .multipart(body)
            .map_err(|e| SendError::permanent(format!("email: cannot build the mail: {e}")))?;
        self.deliver(mail).await?;
        Ok(Delivered {
            reference: Some(id),
        })
    }

    /// From, To, and the headers every mail of tocsin carries.
    fn builder(&self, to: &[String]) -> Result<MessageBuilder, SendError> {
        if to.is_empty() {
            return Err(SendError::permanent("email: no recipients"));
        }
        let mut mail = lettre::Message::builder().from(self.from.clone());
        for address in to {
            let mailbox: Mailbox = address.parse().map_err(|e| {
                SendError::permanent(format!("email: {address:?} is not an address: {e}"))
            })?;
            mail = mail.to(mailbox);
        }
        // RFC 3834: vacation responders stay quiet; Outlook's own switch for the same.
        Ok(mail
            .raw_header(header("Auto-Submitted", "auto-generated".to_string()))
            .raw_header(header("X-Auto-Response-Suppress", "All".to_string())))
    }

    async fn deliver(&self, mail: lettre::Message) -> Result<(), SendError> {
        let transport = self
            .transport
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        // lettre bounds connecting only; a server that stops answering mid-mail
        // would hold the send forever.
        match tokio::time::timeout(self.settings.timeout, transport.send(mail)).await {
            Ok(Ok(_reply)) => Ok(()),
            Ok(Err(e)) => Err(classify(&e, &self.settings)),
            Err(_elapsed) => {
                if let Ok(fresh) = build_transport(&self.settings) {
                    *self
                        .transport
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = fresh;
                }
                Err(SendError::retry(format!(
                    "email: no reply from {}:{} within {}",
                    self.settings.host,
                    self.settings.port,
                    humantime::format_duration(self.settings.timeout)
                )))
            }
        }
    }
}

fn build_transport(settings: &EmailSettings) -> Result<Transport, String> {
    let host = settings.host.as_str();
    let tls_error = |e: lettre::transport::smtp::Error| format!("email: TLS for {host}: {e}");
    let mut builder = match settings.tls {
        SmtpTls::Wrapper => Transport::relay(host).map_err(tls_error)?,
        SmtpTls::StartTls => Transport::starttls_relay(host).map_err(tls_error)?,
        SmtpTls::None => Transport::builder_dangerous(host),
    }
    .port(settings.port)
    .timeout(Some(settings.timeout));
    match (&settings.username, &settings.password) {
        (Some(user), Some(password)) => {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        (None, None) => {}
        // Half a login would send mail unauthenticated and fail far from the cause.
        _ => return Err("email: username and password must be set together".to_string()),
    }
    Ok(builder.build())
}

/// Whether a failure is worth retrying: refused connections, timeouts and 4xx
/// replies are; 5xx replies (a bad mailbox, bad credentials) and what our side
/// cannot do with this server (no STARTTLS, no common auth mechanism) are not.
fn classify(e: &lettre::transport::smtp::Error, settings: &EmailSettings) -> SendError {
    let mut reason = format!("email: smtp {}:{}: {e}", settings.host, settings.port);
    // lettre does not put credentials in its errors, but the server's reply text is
    // quoted as is; a password must not reach a log line through it.
    if let Some(password) = &settings.password
        && !password.is_empty()
    {
        reason = reason.replace(password.expose(), "***");
    }
    if e.is_permanent() || e.is_client() {
        SendError::permanent(reason)
    } else {
        SendError::retry(reason)
    }
}

fn header(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}

/// The Message-IDs of one mail: its own and its thread's root.
struct Thread {
    id: String,
    root: String,
}

impl Thread {
    fn of(msg: &Message, domain: &str) -> Thread {
        // Group messages thread by their first alert.
        let first = &msg.alerts[0];
        let fired = first.fired_at.unwrap_or(msg.at).0;
        let stem = format!("alert.{}.{fired}", first.fingerprint);
        let root = format!("<{stem}@{domain}>");
        let opens_thread =
            msg.reason == NotifyReason::Firing && msg.level <= 1 && msg.update.is_none();
        if opens_thread {
            return Thread {
                id: root.clone(),
                root,
            };
        }
        let digest = Sha256::digest(msg.key.as_bytes());
        let short = &hex::encode(digest)[..16];
        Thread {
            id: format!("<{stem}.{short}@{domain}>"),
            root,
        }
    }
}

/// `[CRITICAL] 投稿成功率低下 #42 (+11 more)`: the same for every mail of one
/// occurrence, so the thread holds together.
fn subject(msg: &Message) -> String {
    let first = &msg.alerts[0];
    let mut s = format!("[{}] {}", severity_word(&first.severity), first.rule);
    if let Some(n) = first.incident {
        let _ = write!(s, " #{n}");
    }
    if msg.alerts.len() > 1 {
        let _ = write!(s, " (+{} more)", msg.alerts.len() - 1);
    }
    s
}

/// The first line of the body: what this mail says happened.
fn headline(msg: &Message) -> String {
    let first = &msg.alerts[0];
    let mut what = format!("{}: {}", severity_word(&first.severity), first.rule);
    if msg.alerts.len() > 1 {
        let _ = write!(what, " (+{} more)", msg.alerts.len() - 1);
    }
    let status = match msg.reason {
        NotifyReason::Firing if msg.level > 1 => format!("ESCALATED (level {})", msg.level),
        NotifyReason::Firing if msg.update.is_some() => "STILL FIRING".to_string(),
        NotifyReason::Firing => return what,
        NotifyReason::Acknowledged => match &first.acked_by {
            Some(by) => format!("ACKNOWLEDGED by {by}"),
            None => "ACKNOWLEDGED".to_string(),
        },
        NotifyReason::Resolved => "RESOLVED".to_string(),
        NotifyReason::Unacknowledged => "UNACKNOWLEDGED".to_string(),
        NotifyReason::AckExpired => "ACK EXPIRED".to_string(),
        NotifyReason::SilenceEnded => "SILENCE ENDED".to_string(),
    };
    format!("{status} — {what}")
}

fn is_critical(a: &AlertSnapshot) -> bool {
    a.severity.eq_ignore_ascii_case("critical")
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
    fn of(a: &AlertSnapshot) -> Section {
        let mut title = a.rule.clone();
        if let Some(n) = a.incident {
            let _ = write!(title, " #{n}");
        }
        let mut rows = Vec::new();
        for (key, name) in KNOWN_ANNOTATIONS {
            if let Some(v) = a.annotations.get(key) {
                rows.push((name.to_string(), Value::Text(v.clone())));
            }
        }
        for (key, v) in &a.annotations {
            if !KNOWN_ANNOTATIONS.iter().any(|(k, _)| k == key) {
                rows.push((key.clone(), Value::Text(v.clone())));
            }
        }
        let labels: Vec<String> = a
            .labels
            .iter()
            .filter(|(k, _)| k.as_str() != "alertname")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !labels.is_empty() {
            rows.push(("Labels".to_string(), Value::Lines(labels)));
        }
        if let Some(t) = a.fired_at {
            rows.push(("Fired".to_string(), Value::Text(t.to_rfc3339())));
        }
        if let Some(t) = a.acked_at {
            let mut v = t.to_rfc3339();
            if let Some(by) = &a.acked_by {
                let _ = write!(v, " by {by}");
            }
            rows.push(("Acknowledged".to_string(), Value::Text(v)));
        } else if let Some(by) = &a.acked_by {
            rows.push(("Acknowledged".to_string(), Value::Text(format!("by {by}"))));
        }
        if let Some(t) = a.resolved_at {
            rows.push(("Resolved".to_string(), Value::Text(t.to_rfc3339())));
        }
        if let Some(url) = &a.generator_url {
            rows.push(("Source".to_string(), Value::Url(url.clone())));
        }
        Section {
            title,
            state: a.state,
            severity: a.severity.clone(),
            rows,
        }
    }
}

fn alert_text(headline: &str, msg: &Message, sections: &[Section]) -> String {
    let mut out = format!("{headline}\n");
    for s in sections {
        let _ = write!(out, "\n{} ({})\n", s.title, s.state);
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
            let label = format!("{name}:");
            for (i, line) in lines.iter().enumerate() {
                let label = if i == 0 { label.as_str() } else { "" };
                let _ = writeln!(out, "  {label:<width$}{line}");
            }
        }
    }
    let _ = write!(out, "\n-- \ntocsin ({})\n", reason_words(msg));
    out
}

fn alert_html(headline: &str, msg: &Message, sections: &[Section]) -> String {
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
                Value::Lines(ls) => ls.iter().map(|l| html(l)).collect::<Vec<_>>().join("<br>"),
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

const TH: &str = "text-align:left;vertical-align:top;padding:2px 16px 2px 0;color:#444";
const TD: &str = "vertical-align:top;padding:2px 16px 2px 0;white-space:pre-wrap";
const RESOLVED_COLOR: &str = "#2e7d32";

fn severity_color(severity: &str) -> &'static str {
    match severity.to_ascii_lowercase().as_str() {
        "critical" => "#c62828",
        "warning" => "#ef6c00",
        _ => "#1565c0",
    }
}

fn html_head() -> String {
    "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"></head>\n\
     <body style=\"font-family:sans-serif;font-size:14px\">\n"
        .to_string()
}

fn is_domain(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// A schedule name as part of a Message-ID: letters, digits and `-` only.
fn id_part(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

// ---- reports ----

/// `[tocsin] daily incident summary 2026-11-28 – 2026-11-29` (UTC dates).
fn report_subject(schedule_name: &str, report: &Report) -> String {
    format!(
        "[tocsin] {schedule_name} incident summary {} – {}",
        date(report.from),
        date(report.to)
    )
}

fn date(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(t.0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| t.to_rfc3339())
}

/// A duration as people read it, to the second: `1h 4m 30s`.
fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// The numbers of a report as (name, value) rows, shared by text and HTML.
fn report_numbers(report: &Report) -> Vec<(&'static str, String)> {
    let stats = |d: &Option<crate::report::Durations>| match d {
        Some(d) => format!(
            "median {}, mean {} ({} incident{})",
            human(d.median),
            human(d.mean),
            d.count,
            if d.count == 1 { "" } else { "s" }
        ),
        None => "—".to_string(),
    };
    vec![
        ("Fired", report.fired.to_string()),
        ("Acknowledged", report.acked.to_string()),
        ("Resolved", report.resolved.to_string()),
        ("Time to ack", stats(&report.time_to_ack)),
        ("Time to resolve", stats(&report.time_to_resolve)),
        ("Still open", report.open.len().to_string()),
    ]
}

fn open_columns(o: &crate::report::OpenIncident) -> [String; 5] {
    let incident = o
        .incident
        .map_or_else(|| "—".to_string(), |n| format!("#{n}"));
    let state = match &o.acked_by {
        Some(by) => format!("{} by {by}", o.state),
        None => o.state.to_string(),
    };
    let labels = o
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let rule = if o.severity.is_empty() {
        o.rule.clone()
    } else {
        format!("{} [{}]", o.rule, o.severity)
    };
    [incident, rule, state, o.fired_at.to_rfc3339(), labels]
}

fn report_text(schedule_name: &str, report: &Report) -> String {
    let mut out = format!(
        "tocsin {schedule_name} incident summary\n{} – {}\n\n",
        report.from.to_rfc3339(),
        report.to.to_rfc3339()
    );
    if let Some(note) = report.retention_note() {
        let _ = writeln!(out, "{note}\n");
    }
    for (name, value) in report_numbers(report) {
        let _ = writeln!(out, "{:<17}{value}", format!("{name}:"));
    }
    if !report.by_rule.is_empty() {
        out.push_str("\nFired by rule:\n");
        for r in &report.by_rule {
            let _ = writeln!(out, "  {:>4}  {}", r.count, r.rule);
        }
    }
    if !report.open.is_empty() {
        let _ = writeln!(out, "\nStill open at {}:", report.to.to_rfc3339());
        for o in &report.open {
            let [incident, rule, state, fired, labels] = open_columns(o);
            let _ = writeln!(
                out,
                "  {incident}  {rule}  {state}  since {fired}  {labels}"
            );
        }
    }
    out
}

fn report_html(schedule_name: &str, report: &Report) -> String {
    let mut out = html_head();
    let _ = write!(
        out,
        "<h2 style=\"margin:0 0 4px\">tocsin {} incident summary</h2>\n\
         <p style=\"color:#666;margin:0 0 12px\">{} – {}</p>\n\
         <table style=\"border-collapse:collapse\">\n",
        html(schedule_name),
        report.from.to_rfc3339(),
        report.to.to_rfc3339()
    );
    if let Some(note) = report.retention_note() {
        let _ = writeln!(
            out,
            "<tr><td colspan=\"2\" style=\"{TD}\"><em>{}</em></td></tr>",
            html(&note)
        );
    }
    for (name, value) in report_numbers(report) {
        let _ = writeln!(
            out,
            "<tr><th style=\"{TH}\">{name}</th><td style=\"{TD}\">{}</td></tr>",
            html(&value)
        );
    }
    out.push_str("</table>\n");
    if !report.by_rule.is_empty() {
        let _ = write!(
            out,
            "<h3>Fired by rule</h3>\n<table style=\"border-collapse:collapse\">\n\
             <tr><th style=\"{TH}\">Incidents</th><th style=\"{TH}\">Rule</th></tr>\n"
        );
        for r in &report.by_rule {
            let _ = writeln!(
                out,
                "<tr><td style=\"{TD}\">{}</td><td style=\"{TD}\">{}</td></tr>",
                r.count,
                html(&r.rule)
            );
        }
        out.push_str("</table>\n");
    }
    if !report.open.is_empty() {
        let _ = write!(
            out,
            "<h3>Still open at {}</h3>\n<table style=\"border-collapse:collapse\">\n<tr>",
            report.to.to_rfc3339()
        );
        for h in ["Incident", "Rule", "State", "Fired", "Labels"] {
            let _ = write!(out, "<th style=\"{TH}\">{h}</th>");
        }
        out.push_str("</tr>\n");
        for o in &report.open {
            out.push_str("<tr>");
            for cell in open_columns(o) {
                let _ = write!(out, "<td style=\"{TD}\">{}</td>", html(&cell));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
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
    fn first_firing_opens_the_thread_and_the_rest_reply_to_it() {
        let root = "<alert.0000000000000abc.1000@example.com>";
        let first = Thread::of(&message("k1", NotifyReason::Firing, 1, None), "example.com");
        assert_eq!((first.id.as_str(), first.root.as_str()), (root, root));

        let later = [
            message("k2", NotifyReason::Firing, 2, Some(root)),
            message("k3", NotifyReason::Firing, 1, Some(root)),
            message("k4", NotifyReason::Acknowledged, 0, Some(root)),
            message("k5", NotifyReason::Resolved, 0, Some(root)),
        ];
        let ids: Vec<String> = later
            .iter()
            .map(|m| {
                let t = Thread::of(m, "example.com");
                assert_eq!(t.root, root);
                t.id
            })
            .collect();
        for id in &ids {
            assert_ne!(id, root);
            assert!(id.starts_with("<alert.0000000000000abc.1000."), "{id}");
            assert!(id.ends_with("@example.com>"), "{id}");
        }
        let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        // The same message (a retry) gets the same id.
        assert_eq!(Thread::of(&later[0], "example.com").id, ids[0]);
    }

    #[test]
    fn subject_stays_the_same_and_the_headline_tells_the_state() {
        let mut acked = message("k", NotifyReason::Acknowledged, 0, Some("x"));
        acked.alerts[0].acked_by = Some("alice".to_string());
        let msgs = [
            message("k", NotifyReason::Firing, 1, None),
            message("k", NotifyReason::Firing, 3, Some("x")),
            acked,
            message("k", NotifyReason::Resolved, 0, Some("x")),
        ];
        for m in &msgs {
            assert_eq!(subject(m), "[CRITICAL] 投稿成功率低下 #42");
        }
        let headlines: Vec<String> = msgs.iter().map(headline).collect();
        assert_eq!(
            headlines,
            [
                "CRITICAL: 投稿成功率低下",
                "ESCALATED (level 3) — CRITICAL: 投稿成功率低下",
                "ACKNOWLEDGED by alice — CRITICAL: 投稿成功率低下",
                "RESOLVED — CRITICAL: 投稿成功率低下",
            ]
        );
    }

    #[test]
    fn grouped_subject_counts_the_others() {
        let mut m = message("k", NotifyReason::Firing, 1, None);
        m.alerts.extend(std::iter::repeat_n(snapshot(), 11));
        assert_eq!(subject(&m), "[CRITICAL] 投稿成功率低下 #42 (+11 more)");
    }

    #[test]
    fn html_from_labels_is_inert() {
        let mut m = message("k", NotifyReason::Firing, 1, None);
        m.alerts[0]
            .labels
            .insert("host".to_string(), "<script>alert(1)</script>".to_string());
        m.alerts[0].generator_url = Some("javascript:alert(1)".to_string());
        let sections: Vec<Section> = m.alerts.iter().map(Section::of).collect();
        let html = alert_html(&headline(&m), &m, &sections);
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("host=&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("href=\"javascript"), "{html}");
    }

    #[test]
    fn settings_are_checked_when_built() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let settings = EmailSettings {
            host: "127.0.0.1".to_string(),
            port: 25,
            tls: SmtpTls::None,
            username: Some("tocsin".to_string()),
            password: None,
            from: "tocsin <alerts@example.com>".to_string(),
            message_id_domain: "example.com".to_string(),
            timeout: Duration::from_secs(1),
        };
        let _guard = rt.enter();
        let half_login = Email::new(settings.clone()).err().unwrap();
        assert!(half_login.contains("username and password"), "{half_login}");
        let bad_from = Email::new(EmailSettings {
            from: "not an address".to_string(),
            username: None,
            ..settings.clone()
        })
        .err()
        .unwrap();
        assert!(bad_from.contains("not an address"), "{bad_from}");
        let bad_domain = Email::new(EmailSettings {
            message_id_domain: "a>b".to_string(),
            username: None,
            ..settings
        })
        .err()
        .unwrap();
        assert!(bad_domain.contains("message_id_domain"), "{bad_domain}");
    }
}
