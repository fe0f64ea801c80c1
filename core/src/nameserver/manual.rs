//! The manual ns_client commands (reference 5.7): their checks, and the ops they create. The failover ones are
//! refused while auto_failover is on, as in OpenMLDB.
//!
//! It calls [`super::failover`] (offlineendpoint, recoverendpoint and the leader change share its algorithms),
//! [`super::opstore`] (the ops), [`super::state`] and the bottom rooms; never the engine or the server.

use std::collections::BTreeMap;

use super::codes::Code;
use super::decide::followers_to_probe;
use super::ops::{OpType, Task, alive_leader, status_name};
use super::state::{Nameserver, NewOp, coord_err, epoch_ms};
use crate::proto::nameserver as pb;
use crate::proto::nameserver::op_data;
use crate::proto::tablet::TaskStatus;
use crate::rpc::Status;

/// addreplica and delreplica run in one queue (reference 4.2: concurrency 1).
const REPLICA_CHANGE_CONCURRENCY: u32 = 1;

impl Nameserver {
    fn refuse_if_auto(&self) -> Result<(), Status> {
        if self.auto_failover() { Err(Code::AutoFailoverIsEnabled.status()) } else { Ok(()) }
    }

    fn concurrency(&self, asked: u32) -> Result<u32, Status> {
        match asked {
            0 => Ok(self.config.name_server_task_concurrency),
            c if c <= self.config.name_server_task_max_concurrency => Ok(c),
            c => Err(Code::InvalidParameter.with(format!(
                "concurrency {c} is above name_server_task_max_concurrency {}",
                self.config.name_server_task_max_concurrency
            ))),
        }
    }

    fn table(&self, name: &str) -> Result<pb::TableInfo, Status> {
        self.state.lock().expect("ns state").tables.get(name).cloned().ok_or_else(|| Code::TableIsNotExist.with(name))
    }

    fn table_partition(&self, name: &str, pid: u32) -> Result<pb::TablePartition, Status> {
        self.table(name)?
            .table_partition
            .into_iter()
            .find(|p| p.pid == pid)
            .ok_or_else(|| Code::PidIsNotExist.with(pid))
    }

    fn known_endpoint(&self, endpoint: &str) -> Result<(), Status> {
        if self.state.lock().expect("ns state").tablets.contains_key(endpoint) {
            Ok(())
        } else {
            Err(Code::EndpointIsNotExist.with(endpoint))
        }
    }

    fn healthy_endpoint(&self, endpoint: &str) -> Result<(), Status> {
        self.known_endpoint(endpoint)?;
        if self.is_healthy(endpoint) { Ok(()) } else { Err(Code::TabletIsNotHealthy.with(endpoint)) }
    }

    pub(super) async fn offline_endpoint(
        &self,
        req: pb::OfflineEndpointRequest,
    ) -> Result<pb::GeneralResponse, Status> {
        self.require_active()?;
        self.refuse_if_auto()?;
        self.known_endpoint(&req.endpoint)?;
        let concurrency = self.concurrency(req.concurrency)?;
        self.offline_endpoint_internal(&req.endpoint, concurrency).await;
        Ok(pb::GeneralResponse {})
    }

    pub(super) async fn recover_endpoint(
        &self,
        req: pb::RecoverEndpointRequest,
    ) -> Result<pb::GeneralResponse, Status> {
        self.require_active()?;
        self.refuse_if_auto()?;
        self.healthy_endpoint(&req.endpoint)?;
        let concurrency = self.concurrency(req.concurrency)?;
        self.recover_endpoint_internal(&req.endpoint, req.need_restore, false, concurrency).await;
        Ok(pb::GeneralResponse {})
    }

    pub(super) async fn change_leader(&self, req: pb::ChangeLeaderRequest) -> Result<pb::GeneralResponse, Status> {
        self.require_active()?;
        self.refuse_if_auto()?;
        let p = self.table_partition(&req.name, req.pid)?;
        if p.partition_meta.len() <= 1 {
            return Err(Code::NoFollower.with(format!("{} pid {}", req.name, req.pid)));
        }
        let candidate = match req.candidate_leader.as_str() {
            "" => {
                if let Some(l) = alive_leader(&p) {
                    return Err(Code::LeaderIsAlive.with(l));
                }
                ""
            }
            "auto" => "",
            c => c,
        };
        // The alive followers, and a replica marked leader and dead where kSelectLeader asks it too (the only one
        // so marked, or the named candidate: recoverdata names the longest log, whatever mark it carries).
        let named = (!candidate.is_empty()).then_some(candidate);
        let candidates = followers_to_probe(&p.partition_meta, named);
        if candidates.is_empty() {
            return Err(Code::NoAliveFollower.status());
        }
        let followers: Vec<&str> = candidates.iter().map(String::as_str).filter(|e| self.is_healthy(e)).collect();
        if followers.is_empty() {
            return Err(Code::NoAliveFollower.with("no alive follower on a healthy tablet"));
        }
        if !candidate.is_empty() && !followers.contains(&candidate) {
            return Err(Code::CreateOpFailed.with(format!("{candidate} is not an alive follower on a healthy tablet")));
        }
        let concurrency = self.config.name_server_task_concurrency;
        self.create_change_leader_op(&req.name, req.pid, candidate, false, concurrency).await?;
        Ok(pb::GeneralResponse {})
    }

    pub(super) async fn recover_table(&self, req: pb::RecoverTableRequest) -> Result<pb::GeneralResponse, Status> {
        self.require_active()?;
        self.refuse_if_auto()?;
        self.healthy_endpoint(&req.endpoint)?;
        let p = self.table_partition(&req.name, req.pid)?;
        let mine =
            p.partition_meta.iter().find(|m| m.endpoint == req.endpoint).ok_or_else(|| {
                Code::PidIsNotExist.with(format!("pid {} does not exist on {}", req.pid, req.endpoint))
            })?;
        if mine.is_alive {
            return Err(Code::PartitionIsAlive.with(format!("{} pid {} on {}", req.name, req.pid, req.endpoint)));
        }
        let concurrency = self.config.name_server_task_concurrency;
        self.create_op(NewOp {
            op_type: OpType::RecoverTable,
            name: req.name.clone(),
            pid: req.pid,
            data: op_data::Kind::RecoverTable(pb::RecoverTableData {
                endpoint: req.endpoint.clone(),
                offset_delta: self.config.check_binlog_sync_progress_delta,
                is_leader: mine.is_leader,
                concurrency,
            }),
            concurrency,
            parent: None,
        })
        .await?;
        Ok(pb::GeneralResponse {})
    }

    /// updatetablealive: a metadata edit only (reference 5.7).
    pub(super) async fn update_table_alive(
        &self,
        req: pb::UpdateTableAliveRequest,
    ) -> Result<pb::GeneralResponse, Status> {
        self.require_active()?;
        self.refuse_if_auto()?;
        self.known_endpoint(&req.endpoint)?;
        let table = self.table(&req.name)?;
        let pids: Vec<u32> = if req.all {
            table.table_partition.iter().map(|p| p.pid).collect()
        } else {
            for pid in &req.pids {
                if !table.table_partition.iter().any(|p| p.pid == *pid) {
                    return Err(Code::PidIsNotExist.with(pid));
                }
            }
            req.pids.clone()
        };
        let mut changed = 0;
        for pid in pids {
            let (ep, alive) = (req.endpoint.clone(), req.is_alive);
            let mut did = false;
            self.edit_partition(&req.name, pid, |p| {
                for m in p.partition_meta.iter_mut().filter(|m| m.endpoint == ep && m.is_alive != alive) {
                    m.is_alive = alive;
                    did = true;
                }
                Ok(did)
            })
            .await
            .map_err(|e| Code::SetZkFailed.with(e))?;
            if did {
                changed += 1;
                tracing::info!(name = %req.name, pid, endpoint = %req.endpoint, is_alive = alive, "replica alive flag set");
            }
        }
        if changed == 0 {
            return Err(Code::NoPidHasUpdate.status());
        }
        Ok(pb::GeneralResponse {})
    }

    pub(super) async fn add_replica(&self, req: pb::ReplicaChangeRequest) -> Result<pb::GeneralResponse, Status> {
        self.require_active()?;
        self.healthy_endpoint(&req.endpoint)?;
        for pid in &req.pids {
            let p = self.table_partition(&req.name, *pid)?;
            if p.partition_meta.iter().any(|m| m.endpoint == req.endpoint) {
                return Err(Code::PidAlreadyExist.with(format!("pid {pid} is already on {}", req.endpoint)));
            }
        }
        self.replica_change_ops(OpType::AddReplica, &req).await
    }

    pub(super) async fn del_replica(&self, req: pb::ReplicaChangeRequest) -> Result<pb::GeneralResponse, Status> {
        self.require_active()?;
        self.known_endpoint(&req.endpoint)?;
        for pid in &req.pids {
            let p = self.table_partition(&req.name, *pid)?;
            let mine = p
                .partition_meta
                .iter()
                .find(|m| m.endpoint == req.endpoint)
                .ok_or_else(|| Code::PidIsNotExist.with(format!("pid {pid} is not on {}", req.endpoint)))?;
            if mine.is_leader {
                return Err(Code::InvalidParameter.with(format!("cannot delete the leader of pid {pid}")));
            }
        }
        self.replica_change_ops(OpType::DelReplica, &req).await
    }

    /// One addreplica or delreplica op per pid, all in one queue (reference 4.2: concurrency 1).
    async fn replica_change_ops(
        &self,
        op_type: OpType,
        req: &pb::ReplicaChangeRequest,
    ) -> Result<pb::GeneralResponse, Status> {
        for pid in &req.pids {
            self.create_op(NewOp {
                op_type,
                name: req.name.clone(),
                pid: *pid,
                data: op_data::Kind::Endpoint(req.endpoint.clone()),
                concurrency: REPLICA_CHANGE_CONCURRENCY,
                parent: None,
            })
            .await?;
        }
        Ok(pb::GeneralResponse {})
    }

    pub(super) async fn migrate(&self, req: pb::MigrateRequest) -> Result<pb::GeneralResponse, Status> {
        self.require_active()?;
        self.refuse_if_auto()?;
        self.healthy_endpoint(&req.src_endpoint).map_err(|_| Code::SrcEndpointIsNotExistOrNotHealthy.status())?;
        self.healthy_endpoint(&req.des_endpoint).map_err(|_| Code::DesEndpointIsNotExistOrNotHealthy.status())?;
        for pid in &req.pids {
            let p = self.table_partition(&req.name, *pid)?;
            let src = p
                .partition_meta
                .iter()
                .find(|m| m.endpoint == req.src_endpoint)
                .ok_or_else(|| Code::PidIsNotExist.with(format!("pid {pid} is not on {}", req.src_endpoint)))?;
            if src.is_leader {
                return Err(Code::MigrateFailed.with(format!("cannot migrate the leader of pid {pid}")));
            }
            if p.partition_meta.iter().any(|m| m.endpoint == req.des_endpoint) {
                return Err(Code::PidAlreadyExist.with(format!("pid {pid} is already on {}", req.des_endpoint)));
            }
            let leader =
                alive_leader(&p).ok_or_else(|| Code::MigrateFailed.with(format!("pid {pid} has no leader")))?;
            if !self.is_healthy(leader) {
                return Err(Code::MigrateFailed.with(format!("the leader {leader} of pid {pid} is not healthy")));
            }
        }
        for pid in &req.pids {
            self.create_op(NewOp {
                op_type: OpType::Migrate,
                name: req.name.clone(),
                pid: *pid,
                data: op_data::Kind::Migrate(pb::MigrateData {
                    src: req.src_endpoint.clone(),
                    des: req.des_endpoint.clone(),
                }),
                concurrency: self.config.name_server_task_concurrency,
                parent: None,
            })
            .await?;
        }
        Ok(pb::GeneralResponse {})
    }

    pub(super) async fn make_snapshot(&self, req: pb::MakeSnapshotNsRequest) -> Result<pb::GeneralResponse, Status> {
        self.require_active()?;
        self.table_partition(&req.name, req.pid)?;
        self.create_op(NewOp {
            op_type: OpType::MakeSnapshot,
            name: req.name.clone(),
            pid: req.pid,
            data: op_data::Kind::SnapshotEndOffset(req.end_offset),
            concurrency: self.config.name_server_task_concurrency,
            parent: None,
        })
        .await?;
        Ok(pb::GeneralResponse {})
    }

    pub(super) async fn cancel_op(&self, req: pb::CancelOpRequest) -> Result<pb::GeneralResponse, Status> {
        self.require_active()?;
        self.refuse_if_auto()?;
        self.state
            .lock()
            .expect("ns state")
            .ops
            .cancel(req.op_id)
            .map_err(|_| Code::OpStatusIsNotKdoingOrKinited.with(format!("op {}", req.op_id)))?;
        tracing::info!(op_id = req.op_id, "op canceled");
        self.op_signal.bump();
        Ok(pb::GeneralResponse {})
    }

    pub(super) async fn delete_op(&self, req: pb::DeleteOpRequest) -> Result<pb::GeneralResponse, Status> {
        let coord = self.require_active()?;
        let deleted = {
            let mut state = self.state.lock().expect("ns state");
            match req.status.as_str() {
                "" => state.ops.delete(req.op_id),
                "done" => state.ops.delete_status(TaskStatus::Done),
                "failed" => state.ops.delete_status(TaskStatus::Failed),
                "canceled" => state.ops.delete_status(TaskStatus::Canceled),
                other => Err(format!("unknown status {other:?}: done, failed or canceled")),
            }
        }
        .map_err(|e| Code::InvalidParameter.with(e))?;
        for op_id in deleted.with_node {
            match coord.delete(&self.layout.op_node(op_id), None).await {
                Ok(()) | Err(crate::coord::CoordError::NoNode(_)) => {}
                Err(e) => return Err(coord_err(e)),
            }
        }
        tracing::info!(ops = ?deleted.op_ids, "ops deleted");
        Ok(pb::GeneralResponse {})
    }

    /// showopstatus (reference 4.6): the history and the queued ops, by op id, filtered by table and pid.
    pub(super) fn show_op_status(&self, req: pb::ShowOpStatusRequest) -> Result<pb::ShowOpStatusResponse, Status> {
        self.require_active()?;
        let now = epoch_ms();
        let state = self.state.lock().expect("ns state");
        let mut rows = BTreeMap::new();
        let keep =
            |info: &pb::OpInfo| (req.name.is_empty() || info.name == req.name) && (!req.has_pid || info.pid == req.pid);
        let row = |info: &pb::OpInfo, cur_task: Option<&str>| pb::OpStatus {
            op_id: info.op_id,
            op_type: super::ops::OpType::from_u32(info.op_type).map(OpType::name).unwrap_or("kUnknownOP").into(),
            name: info.name.clone(),
            pid: info.pid,
            status: status_name(info.task_status).into(),
            start_time: info.start_time,
            end_time: info.end_time,
            cur_task: cur_task.unwrap_or("-").into(),
            now,
            reason: info.reason.clone(),
        };
        for f in state.ops.finished().filter(|f| keep(&f.info)) {
            rows.insert(f.info.op_id, row(&f.info, f.cur_task));
        }
        for q in state.ops.queued().filter(|q| keep(&q.info)) {
            let started = q.status() != TaskStatus::Inited && q.info.start_time != 0;
            let cur = if started { q.current().map(Task::name) } else { None };
            rows.insert(q.info.op_id, row(&q.info, cur));
        }
        Ok(pb::ShowOpStatusResponse { op_status: rows.into_values().collect() })
    }
}
