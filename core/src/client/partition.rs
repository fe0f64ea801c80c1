//! Which partition a row belongs to, and which replica of a partition serves it: pure functions over a
//! [`TableInfo`], shared by the routing client, the nameserver and the tools so they can never disagree.
//!
//! **The partition function.** A row lives in partition `partition_of(key, partition_num)`, where `key` is the
//! row's key in index 0 (the values of index 0's key columns joined with `"|"`, as
//! [`TableSchema::entry_for_row`](crate::storage::memtable::TableSchema::entry_for_row) builds it) and the hash
//! is 64-bit FNV-1a of the key's UTF-8 bytes ([`key_hash`]). FNV-1a is fixed by its definition (offset basis
//! `0xcbf29ce484222325`, prime `0x100000001b3`), so the placement of a key is the same in every process, build,
//! platform and release; unit tests pin it with fixed values. OpenMLDB hashes each index's key separately
//! (MurmurHash64A) and writes a row once per partition its dimensions hash to; here a row is written once, to the
//! partition of its index-0 key, so a read by any other index must ask every partition.
//!
//! **The replica to use.** The one with `is_leader && is_alive` (reference 1.1, OpenMLDB's `GetLeader`). After a
//! failover the dead ex-leader keeps `is_leader = true, is_alive = false`, so both flags matter.

use crate::proto::nameserver::{PartitionMeta, TableInfo};
use crate::proto::tablet::Row;
use crate::storage::memtable::KEY_SEPARATOR;

/// FNV-1a 64 offset basis.
const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64 prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a of the key's UTF-8 bytes: the hash behind [`partition_of`].
pub fn key_hash(key: &str) -> u64 {
    key.as_bytes().iter().fold(FNV_OFFSET_BASIS, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

/// The partition of a key among `partition_num` partitions: `key_hash(key) % partition_num`.
///
/// # Panics
/// If `partition_num` is 0: a table has at least one partition.
pub fn partition_of(key: &str, partition_num: u32) -> u32 {
    assert!(partition_num > 0, "a table has at least one partition");
    (key_hash(key) % u64::from(partition_num)) as u32
}

/// A table's partition count: `partition_num`, or, should that be unset, the number of partitions listed.
pub fn partition_count(info: &TableInfo) -> u32 {
    if info.partition_num > 0 { info.partition_num } else { info.table_partition.len() as u32 }
}

/// The replica of partition `pid` that serves reads and writes: the first with `is_leader && is_alive`.
pub fn alive_leader(info: &TableInfo, pid: u32) -> Option<&PartitionMeta> {
    info.table_partition.iter().find(|p| p.pid == pid)?.partition_meta.iter().find(|m| m.is_leader && m.is_alive)
}

/// Why a row cannot be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowKeyError {
    #[error("row has {got} values, the table has {expected} columns")]
    ColumnCount { expected: usize, got: usize },
    #[error("the table has no index")]
    NoIndex,
    #[error("index 0 names column {0:?}, which the table does not have")]
    UnknownColumn(String),
}

/// The key of `row` in index 0 of the table: what [`partition_of`] is applied to.
pub fn row_key(info: &TableInfo, row: &Row) -> Result<String, RowKeyError> {
    let expected = info.column_desc.len();
    if row.values.len() != expected {
        return Err(RowKeyError::ColumnCount { expected, got: row.values.len() });
    }
    let index = info.column_key.first().ok_or(RowKeyError::NoIndex)?;
    let mut parts = Vec::with_capacity(index.col_name.len());
    for col in &index.col_name {
        let position = info
            .column_desc
            .iter()
            .position(|c| &c.name == col)
            .ok_or_else(|| RowKeyError::UnknownColumn(col.clone()))?;
        parts.push(row.values[position].as_str());
    }
    Ok(parts.join(KEY_SEPARATOR))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::nameserver::TablePartition;
    use crate::proto::tablet::{ColumnDesc, ColumnKey};

    #[test]
    fn key_hash_is_fnv1a_64() {
        // The published FNV-1a 64 test vectors.
        assert_eq!(key_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(key_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(key_hash("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn partition_of_is_pinned() {
        // Fixed forever: changing any of these moves rows of existing tables to other partitions.
        assert_eq!(partition_of("a", 8), (0xaf63_dc4c_8601_ec8c_u64 % 8) as u32);
        assert_eq!(partition_of("foobar", 8), (0x8594_4171_f739_67e8_u64 % 8) as u32);
        let pinned: Vec<u32> = (0..8).map(|i| partition_of(&format!("row-{i:08}"), 8)).collect();
        assert_eq!(pinned, [2, 5, 4, 7, 6, 1, 0, 3]);
        assert_eq!(partition_of("c1|m1", 2), 1);
        assert_eq!(partition_of("anything", 1), 0);
    }

    #[test]
    fn partition_of_spreads_keys() {
        for n in [2u32, 3, 8] {
            let mut counts = vec![0u32; n as usize];
            for i in 0..8000 {
                counts[partition_of(&format!("key-{i}"), n) as usize] += 1;
            }
            let even = 8000 / n;
            assert!(counts.iter().all(|&c| c > even * 8 / 10 && c < even * 12 / 10), "{n}: {counts:?}");
        }
    }

    #[test]
    #[should_panic(expected = "at least one partition")]
    fn no_partitions_is_a_bug() {
        partition_of("a", 0);
    }

    fn info() -> TableInfo {
        let replica = |ep: &str, is_leader, is_alive| PartitionMeta { endpoint: ep.into(), is_leader, is_alive };
        TableInfo {
            name: "t".into(),
            partition_num: 2,
            column_desc: ["c", "m", "ts"]
                .iter()
                .map(|n| ColumnDesc { name: (*n).into(), data_type: "string".into() })
                .collect(),
            column_key: vec![ColumnKey {
                index_name: "cm".into(),
                col_name: vec!["c".into(), "m".into()],
                ts_name: "ts".into(),
                ttl: None,
            }],
            table_partition: vec![
                TablePartition {
                    pid: 0,
                    partition_meta: vec![replica("a:1", true, false), replica("b:1", true, true)],
                    term_offset: vec![],
                },
                TablePartition {
                    pid: 1,
                    partition_meta: vec![replica("a:1", true, false), replica("b:1", false, true)],
                    term_offset: vec![],
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn the_leader_is_leader_and_alive() {
        let info = info();
        assert_eq!(alive_leader(&info, 0).map(|m| m.endpoint.as_str()), Some("b:1"));
        assert_eq!(alive_leader(&info, 1), None, "a dead ex-leader and a follower: no leader");
        assert_eq!(alive_leader(&info, 2), None, "no such partition");
        assert_eq!(partition_count(&info), 2);
        assert_eq!(partition_count(&TableInfo { partition_num: 0, ..info }), 2);
    }

    #[test]
    fn row_key_joins_index_zero_columns() {
        let info = info();
        let row = |v: &[&str]| Row { values: v.iter().map(|s| (*s).to_string()).collect() };
        assert_eq!(row_key(&info, &row(&["c1", "m1", "10"])).unwrap(), "c1|m1");
        assert_eq!(row_key(&info, &row(&["c1", "m1"])).unwrap_err(), RowKeyError::ColumnCount { expected: 3, got: 2 });
        let mut bad = info.clone();
        bad.column_key[0].col_name[1] = "zz".into();
        assert_eq!(row_key(&bad, &row(&["c1", "m1", "10"])).unwrap_err(), RowKeyError::UnknownColumn("zz".into()));
        bad.column_key.clear();
        assert_eq!(row_key(&bad, &row(&["c1", "m1", "10"])).unwrap_err(), RowKeyError::NoIndex);
    }
}
