//! The configuration file: defaults, the shipped example, every error kind with its
//! exact message, `${VAR}` expansion, and secrets kept out of Debug and errors.
//!
//! Fixtures: tests/fixtures/config/good/*.toml load; each bad/NAME.toml fails with
//! exactly the text of bad/NAME.err. After changing a message, run
//! `UPDATE_EXPECT=1 cargo test --test config` and review the diff of the .err files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tocsin::config::{Config, ConfigError, LogFormat, Scope, ScrapeTarget, Secret, Token};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/config");

/// Secret values the fixtures use; none may ever appear in an error or in Debug.
const CI_TOKEN: &str = "ci-6f1d0c2b9a8e7f55";
const OPS_TOKEN: &str = "ops-0b3c4d5e6f7a8b9c";
const SLACK_BOT_TOKEN: &str = "xoxb-1111-2222-slackbotsecret";
const SLACK_SIGNING_SECRET: &str = "8f2e0c1d3b4a5968slacksigning";
const SMTP_PASSWORD: &str = "smtp-pw-5b6c7d8e";
const TWILIO_AUTH_TOKEN: &str = "twilio-auth-0a9b8c7d6e5f";
const WEBHOOK_URL: &str = "https://hooks.example.com/services/T000/B000/webhooksecret";
const WEBHOOK_TOKEN: &str = "webhook-bearer-33aa44bb";
const SECRETS: &[&str] = &[
    CI_TOKEN,
    OPS_TOKEN,
    "hunter2",
    "918273645546372819",
    SLACK_BOT_TOKEN,
    SLACK_SIGNING_SECRET,
    SMTP_PASSWORD,
    TWILIO_AUTH_TOKEN,
    "webhooksecret",
    WEBHOOK_TOKEN,
];
const TWILIO_ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";

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
        "SLACK_BOT_TOKEN" => SLACK_BOT_TOKEN,
        "SLACK_SIGNING_SECRET" => SLACK_SIGNING_SECRET,
        "SMTP_PASSWORD" => SMTP_PASSWORD,
        "TWILIO_ACCOUNT_SID" => TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN" => TWILIO_AUTH_TOKEN,
        "TWILIO_FROM" => "+15005550006",
        "TOCSIN_PUBLIC_URL" => "https://tocsin.company.com/",
        "OPS_WEBHOOK_URL" => WEBHOOK_URL,
        "OPS_WEBHOOK_TOKEN" => WEBHOOK_TOKEN,
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
    assert_eq!(config.storage.retention, Duration::from_secs(30 * 86400));
    assert_eq!(config.rules.paths, vec![PathBuf::from("rules")]);
    assert_eq!(config.rules.max_window, Duration::from_secs(7 * 86400));
    assert_eq!(config.rules.evaluation_interval, Duration::from_secs(15));
    assert_eq!(config.rules.lookback, Duration::from_secs(300));
    assert_eq!(config.rules.watch_interval, Duration::from_secs(2));
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

/// The example is the defaults exactly, as it says: copied as it is, it loads in an
/// empty environment (no active `[[tokens]]` wanting a variable) and changes nothing.
#[test]
fn the_example_file_is_the_defaults_exactly() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tocsin.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config =
        Config::from_str_with_env(&text, &path, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config, Config::default());
}

/// Every key is documented in the example, commented out or set.
#[test]
fn the_example_file_documents_every_key() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tocsin.example.toml"))
            .unwrap();
    let sections: &[(&str, &[&str])] = &[
        (
            "[server]",
            &[
                "listen",
                "body_limit",
                "request_timeout",
                "public_url",
                "advertise_url",
                "max_connections",
                "header_read_timeout",
                "idle_timeout",
                "open",
            ],
        ),
        ("[storage]", &["backend", "path", "url", "retention"]),
        (
            "[rules]",
            &[
                "paths",
                "max_window",
                "evaluation_interval",
                "lookback",
                "watch_interval",
            ],
        ),
        (
            "[limits]",
            &[
                "max_series",
                "max_samples_per_series",
                "max_labels",
                "max_label_name_bytes",
                "max_label_value_bytes",
                "max_annotation_value_bytes",
                "future_tolerance",
                "max_silence_duration",
            ],
        ),
        ("[[tokens]]", &["name", "token", "scopes"]),
        ("[[scrape]]", &["name", "url", "interval", "timeout"]),
        ("[channels.console]", &["enabled"]),
        (
            "[channels.slack]",
            &[
                "bot_token",
                "webhook_url",
                "signing_secrets",
                "api_url",
                "timeout",
                "default_channel",
            ],
        ),
        (
            "[channels.slack.channels]",
            &["critical", "warning", "info"],
        ),
        (
            "[channels.email]",
            &[
                "host",
                "tls",
                "port",
                "username",
                "password",
                "from",
                "message_id_domain",
                "timeout",
            ],
        ),
        (
            "[channels.sms]",
            &[
                "account_sid",
                "auth_token",
                "from",
                "api_url",
                "max_segments",
                "voice",
                "voice_language",
                "timeout",
            ],
        ),
        (
            "[[channels.webhook]]",
            &["name", "url", "bearer", "timeout"],
        ),
        (
            "[[channels.alertmanager]]",
            &[
                "name",
                "url",
                "external_urls",
                "generator_urls",
                "bearer",
                "timeout",
                "max_silence",
                "watch_interval",
                "incident",
            ],
        ),
        ("[people.", &["name", "email", "phone", "slack"]),
        ("[groups.", &["members", "emails"]),
        (
            "[schedules.",
            &["people", "time_zone", "handoff", "shift", "start"],
        ),
        (
            "[escalation]",
            &["default_policy", "group_by", "group_wait"],
        ),
        ("[[escalation.routes]]", &["match", "policy"]),
        (
            "[policies.",
            &[
                "repeat_interval",
                "ack_timeout",
                "fallback",
                "phone_severities",
            ],
        ),
        ("levels]]", &["after", "notify", "via"]),
        (
            "[[maintenance]]",
            &["name", "start", "duration", "time_zone", "match"],
        ),
        ("[[reports]]", &["name", "at", "time_zone", "period", "to"]),
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
            public_url: Some("https://tocsin.example.com/base".into()),
            advertise_url: Some("http://10.0.0.5:8080".into()),
            max_connections: 512,
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(120),
            open: tocsin::config::OpenRoutes {
                health: true,
                metrics: false,
            },
        },
        storage: tocsin::config::Storage {
            backend: tocsin::config::Backend::Redb,
            path: "/var/lib/tocsin/tocsin.redb".into(),
            retention: Duration::from_secs(14 * 86400),
        },
        rules: tocsin::config::Rules {
            paths: vec!["/etc/tocsin/rules".into(), "/etc/tocsin/extra.rules".into()],
            max_window: Duration::from_secs(86400),
            evaluation_interval: Duration::from_secs(30),
            lookback: Duration::from_secs(120),
            watch_interval: Duration::from_secs(10),
        },
        limits: tocsin::config::Limits {
            max_series: 5000,
            max_samples_per_series: 2880,
            max_labels: 16,
            max_label_name_bytes: 128,
            max_label_value_bytes: 1024,
            max_annotation_value_bytes: 4096,
            future_tolerance: Duration::from_secs(60),
            max_silence_duration: Duration::from_secs(7 * 86400),
        },
        tokens: vec![
            Token {
                name: "ci".into(),
                token: Secret::new(CI_TOKEN),
                scopes: vec![Scope::Intake, Scope::Read, Scope::Operate],
            },
            Token {
                name: "alertmanager".into(),
                token: Secret::new(OPS_TOKEN),
                scopes: vec![Scope::Intake],
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
            ..Config::default().channels
        },
        log: tocsin::config::Log {
            format: LogFormat::Json,
            level: "debug,tocsin::http=trace".into(),
        },
        // The escalation sections, maintenance and reports: tests below.
        ..Config::default()
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
            "tocsin.toml:3:3: unknown key \"listne\" in [server] (did you mean \"listen\"?)",
        ),
        // A required key of the wrong type is one problem, not also a missing key.
        (
            "[[scrape]]\nname = 5\nurl = \"http://127.0.0.1:9100/metrics\"\n",
            "tocsin.toml:2:8: scrape[0].name: expected a string, found an integer",
        ),
        (
            "[[tokens]]\nname = \"a\"\ntoken = \"b\"\nscope = \"all\"\n",
            "tocsin.toml:4:1: unknown key \"scope\" in [[tokens]] (did you mean \"scopes\"?)",
        ),
        (
            "logging = true\n",
            "tocsin.toml:1:1: unknown key \"logging\" at the top level (did you mean \"log\"?)",
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

/// Replicas over PostgreSQL relay writes to the one that acts, at the URL it
/// advertises: one nobody can reach is refused where it is written.
#[test]
fn replicas_need_an_address_the_others_reach() {
    let replica = |server: &str| {
        format!(
            "[[tokens]]\nname = \"ci\"\ntoken = \"t\"\n[server]\n{server}\n\
             [storage]\nbackend = \"postgres\"\nurl = \"postgres://db/tocsin\"\n"
        )
    };
    let cases: &[(&str, &str)] = &[
        (
            "listen = \"0.0.0.0:9095\"",
            "tocsin.toml:5:10: server.listen: 0.0.0.0:9095 names no address another \
             replica can reach: with storage.backend = \"postgres\", set \
             server.advertise_url to the URL the other replicas reach this one at \
             (such as \"http://10.0.0.5:9095\")",
        ),
        (
            "listen = \"0.0.0.0:9095\"\nadvertise_url = \"http://0.0.0.0:9095\"",
            "tocsin.toml:6:17: server.advertise_url: 0.0.0.0 and :: name no address \
             another replica can reach: write the URL the other replicas reach this \
             one at, such as \"http://10.0.0.5:9095\"",
        ),
        (
            "advertise_url = \"http://10.0.0.5:9095/?a=1\"",
            "tocsin.toml:5:17: server.advertise_url: it must not have a query or a \
             fragment: write the URL the other replicas reach this one at, such as \
             \"http://10.0.0.5:9095\"",
        ),
        (
            "advertise_url = \"10.0.0.5:9095\"",
            "tocsin.toml:5:17: server.advertise_url: expected an http:// or https:// \
             url with a host",
        ),
    ];
    for (server, expected) in cases {
        assert_eq!(error(&replica(server)), *expected, "for:\n{server}");
    }
    // Listening on every interface with the URL given; or on one address, which
    // is the default URL.
    let given = parse(&replica(
        "listen = \"0.0.0.0:9095\"\nadvertise_url = \"https://tocsin-a.internal:9095/\"",
    ))
    .unwrap();
    assert_eq!(
        given.server.advertised(given.server.listen).as_deref(),
        Some("https://tocsin-a.internal:9095")
    );
    let listen = parse(&replica("listen = \"10.0.0.5:9095\"")).unwrap();
    assert_eq!(
        listen.server.advertised(listen.server.listen).as_deref(),
        Some("http://10.0.0.5:9095")
    );
    // redb: nothing to reach.
    assert!(
        parse("[[tokens]]\nname = \"ci\"\ntoken = \"t\"\n[server]\nlisten = \"0.0.0.0:9095\"\n")
            .is_ok()
    );
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
tocsin.toml:5:12: rules.lookback: `soon` is not a duration; durations are written `30s`, `15m`, `6h`, `7d` or `1h30m`
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
        format!(
            "{}:4:3: unknown key \"listne\" in [server] (did you mean \"listen\"?)",
            path.display()
        )
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

// ---------------------------------------------------------------------------------
// Escalation, channels, maintenance and reports.

use tocsin::clock::Timestamp;
use tocsin::escalation::{Method, Routing, Target};

fn seed_text() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tocsin.seed.toml")).unwrap()
}

fn seed() -> Config {
    Config::from_str_with_env(&seed_text(), Path::new("tocsin.seed.toml"), &env)
        .unwrap_or_else(|e| panic!("the seed config should load:\n{e}"))
}

/// An instant given as local time in Tokyo (UTC+9, no daylight saving).
fn jst(y: i32, m: u32, d: u32, h: u32, min: u32) -> Timestamp {
    use chrono::TimeZone;
    let t = chrono::FixedOffset::east_opt(9 * 3600)
        .unwrap()
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .unwrap();
    Timestamp(t.timestamp_millis())
}

#[test]
fn without_policies_routing_is_the_console_default() {
    let config = parse("[people.a]\nemail = \"a@example.com\"\n").unwrap();
    let console = Routing::console_only();
    assert_eq!(config.routing, console);
    assert_eq!(Config::default().routing, console);
    assert_eq!(
        console.policies["default"].levels[0].targets,
        vec![Target::Console]
    );
    assert!(Config::default().directory.people.is_empty());
    assert!(Config::default().channels.slack.is_none());

    // [escalation] alone still sets the grouping, and routes may name the default.
    let config = parse(
        "[escalation]\ngroup_by = [\"alertname\", \"host\"]\ngroup_wait = \"0s\"\n\
         [[escalation.routes]]\nmatch = [\"team=db\"]\npolicy = \"default\"\n",
    )
    .unwrap();
    assert_eq!(config.routing.group_by, ["alertname", "host"]);
    assert_eq!(config.routing.group_wait, Duration::ZERO);
    assert_eq!(config.routing.routes[0].policy, "default");
    assert_eq!(config.routing.policies, console.policies);
}

#[test]
fn the_seed_config_compiles_to_the_specs_escalation() {
    let config = seed();
    let routing = &config.routing;
    assert_eq!(routing.default_policy, "default");
    assert!(routing.routes.is_empty());
    assert_eq!(routing.group_by, ["alertname"]);
    assert_eq!(routing.group_wait, Duration::from_secs(30));
    assert_eq!(routing.policies.len(), 1);

    let policy = &routing.policies["default"];
    let min = |m: u64| Duration::from_secs(m * 60);
    let person = |id: &str| Target::Person(id.into());
    let levels: Vec<(Duration, Vec<Target>, Vec<Method>)> = policy
        .levels
        .iter()
        .map(|l| (l.after, l.targets.clone(), l.via.clone()))
        .collect();
    assert_eq!(
        levels,
        vec![
            (
                min(0),
                vec![Target::Schedule("oncall".into()), Target::SlackBySeverity],
                vec![Method::Slack, Method::Email],
            ),
            (
                min(15),
                vec![person("sato")],
                vec![Method::Slack, Method::Email]
            ),
            (
                min(30),
                vec![Target::Schedule("oncall".into()), person("sato")],
                vec![Method::Sms, Method::Voice],
            ),
            (
                min(60),
                vec![
                    person("takahashi"),
                    person("watanabe"),
                    Target::Group("management".into()),
                ],
                vec![Method::Email, Method::Sms],
            ),
        ]
    );
    assert_eq!(policy.repeat_interval, min(30));
    assert_eq!(policy.ack_timeout, None);
    assert_eq!(
        policy.fallback,
        vec![Target::Email("ops@company.com".into())]
    );
    assert_eq!(policy.phone_severities, ["critical"]);

    // Anything routes to it.
    let labels = tocsin::labels::Labels::from_pairs([("alertname", "x"), ("severity", "info")]);
    assert_eq!(routing.policy_for(&labels, None).name, "default");

    // People, groups, the rotation.
    let dir = &config.directory;
    assert_eq!(
        dir.people.keys().collect::<Vec<_>>(),
        ["sato", "suzuki", "takahashi", "tanaka", "watanabe"]
    );
    assert_eq!(dir.people["tanaka"].phone.as_deref(), Some("+819000000001"));
    assert_eq!(dir.by_slack_user("U000000SATO").unwrap().id, "sato");
    assert_eq!(dir.groups["management"].emails, ["management@company.com"]);
    assert_eq!(dir.groups["development_team"].emails, ["dev@company.com"]);
    assert_eq!(dir.groups["operations_team"].members, ["tanaka", "suzuki"]);
    let oncall = &dir.schedules["oncall"];
    assert_eq!(oncall.on_call(jst(2026, 1, 12, 8, 59)), Some("tanaka"));
    assert_eq!(oncall.on_call(jst(2026, 1, 12, 9, 0)), Some("suzuki"));

    // Channels.
    let slack = config.channels.slack.as_ref().unwrap();
    assert!(slack.bot_token.as_ref().unwrap().matches(SLACK_BOT_TOKEN));
    assert_eq!(slack.channels["critical"], "#alerts-critical");
    assert_eq!(slack.channels["warning"], "#alerts-warning");
    assert_eq!(slack.default_channel, "#alerts-info");
    assert_eq!(slack.api_url, "https://slack.com/api");
    assert_eq!(config.channels.slack_signing_secrets.len(), 1);
    assert!(config.channels.slack_signing_secrets[0].matches(SLACK_SIGNING_SECRET));
    let email = config.channels.email.as_ref().unwrap();
    assert_eq!((email.host.as_str(), email.port), ("smtp.company.com", 587));
    assert_eq!(email.tls, tocsin::config::SmtpTls::StartTls);
    assert_eq!(email.message_id_domain, "company.com");
    assert!(email.password.as_ref().unwrap().matches(SMTP_PASSWORD));
    let sms = config.channels.sms.as_ref().unwrap();
    assert_eq!(sms.account_sid, TWILIO_ACCOUNT_SID);
    assert_eq!(sms.from, "+15005550006");
    assert_eq!(sms.max_segments, 3);
    assert_eq!(
        (sms.voice.as_str(), sms.voice_language.as_str()),
        ("Polly.Mizuki", "ja-JP"),
        "calls speak Japanese unless told otherwise"
    );
    assert_eq!(
        config.server.public_url.as_deref(),
        Some("https://tocsin.company.com")
    );

    // Maintenance: Sunday 02:00–04:00 and the first Sunday 01:00–05:00, Tokyo.
    let names: Vec<&str> = config.maintenance.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["weekly", "monthly"]);
    let open = |t| -> Vec<String> {
        config
            .maintenance
            .iter()
            .filter_map(|m| m.active(t))
            .map(|s| s.id.split(':').nth(1).unwrap().to_string())
            .collect()
    };
    // 2026-03-01 is the first Sunday of March; 2026-03-08 the second.
    assert!(open(jst(2026, 3, 1, 0, 59)).is_empty());
    assert_eq!(open(jst(2026, 3, 1, 1, 0)), ["monthly"]);
    assert_eq!(open(jst(2026, 3, 1, 2, 0)), ["weekly", "monthly"]);
    assert_eq!(open(jst(2026, 3, 1, 4, 0)), ["monthly"]);
    assert!(open(jst(2026, 3, 1, 5, 0)).is_empty());
    assert!(open(jst(2026, 3, 8, 1, 30)).is_empty());
    assert_eq!(open(jst(2026, 3, 8, 3, 59)), ["weekly"]);

    // Reports.
    let reports: Vec<(&str, Duration, usize)> = config
        .reports
        .iter()
        .map(|r| (r.name.as_str(), r.period, r.to.len()))
        .collect();
    assert_eq!(
        reports,
        [
            ("daily", Duration::from_secs(86400), 1),
            ("weekly", Duration::from_secs(7 * 86400), 3)
        ]
    );
    assert_eq!(
        config.reports[0].when.next_after(jst(2026, 3, 2, 9, 0)),
        Some(jst(2026, 3, 3, 9, 0))
    );
    assert_eq!(
        config.reports[1].when.next_after(jst(2026, 3, 2, 9, 0)),
        Some(jst(2026, 3, 9, 9, 0)),
        "Mondays"
    );
}

/// The daemon runs on `Config` itself, so there is no second set of defaults to
/// agree with; what the embedded default must mean is checked here: nobody to page
/// and no channel but the console.
#[test]
fn the_embedded_default_pages_the_console_only() {
    let default = Config::default();
    assert_eq!(default.routing, Routing::console_only());
    assert_eq!(default.directory, tocsin::escalation::Directory::default());
    assert!(default.channels.console.enabled);
    assert!(
        default.channels.slack.is_none()
            && default.channels.email.is_none()
            && default.channels.sms.is_none()
    );
    assert!(default.channels.webhooks.is_empty());
    assert!(default.channels.slack_signing_secrets.is_empty());
    assert_eq!(default.server.public_url, None);
}

#[test]
fn the_seed_config_needs_its_environment_and_never_shows_it() {
    let text = seed_text();
    let err = Config::from_str_with_env(&text, Path::new("tocsin.seed.toml"), &|_| None)
        .unwrap_err()
        .to_string();
    for var in [
        "TOCSIN_PUBLIC_URL",
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SMTP_PASSWORD",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_FROM",
    ] {
        assert!(
            err.contains(&format!("environment variable \"{var}\" is not set")),
            "{var}:\n{err}"
        );
    }
    let debug = format!("{:?}", seed());
    for secret in SECRETS {
        assert!(!debug.contains(secret), "{secret} in Debug");
    }
}

#[test]
fn every_channel_key_can_be_set() {
    let config = fixture("good", "channels.toml");
    let slack = config.channels.slack.unwrap();
    assert!(slack.bot_token.is_none());
    assert!(slack.webhook_url.as_ref().unwrap().matches(WEBHOOK_URL));
    assert_eq!(slack.api_url, "http://127.0.0.1:9/api");
    assert_eq!(slack.timeout, Duration::from_secs(3));
    assert_eq!(slack.default_channel, "C0123456789");
    assert_eq!(
        slack.channels.into_iter().collect::<Vec<_>>(),
        [("critical".to_string(), "#pager".to_string())]
    );
    assert_eq!(config.channels.slack_signing_secrets.len(), 2);

    let email = config.channels.email.unwrap();
    assert_eq!(email.host, "127.0.0.1");
    assert_eq!(email.port, 2525);
    assert_eq!(email.tls, tocsin::config::SmtpTls::None);
    assert_eq!(email.username.as_deref(), Some("alerts"));
    assert_eq!(email.from, "Alerts <alerts@example.com>");
    assert_eq!(email.message_id_domain, "tocsin.example.com");
    assert_eq!(email.timeout, Duration::from_secs(5));

    let sms = config.channels.sms.unwrap();
    assert_eq!(sms.api_url, "http://127.0.0.1:9");
    assert_eq!(sms.max_segments, 1);
    assert_eq!(sms.timeout, Duration::from_secs(4));

    let names: Vec<_> = config.channels.webhooks.iter().map(|w| &w.name).collect();
    assert_eq!(names, ["ops", "audit"]);
    assert!(config.channels.webhooks[0].url.matches(WEBHOOK_URL));
    assert!(
        config.channels.webhooks[0]
            .bearer
            .as_ref()
            .unwrap()
            .matches(WEBHOOK_TOKEN)
    );
    assert_eq!(config.channels.webhooks[0].timeout, Duration::from_secs(2));
    assert!(config.channels.webhooks[1].bearer.is_none());
    assert_eq!(config.channels.webhooks[1].timeout, Duration::from_secs(10));

    // Implicit TLS defaults to port 465, STARTTLS to 587; message ids to the sender's
    // domain.
    let email = parse(
        "[channels.email]\nhost = \"smtp.example.com\"\ntls = \"tls\"\nfrom = \"a@b.example\"\n",
    )
    .unwrap()
    .channels
    .email
    .unwrap();
    assert_eq!(
        (email.port, email.message_id_domain.as_str()),
        (465, "b.example")
    );
}

#[test]
fn routes_levels_and_targets_compile() {
    let config = fixture("good", "escalation.toml");
    let routing = &config.routing;
    assert_eq!(routing.default_policy, "business-hours");
    assert_eq!(routing.routes.len(), 2);
    assert_eq!(routing.routes[0].policy, "critical");
    let m = &routing.routes[0].matchers;
    assert_eq!(
        (m[0].name(), m[0].op().symbol(), m[0].value()),
        ("severity", "=", "critical")
    );
    assert_eq!(
        (m[1].name(), m[1].op().symbol(), m[1].value()),
        ("host", "=~", "bot-.*")
    );
    let labels = |pairs: &[(&str, &str)]| tocsin::labels::Labels::from_pairs(pairs.iter().copied());
    assert_eq!(
        routing
            .policy_for(
                &labels(&[("severity", "critical"), ("host", "bot-1")]),
                None
            )
            .name,
        "critical"
    );
    assert_eq!(
        routing
            .policy_for(&labels(&[("severity", "critical"), ("host", "db-1")]), None)
            .name,
        "business-hours"
    );
    assert_eq!(
        routing.policy_for(&labels(&[("team", "audit")]), None).name,
        "audit"
    );

    let critical = &routing.policies["critical"];
    assert_eq!(critical.ack_timeout, Some(Duration::from_secs(2 * 3600)));
    assert_eq!(critical.repeat_interval, Duration::from_secs(4 * 3600));
    assert_eq!(critical.phone_severities, ["critical", "page"]);
    assert_eq!(
        critical.fallback,
        [
            Target::SlackChannel("#ops".into()),
            Target::Webhook("ops".into()),
            Target::Console
        ]
    );
    assert_eq!(
        critical.levels[0].targets,
        [
            Target::Group("db".into()),
            Target::Email("dba@example.com".into()),
            Target::Webhook("ops".into()),
            Target::Console,
        ]
    );
    assert_eq!(critical.levels[1].after, Duration::from_secs(90));
    let rotation = &config.directory.schedules["nights"];
    assert_eq!(rotation.shift, Duration::from_secs(86400));
    assert_eq!(rotation.time_zone, chrono_tz::Tz::UTC);
    assert_eq!(
        rotation.handoff,
        chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap()
    );
    assert_eq!(
        config.directory.people["kim"].name, "kim",
        "the id by default"
    );
    let window = &config.maintenance[0];
    assert_eq!(window.matchers.len(), 1);
    assert_eq!(window.starts.time_zone, chrono_tz::Tz::UTC);
}

/// Each escalation, channel, schedule, maintenance and report problem, with its
/// exact message and position.
#[test]
fn escalation_error_messages() {
    // A small valid base the cases add to: two people, a rotation, every channel.
    const BASE: &str = "\
[people.tanaka]
email = \"tanaka@example.com\"
phone = \"+819012345678\"
slack = \"U012ABCDEF\"
[people.suzuki]
email = \"suzuki@example.com\"
[schedules.primary]
people = [\"tanaka\", \"suzuki\"]
start = \"2026-01-05\"
";
    // Lines 10-: what the case adds.
    let cases: &[(&str, &str)] = &[
        // Unknown ids, with suggestions.
        (
            "[groups.ops]\nmembers = [\"tanak\"]\n",
            "tocsin.toml:11:12: groups.ops.members[0]: unknown person \"tanak\" (did you mean \"tanaka\"?)",
        ),
        (
            "[schedules.night]\npeople = [\"suzki\"]\nstart = \"2026-01-05\"\n",
            "tocsin.toml:11:11: schedules.night.people[0]: unknown person \"suzki\" (did you mean \"suzuki\"?)",
        ),
        (
            "[[policies.default.levels]]\nnotify = [\"schedule:primry\"]\nvia = [\"email\"]\n[channels.email]\nhost = \"h\"\nfrom = \"a@b.c\"\n",
            "tocsin.toml:11:11: policies.default.levels[0].notify[0]: unknown schedule \"primry\" (did you mean \"primary\"?)",
        ),
        (
            "[[policies.default.levels]]\nnotify = [\"group:ops\"]\nvia = [\"email\"]\n[channels.email]\nhost = \"h\"\nfrom = \"a@b.c\"\n",
            "tocsin.toml:11:11: policies.default.levels[0].notify[0]: unknown group \"ops\" (there is no [groups] section)",
        ),
        (
            "[[policies.default.levels]]\nnotify = [\"webhook:opps\"]\n[[channels.webhook]]\nname = \"ops\"\nurl = \"https://h.example\"\n",
            "tocsin.toml:11:11: policies.default.levels[0].notify[0]: unknown webhook \"opps\" (did you mean \"ops\"?)",
        ),
        (
            "[escalation]\ndefault_policy = \"defualt\"\n[[policies.default.levels]]\nnotify = [\"console\"]\n",
            "tocsin.toml:11:18: escalation.default_policy: unknown policy \"defualt\" (did you mean \"default\"?)",
        ),
        (
            "[[escalation.routes]]\nmatch = [\"severity=critical\"]\npolicy = \"critcal\"\n[[policies.critical.levels]]\nnotify = [\"console\"]\n[[policies.default.levels]]\nnotify = [\"console\"]\n",
            "tocsin.toml:12:10: escalation.routes[0].policy: unknown policy \"critcal\" (did you mean \"critical\"?)",
        ),
        (
            "[[policies.pager.levels]]\nnotify = [\"console\"]\n",
            "tocsin.toml:10:12: policies: no policy named \"default\" for alerts no route matches; add [policies.default] or set escalation.default_policy",
        ),
        // Targets that parse to nothing.
        (
            "[[policies.default.levels]]\nnotify = [\"schedul:primary\"]\n",
            "tocsin.toml:11:11: policies.default.levels[0].notify[0]: unknown target \"schedul:primary\" (did you mean \"schedule:primary\"?)",
        ),
        (
            "[[policies.default.levels]]\nnotify = [\"tanaka\"]\n",
            "tocsin.toml:11:11: policies.default.levels[0].notify[0]: unknown target \"tanaka\" (did you mean \"person:tanaka\"?)",
        ),
        (
            "[[policies.default.levels]]\nnotify = [\"pager\"]\n",
            "tocsin.toml:11:11: policies.default.levels[0].notify[0]: unknown target \"pager\": expected person:ID, group:ID, schedule:ID, slack:by-severity, slack:#CHANNEL, email:ADDRESS, webhook:NAME or console",
        ),
        (
            "[[policies.default.levels]]\nnotify = [\"slack:alerts\"]\n[channels.slack]\nbot_token = \"x\"\n",
            "tocsin.toml:11:11: policies.default.levels[0].notify[0]: unknown Slack target \"slack:alerts\": expected slack:by-severity or slack:#CHANNEL",
        ),
        (
            "[[policies.default.levels]]\nnotify = []\n",
            "tocsin.toml:11:10: policies.default.levels[0].notify: a level needs at least one target",
        ),
        (
            "[policies.default]\nrepeat_interval = \"1h\"\n",
            "tocsin.toml:10:11: policies.default: a policy needs at least one level ([[policies.default.levels]])",
        ),
        // Levels out of order.
        (
            "[[policies.default.levels]]\nafter = \"15m\"\nnotify = [\"console\"]\n[[policies.default.levels]]\nafter = \"10m\"\nnotify = [\"console\"]\n",
            "tocsin.toml:14:9: policies.default.levels[1].after: 10m is not later than the level before (15m); levels run in order of after",
        ),
        (
            "[[policies.default.levels]]\nnotify = [\"console\"]\n[[policies.default.levels]]\nnotify = [\"console\"]\n",
            "tocsin.toml:13:10: policies.default.levels[1].after: 0s is not later than the level before (0s); levels run in order of after",
        ),
        // People without via; methods without their channel.
        (
            "[[policies.default.levels]]\nnotify = [\"console\", \"schedule:primary\"]\n",
            "tocsin.toml:11:22: policies.default.levels[0].notify[1]: \"schedule:primary\" names people, but the level has no via saying how to reach them (email, slack, sms or voice)",
        ),
        (
            "[[policies.default.levels]]\nnotify = [\"person:tanaka\"]\nvia = [\"slack\"]\n[channels.slack]\nwebhook_url = \"https://hooks.slack.com/services/x\"\n",
            "tocsin.toml:12:8: policies.default.levels[0].via[0]: \"slack\" needs a bot_token in [channels.slack] (direct messages use the Web API)",
        ),
        (
            "[[policies.default.levels]]\nnotify = [\"person:tanaka\"]\nvia = [\"voice\"]\n",
            "tocsin.toml:12:8: policies.default.levels[0].via[0]: \"voice\" needs [channels.sms]",
        ),
        (
            "[[policies.default.levels]]\nnotify = [\"person:tanaka\"]\nvia = [\"email\"]\n",
            "tocsin.toml:12:8: policies.default.levels[0].via[0]: \"email\" needs [channels.email]",
        ),
        (
            "[[policies.default.levels]]\nnotify = [\"person:tanaka\"]\nvia = [\"phone\"]\n",
            "tocsin.toml:12:8: policies.default.levels[0].via[0]: unknown method \"phone\", expected email, slack, sms or voice",
        ),
        (
            "[[policies.default.levels]]\nnotify = [\"slack:by-severity\"]\n",
            "tocsin.toml:11:11: policies.default.levels[0].notify[0]: \"slack:by-severity\" needs [channels.slack]",
        ),
        (
            "[[policies.default.levels]]\nnotify = [\"email:ops@example.com\"]\n",
            "tocsin.toml:11:11: policies.default.levels[0].notify[0]: \"email:ops@example.com\" needs [channels.email]",
        ),
        (
            "[[policies.default.levels]]\nnotify = [\"console\"]\n[channels.console]\nenabled = false\n",
            "tocsin.toml:11:11: policies.default.levels[0].notify[0]: \"console\" needs [channels.console] enabled = true",
        ),
        (
            "[groups.mgmt]\nemails = [\"m@example.com\"]\n[[policies.default.levels]]\nnotify = [\"group:mgmt\"]\nvia = [\"sms\"]\n[channels.sms]\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token = \"t\"\nfrom = \"+15005550006\"\n",
            "tocsin.toml:13:11: policies.default.levels[0].notify[0]: group \"mgmt\" has mailing lists, which need [channels.email]",
        ),
        // A person the level cannot reach by its methods.
        (
            "[[policies.default.levels]]\nafter = \"30m\"\nnotify = [\"schedule:primary\"]\nvia = [\"sms\", \"voice\"]\n[channels.sms]\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token = \"t\"\nfrom = \"+15005550006\"\n",
            "tocsin.toml:12:11: policies.default.levels[0].notify[0]: person \"suzuki\" (in schedule \"primary\") has no phone, needed for sms and voice",
        ),
        (
            "[[policies.default.levels]]\nnotify = [\"person:suzuki\"]\nvia = [\"slack\"]\n[channels.slack]\nbot_token = \"xoxb-1\"\n",
            "tocsin.toml:11:11: policies.default.levels[0].notify[0]: person \"suzuki\" has no slack user id, needed for slack",
        ),
        (
            "[[policies.default.levels]]\nnotify = [\"console\"]\nfallback = [\"person:tanaka\"]\n",
            "tocsin.toml:12:1: unknown key \"fallback\" in [[policies.default.levels]]",
        ),
        (
            "[policies.default]\nfallback = [\"person:tanaka\"]\n[[policies.default.levels]]\nnotify = [\"console\"]\n",
            "tocsin.toml:11:13: policies.default.fallback[0]: a fallback is a channel (email:, slack:, webhook: or console), not people",
        ),
        (
            "[policies.default]\nphone_severities = [\"critcal\"]\n[[policies.default.levels]]\nnotify = [\"console\"]\n",
            "tocsin.toml:11:21: policies.default.phone_severities[0]: unknown severity \"critcal\" (did you mean \"critical\"?)",
        ),
        (
            "[[escalation.routes]]\nmatch = [\"severity critical\"]\npolicy = \"default\"\n",
            "tocsin.toml:11:10: escalation.routes[0].match[0]: matcher \"severity critical\" is not name=value, name!=value, name=~regex or name!~regex",
        ),
        (
            "[[escalation.routes]]\nmatch = [\"host=~bot-(\"]\npolicy = \"default\"\n",
            "tocsin.toml:11:10: escalation.routes[0].match[0]: matcher \"host=~bot-(\": invalid regex: error: unclosed group",
        ),
        // People, schedules.
        (
            "[people.kim]\nphone = \"090-1234-5678\"\n",
            "tocsin.toml:11:9: people.kim.phone: \"090-1234-5678\" is not an E.164 number: write + and the country code, then the number without its leading 0, no spaces or dashes (\"+819012345678\")",
        ),
        (
            "[people.kim]\nemail = \"kim at example.com\"\n",
            "tocsin.toml:11:9: people.kim.email: invalid email address \"kim at example.com\"",
        ),
        (
            "[people.kim]\nslack = \"@kim\"\n",
            "tocsin.toml:11:9: people.kim.slack: \"@kim\" is not a Slack user id: expected U and upper-case letters and digits, from the profile's \"Copy member ID\"",
        ),
        (
            "[people.\"kim lee\"]\n",
            "tocsin.toml:10:9: people.\"kim lee\": an id may hold only letters, digits, _ and -",
        ),
        (
            "[groups.empty]\n",
            "tocsin.toml:10:9: groups.empty: a group needs members or emails",
        ),
        (
            "[schedules.night]\npeople = [\"tanaka\"]\nstart = \"2026-01-05\"\ntime_zone = \"Asia/Tokio\"\n",
            "tocsin.toml:13:13: schedules.night.time_zone: unknown time zone \"Asia/Tokio\" (did you mean \"Asia/Tokyo\"?)",
        ),
        (
            "[schedules.night]\npeople = [\"tanaka\"]\nstart = \"2026-01-05\"\ntime_zone = \"asia/tokyo\"\n",
            "tocsin.toml:13:13: schedules.night.time_zone: unknown time zone \"asia/tokyo\" (did you mean \"Asia/Tokyo\"?)",
        ),
        (
            "[schedules.night]\npeople = [\"tanaka\"]\nstart = \"2026-01-05\"\ntime_zone = \"Mars/Olympus\"\n",
            "tocsin.toml:13:13: schedules.night.time_zone: unknown time zone \"Mars/Olympus\", expected an IANA name such as \"Asia/Tokyo\" or \"UTC\"",
        ),
        (
            "[schedules.night]\npeople = [\"tanaka\"]\nstart = \"2026-01-05\"\nhandoff = \"9am\"\n",
            "tocsin.toml:13:11: schedules.night.handoff: invalid time \"9am\": expected HH:MM, such as \"09:00\"",
        ),
        (
            "[schedules.night]\npeople = [\"tanaka\"]\nstart = \"2026-13-01\"\n",
            "tocsin.toml:12:9: schedules.night.start: invalid date \"2026-13-01\": expected YYYY-MM-DD, such as \"2026-01-05\"",
        ),
        (
            "[schedules.night]\npeople = [\"tanaka\"]\nstart = 2026-01-05\n",
            "tocsin.toml:12:9: schedules.night.start: expected a string, found a date-time",
        ),
        (
            "[schedules.night]\npeople = [\"tanaka\"]\nstart = \"2026-01-05\"\nshift = \"36h\"\n",
            "tocsin.toml:13:9: schedules.night.shift: 1day 12h is not a whole number of days (\"1d\", \"7d\")",
        ),
        (
            "[schedules.night]\npeople = []\nstart = \"2026-01-05\"\n",
            "tocsin.toml:11:10: schedules.night.people: a rotation needs at least one person",
        ),
        (
            "[schedules.night]\npeople = [\"tanaka\"]\n",
            "tocsin.toml:10:1: missing key \"start\" in [schedules.night]",
        ),
        // Channels.
        (
            "[channels.slack]\ntimeout = \"5s\"\n",
            "tocsin.toml:10:1: channels.slack: needs bot_token (to post and update messages) or webhook_url (an incoming webhook)",
        ),
        (
            "[channels.slack]\nbot_token = \"x\"\ndefault_channel = \"alerts\"\n",
            "tocsin.toml:12:19: channels.slack.default_channel: \"alerts\" is not a Slack channel: expected #name or a channel id",
        ),
        (
            "[channels.email]\nhost = \"smtp.example.com\"\nfrom = \"alerts\"\n",
            "tocsin.toml:12:8: channels.email.from: invalid sender \"alerts\": expected an address such as \"tocsin <alerts@example.com>\"",
        ),
        (
            "[channels.email]\nhost = \"smtp.example.com\"\nfrom = \"a@example.com\"\ntls = \"ssl\"\n",
            "tocsin.toml:13:7: channels.email.tls: unknown value \"ssl\", expected \"tls\", \"starttls\" or \"none\"",
        ),
        (
            "[channels.email]\nhost = \"smtp.example.com\"\nfrom = \"a@example.com\"\ntls = \"none\"\nusername = \"u\"\npassword = \"${SMTP_PASSWORD}\"\n",
            "tocsin.toml:13:7: channels.email.tls: \"none\" would send the password in clear to smtp.example.com; use \"starttls\" or \"tls\", or a relay on this host",
        ),
        (
            "[channels.email]\nhost = \"smtp.example.com\"\nfrom = \"a@example.com\"\npassword = \"${SMTP_PASSWORD}\"\n",
            "tocsin.toml:13:12: channels.email.password: a password needs a username",
        ),
        (
            "[channels.email]\nhost = \"smtp.example.com\"\nfrom = \"a@example.com\"\nport = 70000\n",
            "tocsin.toml:13:8: channels.email.port: expected a port from 1 to 65535",
        ),
        (
            "[channels.sms]\naccount_sid = \"${TWILIO_AUTH_TOKEN}\"\nauth_token = \"${TWILIO_AUTH_TOKEN}\"\nfrom = \"+15005550006\"\n",
            "tocsin.toml:11:15: channels.sms.account_sid: expected a Twilio account SID: AC and 32 hex digits",
        ),
        (
            "[channels.sms]\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token = \"\"\nfrom = \"+15005550006\"\n",
            "tocsin.toml:12:14: channels.sms.auth_token: is empty",
        ),
        (
            "[channels.sms]\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token = \"t\"\nfrom = \"15005550006\"\nmax_segments = 0\n",
            "tocsin.toml:13:8: channels.sms.from: \"15005550006\" is not an E.164 number: write + and the country code, then the number without its leading 0, no spaces or dashes (\"+819012345678\")\n\
             tocsin.toml:14:16: channels.sms.max_segments: must be from 1 to 10",
        ),
        (
            "[channels.sms]\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token = \"t\"\nfrom = \"+15005550006\"\nvoice = \"Polly.Joanna\"\n",
            "tocsin.toml:14:9: channels.sms.voice_language: Polly.Joanna does not speak \"ja-JP\" (it speaks en-US); for \"ja-JP\" use one of: Polly.Mizuki, Polly.Takumi, Polly.Takumi-Neural, Polly.Kazuha-Neural, Polly.Tomoko-Neural, Google.ja-JP-Standard-A, Google.ja-JP-Standard-B, Google.ja-JP-Standard-C, Google.ja-JP-Standard-D, Google.ja-JP-Wavenet-A, Google.ja-JP-Wavenet-B, Google.ja-JP-Wavenet-C, Google.ja-JP-Wavenet-D, Google.ja-JP-Neural2-B, Google.ja-JP-Neural2-C, Google.ja-JP-Neural2-D",
        ),
        (
            "[channels.sms]\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token = \"t\"\nfrom = \"+15005550006\"\nvoice = \"alice\"\nvoice_language = \"ja-JP\"\n",
            "tocsin.toml:14:9: channels.sms.voice: \"alice\" is not a Twilio voice tocsin knows; for \"ja-JP\" use one of: Polly.Mizuki, Polly.Takumi, Polly.Takumi-Neural, Polly.Kazuha-Neural, Polly.Tomoko-Neural, Google.ja-JP-Standard-A, Google.ja-JP-Standard-B, Google.ja-JP-Standard-C, Google.ja-JP-Standard-D, Google.ja-JP-Wavenet-A, Google.ja-JP-Wavenet-B, Google.ja-JP-Wavenet-C, Google.ja-JP-Wavenet-D, Google.ja-JP-Neural2-B, Google.ja-JP-Neural2-C, Google.ja-JP-Neural2-D",
        ),
        (
            "[channels.sms]\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token = \"t\"\nfrom = \"+15005550006\"\nvoice = \"man\"\nvoice_language = \"en-US\"\n",
            "tocsin.toml:15:18: channels.sms.voice_language: man does not speak \"en-US\" (it speaks en, en-gb, es, fr, de); for \"en-US\" use one of: Polly.Joanna, Polly.Salli, Polly.Kendra, Polly.Kimberly, Polly.Ivy, Polly.Joey, Polly.Justin, Polly.Matthew, Polly.Joanna-Neural, Polly.Matthew-Neural, Google.en-US-Standard-C, Google.en-US-Standard-D",
        ),
        (
            "[[channels.webhook]]\nname = \"ops\"\nurl = \"${OPS_WEBHOOK_URL}\"\n[[channels.webhook]]\nname = \"ops\"\nurl = \"${OPS_WEBHOOK_URL}\"\n",
            "tocsin.toml:14:8: channels.webhook[1].name: duplicate webhook name \"ops\" (first at line 11)",
        ),
        (
            "[[channels.webhook]]\nname = \"ops\"\nurl = \"ftp://${OPS_WEBHOOK_TOKEN}@example.com\"\n",
            "tocsin.toml:12:7: channels.webhook[0].url: expected an http:// or https:// url with a host",
        ),
        (
            "[server]\npublic_url = \"tocsin.example.com\"\n",
            "tocsin.toml:11:14: server.public_url: expected an http:// or https:// url with a host",
        ),
        // Maintenance and reports.
        (
            "[[maintenance]]\nname = \"weekly\"\nstart = \"0 2 * * SUNDAY\"\nduration = \"2h\"\n",
            "tocsin.toml:12:9: maintenance[0].start: invalid cron expression \"0 2 * * SUNDAY\": day-of-week \"SUNDAY\": not a cron value; expected 0-7 or SUN-SAT, SUN#1 for the first Sunday, SUN#L for the last",
        ),
        (
            "[[maintenance]]\nname = \"weekly\"\nstart = \"0 2 * *\"\nduration = \"2h\"\n",
            "tocsin.toml:12:9: maintenance[0].start: invalid cron expression \"0 2 * *\": expected 5 fields (minute hour day-of-month month day-of-week), found 4",
        ),
        (
            "[[maintenance]]\nname = \"feb31\"\nstart = \"0 0 31 2 *\"\nduration = \"2h\"\n",
            "tocsin.toml:12:9: maintenance[0].start: cron expression \"0 0 31 2 *\" never occurs",
        ),
        (
            "[[maintenance]]\nname = \"weekly\"\nstart = \"0 2 * * SUN\"\nduration = \"0s\"\n",
            "tocsin.toml:13:12: maintenance[0].duration: must be greater than zero",
        ),
        (
            "[[maintenance]]\nname = \"all\"\nstart = \"0 2 * * SUN\"\nduration = \"2h\"\nmatch = [\"host=~.*\"]\n",
            "tocsin.toml:14:10: maintenance[0].match: at least one matcher must not match the empty string (this would silence every alert)",
        ),
        (
            "[[maintenance]]\nname = \"w\"\nstart = \"0 2 * * SUN\"\nduration = \"2h\"\n[[maintenance]]\nname = \"w\"\nstart = \"0 3 * * SUN\"\nduration = \"2h\"\n",
            "tocsin.toml:15:8: maintenance[1].name: duplicate maintenance name \"w\" (first at line 11)",
        ),
        (
            "[[reports]]\nname = \"daily\"\nat = \"0 9 * * *\"\nperiod = \"24h\"\nto = [\"ops@example.com\"]\n",
            "tocsin.toml:14:6: reports[0].to: reports are sent by email, which needs [channels.email]",
        ),
        (
            "[[reports]]\nname = \"daily\"\nat = \"0 25 * * *\"\nperiod = \"24h\"\nto = []\n",
            "tocsin.toml:12:6: reports[0].at: invalid cron expression \"0 25 * * *\": hour \"25\": number out of bounds; expected 0-23\n\
             tocsin.toml:14:6: reports[0].to: a report needs at least one address",
        ),
    ];
    let mut failures = Vec::new();
    for (case, expected) in cases {
        let text = format!("{BASE}{case}");
        let got = match parse(&text) {
            Ok(_) => "loaded".to_string(),
            Err(e) => e.to_string(),
        };
        for secret in SECRETS {
            assert!(!got.contains(secret), "a secret in:\n{got}");
        }
        if got != *expected {
            failures.push(format!(
                "for:\n{case}\nexpected: {expected}\n     got: {got}\n"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The base itself is fine.
    parse(BASE).unwrap();
}

#[test]
fn an_alertmanager_upstream_is_matched_by_its_external_url_or_generator_url() {
    let config = parse(
        "[[channels.alertmanager]]\nname = \"main\"\nurl = \"http://127.0.0.1:9093/\"\n\
         [[channels.alertmanager]]\nname = \"edge\"\nurl = \"http://10.0.0.2:9093\"\n\
         external_urls = [\"http://am.example.com:9093/\"]\ngenerator_urls = [\"http://prom-edge:9090/\"]\n\
         max_silence = \"1d\"\nwatch_interval = \"30s\"\nincident = \"group\"\n",
    )
    .unwrap();
    let [main, edge] = &config.channels.alertmanagers[..] else {
        panic!("two alertmanagers");
    };
    assert!(
        main.url.matches("http://127.0.0.1:9093"),
        "trailing / dropped"
    );
    assert_eq!(main.external_urls, ["http://127.0.0.1:9093"]);
    assert_eq!(main.max_silence, Duration::from_secs(7 * 86400));
    assert_eq!(main.watch_interval, Duration::from_secs(60));
    assert_eq!(edge.external_urls, ["http://am.example.com:9093"]);
    assert_eq!(edge.max_silence, Duration::from_secs(86400));
    assert_eq!(edge.watch_interval, Duration::from_secs(30));
    assert!(edge.group_incidents && !main.group_incidents);
    let of = |webhook: Option<&str>, generator: Option<&str>| {
        config
            .channels
            .alertmanager_of(webhook, generator)
            .map(|a| a.name.clone())
    };
    assert_eq!(
        of(Some("http://127.0.0.1:9093/"), None).as_deref(),
        Some("main")
    );
    assert_eq!(
        of(Some("http://am.example.com:9093"), None).as_deref(),
        Some("edge")
    );
    assert_eq!(
        of(None, Some("http://prom-edge:9090/graph?g0.expr=up")).as_deref(),
        Some("edge")
    );
    assert_eq!(
        of(Some("http://other:9093"), Some("http://prom:9090/")),
        None
    );

    let err = error(
        "[[channels.alertmanager]]\nname = \"main\"\nurl = \"127.0.0.1:9093\"\n\
         [[channels.alertmanager]]\nname = \"main\"\nurl = \"http://h\"\nwatch_interval = \"soon\"\nincident = \"service\"\n",
    );
    assert!(
        err.contains("channels.alertmanager[0].url: expected an http:// or https:// url"),
        "{err}"
    );
    assert!(
        err.contains("channels.alertmanager[1].name: duplicate alertmanager name \"main\""),
        "{err}"
    );
    assert!(
        err.contains("channels.alertmanager[1].watch_interval"),
        "{err}"
    );
}
