//! Failover and recovery (reference 5.1 to 5.5): what the active nameserver does when a tablet goes away or comes
//! back, and the offlineendpoint / recoverendpoint algorithms shared by the automatic path and the manual
//! commands.
//!
//! Reactions only: the choices are [`super::decide`]'s, and every change goes through an op created in
//! [`super::opstore`] or a metadata edit of [`super::state`]. It calls those and the bottom rooms; never the
//! engine, the manual commands or the server.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::codes::Code;
use super::decide::{
    Busy, OFFLINE_LEADER_ENDPOINT, TableView, followers_to_probe, may_mark_dead, reconcile_alive_marks,
};
use super::ops::{OpType, alive_leader};
use super::state::{
    Nameserver, NewOp, STATUS_POLL_TIMEOUT, TabletEntry, TabletEvent, TabletState, partition_key, tablet_key,
};
use crate::coord::Layout;
use crate::proto::nameserver as pb;
use crate::proto::nameserver::op_data;
use crate::proto::tablet as tpb;
use crate::rpc::Status;
use crate::tablet::rpc as t;

/// The concurrency a failover's leader change is queued with: 0 spreads the ops over every queue (`pid %
/// name_server_task_max_concurrency`, [`super::decide::queue_index`]), so the leader changes of different
/// partitions run concurrently rather than in turn behind each other in `pid % name_server_task_concurrency`.
/// Safe because the op book runs one partition's ops in creation order whatever their queues
/// ([`super::opbook::OpBook::runnable_front`]).
const SPREAD_OVER_EVERY_QUEUE: u32 = 0;

/// The longest wait between two recoveries of one dead replica.
const MAX_RECOVERY_BACKOFF: Duration = Duration::from_secs(300);

/// Next allowed attempt and attempts so far, per (table, pid, endpoint) the periodic pass acts on.
type Backoff = BTreeMap<(String, u32, String), (Instant, u32)>;

/// Whether an attempt on `key` is due now; if so it is counted, and the next one waits `base` doubled per
/// attempt, up to [`MAX_RECOVERY_BACKOFF`].
fn attempt_due(backoff: &mut Backoff, key: (String, u32, String), now: Instant, base: Duration) -> bool {
    let (next, tries) = backoff.get(&key).copied().unwrap_or((now, 0));
    if next > now {
        return false;
    }
    let delay = base.saturating_mul(1 << tries.min(16)).min(MAX_RECOVERY_BACKOFF);
    backoff.insert(key, (now + delay, tries + 1));
    true
}

impl Nameserver {
    /// Reacts to a tablet event while active: an offline tablet is failed over once it has been gone for
    /// `tablet_heartbeat_timeout`; a returning one is recovered.
    pub(super) fn on_tablet_event(self: &Arc<Self>, event: TabletEvent) {
        if !self.is_active() {
            return;
        }
        let ns = self.clone();
        let handle = match event {
            TabletEvent::Offline { endpoint, since } => tokio::spawn(async move {
                tokio::time::sleep_until(since + ns.config.tablet_heartbeat_timeout).await;
                if ns.offline_since(&endpoint) == Some(since) {
                    ns.on_tablet_offline(&endpoint, false).await;
                }
            }),
            TabletEvent::Online { endpoint, offline_since } => {
                tokio::spawn(async move { ns.on_tablet_online(&endpoint, offline_since).await })
            }
        };
        self.keep_session_task(handle);
    }

    /// Reference 5.1 `OnTabletOffline`: with auto_failover on, marks the tablet's replicas not alive (never a
    /// partition's last alive one) and fails its partitions over.
    ///
    /// A tablet whose entry expired while another process of it already runs (a restart waits for the old
    /// session to expire before it can register) is failed over as a restart: the partitions the new process
    /// holds were loaded since by this nameserver's recoveries (the alive-mark reconciliation re-adds a restarted
    /// tablet's replicas before its old session expires), and taking them offline again left a partition
    /// without an alive follower when its leader failed next (fuzzer seed 157367 of campaign 80). Which process
    /// owned the entry is the start time its status polls reported ([`super::state::State::incarnations`]).
    ///
    /// Only a poll that already saw another process makes it ask the tablet (a process that does not answer, a
    /// paused one, would otherwise hold up every failover by the probe's deadline).
    pub(super) async fn on_tablet_offline(&self, endpoint: &str, startup: bool) {
        let (owner, latest) = {
            let state = self.state.lock().expect("ns state");
            (state.incarnations.get(endpoint).copied(), state.latest_started.get(endpoint).copied())
        };
        let mut loaded = BTreeSet::new();
        if !startup
            && let (Some(owner), Some(latest)) = (owner, latest)
            && latest != owner
        {
            let req = tpb::GetTableStatusRequest { tid: 0, pid: 0, all: true };
            if let Ok(resp) = self.client(endpoint).call_timeout(t::GetTableStatus, req, STATUS_POLL_TIMEOUT).await
                && resp.started_ms != 0
                && resp.started_ms != owner
            {
                tracing::info!(
                    endpoint,
                    "the expired entry was a previous process's: the running one keeps its loaded partitions"
                );
                loaded = resp.all_table_status.iter().map(|s| (s.tid, s.pid)).collect();
            }
        }
        let _tablet = self.serial(tablet_key(endpoint)).await;
        self.on_tablet_offline_locked(endpoint, startup, &loaded).await;
    }

    /// [`Self::on_tablet_offline`] under the tablet's failover lock, so two reactions to one tablet (a grace
    /// period ending as it comes back restarted) take turns. The tablet's partitions are decided under their own
    /// locks, so no other decision on them sees no op queued and creates one meanwhile; nothing else waits. Their
    /// replicas are marked not alive in one metadata write per table, and their ops are created all at once: on
    /// a lossy network one after another took seconds per partition, and the last partitions a crashed leader's
    /// tablet led waited for the first ones' writes (fuzzer seed 50105 of campaign 77: 11 s without a leader).
    /// Partitions in `loaded` (by tid and pid) are left alone: see [`Self::on_tablet_online`].
    async fn on_tablet_offline_locked(&self, endpoint: &str, startup: bool, loaded: &BTreeSet<(u32, u32)>) {
        if !self.is_active() || !self.auto_failover() || self.config.planted.never_fail_over {
            return;
        }
        if !startup && self.is_healthy(endpoint) {
            return;
        }
        tracing::info!(endpoint, startup, "failing over a tablet");
        let mut partitions = self.partitions_on(endpoint);
        if !loaded.is_empty() {
            let state = self.state.lock().expect("ns state");
            let tid = |name: &String| state.tables.get(name).map(|t| t.tid);
            partitions.retain(|(name, pid)| !tid(name).is_some_and(|tid| loaded.contains(&(tid, *pid))));
        }
        let _partitions = self.serial_all(partitions.iter().map(|(name, pid)| partition_key(name, *pid))).await;
        let mut by_table: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
        for (name, pid) in &partitions {
            by_table.entry(name).or_default().insert(*pid);
        }
        // One write per table, the tables at once (each has its own metadata lock).
        let marks = by_table.into_iter().map(|(name, pids)| async move {
            let ep = endpoint.to_string();
            let result = self
                .edit_partitions(name, move |p| {
                    if !pids.contains(&p.pid) || !may_mark_dead(p, &ep) {
                        return false;
                    }
                    for m in p.partition_meta.iter_mut().filter(|m| m.endpoint == ep) {
                        m.is_alive = false;
                    }
                    true
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(name, endpoint, error = %e, "cannot mark the replicas not alive");
            }
        });
        futures::future::join_all(marks).await;
        let concurrency = self.config.name_server_task_concurrency;
        // The partitions the tablet led first: their leader changes end an outage, the others' ops only tidy up
        // (the ops are created at once, but the first polled is the first to get its turn at anything shared).
        let led = |(name, pid): &(String, u32)| {
            self.partition_meta(name, *pid)
                .is_some_and(|p| p.partition_meta.iter().any(|m| m.endpoint == endpoint && m.is_leader))
        };
        let (mut first, rest): (Vec<_>, Vec<_>) = partitions.into_iter().partition(led);
        first.extend(rest);
        let each: Vec<[(String, u32); 1]> = first.into_iter().map(|p| [p]).collect();
        futures::future::join_all(each.iter().map(|one| self.offline_partitions(endpoint, one, concurrency))).await;
    }

    /// Reference 5.4 `OnTabletOnline`: a tablet that restarted (`startup_`) is failed over at once if it was not
    /// yet, then every replica it holds is recovered; a short blip of the same process changes nothing.
    async fn on_tablet_online(&self, endpoint: &str, offline_since: Instant) {
        if !self.is_active() || !self.auto_failover() {
            return;
        }
        // What the tablet holds now, asked before the failover lock is taken (no lock across a tablet call). A
        // restarted process starts empty and loads only what a nameserver tells it to, so a partition it holds
        // was re-added after the restart (the alive-mark reconciliation can get there before the old session's
        // node expires and the restart is seen): failing it over now would mark a loaded, caught-up replica dead
        // and, with its leader gone too, leave the partition leaderless for good (seed 394377).
        // Its node is back, so its process listens: a connect that failed while it was down must not keep the
        // calls below failing fast through the rest of the backoff window.
        self.client(endpoint).retry_now().await;
        let req = tpb::GetTableStatusRequest { tid: 0, pid: 0, all: true };
        let loaded: BTreeSet<(u32, u32)> =
            match self.client(endpoint).call_timeout(t::GetTableStatus, req, STATUS_POLL_TIMEOUT).await {
                Ok(resp) => resp.all_table_status.iter().map(|s| (s.tid, s.pid)).collect(),
                Err(_) => BTreeSet::new(),
            };
        let tablet = self.serial(tablet_key(endpoint)).await;
        let Ok(coord) = self.require_active() else { return };
        let value = match coord.get(&self.layout.node(endpoint)).await {
            Ok((data, _)) => String::from_utf8_lossy(&data).to_string(),
            Err(e) => {
                tracing::warn!(endpoint, error = %e, "cannot read the returning tablet's node");
                return;
            }
        };
        let restarted = value == Layout::startup_value(endpoint);
        if !restarted && offline_since.elapsed() < self.config.tablet_heartbeat_timeout {
            tracing::info!(endpoint, "tablet is back within the grace period; nothing to recover");
            // Its leaders fenced themselves when their session expired: they still lead, say so (tablet calls:
            // not under the failover lock).
            drop(tablet);
            self.confirm_fenced_leaders(endpoint).await;
            return;
        }
        if restarted {
            self.on_tablet_offline_locked(endpoint, true, &loaded).await;
        }
        tracing::info!(endpoint, restarted, "recovering a returning tablet");
        let concurrency = self.config.name_server_task_concurrency;
        for partition in self.partitions_on(endpoint) {
            let _partition = self.serial(partition_key(&partition.0, partition.1)).await;
            self.recover_partitions(endpoint, &[partition], false, restarted, concurrency).await;
        }
        if !restarted {
            // Back after the grace period, but its failover may never have run: failovers take turns under the
            // lock, and one that gets its turn after the tablet is back does nothing. Leaders the metadata still
            // names fenced themselves when their session expired; confirm them now, as within the grace period,
            // instead of leaving them refusing writes until a later pass (fuzzer seed 903094 of campaign 74:
            // four tablets cut at once over a slow network, 7 s without service).
            drop(tablet);
            self.confirm_fenced_leaders(endpoint).await;
        }
    }

    /// Cancels the follower recoveries queued for a partition whose leader is lost, so its failover runs next
    /// ([`super::opbook::OpBook::preempt_for_failover`]). The partition's recovery is queued again by the
    /// dead-replica pass once it has a leader.
    fn preempt_for_failover(&self, name: &str, pid: u32) {
        let canceled = self.state.lock().expect("ns state").ops.preempt_for_failover(name, pid);
        if !canceled.is_empty() {
            tracing::info!(name, pid, ops = ?canceled, "follower recoveries yield to the failover of a lost leader");
            self.op_signal.bump();
        }
    }

    /// Every (table, pid) with a replica on `endpoint`, in table-name order.
    pub(super) fn partitions_on(&self, endpoint: &str) -> Vec<(String, u32)> {
        let state = self.state.lock().expect("ns state");
        let mut out = Vec::new();
        for (name, t) in &state.tables {
            for p in &t.table_partition {
                if p.partition_meta.iter().any(|m| m.endpoint == endpoint) {
                    out.push((name.clone(), p.pid));
                }
            }
        }
        out
    }

    fn partition_meta(&self, name: &str, pid: u32) -> Option<pb::TablePartition> {
        let state = self.state.lock().expect("ns state");
        state.tables.get(name).and_then(|t| t.table_partition.iter().find(|p| p.pid == pid).cloned())
    }

    /// Reference 5.2: per partition on `endpoint`, a single replica is marked not alive, a lost leader is
    /// replaced (kChangeLeaderOP), and a follower is taken out of replication (kOfflineReplicaOP).
    pub(super) async fn offline_endpoint_internal(&self, endpoint: &str, concurrency: u32) {
        self.offline_partitions(endpoint, &self.partitions_on(endpoint), concurrency).await;
    }

    /// [`Self::offline_endpoint_internal`] for the given partitions of `endpoint` only.
    async fn offline_partitions(&self, endpoint: &str, partitions: &[(String, u32)], concurrency: u32) {
        for (name, pid) in partitions.iter().cloned() {
            let Some(p) = self.partition_meta(&name, pid) else { continue };
            let Some(mine) = p.partition_meta.iter().find(|m| m.endpoint == endpoint).cloned() else { continue };
            let result = if p.partition_meta.len() == 1 {
                self.create_op(NewOp {
                    op_type: OpType::UpdatePartitionStatus,
                    name: name.clone(),
                    pid,
                    data: op_data::Kind::EndpointStatus(pb::EndpointStatusData {
                        endpoint: endpoint.to_string(),
                        is_leader: true,
                        is_alive: false,
                    }),
                    concurrency,
                    parent: None,
                })
                .await
                .map(drop)
            } else {
                let leader = alive_leader(&p).map(str::to_string);
                if mine.is_leader || leader.is_none() {
                    let pending =
                        self.state.lock().expect("ns state").ops.has_queued(&name, pid, OpType::ChangeLeader as u32);
                    if pending {
                        tracing::info!(name, pid, "a leader change is already queued");
                        Ok(())
                    } else if leader.is_none() || leader.as_deref() == Some(endpoint) {
                        // Spread over every queue (concurrency 0: `pid % max`), so the leader changes of the
                        // partitions a tablet led run at once instead of one after another in `pid % 2`; the book
                        // keeps each partition's ops in creation order across queues.
                        self.create_change_leader_op(&name, pid, "", false, SPREAD_OVER_EVERY_QUEUE).await
                    } else {
                        Ok(())
                    }
                } else if self.state.lock().expect("ns state").ops.has_queued_on(
                    &name,
                    pid,
                    OpType::OfflineReplica as u32,
                    endpoint,
                ) {
                    tracing::info!(name, pid, endpoint, "the replica's offline op is already queued");
                    Ok(())
                } else {
                    self.create_op(NewOp {
                        op_type: OpType::OfflineReplica,
                        name: name.clone(),
                        pid,
                        data: op_data::Kind::Endpoint(endpoint.to_string()),
                        concurrency,
                        parent: None,
                    })
                    .await
                    .map(drop)
                }
            };
            if let Err(e) = result {
                tracing::warn!(name, pid, endpoint, error = %e, "cannot take the replica offline");
            }
        }
    }

    /// Queues a kReLoadTableOP: `pid` of `name` loaded back on `endpoint` from its own disk (a failure is logged).
    async fn create_reload_op(&self, name: &str, pid: u32, endpoint: &str, concurrency: u32) {
        let reload = NewOp {
            op_type: OpType::ReLoadTable,
            name: name.to_string(),
            pid,
            data: op_data::Kind::Endpoint(endpoint.to_string()),
            concurrency,
            parent: None,
        };
        if let Err(e) = self.create_op(reload).await {
            tracing::warn!(name, pid, endpoint, error = %e, "cannot reload the leader");
        }
    }

    /// Reference 5.2 `CreateChangeLeaderOP`: needs an alive follower on a healthy tablet (none: no op, the
    /// partition stays leaderless); a named candidate must be one of them, unless `need_restore`.
    pub(super) async fn create_change_leader_op(
        &self,
        name: &str,
        pid: u32,
        candidate: &str,
        need_restore: bool,
        concurrency: u32,
    ) -> Result<(), Status> {
        // Planted (tests only), for every automatic leader change (manual ones run with auto_failover off): a
        // nameserver that never fails a partition over, or one that waits 30 s first.
        if self.auto_failover() {
            if self.config.planted.never_fail_over {
                return Ok(());
            }
            if self.config.planted.failover_delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(self.config.planted.failover_delay_ms)).await;
            }
        }
        let p = self.partition_meta(name, pid).ok_or_else(|| Code::PidIsNotExist.with(pid))?;
        // The replicas kSelectLeader will ask (the alive followers, and a leader marked dead that no change replaced),
        // on healthy tablets.
        let named = (!candidate.is_empty()).then_some(candidate);
        let followers: Vec<String> =
            followers_to_probe(&p.partition_meta, named).into_iter().filter(|e| self.is_healthy(e)).collect();
        if followers.is_empty() && !need_restore {
            tracing::warn!(name, pid, "no alive follower on a healthy tablet: the partition stays leaderless");
            return Ok(());
        }
        if !candidate.is_empty() && !need_restore && !followers.iter().any(|f| f == candidate) {
            return Err(Code::CreateOpFailed.with(format!("{candidate} is not an alive follower on a healthy tablet")));
        }
        self.create_op(NewOp {
            op_type: OpType::ChangeLeader,
            name: name.to_string(),
            pid,
            data: op_data::Kind::ChangeLeader(pb::ChangeLeaderData {
                candidate_leader: candidate.to_string(),
                need_restore,
                ..Default::default()
            }),
            concurrency,
            parent: None,
        })
        .await
        .map(drop)
    }

    /// Reference 5.5: per partition on `endpoint` whose replica is not alive (or is the only one), a
    /// kRecoverTableOP; with `need_restore`, leadership goes back to `endpoint` afterwards and the demoted leader
    /// is recovered in turn.
    pub(super) async fn recover_endpoint_internal(
        &self,
        endpoint: &str,
        need_restore: bool,
        restarted: bool,
        concurrency: u32,
    ) {
        let partitions = self.partitions_on(endpoint);
        self.recover_partitions(endpoint, &partitions, need_restore, restarted, concurrency).await;
    }

    /// [`Self::recover_endpoint_internal`] for the given partitions of `endpoint` only.
    async fn recover_partitions(
        &self,
        endpoint: &str,
        partitions: &[(String, u32)],
        need_restore: bool,
        restarted: bool,
        concurrency: u32,
    ) {
        for (name, pid) in partitions.iter().cloned() {
            let Some(p) = self.partition_meta(&name, pid) else { continue };
            let Some(mine) = p.partition_meta.iter().find(|m| m.endpoint == endpoint).cloned() else { continue };
            let only_alive = mine.is_alive && p.partition_meta.iter().filter(|m| m.is_alive).count() == 1;
            if restarted && mine.is_leader && only_alive && p.partition_meta.len() > 1 {
                // The partition's last alive replica (never failed over: no follower was alive) is on a tablet
                // that restarted and lost it from memory. It is still the partition's authority, so it is loaded
                // back from its own disk, as a single replica would be; its followers are re-added afterwards.
                // OpenMLDB leaves it marked alive and unloaded until an operator steps in.
                tracing::info!(name, pid, endpoint, "reloading the last alive leader of a restarted tablet");
                self.create_reload_op(&name, pid, endpoint, concurrency).await;
                continue;
            }
            if mine.is_alive && p.partition_meta.len() > 1 {
                continue;
            }
            let delta = if need_restore { 0 } else { self.config.check_binlog_sync_progress_delta };
            let recover = |ep: &str, is_leader: bool, offset_delta: u64| NewOp {
                op_type: OpType::RecoverTable,
                name: name.clone(),
                pid,
                data: op_data::Kind::RecoverTable(pb::RecoverTableData {
                    endpoint: ep.to_string(),
                    offset_delta,
                    is_leader,
                    concurrency,
                }),
                concurrency,
                parent: None,
            };
            if let Err(e) = self.create_op(recover(endpoint, mine.is_leader, delta)).await {
                tracing::warn!(name, pid, endpoint, error = %e, "cannot recover the replica");
                continue;
            }
            if need_restore && mine.is_leader {
                if let Err(e) = self.create_change_leader_op(&name, pid, endpoint, true, concurrency).await {
                    tracing::warn!(name, pid, endpoint, error = %e, "cannot give leadership back");
                    continue;
                }
                if let Err(e) = self.create_op(recover(OFFLINE_LEADER_ENDPOINT, true, 100_000)).await {
                    tracing::warn!(name, pid, error = %e, "cannot recover the demoted leader");
                }
            }
        }
    }

    /// At takeover: tablets already offline are failed over when their grace period ends, and endpoints the
    /// metadata names but `/nodes` does not hold count as offline from now (OpenMLDB's new leader only knows the
    /// tablets it sees, so it would never fail those over).
    pub(super) fn schedule_offline_checks(self: &Arc<Self>) {
        let now = Instant::now();
        let events: Vec<TabletEvent> = {
            let mut state = self.state.lock().expect("ns state");
            let referenced: Vec<String> = state
                .tables
                .values()
                .flat_map(|t| {
                    t.table_partition.iter().flat_map(|p| p.partition_meta.iter().map(|m| m.endpoint.clone()))
                })
                .collect();
            for ep in referenced {
                state.tablets.entry(ep.clone()).or_insert_with(|| {
                    tracing::info!(endpoint = %ep, "tablet named by the metadata is not registered; offline");
                    TabletEntry { state: TabletState::Offline, since: now }
                });
            }
            state
                .tablets
                .iter()
                .filter(|(_, t)| t.state == TabletState::Offline)
                .map(|(ep, t)| TabletEvent::Offline { endpoint: ep.clone(), since: t.since })
                .collect()
        };
        for e in events {
            self.on_tablet_event(e);
        }
    }

    /// Alive marks reconciled with what the tablets report ([`super::decide::reconcile`]): every healthy tablet
    /// is asked for the partitions it holds (all at once, each with a short deadline, outside any lock), and a
    /// replica marked alive that its tablet does not hold (it restarted unseen, or a manual procedure or a
    /// half-failed op left the mark) is taken out of service for its own partition through the op path and
    /// recovered like a returning replica. The tablet's other replicas are left alone; a tablet that does not
    /// answer changes nothing. Each correction is retried with a doubling delay ([`attempt_due`]).
    async fn reconcile_alive_marks(&self, backoff: &mut Backoff) {
        let ops_seen = self.op_signal.get();
        let polls = self.healthy_tablets().into_iter().map(|ep| async move {
            let req = tpb::GetTableStatusRequest { tid: 0, pid: 0, all: true };
            let asked_at = Instant::now();
            let result = self.client(&ep).call_timeout(t::GetTableStatus, req, STATUS_POLL_TIMEOUT).await;
            self.record_reach(&ep, asked_at, result.is_ok() || result.as_ref().is_err_and(|e| e.status().is_some()));
            (ep, result)
        });
        let mut held: BTreeMap<String, BTreeSet<(u32, u32)>> = BTreeMap::new();
        let mut fenced = Vec::new();
        for (ep, result) in futures::future::join_all(polls).await {
            let Ok(resp) = result else { continue };
            if resp.all_table_status.iter().any(|s| s.fenced) {
                fenced.push(ep.clone());
            }
            held.insert(ep, resp.all_table_status.iter().map(|s| (s.tid, s.pid)).collect());
        }
        for ep in fenced {
            self.confirm_fenced_leaders(&ep).await;
        }
        // An op that ran while the tablets were asked may have loaded a replica after its tablet answered and
        // marked it alive since: nothing is corrected on such a round (the next pass looks again).
        if self.op_signal.get() != ops_seen {
            return;
        }
        let found = {
            let state = self.state.lock().expect("ns state");
            let views: Vec<TableView<'_>> = state
                .tables
                .iter()
                .map(|(name, t)| TableView { name, tid: t.tid, partitions: &t.table_partition })
                .collect();
            let busy = |name: &str, pid| {
                if !state.ops.has_queued_for(name, pid) {
                    Busy::Idle
                } else if state.ops.only_yielding_for(name, pid) {
                    Busy::Yielding
                } else {
                    Busy::Busy
                }
            };
            reconcile_alive_marks(&views, &held, busy)
        };
        for (name, pid) in &found.preempt {
            let _partition = self.serial(partition_key(name, *pid)).await;
            self.preempt_for_failover(name, *pid);
        }
        for s in &found.stranded {
            tracing::info!(
                name = %s.name,
                pid = s.pid,
                endpoint = %s.endpoint,
                "a follower marked alive is not loaded, but it is its partition's last alive replica: left as is"
            );
        }
        let now = Instant::now();
        let due: BTreeSet<(String, u32, String)> = found
            .not_loaded
            .iter()
            .map(|n| (n.name.clone(), n.pid, n.endpoint.clone()))
            .chain(found.reload.iter().cloned())
            .collect();
        backoff.retain(|k, _| due.contains(k));
        let concurrency = self.config.name_server_task_concurrency;
        for (name, pid, endpoint) in found.reload {
            if !attempt_due(
                backoff,
                (name.clone(), pid, endpoint.clone()),
                now,
                self.config.recover_dead_replica_interval,
            ) {
                continue;
            }
            let _partition = self.serial(partition_key(&name, pid)).await;
            if !self.is_active() || !self.auto_failover() {
                return;
            }
            if self.state.lock().expect("ns state").ops.has_queued_for(&name, pid) {
                continue;
            }
            tracing::info!(name, pid, endpoint, "no tablet holds a leaderless partition: its last leader is reloaded");
            self.create_reload_op(&name, pid, &endpoint, concurrency).await;
        }
        for n in found.not_loaded {
            let key = (n.name.clone(), n.pid, n.endpoint.clone());
            if !attempt_due(backoff, key, now, self.config.recover_dead_replica_interval) {
                continue;
            }
            tracing::info!(
                name = %n.name,
                pid = n.pid,
                endpoint = %n.endpoint,
                is_leader = n.is_leader,
                last_alive = n.last_alive,
                "a replica marked alive is not loaded on its tablet: its mark is corrected"
            );
            let _partition = self.serial(partition_key(&n.name, n.pid)).await;
            if !self.is_active() || !self.auto_failover() {
                return;
            }
            if self.state.lock().expect("ns state").ops.has_queued_for(&n.name, n.pid) {
                continue;
            }
            let ep = n.endpoint.clone();
            let marked = self
                .edit_partition(&n.name, n.pid, move |p| {
                    if !may_mark_dead(p, &ep) {
                        return Ok(false);
                    }
                    for m in p.partition_meta.iter_mut().filter(|m| m.endpoint == ep) {
                        m.is_alive = false;
                    }
                    Ok(true)
                })
                .await;
            if let Err(e) = marked {
                tracing::warn!(name = %n.name, pid = n.pid, endpoint = %n.endpoint, error = %e, "cannot correct the mark");
                continue;
            }
            let partition = [(n.name.clone(), n.pid)];
            self.offline_partitions(&n.endpoint, &partition, concurrency).await;
            self.recover_partitions(&n.endpoint, &partition, false, true, concurrency).await;
        }
    }

    /// While active: at takeover and then every `recover_dead_replica_interval`, a replica marked not alive on a
    /// healthy tablet that no op handles gets a RecoverTable op (not in OpenMLDB, where a failed recovery op
    /// waits for an operator: a transient disk error during a tablet's restart would leave the partition dead);
    /// and a partition left without an alive leader but with an alive follower on a healthy tablet (every tablet
    /// offline at once, then back) gets a ChangeLeader op. Each is tried again with a doubling delay, up to 5 min.
    pub(super) async fn dead_replica_loop(self: Arc<Self>) {
        let mut backoff = Backoff::new();
        let mut marks = Backoff::new();
        let mut at_takeover = true;
        loop {
            let seen = self.reconcile_now.get();
            if self.auto_failover() {
                self.reconcile_alive_marks(&mut marks).await;
            }
            self.recover_dead_replicas(&mut backoff, at_takeover).await;
            at_takeover = false;
            // The next pass at its period, or at once when a status poll found a leader missing on its tablet
            // (a broken binlog unloaded it: waiting for the period cost up to 5 s of its outage, seed 174603).
            // `biased`: an unbiased select draws its polling order from a thread-local generator the simulator
            // does not reset, so the same seed ran differently the second time in one process.
            tokio::select! {
                biased;
                _ = tokio::time::sleep(self.config.recover_dead_replica_interval) => {}
                _ = self.reconcile_now.changed(seen) => {}
            }
        }
    }

    /// At takeover with auto_failover on: a healthy tablet's replicas that are marked not alive, in partitions
    /// with an alive leader (or of a single replica) and no op queued, are recovered. They are those of a tablet
    /// that came back while no nameserver was active, or while the previous one was failing: OpenMLDB's new
    /// leader only reacts to transitions it sees, so they would stay out of service until recovered by hand.
    async fn recover_dead_replicas(&self, backoff: &mut Backoff, at_takeover: bool) {
        if !self.auto_failover() {
            return;
        }
        let mut todo: Vec<(String, u32, String, bool)> = Vec::new();
        let mut preempt: Vec<(String, u32)> = Vec::new();
        {
            let state = self.state.lock().expect("ns state");
            for (name, t) in &state.tables {
                for p in &t.table_partition {
                    let single = p.partition_meta.len() == 1;
                    let healthy = |ep: &str| state.tablets.get(ep).is_some_and(|e| e.state == TabletState::Healthy);
                    // A leaderless partition whose only queued ops are follower recoveries fails over first
                    // (they need a leader to finish: see `OpBook::preempt_for_failover`).
                    let yielding = !single
                        && alive_leader(p).is_none()
                        && state.ops.only_yielding_for(name, p.pid)
                        && followers_to_probe(&p.partition_meta, None).iter().any(|e| healthy(e));
                    if state.ops.has_queued_for(name, p.pid) && !yielding {
                        continue;
                    }
                    if yielding {
                        preempt.push((name.clone(), p.pid));
                    }
                    if !single && alive_leader(p).is_none() {
                        // Leaderless with an alive follower that is reachable again (every tablet went offline at
                        // once, so no failover could pick one then), or with its leader marked dead on a healthy
                        // tablet and never replaced: fail over now, as for a lost leader.
                        if followers_to_probe(&p.partition_meta, None).iter().any(|e| healthy(e)) {
                            todo.push((name.clone(), p.pid, String::new(), true));
                        }
                        continue;
                    }
                    for m in p.partition_meta.iter().filter(|m| !m.is_alive) {
                        if healthy(&m.endpoint) {
                            todo.push((name.clone(), p.pid, m.endpoint.clone(), m.is_leader));
                        }
                    }
                }
            }
        }
        for (name, pid) in &preempt {
            let _partition = self.serial(partition_key(name, *pid)).await;
            self.preempt_for_failover(name, *pid);
        }
        // The list was made without a lock: each partition is checked again under its own before an op is
        // created, unless this pass queued the op it finds.
        let mut created: BTreeSet<(String, u32)> = BTreeSet::new();
        let concurrency = self.config.name_server_task_concurrency;
        let now = Instant::now();
        backoff.retain(|k, _| todo.iter().any(|(n, p, e, _)| (n, p, e) == (&k.0, &k.1, &k.2)));
        for (name, pid, endpoint, is_leader) in todo {
            let key = (name.clone(), pid, endpoint.clone());
            if !attempt_due(backoff, key, now, self.config.recover_dead_replica_interval) {
                continue;
            }
            let _partition = self.serial(partition_key(&name, pid)).await;
            if !self.is_active() || !self.auto_failover() {
                return;
            }
            let here = (name.clone(), pid);
            if !created.contains(&here) && self.state.lock().expect("ns state").ops.has_queued_for(&name, pid) {
                continue;
            }
            created.insert(here);
            if endpoint.is_empty() {
                tracing::info!(name, pid, at_takeover, "a leaderless partition with an alive follower fails over");
                if let Err(e) = self.create_change_leader_op(&name, pid, "", false, SPREAD_OVER_EVERY_QUEUE).await {
                    tracing::warn!(name, pid, error = %e, "cannot change the leader");
                }
                continue;
            }
            tracing::info!(name, pid, endpoint, at_takeover, "a dead replica on a healthy tablet is recovered");
            let new = NewOp {
                op_type: OpType::RecoverTable,
                name: name.clone(),
                pid,
                data: op_data::Kind::RecoverTable(pb::RecoverTableData {
                    endpoint: endpoint.clone(),
                    offset_delta: self.config.check_binlog_sync_progress_delta,
                    is_leader,
                    concurrency,
                }),
                concurrency,
                parent: None,
            };
            if let Err(e) = self.create_op(new).await {
                tracing::warn!(name, pid, endpoint, error = %e, "cannot recover the replica");
            }
        }
    }
}
