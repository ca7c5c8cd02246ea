//! `tocsin demo`: a round of the simulated fleet on a manual clock trips each
//! injected incident's seed rule, escalates it, and resolves it when the incident
//! ends; and the binary itself prints the UI's URL, serves it, pages the console
//! and removes its state on SIGTERM.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use tocsin::alert::State;
use tocsin::clock::{ManualClock, Timestamp};
use tocsin::demo::{Demo, INCIDENTS, ROUND_MINUTES};

#[tokio::test]
async fn a_round_fires_escalates_and_resolves_every_incident() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("demo-round");
    let t0 = Timestamp::from_secs(1_800_000_000);
    let clock = ManualClock::new(t0);
    let demo = Demo::start(
        dir.clone(),
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(clock.clone()),
    )
    .await
    .unwrap();
    let daemon = demo.running.daemon.clone();
    // Per rule: the minute it first fired, and the minute it was seen resolved.
    let mut fired: BTreeMap<String, u32> = BTreeMap::new();
    let mut resolved: BTreeMap<String, u32> = BTreeMap::new();
    for minute in 0..ROUND_MINUTES {
        let at = t0 + Duration::from_secs(60) * minute;
        daemon.run_until(&clock, at).await;
        demo.feed(minute).await.unwrap();
        daemon.caught_up().await;
        for v in daemon.alerts().await {
            let rule = v.alert.rule.clone();
            if v.alert.state == State::Firing {
                fired.entry(rule).or_insert(minute);
            } else if v.alert.state == State::Resolved && fired.contains_key(&rule) {
                resolved.entry(rule).or_insert(minute);
            }
        }
    }
    for i in &INCIDENTS {
        let at = fired
            .get(i.rule)
            .unwrap_or_else(|| panic!("{} never fired: {fired:?}", i.rule));
        assert!(
            (i.start..i.end).contains(at),
            "{} fired at {at}, outside its incident {}..{}",
            i.rule,
            i.start,
            i.end
        );
        let done = resolved
            .get(i.rule)
            .unwrap_or_else(|| panic!("{} never resolved: {resolved:?}", i.rule));
        assert!(
            *done >= i.end,
            "{} resolved at {done}, before its incident ended",
            i.rule
        );
    }
    // Nothing else fired: the quiet fleet trips no rule.
    let expected: Vec<&str> = INCIDENTS.iter().map(|i| i.rule).collect();
    for rule in fired.keys() {
        assert!(
            expected.contains(&rule.as_str()) || rule == "メモリ使用率高",
            "{rule} fired on the quiet fleet"
        );
    }
    // Nobody acked the unknown API call within five minutes: level 2 paged.
    let (_, timeline) = daemon.alert("1").await.unwrap();
    let levels: Vec<&str> = timeline.iter().map(|e| e.reason.as_str()).collect();
    assert!(
        levels.iter().any(|r| r.contains("level 2")),
        "escalated to level 2: {levels:?}"
    );
    // The UI is up over the demo.
    let page = reqwest::get(demo.url()).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Alerts"));
    demo.stop().await;
    assert!(!dir.exists(), "the demo's state is removed");
}

#[test]
fn the_binary_prints_the_url_pages_and_cleans_up() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["demo", "--speed", "600"])
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a first line");
    let url = first
        .strip_prefix("tocsin demo: open ")
        .unwrap_or_else(|| panic!("the URL first: {first}"))
        .to_string();
    let state = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let dir = state
        .split("its state lives in ")
        .nth(1)
        .and_then(|s| s.split(" and is removed").next())
        .unwrap_or_else(|| panic!("where its state lives: {state}"))
        .to_string();
    assert!(std::path::Path::new(&dir).exists());
    // At 600x the first incident starts 0.2 s in: its page reaches the console.
    let started = Instant::now();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("a console page");
        if line.starts_with("FIRING #1 異常API呼び出し") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no page");
    }
    let body = reqwest::blocking_get(&url);
    assert!(body.contains("異常API呼び出し"), "{body}");
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
    assert!(!std::path::Path::new(&dir).exists(), "its state is removed");
    assert!(
        !std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("data")
            .exists(),
        "./data untouched"
    );
}

mod reqwest {
    pub use ::reqwest::*;

    /// The page at `url`, from a small runtime of its own.
    pub fn blocking_get(url: &str) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { get(url).await.unwrap().text().await.unwrap() })
    }
}
