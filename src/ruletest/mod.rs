//! `tocsin test`: rule unit tests in the YAML shape of `promtool test rules`, so
//! one test file serves tocsin and, through `tocsin export prometheus`, Prometheus.

pub mod escalation;
mod expr;
pub mod notation;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::alert::State;
use crate::clock::Timestamp;
use crate::engine::Engine;
use crate::rules::{self, CheckOptions, RuleSet};
use crate::series::{Limits, Sample, SeriesStore, stale_marker};
use notation::Slot;

// Every struct refuses unknown keys, as promtool does: `alert_rule_tests:` for
// `alert_rule_test:` would otherwise be a test that checks nothing and passes.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// Paths or globs (`rules/*.rules`), relative to the test file.
    pub rule_files: Vec<String>,
    #[serde(default)]
    pub evaluation_interval: Option<String>,
    /// promtool's order of rule groups. tocsin's rules are independent of each
    /// other (no recording rules), so the order changes nothing.
    #[serde(default)]
    pub group_eval_order: Vec<String>,
    pub tests: Vec<TestGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestGroup {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub input_series: Vec<InputSeries>,
    #[serde(default)]
    pub alert_rule_test: Vec<AlertTest>,
    /// Expressions evaluated at a time, in tocsin's language (`expr.rs`).
    #[serde(default)]
    pub promql_expr_test: Vec<ExprTest>,
    /// Refused with a reason: tocsin's templates have no `$externalLabels`.
    #[serde(default)]
    pub external_labels: Option<serde_yaml_ng::Value>,
    /// Refused with a reason: tocsin's templates have no `$externalURL`.
    #[serde(default)]
    pub external_url: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSeries {
    pub series: String,
    pub values: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertTest {
    pub eval_time: String,
    pub alertname: String,
    #[serde(default)]
    pub exp_alerts: Vec<ExpectedAlert>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
pub struct ExpectedAlert {
    #[serde(default)]
    pub exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub exp_annotations: BTreeMap<String, String>,
}

/// One `promql_expr_test` case: `expr` at `eval_time` must give `exp_samples`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExprTest {
    pub expr: String,
    pub eval_time: String,
    #[serde(default)]
    pub exp_samples: Vec<ExpectedSample>,
}

/// A sample an expression must give: its labels in series notation
/// (`success_rate{account="a1"}`, `{account="a1"}` once the name is dropped).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedSample {
    #[serde(default)]
    pub labels: String,
    pub value: f64,
}

/// The outcome of one test group.
#[derive(Debug)]
pub struct GroupReport {
    pub name: String,
    /// Empty when the group passed.
    pub failures: Vec<String>,
    pub duration: Duration,
}

/// The outcome of one test file; `error` is set when it could not run at all.
#[derive(Debug)]
pub struct FileReport {
    pub path: PathBuf,
    pub error: Option<String>,
    pub groups: Vec<GroupReport>,
}

impl FileReport {
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.groups.iter().all(|g| g.failures.is_empty())
    }
}

/// Runs one test file: rule tests (its rule files, relative to it, then every
/// group) or, for a file of `escalation_tests`, escalation tests.
pub fn run_file(path: &Path, options: &CheckOptions) -> FileReport {
    if let Ok(text) = std::fs::read_to_string(path)
        && escalation::is_escalation_file(&text)
    {
        return escalation::run_file(path, &text);
    }
    let mut report = FileReport {
        path: path.to_path_buf(),
        error: None,
        groups: Vec::new(),
    };
    match load(path, options) {
        Ok((file, rules)) => {
            let default_interval = file.evaluation_interval.as_deref().unwrap_or("1m");
            for (i, group) in file.tests.iter().enumerate() {
                let name = group
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("test #{}", i + 1));
                let started = std::time::Instant::now();
                let failures =
                    run_group(group, &rules, default_interval).unwrap_or_else(|e| vec![e]);
                report.groups.push(GroupReport {
                    name,
                    failures,
                    duration: started.elapsed(),
                });
            }
        }
        Err(e) => report.error = Some(e),
    }
    report
}

/// A test file's rules: the checked set, and the sources (for `promql_expr_test`,
/// whose expressions are checked against the metrics they declare).
struct Rules {
    set: Arc<RuleSet>,
    sources: Vec<rules::SourceFile>,
    options: CheckOptions,
}

fn load(path: &Path, options: &CheckOptions) -> Result<(TestFile, Rules), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: TestFile = serde_yaml_ng::from_str(&text)
        .map_err(|e| format!("{}: {}", path.display(), with_suggestion(&e.to_string())))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let paths = rule_files(dir, &file.rule_files)?;
    let sources = rules::read_sources(&paths).map_err(|e| e.to_string())?;
    let set = rules::check_sources(&sources, options).map_err(|d| {
        format!(
            "rule files do not check:\n{}",
            rules::diagnostic::render(&sources, &d, false)
        )
    })?;
    Ok((
        file,
        Rules {
            set: Arc::new(set),
            sources,
            options: options.clone(),
        },
    ))
}

/// `rule_files` entries, relative to the test file's folder, globbed as promtool
/// globs them (`rules/*.rules`), each glob's matches sorted. A glob that matches
/// nothing is an error, where promtool only warns: a test of no rules checks nothing.
fn rule_files(dir: &Path, entries: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut paths = Vec::new();
    for entry in entries {
        let joined = dir.join(entry);
        if !entry.contains(['*', '?', '[']) {
            paths.push(joined);
            continue;
        }
        let pattern = joined.to_string_lossy().into_owned();
        let matches = glob::glob(&pattern).map_err(|e| format!("rule_files `{entry}`: {e}"))?;
        let mut found: Vec<PathBuf> = matches
            .collect::<Result<_, _>>()
            .map_err(|e| format!("rule_files `{entry}`: {e}"))?;
        if found.is_empty() {
            return Err(format!(
                "rule_files `{entry}` matches no file in {}",
                dir.display()
            ));
        }
        found.sort();
        paths.extend(found);
    }
    Ok(paths)
}

/// serde's `unknown field `x`, expected one of `a`, `b`` with the closest expected
/// field named: `alert_rule_tests` → did you mean `alert_rule_test`?
fn with_suggestion(message: &str) -> String {
    let Some(rest) = message.split_once("unknown field `").map(|(_, r)| r) else {
        return message.to_string();
    };
    let Some((field, expected)) = rest.split_once('`') else {
        return message.to_string();
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    match rules::suggest(field, candidates) {
        Some(s) => format!("{message} (did you mean `{s}`?)"),
        None => message.to_string(),
    }
}

fn duration(text: &str, what: &str) -> Result<Duration, String> {
    crate::duration::parse(text).map_err(|e| format!("{what}: {e}"))
}

fn run_group(
    group: &TestGroup,
    rules: &Rules,
    default_interval: &str,
) -> Result<Vec<String>, String> {
    if group.external_labels.is_some() || group.external_url.is_some() {
        return Err(
            "external_labels and external_url are not supported: tocsin's templates have no $externalLabels or $externalURL".into(),
        );
    }
    let eval_interval = duration(default_interval, "evaluation_interval")?;
    let interval = match &group.interval {
        Some(i) => duration(i, "interval")?,
        None => eval_interval,
    };
    if eval_interval.is_zero() || interval.is_zero() {
        return Err("intervals must be above zero".into());
    }
    let mut series = SeriesStore::new(Limits {
        // A test reads everything it was given: keep it all.
        retention: Duration::from_secs(u32::MAX as u64),
        max_samples_per_series: usize::MAX,
        ..Limits::default()
    });
    for input in &group.input_series {
        let (metric, labels) = notation::parse_series(&input.series)?;
        let slots = notation::parse_values(&input.values)?;
        for (k, slot) in slots.into_iter().enumerate() {
            let t = Timestamp::from_secs(0) + interval * k as u32;
            let v = match slot {
                Slot::Value(v) => v,
                Slot::Stale => stale_marker(),
                Slot::Missing => continue,
            };
            series
                .append(&metric, &labels, Sample { t, v })
                .map_err(|e| e.to_string())?;
        }
    }
    // Expressions are read before anything runs: one tocsin cannot read fails the
    // group whole, naming what it does not support.
    let expressions = group
        .promql_expr_test
        .iter()
        .map(|t| expr::Check::new(t, &rules.sources, &rules.options))
        .collect::<Result<Vec<_>, _>>()?;
    let mut checks: Vec<(Duration, &AlertTest)> = Vec::new();
    for t in &group.alert_rule_test {
        checks.push((duration(&t.eval_time, "eval_time")?, t));
        if !rules.set.alerts.iter().any(|a| a.name == t.alertname) {
            return Err(format!(
                "alertname `{}` is not a rule in the rule files",
                t.alertname
            ));
        }
    }
    checks.sort_by_key(|(t, _)| *t);
    let end = checks.last().map_or(Duration::ZERO, |(t, _)| *t);

    // Evaluate at every evaluation interval, as promtool does; a check at eval_time
    // sees the evaluation at the last step at or before it.
    let mut engine = Engine::new(rules.set.clone(), Default::default(), 1);
    let mut failures = Vec::new();
    for check in &expressions {
        failures.extend(check.run(&series));
    }
    let mut next = 0;
    let mut step = Duration::ZERO;
    while step <= end {
        let now = Timestamp::from_secs(0) + step;
        engine.evaluate(&series, now);
        while next < checks.len() && checks[next].0 < step + eval_interval {
            let (at, test) = checks[next];
            let got = firing(&engine, &test.alertname);
            let mut want: Vec<ExpectedAlert> = test
                .exp_alerts
                .iter()
                .map(|e| {
                    let mut e = e.clone();
                    e.exp_labels
                        .insert("alertname".into(), test.alertname.clone());
                    e
                })
                .collect();
            want.sort();
            if got != want {
                failures.push(describe_failure(&test.alertname, at, &want, &got));
            }
            next += 1;
        }
        step += eval_interval;
    }
    Ok(failures)
}

/// The firing alerts of one rule, with labels and rendered annotations, sorted.
fn firing(engine: &Engine, alertname: &str) -> Vec<ExpectedAlert> {
    let mut got: Vec<ExpectedAlert> = engine
        .alerts()
        .filter(|a| a.rule == alertname && a.state == State::Firing)
        .map(|a| ExpectedAlert {
            exp_labels: a.labels.to_map(),
            exp_annotations: engine.annotations(a),
        })
        .collect();
    got.sort();
    got
}

fn describe_failure(
    alertname: &str,
    at: Duration,
    want: &[ExpectedAlert],
    got: &[ExpectedAlert],
) -> String {
    let mut s = format!(
        "alertname: {alertname}, time: {},\n",
        humantime::format_duration(at)
    );
    for (title, alerts) in [("exp", want), ("got", got)] {
        let _ = writeln!(
            s,
            "    {title}:{}",
            if alerts.is_empty() { " []" } else { "" }
        );
        for (i, a) in alerts.iter().enumerate() {
            let _ = writeln!(s, "        {i}:");
            let _ = writeln!(s, "          Labels:{}", braces(&a.exp_labels));
            let _ = writeln!(s, "          Annotations:{}", braces(&a.exp_annotations));
        }
    }
    s
}

fn braces(m: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// Writes JUnit XML for CI systems: one suite per file, one case per group.
pub fn junit(reports: &[FileReport]) -> Result<String, String> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut report = Report::new("tocsin test");
    for file in reports {
        let mut suite = TestSuite::new(file.path.display().to_string());
        if let Some(e) = &file.error {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status.set_message(e.as_str());
            suite.add_test_case(TestCase::new("load", status));
        }
        for g in &file.groups {
            let status = if g.failures.is_empty() {
                TestCaseStatus::success()
            } else {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(format!("{} alert check(s) failed", g.failures.len()));
                s.set_description(g.failures.join("\n"));
                s
            };
            let mut case = TestCase::new(g.name.as_str(), status);
            case.set_time(g.duration);
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report.to_string().map_err(|e| e.to_string())
}
