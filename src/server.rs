//! The server: the one place that knows the daemon, the HTTP routes, the scrape
//! loops and the rules files together. `start(config, clock)` opens the daemon,
//! binds the listener (port 0 in tests), and runs the daemon's loop, HTTP, scraping
//! and the rules watcher until [`Running::stop`].

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
    let router = crate::http::router(daemon.clone());
    let reloader = watch_rules(daemon.clone(), rx.clone());
    let mut stop_rx = rx;
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = stop_rx.changed().await;
        });
        let (served, ()) = tokio::join!(serve, reloader);
        // Scrape loops hold the daemon (and so the redb file): wait for them too.
        let _ = scraper.await;
        looping.stop().await;
        if let Err(e) = served {
            tracing::error!(error = %e, "server stopped");
        }
    });
    tracing::info!(%addr, "tocsin listening");
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
        max_labels: daemon.config().limits.max_labels,
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
