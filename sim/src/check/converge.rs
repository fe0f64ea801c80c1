//! Convergence after healing (DESIGN 8): one snapshot, and everything wrong with it.
//!
//! Every partition has exactly one alive leader; every replica that should be alive is; all alive replicas hold
//! identical rows and offsets; no op is stuck in kInited or kDoing. The runner evaluates snapshots repeatedly until
//! they are clean or `converge_within` passes, and reports the last one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::input::{Observed, PartitionLayout, Pid, ReplicaFinal};
use super::{KeySample, Violation, ViolationKind};

/// How one alive replica differs from the partition's reference (its alive leader, else the first readable
/// alive replica).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaDiff {
    pub endpoint: String,
    pub reference: String,
    /// Rows the reference holds and this replica does not.
    pub missing: KeySample,
    /// Rows this replica holds and the reference does not.
    pub extra: KeySample,
}

/// The convergence view of one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionState {
    pub pid: Pid,
    /// Replicas that are both leader and alive.
    pub leaders: Vec<String>,
    pub alive: Vec<String>,
    pub not_alive: Vec<String>,
    /// Every alive replica's offset.
    pub offsets: Vec<(String, Option<u64>)>,
    pub diffs: Vec<ReplicaDiff>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConvergeReport {
    pub partitions: Vec<PartitionState>,
    pub ops_stuck: Vec<String>,
    pub violations: Vec<Violation>,
}

impl ConvergeReport {
    pub fn converged(&self) -> bool {
        self.violations.is_empty()
    }
}

fn rows_of(r: &ReplicaFinal) -> Option<&BTreeSet<String>> {
    if r.is_alive { r.rows.as_ref() } else { None }
}
/// How an [`ViolationKind::OpStuck`] violation begins; the op's showopstatus line follows.
const PENDING: &str = "op still pending: ";

/// The table and partition a pending op names, read from its violation (`op still pending: 19 kChangeLeaderOP
/// fuzz 0 kDoing ...`).
pub fn pending_op_partition(v: &Violation) -> Option<(&str, Pid)> {
    if v.kind != ViolationKind::OpStuck {
        return None;
    }
    let mut words = v.why.strip_prefix(PENDING)?.split_whitespace().skip(2);
    let name = words.next()?;
    Some((name, words.next()?.parse().ok()?))
}

/// Checks one snapshot of one table. `expected_alive` names the endpoints that should be alive (after a full heal,
/// every tablet); `since` (when healing began) starts the trace window of every violation.
pub fn check_convergence(
    observed: &Observed,
    layouts: &[PartitionLayout],
    expected_alive: &BTreeSet<String>,
    since: Duration,
) -> ConvergeReport {
    let mut report = ConvergeReport { ops_stuck: observed.ops_stuck.clone(), ..ConvergeReport::default() };
    let mut out = Vec::new();
    for layout in layouts {
        if observed.partition(layout.pid).is_none() {
            out.push(
                Violation::new(ViolationKind::MissingPartition, Some(layout.pid), "the partition is not in the table")
                    .with_endpoints(layout.replicas.clone())
                    .with_window(since, None),
            );
        }
    }
    for p in &observed.partitions {
        let v = |kind, why: String| Violation::new(kind, Some(p.pid), why);
        let alive: Vec<&ReplicaFinal> = p.replicas.iter().filter(|r| r.is_alive).collect();
        let leaders: Vec<&ReplicaFinal> = alive.iter().copied().filter(|r| r.is_leader).collect();
        let mut state = PartitionState {
            pid: p.pid,
            leaders: leaders.iter().map(|r| r.endpoint.clone()).collect(),
            alive: alive.iter().map(|r| r.endpoint.clone()).collect(),
            not_alive: p.replicas.iter().filter(|r| !r.is_alive).map(|r| r.endpoint.clone()).collect(),
            offsets: alive.iter().map(|r| (r.endpoint.clone(), r.offset)).collect(),
            diffs: vec![],
        };

        match leaders.len() {
            1 => {}
            0 => {
                let dead: Vec<_> = p.replicas.iter().filter(|r| r.is_leader).map(|r| r.endpoint.clone()).collect();
                out.push(
                    v(ViolationKind::NoLeader, format!("no alive leader (leaders marked not alive: {dead:?})"))
                        .with_endpoints(dead)
                        .with_terms(p.term_offset.iter().map(|t| t.0))
                        .with_window(since, None),
                );
            }
            n => out.push(
                v(ViolationKind::SeveralLeaders, format!("{n} alive leaders: {:?}", state.leaders))
                    .with_endpoints(state.leaders.clone())
                    .with_terms(p.term_offset.iter().map(|t| t.0))
                    .with_window(since, None),
            ),
        }

        let down: Vec<String> = state.not_alive.iter().filter(|e| expected_alive.contains(*e)).cloned().collect();
        if !down.is_empty() {
            out.push(
                v(ViolationKind::NotAlive, format!("replicas that should be alive are not: {down:?}"))
                    .with_endpoints(down)
                    .with_window(since, None),
            );
        }
        if let Some(layout) = layouts.iter().find(|l| l.pid == p.pid) {
            let gone: Vec<String> = layout
                .replicas
                .iter()
                .filter(|e| expected_alive.contains(*e) && !p.replicas.iter().any(|r| &r.endpoint == *e))
                .cloned()
                .collect();
            if !gone.is_empty() {
                out.push(
                    v(ViolationKind::MissingReplica, format!("replicas of the layout are no longer listed: {gone:?}"))
                        .with_endpoints(gone)
                        .with_window(since, None),
                );
            }
        }

        let unreadable: Vec<String> =
            alive.iter().filter(|r| r.rows.is_none() || r.offset.is_none()).map(|r| r.endpoint.clone()).collect();
        if !unreadable.is_empty() {
            out.push(
                v(
                    ViolationKind::Unreadable,
                    format!("alive replicas whose rows or offset could not be read: {unreadable:?}"),
                )
                .with_endpoints(unreadable)
                .with_window(since, None),
            );
        }

        let mut offsets: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
        for r in &alive {
            if let Some(o) = r.offset {
                offsets.entry(o).or_default().push(r.endpoint.as_str());
            }
        }
        if offsets.len() > 1 {
            let text: Vec<String> =
                alive.iter().filter_map(|r| r.offset.map(|o| format!("{}={o}", r.endpoint))).collect();
            out.push(
                v(
                    ViolationKind::OffsetsDiffer,
                    format!("alive replicas are at different offsets: {}", text.join(", ")),
                )
                .with_offsets(offsets.keys().copied())
                .with_endpoints(offsets.values().flatten().map(|e| e.to_string()))
                .with_window(since, None),
            );
        }

        let reference = leaders
            .iter()
            .copied()
            .filter(|_| leaders.len() == 1)
            .find(|r| rows_of(r).is_some())
            .or_else(|| alive.iter().copied().find(|r| rows_of(r).is_some()));
        if let Some(reference) = reference {
            let ref_rows = rows_of(reference).expect("readable reference");
            for r in &alive {
                let Some(rows) = rows_of(r) else { continue };
                if r.endpoint == reference.endpoint || rows == ref_rows {
                    continue;
                }
                state.diffs.push(ReplicaDiff {
                    endpoint: r.endpoint.clone(),
                    reference: reference.endpoint.clone(),
                    missing: KeySample::of(ref_rows.difference(rows).map(String::as_str)),
                    extra: KeySample::of(rows.difference(ref_rows).map(String::as_str)),
                });
            }
        }
        if !state.diffs.is_empty() {
            let text: Vec<String> = state
                .diffs
                .iter()
                .map(|d| {
                    format!(
                        "{} lacks {} and has {} extra vs {}",
                        d.endpoint, d.missing.count, d.extra.count, d.reference
                    )
                })
                .collect();
            let keys = KeySample {
                count: state.diffs.iter().map(|d| d.missing.count + d.extra.count).sum(),
                first: state
                    .diffs
                    .iter()
                    .flat_map(|d| d.missing.first.iter().chain(&d.extra.first))
                    .take(super::SAMPLE)
                    .cloned()
                    .collect(),
            };
            out.push(
                v(ViolationKind::RowsDiffer, format!("alive replicas hold different rows: {}", text.join("; ")))
                    .with_keys(keys)
                    .with_endpoints(state.diffs.iter().flat_map(|d| [d.endpoint.clone(), d.reference.clone()]))
                    .with_window(since, None),
            );
        }
        report.partitions.push(state);
    }
    for op in &observed.ops_stuck {
        out.push(Violation::new(ViolationKind::OpStuck, None, format!("{PENDING}{op}")).with_window(since, None));
    }
    report.violations = out;
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::input::PartitionFinal;
    use crate::check::set::tests::{key, ms, partition, replica};

    fn all() -> BTreeSet<String> {
        ["t1", "t2", "t3"].iter().map(|s| s.to_string()).collect()
    }

    fn layouts(pids: &[Pid]) -> Vec<PartitionLayout> {
        pids.iter().map(|&pid| PartitionLayout { pid, replicas: vec!["t1".into(), "t2".into(), "t3".into()] }).collect()
    }

    fn kinds(r: &ConvergeReport) -> Vec<ViolationKind> {
        r.violations.iter().map(|v| v.kind).collect()
    }

    fn one(p: PartitionFinal) -> Observed {
        Observed { partitions: vec![p], ops_stuck: vec![] }
    }

    #[test]
    fn identical_replicas_with_one_leader_converged() {
        let obs = Observed {
            partitions: vec![partition(0, &[(1, 0)], &[1, 2]), partition(1, &[(1, 0)], &[3])],
            ops_stuck: vec![],
        };
        let r = check_convergence(&obs, &layouts(&[0, 1]), &all(), ms(0));
        assert!(r.converged(), "{:?}", r.violations);
        assert_eq!(r.partitions[0].leaders, vec!["t1"]);
        assert_eq!(r.partitions[0].alive.len(), 3);
    }

    #[test]
    fn two_alive_leaders_is_a_violation() {
        let mut p = partition(0, &[(1, 0), (2, 3)], &[1]);
        p.replicas[1].is_leader = true;
        let r = check_convergence(&one(p), &layouts(&[0]), &all(), ms(5000));
        assert_eq!(kinds(&r), vec![ViolationKind::SeveralLeaders]);
        let v = &r.violations[0];
        assert_eq!(v.endpoints, vec!["t1", "t2"]);
        assert_eq!(v.terms, vec![1, 2]);
        assert_eq!(v.hint.from, ms(5000));
    }

    #[test]
    fn no_alive_leader_is_a_violation() {
        let mut p = partition(0, &[(1, 0)], &[1]);
        p.replicas[0].is_alive = false;
        let r = check_convergence(&one(p), &layouts(&[0]), &BTreeSet::new(), ms(0));
        assert_eq!(kinds(&r), vec![ViolationKind::NoLeader]);
        assert!(r.violations[0].why.contains("t1"));
    }

    #[test]
    fn a_replica_that_should_be_alive_and_is_not_is_a_violation() {
        let mut p = partition(0, &[(1, 0)], &[1]);
        p.replicas[2].is_alive = false;
        let r = check_convergence(&one(p.clone()), &layouts(&[0]), &all(), ms(0));
        assert_eq!(kinds(&r), vec![ViolationKind::NotAlive]);
        assert_eq!(r.violations[0].endpoints, vec!["t3"]);
        let expected: BTreeSet<String> = ["t1", "t2"].iter().map(|s| s.to_string()).collect();
        assert!(check_convergence(&one(p), &layouts(&[0]), &expected, ms(0)).converged(), "t3 may stay down");
    }

    #[test]
    fn a_diverged_replica_is_a_violation_naming_its_rows() {
        let mut p = partition(0, &[(1, 0)], &[1, 2, 3]);
        p.replicas[2] = replica("t3", false, &[1, 2, 4]);
        let r = check_convergence(&one(p), &layouts(&[0]), &all(), ms(0));
        assert_eq!(kinds(&r), vec![ViolationKind::RowsDiffer]);
        let d = &r.partitions[0].diffs[0];
        assert_eq!((d.endpoint.as_str(), d.reference.as_str()), ("t3", "t1"));
        assert_eq!(d.missing.first, vec![key(3)]);
        assert_eq!(d.extra.first, vec![key(4)]);
        let v = &r.violations[0];
        assert_eq!(v.keys.count, 2);
        assert_eq!(v.endpoints, vec!["t1", "t3"]);
    }

    #[test]
    fn different_offsets_are_a_violation() {
        let mut p = partition(0, &[(1, 0)], &[1, 2]);
        p.replicas[1].offset = Some(1);
        let r = check_convergence(&one(p), &layouts(&[0]), &all(), ms(0));
        assert_eq!(kinds(&r), vec![ViolationKind::OffsetsDiffer]);
        assert_eq!(r.violations[0].offsets, vec![1, 2]);
        assert!(r.violations[0].why.contains("t2=1"), "{}", r.violations[0].why);
    }

    #[test]
    fn a_not_alive_replica_is_not_compared() {
        let mut p = partition(0, &[(1, 0)], &[1, 2]);
        p.replicas[2] = ReplicaFinal { is_alive: false, ..replica("t3", false, &[9]) };
        let expected: BTreeSet<String> = ["t1", "t2"].iter().map(|s| s.to_string()).collect();
        assert!(check_convergence(&one(p), &layouts(&[0]), &expected, ms(0)).converged());
    }

    #[test]
    fn an_unreadable_alive_replica_is_a_violation() {
        let mut p = partition(0, &[(1, 0)], &[1]);
        p.replicas[1].rows = None;
        let r = check_convergence(&one(p), &layouts(&[0]), &all(), ms(0));
        assert_eq!(kinds(&r), vec![ViolationKind::Unreadable]);
    }

    #[test]
    fn a_stuck_op_is_a_violation() {
        let mut obs = one(partition(0, &[(1, 0)], &[1]));
        obs.ops_stuck = vec!["60 kReAddReplicaOP flow 0 kDoing kLoadTable".into()];
        let r = check_convergence(&obs, &layouts(&[0]), &all(), ms(0));
        assert_eq!(kinds(&r), vec![ViolationKind::OpStuck]);
        assert_eq!(r.ops_stuck.len(), 1);
        assert!(r.violations[0].to_string().contains("kReAddReplicaOP"));
    }

    #[test]
    fn missing_partitions_and_replicas_are_violations() {
        let mut p = partition(0, &[(1, 0)], &[1]);
        p.replicas.pop();
        let r = check_convergence(&one(p), &layouts(&[0, 1]), &all(), ms(0));
        assert_eq!(kinds(&r), vec![ViolationKind::MissingPartition, ViolationKind::MissingReplica]);
        assert_eq!(r.violations[0].pid, Some(1));
        assert_eq!(r.violations[1].endpoints, vec!["t3"]);
    }
}
