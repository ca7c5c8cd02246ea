//! The write-ahead journal of the embedded store: what makes a commit durable.
//!
//! A commit appends its batch to the journal file as one frame and syncs the file
//! (one sequential write and one `fdatasync`), and only then is it answered. A
//! background thread folds the batches into the redb file in large transactions:
//! thousands of alerts per fold touch each B-tree page once, where a commit per
//! request rewrote a page per alert per table. After a crash, the frames not yet
//! folded are applied again at open.
//!
//! Files: `<store>.journal.<generation>`. Each fold takes every frame appended so
//! far and starts a new generation for the next ones; once the fold is durable in
//! redb (which records the last generation it holds) the old files are deleted.
//! A frame is `[length u32][crc32 u32][batch]`, little-endian, the batch in the
//! record encoding (`codec.rs`); a torn or damaged frame ends its file at replay
//! (it was never answered), and an append that fails starts a new file, so no
//! later frame hides behind a torn one.
//!
//! Frames wait for their fold as the bytes written, not as batches: a batch in
//! memory (its alerts, deliveries and snapshots as Rust values) is several times
//! its encoding, and in a storm the frames waiting are most of the heap. The fold
//! decodes them one at a time as it writes them.
//!
//! Reads that need what is not folded yet (timelines, jobs, incidents, the whole
//! state at start) wait for a fold first ([`Journal::drain`]); the two asked on
//! every delivery (keys sent, message references) are answered from memory.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::codec;
use super::{Batch, StoreError};
use crate::labels::Fingerprint;

/// Frames that wake the folder before its interval.
const FOLD_FRAMES: usize = 512;
/// The longest a frame waits to be folded.
const FOLD_EVERY: Duration = Duration::from_millis(500);
/// Bytes of frame header: length and checksum.
const HEADER: usize = 8;
/// Bytes of frames appended and not yet folded past which an append waits for the
/// folder: a storm faster than the disk folds slows its senders down instead of
/// holding an unbounded backlog in memory.
const MAX_UNFOLDED_BYTES: u64 = 64 << 20;

/// Writes the frames of one fold into the database, with the last generation
/// they hold: all of it, durably, or nothing.
pub(super) type Fold<'a> = dyn Fn(&[Arc<Frame>], u64) -> Result<(), StoreError> + Send + Sync + 'a;

/// One committed batch as the journal holds it until it is folded: its encoding,
/// and the few keys the store answers from memory meanwhile.
pub(super) struct Frame {
    body: Vec<u8>,
    /// Idempotency keys the batch logs as sent.
    sent: Vec<String>,
    /// Message references the batch sets: (fingerprint, address, reference).
    references: Vec<(u64, String, String)>,
    /// Outbox deliveries the batch writes, and those it is done with.
    outbox_put: Vec<u64>,
    outbox_done: Vec<u64>,
}

impl Frame {
    fn of(batch: &Batch, body: Vec<u8>) -> Frame {
        Frame {
            body,
            sent: batch.sent.iter().map(|(k, _)| k.clone()).collect(),
            references: batch
                .references
                .iter()
                .map(|(fp, a, r)| (fp.0, a.clone(), r.clone()))
                .collect(),
            outbox_put: batch.outbox.iter().map(|d| d.id).collect(),
            outbox_done: batch.outbox_done.clone(),
        }
    }

    /// The batch, decoded.
    pub fn batch(&self) -> Result<Batch, StoreError> {
        codec::decode("journal", "batch", &self.body)
    }
}

pub(super) struct Journal {
    base: PathBuf,
    /// [`MAX_UNFOLDED_BYTES`], smaller in tests.
    max_unfolded: u64,
    state: Mutex<State>,
    /// Wakes the folder (frames waiting, a drain, or the stop).
    wake: Condvar,
    /// Wakes whoever waits for a fold to end.
    folded: Condvar,
}

#[derive(Default)]
struct State {
    file: Option<File>,
    /// Bytes of whole frames in `file`: a failed append is cut back to it.
    len: u64,
    /// The generation the next frame goes to.
    generation: u64,
    /// A deferred frame was written since the last sync.
    unsynced: bool,
    /// Frames appended and not folded, oldest first, and their bytes.
    pending: Vec<Arc<Frame>>,
    pending_bytes: u64,
    /// Frames a fold is writing (or failed to write: retried with the next one),
    /// and the last generation they hold.
    folding: Vec<Arc<Frame>>,
    folding_bytes: u64,
    folding_generation: u64,
    /// Keys sent and message references of the frames not folded.
    sent: HashSet<String>,
    references: HashMap<(u64, String), String>,
    /// Someone waits for everything to be folded.
    draining: bool,
    /// The last fold failed, and why (drains return it until one succeeds).
    failed: Option<String>,
    stop: bool,
}

impl Journal {
    /// Replays the journal files of `base` newer than `folded` through `fold`
    /// (at open, before anything else is written), deletes them, and starts the
    /// next generation.
    pub fn open(base: &Path, folded: u64, fold: &Fold<'_>) -> Result<Journal, StoreError> {
        let mut files = generations(base)?;
        files.sort_unstable();
        let mut frames = Vec::new();
        let mut last = folded;
        for &generation in &files {
            if generation > folded {
                frames.extend(read_frames(&file_of(base, generation))?);
            }
            last = last.max(generation);
        }
        if !frames.is_empty() || last > folded {
            fold(&frames, last)?;
        }
        for generation in files {
            let path = file_of(base, generation);
            std::fs::remove_file(&path).map_err(|e| journal_error(&path, e))?;
        }
        Ok(Journal {
            base: base.to_path_buf(),
            max_unfolded: MAX_UNFOLDED_BYTES,
            state: Mutex::new(State {
                generation: last + 1,
                ..State::default()
            }),
            wake: Condvar::new(),
            folded: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `batch` as one frame; synced before returning when `sync`.
    pub fn append(&self, batch: &Batch, sync: bool) -> Result<(), StoreError> {
        // The header's room first, so the frame is one buffer kept as is.
        let mut frame = vec![0; HEADER];
        codec::encode_after(&mut frame, "journal", "batch", batch)?;
        let body_len = frame.len() - HEADER;
        let crc = crc32fast::hash(&frame[HEADER..]);
        frame[..4].copy_from_slice(&(body_len as u32).to_le_bytes());
        frame[4..HEADER].copy_from_slice(&crc.to_le_bytes());
        let mut state = self.lock();
        while state.pending_bytes + state.folding_bytes >= self.max_unfolded && !state.stop {
            // A fold that fails (a full disk) would never make room: refused, as
            // any commit the store cannot take.
            if let Some(why) = &state.failed {
                return Err(StoreError::Shared(why.clone()));
            }
            self.wake.notify_all();
            state = self.folded.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        let path = file_of(&self.base, state.generation);
        let written = (|| {
            if state.file.is_none() {
                // Owner-only, as the state file: a frame holds the same phone
                // numbers, addresses and notes.
                let mut options = OpenOptions::new();
                options.create(true).append(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let file = options.open(&path)?;
                // A new file's name is durable only once its directory is synced:
                // without it, a power loss can drop a file of answered frames.
                sync_dir(&path)?;
                state.file = Some(file);
            }
            let file = state.file.as_mut().expect("just opened");
            file.write_all(&frame)?;
            if sync {
                file.sync_data()?;
            }
            Ok(())
        })();
        if let Err(e) = written {
            // A refused commit must not come back at replay: cut the frame off.
            // Should that fail too, later frames go to a new file, so none hides
            // behind a torn one.
            let len = state.len;
            if let Some(file) = state.file.take() {
                let _ = file.set_len(len).and_then(|()| file.sync_data());
            }
            state.len = 0;
            state.generation += 1;
            return Err(journal_error(&path, e));
        }
        let bytes = frame.len() as u64;
        state.len += bytes;
        state.unsynced = !sync;
        frame.drain(..HEADER);
        let frame = Frame::of(batch, frame);
        for key in &frame.sent {
            state.sent.insert(key.clone());
        }
        for (fp, address, reference) in &frame.references {
            state
                .references
                .insert((*fp, address.clone()), reference.clone());
        }
        state.pending.push(Arc::new(frame));
        state.pending_bytes += bytes;
        if state.pending.len() >= FOLD_FRAMES {
            self.wake.notify_all();
        }
        Ok(())
    }

    /// Syncs frames appended without it.
    pub fn sync(&self) -> Result<(), StoreError> {
        let mut state = self.lock();
        if !state.unsynced {
            return Ok(());
        }
        let path = file_of(&self.base, state.generation);
        if let Some(file) = &state.file {
            file.sync_data().map_err(|e| journal_error(&path, e))?;
        }
        state.unsynced = false;
        Ok(())
    }

    /// Whether a frame not folded yet logs `key` as sent.
    pub fn was_sent(&self, key: &str) -> bool {
        self.lock().sent.contains(key)
    }

    /// A message reference from a frame not folded yet.
    pub fn reference(&self, fp: Fingerprint, address: &str) -> Option<String> {
        self.lock()
            .references
            .get(&(fp.0, address.to_string()))
            .cloned()
    }

    /// Waits until every frame appended so far is folded.
    pub fn drain(&self) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.failed = None;
        while !state.pending.is_empty() || !state.folding.is_empty() {
            state.draining = true;
            self.wake.notify_all();
            state = self.folded.wait(state).unwrap_or_else(|e| e.into_inner());
            if let Some(why) = &state.failed {
                return Err(StoreError::Shared(why.clone()));
            }
        }
        Ok(())
    }

    /// The folder's loop, on its own thread, until [`Journal::stop`]: folds when
    /// enough frames wait, when one has waited [`FOLD_EVERY`], or when asked.
    pub fn run_folder(&self, fold: &Fold<'_>) {
        let mut state = self.lock();
        loop {
            let wanted = state.draining || state.stop || state.pending.len() >= FOLD_FRAMES;
            if !wanted {
                let (s, _) = self
                    .wake
                    .wait_timeout(state, FOLD_EVERY)
                    .unwrap_or_else(|e| e.into_inner());
                state = s;
            }
            if state.pending.is_empty() && state.folding.is_empty() {
                state.draining = false;
                self.folded.notify_all();
                if state.stop {
                    return;
                }
                continue;
            }
            // Take every frame so far; the next ones go to a new file.
            let taken = std::mem::take(&mut state.pending);
            state.folding.extend(taken);
            state.folding_bytes += std::mem::take(&mut state.pending_bytes);
            state.folding_generation = state.generation;
            if let Some(file) = state.file.take() {
                // Deferred frames of the old file are durable before any frame of
                // the next one is.
                if state.unsynced {
                    let _ = file.sync_data();
                    state.unsynced = false;
                }
                state.generation += 1;
                state.len = 0;
            }
            let folding = state.folding.clone();
            let generation = state.folding_generation;
            drop(state);
            let result = fold(&folding, generation);
            if result.is_ok() {
                self.remove_files(generation);
            }
            state = self.lock();
            match result {
                Ok(()) => {
                    let done = std::mem::take(&mut state.folding);
                    state.folding_bytes = 0;
                    forget_overlay(&mut state, &done);
                    state.failed = None;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot fold the journal into the state database; retrying");
                    state.failed = Some(e.to_string());
                    self.folded.notify_all();
                    if state.stop {
                        return;
                    }
                    let (s, _) = self
                        .wake
                        .wait_timeout(state, FOLD_EVERY)
                        .unwrap_or_else(|e| e.into_inner());
                    state = s;
                    continue;
                }
            }
            if state.pending.is_empty() {
                state.draining = false;
            }
            self.folded.notify_all();
        }
    }

    /// Asks the folder to fold what is left and end.
    pub fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_all();
    }

    fn remove_files(&self, up_to: u64) {
        let Ok(files) = generations(&self.base) else {
            return;
        };
        for generation in files.into_iter().filter(|g| *g <= up_to) {
            let _ = std::fs::remove_file(file_of(&self.base, generation));
        }
    }
}

/// The deliveries `frames` both write and are done with: a fold of them need not
/// write either.
pub(super) fn passing(frames: &[Arc<Frame>]) -> HashSet<u64> {
    let put: HashSet<u64> = frames.iter().flat_map(|f| &f.outbox_put).copied().collect();
    frames
        .iter()
        .flat_map(|f| &f.outbox_done)
        .copied()
        .filter(|id| put.contains(id))
        .collect()
}

/// Drops the overlay entries of folded frames (unless a newer frame set them).
fn forget_overlay(state: &mut State, done: &[Arc<Frame>]) {
    let newer_sent: HashSet<&String> = state.pending.iter().flat_map(|f| &f.sent).collect();
    let gone: Vec<String> = done
        .iter()
        .flat_map(|f| &f.sent)
        .filter(|k| !newer_sent.contains(k))
        .cloned()
        .collect();
    for key in gone {
        state.sent.remove(&key);
    }
    for f in done {
        for (fp, address, reference) in &f.references {
            let key = (*fp, address.clone());
            if state.references.get(&key) == Some(reference) {
                state.references.remove(&key);
            }
        }
    }
}

/// Whether any journal file of `base` is there: a store closed cleanly leaves none.
pub(super) fn any_files(base: &Path) -> Result<bool, StoreError> {
    Ok(!generations(base)?.is_empty())
}

fn file_of(base: &Path, generation: u64) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(format!(".journal.{generation}"));
    PathBuf::from(name)
}

/// The generations of the journal files of `base`.
fn generations(base: &Path) -> Result<Vec<u64>, StoreError> {
    let dir = base
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Some(stem) = base.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{stem}.journal.");
    let entries = std::fs::read_dir(dir).map_err(|e| journal_error(dir, e))?;
    Ok(entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            name.to_str()?.strip_prefix(&prefix)?.parse().ok()
        })
        .collect())
}

/// The whole frames of one file, up to the first torn or damaged one.
fn read_frames(path: &Path) -> Result<Vec<Arc<Frame>>, StoreError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| journal_error(path, e))?;
    let mut out = Vec::new();
    let mut rest = bytes.as_slice();
    while rest.len() >= HEADER {
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        let Some(body) = rest.get(HEADER..HEADER + len) else {
            break;
        };
        if crc32fast::hash(body) != crc {
            break;
        }
        let batch: Batch = codec::decode("journal", path.display(), body)?;
        out.push(Arc::new(Frame::of(&batch, body.to_vec())));
        rest = &rest[HEADER + len..];
    }
    Ok(out)
}

/// Syncs the directory holding `path`, so a file created there survives a power loss.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => File::open(".")?.sync_all(),
    }
}

fn journal_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Journal {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;

    fn batch(job: &str) -> Batch {
        Batch {
            jobs: vec![(job.to_string(), Timestamp(1))],
            ..Batch::default()
        }
    }

    /// What a replay folds, by job name, and the generation it records.
    fn replay(base: &Path, folded: u64) -> (Vec<String>, u64) {
        let seen = Mutex::new((Vec::new(), 0));
        let fold = |frames: &[Arc<Frame>], generation: u64| {
            let mut seen = seen.lock().unwrap();
            seen.0
                .extend(frames.iter().map(|f| f.batch().unwrap().jobs[0].0.clone()));
            seen.1 = generation;
            Ok(())
        };
        Journal::open(base, folded, &fold).unwrap();
        seen.into_inner().unwrap()
    }

    fn base(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tocsin-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("tocsin.redb")
    }

    #[test]
    fn frames_not_folded_are_replayed_up_to_a_torn_one_and_then_deleted() {
        let base = base("torn");
        let nothing = |_: &[Arc<Frame>], _: u64| Ok(());
        let journal = Journal::open(&base, 0, &nothing).unwrap();
        for job in ["a", "b", "c"] {
            journal.append(&batch(job), true).unwrap();
        }
        drop(journal);
        // The last frame loses its last byte, as in a crash mid-write.
        let file = file_of(&base, 1);
        let len = std::fs::metadata(&file).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(len - 1)
            .unwrap();
        assert_eq!(replay(&base, 0), (vec!["a".into(), "b".into()], 1));
        assert!(!file.exists(), "replayed files are deleted");
        assert_eq!(replay(&base, 1), (vec![], 0), "nothing twice");
    }

    #[test]
    fn appends_wait_for_the_folder_once_the_backlog_is_full_in_bytes() {
        let base = base("backlog");
        // The fold holds until the test lets it go, as a disk slower than intake.
        let (go, gate) = std::sync::mpsc::channel::<()>();
        let gate = Mutex::new(gate);
        let folded = std::sync::atomic::AtomicUsize::new(0);
        let fold = |frames: &[Arc<Frame>], _: u64| {
            if !frames.is_empty() {
                let _ = gate.lock().unwrap().recv();
                folded.fetch_add(frames.len(), std::sync::atomic::Ordering::SeqCst);
            }
            Ok(())
        };
        let mut journal = Journal::open(&base, 0, &fold).unwrap();
        let frame = HEADER as u64
            + codec::encode("journal", "batch", &batch("x"))
                .unwrap()
                .len() as u64;
        journal.max_unfolded = 3 * frame;
        let journal = Arc::new(journal);
        let appended = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            s.spawn(|| journal.run_folder(&fold));
            s.spawn(|| {
                for _ in 0..5 {
                    journal.append(&batch("x"), false).unwrap();
                    appended.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
            // Three frames fill the backlog; the fourth waits for a fold. Bounded
            // wait: the appender either stops at three or the test fails.
            for _ in 0..200 {
                if appended.load(std::sync::atomic::Ordering::SeqCst) >= 3 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(
                appended.load(std::sync::atomic::Ordering::SeqCst),
                3,
                "held at the bound"
            );
            // Every fold let go: the waiting appends go on, and all five land.
            for _ in 0..5 {
                let _ = go.send(());
            }
            for _ in 0..400 {
                if appended.load(std::sync::atomic::Ordering::SeqCst) == 5 {
                    break;
                }
                let _ = go.send(());
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(appended.load(std::sync::atomic::Ordering::SeqCst), 5);
            journal.stop();
            for _ in 0..5 {
                let _ = go.send(());
            }
        });
        assert_eq!(
            folded.load(std::sync::atomic::Ordering::SeqCst),
            5,
            "nothing lost"
        );
    }

    #[test]
    fn generations_already_folded_are_not_replayed() {
        let base = base("folded");
        let nothing = |_: &[Arc<Frame>], _: u64| Ok(());
        let journal = Journal::open(&base, 0, &nothing).unwrap();
        journal.append(&batch("old"), true).unwrap();
        drop(journal);
        // The database says generation 1 is in it (a crash after the fold's
        // commit, before its file was deleted): replaying it would apply it twice.
        assert_eq!(replay(&base, 1), (vec![], 0));
        assert!(!file_of(&base, 1).exists(), "the folded file is deleted");
        let journal = Journal::open(&base, 1, &nothing).unwrap();
        journal.append(&batch("new"), true).unwrap();
        drop(journal);
        assert!(file_of(&base, 2).exists(), "the next generation is new");
        assert_eq!(replay(&base, 1), (vec!["new".into()], 2));
    }
}
