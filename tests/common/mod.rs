//! Helpers shared by integration tests. Each test crate uses a part of them.
#![allow(dead_code)]

pub mod disk;
pub mod postgres;
pub mod records;
pub mod served;

use std::path::Path;
use std::process::{Command, Output};

/// Runs Debian's `promtool` in `dir`, or fails saying how CI gets it: a silently
/// skipped check would let tocsin and Prometheus drift apart unnoticed.
pub fn promtool(dir: &Path, args: &[&str]) -> Output {
    match Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run promtool ({e}); it must be on PATH for these tests. \
             CI installs it via `.ci/run` (Debian package `prometheus`)"
        ),
    }
}

/// A fresh folder for one test's daemon under the target's temp dir, with `rules`
/// written to `rules/test.rules`.
pub fn daemon_dir(name: &str, rules: &str) -> std::path::PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("rules")).unwrap();
    std::fs::write(d.join("rules/test.rules"), rules).unwrap();
    d
}

/// The config of an in-process daemon over `dir` on 127.0.0.1:0. Rules are
/// evaluated an hour apart, so tests drive time by hand (pushes evaluate at once).
/// With `TOCSIN_TEST_STORE=postgres` the state is in PostgreSQL instead of the redb
/// file (a database per `dir`): `.ci/run` runs the engine suites both ways.
pub fn test_config(dir: &Path) -> tocsin::config::Config {
    let mut c = tocsin::config::Config::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.storage.path = dir.join("data/tocsin.redb");
    if let Some(url) = postgres::for_dir(dir) {
        c.storage.backend = tocsin::config::Backend::Postgres {
            url: tocsin::config::Secret::new(url),
        };
    }
    c.rules.paths = vec![dir.join("rules")];
    c.rules.evaluation_interval = std::time::Duration::from_secs(3600);
    c
}

/// Fires an alert as Alertmanager or Prometheus sends one (`labels`, starting at
/// `at`, no end) and waits until it is committed.
pub async fn fire_external(
    daemon: &tocsin::daemon::Daemon,
    labels: &[(&str, &str)],
    at: tocsin::clock::Timestamp,
) {
    let alert = tocsin::engine::ExternalAlert {
        labels: tocsin::labels::Labels::from_pairs(labels.iter().copied()),
        firing: true,
        external: tocsin::alert::External {
            starts_at: at,
            ends_at: None,
            annotations: Default::default(),
            generator_url: None,
            external_url: None,
            group_key: None,
        },
    };
    daemon.receive_external("test", vec![alert]).await.unwrap();
}

/// The config of a child in the tests that kill tocsin processes: every alert pages
/// a webhook at `{receiver}/hook` at once (its first notifications grouped for
/// `group_wait`), rules evaluated every 250 ms, no console.
pub fn pager_config(
    dir: &Path,
    receiver: &str,
    group_wait: std::time::Duration,
) -> tocsin::config::Config {
    use std::time::Duration;
    use tocsin::config::{Secret, WebhookSettings};
    use tocsin::escalation::{Level, Policy, Routing, Target};
    let policy = Policy {
        name: "default".into(),
        levels: vec![Level {
            after: Duration::ZERO,
            targets: vec![Target::Webhook("pager".into())],
            via: Vec::new(),
        }],
        repeat_interval: Duration::from_secs(24 * 3600),
        ack_timeout: None,
        fallback: Vec::new(),
        phone_severities: vec!["critical".into()],
    };
    let mut routing = Routing::console_only();
    routing.policies = std::collections::BTreeMap::from([("default".into(), policy)]);
    routing.group_wait = group_wait;
    let mut config = test_config(dir);
    config.rules.evaluation_interval = Duration::from_millis(250);
    config.channels.console.enabled = false;
    config.routing = routing;
    config.channels.webhooks = vec![WebhookSettings {
        name: "pager".into(),
        url: Secret::new(format!("{receiver}/hook")),
        bearer: None,
        timeout: Duration::from_secs(2),
    }];
    config
}

/// The child side of a test that kills tocsin processes: serves `config` on the
/// real clock, prints `listening <addr>` for the parent, and stops cleanly when its
/// stdin closes (a `kill -9` never gets that far).
pub fn serve_until_stdin_closes(config: tocsin::config::Config) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let clock = std::sync::Arc::new(tocsin::clock::SystemClock);
        let running = tocsin::server::start(config, clock).await.expect("starts");
        println!("listening {}", running.addr);
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).unwrap_or(0) > 0 {}
        })
        .await;
        running.stop().await;
    });
}

/// The runner of a test binary with `harness = false` (one that re-runs itself as a
/// child process to be killed): runs each test, prints libtest-style lines, and
/// exits 1 if any failed.
pub fn run_tests(tests: &[(&str, fn())]) {
    // `cargo test --test NAME -- WORD` runs the tests whose names hold WORD.
    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let tests: Vec<_> = tests
        .iter()
        .filter(|(name, _)| words.is_empty() || words.iter().any(|w| name.contains(w.as_str())))
        .collect();
    let mut failed = 0;
    for (name, test) in &tests {
        let ok = std::panic::catch_unwind(test).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        failed += usize::from(!ok);
    }
    println!("{} passed, {failed} failed", tests.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}
