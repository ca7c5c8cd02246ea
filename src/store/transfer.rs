//! Whole-state copies between backends (`tocsin migrate`): a redb file into
//! PostgreSQL, when one machine is not enough, and back.
//!
//! Everything is copied: alerts, every timeline in order, every incident id (old
//! firings of an alert too), silences, escalations, the outbox, the notification
//! log, message references, scheduled jobs and both counters. Records travel
//! decoded, so a copy also checks every one of them. The destination must be empty:
//! a copy never merges two states.

use redb::{ReadableTable, ReadableTableMetadata};

use super::db_error;
use super::pg_batch::Rows;
use super::postgres::client;
use super::schema;
use super::{Batch, Loaded, PgStore, RedbStore, Store, StoreError};
use crate::alert::TimelineEntry;
use crate::clock::Timestamp;
use crate::labels::Fingerprint;

/// One whole state, as a backend holds it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dump {
    pub loaded: Loaded,
    /// Every timeline entry, oldest first per alert.
    pub timeline: Vec<(Fingerprint, TimelineEntry)>,
    pub incidents: Vec<(u64, Fingerprint)>,
    pub sent: Vec<(String, Timestamp)>,
    pub references: Vec<(Fingerprint, String, String)>,
    pub jobs: Vec<(String, Timestamp)>,
}

impl Dump {
    /// What the copy carried, for the command's summary.
    pub fn summary(&self) -> String {
        format!(
            "{} alerts, {} timeline entries, {} incident ids, {} silences, {} escalations, \
             {} deliveries owed, {} sent keys (next incident {})",
            self.loaded.alerts.len(),
            self.timeline.len(),
            self.incidents.len(),
            self.loaded.silences.len(),
            self.loaded.escalations.len(),
            self.loaded.outbox.len(),
            self.sent.len(),
            self.loaded.next_incident,
        )
    }

    fn is_empty(&self) -> bool {
        self.loaded.alerts.is_empty()
            && self.loaded.silences.is_empty()
            && self.loaded.outbox.is_empty()
            && self.incidents.is_empty()
            && self.sent.is_empty()
            && self.jobs.is_empty()
            && self.loaded.next_incident <= 1
    }

    /// The batch that writes the dump, all but the incident ids and the delivery
    /// counter, which a batch derives.
    fn batch(&self) -> Batch {
        // In fingerprint order, as the source holds them.
        let mut alerts: Vec<_> = self.loaded.alerts.values().cloned().collect();
        alerts.sort_by_key(|a| a.fingerprint);
        let mut escalations: Vec<_> = (self.loaded.escalations.values())
            .map(|e| (e.fingerprint, Some(e.clone())))
            .collect();
        escalations.sort_by_key(|(fp, _)| *fp);
        Batch {
            alerts,
            timeline: self.timeline.clone(),
            next_incident: self.loaded.next_incident,
            silences: self.loaded.silences.clone(),
            escalations,
            outbox: self.loaded.outbox.clone(),
            sent: self.sent.clone(),
            references: self.references.clone(),
            jobs: self.jobs.clone(),
            ..Batch::default()
        }
    }
}

/// Why a copy was refused.
fn not_empty() -> StoreError {
    StoreError::Postgres {
        doing: "copy the state",
        message: "the destination already holds a state; copy into an empty one".into(),
    }
}

/// Copies the redb file's state into an empty PostgreSQL database.
pub fn redb_to_postgres(from: &RedbStore, to: &PgStore) -> Result<Dump, StoreError> {
    let dump = dump_redb(from)?;
    restore_postgres(to, &dump)?;
    Ok(dump)
}

/// Copies a PostgreSQL database's state into an empty redb file.
pub fn postgres_to_redb(from: &PgStore, to: &RedbStore) -> Result<Dump, StoreError> {
    let dump = dump_postgres(from)?;
    restore_redb(to, &dump)?;
    Ok(dump)
}

pub fn dump_redb(store: &RedbStore) -> Result<Dump, StoreError> {
    let loaded = store.load()?;
    let txn = store.read_all()?;
    let mut dump = Dump {
        loaded,
        ..Dump::default()
    };
    // Keys are (fingerprint, seq): one alert's entries in order.
    for row in txn.open_table(schema::TIMELINE)?.iter()? {
        let (k, v) = row?;
        let (fp, seq) = k.value();
        let key = format!("{}/{seq}", Fingerprint(fp));
        dump.timeline.push((
            Fingerprint(fp),
            super::codec::decode("timeline", key, v.value())?,
        ));
    }
    let incidents = txn.open_table(schema::INCIDENTS)?;
    dump.incidents.reserve(incidents.len()? as usize);
    for row in incidents.iter()? {
        let (k, v) = row?;
        dump.incidents.push((k.value(), Fingerprint(v.value())));
    }
    for row in txn.open_table(schema::SENT)?.iter()? {
        let (k, v) = row?;
        dump.sent
            .push((k.value().to_string(), Timestamp(v.value())));
    }
    for row in txn.open_table(schema::MESSAGE_REFS)?.iter()? {
        let (k, v) = row?;
        let (fp, address) = k.value();
        dump.references
            .push((Fingerprint(fp), address.to_string(), v.value().to_string()));
    }
    for row in txn.open_table(schema::JOBS)?.iter()? {
        let (k, v) = row?;
        dump.jobs
            .push((k.value().to_string(), Timestamp(v.value())));
    }
    Ok(dump)
}

pub fn restore_redb(store: &RedbStore, dump: &Dump) -> Result<(), StoreError> {
    if !dump_redb(store)?.is_empty() {
        return Err(not_empty());
    }
    // One transaction: the batch as the daemon would write it, then what a batch
    // does not carry (ids of older firings, the delivery counter).
    store.write_raw(|txn| {
        super::embedded::write_batch(txn, &dump.batch())?;
        let mut incidents = txn.open_table(schema::INCIDENTS)?;
        for (id, fp) in &dump.incidents {
            incidents.insert(*id, fp.0)?;
        }
        txn.open_table(schema::META)?
            .insert(schema::NEXT_DELIVERY_KEY, dump.loaded.next_delivery)?;
        Ok(())
    })
}

pub fn dump_postgres(store: &PgStore) -> Result<Dump, StoreError> {
    let loaded = store.load()?;
    let mut dump = store.run(|pool| async move {
        let client = client(&pool).await?;
        let mut dump = Dump::default();
        let e = db_error("read the state");
        for row in client
            .query(
                "SELECT fingerprint, seq, record FROM tocsin_timeline ORDER BY fingerprint, seq",
                &[],
            )
            .await
            .map_err(&e)?
        {
            let fp = Fingerprint(row.get::<_, i64>(0) as u64);
            let key = format!("{fp}/{}", row.get::<_, i64>(1));
            let entry = super::codec::decode("timeline", key, row.get::<_, &[u8]>(2))?;
            dump.timeline.push((fp, entry));
        }
        for row in client
            .query(
                "SELECT id, fingerprint FROM tocsin_incidents ORDER BY id",
                &[],
            )
            .await
            .map_err(&e)?
        {
            dump.incidents.push((
                row.get::<_, i64>(0) as u64,
                Fingerprint(row.get::<_, i64>(1) as u64),
            ));
        }
        for row in client
            .query("SELECT key, at FROM tocsin_sent", &[])
            .await
            .map_err(&e)?
        {
            dump.sent.push((row.get(0), Timestamp(row.get(1))));
        }
        for row in client
            .query(
                "SELECT fingerprint, address, reference FROM tocsin_message_refs",
                &[],
            )
            .await
            .map_err(&e)?
        {
            let fp = Fingerprint(row.get::<_, i64>(0) as u64);
            dump.references.push((fp, row.get(1), row.get(2)));
        }
        for row in client
            .query("SELECT name, at FROM tocsin_jobs", &[])
            .await
            .map_err(&e)?
        {
            dump.jobs.push((row.get(0), Timestamp(row.get(1))));
        }
        Ok(dump)
    })?;
    dump.loaded = loaded;
    // The order redb keeps, so two dumps of one state compare equal (a stable sort
    // keeps each alert's entries in order).
    dump.timeline.sort_by_key(|(fp, _)| fp.0);
    dump.sent.sort();
    dump.references
        .sort_by(|a, b| (a.0.0, &a.1).cmp(&(b.0.0, &b.1)));
    dump.jobs.sort();
    Ok(dump)
}

pub fn restore_postgres(store: &PgStore, dump: &Dump) -> Result<(), StoreError> {
    if !dump_postgres(store)?.is_empty() {
        return Err(not_empty());
    }
    let rows = Rows::of(&dump.batch())?;
    let ids: Vec<i64> = dump.incidents.iter().map(|(id, _)| *id as i64).collect();
    let fps: Vec<i64> = dump.incidents.iter().map(|(_, fp)| fp.0 as i64).collect();
    let next_delivery = dump.loaded.next_delivery as i64;
    store.run(|pool| async move {
        let mut client = client(&pool).await?;
        let e = db_error("copy the state");
        let txn = client.transaction().await.map_err(&e)?;
        rows.write(&txn).await?;
        txn.execute(
            "INSERT INTO tocsin_incidents (id, fingerprint)
             SELECT * FROM unnest($1::bigint[], $2::bigint[])
             ON CONFLICT (id) DO UPDATE SET fingerprint = excluded.fingerprint",
            &[&ids, &fps],
        )
        .await
        .map_err(&e)?;
        txn.execute(
            "UPDATE tocsin_meta SET value = $1 WHERE key = 'next_delivery'",
            &[&next_delivery],
        )
        .await
        .map_err(&e)?;
        txn.commit().await.map_err(&e)
    })
}
