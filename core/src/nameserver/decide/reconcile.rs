//! Alive marks reconciled with what the tablets report (not in OpenMLDB).
//!
//! The metadata's `is_alive` is the nameserver's belief; a tablet's GetTableStatus is the fact. They part when a
//! tablet restarted while no nameserver saw it go (a machine running both restarted, the active nameserver died
//! as the tablet came back), or when a manual procedure or an op that failed half-way left a mark behind. A mark
//! the tablet contradicts is corrected, never acted on blindly:
//!
//! - A replica marked alive that its tablet (which answered) does not hold is taken out of service for its own
//!   partition only, through the normal op path: marked not alive, its leadership changed or its replication
//!   stopped, then recovered like any returning replica. The tablet's other replicas, which it holds loaded,
//!   are left alone. (The pass this replaces failed the whole tablet over when one replica was missing, removing
//!   replicas loaded for seconds; another tablet's crash then left a partition without a leader for good.)
//! - A replica the tablet holds is never failed over by this pass, whatever the marks say.
//! - A tablet that did not answer says nothing: its marks stay until it answers (or leaves `/nodes` and fails
//!   over the usual way).
//! - Partitions with an op queued are left to the op, which changes the marks itself, with one exception: a
//!   leader marked alive that its tablet no longer holds (a broken binlog unloaded it) while the only ops queued
//!   are follower recoveries ([`Busy::Yielding`]). Those need the leader and cannot finish without one; a
//!   re-add stuck on a follower cut off kept its partition leaderless for 15 s (fuzzer seed 390458 of campaign
//!   77). The leader is corrected, and the partition is listed in `preempt` for the caller to cancel those ops
//!   first; its followers' marks wait for the next pass.
//! - A missing follower that is its partition's last alive replica (its leader is dead) is not corrected here: a
//!   failover can neither mark it dead nor re-add it without a leader (the fuzzer's seed 845042 kept a healthy
//!   partition cycling), so it is reported apart for the caller to log.
//! - A partition without an alive leader that no tablet holds at all, every replica's tablet answering, is
//!   leaderless for good however often a leader change probes it ("table is not exist" at every probe): its
//!   last leader (the [`super::leader::sole_dead_leader`], whose log no change replaced) is reloaded from its own
//!   disk as leader (kReLoadTableOP, which refuses when a follower holds a longer log, pointing at
//!   `recoverdata`). The followers marked alive are corrected once it leads.
//!
//! Pure: the caller gathers the metadata and the reports and carries out the corrections.

use std::collections::{BTreeMap, BTreeSet};

use super::liveness::may_mark_dead;
use crate::proto::nameserver::TablePartition;

/// One table's partitions as the reconciliation reads them.
#[derive(Debug, Clone, Copy)]
pub struct TableView<'a> {
    pub name: &'a str,
    pub tid: u32,
    pub partitions: &'a [TablePartition],
}

/// A replica marked alive that its tablet does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotLoaded {
    pub name: String,
    pub pid: u32,
    pub endpoint: String,
    pub is_leader: bool,
    /// The partition's last alive replica (the mark cannot be dropped without leaving no alive replica: a leader
    /// is reloaded from its own disk instead).
    pub last_alive: bool,
}

/// What the op queues hold for one partition, as [`reconcile_alive_marks`] weighs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// No op queued.
    Idle,
    /// Only ops that yield to a failover of the partition's leader (follower recoveries).
    Yielding,
    /// Another op (a leader change, a reload, a manual op): left to it.
    Busy,
}

/// What [`reconcile_alive_marks`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciliation {
    /// Marks to correct, in table, pid and replica order.
    pub not_loaded: Vec<NotLoaded>,
    /// Missing followers that are their partition's last alive replica: left alone (see the module doc).
    pub stranded: Vec<NotLoaded>,
    /// Partitions no tablet holds, without an alive leader: (name, pid, the last leader to reload).
    pub reload: Vec<(String, u32, String)>,
    /// Partitions whose yielding ops must be canceled before their lost leader in `not_loaded` is corrected.
    pub preempt: Vec<(String, u32)>,
}

/// Compares every alive mark with the reports: `held` maps each tablet that answered to the (tid, pid) it holds
/// loaded. `busy(name, pid)` says what the op queues hold for a partition.
pub fn reconcile_alive_marks(
    tables: &[TableView<'_>],
    held: &BTreeMap<String, BTreeSet<(u32, u32)>>,
    busy: impl Fn(&str, u32) -> Busy,
) -> Reconciliation {
    let mut out = Reconciliation::default();
    for t in tables {
        for p in t.partitions {
            match busy(t.name, p.pid) {
                Busy::Idle => {}
                Busy::Busy => continue,
                Busy::Yielding => {
                    let lost = p.partition_meta.iter().find(|m| {
                        m.is_leader && m.is_alive && held.get(&m.endpoint).is_some_and(|h| !h.contains(&(t.tid, p.pid)))
                    });
                    if let Some(m) = lost {
                        out.preempt.push((t.name.to_string(), p.pid));
                        out.not_loaded.push(NotLoaded {
                            name: t.name.to_string(),
                            pid: p.pid,
                            endpoint: m.endpoint.clone(),
                            is_leader: true,
                            last_alive: !may_mark_dead(p, &m.endpoint),
                        });
                    }
                    continue;
                }
            }
            let answered = |e: &str| held.contains_key(e);
            let held_anywhere =
                p.partition_meta.iter().any(|m| held.get(&m.endpoint).is_some_and(|h| h.contains(&(t.tid, p.pid))));
            let leaderless = !p.partition_meta.iter().any(|m| m.is_leader && m.is_alive);
            if p.partition_meta.len() > 1
                && leaderless
                && !held_anywhere
                && p.partition_meta.iter().all(|m| answered(&m.endpoint))
                && let Some(last) = super::leader::sole_dead_leader(&p.partition_meta)
            {
                out.reload.push((t.name.to_string(), p.pid, last.endpoint.clone()));
                continue;
            }
            for m in p.partition_meta.iter().filter(|m| m.is_alive) {
                let Some(reported) = held.get(&m.endpoint) else { continue };
                if reported.contains(&(t.tid, p.pid)) {
                    continue;
                }
                let found = NotLoaded {
                    name: t.name.to_string(),
                    pid: p.pid,
                    endpoint: m.endpoint.clone(),
                    is_leader: m.is_leader,
                    last_alive: !may_mark_dead(p, &m.endpoint),
                };
                if found.last_alive && !found.is_leader {
                    out.stranded.push(found);
                } else {
                    out.not_loaded.push(found);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::nameserver::PartitionMeta;

    fn part(pid: u32, replicas: &[(&str, bool, bool)]) -> TablePartition {
        TablePartition {
            pid,
            partition_meta: replicas
                .iter()
                .map(|(e, l, a)| PartitionMeta { endpoint: e.to_string(), is_leader: *l, is_alive: *a })
                .collect(),
            ..Default::default()
        }
    }

    fn held(list: &[(&str, &[(u32, u32)])]) -> BTreeMap<String, BTreeSet<(u32, u32)>> {
        list.iter().map(|(e, h)| (e.to_string(), h.iter().copied().collect())).collect()
    }

    fn nl(pid: u32, endpoint: &str, is_leader: bool, last_alive: bool) -> NotLoaded {
        NotLoaded { name: "t".into(), pid, endpoint: endpoint.into(), is_leader, last_alive }
    }

    #[test]
    fn only_the_replica_the_tablet_lacks_is_corrected_never_the_ones_it_holds() {
        // Tablet b holds pid 0 but lacks pid 1 (a manual procedure left the mark): only (1, b) is corrected.
        let parts =
            [part(0, &[("a", true, true), ("b", false, true)]), part(1, &[("b", true, true), ("a", false, true)])];
        let tables = [TableView { name: "t", tid: 7, partitions: &parts }];
        let reports = held(&[("a", &[(7, 0), (7, 1)]), ("b", &[(7, 0)])]);
        let got = reconcile_alive_marks(&tables, &reports, |_, _| Busy::Idle);
        assert_eq!(got, Reconciliation { not_loaded: vec![nl(1, "b", true, false)], ..Default::default() });
    }

    #[test]
    fn everything_held_means_nothing_to_do() {
        let parts = [part(0, &[("a", true, true), ("b", false, true), ("c", false, false)])];
        let tables = [TableView { name: "t", tid: 1, partitions: &parts }];
        // c is marked dead and holds nothing: not this pass's business (the dead-replica pass recovers it).
        let reports = held(&[("a", &[(1, 0)]), ("b", &[(1, 0)]), ("c", &[])]);
        assert_eq!(reconcile_alive_marks(&tables, &reports, |_, _| Busy::Idle), Reconciliation::default());
    }

    #[test]
    fn a_tablet_that_did_not_answer_says_nothing_and_busy_partitions_are_left_to_their_op() {
        let parts =
            [part(0, &[("a", true, true), ("b", false, true)]), part(1, &[("a", true, true), ("b", false, true)])];
        let tables = [TableView { name: "t", tid: 1, partitions: &parts }];
        let reports = held(&[("a", &[])]);
        let got = reconcile_alive_marks(&tables, &reports, |_, pid| if pid == 1 { Busy::Busy } else { Busy::Idle });
        assert_eq!(got.not_loaded, vec![nl(0, "a", true, false)]);
    }

    #[test]
    fn the_last_alive_leader_is_reported_for_a_reload_and_a_last_alive_follower_is_stranded() {
        let parts = [
            part(0, &[("a", true, true), ("b", false, false)]),
            part(1, &[("a", true, false), ("b", false, true)]),
            part(2, &[("a", true, true)]),
        ];
        let tables = [TableView { name: "t", tid: 1, partitions: &parts }];
        let reports = held(&[("a", &[]), ("b", &[])]);
        let got = reconcile_alive_marks(&tables, &reports, |_, _| Busy::Idle);
        assert_eq!(got.not_loaded, vec![nl(0, "a", true, true), nl(2, "a", true, true)]);
        // pid 1: no tablet holds it and its last leader is dead: reloaded from the leader's disk instead.
        assert_eq!(got.stranded, vec![]);
        assert_eq!(got.reload, vec![("t".to_string(), 1, "a".to_string())]);
        // With its dead leader's tablet silent, nothing is known: the follower is only stranded.
        let got = reconcile_alive_marks(&tables, &held(&[("b", &[])]), |_, _| Busy::Idle);
        assert_eq!(got.stranded, vec![nl(1, "b", false, true)]);
        assert_eq!(got.reload, vec![]);
    }

    #[test]
    fn a_leaderless_partition_no_tablet_holds_reloads_its_last_leader() {
        // Semisync partitions after repeated pauses of the nameserver: leader marked dead, both followers marked
        // alive, nobody loaded, every tablet healthy.
        let parts = [
            part(0, &[("a", true, false), ("b", false, true), ("c", false, true)]),
            part(1, &[("b", true, false), ("a", false, true), ("c", false, true)]),
        ];
        let tables = [TableView { name: "t", tid: 4, partitions: &parts }];
        // pid 1 is held by c: a leader change can elect it; only pid 0 is reloaded.
        let reports = held(&[("a", &[]), ("b", &[]), ("c", &[(4, 1)])]);
        let got = reconcile_alive_marks(&tables, &reports, |_, _| Busy::Idle);
        assert_eq!(got.reload, vec![("t".to_string(), 0, "a".to_string())]);
        // pid 1's unloaded follower a is corrected as usual.
        assert_eq!(got.not_loaded, vec![nl(1, "a", false, false)]);
    }

    #[test]
    fn a_follower_alive_but_not_loaded_is_corrected_while_its_leader_lives() {
        // The follower marked alive after repeated pauses of the nameserver but never loaded: marked not alive
        // (then re-added), instead of answering "table is not exist" to every probe for good.
        let parts = [part(3, &[("a", true, true), ("b", false, true), ("c", false, true)])];
        let tables = [TableView { name: "t", tid: 2, partitions: &parts }];
        let reports = held(&[("a", &[(2, 3)]), ("b", &[]), ("c", &[(2, 3)])]);
        let got = reconcile_alive_marks(&tables, &reports, |_, _| Busy::Idle);
        assert_eq!(got.not_loaded, vec![nl(3, "b", false, false)]);
    }

    #[test]
    fn a_lost_leader_goes_before_follower_recoveries_but_nothing_else() {
        // pid 0: the leader a lost the partition (a broken binlog) while a re-add of c, stuck on a cut, is queued.
        // pid 1: the same, but with a leader change queued: left to it. pid 2: only a follower b is missing under
        // a re-add: left to the re-add.
        let parts = [
            part(0, &[("a", true, true), ("b", false, true), ("c", false, false)]),
            part(1, &[("a", true, true), ("b", false, true)]),
            part(2, &[("a", true, true), ("b", false, true)]),
        ];
        let tables = [TableView { name: "t", tid: 3, partitions: &parts }];
        let reports = held(&[("a", &[(3, 2)]), ("b", &[(3, 0), (3, 1)])]);
        let busy = |_: &str, pid: u32| if pid == 1 { Busy::Busy } else { Busy::Yielding };
        let got = reconcile_alive_marks(&tables, &reports, busy);
        assert_eq!(got.not_loaded, vec![nl(0, "a", true, false)]);
        assert_eq!(got.preempt, vec![("t".to_string(), 0)]);
        assert_eq!((got.stranded, got.reload), (vec![], vec![]));
    }
}
