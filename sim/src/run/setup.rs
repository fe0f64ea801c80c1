//! From a scenario to a running cluster: the flags applied to each role's configuration, and the processes placed
//! on machines as DESIGN 7 says (machine i runs tablet-i, nameserver-i and taskmanager-i; the coordination server
//! and the test client have machines of their own).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openmldb::nameserver::{Nameserver, NameserverConfig};
use openmldb::storage::Disk;
use openmldb::tablet::{Tablet, TabletConfig};
use openmldb::taskmanager::{TaskManager, TaskManagerConfig};

use crate::harness::{Cluster, ProcessCtx, ProcessMain, process_main};
use crate::machine::MachineId;
use crate::probes::add_coord;
use crate::scenario::{FlagValue, MachineRef, ProcessId, Scenario};

pub const TABLET_PORT: u16 = 9527;
pub const NS_PORT: u16 = 7527;
pub const TM_PORT: u16 = 9902;
/// The process the runner drives clients from; never faulted.
pub const CLIENT: &str = "client";

/// The daemon's restart delay when the scenario sets no `restart_delay` (OpenMLDB's `mon` waits 10 s by default;
/// DESIGN 4.6 keeps it a flag).
pub const DEFAULT_RESTART_DELAY: Duration = Duration::from_secs(10);

/// The flags of a scenario, resolved with defaults.
#[derive(Debug, Clone)]
pub struct Flags {
    pub tablet: TabletConfig,
    pub nameserver: NameserverConfig,
    pub taskmanager: TaskManagerConfig,
    pub restart_delay: Duration,
    pub zk_session_timeout: Duration,
}

fn ms(v: &FlagValue) -> Duration {
    match v {
        FlagValue::Int(i) => Duration::from_millis(*i),
        _ => Duration::ZERO,
    }
}

fn int(v: &FlagValue) -> u64 {
    if let FlagValue::Int(i) = v { *i } else { 0 }
}

impl Flags {
    /// Every flag the scenario sets, applied by its OpenMLDB name (the parser already checked names and types).
    pub fn of(s: &Scenario) -> Flags {
        let mut tablet = TabletConfig::new("");
        let mut nameserver = NameserverConfig::new("", "");
        let mut taskmanager = TaskManagerConfig::new("", "");
        let mut restart_delay = DEFAULT_RESTART_DELAY;
        for (name, v) in &s.flags {
            match name.as_str() {
                "auto_failover" => nameserver.auto_failover = matches!(v, FlagValue::Bool(true)),
                "zk_session_timeout" => {
                    tablet.zk_session_timeout = ms(v);
                    nameserver.zk_session_timeout = ms(v);
                    taskmanager.zk_session_timeout = ms(v);
                }
                "import_batch_rows" => taskmanager.import_batch_rows = int(v).max(1),
                "tablet_heartbeat_timeout" => nameserver.tablet_heartbeat_timeout = ms(v),
                "get_table_status_interval" => nameserver.get_table_status_interval = ms(v),
                "get_task_status_interval" => nameserver.get_task_status_interval = ms(v),
                "name_server_task_max_concurrency" => {
                    nameserver.name_server_task_max_concurrency = u32::try_from(int(v)).unwrap_or(u32::MAX)
                }
                "name_server_task_concurrency" => {
                    nameserver.name_server_task_concurrency = u32::try_from(int(v)).unwrap_or(u32::MAX)
                }
                "max_op_num" => nameserver.max_op_num = usize::try_from(int(v)).unwrap_or(usize::MAX),
                "check_binlog_sync_progress_delta" => nameserver.check_binlog_sync_progress_delta = int(v),
                "partition_num" => nameserver.partition_num = u32::try_from(int(v)).unwrap_or(u32::MAX),
                "request_timeout" => nameserver.request_timeout = ms(v),
                "binlog_sync_to_disk_interval" => tablet.binlog_sync_to_disk_interval = ms(v),
                "binlog_single_file_max_size" => tablet.binlog_single_file_max_size = int(v) << 20,
                "binlog_sync_batch_size" => {
                    tablet.replicator.batch_size = usize::try_from(int(v)).unwrap_or(usize::MAX)
                }
                "binlog_sync_wait_time" => tablet.replicator.wait_time = ms(v),
                "binlog_coffee_time" => tablet.replicator.coffee_time = ms(v),
                "binlog_match_logoffset_interval" => tablet.replicator.match_interval = ms(v),
                "gc_interval" => tablet.gc_interval = Duration::from_secs(int(v) * 60),
                "restart_delay" => restart_delay = ms(v),
                other => tracing::warn!(flag = other, "flag has no effect in the simulator"),
            }
        }
        let zk_session_timeout = tablet.zk_session_timeout;
        Flags { tablet, nameserver, taskmanager, restart_delay, zk_session_timeout }
    }
}

fn tablet_main(coord: String, config: TabletConfig) -> ProcessMain {
    process_main(move |ctx: ProcessCtx| {
        let (coord, mut config) = (coord.clone(), config.clone());
        async move {
            let disk = ctx.disk.scoped(&ctx.name).expect("scope the machine's disk");
            disk.create_dir_all("").await.expect("create the tablet's data dir");
            config.endpoint = ctx.endpoint(TABLET_PORT);
            config.zk_cluster = coord;
            let tablet = Tablet::start(config, Arc::new(disk) as Arc<dyn Disk>).await.expect("start the tablet");
            tablet.join().await;
        }
    })
}

fn ns_main(coord: String, config: NameserverConfig) -> ProcessMain {
    process_main(move |ctx: ProcessCtx| {
        let mut config = config.clone();
        config.endpoint = ctx.endpoint(NS_PORT);
        config.zk_cluster = coord.clone();
        async move {
            let ns = Nameserver::start(config).await.expect("start the nameserver");
            ns.join().await;
        }
    })
}

fn tm_main(coord: String, config: TaskManagerConfig) -> ProcessMain {
    process_main(move |ctx: ProcessCtx| {
        let (coord, mut config) = (coord.clone(), config.clone());
        async move {
            let disk = ctx.disk.scoped(&ctx.name).expect("scope the machine's disk");
            disk.create_dir_all("").await.expect("create the taskmanager's data dir");
            config.endpoint = ctx.endpoint(TM_PORT);
            config.zk_cluster = coord;
            let tm = TaskManager::start(config, Arc::new(disk) as Arc<dyn Disk>).await.expect("start the taskmanager");
            tm.join().await;
        }
    })
}

/// The cluster of a scenario, with the names tests and the nemesis need.
pub struct Built {
    pub cluster: Cluster,
    pub coord: String,
    /// Process name → endpoint (ip:port of its service).
    pub endpoints: BTreeMap<String, String>,
    /// Numbered machine → harness machine.
    pub machines: BTreeMap<usize, MachineId>,
}

/// Builds and starts the scenario's cluster.
pub fn build(s: &Scenario, flags: &Flags, trace: crate::trace::Trace) -> Built {
    let mut cluster = Cluster::new(trace);
    let coord = add_coord(&mut cluster);
    let mut endpoints = BTreeMap::new();
    let plain = coord.strip_prefix(openmldb::coord::connect::MODEL_SCHEME).unwrap_or(&coord).to_string();
    endpoints.insert("coord".to_string(), plain);
    let mut machines = BTreeMap::new();
    let coord_machine = cluster.machine_of("coord").expect("the coordination server is placed").id;
    machines.insert(super::world::COORD_MACHINE, coord_machine);
    for m in 1..=s.cluster.machines {
        machines.insert(m, cluster.add_machine(&format!("machine-{m}")));
    }
    for m in 1..=s.cluster.machines {
        for p in s.cluster.processes_on(MachineRef::Numbered(m)) {
            let name = p.to_string();
            let (main, port) = match p {
                ProcessId::Tablet(_) => (tablet_main(coord.clone(), flags.tablet.clone()), TABLET_PORT),
                ProcessId::Nameserver(_) => (ns_main(coord.clone(), flags.nameserver.clone()), NS_PORT),
                ProcessId::Taskmanager(_) => (tm_main(coord.clone(), flags.taskmanager.clone()), TM_PORT),
                ProcessId::Coord => continue,
            };
            let ip = cluster.add_process(machines[&m], &name, main, true);
            endpoints.insert(name, format!("{ip}:{port}"));
        }
    }
    let m = cluster.add_machine("client-machine");
    cluster.add_process(m, CLIENT, Cluster::idle(), true);
    Built { cluster, coord, endpoints, machines }
}
