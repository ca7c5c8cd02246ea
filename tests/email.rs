//! The email channel against a real SMTP server: Debian's python3-aiosmtpd as a child
//! process on 127.0.0.1 (`tests/fixtures/smtp/server.py`), which stores every mail it
//! accepts, envelope and decoded parts, as JSON for these tests to read.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tocsin::alert::{Action, Alert, Event, NotifyReason, Params, State, TimelineEntry, step};
use tocsin::clock::Timestamp;
use tocsin::config::{EmailSettings, Secret, SmtpTls};
use tocsin::labels::{Fingerprint, Labels};
use tocsin::notify::email::Email;
use tocsin::notify::{AlertSnapshot, Message, SendError};

const PYTHON: &str = "/usr/bin/python3";

/// Fails (never skips) without aiosmtpd: a skipped test would let the channel break
/// unnoticed.
fn require_aiosmtpd() {
    let ok = Command::new(PYTHON)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{PYTHON} with the aiosmtpd module is needed for these tests. \
         CI installs it via `.ci/run` (Debian package python3-aiosmtpd); \
         locally: apt-get install -y python3-aiosmtpd"
    );
}

/// The SMTP server, killed when dropped.
struct SmtpServer {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl SmtpServer {
    fn start(name: &str) -> SmtpServer {
        SmtpServer::spawn(name, None)
    }

    /// A server that requires AUTH as user `tocsin` with `password`.
    fn with_password(name: &str, password: &str) -> SmtpServer {
        SmtpServer::spawn(name, Some(password))
    }

    fn spawn(name: &str, password: Option<&str>) -> SmtpServer {
        require_aiosmtpd();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("email")
            .join(name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smtp/server.py");
        let mut cmd = Command::new(PYTHON);
        cmd.arg(script).arg("--dir").arg(&dir);
        if let Some(p) = password {
            cmd.arg("--password").arg(p);
        }
        let stderr = fs::File::create(dir.join("server.log")).unwrap();
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start the SMTP server");

        // The server prints the port it bound; wait for it, boundedly.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(15)).unwrap_or_default();
        let Ok(port) = line.trim().parse::<u16>() else {
            let _ = child.kill();
            let _ = child.wait();
            let log = fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            panic!("the SMTP server did not report its port (got {line:?}):\n{log}");
        };
        SmtpServer { child, dir, port }
    }

    /// Every mail accepted so far, in order.
    fn received(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_str(&fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn settings(port: u16) -> EmailSettings {
    EmailSettings {
        host: "127.0.0.1".to_string(),
        port,
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: "tocsin <alerts@example.com>".to_string(),
        message_id_domain: "example.com".to_string(),
        timeout: Duration::from_secs(10),
    }
}

/// The first value of a header of a received mail.
fn header(mail: &Value, name: &str) -> Option<String> {
    mail["headers"][name.to_ascii_lowercase()][0]
        .as_str()
        .map(str::to_string)
}

fn text(mail: &Value) -> &str {
    mail["text"].as_str().expect("a text/plain part")
}

fn html(mail: &Value) -> &str {
    mail["html"].as_str().expect("a text/html part")
}

const FIRED: i64 = 1_795_860_000_000; // 2026-11-28T10:00:00Z
const MIN: i64 = 60_000;

fn post_alert() -> AlertSnapshot {
    AlertSnapshot {
        fingerprint: Fingerprint(0x91e4_f03a_d18a_e588),
        incident: Some(42),
        rule: "投稿成功率低下".to_string(),
        severity: "critical".to_string(),
        labels: BTreeMap::from([
            ("alertname".to_string(), "投稿成功率低下".to_string()),
            ("severity".to_string(), "critical".to_string()),
            ("service".to_string(), "sns-bot".to_string()),
            ("host".to_string(), "<script>alert(1)</script>".to_string()),
        ]),
        annotations: BTreeMap::from([
            (
                "summary".to_string(),
                "投稿成功率が 90% を下回っています".to_string(),
            ),
            (
                "description".to_string(),
                "直近 5 分の成功率は 71% です".to_string(),
            ),
            ("impact".to_string(), "投稿が届きません".to_string()),
            ("action".to_string(), "API キーを確認する".to_string()),
        ]),
        state: State::Firing,
        fired_at: Some(Timestamp(FIRED)),
        resolved_at: None,
        acked_by: None,
        acked_at: None,
        ack_note: None,
        generator_url: Some("http://prometheus.example.com/graph?g0.expr=up".to_string()),
    }
}

fn message(key: &str, reason: NotifyReason, level: u32, alert: AlertSnapshot) -> Message {
    Message {
        key: key.to_string(),
        reason,
        level,
        alerts: vec![alert],
        update: None,
        at: Timestamp(FIRED),
    }
}

const ROOT: &str = "<alert.91e4f03ad18ae588.1795860000000@example.com>";

#[tokio::test]
async fn every_mail_of_one_occurrence_is_in_one_thread() {
    let server = SmtpServer::start("thread");
    let email = Email::new(settings(server.port)).unwrap();
    let to = vec![
        "oncall@example.com".to_string(),
        "sre-team@example.com".to_string(),
    ];

    let firing = message("42:firing:1", NotifyReason::Firing, 1, post_alert());
    let delivered = email.send(&to, &firing).await.unwrap();
    assert_eq!(delivered.reference.as_deref(), Some(ROOT));
    let root = delivered.reference;

    let mut escalation = message("42:firing:3", NotifyReason::Firing, 3, post_alert());
    escalation.update = root.clone();
    let mut acked = post_alert();
    acked.state = State::Acknowledged;
    acked.acked_by = Some("alice".to_string());
    acked.acked_at = Some(Timestamp(FIRED + 20 * MIN));
    let mut ack = message("42:acked", NotifyReason::Acknowledged, 0, acked);
    ack.update = root.clone();
    let mut resolved = post_alert();
    resolved.state = State::Resolved;
    resolved.resolved_at = Some(Timestamp(FIRED + 45 * MIN));
    let mut resolve = message("42:resolved", NotifyReason::Resolved, 0, resolved);
    resolve.update = root.clone();
    for m in [&escalation, &ack, &resolve] {
        let d = email.send(&to, m).await.unwrap();
        assert_eq!(d.reference, root, "every mail reports the thread root");
    }

    let mails = server.received();
    assert_eq!(mails.len(), 4);
    let mut ids = Vec::new();
    for mail in &mails {
        assert_eq!(mail["mail_from"], "alerts@example.com");
        assert_eq!(
            mail["rcpt_tos"],
            serde_json::json!(["oncall@example.com", "sre-team@example.com"])
        );
        assert_eq!(
            header(mail, "From").as_deref(),
            Some("tocsin <alerts@example.com>")
        );
        assert_eq!(
            header(mail, "To").as_deref(),
            Some("oncall@example.com, sre-team@example.com")
        );
        assert_eq!(
            header(mail, "Subject").as_deref(),
            Some("[CRITICAL] 投稿成功率低下 #42"),
            "the subject never changes within the occurrence"
        );
        assert_eq!(
            header(mail, "Auto-Submitted").as_deref(),
            Some("auto-generated")
        );
        assert_eq!(
            header(mail, "X-Auto-Response-Suppress").as_deref(),
            Some("All")
        );
        assert_eq!(
            header(mail, "List-Id").as_deref(),
            Some("tocsin alerts <alerts.example.com>")
        );
        assert_eq!(header(mail, "X-Priority").as_deref(), Some("1 (Highest)"));
        assert_eq!(header(mail, "Importance").as_deref(), Some("high"));
        assert_eq!(mail["content_type"], "multipart/alternative");

        let (text, html) = (text(mail), html(mail));
        for part in [text, html] {
            assert!(part.contains("投稿成功率低下"), "{part}");
            assert!(part.contains("投稿成功率が 90% を下回っています"), "{part}");
            assert!(part.contains("API キーを確認する"), "{part}");
            assert!(part.contains("2026-11-28T10:00:00.000Z"), "{part}");
            assert!(
                part.contains("http://prometheus.example.com/graph?g0.expr=up"),
                "{part}"
            );
        }
        // Plain text shows the label as it is; HTML makes it inert.
        assert!(text.contains("host=<script>alert(1)</script>"), "{text}");
        assert!(!html.contains("<script"), "{html}");
        assert!(
            html.contains("host=&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        ids.push(header(mail, "Message-ID").unwrap());
    }

    // The first mail opens the thread, the others reply to it.
    assert_eq!(ids[0], ROOT);
    assert_eq!(header(&mails[0], "In-Reply-To"), None);
    assert_eq!(header(&mails[0], "References"), None);
    for mail in &mails[1..] {
        assert_eq!(header(mail, "In-Reply-To").as_deref(), Some(ROOT));
        assert_eq!(header(mail, "References").as_deref(), Some(ROOT));
    }
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        distinct.len(),
        4,
        "every mail has its own Message-ID: {ids:?}"
    );

    // The state is in the body.
    let headlines: Vec<&str> = mails
        .iter()
        .map(|m| text(m).lines().next().unwrap())
        .collect();
    assert_eq!(
        headlines,
        [
            "CRITICAL: 投稿成功率低下",
            "ESCALATED (level 3) — CRITICAL: 投稿成功率低下",
            "ACKNOWLEDGED by alice — CRITICAL: 投稿成功率低下",
            "RESOLVED — CRITICAL: 投稿成功率低下",
        ]
    );
    assert!(text(&mails[2]).contains("2026-11-28T10:20:00.000Z by alice"));
    assert!(text(&mails[3]).contains("2026-11-28T10:45:00.000Z"));

    // A retried send is the same mail: the recipient's client keeps one.
    email.send(&to, &escalation).await.unwrap();
    let again = server.received();
    assert_eq!(header(&again[4], "Message-ID"), Some(ids[1].clone()));
}

#[tokio::test]
async fn a_group_threads_by_its_first_alert() {
    let server = SmtpServer::start("group");
    let email = Email::new(settings(server.port)).unwrap();
    let disk = |host: &str, incident: u64, fp: u64| AlertSnapshot {
        fingerprint: Fingerprint(fp),
        incident: Some(incident),
        rule: "ディスク残量不足".to_string(),
        severity: "warning".to_string(),
        labels: BTreeMap::from([
            ("alertname".to_string(), "ディスク残量不足".to_string()),
            ("severity".to_string(), "warning".to_string()),
            ("host".to_string(), host.to_string()),
        ]),
        annotations: BTreeMap::new(),
        state: State::Firing,
        fired_at: Some(Timestamp(FIRED)),
        resolved_at: None,
        acked_by: None,
        acked_at: None,
        ack_note: None,
        generator_url: None,
    };
    let mut msg = message("group:1", NotifyReason::Firing, 1, disk("db-1", 7, 0x11));
    msg.alerts.push(disk("db-2", 8, 0x22));

    let d = email
        .send(&["dba@example.com".to_string()], &msg)
        .await
        .unwrap();
    let root = "<alert.0000000000000011.1795860000000@example.com>";
    assert_eq!(d.reference.as_deref(), Some(root));

    let mails = server.received();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(
        header(mail, "Subject").as_deref(),
        Some("[WARNING] ディスク残量不足 #7 (+1 more)")
    );
    assert_eq!(header(mail, "Message-ID").as_deref(), Some(root));
    assert_eq!(header(mail, "X-Priority"), None, "only critical is urgent");
    assert_eq!(header(mail, "Importance"), None);
    for part in [text(mail), html(mail)] {
        assert!(part.contains("ディスク残量不足 #7"), "{part}");
        assert!(part.contains("ディスク残量不足 #8"), "{part}");
        assert!(
            part.contains("host=db-1") && part.contains("host=db-2"),
            "{part}"
        );
    }
}

/// An alert driven through the real state machine, for the report.
fn life(
    rule: &str,
    host: &str,
    incident: u64,
    events: &[(i64, Event)],
) -> (Alert, Vec<TimelineEntry>) {
    let labels = Labels::from_pairs([
        ("alertname", rule),
        ("severity", "critical"),
        ("host", host),
    ]);
    let mut alert = Alert::new(labels.fingerprint(), rule.to_string(), labels);
    let mut timeline = Vec::new();
    for (at, event) in events {
        let tr = step(&Params::default(), &alert, event, Timestamp(*at)).unwrap();
        alert = tr.alert;
        for action in tr.actions {
            match action {
                Action::OpenIncident => alert.incident = Some(incident),
                Action::Record(e) => timeline.push(e),
                Action::Notify(_) => {}
            }
        }
    }
    (alert, timeline)
}

fn holds(h: bool) -> Event {
    Event::Evaluated {
        holds: h,
        resolve_holds: None,
        value: 1.0,
    }
}

fn ack(who: &str) -> Event {
    Event::Ack {
        actor: who.to_string(),
        via: "slack".to_string(),
        note: None,
    }
}

#[tokio::test]
async fn the_daily_report_arrives_with_its_numbers() {
    let server = SmtpServer::start("report");
    let email = Email::new(settings(server.port)).unwrap();
    let from = Timestamp(1_795_824_000_000); // 2026-11-28T00:00:00Z
    let to = Timestamp(from.0 + 24 * 60 * MIN);
    let alerts = vec![
        life(
            "投稿成功率低下",
            "bot-1",
            40,
            &[
                (FIRED, holds(true)),
                (FIRED + 4 * MIN, ack("alice")),
                (FIRED + 30 * MIN, holds(false)),
            ],
        ),
        life(
            "投稿成功率低下",
            "bot-2",
            41,
            &[
                (FIRED + 60 * MIN, holds(true)),
                (FIRED + 72 * MIN, ack("bob")),
            ],
        ),
        life("<b>CPU</b>", "bot-3", 43, &[(FIRED, holds(true))]),
    ];
    let report = tocsin::report::summarize(&alerts, from, to);

    let d = email
        .send_report("daily", &["leads@example.com".to_string()], &report)
        .await
        .unwrap();
    assert_eq!(
        d.reference.as_deref(),
        Some("<report.daily.1795824000000.1795910400000@example.com>")
    );

    let mails = server.received();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail["rcpt_tos"], serde_json::json!(["leads@example.com"]));
    assert_eq!(
        header(mail, "Subject").as_deref(),
        Some("[tocsin] daily incident summary 2026-11-28 – 2026-11-29")
    );
    assert_eq!(
        header(mail, "Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    let text = text(mail);
    for line in [
        "Fired:           3",
        "Acknowledged:    2",
        "Resolved:        1",
        "Time to ack:     median 8m, mean 8m (2 incidents)",
        "Time to resolve: median 30m, mean 30m (1 incident)",
        "Still open:      2",
        "     2  投稿成功率低下",
        "     1  <b>CPU</b>",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(
        text.contains("#41  投稿成功率低下 [critical]  acknowledged by bob"),
        "{text}"
    );
    assert!(
        text.contains("#43  <b>CPU</b> [critical]  firing"),
        "{text}"
    );

    let html = html(mail);
    assert!(html.contains("<table"), "{html}");
    assert!(html.contains(">3</td>"), "{html}");
    assert!(html.contains("median 8m, mean 8m (2 incidents)"), "{html}");
    assert!(html.contains("&lt;b&gt;CPU&lt;/b&gt;"), "{html}");
    assert!(!html.contains("<b>CPU"), "{html}");
}

#[tokio::test]
async fn a_refused_connection_is_worth_retrying() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let email = Email::new(settings(port)).unwrap();
    let err = email
        .send(
            &["oncall@example.com".to_string()],
            &message("k", NotifyReason::Firing, 1, post_alert()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Retry { .. }), "{err:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_as_retry() {
    // Accepts connections and says nothing, not even the greeting.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let email = Email::new(EmailSettings {
        timeout: Duration::from_millis(300),
        ..settings(port)
    })
    .unwrap();
    let started = Instant::now();
    let err = email
        .send(
            &["oncall@example.com".to_string()],
            &message("k", NotifyReason::Firing, 1, post_alert()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Retry { .. }), "{err:?}");
    assert!(err.to_string().contains("no reply"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    hold.abort();
}

#[tokio::test]
async fn refused_recipients_are_permanent_or_retried_by_their_reply() {
    let server = SmtpServer::start("refused");
    let email = Email::new(settings(server.port)).unwrap();
    let msg = message("k", NotifyReason::Firing, 1, post_alert());

    let err = email
        .send(&["reject@example.com".to_string()], &msg)
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Permanent { .. }), "{err:?}");
    assert!(err.to_string().contains("550"), "{err}");

    let err = email
        .send(&["busy@example.com".to_string()], &msg)
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Retry { .. }), "{err:?}");
    assert!(err.to_string().contains("451"), "{err}");

    let err = email
        .send(&["not an address".to_string()], &msg)
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Permanent { .. }), "{err:?}");

    assert!(server.received().is_empty());
    // The refusals left the channel usable.
    email
        .send(&["oncall@example.com".to_string()], &msg)
        .await
        .unwrap();
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn logs_in_and_never_shows_the_password() {
    let password = "hunter2-correct-horse";
    let server = SmtpServer::with_password("auth", password);
    let msg = message("k", NotifyReason::Firing, 1, post_alert());
    let to = ["oncall@example.com".to_string()];
    let with = |password: &str| EmailSettings {
        username: Some("tocsin".to_string()),
        password: Some(Secret::new(password)),
        ..settings(server.port)
    };

    let good = Email::new(with(password)).unwrap();
    good.send(&to, &msg).await.unwrap();
    assert_eq!(server.received().len(), 1);

    let wrong = "hunter2-wrong-horse";
    let bad = Email::new(with(wrong)).unwrap();
    let err = bad.send(&to, &msg).await.unwrap_err();
    assert!(matches!(err, SendError::Permanent { .. }), "{err:?}");
    assert!(err.to_string().contains("535"), "{err}");
    assert!(!format!("{err} {err:?}").contains(wrong), "{err:?}");
    assert_eq!(server.received().len(), 1);
}

#[path = "common/mod.rs"]
mod common;

/// The daemon sends the daily summary at 09:00 Tokyo time, once: not before, not
/// twice, not again after a restart. The daemon's own loop keeps the report's
/// deadline: it runs at exactly 09:00 on the manual clock.
#[tokio::test]
async fn the_daily_summary_goes_on_schedule_once_even_across_a_restart() {
    use std::sync::Arc;
    use tocsin::calendar::Recurrence;
    use tocsin::clock::{Clock, ManualClock};
    use tocsin::daemon::Daemon;
    use tocsin::report::ReportSchedule;

    let server = SmtpServer::start("scheduled-report");
    let dir = common::daemon_dir("email-scheduled-report", "");
    // 2026-11-30 08:50 in Tokyo.
    let clock = ManualClock::new(Timestamp::from_secs(1_764_460_200));
    let nine = Timestamp::from_secs(1_764_460_200 + 600);
    let config = || {
        let mut c = common::test_config(&dir);
        c.rules.paths = Vec::new();
        c.channels.console.enabled = false;
        c.channels.email = Some(settings(server.port));
        c.reports = vec![ReportSchedule {
            name: "daily".into(),
            when: Recurrence::parse("0 9 * * *", chrono_tz::Asia::Tokyo).unwrap(),
            period: Duration::from_secs(86400),
            to: vec!["ops@example.com".into()],
        }];
        c
    };
    let daemon = Daemon::open(config(), Arc::new(clock.clone())).unwrap();
    let looping = daemon.spawn_loop();
    let labels = [("alertname", "投稿成功率低下"), ("severity", "warning")];
    common::fire_external(&daemon, &labels, clock.now()).await;

    daemon
        .run_until(&clock, nine - Duration::from_millis(1))
        .await;
    assert!(server.received().is_empty(), "not before 09:00");
    daemon.run_until(&clock, nine).await;
    let mails = server.received();
    assert_eq!(mails.len(), 1, "at 09:00");
    let subject = header(&mails[0], "Subject").unwrap();
    assert!(subject.contains("daily incident summary"), "{subject}");
    assert!(
        text(&mails[0]).contains("投稿成功率低下"),
        "{}",
        text(&mails[0])
    );
    daemon
        .run_until(&clock, nine + Duration::from_secs(600))
        .await;
    assert_eq!(server.received().len(), 1, "once");

    looping.stop().await;
    drop(daemon);
    clock.set(nine + Duration::from_secs(3600));
    let daemon = Daemon::open(config(), Arc::new(clock.clone())).unwrap();
    let looping = daemon.spawn_loop();
    daemon.caught_up().await;
    assert_eq!(server.received().len(), 1, "not again after a restart");
    daemon
        .run_until(&clock, nine + Duration::from_secs(24 * 3600))
        .await;
    assert_eq!(server.received().len(), 2, "the next day's");
    looping.stop().await;
}
