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
pub const SCHEMA_VERSION: u64 = 2;

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

type Migration = fn(&WriteTransaction) -> Result<(), StoreError>;

/// `MIGRATIONS[v]` turns a version `v` file into version `v + 1`.
const MIGRATIONS: [Migration; SCHEMA_VERSION as usize] = [v0_to_v1, v1_to_v2];

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
