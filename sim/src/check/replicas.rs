//! What the replicas' own records say at a moment: whether a replica could take part in a failover, and whether
//! its log held an entry.
//!
//! The loss bound and the acknowledgement checks ask these questions at the moment a new leader took over. The
//! answers come from evidence the nameserver does not write: the fault timeline the runner applied, each
//! replica's `replica log` positions from its own tablet, the loads its tablet traced, the network cuts, and the
//! coordination server's session expiries. The metadata's alive marks are used in one place only, and named: a
//! replica marked not alive was no candidate of a leader selection (OpenMLDB's selection asks the alive followers
//! only; a mark left wrong is the convergence checker's business).

use std::collections::BTreeSet;
use std::time::Duration;

use super::input::{FaultCause, FaultEvent, FaultKind, LinkEvent, Pid, ReplicaEvents};

/// Why a replica could not take part in a failover at some moment, or `None` when it could.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// Down for one of these causes (crashed, powered off, paused, cut from the coordination server, cut from
    /// every nameserver, its disk failing).
    Down(FaultCause),
    /// Its process ran but had not loaded the partition since it started again.
    NotLoaded,
    /// Its tablet dropped or unloaded the partition.
    Dropped,
    /// The metadata marked it not alive (no leader selection considers it).
    MarkedDead,
    /// The active nameserver `0` could not exchange messages with it.
    CutFromActive(String),
}

/// The causes that stop a replica from serving or being chosen.
fn takes_offline(cause: FaultCause) -> bool {
    !matches!(cause, FaultCause::CorruptTail | FaultCause::SlowFsync)
}

/// Whether `endpoint`'s replica of `pid` could have been chosen as leader at `at`, and if not why not.
pub fn unavailable_at(
    pid: Pid,
    endpoint: &str,
    faults: &[FaultEvent],
    ev: ReplicaEvents<'_>,
    at: Duration,
) -> Option<Unavailable> {
    // Causes down at `at`, and when the process last started again.
    let mut down: Vec<FaultCause> = Vec::new();
    let mut started: Option<Duration> = None;
    for f in faults.iter().filter(|f| f.endpoint == endpoint && f.at <= at && takes_offline(f.cause)) {
        match f.kind {
            FaultKind::Down => {
                if !down.contains(&f.cause) {
                    down.push(f.cause);
                }
            }
            FaultKind::Up => {
                down.retain(|c| *c != f.cause);
                if matches!(f.cause, FaultCause::Crash | FaultCause::MachineRestart) {
                    started = Some(f.at);
                }
            }
        }
    }
    if let Some(c) = down.first() {
        return Some(Unavailable::Down(*c));
    }
    if let Some(since) = started
        && ev.first_load(pid, endpoint, since).is_none_or(|l| l > at)
    {
        return Some(Unavailable::NotLoaded);
    }
    if ev.position_at(pid, endpoint, at).is_some_and(|p| !p.held) {
        return Some(Unavailable::Dropped);
    }
    if ev.alive_changes(pid, endpoint).rfind(|&(t, _)| t <= at).is_some_and(|(_, alive)| !alive) {
        return Some(Unavailable::MarkedDead);
    }
    if let Some(active) = active_at(ev, at)
        && (cut_at(ev.links, active, endpoint, at) || cut_at(ev.links, endpoint, active, at))
    {
        return Some(Unavailable::CutFromActive(active.to_string()));
    }
    None
}

/// The intervals in which no nameserver could see that `pid`'s leader was gone: the replica that last led the
/// partition (by its own positions) ran on a tablet in touch with the coordination server (so registered: no
/// node went away) and cut from every nameserver. Until one can reach it again, no failover can start: the
/// metadata calls it alive, the pass that finds a tablet restarted without its partitions must ask the tablet,
/// and a failover on silence alone could leave a leader serving beside the new one (DESIGN 5.5). The
/// availability windows wait through these like through a control-plane blocker (`window`, the named excuse
/// *leader unseen*), and only these: a leader that crashed, was paused or lost the coordination server is seen
/// at its session's end, and a standby that reaches it makes the cut no [`FaultCause::NameserverCut`].
pub fn unseen_leader(pid: Pid, faults: &[FaultEvent], ev: ReplicaEvents<'_>) -> Vec<(Duration, Option<Duration>)> {
    let computed;
    let starts = match ev.starts {
        Some(s) => s,
        None => {
            computed = super::input::leader_start_positions(ev.positions);
            &computed
        }
    };
    let starts: Vec<&super::input::Position> = starts.iter().filter(|p| p.pid == pid).collect();
    let mut changes: Vec<Duration> = faults.iter().map(|f| f.at).chain(starts.iter().map(|p| p.at)).collect();
    changes.sort();
    changes.dedup();
    let unseen_at = |at: Duration| {
        let Some(leader) = starts.iter().take_while(|p| p.at <= at).last() else { return false };
        let mut down: Vec<FaultCause> = Vec::new();
        for f in faults.iter().filter(|f| f.endpoint == leader.endpoint && f.at <= at && takes_offline(f.cause)) {
            match f.kind {
                FaultKind::Down if !down.contains(&f.cause) => down.push(f.cause),
                FaultKind::Down => {}
                FaultKind::Up => down.retain(|c| *c != f.cause),
            }
        }
        down == [FaultCause::NameserverCut]
    };
    let mut out: Vec<(Duration, Option<Duration>)> = Vec::new();
    for at in changes {
        let open = out.last().is_some_and(|b| b.1.is_none());
        match (unseen_at(at), open) {
            (true, false) => out.push((at, None)),
            (false, true) => out.last_mut().expect("open interval").1 = Some(at),
            _ => {}
        }
    }
    out
}

/// When a restarted replica of `pid` on `endpoint` has had `allowance` of chances to be recovered, counted from
/// `from`: time counts only while the active nameserver could exchange messages with it (a restart behind a cut
/// from it cannot be recovered before the heal: fuzzer seed 737185) **and** another replica of the partition led
/// it on a running process, by that replica's own positions (a follower is re-added from its leader: while the
/// partition has none, or its leader crashed in the middle of the re-add, nothing can bring it back; fuzzer seed
/// 954223, where a follower's re-add failed when its leader crashed and the partition's next leader lasted 2.8 s).
/// `Duration::MAX` when the chances never add up to the allowance.
pub fn recovery_deadline(
    pid: Pid,
    endpoint: &str,
    replicas: &[String],
    faults: &[FaultEvent],
    ev: ReplicaEvents<'_>,
    from: Duration,
    allowance: Duration,
) -> Duration {
    let others: Vec<&str> = replicas.iter().map(String::as_str).filter(|e| *e != endpoint).collect();
    // When each other replica started and stopped leading a loaded partition, by its own positions.
    let mut leading = vec![false; others.len()];
    let mut toggles: Vec<(Duration, usize, bool)> = Vec::new();
    for p in ev.positions.iter().filter(|p| p.pid == pid) {
        if let Some(i) = others.iter().position(|e| *e == p.endpoint) {
            let leads = p.leader && p.held;
            if leads != leading[i] {
                leading[i] = leads;
                toggles.push((p.at, i, leads));
            }
        }
    }
    let serves = |i: usize, at: Duration| {
        let Some(&(since, _, true)) = toggles.iter().take_while(|t| t.0 <= at).filter(|t| t.1 == i).last() else {
            return false;
        };
        let mut down: Vec<FaultCause> = Vec::new();
        for f in faults.iter().filter(|f| f.endpoint == others[i] && f.at <= at && takes_offline(f.cause)) {
            match f.kind {
                // A crash or power loss since it took over ended its leadership, whatever its last position says.
                FaultKind::Down
                    if f.at >= since && matches!(f.cause, FaultCause::Crash | FaultCause::MachineRestart) =>
                {
                    return false;
                }
                FaultKind::Down if !down.contains(&f.cause) => down.push(f.cause),
                FaultKind::Down => {}
                FaultKind::Up => down.retain(|c| *c != f.cause),
            }
        }
        down.is_empty()
    };
    let reached = |at: Duration| match active_at(ev, at) {
        Some(active) => !cut_at(ev.links, active, endpoint, at) && !cut_at(ev.links, endpoint, active, at),
        None => false,
    };
    let chance = |at: Duration| reached(at) && (0..others.len()).any(|i| serves(i, at));
    let mut changes: Vec<Duration> = ev
        .links
        .iter()
        .map(LinkEvent::at)
        .chain(ev.actives.iter().map(|(t, _)| *t))
        .chain(toggles.iter().map(|t| t.0))
        .chain(faults.iter().filter(|f| others.contains(&f.endpoint.as_str())).map(|f| f.at))
        .filter(|t| *t > from)
        .collect();
    changes.sort();
    changes.dedup();
    let mut used = Duration::ZERO;
    let mut at = from;
    for next in changes.into_iter().chain(std::iter::once(Duration::MAX)) {
        if chance(at) {
            let left = allowance - used;
            if next.saturating_sub(at) >= left {
                return at + left;
            }
            used += next - at;
        }
        at = next;
    }
    Duration::MAX
}

/// The active nameserver's endpoint at `at`, as the nameservers' own trace lines say.
pub fn active_at<'a>(ev: ReplicaEvents<'a>, at: Duration) -> Option<&'a str> {
    ev.actives.iter().take_while(|(t, _)| *t <= at).last().and_then(|(_, a)| a.as_deref())
}

/// Whether the direction `from` → `to` was cut at `at` (cuts add up until a heal).
pub fn cut_at(links: &[LinkEvent], from: &str, to: &str, at: Duration) -> bool {
    let mut cut = false;
    for e in links.iter().take_while(|e| e.at() <= at) {
        match e {
            LinkEvent::Cut { from: f, to: t, .. } if f == from && t == to => cut = true,
            LinkEvent::Heal { .. } => cut = false,
            LinkEvent::Cut { .. } => {}
        }
    }
    cut
}

/// Whether `endpoint`'s log held entry (`term`, `offset`) of `pid` at `at`. It does from the first position that
/// shows it (its last entry of that term, at or beyond the offset) for as long as later positions keep the offset
/// and the partition stays held: a drop or an unload ends it (a reload or a re-add may bring other entries at
/// those offsets). It can under-estimate in one narrow case, a catch-up batch that carried the entry together with
/// a later term's entries, which shows no position of that term: then a replica that held the entry is taken
/// not to, which the lagging-leader check reads as no evidence and the loss attribution as an overwrite.
pub fn holds_at(pid: Pid, endpoint: &str, ev: ReplicaEvents<'_>, term: u64, offset: u64, at: Duration) -> bool {
    let mut holding = false;
    for p in ev.positions.iter().take_while(|p| p.at <= at).filter(|p| p.pid == pid && p.endpoint == endpoint) {
        if !p.held || p.offset < offset {
            holding = false;
        } else if p.holds(term, offset) {
            holding = true;
        }
    }
    holding
}

/// The first time `endpoint`'s log showed entry (`term`, `offset`) of `pid`.
pub fn first_held(pid: Pid, endpoint: &str, ev: ReplicaEvents<'_>, term: u64, offset: u64) -> Option<Duration> {
    ev.positions.iter().find(|p| p.pid == pid && p.endpoint == endpoint && p.holds(term, offset)).map(|p| p.at)
}

/// The earliest moment a tablet can have acted on a request sent at `sent` and answered by `answered`: not while
/// its process was paused (a request that reached a paused tablet waits in its socket until it runs again).
pub fn earliest_service(endpoint: &str, faults: &[FaultEvent], sent: Duration, answered: Duration) -> Duration {
    let mut earliest = sent;
    for p in
        faults.iter().filter(|f| f.endpoint == endpoint && f.cause == FaultCause::Pause && f.kind == FaultKind::Down)
    {
        let resumed = faults
            .iter()
            .filter(|f| {
                f.endpoint == endpoint && f.cause == FaultCause::Pause && f.kind == FaultKind::Up && f.at >= p.at
            })
            .map(|f| f.at)
            .min();
        if let Some(r) = resumed
            && p.at <= earliest
            && earliest < r
            && r <= answered
        {
            earliest = r;
        }
    }
    earliest
}

/// The intervals in which no two replicas of a semi-synchronous partition could exchange messages: every pair
/// of them cut in at least one direction (a partition or a one-way clog between their tablets). A semisync write
/// needs a follower's ack, a round trip between the leader and that follower (DESIGN 5.3): whichever replica
/// leads, none can come, and no failover changes that. The availability windows wait through these like through a
/// control-plane blocker (the named excuse *semisync replicas apart*), and only for semisync partitions (the
/// caller's to decide); a partition with a pair of replicas still in touch gets no excuse, even when its leader is
/// the one cut off (a failover would help there). `replicas` are the partition's endpoints.
pub fn semisync_apart(replicas: &[String], links: &[LinkEvent]) -> Vec<(Duration, Option<Duration>)> {
    if replicas.len() < 2 {
        return Vec::new();
    }
    let mut cut: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut out: Vec<(Duration, Option<Duration>)> = Vec::new();
    for e in links {
        match e {
            LinkEvent::Cut { from, to, .. } => {
                cut.insert((from.as_str(), to.as_str()));
            }
            LinkEvent::Heal { .. } => cut.clear(),
        }
        let apart = replicas.iter().enumerate().all(|(i, a)| {
            replicas[i + 1..]
                .iter()
                .all(|b| cut.contains(&(a.as_str(), b.as_str())) || cut.contains(&(b.as_str(), a.as_str())))
        });
        let open = out.last().is_some_and(|w| w.1.is_none());
        if apart && !open {
            out.push((e.at(), None));
        } else if !apart && open {
            out.last_mut().expect("open interval").1 = Some(e.at());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::input::Position;
    use crate::check::set::tests::ms;

    fn pos(ep: &str, at: u64, held: bool, leader: bool, term: u64, log_term: u64, offset: u64) -> Position {
        Position { pid: 0, endpoint: ep.into(), at: ms(at), held, leader, term, log_term, offset }
    }

    #[test]
    fn a_log_holds_an_entry_from_its_append_until_a_drop() {
        let ps = vec![
            pos("t2", 10, true, false, 1, 1, 4),
            pos("t2", 20, true, false, 1, 1, 9),
            pos("t2", 30, true, false, 2, 2, 12),
            pos("t2", 40, false, false, 2, 2, 12),
            pos("t2", 50, true, false, 3, 3, 20),
        ];
        let ev = ReplicaEvents { positions: &ps, ..Default::default() };
        assert!(!holds_at(0, "t2", ev, 1, 7, ms(15)), "not yet appended");
        assert!(holds_at(0, "t2", ev, 1, 7, ms(20)));
        assert!(holds_at(0, "t2", ev, 1, 7, ms(35)), "later entries of a later term keep it");
        assert!(!holds_at(0, "t2", ev, 1, 7, ms(45)), "dropped");
        assert!(!holds_at(0, "t2", ev, 1, 7, ms(55)), "re-created: other entries at those offsets");
        // A log is a prefix of the log of the leader whose term its last entry has (the replicator matched it),
        // so its last term's leader wrote every entry up to its offset that is of that term.
        assert!(holds_at(0, "t2", ev, 2, 11, ms(35)));
        assert!(!holds_at(0, "t2", ev, 2, 13, ms(35)), "beyond its log");
        assert!(!holds_at(1, "t2", ev, 1, 7, ms(35)), "another partition");
        assert_eq!(first_held(0, "t2", ev, 1, 7), Some(ms(20)));
    }

    #[test]
    fn a_replica_is_unavailable_while_down_unloaded_marked_dead_or_cut_from_the_active_nameserver() {
        let f = |at, kind, cause| FaultEvent { at: ms(at), kind, endpoint: "t2".into(), cause };
        let faults = vec![f(100, FaultKind::Down, FaultCause::Crash), f(200, FaultKind::Up, FaultCause::Crash)];
        let loads = [(0, "t2".to_string(), ms(300))];
        let alive = [(0, "t2".to_string(), ms(400), false), (0, "t2".to_string(), ms(500), true)];
        let actives = [(ms(0), Some("ns1".to_string()))];
        let links =
            [LinkEvent::Cut { at: ms(600), from: "ns1".into(), to: "t2".into() }, LinkEvent::Heal { at: ms(700) }];
        let ev = ReplicaEvents { loads: &loads, alive: &alive, actives: &actives, links: &links, ..Default::default() };
        assert_eq!(unavailable_at(0, "t2", &faults, ev, ms(50)), None);
        assert_eq!(unavailable_at(0, "t2", &faults, ev, ms(150)), Some(Unavailable::Down(FaultCause::Crash)));
        assert_eq!(unavailable_at(0, "t2", &faults, ev, ms(250)), Some(Unavailable::NotLoaded));
        assert_eq!(unavailable_at(0, "t2", &faults, ev, ms(350)), None);
        assert_eq!(unavailable_at(0, "t2", &faults, ev, ms(450)), Some(Unavailable::MarkedDead));
        assert_eq!(unavailable_at(0, "t2", &faults, ev, ms(650)), Some(Unavailable::CutFromActive("ns1".into())));
        assert_eq!(unavailable_at(0, "t2", &faults, ev, ms(750)), None);
        // A corrupt tail or a slow disk takes nothing offline.
        let faults = vec![f(100, FaultKind::Down, FaultCause::SlowFsync)];
        assert_eq!(unavailable_at(0, "t2", &faults, ReplicaEvents::default(), ms(150)), None);
    }

    #[test]
    fn a_paused_tablet_serves_nothing_before_it_resumes() {
        let f = |at, kind| FaultEvent { at: ms(at), kind, endpoint: "t1".into(), cause: FaultCause::Pause };
        let faults = vec![f(100, FaultKind::Down), f(300, FaultKind::Up)];
        assert_eq!(earliest_service("t1", &faults, ms(150), ms(310)), ms(300));
        assert_eq!(earliest_service("t1", &faults, ms(50), ms(310)), ms(50), "sent before the pause");
        assert_eq!(earliest_service("t2", &faults, ms(150), ms(310)), ms(150), "another tablet");
        assert_eq!(earliest_service("t1", &faults, ms(350), ms(360)), ms(350));
    }

    #[test]
    fn a_leader_is_unseen_only_while_registered_and_cut_from_every_nameserver() {
        let f = |ep: &str, at, kind, cause| FaultEvent { at: ms(at), kind, endpoint: ep.into(), cause };
        use FaultCause::*;
        use FaultKind::{Down, Up};
        // t1 leads from 10 ms; t2 takes over at 900 ms.
        let ps = vec![pos("t1", 10, true, true, 1, 0, 0), pos("t2", 900, true, true, 2, 1, 40)];
        let ev = ReplicaEvents { positions: &ps, ..Default::default() };
        let faults = vec![
            // t1 crashes at 100 and starts again at 200 (its session's end is seen): no blocker.
            f("t1", 100, Down, Crash),
            f("t1", 200, Up, Crash),
            // Then cut from every nameserver, still in touch with the coordination server: unseen 300..500.
            f("t1", 300, Down, NameserverCut),
            // Cut from the coordination server as well from 400: its session ends, the cut is seen.
            f("t1", 400, Down, CoordIsolation),
            f("t1", 450, Up, CoordIsolation),
            f("t1", 500, Up, NameserverCut),
            // A follower cut from every nameserver is no blocker of its partition.
            f("t2", 600, Down, NameserverCut),
            f("t2", 700, Up, NameserverCut),
            // Once t2 leads, its cut blocks, and t1's does not.
            f("t1", 1000, Down, NameserverCut),
            f("t2", 1100, Down, NameserverCut),
        ];
        assert_eq!(
            unseen_leader(0, &faults, ev),
            vec![(ms(300), Some(ms(400))), (ms(450), Some(ms(500))), (ms(1100), None)]
        );
        assert_eq!(unseen_leader(1, &faults, ev), vec![], "another partition never had a leader");
    }

    #[test]
    fn a_restarted_replica_has_its_chances_while_the_active_nameserver_reaches_it_and_another_replica_leads() {
        use FaultCause::*;
        use FaultKind::*;
        let replicas = ["t1".to_string(), "t2".to_string(), "t3".to_string()];
        let actives = [(ms(0), Some("ns1".to_string())), (ms(500), Some("ns2".to_string()))];
        let links = [
            LinkEvent::Cut { at: ms(100), from: "ns1".into(), to: "t2".into() },
            LinkEvent::Cut { at: ms(100), from: "ns2".into(), to: "t2".into() },
            LinkEvent::Heal { at: ms(300) },
            LinkEvent::Cut { at: ms(400), from: "t2".into(), to: "ns1".into() },
        ];
        // t1 leads from the start.
        let positions = [pos("t1", 0, true, true, 1, 1, 0)];
        let ev = ReplicaEvents { actives: &actives, links: &links, positions: &positions, ..Default::default() };
        let deadline = |ep: &str, faults: &[FaultEvent], ev, from| {
            recovery_deadline(0, ep, &replicas, faults, ev, ms(from), ms(1000))
        };
        assert_eq!(deadline("t2", &[], ev, 50), ms(1350), "the cuts' time does not count");
        assert_eq!(deadline("t2", &[], ev, 150), ms(1400), "from the heal");
        assert_eq!(deadline("t2", &[], ev, 350), ms(1450), "50 ms, then a one-way cut until another takes office");
        assert_eq!(deadline("t3", &[], ev, 150), ms(1150), "another tablet");
        // No nameserver active: no chance.
        let alone = ReplicaEvents { positions: &positions, ..Default::default() };
        assert_eq!(deadline("t3", &[], alone, 150), Duration::MAX);
        // The leader crashes at 600 ms; t3 takes over (its own position) at 900 ms.
        let f = |ep: &str, at, kind, cause| FaultEvent { at: ms(at), kind, endpoint: ep.into(), cause };
        let crash = [f("t1", 600, Down, Crash), f("t1", 700, Up, Crash)];
        assert_eq!(deadline("t2", &crash, ev, 500), Duration::MAX, "no leader after the crash");
        let positions = [pos("t1", 0, true, true, 1, 1, 0), pos("t3", 900, true, true, 3, 1, 0)];
        let ev = ReplicaEvents { actives: &actives, positions: &positions, ..Default::default() };
        assert_eq!(deadline("t2", &crash, ev, 500), ms(1800), "100 ms under t1, the rest under t3");
        // A leader paused is no leader to copy from while the pause lasts.
        let pause = [f("t1", 600, Down, Pause), f("t1", 800, Up, Pause)];
        assert_eq!(deadline("t2", &pause, ev, 500), ms(1700));
    }

    #[test]
    fn semisync_replicas_apart_only_while_no_pair_can_exchange() {
        let ms = Duration::from_millis;
        let cut = |at, from: &str, to: &str| LinkEvent::Cut { at: ms(at), from: from.into(), to: to.into() };
        let heal = |at| LinkEvent::Heal { at: ms(at) };
        let two = ["a".to_string(), "b".to_string()];
        // A one-way clog between the only two replicas, then a heal.
        assert_eq!(semisync_apart(&two, &[cut(1000, "b", "a"), heal(5000)]), vec![(ms(1000), Some(ms(5000)))]);
        // Cuts elsewhere do not count; one left open runs to the end.
        assert_eq!(semisync_apart(&two, &[cut(1000, "a", "c")]), vec![]);
        assert_eq!(semisync_apart(&two, &[cut(1000, "a", "c"), cut(2000, "a", "b")]), vec![(ms(2000), None)]);
        // Three replicas: a leader cut from both followers leaves a pair in touch (a failover helps): no excuse.
        let three = ["a".to_string(), "b".to_string(), "c".to_string()];
        assert_eq!(semisync_apart(&three, &[cut(1000, "a", "b"), cut(1000, "a", "c")]), vec![]);
        let all = [cut(1000, "a", "b"), cut(1000, "a", "c"), cut(3000, "c", "b"), heal(4000)];
        assert_eq!(semisync_apart(&three, &all), vec![(ms(3000), Some(ms(4000)))]);
        // A single replica is never apart.
        assert_eq!(semisync_apart(&["a".to_string()], &[cut(1000, "a", "b")]), vec![]);
    }
}
