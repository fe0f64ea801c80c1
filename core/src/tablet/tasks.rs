//! The tablet's record of tasks it runs for the nameserver (reference 4.3): the nameserver polls it with
//! GetTaskStatus and clears finished ops with DeleteOPTask.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::proto::tablet::{TaskInfo, TaskStatus, TaskType};

/// Identity of a task: the nameserver matches reports by op id, task type, tid and pid.
type TaskKey = (u64, i32, u32, u32);

/// Bound on remembered tasks; the oldest finished ones go first (the nameserver deletes them normally).
const MAX_TASKS: usize = 10_000;

#[derive(Default)]
pub struct TaskTable {
    tasks: Mutex<BTreeMap<TaskKey, TaskInfo>>,
    /// The newest nameserver epoch a task came with.
    newest_epoch: Mutex<u64>,
}

/// A handle to update one recorded task; `None` when the request carried no task.
#[derive(Clone, Debug)]
pub struct TaskRef(Option<TaskKey>);

impl TaskTable {
    /// Refuses a task from a nameserver older than one this tablet already ran a task of: a deposed nameserver's
    /// request that arrived late (the fuzzer's seed 17711: a `kDelReplica` sent into a network isolation landed
    /// 8 s later, after the next nameserver had re-added the replica, and removed its replicator for good). Each
    /// active nameserver's epoch is above the last's (its election node's sequence); tasks without one (0) pass.
    /// Only this process's tasks count (a restart forgets the epoch).
    pub fn admit(&self, info: Option<&TaskInfo>) -> Result<(), String> {
        let Some(info) = info.filter(|i| i.ns_epoch > 0) else { return Ok(()) };
        let mut newest = self.newest_epoch.lock().expect("task table lock");
        if info.ns_epoch < *newest {
            return Err(format!(
                "op {} comes from nameserver epoch {}, older than epoch {} this tablet already serves",
                info.op_id, info.ns_epoch, *newest
            ));
        }
        *newest = info.ns_epoch;
        Ok(())
    }

    /// Records `info` (if any) as doing, under the given type and partition.
    pub fn start(&self, info: Option<&TaskInfo>, task_type: TaskType, tid: u32, pid: u32, endpoint: &str) -> TaskRef {
        let Some(info) = info else { return TaskRef(None) };
        let key = (info.op_id, task_type as i32, tid, pid);
        let mut tasks = self.tasks.lock().expect("task table lock");
        if tasks.len() >= MAX_TASKS {
            let done = tasks
                .iter()
                .find(|(_, t)| t.status() != TaskStatus::Doing && t.status() != TaskStatus::Inited)
                .map(|(k, _)| *k);
            if let Some(k) = done.or_else(|| tasks.keys().next().copied()) {
                tasks.remove(&k);
            }
        }
        let task = TaskInfo {
            op_id: info.op_id,
            op_type: info.op_type,
            task_type: task_type as i32,
            status: TaskStatus::Doing as i32,
            endpoint: endpoint.to_string(),
            tid,
            pid,
            ns_epoch: info.ns_epoch,
        };
        tasks.insert(key, task);
        TaskRef(Some(key))
    }

    pub fn finish(&self, task: &TaskRef, ok: bool) {
        let Some(key) = task.0 else { return };
        if let Some(t) = self.tasks.lock().expect("task table lock").get_mut(&key) {
            t.status = if ok { TaskStatus::Done } else { TaskStatus::Failed } as i32;
        }
    }

    pub fn list(&self) -> Vec<TaskInfo> {
        self.tasks.lock().expect("task table lock").values().cloned().collect()
    }

    pub fn delete_ops(&self, op_ids: &[u64]) {
        self.tasks.lock().expect("task table lock").retain(|(op, ..), _| !op_ids.contains(op));
    }
}

#[cfg(test)]
mod admit_tests {
    use super::*;

    fn task(op_id: u64, ns_epoch: u64) -> TaskInfo {
        TaskInfo { op_id, ns_epoch, ..Default::default() }
    }

    #[test]
    fn a_task_from_an_older_nameserver_is_refused() {
        let t = TaskTable::default();
        assert_eq!(t.admit(None), Ok(()), "a request without a task (a tool's) passes");
        assert_eq!(t.admit(Some(&task(8, 3))), Ok(()));
        assert_eq!(t.admit(Some(&task(9, 3))), Ok(()), "the same nameserver again");
        assert_eq!(t.admit(Some(&task(14, 5))), Ok(()), "the next nameserver");
        let stale = t.admit(Some(&task(8, 3))).unwrap_err();
        assert!(stale.contains("op 8") && stale.contains("epoch 3") && stale.contains("epoch 5"), "{stale}");
        assert_eq!(t.admit(Some(&task(7, 0))), Ok(()), "no epoch: not judged");
        assert_eq!(t.admit(Some(&task(15, 5))), Ok(()));
    }
}
