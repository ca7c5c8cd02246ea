//! Persistence: alert state, timelines, escalations, the outbox and the
//! notification log, behind one narrow interface ([`Store`]) so the daemon does not
//! know which database holds them. [`RedbStore`] is the embedded backend (one
//! redb file); [`PgStore`] keeps the same tables in PostgreSQL, for replicas
//! that share one state (`docs/ha.md`).
//!
//! Invariants every backend keeps:
//! - A [`Batch`] is one transaction: after a crash either all of a step's changes
//!   are there or none are. A [`Durability::Immediate`] commit is durable when it
//!   returns; a [`Durability::Deferred`] one becomes durable with the next immediate
//!   commit or [`Store::sync`].
//! - Incident ids are never reused: `next_incident` only grows, and never falls
//!   below an id already stored.
//! - Timeline entries are append-only, in order per alert.

pub mod codec;
mod embedded;
mod error;
mod journal;
mod lease;
mod pg_batch;
mod pg_schema;
mod postgres;
mod schema;
mod tidy;
pub mod transfer;

use std::collections::HashMap;

use crate::alert::{Alert, TimelineEntry};
use crate::clock::Timestamp;
use crate::escalation::state::Escalation;
use crate::labels::Fingerprint;
use crate::outbox::Delivery;
use crate::silence::Silence;
pub use embedded::RedbStore;
pub use error::StoreError;
pub use pg_schema::PG_SCHEMA_VERSION;
pub use postgres::PgStore;
pub use schema::SCHEMA_VERSION;

/// What the daemon keeps in memory, as last committed: read once at start, and
/// again after a failed commit to drop what was not made durable.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Loaded {
    /// By fingerprint, sized as read: the engine takes this map as its own, so a
    /// start never holds the alerts twice (a list, then the map).
    pub alerts: HashMap<Fingerprint, Alert>,
    pub next_incident: u64,
    /// Every silence, expired ones too (they are history).
    pub silences: Vec<Silence>,
    /// By fingerprint, as the daemon holds them.
    pub escalations: HashMap<Fingerprint, Escalation>,
    /// Every delivery still owed.
    pub outbox: Vec<Delivery>,
    pub next_delivery: u64,
    /// Every scheduled job and when it last ran: the reports, and the marks the
    /// outbox's messages left (a Slack channel's pace, a phone number's window).
    pub jobs: Vec<(String, Timestamp)>,
}

/// When a commit must be on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Before the commit returns: every state change and every message owed.
    Immediate,
    /// With the next immediate commit or sync: only records whose loss in a crash
    /// repeats work rather than losing it (a delivery's settlement: the message is
    /// sent again under its idempotency key).
    Deferred,
}

/// The daemon's state store. Methods block (disk I/O): the daemon calls them from
/// blocking threads only.
pub trait Store: Send + Sync {
    /// Everything the daemon holds in memory.
    fn load(&self) -> Result<Loaded, StoreError>;
    /// Writes `batch` in one transaction: all of it or, on error, none.
    fn commit(&self, batch: &Batch, durability: Durability) -> Result<(), StoreError>;
    /// Makes deferred commits durable, if there are any.
    fn sync(&self) -> Result<(), StoreError>;
    /// One alert's timeline, oldest first.
    fn timeline(&self, fp: Fingerprint) -> Result<Vec<TimelineEntry>, StoreError>;
    /// Whether the notification log has this idempotency key: the message went out.
    fn was_sent(&self, key: &str) -> Result<bool, StoreError>;
    /// The channel's reference of the last message about `fp` on `address`.
    fn reference(&self, fp: Fingerprint, address: &str) -> Result<Option<String>, StoreError>;
    /// [`Store::reference`] of several (alert, address) pairs, in their order: a
    /// message about many alerts asks once, which over a network is one round
    /// trip instead of one per alert (under the core's lock).
    fn references(
        &self,
        wanted: &[(Fingerprint, String)],
    ) -> Result<Vec<Option<String>>, StoreError> {
        wanted
            .iter()
            .map(|(fp, a)| self.reference(*fp, a))
            .collect()
    }
    /// Forgets notification-log keys confirmed before `before`.
    fn prune_sent(&self, before: Timestamp) -> Result<usize, StoreError>;
    /// The alert incident `id` was opened for, while the store still holds it
    /// (pruned with its alert once past retention).
    fn incident(&self, id: u64) -> Result<Option<Fingerprint>, StoreError>;
    /// The lease under which this process may act on the state (commit, send), or
    /// None while another replica holds it. A store only this process uses (redb)
    /// always answers `Some(0)`. A shared store (PostgreSQL) answers the fencing
    /// epoch of the lease it holds: a new number each time it takes the lease over,
    /// when the state must be read again (another replica may have changed it), and
    /// every commit is refused unless made under the lease it names.
    fn lease(&self) -> Option<u64> {
        Some(0)
    }
    /// The daemon read the state under lease `epoch` and acts under it from now
    /// on: a shared store fences every commit with this epoch, not with a lease
    /// taken since that the state in memory does not know of yet.
    fn act_under(&self, _epoch: u64) {}
    /// Where other replicas reach this one (`server.advertise_url`): a shared
    /// store names it, while this replica holds the lease, to the others.
    fn advertise(&self, _url: &str) {}
    /// The URL of the replica that holds the lease, while another one does: a
    /// standby forwards writes there. None with a store of this process alone.
    fn holder_url(&self) -> Option<String> {
        None
    }
    /// The 32-byte key named `name` that every replica signs with alike, made
    /// once by the first that asks. None: the store is this process' alone, and
    /// a key drawn at start serves.
    fn shared_key(&self, _name: &str) -> Result<Option<[u8; 32]>, StoreError> {
        Ok(None)
    }
}

/// Everything one step (an evaluation, an operator action, a delivery settled)
/// changed, written together.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Batch {
    /// Alerts to write as they are now. An inactive alert with no incident is
    /// deleted instead: it has nothing to remember.
    pub alerts: Vec<Alert>,
    /// Alerts to delete.
    pub removed: Vec<Fingerprint>,
    /// Appended to each alert's timeline, in this order.
    pub timeline: Vec<(Fingerprint, TimelineEntry)>,
    /// The next incident id to hand out; the stored counter never goes back.
    pub next_incident: u64,
    /// Silences to write as they are now (created, or expired early).
    pub silences: Vec<Silence>,
    /// Escalations to write as they are now; None deletes the alert's escalation.
    pub escalations: Vec<(Fingerprint, Option<Escalation>)>,
    /// Outbox deliveries to write (new, or rescheduled).
    pub outbox: Vec<Delivery>,
    /// Outbox deliveries done with.
    pub outbox_done: Vec<u64>,
    /// Idempotency keys confirmed sent, and when.
    pub sent: Vec<(String, Timestamp)>,
    /// Message references per (alert, address), for later updates.
    pub references: Vec<(Fingerprint, String, String)>,
    /// Scheduled jobs that ran, and when.
    pub jobs: Vec<(String, Timestamp)>,
    /// Alerts past retention: the alert, its whole timeline, its escalation, its
    /// message references and its incident number's entry are deleted. The
    /// incident counter is not touched.
    pub forgotten: Vec<Fingerprint>,
    /// Per alert, timeline entries before this instant are deleted (history of
    /// incidents past retention).
    pub timeline_before: Vec<(Fingerprint, Timestamp)>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
            && self.removed.is_empty()
            && self.timeline.is_empty()
            && self.silences.is_empty()
            && self.escalations.is_empty()
            && self.outbox.is_empty()
            && self.outbox_done.is_empty()
            && self.sent.is_empty()
            && self.references.is_empty()
            && self.jobs.is_empty()
            && self.forgotten.is_empty()
            && self.timeline_before.is_empty()
    }

    /// Adds `other`'s records to this batch, to write both in one commit. For
    /// batches about different records (settlements of different messages):
    /// within each list, this batch's go first.
    pub fn append(&mut self, other: Batch) {
        let Batch {
            alerts,
            removed,
            timeline,
            next_incident,
            silences,
            escalations,
            outbox,
            outbox_done,
            sent,
            references,
            jobs,
            forgotten,
            timeline_before,
        } = other;
        self.alerts.extend(alerts);
        self.removed.extend(removed);
        self.timeline.extend(timeline);
        self.next_incident = self.next_incident.max(next_incident);
        self.silences.extend(silences);
        self.escalations.extend(escalations);
        self.outbox.extend(outbox);
        self.outbox_done.extend(outbox_done);
        self.sent.extend(sent);
        self.references.extend(references);
        self.jobs.extend(jobs);
        self.forgotten.extend(forgotten);
        self.timeline_before.extend(timeline_before);
    }
}

/// Maps a PostgreSQL error to the store's, saying what was being done. The text is
/// the server's message or the client's; neither quotes the connection URL.
fn db_error(doing: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::Postgres {
        doing,
        message: match e.as_db_error() {
            Some(db) => format!("{}: {}", db.severity(), db.message()),
            None => match std::error::Error::source(&e) {
                Some(source) => format!("{e}: {source}"),
                None => e.to_string(),
            },
        },
    }
}
