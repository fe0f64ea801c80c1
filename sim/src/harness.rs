//! The cluster harness: machines and processes as madsim nodes, and every fault the nemesis can inject.
//!
//! Every action is recorded in the run's [`Trace`] under the node name `nemesis`, with its simulated time, so a
//! trace shows what was done to the system next to what the system did.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use madsim::net::NetSim;
use madsim::runtime::Handle;
use madsim::task::NodeId;
use openmldb::storage::SimDisk;

use crate::machine::{Machine, MachineId};
use crate::trace::Trace;

/// What a process gets when it starts: who it is, where it runs, its machine's disk.
#[derive(Clone)]
pub struct ProcessCtx {
    pub name: String,
    pub ip: IpAddr,
    pub machine: MachineId,
    pub disk: SimDisk,
    /// 1 for the first start, +1 for each start after a crash or restart.
    pub incarnation: u64,
    pub trace: Trace,
}

impl ProcessCtx {
    /// `ip:port` of this process.
    pub fn endpoint(&self, port: u16) -> String {
        format!("{}:{port}", self.ip)
    }
}

/// The body of a process: called afresh at every start. Its future must not return while the process runs.
pub type ProcessMain = Arc<dyn Fn(ProcessCtx) -> Pin<Box<dyn Future<Output = ()>>> + Send + Sync>;

/// Wraps an async fn as a [`ProcessMain`].
pub fn process_main<F, Fut>(f: F) -> ProcessMain
where
    F: Fn(ProcessCtx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + 'static,
{
    Arc::new(move |ctx| Box::pin(f(ctx)))
}

struct Process {
    machine: MachineId,
    ip: IpAddr,
    node: NodeId,
    running: bool,
    paused: bool,
}

/// Errors of harness calls: a name that names nothing, or an action that does not fit the state.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HarnessError {
    #[error("no process or machine named {0:?}")]
    Unknown(String),
    #[error("{0}")]
    Invalid(String),
}

/// A simulated cluster under the control of the test (the madsim supervisor).
pub struct Cluster {
    handle: Handle,
    trace: Trace,
    machines: Vec<Machine>,
    processes: BTreeMap<String, Process>,
    /// Directed links cut by `partition`, `clog` and `isolate_from`.
    clogged_links: BTreeSet<(String, String)>,
    /// Processes cut off from everyone by `isolate`.
    isolated: BTreeSet<String>,
}

impl Cluster {
    /// A cluster with no machines, on the current madsim runtime.
    pub fn new(trace: Trace) -> Self {
        Self {
            handle: Handle::current(),
            trace,
            machines: Vec::new(),
            processes: BTreeMap::new(),
            clogged_links: BTreeSet::new(),
            isolated: BTreeSet::new(),
        }
    }

    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    fn log(&self, event: impl std::fmt::Display) {
        self.trace.record("nemesis", event);
    }

    /// Adds a machine with an empty disk.
    pub fn add_machine(&mut self, name: &str) -> MachineId {
        let id = self.machines.len() + 1;
        self.machines.push(Machine { id, name: name.to_string(), disk: SimDisk::new(), processes: Vec::new() });
        id
    }

    pub fn machine(&self, id: MachineId) -> &Machine {
        &self.machines[id - 1]
    }

    pub fn machine_by_name(&self, name: &str) -> Option<&Machine> {
        self.machines.iter().find(|m| m.name == name)
    }

    /// The machine a process runs on.
    pub fn machine_of(&self, process: &str) -> Result<&Machine, HarnessError> {
        let p = self.process(process)?;
        Ok(self.machine(p.machine))
    }

    /// Places a process on `machine`; it starts now if `start`, else it waits for [`Cluster::start`].
    pub fn add_process(&mut self, machine: MachineId, name: &str, main: ProcessMain, start: bool) -> IpAddr {
        assert!(!self.processes.contains_key(name), "duplicate process name {name}");
        let m = &mut self.machines[machine - 1];
        m.processes.push(name.to_string());
        let ip = Machine::process_ip(machine, m.processes.len());
        let disk = m.disk.clone();
        let incarnation = Arc::new(AtomicU64::new(0));
        let (pname, trace) = (name.to_string(), self.trace.clone());
        let node = self
            .handle
            .create_node()
            .name(name)
            .ip(ip)
            .init(move || {
                let ctx = ProcessCtx {
                    name: pname.clone(),
                    ip,
                    machine,
                    disk: disk.clone(),
                    incarnation: incarnation.fetch_add(1, Ordering::Relaxed) + 1,
                    trace: trace.clone(),
                };
                main(ctx)
            })
            .build();
        let id = node.id();
        if !start {
            self.handle.kill(id);
        }
        self.processes.insert(name.to_string(), Process { machine, ip, node: id, running: start, paused: false });
        self.log(format_args!(
            "placed {name} on {} at {ip}{}",
            self.machine(machine).name,
            if start { "" } else { " (stopped)" }
        ));
        ip
    }

    fn process(&self, name: &str) -> Result<&Process, HarnessError> {
        self.processes.get(name).ok_or_else(|| HarnessError::Unknown(name.to_string()))
    }

    pub fn ip(&self, process: &str) -> Result<IpAddr, HarnessError> {
        Ok(self.process(process)?.ip)
    }

    pub fn is_running(&self, process: &str) -> bool {
        self.processes.get(process).is_some_and(|p| p.running)
    }

    pub fn process_names(&self) -> Vec<String> {
        self.processes.keys().cloned().collect()
    }

    /// Names a process or a machine; a machine stands for all its processes.
    pub fn expand(&self, name: &str) -> Result<Vec<String>, HarnessError> {
        if self.processes.contains_key(name) {
            return Ok(vec![name.to_string()]);
        }
        self.machine_by_name(name).map(|m| m.processes.clone()).ok_or_else(|| HarnessError::Unknown(name.to_string()))
    }

    // ---- processes ------------------------------------------------------------------------------------------

    /// Kills a process (its tasks and sockets vanish; its machine's disk keeps even unsynced data).
    pub fn crash(&mut self, name: &str) -> Result<(), HarnessError> {
        let p = self.processes.get_mut(name).ok_or_else(|| HarnessError::Unknown(name.to_string()))?;
        self.handle.kill(p.node);
        p.running = false;
        p.paused = false;
        self.log(format_args!("crash {name}"));
        Ok(())
    }

    /// Starts a stopped process, as a start script or a daemon would.
    pub fn start(&mut self, name: &str) -> Result<(), HarnessError> {
        let p = self.processes.get_mut(name).ok_or_else(|| HarnessError::Unknown(name.to_string()))?;
        if p.running {
            return Err(HarnessError::Invalid(format!("{name} is already running")));
        }
        // madsim's restart re-runs the init closure; the node was killed, so its old listener is gone.
        self.handle.restart(p.node);
        p.running = true;
        self.log(format_args!("start {name}"));
        Ok(())
    }

    /// Crash and start again at once.
    pub fn restart(&mut self, name: &str) -> Result<(), HarnessError> {
        let p = self.processes.get_mut(name).ok_or_else(|| HarnessError::Unknown(name.to_string()))?;
        self.handle.kill(p.node);
        self.handle.restart(p.node);
        p.running = true;
        p.paused = false;
        self.log(format_args!("restart {name}"));
        Ok(())
    }

    /// Freezes a process: its tasks stop being polled, its sockets stay open.
    pub fn pause(&mut self, name: &str) -> Result<(), HarnessError> {
        let p = self.processes.get_mut(name).ok_or_else(|| HarnessError::Unknown(name.to_string()))?;
        if !p.running {
            return Err(HarnessError::Invalid(format!("{name} is not running")));
        }
        self.handle.pause(p.node);
        p.paused = true;
        self.log(format_args!("pause {name}"));
        Ok(())
    }

    pub fn resume(&mut self, name: &str) -> Result<(), HarnessError> {
        let p = self.processes.get_mut(name).ok_or_else(|| HarnessError::Unknown(name.to_string()))?;
        self.handle.resume(p.node);
        p.paused = false;
        self.log(format_args!("resume {name}"));
        Ok(())
    }

    /// Ends every process at the end of a run, so that their tasks are dropped; nothing is traced.
    ///
    /// madsim drops no task when its runtime ends, and a pending task whose future holds its own waker (through a
    /// channel or a timer it waits on) would keep a whole cluster's memory alive: about 90 MB per seed of the
    /// reference scenario, which a sweep of many seeds in one process accumulates. A killed node's tasks are
    /// dropped the next time the executor runs, so the caller yields once after this.
    pub fn shutdown(&mut self) {
        for p in self.processes.values_mut() {
            self.handle.kill(p.node);
            p.running = false;
            p.paused = false;
        }
    }

    /// Runs `fut` as a task of process `name` (it dies with the process). Tests drive clients this way.
    pub fn spawn_on<F>(&self, name: &str, fut: F) -> Result<madsim::task::JoinHandle<F::Output>, HarnessError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let node = self.process(name)?.node;
        let handle = self.handle.get_node(node).ok_or_else(|| HarnessError::Unknown(name.to_string()))?;
        Ok(handle.spawn(fut))
    }

    /// A process body that does nothing until killed: a host for tasks started with [`Cluster::spawn_on`].
    pub fn idle() -> ProcessMain {
        process_main(|_| std::future::pending::<()>())
    }

    // ---- machines -------------------------------------------------------------------------------------------

    /// Power loss: every process of the machine dies and its disk loses whatever was not fsynced. The processes
    /// stay down until started by hand (the machine's daemon is gone too).
    pub fn machine_restart(&mut self, machine: MachineId) -> Result<(), HarnessError> {
        let m = self
            .machines
            .get(machine.wrapping_sub(1))
            .ok_or_else(|| HarnessError::Unknown(format!("machine {machine}")))?;
        let (name, procs, disk) = (m.name.clone(), m.processes.clone(), m.disk.clone());
        for p in &procs {
            let p = self.processes.get_mut(p).expect("placed process exists");
            self.handle.kill(p.node);
            p.running = false;
            p.paused = false;
        }
        let lost = disk.unsynced_bytes();
        disk.power_loss();
        self.log(format_args!(
            "machine_restart {name}: killed {} process(es), lost {lost} unsynced byte(s)",
            procs.len()
        ));
        Ok(())
    }

    /// Starts every stopped process of a machine, as a start-all script would.
    pub fn start_machine(&mut self, machine: MachineId) -> Result<(), HarnessError> {
        let procs = self.machines.get(machine.wrapping_sub(1)).map(|m| m.processes.clone());
        for p in procs.ok_or_else(|| HarnessError::Unknown(format!("machine {machine}")))? {
            if !self.is_running(&p) {
                self.start(&p)?;
            }
        }
        Ok(())
    }

    // ---- network --------------------------------------------------------------------------------------------

    fn node_of(&self, name: &str) -> NodeId {
        self.processes[name].node
    }

    fn clog_link(&mut self, from: &str, to: &str) {
        if self.clogged_links.insert((from.to_string(), to.to_string())) {
            NetSim::current().clog_link(self.node_of(from), self.node_of(to));
        }
    }

    /// Cuts every link between processes of different groups, both ways. Names may be processes or machines.
    pub fn partition(&mut self, groups: &[Vec<String>]) -> Result<(), HarnessError> {
        let expanded: Vec<Vec<String>> = groups
            .iter()
            .map(|g| g.iter().map(|n| self.expand(n)).collect::<Result<Vec<_>, _>>().map(|v| v.concat()))
            .collect::<Result<_, _>>()?;
        for (i, a) in expanded.iter().enumerate() {
            for b in expanded.iter().skip(i + 1) {
                for x in a {
                    for y in b {
                        self.clog_link(x, y);
                        self.clog_link(y, x);
                    }
                }
            }
        }
        self.log(format_args!("partition {groups:?}"));
        Ok(())
    }

    /// Cuts the direction `from` → `to` only.
    pub fn clog(&mut self, from: &str, to: &str) -> Result<(), HarnessError> {
        let (a, b) = (self.expand(from)?, self.expand(to)?);
        for x in &a {
            for y in &b {
                self.clog_link(x, y);
            }
        }
        self.log(format_args!("clog {from} -> {to}"));
        Ok(())
    }

    /// Cuts `name` off from the coordination server `coord` only, both ways; everything else still reaches it.
    pub fn isolate_from(&mut self, name: &str, coord: &str) -> Result<(), HarnessError> {
        let (a, b) = (self.expand(name)?, self.expand(coord)?);
        for x in &a {
            for y in &b {
                self.clog_link(x, y);
                self.clog_link(y, x);
            }
        }
        self.log(format_args!("isolate {name} from {coord}"));
        Ok(())
    }

    /// Cuts `name` off from everyone, both ways.
    pub fn isolate(&mut self, name: &str) -> Result<(), HarnessError> {
        for p in self.expand(name)? {
            if self.isolated.insert(p.clone()) {
                NetSim::current().clog_node(self.node_of(&p));
            }
        }
        self.log(format_args!("isolate {name}"));
        Ok(())
    }

    /// Removes every network fault.
    pub fn heal(&mut self) {
        let net = NetSim::current();
        for (a, b) in std::mem::take(&mut self.clogged_links) {
            net.unclog_link(self.node_of(&a), self.node_of(&b));
        }
        for p in std::mem::take(&mut self.isolated) {
            net.unclog_node(self.node_of(&p));
        }
        net.update_config(|c| {
            c.packet_loss_rate = 0.0;
            c.send_latency = Duration::from_millis(1)..Duration::from_millis(10);
        });
        self.log("heal");
    }

    /// Sets network-wide packet loss (connects fail; established streams retransmit) and latency.
    pub fn set_network(&mut self, packet_loss_rate: f64, latency: std::ops::Range<Duration>) {
        NetSim::current().update_config(|c| {
            c.packet_loss_rate = packet_loss_rate;
            c.send_latency = latency.clone();
        });
        self.log(format_args!("network loss={packet_loss_rate} latency={latency:?}"));
    }

    // ---- disks ----------------------------------------------------------------------------------------------

    /// The disk of the machine a process runs on.
    pub fn disk_of(&self, process: &str) -> Result<SimDisk, HarnessError> {
        Ok(self.machine_of(process)?.disk.clone())
    }

    /// The disk of a named process or machine.
    fn disk_named(&self, name: &str) -> Result<SimDisk, HarnessError> {
        match self.machine_by_name(name) {
            Some(m) => Ok(m.disk.clone()),
            None => self.disk_of(name),
        }
    }

    /// Every fsync on that machine's disk takes `delay` longer (zero restores normal speed).
    pub fn slow_fsync(&mut self, name: &str, delay: Duration) -> Result<(), HarnessError> {
        self.disk_named(name)?.set_slow_fsync(delay);
        self.log(format_args!("disk_fault slow_fsync {name} {delay:?}"));
        Ok(())
    }

    /// Every write on that machine's disk fails (`false` lets writes succeed again).
    pub fn write_errors(&mut self, name: &str, on: bool) -> Result<(), HarnessError> {
        self.disk_named(name)?.set_write_error(on);
        self.log(format_args!("disk_fault write_error {name} {on}"));
        Ok(())
    }

    /// Flips the last `nbytes` bytes of a file on that machine's disk: a corrupted last record.
    pub fn corrupt_tail(&mut self, name: &str, path: &str, nbytes: u64) -> Result<(), HarnessError> {
        self.disk_named(name)?.corrupt_tail(path, nbytes).map_err(|e| HarnessError::Invalid(e.to_string()))?;
        self.log(format_args!("disk_fault corrupt_tail {name} {path} {nbytes}"));
        Ok(())
    }

    /// Removes every disk fault of that machine.
    pub fn clear_disk_faults(&mut self, name: &str) -> Result<(), HarnessError> {
        self.disk_named(name)?.clear_faults();
        self.log(format_args!("disk_fault cleared {name}"));
        Ok(())
    }
}
