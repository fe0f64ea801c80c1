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
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use super::codes::Code;
use crate::proto::tablet::{
    AppendEntriesRequest, LogEntry, MethodType, Row, TableMeta, TableMode, TableState, TableStatus,
};
use crate::rpc::Status;
use crate::storage::binlog::Binlog;
use crate::storage::memtable::{MemTable, TableSchema};
use crate::sync::Signal;

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
    /// `(ns_epoch, op_id)` of the AddReplica task that added each replicator: a DelReplica of an older op is a
    /// late request (a stalled stream delivered it after its op had failed) and must not remove a replica a later
    /// op re-added (the fuzzer's seed 187367; [`super::tasks::TaskTable::admit`] covers older nameservers).
    pub added_by: BTreeMap<String, (u64, u64)>,
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

    /// Records where this replica's log stands: the offset and term of its last entry, with its role and term
    /// now. One line per append batch, load, role change and drop; the simulator rebuilds every replica's log
    /// position over time from these lines (DESIGN 8's loss bound asks which replicas held an entry when a new
    /// leader was chosen), so the format is a contract: `replica log tid= pid= leader= term= log_term= offset=`.
    pub fn trace_position(&self, why: &'static str) {
        tracing::info!(
            tid = self.meta.tid,
            pid = self.meta.pid,
            leader = self.is_leader(),
            term = self.meta.term,
            log_term = self.binlog.as_ref().map_or(0, Binlog::last_term),
            offset = self.offset(),
            why,
            "replica log"
        );
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

    /// What GetTableStatus reports of this replica.
    fn status(&self) -> TableStatus {
        let ttl = self.schema.ttl(0);
        TableStatus {
            tid: self.meta.tid,
            pid: self.meta.pid,
            offset: self.offset(),
            mode: self.meta.mode,
            state: self.state as i32,
            is_expire: true,
            ttl: ttl.abs_ttl,
            time_offset: 0,
            record_cnt: self.table.record_cnt(),
            memused: self.table.mem_bytes(),
            name: self.meta.name.clone(),
            term: self.meta.term,
            snapshot_offset: self.snapshot_offset,
            ttl_desc: Some(ttl),
            fenced: self.fenced,
        }
    }

    /// Brings `to` up to date with this state, allocating only when the name changed.
    fn publish_status(&self, to: &mut TableStatus) {
        let ttl = self.schema.ttl(0);
        to.offset = self.offset();
        to.mode = self.meta.mode;
        to.state = self.state as i32;
        to.ttl = ttl.abs_ttl;
        to.record_cnt = self.table.record_cnt();
        to.memused = self.table.mem_bytes();
        if to.name != self.meta.name {
            to.name.clone_from(&self.meta.name);
        }
        to.term = self.meta.term;
        to.snapshot_offset = self.snapshot_offset;
        to.ttl_desc = Some(ttl);
        to.fenced = self.fenced;
    }
}

/// The partition's lock, held. Dropping it republishes the polled status, so every change made under the lock
/// shows in the next GetTableStatus and none shows half made.
pub struct Guard<'a> {
    inner: Option<tokio::sync::MutexGuard<'a, Inner>>,
    status: &'a std::sync::Mutex<TableStatus>,
}

impl std::ops::Deref for Guard<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        self.inner.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for Guard<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        self.inner.as_mut().expect("held until dropped")
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if let Some(g) = self.inner.take() {
            // Published before the lock is released, so snapshots follow the lock's order.
            let mut to = self.status.lock().expect("status snapshot");
            g.publish_status(&mut to);
            drop(to);
            drop(g);
        }
    }
}

pub struct Partition {
    pub tid: u32,
    pub pid: u32,
    /// DESIGN 5.3: acknowledge writes only once a follower has them. Fixed for the life of the replica.
    pub semisync: bool,
    inner: Mutex<Inner>,
    /// [`Inner::status`] as of the last release of `inner`.
    status: std::sync::Mutex<TableStatus>,
    /// The last offset written; replicators wait on it.
    written: Arc<Signal>,
    /// The highest offset any follower acknowledged; semi-synchronous writers wait on it.
    replicated: Signal,
    /// [`crate::planted::Planted::follower_skips_apply_every`], and the entries counted for it.
    skip_apply_every: std::sync::atomic::AtomicU64,
    applied: std::sync::atomic::AtomicU64,
}

/// Directory of a partition on its tablet's disk.
pub fn partition_dir(tid: u32, pid: u32) -> String {
    format!("{tid}_{pid}")
}

impl Partition {
    pub fn new(meta: TableMeta, schema: Arc<TableSchema>, state: TableState) -> Self {
        let table = MemTable::new(schema.clone());
        let inner = Inner {
            meta,
            state,
            schema,
            table,
            binlog: None,
            snapshot_offset: 0,
            replicators: BTreeMap::new(),
            added_by: BTreeMap::new(),
            fenced: false,
        };
        Self {
            tid: inner.meta.tid,
            pid: inner.meta.pid,
            semisync: inner.meta.replication() == crate::proto::tablet::ReplicationMode::Semisync,
            status: std::sync::Mutex::new(inner.status()),
            inner: Mutex::new(inner),
            written: Arc::new(Signal::new(0)),
            replicated: Signal::new(0),
            skip_apply_every: std::sync::atomic::AtomicU64::new(0),
            applied: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Switches on this partition's planted bugs (tests only).
    pub fn plant(&self, planted: crate::planted::Planted) {
        self.skip_apply_every.store(planted.follower_skips_apply_every, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn dir(&self) -> String {
        partition_dir(self.tid, self.pid)
    }

    /// The partition's state, exclusively. When the guard is dropped the status the nameserver polls is
    /// republished from it ([`Partition::status`]).
    pub async fn lock(&self) -> Guard<'_> {
        Guard { inner: Some(self.inner.lock().await), status: &self.status }
    }

    /// The last written offset, to wait on (it outlives the partition, so a replicator can hold it).
    pub fn written(&self) -> Arc<Signal> {
        self.written.clone()
    }

    pub fn publish_written(&self, offset: u64) {
        self.written.set(offset);
    }

    /// Records a follower's acknowledgement.
    pub fn note_replicated(&self, offset: u64) {
        self.replicated.raise(offset);
    }

    /// Waits until some follower acknowledged `offset`, or fails at the deadline.
    pub async fn wait_replicated(&self, offset: u64, timeout: std::time::Duration) -> Result<(), Status> {
        let wait = self.replicated.wait_until(|v| v >= offset);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Code::FailToAppendEntriesToReplicator.with(format!("no follower acknowledged offset {offset}"))),
        }
    }

    /// The leader's write path: binlog (page cache), then memory. Returns the entry's (term, offset); offset 0
    /// (no entry has it) when an idempotent put found its request id already held and wrote nothing.
    pub async fn write(&self, entry_body: EntryBody, session_ok: bool) -> Result<(u64, u64), Status> {
        let mut g = self.lock().await;
        g.check_writable(session_ok)?;
        let term = g.meta.term;
        let request_id = match &entry_body {
            EntryBody::PutOnce { request_id, .. } => request_id.clone(),
            EntryBody::Put(_) | EntryBody::Delete { .. } => String::new(),
        };
        if !request_id.is_empty() && g.table.holds_request(&request_id) {
            return Ok((term, 0));
        }
        let (method_type, dimensions, ts, value) = match entry_body {
            EntryBody::Put(row) | EntryBody::PutOnce { row, .. } => {
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
            request_id,
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
        let mut g = self.lock().await;
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
        g.trace_position("append");
        let skip = self.skip_apply_every.load(std::sync::atomic::Ordering::SeqCst);
        for e in &fresh {
            if skip > 0 && (self.applied.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1).is_multiple_of(skip) {
                continue;
            }
            if let Err(err) = g.table.apply(e) {
                tracing::error!(tid = self.tid, pid = self.pid, offset = e.log_index, error = %err, "replicated entry does not apply");
            }
        }
        drop(g);
        self.publish_written(new_last);
        Ok(new_last)
    }

    /// The status as of the last time the partition's lock was released (GetTableStatus). It never waits on
    /// the lock: a role change or a write holds it across disk IO, and a slow disk (1 s per fsync) must not make
    /// the tablet look unreachable to the nameserver's one-second status poll (the fuzzer's seed 563945: the poll
    /// timed out behind a ChangeRole, the stalled connection was dropped, and the ChangeRole that had taken
    /// effect was counted as failed). OpenMLDB answers it from atomics the same way.
    pub fn status(&self) -> TableStatus {
        self.status.lock().expect("status snapshot").clone()
    }

    /// Why this partition's binlog refuses writes (a failed fsync, a partial append it could not cut back).
    pub async fn binlog_broken(&self) -> Option<String> {
        let g = self.lock().await;
        g.binlog.as_ref().and_then(|b| b.broken()).map(str::to_string)
    }

    /// Every follower's acknowledged offset.
    pub async fn follower_offsets(&self) -> (u64, Vec<(String, u64)>) {
        let g = self.lock().await;
        let f = g.replicators.iter().map(|(ep, r)| (ep.clone(), r.acked.load(Ordering::Relaxed))).collect();
        (g.offset(), f)
    }
}

/// What a client asks to write.
pub enum EntryBody {
    Put(Row),
    /// An idempotent put: written only if no live row of the partition was written with `request_id`.
    PutOnce {
        row: Row,
        request_id: String,
    },
    Delete {
        idx: u32,
        key: String,
    },
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::executor::block_on;

    use super::*;
    use crate::proto::tablet::{ColumnDesc, ColumnKey};
    use crate::storage::SimDisk;
    use crate::storage::binlog::BinlogConfig;

    fn meta(mode: TableMode, term: u64) -> TableMeta {
        TableMeta {
            name: "t".into(),
            tid: 1,
            pid: 0,
            mode: mode as i32,
            term,
            column_desc: vec![
                ColumnDesc { name: "id".into(), data_type: "string".into() },
                ColumnDesc { name: "ts".into(), data_type: "int64".into() },
            ],
            column_key: vec![ColumnKey {
                index_name: "id".into(),
                col_name: vec!["id".into()],
                ts_name: "ts".into(),
                ttl: None,
            }],
            ..Default::default()
        }
    }

    fn row(i: u64) -> Row {
        Row { values: vec![format!("k{i}"), (100 + i).to_string()] }
    }

    /// A loaded partition over a fresh simulated disk.
    fn partition(mode: TableMode, term: u64) -> Partition {
        let m = meta(mode, term);
        let schema = Arc::new(TableSchema::from_meta(&m).unwrap());
        let p = Partition::new(m, schema, TableState::Normal);
        let disk: Arc<dyn crate::storage::Disk> = Arc::new(SimDisk::new());
        let (binlog, _) =
            block_on(Binlog::open(disk, "1_0/binlog", BinlogConfig { max_segment_bytes: 1 << 20 }, 0)).unwrap();
        block_on(p.lock()).binlog = Some(binlog);
        p
    }

    fn entry(term: u64, log_index: u64) -> LogEntry {
        let r = row(log_index);
        let schema = TableSchema::from_meta(&meta(TableMode::Follower, 1)).unwrap();
        let (dimensions, ts) = schema.entry_for_row(&r).unwrap();
        LogEntry {
            term,
            log_index,
            method_type: MethodType::Put as i32,
            dimensions,
            ts,
            value: Bytes::from(r.encode_to_vec()),
            request_id: String::new(),
        }
    }

    fn code(r: Result<impl std::fmt::Debug, Status>) -> i32 {
        r.expect_err("refused").code
    }

    #[test]
    fn the_status_is_read_without_the_lock_and_shows_changes_when_it_is_released() {
        let p = partition(TableMode::Follower, 1);
        assert_eq!((p.status().mode, p.status().term), (TableMode::Follower as i32, 1));
        // A role change holds the lock across disk IO: a poll meanwhile answers at once, with the state before.
        let mut g = block_on(p.lock());
        g.meta.mode = TableMode::Leader as i32;
        g.meta.term = 5;
        assert_eq!((p.status().mode, p.status().term), (TableMode::Follower as i32, 1), "nothing half made");
        drop(g);
        assert_eq!((p.status().mode, p.status().term), (TableMode::Leader as i32, 5));
        assert_eq!(block_on(p.write(EntryBody::Put(row(1)), true)).unwrap(), (5, 1));
        let s = p.status();
        assert_eq!((s.offset, s.record_cnt, s.name.as_str()), (1, 1, "t"));
    }

    #[test]
    fn a_leader_writes_with_its_term_and_consecutive_offsets() {
        let p = partition(TableMode::Leader, 4);
        assert_eq!(block_on(p.write(EntryBody::Put(row(1)), true)).unwrap(), (4, 1));
        assert_eq!(block_on(p.write(EntryBody::Put(row(2)), true)).unwrap(), (4, 2));
        let del = EntryBody::Delete { idx: 0, key: "k1".into() };
        assert_eq!(block_on(p.write(del, true)).unwrap(), (4, 3));
        assert_eq!(block_on(p.lock()).table.record_cnt(), 1);
        let bad = EntryBody::Delete { idx: 9, key: "k1".into() };
        assert_eq!(code(block_on(p.write(bad, true))), Code::IdxNameNotFound as i32);
        let short = Row { values: vec!["only-one".into()] };
        assert_eq!(code(block_on(p.write(EntryBody::Put(short), true))), Code::InvalidDimensionParameter as i32);
        assert_eq!(block_on(p.lock()).offset(), 3, "refused writes take no offset");
    }

    #[test]
    fn an_idempotent_put_is_written_once_per_request_id() {
        let p = partition(TableMode::Leader, 2);
        let once = |i, id: &str| EntryBody::PutOnce { row: row(i), request_id: id.into() };
        assert_eq!(block_on(p.write(once(1, "import:7:1"), true)).unwrap(), (2, 1));
        // The same id again (a retry, or a late copy of the first write): nothing is written.
        assert_eq!(block_on(p.write(once(1, "import:7:1"), true)).unwrap(), (2, 0));
        assert_eq!(block_on(p.write(once(2, "import:7:2"), true)).unwrap(), (2, 2));
        // A plain put of the same row is another row.
        assert_eq!(block_on(p.write(EntryBody::Put(row(1)), true)).unwrap(), (2, 3));
        let g = block_on(p.lock());
        assert_eq!((g.offset(), g.table.record_cnt()), (3, 3));
        assert!(g.table.holds_request("import:7:1") && g.table.holds_request("import:7:2"));
        drop(g);
        // A follower refuses it before looking at the id.
        let f = partition(TableMode::Follower, 2);
        assert_eq!(code(block_on(f.write(once(1, "import:7:1"), true))), Code::TableIsFollower as i32);
    }

    #[test]
    fn writes_are_refused_with_openmldb_names_on_a_follower_a_loading_table_and_a_fenced_leader() {
        let f = partition(TableMode::Follower, 1);
        assert_eq!(code(block_on(f.write(EntryBody::Put(row(1)), true))), Code::TableIsFollower as i32);
        let l = partition(TableMode::Leader, 1);
        block_on(l.lock()).state = TableState::Loading;
        assert_eq!(code(block_on(l.write(EntryBody::Put(row(1)), true))), Code::TableIsLoading as i32);
        let l = partition(TableMode::Leader, 1);
        assert_eq!(code(block_on(l.write(EntryBody::Put(row(1)), false))), Code::LeaderFenced as i32);
        block_on(l.lock()).fenced = true;
        assert_eq!(code(block_on(l.write(EntryBody::Put(row(1)), true))), Code::LeaderFenced as i32);
        assert_eq!(Code::TableIsFollower.message(), "table is follower");
    }

    #[test]
    fn a_follower_skips_what_it_has_refuses_lower_terms_and_reports_gaps() {
        let f = partition(TableMode::Follower, 3);
        let req =
            |term, entries: Vec<LogEntry>| AppendEntriesRequest { tid: 1, pid: 0, term, pre_log_index: 0, entries };
        // A probe returns the offset; an older term is refused.
        assert_eq!(block_on(f.append_entries(req(3, vec![]))).unwrap(), 0);
        assert_eq!(code(block_on(f.append_entries(req(2, vec![entry(2, 1)])))), Code::TermIsLower as i32);
        // Entries apply in order; a resend of the same entries is skipped.
        assert_eq!(block_on(f.append_entries(req(3, vec![entry(3, 1), entry(3, 2)]))).unwrap(), 2);
        assert_eq!(block_on(f.append_entries(req(3, vec![entry(3, 1), entry(3, 2), entry(3, 3)]))).unwrap(), 3);
        assert_eq!(block_on(f.lock()).table.record_cnt(), 3);
        // A gap changes nothing and tells the leader where the follower is.
        assert_eq!(block_on(f.append_entries(req(3, vec![entry(3, 7)]))).unwrap(), 3);
        // A newer term is adopted, and then the old one is refused.
        assert_eq!(block_on(f.append_entries(req(5, vec![]))).unwrap(), 3);
        assert_eq!(block_on(f.lock()).meta.term, 5);
        assert_eq!(code(block_on(f.append_entries(req(3, vec![entry(3, 4)])))), Code::TermIsLower as i32);
        // A leader takes no entries.
        let l = partition(TableMode::Leader, 9);
        assert_eq!(code(block_on(l.append_entries(req(9, vec![entry(9, 1)])))), Code::TableIsLeader as i32);
    }
}
