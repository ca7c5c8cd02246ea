//! The CLI client commands against a daemon running in-process on 127.0.0.1:0.

use std::process::Output;
use std::sync::Arc;

use serde_json::json;
use tocsin::clock::{ManualClock, Timestamp};
use tocsin::config::{Secret, Token};
use tocsin::server::{Running, start};

mod common;

const RULES: &str =
    "alert \"異常API呼び出し\" {\n  when unknown_api_calls > 0\n  severity critical\n}\n";

async fn daemon(name: &str, tokens: Vec<Token>) -> Running {
    let d = common::daemon_dir(&format!("client-{name}"), RULES);
    let mut config = common::test_config(&d);
    config.tokens = tokens;
    let r = start(
        config,
        Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000))),
    )
    .await
    .unwrap();
    let body = json!({ "samples": [{ "name": "unknown_api_calls", "labels": { "host": "bot-1" }, "value": 1 }] });
    let mut req = tocsin::tls::http_client()
        .build()
        .unwrap()
        .post(format!("http://{}/api/v1/samples", r.addr))
        .json(&body);
    if let Some(t) = r.daemon.config().tokens.first() {
        req = req.bearer_auth(t.token.expose());
    }
    assert!(req.send().await.unwrap().status().is_success());
    r
}

/// Runs the binary (off the async workers, which serve the daemon).
async fn tocsin(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args(&args)
            .env_remove("TOCSIN_TOKEN")
            .env_remove("TOCSIN_SERVER")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn args(r: &Running, words: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    v.push("--server".into());
    v.push(format!("http://{}", r.addr));
    v
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn list_ack_show_resolve_and_silence() {
    let r = daemon("flow", vec![]).await;
    let o = tocsin(args(&r, &["alerts"])).await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let table = out(&o);
    assert!(
        table.lines().nth(1).is_some_and(|l| l.starts_with("#1")
            && l.contains("firing")
            && l.contains("異常API呼び出し")
            && l.contains("host=bot-1")),
        "{table}"
    );

    let o = tocsin(args(
        &r,
        &["ack", "1", "--actor", "alice", "--note", "looking"],
    ))
    .await;
    assert_eq!(
        out(&o),
        "#1 異常API呼び出し acknowledged by alice\n",
        "{}",
        err(&o)
    );
    let o = tocsin(args(&r, &["alert", "1"])).await;
    assert!(out(&o).contains("-> acknowledged by alice"), "{}", out(&o));
    // The ack's note is shown, on the ack and on its timeline entry.
    assert!(
        out(&o).contains("\n  acked by alice via http at ")
            && out(&o).contains(": looking\n")
            && out(&o).contains("acked by alice via http — looking\n"),
        "{}",
        out(&o)
    );

    let o = tocsin(args(
        &r,
        &[
            "silence",
            "add",
            "host=bot-1",
            "--duration",
            "2h",
            "--comment",
            "reboot",
        ],
    ))
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let id = out(&o).trim().to_string();
    let o = tocsin(args(&r, &["silence", "list"])).await;
    assert!(
        out(&o).contains(&id) && out(&o).contains("host=bot-1") && out(&o).contains("active"),
        "{}",
        out(&o)
    );
    let o = tocsin(args(&r, &["silence", "expire", &id])).await;
    assert_eq!(out(&o), format!("{id} expired\n"));

    let o = tocsin(args(&r, &["resolve", "1"])).await;
    assert_eq!(out(&o), "#1 異常API呼び出し resolved\n", "{}", err(&o));
    let o = tocsin(args(&r, &["alerts", "--json", "--state", "resolved"])).await;
    let body: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(body["alerts"].as_array().unwrap().len(), 1);
    // The default list is what is still open; a resolved alert is counted, not listed.
    let o = tocsin(args(&r, &["alerts"])).await;
    assert_eq!(
        out(&o).lines().skip(1).collect::<Vec<_>>(),
        ["(1 resolved not shown; --all lists them)"],
        "{}",
        out(&o)
    );
    let o = tocsin(args(&r, &["alerts", "--json"])).await;
    let body: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(
        body["alerts"][0]["state"], "resolved",
        "--json is the API's answer"
    );
    let o = tocsin(args(&r, &["alerts", "--all"])).await;
    assert!(
        out(&o)
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("#1") && l.contains("resolved")),
        "{}",
        out(&o)
    );
    r.stop().await;
}

#[tokio::test]
async fn refusals_exit_1_and_an_unreachable_server_exits_2() {
    let r = daemon("errors", vec![]).await;
    let o = tocsin(args(&r, &["ack", "42"])).await;
    assert_eq!(
        (o.status.code(), err(&o)),
        (Some(1), "error: no alert with id 42\n".to_string())
    );
    // An id cannot reach another endpoint: it is one escaped path segment.
    // Unescaped, `1?x` would read alert 1 with a query string.
    let o = tocsin(args(&r, &["alert", "1?x"])).await;
    assert_eq!(
        (o.status.code(), err(&o)),
        (Some(1), "error: no alert with id 1?x\n".to_string())
    );
    let o = tocsin(args(&r, &["silence", "add", "host"])).await;
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    let addr = r.addr;
    r.stop().await;
    let o = tocsin(vec![
        "alerts".into(),
        "--server".into(),
        format!("http://{addr}"),
    ])
    .await;
    assert_eq!(o.status.code(), Some(2));
    // The cause in words and what to check, not reqwest's "error sending request".
    assert_eq!(
        err(&o),
        format!(
            "error: cannot reach http://{addr}: Connection refused (os error 111)\n\
             hint: is `tocsin serve` running there? Point --server (or TOCSIN_SERVER) at its address\n"
        )
    );
}

#[tokio::test]
async fn without_user_or_actor_the_actor_is_api() {
    let r = daemon("no-user", vec![]).await;
    let words = args(&r, &["ack", "1"]);
    let o = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args(&words)
            .env_remove("TOCSIN_TOKEN")
            .env_remove("USER")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        out(&o),
        "#1 異常API呼び出し acknowledged by api\n",
        "{}",
        err(&o)
    );
    r.stop().await;
}

/// Terminal columns at which `needle` starts in `line`.
fn column_of(line: &str, needle: &str) -> usize {
    let at = line
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} in {line}"));
    unicode_width::UnicodeWidthStr::width(&line[..at])
}

#[test]
fn the_alerts_table_lines_up_after_japanese_rule_names() {
    let body = json!({ "alerts": [
        { "id": 1, "state": "firing", "severity": "critical", "rule": "異常API呼び出し",
          "labels": { "host": "bot-1" }, "fired_at": "2027-01-15T08:00:00Z" },
        { "id": 12, "state": "acknowledged", "severity": "warning", "rule": "HighLatency",
          "labels": { "host": "bot-22" }, "fired_at": "2027-01-15T08:01:00Z" },
    ]});
    let table = tocsin::client::alerts_table(&body);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    let labels = column_of(lines[0], "LABELS");
    let since = column_of(lines[0], "SINCE");
    for line in &lines[1..] {
        assert_eq!(column_of(line, "host="), labels, "{table}");
        assert_eq!(column_of(line, "2027-"), since, "{table}");
    }
}

#[tokio::test]
async fn the_token_is_sent_and_a_wrong_one_is_refused() {
    let r = daemon(
        "token",
        vec![Token {
            name: "ops".into(),
            token: Secret::new("t0ken-ops"),
        }],
    )
    .await;
    let mut wrong = args(&r, &["ack", "1"]);
    wrong.extend(["--token".into(), "nope".into()]);
    let o = tocsin(wrong).await;
    assert_eq!(
        (o.status.code(), err(&o)),
        (
            Some(1),
            "error: missing or invalid bearer token\n".to_string()
        )
    );
    let mut right = args(&r, &["ack", "1"]);
    right.extend(["--token".into(), "t0ken-ops".into()]);
    let o = tocsin(right).await;
    assert_eq!(
        out(&o),
        "#1 異常API呼び出し acknowledged by ops\n",
        "{}",
        err(&o)
    );
    assert!(!out(&o).contains("t0ken") && !err(&o).contains("t0ken"));
    r.stop().await;
}
