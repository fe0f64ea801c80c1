//! The decisions of the job engine, pure: job types and states, what a new active TaskManager does with each job
//! it finds, the next batch of an import, and the request id each import row is written under.
//!
//! The import's exactly-once rule: rows `[0, checkpoint)` are acknowledged; before a batch is written its end is
//! recorded as `pending_end`, so a TaskManager that takes over knows which rows may or may not have landed. Every
//! row is an idempotent put under its own request id ([`import_request_id`]), so the new owner writes that range
//! again and the partitions drop the rows they hold, as they drop a late copy from the owner that lost the job.

use crate::proto::taskmanager::{JobInfo, JobState};

/// The job types, by OpenMLDB's `SHOW JOBS` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobType {
    /// Rows from a source into a table, through the leaders (OpenMLDB's online `LOAD DATA`).
    Import,
    /// Every row of a table into a CSV file on the TaskManager's data dir.
    Export,
    /// A snapshot of every partition of a table, made by its leader.
    Snapshot,
}

impl JobType {
    pub const ALL: [JobType; 3] = [JobType::Import, JobType::Export, JobType::Snapshot];

    pub fn name(self) -> &'static str {
        match self {
            JobType::Import => "ImportOnlineData",
            JobType::Export => "ExportOnlineData",
            JobType::Snapshot => "SnapshotTable",
        }
    }

    /// By its name, or by the word `submitjob` takes (`import`, `export`, `snapshot`).
    pub fn parse(s: &str) -> Option<JobType> {
        JobType::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(s) || t.word() == s.to_ascii_lowercase())
    }

    pub fn word(self) -> &'static str {
        match self {
            JobType::Import => "import",
            JobType::Export => "export",
            JobType::Snapshot => "snapshot",
        }
    }
}

pub fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Submitted => "Submitted",
        JobState::Running => "Running",
        JobState::Finished => "Finished",
        JobState::Failed => "Failed",
        JobState::Killed => "Killed",
    }
}

pub fn is_terminal(state: JobState) -> bool {
    matches!(state, JobState::Finished | JobState::Failed | JobState::Killed)
}

/// What a TaskManager that just became active does with a job it finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Takeover {
    /// It ended: nothing to do.
    Leave,
    /// Run it (again) from its checkpoint.
    Resume,
    /// Mark it failed, with the reason.
    Fail(String),
}

/// The takeover decision for one job: ended jobs stay, a job of a type this build does not know or one that
/// every owner so far died running (`max_attempts` starts) fails with the reason, anything else resumes.
pub fn on_takeover(job: &JobInfo, max_attempts: u32) -> Takeover {
    if is_terminal(job.state()) {
        return Takeover::Leave;
    }
    if JobType::parse(&job.job_type).is_none() {
        return Takeover::Fail(format!("unknown job type {:?}; this TaskManager cannot run it", job.job_type));
    }
    if job.attempts >= max_attempts {
        return Takeover::Fail(format!(
            "started {} times by TaskManagers that stopped before it ended (limit {max_attempts}); last owner {}",
            job.attempts, job.owner
        ));
    }
    Takeover::Resume
}

/// Rows `[start, end)` of an import; `in_doubt` says some of them may already be in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub start: u64,
    pub end: u64,
    pub in_doubt: bool,
}

/// The next batch of an import with `batch_size` rows per batch, or `None` when every row is acknowledged.
/// A recorded pending range comes first, whole and marked in doubt (some of its rows may have landed).
pub fn next_batch(job: &JobInfo, batch_size: u64) -> Option<Batch> {
    let (start, total) = (job.checkpoint, job.total);
    if start >= total {
        return None;
    }
    if job.pending_end > start {
        return Some(Batch { start, end: job.pending_end.min(total), in_doubt: true });
    }
    Some(Batch { start, end: (start + batch_size.max(1)).min(total), in_doubt: false })
}

/// The request id of source row `row` of import job `job`: its puts are idempotent under it, so however often the
/// row is sent (a retry, a takeover's pending range, a late copy from an owner that lost the job) it lands once.
/// Unique per cluster: job ids are never reused.
pub fn import_request_id(job: u64, row: u64) -> String {
    format!("import:{job}:{row}")
}

/// `done/total` and the state, as `showjobs` prints progress.
pub fn progress(job: &JobInfo) -> String {
    format!("{}/{}", job.checkpoint.min(job.total), job.total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: JobState, checkpoint: u64, pending_end: u64, total: u64) -> JobInfo {
        let mut j =
            JobInfo { job_type: "ImportOnlineData".into(), checkpoint, pending_end, total, ..Default::default() };
        j.set_state(state);
        j
    }

    #[test]
    fn job_types_parse_by_name_or_word() {
        for t in JobType::ALL {
            assert_eq!(JobType::parse(t.name()), Some(t));
            assert_eq!(JobType::parse(t.word()), Some(t));
        }
        assert_eq!(JobType::parse("IMPORT"), Some(JobType::Import));
        assert_eq!(JobType::parse("RunBatchSql"), None);
    }

    #[test]
    fn takeover_leaves_ended_jobs_resumes_others_and_fails_the_unrunnable() {
        for s in [JobState::Finished, JobState::Failed, JobState::Killed] {
            assert_eq!(on_takeover(&job(s, 0, 0, 10), 5), Takeover::Leave);
        }
        for s in [JobState::Submitted, JobState::Running] {
            assert_eq!(on_takeover(&job(s, 3, 5, 10), 5), Takeover::Resume);
        }
        let mut j = job(JobState::Running, 0, 0, 10);
        j.attempts = 5;
        j.owner = "h:1".into();
        assert!(matches!(on_takeover(&j, 5), Takeover::Fail(r) if r.contains("5 times") && r.contains("h:1")));
        j.attempts = 0;
        j.job_type = "RunBatchSql".into();
        assert!(matches!(on_takeover(&j, 5), Takeover::Fail(r) if r.contains("unknown job type")));
    }

    #[test]
    fn batches_start_with_the_pending_range_in_doubt() {
        assert_eq!(
            next_batch(&job(JobState::Running, 0, 0, 2500), 1000),
            Some(Batch { start: 0, end: 1000, in_doubt: false })
        );
        assert_eq!(
            next_batch(&job(JobState::Running, 2000, 2000, 2500), 1000),
            Some(Batch { start: 2000, end: 2500, in_doubt: false })
        );
        // A pending range is resumed whole, whatever the batch size now is.
        assert_eq!(
            next_batch(&job(JobState::Running, 1000, 2000, 2500), 10),
            Some(Batch { start: 1000, end: 2000, in_doubt: true })
        );
        assert_eq!(next_batch(&job(JobState::Running, 2500, 2500, 2500), 1000), None);
        assert_eq!(next_batch(&job(JobState::Running, 0, 0, 0), 1000), None);
        // A zero batch size still makes progress.
        assert_eq!(next_batch(&job(JobState::Running, 0, 0, 5), 0), Some(Batch { start: 0, end: 1, in_doubt: false }));
    }

    #[test]
    fn request_ids_name_one_row_of_one_job() {
        let ids: std::collections::BTreeSet<String> =
            (1..=3).flat_map(|j| (0..100).map(move |r| import_request_id(j, r))).collect();
        assert_eq!(ids.len(), 300);
        // The separator keeps job and row apart.
        assert_ne!(import_request_id(1, 11), import_request_id(11, 1));
    }
}
