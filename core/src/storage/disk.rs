//! The disk every binlog, snapshot and manifest write goes through.
//!
//! Servers hold an `Arc<dyn Disk>` rooted at their own data directory (e.g. `tablet-1/` on their machine's disk)
//! and address files by relative `/`-separated paths. Two implementations:
//!
//! - [`RealDisk`]: `std::fs` under a root directory, for production.
//! - [`SimDisk`]: an in-memory disk shared by every process of one simulated machine. It models the OS page
//!   cache: a process crash keeps everything written, [`SimDisk::power_loss`] keeps only what was fsynced.
//!   It also injects disk faults (slow fsync, failing writes, corrupted or torn tails).
//!
//! Nothing is durable until synced: [`Disk::write_file`] and [`AppendFile::append`] only fill the page cache,
//! [`AppendFile::sync`] / [`Disk::sync_file`] make a file's contents survive a power loss. The usual atomic
//! replace is `write_file(tmp)`, `sync_file(tmp)`, `rename(tmp, name)`, `sync_dir(dir)`.
//!
//! Paths are relative: empty components and `.` are ignored, `..` and a leading `/` are refused, so a process
//! cannot leave its root. The empty path is the root itself. Parent directories must exist before a file is
//! created in them, as on a real filesystem. Every error names the operation and the path.

use std::io;

mod real;
mod sim;

pub use real::RealDisk;
pub use sim::{SimDisk, SimDiskStats};

/// File and directory operations, relative to the disk's root.
///
/// Dyn-compatible through `async_trait`, so callers keep `Arc<dyn Disk>` and never know which disk they have.
#[async_trait::async_trait]
pub trait Disk: Send + Sync + 'static {
    /// Creates `path` and any missing parents; an existing directory is fine.
    async fn create_dir_all(&self, path: &str) -> io::Result<()>;

    /// Names (not paths) of the files and directories directly inside `path`, sorted.
    async fn list_dir(&self, path: &str) -> io::Result<Vec<String>>;

    /// Whether a file or directory exists at `path`.
    async fn exists(&self, path: &str) -> io::Result<bool>;

    /// Length in bytes of the file at `path`, as a reader sees it now (synced or not).
    async fn file_len(&self, path: &str) -> io::Result<u64>;

    /// The whole file.
    async fn read(&self, path: &str) -> io::Result<Vec<u8>>;

    /// Up to `len` bytes from `offset`; shorter (possibly empty) at the end of the file.
    async fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>>;

    /// Creates or truncates `path` and writes `data`. Not synced: call [`Disk::sync_file`] for durability.
    async fn write_file(&self, path: &str, data: &[u8]) -> io::Result<()>;

    /// Opens `path` for appending, creating an empty file if it does not exist.
    async fn open_append(&self, path: &str) -> io::Result<Box<dyn AppendFile>>;

    /// Makes the current contents of the file at `path` durable (fsync).
    async fn sync_file(&self, path: &str) -> io::Result<()>;

    /// Makes the entries of directory `path` durable (fsync of the directory), after a create or rename in it.
    async fn sync_dir(&self, path: &str) -> io::Result<()>;

    /// Atomically renames `from` to `to`, replacing a file at `to`.
    async fn rename(&self, from: &str, to: &str) -> io::Result<()>;

    /// Removes the file at `path`.
    async fn remove_file(&self, path: &str) -> io::Result<()>;

    /// Removes the directory at `path` and everything in it. The root itself cannot be removed.
    async fn remove_dir_all(&self, path: &str) -> io::Result<()>;

    /// Sets the length of the file at `path`; recovery uses it to cut a torn binlog tail.
    async fn truncate(&self, path: &str, len: u64) -> io::Result<()>;
}

/// A file opened for appending, as a binlog segment writer holds it.
#[async_trait::async_trait]
pub trait AppendFile: Send {
    /// Appends `data` at the end of the file. Not durable until [`AppendFile::sync`].
    async fn append(&mut self, data: &[u8]) -> io::Result<()>;

    /// Makes everything appended so far durable.
    async fn sync(&mut self) -> io::Result<()>;

    /// Current length of the file in bytes, synced or not.
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Normalises a relative path to `a/b/c` (the root is `""`), refusing anything that could escape the root.
fn normalize(path: &str) -> io::Result<String> {
    if path.starts_with('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("path {path:?} is absolute; disk paths are relative to the disk's root"),
        ));
    }
    let mut out = String::with_capacity(path.len());
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("path {path:?} contains `..`; disk paths must stay under the disk's root"),
                ));
            }
            _ => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(part);
            }
        }
    }
    Ok(out)
}

/// Wraps an error so its message names the operation and the path, keeping its kind.
fn with_path(op: &str, path: &dyn std::fmt::Display) -> impl FnOnce(io::Error) -> io::Error + use<> {
    let what = format!("{op} {path}");
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn normalize_paths() {
        assert_eq!(normalize("").unwrap(), "");
        assert_eq!(normalize(".").unwrap(), "");
        assert_eq!(normalize("a//b/./c/").unwrap(), "a/b/c");
        assert!(normalize("/etc/passwd").is_err());
        assert!(normalize("a/../../b").is_err());
    }
}
