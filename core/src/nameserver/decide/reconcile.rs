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
//! - Partitions with an op queued are left to the op, which changes the marks itself.
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

/// What [`reconcile_alive_marks`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciliation {
    /// Marks to correct, in table, pid and replica order.
    pub not_loaded: Vec<NotLoaded>,
    /// Missing followers that are their partition's last alive replica: left alone (see the module doc).
    pub stranded: Vec<NotLoaded>,
    /// Partitions no tablet holds, without an alive leader: (name, pid, the last leader to reload).
    pub reload: Vec<(String, u32, String)>,
}

/// Compares every alive mark with the reports: `held` maps each tablet that answered to the (tid, pid) it holds
/// loaded. `busy(name, pid)` is true for partitions with an op queued.
pub fn reconcile_alive_marks(
    tables: &[TableView<'_>],
    held: &BTreeMap<String, BTreeSet<(u32, u32)>>,
    busy: impl Fn(&str, u32) -> bool,
) -> Reconciliation {
    let mut out = Reconciliation::default();
    for t in tables {
        for p in t.partitions {
            if busy(t.name, p.pid) {
                continue;
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
        let got = reconcile_alive_marks(&tables, &reports, |_, _| false);
        assert_eq!(got, Reconciliation { not_loaded: vec![nl(1, "b", true, false)], stranded: vec![], reload: vec![] });
    }

    #[test]
    fn everything_held_means_nothing_to_do() {
        let parts = [part(0, &[("a", true, true), ("b", false, true), ("c", false, false)])];
        let tables = [TableView { name: "t", tid: 1, partitions: &parts }];
        // c is marked dead and holds nothing: not this pass's business (the dead-replica pass recovers it).
        let reports = held(&[("a", &[(1, 0)]), ("b", &[(1, 0)]), ("c", &[])]);
        assert_eq!(reconcile_alive_marks(&tables, &reports, |_, _| false), Reconciliation::default());
    }

    #[test]
    fn a_tablet_that_did_not_answer_says_nothing_and_busy_partitions_are_left_to_their_op() {
        let parts =
            [part(0, &[("a", true, true), ("b", false, true)]), part(1, &[("a", true, true), ("b", false, true)])];
        let tables = [TableView { name: "t", tid: 1, partitions: &parts }];
        let reports = held(&[("a", &[])]);
        let got = reconcile_alive_marks(&tables, &reports, |_, pid| pid == 1);
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
        let got = reconcile_alive_marks(&tables, &reports, |_, _| false);
        assert_eq!(got.not_loaded, vec![nl(0, "a", true, true), nl(2, "a", true, true)]);
        // pid 1: no tablet holds it and its last leader is dead: reloaded from the leader's disk instead.
        assert_eq!(got.stranded, vec![]);
        assert_eq!(got.reload, vec![("t".to_string(), 1, "a".to_string())]);
        // With its dead leader's tablet silent, nothing is known: the follower is only stranded.
        let got = reconcile_alive_marks(&tables, &held(&[("b", &[])]), |_, _| false);
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
        let got = reconcile_alive_marks(&tables, &reports, |_, _| false);
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
        let got = reconcile_alive_marks(&tables, &reports, |_, _| false);
        assert_eq!(got.not_loaded, vec![nl(3, "b", false, false)]);
    }
}
