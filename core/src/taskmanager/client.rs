//! Talking to whichever TaskManager is active: its endpoint is the value of `<root>/taskmanager/leader`.

use std::sync::Arc;
use std::time::Duration;

use crate::codes::Code;
use crate::coord::{CoordError, Coordinator, Layout};
use crate::rpc::{ClientConfig, Method, RpcClient, RpcError};

pub struct TmClient {
    coord: Arc<dyn Coordinator>,
    layout: Layout,
    timeout: Duration,
}

impl TmClient {
    pub fn new(coord: Arc<dyn Coordinator>, root: &str, timeout: Duration) -> Self {
        Self { coord, layout: Layout::new(root), timeout }
    }

    /// The active TaskManager's endpoint.
    pub async fn active(&self) -> Result<String, String> {
        match self.coord.get(&self.layout.taskmanager_leader()).await {
            Ok((data, _)) => Ok(String::from_utf8_lossy(&data).to_string()),
            Err(CoordError::NoNode(_)) => Err("no taskmanager is active".into()),
            Err(e) => Err(format!("cannot read the active taskmanager: {e}")),
        }
    }

    /// Calls the active TaskManager; while there is none, or it is no longer the leader, looks again a few times.
    pub async fn call<M: Method>(&self, method: M, req: M::Req) -> Result<M::Resp, RpcError>
    where
        M::Req: Clone,
    {
        let mut last = None;
        for attempt in 0..5u32 {
            match self.active().await {
                Ok(endpoint) => {
                    let client = RpcClient::new(endpoint, ClientConfig { timeout: self.timeout, ..Default::default() });
                    match client.call(method, req.clone()).await {
                        Err(RpcError::Status(s)) if Code::TaskManagerIsNotLeader.is(&s) => {
                            last = Some(RpcError::Status(s))
                        }
                        Err(e @ RpcError::Unavailable { .. }) => last = Some(e),
                        other => return other,
                    }
                }
                Err(reason) => last = Some(RpcError::Unavailable { addr: "taskmanager".into(), reason }),
            }
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
        Err(last.expect("at least one attempt"))
    }
}

/// Stops every job on `table` that has not ended, with `reason`: what the nameserver does when the table is
/// dropped (a job on a dropped table could only fail after retrying for its whole budget). Best effort: without
/// an active TaskManager there is nothing running to stop.
pub async fn stop_jobs_on(tm: &TmClient, table: &str, reason: &str) -> Result<Vec<u64>, String> {
    use crate::proto::taskmanager as pb;
    let jobs = tm.call(super::rpc::ShowJobs, pb::ShowJobsRequest {}).await.map_err(|e| e.to_string())?.jobs;
    let mut stopped = Vec::new();
    for j in jobs.into_iter().filter(|j| j.table == table && !super::job::is_terminal(j.state())) {
        let req = pb::StopJobRequest { id: j.id, reason: reason.to_string() };
        match tm.call(super::rpc::StopJob, req).await {
            Ok(_) => stopped.push(j.id),
            Err(RpcError::Status(s)) if Code::JobIsFinished.is(&s) => {}
            Err(e) => return Err(format!("stop job {}: {e}", j.id)),
        }
    }
    Ok(stopped)
}
