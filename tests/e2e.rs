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
