//! Helpers for tablet tests, runtime-agnostic (they only make RPCs): a three-column schema, rows with unique ids,
//! partition creation, a writer that records what was acknowledged, and waits on offsets.

use std::collections::BTreeSet;
use std::time::Duration;

use openmldb::proto::tablet as pb;
use openmldb::rpc::{ClientConfig, RpcClient, RpcError};
use openmldb::tablet::rpc as m;
use tokio::time::Instant;

pub const TID: u32 = 1;
pub const PID: u32 = 0;

/// `flow(id string, ts int64, v string)` indexed by id, ordered by ts, no TTL.
pub fn meta(mode: pb::TableMode, term: u64, replicas: &[String]) -> pb::TableMeta {
    pb::TableMeta {
        name: "flow".into(),
        db: "db".into(),
        tid: TID,
        pid: PID,
        seg_cnt: 8,
        mode: mode as i32,
        term,
        column_desc: vec![
            pb::ColumnDesc { name: "id".into(), data_type: "string".into() },
            pb::ColumnDesc { name: "ts".into(), data_type: "int64".into() },
            pb::ColumnDesc { name: "v".into(), data_type: "string".into() },
        ],
        column_key: vec![pb::ColumnKey {
            index_name: "id".into(),
            col_name: vec!["id".into()],
            ts_name: "ts".into(),
            ttl: Some(pb::TtlSt { ttl_type: pb::TtlType::AbsoluteTime as i32, abs_ttl: 0, lat_ttl: 0 }),
        }],
        replicas: replicas.to_vec(),
        replication: pb::ReplicationMode::Async as i32,
    }
}

/// Row number `i`: its id is unique, so the checkers can tell every write apart.
pub fn row(i: u64) -> pb::Row {
    pb::Row { values: vec![format!("row-{i:08}"), (1_000 + i).to_string(), format!("value-{i}")] }
}

pub fn client(endpoint: &str) -> RpcClient {
    RpcClient::new(endpoint, ClientConfig { timeout: Duration::from_secs(2), ..Default::default() })
}

/// A ChangeRole of the test partition (`TID`, `PID`) to `mode` in `term`, replicating to `replicas`.
pub fn change_role(mode: pb::TableMode, term: u64, replicas: &[String]) -> pb::ChangeRoleRequest {
    pb::ChangeRoleRequest { tid: TID, pid: PID, mode: mode as i32, term, replicas: replicas.to_vec() }
}

pub async fn create(endpoint: &str, meta: pb::TableMeta) {
    client(endpoint)
        .call(m::CreateTable, pb::CreateTableRequest { meta: Some(meta) })
        .await
        .unwrap_or_else(|e| panic!("create table on {endpoint}: {e}"));
}

pub async fn load(endpoint: &str, meta: pb::TableMeta) {
    client(endpoint)
        .call(m::LoadTable, pb::LoadTableRequest { meta: Some(meta), task_info: None })
        .await
        .unwrap_or_else(|e| panic!("load table on {endpoint}: {e}"));
}

pub async fn status(endpoint: &str) -> Option<pb::TableStatus> {
    let req = pb::GetTableStatusRequest { tid: TID, pid: PID, all: false };
    client(endpoint).call(m::GetTableStatus, req).await.ok()?.all_table_status.into_iter().next()
}

/// Waits until the replica on `endpoint` is loaded (kTableNormal) with at least `offset`.
pub async fn wait_offset(endpoint: &str, offset: u64, limit: Duration) -> pb::TableStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = status(endpoint).await
            && s.state == pb::TableState::Normal as i32
            && s.offset >= offset
        {
            return s;
        }
        assert!(
            start.elapsed() < limit,
            "{endpoint} did not reach offset {offset} within {limit:?}: {:?}",
            status(endpoint).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every row the replica on `endpoint` holds, as a set of ids.
pub async fn ids(endpoint: &str) -> BTreeSet<String> {
    let req = pb::DumpRequest { tid: TID, pid: PID, limit: 0 };
    let resp = client(endpoint).call(m::Dump, req).await.unwrap_or_else(|e| panic!("dump {endpoint}: {e}"));
    resp.rows.into_iter().map(|r| r.values[0].clone()).collect()
}

/// What a writer saw for one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Acked { term: u64, offset: u64 },
    Failed(String),
    Unknown(String),
}

/// Writes rows `from..to` to the leader, one every `interval`, and records each outcome.
pub async fn write(leader: &RpcClient, from: u64, to: u64, interval: Duration) -> Vec<(u64, Outcome)> {
    let mut out = Vec::new();
    for i in from..to {
        let req = pb::PutRequest { tid: TID, pid: PID, row: Some(row(i)), request_id: String::new() };
        let outcome = match leader.call(m::Put, req).await {
            Ok(r) => Outcome::Acked { term: r.term, offset: r.offset },
            Err(e @ (RpcError::Timeout { .. } | RpcError::ConnectionLost { .. })) => Outcome::Unknown(e.to_string()),
            Err(e) => Outcome::Failed(e.to_string()),
        };
        out.push((i, outcome));
        tokio::time::sleep(interval).await;
    }
    out
}

/// The ids of acknowledged rows.
pub fn acked_ids(log: &[(u64, Outcome)]) -> BTreeSet<String> {
    log.iter().filter(|(_, o)| matches!(o, Outcome::Acked { .. })).map(|(i, _)| row(*i).values[0].clone()).collect()
}
