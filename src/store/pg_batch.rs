//! A [`Batch`] as PostgreSQL rows (`postgres.rs`): encoded on the caller's thread,
//! then written table by table in one `unnest` statement each, all pipelined, in the order redb's
//! `write_batch` applies a batch, so both backends end in the same state.

use deadpool_postgres::Transaction;
use futures_util::future::try_join_all;
use tokio_postgres::types::ToSql;

use super::codec::{decode, encode};
use super::db_error;
use super::{Batch, StoreError};
use crate::alert::{Alert, State, TimelineEntry};
use crate::labels::Fingerprint;

/// A batch as rows: encoded on the caller's thread, in the order redb applies it.
#[derive(Default)]
pub(super) struct Rows {
    alerts_put: (Vec<i64>, Vec<Vec<u8>>),
    alerts_deleted: Vec<i64>,
    incidents: (Vec<i64>, Vec<i64>),
    next_incident: i64,
    timeline: (Vec<i64>, Vec<Vec<u8>>),
    silences: (Vec<String>, Vec<Vec<u8>>),
    escalations_put: (Vec<i64>, Vec<Vec<u8>>),
    escalations_deleted: Vec<i64>,
    outbox_put: (Vec<i64>, Vec<Vec<u8>>),
    outbox_done: Vec<i64>,
    next_delivery: i64,
    sent: (Vec<String>, Vec<i64>),
    references: (Vec<i64>, Vec<String>, Vec<String>),
    jobs: (Vec<String>, Vec<i64>),
    forgotten: Vec<i64>,
    timeline_before: Vec<(i64, i64)>,
}

/// The last write of each key wins, as in a table written row by row: one
/// `INSERT ... ON CONFLICT DO UPDATE` may not touch a row twice.
fn last_wins<K: Clone + Eq + std::hash::Hash, V>(rows: Vec<(K, V)>) -> Vec<(K, V)> {
    let mut last = std::collections::HashMap::with_capacity(rows.len());
    for (i, (k, _)) in rows.iter().enumerate() {
        last.insert(k.clone(), i);
    }
    rows.into_iter()
        .enumerate()
        .filter(|(i, (k, _))| last[k] == *i)
        .map(|(_, kv)| kv)
        .collect()
}

fn unzip<K, V>(rows: Vec<(K, V)>) -> (Vec<K>, Vec<V>) {
    rows.into_iter().unzip()
}

impl Rows {
    pub(super) fn of(batch: &Batch) -> Result<Rows, StoreError> {
        let mut rows = Rows::default();
        // Alerts: removals first, then writes in order; the last word on a
        // fingerprint is what stays.
        let mut alerts: Vec<(i64, Option<Vec<u8>>)> = Vec::new();
        for fp in &batch.removed {
            alerts.push((fp.0 as i64, None));
        }
        let mut next = batch.next_incident.max(1);
        for alert in &batch.alerts {
            let fp = alert.fingerprint;
            if alert.state == State::Inactive && alert.incident.is_none() {
                alerts.push((fp.0 as i64, None));
                continue;
            }
            alerts.push((fp.0 as i64, Some(encode("alerts", fp, alert)?)));
            if let Some(id) = alert.incident {
                rows.incidents.0.push(id as i64);
                rows.incidents.1.push(fp.0 as i64);
                next = next.max(id.saturating_add(1));
            }
        }
        for (fp, record) in last_wins(alerts) {
            match record {
                Some(r) => {
                    rows.alerts_put.0.push(fp);
                    rows.alerts_put.1.push(r);
                }
                None => rows.alerts_deleted.push(fp),
            }
        }
        rows.next_incident = next as i64;
        for (fp, entry) in &batch.timeline {
            rows.timeline.0.push(fp.0 as i64);
            rows.timeline.1.push(encode("timeline", fp, entry)?);
        }
        let silences = batch
            .silences
            .iter()
            .map(|s| Ok((s.id.clone(), encode("silences", &s.id, s)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        rows.silences = unzip(last_wins(silences));
        let mut escalations = Vec::new();
        for (fp, esc) in &batch.escalations {
            let record = esc
                .as_ref()
                .map(|e| encode("escalations", fp, e))
                .transpose()?;
            escalations.push((fp.0 as i64, record));
        }
        for (fp, record) in last_wins(escalations) {
            match record {
                Some(r) => {
                    rows.escalations_put.0.push(fp);
                    rows.escalations_put.1.push(r);
                }
                None => rows.escalations_deleted.push(fp),
            }
        }
        let mut next_delivery = 1;
        let outbox = batch
            .outbox
            .iter()
            .map(|d| {
                next_delivery = next_delivery.max(d.id + 1);
                Ok((d.id as i64, encode("outbox", d.id, d)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        rows.outbox_put = unzip(last_wins(outbox));
        rows.next_delivery = next_delivery as i64;
        rows.outbox_done = batch.outbox_done.iter().map(|id| *id as i64).collect();
        rows.sent = unzip(last_wins(
            batch.sent.iter().map(|(k, at)| (k.clone(), at.0)).collect(),
        ));
        let references = last_wins(
            batch
                .references
                .iter()
                .map(|(fp, address, r)| ((fp.0 as i64, address.clone()), r.clone()))
                .collect(),
        );
        for ((fp, address), reference) in references {
            rows.references.0.push(fp);
            rows.references.1.push(address);
            rows.references.2.push(reference);
        }
        rows.jobs = unzip(last_wins(
            batch.jobs.iter().map(|(k, at)| (k.clone(), at.0)).collect(),
        ));
        rows.forgotten = batch.forgotten.iter().map(|fp| fp.0 as i64).collect();
        rows.timeline_before = batch
            .timeline_before
            .iter()
            .map(|(fp, at)| (fp.0 as i64, at.0))
            .collect();
        Ok(rows)
    }

    /// Writes the rows inside `txn`, table by table, as redb's `write_batch` does.
    ///
    /// One round trip for the whole batch: every statement is prepared once per
    /// connection (`prepare_cached`), and all of them are sent before the first
    /// answer is awaited (tokio-postgres pipelines the requests of futures polled
    /// together, and the server runs them in the order they were sent, which is
    /// the order below). Retention's deletions, rare and read-dependent, follow.
    pub(super) async fn write(self, txn: &Transaction<'_>) -> Result<(), StoreError> {
        let mut writes: Vec<Write<'_>> = Vec::new();
        if !self.alerts_deleted.is_empty() {
            add(
                &mut writes,
                "delete alerts",
                "DELETE FROM tocsin_alerts WHERE fingerprint = ANY($1)",
                vec![&self.alerts_deleted],
            );
        }
        if !self.alerts_put.0.is_empty() {
            add(
                &mut writes,
                "write alerts",
                "INSERT INTO tocsin_alerts (fingerprint, record)
                 SELECT * FROM unnest($1::bigint[], $2::bytea[])
                 ON CONFLICT (fingerprint) DO UPDATE SET record = excluded.record",
                vec![&self.alerts_put.0, &self.alerts_put.1],
            );
        }
        if !self.incidents.0.is_empty() {
            // The first writer of an id wins: ids are never re-pointed.
            add(
                &mut writes,
                "write incident ids",
                "INSERT INTO tocsin_incidents (id, fingerprint)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[]) ON CONFLICT (id) DO NOTHING",
                vec![&self.incidents.0, &self.incidents.1],
            );
        }
        // The counter only grows; rows are locked only when it does.
        add(
            &mut writes,
            "write the incident counter",
            "UPDATE tocsin_meta SET value = $1 WHERE key = 'next_incident' AND value < $1",
            vec![&self.next_incident],
        );
        let appended = self.timeline.0.len() as i64;
        if appended > 0 {
            // Numbered from the counter in the same statement, so that no answer
            // is awaited before the insert goes out.
            add(
                &mut writes,
                "append to timelines",
                "WITH counter AS (
                     UPDATE tocsin_meta SET value = value + $3 WHERE key = 'next_timeline'
                     RETURNING value - $3 AS first
                 )
                 INSERT INTO tocsin_timeline (fingerprint, seq, record)
                 SELECT entry.fingerprint, counter.first + entry.n - 1, entry.record
                 FROM counter,
                      unnest($1::bigint[], $2::bytea[]) WITH ORDINALITY
                          AS entry (fingerprint, record, n)",
                vec![&self.timeline.0, &self.timeline.1, &appended],
            );
        }
        if !self.silences.0.is_empty() {
            add(
                &mut writes,
                "write silences",
                "INSERT INTO tocsin_silences (id, record)
                 SELECT * FROM unnest($1::text[], $2::bytea[])
                 ON CONFLICT (id) DO UPDATE SET record = excluded.record",
                vec![&self.silences.0, &self.silences.1],
            );
        }
        if !self.escalations_put.0.is_empty() {
            add(
                &mut writes,
                "write escalations",
                "INSERT INTO tocsin_escalations (fingerprint, record)
                 SELECT * FROM unnest($1::bigint[], $2::bytea[])
                 ON CONFLICT (fingerprint) DO UPDATE SET record = excluded.record",
                vec![&self.escalations_put.0, &self.escalations_put.1],
            );
        }
        if !self.escalations_deleted.is_empty() {
            add(
                &mut writes,
                "delete escalations",
                "DELETE FROM tocsin_escalations WHERE fingerprint = ANY($1)",
                vec![&self.escalations_deleted],
            );
        }
        if !self.outbox_put.0.is_empty() {
            add(
                &mut writes,
                "write the outbox",
                "INSERT INTO tocsin_outbox (id, record)
                 SELECT * FROM unnest($1::bigint[], $2::bytea[])
                 ON CONFLICT (id) DO UPDATE SET record = excluded.record",
                vec![&self.outbox_put.0, &self.outbox_put.1],
            );
            add(
                &mut writes,
                "write the delivery counter",
                "UPDATE tocsin_meta SET value = $1 WHERE key = 'next_delivery' AND value < $1",
                vec![&self.next_delivery],
            );
        }
        if !self.outbox_done.is_empty() {
            add(
                &mut writes,
                "settle deliveries",
                "DELETE FROM tocsin_outbox WHERE id = ANY($1)",
                vec![&self.outbox_done],
            );
        }
        if !self.sent.0.is_empty() {
            add(
                &mut writes,
                "write the notification log",
                "INSERT INTO tocsin_sent (key, at) SELECT * FROM unnest($1::text[], $2::bigint[])
                 ON CONFLICT (key) DO UPDATE SET at = excluded.at",
                vec![&self.sent.0, &self.sent.1],
            );
        }
        if !self.references.0.is_empty() {
            add(
                &mut writes,
                "write message references",
                "INSERT INTO tocsin_message_refs (fingerprint, address, reference)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[])
                 ON CONFLICT (fingerprint, address) DO UPDATE SET reference = excluded.reference",
                vec![&self.references.0, &self.references.1, &self.references.2],
            );
        }
        if !self.jobs.0.is_empty() {
            add(
                &mut writes,
                "write scheduled jobs",
                "INSERT INTO tocsin_jobs (name, at) SELECT * FROM unnest($1::text[], $2::bigint[])
                 ON CONFLICT (name) DO UPDATE SET at = excluded.at",
                vec![&self.jobs.0, &self.jobs.1],
            );
        }
        pipelined(txn, &writes).await?;
        if !self.forgotten.is_empty() {
            forget(txn, &self.forgotten).await?;
        }
        for (fp, before) in &self.timeline_before {
            prune_timeline(txn, *fp, *before).await?;
        }
        Ok(())
    }
}

/// One statement of a batch: what it does (for errors), its SQL, its parameters.
struct Write<'a> {
    doing: &'static str,
    sql: &'static str,
    params: Vec<&'a (dyn ToSql + Sync)>,
}

fn add<'a>(
    writes: &mut Vec<Write<'a>>,
    doing: &'static str,
    sql: &'static str,
    params: Vec<&'a (dyn ToSql + Sync)>,
) {
    writes.push(Write { doing, sql, params });
}

/// Runs `writes` in order, all sent before any answer is awaited. Statements are
/// prepared first, all together (nothing to send once a connection has them), so
/// that no execution can overtake another while one waits for its preparation.
async fn pipelined(txn: &Transaction<'_>, writes: &[Write<'_>]) -> Result<(), StoreError> {
    let statements = try_join_all(
        writes
            .iter()
            .map(|w| async move { txn.prepare_cached(w.sql).await.map_err(db_error(w.doing)) }),
    )
    .await?;
    try_join_all(
        writes
            .iter()
            .zip(&statements)
            .map(|(w, statement)| async move {
                txn.execute(statement, &w.params)
                    .await
                    .map_err(db_error(w.doing))
            }),
    )
    .await?;
    Ok(())
}

/// Deletes alerts past retention with their timeline, escalation, references and
/// the incident id that still names them.
async fn forget(txn: &Transaction<'_>, fps: &[i64]) -> Result<(), StoreError> {
    let e = db_error;
    let old = txn
        .query(
            "DELETE FROM tocsin_alerts WHERE fingerprint = ANY($1) RETURNING fingerprint, record",
            &[&fps],
        )
        .await
        .map_err(e("forget alerts"))?;
    for row in old {
        let fp: i64 = row.get(0);
        let alert: Alert = decode("alerts", Fingerprint(fp as u64), row.get::<_, &[u8]>(1))?;
        if let Some(id) = alert.incident {
            txn.execute(
                "DELETE FROM tocsin_incidents WHERE id = $1 AND fingerprint = $2",
                &[&(id as i64), &fp],
            )
            .await
            .map_err(e("forget incident ids"))?;
        }
    }
    for (table, what) in [
        ("tocsin_escalations", "forget escalations"),
        ("tocsin_timeline", "forget timelines"),
        ("tocsin_message_refs", "forget message references"),
    ] {
        txn.execute(
            &format!("DELETE FROM {table} WHERE fingerprint = ANY($1)"),
            &[&fps],
        )
        .await
        .map_err(e(what))?;
    }
    Ok(())
}

/// Deletes one alert's timeline entries from before `before`. The instant is
/// inside the record, so entries are read and decoded; an entry that does not
/// decode is an error, and nothing is deleted.
async fn prune_timeline(txn: &Transaction<'_>, fp: i64, before: i64) -> Result<(), StoreError> {
    let rows = txn
        .query(
            "SELECT seq, record FROM tocsin_timeline WHERE fingerprint = $1",
            &[&fp],
        )
        .await
        .map_err(db_error("read a timeline"))?;
    let mut old = Vec::new();
    for row in rows {
        let seq: i64 = row.get(0);
        let key = format!("{}/{seq}", Fingerprint(fp as u64));
        let entry: TimelineEntry = decode("timeline", key, row.get::<_, &[u8]>(1))?;
        if entry.at.0 < before {
            old.push(seq);
        }
    }
    if !old.is_empty() {
        txn.execute(
            "DELETE FROM tocsin_timeline WHERE fingerprint = $1 AND seq = ANY($2)",
            &[&fp, &old],
        )
        .await
        .map_err(db_error("prune a timeline"))?;
    }
    Ok(())
}
