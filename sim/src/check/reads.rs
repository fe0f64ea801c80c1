//! The read checks (DESIGN 8; Jepsen's set-full and stale-read ideas): every read a reader made, against the
//! writes and the replicas' records.
//!
//! - **Unexpected.** A read that returns a row no writer attempted, or values other than the ones written for
//!   that key (each key is written once, with values the runner knows: `expected`).
//! - **Missed.** A read that started after a write of its key was acknowledged, answered by the partition's
//!   leader in a term at least the write's, that does not see it. Excused by name when the write was lost within
//!   the loss bound (its term was overwritten; a read of the new term cannot see it).
//! - **Stale.** A read answered as leader after another replica had taken the lead in a later term and the
//!   answering replica's coordination session had expired: a deposed leader serving reads.
//!
//! Reads that failed (an error, a timeout) are counted and never judged: an error is an honest answer.

use std::collections::{BTreeMap, BTreeSet};

use super::acks::{leader_since, newer_leader_before};
use super::input::{FaultEvent, Pid, ReadOutcome, ReadRecord, ReplicaEvents, WriteRecord};
use super::replicas::{earliest_service, holds_at};
use super::{KeySample, Violation, ViolationKind, secs};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadsReport {
    pub attempted: usize,
    /// Reads a replica answered.
    pub served: usize,
    /// Reads that ended in an error or a timeout.
    pub failed: usize,
    /// Served reads the checks could judge (the key was written and acknowledged before the read started, or
    /// a row came back).
    pub checked: usize,
    /// Missed reads excused because the write was lost within the bound.
    pub excused_lost: usize,
    /// Missed reads excused because a takeover between the write's term and the read's had overwritten the write
    /// (it may have come back later, when a recovery chose an older log: the read's leader never had it).
    pub excused_overwritten: usize,
    /// Per partition: `(checked, broke a check)`.
    pub per_pid: BTreeMap<Pid, (usize, usize)>,
    pub violations: Vec<Violation>,
}

impl ReadsReport {
    /// Reads that broke a check.
    pub fn bad(&self) -> usize {
        self.violations.iter().map(|v| v.keys.count.max(1)).sum()
    }
}

/// Judges the reads of one table. `expected(key)` gives the values a writer wrote for the key (`None`: no writer
/// attempted it); `lost_allowed` holds the keys of acknowledged writes lost within the bound.
pub fn check_reads(
    reads: &[ReadRecord],
    writes: &[WriteRecord],
    expected: &dyn Fn(&str) -> Option<Vec<String>>,
    lost_allowed: &BTreeSet<String>,
    faults: &[FaultEvent],
    ev: ReplicaEvents<'_>,
) -> ReadsReport {
    let mut report = ReadsReport { attempted: reads.len(), ..ReadsReport::default() };
    let by_key: BTreeMap<&str, &WriteRecord> = writes.iter().map(|w| (w.key.as_str(), w)).collect();
    let mut unexpected: BTreeMap<Pid, Vec<&ReadRecord>> = BTreeMap::new();
    let mut missed: BTreeMap<Pid, Vec<&ReadRecord>> = BTreeMap::new();
    // For the message: the first missed read's server and the write it missed.
    let mut missed_first: BTreeMap<Pid, String> = BTreeMap::new();
    // By (pid, endpoint, term): each stale read and what made it stale.
    type Stale<'r> = Vec<(&'r ReadRecord, String)>;
    let mut stale: BTreeMap<(Pid, String, u64), Stale<'_>> = BTreeMap::new();
    for r in reads {
        let ReadOutcome::Served { pid, endpoint, term, leader, values } = &r.outcome else {
            report.failed += 1;
            continue;
        };
        report.served += 1;
        let w = by_key.get(r.key.as_str()).copied();
        let acked_before = w.and_then(|w| w.ack()).filter(|a| a.at < r.start && a.pid == *pid);
        if values.is_some() || acked_before.is_some() {
            report.checked += 1;
            report.per_pid.entry(*pid).or_default().0 += 1;
        }
        if let Some(v) = values
            && (w.is_none() || expected(&r.key).as_ref() != Some(v))
        {
            unexpected.entry(*pid).or_default().push(r);
        }
        if values.is_none()
            && *leader
            && let Some(a) = acked_before
            && *term >= a.term
        {
            if lost_allowed.contains(&r.key) {
                report.excused_lost += 1;
            } else if overwritten_before(ev, a.pid, a.endpoint, a.term, a.offset, *term) {
                report.excused_overwritten += 1;
            } else {
                missed.entry(*pid).or_default().push(r);
                missed_first.entry(*pid).or_insert_with(|| {
                    format!(
                        "key {} read at {} from {endpoint} as leader of term {term}; written in term {} at offset {} \
                         by {}, acknowledged at {}",
                        r.key,
                        secs(r.start),
                        a.term,
                        a.offset,
                        a.endpoint,
                        secs(a.at)
                    )
                });
            }
        }
        if *leader {
            let served = earliest_service(endpoint, faults, r.start, r.end);
            if let Some((began, by, new_term)) = newer_leader_before(ev, *pid, endpoint, *term, served)
                && let Some(expired) = ev.expired_after(endpoint, leader_since(ev, *pid, endpoint, *term))
                && expired <= served
            {
                let note = format!(
                    "{by} took the lead in term {new_term} at {} and {endpoint}'s session expired at {}",
                    secs(began),
                    secs(expired)
                );
                stale.entry((*pid, endpoint.clone(), *term)).or_default().push((r, note));
            }
        }
    }
    for (pid, n) in unexpected.iter().map(|(p, rs)| (*p, rs.len())).chain(missed.iter().map(|(p, rs)| (*p, rs.len()))) {
        report.per_pid.entry(pid).or_default().1 += n;
    }
    for ((pid, _, _), rs) in &stale {
        report.per_pid.entry(*pid).or_default().1 += rs.len();
    }
    for (pid, rs) in unexpected {
        let why = format!(
            "{} reads returned a row no writer attempted or other values than written (first: key {} at {})",
            rs.len(),
            rs[0].key,
            secs(rs[0].start)
        );
        report.violations.push(read_violation(ViolationKind::ReadUnexpected, pid, &rs, why));
    }
    for (pid, rs) in missed {
        let why = format!(
            "{} reads by the partition's leader, in a term at least the write's, missed a write acknowledged before \
             they started, and not lost within the bound (first: {})",
            rs.len(),
            missed_first.get(&pid).map(String::as_str).unwrap_or_default()
        );
        report.violations.push(read_violation(ViolationKind::ReadMissed, pid, &rs, why));
    }
    for ((pid, endpoint, term), rs) in stale {
        let why = format!(
            "{} reads answered by {endpoint} as leader of term {term} after {} (first at {}): stale reads from a \
             deposed leader",
            rs.len(),
            rs[0].1,
            secs(rs[0].0.start)
        );
        let only: Vec<&ReadRecord> = rs.iter().map(|r| r.0).collect();
        let v = read_violation(ViolationKind::StaleRead, pid, &only, why).with_terms([term]);
        report.violations.push(v.with_endpoints([endpoint]));
    }
    report
}

/// Whether a replica took the lead of `pid` in a term after the write's and at most `read_term` without the
/// write (`term`, `offset`) acknowledged by `endpoint` in its log: the read's leader descends from a log that
/// never had it.
fn overwritten_before(ev: ReplicaEvents<'_>, pid: Pid, endpoint: &str, term: u64, offset: u64, read_term: u64) -> bool {
    ev.leader_starts(pid).into_iter().any(|(at, ep, t, last)| {
        t > term && t <= read_term && {
            let held = if ep == endpoint { last >= offset } else { holds_at(pid, ep, ev, term, offset, at) };
            !held
        }
    })
}

fn read_violation(kind: ViolationKind, pid: Pid, rs: &[&ReadRecord], why: String) -> Violation {
    let from = rs.iter().map(|r| r.start).min().unwrap_or_default();
    let to = rs.iter().map(|r| r.end).max();
    Violation::new(kind, Some(pid), why)
        .with_keys(KeySample::of(rs.iter().map(|r| r.key.as_str())))
        .with_window(from, to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::input::{Position, SessionExpiry, WriteOutcome};
    use crate::check::set::tests::ms;

    fn write(key: &str, term: u64, at: u64) -> WriteRecord {
        WriteRecord {
            row: 0,
            key: key.into(),
            pid: Some(0),
            attempted_at: ms(at - 5),
            outcome: WriteOutcome::Acked { pid: 0, term, offset: 1, endpoint: "t1".into(), at: ms(at) },
        }
    }

    fn read(key: &str, start: u64, ep: &str, term: u64, leader: bool, found: bool) -> ReadRecord {
        ReadRecord {
            key: key.into(),
            pid: Some(0),
            start: ms(start),
            end: ms(start + 5),
            outcome: ReadOutcome::Served {
                pid: 0,
                endpoint: ep.into(),
                term,
                leader,
                values: found.then(|| vec![key.to_string(), "v".into()]),
            },
        }
    }

    fn expected(key: &str) -> Option<Vec<String>> {
        key.starts_with('k').then(|| vec![key.to_string(), "v".into()])
    }

    #[test]
    fn a_row_never_written_or_with_other_values_is_unexpected() {
        let writes = vec![write("k1", 1, 100)];
        let mut odd = read("k1", 200, "t1", 1, true, true);
        if let ReadOutcome::Served { values, .. } = &mut odd.outcome {
            *values = Some(vec!["k1".into(), "other".into()]);
        }
        let reads = vec![read("k1", 200, "t1", 1, true, true), read("x9", 200, "t1", 1, true, true), odd];
        let r = check_reads(&reads, &writes, &expected, &BTreeSet::new(), &[], ReplicaEvents::default());
        assert_eq!((r.served, r.checked), (3, 3));
        assert_eq!(r.violations.len(), 1);
        assert_eq!(r.violations[0].kind, ViolationKind::ReadUnexpected);
        assert_eq!(r.violations[0].keys.count, 2);
    }

    #[test]
    fn a_leader_read_after_the_ack_must_see_the_write_unless_it_was_lost_within_the_bound() {
        let writes = vec![write("k1", 2, 100)];
        let reads = vec![
            read("k1", 50, "t1", 2, true, false),   // started before the ack
            read("k1", 200, "t2", 2, false, false), // a follower
            read("k1", 200, "t1", 1, true, false),  // an older term
            read("k1", 200, "t1", 3, true, false),  // missed
        ];
        let r = check_reads(&reads, &writes, &expected, &BTreeSet::new(), &[], ReplicaEvents::default());
        assert_eq!(r.violations.len(), 1, "{:?}", r.violations);
        assert_eq!(r.violations[0].kind, ViolationKind::ReadMissed);
        let lost: BTreeSet<String> = ["k1".to_string()].into();
        let r = check_reads(&reads, &writes, &expected, &lost, &[], ReplicaEvents::default());
        assert!(r.violations.is_empty());
        assert_eq!(r.excused_lost, 1);
        // A takeover in term 3 whose leader's log ended before the write: the read's leader never had it, even
        // if a later recovery brought the write back (it is not lost at the end).
        let ps = vec![Position {
            pid: 0,
            endpoint: "t2".into(),
            at: ms(150),
            held: true,
            leader: true,
            term: 3,
            log_term: 2,
            offset: 0,
        }];
        let ev = ReplicaEvents { positions: &ps, ..Default::default() };
        let r = check_reads(&reads, &writes, &expected, &BTreeSet::new(), &[], ev);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!(r.excused_overwritten, 1);
        let failed = ReadRecord { outcome: ReadOutcome::Failed { reason: "timeout".into() }, ..reads[3].clone() };
        let r = check_reads(&[failed], &writes, &expected, &BTreeSet::new(), &[], ReplicaEvents::default());
        assert_eq!((r.failed, r.violations.len()), (1, 0));
    }

    #[test]
    fn a_read_from_a_deposed_leader_is_stale() {
        let pos = |ep: &str, at, term| Position {
            pid: 0,
            endpoint: ep.into(),
            at: ms(at),
            held: true,
            leader: true,
            term,
            log_term: term,
            offset: 0,
        };
        let ps = vec![pos("t1", 0, 1), pos("t2", 4000, 2)];
        let exp = [SessionExpiry { endpoint: "t1".into(), at: ms(3000) }];
        let ev = ReplicaEvents { positions: &ps, expiries: &exp, ..Default::default() };
        let reads = vec![read("k1", 3500, "t1", 1, true, true), read("k1", 4500, "t1", 1, true, true)];
        let writes = vec![write("k1", 1, 100)];
        let r = check_reads(&reads, &writes, &expected, &BTreeSet::new(), &[], ev);
        assert_eq!(r.violations.len(), 1, "{:?}", r.violations);
        assert_eq!(r.violations[0].kind, ViolationKind::StaleRead);
        assert_eq!(r.violations[0].keys.count, 1);
    }
}
