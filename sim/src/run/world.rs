//! The running scenario: the cluster, the client's coordination session, the fault timeline the availability
//! oracle reads, the per-machine daemon model, and every step verb (the nemesis and the client steps). Targets
//! resolve when their step runs: `leader(flow,0)` is the leader at that moment.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use openmldb::cli::ns_client::NsClient;
use openmldb::coord::layout::DEFAULT_ROOT;
use openmldb::coord::{ClientOptions, Coordinator, Layout, ModelCoordinator, Renewing};
use openmldb::nameserver::meta::MetaStore;
use openmldb::proto::nameserver::TableInfo;
use openmldb::rpc::{ClientConfig, RpcClient};
use openmldb::taskmanager::TmClient;
use tokio::time::Instant;

use super::setup::{Built, CLIENT, Flags};
use crate::check::{FaultCause, FaultEvent, FaultKind, LinkEvent};
use crate::scenario::{
    Action, ClientExpect, Condition, DiskFault, MachineRef, ProcessId, ProcessTarget, Scenario, Target,
};
use crate::trace::Trace;

/// How often conditions and leaders are polled.
pub const POLL: Duration = Duration::from_millis(100);

/// One attempt of the runner's metadata read ([`World::try_tables`]): a few session timeouts of the scenarios.
const METADATA_READ_ATTEMPT: Duration = Duration::from_secs(3);

/// All attempts of one metadata read together.
const METADATA_READ_LIMIT: Duration = Duration::from_secs(10);

/// The key of the coordination server's own machine among [`super::setup::Built::machines`] (the scenario's
/// machines are numbered from 1).
pub const COORD_MACHINE: usize = 0;

pub struct World {
    pub b: Built,
    pub s: Scenario,
    pub flags: Flags,
    pub trace: Trace,
    /// The scenario's time zero.
    pub start: Instant,
    pub session: Arc<dyn Coordinator>,
    pub faults: Vec<FaultEvent>,
    /// Cuts and heals of the network between tablets, for the loss bound.
    pub links: Vec<LinkEvent>,
    /// Causes currently holding each tablet endpoint down.
    down: BTreeSet<(String, FaultCause)>,
    /// `(from, to)` process pairs whose direction the network cuts, until the next heal.
    cuts: BTreeSet<(String, String)>,
    /// Times the control plane changed (a nameserver's or the coordination server's fault or recovery, a
    /// network-wide change, a heal): any of them may open an unavailability window.
    pub control: Vec<Duration>,
    /// `(from, to)` intervals in which every failover was blocked: the coordination server stopped, or no
    /// nameserver running and in touch with it.
    pub blockers: Vec<(Duration, Option<Duration>)>,
    /// Numbered machines whose daemon is gone (after a machine restart, until started by hand).
    daemon_gone: BTreeSet<usize>,
    /// Processes the daemon will start, and when.
    pending: Vec<(Instant, String)>,
    /// Set by `stop_writes`: every writer stops.
    pub stop_writes: Arc<AtomicBool>,
    /// ns_client commands that are manual failover or recovery, seen in steps (then recovery is not automatic).
    pub manual_recovery: bool,
    /// Partitions `recoverdata` acted on (a manual recovery of those only).
    pub manual_partitions: BTreeSet<(String, u32)>,
    /// `(table, pid, when)` of every `changeleader` a step ran: the operator chose the next leader.
    pub ordered: Vec<(String, u32, Duration)>,
    /// Processes paused by a step and not resumed yet.
    paused: BTreeSet<String>,
}

/// The process names a [`Target`] covers: one process, or every process of a machine.
enum Resolved {
    Process(String),
    Machine(usize),
}

/// What an ns_client or recoverdata step answers while the scenario holds the coordination server paused or down:
/// the step fails at once (as the real tools do on an unreachable service) instead of waiting for the service,
/// which would hold up the step that resumes or starts it (steps run one after another: a recoverdata 0.1 s
/// before a resume waited past the run's time limit, campaign 76's seed 999697). Its output is judged as any
/// failed command's.
fn unreachable_nameserver(why: &str) -> String {
    format!("cannot find the nameserver: {why}")
}

impl World {
    pub async fn new(b: Built, s: Scenario, flags: Flags, trace: Trace) -> World {
        let coord = b.coord.clone();
        let timeout = flags.zk_session_timeout.max(Duration::from_secs(2));
        // The runner's observers and the workloads' routing clients own no ephemeral node: their session is
        // renewed after it expires (a pause of the coordination server past the timeout), never the end of
        // following the cluster (DESIGN 8: the observer is not the system).
        let session = b
            .cluster
            .spawn_on(CLIENT, async move {
                let connect: openmldb::coord::renew::Connect = Box::new(move || {
                    let coord = coord.clone();
                    Box::pin(async move {
                        loop {
                            match ModelCoordinator::connect(&coord, ClientOptions::new(timeout)).await {
                                Ok(c) => return Ok(Arc::new(c) as Arc<dyn Coordinator>),
                                Err(_) => tokio::time::sleep(POLL).await,
                            }
                        }
                    })
                });
                let renewing = Renewing::open(connect).await.expect("connect retries until it succeeds");
                Arc::new(renewing) as Arc<dyn Coordinator>
            })
            .expect("the client process")
            .await
            .expect("the client task");
        World {
            b,
            s,
            flags,
            trace,
            start: Instant::now(),
            session,
            faults: Vec::new(),
            links: Vec::new(),
            down: BTreeSet::new(),
            cuts: BTreeSet::new(),
            control: Vec::new(),
            blockers: Vec::new(),
            daemon_gone: BTreeSet::new(),
            pending: Vec::new(),
            stop_writes: Arc::new(AtomicBool::new(false)),
            manual_recovery: false,
            manual_partitions: BTreeSet::new(),
            ordered: Vec::new(),
            paused: BTreeSet::new(),
        }
    }

    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn log(&self, event: impl std::fmt::Display) {
        self.trace.record("runner", event);
    }

    /// Runs `fut` on the client machine and waits for it.
    pub async fn on_client<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.b.cluster.spawn_on(CLIENT, fut).expect("the client process").await.expect("the client task")
    }

    /// Every table's metadata, read by the client.
    /// Every table's metadata; empty if the coordination service cannot be read (see [`World::try_tables`]).
    pub async fn tables(&self) -> Vec<TableInfo> {
        self.try_tables().await.unwrap_or_default()
    }

    /// Every table's metadata, read by the runner's own session. A read that fails (a lossy network refuses a
    /// connect, the session is reconnecting) is tried again, 250 ms apart, so a fault does not pass for "no
    /// table"; each attempt has [`METADATA_READ_ATTEMPT`] and all of them [`METADATA_READ_LIMIT`], so a step
    /// behind an unreadable coordination service fails with the reason instead of holding up the steps after it.
    pub async fn try_tables(&self) -> Result<Vec<TableInfo>, String> {
        if let Some(why) = self.coord_unreadable() {
            return Err(format!("cannot read the tables' metadata: {why}"));
        }
        let deadline = Instant::now() + METADATA_READ_LIMIT;
        let mut last = String::new();
        while Instant::now() < deadline {
            let session = self.session.clone();
            let read = self.on_client(async move {
                let layout = Layout::new(DEFAULT_ROOT);
                let meta = MetaStore { coord: session.as_ref(), layout: &layout };
                tokio::time::timeout(METADATA_READ_ATTEMPT, meta.load_tables()).await
            });
            match read.await {
                Ok(Ok(tables)) => return Ok(tables),
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = format!("no answer within {METADATA_READ_ATTEMPT:?}"),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(format!("cannot read the tables' metadata within {METADATA_READ_LIMIT:?}: {last}"))
    }

    /// Why the runner cannot read the coordination service now, when the scenario itself made it so (its
    /// server paused or down): a role target is then refused at once, naming the reason.
    fn coord_unreadable(&self) -> Option<&'static str> {
        if self.paused.contains("coord") {
            Some("the coordination server is paused")
        } else if !self.b.cluster.is_running("coord") {
            Some("the coordination server is down")
        } else {
            None
        }
    }

    pub fn ns_client(&self) -> NsClient {
        NsClient::new(self.session.clone(), DEFAULT_ROOT, Duration::from_secs(5))
    }

    /// The process that serves `endpoint`.
    pub fn process_of(&self, endpoint: &str) -> Option<String> {
        self.b.endpoints.iter().find(|(_, e)| *e == endpoint).map(|(p, _)| p.clone())
    }

    pub fn is_tablet(process: &str) -> bool {
        process.starts_with("tablet-")
    }

    fn is_nameserver(process: &str) -> bool {
        process.starts_with("nameserver-")
    }

    // ---- targets --------------------------------------------------------------------------------------------

    /// The process a target names now.
    pub async fn resolve(&self, t: &ProcessTarget) -> Result<String, String> {
        if let (false, Some(why)) = (matches!(t, ProcessTarget::Process(_)), self.coord_unreadable()) {
            return Err(format!("{t:?} cannot be resolved: {why} (role targets are read from it)"));
        }
        match t {
            ProcessTarget::Process(p) => Ok(p.to_string()),
            ProcessTarget::ActiveNameserver | ProcessTarget::StandbyNameserver => {
                let ns = self.ns_client();
                let active = self.on_client(async move { ns.active().await }).await?;
                let active = self.process_of(&active).ok_or_else(|| format!("no process serves {active}"))?;
                if matches!(t, ProcessTarget::ActiveNameserver) {
                    return Ok(active);
                }
                (1..=self.s.cluster.nameservers)
                    .map(|i| ProcessId::Nameserver(i).to_string())
                    .find(|p| *p != active && self.b.cluster.is_running(p))
                    .ok_or_else(|| "no standby nameserver is running".to_string())
            }
            ProcessTarget::ActiveTaskmanager => {
                let tm = TmClient::new(self.session.clone(), DEFAULT_ROOT, Duration::from_secs(5));
                let active = self.on_client(async move { tm.active().await }).await?;
                self.process_of(&active).ok_or_else(|| format!("no process serves {active}"))
            }
            ProcessTarget::Leader(p) | ProcessTarget::Follower(p) => {
                let tables = self.try_tables().await?;
                let table = tables
                    .iter()
                    .find(|x| x.name == p.table)
                    .ok_or_else(|| format!("table {} is not created", p.table))?;
                let part = table
                    .table_partition
                    .iter()
                    .find(|x| x.pid == p.pid)
                    .ok_or_else(|| format!("{} has no pid {}", p.table, p.pid))?;
                let leader = matches!(t, ProcessTarget::Leader(_));
                let ep = part
                    .partition_meta
                    .iter()
                    .find(|m| m.is_alive && m.is_leader == leader)
                    .map(|m| m.endpoint.clone())
                    .ok_or_else(|| format!("{t:?}: no alive {} now", if leader { "leader" } else { "follower" }))?;
                self.process_of(&ep).ok_or_else(|| format!("no process serves {ep}"))
            }
        }
    }

    async fn resolve_target(&self, t: &Target) -> Result<Resolved, String> {
        match t {
            Target::Process(p) => self.resolve(p).await.map(Resolved::Process),
            Target::Machine(p) => {
                let name = self.resolve(p).await?;
                let id = ProcessId::parse(&name).ok_or_else(|| format!("{name} is not a scenario process"))?;
                match self.s.cluster.machine_of(id) {
                    MachineRef::Numbered(m) => Ok(Resolved::Machine(m)),
                    MachineRef::Coord => Ok(Resolved::Machine(COORD_MACHINE)),
                }
            }
        }
    }

    fn machine_processes(&self, m: usize) -> Vec<String> {
        if m == COORD_MACHINE {
            return vec!["coord".to_string()];
        }
        self.s.cluster.processes_on(MachineRef::Numbered(m)).iter().map(ProcessId::to_string).collect()
    }

    fn machine_of_process(&self, name: &str) -> Option<usize> {
        match self.s.cluster.machine_of(ProcessId::parse(name)?) {
            MachineRef::Numbered(m) => Some(m),
            MachineRef::Coord => Some(COORD_MACHINE),
        }
    }

    // ---- the fault timeline -----------------------------------------------------------------------------------

    fn fault(&mut self, process: &str, kind: FaultKind, cause: FaultCause) {
        if !Self::is_tablet(process) {
            if Self::is_nameserver(process) || process == "coord" {
                self.control_changed();
            }
            return;
        }
        let Some(endpoint) = self.b.endpoints.get(process).cloned() else { return };
        let key = (endpoint.clone(), cause);
        let changed = match kind {
            FaultKind::Down => self.down.insert(key),
            FaultKind::Up => self.down.remove(&key),
        };
        if changed {
            self.faults.push(FaultEvent { at: self.now(), kind, endpoint, cause });
        }
    }

    /// Records that nothing `from` sends reaches `to` (both process names): the servers' links for the loss
    /// bound and the leader-selection checks, every link for [`World::reachability`].
    fn cut(&mut self, from: &str, to: &str) {
        if from == to || !self.cuts.insert((from.to_string(), to.to_string())) {
            return;
        }
        let server = |p: &str| Self::is_tablet(p) || Self::is_nameserver(p);
        if !server(from) || !server(to) {
            return;
        }
        let (Some(from), Some(to)) = (self.b.endpoints.get(from).cloned(), self.b.endpoints.get(to).cloned()) else {
            return;
        };
        self.links.push(LinkEvent::Cut { at: self.now(), from, to });
    }

    fn is_cut(&self, a: &str, b: &str) -> bool {
        self.cuts.contains(&(a.to_string(), b.to_string())) || self.cuts.contains(&(b.to_string(), a.to_string()))
    }

    /// What each tablet can reach now, as the oracle counts it offline (DESIGN 8: by what a replica could do,
    /// never by the group a step listed it in): a tablet cut from the coordination server in either direction
    /// loses its session, so it is offline; one that no nameserver can exchange messages with is offline for the
    /// service promise only (no failover can use it; seed 394785), until the heal. Cuts only add up until a heal,
    /// so this only takes tablets down.
    fn reachability(&mut self) {
        let nameservers: Vec<String> = self.b.endpoints.keys().filter(|p| Self::is_nameserver(p)).cloned().collect();
        let tablets: Vec<String> = self.b.endpoints.keys().filter(|p| Self::is_tablet(p)).cloned().collect();
        for t in tablets {
            if self.is_cut(&t, "coord") {
                self.fault(&t, FaultKind::Down, FaultCause::CoordIsolation);
            }
            if !nameservers.is_empty() && nameservers.iter().all(|n| self.is_cut(&t, n)) {
                self.fault(&t, FaultKind::Down, FaultCause::NameserverCut);
            }
        }
        self.control_changed();
    }

    /// Whether every failover is blocked now: the coordination server stopped or paused, or no nameserver runs
    /// unpaused and in touch with it.
    fn failover_blocked(&self) -> bool {
        let up = |p: &str| self.b.cluster.is_running(p) && !self.paused.contains(p);
        if !up("coord") {
            return true;
        }
        !(1..=self.s.cluster.nameservers)
            .map(|i| ProcessId::Nameserver(i).to_string())
            .any(|n| up(&n) && !self.is_cut(&n, "coord"))
    }

    /// Notes a change of the control plane, and opens or closes a blocker.
    fn control_changed(&mut self) {
        let now = self.now();
        if self.control.last() != Some(&now) {
            self.control.push(now);
        }
        let blocked = self.failover_blocked();
        let open = self.blockers.last().is_some_and(|b| b.1.is_none());
        if blocked && !open {
            self.blockers.push((now, None));
        } else if !blocked && open {
            self.blockers.last_mut().expect("open blocker").1 = Some(now);
        }
    }

    /// Ends every network and pause fault of the timeline (a heal, or a resume).
    fn up_all(&mut self, causes: &[FaultCause]) {
        let held: Vec<(String, FaultCause)> = self.down.iter().filter(|(_, c)| causes.contains(c)).cloned().collect();
        for (endpoint, cause) in held {
            if let Some(p) = self.process_of(&endpoint) {
                self.fault(&p, FaultKind::Up, cause);
            }
        }
    }

    // ---- the daemon -------------------------------------------------------------------------------------------

    /// A crashed process is started again by its machine's daemon after `restart_delay`, unless the daemon is off
    /// or gone with a machine restart.
    fn daemon_watch(&mut self, process: &str) {
        if !self.s.cluster.daemon || process == "coord" {
            return;
        }
        if self.machine_of_process(process).is_some_and(|m| self.daemon_gone.contains(&m)) {
            return;
        }
        let due = Instant::now() + self.flags.restart_delay;
        self.pending.push((due, process.to_string()));
    }

    /// Starts the processes whose daemon restart is due.
    pub fn run_daemon(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self.pending.iter().filter(|(t, _)| *t <= now).map(|(_, p)| p.clone()).collect();
        self.pending.retain(|(t, _)| *t > now);
        for p in due {
            if !self.b.cluster.is_running(&p) {
                self.log(format_args!("daemon starts {p}"));
                if self.b.cluster.start(&p).is_ok() {
                    self.fault(&p, FaultKind::Up, FaultCause::Crash);
                }
                if !Self::is_tablet(&p) {
                    self.control_changed();
                }
            }
        }
    }

    /// The next daemon restart, if any.
    pub fn next_daemon(&self) -> Option<Instant> {
        self.pending.iter().map(|(t, _)| *t).min()
    }

    /// Sleeps until `at`, running the daemon on the way.
    pub async fn advance_to(&mut self, at: Instant) {
        loop {
            self.run_daemon();
            let next = self.next_daemon().map_or(at, |d| d.min(at));
            if next > Instant::now() {
                tokio::time::sleep_until(next).await;
            }
            if Instant::now() >= at {
                self.run_daemon();
                return;
            }
        }
    }

    /// Sleeps for `d`, running the daemon on the way.
    pub async fn sleep(&mut self, d: Duration) {
        self.advance_to(Instant::now() + d).await;
    }

    // ---- the verbs ------------------------------------------------------------------------------------------

    /// Carries out one step. An error is a scenario failure (a client expectation not met, a timeout, a target
    /// naming nothing at that moment).
    pub async fn exec(&mut self, action: &Action) -> Result<(), String> {
        let h = |e: crate::harness::HarnessError| e.to_string();
        match action {
            Action::Crash(t) => {
                let p = self.resolve(t).await?;
                self.b.cluster.crash(&p).map_err(h)?;
                self.fault(&p, FaultKind::Down, FaultCause::Crash);
                self.daemon_watch(&p);
            }
            Action::Restart(t) => {
                let p = self.resolve(t).await?;
                self.b.cluster.restart(&p).map_err(h)?;
                self.fault(&p, FaultKind::Down, FaultCause::Crash);
                self.fault(&p, FaultKind::Up, FaultCause::Crash);
            }
            Action::MachineRestart(t) => {
                let m = match self.resolve_target(t).await? {
                    Resolved::Machine(m) => m,
                    Resolved::Process(p) => self.machine_of_process(&p).ok_or("no machine")?,
                };
                self.b.cluster.machine_restart(self.b.machines[&m]).map_err(h)?;
                self.daemon_gone.insert(m);
                for p in self.machine_processes(m) {
                    self.pending.retain(|(_, q)| *q != p);
                    self.fault(&p, FaultKind::Down, FaultCause::MachineRestart);
                }
            }
            Action::Start(t) => {
                let procs = match self.resolve_target(t).await? {
                    Resolved::Machine(m) => {
                        self.daemon_gone.remove(&m);
                        self.machine_processes(m)
                    }
                    Resolved::Process(p) => {
                        if let Some(m) = self.machine_of_process(&p) {
                            self.daemon_gone.remove(&m);
                        }
                        vec![p]
                    }
                };
                for p in procs {
                    if !self.b.cluster.is_running(&p) {
                        self.b.cluster.start(&p).map_err(h)?;
                    }
                    self.pending.retain(|(_, q)| *q != p);
                    self.fault(&p, FaultKind::Up, FaultCause::Crash);
                    self.fault(&p, FaultKind::Up, FaultCause::MachineRestart);
                }
            }
            Action::Partition { groups } => {
                let mut names = Vec::new();
                for g in groups {
                    let mut group = Vec::new();
                    for t in g {
                        match self.resolve_target(t).await? {
                            Resolved::Process(p) => group.push(p),
                            Resolved::Machine(m) => group.extend(self.machine_processes(m)),
                        }
                    }
                    names.push(group);
                }
                self.b.cluster.partition(&names).map_err(h)?;
                for (i, a) in names.iter().enumerate() {
                    for b in &names[i + 1..] {
                        for (x, y) in a.iter().flat_map(|x| b.iter().map(move |y| (x, y))) {
                            self.cut(x, y);
                            self.cut(y, x);
                        }
                    }
                }
                // Processes no group lists keep every link: a group without the coordination server is cut from
                // it only if another group lists it.
                self.reachability();
            }
            Action::Isolate(t) => {
                let p = self.resolve(t).await?;
                self.b.cluster.isolate(&p).map_err(h)?;
                let mut others: Vec<String> = self.b.endpoints.keys().filter(|o| **o != p).cloned().collect();
                others.push(CLIENT.to_string());
                for o in &others {
                    self.cut(&p, o);
                    self.cut(o, &p);
                }
                self.reachability();
            }
            Action::IsolateFromCoord(t) => {
                let p = self.resolve(t).await?;
                self.b.cluster.isolate_from(&p, "coord").map_err(h)?;
                self.cut(&p, "coord");
                self.cut("coord", &p);
                self.reachability();
            }
            Action::Heal => {
                self.b.cluster.heal();
                self.links.push(LinkEvent::Heal { at: self.now() });
                self.cuts.clear();
                self.up_all(&[FaultCause::Partition, FaultCause::CoordIsolation, FaultCause::NameserverCut]);
                self.control_changed();
            }
            Action::Network(c) => {
                // Network-wide: the oracle takes no endpoint offline for it (a failover it causes is judged by the
                // loss bound and convergence like any other).
                let latency = if c.latency_min == c.latency_max {
                    c.latency_min..c.latency_min + Duration::from_nanos(1)
                } else {
                    c.latency_min..c.latency_max
                };
                self.b.cluster.set_network(c.loss(), latency);
                self.control_changed();
            }
            Action::Clog { from, to } => {
                let (a, b) = (self.resolve(from).await?, self.resolve(to).await?);
                self.b.cluster.clog(&a, &b).map_err(h)?;
                self.cut(&a, &b);
                self.reachability();
            }
            Action::Pause(t) => {
                let p = self.resolve(t).await?;
                self.b.cluster.pause(&p).map_err(h)?;
                self.paused.insert(p.clone());
                self.fault(&p, FaultKind::Down, FaultCause::Pause);
            }
            Action::Resume(t) => {
                let p = self.resolve(t).await?;
                self.b.cluster.resume(&p).map_err(h)?;
                self.paused.remove(&p);
                self.fault(&p, FaultKind::Up, FaultCause::Pause);
            }
            Action::DiskFault { target, fault } => {
                let p = self.resolve(target).await?;
                match fault {
                    DiskFault::SlowFsync { delay } => {
                        self.b.cluster.slow_fsync(&p, *delay).map_err(h)?;
                        self.fault(&p, FaultKind::Down, FaultCause::SlowFsync);
                    }
                    DiskFault::WriteError => {
                        self.b.cluster.write_errors(&p, true).map_err(h)?;
                        self.fault(&p, FaultKind::Down, FaultCause::DiskError);
                    }
                    DiskFault::Clear => {
                        self.b.cluster.clear_disk_faults(&p).map_err(h)?;
                        self.fault(&p, FaultKind::Up, FaultCause::SlowFsync);
                        self.fault(&p, FaultKind::Up, FaultCause::DiskError);
                    }
                    DiskFault::CorruptTail { path, bytes } => {
                        let path = match path {
                            Some(path) => format!("{p}/{path}"),
                            None => self.newest_binlog(&p).await?,
                        };
                        self.b.cluster.corrupt_tail(&p, &path, *bytes).map_err(h)?;
                        self.fault(&p, FaultKind::Down, FaultCause::CorruptTail);
                        self.fault(&p, FaultKind::Up, FaultCause::CorruptTail);
                    }
                }
            }
            Action::NsClient { cmd, expect } => {
                let line = self.render(cmd).await?;
                let first = line.split_whitespace().next().unwrap_or_default();
                if ["offlineendpoint", "recoverendpoint", "recovertable", "changeleader", "updatetablealive", "migrate"]
                    .contains(&first)
                {
                    self.manual_recovery = true;
                }
                let words: Vec<&str> = line.split_whitespace().collect();
                if let ["changeleader", table, pid, ..] = words.as_slice()
                    && let Ok(pid) = pid.parse::<u32>()
                {
                    self.ordered.push((table.to_string(), pid, self.now()));
                }
                let out = match self.coord_unreadable() {
                    Some(why) => Err(unreachable_nameserver(why)),
                    None => {
                        let ns = self.ns_client();
                        let l = line.clone();
                        self.on_client(async move { ns.execute(&l).await }).await
                    }
                };
                self.log(format_args!("ns_client `{line}`: {}", summary(&out)));
                let expect = self.render_expect(expect).await?;
                check_output(&line, &out, &expect)?;
            }
            Action::TabletClient { target, cmd, expect } => {
                let p = self.resolve(target).await?;
                let endpoint = self.b.endpoints.get(&p).cloned().ok_or_else(|| format!("{p} has no endpoint"))?;
                let line = self.render(cmd).await?;
                let l = line.clone();
                let out = self
                    .on_client(async move {
                        let client = RpcClient::new(endpoint, ClientConfig::default());
                        openmldb::cli::tablet_client::execute(&client, &l).await
                    })
                    .await;
                self.log(format_args!("tablet_client {p} `{line}`: {}", summary(&out)));
                let expect = self.render_expect(expect).await?;
                check_output(&line, &out, &expect)?;
            }
            Action::Recoverdata { expect } => {
                let out = match self.coord_unreadable() {
                    Some(why) => Err(unreachable_nameserver(why)),
                    None => {
                        let ns = self.ns_client();
                        let limits = openmldb::cli::recoverdata::Limits {
                            load: Duration::from_secs(60),
                            ops: Duration::from_secs(120),
                            poll: Duration::from_millis(200),
                        };
                        self.on_client(async move { openmldb::cli::recoverdata::recoverdata(&ns, limits).await }).await
                    }
                };
                match &out {
                    Ok(report) | Err(report) => {
                        for line in report.lines() {
                            self.log(format_args!("recoverdata> {line}"));
                            // `<table> pid <n>: <what it did>`: the partitions it recovered were recovered by
                            // hand. One it failed on (`FAILED: why`) was not: it stays as the faults left it, and
                            // the checks judge it so (the step's own failure is reported apart).
                            if let Some((head, what)) = line.split_once(": ")
                                && let Some((table, pid)) = head.split_once(" pid ")
                                && let Ok(pid) = pid.parse::<u32>()
                                && what != "healthy, nothing to do"
                                && !what.starts_with("FAILED")
                            {
                                self.manual_partitions.insert((table.to_string(), pid));
                            }
                        }
                    }
                }
                if *expect == ClientExpect::default() {
                    out?;
                } else {
                    let expect = self.render_expect(expect).await?;
                    check_output("recoverdata", &out, &expect)?;
                }
            }
            Action::WaitUntil { condition, timeout } => {
                let deadline = Instant::now() + *timeout;
                loop {
                    if self.condition_holds(*condition).await {
                        break;
                    }
                    if Instant::now() >= deadline {
                        return Err(format!("wait_until {condition:?}: not reached within {timeout:?}"));
                    }
                    self.sleep(POLL).await;
                }
            }
            Action::StopWrites => self.stop_writes.store(true, Ordering::SeqCst),
        }
        Ok(())
    }

    /// A command line with every `{target}` placeholder replaced by the endpoint it names now.
    async fn render(&self, cmd: &crate::scenario::Command) -> Result<String, String> {
        let mut line = String::new();
        for part in &cmd.parts {
            match part {
                crate::scenario::CmdPart::Text(t) => line.push_str(t),
                crate::scenario::CmdPart::Endpoint(t) => {
                    let p = self.resolve(t).await?;
                    line.push_str(self.b.endpoints.get(&p).ok_or_else(|| format!("{p} has no endpoint"))?);
                }
            }
        }
        Ok(line)
    }

    /// Renders `{target}` placeholders in the expected strings too, so an expectation can name an endpoint.
    async fn render_expect(&self, expect: &ClientExpect) -> Result<ClientExpect, String> {
        let mut out = expect.clone();
        for s in out.contains.iter_mut().chain(out.not_contains.iter_mut()) {
            if let Ok(cmd) = crate::scenario::Command::parse(s) {
                *s = self.render(&cmd).await?;
            }
        }
        Ok(out)
    }

    /// The newest binlog segment of the tablet's partitions (what `corrupt_tail` damages by default).
    async fn newest_binlog(&self, process: &str) -> Result<String, String> {
        let disk = self.b.cluster.disk_of(process).map_err(|e| e.to_string())?;
        let scoped = disk.scoped(process).map_err(|e| e.to_string())?;
        scoped
            .files()
            .into_iter()
            .filter(|f| f.contains("/binlog/"))
            .max()
            .map(|f| format!("{process}/{f}"))
            .ok_or_else(|| format!("{process} has no binlog file to corrupt"))
    }

    pub async fn condition_holds(&self, condition: Condition) -> bool {
        match condition {
            Condition::AllAlive => {
                let tables = self.tables().await;
                !tables.is_empty()
                    && tables
                        .iter()
                        .all(|t| t.table_partition.iter().all(|p| p.partition_meta.iter().all(|m| m.is_alive)))
            }
            Condition::LeadersElected => {
                let tables = self.tables().await;
                let alive = |ep: &str| self.process_of(ep).is_some_and(|p| self.b.cluster.is_running(&p));
                !tables.is_empty()
                    && tables.iter().all(|t| {
                        t.table_partition
                            .iter()
                            .all(|p| p.partition_meta.iter().any(|m| m.is_leader && m.is_alive && alive(&m.endpoint)))
                    })
            }
            Condition::OpsDone => self.ops_stuck().await.is_some_and(|s| s.is_empty()),
        }
    }

    /// Ops still kInited or kDoing, one line each; None when showopstatus cannot be read.
    pub async fn ops_stuck(&self) -> Option<Vec<String>> {
        let ns = self.ns_client();
        let out = self.on_client(async move { ns.execute("showopstatus").await }).await.ok()?;
        Some(
            out.lines()
                .skip(2)
                .filter(|l| l.contains("kInited") || l.contains("kDoing"))
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect(),
        )
    }

    /// The end of the scenario: every network fault healed and every paused process resumed, as DESIGN 8's
    /// checks run "after the scenario heals".
    pub fn final_heal(&mut self) {
        self.b.cluster.heal();
        self.links.push(LinkEvent::Heal { at: self.now() });
        for p in std::mem::take(&mut self.paused) {
            if self.b.cluster.is_running(&p) {
                let _ = self.b.cluster.resume(&p);
            }
        }
        self.cuts.clear();
        self.up_all(&[FaultCause::Partition, FaultCause::CoordIsolation, FaultCause::NameserverCut, FaultCause::Pause]);
        self.control_changed();
        self.log("final heal");
    }

    /// Tablet endpoints whose process runs now.
    pub fn running_tablets(&self) -> BTreeSet<String> {
        self.b
            .endpoints
            .iter()
            .filter(|(p, _)| Self::is_tablet(p) && self.b.cluster.is_running(p))
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Endpoint by process name.
    pub fn endpoints(&self) -> &BTreeMap<String, String> {
        &self.b.endpoints
    }
}

fn summary(out: &Result<String, String>) -> String {
    let (tag, text) = match out {
        Ok(t) => ("ok", t),
        Err(t) => ("error", t),
    };
    let first = text.lines().next().unwrap_or_default();
    format!("{tag}: {first}{}", if text.lines().count() > 1 { " ..." } else { "" })
}

/// Holds a client step's output to its expectations.
fn check_output(line: &str, out: &Result<String, String>, expect: &ClientExpect) -> Result<(), String> {
    let text = match out {
        Ok(t) | Err(t) => t,
    };
    if let Some(ok) = expect.ok
        && ok != out.is_ok()
    {
        return Err(format!(
            "`{line}` {} but expect_ok = {ok}:\n{text}",
            if out.is_ok() { "succeeded" } else { "failed" }
        ));
    }
    for want in &expect.contains {
        if !text.contains(want.as_str()) {
            return Err(format!("`{line}` output does not contain {want:?}:\n{text}"));
        }
    }
    for bad in &expect.not_contains {
        if text.contains(bad.as_str()) {
            return Err(format!("`{line}` output contains {bad:?}:\n{text}"));
        }
    }
    Ok(())
}
