//! PostgreSQL going away for 30 s under a running tocsin, three ways, one after the
//! other on the same daemon (never restarted):
//!
//! 1. the server stopped as in a crash (`pg_ctl stop -m immediate`), then started;
//! 2. every connection dropped and new ones refused (a proxy between tocsin and
//!    the server closes them all and stops listening);
//! 3. a network partition: the proxy keeps every connection open but passes no
//!    byte either way, and accepts new ones that never answer. Only tocsin's own
//!    query deadline (10 s) can tell it is down.
//!
//! While it is down, pushes, `/api/v2/alerts` and acks answer 503 with a JSON
//! reason and `/readyz` 503, for the whole 30 s: never a 2xx for what was not
//! committed. Pages owed when it went down (an alert answered 2xx just before,
//! its first page still waiting for `group_wait`) and pages that came due during it
//! (the next escalation level of an unacked alert) go out once it is back; the
//! alerts the sender re-sends fire; an ack answered 2xx before is kept; the
//! database holds exactly what was answered 2xx. A real server: the cluster of
//! this test binary, through a proxy on 127.0.0.1.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::postgres;
use common::served::Served;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tocsin::clock::{Clock, Timestamp};
use tocsin::config::{Backend, Secret};
use tocsin::escalation::{Level, Policy, Routing, Target};
use tocsin::store::{PgStore, Store};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const RULES: &str = r#"metric queue_length gauge count

alert "キュー滞留" {
  when queue_length > 100
  severity critical
}
"#;

const T0: i64 = 1_800_000_000;
/// How long each outage lasts, as the issue asks.
const OUTAGE: Duration = Duration::from_secs(30);
const GROUP_WAIT: Duration = Duration::from_secs(10);
const MIN: Duration = Duration::from_secs(60);

/// What the proxy does with the connections between tocsin and PostgreSQL.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Link {
    /// Passes bytes both ways.
    Up,
    /// Closes every connection and refuses new ones (nothing listens).
    Refused,
    /// Holds every connection, old and new, and passes nothing: a partition.
    BlackHole,
}

/// A TCP proxy on 127.0.0.1 in front of PostgreSQL, its link set on cue.
struct Proxy {
    port: u16,
    link: watch::Sender<Link>,
}

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (link, watching) = watch::channel(Link::Up);
        tokio::spawn(listen(listener, addr, upstream, watching));
        Proxy {
            port: addr.port(),
            link,
        }
    }

    fn set(&self, link: Link) {
        self.link.send_replace(link);
    }
}

/// Accepts while the link is not refused; between refusals nothing listens on
/// the port (a connection attempt is refused by the kernel), then it listens again.
async fn listen(
    mut listener: TcpListener,
    addr: std::net::SocketAddr,
    upstream: u16,
    link: watch::Receiver<Link>,
) {
    let mut cue = link.clone();
    loop {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((client, _)) = accepted {
                        tokio::spawn(pipe(client, upstream, link.clone()));
                    }
                }
                _ = cue.wait_for(|l| *l == Link::Refused) => break,
            }
        }
        drop(listener);
        if cue.wait_for(|l| *l != Link::Refused).await.is_err() {
            return;
        }
        listener = TcpListener::bind(addr).await.expect("listen again");
    }
}

/// One connection: bytes both ways while the link is up; dropped when it is
/// refused; held silent through a black hole and dropped when it ends (as the
/// server drops a connection it has not heard from).
async fn pipe(mut client: TcpStream, upstream: u16, mut link: watch::Receiver<Link>) {
    if *link.borrow() == Link::BlackHole {
        let _ = link.wait_for(|l| *l != Link::BlackHole).await;
        return;
    }
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let down = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => None,
        l = link.wait_for(|l| *l != Link::Up) => l.ok().map(|l| *l),
    };
    if down == Some(Link::BlackHole) {
        let _ = link.wait_for(|l| *l != Link::BlackHole).await;
    }
}

/// Every message is to the console at four levels: at once, then 1, 4 and 7
/// minutes on while unacked. Alerts are grouped by host.
fn routing() -> Routing {
    let level = |minutes: u32| Level {
        after: MIN * minutes,
        targets: vec![Target::Console],
        via: Vec::new(),
    };
    let policy = Policy {
        name: "default".into(),
        levels: vec![level(0), level(1), level(4), level(7)],
        repeat_interval: Duration::from_secs(24 * 3600),
        ack_timeout: None,
        fallback: Vec::new(),
        phone_severities: vec!["critical".into()],
    };
    let mut routing = Routing::console_only();
    routing.policies = BTreeMap::from([("default".into(), policy)]);
    routing.group_by = vec!["alertname".into(), "host".into()];
    routing.group_wait = GROUP_WAIT;
    routing
}

/// Fails instead of hanging: a request tocsin does not answer in 20 s (twice
/// its query deadline) is a hang.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer in 20 s"))
}

/// A page sent: incident, host, level, idempotency key.
type Page = (u64, String, u32, String);

/// The pages sent so far, in order.
fn pages(s: &Served, seen: &mut Vec<Page>) -> Vec<Page> {
    for r in s.recorder.take() {
        for a in &r.message.alerts {
            if r.message.reason == tocsin::alert::NotifyReason::Firing {
                let host = a.labels.get("host").cloned().unwrap_or_default();
                let m = &r.message;
                seen.push((a.incident.unwrap_or(0), host, m.level, m.key.clone()));
            }
        }
    }
    seen.clone()
}

/// Refusals while the database is down: a 503 with a JSON reason that never
/// quotes the URL, from every kind of write, and `/readyz` 503.
async fn assert_refused(s: &Served, url: &str, outage: usize) {
    let (status, body) = within("push", s.push(&format!("x{outage}"), 500.0)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let reason = body["error"].as_str().unwrap_or_default();
    assert!(reason.starts_with("store: "), "{reason}");
    assert!(!reason.contains(url), "the URL is never quoted: {reason}");
    let (status, body) = within("alerts", s.alertmanager(&format!("db-{outage}"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["error"].is_string(), "{body}");
    let (status, body) = within(
        "ack",
        s.post("/api/v1/alerts/1/ack", json!({"actor": "tanaka"})),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["error"].is_string(), "{body}");
    let (status, body) = within("readyz", s.get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_down_30_s_gets_503_never_2xx_and_everything_resumes_after() {
    let cluster = postgres::cluster();
    let proxy = Proxy::start(cluster.port).await;
    let direct = postgres::fresh_database("outage");
    let url = direct.replace(
        &format!("127.0.0.1:{}/", cluster.port),
        &format!("127.0.0.1:{}/", proxy.port),
    );
    assert_ne!(url, direct);
    let dir = common::daemon_dir("pg-outage", RULES);
    let mut config = common::test_config(&dir);
    config.storage.backend = Backend::Postgres {
        url: Secret::new(url.clone()),
    };
    config.channels.console.enabled = false;
    config.rules.evaluation_interval = MIN;
    config.routing = routing();
    let s = Served::open(config, Timestamp::from_secs(T0), None).await;
    let mut seen = Vec::new();

    // Before: host a fires (incident 1, never acked, so its escalation goes on)
    // and host c fires and is acked.
    assert_eq!(s.push("a", 500.0).await.0, StatusCode::OK);
    assert_eq!(s.push("c", 500.0).await.0, StatusCode::OK);
    let t = s.clock.now() + GROUP_WAIT;
    s.daemon.run_until(&s.clock, t).await;
    let (status, body) = s
        .post("/api/v1/alerts/2/ack", json!({"actor": "sato"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first: Vec<(u64, u32)> = pages(&s, &mut seen)
        .iter()
        .map(|(i, _, l, _)| (*i, *l))
        .collect();
    assert_eq!(first, [(1, 1), (2, 1)]);

    let outages: [(&str, Link); 3] = [
        ("server stopped", Link::Up),
        ("connections refused", Link::Refused),
        ("black hole", Link::BlackHole),
    ];
    for (n, &(name, link)) in outages.iter().enumerate() {
        // Just before: the alerts are refreshed, and a new one is answered 2xx
        // with its page owed in group_wait.
        for host in ["a", "c"] {
            assert_eq!(s.push(host, 500.0).await.0, StatusCode::OK);
        }
        let owed = format!("owed-{n}");
        assert_eq!(s.push(&owed, 500.0).await.0, StatusCode::OK);
        s.daemon.flush().await.unwrap();

        let began = Instant::now();
        match link {
            Link::Up => cluster.stop_server(),
            _ => proxy.set(link),
        }
        assert_refused(&s, &url, n).await;
        // Time goes on: the owed page comes due, and so does incident 1's next
        // level. (Not `run_until`: once its lease lapsed the daemon is a standby,
        // and takes no deadline until it holds the lease again.)
        s.clock.set(s.clock.now() + 2 * MIN);
        // Never a 2xx while it lasts.
        while began.elapsed() < OUTAGE {
            let (status, body) = within("readyz", s.get("/readyz")).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{name}: {body}");
            let (status, body) = within("alerts", s.alertmanager(&format!("db-{n}"))).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{name}: {body}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        match link {
            Link::Up => cluster.start_server(),
            _ => proxy.set(Link::Up),
        }
        eprintln!("{name}: down {:?}", began.elapsed());

        // Ready again without a restart, with no request needed: the evaluation
        // deadline tries a write (bounded wait, real time for the lease).
        let t = s.clock.now() + MIN;
        within("the loop", s.daemon.run_until(&s.clock, t)).await;
        let until = Instant::now() + Duration::from_secs(15);
        while s.get("/readyz").await.0 != StatusCode::OK {
            assert!(Instant::now() < until, "{name}: not ready after it");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        s.daemon.caught_up().await;
        // The sender re-sends what was refused; it fires and is paged.
        let (status, body) = s.alertmanager(&format!("db-{n}")).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        let t = s.clock.now() + GROUP_WAIT;
        s.daemon.run_until(&s.clock, t).await;
        let sent = pages(&s, &mut seen);
        let has = |host: &str, level: u32| sent.iter().any(|(_, h, l, _)| h == host && *l == level);
        assert!(has(&owed, 1), "{name}: the owed page: {sent:?}");
        assert!(has("a", n as u32 + 2), "{name}: the level due: {sent:?}");
        assert!(
            has(&format!("db-{n}"), 1),
            "{name}: the re-sent alert: {sent:?}"
        );
        assert!(
            sent.iter().all(|(_, h, l, _)| h != "c" || *l == 1),
            "{name}: the acked alert escalated: {sent:?}"
        );
        let acked = s.alert("2").await;
        assert_eq!(acked["state"], "acknowledged", "{name}: {acked}");
        let one = s.alert("1").await;
        assert_eq!(one["ack"], Value::Null, "{name}: the refused ack: {one}");
    }

    // No level of an incident paged under two keys. A page whose sending was not
    // recorded (the database was gone) goes out again under the same key, which
    // its receiver can drop: counted and printed.
    let mut keys: BTreeMap<(u64, u32), Vec<String>> = BTreeMap::new();
    for (incident, _, level, key) in &seen {
        keys.entry((*incident, *level))
            .or_default()
            .push(key.clone());
    }
    let mut again = 0;
    for ((incident, level), mut k) in keys {
        again += k.len() - 1;
        k.dedup();
        assert_eq!(
            k.len(),
            1,
            "incident {incident} level {level} paged under several keys: {k:?}"
        );
    }
    println!("{} pages, {again} sent again under their key", seen.len());
    // The database holds what was answered 2xx: a, c, the owed alerts and the
    // re-sent ones, and one ack. (The samples of a refused push are kept in memory,
    // as documented: an x host may fire at the evaluation after the outage.)
    let store = PgStore::connect(&direct).unwrap();
    let loaded = store.load().unwrap();
    let mut hosts: Vec<String> = loaded
        .alerts
        .values()
        .map(|a| a.labels.get("host").unwrap_or_default().to_string())
        .filter(|h| !h.starts_with('x'))
        .collect();
    hosts.sort();
    assert_eq!(
        hosts,
        [
            "a", "c", "db-0", "db-1", "db-2", "owed-0", "owed-1", "owed-2"
        ],
    );
    let acked: Vec<u64> = loaded
        .alerts
        .values()
        .filter(|a| a.ack.is_some())
        .filter_map(|a| a.incident)
        .collect();
    assert_eq!(acked, [2]);
    let mut numbers: Vec<u64> = loaded.alerts.values().filter_map(|a| a.incident).collect();
    numbers.sort();
    assert_eq!(
        numbers,
        (1..loaded.next_incident).collect::<Vec<_>>(),
        "no incident number was lost or reused"
    );
}
