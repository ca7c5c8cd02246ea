//! Stage two: [`RawConfig`] → [`Config`]. Expands `${VAR}`, parses durations, sizes
//! and addresses, fills in defaults, and checks what no single field can say alone
//! (a public address needs tokens, names are unique). Every problem is collected;
//! a field in error takes its default so checking can go on past it.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::env;
use super::error::{Location, Problem, Source};
use super::raw::{RawConfig, RawSize, Str};
use super::{
    Backend, Config, ConfigSource, Console, DATABASE_URL_VAR, Limits, Log, LogFormat, Rules,
    ScrapeTarget, Secret, Server, Storage,
};

/// A scrape target's interval when none is given.
const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(15);
/// A scrape's timeout when none is given, or the interval if that is shorter (as
/// Prometheus does): a scrape never outlives its interval.
const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// The levels `log.level` accepts as a bare word.
const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

pub(crate) struct Compiler<'a> {
    pub(super) src: &'a Source<'a>,
    /// `None`: check the structure only (`tocsin check --no-env`): `${VAR}` is left as
    /// written, and what cannot be judged without the variable is not judged.
    env: Option<super::Env<'a>>,
    /// Spans of values that name a variable, when there is no environment: a problem
    /// with one of them might not be one with the variable set, so it is not reported.
    unjudged: Vec<Range<usize>>,
    pub problems: Vec<Problem>,
    /// Every variable expanded so far, with its value: no message may show the
    /// value (a token put in a non-secret field by mistake would be printed by
    /// `tocsin check`), so [`Compiler::redacted`] puts the `${NAME}` back.
    expanded: Vec<(String, String)>,
}

impl<'a> Compiler<'a> {
    pub(crate) fn new(src: &'a Source<'a>, env: Option<super::Env<'a>>) -> Self {
        Compiler {
            src,
            env,
            unjudged: Vec::new(),
            problems: Vec::new(),
            expanded: Vec::new(),
        }
    }

    /// The problems found, with every expanded variable's value in their messages
    /// written back as the `${NAME}` the file says.
    pub(crate) fn redacted(self) -> Vec<Problem> {
        let mut values = self.expanded;
        // Longest first, so a value inside another is not replaced within it; a
        // single character is no secret and would garble the message.
        values.retain(|(_, v)| v.chars().count() > 1);
        values.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        let mut problems = self.problems;
        for p in &mut problems {
            for (name, value) in &values {
                let quoted = format!("{value:?}");
                let inner = &quoted[1..quoted.len() - 1];
                let shown = format!("${{{name}}}");
                p.message = p.message.replace(value, &shown).replace(inner, &shown);
            }
        }
        problems
    }

    pub(crate) fn compile(&mut self, raw: RawConfig) -> Config {
        let defaults = Config::default();
        let tokens = self.tokens(&raw.tokens);
        let server = Server {
            listen: self.listen(&raw.server.listen, !raw.tokens.is_empty()),
            body_limit: self.size(
                &raw.server.body_limit,
                "server.body_limit",
                defaults.server.body_limit,
            ),
            request_timeout: self.duration(
                &raw.server.request_timeout,
                "server.request_timeout",
                defaults.server.request_timeout,
            ),
            public_url: raw
                .server
                .public_url
                .as_ref()
                .and_then(|v| self.http_url(v, "server.public_url"))
                .map(|url| url.trim_end_matches('/').to_string()),
            advertise_url: self.advertise_url(&raw.server.advertise_url),
            max_connections: self.count(
                &raw.server.max_connections,
                "server.max_connections",
                defaults.server.max_connections,
            ),
            header_read_timeout: self.duration(
                &raw.server.header_read_timeout,
                "server.header_read_timeout",
                defaults.server.header_read_timeout,
            ),
            idle_timeout: self.duration(
                &raw.server.idle_timeout,
                "server.idle_timeout",
                defaults.server.idle_timeout,
            ),
            open: self.open_routes(&raw.server.open, defaults.server.open),
        };
        self.idle_after_requests(&raw.server.idle_timeout, &server);
        let storage = Storage {
            backend: self.backend(&raw.storage.backend, &raw.storage.url),
            path: self.path(&raw.storage.path, "storage.path", defaults.storage.path),
            retention: self.duration(
                &raw.storage.retention,
                "storage.retention",
                defaults.storage.retention,
            ),
        };
        self.reachable_by_replicas(&raw.server, &server, &storage);
        let rules = Rules {
            paths: match &raw.rules.paths {
                None => defaults.rules.paths,
                Some(paths) => paths
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| self.one_path(p, &format!("rules.paths[{i}]")))
                    .collect(),
            },
            max_window: self.duration(
                &raw.rules.max_window,
                "rules.max_window",
                defaults.rules.max_window,
            ),
            evaluation_interval: self.duration(
                &raw.rules.evaluation_interval,
                "rules.evaluation_interval",
                defaults.rules.evaluation_interval,
            ),
            lookback: self.duration(
                &raw.rules.lookback,
                "rules.lookback",
                defaults.rules.lookback,
            ),
            watch_interval: self.duration(
                &raw.rules.watch_interval,
                "rules.watch_interval",
                defaults.rules.watch_interval,
            ),
        };
        let limits = Limits {
            max_series: self.count(
                &raw.limits.max_series,
                "limits.max_series",
                defaults.limits.max_series,
            ),
            max_samples_per_series: self.count(
                &raw.limits.max_samples_per_series,
                "limits.max_samples_per_series",
                defaults.limits.max_samples_per_series,
            ),
            max_labels: self.count(
                &raw.limits.max_labels,
                "limits.max_labels",
                defaults.limits.max_labels,
            ),
            max_label_name_bytes: self.size(
                &raw.limits.max_label_name_bytes,
                "limits.max_label_name_bytes",
                defaults.limits.max_label_name_bytes,
            ),
            max_label_value_bytes: self.size(
                &raw.limits.max_label_value_bytes,
                "limits.max_label_value_bytes",
                defaults.limits.max_label_value_bytes,
            ),
            max_annotation_value_bytes: self.size(
                &raw.limits.max_annotation_value_bytes,
                "limits.max_annotation_value_bytes",
                defaults.limits.max_annotation_value_bytes,
            ),
            future_tolerance: self.duration(
                &raw.limits.future_tolerance,
                "limits.future_tolerance",
                defaults.limits.future_tolerance,
            ),
            max_silence_duration: self.duration(
                &raw.limits.max_silence_duration,
                "limits.max_silence_duration",
                defaults.limits.max_silence_duration,
            ),
        };
        let scrape = self.scrape(&raw.scrape);
        let console = Console {
            enabled: raw
                .channels
                .console
                .enabled
                .as_ref()
                .map_or(defaults.channels.console.enabled, |e| *e.get_ref()),
        };
        let mut channels = self.channels(&raw.channels, console);
        if let Some(email) = &mut channels.email {
            email.alerts_url = server
                .public_url
                .as_ref()
                .map(|url| format!("{url}/api/v1/alerts"));
        }
        let directory = self.directory(&raw);
        let routing = self.routing(&raw, &directory, &channels);
        let maintenance = self.maintenance(&raw.maintenance);
        let reports = self.reports(&raw.reports, channels.email.is_some());
        let log = Log {
            format: self
                .log_format(&raw.log.format)
                .unwrap_or(defaults.log.format),
            level: self.log_level(&raw.log.level).unwrap_or(defaults.log.level),
        };
        let web = self.web(&raw.web, defaults.web);
        Config {
            server,
            storage,
            rules,
            limits,
            tokens,
            scrape,
            channels,
            directory,
            routing,
            maintenance,
            reports,
            log,
            web,
            source: ConfigSource(self.src.file.display().to_string()),
        }
    }

    pub(super) fn report(&mut self, span: Range<usize>, message: String) {
        if self.unjudged.iter().any(|v| v.contains(&span.start)) {
            return;
        }
        let problem = self.src.problem(Some(span), message);
        self.problems.push(problem);
    }

    /// The first line the value at `span` is on, to say where a duplicate was first seen.
    pub(super) fn line_of(&self, span: &Range<usize>) -> usize {
        Location::of_offset(self.src.text, span.start).line
    }

    /// A string value with `${VAR}` expanded; `None` (reported) if it cannot be.
    pub(super) fn text(&mut self, value: &Spanned<String>, key: &str) -> Option<String> {
        let named = std::cell::Cell::new(false);
        let seen = std::cell::RefCell::new(Vec::new());
        let lookup = |name: &str| {
            named.set(true);
            match self.env {
                Some(env) => {
                    let value = env(name);
                    if let Some(v) = &value {
                        seen.borrow_mut().push((name.to_string(), v.clone()));
                    }
                    value
                }
                // Without an environment the reference stands for its value: any
                // secret or text passes, a URL or a number cannot be judged.
                None => Some(format!("${{{name}}}")),
            }
        };
        let expanded = env::expand(value.get_ref(), &lookup);
        self.expanded.extend(seen.into_inner());
        if named.get() && self.env.is_none() {
            self.unjudged.push(value.span());
        }
        match expanded {
            Ok(text) => Some(text),
            Err(e) => {
                self.report(value.span(), format!("{key}: {}", e.message()));
                None
            }
        }
    }

    /// A duration in the one syntax (`15s`, `5m`, `1h30m`: `crate::duration`),
    /// greater than zero.
    pub(super) fn duration(&mut self, value: &Str, key: &str, default: Duration) -> Duration {
        self.parse_duration(value, key).unwrap_or(default)
    }

    pub(super) fn parse_duration(&mut self, value: &Str, key: &str) -> Option<Duration> {
        let value = value.as_ref()?;
        match self.duration_or_zero(value, key)? {
            d if d.is_zero() => {
                self.report(value.span(), format!("{key}: must be greater than zero"));
                None
            }
            d => Some(d),
        }
    }

    /// A duration that may be zero (`after = "0s"`: at once).
    pub(super) fn duration_or_zero(
        &mut self,
        value: &Spanned<String>,
        key: &str,
    ) -> Option<Duration> {
        let text = self.text(value, key)?;
        match crate::duration::parse(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.report(value.span(), format!("{key}: {e}"));
                None
            }
        }
    }

    /// A string that must say something: expanded and trimmed, refused when empty.
    pub(super) fn nonempty(&mut self, value: &Spanned<String>, key: &str) -> Option<String> {
        let text = self.text(value, key)?;
        let text = text.trim();
        if text.is_empty() {
            self.report(value.span(), format!("{key}: must not be empty"));
            return None;
        }
        Some(text.to_string())
    }

    /// A secret: expanded, not empty, with no whitespace (a pasted newline would
    /// make every request fail). Never quoted in a message.
    pub(super) fn secret(&mut self, value: &Spanned<String>, key: &str) -> Option<Secret> {
        let secret = Secret::new(self.text(value, key)?);
        let why = if secret.is_empty() {
            "is empty"
        } else if secret
            .expose()
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            "contains whitespace or control characters"
        } else {
            return Some(secret);
        };
        self.report(value.span(), format!("{key}: {why}"));
        None
    }

    /// An http(s) URL. Not quoted back in a message: a URL may carry a password.
    pub(super) fn http_url(&mut self, value: &Spanned<String>, key: &str) -> Option<String> {
        let url = self.text(value, key)?;
        if is_http_url(&url) {
            return Some(url.trim().to_string());
        }
        self.report(
            value.span(),
            format!("{key}: expected an http:// or https:// url with a host"),
        );
        None
    }

    /// An email address (`ops@company.com`), as SMTP will take it.
    pub(super) fn email_address(&mut self, value: &Spanned<String>, key: &str) -> Option<String> {
        let text = self.text(value, key)?;
        let text = text.trim();
        match text.parse::<lettre::Address>() {
            Ok(_) => Some(text.to_string()),
            Err(_) => {
                self.report(
                    value.span(),
                    format!("{key}: invalid email address {text:?}"),
                );
                None
            }
        }
    }

    /// A phone number in E.164 (`+819012345678`), as Twilio takes it.
    pub(super) fn phone(&mut self, value: &Spanned<String>, key: &str) -> Option<String> {
        let text = self.text(value, key)?;
        let text = text.trim();
        if is_e164(text) {
            return Some(text.to_string());
        }
        self.report(
            value.span(),
            format!(
                "{key}: {text:?} is not an E.164 number: write + and the country code, \
                 then the number without its leading 0, no spaces or dashes \
                 (\"+819012345678\")"
            ),
        );
        None
    }

    /// A name unique among its kind (`what`: "webhook"), remembered in `seen`.
    pub(super) fn unique_name(
        &mut self,
        value: &Spanned<String>,
        key: &str,
        what: &str,
        seen: &mut HashMap<String, usize>,
    ) -> Option<String> {
        let name = self.nonempty(value, key)?;
        if let Some(&line) = seen.get(&name) {
            self.report(
                value.span(),
                format!("{key}: duplicate {what} name {name:?} (first at line {line})"),
            );
            return None;
        }
        seen.insert(name.clone(), self.line_of(&value.span()));
        Some(name)
    }

    /// A count that must be at least one: a limit of zero would refuse everything.
    fn count(&mut self, value: &Option<Spanned<u64>>, key: &str, default: usize) -> usize {
        let Some(value) = value else {
            return default;
        };
        match usize::try_from(*value.get_ref()) {
            Ok(0) => {
                self.report(value.span(), format!("{key}: must be greater than zero"));
                default
            }
            Ok(n) => n,
            Err(_) => {
                self.report(value.span(), format!("{key}: too large for this machine"));
                default
            }
        }
    }

    /// A size: an integer number of bytes, or a string with a unit (`"1MiB"`, `"512KB"`).
    fn size(&mut self, value: &Option<Spanned<RawSize>>, key: &str, default: usize) -> usize {
        let Some(value) = value else {
            return default;
        };
        let bytes = match value.get_ref() {
            RawSize::Bytes(n) => Ok(*n),
            RawSize::Text(text) => {
                let Some(text) = self.text(&Spanned::new(value.span(), text.clone()), key) else {
                    return default;
                };
                parse_size(&text).map_err(|why| format!("{key}: invalid size {text:?}: {why}"))
            }
        };
        match bytes.map(usize::try_from) {
            Ok(Ok(0)) => self.report(value.span(), format!("{key}: must be greater than zero")),
            Ok(Ok(n)) => return n,
            Ok(Err(_)) => self.report(value.span(), format!("{key}: too large for this machine")),
            Err(message) => self.report(value.span(), message),
        }
        default
    }

    fn path(&mut self, value: &Str, key: &str, default: PathBuf) -> PathBuf {
        value
            .as_ref()
            .and_then(|v| self.one_path(v, key))
            .unwrap_or(default)
    }

    fn one_path(&mut self, value: &Spanned<String>, key: &str) -> Option<PathBuf> {
        let text = self.text(value, key)?;
        if text.is_empty() {
            self.report(value.span(), format!("{key}: path is empty"));
            return None;
        }
        Some(PathBuf::from(text))
    }

    fn scrape(&mut self, raw: &[super::raw::RawScrape]) -> Vec<ScrapeTarget> {
        let mut targets = Vec::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        for (i, s) in raw.iter().enumerate() {
            let key = |field: &str| format!("scrape[{i}].{field}");
            let name = self.text(&s.name, &key("name"));
            let name = match name {
                Some(n) if n.trim().is_empty() => {
                    self.report(s.name.span(), format!("{}: name is empty", key("name")));
                    None
                }
                Some(n) => match names.get(&n) {
                    Some(&line) => {
                        self.report(
                            s.name.span(),
                            format!(
                                "{}: duplicate scrape name {n:?} (first at line {line})",
                                key("name")
                            ),
                        );
                        None
                    }
                    None => {
                        names.insert(n.clone(), self.line_of(&s.name.span()));
                        Some(n)
                    }
                },
                None => None,
            };
            let url = self.text(&s.url, &key("url")).and_then(|url| {
                if is_http_url(&url) {
                    Some(url)
                } else {
                    // Not quoted back: a URL may carry a password.
                    self.report(
                        s.url.span(),
                        format!(
                            "{}: expected an http:// or https:// url with a host",
                            key("url")
                        ),
                    );
                    None
                }
            });
            let interval = self
                .parse_duration(&s.interval, &key("interval"))
                .unwrap_or(DEFAULT_SCRAPE_INTERVAL);
            let timeout = match (&s.timeout, self.parse_duration(&s.timeout, &key("timeout"))) {
                (Some(span), Some(t)) if t > interval => {
                    self.report(
                        span.span(),
                        format!(
                            "{}: {} is longer than the interval of {}",
                            key("timeout"),
                            humantime::format_duration(t),
                            humantime::format_duration(interval)
                        ),
                    );
                    interval
                }
                (_, Some(t)) => t,
                (_, None) => DEFAULT_SCRAPE_TIMEOUT.min(interval),
            };
            if let (Some(name), Some(url)) = (name, url) {
                targets.push(ScrapeTarget {
                    name,
                    url,
                    interval,
                    timeout,
                });
            }
        }
        targets
    }

    /// `storage.backend` and, for PostgreSQL, its URL: `storage.url` expanded, or
    /// the variable [`DATABASE_URL_VAR`]. Never quoted in a message.
    fn backend(&mut self, backend: &Str, raw_url: &Str) -> Backend {
        let Some(value) = backend.as_ref() else {
            return Backend::Redb;
        };
        let Some(text) = self.text(value, "storage.backend") else {
            return Backend::Redb;
        };
        match text.trim() {
            "redb" => Backend::Redb,
            "postgres" | "postgresql" => {
                let url = match raw_url {
                    Some(url) => self.text(url, "storage.url"),
                    // Without an environment (`check --no-env`) the variable
                    // stands for its value, as in `text`.
                    None => match self
                        .env
                        .map_or(Some(format!("${{{DATABASE_URL_VAR}}}")), |env| {
                            env(DATABASE_URL_VAR)
                        }) {
                        Some(url) => Some(url),
                        None => {
                            self.report(
                                value.span(),
                                format!(
                                    "storage.backend: \"postgres\" needs a connection URL: \
                                     set {DATABASE_URL_VAR} (or storage.url = \"${{VAR}}\")"
                                ),
                            );
                            None
                        }
                    },
                };
                match url.map(|u| u.trim().to_string()) {
                    Some(url) if !url.is_empty() => Backend::Postgres {
                        url: Secret::new(url),
                    },
                    Some(_) => {
                        let span = url_span(raw_url, value);
                        self.report(span, "storage.url: is empty".into());
                        Backend::Redb
                    }
                    None => Backend::Redb,
                }
            }
            other => {
                self.report(
                    value.span(),
                    format!(
                        "storage.backend: unknown backend {other:?}, expected \"redb\" or \"postgres\""
                    ),
                );
                Backend::Redb
            }
        }
    }

    fn log_format(&mut self, value: &Str) -> Option<LogFormat> {
        let value = value.as_ref()?;
        let text = self.text(value, "log.format")?;
        match text.trim() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            other => {
                self.report(
                    value.span(),
                    format!("log.format: unknown format {other:?}, expected \"text\" or \"json\""),
                );
                None
            }
        }
    }

    /// A level (`info`) or tracing's filter directives (`info,tocsin::http=debug`). A
    /// bare word that is not a level is refused: tracing would read it as a target
    /// name and quietly log everything from that target.
    fn log_level(&mut self, value: &Str) -> Option<String> {
        let value = value.as_ref()?;
        let text = self.text(value, "log.level")?;
        let text = text.trim();
        let bad_word = text
            .split(',')
            .map(str::trim)
            .find(|d| !d.contains('=') && !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(d)));
        let why = match bad_word {
            Some(word) => Some(format!(
                "unknown level {word:?}, expected one of {} (or directives such as \
                 \"info,tocsin=debug\")",
                LEVELS.join(", ")
            )),
            None => tracing_subscriber::EnvFilter::try_new(text)
                .err()
                .map(|e| e.to_string()),
        };
        match why {
            Some(why) => {
                self.report(value.span(), format!("log.level: {why}"));
                None
            }
            None => Some(text.to_string()),
        }
    }
}

/// Bytes in `"1MiB"`, `"512 KB"`, `"1048576"`; the units of the rules language.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = (&text[..split], text[split..].trim());
    let number: f64 = number.parse().map_err(|_| {
        "expected a number of bytes with an optional unit, such as 1MiB".to_string()
    })?;
    let factor = if unit.is_empty() {
        1.0
    } else {
        match crate::rules::units::literal_unit(unit) {
            Ok((scale, crate::rules::units::Dim::BYTES)) => scale.apply(1.0),
            Ok(_) => {
                return Err(format!(
                    "{unit:?} is not a size unit; use B, KB, MB, GB, KiB, MiB or GiB"
                ));
            }
            Err(e) => {
                return Err(match e.suggestion {
                    Some(s) => format!("unknown unit {unit:?} (did you mean {s:?}?)"),
                    None => format!("unknown unit {unit:?}; use B, KB, MB, GB, KiB, MiB or GiB"),
                });
            }
        }
    };
    let bytes = number * factor;
    if bytes.fract() != 0.0 || !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err("not a whole number of bytes".to_string());
    }
    Ok(bytes as u64)
}

/// `+`, a country code that does not start with 0, at most 15 digits in all.
fn is_e164(text: &str) -> bool {
    let Some(digits) = text.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// `http://` or `https://`, a host, no whitespace. The rest is the HTTP client's to judge.
pub(super) fn is_http_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    !host.is_empty() && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Where `storage.url` is written, or `storage.backend` when it is not.
fn url_span(url: &Str, backend: &Spanned<String>) -> Range<usize> {
    url.as_ref().unwrap_or(backend).span()
}
