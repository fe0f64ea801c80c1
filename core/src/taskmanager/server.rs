//! The TaskManager process: its coordination session, the active/standby election through the ephemeral
//! `<root>/taskmanager/leader` (reference 1.5), the RPC handlers, and the job runners.
//!
//! Only the active instance runs jobs and answers job RPCs; a standby answers "taskmanager is not leader". A
//! leader whose session is in doubt (Disconnected) stops its runners at once, so by the time its node expires
//! and a standby takes over, nothing of the old owner still writes; the versioned job writes of [`JobStore`] are
//! the second fence.

use std::collections::BTreeMap;

use futures::StreamExt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::job::{self, Batch, JobType, Takeover};
use super::rpc as m;
use super::source::{self, Source};
use super::store::{JobCell, JobStore, StoreError, jobs_dir};
use crate::client::partition::{alive_leader, partition_count};
use crate::client::{ClientError, RoutingClient, RoutingConfig, WriteAck};
use crate::codes::Code;
use crate::coord::{ClientOptions, CoordError, Coordinator, CreateMode, Layout, SessionState};
use crate::proto::nameserver::TableInfo;
use crate::proto::tablet as tpb;
use crate::proto::taskmanager::{self as pb, JobInfo, JobState};
use crate::rpc::{ClientConfig, Method, RpcClient, RpcServer, ServerHandle, Status};
use crate::storage::Disk;
use crate::tablet::rpc as t;

/// A TaskManager's settings.
#[derive(Debug, Clone)]
pub struct TaskManagerConfig {
    pub endpoint: String,
    pub zk_cluster: String,
    pub zk_root_path: String,
    /// OpenMLDB's `zookeeper.session_timeout` is 5 s; ours follows the other roles' 2 s default.
    pub zk_session_timeout: Duration,
    /// `zk_auth_schema` and `zk_cert`: the coordination session's credentials, if any.
    pub zk_auth: Option<crate::coord::Credentials>,
    /// Rows per import batch: the unit of checkpoints, and the most rows a takeover re-reads.
    pub import_batch_rows: u64,
    /// Import writes waiting for their answer at once.
    pub import_in_flight: usize,
    /// Starts of one job (its first run and every takeover) before a takeover fails it.
    pub max_job_attempts: u32,
    /// How long a job keeps retrying an unavailable partition before it fails with the reason.
    pub job_retry_time: Duration,
    /// Deadline of calls to tablets.
    pub request_timeout: Duration,
    /// Deliberately broken behaviours, for tests only ([`crate::planted`]).
    pub planted: crate::planted::Planted,
}

impl TaskManagerConfig {
    pub fn new(endpoint: impl Into<String>, zk_cluster: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            zk_cluster: zk_cluster.into(),
            zk_root_path: crate::coord::layout::DEFAULT_ROOT.to_string(),
            zk_session_timeout: Duration::from_millis(2000),
            zk_auth: None,
            import_batch_rows: 500,
            import_in_flight: 32,
            max_job_attempts: 5,
            job_retry_time: Duration::from_secs(120),
            request_timeout: Duration::from_secs(5),
            planted: crate::planted::Planted::default(),
        }
    }
}

/// Why a job stopped before it finished.
#[derive(Debug)]
enum Stop {
    /// Another TaskManager owns it now: leave it.
    Fenced,
    /// The job cannot go on: it fails with this reason.
    Failed(String),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Fenced(_) => Stop::Fenced,
            // A write that did not reach the service: this owner cannot record progress, and a takeover will
            // resume from the last recorded checkpoint.
            other => Stop::Failed(format!("cannot record the job's progress: {other}")),
        }
    }
}

pub struct TaskManager {
    config: TaskManagerConfig,
    layout: Layout,
    disk: Arc<dyn Disk>,
    coord: Mutex<Option<Arc<dyn Coordinator>>>,
    routing: Mutex<Option<Arc<RoutingClient>>>,
    active: AtomicBool,
    /// The running job tasks by id; aborted when this instance stops being active.
    runners: Mutex<BTreeMap<u64, JoinHandle<()>>>,
    clients: Mutex<BTreeMap<String, RpcClient>>,
}

/// A running TaskManager; dropping it stops its loops and its server.
pub struct TaskManagerHandle {
    pub taskmanager: Arc<TaskManager>,
    _rpc: ServerHandle,
    session: JoinHandle<()>,
}

impl TaskManagerHandle {
    pub async fn join(self) {
        std::future::pending::<()>().await;
    }
}

impl Drop for TaskManagerHandle {
    fn drop(&mut self) {
        self.session.abort();
        self.taskmanager.step_down();
    }
}

impl TaskManager {
    /// Starts a TaskManager; `disk` is its data dir (`--job_data_dir`), where import files are read and export
    /// files written.
    pub async fn start(config: TaskManagerConfig, disk: Arc<dyn Disk>) -> std::io::Result<TaskManagerHandle> {
        let tm = Arc::new(TaskManager {
            layout: Layout::new(&config.zk_root_path),
            disk,
            coord: Mutex::new(None),
            routing: Mutex::new(None),
            active: AtomicBool::new(false),
            runners: Mutex::new(BTreeMap::new()),
            clients: Mutex::new(BTreeMap::new()),
            config,
        });
        let rpc = tm.clone().rpc_server().bind(&tm.config.endpoint).await?;
        tracing::info!(endpoint = %tm.config.endpoint, "taskmanager started");
        let session = tokio::spawn(tm.clone().session_loop());
        Ok(TaskManagerHandle { taskmanager: tm, _rpc: rpc, session })
    }

    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }

    fn step_down(&self) {
        for (_, task) in std::mem::take(&mut *self.runners.lock().expect("runners")) {
            task.abort();
        }
        if self.active.swap(false, Ordering::SeqCst) {
            tracing::info!("taskmanager stepped down");
        }
    }

    fn coord(&self) -> Result<Arc<dyn Coordinator>, Status> {
        self.coord.lock().expect("coord slot").clone().ok_or_else(|| Code::TaskManagerIsNotLeader.status())
    }

    fn require_active(&self) -> Result<Arc<dyn Coordinator>, Status> {
        if !self.is_active() {
            return Err(Code::TaskManagerIsNotLeader.status());
        }
        self.coord()
    }

    fn routing(&self) -> Option<Arc<RoutingClient>> {
        self.routing.lock().expect("routing slot").clone()
    }

    fn client(&self, endpoint: &str) -> RpcClient {
        self.clients
            .lock()
            .expect("client map")
            .entry(endpoint.to_string())
            .or_insert_with(|| {
                RpcClient::new(endpoint, ClientConfig { timeout: self.config.request_timeout, ..Default::default() })
            })
            .clone()
    }

    // ---- session and election ---------------------------------------------------------------------------------

    async fn session_loop(self: Arc<Self>) {
        loop {
            let options = ClientOptions::new(self.config.zk_session_timeout).with_auth(self.config.zk_auth.clone());
            let coord = match crate::coord::connect(&self.config.zk_cluster, options).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::info!(error = %e, "coordination service unreachable; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let session: Arc<dyn Coordinator> = coord.clone();
            let ready = async {
                crate::coord::create_all(coord.as_ref(), &jobs_dir(&self.layout)).await.map_err(|e| e.to_string())?;
                RoutingClient::connect(session, &self.config.zk_root_path, RoutingConfig::default())
                    .await
                    .map_err(|e| e.to_string())
            };
            match ready.await {
                Ok(routing) => *self.routing.lock().expect("routing slot") = Some(Arc::new(routing)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot prepare the taskmanager's session; retrying");
                    coord.close().await;
                    tokio::time::sleep(self.config.zk_session_timeout / 4).await;
                    continue;
                }
            }
            *self.coord.lock().expect("coord slot") = Some(coord.clone());
            self.clone().elect(coord.clone()).await;
            self.step_down();
            *self.coord.lock().expect("coord slot") = None;
            *self.routing.lock().expect("routing slot") = None;
        }
    }

    /// Reference 1.5: whoever creates the ephemeral leader node is active; the others watch it. A node holding
    /// this instance's own endpoint from an earlier session (a restart before it expired) is deleted at once.
    /// Returns when the session ends.
    async fn elect(self: Arc<Self>, coord: Arc<dyn Coordinator>) {
        let mut events = coord.session_events();
        let path = self.layout.taskmanager_leader();
        let me = self.config.endpoint.as_bytes();
        loop {
            if coord.state().is_terminal() {
                return;
            }
            let mine = match coord.create(&path, me, CreateMode::Ephemeral).await {
                Ok(_) => true,
                Err(CoordError::NodeExists(_)) => match coord.get(&path).await {
                    Ok((_, stat)) if stat.ephemeral_owner == coord.session_id() => true,
                    Ok((data, stat)) if data == me => {
                        tracing::info!("the leader node holds this endpoint from an earlier session; removing it");
                        let _ = coord.delete(&path, Some(stat.version)).await;
                        continue;
                    }
                    Ok(_) => false,
                    Err(CoordError::NoNode(_)) => continue,
                    Err(CoordError::SessionExpired | CoordError::Closed) => return,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                Err(CoordError::SessionExpired | CoordError::Closed) => return,
                Err(e) => {
                    tracing::info!(error = %e, "cannot create the leader node; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if mine {
                if let Err(e) = self.take_over(coord.as_ref()).await {
                    tracing::warn!(error = %e, "takeover failed; retrying");
                    self.step_down();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                // Lead until the session is in doubt, then wait for it to come back (or end) and look again.
                loop {
                    match events.next().await {
                        Some(SessionState::Connected) => {}
                        Some(SessionState::Disconnected) => {
                            self.step_down();
                            break;
                        }
                        _ => return,
                    }
                }
                loop {
                    match events.next().await {
                        Some(SessionState::Connected) => break,
                        Some(SessionState::Disconnected) => {}
                        _ => return,
                    }
                }
                continue;
            }
            match coord.exists_watch(&path).await {
                Ok((Some(_), watch)) => {
                    tokio::select! {
                        biased;
                        _ = watch.changed() => {}
                        s = events.next() => if matches!(s, Some(SessionState::Expired | SessionState::Closed) | None) { return },
                    }
                }
                Ok((None, _)) => {}
                Err(CoordError::SessionExpired | CoordError::Closed) => return,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Becoming active: every job not ended is resumed from its checkpoint or failed with the reason.
    async fn take_over(self: &Arc<Self>, coord: &dyn Coordinator) -> Result<(), CoordError> {
        let store = JobStore { coord, layout: &self.layout };
        let jobs = store.load_all().await?;
        self.active.store(true, Ordering::SeqCst);
        tracing::info!(jobs = jobs.len(), "taskmanager became active");
        for cell in jobs {
            let mut cell = match cell {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "a job node cannot be read; left as it is");
                    continue;
                }
            };
            match job::on_takeover(&cell.info, self.config.max_job_attempts) {
                Takeover::Leave => {}
                Takeover::Resume => {
                    tracing::info!(
                        job = cell.info.id,
                        job_type = %cell.info.job_type,
                        checkpoint = cell.info.checkpoint,
                        pending_end = cell.info.pending_end,
                        "resuming job"
                    );
                    self.spawn_runner(cell);
                }
                Takeover::Fail(reason) => {
                    tracing::warn!(job = cell.info.id, %reason, "failing job at takeover");
                    cell.info.set_state(JobState::Failed);
                    cell.info.error = reason;
                    if let Err(e) = store.update(&mut cell).await {
                        tracing::warn!(job = cell.info.id, error = %e, "cannot mark the job failed");
                    }
                }
            }
        }
        Ok(())
    }

    fn spawn_runner(self: &Arc<Self>, cell: JobCell) {
        let id = cell.info.id;
        let tm = self.clone();
        let task = tokio::spawn(async move { tm.run_job(cell).await });
        let mut runners = self.runners.lock().expect("runners");
        runners.retain(|_, t| !t.is_finished());
        if let Some(old) = runners.insert(id, task) {
            old.abort();
        }
    }

    // ---- jobs ------------------------------------------------------------------------------------------------

    async fn run_job(self: Arc<Self>, mut cell: JobCell) {
        let id = cell.info.id;
        let Ok(coord) = self.coord() else { return };
        let store = JobStore { coord: coord.as_ref(), layout: &self.layout };
        cell.info.set_state(JobState::Running);
        cell.info.owner = self.config.endpoint.clone();
        cell.info.attempts += 1;
        if let Err(e) = store.update(&mut cell).await {
            tracing::info!(job = id, error = %e, "cannot claim the job; leaving it");
            return;
        }
        let outcome = match JobType::parse(&cell.info.job_type) {
            Some(JobType::Import) => self.run_import(&store, &mut cell).await,
            Some(JobType::Export) => self.run_export(&store, &mut cell).await,
            Some(JobType::Snapshot) => self.run_snapshot(&store, &mut cell).await,
            None => Err(Stop::Failed(format!("unknown job type {:?}", cell.info.job_type))),
        };
        match outcome {
            Ok(()) => {
                cell.info.set_state(JobState::Finished);
                cell.info.pending_end = cell.info.checkpoint;
                match store.update(&mut cell).await {
                    Ok(()) => tracing::info!(job = id, total = cell.info.total, "job finished"),
                    Err(e) => tracing::warn!(job = id, error = %e, "cannot record that the job finished"),
                }
            }
            Err(Stop::Fenced) => tracing::info!(job = id, "job taken over by another taskmanager; stopping"),
            Err(Stop::Failed(reason)) => {
                tracing::warn!(job = id, %reason, "job failed");
                cell.info.set_state(JobState::Failed);
                cell.info.error = reason;
                if let Err(e) = store.update(&mut cell).await {
                    tracing::warn!(job = id, error = %e, "cannot record that the job failed");
                }
            }
        }
    }

    async fn table(&self, name: &str) -> Result<Arc<TableInfo>, Stop> {
        let routing = self.routing().ok_or(Stop::Fenced)?;
        match routing.table_info(name) {
            Ok(t) => Ok(t),
            Err(_) => {
                let _ = routing.refresh().await;
                routing.table_info(name).map_err(|e| Stop::Failed(e.to_string()))
            }
        }
    }

    /// The rows an import writes, from its source.
    async fn import_rows(&self, job: &JobInfo, info: &TableInfo) -> Result<Vec<Vec<String>>, Stop> {
        match Source::parse(&job.path).map_err(Stop::Failed)? {
            Source::Generated { rows, prefix } => {
                // Made in slices with a yield between them: two million rows take seconds, and a worker held
                // that long starves the coordination session's heartbeat (the instance went Disconnected, stopped
                // the job and took it over again until its attempts ran out).
                // A column type the generator cannot fill (an unknown name) fails the job before any write.
                let first = source::generated_row(info, &prefix, 0);
                crate::client::values::check_row(&info.column_desc, &first)
                    .map_err(|e| Stop::Failed(format!("cannot generate rows for table {}: {e}", info.name)))?;
                let mut out = Vec::with_capacity(usize::try_from(rows).unwrap_or(0).min(1 << 20));
                for i in 0..rows {
                    out.push(source::generated_row(info, &prefix, i));
                    if i % 5_000 == 4_999 {
                        tokio::task::yield_now().await;
                    }
                }
                Ok(out)
            }
            Source::File(path) => {
                let data = self.disk.read(&path).await.map_err(|e| {
                    Stop::Failed(format!("cannot read {path:?} on taskmanager {}: {e}", self.config.endpoint))
                })?;
                let text = String::from_utf8(data).map_err(|_| Stop::Failed(format!("{path:?} is not UTF-8 text")))?;
                source::parse_csv(&text, &info.column_desc).map_err(|e| Stop::Failed(format!("{path}: {e}")))
            }
        }
    }

    async fn run_import(&self, store: &JobStore<'_>, cell: &mut JobCell) -> Result<(), Stop> {
        let info = self.table(&cell.info.table).await?;
        let rows = self.import_rows(&cell.info, &info).await?;
        if cell.info.checkpoint == 0 && cell.info.pending_end == 0 {
            cell.info.total = rows.len() as u64;
        } else if cell.info.total != rows.len() as u64 {
            return Err(Stop::Failed(format!(
                "the source now has {} rows, the job started with {}; it cannot be resumed safely",
                rows.len(),
                cell.info.total
            )));
        }
        while let Some(batch) = job::next_batch(&cell.info, self.config.import_batch_rows) {
            if !batch.in_doubt {
                // Recorded before any row of the batch is sent: a takeover verifies exactly this range.
                cell.info.pending_end = batch.end;
                store.update(cell).await?;
            }
            self.import_batch(cell.info.id, &cell.info.table, &rows, batch, &mut cell.info.verified_present).await?;
            cell.info.checkpoint = batch.end;
            store.update(cell).await?;
        }
        Ok(())
    }

    /// Writes one batch until every row of it is acknowledged, or answered as held already. Every row is an
    /// idempotent put under its request id, so a batch in doubt (a takeover's pending range, rows whose write had
    /// an unknown outcome) is simply written again: a partition that holds a row's id writes nothing, and so does
    /// one that a late copy from the TaskManager that lost the job reaches after this one wrote the row.
    async fn import_batch(
        &self,
        job_id: u64,
        table: &str,
        rows: &[Vec<String>],
        batch: Batch,
        verified_present: &mut u64,
    ) -> Result<(), Stop> {
        let routing = self.routing().ok_or(Stop::Fenced)?;
        let deadline = Instant::now() + self.config.job_retry_time;
        let mut todo: Vec<u64> = (batch.start..batch.end).collect();
        let mut present = 0u64;
        loop {
            let outcomes = self.write_rows(&routing, job_id, table, rows, &todo).await;
            let mut failed = Vec::new();
            let mut last_error = None;
            for (&i, outcome) in todo.iter().zip(outcomes) {
                match outcome {
                    Ok(ack) => present += u64::from(ack.duplicate),
                    Err(e @ ClientError::BadRequest { .. }) => {
                        return Err(Stop::Failed(format!(
                            "row {i} of rows {}..{} was refused: {e}",
                            batch.start, batch.end
                        )));
                    }
                    Err(e) => {
                        failed.push(i);
                        last_error = Some(e);
                    }
                }
            }
            let Some(last_error) = last_error else {
                if batch.in_doubt || present > 0 {
                    tracing::info!(start = batch.start, end = batch.end, present, "rows in doubt written again");
                }
                *verified_present += present;
                return Ok(());
            };
            if Instant::now() >= deadline {
                return Err(Stop::Failed(format!(
                    "{} rows of {}..{} not written within {:?}: {last_error}",
                    failed.len(),
                    batch.start,
                    batch.end,
                    self.config.job_retry_time
                )));
            }
            tracing::info!(failed = failed.len(), error = %last_error, "import batch incomplete; retrying");
            tokio::time::sleep(Duration::from_millis(500)).await;
            todo = failed;
        }
    }

    /// Writes `todo` (indexes into `rows`) with a bounded number in flight, each as an idempotent put under its
    /// import request id; the outcome of each, in `todo`'s order. The writes run inside this future, not as
    /// spawned tasks: a runner stopped on step-down takes every write it has in flight (and the routing client's
    /// retries of them) with it. Bytes already sent may still arrive; their request ids make them harmless.
    async fn write_rows(
        &self,
        routing: &Arc<RoutingClient>,
        job_id: u64,
        table: &str,
        rows: &[Vec<String>],
        todo: &[u64],
    ) -> Vec<Result<WriteAck, ClientError>> {
        let plain = self.config.planted.import_without_request_ids;
        let writes: Vec<_> = todo
            .iter()
            .map(|&i| {
                let (routing, table) = (routing.clone(), table.to_string());
                let row = tpb::Row { values: rows[i as usize].clone() };
                let id = if plain { String::new() } else { job::import_request_id(job_id, i) };
                async move { routing.put_once(&table, row, &id).await }
            })
            .collect();
        futures::stream::iter(writes).buffered(self.config.import_in_flight.max(1)).collect().await
    }

    /// Calls `f` on the alive leader of partition `pid`, retrying while there is none or it fails, until
    /// `job_retry_time`.
    async fn with_leader<T, F, Fut>(&self, table: &str, pid: u32, mut f: F) -> Result<T, Stop>
    where
        F: FnMut(Arc<TableInfo>, String) -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let deadline = Instant::now() + self.config.job_retry_time;
        loop {
            let info = self.table(table).await?;
            let result = match alive_leader(&info, pid) {
                Some(leader) => f(info.clone(), leader.endpoint.clone()).await,
                None => Err("no alive leader".to_string()),
            };
            match result {
                Ok(v) => return Ok(v),
                Err(e) if Instant::now() >= deadline => {
                    return Err(Stop::Failed(format!(
                        "partition {pid}: {e} (retried {:?})",
                        self.config.job_retry_time
                    )));
                }
                Err(e) => {
                    tracing::info!(pid, error = %e, "partition not ready; retrying");
                    if let Some(r) = self.routing() {
                        let _ = r.refresh().await;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// An export writes the whole file again when it is resumed: a partial file is never left under its name.
    async fn run_export(&self, store: &JobStore<'_>, cell: &mut JobCell) -> Result<(), Stop> {
        let table = cell.info.table.clone();
        let info = self.table(&table).await?;
        let mut rows = Vec::new();
        for pid in 0..partition_count(&info) {
            let dumped = self
                .with_leader(&table, pid, |info, leader| {
                    let client = self.client(&leader);
                    async move {
                        let dump = client
                            .call(t::Dump, tpb::DumpRequest { tid: info.tid, pid, limit: 0 })
                            .await
                            .map_err(|e| format!("dump from {leader}: {e}"))?;
                        Ok(dump.rows.into_iter().map(|r| r.values))
                    }
                })
                .await?;
            rows.extend(dumped);
        }
        let columns: Vec<String> = info.column_desc.iter().map(|c| c.name.clone()).collect();
        let text = source::render_csv(&columns, &rows).map_err(Stop::Failed)?;
        let path = cell.info.path.clone();
        let tmp = format!("{path}.tmp");
        let write = async {
            if let Some((dir, _)) = path.rsplit_once('/') {
                self.disk.create_dir_all(dir).await?;
            }
            self.disk.write_file(&tmp, text.as_bytes()).await?;
            self.disk.sync_file(&tmp).await?;
            self.disk.rename(&tmp, &path).await
        };
        write.await.map_err(|e| Stop::Failed(format!("cannot write {path:?} on {}: {e}", self.config.endpoint)))?;
        cell.info.total = rows.len() as u64;
        cell.info.checkpoint = cell.info.total;
        store.update(cell).await?;
        Ok(())
    }

    /// A snapshot job asks each partition's leader for a snapshot and waits for it, recording each partition done.
    async fn run_snapshot(&self, store: &JobStore<'_>, cell: &mut JobCell) -> Result<(), Stop> {
        let table = cell.info.table.clone();
        let info = self.table(&table).await?;
        cell.info.total = u64::from(partition_count(&info));
        for pid in cell.info.checkpoint as u32..cell.info.total as u32 {
            self.with_leader(&table, pid, |info, leader| {
                let client = self.client(&leader);
                async move { snapshot_partition(&client, info.tid, pid).await }
            })
            .await?;
            cell.info.checkpoint = u64::from(pid) + 1;
            store.update(cell).await?;
        }
        Ok(())
    }

    // ---- RPC handlers ----------------------------------------------------------------------------------------

    async fn submit_job(self: Arc<Self>, req: pb::SubmitJobRequest) -> Result<pb::SubmitJobResponse, Status> {
        let coord = self.require_active()?;
        let job_type = JobType::parse(&req.job_type)
            .ok_or_else(|| Code::InvalidParameter.with(format!("unknown job type {:?}", req.job_type)))?;
        let routing = self.routing().ok_or_else(|| Code::TaskManagerIsNotLeader.status())?;
        if routing.table_info(&req.table).is_err() {
            let _ = routing.refresh().await;
            routing.table_info(&req.table).map_err(|e| Code::TableIsNotExist.with(e))?;
        }
        match job_type {
            JobType::Import => {
                Source::parse(&req.path).map_err(|e| Code::InvalidParameter.with(e))?;
            }
            JobType::Export if req.path.trim().is_empty() => {
                return Err(Code::InvalidParameter.with("an export needs the file to write"));
            }
            _ => {}
        }
        let info = JobInfo {
            job_type: job_type.name().to_string(),
            table: req.table,
            path: req.path.trim().to_string(),
            owner: self.config.endpoint.clone(),
            ..Default::default()
        };
        let store = JobStore { coord: coord.as_ref(), layout: &self.layout };
        let cell = store.create(info).await.map_err(|e| Code::SetZkFailed.with(e))?;
        tracing::info!(job = cell.info.id, job_type = job_type.name(), table = %cell.info.table, "job submitted");
        let job = cell.info.clone();
        self.spawn_runner(cell);
        Ok(pb::SubmitJobResponse { job: Some(job) })
    }

    async fn show_jobs(self: Arc<Self>) -> Result<pb::ShowJobsResponse, Status> {
        let coord = self.require_active()?;
        let store = JobStore { coord: coord.as_ref(), layout: &self.layout };
        let jobs = store.load_all().await.map_err(|e| Code::SetZkFailed.with(e))?;
        Ok(pb::ShowJobsResponse { jobs: jobs.into_iter().filter_map(Result::ok).map(|c| c.info).collect() })
    }

    async fn show_job(self: Arc<Self>, req: pb::ShowJobRequest) -> Result<pb::ShowJobResponse, Status> {
        let coord = self.require_active()?;
        let store = JobStore { coord: coord.as_ref(), layout: &self.layout };
        let cell = store.get(req.id).await.map_err(|e| job_error(req.id, e))?;
        Ok(pb::ShowJobResponse { job: Some(cell.info) })
    }

    async fn stop_job(self: Arc<Self>, req: pb::StopJobRequest) -> Result<pb::StopJobResponse, Status> {
        let coord = self.require_active()?;
        let store = JobStore { coord: coord.as_ref(), layout: &self.layout };
        let mut cell = store.get(req.id).await.map_err(|e| job_error(req.id, e))?;
        if job::is_terminal(cell.info.state()) {
            return Err(Code::JobIsFinished.with(format!("job {} is {}", req.id, job::state_name(cell.info.state()))));
        }
        if let Some(task) = self.runners.lock().expect("runners").remove(&req.id) {
            task.abort();
        }
        // The runner is gone; read again so the write below is over its last progress.
        cell = store.get(req.id).await.map_err(|e| job_error(req.id, e))?;
        cell.info.set_state(JobState::Killed);
        cell.info.error = if req.reason.is_empty() {
            format!("stopped by stopjob on {}", self.config.endpoint)
        } else {
            req.reason.clone()
        };
        store.update(&mut cell).await.map_err(|e| Code::SetZkFailed.with(e))?;
        Ok(pb::StopJobResponse { job: Some(cell.info) })
    }

    fn rpc_server(self: Arc<Self>) -> RpcServer {
        let s = RpcServer::new(format!("taskmanager {}", self.config.endpoint));
        let s = route(s, &self, m::SubmitJob, |tm, r| tm.submit_job(r));
        let s = route(s, &self, m::ShowJobs, |tm, _r| tm.show_jobs());
        let s = route(s, &self, m::ShowJob, |tm, r| tm.show_job(r));
        route(s, &self, m::StopJob, |tm, r| tm.stop_job(r))
    }
}

/// One partition's snapshot on its leader, waited for.
async fn snapshot_partition(client: &RpcClient, tid: u32, pid: u32) -> Result<(), String> {
    match client.call(t::MakeSnapshot, tpb::MakeSnapshotRequest { tid, pid, offset: 0, task_info: None }).await {
        Ok(_) => {}
        Err(crate::rpc::RpcError::Status(s)) if Code::TableStatusIsKmakingsnapshot.is(&s) => {}
        Err(e) => return Err(format!("make snapshot: {e}")),
    }
    for _ in 0..600 {
        let status = client
            .call(t::GetTableStatus, tpb::GetTableStatusRequest { tid, pid, all: false })
            .await
            .map_err(|e| format!("table status: {e}"))?;
        let making = status.all_table_status.first().is_some_and(|s| s.state() == tpb::TableState::MakingSnapshot);
        if !making {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("the snapshot did not finish within 60 s".into())
}

fn job_error(id: u64, e: StoreError) -> Status {
    match e {
        StoreError::Coord(CoordError::NoNode(_)) => Code::JobIsNotExist.with(format!("job {id}")),
        other => Code::SetZkFailed.with(other),
    }
}

fn route<M, F, Fut>(server: RpcServer, tm: &Arc<TaskManager>, method: M, f: F) -> RpcServer
where
    M: Method,
    F: Fn(Arc<TaskManager>, M::Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<M::Resp, Status>> + Send + 'static,
{
    let tm = tm.clone();
    server.add(method, move |req| f(tm.clone(), req))
}
