//! Keeping the redb file small: the embedded store's tidy, run where nothing else
//! writes (`RedbStore`'s close, and its open after a run that did not close).
//!
//! Folds insert in random fingerprint order, so leaves split in half as they
//! fill and sit about 69% full; each fold's copy-on-write frees the pages it
//! replaced, which redb reuses but never gives back, so after a storm the file
//! is about twice its data. The tidy rewrites sparse tables packed, then runs
//! redb's `compact`.

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::StoreError;
use super::schema::{self, ALERTS, INCIDENTS, TIMELINE};

/// A table whose leaves hold less than this share of stored bytes (in quarters)
/// is rewritten packed: keys written in random fingerprint order leave leaves
/// about 69% full, split in half as they fill.
const REPACK_BELOW_QUARTERS: u64 = 3;
/// Tables smaller than this (in leaf pages) are never worth rewriting.
const REPACK_MIN_LEAVES: u64 = 64;

/// Packs the sparse tables of `db`, then gives its free pages back.
pub(super) fn tidy(db: &mut Database) -> Result<(), StoreError> {
    repack(db, ALERTS)?;
    repack(db, TIMELINE)?;
    repack(db, schema::ESCALATIONS)?;
    repack(db, schema::SENT)?;
    repack(db, schema::MESSAGE_REFS)?;
    repack(db, INCIDENTS)?;
    repack(db, schema::OUTBOX)?;
    match db.compact() {
        Ok(_) => Ok(()),
        Err(redb::CompactionError::Storage(e)) => Err(e.into()),
        // A reader still open (a copy in progress): left for the next time.
        Err(e) => {
            tracing::info!(reason = %e, "state database not compacted");
            Ok(())
        }
    }
}

/// Rewrites `def` in key order into a fresh table, packed (redb fills the
/// leaves of a run of ordered inserts), and puts it in the old one's place, in
/// one transaction. Does nothing to a table already mostly full.
fn repack<K: redb::Key + 'static, V: redb::Value + 'static>(
    db: &Database,
    def: TableDefinition<K, V>,
) -> Result<(), StoreError> {
    use redb::TableHandle;
    let txn = db.begin_write()?;
    let stats = txn.open_table(def)?.stats()?;
    let used = stats.stored_bytes() + stats.metadata_bytes();
    if stats.leaf_pages() < REPACK_MIN_LEAVES
        || used * 4 >= (used + stats.fragmented_bytes()) * REPACK_BELOW_QUARTERS
    {
        return Ok(());
    }
    let name = format!("{}.repacked", def.name());
    let packed = TableDefinition::<K, V>::new(&name);
    {
        let old = txn.open_table(def)?;
        let mut new = txn.open_table(packed)?;
        let mut end = new.upper_bound_mut(std::ops::Bound::<K::SelfType<'_>>::Unbounded)?;
        let ordered = |e: redb::CursorError| match e {
            redb::CursorError::Storage(e) => StoreError::from(e),
            // Rows come from a table, in its key order: never out of order.
            e => StoreError::from(redb::StorageError::Corrupted(format!(
                "cannot repack table {}: {e}",
                def.name()
            ))),
        };
        for row in old.iter()? {
            let (k, v) = row?;
            end.insert_before(k.value(), v.value()).map_err(ordered)?;
        }
        end.close()?;
    }
    txn.delete_table(def)?;
    txn.rename_table(packed, def)?;
    txn.commit()?;
    Ok(())
}
