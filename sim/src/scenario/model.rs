//! A validated scenario: what the runner executes and the checkers judge. Every value has been checked against
//! the rest of the file (targets name processes of the cluster, tables are declared, pids exist), so the runner
//! only has to resolve roles such as `leader(flow,0)` while the scenario runs.

use std::fmt;
use std::time::Duration;

use super::target::{Command, ProcessId, ProcessTarget, Target};

/// One scenario file.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    /// Empty when the file has none.
    pub description: String,
    /// How many seeds the suite runs (default 10).
    pub seeds: u32,
    /// The simulated time limit; exceeding it fails the seed (default 120 s when the file has none).
    pub duration: Duration,
    pub cluster: Cluster,
    /// `[flags]` in file order.
    pub flags: Vec<(String, FlagValue)>,
    pub tables: Vec<TableSpec>,
    pub workloads: Vec<Workload>,
    /// In file order, which is the order they run in.
    pub steps: Vec<Step>,
    pub expect: Expect,
}

impl Scenario {
    /// The declared table of that name.
    pub fn table(&self, name: &str) -> Option<&TableSpec> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The value of a flag the file sets.
    pub fn flag(&self, name: &str) -> Option<&FlagValue> {
        self.flags.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// `[cluster]`: how many of each process, and the machines they are placed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cluster {
    pub tablets: usize,
    pub nameservers: usize,
    pub taskmanagers: usize,
    /// Whether each machine runs a daemon that restarts crashed processes.
    pub daemon: bool,
    /// Machines for the tablets, nameservers and taskmanagers (the coordination server has one of its own).
    pub machines: usize,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster { tablets: 3, nameservers: 2, taskmanagers: 2, daemon: true, machines: 3 }
    }
}

/// A machine of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MachineRef {
    /// The coordination server's own machine.
    Coord,
    /// Machine `i`, 1-based.
    Numbered(usize),
}

impl fmt::Display for MachineRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MachineRef::Coord => f.write_str("machine-coord"),
            MachineRef::Numbered(i) => write!(f, "machine-{i}"),
        }
    }
}

impl Cluster {
    /// Every process, coordination server first, then tablets, nameservers and taskmanagers by index.
    pub fn processes(&self) -> Vec<ProcessId> {
        let mut all = vec![ProcessId::Coord];
        all.extend((1..=self.tablets).map(ProcessId::Tablet));
        all.extend((1..=self.nameservers).map(ProcessId::Nameserver));
        all.extend((1..=self.taskmanagers).map(ProcessId::Taskmanager));
        all
    }

    /// Whether the cluster has that process.
    pub fn has(&self, p: ProcessId) -> bool {
        match p {
            ProcessId::Coord => true,
            ProcessId::Tablet(i) => (1..=self.tablets).contains(&i),
            ProcessId::Nameserver(i) => (1..=self.nameservers).contains(&i),
            ProcessId::Taskmanager(i) => (1..=self.taskmanagers).contains(&i),
        }
    }

    /// Placement (DESIGN 7): machine i runs tablet-i, nameserver-i and taskmanager-i; with fewer machines than
    /// processes of a role, process i goes to machine ((i - 1) mod machines) + 1.
    pub fn machine_of(&self, p: ProcessId) -> MachineRef {
        match p {
            ProcessId::Coord => MachineRef::Coord,
            _ => MachineRef::Numbered((p.index() - 1) % self.machines.max(1) + 1),
        }
    }

    /// The processes placed on a machine, in [`Cluster::processes`] order.
    pub fn processes_on(&self, m: MachineRef) -> Vec<ProcessId> {
        self.processes().into_iter().filter(|&p| self.machine_of(p) == m).collect()
    }
}

/// A `[flags]` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagValue {
    Bool(bool),
    Int(u64),
    Str(String),
}

impl fmt::Display for FlagValue {
    /// As it would go on a command line: `--name=value`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlagValue::Bool(b) => b.fmt(f),
            FlagValue::Int(i) => i.fmt(f),
            FlagValue::Str(s) => s.fmt(f),
        }
    }
}

/// A `[[table]]`, created before the scenario starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub name: String,
    /// Default 8 (OpenMLDB's partitionnum).
    pub partitions: u32,
    /// `None`: the file has none, which means min(3, tablets); see [`TableSpec::replica_count`].
    pub replicas: Option<u32>,
    pub replication: Replication,
}

impl TableSpec {
    /// Replicas per partition, the default resolved.
    pub fn replica_count(&self, cluster: &Cluster) -> u32 {
        self.replicas.unwrap_or_else(|| u32::try_from(cluster.tablets.min(3)).expect("at most 3"))
    }
}

/// When a write is acknowledged (DESIGN 5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Replication {
    /// After the leader's memory and buffered binlog write, as OpenMLDB.
    #[default]
    Async,
    /// After at least one follower appended it too.
    Semisync,
}

/// A `[[workload]]`: a client issuing operations at a steady rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub table: String,
    /// Operations per simulated second, > 0.
    pub rate: f64,
    /// Default 0 s.
    pub start: Duration,
    /// `None`: until the last step has run.
    pub stop: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    /// Writes rows with unique ids through the routing client, recording attempts and acknowledgements.
    Write,
    Read,
}

/// A `[[step]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub time: StepTime,
    pub action: Action,
    /// The line of its `[[step]]` header, for messages about the step at run time.
    pub line: usize,
}

/// When a step starts. Only the runner can turn `AfterPrevious` into a time: the previous step (a `wait_until`)
/// may take longer than planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepTime {
    /// `at`: simulated time from the scenario's start; a time already passed means at once.
    At(Duration),
    /// `after = "previous"` + `wait`: this long after the previous step finished (the first step's previous is
    /// the scenario's start). `wait` defaults to 0 s.
    AfterPrevious(Duration),
}

/// Packet loss and latency of the whole simulated network (the `network` verb).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkConditions {
    /// Probability that a packet is lost, in parts per million: a connect through a lossy link is refused, an
    /// established stream retransmits (the data is late, never dropped).
    pub loss_ppm: u32,
    /// One-way latency of each packet, drawn uniformly from `min..max` (`min == max`: fixed).
    pub latency_min: Duration,
    pub latency_max: Duration,
}

impl NetworkConditions {
    /// What `heal` restores: no loss, 1–10 ms.
    pub const DEFAULT: NetworkConditions = NetworkConditions {
        loss_ppm: 0,
        latency_min: Duration::from_millis(1),
        latency_max: Duration::from_millis(10),
    };

    pub fn loss(&self) -> f64 {
        f64::from(self.loss_ppm) / 1e6
    }
}

/// What a step does (DESIGN 7's verbs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Crash(ProcessTarget),
    /// Crash, then start again.
    Restart(ProcessTarget),
    /// Power loss of the machine (of the process): its processes stay down and its disk loses unsynced data.
    MachineRestart(Target),
    /// Start a process, or every process of a machine, as the start script would.
    Start(Target),
    /// Cut every link between the groups, both ways.
    Partition {
        groups: Vec<Vec<Target>>,
    },
    Isolate(ProcessTarget),
    /// Cut the target off from the coordination server only.
    IsolateFromCoord(ProcessTarget),
    /// Remove every network fault (loss and latency back to the defaults included).
    Heal,
    /// Network-wide packet loss and latency until the next `network` or `heal` (an extension of format v1; madsim's
    /// network applies them to every link).
    Network(NetworkConditions),
    /// Cut the direction `from` → `to` only.
    Clog {
        from: ProcessTarget,
        to: ProcessTarget,
    },
    Pause(ProcessTarget),
    Resume(ProcessTarget),
    /// A fault of the disk of the target's machine.
    DiskFault {
        target: ProcessTarget,
        fault: DiskFault,
    },
    NsClient {
        cmd: Command,
        expect: ClientExpect,
    },
    TabletClient {
        target: ProcessTarget,
        cmd: Command,
        expect: ClientExpect,
    },
    /// The one-click recovery tool. Without expectations it must succeed (an addition to DESIGN 7: `expect_ok`,
    /// `expect_contains`, `expect_not_contains` as for the client steps, e.g. a recovery refused on purpose).
    Recoverdata {
        expect: ClientExpect,
    },
    /// Wait for a condition; the scenario fails if `timeout` passes first.
    WaitUntil {
        condition: Condition,
        timeout: Duration,
    },
    /// Every writer stops issuing writes.
    StopWrites,
}

impl Action {
    /// The verb as written in `do`.
    pub fn verb(&self) -> &'static str {
        match self {
            Action::Crash(_) => "crash",
            Action::Restart(_) => "restart",
            Action::MachineRestart(_) => "machine_restart",
            Action::Start(_) => "start",
            Action::Partition { .. } => "partition",
            Action::Isolate(_) => "isolate",
            Action::IsolateFromCoord(_) => "isolate_from_coord",
            Action::Heal => "heal",
            Action::Network(_) => "network",
            Action::Clog { .. } => "clog",
            Action::Pause(_) => "pause",
            Action::Resume(_) => "resume",
            Action::DiskFault { .. } => "disk_fault",
            Action::NsClient { .. } => "ns_client",
            Action::TabletClient { .. } => "tablet_client",
            Action::Recoverdata { .. } => "recoverdata",
            Action::WaitUntil { .. } => "wait_until",
            Action::StopWrites => "stop_writes",
        }
    }
}

/// `disk_fault`'s `kind`, with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskFault {
    /// Every fsync takes `delay` longer (`delay`, default 1 s).
    SlowFsync { delay: Duration },
    /// Every write fails.
    WriteError,
    /// Flip the last `bytes` bytes (default 4) of a file: a damaged final record. `path` is relative to the
    /// target's data directory; `None` leaves the choice of file (the newest binlog segment) to the runner.
    CorruptTail { path: Option<String>, bytes: u64 },
    /// Remove every disk fault of that machine (an addition to DESIGN 7: without it a write error is forever).
    Clear,
}

/// What a client step's output must show. Everything empty means nothing is checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientExpect {
    /// `expect_contains`: each string must appear in the output.
    pub contains: Vec<String>,
    /// `expect_not_contains`: none may appear.
    pub not_contains: Vec<String>,
    /// `expect_ok`: whether the command must succeed (true) or fail (false).
    pub ok: Option<bool>,
}

/// `wait_until`'s `condition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Every process that should run is running and registered.
    AllAlive,
    /// Every partition has an alive leader.
    LeadersElected,
    /// No op is waiting or running.
    OpsDone,
}

/// `[expect]`: overrides of what the oracle derives (DESIGN 8). `None` leaves it to the oracle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Expect {
    pub loss: Option<Loss>,
    pub service: Option<Service>,
    pub recovery: Option<Recovery>,
    pub converge_within: Option<Duration>,
    /// The longest unavailability window allowed where the table promises service (DESIGN 8); by default
    /// 7/5 × `zk_session_timeout` + `tablet_heartbeat_timeout` + 3 s.
    pub failover_within: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    None,
    /// Only writes in an un-replicated suffix (DESIGN 8's loss bound).
    Bounded,
    Any,
}

/// For the partitions the faults touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Available,
    Unavailable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    Auto,
    Manual,
    None,
}
