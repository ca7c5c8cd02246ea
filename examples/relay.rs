//! What relaying a write through a standby costs: two replicas in this process
//! over a throwaway PostgreSQL cluster (the tests' harness), and the same writes
//! sent to the replica that acts and to the standby, interleaved, one at a time.
//!
//! ```sh
//! cargo run --release --example relay            # 400 of each
//! cargo run --release --example relay -- 2000
//! ```
//!
//! Each write is a new alert (`POST /api/v2/alerts`, committed before the
//! answer) or an ack; which way goes first alternates. It prints `metric value unit` lines: the median and p99 of
//! each way, and the ratio of the medians.

#[path = "../tests/common/postgres.rs"]
#[allow(dead_code)]
mod postgres;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(400);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(n));
}

fn config(dir: &std::path::Path, url: &str) -> tocsin::config::Config {
    let mut c = tocsin::config::Config::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.storage.path = dir.join("tocsin.redb");
    c.storage.backend = tocsin::config::Backend::Postgres {
        url: tocsin::config::Secret::new(url),
    };
    c.rules.paths = Vec::new();
    c.channels.console.enabled = false;
    c
}

async fn run(n: usize) {
    let url = postgres::fresh_database("relay");
    let dir = std::env::temp_dir().join(format!("tocsin-relay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let clock: Arc<dyn tocsin::clock::Clock> = Arc::new(tocsin::clock::SystemClock);
    let holder = tocsin::server::start(config(&dir, &url), clock.clone())
        .await
        .unwrap();
    let standby = tocsin::server::start(config(&dir, &url), clock)
        .await
        .unwrap();
    let http = tocsin::tls::http_client().build().unwrap();
    let (direct, relayed) = (
        format!("http://{}", holder.addr),
        format!("http://{}", standby.addr),
    );
    // Until the standby knows where the holder is.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !http
        .get(format!("{relayed}/readyz"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .starts_with("ready: standby")
    {
        assert!(
            Instant::now() < deadline,
            "the standby never found the holder"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut times: [Vec<Duration>; 4] = Default::default();
    // Which way goes first alternates: neither always follows the other's commit.
    let order = |i: usize, a, b| if i.is_multiple_of(2) { [a, b] } else { [b, a] };
    for i in 0..n {
        for (way, base) in order(i, (0, &direct), (1, &relayed)) {
            let body = json!([{"labels": {"alertname": "Relay", "i": format!("{way}-{i}")}}]);
            let started = Instant::now();
            let r = http
                .post(format!("{base}/api/v2/alerts"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            times[way].push(started.elapsed());
        }
    }
    // Acks of the incidents just opened (1..=2n), alternately.
    for i in 0..n {
        for (way, base) in order(i, (2, &direct), (3, &relayed)) {
            let id = 2 * i + way - 1;
            let started = Instant::now();
            let r = http
                .post(format!("{base}/api/v1/alerts/{id}/ack"))
                .json(&json!({"actor": "bench"}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            times[way].push(started.elapsed());
        }
    }
    let names = ["alert_direct", "alert_relayed", "ack_direct", "ack_relayed"];
    let mut medians = [Duration::ZERO; 4];
    for (i, t) in times.iter_mut().enumerate() {
        t.sort();
        medians[i] = t[t.len() / 2];
        println!("{}_p50 {:.3} ms", names[i], medians[i].as_secs_f64() * 1e3);
        println!(
            "{}_p99 {:.3} ms",
            names[i],
            t[t.len() * 99 / 100].as_secs_f64() * 1e3
        );
    }
    println!(
        "alert_relayed_over_direct {:.2} ratio",
        medians[1].as_secs_f64() / medians[0].as_secs_f64()
    );
    println!(
        "ack_relayed_over_direct {:.2} ratio",
        medians[3].as_secs_f64() / medians[2].as_secs_f64()
    );
    println!("writes_per_way {n} count");
    standby.stop().await;
    holder.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
