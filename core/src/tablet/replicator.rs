//! The leader's replicator for one follower (reference 3.2): probe the follower's offset, then push batches read
//! from the leader's binlog, so a follower that was away catches up from disk, not from memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::partition::{Partition, ReplicatorHandle};
use super::rpc::AppendEntries;
use crate::proto::tablet::AppendEntriesRequest;
use crate::rpc::{RpcClient, RpcError};

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

/// Starts replicating `part` (leader in `term`) to `endpoint`.
pub fn start(
    part: &Arc<Partition>,
    endpoint: String,
    client: RpcClient,
    term: u64,
    config: ReplicatorConfig,
) -> ReplicatorHandle {
    let acked = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(run(Arc::downgrade(part), endpoint, client, term, config, acked.clone()));
    ReplicatorHandle { task, acked }
}

enum Stop {
    /// The partition is gone or no longer leader in this term: the replicator ends.
    Done,
    /// Something failed: wait a coffee break and probe again.
    Retry,
}

async fn run(
    part: Weak<Partition>,
    endpoint: String,
    client: RpcClient,
    term: u64,
    config: ReplicatorConfig,
    acked: Arc<AtomicU64>,
) {
    loop {
        match sync_until_failure(&part, &endpoint, &client, term, &config, &acked).await {
            Stop::Done => return,
            Stop::Retry => tokio::time::sleep(config.coffee_time).await,
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
                Err(e) => {
                    tracing::warn!(tid, pid, endpoint, error = %e, "replicator cannot read the binlog");
                    return Stop::Retry;
                }
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
