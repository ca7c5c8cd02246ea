//! The real binary, end to end: `tocsin serve --config` as a child process on
//! 127.0.0.1, a sample pushed with HTTP, the console channel's line read from its
//! stdout, a broken rules file kept out, and a graceful stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

const RULES: &str = "metric cpu_usage gauge ratio\n\nalert \"CPU使用率異常\" {\n  when cpu_usage > 90%\n  severity critical\n  annotations {\n    summary = \"{{ labels.host }} の CPU 使用率が {{ value }} です\"\n  }\n}\n";

#[test]
fn serve_pushes_fire_on_the_console_and_stop_gracefully() {
    let d = common::daemon_dir("e2e", RULES);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        d.join("tocsin.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = \"{}\"\n[rules]\npaths = [\"{}\"]\n",
            d.join("data/tocsin.redb").display(),
            d.join("rules").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["serve", "--config"])
        .arg(d.join("tocsin.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Console lines arrive on a channel so every wait below is bounded.
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let base = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = tocsin::tls::http_client().build().unwrap();
        let started = Instant::now();
        while http.get(format!("{base}/healthz")).send().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "tocsin serve did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let push = |v: f64| {
            let body = serde_json::json!({ "samples": [{ "name": "cpu_usage", "labels": { "host": "bot-1" }, "value": v }] });
            http.post(format!("{base}/api/v1/samples")).json(&body).send()
        };
        assert!(push(0.97).await.unwrap().status().is_success());
        let line = rx.recv_timeout(Duration::from_secs(10)).expect("a console line");
        assert_eq!(line, "FIRING #1 CPU使用率異常 [critical] {host=\"bot-1\"} — bot-1 の CPU 使用率が 97% です");

        // A broken rules file is kept out; the running rule still resolves the alert.
        std::fs::write(d.join("rules/broken.rules"), "alert \"x\" {\n  when\n}\n").unwrap();
        let started = Instant::now();
        loop {
            let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
            if metrics.lines().any(|l| l == "tocsin_rules_last_reload_success 0") {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "the broken file was not noticed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(push(0.5).await.unwrap().status().is_success());
        let line = rx.recv_timeout(Duration::from_secs(10)).expect("a console line");
        assert!(line.starts_with("RESOLVED #1 CPU使用率異常"), "{line}");
    });

    // SIGTERM: a graceful stop, exit 0.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no graceful stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

/// Runs `tocsin serve --config FILE` with stderr redirected to `log` (not a
/// terminal), lets `while_up` talk to it, stops it with SIGTERM, and returns its log.
fn serve_logged(
    config: &std::path::Path,
    port: u16,
    log: &std::path::Path,
    while_up: impl FnOnce(&str),
) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["serve", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "tocsin serve did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    while_up(&base);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no graceful stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::read_to_string(log).unwrap()
}

/// The line of `log` that has `message` and every one of `fields`.
fn line_with<'a>(log: &'a str, message: &str, fields: &[&str]) -> &'a str {
    log.lines()
        .find(|l| l.contains(message) && fields.iter().all(|f| l.contains(f)))
        .unwrap_or_else(|| panic!("no `{message}` line with {fields:?} in:\n{log}"))
}

#[test]
fn serve_logs_what_it_runs_what_it_recovered_each_delivery_and_its_stop() {
    let d = common::daemon_dir("e2e-logs", RULES);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = d.join("tocsin.toml");
    let data = d.join("data/tocsin.redb");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = \"{}\"\n[rules]\npaths = [\"{}\"]\n",
            data.display(),
            d.join("rules").display()
        ),
    )
    .unwrap();
    let first = serve_logged(&config, port, &d.join("first.log"), |base| {
        let body = serde_json::json!({ "samples": [{ "name": "cpu_usage", "labels": { "host": "bot-1" }, "value": 0.97 }] });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sent = rt.block_on(async {
            let http = tocsin::tls::http_client().build().unwrap();
            http.post(format!("{base}/api/v1/samples"))
                .json(&body)
                .send()
                .await
        });
        assert!(sent.unwrap().status().is_success());
        // The console line is delivered by the loop: wait for its log line, bounded.
        let started = Instant::now();
        while !std::fs::read_to_string(d.join("first.log"))
            .unwrap()
            .contains(" delivered ")
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no delivery logged"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    // A redirected stderr gets no colour codes, and optional fields print as values.
    assert!(!first.contains('\u{1b}'), "{first}");
    assert!(!first.contains("Some("), "{first}");
    line_with(
        &first,
        "tocsin started",
        &[&format!("config={}", config.display())],
    );
    line_with(&first, "rules loaded", &["rules=1", "files=", "test.rules"]);
    line_with(
        &first,
        "state opened",
        &[&format!("path={}", data.display()), "alerts=0", "owed=0"],
    );
    line_with(&first, "channels enabled", &["channels=console"]);
    line_with(&first, "notification", &["incident=1 ", "reason=firing"]);
    line_with(
        &first,
        "delivered",
        &[
            "address=console",
            "reason=firing",
            "level=1",
            "alerts=#1",
            "key=",
        ],
    );
    line_with(&first, "stopping", &[]);
    line_with(&first, "tocsin stopped", &["owed=0"]);

    // A restart says what it recovered.
    let second = serve_logged(&config, port, &d.join("second.log"), |_| {});
    line_with(
        &second,
        "state opened",
        &["alerts=1", "firing=1", "acknowledged=0", "owed=0"],
    );
}
