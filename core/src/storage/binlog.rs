//! A partition's binlog: the write-ahead log of its entries, in segment files of CRC-checked records.
//!
//! # Layout
//! The binlog of a partition is a directory (e.g. `1_0/binlog`) of segment files `NNNNNNNN.log`, named by an
//! 8-digit file index starting at `00000000`. Each record is [`record::encode`] of a prost-encoded [`LogEntry`].
//! Log indexes (OpenMLDB's "offset") start at 1 and grow by exactly 1 per entry. Appends go to the last segment,
//! the active one. Once it holds `max_segment_bytes` the next append rolls: the active segment is fsynced and a
//! new one with the next file index is created. So every segment but the last is durable.
//!
//! # Durability
//! [`Binlog::append`] puts the bytes into the disk's page cache at once: a process crash keeps them, a machine
//! crash keeps only what [`Binlog::sync`] (called every `binlog_sync_to_disk_interval`) or a roll made durable.
//! [`Binlog::synced_offset`] tells how far that is. Opening syncs what it recovered, so after `open` everything
//! on disk is durable.
//!
//! # The floor
//! A binlog continues a snapshot: `floor` is the snapshot's offset, and `last_offset() = max(last entry on disk,
//! floor)`. Entries at or below the floor may be missing: old segments are deleted once a snapshot covers them.
//! When the disk's last entry is below the floor (a snapshot newer than the binlog, or a truncation below it), the
//! next append (`floor + 1`) starts a new segment, so that the skip always falls between segments.
//!
//! # Recovery rules ([`Binlog::open`])
//! Every segment is read in file-index order, every record checked (CRC, then prost decode), and the log indexes
//! must run on by exactly 1. The only exception is a skip at a segment's first entry to an index `<= floor + 1`:
//! the skipped entries are in the snapshot. The first entry of the binlog must be `<= floor + 1` for the same
//! reason. Then:
//! - An empty segment is fine, last or not: it holds nothing that could be lost.
//! - The **last** segment may end in one damaged record: one cut short (a torn write), or one that fails its
//!   checksum (its final bytes damaged), including a damaged length field. It is cut off, the file truncated
//!   at the last good record boundary, with a `warn!` naming the file, the byte offset and the bytes cut, and
//!   with [`RecoveryReport::cut_from`] / [`RecoveryReport::cut_bytes`] set. The damage counts as the final
//!   record only if no intact record starts anywhere after it and it is no longer than one record can be
//!   (`HEADER_LEN + MAX_RECORD_LEN`). Both are what a torn or damaged final record looks like, and what middle
//!   damage never looks like: cutting there would drop the intact records behind it.
//! - A damaged record in a segment that is **not** the last, after a log index below the floor, ends that segment
//!   for recovery (the rest of it is left on disk unread, with a `warn!` naming the file and byte offset, and listed
//!   in [`RecoveryReport::skipped_damage`]): the snapshot holds everything there, since the next segment must
//!   still start at or below `floor + 1`. This is what a leader leaves that found damage in its binlog, wrote a
//!   snapshot of its memory and rolled to a new segment ([`Binlog::roll_over`]), then crashed before
//!   [`Binlog::rebase`] deleted the damaged segment (DESIGN 5.6).
//! - Everything else is an error and nothing is changed on disk: damage followed by an intact record (middle
//!   corruption), any damaged record in a segment that is not the last, a record whose checksum holds but that
//!   does not decode as a `LogEntry`, and log indexes that skip (other than into the snapshot) or go back. The
//!   error names the file, the byte offset and the last good log index.
//!
//! After a power loss of a [`SimDisk`](super::SimDisk), reopening gives exactly the synced prefix: the disk
//! keeps whole synced records, and a torn tail, if any, is cut by the rules above.
//!
//! # Readers
//! [`Binlog::read_from`] serves replicators and replay. A [`BinlogCursor`] remembers the segment and byte where
//! the next entry starts, so a reader going batch after batch reads each byte about once. Each segment keeps the
//! byte position of one entry per 64 KiB, so [`Binlog::cursor_at`] seeks near any index without IO. A cursor made
//! stale by [`Binlog::truncate_after`] or [`Binlog::delete_segments_before`] is noticed and sought again; an
//! index no longer in the binlog is [`BinlogError::Compacted`]: that reader needs a snapshot.
//!
//! # Failures
//! A failed append that left nothing behind changes nothing. One that left part of a record is cut back; if
//! that fails too, or an fsync fails (after which the page cache's state is unknown), the binlog refuses every
//! further write with [`BinlogError::Broken`] until it is reopened, whose recovery then decides what is there.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use prost::Message;

use super::disk::{AppendFile, Disk};
use super::record;
use crate::proto::tablet::LogEntry;

mod scan;
#[cfg(test)]
mod tests;

use scan::{SegmentReader, Step};

/// OpenMLDB's default `binlog_single_file_max_size`, 2048 MB.
pub const DEFAULT_MAX_SEGMENT_BYTES: u64 = 2048 << 20;

/// Bytes between two remembered entry positions of a segment: a seek reads at most this much to skip.
const CHECKPOINT_EVERY: u64 = 64 << 10;

/// Appends that may fail in a row, each cut back cleanly, before the binlog is taken for broken: one failed write
/// may be a passing error, three mean a failing disk. A broken binlog unloads its partition, so a leader whose
/// disk refuses every write is failed over instead of refusing its clients until the disk heals (a leader that
/// never had to fsync, with nothing unsynced, otherwise never broke: the fuzzer's seed 174603).
const MAX_FAILED_APPENDS: u32 = 3;

/// How a binlog cuts its segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BinlogConfig {
    /// A segment that holds at least this many bytes is rolled before the next append (OpenMLDB's
    /// `binlog_single_file_max_size`). A batch is never split, so a segment may exceed it by one batch.
    pub max_segment_bytes: u64,
}

impl Default for BinlogConfig {
    fn default() -> Self {
        Self { max_segment_bytes: DEFAULT_MAX_SEGMENT_BYTES }
    }
}

/// What [`Binlog::open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files after recovery (a new binlog has one, empty).
    pub segments: usize,
    /// Entries on disk after recovery.
    pub entries: u64,
    /// Bytes cut off the end of the last segment (a torn or damaged final record); 0 if none.
    pub cut_bytes: u64,
    /// The file and byte offset where the cut was made.
    pub cut_from: Option<(String, u64)>,
    /// Damaged records in segments that are not the last, below the floor: the rest of each such segment (file,
    /// byte offset of the damage) was left on disk unread, since the snapshot holds it.
    pub skipped_damage: Vec<(String, u64)>,
}

/// One segment file, as [`Binlog::segments`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub file_index: u64,
    /// File name inside the binlog directory, `NNNNNNNN.log`.
    pub name: String,
    /// First and last log index in the segment; `None` if it is empty.
    pub first_index: Option<u64>,
    pub last_index: Option<u64>,
    /// Length of the segment in bytes (whole records only).
    pub bytes: u64,
}

/// Where a sequential reader of the binlog is: the next log index and, once known, where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogCursor {
    next: u64,
    at: Option<Position>,
}

impl BinlogCursor {
    /// The log index the next [`Binlog::read_from`] starts at.
    pub fn next_index(&self) -> u64 {
        self.next
    }
}

/// A byte position in a segment, valid while the binlog's `epoch` is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    file_index: u64,
    byte: u64,
    epoch: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BinlogError {
    #[error("binlog {file}: {source}")]
    Io { file: String, source: io::Error },
    /// A damaged record that recovery may not cut, or damage found while reading. `after_index` is the last
    /// good log index before it (0 if none).
    #[error("binlog {file}: damaged record at byte {byte_offset}, after log index {after_index}: {reason}")]
    Corrupt { file: String, byte_offset: u64, after_index: u64, reason: String },
    /// Log indexes that do not run on by 1 (a skip not covered by the snapshot, or a step back).
    #[error("binlog {file}: log index {found} at byte {byte_offset}, expected {expected}")]
    Gap { file: String, byte_offset: u64, expected: u64, found: u64 },
    /// An append whose log index is not `last_offset() + 1`; nothing was written.
    #[error("binlog append refused: log index {got}, expected {expected}")]
    OutOfOrder { expected: u64, got: u64 },
    /// An entry too large for one record; nothing was written.
    #[error("binlog append refused: entry {log_index} encodes to {bytes} bytes, more than a record holds ({limit})")]
    TooLarge { log_index: u64, bytes: usize, limit: usize },
    /// A reader asked for an entry the binlog no longer holds (it is in a snapshot).
    #[error("binlog {dir}: log index {requested} is no longer in the binlog; the reader needs a snapshot")]
    Compacted { dir: String, requested: u64 },
    /// An earlier write or fsync failed in a way that leaves the files' state unknown.
    #[error("binlog {dir} refuses writes until reopened: {cause}")]
    Broken { dir: String, cause: String },
}

/// A segment file and what the binlog knows of its contents.
#[derive(Debug, Clone)]
struct Segment {
    file_index: u64,
    path: String,
    first: Option<u64>,
    last: Option<u64>,
    /// Term of the last entry (0 if empty).
    last_term: u64,
    /// End of the last whole record.
    bytes: u64,
    /// (log index, byte position) of the first entry and of one entry per [`CHECKPOINT_EVERY`] bytes after it.
    checkpoints: Vec<(u64, u64)>,
}

impl Segment {
    fn new(dir: &str, file_index: u64) -> Self {
        Self {
            file_index,
            path: join(dir, &segment_name(file_index)),
            first: None,
            last: None,
            last_term: 0,
            bytes: 0,
            checkpoints: Vec::new(),
        }
    }

    /// Records that entry `index` of `term` occupies `len` bytes at `pos`, right after the previous one.
    fn note(&mut self, index: u64, term: u64, pos: u64, len: u64) {
        match self.checkpoints.last() {
            None => self.checkpoints.push((index, pos)),
            Some(&(_, at)) if pos - at >= CHECKPOINT_EVERY => self.checkpoints.push((index, pos)),
            Some(_) => {}
        }
        self.first.get_or_insert(index);
        self.last = Some(index);
        self.last_term = term;
        self.bytes = pos + len;
    }

    fn contains(&self, index: u64) -> bool {
        matches!((self.first, self.last), (Some(f), Some(l)) if f <= index && index <= l)
    }

    /// A byte position at or before entry `index`, from which a reader reaches it by reading forward.
    fn seek(&self, index: u64) -> u64 {
        let i = self.checkpoints.partition_point(|&(at, _)| at <= index);
        if i == 0 { 0 } else { self.checkpoints[i - 1].1 }
    }

    /// Roughly how many bytes `entries` entries take here, to size a reader's first read.
    fn estimate(&self, entries: usize) -> u64 {
        let count = match (self.first, self.last) {
            (Some(f), Some(l)) => l - f + 1,
            _ => return scan::MIN_CHUNK,
        };
        (self.bytes / count + 1).saturating_mul(entries as u64)
    }

    fn info(&self) -> SegmentInfo {
        SegmentInfo {
            file_index: self.file_index,
            name: segment_name(self.file_index),
            first_index: self.first,
            last_index: self.last,
            bytes: self.bytes,
        }
    }
}

/// File name of the segment with this file index.
pub fn segment_name(file_index: u64) -> String {
    format!("{file_index:08}.log")
}

/// The file index of a segment file name; `None` for any other name (only the canonical spelling counts).
fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let index = digits.parse().ok()?;
    (segment_name(index) == name).then_some(index)
}

fn join(dir: &str, name: &str) -> String {
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") }
}

fn io_error(file: &str) -> impl FnOnce(io::Error) -> BinlogError + use<> {
    let file = file.to_string();
    move |source| BinlogError::Io { file, source }
}

/// A partition's binlog. See the module documentation for the rules it keeps.
pub struct Binlog {
    disk: Arc<dyn Disk>,
    dir: String,
    config: BinlogConfig,
    floor: u64,
    /// In file-index order; never empty. The last one is the active segment.
    segments: Vec<Segment>,
    /// Append handle on the active segment. The mutex is never contended (writes take `&mut self` and use
    /// `get_mut`): it only makes the binlog `Sync`, so readers can hold `&Binlog` across awaits in spawned tasks.
    writer: Mutex<Box<dyn AppendFile>>,
    /// Last log index on disk known durable (0: none).
    synced: u64,
    /// Whether the active segment holds bytes not yet fsynced.
    dirty: bool,
    /// Bumped whenever bytes at a known position may change meaning (truncation); invalidates cursors.
    epoch: u64,
    /// Why writes are refused, after a failure that left the files' state unknown.
    broken: Option<String>,
    /// Appends that failed in a row (each cut back cleanly): [`MAX_FAILED_APPENDS`] of them break the binlog.
    failed_appends: u32,
}

impl fmt::Debug for Binlog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Binlog")
            .field("dir", &self.dir)
            .field("floor", &self.floor)
            .field("last_offset", &self.last_offset())
            .field("synced", &self.synced)
            .field("segments", &self.segments.len())
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

/// Recovery's progress through the segments.
struct Recovery<'a> {
    disk: &'a dyn Disk,
    floor: u64,
    /// Last good log index so far.
    prev: Option<u64>,
    report: RecoveryReport,
}

impl Recovery<'_> {
    /// Reads and checks one segment; in the last one a damaged final record is cut.
    async fn segment(&mut self, dir: &str, file_index: u64, is_last: bool) -> Result<Segment, BinlogError> {
        let mut seg = Segment::new(dir, file_index);
        let path = seg.path.clone();
        let len = self.disk.file_len(&path).await.map_err(io_error(&path))?;
        let mut reader = SegmentReader::new(self.disk, &path, 0, len, len);
        loop {
            match reader.next().await.map_err(io_error(&path))? {
                Step::End => break,
                Step::Record { pos, len, payload } => {
                    let after_index = self.prev.unwrap_or(0);
                    let entry = LogEntry::decode(payload).map_err(|e| BinlogError::Corrupt {
                        file: path.clone(),
                        byte_offset: pos,
                        after_index,
                        reason: format!("the checksum holds but the record is not a log entry: {e}"),
                    })?;
                    let found = entry.log_index;
                    let expected = self.prev.map_or(1, |p| p + 1);
                    // A skip into the snapshot is allowed where the writer makes it: at a segment's first entry.
                    let may_skip = seg.first.is_none() && found > expected;
                    if found != expected && !(may_skip && found <= self.floor.saturating_add(1)) {
                        let expected = if may_skip { expected.max(self.floor.saturating_add(1)) } else { expected };
                        return Err(BinlogError::Gap { file: path, byte_offset: pos, expected, found });
                    }
                    seg.note(found, entry.term, pos, len);
                    self.prev = Some(found);
                    self.report.entries += 1;
                }
                Step::Damaged { pos, reason } => {
                    let after_index = self.prev.unwrap_or(0);
                    let refuse = |reason: String| BinlogError::Corrupt {
                        file: path.clone(),
                        byte_offset: pos,
                        after_index,
                        reason,
                    };
                    if !is_last && after_index < self.floor {
                        // The damaged record and everything after it in this segment are at or below the floor
                        // (the next segment must start at or below `floor + 1`, which the skip rule checks): the
                        // snapshot holds them. A leader that found damage in its binlog made that snapshot from
                        // memory and rolled to a new segment; a crash before it deleted the damaged one leaves this.
                        tracing::warn!(
                            file = %path,
                            byte_offset = pos,
                            after_index,
                            floor = self.floor,
                            %reason,
                            "binlog recovery skips the rest of a damaged segment: the snapshot covers it"
                        );
                        self.report.skipped_damage.push((path.clone(), pos));
                        seg.bytes = pos;
                        break;
                    }
                    if !is_last {
                        return Err(refuse(format!("{reason}, in a segment that is not the last")));
                    }
                    if let Some(why) = self.final_record_check(&path, pos, len).await? {
                        return Err(refuse(format!("{reason}; not a damaged final record: {why}")));
                    }
                    let cut_bytes = len - pos;
                    self.disk.truncate(&path, pos).await.map_err(io_error(&path))?;
                    tracing::warn!(
                        file = %path,
                        byte_offset = pos,
                        cut_bytes,
                        after_index,
                        %reason,
                        "binlog recovery cut a damaged final record"
                    );
                    self.report.cut_bytes = cut_bytes;
                    self.report.cut_from = Some((path.clone(), pos));
                    break;
                }
            }
        }
        Ok(seg)
    }

    /// Why the damage at `pos` cannot be the file's final record, or `None` if it can.
    async fn final_record_check(&self, path: &str, pos: u64, file_len: u64) -> Result<Option<String>, BinlogError> {
        let tail_len = file_len - pos;
        let longest = (record::HEADER_LEN + record::MAX_RECORD_LEN) as u64;
        if tail_len > longest {
            return Ok(Some(format!("{tail_len} bytes follow, more than one record can hold")));
        }
        let tail = scan::read_exact_at(self.disk, path, pos, tail_len as usize).await.map_err(io_error(path))?;
        Ok(scan::intact_record_after_start(&tail)
            .map(|(q, len)| format!("an intact record of {len} bytes follows at byte {}", pos + q as u64)))
    }
}

impl Binlog {
    /// Opens or creates the binlog in `dir` and recovers it (module documentation, "Recovery rules").
    ///
    /// `floor` is the offset of the snapshot the binlog continues (0 without one): `last_offset()` is at least
    /// that, and entries at or below it may be missing. Files in `dir` that are not segments are ignored.
    pub async fn open(
        disk: Arc<dyn Disk>,
        dir: &str,
        config: BinlogConfig,
        floor: u64,
    ) -> Result<(Binlog, RecoveryReport), BinlogError> {
        disk.create_dir_all(dir).await.map_err(io_error(dir))?;
        let mut indexes = Vec::new();
        for name in disk.list_dir(dir).await.map_err(io_error(dir))? {
            match parse_segment_name(&name) {
                Some(index) => indexes.push(index),
                None => tracing::warn!(dir, file = %name, "binlog: ignoring a file that is not a segment"),
            }
        }
        indexes.sort_unstable();
        let mut recovery = Recovery { disk: &*disk, floor, prev: None, report: RecoveryReport::default() };
        let mut segments = Vec::with_capacity(indexes.len().max(1));
        for (i, &file_index) in indexes.iter().enumerate() {
            segments.push(recovery.segment(dir, file_index, i + 1 == indexes.len()).await?);
        }
        let mut report = recovery.report;
        if segments.is_empty() {
            segments.push(Segment::new(dir, 0));
        }
        report.segments = segments.len();
        let active = segments.last().expect("never empty").path.clone();
        let mut writer = disk.open_append(&active).await.map_err(io_error(&active))?;
        // What was recovered may be page cache a crashed process left behind, and a cut must stick: sync both, so
        // that everything on disk is durable and synced_offset() is the truth.
        writer.sync().await.map_err(io_error(&active))?;
        disk.sync_dir(dir).await.map_err(io_error(dir))?;
        let synced = segments.iter().rev().find_map(|s| s.last).unwrap_or(0);
        let binlog = Binlog {
            disk,
            dir: dir.to_string(),
            config,
            floor,
            segments,
            writer: Mutex::new(writer),
            synced,
            dirty: false,
            epoch: 0,
            broken: None,
            failed_appends: 0,
        };
        tracing::debug!(
            dir,
            segments = report.segments,
            entries = report.entries,
            last_offset = binlog.last_offset(),
            cut_bytes = report.cut_bytes,
            "binlog opened"
        );
        Ok((binlog, report))
    }

    /// The directory the binlog lives in.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// The snapshot offset the binlog continues from, as given to [`Binlog::open`].
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// The last log index: the last entry on disk, or the floor if that is higher.
    pub fn last_offset(&self) -> u64 {
        self.last_entry().map_or(0, |(index, _)| index).max(self.floor)
    }

    /// Term of the entry at [`Binlog::last_offset`]; 0 if the binlog does not hold it (no entries, or the last
    /// offset is the floor, whose term is the snapshot's).
    pub fn last_term(&self) -> u64 {
        match self.last_entry() {
            Some((index, term)) if index == self.last_offset() => term,
            _ => 0,
        }
    }

    /// The oldest log index still on disk, if any.
    pub fn first_index(&self) -> Option<u64> {
        self.segments.iter().find_map(|s| s.first)
    }

    /// The last log index known durable (the floor counts: the snapshot holds it).
    pub fn synced_offset(&self) -> u64 {
        self.synced.max(self.floor)
    }

    /// Every segment, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.segments.iter().map(Segment::info).collect()
    }

    /// Appends one entry: its log index must be `last_offset() + 1` ([`BinlogError::OutOfOrder`] otherwise,
    /// and nothing is written). The bytes reach the page cache at once; durability waits for [`Binlog::sync`]
    /// or the next roll.
    pub async fn append(&mut self, entry: &LogEntry) -> Result<(), BinlogError> {
        self.append_batch(std::slice::from_ref(entry)).await
    }

    /// Appends consecutive entries, the first at `last_offset() + 1`, with one disk append. All or nothing:
    /// a refused batch writes nothing.
    pub async fn append_batch(&mut self, entries: &[LogEntry]) -> Result<(), BinlogError> {
        self.check_writable()?;
        let Some(first) = entries.first() else { return Ok(()) };
        for (expected, e) in (self.last_offset() + 1..).zip(entries) {
            if e.log_index != expected {
                return Err(BinlogError::OutOfOrder { expected, got: e.log_index });
            }
        }
        let mut buf = Vec::new();
        let mut lens = Vec::with_capacity(entries.len());
        for e in entries {
            let payload = e.encode_to_vec();
            if payload.len() > record::MAX_RECORD_LEN {
                return Err(BinlogError::TooLarge {
                    log_index: e.log_index,
                    bytes: payload.len(),
                    limit: record::MAX_RECORD_LEN,
                });
            }
            let rec = record::encode(&payload);
            lens.push(rec.len() as u64);
            buf.extend_from_slice(&rec);
        }
        // A skip into the snapshot must fall between segments, where recovery accepts it.
        let skips = self.last_entry().is_some_and(|(last, _)| last + 1 != first.log_index);
        let active = self.active();
        if active.bytes > 0 && (active.bytes >= self.config.max_segment_bytes || skips) {
            self.roll().await?;
        }
        let start = self.active().bytes;
        if let Err(source) = self.writer().append(&buf).await {
            self.undo_partial_append(start).await;
            self.failed_appends += 1;
            let file = self.active().path.clone();
            if self.failed_appends >= MAX_FAILED_APPENDS && self.broken.is_none() {
                return Err(self.fail(&format!("append ({} in a row)", self.failed_appends), file, source));
            }
            return Err(BinlogError::Io { file, source });
        }
        self.failed_appends = 0;
        let seg = self.segments.last_mut().expect("never empty");
        let mut pos = start;
        for (e, len) in entries.iter().zip(lens) {
            seg.note(e.log_index, e.term, pos, len);
            pos += len;
        }
        self.dirty = true;
        Ok(())
    }

    /// Makes every appended entry durable (fsync of the active segment; the others were synced when rolled).
    pub async fn sync(&mut self) -> Result<(), BinlogError> {
        self.check_writable()?;
        if !self.dirty {
            return Ok(());
        }
        if let Err(source) = self.writer().sync().await {
            let file = self.active().path.clone();
            return Err(self.fail("fsync", file, source));
        }
        self.synced = self.last_entry().map_or(0, |(index, _)| index);
        self.dirty = false;
        Ok(())
    }

    /// A cursor for reading from log index `from`. No IO: the position is found from what the binlog remembers.
    pub fn cursor_at(&self, from: u64) -> BinlogCursor {
        // Log indexes start at 1: reading "from 0" reads from the first.
        let from = from.max(1);
        BinlogCursor { next: from, at: self.locate(from) }
    }

    /// Up to `max` consecutive entries from the cursor's next index on, advancing the cursor past them. Fewer at
    /// the end of the binlog, none past `last_offset()`. [`BinlogError::Compacted`] if the next index is at or
    /// below `last_offset()` but not on disk (deleted, or only in the snapshot).
    pub async fn read_from(&self, cursor: &mut BinlogCursor, max: usize) -> Result<Vec<LogEntry>, BinlogError> {
        let mut out = Vec::new();
        if max == 0 || cursor.next > self.last_offset() {
            return Ok(out);
        }
        let compacted = || BinlogError::Compacted { dir: self.dir.clone(), requested: cursor.next };
        // Up to the floor, entries past the disk's last one are only in the snapshot.
        if self.last_entry().is_none_or(|(last, _)| cursor.next > last) {
            return Err(compacted());
        }
        // A cursor is trusted only while its segment exists and no truncation happened since it was placed.
        let fresh = cursor.at.filter(|p| {
            p.epoch == self.epoch && self.segment_of(p.file_index).is_some_and(|i| p.byte <= self.segments[i].bytes)
        });
        let pos = match fresh.or_else(|| self.locate(cursor.next)) {
            Some(pos) => pos,
            None => return Err(compacted()),
        };
        let mut si = self.segment_of(pos.file_index).expect("located above");
        let mut next = cursor.next;
        let mut resume = pos.byte;
        let seg = &self.segments[si];
        let mut reader = SegmentReader::new(&*self.disk, &seg.path, pos.byte, seg.bytes, seg.estimate(max));
        while out.len() < max {
            let step = reader.next().await.map_err(io_error(&self.segments[si].path))?;
            match step {
                Step::End => {
                    if si + 1 == self.segments.len() {
                        break;
                    }
                    si += 1;
                    resume = 0;
                    let seg = &self.segments[si];
                    reader = SegmentReader::new(&*self.disk, &seg.path, 0, seg.bytes, seg.estimate(max - out.len()));
                }
                Step::Record { pos, len, payload } => {
                    let entry = LogEntry::decode(payload).map_err(|e| BinlogError::Corrupt {
                        file: self.segments[si].path.clone(),
                        byte_offset: pos,
                        after_index: next - 1,
                        reason: format!("the checksum holds but the record is not a log entry: {e}"),
                    })?;
                    if entry.log_index > next {
                        // A skip into the snapshot: what was asked for is not here.
                        if out.is_empty() {
                            return Err(compacted());
                        }
                        break;
                    }
                    resume = pos + len;
                    // Entries before `next` are skipped: a seek lands on a checkpoint at or before it.
                    if entry.log_index == next {
                        out.push(entry);
                        next += 1;
                    }
                }
                Step::Damaged { pos, reason } => {
                    return Err(BinlogError::Corrupt {
                        file: self.segments[si].path.clone(),
                        byte_offset: pos,
                        after_index: next - 1,
                        reason,
                    });
                }
            }
        }
        cursor.next = next;
        cursor.at = Some(Position { file_index: self.segments[si].file_index, byte: resume, epoch: self.epoch });
        Ok(out)
    }

    /// Starts a new active segment unless the active one is empty, so that later appends land behind whatever
    /// the current one holds (a damaged record, which recovery tolerates only in a segment that is not the last
    /// and below the floor). The current segment is synced first, as every roll does.
    pub async fn roll_over(&mut self) -> Result<(), BinlogError> {
        self.check_writable()?;
        if self.active().bytes == 0 {
            return Ok(());
        }
        self.roll().await
    }

    /// Continues the binlog from a snapshot at `snapshot_offset`, made and published by the caller: raises the
    /// floor to it and deletes the oldest segments all of whose entries it holds (never the active one). Returns
    /// how many were deleted. `snapshot_offset` must not be beyond the last offset: a snapshot holds only what
    /// was written.
    pub async fn rebase(&mut self, snapshot_offset: u64) -> Result<usize, BinlogError> {
        assert!(
            snapshot_offset <= self.last_offset(),
            "binlog {}: a snapshot at {snapshot_offset} is beyond the last offset {}",
            self.dir,
            self.last_offset()
        );
        self.floor = self.floor.max(snapshot_offset);
        self.delete_segments_before(snapshot_offset.saturating_add(1)).await
    }

    /// Deletes the oldest segments all of whose entries are below `offset`, never the active one; returns how
    /// many. Only a prefix of the segments goes, so what is left still runs on without a gap.
    pub async fn delete_segments_before(&mut self, offset: u64) -> Result<usize, BinlogError> {
        let mut deleted = 0;
        while self.segments.len() > 1 && self.segments[0].last.is_none_or(|last| last < offset) {
            let path = self.segments[0].path.clone();
            self.disk.remove_file(&path).await.map_err(io_error(&path))?;
            self.segments.remove(0);
            deleted += 1;
        }
        if deleted > 0 {
            self.disk.sync_dir(&self.dir).await.map_err(io_error(&self.dir))?;
            tracing::debug!(dir = %self.dir, deleted, before = offset, "binlog segments deleted");
        }
        Ok(deleted)
    }

    /// Removes every entry after `offset` (a replica dropping a diverged tail): later segments are deleted, the
    /// one holding `offset` is truncated after it, and the result is synced. Afterwards `last_offset()` is
    /// `max(offset, floor)`; an `offset` at or past the last entry on disk changes nothing.
    pub async fn truncate_after(&mut self, offset: u64) -> Result<(), BinlogError> {
        self.check_writable()?;
        let Some((last, _)) = self.last_entry() else { return Ok(()) };
        if offset >= last {
            return Ok(());
        }
        // The segment that keeps the new last entry; if none does, the first is emptied and stays active.
        let keep = self.segments.iter().rposition(|s| s.first.is_some_and(|f| f <= offset)).unwrap_or(0);
        // Find the cut before changing anything, so a damaged segment fails the call with the binlog intact.
        let seg = &self.segments[keep];
        let (cut, new_last, term) = match (seg.first, seg.last) {
            (Some(_), Some(l)) if l <= offset => (seg.bytes, Some(l), seg.last_term),
            (Some(f), Some(_)) if f <= offset => {
                let (end, term) = self.end_of(keep, offset).await?;
                (end, Some(offset), term)
            }
            _ => (0, None, 0),
        };
        self.epoch += 1;
        // Newest first, so a crash part-way leaves a prefix that recovers.
        let removed = self.segments.len() - keep - 1;
        while self.segments.len() > keep + 1 {
            let path = self.segments.last().expect("more than one").path.clone();
            if let Err(source) = self.disk.remove_file(&path).await {
                return Err(self.fail("delete", path, source));
            }
            self.segments.pop();
        }
        let path = self.segments[keep].path.clone();
        if cut < self.segments[keep].bytes
            && let Err(source) = self.disk.truncate(&path, cut).await
        {
            return Err(self.fail("truncate", path, source));
        }
        // The old handle may be on a deleted file; a fresh one appends at the new end.
        let writer = match self.disk.open_append(&path).await {
            Ok(writer) => writer,
            Err(source) => return Err(self.fail("open", path, source)),
        };
        *self.writer() = writer;
        if let Err(source) = self.writer().sync().await {
            return Err(self.fail("fsync", path, source));
        }
        if removed > 0
            && let Err(source) = self.disk.sync_dir(&self.dir).await
        {
            let dir = self.dir.clone();
            return Err(self.fail("directory fsync", dir, source));
        }
        let seg = &mut self.segments[keep];
        seg.bytes = cut;
        seg.last = new_last;
        seg.last_term = term;
        seg.checkpoints.retain(|&(_, at)| at < cut);
        if new_last.is_none() {
            seg.first = None;
        }
        self.synced = self.last_entry().map_or(0, |(index, _)| index);
        self.dirty = false;
        tracing::info!(dir = %self.dir, offset, removed_segments = removed, "binlog truncated");
        Ok(())
    }

    // ---- internals ----------------------------------------------------------------------------------------

    fn active(&self) -> &Segment {
        self.segments.last().expect("never empty")
    }

    fn writer(&mut self) -> &mut Box<dyn AppendFile> {
        self.writer.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    /// Index and term of the last entry on disk.
    fn last_entry(&self) -> Option<(u64, u64)> {
        self.segments.iter().rev().find_map(|s| s.last.map(|last| (last, s.last_term)))
    }

    fn segment_of(&self, file_index: u64) -> Option<usize> {
        self.segments.binary_search_by_key(&file_index, |s| s.file_index).ok()
    }

    /// Where entry `index` can be read from, if the binlog holds it.
    fn locate(&self, index: u64) -> Option<Position> {
        let seg = self.segments.iter().find(|s| s.contains(index))?;
        Some(Position { file_index: seg.file_index, byte: seg.seek(index), epoch: self.epoch })
    }

    /// End byte and term of entry `index` in segment `si`, which holds it.
    async fn end_of(&self, si: usize, index: u64) -> Result<(u64, u64), BinlogError> {
        let seg = &self.segments[si];
        let mut reader = SegmentReader::new(&*self.disk, &seg.path, seg.seek(index), seg.bytes, scan::MIN_CHUNK);
        loop {
            let damaged = |pos, reason| BinlogError::Corrupt {
                file: seg.path.clone(),
                byte_offset: pos,
                after_index: index.saturating_sub(1),
                reason,
            };
            match reader.next().await.map_err(io_error(&seg.path))? {
                Step::Record { pos, len, payload } => {
                    let entry = LogEntry::decode(payload).map_err(|e| {
                        damaged(pos, format!("the checksum holds but the record is not a log entry: {e}"))
                    })?;
                    if entry.log_index == index {
                        return Ok((pos + len, entry.term));
                    }
                }
                Step::End => return Err(damaged(seg.bytes, format!("entry {index} is missing from the segment"))),
                Step::Damaged { pos, reason } => return Err(damaged(pos, reason)),
            }
        }
    }

    /// Rolls to a new segment: the active one is synced first, so every segment but the last is durable.
    async fn roll(&mut self) -> Result<(), BinlogError> {
        self.sync().await?;
        let next = Segment::new(&self.dir, self.active().file_index + 1);
        let writer = self.disk.open_append(&next.path).await.map_err(io_error(&next.path))?;
        if !writer.is_empty() {
            let source = io::Error::new(io::ErrorKind::AlreadyExists, "the next segment exists and is not empty");
            return Err(BinlogError::Io { file: next.path, source });
        }
        *self.writer() = writer;
        self.segments.push(next);
        // The new file's directory entry must be durable before a sync of its data can claim durability.
        if let Err(source) = self.disk.sync_dir(&self.dir).await {
            let dir = self.dir.clone();
            return Err(self.fail("directory fsync", dir, source));
        }
        Ok(())
    }

    /// After a failed append: cut whatever part of the batch reached the file, or give up writing.
    async fn undo_partial_append(&mut self, start: u64) {
        let path = self.active().path.clone();
        if self.disk.file_len(&path).await.is_ok_and(|len| len == start) {
            return;
        }
        if let Err(e) = self.disk.truncate(&path, start).await {
            self.broken = Some(format!("an append to {path} failed part-way and could not be cut back: {e}"));
        }
    }

    /// Marks the binlog broken after a failed durability step and returns the error.
    fn fail(&mut self, what: &str, file: String, source: io::Error) -> BinlogError {
        tracing::error!(dir = %self.dir, file = %file, error = %source, "binlog {what} failed; writes are refused");
        self.broken = Some(format!("{what} of {file} failed: {source}"));
        BinlogError::Io { file, source }
    }

    /// Why the binlog refuses writes until it is reopened, if it does.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    fn check_writable(&self) -> Result<(), BinlogError> {
        match &self.broken {
            Some(cause) => Err(BinlogError::Broken { dir: self.dir.clone(), cause: cause.clone() }),
            None => Ok(()),
        }
    }
}
