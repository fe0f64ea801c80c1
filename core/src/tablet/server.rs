//! The [`Tablet`]: its partitions, its RPC handlers, loading and snapshots, and its background loops.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use tokio::task::JoinHandle;

use super::codes::Code;
use super::partition::{EntryBody, Partition, partition_dir};
use super::rpc as m;
use super::tasks::{TaskRef, TaskTable};
use super::{TabletConfig, replicator};
use crate::coord::{Coordinator, SessionState};
use crate::proto::tablet as pb;
use crate::proto::tablet::{TableMeta, TableMode, TableState, TaskType};
use crate::rpc::{ClientConfig, Method, RpcClient, RpcServer, ServerHandle, Status};
use crate::storage::binlog::{Binlog, BinlogConfig, BinlogError};
use crate::storage::memtable::{MemTable, TableSchema};
use crate::storage::{Disk, record, snapshot};

/// Milliseconds since the Unix epoch: TTLs are measured against it. Simulated time under madsim.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// One tablet process's state.
pub struct Tablet {
    pub(crate) config: TabletConfig,
    pub(crate) disk: Arc<dyn Disk>,
    partitions: Mutex<BTreeMap<(u32, u32), Arc<Partition>>>,
    tasks: TaskTable,
    clients: Mutex<BTreeMap<String, RpcClient>>,
    /// False while the coordination session is in doubt (DESIGN 5.1); always true without coordination.
    session_ok: AtomicBool,
    /// The registration loop's current session, asked for its state by the clock (see [`Tablet::session_ok`]).
    session: Mutex<Option<Arc<dyn Coordinator>>>,
    /// Puts seen, for the planted bugs' "every n-th".
    planted_puts: AtomicU64,
    /// When this process started ([`now_ms`]), reported with every GetTableStatus.
    started_ms: u64,
}

/// A running tablet; dropping it stops the server and the background loops.
pub struct TabletHandle {
    pub tablet: Arc<Tablet>,
    rpc: ServerHandle,
    loops: Vec<JoinHandle<()>>,
}

impl TabletHandle {
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.rpc.local_addr()
    }
    /// Runs until the process ends.
    pub async fn join(self) {
        std::future::pending::<()>().await;
    }
}

impl Drop for TabletHandle {
    fn drop(&mut self) {
        for l in &self.loops {
            l.abort();
        }
    }
}

fn meta_path(dir: &str) -> String {
    format!("{dir}/table_meta")
}
pub(super) fn binlog_dir(dir: &str) -> String {
    format!("{dir}/binlog")
}
pub(super) fn snapshot_dir(dir: &str) -> String {
    format!("{dir}/snapshot")
}

impl Tablet {
    /// Starts a tablet: binds its endpoint, starts the binlog sync and TTL loops, and registers with the
    /// coordination service if one is configured. It holds no partition until one is created or loaded.
    /// Syncs every binlog segment a previous process left: what it appended after its last sync is only page
    /// cache, and nothing else would make it durable before the nameserver asks for the partition back (a power
    /// loss in between would lose writes acknowledged long before). Best effort: an unreadable directory is the
    /// load's business.
    async fn sync_left_behind(&self) {
        let Ok(dirs) = self.disk.list_dir("").await else { return };
        let mut synced = 0usize;
        for dir in dirs {
            let bdir = binlog_dir(&dir);
            let Ok(files) = self.disk.list_dir(&bdir).await else { continue };
            for f in files.iter().filter(|f| f.ends_with(".log")) {
                if self.disk.sync_file(&format!("{bdir}/{f}")).await.is_ok() {
                    synced += 1;
                }
            }
        }
        if synced > 0 {
            tracing::info!(segments = synced, "synced the binlog segments a previous process left");
        }
    }

    pub async fn start(config: TabletConfig, disk: Arc<dyn Disk>) -> std::io::Result<TabletHandle> {
        let standalone = config.zk_cluster.is_empty();
        let tablet = Arc::new(Tablet {
            config,
            disk,
            partitions: Mutex::new(BTreeMap::new()),
            tasks: TaskTable::default(),
            clients: Mutex::new(BTreeMap::new()),
            session_ok: AtomicBool::new(standalone),
            session: Mutex::new(None),
            planted_puts: AtomicU64::new(0),
            started_ms: now_ms(),
        });
        tablet.sync_left_behind().await;
        let rpc = tablet.clone().rpc_server().bind(&tablet.config.endpoint).await?;
        tracing::info!(endpoint = %tablet.config.endpoint, "tablet started");
        let mut loops = vec![tokio::spawn(tablet.clone().binlog_sync_loop()), tokio::spawn(tablet.clone().gc_loop())];
        if !standalone {
            loops.push(tokio::spawn(super::registration::run(tablet.clone())));
        }
        Ok(TabletHandle { tablet, rpc, loops })
    }

    pub fn endpoint(&self) -> &str {
        &self.config.endpoint
    }

    /// A client read (Get, Scan) of a partition: refused while loading, and on a leader that cannot be sure it
    /// still leads (fenced, or its coordination session in doubt), as a write is (DESIGN 5.1): a deposed leader
    /// cut off from the coordination service would otherwise answer with rows a newer leader has overwritten. A
    /// follower answers (OpenMLDB's followers serve reads too); the answer names its role and term.
    fn leader_readable(&self, g: &super::partition::Inner) -> Result<(), Status> {
        readable(g)?;
        if g.is_leader() && !self.config.planted.stale_leader_reads && (g.fenced || !self.session_ok()) {
            return Err(Code::LeaderFenced.status());
        }
        Ok(())
    }

    /// Whether a leader may acknowledge a write as far as its coordination session goes (DESIGN 5.1).
    fn write_session_ok(&self) -> bool {
        self.config.planted.ack_after_session_expired || self.session_ok()
    }

    /// The session is registered and, by the clock, still in touch with the coordination service. The flag
    /// follows the session's events; asking the session itself too covers a process that was paused: it runs
    /// requests queued in its sockets before the session's own task has noticed how long it was away.
    fn session_ok(&self) -> bool {
        self.session_ok.load(Ordering::SeqCst)
            && self.session.lock().expect("session lock").as_ref().is_none_or(|c| c.state() == SessionState::Connected)
    }

    /// The session the registration loop holds now (`None`: none yet, or standalone).
    pub(crate) fn set_session(&self, session: Option<Arc<dyn Coordinator>>) {
        *self.session.lock().expect("session lock") = session;
    }

    pub(crate) fn set_session_ok(&self, ok: bool) {
        self.session_ok.store(ok, Ordering::SeqCst);
    }

    /// Fences every leader partition: after its session expired, a tablet cannot know whether the nameserver
    /// moved its leaders elsewhere, so it writes nothing as leader until told again.
    pub(crate) async fn fence_leaders(&self) {
        if self.config.planted.ack_after_session_expired {
            return;
        }
        for p in self.all_partitions() {
            let mut g = p.lock().await;
            if g.is_leader() && !g.fenced {
                g.fenced = true;
                tracing::info!(tid = p.tid, pid = p.pid, "leader fenced until the nameserver confirms it");
            }
        }
    }

    /// A partition whose binlog broke (a failed fsync leaves the page cache's state unknown) is unloaded, as a
    /// process stops on a failed fsync, instead of staying loaded and refusing every write while the nameserver
    /// believes it healthy. Its files stay; the nameserver's periodic pass finds the replica missing on a healthy
    /// tablet, fails the tablet's leaders over and loads the replicas again (once the disk works, the binlog's
    /// recovery decides what is there).
    async fn unload_if_broken(&self, part: &Arc<Partition>) {
        if self.config.planted.keep_broken_partitions {
            return;
        }
        let Some(cause) = part.binlog_broken().await else { return };
        if self.forget(part) {
            let mut g = part.lock().await;
            g.replicators.clear();
            g.binlog = None;
            g.trace_position("unload");
            drop(g);
            tracing::warn!(
                tid = part.tid,
                pid = part.pid,
                cause,
                "binlog broken: partition unloaded until it is loaded again"
            );
        }
    }

    /// Removes `part` from the partition map if it is still the one held there; true if it was.
    fn forget(&self, part: &Arc<Partition>) -> bool {
        let mut map = self.partitions.lock().expect("partition map lock");
        let key = (part.tid, part.pid);
        if map.get(&key).is_some_and(|p| Arc::ptr_eq(p, part)) { map.remove(&key).is_some() } else { false }
    }

    /// Runs a write; a failure that broke the binlog unloads the partition.
    async fn checked<T>(&self, part: &Arc<Partition>, r: Result<T, Status>) -> Result<T, Status> {
        if r.is_err() {
            self.unload_if_broken(part).await;
        }
        r
    }

    fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.lock().expect("partition map lock").values().cloned().collect()
    }

    fn partition(&self, tid: u32, pid: u32) -> Result<Arc<Partition>, Status> {
        self.partitions
            .lock()
            .expect("partition map lock")
            .get(&(tid, pid))
            .cloned()
            .ok_or_else(|| Code::TableIsNotExist.with(format!("tid {tid} pid {pid}")))
    }

    fn client(&self, endpoint: &str) -> RpcClient {
        self.clients
            .lock()
            .expect("client map lock")
            .entry(endpoint.to_string())
            .or_insert_with(|| RpcClient::new(endpoint, ClientConfig::default()))
            .clone()
    }

    fn binlog_config(&self) -> BinlogConfig {
        BinlogConfig { max_segment_bytes: self.config.binlog_single_file_max_size }
    }

    /// Refuses a task from a deposed nameserver (see [`TaskTable::admit`]).
    fn admit(&self, info: Option<&pb::TaskInfo>, tid: u32, pid: u32) -> Result<(), Status> {
        self.tasks.admit(info).map_err(|e| {
            tracing::warn!(tid, pid, reason = %e, "stale task refused");
            Code::StaleTask.with(e)
        })
    }

    /// Runs a task the nameserver may poll for: recorded as doing, then done or failed with `work`'s outcome.
    async fn tracked<T>(
        &self,
        info: Option<&pb::TaskInfo>,
        task_type: TaskType,
        (tid, pid): (u32, u32),
        work: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        self.admit(info, tid, pid)?;
        let task = self.tasks.start(info, task_type, tid, pid, &self.config.endpoint);
        let result = work.await;
        self.tasks.finish(&task, result.is_ok());
        result
    }

    // ---- background loops -----------------------------------------------------------------------------------

    /// fsyncs every binlog each `binlog_sync_to_disk_interval`: what a machine crash may lose. The binlogs sync
    /// at once, not one after the other: on a slow disk a round takes one fsync, not one per partition, so the
    /// unsynced window stays near the interval.
    async fn binlog_sync_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.config.binlog_sync_to_disk_interval).await;
            let this = &self;
            let syncs = self.all_partitions().into_iter().map(|p| async move {
                let failed = {
                    let mut g = p.lock().await;
                    match g.binlog.as_mut().map(|b| b.sync()) {
                        Some(sync) => sync.await.err(),
                        None => None,
                    }
                };
                if let Some(e) = failed {
                    tracing::warn!(tid = p.tid, pid = p.pid, error = %e, "binlog sync failed");
                    this.unload_if_broken(&p).await;
                }
            });
            futures::future::join_all(syncs).await;
        }
    }

    /// Evicts expired rows every `gc_interval`.
    async fn gc_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.config.gc_interval).await;
            let now = now_ms();
            for p in self.all_partitions() {
                let mut g = p.lock().await;
                if g.state == TableState::Normal {
                    g.table.gc(now);
                }
            }
        }
    }

    // ---- data path ------------------------------------------------------------------------------------------

    async fn put(&self, req: pb::PutRequest) -> Result<pb::PutResponse, Status> {
        let part = self.partition(req.tid, req.pid)?;
        let row = req.row.ok_or_else(|| Status::invalid_argument("put without a row"))?;
        let planted = self.config.planted;
        if planted.any() {
            let n = self.planted_puts.fetch_add(1, Ordering::SeqCst) + 1;
            if planted.ack_without_append_every > 0 && n.is_multiple_of(planted.ack_without_append_every) {
                let status = part.status();
                return Ok(pb::PutResponse { term: status.term, offset: status.offset, duplicate: false });
            }
            if planted.phantom_row_every > 0 && n.is_multiple_of(planted.phantom_row_every) {
                let mut phantom = row.clone();
                if let Some(key) = phantom.values.first_mut() {
                    *key = format!("phantom-{n}");
                }
                part.write(EntryBody::Put(phantom), self.write_session_ok()).await?;
            }
        }
        let request_id = req.request_id;
        let body = if request_id.is_empty() {
            EntryBody::Put(row)
        } else {
            EntryBody::PutOnce { row, request_id: request_id.clone() }
        };
        let written = part.write(body, self.write_session_ok()).await;
        let (term, offset) = self.checked(&part, written).await?;
        if offset == 0 {
            // The row of this request id is held already: an idempotent put writes nothing. On a semisync table
            // its answer waits like the first write's would: its entry is at or below the last offset.
            tracing::info!(tid = req.tid, pid = req.pid, request_id, "duplicate put dropped: its request id is held");
            if part.semisync {
                let last = part.lock().await.offset();
                self.await_semisync(&part, last).await?;
            }
            return Ok(pb::PutResponse { term: 0, offset: 0, duplicate: true });
        }
        self.await_semisync(&part, offset).await?;
        Ok(pb::PutResponse { term, offset, duplicate: false })
    }

    async fn delete(&self, req: pb::DeleteRequest) -> Result<pb::DeleteResponse, Status> {
        let part = self.partition(req.tid, req.pid)?;
        let body = EntryBody::Delete { idx: req.idx, key: req.key };
        let written = part.write(body, self.write_session_ok()).await;
        let (term, offset) = self.checked(&part, written).await?;
        self.await_semisync(&part, offset).await?;
        Ok(pb::DeleteResponse { term, offset })
    }

    /// DESIGN 5.3: a semi-synchronous table acknowledges only once a follower has the entry.
    async fn await_semisync(&self, part: &Partition, offset: u64) -> Result<(), Status> {
        if part.semisync && !self.config.planted.semisync_ack_unreplicated {
            part.wait_replicated(offset, self.config.semisync_timeout).await
        } else {
            Ok(())
        }
    }

    async fn get(&self, req: pb::GetRequest) -> Result<pb::GetResponse, Status> {
        let part = self.partition(req.tid, req.pid)?;
        let g = part.lock().await;
        self.leader_readable(&g)?;
        let (term, leader) = (g.meta.term, g.is_leader());
        match g.table.get(req.idx, &req.key, now_ms()) {
            Some((ts, value)) => Ok(pb::GetResponse { found: true, ts, row: Some(decode_row(&value)?), term, leader }),
            None => Ok(pb::GetResponse { found: false, ts: 0, row: None, term, leader }),
        }
    }

    async fn scan(&self, req: pb::ScanRequest) -> Result<pb::ScanResponse, Status> {
        if req.st != 0 && req.st < req.et {
            return Err(Code::StLessThanEt.status());
        }
        let part = self.partition(req.tid, req.pid)?;
        let g = part.lock().await;
        self.leader_readable(&g)?;
        let found = g.table.scan(req.idx, &req.key, req.st, req.et, req.limit as usize, now_ms());
        let mut resp = pb::ScanResponse::default();
        for (ts, value) in found {
            resp.ts.push(ts);
            resp.rows.push(decode_row(&value)?);
        }
        Ok(resp)
    }

    async fn dump(&self, req: pb::DumpRequest) -> Result<pb::DumpResponse, Status> {
        let part = self.partition(req.tid, req.pid)?;
        let g = part.lock().await;
        readable(&g)?;
        let limit = if req.limit == 0 { usize::MAX } else { req.limit as usize };
        let rows = g.table.rows().take(limit).map(|e| decode_row(&e.value)).collect::<Result<_, _>>()?;
        Ok(pb::DumpResponse { rows, offset: g.offset() })
    }

    // ---- partition lifecycle --------------------------------------------------------------------------------

    fn schema_of(meta: &TableMeta) -> Result<Arc<TableSchema>, Status> {
        TableSchema::from_meta(meta).map(Arc::new).map_err(|e| Code::TableMetaIsIllegal.with(e))
    }

    async fn write_meta(&self, meta: &TableMeta) -> Result<(), Status> {
        let dir = partition_dir(meta.tid, meta.pid);
        let io = |e: std::io::Error| Code::WriteDataFailed.with(e);
        self.disk.create_dir_all(&dir).await.map_err(io)?;
        let tmp = format!("{dir}/table_meta.tmp");
        self.disk.write_file(&tmp, &record::encode(&meta.encode_to_vec())).await.map_err(io)?;
        self.disk.sync_file(&tmp).await.map_err(io)?;
        self.disk.rename(&tmp, &meta_path(&dir)).await.map_err(io)?;
        self.disk.sync_dir(&dir).await.map_err(io)
    }

    /// Inserts `part` unless (tid, pid) is already held.
    fn insert(&self, part: Arc<Partition>) -> Result<(), Status> {
        let mut map = self.partitions.lock().expect("partition map lock");
        if map.contains_key(&(part.tid, part.pid)) {
            return Err(Code::TableAlreadyExists.with(format!("tid {} pid {}", part.tid, part.pid)));
        }
        map.insert((part.tid, part.pid), part);
        Ok(())
    }

    /// Starts a replicator for every follower of a leader partition (the caller holds its lock).
    fn start_replicators(&self, part: &Arc<Partition>, g: &mut super::partition::Inner) {
        g.replicators.clear();
        if !g.is_leader() {
            return;
        }
        for ep in g.meta.replicas.clone() {
            if ep == self.config.endpoint {
                continue;
            }
            let handle = replicator::start(
                part,
                ep.clone(),
                self.client(&ep),
                g.meta.term,
                self.config.replicator.clone(),
                self.disk.clone(),
            );
            g.replicators.insert(ep, handle);
        }
    }

    /// CreateTable: a new, empty partition, ready at once.
    async fn create_table(&self, req: pb::CreateTableRequest) -> Result<pb::GeneralResponse, Status> {
        let meta = req.meta.ok_or_else(|| Code::TableMetaIsIllegal.with("no meta"))?;
        let schema = Self::schema_of(&meta)?;
        let dir = partition_dir(meta.tid, meta.pid);
        if self.disk.exists(&binlog_dir(&dir)).await.unwrap_or(false) {
            let files = self.disk.list_dir(&binlog_dir(&dir)).await.unwrap_or_default();
            if !files.is_empty() {
                return Err(Code::CreateTableFailed.with(format!("{dir} holds data on disk; load or drop it first")));
            }
        }
        let part = Arc::new(Partition::new(meta.clone(), schema, TableState::Normal));
        part.plant(self.config.planted);
        self.insert(part.clone())?;
        let opened = async {
            self.write_meta(&meta).await?;
            Binlog::open(self.disk.clone(), &binlog_dir(&dir), self.binlog_config(), 0)
                .await
                .map_err(|e| Code::CreateTableFailed.with(e))
        }
        .await;
        match opened {
            Ok((binlog, _)) => {
                let mut g = part.lock().await;
                g.binlog = Some(binlog);
                self.start_replicators(&part, &mut g);
                g.trace_position("create");
                tracing::info!(tid = meta.tid, pid = meta.pid, mode = ?meta.mode(), term = meta.term, "table created");
                Ok(pb::GeneralResponse {})
            }
            Err(e) => {
                self.partitions.lock().expect("partition map lock").remove(&(meta.tid, meta.pid));
                Err(e)
            }
        }
    }

    /// The partition's `table_meta` on disk, if there is one.
    async fn read_meta(&self, tid: u32, pid: u32) -> Result<Option<TableMeta>, Status> {
        let path = meta_path(&partition_dir(tid, pid));
        if !self.disk.exists(&path).await.unwrap_or(false) {
            return Ok(None);
        }
        let bytes = self.disk.read(&path).await.map_err(|e| Code::TableMetaIsIllegal.with(e))?;
        match record::decode(&bytes) {
            record::Decoded::Record { payload, .. } => {
                TableMeta::decode(payload).map(Some).map_err(|e| Code::TableMetaIsIllegal.with(format!("{path}: {e}")))
            }
            other => Err(Code::TableMetaIsIllegal.with(format!("{path}: {other:?}"))),
        }
    }

    /// As OpenMLDB's LoadTable: the request's meta wins over the one on disk, except that what the request leaves
    /// out (the schema, when the tablet client sends only name, tid, pid and role; the term) comes from disk.
    async fn merge_meta(&self, mut meta: TableMeta) -> Result<TableMeta, Status> {
        let Some(disk) = self.read_meta(meta.tid, meta.pid).await? else { return Ok(meta) };
        if meta.column_desc.is_empty() {
            if !meta.name.is_empty() && meta.name != disk.name {
                return Err(Code::TableMetaIsIllegal.with(format!(
                    "tid {} pid {} on disk is table {:?}, not {:?}",
                    meta.tid, meta.pid, disk.name, meta.name
                )));
            }
            meta.column_desc = disk.column_desc;
            meta.column_key = disk.column_key;
            meta.db = disk.db;
            meta.replication = disk.replication;
            if meta.name.is_empty() {
                meta.name = disk.name;
            }
        }
        if meta.term == 0 {
            meta.term = disk.term;
        }
        Ok(meta)
    }

    /// LoadTable: registers the partition as loading and restores snapshot + binlog in the background.
    async fn load_table(self: Arc<Self>, req: pb::LoadTableRequest) -> Result<pb::GeneralResponse, Status> {
        let meta = req.meta.ok_or_else(|| Code::TableMetaIsIllegal.with("no meta"))?;
        self.admit(req.task_info.as_ref(), meta.tid, meta.pid)?;
        if self.partition(meta.tid, meta.pid).is_ok() {
            return Err(Code::TableAlreadyExists.with(format!("tid {} pid {}", meta.tid, meta.pid)));
        }
        let meta = self.merge_meta(meta).await?;
        let schema = Self::schema_of(&meta)?;
        let part = Arc::new(Partition::new(meta.clone(), schema.clone(), TableState::Loading));
        part.plant(self.config.planted);
        self.insert(part.clone())?;
        if let Err(e) = self.write_meta(&meta).await {
            self.partitions.lock().expect("partition map lock").remove(&(meta.tid, meta.pid));
            return Err(e);
        }
        let task =
            self.tasks.start(req.task_info.as_ref(), TaskType::LoadTable, meta.tid, meta.pid, &self.config.endpoint);
        let tablet = self.clone();
        tokio::spawn(async move {
            let result = tablet.restore(&part, schema).await;
            tablet.finish_load(&part, &task, result).await;
        });
        Ok(pb::GeneralResponse {})
    }

    /// Rebuilds a partition from its snapshot and binlog (reference 3.6).
    async fn restore(&self, part: &Arc<Partition>, schema: Arc<TableSchema>) -> Result<(), String> {
        let dir = part.dir();
        let mut table = MemTable::new(schema);
        let manifest = snapshot::load(self.disk.clone(), &snapshot_dir(&dir), &mut table)
            .await
            .map_err(|e| format!("snapshot: {e}"))?;
        let floor = manifest.as_ref().map(|m| m.offset).unwrap_or(0);
        let (binlog, report) = Binlog::open(self.disk.clone(), &binlog_dir(&dir), self.binlog_config(), floor)
            .await
            .map_err(|e| format!("binlog: {e}"))?;
        let mut cursor = binlog.cursor_at(floor + 1);
        let mut replayed = 0u64;
        loop {
            let batch = binlog.read_from(&mut cursor, 1024).await.map_err(|e| format!("binlog: {e}"))?;
            if batch.is_empty() {
                break;
            }
            for e in &batch {
                table.apply(e).map_err(|err| format!("binlog entry {}: {err}", e.log_index))?;
            }
            replayed += batch.len() as u64;
        }
        let mut g = part.lock().await;
        g.table = table;
        g.snapshot_offset = floor;
        let offset = binlog.last_offset();
        g.binlog = Some(binlog);
        g.state = TableState::Normal;
        g.fenced = false;
        self.start_replicators(part, &mut g);
        g.trace_position("load");
        drop(g);
        part.publish_written(offset);
        tracing::info!(
            tid = part.tid,
            pid = part.pid,
            snapshot_offset = floor,
            replayed,
            offset,
            cut_bytes = report.cut_bytes,
            "table loaded"
        );
        Ok(())
    }

    async fn finish_load(&self, part: &Arc<Partition>, task: &TaskRef, result: Result<(), String>) {
        if let Err(e) = &result {
            tracing::warn!(tid = part.tid, pid = part.pid, error = %e, "load table failed");
            let mut map = self.partitions.lock().expect("partition map lock");
            if map.get(&(part.tid, part.pid)).is_some_and(|p| Arc::ptr_eq(p, part)) {
                map.remove(&(part.tid, part.pid));
            }
        }
        self.tasks.finish(task, result.is_ok());
    }

    async fn drop_table(&self, req: pb::TablePidRequest) -> Result<pb::GeneralResponse, Status> {
        self.admit(req.task_info.as_ref(), req.tid, req.pid)?;
        let task =
            self.tasks.start(req.task_info.as_ref(), TaskType::DropTable, req.tid, req.pid, &self.config.endpoint);
        let part = self.partitions.lock().expect("partition map lock").remove(&(req.tid, req.pid));
        let Some(part) = part else {
            self.tasks.finish(&task, false);
            return Err(Code::TableIsNotExist.status());
        };
        {
            let mut g = part.lock().await;
            g.replicators.clear();
            if let Some(b) = g.binlog.as_mut() {
                let _ = b.sync().await;
            }
            g.binlog = None;
            g.trace_position("drop");
        }
        // As OpenMLDB's recycle bin: dropped data is moved aside, not destroyed.
        let dir = part.dir();
        let result = self.recycle(&dir).await;
        self.tasks.finish(&task, result.is_ok());
        tracing::info!(tid = req.tid, pid = req.pid, "table dropped");
        result.map(|_| pb::GeneralResponse {})
    }

    async fn recycle(&self, dir: &str) -> Result<(), Status> {
        let io = |e: std::io::Error| Code::WriteDataFailed.with(e);
        if !self.disk.exists(dir).await.map_err(io)? {
            return Ok(());
        }
        self.disk.create_dir_all("recycle").await.map_err(io)?;
        let existing = self.disk.list_dir("recycle").await.map_err(io)?;
        let name = (0..).map(|n| format!("{dir}.{n}")).find(|n| !existing.contains(n)).expect("a free name");
        self.disk.rename(dir, &format!("recycle/{name}")).await.map_err(io)
    }

    async fn get_table_status(&self, req: pb::GetTableStatusRequest) -> Result<pb::GetTableStatusResponse, Status> {
        let every = req.all || (req.tid == 0 && req.pid == 0);
        let mut all = Vec::new();
        for p in self.all_partitions() {
            if every || (p.tid == req.tid && p.pid == req.pid) {
                all.push(p.status());
            }
        }
        if !every && all.is_empty() {
            return Err(Code::TableIsNotExist.with(format!("tid {} pid {}", req.tid, req.pid)));
        }
        Ok(pb::GetTableStatusResponse { all_table_status: all, started_ms: self.started_ms })
    }

    /// ChangeRole: follower → leader in a new term with the given followers, or leader → follower.
    async fn change_role(&self, req: pb::ChangeRoleRequest) -> Result<pb::GeneralResponse, Status> {
        let part = self.partition(req.tid, req.pid)?;
        let mut g = part.lock().await;
        readable(&g)?;
        let mode = req.mode();
        if req.term < g.meta.term {
            return Err(Code::TermIsLower.with(format!("{} < {}", req.term, g.meta.term)));
        }
        if mode == TableMode::Leader && g.is_leader() && req.term == g.meta.term {
            // A confirmation (DESIGN 5.1: the nameserver still names this fenced leader): role, term and the
            // followers it replicates to stay. The request lists only the followers the metadata counts as alive;
            // one being re-added is not yet, and dropping its replicator would leave it alive and fed by nobody.
            let new: Vec<String> = req.replicas.into_iter().filter(|ep| !g.meta.replicas.contains(ep)).collect();
            if !new.is_empty() {
                let mut meta = g.meta.clone();
                meta.replicas.extend(new.iter().cloned());
                self.write_meta(&meta).await?;
                g.meta = meta;
                for ep in new.into_iter().filter(|ep| *ep != self.config.endpoint) {
                    let handle = replicator::start(
                        &part,
                        ep.clone(),
                        self.client(&ep),
                        g.meta.term,
                        self.config.replicator.clone(),
                        self.disk.clone(),
                    );
                    g.replicators.insert(ep, handle);
                }
            }
            g.fenced = false;
            drop(g);
            tracing::info!(tid = req.tid, pid = req.pid, term = req.term, "leader confirmed");
            return Ok(pb::GeneralResponse {});
        }
        // The new role is written before it is taken: a role change whose meta cannot be persisted changes
        // nothing, so the nameserver's retry (or its next leader selection) finds the partition as it was.
        let mut meta = g.meta.clone();
        meta.mode = mode as i32;
        meta.term = req.term;
        meta.replicas = if mode == TableMode::Leader { req.replicas } else { vec![] };
        self.write_meta(&meta).await?;
        g.meta = meta;
        g.fenced = false;
        self.start_replicators(&part, &mut g);
        g.trace_position("role");
        drop(g);
        tracing::info!(tid = req.tid, pid = req.pid, mode = ?mode, term = req.term, "role changed");
        Ok(pb::GeneralResponse {})
    }

    async fn add_replica(&self, req: pb::ReplicaRequest) -> Result<pb::GeneralResponse, Status> {
        let at = (req.tid, req.pid);
        self.tracked(req.task_info.as_ref(), TaskType::AddReplica, at, async {
            let part = self.partition(req.tid, req.pid)?;
            let mut g = part.lock().await;
            readable(&g)?;
            if !g.is_leader() {
                return Err(Code::ReplicatorRoleIsNotLeader.status());
            }
            if g.meta.replicas.contains(&req.endpoint) {
                return Err(Code::ReplicaEndpointAlreadyExists.with(&req.endpoint));
            }
            g.meta.replicas.push(req.endpoint.clone());
            let handle = replicator::start(
                &part,
                req.endpoint.clone(),
                self.client(&req.endpoint),
                g.meta.term,
                self.config.replicator.clone(),
                self.disk.clone(),
            );
            g.replicators.insert(req.endpoint.clone(), handle);
            if let Some(t) = req.task_info.as_ref() {
                g.added_by.insert(req.endpoint.clone(), (t.ns_epoch, t.op_id));
            }
            let meta = g.meta.clone();
            drop(g);
            self.write_meta(&meta).await
        })
        .await
        .map(|_| pb::GeneralResponse {})
    }

    async fn del_replica(&self, req: pb::ReplicaRequest) -> Result<pb::GeneralResponse, Status> {
        let at = (req.tid, req.pid);
        self.tracked(req.task_info.as_ref(), TaskType::DelReplica, at, async {
            let part = self.partition(req.tid, req.pid)?;
            let mut g = part.lock().await;
            if !g.is_leader() {
                return Err(Code::ReplicatorRoleIsNotLeader.status());
            }
            if let (Some(t), Some(&(epoch, op))) = (req.task_info.as_ref(), g.added_by.get(&req.endpoint))
                && (t.ns_epoch, t.op_id) < (epoch, op)
            {
                return Err(Code::StaleTask.with(format!(
                    "op {} (nameserver epoch {}) is older than op {op} (epoch {epoch}) that added {}",
                    t.op_id, t.ns_epoch, req.endpoint
                )));
            }
            if g.replicators.remove(&req.endpoint).is_none() && !g.meta.replicas.contains(&req.endpoint) {
                return Err(Code::ReplicatorIsNotExist.with(&req.endpoint));
            }
            g.meta.replicas.retain(|e| e != &req.endpoint);
            g.added_by.remove(&req.endpoint);
            let meta = g.meta.clone();
            drop(g);
            let (op_id, ns_epoch) = req.task_info.as_ref().map_or((0, 0), |t| (t.op_id, t.ns_epoch));
            tracing::info!(tid = req.tid, pid = req.pid, endpoint = %req.endpoint, op_id, ns_epoch, "replica removed from replication");
            self.write_meta(&meta).await
        })
        .await
        .map(|_| pb::GeneralResponse {})
    }

    // ---- snapshots ------------------------------------------------------------------------------------------

    /// MakeSnapshot: merges the previous snapshot with the binlog up to `offset` (0: the current offset), in the
    /// background, then lets binlog segments every follower and the snapshot have passed be deleted.
    async fn make_snapshot(self: Arc<Self>, req: pb::MakeSnapshotRequest) -> Result<pb::GeneralResponse, Status> {
        self.admit(req.task_info.as_ref(), req.tid, req.pid)?;
        let task =
            self.tasks.start(req.task_info.as_ref(), TaskType::MakeSnapshot, req.tid, req.pid, &self.config.endpoint);
        let prepared = async {
            let part = self.partition(req.tid, req.pid)?;
            let mut g = part.lock().await;
            match g.state {
                TableState::Normal => {}
                TableState::MakingSnapshot => return Err(Code::TableStatusIsKmakingsnapshot.status()),
                _ => return Err(Code::TableStatusIsNotKnormal.status()),
            }
            let end = if req.offset == 0 { g.offset() } else { req.offset.min(g.offset()) };
            if end <= g.snapshot_offset {
                // Nothing new since the last snapshot: it is already up to date.
                return Ok(None);
            }
            // Gather the entries now, under the lock; the merge and the disk writes run in the background.
            let binlog = g.binlog.as_ref().ok_or_else(|| Code::TableIsLoading.status())?;
            let mut cursor = binlog.cursor_at(g.snapshot_offset + 1);
            let mut entries = Vec::new();
            while (entries.len() as u64) < end - g.snapshot_offset {
                let batch = match binlog.read_from(&mut cursor, 4096).await {
                    Ok(batch) => batch,
                    Err(BinlogError::Corrupt { after_index, file, byte_offset, reason }) => {
                        let cause = format!("{file}: damaged record at byte {byte_offset}: {reason}");
                        return Ok(Some(Err((part.clone(), after_index, cause))));
                    }
                    Err(e) => return Err(Code::SnapshotIsNotExist.with(e)),
                };
                if batch.is_empty() {
                    break;
                }
                entries.extend(batch.into_iter().filter(|e| e.log_index <= end));
            }
            let term = g.meta.term;
            let schema = g.schema.clone();
            g.state = TableState::MakingSnapshot;
            Ok(Some(Ok((part.clone(), entries, end, term, schema))))
        }
        .await;
        let (part, entries, end, term, schema) = match prepared {
            Ok(Some(Ok(p))) => p,
            Ok(Some(Err((part, after_index, cause)))) => {
                // DESIGN 5.6: the binlog cannot be merged past a damaged record, but memory holds every entry.
                let disk = self.disk.clone();
                let tablet = self.clone();
                tokio::spawn(async move {
                    let made = super::rebuild::protect(&part, disk, after_index, &cause).await;
                    if let Err(e) = &made {
                        tracing::warn!(tid = part.tid, pid = part.pid, error = %e, "snapshot of memory failed");
                    }
                    tablet.tasks.finish(&task, made.is_ok());
                });
                return Ok(pb::GeneralResponse {});
            }
            Ok(None) => {
                tracing::info!(tid = req.tid, pid = req.pid, "snapshot already up to date");
                self.tasks.finish(&task, true);
                return Ok(pb::GeneralResponse {});
            }
            Err(e) => {
                self.tasks.finish(&task, false);
                return Err(e);
            }
        };
        let tablet = self.clone();
        tokio::spawn(async move {
            let dir = part.dir();
            let made =
                snapshot::make(tablet.disk.clone(), &snapshot_dir(&dir), &schema, entries, end, term, now_ms()).await;
            let mut g = part.lock().await;
            g.state = TableState::Normal;
            match made {
                Ok(manifest) => {
                    g.snapshot_offset = manifest.offset;
                    let followers_min =
                        g.replicators.values().map(|r| r.acked.load(Ordering::Relaxed)).min().unwrap_or(u64::MAX);
                    let keep_from = manifest.offset.min(followers_min).saturating_add(1);
                    if let Some(b) = g.binlog.as_mut()
                        && let Err(e) = b.delete_segments_before(keep_from).await
                    {
                        tracing::warn!(tid = part.tid, pid = part.pid, error = %e, "old binlog segments not deleted");
                    }
                    tracing::info!(
                        tid = part.tid,
                        pid = part.pid,
                        offset = manifest.offset,
                        count = manifest.count,
                        "snapshot made"
                    );
                    tablet.tasks.finish(&task, true);
                }
                Err(e) => {
                    tracing::warn!(tid = part.tid, pid = part.pid, error = %e, "snapshot failed");
                    tablet.tasks.finish(&task, false);
                }
            }
        });
        Ok(pb::GeneralResponse {})
    }

    async fn pause_snapshot(&self, req: pb::TablePidRequest) -> Result<pb::GeneralResponse, Status> {
        let at = (req.tid, req.pid);
        self.tracked(req.task_info.as_ref(), TaskType::PauseSnapshot, at, async {
            let part = self.partition(req.tid, req.pid)?;
            let mut g = part.lock().await;
            match g.state {
                TableState::Normal | TableState::SnapshotPaused => {
                    g.state = TableState::SnapshotPaused;
                    Ok(())
                }
                TableState::MakingSnapshot => Err(Code::TableStatusIsKmakingsnapshot.status()),
                _ => Err(Code::TableStatusIsNotKnormal.status()),
            }
        })
        .await
        .map(|_| pb::GeneralResponse {})
    }

    async fn recover_snapshot(&self, req: pb::TablePidRequest) -> Result<pb::GeneralResponse, Status> {
        let at = (req.tid, req.pid);
        self.tracked(req.task_info.as_ref(), TaskType::RecoverSnapshot, at, async {
            let part = self.partition(req.tid, req.pid)?;
            let mut g = part.lock().await;
            match g.state {
                TableState::Normal | TableState::SnapshotPaused => {
                    g.state = TableState::Normal;
                    Ok(())
                }
                _ => Err(Code::TableStatusIsNotKsnapshotpaused.status()),
            }
        })
        .await
        .map(|_| pb::GeneralResponse {})
    }

    /// SendSnapshot: the paused leader ships its table meta and snapshot files to another tablet.
    async fn send_snapshot(self: Arc<Self>, req: pb::SendSnapshotRequest) -> Result<pb::GeneralResponse, Status> {
        self.admit(req.task_info.as_ref(), req.tid, req.pid)?;
        let task =
            self.tasks.start(req.task_info.as_ref(), TaskType::SendSnapshot, req.tid, req.pid, &self.config.endpoint);
        let prepared = async {
            let part = self.partition(req.tid, req.pid)?;
            let g = part.lock().await;
            if !g.is_leader() {
                return Err(Code::TableIsFollower.status());
            }
            if g.state != TableState::SnapshotPaused {
                return Err(Code::TableStatusIsNotKsnapshotpaused.status());
            }
            let mut meta = g.meta.clone();
            drop(g);
            meta.mode = TableMode::Follower as i32;
            meta.replicas.clear();
            let files = snapshot::files(self.disk.clone(), &snapshot_dir(&part.dir()))
                .await
                .map_err(|e| Code::SnapshotIsNotExist.with(e))?;
            Ok((meta, files))
        }
        .await;
        let (meta, files) = match prepared {
            Ok(p) => p,
            Err(e) => {
                self.tasks.finish(&task, false);
                return Err(e);
            }
        };
        let tablet = self.clone();
        tokio::spawn(async move {
            let files = files.into_iter().map(|(name, data)| pb::SnapshotFile { name, data: data.into() }).collect();
            let install = pb::InstallSnapshotRequest { meta: Some(meta), files, rebuild_term: 0 };
            let client = tablet.client(&req.endpoint);
            let sent = client.call_timeout(m::InstallSnapshot, install, Duration::from_secs(60)).await;
            if let Err(e) = &sent {
                tracing::warn!(tid = req.tid, pid = req.pid, to = %req.endpoint, error = %e, "send snapshot failed");
            } else {
                tracing::info!(tid = req.tid, pid = req.pid, to = %req.endpoint, "snapshot sent");
            }
            tablet.tasks.finish(&task, sent.is_ok());
        });
        Ok(pb::GeneralResponse {})
    }

    /// The receiving side of SendSnapshot: writes the meta and the snapshot of a partition this tablet does not
    /// hold, ready for LoadTable.
    async fn install_snapshot(&self, req: pb::InstallSnapshotRequest) -> Result<pb::GeneralResponse, Status> {
        let meta = req.meta.ok_or_else(|| Code::TableMetaIsIllegal.with("no meta"))?;
        if req.rebuild_term > 0 {
            let files = req.files.into_iter().map(|f| (f.name, f.data.to_vec())).collect();
            return self.rebuild_replica(meta.tid, meta.pid, req.rebuild_term, files).await;
        }
        if self.partition(meta.tid, meta.pid).is_ok() {
            return Err(Code::TableAlreadyExists.status());
        }
        // The partition becomes exactly the sent snapshot: whatever this tablet kept of it (an older snapshot, a
        // binlog tail) would otherwise be loaded on top of it and diverge from the leader.
        let dir = partition_dir(meta.tid, meta.pid);
        for old in [snapshot_dir(&dir), binlog_dir(&dir)] {
            if self.disk.exists(&old).await.unwrap_or(false) {
                self.disk.remove_dir_all(&old).await.map_err(|e| Code::WriteDataFailed.with(e))?;
            }
        }
        self.write_meta(&meta).await?;
        let files = req.files.into_iter().map(|f| (f.name, f.data.to_vec())).collect();
        snapshot::install(self.disk.clone(), &snapshot_dir(&partition_dir(meta.tid, meta.pid)), files)
            .await
            .map_err(|e| Code::WriteDataFailed.with(e))?;
        Ok(pb::GeneralResponse {})
    }

    /// The follower's side of a rebuild (DESIGN 5.6): its leader in `term` cannot feed it from its binlog and sent
    /// a snapshot of its memory. The loaded follower replica becomes exactly that snapshot: rows, snapshot on disk,
    /// and an empty binlog continuing it, so replication goes on from the snapshot's offset. Files that do not
    /// verify change nothing. A failure after the old state was let go (a disk error) unloads the partition, as a
    /// broken binlog does, so the nameserver finds the replica missing and re-adds it; so does a rebuild with no
    /// files, by which the leader gives up on feeding this replica.
    async fn rebuild_replica(
        &self,
        tid: u32,
        pid: u32,
        term: u64,
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<pb::GeneralResponse, Status> {
        let part = self.partition(tid, pid)?;
        let mut g = part.lock().await;
        readable(&g)?;
        if g.is_leader() {
            return Err(Code::TableIsLeader.status());
        }
        if term < g.meta.term {
            return Err(Code::TermIsLower.with(format!("rebuild term {term} < {}", g.meta.term)));
        }
        if files.is_empty() {
            self.forget(&part);
            g.binlog = None;
            g.trace_position("unload");
            drop(g);
            tracing::warn!(
                tid,
                pid,
                term,
                "the leader cannot feed this replica: partition unloaded until it is re-added"
            );
            return Ok(pb::GeneralResponse {});
        }
        let dir = part.dir();
        let had = g.offset();
        // Verified before anything is written: bad files leave the replica as it was.
        if let Err(e) = snapshot::install(self.disk.clone(), &snapshot_dir(&dir), files).await {
            let unchanged = !matches!(e, snapshot::SnapshotError::Io(_));
            if !unchanged {
                self.forget(&part);
                g.binlog = None;
                g.trace_position("unload");
                tracing::warn!(tid, pid, error = %e, "rebuild failed part-way: partition unloaded until it is re-added");
            }
            return Err(Code::WriteDataFailed.with(format!("rebuild of tid {tid} pid {pid}: {e}")));
        }
        g.binlog = None;
        let rebuilt = async {
            let bdir = binlog_dir(&dir);
            if self.disk.exists(&bdir).await.map_err(|e| e.to_string())? {
                self.disk.remove_dir_all(&bdir).await.map_err(|e| e.to_string())?;
            }
            let mut table = MemTable::new(g.schema.clone());
            let manifest = snapshot::load(self.disk.clone(), &snapshot_dir(&dir), &mut table)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("the installed snapshot is missing")?;
            let (binlog, _) = Binlog::open(self.disk.clone(), &bdir, self.binlog_config(), manifest.offset)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((table, binlog, manifest))
        }
        .await;
        match rebuilt {
            Ok((table, binlog, manifest)) => {
                g.table = table;
                g.binlog = Some(binlog);
                g.snapshot_offset = manifest.offset;
                g.meta.term = g.meta.term.max(term);
                g.trace_position("rebuild");
                drop(g);
                part.publish_written(manifest.offset);
                tracing::warn!(
                    tid,
                    pid,
                    term,
                    had,
                    offset = manifest.offset,
                    rows = manifest.count,
                    "replica rebuilt from its leader's snapshot of memory"
                );
                Ok(pb::GeneralResponse {})
            }
            Err(e) => {
                self.forget(&part);
                g.trace_position("unload");
                drop(g);
                tracing::warn!(tid, pid, error = %e, "rebuild failed part-way: partition unloaded until it is re-added");
                Err(Code::WriteDataFailed.with(format!("rebuild of tid {tid} pid {pid}: {e}")))
            }
        }
    }

    /// GetTermPair (reference 5.6 step 2): with the partition in memory, its term and offset; without it, the last
    /// entry its disk holds, snapshot and binlog (0/0 when nothing). Deliberate change: OpenMLDB reports only the
    /// snapshot MANIFEST and the nameserver deletes the binlog; here a binlog that is a prefix of the history is
    /// kept and loaded (see `decide_recover_table`), so it must be counted. Opening the binlog cuts a torn tail, as
    /// loading it would; a binlog damaged before its last record is reported unreadable, with the snapshot's term
    /// and offset, and left as it is.
    ///
    /// Deliberate change: a loaded partition reports the term of its log's last entry, not the term it is in. A
    /// deposed leader turned follower adopts the new term before it receives an entry of it, while its log still
    /// ends in entries of its own term that the new leader never had; reported with the new term, that tail looked
    /// like a prefix of the history and the replica was re-attached with it (the fuzzer found two replicas holding
    /// different rows at the same offset, seed 109030). An empty log reports the current term (the reference's
    /// rule for a replica that adopted the newest term before its first entry).
    async fn get_term_pair(&self, req: pb::TablePidRequest) -> Result<pb::GetTermPairResponse, Status> {
        let dir = partition_dir(req.tid, req.pid);
        if let Ok(part) = self.partition(req.tid, req.pid) {
            let (is_leader, offset, log_term, current) = {
                let g = part.lock().await;
                (g.is_leader(), g.offset(), g.binlog.as_ref().map_or(0, Binlog::last_term), g.meta.term)
            };
            let term = match (offset, log_term) {
                (0, _) => current,
                (_, 0) => {
                    // The last entry is the snapshot's (its binlog was compacted away or it was installed).
                    let manifest = snapshot::read_manifest(self.disk.clone(), &snapshot_dir(&dir)).await.ok().flatten();
                    manifest.filter(|m| m.offset == offset).map_or(current, |m| m.term)
                }
                (_, t) => t,
            };
            return Ok(pb::GetTermPairResponse { has_table: true, is_leader, term, offset, binlog_unreadable: false });
        }
        let io = |e: std::io::Error| Code::WriteDataFailed.with(e);
        if !self.disk.exists(&dir).await.map_err(io)? {
            return Ok(pb::GetTermPairResponse {
                has_table: false,
                is_leader: false,
                term: 0,
                offset: 0,
                ..Default::default()
            });
        }
        let manifest = snapshot::read_manifest(self.disk.clone(), &snapshot_dir(&dir))
            .await
            .map_err(|e| Code::SnapshotIsNotExist.with(e))?;
        let (snap_term, floor) = manifest.map(|m| (m.term, m.offset)).unwrap_or((0, 0));
        let binlog = match Binlog::open(self.disk.clone(), &binlog_dir(&dir), self.binlog_config(), floor).await {
            Ok((binlog, _)) => binlog,
            Err(e) => {
                // Nothing on disk changed; the nameserver deletes it and re-adds the replica from the snapshot.
                tracing::warn!(tid = req.tid, pid = req.pid, error = %e, "binlog unreadable: only the snapshot counts");
                return Ok(pb::GetTermPairResponse {
                    has_table: false,
                    is_leader: false,
                    term: snap_term,
                    offset: floor,
                    binlog_unreadable: true,
                });
            }
        };
        let offset = binlog.last_offset();
        let term = if binlog.last_term() > 0 { binlog.last_term() } else { snap_term };
        Ok(pb::GetTermPairResponse { has_table: false, is_leader: false, term, offset, binlog_unreadable: false })
    }

    /// GetLogOffset (for recoverdata, not in OpenMLDB): the last entry a replica holds, in memory or on disk. Since
    /// GetTermPair counts the binlog of an unloaded replica too, the two answer alike; recoverdata keeps its own
    /// method so its reading does not depend on the re-add rule.
    async fn get_log_offset(&self, req: pb::TablePidRequest) -> Result<pb::GetTermPairResponse, Status> {
        self.get_term_pair(req).await
    }

    async fn get_follower(&self, req: pb::TablePidRequest) -> Result<pb::GetFollowerResponse, Status> {
        let part = self.partition(req.tid, req.pid)?;
        if !part.lock().await.is_leader() {
            return Err(Code::TableIsFollower.status());
        }
        let (leader_offset, followers) = part.follower_offsets().await;
        if followers.is_empty() {
            return Err(Code::NoFollower.status());
        }
        let (followers, follower_offsets) = followers.into_iter().unzip();
        Ok(pb::GetFollowerResponse { leader_offset, followers, follower_offsets })
    }

    /// DeleteBinlog: removes the binlog of a partition that is not loaded (reference 5.6).
    async fn delete_binlog(&self, req: pb::TablePidRequest) -> Result<pb::GeneralResponse, Status> {
        self.admit(req.task_info.as_ref(), req.tid, req.pid)?;
        if self.partition(req.tid, req.pid).is_ok() {
            return Err(Code::TableAlreadyExists.with("cannot delete the binlog of a loaded table"));
        }
        let dir = binlog_dir(&partition_dir(req.tid, req.pid));
        if self.disk.exists(&dir).await.unwrap_or(false) {
            self.disk.remove_dir_all(&dir).await.map_err(|e| Code::WriteDataFailed.with(e))?;
        }
        tracing::info!(tid = req.tid, pid = req.pid, "binlog deleted");
        Ok(pb::GeneralResponse {})
    }

    // ---- RPC wiring -----------------------------------------------------------------------------------------

    fn rpc_server(self: Arc<Self>) -> RpcServer {
        let s = RpcServer::new(format!("tablet {}", self.config.endpoint));
        let s = route(s, &self, m::Put, |t, r| async move { t.put(r).await });
        let s = route(s, &self, m::Get, |t, r| async move { t.get(r).await });
        let s = route(s, &self, m::Scan, |t, r| async move { t.scan(r).await });
        let s = route(s, &self, m::Delete, |t, r| async move { t.delete(r).await });
        let s = route(s, &self, m::Dump, |t, r| async move { t.dump(r).await });
        let s = route(s, &self, m::AppendEntries, |t, r| async move {
            let part = t.partition(r.tid, r.pid)?;
            let appended = part.append_entries(r).await;
            Ok(pb::AppendEntriesResponse { log_offset: t.checked(&part, appended).await? })
        });
        let s = route(s, &self, m::CreateTable, |t, r| async move { t.create_table(r).await });
        let s = route(s, &self, m::LoadTable, |t, r| async move { t.load_table(r).await });
        let s = route(s, &self, m::DropTable, |t, r| async move { t.drop_table(r).await });
        let s = route(s, &self, m::GetTableStatus, |t, r| async move { t.get_table_status(r).await });
        let s = route(s, &self, m::ChangeRole, |t, r| async move { t.change_role(r).await });
        let s = route(s, &self, m::AddReplica, |t, r| async move { t.add_replica(r).await });
        let s = route(s, &self, m::DelReplica, |t, r| async move { t.del_replica(r).await });
        let s = route(s, &self, m::MakeSnapshot, |t, r| async move { t.make_snapshot(r).await });
        let s = route(s, &self, m::PauseSnapshot, |t, r| async move { t.pause_snapshot(r).await });
        let s = route(s, &self, m::RecoverSnapshot, |t, r| async move { t.recover_snapshot(r).await });
        let s = route(s, &self, m::SendSnapshot, |t, r| async move { t.send_snapshot(r).await });
        let s = route(s, &self, m::InstallSnapshot, |t, r| async move { t.install_snapshot(r).await });
        let s = route(s, &self, m::GetTermPair, |t, r| async move { t.get_term_pair(r).await });
        let s = route(s, &self, m::GetLogOffset, |t, r| async move { t.get_log_offset(r).await });
        let s = route(s, &self, m::GetFollower, |t, r| async move { t.get_follower(r).await });
        let s = route(s, &self, m::DeleteBinlog, |t, r| async move { t.delete_binlog(r).await });
        let s = route(s, &self, m::GetTaskStatus, |t, _r| async move {
            Ok(pb::GetTaskStatusResponse { tasks: t.tasks.list() })
        });
        route(s, &self, m::DeleteOpTask, |t, r| async move {
            t.tasks.delete_ops(&r.op_ids);
            Ok(pb::GeneralResponse {})
        })
    }
}

/// Registers a handler that gets the tablet and the request.
fn route<M, F, Fut>(server: RpcServer, tablet: &Arc<Tablet>, method: M, f: F) -> RpcServer
where
    M: Method,
    F: Fn(Arc<Tablet>, M::Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<M::Resp, Status>> + Send + 'static,
{
    let tablet = tablet.clone();
    server.add(method, move |req| f(tablet.clone(), req))
}

fn readable(g: &super::partition::Inner) -> Result<(), Status> {
    match g.state {
        TableState::Loading | TableState::Undefined => Err(Code::TableIsLoading.status()),
        _ => Ok(()),
    }
}

fn decode_row(value: &[u8]) -> Result<pb::Row, Status> {
    pb::Row::decode(value).map_err(|e| Status::internal(format!("stored row does not decode: {e}")))
}
