//! Binlog tests: most drive the async code with `block_on` over a [`SimDisk`], which needs no runtime; the
//! ones with timers are `#[tokio::test]` (madsim tests in the sim build).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::executor::block_on;
use proptest::prelude::*;

use super::*;
use crate::proto::tablet::Dimension;
use crate::storage::{RealDisk, SimDisk};

const DIR: &str = "1_0/binlog";

fn entry(index: u64, term: u64) -> LogEntry {
    LogEntry {
        term,
        log_index: index,
        method_type: 0,
        dimensions: vec![Dimension { idx: 0, key: format!("key-{}", index % 7) }],
        ts: 1_000 + index,
        value: Bytes::from(format!("row-{index}-").repeat(1 + (index % 5) as usize)),
        // Some entries carry an idempotent put's request id: it must survive the round trip too.
        request_id: if index.is_multiple_of(3) { format!("import:1:{index}") } else { String::new() },
    }
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<LogEntry> {
    range.map(|i| entry(i, term)).collect()
}

/// A machine's disk and a tablet's view of it.
fn sim() -> (SimDisk, Arc<dyn Disk>) {
    let machine = SimDisk::new();
    let disk = machine.scoped("tablet-1").unwrap();
    (machine, Arc::new(disk))
}

fn config(max_segment_bytes: u64) -> BinlogConfig {
    BinlogConfig { max_segment_bytes }
}

async fn open(disk: &Arc<dyn Disk>, max: u64, floor: u64) -> Result<(Binlog, RecoveryReport), BinlogError> {
    Binlog::open(disk.clone(), DIR, config(max), floor).await
}

/// Everything from `from` on, read in batches of `batch`.
async fn read_all(b: &Binlog, from: u64, batch: usize) -> Vec<LogEntry> {
    let mut cursor = b.cursor_at(from);
    let mut out = Vec::new();
    loop {
        let got = b.read_from(&mut cursor, batch).await.unwrap();
        assert!(got.len() <= batch);
        if got.is_empty() {
            return out;
        }
        out.extend(got);
    }
}

fn path_of(name: &str) -> String {
    format!("{DIR}/{name}")
}

fn last_segment_path(b: &Binlog) -> String {
    path_of(&b.segments().last().unwrap().name)
}

/// Inverts one byte of a file in place.
async fn flip(disk: &Arc<dyn Disk>, path: &str, at: u64) {
    let mut data = disk.read(path).await.unwrap();
    data[at as usize] ^= 0xff;
    disk.write_file(path, &data).await.unwrap();
}

/// Record boundaries of a segment file: (start, length) of each record.
fn record_extents(data: &[u8]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let record::Decoded::Record { len, .. } = record::decode(&data[at..]) {
        out.push((at as u64, len as u64));
        at += len;
    }
    assert_eq!(at, data.len(), "the file holds whole records only");
    out
}

/// Collects what `tracing` prints (WARN and up) while `f` runs on this thread.
///
/// One global subscriber writes each thread's events to that thread's buffer. A scoped (`with_default`)
/// subscriber is not enough: tracing caches each callsite's interest globally, and another test thread that hits
/// the callsite first, with no subscriber, can have it cached as disabled (a flake seen in CI).
fn capture_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    use std::cell::RefCell;
    thread_local! {
        static CAPTURED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    struct ThreadBuf;
    impl io::Write for ThreadBuf {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            CAPTURED.with(|c| c.borrow_mut().extend_from_slice(data));
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(|| ThreadBuf)
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber in the unit tests");
    });
    CAPTURED.with(|c| c.borrow_mut().clear());
    let out = f();
    let logs = CAPTURED.with(|c| String::from_utf8(std::mem::take(&mut *c.borrow_mut())).unwrap());
    (out, logs)
}

#[test]
fn segment_names() {
    assert_eq!(segment_name(0), "00000000.log");
    assert_eq!(segment_name(123_456_789), "123456789.log");
    assert_eq!(parse_segment_name("00000007.log"), Some(7));
    assert_eq!(parse_segment_name("123456789.log"), Some(123_456_789));
    for other in ["7.log", "0000007.log", "00000007.log.tmp", "0000000a.log", "+0000007.log", "MANIFEST", ".log"] {
        assert_eq!(parse_segment_name(other), None, "{other}");
    }
}

#[test]
fn binlog_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Binlog>();
    check::<BinlogCursor>();
}

#[test]
fn new_binlog_is_empty() {
    let (_, disk) = sim();
    block_on(async {
        let (b, report) = open(&disk, 1 << 20, 0).await.unwrap();
        assert_eq!(report, RecoveryReport { segments: 1, ..Default::default() });
        assert_eq!((b.last_offset(), b.last_term(), b.synced_offset(), b.first_index()), (0, 0, 0, None));
        assert_eq!(
            b.segments(),
            vec![SegmentInfo {
                file_index: 0,
                name: "00000000.log".into(),
                first_index: None,
                last_index: None,
                bytes: 0
            }]
        );
        assert!(disk.exists(&path_of("00000000.log")).await.unwrap());
        assert!(b.read_from(&mut b.cursor_at(1), 10).await.unwrap().is_empty());
    });
}

#[test]
fn append_and_reopen_across_segments() {
    let (_, disk) = sim();
    block_on(async {
        let all = entries(1..=60, 3);
        let (mut b, _) = open(&disk, 300, 0).await.unwrap();
        for e in &all[..20] {
            b.append(e).await.unwrap();
        }
        b.append_batch(&all[20..45]).await.unwrap();
        b.append_batch(&[]).await.unwrap();
        for e in &all[45..] {
            b.append(e).await.unwrap();
        }
        assert_eq!((b.last_offset(), b.last_term()), (60, 3));
        let segs = b.segments();
        assert!(segs.len() >= 4, "{segs:?}");
        for (i, s) in segs.iter().enumerate() {
            assert_eq!(s.file_index, i as u64);
            assert_eq!(s.name, format!("{i:08}.log"));
            assert_eq!(disk.file_len(&path_of(&s.name)).await.unwrap(), s.bytes);
            if i + 1 < segs.len() {
                assert!(s.bytes >= 300, "rolled early: {s:?}");
                assert_eq!(s.last_index.unwrap() + 1, segs[i + 1].first_index.unwrap());
            }
        }
        assert_eq!(read_all(&b, 1, 7).await, all);
        drop(b);

        let (b, report) = open(&disk, 300, 0).await.unwrap();
        assert_eq!(report, RecoveryReport { segments: segs.len(), entries: 60, ..Default::default() });
        assert_eq!(b.segments(), segs);
        assert_eq!((b.last_offset(), b.last_term(), b.synced_offset(), b.first_index()), (60, 3, 60, Some(1)));
        assert_eq!(read_all(&b, 1, 1000).await, all);
        assert_eq!(read_all(&b, 33, 4).await, all[32..]);
    });
}

#[test]
fn appends_are_refused_out_of_order_and_write_nothing() {
    let (_, disk) = sim();
    block_on(async {
        let (mut b, _) = open(&disk, 1 << 20, 0).await.unwrap();
        let refused = b.append(&entry(2, 1)).await.unwrap_err();
        assert!(matches!(refused, BinlogError::OutOfOrder { expected: 1, got: 2 }), "{refused}");
        b.append(&entry(1, 1)).await.unwrap();
        let len = disk.file_len(&path_of("00000000.log")).await.unwrap();
        for bad in [entry(1, 1), entry(3, 1), entry(0, 1)] {
            assert!(matches!(b.append(&bad).await, Err(BinlogError::OutOfOrder { expected: 2, .. })));
        }
        let gappy = vec![entry(2, 1), entry(3, 1), entry(5, 1)];
        assert!(matches!(b.append_batch(&gappy).await, Err(BinlogError::OutOfOrder { expected: 4, got: 5 })));
        assert_eq!(disk.file_len(&path_of("00000000.log")).await.unwrap(), len);
        assert_eq!(b.last_offset(), 1);
        b.append_batch(&entries(2..=4, 1)).await.unwrap();
        assert_eq!(b.last_offset(), 4);
    });
}

#[test]
fn floor_continues_a_snapshot() {
    let (_, disk) = sim();
    block_on(async {
        // An empty binlog after a snapshot at 100.
        let (mut b, _) = open(&disk, 1 << 20, 100).await.unwrap();
        assert_eq!((b.last_offset(), b.last_term(), b.synced_offset()), (100, 0, 100));
        assert!(matches!(b.append(&entry(1, 1)).await, Err(BinlogError::OutOfOrder { expected: 101, got: 1 })));
        b.append_batch(&entries(101..=105, 2)).await.unwrap();
        assert!(b.read_from(&mut b.cursor_at(50), 10).await.is_err_and(|e| matches!(e, BinlogError::Compacted { .. })));
        drop(b);

        let (b, _) = open(&disk, 1 << 20, 100).await.unwrap();
        assert_eq!((b.last_offset(), b.last_term(), b.first_index()), (105, 2, Some(101)));
        assert_eq!(read_all(&b, 101, 2).await, entries(101..=105, 2));
        drop(b);
        // Without the snapshot the entries up to 100 are missing: refused, not silently accepted.
        let err = open(&disk, 1 << 20, 0).await.unwrap_err();
        assert!(matches!(&err, BinlogError::Gap { expected: 1, found: 101, byte_offset: 0, .. }), "{err}");
        assert!(err.to_string().contains("00000000.log"), "{err}");
        // A floor below the binlog's end: the binlog's own last entry wins.
        let (b, _) = open(&disk, 1 << 20, 103).await.unwrap();
        assert_eq!((b.last_offset(), b.last_term()), (105, 2));
    });
}

#[test]
fn a_floor_past_the_binlog_starts_a_new_segment() {
    let (_, disk) = sim();
    block_on(async {
        let (mut b, _) = open(&disk, 1 << 20, 0).await.unwrap();
        b.append_batch(&entries(1..=5, 1)).await.unwrap();
        drop(b);
        // A snapshot at 20 arrived from elsewhere; the old entries stay but the binlog continues at 21.
        let (mut b, _) = open(&disk, 1 << 20, 20).await.unwrap();
        assert_eq!((b.last_offset(), b.last_term()), (20, 0));
        // Entries 6..=20 are only in the snapshot; 21 does not exist yet.
        assert!(matches!(
            b.read_from(&mut b.cursor_at(10), 5).await,
            Err(BinlogError::Compacted { requested: 10, .. })
        ));
        assert!(b.read_from(&mut b.cursor_at(21), 5).await.unwrap().is_empty());
        assert_eq!(b.read_from(&mut b.cursor_at(0), 2).await.unwrap(), entries(1..=2, 1));
        b.append(&entry(21, 4)).await.unwrap();
        b.append(&entry(22, 4)).await.unwrap();
        let segs = b.segments();
        assert_eq!(segs.len(), 2);
        assert_eq!((segs[1].first_index, segs[1].last_index), (Some(21), Some(22)));
        // The skip is not served: 3..=5 are read, then the reader is told to get a snapshot.
        let mut cursor = b.cursor_at(3);
        assert_eq!(b.read_from(&mut cursor, 10).await.unwrap(), entries(3..=5, 1));
        assert!(matches!(b.read_from(&mut cursor, 10).await, Err(BinlogError::Compacted { requested: 6, .. })));
        assert_eq!(read_all(&b, 21, 10).await, entries(21..=22, 4));
        drop(b);

        let (b, _) = open(&disk, 1 << 20, 20).await.unwrap();
        assert_eq!((b.last_offset(), b.last_term()), (22, 4));
        drop(b);
        let err = open(&disk, 1 << 20, 10).await.unwrap_err();
        assert!(matches!(err, BinlogError::Gap { expected: 11, found: 21, .. }), "{err}");
    });
}

#[test]
fn cursor_reads_across_segments_without_rescanning() {
    /// A disk that counts the bytes read through it.
    struct Counting {
        inner: Arc<dyn Disk>,
        read: AtomicU64,
    }
    #[async_trait::async_trait]
    impl Disk for Counting {
        async fn create_dir_all(&self, p: &str) -> io::Result<()> {
            self.inner.create_dir_all(p).await
        }
        async fn list_dir(&self, p: &str) -> io::Result<Vec<String>> {
            self.inner.list_dir(p).await
        }
        async fn exists(&self, p: &str) -> io::Result<bool> {
            self.inner.exists(p).await
        }
        async fn file_len(&self, p: &str) -> io::Result<u64> {
            self.inner.file_len(p).await
        }
        async fn read(&self, p: &str) -> io::Result<Vec<u8>> {
            let data = self.inner.read(p).await?;
            self.read.fetch_add(data.len() as u64, Ordering::Relaxed);
            Ok(data)
        }
        async fn read_at(&self, p: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
            let data = self.inner.read_at(p, offset, len).await?;
            self.read.fetch_add(data.len() as u64, Ordering::Relaxed);
            Ok(data)
        }
        async fn write_file(&self, p: &str, data: &[u8]) -> io::Result<()> {
            self.inner.write_file(p, data).await
        }
        async fn open_append(&self, p: &str) -> io::Result<Box<dyn AppendFile>> {
            self.inner.open_append(p).await
        }
        async fn sync_file(&self, p: &str) -> io::Result<()> {
            self.inner.sync_file(p).await
        }
        async fn sync_dir(&self, p: &str) -> io::Result<()> {
            self.inner.sync_dir(p).await
        }
        async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
            self.inner.rename(from, to).await
        }
        async fn remove_file(&self, p: &str) -> io::Result<()> {
            self.inner.remove_file(p).await
        }
        async fn remove_dir_all(&self, p: &str) -> io::Result<()> {
            self.inner.remove_dir_all(p).await
        }
        async fn truncate(&self, p: &str, len: u64) -> io::Result<()> {
            self.inner.truncate(p, len).await
        }
    }

    let (_, inner) = sim();
    let counting = Arc::new(Counting { inner, read: AtomicU64::new(0) });
    let disk: Arc<dyn Disk> = counting.clone();
    block_on(async {
        let all = entries(1..=3000, 1);
        let (mut b, _) = open(&disk, 64 << 10, 0).await.unwrap();
        for chunk in all.chunks(100) {
            b.append_batch(chunk).await.unwrap();
        }
        let total: u64 = b.segments().iter().map(|s| s.bytes).sum();
        assert!(b.segments().len() >= 3);
        counting.read.store(0, Ordering::Relaxed);
        let mut cursor = b.cursor_at(1);
        let mut got = Vec::new();
        let mut calls = 0u64;
        loop {
            let batch = b.read_from(&mut cursor, 10).await.unwrap();
            calls += 1;
            if batch.is_empty() {
                break;
            }
            assert_eq!(cursor.next_index(), batch.last().unwrap().log_index + 1);
            got.extend(batch);
        }
        assert_eq!(got, all);
        let read = counting.read.load(Ordering::Relaxed);
        // Each byte about once, plus at most one small read-ahead per call; a rescan would be quadratic.
        assert!(read <= 2 * total + calls * scan::MIN_CHUNK, "read {read} bytes of {total} in {calls} calls");

        // A cursor placed mid-segment starts near its entry, not at the segment's start.
        counting.read.store(0, Ordering::Relaxed);
        let mut cursor = b.cursor_at(2500);
        assert_eq!(b.read_from(&mut cursor, 3).await.unwrap(), all[2499..2502]);
        // Reads double from a small first one, so skipping up to a checkpoint's spacing costs at most twice that.
        assert!(counting.read.load(Ordering::Relaxed) <= 2 * (CHECKPOINT_EVERY + scan::MIN_CHUNK));
    });
}

#[test]
fn readers_see_new_appends_and_max_zero_reads_nothing() {
    let (_, disk) = sim();
    block_on(async {
        let (mut b, _) = open(&disk, 200, 0).await.unwrap();
        let mut cursor = b.cursor_at(1);
        assert!(b.read_from(&mut cursor, 5).await.unwrap().is_empty());
        b.append_batch(&entries(1..=3, 1)).await.unwrap();
        assert!(b.read_from(&mut cursor, 0).await.unwrap().is_empty());
        assert_eq!(b.read_from(&mut cursor, 5).await.unwrap(), entries(1..=3, 1));
        assert!(b.read_from(&mut cursor, 5).await.unwrap().is_empty());
        for i in 4..=30 {
            b.append(&entry(i, 1)).await.unwrap();
            assert_eq!(b.read_from(&mut cursor, 5).await.unwrap(), vec![entry(i, 1)]);
        }
        assert!(b.segments().len() > 3);
        let mut far = b.cursor_at(31);
        assert!(b.read_from(&mut far, 5).await.unwrap().is_empty());
        assert_eq!(far.next_index(), 31);
    });
}

#[test]
fn delete_segments_before_keeps_the_active_one_and_cursors_notice() {
    let (_, disk) = sim();
    block_on(async {
        let all = entries(1..=40, 1);
        let (mut b, _) = open(&disk, 200, 0).await.unwrap();
        b.append_batch(&all[..10]).await.unwrap();
        for e in &all[10..] {
            b.append(e).await.unwrap();
        }
        let segs = b.segments();
        assert!(segs.len() >= 4, "{segs:?}");
        let mut early = b.cursor_at(2);
        assert_eq!(b.read_from(&mut early, 1).await.unwrap(), vec![entry(2, 1)]);
        let keep_from = segs[2].first_index.unwrap() + 1;
        let mut late = b.cursor_at(keep_from);

        // Only the segments wholly below the offset go.
        assert_eq!(b.delete_segments_before(keep_from).await.unwrap(), 2);
        assert_eq!(b.segments(), segs[2..]);
        assert!(!disk.exists(&path_of(&segs[0].name)).await.unwrap());
        assert_eq!(b.first_index(), segs[2].first_index);
        assert!(matches!(b.read_from(&mut early, 5).await, Err(BinlogError::Compacted { requested: 3, .. })));
        assert_eq!(b.read_from(&mut late, 3).await.unwrap(), all[keep_from as usize - 1..keep_from as usize + 2]);
        assert_eq!(read_all(&b, keep_from - 1, 6).await, all[keep_from as usize - 2..]);

        // Never the active segment, even when everything is below the offset.
        let n = b.segments().len();
        assert_eq!(b.delete_segments_before(u64::MAX).await.unwrap(), n - 1);
        assert_eq!(b.segments().len(), 1);
        assert_eq!(b.last_offset(), 40);
        let first = b.first_index().unwrap();
        drop(b);

        // Recovery needs the snapshot that covers the deleted entries.
        assert!(matches!(open(&disk, 200, 0).await, Err(BinlogError::Gap { expected: 1, .. })));
        let (b, report) = open(&disk, 200, first - 1).await.unwrap();
        assert_eq!(report.entries, 40 - first + 1);
        assert_eq!(read_all(&b, first, 3).await, all[first as usize - 1..]);
    });
}

#[test]
fn truncate_after_drops_the_tail() {
    let (_, disk) = sim();
    block_on(async {
        let (mut b, _) = open(&disk, 200, 0).await.unwrap();
        for e in entries(1..=40, 1) {
            b.append(&e).await.unwrap();
        }
        let segs = b.segments();
        let mid = &segs[1];
        let offset = mid.first_index.unwrap() + 1;
        assert!(offset < mid.last_index.unwrap());
        let mut stale = b.cursor_at(offset + 1);
        assert_eq!(b.read_from(&mut stale, 1).await.unwrap(), vec![entry(offset + 1, 1)]);

        b.truncate_after(offset).await.unwrap();
        assert_eq!((b.last_offset(), b.last_term(), b.synced_offset()), (offset, 1, offset));
        assert_eq!(b.segments().len(), 2);
        assert_eq!(b.segments()[1].last_index, Some(offset));
        assert!(!disk.exists(&path_of(&segs[2].name)).await.unwrap());
        assert_eq!(disk.file_len(&path_of(&mid.name)).await.unwrap(), b.segments()[1].bytes);
        // A diverged history continues in a new term; the stale cursor is sought again and sees it.
        b.append_batch(&entries(offset + 1..=offset + 10, 2)).await.unwrap();
        assert_eq!(b.read_from(&mut stale, 2).await.unwrap(), entries(offset + 2..=offset + 3, 2));
        let expected: Vec<_> = entries(1..=offset, 1).into_iter().chain(entries(offset + 1..=offset + 10, 2)).collect();
        assert_eq!(read_all(&b, 1, 4).await, expected);

        // At a segment boundary: the segment stays whole and becomes active.
        let boundary = b.segments()[0].last_index.unwrap();
        b.truncate_after(boundary).await.unwrap();
        assert_eq!(b.segments().len(), 1);
        assert_eq!(b.last_offset(), boundary);
        // Past the end: nothing changes.
        b.truncate_after(1000).await.unwrap();
        assert_eq!(b.last_offset(), boundary);
        drop(b);
        let (mut b, report) = open(&disk, 200, 0).await.unwrap();
        assert_eq!((report.entries, report.cut_bytes, b.last_offset()), (boundary, 0, boundary));
        assert_eq!(read_all(&b, 1, 100).await, entries(1..=boundary, 1));

        // To nothing.
        b.truncate_after(0).await.unwrap();
        assert_eq!((b.last_offset(), b.last_term(), b.first_index()), (0, 0, None));
        b.append(&entry(1, 5)).await.unwrap();
        drop(b);
        let (b, _) = open(&disk, 200, 0).await.unwrap();
        assert_eq!(read_all(&b, 1, 10).await, vec![entry(1, 5)]);
    });
}

#[test]
fn truncate_below_the_floor_keeps_the_floor() {
    let (_, disk) = sim();
    block_on(async {
        let (mut b, _) = open(&disk, 1 << 20, 0).await.unwrap();
        b.append_batch(&entries(1..=10, 1)).await.unwrap();
        drop(b);
        let (mut b, _) = open(&disk, 1 << 20, 6).await.unwrap();
        b.truncate_after(4).await.unwrap();
        assert_eq!((b.last_offset(), b.last_term()), (6, 0));
        b.append(&entry(7, 2)).await.unwrap();
        drop(b);
        let (b, _) = open(&disk, 1 << 20, 6).await.unwrap();
        assert_eq!(b.last_offset(), 7);
        assert_eq!(read_all(&b, 7, 10).await, vec![entry(7, 2)]);
    });
}

#[test]
fn torn_tail_is_cut_with_a_warning() {
    let (machine, disk) = sim();
    let ((), logs) = capture_logs(|| {
        block_on(async {
            let (mut b, _) = open(&disk, 1 << 20, 0).await.unwrap();
            b.append_batch(&entries(1..=10, 1)).await.unwrap();
            let path = last_segment_path(&b);
            let len = b.segments()[0].bytes;
            let last_start = len - record::encode(&entry(10, 1).encode_to_vec()).len() as u64;
            drop(b);
            machine.tear_tail(&format!("tablet-1/{path}"), 3).unwrap();

            let (b, report) = open(&disk, 1 << 20, 0).await.unwrap();
            assert_eq!(
                report,
                RecoveryReport {
                    segments: 1,
                    entries: 9,
                    cut_bytes: len - 3 - last_start,
                    cut_from: Some((path.clone(), last_start)),
                    skipped_damage: vec![],
                }
            );
            assert_eq!(b.last_offset(), 9);
            assert_eq!(disk.file_len(&path).await.unwrap(), last_start);
            assert_eq!(read_all(&b, 1, 4).await, entries(1..=9, 1));
            // The cut was synced: a power loss now keeps the nine.
            drop(b);
            machine.power_loss();
            let (b, report) = open(&disk, 1 << 20, 0).await.unwrap();
            assert_eq!((b.last_offset(), report.cut_bytes), (9, 0));
        })
    });
    assert!(logs.contains("WARN") && logs.contains("cut a damaged final record"), "{logs}");
    assert!(logs.contains("1_0/binlog/00000000.log") && logs.contains("cut_bytes"), "{logs}");
}

#[test]
fn a_torn_header_and_a_lone_torn_record_are_cut() {
    let (machine, disk) = sim();
    block_on(async {
        let (mut b, _) = open(&disk, 1 << 20, 0).await.unwrap();
        b.append(&entry(1, 1)).await.unwrap();
        let one = b.segments()[0].bytes;
        b.append(&entry(2, 1)).await.unwrap();
        let two = b.segments()[0].bytes;
        drop(b);
        let path = format!("tablet-1/{}", path_of("00000000.log"));
        // Leave 5 bytes of the second record: less than its header.
        machine.tear_tail(&path, two - one - 5).unwrap();
        let (b, report) = open(&disk, 1 << 20, 0).await.unwrap();
        assert_eq!((b.last_offset(), report.cut_bytes), (1, 5));
        drop(b);
        // Now tear the only record.
        machine.tear_tail(&path, 1).unwrap();
        let (b, report) = open(&disk, 1 << 20, 0).await.unwrap();
        assert_eq!((b.last_offset(), report.cut_bytes, report.entries), (0, one - 1, 0));
        assert_eq!(b.segments()[0].bytes, 0);
    });
}

#[test]
fn corrupt_final_record_is_cut() {
    let (machine, disk) = sim();
    block_on(async {
        let (mut b, _) = open(&disk, 300, 0).await.unwrap();
        b.append_batch(&entries(1..=10, 1)).await.unwrap();
        b.append_batch(&entries(11..=12, 1)).await.unwrap();
        b.sync().await.unwrap();
        let segs = b.segments();
        assert_eq!(segs.len(), 2);
        let path = last_segment_path(&b);
        drop(b);
        machine.corrupt_tail(&format!("tablet-1/{path}"), 4).unwrap();
        let (b, report) = open(&disk, 300, 0).await.unwrap();
        assert_eq!(b.last_offset(), 11);
        let cut_at = report.cut_from.clone().unwrap();
        assert_eq!(cut_at.0, path);
        assert_eq!(cut_at.1 + report.cut_bytes, segs[1].bytes);
        assert_eq!(read_all(&b, 1, 5).await, entries(1..=11, 1));
    });
}

#[test]
fn middle_corruption_is_an_error_and_changes_nothing() {
    let (_, disk) = sim();
    block_on(async {
        let (mut b, _) = open(&disk, 1 << 20, 0).await.unwrap();
        b.append_batch(&entries(1..=10, 1)).await.unwrap();
        let path = last_segment_path(&b);
        drop(b);
        let data = disk.read(&path).await.unwrap();
        let extents = record_extents(&data);
        let (start, _) = extents[4];
        flip(&disk, &path, start + 12).await;
        let damaged = disk.read(&path).await.unwrap();

        let err = open(&disk, 1 << 20, 0).await.unwrap_err();
        match &err {
            BinlogError::Corrupt { file, byte_offset, after_index, reason } => {
                assert_eq!((file.as_str(), *byte_offset, *after_index), (path.as_str(), start, 4));
                assert!(reason.contains("intact record"), "{reason}");
            }
            other => panic!("unexpected {other}"),
        }
        let text = err.to_string();
        assert!(text.contains("00000000.log") && text.contains(&format!("byte {start}")), "{text}");
        assert_eq!(disk.read(&path).await.unwrap(), damaged, "a refused recovery must not touch the file");
    });
}

#[test]
fn damage_in_an_earlier_segment_is_an_error_even_at_its_end() {
    let (_, disk) = sim();
    block_on(async {
        let (mut b, _) = open(&disk, 200, 0).await.unwrap();
        for e in entries(1..=20, 1) {
            b.append(&e).await.unwrap();
        }
        let first = b.segments()[0].clone();
        drop(b);
        let path = path_of(&first.name);
        flip(&disk, &path, first.bytes - 1).await;
        let err = open(&disk, 200, 0).await.unwrap_err();
        assert!(
            matches!(&err, BinlogError::Corrupt { file, after_index, .. } if *file == path && *after_index == first.last_index.unwrap() - 1),
            "{err}"
        );
        assert!(err.to_string().contains("not the last"), "{err}");
        // A torn end of a segment that is not the last is refused as well.
        flip(&disk, &path, first.bytes - 1).await;
        disk.truncate(&path, first.bytes - 2).await.unwrap();
        assert!(matches!(open(&disk, 200, 0).await, Err(BinlogError::Corrupt { .. })));
    });
}

#[test]
fn a_record_that_is_not_a_log_entry_is_an_error_even_at_the_end() {
    let (_, disk) = sim();
    block_on(async {
        let (mut b, _) = open(&disk, 1 << 20, 0).await.unwrap();
        b.append_batch(&entries(1..=3, 1)).await.unwrap();
        let path = last_segment_path(&b);
        let len = b.segments()[0].bytes;
        drop(b);
        let mut f = disk.open_append(&path).await.unwrap();
        f.append(&record::encode(&[0xff, 0xff, 0xff])).await.unwrap();
        drop(f);
        let err = open(&disk, 1 << 20, 0).await.unwrap_err();
        assert!(
            matches!(&err, BinlogError::Corrupt { byte_offset, after_index: 3, .. } if *byte_offset == len),
            "{err}"
        );
        assert!(err.to_string().contains("not a log entry"), "{err}");
    });
}

#[test]
fn out_of_order_indexes_on_disk_are_an_error() {
    let (_, disk) = sim();
    block_on(async {
        let (b, _) = open(&disk, 1 << 20, 0).await.unwrap();
        let path = last_segment_path(&b);
        drop(b);
        let mut bytes = Vec::new();
        for i in [1, 2, 4] {
            bytes.extend(record::encode(&entry(i, 1).encode_to_vec()));
        }
        disk.write_file(&path, &bytes).await.unwrap();
        let err = open(&disk, 1 << 20, 0).await.unwrap_err();
        assert!(matches!(err, BinlogError::Gap { expected: 3, found: 4, .. }), "{err}");
        // A skip inside a segment is refused even into the snapshot: the writer only skips at a new segment.
        assert!(matches!(open(&disk, 1 << 20, 10).await, Err(BinlogError::Gap { expected: 3, found: 4, .. })));
        let mut back = Vec::new();
        for i in [1, 2, 2] {
            back.extend(record::encode(&entry(i, 1).encode_to_vec()));
        }
        disk.write_file(&path, &back).await.unwrap();
        assert!(matches!(open(&disk, 1 << 20, 0).await, Err(BinlogError::Gap { expected: 3, found: 2, .. })));
    });
}

#[test]
fn empty_last_segment_and_stray_files_are_fine() {
    let (_, disk) = sim();
    block_on(async {
        let (mut b, _) = open(&disk, 1 << 20, 0).await.unwrap();
        b.append_batch(&entries(1..=3, 1)).await.unwrap();
        drop(b);
        // A roll that crashed right after creating the next segment, and files that are not segments.
        disk.write_file(&path_of("00000001.log"), b"").await.unwrap();
        disk.write_file(&path_of("notes.txt"), b"hello").await.unwrap();
        let (mut b, report) = open(&disk, 1 << 20, 0).await.unwrap();
        assert_eq!((report.segments, report.entries, b.last_offset()), (2, 3, 3));
        b.append(&entry(4, 1)).await.unwrap();
        assert_eq!(b.segments()[1].last_index, Some(4));
        drop(b);
        let (b, _) = open(&disk, 1 << 20, 0).await.unwrap();
        assert_eq!(read_all(&b, 1, 10).await, entries(1..=4, 1));
    });
}

#[test]
fn power_loss_keeps_exactly_the_synced_prefix() {
    let (machine, disk) = sim();
    block_on(async {
        let (mut b, _) = open(&disk, 400, 0).await.unwrap();
        b.append_batch(&entries(1..=12, 1)).await.unwrap();
        assert_eq!(b.synced_offset(), 0);
        b.sync().await.unwrap();
        assert_eq!(b.synced_offset(), 12);
        for e in entries(13..=40, 1) {
            b.append(&e).await.unwrap();
        }
        // Rolls synced the segments they closed, the active one is not synced.
        let synced = b.synced_offset();
        assert!(synced > 12 && synced < 40, "{synced}");
        assert_eq!(Some(synced + 1), b.segments().last().unwrap().first_index);
        drop(b);
        machine.power_loss();
        let (b, report) = open(&disk, 400, 0).await.unwrap();
        assert_eq!((b.last_offset(), report.entries, report.cut_bytes), (synced, synced, 0));
        assert_eq!(read_all(&b, 1, 9).await, entries(1..=synced, 1));
    });
}

#[test]
fn a_process_crash_keeps_everything_and_reopening_makes_it_durable() {
    let (machine, disk) = sim();
    block_on(async {
        let (mut b, _) = open(&disk, 1 << 20, 0).await.unwrap();
        b.append_batch(&entries(1..=5, 1)).await.unwrap();
        drop(b); // the process dies without a sync: the page cache keeps the entries
        let (b, _) = open(&disk, 1 << 20, 0).await.unwrap();
        assert_eq!((b.last_offset(), b.synced_offset()), (5, 5));
        drop(b);
        machine.power_loss();
        let (b, _) = open(&disk, 1 << 20, 0).await.unwrap();
        assert_eq!(b.last_offset(), 5);
    });
}

#[test]
fn a_failed_append_changes_nothing() {
    let (machine, disk) = sim();
    block_on(async {
        let (mut b, _) = open(&disk, 1 << 20, 0).await.unwrap();
        b.append(&entry(1, 1)).await.unwrap();
        machine.set_write_error(true);
        assert!(matches!(b.append(&entry(2, 1)).await, Err(BinlogError::Io { .. })));
        assert_eq!(b.last_offset(), 1);
        machine.clear_faults();
        b.append(&entry(2, 1)).await.unwrap();
        b.sync().await.unwrap();
        drop(b);
        let (b, _) = open(&disk, 1 << 20, 0).await.unwrap();
        assert_eq!(read_all(&b, 1, 10).await, entries(1..=2, 1));
    });
}

/// One failed append is a passing error; three in a row (a disk that refuses every write) break the binlog, and
/// a success in between resets the count.
#[test]
fn appends_failing_in_a_row_break_the_binlog() {
    let (machine, disk) = sim();
    block_on(async {
        let (mut b, _) = open(&disk, 1 << 20, 0).await.unwrap();
        b.append(&entry(1, 1)).await.unwrap();
        machine.set_write_error(true);
        for _ in 0..2 {
            assert!(matches!(b.append(&entry(2, 1)).await, Err(BinlogError::Io { .. })));
        }
        assert_eq!(b.broken(), None, "two failures are no failing disk yet");
        machine.clear_faults();
        b.append(&entry(2, 1)).await.unwrap();
        machine.set_write_error(true);
        for _ in 0..2 {
            assert!(matches!(b.append(&entry(3, 1)).await, Err(BinlogError::Io { .. })));
        }
        assert_eq!(b.broken(), None, "the success in between reset the count");
        assert!(matches!(b.append(&entry(3, 1)).await, Err(BinlogError::Io { .. })));
        assert!(b.broken().is_some_and(|c| c.contains("3 in a row")), "{:?}", b.broken());
        machine.clear_faults();
        assert!(matches!(b.append(&entry(3, 1)).await, Err(BinlogError::Broken { .. })));
        drop(b);
        let (b, _) = open(&disk, 1 << 20, 0).await.unwrap();
        assert_eq!(read_all(&b, 1, 10).await, entries(1..=2, 1), "reopened, it holds what was written");
    });
}

/// A power loss during a slow fsync fails the sync; the binlog then refuses writes, and reopening finds the
/// prefix synced before.
#[tokio::test]
async fn a_failed_fsync_breaks_the_binlog() {
    let (machine, disk) = sim();
    let delay = std::time::Duration::from_millis(20);
    let (mut b, _) = open(&disk, 1 << 20, 0).await.unwrap();
    b.append_batch(&entries(1..=3, 1)).await.unwrap();
    machine.set_slow_fsync(delay);
    let start = tokio::time::Instant::now();
    b.sync().await.unwrap();
    assert!(start.elapsed() >= delay);
    b.append_batch(&entries(4..=6, 1)).await.unwrap();
    let syncing = tokio::spawn(async move {
        let res = b.sync().await;
        (res, b)
    });
    tokio::time::sleep(delay / 2).await;
    machine.power_loss();
    let (res, mut b) = syncing.await.unwrap();
    assert!(matches!(res, Err(BinlogError::Io { .. })));
    assert_eq!(b.synced_offset(), 3);
    assert!(matches!(b.append(&entry(7, 1)).await, Err(BinlogError::Broken { .. })));
    assert!(matches!(b.sync().await, Err(BinlogError::Broken { .. })));
    drop(b);
    machine.clear_faults();
    let (b, _) = open(&disk, 1 << 20, 0).await.unwrap();
    assert_eq!(b.last_offset(), 3);
}

#[test]
fn real_disk_round_trip() {
    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let tag = if cfg!(madsim) { "sim" } else { "std" };
    let tmp = TempDir(std::env::temp_dir().join(format!("openmldb-binlog-{tag}-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&tmp.0);
    let disk: Arc<dyn Disk> = Arc::new(RealDisk::new(&tmp.0));
    block_on(async {
        disk.create_dir_all("").await.unwrap();
        let (mut b, _) = open(&disk, 500, 0).await.unwrap();
        b.append_batch(&entries(1..=20, 1)).await.unwrap();
        for e in entries(21..=50, 2) {
            b.append(&e).await.unwrap();
        }
        b.sync().await.unwrap();
        let segs = b.segments();
        assert!(segs.len() >= 3);
        b.truncate_after(45).await.unwrap();
        b.append(&entry(46, 3)).await.unwrap();
        drop(b);
        let on_disk = std::fs::read_dir(tmp.0.join(DIR)).unwrap().count();
        let (mut b, report) = open(&disk, 500, 0).await.unwrap();
        assert_eq!((report.segments, report.entries, report.cut_bytes), (on_disk, 46, 0));
        assert_eq!((b.last_offset(), b.last_term()), (46, 3));
        let mut want = entries(1..=20, 1);
        want.extend(entries(21..=45, 2));
        want.push(entry(46, 3));
        assert_eq!(read_all(&b, 1, 8).await, want);
        // A torn tail on a real file is cut too.
        let path = tmp.0.join(last_segment_path(&b));
        let len = std::fs::metadata(&path).unwrap().len();
        b.append(&entry(47, 3)).await.unwrap();
        drop(b);
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len + 3).unwrap();
        let (mut b, report) = open(&disk, 500, 0).await.unwrap();
        assert_eq!((b.last_offset(), report.cut_bytes), (46, 3));
        b.delete_segments_before(40).await.unwrap();
    });
}

// ---- properties -----------------------------------------------------------------------------------------------

fn arb_entry_sizes() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0usize..120, 0..50)
}

fn sized_entries(sizes: &[usize], term: u64) -> Vec<LogEntry> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| LogEntry {
            term,
            log_index: i as u64 + 1,
            value: Bytes::from((0..size).map(|b| (b * 7 + i) as u8).collect::<Vec<u8>>()),
            ..Default::default()
        })
        .collect()
}

/// Appends `all` in batches whose sizes cycle through `batches` (at least 1 each).
async fn write_all(b: &mut Binlog, all: &[LogEntry], batches: &[usize]) {
    let mut at = 0;
    let mut i = 0;
    while at < all.len() {
        let n = batches[i % batches.len()].max(1).min(all.len() - at);
        if n == 1 {
            b.append(&all[at]).await.unwrap();
        } else {
            b.append_batch(&all[at..at + n]).await.unwrap();
        }
        at += n;
        i += 1;
    }
}

/// A binlog of `all` on a fresh disk; returns the disk and the last segment's path and bytes.
fn build(all: &[LogEntry], max: u64, batches: &[usize]) -> (SimDisk, Arc<dyn Disk>, String, Vec<u8>) {
    let (machine, disk) = sim();
    let path = block_on(async {
        let (mut b, _) = open(&disk, max, 0).await.unwrap();
        write_all(&mut b, all, batches).await;
        last_segment_path(&b)
    });
    let data = block_on(disk.read(&path)).unwrap();
    (machine, disk, path, data)
}

proptest! {
    #[test]
    fn any_entries_round_trip_through_reopen(
        sizes in arb_entry_sizes(),
        max in 1u64..2_000,
        batches in proptest::collection::vec(1usize..8, 1..5),
        read_batch in 1usize..20,
    ) {
        let all = sized_entries(&sizes, 7);
        let (_, disk, _, _) = build(&all, max, &batches);
        block_on(async {
            let (b, report) = open(&disk, max, 0).await.unwrap();
            prop_assert_eq!(report.entries, all.len() as u64);
            prop_assert_eq!(report.cut_bytes, 0);
            prop_assert_eq!(b.last_offset(), all.len() as u64);
            prop_assert_eq!(b.last_term(), if all.is_empty() { 0 } else { 7 });
            let segs = b.segments();
            for pair in segs.windows(2) {
                prop_assert!(pair[0].bytes > 0);
                prop_assert_eq!(pair[0].last_index.map(|l| l + 1), pair[1].first_index);
            }
            prop_assert_eq!(read_all(&b, 1, read_batch).await, all);
            Ok(())
        })?;
    }

    #[test]
    fn a_cut_anywhere_in_the_last_segment_keeps_the_whole_records_before_it(
        sizes in proptest::collection::vec(0usize..120, 1..40),
        max in 1u64..1_500,
        batches in proptest::collection::vec(1usize..8, 1..5),
        cut in any::<prop::sample::Index>(),
    ) {
        let all = sized_entries(&sizes, 1);
        let (machine, disk, path, data) = build(&all, max, &batches);
        let extents = record_extents(&data);
        let before_last = all.len() - extents.len();
        let keep = cut.index(data.len() + 1) as u64;
        machine.tear_tail(&format!("tablet-1/{path}"), data.len() as u64 - keep).unwrap();
        let whole = extents.iter().filter(|(start, len)| start + len <= keep).count();
        let boundary = extents.get(whole).map_or(data.len() as u64, |e| e.0);
        block_on(async {
            let (b, report) = open(&disk, max, 0).await.unwrap();
            let n = before_last + whole;
            prop_assert_eq!(b.last_offset(), n as u64);
            prop_assert_eq!(report.cut_bytes, keep - boundary.min(keep));
            prop_assert_eq!(disk.file_len(&path).await.unwrap(), boundary.min(keep));
            prop_assert_eq!(read_all(&b, 1, 16).await, all[..n].to_vec());
            Ok(())
        })?;
    }

    #[test]
    fn one_damaged_byte_is_cut_in_the_final_record_and_refused_before_it(
        sizes in proptest::collection::vec(0usize..120, 1..40),
        max in 1u64..1_500,
        batches in proptest::collection::vec(1usize..8, 1..5),
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let all = sized_entries(&sizes, 1);
        let (_, disk, path, data) = build(&all, max, &batches);
        let extents = record_extents(&data);
        let at = at.index(data.len()) as u64;
        let &(final_start, _) = extents.last().unwrap();
        let (hit_start, _) = *extents.iter().rfind(|(start, _)| *start <= at).unwrap();
        let mut damaged = data.clone();
        damaged[at as usize] ^= mask;
        block_on(async {
            disk.write_file(&path, &damaged).await.unwrap();
            let result = open(&disk, max, 0).await;
            if hit_start == final_start {
                let (b, report) = result.unwrap();
                prop_assert_eq!(b.last_offset(), all.len() as u64 - 1);
                prop_assert_eq!(report.cut_from, Some((path.clone(), final_start)));
                prop_assert_eq!(read_all(&b, 1, 16).await, all[..all.len() - 1].to_vec());
            } else {
                match result {
                    Err(BinlogError::Corrupt { file, byte_offset, .. }) => {
                        prop_assert_eq!(file, path.clone());
                        prop_assert_eq!(byte_offset, hit_start);
                    }
                    other => prop_assert!(false, "expected a corruption error, got {:?}", other.map(|(_, r)| r)),
                }
                prop_assert_eq!(disk.read(&path).await.unwrap(), damaged);
            }
            Ok(())
        })?;
    }
}

/// DESIGN 5.6: a leader that found a damaged record protects what follows it with a snapshot of memory. The binlog
/// side: `roll_over` puts later appends in a new segment, `rebase` raises the floor to the snapshot and deletes
/// the segments it covers, and a crash between the snapshot and the deletion recovers, skipping the damaged segment.
#[test]
fn a_damaged_segment_below_the_floor_is_rolled_past_and_skipped_by_recovery() {
    let (machine, disk) = sim();
    block_on(async {
        let (mut b, _) = open(&disk, 1 << 20, 0).await.unwrap();
        b.append_batch(&entries(1..=10, 1)).await.unwrap();
        let damaged = last_segment_path(&b);
        machine.corrupt_tail(&format!("tablet-1/{damaged}"), 4).unwrap();
        // Written behind the damage, as a leader keeps writing before anyone reads the damaged record back.
        b.append_batch(&entries(11..=12, 1)).await.unwrap();
        let mut cursor = b.cursor_at(9);
        let err = b.read_from(&mut cursor, 10).await.unwrap_err();
        assert!(matches!(err, BinlogError::Corrupt { after_index: 9, .. }), "{err}");
        // Middle damage: recovery refuses it while nothing covers it.
        assert!(matches!(open(&disk, 1 << 20, 0).await.unwrap_err(), BinlogError::Corrupt { .. }));

        // The protection: roll, (snapshot at 12 by the caller), then write on.
        b.roll_over().await.unwrap();
        b.roll_over().await.unwrap(); // an empty active segment does not roll again
        assert_eq!(b.segments().len(), 2);
        b.append_batch(&entries(13..=15, 1)).await.unwrap();
        // A crash here, with the snapshot at 12 published: recovery skips the damaged rest of the old segment.
        let (r, report) = open(&disk, 1 << 20, 12).await.unwrap();
        assert_eq!(report.skipped_damage.len(), 1, "{report:?}");
        assert_eq!(report.skipped_damage[0].0, damaged);
        assert_eq!(r.last_offset(), 15);
        assert_eq!(read_all(&r, 13, 2).await, entries(13..=15, 1));
        drop(r);
        // Without the snapshot the same damage is still an error: the skip needs the floor to cover it.
        assert!(matches!(open(&disk, 1 << 20, 8).await.unwrap_err(), BinlogError::Corrupt { .. }));

        // The deletion: the floor rises and the damaged segment goes.
        assert_eq!(b.rebase(12).await.unwrap(), 1);
        assert_eq!((b.floor(), b.last_offset(), b.first_index()), (12, 15, Some(13)));
        let mut cursor = b.cursor_at(11);
        assert!(matches!(b.read_from(&mut cursor, 10).await.unwrap_err(), BinlogError::Compacted { .. }));
        drop(b);
        let (r, report) = open(&disk, 1 << 20, 12).await.unwrap();
        assert!(report.skipped_damage.is_empty());
        assert_eq!(read_all(&r, 13, 10).await, entries(13..=15, 1));
    });
}

/// Rebasing an empty active segment onto a snapshot keeps the last offset at the snapshot's, and appends go on.
#[test]
fn rebase_onto_a_snapshot_of_everything_keeps_the_offset() {
    let (_machine, disk) = sim();
    block_on(async {
        let (mut b, _) = open(&disk, 1 << 20, 0).await.unwrap();
        b.append_batch(&entries(1..=5, 2)).await.unwrap();
        b.roll_over().await.unwrap();
        assert_eq!(b.rebase(5).await.unwrap(), 1);
        assert_eq!((b.last_offset(), b.last_term(), b.first_index()), (5, 0, None));
        b.append(&entry(6, 2)).await.unwrap();
        drop(b);
        let (r, _) = open(&disk, 1 << 20, 5).await.unwrap();
        assert_eq!((r.last_offset(), r.first_index()), (6, Some(6)));
    });
}
