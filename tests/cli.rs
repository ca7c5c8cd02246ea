//! The `tocsin` binary as CI and people call it: exit codes and output formats.

use std::path::Path;
use std::process::{Command, Output};

fn tocsin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run tocsin")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_accepts_the_shipped_rules() {
    let o = tocsin(&["check", "rules/"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("ok: 20 alert rules"),
        "{}",
        stderr(&o)
    );
}

/// One file is `1 file`, one rule `1 alert rule`.
#[test]
fn check_counts_in_words_that_agree() {
    let o = tocsin(&["check", "rules/business.rules", "rules/metrics.rules"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).ends_with(" alert rules in 2 files\n"),
        "{}",
        stderr(&o)
    );
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-one-file");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("one.rules");
    std::fs::write(&file, "alert \"A\" {\n  when x > 1\n  severity info\n}\n").unwrap();
    let o = tocsin(&["check", file.to_str().unwrap()]);
    assert_eq!(stderr(&o), "ok: 1 alert rule in 1 file\n");
}

/// The CLI reads durations the one way the rules, the config and Slack do, with the
/// same messages; a bad one never reaches the daemon (exit 2, usage).
#[test]
fn durations_on_the_command_line_use_the_one_syntax() {
    let o = tocsin(&[
        "silence",
        "add",
        "host=bot-1",
        "--duration",
        "90mins",
        "--server",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unknown unit `mins` in `90mins`; did you mean `90m`?"),
        "{}",
        stderr(&o)
    );
    let o = tocsin(&["check", "--max-window", "7 days", "rules/"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown unit `days` in `7 days`; did you mean `7d`?"),
        "{}",
        stderr(&o)
    );
    let o = tocsin(&["check", "--max-window", "7d12h", "rules/"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// A config repository's CI has no secrets: `--no-env` checks the structure (keys,
/// types, every value that names no variable) without looking `${VAR}` up.
#[test]
fn check_no_env_checks_a_config_without_its_secrets() {
    let check = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_clear()
            .output()
            .expect("run tocsin")
    };
    let o = check(&["check", "--config", "tocsin.seed.toml"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("is not set"), "{}", stderr(&o));
    let o = check(&["check", "--config", "tocsin.seed.toml", "--no-env"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("ok: tocsin.seed.toml (structure only"),
        "{}",
        stderr(&o)
    );

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-no-env");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.toml");
    std::fs::write(
        &file,
        "[server]\nlisten = \"${LISTEN}\"\nrequest_timeout = \"15 mins\"\n\n[[tokens]]\nname = \"ci\"\ntoken = \"${TOKEN}\"\nrole = \"admin\"\n",
    )
    .unwrap();
    let o = check(&["check", "--config", file.to_str().unwrap(), "--no-env"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(":3:19: server.request_timeout: unknown unit `mins`"),
        "{err}"
    );
    assert!(
        err.contains(":8:1: unknown key \"role\" in [[tokens]]"),
        "{err}"
    );
    assert!(!err.contains("LISTEN") && !err.contains("TOKEN"), "{err}");
    assert_eq!(err.lines().count(), 2, "{err}");
}

#[test]
fn check_reports_rule_errors_with_file_line_col_and_exit_1() {
    let o = tocsin(&["check", "tests/fixtures/errors/misspelt_unit.rules"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("tests/fixtures/errors/misspelt_unit.rules:2:31"),
        "{err}"
    );
    assert!(err.contains("did you mean `15m`?"), "{err}");
}

#[test]
fn check_reports_every_error_of_a_folder() {
    let o = tocsin(&["check", "tests/fixtures/errors"]);
    assert_eq!(o.status.code(), Some(1));
    let fixtures =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/errors"))
            .unwrap()
            .count();
    let err = stderr(&o);
    // Every fixture holds at least one error, and each is reported.
    let reported = err
        .lines()
        .filter(|l| l.starts_with("error: ") && !l.contains("problems found"))
        .count();
    assert!(reported >= fixtures, "{reported} < {fixtures}\n{err}");
}

#[test]
fn check_json_gives_one_object_per_diagnostic() {
    let o = tocsin(&[
        "check",
        "--format",
        "json",
        "tests/fixtures/errors/unknown_severity.rules",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    let d = &lines[0];
    assert_eq!(d["file"], "tests/fixtures/errors/unknown_severity.rules");
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(3), Some(12))
    );
    assert_eq!(
        (d["end_line"].as_u64(), d["end_column"].as_u64()),
        (Some(3), Some(16))
    );
    assert_eq!(d["message"], "unknown severity `crit`");
    assert_eq!(d["hint"], "did you mean `critical`?");
    assert_eq!(d["level"], "error");
}

#[test]
fn usage_and_io_errors_exit_2() {
    assert_eq!(tocsin(&["check", "no/such/rules"]).status.code(), Some(2));
    assert_eq!(tocsin(&["check"]).status.code(), Some(2));
    assert_eq!(
        tocsin(&["check", "--max-window", "soon", "rules/"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn max_window_is_configurable() {
    let o = tocsin(&[
        "check",
        "tests/fixtures/errors/window_too_long.rules",
        "--max-window",
        "31d",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = tocsin(&["check", "rules/", "--max-window", "1h"]);
    assert_eq!(o.status.code(), Some(1), "the disk forecast reads 6h");
}

#[test]
fn fmt_check_passes_on_the_shipped_rules() {
    let o = tocsin(&["fmt", "--check", "rules/"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
}

#[test]
fn fmt_rewrites_and_check_flags_unformatted_files() {
    let dir = std::env::temp_dir().join(format!("tocsin-fmt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("messy.rules");
    std::fs::write(
        &file,
        "alert \"x\" {  when   a>1 for 5m\n severity   info }",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let o = tocsin(&["fmt", "--check", path]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("messy.rules"));
    assert_eq!(tocsin(&["fmt", path]).status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "alert \"x\" {\n  when a > 1 for 5m\n  severity info\n}\n"
    );
    assert_eq!(tocsin(&["fmt", "--check", path]).status.code(), Some(0));
    std::fs::remove_dir_all(&dir).unwrap();
}
