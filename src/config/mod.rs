//! The daemon's configuration: one TOML file (`tocsin.toml`) → a validated, compiled
//! [`Config`].
//!
//! Two stages, as ripgrep does with its flags. `raw` is the file as serde reads it:
//! every field optional and spanned, strings left as written. `compile` turns that
//! into the runtime `Config`: `${VAR}` expanded from the environment, durations, sizes
//! and addresses parsed, defaults filled in, and cross-field rules checked. Every
//! problem is collected and reported at its file:line:col; nothing downstream sees a
//! raw value or a span.
//!
//! Every field has a default, so no file at all is the embedded default: rules from
//! `rules/`, redb at `data/tocsin.redb`, HTTP on `127.0.0.1:9095`, the console channel,
//! and one escalation policy that prints every alert there
//! ([`Routing::console_only`]).
//!
//! The escalation sections (`[people]`, `[groups]`, `[schedules]`, `[escalation]`,
//! `[policies]`) compile into the types of [`crate::escalation`], linked and checked:
//! every id a target, member or route names exists, every person a level reaches has
//! the address its methods need, and every channel a policy uses is configured.
//! Relative paths are relative to the working directory, as the CLI's flags are.
//! `tocsin.example.toml` at the repository root documents every field.

mod access;
mod channels;
mod compile;
mod directory;
mod document;
mod env;
mod error;
mod escalation;
mod raw;
mod recurring;
mod secret;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{ConfigError, Location, Problem};
pub use secret::Secret;

use crate::escalation::{Directory, Routing};
use crate::maintenance::MaintenanceWindow;
use crate::report::ReportSchedule;
use crate::rules::CheckOptions;

/// How the config reads the environment: a variable's value by name (tests pass
/// their own; `None` in `check --no-env`).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The whole configuration, validated. `Config::default()` is the embedded default.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub server: Server,
    pub storage: Storage,
    pub rules: Rules,
    pub limits: Limits,
    /// Bearer tokens accepted by the write and intake endpoints. With none, the API is
    /// open, which is allowed on a loopback address only.
    pub tokens: Vec<Token>,
    /// Prometheus-format endpoints tocsin pulls samples from.
    pub scrape: Vec<ScrapeTarget>,
    pub channels: Channels,
    /// `[people]`, `[groups]` and `[schedules]`: who can be paged, and who is on call.
    pub directory: Directory,
    /// `[escalation]` and `[policies]`: which policy an alert follows and whom each
    /// level reaches. Without `[policies]`, the console-only default.
    pub routing: Routing,
    /// `[[maintenance]]`: recurring windows during which matching alerts are silenced.
    pub maintenance: Vec<MaintenanceWindow>,
    /// `[[reports]]`: the incident summaries sent by email on a schedule.
    pub reports: Vec<ReportSchedule>,
    pub log: Log,
    /// `[web]`: how the web UI learns who is signed in behind a proxy.
    pub web: Web,
    /// Where this configuration was read from, for the status page.
    pub source: ConfigSource,
}

/// `[web]`, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Web {
    /// A request header an authenticating proxy (oauth2-proxy and the like) sets to
    /// the signed-in person (`X-Forwarded-User`), lowercase. `None`: no proxy is
    /// trusted, the UI asks for a token.
    pub user_header: Option<String>,
    /// The peer addresses whose `user_header` is believed: the proxy's. A request
    /// from anywhere else that carries the header is not signed in by it.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

/// Where a configuration came from (a file's path, or the embedded default), for
/// people. It compares equal whatever it says: two configurations that say the same
/// thing are the same configuration, wherever they were read.
#[derive(Clone, Debug, Default)]
pub struct ConfigSource(pub String);

impl PartialEq for ConfigSource {
    fn eq(&self, _: &ConfigSource) -> bool {
        true
    }
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("the embedded default (no config file)")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// `[server]`: the HTTP listener.
#[derive(Clone, Debug, PartialEq)]
pub struct Server {
    pub listen: SocketAddr,
    /// The largest request body accepted, in bytes; larger ones get a 413.
    pub body_limit: usize,
    /// How long one request may take before it is answered with a timeout.
    pub request_timeout: Duration,
    /// The base URL Slack and Twilio reach tocsin at (behind a TLS proxy), without a
    /// trailing `/`: Twilio signs the full URL it calls.
    pub public_url: Option<String>,
    /// With `backend = "postgres"`: the base URL the other replicas reach this
    /// one at, without a trailing `/` (they forward the writes they are sent to
    /// the replica that acts). None: `http://` and the listen address, which
    /// `compile` refuses when that address is `0.0.0.0` or `::` (no one
    /// reaches that).
    pub advertise_url: Option<String>,
    /// Connections held at once; at the limit the one idle longest is closed to make
    /// room (never more than the descriptors left after a reserve, see `server`).
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, from connecting or
    /// from the end of the previous answer (so also how long an idle kept-alive
    /// connection stays open).
    pub header_read_timeout: Duration,
    /// A connection on which no byte moves either way for this long is closed (a
    /// stalled upload, a client that stopped reading its answer). Longer than
    /// `request_timeout`, so a request being worked on is never cut by it.
    pub idle_timeout: Duration,
    /// With `[[tokens]]`, the routes that still need none.
    pub open: OpenRoutes,
}

/// `server.open`: the read-only routes that answer without a token when tokens are
/// configured (without tokens everything is open, on loopback only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenRoutes {
    /// `/healthz` and `/readyz` (`"health"`), for load balancers and supervisors.
    pub health: bool,
    /// `/metrics` (`"metrics"`), for a Prometheus scraping tocsin.
    pub metrics: bool,
}

/// `[storage]`: where alert state lives.
#[derive(Clone, Debug, PartialEq)]
pub struct Storage {
    /// Which database holds the state.
    pub backend: Backend,
    /// The redb file (backend `redb`); its folder is created if missing.
    pub path: PathBuf,
    /// How long a resolved incident and its timeline are kept after it resolved;
    /// older ones are pruned in the background. Long enough for the weekly report.
    pub retention: Duration,
}

/// Where the state lives (`storage.backend`).
#[derive(Clone, Debug, PartialEq)]
pub enum Backend {
    /// One embedded redb file at `storage.path`: one machine.
    Redb,
    /// PostgreSQL, shared by every replica (`docs/ha.md`). The connection URL comes
    /// from the environment (`storage.url`, by default `${TOCSIN_DATABASE_URL}`)
    /// and is a secret: it may hold a password.
    Postgres { url: Secret },
}

/// The variable `storage.url` is read from when the file does not name one.
pub const DATABASE_URL_VAR: &str = "TOCSIN_DATABASE_URL";

/// `[rules]`: which rules, and how they are evaluated.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    /// Rules files, or folders searched for `*.rules`. May be empty: a deployment
    /// that only receives from Alertmanager has no rules of its own.
    pub paths: Vec<PathBuf>,
    /// The longest window a rule may read; series keep this much history (memory).
    pub max_window: Duration,
    /// How often rules are evaluated when no samples arrive.
    pub evaluation_interval: Duration,
    /// How long after its last sample a series still has a value (stale after).
    pub lookback: Duration,
    /// How often the rules files are checked for changes (hot reload); SIGHUP also
    /// reloads.
    pub watch_interval: Duration,
}

/// `[limits]`: bounds on what ingestion accepts, so no client can exhaust memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Series held in total; new series beyond it are refused.
    pub max_series: usize,
    /// Samples held per series; samples beyond it are refused.
    pub max_samples_per_series: usize,
    /// Labels one sample may carry; also the labels, and the annotations, of one
    /// alert received from Alertmanager or Prometheus.
    pub max_labels: usize,
    /// Bytes of one label name, of one label value and of one annotation value, at
    /// every intake: memory is bounded in bytes, not only in counts.
    pub max_label_name_bytes: usize,
    pub max_label_value_bytes: usize,
    pub max_annotation_value_bytes: usize,
    /// How far ahead of tocsin's clock a sample's timestamp (or an alert's
    /// `startsAt`) may be. A sample from the future would make every real sample of
    /// its series "older than the newest" until that time.
    pub future_tolerance: Duration,
    /// The longest silence accepted, from the API, the CLI, Slack or SMS.
    pub max_silence_duration: Duration,
}

/// One `[[tokens]]` entry: a bearer token, the actor it stands for, and what it may
/// do.
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    /// Recorded as the actor of what is done with the token (an ack's "who").
    pub name: String,
    pub token: Secret,
    pub scopes: Vec<Scope>,
}

impl Token {
    /// Whether the token may do what `scope` covers; `admin` may do everything.
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }
}

/// What a token may do. The token given to Alertmanager or Prometheus needs only
/// `intake`; one for dashboards only `read`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Push samples and send alerts (`/api/v1/samples`, `/api/v1/import/prometheus`,
    /// `/api/v1/alertmanager`, `/api/v2/alerts`).
    Intake,
    /// Read alerts, their timelines and silences (and `/metrics` and health when
    /// `server.open` leaves them out).
    Read,
    /// Ack, unack and resolve alerts; create and expire silences.
    Operate,
    /// Everything, and a silence that matches every alert (`"force": true`).
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Intake, Scope::Read, Scope::Operate, Scope::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Scope::Intake => "intake",
            Scope::Read => "read",
            Scope::Operate => "operate",
            Scope::Admin => "admin",
        }
    }
}

/// One `[[scrape]]` entry.
#[derive(Clone, PartialEq)]
pub struct ScrapeTarget {
    pub name: String,
    /// An http(s) URL serving the Prometheus text format. It may carry credentials
    /// (`https://user:pass@host/metrics`), so `Debug` hides them.
    pub url: String,
    pub interval: Duration,
    /// Never longer than `interval`.
    pub timeout: Duration,
}

impl fmt::Debug for ScrapeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScrapeTarget")
            .field("name", &self.name)
            .field("url", &redact_userinfo(&self.url))
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// `https://user:pass@host/x` → `https://***@host/x`.
fn redact_userinfo(url: &str) -> Cow<'_, str> {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return Cow::Borrowed(url);
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => Cow::Owned(format!("{}***{}", &url[..scheme_end], &rest[at..])),
        None => Cow::Borrowed(url),
    }
}

/// `[channels]`: where notifications go. A channel left out is off, and a policy
/// that needs it is refused.
#[derive(Clone, Debug, PartialEq)]
pub struct Channels {
    pub console: Console,
    pub slack: Option<SlackSettings>,
    /// `[channels.slack] signing_secrets`: requests from Slack (slash commands,
    /// buttons) must be signed with one; several while one is being rotated.
    pub slack_signing_secrets: Vec<Secret>,
    pub email: Option<EmailSettings>,
    /// `[channels.sms]`: Twilio, for SMS and voice calls.
    pub sms: Option<TwilioSettings>,
    /// `[[channels.webhook]]`, each with a unique name.
    pub webhooks: Vec<WebhookSettings>,
    /// `[[channels.alertmanager]]`: the Alertmanagers an ack silences, each with a
    /// unique name.
    pub alertmanagers: Vec<AlertmanagerSettings>,
}

/// One `[[channels.alertmanager]]`, validated: an Alertmanager that sends alerts to
/// tocsin, where an ack of one of them becomes a silence.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertmanagerSettings {
    pub name: String,
    /// Where tocsin calls its API (`/api/v2/silences`, `/api/v2/alerts`), without
    /// a trailing `/`. It may hold a credential, so it is a secret.
    pub url: Secret,
    /// The `externalURL` its webhook carries (its `--web.external-url`), trailing
    /// `/` dropped: an alert that came with one of these is its alert. Default: `url`.
    pub external_urls: Vec<String>,
    /// Prefixes of `generatorURL`: alerts a Prometheus posts to tocsin's
    /// `/api/v2/alerts` that the same Prometheus also sends to this Alertmanager.
    pub generator_urls: Vec<String>,
    /// Sent as `Authorization: Bearer …` when set.
    pub bearer: Option<Secret>,
    pub timeout: Duration,
    /// How long a silence is made for. tocsin expires it when the alert resolves
    /// or the ack is taken back, and renews it (the watch) while the ack stands
    /// and it would end within half of this; should tocsin be gone, it ends.
    pub max_silence: Duration,
    /// How often tocsin asks whether an alert it silenced there still fires: the
    /// silence mutes Alertmanager's webhook to tocsin too, so the resolve cannot
    /// arrive until the silence is expired.
    pub watch_interval: Duration,
    /// `incident = "group"`: each group its webhook notifies (its `groupKey`) is
    /// one tocsin alert and one incident, labelled with the group's labels,
    /// instead of one per alert.
    pub group_incidents: bool,
}

impl AlertmanagerSettings {
    /// Whether an alert another system sent came from this Alertmanager: by the
    /// `externalURL` of the webhook that carried it, or by its `generatorURL`.
    pub fn sent(&self, external_url: Option<&str>, generator_url: Option<&str>) -> bool {
        let by_webhook = external_url.is_some_and(|u| {
            self.external_urls
                .iter()
                .any(|e| e == u.trim_end_matches('/'))
        });
        let by_generator = generator_url.is_some_and(|g| {
            self.generator_urls
                .iter()
                .any(|p| g.starts_with(p.as_str()))
        });
        by_webhook || by_generator
    }
}

impl Channels {
    /// The Alertmanager that sent an alert (see [`AlertmanagerSettings::sent`]),
    /// if one is configured.
    pub fn alertmanager_of(
        &self,
        external_url: Option<&str>,
        generator_url: Option<&str>,
    ) -> Option<&AlertmanagerSettings> {
        self.alertmanagers
            .iter()
            .find(|a| a.sent(external_url, generator_url))
    }
}

/// `[channels.slack]`, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct SlackSettings {
    /// An incoming webhook URL (the whole URL is the secret). Either this or
    /// `bot_token`; with both, the bot token is used.
    pub webhook_url: Option<Secret>,
    /// A bot token (`xoxb-…`) for `chat.postMessage` / `chat.update`.
    pub bot_token: Option<Secret>,
    /// The Web API base, `https://slack.com/api`; tests point it at a fake.
    pub api_url: String,
    /// Channel by severity: `critical` → `#alerts-critical`, ...
    pub channels: BTreeMap<String, String>,
    /// The channel for a severity not in `channels`.
    pub default_channel: String,
    /// How long one request may take.
    pub timeout: Duration,
}

impl SlackSettings {
    /// The channel for alerts of `severity`.
    pub fn channel_for(&self, severity: &str) -> &str {
        self.channels.get(severity).unwrap_or(&self.default_channel)
    }

    /// The seed's channels: `#alerts-critical`, `#alerts-warning`, `#alerts-info`.
    pub fn seed_channels() -> BTreeMap<String, String> {
        ["critical", "warning", "info"]
            .into_iter()
            .map(|s| (s.to_string(), format!("#alerts-{s}")))
            .collect()
    }
}

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// Implicit TLS from the first byte (port 465).
    Wrapper,
    /// Plain EHLO, then STARTTLS is required (port 587).
    StartTls,
    /// No TLS: a local relay or a test server only.
    None,
}

/// `[channels.email]`, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct EmailSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The sender, `tocsin <alerts@example.com>`.
    pub from: String,
    /// The right-hand side of Message-IDs (`<alert.…@{domain}>`).
    pub message_id_domain: String,
    /// How long one delivery may take, from connecting to the server's last reply.
    pub timeout: Duration,
    /// Where a mail too long to list every alert of a group links to:
    /// `{server.public_url}/api/v1/alerts`; None without a public URL.
    pub alerts_url: Option<String>,
}

/// `[channels.sms]`, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct TwilioSettings {
    pub account_sid: String,
    pub auth_token: Secret,
    /// The sending number, E.164.
    pub from: String,
    /// `https://api.twilio.com`; tests point it at a fake.
    pub api_url: String,
    /// Longer bodies are cut to this many segments.
    pub max_segments: u32,
    /// The `<Say>` voice of calls (`Polly.Mizuki`) and the `language` it speaks
    /// (`ja-JP`): a pair Twilio documents (`limits::twilio::VOICES`).
    pub voice: String,
    pub voice_language: String,
    pub timeout: Duration,
}

/// One `[[channels.webhook]]`, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookSettings {
    pub name: String,
    /// The URL may hold a credential, so it is a secret.
    pub url: Secret,
    /// Sent as `Authorization: Bearer …` when set.
    pub bearer: Option<Secret>,
    pub timeout: Duration,
}

/// `[channels.console]`: one line per notification on stdout.
#[derive(Clone, Debug, PartialEq)]
pub struct Console {
    pub enabled: bool,
}

/// `[log]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Log {
    pub format: LogFormat,
    /// A tracing filter: a level (`info`) or directives (`info,tocsin::http=debug`).
    pub level: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl Server {
    /// The URL the other replicas reach this one at, once it listens on `bound`:
    /// `advertise_url`, else `http://` and the bound address. None when that is
    /// `0.0.0.0` or `::` without an `advertise_url` (a config built in code: a
    /// file with it is refused).
    pub fn advertised(&self, bound: SocketAddr) -> Option<String> {
        match &self.advertise_url {
            Some(url) => Some(url.clone()),
            None if bound.ip().is_unspecified() => None,
            None => Some(format!("http://{bound}")),
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            server: Server {
                listen: SocketAddr::from(([127, 0, 0, 1], 9095)),
                body_limit: 1 << 20,
                request_timeout: Duration::from_secs(30),
                public_url: None,
                advertise_url: None,
                max_connections: 4096,
                header_read_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(60),
                open: OpenRoutes {
                    health: true,
                    metrics: true,
                },
            },
            storage: Storage {
                backend: Backend::Redb,
                path: PathBuf::from("data/tocsin.redb"),
                retention: Duration::from_secs(30 * 86400),
            },
            rules: Rules {
                paths: vec![PathBuf::from("rules")],
                max_window: CheckOptions::default().max_window,
                evaluation_interval: Duration::from_secs(15),
                lookback: Duration::from_secs(5 * 60),
                watch_interval: Duration::from_secs(2),
            },
            limits: Limits {
                max_series: 1_000_000,
                max_samples_per_series: 100_000,
                max_labels: 32,
                // Mimir's defaults for label names and values.
                max_label_name_bytes: 1024,
                max_label_value_bytes: 2048,
                max_annotation_value_bytes: 16 * 1024,
                // Mimir's creation grace period.
                future_tolerance: Duration::from_secs(10 * 60),
                max_silence_duration: Duration::from_secs(30 * 86400),
            },
            tokens: Vec::new(),
            scrape: Vec::new(),
            channels: Channels {
                console: Console { enabled: true },
                slack: None,
                slack_signing_secrets: Vec::new(),
                email: None,
                sms: None,
                webhooks: Vec::new(),
                alertmanagers: Vec::new(),
            },
            directory: Directory::default(),
            routing: Routing::console_only(),
            maintenance: Vec::new(),
            reports: Vec::new(),
            log: Log {
                format: LogFormat::Text,
                level: "info".to_string(),
            },
            web: Web {
                user_header: None,
                trusted_proxies: vec![
                    std::net::Ipv4Addr::LOCALHOST.into(),
                    std::net::Ipv6Addr::LOCALHOST.into(),
                ],
            },
            source: ConfigSource::default(),
        }
    }
}

impl Config {
    /// Reads the file at `path`, with `${VAR}` taken from the process environment;
    /// `None` is the embedded default.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_str_with_env(&text, path, &|name| std::env::var(name).ok())
    }

    /// Reads a configuration from `text`. `path` only names the file in messages;
    /// `env` looks up the variables of `${VAR}` (tests pass their own).
    pub fn from_str_with_env(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        Config::compile(text, path, Some(env))
    }

    /// Checks a configuration's structure without its environment (`tocsin check
    /// --config FILE --no-env`, for a config repository's CI, which has no
    /// secrets): every key, type and value is checked, except values that name a
    /// `${VAR}`, which cannot be judged without it. `Ok` is no problem found, with
    /// the configuration as far as it goes without the environment: `${VAR}` left
    /// as written. It is for checking (its rules paths), never for running.
    pub fn check_structure(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::compile(&text, path, None)
    }

    fn compile(text: &str, path: &Path, env: Option<Env<'_>>) -> Result<Config, ConfigError> {
        let src = error::Source { file: path, text };
        let (raw, mut problems) = document::read(&src).map_err(ConfigError::Invalid)?;
        let mut compiler = compile::Compiler::new(&src, env);
        let config = compiler.compile(raw);
        problems.append(&mut compiler.redacted());
        if problems.is_empty() {
            return Ok(config);
        }
        // In file order; problems found in one pass keep their order on one spot.
        problems.sort_by_key(|p| p.location);
        Err(ConfigError::Invalid(problems))
    }

    /// The token presented as `Authorization: Bearer <bearer>`, if it is one of ours.
    /// Every token is compared in full, so the time taken does not tell which matched.
    pub fn find_token(&self, bearer: &str) -> Option<&Token> {
        let mut found = None;
        for t in &self.tokens {
            if t.token.matches(bearer) && found.is_none() {
                found = Some(t);
            }
        }
        found
    }

    /// The limits the rules checker applies.
    pub fn check_options(&self) -> CheckOptions {
        CheckOptions {
            max_window: self.rules.max_window,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_redacted() {
        assert_eq!(
            redact_userinfo("https://u:p@host:9/m?x=a@b"),
            "https://***@host:9/m?x=a@b"
        );
        assert_eq!(redact_userinfo("http://host/m@x"), "http://host/m@x");
        assert_eq!(redact_userinfo("nonsense"), "nonsense");
    }
}
