//! `tocsin demo`: the whole product in two minutes, for someone who has never used
//! it. The daemon runs with the shipped rules (embedded, written to a temporary
//! folder with its state) on a clock that runs [`SPEED`] times faster than the wall,
//! fed by a simulated fleet shaped like the operations spec: 100 bot accounts
//! posting, AI response times, Chrome starts, memory. [`INCIDENTS`] trip the seed's
//! rules one after another; a short escalation policy pages the console and the
//! web UI shows it all. It sends nothing outside the machine (console only) and
//! never touches `./data`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::{Clock, Timestamp, Wait};
use crate::config::Config;
use crate::escalation::{Level, Routing, Target};
use crate::labels::Labels;
use crate::series::IncomingSample;
use crate::server::{Running, start};

/// Simulated minutes per wall second by default: two hours of incidents in two
/// minutes.
pub const SPEED: u32 = 60;

/// Simulated minutes in one round of incidents; the demo starts over after it.
pub const ROUND_MINUTES: u32 = 110;

/// The bot accounts of the simulated fleet.
pub const BOTS: u32 = 100;

/// The shipped rules, embedded so the demo runs from anywhere.
const RULES: [(&str, &str); 6] = [
    ("metrics.rules", include_str!("../rules/metrics.rules")),
    ("business.rules", include_str!("../rules/business.rules")),
    ("technical.rules", include_str!("../rules/technical.rules")),
    (
        "infrastructure.rules",
        include_str!("../rules/infrastructure.rules"),
    ),
    ("security.rules", include_str!("../rules/security.rules")),
    ("scaling.rules", include_str!("../rules/scaling.rules")),
];

/// One injected incident: from `start` to `end` (simulated minutes of the round).
pub struct Incident {
    pub start: u32,
    pub end: u32,
    /// The seed rule it trips.
    pub rule: &'static str,
    pub what: &'static str,
}

/// The round, in order.
pub const INCIDENTS: [Incident; 5] = [
    Incident {
        start: 2,
        end: 30,
        rule: "異常API呼び出し",
        what: "bot-042 calls an API nobody knows",
    },
    Incident {
        start: 8,
        end: 14,
        rule: "認証失敗急増",
        what: "a burst of failed logins on bot-077",
    },
    Incident {
        start: 15,
        end: 55,
        rule: "投稿成功率低下",
        what: "the posting success rate drops to 82%",
    },
    Incident {
        start: 35,
        end: 70,
        rule: "AI応答時間異常",
        what: "AI responses slow to 45 s",
    },
    Incident {
        start: 40,
        end: 100,
        rule: "メモリ使用率危険",
        what: "bot-013 leaks memory until it is restarted",
    },
];

fn active(name: &str, minute: u32) -> bool {
    INCIDENTS
        .iter()
        .any(|i| i.rule == name && (i.start..i.end).contains(&minute))
}

/// A small deterministic wobble, so the fleet's numbers look alive and a run is
/// the same every time.
fn wobble(bot: u32, minute: u32) -> f64 {
    let x = (bot.wrapping_mul(2_654_435_761) ^ minute.wrapping_mul(40_503)) % 1000;
    f64::from(x) / 1000.0
}

/// The samples of one simulated minute of the round (`minute` in 0..ROUND_MINUTES).
pub fn samples(minute: u32) -> Vec<IncomingSample> {
    let mut out = Vec::with_capacity(BOTS as usize * 5 + 4);
    let mut push = |metric: &str, labels: Labels, value: f64| {
        out.push(IncomingSample {
            metric: metric.to_string(),
            labels,
            value,
            at: None,
        })
    };
    let service = || Labels::from_pairs([("service", "poster")]);
    let success = if active("投稿成功率低下", minute) {
        0.82
    } else {
        0.97 + wobble(0, minute) * 0.02
    };
    push("success_rate", service(), success);
    let ai = if active("AI応答時間異常", minute) {
        45.0
    } else {
        4.0 + wobble(1, minute) * 6.0
    };
    push("ai_response_time", service(), ai);
    push("cache_hit_rate", service(), 0.6 + wobble(2, minute) * 0.2);
    for bot in 1..=BOTS {
        let host = format!("bot-{bot:03}");
        let labels = || Labels::from_pairs([("host", host.as_str())]);
        let mut memory = 0.45 + wobble(bot, minute) * 0.2;
        if bot == 13 && active("メモリ使用率危険", minute) {
            // The leak: two points a minute from 60%, capped just under 100%.
            let since = minute - INCIDENTS[4].start;
            memory = (0.6 + f64::from(since) * 0.02).min(0.99);
        }
        push("memory_usage", labels(), memory);
        push("cpu_usage", labels(), 0.2 + wobble(bot + 7, minute) * 0.3);
        // Counters from the start of the round: Chrome starts that failed (rare),
        // and failed logins (a burst of eight a minute on bot-077).
        push(
            "chrome_startup_failures",
            labels(),
            f64::from(minute / 40 * u32::from(bot % 25 == 0)),
        );
        let burst = INCIDENTS[1].start..INCIDENTS[1].end;
        let auth = if bot == 77 {
            f64::from(minute.clamp(burst.start, burst.end) - burst.start) * 8.0
        } else {
            0.0
        };
        push("auth_failures", labels(), auth);
        let unknown = u32::from(bot == 42 && active("異常API呼び出し", minute));
        push("unknown_api_calls", labels(), f64::from(unknown));
    }
    out
}

/// The demo's configuration over `dir`: the shipped rules, its own state file, the
/// console only, and a short policy (the console at once, again after five
/// minutes as "level 2", every ten minutes after).
pub fn config(dir: &Path, listen: std::net::SocketAddr) -> std::io::Result<Config> {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules)?;
    for (name, text) in RULES {
        std::fs::write(rules.join(name), text)?;
    }
    let mut c = Config::default();
    c.server.listen = listen;
    c.storage.path = dir.join("data/tocsin.redb");
    c.rules.paths = vec![rules];
    let mut routing = Routing::console_only();
    if let Some(p) = routing.policies.get_mut(&routing.default_policy) {
        p.levels.push(Level {
            after: Duration::from_secs(5 * 60),
            targets: vec![Target::Console],
            via: Vec::new(),
        });
        p.repeat_interval = Duration::from_secs(10 * 60);
    }
    routing.group_wait = Duration::ZERO;
    c.routing = routing;
    Ok(c)
}

/// A clock that runs `speed` times faster than the wall, from the wall's now.
pub struct FastClock {
    origin: Timestamp,
    started: Instant,
    speed: u32,
}

impl FastClock {
    pub fn new(speed: u32) -> FastClock {
        FastClock {
            origin: crate::clock::SystemClock.now(),
            started: Instant::now(),
            speed: speed.max(1),
        }
    }
}

impl Clock for FastClock {
    fn now(&self) -> Timestamp {
        self.origin + self.started.elapsed() * self.speed
    }

    fn sleep_until(&self, t: Timestamp) -> Wait<'_> {
        Box::pin(async move {
            loop {
                let now = self.now();
                if now >= t {
                    return;
                }
                tokio::time::sleep(t.since(now) / self.speed).await;
            }
        })
    }
}

/// The demo's daemon and its folder.
pub struct Demo {
    pub running: Running,
    pub dir: PathBuf,
}

impl Demo {
    /// Starts the daemon over a fresh `dir` (whatever was there is removed).
    pub async fn start(
        dir: PathBuf,
        listen: std::net::SocketAddr,
        clock: Arc<dyn Clock>,
    ) -> Result<Demo, String> {
        let _ = std::fs::remove_dir_all(&dir);
        let config = config(&dir, listen).map_err(|e| format!("{}: {e}", dir.display()))?;
        let running = start(config, clock).await.map_err(|e| e.to_string())?;
        Ok(Demo { running, dir })
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.running.addr)
    }

    /// Pushes one simulated minute of the fleet, as its agents would.
    pub async fn feed(&self, minute: u32) -> Result<(), String> {
        self.running
            .daemon
            .ingest(samples(minute % ROUND_MINUTES))
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Stops the daemon and removes the folder.
    pub async fn stop(self) {
        self.running.stop().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `tocsin demo`: runs until `stop` completes (Ctrl-C in the binary).
pub async fn run(
    listen: std::net::SocketAddr,
    speed: u32,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("tocsin-demo-{}", std::process::id()));
    let clock = Arc::new(FastClock::new(speed));
    let demo = Demo::start(dir, listen, clock.clone()).await?;
    let wall = |minutes: u32| minutes * 60 / speed.max(1);
    println!("tocsin demo: open {}", demo.url());
    println!(
        "A fleet of {BOTS} bots, the shipped rules, a clock {speed}x faster than yours \
         (a minute every {:.1} s); its state lives in {} and is removed on exit.",
        60.0 / f64::from(speed.max(1)),
        demo.dir.display()
    );
    println!(
        "What happens (seconds from now, then again every {} s):",
        wall(ROUND_MINUTES)
    );
    for i in &INCIDENTS {
        println!("  {:>4} s  {} → {}", wall(i.start), i.what, i.rule);
    }
    println!(
        "Pages go to this console at once and again after 5 minutes (level 2). Ack one \
         from the UI to stop its escalation; each resolves when its incident ends."
    );
    println!("Ctrl-C to stop.\n");
    let feeding = async {
        let start = clock.now();
        let mut minute = 0u32;
        loop {
            if let Err(e) = demo.feed(minute).await {
                eprintln!("demo: {e}");
            }
            minute += 1;
            clock
                .sleep_until(start + Duration::from_secs(60) * minute)
                .await;
        }
    };
    tokio::select! {
        () = feeding => {}
        () = stop => {}
    }
    demo.stop().await;
    Ok(())
}
