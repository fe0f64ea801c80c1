//! Where a new table's partitions go (reference 2, OpenMLDB's `SetPartitionInfo`).
//!
//! Replicas are dealt round-robin over the healthy tablets, starting at the least-loaded one, `replica_num`
//! consecutive tablets per pid, and the cursor carries on from pid to pid. Within a pid the replica on the tablet
//! with the fewest leaders (counting the leaders this table has already placed) becomes leader.

use std::collections::BTreeSet;

use thiserror::Error;

use crate::proto::nameserver::{PartitionMeta, TableInfo, TablePartition};

/// OpenMLDB's `replica_num` flag default: without an explicit replica count a table gets `min(3, healthy)`.
pub const DEFAULT_REPLICA_NUM: u32 = 3;

/// A healthy tablet and how much it already carries (alive replicas of existing tables on it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TabletLoad {
    pub endpoint: String,
    /// Alive leader replicas on the tablet.
    pub leader_count: u64,
    /// Alive replicas (leaders and followers) on the tablet.
    pub partition_count: u64,
}

/// One pid's replicas, in placement order, and which of them leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionPlacement {
    pub pid: u32,
    /// Distinct endpoints, `replica_num` of them.
    pub replicas: Vec<String>,
    /// Index into `replicas` of the leader.
    pub leader: usize,
}

impl PartitionPlacement {
    pub fn leader_endpoint(&self) -> &str {
        &self.replicas[self.leader]
    }

    /// The replicas other than the leader, in placement order: the leader's `replicas` at creation.
    pub fn followers(&self) -> impl Iterator<Item = &str> {
        self.replicas.iter().enumerate().filter(move |(i, _)| *i != self.leader).map(|(_, e)| e.as_str())
    }

    /// The partition's metadata: every replica alive, the chosen one leader, no term history yet (the caller
    /// appends `{term, 0}` once the leader is created, reference 2 "Creation order").
    pub fn to_table_partition(&self) -> TablePartition {
        let partition_meta = self
            .replicas
            .iter()
            .enumerate()
            .map(|(i, e)| PartitionMeta { endpoint: e.clone(), is_leader: i == self.leader, is_alive: true })
            .collect();
        TablePartition { pid: self.pid, partition_meta, term_offset: Vec::new() }
    }
}

/// The placement of every pid of a new table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The replica count used: the requested one, or the default `min(3, healthy)`.
    pub replica_num: u32,
    /// One per pid, `0..partition_num` in order.
    pub partitions: Vec<PartitionPlacement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlacementError {
    #[error("no healthy tablet: start a tablet and wait until showtablet lists it as kTabletHealthy")]
    NoHealthyTablet,
    #[error(
        "healthy tablet count {healthy} is less than replica_num {replica_num}: start more tablets or create the \
         table with REPLICANUM <= {healthy}"
    )]
    NotEnoughTablets { healthy: usize, replica_num: u32 },
    #[error("replica_num cannot be less than 1")]
    ZeroReplicaNum,
    #[error("partition_num cannot be less than 1")]
    ZeroPartitionNum,
    #[error("tablet {0} is listed twice among the healthy tablets")]
    DuplicateTablet(String),
}

/// The load of each healthy tablet from the existing tables: alive replicas and alive leaders on it. Replicas on
/// tablets not in `healthy` are ignored. The result keeps `healthy`'s order.
///
/// Follows reference 2 (`SetPartitionInfo` counts only alive replicas on healthy tablets). OpenMLDB counts the
/// tables of the new table's database only; the caller chooses which tables to pass.
pub fn tablet_loads(healthy: &[String], tables: &[TableInfo]) -> Vec<TabletLoad> {
    let mut loads: Vec<TabletLoad> =
        healthy.iter().map(|e| TabletLoad { endpoint: e.clone(), leader_count: 0, partition_count: 0 }).collect();
    let metas = tables.iter().flat_map(|t| &t.table_partition).flat_map(|p| &p.partition_meta);
    for meta in metas.filter(|m| m.is_alive) {
        if let Some(load) = loads.iter_mut().find(|l| l.endpoint == meta.endpoint) {
            load.partition_count += 1;
            load.leader_count += u64::from(meta.is_leader);
        }
    }
    loads
}

/// Places `partition_num` partitions of `replica_num` replicas (None: `min(3, healthy)`) on `tablets`.
///
/// Follows reference 2 (`SetPartitionInfo`):
/// - replica `i` of pid `p` goes to `tablets[(start + p * replica_num + i) % n]`, where `start` is the first
///   tablet with the fewest partitions;
/// - the leader of a pid is its first replica (in placement order) on a tablet with the fewest leaders, counting
///   the existing leaders plus the ones this table has placed so far;
/// - it fails when there are fewer healthy tablets than replicas.
///
/// Deliberate change: OpenMLDB shuffles the tablets with an unseeded RNG here. This function is deterministic:
/// `tablets` is taken in the order given (the caller may shuffle it with the simulator's seeded RNG first), and
/// ties go to the earlier tablet. (OpenMLDB also computes `start` before its shuffle, so it does not really start
/// at the least-loaded tablet; here it does, as the reference describes.)
pub fn place_partitions(
    tablets: &[TabletLoad],
    partition_num: u32,
    replica_num: Option<u32>,
) -> Result<Placement, PlacementError> {
    let n = tablets.len();
    let mut seen = BTreeSet::new();
    if let Some(dup) = tablets.iter().find(|t| !seen.insert(t.endpoint.as_str())) {
        return Err(PlacementError::DuplicateTablet(dup.endpoint.clone()));
    }
    if n == 0 {
        return Err(PlacementError::NoHealthyTablet);
    }
    let replica_num = replica_num.unwrap_or(DEFAULT_REPLICA_NUM.min(u32::try_from(n).unwrap_or(u32::MAX)));
    if replica_num == 0 {
        return Err(PlacementError::ZeroReplicaNum);
    }
    if n < replica_num as usize {
        return Err(PlacementError::NotEnoughTablets { healthy: n, replica_num });
    }
    if partition_num == 0 {
        return Err(PlacementError::ZeroPartitionNum);
    }
    // The first tablet with the fewest partitions (min_by_key keeps the first of equals).
    let start = (0..n).min_by_key(|&i| tablets[i].partition_count).expect("n > 0");
    let mut leaders: Vec<u64> = tablets.iter().map(|t| t.leader_count).collect();
    let mut pos = start;
    let mut partitions = Vec::with_capacity(partition_num as usize);
    for pid in 0..partition_num {
        let mut replicas = Vec::with_capacity(replica_num as usize);
        let mut leader = (0, usize::MAX, u64::MAX); // (replica index, tablet index, its leader count)
        for i in 0..replica_num as usize {
            let t = pos % n;
            replicas.push(tablets[t].endpoint.clone());
            if leaders[t] < leader.2 {
                leader = (i, t, leaders[t]);
            }
            pos += 1;
        }
        leaders[leader.1] += 1;
        partitions.push(PartitionPlacement { pid, replicas, leader: leader.0 });
    }
    Ok(Placement { replica_num, partitions })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn loads(counts: &[(u64, u64)]) -> Vec<TabletLoad> {
        counts
            .iter()
            .enumerate()
            .map(|(i, &(leader_count, partition_count))| TabletLoad {
                endpoint: format!("t{i}:9527"),
                leader_count,
                partition_count,
            })
            .collect()
    }

    fn fresh(n: usize) -> Vec<TabletLoad> {
        loads(&vec![(0, 0); n])
    }

    /// Leaders this placement put on each tablet, in `tablets` order.
    fn new_leaders(tablets: &[TabletLoad], placement: &Placement) -> Vec<u64> {
        tablets
            .iter()
            .map(|t| placement.partitions.iter().filter(|p| p.leader_endpoint() == t.endpoint).count() as u64)
            .collect()
    }

    #[test]
    fn three_tablets_three_replicas_round_robin_with_balanced_leaders() {
        let p = place_partitions(&fresh(3), 4, None).unwrap();
        assert_eq!(p.replica_num, 3);
        let got: Vec<(Vec<&str>, &str)> = p
            .partitions
            .iter()
            .map(|p| (p.replicas.iter().map(String::as_str).collect(), p.leader_endpoint()))
            .collect();
        assert_eq!(
            got,
            vec![
                (vec!["t0:9527", "t1:9527", "t2:9527"], "t0:9527"),
                (vec!["t0:9527", "t1:9527", "t2:9527"], "t1:9527"),
                (vec!["t0:9527", "t1:9527", "t2:9527"], "t2:9527"),
                (vec!["t0:9527", "t1:9527", "t2:9527"], "t0:9527"),
            ]
        );
    }

    #[test]
    fn starts_at_the_least_loaded_tablet_and_leads_on_the_one_with_fewest_leaders() {
        // t2 carries the fewest partitions, so pid 0 starts there; t0 has the fewest leaders of pid 0's replicas.
        let tablets = loads(&[(0, 5), (4, 6), (3, 1), (2, 2)]);
        let p = place_partitions(&tablets, 2, Some(2)).unwrap();
        assert_eq!(p.partitions[0].replicas, vec!["t2:9527", "t3:9527"]);
        assert_eq!(p.partitions[0].leader_endpoint(), "t3:9527");
        assert_eq!(p.partitions[1].replicas, vec!["t0:9527", "t1:9527"]);
        assert_eq!(p.partitions[1].leader_endpoint(), "t0:9527");
        assert_eq!(p.partitions[1].followers().collect::<Vec<_>>(), vec!["t1:9527"]);
    }

    #[test]
    fn default_replica_num_is_min_of_three_and_healthy() {
        for n in 1..=5 {
            let p = place_partitions(&fresh(n), 2, None).unwrap();
            assert_eq!(p.replica_num as usize, n.min(3));
        }
    }

    #[test]
    fn refuses_impossible_requests_with_clear_errors() {
        assert_eq!(place_partitions(&[], 1, None), Err(PlacementError::NoHealthyTablet));
        assert_eq!(place_partitions(&[], 1, Some(1)), Err(PlacementError::NoHealthyTablet));
        let err = place_partitions(&fresh(2), 8, Some(3)).unwrap_err();
        assert_eq!(err, PlacementError::NotEnoughTablets { healthy: 2, replica_num: 3 });
        assert!(err.to_string().contains("start more tablets"), "{err}");
        assert_eq!(place_partitions(&fresh(2), 8, Some(0)), Err(PlacementError::ZeroReplicaNum));
        assert_eq!(place_partitions(&fresh(2), 0, None), Err(PlacementError::ZeroPartitionNum));
        let mut dup = fresh(2);
        dup[1].endpoint = dup[0].endpoint.clone();
        assert_eq!(place_partitions(&dup, 1, None), Err(PlacementError::DuplicateTablet("t0:9527".into())));
    }

    #[test]
    fn to_table_partition_marks_every_replica_alive_and_one_leader() {
        let p = place_partitions(&fresh(3), 1, Some(3)).unwrap();
        let tp = p.partitions[0].to_table_partition();
        assert_eq!(tp.pid, 0);
        assert!(tp.partition_meta.iter().all(|m| m.is_alive));
        assert_eq!(tp.partition_meta.iter().filter(|m| m.is_leader).count(), 1);
        assert!(tp.term_offset.is_empty());
    }

    #[test]
    fn tablet_loads_count_alive_replicas_and_leaders_on_healthy_tablets_only() {
        let meta = |e: &str, is_leader, is_alive| PartitionMeta { endpoint: e.into(), is_leader, is_alive };
        let table = TableInfo {
            table_partition: vec![
                TablePartition {
                    pid: 0,
                    partition_meta: vec![meta("a", true, false), meta("b", true, true), meta("c", false, true)],
                    term_offset: vec![],
                },
                TablePartition {
                    pid: 1,
                    partition_meta: vec![meta("a", true, true), meta("b", false, true), meta("gone", false, true)],
                    term_offset: vec![],
                },
            ],
            ..Default::default()
        };
        let healthy: Vec<String> = ["c", "b", "a"].iter().map(|s| s.to_string()).collect();
        let got: Vec<(String, u64, u64)> = tablet_loads(&healthy, &[table])
            .into_iter()
            .map(|l| (l.endpoint, l.leader_count, l.partition_count))
            .collect();
        let want = [("c", 0, 1), ("b", 1, 2), ("a", 1, 1)].map(|(e, l, p)| (e.to_string(), l, p));
        assert_eq!(got, want);
    }

    /// Exhaustive over small clusters from scratch: the new table's leaders spread within ±1 across the tablets.
    #[test]
    fn fresh_clusters_get_leaders_spread_within_one_exhaustively() {
        for n in 1..=7 {
            for r in 1..=n as u32 {
                for parts in 1..=3 * n as u32 + 1 {
                    let tablets = fresh(n);
                    let p = place_partitions(&tablets, parts, Some(r)).unwrap();
                    let l = new_leaders(&tablets, &p);
                    let (min, max) = (l.iter().min().unwrap(), l.iter().max().unwrap());
                    assert!(max - min <= 1, "n={n} r={r} parts={parts}: leaders {l:?}");
                }
            }
        }
    }

    fn arb_tablets() -> impl Strategy<Value = Vec<TabletLoad>> {
        proptest::collection::vec((0u64..6, 0u64..12), 1..8).prop_map(|c| loads(&c))
    }

    proptest! {
        #[test]
        fn placement_invariants(tablets in arb_tablets(), parts in 1u32..20, r in proptest::option::of(1u32..5)) {
            let n = tablets.len();
            let result = place_partitions(&tablets, parts, r);
            let want_r = r.unwrap_or(3.min(n as u32));
            if (want_r as usize) > n {
                prop_assert_eq!(result, Err(PlacementError::NotEnoughTablets { healthy: n, replica_num: want_r }));
                return Ok(());
            }
            let p = result.unwrap();
            prop_assert_eq!(p.replica_num, want_r);
            prop_assert_eq!(p.partitions.len(), parts as usize);
            // Deterministic for the same input.
            prop_assert_eq!(&place_partitions(&tablets, parts, r).unwrap(), &p);
            let mut leaders: Vec<u64> = tablets.iter().map(|t| t.leader_count).collect();
            let index = |e: &str| tablets.iter().position(|t| t.endpoint == e).unwrap();
            for (pid, part) in p.partitions.iter().enumerate() {
                prop_assert_eq!(part.pid as usize, pid);
                // replica_num distinct endpoints, all of them healthy tablets.
                prop_assert_eq!(part.replicas.len(), want_r as usize);
                let distinct: BTreeSet<&String> = part.replicas.iter().collect();
                prop_assert_eq!(distinct.len(), part.replicas.len());
                // Exactly one leader.
                prop_assert!(part.leader < part.replicas.len());
                let tp = part.to_table_partition();
                prop_assert_eq!(tp.partition_meta.iter().filter(|m| m.is_leader).count(), 1);
                // The leader sits on a replica tablet with the fewest leaders so far (the first such).
                let counts: Vec<u64> = part.replicas.iter().map(|e| leaders[index(e)]).collect();
                let min = *counts.iter().min().unwrap();
                prop_assert_eq!(part.leader, counts.iter().position(|&c| c == min).unwrap());
                leaders[index(part.leader_endpoint())] += 1;
            }
            // Round robin from the least-loaded tablet.
            let start = (0..n).min_by_key(|&i| tablets[i].partition_count).unwrap();
            prop_assert_eq!(&p.partitions[0].replicas[0], &tablets[start].endpoint);
        }

        #[test]
        fn equal_existing_leaders_stay_within_one(n in 1usize..8, base in 0u64..5, parts in 1u32..30, r in 1u32..8) {
            let r = r.min(n as u32);
            let tablets = loads(&vec![(base, base * 2); n]);
            let p = place_partitions(&tablets, parts, Some(r)).unwrap();
            let l = new_leaders(&tablets, &p);
            prop_assert!(l.iter().max().unwrap() - l.iter().min().unwrap() <= 1, "leaders {:?}", l);
        }
    }
}
