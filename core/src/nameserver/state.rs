//! The data every room of the nameserver shares: the [`Nameserver`] itself (its flags, its coordination
//! session, whether it is active, and the [`State`] the active nameserver works on), the tablet map's types and
//! events, what an op is created with ([`NewOp`]), the named deadlines, and the small accessors every room calls:
//! the tablet clients, a tablet's health, the reachability record, one table's id, and the metadata edit of one
//! partition.
//!
//! It holds no decision and runs no loop. Above the bottom rooms ([`super::meta`], [`super::opbook`],
//! [`super::ops`], [`super::codes`], [`super::decide`]) and below every other: it calls only the bottom rooms,
//! and every room may call it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::codes::Code;
use super::decide::Reachability;
use super::meta::MetaStore;
use super::opbook::OpBook;
use super::ops::OpType;
use crate::coord::{CoordError, Coordinator, Layout};
use crate::proto::nameserver::{self as pb, op_data};
use crate::proto::tablet as tpb;
use crate::rpc::{ClientConfig, RpcClient, Status};
use crate::sync::Signal;

/// A nameserver's flags, by their OpenMLDB names.
#[derive(Debug, Clone)]
pub struct NameserverConfig {
    pub endpoint: String,
    pub zk_cluster: String,
    pub zk_root_path: String,
    pub zk_session_timeout: Duration,
    /// `zk_auth_schema` and `zk_cert`: the coordination session's credentials, if any.
    pub zk_auth: Option<crate::coord::Credentials>,
    /// `auto_failover`: the initial value of `/config/auto_failover` if it does not exist yet (DESIGN 5.4: true).
    pub auto_failover: bool,
    /// `partition_num`: the default for a new table.
    pub partition_num: u32,
    /// `get_table_status_interval`: how often replica offsets and counts are polled from the tablets.
    pub get_table_status_interval: Duration,
    /// Deadline of calls to tablets.
    pub request_timeout: Duration,
    /// `tablet_heartbeat_timeout`: how long a tablet's node must stay gone before its partitions fail over
    /// (reference 5.1; the node itself goes a session timeout after the tablet).
    pub tablet_heartbeat_timeout: Duration,
    /// `get_task_status_interval`: how often a running RPC task is polled on its tablet.
    pub get_task_status_interval: Duration,
    /// `name_server_task_max_concurrency`: the number of op queues.
    pub name_server_task_max_concurrency: u32,
    /// `name_server_task_concurrency`: the default concurrency of failover and recovery ops.
    pub name_server_task_concurrency: u32,
    /// `max_op_num`: how many finished ops the history keeps.
    pub max_op_num: usize,
    /// `check_binlog_sync_progress_delta`: how close a re-added replica must be to its leader to count as alive.
    pub check_binlog_sync_progress_delta: u64,
    /// Not an OpenMLDB flag: how often the active nameserver looks for replicas marked not alive on healthy
    /// tablets that no op handles (a failed recovery), and recovers them.
    pub recover_dead_replica_interval: Duration,
    /// Deliberately broken behaviours, for tests only ([`crate::planted`]).
    pub planted: crate::planted::Planted,
}

impl NameserverConfig {
    pub fn new(endpoint: impl Into<String>, zk_cluster: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            zk_cluster: zk_cluster.into(),
            zk_root_path: crate::coord::layout::DEFAULT_ROOT.to_string(),
            zk_session_timeout: Duration::from_millis(2000),
            zk_auth: None,
            auto_failover: true,
            partition_num: 8,
            get_table_status_interval: Duration::from_millis(500),
            request_timeout: Duration::from_secs(5),
            tablet_heartbeat_timeout: Duration::from_millis(1000),
            get_task_status_interval: Duration::from_millis(100),
            name_server_task_max_concurrency: 8,
            name_server_task_concurrency: 2,
            max_op_num: 10_000,
            check_binlog_sync_progress_delta: 100_000,
            recover_dead_replica_interval: Duration::from_secs(5),
            planted: crate::planted::Planted::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TabletState {
    Healthy,
    Offline,
}

impl TabletState {
    pub fn name(self) -> &'static str {
        match self {
            TabletState::Healthy => "kTabletHealthy",
            TabletState::Offline => "kTabletOffline",
        }
    }
}

/// What the nameserver knows of one tablet: its state and since when (OpenMLDB's `ctime_`).
#[derive(Debug, Clone)]
pub struct TabletEntry {
    pub state: TabletState,
    pub since: Instant,
}

/// A change of a tablet's state seen in `/nodes`.
#[derive(Debug, Clone)]
pub enum TabletEvent {
    /// Its node vanished at `since`.
    Offline { endpoint: String, since: Instant },
    /// Its node is back; it had been offline since `offline_since`.
    Online { endpoint: String, offline_since: Instant },
}

/// The state the active nameserver works on; rebuilt from the coordination service on every takeover.
pub(super) struct State {
    pub(super) tables: BTreeMap<String, pb::TableInfo>,
    pub(super) tablets: BTreeMap<String, TabletEntry>,
    /// The last GetTableStatus of every replica, by (tid, pid, endpoint).
    pub(super) replica_status: BTreeMap<(u32, u32, String), tpb::TableStatus>,
    /// The tablets whose latest GetTableStatus answered: for them, `replica_status` lists every partition they
    /// hold, so one missing there is not on the tablet.
    pub(super) status_polled: std::collections::BTreeSet<String>,
    /// Per tablet, the start time (`started_ms`) its first answered status poll reported since its current
    /// `/nodes` entry appeared: the process that owns the entry. Kept when the entry goes, so the failover at
    /// the grace period's end can tell whether the process that now answers is another one.
    pub(super) incarnations: BTreeMap<String, u64>,
    /// Per tablet, the start time its latest answered status poll reported (kept when its entry goes).
    pub(super) latest_started: BTreeMap<String, u64>,
    pub(super) ops: OpBook,
    /// `/config/auto_failover`, read at takeover and changed by confset.
    pub(super) auto_failover: bool,
    /// The creation id (czxid) of each tablet's `/nodes` entry: a new one under the same endpoint is a new
    /// process, even when the watch never saw the old entry go.
    pub(super) node_ids: BTreeMap<String, i64>,
    /// The names of the tables being created (reserved while their replicas are created on the tablets).
    pub(super) creating: std::collections::BTreeSet<String>,
}

pub struct Nameserver {
    pub(super) config: NameserverConfig,
    pub(super) layout: Layout,
    pub(super) coord: Mutex<Option<Arc<dyn Coordinator>>>,
    pub(super) active: AtomicBool,
    /// The sequence number of this nameserver's election node while it leads: the epoch its tablet tasks carry.
    pub(super) epoch: AtomicU64,
    pub(super) state: Mutex<State>,
    clients: Mutex<BTreeMap<String, RpcClient>>,
    /// Serialises the local bookkeeping of table creation (the names being created); held across no network
    /// call. Each table's read-modify-write of its metadata takes that table's [`table_key`] lock instead, so
    /// edits of different tables (a tablet's failover marks every table it held) do not queue behind each other.
    pub(super) meta_lock: tokio::sync::Mutex<()>,
    /// Op ids reserved from `/op/op_index` in blocks ([`OP_ID_BLOCK`]) and handed out locally: one coordination
    /// write per block instead of a compare-and-set per op, which concurrent op creations (a tablet's failover
    /// creates an op per partition at once) retried against each other round trip after round trip. A block is
    /// good for the epoch that reserved it only; a takeover reserves a fresh one, so ids stay unique and
    /// increasing across nameservers (with gaps).
    op_ids: tokio::sync::Mutex<OpIdBlock>,
    /// Takes turns at the shared counters the op engine bumps (the global term, the table ids): compare-and-set
    /// rounds of concurrent leader changes retried against each other; in turn each succeeds at its first try.
    pub(super) counter_lock: tokio::sync::Mutex<()>,
    /// Notify-counter bumps requested (a table's metadata changed) and the request number the last completed bump
    /// covered: concurrent edits share one bump ([`Nameserver::notify_table_change`]).
    notify_requested: AtomicU64,
    notify_done: tokio::sync::Mutex<u64>,
    /// The failover locks ([`Nameserver::serial`]): one per tablet (its offline and back reactions take turns)
    /// and one per partition (each decision checks for queued ops before creating its own). Nothing serialises
    /// the decisions of different partitions.
    failover_locks: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Bumped when an op is queued, canceled or finished: wakes the queue workers.
    pub(super) op_signal: Signal,
    /// Bumped when a status poll shows an alive-marked leader missing on its tablet (its binlog broke, it
    /// restarted unseen): the alive-mark reconciliation runs at once instead of at its next period.
    pub(super) reconcile_now: Signal,
    /// Passes of this session's `/nodes` watch: a takeover waits for the first one, so a nameserver that just
    /// started does not take every tablet the metadata names for offline (and fail them all over).
    pub(super) tablet_passes: Signal,
    /// What runs only while active (queue workers, failover timers): aborted on stepping down.
    pub(super) session_tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The outcome of every status poll and fencing probe of a tablet while active (DESIGN 5.5).
    pub(super) reach: Mutex<Reachability>,
    /// Bumped by the reachability check to make the election give up the lock.
    pub(super) step_down: Signal,
    /// When this nameserver last stepped down because it could not reach the tablets, within
    /// [`super::decide::reach::STEP_DOWN_MEMORY`]: each one doubles the window of the next (no flapping).
    pub(super) step_downs: Mutex<Vec<Instant>>,
}

/// What an op is created with.
#[derive(Debug, Clone)]
pub struct NewOp {
    pub op_type: OpType,
    pub name: String,
    pub pid: u32,
    pub data: op_data::Kind,
    /// Picks the queue (`pid % concurrency`); ignored for a child op, which joins its parent's queue.
    pub concurrency: u32,
    pub parent: Option<(u64, u32)>,
}

/// Deadline of one status poll of a tablet (GetTableStatus). A tablet answers it from memory; one second is a
/// wide margin over a loaded simulated network, and short enough that a cut tablet shows as such (two failed polls)
/// well within the step-down window, and that one slow tablet does not delay the poll of the others (they are
/// polled concurrently anyway).
pub(super) const STATUS_POLL_TIMEOUT: Duration = Duration::from_secs(1);

/// Deadline of one fencing probe (an empty AppendEntries) and of the ChangeRole calls around it. A tablet answers
/// a probe from memory at once; the whole 5 s request deadline per unreachable follower added itself to the
/// partition's outage (and, op after op, to the next partition's), against a documented failover of about 3 to
/// 4 s. One second is still ten times a loaded simulated round trip; a follower that misses it is skipped (DESIGN
/// 5.2) and recovered later like any unreachable one.
pub(super) const FENCING_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Deadline of the DeleteOpTask a finished op sends each healthy tablet ([`Nameserver::forget_op_tasks`]). A
/// tablet that misses it keeps the op's task records until its bounded task table (10,000 entries) evicts them;
/// nothing waits on it.
pub(super) const DELETE_OP_TASK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

pub(super) fn coord_err(e: CoordError) -> Status {
    Code::SetZkFailed.with(e)
}

/// Milliseconds since the epoch (simulated in the simulator).
pub(super) fn epoch_ms() -> u64 {
    crate::tablet::server::now_ms()
}

/// The key of a tablet's failover lock ([`Nameserver::serial`]).
pub(super) fn tablet_key(endpoint: &str) -> String {
    format!("tablet {endpoint}")
}

/// The key of a partition's failover lock ([`Nameserver::serial`]).
pub(super) fn partition_key(name: &str, pid: u32) -> String {
    format!("partition {name} {pid}")
}

/// The key of a table's metadata lock ([`Nameserver::serial`]): a leaf lock (nothing else is taken while it is
/// held), so it may be taken under a tablet's or a partition's failover lock.
pub(super) fn table_key(name: &str) -> String {
    format!("table {name}")
}

/// How many op ids one reservation takes from `/op/op_index`.
pub(super) const OP_ID_BLOCK: u64 = 32;

/// A reserved range of op ids: `next..=last`, good while the nameserver leads in `epoch`.
#[derive(Debug, Default)]
pub(super) struct OpIdBlock {
    epoch: u64,
    next: u64,
    last: u64,
}

impl Nameserver {
    /// [`Self::serial`] for every key, taken in key order (so two holders of several never wait on each other).
    pub(super) async fn serial_all(
        &self,
        keys: impl IntoIterator<Item = String>,
    ) -> Vec<tokio::sync::OwnedMutexGuard<()>> {
        let keys: std::collections::BTreeSet<String> = keys.into_iter().collect();
        let mut guards = Vec::with_capacity(keys.len());
        for key in keys {
            guards.push(self.serial(key).await);
        }
        guards
    }

    /// Takes the failover lock of `key` ([`tablet_key`], [`partition_key`]), waiting for its holder. A tablet's
    /// lock is taken before its partitions' locks, and several partitions' locks only in key order
    /// ([`Self::serial_all`]), so they cannot deadlock. Locks nobody holds or waits for are dropped from the map
    /// as others are taken.
    pub(super) async fn serial(&self, key: String) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.failover_locks.lock().expect("failover locks");
            locks.retain(|_, l| Arc::strong_count(l) > 1);
            locks.entry(key).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// A nameserver with nothing loaded, not active: [`Nameserver::start`] serves it and runs its loops.
    pub(super) fn new(config: NameserverConfig) -> Self {
        Nameserver {
            layout: Layout::new(&config.zk_root_path),
            coord: Mutex::new(None),
            active: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            state: Mutex::new(State {
                tables: BTreeMap::new(),
                tablets: BTreeMap::new(),
                replica_status: BTreeMap::new(),
                status_polled: std::collections::BTreeSet::new(),
                incarnations: BTreeMap::new(),
                latest_started: BTreeMap::new(),
                ops: OpBook::new(config.name_server_task_max_concurrency.max(1) as usize, config.max_op_num),
                auto_failover: config.auto_failover,
                node_ids: BTreeMap::new(),
                creating: std::collections::BTreeSet::new(),
            }),
            clients: Mutex::new(BTreeMap::new()),
            meta_lock: tokio::sync::Mutex::new(()),
            op_ids: tokio::sync::Mutex::new(OpIdBlock::default()),
            counter_lock: tokio::sync::Mutex::new(()),
            notify_requested: AtomicU64::new(0),
            notify_done: tokio::sync::Mutex::new(0),
            failover_locks: Mutex::new(BTreeMap::new()),
            op_signal: Signal::new(0),
            reconcile_now: Signal::new(0),
            tablet_passes: Signal::new(0),
            session_tasks: Mutex::new(Vec::new()),
            reach: Mutex::new(Reachability::new()),
            step_down: Signal::new(0),
            step_downs: Mutex::new(Vec::new()),
            config,
        }
    }

    // ---- activity and session -------------------------------------------------------------------------------

    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }

    /// The epoch tablet tasks carry: the sequence of the election node this nameserver leads with.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    pub(super) fn coord(&self) -> Result<Arc<dyn Coordinator>, Status> {
        self.coord.lock().expect("coord slot").clone().ok_or_else(|| Code::NameserverIsNotLeader.status())
    }

    pub(super) fn require_active(&self) -> Result<Arc<dyn Coordinator>, Status> {
        if !self.is_active() {
            return Err(Code::NameserverIsNotLeader.status());
        }
        self.coord()
    }

    /// Keeps a task that must stop when this nameserver stops being active.
    pub(super) fn keep_session_task(&self, task: JoinHandle<()>) {
        let mut tasks = self.session_tasks.lock().expect("session tasks");
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    // ---- tablets --------------------------------------------------------------------------------------------

    pub(super) fn client(&self, endpoint: &str) -> RpcClient {
        self.clients
            .lock()
            .expect("client map")
            .entry(endpoint.to_string())
            .or_insert_with(|| {
                let config =
                    ClientConfig { timeout: self.config.request_timeout, drop_stalled: true, ..Default::default() };
                RpcClient::new(endpoint, config)
            })
            .clone()
    }

    /// Records the outcome of a call to a tablet made at `asked_at` (DESIGN 5.5's evidence).
    pub(super) fn record_reach(&self, endpoint: &str, asked_at: Instant, answered: bool) {
        self.reach.lock().expect("reach").record(endpoint, asked_at, answered);
    }

    pub(super) fn is_healthy(&self, endpoint: &str) -> bool {
        self.state.lock().expect("ns state").tablets.get(endpoint).is_some_and(|t| t.state == TabletState::Healthy)
    }

    /// Since when the tablet is offline; None when healthy or unknown.
    pub(super) fn offline_since(&self, endpoint: &str) -> Option<Instant> {
        let state = self.state.lock().expect("ns state");
        state.tablets.get(endpoint).filter(|t| t.state == TabletState::Offline).map(|t| t.since)
    }

    pub(super) fn healthy_tablets(&self) -> Vec<String> {
        let state = self.state.lock().expect("ns state");
        state.tablets.iter().filter(|(_, t)| t.state == TabletState::Healthy).map(|(e, _)| e.clone()).collect()
    }

    pub(super) fn auto_failover(&self) -> bool {
        self.state.lock().expect("ns state").auto_failover
    }

    // ---- tables ---------------------------------------------------------------------------------------------

    pub(super) fn tid_of(&self, name: &str) -> Result<u32, String> {
        self.state
            .lock()
            .expect("ns state")
            .tables
            .get(name)
            .map(|t| t.tid)
            .ok_or_else(|| format!("table {name} is gone"))
    }

    /// The meta a tablet gets for one replica of a table's partition.
    pub fn tablet_meta(
        info: &pb::TableInfo,
        pid: u32,
        mode: tpb::TableMode,
        term: u64,
        replicas: Vec<String>,
    ) -> tpb::TableMeta {
        tpb::TableMeta {
            name: info.name.clone(),
            db: info.db.clone(),
            tid: info.tid,
            pid,
            seg_cnt: info.seg_cnt,
            mode: mode as i32,
            term,
            column_desc: info.column_desc.clone(),
            column_key: info.column_key.clone(),
            replicas,
            replication: info.replication,
        }
    }

    /// [`Self::edit_partition`] for every partition of a table at once: `edit` runs on each and says whether it
    /// changed it; one metadata write holds every change.
    pub(super) async fn edit_partitions(
        &self,
        name: &str,
        mut edit: impl FnMut(&mut pb::TablePartition) -> bool,
    ) -> Result<(), String> {
        self.edit_table(name, |table| Ok(table.table_partition.iter_mut().fold(false, |changed, p| edit(p) | changed)))
            .await
    }

    /// Edits one partition's metadata under its table's lock, persists the table and bumps the notify counter
    /// when `edit` reports a change.
    pub(super) async fn edit_partition(
        &self,
        name: &str,
        pid: u32,
        edit: impl FnOnce(&mut pb::TablePartition) -> Result<bool, String>,
    ) -> Result<(), String> {
        self.edit_table(name, |table| {
            let part = table.table_partition.iter_mut().find(|p| p.pid == pid);
            edit(part.ok_or_else(|| format!("pid {pid} is gone"))?)
        })
        .await
    }

    /// The read-modify-write both edits share: the table's metadata under its [`table_key`] lock; when `edit` reports
    /// a change, the table persisted, the notify counter bumped and the table kept.
    async fn edit_table(
        &self,
        name: &str,
        edit: impl FnOnce(&mut pb::TableInfo) -> Result<bool, String>,
    ) -> Result<(), String> {
        let coord = self.require_active().map_err(|s| s.to_string())?;
        let table_lock = self.serial(table_key(name)).await;
        let mut table = self
            .state
            .lock()
            .expect("ns state")
            .tables
            .get(name)
            .cloned()
            .ok_or_else(|| format!("table {name} is gone"))?;
        if !edit(&mut table)? {
            return Ok(());
        }
        let meta = MetaStore { coord: coord.as_ref(), layout: &self.layout };
        meta.write_table(&table).await.map_err(|e| format!("cannot persist table {name}: {e}"))?;
        self.state.lock().expect("ns state").tables.insert(name.to_string(), table);
        drop(table_lock);
        self.notify_table_change(coord.as_ref()).await;
        Ok(())
    }

    /// Bumps the notify counter (reference 4.2: clients and tablets reload the tables when it changes) for a
    /// change already persisted. Bumps take turns; a caller whose request an in-turn bump started after already
    /// covers returns without one of its own, so a burst of edits costs one or two bumps, not one each. A failed
    /// bump is left for the next change (as before: watchers also poll).
    pub(super) async fn notify_table_change(&self, coord: &dyn Coordinator) {
        let mine = self.notify_requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut done = self.notify_done.lock().await;
        if *done >= mine {
            return;
        }
        // Every request up to here was made before this bump starts: it covers them all.
        let covers = self.notify_requested.load(Ordering::SeqCst);
        let meta = MetaStore { coord, layout: &self.layout };
        if meta.bump_notify().await.is_ok() {
            *done = covers;
        }
    }

    /// The next op id, from this epoch's reserved block or a new block ([`OP_ID_BLOCK`]).
    pub(super) async fn next_op_id(&self, coord: &dyn Coordinator) -> Result<u64, CoordError> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        let mut block = self.op_ids.lock().await;
        if block.epoch != epoch || block.next == 0 || block.next > block.last {
            let meta = MetaStore { coord, layout: &self.layout };
            let last = meta.reserve_op_ids(OP_ID_BLOCK).await?;
            *block = OpIdBlock { epoch, next: last + 1 - OP_ID_BLOCK, last };
        }
        let id = block.next;
        block.next += 1;
        assert!(id > 0 && id <= block.last, "an op id from the reserved block");
        Ok(id)
    }
}
