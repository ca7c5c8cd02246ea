//! Pulling metrics: each [`Target`] is fetched over plain HTTP at its interval, its
//! Prometheus text exposition parsed by the strict parser pushes go through
//! ([`crate::exposition`]), and the samples ingested as one batch, as Prometheus
//! scrapes.
//!
//! - Every sample gets `job="<target name>"` and `instance="<host:port>"`, then the
//!   target's own labels (which may override those two). A scraped label that clashes
//!   with one of these is kept as `exported_<name>`, as Prometheus does without
//!   `honor_labels`.
//! - Every scrape writes `up` (1 on success, 0 on a refused connection, a timeout, a
//!   non-2xx answer, a body that does not parse or that the store refuses),
//!   `scrape_duration_seconds` and `scrape_samples_scraped`, with the target's labels,
//!   so a rule `up == 0` can alert on a target that is down.
//! - A series that was in the previous scrape but not in this one (every series,
//!   when the scrape fails) gets Prometheus' stale marker, so rules stop seeing it at
//!   once instead of after the lookback. Series with their own timestamps are left to
//!   age out.
//!
//! Where the samples go is the caller's: [`spawn`] takes a [`Sink`], and the
//! daemon passes one that ingests into its store, so scraping knows nothing of the
//! daemon or of HTTP serving.
//!
//! Loops never panic: failures are logged with the target and the error.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::exposition::{self, LineError, SampleLine};
use crate::labels::{self, Labels};
use crate::series::{IncomingSample, stale_marker};

/// One endpoint to scrape.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The `job` label of everything scraped from it.
    pub name: String,
    /// `http://host:port/path`; https is refused until TLS is wired in.
    pub url: String,
    pub interval: Duration,
    /// At most `interval`, as in Prometheus.
    pub timeout: Duration,
    /// Added to every sample, after `job` and `instance`.
    pub labels: Labels,
}

/// A target that cannot be scraped as configured.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("scrape target {name:?}: {reason}")]
pub struct TargetError {
    pub name: String,
    pub reason: String,
}

impl Target {
    /// Checks what can be checked before the first scrape.
    pub fn validate(&self) -> Result<(), TargetError> {
        self.prepare().map(|_| ())
    }

    /// The `instance` label this target's samples get: `host:port` of its URL.
    pub fn instance(&self) -> Result<String, TargetError> {
        self.prepare().map(|p| p.instance)
    }

    fn error(&self, reason: impl Into<String>) -> TargetError {
        TargetError {
            name: self.name.clone(),
            reason: reason.into(),
        }
    }

    fn prepare(&self) -> Result<Prepared, TargetError> {
        if self.name.is_empty() {
            return Err(self.error("the name (the job label) is empty"));
        }
        // The URL is never quoted back: it may carry a password.
        let url =
            reqwest::Url::parse(&self.url).map_err(|e| self.error(format!("invalid URL: {e}")))?;
        match url.scheme() {
            "http" => {}
            "https" => {
                return Err(self.error(
                    "https targets are not supported yet (tocsin is built without TLS); \
                     use http://",
                ));
            }
            other => {
                return Err(self.error(format!("unsupported URL scheme {other:?}; use http://")));
            }
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| self.error("the URL has no host"))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let instance = format!("{host}:{port}");
        if self.interval.is_zero() {
            return Err(self.error("the interval is zero"));
        }
        if self.timeout.is_zero() {
            return Err(self.error("the timeout is zero"));
        }
        if self.timeout > self.interval {
            return Err(self.error(format!(
                "the timeout ({}) is longer than the interval ({})",
                humantime::format_duration(self.timeout),
                humantime::format_duration(self.interval)
            )));
        }
        if let Some((bad, _)) = self
            .labels
            .iter()
            .find(|(k, _)| !labels::valid_name(k) || labels::reserved_name(k))
        {
            return Err(self.error(format!("invalid label name {bad:?}")));
        }
        let labels = Labels::from_pairs([("job", self.name.as_str()), ("instance", &instance)])
            .merged(self.labels.iter());
        Ok(Prepared {
            name: self.name.clone(),
            instance,
            url,
            interval: self.interval,
            timeout: self.timeout,
            labels,
        })
    }
}

/// Checks every target, and that no two would write the same `up` series.
pub fn validate(targets: &[Target]) -> Result<(), TargetError> {
    let mut seen = HashSet::new();
    for t in targets {
        let p = t.prepare()?;
        if !seen.insert(p.labels.clone()) {
            return Err(t.error(format!("another target has the same labels {}", p.labels)));
        }
    }
    Ok(())
}

/// A validated target.
#[derive(Clone, Debug)]
struct Prepared {
    name: String,
    instance: String,
    url: reqwest::Url,
    interval: Duration,
    timeout: Duration,
    /// `job`, `instance` and the target's labels.
    labels: Labels,
}

/// Where a scrape's samples go: one batch per scrape (the target's samples, the
/// stale markers owed, `up` and the scrape's own metrics), taken whole or refused
/// with a reason; a refusal sets `up` to 0. Its future may wait until the batch is
/// durable.
pub type Sink = Arc<
    dyn Fn(
            Vec<IncomingSample>,
        ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// What one scrape may take.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// The largest body read, in bytes; a larger one fails the scrape. (What a
    /// sample may carry is bounded where every intake is, by the sink.)
    pub body_limit: usize,
}

/// Starts one scrape loop per target, each handing its scrapes to `sink`; they
/// stop when `shutdown` changes (or its sender is dropped). A target that does not
/// validate is logged and skipped. The handle finishes when every loop has.
pub fn spawn(
    targets: Vec<Target>,
    limits: Limits,
    sink: Sink,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if targets.is_empty() {
            return;
        }
        let client = match crate::tls::http_client()
            // Scrape targets are addressed directly, as Prometheus does without
            // `proxy_url`: an HTTP_PROXY meant for something else must not apply.
            .no_proxy()
            .user_agent(concat!("tocsin/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %chain(&e), "cannot build the scrape HTTP client; no target is scraped");
                return;
            }
        };
        let mut loops = JoinSet::new();
        let mut seen = HashSet::new();
        for target in targets {
            let prepared = match target.prepare() {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(scrape_target = %target.name, error = %e, "scrape target skipped");
                    continue;
                }
            };
            if !seen.insert(prepared.labels.clone()) {
                tracing::error!(scrape_target = %target.name, labels = %prepared.labels, "scrape target skipped: another target has the same labels");
                continue;
            }
            tracing::info!(scrape_target = %prepared.name, instance = %prepared.instance, interval = ?prepared.interval, "scraping");
            let scraper = Scraper {
                client: client.clone(),
                limits,
                sink: sink.clone(),
            };
            loops.spawn(run(scraper, prepared, shutdown.clone()));
        }
        while let Some(done) = loops.join_next().await {
            if let Err(e) = done {
                tracing::error!(error = %e, "scrape loop ended abnormally");
            }
        }
    })
}

/// What a loop remembers between scrapes.
#[derive(Default)]
struct LoopState {
    /// Series of the last scrape (without their own timestamps): a stale marker is
    /// owed to each that the next scrape lacks.
    previous: HashSet<(String, Labels)>,
    /// The last failure, so a target that stays down is reported once, not on every
    /// scrape.
    failing: Option<String>,
}

/// What every loop shares.
#[derive(Clone)]
struct Scraper {
    client: reqwest::Client,
    limits: Limits,
    sink: Sink,
}

async fn run(scraper: Scraper, target: Prepared, mut shutdown: watch::Receiver<bool>) {
    if *shutdown.borrow_and_update() {
        return;
    }
    let mut interval = tokio::time::interval(target.interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut state = LoopState::default();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            _ = interval.tick() => {}
        }
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            () = scrape_once(&scraper, &target, &mut state) => {}
        }
    }
    tracing::debug!(scrape_target = %target.name, instance = %target.instance, "scrape loop stopped");
}

/// Why a scrape failed.
#[derive(Debug)]
enum ScrapeError {
    Http(String),
    Status(reqwest::StatusCode),
    Timeout(Duration),
    TooLarge(usize),
    Parse(LineError),
    Refused(String),
}

impl fmt::Display for ScrapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScrapeError::Http(e) => write!(f, "{e}"),
            ScrapeError::Status(s) => write!(f, "server returned HTTP status {s}"),
            ScrapeError::Timeout(t) => {
                write!(f, "timed out after {}", humantime::format_duration(*t))
            }
            ScrapeError::TooLarge(limit) => write!(f, "body is larger than {limit} bytes"),
            ScrapeError::Parse(e) => write!(f, "invalid exposition: {e}"),
            ScrapeError::Refused(e) => write!(f, "samples refused: {e}"),
        }
    }
}

/// An error with its causes, which is where reqwest says what went wrong.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

async fn fetch(
    client: &reqwest::Client,
    target: &Prepared,
    limit: usize,
) -> Result<Vec<u8>, ScrapeError> {
    // Without the URL, which may carry a password.
    let http = |e: reqwest::Error| ScrapeError::Http(chain(&e.without_url()));
    let mut response = client
        .get(target.url.clone())
        .header(
            reqwest::header::ACCEPT,
            "text/plain;version=0.0.4;q=1,*/*;q=0.1",
        )
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", target.timeout.as_secs_f64()),
        )
        .send()
        .await
        .map_err(http)?;
    if !response.status().is_success() {
        return Err(ScrapeError::Status(response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(http)? {
        if body.len() + chunk.len() > limit {
            return Err(ScrapeError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Fetches and parses one scrape into labelled samples.
async fn collect(
    client: &reqwest::Client,
    limits: Limits,
    target: &Prepared,
) -> Result<Vec<IncomingSample>, ScrapeError> {
    let body = tokio::time::timeout(target.timeout, fetch(client, target, limits.body_limit))
        .await
        .map_err(|_| ScrapeError::Timeout(target.timeout))??;
    let parsed = exposition::parse(&body).map_err(ScrapeError::Parse)?;
    Ok(parsed
        .into_iter()
        .map(|SampleLine { sample, .. }| {
            let labels = attach(&sample.labels, &target.labels);
            IncomingSample { labels, ..sample }
        })
        .collect())
}

/// A scraped label set with the target's labels added; a scraped label whose name
/// the target uses becomes `exported_<name>`.
fn attach(scraped: &Labels, target: &Labels) -> Labels {
    let mut pairs: Vec<(String, &str)> = target.iter().map(|(k, v)| (k.to_string(), v)).collect();
    for (k, v) in scraped.iter() {
        let mut name = k.to_string();
        while target.get(&name).is_some() || (name != k && scraped.get(&name).is_some()) {
            name = format!("exported_{name}");
        }
        pairs.push((name, v));
    }
    Labels::from_pairs(pairs)
}

async fn scrape_once(scraper: &Scraper, target: &Prepared, state: &mut LoopState) {
    let started = Instant::now();
    let result = collect(&scraper.client, scraper.limits, target).await;
    let elapsed = started.elapsed().as_secs_f64();
    let meta = |up: f64, count: usize| {
        [
            ("up", up),
            ("scrape_duration_seconds", elapsed),
            ("scrape_samples_scraped", count as f64),
        ]
        .map(|(metric, value)| IncomingSample {
            metric: metric.to_string(),
            labels: target.labels.clone(),
            value,
            at: None,
        })
    };
    let outcome = match result {
        Ok(mut samples) => {
            let current: HashSet<(String, Labels)> = samples
                .iter()
                .filter(|s| s.at.is_none())
                .map(|s| (s.metric.clone(), s.labels.clone()))
                .collect();
            let count = samples.len();
            samples.extend(stale(&state.previous, &current));
            samples.extend(meta(1.0, count));
            match hand_over(&scraper.sink, samples).await {
                Ok(()) => {
                    state.previous = current;
                    Ok(())
                }
                Err(e) => Err(ScrapeError::Refused(e)),
            }
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => {
            if state.failing.take().is_some() {
                tracing::info!(scrape_target = %target.name, instance = %target.instance, "scrape recovered");
            }
        }
        Err(e) => {
            let message = e.to_string();
            if state.failing.as_deref() != Some(message.as_str()) {
                tracing::warn!(scrape_target = %target.name, instance = %target.instance, error = %message, "scrape failed");
            } else {
                tracing::debug!(scrape_target = %target.name, instance = %target.instance, error = %message, "scrape failed");
            }
            state.failing = Some(message);
            let mut samples = stale(&state.previous, &HashSet::new());
            samples.extend(meta(0.0, 0));
            state.previous.clear();
            if let Err(e) = hand_over(&scraper.sink, samples).await {
                tracing::error!(scrape_target = %target.name, instance = %target.instance, error = %e, "cannot record up=0");
            }
        }
    }
}

/// A stale marker for each series of `previous` that is not in `current`.
fn stale(
    previous: &HashSet<(String, Labels)>,
    current: &HashSet<(String, Labels)>,
) -> Vec<IncomingSample> {
    previous
        .iter()
        .filter(|k| !current.contains(*k))
        .map(|(metric, labels)| IncomingSample {
            metric: metric.clone(),
            labels: labels.clone(),
            value: stale_marker(),
            at: None,
        })
        .collect()
}

/// Hands one batch to the sink.
async fn hand_over(sink: &Sink, samples: Vec<IncomingSample>) -> Result<(), String> {
    sink(samples).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Target {
        Target {
            name: "node".into(),
            url: url.into(),
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
            labels: Labels::from_pairs([("env", "prod")]),
        }
    }

    #[test]
    fn instance_is_host_and_port() {
        assert_eq!(
            target("http://10.0.0.1:9100/metrics").instance().unwrap(),
            "10.0.0.1:9100"
        );
        assert_eq!(
            target("http://db.local/metrics").instance().unwrap(),
            "db.local:80"
        );
        assert_eq!(
            target("http://[::1]:9100/metrics").instance().unwrap(),
            "[::1]:9100"
        );
        let p = target("http://h:1/m").prepare().unwrap();
        assert_eq!(
            p.labels,
            Labels::from_pairs([("job", "node"), ("instance", "h:1"), ("env", "prod")])
        );
    }

    #[test]
    fn bad_targets_are_refused_with_a_reason() {
        let cases: Vec<(Target, &str)> = vec![
            (
                target("https://h:9100/metrics"),
                "https targets are not supported yet",
            ),
            (target("ftp://h/metrics"), "unsupported URL scheme \"ftp\""),
            (target("not a url"), "invalid URL"),
            (
                Target {
                    name: String::new(),
                    ..target("http://h:1/")
                },
                "name",
            ),
            (
                Target {
                    interval: Duration::ZERO,
                    ..target("http://h:1/")
                },
                "interval is zero",
            ),
            (
                Target {
                    timeout: Duration::ZERO,
                    ..target("http://h:1/")
                },
                "timeout is zero",
            ),
            (
                Target {
                    timeout: Duration::from_secs(20),
                    ..target("http://h:1/")
                },
                "longer than the interval",
            ),
            (
                Target {
                    labels: Labels::from_pairs([("__x", "1")]),
                    ..target("http://h:1/")
                },
                "invalid label name",
            ),
        ];
        for (t, want) in cases {
            let e = t.validate().unwrap_err().to_string();
            assert!(e.contains(want), "{e:?} lacks {want:?}");
        }
        let twice = [target("http://h:1/a"), target("http://h:1/b")];
        assert!(validate(&twice).unwrap_err().reason.contains("same labels"));
        assert!(validate(&[target("http://h:1/a"), target("http://h:2/a")]).is_ok());
    }

    #[tokio::test]
    async fn fetch_errors_do_not_quote_credentials() {
        // Bind then drop a listener: its port refuses connections.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = target(&format!("http://scraper:s3cret@127.0.0.1:{port}/metrics"));
        let p = t.prepare().unwrap();
        assert_eq!(p.instance, format!("127.0.0.1:{port}"));
        let client = crate::tls::http_client().no_proxy().build().unwrap();
        let e = fetch(&client, &p, 1024).await.unwrap_err().to_string();
        assert!(!e.contains("s3cret") && e.contains("onnect"), "{e}");
    }

    #[test]
    fn clashing_scraped_labels_are_exported() {
        let t = Labels::from_pairs([("job", "node"), ("instance", "h:1")]);
        let s = Labels::from_pairs([("job", "batch"), ("exported_job", "x"), ("path", "/")]);
        assert_eq!(
            attach(&s, &t),
            Labels::from_pairs([
                ("job", "node"),
                ("instance", "h:1"),
                ("exported_exported_job", "batch"),
                ("exported_job", "x"),
                ("path", "/"),
            ])
        );
    }
}
