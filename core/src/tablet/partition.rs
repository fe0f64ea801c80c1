//! One partition replica on a tablet: its rows in memory, its binlog, its role, term and state.
//!
//! Writes take the partition's lock, append to the binlog (the disk's page cache: a process crash keeps it), apply
//! to memory and publish the new offset, which wakes the replicators. A follower applies what its leader's
//! replicator sends, skipping what it already has and refusing an older term: the fence against a deposed
//! leader.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use prost::Message;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use super::codes::Code;
use crate::proto::tablet::{
    AppendEntriesRequest, LogEntry, MethodType, Row, TableMeta, TableMode, TableState, TableStatus,
};
use crate::rpc::Status;
use crate::storage::binlog::Binlog;
use crate::storage::memtable::{MemTable, TableSchema};

/// A replicator task and the follower's acknowledged offset; the task stops when this is dropped.
pub struct ReplicatorHandle {
    pub task: JoinHandle<()>,
    pub acked: Arc<AtomicU64>,
}

impl Drop for ReplicatorHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The mutable state of a partition, behind its lock.
pub struct Inner {
    pub meta: TableMeta,
    pub state: TableState,
    pub schema: Arc<TableSchema>,
    pub table: MemTable,
    /// `None` while loading.
    pub binlog: Option<Binlog>,
    pub snapshot_offset: u64,
    pub replicators: BTreeMap<String, ReplicatorHandle>,
    /// Set when this leader's coordination session expired: it refuses writes until the nameserver confirms
    /// its role again (ChangeRole or LoadTable), DESIGN 5.1.
    pub fenced: bool,
}

impl Inner {
    pub fn mode(&self) -> TableMode {
        self.meta.mode()
    }
    pub fn is_leader(&self) -> bool {
        self.mode() == TableMode::Leader
    }
    pub fn offset(&self) -> u64 {
        self.binlog.as_ref().map(Binlog::last_offset).unwrap_or(0)
    }

    /// Refuses writes OpenMLDB refuses, plus writes to a fenced leader.
    fn check_writable(&self, session_ok: bool) -> Result<(), Status> {
        match self.state {
            TableState::Loading | TableState::Undefined => return Err(Code::TableIsLoading.status()),
            _ => {}
        }
        if !self.is_leader() {
            return Err(Code::TableIsFollower.status());
        }
        if self.fenced || !session_ok {
            return Err(Code::LeaderFenced.status());
        }
        Ok(())
    }

    fn check_readable(&self) -> Result<(), Status> {
        match self.state {
            TableState::Loading | TableState::Undefined => Err(Code::TableIsLoading.status()),
            _ => Ok(()),
        }
    }

    fn binlog_mut(&mut self) -> Result<&mut Binlog, Status> {
        self.binlog.as_mut().ok_or_else(|| Code::TableIsLoading.status())
    }
}

pub struct Partition {
    pub tid: u32,
    pub pid: u32,
    inner: Mutex<Inner>,
    /// The last offset written; replicators wait on it.
    written: watch::Sender<u64>,
    /// The highest offset any follower acknowledged; semi-synchronous writers wait on it.
    replicated: watch::Sender<u64>,
}

/// Directory of a partition on its tablet's disk.
pub fn partition_dir(tid: u32, pid: u32) -> String {
    format!("{tid}_{pid}")
}

impl Partition {
    pub fn new(meta: TableMeta, schema: Arc<TableSchema>, state: TableState) -> Self {
        let table = MemTable::new(schema.clone());
        Self {
            tid: meta.tid,
            pid: meta.pid,
            inner: Mutex::new(Inner {
                meta,
                state,
                schema,
                table,
                binlog: None,
                snapshot_offset: 0,
                replicators: BTreeMap::new(),
                fenced: false,
            }),
            written: watch::channel(0).0,
            replicated: watch::channel(0).0,
        }
    }

    pub fn dir(&self) -> String {
        partition_dir(self.tid, self.pid)
    }

    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, Inner> {
        self.inner.lock().await
    }

    pub fn subscribe_written(&self) -> watch::Receiver<u64> {
        self.written.subscribe()
    }

    pub fn publish_written(&self, offset: u64) {
        self.written.send_replace(offset);
    }

    /// Records a follower's acknowledgement.
    pub fn note_replicated(&self, offset: u64) {
        self.replicated.send_if_modified(|v| {
            if offset > *v {
                *v = offset;
                true
            } else {
                false
            }
        });
    }

    /// Waits until some follower acknowledged `offset`, or fails at the deadline.
    pub async fn wait_replicated(&self, offset: u64, timeout: std::time::Duration) -> Result<(), Status> {
        let mut rx = self.replicated.subscribe();
        let wait = rx.wait_for(|v| *v >= offset);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Code::FailToAppendEntriesToReplicator.with(format!("no follower acknowledged offset {offset}"))),
        }
    }

    /// The leader's write path: binlog (page cache), then memory. Returns the entry's (term, offset).
    pub async fn write(&self, entry_body: EntryBody, session_ok: bool) -> Result<(u64, u64), Status> {
        let mut g = self.inner.lock().await;
        g.check_writable(session_ok)?;
        let term = g.meta.term;
        let (method_type, dimensions, ts, value) = match entry_body {
            EntryBody::Put(row) => {
                let (dims, ts) = g.schema.entry_for_row(&row).map_err(|e| Code::InvalidDimensionParameter.with(e))?;
                (MethodType::Put, dims, ts, Bytes::from(row.encode_to_vec()))
            }
            EntryBody::Delete { idx, key } => {
                if idx as usize >= g.schema.index_count() {
                    return Err(Code::IdxNameNotFound.with(format!("index {idx}")));
                }
                (MethodType::Delete, vec![crate::proto::tablet::Dimension { idx, key }], 0, Bytes::new())
            }
        };
        let binlog = g.binlog_mut()?;
        let entry = LogEntry {
            term,
            log_index: binlog.last_offset() + 1,
            method_type: method_type as i32,
            dimensions,
            ts,
            value,
        };
        binlog.append(&entry).await.map_err(|e| Code::WriteDataFailed.with(e))?;
        let offset = entry.log_index;
        if let Err(e) = g.table.apply(&entry) {
            // The schema validated the row above, so this is a bug, not bad input.
            tracing::error!(tid = self.tid, pid = self.pid, offset, error = %e, "entry in the binlog does not apply");
        }
        drop(g);
        self.publish_written(offset);
        Ok((term, offset))
    }

    /// The follower's side of replication (reference 3.3).
    pub async fn append_entries(&self, req: AppendEntriesRequest) -> Result<u64, Status> {
        let mut g = self.inner.lock().await;
        g.check_readable()?;
        if g.is_leader() {
            return Err(Code::TableIsLeader.status());
        }
        if req.term < g.meta.term {
            return Err(Code::TermIsLower.with(format!("request term {} < {}", req.term, g.meta.term)));
        }
        if req.term > g.meta.term {
            tracing::info!(
                tid = self.tid,
                pid = self.pid,
                from = g.meta.term,
                to = req.term,
                "follower adopts a new term"
            );
            g.meta.term = req.term;
        }
        let last = g.offset();
        let fresh: Vec<LogEntry> = req.entries.into_iter().filter(|e| e.log_index > last).collect();
        let Some(first) = fresh.first() else { return Ok(last) };
        if first.log_index != last + 1 {
            tracing::warn!(
                tid = self.tid,
                pid = self.pid,
                have = last,
                got = first.log_index,
                "gap in replicated entries"
            );
            return Ok(last);
        }
        let binlog = g.binlog_mut()?;
        binlog.append_batch(&fresh).await.map_err(|e| Code::WriteDataFailed.with(e))?;
        let new_last = binlog.last_offset();
        for e in &fresh {
            if let Err(err) = g.table.apply(e) {
                tracing::error!(tid = self.tid, pid = self.pid, offset = e.log_index, error = %err, "replicated entry does not apply");
            }
        }
        drop(g);
        self.publish_written(new_last);
        Ok(new_last)
    }

    pub async fn status(&self) -> TableStatus {
        let g = self.inner.lock().await;
        let ttl = g.schema.ttl(0);
        TableStatus {
            tid: self.tid,
            pid: self.pid,
            offset: g.offset(),
            mode: g.meta.mode,
            state: g.state as i32,
            is_expire: true,
            ttl: ttl.abs_ttl,
            time_offset: 0,
            record_cnt: g.table.record_cnt(),
            memused: g.table.mem_bytes(),
            name: g.meta.name.clone(),
            term: g.meta.term,
            snapshot_offset: g.snapshot_offset,
            ttl_desc: Some(ttl),
        }
    }

    /// Every follower's acknowledged offset.
    pub async fn follower_offsets(&self) -> (u64, Vec<(String, u64)>) {
        let g = self.inner.lock().await;
        let f = g.replicators.iter().map(|(ep, r)| (ep.clone(), r.acked.load(Ordering::Relaxed))).collect();
        (g.offset(), f)
    }
}

/// What a client asks to write.
pub enum EntryBody {
    Put(Row),
    Delete { idx: u32, key: String },
}
