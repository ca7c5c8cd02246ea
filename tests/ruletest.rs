//! `tocsin test` through the binary, and every test file it passes also run by the
//! real `promtool test rules` against `tocsin export prometheus`: one test file,
//! two engines, the same verdict. CI installs promtool via `.ci/run`; these tests
//! fail rather than skip without it.
//!
//! Fixtures are in `tests/fixtures/ruletest/`; the shipped rule tests are
//! `rules/*.test.yml`.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_yaml_ng::Value;

mod common;
use common::promtool;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    manifest_dir().join("tests/fixtures/ruletest")
}

/// A fresh directory for one test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ruletest-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tocsin<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(args)
        .output()
        .expect("run the tocsin binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stdout and stderr together, for messages and failure reports.
fn all_output(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `tocsin export prometheus RULES` into `dir/exported.yml`; returns its path.
fn export(rules: &Path, dir: &Path) -> PathBuf {
    let o = tocsin([
        OsStr::new("export"),
        OsStr::new("prometheus"),
        rules.as_os_str(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "export of {} failed:\n{}",
        rules.display(),
        all_output(&o)
    );
    let path = dir.join("exported.yml");
    std::fs::write(&path, &o.stdout).unwrap();
    path
}

fn read_yaml(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// Copies a test file next to `exported`, with its `rule_files` replaced by the
/// exported rules; returns the copy's file name (promtool runs in that folder).
fn retarget(test_file: &Path, exported: &Path) -> String {
    let mut doc = read_yaml(test_file);
    let exported_name = exported.file_name().unwrap().to_str().unwrap();
    doc.as_mapping_mut()
        .expect("a test file is a mapping")
        .insert(
            Value::from("rule_files"),
            Value::Sequence(vec![Value::from(exported_name)]),
        );
    let name = format!(
        "promtool-{}",
        test_file.file_name().unwrap().to_str().unwrap()
    );
    let dir = exported.parent().unwrap();
    std::fs::write(dir.join(&name), serde_yaml_ng::to_string(&doc).unwrap()).unwrap();
    name
}

/// Runs one test file through promtool against `exported`.
fn promtool_test(test_file: &Path, exported: &Path) -> Output {
    let name = retarget(test_file, exported);
    promtool(exported.parent().unwrap(), &["test", "rules", &name])
}

/// The test groups of a test file, in order: (name, alertnames checked).
fn groups(test_file: &Path) -> Vec<(String, Vec<String>)> {
    let doc = read_yaml(test_file);
    doc["tests"]
        .as_sequence()
        .expect("tests")
        .iter()
        .map(|g| {
            let name = g["name"]
                .as_str()
                .expect("every group is named")
                .to_string();
            let alerts = g["alert_rule_test"]
                .as_sequence()
                .map(|cases| {
                    cases
                        .iter()
                        .map(|c| c["alertname"].as_str().unwrap().to_string())
                        .collect()
                })
                .unwrap_or_default();
            (name, alerts)
        })
        .collect()
}

/// The shipped rule tests, `rules/*.test.yml`, sorted.
fn shipped_tests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(manifest_dir().join("rules"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(".test.yml")))
        .collect();
    files.sort();
    files
}

// ---------------------------------------------------------------------------------
// The shipped rule set

/// Every `rules/*.test.yml` passes in tocsin, and in promtool against the export
/// of `rules/`: tocsin evaluates the shipped rules as Prometheus does.
#[test]
fn shipped_rule_tests_pass_in_tocsin_and_in_promtool() {
    let files = shipped_tests();
    // `every_shipped_alert_is_tested` checks there is one per rules file.
    assert!(!files.is_empty(), "no rules/*.test.yml");
    let dir = scratch("shipped");
    let exported = export(&manifest_dir().join("rules"), &dir);
    // promtool takes seconds per file (it evaluates every rule at every step):
    // one thread per file.
    let failures: Vec<String> = std::thread::scope(|s| {
        let runs: Vec<_> = files
            .iter()
            .map(|file| s.spawn(|| cross_check(file, &exported)))
            .collect();
        runs.into_iter()
            .flat_map(|r| r.join().expect("cross-check thread"))
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs one test file in tocsin and in promtool; returns what went wrong.
fn cross_check(file: &Path, exported: &Path) -> Vec<String> {
    let mut failures = Vec::new();
    let o = tocsin([OsStr::new("test"), file.as_os_str()]);
    let summary = format!("{} passed, 0 failed", groups(file).len());
    if o.status.code() != Some(0) || !stdout(&o).contains(&summary) {
        failures.push(format!(
            "tocsin test {} (want exit 0 and `{summary}`):\n{}",
            file.display(),
            all_output(&o)
        ));
    }
    let o = promtool_test(file, exported);
    if !o.status.success() {
        failures.push(format!(
            "promtool test rules {} (on the export of rules/):\n{}",
            file.display(),
            all_output(&o)
        ));
    }
    failures
}

/// Each shipped rules file has its test file, and each of its alerts has a check
/// where it fires and one where it does not.
#[test]
fn every_shipped_alert_is_tested() {
    let dir = scratch("coverage");
    let export = read_yaml(&export(&manifest_dir().join("rules"), &dir));
    let mut missing = Vec::new();
    for group in export["groups"].as_sequence().expect("groups") {
        let file_stem = group["name"].as_str().expect("group name");
        let test_file = manifest_dir().join(format!("rules/{file_stem}.test.yml"));
        if !test_file.exists() {
            missing.push(format!("no {}", test_file.display()));
            continue;
        }
        // For each alertname: (checked firing, checked not firing).
        let mut seen: BTreeMap<String, (bool, bool)> = BTreeMap::new();
        let doc = read_yaml(&test_file);
        for g in doc["tests"].as_sequence().expect("tests") {
            for case in g["alert_rule_test"].as_sequence().expect("alert_rule_test") {
                let name = case["alertname"].as_str().unwrap().to_string();
                let fires = case
                    .get("exp_alerts")
                    .and_then(Value::as_sequence)
                    .is_some_and(|a| !a.is_empty());
                let e = seen.entry(name).or_default();
                if fires {
                    e.0 = true;
                } else {
                    e.1 = true;
                }
            }
        }
        let alerts: BTreeSet<&str> = group["rules"]
            .as_sequence()
            .expect("rules")
            .iter()
            .map(|r| r["alert"].as_str().expect("alert"))
            .collect();
        for alert in &alerts {
            match seen.get(*alert) {
                Some((true, true)) => {}
                Some((fires, _)) => missing.push(format!(
                    "{}: `{alert}` has no check where it {}",
                    test_file.display(),
                    if *fires { "does not fire" } else { "fires" }
                )),
                None => missing.push(format!("{}: `{alert}` is not tested", test_file.display())),
            }
        }
        for name in seen.keys() {
            if !alerts.contains(name.as_str()) {
                missing.push(format!(
                    "{}: checks `{name}`, which {file_stem}.rules does not define",
                    test_file.display()
                ));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

// ---------------------------------------------------------------------------------
// Input notation

/// `_`, `_xN`, `stale`, `axN`, `a+bxN` and `a-bxN` read as promtool reads them:
/// the fixture passes in both.
#[test]
fn input_notation_matches_promtool() {
    let file = fixtures().join("notation.test.yml");
    let o = tocsin([OsStr::new("test"), file.as_os_str()]);
    let summary = format!("{} passed, 0 failed", groups(&file).len());
    assert!(
        o.status.code() == Some(0) && stdout(&o).contains(&summary),
        "tocsin (want exit 0 and `{summary}`):\n{}",
        all_output(&o)
    );
    let dir = scratch("notation");
    let exported = export(&fixtures().join("fixture.rules"), &dir);
    let o = promtool_test(&file, &exported);
    assert!(o.status.success(), "promtool:\n{}", all_output(&o));
}

/// promtool builds `a+bxN` by adding b to a running value N times (`$1 += $2` in
/// Prometheus' generated_parser.y), so `0+0.1x10` ends at 0.9999999999999999, not
/// 1; tocsin must produce the same samples or thresholds can flip.
#[test]
fn plus_step_notation_accumulates_like_promtool() {
    let dir = scratch("accumulate");
    std::fs::copy(fixtures().join("fixture.rules"), dir.join("fixture.rules")).unwrap();
    let test = dir.join("accumulate.test.yml");
    std::fs::write(
        &test,
        r#"rule_files: [fixture.rules]
evaluation_interval: 1m
tests:
  - name: "0.1 added ten times"
    interval: 1m
    input_series:
      - series: 'level{tank="t1"}'
        values: '0+0.1x10'
    alert_rule_test:
      - eval_time: 10m
        alertname: 水位
        exp_alerts:
          - exp_labels: {tank: t1, severity: warning, team: ops}
            exp_annotations: {summary: "t1: 0.9999999999999999"}
"#,
    )
    .unwrap();
    let exported = export(&dir.join("fixture.rules"), &dir);
    let o = promtool_test(&test, &exported);
    assert!(o.status.success(), "promtool:\n{}", all_output(&o));
    let o = tocsin([OsStr::new("test"), test.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "tocsin:\n{}", all_output(&o));
}

// ---------------------------------------------------------------------------------
// Failures and reports

/// A failing check shows what was expected and what fired, labels and
/// annotations, as promtool does; exit 1. promtool fails the same file on the
/// same alert, so the failure is in the test, not in tocsin.
#[test]
fn failing_test_shows_expected_and_got_and_exits_1() {
    let file = fixtures().join("failing.test.yml");
    let o = tocsin([OsStr::new("test"), file.as_os_str()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    let labels = r#"Labels:{alertname="水位", severity="warning", tank="t1", team="ops"}"#;
    let exp = out
        .find("exp:")
        .unwrap_or_else(|| panic!("no `exp:` in\n{out}"));
    let got = out
        .find("got:")
        .unwrap_or_else(|| panic!("no `got:` in\n{out}"));
    assert!(exp < got, "{out}");
    let (exp_part, got_part) = (&out[exp..got], &out[got..]);
    assert!(exp_part.contains(labels), "{out}");
    assert!(
        exp_part.contains(r#"Annotations:{summary="t1: 6"}"#),
        "{out}"
    );
    assert!(got_part.contains(labels), "{out}");
    assert!(
        got_part.contains(r#"Annotations:{summary="t1: 5"}"#),
        "{out}"
    );
    assert!(
        out.contains("FAILED: 水位: expects a level the tank never had"),
        "{out}"
    );
    assert!(out.contains("alertname: 水位, time: 2m"), "{out}");
    assert!(out.contains("0 passed, 1 failed"), "{out}");

    let dir = scratch("failing");
    let exported = export(&fixtures().join("fixture.rules"), &dir);
    let o = promtool_test(&file, &exported);
    let out = all_output(&o);
    assert!(
        !o.status.success(),
        "promtool passed the failing fixture:\n{out}"
    );
    assert!(out.contains(r#"Annotations:{summary="t1: 5"}"#), "{out}");
}

/// `--junit FILE` writes a JUnit report: one suite per file, one case per group,
/// a failure element for the failing group only.
#[test]
fn junit_report_has_a_case_per_group_and_marks_the_failure() {
    let dir = scratch("junit");
    let report = dir.join("report.xml");
    let passing = fixtures().join("notation.test.yml");
    let failing = fixtures().join("failing.test.yml");
    let o = tocsin([
        OsStr::new("test"),
        OsStr::new("--junit"),
        report.as_os_str(),
        passing.as_os_str(),
        failing.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    let xml = std::fs::read_to_string(&report).expect("the JUnit file is written");
    assert!(xml.starts_with("<?xml"), "{xml}");
    let elements = parse_xml(&xml);

    assert_eq!(elements[0].name, "testsuites", "{xml}");
    let root = &elements[0];
    let passing_groups = groups(&passing);
    let failing_groups = groups(&failing);
    let total = passing_groups.len() + failing_groups.len();
    assert_eq!(attr(&root.attrs, "tests"), Some(total.to_string()), "{xml}");
    assert_eq!(attr(&root.attrs, "failures"), Some("1".into()), "{xml}");

    let suites: Vec<usize> = (0..elements.len())
        .filter(|&i| elements[i].name == "testsuite")
        .collect();
    assert_eq!(suites.len(), 2, "one suite per file:\n{xml}");
    for &s in &suites {
        assert_eq!(elements[s].parent, Some(0), "{xml}");
    }

    // (suite index, case name, has a <failure> child) for every testcase.
    let cases: Vec<(usize, String, bool)> = (0..elements.len())
        .filter(|&i| elements[i].name == "testcase")
        .map(|i| {
            let e = &elements[i];
            let failed = elements
                .iter()
                .any(|c| c.parent == Some(i) && c.name == "failure");
            (e.parent.unwrap(), attr(&e.attrs, "name").unwrap(), failed)
        })
        .collect();
    let want: Vec<(usize, String, bool)> = passing_groups
        .iter()
        .map(|(name, _)| (suites[0], name.clone(), false))
        .chain(
            failing_groups
                .iter()
                .map(|(name, _)| (suites[1], name.clone(), true)),
        )
        .collect();
    assert_eq!(cases, want, "{xml}");
    let failures = elements.iter().filter(|e| e.name == "failure").count();
    assert_eq!(failures, 1, "{xml}");
}

/// One XML element: its tag name, raw attribute text and parent's index.
#[derive(Debug)]
struct Element {
    name: String,
    attrs: String,
    parent: Option<usize>,
}

/// A minimal XML reader, enough to check the report is well-formed: every tag
/// closes in order, there is one root, text holds no raw `<`. Returns the elements
/// in document order.
fn parse_xml(xml: &str) -> Vec<Element> {
    let mut elements: Vec<Element> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find('<') {
        let text = &rest[..start];
        assert!(!text.contains('>'), "stray `>` in text: {text:?}");
        rest = &rest[start..];
        if let Some(after) = rest.strip_prefix("<?") {
            let end = after.find("?>").expect("unterminated <?...?>");
            rest = &after[end + 2..];
            continue;
        }
        let end = rest.find('>').expect("unterminated tag");
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let i = open
                .pop()
                .unwrap_or_else(|| panic!("`</{name}>` closes nothing"));
            assert_eq!(elements[i].name, name.trim(), "tags close out of order");
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let (name, attrs) = tag.split_once(char::is_whitespace).unwrap_or((tag, ""));
        assert!(
            !name.is_empty() && !name.contains(['<', '"', '&']),
            "bad tag name in <{tag}>"
        );
        let parent = open.last().copied();
        assert!(
            parent.is_some() || elements.is_empty(),
            "more than one root element"
        );
        elements.push(Element {
            name: name.to_string(),
            attrs: attrs.to_string(),
            parent,
        });
        if !self_closing {
            open.push(elements.len() - 1);
        }
    }
    assert!(rest.trim().is_empty(), "text after the root: {rest:?}");
    assert!(open.is_empty(), "unclosed elements");
    assert!(!elements.is_empty(), "no elements");
    elements
}

/// The value of attribute `key` in `attrs` (`key="value"`), unescaped.
fn attr(attrs: &str, key: &str) -> Option<String> {
    let mut rest = attrs;
    loop {
        let (k, after) = rest.trim_start().split_once("=\"")?;
        let end = after.find('"')?;
        if k.trim() == key {
            let v = &after[..end];
            return Some(
                v.replace("&quot;", "\"")
                    .replace("&apos;", "'")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&"),
            );
        }
        rest = &after[end + 1..];
    }
}

// ---------------------------------------------------------------------------------
// Errors

/// Runs a fixture that cannot pass; checks exit 1, the summary line, and that the
/// output names the problem.
fn assert_fails_naming(fixture: &str, needles: &[&str]) {
    let file = fixtures().join(fixture);
    let o = tocsin([OsStr::new("test"), file.as_os_str()]);
    let out = all_output(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(stdout(&o).contains("0 passed, 1 failed"), "{out}");
    for needle in needles {
        assert!(out.contains(needle), "no `{needle}` in:\n{out}");
    }
}

#[test]
fn unknown_alertname_is_an_error() {
    assert_fails_naming(
        "unknown_alert.test.yml",
        &["alertname `水位低下` is not a rule in the rule files"],
    );
}

#[test]
fn missing_rule_file_is_an_error() {
    let missing = fixtures().join("no_such_file.rules");
    assert_fails_naming(
        "missing_rule_file.test.yml",
        &["ERROR:", &missing.display().to_string()],
    );
}

#[test]
fn invalid_yaml_is_an_error() {
    let file = fixtures().join("invalid_yaml.test.yml");
    assert_fails_naming(
        "invalid_yaml.test.yml",
        &["ERROR:", &file.display().to_string(), "line 7"],
    );
}

#[test]
fn escalation_tests_run_and_report_each_difference() {
    let file = manifest_dir().join("tests/fixtures/escalation/console.test.yml");
    let out = tocsin([OsStr::new("test"), file.as_os_str()]);
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("PASS: the console hears of a firing and of its resolve"),
        "{text}"
    );
    assert!(
        text.contains("PASS: an ack is announced, and stops the repeat"),
        "{text}"
    );
    // Unacked, the default policy repeats after 4h: the test did not say so.
    assert!(
        text.contains("FAILED: a wrong expectation is reported"),
        "{text}"
    );
    assert!(
        text.contains("unexpected: at 4h firing level 1 → console"),
        "{text}"
    );
    assert!(text.contains("2 passed, 1 failed"), "{text}");
}

#[test]
fn the_seed_policy_passes_its_escalation_tests() {
    let file = manifest_dir().join("tocsin.seed.test.yml");
    let out = tocsin([OsStr::new("test"), file.as_os_str()]);
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("5 passed, 0 failed"), "{text}");
}

// ---------------------------------------------------------------------------------
// What promtool accepts and refuses, tocsin accepts and refuses

/// Writes `test` (a test file over `rule_files`) into a scratch folder with
/// fixture.rules and its export, and returns (tocsin's run, promtool's run): the
/// same file, with `RULES` in it replaced by `fixture.rules` for tocsin and by
/// `exported.yml` for promtool.
fn both(name: &str, test: &str, tocsin_rules: &str, promtool_rules: &str) -> (Output, Output) {
    let dir = scratch(name);
    std::fs::copy(fixtures().join("fixture.rules"), dir.join("fixture.rules")).unwrap();
    export(&dir.join("fixture.rules"), &dir);
    let ours = dir.join("tocsin.test.yml");
    std::fs::write(&ours, test.replace("RULES", tocsin_rules)).unwrap();
    std::fs::write(
        dir.join("promtool.test.yml"),
        test.replace("RULES", promtool_rules),
    )
    .unwrap();
    let o = tocsin([OsStr::new("test"), ours.as_os_str()]);
    let p = promtool(&dir, &["test", "rules", "promtool.test.yml"]);
    (o, p)
}

/// A misspelt key is refused, naming the key and the one meant, as promtool
/// refuses it; it is never a test that checks nothing and passes.
#[test]
fn unknown_keys_are_refused_like_promtool_refuses_them() {
    for (typo, key, meant) in [
        ("alert_rule_test:", "alert_rule_tests:", "alert_rule_test"),
        ("exp_alerts:", "exp_alert:", "exp_alerts"),
        ("exp_annotations:", "exp_anotations:", "exp_annotations"),
    ] {
        let test = r#"rule_files: [RULES]
tests:
  - interval: 1m
    input_series:
      - series: 'level{tank="t1"}'
        values: '1 2 3'
    alert_rule_test:
      - eval_time: 2m
        alertname: 水位
        exp_alerts:
          - exp_labels: {tank: t1, severity: warning, team: ops}
            exp_annotations: {summary: "t1: 3"}
"#
        .replacen(typo, key, 1);
        let (o, p) = both("unknown-key", &test, "fixture.rules", "exported.yml");
        let field = key.trim_end_matches(':');
        let out = all_output(&o);
        assert_eq!(o.status.code(), Some(1), "{out}");
        assert!(
            out.contains(&format!("unknown field `{field}`"))
                && out.contains(&format!("did you mean `{meant}`?")),
            "{out}"
        );
        assert!(out.contains("0 passed, 1 failed"), "{out}");
        let promtool_out = all_output(&p);
        assert!(!p.status.success(), "promtool took {key}\n{promtool_out}");
        assert!(
            promtool_out.contains(&format!("field {field} not found")),
            "{promtool_out}"
        );
    }
}

/// `rule_files` takes globs, relative to the test file, as promtool's does; a glob
/// that matches nothing is an error (promtool only warns: a test of no rules
/// checks nothing).
#[test]
fn rule_files_take_globs_like_promtool() {
    let test = r#"rule_files: [RULES]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'level{tank="t1"}'
        values: '1 2 3'
    alert_rule_test:
      - eval_time: 2m
        alertname: 水位
        exp_alerts:
          - exp_labels: {tank: t1, severity: warning, team: ops}
            exp_annotations: {summary: "t1: 3"}
"#;
    let (o, p) = both("glob", test, "'*.rules'", "'export*.yml'");
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    assert!(
        stdout(&o).contains("1 passed, 0 failed"),
        "{}",
        all_output(&o)
    );
    assert!(p.status.success(), "promtool:\n{}", all_output(&p));

    let (o, _) = both("glob-none", test, "'rules/*.rules'", "'export*.yml'");
    let out = all_output(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("rule_files `rules/*.rules` matches no file"),
        "{out}"
    );
}

const EXPRESSIONS: &str = r#"rule_files: [RULES]
evaluation_interval: 1m
tests:
  - name: expressions
    interval: 1m
    input_series:
      - series: 'level{tank="t1"}'
        values: '1 2 3 4 5'
      - series: 'level{tank="t2"}'
        values: '5 4 3 2 1'
    promql_expr_test:
      - expr: level{tank="t1"}
        eval_time: 2m
        exp_samples:
          - labels: 'level{tank="t1"}'
            value: 3
      - expr: level * 2 + 1
        eval_time: 4m
        exp_samples:
          - labels: '{tank="t1"}'
            value: 11
          - labels: '{tank="t2"}'
            value: 3
      - expr: level > 4
        eval_time: 4m
        exp_samples:
          - labels: 'level{tank="t1"}'
            value: 5
      - expr: level{tank="t3"}
        eval_time: 4m
"#;

/// `promql_expr_test` expressions written alike in both languages (selectors,
/// arithmetic, a threshold) give the same samples in tocsin and in promtool; a
/// wrong expectation fails in both.
#[test]
fn expression_tests_agree_with_promtool() {
    let (o, p) = both("expr", EXPRESSIONS, "fixture.rules", "exported.yml");
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    assert!(
        stdout(&o).contains("1 passed, 0 failed"),
        "{}",
        all_output(&o)
    );
    assert!(p.status.success(), "promtool:\n{}", all_output(&p));

    let wrong = EXPRESSIONS.replace("value: 11", "value: 12");
    let (o, p) = both("expr-wrong", &wrong, "fixture.rules", "exported.yml");
    let out = all_output(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains(r#"expr: "level * 2 + 1", time: 4m"#), "{out}");
    assert!(
        out.contains(r#"exp: [{tank="t1"} 12, {tank="t2"} 3]"#)
            && out.contains(r#"got: [{tank="t1"} 11, {tank="t2"} 3]"#),
        "{out}"
    );
    assert!(!p.status.success(), "promtool passed:\n{}", all_output(&p));
}

/// An expression in tocsin's language (a window function) runs in tocsin; one in
/// PromQL that tocsin's language lacks is refused, naming what is missing and how
/// tocsin writes what it has.
#[test]
fn expression_tests_in_tocsins_language_and_refusals() {
    let dir = scratch("expr-tocsin");
    std::fs::copy(fixtures().join("fixture.rules"), dir.join("fixture.rules")).unwrap();
    let file = dir.join("t.test.yml");
    std::fs::write(
        &file,
        r#"rule_files: [fixture.rules]
tests:
  - name: a window function
    interval: 1m
    input_series:
      - series: 'level{tank="t1"}'
        values: '1 2 3 4 5'
    promql_expr_test:
      - expr: max(level, 3m) > 3
        eval_time: 4m
        exp_samples:
          - labels: '{tank="t1"}'
            value: 5
  - name: aggregation
    interval: 1m
    input_series:
      - series: 'level{tank="t1"}'
        values: '1'
    promql_expr_test:
      - expr: sum by (tank) (level)
        eval_time: 0m
  - name: range selector
    interval: 1m
    input_series:
      - series: 'level{tank="t1"}'
        values: '1'
    promql_expr_test:
      - expr: max_over_time(level[5m])
        eval_time: 0m
"#,
    )
    .unwrap();
    let o = tocsin([OsStr::new("test"), file.as_os_str()]);
    let out = all_output(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("PASS: a window function"), "{out}");
    assert!(out.contains("FAILED: aggregation"), "{out}");
    assert!(
        out.contains("tocsin's language has no aggregation across series"),
        "{out}"
    );
    assert!(out.contains("FAILED: range selector"), "{out}");
    assert!(
        out.contains("write the window as an argument: `max(level, 5m)`"),
        "{out}"
    );
    assert!(out.contains("1 passed, 2 failed"), "{out}");
}
