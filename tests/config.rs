//! The configuration file: defaults, the shipped example, every error kind with its
//! exact message, `${VAR}` expansion, and secrets kept out of Debug and errors.
//!
//! Fixtures: tests/fixtures/config/good/*.toml load; each bad/NAME.toml fails with
//! exactly the text of bad/NAME.err. After changing a message, run
//! `UPDATE_EXPECT=1 cargo test --test config` and review the diff of the .err files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tocsin::config::{Config, ConfigError, LogFormat, ScrapeTarget, Secret, Token};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/config");

/// Secret values the fixtures use; none may ever appear in an error or in Debug.
const CI_TOKEN: &str = "ci-6f1d0c2b9a8e7f55";
const OPS_TOKEN: &str = "ops-0b3c4d5e6f7a8b9c";
const SECRETS: &[&str] = &[CI_TOKEN, OPS_TOKEN, "hunter2", "918273645546372819"];

/// The environment the fixtures see: no test reads the real one.
fn env(name: &str) -> Option<String> {
    let value = match name {
        "TOCSIN_TOKEN_CI" => CI_TOKEN,
        "TOCSIN_TOKEN_OPS" => OPS_TOKEN,
        "TOCSIN_TOKEN_NEWLINE" => "ci-6f1d0c2b9a8e7f55\n",
        "TOCSIN_EMPTY" => "",
        "TOCSIN_LISTEN" => "127.0.0.1:9999",
        "TOCSIN_TIMEOUT" => "45s",
        "TOCSIN_DATA_DIR" => "/srv/tocsin",
        "TOCSIN_SITE" => "tokyo",
        _ => return None,
    };
    Some(value.to_string())
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_str_with_env(text, Path::new("tocsin.toml"), &env)
}

/// The error text of a configuration that must not load.
fn error(text: &str) -> String {
    match parse(text) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(e) => e.to_string(),
    }
}

fn fixture(kind: &str, name: &str) -> Config {
    let path = PathBuf::from(FIXTURES).join(kind).join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    Config::from_str_with_env(&text, Path::new(name), &env)
        .unwrap_or_else(|e| panic!("{name} should load:\n{e}"))
}

fn files(kind: &str, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(FIXTURES).join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no {kind}/*.{ext} fixtures");
    files
}

#[test]
fn no_file_is_the_embedded_default() {
    let config = Config::load(None).unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(
        config.server.listen,
        SocketAddr::from(([127, 0, 0, 1], 9095))
    );
    assert_eq!(config.server.body_limit, 1024 * 1024);
    assert_eq!(config.server.request_timeout, Duration::from_secs(30));
    assert_eq!(config.storage.path, PathBuf::from("data/tocsin.redb"));
    assert_eq!(config.rules.paths, vec![PathBuf::from("rules")]);
    assert_eq!(config.rules.max_window, Duration::from_secs(7 * 86400));
    assert_eq!(config.rules.evaluation_interval, Duration::from_secs(15));
    assert_eq!(config.rules.lookback, Duration::from_secs(300));
    assert_eq!(config.limits.max_series, 1_000_000);
    assert_eq!(config.limits.max_samples_per_series, 100_000);
    assert_eq!(config.limits.max_labels, 32);
    assert!(config.tokens.is_empty());
    assert!(config.scrape.is_empty());
    assert!(config.channels.console.enabled);
    assert_eq!(config.log.format, LogFormat::Text);
    assert_eq!(config.log.level, "info");
    assert_eq!(config.check_options().max_window, config.rules.max_window);
}

#[test]
fn an_empty_file_is_the_default() {
    assert_eq!(parse("").unwrap(), Config::default());
    assert_eq!(fixture("good", "empty.toml"), Config::default());
}

/// The daemon's own embedded default must say the same as the config's.
#[test]
fn defaults_agree_with_the_daemon_settings() {
    let config = Config::default();
    let settings = tocsin::app::Settings::embedded_default();
    assert_eq!(config.server.listen, settings.listen);
    assert_eq!(config.server.body_limit, settings.body_limit);
    assert_eq!(config.storage.path, settings.data_path);
    assert_eq!(config.rules.paths, settings.rule_paths);
    assert_eq!(config.rules.max_window, settings.check.max_window);
    assert_eq!(
        config.rules.evaluation_interval,
        settings.evaluation_interval
    );
    assert_eq!(config.rules.lookback, settings.lookback);
    assert_eq!(config.limits.max_series, settings.max_series);
    assert_eq!(
        config.limits.max_samples_per_series,
        settings.max_samples_per_series
    );
    assert_eq!(config.limits.max_labels, settings.max_labels);
}

#[test]
fn the_example_file_is_the_default_plus_one_token() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tocsin.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = Config::from_str_with_env(&text, &path, &env).unwrap_or_else(|e| panic!("{e}"));
    let expected = Config {
        tokens: vec![Token {
            name: "ci".into(),
            token: Secret::new(CI_TOKEN),
        }],
        ..Config::default()
    };
    assert_eq!(config, expected);

    // Without the variable, the error names it and the key.
    let err = Config::from_str_with_env(&text, Path::new("tocsin.example.toml"), &|_| None)
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with(": tokens[0].token: environment variable \"TOCSIN_TOKEN_CI\" is not set"),
        "{err}"
    );
}

/// Every key is documented in the example, commented out or set.
#[test]
fn the_example_file_documents_every_key() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tocsin.example.toml"))
            .unwrap();
    let sections: &[(&str, &[&str])] = &[
        ("[server]", &["listen", "body_limit", "request_timeout"]),
        ("[storage]", &["path"]),
        (
            "[rules]",
            &["paths", "max_window", "evaluation_interval", "lookback"],
        ),
        (
            "[limits]",
            &["max_series", "max_samples_per_series", "max_labels"],
        ),
        ("[[tokens]]", &["name", "token"]),
        ("[[scrape]]", &["name", "url", "interval", "timeout"]),
        ("[channels.console]", &["enabled"]),
        ("[log]", &["format", "level"]),
    ];
    for (section, keys) in sections {
        let start = text
            .find(section)
            .unwrap_or_else(|| panic!("{section} missing"));
        let body = &text[start..];
        for key in *keys {
            let documented = body.lines().any(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.starts_with(&format!("{key} = "))
            });
            assert!(documented, "{section} {key} is not in the example");
        }
    }
}

#[test]
fn every_field_can_be_set() {
    let config = fixture("good", "full.toml");
    let expected = Config {
        server: tocsin::config::Server {
            listen: "0.0.0.0:8080".parse().unwrap(),
            body_limit: 65536,
            request_timeout: Duration::from_secs(60),
        },
        storage: tocsin::config::Storage {
            path: "/var/lib/tocsin/tocsin.redb".into(),
        },
        rules: tocsin::config::Rules {
            paths: vec!["/etc/tocsin/rules".into(), "/etc/tocsin/extra.rules".into()],
            max_window: Duration::from_secs(86400),
            evaluation_interval: Duration::from_secs(30),
            lookback: Duration::from_secs(120),
        },
        limits: tocsin::config::Limits {
            max_series: 5000,
            max_samples_per_series: 2880,
            max_labels: 16,
        },
        tokens: vec![
            Token {
                name: "ci".into(),
                token: Secret::new(CI_TOKEN),
            },
            Token {
                name: "alertmanager".into(),
                token: Secret::new(OPS_TOKEN),
            },
        ],
        scrape: vec![
            ScrapeTarget {
                name: "node".into(),
                url: "http://127.0.0.1:9100/metrics".into(),
                interval: Duration::from_secs(30),
                timeout: Duration::from_secs(5),
            },
            ScrapeTarget {
                name: "bots".into(),
                url: "https://bots.example.com:8443/metrics".into(),
                interval: Duration::from_secs(15),
                timeout: Duration::from_secs(10),
            },
        ],
        channels: tocsin::config::Channels {
            console: tocsin::config::Console { enabled: false },
        },
        log: tocsin::config::Log {
            format: LogFormat::Json,
            level: "debug,tocsin::http=trace".into(),
        },
    };
    assert_eq!(config, expected);
    // The same configuration in dotted keys and inline tables, sizes and durations
    // in other spellings.
    assert_eq!(fixture("good", "full_inline.toml"), expected);
}

#[test]
fn every_good_fixture_loads() {
    for path in files("good", "toml") {
        fixture("good", path.file_name().unwrap().to_str().unwrap());
    }
    // From the disk, with the process environment (empty.toml needs none of it).
    let empty = Path::new(FIXTURES).join("good/empty.toml");
    assert_eq!(Config::load(Some(&empty)).unwrap(), Config::default());
}

#[test]
fn variables_expand_anywhere_in_strings_and_escape_with_double_dollar() {
    let config = fixture("good", "env.toml");
    assert_eq!(config.server.listen, "127.0.0.1:9999".parse().unwrap());
    assert_eq!(config.server.request_timeout, Duration::from_secs(45));
    assert_eq!(
        config.storage.path,
        PathBuf::from("/srv/tocsin/tocsin-${NOT_EXPANDED}-$5.redb")
    );
    assert_eq!(
        config.rules.paths,
        vec![PathBuf::from("/srv/tocsin/rules"), PathBuf::from("rules")]
    );
    assert_eq!(config.tokens[0].name, "ci-tokyo");
    assert!(config.tokens[0].token.matches(CI_TOKEN));

    // An expanded value is not expanded again.
    let nested = |name: &str| (name == "A").then(|| "${B}".to_string());
    let config =
        Config::from_str_with_env("storage.path = \"${A}\"", Path::new("t.toml"), &nested).unwrap();
    assert_eq!(config.storage.path, PathBuf::from("${B}"));
}

#[test]
fn a_scrape_timeout_defaults_to_at_most_the_interval() {
    let config = fixture("good", "scrape_short_interval.toml");
    assert_eq!(config.scrape[0].interval, Duration::from_secs(2));
    assert_eq!(config.scrape[0].timeout, Duration::from_secs(2));
}

#[test]
fn bad_fixtures_fail_with_their_exact_messages() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut failures = Vec::new();
    for path in files("bad", "toml") {
        let name = path.file_name().unwrap().to_str().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let got = match Config::from_str_with_env(&text, Path::new(name), &env) {
            Ok(c) => format!("loaded: {c:?}"),
            Err(e) => format!("{e}\n"),
        };
        for secret in SECRETS {
            assert!(!got.contains(secret), "{name} shows a secret:\n{got}");
        }
        let expected_path = path.with_extension("err");
        if update {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            failures.push(format!("{name}\n--- expected\n{expected}--- got\n{got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One test per error kind, inline, so the messages can be read next to their input.
#[test]
fn error_messages() {
    let cases: &[(&str, &str)] = &[
        (
            "[server]\nlisten = \"127.0.0.1:9095\"\n  listne = 1\n",
            "tocsin.toml:3:3: unknown key \"listne\" in [server]",
        ),
        (
            "[[tokens]]\nname = \"a\"\ntoken = \"b\"\nscope = \"all\"\n",
            "tocsin.toml:4:1: unknown key \"scope\" in [[tokens]]",
        ),
        (
            "logging = true\n",
            "tocsin.toml:1:1: unknown key \"logging\" at the top level",
        ),
        (
            "[limits]\nmax_series = \"many\"\n",
            "tocsin.toml:2:14: limits.max_series: expected a non-negative integer, found a string",
        ),
        (
            "[limits]\nmax_series = -5\n",
            "tocsin.toml:2:14: limits.max_series: expected a non-negative integer, found integer -5",
        ),
        (
            "[[tokens]]\nname = \"ci\"\n",
            "tocsin.toml:1:1: missing key \"token\" in [[tokens]]",
        ),
        (
            "[server]\nlisten = \"0.0.0.0:9095\"\n",
            "tocsin.toml:2:10: refusing to listen on 0.0.0.0:9095 without tokens: \
             add [[tokens]] or listen on 127.0.0.1",
        ),
        (
            "[rules]\nevaluation_interval = \"0s\"\n",
            "tocsin.toml:2:23: rules.evaluation_interval: must be greater than zero",
        ),
        (
            "[[tokens]]\nname = \"ci\"\ntoken = \"a\"\n[[tokens]]\nname = \"ci\"\ntoken = \"b\"\n",
            "tocsin.toml:5:8: tokens[1].name: duplicate token name \"ci\" (first at line 2)",
        ),
        (
            "[[tokens]]\nname = \"ci\"\ntoken = \"\"\n",
            "tocsin.toml:3:9: tokens[0].token: token is empty",
        ),
        (
            "[[tokens]]\nname = \"ci\"\ntoken = \"${NOPE}\"\n",
            "tocsin.toml:3:9: tokens[0].token: environment variable \"NOPE\" is not set",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(error(text), *expected, "for:\n{text}");
    }
}

#[test]
fn all_validation_problems_are_reported_in_file_order() {
    let text = "\
[server]
listen = \"0.0.0.0:9095\"
request_timeout = \"0s\"
[rules]
lookback = \"soon\"
[limits]
max_labels = 0
";
    assert_eq!(
        error(text),
        "\
tocsin.toml:2:10: refusing to listen on 0.0.0.0:9095 without tokens: add [[tokens]] or listen on 127.0.0.1
tocsin.toml:3:19: server.request_timeout: must be greater than zero
tocsin.toml:5:12: rules.lookback: invalid duration \"soon\": expected number at 0
tocsin.toml:7:14: limits.max_labels: must be greater than zero"
    );
}

#[test]
fn a_public_address_with_tokens_is_allowed() {
    let config = parse(
        "[server]\nlisten = \"0.0.0.0:9095\"\n[[tokens]]\nname = \"ci\"\ntoken = \"${TOCSIN_TOKEN_CI}\"\n",
    )
    .unwrap();
    assert_eq!(config.server.listen, "0.0.0.0:9095".parse().unwrap());
    assert_eq!(config.find_token(CI_TOKEN).unwrap().name, "ci");
    assert!(config.find_token(OPS_TOKEN).is_none());
    assert!(config.find_token("").is_none());
}

#[test]
fn load_names_the_file_it_could_not_read() {
    let path = Path::new(FIXTURES).join("does-not-exist.toml");
    let err = Config::load(Some(&path)).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.problems().is_empty());
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}: cannot read: ", path.display())),
        "{text}"
    );
}

#[test]
fn load_reports_problems_at_the_path_given() {
    let path = Path::new(FIXTURES).join("bad/unknown_key.toml");
    let err = Config::load(Some(&path)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}:4:3: unknown key \"listne\" in [server]", path.display())
    );
    let problem = &err.problems()[0];
    assert_eq!(problem.file, path);
    let at = problem.location.unwrap();
    assert_eq!((at.line, at.column), (4, 3));
}

#[test]
fn secrets_print_as_stars() {
    let secret = Secret::new("s3cr3t");
    assert_eq!(format!("{secret:?}"), "***");
    assert_eq!(format!("{secret}"), "***");
    assert_eq!(format!("{:#?}", Some(&secret)), "Some(\n    ***,\n)");
    assert_eq!(secret.expose(), "s3cr3t");
    assert!(secret.matches("s3cr3t"));
    assert!(!secret.matches("s3cr3T"));
    assert!(!secret.matches("s3cr3"));
    assert!(!secret.matches("s3cr3t "));
}

#[test]
fn debug_of_a_config_does_not_show_its_secrets() {
    let mut config = fixture("good", "full.toml");
    config.scrape[0].url = "https://scraper:hunter2@127.0.0.1:9100/metrics".into();
    for debug in [format!("{config:?}"), format!("{config:#?}")] {
        for secret in SECRETS {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("***"));
        assert!(debug.contains("\"alertmanager\""), "token names are shown");
        assert!(
            debug.contains("https://***@127.0.0.1:9100/metrics"),
            "{debug}"
        );
    }
}
