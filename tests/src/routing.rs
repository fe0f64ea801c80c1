//! Helpers for routing-client tests, runtime-agnostic (coordination calls and tablet RPCs only): a two-index
//! table, partitions created on tablets, and a stand-in nameserver that publishes `TableInfo` and bumps `notify`
//! the way the real one will.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use openmldb::client::{ClientError, WriteAck, partition_of};
use openmldb::coord::{CoordError, Coordinator, CreateMode, Layout, create_all};
use openmldb::proto::nameserver::{PartitionMeta, TableInfo, TablePartition, TermPair};
use openmldb::proto::tablet as pb;
use openmldb::rpc::{ClientConfig, RpcClient};
use openmldb::tablet::rpc as m;
use prost::Message;
use tokio::time::Instant;

pub const TABLE: &str = "flow";
pub const DB: &str = "db";
pub const TID: u32 = 7;

/// `flow(id string, ts int64, v string)`: index 0 on id, index 1 on v, both ordered by ts, no TTL.
pub fn columns() -> Vec<pb::ColumnDesc> {
    [("id", "string"), ("ts", "int64"), ("v", "string")]
        .iter()
        .map(|(n, t)| pb::ColumnDesc { name: (*n).into(), data_type: (*t).into() })
        .collect()
}

pub fn indexes() -> Vec<pb::ColumnKey> {
    let ttl = Some(pb::TtlSt { ttl_type: pb::TtlType::AbsoluteTime as i32, abs_ttl: 0, lat_ttl: 0 });
    vec![
        pb::ColumnKey { index_name: "id".into(), col_name: vec!["id".into()], ts_name: "ts".into(), ttl },
        pb::ColumnKey { index_name: "v".into(), col_name: vec!["v".into()], ts_name: "ts".into(), ttl },
    ]
}

/// Row `i`: a unique id (its index-0 key), ts `1000 + i`, and `v = "v<i % 5>"` shared across partitions.
pub fn row(i: u64) -> pb::Row {
    pb::Row { values: vec![key(i), (1_000 + i).to_string(), format!("v{}", i % 5)] }
}

/// The index-0 key of row `i`.
pub fn key(i: u64) -> String {
    format!("row-{i:08}")
}

/// The first row number at or after `from` whose key falls in partition `pid` of `partitions`.
pub fn row_in(pid: u32, partitions: u32, from: u64) -> u64 {
    (from..).find(|&i| partition_of(&key(i), partitions) == pid).expect("some key lands in every partition")
}

/// The meta a tablet gets for one replica of partition `pid`.
pub fn tablet_meta(pid: u32, mode: pb::TableMode, term: u64, replicas: &[String]) -> pb::TableMeta {
    pb::TableMeta {
        name: TABLE.into(),
        db: DB.into(),
        tid: TID,
        pid,
        seg_cnt: 8,
        mode: mode as i32,
        term,
        column_desc: columns(),
        column_key: indexes(),
        replicas: replicas.to_vec(),
        replication: pb::ReplicationMode::Async as i32,
    }
}

pub fn client(endpoint: &str) -> RpcClient {
    RpcClient::new(endpoint, ClientConfig { timeout: Duration::from_secs(2), ..Default::default() })
}

/// Creates `partitions` partitions with every endpoint as a replica; partition p's leader is `eps[p % n]`, in
/// term 1. Returns the matching `TableInfo`, as the nameserver would record it.
pub async fn create_partitions(eps: &[String], partitions: u32) -> TableInfo {
    let mut table_partition = Vec::new();
    for pid in 0..partitions {
        let leader = &eps[pid as usize % eps.len()];
        let followers: Vec<String> = eps.iter().filter(|e| *e != leader).cloned().collect();
        for f in &followers {
            let meta = tablet_meta(pid, pb::TableMode::Follower, 1, &[]);
            client(f).call(m::CreateTable, pb::CreateTableRequest { meta: Some(meta) }).await.expect("create follower");
        }
        let meta = tablet_meta(pid, pb::TableMode::Leader, 1, &followers);
        client(leader).call(m::CreateTable, pb::CreateTableRequest { meta: Some(meta) }).await.expect("create leader");
        let partition_meta =
            eps.iter().map(|e| PartitionMeta { endpoint: e.clone(), is_leader: e == leader, is_alive: true }).collect();
        table_partition.push(TablePartition {
            pid,
            partition_meta,
            term_offset: vec![TermPair { term: 1, offset: 0 }],
        });
    }
    TableInfo {
        name: TABLE.into(),
        db: DB.into(),
        tid: TID,
        seg_cnt: 8,
        partition_num: partitions,
        replica_num: eps.len() as u32,
        column_desc: columns(),
        column_key: indexes(),
        table_partition,
        replication: pb::ReplicationMode::Async as i32,
    }
}

/// The replica of `endpoint` in partition `pid`.
pub fn replica<'a>(info: &'a mut TableInfo, pid: u32, endpoint: &str) -> &'a mut PartitionMeta {
    info.table_partition
        .iter_mut()
        .find(|p| p.pid == pid)
        .expect("partition exists")
        .partition_meta
        .iter_mut()
        .find(|r| r.endpoint == endpoint)
        .expect("replica exists")
}

/// ChangeRole on one tablet: leader of `pid` in `term` with `followers`, or follower (empty `followers`).
pub async fn change_role(endpoint: &str, pid: u32, mode: pb::TableMode, term: u64, followers: &[String]) {
    let req = pb::ChangeRoleRequest { tid: TID, pid, mode: mode as i32, term, replicas: followers.to_vec() };
    client(endpoint).call(m::ChangeRole, req).await.unwrap_or_else(|e| panic!("change role on {endpoint}: {e}"));
}

/// The status of partition `pid` on `endpoint`.
pub async fn status(endpoint: &str, pid: u32) -> Option<pb::TableStatus> {
    let req = pb::GetTableStatusRequest { tid: TID, pid, all: false };
    client(endpoint).call(m::GetTableStatus, req).await.ok()?.all_table_status.into_iter().next()
}

/// The ids of every row partition `pid` holds on `endpoint`.
pub async fn ids(endpoint: &str, pid: u32) -> BTreeSet<String> {
    let req = pb::DumpRequest { tid: TID, pid, limit: 0 };
    let resp = client(endpoint).call(m::Dump, req).await.unwrap_or_else(|e| panic!("dump {endpoint}: {e}"));
    resp.rows.into_iter().map(|r| r.values[0].clone()).collect()
}

/// The nameserver's side of the metadata contract, played by a test: `TableInfo` nodes and the `notify` counter.
pub struct MetaWriter {
    coord: Arc<dyn Coordinator>,
    layout: Layout,
}

impl MetaWriter {
    /// Creates the table directory and `notify` (at 0) if missing.
    pub async fn new(coord: Arc<dyn Coordinator>, root: &str) -> Result<Self, CoordError> {
        let layout = Layout::new(root);
        create_all(coord.as_ref(), &layout.db_table_data()).await?;
        match coord.create(&layout.notify(), b"0", CreateMode::Persistent).await {
            Ok(_) | Err(CoordError::NodeExists(_)) => {}
            Err(e) => return Err(e),
        }
        Ok(Self { coord, layout })
    }

    /// Writes the table's node; with `bump`, then increments `notify` and returns its new value.
    pub async fn publish(&self, info: &TableInfo, bump: bool) -> Result<Option<u64>, CoordError> {
        let path = self.layout.table_data(info.tid);
        let data = info.encode_to_vec();
        match self.coord.create(&path, &data, CreateMode::Persistent).await {
            Ok(_) => {}
            Err(CoordError::NodeExists(_)) => {
                self.coord.set(&path, &data, None).await?;
            }
            Err(e) => return Err(e),
        }
        if bump { self.bump().await.map(Some) } else { Ok(None) }
    }

    /// Increments `notify` (compare-and-set on its version) and returns the new value.
    pub async fn bump(&self) -> Result<u64, CoordError> {
        let path = self.layout.notify();
        loop {
            let (data, stat) = self.coord.get(&path).await?;
            let next = String::from_utf8_lossy(&data).trim().parse::<u64>().unwrap_or(0) + 1;
            match self.coord.set(&path, next.to_string().as_bytes(), Some(stat.version)).await {
                Ok(_) => return Ok(next),
                Err(e) if e.is_bad_version() => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// One write as a writer saw it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub row: u64,
    /// When the answer came (simulated time under madsim).
    pub at: Instant,
    pub result: Result<WriteAck, ClientError>,
}

/// The acks of partition `pid` in write order.
pub fn acks_of(log: &[Attempt], pid: u32) -> Vec<(u64, WriteAck)> {
    log.iter()
        .filter_map(|a| a.result.as_ref().ok().filter(|ack| ack.pid == pid).map(|ack| (a.row, ack.clone())))
        .collect()
}
