//! The ops of the OP/TASK engine and their task lists (reference 4.1 and 4.4): what each op does, in order, as
//! plain data. [`build_tasks`] is pure: the engine calls it when an op is created and again when a new active
//! nameserver resumes it, with the metadata of that moment (so a resumed op targets the current leader).

use std::fmt;

use crate::proto::nameserver::{OpData, OpInfo, TablePartition, op_data};
use crate::proto::tablet::{TaskStatus, TaskType};

/// OpenMLDB's OPType (reference 4.1), with its numbers; the multi-cluster, index and deploy ops are not part of
/// this system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OpType {
    MakeSnapshot = 1,
    AddReplica = 2,
    DelReplica = 3,
    ChangeLeader = 4,
    OfflineReplica = 5,
    ReAddReplica = 6,
    ReAddReplicaNoSend = 7,
    ReAddReplicaWithDrop = 8,
    ReAddReplicaSimplify = 9,
    Migrate = 11,
    ReLoadTable = 12,
    UpdatePartitionStatus = 13,
    RecoverTable = 14,
}

impl OpType {
    pub const ALL: [OpType; 13] = [
        OpType::MakeSnapshot,
        OpType::AddReplica,
        OpType::DelReplica,
        OpType::ChangeLeader,
        OpType::OfflineReplica,
        OpType::ReAddReplica,
        OpType::ReAddReplicaNoSend,
        OpType::ReAddReplicaWithDrop,
        OpType::ReAddReplicaSimplify,
        OpType::Migrate,
        OpType::ReLoadTable,
        OpType::UpdatePartitionStatus,
        OpType::RecoverTable,
    ];

    pub fn from_u32(n: u32) -> Option<OpType> {
        OpType::ALL.into_iter().find(|t| *t as u32 == n)
    }

    /// The name showopstatus prints.
    pub fn name(self) -> &'static str {
        match self {
            OpType::MakeSnapshot => "kMakeSnapshotOP",
            OpType::AddReplica => "kAddReplicaOP",
            OpType::DelReplica => "kDelReplicaOP",
            OpType::ChangeLeader => "kChangeLeaderOP",
            OpType::OfflineReplica => "kOfflineReplicaOP",
            OpType::ReAddReplica => "kReAddReplicaOP",
            OpType::ReAddReplicaNoSend => "kReAddReplicaNoSendOP",
            OpType::ReAddReplicaWithDrop => "kReAddReplicaWithDropOP",
            OpType::ReAddReplicaSimplify => "kReAddReplicaSimplifyOP",
            OpType::Migrate => "kMigrateOP",
            OpType::ReLoadTable => "kReLoadTableOP",
            OpType::UpdatePartitionStatus => "kUpdatePartitionStatusOP",
            OpType::RecoverTable => "kRecoverTableOP",
        }
    }
}

/// The name of a task status as showopstatus prints it.
pub fn status_name(status: u32) -> &'static str {
    match TaskStatus::try_from(status as i32).unwrap_or(TaskStatus::Unspecified) {
        TaskStatus::Inited => "kInited",
        TaskStatus::Doing => "kDoing",
        TaskStatus::Done => "kDone",
        TaskStatus::Failed => "kFailed",
        TaskStatus::Canceled => "kCanceled",
        TaskStatus::Unspecified => "kUnknown",
    }
}

/// One task of an op, with the endpoints it acts on resolved from the metadata (reference 4.4).
///
/// RPC tasks are sent to a tablet, which records them so the nameserver can poll their status; the others run
/// inside the nameserver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    // RPC tasks.
    MakeSnapshot {
        endpoint: String,
        end_offset: u64,
    },
    PauseSnapshot {
        endpoint: String,
    },
    RecoverSnapshot {
        endpoint: String,
    },
    SendSnapshot {
        from: String,
        to: String,
    },
    LoadTable {
        endpoint: String,
        leader: bool,
    },
    /// `leader` starts replicating to `endpoint`.
    AddReplica {
        leader: String,
        endpoint: String,
    },
    /// `leader` stops replicating to `endpoint`.
    DelReplica {
        leader: String,
        endpoint: String,
    },
    DropTable {
        endpoint: String,
    },
    // Nameserver-local tasks.
    AddTableInfo {
        endpoint: String,
    },
    DelTableInfo {
        endpoint: String,
    },
    UpdateTableInfo {
        src: String,
        des: String,
    },
    UpdatePartitionStatus {
        endpoint: String,
        is_leader: bool,
        is_alive: bool,
    },
    SelectLeader,
    ChangeLeader,
    UpdateLeaderInfo,
    RecoverTable {
        endpoint: String,
        offset_delta: u64,
        concurrency: u32,
    },
    CheckBinlogSyncProgress {
        endpoint: String,
        offset_delta: u64,
    },
}

impl Task {
    /// OpenMLDB's TaskType name, for showopstatus's cur_task.
    pub fn name(&self) -> &'static str {
        match self {
            Task::MakeSnapshot { .. } => "kMakeSnapshot",
            Task::PauseSnapshot { .. } => "kPauseSnapshot",
            Task::RecoverSnapshot { .. } => "kRecoverSnapshot",
            Task::SendSnapshot { .. } => "kSendSnapshot",
            Task::LoadTable { .. } => "kLoadTable",
            Task::AddReplica { .. } => "kAddReplica",
            Task::DelReplica { .. } => "kDelReplica",
            Task::DropTable { .. } => "kDropTable",
            Task::AddTableInfo { .. } => "kAddTableInfo",
            Task::DelTableInfo { .. } => "kDelTableInfo",
            Task::UpdateTableInfo { .. } => "kUpdateTableInfo",
            Task::UpdatePartitionStatus { .. } => "kUpdatePartitionStatus",
            Task::SelectLeader => "kSelectLeader",
            Task::ChangeLeader => "kChangeLeader",
            Task::UpdateLeaderInfo => "kUpdateLeaderInfo",
            Task::RecoverTable { .. } => "kRecoverTable",
            Task::CheckBinlogSyncProgress { .. } => "kCheckBinlogSyncProgress",
        }
    }

    /// For an RPC task: the tablet that runs it and records it, and the type it is recorded under.
    pub fn rpc(&self) -> Option<(&str, TaskType)> {
        Some(match self {
            Task::MakeSnapshot { endpoint, .. } => (endpoint, TaskType::MakeSnapshot),
            Task::PauseSnapshot { endpoint } => (endpoint, TaskType::PauseSnapshot),
            Task::RecoverSnapshot { endpoint } => (endpoint, TaskType::RecoverSnapshot),
            Task::SendSnapshot { from, .. } => (from, TaskType::SendSnapshot),
            Task::LoadTable { endpoint, .. } => (endpoint, TaskType::LoadTable),
            Task::AddReplica { leader, .. } => (leader, TaskType::AddReplica),
            Task::DelReplica { leader, .. } => (leader, TaskType::DelReplica),
            Task::DropTable { endpoint } => (endpoint, TaskType::DropTable),
            _ => return None,
        })
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rpc() {
            Some((ep, _)) => write!(f, "{} on {ep}", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

/// The op type and data, decoded.
pub fn op_type_of(op: &OpInfo) -> Result<OpType, String> {
    OpType::from_u32(op.op_type).ok_or_else(|| format!("op {} has unknown type {}", op.op_id, op.op_type))
}

fn data_kind(op: &OpInfo) -> Option<&op_data::Kind> {
    op.data.as_ref().and_then(|d| d.kind.as_ref())
}

pub fn data(kind: op_data::Kind) -> Option<OpData> {
    Some(OpData { kind: Some(kind) })
}

/// The partition's alive leader (is_leader && is_alive).
pub fn alive_leader(partition: &TablePartition) -> Option<&str> {
    partition.partition_meta.iter().find(|m| m.is_leader && m.is_alive).map(|m| m.endpoint.as_str())
}

/// The task list of `op` against the partition's current metadata (reference 4.4, `Create*Task`). Fails when
/// the op's data does not fit its type or a task needs an alive leader the partition does not have: the op cannot
/// be created (or, when resuming, it is dropped with that reason).
///
/// Follows the reference's task lists in order. One difference: the kReAdd* ops and kAddReplicaOP name the
/// leader when they are built, as in OpenMLDB; a resumed op is rebuilt, so it follows the current leader.
pub fn build_tasks(op: &OpInfo, partition: &TablePartition) -> Result<Vec<Task>, String> {
    let ty = op_type_of(op)?;
    let endpoint = || match data_kind(op) {
        Some(op_data::Kind::Endpoint(e)) => Ok(e.clone()),
        _ => Err(format!("{} needs an endpoint", ty.name())),
    };
    let recover = || match data_kind(op) {
        Some(op_data::Kind::RecoverTable(r)) => Ok(r.clone()),
        _ => Err(format!("{} needs recover-table data", ty.name())),
    };
    let leader = || {
        alive_leader(partition)
            .map(str::to_string)
            .ok_or_else(|| format!("partition {} has no alive leader", partition.pid))
    };
    let sync_delta = |r: &crate::proto::nameserver::RecoverTableData| r.offset_delta;
    Ok(match ty {
        OpType::MakeSnapshot => {
            let end_offset = match data_kind(op) {
                Some(op_data::Kind::SnapshotEndOffset(o)) => *o,
                _ => 0,
            };
            vec![Task::MakeSnapshot { endpoint: leader()?, end_offset }]
        }
        OpType::AddReplica => {
            let (leader, ep) = (leader()?, endpoint()?);
            vec![
                Task::PauseSnapshot { endpoint: leader.clone() },
                Task::SendSnapshot { from: leader.clone(), to: ep.clone() },
                Task::LoadTable { endpoint: ep.clone(), leader: false },
                Task::AddReplica { leader: leader.clone(), endpoint: ep.clone() },
                Task::RecoverSnapshot { endpoint: leader },
                Task::AddTableInfo { endpoint: ep.clone() },
                Task::CheckBinlogSyncProgress { endpoint: ep.clone(), offset_delta: 100_000 },
                Task::UpdatePartitionStatus { endpoint: ep, is_leader: false, is_alive: true },
            ]
        }
        OpType::DelReplica => {
            let (leader, ep) = (leader()?, endpoint()?);
            if leader == ep {
                return Err(format!("cannot delete the leader {ep}"));
            }
            vec![
                Task::DelReplica { leader, endpoint: ep.clone() },
                Task::DelTableInfo { endpoint: ep.clone() },
                Task::DropTable { endpoint: ep },
            ]
        }
        OpType::OfflineReplica => {
            let (leader, ep) = (leader()?, endpoint()?);
            if leader == ep {
                return Err(format!("{ep} is the alive leader: change the leader instead"));
            }
            vec![
                Task::DelReplica { leader, endpoint: ep.clone() },
                Task::UpdatePartitionStatus { endpoint: ep, is_leader: false, is_alive: false },
            ]
        }
        OpType::ChangeLeader => {
            if !matches!(data_kind(op), Some(op_data::Kind::ChangeLeader(_))) {
                return Err("kChangeLeaderOP needs change-leader data".into());
            }
            vec![Task::SelectLeader, Task::ChangeLeader, Task::UpdateLeaderInfo]
        }
        OpType::RecoverTable => {
            let r = recover()?;
            let mut tasks = Vec::new();
            // The leader first forgets a follower that is to be re-added (reference 4.4).
            if !r.is_leader
                && let Some(leader) = alive_leader(partition)
                && leader != r.endpoint
            {
                tasks.push(Task::DelReplica { leader: leader.to_string(), endpoint: r.endpoint.clone() });
            }
            tasks.push(Task::RecoverTable {
                endpoint: r.endpoint.clone(),
                offset_delta: r.offset_delta,
                concurrency: r.concurrency,
            });
            tasks
        }
        OpType::ReAddReplica | OpType::ReAddReplicaNoSend | OpType::ReAddReplicaWithDrop => {
            let (r, leader) = (recover()?, leader()?);
            let ep = r.endpoint.clone();
            let mut tasks = vec![Task::PauseSnapshot { endpoint: leader.clone() }];
            if ty == OpType::ReAddReplicaWithDrop {
                tasks.push(Task::DropTable { endpoint: ep.clone() });
            }
            if ty != OpType::ReAddReplicaNoSend {
                tasks.push(Task::SendSnapshot { from: leader.clone(), to: ep.clone() });
            }
            tasks.extend([
                Task::LoadTable { endpoint: ep.clone(), leader: false },
                Task::AddReplica { leader: leader.clone(), endpoint: ep.clone() },
                Task::RecoverSnapshot { endpoint: leader },
                Task::CheckBinlogSyncProgress { endpoint: ep.clone(), offset_delta: sync_delta(&r) },
                Task::UpdatePartitionStatus { endpoint: ep, is_leader: false, is_alive: true },
            ]);
            tasks
        }
        OpType::ReAddReplicaSimplify => {
            let (r, leader) = (recover()?, leader()?);
            vec![
                Task::AddReplica { leader, endpoint: r.endpoint.clone() },
                Task::CheckBinlogSyncProgress { endpoint: r.endpoint.clone(), offset_delta: sync_delta(&r) },
                Task::UpdatePartitionStatus { endpoint: r.endpoint, is_leader: false, is_alive: true },
            ]
        }
        OpType::Migrate => {
            let Some(op_data::Kind::Migrate(mig)) = data_kind(op) else {
                return Err("kMigrateOP needs migrate data".into());
            };
            let leader = leader()?;
            if leader == mig.src {
                return Err(format!("cannot migrate the leader {}", mig.src));
            }
            let (src, des) = (mig.src.clone(), mig.des.clone());
            vec![
                Task::PauseSnapshot { endpoint: leader.clone() },
                Task::SendSnapshot { from: leader.clone(), to: des.clone() },
                Task::RecoverSnapshot { endpoint: leader.clone() },
                Task::LoadTable { endpoint: des.clone(), leader: false },
                Task::AddReplica { leader: leader.clone(), endpoint: des.clone() },
                Task::AddTableInfo { endpoint: des.clone() },
                Task::CheckBinlogSyncProgress { endpoint: des.clone(), offset_delta: 100_000 },
                Task::DelReplica { leader, endpoint: src.clone() },
                Task::UpdateTableInfo { src: src.clone(), des },
                Task::DropTable { endpoint: src },
            ]
        }
        OpType::ReLoadTable => {
            let ep = endpoint()?;
            vec![
                Task::LoadTable { endpoint: ep.clone(), leader: true },
                Task::UpdatePartitionStatus { endpoint: ep, is_leader: true, is_alive: true },
            ]
        }
        OpType::UpdatePartitionStatus => {
            let Some(op_data::Kind::EndpointStatus(s)) = data_kind(op) else {
                return Err("kUpdatePartitionStatusOP needs endpoint-status data".into());
            };
            vec![Task::UpdatePartitionStatus {
                endpoint: s.endpoint.clone(),
                is_leader: s.is_leader,
                is_alive: s.is_alive,
            }]
        }
    })
}

/// Whether a task may simply run again when a new active nameserver resumes an op at it (reference 4.5 lists
/// the idempotent nameserver-local tasks). Here every task is made safe to run again, RPC tasks included: the
/// engine first asks the tablet whether it already has the task, and treats "already in the wanted state"
/// answers as done, so a resumed op never waits for a task no tablet will report (DESIGN 5.2).
pub fn rerun_on_resume(task: &Task) -> bool {
    task.rpc().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::nameserver::{ChangeLeaderData, MigrateData, PartitionMeta, RecoverTableData};

    fn partition(metas: &[(&str, bool, bool)]) -> TablePartition {
        TablePartition {
            pid: 3,
            partition_meta: metas
                .iter()
                .map(|&(e, l, a)| PartitionMeta { endpoint: e.into(), is_leader: l, is_alive: a })
                .collect(),
            term_offset: vec![],
        }
    }

    fn op(ty: OpType, kind: op_data::Kind) -> OpInfo {
        OpInfo { op_id: 1, op_type: ty as u32, data: data(kind), ..Default::default() }
    }

    fn names(tasks: &[Task]) -> Vec<&'static str> {
        tasks.iter().map(Task::name).collect()
    }

    fn recover(ep: &str, is_leader: bool) -> op_data::Kind {
        op_data::Kind::RecoverTable(RecoverTableData {
            endpoint: ep.into(),
            offset_delta: 7,
            is_leader,
            concurrency: 2,
        })
    }

    #[test]
    fn numbers_and_names_round_trip() {
        for t in OpType::ALL {
            assert_eq!(OpType::from_u32(t as u32), Some(t));
            assert!(t.name().starts_with('k') && t.name().ends_with("OP"));
        }
        assert_eq!(OpType::from_u32(10), None, "kUpdateTableAliveOP is deprecated");
        assert_eq!(status_name(TaskStatus::Done as u32), "kDone");
    }

    #[test]
    fn task_lists_follow_the_reference() {
        let p = partition(&[("a", true, true), ("b", false, true), ("c", false, false)]);
        let ep = || op_data::Kind::Endpoint("c".into());
        let cases: Vec<(OpInfo, Vec<&str>)> = vec![
            (op(OpType::MakeSnapshot, op_data::Kind::SnapshotEndOffset(5)), vec!["kMakeSnapshot"]),
            (
                op(OpType::AddReplica, op_data::Kind::Endpoint("d".into())),
                vec![
                    "kPauseSnapshot",
                    "kSendSnapshot",
                    "kLoadTable",
                    "kAddReplica",
                    "kRecoverSnapshot",
                    "kAddTableInfo",
                    "kCheckBinlogSyncProgress",
                    "kUpdatePartitionStatus",
                ],
            ),
            (op(OpType::DelReplica, ep()), vec!["kDelReplica", "kDelTableInfo", "kDropTable"]),
            (op(OpType::OfflineReplica, ep()), vec!["kDelReplica", "kUpdatePartitionStatus"]),
            (
                op(OpType::ChangeLeader, op_data::Kind::ChangeLeader(ChangeLeaderData::default())),
                vec!["kSelectLeader", "kChangeLeader", "kUpdateLeaderInfo"],
            ),
            (op(OpType::RecoverTable, recover("c", false)), vec!["kDelReplica", "kRecoverTable"]),
            (op(OpType::RecoverTable, recover("a", true)), vec!["kRecoverTable"]),
            (
                op(OpType::ReAddReplica, recover("c", false)),
                vec![
                    "kPauseSnapshot",
                    "kSendSnapshot",
                    "kLoadTable",
                    "kAddReplica",
                    "kRecoverSnapshot",
                    "kCheckBinlogSyncProgress",
                    "kUpdatePartitionStatus",
                ],
            ),
            (
                op(OpType::ReAddReplicaNoSend, recover("c", false)),
                vec![
                    "kPauseSnapshot",
                    "kLoadTable",
                    "kAddReplica",
                    "kRecoverSnapshot",
                    "kCheckBinlogSyncProgress",
                    "kUpdatePartitionStatus",
                ],
            ),
            (
                op(OpType::ReAddReplicaWithDrop, recover("c", false)),
                vec![
                    "kPauseSnapshot",
                    "kDropTable",
                    "kSendSnapshot",
                    "kLoadTable",
                    "kAddReplica",
                    "kRecoverSnapshot",
                    "kCheckBinlogSyncProgress",
                    "kUpdatePartitionStatus",
                ],
            ),
            (
                op(OpType::ReAddReplicaSimplify, recover("c", false)),
                vec!["kAddReplica", "kCheckBinlogSyncProgress", "kUpdatePartitionStatus"],
            ),
            (
                op(OpType::Migrate, op_data::Kind::Migrate(MigrateData { src: "b".into(), des: "d".into() })),
                vec![
                    "kPauseSnapshot",
                    "kSendSnapshot",
                    "kRecoverSnapshot",
                    "kLoadTable",
                    "kAddReplica",
                    "kAddTableInfo",
                    "kCheckBinlogSyncProgress",
                    "kDelReplica",
                    "kUpdateTableInfo",
                    "kDropTable",
                ],
            ),
            (op(OpType::ReLoadTable, ep()), vec!["kLoadTable", "kUpdatePartitionStatus"]),
        ];
        for (op, want) in cases {
            let got = build_tasks(&op, &p).unwrap_or_else(|e| panic!("{}: {e}", op.op_type));
            assert_eq!(names(&got), want, "op type {}", op.op_type);
        }
    }

    #[test]
    fn endpoints_resolve_to_the_current_leader() {
        let p = partition(&[("a", true, false), ("b", true, true), ("c", false, false)]);
        let got = build_tasks(&op(OpType::ReAddReplicaSimplify, recover("c", false)), &p).unwrap();
        assert_eq!(got[0], Task::AddReplica { leader: "b".into(), endpoint: "c".into() });
        assert_eq!(got[1], Task::CheckBinlogSyncProgress { endpoint: "c".into(), offset_delta: 7 });
        assert_eq!(got[0].rpc(), Some(("b", TaskType::AddReplica)));
        assert_eq!(got[2].rpc(), None);
    }

    #[test]
    fn refusals() {
        let leaderless = partition(&[("a", true, false), ("b", false, true)]);
        for ty in [OpType::MakeSnapshot, OpType::AddReplica, OpType::ReAddReplica, OpType::OfflineReplica] {
            let kind =
                if ty == OpType::ReAddReplica { recover("b", false) } else { op_data::Kind::Endpoint("b".into()) };
            assert!(build_tasks(&op(ty, kind), &leaderless).unwrap_err().contains("no alive leader"));
        }
        let p = partition(&[("a", true, true), ("b", false, true)]);
        assert!(build_tasks(&op(OpType::DelReplica, op_data::Kind::Endpoint("a".into())), &p).is_err());
        let mig = op_data::Kind::Migrate(MigrateData { src: "a".into(), des: "c".into() });
        assert!(build_tasks(&op(OpType::Migrate, mig), &p).unwrap_err().contains("cannot migrate the leader"));
        // Data that does not fit the type.
        assert!(build_tasks(&op(OpType::ChangeLeader, op_data::Kind::Endpoint("a".into())), &p).is_err());
        let unknown = OpInfo { op_type: 99, ..Default::default() };
        assert!(build_tasks(&unknown, &p).unwrap_err().contains("unknown type"));
        // A re-added leader's recover op has nobody to drop it from.
        let tasks = build_tasks(&op(OpType::RecoverTable, recover("b", false)), &leaderless).unwrap();
        assert_eq!(names(&tasks), vec!["kRecoverTable"]);
    }
}
