//! What the checkers read: who led each partition over time (polled from the metadata), and the final state of
//! every replica (metadata, offsets and rows read from each tablet).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openmldb::client::partition::{partition_count, partition_of, row_key};
use openmldb::coord::Coordinator;
use openmldb::coord::Layout;
use openmldb::coord::layout::DEFAULT_ROOT;
use openmldb::nameserver::meta::MetaStore;
use openmldb::proto::nameserver::TableInfo;
use openmldb::proto::tablet as tpb;
use openmldb::rpc::{ClientConfig, RpcClient};
use openmldb::tablet::rpc as t;
use openmldb::taskmanager::job::{self, JobType};
use openmldb::taskmanager::source::{self, Source};
use openmldb::taskmanager::store::JobStore;
use tokio::time::Instant;

use crate::check::{JobFinal, LeaderSpan, Observed, PartitionFinal, ReplicaFinal};

/// Leader spans by table name.
pub type Spans = Arc<Mutex<BTreeMap<String, Vec<LeaderSpan>>>>;

/// Changes of each replica's alive flag in the metadata, by table name: `(pid, endpoint, when, alive)`; the
/// first poll records every replica's state.
pub type AliveChanges = Arc<Mutex<BTreeMap<String, Vec<(u32, String, Duration, bool)>>>>;

/// Polls the metadata every `every` and records, per partition, which replica was the alive leader and when, and
/// when each replica's alive flag changed.
pub async fn leader_poller(
    session: Arc<dyn Coordinator>,
    zero: Instant,
    every: Duration,
    spans: Spans,
    alive: AliveChanges,
) {
    let layout = Layout::new(DEFAULT_ROOT);
    // The alive flag last recorded per (table, pid, endpoint).
    let mut last_alive: BTreeMap<(String, u32, String), bool> = BTreeMap::new();
    loop {
        if let Ok(tables) = (MetaStore { coord: session.as_ref(), layout: &layout }).load_tables().await {
            let now = zero.elapsed();
            {
                let mut changes = alive.lock().expect("alive changes");
                for table in &tables {
                    for p in &table.table_partition {
                        for m in &p.partition_meta {
                            let key = (table.name.clone(), p.pid, m.endpoint.clone());
                            if last_alive.insert(key, m.is_alive) != Some(m.is_alive) {
                                let seen = changes.entry(table.name.clone()).or_default();
                                seen.push((p.pid, m.endpoint.clone(), now, m.is_alive));
                            }
                        }
                    }
                }
            }
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
pub async fn observe_table(info: &TableInfo, running: &BTreeSet<String>) -> Observed {
    let mut partitions = Vec::new();
    for p in &info.table_partition {
        let mut replicas = Vec::new();
        for m in &p.partition_meta {
            let (offset, rows, duplicates) = if running.contains(&m.endpoint) {
                read_replica(&m.endpoint, info.tid, p.pid).await
            } else {
                (None, None, Vec::new())
            };
            replicas.push(ReplicaFinal {
                endpoint: m.endpoint.clone(),
                is_leader: m.is_leader,
                is_alive: m.is_alive,
                offset,
                rows,
                duplicates,
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

/// A replica's offset, the keys it holds, and the keys it holds more than once.
async fn read_replica(endpoint: &str, tid: u32, pid: u32) -> (Option<u64>, Option<BTreeSet<String>>, Vec<String>) {
    let client = RpcClient::new(endpoint, ClientConfig { timeout: Duration::from_secs(5), ..Default::default() });
    let status = client.call(t::GetTableStatus, tpb::GetTableStatusRequest { tid, pid, all: false }).await;
    let offset = status.ok().and_then(|s| s.all_table_status.first().map(|s| s.offset));
    let Ok(dump) = client.call(t::Dump, tpb::DumpRequest { tid, pid, limit: 0 }).await else {
        return (offset, None, Vec::new());
    };
    let mut rows = BTreeSet::new();
    let mut duplicates = BTreeSet::new();
    for key in dump.rows.into_iter().filter_map(|r| r.values.into_iter().next()) {
        if let Some(again) = rows.replace(key) {
            duplicates.insert(again);
        }
    }
    (offset, Some(rows), duplicates.into_iter().collect())
}

/// Every TaskManager job, with the keys of generated imports (and their partitions) so the checkers can verify
/// them; jobs whose table is not in `tables` get no keys.
pub async fn read_jobs(session: Arc<dyn Coordinator>, tables: &[TableInfo]) -> Option<Vec<(String, JobFinal)>> {
    let layout = Layout::new(DEFAULT_ROOT);
    let all = JobStore { coord: session.as_ref(), layout: &layout }.load_all().await.ok()?;
    let mut out = Vec::new();
    for cell in all.into_iter().flatten() {
        let j = cell.info;
        let mut keys = Vec::new();
        if JobType::parse(&j.job_type) == Some(JobType::Import)
            && let Ok(Source::Generated { rows, prefix }) = Source::parse(&j.path)
            && let Some(info) = tables.iter().find(|t| t.name == j.table)
        {
            let n = partition_count(info);
            for i in 0..rows {
                let row = source::generated_row(info, &prefix, i);
                let pid = row_key(info, &tpb::Row { values: row.clone() }).map(|k| partition_of(&k, n)).unwrap_or(0);
                if let Some(key) = row.into_iter().next() {
                    keys.push((key, pid));
                }
            }
        }
        let state = job::state_name(j.state()).to_string();
        out.push((j.table.clone(), JobFinal { id: j.id, job_type: j.job_type, state, error: j.error, keys }));
    }
    Some(out)
}
