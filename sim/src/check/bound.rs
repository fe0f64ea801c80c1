//! The loss bound (DESIGN 8): which lost acknowledged writes the design allows, judged from the replicas' own
//! records (their `replica log` positions, the faults, the network cuts), never from the nameserver's account.
//!
//! Asynchronous replication acknowledges a write once the leader appended it, so two losses are explained:
//!
//! - **Overwritten suffix.** Acknowledged in term T at offset o, and a replica later took the lead in a term
//!   T' > T without the entry in its log (its log ended before o): the new term overwrote it. The loss is charged
//!   to that takeover, the first that lacked it. It is allowed only if no other replica that could have been
//!   chosen then (running, loaded, marked alive, reachable from the active nameserver: [`super::replicas`]) held
//!   the entry: a leader selection that passes over a longer log is a violation ([`ViolationKind::LaggingLeader`]).
//!   Each takeover reports its loss beside the un-replicated suffix it inherited. Without any position evidence
//!   (a caller that recorded none) the nameserver's term history is read instead, as the only evidence there is.
//! - **Not yet fsynced.** Every replica of the partition lost power (a machine restart) after the write was
//!   attempted and within `binlog_sync_to_disk_interval` (+ slack) after it was acknowledged: no disk had it. A
//!   replica whose process crashed or was paused inside that window synced nothing while it was stopped, so its
//!   window stretches until the process ran again (a crash followed by the machine's power loss); see
//!   `unsynced_until` for every stop of syncing. A replica that held the partition at no moment from the write until
//!   the last of those power losses (down, paused, restarted and not loaded again, or marked not alive) never had it
//!   and needs none.
//!
//! Anything else is a violation: a crashed process keeps its page cache, so crashes alone never explain a loss.

use std::collections::BTreeMap;
use std::time::Duration;

use super::input::{
    FaultCause, FaultEvent, FaultKind, Fsync, Observed, PartitionLayout, Pid, ReplicaEvents, first_fault,
};
use super::replicas::{holds_at, unavailable_at};
use super::set::LostWrite;
use super::{KeySample, Violation, ViolationKind, secs};

/// How much loss a scenario accepts (its `[expect] loss`; `Bounded` by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LossPolicy {
    /// Any lost acknowledged write is a violation, even one the bound explains (e.g. `semisync`, or only
    /// followers were down).
    None,
    #[default]
    Bounded,
    /// Nothing is a violation; losses are still classified and counted.
    Any,
}

/// Why a lost write is allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LossReason {
    /// The write was in the un-replicated suffix that term `term`, starting at offset `start`, overwrote.
    Overwritten { term: u64, start: u64 },
    /// Every replica lost power before the binlog was fsynced: `(endpoint, time of its machine restart)`.
    NotFsynced { restarts: Vec<(String, Duration)> },
    /// A `corrupt_tail` disk fault destroyed the final binlog record of the acknowledging replica at `at`, and no
    /// other replica held the write: the disk lost it, not the system. At most the highest-offset write sent to
    /// that replica before the fault, per partition and fault.
    CorruptedTail { endpoint: String, at: Duration },
}

/// A takeover an allowed loss was charged to: term `term` of partition `pid` began at offset `start`, `by` whom
/// and when (`None` when only the term history told it).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChargedTakeover {
    pub pid: Pid,
    pub term: u64,
    pub start: u64,
    pub by: Option<(String, Duration)>,
}

/// A lost write whose takeover passed over `other`, a replica that held it with its log at `offset`.
#[derive(Clone, Debug)]
struct PassedOver {
    lost: LostWrite,
    takeover: Takeover,
    other: String,
    offset: u64,
}

/// The writes one failover lost: term `term` of partition `pid` began at `start`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailoverLoss {
    pub pid: Pid,
    pub term: u64,
    pub start: u64,
    /// Who took the lead and when, from its own trace (`None` when only the term history was known).
    pub taken: Option<(String, Duration)>,
    /// The un-replicated suffix it inherited: how far the old terms' acknowledged entries reached beyond the new
    /// leader's log (`None` without position evidence). No replica that could have been chosen held more of them,
    /// or the takeover is a [`ViolationKind::LaggingLeader`] violation instead of an allowed loss.
    pub suffix: Option<u64>,
    /// An operator's `changeleader` ordered it (the named excuse from the leader-selection check).
    pub ordered: bool,
    pub lost: usize,
    pub keys: KeySample,
    /// The terms the lost writes were acknowledged in.
    pub acked_terms: Vec<u64>,
    /// Lowest and highest offset lost.
    pub offsets: (u64, u64),
}

/// The writes power loss took from one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsyncLoss {
    pub pid: Pid,
    pub lost: usize,
    pub keys: KeySample,
    /// Every machine restart that explained one of them.
    pub restarts: Vec<(String, Duration)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BoundReport {
    pub allowed: Vec<(LostWrite, LossReason)>,
    pub forbidden: Vec<LostWrite>,
    /// Lost at a takeover that passed over a replica holding them ([`ViolationKind::LaggingLeader`]).
    pub passed_over: Vec<LostWrite>,
    /// Every takeover that overwrote an allowed loss.
    pub takeovers: Vec<ChargedTakeover>,
    /// Allowed losses per failover, by partition and term.
    pub per_failover: Vec<FailoverLoss>,
    pub fsync: Vec<FsyncLoss>,
    pub violations: Vec<Violation>,
}

impl BoundReport {
    /// The failover that lost the most writes.
    pub fn largest(&self) -> Option<&FailoverLoss> {
        self.per_failover.iter().max_by_key(|f| (f.lost, std::cmp::Reverse((f.pid, f.term))))
    }

    pub fn allowed_in(&self, pid: Pid) -> usize {
        self.allowed.iter().filter(|(l, _)| l.pid == pid).count()
    }

    pub fn forbidden_in(&self, pid: Pid) -> usize {
        self.forbidden.iter().chain(&self.passed_over).filter(|l| l.pid == pid).count()
    }
}

/// The first later term that began at or before `offset`.
fn overwriting_term(history: &[(u64, u64)], term: u64, offset: u64) -> Option<(u64, u64)> {
    history.iter().copied().filter(|&(t, start)| t > term && start <= offset).min_by_key(|&(t, _)| t)
}

/// Until when `endpoint` may have held the write in its page cache only: one sync interval (+ slack) after the ack,
/// plus one slow fsync while a `slow_fsync` fault is on, pushed back while nothing synced it: its process crashed
/// (a restarted tablet syncs the binlog it finds at start) or was paused (it syncs at its next tick after the
/// resume), its disk failed every fsync (`write_error`: the next tick after the clear), or its partition was
/// unloaded by a broken binlog (until it is loaded again). `None`: syncing never resumed.
fn unsynced_until(
    lost: &LostWrite,
    endpoint: &str,
    faults: &[FaultEvent],
    ev: ReplicaEvents<'_>,
    fsync: Fsync,
) -> Option<Duration> {
    let mut until = lost.acked_at + fsync.interval + fsync.slack;
    // A slow disk finishes the sync that covers the write one slow fsync later.
    let slow = faults.iter().any(|f| {
        f.endpoint == endpoint
            && f.cause == FaultCause::SlowFsync
            && f.kind == FaultKind::Down
            && f.at <= until
            && first_fault(faults, endpoint, FaultCause::SlowFsync, FaultKind::Up, f.at..)
                .is_none_or(|cleared| cleared >= lost.acked_at)
    });
    if slow {
        until += fsync.slow;
    }
    // Each stop of syncing that began after the write was sent, and when syncing resumed (`None`: never).
    let mut stops: Vec<(Duration, Option<Duration>)> = faults
        .iter()
        .filter(|f| {
            f.endpoint == endpoint
                && f.kind == FaultKind::Down
                && matches!(f.cause, FaultCause::Crash | FaultCause::Pause | FaultCause::DiskError)
                && f.at >= lost.attempted_at
        })
        .map(|stop| {
            let up = first_fault(faults, endpoint, stop.cause, FaultKind::Up, stop.at..);
            let resume = match stop.cause {
                FaultCause::Pause | FaultCause::DiskError => up.map(|u| u + fsync.interval),
                _ => up,
            };
            (stop.at, resume)
        })
        .collect();
    stops.extend(
        ev.unloads
            .iter()
            .filter(|(p, e, at)| *p == lost.pid && e == endpoint && *at >= lost.attempted_at)
            .map(|(_, _, at)| (*at, ev.first_load(lost.pid, endpoint, *at))),
    );
    stops.sort();
    for (at, resume) in stops {
        if at > until {
            break;
        }
        until = until.max(resume? + fsync.slack);
    }
    Some(until)
}

/// Whether `endpoint` could not have received anything of partition `pid` between `from` and `to`: it held the
/// partition at no moment of that window while counted as alive. A replica holds the partition until its process
/// stops (crash, machine off, pause); after a pause it holds it again at the resume, after a crash or power loss
/// only once its restarted tablet loaded it again. A replica the metadata marks not alive is no leader's follower
/// (its replicator was removed first), so it receives nothing either.
fn never_held(
    pid: Pid,
    endpoint: &str,
    faults: &[FaultEvent],
    ev: ReplicaEvents<'_>,
    from: Duration,
    to: Duration,
) -> bool {
    let stops = |c: FaultCause| matches!(c, FaultCause::Crash | FaultCause::MachineRestart | FaultCause::Pause);
    let mut events: Vec<&FaultEvent> = faults.iter().filter(|f| f.endpoint == endpoint && stops(f.cause)).collect();
    events.sort_by_key(|f| f.at);
    // Intervals in which the process held the partition.
    let mut held: Vec<(Duration, Duration)> = Vec::new();
    let mut holding: Option<Duration> = Some(Duration::ZERO);
    let mut down: Vec<FaultCause> = Vec::new();
    let mut restarted = false;
    for f in events {
        match f.kind {
            FaultKind::Down => {
                if let Some(a) = holding.take()
                    && a <= f.at
                {
                    held.push((a, f.at));
                }
                if !down.contains(&f.cause) {
                    down.push(f.cause);
                }
                restarted |= f.cause != FaultCause::Pause;
            }
            FaultKind::Up => {
                down.retain(|c| *c != f.cause);
                if down.is_empty() {
                    holding = if restarted { ev.first_load(pid, endpoint, f.at) } else { Some(f.at) };
                    restarted = false;
                }
            }
        }
    }
    if let Some(a) = holding {
        held.push((a, Duration::MAX));
    }
    // Intervals in which the metadata counted it alive (alive until a recorded change says otherwise).
    let mut alive: Vec<(Duration, Duration)> = Vec::new();
    let mut since = Some(Duration::ZERO);
    let mut changes: Vec<(Duration, bool)> = ev.alive_changes(pid, endpoint).collect();
    changes.sort_by_key(|c| c.0);
    for (at, up) in changes {
        match (since, up) {
            (Some(a), false) => {
                alive.push((a, at));
                since = None;
            }
            (None, true) => since = Some(at),
            _ => {}
        }
    }
    if let Some(a) = since {
        alive.push((a, Duration::MAX));
    }
    let meet = |x: (Duration, Duration), y: (Duration, Duration)| x.0.max(y.0) <= x.1.min(y.1);
    !held.iter().any(|&h| alive.iter().any(|&a| meet(h, a) && meet((h.0.max(a.0), h.1.min(a.1)), (from, to))))
}

/// The machine restarts that took the write from every replica that could have held it: each replica lost power
/// inside its unsynced window, or held the partition at no moment from the write until the last of those power
/// losses (it never received the write, and nobody was left to send it). At least one replica must have lost
/// power; `None` otherwise.
fn unsynced_everywhere(
    lost: &LostWrite,
    replicas: &[String],
    faults: &[FaultEvent],
    ev: ReplicaEvents<'_>,
    restarts: &[&FaultEvent],
    fsync: Fsync,
) -> Option<Vec<(String, Duration)>> {
    let lost_power: Vec<Option<(String, Duration)>> = replicas
        .iter()
        .map(|ep| {
            let until = unsynced_until(lost, ep, faults, ev, fsync);
            restarts
                .iter()
                .find(|f| &f.endpoint == ep && f.at >= lost.attempted_at && until.is_none_or(|u| f.at <= u))
                .map(|f| (ep.clone(), f.at))
        })
        .collect();
    let last = lost_power.iter().flatten().map(|(_, at)| *at).max()?;
    // Entries flow from the leader that wrote them only: a replica cut off from it from the attempt until the
    // power losses could not have received the write either.
    let never_had = |ep: &String| {
        never_held(lost.pid, ep, faults, ev, lost.attempted_at, last)
            || (*ep != lost.endpoint && ev.cut_throughout(&lost.endpoint, ep, lost.attempted_at, last))
    };
    replicas
        .iter()
        .zip(&lost_power)
        .all(|(ep, p)| p.is_some() || never_had(ep))
        .then(|| lost_power.into_iter().flatten().collect())
}

/// Judges every lost write of one table.
pub fn check_loss_bound(
    lost: &[LostWrite],
    observed: &Observed,
    layouts: &[PartitionLayout],
    faults: &[FaultEvent],
    fsync: Fsync,
    policy: LossPolicy,
) -> BoundReport {
    check_loss_bound_with_events(lost, observed, layouts, faults, ReplicaEvents::default(), fsync, policy)
}

/// How long before a takeover a candidate must already have been able to take part: a leader selection probes
/// the followers first and changes roles after, so a replica that came back (was loaded, was marked alive, was
/// reachable again) within this window may have missed the probe without any fault of the nameserver.
pub const SELECTION_WINDOW: Duration = Duration::from_secs(1);

/// A replica taking the lead in a later term without a lost write in its log.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Takeover {
    term: u64,
    /// The new term's first offset (its leader's last offset + 1).
    start: u64,
    /// Who and when, when the replicas' positions told it.
    by: Option<(String, Duration)>,
}

/// The takeover that overwrote `l`: from the replicas' positions, the first replica to lead a later term whose
/// log did not hold the entry; without positions, the first later term of the nameserver's history that began at
/// or before it.
fn overwritten_by(l: &LostWrite, observed: &Observed, ev: ReplicaEvents<'_>) -> Option<Takeover> {
    if ev.positions.is_empty() {
        let history = observed.partition(l.pid).map(|p| p.term_offset.as_slice()).unwrap_or_default();
        return overwriting_term(history, l.term, l.offset).map(|(term, start)| Takeover { term, start, by: None });
    }
    ev.leader_starts(l.pid).into_iter().filter(|&(at, _, term, _)| term > l.term && at >= l.attempted_at).find_map(
        |(at, endpoint, term, last)| {
            let held = if endpoint == l.endpoint {
                last >= l.offset && leader_holds(l, ev, at)
            } else {
                holds_at(l.pid, endpoint, ev, l.term, l.offset, at)
            };
            (!held).then(|| Takeover { term, start: last + 1, by: Some((endpoint.to_string(), at)) })
        },
    )
}

/// Whether the leader that acknowledged `l` still held it at `at`: it wrote the entry (leaders trace no
/// position per write), so it does unless a later position shows its log dropped or cut below the offset.
fn leader_holds(l: &LostWrite, ev: ReplicaEvents<'_>, at: Duration) -> bool {
    match ev.position_at(l.pid, &l.endpoint, at) {
        None => true,
        Some(p) if p.at <= l.attempted_at => p.held,
        Some(p) => p.held && p.offset >= l.offset,
    }
}

/// Whether the takeover of `pid` at `at` is the first after an operator's `changeleader` of it: the operator
/// chose (a named candidate, or a live leader moved away with the writes only it held), no leader selection did.
fn ordered_by_operator(pid: Pid, at: Duration, ev: ReplicaEvents<'_>) -> bool {
    ev.ordered.iter().filter(|(p, _)| *p == pid).any(|&(_, ordered)| {
        ordered <= at && ev.leader_starts(pid).into_iter().find(|s| s.0 >= ordered).is_some_and(|s| s.0 == at)
    })
}

/// A replica other than the new leader that held `l` and could have been chosen when `t` happened, with its
/// offset then: the selection passed over a longer log.
fn passed_over(
    l: &LostWrite,
    t: &Takeover,
    replicas: &[String],
    faults: &[FaultEvent],
    ev: ReplicaEvents<'_>,
) -> Option<(String, u64)> {
    let (leader, at) = t.by.as_ref()?;
    if ordered_by_operator(l.pid, *at, ev) {
        return None;
    }
    let since = at.saturating_sub(SELECTION_WINDOW);
    replicas.iter().filter(|r| *r != leader).find_map(|r| {
        let held =
            if *r == l.endpoint { leader_holds(l, ev, since) } else { holds_at(l.pid, r, ev, l.term, l.offset, since) };
        let steady = faults.iter().all(|f| f.endpoint != *r || f.at < since || f.at > *at);
        let could = steady
            && unavailable_at(l.pid, r, faults, ev, since).is_none()
            && unavailable_at(l.pid, r, faults, ev, *at).is_none();
        (held && could).then(|| (r.clone(), ev.position_at(l.pid, r, *at).map_or(0, |p| p.offset)))
    })
}

/// [`check_loss_bound`], with the replicas' own records: their log positions over time, when each was loaded on
/// its tablet and marked alive, the network between the servers and the active nameserver. A loss is charged to
/// the takeover that overwrote it ([`overwritten_by`]) and allowed only if no available replica that held it was
/// passed over; a replica that held the partition at no moment between the write and the power losses (down, not
/// loaded again, or marked not alive) never had the write.
pub fn check_loss_bound_with_events(
    lost: &[LostWrite],
    observed: &Observed,
    layouts: &[PartitionLayout],
    faults: &[FaultEvent],
    ev: ReplicaEvents<'_>,
    fsync: Fsync,
    policy: LossPolicy,
) -> BoundReport {
    let restarts: Vec<&FaultEvent> =
        faults.iter().filter(|f| f.kind == FaultKind::Down && f.cause == FaultCause::MachineRestart).collect();
    let mut report = BoundReport::default();
    let mut passed: Vec<PassedOver> = Vec::new();
    for l in lost {
        let replicas: Vec<String> = match layouts.iter().find(|p| p.pid == l.pid) {
            Some(layout) => layout.replicas.clone(),
            None => observed
                .partition(l.pid)
                .map(|p| p.replicas.iter().map(|r| r.endpoint.clone()).collect())
                .unwrap_or_default(),
        };
        if let Some(t) = overwritten_by(l, observed, ev) {
            match passed_over(l, &t, &replicas, faults, ev) {
                Some((other, offset)) => passed.push(PassedOver { lost: l.clone(), takeover: t, other, offset }),
                None => {
                    report.allowed.push((l.clone(), LossReason::Overwritten { term: t.term, start: t.start }));
                    report.takeovers.push(ChargedTakeover { pid: l.pid, term: t.term, start: t.start, by: t.by });
                }
            }
            continue;
        }
        match unsynced_everywhere(l, &replicas, faults, ev, &restarts, fsync) {
            Some(restarts) => report.allowed.push((l.clone(), LossReason::NotFsynced { restarts })),
            None => report.forbidden.push(l.clone()),
        }
    }
    // A damaged final record takes the write it held with it.
    for c in faults.iter().filter(|f| f.kind == FaultKind::Down && f.cause == FaultCause::CorruptTail) {
        let mut last: BTreeMap<Pid, usize> = BTreeMap::new();
        for (i, l) in report.forbidden.iter().enumerate() {
            // Sent before the fault (its answer may reach the client after it).
            if l.endpoint == c.endpoint && l.attempted_at <= c.at {
                let best = last.entry(l.pid).or_insert(i);
                if report.forbidden[*best].offset < l.offset {
                    *best = i;
                }
            }
        }
        let mut take: Vec<usize> = last.into_values().collect();
        take.sort_unstable_by(|a, b| b.cmp(a));
        for i in take {
            let l = report.forbidden.remove(i);
            report.allowed.push((l, LossReason::CorruptedTail { endpoint: c.endpoint.clone(), at: c.at }));
        }
    }
    report.takeovers.sort();
    report.takeovers.dedup();
    report.per_failover = per_failover(&report.allowed, &report.takeovers);
    for f in &mut report.per_failover {
        f.ordered = f.taken.as_ref().is_some_and(|(_, at)| ordered_by_operator(f.pid, *at, ev));
    }
    report.fsync = per_power_loss(&report.allowed);
    report.violations = violations(&report, observed, fsync, policy);
    if policy != LossPolicy::Any {
        report.violations.extend(lagging_violations(&passed));
    }
    report.passed_over = passed.into_iter().map(|p| p.lost).collect();
    report
}

/// One violation per takeover that passed over a replica holding writes it then lost.
fn lagging_violations(passed: &[PassedOver]) -> Vec<Violation> {
    let mut groups: BTreeMap<(Pid, u64), Vec<&PassedOver>> = BTreeMap::new();
    for p in passed {
        groups.entry((p.lost.pid, p.takeover.term)).or_default().push(p);
    }
    groups
        .into_iter()
        .map(|((pid, term), ps)| {
            let ls: Vec<&LostWrite> = ps.iter().map(|p| &p.lost).collect();
            let first = ps[0];
            let (leader, at) = first.takeover.by.clone().unwrap_or_default();
            let why = format!(
                "{} acknowledged writes lost when {leader} took the lead in term {term} at {} with its log ending at \
                 offset {}, while {}, running, loaded, marked alive and reachable from the active nameserver, held \
                 them (its log at offset {}): the leader selection passed over a longer log",
                ls.len(),
                secs(at),
                first.takeover.start.saturating_sub(1),
                first.other,
                first.offset,
            );
            let mut v = lost_violation(ViolationKind::LaggingLeader, pid, &ls, why);
            v.endpoints.push(leader);
            v.endpoints.push(first.other.clone());
            v.endpoints.sort();
            v.endpoints.dedup();
            v.with_window(at.saturating_sub(Duration::from_secs(2)), Some(at + Duration::from_secs(1)))
        })
        .collect()
}

fn per_failover(allowed: &[(LostWrite, LossReason)], takeovers: &[ChargedTakeover]) -> Vec<FailoverLoss> {
    let mut groups: BTreeMap<(Pid, u64, u64), Vec<&LostWrite>> = BTreeMap::new();
    for (l, reason) in allowed {
        if let LossReason::Overwritten { term, start } = reason {
            groups.entry((l.pid, *term, *start)).or_default().push(l);
        }
    }
    groups
        .into_iter()
        .map(|((pid, term, start), ls)| {
            let mut acked_terms: Vec<u64> = ls.iter().map(|l| l.term).collect();
            acked_terms.sort();
            acked_terms.dedup();
            let taken = takeovers
                .iter()
                .find(|c| c.pid == pid && c.term == term && c.start == start)
                .and_then(|c| c.by.clone());
            let top = ls.iter().map(|l| l.offset).max().expect("non-empty group");
            FailoverLoss {
                pid,
                term,
                start,
                // Every acknowledged entry beyond the new leader's log was lost with it (a log is a prefix), so
                // the old leaders' highest acknowledged offset is the highest lost one.
                suffix: taken.as_ref().map(|_| top.saturating_sub(start.saturating_sub(1))),
                taken,
                ordered: false,
                lost: ls.len(),
                keys: KeySample::of(ls.iter().map(|l| l.key.as_str())),
                acked_terms,
                offsets: (ls.iter().map(|l| l.offset).min().expect("non-empty group"), top),
            }
        })
        .collect()
}

fn per_power_loss(allowed: &[(LostWrite, LossReason)]) -> Vec<FsyncLoss> {
    type Group<'a> = (Vec<&'a LostWrite>, Vec<(String, Duration)>);
    let mut groups: BTreeMap<Pid, Group<'_>> = BTreeMap::new();
    for (l, reason) in allowed {
        if let LossReason::NotFsynced { restarts } = reason {
            let g = groups.entry(l.pid).or_default();
            g.0.push(l);
            g.1.extend(restarts.iter().cloned());
        }
    }
    groups
        .into_iter()
        .map(|(pid, (ls, mut restarts))| {
            restarts.sort();
            restarts.dedup();
            FsyncLoss { pid, lost: ls.len(), keys: KeySample::of(ls.iter().map(|l| l.key.as_str())), restarts }
        })
        .collect()
}

fn lost_violation(kind: ViolationKind, pid: Pid, ls: &[&LostWrite], why: String) -> Violation {
    let from = ls.iter().map(|l| l.attempted_at).min().unwrap_or_default();
    Violation::new(kind, Some(pid), why)
        .with_keys(KeySample::of(ls.iter().map(|l| l.key.as_str())))
        .with_terms(ls.iter().map(|l| l.term))
        .with_offsets(ls.iter().map(|l| l.offset))
        .with_endpoints(ls.iter().map(|l| l.endpoint.clone()))
        .with_window(from, None)
}

fn offsets_text(ls: &[&LostWrite]) -> String {
    let lo = ls.iter().map(|l| l.offset).min().unwrap_or_default();
    let hi = ls.iter().map(|l| l.offset).max().unwrap_or_default();
    if lo == hi { format!("offset {lo}") } else { format!("offsets {lo}..={hi}") }
}

fn violations(report: &BoundReport, observed: &Observed, fsync: Fsync, policy: LossPolicy) -> Vec<Violation> {
    if policy == LossPolicy::Any {
        return vec![];
    }
    let mut out = Vec::new();
    let mut forbidden: BTreeMap<Pid, Vec<&LostWrite>> = BTreeMap::new();
    for l in &report.forbidden {
        forbidden.entry(l.pid).or_default().push(l);
    }
    for (pid, ls) in forbidden {
        let mut terms: Vec<u64> = ls.iter().map(|l| l.term).collect();
        terms.dedup();
        let history = observed.partition(pid).map(|p| p.term_offset.clone()).unwrap_or_default();
        let why = format!(
            "{} acknowledged writes lost outside the bound: acked in term(s) {terms:?} at {}; the term history \
             {history:?} has no later term starting at or before them, and not every replica lost power within {} \
             after the ack",
            ls.len(),
            offsets_text(&ls),
            secs(fsync.interval + fsync.slack),
        );
        out.push(lost_violation(ViolationKind::LostOutsideBound, pid, &ls, why));
    }
    if policy == LossPolicy::None {
        let mut allowed: BTreeMap<Pid, Vec<&LostWrite>> = BTreeMap::new();
        for (l, _) in &report.allowed {
            allowed.entry(l.pid).or_default().push(l);
        }
        for (pid, ls) in allowed {
            let why = format!(
                "{} acknowledged writes lost (at {}), within the bound, but the scenario expects no loss",
                ls.len(),
                offsets_text(&ls)
            );
            out.push(lost_violation(ViolationKind::LostUnexpectedly, pid, &ls, why));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::input::PartitionFinal;
    use crate::check::set::tests::ms;

    fn lost(row: u64, pid: Pid, term: u64, offset: u64, acked_ms: u64) -> LostWrite {
        LostWrite {
            row,
            key: format!("k{row}"),
            pid,
            term,
            offset,
            endpoint: "t1".into(),
            attempted_at: ms(acked_ms - 1),
            acked_at: ms(acked_ms),
        }
    }

    fn history(pid: Pid, terms: &[(u64, u64)]) -> Observed {
        Observed {
            partitions: vec![PartitionFinal { pid, term_offset: terms.to_vec(), replicas: vec![] }],
            ops_stuck: vec![],
        }
    }

    fn layout(pid: Pid) -> Vec<PartitionLayout> {
        vec![PartitionLayout { pid, replicas: vec!["t1".into(), "t2".into(), "t3".into()] }]
    }

    fn power_loss(endpoint: &str, at_ms: u64) -> FaultEvent {
        FaultEvent {
            at: ms(at_ms),
            kind: FaultKind::Down,
            endpoint: endpoint.into(),
            cause: FaultCause::MachineRestart,
        }
    }

    /// The bounded policy with the tests' fsync settings and the run's replica events.
    fn bounded(
        l: &[LostWrite],
        obs: &Observed,
        layouts: &[PartitionLayout],
        faults: &[FaultEvent],
        ev: ReplicaEvents<'_>,
    ) -> BoundReport {
        check_loss_bound_with_events(l, obs, layouts, faults, ev, fsync(), LossPolicy::Bounded)
    }

    fn fsync() -> Fsync {
        Fsync { interval: ms(1000), slack: ms(100), slow: ms(0) }
    }

    #[test]
    fn a_corrupted_tail_allows_only_the_last_write_its_replica_acknowledged_before_it() {
        let obs = history(0, &[(1, 0)]);
        // Offset 6 was sent before the fault and acknowledged just after it; offset 7 was sent after.
        let ls = vec![lost(1, 0, 1, 5, 100), lost(2, 0, 1, 6, 201), lost(3, 0, 1, 7, 300)];
        let corrupt = FaultEvent { cause: FaultCause::CorruptTail, ..power_loss("t1", 200) };
        let r = check_loss_bound(&ls, &obs, &layout(0), std::slice::from_ref(&corrupt), fsync(), LossPolicy::Bounded);
        let allowed: Vec<u64> = r.allowed.iter().map(|(l, _)| l.offset).collect();
        assert_eq!(allowed, [6]);
        assert!(matches!(&r.allowed[0].1, LossReason::CorruptedTail { endpoint, .. } if endpoint == "t1"));
        // Offset 5 was not the final record, offset 7 was sent after the fault.
        let forbidden: Vec<u64> = r.forbidden.iter().map(|l| l.offset).collect();
        assert_eq!(forbidden, [5, 7]);
        // A corruption of another replica allows nothing.
        let other = FaultEvent { endpoint: "t2".into(), ..corrupt };
        let r = check_loss_bound(&ls, &obs, &layout(0), &[other], fsync(), LossPolicy::Bounded);
        assert!(r.allowed.is_empty());
    }

    #[test]
    fn the_overwritten_suffix_is_allowed_and_charged_to_its_failover() {
        // Term 2 began at offset 10: entries 10.. of term 1 were the old leader's un-replicated suffix.
        let obs = history(0, &[(1, 0), (2, 10)]);
        let ls = vec![lost(1, 0, 1, 10, 100), lost(2, 0, 1, 11, 110), lost(3, 0, 1, 12, 120)];
        let r = check_loss_bound(&ls, &obs, &layout(0), &[], fsync(), LossPolicy::Bounded);
        assert!(r.forbidden.is_empty() && r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!(r.allowed.len(), 3);
        assert_eq!(r.allowed[0].1, LossReason::Overwritten { term: 2, start: 10 });
        assert_eq!(r.per_failover.len(), 1);
        let f = &r.per_failover[0];
        assert_eq!((f.pid, f.term, f.start, f.lost, f.offsets), (0, 2, 10, 3, (10, 12)));
        assert_eq!(f.acked_terms, vec![1]);
        assert_eq!(r.largest(), Some(f));
    }

    #[test]
    fn a_lost_write_outside_the_bound_is_a_violation() {
        // Term 2 began at 10, after offset 9: the new leader had entry 9, so losing it is a bug.
        let obs = history(0, &[(1, 0), (2, 10)]);
        let ls = vec![lost(1, 0, 1, 9, 90), lost(2, 0, 1, 10, 100)];
        let r = check_loss_bound(&ls, &obs, &layout(0), &[], fsync(), LossPolicy::Bounded);
        assert_eq!(r.forbidden.iter().map(|l| l.row).collect::<Vec<_>>(), vec![1]);
        assert_eq!(r.allowed.len(), 1);
        assert_eq!(r.violations.len(), 1);
        let v = &r.violations[0];
        assert_eq!((v.kind, v.pid), (ViolationKind::LostOutsideBound, Some(0)));
        assert_eq!(v.keys.first, vec!["k1"]);
        assert_eq!((v.terms.clone(), v.offsets.clone()), (vec![1], vec![9]));
        assert_eq!(v.hint.from, ms(89));
        assert!(v.why.contains("offset 9") && v.why.contains("[(1, 0), (2, 10)]"), "{}", v.why);
    }

    #[test]
    fn a_loss_in_the_latest_term_is_a_violation() {
        let obs = history(0, &[(1, 0), (2, 10)]);
        let r = check_loss_bound(&[lost(1, 0, 2, 15, 100)], &obs, &layout(0), &[], fsync(), LossPolicy::Bounded);
        assert_eq!(r.forbidden.len(), 1);
        assert_eq!(r.violations[0].kind, ViolationKind::LostOutsideBound);
    }

    #[test]
    fn the_first_later_term_that_overwrote_is_charged() {
        // Term 3 began after offset 7 (its leader had it), term 4 was elected from a replica that lagged.
        let obs = history(0, &[(2, 0), (3, 10), (4, 5)]);
        let r = check_loss_bound(&[lost(1, 0, 2, 7, 70)], &obs, &layout(0), &[], fsync(), LossPolicy::Bounded);
        assert_eq!(r.allowed[0].1, LossReason::Overwritten { term: 4, start: 5 });
    }

    #[test]
    fn power_loss_of_every_replica_before_fsync_is_allowed() {
        let obs = history(0, &[(1, 0)]);
        let faults = vec![power_loss("t1", 500), power_loss("t2", 900), power_loss("t3", 1150)];
        let r = check_loss_bound(&[lost(1, 0, 1, 5, 100)], &obs, &layout(0), &faults, fsync(), LossPolicy::Bounded);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!(r.fsync.len(), 1);
        assert_eq!(r.fsync[0].restarts.len(), 3);
        assert!(r.per_failover.is_empty() && r.largest().is_none());
    }

    #[test]
    fn power_loss_of_some_replicas_or_too_late_explains_nothing() {
        let obs = history(0, &[(1, 0)]);
        let two = vec![power_loss("t1", 500), power_loss("t2", 500)];
        let r = check_loss_bound(&[lost(1, 0, 1, 5, 100)], &obs, &layout(0), &two, fsync(), LossPolicy::Bounded);
        assert_eq!(r.forbidden.len(), 1, "t3 kept its disk");
        // The third restart comes after interval + slack (100ms + 1s + 100ms = 1.2s).
        let late = vec![power_loss("t1", 500), power_loss("t2", 500), power_loss("t3", 1201)];
        let r = check_loss_bound(&[lost(1, 0, 1, 5, 100)], &obs, &layout(0), &late, fsync(), LossPolicy::Bounded);
        assert_eq!(r.forbidden.len(), 1, "t3 had fsynced by then");
        // A restart before the write was attempted cannot have lost it (t1 was running again when it was sent).
        let back = FaultEvent { kind: FaultKind::Up, ..power_loss("t1", 80) };
        let early = vec![power_loss("t1", 50), back, power_loss("t2", 500), power_loss("t3", 500)];
        let loaded = [(0, "t1".to_string(), ms(90))];
        let l = [lost(1, 0, 1, 5, 100)];
        let r = bounded(&l, &obs, &layout(0), &early, ReplicaEvents { loads: &loaded, ..Default::default() });
        assert_eq!(r.forbidden.len(), 1);
        // Crashes keep the page cache: never an explanation.
        let crashes: Vec<_> =
            ["t1", "t2", "t3"].iter().map(|e| FaultEvent { cause: FaultCause::Crash, ..power_loss(e, 500) }).collect();
        let r = check_loss_bound(&[lost(1, 0, 1, 5, 100)], &obs, &layout(0), &crashes, fsync(), LossPolicy::Bounded);
        assert_eq!(r.forbidden.len(), 1);
    }

    #[test]
    fn a_replica_stopped_before_its_sync_stays_unsynced_until_it_runs_again() {
        let obs = history(0, &[(1, 0)]);
        let one = vec![PartitionLayout { pid: 0, replicas: vec!["t1".into()] }];
        let ev = |cause, kind, at_ms| FaultEvent { at: ms(at_ms), kind, endpoint: "t1".into(), cause };
        let crash = ev(FaultCause::Crash, FaultKind::Down, 500);
        // Acked at 100 ms, crashed at 500 ms (before its sync at 1.1 s), power lost at 5 s while still down.
        let faults = vec![crash.clone(), power_loss("t1", 5000)];
        let r = check_loss_bound(&[lost(1, 0, 1, 5, 100)], &obs, &one, &faults, fsync(), LossPolicy::Bounded);
        assert!(r.forbidden.is_empty(), "the crashed process never synced it");
        // Started again at 3 s: it synced at start, so a power loss at 5 s explains nothing.
        let faults = vec![crash.clone(), ev(FaultCause::Crash, FaultKind::Up, 3000), power_loss("t1", 5000)];
        let r = check_loss_bound(&[lost(1, 0, 1, 5, 100)], &obs, &one, &faults, fsync(), LossPolicy::Bounded);
        assert_eq!(r.forbidden.len(), 1);
        // ... but one right after the start (within the slack) does.
        let faults = vec![crash.clone(), ev(FaultCause::Crash, FaultKind::Up, 3000), power_loss("t1", 3050)];
        let r = check_loss_bound(&[lost(1, 0, 1, 5, 100)], &obs, &one, &faults, fsync(), LossPolicy::Bounded);
        assert!(r.forbidden.is_empty());
        // A crash after the sync point changes nothing.
        let late = ev(FaultCause::Crash, FaultKind::Down, 1500);
        let r = check_loss_bound(
            &[lost(1, 0, 1, 5, 100)],
            &obs,
            &one,
            &[late, power_loss("t1", 5000)],
            fsync(),
            LossPolicy::Bounded,
        );
        assert_eq!(r.forbidden.len(), 1);
        // A pause holds the sync off until one interval after the resume.
        let faults = vec![
            ev(FaultCause::Pause, FaultKind::Down, 500),
            ev(FaultCause::Pause, FaultKind::Up, 3000),
            power_loss("t1", 4000),
        ];
        let r = check_loss_bound(&[lost(1, 0, 1, 5, 100)], &obs, &one, &faults, fsync(), LossPolicy::Bounded);
        assert!(r.forbidden.is_empty());
    }

    #[test]
    fn a_replica_down_from_before_the_write_until_the_power_loss_never_had_it() {
        let obs = history(0, &[(1, 0)]);
        let two = vec![PartitionLayout { pid: 0, replicas: vec!["t1".into(), "t2".into()] }];
        let ev = |ep: &str, cause, kind, at_ms| FaultEvent { at: ms(at_ms), kind, endpoint: ep.into(), cause };
        // t2's machine went off at 50 ms and came back at 2 s; t1 acknowledged at 100 ms and lost power at 600 ms.
        let t2_off = power_loss("t2", 50);
        let faults =
            vec![t2_off.clone(), power_loss("t1", 600), ev("t2", FaultCause::MachineRestart, FaultKind::Up, 2000)];
        let r = check_loss_bound(&[lost(1, 0, 1, 5, 100)], &obs, &two, &faults, fsync(), LossPolicy::Bounded);
        assert!(r.forbidden.is_empty(), "t2 was off the whole time");
        assert!(matches!(&r.allowed[0].1, LossReason::NotFsynced { restarts } if restarts.len() == 1));
        // Back at 400 ms and loaded at 450 ms, before t1 lost power: it may have caught up.
        let faults =
            vec![t2_off.clone(), ev("t2", FaultCause::MachineRestart, FaultKind::Up, 400), power_loss("t1", 600)];
        let loads = [(0, "t2".to_string(), ms(450))];
        let l = [lost(1, 0, 1, 5, 100)];
        let r = bounded(&l, &obs, &two, &faults, ReplicaEvents { loads: &loads, ..Default::default() });
        assert_eq!(r.forbidden.len(), 1);
        // A crash of t2 after the write: it may have had it.
        let faults = vec![ev("t2", FaultCause::Crash, FaultKind::Down, 150), power_loss("t1", 600)];
        let r = check_loss_bound(&[lost(1, 0, 1, 5, 100)], &obs, &two, &faults, fsync(), LossPolicy::Bounded);
        assert_eq!(r.forbidden.len(), 1);
        // Nobody lost power: being down explains nothing.
        let r = check_loss_bound(&[lost(1, 0, 1, 5, 100)], &obs, &two, &[t2_off], fsync(), LossPolicy::Bounded);
        assert_eq!(r.forbidden.len(), 1);
    }

    #[test]
    fn a_slow_disk_stretches_the_window_by_one_slow_fsync() {
        let obs = history(0, &[(1, 0)]);
        let one = vec![PartitionLayout { pid: 0, replicas: vec!["t1".into()] }];
        let slow = FaultEvent { cause: FaultCause::SlowFsync, ..power_loss("t1", 50) };
        let slow_fsync = Fsync { slow: ms(1000), ..fsync() };
        // Acked at 100 ms; the window is 1.2 s without the slow disk, 2.2 s with it.
        let faults = vec![slow.clone(), power_loss("t1", 2000)];
        let r = check_loss_bound(&[lost(1, 0, 1, 5, 100)], &obs, &one, &faults, slow_fsync, LossPolicy::Bounded);
        assert!(r.forbidden.is_empty());
        // Cleared before the write: the disk was fast again.
        let cleared = FaultEvent { kind: FaultKind::Up, ..slow.clone() };
        let cleared = FaultEvent { at: ms(80), ..cleared };
        let faults = vec![slow, cleared, power_loss("t1", 2000)];
        let r = check_loss_bound(&[lost(1, 0, 1, 5, 100)], &obs, &one, &faults, slow_fsync, LossPolicy::Bounded);
        assert_eq!(r.forbidden.len(), 1);
    }

    #[test]
    fn a_replica_restarted_but_not_loaded_again_never_had_the_write() {
        let obs = history(0, &[(1, 0)]);
        let two = vec![PartitionLayout { pid: 0, replicas: vec!["t1".into(), "t2".into()] }];
        let ev = |kind, at_ms| FaultEvent { at: ms(at_ms), kind, endpoint: "t2".into(), cause: FaultCause::Crash };
        // t2 crashed at 50 ms and started at 300 ms; t1 acknowledged at 100 ms and lost power at 600 ms.
        let faults = vec![ev(FaultKind::Down, 50), ev(FaultKind::Up, 300), power_loss("t1", 600)];
        let l = [lost(1, 0, 1, 5, 100)];
        // Not loaded before the power loss: it held nothing.
        let r = bounded(
            &l,
            &obs,
            &two,
            &faults,
            ReplicaEvents { loads: &[(0, "t2".into(), ms(900))], ..Default::default() },
        );
        assert!(r.forbidden.is_empty());
        // Loaded at 400 ms: it may have caught up.
        let r = bounded(
            &l,
            &obs,
            &two,
            &faults,
            ReplicaEvents { loads: &[(0, "t2".into(), ms(400))], ..Default::default() },
        );
        assert_eq!(r.forbidden.len(), 1);
        // Another partition's load says nothing about this one.
        let r = bounded(
            &l,
            &obs,
            &two,
            &faults,
            ReplicaEvents { loads: &[(1, "t2".into(), ms(400))], ..Default::default() },
        );
        assert!(r.forbidden.is_empty());
    }

    #[test]
    fn a_replica_paused_through_the_window_never_had_the_write() {
        let obs = history(0, &[(1, 0)]);
        let two = vec![PartitionLayout { pid: 0, replicas: vec!["t1".into(), "t2".into()] }];
        let ev = |kind, at_ms| FaultEvent { at: ms(at_ms), kind, endpoint: "t2".into(), cause: FaultCause::Pause };
        let l = [lost(1, 0, 1, 5, 100)];
        // Paused from 50 ms to 900 ms; t1 lost power at 600 ms.
        let faults = vec![ev(FaultKind::Down, 50), ev(FaultKind::Up, 900), power_loss("t1", 600)];
        let r = bounded(&l, &obs, &two, &faults, ReplicaEvents::default());
        assert!(r.forbidden.is_empty());
        // Resumed at 400 ms: it held the partition again (no reload after a pause) and may have caught up.
        let faults = vec![ev(FaultKind::Down, 50), ev(FaultKind::Up, 400), power_loss("t1", 600)];
        let r = bounded(&l, &obs, &two, &faults, ReplicaEvents::default());
        assert_eq!(r.forbidden.len(), 1);
    }

    #[test]
    fn a_replica_marked_not_alive_through_the_window_never_had_the_write() {
        let obs = history(0, &[(1, 0)]);
        let two = vec![PartitionLayout { pid: 0, replicas: vec!["t1".into(), "t2".into()] }];
        let l = [lost(1, 0, 1, 5, 100)];
        let faults = vec![power_loss("t1", 600)];
        // t2 runs throughout but was marked not alive from 50 ms to 900 ms: no leader replicated to it.
        let dead = [
            (0, "t2".to_string(), ms(0), true),
            (0, "t2".to_string(), ms(50), false),
            (0, "t2".to_string(), ms(900), true),
        ];
        let ev = ReplicaEvents { alive: &dead, ..Default::default() };
        let r = bounded(&l, &obs, &two, &faults, ev);
        assert!(r.forbidden.is_empty());
        // Alive again at 300 ms: it may have caught up before t1 lost power.
        let back = [
            (0, "t2".to_string(), ms(0), true),
            (0, "t2".to_string(), ms(50), false),
            (0, "t2".to_string(), ms(300), true),
        ];
        let ev = ReplicaEvents { alive: &back, ..Default::default() };
        let r = bounded(&l, &obs, &two, &faults, ev);
        assert_eq!(r.forbidden.len(), 1);
    }

    #[test]
    fn a_replica_cut_off_from_the_leader_through_the_window_never_had_the_write() {
        use crate::check::input::LinkEvent;
        let obs = history(0, &[(1, 0)]);
        let two = vec![PartitionLayout { pid: 0, replicas: vec!["t1".into(), "t2".into()] }];
        // Acked by t1 at 100 ms; t1 loses power at 600 ms; t2 runs and is marked alive throughout.
        let l = [lost(1, 0, 1, 5, 100)];
        let faults = vec![power_loss("t1", 600)];
        let cut = |at_ms, from: &str, to: &str| LinkEvent::Cut { at: ms(at_ms), from: from.into(), to: to.into() };
        let heal = |at_ms| LinkEvent::Heal { at: ms(at_ms) };
        // Nothing t1 sent reached t2 from before the write until after the power loss (the fuzzer's seed 635837).
        let links = [cut(50, "t1", "t2"), cut(50, "t2", "t1"), heal(900)];
        let r = bounded(&l, &obs, &two, &faults, ReplicaEvents { links: &links, ..Default::default() });
        assert!(r.forbidden.is_empty());
        // Only t2 → t1 cut: t1's entries still reached t2.
        let links = [cut(50, "t2", "t1"), heal(900)];
        let r = bounded(&l, &obs, &two, &faults, ReplicaEvents { links: &links, ..Default::default() });
        assert_eq!(r.forbidden.len(), 1);
        // Healed at 300 ms, before the power loss: t2 may have caught up.
        let links = [cut(50, "t1", "t2"), heal(300)];
        let r = bounded(&l, &obs, &two, &faults, ReplicaEvents { links: &links, ..Default::default() });
        assert_eq!(r.forbidden.len(), 1);
        // Cut only after the write was sent: it may have been replicated first.
        let links = [cut(200, "t1", "t2"), heal(900)];
        let r = bounded(&l, &obs, &two, &faults, ReplicaEvents { links: &links, ..Default::default() });
        assert_eq!(r.forbidden.len(), 1);
        // A heal before the write ends an earlier cut; a new cut after it counts from its own time.
        let links = [cut(10, "t1", "t2"), heal(20), cut(30, "t1", "t2")];
        let r = bounded(&l, &obs, &two, &faults, ReplicaEvents { links: &links, ..Default::default() });
        assert!(r.forbidden.is_empty());
    }

    #[test]
    fn a_disk_failing_fsyncs_keeps_the_write_unsynced_until_it_works_again() {
        let obs = history(0, &[(1, 0)]);
        let one = vec![PartitionLayout { pid: 0, replicas: vec!["t1".into()] }];
        let ev = |kind, at_ms| FaultEvent { at: ms(at_ms), kind, endpoint: "t1".into(), cause: FaultCause::DiskError };
        // Acked at 100 ms, the disk fails from 500 ms (before the sync at 1.1 s) to 3 s; power lost at 2 s.
        let faults = vec![ev(FaultKind::Down, 500), ev(FaultKind::Up, 3000), power_loss("t1", 2000)];
        let r = check_loss_bound(&[lost(1, 0, 1, 5, 100)], &obs, &one, &faults, fsync(), LossPolicy::Bounded);
        assert!(r.forbidden.is_empty());
        // Failing only after the sync point: the write was durable.
        let faults = vec![ev(FaultKind::Down, 1500), ev(FaultKind::Up, 3000), power_loss("t1", 2000)];
        let r = check_loss_bound(&[lost(1, 0, 1, 5, 100)], &obs, &one, &faults, fsync(), LossPolicy::Bounded);
        assert_eq!(r.forbidden.len(), 1);
    }

    #[test]
    fn an_unloaded_partition_stays_unsynced_until_it_is_loaded_again() {
        let obs = history(0, &[(1, 0)]);
        let one = vec![PartitionLayout { pid: 0, replicas: vec!["t1".into()] }];
        let l = [lost(1, 0, 1, 5, 100)];
        let faults = vec![power_loss("t1", 5000)];
        // Unloaded at 500 ms (its binlog broke), never loaded again before the power loss at 5 s.
        let unloads = [(0, "t1".to_string(), ms(500))];
        let ev = ReplicaEvents { unloads: &unloads, ..Default::default() };
        let r = bounded(&l, &obs, &one, &faults, ev);
        assert!(r.forbidden.is_empty());
        // Loaded again at 2 s: the load synced it.
        let loads = [(0, "t1".to_string(), ms(2000))];
        let ev = ReplicaEvents { unloads: &unloads, loads: &loads, ..Default::default() };
        let r = bounded(&l, &obs, &one, &faults, ev);
        assert_eq!(r.forbidden.len(), 1);
    }

    #[test]
    fn without_a_layout_the_final_replicas_are_used() {
        let mut obs = history(0, &[(1, 0)]);
        obs.partitions[0].replicas = vec![
            crate::check::set::tests::replica("t1", true, &[]),
            crate::check::set::tests::replica("t2", false, &[]),
        ];
        let faults = vec![power_loss("t1", 500), power_loss("t2", 600)];
        let r = check_loss_bound(&[lost(1, 0, 1, 5, 100)], &obs, &[], &faults, fsync(), LossPolicy::Bounded);
        assert!(r.forbidden.is_empty());
    }

    #[test]
    fn policy_none_forbids_even_bounded_loss_and_any_forbids_nothing() {
        let obs = history(0, &[(1, 0), (2, 10)]);
        let ls = vec![lost(1, 0, 1, 9, 90), lost(2, 0, 1, 10, 100)];
        let r = check_loss_bound(&ls, &obs, &layout(0), &[], fsync(), LossPolicy::None);
        let kinds: Vec<_> = r.violations.iter().map(|v| v.kind).collect();
        assert_eq!(kinds, vec![ViolationKind::LostOutsideBound, ViolationKind::LostUnexpectedly]);
        let r = check_loss_bound(&ls, &obs, &layout(0), &[], fsync(), LossPolicy::Any);
        assert!(r.violations.is_empty());
        assert_eq!((r.allowed.len(), r.forbidden.len()), (1, 1), "still classified");
    }

    #[test]
    fn losses_are_counted_per_failover_and_the_largest_named() {
        let obs = Observed {
            partitions: vec![
                PartitionFinal { pid: 0, term_offset: vec![(1, 0), (2, 10), (3, 20)], replicas: vec![] },
                PartitionFinal { pid: 1, term_offset: vec![(1, 0), (2, 4)], replicas: vec![] },
            ],
            ops_stuck: vec![],
        };
        let ls = vec![
            lost(1, 0, 1, 10, 10),
            lost(2, 0, 2, 20, 20),
            lost(3, 0, 2, 21, 30),
            lost(4, 1, 1, 4, 40),
            lost(5, 1, 1, 5, 50),
            lost(6, 1, 1, 6, 60),
        ];
        let mut layouts = layout(0);
        layouts.extend(layout(1));
        let r = check_loss_bound(&ls, &obs, &layouts, &[], fsync(), LossPolicy::Bounded);
        let groups: Vec<_> = r.per_failover.iter().map(|f| (f.pid, f.term, f.lost)).collect();
        assert_eq!(groups, vec![(0, 2, 1), (0, 3, 2), (1, 2, 3)]);
        assert_eq!(r.largest().map(|f| (f.pid, f.term)), Some((1, 2)));
        assert_eq!((r.allowed_in(0), r.allowed_in(1), r.forbidden_in(0)), (3, 3, 0));
    }
}
