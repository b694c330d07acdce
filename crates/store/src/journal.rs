//! The ledger's local journal (SQLite stores only): an append-only file
//! beside the database in which every reservation is written before its
//! call is forwarded, so that the store itself can be written in the
//! background (see the `ledger` and `writer` modules) without a `kill -9`
//! losing the record of a call that reached an upstream.
//!
//! Files are `<database>.journal.<n>`, `n` counting up (from the clock's
//! milliseconds when a process opens the journal). A record is framed
//! as `[payload length: u32 LE][CRC-32 of the payload: u32 LE][payload]`,
//! the payload an [`Entry`] in JSON. Reading stops at the first frame that
//! is short, too long or fails its checksum: that is the torn tail of a
//! write the process died in, whose call was never forwarded (the caller
//! forwards only after its append returned).
//!
//! Durability. An append is one `write(2)` of the whole frame under the
//! journal's lock. Once it returns, the record is in the kernel and
//! survives the death of the process, which is the guarantee the store's
//! SQLite commits give too (`synchronous = NORMAL` in WAL mode: no sync
//! per commit). With [`JournalSync::Data`] the caller also waits for an
//! `fdatasync(2)` that covers its record (power loss too): one syncing
//! thread syncs whatever has been written since its last sync, so
//! concurrent calls share one sync (group commit).
//!
//! A file is deleted once the store has committed every record in it and
//! appends have moved on to a newer file (each file is closed to appends at
//! [`ROTATE_BYTES`]). What is left at start-up is replayed into the store
//! by the first process that takes the journal's lock (`<database>.journal.lock`),
//! idempotently: a record whose usage row exists is skipped whole.
//!
//! Only one process at a time owns a store's journal: the gateway holding
//! the lock's exclusive `flock` for as long as it serves.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::record::CallRecord;

/// A file is closed to appends once it holds this many bytes.
pub(crate) const ROTATE_BYTES: u64 = 4 << 20;
/// A frame longer than this is corrupt (a record is at most ~70 KiB).
const MAX_FRAME: u32 = 16 << 20;

/// How an append is made durable before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JournalSync {
    /// One `write(2)`: the record survives the death of the process
    /// (`kill -9`, OOM, a panic), as SQLite's WAL commits with
    /// `synchronous = NORMAL` do, but not necessarily a power loss.
    #[default]
    Write,
    /// The write, then an `fdatasync(2)` shared by every record written
    /// meanwhile (group commit): survives a power loss too.
    Data,
}

/// One journaled reservation: the usage row's id and the call's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) id: i64,
    pub(crate) rec: CallRecord,
}

/// The journal files' common prefix: `<database>.journal`.
pub(crate) fn base_of(db: &Path) -> Option<PathBuf> {
    let mut name = db.file_name()?.to_owned();
    name.push(".journal");
    Some(db.with_file_name(name))
}

fn numbered(base: &Path, n: u64) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn lock_path(base: &Path) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the journal's exclusive lock without waiting; `None` if another
/// process holds it. Released when the file is dropped.
pub(crate) fn try_lock(base: &Path) -> std::io::Result<Option<File>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_path(base))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// The journal files that exist, oldest first.
pub(crate) fn files(base: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let (Some(dir), Some(prefix)) = (base.parent(), base.file_name()) else {
        return Ok(Vec::new());
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.", prefix.to_string_lossy());
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.parse::<u64>().ok())
        {
            found.push((n, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// The records of one journal file, in order, and whether a torn or
/// corrupt tail was left out.
pub(crate) fn read_file(path: &Path) -> std::io::Result<(Vec<Entry>, bool)> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut entries = Vec::new();
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        let Some(entry) = next_frame(&mut rest) else {
            return Ok((entries, true));
        };
        entries.push(entry);
    }
    Ok((entries, false))
}

/// Decodes the frame at the start of `rest` and moves past it.
fn next_frame(rest: &mut &[u8]) -> Option<Entry> {
    let header = rest.get(..8)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?);
    let sum = u32::from_le_bytes(header[4..8].try_into().ok()?);
    if len > MAX_FRAME {
        return None;
    }
    let end = 8usize.checked_add(usize::try_from(len).ok()?)?;
    let payload = rest.get(8..end)?;
    if crc32(payload) != sum {
        return None;
    }
    let entry = serde_json::from_slice(payload).ok()?;
    *rest = &rest[end..];
    Some(entry)
}

/// One framed record.
pub(crate) fn frame(entry: &Entry) -> Vec<u8> {
    let mut out = vec![0u8; 8];
    // Serialising plain data into a Vec cannot fail.
    if serde_json::to_writer(&mut out, entry).is_err() {
        out.truncate(8);
    }
    let payload = &out[8..];
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let sum = crc32(payload);
    out[..4].copy_from_slice(&len.to_le_bytes());
    out[4..8].copy_from_slice(&sum.to_le_bytes());
    out
}

/// CRC-32 (IEEE, reflected, as in zlib), table-driven.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 == 1 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut c = !0u32;
    for &b in bytes {
        c = TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// Records appended to and applied from one file.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    appended: u64,
    applied: u64,
}

struct State {
    file: Arc<File>,
    n: u64,
    size: u64,
    /// Frames written so far (all files), for the syncing thread.
    written: u64,
    files: BTreeMap<u64, Counts>,
    closed: bool,
}

struct Shared {
    base: PathBuf,
    mode: JournalSync,
    state: Mutex<State>,
    /// Wakes the syncing thread when something was written.
    wrote: Condvar,
    /// The number of frames known synced (`Data` mode).
    synced: watch::Sender<u64>,
    /// How many `fdatasync` calls were made (for tests and the report).
    syncs: std::sync::atomic::AtomicU64,
}

/// The open journal of the process that owns it (holds its lock).
pub(crate) struct Journal {
    shared: Arc<Shared>,
    _lock: File,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("base", &self.shared.base)
            .field("mode", &self.shared.mode)
            .finish_non_exhaustive()
    }
}

fn create(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().append(true).create_new(true).open(path)
}

impl Journal {
    /// Opens a fresh file numbered after every existing one, under the
    /// given (held) lock; the caller has replayed and removed older files.
    pub(crate) fn open(base: PathBuf, lock: File, mode: JournalSync) -> std::io::Result<Journal> {
        // Numbered from the clock, so a new owner never reuses a name.
        let after = files(&base)?.last().map_or(0, |(n, _)| n + 1);
        let n = after.max(u64::try_from(crate::clock::now_ms()).unwrap_or(0));
        let file = create(&numbered(&base, n))?;
        let mut counts = BTreeMap::new();
        counts.insert(n, Counts::default());
        let (synced, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            base,
            mode,
            state: Mutex::new(State {
                file: Arc::new(file),
                n,
                size: 0,
                written: 0,
                files: counts,
                closed: false,
            }),
            wrote: Condvar::new(),
            synced,
            syncs: std::sync::atomic::AtomicU64::new(0),
        });
        if mode == JournalSync::Data {
            let s = shared.clone();
            std::thread::Builder::new()
                .name("mcpgate-journal-sync".into())
                .spawn(move || sync_loop(&s))?;
        }
        Ok(Journal {
            shared,
            _lock: lock,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }

    /// Appends one record; returns the number of the file it went to, once
    /// it is as durable as the journal's mode asks.
    #[cfg(test)]
    pub(crate) async fn append(&self, entry: &Entry) -> std::io::Result<u64> {
        let (n, seq) = self.write(entry)?;
        self.durable(seq).await?;
        Ok(n)
    }

    /// Writes one record (one `write(2)`, so it survives the death of the
    /// process once this returns); returns the number of the file it went
    /// to and its sequence number for [`Journal::durable`].
    pub(crate) fn write(&self, entry: &Entry) -> std::io::Result<(u64, u64)> {
        let bytes = frame(entry);
        let mut st = self.state();
        if st.size >= ROTATE_BYTES {
            self.rotate(&mut st)?;
        }
        if let Err(e) = (&*st.file).write_all(&bytes) {
            // Never leave a torn frame in front of later ones.
            if st.file.set_len(st.size).is_err() {
                let _ = self.rotate(&mut st);
            }
            return Err(e);
        }
        st.size += bytes.len() as u64;
        st.written += 1;
        let n = st.n;
        st.files.entry(n).or_default().appended += 1;
        Ok((n, st.written))
    }

    /// Waits until record `seq` is as durable as the journal's mode asks:
    /// at once with [`JournalSync::Write`], after an `fdatasync` that
    /// covers it with [`JournalSync::Data`].
    pub(crate) async fn durable(&self, seq: u64) -> std::io::Result<()> {
        if self.shared.mode == JournalSync::Data {
            let mut rx = self.shared.synced.subscribe();
            self.shared.wrote.notify_one();
            if rx.wait_for(|&synced| synced >= seq).await.is_err() {
                return Err(std::io::Error::other("the journal's sync thread stopped"));
            }
        }
        Ok(())
    }

    /// Starts a new file; the old one is synced first (`Data` mode), and
    /// deleted now if the store already has all of it.
    fn rotate(&self, st: &mut State) -> std::io::Result<()> {
        if self.shared.mode == JournalSync::Data {
            st.file.sync_data()?;
        }
        let next = st.n + 1;
        let file = create(&numbered(&self.shared.base, next))?;
        let old = st.n;
        st.file = Arc::new(file);
        st.n = next;
        st.size = 0;
        st.files.insert(next, Counts::default());
        self.remove_if_done(st, old);
        Ok(())
    }

    /// Notes that the store has committed `count` records of file `n`.
    pub(crate) fn applied(&self, n: u64, count: u64) {
        let mut st = self.state();
        if let Some(c) = st.files.get_mut(&n) {
            c.applied += count;
        }
        self.remove_if_done(&mut st, n);
    }

    fn remove_if_done(&self, st: &mut State, n: u64) {
        let done = st.files.get(&n).is_some_and(|c| c.applied >= c.appended);
        if n != st.n && done {
            st.files.remove(&n);
            let path = numbered(&self.shared.base, n);
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(error = %e, file = %path.display(), "cannot delete an applied journal file");
            }
        }
    }

    /// How many `fdatasync` calls the journal has made.
    #[cfg(test)]
    pub(crate) fn syncs(&self) -> u64 {
        self.shared.syncs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The journal files still on disk (for tests).
    #[cfg(test)]
    pub(crate) fn live_files(&self) -> Vec<u64> {
        self.state().files.keys().copied().collect()
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.state().closed = true;
        self.shared.wrote.notify_one();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The syncing thread (`Data` mode): syncs whatever was written since its
/// last sync, then tells the waiting appenders, until the journal closes.
fn sync_loop(shared: &Shared) {
    let mut synced = 0u64;
    loop {
        let (file, upto) = {
            let mut st = lock(&shared.state);
            while st.written <= synced && !st.closed {
                st = match shared.wrote.wait(st) {
                    Ok(g) => g,
                    Err(poisoned) => poisoned.into_inner(),
                };
            }
            if st.closed && st.written <= synced {
                return;
            }
            (st.file.clone(), st.written)
        };
        // Records written to an older file were synced when it was rotated.
        match file.sync_data() {
            Ok(()) => {
                shared
                    .syncs
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                synced = upto;
                shared.synced.send_replace(synced);
            }
            Err(e) => {
                tracing::error!(error = %e, "journal fdatasync failed; retrying");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i64, tenant: &str) -> Entry {
        Entry {
            id,
            rec: CallRecord {
                ts_ms: 1_700_000_000_000 + id,
                tenant: tenant.into(),
                key_id: Some("k1".into()),
                session: None,
                method: "tools/call".into(),
                name: "fs.read".into(),
                upstream: Some("fs".into()),
                cost: 2,
                arg_bytes: 11,
                args: Some("{\"p\":\"é\"}".into()),
                run_id: None,
            },
        }
    }

    fn temp_base(tag: &str) -> (PathBuf, PathBuf) {
        let mut buf = [0u8; 8];
        getrandom::fill(&mut buf).expect("random");
        let dir =
            std::env::temp_dir().join(format!("mcpgate-journal-{tag}-{}", u64::from_le_bytes(buf)));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let base = base_of(&dir.join("mcpgate.db")).expect("base");
        (dir, base)
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[tokio::test]
    async fn records_read_back_and_a_torn_tail_is_ignored() {
        let (dir, base) = temp_base("torn");
        let lock = try_lock(&base).expect("lock").expect("free");
        let j = Journal::open(base.clone(), lock, JournalSync::Write).expect("open");
        let first = j.append(&entry(1, "acme")).await.expect("append");
        for id in 2..=3 {
            assert_eq!(j.append(&entry(id, "acme")).await.expect("append"), first);
        }
        let path = numbered(&base, first);
        let (read, torn) = read_file(&path).expect("read");
        assert!(!torn);
        assert_eq!(
            read,
            vec![entry(1, "acme"), entry(2, "acme"), entry(3, "acme")]
        );
        // A fourth record cut short, as by a kill in the middle of its write.
        let fourth = frame(&entry(4, "acme"));
        for cut in [1, 7, 8, fourth.len() - 1] {
            let whole = std::fs::read(&path).expect("bytes");
            let mut f = OpenOptions::new().append(true).open(&path).expect("f");
            f.write_all(&fourth[..cut]).expect("write");
            let (read, torn) = read_file(&path).expect("read");
            assert!(torn, "cut at {cut}");
            assert_eq!(read.len(), 3, "cut at {cut}");
            std::fs::write(&path, whole).expect("restore");
        }
        // A flipped bit in the last record's payload fails its checksum.
        let mut bytes = std::fs::read(&path).expect("bytes");
        let last = bytes.len() - 3;
        bytes[last] ^= 0x20;
        std::fs::write(&path, &bytes).expect("write");
        let (read, torn) = read_file(&path).expect("read");
        assert!(torn);
        assert_eq!(read, vec![entry(1, "acme"), entry(2, "acme")]);
        drop(j);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn the_lock_is_exclusive_while_held() {
        let (dir, base) = temp_base("lock");
        let first = try_lock(&base).expect("lock").expect("free");
        assert!(try_lock(&base).expect("try").is_none(), "held");
        drop(first);
        assert!(try_lock(&base).expect("try").is_some(), "released");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn files_rotate_and_applied_ones_are_deleted() {
        let (dir, base) = temp_base("rotate");
        let lock = try_lock(&base).expect("lock").expect("free");
        let j = Journal::open(base.clone(), lock, JournalSync::Write).expect("open");
        let mut big = entry(1, "acme");
        big.rec.args = Some("x".repeat(1 << 20));
        let mut per_file: BTreeMap<u64, u64> = BTreeMap::new();
        for id in 0..10 {
            big.id = id;
            *per_file
                .entry(j.append(&big).await.expect("append"))
                .or_default() += 1;
        }
        assert!(per_file.len() >= 2, "{per_file:?}");
        assert_eq!(j.live_files(), per_file.keys().copied().collect::<Vec<_>>());
        for (&n, &count) in &per_file {
            j.applied(n, count);
        }
        let current = *per_file.keys().last().expect("a file");
        assert_eq!(
            j.live_files(),
            vec![current],
            "only the file in use is left"
        );
        let on_disk: Vec<u64> = files(&base)
            .expect("list")
            .into_iter()
            .map(|f| f.0)
            .collect();
        assert_eq!(on_disk, vec![current]);
        drop(j);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_share_fdatasyncs() {
        let (dir, base) = temp_base("sync");
        let lock = try_lock(&base).expect("lock").expect("free");
        let j = Arc::new(Journal::open(base.clone(), lock, JournalSync::Data).expect("open"));
        let tasks: Vec<_> = (0..32)
            .map(|t| {
                let j = j.clone();
                tokio::spawn(async move {
                    for i in 0..8 {
                        j.append(&entry(t * 100 + i, "acme")).await.expect("append");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        let syncs = j.syncs();
        assert!(syncs >= 1, "every append waited for a sync");
        assert!(
            syncs < 256,
            "256 concurrent appends took {syncs} fdatasyncs: not grouped"
        );
        let (read, torn) = read_file(&files(&base).expect("list")[0].1).expect("read");
        assert!(!torn);
        assert_eq!(read.len(), 256);
        drop(j);
        let _ = std::fs::remove_dir_all(dir);
    }
}
