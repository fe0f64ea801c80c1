//! Exactly once: no replica holds a row twice, and the TaskManager's imports (DESIGN 4.5) left every row of a
//! finished job in the table once.
//!
//! Every workload row is written once under a unique key, and an import must never write a row twice, so any key
//! an alive replica holds more than once is a violation. Of a finished import, every row must be present; a
//! row missing from a partition whose leader changed during the run is reported as allowed (an acknowledged
//! write in the un-replicated suffix of a failed leader, which the loss bound allows for workload writes too; the
//! TaskManager does not record the offsets the bound checker would need). A job still running after the cluster
//! converged is a violation: a job is never lost.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::input::{LeaderSpan, Observed, Pid};
use super::{KeySample, Violation, ViolationKind};

/// One TaskManager job on the table being checked, as the coordination service holds it at the end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobFinal {
    pub id: u64,
    pub job_type: String,
    /// `Submitted`, `Running`, `Finished`, `Failed` or `Killed`.
    pub state: String,
    pub error: String,
    /// The keys an import writes, with the partition each belongs to, when they are known (generated sources).
    pub keys: Vec<(String, Pid)>,
}

impl JobFinal {
    pub fn ended(&self) -> bool {
        matches!(self.state.as_str(), "Finished" | "Failed" | "Killed")
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobsReport {
    /// `id type state` of every job, for the detail text.
    pub jobs: Vec<String>,
    /// Keys some alive replica holds more than once, by partition.
    pub duplicated: BTreeMap<Pid, Vec<String>>,
    /// Rows of finished imports missing from a partition that changed leader (allowed).
    pub missing_allowed: usize,
    pub violations: Vec<Violation>,
}

impl JobsReport {
    /// Every key the jobs import: the set checker counts these as attempted.
    pub fn imported_keys(jobs: &[JobFinal]) -> BTreeSet<&str> {
        jobs.iter().flat_map(|j| j.keys.iter().map(|(k, _)| k.as_str())).collect()
    }
}

/// Runs the exactly-once checks over one table's final state and the jobs that wrote to it.
pub fn check_jobs(jobs: &[JobFinal], observed: &Observed, leaders: &[LeaderSpan]) -> JobsReport {
    let mut report = JobsReport {
        jobs: jobs.iter().map(|j| format!("job {} {} {}", j.id, j.job_type, j.state)).collect(),
        ..JobsReport::default()
    };
    for p in &observed.partitions {
        let mut dups: BTreeSet<&str> = BTreeSet::new();
        let mut holders = BTreeSet::new();
        for r in p.replicas.iter().filter(|r| r.is_alive) {
            if !r.duplicates.is_empty() {
                holders.insert(r.endpoint.clone());
                dups.extend(r.duplicates.iter().map(String::as_str));
            }
        }
        if !dups.is_empty() {
            report.violations.push(
                Violation::new(
                    ViolationKind::Duplicated,
                    Some(p.pid),
                    format!("{} rows are held more than once by an alive replica", dups.len()),
                )
                .with_keys(KeySample::of(dups.iter().copied()))
                .with_endpoints(holders)
                .with_window(Duration::ZERO, None),
            );
            report.duplicated.insert(p.pid, dups.iter().map(|k| k.to_string()).collect());
        }
    }
    let leader_changed = |pid: Pid| leaders.iter().filter(|s| s.pid == pid).count() > 1;
    for job in jobs {
        if !job.ended() {
            report.violations.push(Violation::new(
                ViolationKind::JobNotEnded,
                None,
                format!("job {} ({}) is still {} after the cluster converged", job.id, job.job_type, job.state),
            ));
            continue;
        }
        if job.state != "Finished" {
            continue;
        }
        let mut missing: BTreeMap<Pid, Vec<&str>> = BTreeMap::new();
        for (key, pid) in &job.keys {
            let Some(part) = observed.partition(*pid) else { continue };
            let readable: Vec<_> = part.replicas.iter().filter(|r| r.is_alive && r.rows.is_some()).collect();
            if readable.is_empty() {
                continue; // the set checker reports partitions that cannot be read
            }
            if !readable.iter().any(|r| r.rows.as_ref().is_some_and(|rows| rows.contains(key))) {
                missing.entry(*pid).or_default().push(key);
            }
        }
        for (pid, keys) in missing {
            if leader_changed(pid) {
                report.missing_allowed += keys.len();
                continue;
            }
            report.violations.push(
                Violation::new(
                    ViolationKind::ImportRowMissing,
                    Some(pid),
                    format!(
                        "{} rows of finished import job {} are missing and the leader never changed",
                        keys.len(),
                        job.id
                    ),
                )
                .with_keys(KeySample::of(keys))
                .with_window(Duration::ZERO, None),
            );
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::input::{PartitionFinal, ReplicaFinal};

    fn replica(ep: &str, rows: &[&str], dups: &[&str]) -> ReplicaFinal {
        ReplicaFinal {
            endpoint: ep.into(),
            is_leader: ep == "a",
            is_alive: true,
            offset: Some(rows.len() as u64),
            rows: Some(rows.iter().map(|r| r.to_string()).collect()),
            duplicates: dups.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn observed(replicas: Vec<ReplicaFinal>) -> Observed {
        Observed { partitions: vec![PartitionFinal { pid: 0, term_offset: vec![(1, 0)], replicas }], ops_stuck: vec![] }
    }

    fn import(state: &str, keys: &[&str]) -> JobFinal {
        JobFinal {
            id: 1,
            job_type: "ImportOnlineData".into(),
            state: state.into(),
            error: String::new(),
            keys: keys.iter().map(|k| (k.to_string(), 0)).collect(),
        }
    }

    fn span(from: u64) -> LeaderSpan {
        LeaderSpan { pid: 0, endpoint: "a".into(), from: Duration::from_secs(from), to: None }
    }

    fn kinds(r: &JobsReport) -> Vec<ViolationKind> {
        r.violations.iter().map(|v| v.kind).collect()
    }

    #[test]
    fn a_finished_import_with_every_row_once_passes() {
        let o = observed(vec![replica("a", &["k1", "k2"], &[]), replica("b", &["k1", "k2"], &[])]);
        let r = check_jobs(&[import("Finished", &["k1", "k2"])], &o, &[span(0)]);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
    }

    #[test]
    fn a_row_held_twice_is_a_violation() {
        let o = observed(vec![replica("a", &["k1", "k2"], &["k2"]), replica("b", &["k1", "k2"], &[])]);
        let r = check_jobs(&[import("Finished", &["k1", "k2"])], &o, &[span(0)]);
        assert_eq!(kinds(&r), [ViolationKind::Duplicated]);
        assert_eq!(r.violations[0].endpoints, ["a"]);
        assert_eq!(r.duplicated[&0], ["k2"]);
    }

    #[test]
    fn missing_rows_fail_unless_the_leader_changed() {
        let o = observed(vec![replica("a", &["k1"], &[])]);
        let r = check_jobs(&[import("Finished", &["k1", "k2"])], &o, &[span(0)]);
        assert_eq!(kinds(&r), [ViolationKind::ImportRowMissing]);
        assert_eq!(r.violations[0].keys.first, ["k2"]);
        let r = check_jobs(&[import("Finished", &["k1", "k2"])], &o, &[span(0), span(5)]);
        assert!(r.violations.is_empty());
        assert_eq!(r.missing_allowed, 1);
        // A failed or killed import may have written part of its rows.
        assert!(check_jobs(&[import("Failed", &["k1", "k2"])], &o, &[span(0)]).violations.is_empty());
    }

    #[test]
    fn a_job_still_running_is_a_violation() {
        let o = observed(vec![replica("a", &[], &[])]);
        let r = check_jobs(&[import("Running", &[])], &o, &[]);
        assert_eq!(kinds(&r), [ViolationKind::JobNotEnded]);
    }
}
