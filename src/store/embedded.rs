//! The embedded backend: every table in one redb file. The only module that
//! touches redb.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::de::DeserializeOwned;

use super::codec::{decode, encode};
use super::journal::{Frame, Journal};
use super::schema::{
    self, ALERTS, INCIDENTS, META, NEXT_INCIDENT_KEY, SCHEMA_VERSION, SCHEMA_VERSION_KEY, TIMELINE,
};
use super::{Batch, Durability, Loaded, Store, StoreError};
use crate::alert::{Alert, State, TimelineEntry};
use crate::clock::Timestamp;
use crate::escalation::state::Escalation;
use crate::labels::Fingerprint;
use crate::outbox::Delivery;

/// The state in one redb file (or an in-memory redb, for tests and `tocsin test`).
/// A file store commits through its journal (`journal.rs`), folded into the file
/// in the background; other stores commit to redb directly.
pub struct RedbStore {
    db: Arc<Db>,
    /// Set while a deferred commit waits for a durable one (direct commits).
    unsynced: std::sync::atomic::AtomicBool,
    journal: Option<Arc<Journal>>,
    folder: Option<std::thread::JoinHandle<()>>,
}

/// The redb database, shared with the journal's folder.
struct Db {
    /// None while the database could not be opened again after an I/O error.
    db: std::sync::RwLock<Option<Database>>,
    /// Opens the database again. redb refuses every transaction after an I/O error
    /// (`PreviousIo`) until it is closed and reopened: without this, one moment of
    /// a full disk would refuse every write until tocsin restarts.
    reopen: Option<Reopen>,
}

/// Creates `dir` and any missing parents, each readable by its owner only.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates an empty `path` readable and writable by its owner only, for redb to
/// initialize.
fn private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop)
}

type Reopen = Box<dyn Fn() -> Result<Database, redb::DatabaseError> + Send + Sync>;

/// A read guard on an open database.
struct Open<'a>(std::sync::RwLockReadGuard<'a, Option<Database>>);

impl std::ops::Deref for Open<'_> {
    type Target = Database;
    fn deref(&self) -> &Database {
        self.0.as_ref().expect("checked when the guard was made")
    }
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore").finish_non_exhaustive()
    }
}

/// redb's page cache. tocsin keeps its working state in memory and reads the store
/// at startup and for timelines, so redb's default (1 GiB) only held pages already
/// written. At 8 MiB the load harness's re-sent alerts phase peaks at 64-74 MiB
/// (84 at 32 MiB), and a restart with 100,000 alerts takes 0.8 s (0.6 s).
const CACHE_BYTES: usize = 8 << 20;

impl RedbStore {
    /// Opens the database at `path`, creating it (and its directory) if missing, and
    /// migrating it if it was written by an older version.
    ///
    /// The file holds people's phone numbers, email addresses and notes: a folder
    /// it creates is readable by its owner only (0700), and so is a file it
    /// creates (0600); existing ones keep their modes. An existing file of 0 bytes
    /// is refused ([`StoreError::EmptyFile`]) rather than taken for a new
    /// database.
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStore, StoreError> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            private_dir(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let builder = || {
            let mut b = Database::builder();
            b.set_cache_size(CACHE_BYTES);
            b
        };
        let db = match std::fs::metadata(path) {
            Ok(meta) if meta.len() == 0 => {
                return Err(StoreError::EmptyFile {
                    path: path.to_path_buf(),
                });
            }
            Ok(_) => builder().open(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                private_file(path).map_err(|source| StoreError::CreateFile {
                    path: path.to_path_buf(),
                    source,
                })?;
                builder().create(path)
            }
            Err(e) => Err(e.into()),
        }
        .map_err(|source| StoreError::OpenFile {
            path: path.to_path_buf(),
            source,
        })?;
        // After an I/O error the file is opened again, never created: one that
        // vanished or was emptied meanwhile is an error, not a fresh start.
        let owned = path.to_path_buf();
        let reopen = move || builder().open(&owned);
        let mut store = RedbStore::init(db, Some(Box::new(reopen)))?;
        let folded = store.meta(schema::JOURNAL_FOLDED_KEY)?.unwrap_or(0);
        // Journal files left behind: the last run did not close (a crash, a
        // kill), so its close did not compact either; done here, before serving.
        let unclean = super::journal::any_files(path)?;
        let db = store.db.clone();
        let fold = move |frames: &[Arc<Frame>], generation: u64| db.fold(frames, generation);
        let journal = Arc::new(Journal::open(path, folded, &fold)?);
        if unclean && let Err(e) = store.db.tidy() {
            tracing::warn!(error = %e, "cannot compact the state database; it is left as it is");
        }
        let folder = journal.clone();
        store.folder = Some(
            std::thread::Builder::new()
                .name("tocsin-fold".into())
                .spawn(move || folder.run_folder(&fold))
                .map_err(|e| StoreError::Journal {
                    path: path.to_path_buf(),
                    source: e,
                })?,
        );
        store.journal = Some(journal);
        Ok(store)
    }

    /// A store that lives in memory only: for tests and `tocsin test`.
    pub fn in_memory() -> Result<RedbStore, StoreError> {
        RedbStore::with_backend(redb::backends::InMemoryBackend::new())
    }

    /// A store over any redb storage backend: crash tests use one that fails its
    /// writes on cue, then reopen the bytes it kept.
    pub fn with_backend(backend: impl redb::StorageBackend) -> Result<RedbStore, StoreError> {
        RedbStore::init(Database::builder().create_with_backend(backend)?, None)
    }

    /// [`Store::with_backend`] over a backend whose clones share its bytes, so the
    /// store can reopen it after an I/O error as it reopens a file.
    pub fn with_shared_backend(
        backend: impl redb::StorageBackend + Clone,
    ) -> Result<RedbStore, StoreError> {
        let open = move || Database::builder().create_with_backend(backend.clone());
        RedbStore::init(open()?, Some(Box::new(open)))
    }

    fn init(db: Database, reopen: Option<Reopen>) -> Result<RedbStore, StoreError> {
        let txn = db.begin_write()?;
        let found = txn
            .open_table(META)?
            .get(SCHEMA_VERSION_KEY)?
            .map(|v| v.value())
            .unwrap_or(0);
        if found != SCHEMA_VERSION {
            // Refuses newer versions; dropping the transaction leaves the file as is.
            schema::migrate(&txn, found)?;
        }
        txn.commit()?;
        Ok(RedbStore {
            db: Arc::new(Db {
                db: std::sync::RwLock::new(Some(db)),
                reopen,
            }),
            unsynced: std::sync::atomic::AtomicBool::new(false),
            journal: None,
            folder: None,
        })
    }

    /// The open database, reopening it first if an I/O error closed it.
    fn db(&self) -> Result<Open<'_>, StoreError> {
        self.db.db()
    }

    /// Waits until the journal's frames are in the database, before a read of
    /// what is not held in memory.
    fn drain(&self) -> Result<(), StoreError> {
        match &self.journal {
            Some(j) => j.drain(),
            None => Ok(()),
        }
    }
}

/// Raw access for whole-state copies between backends (`transfer.rs`).
impl RedbStore {
    /// A read transaction over everything committed, the journal folded first.
    pub(super) fn read_all(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.drain()?;
        Ok(self.db()?.begin_read()?)
    }

    /// Runs `f` in one durable write transaction, after the journal is folded.
    pub(super) fn write_raw(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.drain()?;
        let txn = self.db()?.begin_write()?;
        f(&txn)?;
        txn.commit()?;
        Ok(())
    }
}

impl Drop for RedbStore {
    /// Folds what is left, so the next start has no journal to replay.
    fn drop(&mut self) {
        if let Some(j) = &self.journal {
            j.stop();
        }
        if let Some(folder) = self.folder.take() {
            let _ = folder.join();
        }
        // Nothing else writes now: the safe point to give the file's free pages back.
        if self.journal.is_some()
            && let Err(e) = self.db.tidy()
        {
            tracing::warn!(error = %e, "cannot compact the state database; it is left as it is");
        }
    }
}

impl Db {
    /// The open database, reopening it first if an I/O error closed it.
    fn db(&self) -> Result<Open<'_>, StoreError> {
        let read = || self.db.read().unwrap_or_else(|e| e.into_inner());
        let open = read();
        if open.is_some() {
            return Ok(Open(open));
        }
        drop(open);
        self.reopen()?;
        let open = read();
        match *open {
            Some(_) => Ok(Open(open)),
            None => Err(StoreError::Closed),
        }
    }

    /// Closes the database and opens it again, as after an I/O error (redb keeps
    /// refusing until then). The old handle goes first: the file is locked while
    /// it is open. Stores without a way to reopen (in memory) are left as they are.
    fn reopen(&self) -> Result<(), StoreError> {
        let Some(open) = &self.reopen else {
            return Ok(());
        };
        let mut db = self.db.write().unwrap_or_else(|e| e.into_inner());
        drop(db.take());
        let reopened = open()?;
        *db = Some(reopened);
        tracing::info!("state database reopened after an I/O error");
        Ok(())
    }
}

impl Db {
    /// Makes the file small again: rewrites the tables whose leaves are sparse as
    /// packed ones, then gives the free pages back to the file system (redb's
    /// `compact`). Each step is its own durable transaction of the same contents,
    /// so a crash in between leaves a file as good as before. Runs only where
    /// nothing else can write (at close, after the journal's last fold; at open
    /// after a run that did not close, before the folder starts): it holds the
    /// database for its whole run, which would stall the reads a delivery makes
    /// under the daemon's lock if it ran while serving.
    fn tidy(&self) -> Result<(), StoreError> {
        self.db()?;
        let mut guard = self.db.write().unwrap_or_else(|e| e.into_inner());
        let Some(db) = guard.as_mut() else {
            return Ok(());
        };
        let tidied = super::tidy::tidy(db);
        drop(guard);
        if let Err(e) = &tidied
            && e.is_io()
        {
            // As after a failed write: redb refuses everything until reopened.
            let _ = self.reopen();
        }
        tidied
    }
}

impl RedbStore {
    /// The schema version recorded in the file.
    pub fn schema_version(&self) -> Result<u64, StoreError> {
        self.meta(SCHEMA_VERSION_KEY).map(|v| v.unwrap_or(0))
    }

    /// The next incident id to hand out (the first is 1).
    pub fn next_incident(&self) -> Result<u64, StoreError> {
        self.meta(NEXT_INCIDENT_KEY).map(|v| v.unwrap_or(1).max(1))
    }

    fn meta(&self, key: &str) -> Result<Option<u64>, StoreError> {
        self.drain()?;
        let txn = self.db()?.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta.get(key)?.map(|v| v.value()))
    }

    /// Every stored alert, in fingerprint order.
    pub fn load_alerts(&self) -> Result<Vec<Alert>, StoreError> {
        self.drain()?;
        let txn = self.db()?.begin_read()?;
        let table = txn.open_table(ALERTS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.push(decode("alerts", Fingerprint(k.value()), v.value())?);
        }
        Ok(out)
    }

    pub fn alert(&self, fingerprint: Fingerprint) -> Result<Option<Alert>, StoreError> {
        self.drain()?;
        let txn = self.db()?.begin_read()?;
        let table = txn.open_table(ALERTS)?;
        let value = table.get(fingerprint.0)?;
        value
            .map(|v| decode("alerts", fingerprint, v.value()))
            .transpose()
    }

    /// The alert that incident `id` was opened for (it may have fired again since,
    /// under a newer id).
    pub fn alert_by_incident(&self, id: u64) -> Result<Option<Alert>, StoreError> {
        self.drain()?;
        let txn = self.db()?.begin_read()?;
        let Some(fp) = txn.open_table(INCIDENTS)?.get(id)?.map(|v| v.value()) else {
            return Ok(None);
        };
        let alerts = txn.open_table(ALERTS)?;
        let value = alerts.get(fp)?;
        value
            .map(|v| decode("alerts", Fingerprint(fp), v.value()))
            .transpose()
    }

    /// Every stored silence, expired ones included (they are history).
    pub fn load_silences(&self) -> Result<Vec<crate::silence::Silence>, StoreError> {
        self.drain()?;
        let txn = self.db()?.begin_read()?;
        let table = txn.open_table(schema::SILENCES)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.push(decode("silences", k.value(), v.value())?);
        }
        Ok(out)
    }

    /// Every escalation in progress.
    pub fn load_escalations(&self) -> Result<Vec<Escalation>, StoreError> {
        self.load_all(schema::ESCALATIONS, "escalations")
    }

    /// Every delivery still owed, oldest first.
    pub fn load_outbox(&self) -> Result<Vec<Delivery>, StoreError> {
        self.load_all(schema::OUTBOX, "outbox")
    }

    /// Every row of a table keyed by fingerprint, decoded straight into a map sized
    /// for them: what [`Store::load`] hands the daemon, which keeps the map as its
    /// own (a list first would hold every record twice at the end of the load).
    fn load_map<T: DeserializeOwned>(
        &self,
        def: redb::TableDefinition<u64, &[u8]>,
        name: &'static str,
    ) -> Result<HashMap<Fingerprint, T>, StoreError> {
        self.drain()?;
        let txn = self.db()?.begin_read()?;
        let table = txn.open_table(def)?;
        let mut out = HashMap::with_capacity(usize::try_from(table.len()?).unwrap_or(0));
        for row in table.iter()? {
            let (k, v) = row?;
            let fp = Fingerprint(k.value());
            out.insert(fp, decode(name, fp, v.value())?);
        }
        Ok(out)
    }

    fn load_all<T: DeserializeOwned>(
        &self,
        def: redb::TableDefinition<u64, &[u8]>,
        name: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        self.drain()?;
        let txn = self.db()?.begin_read()?;
        let table = txn.open_table(def)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.push(decode(name, k.value(), v.value())?);
        }
        Ok(out)
    }

    /// The next delivery id to hand out.
    /// Every scheduled job and when it last ran.
    pub fn load_jobs(&self) -> Result<Vec<(String, Timestamp)>, StoreError> {
        self.drain()?;
        let txn = self.db()?.begin_read()?;
        let table = txn.open_table(schema::JOBS)?;
        let mut jobs = Vec::new();
        for row in table.iter()? {
            let (name, at) = row?;
            jobs.push((name.value().to_string(), Timestamp(at.value())));
        }
        Ok(jobs)
    }

    pub fn next_delivery(&self) -> Result<u64, StoreError> {
        self.meta(schema::NEXT_DELIVERY_KEY)
            .map(|v| v.unwrap_or(1).max(1))
    }

    /// Writes `batch` in one durable transaction: all of it or, on error, none.
    pub fn apply(&self, batch: &Batch) -> Result<(), StoreError> {
        self.commit(batch, Durability::Immediate)
    }

    fn write(&self, batch: &Batch, durability: redb::Durability) -> Result<(), StoreError> {
        self.db
            .write(|txn| write_batch(txn, batch), durability, None)
    }
}

impl Db {
    /// Writes `batches` in one transaction, with the last journal generation they
    /// hold if they come from the journal. A failed write reopens the database.
    fn write(
        &self,
        batches: impl Fn(&WriteTransaction) -> Result<(), StoreError>,
        durability: redb::Durability,
        folded: Option<u64>,
    ) -> Result<(), StoreError> {
        let applied = (|| -> Result<(), StoreError> {
            let mut txn = self.db()?.begin_write()?;
            txn.set_durability(durability).expect(
                "tocsin opens redb in single-process mode, where any durability is allowed",
            );
            batches(&txn)?;
            if let Some(generation) = folded {
                txn.open_table(META)?
                    .insert(schema::JOURNAL_FOLDED_KEY, generation)?;
            }
            txn.commit()?;
            Ok(())
        })();
        if let Err(e) = &applied
            && e.is_io()
        {
            // The next call gets a fresh handle (or tries again to get one).
            let _ = self.reopen();
        }
        applied
    }

    /// One fold of the journal: its frames, durably, in one transaction. Each
    /// frame is decoded as it is written, so a fold never holds its batches at once.
    fn fold(&self, frames: &[Arc<Frame>], generation: u64) -> Result<(), StoreError> {
        let batches = |txn: &WriteTransaction| {
            // Only deliveries this fold creates: ids at or past the stored counter
            // were never written. One written before and rescheduled and done
            // in this fold is deleted as usual.
            let stored = txn
                .open_table(META)?
                .get(schema::NEXT_DELIVERY_KEY)?
                .map_or(1, |v| v.value());
            let mut passing = super::journal::passing(frames);
            passing.retain(|id| *id >= stored);
            frames
                .iter()
                .try_for_each(|frame| write_batch_skipping(txn, &frame.batch()?, &passing))
        };
        self.write(batches, redb::Durability::Immediate, Some(generation))
    }
}

impl Store for RedbStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        Ok(Loaded {
            alerts: self.load_map(ALERTS, "alerts")?,
            next_incident: self.next_incident()?,
            silences: self.load_silences()?,
            escalations: self.load_map(schema::ESCALATIONS, "escalations")?,
            outbox: self.load_outbox()?,
            next_delivery: self.next_delivery()?,
            jobs: self.load_jobs()?,
        })
    }

    fn commit(&self, batch: &Batch, durability: Durability) -> Result<(), StoreError> {
        if let Some(j) = &self.journal {
            return j.append(batch, durability == Durability::Immediate);
        }
        match durability {
            Durability::Immediate => {
                self.write(batch, redb::Durability::Immediate)?;
                self.unsynced
                    .store(false, std::sync::atomic::Ordering::SeqCst);
            }
            // redb's `None`: committed and visible, carried to disk by the next
            // durable commit.
            Durability::Deferred => {
                self.write(batch, redb::Durability::None)?;
                self.unsynced
                    .store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        if let Some(j) = &self.journal {
            return j.sync();
        }
        if self.unsynced.load(std::sync::atomic::Ordering::SeqCst) {
            self.apply(&Batch::default())?;
        }
        Ok(())
    }

    /// One alert's timeline, oldest first.
    fn timeline(&self, fingerprint: Fingerprint) -> Result<Vec<TimelineEntry>, StoreError> {
        self.drain()?;
        let txn = self.db()?.begin_read()?;
        let table = txn.open_table(TIMELINE)?;
        let mut out = Vec::new();
        for row in table.range((fingerprint.0, 0)..=(fingerprint.0, u64::MAX))? {
            let (k, v) = row?;
            let (_, seq) = k.value();
            out.push(decode(
                "timeline",
                format!("{fingerprint}/{seq}"),
                v.value(),
            )?);
        }
        Ok(out)
    }

    /// Whether the notification log has this idempotency key: the message went out.
    fn was_sent(&self, key: &str) -> Result<bool, StoreError> {
        if self.journal.as_ref().is_some_and(|j| j.was_sent(key)) {
            return Ok(true);
        }
        let txn = self.db()?.begin_read()?;
        Ok(txn.open_table(schema::SENT)?.get(key)?.is_some())
    }

    /// The reference of the last message about `fp` on `address`.
    fn reference(&self, fp: Fingerprint, address: &str) -> Result<Option<String>, StoreError> {
        if let Some(r) = self.journal.as_ref().and_then(|j| j.reference(fp, address)) {
            return Ok(Some(r));
        }
        let txn = self.db()?.begin_read()?;
        let table = txn.open_table(schema::MESSAGE_REFS)?;
        Ok(table.get((fp.0, address))?.map(|v| v.value().to_string()))
    }

    fn incident(&self, id: u64) -> Result<Option<Fingerprint>, StoreError> {
        self.drain()?;
        let txn = self.db()?.begin_read()?;
        let table = txn.open_table(INCIDENTS)?;
        Ok(table.get(id)?.map(|v| Fingerprint(v.value())))
    }

    /// Forgets notification-log keys confirmed before `before`: a delivery owed
    /// that long ago is not retried any more, so its key can go.
    fn prune_sent(&self, before: Timestamp) -> Result<usize, StoreError> {
        self.drain()?;
        let txn = self.db()?.begin_write()?;
        let n = {
            let mut table = txn.open_table(schema::SENT)?;
            let old: Vec<String> = table
                .iter()?
                .filter_map(|r| r.ok())
                .filter(|(_, v)| v.value() < before.0)
                .map(|(k, _)| k.value().to_string())
                .collect();
            for k in &old {
                table.remove(k.as_str())?;
            }
            old.len()
        };
        txn.commit()?;
        Ok(n)
    }
}

pub(super) fn write_batch(txn: &WriteTransaction, batch: &Batch) -> Result<(), StoreError> {
    write_batch_skipping(txn, batch, &HashSet::new())
}

/// [`write_batch`], leaving out the outbox rows of `passing`: deliveries that one
/// fold creates and deletes (owed and delivered between two folds, most of a
/// storm's) are never written. Delivery ids are never reused, so skipping both
/// ends in the same table.
fn write_batch_skipping(
    txn: &WriteTransaction,
    batch: &Batch,
    passing: &HashSet<u64>,
) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    let mut alerts = txn.open_table(ALERTS)?;
    let mut timeline = txn.open_table(TIMELINE)?;
    let mut incidents = txn.open_table(INCIDENTS)?;
    let mut silences = txn.open_table(schema::SILENCES)?;
    for silence in &batch.silences {
        let bytes = encode("silences", &silence.id, silence)?;
        silences.insert(silence.id.as_str(), bytes.as_slice())?;
    }

    let stored_next = meta.get(NEXT_INCIDENT_KEY)?.map(|v| v.value());
    let mut next = stored_next.unwrap_or(1).max(batch.next_incident).max(1);

    for fp in &batch.removed {
        alerts.remove(fp.0)?;
    }
    for alert in &batch.alerts {
        let fp = alert.fingerprint;
        if alert.state == State::Inactive && alert.incident.is_none() {
            alerts.remove(fp.0)?;
            continue;
        }
        alerts.insert(fp.0, encode("alerts", fp, alert)?.as_slice())?;
        if let Some(id) = alert.incident {
            // The first writer of an id wins: ids are never re-pointed.
            if incidents.get(id)?.is_none() {
                incidents.insert(id, fp.0)?;
            }
            next = next.max(id.saturating_add(1));
        }
    }

    if !batch.timeline.is_empty() {
        let mut seq = meta
            .get(schema::NEXT_TIMELINE_KEY)?
            .map(|v| v.value())
            .unwrap_or(0);
        for (fp, entry) in &batch.timeline {
            let bytes = encode("timeline", format_args!("{fp}/{seq}"), entry)?;
            timeline.insert((fp.0, seq), bytes.as_slice())?;
            seq += 1;
        }
        meta.insert(schema::NEXT_TIMELINE_KEY, seq)?;
    }

    if stored_next != Some(next) {
        meta.insert(NEXT_INCIDENT_KEY, next)?;
    }

    let mut escalations = txn.open_table(schema::ESCALATIONS)?;
    for (fp, esc) in &batch.escalations {
        match esc {
            Some(e) => {
                escalations.insert(fp.0, encode("escalations", fp, e)?.as_slice())?;
            }
            None => {
                escalations.remove(fp.0)?;
            }
        }
    }
    let mut outbox = txn.open_table(schema::OUTBOX)?;
    let mut next_delivery = meta
        .get(schema::NEXT_DELIVERY_KEY)?
        .map(|v| v.value())
        .unwrap_or(1);
    let stored_delivery = next_delivery;
    for d in &batch.outbox {
        if !passing.contains(&d.id) {
            outbox.insert(d.id, encode("outbox", d.id, d)?.as_slice())?;
        }
        next_delivery = next_delivery.max(d.id + 1);
    }
    for id in batch.outbox_done.iter().filter(|id| !passing.contains(id)) {
        outbox.remove(*id)?;
    }
    if next_delivery != stored_delivery {
        meta.insert(schema::NEXT_DELIVERY_KEY, next_delivery)?;
    }
    let mut sent = txn.open_table(schema::SENT)?;
    for (key, at) in &batch.sent {
        sent.insert(key.as_str(), at.0)?;
    }
    let mut refs = txn.open_table(schema::MESSAGE_REFS)?;
    for (fp, address, reference) in &batch.references {
        refs.insert((fp.0, address.as_str()), reference.as_str())?;
    }
    let mut jobs = txn.open_table(schema::JOBS)?;
    for (name, at) in &batch.jobs {
        jobs.insert(name.as_str(), at.0)?;
    }
    for fp in &batch.forgotten {
        let old = alerts.remove(fp.0)?;
        let old: Option<Alert> = old.map(|v| decode("alerts", fp, v.value())).transpose()?;
        if let Some(id) = old.and_then(|a| a.incident)
            && incidents.get(id)?.map(|v| v.value()) == Some(fp.0)
        {
            incidents.remove(id)?;
        }
        escalations.remove(fp.0)?;
        timeline.retain_in((fp.0, 0)..=(fp.0, u64::MAX), |_, _| false)?;
        refs.retain_in((fp.0, "")..=(fp.0, "\u{10ffff}"), |_, _| false)?;
    }
    for (fp, before) in &batch.timeline_before {
        let mut undecodable = None;
        timeline.retain_in((fp.0, 0)..=(fp.0, u64::MAX), |(_, seq), v| {
            match decode::<TimelineEntry>("timeline", format_args!("{fp}/{seq}"), v) {
                Ok(e) => e.at >= *before,
                Err(e) => {
                    undecodable.get_or_insert(e);
                    true
                }
            }
        })?;
        if let Some(e) = undecodable {
            return Err(e);
        }
    }
    Ok(())
}
