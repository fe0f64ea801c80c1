//! Every checker over one run: the runner fills a [`RunData`], [`Report::build`] checks it, and the report gives
//! the per-seed line ([`Report::summary_line`]) and the detailed text of a failure ([`Report::detail`]).

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::time::Duration;

use super::acks::{AcksReport, check_acks};
use super::bound::{BoundReport, LossPolicy, check_loss_bound_with_events};
use super::converge::{ConvergeReport, check_convergence, pending_op_partition};
use super::determinism::{DeterminismReport, check_determinism};
use super::input::{
    FaultCause, FaultEvent, Fsync, LeaderSpan, LinkEvent, Observed, PartitionLayout, Pid, Position, ReadRecord,
    ReplicaEvents, SessionExpiry, WriteRecord,
};
use super::jobs::{JobFinal, JobsReport, check_jobs};
use super::reads::{ReadsReport, check_reads};
use super::set::{SetReport, check_set};
use super::table::{
    AutoRecovery, Expect, Exposure, Failover, ObservedCell, ServiceSeen, Verdict, exposure_with_events, failovers,
    judge, service_seen,
};
use super::window::{Window, WindowRules, WindowVerdict, window_violations, windows};
use super::{Violation, secs};

/// What the run recorded about one table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableData {
    pub name: String,
    pub writes: Vec<WriteRecord>,
    /// The final snapshot (the last one the convergence loop took).
    pub observed: Observed,
    /// The replicas each partition was created with.
    pub layouts: Vec<PartitionLayout>,
    pub leaders: Vec<LeaderSpan>,
    /// The scenario's `[expect] loss`.
    pub loss: LossPolicy,
    /// The scenario's `[expect]`, applied to the partitions the faults touched.
    pub expect: Expect,
    /// The TaskManager jobs on this table.
    pub jobs: Vec<JobFinal>,
    /// `replication = "semisync"` (DESIGN 5.3).
    pub semisync: bool,
    /// `(pid, endpoint, when)` each replica was loaded on its tablet (a restarted tablet holds nothing until then).
    pub loads: Vec<(Pid, String, Duration)>,
    /// `(pid, endpoint, when, alive)`: changes of each replica's alive flag in the metadata, polled.
    pub alive: Vec<(Pid, String, Duration, bool)>,
    /// `(pid, endpoint, when)` a partition was unloaded because its binlog broke.
    pub unloads: Vec<(Pid, String, Duration)>,
    /// Every replica's log position over time, from its tablet's trace, in time order.
    pub positions: Vec<Position>,
    /// Every read of the table's readers.
    pub reads: Vec<ReadRecord>,
    /// The values written for each key a read returned a row of (keys no writer attempted are absent).
    pub written_values: std::collections::BTreeMap<String, Vec<String>>,
    /// `(pid, when)` a step ran `changeleader` on the partition.
    pub ordered: Vec<(Pid, Duration)>,
}

/// What the run recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunData {
    pub tables: Vec<TableData>,
    pub faults: Vec<FaultEvent>,
    /// Cuts and heals of the network between tablets, in time order.
    pub links: Vec<LinkEvent>,
    pub fsync: Fsync,
    /// Endpoints that should be alive at the end (after a full heal: every tablet).
    pub expected_alive: BTreeSet<String>,
    /// When healing began; convergence violations' trace windows start there.
    pub healed_at: Duration,
    /// No manual recovery command (recoverendpoint, recovertable, changeleader) ran.
    pub auto_recovered: bool,
    /// `(table, pid)` of the partitions whose replicas were all alive on running tablets at the end.
    pub recovered: BTreeSet<(String, Pid)>,
    /// `(table, pid)` of the partitions `recoverdata` acted on: recovered by hand, whatever else happened.
    pub manual_partitions: BTreeSet<(String, Pid)>,
    /// `(seed, first hash, second hash)` when the seed was run twice.
    pub determinism: Option<(u64, u64, u64)>,
    /// Whether the cluster is expected to converge at all: not when the scenario expects no recovery (every
    /// replica of a partition went down and nobody recovers it), where only the set oracle and the loss policy
    /// judge the data.
    pub converge: bool,
    /// Ends of tablets' coordination sessions on the coordination server, in time order.
    pub expiries: Vec<SessionExpiry>,
    /// The active nameserver's endpoint from each moment on, in time order.
    pub actives: Vec<(Duration, Option<String>)>,
    /// Changes of the control plane (a nameserver's or the coordination server's fault or recovery, a change of
    /// the whole network): any of them may open an unavailability window of any partition.
    pub control: Vec<Duration>,
    /// `(from, to)` intervals in which every failover was blocked (the coordination server or every nameserver
    /// out of action).
    pub blockers: Vec<(Duration, Option<Duration>)>,
    /// The longest unavailability window allowed where service is promised (DESIGN 8).
    pub failover_within: Duration,
}

/// The availability-table oracle for one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionAvailability {
    pub exposure: Exposure,
    pub failovers: Vec<Failover>,
    /// Writes from the moment the most replicas were offline on.
    pub service: ServiceSeen,
    /// Every unavailability window of the partition, judged where service is promised.
    pub windows: Vec<Window>,
    pub verdict: Verdict,
    pub violations: Vec<Violation>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableReport {
    pub name: String,
    pub set: SetReport,
    pub bound: BoundReport,
    pub convergence: ConvergeReport,
    pub availability: Vec<PartitionAvailability>,
    pub jobs: JobsReport,
    pub acks: AcksReport,
    pub reads: ReadsReport,
}

impl TableReport {
    fn build(t: &TableData, run: &RunData) -> TableReport {
        let jobs = check_jobs(&t.jobs, &t.observed, &t.leaders);
        // Imported rows are the jobs checker's: the set checker sees the workload's rows only.
        let imported = JobsReport::imported_keys(&t.jobs);
        // A copy only when there are imported rows to take out: the observed rows are every replica's keys.
        let workload_rows = if imported.is_empty() {
            std::borrow::Cow::Borrowed(&t.observed)
        } else {
            let mut rows = t.observed.clone();
            for r in rows.partitions.iter_mut().flat_map(|p| p.replicas.iter_mut()) {
                if let Some(rows) = r.rows.as_mut() {
                    rows.retain(|k| !imported.contains(k.as_str()));
                }
            }
            std::borrow::Cow::Owned(rows)
        };
        let mut set = check_set(&t.writes, &workload_rows);
        if t.loss == LossPolicy::Any {
            // Any loss is accepted, so writes nobody can read back are no violation either.
            set.violations.retain(|v| v.kind != super::ViolationKind::Unverified);
        }
        let starts = super::input::leader_start_positions(&t.positions);
        let events = ReplicaEvents {
            starts: Some(&starts),
            loads: &t.loads,
            alive: &t.alive,
            unloads: &t.unloads,
            links: &run.links,
            positions: &t.positions,
            expiries: &run.expiries,
            actives: &run.actives,
            ordered: &t.ordered,
        };
        let bound =
            check_loss_bound_with_events(&set.lost, &t.observed, &t.layouts, &run.faults, events, run.fsync, t.loss);
        let acks = check_acks(&t.writes, &t.layouts, &run.faults, events, t.semisync);
        // A write lost within the bound is gone from the new term's log: a later read cannot see it.
        let lost_allowed: BTreeSet<String> = bound.allowed.iter().map(|(l, _)| l.key.clone()).collect();
        let expected = |key: &str| t.written_values.get(key).cloned();
        let reads = check_reads(&t.reads, &t.writes, &expected, &lost_allowed, &run.faults, events);
        let convergence = if run.converge {
            check_convergence(&t.observed, &t.layouts, &run.expected_alive, run.healed_at)
        } else {
            ConvergeReport { ops_stuck: t.observed.ops_stuck.clone(), ..ConvergeReport::default() }
        };
        let availability: Vec<PartitionAvailability> = t
            .layouts
            .iter()
            .map(|layout| {
                // A tablet no nameserver can reach counts only against the service promise (no failover can use
                // it); the loss and recovery promises follow the tablets' own faults.
                let own: Vec<FaultEvent> =
                    run.faults.iter().filter(|f| f.cause != FaultCause::NameserverCut).cloned().collect();
                let exposure = exposure_with_events(layout, &own, &t.leaders, events);
                let control = exposure_with_events(layout, &run.faults, &t.leaders, events);
                let failovers = failovers(&exposure, &t.leaders);
                let since = exposure.max_at.unwrap_or_default();
                let service = service_seen(&t.writes, layout.pid, since);
                // `service` is an expectation for the partitions the faults touched (DESIGN 7); `loss` and `recovery`
                // hold for every partition, since manual commands (changeleader, updatetablealive) change a
                // partition's leader or replicas without any fault.
                let mut expect = if exposure.offline_max > 0 { t.expect } else { Expect { service: None, ..t.expect } };
                let by_hand = run.manual_partitions.contains(&(t.name.clone(), layout.pid));
                if by_hand {
                    // recoverdata acted on it: whether it would have recovered by itself cannot be observed.
                    expect.recovery = Some(AutoRecovery::ByHand);
                }
                let documented = exposure.documented().for_nameserver_cuts(&control);
                let documented = if t.semisync { documented.for_semisync() } else { documented };
                let documented = documented.with_expect(&expect);
                // The events that may open a window of this partition: its replicas' faults and recoveries, and
                // every change of the control plane.
                let mut opening: Vec<Duration> = run
                    .faults
                    .iter()
                    .filter(|f| layout.replicas.contains(&f.endpoint) && f.cause != FaultCause::SlowFsync)
                    .map(|f| f.at)
                    .chain(run.control.iter().copied())
                    .collect();
                opening.sort();
                let mut blockers = run.blockers.clone();
                blockers.extend(super::replicas::unseen_leader(layout.pid, &run.faults, events));
                if t.semisync {
                    blockers.extend(super::replicas::semisync_apart(&layout.replicas, &run.links));
                }
                let rules = WindowRules {
                    events: &opening,
                    blockers: &blockers,
                    within: run.failover_within,
                    promised: documented.service == super::table::Service::Available,
                };
                let windows = windows(&t.writes, layout.pid, rules);
                let windows_ok = windows.iter().all(|w| w.verdict != WindowVerdict::TooLong);
                let observed = ObservedCell {
                    service_ok: windows_ok && service.ok(),
                    lost_acked: bound.allowed_in(layout.pid),
                    lost_forbidden: bound.forbidden_in(layout.pid),
                    // A manual recovery step (recoverdata after a power loss elsewhere) says nothing about a
                    // partition no fault touched: it recovered by itself if it converged.
                    auto_recovered: ((run.auto_recovered && run.recovered.contains(&(t.name.clone(), layout.pid)))
                        || exposure.offline_max == 0)
                        && !by_hand
                        && !convergence.violations.iter().any(|v| v.pid == Some(layout.pid)),
                    failover_time: windows
                        .iter()
                        .filter_map(Window::failover)
                        .chain(failovers.iter().filter_map(Failover::time))
                        .max(),
                };
                let verdict = judge(&documented, &observed);
                let mut violations = verdict.violations(layout.pid, since);
                violations.extend(window_violations(&windows, run.failover_within));
                PartitionAvailability { exposure, failovers, service, windows, verdict, violations }
            })
            .collect();
        // Where every replica was offline at once (the table's last row: no service, no recovery promised) and
        // nobody recovered the partition by hand, a partition left unconverged is what the table documents, not a
        // violation. A partition that kept its service promise (1 or 2 offline) must converge whatever the
        // auto-recovery cell says; a scenario that states its own `[expect] recovery` keeps every check.
        let mut convergence = convergence;
        // A pending op names its table and partition: it belongs to that partition, and to this table's report
        // only if it is this table's.
        let tables: BTreeSet<&str> = run.tables.iter().map(|t| t.name.as_str()).collect();
        convergence
            .violations
            .retain(|v| pending_op_partition(v).is_none_or(|(name, _)| name == t.name || !tables.contains(name)));
        for v in &mut convergence.violations {
            if let Some((name, pid)) = pending_op_partition(v)
                && name == t.name
            {
                v.pid = Some(pid);
            }
        }
        if t.expect.recovery.is_none() {
            let not_promised: BTreeSet<Pid> = availability
                .iter()
                .filter(|a| {
                    let e = &a.exposure;
                    e.offline_max >= e.replicas && !run.manual_partitions.contains(&(t.name.clone(), e.pid))
                })
                .map(|a| a.exposure.pid)
                .collect();
            // Only the states of a partition not yet recovered are excused: two alive leaders, or alive replicas
            // that agree on the offset but hold different rows, are wrong whatever the table promises.
            let offsets_differ: BTreeSet<Pid> = convergence
                .violations
                .iter()
                .filter(|v| v.kind == super::ViolationKind::OffsetsDiffer)
                .filter_map(|v| v.pid)
                .collect();
            convergence.violations.retain(|v| {
                let never_excused = v.kind == super::ViolationKind::SeveralLeaders
                    || (v.kind == super::ViolationKind::RowsDiffer
                        && v.pid.is_some_and(|p| !offsets_differ.contains(&p)));
                never_excused || v.pid.is_none_or(|p| !not_promised.contains(&p))
            });
            set.violations.retain(|v| {
                v.kind != super::ViolationKind::Unverified || v.pid.is_none_or(|p| !not_promised.contains(&p))
            });
        }
        TableReport { name: t.name.clone(), set, bound, convergence, availability, jobs, acks, reads }
    }

    pub fn violations(&self) -> impl Iterator<Item = &Violation> {
        self.set
            .violations
            .iter()
            .chain(&self.bound.violations)
            .chain(&self.acks.violations)
            .chain(&self.reads.violations)
            .chain(&self.convergence.violations)
            .chain(self.availability.iter().flat_map(|a| &a.violations))
            .chain(&self.jobs.violations)
    }
}

/// All checkers over one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub tables: Vec<TableReport>,
    pub determinism: Option<DeterminismReport>,
}

/// The figures of the per-seed line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub attempted: usize,
    pub acked: usize,
    pub lost_allowed: usize,
    pub lost_forbidden: usize,
    pub unexpected: usize,
    pub recovered: usize,
    /// The failover that lost the most: `(table, pid, term, lost)`.
    pub largest_failover_loss: Option<(String, Pid, u64, usize)>,
    /// The slowest failover of the run.
    pub failover_time: Option<Duration>,
    pub violations: usize,
    /// Availability cells better than documented.
    pub better: usize,
}

impl fmt::Display for Summary {
    /// `acked 930/1000, lost 3 allowed/0 forbidden (largest: flow pid 0 term 2, 3), unexpected 0, recovered 5,
    /// failover 1.200s, 0 violations`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "acked {}/{}, lost {} allowed/{} forbidden",
            self.acked, self.attempted, self.lost_allowed, self.lost_forbidden
        )?;
        if let Some((table, pid, term, lost)) = &self.largest_failover_loss {
            write!(f, " (largest: {table} pid {pid} term {term}, {lost})")?;
        }
        write!(f, ", unexpected {}, recovered {}, failover ", self.unexpected, self.recovered)?;
        match self.failover_time {
            Some(t) => f.write_str(&secs(t))?,
            None => f.write_str("-")?,
        }
        write!(f, ", {} violations", self.violations)?;
        if self.better > 0 {
            write!(f, ", {} cells better than documented", self.better)?;
        }
        Ok(())
    }
}

impl Report {
    pub fn build(run: &RunData) -> Report {
        Report {
            tables: run.tables.iter().map(|t| TableReport::build(t, run)).collect(),
            determinism: run.determinism.map(|(seed, a, b)| check_determinism(seed, a, b)),
        }
    }

    pub fn violations(&self) -> Vec<&Violation> {
        let mut all: Vec<&Violation> = self.tables.iter().flat_map(TableReport::violations).collect();
        all.extend(self.determinism.iter().filter_map(|d| d.violation.as_ref()));
        all
    }

    pub fn passed(&self) -> bool {
        self.violations().is_empty()
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        let mut largest: Option<(String, Pid, u64, usize)> = None;
        for t in &self.tables {
            s.attempted += t.set.attempted;
            s.acked += t.set.acked;
            s.lost_allowed += t.bound.allowed.len();
            s.lost_forbidden += t.bound.forbidden.len();
            s.unexpected += t.set.unexpected.len();
            s.recovered += t.set.recovered.len();
            if let Some(f) = t.bound.largest()
                && largest.as_ref().is_none_or(|l| f.lost > l.3)
            {
                largest = Some((t.name.clone(), f.pid, f.term, f.lost));
            }
            for a in &t.availability {
                s.failover_time = s.failover_time.max(a.verdict.observed.failover_time);
                s.better += a.verdict.better().count();
            }
        }
        s.largest_failover_loss = largest;
        s.violations = self.violations().len();
        s
    }

    /// The figures for the runner's per-seed line (it adds PASS/FAIL, times and the trace hash).
    pub fn summary_line(&self) -> String {
        self.summary().to_string()
    }

    /// Everything, one fact a line: per table the set, the loss bound, convergence and every partition's cell of
    /// the availability table; then every violation.
    pub fn detail(&self) -> String {
        let mut out = String::new();
        for t in &self.tables {
            let s = &t.set;
            let _ = writeln!(
                out,
                "table {}: {} attempted, {} acked, {} failed, {} unknown; {} present",
                t.name, s.attempted, s.acked, s.failed, s.unknown, s.present
            );
            let _ = writeln!(
                out,
                "  set: lost {}, unexpected {}, recovered {}, misplaced {}, unverified {}",
                s.lost.len(),
                s.unexpected.len(),
                s.recovered.len(),
                s.misplaced.len(),
                s.unverified.values().sum::<usize>()
            );
            for j in &t.jobs.jobs {
                let _ = writeln!(out, "  {j}");
            }
            if t.jobs.missing_allowed > 0 {
                let _ = writeln!(out, "  imported rows lost in a failover (allowed): {}", t.jobs.missing_allowed);
            }
            let _ =
                writeln!(out, "  loss bound: {} allowed, {} forbidden", t.bound.allowed.len(), t.bound.forbidden.len());
            for f in &t.bound.per_failover {
                let by = match &f.taken {
                    Some((leader, at)) if f.ordered => {
                        format!(" by {leader} at {} (ordered by changeleader)", secs(*at))
                    }
                    Some((leader, at)) => format!(" by {leader} at {}", secs(*at)),
                    None => String::new(),
                };
                let suffix = f.suffix.map_or(String::new(), |s| format!(" of an un-replicated suffix of {s}"));
                let _ = writeln!(
                    out,
                    "    failover pid {} to term {} (from offset {}){by}: {} lost{suffix}, acked in terms {:?} at \
                     offsets {}..={}: {}",
                    f.pid, f.term, f.start, f.lost, f.acked_terms, f.offsets.0, f.offsets.1, f.keys
                );
            }
            for f in &t.bound.fsync {
                let restarts: Vec<String> = f.restarts.iter().map(|(e, at)| format!("{e} at {}", secs(*at))).collect();
                let _ = writeln!(
                    out,
                    "    power loss pid {}: {} lost before fsync ({}): {}",
                    f.pid,
                    f.lost,
                    restarts.join(", "),
                    f.keys
                );
            }
            let a = &t.acks;
            let _ = writeln!(
                out,
                "  acks: {} checked, {} by a deposed leader, {} semisync unreplicated",
                a.checked,
                a.deposed.len(),
                a.unreplicated.len()
            );
            let r = &t.reads;
            if r.attempted > 0 {
                let _ = writeln!(
                    out,
                    "  reads: {} attempted, {} served, {} failed; {} checked, {} bad; excused: {} missed a write lost \
                     within the bound, {} a write a takeover before the read's term had overwritten",
                    r.attempted,
                    r.served,
                    r.failed,
                    r.checked,
                    r.bad(),
                    r.excused_lost,
                    r.excused_overwritten
                );
            }
            let c = &t.convergence;
            if c.converged() {
                let _ = writeln!(out, "  convergence: converged");
            } else {
                let _ = writeln!(out, "  convergence: {} problems", c.violations.len());
            }
            let _ = writeln!(out, "  availability:");
            for a in &t.availability {
                let _ =
                    writeln!(out, "    pid {}: {}: {}", a.exposure.pid, a.verdict.documented.row_label(), a.verdict);
                for w in &a.windows {
                    let closed = w.closed.map_or("never closed".to_string(), |c| format!("closed {}", secs(c)));
                    let fault = w.fault.map_or(String::new(), |f| format!(", fault {}", secs(f)));
                    let deadline = if w.deadline == Duration::MAX { "none".to_string() } else { secs(w.deadline) };
                    let _ = writeln!(
                        out,
                        "      window {} to {closed}{fault}, {} failed, deadline {deadline}: {:?}",
                        secs(w.opened),
                        w.failed,
                        w.verdict
                    );
                }
            }
        }
        if let Some(d) = &self.determinism {
            let _ = writeln!(
                out,
                "determinism: seed {} {:016x} / {:016x} {}",
                d.seed,
                d.first,
                d.second,
                if d.same() { "same" } else { "DIFFERENT" }
            );
        }
        let violations = self.violations();
        if violations.is_empty() {
            let _ = writeln!(out, "no violations");
        } else {
            let _ = writeln!(out, "{} violations:", violations.len());
            for v in violations {
                let _ = writeln!(out, "  {v}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::ViolationKind;
    use crate::check::input::{FaultKind, PartitionFinal};
    use crate::check::set::tests::{acked, failed, ms, replica, unknown};
    use crate::check::table::Comparison;

    fn layout(pid: Pid) -> PartitionLayout {
        PartitionLayout { pid, replicas: vec!["t1".into(), "t2".into(), "t3".into()] }
    }

    /// Two partitions. Partition 0: leader t1 crashes at 1s and its un-replicated entries 3..=4 of term 1 are lost
    /// when t2 takes over in term 2 from offset 3 at 2.5s; t1 comes back at 4s. Partition 1: untouched.
    fn leader_crash() -> RunData {
        let mut writes = vec![
            acked(1, 0, 1, 1, 100),
            acked(2, 0, 1, 2, 200),
            acked(3, 0, 1, 3, 900),
            acked(4, 0, 1, 4, 950),
            failed(5, 0, 1500),
            unknown(6, 0, 1600),
            acked(7, 0, 2, 3, 3000),
            acked(8, 1, 1, 1, 300),
        ];
        writes[6].outcome =
            crate::check::WriteOutcome::Acked { pid: 0, term: 2, offset: 3, endpoint: "t2".into(), at: ms(3000) };
        let p0 = PartitionFinal {
            pid: 0,
            term_offset: vec![(1, 0), (2, 3)],
            replicas: vec![
                replica("t2", true, &[1, 2, 6, 7]),
                replica("t1", false, &[1, 2, 6, 7]),
                replica("t3", false, &[1, 2, 6, 7]),
            ],
        };
        let p1 = PartitionFinal {
            pid: 1,
            term_offset: vec![(1, 0)],
            replicas: vec![replica("t3", true, &[8]), replica("t1", false, &[8]), replica("t2", false, &[8])],
        };
        let table = TableData {
            name: "flow".into(),
            writes,
            observed: Observed { partitions: vec![p0, p1], ops_stuck: vec![] },
            layouts: vec![layout(0), layout(1)],
            leaders: vec![
                LeaderSpan { pid: 0, endpoint: "t1".into(), from: ms(0), to: Some(ms(2500)) },
                LeaderSpan { pid: 0, endpoint: "t2".into(), from: ms(2500), to: None },
                LeaderSpan { pid: 1, endpoint: "t3".into(), from: ms(0), to: None },
            ],
            loss: LossPolicy::Bounded,
            expect: Expect::default(),
            jobs: vec![],
            semisync: false,
            loads: vec![],
            alive: vec![],
            unloads: vec![],
            positions: vec![],
            reads: vec![],
            written_values: Default::default(),
            ordered: vec![],
        };
        RunData {
            tables: vec![table],
            faults: vec![
                FaultEvent { at: ms(1000), kind: FaultKind::Down, endpoint: "t1".into(), cause: FaultCause::Crash },
                FaultEvent { at: ms(4000), kind: FaultKind::Up, endpoint: "t1".into(), cause: FaultCause::Crash },
            ],
            links: vec![],
            fsync: Fsync::new(ms(1000)),
            expected_alive: ["t1", "t2", "t3"].iter().map(|s| s.to_string()).collect(),
            healed_at: ms(4000),
            auto_recovered: true,
            recovered: [("flow".to_string(), 0), ("flow".to_string(), 1)].into_iter().collect(),
            determinism: Some((42, 0x1234, 0x1234)),
            manual_partitions: BTreeSet::new(),
            converge: true,
            expiries: vec![],
            actives: vec![],
            control: vec![],
            blockers: vec![],
            failover_within: ms(5000),
        }
    }

    #[test]
    fn a_leader_crash_within_the_bound_passes() {
        let r = Report::build(&leader_crash());
        assert!(r.passed(), "{}", r.detail());
        let s = r.summary();
        assert_eq!(
            (s.attempted, s.acked, s.lost_allowed, s.lost_forbidden, s.unexpected, s.recovered),
            (8, 6, 2, 0, 0, 1)
        );
        assert_eq!(s.largest_failover_loss, Some(("flow".to_string(), 0, 2, 2)));
        // From the crash at 1 s to the first write acknowledged after the first failed one (row 7, at 3 s).
        assert_eq!(s.failover_time, Some(ms(2000)));
        assert_eq!(
            r.summary_line(),
            "acked 6/8, lost 2 allowed/0 forbidden (largest: flow pid 0 term 2, 2), unexpected 0, recovered 1, \
             failover 2.000s, 0 violations"
        );
        let t = &r.tables[0];
        let a0 = &t.availability[0];
        assert_eq!((a0.exposure.offline_max, a0.exposure.leader_among), (1, true));
        assert_eq!(a0.service.acked, 1, "row 7 was acknowledged by the new leader");
        assert!(a0.verdict.cells.iter().all(|c| c.comparison == Comparison::Same));
        let a1 = &t.availability[1];
        assert_eq!(a1.exposure.offline_max, 1, "t1 is a follower of partition 1");
        assert!(!a1.exposure.leader_among);
        assert!(a1.verdict.passed());
    }

    #[test]
    fn the_detail_text_names_every_figure() {
        let r = Report::build(&leader_crash());
        insta::assert_snapshot!(r.detail());
    }

    #[test]
    fn a_failing_run_lists_every_violation() {
        let mut run = leader_crash();
        let t = &mut run.tables[0];
        // Row 2 (offset 2, before term 2 began at 3) disappears; t3 diverges; an op hangs.
        for r in &mut t.observed.partitions[0].replicas {
            r.rows.as_mut().expect("rows").remove(&crate::check::set::tests::key(2));
        }
        t.observed.partitions[0].replicas[2].rows.as_mut().expect("rows").insert("stranger".into());
        t.observed.ops_stuck.push("61 kReAddReplicaOP flow 1 kDoing kLoadTable".into());
        run.auto_recovered = false;
        run.determinism = Some((42, 1, 2));
        let r = Report::build(&run);
        assert!(!r.passed());
        let kinds: Vec<ViolationKind> = r.violations().iter().map(|v| v.kind).collect();
        assert_eq!(
            kinds,
            vec![
                ViolationKind::Unexpected,
                ViolationKind::LostOutsideBound,
                ViolationKind::RowsDiffer,
                ViolationKind::OpStuck,
                ViolationKind::WorseThanDocumented,
                ViolationKind::WorseThanDocumented,
                ViolationKind::WorseThanDocumented,
                ViolationKind::Nondeterministic,
            ]
        );
        let s = r.summary();
        assert_eq!((s.lost_allowed, s.lost_forbidden, s.unexpected, s.violations), (2, 1, 1, 8));
        let detail = r.detail();
        assert!(detail.contains("8 violations:"), "{detail}");
        assert!(detail.contains("[loss-bound] pid 0: 1 acknowledged writes lost outside the bound"), "{detail}");
        assert!(detail.contains("determinism: seed 42 0000000000000001 / 0000000000000002 DIFFERENT"), "{detail}");
    }

    #[test]
    fn expect_service_applies_only_to_partitions_the_faults_touched() {
        let mut run = leader_crash();
        run.tables[0].expect = Expect { loss: Some(crate::check::Loss::None), ..Expect::default() };
        let r = Report::build(&run);
        let a = &r.tables[0].availability;
        assert!(a[0].verdict.documented.overridden && !a[0].verdict.passed(), "2 lost, none expected");
        assert!(a[1].verdict.documented.overridden, "t1's crash touched partition 1 too");
        // Loss and recovery expectations hold without faults too (manual commands); service does not.
        run.faults.clear();
        let r = Report::build(&run);
        assert!(r.tables[0].availability[1].verdict.documented.overridden);
        run.tables[0].expect = Expect { service: Some(crate::check::Service::Unavailable), ..Expect::default() };
        let r = Report::build(&run);
        assert!(!r.tables[0].availability[1].verdict.documented.overridden);
    }

    #[test]
    fn a_pending_op_belongs_to_its_partition() {
        let mut run = leader_crash();
        let second = TableData { name: "other".into(), ..run.tables[0].clone() };
        run.tables.push(second);
        for t in &mut run.tables {
            t.observed.ops_stuck = vec!["8 kRecoverTableOP flow 1 kDoing kRecoverTable".into()];
        }
        let r = Report::build(&run);
        let stuck = |t: &TableReport| -> Vec<Option<Pid>> {
            t.convergence.violations.iter().filter(|v| v.kind == ViolationKind::OpStuck).map(|v| v.pid).collect()
        };
        assert_eq!(stuck(&r.tables[0]), vec![Some(1)], "flow's op, on flow's pid 1");
        assert!(stuck(&r.tables[1]).is_empty(), "not reported again under another table");
    }
}
