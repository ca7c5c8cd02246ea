//! The redb schema, in one place: every table, the schema version, and the
//! migrations from older versions.
//!
//! Values are JSON (serde_json): readable when debugging a file, and tolerant of
//! added fields, so most changes to `Alert` need no migration at all. A change that
//! does (renamed or re-keyed data) bumps [`SCHEMA_VERSION`] and adds one step to
//! [`MIGRATIONS`].

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::error::StoreError;

/// The version this build writes. Files with a newer one are refused, not guessed at.
pub const SCHEMA_VERSION: u64 = 3;

/// Counters and versions, by name.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Keys of [`META`].
pub const SCHEMA_VERSION_KEY: &str = "schema_version";
pub const NEXT_INCIDENT_KEY: &str = "next_incident";

/// Fingerprint → JSON `Alert`. Only alerts with something to remember: inactive
/// alerts that never fired are deleted.
pub const ALERTS: TableDefinition<u64, &str> = TableDefinition::new("alerts");
/// (fingerprint, seq) → JSON `TimelineEntry`; seq counts from 0 per fingerprint, so
/// a range scan reads one alert's history in order.
pub const TIMELINE: TableDefinition<(u64, u64), &str> = TableDefinition::new("timeline");
/// Incident id → fingerprint, for `ack 42`. Never rewritten: an id names one
/// firing of one alert forever.
pub const INCIDENTS: TableDefinition<u64, u64> = TableDefinition::new("incidents");

/// Silence id → JSON `Silence` (version 2 on).
pub const SILENCES: TableDefinition<&str, &str> = TableDefinition::new("silences");

/// Fingerprint → JSON `Escalation`: the next step of each alert being escalated,
/// with its deadline (version 3 on).
pub const ESCALATIONS: TableDefinition<u64, &str> = TableDefinition::new("escalations");
/// Delivery id → JSON `Delivery`: every message owed and not yet delivered.
pub const OUTBOX: TableDefinition<u64, &str> = TableDefinition::new("outbox");
/// The notification log: idempotency key → when it was confirmed sent (ms).
pub const SENT: TableDefinition<&str, i64> = TableDefinition::new("sent");
/// (fingerprint, address) → the channel's reference of the message about that
/// alert (Slack `channel:ts`), so an ack or resolve edits it.
pub const MESSAGE_REFS: TableDefinition<(u64, &str), &str> = TableDefinition::new("message_refs");
/// Scheduled jobs (reports) → when they last ran (ms).
pub const JOBS: TableDefinition<&str, i64> = TableDefinition::new("jobs");
/// Key of [`META`]: the next delivery id.
pub const NEXT_DELIVERY_KEY: &str = "next_delivery";

type Migration = fn(&WriteTransaction) -> Result<(), StoreError>;

/// `MIGRATIONS[v]` turns a version `v` file into version `v + 1`.
const MIGRATIONS: [Migration; SCHEMA_VERSION as usize] = [v0_to_v1, v1_to_v2, v2_to_v3];

/// Brings a file at version `found` up to [`SCHEMA_VERSION`], one step at a time,
/// inside the caller's transaction (so a failed migration leaves the file as it
/// was), and records the new version.
pub fn migrate(txn: &WriteTransaction, found: u64) -> Result<(), StoreError> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::UnsupportedSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for migration in &MIGRATIONS[found as usize..] {
        migration(txn)?;
    }
    txn.open_table(META)?
        .insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION)?;
    Ok(())
}

/// Version 3 adds escalations, the outbox, the notification log, message
/// references and scheduled jobs.
fn v2_to_v3(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(ESCALATIONS)?;
    txn.open_table(OUTBOX)?;
    txn.open_table(SENT)?;
    txn.open_table(MESSAGE_REFS)?;
    txn.open_table(JOBS)?;
    Ok(())
}

/// Version 2 adds silences.
fn v1_to_v2(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(SILENCES)?;
    Ok(())
}

/// Version 0 is a file with no version: a new file, or one written before versions
/// were recorded. Version 1 has every table and a `next_incident` counter.
fn v0_to_v1(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(ALERTS)?;
    txn.open_table(TIMELINE)?;
    txn.open_table(INCIDENTS)?;
    let mut meta = txn.open_table(META)?;
    if meta.get(NEXT_INCIDENT_KEY)?.is_none() {
        meta.insert(NEXT_INCIDENT_KEY, 1)?;
    }
    Ok(())
}
