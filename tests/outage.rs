//! Channels that are down for minutes: a webhook answering 5xx, one that never
//! answers (timeouts), one that refuses connections, and an SMTP server that is not
//! there at send time. In every case the page is retried with growing waits under
//! one idempotency key, the policy's fallback is used after five failures, the
//! timeline says so, and the page is delivered once the channel is back. A channel
//! that refuses for good (HTTP 401) is not retried: the fallback goes at once.
//!
//! Time is a `ManualClock` the fakes read too, and the daemon's own loop runs on
//! it, jumping from one deadline to the next: ten minutes of outage pass in well
//! under a second (a few seconds for the timeouts, which are real).

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tocsin::clock::{Clock, ManualClock, Timestamp};
use tocsin::config::{Config, EmailSettings, Secret, SmtpTls, WebhookSettings};
use tocsin::daemon::{Daemon, LoopHandle};
use tocsin::escalation::{Level, Policy, Routing, Target};

const T0: i64 = 1_800_000_000;
const OUTAGE: Duration = Duration::from_secs(10 * 60);
/// The webhook timeout: short, so a hanging receiver costs little real time.
const TIMEOUT: Duration = Duration::from_millis(300);

/// How the paging webhook fails while it is down.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Answers with this status.
    Status(u16),
    /// Accepts the request and never answers in time.
    Hang,
    /// Nothing listens: connection refused.
    Refused,
}

/// One request a fake receiver saw: when (injected time), the key, its answer.
#[derive(Clone, Debug)]
struct Attempt {
    at: Timestamp,
    key: String,
    status: u16,
}

/// A fake webhook receiver that fails as told until `down_until`, then answers 200.
#[derive(Clone)]
struct Fake {
    clock: ManualClock,
    fault: Option<Fault>,
    down_until: Timestamp,
    attempts: Arc<Mutex<Vec<Attempt>>>,
}

impl Fake {
    async fn serve(self, listener: tokio::net::TcpListener) {
        use axum::extract::State;
        use axum::http::{HeaderMap, StatusCode};
        async fn hook(State(fake): State<Fake>, headers: HeaderMap) -> StatusCode {
            let at = fake.clock.now();
            let key = headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let down = at < fake.down_until;
            let status = match fake.fault {
                Some(Fault::Status(s)) if down => s,
                // Recorded as 0: no answer.
                Some(Fault::Hang) if down => 0,
                _ => 200,
            };
            fake.attempts
                .lock()
                .unwrap()
                .push(Attempt { at, key, status });
            if status == 0 {
                // Longer than the client waits: it gives up first.
                tokio::time::sleep(TIMEOUT * 4).await;
                return StatusCode::OK;
            }
            StatusCode::from_u16(status).unwrap()
        }
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(self);
        let _ = axum::serve(listener, app).await;
    }

    fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().unwrap().clone()
    }
}

/// A port nothing listens on (yet).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn webhook(name: &str, port: u16) -> WebhookSettings {
    WebhookSettings {
        name: name.into(),
        url: Secret::new(format!("http://127.0.0.1:{port}/hook")),
        bearer: None,
        timeout: TIMEOUT,
    }
}

/// One level (`target`, at once), falling back to the `backup` webhook.
fn config(dir: &std::path::Path, target: Target) -> Config {
    let policy = Policy {
        name: "default".into(),
        levels: vec![Level {
            after: Duration::ZERO,
            targets: vec![target],
            via: Vec::new(),
        }],
        repeat_interval: Duration::from_secs(24 * 3600),
        ack_timeout: None,
        fallback: vec![Target::Webhook("backup".into())],
        phone_severities: vec!["critical".into()],
    };
    let mut routing = Routing::console_only();
    routing.policies = BTreeMap::from([("default".into(), policy)]);
    let mut config = common::test_config(dir);
    config.routing = routing;
    config.rules.paths = Vec::new();
    config.channels.console.enabled = false;
    config
}

/// The daemon with its loop running on `clock`.
fn open(config: Config, clock: &ManualClock) -> (Daemon, LoopHandle) {
    let daemon = Daemon::open(config, Arc::new(clock.clone())).unwrap();
    let looping = daemon.spawn_loop();
    (daemon, looping)
}

async fn fire(daemon: &Daemon, clock: &ManualClock) {
    let labels = [
        ("alertname", "投稿成功率低下"),
        ("severity", "critical"),
        ("account", "acct-007"),
    ];
    common::fire_external(daemon, &labels, clock.now()).await;
}

/// Runs the daemon's loop through an outage that ends at `back`: every deadline
/// before it runs with the channel down; then, with the loop held at exactly
/// `back`, `bring_back` restores the channel before that instant's deadlines run;
/// then the loop runs on until `until`.
async fn run_through_outage(
    daemon: &Daemon,
    clock: &ManualClock,
    back: Timestamp,
    bring_back: impl AsyncFnOnce(),
    until: Timestamp,
) {
    daemon
        .run_until(clock, back - Duration::from_millis(1))
        .await;
    {
        let _held = daemon.hold().await;
        clock.set(back);
        bring_back().await;
    }
    daemon.run_until(clock, until).await;
}

/// Long enough after an outage for the last retry (backoff is capped at five
/// minutes) and the delivery.
const AFTER: Duration = Duration::from_secs(10 * 60);

async fn timeline(daemon: &Daemon) -> Vec<tocsin::alert::TimelineEntry> {
    daemon.alert("1").await.unwrap().1
}

async fn timeline_notes(daemon: &Daemon) -> Vec<String> {
    timeline(daemon)
        .await
        .into_iter()
        .map(|e| e.reason)
        .collect()
}

fn metric(daemon: &Daemon, line_start: &str) -> f64 {
    daemon
        .metrics()
        .render()
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The webhook `pager` is down with `fault` for ten minutes of injected time.
async fn webhook_outage(name: &str, fault: Fault, says: &str) {
    let t0 = Timestamp::from_secs(T0);
    let clock = ManualClock::new(t0);
    let fake = |fault| Fake {
        clock: clock.clone(),
        fault,
        down_until: t0 + OUTAGE,
        attempts: Arc::default(),
    };
    let pager = fake(Some(fault));
    let backup = fake(None);
    let backup_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backup_port = backup_listener.local_addr().unwrap().port();
    tokio::spawn(backup.clone().serve(backup_listener));
    // A refusing pager is a port nobody listens on until the outage ends.
    let pager_port = match fault {
        Fault::Refused => free_port(),
        _ => {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = l.local_addr().unwrap().port();
            tokio::spawn(pager.clone().serve(l));
            port
        }
    };

    let dir = common::daemon_dir(&format!("outage-{name}"), "");
    let mut config = config(&dir, Target::Webhook("pager".into()));
    config.channels.webhooks = vec![webhook("pager", pager_port), webhook("backup", backup_port)];
    let (daemon, looping) = open(config, &clock);
    fire(&daemon, &clock).await;
    // The answering fakes come back by themselves at `down_until`; a refusing pager
    // starts listening then.
    let bring_back = async || {
        if matches!(fault, Fault::Refused) {
            let addr = SocketAddr::from(([127, 0, 0, 1], pager_port));
            let l = tokio::net::TcpListener::bind(addr).await.unwrap();
            tokio::spawn(pager.clone().serve(l));
        }
    };
    let back = t0 + OUTAGE;
    run_through_outage(&daemon, &clock, back, bring_back, back + AFTER).await;

    // Nothing is owed any more.
    assert_eq!(metric(&daemon, "tocsin_outbox_pending "), 0.0);

    // The fallback went once, when the fifth attempt failed, under the key a page
    // to the backup would have.
    let fallback = backup.attempts();
    assert_eq!(fallback.len(), 1, "{fallback:?}");
    assert!(
        fallback[0].key.ends_with(".webhook:backup"),
        "{}",
        fallback[0].key
    );
    assert!(!fallback[0].key.contains("pager"), "{}", fallback[0].key);
    assert!(
        fallback[0].at < t0 + OUTAGE,
        "the fallback went during the outage"
    );

    // The pager: failures while down, then one success once back, one key for all.
    let attempts = pager.attempts();
    let failed = match fault {
        // A refused connection never reaches the fake; the timeline counts them.
        Fault::Refused => {
            assert_eq!(attempts.len(), 1, "{attempts:?}");
            None
        }
        _ => {
            let (down, up): (Vec<_>, Vec<_>) = attempts.iter().partition(|a| a.at < t0 + OUTAGE);
            assert_eq!(up.len(), 1, "delivered exactly once when back: {up:?}");
            assert!(
                down.iter().all(|a| a.key == up[0].key && a.status != 200),
                "{attempts:?}"
            );
            // Growing waits between attempts, capped at five minutes.
            let gaps: Vec<Duration> = attempts
                .windows(2)
                .map(|w| w[1].at.since(w[0].at))
                .collect();
            assert!(
                gaps.iter().all(|g| *g <= Duration::from_secs(300)),
                "{gaps:?}"
            );
            assert!(gaps.windows(2).all(|w| w[0] <= w[1] * 2), "{gaps:?}");
            assert!(gaps[4] >= Duration::from_secs(8), "waits grow: {gaps:?}");
            Some(down.len())
        }
    };
    let success = attempts.last().expect("the pager got the page");
    assert_eq!(success.status, 200);
    assert!(success.at >= t0 + OUTAGE);
    assert!(success.key.ends_with(".webhook:pager"), "{}", success.key);

    // The timeline tells the story, with the failure as the channel saw it.
    let notes = timeline_notes(&daemon).await;
    let failing = notes
        .iter()
        .find(|n| n.starts_with("delivery to webhook:pager failing after 5 attempt(s)"))
        .unwrap_or_else(|| panic!("no fallback note: {notes:#?}"));
    assert!(failing.contains(says), "{failing:?} should say {says:?}");
    assert!(failing.ends_with("using the fallback"), "{failing}");
    assert!(
        notes
            .contains(&"notified webhook:backup instead of webhook:pager: firing (level 1)".into()),
        "{notes:#?}"
    );
    let delivered = notes
        .iter()
        .find(|n| n.starts_with("notified webhook:pager: firing (level 1) after "))
        .unwrap_or_else(|| panic!("no delivery note: {notes:#?}"));
    let retries = metric(
        &daemon,
        "tocsin_delivery_failures_total{channel=\"webhook\",kind=\"retry\"}",
    );
    assert!(
        delivered.ends_with(&format!("after {retries} failed attempt(s)")),
        "{delivered} / {retries} retries counted"
    );
    if let Some(failed) = failed {
        assert_eq!(retries as usize, failed);
    }
    assert!(retries >= 6.0, "{retries}");
    looping.stop().await;
}

#[tokio::test]
async fn a_webhook_answering_503_for_ten_minutes_gets_the_page_when_it_returns() {
    webhook_outage("503", Fault::Status(503), "HTTP 503 Service Unavailable").await;
}

#[tokio::test]
async fn a_webhook_that_never_answers_is_timed_out_retried_and_paged_when_it_returns() {
    webhook_outage("hang", Fault::Hang, "no answer within 300ms").await;
}

#[tokio::test]
async fn a_webhook_refusing_connections_gets_the_page_when_it_listens_again() {
    webhook_outage("refused", Fault::Refused, "cannot connect").await;
}

#[tokio::test]
async fn a_webhook_refusing_for_good_is_not_retried_and_the_fallback_goes_at_once() {
    let t0 = Timestamp::from_secs(T0);
    let clock = ManualClock::new(t0);
    let fake = |fault| Fake {
        clock: clock.clone(),
        fault,
        down_until: t0 + OUTAGE * 1000,
        attempts: Arc::default(),
    };
    let (pager, backup) = (fake(Some(Fault::Status(401))), fake(None));
    let mut ports = Vec::new();
    for f in [&pager, &backup] {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        ports.push(l.local_addr().unwrap().port());
        tokio::spawn(f.clone().serve(l));
    }
    let dir = common::daemon_dir("outage-401", "");
    let mut config = config(&dir, Target::Webhook("pager".into()));
    config.channels.webhooks = vec![webhook("pager", ports[0]), webhook("backup", ports[1])];
    let (daemon, looping) = open(config, &clock);
    fire(&daemon, &clock).await;
    // Everything owed at t0, with the clock still there.
    daemon.caught_up().await;
    assert_eq!(clock.now(), t0);
    assert_eq!(pager.attempts().len(), 1);
    let backed_up: Vec<Timestamp> = backup.attempts().iter().map(|a| a.at).collect();
    assert_eq!(backed_up, [t0], "no waiting: the fallback went at once");
    // Nothing is left to retry, however long the loop runs.
    daemon.run_until(&clock, t0 + OUTAGE).await;
    assert_eq!(pager.attempts().len(), 1, "a 401 is not retried");
    assert_eq!(backup.attempts().len(), 1);
    assert_eq!(metric(&daemon, "tocsin_outbox_pending "), 0.0);
    let notes = timeline_notes(&daemon).await;
    assert!(
        notes.contains(
            &"delivery to webhook:pager failed after 1 attempt(s): webhook pager: HTTP 401 Unauthorized"
                .into()
        ),
        "{notes:#?}"
    );
    assert!(
        notes
            .contains(&"notified webhook:backup instead of webhook:pager: firing (level 1)".into())
    );
    looping.stop().await;
}

// ---------------------------------------------------------------------------------
// SMTP: Debian's python3-aiosmtpd as the server, started only after the outage.

const PYTHON: &str = "/usr/bin/python3";

/// `python3 -m aiosmtpd` storing mails in a maildir; killed when dropped.
struct Smtp {
    child: Child,
    maildir: PathBuf,
}

impl Smtp {
    /// Starts the server on `port` and waits (boundedly) until it accepts.
    fn start(port: u16, maildir: PathBuf) -> Smtp {
        let child = Command::new(PYTHON)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {PYTHON} -m aiosmtpd ({e}): CI installs python3-aiosmtpd via .ci/run"
                )
            });
        let mut smtp = Smtp { child, maildir };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return smtp;
            }
            if let Ok(Some(status)) = smtp.child.try_wait() {
                panic!("aiosmtpd exited ({status}): is python3-aiosmtpd installed?");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("aiosmtpd did not listen on {port} within 5 s");
    }

    /// The mails delivered, as raw text.
    fn mails(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn an_smtp_server_down_at_send_time_gets_the_mail_when_it_returns() {
    let t0 = Timestamp::from_secs(T0);
    let clock = ManualClock::new(t0);
    let down_for = Duration::from_secs(3 * 60);
    let backup = Fake {
        clock: clock.clone(),
        fault: None,
        down_until: t0,
        attempts: Arc::default(),
    };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backup_port = l.local_addr().unwrap().port();
    tokio::spawn(backup.clone().serve(l));
    let smtp_port = free_port();
    let dir = common::daemon_dir("outage-smtp", "");
    let mut config = config(&dir, Target::Email("oncall@example.com".into()));
    config.channels.email = Some(EmailSettings {
        host: "127.0.0.1".into(),
        port: smtp_port,
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: "tocsin <alerts@example.com>".into(),
        message_id_domain: "tocsin.example.com".into(),
        timeout: Duration::from_secs(5),
        alerts_url: None,
    });
    config.channels.webhooks = vec![webhook("backup", backup_port)];
    let (daemon, looping) = open(config, &clock);
    fire(&daemon, &clock).await;
    let mut smtp: Option<Smtp> = None;
    let maildir = dir.join("maildir");
    let back = t0 + down_for;
    let bring_back = async || smtp = Some(Smtp::start(smtp_port, maildir.clone()));
    run_through_outage(&daemon, &clock, back, bring_back, back + AFTER).await;
    let smtp = smtp.expect("the server came back");
    let mails = smtp.mails();
    assert_eq!(
        mails.len(),
        1,
        "one mail, delivered once the server was back"
    );
    assert!(mails[0].contains("oncall@example.com"), "{}", mails[0]);
    let delivered = timeline(&daemon)
        .await
        .into_iter()
        .find(|e| {
            e.reason
                .starts_with("notified email:oncall@example.com: firing (level 1) after ")
        })
        .map(|e| e.at);
    assert!(
        delivered.is_some_and(|at| at >= back),
        "delivered at {delivered:?}, the server came back at {back:?}"
    );
    // While it was down: five failures, then the fallback webhook.
    assert_eq!(backup.attempts().len(), 1);
    let notes = timeline_notes(&daemon).await;
    let failing = notes
        .iter()
        .find(|n| n.starts_with("delivery to email:oncall@example.com failing after 5 attempt(s)"))
        .unwrap_or_else(|| panic!("{notes:#?}"));
    assert!(failing.ends_with("using the fallback"), "{failing}");
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("notified email:oncall@example.com: firing (level 1) after ")),
        "{notes:#?}"
    );
    assert_eq!(metric(&daemon, "tocsin_outbox_pending "), 0.0);
    looping.stop().await;
}
