//! Reading the records of one segment file in bounded chunks.
//!
//! A reader never holds more than one chunk plus one record in memory, and never reads past the end it was
//! given: recovery gives the file's length, a replicator the length the binlog itself wrote, so bytes of an
//! append still in flight are never looked at.

use std::io;

use crate::storage::disk::Disk;
use crate::storage::record::{self, Decoded, HEADER_LEN, MAX_RECORD_LEN};

/// Largest single read: enough for many small records per call, small enough to keep a scan's memory flat.
const MAX_CHUNK: u64 = 1 << 20;

/// Smallest read, so a reader wanting one small record does not pay a disk call per record.
pub(super) const MIN_CHUNK: u64 = 4 << 10;

/// What the reader found at its position.
pub(super) enum Step<'a> {
    /// An intact record (checksum verified) starting at byte `pos`, `len` bytes long with its header.
    Record { pos: u64, len: u64, payload: &'a [u8] },
    /// The end of the range, exactly at a record boundary.
    End,
    /// A record that is cut short or fails its checksum, starting at byte `pos`.
    Damaged { pos: u64, reason: String },
}

/// Sequential reader of the records in bytes `[start, end)` of one file.
pub(super) struct SegmentReader<'a> {
    disk: &'a dyn Disk,
    path: &'a str,
    end: u64,
    /// Bytes `[buf_start, buf_start + buf.len())` of the file.
    buf: Vec<u8>,
    buf_start: u64,
    /// Start of the next record.
    pos: u64,
    /// Size of the next read; doubles up to [`MAX_CHUNK`] as the reader keeps going.
    chunk: u64,
}

impl<'a> SegmentReader<'a> {
    /// A reader from byte `start` up to `end`, whose first read is about `first_chunk` bytes.
    pub(super) fn new(disk: &'a dyn Disk, path: &'a str, start: u64, end: u64, first_chunk: u64) -> Self {
        Self {
            disk,
            path,
            end,
            buf: Vec::new(),
            buf_start: start,
            pos: start,
            chunk: first_chunk.clamp(MIN_CHUNK, MAX_CHUNK),
        }
    }

    /// The next record, or how the range ends. The reader moves past intact records only.
    pub(super) async fn next(&mut self) -> io::Result<Step<'_>> {
        let at = self.pos;
        self.fill(HEADER_LEN as u64).await?;
        let off = usize::try_from(self.pos - self.buf_start).expect("the buffer is in memory");
        let mut promised = None;
        if self.buf.len() - off >= HEADER_LEN {
            let len = u32::from_be_bytes(self.buf[off..off + 4].try_into().expect("4 bytes")) as usize;
            // An impossible length is not read: decode reports it as corruption.
            if len <= MAX_RECORD_LEN {
                promised = Some(HEADER_LEN + len);
                self.fill((HEADER_LEN + len) as u64).await?;
            }
        }
        // A second fill may have dropped consumed bytes from the buffer's front.
        let off = usize::try_from(self.pos - self.buf_start).expect("the buffer is in memory");
        match record::decode(&self.buf[off..]) {
            Decoded::Record { payload, len } => {
                self.pos += len as u64;
                Ok(Step::Record { pos: at, len: len as u64, payload })
            }
            Decoded::End => Ok(Step::End),
            Decoded::Torn { available } => {
                let reason = match promised {
                    Some(whole) => format!("record cut short: {available} of its {whole} bytes are there"),
                    None => format!("record header cut short: {available} of {HEADER_LEN} bytes are there"),
                };
                Ok(Step::Damaged { pos: at, reason })
            }
            Decoded::Corrupt { reason } => Ok(Step::Damaged { pos: at, reason }),
        }
    }

    /// Makes the buffer hold `need` bytes from the position, or everything up to the end if that is less.
    async fn fill(&mut self, need: u64) -> io::Result<()> {
        let want_end = self.pos.saturating_add(need).min(self.end);
        let mut have_end = self.buf_start + self.buf.len() as u64;
        if want_end <= have_end {
            return Ok(());
        }
        let consumed = usize::try_from(self.pos - self.buf_start).expect("the buffer is in memory");
        self.buf.drain(..consumed);
        self.buf_start = self.pos;
        while have_end < want_end {
            let len = (want_end - have_end).max(self.chunk).min(self.end - have_end);
            self.chunk = (self.chunk * 2).min(MAX_CHUNK);
            let data = self.disk.read_at(self.path, have_end, usize::try_from(len).unwrap_or(usize::MAX)).await?;
            if data.is_empty() {
                // The file is shorter than the range: what is there decodes as torn.
                self.end = have_end;
                break;
            }
            have_end += data.len() as u64;
            self.buf.extend_from_slice(&data);
        }
        Ok(())
    }
}

/// Exactly `len` bytes of `path` from `offset`; `len` must be bounded by the caller.
pub(super) async fn read_exact_at(disk: &dyn Disk, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let data = disk.read_at(path, offset + out.len() as u64, len - out.len()).await?;
        if data.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{path}: {} bytes at {offset} expected, the file ends after {}", len, out.len()),
            ));
        }
        out.extend_from_slice(&data);
    }
    Ok(out)
}

/// The first position after the start of `tail` where an intact record begins, with that record's length.
///
/// Recovery uses it to tell a damaged final record from damage in the middle: damage that is followed by an
/// intact record would lose that record if cut, so it must be an error. Costly only for pathological bytes:
/// most positions hold a length longer than the rest of the tail and are rejected without a checksum.
pub(super) fn intact_record_after_start(tail: &[u8]) -> Option<(usize, usize)> {
    (1..tail.len()).find_map(|q| match record::decode(&tail[q..]) {
        Decoded::Record { len, .. } => Some((q, len)),
        _ => None,
    })
}
