//! Email over SMTP (lettre): the transport, its failures sorted into retry and
//! never, and the scheduled reports. What an alert mail says, how mails thread and
//! how a long one is shortened is `mail.rs`.

use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MessageBuilder, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::mail::{self, TD, TH, Thread, html_head};
use super::{Delivered, Message, SendError};
use crate::clock::Timestamp;
use crate::config::{EmailSettings, SmtpTls};
use crate::escape::{html, line};
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
        let mut headers = self
            .builder(to)?
            .message_id(Some(thread.id.clone()))
            .raw_header(header(
                "List-Id",
                format!("tocsin alerts <alerts.{}>", self.settings.message_id_domain),
            ));
        if let Some(parent) = &thread.parent {
            headers = headers
                .in_reply_to(parent.clone())
                .references(parent.clone());
        }
        if mail::urgent(msg) {
            headers = headers
                .raw_header(header("X-Priority", "1 (Highest)".to_string()))
                .raw_header(header("Importance", "high".to_string()));
        }
        let mail = mail::build(headers, msg, self.settings.alerts_url.as_deref())
            .map_err(SendError::permanent)?;
        self.deliver(mail).await?;
        Ok(Delivered {
            reference: Some(thread.root().to_string()),
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
            let _ = writeln!(out, "  {:>4}  {}", r.count, line(&r.rule));
        }
    }
    if !report.open.is_empty() {
        let _ = writeln!(out, "\nStill open at {}:", report.to.to_rfc3339());
        for o in &report.open {
            let [incident, rule, state, fired, labels] =
                open_columns(o).map(|c| line(&c).into_owned());
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
    use super::*;

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
            alerts_url: None,
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
