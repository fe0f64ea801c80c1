//! DESIGN 5.6: replication never stalls in silence. When a leader's binlog cannot give a follower the entries it
//! needs next (a damaged record, a segment deleted after a snapshot, a read that fails), the leader still has every
//! row it applied in memory. This module turns that memory into snapshots:
//!
//! - [`capture`]: the partition's rows as of its current offset, copied under the partition's lock, with the term
//!   of the entry at that offset (what a snapshot's MANIFEST records).
//! - [`protect`]: a leader that found damage inside its own binlog writes such a snapshot to its disk and drops the
//!   segments it covers, so that a restart replays from the snapshot and no acknowledged write behind the damage is
//!   lost (binlog recovery refuses a damaged record that is not the final one; see `storage::binlog`).
//! - the replicator ([`super::replicator`]) sends the captured image to the follower with InstallSnapshot and
//!   `rebuild_term` set; the follower ([`super::server`]) replaces its rows, snapshot and binlog in place and
//!   replication goes on from the image's offset. A bounded number of failed rebuilds makes the leader give up on
//!   the follower: it asks it to unload the partition, which the nameserver sees (a replica marked alive that its
//!   tablet does not hold) and repairs by re-adding it.

use std::sync::Arc;
use std::time::Duration;

use super::partition::{Inner, Partition};
use super::server::snapshot_dir;
use crate::proto::tablet::{LogEntry, Manifest, TableMeta, TableState};
use crate::storage::{Disk, snapshot};

/// Rebuild attempts for one follower without it making progress past the last rebuild, before its leader gives up
/// on feeding it and asks it to unload the partition.
pub const MAX_REBUILDS: u32 = 3;

/// Deadline of an InstallSnapshot that rebuilds a follower: it carries the whole partition.
pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest wait between two rebuild attempts of one follower.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A partition's rows as of one offset, copied from memory.
#[derive(Debug, Clone)]
pub struct MemoryImage {
    pub offset: u64,
    /// Term of the entry at `offset`: what a MANIFEST of this image records.
    pub term: u64,
    pub rows: Vec<LogEntry>,
    pub meta: TableMeta,
}

/// The term a snapshot ending at `offset` records: that of the log's entry at `offset` if the binlog holds it
/// (`log_last_term` non-zero), else that of the snapshot on disk if it ends there, else the current term (an empty
/// partition, or one whose snapshot went missing: the best left).
pub fn image_term(offset: u64, log_last_term: u64, manifest: Option<&Manifest>, current_term: u64) -> u64 {
    match (offset, log_last_term) {
        (0, _) => current_term,
        (_, 0) => manifest.filter(|m| m.offset == offset).map_or(current_term, |m| m.term),
        (_, t) => t,
    }
}

/// What a replicator does after its follower could not be fed from the binlog, having made `attempts` rebuilds
/// of it since it last made progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Rebuild it from a snapshot after waiting this long (nothing the first time).
    Rebuild { after: Duration },
    /// Stop trying: ask the follower to unload the partition, so the nameserver re-adds it.
    GiveUp,
}

/// The replicator's decision (pure): up to [`MAX_REBUILDS`] rebuilds, each after a doubling back-off from
/// `coffee_time`, then give up.
pub fn after_unreadable(attempts: u32, coffee_time: Duration) -> Next {
    if attempts >= MAX_REBUILDS {
        return Next::GiveUp;
    }
    let after = if attempts == 0 { Duration::ZERO } else { coffee_time.saturating_mul(1 << (attempts - 1).min(16)) };
    Next::Rebuild { after: after.min(MAX_BACKOFF) }
}

/// Copies the partition's rows, offset, term and meta; the caller holds its lock, so they agree with each other.
pub async fn capture(g: &Inner, disk: &dyn Disk, dir: &str) -> Result<MemoryImage, String> {
    let binlog = g.binlog.as_ref().ok_or("the partition is loading")?;
    if matches!(g.state, TableState::Loading | TableState::Undefined) {
        return Err(format!("the partition is in state {:?}", g.state));
    }
    let offset = binlog.last_offset();
    let last_term = binlog.last_term();
    let manifest = if offset > 0 && last_term == 0 {
        snapshot::read_manifest(disk, &snapshot_dir(dir)).await.map_err(|e| format!("snapshot manifest: {e}"))?
    } else {
        None
    };
    Ok(MemoryImage {
        offset,
        term: image_term(offset, last_term, manifest.as_ref(), g.meta.term),
        rows: g.table.rows().collect(),
        meta: g.meta.clone(),
    })
}

/// A leader's binlog holds a damaged record after log index `after_index` (found by a replicator or a snapshot):
/// it writes a snapshot of its memory, which holds every entry up to its current offset, to its disk, then deletes
/// the binlog segments the snapshot covers, the damaged one among them. Before the snapshot is captured the binlog
/// rolls to a new segment, so later writes never land in the damaged one and the deletion loses nothing. A crash
/// between the snapshot and the deletion leaves a damaged segment that is not the last and below the snapshot's
/// offset, which binlog recovery skips. Returns the snapshot's offset, or `None` if an earlier snapshot already
/// covers the damage.
pub async fn protect(
    part: &Partition,
    disk: Arc<dyn Disk>,
    after_index: u64,
    cause: &str,
) -> Result<Option<u64>, String> {
    let dir = part.dir();
    let image = {
        let mut g = part.lock().await;
        if g.snapshot_offset > after_index {
            return Ok(None);
        }
        if g.state != TableState::Normal {
            return Err(format!("the partition is in state {:?}; a snapshot must wait", g.state));
        }
        let image = capture(&g, &*disk, &dir).await?;
        g.binlog.as_mut().ok_or("the partition is loading")?.roll_over().await.map_err(|e| e.to_string())?;
        g.state = TableState::MakingSnapshot;
        image
    };
    let (offset, rows) = (image.offset, image.rows.len());
    tracing::warn!(
        tid = part.tid,
        pid = part.pid,
        after_index,
        offset,
        rows,
        cause,
        "damaged record in the leader's binlog: writing a snapshot of memory that holds every entry up to the offset"
    );
    let made = snapshot::make_from_rows(disk, &snapshot_dir(&dir), image.rows, image.offset, image.term).await;
    let mut g = part.lock().await;
    if g.state == TableState::MakingSnapshot {
        g.state = TableState::Normal;
    }
    let manifest = made.map_err(|e| format!("snapshot of memory at {offset}: {e}"))?;
    g.snapshot_offset = manifest.offset;
    let binlog = g.binlog.as_mut().ok_or("the partition was unloaded")?;
    let deleted = binlog.rebase(manifest.offset).await.map_err(|e| e.to_string())?;
    tracing::warn!(
        tid = part.tid,
        pid = part.pid,
        offset = manifest.offset,
        count = manifest.count,
        deleted_segments = deleted,
        "snapshot of memory written; the binlog segments it covers, the damaged one among them, are deleted"
    );
    Ok(Some(manifest.offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_term_is_the_last_entrys() {
        let m = Manifest { offset: 40, name: "x.sdb".into(), count: 3, term: 2 };
        assert_eq!(image_term(0, 0, None, 5), 5, "an empty partition: its current term");
        assert_eq!(image_term(50, 4, Some(&m), 5), 4, "the binlog holds the last entry");
        assert_eq!(image_term(40, 0, Some(&m), 5), 2, "the last entry is the snapshot's");
        assert_eq!(image_term(41, 0, Some(&m), 5), 5, "a snapshot that ends elsewhere does not count");
        assert_eq!(image_term(40, 0, None, 5), 5);
    }

    #[test]
    fn rebuilds_are_bounded_and_back_off() {
        let coffee = Duration::from_secs(1);
        assert_eq!(after_unreadable(0, coffee), Next::Rebuild { after: Duration::ZERO });
        assert_eq!(after_unreadable(1, coffee), Next::Rebuild { after: coffee });
        assert_eq!(after_unreadable(2, coffee), Next::Rebuild { after: 2 * coffee });
        assert_eq!(after_unreadable(MAX_REBUILDS, coffee), Next::GiveUp);
        assert_eq!(after_unreadable(u32::MAX, coffee), Next::GiveUp);
        assert!(
            matches!(after_unreadable(2, Duration::from_secs(3600)), Next::Rebuild { after } if after == MAX_BACKOFF)
        );
    }
}
