//! The `flood` phase of the load harness: what a flood of idle and slow-header
//! connections does to a tocsin daemon (issue 14). The peer is the same daemon
//! before the flood, in the same run: `/healthz` (a fresh connection each time, as a
//! prober makes) and `POST /api/v2/alerts` → webhook, before and during.
//!
//! The flood is kept up: `FLOOD` tasks each open a connection, stay silent (or
//! send a request's headers a byte every 200 ms), and open another a second after
//! tocsin closes theirs, until the phase ends (a connection storm as fast as the
//! harness can go measures the CPU, not the descriptors).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::{Receiver, Report, Storage, Workspace, start_tocsin, v2_crossings};

/// Connections the harness holds open at once: most of its own descriptor limit
/// (20,000 on the build machine), four times tocsin's default `max_connections`.
const FLOOD: usize = 15_000;
/// Of which send a request's headers a byte every 200 ms, never finishing.
const SLOW: usize = 1_000;
/// `/healthz` probes before and during the flood.
const PROBES: usize = 100;

pub async fn phase(
    ws: &Workspace,
    http: &reqwest::Client,
    receiver: &Arc<Receiver>,
    rx: &mut mpsc::UnboundedReceiver<(String, Duration)>,
    report: &mut Report,
) {
    // The harness holds the flood's sockets: its own limit must allow them.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let (t, base) = start_tocsin(ws, http, "flood", Storage::Disk).await;
    let addr = base.trim_start_matches("http://").to_string();
    // A fresh connection per request, before and during: at the limit tocsin closes
    // the connections idle longest, a pooled one included.
    let http = &fresh_client();

    let before = probes(&base).await;
    report.latencies("tocsin_healthz_before_flood", before, PROBES);
    let pages = v2_crossings(http, &base, "flood-before", receiver, rx).await;
    report.latencies(
        "tocsin_v2_to_webhook_before_flood",
        pages,
        super::V2_CROSSINGS,
    );

    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(FLOOD);
    for i in 0..FLOOD {
        let (addr, stop) = (addr.clone(), stop.clone());
        let (opened, refused) = (opened.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match TcpStream::connect(&addr).await {
                    Ok(s) => {
                        opened.fetch_add(1, Ordering::Relaxed);
                        hold(s, i < SLOW, &stop).await;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(_) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
    }
    // Let the flood build up to tocsin's limit and past it.
    let started = Instant::now();
    let mut held_max = 0.0f64;
    while started.elapsed() < Duration::from_secs(20) {
        held_max = held_max.max(gauge(http, &base, "tocsin_http_connections ").await);
        if opened.load(Ordering::Relaxed) >= FLOOD as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "flood: {} connections opened, {} failed; probing",
        opened.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed)
    );
    let during = probes(&base).await;
    held_max = held_max.max(gauge(http, &base, "tocsin_http_connections ").await);
    eprintln!("flood: {} probes answered; paging", during.len());
    report.latencies("tocsin_healthz_during_flood", during, PROBES);
    let pages = v2_crossings(http, &base, "flood-during", receiver, rx).await;
    report.latencies(
        "tocsin_v2_to_webhook_during_flood",
        pages,
        super::V2_CROSSINGS,
    );
    held_max = held_max.max(gauge(http, &base, "tocsin_http_connections ").await);

    report.emit(
        "flood_connections_opened",
        opened.load(Ordering::Relaxed) as f64,
        "connections",
    );
    report.emit(
        "flood_connect_failures",
        refused.load(Ordering::Relaxed) as f64,
        "connections",
    );
    report.emit("tocsin_http_connections_held_max", held_max, "connections");
    report.emit(
        "tocsin_http_connection_limit",
        gauge(http, &base, "tocsin_http_connection_limit ").await,
        "connections",
    );
    report.emit(
        "tocsin_http_connections_shed_idle",
        gauge(
            http,
            &base,
            "tocsin_http_connections_shed_total{kind=\"idle\"} ",
        )
        .await,
        "connections",
    );
    report.emit("tocsin_peak_rss_flood", t.peak_mib(), "MiB");
    for q in ["p50", "p99"] {
        report.ratio(
            &format!("healthz_{q}_during_over_before_flood"),
            &format!("tocsin_healthz_during_flood_{q}"),
            &format!("tocsin_healthz_before_flood_{q}"),
        );
        report.ratio(
            &format!("v2_to_webhook_{q}_during_over_before_flood"),
            &format!("tocsin_v2_to_webhook_during_flood_{q}"),
            &format!("tocsin_v2_to_webhook_before_flood_{q}"),
        );
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.abort();
    }
}

/// Holds one flood connection until tocsin closes it or the phase ends.
async fn hold(mut s: TcpStream, slow: bool, stop: &AtomicBool) {
    let mut buf = [0u8; 256];
    if slow {
        if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .is_err()
        {
            return;
        }
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if s.write_all(b"a").await.is_err() {
                return;
            }
        }
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        let read = tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            return;
        }
    }
}

/// `PROBES` sequential `GET /healthz`, each on a fresh connection; milliseconds
/// (a probe that fails counts as not delivered).
async fn probes(base: &str) -> Vec<f64> {
    let http = fresh_client();
    let mut out = Vec::with_capacity(PROBES);
    for _ in 0..PROBES {
        let t0 = Instant::now();
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            out.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    out
}

fn fresh_client() -> reqwest::Client {
    tocsin::tls::http_client()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}

/// One sample of tocsin's own `/metrics` (0 if it cannot be read).
async fn gauge(http: &reqwest::Client, base: &str, prefix: &str) -> f64 {
    let Ok(r) = http.get(format!("{base}/metrics")).send().await else {
        return 0.0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}
