//! The redb schema, in one place: every table, the schema version, and the
//! migrations from older versions.
//!
//! Values are bytes in the shared record encoding (`codec.rs`: a version byte,
//! then postcard), from version 4 on; JSON before. A change to the tables (renamed
//! or re-keyed data) bumps [`SCHEMA_VERSION`] and adds one step to [`MIGRATIONS`];
//! a change to a record's layout is the codec's (its format byte).

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};

use super::codec;
use super::error::StoreError;
use crate::alert::{Alert, TimelineEntry};
use crate::escalation::state::Escalation;
use crate::outbox::Delivery;
use crate::silence::Silence;

/// The version this build writes. Files with a newer one are refused, not guessed at.
pub const SCHEMA_VERSION: u64 = 4;

/// Counters and versions, by name.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Keys of [`META`].
pub const SCHEMA_VERSION_KEY: &str = "schema_version";
pub const NEXT_INCIDENT_KEY: &str = "next_incident";

/// Fingerprint → `Alert`. Only alerts with something to remember: inactive
/// alerts that never fired are deleted.
pub const ALERTS: TableDefinition<u64, &[u8]> = TableDefinition::new("alerts");
/// (fingerprint, seq) → `TimelineEntry`; seq comes from one counter for the whole
/// file ([`NEXT_TIMELINE_KEY`]), so a range scan reads one alert's history in
/// order and appending needs no look-up of the alert's last entry.
pub const TIMELINE: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("timeline");
/// Key of [`META`]: the last journal generation folded into the file (version 4
/// on): journal files up to it are already here.
pub const JOURNAL_FOLDED_KEY: &str = "journal_folded";
/// Key of [`META`]: the next timeline seq (version 4 on).
pub const NEXT_TIMELINE_KEY: &str = "next_timeline";
/// Incident id → fingerprint, for `ack 42`. Never rewritten: an id names one
/// firing of one alert forever.
pub const INCIDENTS: TableDefinition<u64, u64> = TableDefinition::new("incidents");

/// Silence id → `Silence` (version 2 on).
pub const SILENCES: TableDefinition<&str, &[u8]> = TableDefinition::new("silences");

/// Fingerprint → `Escalation`: the next step of each alert being escalated,
/// with its deadline (version 3 on).
pub const ESCALATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("escalations");
/// Delivery id → `Delivery`: every message owed and not yet delivered.
pub const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
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
const MIGRATIONS: [Migration; SCHEMA_VERSION as usize] = [v0_to_v1, v1_to_v2, v2_to_v3, v3_to_v4];

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

/// The tables as versions 1 to 3 wrote them: JSON values.
mod v3 {
    use redb::TableDefinition;

    pub const ALERTS: TableDefinition<u64, &str> = TableDefinition::new("alerts");
    pub const TIMELINE: TableDefinition<(u64, u64), &str> = TableDefinition::new("timeline");
    pub const SILENCES: TableDefinition<&str, &str> = TableDefinition::new("silences");
    pub const ESCALATIONS: TableDefinition<u64, &str> = TableDefinition::new("escalations");
    pub const OUTBOX: TableDefinition<u64, &str> = TableDefinition::new("outbox");
}

/// Version 4 writes every value in the record encoding (`codec.rs`) instead of
/// JSON, a third of the size, and numbers timeline entries from one counter for the
/// file. Each JSON table is read whole, dropped, and written again under its name:
/// once, at the first start of this version, in the one migration transaction.
fn v3_to_v4(txn: &WriteTransaction) -> Result<(), StoreError> {
    rewrite::<Alert>(txn, v3::ALERTS, ALERTS, "alerts")?;
    rewrite_silences(txn)?;
    rewrite::<Escalation>(txn, v3::ESCALATIONS, ESCALATIONS, "escalations")?;
    rewrite::<Delivery>(txn, v3::OUTBOX, OUTBOX, "outbox")?;
    // Old seqs count from 0 per alert; the file's counter starts above all of them,
    // so every alert's entries stay in order.
    let mut next_seq = 0;
    let rows: Vec<((u64, u64), TimelineEntry)> = {
        let old = txn.open_table(v3::TIMELINE)?;
        let mut rows = Vec::with_capacity(old.len()? as usize);
        for row in old.iter()? {
            let (k, v) = row?;
            let (fp, seq) = k.value();
            next_seq = next_seq.max(seq + 1);
            let key = format!("{fp:016x}/{seq}");
            rows.push(((fp, seq), codec::from_json("timeline", key, v.value())?));
        }
        rows
    };
    txn.delete_table(v3::TIMELINE)?;
    let mut new = txn.open_table(TIMELINE)?;
    for (key, entry) in rows {
        let bytes = codec::encode("timeline", format!("{:016x}/{}", key.0, key.1), &entry)?;
        new.insert(key, bytes.as_slice())?;
    }
    txn.open_table(META)?.insert(NEXT_TIMELINE_KEY, next_seq)?;
    Ok(())
}

/// Reads every JSON value of `old`, drops it, and writes them encoded to `new`
/// (the same name, byte values).
fn rewrite<T>(
    txn: &WriteTransaction,
    old: TableDefinition<u64, &str>,
    new: TableDefinition<u64, &[u8]>,
    name: &'static str,
) -> Result<(), StoreError>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let rows: Vec<(u64, T)> = {
        let table = txn.open_table(old)?;
        let mut rows = Vec::with_capacity(table.len()? as usize);
        for row in table.iter()? {
            let (k, v) = row?;
            let key = k.value();
            rows.push((key, codec::from_json(name, key, v.value())?));
        }
        rows
    };
    txn.delete_table(old)?;
    let mut table = txn.open_table(new)?;
    for (key, value) in rows {
        table.insert(key, codec::encode(name, key, &value)?.as_slice())?;
    }
    Ok(())
}

/// [`rewrite`] for the silences, keyed by their id.
fn rewrite_silences(txn: &WriteTransaction) -> Result<(), StoreError> {
    let rows: Vec<(String, Silence)> = {
        let table = txn.open_table(v3::SILENCES)?;
        let mut rows = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            let key = k.value().to_string();
            let silence = codec::from_json("silences", &key, v.value())?;
            rows.push((key, silence));
        }
        rows
    };
    txn.delete_table(v3::SILENCES)?;
    let mut table = txn.open_table(SILENCES)?;
    for (key, silence) in rows {
        let bytes = codec::encode("silences", &key, &silence)?;
        table.insert(key.as_str(), bytes.as_slice())?;
    }
    Ok(())
}

/// Version 3 adds escalations, the outbox, the notification log, message
/// references and scheduled jobs.
fn v2_to_v3(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(v3::ESCALATIONS)?;
    txn.open_table(v3::OUTBOX)?;
    txn.open_table(SENT)?;
    txn.open_table(MESSAGE_REFS)?;
    txn.open_table(JOBS)?;
    Ok(())
}

/// Version 2 adds silences.
fn v1_to_v2(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(v3::SILENCES)?;
    Ok(())
}

/// Version 0 is a file with no version: a new file, or one written before versions
/// were recorded. Version 1 has every table and a `next_incident` counter.
fn v0_to_v1(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(v3::ALERTS)?;
    txn.open_table(v3::TIMELINE)?;
    txn.open_table(INCIDENTS)?;
    let mut meta = txn.open_table(META)?;
    if meta.get(NEXT_INCIDENT_KEY)?.is_none() {
        meta.insert(NEXT_INCIDENT_KEY, 1)?;
    }
    Ok(())
}
