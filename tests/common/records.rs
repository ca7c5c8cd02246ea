//! Records the store tests write (alerts, timeline entries at a fixed time) and a
//! temporary directory for their files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tocsin::alert::{Alert, NotifyReason, State, TimelineEntry};
use tocsin::clock::Timestamp;
use tocsin::escalation::Address;
use tocsin::labels::Labels;
use tocsin::notify::AlertSnapshot;
use tocsin::outbox::Delivery;

pub const T: Timestamp = Timestamp(1_700_000_000_000);

pub fn alert(name: &str, host: &str) -> Alert {
    let labels = Labels::from_pairs([("alertname", name), ("host", host)]);
    Alert::new(labels.fingerprint(), name.to_string(), labels)
}

pub fn firing(host: &str, incident: u64) -> Alert {
    let mut a = alert("HighCpu", host);
    a.state = State::Firing;
    a.incident = Some(incident);
    a.active_since = Some(T);
    a.fired_at = Some(T + Duration::from_secs(900));
    a.value = 0.97;
    a
}

pub fn entry(at: i64, from: State, to: State, reason: &str) -> TimelineEntry {
    TimelineEntry {
        at: Timestamp(at),
        from,
        to,
        actor: None,
        via: None,
        reason: reason.to_string(),
        note: None,
    }
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "tocsin-store-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A page owed to Slack about `a`, delivery `id`.
pub fn delivery(id: u64, a: &Alert) -> Delivery {
    Delivery {
        id,
        key: format!("k{id}"),
        address: Address::Slack {
            channel: "#alerts".into(),
        },
        reason: NotifyReason::Firing,
        level: 1,
        alert: AlertSnapshot::of(a, Default::default()).into(),
        group: "g".into(),
        due_at: T,
        created_at: T,
        attempts: 0,
        last_error: None,
        fallback_for: None,
        fell_back: false,
    }
}
