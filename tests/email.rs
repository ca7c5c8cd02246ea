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
        SmtpServer::spawn(name, &[])
    }

    /// A server that takes only what RFC 5321 requires of every server: mail of at
    /// most 64K octets; anything longer gets 552.
    fn strict(name: &str) -> SmtpServer {
        let limit = tocsin::limits::email::MESSAGE_OCTETS.to_string();
        SmtpServer::spawn(name, &["--size-limit", &limit])
    }

    /// A server that requires AUTH as user `tocsin` with `password`.
    fn with_password(name: &str, password: &str) -> SmtpServer {
        SmtpServer::spawn(name, &["--password", password])
    }

    fn spawn(name: &str, args: &[&str]) -> SmtpServer {
        require_aiosmtpd();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("email")
            .join(name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smtp/server.py");
        let mut cmd = Command::new(PYTHON);
        cmd.arg(script).arg("--dir").arg(&dir);
        cmd.args(args);
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
        alerts_url: None,
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
        resolved_by: None,
        resolve_note: None,
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

/// Every Message-ID of an occurrence of `post_alert` starts so.
const STEM: &str = "<alert.91e4f03ad18ae588.1795860000000.";

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
    let root = delivered.reference;
    let root_id = root.clone().unwrap();
    assert!(
        root_id.starts_with(STEM) && root_id.ends_with("@example.com>"),
        "{root_id}"
    );

    let mut escalation = message("42:firing:3", NotifyReason::Firing, 3, post_alert());
    escalation.update = root.clone();
    let mut acked = post_alert();
    acked.state = State::Acknowledged;
    acked.acked_by = Some("alice".to_string());
    acked.acked_at = Some(Timestamp(FIRED + 20 * MIN));
    acked.ack_note = Some("API キーを確認中".to_string());
    let mut ack = message("42:acked", NotifyReason::Acknowledged, 0, acked);
    ack.update = root.clone();
    let mut resolved = post_alert();
    resolved.state = State::Resolved;
    resolved.resolved_at = Some(Timestamp(FIRED + 45 * MIN));
    resolved.resolved_by = Some("bob".to_string());
    resolved.resolve_note = Some("キーを再発行した".to_string());
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
        let subject = header(mail, "Subject").unwrap();
        if mail == &mails[3] {
            assert_eq!(
                subject, "[RESOLVED] 投稿成功率低下 #42",
                "as Alertmanager says it"
            );
        } else {
            assert_eq!(
                subject, "[CRITICAL] 投稿成功率低下 #42",
                "the thread's subject"
            );
        }
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
    assert_eq!(ids[0], root_id);
    assert_eq!(header(&mails[0], "In-Reply-To"), None);
    assert_eq!(header(&mails[0], "References"), None);
    for mail in &mails[1..] {
        assert_eq!(header(mail, "In-Reply-To"), root);
        assert_eq!(header(mail, "References"), root);
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
            "RESOLVED by bob — CRITICAL: 投稿成功率低下",
        ]
    );
    assert!(text(&mails[2]).contains("2026-11-28T10:20:00.000Z by alice"));
    assert!(
        text(&mails[2]).contains("Ack note:     API キーを確認中"),
        "{}",
        text(&mails[2])
    );
    assert!(text(&mails[3]).contains("2026-11-28T10:45:00.000Z by bob"));
    assert!(
        text(&mails[3]).contains("キーを再発行した"),
        "{}",
        text(&mails[3])
    );
    assert!(html(&mails[3]).contains("キーを再発行した"));

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
        resolved_by: None,
        resolve_note: None,
        generator_url: None,
    };
    let mut msg = message("group:1", NotifyReason::Firing, 1, disk("db-1", 7, 0x11));
    msg.alerts.push(disk("db-2", 8, 0x22));

    let d = email
        .send(&["dba@example.com".to_string()], &msg)
        .await
        .unwrap();
    let root = d.reference.unwrap();
    assert!(
        root.starts_with("<alert.0000000000000011.1795860000000."),
        "{root}"
    );

    let mails = server.received();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(
        header(mail, "Subject").as_deref(),
        Some("[WARNING] ディスク残量不足 #7 (+1 more)")
    );
    assert_eq!(header(mail, "Message-ID"), Some(root));
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

/// Two replicas over one PostgreSQL: the daily summary the acting replica sent is
/// not sent again by the replica that takes over after it (it reads when each
/// report last ran as it takes the lease, not only at start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_summary_goes_once_across_a_handover_between_replicas() {
    use std::sync::Arc;
    use tocsin::calendar::Recurrence;
    use tocsin::clock::ManualClock;
    use tocsin::config::{Backend, Secret};
    use tocsin::report::ReportSchedule;

    let server = SmtpServer::start("report-handover");
    let url = common::postgres::fresh_database("report_handover");
    // 2026-11-30 08:50 in Tokyo.
    let clock = ManualClock::new(Timestamp::from_secs(1_764_460_200));
    let nine = Timestamp::from_secs(1_764_460_200 + 600);
    let config = |name: &str| {
        let dir = common::daemon_dir(&format!("email-report-handover-{name}"), "");
        let mut c = common::test_config(&dir);
        c.storage.backend = Backend::Postgres {
            url: Secret::new(url.clone()),
        };
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
    let acting = |base: String| async move {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(r) = reqwest::get(format!("{base}/readyz")).await
                && r.text().await.is_ok_and(|t| t.starts_with("ready: acting"))
            {
                return;
            }
            assert!(Instant::now() < deadline, "{base} never acted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let a = tocsin::server::start(config("a"), Arc::new(clock.clone()))
        .await
        .unwrap();
    acting(format!("http://{}", a.addr)).await;
    // B starts before nine and stands by.
    let b = tocsin::server::start(config("b"), Arc::new(clock.clone()))
        .await
        .unwrap();
    a.daemon.run_until(&clock, nine).await;
    assert_eq!(server.received().len(), 1, "A sends the 09:00 summary");

    // A clean handover at 09:05: B takes the lease and acts.
    clock.set(nine + Duration::from_secs(300));
    a.stop().await;
    acting(format!("http://{}", b.addr)).await;
    b.daemon.caught_up().await;
    assert_eq!(
        server.received().len(),
        1,
        "sent again by the replica taking over"
    );
    b.daemon
        .run_until(&clock, nine + Duration::from_secs(24 * 3600))
        .await;
    assert_eq!(server.received().len(), 2, "the next day's, from B");
    b.stop().await;
}

/// The daemon's mails about one alert, through a real SMTP server: the page to
/// tanaka@ and the fallback to ops@ (for two addresses that cannot take it) are
/// distinct mails with their own Message-IDs, the fallback names the alert once,
/// the ack reaches both in their threads, and the resolve says `[RESOLVED]`, who
/// resolved it and why.
#[tokio::test]
async fn every_mail_of_the_daemon_has_its_own_id_and_answers_its_recipients_thread() {
    use std::sync::Arc;
    use tocsin::clock::{Clock, ManualClock};
    use tocsin::daemon::Daemon;
    use tocsin::escalation::{Level, Policy, Routing, Target};

    let server = SmtpServer::start("daemon-threads");
    let dir = common::daemon_dir("email-daemon-threads", "");
    let mut config = common::test_config(&dir);
    config.rules.paths = Vec::new();
    config.channels.console.enabled = false;
    config.channels.email = Some(settings(server.port));
    let mut routing = Routing::console_only();
    routing.policies = BTreeMap::from([(
        "default".into(),
        Policy {
            name: "default".into(),
            levels: vec![Level {
                after: Duration::ZERO,
                // Neither Slack nor this webhook is configured: both fail for good
                // and fall back to ops@ at once.
                targets: vec![
                    Target::Email("tanaka@example.com".into()),
                    Target::SlackChannel("#nowhere".into()),
                    Target::Webhook("gone".into()),
                ],
                via: Vec::new(),
            }],
            repeat_interval: Duration::from_secs(24 * 3600),
            ack_timeout: None,
            fallback: vec![Target::Email("ops@example.com".into())],
            phone_severities: Vec::new(),
        },
    )]);
    config.routing = routing;
    let clock = ManualClock::new(Timestamp(FIRED));
    let daemon = Daemon::open(config, Arc::new(clock.clone())).unwrap();
    let looping = daemon.spawn_loop();
    let labels = [
        ("alertname", "投稿成功率低下"),
        ("severity", "critical"),
        ("account", "a1"),
    ];
    common::fire_external(&daemon, &labels, clock.now()).await;
    daemon.run_until(&clock, Timestamp(FIRED + MIN)).await;
    let to = |mail: &Value| mail["rcpt_tos"][0].as_str().unwrap().to_string();
    let pages = server.received();
    let mut who: Vec<String> = pages.iter().map(to).collect();
    who.sort();
    assert_eq!(
        who,
        ["ops@example.com", "tanaka@example.com"],
        "one mail each"
    );
    let ops = pages.iter().find(|m| to(m) == "ops@example.com").unwrap();
    let tanaka = pages
        .iter()
        .find(|m| to(m) == "tanaka@example.com")
        .unwrap();
    let first_id = |m: &Value| header(m, "Message-ID").unwrap();
    assert_ne!(first_id(ops), first_id(tanaka));
    assert_eq!(
        header(ops, "Subject").as_deref(),
        Some("[CRITICAL] 投稿成功率低下 #1"),
        "the alert once, not \"(+1 more)\""
    );
    assert_eq!(text(ops).matches("投稿成功率低下 #1 (firing)").count(), 1);

    let ack = tocsin::alert::Event::Ack {
        actor: "tanaka".into(),
        via: "slack".into(),
        note: Some("調査中".into()),
    };
    daemon.act("1", ack).await.unwrap();
    daemon.run_until(&clock, Timestamp(FIRED + 2 * MIN)).await;
    let resolve = tocsin::alert::Event::Resolve {
        actor: "sato".into(),
        note: Some("API キーを再発行".into()),
    };
    daemon.act("1", resolve).await.unwrap();
    daemon.run_until(&clock, Timestamp(FIRED + 3 * MIN)).await;
    let mails = server.received();
    for first in [ops, tanaka] {
        let thread: Vec<&Value> = mails.iter().filter(|m| to(m) == to(first)).collect();
        let subjects: Vec<String> = thread
            .iter()
            .map(|m| header(m, "Subject").unwrap())
            .collect();
        assert_eq!(
            subjects,
            [
                "[CRITICAL] 投稿成功率低下 #1",
                "[CRITICAL] 投稿成功率低下 #1",
                "[RESOLVED] 投稿成功率低下 #1",
            ],
            "page, ack, resolve to {}",
            to(first)
        );
        for later in &thread[1..] {
            assert_eq!(header(later, "In-Reply-To"), Some(first_id(first)));
            assert_eq!(header(later, "References"), Some(first_id(first)));
        }
        let ack = text(thread[1]);
        assert!(ack.starts_with("ACKNOWLEDGED by tanaka"), "{ack}");
        assert!(ack.contains("調査中"), "{ack}");
        let resolved = text(thread[2]);
        assert!(resolved.starts_with("RESOLVED by sato"), "{resolved}");
        assert!(resolved.contains("API キーを再発行"), "{resolved}");
    }
    let ids: std::collections::BTreeSet<String> = mails.iter().map(first_id).collect();
    assert_eq!(ids.len(), mails.len(), "every mail its own Message-ID");
    looping.stop().await;
}

/// The outage, in one group: 200 alerts with 10,000-character Japanese
/// descriptions, 30 long hostile labels each and a 2,800-character link, mailed to
/// a server that takes only RFC 5321's 64K. It is accepted; every line is within
/// RFC 5322's 998; each alert it lists, it lists once; the rest are counted, with
/// a link that lists them all.
#[tokio::test]
async fn a_huge_hostile_group_fits_what_every_server_takes() {
    use tocsin::limits::email::{LINE_OCTETS, MESSAGE_OCTETS};

    let server = SmtpServer::strict("huge-group");
    let email = Email::new(EmailSettings {
        alerts_url: Some("https://tocsin.example.com/api/v1/alerts".into()),
        ..settings(server.port)
    })
    .unwrap();
    let hostile = |n: u64| {
        let mut a = post_alert();
        a.fingerprint = Fingerprint(0x1000 + n);
        a.incident = Some(n);
        a.rule = "巨大説明テスト".into();
        a.labels.insert("alertname".into(), a.rule.clone());
        for i in 0..30 {
            a.labels.insert(
                format!("label_{i:02}"),
                format!("<!channel> & <b>値</b>\r\n🔥{}", "長".repeat(200)),
            );
        }
        a.annotations
            .insert("description".into(), "障害の説明".repeat(2_000));
        a.generator_url = Some(format!(
            "http://prometheus.example.com/graph?g0.expr={}",
            "x".repeat(2_800)
        ));
        a
    };
    let mut msg = message("group:huge", NotifyReason::Firing, 1, hostile(2));
    msg.alerts.extend((3..=201).map(hostile));
    email
        .send(&["ops@example.com".to_string()], &msg)
        .await
        .expect("a server taking 64K takes it");

    let mails = server.received();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    let size = mail["size"].as_u64().unwrap() as usize;
    assert!(size <= MESSAGE_OCTETS, "{size} octets");
    let longest = mail["longest_line"].as_u64().unwrap() as usize;
    assert!(longest <= LINE_OCTETS, "a line of {longest} octets");
    assert_eq!(
        header(mail, "Subject").as_deref(),
        Some("[CRITICAL] 巨大説明テスト #2 (+199 more)")
    );
    let (text, html) = (text(mail), html(mail));
    let listed: Vec<u64> = (2..=201)
        .filter(|n| text.contains(&format!("巨大説明テスト #{n} (firing)")))
        .collect();
    assert!(!listed.is_empty());
    for n in &listed {
        assert_eq!(
            text.matches(&format!("巨大説明テスト #{n} (firing)"))
                .count(),
            1
        );
    }
    let more = 200 - listed.len();
    assert!(
        text.contains(&format!(
            "…and {more} more alerts ({more} firing), too many for one mail."
        )),
        "{text}"
    );
    assert!(
        text.contains(
            "All of them: https://tocsin.example.com/api/v1/alerts?label=alertname%3D%E5%B7%A8"
        ),
        "{text}"
    );
    // Several alerts, each in less detail: cut values say how long they were, and
    // a link is whole or left out, never cut.
    assert!(listed.len() >= 5, "{listed:?}");
    assert!(text.contains("(10000 characters in all)"), "{text}");
    assert!(
        text.contains("(a link of 2844 characters, left out)"),
        "{text}"
    );
    assert!(
        !html.contains("<!channel>") && !html.contains("<b>"),
        "markup is inert"
    );
}

/// One alert whose texts alone are larger than a mail may be: cut to fit, with
/// what it is and how to ack still there.
#[tokio::test]
async fn one_oversized_alert_is_cut_to_fit_and_keeps_its_headline() {
    let server = SmtpServer::strict("huge-alert");
    let email = Email::new(settings(server.port)).unwrap();
    let mut a = post_alert();
    a.rule = "長".repeat(5_000);
    for i in 0..300 {
        a.annotations
            .insert(format!("note_{i:03}"), "説明".repeat(1_000));
    }
    let msg = message("k", NotifyReason::Firing, 1, a);
    email
        .send(&["ops@example.com".to_string()], &msg)
        .await
        .unwrap();
    let mail = &server.received()[0];
    assert!(mail["size"].as_u64().unwrap() as usize <= tocsin::limits::email::MESSAGE_OCTETS);
    let subject = header(mail, "Subject").unwrap();
    assert!(subject.starts_with("[CRITICAL] 長長"), "{subject}");
    assert!(
        subject.ends_with("(5000 characters in all) #42"),
        "{subject}"
    );
    assert!(text(mail).contains("more annotations"), "{}", text(mail));
}
