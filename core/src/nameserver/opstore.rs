//! The op store (reference 4.2, 4.3 `DeleteTask`, 4.5): creating an op (its id, its tasks, its node) and
//! queueing it, reading and writing an op's record, finishing an op (its node, the history, the tablets' task
//! records), and loading the ops of a previous active nameserver at takeover.
//!
//! The engine, the tasks, failover and the manual commands all create or record ops through it. It calls only
//! [`super::state`] and the bottom rooms ([`super::ops`], [`super::opbook`], [`super::meta`], [`super::decide`]).

use prost::Message;

use super::codes::Code;
use super::decide::queue_index;
use super::opbook::{OpBook, QueuedOp};
use super::ops::{self, OpType, build_tasks};
use super::state::{DELETE_OP_TASK_TIMEOUT, Nameserver, NewOp, coord_err, epoch_ms};
use crate::coord::{CoordError, Coordinator, CreateMode};
use crate::proto::nameserver::OpInfo;
use crate::proto::tablet::{self as tpb, TaskStatus};
use crate::rpc::{RpcClient, Status};
use crate::tablet::rpc as t;

impl Nameserver {
    // ---- creating ops ---------------------------------------------------------------------------------------

    /// Creates an op (reference 4.2 `CreateOPData` + `AddOPData`): allocates its id, builds its tasks against the
    /// current metadata (every RPC task's tablet must be healthy), persists it, and queues it.
    pub(super) async fn create_op(&self, new: NewOp) -> Result<u64, Status> {
        let coord = self.require_active()?;
        let (db, partition) = {
            let state = self.state.lock().expect("ns state");
            let table = state.tables.get(&new.name).ok_or_else(|| Code::TableIsNotExist.with(&new.name))?;
            let partition = table
                .table_partition
                .iter()
                .find(|p| p.pid == new.pid)
                .cloned()
                .ok_or_else(|| Code::PidIsNotExist.with(new.pid))?;
            (table.db.clone(), partition)
        };
        let mut info = OpInfo {
            op_type: new.op_type as u32,
            data: ops::data(new.data),
            task_status: TaskStatus::Inited as u32,
            name: new.name.clone(),
            db,
            pid: new.pid,
            ..Default::default()
        };
        let tasks = build_tasks(&info, &partition).map_err(|e| Code::CreateOpFailed.with(e))?;
        for task in &tasks {
            if let Some((ep, _)) = task.rpc()
                && !self.is_healthy(ep)
            {
                return Err(Code::CreateOpFailed.with(format!("{task}: tablet {ep} is not healthy")));
            }
        }
        info.op_id = self.next_op_id(coord.as_ref()).await.map_err(coord_err)?;
        let queues = self.config.name_server_task_max_concurrency;
        info.vec_idx = match new.parent {
            Some((parent, vec_idx)) => {
                info.parent_id = parent;
                vec_idx
            }
            None => queue_index(new.pid, new.concurrency, queues) as u32,
        };
        coord
            .create(&self.layout.op_node(info.op_id), &info.encode_to_vec(), CreateMode::Persistent)
            .await
            .map_err(coord_err)?;
        tracing::info!(
            op_id = info.op_id,
            op = new.op_type.name(),
            name = %info.name,
            pid = info.pid,
            parent = info.parent_id,
            queue = info.vec_idx,
            tasks = %tasks.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", "),
            "op created"
        );
        let op_id = info.op_id;
        self.state.lock().expect("ns state").ops.add(QueuedOp { info, tasks, resumed: false });
        self.op_signal.bump();
        Ok(op_id)
    }

    /// Reference 4.5: reads every persisted op, rebuilds the unfinished ones against the current metadata, and
    /// queues them again; failed and canceled ones go to the history.
    pub(super) async fn resume_ops(&self, coord: &dyn Coordinator) -> Result<(), CoordError> {
        let mut children = coord.children(&self.layout.op_data()).await?;
        children.sort();
        let mut resumed = Vec::new();
        let mut finished = Vec::new();
        for child in children {
            let path = format!("{}/{child}", self.layout.op_data());
            let data = match coord.get(&path).await {
                Ok((data, _)) => data,
                Err(CoordError::NoNode(_)) => continue,
                Err(e) => return Err(e),
            };
            let info = match OpInfo::decode(data.as_slice()) {
                Ok(info) => info,
                Err(e) => {
                    tracing::error!(path, error = %e, "op does not decode; left in place, not resumed");
                    continue;
                }
            };
            let status = TaskStatus::try_from(info.task_status as i32).unwrap_or(TaskStatus::Inited);
            if matches!(status, TaskStatus::Failed | TaskStatus::Canceled | TaskStatus::Done) {
                finished.push((info, status));
                continue;
            }
            let partition = {
                let state = self.state.lock().expect("ns state");
                state.tables.get(&info.name).and_then(|t| t.table_partition.iter().find(|p| p.pid == info.pid).cloned())
            };
            let built = match partition {
                Some(p) => build_tasks(&info, &p),
                None => Err(format!("table {} pid {} is gone", info.name, info.pid)),
            };
            match built {
                Ok(tasks) => resumed.push(QueuedOp { info, tasks, resumed: true }),
                Err(reason) => {
                    tracing::warn!(op_id = info.op_id, reason, "op cannot be resumed; marked failed");
                    let mut info = info;
                    info.reason = format!("not resumable: {reason}");
                    info.task_status = TaskStatus::Failed as u32;
                    info.end_time = epoch_ms();
                    let _ = coord.set(&path, &info.encode_to_vec(), None).await;
                    finished.push((info, TaskStatus::Failed));
                }
            }
        }
        tracing::info!(resumed = resumed.len(), finished = finished.len(), "ops loaded");
        let mut state = self.state.lock().expect("ns state");
        state.ops = OpBook::new(self.config.name_server_task_max_concurrency as usize, self.config.max_op_num);
        for (info, status) in finished {
            let op_id = info.op_id;
            state.ops.add(QueuedOp { info, tasks: vec![], resumed: true });
            state.ops.finish(op_id, status);
        }
        state.ops.restore(resumed);
        drop(state);
        self.op_signal.bump();
        Ok(())
    }

    // ---- records --------------------------------------------------------------------------------------------

    pub(super) fn op_snapshot(&self, op_id: u64) -> Option<QueuedOp> {
        self.state.lock().expect("ns state").ops.get(op_id).cloned()
    }

    /// Writes an op's record; false if the coordination service refused.
    pub(super) async fn persist_op(&self, info: &OpInfo) -> bool {
        let Ok(coord) = self.require_active() else { return false };
        match coord.set(&self.layout.op_node(info.op_id), &info.encode_to_vec(), None).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(op_id = info.op_id, error = %e, "cannot persist the op");
                false
            }
        }
    }

    // ---- finishing ops --------------------------------------------------------------------------------------

    /// Reference 4.3 `DeleteTask`: a done op's node is deleted, a failed or canceled op's node is kept with its
    /// status; the op joins the history and the tablets forget its tasks.
    pub(super) async fn finish_op(&self, op_id: u64, status: TaskStatus, reason: &str) -> bool {
        let Some(op) = self.op_snapshot(op_id) else { return true };
        let Ok(coord) = self.require_active() else { return false };
        let path = self.layout.op_node(op_id);
        let mut info = op.info.clone();
        info.task_status = status as u32;
        info.end_time = epoch_ms();
        let written = if status == TaskStatus::Done {
            match coord.delete(&path, None).await {
                Ok(()) | Err(CoordError::NoNode(_)) => Ok(()),
                Err(e) => Err(e),
            }
        } else {
            coord.set(&path, &info.encode_to_vec(), None).await.map(|_| ())
        };
        if let Err(e) = written {
            tracing::warn!(op_id, error = %e, "cannot record the end of the op");
            return false;
        }
        let evicted = {
            let mut state = self.state.lock().expect("ns state");
            if let Some(o) = state.ops.get_mut(op_id) {
                o.info.end_time = info.end_time;
            }
            state.ops.finish(op_id, status)
        };
        for old in evicted {
            let _ = coord.delete(&self.layout.op_node(old), None).await;
        }
        tracing::info!(op_id, op = op_name(&info), status = ops::status_name(status as u32), reason, "op finished");
        self.forget_op_tasks(op_id);
        self.op_signal.bump();
        true
    }

    /// Tells every healthy tablet to forget the op's tasks, in the background and all at once: cleanup must not
    /// hold up the queue (a tablet marked healthy that this nameserver cannot reach once cost the next op of the
    /// queue a whole RPC deadline, and its partition five seconds of outage).
    fn forget_op_tasks(&self, op_id: u64) {
        let clients: Vec<RpcClient> = self.healthy_tablets().iter().map(|ep| self.client(ep)).collect();
        tokio::spawn(async move {
            let req = tpb::DeleteOpTaskRequest { op_ids: vec![op_id] };
            let calls = clients.iter().map(|c| c.call_timeout(t::DeleteOpTask, req.clone(), DELETE_OP_TASK_TIMEOUT));
            futures::future::join_all(calls).await;
        });
    }
}

pub(super) fn op_name(info: &OpInfo) -> &'static str {
    OpType::from_u32(info.op_type).map(OpType::name).unwrap_or("kUnknownOP")
}
