//! The seed's availability table as an oracle (DESIGN 8, `reference/seed-high-availability-and-recovery.md`).
//!
//! Per partition, [`exposure`] computes from the fault timeline and the leader spans the largest number of its
//! replicas offline at once, whether a leader was among the replicas that went offline, and whether a machine
//! restart was. [`expected_row`] picks the documented cell of the seed's table for that; [`judge`] compares the
//! observed cell with it: any aspect worse than documented is a failure, a better one is allowed and reported.
//!
//! The seed's table, for a shard of three replicas:
//!
//! | offline | service | data integrity                                              | auto recovery |
//! |---------|---------|-------------------------------------------------------------|---------------|
//! | 1       | ✓       | follower: maintained; primary with writes: small loss       | ✓             |
//! | 2       | ✓       | followers: maintained; primary among them: small loss       | ✘             |
//! | 3       | ✘       | ✘                                                           | ✘             |
//!
//! and: 1 replica / 1 tablet has no high-availability mechanism; 2 replicas / 2 tablets keep service with one
//! offline (small loss possible, automatic recovery), and guarantee nothing with both offline. Automatic recovery
//! does not apply after a machine restart: the start script must be run by hand.
//!
//! Two readings are ours. "Only followers offline → no loss" is applied to 2 replicas as well (the seed's 2/2 line
//! only says a small loss *may* occur; without a failover nothing can be overwritten). And rows beyond the seed
//! (more than 3 replicas) follow the same shape: 1 offline as row 1, fewer than all as row 2, all as row 3.

use std::fmt;
use std::ops::Bound;
use std::time::Duration;

use super::input::{
    FaultCause, FaultEvent, FaultKind, LeaderSpan, PartitionLayout, Pid, ReplicaEvents, WriteRecord, first_fault,
};
use super::{Violation, ViolationKind, secs};

/// Whether reads and writes of the shard keep succeeding (after failover).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Available,
    Unavailable,
}

/// Data integrity of the shard, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Loss {
    /// Integrity maintained: no acknowledged write may be lost.
    None,
    /// A small amount of data loss may occur: the un-replicated suffix (within [`super::bound`]).
    Bounded,
    /// ✘: no guarantee.
    NoGuarantee,
}

/// Automatic recovery of the offline tablets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AutoRecovery {
    /// ✓: required.
    Yes,
    /// ✘: not promised.
    No,
    /// ✘ because of a machine restart: the start script must be run by hand.
    Manual,
    /// ✘ because an operator recovered the partition (recoverdata): whether it would have recovered by itself
    /// cannot be observed.
    ByHand,
}

impl Service {
    pub fn mark(self) -> &'static str {
        match self {
            Service::Available => "✓",
            Service::Unavailable => "✘",
        }
    }
}

impl Loss {
    pub fn mark(self) -> &'static str {
        match self {
            Loss::None => "✓ integrity maintained",
            Loss::Bounded => "small loss may occur",
            Loss::NoGuarantee => "✘",
        }
    }
}

impl AutoRecovery {
    pub fn mark(self) -> &'static str {
        match self {
            AutoRecovery::Yes => "✓",
            AutoRecovery::No => "✘",
            AutoRecovery::Manual => "✘ (machine restart: start by hand)",
            AutoRecovery::ByHand => "✘ (recovered by hand)",
        }
    }
}

/// A scenario's `[expect]`, replacing the documented cell's aspects it names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expect {
    pub service: Option<Service>,
    pub loss: Option<Loss>,
    pub recovery: Option<AutoRecovery>,
}

/// One cell of the seed's table: what is documented for a shard with `offline` of `replicas` offline at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentedCell {
    pub replicas: usize,
    pub offline: usize,
    pub leader_among: bool,
    pub machine_restart: bool,
    pub service: Service,
    pub loss: Loss,
    pub auto_recovery: AutoRecovery,
    /// The seed's words for the row.
    pub source: &'static str,
    /// The scenario's `[expect]` replaced some aspect.
    pub overridden: bool,
    /// A semi-synchronous table (DESIGN 5.3) left with one replica: no follower can acknowledge a write, so the
    /// service the seed promises for asynchronous replication is not (it trades availability for no loss).
    pub semisync_alone: bool,
    /// Counting the tablets no nameserver could reach as offline, every replica was: no failover could run, so no
    /// service is promised (loss and recovery stay as the tablets' own faults say).
    pub nameservers_cut: bool,
}

impl DocumentedCell {
    /// `2 of 3 offline, leader among them, machine restart`.
    pub fn row_label(&self) -> String {
        let mut s = format!("{} of {} offline", self.offline, self.replicas);
        if self.offline > 0 {
            s.push_str(if self.leader_among { ", leader among them" } else { ", followers only" });
        }
        if self.machine_restart {
            s.push_str(", machine restart");
        }
        if self.semisync_alone {
            s.push_str(", semisync with one replica left");
        }
        if self.nameservers_cut {
            s.push_str(", the rest cut from every nameserver");
        }
        s
    }

    /// The service promise when the tablets every nameserver was cut from are counted too (`control`, the
    /// exposure with [`FaultCause::NameserverCut`]): a partition none of whose replicas a nameserver could use
    /// cannot fail over, so no service is promised. Loss and recovery keep this cell's.
    pub fn for_nameserver_cuts(mut self, control: &Exposure) -> Self {
        if control.offline_max >= control.replicas && self.offline < self.replicas && self.service == Service::Available
        {
            self.service = Service::Unavailable;
            self.nameservers_cut = true;
        }
        self
    }

    /// DESIGN 5.3: a semi-synchronous partition with at most one replica online cannot acknowledge writes.
    pub fn for_semisync(mut self) -> Self {
        if self.replicas >= 2 && self.offline + 1 == self.replicas && self.service == Service::Available {
            self.service = Service::Unavailable;
            self.semisync_alone = true;
        }
        self
    }

    pub fn with_expect(mut self, expect: &Expect) -> Self {
        if let Some(s) = expect.service {
            self.service = s;
            self.overridden = true;
        }
        if let Some(l) = expect.loss {
            self.loss = l;
            self.overridden = true;
        }
        if let Some(r) = expect.recovery {
            self.auto_recovery = r;
            self.overridden = true;
        }
        self
    }
}

impl fmt::Display for DocumentedCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: service {}, loss {}, auto recovery {}{}",
            self.row_label(),
            self.service.mark(),
            self.loss.mark(),
            self.auto_recovery.mark(),
            if self.overridden { " (scenario [expect])" } else { "" }
        )
    }
}

const NO_FAULT: &str = "no replica offline";
const ONE_OF_ONE: &str = "1 replica, 1 tablet: no high availability mechanism";
const ONE_OF_TWO: &str = "2 replicas, 2 tablets: when one tablet goes offline, service is not affected, and there may \
                          be a small amount of data loss, but the offline tablet can recover automatically";
const TWO_OF_TWO: &str = "2 replicas, 2 tablets: if both tablets go offline simultaneously, neither data integrity nor \
                          service can be guaranteed";
const ONE: &str = "1 offline: ✓; if the offline tablet is a follower, data integrity is maintained; if it is the \
                   primary and there is write traffic, a small amount of data loss may occur; ✓";
const TWO: &str = "2 offline: ✓; if all offline tablets are followers, data integrity is maintained; if one is the \
                   primary and there is write traffic, a small amount of data loss may occur; ✘";
const ALL: &str = "3 offline: ✘; ✘; ✘";

/// The documented cell for a shard of `replicas` replicas of which at most `offline_max` were offline at once.
pub fn expected_row(replicas: usize, offline_max: usize, leader_among: bool, machine_restart: bool) -> DocumentedCell {
    assert!(replicas >= 1, "a partition has at least one replica");
    let (service, loss, auto_recovery, source) = if offline_max == 0 {
        (Service::Available, Loss::None, AutoRecovery::Yes, NO_FAULT)
    } else if offline_max >= replicas {
        let source = match replicas {
            1 => ONE_OF_ONE,
            2 => TWO_OF_TWO,
            _ => ALL,
        };
        (Service::Unavailable, Loss::NoGuarantee, AutoRecovery::No, source)
    } else {
        let loss = if leader_among { Loss::Bounded } else { Loss::None };
        match (replicas, offline_max) {
            (2, _) => (Service::Available, loss, AutoRecovery::Yes, ONE_OF_TWO),
            (_, 1) => (Service::Available, loss, AutoRecovery::Yes, ONE),
            _ => (Service::Available, loss, AutoRecovery::No, TWO),
        }
    };
    let auto_recovery = if machine_restart && offline_max > 0 { AutoRecovery::Manual } else { auto_recovery };
    DocumentedCell {
        replicas,
        offline: offline_max.min(replicas),
        leader_among,
        machine_restart,
        service,
        loss,
        auto_recovery,
        source,
        overridden: false,
        semisync_alone: false,
        nameservers_cut: false,
    }
}

/// Every row of the seed's table and its 1- and 2-replica variants: `(replicas, offline, leader among)` for
/// replicas 1..=3, offline 1..=replicas (with everything offline, the leader is necessarily among them).
pub fn table_rows() -> Vec<(usize, usize, bool)> {
    let mut rows = Vec::new();
    for replicas in 1..=3 {
        for offline in 1..=replicas {
            if offline < replicas {
                rows.push((replicas, offline, false));
            }
            rows.push((replicas, offline, true));
        }
    }
    rows
}

/// What one partition went through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exposure {
    pub pid: Pid,
    pub replicas: usize,
    /// The largest number of its replicas offline at once.
    pub offline_max: usize,
    /// When that number was first reached, and who was offline then.
    pub max_at: Option<Duration>,
    pub offline_at_max: Vec<String>,
    /// A replica went offline while it led the partition (at any time of the run).
    pub leader_among: bool,
    /// Each time the leader went offline: when, and which endpoint.
    pub leader_down: Vec<(Duration, String)>,
    /// A replica went offline because its machine restarted.
    pub machine_restart: bool,
}

impl Exposure {
    pub fn documented(&self) -> DocumentedCell {
        expected_row(self.replicas, self.offline_max, self.leader_among, self.machine_restart)
    }
}

/// How long the oracle lets the system take to load a restarted tablet's replica again: until then the replica
/// counts as offline (the tablet runs, but holds nothing of it); past it, a replica still not loaded no longer
/// counts, so a slow recovery cannot excuse itself by overlapping a later fault.
pub const RELOAD_ALLOWANCE: Duration = Duration::from_secs(10);

/// [`exposure`], with a replica counted offline until it serves again, not only until its fault ends: a crashed
/// or restarted replica, or one its failing disk unloaded (a broken binlog), until its tablet loaded it again, one
/// the nameserver marked not alive (as of that load) until it is marked alive again, at most [`RELOAD_ALLOWANCE`] after the fault ended and the active nameserver could reach it. A
/// restart of one replica's tablet just before a
/// crash of the other's leaves both out at once.
pub fn exposure_with_events(
    layout: &PartitionLayout,
    faults: &[FaultEvent],
    leaders: &[LeaderSpan],
    ev: ReplicaEvents<'_>,
) -> Exposure {
    let adjusted: Vec<FaultEvent> = faults
        .iter()
        .map(|f| {
            if f.kind != FaultKind::Up || !layout.replicas.contains(&f.endpoint) {
                return f.clone();
            }
            let (pid, ep) = (layout.pid, f.endpoint.as_str());
            let reloaded = match f.cause {
                FaultCause::Crash | FaultCause::MachineRestart => {
                    Some(ev.first_load(pid, ep, f.at).unwrap_or(Duration::MAX))
                }
                // A failing disk that broke the replica's binlog unloaded it: clearing the fault loads nothing.
                FaultCause::DiskError => {
                    let since = faults
                        .iter()
                        .filter(|d| d.endpoint == ep && d.cause == f.cause && d.kind == FaultKind::Down && d.at <= f.at)
                        .map(|d| d.at)
                        .max()
                        .unwrap_or_default();
                    ev.unloads
                        .iter()
                        .filter(|(p, e, at)| *p == pid && e == ep && (since..=f.at).contains(at))
                        .map(|u| u.2)
                        .min()
                        .map(|unloaded| ev.first_load(pid, ep, unloaded).unwrap_or(Duration::MAX))
                }
                _ => None,
            };
            // The mark that counts is the one when the replica was loaded again (or at the up, for a fault that
            // unloads nothing): a crashed follower the nameserver marked dead only after its tablet restarted, and
            // whose re-add failed before it marked it alive again (its leader crashed during the final sync
            // check), holds data but is no candidate for a leader selection (fuzzer seed 307721).
            let marked_at = reloaded.filter(|&r| r != Duration::MAX).unwrap_or(f.at).max(f.at);
            let dead_at_up = ev.alive_changes(pid, ep).rfind(|&(at, _)| at <= marked_at).is_some_and(|(_, up)| !up);
            let revived = dead_at_up.then(|| {
                ev.alive_changes(pid, ep)
                    .filter(|&(at, up)| at >= marked_at && up)
                    .map(|c| c.0)
                    .min()
                    .unwrap_or(Duration::MAX)
            });
            let Some(back) = reloaded.into_iter().chain(revived).max() else { return f.clone() };
            // Never past the same cause's next down: that one has its own up.
            let next_down =
                first_fault(faults, ep, f.cause, FaultKind::Down, (Bound::Excluded(f.at), Bound::Unbounded))
                    .unwrap_or(Duration::MAX);
            // The allowance counts only the time the system had a chance to recover the replica: the active
            // nameserver reaching it, another replica leading the partition.
            let deadline =
                super::replicas::recovery_deadline(pid, ep, &layout.replicas, faults, ev, f.at, RELOAD_ALLOWANCE);
            FaultEvent { at: back.min(deadline).min(next_down).max(f.at), ..f.clone() }
        })
        .collect();
    exposure(layout, &adjusted, leaders)
}

/// Sweeps the fault timeline (stable by time) for one partition. An endpoint is offline while any cause is down;
/// an `Up` without a matching `Down` is ignored.
pub fn exposure(layout: &PartitionLayout, faults: &[FaultEvent], leaders: &[LeaderSpan]) -> Exposure {
    let mut events: Vec<&FaultEvent> = faults
        .iter()
        .filter(|f| {
            layout.replicas.contains(&f.endpoint) && !matches!(f.cause, FaultCause::CorruptTail | FaultCause::SlowFsync)
        })
        .collect();
    events.sort_by_key(|f| f.at);
    let mut down: Vec<Vec<FaultCause>> = vec![vec![]; layout.replicas.len()];
    let mut exp = Exposure { pid: layout.pid, replicas: layout.replicas.len(), ..Exposure::default() };
    for f in events {
        let i = layout.replicas.iter().position(|e| *e == f.endpoint).expect("filtered to the layout");
        let was_offline = !down[i].is_empty();
        match f.kind {
            FaultKind::Down => {
                if !down[i].contains(&f.cause) {
                    down[i].push(f.cause);
                }
                exp.machine_restart |= f.cause == FaultCause::MachineRestart;
            }
            FaultKind::Up => down[i].retain(|c| *c != f.cause),
        }
        if !was_offline && !down[i].is_empty() {
            let led = leaders.iter().any(|s| s.pid == layout.pid && s.endpoint == f.endpoint && s.covers(f.at));
            if led {
                exp.leader_among = true;
                exp.leader_down.push((f.at, f.endpoint.clone()));
            }
        }
        let offline = down.iter().filter(|c| !c.is_empty()).count();
        if offline > exp.offline_max {
            exp.offline_max = offline;
            exp.max_at = Some(f.at);
            exp.offline_at_max =
                layout.replicas.iter().zip(&down).filter(|(_, c)| !c.is_empty()).map(|(e, _)| e.clone()).collect();
        }
    }
    exp
}

/// A leader going offline and the leader that followed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failover {
    pub pid: Pid,
    pub old_leader: String,
    pub down_at: Duration,
    /// The first other endpoint to lead the partition after `down_at`, and when.
    pub new_leader: Option<(String, Duration)>,
}

impl Failover {
    /// From the leader going offline to the next leader.
    pub fn time(&self) -> Option<Duration> {
        self.new_leader.as_ref().map(|(_, at)| at.saturating_sub(self.down_at))
    }
}

/// The failovers of a partition, one per time its leader went offline.
pub fn failovers(exposure: &Exposure, leaders: &[LeaderSpan]) -> Vec<Failover> {
    let mut spans: Vec<&LeaderSpan> = leaders.iter().filter(|s| s.pid == exposure.pid).collect();
    spans.sort_by_key(|s| s.from);
    exposure
        .leader_down
        .iter()
        .map(|(at, old)| Failover {
            pid: exposure.pid,
            old_leader: old.clone(),
            down_at: *at,
            new_leader: spans
                .iter()
                .find(|s| s.from >= *at && s.endpoint != *old)
                .map(|s| (s.endpoint.clone(), s.from)),
        })
        .collect()
}

/// Writes of one partition attempted at or after some moment, and how many were acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceSeen {
    pub attempted: usize,
    pub acked: usize,
    pub first_ack: Option<Duration>,
}

impl ServiceSeen {
    /// Writes succeeded; with no write attempted there is no evidence against the service, so it counts as ok.
    pub fn ok(&self) -> bool {
        self.acked > 0 || self.attempted == 0
    }
}

/// The writes routed to `pid` attempted at or after `since` (e.g. [`Exposure::max_at`]). A write counts for a
/// partition through its ack, else its routed [`WriteRecord::pid`].
pub fn service_seen(writes: &[WriteRecord], pid: Pid, since: Duration) -> ServiceSeen {
    let mut seen = ServiceSeen::default();
    for w in writes.iter().filter(|w| w.pid() == Some(pid) && w.attempted_at >= since) {
        seen.attempted += 1;
        if let Some(ack) = w.ack() {
            seen.acked += 1;
            seen.first_ack = Some(seen.first_ack.map_or(ack.at, |f| f.min(ack.at)));
        }
    }
    seen
}

/// What the run showed for one partition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ObservedCell {
    /// Writes succeeded after failover.
    pub service_ok: bool,
    /// Lost acknowledged writes within the loss bound.
    pub lost_acked: usize,
    /// Lost acknowledged writes outside it.
    pub lost_forbidden: usize,
    /// Every offline replica came back and the partition converged without a manual recovery command.
    pub auto_recovered: bool,
    pub failover_time: Option<Duration>,
}

impl ObservedCell {
    fn loss_text(&self) -> String {
        match (self.lost_acked, self.lost_forbidden) {
            (0, 0) => "none lost".into(),
            (a, 0) => format!("{a} lost within the bound"),
            (a, f) => format!("{f} lost outside the bound ({a} within)"),
        }
    }

    /// 0: none, 1: bounded, 2: beyond the bound (only "no guarantee" allows it).
    fn loss_rank(&self) -> u8 {
        if self.lost_forbidden > 0 {
            2
        } else if self.lost_acked > 0 {
            1
        } else {
            0
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Aspect {
    Service,
    Loss,
    AutoRecovery,
}

impl fmt::Display for Aspect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Aspect::Service => "service",
            Aspect::Loss => "loss",
            Aspect::AutoRecovery => "auto recovery",
        })
    }
}

/// The observed cell against the documented one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Comparison {
    Worse,
    Same,
    Better,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellVerdict {
    pub aspect: Aspect,
    pub documented: String,
    pub observed: String,
    pub comparison: Comparison,
}

impl fmt::Display for CellVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.comparison {
            Comparison::Worse => "WORSE than documented",
            Comparison::Same => "as documented",
            Comparison::Better => "better than documented",
        };
        write!(f, "{}: documented {}, observed {} ({tag})", self.aspect, self.documented, self.observed)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub documented: DocumentedCell,
    pub observed: ObservedCell,
    /// Service, loss, auto recovery, in that order.
    pub cells: Vec<CellVerdict>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.worse().next().is_none()
    }

    pub fn worse(&self) -> impl Iterator<Item = &CellVerdict> {
        self.cells.iter().filter(|c| c.comparison == Comparison::Worse)
    }

    pub fn better(&self) -> impl Iterator<Item = &CellVerdict> {
        self.cells.iter().filter(|c| c.comparison == Comparison::Better)
    }

    /// One violation per aspect worse than documented, for partition `pid`; the trace window starts at `from`.
    pub fn violations(&self, pid: Pid, from: Duration) -> Vec<Violation> {
        self.worse()
            .map(|c| {
                Violation::new(
                    ViolationKind::WorseThanDocumented,
                    Some(pid),
                    format!("{} ({}; seed: \"{}\")", c, self.documented.row_label(), self.documented.source),
                )
                .with_window(from, None)
            })
            .collect()
    }
}

impl fmt::Display for Verdict {
    /// `service ✓/✓ same; loss small loss may occur/2 lost within the bound same; auto recovery ✘/✓ better;
    /// failover 1.200s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cells: Vec<String> = self
            .cells
            .iter()
            .map(|c| {
                let cmp = match c.comparison {
                    Comparison::Worse => "WORSE",
                    Comparison::Same => "same",
                    Comparison::Better => "better",
                };
                format!("{} {} / {} {cmp}", c.aspect, c.documented, c.observed)
            })
            .collect();
        write!(f, "{}", cells.join("; "))?;
        match self.observed.failover_time {
            Some(t) => write!(f, "; failover {}", secs(t)),
            None => Ok(()),
        }
    }
}

fn compare(documented_rank: u8, observed_rank: u8) -> Comparison {
    match observed_rank.cmp(&documented_rank) {
        std::cmp::Ordering::Greater => Comparison::Worse,
        std::cmp::Ordering::Equal => Comparison::Same,
        std::cmp::Ordering::Less => Comparison::Better,
    }
}

/// Judges an observed cell against the documented one: worse in any aspect is a failure, better is allowed.
pub fn judge(documented: &DocumentedCell, observed: &ObservedCell) -> Verdict {
    let service = CellVerdict {
        aspect: Aspect::Service,
        documented: documented.service.mark().into(),
        observed: if observed.service_ok { "✓" } else { "✘" }.into(),
        comparison: compare(u8::from(documented.service == Service::Unavailable), u8::from(!observed.service_ok)),
    };
    let loss_rank = match documented.loss {
        Loss::None => 0,
        Loss::Bounded => 1,
        Loss::NoGuarantee => 2,
    };
    let loss = CellVerdict {
        aspect: Aspect::Loss,
        documented: documented.loss.mark().into(),
        observed: observed.loss_text(),
        comparison: compare(loss_rank, observed.loss_rank()),
    };
    let recovery = CellVerdict {
        aspect: Aspect::AutoRecovery,
        documented: documented.auto_recovery.mark().into(),
        observed: if observed.auto_recovered { "✓" } else { "✘" }.into(),
        comparison: compare(
            u8::from(documented.auto_recovery != AutoRecovery::Yes),
            u8::from(!observed.auto_recovered),
        ),
    };
    Verdict { documented: documented.clone(), observed: *observed, cells: vec![service, loss, recovery] }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::set::tests::{acked, failed, ms};

    fn cell(r: usize, o: usize, leader: bool) -> (Service, Loss, AutoRecovery) {
        let c = expected_row(r, o, leader, false);
        (c.service, c.loss, c.auto_recovery)
    }

    use AutoRecovery as R;
    use Loss as L;
    use Service as S;

    #[test]
    fn every_row_of_the_seeds_table() {
        // Three replicas: the seed's table.
        assert_eq!(cell(3, 1, false), (S::Available, L::None, R::Yes));
        assert_eq!(cell(3, 1, true), (S::Available, L::Bounded, R::Yes));
        assert_eq!(cell(3, 2, false), (S::Available, L::None, R::No));
        assert_eq!(cell(3, 2, true), (S::Available, L::Bounded, R::No));
        assert_eq!(cell(3, 3, false), (S::Unavailable, L::NoGuarantee, R::No));
        assert_eq!(cell(3, 3, true), (S::Unavailable, L::NoGuarantee, R::No));
        // Two replicas, two tablets.
        assert_eq!(cell(2, 1, false), (S::Available, L::None, R::Yes));
        assert_eq!(cell(2, 1, true), (S::Available, L::Bounded, R::Yes));
        assert_eq!(cell(2, 2, false), (S::Unavailable, L::NoGuarantee, R::No));
        assert_eq!(cell(2, 2, true), (S::Unavailable, L::NoGuarantee, R::No));
        // One replica, one tablet: no high availability.
        assert_eq!(cell(1, 1, false), (S::Unavailable, L::NoGuarantee, R::No));
        assert_eq!(cell(1, 1, true), (S::Unavailable, L::NoGuarantee, R::No));
        // Nothing offline.
        for r in 1..=3 {
            assert_eq!(cell(r, 0, false), (S::Available, L::None, R::Yes));
        }
    }

    #[test]
    fn every_combination_quotes_its_row_of_the_seed() {
        for replicas in 1..=3 {
            for offline in 1..=replicas {
                for leader in [false, true] {
                    let c = expected_row(replicas, offline, leader, false);
                    let expected_source = match (replicas, offline) {
                        (1, _) => ONE_OF_ONE,
                        (2, 1) => ONE_OF_TWO,
                        (2, _) => TWO_OF_TWO,
                        (_, 1) => ONE,
                        (_, 2) => TWO,
                        _ => ALL,
                    };
                    assert_eq!(c.source, expected_source, "{replicas}/{offline}/{leader}");
                    assert_eq!((c.replicas, c.offline, c.leader_among), (replicas, offline, leader));
                    assert_eq!(c.service == S::Available, offline < replicas, "{c}");
                }
            }
        }
        assert_eq!(table_rows().len(), 9);
        assert!(table_rows().contains(&(3, 3, true)) && !table_rows().contains(&(3, 3, false)));
    }

    #[test]
    fn a_machine_restart_makes_recovery_manual() {
        for (r, o) in [(3, 1), (3, 2), (3, 3), (2, 1), (2, 2), (1, 1)] {
            let c = expected_row(r, o, true, true);
            assert_eq!(c.auto_recovery, R::Manual, "{c}");
            assert_eq!(c.service, expected_row(r, o, true, false).service);
        }
        assert_eq!(expected_row(3, 0, false, true).auto_recovery, R::Yes, "no fault, nothing to recover");
        assert!(expected_row(3, 1, true, true).to_string().contains("start by hand"));
    }

    #[test]
    fn more_replicas_than_the_seed_follow_its_shape() {
        assert_eq!(cell(5, 1, true), (S::Available, L::Bounded, R::Yes));
        assert_eq!(cell(5, 4, false), (S::Available, L::None, R::No));
        assert_eq!(cell(5, 5, true), (S::Unavailable, L::NoGuarantee, R::No));
        assert_eq!(expected_row(3, 7, true, false).offline, 3, "clamped");
    }

    #[test]
    #[should_panic(expected = "at least one replica")]
    fn zero_replicas_is_a_bug() {
        expected_row(0, 0, false, false);
    }

    #[test]
    fn expect_overrides_the_documented_cell() {
        let c = expected_row(3, 1, true, false).with_expect(&Expect {
            loss: Some(L::None),
            recovery: Some(R::No),
            service: None,
        });
        assert_eq!((c.service, c.loss, c.auto_recovery, c.overridden), (S::Available, L::None, R::No, true));
        assert!(c.to_string().ends_with("(scenario [expect])"));
        assert!(!expected_row(3, 1, true, false).with_expect(&Expect::default()).overridden);
    }

    fn ok(lost_acked: usize) -> ObservedCell {
        ObservedCell {
            service_ok: true,
            lost_acked,
            lost_forbidden: 0,
            auto_recovered: true,
            failover_time: Some(ms(1200)),
        }
    }

    fn comparisons(v: &Verdict) -> Vec<Comparison> {
        v.cells.iter().map(|c| c.comparison).collect()
    }

    #[test]
    fn as_documented_passes() {
        let v = judge(&expected_row(3, 1, true, false), &ok(3));
        assert!(v.passed());
        assert_eq!(comparisons(&v), vec![Comparison::Same; 3]);
        assert_eq!(
            v.to_string(),
            "service ✓ / ✓ same; loss small loss may occur / 3 lost within the bound same; auto recovery ✓ / ✓ same; \
             failover 1.200s"
        );
    }

    #[test]
    fn an_observed_cell_worse_than_documented_fails() {
        // One follower offline: no loss allowed, service and recovery required.
        let doc = expected_row(3, 1, false, false);
        let v = judge(&doc, &ok(1));
        assert!(!v.passed());
        assert_eq!(comparisons(&v), vec![Comparison::Same, Comparison::Worse, Comparison::Same]);
        let bad = ObservedCell { service_ok: false, auto_recovered: false, ..ok(0) };
        let v = judge(&doc, &bad);
        assert_eq!(comparisons(&v), vec![Comparison::Worse, Comparison::Same, Comparison::Worse]);
        let vs = v.violations(0, ms(3000));
        assert_eq!(vs.len(), 2);
        assert_eq!(vs[0].kind, ViolationKind::WorseThanDocumented);
        assert!(vs[0].why.starts_with("service: documented ✓, observed ✘ (WORSE"), "{}", vs[0].why);
        assert!(vs[1].why.contains("1 of 3 offline, followers only"), "{}", vs[1].why);
        assert_eq!(vs[0].hint.from, ms(3000));
        // Loss beyond the bound is worse than "small loss".
        let beyond = ObservedCell { lost_forbidden: 1, ..ok(2) };
        let v = judge(&expected_row(3, 1, true, false), &beyond);
        assert_eq!(v.cells[1].comparison, Comparison::Worse);
        assert_eq!(v.cells[1].observed, "1 lost outside the bound (2 within)");
    }

    #[test]
    fn better_than_documented_is_allowed_and_reported() {
        // Two offline: recovery not promised; everything offline: nothing promised.
        let v = judge(&expected_row(3, 2, true, false), &ok(0));
        assert!(v.passed());
        assert_eq!(comparisons(&v), vec![Comparison::Same, Comparison::Better, Comparison::Better]);
        assert_eq!(v.better().count(), 2);
        let v = judge(&expected_row(3, 3, true, false), &ObservedCell { lost_forbidden: 4, ..ok(0) });
        assert!(v.passed(), "no guarantee: even unbounded loss is not worse");
        assert_eq!(comparisons(&v), vec![Comparison::Better, Comparison::Same, Comparison::Better]);
        let v = judge(&expected_row(3, 1, true, true), &ok(0));
        assert_eq!(v.cells[2].comparison, Comparison::Better, "recovered although a machine restarted");
    }

    #[test]
    fn every_row_judged_against_a_perfect_and_a_broken_run() {
        let perfect = ObservedCell { service_ok: true, auto_recovered: true, ..ObservedCell::default() };
        let broken = ObservedCell { service_ok: false, lost_acked: 1, lost_forbidden: 1, ..ObservedCell::default() };
        for (replicas, offline, leader) in table_rows() {
            let doc = expected_row(replicas, offline, leader, false);
            assert!(judge(&doc, &perfect).passed(), "{doc}");
            assert_eq!(judge(&doc, &broken).passed(), offline == replicas, "{doc}");
        }
    }

    fn layout() -> PartitionLayout {
        PartitionLayout { pid: 0, replicas: vec!["t1".into(), "t2".into(), "t3".into()] }
    }

    fn ev(at_ms: u64, kind: FaultKind, endpoint: &str, cause: FaultCause) -> FaultEvent {
        FaultEvent { at: ms(at_ms), kind, endpoint: endpoint.into(), cause }
    }

    fn span(endpoint: &str, from_ms: u64, to_ms: Option<u64>) -> LeaderSpan {
        LeaderSpan { pid: 0, endpoint: endpoint.into(), from: ms(from_ms), to: to_ms.map(ms) }
    }

    use FaultCause as C;
    use FaultKind as K;

    #[test]
    fn exposure_of_a_leader_crash_and_its_failover() {
        let faults = vec![ev(1000, K::Down, "t1", C::Crash), ev(4000, K::Up, "t1", C::Crash)];
        let leaders = vec![span("t1", 0, Some(2500)), span("t2", 2500, None)];
        let e = exposure(&layout(), &faults, &leaders);
        assert_eq!((e.offline_max, e.max_at, e.leader_among, e.machine_restart), (1, Some(ms(1000)), true, false));
        assert_eq!(e.offline_at_max, vec!["t1"]);
        assert_eq!(e.documented().loss, Loss::Bounded);
        let f = failovers(&e, &leaders);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].new_leader, Some(("t2".into(), ms(2500))));
        assert_eq!(f[0].time(), Some(ms(1500)));
    }

    #[test]
    fn exposure_counts_replicas_offline_at_once_not_in_all() {
        // t2 and t3 are down one after the other, never together; the leader stays up.
        let faults = vec![
            ev(1000, K::Down, "t2", C::Crash),
            ev(2000, K::Up, "t2", C::Crash),
            ev(3000, K::Down, "t3", C::Pause),
            ev(4000, K::Up, "t3", C::Pause),
            ev(5000, K::Down, "t9", C::Crash),
        ];
        let leaders = vec![span("t1", 0, None)];
        let e = exposure(&layout(), &faults, &leaders);
        assert_eq!((e.offline_max, e.leader_among), (1, false));
        assert_eq!(e.documented().loss, Loss::None);
        assert!(failovers(&e, &leaders).is_empty());
    }

    #[test]
    fn exposure_tracks_overlapping_causes_per_endpoint() {
        // t2 crashes, is partitioned too; the restart alone does not bring it back. Then t1 (leader) goes.
        let faults = vec![
            ev(1000, K::Down, "t2", C::Crash),
            ev(1500, K::Down, "t2", C::Partition),
            ev(2000, K::Up, "t2", C::Crash),
            ev(3000, K::Down, "t1", C::MachineRestart),
            ev(3500, K::Up, "t3", C::Crash),
            ev(6000, K::Up, "t2", C::Partition),
        ];
        let leaders = vec![span("t1", 0, Some(5000)), span("t3", 5000, None)];
        let e = exposure(&layout(), &faults, &leaders);
        assert_eq!((e.offline_max, e.max_at), (2, Some(ms(3000))));
        assert_eq!(e.offline_at_max, vec!["t1", "t2"]);
        assert!(e.leader_among && e.machine_restart);
        assert_eq!(e.leader_down, vec![(ms(3000), "t1".to_string())]);
        let c = e.documented();
        assert_eq!((c.service, c.loss, c.auto_recovery), (S::Available, L::Bounded, R::Manual));
        assert_eq!(failovers(&e, &leaders)[0].time(), Some(ms(2000)));
    }

    #[test]
    fn exposure_of_all_replicas_down_without_a_new_leader() {
        let faults: Vec<_> = ["t1", "t2", "t3"].iter().map(|e| ev(1000, K::Down, e, C::Crash)).collect();
        let leaders = vec![span("t1", 0, None)];
        let e = exposure(&layout(), &faults, &leaders);
        assert_eq!((e.offline_max, e.leader_among), (3, true));
        assert_eq!(e.documented().service, S::Unavailable);
        let f = failovers(&e, &leaders);
        assert_eq!((f.len(), f[0].time()), (1, None));
    }

    #[test]
    fn service_seen_counts_the_partitions_writes_after_a_moment() {
        let writes = vec![acked(1, 0, 1, 1, 500), failed(2, 0, 1500), acked(3, 0, 2, 2, 2600), acked(4, 1, 1, 1, 2700)];
        let s = service_seen(&writes, 0, ms(1000));
        assert_eq!((s.attempted, s.acked, s.first_ack), (2, 1, Some(ms(2600))));
        assert!(s.ok());
        let s = service_seen(&writes[..2], 0, ms(1000));
        assert!(!s.ok(), "every write after the fault failed");
        assert!(service_seen(&writes, 2, ms(0)).ok(), "no evidence is not a failure");
    }

    #[test]
    fn a_semisync_partition_with_one_replica_left_promises_no_service() {
        let row = expected_row(2, 1, false, false).for_semisync();
        assert_eq!(row.service, Service::Unavailable);
        assert!(row.row_label().ends_with("semisync with one replica left"), "{}", row.row_label());
        assert_eq!(expected_row(3, 2, true, false).for_semisync().service, Service::Unavailable);
        // One of three offline leaves a follower to acknowledge.
        assert_eq!(expected_row(3, 1, true, false).for_semisync().service, Service::Available);
        // A single replica table is never semi-synchronous in effect; all offline stays as documented.
        assert_eq!(expected_row(1, 0, false, false).for_semisync().service, Service::Available);
        assert!(!expected_row(2, 2, true, false).for_semisync().semisync_alone);
    }

    /// An active nameserver from the start, and t2 leading pid 0 from the start by its own position.
    fn led_by_t2() -> (Vec<(Duration, Option<String>)>, Vec<crate::check::input::Position>) {
        let leads = crate::check::input::Position {
            pid: 0,
            endpoint: "t2".into(),
            at: ms(0),
            held: true,
            leader: true,
            term: 1,
            log_term: 1,
            offset: 0,
        };
        (vec![(ms(0), Some("ns".to_string()))], vec![leads])
    }

    #[test]
    fn a_restarted_replica_is_offline_until_it_is_loaded_again() {
        let ev =
            |ep: &str, kind, at_ms| FaultEvent { at: ms(at_ms), kind, endpoint: ep.into(), cause: FaultCause::Crash };
        let two = PartitionLayout { pid: 0, replicas: vec!["t1".into(), "t2".into()] };
        // t1 restarts at 1 s (down and up at once) and is loaded at 3 s; t2 crashes at 2 s.
        let faults =
            vec![ev("t1", FaultKind::Down, 1000), ev("t1", FaultKind::Up, 1000), ev("t2", FaultKind::Down, 2000)];
        assert_eq!(exposure(&two, &faults, &[]).offline_max, 1, "the instants alone overlap nothing");
        let loads = vec![(0, "t1".to_string(), ms(3000))];
        assert_eq!(
            exposure_with_events(&two, &faults, &[], ReplicaEvents { loads: &loads, ..Default::default() }).offline_max,
            2
        );
        // Loaded at 1.5 s, before t2's crash: one at a time.
        let loads = vec![(0, "t1".to_string(), ms(1500))];
        assert_eq!(
            exposure_with_events(&two, &faults, &[], ReplicaEvents { loads: &loads, ..Default::default() }).offline_max,
            1
        );
        // Another partition's load does not count; past the allowance the replica no longer counts as offline.
        let late =
            vec![ev("t1", FaultKind::Down, 1000), ev("t1", FaultKind::Up, 1000), ev("t2", FaultKind::Down, 12_000)];
        let loads = vec![(1, "t1".to_string(), ms(1500))];
        let (actives, positions) = led_by_t2();
        let led = ReplicaEvents { loads: &loads, actives: &actives, positions: &positions, ..Default::default() };
        assert_eq!(exposure_with_events(&two, &late, &[], led).offline_max, 1);
        // Without a leader to be re-added from, the allowance never runs out.
        let unled = ReplicaEvents { loads: &loads, actives: &actives, ..Default::default() };
        assert_eq!(exposure_with_events(&two, &late, &[], unled).offline_max, 2);
        // A second crash before the load keeps it down until its own start.
        let again = vec![
            ev("t1", FaultKind::Down, 1000),
            ev("t1", FaultKind::Up, 1000),
            ev("t1", FaultKind::Down, 1200),
            ev("t2", FaultKind::Down, 5000),
        ];
        assert_eq!(exposure_with_events(&two, &again, &[], ReplicaEvents::default()).offline_max, 2);
    }

    #[test]
    fn a_replica_its_failing_disk_unloaded_is_offline_until_it_is_loaded_again() {
        let ev = |ep: &str, kind, cause, at_ms| FaultEvent { at: ms(at_ms), kind, endpoint: ep.into(), cause };
        let two = PartitionLayout { pid: 0, replicas: vec!["t1".into(), "t2".into()] };
        // t1's disk fails writes from 1 s to 3 s; t2 crashes at 4 s.
        let faults = vec![
            ev("t1", FaultKind::Down, FaultCause::DiskError, 1000),
            ev("t1", FaultKind::Up, FaultCause::DiskError, 3000),
            ev("t2", FaultKind::Down, FaultCause::Crash, 4000),
        ];
        let offline = |unloads: &[(Pid, String, Duration)], loads: &[(Pid, String, Duration)]| {
            exposure_with_events(&two, &faults, &[], ReplicaEvents { unloads, loads, ..Default::default() }).offline_max
        };
        assert_eq!(offline(&[], &[]), 1, "no fsync failed: the replica served again at the clear");
        let unloaded = [(0, "t1".to_string(), ms(2000))];
        assert_eq!(offline(&unloaded, &[]), 2, "unloaded and never loaded again");
        assert_eq!(offline(&unloaded, &[(0, "t1".to_string(), ms(3500))]), 1, "loaded again before t2's crash");
        assert_eq!(offline(&unloaded, &[(1, "t1".to_string(), ms(3500))]), 2, "another partition's load");
        assert_eq!(offline(&[(1, "t1".to_string(), ms(2000))], &[]), 1, "another partition's unload");
        assert_eq!(offline(&[(0, "t1".to_string(), ms(500))], &[]), 1, "an unload before this fault");
        // Past the allowance after the clear it no longer counts.
        let late = vec![
            ev("t1", FaultKind::Down, FaultCause::DiskError, 1000),
            ev("t1", FaultKind::Up, FaultCause::DiskError, 3000),
            ev("t2", FaultKind::Down, FaultCause::Crash, 14_000),
        ];
        let (actives, positions) = led_by_t2();
        let ev = ReplicaEvents { unloads: &unloaded, actives: &actives, positions: &positions, ..Default::default() };
        assert_eq!(exposure_with_events(&two, &late, &[], ev).offline_max, 1);
    }

    #[test]
    fn tablets_cut_from_every_nameserver_count_against_the_service_promise_only() {
        let ev = |ep: &str, kind, cause, at_ms| FaultEvent { at: ms(at_ms), kind, endpoint: ep.into(), cause };
        let two = PartitionLayout { pid: 0, replicas: vec!["t1".into(), "t2".into()] };
        // t1 crashes at 1 s; no nameserver can reach t2 from 2 s to 9 s.
        let faults = vec![
            ev("t1", FaultKind::Down, FaultCause::Crash, 1000),
            ev("t2", FaultKind::Down, FaultCause::NameserverCut, 2000),
            ev("t2", FaultKind::Up, FaultCause::NameserverCut, 9000),
        ];
        let own: Vec<FaultEvent> = faults.iter().filter(|f| f.cause != FaultCause::NameserverCut).cloned().collect();
        let control = exposure(&two, &faults, &[]);
        let cell = exposure(&two, &own, &[]).documented().for_nameserver_cuts(&control);
        assert_eq!((cell.offline, cell.service, cell.nameservers_cut), (1, Service::Unavailable, true));
        assert_eq!((cell.loss, cell.auto_recovery), (Loss::None, AutoRecovery::Yes), "the tablets' own faults");
        assert!(cell.row_label().ends_with("the rest cut from every nameserver"), "{}", cell.row_label());
        // The cut alone, or a cut that leaves a reachable replica: the promise stands.
        let cut_only = exposure(&two, &faults[1..], &[]);
        let cell = exposure(&two, &[], &[]).documented().for_nameserver_cuts(&cut_only);
        assert_eq!((cell.service, cell.nameservers_cut), (Service::Available, false), "t1 can still lead");
        let three = PartitionLayout { pid: 0, replicas: vec!["t1".into(), "t2".into(), "t3".into()] };
        let control = exposure(&three, &faults, &[]);
        let cell = exposure(&three, &own, &[]).documented().for_nameserver_cuts(&control);
        assert_eq!(cell.service, Service::Available, "t3 is reachable");
    }

    #[test]
    fn a_replica_marked_dead_is_offline_until_it_is_alive_again() {
        let ev = |ep: &str, kind, cause, at_ms| FaultEvent { at: ms(at_ms), kind, endpoint: ep.into(), cause };
        let two = PartitionLayout { pid: 0, replicas: vec!["t1".into(), "t2".into()] };
        // t1 is cut off from 1 s to 3 s and marked dead at 2 s; t2 crashes at 4 s.
        let faults = vec![
            ev("t1", FaultKind::Down, FaultCause::Partition, 1000),
            ev("t1", FaultKind::Up, FaultCause::Partition, 3000),
            ev("t2", FaultKind::Down, FaultCause::Crash, 4000),
        ];
        assert_eq!(exposure(&two, &faults, &[]).offline_max, 1);
        let dead = vec![(0, "t1".to_string(), ms(0), true), (0, "t1".to_string(), ms(2000), false)];
        assert_eq!(
            exposure_with_events(&two, &faults, &[], ReplicaEvents { alive: &dead, ..Default::default() }).offline_max,
            2,
            "never marked alive again"
        );
        let mut revived = dead.clone();
        revived.push((0, "t1".to_string(), ms(3500), true));
        assert_eq!(
            exposure_with_events(&two, &faults, &[], ReplicaEvents { alive: &revived, ..Default::default() })
                .offline_max,
            1,
            "alive again at 3.5 s"
        );
        // Never marked dead (a short cut): back at the heal.
        let kept = vec![(0, "t1".to_string(), ms(0), true)];
        assert_eq!(
            exposure_with_events(&two, &faults, &[], ReplicaEvents { alive: &kept, ..Default::default() }).offline_max,
            1
        );
    }

    #[test]
    fn a_restarted_replica_marked_dead_before_its_reload_is_offline_until_it_is_alive_again() {
        let ev =
            |ep: &str, kind, at_ms| FaultEvent { at: ms(at_ms), kind, endpoint: ep.into(), cause: FaultCause::Crash };
        let two = PartitionLayout { pid: 0, replicas: vec!["t1".into(), "t2".into()] };
        // t1 crashes at 1 s and starts at 1.5 s; the nameserver marks it dead at 2 s, its tablet loads it again at
        // 2.2 s (a re-add that never finished); t2 crashes at 2.3 s.
        let faults =
            vec![ev("t1", FaultKind::Down, 1000), ev("t1", FaultKind::Up, 1500), ev("t2", FaultKind::Down, 2300)];
        let loads = [(0, "t1".to_string(), ms(2200))];
        let dead = vec![(0, "t1".to_string(), ms(0), true), (0, "t1".to_string(), ms(2000), false)];
        let offline = |alive: &[(Pid, String, Duration, bool)]| {
            exposure_with_events(&two, &faults, &[], ReplicaEvents { alive, loads: &loads, ..Default::default() })
                .offline_max
        };
        assert_eq!(offline(&dead), 2, "loaded, but dead in the metadata: no candidate for the failover");
        let mut revived = dead.clone();
        revived.push((0, "t1".to_string(), ms(2250), true));
        assert_eq!(offline(&revived), 1, "re-added before t2's crash");
        // Marked dead only after its reload: a healthy replica the system failed over is not excused.
        let late = vec![(0, "t1".to_string(), ms(0), true), (0, "t1".to_string(), ms(2250), false)];
        assert_eq!(offline(&late), 1);
    }
}
