//! [`RealDisk`]: the production disk, `std::fs` under a root directory.
//!
//! The async methods call blocking `std::fs` directly. That is deliberate: the writes are small (binlog records,
//! manifests, snapshot chunks), so a call blocks the worker for microseconds (an fsync for a few milliseconds),
//! and `spawn_blocking` is no option, since the simulator runs it inline anyway and this code must compile
//! in both builds. `tokio::fs` would be worse: it panics inside the simulator. A server that needs bulk IO
//! off the runtime can batch it itself.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{AppendFile, Disk, normalize, with_path};

/// A [`Disk`] over the real filesystem, with every path resolved under `root`.
#[derive(Debug, Clone)]
pub struct RealDisk {
    root: PathBuf,
}

impl RealDisk {
    /// A disk rooted at `root`. The directory need not exist yet: `create_dir_all("")` creates it.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory every path is relative to.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn resolve(&self, path: &str) -> io::Result<PathBuf> {
        let rel = normalize(path)?;
        Ok(if rel.is_empty() { self.root.clone() } else { self.root.join(rel) })
    }
}

/// An open file in append mode; `len` is tracked from the file's metadata at open plus what was appended.
struct RealAppendFile {
    file: File,
    path: PathBuf,
    len: u64,
}

#[async_trait::async_trait]
impl AppendFile for RealAppendFile {
    async fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let res = self.file.write_all(data);
        // A failed write may still have written part of `data`: ask the file how long it really is.
        self.len = match res {
            Ok(()) => self.len + data.len() as u64,
            Err(_) => self.file.metadata().map(|m| m.len()).unwrap_or(self.len),
        };
        res.map_err(with_path("append to", &self.path.display()))
    }

    async fn sync(&mut self) -> io::Result<()> {
        // fdatasync: the data and the file size, which is all an append changes.
        self.file.sync_data().map_err(with_path("sync", &self.path.display()))
    }

    fn len(&self) -> u64 {
        self.len
    }
}

#[async_trait::async_trait]
impl Disk for RealDisk {
    async fn create_dir_all(&self, path: &str) -> io::Result<()> {
        let p = self.resolve(path)?;
        fs::create_dir_all(&p).map_err(with_path("create_dir_all", &p.display()))
    }

    async fn list_dir(&self, path: &str) -> io::Result<Vec<String>> {
        let p = self.resolve(path)?;
        let ctx = || with_path("list_dir", &p.display());
        let mut names = Vec::new();
        for entry in fs::read_dir(&p).map_err(ctx())? {
            let name = entry.map_err(ctx())?.file_name();
            let name = name.into_string().map_err(|name| {
                ctx()(io::Error::new(io::ErrorKind::InvalidData, format!("entry name {name:?} is not UTF-8")))
            })?;
            names.push(name);
        }
        names.sort();
        Ok(names)
    }

    async fn exists(&self, path: &str) -> io::Result<bool> {
        let p = self.resolve(path)?;
        p.try_exists().map_err(with_path("exists", &p.display()))
    }

    async fn file_len(&self, path: &str) -> io::Result<u64> {
        let p = self.resolve(path)?;
        let meta = fs::metadata(&p).map_err(with_path("file_len", &p.display()))?;
        if meta.is_dir() {
            return Err(with_path("file_len", &p.display())(io::Error::new(
                io::ErrorKind::IsADirectory,
                "is a directory",
            )));
        }
        Ok(meta.len())
    }

    async fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        let p = self.resolve(path)?;
        fs::read(&p).map_err(with_path("read", &p.display()))
    }

    async fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let p = self.resolve(path)?;
        let ctx = || with_path("read_at", &p.display());
        let mut file = File::open(&p).map_err(ctx())?;
        file.seek(SeekFrom::Start(offset)).map_err(ctx())?;
        let mut buf = Vec::with_capacity(len.min(1 << 20));
        file.take(len as u64).read_to_end(&mut buf).map_err(ctx())?;
        Ok(buf)
    }

    async fn write_file(&self, path: &str, data: &[u8]) -> io::Result<()> {
        let p = self.resolve(path)?;
        fs::write(&p, data).map_err(with_path("write_file", &p.display()))
    }

    async fn open_append(&self, path: &str) -> io::Result<Box<dyn AppendFile>> {
        let p = self.resolve(path)?;
        let ctx = || with_path("open_append", &p.display());
        let file = OpenOptions::new().create(true).append(true).open(&p).map_err(ctx())?;
        let len = file.metadata().map_err(ctx())?.len();
        Ok(Box::new(RealAppendFile { file, path: p, len }))
    }

    async fn sync_file(&self, path: &str) -> io::Result<()> {
        let p = self.resolve(path)?;
        let ctx = || with_path("sync_file", &p.display());
        // fsync works on a read-only descriptor on Linux; all metadata too, since the file may be new.
        File::open(&p).map_err(ctx())?.sync_all().map_err(ctx())
    }

    async fn sync_dir(&self, path: &str) -> io::Result<()> {
        let p = self.resolve(path)?;
        let ctx = || with_path("sync_dir", &p.display());
        // Linux: fsync on a directory descriptor persists its entries (creates, renames, removes).
        File::open(&p).map_err(ctx())?.sync_all().map_err(ctx())
    }

    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        if normalize(from)?.is_empty() || normalize(to)?.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("rename {from:?} -> {to:?} under {}: refusing to move the disk's root", self.root.display()),
            ));
        }
        let (f, t) = (self.resolve(from)?, self.resolve(to)?);
        fs::rename(&f, &t).map_err(with_path("rename", &format_args!("{} -> {}", f.display(), t.display())))
    }

    async fn remove_file(&self, path: &str) -> io::Result<()> {
        let p = self.resolve(path)?;
        fs::remove_file(&p).map_err(with_path("remove_file", &p.display()))
    }

    async fn remove_dir_all(&self, path: &str) -> io::Result<()> {
        if normalize(path)?.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("remove_dir_all {}: refusing to remove the disk's root", self.root.display()),
            ));
        }
        let p = self.resolve(path)?;
        fs::remove_dir_all(&p).map_err(with_path("remove_dir_all", &p.display()))
    }

    async fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        let p = self.resolve(path)?;
        let ctx = || with_path("truncate", &p.display());
        OpenOptions::new().write(true).open(&p).map_err(ctx())?.set_len(len).map_err(ctx())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::executor::block_on;

    use super::*;

    /// A fresh directory under the system temp dir, removed on drop (also when the test fails).
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            // Unique per process and test; the cfg suffix keeps the normal and sim builds apart.
            let tag = if cfg!(madsim) { "sim" } else { "std" };
            let dir = std::env::temp_dir().join(format!("openmldb-disk-{name}-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn real_round_trip() {
        let tmp = TempDir::new("round-trip");
        let disk: Arc<dyn Disk> = Arc::new(RealDisk::new(&tmp.0));
        block_on(async {
            disk.create_dir_all("").await.unwrap();
            disk.create_dir_all("db/1_0/binlog").await.unwrap();
            disk.write_file("db/1_0/MANIFEST", b"offset=7").await.unwrap();
            assert_eq!(disk.read("db/1_0/MANIFEST").await.unwrap(), b"offset=7");
            assert_eq!(disk.read_at("db/1_0/MANIFEST", 7, 10).await.unwrap(), b"7");
            assert_eq!(disk.read_at("db/1_0/MANIFEST", 70, 10).await.unwrap(), b"");
            assert_eq!(disk.file_len("db/1_0/MANIFEST").await.unwrap(), 8);
            assert!(disk.file_len("db/1_0").await.is_err());
            assert_eq!(disk.list_dir("db/1_0").await.unwrap(), vec!["MANIFEST", "binlog"]);

            let mut f = disk.open_append("db/1_0/binlog/00000001.log").await.unwrap();
            f.append(b"abc").await.unwrap();
            f.append(b"def").await.unwrap();
            assert_eq!(f.len(), 6);
            assert_eq!(disk.read("db/1_0/binlog/00000001.log").await.unwrap(), b"abcdef");
            disk.truncate("db/1_0/binlog/00000001.log", 4).await.unwrap();
            assert_eq!(disk.read("db/1_0/binlog/00000001.log").await.unwrap(), b"abcd");

            disk.write_file("db/1_0/MANIFEST.tmp", b"offset=9").await.unwrap();
            disk.sync_file("db/1_0/MANIFEST.tmp").await.unwrap();
            disk.rename("db/1_0/MANIFEST.tmp", "db/1_0/MANIFEST").await.unwrap();
            disk.sync_dir("db/1_0").await.unwrap();
            assert_eq!(disk.read("db/1_0/MANIFEST").await.unwrap(), b"offset=9");
            assert!(!disk.exists("db/1_0/MANIFEST.tmp").await.unwrap());

            let err = disk.read("db/missing").await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound);
            assert!(err.to_string().contains("db/missing"), "{err}");
            assert!(disk.read("../escape").await.is_err());
            assert!(disk.remove_dir_all("").await.is_err());

            disk.remove_file("db/1_0/MANIFEST").await.unwrap();
            disk.remove_dir_all("db").await.unwrap();
            assert!(!disk.exists("db").await.unwrap());
            assert!(disk.list_dir("").await.unwrap().is_empty());
        });
    }

    #[test]
    fn real_append_sync_reopen() {
        let tmp = TempDir::new("append-reopen");
        let disk = RealDisk::new(&tmp.0);
        block_on(async {
            disk.create_dir_all("binlog").await.unwrap();
            {
                let mut f = disk.open_append("binlog/1.log").await.unwrap();
                assert!(f.is_empty());
                f.append(b"record-1;").await.unwrap();
                f.sync().await.unwrap();
            }
            let mut f = disk.open_append("binlog/1.log").await.unwrap();
            assert_eq!(f.len(), 9);
            f.append(b"record-2;").await.unwrap();
            f.sync().await.unwrap();
            assert_eq!(f.len(), 18);
            drop(f);
            assert_eq!(disk.read("binlog/1.log").await.unwrap(), b"record-1;record-2;");
            assert_eq!(disk.list_dir("binlog").await.unwrap(), vec!["1.log"]);
        });
    }
}
