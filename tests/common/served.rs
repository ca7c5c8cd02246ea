//! A daemon on a manual clock, its loop running and its API served on
//! 127.0.0.1, with the requests the fault tests make (the disk's and the
//! database's): their rules alert on `queue_length`.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tocsin::clock::{ManualClock, Timestamp};
use tocsin::config::Config;
use tocsin::daemon::{Daemon, LoopHandle};
use tocsin::notify::{Channels, Recorder};
use tocsin::store::Store;

pub struct Served {
    pub daemon: Daemon,
    pub clock: ManualClock,
    /// What the daemon sent.
    pub recorder: Recorder,
    _looping: LoopHandle,
    http: reqwest::Client,
    base: String,
}

impl Served {
    /// `config` opened at `t0` on a manual clock (over `store`, or the config's
    /// own), with recording channels.
    pub async fn open(config: Config, t0: Timestamp, store: Option<Box<dyn Store>>) -> Served {
        let clock = ManualClock::new(t0);
        let (channels, recorder) = Channels::recording(Arc::new(clock.clone()));
        let daemon = Daemon::open_with(config, Arc::new(clock.clone()), channels, store).unwrap();
        let looping = daemon.spawn_loop();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(axum::serve(listener, tocsin::http::router(daemon.clone())).into_future());
        Served {
            daemon,
            clock,
            recorder,
            _looping: looping,
            http: tocsin::tls::http_client().build().unwrap(),
            base: format!("http://{addr}"),
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    pub async fn push(&self, host: &str, value: f64) -> (StatusCode, Value) {
        self.post(
            "/api/v1/samples",
            json!({"samples": [{"name": "queue_length", "labels": {"host": host}, "value": value}]}),
        )
        .await
    }

    pub async fn alert(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/api/v1/alerts/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    pub fn refused(&self, reason: &str) -> f64 {
        let want = format!("tocsin_samples_refused_total{{reason=\"{reason}\"}} ");
        self.daemon
            .metrics()
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(&want).map(str::to_string))
            .map_or(0.0, |v| v.parse().unwrap())
    }

    pub async fn alertmanager(&self, host: &str) -> (StatusCode, Value) {
        let alert = json!([{
            "labels": {"alertname": "DiskFull", "host": host},
            "startsAt": "2027-01-15T08:00:00Z",
        }]);
        self.post("/api/v2/alerts", alert).await
    }
}
