//! The acknowledged-write oracle, Jepsen's set checker (DESIGN 8).
//!
//! After the scenario healed, every row is read from every alive replica. A partition's *present* set is the union
//! over its alive replicas that could be read: a row any alive replica serves is there (replicas that disagree are
//! the convergence checker's business, which reports the per-replica differences). Replicas the nameserver marks
//! not alive are left out: they serve nothing and will be rebuilt from the leader.
//!
//! - `lost` = acknowledged − present (judged by [`super::bound`]);
//! - `unexpected` = present − attempted: always a violation;
//! - `recovered` = present ∩ (attempted − acknowledged): allowed, a timed-out or refused write may have landed.
//!
//! Also a violation: a row present in a partition other than the one it was written to, and a partition with
//! acknowledged writes of which no alive replica could be read (its writes cannot be verified).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::input::{Observed, Pid, WriteOutcome, WriteRecord};
use super::{KeySample, Violation, ViolationKind};

/// An acknowledged write that is not present in its partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostWrite {
    pub row: u64,
    pub key: String,
    pub pid: Pid,
    pub term: u64,
    pub offset: u64,
    /// The leader that acknowledged it.
    pub endpoint: String,
    pub attempted_at: Duration,
    pub acked_at: Duration,
}

/// A present row nobody attempted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unexpected {
    pub key: String,
    pub pid: Pid,
    /// The alive replicas that hold it.
    pub endpoints: Vec<String>,
}

/// A row present in a partition other than the one it was written to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Misplaced {
    pub row: u64,
    pub key: String,
    pub written_to: Pid,
    pub found_in: Pid,
}

/// What the set checker found for one table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetReport {
    /// Distinct rows attempted, acknowledged, refused, and of unknown outcome (never acknowledged).
    pub attempted: usize,
    pub acked: usize,
    pub failed: usize,
    pub unknown: usize,
    /// Distinct keys present over every readable partition.
    pub present: usize,
    /// Sorted by partition, offset and row.
    pub lost: Vec<LostWrite>,
    pub unexpected: Vec<Unexpected>,
    /// Keys present whose write was never acknowledged (allowed).
    pub recovered: Vec<String>,
    pub misplaced: Vec<Misplaced>,
    /// Acknowledged writes per partition of which no alive replica could be read.
    pub unverified: BTreeMap<Pid, usize>,
    pub violations: Vec<Violation>,
}

/// Every record of one row (a retried row counts once).
struct Row<'a> {
    first: &'a WriteRecord,
    /// The earliest acknowledgement of any attempt.
    acked: Option<&'a WriteRecord>,
    /// Some attempt ended with an unknown outcome.
    unknown: bool,
}

fn by_key(writes: &[WriteRecord]) -> BTreeMap<&str, Row<'_>> {
    let mut rows: BTreeMap<&str, Row<'_>> = BTreeMap::new();
    for w in writes {
        let row = rows.entry(w.key.as_str()).or_insert(Row { first: w, acked: None, unknown: false });
        row.unknown |= matches!(w.outcome, WriteOutcome::Unknown { .. });
        if let Some(ack) = w.ack() {
            let earlier = row.acked.and_then(|a| a.ack()).is_some_and(|prev| prev.at <= ack.at);
            if !earlier {
                row.acked = Some(w);
            }
        }
    }
    rows
}

/// The present rows of each partition that has an alive, readable replica, and which alive replicas hold each.
fn present(observed: &Observed) -> BTreeMap<Pid, BTreeMap<&str, Vec<&str>>> {
    let mut out = BTreeMap::new();
    for p in &observed.partitions {
        let readable: Vec<_> = p.replicas.iter().filter(|r| r.is_alive && r.rows.is_some()).collect();
        if readable.is_empty() {
            continue;
        }
        let mut keys: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for r in readable {
            for k in r.rows.iter().flatten() {
                keys.entry(k.as_str()).or_default().push(r.endpoint.as_str());
            }
        }
        out.insert(p.pid, keys);
    }
    out
}

/// Runs the set checker over one table's writes and final state.
pub fn check_set(writes: &[WriteRecord], observed: &Observed) -> SetReport {
    let rows = by_key(writes);
    let present = present(observed);
    let mut report = SetReport { attempted: rows.len(), ..SetReport::default() };
    for row in rows.values() {
        match row.acked {
            Some(_) => report.acked += 1,
            None if row.unknown => report.unknown += 1,
            None => report.failed += 1,
        }
    }

    // Lost and unverified: acknowledged rows against their own partition.
    for (key, row) in &rows {
        let Some(w) = row.acked else { continue };
        let ack = w.ack().expect("acked record");
        match present.get(&ack.pid) {
            None => *report.unverified.entry(ack.pid).or_default() += 1,
            Some(keys) if keys.contains_key(key) => {}
            Some(_) => report.lost.push(LostWrite {
                row: w.row,
                key: key.to_string(),
                pid: ack.pid,
                term: ack.term,
                offset: ack.offset,
                endpoint: ack.endpoint.to_string(),
                attempted_at: w.attempted_at,
                acked_at: ack.at,
            }),
        }
    }
    report.lost.sort_by_key(|l| (l.pid, l.offset, l.row));

    // Present rows: unexpected, misplaced, recovered.
    let mut all_present: BTreeSet<&str> = BTreeSet::new();
    for (pid, keys) in &present {
        for (key, holders) in keys {
            all_present.insert(key);
            let Some(row) = rows.get(key) else {
                report.unexpected.push(Unexpected {
                    key: key.to_string(),
                    pid: *pid,
                    endpoints: holders.iter().map(|e| e.to_string()).collect(),
                });
                continue;
            };
            let record = row.acked.unwrap_or(row.first);
            if let Some(written_to) = record.pid()
                && written_to != *pid
            {
                report.misplaced.push(Misplaced { row: record.row, key: key.to_string(), written_to, found_in: *pid });
            }
        }
    }
    report.present = all_present.len();
    report.recovered = all_present
        .iter()
        .filter(|k| rows.get(**k).is_some_and(|row| row.acked.is_none()))
        .map(|k| k.to_string())
        .collect();

    report.violations = violations(&report, writes);
    report
}

fn violations(report: &SetReport, writes: &[WriteRecord]) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut unexpected: BTreeMap<Pid, Vec<&Unexpected>> = BTreeMap::new();
    for u in &report.unexpected {
        unexpected.entry(u.pid).or_default().push(u);
    }
    for (pid, us) in unexpected {
        out.push(
            Violation::new(
                ViolationKind::Unexpected,
                Some(pid),
                format!("{} rows present that no writer attempted", us.len()),
            )
            .with_keys(KeySample::of(us.iter().map(|u| u.key.as_str())))
            .with_endpoints(us.iter().flat_map(|u| u.endpoints.iter().cloned()))
            .with_window(Duration::ZERO, None),
        );
    }
    let mut misplaced: BTreeMap<Pid, Vec<&Misplaced>> = BTreeMap::new();
    for m in &report.misplaced {
        misplaced.entry(m.found_in).or_default().push(m);
    }
    for (pid, ms) in misplaced {
        let from: BTreeSet<Pid> = ms.iter().map(|m| m.written_to).collect();
        let first_attempt = writes
            .iter()
            .filter(|w| ms.iter().any(|m| m.key == w.key))
            .map(|w| w.attempted_at)
            .min()
            .unwrap_or_default();
        out.push(
            Violation::new(
                ViolationKind::Misplaced,
                Some(pid),
                format!("{} rows present here that were written to partition(s) {from:?}", ms.len()),
            )
            .with_keys(KeySample::of(ms.iter().map(|m| m.key.as_str())))
            .with_window(first_attempt, None),
        );
    }
    for (pid, n) in &report.unverified {
        out.push(
            Violation::new(
                ViolationKind::Unverified,
                Some(*pid),
                format!("no alive replica could be read: {n} acknowledged writes cannot be verified"),
            )
            .with_window(Duration::ZERO, None),
        );
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::check::input::{PartitionFinal, ReplicaFinal};

    pub fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    pub fn key(row: u64) -> String {
        format!("k{row:04}")
    }

    pub fn acked(row: u64, pid: Pid, term: u64, offset: u64, at_ms: u64) -> WriteRecord {
        WriteRecord {
            row,
            key: key(row),
            pid: Some(pid),
            attempted_at: ms(at_ms.saturating_sub(2)),
            outcome: WriteOutcome::Acked { pid, term, offset, endpoint: "t1".into(), at: ms(at_ms) },
        }
    }

    pub fn failed(row: u64, pid: Pid, at_ms: u64) -> WriteRecord {
        WriteRecord {
            row,
            key: key(row),
            pid: Some(pid),
            attempted_at: ms(at_ms),
            outcome: WriteOutcome::Failed { reason: "no leader".into(), at: ms(at_ms) },
        }
    }

    pub fn unknown(row: u64, pid: Pid, at_ms: u64) -> WriteRecord {
        WriteRecord {
            row,
            key: key(row),
            pid: Some(pid),
            attempted_at: ms(at_ms),
            outcome: WriteOutcome::Unknown { reason: "timeout".into(), at: ms(at_ms) },
        }
    }

    pub fn replica(endpoint: &str, leader: bool, rows: &[u64]) -> ReplicaFinal {
        ReplicaFinal {
            endpoint: endpoint.into(),
            is_leader: leader,
            is_alive: true,
            offset: Some(rows.len() as u64),
            rows: Some(rows.iter().map(|r| key(*r)).collect()),
            duplicates: vec![],
        }
    }

    /// Three identical replicas t1 (leader), t2, t3 holding `rows`.
    pub fn partition(pid: Pid, terms: &[(u64, u64)], rows: &[u64]) -> PartitionFinal {
        PartitionFinal {
            pid,
            term_offset: terms.to_vec(),
            replicas: vec![replica("t1", true, rows), replica("t2", false, rows), replica("t3", false, rows)],
        }
    }

    #[test]
    fn all_acknowledged_rows_present_is_clean() {
        let writes: Vec<_> = (1..=4).map(|r| acked(r, 0, 1, r, r * 10)).collect();
        let observed = Observed { partitions: vec![partition(0, &[(1, 0)], &[1, 2, 3, 4])], ops_stuck: vec![] };
        let r = check_set(&writes, &observed);
        assert_eq!((r.attempted, r.acked, r.failed, r.unknown, r.present), (4, 4, 0, 0, 4));
        assert!(r.lost.is_empty() && r.unexpected.is_empty() && r.recovered.is_empty());
        assert!(r.violations.is_empty(), "{:?}", r.violations);
    }

    #[test]
    fn lost_is_acknowledged_minus_present() {
        let writes = vec![acked(1, 0, 1, 1, 10), acked(2, 0, 1, 2, 20), acked(3, 0, 1, 3, 30)];
        let observed = Observed { partitions: vec![partition(0, &[(1, 0)], &[1])], ops_stuck: vec![] };
        let r = check_set(&writes, &observed);
        assert_eq!(r.lost.iter().map(|l| l.row).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(r.lost[0].term, 1);
        assert_eq!(r.lost[0].offset, 2);
        assert_eq!(r.lost[0].acked_at, ms(20));
        // Loss itself is the loss bound's to judge.
        assert!(r.violations.is_empty());
    }

    #[test]
    fn present_is_the_union_over_alive_replicas_only() {
        let writes = vec![acked(1, 0, 1, 1, 10), acked(2, 0, 1, 2, 20)];
        let mut p = partition(0, &[(1, 0)], &[1]);
        p.replicas[2] = replica("t3", false, &[1, 2]);
        let observed = Observed { partitions: vec![p.clone()], ops_stuck: vec![] };
        assert!(check_set(&writes, &observed).lost.is_empty(), "one alive replica holding row 2 is enough");
        p.replicas[2].is_alive = false;
        let observed = Observed { partitions: vec![p], ops_stuck: vec![] };
        assert_eq!(check_set(&writes, &observed).lost.len(), 1, "a dead replica's rows do not count");
    }

    #[test]
    fn an_unexpected_row_is_a_violation() {
        let writes = vec![acked(1, 0, 1, 1, 10)];
        let observed = Observed { partitions: vec![partition(0, &[(1, 0)], &[1, 99])], ops_stuck: vec![] };
        let r = check_set(&writes, &observed);
        assert_eq!(r.unexpected.len(), 1);
        assert_eq!(r.unexpected[0].key, key(99));
        assert_eq!(r.unexpected[0].endpoints, vec!["t1", "t2", "t3"]);
        assert_eq!(r.violations.len(), 1);
        let v = &r.violations[0];
        assert_eq!((v.kind, v.pid), (ViolationKind::Unexpected, Some(0)));
        assert_eq!(v.keys.first, vec![key(99)]);
        assert!(v.to_string().contains("no writer attempted"), "{v}");
    }

    #[test]
    fn refused_and_timed_out_rows_that_appear_are_recovered_not_violations() {
        let writes = vec![acked(1, 0, 1, 1, 10), failed(2, 0, 20), unknown(3, 0, 30), unknown(4, 0, 40)];
        let observed = Observed { partitions: vec![partition(0, &[(1, 0)], &[1, 2, 3])], ops_stuck: vec![] };
        let r = check_set(&writes, &observed);
        assert_eq!((r.attempted, r.acked, r.failed, r.unknown), (4, 1, 1, 2));
        assert_eq!(r.recovered, vec![key(2), key(3)]);
        assert!(r.lost.is_empty() && r.violations.is_empty());
    }

    #[test]
    fn a_retried_row_counts_once_and_is_acked_if_any_attempt_was() {
        let writes = vec![unknown(1, 0, 5), acked(1, 0, 1, 1, 10)];
        let observed = Observed { partitions: vec![partition(0, &[(1, 0)], &[])], ops_stuck: vec![] };
        let r = check_set(&writes, &observed);
        assert_eq!((r.attempted, r.acked, r.unknown), (1, 1, 0));
        assert_eq!(r.lost.len(), 1);
    }

    #[test]
    fn a_row_in_the_wrong_partition_is_misplaced_and_lost_from_its_own() {
        let writes = vec![acked(1, 0, 1, 1, 10), acked(2, 1, 1, 1, 20)];
        let observed = Observed {
            partitions: vec![partition(0, &[(1, 0)], &[1, 2]), partition(1, &[(1, 0)], &[])],
            ops_stuck: vec![],
        };
        let r = check_set(&writes, &observed);
        assert_eq!(r.misplaced, vec![Misplaced { row: 2, key: key(2), written_to: 1, found_in: 0 }]);
        assert_eq!(r.lost.iter().map(|l| (l.row, l.pid)).collect::<Vec<_>>(), vec![(2, 1)]);
        assert_eq!(r.violations.len(), 1);
        assert_eq!(r.violations[0].kind, ViolationKind::Misplaced);
    }

    #[test]
    fn an_unreadable_partition_leaves_its_writes_unverified() {
        let writes = vec![acked(1, 0, 1, 1, 10), acked(2, 0, 1, 2, 20)];
        let mut p = partition(0, &[(1, 0)], &[1, 2]);
        for r in &mut p.replicas {
            r.rows = None;
        }
        let r = check_set(&writes, &Observed { partitions: vec![p], ops_stuck: vec![] });
        assert!(r.lost.is_empty());
        assert_eq!(r.unverified.get(&0), Some(&2));
        assert_eq!(r.violations.len(), 1);
        assert_eq!(r.violations[0].kind, ViolationKind::Unverified);
        let r = check_set(&writes, &Observed::default());
        assert_eq!(r.unverified.get(&0), Some(&2), "a missing partition cannot be verified either");
    }
}
