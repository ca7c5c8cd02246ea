//! An in-memory disk that fails on cue, for redb: writes fail with ENOSPC while
//! `writes_left` is zero (negative: never), and what was written before stays, as
//! on a full or failing disk, or one whose process was killed.

use std::io;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Default)]
pub struct FakeDisk {
    bytes: Arc<Mutex<Vec<u8>>>,
    writes_left: Arc<AtomicI64>,
}

impl FakeDisk {
    pub fn healthy() -> FakeDisk {
        let d = FakeDisk::default();
        d.recover();
        d
    }

    /// Every write from now on fails.
    pub fn fail(&self) {
        self.fail_after(0);
    }

    /// The next `writes` writes succeed, then every one fails.
    pub fn fail_after(&self, writes: i64) {
        self.writes_left.store(writes, Ordering::SeqCst);
    }

    pub fn recover(&self) {
        self.writes_left.store(-1, Ordering::SeqCst);
    }

    /// The bytes as a new process would find them, on a healthy disk.
    pub fn copy(&self) -> FakeDisk {
        let d = FakeDisk::healthy();
        *d.bytes.lock().unwrap() = self.bytes.lock().unwrap().clone();
        d
    }

    fn spend(&self) -> io::Result<()> {
        let left = self.writes_left.load(Ordering::SeqCst);
        if left == 0 {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        if left > 0 {
            self.writes_left.fetch_sub(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

impl redb::StorageBackend for FakeDisk {
    fn len(&self) -> io::Result<u64> {
        Ok(self.bytes.lock().unwrap().len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let bytes = self.bytes.lock().unwrap();
        let src = bytes
            .get(offset as usize..offset as usize + out.len())
            .ok_or_else(|| io::Error::other("read past the end"))?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.spend()?;
        self.bytes.lock().unwrap().resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.spend()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.spend()?;
        let mut bytes = self.bytes.lock().unwrap();
        let dst = bytes
            .get_mut(offset as usize..offset as usize + data.len())
            .ok_or_else(|| io::Error::other("write past the end"))?;
        dst.copy_from_slice(data);
        Ok(())
    }
}
