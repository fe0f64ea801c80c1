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
}

/// A handle to update one recorded task; `None` when the request carried no task.
#[derive(Clone, Debug)]
pub struct TaskRef(Option<TaskKey>);

impl TaskTable {
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
