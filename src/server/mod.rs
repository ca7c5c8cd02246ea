//! The server: the one place that knows the daemon, the HTTP routes, the scrape
//! loops and the rules files together. `start(config, clock)` opens the daemon,
//! binds the listener (port 0 in tests), and runs the daemon's loop, HTTP, scraping
//! and the rules watcher until [`Running::stop`]. `connections` is the listener:
//! connection limits and timeouts, so no client can take the descriptors pages
//! need.

mod connections;

pub use connections::{Budget, budget};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::Config;
use crate::daemon::{Daemon, OpenError};
use crate::labels::Labels;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("cannot read the signing key from the store: {0}")]
    Key(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running daemon: its address, and a handle to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub daemon: Daemon,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops serving, scraping and the loop, waits for in-flight requests and sends
    /// to finish, and writes what waits for the next evaluation.
    pub async fn stop(self) {
        tracing::info!("stopping: finishing requests and sends in flight");
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        self.daemon.log_stopping();
    }
}

/// Opens the daemon, binds `config.server.listen` (port 0 picks one), and serves
/// until stopped.
pub async fn start(config: Config, clock: Arc<dyn Clock>) -> Result<Running, ServeError> {
    crate::tls::install_crypto_provider();
    let addr = config.server.listen;
    // Opening reads the store: off the async workers (blocking threads run inside
    // the runtime, which the channels need).
    // Before anything opens a descriptor: the limit decides how many connections
    // may be held.
    let budget = budget(config.server.max_connections);
    let daemon = tokio::task::spawn_blocking(move || Daemon::open(config, clock))
        .await
        .expect("open does not panic")?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServeError::Listen { addr, source })?;
    let (tx, rx) = watch::channel(false);
    let looping = daemon.spawn_loop();
    let targets = daemon
        .config()
        .scrape
        .iter()
        .map(|t| crate::scrape::Target {
            name: t.name.clone(),
            url: t.url.clone(),
            interval: t.interval,
            timeout: t.timeout,
            labels: Labels::new(),
        })
        .collect();
    let (limits, sink) = scrape_into(&daemon);
    let scraper = crate::scrape::spawn(targets, limits, sink, rx.clone());
    // The API and the web UI on one listener; a wrong token typed into the UI's
    // login form counts against the same per-address limit as a wrong bearer.
    let failures = crate::http::failures::AuthFailures::default();
    // Replicas over PostgreSQL: writes sent to a standby go to the one that acts
    // (`http::forward`), which is told where this one is reached; the key that
    // signs web forms and relayed callers is the same on every replica.
    if let Some(url) = daemon.config().server.advertised(addr) {
        daemon.advertise(&url);
    }
    let key = daemon
        .signing_key()
        .await
        .map_err(|e| ServeError::Key(e.to_string()))?;
    let forwarder = crate::http::forward::Forwarder::new(daemon.clone(), key);
    let router = crate::http::routes_with(daemon.clone(), failures.clone(), forwarder.clone())
        .merge(crate::web::routes(
            daemon.clone(),
            failures,
            key,
            forwarder.clone(),
        ))
        .layer(axum::middleware::from_fn_with_state(
            forwarder,
            crate::http::forward::arrived,
        ));
    let reloader = watch_rules(daemon.clone(), rx.clone());
    let served = daemon.clone();
    let task = tokio::spawn(async move {
        let settings = served.config().server.clone();
        let serve = connections::serve(
            listener,
            router,
            &settings,
            budget.connections,
            served.clone(),
            rx,
        );
        tokio::join!(serve, reloader);
        // Scrape loops hold the daemon (and so the redb file): wait for them too.
        let _ = scraper.await;
        looping.stop().await;
    });
    tracing::info!(
        %addr,
        max_connections = budget.connections,
        open_files = budget.descriptors,
        "tocsin listening"
    );
    Ok(Running {
        addr,
        daemon,
        shutdown: tx,
        task,
    })
}

/// What scrape loops feeding `daemon` take: its limits, and a sink that ingests
/// each scrape's batch.
pub fn scrape_into(daemon: &Daemon) -> (crate::scrape::Limits, crate::scrape::Sink) {
    let limits = crate::scrape::Limits {
        body_limit: daemon.config().server.body_limit,
    };
    let daemon = daemon.clone();
    let sink: crate::scrape::Sink = Arc::new(move |samples| {
        let daemon = daemon.clone();
        Box::pin(async move {
            daemon
                .ingest(samples)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    });
    (limits, sink)
}

/// A stamp of the rules files (paths, sizes, modification times), so a change in
/// the rules folder is noticed by polling, without a platform file watcher.
type RulesStamp = Vec<(PathBuf, u64, Option<std::time::SystemTime>)>;

fn rules_stamp(paths: &[PathBuf]) -> RulesStamp {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            collect_stamps(p, &mut files);
        } else {
            stamp(p, &mut files);
        }
    }
    files.sort();
    files
}

fn collect_stamps(dir: &Path, out: &mut RulesStamp) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_stamps(&p, out);
        } else if p.extension().is_some_and(|e| e == crate::rules::EXTENSION) {
            stamp(&p, out);
        }
    }
}

fn stamp(p: &Path, out: &mut RulesStamp) {
    if let Ok(meta) = std::fs::metadata(p) {
        out.push((p.to_path_buf(), meta.len(), meta.modified().ok()));
    }
}

/// Reloads the rules when their files change (polled) or on SIGHUP, until stopped.
async fn watch_rules(daemon: Daemon, mut stop: watch::Receiver<bool>) {
    let paths = daemon.config().rules.paths.clone();
    let mut last = rules_stamp(&paths);
    let mut poll = tokio::time::interval(daemon.config().rules.watch_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<()>();
        let forced = tokio::select! {
            _ = poll.tick() => false,
            _ = hangup => true,
            _ = stop.changed() => return,
        };
        let now = rules_stamp(&paths);
        if !forced && now == last {
            continue;
        }
        last = now;
        // The outcome is logged and counted by `reload`.
        let _ = daemon.reload().await;
    }
}
