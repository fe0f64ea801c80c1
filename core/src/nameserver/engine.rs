//! The OP/TASK engine (reference 4.3): one worker per op queue, running its front op task by task to its end,
//! persisting its progress after every task, and finishing it done, failed or canceled. A worker that loses the
//! coordination service stops and looks again; a new active nameserver resumes what it left.
//!
//! Only [`super::server`] starts the workers. It calls [`super::tasks`] (the bodies), [`super::opstore`] (the
//! records) and [`super::state`].

use std::sync::Arc;

use super::opstore::op_name;
use super::state::{Nameserver, epoch_ms};
use crate::proto::tablet::TaskStatus;

impl Nameserver {
    /// One queue's worker: runs the front op to its end, then the next (reference 4.3: one op at a time per
    /// queue). A front op that must wait for an older op of its partition in another queue waits for the next
    /// change of the book ([`super::opbook::OpBook::runnable_front`]).
    pub(super) async fn queue_worker(self: Arc<Self>, queue: usize) {
        loop {
            let seen = self.op_signal.get();
            let front = self.state.lock().expect("ns state").ops.runnable_front(queue);
            match front {
                None => {
                    let _ = self.op_signal.changed(seen).await;
                }
                Some(op_id) => {
                    if !self.run_op(op_id).await {
                        // The coordination service refused a write: this nameserver is probably losing its
                        // session; look again shortly (a new active nameserver resumes the op otherwise).
                        tokio::time::sleep(self.config.get_task_status_interval).await;
                    }
                }
            }
        }
    }

    /// Runs an op from its current task to its end. Returns false when it had to stop without finishing.
    async fn run_op(&self, op_id: u64) -> bool {
        loop {
            let Some(op) = self.op_snapshot(op_id) else { return true };
            match op.status() {
                TaskStatus::Canceled => return self.finish_op(op_id, TaskStatus::Canceled, "canceled").await,
                TaskStatus::Inited => {
                    let mut info = op.info.clone();
                    info.task_status = TaskStatus::Doing as u32;
                    info.start_time = epoch_ms();
                    if !self.persist_op(&info).await {
                        return false;
                    }
                    if let Some(o) = self.state.lock().expect("ns state").ops.get_mut(op_id) {
                        o.info.task_status = info.task_status;
                        o.info.start_time = info.start_time;
                    }
                    tracing::info!(op_id, op = op_name(&op.info), "op started");
                    continue;
                }
                _ => {}
            }
            let Some(task) = op.current().cloned() else {
                return self.finish_op(op_id, TaskStatus::Done, "").await;
            };
            let result = self.run_task(&op, &task).await;
            let Some(now) = self.op_snapshot(op_id) else { return true };
            if now.status() == TaskStatus::Canceled {
                continue;
            }
            match result {
                Ok(()) => {
                    let mut info = now.info.clone();
                    info.task_index += 1;
                    if !self.persist_op(&info).await {
                        return false;
                    }
                    tracing::info!(op_id, task = task.name(), "task done");
                    if let Some(o) = self.state.lock().expect("ns state").ops.get_mut(op_id) {
                        o.info.task_index = info.task_index;
                        o.resumed = false;
                    }
                }
                Err(reason) => {
                    tracing::warn!(op_id, op = op_name(&op.info), task = %task, reason, "task failed; op failed");
                    if let Some(o) = self.state.lock().expect("ns state").ops.get_mut(op_id) {
                        o.info.reason = format!("{}: {reason}", task.name());
                    }
                    return self.finish_op(op_id, TaskStatus::Failed, &reason).await;
                }
            }
        }
    }
}
