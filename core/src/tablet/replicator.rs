//! The leader's replicator for one follower (reference 3.2): probe the follower's offset, then push batches read
//! from the leader's binlog, so a follower that was away catches up from disk, not from memory.
//!
//! DESIGN 5.6: when the binlog cannot give the follower what it needs next (a damaged record, a segment deleted
//! after a snapshot, a failed read), the replicator does not retry the read forever while the follower stays
//! alive at its old offset. It rebuilds the follower from a snapshot of the leader's memory ([`super::rebuild`]),
//! protecting the leader's own data first if the binlog is damaged, and replicates on from the snapshot's offset.
//! After [`rebuild::MAX_REBUILDS`] attempts without progress it gives up and asks the follower to unload the
//! partition, which the nameserver sees and repairs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::codes::Code;
use super::partition::{Partition, ReplicatorHandle};
use super::rebuild::{self, Next};
use super::rpc::{AppendEntries, InstallSnapshot};
use crate::proto::tablet::{AppendEntriesRequest, InstallSnapshotRequest, SnapshotFile, TableMode};
use crate::rpc::{RpcClient, RpcError};
use crate::storage::Disk;
use crate::storage::binlog::BinlogError;

/// Timing and batching of replicators (OpenMLDB flag names).
#[derive(Debug, Clone)]
pub struct ReplicatorConfig {
    /// `binlog_sync_batch_size`: entries per AppendEntries.
    pub batch_size: usize,
    /// `binlog_sync_wait_time`: longest idle wait before re-checking.
    pub wait_time: Duration,
    /// `binlog_coffee_time`: back-off after a failed sync.
    pub coffee_time: Duration,
    /// `binlog_match_logoffset_interval`: retry period of the offset probe.
    pub match_interval: Duration,
    /// Deadline of one AppendEntries call.
    pub rpc_timeout: Duration,
}

impl Default for ReplicatorConfig {
    fn default() -> Self {
        Self {
            batch_size: 32,
            wait_time: Duration::from_millis(100),
            coffee_time: Duration::from_millis(1000),
            match_interval: Duration::from_millis(1000),
            rpc_timeout: Duration::from_secs(2),
        }
    }
}

/// Starts replicating `part` (leader in `term`) to `endpoint`. `disk` is the leader's, for the snapshot that
/// protects a damaged binlog.
pub fn start(
    part: &Arc<Partition>,
    endpoint: String,
    client: RpcClient,
    term: u64,
    config: ReplicatorConfig,
    disk: Arc<dyn Disk>,
) -> ReplicatorHandle {
    let acked = Arc::new(AtomicU64::new(0));
    let r = Replicator { part: Arc::downgrade(part), endpoint, client, term, config, acked: acked.clone(), disk };
    let task = tokio::spawn(r.run());
    ReplicatorHandle { task, acked }
}

enum Stop {
    /// The partition is gone or no longer leader in this term: the replicator ends.
    Done,
    /// Something failed: wait a coffee break and probe again.
    Retry,
    /// The binlog cannot give the follower entry `next` (and those after it).
    Unreadable { next: u64, error: BinlogError },
}

/// Why a rebuild did not happen.
enum RebuildFailed {
    /// The partition is gone, or this leader was deposed: the replicator ends.
    Done,
    /// It may work later; counts against [`rebuild::MAX_REBUILDS`].
    Failed(String),
}

/// One follower's replicator.
struct Replicator {
    part: Weak<Partition>,
    endpoint: String,
    client: RpcClient,
    term: u64,
    config: ReplicatorConfig,
    acked: Arc<AtomicU64>,
    disk: Arc<dyn Disk>,
}

impl Replicator {
    async fn run(self) {
        // Rebuilds since the follower last made progress past the offset of the last one.
        let mut attempts = 0u32;
        let mut rebuilt_at: Option<u64> = None;
        loop {
            let (next, error) = match sync_until_failure(
                &self.part,
                &self.endpoint,
                &self.client,
                self.term,
                &self.config,
                &self.acked,
            )
            .await
            {
                Stop::Done => return,
                Stop::Retry => {
                    tokio::time::sleep(self.config.coffee_time).await;
                    continue;
                }
                Stop::Unreadable { next, error } => (next, error),
            };
            if rebuilt_at.is_some_and(|at| next > at + 1) {
                attempts = 0;
            }
            let (tid, pid, endpoint) = self.ids();
            match rebuild::after_unreadable(attempts, self.config.coffee_time) {
                Next::GiveUp => {
                    tracing::warn!(
                        tid,
                        pid,
                        endpoint,
                        next,
                        attempts,
                        error = %error,
                        "follower cannot be fed from the binlog nor rebuilt: asking it to unload the partition, \
                         so the nameserver re-adds it"
                    );
                    self.give_up().await;
                    attempts = 0;
                    rebuilt_at = None;
                    tokio::time::sleep(rebuild::MAX_REBUILDS * 10 * self.config.coffee_time).await;
                }
                Next::Rebuild { after } => {
                    tokio::time::sleep(after).await;
                    attempts += 1;
                    tracing::warn!(
                        tid,
                        pid,
                        endpoint,
                        next,
                        attempt = attempts,
                        max = rebuild::MAX_REBUILDS,
                        error = %error,
                        "the binlog cannot feed the follower: rebuilding it from a snapshot of the leader's memory"
                    );
                    if let BinlogError::Corrupt { after_index, .. } = &error {
                        self.protect(*after_index, &error.to_string()).await;
                    }
                    match self.rebuild().await {
                        Ok(offset) => {
                            tracing::info!(tid, pid, endpoint, offset, "follower rebuilt from a snapshot of memory");
                            rebuilt_at = Some(offset);
                        }
                        Err(RebuildFailed::Done) => return,
                        Err(RebuildFailed::Failed(why)) => {
                            tracing::warn!(tid, pid, endpoint, attempt = attempts, error = %why, "rebuilding the follower failed");
                        }
                    }
                }
            }
        }
    }

    fn ids(&self) -> (u32, u32, &str) {
        let (tid, pid) = self.part.upgrade().map_or((0, 0), |p| (p.tid, p.pid));
        (tid, pid, &self.endpoint)
    }

    /// DESIGN 5.6 for the leader itself: a damaged binlog is protected by a snapshot of memory.
    async fn protect(&self, after_index: u64, cause: &str) {
        let Some(p) = self.part.upgrade() else { return };
        if let Err(e) = rebuild::protect(&p, self.disk.clone(), after_index, cause).await {
            tracing::warn!(tid = p.tid, pid = p.pid, after_index, error = %e, "damaged binlog not protected by a snapshot yet");
        }
    }

    /// Sends the follower a snapshot of the leader's memory to replace its replica with; returns its offset.
    async fn rebuild(&self) -> Result<u64, RebuildFailed> {
        let Some(p) = self.part.upgrade() else { return Err(RebuildFailed::Done) };
        let image = {
            let g = p.lock().await;
            if !g.is_leader() || g.meta.term != self.term {
                return Err(RebuildFailed::Done);
            }
            rebuild::capture(&g, &*self.disk, &p.dir()).await.map_err(RebuildFailed::Failed)?
        };
        drop(p);
        let offset = image.offset;
        let mut meta = image.meta;
        meta.mode = TableMode::Follower as i32;
        meta.replicas.clear();
        let files = crate::storage::snapshot::image_files(image.rows, image.offset, image.term)
            .into_iter()
            .map(|(name, data)| SnapshotFile { name, data: data.into() })
            .collect();
        let req = InstallSnapshotRequest { meta: Some(meta), files, rebuild_term: self.term };
        match self.client.call_timeout(InstallSnapshot, req, rebuild::INSTALL_TIMEOUT).await {
            Ok(_) => {
                self.acked.store(offset, Ordering::Relaxed);
                if let Some(p) = self.part.upgrade() {
                    p.note_replicated(offset);
                }
                Ok(offset)
            }
            Err(RpcError::Status(s)) if s.code == Code::TermIsLower as i32 || s.code == Code::TableIsLeader as i32 => {
                tracing::info!(endpoint = %self.endpoint, error = %s, "follower refused the rebuild: this leader is deposed");
                Err(RebuildFailed::Done)
            }
            Err(e) => Err(RebuildFailed::Failed(format!("install on {}: {e}", self.endpoint))),
        }
    }

    /// Asks the follower to unload the partition (a rebuild with no files). Best effort: a follower that cannot
    /// be reached is the nameserver's business anyway.
    async fn give_up(&self) {
        let Some(p) = self.part.upgrade() else { return };
        let mut meta = p.lock().await.meta.clone();
        drop(p);
        meta.mode = TableMode::Follower as i32;
        meta.replicas.clear();
        let req = InstallSnapshotRequest { meta: Some(meta), files: vec![], rebuild_term: self.term };
        if let Err(e) = self.client.call_timeout(InstallSnapshot, req, self.config.rpc_timeout).await {
            tracing::warn!(endpoint = %self.endpoint, error = %e, "follower not told to unload the partition");
        }
    }
}

async fn sync_until_failure(
    part: &Weak<Partition>,
    endpoint: &str,
    client: &RpcClient,
    term: u64,
    config: &ReplicatorConfig,
    acked: &AtomicU64,
) -> Stop {
    let Some(p) = part.upgrade() else { return Stop::Done };
    let (tid, pid) = (p.tid, p.pid);
    let written = p.written();
    drop(p);

    // MatchLogOffset: an empty AppendEntries tells the follower our term and returns its offset.
    let probe = AppendEntriesRequest { tid, pid, term, pre_log_index: 0, entries: vec![] };
    let follower = loop {
        match client.call_timeout(AppendEntries, probe.clone(), config.rpc_timeout).await {
            Ok(r) => break r.log_offset,
            Err(e) => {
                log_failure(endpoint, tid, pid, &e);
                if part.upgrade().is_none() {
                    return Stop::Done;
                }
                tokio::time::sleep(config.match_interval).await;
            }
        }
    };
    acked.store(follower, Ordering::Relaxed);
    let mut next = follower + 1;
    let mut cursor = {
        let Some(p) = part.upgrade() else { return Stop::Done };
        let g = p.lock().await;
        if !g.is_leader() || g.meta.term != term {
            return Stop::Done;
        }
        if follower > g.offset() {
            tracing::warn!(
                tid,
                pid,
                endpoint,
                follower,
                leader = g.offset(),
                "follower is ahead of its leader: diverged"
            );
        }
        match &g.binlog {
            Some(b) => b.cursor_at(next),
            None => return Stop::Retry,
        }
    };
    tracing::info!(tid, pid, endpoint, follower_offset = follower, "replicator matched follower offset");

    loop {
        let seen = written.get();
        if seen < next {
            // Idle: wait for a write, at most wait_time, then look again.
            let _ = tokio::time::timeout(config.wait_time, written.changed(seen)).await;
            if part.upgrade().is_none() {
                return Stop::Done;
            }
            continue;
        }
        let batch = {
            let Some(p) = part.upgrade() else { return Stop::Done };
            let g = p.lock().await;
            if !g.is_leader() || g.meta.term != term {
                return Stop::Done;
            }
            let Some(binlog) = &g.binlog else { return Stop::Retry };
            match binlog.read_from(&mut cursor, config.batch_size).await {
                Ok(b) => b,
                Err(error) => return Stop::Unreadable { next: cursor.next_index(), error },
            }
        };
        if batch.is_empty() {
            tokio::time::sleep(config.wait_time).await;
            continue;
        }
        let sent_last = batch.last().map(|e| e.log_index).unwrap_or(next);
        let req = AppendEntriesRequest { tid, pid, term, pre_log_index: next - 1, entries: batch };
        match client.call_timeout(AppendEntries, req, config.rpc_timeout).await {
            Ok(r) => {
                acked.store(r.log_offset, Ordering::Relaxed);
                if let Some(p) = part.upgrade() {
                    p.note_replicated(r.log_offset);
                }
                if r.log_offset != sent_last {
                    // The follower is elsewhere (it had a gap, or more than we thought): re-seek from its offset.
                    next = r.log_offset + 1;
                    let Some(p) = part.upgrade() else { return Stop::Done };
                    let g = p.lock().await;
                    match &g.binlog {
                        Some(b) => cursor = b.cursor_at(next),
                        None => return Stop::Retry,
                    }
                } else {
                    next = sent_last + 1;
                }
            }
            Err(e) => {
                log_failure(endpoint, tid, pid, &e);
                return Stop::Retry;
            }
        }
    }
}

fn log_failure(endpoint: &str, tid: u32, pid: u32, e: &RpcError) {
    match e {
        RpcError::Status(s) => tracing::info!(tid, pid, endpoint, error = %s, "follower refused entries"),
        other => tracing::debug!(tid, pid, endpoint, error = %other, "append entries failed"),
    }
}
