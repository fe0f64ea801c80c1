//! A whole simulated cluster for nameserver tests (simulator build): coordination, three machines each with a
//! tablet, nameservers on the first two, a client machine; an ns_client, a writer through the routing client, and
//! the checks every failover test makes (replicas identical, acknowledged writes kept within the loss bound).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mldb_sim::harness::{Cluster, ProcessCtx, ProcessMain, process_main};
use mldb_sim::probes::add_coord;
use openmldb::cli::ns_client::NsClient;
use openmldb::client::{RoutingClient, RoutingConfig, WriteAck};
use openmldb::coord::layout::DEFAULT_ROOT;
use openmldb::coord::{ClientOptions, Coordinator, ModelCoordinator};
use openmldb::nameserver::{Nameserver, NameserverConfig};
use openmldb::proto::nameserver::TableInfo;
use openmldb::proto::tablet as tpb;
use openmldb::rpc::{ClientConfig, RpcClient};
use openmldb::storage::Disk;
use openmldb::tablet::{Tablet, TabletConfig};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::routing::Attempt;

pub const TABLET_PORT: u16 = 9527;
pub const NS_PORT: u16 = 7527;
pub const SESSION: Duration = Duration::from_secs(2);

pub fn tablet_main(coord: String) -> ProcessMain {
    process_main(move |ctx: ProcessCtx| {
        let coord = coord.clone();
        async move {
            let disk = ctx.disk.scoped(&ctx.name).expect("scope the machine's disk");
            disk.create_dir_all("").await.expect("create the tablet's data dir");
            let mut config = TabletConfig::new(ctx.endpoint(TABLET_PORT));
            config.zk_cluster = coord;
            config.zk_session_timeout = SESSION;
            let tablet = Tablet::start(config, Arc::new(disk) as Arc<dyn Disk>).await.expect("start the tablet");
            tablet.join().await;
        }
    })
}

/// A nameserver with the default flags, but `auto_failover` as given (it seeds `/config/auto_failover`).
pub fn ns_main(coord: String, auto_failover: bool) -> ProcessMain {
    process_main(move |ctx: ProcessCtx| {
        let coord = coord.clone();
        async move {
            let mut config = NameserverConfig::new(ctx.endpoint(NS_PORT), coord);
            config.zk_session_timeout = SESSION;
            config.auto_failover = auto_failover;
            let ns = Nameserver::start(config).await.expect("start the nameserver");
            ns.join().await;
        }
    })
}

/// The cluster, with the names and endpoints tests need.
pub struct Env {
    pub c: Cluster,
    pub coord: String,
    /// tablet-1..3 endpoints.
    pub tablets: Vec<String>,
    pub nameservers: Vec<String>,
}

impl Env {
    pub fn new(trace: mldb_sim::trace::Trace, auto_failover: bool) -> Env {
        let mut c = Cluster::new(trace);
        let coord = add_coord(&mut c);
        let (mut tablets, mut nameservers) = (Vec::new(), Vec::new());
        for i in 1..=3 {
            let m = c.add_machine(&format!("machine-{i}"));
            let ip = c.add_process(m, &format!("tablet-{i}"), tablet_main(coord.clone()), true);
            tablets.push(format!("{ip}:{TABLET_PORT}"));
            if i <= 2 {
                let ip = c.add_process(m, &format!("nameserver-{i}"), ns_main(coord.clone(), auto_failover), true);
                nameservers.push(format!("{ip}:{NS_PORT}"));
            }
        }
        let m = c.add_machine("client-machine");
        c.add_process(m, "client", Cluster::idle(), true);
        Env { c, coord, tablets, nameservers }
    }

    /// The process name of a tablet endpoint.
    pub fn tablet_name(&self, endpoint: &str) -> String {
        let i = self.tablets.iter().position(|t| t == endpoint).expect("a tablet endpoint");
        format!("tablet-{}", i + 1)
    }

    /// Runs `fut` on the client machine and waits for it.
    pub async fn on_client<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.c.spawn_on("client", fut).expect("the client process").await.expect("the client task")
    }

    /// Waits (up to 30 s) until every alive replica of table `tid` holds the same rows, then reads the table's
    /// metadata: the state a test checks its writes against.
    pub async fn converged_table(&self, tid: u32) -> (TableInfo, BTreeMap<u32, BTreeSet<String>>) {
        let co = self.coord.clone();
        self.on_client(async move {
            let held = converged(&co, tid, Duration::from_secs(30)).await;
            (table_info(&co, tid).await, held)
        })
        .await
    }

    /// Runs one ns_client command on the client machine; Ok or Err output alike.
    pub async fn ns(&self, cmd: &str) -> Result<String, String> {
        let (coord, cmd) = (self.coord.clone(), cmd.to_string());
        self.on_client(async move { ns_client(&coord).await.execute(&cmd).await }).await
    }

    /// Runs `cmd` until `pred` holds for its output (Ok or Err); fails after `limit`.
    pub async fn ns_until(&self, cmd: &str, limit: Duration, pred: impl Fn(&str) -> bool + Send + 'static) -> String {
        let (coord, cmd) = (self.coord.clone(), cmd.to_string());
        self.on_client(async move {
            let ns = ns_client(&coord).await;
            let start = Instant::now();
            loop {
                let out = match ns.execute(&cmd).await {
                    Ok(o) | Err(o) => o,
                };
                if pred(&out) {
                    return out;
                }
                assert!(
                    start.elapsed() < limit,
                    "`{cmd}` did not reach the expected output within {limit:?}; last:\n{out}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
    }
}

pub async fn session(coord: &str) -> Arc<dyn Coordinator> {
    loop {
        match ModelCoordinator::connect(coord, ClientOptions::new(SESSION)).await {
            Ok(s) => return Arc::new(s),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

pub async fn ns_client(coord: &str) -> NsClient {
    NsClient::new(session(coord).await, DEFAULT_ROOT, Duration::from_secs(2))
}

/// The data rows of a rendered table (after the header and the dashes), split on whitespace.
pub fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines().skip(2).map(|l| l.split_whitespace().map(str::to_string).collect()).collect()
}

/// showtable rows: (pid, endpoint, role, is_alive) of every replica.
pub fn replicas(showtable: &str) -> Vec<(u32, String, String, String)> {
    rows(showtable)
        .into_iter()
        .map(|r| (r[2].parse().expect("pid"), r[3].clone(), r[4].clone(), r[6].clone()))
        .collect()
}

/// Every replica alive, and one leader per partition.
pub fn all_alive(showtable: &str) -> bool {
    let reps = replicas(showtable);
    !reps.is_empty() && reps.iter().all(|r| r.3 == "yes")
}

/// showopstatus has ops and none is still queued or running.
pub fn ops_settled(showopstatus: &str) -> bool {
    let r = rows(showopstatus);
    !r.is_empty() && r.iter().all(|r| r[4] != "kInited" && r[4] != "kDoing")
}

/// A background writer through the routing client: rows `from..`, one every `interval`, until stopped.
pub struct Writer {
    pub log: Arc<Mutex<Vec<Attempt>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: JoinHandle<()>,
}

impl Writer {
    pub fn start(env: &Env, table: &str, from: u64, interval: Duration) -> Writer {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (coord, table, l, s) = (env.coord.clone(), table.to_string(), log.clone(), stop.clone());
        let task = env
            .c
            .spawn_on("client", async move {
                let client = RoutingClient::connect(session(&coord).await, DEFAULT_ROOT, RoutingConfig::default())
                    .await
                    .expect("routing client");
                let mut i = from;
                while !s.load(std::sync::atomic::Ordering::SeqCst) {
                    let result = client.put(&table, crate::routing::row(i)).await;
                    l.lock().expect("log").push(Attempt { row: i, at: Instant::now(), result });
                    i += 1;
                    tokio::time::sleep(interval).await;
                }
            })
            .expect("the client process");
        Writer { log, stop, task }
    }

    pub async fn stop(self) -> Vec<Attempt> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.task.await;
        Arc::try_unwrap(self.log)
            .map(|m| m.into_inner().expect("log"))
            .unwrap_or_else(|a| a.lock().expect("log").clone())
    }
}

/// The acknowledged writes, as (row, ack).
pub fn acked(log: &[Attempt]) -> Vec<(u64, WriteAck)> {
    log.iter().filter_map(|a| a.result.as_ref().ok().map(|ack| (a.row, ack.clone()))).collect()
}

/// The first ack of `pid` answered at or after `after` by a leader other than `not_by` (an answer the old
/// leader sent just before it died may still arrive after).
pub fn first_ack_after(log: &[Attempt], pid: u32, after: Instant, not_by: &str) -> Option<Instant> {
    log.iter()
        .filter(|a| a.at >= after && a.result.as_ref().is_ok_and(|ack| ack.pid == pid && ack.endpoint != not_by))
        .map(|a| a.at)
        .min()
}

/// Reads the table's metadata from the coordination service.
pub async fn table_info(coord: &str, tid: u32) -> TableInfo {
    use prost::Message;
    let s = session(coord).await;
    let (data, _) = s.get(&openmldb::coord::Layout::new(DEFAULT_ROOT).table_data(tid)).await.expect("table node");
    TableInfo::decode(data.as_slice()).expect("table info")
}

/// The ids every replica of every partition holds, by (pid, endpoint).
pub async fn contents(info: &TableInfo) -> BTreeMap<(u32, String), BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for p in &info.table_partition {
        for m in &p.partition_meta {
            let client = RpcClient::new(m.endpoint.clone(), ClientConfig::default());
            let req = tpb::DumpRequest { tid: info.tid, pid: p.pid, limit: 0 };
            let rows = client
                .call(openmldb::tablet::rpc::Dump, req)
                .await
                .unwrap_or_else(|e| panic!("dump pid {} on {}: {e}", p.pid, m.endpoint));
            out.insert((p.pid, m.endpoint.clone()), rows.rows.into_iter().map(|r| r.values[0].clone()).collect());
        }
    }
    out
}

/// Waits until every replica of every partition holds the same rows (offsets equal first), then returns them by
/// pid. Fails after `limit` with the differences.
pub async fn converged(coord: &str, tid: u32, limit: Duration) -> BTreeMap<u32, BTreeSet<String>> {
    let start = Instant::now();
    loop {
        let info = table_info(coord, tid).await;
        let all = contents(&info).await;
        let mut by_pid: BTreeMap<u32, Vec<&BTreeSet<String>>> = BTreeMap::new();
        for ((pid, _), ids) in &all {
            by_pid.entry(*pid).or_default().push(ids);
        }
        if by_pid.values().all(|v| v.windows(2).all(|w| w[0] == w[1])) {
            return by_pid.into_iter().map(|(pid, v)| (pid, v[0].clone())).collect();
        }
        if start.elapsed() > limit {
            let sizes: Vec<String> =
                all.iter().map(|((p, e), ids)| format!("pid {p} {e}: {} rows", ids.len())).collect();
            panic!("replicas did not converge within {limit:?}: {}", sizes.join("; "));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// DESIGN 8's loss bound: an acknowledged write may be missing only if a later term of its partition started at
/// or below its offset (it was in the old leader's un-replicated suffix). Returns the violations.
pub fn lost_beyond_bound(
    acked: &[(u64, WriteAck)],
    held: &BTreeMap<u32, BTreeSet<String>>,
    info: &TableInfo,
) -> Vec<String> {
    let mut out = Vec::new();
    for (row, ack) in acked {
        let key = crate::routing::key(*row);
        if held.get(&ack.pid).is_some_and(|ids| ids.contains(&key)) {
            continue;
        }
        let history = &info.table_partition.iter().find(|p| p.pid == ack.pid).expect("pid").term_offset;
        let overwritten = history.iter().any(|t| t.term > ack.term && t.offset <= ack.offset);
        if !overwritten {
            out.push(format!("row {row} acked as pid {} term {} offset {} is lost", ack.pid, ack.term, ack.offset));
        }
    }
    out
}

/// Rows present that were never attempted: the oracle's "unexpected".
pub fn unexpected(attempted: &BTreeSet<u64>, held: &BTreeMap<u32, BTreeSet<String>>) -> Vec<String> {
    let keys: BTreeSet<String> = attempted.iter().map(|r| crate::routing::key(*r)).collect();
    held.values().flatten().filter(|k| !keys.contains(*k)).cloned().collect()
}
