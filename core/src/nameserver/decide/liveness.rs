//! Whether a replica may be marked dead when its tablet goes away (reference 5.1, OpenMLDB's
//! `UpdateEndpointTableAlive`).

use crate::proto::nameserver::TablePartition;

/// True when the caller should set `is_alive = false` on `endpoint`'s replica of `partition`: the replica
/// exists, is alive, and is not the partition's last alive replica.
///
/// Follows reference 5.1: the bulk "mark the gone tablet's replicas dead" step skips a partition with a single
/// alive replica, so the last alive replica keeps its metadata (and the partition keeps a leader to route to,
/// or a replica to recover from). No deliberate change; it only answers "no" instead of rewriting an
/// already-dead replica.
pub fn may_mark_dead(partition: &TablePartition, endpoint: &str) -> bool {
    let alive = partition.partition_meta.iter().filter(|m| m.is_alive).count();
    let this_alive = partition.partition_meta.iter().any(|m| m.endpoint == endpoint && m.is_alive);
    this_alive && alive > 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::nameserver::PartitionMeta;

    /// Every alive/dead combination of 1 to 4 replicas, every endpoint plus a stranger.
    #[test]
    fn never_the_last_alive_replica_exhaustively() {
        for n in 1..=4u32 {
            for mask in 0..(1u32 << n) {
                let metas: Vec<PartitionMeta> = (0..n)
                    .map(|i| PartitionMeta {
                        endpoint: format!("t{i}"),
                        is_leader: i == 0,
                        is_alive: mask & (1 << i) != 0,
                    })
                    .collect();
                let p = TablePartition { pid: 0, partition_meta: metas, term_offset: vec![] };
                let alive = mask.count_ones();
                for i in 0..=n {
                    let ep = if i == n { "stranger".to_string() } else { format!("t{i}") };
                    let this_alive = i < n && mask & (1 << i) != 0;
                    assert_eq!(may_mark_dead(&p, &ep), this_alive && alive >= 2, "n={n} mask={mask:b} ep={ep}");
                }
            }
        }
    }
}
