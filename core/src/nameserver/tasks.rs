//! The task bodies of the OP/TASK engine (reference 4.3, 4.4, 5.3, 5.6): the metadata tasks, the RPC tasks sent
//! to a tablet and polled until it reports their outcome, leader selection with its fencing probes, the leader
//! change and the metadata that follows it, the recover-table decision and the child op it creates, and the
//! binlog sync check. Each body runs one task of one op and says how it went; which task runs when, and what the
//! op's record says about it, is the engine's business.
//!
//! It calls [`super::opstore`] (child ops, an op's record), [`super::state`] and the bottom rooms; the choices
//! themselves are [`super::decide`]'s.

use std::collections::BTreeMap;

use tokio::time::Instant;

use super::codes::Code;
use super::decide::{
    LeaderLog, Probe, RecoverDecision, RecoverTarget, decide_recover_table, followers_to_probe, scan_recover_target,
    select_leader,
};
use super::meta::MetaStore;
use super::opbook::QueuedOp;
use super::ops::{self, OpType, Task, alive_leader};
use super::state::{FENCING_PROBE_TIMEOUT, Nameserver, NewOp};
use crate::proto::nameserver::{self as pb, op_data};
use crate::proto::tablet::{self as tpb, TableMode, TaskStatus};
use crate::rpc::{RpcError, Status};
use crate::tablet::rpc as t;

/// How many polls may pass without the tablet knowing a task it was sent (reference 4.3: 5).
const UNKNOWN_TASK_POLLS: u32 = 5;

/// How long a tablet that stays registered may leave every task poll unanswered before the op gives up on it (a
/// tablet gone from the coordination service fails it after `tablet_heartbeat_timeout` instead). Long, because a
/// task given up on may still land; the tablet refuses such a late request where it would undo a later op's work
/// (a DelReplica older than the AddReplica of the same replica).
const TASK_POLL_SILENCE_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Nameserver {
    pub(super) async fn run_task(&self, op: &QueuedOp, task: &Task) -> Result<(), String> {
        if task.rpc().is_some() {
            return self.run_rpc_task(op, task).await;
        }
        match task {
            Task::AddTableInfo { endpoint } => {
                let ep = endpoint.clone();
                self.edit_partition(&op.info.name, op.info.pid, move |p| {
                    if p.partition_meta.iter().any(|m| m.endpoint == ep) {
                        return Ok(false);
                    }
                    p.partition_meta.push(pb::PartitionMeta { endpoint: ep, is_leader: false, is_alive: false });
                    Ok(true)
                })
                .await
            }
            Task::DelTableInfo { endpoint } => {
                let ep = endpoint.clone();
                self.edit_partition(&op.info.name, op.info.pid, move |p| {
                    let before = p.partition_meta.len();
                    p.partition_meta.retain(|m| m.endpoint != ep);
                    Ok(p.partition_meta.len() != before)
                })
                .await
            }
            Task::UpdateTableInfo { src, des } => {
                let (src, des) = (src.clone(), des.clone());
                self.edit_partition(&op.info.name, op.info.pid, move |p| {
                    if let Some(d) = p.partition_meta.iter_mut().find(|m| m.endpoint == des) {
                        d.is_alive = true;
                        d.is_leader = false;
                        p.partition_meta.retain(|m| m.endpoint != src);
                    } else if let Some(s) = p.partition_meta.iter_mut().find(|m| m.endpoint == src) {
                        s.endpoint = des;
                    } else {
                        return Err(format!("neither {src} nor {des} is a replica"));
                    }
                    Ok(true)
                })
                .await
            }
            Task::UpdatePartitionStatus { endpoint, is_leader, is_alive } => {
                let (ep, is_leader, is_alive) = (endpoint.clone(), *is_leader, *is_alive);
                self.edit_partition(&op.info.name, op.info.pid, move |p| {
                    let m = p
                        .partition_meta
                        .iter_mut()
                        .find(|m| m.endpoint == ep)
                        .ok_or_else(|| format!("{ep} is not a replica"))?;
                    let changed = m.is_leader != is_leader || m.is_alive != is_alive;
                    m.is_leader = is_leader;
                    m.is_alive = is_alive;
                    Ok(changed)
                })
                .await?;
                // A leader marked alive again may have fenced itself when its session expired: tell it now.
                if is_leader && is_alive {
                    self.confirm_fenced(endpoint, Some((&op.info.name, op.info.pid))).await;
                }
                Ok(())
            }
            Task::SelectLeader => self.select_leader_task(op).await,
            Task::ChangeLeader => self.change_leader_task(op).await,
            Task::UpdateLeaderInfo => self.update_leader_info_task(op).await,
            Task::RecoverTable { endpoint, offset_delta, concurrency } => {
                self.recover_table_task(op, endpoint, *offset_delta, *concurrency).await
            }
            Task::CheckBinlogSyncProgress { endpoint, offset_delta } => {
                self.check_sync_task(op, endpoint, *offset_delta).await
            }
            _ => Err(format!("{task} is not a nameserver task")),
        }
    }

    // ---- RPC tasks ------------------------------------------------------------------------------------------

    /// Confirms, with a ChangeRole to the role and term it already has, every partition the metadata says
    /// `endpoint` leads (alive): a leader whose coordination session expired fences itself until then (DESIGN 5.1),
    /// and when no failover replaced it (it came back within the grace period, or nothing could replace it) nothing
    /// else would tell it.
    pub(super) async fn confirm_fenced_leaders(&self, endpoint: &str) {
        self.confirm_fenced(endpoint, None).await;
    }

    /// [`Self::confirm_fenced_leaders`] for one partition (`name`, `pid`) when `only` names one: a recovery that
    /// marked a returning leader alive again (its RecoverTable decided the replica is current) confirms it at
    /// once, instead of leaving it refusing writes until the next reconciliation pass finds it fenced (fuzzer
    /// seed 798768: single-replica partitions 4 s without service after their mark).
    pub(super) async fn confirm_fenced(&self, endpoint: &str, only: Option<(&str, u32)>) {
        let led: Vec<(u32, u32, u64, Vec<String>)> = {
            let state = self.state.lock().expect("ns state");
            state
                .tables
                .iter()
                .filter(|(name, _)| only.is_none_or(|(n, _)| n == name.as_str()))
                .flat_map(|(_, t)| t.table_partition.iter().map(move |p| (t.tid, p)))
                .filter(|(_, p)| only.is_none_or(|(_, pid)| pid == p.pid))
                .filter(|(_, p)| p.partition_meta.iter().any(|m| m.endpoint == endpoint && m.is_leader && m.is_alive))
                .map(|(tid, p)| {
                    let term = p.term_offset.iter().map(|t| t.term).max().unwrap_or(1);
                    let followers =
                        p.partition_meta.iter().filter(|m| !m.is_leader && m.is_alive).map(|m| m.endpoint.clone());
                    (tid, p.pid, term, followers.collect())
                })
                .collect()
        };
        for (tid, pid, term, replicas) in led {
            let status = tpb::GetTableStatusRequest { tid, pid, all: false };
            let fenced = match self.client(endpoint).call(t::GetTableStatus, status).await {
                Ok(r) => r.all_table_status.first().is_some_and(|s| s.fenced && s.term <= term),
                Err(_) => false,
            };
            if !fenced {
                continue;
            }
            let mode = tpb::TableMode::Leader as i32;
            let req = tpb::ChangeRoleRequest { tid, pid, mode, term, replicas };
            match self.client(endpoint).call(t::ChangeRole, req).await {
                Ok(_) => tracing::info!(tid, pid, endpoint, term, "fenced leader confirmed"),
                Err(e) => tracing::warn!(tid, pid, endpoint, error = %e, "cannot confirm the fenced leader"),
            }
        }
    }

    /// Before a replica is loaded back as its partition's leader from its own disk (kReLoadTableOP): no other
    /// replica on a healthy tablet may hold a longer log, and the reloaded leader writes in a new term. A power
    /// loss can cut the leader's unsynced tail after its followers received it; reloaded in the same term, the
    /// leader would then write new entries at offsets those followers hold other entries for, and both would look
    /// like prefixes of one history. A follower on a healthy tablet is asked: the op fails instead, and the longest
    /// log leads through `recoverdata` (or `changeleader` once that replica is alive). One that cannot be asked
    /// (its tablet is down) is caught by the new term: the history records it from the leader's next offset, so a
    /// log holding other entries past that offset no longer matches it and is replaced when it is re-added.
    async fn prepare_reload(&self, op: &QueuedOp, endpoint: &str) -> Result<(), String> {
        let (tid, part) = self.partition(&op.info.name, op.info.pid)?;
        let pid = op.info.pid;
        let log_offset = |ep: String| async move {
            let req = tpb::TablePidRequest { tid, pid, task_info: None };
            self.client(&ep).call(t::GetLogOffset, req).await
        };
        let own = log_offset(endpoint.to_string()).await.map_err(|e| format!("cannot read {endpoint}'s log: {e}"))?;
        if own.has_table {
            // Loaded meanwhile (recoverdata, an operator): the load task finds it so, and it keeps the term it has.
            tracing::info!(name = %op.info.name, pid, endpoint, "the replica to reload is loaded already");
            return Ok(());
        }
        let own = own.offset;
        for m in part.partition_meta.iter().filter(|m| m.endpoint != endpoint && self.is_healthy(&m.endpoint)) {
            if let Ok(theirs) = log_offset(m.endpoint.clone()).await.map(|r| r.offset)
                && theirs > own
            {
                return Err(format!(
                    "{} holds a longer log ({theirs}) than {endpoint} ({own}): the leader lost entries its follower \
                     has, so it is not reloaded as leader; run recoverdata (the longest log leads)",
                    m.endpoint
                ));
            }
        }
        if self.config.planted.reload_in_the_same_term {
            tracing::warn!("planted bug: the reloaded leader keeps its old term");
            return Ok(());
        }
        let coord = self.require_active().map_err(|s| s.to_string())?;
        let meta = MetaStore { coord: coord.as_ref(), layout: &self.layout };
        let term = meta.counter(&self.layout.term()).await.map_err(|e| e.to_string())? + 1;
        meta.set_term(term).await.map_err(|e| format!("cannot persist the term: {e}"))?;
        self.edit_partition(&op.info.name, pid, move |p| {
            if p.term_offset.iter().any(|t| t.term >= term) {
                return Ok(false);
            }
            p.term_offset.push(pb::TermPair { term, offset: own + 1 });
            Ok(true)
        })
        .await?;
        tracing::info!(name = %op.info.name, pid, endpoint, term, offset = own, "reloaded leader takes a new term");
        Ok(())
    }

    /// Sends an RPC task to its tablet and, for the tasks the tablet finishes in the background (LoadTable,
    /// SendSnapshot, MakeSnapshot), polls it until it reports the outcome (reference 4.3). A resumed op first asks
    /// the tablet whether it already has the task; if not, the task is sent again. Answers that mean "already
    /// so" (a replica already added or already removed, a table already dropped) count as done, which makes every
    /// RPC task safe to send twice.
    async fn run_rpc_task(&self, op: &QueuedOp, task: &Task) -> Result<(), String> {
        if let Task::DelReplica { endpoint, .. } = task
            && op.info.op_type == OpType::RecoverTable as u32
        {
            // The op was queued for a dead replica; another op (an earlier recovertable, the periodic pass) may
            // have re-added it since. Removing its replicator now would leave it marked alive and fed by nobody,
            // and the kRecoverTable that follows would find it alive and do nothing.
            let (_, part) = self.partition(&op.info.name, op.info.pid)?;
            if part.partition_meta.iter().any(|m| m.endpoint == *endpoint && m.is_alive) {
                tracing::info!(op_id = op.info.op_id, endpoint = %endpoint, "replica alive again; its replicator stays");
                return Ok(());
            }
        }
        if let Task::LoadTable { endpoint, leader: true } = task
            && op.info.op_type == OpType::ReLoadTable as u32
            && !op.resumed
        {
            self.prepare_reload(op, endpoint).await?;
        }
        let (ep, task_type) = task.rpc().expect("an RPC task");
        let ep = ep.to_string();
        let tid = self.tid_of(&op.info.name)?;
        let pid = op.info.pid;
        let task_info = self.task_info(op, task_type, &ep, tid);
        if op.resumed
            && let Ok(Some(status)) = self.tablet_task_status(&ep, &task_info).await
        {
            tracing::info!(op_id = op.info.op_id, task = %task, status = ?status, "resumed task found on its tablet");
            return self.await_tablet_task(&ep, &task_info, op.info.op_id).await;
        }
        if !self.is_healthy(&ep) {
            return Err(format!("tablet {ep} is not healthy"));
        }
        let client = self.client(&ep);
        let ti = Some(task_info.clone());
        let sent: Result<(), RpcError> = match task {
            Task::MakeSnapshot { end_offset, .. } => client
                .call(t::MakeSnapshot, tpb::MakeSnapshotRequest { tid, pid, offset: *end_offset, task_info: ti })
                .await
                .map(drop),
            Task::PauseSnapshot { .. } => {
                client.call(t::PauseSnapshot, tpb::TablePidRequest { tid, pid, task_info: ti }).await.map(drop)
            }
            Task::RecoverSnapshot { .. } => {
                client.call(t::RecoverSnapshot, tpb::TablePidRequest { tid, pid, task_info: ti }).await.map(drop)
            }
            Task::SendSnapshot { to, .. } => client
                .call(t::SendSnapshot, tpb::SendSnapshotRequest { tid, pid, endpoint: to.clone(), task_info: ti })
                .await
                .map(drop),
            Task::LoadTable { leader, .. } => {
                let meta = self.load_meta(&op.info.name, pid, *leader)?;
                client.call(t::LoadTable, tpb::LoadTableRequest { meta: Some(meta), task_info: ti }).await.map(drop)
            }
            Task::AddReplica { endpoint, .. } => client
                .call(t::AddReplica, tpb::ReplicaRequest { tid, pid, endpoint: endpoint.clone(), task_info: ti })
                .await
                .map(drop),
            Task::DelReplica { endpoint, .. } => client
                .call(t::DelReplica, tpb::ReplicaRequest { tid, pid, endpoint: endpoint.clone(), task_info: ti })
                .await
                .map(drop),
            Task::DropTable { .. } => {
                client.call(t::DropTable, tpb::TablePidRequest { tid, pid, task_info: ti }).await.map(drop)
            }
            _ => unreachable!("not an RPC task"),
        };
        let background = matches!(task, Task::MakeSnapshot { .. } | Task::SendSnapshot { .. } | Task::LoadTable { .. });
        match sent {
            Ok(()) if background => self.await_tablet_task(&ep, &task_info, op.info.op_id).await,
            Ok(()) => Ok(()),
            Err(RpcError::Status(s)) if already_so(task, &s) => {
                tracing::info!(op_id = op.info.op_id, task = %task, answer = %s, "already so; task done");
                Ok(())
            }
            Err(e) if e.outcome_unknown() => {
                tracing::info!(op_id = op.info.op_id, task = %task, error = %e, "outcome unknown; asking the tablet");
                self.await_tablet_task(&ep, &task_info, op.info.op_id).await
            }
            Err(e) => Err(format!("{task}: {e}")),
        }
    }

    /// The status the tablet reports for a task (`None`: it answered and does not know it), or the error of a
    /// poll it did not answer.
    async fn tablet_task_status(&self, ep: &str, task: &tpb::TaskInfo) -> Result<Option<TaskStatus>, RpcError> {
        let resp = self.client(ep).call(t::GetTaskStatus, tpb::GetTaskStatusRequest {}).await?;
        Ok(resp
            .tasks
            .iter()
            .find(|r| r.op_id == task.op_id && r.task_type == task.task_type && r.tid == task.tid && r.pid == task.pid)
            .map(|r| r.status()))
    }

    /// Polls a tablet every `get_task_status_interval` until it reports the task done or failed. Fails when the
    /// tablet has been offline for `tablet_heartbeat_timeout`, when it answers without knowing the task for
    /// [`UNKNOWN_TASK_POLLS`] polls, when it answers no poll for [`TASK_POLL_SILENCE_LIMIT`], or when the op is
    /// canceled. A poll it does not answer says nothing about the task: counted as "does not know it", a cut of
    /// half a second failed an op whose request was still in the stalled stream, and landed later (seed 187367).
    async fn await_tablet_task(&self, ep: &str, task: &tpb::TaskInfo, op_id: u64) -> Result<(), String> {
        let mut unknown = 0u32;
        let mut silent_since: Option<Instant> = None;
        loop {
            if self.op_snapshot(op_id).is_none_or(|o| o.status() == TaskStatus::Canceled) {
                return Err("canceled".into());
            }
            if let Some(since) = self.offline_since(ep)
                && since.elapsed() >= self.config.tablet_heartbeat_timeout
            {
                return Err(format!("tablet {ep} is offline"));
            }
            let polled = self.tablet_task_status(ep, task).await;
            if polled.is_ok() {
                silent_since = None;
            }
            match polled {
                Ok(Some(TaskStatus::Done)) => return Ok(()),
                Ok(Some(TaskStatus::Failed)) => return Err(format!("tablet {ep} reports the task failed")),
                Ok(Some(TaskStatus::Canceled)) => return Err(format!("tablet {ep} reports the task canceled")),
                Ok(Some(_)) => unknown = 0,
                Ok(None) => {
                    unknown += 1;
                    if unknown > UNKNOWN_TASK_POLLS {
                        return Err(format!("tablet {ep} does not know the task"));
                    }
                }
                Err(e) => {
                    let since = *silent_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= TASK_POLL_SILENCE_LIMIT {
                        return Err(format!(
                            "tablet {ep} answered no task poll for {TASK_POLL_SILENCE_LIMIT:?} (last: {e})"
                        ));
                    }
                }
            }
            tokio::time::sleep(self.config.get_task_status_interval).await;
        }
    }

    /// The meta a LoadTable task sends: the table's schema, the role, and the partition's newest term.
    fn load_meta(&self, name: &str, pid: u32, leader: bool) -> Result<tpb::TableMeta, String> {
        let state = self.state.lock().expect("ns state");
        let table = state.tables.get(name).ok_or_else(|| format!("table {name} is gone"))?;
        let part = table.table_partition.iter().find(|p| p.pid == pid).ok_or_else(|| format!("pid {pid} is gone"))?;
        let term = part.term_offset.iter().map(|t| t.term).max().unwrap_or(1);
        let mode = if leader { TableMode::Leader } else { TableMode::Follower };
        let replicas = if leader {
            part.partition_meta.iter().filter(|m| !m.is_leader && m.is_alive).map(|m| m.endpoint.clone()).collect()
        } else {
            vec![]
        };
        Ok(Nameserver::tablet_meta(table, pid, mode, term, replicas))
    }

    // ---- helpers ---------------------------------------------------------------------------------------------

    fn partition(&self, name: &str, pid: u32) -> Result<(u32, pb::TablePartition), String> {
        let state = self.state.lock().expect("ns state");
        let table = state.tables.get(name).ok_or_else(|| format!("table {name} is gone"))?;
        let part = table.table_partition.iter().find(|p| p.pid == pid).ok_or_else(|| format!("pid {pid} is gone"))?;
        Ok((table.tid, part.clone()))
    }

    fn change_leader_data(op: &QueuedOp) -> Result<pb::ChangeLeaderData, String> {
        match op.info.data.as_ref().and_then(|d| d.kind.as_ref()) {
            Some(op_data::Kind::ChangeLeader(d)) => Ok(d.clone()),
            _ => Err("no change-leader data".into()),
        }
    }

    /// The task record a request of `op` to `endpoint` carries: the op, the task and this nameserver's epoch.
    fn task_info(&self, op: &QueuedOp, task_type: tpb::TaskType, endpoint: &str, tid: u32) -> tpb::TaskInfo {
        tpb::TaskInfo {
            op_id: op.info.op_id,
            op_type: op.info.op_type,
            task_type: task_type as i32,
            status: TaskStatus::Doing as i32,
            endpoint: endpoint.to_string(),
            tid,
            pid: op.info.pid,
            ns_epoch: self.epoch(),
        }
    }

    // ---- leader change --------------------------------------------------------------------------------------

    /// The fencing probe of one follower: an empty AppendEntries in `fence_term`, answered with its log offset.
    ///
    /// A replica that answers "table is leader" leads on its tablet while the metadata counts no alive leader
    /// there: a follower the ChangeRole of an earlier leader change reached after that op had failed on the call's
    /// timeout (the fuzzer found such a partition leaderless for good, every later probe refused, seed 221665), or
    /// the leader marked dead while its tablet seemed gone. The metadata decides: it is demoted to follower in the
    /// fence term and probed again. No client routes writes to a replica the metadata does not count as an alive
    /// leader, and its log counts in the choice like any candidate's.
    async fn fencing_probe(&self, tid: u32, pid: u32, ep: &str, fence_term: u64) -> Result<u64, RpcError> {
        let probe = tpb::AppendEntriesRequest { tid, pid, term: fence_term, ..Default::default() };
        let client = self.client(ep);
        match client.call_timeout(t::AppendEntries, probe.clone(), FENCING_PROBE_TIMEOUT).await {
            Err(RpcError::Status(s)) if Code::TableIsLeader.is(&s) => {
                tracing::warn!(endpoint = %ep, tid, pid, "a replica leads on its own: demoted before the probe");
                let demote = tpb::ChangeRoleRequest {
                    tid,
                    pid,
                    mode: TableMode::Follower as i32,
                    term: fence_term,
                    replicas: vec![],
                };
                client.call_timeout(t::ChangeRole, demote, FENCING_PROBE_TIMEOUT).await?;
                client.call_timeout(t::AppendEntries, probe, FENCING_PROBE_TIMEOUT).await.map(|r| r.log_offset)
            }
            other => other.map(|r| r.log_offset),
        }
    }

    /// kSelectLeader (reference 5.3, DESIGN 5.2): new global term, fencing probes of the alive followers, choice.
    async fn select_leader_task(&self, op: &QueuedOp) -> Result<(), String> {
        let coord = self.require_active().map_err(|s| s.to_string())?;
        let mut data = Self::change_leader_data(op)?;
        let (tid, part) = self.partition(&op.info.name, op.info.pid)?;
        let auto_failover = self.auto_failover();
        let named = (!data.candidate_leader.is_empty()).then_some(data.candidate_leader.clone());
        super::decide::precheck_select_leader(&part.partition_meta, named.as_deref(), auto_failover)
            .map_err(|e| e.to_string())?;
        let meta = MetaStore { coord: coord.as_ref(), layout: &self.layout };
        let global = {
            let _turn = self.counter_lock.lock().await;
            meta.take_change_leader_terms().await.map_err(|e| format!("cannot take the new terms: {e}"))?
        };
        let terms = super::decide::ChangeLeaderTerms::after(global);
        // Every follower at once, each with a short deadline: an unreachable one costs the selection one
        // FENCING_PROBE_TIMEOUT, not one request deadline per follower in turn.
        let pid = op.info.pid;
        let asks = followers_to_probe(&part.partition_meta, named.as_deref()).into_iter().map(|ep| async move {
            if !self.is_healthy(&ep) {
                return (ep, Probe::Unreachable);
            }
            let asked_at = Instant::now();
            let answer = self.fencing_probe(tid, pid, &ep, terms.fence_term).await;
            self.record_reach(&ep, asked_at, !matches!(&answer, Err(e) if e.status().is_none()));
            match answer {
                Ok(offset) => (ep, Probe::Offset(offset)),
                Err(e) => {
                    tracing::warn!(endpoint = %ep, error = %e, "follower did not answer the fencing probe");
                    (ep, Probe::Unreachable)
                }
            }
        });
        let probes: BTreeMap<String, Probe> = futures::future::join_all(asks).await.into_iter().collect();
        let mut candidate = (!data.candidate_leader.is_empty()).then_some(data.candidate_leader.as_str());
        if self.config.planted.leader_choice_shortest_log && candidate.is_none() {
            // Planted (tests only): the follower with the shortest log, as if it were named.
            candidate = probes
                .iter()
                .filter_map(|(ep, p)| match p {
                    Probe::Offset(o) => Some((*o, ep.as_str())),
                    _ => None,
                })
                .min()
                .map(|(_, ep)| ep);
        }
        let choice = select_leader(&part.partition_meta, &probes, candidate, global, auto_failover)
            .map_err(|e| e.to_string())?;
        // A manual change with the old leader still alive: demote it now, so it refuses writes from clients that
        // have not seen the change yet instead of acknowledging writes the fenced followers will never take
        // (they would be lost when it is re-added). Best effort: the metadata change that follows stops it anyway.
        if let Some(old) = alive_leader(&part)
            && old != choice.leader
            && self.is_healthy(old)
        {
            let req = tpb::ChangeRoleRequest {
                tid,
                pid: op.info.pid,
                mode: TableMode::Follower as i32,
                term: terms.fence_term,
                replicas: vec![],
            };
            if let Err(e) = self.client(old).call_timeout(t::ChangeRole, req, FENCING_PROBE_TIMEOUT).await {
                tracing::warn!(endpoint = %old, error = %e, "cannot demote the old leader; it stops at the metadata change");
            }
        }
        tracing::info!(
            name = %op.info.name,
            pid = op.info.pid,
            leader = %choice.leader,
            offset = choice.leader_offset,
            term = choice.terms.leader_term,
            ahead = choice.ahead.len(),
            unreachable = choice.unreachable.len(),
            "leader selected"
        );
        data.leader = choice.leader;
        data.leader_offset = choice.leader_offset;
        data.term = choice.terms.leader_term;
        data.followers = choice.followers;
        data.ahead = choice.ahead.into_iter().map(|a| a.endpoint).collect();
        data.unreachable = choice.unreachable;
        data.selected = true;
        let mut info = op.info.clone();
        info.data = ops::data(op_data::Kind::ChangeLeader(data));
        if !self.persist_op(&info).await {
            return Err("cannot persist the selected leader".into());
        }
        if let Some(o) = self.state.lock().expect("ns state").ops.get_mut(op.info.op_id) {
            o.info.data = info.data;
        }
        Ok(())
    }

    /// kChangeLeader: the chosen follower becomes leader in the new term, replicating to the remaining followers.
    /// Running it twice is harmless: the tablet accepts the same term again.
    async fn change_leader_task(&self, op: &QueuedOp) -> Result<(), String> {
        let data = Self::change_leader_data(op)?;
        if !data.selected {
            return Err("no leader was selected".into());
        }
        if !self.is_healthy(&data.leader) {
            return Err(format!("the new leader's tablet {} is not healthy", data.leader));
        }
        let tid = self.tid_of(&op.info.name)?;
        let req = tpb::ChangeRoleRequest {
            tid,
            pid: op.info.pid,
            mode: TableMode::Leader as i32,
            term: data.term,
            replicas: data.followers.clone(),
        };
        self.client(&data.leader).call(t::ChangeRole, req).await.map_err(|e| format!("change role: {e}"))?;
        Ok(())
    }

    /// kUpdateLeaderInfo: the metadata follows the change. The old leader stays `is_leader` but not alive; the
    /// followers that were ahead or did not answer are marked not alive; the term history gets
    /// `{term, leader_offset + 1}`. Followers that were ahead are then re-synced through recover-table ops
    /// (DESIGN 5.2).
    async fn update_leader_info_task(&self, op: &QueuedOp) -> Result<(), String> {
        let data = Self::change_leader_data(op)?;
        let d = data.clone();
        self.edit_partition(&op.info.name, op.info.pid, move |p| {
            for m in &mut p.partition_meta {
                if m.endpoint == d.leader {
                    m.is_leader = true;
                    m.is_alive = true;
                } else if (m.is_leader && m.is_alive)
                    || d.ahead.contains(&m.endpoint)
                    || d.unreachable.contains(&m.endpoint)
                {
                    m.is_alive = false;
                }
            }
            let pair = pb::TermPair { term: d.term, offset: d.leader_offset + 1 };
            if !p.term_offset.iter().any(|t| t.term == d.term) {
                p.term_offset.push(pair);
            }
            Ok(true)
        })
        .await?;
        for ep in &data.ahead {
            if self.is_healthy(ep) && !self.state.lock().expect("ns state").ops.has_child(op.info.op_id) {
                let new = NewOp {
                    op_type: OpType::RecoverTable,
                    name: op.info.name.clone(),
                    pid: op.info.pid,
                    data: op_data::Kind::RecoverTable(pb::RecoverTableData {
                        endpoint: ep.clone(),
                        offset_delta: self.config.check_binlog_sync_progress_delta,
                        is_leader: false,
                        concurrency: self.config.name_server_task_concurrency,
                    }),
                    concurrency: self.config.name_server_task_concurrency,
                    parent: Some((op.info.op_id, op.info.vec_idx)),
                };
                if let Err(e) = self.create_op(new).await {
                    tracing::warn!(endpoint = %ep, error = %e, "cannot re-sync a follower that was ahead; recover it by hand");
                }
            }
        }
        Ok(())
    }

    // ---- recovery -------------------------------------------------------------------------------------------

    /// kRecoverTable (reference 5.6): decides how the replica comes back and creates that op as a child.
    async fn recover_table_task(
        &self,
        op: &QueuedOp,
        endpoint: &str,
        offset_delta: u64,
        concurrency: u32,
    ) -> Result<(), String> {
        if self.state.lock().expect("ns state").ops.has_child(op.info.op_id) {
            return Ok(());
        }
        let (tid, part) = self.partition(&op.info.name, op.info.pid)?;
        let pid = op.info.pid;
        let target = scan_recover_target(&part, endpoint, |e| self.is_healthy(e)).map_err(|e| e.to_string())?;
        let RecoverTarget::Recover { endpoint, leader, single_replica } = target else {
            tracing::info!(name = %op.info.name, pid, endpoint, "replica is alive; nothing to recover");
            return Ok(());
        };
        let req = tpb::TablePidRequest { tid, pid, task_info: None };
        let replica = self
            .client(&endpoint)
            .call(t::GetTermPair, req.clone())
            .await
            .map_err(|e| format!("get term pair: {e}"))?;
        let leader_log = match &leader {
            Some(l) if !single_replica => {
                let status = self
                    .client(l)
                    .call(t::GetTableStatus, tpb::GetTableStatusRequest { tid, pid, all: false })
                    .await
                    .map_err(|e| format!("leader status: {e}"))?;
                let status = status.all_table_status.first().ok_or("leader status: the leader lacks the partition")?;
                Some(LeaderLog { snapshot_offset: status.snapshot_offset, offset: status.offset })
            }
            _ => None,
        };
        let decision =
            decide_recover_table(single_replica, &replica, &part.term_offset, leader_log).map_err(|e| e.to_string())?;
        tracing::info!(
            name = %op.info.name,
            pid,
            endpoint = %endpoint,
            has_table = replica.has_table,
            term = replica.term,
            offset = replica.offset,
            decision = ?decision,
            "recover table decided"
        );
        let parent = Some((op.info.op_id, op.info.vec_idx));
        let new = match decision {
            RecoverDecision::UpdatePartitionStatus => NewOp {
                op_type: OpType::UpdatePartitionStatus,
                name: op.info.name.clone(),
                pid,
                data: op_data::Kind::EndpointStatus(pb::EndpointStatusData {
                    endpoint: endpoint.clone(),
                    is_leader: true,
                    is_alive: true,
                }),
                concurrency,
                parent,
            },
            RecoverDecision::ReLoadTable => NewOp {
                op_type: OpType::ReLoadTable,
                name: op.info.name.clone(),
                pid,
                data: op_data::Kind::Endpoint(endpoint.clone()),
                concurrency,
                parent,
            },
            RecoverDecision::ReAdd(plan) => {
                if plan.change_role_to_follower {
                    let term = part.term_offset.iter().map(|t| t.term).max().unwrap_or(1);
                    let req =
                        tpb::ChangeRoleRequest { tid, pid, mode: TableMode::Follower as i32, term, replicas: vec![] };
                    self.client(&endpoint).call(t::ChangeRole, req).await.map_err(|e| format!("change role: {e}"))?;
                }
                if plan.delete_binlog {
                    // With this nameserver's epoch: a copy that arrives late, after a newer nameserver took over,
                    // is refused by the tablet instead of deleting a binlog a later re-add kept.
                    let info = self.task_info(op, tpb::TaskType::Unspecified, &endpoint, tid);
                    let req = tpb::TablePidRequest { task_info: Some(info), ..req };
                    self.client(&endpoint)
                        .call(t::DeleteBinlog, req)
                        .await
                        .map_err(|e| format!("delete binlog: {e}"))?;
                }
                let op_type = OpType::from_u32(plan.op.op_type()).expect("a re-add op type");
                NewOp {
                    op_type,
                    name: op.info.name.clone(),
                    pid,
                    data: op_data::Kind::RecoverTable(pb::RecoverTableData {
                        endpoint: endpoint.clone(),
                        offset_delta,
                        is_leader: false,
                        concurrency,
                    }),
                    concurrency,
                    parent,
                }
            }
        };
        self.create_op(new).await.map(drop).map_err(|e| e.to_string())
    }

    /// kCheckBinlogSyncProgress (reference 4.4): done when the follower is within `offset_delta` of the leader,
    /// asking both tablets directly (fresher than the cached status). A follower that does not hold the partition
    /// counts as done, as in OpenMLDB.
    async fn check_sync_task(&self, op: &QueuedOp, endpoint: &str, offset_delta: u64) -> Result<(), String> {
        loop {
            let (tid, part) = self.partition(&op.info.name, op.info.pid)?;
            if part.partition_meta.len() <= 1 {
                return Ok(());
            }
            let leader = alive_leader(&part).ok_or("the partition has no alive leader")?.to_string();
            let offset_of = |ep: String| async move {
                let req = tpb::GetTableStatusRequest { tid, pid: op.info.pid, all: false };
                match self.client(&ep).call(t::GetTableStatus, req).await {
                    Ok(r) => Ok(r.all_table_status.first().map(|s| s.offset)),
                    Err(RpcError::Status(s)) if Code::TableIsNotExist.is(&s) => Ok(None),
                    Err(e) => Err(format!("status of {ep}: {e}")),
                }
            };
            let leader_offset = offset_of(leader).await?;
            let follower_offset = offset_of(endpoint.to_string()).await?;
            match (leader_offset, follower_offset) {
                (Some(l), Some(f)) if l > f + offset_delta => {}
                _ => return Ok(()),
            }
            if self.op_snapshot(op.info.op_id).is_none_or(|o| o.status() == TaskStatus::Canceled) {
                return Err("canceled".into());
            }
            tokio::time::sleep(self.config.get_task_status_interval).await;
        }
    }
}

/// Tablet answers that mean the task's effect is already there.
fn already_so(task: &Task, status: &Status) -> bool {
    match task {
        Task::AddReplica { .. } => Code::ReplicaEndpointAlreadyExists.is(status),
        Task::DelReplica { .. } => Code::ReplicatorIsNotExist.is(status),
        Task::DropTable { .. } => Code::TableIsNotExist.is(status),
        _ => false,
    }
}
