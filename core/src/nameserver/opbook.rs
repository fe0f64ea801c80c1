//! The op queues and the done-op history of the active nameserver (reference 4.2 to 4.5), as a plain data
//! structure: no IO and no clock. The op store ([`super::opstore`]) persists an op before it enters a queue; the
//! engine ([`super::engine`]) runs the front op of each queue and records here what happened.

use std::collections::{BTreeMap, VecDeque};

use super::ops::{OpType, Task};
use crate::proto::nameserver::OpInfo;
use crate::proto::tablet::TaskStatus;

/// An op in a queue: its persisted record and its task list (`tasks[info.task_index..]` remain).
#[derive(Debug, Clone)]
pub struct QueuedOp {
    pub info: OpInfo,
    pub tasks: Vec<Task>,
    /// Resumed by a new active nameserver: its current task first asks the tablet before running again.
    pub resumed: bool,
}

impl QueuedOp {
    pub fn current(&self) -> Option<&Task> {
        self.tasks.get(self.info.task_index as usize)
    }

    pub fn status(&self) -> TaskStatus {
        TaskStatus::try_from(self.info.task_status as i32).unwrap_or(TaskStatus::Inited)
    }
}

/// A finished op (done, failed or canceled) as showopstatus lists it.
#[derive(Debug, Clone)]
pub struct FinishedOp {
    pub info: OpInfo,
    /// The task it stopped at (failed or canceled), if any.
    pub cur_task: Option<&'static str>,
}

/// The ops that go out of the way of a failover of their partition's leader: the automatic recoveries of a
/// follower (a re-add, a recovery decision, taking a replica out of replication), which all need the leader and
/// cannot finish while it is lost. A leader change, a reload of a single replica, a snapshot, a migration and the
/// other manual ops keep their place.
pub fn yields_to_failover(op_type: u32) -> bool {
    matches!(
        OpType::from_u32(op_type),
        Some(
            OpType::ReAddReplica
                | OpType::ReAddReplicaNoSend
                | OpType::ReAddReplicaWithDrop
                | OpType::ReAddReplicaSimplify
                | OpType::RecoverTable
                | OpType::OfflineReplica
        )
    )
}

#[derive(Debug)]
pub struct OpBook {
    queues: Vec<VecDeque<u64>>,
    ops: BTreeMap<u64, QueuedOp>,
    done: VecDeque<FinishedOp>,
    max_done: usize,
}

/// What deleting finished ops removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Deleted {
    pub op_ids: Vec<u64>,
    /// Those whose coordination node still exists (failed and canceled ops keep it).
    pub with_node: Vec<u64>,
}

impl OpBook {
    pub fn new(queue_count: usize, max_done: usize) -> Self {
        assert!(queue_count > 0, "at least one op queue");
        Self { queues: vec![VecDeque::new(); queue_count], ops: BTreeMap::new(), done: VecDeque::new(), max_done }
    }

    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// Adds an op at the back of its queue (`info.vec_idx`), or right after its parent and the parent's earlier
    /// children when it has one in that queue (reference 4.2), so a child runs before ops queued later.
    pub fn add(&mut self, op: QueuedOp) {
        let q = (op.info.vec_idx as usize).min(self.queues.len() - 1);
        let id = op.info.op_id;
        let parent = op.info.parent_id;
        let queue = &mut self.queues[q];
        let at = if parent != 0
            && let Some(pos) = queue.iter().position(|&o| o == parent)
        {
            let mut at = pos + 1;
            while at < queue.len() && self.ops.get(&queue[at]).is_some_and(|o| o.info.parent_id == parent) {
                at += 1;
            }
            at
        } else {
            queue.len()
        };
        queue.insert(at, id);
        self.ops.insert(id, op);
    }

    /// Puts resumed ops back (reference 4.5 step 7): each queue in (parent first-children, op id) order, children
    /// of an op before root ops.
    pub fn restore(&mut self, mut ops: Vec<QueuedOp>) {
        ops.sort_by_key(|o| (if o.info.parent_id == 0 { u64::MAX } else { o.info.parent_id }, o.info.op_id));
        for op in ops {
            let q = (op.info.vec_idx as usize).min(self.queues.len() - 1);
            self.queues[q].push_back(op.info.op_id);
            self.ops.insert(op.info.op_id, op);
        }
    }

    pub fn front(&self, queue: usize) -> Option<u64> {
        self.queues.get(queue).and_then(|q| q.front().copied())
    }

    /// The front op of `queue` if it may run now: a root op (no parent) waits while an op of the same partition
    /// descending from an older root op (a lower id) is still queued in another queue, so the ops of one
    /// partition run in the order a single queue would run them (children right after their parent) even when
    /// they joined different queues (a failover's leader change spread over every queue, the recoveries that
    /// follow it in `pid % concurrency`). A child op never waits: it runs in its parent's queue right after it.
    /// No cycle: a waiting front op waits only for ops of a lower root id, a queue's root ops are in id order and
    /// its children sit right behind their running parent, so following the waits the root ids only fall.
    pub fn runnable_front(&self, queue: usize) -> Option<u64> {
        let id = self.front(queue)?;
        let op = self.ops.get(&id)?;
        if op.info.parent_id != 0 {
            return Some(id);
        }
        let earlier = self.ops.values().any(|o| {
            o.info.op_id != id && o.info.name == op.info.name && o.info.pid == op.info.pid && self.root_of(o) < id
        });
        (!earlier).then_some(id)
    }

    /// The id of the root op `op` descends from (its own id for a root; the oldest ancestor still known, or the
    /// id of the first one gone, otherwise). Terminates: a parent is always older than its child.
    fn root_of(&self, op: &QueuedOp) -> u64 {
        let mut cur = op;
        loop {
            if cur.info.parent_id == 0 || cur.info.parent_id >= cur.info.op_id {
                return cur.info.op_id;
            }
            match self.ops.get(&cur.info.parent_id) {
                Some(p) => cur = p,
                None => return cur.info.parent_id,
            }
        }
    }

    pub fn get(&self, op_id: u64) -> Option<&QueuedOp> {
        self.ops.get(&op_id)
    }

    pub fn get_mut(&mut self, op_id: u64) -> Option<&mut QueuedOp> {
        self.ops.get_mut(&op_id)
    }

    pub fn has_child(&self, parent: u64) -> bool {
        self.ops.values().any(|o| o.info.parent_id == parent)
    }

    /// Whether an op of `op_type` for partition `pid` of table `name` is queued or running.
    pub fn has_queued(&self, name: &str, pid: u32, op_type: u32) -> bool {
        self.ops.values().any(|o| o.info.name == name && o.info.pid == pid && o.info.op_type == op_type)
    }

    /// Whether a live op of `op_type` for partition `pid` of table `name` names `endpoint` (its data is that
    /// endpoint): a tablet seen offline twice (its grace period ended, then its restart showed) takes each of its
    /// follower replicas offline once, not once per sighting.
    pub fn has_queued_on(&self, name: &str, pid: u32, op_type: u32, endpoint: &str) -> bool {
        self.live_for(name, pid).any(|o| {
            o.info.op_type == op_type
                && matches!(
                    o.info.data.as_ref().and_then(|d| d.kind.as_ref()),
                    Some(crate::proto::nameserver::op_data::Kind::Endpoint(e)) if e == endpoint
                )
        })
    }

    /// Whether any op for partition `pid` of table `name` is queued or running (a canceled one is on its way
    /// out: it runs no further task).
    pub fn has_queued_for(&self, name: &str, pid: u32) -> bool {
        self.live_for(name, pid).next().is_some()
    }

    fn live_for<'a>(&'a self, name: &'a str, pid: u32) -> impl Iterator<Item = &'a QueuedOp> + 'a {
        self.ops
            .values()
            .filter(move |o| o.info.name == name && o.info.pid == pid && o.status() != TaskStatus::Canceled)
    }

    /// Whether ops are queued for the partition and every one of them [`yields_to_failover`].
    pub fn only_yielding_for(&self, name: &str, pid: u32) -> bool {
        let mut live = self.live_for(name, pid).peekable();
        live.peek().is_some() && live.all(|o| yields_to_failover(o.info.op_type))
    }

    /// Cancels the ops of the partition that [`yield_to_failover`], so that a failover of its lost leader runs
    /// next; returns their ids. The engine finishes each as canceled at its next look (a task waiting on a tablet
    /// stops at its next poll).
    pub fn preempt_for_failover(&mut self, name: &str, pid: u32) -> Vec<u64> {
        let ids: Vec<u64> = self
            .live_for(name, pid)
            .filter(|o| {
                yields_to_failover(o.info.op_type) && matches!(o.status(), TaskStatus::Inited | TaskStatus::Doing)
            })
            .map(|o| o.info.op_id)
            .collect();
        for id in &ids {
            self.cancel(*id).expect("a live op can be canceled");
        }
        ids
    }

    /// Every queued op, by op id.
    pub fn queued(&self) -> impl Iterator<Item = &QueuedOp> {
        self.ops.values()
    }

    pub fn finished(&self) -> impl Iterator<Item = &FinishedOp> {
        self.done.iter()
    }

    /// Takes an op out of its queue into the history with its final status. Returns the ops evicted from the
    /// history (oldest first) whose coordination node must go too.
    pub fn finish(&mut self, op_id: u64, status: TaskStatus) -> Vec<u64> {
        let Some(op) = self.ops.remove(&op_id) else { return vec![] };
        for q in &mut self.queues {
            q.retain(|&o| o != op_id);
        }
        let started = op.info.start_time != 0;
        let cur_task = if status == TaskStatus::Done || !started { None } else { op.current().map(Task::name) };
        let mut info = op.info;
        info.task_status = status as u32;
        self.done.push_back(FinishedOp { info, cur_task });
        let mut evicted = Vec::new();
        while self.done.len() > self.max_done {
            if let Some(old) = self.done.pop_front()
                && old.info.task_status != TaskStatus::Done as u32
            {
                evicted.push(old.info.op_id);
            }
        }
        evicted
    }

    /// cancelop (reference 4.3): only a queued op that has not finished. Marks it canceled; the engine takes it
    /// out when it next looks at it.
    pub fn cancel(&mut self, op_id: u64) -> Result<(), String> {
        match self.ops.get_mut(&op_id) {
            Some(op) if matches!(op.status(), TaskStatus::Inited | TaskStatus::Doing) => {
                op.info.task_status = TaskStatus::Canceled as u32;
                Ok(())
            }
            _ => Err("op status is not kDoing or kInited".into()),
        }
    }

    /// deleteop by id: a finished op leaves the history; a queued op cannot be deleted.
    pub fn delete(&mut self, op_id: u64) -> Result<Deleted, String> {
        if self.ops.contains_key(&op_id) {
            return Err("cannot delete the Inited OP or Doing OP: cancel it first".into());
        }
        let Some(pos) = self.done.iter().position(|f| f.info.op_id == op_id) else {
            return Err(format!("op {op_id} is not exist"));
        };
        let f = self.done.remove(pos).expect("position found");
        let with_node = if f.info.task_status == TaskStatus::Done as u32 { vec![] } else { vec![op_id] };
        Ok(Deleted { op_ids: vec![op_id], with_node })
    }

    /// deleteop by status: every finished op of that status.
    pub fn delete_status(&mut self, status: TaskStatus) -> Result<Deleted, String> {
        if matches!(status, TaskStatus::Inited | TaskStatus::Doing) {
            return Err("cannot delete the Inited OP or Doing OP".into());
        }
        let mut out = Deleted::default();
        self.done.retain(|f| {
            if f.info.task_status != status as u32 {
                return true;
            }
            out.op_ids.push(f.info.op_id);
            if status != TaskStatus::Done {
                out.with_node.push(f.info.op_id);
            }
            false
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(op_id: u64, vec_idx: u32, parent_id: u64) -> QueuedOp {
        QueuedOp {
            info: OpInfo { op_id, vec_idx, parent_id, task_status: TaskStatus::Inited as u32, ..Default::default() },
            tasks: vec![Task::SelectLeader],
            resumed: false,
        }
    }

    fn queue(b: &OpBook, q: usize) -> Vec<u64> {
        b.queues[q].iter().copied().collect()
    }

    fn op_of(op_id: u64, vec_idx: u32, parent_id: u64, name: &str, pid: u32) -> QueuedOp {
        let mut o = op(op_id, vec_idx, parent_id);
        o.info.name = name.into();
        o.info.pid = pid;
        o
    }

    #[test]
    fn a_failover_preempts_only_the_follower_recoveries_of_its_partition() {
        let mut b = OpBook::new(2, 10);
        let typed = |id, pid, t: OpType| {
            let mut o = op_of(id, 0, 0, "t", pid);
            o.info.op_type = t as u32;
            o
        };
        b.add(typed(1, 0, OpType::ReAddReplicaWithDrop));
        b.add(typed(2, 0, OpType::RecoverTable));
        b.add(typed(3, 1, OpType::ReAddReplica));
        b.add(typed(4, 1, OpType::ChangeLeader));
        b.add(typed(5, 2, OpType::MakeSnapshot));
        assert!(b.only_yielding_for("t", 0));
        assert!(!b.only_yielding_for("t", 1), "a leader change keeps its place");
        assert!(!b.only_yielding_for("t", 2), "so does a manual snapshot");
        assert!(!b.only_yielding_for("t", 3), "nothing queued");
        assert_eq!(b.preempt_for_failover("t", 0), vec![1, 2]);
        assert_eq!(b.get(1).unwrap().status(), TaskStatus::Canceled);
        assert!(!b.has_queued_for("t", 0), "canceled ops are on their way out");
        assert_eq!(b.preempt_for_failover("t", 0), Vec::<u64>::new());
        assert_eq!(b.preempt_for_failover("t", 1), vec![3]);
        assert_eq!(b.get(4).unwrap().status(), TaskStatus::Inited);
    }

    #[test]
    fn an_offline_op_is_found_by_its_partition_type_and_endpoint() {
        let mut b = OpBook::new(2, 10);
        let offline = |id, pid, ep: &str| {
            let mut o = op_of(id, 0, 0, "t", pid);
            o.info.op_type = OpType::OfflineReplica as u32;
            o.info.data = crate::nameserver::ops::data(crate::proto::nameserver::op_data::Kind::Endpoint(ep.into()));
            o
        };
        b.add(offline(1, 0, "a"));
        let ty = OpType::OfflineReplica as u32;
        assert!(b.has_queued_on("t", 0, ty, "a"));
        assert!(!b.has_queued_on("t", 0, ty, "b"), "another endpoint");
        assert!(!b.has_queued_on("t", 1, ty, "a"), "another partition");
        assert!(!b.has_queued_on("t", 0, OpType::ReAddReplica as u32, "a"), "another type");
        b.cancel(1).expect("cancel");
        assert!(!b.has_queued_on("t", 0, ty, "a"), "a canceled op is on its way out");
    }

    #[test]
    fn a_partitions_ops_run_in_creation_order_across_queues() {
        let mut b = OpBook::new(8, 10);
        // A leader change of pid 1 spread to queue 1, then its recovery in queue 1 % 2 = 1... and pid 3's leader
        // change in queue 3 with its recovery in queue 3 % 2 = 1 behind pid 1's.
        b.add(op_of(10, 1, 0, "t", 1));
        b.add(op_of(11, 3, 0, "t", 3));
        b.add(op_of(12, 1, 0, "t", 1));
        b.add(op_of(13, 1, 0, "t", 3));
        // Different partitions run at once.
        assert_eq!(b.runnable_front(1), Some(10));
        assert_eq!(b.runnable_front(3), Some(11));
        b.finish(10, TaskStatus::Done);
        assert_eq!(b.runnable_front(1), Some(12));
        b.finish(12, TaskStatus::Done);
        // pid 3's recovery waits for pid 3's leader change in another queue.
        assert_eq!(b.front(1), Some(13));
        assert_eq!(b.runnable_front(1), None);
        // A child never waits: it runs right after its parent in the parent's queue.
        b.add(op_of(14, 3, 11, "t", 3));
        b.finish(11, TaskStatus::Done);
        assert_eq!(b.runnable_front(3), Some(14));
        // pid 3's recovery (13) also waits for that child: it descends from the older leader change (11).
        assert_eq!(b.runnable_front(1), None);
        b.finish(14, TaskStatus::Done);
        assert_eq!(b.runnable_front(1), Some(13));
    }

    #[test]
    fn children_run_right_after_their_parent_in_creation_order() {
        let mut b = OpBook::new(2, 10);
        for (id, q) in [(1, 0), (2, 0), (3, 1), (4, 0)] {
            b.add(op(id, q, 0));
        }
        b.add(op(5, 0, 1));
        b.add(op(6, 0, 1));
        b.add(op(7, 0, 6));
        assert_eq!(queue(&b, 0), vec![1, 5, 6, 7, 2, 4]);
        assert_eq!(queue(&b, 1), vec![3]);
        assert!(b.has_child(1) && !b.has_child(2));
        // A child whose parent is gone joins the back.
        b.add(op(8, 1, 99));
        assert_eq!(queue(&b, 1), vec![3, 8]);
    }

    #[test]
    fn restore_sorts_children_first_then_by_id() {
        let mut b = OpBook::new(1, 10);
        b.restore(vec![op(9, 0, 0), op(4, 0, 0), op(11, 0, 4), op(10, 0, 3)]);
        assert_eq!(queue(&b, 0), vec![10, 11, 4, 9]);
        assert_eq!(b.front(0), Some(10));
    }

    #[test]
    fn finish_moves_to_history_and_evicts_the_oldest() {
        let mut b = OpBook::new(1, 2);
        for id in 1..=4 {
            b.add(op(id, 0, 0));
        }
        assert_eq!(b.finish(1, TaskStatus::Failed), Vec::<u64>::new());
        assert_eq!(b.finish(2, TaskStatus::Done), Vec::<u64>::new());
        assert_eq!(b.finish(3, TaskStatus::Done), vec![1], "the evicted failed op loses its node");
        assert_eq!(b.finished().map(|f| f.info.op_id).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(queue(&b, 0), vec![4]);
        assert_eq!(b.finish(42, TaskStatus::Done), Vec::<u64>::new(), "unknown op: nothing");
    }

    #[test]
    fn cancel_and_delete_rules() {
        let mut b = OpBook::new(1, 10);
        b.add(op(1, 0, 0));
        b.add(op(2, 0, 0));
        b.add(op(3, 0, 0));
        assert!(b.delete(1).unwrap_err().contains("cannot delete"));
        b.cancel(2).unwrap();
        assert!(b.cancel(2).is_err(), "already canceled");
        assert!(b.cancel(77).is_err());
        b.finish(2, TaskStatus::Canceled);
        b.finish(1, TaskStatus::Done);
        b.finish(3, TaskStatus::Failed);
        assert_eq!(b.delete(1).unwrap(), Deleted { op_ids: vec![1], with_node: vec![] });
        assert!(b.delete(1).is_err(), "gone");
        assert_eq!(b.delete_status(TaskStatus::Failed).unwrap(), Deleted { op_ids: vec![3], with_node: vec![3] });
        assert!(b.delete_status(TaskStatus::Doing).is_err());
        assert_eq!(b.delete_status(TaskStatus::Canceled).unwrap().op_ids, vec![2]);
        assert_eq!(b.finished().count(), 0);
    }
}
