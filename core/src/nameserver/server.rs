//! The nameserver process: its session with the coordination service, the election, the tablet map, the table
//! metadata in memory, and the RPC handlers. Only the active nameserver serves; the others answer
//! "nameserver is not leader".
//!
//! The top room: the loops (the session, the election and takeover, the `/nodes` watch, the status polls, the
//! reachability check), the table and configuration handlers, and the wiring of every RPC to its room. It is the
//! only room that starts the engine's workers, and it may call every other room; none calls it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::codes::Code;
use super::decide::reach::{STEP_DOWN_MEMORY, STEP_DOWN_WINDOW};
use super::decide::{
    StepDownFacts, TabletLoad, decide_step_down, followers_to_probe, place_partitions, step_down_window, tablet_loads,
};
use super::meta::MetaStore;
use super::ops::alive_leader;
use super::rpc as m;
use super::state::{
    Nameserver, NameserverConfig, STATUS_POLL_TIMEOUT, TabletEntry, TabletEvent, TabletState, coord_err, table_key,
};
use crate::coord::{ClientOptions, CoordError, Coordinator, CreateMode, SessionState};
use crate::proto::nameserver as pb;
use crate::proto::tablet as tpb;
use crate::rpc::{Method, RpcClient, RpcError, RpcServer, ServerHandle, Status};
use crate::storage::memtable::TableSchema;
use crate::tablet::rpc as tablet_rpc;

/// A table name reserved by a create in progress; released when the create ends, however it ends.
struct Reserved<'a> {
    ns: &'a Nameserver,
    name: String,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.ns.state.lock().expect("ns state").creating.remove(&self.name);
    }
}

/// How often the active nameserver asks [`decide_step_down`] whether it still reaches the tablets: a fraction of
/// the step-down window, so the decision lags the evidence by at most half a second.
const REACH_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// A running nameserver; dropping it stops its loops and its server.
pub struct NameserverHandle {
    pub nameserver: Arc<Nameserver>,
    _rpc: ServerHandle,
    loops: Vec<JoinHandle<()>>,
}

impl NameserverHandle {
    pub async fn join(self) {
        std::future::pending::<()>().await;
    }
}

impl Drop for NameserverHandle {
    fn drop(&mut self) {
        for l in &self.loops {
            l.abort();
        }
    }
}

impl Nameserver {
    pub async fn start(config: NameserverConfig) -> std::io::Result<NameserverHandle> {
        if config.name_server_task_max_concurrency == 0 {
            return Err(std::io::Error::other("name_server_task_max_concurrency must be at least 1"));
        }
        let ns = Arc::new(Nameserver::new(config));
        let rpc = ns.clone().rpc_server().bind(&ns.config.endpoint).await?;
        tracing::info!(endpoint = %ns.config.endpoint, "nameserver started");
        if ns.config.planted.nondeterministic_trace {
            let run = crate::planted::RUNS.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(run, "planted bug: a process-wide counter in the trace");
        }
        let loops = vec![tokio::spawn(ns.clone().session_loop()), tokio::spawn(ns.clone().status_loop())];
        Ok(NameserverHandle { nameserver: ns, _rpc: rpc, loops })
    }

    fn set_active(&self, on: bool) {
        if !on {
            for task in self.session_tasks.lock().expect("session tasks").drain(..) {
                task.abort();
            }
        }
        if self.active.swap(on, Ordering::SeqCst) != on {
            if on {
                tracing::info!("nameserver became active");
            } else {
                tracing::info!("nameserver stepped down");
            }
        }
    }

    // ---- session, election, tablets --------------------------------------------------------------------------

    /// Keeps a coordination session for the life of the process: each session runs the election and the tablet
    /// watch; when it expires, a new one starts over.
    async fn session_loop(self: Arc<Self>) {
        loop {
            let options = ClientOptions::new(self.config.zk_session_timeout).with_auth(self.config.zk_auth.clone());
            let coord = match crate::coord::connect(&self.config.zk_cluster, options).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::info!(error = %e, "coordination service unreachable; retrying");
                    continue;
                }
            };
            *self.coord.lock().expect("coord slot") = Some(coord.clone());
            let meta = MetaStore { coord: coord.as_ref(), layout: &self.layout };
            if let Err(e) = meta.ensure_layout(self.config.auto_failover).await {
                tracing::warn!(error = %e, "cannot prepare the metadata layout; retrying");
                tokio::time::sleep(self.config.zk_session_timeout / 4).await;
                continue;
            }
            self.tablet_passes.set(0);
            let tablets = tokio::spawn(self.clone().tablet_watch(coord.clone()));
            self.clone().elect(coord.clone()).await;
            tablets.abort();
            self.set_active(false);
            *self.coord.lock().expect("coord slot") = None;
        }
    }

    /// The election of reference 1.3: the first `lock_request` node is the leader. Returns when the session ends.
    async fn elect(self: Arc<Self>, coord: Arc<dyn Coordinator>) {
        let mut events = coord.session_events();
        let prefix = self.layout.leader_lock_prefix();
        let mine = match coord.create(&prefix, self.config.endpoint.as_bytes(), CreateMode::EphemeralSequential).await {
            Ok(path) => path,
            Err(e) => {
                tracing::warn!(error = %e, "cannot join the election");
                tokio::time::sleep(self.config.zk_session_timeout / 4).await;
                return;
            }
        };
        let mut mine = mine;
        let mut my_name = mine.rsplit('/').next().unwrap_or_default().to_string();
        loop {
            if coord.state().is_terminal() {
                return;
            }
            let children = match coord.children(&self.layout.leader()).await {
                Ok(mut c) => {
                    c.sort();
                    c
                }
                Err(CoordError::SessionExpired | CoordError::Closed) => return,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(pos) = children.iter().position(|c| *c == my_name) else {
                tracing::warn!("my election node is gone");
                return;
            };
            if pos == 0 {
                if !self.is_active() {
                    // Sequential nodes end in a counter the coordination service only raises: a nameserver leads
                    // only once every lower node is gone, so each active nameserver's number is above the last's.
                    // The first node's sequence is 0, and 0 means "no epoch": the epoch is the sequence plus one.
                    let seq = my_name.rsplit(|c: char| !c.is_ascii_digit()).next().and_then(|d| d.parse::<u64>().ok());
                    self.epoch.store(seq.map_or(0, |s| s + 1), Ordering::SeqCst);
                    if let Err(e) = self.take_over(coord.as_ref()).await {
                        tracing::warn!(error = %e, "takeover failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    self.reach.lock().expect("reach").clear();
                    self.set_active(true);
                    self.start_engine();
                }
                // Lead until the session is in doubt (a Disconnected leader steps down at once), or until the
                // reachability check finds that this nameserver cannot reach the tablets (DESIGN 5.5).
                let requests = self.step_down.get();
                let cut_off = loop {
                    tokio::select! {
                        biased;
                        e = events.next() => match e {
                            Some(SessionState::Connected) => {}
                            Some(SessionState::Disconnected) => break false,
                            _ => return,
                        },
                        _ = self.step_down.changed(requests) => break true,
                    }
                };
                self.set_active(false);
                if cut_off {
                    // Give the lock up: close the election node and join again at the back, so the standby leads
                    // and this one leads again only when the others are gone or step down in turn.
                    self.step_downs.lock().expect("step downs").push(Instant::now());
                    match coord.delete(&mine, None).await {
                        Ok(()) | Err(CoordError::NoNode(_)) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot close the election node; the session ends instead");
                            return;
                        }
                    }
                    match coord.create(&prefix, self.config.endpoint.as_bytes(), CreateMode::EphemeralSequential).await
                    {
                        Ok(path) => {
                            my_name = path.rsplit('/').next().unwrap_or_default().to_string();
                            mine = path;
                            tracing::info!(node = %my_name, "joined the election again, behind the standby");
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot join the election again; the session ends");
                            return;
                        }
                    }
                    continue;
                }
                // Wait for the session to come back (or end) before looking again.
                loop {
                    match events.next().await {
                        Some(SessionState::Connected) => break,
                        Some(SessionState::Disconnected) => {}
                        _ => return,
                    }
                }
                continue;
            }
            // Watch the node just before mine; when it goes, look again.
            let before = format!("{}/{}", self.layout.leader(), children[pos - 1]);
            match coord.exists_watch(&before).await {
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

    /// Becoming active: reload everything from the coordination service (reference 1.3 `Recover`).
    async fn take_over(&self, coord: &dyn Coordinator) -> Result<(), CoordError> {
        // The tablets registered now, before anything is judged offline (bounded: a watch that cannot read
        // `/nodes` leaves the judgement to the grace period as before).
        let listed = self.tablet_passes.wait_until(|n| n > 0);
        if tokio::time::timeout(self.config.zk_session_timeout, listed).await.is_err() {
            tracing::warn!("the registered tablets could not be listed before the takeover");
        }
        let meta = MetaStore { coord, layout: &self.layout };
        let tables = meta.load_tables().await?;
        let auto_failover = meta.auto_failover().await?;
        {
            let mut state = self.state.lock().expect("ns state");
            state.tables = tables.into_iter().map(|t| (t.name.clone(), t)).collect();
            state.auto_failover = auto_failover;
            tracing::info!(
                tables = state.tables.len(),
                tablets = state.tablets.len(),
                auto_failover,
                "metadata loaded"
            );
        }
        self.resume_ops(coord).await
    }

    /// Once active: one worker per op queue, and the failover timers of the tablets already offline.
    fn start_engine(self: &Arc<Self>) {
        for q in 0..self.config.name_server_task_max_concurrency as usize {
            self.keep_session_task(tokio::spawn(self.clone().queue_worker(q)));
        }
        self.schedule_offline_checks();
        let ns = self.clone();
        self.keep_session_task(tokio::spawn(ns.dead_replica_loop()));
        self.keep_session_task(tokio::spawn(self.clone().reach_loop()));
    }

    /// While active: steps down when [`decide_step_down`] says this nameserver cannot reach the tablets it must
    /// act on while a standby is in the election (DESIGN 5.5). Returns after asking for the step-down (the
    /// election then aborts every session task, this one included).
    async fn reach_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(REACH_CHECK_INTERVAL).await;
            if !self.is_active() {
                continue;
            }
            let now = Instant::now();
            let (healthy_tablets, leaderless, leader_tablets) = {
                let state = self.state.lock().expect("ns state");
                let healthy = |e: &str| state.tablets.get(e).is_some_and(|t| t.state == TabletState::Healthy);
                // A tablet that answers its status polls without the partition cannot lead it, however well it
                // answers: counted as a reachable candidate, a restarted empty leader kept a nameserver cut from
                // the only real candidate in office for good (fuzzer seed 189124).
                let holds = |tid: u32, pid: u32, e: &String| {
                    !state.status_polled.contains(e) || state.replica_status.contains_key(&(tid, pid, e.clone()))
                };
                let mut leaderless = Vec::new();
                for (name, t) in &state.tables {
                    for p in t.table_partition.iter().filter(|p| p.partition_meta.len() > 1) {
                        if alive_leader(p).is_none() {
                            let candidates: Vec<String> = followers_to_probe(&p.partition_meta, None)
                                .into_iter()
                                .filter(|e| healthy(e) && holds(t.tid, p.pid, e))
                                .collect();
                            leaderless.push((name.clone(), p.pid, candidates));
                        }
                    }
                }
                let tablets: Vec<String> = state
                    .tablets
                    .iter()
                    .filter(|(_, t)| t.state == TabletState::Healthy)
                    .map(|(e, _)| e.clone())
                    .collect();
                let leader_tablets: std::collections::BTreeSet<String> = state
                    .tables
                    .values()
                    .flat_map(|t| t.table_partition.iter())
                    .filter_map(alive_leader)
                    .filter(|e| healthy(e))
                    .map(str::to_string)
                    .collect();
                (tablets, leaderless, leader_tablets.into_iter().collect())
            };
            let window = {
                let mut recent = self.step_downs.lock().expect("step downs");
                recent.retain(|t| now.saturating_duration_since(*t) < STEP_DOWN_MEMORY);
                step_down_window(STEP_DOWN_WINDOW, recent.len())
            };
            let mut facts = StepDownFacts { healthy_tablets, leaderless, leader_tablets, standby: false, window };
            let reason = {
                let mut reach = self.reach.lock().expect("reach");
                reach.retain(&facts.healthy_tablets);
                // Ask the coordination service for a standby only when the record alone would step down.
                decide_step_down(&reach, &StepDownFacts { standby: true, ..facts.clone() }, now)
            };
            if reason.is_none() {
                continue;
            }
            facts.standby = self.standby_exists().await;
            let Some(reason) = decide_step_down(&self.reach.lock().expect("reach"), &facts, now) else {
                tracing::info!(window = ?facts.window, "cannot reach the tablets, but no standby is in the election");
                continue;
            };
            tracing::warn!(%reason, window = ?facts.window, "cannot reach the tablets: stepping down for the standby");
            self.step_down.bump();
            return;
        }
    }

    /// Whether another nameserver (another endpoint) has a node in the election.
    async fn standby_exists(&self) -> bool {
        let Ok(coord) = self.coord() else { return false };
        let Ok(children) = coord.children(&self.layout.leader()).await else { return false };
        for c in children {
            let path = format!("{}/{c}", self.layout.leader());
            if let Ok((data, _)) = coord.get(&path).await
                && data != self.config.endpoint.as_bytes()
            {
                return true;
            }
        }
        false
    }

    /// Follows `/nodes`: a new endpoint is healthy, a vanished one offline, a returning one healthy again.
    async fn tablet_watch(self: Arc<Self>, coord: Arc<dyn Coordinator>) {
        loop {
            let (children, watch) = match coord.children_watch(&self.layout.nodes()).await {
                Ok(r) => r,
                Err(CoordError::SessionExpired | CoordError::Closed) => return,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let mut present = Vec::with_capacity(children.len());
            for ep in children {
                let id = match coord.exists(&self.layout.node(&ep)).await {
                    Ok(Some(stat)) => Some(stat.czxid),
                    Ok(None) => continue,
                    Err(_) => None,
                };
                present.push((ep, id));
            }
            for event in self.update_tablets(&present) {
                self.on_tablet_event(event);
            }
            self.tablet_passes.set(self.tablet_passes.get() + 1);
            watch.changed().await;
        }
    }

    fn update_tablets(&self, present: &[(String, Option<i64>)]) -> Vec<TabletEvent> {
        let now = Instant::now();
        let mut events = Vec::new();
        let mut state = self.state.lock().expect("ns state");
        for (ep, id) in present {
            // A process that died and came back between two looks at `/nodes`: its entry is a new one.
            if let Some(id) = id
                && let Some(old) = state.node_ids.insert(ep.clone(), *id)
                && old != *id
                && state.tablets.get(ep).is_some_and(|t| t.state == TabletState::Healthy)
            {
                tracing::info!(endpoint = %ep, "tablet registered again under a new node (a new process)");
                events.push(TabletEvent::Online { endpoint: ep.clone(), offline_since: now });
                state.tablets.insert(ep.clone(), TabletEntry { state: TabletState::Healthy, since: now });
                state.replica_status.retain(|(_, _, e), _| e != ep);
                state.status_polled.remove(ep);
                state.incarnations.remove(ep);
            }
        }
        let present: Vec<String> = present.iter().map(|(ep, _)| ep.clone()).collect();
        let present = &present;
        for ep in present {
            let mut fresh = false;
            let entry = state.tablets.entry(ep.clone()).or_insert_with(|| {
                tracing::info!(endpoint = %ep, "tablet joined");
                fresh = true;
                TabletEntry { state: TabletState::Healthy, since: now }
            });
            if entry.state == TabletState::Offline {
                tracing::info!(endpoint = %ep, "tablet is back");
                events.push(TabletEvent::Online { endpoint: ep.clone(), offline_since: entry.since });
                *entry = TabletEntry { state: TabletState::Healthy, since: now };
                fresh = true;
            }
            if fresh {
                state.incarnations.remove(ep);
            }
        }
        for (ep, entry) in state.tablets.iter_mut() {
            if entry.state == TabletState::Healthy && !present.contains(ep) {
                tracing::info!(endpoint = %ep, "tablet went offline");
                *entry = TabletEntry { state: TabletState::Offline, since: now };
                events.push(TabletEvent::Offline { endpoint: ep.clone(), since: now });
            }
        }
        // What an offline tablet last reported is no longer true: showtable prints "-" for it.
        for event in &events {
            if let TabletEvent::Offline { endpoint, .. } = event {
                state.replica_status.retain(|(_, _, e), _| e != endpoint);
                state.status_polled.remove(endpoint);
            }
        }
        events
    }

    /// Polls every healthy tablet's partitions for showtable (reference 1.6 `get_table_status_interval`).
    async fn status_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.config.get_table_status_interval).await;
            if !self.is_active() {
                continue;
            }
            // Every tablet at once, each with a short deadline: a cut tablet delays neither the others' figures
            // nor the evidence of DESIGN 5.5.
            let ns: &Nameserver = &self;
            let polls = ns.healthy_tablets().into_iter().map(|ep| async move {
                let req = tpb::GetTableStatusRequest { tid: 0, pid: 0, all: true };
                let asked_at = Instant::now();
                let result = ns.client(&ep).call_timeout(tablet_rpc::GetTableStatus, req, STATUS_POLL_TIMEOUT).await;
                (ep, asked_at, result)
            });
            for (ep, asked_at, result) in futures::future::join_all(polls).await {
                self.record_reach(&ep, asked_at, result.is_ok() || matches!(result, Err(RpcError::Status(_))));
                if let Ok(resp) = result {
                    let mut state = self.state.lock().expect("ns state");
                    state.replica_status.retain(|(_, _, e), _| e != &ep);
                    state.status_polled.insert(ep.clone());
                    if resp.started_ms != 0 {
                        state.incarnations.entry(ep.clone()).or_insert(resp.started_ms);
                        state.latest_started.insert(ep.clone(), resp.started_ms);
                    }
                    for s in resp.all_table_status {
                        state.replica_status.insert((s.tid, s.pid, ep.clone()), s);
                    }
                    let leader_missing = state.tables.values().any(|t| {
                        t.table_partition.iter().any(|p| {
                            alive_leader(p) == Some(ep.as_str())
                                && !state.replica_status.contains_key(&(t.tid, p.pid, ep.clone()))
                        })
                    });
                    if leader_missing {
                        self.reconcile_now.bump();
                    }
                }
            }
        }
    }

    // ---- tables -----------------------------------------------------------------------------------------------

    /// CreateTable (reference 2): place the partitions, create followers then leaders on the tablets, persist.
    async fn create_table(&self, req: pb::CreateTableRequest) -> Result<pb::GeneralResponse, Status> {
        let coord = self.require_active()?;
        let mut info = req.table_info.ok_or_else(|| Code::InvalidParameter.with("no table_info"))?;
        if info.name.is_empty() {
            return Err(Code::InvalidParameter.with("a table needs a name"));
        }
        // The name is reserved, not the metadata lock held: the tablet calls below must not hold up the op engine.
        let _reserved = {
            let _guard = self.meta_lock.lock().await;
            let mut state = self.state.lock().expect("ns state");
            if state.tables.contains_key(&info.name) || !state.creating.insert(info.name.clone()) {
                return Err(Code::TableAlreadyExists.with(&info.name));
            }
            Reserved { ns: self, name: info.name.clone() }
        };
        let probe = Self::tablet_meta(&info, 0, tpb::TableMode::Leader, 0, vec![]);
        TableSchema::from_meta(&probe).map_err(|e| Code::InvalidParameter.with(e))?;
        if info.partition_num == 0 {
            info.partition_num = self.config.partition_num;
        }
        if info.seg_cnt == 0 {
            info.seg_cnt = 8;
        }
        let healthy = self.healthy_tablets();
        let loads: Vec<TabletLoad> = {
            let state = self.state.lock().expect("ns state");
            let tables: Vec<pb::TableInfo> = state.tables.values().cloned().collect();
            tablet_loads(&healthy, &tables)
        };
        let replica_num = (info.replica_num != 0).then_some(info.replica_num);
        let placement = place_partitions(&loads, info.partition_num, replica_num)
            .map_err(|e| Code::SetPartitionInfoFailed.with(e))?;
        let meta = MetaStore { coord: coord.as_ref(), layout: &self.layout };
        info.tid = {
            let _turn = self.counter_lock.lock().await;
            meta.alloc_tid().await.map_err(coord_err)?
        };
        let term = meta.counter(&self.layout.term()).await.map_err(coord_err)?;
        info.replica_num = placement.replica_num;
        info.table_partition.clear();
        let mut created: Vec<(String, u32)> = Vec::new();
        let mut failure = None;
        'partitions: for p in &placement.partitions {
            let leader = p.leader_endpoint().to_string();
            let followers: Vec<String> = p.followers().map(str::to_string).collect();
            let mut order: Vec<(String, tpb::TableMeta)> = followers
                .iter()
                .map(|f| (f.clone(), Self::tablet_meta(&info, p.pid, tpb::TableMode::Follower, term, vec![])))
                .collect();
            order.push((leader.clone(), Self::tablet_meta(&info, p.pid, tpb::TableMode::Leader, term, followers)));
            for (ep, tmeta) in order {
                let req = tpb::CreateTableRequest { meta: Some(tmeta) };
                if let Err(e) = self.client(&ep).call(tablet_rpc::CreateTable, req).await {
                    failure = Some(Code::CreateTableFailedOnTablet.with(format!("pid {} on {ep}: {e}", p.pid)));
                    break 'partitions;
                }
                created.push((ep, p.pid));
            }
            let mut part = p.to_table_partition();
            part.term_offset = vec![pb::TermPair { term, offset: 0 }];
            info.table_partition.push(part);
        }
        if failure.is_none()
            && let Err(e) = meta.create_table(&info).await
        {
            failure = Some(coord_err(e));
        }
        if let Some(err) = failure {
            for (ep, pid) in created {
                let req = tpb::TablePidRequest { tid: info.tid, pid, task_info: None };
                let _ = self.client(&ep).call(tablet_rpc::DropTable, req).await;
            }
            return Err(err);
        }
        tracing::info!(name = %info.name, tid = info.tid, partitions = info.partition_num, replicas = info.replica_num, "table created");
        {
            let _guard = self.meta_lock.lock().await;
            self.state.lock().expect("ns state").tables.insert(info.name.clone(), info);
        }
        self.notify_table_change(coord.as_ref()).await;
        Ok(pb::GeneralResponse {})
    }

    async fn drop_table(&self, req: pb::DropTableRequest) -> Result<pb::GeneralResponse, Status> {
        let coord = self.require_active()?;
        let table_lock = self.serial(table_key(&req.name)).await;
        let info = self
            .state
            .lock()
            .expect("ns state")
            .tables
            .get(&req.name)
            .cloned()
            .ok_or_else(|| Code::TableIsNotExist.with(&req.name))?;
        let meta = MetaStore { coord: coord.as_ref(), layout: &self.layout };
        meta.delete_table(info.tid).await.map_err(coord_err)?;
        self.state.lock().expect("ns state").tables.remove(&req.name);
        drop(table_lock);
        self.notify_table_change(coord.as_ref()).await;
        // The table is gone from the metadata: the replicas are dropped in the background, all at once, and
        // nothing waits for them (an unreachable tablet held the metadata lock through a request deadline per
        // replica, one after another, and every failover behind it). A replica a tablet keeps is not served
        // (no metadata routes to it) and goes at the tablet's next drop or restart.
        let drops: Vec<(String, u32)> = info
            .table_partition
            .iter()
            .flat_map(|p| p.partition_meta.iter().map(move |r| (r.endpoint.clone(), p.pid)))
            .collect();
        let clients: Vec<(RpcClient, u32)> = drops.iter().map(|(ep, pid)| (self.client(ep), *pid)).collect();
        let tid = info.tid;
        tokio::spawn(async move {
            let calls = clients.into_iter().map(|(client, pid)| async move {
                let req = tpb::TablePidRequest { tid, pid, task_info: None };
                if let Err(e) = client.call(tablet_rpc::DropTable, req).await {
                    tracing::warn!(tid, pid, endpoint = %client.addr(), error = %e, "drop on tablet failed");
                }
            });
            futures::future::join_all(calls).await;
        });
        tracing::info!(name = %req.name, tid = info.tid, "table dropped");
        // The active TaskManager (found through the coordination service) stops the jobs still on the table.
        let tm =
            crate::taskmanager::TmClient::new(coord.clone(), &self.config.zk_root_path, self.config.request_timeout);
        let name = req.name.clone();
        tokio::spawn(async move {
            let reason = format!("table {name} was dropped");
            match crate::taskmanager::client::stop_jobs_on(&tm, &name, &reason).await {
                Ok(ids) if !ids.is_empty() => tracing::info!(name, jobs = ?ids, "stopped the jobs of a dropped table"),
                Ok(_) => {}
                Err(e) => tracing::info!(name, error = %e, "could not stop the jobs of a dropped table"),
            }
        });
        Ok(pb::GeneralResponse {})
    }

    fn show_table(&self, req: pb::ShowTableRequest) -> Result<pb::ShowTableResponse, Status> {
        self.require_active()?;
        let state = self.state.lock().expect("ns state");
        let tables: Vec<pb::TableInfo> = if req.name.is_empty() {
            state.tables.values().cloned().collect()
        } else {
            vec![state.tables.get(&req.name).cloned().ok_or_else(|| Code::TableIsNotExist.with(&req.name))?]
        };
        let mut replicas = Vec::new();
        for t in &tables {
            let ttl = t.column_key.first().and_then(|k| k.ttl);
            for p in &t.table_partition {
                for r in &p.partition_meta {
                    let reported = state.replica_status.get(&(t.tid, p.pid, r.endpoint.clone()));
                    replicas.push(pb::ReplicaStatus {
                        name: t.name.clone(),
                        tid: t.tid,
                        pid: p.pid,
                        endpoint: r.endpoint.clone(),
                        is_leader: r.is_leader,
                        is_alive: r.is_alive,
                        reported: reported.is_some(),
                        offset: reported.map(|s| s.offset).unwrap_or(0),
                        record_cnt: reported.map(|s| s.record_cnt).unwrap_or(0),
                        memused: reported.map(|s| s.memused).unwrap_or(0),
                        ttl,
                    });
                }
            }
        }
        Ok(pb::ShowTableResponse { table_info: tables, replicas })
    }

    fn show_tablet(&self) -> Result<pb::ShowTabletResponse, Status> {
        self.require_active()?;
        let state = self.state.lock().expect("ns state");
        let tablets = state
            .tablets
            .iter()
            .map(|(ep, t)| pb::TabletStatus {
                endpoint: ep.clone(),
                state: t.state.name().to_string(),
                age_ms: u64::try_from(t.since.elapsed().as_millis()).unwrap_or(u64::MAX),
            })
            .collect();
        Ok(pb::ShowTabletResponse { tablets })
    }

    /// showns (reference 1.3): the distinct lock-node values in child order; the first is the leader.
    /// Any nameserver answers it, active or not, so an operator can find the active one.
    async fn show_nameserver(&self) -> Result<pb::ShowNameServerResponse, Status> {
        let coord = self.coord()?;
        let mut children = coord.children(&self.layout.leader()).await.map_err(coord_err)?;
        children.sort();
        let mut nameservers: Vec<pb::NameServerStatus> = Vec::new();
        for c in children {
            let path = format!("{}/{c}", self.layout.leader());
            if let Ok((data, _)) = coord.get(&path).await {
                let endpoint = String::from_utf8_lossy(&data).to_string();
                if !nameservers.iter().any(|n| n.endpoint == endpoint) {
                    let role = if nameservers.is_empty() { "leader" } else { "standby" };
                    nameservers.push(pb::NameServerStatus { endpoint, role: role.into() });
                }
            }
        }
        Ok(pb::ShowNameServerResponse { nameservers })
    }

    async fn conf_get(&self, req: pb::ConfGetRequest) -> Result<pb::ConfGetResponse, Status> {
        let coord = self.require_active()?;
        if !req.key.is_empty() && req.key != "auto_failover" {
            return Err(Code::InvalidParameter.with(format!("unknown key {:?}", req.key)));
        }
        let meta = MetaStore { coord: coord.as_ref(), layout: &self.layout };
        let value = meta.auto_failover().await.map_err(coord_err)?;
        Ok(pb::ConfGetResponse { conf: vec![pb::ConfEntry { key: "auto_failover".into(), value: value.to_string() }] })
    }

    async fn conf_set(&self, req: pb::ConfSetRequest) -> Result<pb::GeneralResponse, Status> {
        let coord = self.require_active()?;
        let entry = req.conf.ok_or_else(|| Code::InvalidParameter.with("no conf"))?;
        if entry.key != "auto_failover" {
            return Err(Code::InvalidParameter.with(format!("unknown key {:?}", entry.key)));
        }
        let on = match entry.value.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            other => {
                return Err(Code::InvalidParameter.with(format!("auto_failover must be true or false, not {other:?}")));
            }
        };
        let meta = MetaStore { coord: coord.as_ref(), layout: &self.layout };
        meta.set_auto_failover(on).await.map_err(coord_err)?;
        self.state.lock().expect("ns state").auto_failover = on;
        tracing::info!(auto_failover = on, "configuration changed");
        Ok(pb::GeneralResponse {})
    }

    fn rpc_server(self: Arc<Self>) -> RpcServer {
        let s = RpcServer::new(format!("nameserver {}", self.config.endpoint));
        let s = route(s, &self, m::CreateTable, |ns, r| async move { ns.create_table(r).await });
        let s = route(s, &self, m::DropTable, |ns, r| async move { ns.drop_table(r).await });
        let s = route(s, &self, m::ShowTable, |ns, r| async move { ns.show_table(r) });
        let s = route(s, &self, m::ShowTablet, |ns, _r| async move { ns.show_tablet() });
        let s = route(s, &self, m::ShowNameServer, |ns, _r| async move { ns.show_nameserver().await });
        let s = route(s, &self, m::ConfGet, |ns, r| async move { ns.conf_get(r).await });
        let s = route(s, &self, m::ConfSet, |ns, r| async move { ns.conf_set(r).await });
        let s = route(s, &self, m::ShowOpStatus, |ns, r| async move { ns.show_op_status(r) });
        let s = route(s, &self, m::OfflineEndpoint, |ns, r| async move { ns.offline_endpoint(r).await });
        let s = route(s, &self, m::RecoverEndpoint, |ns, r| async move { ns.recover_endpoint(r).await });
        let s = route(s, &self, m::ChangeLeader, |ns, r| async move { ns.change_leader(r).await });
        let s = route(s, &self, m::RecoverTable, |ns, r| async move { ns.recover_table(r).await });
        let s = route(s, &self, m::UpdateTableAlive, |ns, r| async move { ns.update_table_alive(r).await });
        let s = route(s, &self, m::AddReplica, |ns, r| async move { ns.add_replica(r).await });
        let s = route(s, &self, m::DelReplica, |ns, r| async move { ns.del_replica(r).await });
        let s = route(s, &self, m::Migrate, |ns, r| async move { ns.migrate(r).await });
        let s = route(s, &self, m::MakeSnapshot, |ns, r| async move { ns.make_snapshot(r).await });
        let s = route(s, &self, m::CancelOp, |ns, r| async move { ns.cancel_op(r).await });
        route(s, &self, m::DeleteOp, |ns, r| async move { ns.delete_op(r).await })
    }
}

fn route<M, F, Fut>(server: RpcServer, ns: &Arc<Nameserver>, method: M, f: F) -> RpcServer
where
    M: Method,
    F: Fn(Arc<Nameserver>, M::Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<M::Resp, Status>> + Send + 'static,
{
    let ns = ns.clone();
    server.add(method, move |req| f(ns.clone(), req))
}
