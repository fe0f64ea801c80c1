//! What the checkers read: who led each partition over time (polled from the metadata), and the final state of
//! every replica (metadata, offsets and rows read from each tablet).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openmldb::coord::Coordinator;
use openmldb::coord::Layout;
use openmldb::coord::layout::DEFAULT_ROOT;
use openmldb::nameserver::meta::MetaStore;
use openmldb::proto::nameserver::TableInfo;
use openmldb::proto::tablet as tpb;
use openmldb::rpc::{ClientConfig, RpcClient};
use openmldb::tablet::rpc as t;
use tokio::time::Instant;

use crate::check::{LeaderSpan, Observed, PartitionFinal, ReplicaFinal};

/// Leader spans by table name.
pub type Spans = Arc<Mutex<BTreeMap<String, Vec<LeaderSpan>>>>;

/// Polls the metadata every `every` and records, per partition, which replica was the alive leader and when.
pub async fn leader_poller(session: Arc<dyn Coordinator>, zero: Instant, every: Duration, spans: Spans) {
    let layout = Layout::new(DEFAULT_ROOT);
    loop {
        if let Ok(tables) = (MetaStore { coord: session.as_ref(), layout: &layout }).load_tables().await {
            let now = zero.elapsed();
            let mut all = spans.lock().expect("spans");
            for table in &tables {
                let spans = all.entry(table.name.clone()).or_default();
                for p in &table.table_partition {
                    let leader = p.partition_meta.iter().find(|m| m.is_leader && m.is_alive).map(|m| &m.endpoint);
                    let open = spans.iter_mut().rev().find(|s| s.pid == p.pid && s.to.is_none());
                    match (open, leader) {
                        (Some(s), Some(l)) if s.endpoint == *l => {}
                        (Some(s), l) => {
                            s.to = Some(now);
                            if let Some(l) = l {
                                spans.push(LeaderSpan { pid: p.pid, endpoint: l.clone(), from: now, to: None });
                            }
                        }
                        (None, Some(l)) => {
                            spans.push(LeaderSpan { pid: p.pid, endpoint: l.clone(), from: now, to: None })
                        }
                        (None, None) => {}
                    }
                }
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// The final state of one table: the metadata's view of each replica, and what each reachable tablet holds.
pub async fn observe_table(info: &TableInfo, running: &std::collections::BTreeSet<String>) -> Observed {
    let mut partitions = Vec::new();
    for p in &info.table_partition {
        let mut replicas = Vec::new();
        for m in &p.partition_meta {
            let (offset, rows) = if running.contains(&m.endpoint) {
                read_replica(&m.endpoint, info.tid, p.pid).await
            } else {
                (None, None)
            };
            replicas.push(ReplicaFinal {
                endpoint: m.endpoint.clone(),
                is_leader: m.is_leader,
                is_alive: m.is_alive,
                offset,
                rows,
            });
        }
        partitions.push(PartitionFinal {
            pid: p.pid,
            term_offset: p.term_offset.iter().map(|t| (t.term, t.offset)).collect(),
            replicas,
        });
    }
    Observed { partitions, ops_stuck: Vec::new() }
}

async fn read_replica(endpoint: &str, tid: u32, pid: u32) -> (Option<u64>, Option<std::collections::BTreeSet<String>>) {
    let client = RpcClient::new(endpoint, ClientConfig { timeout: Duration::from_secs(5), ..Default::default() });
    let status = client.call(t::GetTableStatus, tpb::GetTableStatusRequest { tid, pid, all: false }).await;
    let offset = status.ok().and_then(|s| s.all_table_status.first().map(|s| s.offset));
    let dump = client.call(t::Dump, tpb::DumpRequest { tid, pid, limit: 0 }).await;
    let rows = dump.ok().map(|d| d.rows.into_iter().filter_map(|r| r.values.into_iter().next()).collect());
    (offset, rows)
}
