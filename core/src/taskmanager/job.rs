//! The decisions of the job engine, pure: job types and states, what a new active TaskManager does with each job
//! it finds, the next batch of an import, and which rows of a batch in doubt still need writing.
//!
//! The import's exactly-once rule: rows `[0, checkpoint)` are acknowledged; before a batch is written its end is
//! recorded as `pending_end`, so a TaskManager that takes over knows which rows may or may not have landed. It
//! reads those back from the table and writes only the copies that are missing ([`missing_rows`]).

use std::collections::BTreeMap;

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

/// Rows `[start, end)` of an import; `verify` says they may already be in the table (in part).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub start: u64,
    pub end: u64,
    pub verify: bool,
}

/// The next batch of an import with `batch_size` rows per batch, or `None` when every row is acknowledged.
/// A recorded pending range comes first, whole and verified, so a takeover never writes a row twice.
pub fn next_batch(job: &JobInfo, batch_size: u64) -> Option<Batch> {
    let (start, total) = (job.checkpoint, job.total);
    if start >= total {
        return None;
    }
    if job.pending_end > start {
        return Some(Batch { start, end: job.pending_end.min(total), verify: true });
    }
    Some(Batch { start, end: (start + batch_size.max(1)).min(total), verify: false })
}

/// The rows of `batch` to write, given how many copies of each distinct row the table holds now (`found`, by
/// row values). A row value that occurs `n` times in `rows[..batch.end]` must end up `n` times in the table; the
/// copies missing are written from the batch's own occurrences of it, the last ones first missing (the earlier
/// occurrences are the ones most likely to have landed). Returns indexes into `rows`, ascending.
pub fn missing_rows(rows: &[Vec<String>], batch: Batch, found: &BTreeMap<Vec<String>, usize>) -> Vec<u64> {
    let (start, end) = (batch.start as usize, (batch.end as usize).min(rows.len()));
    if start >= end {
        return Vec::new();
    }
    let mut in_batch: BTreeMap<&[String], Vec<u64>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate().take(end).skip(start) {
        in_batch.entry(r.as_slice()).or_default().push(i as u64);
    }
    let mut before: BTreeMap<&[String], usize> = BTreeMap::new();
    for r in &rows[..start] {
        if in_batch.contains_key(r.as_slice()) {
            *before.entry(r.as_slice()).or_default() += 1;
        }
    }
    let mut out = Vec::new();
    for (value, occurrences) in in_batch {
        let needed = before.get(value).copied().unwrap_or(0) + occurrences.len();
        let have = found.get(value).copied().unwrap_or(0);
        let missing = needed.saturating_sub(have).min(occurrences.len());
        out.extend_from_slice(&occurrences[occurrences.len() - missing..]);
    }
    out.sort_unstable();
    out
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
    fn batches_start_with_the_pending_range_verified() {
        assert_eq!(
            next_batch(&job(JobState::Running, 0, 0, 2500), 1000),
            Some(Batch { start: 0, end: 1000, verify: false })
        );
        assert_eq!(
            next_batch(&job(JobState::Running, 2000, 2000, 2500), 1000),
            Some(Batch { start: 2000, end: 2500, verify: false })
        );
        // A pending range is resumed whole, whatever the batch size now is.
        assert_eq!(
            next_batch(&job(JobState::Running, 1000, 2000, 2500), 10),
            Some(Batch { start: 1000, end: 2000, verify: true })
        );
        assert_eq!(next_batch(&job(JobState::Running, 2500, 2500, 2500), 1000), None);
        assert_eq!(next_batch(&job(JobState::Running, 0, 0, 0), 1000), None);
        // A zero batch size still makes progress.
        assert_eq!(next_batch(&job(JobState::Running, 0, 0, 5), 0), Some(Batch { start: 0, end: 1, verify: false }));
    }

    fn rows(vals: &[&str]) -> Vec<Vec<String>> {
        vals.iter().map(|v| vec![v.to_string()]).collect()
    }

    fn found(vals: &[(&str, usize)]) -> BTreeMap<Vec<String>, usize> {
        vals.iter().map(|(v, n)| (vec![v.to_string()], *n)).collect()
    }

    #[test]
    fn missing_rows_writes_only_what_is_not_there() {
        let r = rows(&["a", "b", "c", "d", "e"]);
        let b = Batch { start: 2, end: 5, verify: true };
        assert_eq!(missing_rows(&r, b, &found(&[])), vec![2, 3, 4]);
        assert_eq!(missing_rows(&r, b, &found(&[("c", 1), ("e", 1)])), vec![3]);
        assert_eq!(missing_rows(&r, b, &found(&[("c", 1), ("d", 1), ("e", 1)])), Vec::<u64>::new());
        // Extra copies in the table (from elsewhere) never make the import delete or skip other rows.
        assert_eq!(missing_rows(&r, b, &found(&[("c", 3)])), vec![3, 4]);
    }

    #[test]
    fn missing_rows_counts_duplicates_in_the_source() {
        // "x" occurs once before the batch and twice in it: the table must end with 3 copies.
        let r = rows(&["x", "y", "x", "x"]);
        let b = Batch { start: 2, end: 4, verify: true };
        assert_eq!(missing_rows(&r, b, &found(&[("x", 1)])), vec![2, 3]);
        assert_eq!(missing_rows(&r, b, &found(&[("x", 2)])), vec![3]);
        assert_eq!(missing_rows(&r, b, &found(&[("x", 3)])), Vec::<u64>::new());
        assert_eq!(missing_rows(&r, b, &found(&[("x", 7)])), Vec::<u64>::new());
    }

    #[test]
    fn missing_rows_of_an_empty_or_out_of_range_batch_is_empty() {
        let r = rows(&["a"]);
        assert!(missing_rows(&r, Batch { start: 1, end: 1, verify: true }, &found(&[])).is_empty());
        assert!(missing_rows(&r, Batch { start: 3, end: 9, verify: true }, &found(&[])).is_empty());
        assert_eq!(missing_rows(&r, Batch { start: 0, end: 9, verify: true }, &found(&[])), vec![0]);
    }
}
