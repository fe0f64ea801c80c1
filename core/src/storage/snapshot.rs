//! Snapshots: a partition's rows merged up to a binlog offset, so recovery replays only the binlog after it.
//!
//! A snapshot directory (e.g. `1_0/snapshot`) holds:
//! - `MANIFEST`: one [`record`]-framed [`Manifest`] `{offset, name, count, term}`. The frame's CRC catches a
//!   torn or corrupt manifest; OpenMLDB's text proto would not.
//! - the image named by the manifest, `<offset as 20 digits>.sdb`: one framed [`LogEntry`] PUT per live row,
//!   each with the dimensions that still hold it (see [`MemTable::rows`]).
//!
//! Publishing is two atomic replaces: the image is written under a temp name, synced and renamed; then the
//! manifest the same way, then the directory is synced. Only then is the previous image removed. A crash at any
//! point leaves the old manifest with its old image, or the new manifest with its new image; at worst an unused
//! image or temp file is left over, which the next [`make`] or [`install`] removes. Since a manifest only ever
//! names a synced image, any damage in an image is corruption and fails the load, never a tail to cut.
//!
//! The functions take the disk as anything that dereferences to `dyn Disk`: a server's `Arc<dyn Disk>` (by
//! value or `&*`) or a plain `&dyn Disk`.

use std::io;
use std::ops::Deref;
use std::sync::Arc;

use prost::Message;

use crate::proto::tablet::{LogEntry, Manifest, MethodType};
use crate::storage::Disk;
use crate::storage::memtable::{MemTable, RowError, TableSchema};
use crate::storage::record::{self, Decoded};

/// Name of the manifest file in a snapshot directory.
pub const MANIFEST: &str = "MANIFEST";

/// Suffix of files being written, before their rename into place.
const TMP_SUFFIX: &str = ".tmp";

/// Suffix of snapshot images.
const IMAGE_SUFFIX: &str = ".sdb";

/// Image bytes read or buffered per disk call.
const CHUNK: usize = 1 << 20;

/// The image file of a snapshot ending at `offset`: 20 digits, so names sort by offset.
pub fn image_name(offset: u64) -> String {
    format!("{offset:020}{IMAGE_SUFFIX}")
}

/// Why a snapshot could not be read, made or installed. Every variant names the file or offsets involved.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A disk operation failed; the disk's message names the operation and path.
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("corrupt snapshot manifest {path}: {reason}")]
    CorruptManifest { path: String, reason: String },
    #[error("snapshot manifest {manifest} names image {image}, which does not exist")]
    MissingImage { manifest: String, image: String },
    #[error("corrupt snapshot image {path} at byte {offset}: {reason}")]
    CorruptImage { path: String, offset: u64, reason: String },
    #[error("snapshot image {path} holds {found} rows, its manifest says {expected}")]
    CountMismatch { path: String, expected: u64, found: u64 },
    #[error("snapshot end offset {end_offset} is not after the current snapshot's offset {snapshot_offset}")]
    EndOffsetNotAfter { end_offset: u64, snapshot_offset: u64 },
    #[error("binlog entry {log_index} is beyond the snapshot's end offset {end_offset}")]
    EntryBeyondEnd { log_index: u64, end_offset: u64 },
    #[error("binlog entry {log_index} cannot be applied: {source}")]
    BadEntry {
        log_index: u64,
        #[source]
        source: RowError,
    },
    #[error("received snapshot files are unusable: {0}")]
    BadFiles(String),
}

/// `dir/name`, with the root directory spelt `""`.
fn join(dir: &str, name: &str) -> String {
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") }
}

/// Why `name` cannot be an image name, if it cannot: a manifest must not point outside its directory.
fn check_image_name(name: &str) -> Result<(), String> {
    let plain = !name.is_empty() && !name.contains('/') && name != "." && name != "..";
    if plain && name.ends_with(IMAGE_SUFFIX) && name.len() > IMAGE_SUFFIX.len() {
        Ok(())
    } else {
        Err(format!("image name {name:?} is not a plain `*{IMAGE_SUFFIX}` file name"))
    }
}

/// Decodes manifest bytes: exactly one intact record holding a manifest with a sane image name.
fn decode_manifest(path: &str, bytes: &[u8]) -> Result<Manifest, SnapshotError> {
    let corrupt = |reason: String| SnapshotError::CorruptManifest { path: path.to_string(), reason };
    let payload = match record::decode(bytes) {
        Decoded::Record { payload, len } if len == bytes.len() => payload,
        Decoded::Record { len, .. } => return Err(corrupt(format!("{} bytes after the record", bytes.len() - len))),
        Decoded::End => return Err(corrupt("empty file".into())),
        Decoded::Torn { available } => return Err(corrupt(format!("torn record ({available} bytes)"))),
        Decoded::Corrupt { reason } => return Err(corrupt(reason)),
    };
    let manifest = Manifest::decode(payload).map_err(|e| corrupt(format!("does not decode: {e}")))?;
    check_image_name(&manifest.name).map_err(corrupt)?;
    Ok(manifest)
}

/// The manifest and its raw bytes, or `None` if there is none.
async fn read_manifest_raw(disk: &dyn Disk, dir: &str) -> Result<Option<(Manifest, Vec<u8>)>, SnapshotError> {
    let path = join(dir, MANIFEST);
    let bytes = match disk.read(&path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(Some((decode_manifest(&path, &bytes)?, bytes)))
}

/// The snapshot's manifest; `None` if the directory has no snapshot. A damaged manifest is an error naming it.
pub async fn read_manifest(disk: impl Deref<Target = dyn Disk>, dir: &str) -> Result<Option<Manifest>, SnapshotError> {
    Ok(read_manifest_raw(&*disk, dir).await?.map(|(m, _)| m))
}

/// Reads the image named by `manifest` record by record, handing each entry and its byte offset to `f`.
/// Returns the number of records; any torn or corrupt record is an error naming the file and offset.
async fn read_image(
    disk: &dyn Disk,
    dir: &str,
    manifest: &Manifest,
    mut f: impl FnMut(LogEntry, u64) -> Result<(), String>,
) -> Result<u64, SnapshotError> {
    let path = join(dir, &manifest.name);
    let file_len = match disk.file_len(&path).await {
        Ok(len) => len,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(SnapshotError::MissingImage { manifest: join(dir, MANIFEST), image: path });
        }
        Err(e) => return Err(e.into()),
    };
    let corrupt = |offset: u64, reason: String| SnapshotError::CorruptImage { path: path.clone(), offset, reason };
    // `buf[start..]` holds the file's bytes from `base + start` on; `read` bytes of the file were read so far.
    let (mut buf, mut base, mut start, mut read) = (Vec::new(), 0u64, 0usize, 0u64);
    let mut count = 0;
    loop {
        let at = base + start as u64;
        match record::decode(&buf[start..]) {
            Decoded::Record { payload, len } => {
                let entry =
                    LogEntry::decode(payload).map_err(|e| corrupt(at, format!("entry does not decode: {e}")))?;
                if entry.method_type != MethodType::Put as i32 {
                    return Err(corrupt(at, format!("entry has method type {}, not PUT", entry.method_type)));
                }
                f(entry, at).map_err(|reason| corrupt(at, reason))?;
                count += 1;
                start += len;
            }
            Decoded::End | Decoded::Torn { .. } if read < file_len => {
                buf.drain(..start);
                base += start as u64;
                start = 0;
                let chunk = disk.read_at(&path, read, CHUNK).await?;
                if chunk.is_empty() {
                    // The file shrank under us; what we have is all there is.
                    return Err(corrupt(at, format!("file ended at byte {read}, expected {file_len} bytes")));
                }
                read += chunk.len() as u64;
                buf.extend_from_slice(&chunk);
            }
            Decoded::End => return Ok(count),
            Decoded::Torn { available } => {
                return Err(corrupt(at, format!("torn record: only {available} bytes left in the file")));
            }
            Decoded::Corrupt { reason } => return Err(corrupt(at, reason)),
        }
    }
}

/// Loads the snapshot in `dir` into `table` (normally empty) and returns its manifest, or `None` if there is
/// no snapshot. Every record must be intact and apply, and their number must match the manifest.
pub async fn load(
    disk: impl Deref<Target = dyn Disk>,
    dir: &str,
    table: &mut MemTable,
) -> Result<Option<Manifest>, SnapshotError> {
    let disk = &*disk;
    let Some(manifest) = read_manifest(disk, dir).await? else { return Ok(None) };
    let found = read_image(disk, dir, &manifest, |entry, _| table.apply(&entry).map_err(|e| e.to_string())).await?;
    if found != manifest.count {
        let path = join(dir, &manifest.name);
        return Err(SnapshotError::CountMismatch { path, expected: manifest.count, found });
    }
    Ok(Some(manifest))
}

/// Makes a new snapshot at `end_offset`: the previous snapshot's rows, plus `entries` (the binlog after the
/// previous snapshot up to `end_offset`; entries at or below the previous offset are skipped, one beyond
/// `end_offset` is an error), minus rows expired at `now_ms`. Publishes image then manifest, each synced and
/// renamed into place, then removes the previous image. Fails if `end_offset` is not after the previous
/// snapshot's offset (0 without one), as OpenMLDB's MakeSnapshot does.
pub async fn make<I>(
    disk: impl Deref<Target = dyn Disk>,
    dir: &str,
    schema: &Arc<TableSchema>,
    entries: I,
    end_offset: u64,
    term: u64,
    now_ms: u64,
) -> Result<Manifest, SnapshotError>
where
    I: IntoIterator<Item = LogEntry>,
{
    make_with_hook(&*disk, dir, schema, entries, end_offset, term, now_ms, &mut |_| false).await
}

/// Called after each durable step of [`make`] with the step's name; returning true stops there, as a crash
/// would. Tests use it to cut power between any two steps.
type StepHook<'a> = &'a mut (dyn FnMut(&'static str) -> bool + Send);

#[allow(clippy::too_many_arguments)]
async fn make_with_hook<I>(
    disk: &dyn Disk,
    dir: &str,
    schema: &Arc<TableSchema>,
    entries: I,
    end_offset: u64,
    term: u64,
    now_ms: u64,
    hook: StepHook<'_>,
) -> Result<Manifest, SnapshotError>
where
    I: IntoIterator<Item = LogEntry>,
{
    let mut step = |name: &'static str| -> Result<(), SnapshotError> {
        if hook(name) { Err(io::Error::other(format!("stopped after step {name}")).into()) } else { Ok(()) }
    };
    let prev_offset = previous_offset_before(disk, dir, end_offset).await?;
    let mut scratch = MemTable::new(schema.clone());
    load(disk, dir, &mut scratch).await?;
    let mut last = prev_offset;
    for entry in entries {
        let log_index = entry.log_index;
        if log_index <= prev_offset {
            continue;
        }
        if log_index > end_offset {
            return Err(SnapshotError::EntryBeyondEnd { log_index, end_offset });
        }
        if log_index != last + 1 {
            tracing::warn!(dir, log_index, last, "snapshot: binlog entries are not consecutive");
        }
        last = log_index;
        scratch.apply(&entry).map_err(|source| SnapshotError::BadEntry { log_index, source })?;
    }
    scratch.gc(now_ms);
    publish(disk, dir, scratch.rows(), end_offset, term, &mut step).await
}

/// Makes a new snapshot at `end_offset` from `rows`, the rows of a partition's table in memory as of that offset
/// (as [`MemTable::rows`] gives them), without reading the binlog or the previous snapshot: for a leader whose
/// binlog cannot be read back (a damaged record), whose memory still holds every row it applied. Published as
/// [`make`] publishes. Fails if `end_offset` is not after the previous snapshot's offset.
pub async fn make_from_rows<I>(
    disk: impl Deref<Target = dyn Disk>,
    dir: &str,
    rows: I,
    end_offset: u64,
    term: u64,
) -> Result<Manifest, SnapshotError>
where
    I: IntoIterator<Item = LogEntry>,
{
    let disk = &*disk;
    previous_offset_before(disk, dir, end_offset).await?;
    publish(disk, dir, rows, end_offset, term, &mut |_| Ok(())).await
}

/// The offset of the snapshot in `dir` (0 without one), which a new one at `end_offset` must come after.
async fn previous_offset_before(disk: &dyn Disk, dir: &str, end_offset: u64) -> Result<u64, SnapshotError> {
    let prev_offset = read_manifest(disk, dir).await?.map_or(0, |m| m.offset);
    if end_offset <= prev_offset {
        return Err(SnapshotError::EndOffsetNotAfter { end_offset, snapshot_offset: prev_offset });
    }
    Ok(prev_offset)
}

/// The files of a snapshot at `end_offset` holding `rows`, in the form [`files`] gives and [`install`] takes
/// (image, then MANIFEST), built in memory: what a leader sends a follower it rebuilds without a disk snapshot.
pub fn image_files<I>(rows: I, end_offset: u64, term: u64) -> Vec<(String, Vec<u8>)>
where
    I: IntoIterator<Item = LogEntry>,
{
    let mut image = Vec::new();
    let mut count = 0u64;
    for entry in rows {
        image.extend_from_slice(&record::encode(&entry.encode_to_vec()));
        count += 1;
    }
    let manifest = Manifest { offset: end_offset, name: image_name(end_offset), count, term };
    vec![(manifest.name.clone(), image), (MANIFEST.to_string(), record::encode(&manifest.encode_to_vec()))]
}

/// Writes `rows` as the image of a snapshot at `end_offset` and publishes it (image, then manifest, each synced
/// and renamed into place), then removes the previous image.
async fn publish<I>(
    disk: &dyn Disk,
    dir: &str,
    rows: I,
    end_offset: u64,
    term: u64,
    step: &mut (dyn FnMut(&'static str) -> Result<(), SnapshotError> + Send),
) -> Result<Manifest, SnapshotError>
where
    I: IntoIterator<Item = LogEntry>,
{
    disk.create_dir_all(dir).await?;
    let name = image_name(end_offset);
    let path = join(dir, &name);
    let tmp = format!("{path}{TMP_SUFFIX}");
    // Truncate a temp file a crashed attempt left, then stream the rows out in chunks.
    disk.write_file(&tmp, &[]).await?;
    let mut file = disk.open_append(&tmp).await?;
    let mut buf = Vec::with_capacity(CHUNK);
    let mut count = 0u64;
    for entry in rows {
        buf.extend_from_slice(&record::encode(&entry.encode_to_vec()));
        count += 1;
        if buf.len() >= CHUNK {
            file.append(&buf).await?;
            buf.clear();
        }
    }
    file.append(&buf).await?;
    step("image written")?;
    file.sync().await?;
    drop(file);
    step("image synced")?;
    disk.rename(&tmp, &path).await?;
    // The image's name must be durable before a manifest can name it.
    disk.sync_dir(dir).await?;
    step("image renamed")?;

    let manifest = Manifest { offset: end_offset, name, count, term };
    publish_manifest(disk, dir, &record::encode(&manifest.encode_to_vec()), step).await?;
    remove_stale(disk, dir, &manifest.name).await?;
    step("stale files removed")?;
    Ok(manifest)
}

/// Replaces MANIFEST atomically: temp file, sync, rename, directory sync.
async fn publish_manifest(
    disk: &dyn Disk,
    dir: &str,
    bytes: &[u8],
    step: &mut (dyn FnMut(&'static str) -> Result<(), SnapshotError> + Send),
) -> Result<(), SnapshotError> {
    let path = join(dir, MANIFEST);
    let tmp = format!("{path}{TMP_SUFFIX}");
    disk.write_file(&tmp, bytes).await?;
    step("manifest written")?;
    disk.sync_file(&tmp).await?;
    step("manifest synced")?;
    disk.rename(&tmp, &path).await?;
    step("manifest renamed")?;
    disk.sync_dir(dir).await?;
    step("dir synced")
}

/// Removes every image but `keep` and every temp file: the previous image and leftovers of crashed attempts.
async fn remove_stale(disk: &dyn Disk, dir: &str, keep: &str) -> Result<(), SnapshotError> {
    for name in disk.list_dir(dir).await? {
        let image = name.ends_with(IMAGE_SUFFIX) && name != keep;
        if image || name.ends_with(TMP_SUFFIX) {
            match disk.remove_file(&join(dir, &name)).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// The snapshot's files as SendSnapshot ships them: the image, then MANIFEST (the order [`install`] writes
/// them in). Empty if there is no snapshot.
pub async fn files(disk: impl Deref<Target = dyn Disk>, dir: &str) -> Result<Vec<(String, Vec<u8>)>, SnapshotError> {
    let Some((manifest, manifest_bytes)) = read_manifest_raw(&*disk, dir).await? else { return Ok(Vec::new()) };
    let image = match disk.read(&join(dir, &manifest.name)).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(SnapshotError::MissingImage {
                manifest: join(dir, MANIFEST),
                image: join(dir, &manifest.name),
            });
        }
        Err(e) => return Err(e.into()),
    };
    Ok(vec![(manifest.name, image), (MANIFEST.to_string(), manifest_bytes)])
}

/// Installs snapshot files received from another tablet into `dir`: checks that they are one MANIFEST and the
/// intact image it names, writes the image (temp, sync, rename), then MANIFEST the same way, then removes
/// other images. Nothing received (the sender had no snapshot) installs nothing. If `dir` already holds a
/// snapshot with the same image name, a crash between the two renames can pair the old manifest with the new
/// image; the count check then fails that load rather than serve mixed data.
pub async fn install<B: AsRef<[u8]>>(
    disk: impl Deref<Target = dyn Disk>,
    dir: &str,
    files: Vec<(String, B)>,
) -> Result<(), SnapshotError> {
    let disk = &*disk;
    if files.is_empty() {
        return Ok(());
    }
    let bad = |reason: String| SnapshotError::BadFiles(reason);
    let mut manifest_bytes = None;
    for (name, bytes) in &files {
        if name == MANIFEST {
            if manifest_bytes.replace(bytes.as_ref()).is_some() {
                return Err(bad("MANIFEST received twice".into()));
            }
        } else {
            check_image_name(name).map_err(bad)?;
        }
    }
    let manifest_bytes = manifest_bytes.ok_or_else(|| bad("no MANIFEST among them".into()))?;
    let manifest = decode_manifest(&join(dir, MANIFEST), manifest_bytes)?;
    let image = files
        .iter()
        .find(|(name, _)| *name == manifest.name)
        .ok_or_else(|| bad(format!("MANIFEST names image {}, which was not received", manifest.name)))?;
    if files.len() != 2 {
        return Err(bad(format!("expected MANIFEST and {}, got {} files", manifest.name, files.len())));
    }
    verify_image(&join(dir, &manifest.name), image.1.as_ref(), manifest.count)?;

    disk.create_dir_all(dir).await?;
    let path = join(dir, &manifest.name);
    let tmp = format!("{path}{TMP_SUFFIX}");
    disk.write_file(&tmp, image.1.as_ref()).await?;
    disk.sync_file(&tmp).await?;
    disk.rename(&tmp, &path).await?;
    disk.sync_dir(dir).await?;
    publish_manifest(disk, dir, manifest_bytes, &mut |_| Ok(())).await?;
    remove_stale(disk, dir, &manifest.name).await
}

/// Checks received image bytes before they are published: intact PUT records, as many as the manifest says.
fn verify_image(path: &str, mut bytes: &[u8], expected: u64) -> Result<(), SnapshotError> {
    let mut offset = 0u64;
    let mut found = 0u64;
    let corrupt = |offset: u64, reason: String| SnapshotError::CorruptImage { path: path.to_string(), offset, reason };
    loop {
        match record::decode(bytes) {
            Decoded::Record { payload, len } => {
                let entry =
                    LogEntry::decode(payload).map_err(|e| corrupt(offset, format!("entry does not decode: {e}")))?;
                if entry.method_type != MethodType::Put as i32 {
                    return Err(corrupt(offset, format!("entry has method type {}, not PUT", entry.method_type)));
                }
                found += 1;
                offset += len as u64;
                bytes = &bytes[len..];
            }
            Decoded::End => break,
            Decoded::Torn { available } => {
                return Err(corrupt(offset, format!("torn record: only {available} bytes left in the file")));
            }
            Decoded::Corrupt { reason } => return Err(corrupt(offset, reason)),
        }
    }
    if found != expected {
        return Err(SnapshotError::CountMismatch { path: path.to_string(), expected, found });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::tablet::{ColumnDesc, ColumnKey, Dimension, Row, TableMeta, TtlSt};
    use crate::storage::SimDisk;
    use crate::storage::ttl;
    use bytes::Bytes;
    use futures::executor::block_on;

    const MIN: u64 = 60_000;
    const NOW: u64 = 1_000_000 * MIN;
    const DIR: &str = "1_0/snapshot";

    /// Columns k, v, ts; index 0 on k, index 1 on v, both with `ttl`.
    fn schema(ttl: TtlSt) -> Arc<TableSchema> {
        let col = |n: &str| ColumnDesc { name: n.into(), data_type: "string".into() };
        let key = |name: &str, c: &str, ttl: TtlSt| ColumnKey {
            index_name: name.into(),
            col_name: vec![c.into()],
            ts_name: "ts".into(),
            ttl: Some(ttl),
        };
        let meta = TableMeta {
            column_desc: vec![col("k"), col("v"), col("ts")],
            column_key: vec![key("k", "k", ttl), key("v", "v", ttl)],
            ..Default::default()
        };
        Arc::new(TableSchema::from_meta(&meta).unwrap())
    }

    fn put(log_index: u64, k: &str, v: &str, ts: u64) -> LogEntry {
        let value = Row { values: vec![k.into(), v.into(), ts.to_string()] }.encode_to_vec();
        LogEntry { term: 1, log_index, value: value.into(), ts, ..Default::default() }
    }

    fn delete(log_index: u64, idx: u32, key: &str) -> LogEntry {
        LogEntry {
            term: 1,
            log_index,
            method_type: MethodType::Delete as i32,
            dimensions: vec![Dimension { idx, key: key.into() }],
            ..Default::default()
        }
    }

    /// The table's rows as (k, v, ts, number of indexes holding it), in arrival order.
    fn contents(t: &MemTable) -> Vec<(String, String, u64, usize)> {
        t.rows()
            .map(|e| {
                let r = Row::decode(e.value.clone()).unwrap().values;
                (r[0].clone(), r[1].clone(), e.ts, e.dimensions.len())
            })
            .collect()
    }

    fn machine() -> (SimDisk, Arc<dyn Disk>) {
        let machine = SimDisk::new();
        let disk = machine.scoped("tablet-1").unwrap();
        block_on(disk.create_dir_all("")).unwrap();
        (machine, Arc::new(disk))
    }

    async fn loaded(disk: &dyn Disk, s: &Arc<TableSchema>) -> (Option<Manifest>, MemTable) {
        let mut t = MemTable::new(s.clone());
        let m = load(disk, DIR, &mut t).await.unwrap();
        (m, t)
    }

    /// A table holding exactly `entries`, for comparisons.
    fn table_of(s: &Arc<TableSchema>, entries: &[LogEntry], now: u64) -> MemTable {
        let mut t = MemTable::new(s.clone());
        for e in entries {
            t.apply(e).unwrap();
        }
        t.gc(now);
        t
    }

    fn first_entries() -> Vec<LogEntry> {
        vec![put(1, "a", "x", NOW - 30 * MIN), put(2, "b", "y", NOW), put(3, "a", "z", NOW - MIN), delete(4, 1, "y")]
    }

    #[test]
    fn no_snapshot_reads_as_none() {
        let (_m, disk) = machine();
        block_on(async {
            assert_eq!(read_manifest(&*disk, DIR).await.unwrap(), None);
            let (m, t) = loaded(&*disk, &schema(ttl::absolute(0))).await;
            assert_eq!((m, t.record_cnt()), (None, 0));
            assert!(files(&*disk, DIR).await.unwrap().is_empty());
        });
    }

    #[test]
    fn make_then_load_round_trips() {
        let (_m, disk) = machine();
        let s = schema(ttl::absolute(0));
        block_on(async {
            let m = make(&*disk, DIR, &s, first_entries(), 4, 7, NOW).await.unwrap();
            assert_eq!(m, Manifest { offset: 4, name: "00000000000000000004.sdb".into(), count: 3, term: 7 });
            assert_eq!(disk.list_dir(DIR).await.unwrap(), vec!["00000000000000000004.sdb", MANIFEST]);
            assert_eq!(read_manifest(&*disk, DIR).await.unwrap(), Some(m.clone()));
            let (got, t) = loaded(&*disk, &s).await;
            assert_eq!(got, Some(m));
            let want = table_of(&s, &first_entries(), NOW);
            assert_eq!(contents(&t), contents(&want));
            // The row deleted from index 1 is held by index 0 only, after the round trip too.
            assert_eq!(contents(&t)[1], ("b".into(), "y".into(), NOW, 1));
            assert_eq!(t.get(1, "y", NOW), None);
            assert_eq!(t.mem_bytes(), want.mem_bytes());
        });
    }

    #[test]
    fn make_twice_merges_and_drops_deleted_and_expired_rows() {
        let (_m, disk) = machine();
        let s = schema(ttl::abs_or_lat(20, 2));
        block_on(async {
            make(&*disk, DIR, &s, first_entries(), 4, 1, NOW).await.unwrap();
            // "a"@NOW-30min is already gone: expired at the first snapshot.
            assert_eq!(loaded(&*disk, &s).await.1.record_cnt(), 2);
            // Entries at or below 4 are skipped, as the caller may pass the binlog from its start.
            let mut more = first_entries();
            more.extend([
                put(5, "c", "w", NOW + 2 * MIN),
                put(6, "c", "w", NOW + 3 * MIN),
                put(7, "c", "w", NOW + 4 * MIN),
                delete(8, 0, "b"),
                put(9, "d", "q", NOW + 10 * MIN),
            ]);
            // The cutoff is now NOW + 1min: a@-1min expires by time, c@+2min is third newest of its key in
            // both indexes (LATEST 2), b left its last index by the delete.
            let later = NOW + 21 * MIN;
            let m = make(&*disk, DIR, &s, more.clone(), 9, 2, later).await.unwrap();
            let (_, t) = loaded(&*disk, &s).await;
            let rows = contents(&t);
            let left: Vec<(&str, u64)> = rows.iter().map(|r| (r.0.as_str(), r.2)).collect();
            assert_eq!(left, [("c", NOW + 3 * MIN), ("c", NOW + 4 * MIN), ("d", NOW + 10 * MIN)]);
            let want = table_of(&s, &more, later);
            assert_eq!(contents(&t), contents(&want));
            assert_eq!(m, Manifest { offset: 9, name: image_name(9), count: 3, term: 2 });
            // Only the new image is left.
            assert_eq!(disk.list_dir(DIR).await.unwrap(), vec![image_name(9), MANIFEST.to_string()]);
        });
    }

    #[test]
    fn end_offset_and_entry_checks() {
        let (_m, disk) = machine();
        let s = schema(ttl::absolute(0));
        block_on(async {
            let e = make(&*disk, DIR, &s, Vec::new(), 0, 1, NOW).await.unwrap_err();
            assert!(matches!(e, SnapshotError::EndOffsetNotAfter { end_offset: 0, snapshot_offset: 0 }), "{e}");
            make(&*disk, DIR, &s, first_entries(), 4, 1, NOW).await.unwrap();
            for end in [3, 4] {
                let e = make(&*disk, DIR, &s, Vec::new(), end, 1, NOW).await.unwrap_err();
                assert_eq!(
                    e.to_string(),
                    format!("snapshot end offset {end} is not after the current snapshot's offset 4")
                );
            }
            let e = make(&*disk, DIR, &s, vec![put(5, "a", "b", 1), put(7, "a", "c", 2)], 6, 1, NOW).await.unwrap_err();
            assert_eq!(e.to_string(), "binlog entry 7 is beyond the snapshot's end offset 6");
            let bad = LogEntry { value: Bytes::from_static(b"\xff"), ..put(5, "a", "b", 1) };
            let e = make(&*disk, DIR, &s, vec![bad], 6, 1, NOW).await.unwrap_err();
            assert!(e.to_string().starts_with("binlog entry 5 cannot be applied: row value does not decode"), "{e}");
            // Failed attempts changed nothing; an empty step forward is fine.
            assert_eq!(read_manifest(&*disk, DIR).await.unwrap().unwrap().offset, 4);
            let m = make(&*disk, DIR, &s, Vec::new(), 6, 1, NOW).await.unwrap();
            assert_eq!((m.offset, m.count), (6, 3));
        });
    }

    #[test]
    fn corrupt_manifest_is_an_error_naming_it() {
        let (machine, disk) = machine();
        let s = schema(ttl::absolute(0));
        block_on(async {
            make(&*disk, DIR, &s, first_entries(), 4, 1, NOW).await.unwrap();
            let path = format!("{DIR}/{MANIFEST}");
            let good = disk.read(&path).await.unwrap();
            let check = |msg: String, want: &str| {
                assert!(msg.starts_with("corrupt snapshot manifest 1_0/snapshot/MANIFEST: "), "{msg}");
                assert!(msg.contains(want), "{msg} lacks {want}");
            };
            machine.corrupt_tail(&format!("tablet-1/{path}"), 1).unwrap();
            check(read_manifest(&*disk, DIR).await.unwrap_err().to_string(), "checksum");
            disk.write_file(&path, &good[..good.len() - 1]).await.unwrap();
            check(read_manifest(&*disk, DIR).await.unwrap_err().to_string(), "torn");
            disk.write_file(&path, b"").await.unwrap();
            check(read_manifest(&*disk, DIR).await.unwrap_err().to_string(), "empty");
            disk.write_file(&path, &[good.clone(), b"x".to_vec()].concat()).await.unwrap();
            check(read_manifest(&*disk, DIR).await.unwrap_err().to_string(), "1 bytes after the record");
            disk.write_file(&path, &record::encode(b"\xff\xff")).await.unwrap();
            check(read_manifest(&*disk, DIR).await.unwrap_err().to_string(), "does not decode");
            let escape = Manifest { offset: 4, name: "../../x.sdb".into(), count: 3, term: 1 };
            disk.write_file(&path, &record::encode(&escape.encode_to_vec())).await.unwrap();
            check(read_manifest(&*disk, DIR).await.unwrap_err().to_string(), "not a plain");
            let mut t = MemTable::new(s.clone());
            assert!(matches!(load(&*disk, DIR, &mut t).await, Err(SnapshotError::CorruptManifest { .. })));
            // A manifest naming a missing image.
            let missing = Manifest { offset: 4, name: image_name(5), count: 3, term: 1 };
            disk.write_file(&path, &record::encode(&missing.encode_to_vec())).await.unwrap();
            let e = load(&*disk, DIR, &mut t).await.unwrap_err();
            assert_eq!(
                e.to_string(),
                "snapshot manifest 1_0/snapshot/MANIFEST names image 1_0/snapshot/00000000000000000005.sdb, \
                 which does not exist"
            );
            // A corrupt manifest also stops make: it cannot know what it would merge.
            disk.write_file(&path, b"junk").await.unwrap();
            assert!(make(&*disk, DIR, &s, Vec::new(), 9, 1, NOW).await.is_err());
        });
    }

    #[test]
    fn corrupt_image_is_an_error_naming_file_and_offset() {
        let (machine, disk) = machine();
        let s = schema(ttl::absolute(0));
        block_on(async {
            let m = make(&*disk, DIR, &s, first_entries(), 4, 1, NOW).await.unwrap();
            let path = format!("{DIR}/{}", m.name);
            let good = disk.read(&path).await.unwrap();
            let first_len = match record::decode(&good) {
                Decoded::Record { len, .. } => len as u64,
                other => panic!("{other:?}"),
            };
            let load_err = || {
                let (disk, s) = (disk.clone(), s.clone());
                async move {
                    let mut t = MemTable::new(s);
                    load(&*disk, DIR, &mut t).await.unwrap_err().to_string()
                }
            };
            // Flip a byte of the second record.
            let mut bad = good.clone();
            bad[first_len as usize + 9] ^= 0x10;
            disk.write_file(&path, &bad).await.unwrap();
            assert_eq!(
                load_err().await,
                format!("corrupt snapshot image {path} at byte {first_len}: checksum mismatch")
            );
            // A torn last record.
            disk.write_file(&path, &good[..good.len() - 3]).await.unwrap();
            let msg = load_err().await;
            assert!(msg.starts_with(&format!("corrupt snapshot image {path} at byte ")), "{msg}");
            assert!(msg.contains("torn record"), "{msg}");
            // Corrupt tail via the disk's fault injection.
            disk.write_file(&path, &good).await.unwrap();
            machine.corrupt_tail(&format!("tablet-1/{path}"), 2).unwrap();
            assert!(load_err().await.contains("checksum mismatch"));
            // A missing record: the count no longer matches.
            let records: Vec<u8> = good[..first_len as usize].to_vec();
            disk.write_file(&path, &records).await.unwrap();
            assert_eq!(load_err().await, format!("snapshot image {path} holds 1 rows, its manifest says 3"));
            // A well-framed record that is not a PUT entry.
            let del = record::encode(&delete(0, 0, "a").encode_to_vec());
            disk.write_file(&path, &[good.clone(), del].concat()).await.unwrap();
            assert!(load_err().await.contains("not PUT"));
            // A well-framed PUT whose row does not fit the schema.
            let short =
                LogEntry { value: Row { values: vec!["a".into()] }.encode_to_vec().into(), ..Default::default() };
            disk.write_file(&path, &[good.clone(), record::encode(&short.encode_to_vec())].concat()).await.unwrap();
            let msg = load_err().await;
            assert!(
                msg.ends_with(&format!("at byte {}: row has 1 values, the table has 3 columns", good.len())),
                "{msg}"
            );
        });
    }

    #[test]
    fn large_images_are_read_in_chunks() {
        let (_m, disk) = machine();
        let s = schema(ttl::absolute(0));
        let filler = "f".repeat(3000);
        let entries: Vec<LogEntry> = (1..=1000).map(|i| put(i, &format!("k{i}"), &filler, i)).collect();
        block_on(async {
            let m = make(&*disk, DIR, &s, entries.clone(), 1000, 1, NOW).await.unwrap();
            assert!(disk.file_len(&format!("{DIR}/{}", m.name)).await.unwrap() > 2 * CHUNK as u64);
            let (_, t) = loaded(&*disk, &s).await;
            assert_eq!(t.record_cnt(), 1000);
            assert_eq!(contents(&t), contents(&table_of(&s, &entries, NOW)));
        });
    }

    /// Cuts power after each step of a second `make` in turn: afterwards the snapshot is the old one or the new
    /// one, complete either way, and another `make` cleans up and succeeds.
    #[test]
    fn power_loss_at_any_step_leaves_the_old_or_the_new_snapshot() {
        let s = schema(ttl::absolute(0));
        let mut second = first_entries();
        second.extend([put(5, "c", "w", NOW), delete(6, 0, "a"), put(7, "e", "v", NOW)]);
        let old = contents(&table_of(&s, &first_entries(), NOW));
        let new = contents(&table_of(&s, &second, NOW));
        assert_ne!(old, new);

        let mut steps = Vec::new();
        {
            let (_m, disk) = machine();
            block_on(async {
                make(&*disk, DIR, &s, first_entries(), 4, 1, NOW).await.unwrap();
                let mut record = |name: &'static str| {
                    steps.push(name);
                    false
                };
                make_with_hook(&*disk, DIR, &s, second.clone(), 7, 2, NOW, &mut record).await.unwrap();
            });
        }
        assert_eq!(steps.len(), 8, "{steps:?}");

        for (at, &crash_step) in steps.iter().enumerate() {
            for power_loss in [true, false] {
                let (machine, disk) = machine();
                block_on(async {
                    make(&*disk, DIR, &s, first_entries(), 4, 1, NOW).await.unwrap();
                    let mut n = 0;
                    let mut crash = |_: &'static str| {
                        n += 1;
                        if n == at + 1 {
                            if power_loss {
                                machine.power_loss();
                            }
                            return true;
                        }
                        false
                    };
                    let e = make_with_hook(&*disk, DIR, &s, second.clone(), 7, 2, NOW, &mut crash).await.unwrap_err();
                    assert!(e.to_string().contains(crash_step), "{e}");

                    let (m, t) = loaded(&*disk, &s).await;
                    let m = m.unwrap();
                    let published = at >= steps.iter().position(|&s| s == "manifest renamed").unwrap();
                    let what = format!("crash after {crash_step:?}, power loss {power_loss}");
                    if published {
                        assert_eq!((m.offset, contents(&t)), (7, new.clone()), "{what}");
                    } else {
                        assert_eq!((m.offset, contents(&t)), (4, old.clone()), "{what}");
                    }
                    // The next make starts from whichever survived and leaves only its own files.
                    let end = if published { 8 } else { 7 };
                    let m = make(&*disk, DIR, &s, second.clone(), end, 2, NOW).await.unwrap();
                    assert_eq!(disk.list_dir(DIR).await.unwrap(), vec![image_name(end), MANIFEST.into()], "{what}");
                    assert_eq!(contents(&loaded(&*disk, &s).await.1), new, "{what}");
                    assert_eq!(m.count, new.len() as u64);
                });
            }
        }
    }

    #[test]
    fn power_loss_after_make_keeps_the_new_snapshot() {
        let (machine, disk) = machine();
        let s = schema(ttl::absolute(0));
        block_on(async {
            make(&*disk, DIR, &s, first_entries(), 4, 1, NOW).await.unwrap();
            machine.power_loss();
            let (m, t) = loaded(&*disk, &s).await;
            assert_eq!(m.unwrap().offset, 4);
            assert_eq!(contents(&t), contents(&table_of(&s, &first_entries(), NOW)));
            assert_eq!(machine.unsynced_bytes(), 0);
        });
    }

    /// A snapshot made from a table's rows in memory, written or built as files, holds what the table holds.
    #[test]
    fn snapshots_from_memory_round_trip() {
        let (_m, disk) = machine();
        let (_m2, other) = machine();
        let s = schema(ttl::absolute(0));
        let table = table_of(&s, &first_entries(), NOW);
        block_on(async {
            let m = make_from_rows(&*disk, DIR, table.rows(), 4, 7).await.unwrap();
            assert_eq!(m, Manifest { offset: 4, name: image_name(4), count: 3, term: 7 });
            let (got, t) = loaded(&*disk, &s).await;
            assert_eq!((got, contents(&t)), (Some(m.clone()), contents(&table)));
            // Not after the snapshot that is there: refused.
            let again = make_from_rows(&*disk, DIR, table.rows(), 4, 7).await.unwrap_err();
            assert!(matches!(again, SnapshotError::EndOffsetNotAfter { end_offset: 4, snapshot_offset: 4 }));
            // Built in memory: the same bytes as the written snapshot, and they install elsewhere.
            let built = image_files(table.rows(), 4, 7);
            assert_eq!(built, files(&*disk, DIR).await.unwrap());
            install(&*other, DIR, built).await.unwrap();
            let (got, t) = loaded(&*other, &s).await;
            assert_eq!((got, contents(&t)), (Some(m), contents(&table)));
        });
    }

    #[test]
    fn files_and_install_copy_a_snapshot_between_machines() {
        let (_m1, sender) = machine();
        let (m2, receiver) = machine();
        let s = schema(ttl::absolute(0));
        block_on(async {
            let m = make(&*sender, DIR, &s, first_entries(), 4, 3, NOW).await.unwrap();
            let sent = files(&*sender, DIR).await.unwrap();
            let names: Vec<&str> = sent.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, [m.name.as_str(), MANIFEST]);

            // The receiver has an older snapshot of its own, which the install replaces.
            let other = "2_0/snapshot";
            make(&*receiver, DIR, &s, vec![put(1, "old", "o", NOW)], 1, 1, NOW).await.unwrap();
            install(&*receiver, DIR, sent.clone()).await.unwrap();
            assert_eq!(receiver.list_dir(DIR).await.unwrap(), vec![m.name.clone(), MANIFEST.into()]);
            m2.power_loss();
            let (got, t) = loaded(&*receiver, &s).await;
            assert_eq!(got, Some(m.clone()));
            assert_eq!(contents(&t), contents(&table_of(&s, &first_entries(), NOW)));

            // Into a directory that does not exist yet, with `Bytes` as a transport would hand them over.
            let as_bytes: Vec<(String, Bytes)> =
                sent.iter().map(|(n, b)| (n.clone(), Bytes::from(b.clone()))).collect();
            install(receiver.clone(), other, as_bytes).await.unwrap();
            assert_eq!(read_manifest(&*receiver, other).await.unwrap(), Some(m));
            // Identical bytes on both sides.
            assert_eq!(files(&*receiver, other).await.unwrap(), sent);
            // Nothing sent: nothing installed.
            install::<Vec<u8>>(&*receiver, "3_0/snapshot", Vec::new()).await.unwrap();
            assert!(!receiver.exists("3_0/snapshot").await.unwrap());
        });
    }

    #[test]
    fn install_refuses_bad_files_and_keeps_the_old_snapshot() {
        let (_m1, sender) = machine();
        let (_m2, receiver) = machine();
        let s = schema(ttl::absolute(0));
        block_on(async {
            make(&*sender, DIR, &s, first_entries(), 4, 3, NOW).await.unwrap();
            let sent = files(&*sender, DIR).await.unwrap();
            let old = make(&*receiver, DIR, &s, vec![put(1, "old", "o", NOW)], 1, 1, NOW).await.unwrap();
            let (image, manifest) = (sent[0].clone(), sent[1].clone());

            let refuse = |files: Vec<(String, Vec<u8>)>| {
                let receiver = receiver.clone();
                async move { install(receiver, DIR, files).await.unwrap_err().to_string() }
            };
            assert!(refuse(vec![image.clone()]).await.contains("no MANIFEST"));
            assert!(refuse(vec![manifest.clone()]).await.contains("which was not received"));
            assert!(refuse(vec![image.clone(), manifest.clone(), manifest.clone()]).await.contains("twice"));
            let stray = ("../evil.sdb".to_string(), image.1.clone());
            assert!(refuse(vec![stray, image.clone(), manifest.clone()]).await.contains("not a plain"));
            let extra = (image_name(99), image.1.clone());
            assert!(refuse(vec![extra, image.clone(), manifest.clone()]).await.contains("got 3 files"));
            let mut torn = image.clone();
            torn.1.pop();
            assert!(refuse(vec![torn, manifest.clone()]).await.contains("torn record"));
            let mut flipped = image.clone();
            flipped.1[10] ^= 1;
            assert!(refuse(vec![flipped, manifest.clone()]).await.contains("checksum mismatch"));
            let mut bad_manifest = manifest.clone();
            bad_manifest.1[0] ^= 1;
            assert!(refuse(vec![image.clone(), bad_manifest]).await.contains("corrupt snapshot manifest"));
            let short = (image.0.clone(), image.1[..image.1.len() / 2].to_vec());
            let msg = refuse(vec![short, manifest.clone()]).await;
            assert!(msg.contains("torn record") || msg.contains("holds"), "{msg}");

            assert_eq!(read_manifest(&*receiver, DIR).await.unwrap(), Some(old.clone()));
            assert_eq!(receiver.list_dir(DIR).await.unwrap(), vec![old.name, MANIFEST.into()]);
        });
    }

    /// `make` is usable from a spawned task: its future is `Send`.
    #[test]
    fn make_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let (_m, disk) = machine();
        let s = schema(ttl::absolute(0));
        // An `Arc<dyn Disk>` by value, as servers hold it.
        let fut = make(disk.clone(), DIR, &s, first_entries(), 4, 1, NOW);
        assert_send(&fut);
        let fut2 = load_into_new(disk.clone(), s.clone());
        assert_send(&fut2);
        block_on(fut).unwrap();
        assert_eq!(block_on(fut2).record_cnt(), 3);
    }

    async fn load_into_new(disk: Arc<dyn Disk>, s: Arc<TableSchema>) -> MemTable {
        let mut t = MemTable::new(s);
        load(disk, DIR, &mut t).await.unwrap();
        t
    }

    /// Under the simulator this runs as a madsim test; on tokio, as a tokio test.
    #[tokio::test]
    async fn runs_inside_the_runtime() {
        let (_m, disk) = machine();
        let s = schema(ttl::latest(1));
        let m = make(&*disk, DIR, &s, first_entries(), 4, 1, NOW).await.unwrap();
        // LATEST 1 evicts the older "a" (x) from index 0, but index 1 still holds it under "x"; "b" (y) is
        // only in index 0 after the delete.
        assert_eq!(m.count, 3);
        let (_, t) = loaded(&*disk, &s).await;
        let rows = contents(&t);
        let rows: Vec<(&str, usize)> = rows.iter().map(|r| (r.1.as_str(), r.3)).collect();
        assert_eq!(rows, [("x", 1), ("y", 1), ("z", 2)]);
    }
}
