//! Escalation tests: alerts firing, acks and resolves at given times, run through
//! the real daemon and its own loop (routing, policies, on-call, maintenance
//! windows, outbox, deadlines) on a pinned clock against a config file, with every
//! channel recording instead of sending. Time jumps from one deadline to the next,
//! so every notification happens at exactly its time. The expected notifications
//! (when, why, which level, to whom) must match exactly, so a policy change is
//! proven in the pull request that makes it.
//!
//! ```yaml
//! config: ../tocsin.seed.toml        # relative to this file; omitted: the default
//! start: 2026-11-30T10:00:00+09:00   # the pinned clock (a Monday morning)
//! escalation_tests:
//!   - name: nobody acks
//!     alerts:
//!       - at: 0m
//!         labels: { alertname: 投稿成功率低下, severity: critical }
//!     actions:
//!       - { at: 20m, ack: 1, by: tanaka }
//!     until: 90m
//!     expect:
//!       - { at: 0m, level: 1, to: [ "slack:#alerts-critical", "email:tanaka@example.com" ] }
//!       - { at: 20m, reason: acknowledged, to: [ "slack:#alerts-critical" ] }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{FileReport, GroupReport, duration};
use crate::alert::{Event, External};
use crate::clock::{Clock, ManualClock, Timestamp};
use crate::config::Config;
use crate::daemon::{Daemon, OpError};
use crate::engine::ExternalAlert;
use crate::labels::Labels;
use crate::notify::Channels;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationFile {
    #[serde(default)]
    pub config: Option<String>,
    /// RFC 3339; default 2026-01-05T00:00:00Z (a Monday).
    #[serde(default)]
    pub start: Option<String>,
    /// Values for the `${VAR}`s of the config. Unset ones that are not here get a
    /// placeholder: channels record, so no real secret is needed.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub escalation_tests: Vec<EscalationTest>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationTest {
    #[serde(default)]
    pub name: Option<String>,
    /// Overrides the file's `start` (RFC 3339).
    #[serde(default)]
    pub start: Option<String>,
    pub alerts: Vec<AlertAt>,
    #[serde(default)]
    pub actions: Vec<ActionAt>,
    /// How long to run after the start.
    pub until: String,
    pub expect: Vec<Expected>,
}

/// An alert that starts firing at `at` (and stops at `resolve_at`, if given), as
/// an Alertmanager or Prometheus would send it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertAt {
    pub at: String,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub resolve_at: Option<String>,
}

/// A person acting on incident N at `at`: exactly one of ack, unack, resolve.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionAt {
    pub at: String,
    #[serde(default)]
    pub ack: Option<u64>,
    #[serde(default)]
    pub unack: Option<u64>,
    #[serde(default)]
    pub resolve: Option<u64>,
    pub by: String,
}

/// Notifications expected at `at`: why (default firing), from which level
/// (required for firing), and every address reached.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    pub at: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub level: Option<u32>,
    pub to: Vec<String>,
}

/// One notification moment: (time since start, reason, level).
type Moment = (Duration, String, u32);

/// Whether a YAML document is an escalation test file.
pub fn is_escalation_file(text: &str) -> bool {
    serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text)
        .ok()
        .and_then(|v| v.get("escalation_tests").cloned())
        .is_some()
}

pub fn run_file(path: &Path, text: &str) -> FileReport {
    let mut report = FileReport {
        path: path.to_path_buf(),
        error: None,
        groups: Vec::new(),
    };
    let file: EscalationFile = match serde_yaml_ng::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            report.error = Some(format!("{}: {e}", path.display()));
            return report;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            report.error = Some(format!("cannot start a runtime: {e}"));
            return report;
        }
    };
    let setup = (|| -> Result<(Config, Timestamp), String> {
        let config = config(path, &file)?;
        let start = match &file.start {
            Some(s) => rfc3339(s)?,
            None => Timestamp::from_secs(1_767_571_200), // 2026-01-05T00:00:00Z
        };
        Ok((config, start))
    })();
    let (config, start) = match setup {
        Ok(s) => s,
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    };
    for (i, test) in file.escalation_tests.iter().enumerate() {
        let name = test
            .name
            .clone()
            .unwrap_or_else(|| format!("test #{}", i + 1));
        let started = std::time::Instant::now();
        let scratch = std::env::temp_dir().join(format!("tocsin-test-{}", uuid::Uuid::new_v4()));
        let mut c = config.clone();
        c.storage.path = scratch.join("tocsin.redb");
        let start = match &test.start {
            Some(t) => rfc3339(t),
            None => Ok(start),
        };
        let failures = start
            .and_then(|start| runtime.block_on(run_test(test, c, start)))
            .unwrap_or_else(|e| vec![e]);
        let _ = std::fs::remove_dir_all(&scratch);
        report.groups.push(GroupReport {
            name,
            failures,
            duration: started.elapsed(),
        });
    }
    report
}

fn rfc3339(s: &str) -> Result<Timestamp, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| Timestamp(t.timestamp_millis()))
        .map_err(|e| format!("start `{s}`: {e}"))
}

/// The test's config, with placeholders for secrets: the channels record, so no
/// secret is needed to test a policy.
fn config(path: &Path, file: &EscalationFile) -> Result<Config, String> {
    let config = match &file.config {
        None => Config::default(),
        Some(c) => {
            let p = path.parent().unwrap_or(Path::new(".")).join(c);
            let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            let env = |name: &str| {
                file.env
                    .get(name)
                    .cloned()
                    .or_else(|| std::env::var(name).ok())
                    .or_else(|| Some(format!("placeholder-for-{name}")))
            };
            Config::from_str_with_env(&text, &p, &env).map_err(|e| e.to_string())?
        }
    };
    let mut config = config;
    // Alerts are injected; the test is about what happens after they fire.
    config.rules.paths = Vec::new();
    config.channels.console.enabled = false;
    Ok(config)
}

enum Step<'a> {
    Fire(&'a AlertAt),
    Clear(&'a AlertAt),
    Act(&'a ActionAt),
}

async fn run_test(
    test: &EscalationTest,
    config: Config,
    start: Timestamp,
) -> Result<Vec<String>, String> {
    let until = duration(&test.until, "until")?;
    let mut events: Vec<(Duration, Step<'_>)> = Vec::new();
    for a in &test.alerts {
        events.push((duration(&a.at, "at")?, Step::Fire(a)));
        if let Some(r) = &a.resolve_at {
            events.push((duration(r, "resolve_at")?, Step::Clear(a)));
        }
    }
    for a in &test.actions {
        let n = [a.ack, a.unack, a.resolve].iter().flatten().count();
        if n != 1 {
            return Err(format!(
                "action at {}: give exactly one of ack, unack, resolve",
                a.at
            ));
        }
        events.push((duration(&a.at, "at")?, Step::Act(a)));
    }
    events.sort_by_key(|(t, _)| *t);
    let mut expected: BTreeMap<Moment, BTreeSet<String>> = BTreeMap::new();
    for e in &test.expect {
        let reason = e.reason.clone().unwrap_or_else(|| "firing".into());
        let level = match (e.level, reason.as_str()) {
            (Some(l), _) => l,
            (None, "firing") => {
                return Err(format!("expect at {}: firing needs a level", e.at));
            }
            (None, _) => 0,
        };
        expected
            .entry((duration(&e.at, "at")?, reason, level))
            .or_default()
            .extend(e.to.iter().cloned());
    }

    let clock = ManualClock::new(start);
    let (channels, recorder) = Channels::recording(Arc::new(clock.clone()));
    let daemon = Daemon::open_with(config, Arc::new(clock.clone()), channels, None)
        .map_err(|e| e.to_string())?;
    // The daemon's own loop keeps every deadline; the clock jumps from one to the
    // next, and each event happens at its time in between.
    let looping = daemon.spawn_loop();
    for (at, step) in &events {
        // What a person or a sender does at an instant comes before the deadlines
        // of that instant: an ack at 15m stops a level due at 15m.
        let t = start + *at;
        daemon.run_until(&clock, t - Duration::from_millis(1)).await;
        let held = daemon.hold().await;
        clock.set(t.max(clock.now()));
        apply(&daemon, step, t).await?;
        drop(held);
    }
    daemon.run_until(&clock, start + until).await;
    looping.stop().await;
    let mut got: BTreeMap<Moment, BTreeSet<String>> = BTreeMap::new();
    for r in recorder
        .take()
        .into_iter()
        .filter(|r| r.at <= start + until)
    {
        let m = &r.message;
        got.entry((r.at.since(start), m.reason.name().to_string(), m.level))
            .or_default()
            .insert(r.address.to_string());
    }
    Ok(compare(&expected, &got))
}

async fn apply(daemon: &Daemon, step: &Step<'_>, now: Timestamp) -> Result<(), String> {
    let external = |a: &AlertAt, firing: bool| ExternalAlert {
        labels: Labels::from_pairs(a.labels.clone()),
        firing,
        external: External {
            // The occurrence started when the test says it fired.
            starts_at: now,
            ends_at: None,
            annotations: a.annotations.clone().into(),
            generator_url: None,
            external_url: None,
            group_key: None,
        },
    };
    let result = match step {
        Step::Fire(a) => {
            let alert = external(a, true);
            daemon
                .receive_external("test", vec![alert])
                .await
                .map(|_| ())
        }
        Step::Clear(a) => {
            // The same occurrence (its start time as held) stops firing.
            let mut alert = external(a, false);
            let fp = alert.labels.fingerprint();
            if let Some(held) = daemon
                .alerts()
                .await
                .into_iter()
                .find(|v| v.alert.fingerprint == fp)
                .and_then(|v| v.alert.external)
            {
                alert.external.starts_at = held.starts_at;
            }
            daemon
                .receive_external("test", vec![alert])
                .await
                .map(|_| ())
        }
        Step::Act(a) => {
            let (id, event) = if let Some(n) = a.ack {
                (
                    n,
                    Event::Ack {
                        actor: a.by.clone(),
                        via: "test".into(),
                        note: None,
                    },
                )
            } else if let Some(n) = a.unack {
                (
                    n,
                    Event::Unack {
                        actor: a.by.clone(),
                    },
                )
            } else {
                (
                    a.resolve.unwrap_or_default(),
                    Event::Resolve {
                        actor: a.by.clone(),
                        note: None,
                    },
                )
            };
            daemon
                .act(&id.to_string(), event)
                .await
                .map(|_| ())
                .map_err(|e| OpError::Invalid(format!("action at {}: {e}", a.at)))
        }
    };
    result.map_err(|e| e.to_string())
}

/// Every difference, as lines a person can act on.
fn compare(
    expected: &BTreeMap<Moment, BTreeSet<String>>,
    got: &BTreeMap<Moment, BTreeSet<String>>,
) -> Vec<String> {
    let show = |(t, reason, level): &Moment, to: &BTreeSet<String>| {
        let level = if *level > 0 {
            format!(" level {level}")
        } else {
            String::new()
        };
        let to: Vec<&str> = to.iter().map(String::as_str).collect();
        format!(
            "at {} {reason}{level} → {}",
            humantime::format_duration(*t),
            to.join(", ")
        )
    };
    let mut out = Vec::new();
    let moments: BTreeSet<&Moment> = expected.keys().chain(got.keys()).collect();
    let empty = BTreeSet::new();
    for m in moments {
        let want = expected.get(m).unwrap_or(&empty);
        let have = got.get(m).unwrap_or(&empty);
        if want == have {
            continue;
        }
        let missing: BTreeSet<String> = want.difference(have).cloned().collect();
        let extra: BTreeSet<String> = have.difference(want).cloned().collect();
        if !missing.is_empty() {
            out.push(format!("missing:    {}", show(m, &missing)));
        }
        if !extra.is_empty() {
            out.push(format!("unexpected: {}", show(m, &extra)));
        }
    }
    out
}
