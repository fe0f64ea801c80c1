//! Jobs in the coordination service: `<root>/taskmanager/jobs/job_<10 digits>`, one persistent sequential node per
//! job (the job id is its suffix + 1, so ids start at 1 as OpenMLDB's do), the encoded [`JobInfo`] as its data. Every write after creation names the
//! version its writer last saw, so a TaskManager that lost a job to another one cannot overwrite it.

use prost::Message;

use crate::coord::{CoordError, Coordinator, CreateMode, Layout};
use crate::proto::taskmanager::JobInfo;

const PREFIX: &str = "job_";

/// A job and the version of its node as its owner last wrote or read it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobCell {
    pub info: JobInfo,
    pub version: i32,
}

/// Why a job write failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// Someone else wrote the job since: this TaskManager no longer owns it.
    #[error("job {0} was changed by another TaskManager")]
    Fenced(u64),
    #[error("job node {0} holds no valid job: {1}")]
    Corrupt(String, String),
    #[error(transparent)]
    Coord(#[from] CoordError),
}

pub fn jobs_dir(layout: &Layout) -> String {
    format!("{}/jobs", layout.taskmanager())
}

/// The node of job `id` (there is none for id 0).
pub fn job_path(layout: &Layout, id: u64) -> String {
    format!("{}/{PREFIX}{:010}", jobs_dir(layout), id.saturating_sub(1))
}

/// The id of a job node's name, `job_0000000006` → 7.
pub fn job_id(name: &str) -> Option<u64> {
    name.strip_prefix(PREFIX)?.parse::<u64>().ok()?.checked_add(1)
}

pub struct JobStore<'a> {
    pub coord: &'a dyn Coordinator,
    pub layout: &'a Layout,
}

impl JobStore<'_> {
    /// Persists a new job and returns it with its id: the job exists before anyone is told its id.
    pub async fn create(&self, mut info: JobInfo) -> Result<JobCell, StoreError> {
        let prefix = format!("{}/{PREFIX}", jobs_dir(self.layout));
        let path = self.coord.create(&prefix, &info.encode_to_vec(), CreateMode::PersistentSequential).await?;
        let name = path.rsplit('/').next().unwrap_or_default();
        info.id = job_id(name).ok_or_else(|| StoreError::Corrupt(path.clone(), "no job id in the name".into()))?;
        Ok(JobCell { info, version: 0 })
    }

    pub async fn get(&self, id: u64) -> Result<JobCell, StoreError> {
        let path = job_path(self.layout, id);
        if id == 0 {
            return Err(StoreError::Coord(CoordError::NoNode(path)));
        }
        let (data, stat) = self.coord.get(&path).await?;
        let mut info = JobInfo::decode(data.as_slice()).map_err(|e| StoreError::Corrupt(path, e.to_string()))?;
        info.id = id;
        Ok(JobCell { info, version: stat.version })
    }

    /// Every job, by id. A node that does not decode is reported, not skipped silently.
    pub async fn load_all(&self) -> Result<Vec<Result<JobCell, StoreError>>, CoordError> {
        let mut out = Vec::new();
        for name in self.coord.children(&jobs_dir(self.layout)).await? {
            let Some(id) = job_id(&name) else { continue };
            match self.get(id).await {
                Err(StoreError::Coord(CoordError::NoNode(_))) => {}
                Err(StoreError::Coord(e)) => return Err(e),
                other => out.push(other),
            }
        }
        Ok(out)
    }

    /// Writes the cell's job if its node still has the cell's version, and moves the cell to the new version.
    pub async fn update(&self, cell: &mut JobCell) -> Result<(), StoreError> {
        let path = job_path(self.layout, cell.info.id);
        match self.coord.set(&path, &cell.info.encode_to_vec(), Some(cell.version)).await {
            Ok(stat) => {
                cell.version = stat.version;
                Ok(())
            }
            Err(e) if e.is_bad_version() => Err(StoreError::Fenced(cell.info.id)),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_come_from_node_names() {
        let l = Layout::new("/openmldb");
        assert_eq!(job_path(&l, 7), "/openmldb/taskmanager/jobs/job_0000000006");
        assert_eq!(job_id("job_0000000006"), Some(7));
        assert_eq!(job_id("job_0000000000"), Some(1));
        assert_eq!(job_id("job_x"), None);
        assert_eq!(job_id("leader"), None);
    }
}
