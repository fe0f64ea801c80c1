//! [`SimDisk`]: the in-memory disk of one simulated machine, with crash semantics and injectable faults.
//!
//! Every file has two contents: the *current* one (the OS page cache, what any process reads back) and the
//! *durable* one (as of its last fsync). A process crash touches neither, so there is nothing to call for it.
//! [`SimDisk::power_loss`] is a machine crash: every file goes back to its durable contents, a file never synced
//! since it was created disappears, and everything appended since the last sync is gone. This is the
//! pessimistic model: a real kernel also writes dirty pages back on its own after some seconds, which can only
//! make more data survive, never less.
//!
//! Simplifications, chosen so that the model stays small and still punishes every missing fsync of file data:
//! - Metadata operations (mkdir, rename, remove, truncate) are durable at once, like a journaling filesystem
//!   that orders metadata before returning, so `sync_dir` only counts and waits. A renamed file keeps whatever
//!   durable contents it had: rename a synced temp file over a manifest and the new manifest survives; rename a
//!   never-synced one and a power loss leaves neither the old nor the new file (POSIX allows that).
//! - File creation is the exception: a created file exists durably only once it was synced itself.
//! - A truncate that extends a file with zeros leaves its durable contents as they were.
//! - Open handles follow the file (an inode), across renames; after a power loss every handle is stale and
//!   fails, as its process would be dead.
//!
//! Append-only files, the common case, cost nothing extra: a sync records the durable *length*, since the
//! durable contents are then a prefix of the current ones. A separate durable copy exists only while a synced
//! file has been overwritten since its last sync.
//!
//! Nothing here uses threads, clocks or randomness: the one wait, a slow fsync, is `tokio::time::sleep`,
//! which is simulated time under madsim. Maps are `BTreeMap`s, so iteration order is deterministic.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{AppendFile, Disk, normalize};

/// Counters of what the processes did to one machine's disk, for tests and the simulator's trace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimDiskStats {
    /// Successful `write_file` and `append` calls.
    pub writes: u64,
    /// Bytes those calls wrote.
    pub bytes_written: u64,
    /// Completed file and directory syncs.
    pub syncs: u64,
    /// Calls of [`SimDisk::power_loss`].
    pub power_losses: u64,
    /// Operations failed by the injected `write_error` fault.
    pub injected_errors: u64,
}

/// An in-memory disk shared by all processes of one simulated machine.
///
/// Cloning is cheap and every clone sees the same disk. [`SimDisk::scoped`] gives a process a view rooted at
/// its own directory; fault injection and [`SimDisk::power_loss`] act on the whole machine.
#[derive(Clone)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
    /// Normalised directory this view is rooted at (`""` for the whole disk).
    root: String,
}

impl std::fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDisk").field("root", &self.root).finish_non_exhaustive()
    }
}

impl Default for SimDisk {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Default)]
struct State {
    /// Every directory except the disk's root, which always exists.
    dirs: BTreeSet<String>,
    /// Path of every file to its inode.
    files: BTreeMap<String, u64>,
    inodes: BTreeMap<u64, Inode>,
    next_ino: u64,
    /// Bumped by each power loss; handles opened before it are stale.
    generation: u64,
    slow_fsync: Duration,
    write_error: bool,
    stats: SimDiskStats,
}

struct Inode {
    /// Current contents: the page cache.
    data: Vec<u8>,
    durable: Durable,
    /// Whether a path still names this inode; an unlinked one lives on while a handle holds it.
    linked: bool,
    /// Open append handles of the current generation.
    handles: u32,
}

/// What of a file survives a power loss.
#[derive(Debug)]
enum Durable {
    /// Never synced since created: the file vanishes.
    Never,
    /// The first n bytes of `data`, unchanged since the last sync (the append-only case).
    Prefix(usize),
    /// The file was overwritten since its last sync; these were its synced contents.
    Copy(Vec<u8>),
}

impl Inode {
    fn new(data: Vec<u8>) -> Self {
        Self { data, durable: Durable::Never, linked: true, handles: 0 }
    }

    /// Replaces the contents (`write_file`), keeping the synced contents aside if they were a prefix.
    fn overwrite(&mut self, data: &[u8]) {
        if let Durable::Prefix(n) = self.durable
            && n > 0
        {
            self.durable = Durable::Copy(self.data[..n].to_vec());
        }
        self.data.clear();
        self.data.extend_from_slice(data);
    }

    /// Sets the length; the cut is durable at once (metadata), an extension with zeros is not.
    fn set_len(&mut self, len: usize) {
        self.data.resize(len, 0);
        match &mut self.durable {
            Durable::Never => {}
            Durable::Prefix(n) => *n = (*n).min(len),
            Durable::Copy(v) => v.truncate(len),
        }
    }

    fn sync(&mut self) {
        self.durable = Durable::Prefix(self.data.len());
    }

    fn durable_len(&self) -> Option<u64> {
        match &self.durable {
            Durable::Never => None,
            Durable::Prefix(n) => Some(*n as u64),
            Durable::Copy(v) => Some(v.len() as u64),
        }
    }

    /// Bytes a power loss would lose or revert (all of them for an overwritten file).
    fn unsynced(&self) -> u64 {
        match self.durable {
            Durable::Prefix(n) => (self.data.len() - n) as u64,
            Durable::Never | Durable::Copy(_) => self.data.len() as u64,
        }
    }
}

fn error(kind: io::ErrorKind, op: &str, path: &str, msg: &str) -> io::Error {
    io::Error::new(kind, format!("{op} sim:/{path}: {msg}"))
}

fn not_found(op: &str, path: &str) -> io::Error {
    error(io::ErrorKind::NotFound, op, path, "no such file or directory")
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// `dir` + `/` + `rel`, for the directory prefixes used in range scans and joins.
fn join(dir: &str, rel: &str) -> String {
    match (dir.is_empty(), rel.is_empty()) {
        (true, _) => rel.to_string(),
        (_, true) => dir.to_string(),
        _ => format!("{dir}/{rel}"),
    }
}

/// Whether `path` is `dir` itself or lies below it.
fn is_under(path: &str, dir: &str) -> bool {
    dir.is_empty() || path == dir || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

impl State {
    fn is_dir(&self, path: &str) -> bool {
        path.is_empty() || self.dirs.contains(path)
    }

    fn inject_write_error(&mut self, op: &str, path: &str) -> io::Result<()> {
        if self.write_error {
            self.stats.injected_errors += 1;
            return Err(error(io::ErrorKind::Other, op, path, "injected fault: write_error"));
        }
        Ok(())
    }

    /// The directory a new entry at `path` goes into must exist.
    fn check_parent(&self, op: &str, path: &str) -> io::Result<()> {
        let dir = parent(path);
        if self.is_dir(dir) {
            Ok(())
        } else if self.files.contains_key(dir) {
            Err(error(io::ErrorKind::NotADirectory, op, path, "parent is a file"))
        } else {
            Err(error(io::ErrorKind::NotFound, op, path, "parent directory does not exist"))
        }
    }

    fn ino(&self, op: &str, path: &str) -> io::Result<u64> {
        match self.files.get(path) {
            Some(&ino) => Ok(ino),
            None if self.is_dir(path) => Err(error(io::ErrorKind::IsADirectory, op, path, "is a directory")),
            None => Err(not_found(op, path)),
        }
    }

    fn file(&self, op: &str, path: &str) -> io::Result<&Inode> {
        let ino = self.ino(op, path)?;
        Ok(&self.inodes[&ino])
    }

    fn file_mut(&mut self, op: &str, path: &str) -> io::Result<&mut Inode> {
        let ino = self.ino(op, path)?;
        Ok(self.inodes.get_mut(&ino).expect("every path names a live inode"))
    }

    fn create(&mut self, path: String, data: Vec<u8>) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(ino, Inode::new(data));
        self.files.insert(path, ino);
        ino
    }

    /// Removes the name `path`; the inode goes too unless a handle still holds it.
    fn unlink(&mut self, path: &str) {
        if let Some(ino) = self.files.remove(path) {
            let inode = self.inodes.get_mut(&ino).expect("every path names a live inode");
            inode.linked = false;
            if inode.handles == 0 {
                self.inodes.remove(&ino);
            }
        }
    }

    /// Paths of the files and directories strictly below `dir`.
    fn below(&self, dir: &str) -> (Vec<String>, Vec<String>) {
        let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        let dirs = self.dirs.range(prefix.clone()..).take_while(|d| d.starts_with(&prefix)).cloned().collect();
        let files = self.files.range(prefix.clone()..).take_while(|(f, _)| f.starts_with(&prefix));
        (dirs, files.map(|(f, _)| f.clone()).collect())
    }

    fn create_dir_all(&mut self, path: &str) -> io::Result<()> {
        let mut at = 0;
        while at <= path.len() && !path.is_empty() {
            let end = path[at..].find('/').map_or(path.len(), |i| at + i);
            let dir = &path[..end];
            if self.files.contains_key(dir) {
                let kind = if end == path.len() { io::ErrorKind::AlreadyExists } else { io::ErrorKind::NotADirectory };
                return Err(error(kind, "create_dir_all", path, &format!("sim:/{dir} is a file")));
            }
            self.dirs.insert(dir.to_string());
            at = end + 1;
        }
        Ok(())
    }

    fn list_dir(&self, path: &str) -> io::Result<Vec<String>> {
        if !self.is_dir(path) {
            return Err(if self.files.contains_key(path) {
                error(io::ErrorKind::NotADirectory, "list_dir", path, "is a file")
            } else {
                not_found("list_dir", path)
            });
        }
        let skip = if path.is_empty() { 0 } else { path.len() + 1 };
        let (dirs, files) = self.below(path);
        let names: BTreeSet<String> = dirs
            .iter()
            .chain(&files)
            .map(|p| &p[skip..])
            .filter(|name| !name.contains('/'))
            .map(String::from)
            .collect();
        Ok(names.into_iter().collect())
    }

    fn write_file(&mut self, path: &str, data: &[u8]) -> io::Result<()> {
        const OP: &str = "write_file";
        self.inject_write_error(OP, path)?;
        if self.is_dir(path) {
            return Err(error(io::ErrorKind::IsADirectory, OP, path, "is a directory"));
        }
        match self.files.get(path) {
            Some(ino) => self.inodes.get_mut(ino).expect("every path names a live inode").overwrite(data),
            None => {
                self.check_parent(OP, path)?;
                self.create(path.to_string(), data.to_vec());
            }
        }
        self.stats.writes += 1;
        self.stats.bytes_written += data.len() as u64;
        Ok(())
    }

    fn open_append(&mut self, path: &str) -> io::Result<u64> {
        const OP: &str = "open_append";
        let ino = match self.files.get(path) {
            Some(&ino) => ino,
            None => {
                if self.is_dir(path) {
                    return Err(error(io::ErrorKind::IsADirectory, OP, path, "is a directory"));
                }
                self.inject_write_error(OP, path)?;
                self.check_parent(OP, path)?;
                self.create(path.to_string(), Vec::new())
            }
        };
        self.inodes.get_mut(&ino).expect("every path names a live inode").handles += 1;
        Ok(ino)
    }

    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        const OP: &str = "rename";
        let both = format!("{from} -> sim:/{to}");
        self.inject_write_error(OP, &both)?;
        if from == to && (self.files.contains_key(from) || self.is_dir(from)) {
            return Ok(());
        }
        if let Some(&ino) = self.files.get(from) {
            if self.is_dir(to) {
                return Err(error(io::ErrorKind::IsADirectory, OP, &both, "target is a directory"));
            }
            self.check_parent(OP, to)?;
            self.unlink(to);
            self.files.remove(from);
            self.files.insert(to.to_string(), ino);
            return Ok(());
        }
        if !self.dirs.contains(from) {
            return Err(not_found(OP, &both));
        }
        if self.files.contains_key(to) {
            return Err(error(io::ErrorKind::NotADirectory, OP, &both, "target is a file"));
        }
        if is_under(to, from) {
            return Err(error(io::ErrorKind::InvalidInput, OP, &both, "cannot move a directory into itself"));
        }
        if self.dirs.contains(to) {
            let (dirs, files) = self.below(to);
            if !dirs.is_empty() || !files.is_empty() {
                return Err(error(io::ErrorKind::DirectoryNotEmpty, OP, &both, "target directory is not empty"));
            }
        }
        self.check_parent(OP, to)?;
        let (dirs, files) = self.below(from);
        let moved = |p: &str| join(to, &p[from.len() + 1..]);
        self.dirs.remove(from);
        self.dirs.insert(to.to_string());
        for d in dirs {
            self.dirs.remove(&d);
            self.dirs.insert(moved(&d));
        }
        for f in files {
            let ino = self.files.remove(&f).expect("listed above");
            self.files.insert(moved(&f), ino);
        }
        Ok(())
    }

    fn remove_dir_all(&mut self, path: &str) -> io::Result<()> {
        if self.files.contains_key(path) {
            return Err(error(io::ErrorKind::NotADirectory, "remove_dir_all", path, "is a file"));
        }
        if !self.dirs.contains(path) {
            return Err(not_found("remove_dir_all", path));
        }
        let (dirs, files) = self.below(path);
        for f in files {
            self.unlink(&f);
        }
        for d in dirs {
            self.dirs.remove(&d);
        }
        self.dirs.remove(path);
        Ok(())
    }

    fn power_loss(&mut self) -> (usize, u64) {
        self.generation += 1;
        self.stats.power_losses += 1;
        let mut lost_bytes = 0;
        let before = self.inodes.len();
        self.inodes.retain(|_, inode| {
            inode.handles = 0;
            if !inode.linked {
                return false;
            }
            lost_bytes += inode.unsynced();
            match std::mem::replace(&mut inode.durable, Durable::Never) {
                Durable::Never => return false,
                Durable::Prefix(n) => inode.data.truncate(n),
                Durable::Copy(v) => inode.data = v,
            }
            inode.sync();
            true
        });
        let inodes = &self.inodes;
        self.files.retain(|_, ino| inodes.contains_key(ino));
        (before - self.inodes.len(), lost_bytes)
    }
}

impl SimDisk {
    /// An empty disk: only the root directory exists.
    pub fn new() -> Self {
        Self { state: Arc::new(Mutex::new(State::default())), root: String::new() }
    }

    /// A view of the same disk rooted at `dir` (relative to this view's root), e.g. a process's data directory.
    /// The directory is not created: `create_dir_all("")` on the view does that.
    pub fn scoped(&self, dir: &str) -> io::Result<SimDisk> {
        Ok(Self { state: self.state.clone(), root: self.full(dir)? })
    }

    /// The directory this view is rooted at, relative to the machine's disk (`""` for the whole disk).
    pub fn root(&self) -> &str {
        &self.root
    }

    /// Machine crash: every file reverts to its durable contents, never-synced files vanish, open handles go
    /// stale. Call it together with killing every process of the machine.
    pub fn power_loss(&self) {
        let (files_lost, bytes_lost) = self.lock().power_loss();
        tracing::debug!(files_lost, bytes_lost, "sim disk: power loss");
    }

    /// Every file sync and directory sync waits `delay` of simulated time first (zero: no wait).
    pub fn set_slow_fsync(&self, delay: Duration) {
        self.lock().slow_fsync = delay;
    }

    /// While set, every write (`write_file`, `append`, creating open, `rename`, `truncate`) and every fsync (its
    /// writeback is a write: EIO) fails with an error of kind `Other` and changes nothing.
    pub fn set_write_error(&self, on: bool) {
        self.lock().write_error = on;
    }

    /// Removes the slow-fsync and write-error faults.
    pub fn clear_faults(&self) {
        let mut s = self.lock();
        s.slow_fsync = Duration::ZERO;
        s.write_error = false;
    }

    /// Flips every bit of the last `nbytes` bytes of the file (fewer if it is shorter). Bytes already synced
    /// are corrupted in the durable contents too, as a bad sector would be.
    pub fn corrupt_tail(&self, path: &str, nbytes: u64) -> io::Result<()> {
        let p = self.full(path)?;
        let mut s = self.lock();
        let inode = s.file_mut("corrupt_tail", &p)?;
        let len = inode.data.len();
        let start = len - usize::try_from(nbytes).unwrap_or(usize::MAX).min(len);
        inode.data[start..].iter_mut().for_each(|b| *b = !*b);
        // A durable prefix shares the bytes of `data`; only a separate copy needs its own flip.
        if let Durable::Copy(v) = &mut inode.durable {
            v.iter_mut().skip(start).take(len - start).for_each(|b| *b = !*b);
        }
        Ok(())
    }

    /// Drops the last `nbytes` bytes of the file (all of it if shorter), current and durable, as a torn
    /// write leaves a file after a crash.
    pub fn tear_tail(&self, path: &str, nbytes: u64) -> io::Result<()> {
        let p = self.full(path)?;
        let mut s = self.lock();
        let inode = s.file_mut("tear_tail", &p)?;
        let len = inode.data.len();
        inode.set_len(len - usize::try_from(nbytes).unwrap_or(usize::MAX).min(len));
        Ok(())
    }

    /// Length of the contents of the file that a power loss would leave; `None` if there is no such file or
    /// it would vanish (never synced).
    pub fn durable_len(&self, path: &str) -> Option<u64> {
        let p = self.full(path).ok()?;
        self.lock().file("durable_len", &p).ok()?.durable_len()
    }

    /// Every file under this view's root, as paths relative to it, in order (fault injection picks files by it).
    pub fn files(&self) -> Vec<String> {
        let prefix = if self.root.is_empty() { String::new() } else { format!("{}/", self.root) };
        self.lock().files.keys().filter_map(|f| f.strip_prefix(prefix.as_str()).map(str::to_string)).collect()
    }

    /// Bytes a power loss would lose or revert, summed over every file of the machine.
    pub fn unsynced_bytes(&self) -> u64 {
        self.lock().inodes.values().filter(|i| i.linked).map(Inode::unsynced).sum()
    }

    /// Counters for the whole machine's disk.
    pub fn stats(&self) -> SimDiskStats {
        self.lock().stats.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking simulated node must not take its machine's disk down with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn full(&self, path: &str) -> io::Result<String> {
        Ok(join(&self.root, &normalize(path)?))
    }

    /// A relative path that must not be the view's root (which cannot be removed or renamed).
    fn full_not_root(&self, op: &str, path: &str) -> io::Result<String> {
        if normalize(path)?.is_empty() {
            return Err(error(io::ErrorKind::InvalidInput, op, &self.root, "refusing to touch the disk's root"));
        }
        self.full(path)
    }

    /// Waits the injected fsync delay, then applies `f` unless the machine lost power meanwhile.
    async fn fsync<T>(&self, op: &str, path: &str, f: impl FnOnce(&mut State) -> io::Result<T>) -> io::Result<T> {
        let (delay, generation) = {
            let s = self.lock();
            (s.slow_fsync, s.generation)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut s = self.lock();
        if s.generation != generation {
            return Err(error(io::ErrorKind::Other, op, path, "machine lost power during fsync"));
        }
        // A disk that fails writes fails the writeback an fsync waits for, too (EIO).
        s.inject_write_error(op, path)?;
        let out = f(&mut s)?;
        s.stats.syncs += 1;
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Disk for SimDisk {
    async fn create_dir_all(&self, path: &str) -> io::Result<()> {
        let p = self.full(path)?;
        self.lock().create_dir_all(&p)
    }

    async fn list_dir(&self, path: &str) -> io::Result<Vec<String>> {
        let p = self.full(path)?;
        self.lock().list_dir(&p)
    }

    async fn exists(&self, path: &str) -> io::Result<bool> {
        let p = self.full(path)?;
        let s = self.lock();
        Ok(s.is_dir(&p) || s.files.contains_key(&p))
    }

    async fn file_len(&self, path: &str) -> io::Result<u64> {
        let p = self.full(path)?;
        Ok(self.lock().file("file_len", &p)?.data.len() as u64)
    }

    async fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        let p = self.full(path)?;
        Ok(self.lock().file("read", &p)?.data.clone())
    }

    async fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let p = self.full(path)?;
        let s = self.lock();
        let data = &s.file("read_at", &p)?.data;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
        let end = start + len.min(data.len() - start);
        Ok(data[start..end].to_vec())
    }

    async fn write_file(&self, path: &str, data: &[u8]) -> io::Result<()> {
        let p = self.full(path)?;
        self.lock().write_file(&p, data)
    }

    async fn open_append(&self, path: &str) -> io::Result<Box<dyn AppendFile>> {
        let p = self.full(path)?;
        let mut s = self.lock();
        let ino = s.open_append(&p)?;
        let generation = s.generation;
        drop(s);
        Ok(Box::new(SimAppendFile { disk: self.clone(), ino, generation, path: p }))
    }

    async fn sync_file(&self, path: &str) -> io::Result<()> {
        let p = self.full(path)?;
        let ino = self.lock().ino("sync_file", &p)?;
        self.fsync("sync_file", &p, |s| match s.inodes.get_mut(&ino) {
            Some(inode) => {
                inode.sync();
                Ok(())
            }
            None => Err(not_found("sync_file", &p)),
        })
        .await
    }

    async fn sync_dir(&self, path: &str) -> io::Result<()> {
        let p = self.full(path)?;
        let check = |s: &mut State| {
            if s.is_dir(&p) {
                Ok(())
            } else if s.files.contains_key(&p) {
                Err(error(io::ErrorKind::NotADirectory, "sync_dir", &p, "is a file"))
            } else {
                Err(not_found("sync_dir", &p))
            }
        };
        check(&mut self.lock())?;
        // Metadata is durable at once in this model: the sync only takes its time.
        self.fsync("sync_dir", &p, check).await
    }

    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (f, t) = (self.full_not_root("rename", from)?, self.full_not_root("rename", to)?);
        self.lock().rename(&f, &t)
    }

    async fn remove_file(&self, path: &str) -> io::Result<()> {
        let p = self.full(path)?;
        let mut s = self.lock();
        s.ino("remove_file", &p)?;
        s.unlink(&p);
        Ok(())
    }

    async fn remove_dir_all(&self, path: &str) -> io::Result<()> {
        let p = self.full_not_root("remove_dir_all", path)?;
        self.lock().remove_dir_all(&p)
    }

    async fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        let p = self.full(path)?;
        let mut s = self.lock();
        s.ino("truncate", &p)?;
        s.inject_write_error("truncate", &p)?;
        let len = usize::try_from(len)
            .map_err(|_| error(io::ErrorKind::InvalidInput, "truncate", &p, "length does not fit in memory"))?;
        s.file_mut("truncate", &p)?.set_len(len);
        Ok(())
    }
}

/// An append handle on one inode; it follows the file across renames and fails after a power loss.
struct SimAppendFile {
    disk: SimDisk,
    ino: u64,
    /// Generation of the disk when opened; a power loss since makes the handle stale.
    generation: u64,
    /// Path at open, for error messages.
    path: String,
}

impl SimAppendFile {
    fn inode<'a>(&self, s: &'a mut State, op: &str) -> io::Result<&'a mut Inode> {
        if s.generation != self.generation {
            return Err(error(io::ErrorKind::Other, op, &self.path, "stale handle: the machine lost power"));
        }
        Ok(s.inodes.get_mut(&self.ino).expect("an open handle keeps its inode"))
    }
}

#[async_trait::async_trait]
impl AppendFile for SimAppendFile {
    async fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let mut s = self.disk.lock();
        self.inode(&mut s, "append")?;
        s.inject_write_error("append", &self.path)?;
        self.inode(&mut s, "append")?.data.extend_from_slice(data);
        s.stats.writes += 1;
        s.stats.bytes_written += data.len() as u64;
        Ok(())
    }

    async fn sync(&mut self) -> io::Result<()> {
        self.inode(&mut self.disk.lock(), "sync")?;
        let this = &*self;
        this.disk
            .fsync("sync", &this.path, |s| {
                this.inode(s, "sync")?.sync();
                Ok(())
            })
            .await
    }

    fn len(&self) -> u64 {
        let mut s = self.disk.lock();
        self.inode(&mut s, "len").map_or(0, |i| i.data.len() as u64)
    }
}

impl Drop for SimAppendFile {
    fn drop(&mut self) {
        let mut s = self.disk.lock();
        if s.generation != self.generation {
            return; // a power loss already forgot every handle
        }
        let inode = s.inodes.get_mut(&self.ino).expect("an open handle keeps its inode");
        inode.handles -= 1;
        if !inode.linked && inode.handles == 0 {
            s.inodes.remove(&self.ino);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::executor::block_on;
    use proptest::prelude::*;

    use super::*;

    /// A machine's disk and one process's view of it, rooted at `tablet-1/` (created).
    fn machine() -> (SimDisk, Arc<dyn Disk>) {
        let machine = SimDisk::new();
        let view = machine.scoped("tablet-1").unwrap();
        block_on(view.create_dir_all("")).unwrap();
        (machine, Arc::new(view))
    }

    async fn read(disk: &dyn Disk, path: &str) -> Vec<u8> {
        disk.read(path).await.unwrap()
    }

    #[test]
    fn write_append_read_round_trip() {
        let (machine, disk) = machine();
        block_on(async {
            disk.create_dir_all("db/1_0/binlog").await.unwrap();
            disk.write_file("db/1_0/MANIFEST", b"offset=7").await.unwrap();
            assert_eq!(read(&*disk, "db/1_0/MANIFEST").await, b"offset=7");
            assert_eq!(disk.read_at("db/1_0/MANIFEST", 2, 3).await.unwrap(), b"fse");
            assert_eq!(disk.read_at("db/1_0/MANIFEST", 6, 100).await.unwrap(), b"=7");
            assert_eq!(disk.read_at("db/1_0/MANIFEST", 100, 3).await.unwrap(), b"");
            assert_eq!(disk.file_len("db/1_0/MANIFEST").await.unwrap(), 8);

            let mut f = disk.open_append("db/1_0/binlog/1.log").await.unwrap();
            assert!(f.is_empty());
            f.append(b"abc").await.unwrap();
            f.append(b"def").await.unwrap();
            assert_eq!(f.len(), 6);
            assert_eq!(read(&*disk, "db/1_0/binlog/1.log").await, b"abcdef");
            disk.truncate("db/1_0/binlog/1.log", 4).await.unwrap();
            assert_eq!(f.len(), 4);
            f.append(b"!").await.unwrap();
            assert_eq!(read(&*disk, "db/1_0/binlog/1.log").await, b"abcd!");

            assert_eq!(disk.list_dir("").await.unwrap(), vec!["db"]);
            assert_eq!(disk.list_dir("db/1_0").await.unwrap(), vec!["MANIFEST", "binlog"]);
            assert_eq!(machine.list_dir("").await.unwrap(), vec!["tablet-1"]);
            assert!(disk.exists("db/1_0/binlog").await.unwrap());
            assert!(disk.exists("db/1_0/binlog/1.log").await.unwrap());
            assert!(!disk.exists("db/2_0").await.unwrap());
            assert_eq!(read(&machine, "tablet-1/db/1_0/MANIFEST").await, b"offset=7");

            let err = disk.read("db/missing").await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound);
            assert!(err.to_string().contains("tablet-1/db/missing"), "{err}");
            let err = disk.write_file("nodir/x", b"").await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound);
            assert!(err.to_string().contains("nodir/x"), "{err}");
            assert_eq!(disk.read("db").await.unwrap_err().kind(), io::ErrorKind::IsADirectory);
            assert_eq!(disk.list_dir("db/1_0/MANIFEST").await.unwrap_err().kind(), io::ErrorKind::NotADirectory);
            assert!(disk.create_dir_all("db/1_0/MANIFEST/x").await.is_err());
            assert!(disk.read("../tablet-2/x").await.is_err());
            assert!(disk.remove_dir_all("").await.is_err());

            disk.remove_file("db/1_0/MANIFEST").await.unwrap();
            assert!(!disk.exists("db/1_0/MANIFEST").await.unwrap());
            drop(f);
            disk.remove_dir_all("db").await.unwrap();
            assert!(disk.list_dir("").await.unwrap().is_empty());
            assert_eq!(machine.unsynced_bytes(), 0);
        });
    }

    #[test]
    fn process_crash_keeps_unsynced_data() {
        let (machine, disk) = machine();
        block_on(async {
            let mut f = disk.open_append("1.log").await.unwrap();
            f.append(b"synced;").await.unwrap();
            f.sync().await.unwrap();
            f.append(b"unsynced;").await.unwrap();
            disk.write_file("meta", b"never synced").await.unwrap();
            // The process crashes: its handles go away, the machine's page cache stays.
            drop(f);
            drop(disk);
            let disk = machine.scoped("tablet-1").unwrap();
            assert_eq!(read(&disk, "1.log").await, b"synced;unsynced;");
            assert_eq!(read(&disk, "meta").await, b"never synced");
            assert_eq!(disk.open_append("1.log").await.unwrap().len(), 16);
            assert_eq!(machine.unsynced_bytes(), 9 + 12);
            assert_eq!(machine.durable_len("tablet-1/1.log"), Some(7));
            assert_eq!(disk.durable_len("meta"), None);
        });
    }

    #[test]
    fn power_loss_keeps_exactly_the_synced_prefix_of_appends() {
        let (machine, disk) = machine();
        block_on(async {
            let mut f = disk.open_append("1.log").await.unwrap();
            f.append(b"aaa").await.unwrap();
            f.sync().await.unwrap();
            f.append(b"bbb").await.unwrap();
            f.sync().await.unwrap();
            f.append(b"ccc").await.unwrap();
            assert_eq!(machine.unsynced_bytes(), 3);
            machine.power_loss();
            assert_eq!(read(&*disk, "1.log").await, b"aaabbb");
            assert_eq!(machine.unsynced_bytes(), 0);
            // The old handle belonged to a process that died with the machine.
            let err = f.append(b"ddd").await.unwrap_err();
            assert!(err.to_string().contains("stale"), "{err}");
            assert!(f.sync().await.is_err());
            assert_eq!(f.len(), 0);
            drop(f);
            let mut f = disk.open_append("1.log").await.unwrap();
            assert_eq!(f.len(), 6);
            f.append(b"eee").await.unwrap();
            disk.sync_file("1.log").await.unwrap();
            machine.power_loss();
            assert_eq!(read(&*disk, "1.log").await, b"aaabbbeee");
        });
    }

    #[test]
    fn power_loss_reverts_overwritten_files_and_removes_never_synced_ones() {
        let (machine, disk) = machine();
        block_on(async {
            disk.create_dir_all("snapshot").await.unwrap();
            disk.write_file("MANIFEST", b"v1").await.unwrap();
            disk.sync_file("MANIFEST").await.unwrap();
            disk.write_file("MANIFEST", b"version-2").await.unwrap();
            assert_eq!(machine.durable_len("tablet-1/MANIFEST"), Some(2));
            assert_eq!(machine.unsynced_bytes(), 9);
            disk.write_file("snapshot/new", b"never synced").await.unwrap();
            let mut f = disk.open_append("new.log").await.unwrap();
            f.append(b"x").await.unwrap();
            drop(f);

            machine.power_loss();
            assert_eq!(read(&*disk, "MANIFEST").await, b"v1");
            assert!(!disk.exists("snapshot/new").await.unwrap());
            assert!(!disk.exists("new.log").await.unwrap());
            // Directories are metadata: durable at once.
            assert_eq!(disk.list_dir("").await.unwrap(), vec!["MANIFEST", "snapshot"]);
            assert!(disk.list_dir("snapshot").await.unwrap().is_empty());

            // An overwrite that was synced survives; so does a later shrink (metadata).
            disk.write_file("MANIFEST", b"version-3").await.unwrap();
            disk.sync_file("MANIFEST").await.unwrap();
            disk.write_file("MANIFEST", b"v4").await.unwrap();
            disk.truncate("MANIFEST", 7).await.unwrap();
            assert_eq!(read(&*disk, "MANIFEST").await, b"v4\0\0\0\0\0");
            machine.power_loss();
            assert_eq!(read(&*disk, "MANIFEST").await, b"version");
            assert_eq!(machine.stats().power_losses, 2);
        });
    }

    #[test]
    fn rename_moves_files_with_their_durability() {
        let (machine, disk) = machine();
        block_on(async {
            disk.write_file("MANIFEST", b"old").await.unwrap();
            disk.sync_file("MANIFEST").await.unwrap();
            // The atomic replace: write, sync, rename.
            disk.write_file("MANIFEST.tmp", b"new").await.unwrap();
            disk.sync_file("MANIFEST.tmp").await.unwrap();
            disk.rename("MANIFEST.tmp", "MANIFEST").await.unwrap();
            disk.sync_dir("").await.unwrap();
            machine.power_loss();
            assert_eq!(read(&*disk, "MANIFEST").await, b"new");
            assert_eq!(disk.list_dir("").await.unwrap(), vec!["MANIFEST"]);

            // Without the sync, a power loss leaves neither version.
            disk.write_file("MANIFEST.tmp", b"newer").await.unwrap();
            disk.rename("MANIFEST.tmp", "MANIFEST").await.unwrap();
            assert_eq!(read(&*disk, "MANIFEST").await, b"newer");
            machine.power_loss();
            assert!(!disk.exists("MANIFEST").await.unwrap());

            // Directories move with their contents; an open handle follows its file.
            disk.create_dir_all("snap.tmp/sub").await.unwrap();
            disk.write_file("snap.tmp/sub/data", b"rows").await.unwrap();
            let mut f = disk.open_append("snap.tmp/log").await.unwrap();
            disk.rename("snap.tmp", "snap").await.unwrap();
            f.append(b"after rename").await.unwrap();
            assert_eq!(read(&*disk, "snap/sub/data").await, b"rows");
            assert_eq!(read(&*disk, "snap/log").await, b"after rename");
            assert!(!disk.exists("snap.tmp").await.unwrap());
            assert_eq!(disk.list_dir("snap").await.unwrap(), vec!["log", "sub"]);
            assert!(disk.rename("snap", "snap/inner").await.is_err());
            assert_eq!(disk.rename("missing", "x").await.unwrap_err().kind(), io::ErrorKind::NotFound);
            assert_eq!(disk.rename("snap/log", "snap/sub").await.unwrap_err().kind(), io::ErrorKind::IsADirectory);

            // A removed file lives on for its open handle, then goes away.
            disk.remove_file("snap/log").await.unwrap();
            f.append(b"!").await.unwrap();
            assert_eq!(f.len(), 13);
            assert!(!disk.exists("snap/log").await.unwrap());
            drop(f);
            assert_eq!(machine.lock().inodes.len(), 1);
        });
    }

    #[test]
    fn corrupt_tail_flips_bits_and_is_durable_where_synced() {
        let (machine, disk) = machine();
        block_on(async {
            let mut f = disk.open_append("1.log").await.unwrap();
            f.append(&[0x00, 0x01, 0x02, 0x03]).await.unwrap();
            f.sync().await.unwrap();
            f.append(&[0x04, 0x05]).await.unwrap();
            machine.corrupt_tail("tablet-1/1.log", 3).unwrap();
            assert_eq!(read(&*disk, "1.log").await, [0x00, 0x01, 0x02, 0xfc, 0xfb, 0xfa]);
            machine.power_loss();
            assert_eq!(read(&*disk, "1.log").await, [0x00, 0x01, 0x02, 0xfc]);

            // An overwritten file: the synced copy is corrupted at the same offsets.
            disk.write_file("m", &[1, 1, 1, 1]).await.unwrap();
            disk.sync_file("m").await.unwrap();
            disk.write_file("m", &[2, 2, 2, 2, 2, 2]).await.unwrap();
            let view = machine.scoped("tablet-1").unwrap();
            view.corrupt_tail("m", 3).unwrap();
            assert_eq!(read(&*disk, "m").await, [2, 2, 2, !2, !2, !2]);
            machine.power_loss();
            assert_eq!(read(&*disk, "m").await, [1, 1, 1, !1]);
            // Longer than the file: every byte.
            view.corrupt_tail("m", 100).unwrap();
            assert_eq!(read(&*disk, "m").await, [!1, !1, !1, 1]);
            assert_eq!(view.corrupt_tail("none", 1).unwrap_err().kind(), io::ErrorKind::NotFound);
        });
    }

    #[test]
    fn tear_tail_drops_the_end_of_the_file() {
        let (machine, disk) = machine();
        let view = machine.scoped("tablet-1").unwrap();
        block_on(async {
            let mut f = disk.open_append("1.log").await.unwrap();
            f.append(b"abcdef").await.unwrap();
            f.sync().await.unwrap();
            f.append(b"gh").await.unwrap();
            view.tear_tail("1.log", 4).unwrap();
            assert_eq!(read(&*disk, "1.log").await, b"abcd");
            assert_eq!(view.durable_len("1.log"), Some(4));
            machine.power_loss();
            assert_eq!(read(&*disk, "1.log").await, b"abcd");
            view.tear_tail("1.log", 10).unwrap();
            assert_eq!(read(&*disk, "1.log").await, b"");
        });
    }

    #[test]
    fn write_error_fault_fails_writes_and_changes_nothing() {
        let (machine, disk) = machine();
        block_on(async {
            disk.write_file("a", b"content").await.unwrap();
            let mut f = disk.open_append("1.log").await.unwrap();
            f.append(b"rec").await.unwrap();
            let before = machine.stats();

            machine.set_write_error(true);
            let errors = [
                disk.write_file("a", b"other").await.unwrap_err(),
                disk.write_file("b", b"new").await.unwrap_err(),
                f.append(b"more").await.unwrap_err(),
                disk.open_append("2.log").await.err().expect("creating a file is a write"),
                disk.rename("a", "c").await.unwrap_err(),
                disk.truncate("a", 1).await.unwrap_err(),
            ];
            for err in &errors {
                assert_eq!(err.kind(), io::ErrorKind::Other);
                assert!(err.to_string().contains("injected fault: write_error"), "{err}");
                assert!(err.to_string().contains("sim:/tablet-1/"), "{err}");
            }
            assert_eq!(read(&*disk, "a").await, b"content");
            assert_eq!(read(&*disk, "1.log").await, b"rec");
            assert_eq!(disk.list_dir("").await.unwrap(), vec!["1.log", "a"]);
            // Reads and opening an existing file still work; an fsync fails (its writeback is a write).
            let err = f.sync().await.unwrap_err();
            assert!(err.to_string().contains("injected fault: write_error"), "{err}");
            assert!(disk.open_append("1.log").await.is_ok());
            let stats = machine.stats();
            assert_eq!((stats.writes, stats.injected_errors), (before.writes, 7));

            machine.clear_faults();
            f.append(b"more").await.unwrap();
            assert_eq!(read(&*disk, "1.log").await, b"recmore");
            assert_eq!(machine.stats().writes, before.writes + 1);
        });
    }

    #[test]
    fn stats_count_writes_and_syncs() {
        let (machine, disk) = machine();
        block_on(async {
            disk.write_file("a", b"12345").await.unwrap();
            let mut f = disk.open_append("b").await.unwrap();
            f.append(b"123").await.unwrap();
            f.sync().await.unwrap();
            disk.sync_file("a").await.unwrap();
            disk.sync_dir("").await.unwrap();
            assert!(disk.sync_dir("a").await.is_err());
            assert!(disk.sync_file("missing").await.is_err());
        });
        let stats = machine.stats();
        assert_eq!(stats, SimDiskStats { writes: 2, bytes_written: 8, syncs: 3, power_losses: 0, injected_errors: 0 });
    }

    /// Runs with madsim's simulated clock in the sim build and with real tokio (real 50 ms waits) otherwise.
    #[tokio::test]
    async fn slow_fsync_waits_and_a_power_loss_meanwhile_loses_the_sync() {
        let (machine, disk) = machine();
        let delay = Duration::from_millis(50);
        machine.set_slow_fsync(delay);
        disk.write_file("a", b"data").await.unwrap();
        let start = tokio::time::Instant::now();
        disk.sync_file("a").await.unwrap();
        disk.sync_dir("").await.unwrap();
        assert!(start.elapsed() >= delay * 2, "{:?}", start.elapsed());
        assert_eq!(machine.durable_len("tablet-1/a"), Some(4));

        let mut f = disk.open_append("1.log").await.unwrap();
        f.append(b"lost").await.unwrap();
        let syncing = tokio::spawn(async move {
            let res = f.sync().await;
            (res, f)
        });
        tokio::time::sleep(delay / 2).await;
        machine.power_loss();
        let (res, _f) = syncing.await.unwrap();
        assert!(res.unwrap_err().to_string().contains("lost power"));
        assert!(!disk.exists("1.log").await.unwrap());
        assert_eq!(read(&*disk, "a").await, b"data");

        machine.clear_faults();
        let start = tokio::time::Instant::now();
        disk.sync_file("a").await.unwrap();
        assert!(start.elapsed() < delay);
    }

    /// One step of the property test, applied both to a `SimDisk` file and to the reference model.
    #[derive(Debug, Clone)]
    enum Op {
        Append(Vec<u8>),
        Sync,
        SyncByPath,
        PowerLoss,
        /// The process dies: its handle is dropped, nothing else happens.
        ProcessCrash,
        Overwrite(Vec<u8>),
        /// Shrink to this fraction (per 256) of the current length.
        Shrink(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..8);
        prop_oneof![
            4 => bytes().prop_map(Op::Append),
            2 => Just(Op::Sync),
            1 => Just(Op::SyncByPath),
            2 => Just(Op::PowerLoss),
            1 => Just(Op::ProcessCrash),
            1 => bytes().prop_map(Op::Overwrite),
            1 => any::<u8>().prop_map(Op::Shrink),
        ]
    }

    /// The reference: what a reader sees, and what was last synced (`None`: the file would vanish).
    #[derive(Debug, Default)]
    struct Model {
        current: Option<Vec<u8>>,
        durable: Option<Vec<u8>>,
    }

    proptest! {
        #[test]
        fn sim_disk_matches_the_reference_model(ops in proptest::collection::vec(op(), 1..60)) {
            block_on(async {
                let machine = SimDisk::new();
                let disk = machine.scoped("p").unwrap();
                disk.create_dir_all("").await.unwrap();
                let mut model = Model::default();
                let mut handle: Option<Box<dyn AppendFile>> = None;
                for op in ops {
                    match op {
                        Op::Append(bytes) => {
                            if handle.is_none() {
                                handle = Some(disk.open_append("f").await.unwrap());
                                model.current.get_or_insert_with(Vec::new);
                            }
                            handle.as_mut().unwrap().append(&bytes).await.unwrap();
                            model.current.as_mut().unwrap().extend_from_slice(&bytes);
                        }
                        Op::Sync => {
                            if let Some(h) = handle.as_mut() {
                                h.sync().await.unwrap();
                                model.durable = model.current.clone();
                            }
                        }
                        Op::SyncByPath => {
                            if model.current.is_some() {
                                disk.sync_file("f").await.unwrap();
                                model.durable = model.current.clone();
                            }
                        }
                        Op::PowerLoss => {
                            machine.power_loss();
                            handle = None;
                            model.current = model.durable.clone();
                        }
                        Op::ProcessCrash => handle = None,
                        Op::Overwrite(bytes) => {
                            disk.write_file("f", &bytes).await.unwrap();
                            model.current = Some(bytes);
                        }
                        Op::Shrink(fraction) => {
                            if let Some(current) = model.current.as_mut() {
                                let len = current.len() * fraction as usize / 256;
                                disk.truncate("f", len as u64).await.unwrap();
                                current.truncate(len);
                                if let Some(durable) = model.durable.as_mut() {
                                    durable.truncate(len);
                                }
                            }
                        }
                    }
                    match &model.current {
                        Some(current) => prop_assert_eq!(&disk.read("f").await.unwrap(), current),
                        None => prop_assert!(!disk.exists("f").await.unwrap()),
                    }
                    if let Some(h) = &handle {
                        prop_assert_eq!(h.len(), model.current.as_ref().map_or(0, Vec::len) as u64);
                    }
                    prop_assert_eq!(disk.durable_len("f"), model.durable.as_ref().map(|d| d.len() as u64));
                    let unsynced = match (&model.current, &model.durable) {
                        (Some(c), Some(d)) if c.starts_with(d) => c.len() - d.len(),
                        (Some(c), _) => c.len(),
                        (None, _) => 0,
                    };
                    // The disk may count an overwritten file whole even if it happens to extend its copy.
                    prop_assert!(machine.unsynced_bytes() >= unsynced as u64);
                    prop_assert!(machine.unsynced_bytes() <= model.current.as_ref().map_or(0, Vec::len) as u64);
                }
                Ok(())
            })?;
        }
    }
}
